//! One heatmap (a frame, a prompt: one forward pass with gradients and one backward pass) per
//! model, beside PyTorch + transformers doing the same on the same weights; then what
//! heatmaps cost the others: frame latency of a playing viewer while another asks for heatmaps
//! without pause, against the same viewer alone.
//!
//!     cargo bench -p server --bench explain
//!
//! The models are the real architectures with random weights (speed does not depend on the
//! weights' values): ViT-B/32, ViT-B/16, SigLIP B/16-224. The frame is frame 150 of the 720p
//! test video. The peer column appears when `CLIP_BENCH_PYTHON` (default `python3`) imports
//! torch and transformers (scripts/bench_relevance_torch.py). `EXPLAIN_BENCH_REPS=7` timed
//! runs each; `EXPLAIN_BENCH_SERVE=0` leaves out the serving part.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/timing.rs"]
mod timing;
#[path = "shared/vit_b32.rs"]
mod vit_b32;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::embed::local::LocalClip;
use engine::embed::Embedder;
use store::config::ImageRuntime;
use timing::{percentile, sorted_ms};

fn reps() -> usize {
    std::env::var("EXPLAIN_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Resident and peak memory of this process, MB (Linux).
fn memory_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// PyTorch's milliseconds per heatmap on `folder`, if the peer can run.
fn peer(folder: &Path, runs: usize) -> Option<(String, Vec<f64>)> {
    let python = std::env::var("CLIP_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench_relevance_torch.py");
    let output = Command::new(&python)
        .arg(script)
        .arg(folder)
        .arg(runs.to_string())
        .arg(threads().to_string())
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let mut ms: Vec<f64> = json["ms"]
                .as_array()?
                .iter()
                .filter_map(|v| v.as_f64())
                .collect();
            ms.sort_by(f64::total_cmp);
            Some((json["torch"].as_str().unwrap_or("?").to_string(), ms))
        }
        Ok(out) => {
            eprintln!(
                "peer skipped: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("peer skipped: cannot run {python}: {e}");
            None
        }
    }
}

struct Row {
    name: &'static str,
    whole: Vec<f64>,
    text_pass: Vec<f64>,
    passes: Vec<f64>,
    from_first: Vec<f64>,
    forward: Vec<f64>,
    /// After the warm-up heatmap, and its growth over all the timed ones.
    rss: f64,
    rss_growth: f64,
    peer: Option<(String, Vec<f64>)>,
}

fn median(sorted: &[f64]) -> f64 {
    percentile(sorted, 0.5)
}

fn range(sorted: &[f64]) -> String {
    format!(
        "{:.0} ({:.0}–{:.0})",
        median(sorted),
        sorted[0],
        sorted[sorted.len() - 1]
    )
}

fn measure(name: &'static str, folder: &Path, frame: &opencv::core::Mat) -> Row {
    let runs = reps();
    let model = LocalClip::load_with(folder, name, ImageRuntime::Candle).unwrap();
    let prompt = "a red door";
    let text = model.embed_texts(&[prompt.to_string()]).unwrap().remove(0);
    let pixels = model.preprocess_frame(frame).unwrap();
    model.explain(frame, &text, None).unwrap(); // warm-up
    let (settled, _) = memory_mb();
    let whole = sorted_ms(runs, || {
        model.explain(frame, &text, None).unwrap();
    });
    // A new prompt's text pass (the server takes a prompt on the chart from its text cache).
    let text_pass = sorted_ms(runs, || {
        model.embed_texts(&[prompt.to_string()]).unwrap();
    });
    let passes = sorted_ms(runs, || {
        model.explain_pixels(&pixels, &text, None).unwrap();
    });
    let from_first = sorted_ms(runs, || {
        model.explain_pixels(&pixels, &text, Some(0)).unwrap();
    });
    let forward = sorted_ms(runs, || {
        model.embed_pixels(std::slice::from_ref(&pixels)).unwrap();
    });
    let (after, _) = memory_mb();
    drop(model);
    let peer = peer(folder, runs);
    eprintln!("{name}: done");
    Row {
        name,
        whole,
        text_pass,
        passes,
        from_first,
        forward,
        rss: settled,
        rss_growth: after - settled,
        peer,
    }
}

/// The serving part: a viewer playing at 30 fps alone, then while another client asks for
/// heatmaps of new frames without pause.
fn serving() {
    let video = common::video("h264_gop250.mp4");
    let served = common::Served::start(
        &format!(
            "video_path: {video:?}\nmodel: {:?}\nembeddings_dir: \"{{dir}}/emb\"\nimage_runtime: candle\nCLIP: [wall]\n",
            vit_b32::model_folder()
        ),
        &[("HF_HUB_OFFLINE", "1")],
    );
    let id = common::id_of(&video);
    // Wait for the index to finish: indexing would take the cores the figures are about.
    let started = Instant::now();
    loop {
        let status = served.form("/api/index_status", &format!("video={id}"));
        if status.text().contains("\"Done\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{}",
            status.text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let addr = served.addr;
    // At 30 fps, as the page plays: each frame requested when its time comes.
    let play = |viewer: &str| -> Vec<f64> {
        let mut ms = Vec::new();
        let clock = Instant::now();
        for frame in 0..common::FRAMES {
            let due = Duration::from_secs_f64(frame as f64 / 30.0);
            if let Some(wait) = due.checked_sub(clock.elapsed()) {
                std::thread::sleep(wait);
            }
            let t = Instant::now();
            let answer = common::http(
                addr,
                "POST",
                "/api/frame",
                "application/x-www-form-urlencoded",
                format!("video={id}&viewer={viewer}&frame={frame}").as_bytes(),
            );
            assert_eq!(answer.status, 200);
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        ms
    };
    let alone = play("bench-viewer-alone");
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let explainer = {
        let (stop, made, id) = (Arc::clone(&stop), Arc::clone(&made), id.clone());
        std::thread::spawn(move || {
            let mut frame = 7;
            let mut ms = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                frame = (frame + 37) % common::FRAMES;
                let body = serde_json::json!({"video": id, "model": null, "frame": frame, "prompt": "wall", "start_layer": null});
                let t = Instant::now();
                let answer = common::http(
                    addr,
                    "POST",
                    "/api/explain",
                    "application/json",
                    body.to_string().as_bytes(),
                );
                assert_eq!(answer.status, 200, "{}", answer.text());
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                made.fetch_add(1, Ordering::Relaxed);
            }
            ms.sort_by(f64::total_cmp);
            ms
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let busy = play("bench-viewer-busy");
    let seconds = t.elapsed().as_secs_f64();
    let during = made.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let heatmaps = explainer.join().unwrap();
    println!();
    println!(
        "Serving (release server, ViT-B/32 on candle, 720p): a viewer playing frames 0..{} at 30 fps, alone and while another client asks for heatmaps of new frames without pause",
        common::FRAMES
    );
    println!();
    println!("| viewer | frame p50 ms | p95 ms | max ms | heatmaps meanwhile | heatmap round trip p50 ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (label, ms, extra) in [
        ("alone", &alone, String::from("—")),
        (
            "beside heatmaps",
            &busy,
            format!("{during} in {seconds:.1} s"),
        ),
    ] {
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} | {extra} | {} |",
            percentile(ms, 0.5),
            percentile(ms, 0.95),
            ms[ms.len() - 1],
            if label == "alone" {
                "—".to_string()
            } else {
                format!("{:.0}", percentile(&heatmaps, 0.5))
            }
        );
    }
}

fn main() {
    let video = common::video("h264_gop250.mp4");
    let frame = engine::video::Decoder::open(&video)
        .unwrap()
        .frame(150)
        .unwrap();
    let models: [(&'static str, PathBuf); 3] = [
        ("CLIP ViT-B/32", vit_b32::model_folder()),
        (
            "CLIP ViT-B/16",
            vit_b32::vit_base_folder(16, "vit-b16-random-v1"),
        ),
        ("SigLIP B/16-224", vit_b32::siglip_b16_folder()),
    ];
    let rows: Vec<Row> = models
        .iter()
        .map(|(name, folder)| measure(name, folder, &frame))
        .collect();
    let peer_version = rows
        .iter()
        .find_map(|r| r.peer.as_ref().map(|p| p.0.clone()));
    println!(
        "One heatmap (frame 150 of the 720p test video, \"a red door\"), {} threads, {} runs each: median ms (min–max)",
        threads(),
        reps()
    );
    println!();
    println!(
        "| model | heatmap of a frame (preprocess, forward + backward) | forward + backward alone | PyTorch {} (eager, autograd), the same | from layer 0 | one forward, no gradients | a new prompt's text pass | RSS after the first, MB | RSS growth over the rest, MB |",
        peer_version.as_deref().unwrap_or("(not run)")
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} |",
            r.name,
            range(&r.whole),
            range(&r.passes),
            r.peer.as_ref().map_or("—".into(), |p| range(&p.1)),
            range(&r.from_first),
            range(&r.forward),
            range(&r.text_pass),
            r.rss,
            r.rss_growth,
        );
    }
    if std::env::var("EXPLAIN_BENCH_SERVE").map_or(true, |v| v != "0") {
        serving();
    }
}
