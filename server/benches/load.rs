//! 20 simulated viewers against the release server on a 1280x720 H.264 video with a keyframe
//! every 250 frames, while a ViT-B/32 (random weights) index job runs: each plays at 30 fps
//! and seeks to a random frame every 2–5 s. Loopback only, bounded time. One run measures the
//! server as it was and each step that makes it scale, side by side:
//!
//!     cargo bench -p server --bench load
//!
//! 1. as before: no frame cache, no display proxy, the page's old client (one POST
//!    `/api/frame` per frame, asked for when it is due);
//! 2. + the shared frame cache (single flight);
//! 3. + the display proxy (made beforehand, its time reported);
//! 4. + the page's new client: a seek is one GET `/frame/ID/N.jpg`, playback streams the
//!    next second in one GET `/frames/ID/N` before the buffer runs dry.
//!
//! The old client's latency is each request's round trip (it asks for a frame when it is due);
//! the new client's is, for a streamed frame, how late it arrived after its time on the
//! viewer's clock (0 when early), and for a seek the round trip. A frame counts as shown if it
//! arrived before the next frame was due. One JPEG in ten is decoded and its pattern read: it
//! must be the frame asked for. `CLIP_LOAD_VIEWERS=20`, `CLIP_LOAD_SECONDS=30`,
//! `CLIP_LOAD_FRAMES=10800` (the video's length: 6 minutes, so that the frame cache cannot
//! hold every frame the viewers ask for), `CLIP_LOAD_STEPS=1,2,3,4`, `CLIP_LOAD_MAX_DECODERS`
//! (the config's `max_decoders`), `CLIP_BENCH_MODEL`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/first_minutes.rs"]
mod first_minutes;
#[path = "shared/vit_b32.rs"]
mod vit_b32;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{decode_frame_payload, http, Rng};

const FPS: f64 = 30.0;

#[derive(Clone, Copy, PartialEq)]
enum Client {
    /// One POST `/api/frame` per frame, when it is due (the page before).
    Post,
    /// GET seeks and streamed playback (the page now).
    Get,
}

struct Step {
    name: &'static str,
    cache: bool,
    proxy: bool,
    client: Client,
}

const STEPS: [Step; 4] = [
    Step {
        name: "as before",
        cache: false,
        proxy: false,
        client: Client::Post,
    },
    Step {
        name: "+ shared cache",
        cache: true,
        proxy: false,
        client: Client::Post,
    },
    Step {
        name: "+ display proxy",
        cache: true,
        proxy: true,
        client: Client::Post,
    },
    Step {
        name: "+ GET, streamed prefetch",
        cache: true,
        proxy: true,
        client: Client::Get,
    },
];

#[derive(Default)]
struct ViewerReport {
    /// How long the viewer waited for each frame it wanted (see the top of the file).
    latencies_ms: Vec<f64>,
    seeks_ms: Vec<f64>,
    shown: u64,
    errors: Vec<String>,
    checked: u64,
}

impl ViewerReport {
    /// Reads the pattern of one JPEG in ten: it must be `frame`.
    fn check(&mut self, frame: u64, jpeg: &[u8], received: u64) {
        if !received.is_multiple_of(10) {
            return;
        }
        let image = opencv::imgcodecs::imdecode(
            &opencv::core::Vector::<u8>::from_slice(jpeg),
            opencv::imgcodecs::IMREAD_COLOR,
        );
        match image
            .map_err(|e| e.to_string())
            .and_then(|m| testvideo::read_pattern(&m))
        {
            Ok(n) if n == frame => self.checked += 1,
            Ok(n) => self
                .errors
                .push(format!("asked {frame}, the picture shows {n}")),
            Err(e) => self.errors.push(format!("frame {frame}: {e}")),
        }
    }
}

/// The page before: asks for the frame its clock is at, one request at a time.
fn post_viewer(
    addr: SocketAddr,
    video: &str,
    frames: u64,
    id: usize,
    stop: &AtomicBool,
) -> ViewerReport {
    let mut report = ViewerReport::default();
    let mut rng = Rng::new(1000 + id as u64);
    let name = format!("load-viewer-{id}");
    let mut start_frame = rng.below(frames);
    let mut clock = Instant::now();
    let mut next_seek = Duration::from_millis(2000 + rng.below(3000));
    let mut last = None;
    let mut received = 0;
    while !stop.load(Ordering::Relaxed) {
        if clock.elapsed() >= next_seek {
            start_frame = rng.below(frames);
            clock = Instant::now();
            next_seek = Duration::from_millis(2000 + rng.below(3000));
            last = None;
        }
        let frame = (start_frame + (clock.elapsed().as_secs_f64() * FPS) as u64) % frames;
        if last == Some(frame) {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let body = format!("video={video}&viewer={name}&frame={frame}");
        let started = Instant::now();
        let response = http(
            addr,
            "POST",
            "/api/frame",
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        );
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        report.latencies_ms.push(ms);
        if last.is_none() {
            report.seeks_ms.push(ms);
        }
        if response.status != 200 {
            report
                .errors
                .push(format!("frame {frame}: HTTP {}", response.status));
        } else {
            let (got, jpeg) = decode_frame_payload(&response.body);
            if got != frame {
                report.errors.push(format!("asked {frame}, got {got}"));
            } else {
                report.check(frame, &jpeg, received);
                received += 1;
                report.shown += 1;
            }
        }
        last = Some(frame);
    }
    report
}

/// Reads a chunked HTTP answer as it arrives, handing each frame of the stream to `on_frame`
/// with its arrival time. Returns the status.
fn read_stream(
    addr: SocketAddr,
    path: &str,
    mut on_frame: impl FnMut(u64, &[u8], Instant),
) -> Result<u16, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("no status line: {line:?}"))?;
    let mut chunked = false;
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            break;
        }
        chunked |= line
            .to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked");
    }
    if status != 200 {
        return Ok(status);
    }
    let mut pending = Vec::new();
    let mut parse = |pending: &mut Vec<u8>| {
        while pending.len() >= 12 {
            let frame = u64::from_le_bytes(pending[..8].try_into().unwrap());
            let length = u32::from_le_bytes(pending[8..12].try_into().unwrap()) as usize;
            if pending.len() < 12 + length {
                break;
            }
            on_frame(frame, &pending[12..12 + length], Instant::now());
            pending.drain(..12 + length);
        }
    };
    if !chunked {
        reader
            .read_to_end(&mut pending)
            .map_err(|e| e.to_string())?;
        parse(&mut pending);
        return Ok(status);
    }
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(line.trim(), 16).map_err(|e| e.to_string())?;
        if size == 0 {
            return Ok(status);
        }
        let start = pending.len();
        pending.resize(start + size + 2, 0);
        reader
            .read_exact(&mut pending[start..])
            .map_err(|e| e.to_string())?;
        pending.truncate(start + size);
        parse(&mut pending);
    }
}

/// The page now: a seek is one GET; playback streams the next second before the buffer runs
/// dry (fewer than half a second of frames ahead).
fn get_viewer(
    addr: SocketAddr,
    video: &str,
    frames: u64,
    id: usize,
    stop: &AtomicBool,
) -> ViewerReport {
    let mut report = ViewerReport::default();
    let mut rng = Rng::new(1000 + id as u64);
    let name = format!("load-viewer-{id}");
    let mut received = 0;
    while !stop.load(Ordering::Relaxed) {
        let seek_to = rng.below(frames);
        let seek_for = Duration::from_millis(2000 + rng.below(3000));
        let started = Instant::now();
        let response = http(
            addr,
            "GET",
            &format!("/frame/{video}/{seek_to}.jpg?w=1280&p=seek&viewer={name}"),
            "text/plain",
            b"",
        );
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        report.seeks_ms.push(ms);
        report.latencies_ms.push(ms);
        if response.status != 200 {
            report
                .errors
                .push(format!("frame {seek_to}: HTTP {}", response.status));
            continue;
        }
        report.check(seek_to, &response.body, received);
        received += 1;
        report.shown += 1;
        // Plays on from the seek: frame f is due at clock + (f - seek_to) / fps.
        let clock = Instant::now();
        let due = |f: u64| clock + Duration::from_secs_f64((f - seek_to) as f64 / FPS);
        let mut next_fetch = seek_to + 1;
        let mut last_arrival = None::<u64>;
        while clock.elapsed() < seek_for && !stop.load(Ordering::Relaxed) && next_fetch < frames {
            // Ask for the next second when less than half a second is left ahead.
            let now_frame = seek_to + (clock.elapsed().as_secs_f64() * FPS) as u64;
            next_fetch = next_fetch.max(now_frame + 1);
            if next_fetch >= frames {
                break;
            }
            if last_arrival.is_some_and(|a| a > now_frame + 15) {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let count = 30.min(frames - next_fetch);
            let path = format!(
                "/frames/{video}/{next_fetch}?count={count}&at={now_frame}&w=1280&viewer={name}"
            );
            let mut wrong = Vec::new();
            // Frames of one stream come in increasing order (late ones skipped).
            let mut previous = None::<u64>;
            let spell_end = clock + seek_for;
            let status = read_stream(addr, &path, |frame, jpeg, at| {
                // Frames due after this spell are never shown: the viewer seeks away first.
                if due(frame) < spell_end {
                    let late = at.saturating_duration_since(due(frame));
                    report.latencies_ms.push(late.as_secs_f64() * 1000.0);
                    if at <= due(frame + 1) {
                        report.shown += 1;
                    }
                }
                report.check(frame, jpeg, received);
                received += 1;
                if previous.is_some_and(|p| frame <= p) || frame < next_fetch {
                    wrong.push(frame);
                }
                previous = Some(frame);
                last_arrival = Some(frame);
            });
            match status {
                Ok(200) => {}
                Ok(s) => report
                    .errors
                    .push(format!("stream at {next_fetch}: HTTP {s}")),
                Err(e) => report.errors.push(format!("stream at {next_fetch}: {e}")),
            }
            if !wrong.is_empty() {
                report.errors.push(format!(
                    "stream at {next_fetch}: frames out of order {wrong:?}"
                ));
            }
            next_fetch += count;
        }
        // Wait out the rest of this play spell.
        while clock.elapsed() < seek_for && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
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
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Outcome {
    shown_per_s: f64,
    per_viewer: (f64, f64, f64),
    latency: [f64; 3],
    seeks: [f64; 2],
    errors: Vec<String>,
    checked: u64,
    rss: (f64, f64),
    indexed: u64,
    alive: bool,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn run_step(step: &Step, video: &Path, frames: u64, proxy_dir: &Path, model: &Path) -> Outcome {
    let viewers: usize = env_or("CLIP_LOAD_VIEWERS", 20);
    let seconds: u64 = env_or("CLIP_LOAD_SECONDS", 30);
    let dir = tempfile::tempdir().unwrap();
    let embeddings = dir.path().join("embeddings");
    std::fs::create_dir_all(&embeddings).unwrap();
    if step.proxy {
        copy_tree(proxy_dir, &embeddings);
    }
    let config = dir.path().join("config.yaml");
    let mut text = format!(
        "video_path: {video:?}\nCLIP:\n  - wall\nmodel: {model:?}\nembeddings_dir: {embeddings:?}\ndisplay_proxy: {}\n",
        step.proxy
    );
    if !step.cache {
        text += "frame_cache: 0\n";
    }
    if let Ok(n) = std::env::var("CLIP_LOAD_MAX_DECODERS") {
        text += &format!("max_decoders: {n}\n");
    }
    std::fs::write(&config, text).unwrap();
    let addr = common::free_addr();
    let mut server = common::spawn_serve(
        &config,
        addr,
        &[("RUST_LOG", "warn")],
        common::ServerLog::Inherit,
    );
    let id = common::id_of(video);
    let status = || {
        let answer = http(
            addr,
            "POST",
            "/api/index_status",
            "application/x-www-form-urlencoded",
            format!("video={id}").as_bytes(),
        );
        let status: serde_json::Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        assert_ne!(status["state"], "Failed", "the index job failed: {status}");
        status
    };
    // The index job is embedding before the viewers come (the model is loaded).
    let waiting = Instant::now();
    while status()["done"].as_u64().unwrap_or(0) == 0
        && waiting.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let indexed_before = status()["done"].as_u64().unwrap_or(0);

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..viewers)
        .map(|n| {
            let (stop, id, client) = (Arc::clone(&stop), id.clone(), step.client);
            std::thread::spawn(move || match client {
                Client::Post => post_viewer(addr, &id, frames, n, &stop),
                Client::Get => get_viewer(addr, &id, frames, n, &stop),
            })
        })
        .collect();
    let mut rss = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        rss.push(rss_mb(server.id()).unwrap_or(f64::NAN));
    }
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<ViewerReport> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let elapsed = started.elapsed().as_secs_f64();
    let indexed = status()["done"].as_u64().unwrap_or(0) - indexed_before;
    let alive = server.try_wait().unwrap().is_none();
    let _ = server.kill();
    let _ = server.wait();

    let mut latencies: Vec<f64> = reports
        .iter()
        .flat_map(|r| r.latencies_ms.clone())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut seeks: Vec<f64> = reports.iter().flat_map(|r| r.seeks_ms.clone()).collect();
    seeks.sort_by(f64::total_cmp);
    let per_viewer: Vec<f64> = reports.iter().map(|r| r.shown as f64 / elapsed).collect();
    let shown: u64 = reports.iter().map(|r| r.shown).sum();
    Outcome {
        shown_per_s: shown as f64 / elapsed,
        per_viewer: (
            per_viewer.iter().sum::<f64>() / per_viewer.len() as f64,
            per_viewer.iter().copied().fold(f64::INFINITY, f64::min),
            per_viewer.iter().copied().fold(0.0, f64::max),
        ),
        latency: [0.5, 0.95, 0.99].map(|p| percentile(&latencies, p)),
        seeks: [0.5, 0.95].map(|p| percentile(&seeks, p)),
        errors: reports.iter().flat_map(|r| r.errors.clone()).collect(),
        checked: reports.iter().map(|r| r.checked).sum(),
        rss: (
            rss.iter().copied().fold(f64::INFINITY, f64::min),
            rss.iter().copied().fold(0.0, f64::max),
        ),
        indexed,
        alive,
    }
}

/// The bench video: 1280x720 H.264, a keyframe every 250 frames, written once.
fn bench_video(frames: u32) -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("load-h264-gop250-{frames}.mp4"));
    if !path.exists() {
        testvideo::write(&path, &testvideo::Spec::new(testvideo::Codec::H264, frames)).unwrap();
    }
    path
}

/// Makes every segment of the video's display proxy at `width` into `dir`: frames, bytes and
/// the proxy's size.
fn make_proxy(
    video: &Path,
    index: &Arc<engine::video::FrameIndex>,
    dir: &Path,
    width: u32,
) -> (u64, u64, (u32, u32)) {
    let segments = engine::video::ProxySegments::open(dir, video, Arc::clone(index)).unwrap();
    let mut decoder = engine::video::Decoder::with_index(video, Arc::clone(index)).unwrap();
    let (mut frames, mut bytes, mut size) = (0, 0, (0, 0));
    for k in 0..segments.count() {
        let report = segments
            .make(k, width, &mut decoder, &|| true)
            .unwrap()
            .unwrap();
        frames += report.frames;
        bytes += report.bytes;
        size = (report.width, report.height);
    }
    (frames, bytes, size)
}

/// Copies the files and folders of `from` into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn cpu_flags() -> String {
    let (model, has) = engine::precision::cpu();
    format!(
        "{model}, {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        has.join(" ")
    )
}

fn main() {
    let frames: u32 = env_or("CLIP_LOAD_FRAMES", 10800);
    let steps: Vec<usize> = std::env::var("CLIP_LOAD_STEPS")
        .ok()
        .map(|s| {
            s.split(',')
                .filter_map(|n| n.trim().parse::<usize>().ok())
                .collect()
        })
        .unwrap_or_default();
    let model = vit_b32::bench_model();
    first_minutes_table(&model);
    if steps.is_empty() {
        return;
    }
    let video = bench_video(frames);
    let proxy_dir = tempfile::tempdir().unwrap();

    // The proxy, made alone (in the server it is made in the background, beside the viewers
    // and indexing).
    let started = Instant::now();
    let index = engine::video::FrameIndex::load_or_build(&video, Some(proxy_dir.path())).unwrap();
    let (proxy_frames, proxy_bytes, proxy_size) =
        make_proxy(&video, &index, proxy_dir.path(), 1280);
    let proxy_s = started.elapsed().as_secs_f64();

    let outcomes: Vec<(&Step, Outcome)> = steps
        .iter()
        .filter_map(|&n| STEPS.get(n.wrapping_sub(1)))
        .map(|step| {
            (
                step,
                run_step(step, &video, u64::from(frames), proxy_dir.path(), &model),
            )
        })
        .collect();

    println!(
        "{} viewers at {FPS} fps with a seek every 2–5 s, {} s each, 1280x720 H.264 ({frames} frames, keyframe every 250), index job running (model {}); {}",
        env_or("CLIP_LOAD_VIEWERS", 20),
        env_or("CLIP_LOAD_SECONDS", 30),
        model.file_name().unwrap_or_default().to_string_lossy(),
        cpu_flags()
    );
    println!(
        "display proxy made in {proxy_s:.1} s alone ({proxy_frames} frames at {}x{}, {:.1} MB = {:.1} MB per minute of video)",
        proxy_size.0,
        proxy_size.1,
        proxy_bytes as f64 / 1e6,
        proxy_bytes as f64 / 1e6 / (f64::from(frames) / FPS / 60.0)
    );
    println!();
    let header: Vec<&str> = outcomes.iter().map(|(s, _)| s.name).collect();
    println!("| figure | {} |", header.join(" | "));
    println!("| --- |{}", " ---: |".repeat(outcomes.len()));
    let row = |name: &str, cell: &dyn Fn(&Outcome) -> String| {
        let cells: Vec<String> = outcomes.iter().map(|(_, o)| cell(o)).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row("frames shown per second, all viewers", &|o| {
        format!("{:.0}", o.shown_per_s)
    });
    row("per viewer: mean (min–max)", &|o| {
        format!(
            "{:.1} ({:.1}–{:.1})",
            o.per_viewer.0, o.per_viewer.1, o.per_viewer.2
        )
    });
    row("frame latency p50 / p95 / p99 (ms)", &|o| {
        format!(
            "{:.0} / {:.0} / {:.0}",
            o.latency[0], o.latency[1], o.latency[2]
        )
    });
    row("seek latency p50 / p95 (ms)", &|o| {
        format!("{:.0} / {:.0}", o.seeks[0], o.seeks[1])
    });
    row("errors (HTTP, wrong or out-of-order frames)", &|o| {
        o.errors.len().to_string()
    });
    row("JPEGs decoded and checked (pattern = frame asked)", &|o| {
        o.checked.to_string()
    });
    row("server RSS min–max (MB)", &|o| {
        format!("{:.0}–{:.0}", o.rss.0, o.rss.1)
    });
    row("frames indexed during the run", &|o| o.indexed.to_string());
    row("server still running", &|o| o.alive.to_string());
    for (step, o) in &outcomes {
        for e in o.errors.iter().take(5) {
            println!("error ({}): {e}", step.name);
        }
    }
}

/// Which of the scenarios from opening run (`CLIP_LOAD_SCENARIOS`, default all): `anonymous`,
/// `index-alone`, `steady`, `named`, `greedy`, `hour`, `hour-one`.
fn scenario_wanted(name: &str) -> bool {
    std::env::var("CLIP_LOAD_SCENARIOS").map_or(true, |v| v.split(',').any(|s| s.trim() == name))
}

/// The scenarios from the moment the video is opened, side by side in one table.
fn first_minutes_table(model: &Path) {
    let clients: usize = env_or("CLIP_LOAD_VIEWERS", 20);
    let seconds: u64 = env_or("CLIP_LOAD_SECONDS", 60);
    let minute = bench_video(1800);
    let work = tempfile::tempdir().unwrap();
    let config_with = |name: &str, video: &Path, proxy: bool| {
        let dir = work.path().join(name);
        let embeddings = dir.join("embeddings");
        std::fs::create_dir_all(&embeddings).unwrap();
        let config = dir.join("config.yaml");
        let mut text = format!(
            "video_path: {video:?}\nCLIP:\n  - wall\nmodel: {model:?}\nembeddings_dir: {embeddings:?}\ndisplay_proxy: {proxy}\n"
        );
        if let Ok(n) = std::env::var("CLIP_LOAD_MAX_DECODERS") {
            text += &format!("max_decoders: {n}\n");
        }
        std::fs::write(&config, text).unwrap();
        (config, embeddings)
    };
    let config_for = |name: &str, video: &Path| config_with(name, video, true);
    let mut columns: Vec<(String, first_minutes::Run)> = Vec::new();
    let spell = (2000, 3000);
    // The baselines: the proxy made alone, and indexing alone (no viewers, no proxy).
    let alone = tempfile::tempdir().unwrap();
    let minute_index = engine::video::FrameIndex::load_or_build(&minute, None).unwrap();
    let started = Instant::now();
    let (_, proxy_bytes, _) = make_proxy(&minute, &minute_index, alone.path(), 1280);
    let proxy_alone_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    make_proxy(&minute, &minute_index, &alone.path().join("640"), 640);
    let proxy_640_s = started.elapsed().as_secs_f64();
    if scenario_wanted("index-alone") {
        let (config, _) = config_with("index-alone", &minute, false);
        let run = first_minutes::run(
            &config, &minute, 1800, 1800, 0, false, false, spell, seconds,
        );
        columns.push(("indexing alone (no viewers, no proxy)".into(), run));
    }
    if scenario_wanted("anonymous") {
        let (config, _) = config_for("anonymous", &minute);
        let run = first_minutes::run(
            &config, &minute, 1800, 1800, clients, false, false, spell, seconds,
        );
        columns.push(("20 anonymous, from opening".into(), run));
    }
    if scenario_wanted("steady") {
        // The same clients once the proxy is made (beforehand, at the width they ask; the
        // index is not).
        let (steady, steady_embeddings) = config_for("steady", &minute);
        let index = engine::video::FrameIndex::load_or_build(&minute, None).unwrap();
        make_proxy(&minute, &index, &steady_embeddings, 1280);
        let run = first_minutes::run(
            &steady, &minute, 1800, 1800, clients, false, false, spell, 30,
        );
        columns.push(("20 anonymous, proxy made (steady state)".into(), run));
    }
    if scenario_wanted("named") {
        let (config, _) = config_for("named", &minute);
        let run = first_minutes::run(
            &config, &minute, 1800, 1800, clients, true, false, spell, seconds,
        );
        columns.push(("20 named, from opening".into(), run));
    }
    if scenario_wanted("greedy") {
        let (config, _) = config_for("greedy", &minute);
        let run = first_minutes::run(
            &config,
            &minute,
            1800,
            1800,
            clients - 1,
            false,
            true,
            spell,
            seconds,
        );
        columns.push(("19 anonymous + 1 greedy, from opening".into(), run));
    }
    if scenario_wanted("hour") {
        let (hour, period) = first_minutes::hour_video(Path::new(env!("CARGO_TARGET_TMPDIR")));
        let frames = engine::video::FrameIndex::load_or_build(&hour, None)
            .unwrap()
            .frames();
        let (config, _) = config_for("hour", &hour);
        // Each client plays 15 s from a random place, then seeks elsewhere.
        let run = first_minutes::run(
            &config,
            &hour,
            frames,
            period,
            clients,
            false,
            false,
            (15_000, 1),
            seconds,
        );
        columns.push(("1-hour video, 20 anonymous, 15 s per place".into(), run));
    }
    if scenario_wanted("hour-one") {
        let (hour, period) = first_minutes::hour_video(Path::new(env!("CARGO_TARGET_TMPDIR")));
        let frames = engine::video::FrameIndex::load_or_build(&hour, None)
            .unwrap()
            .frames();
        let (config, _) = config_for("hour-one", &hour);
        // One researcher exploring: 15 s at a random place, then another.
        let run = first_minutes::run(
            &config,
            &hour,
            frames,
            period,
            1,
            false,
            false,
            (15_000, 1),
            seconds,
        );
        columns.push(("1-hour video, 1 viewer, 15 s per place".into(), run));
    }
    let server = std::env::var("CLIP_LOAD_SERVER").unwrap_or_else(|_| "this build".into());
    println!(
        "From the moment the video is opened: {clients} plain clients at {FPS} fps by GET /frame/ID/N.jpg (one request at a time, late frames skipped), a seek every 2–5 s; 1280x720 H.264, keyframe every 250, B-frames; ViT-B/32 (random weights) indexing; {seconds} s per run (steady state 30 s); server: {server}; {}",
        cpu_flags()
    );
    println!(
        "display proxy of the 1-minute video made alone: {proxy_alone_s:.1} s at 1280x720 ({:.1} MB), {proxy_640_s:.1} s at 640x360",
        proxy_bytes as f64 / 1e6
    );
    println!();
    let header: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    println!("| figure | {} |", header.join(" | "));
    println!("| --- |{}", " ---: |".repeat(columns.len()));
    let row = |name: &str, cell: &dyn Fn(&first_minutes::Run) -> String| {
        let cells: Vec<String> = columns.iter().map(|(_, r)| cell(r)).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    let spans = [
        (0.0, 5.0, "0–5 s"),
        (5.0, 20.0, "5–20 s"),
        (5.0, f64::INFINITY, "from 5 s"),
    ];
    for (from, until, label) in spans {
        let fig = move |r: &first_minutes::Run| {
            let reports: Vec<&first_minutes::ClientReport> = r.clients.iter().collect();
            first_minutes::figures(&reports, from, until.min(r.seconds))
        };
        row(&format!("{label}: frames/s per client, mean (min)"), &|r| {
            let f = fig(r);
            format!("{:.1} ({:.1})", f.per_client_mean, f.per_client_min)
        });
        row(&format!("{label}: frames/s, all clients"), &|r| {
            format!("{:.0}", fig(r).all_per_s)
        });
        row(&format!("{label}: latency p50 / p95 / p99 (ms)"), &|r| {
            let f = fig(r);
            format!(
                "{:.0} / {:.0} / {:.0}",
                f.latency[0], f.latency[1], f.latency[2]
            )
        });
        row(&format!("{label}: seek latency p50 / p95 (ms)"), &|r| {
            let f = fig(r);
            format!("{:.0} / {:.0}", f.seeks[0], f.seeks[1])
        });
    }
    row("greedy client: frames/s", &|r| match &r.greedy {
        Some(g) => format!("{:.1}", g.requests.len() as f64 / r.seconds),
        None => "–".into(),
    });
    row("fast seeking on 25 / 50 / 75 / 100 % at (s)", &|r| {
        r.coverage
            .reached_s
            .iter()
            .map(|t| t.map_or("–".into(), |t| format!("{t:.0}")))
            .collect::<Vec<_>>()
            .join(" / ")
    });
    row("fast seeking at the end (frames)", &|r| {
        format!("{} of {}", r.coverage.last.0, r.coverage.last.1)
    });
    row("seek to first proxy frame p50 / p95 (s)", &|r| {
        let reports: Vec<&first_minutes::ClientReport> = r.clients.iter().collect();
        let (to_proxy, _) = first_minutes::after_seeks(&reports);
        format!(
            "{:.1} / {:.1}",
            first_minutes::percentile(&to_proxy, 0.5),
            first_minutes::percentile(&to_proxy, 0.95)
        )
    });
    row("latency ≥ 10 s after a seek p50 / p95 (ms)", &|r| {
        let reports: Vec<&first_minutes::ClientReport> = r.clients.iter().collect();
        let (_, settled) = first_minutes::after_seeks(&reports);
        format!(
            "{:.0} / {:.0}",
            first_minutes::percentile(&settled, 0.5),
            first_minutes::percentile(&settled, 0.95)
        )
    });
    row("frames indexed meanwhile", &|r| {
        r.coverage.indexed.to_string()
    });
    row("errors (HTTP, wrong frames)", &|r| {
        let greedy = r.greedy.as_ref().map_or(0, |g| g.errors.len());
        (r.clients.iter().map(|c| c.errors.len()).sum::<usize>() + greedy).to_string()
    });
    row("JPEGs decoded and checked", &|r| {
        let greedy = r.greedy.as_ref().map_or(0, |g| g.checked);
        (r.clients.iter().map(|c| c.checked).sum::<u64>() + greedy).to_string()
    });
    row("server RSS min–max (MB)", &|r| {
        format!("{:.0}–{:.0}", r.rss.0, r.rss.1)
    });
    row("server still running", &|r| r.alive.to_string());
    for (name, r) in &columns {
        for e in r.clients.iter().flat_map(|c| c.errors.iter()).take(5) {
            println!("error ({name}): {e}");
        }
    }
    println!();
}
