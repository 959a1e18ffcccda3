//! One test binary for the server's integration tests: each file below was its own binary,
//! and each linked OpenCV, FFmpeg, candle and ONNX Runtime, so one test run linked them eleven
//! times. Tests that must not share a process with others stay binaries of their own:
//! `crash.rs` (kills servers with `kill -9` in a loop), `library.rs` (measures a server's peak
//! memory) and `roboflow.rs` (asserts on elapsed time).
//!
//! Run one module with `cargo test -p server --test it corpus::`.

#[path = "../common/mod.rs"]
mod common;

mod adapt;
mod bad_inputs;
mod benchmark;
mod cli_and_web;
mod clip_parity;
mod corpus;
mod decoder;
mod embedding;
mod evaluation;
mod explain;
mod frame_url;
mod frames;
mod guard;
mod library_search;
mod moments;
mod naflex_parity;
mod open_clip_parity;
mod pixels;
mod precision;
mod preprocess;
mod progressive;
mod proxy;
mod readme;
mod siglip_parity;
