//! Server side of CLIP Video Investigator: configuration, the video engine, the web server and
//! the command line. `main.rs` only parses arguments and calls into here.

pub mod cache;
pub mod cli;
pub mod config;
pub mod embed;
pub mod engine;
pub mod testvideo;
pub mod video;
pub mod web;
