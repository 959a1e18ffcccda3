//! MP4 excerpts ("clips" on the page and the command line): frames `from..=to` of a video as an
//! MP4 that any player opens, frame-exact.
//!
//! Why re-encode instead of a stream copy: a copy can only start at a keyframe, so a copy cut
//! at any other frame either starts early or opens on frames the player cannot decode (the
//! frozen or black first seconds users report from other tools). Here every frame comes from
//! [`Decoder`], which returns exactly frame n of the frame index, and is piped raw to Debian's
//! `ffmpeg` program (the one setup installs; no second FFmpeg binding to build), which encodes
//! H.264 (libx264, yuv420p, `+faststart` so a browser plays it while it downloads). The
//! source's first audio stream is cut to the same span by `atrim` on the file's own timestamps
//! (`-copyts`): the span starts at frame `from`'s presentation time, whatever the stream's start
//! offset, and lasts exactly as long as the clip's frames.
//!
//! Invariants:
//! - The clip's frame k is the source's frame `from + k`, for every k; it has `to - from + 1`
//!   frames at the source's frame rate (a variable-rate source is timed at its average rate).
//! - The output appears atomically (written beside it, then renamed); on any failure or a
//!   cancel the partial file is removed and the encoder is killed.

use std::io::{Read, Write};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use opencv::prelude::*;

use crate::video::{Decoder, FrameIndex, VideoError};

/// How a clip is encoded. Defaults: visually lossless for review, fast enough for 2 cores.
#[derive(Clone, Debug)]
pub struct ExcerptOptions {
    /// libx264's constant rate factor (lower is better and larger; 18 is near transparent).
    pub crf: u8,
    /// libx264's preset (speed against size).
    pub preset: &'static str,
    /// Longest clip accepted, in seconds (`clip_max_s` in the config for the web app).
    pub max_seconds: f64,
}

impl Default for ExcerptOptions {
    fn default() -> Self {
        Self {
            crf: 18,
            preset: "veryfast",
            max_seconds: f64::INFINITY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExcerptError {
    #[error("a clip needs from <= to < {frames} (the video's frame count), not {from}..={to}")]
    BadSpan { from: u64, to: u64, frames: u64 },
    #[error(
        "the clip is {seconds:.1} s long; the limit is {limit:.0} s (clip_max_s in the config)"
    )]
    TooLong { seconds: f64, limit: f64 },
    #[error(transparent)]
    Video(#[from] VideoError),
    #[error("cannot run ffmpeg ({0}); install it (Debian: apt-get install ffmpeg) and try again")]
    NoEncoder(std::io::Error),
    #[error("ffmpeg failed: {0}")]
    Encoder(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the clip was cancelled")]
    Cancelled,
}

impl ExcerptError {
    /// Whether the request itself was at fault (a bad span, too long), not the server.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            ExcerptError::BadSpan { .. } | ExcerptError::TooLong { .. }
        )
    }
}

/// What an export did.
#[derive(Clone, Debug, PartialEq)]
pub struct ExcerptReport {
    pub frames: u64,
    pub seconds: f64,
    pub audio: bool,
    pub bytes: u64,
}

/// The span a clip of frames `from..=to` covers, checked against the video and the limit.
pub fn check_span(
    frame_index: &FrameIndex,
    from: u64,
    to: u64,
    options: &ExcerptOptions,
) -> Result<f64, ExcerptError> {
    let frames = frame_index.frames();
    if from > to || to >= frames {
        return Err(ExcerptError::BadSpan { from, to, frames });
    }
    let seconds = (to - from + 1) as f64 / output_fps(frame_index);
    if seconds > options.max_seconds {
        return Err(ExcerptError::TooLong {
            seconds,
            limit: options.max_seconds,
        });
    }
    Ok(seconds)
}

/// Writes frames `from..=to` of `video` to `out` as an MP4. `progress(done, total)` is called
/// after each frame; `cancel` stops the export (the partial file is removed).
pub fn export_excerpt(
    video: &Path,
    frame_index: Arc<FrameIndex>,
    frames: RangeInclusive<u64>,
    out: &Path,
    options: &ExcerptOptions,
    progress: &dyn Fn(u64, u64),
    cancel: &AtomicBool,
) -> Result<ExcerptReport, ExcerptError> {
    let (from, to) = (*frames.start(), *frames.end());
    let seconds = check_span(&frame_index, from, to, options)?;
    let partial = out.with_extension("partial.mp4");
    let job = Job {
        video,
        frame_index,
        from,
        to,
        options,
        seconds,
    };
    let result = job.encode(&partial, progress, cancel);
    match result {
        Ok(audio) => {
            std::fs::rename(&partial, out).map_err(|source| ExcerptError::Io {
                path: out.to_path_buf(),
                source,
            })?;
            let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
            Ok(ExcerptReport {
                frames: to - from + 1,
                seconds,
                audio,
                bytes,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// The encoder process, killed if the export ends early (a failed frame, a cancel, a panic).
struct Encoder(Child);

impl Drop for Encoder {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One export's fixed facts.
struct Job<'a> {
    video: &'a Path,
    frame_index: Arc<FrameIndex>,
    from: u64,
    to: u64,
    options: &'a ExcerptOptions,
    seconds: f64,
}

impl Job<'_> {
    /// Encodes into `partial`; returns whether the clip has audio.
    fn encode(
        &self,
        partial: &Path,
        progress: &dyn Fn(u64, u64),
        cancel: &AtomicBool,
    ) -> Result<bool, ExcerptError> {
        let (from, to) = (self.from, self.to);
        let mut decoder = Decoder::with_index(self.video, Arc::clone(&self.frame_index))?;
        // The first frame fixes the size the encoder is told (frames are upright, as shown).
        let first = decoder.frame(from)?;
        let (width, height) = (first.cols(), first.rows());
        let audio = !self.frame_index.facts.audio.is_empty();
        let args = self.ffmpeg_args(width, height, audio, partial);
        let child = Command::new("ffmpeg")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(ExcerptError::NoEncoder)?;
        let mut encoder = Encoder(child);
        let piped = || ExcerptError::Encoder("ffmpeg started without its pipes".into());
        let mut stdin = encoder.0.stdin.take().ok_or_else(piped)?;
        // stderr is drained on its own thread so that a chatty encoder never blocks on a full pipe.
        let mut stderr = encoder.0.stderr.take().ok_or_else(piped)?;
        let messages = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let total = to - from + 1;
        let mut frame = first;
        for n in from..=to {
            if cancel.load(Ordering::Relaxed) {
                return Err(ExcerptError::Cancelled);
            }
            if n > from {
                frame = decoder.frame(n)?;
            }
            if frame.cols() != width || frame.rows() != height {
                return Err(ExcerptError::Encoder(format!(
                    "frame {n} is {}x{}, the clip's first frame {width}x{height}: the video changes size there; export the parts separately",
                    frame.cols(),
                    frame.rows()
                )));
            }
            let bytes = if frame.is_continuous() {
                frame
                    .data_bytes()
                    .map_err(|e| ExcerptError::Encoder(e.to_string()))?
                    .to_vec()
            } else {
                frame
                    .try_clone()
                    .and_then(|m| m.data_bytes().map(<[u8]>::to_vec))
                    .map_err(|e| ExcerptError::Encoder(e.to_string()))?
            };
            if stdin.write_all(&bytes).is_err() {
                break; // the encoder quit: its status and message say why, below
            }
            progress(n - from + 1, total);
        }
        drop(stdin);
        let status = encoder
            .0
            .wait()
            .map_err(|e| ExcerptError::Encoder(e.to_string()))?;
        let text = messages.join().unwrap_or_default();
        if !status.success() {
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            return Err(ExcerptError::Encoder(format!("{status}: {last}")));
        }
        Ok(audio)
    }

    fn ffmpeg_args(&self, width: i32, height: i32, audio: bool, partial: &Path) -> Vec<String> {
        let frame_index = &self.frame_index;
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        let mut args = strings(&["-hide_banner", "-loglevel", "error", "-nostdin", "-y"]);
        // Input 0: the frames, raw, in order.
        let size = format!("{width}x{height}");
        let rate = rate_argument(frame_index);
        args.extend(strings(&[
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", &size, "-r", &rate, "-i", "pipe:0",
        ]));
        if audio {
            // Input 1: the source for its audio, on the file's own clock (-copyts), sought to a
            // little before the span and cut exactly by `atrim` on absolute timestamps.
            let start = frame_index.facts.seconds(frame_index.timestamp(self.from));
            let file_start = frame_index
                .facts
                .audio
                .iter()
                .filter_map(|a| a.start_time_s)
                .chain(frame_index.facts.start_time_s)
                .fold(f64::INFINITY, f64::min);
            let file_start = if file_start.is_finite() {
                file_start
            } else {
                0.0
            };
            let seek = format!("{:.6}", (start - file_start - 2.0).max(0.0));
            // Times relative to the span's start; where the audio begins later than the span,
            // `aresample` fills the gap with silence so picture and sound stay aligned.
            let trim = format!(
                "atrim=start={start:.6}:end={end:.6},asetpts=PTS-{start:.6}/TB,aresample=async=1:first_pts=0",
                end = start + self.seconds
            );
            let source = self.video.display().to_string();
            args.extend(strings(&[
                "-copyts",
                "-noaccurate_seek",
                "-ss",
                &seek,
                "-i",
                &source,
                "-map",
                "0:v:0",
                "-map",
                "1:a:0",
                "-af",
                &trim,
                "-c:a",
                "aac",
                "-b:a",
                "160k",
            ]));
        } else {
            args.extend(strings(&["-map", "0:v:0"]));
        }
        let crf = self.options.crf.to_string();
        args.extend(strings(&[
            // yuv420p needs even sizes: a rotated phone video can be odd.
            "-vf",
            "pad=ceil(iw/2)*2:ceil(ih/2)*2,setpts=N/FRAME_RATE/TB",
            "-c:v",
            "libx264",
            "-preset",
            self.options.preset,
            "-crf",
            &crf,
            "-pix_fmt",
            "yuv420p",
            "-fps_mode",
            "passthrough",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ]));
        args.push(partial.display().to_string());
        args
    }
}

/// The frame rate the clip is written at: the stream's stated rate where timestamps agree with
/// it, else their average (a variable-rate source).
fn output_fps(frame_index: &FrameIndex) -> f64 {
    let fps = frame_index.fps();
    if fps.is_finite() && fps > 0.0 {
        fps
    } else {
        25.0 // no rate known at all: a guess that plays, rather than no clip
    }
}

/// The same rate as a fraction for FFmpeg (`30000/1001` stays exact).
fn rate_argument(frame_index: &FrameIndex) -> String {
    let facts = &frame_index.facts;
    match facts.stated_rate() {
        Some(rate) if rate == output_fps(frame_index) && facts.rate_den > 0 => {
            format!("{}/{}", facts.rate_num, facts.rate_den)
        }
        _ => format!("{:.6}", output_fps(frame_index)),
    }
}

/// A download name for the clip: the video's stem and the span, e.g.
/// `walk_00m12.3s-00m18.0s.mp4`; only characters safe in any file system and header.
pub fn excerpt_file_name(video: &Path, start_s: f64, end_s: f64) -> String {
    let stem = video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    if safe.trim_matches(['_', '.']).is_empty() {
        safe = "clip".into();
    }
    format!("{safe}_{}-{}.mp4", clock(start_s), clock(end_s))
}

/// `00m12.3s`, or `1h02m03.0s` past an hour.
fn clock(seconds: f64) -> String {
    let tenths = (seconds.max(0.0) * 10.0).round() as u64;
    let (h, rest) = (tenths / 36_000, tenths % 36_000);
    let (m, t) = (rest / 600, rest % 600);
    let s = format!("{:02}m{:02}.{}s", m, t / 10, t % 10);
    if h > 0 {
        format!("{h}h{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_names_carry_the_span_and_nothing_unsafe() {
        assert_eq!(
            excerpt_file_name(Path::new("/v/walk.mp4"), 12.34, 18.0),
            "walk_00m12.3s-00m18.0s.mp4"
        );
        assert_eq!(
            excerpt_file_name(Path::new("a b\"c.mkv"), 3725.0, 3726.5),
            "a_b_c_1h02m05.0s-1h02m06.5s.mp4"
        );
        assert_eq!(
            excerpt_file_name(Path::new("..."), 0.0, 1.0),
            "clip_00m00.0s-00m01.0s.mp4"
        );
    }
}
