//! The one module that decodes video, with FFmpeg's libraries (through `ffmpeg-next`); OpenCV
//! does the image processing and JPEG.
//!
//! Frame N is the N-th frame FFmpeg presents — after edit lists, from the first presented frame,
//! in presentation order: image N+1 of `ffmpeg -i V -fps_mode passthrough %d.png`, the frame
//! players show. Every count, seek, score and link in the app uses that numbering, which the
//! [`FrameIndex`] establishes from the file's packets.
//!
//! - [`probe`] builds the frame index and says what the video is.
//! - [`Decoder`] returns exactly frame `n`; it stays positioned after the last frame it read,
//!   so playing forward and small forward jumps decode on instead of seeking.
//! - [`ProxySegments`] is the video again at display size with dense keyframes, in segments
//!   made where viewers look first; for the eyes only.
//! - [`encode_jpeg`] scales and encodes a frame for the browser.

mod convert;
mod decoder;
mod frame_index;
mod proxy;
mod source;

use std::path::{Path, PathBuf};

use opencv::core::{Mat, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

pub use decoder::Decoder;
pub use frame_index::{DecodeStart, FrameIndex, IndexMethod, INDEX_VERSION};
pub use proxy::{
    proxy_helps, proxy_size, segment_count, segment_frames, segment_of, ProxyDecoder,
    ProxySegments, Segment, SegmentRecorder, SegmentReport, PROXY_GOP, SEGMENT_FRAMES,
};
pub use source::{AudioFacts, StreamFacts};

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("video file not found: {0}\n  Check video_path in config.yaml (relative paths are relative to the config file), or pass a file that exists.")]
    NotFound(PathBuf),
    #[error("{0} is empty (0 bytes): it is not a video.")]
    Empty(PathBuf),
    #[error("{0} cannot be opened as a video: FFmpeg does not recognise it. Is it a video file (mp4, mkv, webm, …)?")]
    CannotOpen(PathBuf),
    #[error("{0} holds no video stream (only audio, subtitles or data?).")]
    NoVideo(PathBuf),
    #[error(
        "{0} has no decodable video frames: the file may be corrupt, or hold no video stream."
    )]
    NoFrames(PathBuf),
    #[error("{path} looks truncated: its header lists {claimed} frames but only {found} are in the file. Re-download or re-encode the file.")]
    Truncated {
        path: PathBuf,
        claimed: u64,
        found: u64,
    },
    #[error("frame {frame} is out of range: the video has {frames} frames (0 to {})", frames.saturating_sub(1))]
    OutOfRange { frame: u64, frames: u64 },
    #[error("frame {frame} of {path} cannot be decoded: {reason}. The frames around it are not affected.")]
    Decode {
        path: PathBuf,
        frame: u64,
        reason: String,
    },
    #[error("{path}: FFmpeg cannot decode its video ({reason}).")]
    Codec { path: PathBuf, reason: String },
    /// A display proxy segment could not be made or written (a full disk, an encoder missing):
    /// its frames come from the video itself.
    #[error("display proxy segment {segment} in {path} cannot be made: {reason}")]
    ProxySegment {
        path: PathBuf,
        segment: u64,
        reason: String,
    },
    /// The configured video could not be opened at start-up; the message says why.
    #[error("{0}")]
    Unavailable(String),
    #[error("OpenCV failed on {path}: {source}")]
    OpenCv {
        path: PathBuf,
        source: opencv::Error,
    },
}

impl VideoError {
    /// The file the error is about, if it names one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::NotFound(p) | Self::Empty(p) | Self::CannotOpen(p) | Self::NoVideo(p) => Some(p),
            Self::NoFrames(p) => Some(p),
            Self::Truncated { path, .. }
            | Self::Decode { path, .. }
            | Self::Codec { path, .. }
            | Self::ProxySegment { path, .. }
            | Self::OpenCv { path, .. } => Some(path),
            Self::OutOfRange { .. } | Self::Unavailable(_) => None,
        }
    }

    /// The message for the browser: it names the file, never the folder it lives in here.
    pub fn public(&self) -> String {
        match self.path() {
            Some(path) => without_folder(&self.to_string(), path),
            None => self.to_string(),
        }
    }
}

/// `message` with `path` written as its file name only (what the browser may see).
pub fn without_folder(message: &str, path: &Path) -> String {
    match (path.to_str(), path.file_name().and_then(|n| n.to_str())) {
        (Some(full), Some(name)) if !full.is_empty() => message.replace(full, name),
        _ => message.to_string(),
    }
}

/// Result of [`probe`].
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub frames: u64,
    pub fps: f64,
    /// Size as shown (a video rotated by a quarter turn has width and height swapped).
    pub width: u32,
    pub height: u32,
    /// Whether `frames` is exact (from the frame index) or unknown yet.
    pub exact_count: bool,
}

impl Metadata {
    pub fn duration_s(&self) -> f64 {
        investigator_core::types::seconds_at(self.frames, self.fps)
    }
}

/// Builds the frame index of `path` (a packet scan, and a decode of its first GOP) and says
/// what the video is. A file that does not open, holds no video, shows no frame or is
/// truncated is an error that says so.
pub fn probe(path: &Path) -> Result<Metadata, VideoError> {
    FrameIndex::load_or_build(path, None).map(|frame_index| frame_index.metadata())
}

/// The exact number of frames FFmpeg presents.
pub fn count_frames(path: &Path) -> Result<u64, VideoError> {
    FrameIndex::load_or_build(path, None).map(|frame_index| frame_index.frames())
}

/// A decoded picture's timestamp as the index knows frames by: its `pts`, else FFmpeg's
/// best-effort guess.
fn timestamp_of(picture: &ffmpeg_next::frame::Video) -> Option<i64> {
    picture.pts().or(picture.timestamp())
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
