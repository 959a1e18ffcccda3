//! The small interface through which server functions reach the video engine.
//!
//! The `server` crate implements it (OpenCV, later CLIP) and provides it as Leptos context, so
//! this crate compiles for the browser without any of those dependencies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::types::{FrameJpeg, IndexStatus, ScoreSeries, SearchHit, VideoInfo};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pub trait VideoBackend: Send + Sync + 'static {
    /// Metadata of the open video; cheap, never decodes.
    fn info(&self) -> Result<VideoInfo, String>;

    /// JPEG of exactly `frame`, decoded with `viewer`'s own decoder. Runs off the async workers.
    fn frame_jpeg(&self, viewer: String, frame: u64) -> BoxFuture<Result<FrameJpeg, String>>;

    /// Progress of embedding the open video (starting the job if it is not running).
    fn index_status(&self) -> IndexStatus;

    /// Raw cosine scores of the indexed frames for `prompts` (checked by the caller).
    fn scores(&self, prompts: Vec<String>) -> BoxFuture<Result<ScoreSeries, String>>;

    /// The `top` moments most like `text`, an image (encoded bytes), or both.
    fn search(
        &self,
        text: Option<String>,
        image: Option<Vec<u8>>,
        top: usize,
    ) -> BoxFuture<Result<Vec<SearchHit>, String>>;

    /// The prompts of the config file (`CLIP:`), which the page starts with.
    fn default_prompts(&self) -> Vec<String>;
}

/// Handle stored in Leptos context.
#[derive(Clone)]
pub struct Backend(pub Arc<dyn VideoBackend>);
