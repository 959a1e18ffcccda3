//! The embedding cache file: one per (video content, model, sampling), in `embeddings/`.
//!
//! Layout: 8 magic bytes, a bincode 2 body (header, frame indices, vectors), and a 64-bit
//! FNV-1a checksum of the body. Writes are atomic (temporary file in the same folder, fsync,
//! rename, fsync of the folder), so a crash leaves either the old file or the new one. A file
//! that fails any check is moved aside, never deleted, and the caller rebuilds it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fnv::Fnv64;

// This module names nothing else of the crate: the fuzz targets (server/fuzz) compile it alone.

/// Bumped whenever the layout or the meaning of a field changes. 3: frame numbers are FFmpeg's
/// presentation order (the frame index), and frames that cannot be decoded are recorded.
pub const FORMAT_VERSION: u32 = 3;
const MAGIC: &[u8; 8] = b"CLIPVIC\x01";
/// Bytes hashed at the start, middle and end of a video for its fingerprint.
const FINGERPRINT_CHUNK: u64 = 64 * 1024;

/// Identifies a video by content, not by path: a renamed file still hits, an edited one misses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoFingerprint {
    pub size: u64,
    pub chunks_hash: u64,
}

impl VideoFingerprint {
    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        let mut hash = Fnv64::new();
        let mut chunk = vec![0u8; FINGERPRINT_CHUNK as usize];
        for start in [
            0,
            size.saturating_sub(FINGERPRINT_CHUNK) / 2,
            size.saturating_sub(FINGERPRINT_CHUNK),
        ] {
            file.seek(SeekFrom::Start(start))?;
            let n = read_up_to(&mut file, &mut chunk)?;
            hash.update(&chunk[..n]);
        }
        hash.update(&size.to_le_bytes());
        Ok(Self {
            size,
            chunks_hash: hash.finish(),
        })
    }

    pub fn short(&self) -> String {
        format!("{:016x}", self.chunks_hash)
    }
}

fn read_up_to(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

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

/// bincode decoding with a byte budget. bincode allocates what a length field claims before it
/// reads the bytes, so an unbounded decode of a damaged or hostile file (with a valid checksum)
/// could ask for exabytes and abort the process (found by `mutated_bodies_decode_or_are_refused`).
/// The budget is a power of two at least 8x the body: valid files claim at most about their
/// body's size (plus 8 bytes per varint-encoded u64), so only impossible claims fail.
fn decode_bounded<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    use bincode::config::standard;
    use bincode::serde::decode_from_slice;
    let need = body.len().saturating_mul(8);
    if need <= 1 << 20 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 20 }>())
    } else if need <= 1 << 24 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 24 }>())
    } else if need <= 1 << 28 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 28 }>())
    } else if need <= 1 << 32 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 32 }>())
    } else if need <= 1 << 36 {
        decode_from_slice(body, standard().with_limit::<{ 1 << 36 }>())
    } else {
        decode_from_slice(body, standard().with_limit::<{ 1 << 40 }>())
    }
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

/// Magic + `body` + checksum: a cache file's bytes.
pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut checksum = Fnv64::new();
    checksum.update(body);
    [MAGIC.as_slice(), body, &checksum.finish().to_le_bytes()].concat()
}

/// The body between magic and checksum, if both are right.
fn checked_body(bytes: &[u8]) -> Result<&[u8], String> {
    if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("no cache header".into());
    }
    let (body, tail) = bytes[MAGIC.len()..].split_at(bytes.len() - MAGIC.len() - 8);
    let mut checksum = Fnv64::new();
    checksum.update(body);
    if tail != checksum.finish().to_le_bytes() {
        return Err("checksum mismatch".into());
    }
    Ok(body)
}

fn corrupt(path: &Path, reason: &str) -> CacheError {
    match move_aside(path) {
        Ok(moved_to) => CacheError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.to_string(),
            moved_to,
        },
        Err(source) => CacheError::Io {
            path: path.to_path_buf(),
            source,
        },
    }
}

/// Writes `value` (whose first field is its `u32` format version) atomically: a temporary
/// file in the same folder, fsync, rename, fsync of the folder. Other files of the cache
/// folder (the frame index) are written this way too.
pub fn write_versioned<T: Serialize>(path: &Path, value: &T) -> Result<(), CacheError> {
    write_body(path, &encode(path, value)?)
}

fn encode<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, CacheError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| CacheError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Writes magic + `body` + checksum atomically (see [`write_versioned`]).
fn write_body(path: &Path, body: &[u8]) -> Result<(), CacheError> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let io = |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    // Unique per process and write, so concurrent writers never share a temporary file.
    let temporary = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&temporary)?;
        file.write_all(&framed(body))?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // Make the rename itself durable.
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        io(e)
    })
}

/// Removes temporary files that a killed writer of `path` left beside it (a write in progress
/// when the process died): named `.NAME.tmp-PID-N`, from a process that no longer runs.
pub fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(
                    "removed {}, left by a process that died while writing",
                    entry.path().display()
                ),
                Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
}

/// Reads a file written by [`write_versioned`] whose first field is `version`. `Ok(None)`: no
/// file. Damaged files and files of another format version are moved aside and reported.
pub fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
    version: u32,
) -> Result<Option<T>, CacheError> {
    let Some(body) = read_checked_body(path, version)? else {
        return Ok(None);
    };
    decode_bounded(&body)
        .map(|(value, _)| Some(value))
        .map_err(|e| corrupt(path, &e.to_string()))
}

/// The checked body of a file of format `version` (see [`read_versioned`]).
fn read_checked_body(path: &Path, version: u32) -> Result<Option<Vec<u8>>, CacheError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CacheError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let body = checked_body(&bytes).map_err(|reason| corrupt(path, &reason))?;
    // The version is the first field: check it before trusting the rest of the layout.
    let found: u32 = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map(|(v, _)| v)
        .map_err(|_| corrupt(path, "unreadable version"))?;
    if found != version {
        return Err(match move_aside(path) {
            Ok(moved_to) => CacheError::OtherFormat {
                path: path.to_path_buf(),
                found,
                expected: version,
                moved_to,
            },
            Err(source) => CacheError::Io {
                path: path.to_path_buf(),
                source,
            },
        });
    }
    Ok(Some(body.to_vec()))
}

/// Text embeddings per (model, prompt), so a prompt costs one forward pass per model, ever.
pub struct TextCache {
    path: PathBuf,
    model: ModelKey,
    entries: std::collections::HashMap<String, Vec<f32>>,
}

#[derive(Serialize, Deserialize)]
struct TextCacheFile {
    format_version: u32,
    model: ModelKey,
    entries: Vec<(String, Vec<f32>)>,
}

/// Entries kept; past this the cache starts over (prompts are cheap to embed again).
const TEXT_CACHE_LIMIT: usize = 50_000;

impl TextCache {
    /// Opens the model's text cache in `dir`; a damaged file is moved aside (and logged) and
    /// the cache starts empty.
    pub fn open(dir: &Path, model: ModelKey) -> Self {
        let name = safe_name(&format!("texts-{}-{}", model.name, model.revision), 100);
        let path = dir.join(format!("{name}.clipemb"));
        let entries = match read_versioned::<TextCacheFile>(&path, FORMAT_VERSION) {
            Ok(Some(file)) if file.model == model => file.entries.into_iter().collect(),
            Ok(Some(_)) => {
                tracing::warn!(
                    "{} holds another model's texts; starting over",
                    path.display()
                );
                Default::default()
            }
            Ok(None) => Default::default(),
            Err(e) => {
                tracing::warn!("{e}");
                Default::default()
            }
        };
        Self {
            path,
            model,
            entries,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, text: &str) -> Option<&Vec<f32>> {
        self.entries.get(text)
    }

    /// Embeddings of `texts`, computing (in batches, with `embed_texts`) and saving only the
    /// ones not cached.
    pub fn embed<E>(
        &mut self,
        mut embed_texts: impl FnMut(&[String]) -> Result<Vec<Vec<f32>>, E>,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, E> {
        let mut missing: Vec<String> = texts
            .iter()
            .filter(|t| !self.entries.contains_key(*t))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            if self.entries.len() + missing.len() > TEXT_CACHE_LIMIT {
                self.entries.clear();
            }
            for chunk in missing.chunks(64) {
                let vectors = embed_texts(chunk)?;
                self.entries.extend(chunk.iter().cloned().zip(vectors));
            }
            let file = TextCacheFile {
                format_version: FORMAT_VERSION,
                model: self.model.clone(),
                entries: self
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            // A failed write costs only a recomputation later.
            if let Err(e) = write_versioned(&self.path, &file) {
                tracing::warn!("{e}");
            }
        }
        Ok(texts.iter().map(|t| self.entries[t].clone()).collect())
    }
}

/// Renames a bad file to `NAME.bad-N` beside it, keeping it for inspection.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    for n in 1.. {
        let target = PathBuf::from(format!("{}.bad-{n}", path.display()));
        if !target.exists() {
            std::fs::rename(path, &target)?;
            tracing::warn!(
                "moved the unreadable cache file {} aside to {}",
                path.display(),
                target.display()
            );
            return Ok(target);
        }
    }
    unreachable!("an unused name exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(model: &str) -> CacheHeader {
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

    fn sample() -> EmbeddingFile {
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
    fn damaged_files_are_moved_aside_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.clipemb");
        sample().save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x40;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated mid-write", good[..good.len() * 2 / 3].to_vec()),
            ("bit flip", flipped),
            ("garbage", b"hello, this is not a cache".repeat(10)),
            ("empty", Vec::new()),
        ];
        for (what, bytes) in cases {
            std::fs::write(&path, &bytes).unwrap();
            let error = EmbeddingFile::load(&path, &header("tiny")).unwrap_err();
            let CacheError::Corrupt { moved_to, .. } = &error else {
                panic!("{what}: {error}")
            };
            assert!(!path.exists(), "{what}");
            assert_eq!(
                std::fs::read(moved_to).unwrap(),
                bytes,
                "{what}: kept as it was"
            );
        }
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

    #[test]
    fn another_format_version_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.clipemb");
        let mut old = sample();
        old.header.format_version = FORMAT_VERSION + 1;
        old.save(&path).unwrap();
        let error = EmbeddingFile::load(&path, &header("tiny")).unwrap_err();
        assert!(
            matches!(error, CacheError::OtherFormat { found, .. } if found == FORMAT_VERSION + 1),
            "{error}"
        );
    }

    #[test]
    fn fingerprints_follow_content_not_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.mp4");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&a, &bytes).unwrap();
        let renamed = dir.path().join("renamed.mp4");
        std::fs::copy(&a, &renamed).unwrap();
        assert_eq!(
            VideoFingerprint::of_file(&a).unwrap(),
            VideoFingerprint::of_file(&renamed).unwrap()
        );
        let mut edited = bytes.clone();
        edited[10] ^= 1;
        std::fs::write(&renamed, &edited).unwrap();
        assert_ne!(
            VideoFingerprint::of_file(&a).unwrap(),
            VideoFingerprint::of_file(&renamed).unwrap()
        );
    }

    /// xorshift64*: reproducible mutations without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Mutation fuzzing of the decoder behind a valid checksum (what a file written by a buggy
    /// or hostile program would present): every mutant decodes to a consistent file or is
    /// refused; none panics or allocates what its length fields claim.
    /// The libFuzzer inputs committed under server/fuzz/seeds (crash inputs included), replayed
    /// on the stable toolchain: each decodes consistently or is refused, as a whole file and as
    /// a framed body.
    #[test]
    fn committed_fuzz_inputs_decode_or_are_refused() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/cache_file");
        let mut replayed = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            for candidate in [bytes.clone(), framed(&bytes)] {
                if let Ok(file) = EmbeddingFile::from_bytes(&candidate) {
                    assert!(file.is_consistent(), "{}", path.display());
                }
            }
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("crash-")
            {
                assert!(
                    EmbeddingFile::from_bytes(&bytes).is_err(),
                    "{}",
                    path.display()
                );
                assert!(EmbeddingFile::from_bytes(&framed(&bytes)).is_err());
            }
            replayed += 1;
        }
        assert!(replayed >= 4, "{replayed} inputs in {}", dir.display());
    }

    #[test]
    fn mutated_bodies_decode_or_are_refused() {
        let mut file = sample();
        file.skip = Some(SkipRecord {
            threshold_milli_levels: 1000,
            reused: vec![1],
        });
        let path = Path::new("fuzz.clipemb");
        let mut body = encode(path, &file).unwrap();
        body.extend(encode(path, file.skip.as_ref().unwrap()).unwrap());
        assert_eq!(EmbeddingFile::decode(&body).unwrap(), file);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let (mut decoded, mut refused) = (0, 0);
        for round in 0..20_000 {
            let mut mutant = body.clone();
            match next(&mut state) % 5 {
                0 => {
                    for _ in 0..1 + next(&mut state) % 4 {
                        let at = (next(&mut state) % mutant.len() as u64) as usize;
                        mutant[at] ^= 1 << (next(&mut state) % 8);
                    }
                }
                1 => mutant.truncate((next(&mut state) % body.len() as u64) as usize),
                2 => {
                    let at = (next(&mut state) % mutant.len() as u64) as usize;
                    let extra: Vec<u8> = (0..1 + next(&mut state) % 16)
                        .map(|_| next(&mut state) as u8)
                        .collect();
                    mutant.splice(at..at, extra);
                }
                // Length and count fields claiming enormous sizes (bincode's varint markers).
                3 => {
                    let at = (next(&mut state) % mutant.len() as u64) as usize;
                    let marker = [0xfb, 0xfc, 0xfd][(next(&mut state) % 3) as usize];
                    mutant.splice(
                        at..at,
                        [marker, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
                    );
                }
                _ => {
                    let at = (next(&mut state) % mutant.len() as u64) as usize;
                    mutant[at] = next(&mut state) as u8;
                }
            }
            let result = std::panic::catch_unwind(|| EmbeddingFile::decode(&mutant));
            match result {
                Ok(Ok(f)) => {
                    assert!(f.is_consistent(), "round {round}");
                    decoded += 1;
                }
                Ok(Err(_)) => refused += 1,
                Err(_) => panic!("round {round}: the decoder panicked on {mutant:?}"),
            }
        }
        assert!(refused > 10_000, "{refused} refused, {decoded} decoded");
    }
}
