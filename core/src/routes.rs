//! Where the server answers: the one place that names the server functions' prefix and the
//! plain routes beside them, for the page and the web router alike.

/// Where the server functions are mounted. Leptos's `#[server]` mounts under `/api` unless told
/// otherwise, so no server function names a prefix of its own; the page's tests check that
/// every one of them lies under this one.
pub const API_PREFIX: &str = "/api/";

/// Uploads are a plain POST of the file as the body (`?name=FILE`), streamed to disk by the
/// server: server functions would decode the whole body in memory.
pub const UPLOAD_URL: &str = "/api/upload";

/// `POST ?video=ID&viewer=V&from=F&to=T`: frames F..=T as an MP4 excerpt, downloaded. The path
/// keeps its public name ("clip" as in a video clip).
pub const EXCERPT_URL: &str = "/api/clip";

/// `GET ?viewer=V`: that viewer's excerpt export, as [`crate::types::ExcerptProgress`] JSON.
pub const EXCERPT_PROGRESS_URL: &str = "/api/clip_progress";

/// `POST ?video=ID[&model=M][&compare=M2]`: the video's labelled dataset (frames, labels and
/// scores, `imagefolder` layout) as a zip download.
pub const DATASET_URL: &str = "/api/dataset";

/// `GET /frame/ID/N.jpg[?w=WIDTH][&v=VERSION][&p=seek|play|thumb][&viewer=V]`: exactly frame N as
/// `image/jpeg`, an ordinary URL (the page's "Open frame as image"). `v` is the video's
/// [`crate::types::VideoInfo::version`]: with it the answer may be kept for good.
pub const FRAME_ROUTE: &str = "/frame/{video}/{file}";

/// `GET /frames/ID/N?count=C&at=P[&w=WIDTH][&viewer=V]`: frames N.. as one stream, each as its
/// frame number (u64, little-endian), its length (u32) and the JPEG; playback's prefetch. `P`
/// is the viewer's playhead when it asks: a frame whose time has passed by the time the
/// server gets to it is skipped (the stream stays on the viewer's clock), so a loaded server
/// sends fewer frames, never late ones.
pub const FRAMES_ROUTE: &str = "/frames/{video}/{from}";

/// Most frames one prefetch stream carries.
pub const MAX_STREAM_FRAMES: u64 = 120;

/// The URL of exactly `frame` of `video`.
pub fn frame_url(video: &str, frame: u64, width: Option<u32>, version: &str) -> String {
    let mut url = format!("/frame/{video}/{frame}.jpg");
    let mut sep = '?';
    if let Some(w) = width {
        url += &format!("{sep}w={w}");
        sep = '&';
    }
    if !version.is_empty() {
        url += &format!("{sep}v={version}");
    }
    url
}

/// The URL of a prefetch stream of `count` frames from `from`.
pub fn frames_url(
    video: &str,
    from: u64,
    count: u64,
    at: u64,
    width: Option<u32>,
    viewer: &str,
) -> String {
    let mut url = format!("/frames/{video}/{from}?count={count}&at={at}&viewer={viewer}");
    if let Some(w) = width {
        url += &format!("&w={w}");
    }
    url
}

/// Whether `path` is a frame URL (a GET that the guard also keeps from other sites).
pub fn is_frame_path(path: &str) -> bool {
    path.starts_with("/frame/") || path.starts_with("/frames/")
}

/// Whether `path` is one of the API's (server functions and the routes above).
pub fn is_api_path(path: &str) -> bool {
    path.starts_with(API_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plain_route_is_under_the_api_prefix() {
        for url in [UPLOAD_URL, EXCERPT_URL, EXCERPT_PROGRESS_URL, DATASET_URL] {
            assert!(is_api_path(url), "{url}");
        }
        assert!(!is_api_path("/videos"));
        assert!(!is_api_path("/apix/upload"));
    }

    #[test]
    fn frame_urls_name_the_frame_and_only_the_parameters_given() {
        assert_eq!(
            frame_url("0123456789abcdef", 12, None, ""),
            "/frame/0123456789abcdef/12.jpg"
        );
        assert_eq!(
            frame_url("0123456789abcdef", 0, Some(640), "ab12"),
            "/frame/0123456789abcdef/0.jpg?w=640&v=ab12"
        );
        assert_eq!(
            frames_url("0123456789abcdef", 30, 30, 25, Some(960), "viewer-1"),
            "/frames/0123456789abcdef/30?count=30&at=25&viewer=viewer-1&w=960"
        );
        assert!(is_frame_path("/frame/x/1.jpg") && is_frame_path("/frames/x/1"));
        assert!(!is_frame_path("/framex/1") && !is_frame_path("/api/frame"));
    }
}
