//! One open video: its frame index, shared by every viewer's decoder, and what the page is told
//! about it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use investigator_core::types::VideoInfo;

use crate::video::{FrameIndex, Metadata, VideoError};

/// The open video: its frame index (shared by every viewer's decoder) and what it says.
pub struct OpenVideo {
    path: PathBuf,
    pub(super) name: String,
    frame_index: Arc<FrameIndex>,
    /// Frame times for the page where the rate is not constant (empty where it is).
    frame_times_ms: Vec<u32>,
}

impl OpenVideo {
    /// Reads the video's frame index from `index_dir` (the cache folder), or builds it there
    /// (a packet scan: seconds for an hour of video).
    pub fn open(path: &Path, index_dir: Option<&Path>) -> Result<Arc<Self>, VideoError> {
        let frame_index = FrameIndex::load_or_build(path, index_dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let frame_times_ms = if frame_index.constant_rate() {
            Vec::new()
        } else {
            (0..frame_index.frames())
                .map(|n| (frame_index.time_s(n) * 1000.0).round() as u32)
                .collect()
        };
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            name,
            frame_index,
            frame_times_ms,
        }))
    }

    pub fn frame_index(&self) -> &Arc<FrameIndex> {
        &self.frame_index
    }

    pub fn metadata(&self) -> Metadata {
        self.frame_index.metadata()
    }

    pub fn info(&self) -> VideoInfo {
        let m = self.metadata();
        VideoInfo {
            // The library knows the id; the video itself does not.
            id: String::new(),
            name: self.name.clone(),
            width: m.width,
            height: m.height,
            fps: m.fps,
            frames: m.frames,
            exact_count: m.exact_count,
            frame_times_ms: self.frame_times_ms.clone(),
            version: self.version(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A short text that changes when the file's content does (for HTTP validators).
    pub fn version(&self) -> String {
        let f = self.frame_index.fingerprint();
        format!("{}{:x}", f.short(), f.size)
    }

    pub(super) fn cache_id(&self) -> u64 {
        let f = self.frame_index.fingerprint();
        f.chunks_hash ^ f.size.rotate_left(32)
    }
}
