//! One query across the library: the query's embedding (text through the model's text cache,
//! an image through the image tower), the model's vector index brought up to date with the
//! caches, the allowed videos (by id and folder, as the library lists them now: a video removed
//! or changed on disk is not among them), and the moments found, per video and across videos.
//!
//! Invariants: results name library ids and file names only; a video is matched to its vectors
//! by its content's fingerprint, so a renamed video keeps its vectors and a changed one loses
//! them; the scores are the vector index's exact cosines.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use investigator_core::library_search::{
    group_hits, LibraryAnswer, LibraryHit, LibraryQuery, DEFAULT_PER_VIDEO, MAX_LIBRARY_RESULTS,
    MAX_PER_VIDEO, MOMENT_GAP_S,
};
use store::cache::{ModelKey, TextCache, VideoFingerprint};

use super::files::stamp;
use super::{Library, LibraryError};
use crate::embed::{EmbedError, Embedder};
use crate::sync::lock;
use crate::vectors::{SearchLimits, VectorError, VectorIndex, VectorStore};
use crate::video::FrameIndex;

/// The folder sync reads cache files that changed; it runs at most this often per model.
const FOLDER_SYNC_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LibrarySearchError {
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error("the model cannot be loaded: {0}")]
    NoModel(String),
    #[error("type a text or choose an image to search for")]
    EmptyQuery,
    #[error("the uploaded file is not an image (JPEG, PNG, BMP or WebP)")]
    NotAnImage,
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Vectors(#[from] VectorError),
    #[error("{}", .0.public())]
    Video(#[from] crate::video::VideoError),
    #[error("the adapter belongs to the model {wanted}, but the library is searched with {loaded}: pass --model with the adapter's model")]
    OtherModel { wanted: String, loaded: String },
}

impl LibrarySearchError {
    /// Whether the request is at fault.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Self::EmptyQuery
                | Self::NotAnImage
                | Self::OtherModel { .. }
                | Self::Video(crate::video::VideoError::OutOfRange { .. })
                | Self::Library(
                    LibraryError::NotAnId
                        | LibraryError::NoSuchVideo(_)
                        | LibraryError::NoSuchModel(_)
                )
        )
    }
}

/// One allowed video: its id, file name, and its frame index where saved (exact times).
struct Allowed {
    id: String,
    name: String,
}

impl Library {
    /// The vector index of the model at `place` and the model, loading it if needed.
    pub(super) fn vectors(
        &self,
        place: usize,
    ) -> Result<(Arc<VectorIndex>, Arc<dyn Embedder>), LibrarySearchError> {
        let embedder = self.models[place]
            .model
            .get()
            .map_err(|e| LibrarySearchError::NoModel(e.to_string()))?;
        let key = ModelKey::from(&embedder.identity());
        let mut indexes = lock(&self.vector_indexes);
        let index = indexes
            .entry(place)
            .or_insert_with(|| Arc::new(VectorIndex::open(&self.index_options.cache_dir, &key)));
        Ok((Arc::clone(index), embedder))
    }

    /// Brings the vector index of the model at `place` up to date: the rows the running jobs
    /// have embedded since the last sync (from memory), then the cache files that changed on
    /// disk (the CLI's, a restarted server's), at most every few seconds.
    pub fn refresh_vectors(&self, place: usize) -> Result<Arc<VectorIndex>, LibrarySearchError> {
        let (index, _) = self.vectors(place)?;
        let mut live = Vec::new();
        for service in self
            .sessions()
            .iter()
            .filter_map(|s| s.index_of(place))
            .chain(self.background_service(place))
        {
            if let (Some(name), Some(store)) = (service.cache_name(), service.embeddings()) {
                let file = crate::sync::read(store);
                index.sync(name, &file)?;
                live.push(name.to_string());
            }
        }
        let due = {
            let mut last = lock(&self.folder_synced);
            let due = last
                .get(&place)
                .is_none_or(|t| t.elapsed() >= FOLDER_SYNC_EVERY);
            if due {
                last.insert(place, Instant::now());
            }
            due
        };
        if due {
            index.sync_folder(&self.index_options.cache_dir, &|name| {
                live.iter().any(|l| l == name)
            })?;
        }
        Ok(index)
    }

    /// The content fingerprint of a listed file, remembered until the file changes.
    pub(super) fn fingerprint(&self, path: &Path) -> Option<VideoFingerprint> {
        let stamp = stamp(path)?;
        if let Some((known, fingerprint)) = lock(&self.fingerprints).get(path) {
            if *known == stamp {
                return Some(fingerprint.clone());
            }
        }
        let fingerprint = VideoFingerprint::of_file(path).ok()?;
        lock(&self.fingerprints).insert(path.to_path_buf(), (stamp, fingerprint.clone()));
        Some(fingerprint)
    }

    /// The name of the library folder `path` lies in (the default video's: its own folder).
    pub fn folder_of(&self, path: &Path) -> String {
        let root = self
            .roots
            .iter()
            .find(|r| path.starts_with(r))
            .map(|r| r.as_path())
            .or_else(|| path.parent());
        root.and_then(|r| r.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The best moments across the library for `query`. Blocking: embeds the query, syncs the
    /// vector index, scans it.
    pub fn search_library(
        &self,
        query: &LibraryQuery,
    ) -> Result<LibraryAnswer, LibrarySearchError> {
        self.search_library_by(query, None)
    }

    /// [`search_library`](Self::search_library) by a direction of the model's embedding space
    /// (an adapted prompt's) instead of the query's text or image; `model` must be the model
    /// the direction belongs to.
    pub fn search_library_by_vector(
        &self,
        query: &LibraryQuery,
        vector: &[f32],
        model: &ModelKey,
    ) -> Result<LibraryAnswer, LibrarySearchError> {
        self.search_library_by(query, Some((vector, model)))
    }

    fn search_library_by(
        &self,
        query: &LibraryQuery,
        by_vector: Option<(&[f32], &ModelKey)>,
    ) -> Result<LibraryAnswer, LibrarySearchError> {
        let text = query
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if text.is_none() && query.image.is_none() && by_vector.is_none() {
            return Err(LibrarySearchError::EmptyQuery);
        }
        let place = self.model_place(query.model.as_deref())?;
        let files = self.files();
        for id in &query.videos {
            if !investigator_core::types::is_valid_video_id(id) {
                return Err(LibraryError::NotAnId.into());
            }
            if !files.iter().any(|(known, _)| known == id) {
                return Err(LibraryError::NoSuchVideo(id.clone()).into());
            }
        }
        let (_, embedder) = self.vectors(place)?;
        if let Some((vector, model)) = by_vector {
            let loaded = ModelKey::from(&embedder.identity());
            if &loaded != model || vector.len() != loaded.dimension as usize {
                return Err(LibrarySearchError::OtherModel {
                    wanted: format!("{} (revision {})", model.name, model.revision),
                    loaded: format!("{} (revision {})", loaded.name, loaded.revision),
                });
            }
        }
        let index = self.refresh_vectors(place)?;
        let mut vectors = Vec::new();
        if let Some((vector, _)) = by_vector {
            vectors.push(vector.to_vec());
        }
        if let Some(text) = text {
            let key = ModelKey::from(&embedder.identity());
            let mut texts = TextCache::open(&self.index_options.cache_dir, key);
            vectors.extend(texts.embed(|chunk| embedder.embed_texts(chunk), &[text.to_string()])?);
        }
        if let Some(bytes) = &query.image {
            let image = crate::video::decode_image(bytes)
                .ok()
                .filter(|m| !opencv::prelude::MatTraitConst::empty(m))
                .ok_or(LibrarySearchError::NotAnImage)?;
            vectors.extend(embedder.embed_images(std::slice::from_ref(&image))?);
        }
        let vector = crate::search::combine(&vectors);

        // The videos the filters allow, by their content as it is on disk now.
        let mut allowed: HashMap<VideoFingerprint, Allowed> = HashMap::new();
        for (id, path) in &files {
            if !query.videos.is_empty() && !query.videos.contains(id) {
                continue;
            }
            if !query.folders.is_empty() && !query.folders.contains(&self.folder_of(path)) {
                continue;
            }
            if let Some(fingerprint) = self.fingerprint(path) {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                allowed.insert(
                    fingerprint,
                    Allowed {
                        id: id.clone(),
                        name,
                    },
                );
            }
        }
        let top = query.top.clamp(1, MAX_LIBRARY_RESULTS);
        let wanted = (query.offset + top).min(MAX_LIBRARY_RESULTS + query.offset);
        let per_video = if query.per_video == 0 {
            DEFAULT_PER_VIDEO
        } else {
            query.per_video.min(MAX_PER_VIDEO)
        };
        let limits = SearchLimits {
            per_video: (per_video * 40).max(128),
            videos: wanted + 8,
        };
        let found = index.search(&vector, &|h| allowed.contains_key(&h.video), limits)?;

        let mut results = Vec::new();
        let mut partial = Vec::new();
        for video in &found {
            let Some(known) = allowed.get(&video.header.video) else {
                continue;
            };
            let fps = video.header.video_fps_micros as f64 / 1e6;
            let planned = investigator_core::scores::sampled_frames(
                video.header.video_frames,
                fps,
                video
                    .header
                    .sample_fps_millis
                    .map(|m| f64::from(m) / 1000.0),
            )
            .len();
            if video.rows < planned {
                partial.push(known.id.clone());
            }
            let frame_index = FrameIndex::saved(&self.index_options.cache_dir, &video.header.video);
            let time = |frame: u64| match &frame_index {
                Some(index) => index.time_s(frame),
                None if fps > 0.0 => frame as f64 / fps,
                None => 0.0,
            };
            let hits: Vec<(u64, f32)> = video
                .hits
                .iter()
                .copied()
                .filter(|h| query.min_score.is_none_or(|m| h.1 >= m))
                .collect();
            let gap = (MOMENT_GAP_S * fps).round().max(1.0) as u64;
            let moments = group_hits(&hits, gap)
                .into_iter()
                .filter(|m| fps <= 0.0 || (m.end - m.start + 1) as f64 / fps >= query.min_len_s)
                .take(per_video);
            for m in moments {
                results.push(LibraryHit {
                    video_id: known.id.clone(),
                    video: known.name.clone(),
                    frame: m.peak,
                    time_s: time(m.peak),
                    score: m.score,
                    start_frame: m.start,
                    end_frame: m.end,
                    start_s: time(m.start),
                    end_s: time(m.end) + if fps > 0.0 { 1.0 / fps } else { 0.0 },
                });
            }
        }
        results.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.video_id.cmp(&b.video_id))
                .then(a.frame.cmp(&b.frame))
        });
        let more = results.len() > query.offset + top;
        let results: Vec<LibraryHit> = results.into_iter().skip(query.offset).take(top).collect();
        partial.sort();
        partial.dedup();
        // Allowed videos the index has nothing of yet.
        let searched = index.videos_among(&|fp| allowed.contains_key(fp));
        let mut not_indexed: Vec<String> = allowed
            .iter()
            .filter(|(fp, _)| !searched.videos.contains(fp))
            .map(|(_, a)| a.id.clone())
            .collect();
        not_indexed.sort();
        Ok(LibraryAnswer {
            results,
            model: embedder.identity().name,
            videos_searched: searched.videos.len(),
            vectors_searched: searched.vectors,
            partial,
            not_indexed,
            more,
        })
    }

    /// A small JPEG of frame `frame` of video `id` for the search results (decoded without
    /// opening a session: no indexing starts for it). Blocking.
    pub fn thumbnail(
        &self,
        id: &str,
        frame: u64,
        width: u32,
    ) -> Result<Vec<u8>, LibrarySearchError> {
        let path = self.resolve(id)?;
        let jpeg = (|| {
            let frame_index =
                FrameIndex::load_or_build(&path, Some(&self.index_options.cache_dir))?;
            let mut decoder = crate::video::Decoder::with_index(&path, frame_index)?;
            let image = decoder.frame(frame)?;
            crate::video::encode_jpeg(&image, width, 80).map_err(|source| {
                crate::video::VideoError::OpenCv {
                    path: path.clone(),
                    source,
                }
            })
        })()?;
        Ok(jpeg)
    }
}
