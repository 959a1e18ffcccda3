//! The library's vector segments: for each embedding cache file, an append log of its rows in a
//! form a library-wide search scans quickly (int8 codes with a scale per row) beside the exact
//! f32 rows it re-ranks with. Derived data: the cache files stay the source of truth, and a
//! segment that is missing, damaged or of another format is rebuilt from its cache file.
//!
//! File: `CLIPVSEG`, a `u32` header length, the bincode header, its 64-bit FNV-1a checksum,
//! then blocks, each `u32` rows, `u32` dimension, a 64-bit FNV-1a checksum of its payload, and
//! the payload: frames (`u64`), scales (`f32`), codes (`i8`, rows x dimension), vectors (`f32`,
//! rows x dimension), all little-endian.
//!
//! Invariants: a segment is created whole (atomically, header and first rows); rows are only
//! ever appended, one block per append, written and fsynced before the next; a block that does
//! not check (a writer killed mid-append) ends the segment for readers, and the next writer
//! (holding the folder's lock) cuts it off before appending. A row's vector is read back from
//! the file at its offset, so a segment's f32 rows need no memory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::{write_atomically, ModelKey, VideoFingerprint};
use crate::fnv::Fnv64;

const MAGIC: &[u8; 8] = b"CLIPVSEG";
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Longest header a segment may claim (a damaged length field allocates nothing larger).
const MAX_HEADER_BYTES: u32 = 1 << 16;
/// Largest dimension a block may claim.
const MAX_DIMENSION: u32 = 1 << 14;

/// What a segment mirrors: one cache file (a video's content, a model, a sampling).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHeader {
    pub format_version: u32,
    pub model: ModelKey,
    /// The cache file's name (in the cache folder).
    pub cache_name: String,
    pub video: VideoFingerprint,
    pub sample_fps_millis: Option<u32>,
    pub video_frames: u64,
    pub video_fps_micros: u64,
}

/// The rows of a segment held in memory: everything but the f32 vectors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SegmentRows {
    /// In the order appended (coarse-to-fine indexing appends out of frame order).
    pub frames: Vec<u64>,
    pub scales: Vec<f32>,
    /// `frames.len() * dimension`.
    pub codes: Vec<i8>,
    /// Where each row's f32 vector starts in the file.
    pub vector_at: Vec<u64>,
}

/// One segment file, read.
#[derive(Debug)]
pub struct Segment {
    pub path: PathBuf,
    pub header: SegmentHeader,
    pub rows: SegmentRows,
    /// Where the checked content ends (a torn block after it is ignored).
    end: u64,
    /// Bytes after `end` that did not check.
    pub torn: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a vector segment of this app, or is damaged ({reason})")]
    Damaged { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut fnv = Fnv64::new();
    fnv.update(bytes);
    fnv.finish()
}

/// One block's bytes.
fn block(
    frames: &[u64],
    scales: &[f32],
    codes: &[i8],
    vectors: &[f32],
    dimension: usize,
) -> Vec<u8> {
    let rows = frames.len();
    let mut payload = Vec::with_capacity(rows * (12 + dimension * 5));
    for f in frames {
        payload.extend_from_slice(&f.to_le_bytes());
    }
    for s in scales {
        payload.extend_from_slice(&s.to_le_bytes());
    }
    payload.extend(codes.iter().map(|&c| c as u8));
    for v in vectors {
        payload.extend_from_slice(&v.to_le_bytes());
    }
    let mut out = Vec::with_capacity(16 + payload.len());
    out.extend_from_slice(&(rows as u32).to_le_bytes());
    out.extend_from_slice(&(dimension as u32).to_le_bytes());
    out.extend_from_slice(&checksum(&payload).to_le_bytes());
    out.extend(payload);
    out
}

impl Segment {
    /// Writes a new segment at `path` holding `rows` (replacing any file there, atomically).
    pub fn create(
        path: &Path,
        header: SegmentHeader,
        rows: &NewRows<'_>,
    ) -> Result<Self, SegmentError> {
        let head = bincode::serde::encode_to_vec(&header, bincode::config::standard())
            .map_err(|e| io(path)(std::io::Error::other(e.to_string())))?;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(head.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&head);
        bytes.extend_from_slice(&checksum(&head).to_le_bytes());
        let first = bytes.len() as u64;
        if !rows.frames.is_empty() {
            bytes.extend(block(
                rows.frames,
                rows.scales,
                rows.codes,
                rows.vectors,
                rows.dimension,
            ));
        }
        write_atomically(path, &bytes).map_err(io(path))?;
        let mut segment = Self {
            path: path.to_path_buf(),
            header,
            rows: SegmentRows::default(),
            end: first,
            torn: 0,
        };
        if !rows.frames.is_empty() {
            segment.note_block(first, rows);
        }
        Ok(segment)
    }

    /// Reads the segment at `path`: its header and every block that checks (stopping at the
    /// first that does not).
    pub fn open(path: &Path) -> Result<Self, SegmentError> {
        let mut file = File::open(path).map_err(io(path))?;
        let length = file.metadata().map_err(io(path))?.len();
        let damaged = |reason: &str| SegmentError::Damaged {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let mut fixed = [0u8; 12];
        file.read_exact(&mut fixed)
            .map_err(|_| damaged("too short"))?;
        if &fixed[..8] != MAGIC {
            return Err(damaged("no segment header"));
        }
        let head_len = u32::from_le_bytes(fixed[8..12].try_into().unwrap_or_default());
        if head_len > MAX_HEADER_BYTES || 12 + u64::from(head_len) + 8 > length {
            return Err(damaged("header length"));
        }
        let mut head = vec![0u8; head_len as usize + 8];
        file.read_exact(&mut head).map_err(io(path))?;
        let (head, sum) = head.split_at(head_len as usize);
        if checksum(head).to_le_bytes() != sum {
            return Err(damaged("header checksum"));
        }
        let (header, _): (SegmentHeader, usize) = bincode::serde::decode_from_slice(
            head,
            bincode::config::standard().with_limit::<65536>(),
        )
        .map_err(|e| damaged(&e.to_string()))?;
        if header.format_version != SEGMENT_FORMAT_VERSION {
            return Err(damaged(&format!(
                "segment format {}",
                header.format_version
            )));
        }
        let dimension = header.model.dimension as usize;
        let mut segment = Self {
            path: path.to_path_buf(),
            header,
            rows: SegmentRows::default(),
            end: 12 + u64::from(head_len) + 8,
            torn: 0,
        };
        file.seek(SeekFrom::Start(segment.end)).map_err(io(path))?;
        loop {
            let mut fixed = [0u8; 16];
            if segment.end + 16 > length || file.read_exact(&mut fixed).is_err() {
                break;
            }
            let rows = u32::from_le_bytes(fixed[0..4].try_into().unwrap_or_default()) as u64;
            let dim = u32::from_le_bytes(fixed[4..8].try_into().unwrap_or_default());
            let sum = u64::from_le_bytes(fixed[8..16].try_into().unwrap_or_default());
            let payload_len = rows * (12 + 5 * u64::from(dim));
            if dim as usize != dimension
                || dim > MAX_DIMENSION
                || segment.end + 16 + payload_len > length
            {
                break;
            }
            let mut payload = vec![0u8; payload_len as usize];
            if file.read_exact(&mut payload).is_err() || checksum(&payload) != sum {
                break;
            }
            segment.read_block(segment.end, rows as usize, &payload);
        }
        segment.torn = length - segment.end;
        Ok(segment)
    }

    /// Rows from a checked block's payload (starting at `start` in the file).
    fn read_block(&mut self, start: u64, rows: usize, payload: &[u8]) {
        let dimension = self.header.model.dimension as usize;
        let (frames, rest) = payload.split_at(rows * 8);
        let (scales, rest) = rest.split_at(rows * 4);
        let (codes, _) = rest.split_at(rows * dimension);
        let r = &mut self.rows;
        r.frames.extend(
            frames
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default())),
        );
        r.scales.extend(
            scales
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap_or_default())),
        );
        r.codes.extend(codes.iter().map(|&b| b as i8));
        let vectors = start + 16 + (rows * (12 + dimension)) as u64;
        r.vector_at
            .extend((0..rows as u64).map(|i| vectors + i * 4 * dimension as u64));
        self.end = start + 16 + (rows * (12 + 5 * dimension)) as u64;
    }

    /// Notes the rows of a block just written at `start`.
    fn note_block(&mut self, start: u64, rows: &NewRows<'_>) {
        let dimension = rows.dimension;
        let n = rows.frames.len();
        let r = &mut self.rows;
        r.frames.extend_from_slice(rows.frames);
        r.scales.extend_from_slice(rows.scales);
        r.codes.extend_from_slice(rows.codes);
        let vectors = start + 16 + (n * (12 + dimension)) as u64;
        r.vector_at
            .extend((0..n as u64).map(|i| vectors + i * 4 * dimension as u64));
        self.end = start + 16 + (n * (12 + 5 * dimension)) as u64;
    }

    /// Appends `rows` as one block (after cutting off a torn tail). The caller holds the
    /// folder's lock: one writer at a time.
    pub fn append(&mut self, rows: &NewRows<'_>) -> Result<(), SegmentError> {
        if rows.frames.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let mut file = File::options().write(true).open(&path).map_err(io(&path))?;
        if self.torn > 0 {
            file.set_len(self.end).map_err(io(&path))?;
            self.torn = 0;
        }
        file.seek(SeekFrom::Start(self.end)).map_err(io(&path))?;
        file.write_all(&block(
            rows.frames,
            rows.scales,
            rows.codes,
            rows.vectors,
            rows.dimension,
        ))
        .and_then(|()| file.sync_data())
        .map_err(io(&path))?;
        let start = self.end;
        self.note_block(start, rows);
        Ok(())
    }

    /// The f32 vector of row `row`, read from the file.
    pub fn read_vector(&self, file: &File, row: usize) -> std::io::Result<Vec<f32>> {
        let dimension = self.header.model.dimension as usize;
        let mut bytes = vec![0u8; dimension * 4];
        file.read_exact_at(&mut bytes, self.rows.vector_at[row])?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap_or_default()))
            .collect())
    }

    /// The file's length when it was read or last written here: another writer appended
    /// where the file is longer now.
    pub fn seen_len(&self) -> u64 {
        self.end + self.torn
    }

    pub fn len(&self) -> usize {
        self.rows.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.frames.is_empty()
    }
}

/// Rows to write: frames, their scales and int8 codes, and their f32 vectors.
pub struct NewRows<'a> {
    pub frames: &'a [u64],
    pub scales: &'a [f32],
    pub codes: &'a [i8],
    pub vectors: &'a [f32],
    pub dimension: usize,
}

/// The folder's lock: one writer of its segments at a time (the server and the CLI included).
pub struct FolderLock {
    _file: File,
}

/// Locks `dir` for writing its segments (waiting for another holder), creating it.
pub fn lock_folder(dir: &Path) -> std::io::Result<FolderLock> {
    std::fs::create_dir_all(dir)?;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    file.lock()?;
    Ok(FolderLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dimension: u32) -> SegmentHeader {
        SegmentHeader {
            format_version: SEGMENT_FORMAT_VERSION,
            model: ModelKey {
                name: "m".into(),
                revision: "r".into(),
                dimension,
            },
            cache_name: "v.clipemb".into(),
            video: VideoFingerprint {
                size: 10,
                chunks_hash: 7,
            },
            sample_fps_millis: None,
            video_frames: 100,
            video_fps_micros: 30_000_000,
        }
    }

    fn rows(frames: &[u64], dimension: usize) -> (Vec<f32>, Vec<i8>, Vec<f32>) {
        let scales = frames.iter().map(|&f| f as f32 / 100.0).collect();
        let codes = (0..frames.len() * dimension)
            .map(|i| (i % 200) as i8)
            .collect();
        let vectors = (0..frames.len() * dimension)
            .map(|i| i as f32 * 0.5)
            .collect();
        (scales, codes, vectors)
    }

    #[test]
    fn appended_rows_read_back_with_their_vectors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.vseg");
        let (s, c, v) = rows(&[5, 9], 3);
        let first = NewRows {
            frames: &[5, 9],
            scales: &s,
            codes: &c,
            vectors: &v,
            dimension: 3,
        };
        let mut segment = Segment::create(&path, header(3), &first).unwrap();
        let (s2, c2, v2) = rows(&[1], 3);
        segment
            .append(&NewRows {
                frames: &[1],
                scales: &s2,
                codes: &c2,
                vectors: &v2,
                dimension: 3,
            })
            .unwrap();
        let read = Segment::open(&path).unwrap();
        assert_eq!(read.rows, segment.rows);
        assert_eq!(read.rows.frames, vec![5, 9, 1]);
        assert_eq!(read.header, header(3));
        let file = File::open(&path).unwrap();
        assert_eq!(read.read_vector(&file, 1).unwrap(), vec![1.5, 2.0, 2.5]);
        assert_eq!(read.read_vector(&file, 2).unwrap(), vec![0.0, 0.5, 1.0]);
    }

    #[test]
    fn a_torn_append_is_ignored_by_readers_and_cut_off_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.vseg");
        let (s, c, v) = rows(&[5, 9], 4);
        let frames = [5u64, 9];
        Segment::create(
            &path,
            header(4),
            &NewRows {
                frames: &frames,
                scales: &s,
                codes: &c,
                vectors: &v,
                dimension: 4,
            },
        )
        .unwrap();
        let good = std::fs::metadata(&path).unwrap().len();
        // A writer killed half way through a block.
        let torn = block(&[11, 12], &[1.0, 1.0], &[1; 8], &[0.5; 8], 4);
        let mut file = File::options().append(true).open(&path).unwrap();
        file.write_all(&torn[..torn.len() / 2]).unwrap();
        drop(file);
        let read = Segment::open(&path).unwrap();
        assert_eq!(read.rows.frames, vec![5, 9]);
        assert_eq!(read.torn, (torn.len() / 2) as u64);
        // The next writer cuts the torn tail off and appends after the good rows.
        let mut writer = Segment::open(&path).unwrap();
        writer
            .append(&NewRows {
                frames: &[20],
                scales: &[2.0],
                codes: &[3; 4],
                vectors: &[0.25; 4],
                dimension: 4,
            })
            .unwrap();
        let read = Segment::open(&path).unwrap();
        assert_eq!((read.rows.frames.clone(), read.torn), (vec![5, 9, 20], 0));
        assert!(std::fs::metadata(&path).unwrap().len() > good);
        // A damaged header is refused.
        std::fs::write(&path, b"CLIPVSEG\xff\xff\xff\xff").unwrap();
        assert!(matches!(
            Segment::open(&path),
            Err(SegmentError::Damaged { .. })
        ));
    }
}
