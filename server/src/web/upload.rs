//! `POST /api/upload?name=FILE`: a video into the first library folder. The body is streamed to
//! a hidden temporary file (never held in memory) and counted against `max_upload_mb`; the file
//! must then decode before it takes its name, which it never takes from an existing file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use engine::library::{check_upload_name, video_id, Library};

pub const UPLOAD_PATH: &str = investigator_core::routes::UPLOAD_URL;

/// Prefix of upload temporaries: hidden, so the library never lists them.
const TEMPORARY_PREFIX: &str = ".upload-";

#[derive(serde::Deserialize)]
pub struct UploadQuery {
    name: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    tracing::warn!("upload refused: {message}");
    (status, format!("{message}\n")).into_response()
}

/// Removes the temporary file however the upload ends.
struct Temporary(Option<PathBuf>);

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub async fn upload(library: Arc<Library>, query: Query<UploadQuery>, body: Body) -> Response {
    let Some((folder, limit)) = library.upload_target() else {
        return refuse(
            StatusCode::CONFLICT,
            "uploads go to the first of `library_dirs` in config.yaml, and none is set",
        );
    };
    let name = query.0.name;
    if let Err(refused) = check_upload_name(&name) {
        return refuse(StatusCode::BAD_REQUEST, refused.to_string());
    }
    let target = folder.join(&name);
    if target.symlink_metadata().is_ok() {
        return refuse(
            StatusCode::CONFLICT,
            format!("a file named {name} is already in the library: choose another name"),
        );
    }
    static UPLOADS: AtomicU64 = AtomicU64::new(0);
    let extension = Path::new(&name)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("video")
        .to_ascii_lowercase();
    // The extension stays: some containers are recognised by it.
    let temporary = folder.join(format!(
        "{TEMPORARY_PREFIX}{}-{}.{extension}",
        std::process::id(),
        UPLOADS.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = match tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .await
    {
        Ok(file) => file,
        Err(e) => {
            tracing::error!("cannot create {}: {e}", temporary.display());
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the library folder cannot be written to (see the server's log)",
            );
        }
    };
    let guard = Temporary(Some(temporary.clone()));
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("the upload was interrupted: {e}"),
                )
            }
        };
        received += chunk.len() as u64;
        if received > limit {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the video is larger than {} MiB, the most this server accepts (max_upload_mb)",
                    limit / (1024 * 1024)
                ),
            );
        }
        if let Err(e) = file.write_all(&chunk).await {
            tracing::error!("writing {}: {e}", temporary.display());
            return refuse(
                StatusCode::INSUFFICIENT_STORAGE,
                "the upload could not be written (is the disk full? see the server's log)",
            );
        }
    }
    if let Err(e) = file.sync_all().await {
        tracing::error!("writing {}: {e}", temporary.display());
        return refuse(
            StatusCode::INSUFFICIENT_STORAGE,
            "the upload could not be written",
        );
    }
    drop(file);
    if received == 0 {
        return refuse(StatusCode::BAD_REQUEST, "the upload is empty (0 bytes)");
    }
    let checked = temporary.clone();
    let decodes =
        tokio::task::spawn_blocking(move || check_decodes(&checked).map_err(|e| e.public()))
            .await
            .unwrap_or_else(|e| Err(format!("checking the video failed: {e}")));
    if let Err(message) = decodes {
        // The messages name the temporary file; the user knows the file by its own name.
        let temporary_name = temporary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{name} is not a video this server can play: {}",
                message.replace(&temporary_name, &name)
            ),
        );
    }
    // A hard link never replaces an existing file (a rename would), so two uploads of one name
    // cannot overwrite each other.
    match std::fs::hard_link(&temporary, &target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return refuse(
                StatusCode::CONFLICT,
                format!("a file named {name} is already in the library: choose another name"),
            )
        }
        Err(e) => {
            tracing::error!(
                "cannot link {} to {}: {e}",
                temporary.display(),
                target.display()
            );
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the upload could not be put in the library (see the server's log)",
            );
        }
    }
    drop(guard);
    let id = target
        .canonicalize()
        .map(|p| video_id(&p))
        .unwrap_or_else(|_| video_id(&target));
    tracing::info!(video = %name, bytes = received, "uploaded");
    (
        StatusCode::CREATED,
        Json(investigator_core::types::Uploaded { id, name }),
    )
        .into_response()
}

/// The video opens and its first frame decodes (`VideoError::public` says why not).
fn check_decodes(path: &Path) -> Result<(), engine::video::VideoError> {
    let mut decoder = engine::video::Decoder::open(path)?;
    decoder.frame(0)?;
    Ok(())
}

/// Removes upload temporaries left by servers that died mid-upload (their process is gone).
pub fn remove_abandoned_uploads(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TEMPORARY_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
