//! Getting results out of the engine as files: `excerpt`, frame-exact MP4 excerpts of a video
//! (the page's and the CLI's "clips"), and `dataset`, labelled frames to fine-tune on.

pub mod dataset;
pub mod excerpt;
