//! The small interface through which server functions reach the video engine.
//!
//! The `server` crate implements it (video decoding, CLIP, the library) and provides it as Leptos
//! context, so this crate compiles for the browser without any of those dependencies. Errors are
//! typed ([`ApiError`]): the variant becomes the HTTP status.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::ApiError;
use investigator_core::adapt::{AdaptRequest, AdaptStatus, AdapterInfo};
use investigator_core::evaluation::Evaluation;
use investigator_core::explain::Explanation;
use investigator_core::labels::{LabelEdit, LabelsAnswer};
use investigator_core::library_search::{LibraryAnswer, LibraryQuery};
use investigator_core::types::{
    FrameJpeg, IndexStatus, Library, ModelChoice, ScoreSeries, SearchHit, VideoInfo,
};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Every method that concerns one video takes its library id (checked by the caller to be
/// well-formed); an id the library does not know is an error, never a path. Methods that
/// concern embeddings take a model id (`None`: the default model); each model has its own
/// index of each video.
pub trait VideoBackend: Send + Sync + 'static {
    /// The library's videos (probes new files: blocking work runs off the async workers).
    fn library(&self) -> BoxFuture<Result<Library, ApiError>>;

    /// The id of the config's `video_path`, opened when a URL names no video.
    fn default_video(&self) -> String;

    /// Metadata of a video, opening it (and starting its indexing) on first use.
    fn info(&self, video: String) -> BoxFuture<Result<VideoInfo, ApiError>>;

    /// JPEG of exactly `frame`, decoded with `viewer`'s own decoder. Runs off the async workers.
    fn frame_jpeg(
        &self,
        video: String,
        viewer: String,
        frame: u64,
    ) -> BoxFuture<Result<FrameJpeg, ApiError>>;

    /// The models the page may pick, the default first.
    fn models(&self) -> Vec<ModelChoice>;

    /// Progress of embedding a video with a model (starting the job if it is not running).
    fn index_status(
        &self,
        video: String,
        model: Option<String>,
    ) -> BoxFuture<Result<IndexStatus, ApiError>>;

    /// A viewer looks at frames `from..=to`: a coarse-to-fine index refines them first.
    fn look_at(
        &self,
        video: String,
        model: Option<String>,
        from: u64,
        to: u64,
    ) -> BoxFuture<Result<(), ApiError>>;

    /// Raw cosine scores of the indexed frames for `prompts` (checked by the caller), and the
    /// zero-shot and adapted logits of the stored `adapters` (ids), from the same rows.
    fn scores(
        &self,
        video: String,
        model: Option<String>,
        prompts: Vec<String>,
        adapters: Vec<String>,
    ) -> BoxFuture<Result<ScoreSeries, ApiError>>;

    /// Starts adapting a prompt from the video's labels (or says how far its job is).
    fn adapt(
        &self,
        video: String,
        model: Option<String>,
        request: AdaptRequest,
    ) -> BoxFuture<Result<AdaptStatus, ApiError>>;

    /// How far adapting `prompt` has come, or its stored adapter.
    fn adapt_status(
        &self,
        video: String,
        model: Option<String>,
        prompt: String,
    ) -> BoxFuture<Result<AdaptStatus, ApiError>>;

    /// The adapters stored for the video and model.
    fn adapters(
        &self,
        video: String,
        model: Option<String>,
    ) -> BoxFuture<Result<Vec<AdapterInfo>, ApiError>>;

    /// The `top` moments most like `text`, an image (encoded bytes), or both.
    fn search(
        &self,
        video: String,
        model: Option<String>,
        text: Option<String>,
        image: Option<Vec<u8>>,
        top: usize,
    ) -> BoxFuture<Result<Vec<SearchHit>, ApiError>>;

    /// The prompts of the config file (`CLIP:`), which the page starts with.
    fn default_prompts(&self) -> Vec<String>;

    /// The video's ground-truth labels (independent of the model).
    fn labels(&self, video: String) -> BoxFuture<Result<LabelsAnswer, ApiError>>;

    /// Applies one change to the video's labels, to the file as it is now.
    fn edit_labels(
        &self,
        video: String,
        edit: LabelEdit,
    ) -> BoxFuture<Result<LabelsAnswer, ApiError>>;

    /// Each model's index (`None`: the default model) held against the labels, for the
    /// labelled `prompts` (every labelled prompt when empty); the first two compared.
    fn evaluate(
        &self,
        video: String,
        models: Vec<Option<String>>,
        prompts: Vec<String>,
    ) -> BoxFuture<Result<Evaluation, ApiError>>;

    /// Why `frame` scores as it does for `prompt` (checked by the caller) under `model`: the
    /// relevance of each patch from vision layer `start_layer` on (`None`: the last).
    /// Computed off the async workers, one at a time, cached.
    fn explain(
        &self,
        video: String,
        model: Option<String>,
        frame: u64,
        prompt: String,
        start_layer: Option<u32>,
    ) -> BoxFuture<Result<Explanation, ApiError>>;

    /// The best moments across the library for `query` (checked by the caller).
    fn search_library(&self, query: LibraryQuery) -> BoxFuture<Result<LibraryAnswer, ApiError>>;

    /// Starts or stops indexing the whole library in the background; the new state.
    fn set_index_library(&self, on: bool) -> bool;

    /// A small JPEG of `frame` of `video` for a search result, decoded without opening the
    /// video for playback (no indexing starts).
    fn thumbnail(&self, video: String, frame: u64) -> BoxFuture<Result<FrameJpeg, ApiError>>;
}

/// Handle stored in Leptos context.
#[derive(Clone)]
pub struct Backend(pub Arc<dyn VideoBackend>);
