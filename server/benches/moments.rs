//! Scene cuts and clips, side by side with their peers in one run:
//! 1. cut detection: our decoder alone, and with the cut measure, against PySceneDetect's
//!    AdaptiveDetector (scripts/bench_scenedetect.py, OpenCV decoding) on the same videos, with
//!    the cuts each finds;
//! 2. what measuring cuts adds to indexing (ViT-B/32, random weights), every frame and sampled;
//! 3. clip export: ours (our decoder, frame-exact, piped to libx264) against `ffmpeg -ss`
//!    re-encoding and a stream copy, each checked frame by frame against the span asked for.
//!
//! Run: `cargo bench -p server --bench moments` (the peer needs
//! `pip install scenedetect opencv-python-headless`; without it that column says why).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/vit_b32.rs"]
mod vit_b32;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use engine::embed::local::LocalClip;
use engine::export::excerpt::{export_excerpt, ExcerptOptions};
use engine::indexing::cuts::{find_cuts, ChangeMeter};
use engine::indexing::{index_video, IndexOptions, Progress, VideoToIndex};
use engine::video::{Decoder, FrameIndex};
use store::config::ImageRuntime;
use testvideo::{self, Codec, Spec};

fn videos(dir: &Path) -> Vec<(String, PathBuf, Vec<u64>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let spec = Spec {
        flash_at: Some(110),
        fade_to_black: Some((190, 20)),
        ..Spec::new(Codec::H264, 900)
    };
    let pattern = dir.join("cuts720.mp4");
    if !pattern.exists() {
        testvideo::write(&pattern, &spec).unwrap();
    }
    vec![
        ("pattern 720p, 30 s".into(), pattern, spec.cuts()),
        // Cross-fades only (data/README.md): no hard cut to find.
        (
            "data/sample.mp4".into(),
            root.join("data/sample.mp4"),
            Vec::new(),
        ),
    ]
}

/// Seconds to decode every frame, and to decode and measure it; the cuts found.
fn ours(path: &Path) -> (u64, f64, f64, Vec<u64>) {
    let index = FrameIndex::load_or_build(path, None).unwrap();
    let frames = index.frames();
    let started = Instant::now();
    let mut decoder = Decoder::with_index(path, index.clone()).unwrap();
    for n in 0..frames {
        decoder.frame(n).unwrap();
    }
    let decode = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut decoder = Decoder::with_index(path, index).unwrap();
    let mut meter = ChangeMeter::new();
    let (mut change, mut persist) = (Vec::new(), Vec::new());
    for n in 0..frames {
        let c = meter.measure(&decoder.frame(n).unwrap()).unwrap();
        change.push(c.change);
        persist.push(c.persist);
    }
    let cuts = find_cuts(&change, &persist)
        .iter()
        .map(|c| c.frame)
        .collect();
    (frames, decode, started.elapsed().as_secs_f64(), cuts)
}

/// PySceneDetect's seconds and cuts, or why it did not run.
fn peer(path: &Path) -> Result<(f64, Vec<u64>), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench_scenedetect.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        let text = String::from_utf8_lossy(&output.stderr);
        return Err(text.lines().last().unwrap_or("failed").to_string());
    }
    let value: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    let cuts = value["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_u64())
        .collect();
    Ok((value["seconds"].as_f64().unwrap_or(f64::NAN), cuts))
}

/// Of `found`, how many are within a frame of a true cut, and of `truth`, how many were found.
fn score(found: &[u64], truth: &[u64]) -> String {
    let near = |a: u64, list: &[u64]| list.iter().any(|&b| a.abs_diff(b) <= 1);
    let hits = found.iter().filter(|&&f| near(f, truth)).count();
    let recalled = truth.iter().filter(|&&t| near(t, found)).count();
    format!(
        "{hits}/{} right, {recalled}/{} found",
        found.len(),
        truth.len()
    )
}

fn index_seconds(
    video: &VideoToIndex,
    clip: &LocalClip,
    sample_fps: Option<f64>,
    cuts: bool,
) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let options = IndexOptions {
        sample_fps,
        scene_cuts: cuts,
        ..IndexOptions::new(dir.path().to_path_buf())
    };
    let report = index_video(
        video,
        clip,
        &options,
        &Progress::default(),
        &AtomicBool::new(false),
    )
    .unwrap();
    report.seconds
}

fn ffmpeg(args: &[String]) -> f64 {
    let started = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "{args:?}");
    started.elapsed().as_secs_f64()
}

/// Whether the clip shows exactly frames `from..=to` of the pattern video, and if not, what.
fn exact(clip: &Path, from: u64, to: u64) -> String {
    let shown = testvideo::ffmpeg_patterns(clip).unwrap_or_default();
    if shown.iter().copied().eq(from..=to) {
        return "exact".into();
    }
    format!(
        "frames {}..{} ({} frames, wanted {from}..{to})",
        shown.first().map_or("?".into(), |f| f.to_string()),
        shown.last().map_or("?".into(), |f| f.to_string()),
        shown.len()
    )
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-moments");
    std::fs::create_dir_all(&dir).unwrap();
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = ["avx512f", "avx2"]
        .iter()
        .filter(|f| cpu.contains(*f))
        .copied()
        .collect::<Vec<_>>();
    println!(
        "CPU flags: {}; {} cores",
        flags.join(", "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    println!("\n1. Cut detection, every frame decoded (seconds; frames/s)");
    println!("| video | frames | our decode | our decode + cuts | PySceneDetect (OpenCV decode) | ours vs PySceneDetect | our cuts | PySceneDetect's cuts |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, path, truth) in videos(&dir) {
        let (frames, decode, measured, cuts) = ours(&path);
        let rate = |s: f64| format!("{s:.2} s ({:.0}/s)", frames as f64 / s);
        let (peer_time, peer_cuts, ratio) = match peer(&path) {
            Ok((s, c)) => (
                rate(s),
                format!("{c:?} ({})", score(&c, &truth)),
                format!("{:.2}× faster", s / measured),
            ),
            Err(e) => (format!("not run: {e}"), String::new(), "–".into()),
        };
        println!(
            "| {name} | {frames} | {} | {} | {peer_time} | {ratio} | {cuts:?} ({}) | {peer_cuts} |",
            rate(decode),
            rate(measured),
            score(&cuts, &truth)
        );
    }

    println!("\n2. Indexing with and without measuring cuts (ViT-B/32, random weights)");
    let folder = vit_b32::bench_model();
    let clip = LocalClip::load_with(&folder, "bench", ImageRuntime::Auto).unwrap();
    let (_, pattern, _) = videos(&dir).remove(0);
    let video = VideoToIndex::open(&pattern, None).unwrap();
    println!("| video | sampling | without cuts | with cuts | ratio |");
    println!("|---|---|---|---|---|");
    for sampling in [Some(2.0), None] {
        let without = index_seconds(&video, &clip, sampling, false);
        let with = index_seconds(&video, &clip, sampling, true);
        let label = sampling.map_or("every frame".into(), |f| format!("{f} fps"));
        println!(
            "| pattern 720p, 900 frames | {label} | {without:.1} s | {with:.1} s | {:.3} |",
            with / without
        );
    }

    println!("\n3. Clip export from a 720p H.264 video (keyframe every 250 frames), checked frame by frame");
    let long = dir.join("long720.mp4");
    if !long.exists() {
        testvideo::write(&long, &Spec::new(Codec::H264, 2400)).unwrap();
    }
    let index = FrameIndex::load_or_build(&long, None).unwrap();
    println!("| clip | ours (exact decode → libx264 veryfast) | ffmpeg -ss → libx264 veryfast | stream copy (-c copy) |");
    println!("|---|---|---|---|");
    for (from, to) in [(313u64, 612u64), (313, 2112)] {
        let frames = to - from + 1;
        let ours_out = dir.join("ours.mp4");
        let started = Instant::now();
        export_excerpt(
            &long,
            index.clone(),
            from..=to,
            &ours_out,
            &ExcerptOptions::default(),
            &|_, _| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        let ours_s = started.elapsed().as_secs_f64();
        let start = format!("{:.6}", from as f64 / 30.0);
        let reencode = dir.join("reencode.mp4");
        let reencode_s = ffmpeg(&[
            "-ss".into(),
            start.clone(),
            "-i".into(),
            long.display().to_string(),
            "-frames:v".into(),
            frames.to_string(),
            "-c:v".into(),
            "libx264".into(),
            "-preset".into(),
            "veryfast".into(),
            "-crf".into(),
            "18".into(),
            reencode.display().to_string(),
        ]);
        let copy = dir.join("copy.mp4");
        let copy_s = ffmpeg(&[
            "-ss".into(),
            start,
            "-i".into(),
            long.display().to_string(),
            "-t".into(),
            format!("{:.6}", frames as f64 / 30.0),
            "-c".into(),
            "copy".into(),
            copy.display().to_string(),
        ]);
        println!(
            "| frames {from}–{to} ({:.0} s) | {ours_s:.2} s, {} | {reencode_s:.2} s, {} | {copy_s:.2} s, {} |",
            frames as f64 / 30.0,
            exact(&ours_out, from, to),
            exact(&reencode, from, to),
            exact(&copy, from, to)
        );
    }
}
