//! Public moment-retrieval benchmarks: their annotations read ([`annotations`]) and their
//! official metrics computed exactly as their evaluator does ([`metrics`], highlight detection
//! apart), and a model's answers to their queries ([`predict`]).

pub mod annotations;
mod highlights;
pub mod metrics;
mod numeric;
pub mod predict;

pub use metrics::{evaluate, GroundTruth, Metrics, Prediction};
