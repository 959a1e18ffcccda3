//! The video engine as it was before the FFmpeg frame index (OpenCV's `VideoCapture`, seeks by
//! its frame-number arithmetic, checked against a decode scan): the "before" peer of
//! `cargo bench -p server --bench video`, measured side by side with today's engine in one run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio;

const SEQUENTIAL_WINDOW: u64 = 64;

#[derive(Debug)]
pub enum VideoError {
    NotFound(PathBuf),
    Empty(PathBuf),
    CannotOpen(PathBuf),
    NoFrames(PathBuf),
    Decode {
        path: PathBuf,
        frame: u64,
    },
    OutOfRange {
        frame: u64,
        frames: u64,
    },
    OpenCv {
        path: PathBuf,
        source: opencv::Error,
    },
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
