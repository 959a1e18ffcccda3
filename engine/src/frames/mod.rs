//! Frames for the browser: one open video, its decoders shared by position ([`pool`]), one
//! cache of encoded frames for every viewer ([`cache`]), the order in which viewers' work gets
//! the cores (`sync::gate`), and the display proxy that makes seeks cheap, made in segments
//! where viewers look first ([`builder`], [`plan`]).
//!
//! Invariants:
//! - the JPEG of frame n is a picture of frame n (a proxy segment's packet i is source frame
//!   `first + i`, see `video::proxy`); the model never sees the proxy;
//! - a frame whose segment is not made yet (or made narrower than asked) comes exactly from
//!   the source, and its segment is made next;
//! - a frame wanted by several viewers at once is decoded once;
//! - a request whose viewer has since asked for another frame by a click or seek is dropped
//!   when its turn comes, not decoded.
//!
//! Decoding and encoding run on tokio's blocking pool, never on the async workers.

mod builder;
pub mod cache;
mod open_video;
pub mod plan;
pub mod pool;

pub use builder::{serves, BuildCounts, ProxyBuilder};
pub use open_video::OpenVideo;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use store::config::DisplayProxy;
use store::config::Settings;

pub use crate::sync::gate::Priority;
use crate::sync::gate::{gate, Cost};
use crate::sync::lock;
use crate::video::{self, Decoder, ProxyDecoder, ProxySegments, VideoError};
use cache::{FrameCache, FrameKey};
use pool::Pool;

/// Frames a read may skip that are still encoded for the cache (see `frame_jpeg_blocking`).
const OVERTAKEN_FRAMES: u64 = 2;

/// A decoder is closed after this long without a request.
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
    pub display_proxy: DisplayProxy,
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

/// Why a frame was not answered.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Video(#[from] VideoError),
    /// The viewer asked for another frame by a click or seek before this one's turn came.
    #[error("this viewer has since asked for another frame")]
    Superseded,
    /// More work waits than the cores can do soon: ask again in a moment.
    #[error("the server is busy with other viewers' frames; ask again in a moment")]
    Busy,
}

/// One request for a frame.
#[derive(Clone, Copy, Debug)]
pub struct FrameRequest<'a> {
    /// Who asks (a tab's id); empty for an anonymous client (a plain URL), each of whose
    /// requests is a client of its own for the fair share of the cores.
    pub viewer: &'a str,
    pub frame: u64,
    /// Width the viewer displays it at (`None`: the configured display width).
    pub width: Option<u32>,
    pub priority: Priority,
    /// A thumbnail (search hits, moments): its width does not choose the proxy's, and it does
    /// not ask for its segment to be made.
    pub thumbnail: bool,
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
    /// Where it came from: `cache`, `proxy` or `video`.
    pub source: &'static str,
}

/// Figures for the bench and the tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCounts {
    /// Pictures decoded for viewers, source and proxy together.
    pub pictures_decoded: u64,
    /// Frames with fast seeking (display proxy segments made at its width), and in all.
    pub proxy_frames: u64,
    pub frames: u64,
    /// What the proxy builder did.
    pub proxy: BuildCounts,
}

/// The gate's key for a viewer's fair share (0: anonymous).
fn client_key(viewer: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    if viewer.is_empty() {
        return 0;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    viewer.hash(&mut hasher);
    hasher.finish().max(1)
}

/// Display proxy decoders that weigh as much as one decoder of the video.
const PROXY_DECODERS_PER_SLOT: usize = 4;

/// Smallest width a viewer may ask for.
const MIN_WIDTH: u32 = 64;

/// Under load, playback frames are sent at this share of the asked width and this quality.
const REDUCED_WIDTH: (u32, u32) = (1, 2);
const REDUCED_QUALITY: u8 = 60;

/// The display proxy of a video: not started yet (lazy), none (not wanted or not useful), or
/// being made (or made).
enum ProxyState {
    NotStarted,
    None,
    Started(Arc<ProxyBuilder>),
}

/// Serves frames of one video to many viewers.
pub struct FrameServer {
    /// The video, or why it could not be opened (shown in the page; the server keeps running).
    video: Result<Arc<OpenVideo>, Arc<VideoError>>,
    settings: FrameSettings,
    cache: Arc<FrameCache>,
    /// Where the frame index (and the proxy) are kept; `None`: no proxy.
    index_dir: Option<PathBuf>,
    /// The video's decoders, and the proxy's (display-sized, single-threaded: several weigh
    /// one).
    sources: Pool<Decoder>,
    proxies: Pool<ProxyDecoder>,
    proxy: Mutex<ProxyState>,
    /// Requests numbered as they arrive, and each viewer's last click or seek.
    arrivals: AtomicU64,
    last_seek: Mutex<HashMap<String, u64>>,
    decoded: Arc<AtomicU64>,
    /// The file's size and modification time when it was opened.
    stamp: Option<(u64, std::time::SystemTime)>,
}

impl Drop for FrameServer {
    fn drop(&mut self) {
        if let ProxyState::Started(builder) = &*lock(&self.proxy) {
            builder.close();
        }
    }
}

fn file_stamp(path: &Path) -> Option<(u64, std::time::SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}

impl FrameServer {
    /// The frame server of the video at `video_path`; its frame index (and display proxy) are
    /// kept in `index_dir`. It has a cache of its own.
    pub fn new(video_path: &Path, settings: FrameSettings, index_dir: Option<&Path>) -> Self {
        Self::sharing(video_path, settings, index_dir, settings.new_cache())
    }

    /// As [`new`](Self::new), with a cache shared with other videos' servers. With
    /// `display_proxy: eager`, making the display proxy starts now.
    pub fn sharing(
        video_path: &Path,
        settings: FrameSettings,
        index_dir: Option<&Path>,
        cache: Arc<FrameCache>,
    ) -> Self {
        let stamp = file_stamp(video_path);
        let video = OpenVideo::open(video_path, index_dir).inspect_err(|error| {
            tracing::error!("{error}");
        });
        let mut server = Self::with_video(video, settings);
        server.cache = cache;
        server.index_dir = index_dir.map(Path::to_path_buf);
        server.stamp = stamp;
        if settings.display_proxy == DisplayProxy::Eager {
            if let Ok(video) = &server.video {
                let video = Arc::clone(video);
                server.proxy_builder(&video);
            }
        }
        server
    }

    pub fn with_video(video: Result<Arc<OpenVideo>, VideoError>, settings: FrameSettings) -> Self {
        let video = video.map_err(Arc::new);
        Self {
            video,
            settings,
            cache: settings.new_cache(),
            index_dir: None,
            sources: Pool::new(settings.max_decoders),
            proxies: Pool::new(
                settings
                    .max_decoders
                    .saturating_mul(PROXY_DECODERS_PER_SLOT),
            ),
            proxy: Mutex::new(ProxyState::NotStarted),
            arrivals: AtomicU64::new(0),
            last_seek: Mutex::new(HashMap::new()),
            decoded: Arc::new(AtomicU64::new(0)),
            stamp: None,
        }
    }

    /// Whether the file on disk is still the one opened (same size and modification time).
    pub fn file_unchanged(&self) -> bool {
        match (&self.video, self.stamp) {
            (Ok(video), Some(stamp)) => file_stamp(video.path()) == Some(stamp),
            _ => true,
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
        let builder = self.started_builder();
        let (proxy_frames, frames) = builder.as_ref().map_or_else(
            || (0, self.video.as_ref().map_or(0, |v| v.metadata().frames)),
            |b| b.coverage(),
        );
        FrameCounts {
            pictures_decoded: self.decoded.load(Ordering::Relaxed),
            proxy_frames,
            frames,
            proxy: builder.map(|b| b.counts()).unwrap_or_default(),
        }
    }

    /// What takes the frames this video's index job decodes: the display proxy's builder,
    /// where one is made (`display_proxy: eager`).
    pub fn frame_tap(&self) -> Option<crate::indexing::Tap> {
        self.started_builder()
            .map(|b| crate::indexing::Tap(b as Arc<dyn crate::indexing::FrameTap>))
    }

    /// Frames with fast seeking and in all, where a display proxy is made for this video.
    pub fn fast_seeking(&self) -> Option<(u64, u64)> {
        self.started_builder().map(|b| b.coverage())
    }

    fn started_builder(&self) -> Option<Arc<ProxyBuilder>> {
        match &*lock(&self.proxy) {
            ProxyState::Started(builder) => Some(Arc::clone(builder)),
            _ => None,
        }
    }

    /// The proxy's builder, started on first use where a proxy helps and is allowed.
    fn proxy_builder(&self, video: &Arc<OpenVideo>) -> Option<Arc<ProxyBuilder>> {
        let mut state = lock(&self.proxy);
        match &*state {
            ProxyState::Started(builder) => return Some(Arc::clone(builder)),
            ProxyState::None => return None,
            ProxyState::NotStarted => {}
        }
        *state = ProxyState::None;
        let dir = self.index_dir.as_ref()?;
        if self.settings.display_proxy == DisplayProxy::Off
            || !video::proxy_helps(video.frame_index())
        {
            return None;
        }
        let segments = match ProxySegments::open(dir, video.path(), Arc::clone(video.frame_index()))
        {
            Ok(segments) => segments,
            Err(e) => {
                tracing::warn!(
                    "cannot keep a display proxy in {}: {e}; frames come from the video itself",
                    dir.display()
                );
                return None;
            }
        };
        let full = video.frame_index().facts.display_size().0;
        let max_width = match self.settings.display_width {
            0 => full,
            w => w.min(full),
        };
        let builder = ProxyBuilder::start(segments, video.path().to_path_buf(), max_width);
        *state = ProxyState::Started(Arc::clone(&builder));
        Some(builder)
    }

    /// Decoders open now (the video's and the proxy's).
    pub fn open_decoders(&self) -> usize {
        self.sources.open() + self.proxies.open()
    }

    /// What this video's decoders weigh in the library's `max_decoders` budget: one per
    /// decoder of the video, a quarter per decoder of the display proxy.
    pub fn decoder_weight(&self) -> usize {
        self.sources.open() + self.proxies.open().div_ceil(PROXY_DECODERS_PER_SLOT)
    }

    /// Closes decoders idle for longer than [`IDLE_DECODER`]; returns when the longest idle
    /// of the others was last used.
    pub fn close_idle_decoders(&self) -> Option<Instant> {
        let a = self.sources.close_idle(IDLE_DECODER);
        let b = self.proxies.close_idle(IDLE_DECODER);
        a.into_iter().chain(b).min()
    }

    /// When the least recently used idle decoder (of the video or its proxy) came back.
    pub fn oldest_idle_decoder(&self) -> Option<Instant> {
        self.sources
            .oldest_idle()
            .into_iter()
            .chain(self.proxies.oldest_idle())
            .min()
    }

    /// Closes the least recently used idle decoder, of the video or of its proxy (the library
    /// keeps a budget across videos); `false` when none is idle.
    pub fn close_oldest_decoder(&self) -> bool {
        let proxy_older = match (self.sources.oldest_idle(), self.proxies.oldest_idle()) {
            (Some(source), Some(proxy)) => proxy < source,
            (None, Some(_)) => true,
            _ => false,
        };
        if proxy_older {
            self.proxies.close_oldest()
        } else {
            self.sources.close_oldest()
        }
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
            thumbnail: false,
            supersedes: false,
        };
        match self.frame(request) {
            Ok(answer) => Ok(answer.jpeg),
            Err(FrameError::Video(e)) => Err(e),
            Err(e @ (FrameError::Superseded | FrameError::Busy)) => {
                Err(VideoError::Unavailable(e.to_string()))
            }
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
        let builder = self.proxy_builder(video);
        if let (Some(builder), false) = (&builder, request.thumbnail) {
            builder.note(request.frame, width);
        }
        let full_key = self.key(video, request.frame, width, quality);
        // The frame at full quality is as good as any: take it where it is cached.
        if let Some(jpeg) = self.cache.get(&full_key) {
            return Ok(FrameAnswer {
                jpeg,
                width,
                quality,
                reduced: false,
                source: "cache",
            });
        }
        let reduced = request.priority != Priority::Seek && gate().loaded();
        if reduced {
            width = (width * REDUCED_WIDTH.0 / REDUCED_WIDTH.1).max(MIN_WIDTH.min(width));
            quality = quality.min(REDUCED_QUALITY);
        }
        let key = self.key(video, request.frame, width, quality);
        let client = client_key(request.viewer);
        if self.cache.get(&key).is_none() && gate().saturated() {
            return Err(FrameError::Busy);
        }
        let cost = self.cost_of(builder.as_ref(), request.frame, width);
        let source = std::cell::Cell::new("cache");
        let jpeg = self.cache.get_or_make(key, || {
            let _turn = gate().enter_as(request.priority, cost, client);
            if self.superseded(request.viewer, arrival) {
                return Err(FrameError::Superseded);
            }
            let (jpeg, from) =
                self.decode_and_encode(video, builder.as_ref(), request.frame, width, quality)?;
            source.set(from);
            Ok(jpeg)
        })?;
        Ok(FrameAnswer {
            jpeg,
            width,
            quality,
            reduced,
            source: source.get(),
        })
    }

    /// What decoding `frame` is expected to cost: cheap from a proxy segment, or from a
    /// decoder that decodes on to it; else a seek in the video.
    fn cost_of(&self, builder: Option<&Arc<ProxyBuilder>>, frame: u64, width: u32) -> Cost {
        let segment = video::segment_of(frame);
        if builder.is_some_and(|b| serves(b.segments().width_of(segment), width))
            || self.sources.any_idle(|d| d.in_reach(frame))
        {
            Cost::Cheap
        } else {
            Cost::Costly
        }
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

    /// Decodes `frame` (from its proxy segment where one serves the width) and encodes it. A
    /// read from the video that passes over a few frames (a player's request overtaken by the
    /// next) encodes those too, so the late request finds its frame in the cache instead of
    /// costing a backward seek.
    fn decode_and_encode(
        &self,
        video: &OpenVideo,
        builder: Option<&Arc<ProxyBuilder>>,
        frame: u64,
        width: u32,
        quality: u8,
    ) -> Result<(Vec<u8>, &'static str), FrameError> {
        let encode = |image: &opencv::core::Mat| {
            video::encode_jpeg(image, width, quality).map_err(|source| VideoError::OpenCv {
                path: video.path().to_path_buf(),
                source,
            })
        };
        let segment = builder.and_then(|b| {
            let segment = b.segments().segment(video::segment_of(frame), width)?;
            Some((b, segment))
        });
        if let Some((builder, segment)) = segment {
            let mut decoder = self.proxies.take(
                |d| d.reach(&segment, frame),
                || ProxyDecoder::new(builder.segments()),
            )?;
            let before = decoder.pictures_decoded();
            // Straight from the decoder's planes to the size sent.
            let image = decoder.frame_at_width(&segment, frame, width);
            self.decoded
                .fetch_add(decoder.pictures_decoded() - before, Ordering::Relaxed);
            return Ok((encode(&image?)?, "proxy"));
        }
        let mut decoder = self.source_decoder(video, frame)?;
        let read = |decoder: &mut Decoder, n: u64| {
            let before = decoder.pictures_decoded();
            let image = decoder.frame(n);
            self.decoded
                .fetch_add(decoder.pictures_decoded() - before, Ordering::Relaxed);
            image
        };
        let position = decoder.position();
        if position < frame && frame - position <= OVERTAKEN_FRAMES {
            for skipped in position..frame {
                let key = self.key(video, skipped, width, quality);
                if self.cache.get(&key).is_none() {
                    let jpeg = encode(&read(&mut decoder, skipped)?)?;
                    self.cache.put(key, jpeg);
                }
            }
        }
        let image = read(&mut decoder, frame)?;
        Ok((encode(&image)?, "video"))
    }

    /// A decoder of the video for `frame`, from the pool: the one that decodes on to it.
    fn source_decoder(
        &self,
        video: &OpenVideo,
        frame: u64,
    ) -> Result<pool::Lease<'_, Decoder>, VideoError> {
        self.sources.take(
            |d| d.in_reach(frame).then(|| frame - d.position()),
            || Decoder::single_threaded(video.path(), Arc::clone(video.frame_index())),
        )
    }

    /// Exactly `frame`, upright BGR at full size, from a decoder of the video (never the
    /// proxy). Blocking.
    pub fn frame_image_blocking(
        &self,
        _viewer: &str,
        frame: u64,
    ) -> Result<opencv::core::Mat, VideoError> {
        let video = self.checked(frame)?;
        self.source_decoder(video, frame)?.frame(frame)
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
