//! Indexing: embed the sampled frames of a video into its cache file.
//!
//! One decoder thread reads frames in order (sequential `grab`/`read`, never a seek per
//! frame) and prepares them for the model; the calling thread embeds them in batches. A
//! bounded channel between the two lets decoding overlap inference while holding at most a
//! few batches in memory. The file is checkpointed every few seconds of work, so a crash
//! loses at most that much, and a later run resumes after the last checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use app::scores::sampled_frames;
use app::types::{IndexState, IndexStatus};

use crate::cache::{CacheHeader, EmbeddingFile, ModelKey, VideoFingerprint, FORMAT_VERSION};
use crate::config::Settings;
use crate::embed::{Embedder, PreparedImage};
use crate::video::{Decoder, FrameIndex, Metadata, VideoError};

use super::cuts::{self, Change, ChangeMeter};
use opencv::core::Mat;

#[derive(Clone, Debug)]
pub struct IndexOptions {
    pub cache_dir: PathBuf,
    /// Frames per second to embed; `None` = every frame.
    pub sample_fps: Option<f64>,
    pub batch_size: usize,
    /// Work between two saves of the cache file.
    pub checkpoint_every: Duration,
    /// Skip a frame whose model input differs from the last embedded frame's by less than
    /// this many grey levels (mean absolute difference), reusing that frame's vector.
    pub skip_similar: Option<f32>,
    /// Measure every decoded frame for scene cuts (on by default; off only to measure its
    /// cost in the benchmark).
    pub scene_cuts: bool,
}

impl IndexOptions {
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            sample_fps: None,
            batch_size: 8,
            checkpoint_every: Duration::from_secs(5),
            skip_similar: None,
            scene_cuts: true,
        }
    }
}

/// The config's indexing settings (the command line overrides them after).
impl From<&Settings> for IndexOptions {
    fn from(settings: &Settings) -> Self {
        Self {
            cache_dir: settings.embeddings_dir.clone(),
            sample_fps: settings.sample_fps,
            batch_size: settings.batch_size,
            checkpoint_every: Duration::from_secs_f64(settings.checkpoint_secs.clamp(0.0, 3600.0)),
            skip_similar: settings.skip_similar,
            scene_cuts: true,
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
}

impl VideoToIndex {
    /// Reads the frame index of `path` from `index_dir`, or builds it there.
    pub fn open(path: &Path, index_dir: Option<&Path>) -> Result<Self, String> {
        let index = FrameIndex::load_or_build(path, index_dir).map_err(|e| e.to_string())?;
        Self::with_index(path, index)
    }

    /// A video whose frame index is at hand (the server's open video).
    pub fn with_index(path: &Path, index: Arc<FrameIndex>) -> Result<Self, String> {
        Ok(Self {
            frames: Some(Arc::clone(&index)),
            ..Self::with_metadata(path, index.metadata())?
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

    pub fn with_metadata(path: &Path, meta: Metadata) -> Result<Self, String> {
        let fingerprint = VideoFingerprint::of_file(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(Self {
            path: path.to_path_buf(),
            meta,
            fingerprint,
            frames: None,
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
    /// Of the frames this run indexed, those that reused the previous frame's vector.
    pub reused: u64,
    /// Frames this run could not decode (recorded as missing; indexing went on).
    pub missing: u64,
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

impl IndexError {
    /// The message for the browser: it names the video's file, never its folder.
    pub fn public(&self, video: &Path) -> String {
        crate::video::without_folder(&self.to_string(), video)
    }
}

/// Loads the cache file for (video, model, sampling), moving a damaged one aside.
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
    crate::cache::remove_stale_temporaries(&path);
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
    IndexJob {
        video,
        embedder,
        options,
        progress,
        cancel,
        cache_path: &cache_path,
        store: &store,
        cache_problem,
    }
    .run()
}

/// One run of [`index_video`] into an embedding file that others may read while it grows:
/// a decoder thread ([`decode`](Self::decode)) feeds the embedding loop
/// ([`embed`](Self::embed)) on the calling thread.
pub struct IndexJob<'a> {
    pub video: &'a VideoToIndex,
    pub embedder: &'a dyn Embedder,
    pub options: &'a IndexOptions,
    pub progress: &'a Progress,
    pub cancel: &'a AtomicBool,
    pub cache_path: &'a Path,
    pub store: &'a RwLock<EmbeddingFile>,
    /// A damaged cache file moved aside before this run (shown with its progress).
    pub cache_problem: Option<String>,
}

/// What the decoder thread sends: a frame by number, or the frame it failed at and why.
type Decoded = Result<(u64, Frame), (u64, String)>;

/// What this run did with the frames it was given.
#[derive(Clone, Copy, Default)]
struct Tally {
    embedded: u64,
    reused: u64,
    missing: u64,
}

impl Tally {
    fn frames(&self) -> u64 {
        self.embedded + self.reused + self.missing
    }
}

impl IndexJob<'_> {
    pub fn run(&self) -> Result<IndexReport, IndexError> {
        let started = Instant::now();
        let plan = self.video.plan(self.options.sample_fps);
        let resumed = self.resume_point(&plan);
        let todo = &plan[resumed..];
        let resumed = resumed as u64;
        self.progress.update(|s| {
            s.state = IndexState::Running;
            s.done = resumed;
            s.total = plan.len() as u64;
            s.model = Some(self.embedder.identity().name);
            s.message = self.cache_problem.clone();
        });
        let report = |tally: Tally| IndexReport {
            cache_path: self.cache_path.to_path_buf(),
            resumed,
            embedded: tally.embedded,
            reused: tally.reused,
            missing: tally.missing,
            planned: plan.len() as u64,
            seconds: started.elapsed().as_secs_f64(),
            cache_problem: self.cache_problem.clone(),
        };
        let measured = self
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .scene_measured();
        let scene =
            ScenePass::after(measured, self.video.meta.frames).filter(|_| self.options.scene_cuts);
        if todo.is_empty() && scene.is_none() {
            if !self.cache_path.exists() {
                self.save()?;
            }
            return Ok(report(Tally::default()));
        }
        if todo.is_empty() {
            self.progress.update(|s| {
                s.message = Some("measuring scene cuts (the embeddings are complete)".into());
            });
        }

        let stop_decoding = AtomicBool::new(false);
        let (sender, receiver) = sync_channel::<Decoded>(self.batch_size() * 2);
        let (tally, failure) = std::thread::scope(|scope| {
            let stop = &stop_decoding;
            scope.spawn(move || self.decode(todo, scene, sender, stop));
            // `embed` owns the receiver: dropping it when it returns (even early, on a failed
            // checkpoint) unblocks a decoder thread waiting to send, so the scope can join it.
            let outcome = self.embed(receiver, resumed, plan.len() as u64);
            stop_decoding.store(true, Ordering::Relaxed);
            outcome
        })?;
        self.save()?;
        match failure {
            Some(e) => Err(e),
            None => Ok(report(tally)),
        }
    }

    /// How many frames of `plan` the file already holds; a file from another plan is emptied.
    fn resume_point(&self, plan: &[u64]) -> usize {
        let mut file = self.store.write().unwrap_or_else(|e| e.into_inner());
        // Indexing runs in order, so a valid file holds a prefix of the plan; anything else
        // is from a different plan and is started over rather than mixed.
        if !plan.starts_with(&file.covered_frames()) {
            tracing::warn!(
                "{} does not match this video's frames; indexing again",
                self.cache_path.display()
            );
            *file = EmbeddingFile::with_skip(file.header.clone(), self.options.skip_similar);
        }
        file.covered()
    }

    fn save(&self) -> Result<(), IndexError> {
        let file = self.store.read().unwrap_or_else(|e| e.into_inner());
        Ok(file.save(self.cache_path)?)
    }

    fn batch_size(&self) -> usize {
        self.options.batch_size.max(1)
    }

    fn video_name(&self) -> String {
        let name = self.video.path.file_name();
        name.map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The decoder thread: reads the frames of `todo` in order (one seek at most, then
    /// sequential decoding), prepares each for the model and sends it on, or notes that it can
    /// reuse the previous vector. A frame that does not decode is sent as missing and decoding
    /// goes on; any other failure is sent and ends the thread. While `scene` asks for it, every
    /// frame from its start is decoded and measured for scene cuts as well (the same pass: a
    /// sampled index decodes the frames between its samples anyway), and the measures go into
    /// the file in order.
    fn decode(
        &self,
        todo: &[u64],
        scene: Option<ScenePass>,
        sender: SyncSender<Decoded>,
        stop: &AtomicBool,
    ) {
        let mut measures = SceneWriter::new(self.store, scene);
        self.decode_frames(todo, &mut measures, &sender, stop);
        measures.flush();
    }

    fn decode_frames(
        &self,
        todo: &[u64],
        measures: &mut SceneWriter,
        sender: &SyncSender<Decoded>,
        stop: &AtomicBool,
    ) {
        let video = self.video;
        let first = todo
            .first()
            .copied()
            .into_iter()
            .chain(measures.first_frame())
            .min();
        let Some(first) = first else { return };
        let opened = match &video.frames {
            Some(index) => Decoder::with_index(&video.path, Arc::clone(index)),
            None => Decoder::open(&video.path),
        };
        let mut decoder = match opened {
            Ok(d) => d,
            Err(e) => {
                let _ = sender.send(Err((first, e.to_string())));
                return;
            }
        };
        let skip_similar = self.options.skip_similar;
        // The last frame sent to be embedded; a run's first frame is always embedded.
        let mut last_embedded: Option<PreparedImage> = None;
        let mut wanted = todo.iter().copied().peekable();
        let last = todo
            .last()
            .copied()
            .into_iter()
            .chain(measures.last_frame())
            .max()
            .unwrap_or(first);
        for n in first..=last {
            if stop.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed) {
                return;
            }
            let embed = wanted.next_if_eq(&n).is_some();
            if !embed && !measures.wants(n) {
                continue;
            }
            let decoded = match decoder.frame(n) {
                // One broken frame is one frame: recorded, and indexing goes on.
                Err(VideoError::Decode { reason, .. }) => {
                    measures.skip(n);
                    if embed && sender.send(Ok((n, Frame::Missing(reason)))).is_err() {
                        return;
                    }
                    continue;
                }
                other => other,
            };
            if let Ok(frame) = &decoded {
                measures.measure(n, frame);
            }
            if !embed {
                if let Err(e) = decoded {
                    let _ = sender.send(Err((n, e.to_string())));
                    return;
                }
                continue;
            }
            let item = decoded
                .map_err(|e| e.to_string())
                .and_then(|frame| {
                    let prepared = self.embedder.prepare_image(&frame);
                    prepared.map_err(|e| e.to_string())
                })
                .map(|prepared| {
                    let similar = skip_similar.is_some_and(|threshold| {
                        last_embedded.as_ref().is_some_and(|last| {
                            self.embedder
                                .image_difference(last, &prepared)
                                .is_some_and(|d| d < threshold)
                        })
                    });
                    if similar {
                        (n, Frame::Reuse)
                    } else {
                        if skip_similar.is_some() {
                            last_embedded = Some(prepared.clone());
                        }
                        (n, Frame::Embed(prepared))
                    }
                })
                .map_err(|message| (n, message));
            let failed = item.is_err();
            if sender.send(item).is_err() || failed {
                return;
            }
        }
    }

    /// The embedding loop: gathers what the decoder sends into batches of `batch_size` frames
    /// to embed, appends each batch to the file, reports progress and saves a checkpoint every
    /// `checkpoint_every`. Returns what it did and the failure that ended it, if one did; a
    /// checkpoint that cannot be written ends the run at once.
    fn embed(
        &self,
        decoded: Receiver<Decoded>,
        resumed: u64,
        planned: u64,
    ) -> Result<(Tally, Option<IndexError>), IndexError> {
        let batch_size = self.batch_size();
        let mut tally = Tally::default();
        let mut batch: Vec<(u64, Frame)> = Vec::with_capacity(batch_size);
        // Frames to embed in `batch`; reused and missing ones only ride along.
        let mut to_embed = 0usize;
        let mut failure: Option<IndexError> = None;
        let mut last_save = Instant::now();
        let run_started = Instant::now();
        loop {
            let next = decoded.recv().ok();
            let end = next.is_none();
            match next {
                Some(Ok(item)) => {
                    to_embed += usize::from(matches!(item.1, Frame::Embed(_)));
                    batch.push(item);
                }
                Some(Err((frame, message))) => {
                    failure = Some(IndexError::Video {
                        video: self.video_name(),
                        frame,
                        message,
                        done: resumed + tally.frames(),
                    });
                }
                None => {}
            }
            if self.cancel.load(Ordering::Relaxed) {
                failure = Some(IndexError::Cancelled);
            }
            let full = to_embed == batch_size || batch.len() >= MAX_PENDING_FRAMES;
            if !batch.is_empty() && (full || end || failure.is_some()) {
                match self.append_batch(&mut batch, &mut tally) {
                    Ok(()) => to_embed = 0,
                    Err(e) => failure = failure.or(Some(IndexError::Embed(e))),
                }
                let elapsed = run_started.elapsed().as_secs_f64();
                let rate = tally.frames() as f64 / elapsed.max(1e-9);
                let done = resumed + tally.frames();
                self.progress.update(|s| {
                    s.done = done;
                    s.frames_per_s = rate;
                    s.eta_s = (rate > 0.0).then(|| (planned - done) as f64 / rate);
                });
                if last_save.elapsed() >= self.options.checkpoint_every {
                    self.save()?;
                    last_save = Instant::now();
                }
            }
            if end || failure.is_some() {
                return Ok((tally, failure));
            }
        }
    }

    /// Embeds the batch's frames in one call and appends the whole batch, in order, to the
    /// file: embedded frames with their vectors, reused ones with a copy, missing ones noted.
    /// The batch is emptied once it is in the file.
    fn append_batch(
        &self,
        batch: &mut Vec<(u64, Frame)>,
        tally: &mut Tally,
    ) -> Result<(), crate::embed::EmbedError> {
        let images: Vec<PreparedImage> = batch
            .iter_mut()
            .filter_map(|(_, frame)| match frame {
                Frame::Embed(p) => Some(take(p)),
                Frame::Reuse | Frame::Missing(_) => None,
            })
            .collect();
        let mut vectors = self.embedder.embed_prepared(&images)?.into_iter();
        let mut file = self.store.write().unwrap_or_else(|e| e.into_inner());
        for (n, frame) in batch.drain(..) {
            match frame {
                Frame::Embed(_) => {
                    file.push_embedded(n, &vectors.next().unwrap_or_default());
                    tally.embedded += 1;
                }
                Frame::Reuse => {
                    file.push_reused(n);
                    tally.reused += 1;
                }
                Frame::Missing(reason) => {
                    let video = self.video_name();
                    tracing::warn!(video = %video, frame = n, "frame {n} cannot be decoded ({reason}); recorded as missing, indexing goes on");
                    file.push_missing(n);
                    tally.missing += 1;
                    let note = format!("frame {n} could not be decoded ({reason}); the chart marks it, indexing goes on");
                    self.progress.update(|s| s.message = Some(note));
                }
            }
        }
        Ok(())
    }
}

/// A decoded frame on its way to the model, a note that it can reuse the previous vector, or
/// that it cannot be decoded (and why).
enum Frame {
    Embed(PreparedImage),
    Reuse,
    Missing(String),
}

/// The frames a run measures for scene cuts: from a few frames before the first unmeasured one
/// (so the detector knows what came before it) to the last frame of the video.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScenePass {
    /// The first frame decoded for the measures.
    pub from: u64,
    /// The first frame whose measures are new (earlier ones are only re-read).
    pub first_new: u64,
    pub frames: u64,
}

impl ScenePass {
    /// The pass a file with `measured` frames measured needs, if any.
    pub fn after(measured: u64, frames: u64) -> Option<Self> {
        (measured < frames).then(|| ScenePass {
            from: measured.saturating_sub(cuts::PERSIST as u64 + 1),
            first_new: measured,
            frames,
        })
    }
}

/// Measures frames for scene cuts and writes the new measures into the file in batches (a lock
/// per frame would contend with readers of the embeddings).
struct SceneWriter<'a> {
    store: &'a RwLock<EmbeddingFile>,
    pass: Option<ScenePass>,
    meter: ChangeMeter,
    /// The next frame the meter expects; a gap (a frame not fed) ends the pass for this run.
    next: u64,
    pending: Vec<(u64, Change)>,
}

impl<'a> SceneWriter<'a> {
    fn new(store: &'a RwLock<EmbeddingFile>, pass: Option<ScenePass>) -> Self {
        Self {
            store,
            next: pass.map_or(0, |p| p.from),
            pass,
            meter: ChangeMeter::new(),
            pending: Vec::new(),
        }
    }

    fn first_frame(&self) -> Option<u64> {
        self.pass.map(|p| p.from)
    }

    fn last_frame(&self) -> Option<u64> {
        self.pass.map(|p| p.frames.saturating_sub(1))
    }

    fn wants(&self, n: u64) -> bool {
        self.pass.is_some_and(|p| n >= p.from && n < p.frames)
    }

    fn measure(&mut self, n: u64, frame: &Mat) {
        if !self.wants(n) || n != self.next {
            return;
        }
        let change = match self.meter.measure(frame) {
            Ok(change) => change,
            Err(e) => {
                tracing::warn!(frame = n, "scene measure failed ({e}); recorded as unknown");
                self.meter.skip()
            }
        };
        self.record(n, change);
    }

    fn skip(&mut self, n: u64) {
        if self.wants(n) && n == self.next {
            let change = self.meter.skip();
            self.record(n, change);
        }
    }

    fn record(&mut self, n: u64, change: Change) {
        self.next = n + 1;
        if self.pass.is_some_and(|p| n >= p.first_new) {
            self.pending.push((n, change));
            if self.pending.len() >= SCENE_FLUSH_FRAMES {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut file = self.store.write().unwrap_or_else(|e| e.into_inner());
        let scene = file.scene.get_or_insert_with(Default::default);
        for (n, c) in self.pending.drain(..) {
            scene.set(n, c.change, c.persist);
        }
    }
}

/// Scene measures held by the decoder thread before they go into the file.
const SCENE_FLUSH_FRAMES: usize = 64;

/// Frames held before a flush when most are reused (so that progress and checkpoints go on).
const MAX_PENDING_FRAMES: usize = 256;

/// Moves a prepared image out of the batch, leaving an empty one.
fn take(image: &mut PreparedImage) -> PreparedImage {
    std::mem::replace(image, PreparedImage::Pixels(Vec::new()))
}
