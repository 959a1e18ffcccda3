//! Server functions: thin wrappers that check their arguments and call the backend.

use leptos::prelude::*;
use leptos::server_fn::codec::Postcard;

use crate::types::{FrameJpeg, VideoInfo};

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
