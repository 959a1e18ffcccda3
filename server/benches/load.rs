//! 20 simulated viewers against the release server on the 720p test video while it indexes:
//! each plays at 30 fps (requests the frame its clock is at, skipping frames it fell behind
//! on, as the page does) and seeks to a random frame every 2–5 s. Loopback only, bounded time.
//!
//!     cargo bench -p server --bench load
//!
//! Reports frames served per second, frame latency percentiles, errors (wrong frame, HTTP
//! errors), the server's RSS over time, and checks that every viewer got the frames it asked
//! for (one in ten JPEGs is decoded and its pattern read: the playheads are independent).
//! The index job uses the random-weight ViT-B/32 (so it runs for the whole test) unless
//! `CLIP_BENCH_MODEL` names another folder. `CLIP_LOAD_VIEWERS=20`, `CLIP_LOAD_SECONDS=30`,
//! `CLIP_LOAD_MAX_DECODERS` (the config's `max_decoders`; default: the config default).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/vit_b32.rs"]
mod vit_b32;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{decode_frame_payload, http, video, Rng, FRAMES};

const FPS: f64 = 30.0;

#[derive(Default)]
struct ViewerReport {
    latencies_ms: Vec<f64>,
    served: u64,
    skipped: u64,
    errors: Vec<String>,
    checked: u64,
}

/// The library id of the test video (the server's `video_path`).
fn video_id() -> String {
    common::id_of(&video("h264_gop250.mp4"))
}

fn viewer(addr: SocketAddr, id: usize, stop: Arc<AtomicBool>) -> ViewerReport {
    let mut report = ViewerReport::default();
    let mut rng = Rng::new(1000 + id as u64);
    let name = format!("load-viewer-{id}");
    // The clock: frame = start_frame + elapsed * fps, restarted at each seek.
    let mut start_frame = rng.below(FRAMES);
    let mut clock = Instant::now();
    let mut next_seek = Duration::from_millis(2000 + rng.below(3000));
    let mut last = None;
    while !stop.load(Ordering::Relaxed) {
        if clock.elapsed() >= next_seek {
            start_frame = rng.below(FRAMES);
            clock = Instant::now();
            next_seek = Duration::from_millis(2000 + rng.below(3000));
            last = None;
        }
        let due = start_frame + (clock.elapsed().as_secs_f64() * FPS) as u64;
        let frame = due % FRAMES;
        if let Some(previous) = last {
            if frame == previous {
                // Ahead of the clock: wait for the next frame's time.
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            report.skipped += (frame + FRAMES - previous - 1) % FRAMES;
        }
        let body = format!("video={}&viewer={name}&frame={frame}", video_id());
        let started = Instant::now();
        let response = http(
            addr,
            "POST",
            "/api/frame",
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        );
        report
            .latencies_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
        if response.status != 200 {
            report
                .errors
                .push(format!("frame {frame}: HTTP {}", response.status));
        } else {
            let (got, jpeg) = decode_frame_payload(&response.body);
            if got != frame {
                report.errors.push(format!("asked {frame}, got {got}"));
            } else if report.served % 10 == 0 {
                let image = opencv::imgcodecs::imdecode(
                    &opencv::core::Vector::<u8>::from_slice(&jpeg),
                    opencv::imgcodecs::IMREAD_COLOR,
                );
                match image
                    .map_err(|e| e.to_string())
                    .and_then(|m| testvideo::read_pattern(&m))
                {
                    Ok(n) if n == frame => report.checked += 1,
                    Ok(n) => report
                        .errors
                        .push(format!("asked {frame}, the picture shows {n}")),
                    Err(e) => report.errors.push(format!("frame {frame}: {e}")),
                }
            }
            report.served += 1;
        }
        last = Some(frame);
    }
    report
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()
        .map(|kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let viewers: usize = std::env::var("CLIP_LOAD_VIEWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seconds: u64 = std::env::var("CLIP_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let model = vit_b32::bench_model();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let mut text = format!(
        "video_path: {:?}\nCLIP:\n  - wall\nmodel: {model:?}\nembeddings_dir: {:?}\n",
        video("h264_gop250.mp4"),
        dir.path().join("embeddings")
    );
    if let Ok(n) = std::env::var("CLIP_LOAD_MAX_DECODERS") {
        text += &format!("max_decoders: {n}\n");
    }
    std::fs::write(&config, text).unwrap();
    let addr = common::free_addr();
    let env = [("RUST_LOG", "warn")];
    let mut server = common::spawn_serve(&config, addr, &env, common::ServerLog::Inherit);

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..viewers)
        .map(|id| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || viewer(addr, id, stop))
        })
        .collect();
    let mut rss = Vec::new();
    let mut indexed = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        rss.push(rss_mb(server.id()).unwrap_or(f64::NAN));
        let status = http(
            addr,
            "POST",
            "/api/index_status",
            "application/x-www-form-urlencoded",
            format!("video={}", video_id()).as_bytes(),
        );
        let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap_or_default();
        assert_ne!(
            status["state"], "Failed",
            "the index job failed (see the server's log above): {status}"
        );
        indexed.push(status["done"].as_u64().unwrap_or(0));
    }
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<ViewerReport> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let elapsed = started.elapsed().as_secs_f64();
    let alive = server.try_wait().unwrap().is_none();
    let _ = server.kill();
    let _ = server.wait();

    let mut latencies: Vec<f64> = reports
        .iter()
        .flat_map(|r| r.latencies_ms.iter().copied())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let served: u64 = reports.iter().map(|r| r.served).sum();
    let skipped: u64 = reports.iter().map(|r| r.skipped).sum();
    let checked: u64 = reports.iter().map(|r| r.checked).sum();
    let errors: Vec<&String> = reports.iter().flat_map(|r| r.errors.iter()).collect();
    let per_viewer: Vec<String> = reports
        .iter()
        .map(|r| format!("{:.1}", r.served as f64 / elapsed))
        .collect();
    println!(
        "{viewers} viewers at {FPS} fps with a seek every 2–5 s, {elapsed:.0} s, 1280x720 H.264 (keyframe every 250), index job running (model {}), max_decoders {}",
        model.file_name().unwrap_or_default().to_string_lossy(),
        std::env::var("CLIP_LOAD_MAX_DECODERS").unwrap_or_else(|_| "default".into())
    );
    println!();
    println!("| figure | value |");
    println!("| --- | ---: |");
    println!(
        "| frames served per second, all viewers | {:.0} |",
        served as f64 / elapsed
    );
    println!(
        "| frames per second per viewer (min–max) | {}–{} |",
        per_viewer
            .iter()
            .min_by(|a, b| a.parse::<f64>().unwrap().total_cmp(&b.parse().unwrap()))
            .unwrap(),
        per_viewer
            .iter()
            .max_by(|a, b| a.parse::<f64>().unwrap().total_cmp(&b.parse().unwrap()))
            .unwrap()
    );
    println!("| frames skipped to keep each viewer's clock | {skipped} |");
    println!(
        "| frame latency p50 / p95 / p99 | {:.0} / {:.0} / {:.0} ms |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99)
    );
    println!("| errors (HTTP errors, wrong frames) | {} |", errors.len());
    println!("| JPEGs decoded and checked to show the frame asked for | {checked} |");
    println!(
        "| server RSS, each second (MB) | {} |",
        rss.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| frames indexed meanwhile | {} of {FRAMES} |",
        indexed.last().copied().unwrap_or(0)
    );
    println!("| server still running | {alive} |");
    for e in errors.iter().take(10) {
        println!("error: {e}");
    }
}
