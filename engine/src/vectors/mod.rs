//! The library's vector index, per model: every cache file's rows as a segment
//! (`store::vectors`), scanned as int8 codes on all cores and re-ranked from the f32 vectors,
//! so the scores a search gives are exact cosines.
//!
//! Why a scan and not a graph index: `cargo bench -p server --bench library_search` measured
//! both at 10^5 and 10^6 vectors (the README's table): the scan meets the query and memory goals
//! with recall 1.0 by construction of its candidates' re-rank, builds in no time and appends a
//! row as cheaply as it is embedded, and adds no dependency; an HNSW graph answers faster but
//! costs minutes to build and its recall is a tuning matter.
//!
//! Invariants: segments only ever mirror cache files (synced from them, never written
//! otherwise); a segment whose cache file is gone is dropped at the next sync of the folder;
//! a cache file whose rows are not a superset of its segment's (it was rebuilt) gets a new
//! segment. [`VectorStore`] is the one seam a distributed engine would fill.

pub mod quantize;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use store::cache::{EmbeddingFile, ModelKey};
use store::vectors::{
    lock_folder, NewRows, Segment, SegmentError, SegmentHeader, SEGMENT_FORMAT_VERSION,
};

use crate::sync::{read, write};
use quantize::{best_rows, dot_f32, quantize};

#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error("cannot lock the library index folder {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the query has {given} dimensions; the model's vectors have {expected}")]
    Dimension { given: usize, expected: usize },
}

/// How much a search looks at.
#[derive(Clone, Copy, Debug)]
pub struct SearchLimits {
    /// Candidate rows kept per video by the int8 scan.
    pub per_video: usize,
    /// Videos whose candidates are re-ranked exactly (the best by their best candidate).
    pub videos: usize,
}

/// A video's best rows for a query, exact cosines, best first.
#[derive(Clone, Debug)]
pub struct VideoHits {
    pub header: SegmentHeader,
    /// `(frame, cosine)`.
    pub hits: Vec<(u64, f32)>,
    /// Rows the video has in the index.
    pub rows: usize,
}

/// What a sync did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncOutcome {
    pub appended: usize,
    /// The segment was written anew (new, or its cache file was rebuilt).
    pub rebuilt: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreStats {
    pub videos: usize,
    pub vectors: usize,
}

/// What a library search needs of a vector store.
pub trait VectorStore: Send + Sync {
    /// Brings the store up to date with a cache file's rows.
    fn sync(&self, cache_name: &str, file: &EmbeddingFile) -> Result<SyncOutcome, VectorError>;
    /// Drops the videos whose cache file `keep` refuses; how many were dropped.
    fn retain(&self, keep: &dyn Fn(&str) -> bool) -> Result<usize, VectorError>;
    /// Each allowed video's best rows for the unit vector `query`.
    fn search(
        &self,
        query: &[f32],
        allow: &dyn Fn(&SegmentHeader) -> bool,
        limits: SearchLimits,
    ) -> Result<Vec<VideoHits>, VectorError>;
    fn stats(&self) -> StoreStats;
}

/// The segments of one model in `cache_dir/library/MODEL/`.
pub struct VectorIndex {
    dir: PathBuf,
    model: ModelKey,
    segments: RwLock<HashMap<String, Segment>>,
}

/// The segment file of a cache file.
fn segment_name(cache_name: &str) -> String {
    format!("{}.vseg", cache_name.trim_end_matches(".clipemb"))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl VectorIndex {
    /// The index of `model`'s caches in `cache_dir`, as its segments are on disk (a damaged one
    /// is removed: the next sync rebuilds it from its cache file).
    pub fn open(cache_dir: &Path, model: &ModelKey) -> Self {
        let dir = cache_dir
            .join("library")
            .join(EmbeddingFile::model_part(model));
        let mut segments = HashMap::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "vseg") {
                continue;
            }
            match Segment::open(&path) {
                Ok(segment) if segment.header.model == *model => {
                    segments.insert(segment.header.cache_name.clone(), segment);
                }
                Ok(_) => {
                    tracing::warn!("{} holds another model's vectors; left out", path.display())
                }
                Err(error) => {
                    tracing::warn!("{error}; it will be rebuilt from its cache file");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Self {
            dir,
            model: model.clone(),
            segments: RwLock::new(segments),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn model(&self) -> &ModelKey {
        &self.model
    }

    /// Syncs every cache file of this model in `cache_dir` that changed since its segment was
    /// written (read whole: for the CLI, and the server's periodic look at the folder), but
    /// those `live` names (a running job's, synced from its memory), and drops the segments of
    /// cache files that are gone.
    pub fn sync_folder(
        &self,
        cache_dir: &Path,
        live: &dyn Fn(&str) -> bool,
    ) -> Result<SyncOutcome, VectorError> {
        let part = format!("-{}-", EmbeddingFile::model_part(&self.model));
        let mut present = Vec::new();
        let mut total = SyncOutcome::default();
        for entry in std::fs::read_dir(cache_dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if !name.ends_with(".clipemb") || !name.contains(&part) {
                continue;
            }
            present.push(name.clone());
            if live(&name) {
                continue;
            }
            let segment = self.dir.join(segment_name(&name));
            let stale = match (modified(&path), modified(&segment)) {
                (Some(cache), Some(seg)) => {
                    cache > seg || !read(&self.segments).contains_key(&name)
                }
                _ => true,
            };
            if !stale {
                continue;
            }
            match EmbeddingFile::peek(&path) {
                Ok(file) if file.header.model == self.model => {
                    let outcome = self.sync(&name, &file)?;
                    total.appended += outcome.appended;
                    total.rebuilt |= outcome.rebuilt;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    "library index: {} cannot be read ({error}); left out",
                    path.display()
                ),
            }
        }
        self.retain(&|name| present.iter().any(|p| p == name))?;
        Ok(total)
    }

    fn header_for(&self, cache_name: &str, file: &EmbeddingFile) -> SegmentHeader {
        SegmentHeader {
            format_version: SEGMENT_FORMAT_VERSION,
            model: self.model.clone(),
            cache_name: cache_name.to_string(),
            video: file.header.video.clone(),
            sample_fps_millis: file.header.sample_fps_millis,
            video_frames: file.header.video_frames,
            video_fps_micros: file.header.video_fps_micros,
        }
    }
}

/// The rows of `file` at `rows` (indices into it), quantized.
fn rows_of(file: &EmbeddingFile, rows: &[usize]) -> (Vec<u64>, Vec<f32>, Vec<i8>, Vec<f32>) {
    let dim = file.dimension();
    let mut frames = Vec::with_capacity(rows.len());
    let mut scales = Vec::with_capacity(rows.len());
    let mut codes = Vec::with_capacity(rows.len() * dim);
    let mut vectors = Vec::with_capacity(rows.len() * dim);
    for &r in rows {
        let v = &file.vectors[r * dim..(r + 1) * dim];
        frames.push(file.frames[r]);
        scales.push(quantize(v, &mut codes));
        vectors.extend_from_slice(v);
    }
    (frames, scales, codes, vectors)
}

/// The videos of an index a filter allows, and their vectors (one segment per video).
#[derive(Clone, Debug, Default)]
pub struct Among {
    pub videos: std::collections::HashSet<store::cache::VideoFingerprint>,
    pub vectors: usize,
}

impl VectorIndex {
    /// The videos `allow` lets through that have vectors, and how many vectors they have (a
    /// video's fullest segment).
    pub fn videos_among(&self, allow: &dyn Fn(&store::cache::VideoFingerprint) -> bool) -> Among {
        let segments = read(&self.segments);
        let mut fullest: HashMap<&store::cache::VideoFingerprint, usize> = HashMap::new();
        for s in segments
            .values()
            .filter(|s| !s.is_empty() && allow(&s.header.video))
        {
            let slot = fullest.entry(&s.header.video).or_default();
            *slot = (*slot).max(s.len());
        }
        Among {
            vectors: fullest.values().sum(),
            videos: fullest.into_keys().cloned().collect(),
        }
    }
}

impl VectorStore for VectorIndex {
    fn sync(&self, cache_name: &str, file: &EmbeddingFile) -> Result<SyncOutcome, VectorError> {
        let dim = file.dimension();
        if file.header.model != self.model || dim == 0 {
            return Ok(SyncOutcome::default());
        }
        let _lock = lock_folder(&self.dir).map_err(|source| VectorError::Lock {
            path: self.dir.clone(),
            source,
        })?;
        let header = self.header_for(cache_name, file);
        let path = self.dir.join(segment_name(cache_name));
        let mut segments = write(&self.segments);
        let kept = segments.remove(cache_name).filter(|s| s.header == header);
        // Another writer (the CLI, another server) may have appended since: then read it again.
        let on_disk = std::fs::metadata(&path).map(|m| m.len()).ok();
        let current = match kept {
            Some(segment) if Some(segment.seen_len()) == on_disk => Some(segment),
            _ => Segment::open(&path).ok().filter(|s| s.header == header),
        };
        // Rows are only ever added to a cache file: as many rows, nothing new.
        let current = match current {
            Some(segment) if segment.len() == file.frames.len() => {
                segments.insert(cache_name.to_string(), segment);
                return Ok(SyncOutcome::default());
            }
            other => other,
        };
        let (rows, rebuilt) = match &current {
            Some(segment) => {
                let mut have = segment.rows.frames.clone();
                have.sort_unstable();
                let new: Vec<usize> = (0..file.frames.len())
                    .filter(|&r| have.binary_search(&file.frames[r]).is_err())
                    .collect();
                // Every frame the segment has must still be in the cache file.
                let kept = have.iter().all(|f| file.frames.binary_search(f).is_ok());
                if kept {
                    (new, false)
                } else {
                    ((0..file.frames.len()).collect(), true)
                }
            }
            None => ((0..file.frames.len()).collect(), true),
        };
        let (frames, scales, codes, vectors) = rows_of(file, &rows);
        let new = NewRows {
            frames: &frames,
            scales: &scales,
            codes: &codes,
            vectors: &vectors,
            dimension: dim,
        };
        let segment = match current {
            Some(mut segment) if !rebuilt => {
                segment.append(&new)?;
                segment
            }
            _ => Segment::create(&path, header, &new)?,
        };
        segments.insert(cache_name.to_string(), segment);
        Ok(SyncOutcome {
            appended: rows.len(),
            rebuilt,
        })
    }

    fn retain(&self, keep: &dyn Fn(&str) -> bool) -> Result<usize, VectorError> {
        let mut segments = write(&self.segments);
        let gone: Vec<String> = segments.keys().filter(|k| !keep(k)).cloned().collect();
        for name in &gone {
            if let Some(segment) = segments.remove(name) {
                let _ = std::fs::remove_file(&segment.path);
            }
        }
        Ok(gone.len())
    }

    fn search(
        &self,
        query: &[f32],
        allow: &dyn Fn(&SegmentHeader) -> bool,
        limits: SearchLimits,
    ) -> Result<Vec<VideoHits>, VectorError> {
        let expected = self.model.dimension as usize;
        if query.len() != expected {
            return Err(VectorError::Dimension {
                given: query.len(),
                expected,
            });
        }
        let mut query_code = Vec::with_capacity(expected);
        let query_scale = quantize(query, &mut query_code);
        let segments = read(&self.segments);
        // One segment per video: where a video has caches of several samplings, the fullest.
        let mut chosen: HashMap<&store::cache::VideoFingerprint, &Segment> = HashMap::new();
        for segment in segments
            .values()
            .filter(|s| allow(&s.header) && !s.is_empty())
        {
            let slot = chosen.entry(&segment.header.video).or_insert(segment);
            if segment.len() > slot.len() {
                *slot = segment;
            }
        }
        let chosen: Vec<&Segment> = chosen.into_values().collect();
        // The int8 scan, the segments shared between the cores.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = chosen.len().div_ceil(threads.max(1)).max(1);
        let mut candidates: Vec<(&Segment, Vec<(usize, f32)>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = chosen
                .chunks(per_thread)
                .map(|part| {
                    let query_code = &query_code;
                    scope.spawn(move || {
                        part.iter()
                            .map(|s| {
                                let best = best_rows(
                                    query_code,
                                    query_scale,
                                    &s.rows.codes,
                                    &s.rows.scales,
                                    expected,
                                    limits.per_video,
                                );
                                (*s, best)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let best_of = |c: &Vec<(usize, f32)>| c.first().map_or(f32::NEG_INFINITY, |b| b.1);
        candidates.sort_by(|a, b| best_of(&b.1).total_cmp(&best_of(&a.1)));
        candidates.truncate(limits.videos);
        // The exact re-rank, from the f32 rows in the segment files.
        let mut out = Vec::with_capacity(candidates.len());
        for (segment, rows) in candidates {
            let file = File::open(&segment.path).map_err(|source| SegmentError::Io {
                path: segment.path.clone(),
                source,
            })?;
            let mut hits = Vec::with_capacity(rows.len());
            for (row, _) in rows {
                let vector =
                    segment
                        .read_vector(&file, row)
                        .map_err(|source| SegmentError::Io {
                            path: segment.path.clone(),
                            source,
                        })?;
                hits.push((segment.rows.frames[row], dot_f32(query, &vector)));
            }
            hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            out.push(VideoHits {
                header: segment.header.clone(),
                hits,
                rows: segment.len(),
            });
        }
        Ok(out)
    }

    fn stats(&self) -> StoreStats {
        let segments = read(&self.segments);
        StoreStats {
            videos: segments.len(),
            vectors: segments.values().map(Segment::len).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::cache::{CacheHeader, VideoFingerprint, FORMAT_VERSION};

    fn model() -> ModelKey {
        ModelKey {
            name: "m".into(),
            revision: "r".into(),
            dimension: 8,
        }
    }

    /// A cache file of `frames` whose vector for frame f points along axis f % 8 (and a bit
    /// along the next).
    fn cache(video: u64, frames: &[u64]) -> EmbeddingFile {
        let mut file = EmbeddingFile::new(CacheHeader {
            format_version: FORMAT_VERSION,
            model: model(),
            video: VideoFingerprint {
                size: video,
                chunks_hash: video,
            },
            sample_fps_millis: None,
            video_frames: 100,
            video_fps_micros: 30_000_000,
        });
        for &f in frames {
            let mut v = vec![0f32; 8];
            v[(f % 8) as usize] = 0.9;
            v[((f + 1) % 8) as usize] = 0.1 + (f as f32) * 1e-3;
            crate::embed::l2_normalize(&mut v);
            file.push_embedded(f, &v);
        }
        file
    }

    fn axis(i: usize) -> Vec<f32> {
        let mut v = vec![0f32; 8];
        v[i] = 1.0;
        v
    }

    const LIMITS: SearchLimits = SearchLimits {
        per_video: 4,
        videos: 10,
    };

    #[test]
    fn appends_survive_reopening_and_a_rebuilt_cache_gets_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let index = VectorIndex::open(dir.path(), &model());
        let partial = cache(1, &[0, 8, 16]);
        assert_eq!(
            index.sync("a.clipemb", &partial).unwrap(),
            SyncOutcome {
                appended: 3,
                rebuilt: true
            }
        );
        let more = cache(1, &[0, 3, 8, 11, 16]);
        assert_eq!(
            index.sync("a.clipemb", &more).unwrap(),
            SyncOutcome {
                appended: 2,
                rebuilt: false
            }
        );
        assert_eq!(
            index.sync("a.clipemb", &more).unwrap().appended,
            0,
            "nothing twice"
        );
        let reopened = VectorIndex::open(dir.path(), &model());
        assert_eq!(
            reopened.stats(),
            StoreStats {
                videos: 1,
                vectors: 5
            }
        );
        // Exact cosines, best first: frames 3 and 11 point along axis 3.
        let found = reopened.search(&axis(3), &|_| true, LIMITS).unwrap();
        let frames: Vec<u64> = found[0].hits.iter().map(|h| h.0).collect();
        assert_eq!(&frames[..2], &[3, 11]);
        let exact = dot_f32(&axis(3), &more.vectors[8..16]);
        assert_eq!(found[0].hits[0].1, exact);
        // The cache file was rebuilt without frame 16: the segment follows it.
        let rebuilt = cache(1, &[0, 3]);
        assert!(reopened.sync("a.clipemb", &rebuilt).unwrap().rebuilt);
        assert_eq!(reopened.stats().vectors, 2);
    }

    #[test]
    fn the_folder_sync_follows_the_cache_files_and_filters_choose_videos() {
        let dir = tempfile::tempdir().unwrap();
        let name = |video: u64| EmbeddingFile::file_name(&cache(video, &[]).header);
        for video in [1, 2] {
            cache(video, &[1, 2, 3, 9])
                .save(&dir.path().join(name(video)))
                .unwrap();
        }
        let index = VectorIndex::open(dir.path(), &model());
        assert_eq!(
            index.sync_folder(dir.path(), &|_| false).unwrap().appended,
            8
        );
        assert_eq!(
            index.sync_folder(dir.path(), &|_| false).unwrap().appended,
            0,
            "unchanged files are not read"
        );
        let only_2 = |h: &SegmentHeader| h.video.size == 2;
        let found = index.search(&axis(1), &only_2, LIMITS).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].header.video.size, 2);
        assert_eq!(found[0].hits[0].0, 1, "frames 1 and 9 point along axis 1");
        // A cache file removed: its video leaves the index.
        std::fs::remove_file(dir.path().join(name(1))).unwrap();
        index.sync_folder(dir.path(), &|_| false).unwrap();
        assert_eq!(index.stats().videos, 1);
        assert!(matches!(
            index.search(&[1.0; 3], &|_| true, LIMITS),
            Err(VectorError::Dimension {
                given: 3,
                expected: 8
            })
        ));
    }
}
