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
}
