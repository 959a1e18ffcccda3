//! The list page's rows: each listed video's name, size, duration and how far it is indexed,
//! from its open session, else from its frame index and cache file. Probes and cache states
//! are memoised until the file changes, so listing a large library stays cheap.

use std::path::Path;

use investigator_core::types::{IndexState, Indexed, LibraryVideo};
use store::cache::EmbeddingFile;

use super::files::{stamp, video_id, Stamp};
use super::Library;
use crate::indexing::VideoToIndex;
use crate::sync::lock;
use crate::video::{FrameIndex, Metadata};

/// What probing a file found, kept until the file changes.
pub(super) struct Probe {
    stamp: Stamp,
    meta: Result<Metadata, String>,
}

impl Library {
    /// The list page's rows. Blocking: probes files it has not seen (or that changed).
    pub fn list(&self) -> Vec<LibraryVideo> {
        self.files()
            .into_iter()
            .map(|(id, path)| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let meta = self.probe(&path);
                let (indexed, progress) = match &meta {
                    Ok(meta) => self.indexed(&id, &path, meta),
                    Err(_) => (Indexed::No, 0.0),
                };
                let (width, height, frames, duration_s) = match &meta {
                    Ok(m) => (m.width, m.height, m.frames, m.duration_s()),
                    Err(_) => (0, 0, 0, 0.0),
                };
                LibraryVideo {
                    default: id == self.default_id,
                    id,
                    name,
                    width,
                    height,
                    duration_s,
                    frames,
                    indexed,
                    progress,
                    folder: self.folder_of(&path),
                    error: meta.err(),
                }
            })
            .collect()
    }

    pub(super) fn probe(&self, path: &Path) -> Result<Metadata, String> {
        // An open video knows its exact frame count.
        if let Some(session) = lock(&self.sessions).get(&video_id(path)) {
            return session
                .frames
                .video()
                .map(|v| v.metadata())
                .map_err(|e| e.public());
        }
        let stamp = stamp(path).ok_or("the file cannot be read")?;
        if let Some(probe) = lock(&self.probes).get(path).filter(|p| p.stamp == stamp) {
            return probe.meta.clone();
        }
        let meta =
            // The frame index is kept in the cache folder: the video is scanned once, ever.
            FrameIndex::load_or_build(path, Some(&self.index_options.cache_dir))
                .map(|frame_index| frame_index.metadata())
                .map_err(|e| e.public());
        lock(&self.probes).insert(
            path.to_path_buf(),
            Probe {
                stamp,
                meta: meta.clone(),
            },
        );
        meta
    }

    /// How much of `path` is indexed by the default model (and the share of its planned
    /// frames): from its running job (the page's or the library's), else from its cache file.
    fn indexed(&self, id: &str, path: &Path, meta: &Metadata) -> (Indexed, f32) {
        let running = lock(&self.sessions)
            .get(id)
            .map(|session| session.index.status())
            .map(|s| (s.state == IndexState::Done, s.done, s.total))
            .or_else(|| {
                self.background_progress(path)
                    .map(|(done, total)| (false, done, total))
            });
        if let Some((done_state, done, total)) = running {
            let share = if total > 0 {
                done as f32 / total as f32
            } else {
                0.0
            };
            return match (done_state, done) {
                (true, _) => (Indexed::Yes, 1.0),
                (_, d) if d > 0 => (Indexed::Partly, share),
                _ => (Indexed::No, 0.0),
            };
        }
        let Some(model) = self.models[0].model.ready() else {
            return (Indexed::No, 0.0);
        };
        let Ok(video) = VideoToIndex::with_metadata(path, meta.clone()) else {
            return (Indexed::No, 0.0);
        };
        let header = video.header(model.as_ref(), self.index_options.sample_fps);
        let file = self
            .index_options
            .cache_dir
            .join(EmbeddingFile::file_name_skipping(
                &header,
                self.index_options.skip_similar,
            ));
        let Some(stamp) = stamp(&file) else {
            return (Indexed::No, 0.0);
        };
        if let Some((known, indexed)) = lock(&self.cache_states).get(&file) {
            if *known == stamp {
                return *indexed;
            }
        }
        let indexed = match EmbeddingFile::peek(&file) {
            Ok(cached) if cached.header.video == header.video && !cached.frames.is_empty() => {
                let planned = investigator_core::scores::sampled_frames(
                    cached.header.video_frames,
                    cached.header.video_fps_micros as f64 / 1e6,
                    self.index_options.sample_fps,
                )
                .len();
                if cached.covered() >= planned {
                    (Indexed::Yes, 1.0)
                } else {
                    (
                        Indexed::Partly,
                        cached.covered() as f32 / planned.max(1) as f32,
                    )
                }
            }
            _ => (Indexed::No, 0.0),
        };
        lock(&self.cache_states).insert(file, (stamp, indexed));
        indexed
    }
}
