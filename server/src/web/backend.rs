//! The server functions' backend: the library behind `app::backend::VideoBackend`, each error
//! typed as the `ApiError` whose variant becomes the answer's HTTP status.

use std::sync::Arc;

use app::backend::{BoxFuture, VideoBackend};
use app::error::ApiError;
use investigator_core::types::{
    FastSeeking, FrameJpeg, IndexStatus, ModelChoice, ScoreSeries, SearchHit, VideoInfo,
};

use engine::evaluation::{evaluate_services, prompts_to_evaluate, EvaluationError};
use engine::explain::{ExplainError, Explanations};
use engine::indexing::IndexService;
use engine::labels::LabelFileError;
use engine::library::{AdaptWebError, Library, LibraryError, LibrarySearchError, Session};
use engine::search::{self, SearchError};
use engine::video::VideoError;
use investigator_core::adapt::{AdaptRequest, AdaptStatus, AdapterInfo};
use investigator_core::evaluation::Evaluation;
use investigator_core::explain::Explanation;
use investigator_core::labels::{LabelEdit, LabelsAnswer};
use investigator_core::library_search::{LibraryAnswer, LibraryQuery};

/// The library as the app's server functions see it.
pub struct LibraryBackend {
    pub library: Arc<Library>,
    /// The config's `CLIP:` prompts.
    pub prompts: Vec<String>,
    /// Heatmaps: cached, computed one at a time.
    pub explanations: Arc<Explanations>,
}

/// Runs `work` with the session of `video` on tokio's blocking pool.
fn with_session<T: Send + 'static>(
    library: &Arc<Library>,
    video: String,
    what: &'static str,
    work: impl FnOnce(Arc<Session>) -> Result<T, ApiError> + Send + 'static,
) -> BoxFuture<Result<T, ApiError>> {
    let library = Arc::clone(library);
    Box::pin(async move {
        tokio::task::spawn_blocking(move || work(library.session(&video).map_err(library_error)?))
            .await
            .map_err(|e| ApiError::Internal(format!("{what} failed: {e}")))?
    })
}

/// Runs `work` with the session of `video` and its index by `model` on tokio's blocking pool.
fn with_index<T: Send + 'static>(
    library: &Arc<Library>,
    video: String,
    model: Option<String>,
    what: &'static str,
    work: impl FnOnce(Arc<Session>, Arc<IndexService>) -> Result<T, ApiError> + Send + 'static,
) -> BoxFuture<Result<T, ApiError>> {
    let library_for_index = Arc::clone(library);
    with_session(library, video, what, move |session| {
        let index = library_for_index
            .index(&session, model.as_deref())
            .map_err(library_error)?;
        work(session, index)
    })
}

/// Whose fault a library error is: the id's (400, 404) or the video's (503).
fn library_error(error: LibraryError) -> ApiError {
    match error {
        LibraryError::NotAnId => ApiError::BadArgument(error.to_string()),
        LibraryError::NoSuchModel(_) => ApiError::BadArgument(error.to_string()),
        LibraryError::NoSuchVideo(_) => ApiError::NoSuchVideo(error.to_string()),
        LibraryError::CannotOpen(message) => ApiError::Unavailable(message),
    }
}

/// A frame out of range is the request's fault; anything else the video's or ours.
fn video_error(error: VideoError) -> ApiError {
    match error {
        VideoError::OutOfRange { .. } => ApiError::BadArgument(error.public()),
        VideoError::Unavailable(message) => ApiError::Unavailable(message),
        other => ApiError::Internal(other.public()),
    }
}

/// No model yet is "unavailable"; an image that is not one is the request's fault.
fn search_error(error: SearchError) -> ApiError {
    match error {
        SearchError::NotReady(not_ready) => ApiError::Unavailable(not_ready.0),
        SearchError::NotAnImage => ApiError::BadArgument(error.to_string()),
        SearchError::Embed(error) => ApiError::Internal(error.to_string()),
    }
}

/// A refused edit or import is the request's fault; a file that cannot be written, ours.
fn label_error(error: LabelFileError) -> ApiError {
    if error.is_bad_request() {
        ApiError::BadArgument(error.public())
    } else {
        ApiError::Internal(error.public())
    }
}

/// A model still loading or a video not indexed is "not now"; labels that cannot be adapted
/// (too few segments, one class) are the request's fault; a file that cannot be written, ours.
fn adapt_error(error: AdaptWebError) -> ApiError {
    match error {
        AdaptWebError::Library(error) => library_error(error),
        AdaptWebError::NotReady(message) => ApiError::Unavailable(message),
        AdaptWebError::Adapt(error) if error.is_bad_request() => {
            ApiError::BadArgument(error.to_string())
        }
        AdaptWebError::Adapt(error) => ApiError::Internal(error.to_string()),
        AdaptWebError::File(error) => ApiError::Internal(error.public()),
        AdaptWebError::Labels(message) => ApiError::BadArgument(message),
    }
}

/// Runs `work` on tokio's blocking pool.
fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> BoxFuture<Result<T, ApiError>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::Internal(format!("{what} failed: {e}")))?
    })
}

/// A model still loading, or a video not indexed yet, is "not now"; a failed text pass, ours.
fn evaluation_error(error: EvaluationError) -> ApiError {
    match error {
        EvaluationError::NotReady(not_ready) => ApiError::Unavailable(not_ready.0),
        EvaluationError::NotIndexed(_) => ApiError::Unavailable(error.to_string()),
        EvaluationError::Embed(_) => ApiError::Internal(error.to_string()),
    }
}

/// A prompt, frame, model or layer the request named is its fault; a model still loading, or
/// too many heatmaps at once, "not now"; anything else ours.
fn explain_error(error: ExplainError) -> ApiError {
    match error {
        _ if error.is_bad_request() => ApiError::BadArgument(match error {
            ExplainError::Video(video) => video.public(),
            other => other.to_string(),
        }),
        ExplainError::NotReady(not_ready) => ApiError::Unavailable(not_ready.0),
        ExplainError::Busy(_) => ApiError::Unavailable(error.to_string()),
        ExplainError::Video(video) => video_error(video),
        ExplainError::Embed(_) | ExplainError::EmptyPrompt => ApiError::Internal(error.to_string()),
    }
}

/// A query, id or model the request named is its fault; a model that cannot load, "not now".
fn library_search_error(error: LibrarySearchError) -> ApiError {
    match error {
        LibrarySearchError::Library(library) => library_error(library),
        LibrarySearchError::Video(video) => video_error(video),
        _ if error.is_bad_request() => ApiError::BadArgument(error.to_string()),
        LibrarySearchError::NoModel(_) => ApiError::Unavailable(error.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

impl VideoBackend for LibraryBackend {
    fn library(&self) -> BoxFuture<Result<investigator_core::types::Library, ApiError>> {
        let library = Arc::clone(&self.library);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || investigator_core::types::Library {
                videos: library.list(),
                max_upload_bytes: library.upload_target().map(|(_, limit)| limit),
                index_library: library.indexes_library(),
            })
            .await
            .map_err(|e| ApiError::Internal(format!("listing the videos failed: {e}")))
        })
    }

    fn default_video(&self) -> String {
        self.library.default_id().to_string()
    }

    fn info(&self, video: String) -> BoxFuture<Result<VideoInfo, ApiError>> {
        let library = Arc::clone(&self.library);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || library.info(&video).map_err(library_error))
                .await
                .map_err(|e| ApiError::Internal(format!("opening the video failed: {e}")))?
        })
    }

    fn models(&self) -> Vec<ModelChoice> {
        self.library.model_choices()
    }

    fn index_status(
        &self,
        video: String,
        model: Option<String>,
    ) -> BoxFuture<Result<IndexStatus, ApiError>> {
        with_index(
            &self.library,
            video,
            model,
            "reading the index status",
            |session, index| {
                let mut status = index.status();
                status.fast_seeking = session
                    .frames
                    .fast_seeking()
                    .map(|(frames, of)| FastSeeking { frames, of });
                Ok(status)
            },
        )
    }

    fn look_at(
        &self,
        video: String,
        model: Option<String>,
        from: u64,
        to: u64,
    ) -> BoxFuture<Result<(), ApiError>> {
        with_index(
            &self.library,
            video,
            model,
            "noting where the viewer looks",
            move |_, index| {
                index.look_at(from..=to);
                Ok(())
            },
        )
    }

    fn scores(
        &self,
        video: String,
        model: Option<String>,
        prompts: Vec<String>,
        adapters: Vec<String>,
    ) -> BoxFuture<Result<ScoreSeries, ApiError>> {
        let library = Arc::clone(&self.library);
        let id = video.clone();
        with_index(
            &self.library,
            video,
            model.clone(),
            "scoring",
            move |_, index| {
                if adapters.is_empty() {
                    return search::scores_blocking(&index, &prompts).map_err(search_error);
                }
                let place = library
                    .model_place_of(model.as_deref())
                    .map_err(library_error)?;
                let key = index
                    .ready_embedder()
                    .map(|e| store::cache::ModelKey::from(&e.identity()))
                    .map_err(|e| ApiError::Unavailable(e.0))?;
                let (mut series, adapted) =
                    search::scores_blocking_with(&index, &prompts, |file| {
                        library.adapted_scores(&id, place, &key, file, &adapters)
                    })
                    .map_err(search_error)?;
                series.adapted = adapted.unwrap_or_default();
                Ok(series)
            },
        )
    }

    fn adapt(
        &self,
        video: String,
        model: Option<String>,
        request: AdaptRequest,
    ) -> BoxFuture<Result<AdaptStatus, ApiError>> {
        let library = Arc::clone(&self.library);
        blocking("adapting a prompt", move || {
            library
                .adapt_start(&video, model.as_deref(), request)
                .map_err(adapt_error)
        })
    }

    fn adapt_status(
        &self,
        video: String,
        model: Option<String>,
        prompt: String,
    ) -> BoxFuture<Result<AdaptStatus, ApiError>> {
        let library = Arc::clone(&self.library);
        blocking("reading an adapt job", move || {
            library
                .adapt_status(&video, model.as_deref(), &prompt)
                .map_err(adapt_error)
        })
    }

    fn adapters(
        &self,
        video: String,
        model: Option<String>,
    ) -> BoxFuture<Result<Vec<AdapterInfo>, ApiError>> {
        let library = Arc::clone(&self.library);
        blocking("listing adapters", move || {
            library
                .adapters(&video, model.as_deref())
                .map_err(adapt_error)
        })
    }

    fn search(
        &self,
        video: String,
        model: Option<String>,
        text: Option<String>,
        image: Option<Vec<u8>>,
        top: usize,
    ) -> BoxFuture<Result<Vec<SearchHit>, ApiError>> {
        with_index(&self.library, video, model, "search", move |s, index| {
            let fps = s.frames.video().map_or(0.0, |v| v.metadata().fps);
            search::search_blocking(&index, text.as_deref(), image.as_deref(), top, fps)
                .map_err(search_error)
        })
    }

    fn default_prompts(&self) -> Vec<String> {
        self.prompts.clone()
    }

    fn frame_jpeg(
        &self,
        video: String,
        viewer: String,
        frame: u64,
    ) -> BoxFuture<Result<FrameJpeg, ApiError>> {
        let library = Arc::clone(&self.library);
        with_session(&self.library, video, "decoding a frame", move |s| {
            // The same viewer on another video is another decoder.
            let jpeg = s.frames.frame_jpeg_blocking(&viewer, frame);
            library.enforce_decoder_budget();
            let jpeg = jpeg.map_err(video_error)?;
            Ok(FrameJpeg {
                frame,
                jpeg: jpeg.as_ref().clone(),
            })
        })
    }

    fn labels(&self, video: String) -> BoxFuture<Result<LabelsAnswer, ApiError>> {
        let library = Arc::clone(&self.library);
        with_session(&self.library, video, "reading the labels", move |session| {
            let (store, frames) = library.labels(&session).map_err(library_error)?;
            Ok(LabelsAnswer {
                labels: store.load(frames).map_err(label_error)?,
                notes: Vec::new(),
            })
        })
    }

    fn edit_labels(
        &self,
        video: String,
        edit: LabelEdit,
    ) -> BoxFuture<Result<LabelsAnswer, ApiError>> {
        let library = Arc::clone(&self.library);
        let id = video.clone();
        with_session(
            &self.library,
            video,
            "changing the labels",
            move |session| {
                let (store, frames) = library.labels(&session).map_err(library_error)?;
                let changed = match edit {
                    LabelEdit::Add(segment) => store.add(frames, segment),
                    LabelEdit::Replace { old, new } => store.replace(frames, &old, new),
                    LabelEdit::Import { csv, replace } => {
                        let video = session
                            .frames
                            .video()
                            .map_err(|e| ApiError::Unavailable(e.public()))?;
                        store.import(csv.as_bytes(), video.frame_index(), None, replace)
                    }
                }
                .map_err(label_error)?;
                // Adapters trained on the old labels retrain in the background.
                library.retrain_stale(&id);
                Ok(LabelsAnswer {
                    labels: changed.labels,
                    notes: changed.notes,
                })
            },
        )
    }

    fn evaluate(
        &self,
        video: String,
        models: Vec<Option<String>>,
        prompts: Vec<String>,
    ) -> BoxFuture<Result<Evaluation, ApiError>> {
        let library = Arc::clone(&self.library);
        with_session(&self.library, video, "evaluating", move |session| {
            let (store, frames) = library.labels(&session).map_err(library_error)?;
            let labels = store.load(frames).map_err(label_error)?;
            let prompts = prompts_to_evaluate(&labels, &prompts);
            if prompts.is_empty() {
                return Err(ApiError::BadArgument(
                    "this video has no labels yet: Shift-drag across the chart and Label a span (or Import CSV), then Evaluate".into(),
                ));
            }
            let services = models
                .iter()
                .map(|m| library.index(&session, m.as_deref()).map_err(library_error))
                .collect::<Result<Vec<_>, _>>()?;
            let services: Vec<&IndexService> = services.iter().map(Arc::as_ref).collect();
            evaluate_services(&services, &prompts, &labels).map_err(evaluation_error)
        })
    }

    fn explain(
        &self,
        video: String,
        model: Option<String>,
        frame: u64,
        prompt: String,
        start_layer: Option<u32>,
    ) -> BoxFuture<Result<Explanation, ApiError>> {
        let explanations = Arc::clone(&self.explanations);
        with_index(
            &self.library,
            video,
            model,
            "explaining a score",
            move |session, index| {
                explanations
                    .explain_blocking(
                        &session.frames,
                        &index,
                        frame,
                        &prompt,
                        start_layer.map(|l| l as usize),
                    )
                    .map(|e| e.as_ref().clone())
                    .map_err(explain_error)
            },
        )
    }

    fn search_library(&self, query: LibraryQuery) -> BoxFuture<Result<LibraryAnswer, ApiError>> {
        let library = Arc::clone(&self.library);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                library.search_library(&query).map_err(library_search_error)
            })
            .await
            .map_err(|e| ApiError::Internal(format!("the library search failed: {e}")))?
        })
    }

    fn set_index_library(&self, on: bool) -> bool {
        self.library.set_index_library(on);
        self.library.indexes_library()
    }

    fn thumbnail(&self, video: String, frame: u64) -> BoxFuture<Result<FrameJpeg, ApiError>> {
        let library = Arc::clone(&self.library);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                library
                    .thumbnail(&video, frame, 320)
                    .map(|jpeg| FrameJpeg { frame, jpeg })
                    .map_err(library_search_error)
            })
            .await
            .map_err(|e| ApiError::Internal(format!("a thumbnail failed: {e}")))?
        })
    }
}
