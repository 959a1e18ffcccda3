//! The fronts of CLIP Video Investigator: `web` (router, guard, uploads, excerpt downloads, the
//! server functions' backend) and `cli` (every subcommand). `main.rs` only parses arguments and
//! calls into here. The engine below is the `engine` crate; the page is the `app` crate.
//!
//! Layers: `web` may use the engine, `app` and `investigator_core`; `cli` also `web` (for
//! `serve`). Checked by `scripts/check_layers.sh`.

// The page is one deeply nested view type; its layout needs a higher query depth.
#![recursion_limit = "256"]

pub mod cli;
pub mod web;
