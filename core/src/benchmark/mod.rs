//! Public moment-retrieval benchmarks: their annotations read ([`annotations`]) and their
//! official metrics computed exactly as their evaluator does ([`metrics`]).

pub mod annotations;
pub mod metrics;
pub mod predict;

pub use metrics::{evaluate, GroundTruth, Metrics, Prediction};
