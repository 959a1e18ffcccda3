//! Our pixels are FFmpeg's: every decoded frame equals, byte for byte, what
//! `ffmpeg -fps_mode passthrough -pix_fmt bgr24 -f rawvideo` writes for it, on an MPEG-2 program
//! stream of odd height (720x405) and of even height (720x406).
//!
//! Why both: for yuv420p of odd height, swscale has no special converter, and its generic
//! path converts to bgr24 (SIMD on x86) and to rgb24 (C tables: what ffmpeg's PNG output uses)
//! differently, by up to a few levels on nearly every row (`scripts/odd_height_pixels.py` holds
//! both against an exact BT.601 conversion: rgb24 runs about 1-2 levels low in red and blue,
//! bgr24 within 0.2). So a pipeline that reads `ffmpeg … %d.png` differs from ours by about
//! 1e-3 in CLIP scores on odd-height videos, and by nothing on even-height ones. This test
//! prints the rgb24-vs-bgr24 difference it sees, and asserts what we promise: ours = bgr24.

use std::path::Path;
use std::process::Command;

use engine::embed::local::LocalClip;
use engine::embed::Embedder;
use engine::video::{Decoder, FrameIndex};
use opencv::core::{Mat, CV_8UC3};
use opencv::prelude::*;
use store::config::ImageRuntime;

/// Every frame FFmpeg presents, as `pix_fmt` raw bytes (`width * height * 3` each).
fn ffmpeg_frames(path: &Path, pix_fmt: &str, width: usize, height: usize) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
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
        ])
        .args([pix_fmt, "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frame = width * height * 3;
    assert_eq!(
        out.stdout.len() % frame,
        0,
        "whole frames of {width}x{height}"
    );
    out.stdout.chunks_exact(frame).map(<[u8]>::to_vec).collect()
}

/// rgb24 against bgr24: the largest difference, the mean over all samples, and the rows with
/// any difference.
fn rgb_vs_bgr(rgb: &[u8], bgr: &[u8], width: usize) -> (u8, f64, usize) {
    let (mut max, mut sum, mut rows) = (0u8, 0u64, 0usize);
    for (rgb_row, bgr_row) in rgb.chunks_exact(width * 3).zip(bgr.chunks_exact(width * 3)) {
        let mut row_differs = false;
        for (p, q) in rgb_row.chunks_exact(3).zip(bgr_row.chunks_exact(3)) {
            for (a, b) in [(p[0], q[2]), (p[1], q[1]), (p[2], q[0])] {
                let d = a.abs_diff(b);
                max = max.max(d);
                sum += u64::from(d);
                row_differs |= d > 0;
            }
        }
        rows += usize::from(row_differs);
    }
    (max, sum as f64 / rgb.len() as f64, rows)
}

/// A BGR image from ffmpeg's rgb24 bytes (its PNG output's pixels), channels swapped back.
fn from_rgb24(rgb: &[u8], width: usize, height: usize) -> Mat {
    let bgr: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let mut mat =
        Mat::new_rows_cols_with_default(height as i32, width as i32, CV_8UC3, 0.into()).unwrap();
    mat.data_bytes_mut().unwrap().copy_from_slice(&bgr);
    mat
}

/// The cosine scores of the tiny CLIP fixture for frames given as ours and as ffmpeg's PNG
/// pixels: how far apart they are, median and largest, over every frame and two prompts.
fn score_difference(ours: &[Mat], png: &[Mat]) -> (f32, f32) {
    let model = LocalClip::load_with(
        &crate::common::tiny_model(),
        "tiny-clip",
        ImageRuntime::Candle,
    )
    .unwrap();
    let texts = model
        .embed_texts(&["a wall".to_string(), "stripes".to_string()])
        .unwrap();
    let scores = |frames: &[Mat]| -> Vec<f32> {
        let images = model.embed_images(frames).unwrap();
        images
            .iter()
            .flat_map(|image| {
                texts
                    .iter()
                    .map(|text| image.iter().zip(text).map(|(a, b)| a * b).sum::<f32>())
                    .collect::<Vec<f32>>()
            })
            .collect()
    };
    let mut differences: Vec<f32> = scores(ours)
        .iter()
        .zip(scores(png))
        .map(|(a, b)| (a - b).abs())
        .collect();
    differences.sort_by(f32::total_cmp);
    (
        differences[differences.len() / 2],
        *differences.last().unwrap(),
    )
}

fn check(name: &str, odd: bool) {
    let path = crate::common::video(name);
    let frame_index = FrameIndex::load_or_build(&path, None).unwrap();
    let meta = frame_index.metadata();
    let (width, height) = (meta.width as usize, meta.height as usize);
    assert_eq!(
        (width, height),
        (720, if odd { 405 } else { 406 }),
        "{name}"
    );
    let bgr = ffmpeg_frames(&path, "bgr24", width, height);
    let rgb = ffmpeg_frames(&path, "rgb24", width, height);
    assert_eq!(bgr.len() as u64, meta.frames, "{name}: frame count");
    let mut decoder = Decoder::with_index(&path, frame_index).unwrap();
    let mut ours_all = Vec::new();
    for (n, expected) in bgr.iter().enumerate() {
        let ours = decoder.frame(n as u64).unwrap();
        assert_eq!(
            (ours.cols() as usize, ours.rows() as usize),
            (width, height)
        );
        let bytes = ours.data_bytes().unwrap();
        if bytes != expected.as_slice() {
            let differing = bytes.iter().zip(expected).filter(|(a, b)| a != b).count();
            panic!("{name}: frame {n} differs from ffmpeg's bgr24 in {differing} bytes");
        }
        ours_all.push(ours);
    }
    let png: Vec<Mat> = rgb.iter().map(|f| from_rgb24(f, width, height)).collect();
    let (median, largest) = score_difference(&ours_all, &png);
    let (max, mean, rows) = rgb_vs_bgr(&rgb[0], &bgr[0], width);
    eprintln!(
        "pixels | {name} | {width}x{height} | ours = bgr24 on all {} frames | rgb24 vs bgr24, frame 0: max {max}, mean {mean:.3}, {rows} of {height} rows differ | tiny-clip cosine, ours vs PNG pixels: median {median:.1e}, max {largest:.1e} |",
        bgr.len()
    );
    if !odd {
        // Even height: one special converter for both, so a PNG pipeline sees our pixels too.
        assert_eq!(max, 0, "{name}: rgb24 = bgr24");
        assert_eq!(largest, 0.0, "{name}: the same pixels, the same scores");
    }
}

#[test]
fn odd_height_frames_are_ffmpegs_bgr24_exactly() {
    check("program_stream_405.mpg", true);
}

#[test]
fn even_height_frames_are_ffmpegs_bgr24_and_rgb24_exactly() {
    check("program_stream_406.mpg", false);
}
