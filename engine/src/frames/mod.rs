//! Frames for the browser: one open video, decoders per viewer (tab) so that playheads never
//! disturb each other, one cache of encoded frames for every viewer ([`cache`]), the order in
//! which viewers' work gets the cores (`sync::gate`), and the display proxy that makes seeks cheap.
//!
//! Invariants:
//! - the JPEG of frame n is a picture of frame n (the proxy's packet n is source frame n, see
//!   `video::proxy`); the model never sees the proxy;
//! - a frame wanted by several viewers at once is decoded once;
//! - a request whose viewer has since asked for another frame by a click or seek is dropped
//!   when its turn comes, not decoded.
//!
//! Decoding and encoding run on tokio's blocking pool, never on the async workers.

pub mod cache;
mod open_video;

pub use open_video::OpenVideo;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store::config::Settings;

pub use crate::sync::gate::Priority;
use crate::sync::gate::{gate, BACKGROUND_MAX_WAIT};
use crate::sync::lock;
use crate::video::{self, Decoder, Proxy, ProxyDecoder, VideoError};
use cache::{FrameCache, FrameKey};

/// Frames a read may skip that are still encoded for the cache (see `frame_jpeg_blocking`).
const OVERTAKEN_FRAMES: u64 = 2;

/// A viewer's decoder is closed after this long without a request.
const IDLE_DECODER: Duration = Duration::from_secs(120);

/// How frames are encoded for the browser.
#[derive(Clone, Copy, Debug)]
pub struct FrameSettings {
    pub jpeg_quality: u8,
    pub display_width: u32,
    pub max_decoders: usize,
    /// Encoded frames kept, at most (entries).
    pub frame_cache: usize,
    /// Encoded frames kept, at most (megabytes).
    pub frame_cache_mb: usize,
    pub display_proxy: bool,
}

impl FrameSettings {
    /// The shared cache these settings describe.
    pub fn new_cache(&self) -> Arc<FrameCache> {
        Arc::new(FrameCache::new(
            self.frame_cache_mb.saturating_mul(1 << 20),
            self.frame_cache,
        ))
    }
}

impl From<&Settings> for FrameSettings {
    fn from(s: &Settings) -> Self {
        Self {
            jpeg_quality: s.jpeg_quality,
            display_width: s.display_width,
            max_decoders: s.max_decoders,
            frame_cache: s.frame_cache,
            frame_cache_mb: s.frame_cache_mb,
            display_proxy: s.display_proxy,
        }
    }
}

/// A viewer's decoders: the source's, and the proxy's once there is one.
#[derive(Default)]
struct ViewerDecoders {
    source: Option<Decoder>,
    proxy: Option<ProxyDecoder>,
}

impl ViewerDecoders {
    /// The viewer's decoder of the video itself, opened on first use.
    fn source(&mut self, video: &OpenVideo) -> Result<&mut Decoder, VideoError> {
        if self.source.is_none() {
            let decoder = Decoder::with_index(video.path(), Arc::clone(video.frame_index()))?;
            self.source = Some(decoder);
        }
        Ok(self.source.as_mut().expect("set above"))
    }

    /// The viewer's decoder of `proxy`; the video's own decoder is no longer needed and closed.
    fn proxy(&mut self, proxy: &Arc<Proxy>) -> Result<&mut ProxyDecoder, VideoError> {
        self.source = None;
        if !self.proxy.as_ref().is_some_and(|d| d.reads(proxy)) {
            self.proxy = Some(ProxyDecoder::new(Arc::clone(proxy))?);
        }
        Ok(self.proxy.as_mut().expect("set above"))
    }
}

struct ViewerSlot {
    decoders: Arc<Mutex<ViewerDecoders>>,
    last_used: Instant,
}

fn close_idle(viewers: &mut HashMap<String, ViewerSlot>, now: Instant) {
    viewers.retain(|_, slot| now.duration_since(slot.last_used) < IDLE_DECODER);
}

fn close_oldest(viewers: &mut HashMap<String, ViewerSlot>) {
    let oldest = viewers
        .iter()
        .min_by_key(|(_, s)| s.last_used)
        .map(|(k, _)| k.clone());
    if let Some(oldest) = oldest {
        viewers.remove(&oldest);
    }
}

/// The display proxy of a video: absent, being made, or ready.
#[derive(Default)]
struct ProxyState {
    ready: Option<Arc<Proxy>>,
    started: bool,
}

/// Why a frame was not answered.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Video(#[from] VideoError),
    /// The viewer asked for another frame by a click or seek before this one's turn came.
    #[error("this viewer has since asked for another frame")]
    Superseded,
}

/// One request for a frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameRequest<'a> {
    pub viewer: &'a str,
    pub frame: u64,
    /// Width the viewer displays it at (`None`: the configured display width).
    pub width: Option<u32>,
    pub priority: Priority,
    /// The viewer has moved on: its earlier requests still waiting for their turn are dropped
    /// (a click or seek of the page; not requests that may overlap, such as thumbnails).
    pub supersedes: bool,
}

/// An encoded frame and what it is.
#[derive(Clone, Debug)]
pub struct FrameAnswer {
    pub jpeg: Arc<Vec<u8>>,
    pub width: u32,
    pub quality: u8,
    /// Sent smaller or coarser than asked because the server is loaded (playback only).
    pub reduced: bool,
}

/// Figures for the bench and the tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCounts {
    /// Pictures decoded for viewers, source and proxy together.
    pub pictures_decoded: u64,
    pub proxy_ready: bool,
}

/// Display proxy decoders that weigh as much as one decoder of the video.
const PROXY_DECODERS_PER_SLOT: usize = 4;

/// Smallest width a viewer may ask for.
const MIN_WIDTH: u32 = 64;

/// Under load, playback frames are sent at this share of the asked width and this quality.
const REDUCED_WIDTH: (u32, u32) = (1, 2);
const REDUCED_QUALITY: u8 = 60;

/// Serves frames of one video to many viewers.
pub struct FrameServer {
    /// The video, or why it could not be opened (shown in the page; the server keeps running).
    video: Result<Arc<OpenVideo>, Arc<VideoError>>,
    settings: FrameSettings,
    viewers: Mutex<HashMap<String, ViewerSlot>>,
    cache: Arc<FrameCache>,
    /// Where the frame index (and the proxy) are kept; `None`: no proxy.
    index_dir: Option<PathBuf>,
    proxy: Arc<Mutex<ProxyState>>,
    /// Set when the server is dropped: a proxy being made stops.
    closed: Arc<AtomicBool>,
    /// Requests numbered as they arrive, and each viewer's last click or seek.
    arrivals: AtomicU64,
    last_seek: Mutex<HashMap<String, u64>>,
    decoded: Arc<AtomicU64>,
}

impl Drop for FrameServer {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

impl FrameServer {
    /// The frame server of the video at `video_path`; its frame index (and display proxy) are
    /// kept in `index_dir`. It has a cache of its own.
    pub fn new(video_path: &Path, settings: FrameSettings, index_dir: Option<&Path>) -> Self {
        Self::sharing(video_path, settings, index_dir, settings.new_cache())
    }

    /// As [`new`](Self::new), with a cache shared with other videos' servers.
    pub fn sharing(
        video_path: &Path,
        settings: FrameSettings,
        index_dir: Option<&Path>,
        cache: Arc<FrameCache>,
    ) -> Self {
        let video = OpenVideo::open(video_path, index_dir).inspect_err(|error| {
            tracing::error!("{error}");
        });
        let mut server = Self::with_video(video, settings);
        server.cache = cache;
        server.index_dir = index_dir.map(Path::to_path_buf);
        server
    }

    pub fn with_video(video: Result<Arc<OpenVideo>, VideoError>, settings: FrameSettings) -> Self {
        let video = video.map_err(Arc::new);
        Self {
            video,
            settings,
            viewers: Mutex::new(HashMap::new()),
            cache: settings.new_cache(),
            index_dir: None,
            proxy: Arc::new(Mutex::new(ProxyState::default())),
            closed: Arc::new(AtomicBool::new(false)),
            arrivals: AtomicU64::new(0),
            last_seek: Mutex::new(HashMap::new()),
            decoded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The open video, or why it cannot be opened (`VideoError::public` for the page).
    pub fn video(&self) -> Result<&Arc<OpenVideo>, &Arc<VideoError>> {
        self.video.as_ref()
    }

    pub fn cache(&self) -> &Arc<FrameCache> {
        &self.cache
    }

    pub fn counts(&self) -> FrameCounts {
        FrameCounts {
            pictures_decoded: self.decoded.load(Ordering::Relaxed),
            proxy_ready: lock(&self.proxy).ready.is_some(),
        }
    }

    /// How many viewers may hold decoders of this video at once: `max_decoders`, or four
    /// times that once the display proxy serves them (a proxy decoder is display-sized and
    /// single-threaded; the viewer's video decoder is closed when it moves to the proxy).
    fn decoder_slots(&self) -> usize {
        if lock(&self.proxy).ready.is_some() {
            self.settings
                .max_decoders
                .saturating_mul(PROXY_DECODERS_PER_SLOT)
        } else {
            self.settings.max_decoders
        }
    }

    /// The decoder slot of `viewer`, created on first use; closes idle and excess decoders.
    fn viewer_decoders(&self, viewer: &str) -> Arc<Mutex<ViewerDecoders>> {
        let slots = self.decoder_slots();
        let mut viewers = lock(&self.viewers);
        let now = Instant::now();
        close_idle(&mut viewers, now);
        if !viewers.contains_key(viewer) && viewers.len() >= slots {
            close_oldest(&mut viewers);
        }
        let slot = viewers
            .entry(viewer.to_string())
            .or_insert_with(|| ViewerSlot {
                decoders: Arc::new(Mutex::new(ViewerDecoders::default())),
                last_used: now,
            });
        slot.last_used = now;
        Arc::clone(&slot.decoders)
    }

    /// Number of viewers currently holding a decoder slot.
    pub fn open_decoders(&self) -> usize {
        lock(&self.viewers).len()
    }

    /// What this video's decoders weigh in the library's `max_decoders` budget: one per
    /// viewer, a quarter once they read the display proxy.
    pub fn decoder_weight(&self) -> usize {
        let open = self.open_decoders();
        if lock(&self.proxy).ready.is_some() {
            open.div_ceil(PROXY_DECODERS_PER_SLOT)
        } else {
            open
        }
    }

    /// Closes decoders idle for longer than [`IDLE_DECODER`]; returns when the least recently
    /// used of the others was last used.
    pub fn close_idle_decoders(&self) -> Option<Instant> {
        let mut viewers = lock(&self.viewers);
        close_idle(&mut viewers, Instant::now());
        viewers.values().map(|s| s.last_used).min()
    }

    /// Closes the least recently used decoder (the library keeps a budget across videos).
    pub fn close_oldest_decoder(&self) {
        close_oldest(&mut lock(&self.viewers));
    }

    /// JPEG of exactly `frame` for `viewer` at the display width, as for a seek. Blocking.
    pub fn frame_jpeg_blocking(
        &self,
        viewer: &str,
        frame: u64,
    ) -> Result<Arc<Vec<u8>>, VideoError> {
        let request = FrameRequest {
            viewer,
            frame,
            width: None,
            priority: Priority::Seek,
            supersedes: false,
        };
        match self.frame(request) {
            Ok(answer) => Ok(answer.jpeg),
            Err(FrameError::Video(e)) => Err(e),
            Err(FrameError::Superseded) => Err(VideoError::Unavailable(
                "this viewer has since asked for another frame".into(),
            )),
        }
    }

    /// The width frames are sent at for a viewer that asks for `asked` (clamped to the
    /// configured display width and the video's own).
    pub fn width_for(&self, asked: Option<u32>) -> Result<u32, VideoError> {
        let video = self.checked(0)?;
        let full = video.metadata().width.max(1);
        let limit = match self.settings.display_width {
            0 => full,
            w => w.min(full),
        };
        Ok(asked.map_or(limit, |w| w.clamp(MIN_WIDTH.min(limit), limit)))
    }

    /// The JPEG quality of frames sent at full quality.
    pub fn quality(&self) -> u8 {
        self.settings.jpeg_quality
    }

    /// The frame a request asks for, from the cache or decoded in its turn. Blocking.
    pub fn frame(&self, request: FrameRequest) -> Result<FrameAnswer, FrameError> {
        let video = self.checked(request.frame)?;
        let arrival = self.arrivals.fetch_add(1, Ordering::Relaxed) + 1;
        if request.supersedes {
            let mut seeks = lock(&self.last_seek);
            if seeks.len() > 4096 {
                seeks.clear();
            }
            seeks.insert(request.viewer.to_string(), arrival);
        }
        let mut width = self.width_for(request.width)?;
        let mut quality = self.settings.jpeg_quality;
        let full_key = self.key(video, request.frame, width, quality);
        // The frame at full quality is as good as any: take it where it is cached.
        if let Some(jpeg) = self.cache.get(&full_key) {
            return Ok(FrameAnswer {
                jpeg,
                width,
                quality,
                reduced: false,
            });
        }
        let reduced = request.priority != Priority::Seek && gate().loaded();
        if reduced {
            width = (width * REDUCED_WIDTH.0 / REDUCED_WIDTH.1).max(MIN_WIDTH.min(width));
            quality = quality.min(REDUCED_QUALITY);
        }
        self.start_proxy(video);
        let key = self.key(video, request.frame, width, quality);
        let jpeg = self.cache.get_or_make(key, || {
            let _turn = gate().enter(request.priority);
            if self.superseded(request.viewer, arrival) {
                return Err(FrameError::Superseded);
            }
            self.decode_and_encode(video, request.viewer, request.frame, width, quality)
        })?;
        Ok(FrameAnswer {
            jpeg,
            width,
            quality,
            reduced,
        })
    }

    fn key(&self, video: &OpenVideo, frame: u64, width: u32, quality: u8) -> FrameKey {
        FrameKey {
            video: video.cache_id(),
            frame,
            width,
            quality,
        }
    }

    fn superseded(&self, viewer: &str, arrival: u64) -> bool {
        lock(&self.last_seek)
            .get(viewer)
            .is_some_and(|&seek| seek > arrival)
    }

    /// Decodes `frame` (from the proxy when it is ready) and encodes it. A read that passes
    /// over a few frames (a player's request overtaken by the next) encodes those too, so the
    /// late request finds its frame in the cache instead of costing a backward seek.
    fn decode_and_encode(
        &self,
        video: &OpenVideo,
        viewer: &str,
        frame: u64,
        width: u32,
        quality: u8,
    ) -> Result<Vec<u8>, FrameError> {
        let slot = self.viewer_decoders(viewer);
        let mut decoders = lock(&slot);
        let proxy = lock(&self.proxy).ready.clone();
        let encode = |image: &opencv::core::Mat| {
            video::encode_jpeg(image, width, quality).map_err(|source| VideoError::OpenCv {
                path: video.path().to_path_buf(),
                source,
            })
        };
        let read = |decoders: &mut ViewerDecoders, n: u64| {
            let (image, decoded) = match &proxy {
                Some(proxy) => {
                    let decoder = decoders.proxy(proxy)?;
                    let before = decoder.pictures_decoded();
                    // Straight from the decoder's planes to the size sent.
                    let image = decoder.frame_at_width(n, width);
                    (image, decoder.pictures_decoded() - before)
                }
                None => {
                    let decoder = decoders.source(video)?;
                    let before = decoder.pictures_decoded();
                    let image = decoder.frame(n);
                    (image, decoder.pictures_decoded() - before)
                }
            };
            self.decoded.fetch_add(decoded, Ordering::Relaxed);
            image
        };
        let position = match (&proxy, &decoders.source) {
            (None, Some(source)) => Some(source.position()),
            _ => None,
        };
        if let Some(position) = position {
            if position < frame && frame - position <= OVERTAKEN_FRAMES {
                for skipped in position..frame {
                    let key = self.key(video, skipped, width, quality);
                    if self.cache.get(&key).is_none() {
                        let jpeg = encode(&read(&mut decoders, skipped)?)?;
                        self.cache.put(key, jpeg);
                    }
                }
            }
        }
        let image = read(&mut decoders, frame)?;
        Ok(encode(&image)?)
    }

    /// Starts making the display proxy on first use, where it helps and is allowed: in the
    /// background, one at a time, giving way to viewers.
    fn start_proxy(&self, video: &Arc<OpenVideo>) {
        let Some(dir) = &self.index_dir else { return };
        if !self.settings.display_proxy {
            return;
        }
        {
            let mut state = lock(&self.proxy);
            if state.started {
                return;
            }
            state.started = true;
        }
        if !video::proxy_helps(video.frame_index()) {
            return;
        }
        if let Some(ready) = Proxy::open(dir, video.frame_index(), self.settings.display_width) {
            lock(&self.proxy).ready = Some(ready);
            return;
        }
        let (dir, video, width) = (dir.clone(), Arc::clone(video), self.settings.display_width);
        let (state, closed) = (Arc::clone(&self.proxy), Arc::clone(&self.closed));
        let spawned = std::thread::Builder::new()
            .name("display-proxy".into())
            .spawn(move || {
                // One proxy at a time: each takes a core while nobody watches.
                static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
                let _one = lock(&ONE_AT_A_TIME);
                let started = Instant::now();
                let turn = || {
                    gate().background_turn(BACKGROUND_MAX_WAIT);
                    !closed.load(Ordering::Relaxed)
                };
                match Proxy::build(
                    video.path(),
                    Arc::clone(video.frame_index()),
                    &dir,
                    width,
                    &turn,
                ) {
                    Ok(report) => {
                        if let Some(r) = report {
                            tracing::info!(
                                "display proxy of {}: {} frames at {}x{} ({}), {:.1} MB in {:.1} s",
                                video.name,
                                r.frames,
                                r.width,
                                r.height,
                                r.codec,
                                r.bytes as f64 / 1e6,
                                started.elapsed().as_secs_f64()
                            );
                        }
                        lock(&state).ready = Proxy::open(&dir, video.frame_index(), width);
                    }
                    Err(e) => tracing::warn!("{}; frames come from the video itself", e.public()),
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start making the display proxy: {e}");
        }
    }

    /// Exactly `frame`, upright BGR at full size, from `viewer`'s decoder (a name of the
    /// engine's own, such as "explanations", keeps a viewer's playback decoder where it is).
    /// Always the source, never the proxy. Blocking.
    pub fn frame_image_blocking(
        &self,
        viewer: &str,
        frame: u64,
    ) -> Result<opencv::core::Mat, VideoError> {
        let video = self.checked(frame)?;
        let slot = self.viewer_decoders(viewer);
        let mut decoders = lock(&slot);
        decoders.source(video)?.frame(frame)
    }

    /// The open video, if `frame` is one of its frames.
    fn checked(&self, frame: u64) -> Result<&Arc<OpenVideo>, VideoError> {
        let video = self
            .video
            .as_ref()
            .map_err(|error| VideoError::Unavailable(error.public()))?;
        let frames = video.metadata().frames;
        if frame >= frames {
            return Err(VideoError::OutOfRange { frame, frames });
        }
        Ok(video)
    }
}
