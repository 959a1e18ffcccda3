//! The video an index is made of: its exact frame count, content fingerprint and frame index,
//! the frames it plans to embed, and the header of its cache file (the embedding index).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use investigator_core::scores::sampled_frames;
use store::cache::{CacheHeader, EmbeddingFile, ModelKey, VideoFingerprint, FORMAT_VERSION};

use super::options::IndexOptions;
use crate::embed::Embedder;
use crate::video::{FrameIndex, Metadata, VideoError};

/// Why a video cannot be made ready to index.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Video(#[from] VideoError),
    /// Its bytes cannot be read for the content fingerprint that names its cache files.
    #[error("cannot read {}: {error}", path.display())]
    Fingerprint {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl OpenError {
    /// The message for the browser: it names the video's file, never its folder.
    pub fn public(&self) -> String {
        match self {
            Self::Video(e) => e.public(),
            Self::Fingerprint { path, .. } => crate::video::without_folder(&self.to_string(), path),
        }
    }
}

/// A video ready to index: its exact frame count and content fingerprint, and its frame index
/// once it has been read.
#[derive(Clone, Debug)]
pub struct VideoToIndex {
    pub path: PathBuf,
    pub meta: Metadata,
    pub fingerprint: VideoFingerprint,
    pub frames: Option<Arc<FrameIndex>>,
    /// Who else takes the frames the job decodes (the display proxy's builder).
    pub tap: Option<Tap>,
}

/// Takes the frames an index job decodes anyway, in the order it decodes them: one decode, two
/// consumers (the display proxy encodes them instead of decoding the video again).
pub trait FrameTap: Send + Sync {
    /// Frame `n`, upright BGR at full size. Called on the job's decoder thread: cheap when
    /// the frame is not wanted.
    fn offer(&self, n: u64, frame: &opencv::core::Mat);
}

/// A [`FrameTap`] as a [`VideoToIndex`] holds it.
#[derive(Clone)]
pub struct Tap(pub Arc<dyn FrameTap>);

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

impl VideoToIndex {
    /// Reads the frame index of `path` from `index_dir`, or builds it there.
    pub fn open(path: &Path, index_dir: Option<&Path>) -> Result<Self, OpenError> {
        let frame_index = FrameIndex::load_or_build(path, index_dir)?;
        Self::with_index(path, frame_index)
    }

    /// A video whose frame index is at hand (the server's open video).
    pub fn with_index(path: &Path, frame_index: Arc<FrameIndex>) -> Result<Self, OpenError> {
        Ok(Self {
            frames: Some(Arc::clone(&frame_index)),
            ..Self::with_metadata(path, frame_index.metadata())?
        })
    }

    /// Like [`open`](Self::open), but answered from the video's cache file when there is one:
    /// its name and header are keyed by the video's content and hold the exact frame count and
    /// frame rate, so answering from the cache does not open or decode the video at all. The
    /// file read for that is returned too, so that it is not read twice.
    pub fn open_indexed(
        path: &Path,
        embedder: &dyn Embedder,
        options: &IndexOptions,
    ) -> Result<(Self, Option<EmbeddingFile>), OpenError> {
        let unknown = Metadata {
            frames: 0,
            fps: 0.0,
            width: 0,
            height: 0,
            exact_count: false,
        };
        let by_content = Self::with_metadata(path, unknown.clone())?;
        let header = by_content.header(embedder, options.sample_fps);
        let cached = options.cache_dir.join(EmbeddingFile::file_name_skipping(
            &header,
            options.skip_similar,
        ));
        if let Ok(file) = EmbeddingFile::peek(&cached) {
            let found = &file.header;
            if found.video == header.video
                && found.model == header.model
                && found.sample_fps_millis == header.sample_fps_millis
            {
                let video = Self {
                    meta: Metadata {
                        frames: found.video_frames,
                        fps: found.video_fps_micros as f64 / 1e6,
                        exact_count: true,
                        ..unknown
                    },
                    ..by_content
                };
                return Ok((video, Some(file)));
            }
        }
        Ok((Self::open(path, Some(&options.cache_dir))?, None))
    }

    pub fn with_metadata(path: &Path, meta: Metadata) -> Result<Self, OpenError> {
        let fingerprint =
            VideoFingerprint::of_file(path).map_err(|error| OpenError::Fingerprint {
                path: path.to_path_buf(),
                error,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            meta,
            fingerprint,
            frames: None,
            tap: None,
        })
    }

    pub fn header(&self, embedder: &dyn Embedder, sample_fps: Option<f64>) -> CacheHeader {
        CacheHeader {
            format_version: FORMAT_VERSION,
            model: ModelKey::from(&embedder.identity()),
            video: self.fingerprint.clone(),
            sample_fps_millis: sample_fps.map(|f| (f * 1000.0).round() as u32),
            video_frames: self.meta.frames,
            video_fps_micros: (self.meta.fps * 1e6).round() as u64,
        }
    }

    /// The frames an index with `sample_fps` embeds.
    pub fn plan(&self, sample_fps: Option<f64>) -> Vec<u64> {
        sampled_frames(self.meta.frames, self.meta.fps, sample_fps)
    }
}

/// Loads the cache file for (video, model, sampling), moving a damaged one aside: the path,
/// the file (empty when there was none or it was damaged) and what was wrong with it.
pub fn load_cache(
    video: &VideoToIndex,
    embedder: &dyn Embedder,
    options: &IndexOptions,
) -> (PathBuf, EmbeddingFile, Option<String>) {
    let header = video.header(embedder, options.sample_fps);
    let skip = options.skip_similar;
    let path = options
        .cache_dir
        .join(EmbeddingFile::file_name_skipping(&header, skip));
    store::cache::remove_stale_temporaries(&path);
    match EmbeddingFile::load_skipping(&path, &header, skip) {
        Ok(Some(file)) => (path, file, None),
        Ok(None) => (path, EmbeddingFile::with_skip(header, skip), None),
        Err(e) => {
            tracing::warn!("{e}; indexing again");
            let file = EmbeddingFile::with_skip(header, skip);
            (path, file, Some(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::{EmbedError, ModelIdentity, PreparedImage};

    struct Named;

    impl Embedder for Named {
        fn identity(&self) -> ModelIdentity {
            ModelIdentity {
                name: "named".into(),
                revision: "r1".into(),
                dimension: 2,
            }
        }
        fn prepare_image(&self, _: &opencv::core::Mat) -> Result<PreparedImage, EmbedError> {
            Ok(PreparedImage::Cropped(Vec::new()))
        }
        fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(vec![vec![1.0, 0.0]; images.len()])
        }
        fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(vec![vec![0.0, 1.0]; texts.len()])
        }
    }

    fn video(dir: &Path) -> VideoToIndex {
        let path = dir.join("v.mp4");
        std::fs::write(&path, b"not decoded here: only fingerprinted").unwrap();
        let meta = Metadata {
            frames: 90,
            fps: 30.0,
            width: 64,
            height: 36,
            exact_count: true,
        };
        VideoToIndex::with_metadata(&path, meta).unwrap()
    }

    #[test]
    fn the_plan_and_the_header_follow_the_sampling() {
        let dir = tempfile::tempdir().unwrap();
        let video = video(dir.path());
        assert_eq!(video.plan(None).len(), 90);
        assert_eq!(
            video.plan(Some(2.0)),
            (0..6).map(|k| k * 15).collect::<Vec<u64>>()
        );
        let header = video.header(&Named, Some(2.0));
        assert_eq!(header.format_version, FORMAT_VERSION);
        assert_eq!(header.sample_fps_millis, Some(2000));
        assert_eq!(
            (header.video_frames, header.video_fps_micros),
            (90, 30_000_000)
        );
        assert_eq!(header.video, video.fingerprint);
        assert_eq!(video.header(&Named, None).sample_fps_millis, None);
    }

    #[test]
    fn a_file_that_cannot_be_read_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone.mp4");
        let meta = Metadata {
            frames: 1,
            fps: 1.0,
            width: 1,
            height: 1,
            exact_count: true,
        };
        let error = VideoToIndex::with_metadata(&missing, meta).unwrap_err();
        assert!(matches!(error, OpenError::Fingerprint { .. }), "{error:?}");
        assert!(error.to_string().contains(&missing.display().to_string()));
        assert_eq!(
            error.public(),
            error
                .to_string()
                .replace(&missing.display().to_string(), "gone.mp4")
        );
        let error = VideoToIndex::open(&missing, None).unwrap_err();
        assert!(
            matches!(error, OpenError::Video(VideoError::NotFound(_))),
            "{error:?}"
        );
    }

    #[test]
    fn a_damaged_cache_file_is_moved_aside_and_started_over() {
        let dir = tempfile::tempdir().unwrap();
        let video = video(dir.path());
        let options = IndexOptions::new(dir.path().join("cache"));
        std::fs::create_dir_all(&options.cache_dir).unwrap();
        let (path, file, problem) = load_cache(&video, &Named, &options);
        assert!(problem.is_none() && file.covered_frames().is_empty());
        assert!(
            !path.exists(),
            "nothing is written before the first checkpoint"
        );
        std::fs::write(&path, b"garbage").unwrap();
        let (again, file, problem) = load_cache(&video, &Named, &options);
        assert_eq!(again, path);
        assert!(file.covered_frames().is_empty());
        assert!(problem.is_some(), "the damage is reported");
        assert!(!path.exists(), "the damaged file was moved aside");
        let aside = std::fs::read_dir(&options.cache_dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".bad-"))
            .count();
        assert_eq!(aside, 1, "kept, never deleted");
    }
}
