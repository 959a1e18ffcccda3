//! Server functions: thin wrappers that check their arguments and call the backend. Every one
//! answers [`ApiError`], whose variant sets the HTTP status.

use leptos::prelude::*;
use leptos::server_fn::codec::{Json, Postcard};

pub use crate::error::ApiError;
use investigator_core::adapt::{AdaptRequest, AdaptStatus, AdapterInfo};
use investigator_core::evaluation::Evaluation;
use investigator_core::explain::Explanation;
use investigator_core::labels::{LabelEdit, LabelsAnswer};
use investigator_core::library_search::{LibraryAnswer, LibraryQuery};
#[cfg(feature = "ssr")]
use investigator_core::requests::{
    check_look_span, check_prompts, MAX_SEARCH_IMAGE_BYTES, MAX_SEARCH_RESULTS, NOT_A_VIDEO_ID,
};
use investigator_core::types::{
    FrameJpeg, IndexStatus, Library, ModelChoice, ScoreSeries, SearchHit, VideoInfo,
};

#[cfg(feature = "ssr")]
fn backend() -> Result<std::sync::Arc<dyn crate::backend::VideoBackend>, ApiError> {
    use_context::<crate::backend::Backend>()
        .map(|b| b.0)
        .ok_or_else(|| ApiError::Internal("the server was started without a video backend".into()))
}

/// A server function's answer: an error sets the HTTP status before it is sent.
#[cfg(feature = "ssr")]
fn answer<T>(result: Result<T, ApiError>) -> Result<T, ApiError> {
    if let Err(error) = &result {
        error.set_response_status();
    }
    result
}

/// A refused argument: the answer's status is 400.
pub fn bad_argument(message: impl Into<String>) -> ApiError {
    ApiError::BadArgument(message.into())
}

/// The message of an error for the page.
pub fn error_text(error: &ApiError) -> String {
    error.message().to_string()
}

/// The id, or why it is not one: ids come from the server's own list, never paths.
#[cfg(feature = "ssr")]
fn check_video_id(video: &str) -> Result<(), ApiError> {
    if investigator_core::types::is_valid_video_id(video) {
        Ok(())
    } else {
        Err(bad_argument(NOT_A_VIDEO_ID))
    }
}

/// The model id, or why it is not one: ids come from the server's own list of models.
#[cfg(feature = "ssr")]
fn check_model_id(model: &Option<String>) -> Result<(), ApiError> {
    match model {
        Some(id) if !investigator_core::types::is_valid_model_id(id) => Err(bad_argument(
            "not a model id: pick a model from the list the page shows",
        )),
        _ => Ok(()),
    }
}

/// The models the page may pick, the default first.
#[server(endpoint = "models")]
pub async fn get_models() -> Result<Vec<ModelChoice>, ApiError> {
    answer(backend().map(|b| b.models()))
}

/// The videos of the library.
#[server(endpoint = "library")]
pub async fn get_library() -> Result<Library, ApiError> {
    answer(async { backend()?.library().await }.await)
}

/// Metadata of a video (`None`: the config's `video_path`).
#[server(endpoint = "video_info")]
pub async fn get_video_info(video: Option<String>) -> Result<VideoInfo, ApiError> {
    answer(
        async {
            let backend = backend()?;
            let video = video.unwrap_or_else(|| backend.default_video());
            check_video_id(&video)?;
            backend.info(video).await
        }
        .await,
    )
}

/// Exactly frame `frame` as JPEG, from this viewer's (tab's) own decoder.
#[server(endpoint = "frame", output = Postcard)]
pub async fn get_frame(video: String, viewer: String, frame: u64) -> Result<FrameJpeg, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            if !investigator_core::types::is_valid_viewer_id(&viewer) {
                return Err(bad_argument(
                    "viewer must be 8 to 64 letters, digits or dashes",
                ));
            }
            backend()?.frame_jpeg(video, viewer, frame).await
        }
        .await,
    )
}

/// How far embedding the video with `model` (`None`: the default) has come.
#[server(endpoint = "index_status")]
pub async fn get_index_status(
    video: String,
    model: Option<String>,
) -> Result<IndexStatus, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_model_id(&model)?;
            backend()?.index_status(video, model).await
        }
        .await,
    )
}

/// Where the viewer looks (its chart's zoom window, or around its playhead): a coarse-to-fine
/// index embeds those frames before it goes on. The most recent viewer to move wins.
#[server(endpoint = "look_at")]
pub async fn look_at(
    video: String,
    model: Option<String>,
    from: u64,
    to: u64,
) -> Result<(), ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_model_id(&model)?;
            check_look_span(from, to)?;
            backend()?.look_at(video, model, from, to).await
        }
        .await,
    )
}

/// Cosine scores of every frame `model` has indexed, for each prompt.
#[server(endpoint = "scores", input = Json, output = Postcard)]
pub async fn get_scores(
    video: String,
    model: Option<String>,
    prompts: Vec<String>,
    /// Stored adapters whose scores to add (their ids), for the chart's adapted curves.
    #[server(default)]
    adapters: Vec<String>,
) -> Result<ScoreSeries, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_model_id(&model)?;
            check_prompts(&prompts)?;
            check_adapter_ids(&adapters)?;
            backend()?.scores(video, model, prompts, adapters).await
        }
        .await,
    )
}

/// Adapter ids come from the server's own answers (16 hex digits), never paths; a page asks
/// for a few at most.
#[cfg(feature = "ssr")]
fn check_adapter_ids(ids: &[String]) -> Result<(), ApiError> {
    if ids.len() > investigator_core::requests::MAX_PROMPTS {
        return Err(bad_argument(format!(
            "at most {} adapted prompts at once",
            investigator_core::requests::MAX_PROMPTS
        )));
    }
    match ids
        .iter()
        .find(|id| !investigator_core::adapt::is_adapter_id(id))
    {
        Some(bad) => Err(bad_argument(format!(
            "{:?} is not an adapter id: adapt the prompt in the Evaluate panel",
            bad.chars().take(40).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// The moments most like a text, an uploaded image, or both.
#[server(endpoint = "search", input = Postcard, output = Postcard)]
pub async fn search_frames(
    video: String,
    model: Option<String>,
    text: Option<String>,
    image: Option<Vec<u8>>,
    top: usize,
) -> Result<Vec<SearchHit>, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_model_id(&model)?;
            let text = text.filter(|t| !t.trim().is_empty());
            if text.is_none() && image.is_none() {
                return Err(bad_argument("type a text or choose an image to search for"));
            }
            if let Some(text) = &text {
                check_prompts(std::slice::from_ref(text))?;
            }
            if image
                .as_ref()
                .is_some_and(|i| i.len() > MAX_SEARCH_IMAGE_BYTES)
            {
                return Err(bad_argument(format!(
                    "the image is larger than {} MB",
                    MAX_SEARCH_IMAGE_BYTES / (1024 * 1024)
                )));
            }
            if top == 0 || top > MAX_SEARCH_RESULTS {
                return Err(bad_argument(format!(
                    "ask for 1 to {MAX_SEARCH_RESULTS} results"
                )));
            }
            backend()?.search(video, model, text, image, top).await
        }
        .await,
    )
}

/// The config file's prompts.
#[server(endpoint = "prompts")]
pub async fn get_default_prompts() -> Result<Vec<String>, ApiError> {
    answer(backend().map(|b| b.default_prompts()))
}

/// The video's ground-truth labels.
#[server(endpoint = "labels")]
pub async fn get_labels(video: String) -> Result<LabelsAnswer, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            backend()?.labels(video).await
        }
        .await,
    )
}

/// One change to the video's labels (a new segment, one removed or adjusted, or a CSV merged
/// in); the answer is the labels as they now are.
#[server(endpoint = "edit_labels", input = Json)]
pub async fn edit_labels(video: String, edit: LabelEdit) -> Result<LabelsAnswer, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_label_edit(&edit)?;
            backend()?.edit_labels(video, edit).await
        }
        .await,
    )
}

/// What an edit may carry: a prompt like any prompt, a CSV no larger than a label file.
#[cfg(feature = "ssr")]
fn check_label_edit(edit: &LabelEdit) -> Result<(), ApiError> {
    let prompt = |segment: &investigator_core::labels::Segment| {
        check_prompts(std::slice::from_ref(&segment.prompt))
    };
    match edit {
        LabelEdit::Add(segment) => prompt(segment)?,
        LabelEdit::Replace { old, new } => {
            prompt(old)?;
            if let Some(new) = new {
                prompt(new)?;
            }
        }
        LabelEdit::Import { csv, .. } => {
            if csv.len() > investigator_core::labels::MAX_LABEL_FILE_BYTES {
                return Err(bad_argument(format!(
                    "the label file is {} bytes; at most {}",
                    csv.len(),
                    investigator_core::labels::MAX_LABEL_FILE_BYTES
                )));
            }
        }
    }
    Ok(())
}

/// Each model's scores held against the labels: `model` (the default when `None`) and, when
/// given, `compare`; the labelled `prompts` (all of them when empty).
#[server(endpoint = "evaluate", input = Json)]
pub async fn evaluate(
    video: String,
    model: Option<String>,
    compare: Option<String>,
    prompts: Vec<String>,
) -> Result<Evaluation, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_model_id(&model)?;
            check_model_id(&compare)?;
            check_prompts(&prompts)?;
            let mut models = vec![model];
            if compare.is_some() {
                models.push(compare);
            }
            backend()?.evaluate(video, models, prompts).await
        }
        .await,
    )
}

/// Starts adapting `request.prompt` from this video's labels with `model` (`None`: the
/// default) in the background, or answers how far the job running for it is.
#[server(endpoint = "adapt", input = Json)]
pub async fn adapt(
    video: String,
    model: Option<String>,
    request: AdaptRequest,
) -> Result<AdaptStatus, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_model_id(&model)?;
            check_prompts(std::slice::from_ref(&request.prompt))?;
            if let Some(folds) = request.folds {
                if !(2..=investigator_core::adapt::MAX_FOLDS).contains(&folds) {
                    return Err(bad_argument(format!(
                        "folds must be from 2 to {}",
                        investigator_core::adapt::MAX_FOLDS
                    )));
                }
            }
            if request.hold_out_video.is_some() {
                return Err(bad_argument(
                    "the page adapts on this video's folds; hold a video out with `clip-investigator adapt --hold-out-video`",
                ));
            }
            backend()?.adapt(video, model, request).await
        }
        .await,
    )
}

/// How far adapting `prompt` on `video` with `model` has come (or its stored adapter).
#[server(endpoint = "adapt_status", input = Json)]
pub async fn get_adapt_status(
    video: String,
    model: Option<String>,
    prompt: String,
) -> Result<AdaptStatus, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_model_id(&model)?;
            check_prompts(std::slice::from_ref(&prompt))?;
            backend()?.adapt_status(video, model, prompt).await
        }
        .await,
    )
}

/// The adapters stored for `video` and `model`, each with whether its labels changed since.
#[server(endpoint = "adapters", input = Json)]
pub async fn get_adapters(
    video: String,
    model: Option<String>,
) -> Result<Vec<AdapterInfo>, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_model_id(&model)?;
            backend()?.adapters(video, model).await
        }
        .await,
    )
}

/// Why frame `frame` scores as it does for `prompt` under `model` (`None`: the default): each
/// patch's relevance from vision layer `start_layer` on (`None`: the last), and the part of
/// the frame the model sees. One forward and one backward pass, cached on the server.
#[server(endpoint = "explain", input = Json, output = Postcard)]
pub async fn explain(
    video: String,
    model: Option<String>,
    frame: u64,
    prompt: String,
    start_layer: Option<u32>,
) -> Result<Explanation, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_model_id(&model)?;
            check_prompts(std::slice::from_ref(&prompt))?;
            backend()?
                .explain(video, model, frame, prompt, start_layer)
                .await
        }
        .await,
    )
}

/// The best moments across the library (`/search`): text, an image, or both; filters.
#[server(endpoint = "search_library", input = Postcard, output = Postcard)]
pub async fn search_library(query: LibraryQuery) -> Result<LibraryAnswer, ApiError> {
    answer(
        async move {
            if let Some(text) = &query.text {
                if !text.trim().is_empty() {
                    check_prompts(std::slice::from_ref(text))?;
                }
            }
            if query
                .image
                .as_ref()
                .is_some_and(|i| i.len() > MAX_SEARCH_IMAGE_BYTES)
            {
                return Err(bad_argument(format!(
                    "the image is larger than {} MB",
                    MAX_SEARCH_IMAGE_BYTES >> 20
                )));
            }
            for video in &query.videos {
                check_video_id(video)?;
            }
            check_model_id(&query.model)?;
            if !query.min_len_s.is_finite() || query.min_len_s < 0.0 {
                return Err(bad_argument("the minimum length must be 0 or more seconds"));
            }
            if query.min_score.is_some_and(|s| !s.is_finite()) {
                return Err(bad_argument("the minimum score must be a number"));
            }
            backend()?.search_library(query).await
        }
        .await,
    )
}

/// Starts or stops indexing every video of the library in the background (the Videos page's
/// switch); answers the new state.
#[server(endpoint = "index_library")]
pub async fn set_index_library(on: bool) -> Result<bool, ApiError> {
    answer(backend().map(|b| b.set_index_library(on)))
}

/// A search result's thumbnail: frame `frame` of `video`, small.
#[server(endpoint = "thumbnail", output = Postcard)]
pub async fn get_thumbnail(video: String, frame: u64) -> Result<FrameJpeg, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            backend()?.thumbnail(video, frame).await
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use leptos::server_fn::ServerFn;

    use super::*;
    use investigator_core::routes::API_PREFIX;

    /// No server function names a prefix: they all take Leptos's default, which must be the
    /// one `investigator_core::routes` names (the router and the status code rely on it).
    #[test]
    fn every_server_function_is_under_the_api_prefix() {
        let paths = [
            <GetModels as ServerFn>::PATH,
            <GetLibrary as ServerFn>::PATH,
            <GetVideoInfo as ServerFn>::PATH,
            <GetFrame as ServerFn>::PATH,
            <GetIndexStatus as ServerFn>::PATH,
            <LookAt as ServerFn>::PATH,
            <GetScores as ServerFn>::PATH,
            <SearchFrames as ServerFn>::PATH,
            <GetDefaultPrompts as ServerFn>::PATH,
            <GetLabels as ServerFn>::PATH,
            <EditLabels as ServerFn>::PATH,
            <Evaluate as ServerFn>::PATH,
            <Explain as ServerFn>::PATH,
            <SearchLibrary as ServerFn>::PATH,
            <GetThumbnail as ServerFn>::PATH,
            <SetIndexLibrary as ServerFn>::PATH,
            <Adapt as ServerFn>::PATH,
            <GetAdaptStatus as ServerFn>::PATH,
            <GetAdapters as ServerFn>::PATH,
        ];
        for path in paths {
            assert!(path.starts_with(API_PREFIX), "{path}");
        }
        assert_eq!(<GetScores as ServerFn>::PATH, "/api/scores");
    }
}
