//! The bottom layer of the server: settings and storage. Everything above (video, CLIP, indexing,
//! frames, the library and the fronts) may import from here; this crate imports none of them and
//! links neither OpenCV, FFmpeg nor a model crate (`cargo build -p store` proves it).

pub mod cache;
pub mod config;
pub mod fnv;
