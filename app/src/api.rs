//! Server functions: thin wrappers that check their arguments and call the backend.

use leptos::prelude::*;
use leptos::server_fn::codec::{Json, Postcard};

use crate::types::{FrameJpeg, IndexStatus, ScoreSeries, SearchHit, VideoInfo};

#[cfg(feature = "ssr")]
fn backend() -> Result<crate::backend::Backend, ServerFnError> {
    use_context::<crate::backend::Backend>()
        .ok_or_else(|| ServerFnError::new("the server was started without a video backend"))
}

/// Metadata of the configured video.
#[server(prefix = "/api", endpoint = "video_info")]
pub async fn get_video_info() -> Result<VideoInfo, ServerFnError> {
    backend()?.0.info().map_err(ServerFnError::new)
}

/// Exactly frame `frame` as JPEG, from this viewer's (tab's) own decoder.
#[server(prefix = "/api", endpoint = "frame", output = Postcard)]
pub async fn get_frame(viewer: String, frame: u64) -> Result<FrameJpeg, ServerFnError> {
    if !crate::types::is_valid_viewer_id(&viewer) {
        return Err(ServerFnError::new(
            "viewer must be 8 to 64 letters, digits or dashes",
        ));
    }
    backend()?
        .0
        .frame_jpeg(viewer, frame)
        .await
        .map_err(ServerFnError::new)
}

/// How far embedding the video has come.
#[server(prefix = "/api", endpoint = "index_status")]
pub async fn get_index_status() -> Result<IndexStatus, ServerFnError> {
    Ok(backend()?.0.index_status())
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

/// Cosine scores of every indexed frame for each prompt.
#[server(prefix = "/api", endpoint = "scores", input = Json, output = Postcard)]
pub async fn get_scores(prompts: Vec<String>) -> Result<ScoreSeries, ServerFnError> {
    check_prompts(&prompts).map_err(ServerFnError::new)?;
    backend()?
        .0
        .scores(prompts)
        .await
        .map_err(ServerFnError::new)
}

/// Largest image accepted for search.
pub const MAX_SEARCH_IMAGE_BYTES: usize = 8 * 1024 * 1024;
/// Most results one search returns.
pub const MAX_SEARCH_RESULTS: usize = 100;

/// The moments most like a text, an uploaded image, or both.
#[server(prefix = "/api", endpoint = "search", input = Postcard, output = Postcard)]
pub async fn search_frames(
    text: Option<String>,
    image: Option<Vec<u8>>,
    top: usize,
) -> Result<Vec<SearchHit>, ServerFnError> {
    let text = text.filter(|t| !t.trim().is_empty());
    if text.is_none() && image.is_none() {
        return Err(ServerFnError::new(
            "type a text or choose an image to search for",
        ));
    }
    if let Some(text) = &text {
        check_prompts(std::slice::from_ref(text)).map_err(ServerFnError::new)?;
    }
    if image
        .as_ref()
        .is_some_and(|i| i.len() > MAX_SEARCH_IMAGE_BYTES)
    {
        return Err(ServerFnError::new(format!(
            "the image is larger than {} MB",
            MAX_SEARCH_IMAGE_BYTES / (1024 * 1024)
        )));
    }
    if top == 0 || top > MAX_SEARCH_RESULTS {
        return Err(ServerFnError::new(format!(
            "ask for 1 to {MAX_SEARCH_RESULTS} results"
        )));
    }
    backend()?
        .0
        .search(text, image, top)
        .await
        .map_err(ServerFnError::new)
}

/// The config file's prompts.
#[server(prefix = "/api", endpoint = "prompts")]
pub async fn get_default_prompts() -> Result<Vec<String>, ServerFnError> {
    Ok(backend()?.0.default_prompts())
}
