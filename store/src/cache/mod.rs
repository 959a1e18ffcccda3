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
mod records;
mod text;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use atomic::{
    checked_body, corrupt, decode_bounded, encode, move_aside, read_checked_body, write_body,
};
pub use atomic::{
    framed, read_versioned, remove_stale_temporaries, write_atomically, write_versioned,
};
pub use fingerprint::VideoFingerprint;
pub use records::{SceneRecord, SkipRecord};
pub use text::TextCache;

// This module names nothing else of the crate: the fuzz targets (server/fuzz) compile it alone.

/// Bumped whenever the layout or the meaning of a field changes. 3: frame numbers are FFmpeg's
/// presentation order (the frame index), and frames that cannot be decoded are recorded. 4: a
/// scene record (per-frame content change, for scene cuts) follows the body.
pub const FORMAT_VERSION: u32 = 4;
/// The oldest embedding-file format still read: a format-3 file reads with no scene record,
/// and the next index pass measures its cuts without embedding anything again.
pub const OLDEST_READABLE_VERSION: u32 = 3;
/// The text-embedding cache's format (unchanged by format 4 of the embedding files).
pub const TEXT_FORMAT_VERSION: u32 = 3;

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
    /// Every decoded frame's content change, for scene cuts; `None` in a format-3 file, whose
    /// cuts were never measured. Stored between the body and the skip record.
    #[serde(skip)]
    pub scene: Option<SceneRecord>,
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

/// Why a file cannot be read as a cache file, where it is only looked at ([`EmbeddingFile::peek`]:
/// nothing is moved aside).
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a cache file of this app, or damaged or truncated: why.
    #[error("{0}")]
    Damaged(String),
}

impl EmbeddingFile {
    pub fn new(header: CacheHeader) -> Self {
        Self {
            header,
            frames: Vec::new(),
            vectors: Vec::new(),
            missing: Vec::new(),
            skip: None,
            scene: Some(SceneRecord::default()),
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

    /// The part of a cache file's name that names its model (also the name of the model's
    /// folder in the library index).
    pub fn model_part(model: &ModelKey) -> String {
        safe_name(&format!("{}-{}", model.name, model.revision), 80)
    }

    /// File name for an index that skips frames closer than `skip` grey levels.
    pub fn file_name_skipping(header: &CacheHeader, skip: Option<f32>) -> String {
        let model = Self::model_part(&header.model);
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
        // Format 4 always has a scene record; a format-3 file read earlier gets an empty one.
        match &self.scene {
            Some(scene) => body.extend(encode(path, scene)?),
            None => body.extend(encode(path, &SceneRecord::default())?),
        }
        if let Some(skip) = &self.skip {
            body.extend(encode(path, skip)?);
        }
        write_body(path, &body)
    }

    /// The file, its scene record (format 4) and its optional skip record from a checked body
    /// of format `version`. A format-3 file comes back as format 4 with no scene record, so it
    /// matches today's headers and its next save is a format-4 file.
    fn decode(body: &[u8], version: u32) -> Result<Self, String> {
        let (mut file, mut used): (Self, usize) =
            decode_bounded(body).map_err(|e| e.to_string())?;
        if version >= 4 {
            let (scene, length): (SceneRecord, usize) =
                decode_bounded(&body[used..]).map_err(|e| format!("scene record: {e}"))?;
            used += length;
            file.scene = Some(scene);
        } else {
            file.header.format_version = FORMAT_VERSION;
        }
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
        let versions = OLDEST_READABLE_VERSION..=FORMAT_VERSION;
        let Some((version, body)) = read_checked_body(path, versions)? else {
            return Ok(None);
        };
        let file = Self::decode(&body, version).map_err(|reason| corrupt(path, &reason))?;
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
    pub fn peek(path: &Path) -> Result<Self, Unreadable> {
        Self::from_bytes(&std::fs::read(path)?)
    }

    /// A whole cache file's bytes (magic, body, checksum), checked and decoded.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Unreadable> {
        let body = checked_body(bytes).map_err(Unreadable::Damaged)?;
        let version =
            match bincode::serde::decode_from_slice::<u32, _>(body, bincode::config::standard()) {
                Ok((v, _)) if (OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&v) => v,
                Ok((other, _)) => {
                    return Err(Unreadable::Damaged(format!("cache format version {other}")))
                }
                Err(e) => return Err(Unreadable::Damaged(e.to_string())),
            };
        Self::decode(body, version).map_err(Unreadable::Damaged)
    }

    /// Planned frames done so far: embedded, or found impossible to decode.
    pub fn covered(&self) -> usize {
        self.frames.len() + self.missing.len()
    }

    /// Frames whose scene-cut measures are in the file (from frame 0; 0 when never measured).
    pub fn scene_measured(&self) -> u64 {
        self.scene.as_ref().map_or(0, SceneRecord::measured)
    }

    /// Whether every frame of the video has its scene-cut measures.
    pub fn scene_complete(&self) -> bool {
        self.scene_measured() >= self.header.video_frames
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

    /// The last row's vector (empty in an empty file).
    pub fn last_vector(&self) -> &[f32] {
        &self.vectors[self.vectors.len().saturating_sub(self.dimension())..]
    }

    /// Notes in the skip record that `frame`'s vector is a copy of the frame's before it.
    pub fn note_reused(&mut self, frame: u64) {
        if let Some(skip) = self.skip.as_mut() {
            skip.reused.push(frame);
        }
    }

    /// Records the next planned frame as one that cannot be decoded: no vector.
    pub fn push_missing(&mut self, frame: u64) {
        self.missing.push(frame);
    }

    /// Puts embedded frames, in any order and anywhere in the video, in their places: the file
    /// stays ascending, as if they had been appended in order (a coarse-to-fine index embeds
    /// frames out of order, and its finished file equals a straight index's). A frame already
    /// in the file gets the new vector. One pass over the rows after the first new frame.
    pub fn insert_embedded(&mut self, mut rows: Vec<(u64, Vec<f32>)>) {
        let dimension = self.dimension();
        rows.sort_unstable_by_key(|(frame, _)| *frame);
        rows.dedup_by_key(|(frame, _)| *frame);
        rows.retain(|(frame, vector)| {
            if vector.len() != dimension {
                return false;
            }
            match self.frames.binary_search(frame) {
                Ok(at) => {
                    self.vectors[at * dimension..(at + 1) * dimension].copy_from_slice(vector);
                    false
                }
                Err(_) => true,
            }
        });
        self.missing
            .retain(|m| rows.binary_search_by_key(m, |r| r.0).is_err());
        let old = self.frames.len();
        self.frames.resize(old + rows.len(), 0);
        self.vectors.resize((old + rows.len()) * dimension, 0.0);
        // Merge from the back: each old row after a new frame moves up once.
        let (mut kept, mut new, mut write) = (old, rows.len(), old + rows.len());
        while new > 0 {
            let (frame, vector) = &rows[new - 1];
            write -= 1;
            if kept > 0 && self.frames[kept - 1] > *frame {
                kept -= 1;
                self.frames[write] = self.frames[kept];
                self.vectors
                    .copy_within(kept * dimension..(kept + 1) * dimension, write * dimension);
            } else {
                self.frames[write] = *frame;
                self.vectors[write * dimension..(write + 1) * dimension].copy_from_slice(vector);
                new -= 1;
            }
        }
    }

    /// Records a planned frame, anywhere in the video, as one that cannot be decoded.
    pub fn insert_missing(&mut self, frame: u64) {
        if self.frames.binary_search(&frame).is_ok() {
            return;
        }
        if let Err(at) = self.missing.binary_search(&frame) {
            self.missing.insert(at, frame);
        }
    }

    /// One vector per frame, frames ascending; missing frames ascending and not embedded; the
    /// scene record's two measures cover the same frames, no more than the video has.
    fn is_consistent(&self) -> bool {
        let scene_fits = self.scene.as_ref().is_none_or(|s| {
            s.change.len() == s.persist.len() && s.measured() <= self.header.video_frames
        });
        scene_fits
            && self.vectors.len() == self.frames.len() * self.dimension()
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
        file.scene = Some(SceneRecord {
            change: vec![0.0, 1.5, 2.0, 40.0],
            persist: vec![0.0, 1.5, 2.0, 38.0],
        });
        file
    }

    /// Bytes equal as bits: the scene record holds NaN, which `==` never equals.
    fn same(a: &EmbeddingFile, b: &EmbeddingFile) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    #[test]
    fn the_scene_record_round_trips_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scene.clipemb");
        // A frame that did not decode has NaN measures.
        let mut with_gap = sample();
        with_gap.scene.as_mut().unwrap().change[2] = f32::NAN;
        with_gap.save(&path).unwrap();
        let back = EmbeddingFile::load(&path, &header("tiny"))
            .unwrap()
            .unwrap();
        assert!(same(&back, &with_gap), "{back:?}");
        let bytes = std::fs::read(&path).unwrap();
        assert!(same(&EmbeddingFile::from_bytes(&bytes).unwrap(), &with_gap));
        // Measures of more frames than the video has, or of unequal lengths, are refused.
        let mut long = sample();
        long.scene = Some(SceneRecord {
            change: vec![0.0; 11],
            persist: vec![0.0; 11],
        });
        assert!(!long.is_consistent());
        let mut uneven = sample();
        uneven.scene.as_mut().unwrap().persist.pop();
        assert!(!uneven.is_consistent());
    }

    #[test]
    fn a_format_3_file_reads_with_no_scene_record_and_saves_as_format_4() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.clipemb");
        // Format 3's layout: the body, then the optional skip record; no scene record.
        let mut old = sample();
        old.header.format_version = 3;
        old.skip = Some(SkipRecord {
            threshold_milli_levels: 500,
            reused: vec![2],
        });
        let mut body = atomic::encode(&path, &old).unwrap();
        body.extend(atomic::encode(&path, old.skip.as_ref().unwrap()).unwrap());
        atomic::write_body(&path, &body).unwrap();

        let read = EmbeddingFile::load_skipping(&path, &header("tiny"), Some(0.5))
            .unwrap()
            .unwrap();
        assert_eq!(read.header, header("tiny"), "read as today's format");
        assert_eq!(read.scene, None, "its cuts were never measured");
        assert_eq!(
            (read.frames.clone(), read.skip.clone()),
            (old.frames.clone(), old.skip.clone())
        );
        read.save(&path).unwrap();
        let again = EmbeddingFile::load_skipping(&path, &header("tiny"), Some(0.5))
            .unwrap()
            .unwrap();
        assert_eq!(again.scene, Some(SceneRecord::default()));
        assert_eq!(again.skip, old.skip);
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
    fn frames_inserted_in_any_order_equal_frames_appended_in_order() {
        let vector = |n: u64| (0..4).map(|i| (n * 10 + i) as f32).collect::<Vec<f32>>();
        let mut in_order = EmbeddingFile::new(header("tiny"));
        for n in 0..10 {
            if n == 6 {
                in_order.push_missing(n);
            } else {
                in_order.push_embedded(n, &vector(n));
            }
        }
        // Coarse to fine: every 4th frame, then the midpoints, then the rest, in batches.
        let mut coarse = EmbeddingFile::new(header("tiny"));
        let batches: [&[u64]; 4] = [&[0, 4, 8], &[2, 9], &[7, 5, 3, 1], &[6]];
        for batch in batches {
            let rows = batch.iter().filter(|&&n| n != 6).map(|&n| (n, vector(n)));
            coarse.insert_embedded(rows.collect());
            if batch.contains(&6) {
                coarse.insert_missing(6);
            }
        }
        assert_eq!(coarse, in_order);
        assert!(coarse.is_consistent());
        // A frame embedded again gets its new vector and stays one row.
        coarse.insert_embedded(vec![(4, vec![9.0; 4])]);
        assert_eq!(coarse.frames.len(), 9);
        assert_eq!(&coarse.vectors[16..20], &[9.0; 4]);
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
