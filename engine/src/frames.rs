//! Frames for the browser: one open video, a decoder per viewer (tab) so that playheads never
//! disturb each other, and a small cache of encoded frames.
//!
//! Decoding and encoding run on tokio's blocking pool, never on the async workers.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use investigator_core::types::VideoInfo;

use store::config::Settings;

use crate::sync::lock;
use crate::video::{self, Decoder, FrameIndex, Metadata, VideoError};

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
    pub frame_cache: usize,
}

impl From<&Settings> for FrameSettings {
    fn from(s: &Settings) -> Self {
        Self {
            jpeg_quality: s.jpeg_quality,
            display_width: s.display_width,
            max_decoders: s.max_decoders,
            frame_cache: s.frame_cache,
        }
    }
}

/// The open video: its frame index (shared by every viewer's decoder) and what it says.
pub struct OpenVideo {
    path: PathBuf,
    name: String,
    frame_index: Arc<FrameIndex>,
    /// Frame times for the page where the rate is not constant (empty where it is).
    frame_times_ms: Vec<u32>,
}

impl OpenVideo {
    /// Reads the video's frame index from `index_dir` (the cache folder), or builds it there
    /// (a packet scan: seconds for an hour of video).
    pub fn open(path: &Path, index_dir: Option<&Path>) -> Result<Arc<Self>, VideoError> {
        let frame_index = FrameIndex::load_or_build(path, index_dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let frame_times_ms = if frame_index.constant_rate() {
            Vec::new()
        } else {
            (0..frame_index.frames())
                .map(|n| (frame_index.time_s(n) * 1000.0).round() as u32)
                .collect()
        };
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            name,
            frame_index,
            frame_times_ms,
        }))
    }

    pub fn frame_index(&self) -> &Arc<FrameIndex> {
        &self.frame_index
    }

    pub fn metadata(&self) -> Metadata {
        self.frame_index.metadata()
    }

    pub fn info(&self) -> VideoInfo {
        let m = self.metadata();
        VideoInfo {
            // The library knows the id; the video itself does not.
            id: String::new(),
            name: self.name.clone(),
            width: m.width,
            height: m.height,
            fps: m.fps,
            frames: m.frames,
            exact_count: m.exact_count,
            frame_times_ms: self.frame_times_ms.clone(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

struct ViewerSlot {
    decoder: Arc<Mutex<Option<Decoder>>>,
    last_used: Instant,
}

/// Recently encoded frames, most recent last.
struct JpegCache {
    capacity: usize,
    entries: VecDeque<(u64, Arc<Vec<u8>>)>,
}

impl JpegCache {
    fn get(&mut self, frame: u64) -> Option<Arc<Vec<u8>>> {
        let at = self.entries.iter().position(|(f, _)| *f == frame)?;
        let entry = self.entries.remove(at)?;
        let jpeg = Arc::clone(&entry.1);
        self.entries.push_back(entry);
        Some(jpeg)
    }

    fn put(&mut self, frame: u64, jpeg: Arc<Vec<u8>>) {
        if self.capacity == 0 {
            return;
        }
        self.entries.retain(|(f, _)| *f != frame);
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((frame, jpeg));
    }
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

/// Serves frames of one video to many viewers.
pub struct FrameServer {
    /// The video, or why it could not be opened (shown in the page; the server keeps running).
    video: Result<Arc<OpenVideo>, Arc<VideoError>>,
    settings: FrameSettings,
    viewers: Mutex<HashMap<String, ViewerSlot>>,
    cache: Mutex<JpegCache>,
}

impl FrameServer {
    /// The frame server of the video at `video_path`; its frame index is kept in `index_dir`.
    pub fn new(video_path: &Path, settings: FrameSettings, index_dir: Option<&Path>) -> Self {
        let video = OpenVideo::open(video_path, index_dir).inspect_err(|error| {
            tracing::error!("{error}");
        });
        Self::with_video(video, settings)
    }

    pub fn with_video(video: Result<Arc<OpenVideo>, VideoError>, settings: FrameSettings) -> Self {
        let video = video.map_err(Arc::new);
        Self {
            video,
            settings,
            viewers: Mutex::new(HashMap::new()),
            cache: Mutex::new(JpegCache {
                capacity: settings.frame_cache,
                entries: VecDeque::new(),
            }),
        }
    }

    /// The open video, or why it cannot be opened (`VideoError::public` for the page).
    pub fn video(&self) -> Result<&Arc<OpenVideo>, &Arc<VideoError>> {
        self.video.as_ref()
    }

    /// The decoder slot of `viewer`, created on first use; closes idle and excess decoders.
    fn viewer_decoder(&self, viewer: &str) -> Arc<Mutex<Option<Decoder>>> {
        let mut viewers = lock(&self.viewers);
        let now = Instant::now();
        close_idle(&mut viewers, now);
        if !viewers.contains_key(viewer) && viewers.len() >= self.settings.max_decoders {
            close_oldest(&mut viewers);
        }
        let slot = viewers
            .entry(viewer.to_string())
            .or_insert_with(|| ViewerSlot {
                decoder: Arc::new(Mutex::new(None)),
                last_used: now,
            });
        slot.last_used = now;
        Arc::clone(&slot.decoder)
    }

    /// Number of viewers currently holding a decoder slot.
    pub fn open_decoders(&self) -> usize {
        lock(&self.viewers).len()
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

    /// JPEG of exactly `frame` for `viewer`. Blocking: call from a blocking thread.
    pub fn frame_jpeg_blocking(
        &self,
        viewer: &str,
        frame: u64,
    ) -> Result<Arc<Vec<u8>>, VideoError> {
        let video = self.checked(frame)?;
        if let Some(jpeg) = lock(&self.cache).get(frame) {
            return Ok(jpeg);
        }
        self.with_decoder(video, viewer, |decoder| {
            // A player with two requests in flight can have frame n+1 overtaken by n+2. Encode
            // the frames this read passes over, so the late request finds its frame in the
            // cache instead of costing a backward seek.
            let position = decoder.position();
            if position < frame && frame - position <= OVERTAKEN_FRAMES {
                for skipped in position..frame {
                    if lock(&self.cache).get(skipped).is_none() {
                        let image = decoder.frame(skipped)?;
                        self.encode_and_cache(video, skipped, &image)?;
                    }
                }
            }
            let image = decoder.frame(frame)?;
            self.encode_and_cache(video, frame, &image)
        })
    }

    /// Exactly `frame`, upright BGR at full size, from `viewer`'s decoder (a name of the
    /// engine's own, such as "explanations", keeps a viewer's playback decoder where it is).
    /// Blocking.
    pub fn frame_image_blocking(
        &self,
        viewer: &str,
        frame: u64,
    ) -> Result<opencv::core::Mat, VideoError> {
        let video = self.checked(frame)?;
        self.with_decoder(video, viewer, |decoder| decoder.frame(frame))
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

    /// Runs `work` with `viewer`'s decoder, opened on first use.
    fn with_decoder<T>(
        &self,
        video: &OpenVideo,
        viewer: &str,
        work: impl FnOnce(&mut Decoder) -> Result<T, VideoError>,
    ) -> Result<T, VideoError> {
        let slot = self.viewer_decoder(viewer);
        let mut decoder = lock(&slot);
        if decoder.is_none() {
            *decoder = Some(Decoder::with_index(
                video.path(),
                Arc::clone(video.frame_index()),
            )?);
        }
        match decoder.as_mut() {
            Some(decoder) => work(decoder),
            None => Err(VideoError::NoFrames(video.path().to_path_buf())),
        }
    }

    fn encode_and_cache(
        &self,
        video: &OpenVideo,
        frame: u64,
        image: &opencv::core::Mat,
    ) -> Result<Arc<Vec<u8>>, VideoError> {
        let jpeg = video::encode_jpeg(
            image,
            self.settings.display_width,
            self.settings.jpeg_quality,
        )
        .map_err(|source| VideoError::OpenCv {
            path: video.path().to_path_buf(),
            source,
        })?;
        let jpeg = Arc::new(jpeg);
        lock(&self.cache).put(frame, Arc::clone(&jpeg));
        Ok(jpeg)
    }
}
