//! Shared helpers: test videos made on first use (and kept in cargo's test tmp dir), a seeded
//! random sequence, and a minimal HTTP client for talking to a running server.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use testvideo::{self, Codec, Derive, Spec};

pub const FRAMES: u64 = 300;

/// The test videos: name and how it is written.
pub fn specs() -> Vec<(&'static str, Spec)> {
    vec![
        // H.264 with one keyframe every 250 frames: seeks must decode far forward.
        ("h264_gop250.mp4", Spec::new(Codec::H264, FRAMES as u32)),
        (
            "mpeg2.mkv",
            Spec {
                keyframe_interval: 30,
                ..Spec::new(Codec::Mpeg2, FRAMES as u32)
            },
        ),
        (
            "vp9.webm",
            Spec {
                keyframe_interval: 120,
                ..Spec::new(Codec::Vp9, FRAMES as u32)
            },
        ),
        (
            "vfr_h264.mp4",
            Spec {
                keyframe_interval: 60,
                variable_frame_rate: true,
                ..Spec::new(Codec::H264, FRAMES as u32)
            },
        ),
    ]
}

/// A pattern video at 640x360 for the real-world corpus: small, so 200 seeks stay quick.
fn small(codec: Codec, frames: u32) -> Spec {
    Spec {
        width: 640,
        height: 360,
        keyframe_interval: 48,
        ..Spec::new(codec, frames)
    }
}

/// Where a corpus file comes from: written from a spec, or derived from another corpus file
/// (or test video) the way users' files are made.
pub enum Origin {
    Written(Spec),
    Derived(&'static str, Derive),
}

/// Files shaped like users' files (see `server/src/testvideo.rs`): remuxed, trimmed, offset,
/// B-frames, open GOPs, captured mid-stream, rotated, with audio, HEVC 8/10-bit, MJPEG.
pub fn corpus() -> Vec<(&'static str, Origin)> {
    use Origin::*;
    vec![
        // H.264 with B-frames in MP4, the base of several below.
        ("h264_bframes.mp4", Written(small(Codec::H264, 190))),
        // MPEG-2 with B-frames (open GOPs, as broadcast encoders make them), 25 fps.
        (
            "mpeg2_open_gop.mkv",
            Written(Spec {
                fps: 25,
                b_frames: Some(2),
                keyframe_interval: 12,
                ..small(Codec::Mpeg2, 190)
            }),
        ),
        (
            "program_stream_0.5s.mpg",
            Derived(
                "mpeg2_open_gop.mkv",
                Derive::Remux {
                    format: "vob",
                    offset_s: 0.5,
                },
            ),
        ),
        (
            "h264_bframes_10s.ts",
            Derived(
                "h264_bframes.mp4",
                Derive::Remux {
                    format: "mpegts",
                    offset_s: 10.0,
                },
            ),
        ),
        (
            "mpeg2_open_gop_1.4s.ts",
            Derived(
                "mpeg2_open_gop.mkv",
                Derive::Remux {
                    format: "mpegts",
                    offset_s: 1.4,
                },
            ),
        ),
        (
            "capture_mid_gop.ts",
            Derived(
                "mpeg2_open_gop_1.4s.ts",
                Derive::CaptureFrom { fraction: 0.37 },
            ),
        ),
        (
            "capture_h264_mid_gop.ts",
            Derived(
                "h264_bframes_10s.ts",
                Derive::CaptureFrom { fraction: 0.41 },
            ),
        ),
        // x264's open GOPs (recovery-point I-frames), in MP4 and in MPEG-TS captured mid-GOP.
        (
            "h264_open_gop.mp4",
            Written(Spec {
                open_gop: true,
                b_frames: Some(3),
                keyframe_interval: 30,
                ..small(Codec::H264, 190)
            }),
        ),
        // Encoded straight to MPEG-TS, as a broadcast encoder does: parameter sets repeat at
        // every keyframe (a remux from MP4 would put them before IDR frames only).
        (
            "h264_open_gop.ts",
            Written(Spec {
                open_gop: true,
                b_frames: Some(3),
                keyframe_interval: 30,
                ..small(Codec::H264, 190)
            }),
        ),
        (
            "capture_h264_open_gop.ts",
            Derived("h264_open_gop.ts", Derive::CaptureFrom { fraction: 0.29 }),
        ),
        // Cut at 1.1 s = frame 33, between keyframes 0 and 48: an edit list mid-GOP.
        (
            "trimmed_stream_copy.mp4",
            Derived("h264_bframes.mp4", Derive::Trim { start_s: 1.1 }),
        ),
        (
            "audio_first.mp4",
            Derived("h264_bframes.mp4", Derive::AudioFirst { lead_s: 0.5 }),
        ),
        (
            "h264.mkv",
            Derived(
                "h264_bframes.mp4",
                Derive::Remux {
                    format: "matroska",
                    offset_s: 0.0,
                },
            ),
        ),
        (
            "rotated_90.mp4",
            Derived("h264_bframes.mp4", Derive::Rotated { degrees: 90 }),
        ),
        ("hevc.mp4", Written(small(Codec::Hevc, 150))),
        ("hevc_10bit.mp4", Written(small(Codec::Hevc10, 150))),
        // Odd height: swscale converts yuv420p to bgr24 (ours) and to rgb24 (what ffmpeg's PNG
        // output uses) by different code there; `pixels.rs` checks ours against bgr24.
        (
            "mpeg2_405.mkv",
            Written(Spec {
                width: 720,
                height: 405,
                fps: 25,
                keyframe_interval: 12,
                ..Spec::new(Codec::Mpeg2, 60)
            }),
        ),
        (
            "program_stream_405.mpg",
            Derived(
                "mpeg2_405.mkv",
                Derive::Remux {
                    format: "vob",
                    offset_s: 0.0,
                },
            ),
        ),
        (
            "mpeg2_406.mkv",
            Written(Spec {
                width: 720,
                height: 406,
                fps: 25,
                keyframe_interval: 12,
                ..Spec::new(Codec::Mpeg2, 60)
            }),
        ),
        (
            "program_stream_406.mpg",
            Derived(
                "mpeg2_406.mkv",
                Derive::Remux {
                    format: "vob",
                    offset_s: 0.0,
                },
            ),
        ),
        (
            "mjpeg_29.97.avi",
            Written(Spec {
                fps: 30000,
                fps_den: 1001,
                ..small(Codec::Mjpeg, 150)
            }),
        ),
    ]
}

static WRITING: Mutex<()> = Mutex::new(());

fn video_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-videos-v1");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Path of the named test video or corpus file, written on first use.
pub fn video(name: &str) -> PathBuf {
    let _guard = WRITING.lock().unwrap_or_else(|p| p.into_inner());
    make(name)
}

fn make(name: &str) -> PathBuf {
    let path = video_dir().join(name);
    if path.exists() {
        return path;
    }
    if let Some((_, spec)) = specs().into_iter().find(|(n, _)| *n == name) {
        testvideo::write(&path, &spec).unwrap();
        return path;
    }
    match corpus()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, o)| o)
    {
        Some(Origin::Written(spec)) => testvideo::write(&path, &spec).unwrap(),
        Some(Origin::Derived(from, how)) => {
            let source = make(from);
            testvideo::derive(&source, &path, &how).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        None => panic!("unknown test video {name}"),
    }
    path
}

/// A scratch file with the given bytes, for bad-input tests.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = video_dir().join("scratch");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The first `fraction` of a test video's bytes.
pub fn truncated_copy(name: &str, fraction: f64) -> PathBuf {
    let bytes = std::fs::read(video(name)).unwrap();
    let keep = (bytes.len() as f64 * fraction) as usize;
    scratch_file(&format!("truncated_{name}"), &bytes[..keep])
}

/// xorshift64*: reproducible "random" numbers without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request with `Connection: close`; enough for tests against our own server.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> HttpResponse {
    http_with(addr, method, path, content_type, body, &[])
}

/// [`http`] with extra headers; a `Host` among them replaces the default (`addr`).
pub fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut extra = String::new();
    let mut host = addr.to_string();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("host") {
            host = value.to_string();
        } else {
            extra += &format!("{name}: {value}\r\n");
        }
    }
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nAccept: */*\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (and close) before it reads the body: a refusal. Read it anyway.
    let _ = stream.write_all(body);
    read_response(&mut stream, &format!("{method} {path}"))
}

/// Reads a whole HTTP/1.1 answer (the request sent `Connection: close`); `what` names the
/// request in the failure message.
pub fn read_response(stream: &mut TcpStream, what: &str) -> HttpResponse {
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        assert!(!raw.is_empty(), "{what}: no answer ({e})");
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

/// Splits a postcard-encoded `FrameJpeg { frame: u64, jpeg: bytes }`.
pub fn decode_frame_payload(body: &[u8]) -> (u64, Vec<u8>) {
    fn varint(data: &[u8], at: &mut usize) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = data[*at];
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        value
    }
    let mut at = 0;
    let frame = varint(body, &mut at);
    let len = varint(body, &mut at) as usize;
    (frame, body[at..at + len].to_vec())
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Waits until something listens on `addr` (a server just spawned), at most 30 s.
pub fn wait_until_listening(addr: SocketAddr) {
    let started = std::time::Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing listens on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The library id the server gives the video at `path` (its `video_path`, or a library file).
pub fn id_of(path: &std::path::Path) -> String {
    engine::library::video_id(&path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
}

/// Where a spawned server's output goes.
pub enum ServerLog<'a> {
    Discard,
    Inherit,
    /// stdout and stderr together into this file.
    File(&'a std::path::Path),
}

/// Spawns `serve --config CONFIG --addr ADDR` (offline, no auth token unless `env` sets one, log
/// level `info` unless `env` sets `RUST_LOG`) and waits until it listens.
pub fn spawn_serve(
    config: &std::path::Path,
    addr: SocketAddr,
    env: &[(&str, &str)],
    log: ServerLog,
) -> std::process::Child {
    spawn_serve_through(&[], config, addr, env, log)
}

/// [`spawn_serve`] through `wrapper` (a command line the server's own is appended to, such as a
/// shell that limits the size of the files it may write); none when empty.
pub fn spawn_serve_through(
    wrapper: &[&str],
    config: &std::path::Path,
    addr: SocketAddr,
    env: &[(&str, &str)],
    log: ServerLog,
) -> std::process::Child {
    use std::process::Stdio;
    let (stdout, stderr) = match log {
        ServerLog::Discard => (Stdio::null(), Stdio::null()),
        ServerLog::Inherit => (Stdio::null(), Stdio::inherit()),
        ServerLog::File(path) => {
            let file = std::fs::File::create(path).unwrap();
            (Stdio::from(file.try_clone().unwrap()), Stdio::from(file))
        }
    };
    let binary = env!("CARGO_BIN_EXE_clip-investigator");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = std::process::Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => std::process::Command::new(binary),
    };
    let child = command
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--addr",
            &addr.to_string(),
        ])
        .env("RUST_LOG", "info")
        // Never try to download the default model in tests.
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("CLIP_INVESTIGATOR_AUTH_TOKEN")
        .envs(env.iter().copied())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    // A server bound to every interface is reached through loopback.
    wait_until_listening(SocketAddr::from(([127, 0, 0, 1], addr.port())));
    child
}

/// A `serve` process with a config of its own, its log in a file; killed when dropped.
pub struct Served {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Served {
    /// Starts `serve` with `config` (YAML) written into a fresh folder (`{dir}` in the text is
    /// replaced by that folder), offline, logging at `info`.
    pub fn start(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), config, env)
    }

    /// [`start`](Self::start) in a folder prepared by the caller.
    pub fn start_in(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_through(&[], dir, config, env)
    }

    /// [`start_in`](Self::start_in) through `wrapper` (see [`spawn_serve_through`]).
    pub fn start_through(
        wrapper: &[&str],
        dir: tempfile::TempDir,
        config: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let config_path = dir.path().join("config.yaml");
        std::fs::write(
            &config_path,
            config.replace("{dir}", dir.path().to_str().unwrap()),
        )
        .unwrap();
        let addr = free_addr();
        let log = dir.path().join("server.log");
        let child = spawn_serve_through(wrapper, &config_path, addr, env, ServerLog::File(&log));
        Self {
            child,
            addr,
            log,
            dir,
        }
    }

    pub fn post(&self, endpoint: &str, content_type: &str, body: &[u8]) -> HttpResponse {
        http(self.addr, "POST", endpoint, content_type, body)
    }

    pub fn form(&self, endpoint: &str, body: &str) -> HttpResponse {
        self.post(
            endpoint,
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server and keeps its folder (config, cache) for another one.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// Starts measuring the peak anew from the current resident memory (Linux `clear_refs`).
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .expect("reset the peak RSS through /proc/PID/clear_refs");
    }

    /// Peak resident memory of the server so far, in MB (Linux).
    pub fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tiny random-weight CLIP the tests index with.
pub fn tiny_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip")
}
