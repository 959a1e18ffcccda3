//! Server side of CLIP Video Investigator. `main.rs` only parses arguments and calls into here.
//!
//! Layers, each importing only from the ones above it in this list (checked by
//! `scripts/check_layers.sh`, part of the test command):
//! - store (`config`, `cache`; its own crate, so it cannot reach up): settings and files;
//! - `video`, `testvideo`: decoding with FFmpeg's libraries, the test videos;
//! - `embed`: CLIP (in process or through Roboflow);
//! - `index`: embedding a video into its cache file; the service that runs those jobs;
//! - `frames`, `search`, `clip`: per-viewer decoders and the JPEG cache; scores and search over
//!   an index; frame-exact clip export;
//! - `library`: videos by opaque id, their sessions, the indexing queue;
//! - fronts: `web` (router, guard, uploads, the server functions' backend) and `cli`.

// The page is one deeply nested view type; its layout needs a higher query depth.
#![recursion_limit = "256"]

pub use store::{cache, config};

pub mod cli;
pub mod clip;
pub mod embed;
pub mod frames;
pub mod index;
pub mod library;
pub mod search;
pub mod testvideo;
pub mod video;
pub mod web;
