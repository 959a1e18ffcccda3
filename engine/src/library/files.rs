//! Which files the library lists, and the ids that name them: only regular files with a video
//! extension whose resolved path (symlinks followed) lies inside a library folder, and the
//! config's `video_path`. A request names an id, never a path; upload names are checked here.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use store::fnv::Fnv64;

use super::{Library, LibraryError};

/// File name endings listed as videos (others in a library folder are ignored).
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mkv", "webm", "mov", "avi", "mpg", "mpeg", "ts", "y4m", "ogv", "wmv", "flv",
    "3gp",
];

/// Longest file name accepted for an upload, in bytes (most file systems allow 255).
pub const MAX_NAME_BYTES: usize = 200;

/// The id of the file at `path` (already resolved): a hash of the path, so it stays the same
/// across restarts (share links keep working) and tells nothing about where the file lives.
pub fn video_id(path: &Path) -> String {
    let mut hash = Fnv64::new();
    hash.update(path.as_os_str().as_encoded_bytes());
    format!("{:016x}", hash.finish())
}

fn has_video_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A file name an upload may take, or why not. Names are taken as given or refused, never
/// rewritten, so the user sees the name they chose.
pub fn check_upload_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong { bytes: name.len() });
    }
    if name.starts_with('.') {
        return Err(NameError::Hidden);
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_control()
            || matches!(
                c,
                '/' | '\\' | ':' | '%' | '*' | '?' | '"' | '<' | '>' | '|'
            )
    }) {
        return Err(NameError::Forbidden(c));
    }
    if !has_video_extension(Path::new(name)) {
        return Err(NameError::NotAVideo);
    }
    Ok(())
}

/// Why a name cannot be an uploaded video's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the upload needs a file name (?name=video.mp4)")]
    Empty,
    #[error("the file name is {bytes} bytes long; at most {MAX_NAME_BYTES}")]
    TooLong { bytes: usize },
    #[error("the file name must not start with a dot")]
    Hidden,
    #[error("the file name must not contain {0:?}: give a plain name such as holiday.mp4")]
    Forbidden(char),
    #[error("the file name must end in a video extension ({})", VIDEO_EXTENSIONS.join(", "))]
    NotAVideo,
}

impl Library {
    /// The listed files: the default video first, then each folder's videos by name. Only
    /// regular files whose resolved path lies inside their library folder.
    pub fn files(&self) -> Vec<(String, PathBuf)> {
        let mut files = vec![(self.default_id.clone(), self.default_video.clone())];
        for root in &self.roots {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    has_video_extension(p)
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .filter_map(|p| inside(root, &p))
                .collect();
            found.sort();
            for path in found {
                let id = video_id(&path);
                if !files.iter().any(|(known, _)| *known == id) {
                    files.push((id, path));
                }
            }
        }
        files
    }

    /// The file of `id`, or why there is none. Looked up among the listed files only.
    pub fn resolve(&self, id: &str) -> Result<PathBuf, LibraryError> {
        if !investigator_core::types::is_valid_video_id(id) {
            return Err(LibraryError::NotAnId);
        }
        self.files()
            .into_iter()
            .find(|(known, _)| known == id)
            .map(|(_, path)| path)
            .ok_or_else(|| LibraryError::NoSuchVideo(id.to_string()))
    }
}

/// When a file last changed, and its size: a memo of what was read from it holds while these do.
pub(super) fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    ))
}

/// `path` resolved, if it is a regular file inside `root` (which is resolved already).
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let resolved = path.canonicalize().ok()?;
    (resolved.starts_with(root) && resolved.is_file()).then_some(resolved)
}

/// When a file last changed, and its size.
pub(super) type Stamp = (SystemTime, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_that_could_leave_the_folder_are_refused() {
        for bad in [
            "",
            "../escape.mp4",
            "..\\escape.mp4",
            "/etc/escape.mp4",
            "a/b.mp4",
            "%2e%2e%2fescape.mp4",
            "..%2fescape.mp4",
            "nul\0byte.mp4",
            ".hidden.mp4",
            "..",
            "notes.txt",
            "video",
            "C:escape.mp4",
            &format!("{}.mp4", "a".repeat(300)),
        ] {
            assert!(check_upload_name(bad).is_err(), "accepted {bad:?}");
        }
        for good in ["holiday.mp4", "Clip 2 (final).MKV", "été.webm"] {
            assert_eq!(check_upload_name(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn ids_are_hex_of_the_path_and_stable() {
        let id = video_id(Path::new("/videos/a.mp4"));
        assert!(investigator_core::types::is_valid_video_id(&id), "{id}");
        assert_eq!(id, video_id(Path::new("/videos/a.mp4")));
        assert_ne!(id, video_id(Path::new("/videos/b.mp4")));
    }
}
