//! Indexing: embed the sampled frames of a video into its cache file.
//!
//! One decoder thread reads frames in order (sequential `grab`/`read`, never a seek per
//! frame) and prepares them for the model; the calling thread embeds them in batches. A
//! bounded channel between the two lets decoding overlap inference while holding at most a
//! few batches in memory. The file is checkpointed every few seconds of work, so a crash
//! loses at most that much, and a later run resumes after the last checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use app::scores::sampled_frames;
use app::types::{IndexState, IndexStatus};

use crate::cache::{CacheHeader, EmbeddingFile, ModelKey, VideoFingerprint, FORMAT_VERSION};
use crate::embed::{Embedder, PreparedImage};
use crate::video::{self, Decoder, Metadata};

#[derive(Clone, Debug)]
pub struct IndexOptions {
    pub cache_dir: PathBuf,
    /// Frames per second to embed; `None` = every frame.
    pub sample_fps: Option<f64>,
    pub batch_size: usize,
    /// Work between two saves of the cache file.
    pub checkpoint_every: Duration,
}

impl IndexOptions {
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            sample_fps: None,
            batch_size: 8,
            checkpoint_every: Duration::from_secs(5),
        }
    }
}

/// A video ready to index: its exact frame count and content fingerprint.
#[derive(Clone, Debug)]
pub struct VideoToIndex {
    pub path: PathBuf,
    pub meta: Metadata,
    pub fingerprint: VideoFingerprint,
}

impl VideoToIndex {
    /// Probes `path`, counting frames by decoding where the container's count is an estimate.
    pub fn open(path: &Path) -> Result<Self, String> {
        let mut meta = video::probe(path).map_err(|e| e.to_string())?;
        if !meta.exact_count {
            meta.frames = video::count_frames(path).map_err(|e| e.to_string())?;
            meta.exact_count = true;
        }
        Self::with_metadata(path, meta)
    }

    /// Like [`open`](Self::open), but answered from the video's cache file when there is one:
    /// its name and header are keyed by the video's content and hold the exact frame count and
    /// frame rate, so answering from the cache does not open or decode the video at all. The
    /// file read for that is returned too, so that it is not read twice.
    pub fn open_indexed(
        path: &Path,
        embedder: &dyn Embedder,
        options: &IndexOptions,
    ) -> Result<(Self, Option<EmbeddingFile>), String> {
        let unknown = Metadata {
            frames: 0,
            fps: 0.0,
            width: 0,
            height: 0,
            exact_count: false,
        };
        let by_content = Self::with_metadata(path, unknown.clone())?;
        let header = by_content.header(embedder, options.sample_fps);
        let cached = options.cache_dir.join(EmbeddingFile::file_name(&header));
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
        Ok((Self::open(path)?, None))
    }

    pub fn with_metadata(path: &Path, meta: Metadata) -> Result<Self, String> {
        let fingerprint = VideoFingerprint::of_file(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            meta,
            fingerprint,
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

/// Progress of one job, shared with whoever watches it (the web app, the CLI's bar).
#[derive(Default)]
pub struct Progress {
    status: Mutex<IndexStatus>,
}

impl Progress {
    pub fn snapshot(&self) -> IndexStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn update(&self, change: impl FnOnce(&mut IndexStatus)) {
        change(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
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
    pub planned: u64,
    pub seconds: f64,
    /// A damaged or foreign cache file that was moved aside before starting over.
    pub cache_problem: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{0}")]
    Cache(#[from] crate::cache::CacheError),
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

/// Loads the cache file for (video, model, sampling), moving a damaged one aside.
pub fn load_cache(
    video: &VideoToIndex,
    embedder: &dyn Embedder,
    options: &IndexOptions,
) -> (PathBuf, EmbeddingFile, Option<String>) {
    let header = video.header(embedder, options.sample_fps);
    let path = options.cache_dir.join(EmbeddingFile::file_name(&header));
    match EmbeddingFile::load(&path, &header) {
        Ok(Some(file)) => (path, file, None),
        Ok(None) => (path, EmbeddingFile::new(header), None),
        Err(e) => {
            tracing::warn!("{e}; indexing again");
            (path, EmbeddingFile::new(header), Some(e.to_string()))
        }
    }
}

/// Embeds the frames of `video` that its cache file lacks. Blocks; run it on its own thread.
pub fn index_video(
    video: &VideoToIndex,
    embedder: &dyn Embedder,
    options: &IndexOptions,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<IndexReport, IndexError> {
    let (cache_path, file, cache_problem) = load_cache(video, embedder, options);
    let store = RwLock::new(file);
    index_into(
        video,
        embedder,
        options,
        progress,
        cancel,
        &cache_path,
        &store,
        cache_problem,
    )
}

/// [`index_video`] into an embedding file that others may read while it grows.
#[allow(clippy::too_many_arguments)]
pub fn index_into(
    video: &VideoToIndex,
    embedder: &dyn Embedder,
    options: &IndexOptions,
    progress: &Progress,
    cancel: &AtomicBool,
    cache_path: &Path,
    store: &RwLock<EmbeddingFile>,
    cache_problem: Option<String>,
) -> Result<IndexReport, IndexError> {
    let started = Instant::now();
    let plan = video.plan(options.sample_fps);
    let resumed = {
        let mut file = store.write().unwrap_or_else(|e| e.into_inner());
        // Indexing runs in order, so a valid file holds a prefix of the plan; anything else
        // is from a different plan and is started over rather than mixed.
        if !plan.starts_with(&file.frames) {
            tracing::warn!(
                "{} does not match this video's frames; indexing again",
                cache_path.display()
            );
            *file = EmbeddingFile::new(file.header.clone());
        }
        file.frames.len()
    };
    let save = || -> Result<(), IndexError> {
        Ok(store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .save(cache_path)?)
    };
    let todo = &plan[resumed..];
    let resumed = resumed as u64;
    progress.update(|s| {
        s.state = IndexState::Running;
        s.done = resumed;
        s.total = plan.len() as u64;
        s.model = Some(embedder.identity().name);
        s.message = cache_problem.clone();
    });
    let report = |embedded| IndexReport {
        cache_path: cache_path.to_path_buf(),
        resumed,
        embedded,
        planned: plan.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        cache_problem: cache_problem.clone(),
    };
    if todo.is_empty() {
        if !cache_path.exists() {
            save()?;
        }
        return Ok(report(0));
    }

    let batch_size = options.batch_size.max(1);
    let video_name = video
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stop_decoding = AtomicBool::new(false);
    let (sender, receiver) =
        sync_channel::<Result<(u64, PreparedImage), (u64, String)>>(batch_size * 2);

    std::thread::scope(|scope| -> Result<IndexReport, IndexError> {
        let stop = &stop_decoding;
        scope.spawn(move || {
            let mut decoder = match Decoder::open(&video.path) {
                Ok(d) => d,
                Err(e) => {
                    let _ = sender.send(Err((todo[0], e.to_string())));
                    return;
                }
            };
            for &n in todo {
                if stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
                    return;
                }
                let item = decoder
                    .frame(n)
                    .map_err(|e| e.to_string())
                    .and_then(|frame| embedder.prepare_image(&frame).map_err(|e| e.to_string()))
                    .map(|prepared| (n, prepared))
                    .map_err(|message| (n, message));
                let failed = item.is_err();
                if sender.send(item).is_err() || failed {
                    return;
                }
            }
        });

        let mut embedded = 0u64;
        let mut last_save = Instant::now();
        let mut batch: Vec<(u64, PreparedImage)> = Vec::with_capacity(batch_size);
        let mut failure: Option<IndexError> = None;
        let run_started = Instant::now();
        let mut incoming = receiver.iter();
        loop {
            let next = incoming.next();
            let end = next.is_none();
            match next {
                Some(Ok(item)) => batch.push(item),
                Some(Err((frame, message))) => {
                    failure = Some(IndexError::Video {
                        video: video_name.clone(),
                        frame,
                        message,
                        done: resumed + embedded,
                    });
                }
                None => {}
            }
            if cancel.load(Ordering::Relaxed) {
                failure = Some(IndexError::Cancelled);
            }
            if !batch.is_empty() && (batch.len() == batch_size || end || failure.is_some()) {
                let images: Vec<PreparedImage> = batch.iter_mut().map(|(_, p)| take(p)).collect();
                match embedder.embed_prepared(&images) {
                    Ok(vectors) => {
                        let mut file = store.write().unwrap_or_else(|e| e.into_inner());
                        for ((n, _), vector) in batch.iter().zip(vectors) {
                            file.frames.push(*n);
                            file.vectors.extend(vector);
                        }
                        embedded += batch.len() as u64;
                        batch.clear();
                    }
                    Err(e) => failure = failure.or(Some(IndexError::Embed(e))),
                }
                let elapsed = run_started.elapsed().as_secs_f64();
                let rate = embedded as f64 / elapsed.max(1e-9);
                let done = resumed + embedded;
                progress.update(|s| {
                    s.done = done;
                    s.frames_per_s = rate;
                    s.eta_s = (rate > 0.0).then(|| (plan.len() as u64 - done) as f64 / rate);
                });
                if last_save.elapsed() >= options.checkpoint_every {
                    save()?;
                    last_save = Instant::now();
                }
            }
            if end || failure.is_some() {
                break;
            }
        }
        stop_decoding.store(true, Ordering::Relaxed);
        drop(incoming);
        drop(receiver);
        save()?;
        match failure {
            Some(e) => Err(e),
            None => Ok(report(embedded)),
        }
    })
}

/// Moves a prepared image out of the batch, leaving an empty one.
fn take(image: &mut PreparedImage) -> PreparedImage {
    std::mem::replace(image, PreparedImage::Pixels(Vec::new()))
}
