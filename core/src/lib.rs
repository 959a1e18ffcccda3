//! The pure code the page (`app`, also built for the browser) and the server's engine share:
//! what travels between them (`types`), the score maths (`scores`, `curves`), moments, the
//! status texts, the chart's maths, the routes and the limits on requests, and ground truth:
//! labels and the metrics that hold scores against them (`labels`, `evaluation`); why a frame
//! scores as it does (`explain`); prompts adapted from the labels (`adapt`); public benchmarks'
//! annotations, answers and official metrics (`benchmark`).
//!
//! Invariant: nothing here links Leptos, axum, tokio, OpenCV, FFmpeg or a model crate
//! (`scripts/check_layers.sh` checks the dependency tree), so the engine can use it without
//! linking the UI, and the browser without linking the engine.

pub mod adapt;
pub mod benchmark;
pub mod chart;
pub mod curves;
pub mod evaluation;
pub mod explain;
pub mod labels;
pub mod library_search;
pub mod moments;
pub mod requests;
pub mod routes;
pub mod scores;
pub mod status;
pub mod types;
