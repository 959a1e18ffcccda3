//! Indexing: embed the sampled frames of a video into its cache file.
//!
//! A run is one or more passes (see `passes`): one straight pass from the start, or coarse to
//! fine, the whole video at one frame a second first and then ever finer, with detours into
//! the span a viewer looks at. Frames go into the file in their places whatever the order, so
//! the finished file is the same either way.
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
use super::passes::{coverage, plan_passes, Focus, Schedule};
use super::stash::Stash;
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
    /// Coarse to fine: the first pass embeds one frame per this many seconds across the whole
    /// video, each next pass halves the spacing, until every planned frame is embedded.
    /// `None`: one straight pass from the start. Skipping similar frames compares each frame
    /// with the one before it, so it always runs straight.
    pub coarse_interval_s: Option<f64>,
    /// Bytes of prepared frames a coarse-to-fine pass may keep for the next two passes (frames
    /// it decodes on its way anyway), so that those need not decode the video again.
    pub keep_for_later_passes: usize,
}

/// What a coarse-to-fine index keeps for later passes by default: 512 MiB, 3,500 frames of a
/// 224 x 224 model.
pub const KEEP_FOR_LATER_PASSES: usize = 512 << 20;

impl IndexOptions {
    pub fn new(cache_dir: PathBuf) -> Self {
        Self {
            cache_dir,
            sample_fps: None,
            batch_size: 8,
            checkpoint_every: Duration::from_secs(5),
            skip_similar: None,
            scene_cuts: true,
            coarse_interval_s: None,
            keep_for_later_passes: KEEP_FOR_LATER_PASSES,
        }
    }

    /// The first pass's spacing in plan positions, when this index runs coarse to fine.
    fn first_spacing(&self, fps: f64) -> Option<f64> {
        let interval = self
            .coarse_interval_s
            .filter(|s| s.is_finite() && *s > 0.0)?;
        if self.skip_similar.is_some() {
            return None;
        }
        let plan_rate = match self.sample_fps {
            Some(rate) if rate > 0.0 && rate < fps => rate,
            _ => fps,
        };
        (plan_rate > 0.0).then_some(interval * plan_rate)
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
            coarse_interval_s: settings.progressive.then_some(settings.coarse_interval_s),
            keep_for_later_passes: usize::try_from(
                settings.progressive_memory_mb.saturating_mul(1 << 20),
            )
            .unwrap_or(usize::MAX),
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
        focus: None,
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
    /// The span a viewer looks at, refined first by a coarse-to-fine index.
    pub focus: Option<&'a Focus>,
}

/// What the decoder thread sends: a frame by number, or the frame it failed at and why.
type Decoded = Result<(u64, Frame), (u64, String)>;

/// The frames a pass's decoder thread works on.
#[derive(Clone, Copy)]
struct PassFrames<'a> {
    /// The pass's frames, ascending.
    todo: &'a [u64],
    /// Where frames are taken from, the pass's and the detours'.
    schedule: &'a Schedule<'a>,
    /// Frames of the next pass and of the one after it to keep on the way, each ascending;
    /// empty where this pass keeps none.
    later: [&'a [u64]; 2],
    /// Frames kept for later passes (by a pass before, for this one).
    stash: &'a Mutex<Stash>,
}

/// Frames done before a pass and planned in all (for the whole index's progress), and the
/// pass's own frames still to do.
#[derive(Clone, Copy)]
struct Counts {
    done_before: u64,
    planned: u64,
    pass_total: u64,
}

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
        let covered = self.resume_point(&plan);
        let resumed = covered.len() as u64;
        let total = self.video.meta.frames;
        let first_spacing = self.options.first_spacing(self.video.meta.fps);
        let passes = plan_passes(&plan, &covered, first_spacing, total);
        let progressive = first_spacing.is_some();
        self.progress.update(|s| {
            s.state = IndexState::Running;
            s.done = resumed;
            s.total = plan.len() as u64;
            s.model = Some(self.embedder.identity().name);
            s.message = self.cache_problem.clone();
            s.passes = if progressive { passes.len() as u32 } else { 0 };
        });
        let mut report = IndexReport {
            cache_path: self.cache_path.to_path_buf(),
            resumed,
            embedded: 0,
            reused: 0,
            missing: 0,
            planned: plan.len() as u64,
            seconds: 0.0,
            cache_problem: self.cache_problem.clone(),
            passes: Vec::new(),
        };
        let measured = self
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .scene_measured();
        let scene = ScenePass::after(measured, total).filter(|_| self.options.scene_cuts);
        let todo: usize = passes.iter().map(|p| p.frames.len()).sum();
        if todo == 0 && scene.is_none() {
            if !self.cache_path.exists() {
                self.save()?;
            }
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        if todo == 0 {
            self.progress.update(|s| {
                s.message = Some("measuring scene cuts (the embeddings are complete)".into());
            });
        }

        let schedule = Schedule::new(&passes, self.focus.filter(|_| progressive));
        let budget = if progressive {
            self.options.keep_for_later_passes
        } else {
            0
        };
        let stash = Mutex::new(Stash::new(budget));
        let mut done = resumed;
        // How fine the curves are before a pass: what the passes before it reached.
        let mut reach = coverage(&covered, total);
        for (number, pass) in passes.iter().enumerate() {
            let last = number + 1 == passes.len();
            // Scene cuts need every frame in order: the last pass decodes them all anyway.
            let scene = scene.filter(|_| last);
            let pass_total = schedule.still_to_do(&pass.frames);
            if pass_total == 0 && scene.is_none() {
                reach = (pass.spacing_after, pass.radius_after);
                continue;
            }
            // The first pass fills a prefix at its own spacing; later ones refine a whole curve.
            let (spacing, radius) = if number == 0 {
                (
                    pass.spacing_after,
                    pass.radius_after.min(pass.spacing_after / 2 + 1),
                )
            } else {
                reach
            };
            // A straight run leaves the pass fields at 0: the page then shows no pass.
            if progressive {
                let fps = self.video.meta.fps;
                self.progress.update(|s| {
                    s.pass = number as u32 + 1;
                    s.pass_done = 0;
                    s.pass_total = pass_total;
                    s.pass_eta_s = None;
                    s.spacing_frames = spacing;
                    s.spacing_s = if fps > 0.0 { spacing as f64 / fps } else { 0.0 };
                    s.fill_radius = radius;
                });
            }
            if number > 0 {
                schedule.allow_detours();
            }
            let pass_started = Instant::now();
            let counts = Counts {
                done_before: done,
                planned: plan.len() as u64,
                pass_total,
            };
            // A pass that decodes the video keeps frames for the next two, nearest first, which
            // then decode nothing (or only what did not fit) and keep none; not for the last
            // pass, which decodes every frame anyway (scene cuts).
            let keeping = lock(&stash).is_empty();
            let later = |k: usize| match passes.get(number + k) {
                Some(p) if keeping && number + k + 1 < passes.len() => p.frames.as_slice(),
                _ => &[],
            };
            let work = PassFrames {
                todo: &pass.frames,
                schedule: &schedule,
                later: [later(1), later(2)],
                stash: &stash,
            };
            let outcome = self.run_pass(work, scene, counts);
            let (tally, decoded, failure) = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    let _ = self.save();
                    return Err(e);
                }
            };
            report.embedded += tally.embedded;
            report.reused += tally.reused;
            report.missing += tally.missing;
            done += tally.frames();
            let per_frame = decoded as f64 / tally.frames().max(1) as f64;
            self.progress.update(|s| s.decoded_per_embedded = per_frame);
            report.passes.push(PassReport {
                spacing_frames: pass.spacing_after,
                frames: tally.frames(),
                decoded,
                seconds: pass_started.elapsed().as_secs_f64(),
                finished_at_s: started.elapsed().as_secs_f64(),
                kept_for_later: if keeping {
                    lock(&stash).len() as u64
                } else {
                    0
                },
            });
            if let Some(e) = failure {
                self.save()?;
                return Err(e);
            }
            reach = (pass.spacing_after, pass.radius_after);
            // Each pass ends with a checkpoint: its curves survive a crash whole.
            self.save()?;
        }
        // Every pass ended with a checkpoint: the file is saved. Every planned frame is in it,
        // so no score stands in for its neighbours beyond the sampling any more.
        if progressive {
            self.progress.update(|s| {
                s.spacing_frames = reach.0;
                s.spacing_s = 0.0;
                s.fill_radius = 0;
                s.pass_eta_s = None;
            });
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// One pass: a decoder thread ([`decode`](Self::decode)) feeds the embedding loop
    /// ([`embed`](Self::embed)) on this thread. Returns what it did, the pictures decoded, and
    /// the failure that ended it, if one did.
    fn run_pass(
        &self,
        work: PassFrames,
        scene: Option<ScenePass>,
        counts: Counts,
    ) -> Result<(Tally, u64, Option<IndexError>), IndexError> {
        let stop_decoding = AtomicBool::new(false);
        let (sender, receiver) = sync_channel::<Decoded>(self.batch_size() * 2);
        std::thread::scope(|scope| {
            let stop = &stop_decoding;
            let decoder = scope.spawn(move || self.decode(work, scene, sender, stop));
            // `embed` owns the receiver: dropping it when it returns (even early, on a failed
            // checkpoint) unblocks a decoder thread waiting to send, so it can be joined.
            let outcome = self.embed(receiver, work.todo, counts);
            stop_decoding.store(true, Ordering::Relaxed);
            // A decoder thread that panicked decoded nothing this report can count.
            let decoded = decoder.join().unwrap_or(0);
            outcome.map(|(tally, failure)| (tally, decoded, failure))
        })
    }

    /// The frames of `plan` the file already holds, ascending; a file from another plan is
    /// emptied.
    fn resume_point(&self, plan: &[u64]) -> Vec<u64> {
        let mut file = self.store.write().unwrap_or_else(|e| e.into_inner());
        let covered = file.covered_frames();
        // A straight index that skips similar frames runs in order, so its file holds a prefix
        // of the plan; any other index may hold any of the plan's frames (coarse to fine).
        // Anything else is from a different plan and is started over rather than mixed.
        let fits = if self.options.skip_similar.is_some() {
            plan.starts_with(&covered)
        } else {
            covered.iter().all(|f| plan.binary_search(f).is_ok())
        };
        if !fits {
            tracing::warn!(
                "{} does not match this video's frames; indexing again",
                self.cache_path.display()
            );
            *file = EmbeddingFile::with_skip(file.header.clone(), self.options.skip_similar);
            return Vec::new();
        }
        covered
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
    ///
    /// Frames are taken from `schedule`; whenever the viewer's focus moves, the frames not done
    /// yet in its span are decoded and sent first (a detour), then the pass goes on where it
    /// was. A frame a pass before kept is sent without decoding; frames of the next two passes
    /// that the decoder decodes on its way are prepared (on a keeper thread) and kept (see
    /// [`Stash`]). Returns the pictures the decoder produced.
    fn decode(
        &self,
        work: PassFrames,
        scene: Option<ScenePass>,
        sender: SyncSender<Decoded>,
        stop: &AtomicBool,
    ) -> u64 {
        let mut measures = SceneWriter::new(self.store, scene);
        let Some(frames) = frames_to_visit(work.todo, &measures) else {
            return 0;
        };
        let video = self.video;
        let opened = match &video.frames {
            Some(index) => Decoder::with_index(&video.path, Arc::clone(index)),
            None => Decoder::open(&video.path),
        };
        let mut decoder = match opened {
            Ok(d) => d,
            Err(e) => {
                let _ = sender.send(Err((*frames.start(), e.to_string())));
                return 0;
            }
        };
        let has_later = work.later.iter().any(|l| !l.is_empty());
        std::thread::scope(|scope| {
            // Frames kept for later passes are prepared on a thread of their own: where a pass
            // waits on decoding (the first), that work would otherwise leave a core idle.
            let keeper = has_later.then(|| {
                let (to_keep, kept) = sync_channel::<ToKeep>(KEEPER_QUEUE);
                scope.spawn(move || {
                    for (n, frame, reserve) in kept {
                        if let Ok(image) = self.embedder.prepare_image(&frame) {
                            lock(work.stash).keep(n, image, reserve);
                        }
                    }
                });
                to_keep
            });
            self.decode_frames(&mut decoder, work, &mut measures, &sender, keeper, stop);
        });
        measures.flush();
        decoder.pictures_decoded()
    }

    fn decode_frames(
        &self,
        decoder: &mut Decoder,
        work: PassFrames,
        measures: &mut SceneWriter,
        sender: &SyncSender<Decoded>,
        keeper: Option<SyncSender<ToKeep>>,
        stop: &AtomicBool,
    ) {
        let PassFrames { todo, schedule, .. } = work;
        let skip_similar = self.options.skip_similar;
        // Checked at once: a viewer may have moved before this pass began.
        let mut focus_seen = None;
        // The last frame sent to be embedded; a run's first frame is always embedded.
        let mut last_embedded: Option<PreparedImage> = None;
        let mut wanted = todo.iter().copied().peekable();
        // Where the next frames of the two later passes are in their lists.
        let mut later_at = [0usize; 2];
        let stopped = || stop.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed);
        let Some(frames) = frames_to_visit(todo, measures) else {
            return;
        };
        // From the next pass's first frame to its last as well, to keep those.
        let ends = work
            .later
            .iter()
            .flat_map(|l| l.first().into_iter().chain(l.last()));
        let first = ends.clone().copied().fold(*frames.start(), u64::min);
        let last = ends.copied().fold(*frames.end(), u64::max);
        for n in first..=last {
            if stopped() {
                return;
            }
            if Some(schedule.focus_changes()) != focus_seen {
                focus_seen = Some(schedule.focus_changes());
                // The viewer's span first, whichever pass its frames belong to.
                while let Some(t) = schedule.take_in_focus() {
                    if stopped() {
                        return;
                    }
                    let sent = match lock(work.stash).take(t) {
                        Some(kept) => sender.send(Ok((t, Frame::Embed(kept)))).is_ok(),
                        None => self.send_frame(t, decoder.frame(t), sender),
                    };
                    if !sent {
                        return;
                    }
                }
            }
            let embed = wanted.next_if_eq(&n).is_some() && schedule.take(n);
            if embed && !measures.wants(n) {
                if let Some(kept) = lock(work.stash).take(n) {
                    if sender.send(Ok((n, Frame::Embed(kept)))).is_err() {
                        return;
                    }
                    continue;
                }
            }
            if !embed && !measures.wants(n) {
                for (at, frames) in later_at.iter_mut().zip(work.later) {
                    while frames.get(*at).is_some_and(|&f| f < n) {
                        *at += 1;
                    }
                }
                let [next, after] = work.later;
                // Frames of the pass after the next leave room for the next pass's still ahead.
                let reserve = if next.get(later_at[0]) == Some(&n) {
                    Some(0)
                } else if after.get(later_at[1]) == Some(&n) {
                    Some((next.len() - later_at[0]) as u64)
                } else {
                    None
                };
                if let (Some(reserve), Some(keeper)) = (reserve, &keeper) {
                    let next_target = wanted.peek().copied();
                    keep_on_the_way(decoder, n, next_target, reserve, work, keeper);
                }
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

    /// Sends frame `n` of a detour to be embedded (a coarse-to-fine index never skips similar
    /// frames); `false` when the run must end.
    fn send_frame(
        &self,
        n: u64,
        decoded: Result<Mat, VideoError>,
        sender: &SyncSender<Decoded>,
    ) -> bool {
        let item = match decoded {
            Err(VideoError::Decode { reason, .. }) => Ok((n, Frame::Missing(reason))),
            Err(e) => Err((n, e.to_string())),
            Ok(frame) => match self.embedder.prepare_image(&frame) {
                Ok(prepared) => Ok((n, Frame::Embed(prepared))),
                Err(e) => Err((n, e.to_string())),
            },
        };
        let failed = item.is_err();
        sender.send(item).is_ok() && !failed
    }

    /// The embedding loop: gathers what the decoder sends into batches of `batch_size` frames
    /// to embed, appends each batch to the file, reports progress and saves a checkpoint every
    /// `checkpoint_every`. Returns what it did and the failure that ended it, if one did; a
    /// checkpoint that cannot be written ends the run at once.
    fn embed(
        &self,
        decoded: Receiver<Decoded>,
        pass: &[u64],
        counts: Counts,
    ) -> Result<(Tally, Option<IndexError>), IndexError> {
        let Counts {
            done_before: resumed,
            planned,
            pass_total,
        } = counts;
        let mut pass_done = 0u64;
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
                    pass_done += u64::from(pass.binary_search(&item.0).is_ok());
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
                let in_pass = pass_done.min(pass_total);
                self.progress.update(|s| {
                    s.done = done;
                    s.frames_per_s = rate;
                    s.eta_s = (rate > 0.0).then(|| planned.saturating_sub(done) as f64 / rate);
                    s.pass_done = in_pass;
                    s.pass_eta_s = (rate > 0.0).then(|| (pass_total - in_pass) as f64 / rate);
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
        let mut rows: Vec<(u64, Vec<f32>)> = Vec::with_capacity(batch.len());
        let mut missing = Vec::new();
        let mut file = self.store.write().unwrap_or_else(|e| e.into_inner());
        for (n, frame) in batch.drain(..) {
            match frame {
                Frame::Embed(_) => {
                    rows.push((n, vectors.next().unwrap_or_default()));
                    tally.embedded += 1;
                }
                Frame::Reuse => {
                    // Only a straight index skips, so the frame before is the row before.
                    let previous = rows.last().map(|r| r.1.clone());
                    rows.push((n, previous.unwrap_or_else(|| file.last_vector().to_vec())));
                    file.note_reused(n);
                    tally.reused += 1;
                }
                Frame::Missing(reason) => {
                    let video = self.video_name();
                    tracing::warn!(video = %video, frame = n, "frame {n} cannot be decoded ({reason}); recorded as missing, indexing goes on");
                    missing.push(n);
                    tally.missing += 1;
                    let note = format!("frame {n} could not be decoded ({reason}); the chart marks it, indexing goes on");
                    self.progress.update(|s| s.message = Some(note));
                }
            }
        }
        file.insert_embedded(rows);
        for n in missing {
            file.insert_missing(n);
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

/// The frames a decoder thread goes through: from the first frame to embed or measure to the
/// last; `None` when there is neither.
fn frames_to_visit(todo: &[u64], measures: &SceneWriter) -> Option<std::ops::RangeInclusive<u64>> {
    let first = todo
        .first()
        .copied()
        .into_iter()
        .chain(measures.first_frame())
        .min()?;
    let last = todo
        .last()
        .copied()
        .into_iter()
        .chain(measures.last_frame())
        .max()?;
    Some(first..=last)
}

/// Scene measures held by the decoder thread before they go into the file.
const SCENE_FLUSH_FRAMES: usize = 64;

/// Frames held before a flush when most are reused (so that progress and checkpoints go on).
const MAX_PENDING_FRAMES: usize = 256;

/// A frame for the keeper thread to prepare and keep: its number, the picture, and the frames
/// to leave room for.
type ToKeep = (u64, Mat, u64);

/// Pictures waiting for the keeper thread (each a few MB).
const KEEPER_QUEUE: usize = 2;

/// Hands frame `n` of a later pass to the keeper when the decoder decodes it anyway on its way
/// to `next_target` (this pass's next frame), or when no keyframe lies between here and it (the
/// later pass would decode more to reach it: from its keyframe), and the budget has room for
/// it beside `reserve` frames. A frame that fails is left to its pass, which
/// reports it.
fn keep_on_the_way(
    decoder: &mut Decoder,
    n: u64,
    next_target: Option<u64>,
    reserve: u64,
    work: PassFrames,
    keeper: &SyncSender<ToKeep>,
) {
    let on_the_way =
        next_target.is_some_and(|t| decoder.passes_on_the_way(n, t)) || decoder.in_reach(n);
    if !on_the_way || !lock(work.stash).has_room(reserve) || !work.schedule.is_pending(n) {
        return;
    }
    if let Ok(frame) = decoder.frame(n) {
        let _ = keeper.send((n, frame, reserve));
    }
}

fn lock(stash: &Mutex<Stash>) -> std::sync::MutexGuard<'_, Stash> {
    stash.lock().unwrap_or_else(|e| e.into_inner())
}

/// Moves a prepared image out of the batch, leaving an empty one.
fn take(image: &mut PreparedImage) -> PreparedImage {
    std::mem::replace(image, PreparedImage::Cropped(Vec::new()))
}
