//! Indexing: the pipeline that embeds a video's frames into its cache file (`pipeline`), and the
//! web server's service that runs one such job per open video in the background (`service`).

pub mod cuts;
pub mod passes;
pub mod pipeline;
pub mod service;
pub mod stash;

pub use passes::Focus;
pub use pipeline::{
    index_video, load_cache, IndexError, IndexJob, IndexOptions, IndexReport, PassReport, Progress,
    VideoToIndex,
};
pub use service::{IndexQueue, IndexService};
