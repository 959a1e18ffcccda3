//! `POST /api/clip?video=ID&viewer=V&from=F&to=T`: frames F..=T as an MP4 download, and
//! `GET /api/clip_progress?viewer=V`: how far that viewer's export is.
//!
//! Bounded: a POST (so the guard's same-site rule applies, as to every state-changing
//! request), at most `clip_max_s` seconds, one export per viewer at a time (a second gets 409
//! while the first runs), written only under the cache folder's `clips/`. The finished file is
//! opened and then removed before its bytes are sent, so nothing is left behind however the
//! download ends; a client that goes away cancels the export.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use engine::export::excerpt::{excerpt_file_name, export_excerpt, ExcerptError, ExcerptOptions};
use engine::library::Library;
use engine::sync::lock;

pub const EXCERPT_PATH: &str = investigator_core::routes::EXCERPT_URL;
pub const EXCERPT_PROGRESS_PATH: &str = investigator_core::routes::EXCERPT_PROGRESS_URL;

/// One viewer's export in progress.
#[derive(Default)]
struct Export {
    done: AtomicU64,
    total: AtomicU64,
    cancel: AtomicBool,
}

/// The exports running now, by viewer.
#[derive(Clone, Default)]
pub struct Exports(Arc<Mutex<HashMap<String, Arc<Export>>>>);

/// Takes a viewer's slot for the life of its export, and cancels the export if the request is
/// dropped (the client went away) before it finishes.
struct Slot {
    exports: Exports,
    viewer: String,
    export: Arc<Export>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.export.cancel.store(true, Ordering::Relaxed);
        lock(&self.exports.0).remove(&self.viewer);
    }
}

#[derive(serde::Deserialize)]
pub struct ExcerptQuery {
    video: String,
    viewer: String,
    from: u64,
    to: u64,
}

#[derive(serde::Deserialize)]
pub struct ProgressQuery {
    viewer: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    tracing::warn!("clip refused: {message}");
    (status, format!("{message}\n")).into_response()
}

pub async fn progress(exports: Exports, query: Query<ProgressQuery>) -> Response {
    let running = lock(&exports.0).get(&query.viewer).cloned();
    let body = match running {
        Some(e) => investigator_core::types::ExcerptProgress {
            running: true,
            done: e.done.load(Ordering::Relaxed),
            total: e.total.load(Ordering::Relaxed),
        },
        None => investigator_core::types::ExcerptProgress::default(),
    };
    Json(body).into_response()
}

pub async fn export(
    library: Arc<Library>,
    exports: Exports,
    query: Query<ExcerptQuery>,
) -> Response {
    let ExcerptQuery {
        video,
        viewer,
        from,
        to,
    } = query.0;
    if viewer.is_empty() || viewer.len() > 64 {
        return refuse(StatusCode::BAD_REQUEST, "viewer must be 1 to 64 characters");
    }
    let session = match library.session(&video) {
        Ok(s) => s,
        Err(e) => {
            let status = match e {
                engine::library::LibraryError::NotAnId
                | engine::library::LibraryError::NoSuchModel(_) => StatusCode::BAD_REQUEST,
                engine::library::LibraryError::NoSuchVideo(_) => StatusCode::NOT_FOUND,
                engine::library::LibraryError::CannotOpen(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            return refuse(status, e.to_string());
        }
    };
    let open = match session.frames.video() {
        Ok(open) => Arc::clone(open),
        Err(error) => return refuse(StatusCode::SERVICE_UNAVAILABLE, error.public()),
    };
    let (folder, max_seconds) = library.excerpt_target();
    let options = ExcerptOptions {
        max_seconds,
        ..ExcerptOptions::default()
    };
    if let Err(e) = engine::export::excerpt::check_span(open.frame_index(), from, to, &options) {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    let slot = {
        let mut running = lock(&exports.0);
        if running.contains_key(&viewer) {
            return refuse(
                StatusCode::CONFLICT,
                "this viewer is already exporting a clip; wait for it to finish",
            );
        }
        let export = Arc::new(Export::default());
        export.total.store(to - from + 1, Ordering::Relaxed);
        running.insert(viewer.clone(), Arc::clone(&export));
        Slot {
            exports: exports.clone(),
            viewer: viewer.clone(),
            export,
        }
    };
    if let Err(e) = std::fs::create_dir_all(&folder) {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot create the clip folder: {e}"),
        );
    }
    let fps = open.frame_index().fps().max(1e-9);
    let name = excerpt_file_name(open.path(), from as f64 / fps, (to + 1) as f64 / fps);
    let out: PathBuf = folder.join(format!(".clip-{}-{}.mp4", std::process::id(), unique()));
    let export = Arc::clone(&slot.export);
    let work_out = out.clone();
    let frame_index = Arc::clone(open.frame_index());
    let path = open.path().to_path_buf();
    let done = tokio::task::spawn_blocking(move || {
        let progress = |done: u64, _total: u64| export.done.store(done, Ordering::Relaxed);
        let result = export_excerpt(
            &path,
            frame_index,
            from..=to,
            &work_out,
            &options,
            &progress,
            &export.cancel,
        );
        // Opened, then removed: the bytes stay readable through the handle until it closes.
        result.and_then(|report| {
            let file = std::fs::File::open(&work_out).map_err(|source| ExcerptError::Io {
                path: work_out.clone(),
                source,
            });
            let _ = std::fs::remove_file(&work_out);
            file.map(|f| (report, f))
        })
    })
    .await;
    drop(slot);
    let (report, file) = match done {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            let _ = std::fs::remove_file(&out);
            let status = if e.is_bad_request() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return refuse(
                status,
                engine::video::without_folder(&e.to_string(), open.path()),
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the clip export failed: {e}"),
            )
        }
    };
    tracing::info!(
        frames = report.frames,
        bytes = report.bytes,
        "clip {name} exported"
    );
    let stream = chunks(tokio::fs::File::from_std(file));
    (
        [
            (header::CONTENT_TYPE, "video/mp4".to_string()),
            (header::CONTENT_LENGTH, report.bytes.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The file's bytes as a body stream, 64 KiB at a time.
pub(super) fn chunks(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    use tokio::io::AsyncReadExt;
    futures::stream::try_unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 64 * 1024];
        let read = file.read(&mut buffer).await?;
        buffer.truncate(read);
        Ok((read > 0).then_some((buffer, file)))
    })
}

/// A number no other clip of this process uses.
fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Clip temporaries left by a process that was killed mid-export.
pub fn remove_abandoned_excerpts(folder: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".clip-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
