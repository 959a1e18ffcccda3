//! Types and checks shared by the browser and the server.

use serde::{Deserialize, Serialize};

/// What the page needs to know about the open video.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    /// The video's opaque id in the library (URLs and server functions use it, never a path).
    pub id: String,
    /// File name only: the server never tells the browser where files live.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub frames: u64,
    /// False while `frames` is the container's estimate and the exact count is still being
    /// established by decoding in the background.
    pub exact_count: bool,
    /// Presentation time of each frame in milliseconds from frame 0, when the frame rate is
    /// not constant; empty when frame n is shown at n / fps (nearly every video).
    #[serde(default)]
    pub frame_times_ms: Vec<u32>,
    /// Changes when the file's content does: frame URLs carry it so that a browser may keep
    /// their answers for good.
    #[serde(default)]
    pub version: String,
}

impl VideoInfo {
    pub fn last_frame(&self) -> u64 {
        self.frames.saturating_sub(1)
    }

    pub fn duration_s(&self) -> f64 {
        match self.frame_times_ms.last() {
            Some(&last) => f64::from(last) / 1000.0 + seconds_at(1, self.fps),
            None => seconds_at(self.frames, self.fps),
        }
    }

    /// Seconds from frame 0 to `frame`: its presentation time.
    pub fn time_s(&self, frame: u64) -> f64 {
        time_at(frame, self.fps, &self.frame_times_ms)
    }

    /// The frame on screen `seconds` after frame 0.
    pub fn frame_at_s(&self, seconds: f64) -> u64 {
        if self.frame_times_ms.is_empty() {
            return (seconds.max(0.0) * self.fps).floor() as u64;
        }
        let ms = seconds * 1000.0;
        let after = self.frame_times_ms.partition_point(|&t| f64::from(t) <= ms);
        after.saturating_sub(1) as u64
    }
}

/// Seconds from frame 0 to `frame`: `frame_times_ms[frame]` where the rate is not constant,
/// else `frame / fps`.
pub fn time_at(frame: u64, fps: f64, frame_times_ms: &[u32]) -> f64 {
    match frame_times_ms.get(frame as usize) {
        Some(&ms) => f64::from(ms) / 1000.0,
        None if !frame_times_ms.is_empty() => {
            f64::from(*frame_times_ms.last().unwrap_or(&0)) / 1000.0
                + seconds_at(frame + 1 - frame_times_ms.len() as u64, fps)
        }
        None => seconds_at(frame, fps),
    }
}

/// How far a library video is indexed with the server's model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Indexed {
    No,
    Partly,
    Yes,
}

/// One video of the library, as the list page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LibraryVideo {
    pub id: String,
    /// File name only.
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub duration_s: f64,
    pub frames: u64,
    pub indexed: Indexed,
    /// The share of its planned frames the default model has embedded, 0 to 1.
    pub progress: f32,
    /// The name of the library folder it is in.
    pub folder: String,
    /// Why the file cannot be opened, if it cannot.
    pub error: Option<String>,
    /// The config's `video_path`, opened when a URL names no video.
    pub default: bool,
}

/// The library: its videos, and whether (and how large) uploads are accepted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Library {
    pub videos: Vec<LibraryVideo>,
    /// Largest upload in bytes; `None` when no library folder is configured.
    pub max_upload_bytes: Option<u64>,
    /// Every video is being indexed in the background (for the library search).
    pub index_library: bool,
}

/// What `POST /api/upload` answers when the video was accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Uploaded {
    pub id: String,
    pub name: String,
}

/// Video ids are 16 lowercase hex digits (a hash of where the file is, never the path).
pub fn is_valid_video_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A model the server offers (config `models:`); the first the server lists is the default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChoice {
    /// Names the model in requests and share links (`?model=`): made from its folder or repo
    /// name, never a path.
    pub id: String,
    /// What the picker shows: the Hub repo id, or the folder's name.
    pub label: String,
}

/// Model ids are 1 to 64 lowercase letters, digits, dots, dashes or underscores.
pub fn is_valid_model_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// One encoded frame as it travels to the browser.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameJpeg {
    pub frame: u64,
    #[serde(with = "serde_bytes")]
    pub jpeg: Vec<u8>,
}

/// Where embedding the open video stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexStatus {
    pub state: IndexState,
    /// Sampled frames embedded so far, and planned in all.
    pub done: u64,
    pub total: u64,
    /// Embedding speed of the running job (frames per second), and the time it still needs.
    pub frames_per_s: f64,
    pub eta_s: Option<f64>,
    /// The model, e.g. `openai/clip-vit-base-patch32@refs/pr/15`, once it is loaded.
    pub model: Option<String>,
    /// Why the model or the job failed, for the page.
    pub message: Option<String>,
    /// Why the image tower runs in another precision than the one asked for (an int8 check
    /// that fell short), for the page.
    #[serde(default)]
    pub precision_note: Option<String>,
    /// Images and texts this server has run through the model since it started.
    pub images_embedded: u64,
    pub texts_embedded: u64,
    /// Coarse-to-fine indexing: the pass running (from 1) of `passes`; both 0 for a straight
    /// index.
    pub pass: u32,
    pub passes: u32,
    /// The widest gap, in frames, between embedded frames across the part of the video the
    /// index covers so far (the whole video once the first pass is done), and in seconds.
    pub spacing_frames: u64,
    pub spacing_s: f64,
    /// How far an embedded frame's score stands in for its unembedded neighbours while the
    /// passes run (0: only as far as the sampling rate says).
    pub fill_radius: u64,
    /// Frames of the running pass embedded and planned, and the time the pass still needs.
    pub pass_done: u64,
    pub pass_total: u64,
    pub pass_eta_s: Option<f64>,
    /// Frames decoded per frame embedded in the last pass finished (seeks to keyframes keep
    /// sparse passes from decoding the whole video).
    pub decoded_per_embedded: f64,
    /// How much of the video has fast seeking (its display proxy is made there); `None` where
    /// no proxy is made (keyframes close enough, or `display_proxy: off`).
    #[serde(default)]
    pub fast_seeking: Option<FastSeeking>,
}

/// Frames of the video whose display proxy is made, of all its frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastSeeking {
    pub frames: u64,
    pub of: u64,
}

impl FastSeeking {
    pub fn complete(&self) -> bool {
        self.frames >= self.of
    }

    /// The share with fast seeking, in whole percent, rounded down (100 only when complete).
    pub fn percent(&self) -> u64 {
        (self.frames * 100).checked_div(self.of).unwrap_or(100)
    }
}

/// One search result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    pub frame: u64,
    pub score: f32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexState {
    /// The model is loading, or the job waits for its turn.
    #[default]
    Waiting,
    Running,
    Done,
    /// No model (e.g. no weights offline) or the job failed; see the message.
    Failed,
}

/// Cosine similarity of the embedded frames with each prompt. Values are per embedded frame
/// (not per video frame): the client fills the others with [`crate::scores::fill_frames`], so
/// a sparsely sampled hour-long video costs a few KB per prompt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreSeries {
    /// The embedded frames, ascending.
    pub frames: Vec<u64>,
    /// Planned frames that could not be decoded (a damaged file), ascending: no value, the
    /// chart marks them.
    pub missing: Vec<u64>,
    /// Frames in the video.
    pub video_frames: u64,
    /// Largest distance from a frame to the embedded frame that stands in for it.
    pub fill_radius: u64,
    /// Every planned frame is embedded (frames after the last sample take its value too).
    pub complete: bool,
    pub prompts: Vec<PromptScores>,
    /// CLIP's temperature, for the softmax (probability) view.
    pub logit_scale: f32,
    /// SigLIP's bias: its probability is `sigmoid(logit_scale * cos + logit_bias)` per prompt
    /// (no softmax across prompts). `None` for CLIP.
    pub logit_bias: Option<f32>,
    /// Scene cuts found so far (first frames of new shots), ascending.
    pub cuts: Vec<u64>,
    /// The widest gap, in frames, between embedded frames while a coarse-to-fine index refines
    /// (1 once every frame is embedded; the sampling step for a sampled index).
    pub spacing_frames: u64,
    /// Seconds between samples at that spacing.
    pub spacing_s: f64,
    /// A coarse-to-fine index is still refining.
    pub refining: bool,
    /// The adapted prompts asked for, aligned with `frames`.
    #[serde(default)]
    pub adapted: Vec<crate::adapt::AdaptedScores>,
}

impl ScoreSeries {
    /// Per-frame values of prompt `index` for frames `0..n` (the indexed prefix); NaN where
    /// the frame (or the sample standing in for it) could not be decoded.
    pub fn filled(&self, index: usize) -> Vec<f32> {
        let radius = if self.complete {
            u64::MAX
        } else {
            self.fill_radius
        };
        crate::scores::fill_frames_with_gaps(
            &self.frames,
            &self.prompts[index].values,
            &self.missing,
            self.video_frames,
            radius,
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptScores {
    pub prompt: String,
    pub values: Vec<f32>,
    /// The prompt was longer than the model's 77 tokens and was cut.
    pub truncated: bool,
}

/// Seconds from the start of the video at which frame `frame` is shown (constant-rate view).
pub fn seconds_at(frame: u64, fps: f64) -> f64 {
    if fps > 0.0 {
        frame as f64 / fps
    } else {
        0.0
    }
}

/// `mm:ss.ss`, or `h:mm:ss.ss` past an hour.
pub fn format_time(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    let whole = seconds.floor() as u64;
    let (h, m) = (whole / 3600, (whole / 60) % 60);
    let s = seconds - (h * 3600 + m * 60) as f64;
    if h > 0 {
        format!("{h}:{m:02}:{s:05.2}")
    } else {
        format!("{m:02}:{s:05.2}")
    }
}

/// Why a requested frame cannot be shown; the message is meant for the page.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FrameParamError {
    #[error("frame must be a whole number from 0 to {last}; got \"{given}\"")]
    NotANumber { given: String, last: u64 },
    #[error("frame {given} is out of range: this video has {frames} frames (0 to {last})")]
    OutOfRange {
        given: String,
        frames: u64,
        last: u64,
    },
}

/// Parses the `frame` query parameter against the video's frame count.
pub fn parse_frame_param(raw: &str, frames: u64) -> Result<u64, FrameParamError> {
    let last = frames.saturating_sub(1);
    let trimmed = raw.trim();
    match trimmed.parse::<i128>() {
        Ok(n) if n >= 0 && (n as u128) < frames as u128 => Ok(n as u64),
        Ok(_) => Err(FrameParamError::OutOfRange {
            given: trimmed.to_string(),
            frames,
            last,
        }),
        Err(_) => Err(FrameParamError::NotANumber {
            given: trimmed.chars().take(40).collect(),
            last,
        }),
    }
}

/// A viewer id names one tab's playhead on the server; keep it short and plain.
pub fn is_valid_viewer_id(id: &str) -> bool {
    (8..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_param_accepts_only_frames_of_the_video() {
        assert_eq!(parse_frame_param("0", 10), Ok(0));
        assert_eq!(parse_frame_param(" 9 ", 10), Ok(9));
        assert!(matches!(
            parse_frame_param("10", 10),
            Err(FrameParamError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_frame_param("-1", 10),
            Err(FrameParamError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_frame_param("abc", 10),
            Err(FrameParamError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_frame_param("1.5", 10),
            Err(FrameParamError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_frame_param("", 10),
            Err(FrameParamError::NotANumber { .. })
        ));
        let huge = "9".repeat(200);
        let message = parse_frame_param(&huge, 10).unwrap_err().to_string();
        assert!(
            message.len() < 200,
            "long input is cut in the message: {message}"
        );
    }

    #[test]
    fn times_are_formatted_as_minutes_and_seconds() {
        assert_eq!(format_time(0.0), "00:00.00");
        assert_eq!(format_time(4.1), "00:04.10");
        assert_eq!(format_time(75.5), "01:15.50");
        assert_eq!(format_time(3725.25), "1:02:05.25");
        assert_eq!(seconds_at(123, 30.0), 4.1);
    }

    #[test]
    fn frame_times_follow_the_timestamps_when_the_rate_varies() {
        let constant = VideoInfo {
            id: String::new(),
            name: String::new(),
            width: 1,
            height: 1,
            fps: 30.0,
            frames: 300,
            exact_count: true,
            frame_times_ms: vec![],
            version: String::new(),
        };
        assert_eq!(constant.time_s(45), 1.5);
        assert_eq!(constant.frame_at_s(1.5), 45);
        assert_eq!(constant.duration_s(), 10.0);
        let variable = VideoInfo {
            frames: 4,
            frame_times_ms: vec![0, 33, 83, 117],
            version: String::new(),
            ..constant
        };
        assert_eq!(variable.time_s(2), 0.083);
        assert_eq!(variable.frame_at_s(0.05), 1);
        assert_eq!(variable.frame_at_s(0.083), 2);
        assert_eq!(variable.frame_at_s(5.0), 3);
        assert!((variable.duration_s() - (0.117 + 1.0 / 30.0)).abs() < 1e-9);
    }

    #[test]
    fn viewer_ids_are_short_and_plain() {
        assert!(is_valid_viewer_id("a1b2c3d4e5"));
        assert!(!is_valid_viewer_id("short"));
        assert!(!is_valid_viewer_id("../../etc/passwd"));
        assert!(!is_valid_viewer_id(&"x".repeat(65)));
    }
}

/// How far a viewer's MP4 excerpt export is (frames encoded of the excerpt's frames).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExcerptProgress {
    pub running: bool,
    pub done: u64,
    pub total: u64,
}
