//! Test videos whose every frame carries its own index, so a test can check that "frame n"
//! really is frame n after any seek, scaling or JPEG round trip.
//!
//! The top band of each frame (a ninth of its height) is 16 equal blocks: block `i` (0 = left)
//! is white when bit `15 - i` of the frame index is set, black otherwise. Large flat blocks
//! survive lossy compression. Below the band: moving stripes whose colours change every
//! [`SCENE_LENGTH`] frames (scene changes). Frames are piped raw into the `ffmpeg` command.
//!
//! [`derive`] turns such a video into the files users actually have (remuxed into MPEG-PS/TS
//! with a start offset, trimmed by stream copy, cut mid-stream like a capture, rotated, with
//! audio that starts first) with Debian's `ffmpeg`, and [`ffmpeg_patterns`] asks `ffmpeg`
//! itself which frames it presents: the ground truth for frame N.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use opencv::core::{Mat, Rect, Scalar};
use opencv::prelude::*;

pub const PATTERN_BITS: u32 = 16;
pub const SCENE_LENGTH: u32 = 75;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// H.264 in .mp4 (frame count stored in the container).
    H264,
    /// MPEG-2 video, for .mkv (frame count only estimated).
    Mpeg2,
    /// VP9, for .webm (frame count only estimated).
    Vp9,
    /// HEVC (x265: open GOPs by default), 8-bit 4:2:0, tagged hvc1 for .mp4.
    Hevc,
    /// HEVC, 10-bit 4:2:0.
    Hevc10,
    /// Motion JPEG (every frame a keyframe), for .avi.
    Mjpeg,
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub frames: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// The frame rate is `fps / fps_den` (30000/1001 for NTSC's 29.97).
    pub fps_den: u32,
    pub codec: Codec,
    /// B-frames between references (H.264 defaults to 2; MPEG-2 with B-frames makes open
    /// GOPs, as broadcast encoders do).
    pub b_frames: Option<u32>,
    /// H.264 only: open GOPs (keyframes that are I-frames with a recovery point, not IDR, whose
    /// leading B-frames refer to the GOP before).
    pub open_gop: bool,
    pub keyframe_interval: u32,
    /// Irregular frame durations (every 7th frame is shown 50% longer).
    pub variable_frame_rate: bool,
    /// The stripes change colour every [`SCENE_LENGTH`] frames (hard cuts); off, one scene.
    pub scene_changes: bool,
    /// A frame whose stripes are white (a photographer's flash): a big change, not a cut.
    pub flash_at: Option<u32>,
    /// `(first, frames)`: the stripes fade to black over `frames` frames from `first`, and stay
    /// black to the end of that scene. Not a cut either.
    pub fade_to_black: Option<(u32, u32)>,
}

impl Spec {
    pub fn new(codec: Codec, frames: u32) -> Self {
        Self {
            frames,
            width: 1280,
            height: 720,
            fps: 30,
            fps_den: 1,
            codec,
            b_frames: None,
            open_gop: false,
            keyframe_interval: 250,
            variable_frame_rate: false,
            scene_changes: true,
            flash_at: None,
            fade_to_black: None,
        }
    }

    /// The frames where a new scene starts (its hard cuts), ascending.
    pub fn cuts(&self) -> Vec<u64> {
        if !self.scene_changes {
            return Vec::new();
        }
        (1..self.frames.div_ceil(SCENE_LENGTH))
            .map(|i| u64::from(i * SCENE_LENGTH))
            .collect()
    }

    /// How bright frame `index`'s stripes are (1 = the scene's colours) and whether they flash.
    fn light(&self, index: u32) -> f32 {
        if self.flash_at == Some(index) {
            return f32::INFINITY;
        }
        match self.fade_to_black {
            Some((first, frames))
                if index >= first && index / SCENE_LENGTH == first / SCENE_LENGTH =>
            {
                (1.0 - (index - first + 1) as f32 / frames.max(1) as f32).max(0.0)
            }
            _ => 1.0,
        }
    }
}

/// Scene colours (BGR), chosen to differ strongly from each other.
const SCENES: [[u8; 3]; 6] = [
    [40, 90, 200],
    [200, 120, 30],
    [60, 180, 60],
    [180, 40, 160],
    [30, 200, 220],
    [120, 120, 120],
];

/// Raw BGR bytes of frame `index`.
pub fn render_frame(spec: &Spec, index: u32) -> Vec<u8> {
    let (w, h) = (spec.width as usize, spec.height as usize);
    let mut pixels = vec![0u8; w * h * 3];
    let band = h / 9;
    let block = w / PATTERN_BITS as usize;
    // Stripes below the band: a row template shifted each row and each frame (motion).
    let scene = if spec.scene_changes {
        SCENES[(index / SCENE_LENGTH) as usize % SCENES.len()]
    } else {
        SCENES[0]
    };
    let light = spec.light(index);
    let period = 64usize;
    let template: Vec<u8> = (0..(w + period))
        .flat_map(|x| {
            let shade = if (x / (period / 2)).is_multiple_of(2) {
                1.0
            } else {
                0.45
            };
            // A flash saturates every channel (`as u8` clamps).
            scene.map(|c| (c as f32 * shade * light) as u8)
        })
        .collect();
    for y in band..h {
        let shift = (y + index as usize * 3) % period;
        let row = &mut pixels[y * w * 3..(y + 1) * w * 3];
        row.copy_from_slice(&template[shift * 3..(shift + w) * 3]);
    }
    for bit in 0..PATTERN_BITS as usize {
        let on = (index >> (PATTERN_BITS as usize - 1 - bit)) & 1 == 1;
        let value = if on { 255 } else { 0 };
        let x_end = if bit + 1 == PATTERN_BITS as usize {
            w
        } else {
            (bit + 1) * block
        };
        for y in 0..band {
            pixels[(y * w + bit * block) * 3..(y * w + x_end) * 3].fill(value);
        }
    }
    pixels
}

/// Decodes the index pattern from a BGR frame of any size.
pub fn read_pattern(frame: &Mat) -> Result<u64, String> {
    let (w, h) = (frame.cols(), frame.rows());
    if w < PATTERN_BITS as i32 * 2 || h < 18 {
        return Err(format!(
            "frame of {w}x{h} is too small to carry the pattern"
        ));
    }
    let band = h / 9;
    let block = w / PATTERN_BITS as i32;
    let mut index = 0u64;
    for bit in 0..PATTERN_BITS as i32 {
        // The central half of the block, away from edges blurred by compression and scaling.
        let rect = Rect::new(
            bit * block + block / 4,
            band / 4,
            (block / 2).max(1),
            (band / 2).max(1),
        );
        let roi = Mat::roi(frame, rect).map_err(|e| e.to_string())?;
        let mean: Scalar =
            opencv::core::mean(&roi, &opencv::core::no_array()).map_err(|e| e.to_string())?;
        let luminance = (mean[0] + mean[1] + mean[2]) / 3.0;
        index = (index << 1) | u64::from(luminance > 128.0);
    }
    Ok(index)
}

/// Writes a test video with the `ffmpeg` command (Debian: `apt-get install ffmpeg`).
/// The file appears atomically: it is written beside `out` and renamed.
pub fn write(out: &Path, spec: &Spec) -> Result<(), String> {
    let partial = out.with_extension(format!(
        "partial.{}",
        out.extension().and_then(|e| e.to_str()).unwrap_or("mp4")
    ));
    let size = format!("{}x{}", spec.width, spec.height);
    let rate = if spec.fps_den > 1 {
        format!("{}/{}", spec.fps, spec.fps_den)
    } else {
        spec.fps.to_string()
    };
    let gop = spec.keyframe_interval.to_string();
    let mut args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend([size, "-r".into(), rate.clone(), "-i".into(), "-".into()]);
    if spec.variable_frame_rate {
        // Every 7th frame lasts 1.5 frame periods: timestamps no longer equal n / fps.
        args.extend([
            "-vf".into(),
            format!("setpts=(N+0.5*floor(N/7))/({rate}*TB)"),
            "-fps_mode".into(),
            "passthrough".into(),
        ]);
    }
    let b_frames = spec.b_frames.map(|b| b.to_string());
    let codec_args: Vec<&str> = match spec.codec {
        Codec::H264 => vec![
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "23",
            "-pix_fmt",
            "yuv420p",
            "-sc_threshold",
            "0",
            "-bf",
            b_frames.as_deref().unwrap_or("2"),
            "-x264-params",
            if spec.open_gop {
                "open-gop=1"
            } else {
                "open-gop=0"
            },
        ],
        Codec::Mpeg2 => vec![
            "-c:v",
            "mpeg2video",
            "-q:v",
            "4",
            "-bf",
            b_frames.as_deref().unwrap_or("0"),
        ],
        Codec::Hevc | Codec::Hevc10 => vec![
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=error",
            "-crf",
            "26",
            "-pix_fmt",
            if spec.codec == Codec::Hevc10 {
                "yuv420p10le"
            } else {
                "yuv420p"
            },
            "-tag:v",
            "hvc1",
        ],
        Codec::Mjpeg => vec!["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"],
        Codec::Vp9 => vec![
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "2M",
            "-pix_fmt",
            "yuv420p",
        ],
    };
    args.extend(codec_args.iter().map(|s| s.to_string()));
    let extension = out.extension().and_then(|e| e.to_str()).unwrap_or("");
    if matches!(extension, "mp4" | "mov" | "m4v") {
        // The index first, so a truncated copy still opens (and must be caught).
        args.extend(["-movflags".into(), "+faststart".into()]);
    }
    args.extend(["-g".into(), gop.clone(), "-keyint_min".into(), gop]);
    args.push(partial.to_string_lossy().into_owned());

    let mut child = Command::new("ffmpeg")
        .args(&args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot run ffmpeg ({e}); install it with `apt-get install ffmpeg`")
        })?;
    let mut stdin = child.stdin.take().ok_or("ffmpeg has no stdin")?;
    for index in 0..spec.frames {
        stdin
            .write_all(&render_frame(spec, index))
            .map_err(|e| format!("writing to ffmpeg failed: {e}"))?;
    }
    drop(stdin);
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    std::fs::rename(&partial, out).map_err(|e| e.to_string())
}

/// How [`derive`] turns a pattern video into a file shaped like users' files.
#[derive(Clone, Debug, PartialEq)]
pub enum Derive {
    /// Stream copy into another container (`format` as `ffmpeg -f` names it: `mpegts`, `vob`
    /// for MPEG-PS, `matroska`, `mp4`), the video starting `offset_s` into the file's clock.
    Remux { format: &'static str, offset_s: f64 },
    /// Stream copy from `start_s` on (`ffmpeg -ss START -i V -c copy`): in MP4, an edit list
    /// that starts mid-GOP.
    Trim { start_s: f64 },
    /// The bytes from `fraction` of the file on, cut at an MPEG-TS packet boundary: a broadcast
    /// capture that starts mid-GOP.
    CaptureFrom { fraction: f64 },
    /// A `rotate=DEGREES` tag (a display matrix) and pictures stored turned so that players
    /// show them upright: a phone video.
    Rotated { degrees: u32 },
    /// A sine-tone audio track that starts `lead_s` before the video (AAC in MP4).
    AudioFirst { lead_s: f64 },
}

/// Writes `out`, a user-shaped file made from the pattern video `source` by `ffmpeg`.
pub fn derive(source: &Path, out: &Path, how: &Derive) -> Result<(), String> {
    let partial = out.with_extension(format!(
        "partial.{}",
        out.extension().and_then(|e| e.to_str()).unwrap_or("bin")
    ));
    let input = source.to_string_lossy().into_owned();
    let output = partial.to_string_lossy().into_owned();
    let args: Vec<String> = match how {
        Derive::Remux { format, offset_s } => [
            "-i",
            &input,
            "-map",
            "0:v",
            "-c",
            "copy",
            "-muxdelay",
            "0",
            "-muxpreload",
            "0",
            "-output_ts_offset",
            &offset_s.to_string(),
            "-f",
            format,
            &output,
        ]
        .map(String::from)
        .to_vec(),
        Derive::Trim { start_s } => [
            "-ss",
            &start_s.to_string(),
            "-i",
            &input,
            "-c",
            "copy",
            &output,
        ]
        .map(String::from)
        .to_vec(),
        Derive::CaptureFrom { fraction } => {
            let bytes = std::fs::read(source).map_err(|e| e.to_string())?;
            let start = (bytes.len() as f64 * fraction) as usize / 188 * 188;
            std::fs::write(&partial, &bytes[start.min(bytes.len())..])
                .map_err(|e| e.to_string())?;
            return std::fs::rename(&partial, out).map_err(|e| e.to_string());
        }
        Derive::Rotated { degrees } => {
            // FFmpeg 5.1 reads a `rotate=90` tag as a display matrix that turns the picture a
            // quarter counter-clockwise, so the stored pictures are turned clockwise.
            let turn = match degrees {
                90 => "transpose=clock",
                180 => "hflip,vflip",
                270 => "transpose=cclock",
                other => return Err(format!("cannot rotate by {other} degrees")),
            };
            let turned = out.with_extension("turned.mp4");
            let turned_name = turned.to_string_lossy().into_owned();
            run_ffmpeg(&[
                "-i",
                &input,
                "-vf",
                turn,
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-crf",
                "20",
                "-g",
                "30",
                "-pix_fmt",
                "yuv420p",
                &turned_name,
            ])?;
            // The tag is written as a display matrix when the stream is copied.
            let tagged = run_ffmpeg(&[
                "-i",
                &turned_name,
                "-c",
                "copy",
                "-metadata:s:v:0",
                &format!("rotate={degrees}"),
                &output,
            ]);
            let _ = std::fs::remove_file(&turned);
            tagged?;
            return std::fs::rename(&partial, out).map_err(|e| e.to_string());
        }
        Derive::AudioFirst { lead_s } => [
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-itsoffset",
            &lead_s.to_string(),
            "-i",
            &input,
            "-map",
            "1:v",
            "-map",
            "0:a",
            "-c:v",
            "copy",
            "-c:a",
            "aac",
            "-shortest",
            &output,
        ]
        .map(String::from)
        .to_vec(),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_ffmpeg(&args)?;
    std::fs::rename(&partial, out).map_err(|e| e.to_string())
}

/// Runs `ffmpeg` quietly, overwriting its output; its error output becomes the error.
fn run_ffmpeg(args: &[&str]) -> Result<(), String> {
    let result = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .map_err(|e| {
            format!("cannot run ffmpeg ({e}); install it with `apt-get install ffmpeg`")
        })?;
    if !result.status.success() {
        return Err(format!(
            "ffmpeg {args:?} failed: {}",
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    Ok(())
}

/// The pattern of every frame `ffmpeg -i V -fps_mode passthrough` presents, in order: what
/// frame N must show.
pub fn ffmpeg_patterns(path: &Path) -> Result<Vec<u64>, String> {
    let (w, h) = (320usize, 180usize);
    let result = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
        ])
        .args(["-s", &format!("{w}x{h}"), "-"])
        .output()
        .map_err(|e| {
            format!("cannot run ffmpeg ({e}); install it with `apt-get install ffmpeg`")
        })?;
    let frame_bytes = w * h * 3;
    if result.stdout.len() % frame_bytes != 0 {
        return Err(format!(
            "ffmpeg wrote {} bytes, not a whole number of frames: {}",
            result.stdout.len(),
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    result
        .stdout
        .chunks_exact(frame_bytes)
        .map(|pixels| {
            let mat = Mat::new_rows_cols_with_data(h as i32, (w * 3) as i32, pixels)
                .and_then(|m| m.reshape(3, h as i32).map(|m| m.clone_pointee()))
                .map_err(|e| e.to_string())?;
            read_pattern(&mat)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_round_trips_through_a_raw_frame() {
        let spec = Spec::new(Codec::H264, 1);
        for index in [0u32, 1, 123, 4095, 65535] {
            let pixels = render_frame(&spec, index);
            let mat =
                Mat::new_rows_cols_with_data(spec.height as i32, (spec.width * 3) as i32, &pixels)
                    .unwrap();
            let mat = mat.reshape(3, spec.height as i32).unwrap();
            assert_eq!(
                read_pattern(&mat.clone_pointee()).unwrap(),
                u64::from(index)
            );
        }
    }
}
