//! Time to answer: coarse-to-fine indexing against a straight index of the same video, in one
//! run, ViT-B/32 with random weights (speed does not depend on the weights' values).
//!
//! Videos: 1280x720 H.264 at 30 fps (x264 ultrafast, a keyframe every 250 frames, 2 B-frames),
//! made by ffmpeg's `testsrc2` and by data/sample.mp4 looped and scaled to 720p, 1, 10 and 60
//! minutes long (the 60-minute files are the 10-minute ones joined by stream copy), kept in
//! cargo's bench tmp dir, never committed.
//!
//! Per video: the time to the first whole-video curve (the first pass, one frame a second),
//! the time to every frame, the straight index's time, and the frames decoded per frame
//! embedded in each pass. Beside the wall-clock ratio, the ratio of CPU time (user + system,
//! all threads) the two runs took: it tells extra work from cores left idle. `PROGRESSIVE_BENCH_FULL` lists the lengths (minutes) indexed to the
//! end both ways (default `1`); the others run only the first pass, as a full hour of ViT-B/32
//! on 2 cores takes hours. `PROGRESSIVE_BENCH_MINUTES` lists the lengths (default `1,10,60`).
//!
//! Run: `cargo bench -p server --bench progressive`.

#[path = "shared/long_videos.rs"]
mod long_videos;
#[path = "shared/vit_b32.rs"]
mod vit_b32;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use engine::embed::local::LocalClip;
use engine::indexing::{
    index_video, IndexError, IndexOptions, IndexReport, Progress, VideoToIndex,
};
use store::config::ImageRuntime;

struct Run {
    /// Seconds to the end of the first pass (the first whole-video curve).
    first_curve_s: f64,
    /// CPU seconds the run took, all threads.
    cpu_s: f64,
    /// Seconds to every frame; `None` when the run stopped after the first pass.
    total_s: Option<f64>,
    report: Option<IndexReport>,
    /// Frames decoded per frame embedded in the first pass.
    first_decoded_per_embedded: f64,
}

/// Indexes `video` into a fresh cache folder, coarse to fine when `coarse` is set; with
/// `first_pass_only`, stops once the first pass is done.
fn index(
    video: &VideoToIndex,
    clip: &LocalClip,
    coarse: Option<f64>,
    first_pass_only: bool,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let options = IndexOptions {
        coarse_interval_s: coarse,
        ..IndexOptions::new(dir.path().to_path_buf())
    };
    let progress = Progress::default();
    let cancel = AtomicBool::new(false);
    let finished = AtomicBool::new(false);
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let first_curve = std::sync::Mutex::new(None::<(f64, f64)>);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !finished.load(Ordering::Relaxed) {
                let status = progress.snapshot();
                if status.pass >= 2 && first_curve.lock().unwrap().is_none() {
                    *first_curve.lock().unwrap() =
                        Some((started.elapsed().as_secs_f64(), status.decoded_per_embedded));
                    if first_pass_only {
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let result = index_video(video, clip, &options, &progress, &cancel);
        finished.store(true, Ordering::Relaxed);
        result
    });
    let total_s = started.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds() - cpu_before;
    match result {
        Ok(report) => {
            let first = report.passes.first().cloned().unwrap_or_default();
            Run {
                first_curve_s: first.finished_at_s,
                cpu_s,
                total_s: Some(total_s),
                first_decoded_per_embedded: first.decoded as f64 / first.frames.max(1) as f64,
                report: Some(report),
            }
        }
        Err(IndexError::Cancelled) => {
            let (first_curve_s, per_frame) =
                first_curve.lock().unwrap().unwrap_or((f64::NAN, f64::NAN));
            Run {
                first_curve_s,
                cpu_s,
                total_s: None,
                report: None,
                first_decoded_per_embedded: per_frame,
            }
        }
        Err(e) => panic!("indexing failed: {e}"),
    }
}

/// User + system CPU seconds of this process so far (`/proc/self/stat`, in clock ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15: 12 and 13 after the state.
    let ticks_per_s = 100.0; // USER_HZ on Linux
    (ticks(11) + ticks(12)) / ticks_per_s
}

fn list(var: &str, default: &str) -> Vec<u32> {
    std::env::var(var)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|m| m.trim().parse().ok())
        .collect()
}

fn main() {
    let dir = long_videos::folder();
    let clip = LocalClip::load_with(
        &vit_b32::bench_model(),
        "vit-b32-random",
        ImageRuntime::Auto,
    )
    .unwrap();
    let minutes = list("PROGRESSIVE_BENCH_MINUTES", "1,10,60");
    let full = list("PROGRESSIVE_BENCH_FULL", "1");
    println!(
        "| video | frames | time to the first whole-video curve (1 s spacing) | time to every frame | straight index, same run | progressive / straight | CPU time, progressive / straight | decoded frames per embedded frame, first pass |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut pass_tables = Vec::new();
    for &length in &minutes {
        for kind in ["testsrc2", "sample"] {
            let path = long_videos::video(&dir, kind, length);
            let to_index = VideoToIndex::open(&path, None).unwrap();
            let frames = to_index.meta.frames;
            let whole = full.contains(&length);
            let progressive = index(&to_index, &clip, Some(1.0), !whole);
            let (straight_s, ratio, cpu_ratio) = if whole {
                let straight = index(&to_index, &clip, None, false);
                let straight_s = straight.total_s.unwrap();
                (
                    format!("{straight_s:.0} s"),
                    format!("{:.3}", progressive.total_s.unwrap() / straight_s),
                    format!(
                        "{:.3} ({:.0} / {:.0} s)",
                        progressive.cpu_s / straight.cpu_s,
                        progressive.cpu_s,
                        straight.cpu_s
                    ),
                )
            } else {
                ("—".to_string(), "—".to_string(), "—".to_string())
            };
            let first_decoded = format!("{:.1}", progressive.first_decoded_per_embedded);
            println!(
                "| {kind} 720p {length} min | {frames} | {:.1} s | {} | {straight_s} | {ratio} | {cpu_ratio} | {first_decoded} |",
                progressive.first_curve_s,
                progressive
                    .total_s
                    .map_or("— (first pass only)".into(), |s| format!("{s:.0} s")),
            );
            if let Some(report) = &progressive.report {
                let mut table = format!(
                    "\n{kind} 720p {length} min, per pass:\n| pass | frames | spacing after (frames) | seconds | done at (s) | decoded per embedded | kept for the next passes |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
                );
                for (i, p) in report.passes.iter().enumerate() {
                    table += &format!(
                        "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |\n",
                        i + 1,
                        p.frames,
                        p.spacing_frames,
                        p.seconds,
                        p.finished_at_s,
                        p.decoded as f64 / p.frames.max(1) as f64,
                        p.kept_for_later
                    );
                }
                pass_tables.push(table);
            }
        }
    }
    for table in pass_tables {
        print!("{table}");
    }
}
