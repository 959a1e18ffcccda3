//! Server side of CLIP Video Investigator: configuration, the video engine, the web server and
//! the command line. `main.rs` only parses arguments and calls into here.

// The page is one deeply nested view type; its layout needs a higher query depth.
#![recursion_limit = "256"]

pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod embed;
pub mod engine;
pub mod guard;
pub mod index;
pub mod indexer;
pub mod library;
pub mod search;
pub mod testvideo;
pub mod upload;
pub mod video;
pub mod web;
