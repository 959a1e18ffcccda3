//! Indexing: embedding a video's frames into its cache file (the embedding index), and the web
//! server's service that runs one such job per open video in the background.
//!
//! - `options`: how an index is made (sampling, batches, checkpoints, coarse to fine);
//! - `plan`: the video to index, the frames it plans, its cache file's header and loading;
//! - `job`: one run, pass after pass, a checkpoint after each; its parts `job/batches` (a pass's
//!   embedding loop: batches into the file, progress, checkpoints) and `job/decode` (a pass's
//!   decoder thread: detours, frames kept for later passes);
//! - `passes`, `stash`: coarse-to-fine passes and the viewer's focus; frames kept for later;
//! - `scene_writer`, `cuts`: scene cuts measured in the same pass;
//! - `report`: live progress, the report of a run, its errors;
//! - `service`: the server's background job per (video, model), and the queue.

pub mod cuts;
mod job;
pub mod options;
pub mod passes;
pub mod plan;
pub mod report;
pub mod scene_writer;
pub mod service;
pub mod stash;

pub use job::{index_video, IndexJob};
pub use options::{IndexOptions, KEEP_FOR_LATER_PASSES};
pub use passes::Focus;
pub use plan::{load_cache, FrameTap, OpenError, Tap, VideoToIndex};
pub use report::{IndexError, IndexReport, PassReport, Progress};
pub use service::{IndexQueue, IndexService};
