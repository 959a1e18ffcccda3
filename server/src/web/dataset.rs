//! `POST /api/dataset?video=ID[&model=M][&compare=M2]`: the video's labelled dataset (the
//! frames to fine-tune on, with their labels and each model's score; Hugging Face's
//! `imagefolder` layout) as one zip download.
//!
//! Bounded like the excerpt download: a POST (the guard's same-site rule applies), one build at
//! a time per server, written only under the cache folder's `datasets/`, and the zip is opened
//! and removed before its bytes are sent, so nothing is left behind however the download ends.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::export::dataset::{write_from_services, DatasetError, DatasetOptions};
use engine::indexing::IndexService;
use engine::library::Library;
use investigator_core::types::{is_valid_model_id, is_valid_video_id};

#[derive(serde::Deserialize)]
pub struct DatasetQuery {
    video: String,
    model: Option<String>,
    compare: Option<String>,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    tracing::warn!("dataset refused: {message}");
    (status, format!("{message}\n")).into_response()
}

/// One build at a time: each decodes frames and writes a folder.
static BUILDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn download(library: Arc<Library>, query: Query<DatasetQuery>) -> Response {
    let DatasetQuery {
        video,
        model,
        compare,
    } = query.0;
    if !is_valid_video_id(&video) {
        return refuse(
            StatusCode::BAD_REQUEST,
            investigator_core::requests::NOT_A_VIDEO_ID,
        );
    }
    if [&model, &compare]
        .into_iter()
        .flatten()
        .any(|m| !is_valid_model_id(m))
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "not a model id: pick a model from the list the page shows",
        );
    }
    let Ok(_building) = BUILDING.try_lock() else {
        return refuse(
            StatusCode::CONFLICT,
            "a dataset is being built; try again when it is done",
        );
    };
    let work = {
        let library = Arc::clone(&library);
        move || build(&library, &video, model, compare)
    };
    let built = tokio::task::spawn_blocking(work).await;
    let (name, file, bytes) = match built {
        Ok(Ok(done)) => done,
        Ok(Err((status, message))) => return refuse(status, message),
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the dataset failed: {e}"),
            )
        }
    };
    let stream = super::excerpt::chunks(tokio::fs::File::from_std(file));
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_LENGTH, bytes.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

type Refusal = (StatusCode, String);

/// Builds the dataset folder, zips it, and returns the zip opened (and already removed).
fn build(
    library: &Library,
    video: &str,
    model: Option<String>,
    compare: Option<String>,
) -> Result<(String, std::fs::File, u64), Refusal> {
    let library_refusal = |e: engine::library::LibraryError| {
        use engine::library::LibraryError::*;
        let status = match e {
            NotAnId | NoSuchModel(_) => StatusCode::BAD_REQUEST,
            NoSuchVideo(_) => StatusCode::NOT_FOUND,
            CannotOpen(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, e.to_string())
    };
    let session = library.session(video).map_err(library_refusal)?;
    let (store, frames) = library.labels(&session).map_err(library_refusal)?;
    let labels = store
        .load(frames)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.public()))?;
    let mut services = vec![library
        .index(&session, model.as_deref())
        .map_err(library_refusal)?];
    if compare.is_some() {
        services.push(
            library
                .index(&session, compare.as_deref())
                .map_err(library_refusal)?,
        );
    }
    let services: Vec<&IndexService> = services.iter().map(Arc::as_ref).collect();
    let open = session
        .frames
        .video()
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.public()))?;
    let folder = library.excerpt_target().0.with_file_name("datasets");
    let work = folder.join(format!(".dataset-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let internal = |e: std::io::Error| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the dataset: {e}"),
        )
    };
    std::fs::create_dir_all(&folder).map_err(internal)?;
    let written = write_from_services(
        open.path(),
        Arc::clone(open.frame_index()),
        &services,
        &labels,
        &DatasetOptions::default(),
        &work,
    );
    if let Err(e) = written {
        let status = match e {
            DatasetError::NoLabels => StatusCode::BAD_REQUEST,
            DatasetError::NotReady(_) | DatasetError::NotIndexed(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let _ = std::fs::remove_dir_all(&work);
        return Err((
            status,
            engine::video::without_folder(&e.to_string(), open.path()),
        ));
    }
    let zip_path = work.with_extension("zip");
    let zipped = zip_folder(&work, &zip_path);
    let _ = std::fs::remove_dir_all(&work);
    zipped.map_err(internal)?;
    // Opened, then removed: the bytes stay readable through the handle until it closes.
    let file = std::fs::File::open(&zip_path).map_err(internal)?;
    let _ = std::fs::remove_file(&zip_path);
    let bytes = file.metadata().map_err(internal)?.len();
    let stem = open
        .path()
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok((format!("{stem}_dataset.zip"), file, bytes))
}

/// The folder's files (one level of subfolders, as the dataset has) into a stored zip.
fn zip_folder(folder: &Path, out: &Path) -> std::io::Result<()> {
    let mut writer = zip::ZipWriter::new(std::fs::File::create(out)?);
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(folder)?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path)?.flatten() {
                files.push(inner.path());
            }
        } else {
            files.push(path);
        }
    }
    files.sort();
    for path in files {
        let name = path
            .strip_prefix(folder)
            .map_err(std::io::Error::other)?
            .to_string_lossy()
            .replace('\\', "/");
        writer
            .start_file(name, options)
            .map_err(std::io::Error::other)?;
        writer.write_all(&std::fs::read(&path)?)?;
    }
    writer.finish().map_err(std::io::Error::other)?;
    Ok(())
}
