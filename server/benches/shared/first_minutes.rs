//! The load bench's scenarios from the moment a video is opened (no display proxy yet, the
//! index job starting): plain clients that play at 30 fps by `GET /frame/ID/N.jpg`, one
//! request at a time (the frame due on their clock; late frames skipped), seeking somewhere new
//! every 2–5 s; anonymous or named (`&viewer=`); with or without a greedy client (a script
//! fetching consecutive frames as fast as it can); and a 1-hour video where each client plays
//! 15 s from a random place.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::common::Rng;

const FPS: f64 = 30.0;

/// One answer: status, the headers we read, the body.
pub struct Answer {
    pub status: u16,
    pub source: String,
    pub body: Vec<u8>,
}

/// `GET path` with `Connection: close`; an error instead of a panic.
pub fn get(addr: SocketAddr, path: &str) -> Result<Answer, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let source = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-frame-source")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Ok(Answer {
        status,
        source,
        body: bytes[split + 4..].to_vec(),
    })
}

/// What one client saw. Times are seconds since the video was opened.
#[derive(Default)]
pub struct ClientReport {
    /// Every frame received.
    pub requests: Vec<Request>,
    pub errors: Vec<String>,
    pub checked: u64,
}

#[derive(Clone, Copy)]
pub struct Request {
    pub at_s: f64,
    pub ms: f64,
    /// The first request after a seek.
    pub seek: bool,
    /// Seconds since the client's last seek.
    pub since_seek_s: f64,
    pub from_proxy: bool,
}

/// Reads the pattern of one JPEG in ten: it must be `frame` (modulo `period`, the length of
/// the clip a long video repeats).
fn check(report: &mut ClientReport, frame: u64, period: u64, jpeg: &[u8], received: u64) {
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
        Ok(n) if n == frame % period => report.checked += 1,
        Ok(n) => report
            .errors
            .push(format!("asked {frame}, the picture shows {n}")),
        Err(e) => report.errors.push(format!("frame {frame}: {e}")),
    }
}

pub struct Plain<'a> {
    pub addr: SocketAddr,
    pub video: &'a str,
    pub frames: u64,
    pub period: u64,
    pub opened: Instant,
    pub stop: &'a AtomicBool,
}

impl Plain<'_> {
    /// A client playing at 30 fps by plain GETs; seeks to a random place every
    /// `spell_ms.0 + rand(spell_ms.1)` ms.
    pub fn play(&self, id: usize, named: bool, spell_ms: (u64, u64)) -> ClientReport {
        let mut report = ClientReport::default();
        let mut rng = Rng::new(7000 + id as u64);
        let name = if named {
            format!("&viewer=load-viewer-{id:04}")
        } else {
            String::new()
        };
        let mut received = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let seek_to = rng.below(self.frames);
            let spell = Duration::from_millis(spell_ms.0 + rng.below(spell_ms.1));
            let clock = Instant::now();
            let mut last = None;
            while clock.elapsed() < spell && !self.stop.load(Ordering::Relaxed) {
                let frame =
                    (seek_to + (clock.elapsed().as_secs_f64() * FPS) as u64).min(self.frames - 1);
                if last == Some(frame) {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                let asked = Instant::now();
                let answer = get(
                    self.addr,
                    &format!("/frame/{}/{frame}.jpg?p=seek{name}", self.video),
                );
                let ms = asked.elapsed().as_secs_f64() * 1000.0;
                match answer {
                    Ok(a) if a.status == 200 => {
                        check(&mut report, frame, self.period, &a.body, received);
                        received += 1;
                        report.requests.push(Request {
                            at_s: asked.duration_since(self.opened).as_secs_f64(),
                            ms,
                            seek: last.is_none(),
                            since_seek_s: asked.duration_since(clock).as_secs_f64(),
                            from_proxy: a.source == "proxy",
                        });
                    }
                    Ok(a) => report
                        .errors
                        .push(format!("frame {frame}: HTTP {}", a.status)),
                    Err(e) => report.errors.push(format!("frame {frame}: {e}")),
                }
                last = Some(frame);
            }
        }
        report
    }

    /// A script fetching consecutive frames as fast as it can, one at a time.
    pub fn greedy(&self) -> ClientReport {
        let mut report = ClientReport::default();
        let mut n = Rng::new(99).below(self.frames);
        let mut received = 0;
        while !self.stop.load(Ordering::Relaxed) {
            let asked = Instant::now();
            match get(self.addr, &format!("/frame/{}/{n}.jpg", self.video)) {
                Ok(a) if a.status == 200 => {
                    check(&mut report, n, self.period, &a.body, received);
                    received += 1;
                    report.requests.push(Request {
                        at_s: asked.duration_since(self.opened).as_secs_f64(),
                        ms: asked.elapsed().as_secs_f64() * 1000.0,
                        seek: false,
                        since_seek_s: 0.0,
                        from_proxy: a.source == "proxy",
                    });
                }
                // Told to come back later: it does, at once (it is greedy).
                Ok(a) if a.status == 429 => {}
                Ok(a) => report.errors.push(format!("frame {n}: HTTP {}", a.status)),
                Err(e) => report.errors.push(format!("frame {n}: {e}")),
            }
            n = (n + 1) % self.frames;
        }
        report
    }
}

/// The index status's figures we follow: (frames with fast seeking, of, frames indexed).
pub fn status(addr: SocketAddr, video: &str) -> Option<(u64, u64, u64)> {
    let body = format!("video={video}");
    let mut stream = TcpStream::connect(addr).ok()?;
    write!(
        stream,
        "POST /api/index_status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).ok()?;
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let value: serde_json::Value = serde_json::from_slice(&bytes[split + 4..]).ok()?;
    let fast = &value["fast_seeking"];
    Some((
        fast["frames"].as_u64().unwrap_or(0),
        fast["of"].as_u64().unwrap_or(0),
        value["done"].as_u64().unwrap_or(0),
    ))
}

/// When the share of the video with fast seeking first reached 25, 50, 75 and 100 %.
#[derive(Default)]
pub struct Coverage {
    pub reached_s: [Option<f64>; 4],
    pub last: (u64, u64),
    pub indexed: u64,
}

/// Follows the index status every half second until `stop`.
pub fn follow(addr: SocketAddr, video: &str, opened: Instant, stop: &AtomicBool) -> Coverage {
    let mut coverage = Coverage::default();
    while !stop.load(Ordering::Relaxed) {
        if let Some((frames, of, indexed)) = status(addr, video) {
            coverage.last = (frames, of);
            coverage.indexed = indexed;
            for (i, share) in [0.25, 0.5, 0.75, 1.0].into_iter().enumerate() {
                if coverage.reached_s[i].is_none() && of > 0 && frames as f64 >= share * of as f64 {
                    coverage.reached_s[i] = Some(opened.elapsed().as_secs_f64());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    coverage
}

/// A 1-hour video: a 1-minute 1280x720 H.264 clip (keyframe every 250 frames, B-frames)
/// repeated 60 times without re-encoding; frame n shows the pattern n mod 1800.
pub fn hour_video(dir: &Path) -> (PathBuf, u64) {
    let clip = dir.join("load-minute-1800.mp4");
    let hour = dir.join("load-hour-108000.mp4");
    if !hour.exists() {
        if !clip.exists() {
            testvideo::write(&clip, &testvideo::Spec::new(testvideo::Codec::H264, 1800)).unwrap();
        }
        let list = dir.join("load-hour.txt");
        std::fs::write(&list, format!("file '{}'\n", clip.display()).repeat(60)).unwrap();
        let partial = dir.join("load-hour.partial.mp4");
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "concat", "-safe", "0", "-i"])
            .arg(&list)
            .args(["-c", "copy"])
            .arg(&partial)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg could not join the clips");
        std::fs::rename(&partial, &hour).unwrap();
    }
    (hour, 1800)
}

/// Per-client figures over requests asked from `from_s` on, for `seconds` of run.
pub struct Figures {
    pub per_client_mean: f64,
    pub per_client_min: f64,
    pub all_per_s: f64,
    pub latency: [f64; 3],
    pub seeks: [f64; 2],
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn figures(reports: &[&ClientReport], from_s: f64, until_s: f64) -> Figures {
    let span = (until_s - from_s).max(1e-9);
    let per_client: Vec<f64> = reports
        .iter()
        .map(|r| {
            r.requests
                .iter()
                .filter(|q| q.at_s >= from_s && q.at_s < until_s)
                .count() as f64
                / span
        })
        .collect();
    let mut latencies: Vec<f64> = reports
        .iter()
        .flat_map(|r| r.requests.iter())
        .filter(|q| q.at_s >= from_s && q.at_s < until_s)
        .map(|q| q.ms)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let mut seeks: Vec<f64> = reports
        .iter()
        .flat_map(|r| r.requests.iter())
        .filter(|q| q.seek && q.at_s >= from_s && q.at_s < until_s)
        .map(|q| q.ms)
        .collect();
    seeks.sort_by(f64::total_cmp);
    Figures {
        per_client_mean: per_client.iter().sum::<f64>() / per_client.len().max(1) as f64,
        per_client_min: per_client.iter().copied().fold(f64::INFINITY, f64::min),
        all_per_s: per_client.iter().sum(),
        latency: [0.5, 0.95, 0.99].map(|p| percentile(&latencies, p)),
        seeks: [0.5, 0.95].map(|p| percentile(&seeks, p)),
    }
}

/// A scenario's run.
pub struct Run {
    pub clients: Vec<ClientReport>,
    pub greedy: Option<ClientReport>,
    pub coverage: Coverage,
    pub seconds: f64,
    pub rss: (f64, f64),
    pub alive: bool,
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

/// Starts the server on `config` (the binary `CLIP_LOAD_SERVER` names, else this build's),
/// then `clients` plain clients (and a greedy one) at once, for `seconds`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    config: &Path,
    video_path: &Path,
    frames: u64,
    period: u64,
    clients: usize,
    named: bool,
    greedy: bool,
    spell_ms: (u64, u64),
    seconds: u64,
) -> Run {
    let addr = super::common::free_addr();
    let binary = std::env::var("CLIP_LOAD_SERVER")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_clip-investigator").to_string());
    let mut server = std::process::Command::new(binary)
        .args(["serve", "--config", config.to_str().unwrap(), "--addr"])
        .arg(addr.to_string())
        .env("RUST_LOG", "warn")
        .env("HF_HUB_OFFLINE", "1")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "no server");
        std::thread::sleep(Duration::from_millis(20));
    }
    let video = super::common::id_of(video_path);
    let stop = Arc::new(AtomicBool::new(false));
    // The video is opened by the first request: the clock starts now.
    let opened = Instant::now();
    let plain = Plain {
        addr,
        video: &video,
        frames,
        period,
        opened,
        stop: &stop,
    };
    let plain = &plain;
    let out = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|id| scope.spawn(move || plain.play(id, named, spell_ms)))
            .collect();
        let greedy = greedy.then(|| scope.spawn(move || plain.greedy()));
        let follower = scope.spawn(|| follow(addr, &video, opened, &stop));
        let mut rss = Vec::new();
        while opened.elapsed() < Duration::from_secs(seconds) {
            std::thread::sleep(Duration::from_secs(1));
            rss.push(rss_mb(server.id()).unwrap_or(f64::NAN));
        }
        stop.store(true, Ordering::Relaxed);
        let clients: Vec<ClientReport> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let greedy = greedy.map(|h| h.join().unwrap());
        Run {
            clients,
            greedy,
            coverage: follower.join().unwrap(),
            seconds: opened.elapsed().as_secs_f64(),
            rss: (
                rss.iter().copied().fold(f64::INFINITY, f64::min),
                rss.iter().copied().fold(0.0, f64::max),
            ),
            alive: false,
        }
    });
    let alive = server.try_wait().unwrap().is_none();
    let _ = server.kill();
    let _ = server.wait();
    Run { alive, ..out }
}

/// Seconds from a seek until its first frame from the proxy, and latencies of requests 10 s
/// or more after their seek (the 1-hour video's goal).
pub fn after_seeks(reports: &[&ClientReport]) -> (Vec<f64>, Vec<f64>) {
    let mut to_proxy = Vec::new();
    let mut settled = Vec::new();
    for r in reports {
        let mut seek_at = None;
        let mut found = false;
        for q in &r.requests {
            if q.seek {
                seek_at = Some(q.at_s);
                found = false;
            }
            if q.from_proxy && !found {
                if let Some(at) = seek_at {
                    to_proxy.push(q.at_s - at);
                }
                found = true;
            }
            if q.since_seek_s >= 10.0 {
                settled.push(q.ms);
            }
        }
    }
    to_proxy.sort_by(f64::total_cmp);
    settled.sort_by(f64::total_cmp);
    (to_proxy, settled)
}
