//! The bottom layer of the server: settings and storage. Everything above (video, CLIP, indexing,
//! frames, the library and the fronts) may import from here; this crate imports none of them and
//! links neither OpenCV, FFmpeg nor a model crate (`cargo build -p store` proves it).
//!
//! - `config`: `config.yaml`;
//! - `cache`: the embedding files, the text cache, atomic writes, content fingerprints;
//! - `labels`: a video's labels file, read and replaced under a lock;
//! - `vectors`: the library search's vector segments (append logs derived from the caches);
//! - `fnv`: FNV-1a.

pub mod cache;
pub mod config;
pub mod fnv;
pub mod labels;
pub mod vectors;
