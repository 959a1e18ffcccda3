//! The embedding cache file: one per (video content, model, sampling), in `embeddings/`.
//!
//! Layout: 8 magic bytes, a bincode 2 body (header, frame indices, vectors), and a 64-bit
//! FNV-1a checksum of the body. Writes are atomic (temporary file in the same folder, fsync,
//! rename, fsync of the folder), so a crash leaves either the old file or the new one. A file
//! that fails any check is moved aside, never deleted, and the caller rebuilds it.
//!
//! Submodules: `fingerprint` (a video's content fingerprint), `atomic` (framing, checksum,
//! atomic writes and checked reads), `text` (the text embedding cache).

mod atomic;
mod fingerprint;
mod text;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use atomic::{
    checked_body, corrupt, decode_bounded, encode, move_aside, read_checked_body, write_body,
};
pub use atomic::{framed, read_versioned, remove_stale_temporaries, write_versioned};
pub use fingerprint::VideoFingerprint;
pub use text::TextCache;

// This module names nothing else of the crate: the fuzz targets (server/fuzz) compile it alone.

/// Bumped whenever the layout or the meaning of a field changes. 3: frame numbers are FFmpeg's
/// presentation order (the frame index), and frames that cannot be decoded are recorded.
pub const FORMAT_VERSION: u32 = 3;

/// The model as recorded in a cache file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelKey {
    pub name: String,
    pub revision: String,
    pub dimension: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheHeader {
    pub format_version: u32,
    pub model: ModelKey,
    pub video: VideoFingerprint,
    /// Frames per second sampled; `None` = every frame.
    pub sample_fps_millis: Option<u32>,
    /// Frames in the video (the exact count).
    pub video_frames: u64,
    /// The video's frame rate in millionths of a frame per second, so that answers from the
    /// cache need not open the video at all.
    pub video_fps_micros: u64,
}

/// Embeddings of the sampled frames indexed so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingFile {
    pub header: CacheHeader,
    /// Indices of the indexed frames, ascending.
    pub frames: Vec<u64>,
    /// `frames.len() * dimension` values, row-major, each row L2-normalised.
    pub vectors: Vec<f32>,
    /// Planned frames that could not be decoded (a damaged file), ascending: they have no
    /// vector, and indexing went on past them.
    pub missing: Vec<u64>,
    /// Set when the index skipped frames nearly identical to the last embedded one. Stored
    /// after the rest of the body, so files without it (format 2 as first written) still read.
    #[serde(skip)]
    pub skip: Option<SkipRecord>,
}

/// What skipping similar frames did: which frames got a copy of the previous frame's vector
/// instead of their own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SkipRecord {
    /// The threshold: mean absolute difference of the model's input image, in thousandths of
    /// a grey level (0-255 scale).
    pub threshold_milli_levels: u32,
    /// Frames (ascending) whose vector was copied from the frame before, not embedded.
    pub reused: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read or write the cache file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a cache file of this app, or is damaged or truncated ({reason}); moved aside to {moved_to}")]
    Corrupt {
        path: PathBuf,
        reason: String,
        moved_to: PathBuf,
    },
    #[error("{path} was written by another cache format (version {found}, this build reads {expected}); moved aside to {moved_to}")]
    OtherFormat {
        path: PathBuf,
        found: u32,
        expected: u32,
        moved_to: PathBuf,
    },
    #[error("{path} holds another model's or video's embeddings; moved aside to {moved_to}")]
    Mismatch { path: PathBuf, moved_to: PathBuf },
}

impl EmbeddingFile {
    pub fn new(header: CacheHeader) -> Self {
        Self {
            header,
            frames: Vec::new(),
            vectors: Vec::new(),
            missing: Vec::new(),
            skip: None,
        }
    }

    /// A new file for an index that skips similar frames (`threshold` in grey levels).
    pub fn with_skip(header: CacheHeader, threshold: Option<f32>) -> Self {
        Self {
            skip: threshold.map(|t| SkipRecord {
                threshold_milli_levels: milli_levels(t),
                reused: Vec::new(),
            }),
            ..Self::new(header)
        }
    }

    pub fn dimension(&self) -> usize {
        self.header.model.dimension as usize
    }

    /// File name for this header inside the cache folder.
    pub fn file_name(header: &CacheHeader) -> String {
        Self::file_name_skipping(header, None)
    }

    /// File name for an index that skips frames closer than `skip` grey levels.
    pub fn file_name_skipping(header: &CacheHeader, skip: Option<f32>) -> String {
        let model = safe_name(
            &format!("{}-{}", header.model.name, header.model.revision),
            80,
        );
        let mut sampling = header
            .sample_fps_millis
            .map_or("all".to_string(), |m| format!("{m}mfps"));
        if let Some(threshold) = skip {
            sampling += &format!("-skip{}ml", milli_levels(threshold));
        }
        format!(
            "{}-{}-{model}-{sampling}.clipemb",
            header.video.short(),
            header.video.size
        )
    }

    /// Writes atomically: readers see the old file or the new one, never a mix.
    pub fn save(&self, path: &Path) -> Result<(), CacheError> {
        let mut body = encode(path, self)?;
        if let Some(skip) = &self.skip {
            body.extend(encode(path, skip)?);
        }
        write_body(path, &body)
    }

    /// The file and its optional skip record from a checked body.
    fn decode(body: &[u8]) -> Result<Self, String> {
        let (mut file, used): (Self, usize) = decode_bounded(body).map_err(|e| e.to_string())?;
        if used < body.len() {
            let (skip, tail): (SkipRecord, usize) =
                decode_bounded(&body[used..]).map_err(|e| format!("skip record: {e}"))?;
            if used + tail != body.len() {
                return Err("trailing bytes after the skip record".into());
            }
            file.skip = Some(skip);
        }
        if !file.is_consistent() {
            return Err("frames and vectors disagree".into());
        }
        Ok(file)
    }

    /// Reads a cache file written for `expected`. `Ok(None)`: no file yet. A file that fails a
    /// check is moved aside and reported as an error; the caller then starts a new one.
    pub fn load(path: &Path, expected: &CacheHeader) -> Result<Option<Self>, CacheError> {
        Self::load_skipping(path, expected, None)
    }

    /// [`load`](Self::load) for an index that skips similar frames with threshold `skip`.
    pub fn load_skipping(
        path: &Path,
        expected: &CacheHeader,
        skip: Option<f32>,
    ) -> Result<Option<Self>, CacheError> {
        let Some(body) = read_checked_body(path, FORMAT_VERSION)? else {
            return Ok(None);
        };
        let file = Self::decode(&body).map_err(|reason| corrupt(path, &reason))?;
        let threshold = |s: &Option<SkipRecord>| s.as_ref().map(|s| s.threshold_milli_levels);
        if file.header != *expected || threshold(&file.skip) != skip.map(milli_levels) {
            return Err(match move_aside(path) {
                Ok(moved_to) => CacheError::Mismatch {
                    path: path.to_path_buf(),
                    moved_to,
                },
                Err(source) => CacheError::Io {
                    path: path.to_path_buf(),
                    source,
                },
            });
        }
        Ok(Some(file))
    }

    /// Reads any readable cache file without judging its header or moving it (for `cache
    /// list`, and for answering from a file found by the video's content).
    pub fn peek(path: &Path) -> Result<Self, String> {
        Self::from_bytes(&std::fs::read(path).map_err(|e| e.to_string())?)
    }

    /// A whole cache file's bytes (magic, body, checksum), checked and decoded.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let body = checked_body(bytes)?;
        match bincode::serde::decode_from_slice::<u32, _>(body, bincode::config::standard()) {
            Ok((FORMAT_VERSION, _)) => {}
            Ok((other, _)) => return Err(format!("cache format version {other}")),
            Err(e) => return Err(e.to_string()),
        }
        Self::decode(body)
    }

    /// Planned frames done so far: embedded, or found impossible to decode.
    pub fn covered(&self) -> usize {
        self.frames.len() + self.missing.len()
    }

    /// The frames done so far (embedded or missing), ascending.
    pub fn covered_frames(&self) -> Vec<u64> {
        let mut all = [self.frames.as_slice(), self.missing.as_slice()].concat();
        all.sort_unstable();
        all
    }

    /// Appends the next indexed frame and its vector.
    pub fn push_embedded(&mut self, frame: u64, vector: &[f32]) {
        self.frames.push(frame);
        self.vectors.extend_from_slice(vector);
    }

    /// Appends the next frame with a copy of the vector before it: skipping similar frames
    /// found it nearly identical to the last embedded one. Indexing runs start by embedding,
    /// so there is always a vector before; the skip record notes the copy.
    pub fn push_reused(&mut self, frame: u64) {
        let start = self.vectors.len().saturating_sub(self.dimension());
        self.vectors.extend_from_within(start..);
        if let Some(skip) = self.skip.as_mut() {
            skip.reused.push(frame);
        }
        self.frames.push(frame);
    }

    /// Records the next planned frame as one that cannot be decoded: no vector.
    pub fn push_missing(&mut self, frame: u64) {
        self.missing.push(frame);
    }

    /// One vector per frame, frames ascending; missing frames ascending and not embedded.
    fn is_consistent(&self) -> bool {
        self.vectors.len() == self.frames.len() * self.dimension()
            && self.frames.windows(2).all(|w| w[0] < w[1])
            && self.missing.windows(2).all(|w| w[0] < w[1])
            && self
                .missing
                .iter()
                .all(|m| self.frames.binary_search(m).is_err())
    }
}

fn milli_levels(threshold: f32) -> u32 {
    (threshold.max(0.0) * 1000.0).round() as u32
}

/// `text` as a file-name part: letters, digits, `-` and `.` kept, anything else `_`, at most
/// `max` characters (model names hold `/` and `@`).
fn safe_name(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn header(model: &str) -> CacheHeader {
        CacheHeader {
            format_version: FORMAT_VERSION,
            model: ModelKey {
                name: model.into(),
                revision: "r1".into(),
                dimension: 4,
            },
            video: VideoFingerprint {
                size: 1000,
                chunks_hash: 42,
            },
            sample_fps_millis: None,
            video_frames: 10,
            video_fps_micros: 30_000_000,
        }
    }

    pub(super) fn sample() -> EmbeddingFile {
        let mut file = EmbeddingFile::new(header("tiny"));
        file.frames = vec![0, 1, 2];
        file.vectors = (0..12).map(|i| i as f32 / 12.0).collect();
        file
    }

    #[test]
    fn a_saved_file_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EmbeddingFile::file_name(&header("tiny")));
        assert!(EmbeddingFile::load(&path, &header("tiny"))
            .unwrap()
            .is_none());
        sample().save(&path).unwrap();
        assert_eq!(
            EmbeddingFile::load(&path, &header("tiny")).unwrap(),
            Some(sample())
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn another_models_file_is_not_mixed_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.clipemb");
        sample().save(&path).unwrap();
        let error = EmbeddingFile::load(&path, &header("other")).unwrap_err();
        assert!(matches!(error, CacheError::Mismatch { .. }), "{error}");
        assert!(!path.exists());
    }
}
