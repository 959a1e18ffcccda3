//! What watchers see of a job: its live progress, the report of a finished run, and why a run
//! stopped.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use investigator_core::types::IndexStatus;

use crate::sync::lock;

/// Progress of one job, shared with whoever watches it (the web app, the CLI's bar).
#[derive(Default)]
pub struct Progress {
    status: Mutex<IndexStatus>,
}

impl Progress {
    pub fn snapshot(&self) -> IndexStatus {
        lock(&self.status).clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut IndexStatus)) {
        change(&mut lock(&self.status));
    }
}

/// What a finished run did.
#[derive(Clone, Debug)]
pub struct IndexReport {
    pub cache_path: PathBuf,
    /// Frames found in the cache from earlier runs.
    pub resumed: u64,
    /// Frames embedded by this run.
    pub embedded: u64,
    /// Of the frames this run indexed, those that reused the previous frame's vector.
    pub reused: u64,
    /// Frames this run could not decode (recorded as missing; indexing went on).
    pub missing: u64,
    pub planned: u64,
    pub seconds: f64,
    /// A damaged or foreign cache file that was moved aside before starting over.
    pub cache_problem: Option<String>,
    /// Each pass this run made (one for a straight index).
    pub passes: Vec<PassReport>,
}

/// What one pass did: a coarse pass decodes only what its frames need.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// Widest gap between embedded frames once the pass was done.
    pub spacing_frames: u64,
    /// Frames this pass embedded (or found missing), detours into the viewer's span included.
    pub frames: u64,
    /// Pictures the decoder produced for them (seeks included, scene-cut measuring too).
    pub decoded: u64,
    pub seconds: f64,
    /// Seconds from the run's start to this pass's end.
    pub finished_at_s: f64,
    /// Frames of the next two passes this one decoded on its way and kept, so that those do not
    /// decode them again.
    pub kept_for_later: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{0}")]
    Cache(#[from] store::cache::CacheError),
    #[error("frame {frame} of {video}: {message} (the {done} frames before it are saved)")]
    Video {
        video: String,
        frame: u64,
        message: String,
        done: u64,
    },
    #[error("embedding failed: {0} (the frames before are saved)")]
    Embed(#[from] crate::embed::EmbedError),
    #[error("stopped")]
    Cancelled,
}

impl IndexError {
    /// The message for the browser: it names the video's file, never its folder.
    pub fn public(&self, video: &Path) -> String {
        crate::video::without_folder(&self.to_string(), video)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use investigator_core::types::IndexState;

    #[test]
    fn progress_is_updated_in_place_and_read_whole() {
        let progress = Progress::default();
        assert_eq!(progress.snapshot(), IndexStatus::default());
        progress.update(|s| {
            s.state = IndexState::Running;
            s.done = 3;
            s.total = 10;
        });
        progress.update(|s| s.done += 1);
        let seen = progress.snapshot();
        assert_eq!(
            (seen.state, seen.done, seen.total),
            (IndexState::Running, 4, 10)
        );
    }

    #[test]
    fn errors_for_the_browser_name_the_file_and_never_its_folder() {
        let video = Path::new("/srv/private/footage/walk.mp4");
        let error = IndexError::Video {
            video: video.display().to_string(),
            frame: 12,
            message: format!("{} is damaged", video.display()),
            done: 11,
        };
        let text = error.to_string();
        assert!(text.contains("frame 12") && text.contains("the 11 frames before it are saved"));
        let public = error.public(video);
        assert!(public.contains("walk.mp4"), "{public}");
        assert!(!public.contains("/srv/private"), "{public}");
        assert_eq!(IndexError::Cancelled.public(video), "stopped");
    }
}
