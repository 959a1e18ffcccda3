//! Server functions: thin wrappers that check their arguments and call the backend.

use leptos::prelude::*;
use leptos::server_fn::codec::{Json, Postcard};

use crate::types::{FrameJpeg, IndexStatus, Library, ScoreSeries, SearchHit, VideoInfo};

#[cfg(feature = "ssr")]
fn backend() -> Result<crate::backend::Backend, ServerFnError> {
    use_context::<crate::backend::Backend>()
        .ok_or_else(|| ServerFnError::new("the server was started without a video backend"))
}

/// Uploads are a plain POST of the file as the body (`?name=FILE`), streamed to disk by the
/// server: server functions would decode the whole body in memory.
pub const UPLOAD_URL: &str = "/api/upload";

/// Start of the message for a well-formed id that names no video in the library.
pub const NO_SUCH_VIDEO: &str = "there is no video ";
/// The message for anything else given as a video id.
pub const NOT_A_VIDEO_ID: &str = "not a video id: open the list of videos and choose one";

/// A refused argument: the answer's status is 400 (see [`error_status`]).
pub fn bad_argument(message: impl Into<String>) -> ServerFnError {
    ServerFnError::Args(message.into())
}

/// The HTTP status for a server function's error answer (`Kind|message`, as server_fn writes
/// it; server_fn itself answers 500 to everything): arguments that could not be decoded or were
/// refused 400, an id that names no video 404, anything else 500.
pub fn error_status(body: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(&body[..body.len().min(256)]);
    let (kind, message) = text.split_once('|').unwrap_or(("", &text));
    match kind {
        // On the server, deserializing only ever reads the request.
        "Args" | "MissingArg" | "Deserialization" => 400,
        "ServerError" if message.starts_with(NO_SUCH_VIDEO) => 404,
        "ServerError" if message.starts_with(NOT_A_VIDEO_ID) => 400,
        "ServerError" if message.contains(" is out of range: the video has ") => 400,
        _ => 500,
    }
}

/// The message of an error for the page, without server_fn's framing.
pub fn error_text(error: &ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) | ServerFnError::Args(message) => message.clone(),
        other => other.to_string(),
    }
}

/// The id, or why it is not one: ids come from the server's own list, never paths.
#[cfg(feature = "ssr")]
fn check_video_id(video: &str) -> Result<(), ServerFnError> {
    if crate::types::is_valid_video_id(video) {
        Ok(())
    } else {
        Err(bad_argument(NOT_A_VIDEO_ID))
    }
}

/// The videos of the library.
#[server(prefix = "/api", endpoint = "library")]
pub async fn get_library() -> Result<Library, ServerFnError> {
    backend()?.0.library().await.map_err(ServerFnError::new)
}

/// Metadata of a video (`None`: the config's `video_path`).
#[server(prefix = "/api", endpoint = "video_info")]
pub async fn get_video_info(video: Option<String>) -> Result<VideoInfo, ServerFnError> {
    let backend = backend()?.0;
    let video = video.unwrap_or_else(|| backend.default_video());
    check_video_id(&video)?;
    backend.info(video).await.map_err(ServerFnError::new)
}

/// Exactly frame `frame` as JPEG, from this viewer's (tab's) own decoder.
#[server(prefix = "/api", endpoint = "frame", output = Postcard)]
pub async fn get_frame(
    video: String,
    viewer: String,
    frame: u64,
) -> Result<FrameJpeg, ServerFnError> {
    check_video_id(&video)?;
    if !crate::types::is_valid_viewer_id(&viewer) {
        return Err(bad_argument(
            "viewer must be 8 to 64 letters, digits or dashes",
        ));
    }
    backend()?
        .0
        .frame_jpeg(video, viewer, frame)
        .await
        .map_err(ServerFnError::new)
}

/// How far embedding the video has come.
#[server(prefix = "/api", endpoint = "index_status")]
pub async fn get_index_status(video: String) -> Result<IndexStatus, ServerFnError> {
    check_video_id(&video)?;
    backend()?
        .0
        .index_status(video)
        .await
        .map_err(ServerFnError::new)
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
pub async fn get_scores(video: String, prompts: Vec<String>) -> Result<ScoreSeries, ServerFnError> {
    check_video_id(&video)?;
    check_prompts(&prompts).map_err(bad_argument)?;
    backend()?
        .0
        .scores(video, prompts)
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
    video: String,
    text: Option<String>,
    image: Option<Vec<u8>>,
    top: usize,
) -> Result<Vec<SearchHit>, ServerFnError> {
    check_video_id(&video)?;
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
    backend()?
        .0
        .search(video, text, image, top)
        .await
        .map_err(ServerFnError::new)
}

/// The config file's prompts.
#[server(prefix = "/api", endpoint = "prompts")]
pub async fn get_default_prompts() -> Result<Vec<String>, ServerFnError> {
    Ok(backend()?.0.default_prompts())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_arguments_are_the_clients_fault_and_server_failures_ours() {
        assert_eq!(error_status(b"Args|missing field `frame`"), 400);
        assert_eq!(error_status(b"MissingArg|viewer"), 400);
        assert_eq!(
            error_status(format!("ServerError|{NOT_A_VIDEO_ID}").as_bytes()),
            400
        );
        assert_eq!(
            error_status(format!("ServerError|{NO_SUCH_VIDEO}0123456789abcdef in").as_bytes()),
            404
        );
        assert_eq!(
            error_status(b"ServerError|frame 900 is out of range: the video has 300 frames"),
            400
        );
        assert_eq!(error_status(b"ServerError|frame 3 cannot be decoded"), 500);
        assert_eq!(error_status(b"Deserialization|EOF while parsing"), 400);
        assert_eq!(error_status(b"Serialization|cannot write"), 500);
        assert_eq!(error_status(b"\xff\xfe"), 500);
        assert_eq!(
            error_text(&bad_argument("prompt 1 is empty")),
            "prompt 1 is empty"
        );
    }
}
