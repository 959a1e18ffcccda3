//! Server functions: thin wrappers that check their arguments and call the backend. Every one
//! answers [`ApiError`], whose variant sets the HTTP status.

use leptos::prelude::*;
use leptos::server_fn::codec::{Json, Postcard};

pub use crate::error::ApiError;
use crate::types::{
    FrameJpeg, IndexStatus, Library, ModelChoice, ScoreSeries, SearchHit, VideoInfo,
};

/// Where the server functions are mounted.
pub const PREFIX: &str = "/api/";

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

/// Uploads are a plain POST of the file as the body (`?name=FILE`), streamed to disk by the
/// server: server functions would decode the whole body in memory.
pub const UPLOAD_URL: &str = "/api/upload";
/// `POST ?video=ID&viewer=V&from=F&to=T`: frames F..=T as an MP4 download.
pub const CLIP_URL: &str = "/api/clip";
/// `GET ?viewer=V`: that viewer's clip export, as [`crate::types::ClipProgress`] JSON.
pub const CLIP_PROGRESS_URL: &str = "/api/clip_progress";

/// The message for anything given as a video id that is not one.
pub const NOT_A_VIDEO_ID: &str = "not a video id: open the list of videos and choose one";

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
    if crate::types::is_valid_video_id(video) {
        Ok(())
    } else {
        Err(bad_argument(NOT_A_VIDEO_ID))
    }
}

/// The model id, or why it is not one: ids come from the server's own list of models.
#[cfg(feature = "ssr")]
fn check_model_id(model: &Option<String>) -> Result<(), ApiError> {
    match model {
        Some(id) if !crate::types::is_valid_model_id(id) => Err(bad_argument(
            "not a model id: pick a model from the list the page shows",
        )),
        _ => Ok(()),
    }
}

/// The models the page may pick, the default first.
#[server(prefix = "/api", endpoint = "models")]
pub async fn get_models() -> Result<Vec<ModelChoice>, ApiError> {
    answer(backend().map(|b| b.models()))
}

/// The videos of the library.
#[server(prefix = "/api", endpoint = "library")]
pub async fn get_library() -> Result<Library, ApiError> {
    answer(async { backend()?.library().await }.await)
}

/// Metadata of a video (`None`: the config's `video_path`).
#[server(prefix = "/api", endpoint = "video_info")]
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
#[server(prefix = "/api", endpoint = "frame", output = Postcard)]
pub async fn get_frame(video: String, viewer: String, frame: u64) -> Result<FrameJpeg, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            if !crate::types::is_valid_viewer_id(&viewer) {
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
#[server(prefix = "/api", endpoint = "index_status")]
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

/// Longest span a viewer may ask to have refined first, in frames (an hour at 30 fps).
pub const MAX_LOOK_FRAMES: u64 = 108_000;

/// A span to refine first: `from..=to`, not backwards, at most [`MAX_LOOK_FRAMES`] frames.
pub fn check_look_span(from: u64, to: u64) -> Result<(), String> {
    if from > to || to - from >= MAX_LOOK_FRAMES {
        return Err(format!(
            "look at frames from..=to with from <= to, at most {MAX_LOOK_FRAMES} frames; got {from}..={to}"
        ));
    }
    Ok(())
}

/// Where the viewer looks (its chart's zoom window, or around its playhead): a coarse-to-fine
/// index embeds those frames before it goes on. The most recent viewer to move wins.
#[server(prefix = "/api", endpoint = "look_at")]
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
            check_look_span(from, to).map_err(bad_argument)?;
            backend()?.look_at(video, model, from, to).await
        }
        .await,
    )
}

/// Most prompts one request may score.
pub const MAX_PROMPTS: usize = 1000;
/// Longest prompt accepted, in characters (CLIP reads 77 tokens; longer ones are cut).
pub const MAX_PROMPT_CHARS: usize = 10_000;

/// Checks a prompt list; the message says which prompt is wrong and why.
pub fn check_prompts(prompts: &[String]) -> Result<(), String> {
    if prompts.len() > MAX_PROMPTS {
        return Err(format!(
            "{} prompts; at most {MAX_PROMPTS} can be scored at once",
            prompts.len()
        ));
    }
    for (i, prompt) in prompts.iter().enumerate() {
        if prompt.trim().is_empty() {
            return Err(format!("prompt {} is empty", i + 1));
        }
        if prompt.chars().count() > MAX_PROMPT_CHARS {
            return Err(format!(
                "prompt {} has {} characters; at most {MAX_PROMPT_CHARS}",
                i + 1,
                prompt.chars().count()
            ));
        }
    }
    Ok(())
}

/// Cosine scores of every frame `model` has indexed, for each prompt.
#[server(prefix = "/api", endpoint = "scores", input = Json, output = Postcard)]
pub async fn get_scores(
    video: String,
    model: Option<String>,
    prompts: Vec<String>,
) -> Result<ScoreSeries, ApiError> {
    answer(
        async move {
            check_video_id(&video)?;
            check_model_id(&model)?;
            check_prompts(&prompts).map_err(bad_argument)?;
            backend()?.scores(video, model, prompts).await
        }
        .await,
    )
}

/// Largest image accepted for search.
pub const MAX_SEARCH_IMAGE_BYTES: usize = 8 * 1024 * 1024;
/// Most results one search returns.
pub const MAX_SEARCH_RESULTS: usize = 100;

/// The moments most like a text, an uploaded image, or both.
#[server(prefix = "/api", endpoint = "search", input = Postcard, output = Postcard)]
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
                check_prompts(std::slice::from_ref(text)).map_err(bad_argument)?;
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
#[server(prefix = "/api", endpoint = "prompts")]
pub async fn get_default_prompts() -> Result<Vec<String>, ApiError> {
    answer(backend().map(|b| b.default_prompts()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_to_refine_first_is_checked() {
        assert!(check_look_span(0, 0).is_ok());
        assert!(check_look_span(100, 700).is_ok());
        assert!(check_look_span(0, MAX_LOOK_FRAMES - 1).is_ok());
        assert!(check_look_span(0, MAX_LOOK_FRAMES).is_err());
        let backwards = check_look_span(9, 3).unwrap_err();
        assert!(backwards.contains("from <= to"), "{backwards}");
        assert!(check_look_span(u64::MAX, u64::MAX).is_ok());
        assert!(check_look_span(0, u64::MAX).is_err());
    }
}
