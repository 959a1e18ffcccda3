//! Frames as ordinary GETs: `/frame/ID/N.jpg` (one frame, cacheable by the browser) and
//! `/frames/ID/N?count=C` (playback's prefetch: a short stream of frames in one answer).
//!
//! Invariants:
//! - the validator names the content: the video's version (from its content fingerprint), the
//!   frame, the width and the quality, so a 304 is never a stale picture;
//! - an answer is kept for good only when the URL carries the video's current version; a
//!   frame sent smaller under load is never kept;
//! - the guard keeps these GETs from other sites and asks for the token, as for every answer.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use engine::frames::{FrameError, FrameRequest, FrameServer, Priority};
use engine::library::{Library, LibraryError};
use engine::video::VideoError;
use investigator_core::routes::MAX_STREAM_FRAMES;
use investigator_core::types::{is_valid_video_id, is_valid_viewer_id};

#[derive(Deserialize)]
pub struct FrameQuery {
    w: Option<u32>,
    v: Option<String>,
    p: Option<String>,
    viewer: Option<String>,
}

#[derive(Deserialize)]
pub struct StreamQuery {
    count: Option<u64>,
    /// The viewer's playhead when it asked (default: the first frame asked for).
    at: Option<u64>,
    w: Option<u32>,
    viewer: Option<String>,
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.into(),
    )
        .into_response()
}

fn library_refusal(error: LibraryError) -> Response {
    match error {
        LibraryError::NotAnId => text(StatusCode::BAD_REQUEST, error.to_string()),
        LibraryError::NoSuchVideo(_) => text(StatusCode::NOT_FOUND, error.to_string()),
        LibraryError::NoSuchModel(_) => text(StatusCode::BAD_REQUEST, error.to_string()),
        LibraryError::CannotOpen(message) => text(StatusCode::SERVICE_UNAVAILABLE, message),
    }
}

fn frame_refusal(error: FrameError) -> Response {
    match error {
        FrameError::Superseded => text(StatusCode::CONFLICT, error.to_string()),
        FrameError::Busy => {
            let mut response = text(StatusCode::TOO_MANY_REQUESTS, error.to_string());
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        FrameError::Video(e @ VideoError::OutOfRange { .. }) => {
            text(StatusCode::NOT_FOUND, e.public())
        }
        FrameError::Video(VideoError::Unavailable(message)) => {
            text(StatusCode::SERVICE_UNAVAILABLE, message)
        }
        FrameError::Video(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.public()),
    }
}

/// The viewer named in the query, or none (empty) for anonymous requests; `None` if the name
/// is not one.
fn viewer_of(viewer: Option<String>) -> Option<String> {
    match viewer {
        None => Some(String::new()),
        Some(v) if is_valid_viewer_id(&v) => Some(v),
        Some(_) => None,
    }
}

fn bad_viewer() -> Response {
    text(
        StatusCode::BAD_REQUEST,
        "viewer must be 8 to 64 letters, digits or dashes",
    )
}

/// The frame server of `video`, opened off the async workers.
async fn frames_of(library: &Arc<Library>, video: String) -> Result<Arc<FrameServer>, Response> {
    if !is_valid_video_id(&video) {
        return Err(library_refusal(LibraryError::NotAnId));
    }
    let library = Arc::clone(library);
    tokio::task::spawn_blocking(move || library.session(&video).map(|s| Arc::clone(&s.frames)))
        .await
        .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(library_refusal)
}

fn etag(version: &str, frame: u64, width: u32, quality: u8) -> String {
    format!("\"{version}-{frame}-{width}-{quality}\"")
}

fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// `GET /frame/ID/N.jpg`.
pub async fn frame(
    library: Arc<Library>,
    Path((video, file)): Path<(String, String)>,
    Query(query): Query<FrameQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(frame) = file
        .strip_suffix(".jpg")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return text(
            StatusCode::NOT_FOUND,
            "a frame's URL is /frame/ID/N.jpg, N a frame number",
        );
    };
    let named_viewer = query.viewer.is_some();
    let Some(viewer) = viewer_of(query.viewer) else {
        return bad_viewer();
    };
    let priority = match query.p.as_deref() {
        None | Some("seek") => Priority::Seek,
        Some("play") => Priority::Play,
        // Thumbnails (search hits, moments, errors): after playback, never superseding.
        Some("thumb") => Priority::Prefetch,
        Some(_) => return text(StatusCode::BAD_REQUEST, "p must be seek, play or thumb"),
    };
    let frames = match frames_of(&library, video).await {
        Ok(f) => f,
        Err(refusal) => return refusal,
    };
    let library = Arc::clone(&library);
    let answer = tokio::task::spawn_blocking(move || {
        let open = frames
            .video()
            .map_err(|e| FrameError::Video(VideoError::Unavailable(e.public())))?;
        let version = open.version();
        let total = open.metadata().frames;
        if frame >= total {
            return Err(FrameError::Video(VideoError::OutOfRange {
                frame,
                frames: total,
            }));
        }
        let full = etag(
            &version,
            frame,
            frames.width_for(query.w)?,
            frames.quality(),
        );
        if matches_etag(&headers, &full) {
            return Ok((version, None, full));
        }
        let request = FrameRequest {
            viewer: &viewer,
            frame,
            width: query.w,
            priority,
            thumbnail: query.p.as_deref() == Some("thumb"),
            supersedes: priority == Priority::Seek && named_viewer,
        };
        let answer = frames.frame(request);
        library.enforce_decoder_budget();
        let answer = answer?;
        let tag = etag(&version, frame, answer.width, answer.quality);
        Ok((version, Some(answer), tag))
    })
    .await;
    let (version, answer, tag) = match answer {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return frame_refusal(e),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let keep = if answer.as_ref().is_some_and(|a| a.reduced) {
        "no-store"
    } else if query.v.as_deref() == Some(version.as_str()) {
        "private, max-age=31536000, immutable"
    } else {
        "private, no-cache"
    };
    // Where the frame came from (the cache, the display proxy or the video): for tests and
    // benches.
    let source = answer.as_ref().map(|a| a.source);
    let mut response = match answer {
        None => StatusCode::NOT_MODIFIED.into_response(),
        Some(answer) => (
            [(header::CONTENT_TYPE, "image/jpeg")],
            Body::from(answer.jpeg.as_ref().clone()),
        )
            .into_response(),
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(keep));
    h.insert("x-frame", HeaderValue::from(frame));
    if let Some(source) = source {
        h.insert("x-frame-source", HeaderValue::from_static(source));
    }
    response
}

/// `GET /frames/ID/N?count=C`: frames N..N+C (to the end at most) as one stream.
pub async fn stream(
    library: Arc<Library>,
    Path((video, from)): Path<(String, u64)>,
    Query(query): Query<StreamQuery>,
) -> Response {
    let count = query.count.unwrap_or(30);
    if count == 0 || count > MAX_STREAM_FRAMES {
        return text(
            StatusCode::BAD_REQUEST,
            format!("count must be 1 to {MAX_STREAM_FRAMES}"),
        );
    }
    let Some(viewer) = viewer_of(query.viewer) else {
        return bad_viewer();
    };
    let frames = match frames_of(&library, video).await {
        Ok(f) => f,
        Err(refusal) => return refusal,
    };
    let (total, frame_index) = match frames.video() {
        Ok(v) => (v.metadata().frames, Arc::clone(v.frame_index())),
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, e.public()),
    };
    let at = query.at.unwrap_or(from).min(from);
    if from >= total {
        return frame_refusal(FrameError::Video(VideoError::OutOfRange {
            frame: from,
            frames: total,
        }));
    }
    let end = (from + count).min(total);
    let (send, receive) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let asked = std::time::Instant::now();
    let library = Arc::clone(&library);
    // When the viewer's clock shows frame n.
    let due = move |n: u64| {
        let ahead = frame_index.time_s(n) - frame_index.time_s(at);
        asked + std::time::Duration::from_secs_f64(ahead.max(0.0))
    };
    tokio::task::spawn_blocking(move || {
        let mut n = from;
        while n < end {
            // Stay on the viewer's clock: skip frames whose time will have passed before this
            // one is made (the page would skip them too).
            let now = std::time::Instant::now();
            while n + 1 < end && due(n + 1) <= now {
                n += 1;
            }
            // The first frames are playback's next ones; the rest are read ahead.
            let priority = if n < from + 2 {
                Priority::Play
            } else {
                Priority::Prefetch
            };
            let request = FrameRequest {
                viewer: &viewer,
                frame: n,
                width: query.w,
                priority,
                thumbnail: false,
                supersedes: false,
            };
            // A superseded or failed frame ends the stream: the page asks again.
            let answer = frames.frame(request);
            library.enforce_decoder_budget();
            let Ok(answer) = answer else { break };
            let mut chunk = Vec::with_capacity(12 + answer.jpeg.len());
            chunk.extend_from_slice(&n.to_le_bytes());
            chunk.extend_from_slice(&(answer.jpeg.len() as u32).to_le_bytes());
            chunk.extend_from_slice(&answer.jpeg);
            // The viewer went away or moved on: stop decoding for it.
            if send.blocking_send(chunk).is_err() {
                break;
            }
            n += 1;
        }
    });
    let body = futures::stream::unfold(receive, |mut receive| async move {
        receive
            .recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), receive))
    });
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
