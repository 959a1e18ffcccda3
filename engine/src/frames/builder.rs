//! Making a video's display proxy, segment by segment, where viewers look first ([`plan`]).
//!
//! Invariants:
//! - the builder's workers (two per open video) do not wait for viewers to pause: a segment a
//!   viewer looks at is made with a core kept from viewers' work (`sync::gate`); the rest (the
//!   sweep in order, by the first worker only) waits for a quiet moment before each segment, a
//!   second at most, so it is never starved either; at most one segment per core is made at a
//!   time across videos, and no segment by two workers;
//! - a segment that fails (a full disk, a broken stretch of the source) is not tried again for
//!   [`RETRY_AFTER`]; its frames come from the source meanwhile, and the log says so;
//! - the thread ends when the video is closed (its server dropped), between two frames.
//!
//! [`plan`]: super::plan

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::plan::{SegmentPlan, WidthVotes};
use crate::indexing::FrameTap;
use crate::sync::gate::{gate, BACKGROUND_MAX_WAIT};
use crate::sync::lock;
use crate::video::{self, Decoder, ProxySegments, SegmentRecorder, SEGMENT_FRAMES};

/// A failed segment is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// The width the proxy is made at before any frame was asked for: what the page asks for.
pub const FIRST_WIDTH: u32 = 640;

/// Whether a segment made `made` wide serves a request for frames `asked` wide.
pub fn serves(made: u32, asked: u32) -> bool {
    made > 0 && made >= (asked & !1).max(2)
}

struct BuildState {
    plan: SegmentPlan,
    votes: WidthVotes,
    failed: HashMap<u64, Instant>,
    /// Segments a worker is making now.
    making: HashSet<u64>,
    /// The segment being recorded from an index job's frames, and when it last got one.
    tapped: Option<(u64, Instant)>,
}

/// A segment recorded from an index job's frames is left to the workers when the job has not
/// given it a frame for this long (it paused, or went elsewhere).
const TAP_STALE: Duration = Duration::from_secs(2);

/// Workers per video: the first makes every segment in turn; the others only segments viewers
/// wish for, so that where many viewers look at different places, a core each goes to them.
const WORKERS: usize = 2;

/// Segments made at once across videos, at most: one per core.
static MAKING: Mutex<usize> = Mutex::new(0);
static MAKING_DONE: Condvar = Condvar::new();

/// A place among the segments made at once (see [`MAKING`]).
struct MakingTurn;

impl MakingTurn {
    fn take() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut making = lock(&MAKING);
        while *making >= cores {
            making = MAKING_DONE.wait(making).unwrap_or_else(|e| e.into_inner());
        }
        *making += 1;
        Self
    }
}

impl Drop for MakingTurn {
    fn drop(&mut self) {
        *lock(&MAKING) -= 1;
        MAKING_DONE.notify_one();
    }
}

/// What the builder has done, for the bench and the log.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildCounts {
    pub segments_made: u64,
    /// Of those, made from the pictures an index job decoded (no decoding of their own).
    pub segments_tapped: u64,
    pub pictures_decoded: u64,
    pub bytes: u64,
}

/// The proxy of one open video and the thread that makes it.
pub struct ProxyBuilder {
    segments: Arc<ProxySegments>,
    source: PathBuf,
    /// The widest a segment is made (the configured display width, the video's own).
    max_width: u32,
    state: Mutex<BuildState>,
    wake: Condvar,
    closed: AtomicBool,
    segments_made: AtomicU64,
    pictures_decoded: AtomicU64,
    bytes: AtomicU64,
    /// The segment being recorded from an index job's frames.
    recording: Mutex<Option<SegmentRecorder>>,
    segments_tapped: AtomicU64,
}

impl ProxyBuilder {
    /// Starts making the proxy of the video at `source` into `segments`' folder.
    pub fn start(segments: Arc<ProxySegments>, source: PathBuf, max_width: u32) -> Arc<Self> {
        Self::start_with_workers(segments, source, max_width, WORKERS)
    }

    /// [`start`](Self::start) with `workers` threads of its own (0: it records only the
    /// frames index jobs give it, as [`FrameTap`]; for tests).
    pub fn start_with_workers(
        segments: Arc<ProxySegments>,
        source: PathBuf,
        max_width: u32,
        workers: usize,
    ) -> Arc<Self> {
        let builder = Arc::new(Self {
            segments,
            source,
            max_width: max_width.max(2),
            state: Mutex::new(BuildState {
                plan: SegmentPlan::default(),
                votes: WidthVotes::new(FIRST_WIDTH.min(max_width.max(2))),
                failed: HashMap::new(),
                making: HashSet::new(),
                tapped: None,
            }),
            recording: Mutex::new(None),
            segments_tapped: AtomicU64::new(0),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
            segments_made: AtomicU64::new(0),
            pictures_decoded: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        });
        for worker in 0..workers {
            let running = Arc::clone(&builder);
            let spawned = std::thread::Builder::new()
                .name(format!("display-proxy-{worker}"))
                .spawn(move || running.run(worker == 0));
            if let Err(e) = spawned {
                tracing::warn!("cannot start making the display proxy: {e}");
            }
        }
        builder
    }

    /// Stops the thread (the video is closed).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.wake.notify_all();
    }

    pub fn counts(&self) -> BuildCounts {
        BuildCounts {
            segments_made: self.segments_made.load(Ordering::Relaxed),
            segments_tapped: self.segments_tapped.load(Ordering::Relaxed),
            pictures_decoded: self.pictures_decoded.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    pub fn segments(&self) -> &Arc<ProxySegments> {
        &self.segments
    }

    /// The width segments are made at now.
    pub fn width(&self) -> u32 {
        lock(&self.state).votes.width().min(self.max_width)
    }

    /// Frames with fast seeking (in segments made at the proxy's width), and in all.
    pub fn coverage(&self) -> (u64, u64) {
        let width = self.width();
        (
            self.segments.frames_covered(width),
            self.segments.frame_index().frames(),
        )
    }

    /// A request for frame `n`, `width` wide (what the page shows, not a thumbnail): counts
    /// the width; where its segment is not made at the proxy's width, that segment is made
    /// next; near a segment's end, the one after it too.
    pub fn note(&self, n: u64, width: u32) {
        let k = video::segment_of(n);
        let here = self.segments.width_of(k);
        let ahead = (n % SEGMENT_FRAMES >= SEGMENT_FRAMES / 2 && k + 1 < self.segments.count())
            .then(|| self.segments.width_of(k + 1));
        let mut state = lock(&self.state);
        state.votes.vote(width);
        let target = state.votes.width().min(self.max_width);
        let now = Instant::now();
        let mut wished = false;
        // The one ahead first, so that the one under the playhead is the latest wish.
        if ahead.is_some_and(|w| !serves(w, target)) {
            state.plan.wish(k + 1, now);
            wished = true;
        }
        if !serves(here, target) {
            state.plan.wish(k, now);
            wished = true;
        }
        drop(state);
        if wished {
            self.wake.notify_all();
        }
    }

    /// A worker: makes wished-for segments, and (`sweep`) the others in order.
    fn run(self: Arc<Self>, sweep: bool) {
        let started = Instant::now();
        let mut decoder: Option<Decoder> = None;
        let count = self.segments.count();
        let mut reported = false;
        loop {
            let (k, width, wished) = {
                let mut state = lock(&self.state);
                loop {
                    if self.closed.load(Ordering::Relaxed) {
                        return;
                    }
                    let width = state.votes.width().min(self.max_width);
                    let now = Instant::now();
                    state
                        .failed
                        .retain(|_, at| now.duration_since(*at) < RETRY_AFTER);
                    let failed = state.failed.clone();
                    let making = state.making.clone();
                    let tapped = state
                        .tapped
                        .filter(|(_, at)| now.duration_since(*at) < TAP_STALE)
                        .map(|(k, _)| k);
                    let segments = &self.segments;
                    let needed = |k: u64| {
                        !serves(segments.width_of(k), width)
                            && !failed.contains_key(&k)
                            && !making.contains(&k)
                            && tapped != Some(k)
                    };
                    if let Some((k, wished)) = state.plan.next(count, needed, now, sweep) {
                        state.making.insert(k);
                        break (k, width, wished);
                    }
                    if sweep && !reported && failed.is_empty() && making.is_empty() {
                        reported = true;
                        let counts = self.counts();
                        if counts.segments_made > 0 {
                            tracing::info!(
                                "display proxy of {}: {} segments at {width} px wide ({:.1} MB) in {:.1} s",
                                self.source.display(),
                                counts.segments_made,
                                counts.bytes as f64 / 1e6,
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                    state = self
                        .wake
                        .wait_timeout(state, Duration::from_secs(1))
                        .map(|(s, _)| s)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            };
            reported = false;
            if !wished {
                // The sweep gives way to viewers' work for a moment (a second at most) before
                // each segment: many open videos' sweeps must not crowd the viewers out, and
                // each still makes a segment every second or so.
                gate().background_turn(BACKGROUND_MAX_WAIT);
            }
            let made = self.make(k, width, wished, &mut decoder);
            lock(&self.state).making.remove(&k);
            self.wake.notify_all();
            if !made {
                return;
            }
        }
    }

    /// Makes segment `k`; false when the video was closed on the way.
    fn make(&self, k: u64, width: u32, wished: bool, decoder: &mut Option<Decoder>) -> bool {
        let _turn = MakingTurn::take();
        // Where a viewer looks, the segment gets a core of its own: viewers' work (served
        // from the source there meanwhile, at many times the cost) keeps the others.
        let _core = wished.then(|| gate().reserve());
        let opened = match decoder.take() {
            Some(d) => Ok(d),
            None => Decoder::single_threaded(&self.source, Arc::clone(self.segments.frame_index())),
        };
        let mut open = match opened {
            Ok(d) => d,
            Err(e) => {
                self.failed(k, &e.public());
                return true;
            }
        };
        let going = || !self.closed.load(Ordering::Relaxed);
        match self.segments.make(k, width, &mut open, &going) {
            Ok(Some(report)) => {
                self.segments_made.fetch_add(1, Ordering::Relaxed);
                self.pictures_decoded
                    .fetch_add(report.pictures_decoded, Ordering::Relaxed);
                self.bytes.fetch_add(report.bytes, Ordering::Relaxed);
                *decoder = Some(open);
                true
            }
            Ok(None) => false,
            Err(e) => {
                self.failed(k, &e.public());
                true
            }
        }
    }

    fn failed(&self, k: u64, reason: &str) {
        tracing::warn!(
            "{reason}; frames {}–{} come from the video itself",
            k * SEGMENT_FRAMES,
            (k + 1) * SEGMENT_FRAMES - 1
        );
        lock(&self.state).failed.insert(k, Instant::now());
    }
}

impl FrameTap for ProxyBuilder {
    /// Records the segments an index job decodes whole, in order, where no worker makes them:
    /// they cost an encode, not a decode of their own.
    fn offer(&self, n: u64, frame: &opencv::core::Mat) {
        let mut recording = lock(&self.recording);
        if recording
            .as_ref()
            .is_some_and(|r| r.next_frame() != Some(n))
        {
            // The job went elsewhere: what was recorded is dropped.
            *recording = None;
        }
        if recording.is_none() {
            let k = video::segment_of(n);
            let frames = self.segments.frame_index().frames();
            let width = self.width();
            if video::segment_frames(k, frames).start != n
                || serves(self.segments.width_of(k), width)
            {
                return;
            }
            {
                let mut state = lock(&self.state);
                if state.making.contains(&k) {
                    return;
                }
                state.tapped = Some((k, Instant::now()));
            }
            match self.segments.recorder(k, width) {
                Ok(r) => *recording = Some(r),
                Err(e) => {
                    self.failed(k, &e.public());
                    return;
                }
            }
        }
        let Some(recorder) = recording.as_mut() else {
            return;
        };
        let k = recorder.segment();
        if let Err(e) = recorder.push(frame) {
            *recording = None;
            self.failed(k, &e.public());
            return;
        }
        lock(&self.state).tapped = Some((k, Instant::now()));
        if recorder.next_frame().is_some() {
            return;
        }
        let whole = recording.take().expect("recording above");
        match self.segments.finish(whole) {
            Ok(report) => {
                self.segments_made.fetch_add(1, Ordering::Relaxed);
                self.segments_tapped.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(report.bytes, Ordering::Relaxed);
            }
            Err(e) => self.failed(k, &e.public()),
        }
        lock(&self.state).tapped = None;
        self.wake.notify_all();
    }
}
