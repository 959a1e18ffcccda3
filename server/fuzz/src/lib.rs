//! The server's parsers, compiled on their own for libFuzzer: these modules name nothing else of
//! the server crate, so the fuzz build needs neither OpenCV nor the model crates.

#[path = "../../src/config.rs"]
pub mod config;

#[path = "../../src/cache.rs"]
pub mod cache;
