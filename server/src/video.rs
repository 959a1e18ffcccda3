//! The one module that decodes video (OpenCV's FFmpeg backend).
//!
//! - [`probe`] reads metadata and checks that the file really decodes.
//! - [`Decoder`] returns exactly frame `n`; it stays positioned after the last frame it read, so
//!   playing forward and small forward jumps decode sequentially instead of seeking.
//! - [`count_frames`] establishes the exact frame count where the container only estimates it.
//! - [`encode_jpeg`] scales and encodes a frame for the browser.

use std::path::{Path, PathBuf};

use opencv::core::{Mat, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc, videoio};

/// Forward jumps up to this many frames are decoded through (`grab`) rather than seeked:
/// sequential decoding of 720p H.264 runs at ~700 fps here while a seek costs 30-250 ms.
pub const SEQUENTIAL_WINDOW: u64 = 64;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("video file not found: {0}\n  Check video_path in config.yaml (relative paths are relative to the config file), or pass a file that exists.")]
    NotFound(PathBuf),
    #[error("{0} is empty (0 bytes): it is not a video.")]
    Empty(PathBuf),
    #[error("{0} cannot be opened as a video: OpenCV's FFmpeg backend does not recognise it. Is it a video file (mp4, mkv, webm, …)?")]
    CannotOpen(PathBuf),
    #[error(
        "{0} has no decodable video frames: the file may be corrupt, or hold no video stream."
    )]
    NoFrames(PathBuf),
    #[error("{path} looks truncated: it says it has {frames} frames but frame {frame} cannot be decoded. Re-download or re-encode the file.")]
    Truncated {
        path: PathBuf,
        frames: u64,
        frame: u64,
    },
    #[error("frame {frame} is out of range: the video has {frames} frames (0 to {})", frames.saturating_sub(1))]
    OutOfRange { frame: u64, frames: u64 },
    #[error("frame {frame} cannot be read: the container estimates {estimate} frames and the exact count is still being established, so the video probably ends before frame {frame}")]
    BeyondEstimate { frame: u64, estimate: u64 },
    #[error("frame {frame} cannot be decoded from {path}: the file may be truncated or corrupt.")]
    Decode { path: PathBuf, frame: u64 },
    /// The configured video could not be opened at start-up; the message says why.
    #[error("{0}")]
    Unavailable(String),
    #[error("OpenCV failed on {path}: {source}")]
    OpenCv {
        path: PathBuf,
        source: opencv::Error,
    },
}

/// Result of [`probe`].
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub frames: u64,
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    /// Whether `frames` is exact (stored by the container, or counted) or an estimate.
    pub exact_count: bool,
}

impl Metadata {
    pub fn duration_s(&self) -> f64 {
        app::types::seconds_at(self.frames, self.fps)
    }
}

/// Containers whose headers store the real number of frames (an index of every sample).
/// Elsewhere (mkv, webm, …) OpenCV derives the count from duration × fps, an estimate.
fn container_stores_frame_count(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    matches!(ext.as_str(), "mp4" | "m4v" | "mov")
}

fn open_capture(path: &Path) -> Result<videoio::VideoCapture, VideoError> {
    let meta = std::fs::metadata(path).map_err(|_| VideoError::NotFound(path.to_path_buf()))?;
    if !meta.is_file() {
        return Err(VideoError::NotFound(path.to_path_buf()));
    }
    if meta.len() == 0 {
        return Err(VideoError::Empty(path.to_path_buf()));
    }
    let name = path
        .to_str()
        .ok_or_else(|| VideoError::CannotOpen(path.to_path_buf()))?;
    let capture = videoio::VideoCapture::from_file(name, videoio::CAP_FFMPEG)
        .map_err(|_| VideoError::CannotOpen(path.to_path_buf()))?;
    if !capture.is_opened().unwrap_or(false) {
        return Err(VideoError::CannotOpen(path.to_path_buf()));
    }
    Ok(capture)
}

fn opencv_error(path: &Path) -> impl FnOnce(opencv::Error) -> VideoError + '_ {
    move |source| VideoError::OpenCv {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads metadata and checks that the first frame decodes; for containers that store the frame
/// count it also checks the last frame, so a truncated file is caught here and not mid-playback.
pub fn probe(path: &Path) -> Result<Metadata, VideoError> {
    let mut capture = open_capture(path)?;
    let get = |capture: &videoio::VideoCapture, prop| capture.get(prop).map_err(opencv_error(path));
    let reported = get(&capture, videoio::CAP_PROP_FRAME_COUNT)?;
    let fps = get(&capture, videoio::CAP_PROP_FPS)?;
    let mut frame = Mat::default();
    if !capture.read(&mut frame).unwrap_or(false) || frame.empty() {
        return Err(VideoError::NoFrames(path.to_path_buf()));
    }
    let frames = if reported.is_finite() && reported >= 1.0 {
        reported.round() as u64
    } else {
        0
    };
    let exact_count = container_stores_frame_count(path) && frames > 0;
    if exact_count && frames > 1 {
        // A truncated file still reports the header's count; a seek past its real end lands on
        // its last decodable frame, which OpenCV's position then reveals.
        let landed = capture
            .set(videoio::CAP_PROP_POS_FRAMES, (frames - 1) as f64)
            .unwrap_or(false)
            && capture.grab().unwrap_or(false)
            && capture
                .get(videoio::CAP_PROP_POS_FRAMES)
                .unwrap_or(0.0)
                .round() as u64
                == frames;
        if !landed {
            return Err(VideoError::Truncated {
                path: path.to_path_buf(),
                frames,
                frame: frames - 1,
            });
        }
    }
    Ok(Metadata {
        frames: frames.max(1),
        fps: if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            0.0
        },
        // The decoded size, which is what viewers get (headers can disagree with it).
        width: frame.cols().max(0) as u32,
        height: frame.rows().max(0) as u32,
        exact_count,
    })
}

/// The presentation time of every frame, from one decoding pass over the file. It gives the
/// exact frame count, and tells which frame a seek really landed on.
#[derive(Debug)]
pub struct FrameIndex {
    pts_ms: Vec<f64>,
}

impl FrameIndex {
    /// Decodes the whole file (packets alone are not enough: a frame that does not decode is not
    /// a frame a viewer can see).
    pub fn scan(path: &Path) -> Result<Self, VideoError> {
        let mut capture = open_capture(path)?;
        let mut pts_ms = Vec::new();
        while capture.grab().unwrap_or(false) {
            pts_ms.push(capture.get(videoio::CAP_PROP_POS_MSEC).unwrap_or(f64::NAN));
        }
        if pts_ms.is_empty() {
            return Err(VideoError::NoFrames(path.to_path_buf()));
        }
        Ok(Self { pts_ms })
    }

    pub fn frames(&self) -> u64 {
        self.pts_ms.len() as u64
    }

    /// The frame shown at `pts_ms` (the nearest timestamp), if the time is known.
    fn frame_at(&self, pts_ms: f64) -> Option<u64> {
        if !pts_ms.is_finite() {
            return None;
        }
        let after = self.pts_ms.partition_point(|&t| t < pts_ms);
        let candidates = [after.checked_sub(1), Some(after)];
        candidates
            .into_iter()
            .flatten()
            .filter(|&i| i < self.pts_ms.len())
            .min_by(|&a, &b| {
                (self.pts_ms[a] - pts_ms)
                    .abs()
                    .total_cmp(&(self.pts_ms[b] - pts_ms).abs())
            })
            .map(|i| i as u64)
    }
}

/// Counts frames by decoding the whole file.
pub fn count_frames(path: &Path) -> Result<u64, VideoError> {
    FrameIndex::scan(path).map(|index| index.frames())
}

/// Where a seek really landed.
enum Landing {
    At(u64),
    /// The timestamp does not fit a constant frame rate and there is no index yet.
    Unknown,
}

/// One viewer's decoder, positioned after the last frame it returned.
///
/// OpenCV seeks by frame number through timestamps, which is exact for constant-frame-rate
/// files but lands beside the target in variable-frame-rate ones. So every seek is checked:
/// against the file's [`FrameIndex`] when there is one, else against the constant-rate timing;
/// a timing that does not fit makes the decoder build the index and check again.
pub struct Decoder {
    path: PathBuf,
    capture: videoio::VideoCapture,
    /// The index of the frame the next `read` returns.
    next: u64,
    fps: f64,
    /// Timestamp of frame 0: timestamps need not start at zero.
    first_pts_ms: f64,
    index: Option<std::sync::Arc<FrameIndex>>,
}

impl Decoder {
    pub fn open(path: &Path) -> Result<Self, VideoError> {
        let mut capture = open_capture(path)?;
        let fps = capture.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
        if !capture.grab().unwrap_or(false) {
            return Err(VideoError::NoFrames(path.to_path_buf()));
        }
        let first_pts_ms = capture.get(videoio::CAP_PROP_POS_MSEC).unwrap_or(0.0);
        Ok(Self {
            path: path.to_path_buf(),
            capture,
            next: 1,
            fps,
            first_pts_ms,
            index: None,
        })
    }

    /// Gives the decoder the file's frame index (shared by all viewers of the file).
    pub fn set_index(&mut self, index: std::sync::Arc<FrameIndex>) {
        self.index = Some(index);
    }

    /// Exactly frame `n` (BGR). A frame past the end is an error, not a panic.
    pub fn frame(&mut self, n: u64) -> Result<Mat, VideoError> {
        if let Some(index) = &self.index {
            if n >= index.frames() {
                return Err(VideoError::OutOfRange {
                    frame: n,
                    frames: index.frames(),
                });
            }
        }
        let result = self.read_at(n);
        if result.is_err() {
            self.next = u64::MAX; // position unknown: seek next time
        }
        result
    }

    /// Index of the frame the next sequential read returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    fn decode_error(&self, frame: u64) -> VideoError {
        VideoError::Decode {
            path: self.path.clone(),
            frame,
        }
    }

    fn read_at(&mut self, n: u64) -> Result<Mat, VideoError> {
        if n < self.next || n - self.next > SEQUENTIAL_WINDOW {
            if let Some(frame) = self.seek_to(n)? {
                self.next = n + 1;
                return Ok(frame);
            }
        }
        self.skip_to(n)?;
        let mut frame = Mat::default();
        if !self.capture.read(&mut frame).unwrap_or(false) || frame.empty() {
            return Err(self.decode_error(n));
        }
        self.next = n + 1;
        Ok(frame)
    }

    /// Decodes forward, without converting, until the next read returns frame `n`.
    fn skip_to(&mut self, n: u64) -> Result<(), VideoError> {
        while self.next < n {
            if !self.capture.grab().unwrap_or(false) {
                return Err(self.decode_error(n));
            }
            self.next += 1;
        }
        Ok(())
    }

    /// Seeks towards `n` and checks where it landed: returns frame `n` itself when the seek hit
    /// it, else leaves the decoder positioned at or before `n` for [`Self::skip_to`].
    fn seek_to(&mut self, n: u64) -> Result<Option<Mat>, VideoError> {
        let mut aim = n;
        for _ in 0..4 {
            self.seek_raw(aim)?;
            if !self.capture.grab().unwrap_or(false) {
                return Err(self.decode_error(n));
            }
            let landed = match self.landing(aim) {
                Landing::At(k) => k,
                Landing::Unknown if self.index.is_none() => {
                    tracing::debug!(path = %self.path.display(), "timestamps do not fit a constant frame rate; indexing frames");
                    self.index = Some(std::sync::Arc::new(FrameIndex::scan(&self.path)?));
                    continue;
                }
                Landing::Unknown => break,
            };
            if landed == n {
                let mut frame = Mat::default();
                if self.capture.retrieve(&mut frame, 0).unwrap_or(false) && !frame.empty() {
                    return Ok(Some(frame));
                }
                return Err(self.decode_error(n));
            }
            if landed < n && n - landed <= SEQUENTIAL_WINDOW {
                self.next = landed + 1;
                return Ok(None);
            }
            if landed < n {
                break; // far before the target: a truncated file, or a broken seek
            }
            // Past the target: aim earlier by the overshoot.
            aim = n.saturating_sub(landed - n + (n - aim) + 1);
        }
        // Last resort, always exact: decode from the start.
        self.seek_raw(0)?;
        Ok(None)
    }

    fn seek_raw(&mut self, n: u64) -> Result<(), VideoError> {
        // OpenCV seeks to the keyframe before `n` and decodes forward to its idea of `n`.
        let ok = self
            .capture
            .set(videoio::CAP_PROP_POS_FRAMES, n as f64)
            .map_err(opencv_error(&self.path))?;
        if !ok {
            return Err(self.decode_error(n));
        }
        self.next = n;
        Ok(())
    }

    /// Which frame the decoder just grabbed, after seeking to `aim`.
    fn landing(&self, aim: u64) -> Landing {
        let pts = self
            .capture
            .get(videoio::CAP_PROP_POS_MSEC)
            .unwrap_or(f64::NAN);
        if let Some(index) = &self.index {
            return index.frame_at(pts).map_or(Landing::Unknown, Landing::At);
        }
        // OpenCV's own position is right about where a seek past a truncated end landed.
        let position = self
            .capture
            .get(videoio::CAP_PROP_POS_FRAMES)
            .unwrap_or(0.0)
            .round() as u64;
        if position != aim + 1 {
            return Landing::At(position.saturating_sub(1));
        }
        // Without an index, trust the landing only where the timing fits a constant frame rate.
        let expected = self.first_pts_ms + aim as f64 * 1000.0 / self.fps;
        if self.fps > 0.0 && (pts - expected).abs() < 250.0 / self.fps {
            Landing::At(aim)
        } else {
            Landing::Unknown
        }
    }
}

/// JPEG of `frame`, scaled down to `max_width` (0 = keep) with area averaging.
pub fn encode_jpeg(frame: &Mat, max_width: u32, quality: u8) -> Result<Vec<u8>, opencv::Error> {
    let width = frame.cols();
    let scaled;
    let source = if max_width > 0 && width > max_width as i32 {
        let height = ((frame.rows() as f64) * max_width as f64 / width as f64)
            .round()
            .max(1.0) as i32;
        let mut resized = Mat::default();
        imgproc::resize(
            frame,
            &mut resized,
            Size::new(max_width as i32, height),
            0.0,
            0.0,
            imgproc::INTER_AREA,
        )?;
        scaled = resized;
        &scaled
    } else {
        frame
    };
    let mut bytes = Vector::<u8>::new();
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, i32::from(quality)]);
    imgcodecs::imencode(".jpg", source, &mut bytes, &params)?;
    Ok(bytes.to_vec())
}

/// Decodes JPEG (or any image OpenCV reads) bytes to BGR.
pub fn decode_image(bytes: &[u8]) -> Result<Mat, opencv::Error> {
    imgcodecs::imdecode(&Vector::from_slice(bytes), imgcodecs::IMREAD_COLOR)
}
