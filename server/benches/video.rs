//! Video engine figures, printed as tables, the engine before this version (OpenCV's
//! `VideoCapture`, `shared/opencv_peer.rs`) and after it (FFmpeg's libraries with the packet
//! frame index) side by side in one run, on the test videos and the real-world corpus:
//! frame index time (packet scan) against the old decode scan, sequential decode rate, random
//! seek latency (p50/p95), and how many of the frames each returns are the frame `ffmpeg`
//! presents as N. Then JPEG encode time.
//!
//!     cargo bench -p server --bench video
//!
//! Uses the same generated videos as the tests (written on first use).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/long_videos.rs"]
mod long_videos;
#[path = "shared/opencv_peer.rs"]
mod opencv_peer;
#[path = "shared/timing.rs"]
mod timing;

use std::time::Instant;

use engine::video::{encode_jpeg, Decoder, FrameIndex};
use opencv::core::Mat;
use testvideo::{ffmpeg_patterns, read_pattern};
use timing::{percentile, sorted_ms};

const SEEKS: usize = 60;

fn median_ms(runs: usize, f: impl FnMut()) -> f64 {
    percentile(&sorted_ms(runs, f), 0.5)
}

/// One engine's figures on one file.
struct Figures {
    fps: f64,
    p50: f64,
    p95: f64,
    /// Frames returned that show what `ffmpeg` presents as that frame, of those asked for.
    exact: usize,
    asked: usize,
}

/// Sequential read of every frame, then far random seeks; `frame` is the engine.
fn measure(expected: &[u64], seed: u64, mut frame: impl FnMut(u64) -> Option<Mat>) -> Figures {
    let frames = expected.len() as u64;
    let mut exact = 0;
    let mut check = |n: u64, image: Option<Mat>| {
        let shown = image.and_then(|m| read_pattern(&m).ok());
        exact += usize::from(shown == Some(expected[n as usize]));
    };
    let first = frame(0);
    check(0, first);
    let started = Instant::now();
    let mut decoded = Vec::with_capacity(frames as usize);
    for n in 1..frames {
        decoded.push((n, frame(n)));
    }
    let fps = (frames - 1) as f64 / started.elapsed().as_secs_f64();
    for (n, image) in decoded {
        check(n, image);
    }
    let mut rng = common::Rng::new(seed);
    let mut latencies = Vec::with_capacity(SEEKS);
    let mut at = frames;
    for _ in 0..SEEKS {
        // Far jumps only: near ones are sequential reads, measured above.
        let n = loop {
            let n = rng.below(frames);
            if n + 1 < at || n > at + 64 {
                break n;
            }
        };
        let t = Instant::now();
        let image = frame(n);
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        check(n, image);
        at = n + 1;
    }
    latencies.sort_by(f64::total_cmp);
    Figures {
        fps,
        p50: percentile(&latencies, 0.5),
        p95: percentile(&latencies, 0.95),
        exact,
        asked: frames as usize + SEEKS,
    }
}

/// The frame index of an hour of 1280x720 H.264 at 30 fps (ffmpeg's testsrc2, ten minutes
/// encoded once and joined six times by stream copy): packet scan against the old decode scan.
fn hour_long_scan() {
    let hour = long_videos::video(&long_videos::folder(), "testsrc2", 60);
    let started = Instant::now();
    let index = FrameIndex::load_or_build(&hour, None).unwrap();
    let scan_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let counted = opencv_peer::count_frames(&hour).unwrap();
    let before_s = started.elapsed().as_secs_f64();
    let size_mb = std::fs::metadata(&hour).unwrap().len() as f64 / 1e6;
    println!();
    println!("| 60 min of 1280x720 H.264, 30 fps ({size_mb:.0} MB) | frames | seconds |");
    println!("| --- | ---: | ---: |");
    println!(
        "| frame index: packet scan (+ first GOP decoded) | {} | {scan_s:.2} |",
        index.frames()
    );
    println!("| before: decode scan (OpenCV) | {counted} | {before_s:.1} |");
}

fn main() {
    println!(
        "| video | frames (ffmpeg) | frame index: packet scan (ms) | before: decode scan (ms) | sequential decode after / before (frames/s) | random seek p50 after / before (ms) | random seek p95 after / before (ms) | exact frames after / before |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let names: Vec<&str> = common::specs()
        .into_iter()
        .map(|(n, _)| n)
        .chain(common::corpus().into_iter().map(|(n, _)| n))
        .collect();
    for (i, name) in names.into_iter().enumerate() {
        let path = common::video(name);
        let expected = ffmpeg_patterns(&path).unwrap();
        let scan_ms = median_ms(3, || {
            FrameIndex::load_or_build(&path, None).unwrap();
        });
        let before_scan_ms = median_ms(3, || {
            let _ = opencv_peer::FrameIndex::scan(&path);
        });

        let index = FrameIndex::load_or_build(&path, None).unwrap();
        let mut decoder = Decoder::with_index(&path, index).unwrap();
        let after = measure(&expected, 42 + i as u64, |n| decoder.frame(n).ok());
        let mut old = opencv_peer::Decoder::open(&path).ok();
        let before = measure(&expected, 42 + i as u64, |n| old.as_mut()?.frame(n).ok());
        println!(
            "| {name} | {} | {scan_ms:.1} | {before_scan_ms:.1} | {:.0} / {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {}/{} / {}/{} |",
            expected.len(),
            after.fps,
            before.fps,
            after.p50,
            before.p50,
            after.p95,
            before.p95,
            after.exact,
            after.asked,
            before.exact,
            before.asked,
        );
    }

    hour_long_scan();

    let mut decoder = Decoder::open(&common::video("h264_gop250.mp4")).unwrap();
    let frame = decoder.frame(100).unwrap();
    println!();
    println!("| JPEG encode of a 1280x720 frame | ms (median of 50) | bytes |");
    println!("| --- | ---: | ---: |");
    for (label, width, quality) in [
        ("full width, q80", 0, 80),
        ("960 wide, q80", 960, 80),
        ("640 wide, q80", 640, 80),
    ] {
        let ms = median_ms(50, || {
            encode_jpeg(&frame, width, quality).unwrap();
        });
        let bytes = encode_jpeg(&frame, width, quality).unwrap().len();
        println!("| {label} | {ms:.2} | {bytes} |");
    }
}
