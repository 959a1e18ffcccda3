//! The engine of CLIP Video Investigator: frame-exact video, CLIP, indexing, frames, search,
//! excerpts and the library. The fronts (`server`: web and CLI) call into it; it links no UI
//! crate (no `app`, Leptos or axum), which `scripts/check_layers.sh` checks.
//!
//! Layers, each importing only from the ones above it in this list (checked by
//! `scripts/check_layers.sh`, part of the test command):
//! - `store` (settings and cache files) and `investigator_core` (the types and maths shared with
//!   the page): crates of their own below this one;
//! - `sync`: poison-tolerant locks;
//! - `video`: decoding with FFmpeg's libraries, the frame index;
//! - `embed`, `labels`: CLIP (in process or through Roboflow); a video's ground-truth labels;
//! - `indexing`, `precision`: embedding a video into its cache file (the embedding index); the
//!   service that runs those jobs; int8 image towers checked against fp32 before use;
//! - `frames`, `search`, `vectors`: per-viewer decoders and the JPEG cache; scores and search
//!   over an embedding index; the library's vector index (int8 scan, exact re-rank);
//! - `evaluation`, `explain`, `export`, `adapt`: the indexes held against the labels; why a
//!   frame scores as it does (relevance maps); frame-exact MP4 excerpts and labelled datasets;
//!   prompts adapted from the labels (probe, Tip-Adapter), measured out of fold;
//! - `library`: videos by opaque id, their sessions, the indexing queue.

pub mod adapt;
pub mod embed;
pub mod evaluation;
pub mod explain;
pub mod export;
pub mod frames;
pub mod indexing;
pub mod labels;
pub mod library;
pub mod precision;
pub mod search;
pub mod sync;
pub mod vectors;
pub mod video;
