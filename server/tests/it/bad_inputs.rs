//! A corpus of bad inputs, each answered with a clear error while the server keeps serving:
//! damaged and odd videos (made on the fly from the test videos and ffmpeg, under cargo's test
//! tmp dir), damaged cache files, malformed and oversized requests, malformed config files.
//! No input may crash the process or make it log a panic.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::{http, video, HttpResponse};

const BIN: &str = env!("CARGO_BIN_EXE_clip-investigator");

fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad-inputs-v1");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip")
}

fn ffmpeg(out: &Path, args: &[&str]) -> PathBuf {
    if !out.exists() {
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success(), "ffmpeg {args:?}");
    }
    out.to_path_buf()
}

fn bytes(name: &str, data: &[u8]) -> PathBuf {
    let path = corpus_dir().join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// Bad and odd video files: (what it is, path).
fn video_corpus() -> Vec<(String, PathBuf)> {
    let dir = corpus_dir();
    let mut corpus = vec![
        ("empty file".to_string(), bytes("empty.mp4", b"")),
        (
            "text file named .mp4".into(),
            bytes("text.mp4", b"this is not a video\n"),
        ),
        (
            "random bytes named .webm".into(),
            bytes("random.webm", &{
                let mut rng = crate::common::Rng::new(7);
                (0..65536)
                    .map(|_| rng.below(256) as u8)
                    .collect::<Vec<u8>>()
            }),
        ),
        (
            "PNG image named .mp4".into(),
            bytes(
                "image.mp4",
                &std::fs::read(tiny_model().join("frames/frame_030.png")).unwrap(),
            ),
        ),
        (
            "Y4M header claiming 100000x100000".into(),
            bytes(
                "huge.y4m",
                b"YUV4MPEG2 W100000 H100000 F30:1 Ip A1:1 C420jpeg\nFRAME\n\x10\x10\x10\x10",
            ),
        ),
        ("a folder named .mp4".into(), {
            let d = dir.join("folder.mp4");
            std::fs::create_dir_all(&d).unwrap();
            d
        }),
        ("missing file".into(), dir.join("missing.mp4")),
        (
            "audio only (AAC in MP4)".into(),
            ffmpeg(
                &dir.join("audio_only.mp4"),
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:duration=1",
                    "-c:a",
                    "aac",
                ],
            ),
        ),
        (
            "1x1 video".into(),
            ffmpeg(
                &dir.join("one_pixel.mkv"),
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "color=c=red:s=2x2:d=1:r=10",
                    "-vf",
                    "scale=1:1",
                    "-c:v",
                    "ffv1",
                ],
            ),
        ),
        (
            "16-bit 4:4:4 video".into(),
            ffmpeg(
                &dir.join("yuv444p16.mkv"),
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=s=64x64:d=1:r=10",
                    "-c:v",
                    "ffv1",
                    "-pix_fmt",
                    "yuv444p16le",
                ],
            ),
        ),
    ];
    for name in ["h264_gop250.mp4", "mpeg2.mkv", "vp9.webm", "vfr_h264.mp4"] {
        let original = std::fs::read(video(name)).unwrap();
        corpus.push((
            format!("{name} truncated to 30%"),
            bytes(
                &format!("truncated_{name}"),
                &original[..original.len() * 3 / 10],
            ),
        ));
        let mut flipped = original.clone();
        let (from, to) = (flipped.len() / 3, flipped.len() * 2 / 3);
        for i in (from..to).step_by(97) {
            flipped[i] ^= 0x5a;
        }
        corpus.push((
            format!("{name} with bytes flipped"),
            bytes(&format!("flipped_{name}"), &flipped),
        ));
        corpus.push((
            format!("{name}, header only (first 4 KB)"),
            bytes(
                &format!("head_{name}"),
                &original[..4096.min(original.len())],
            ),
        ));
    }
    corpus
}

struct Server {
    child: Child,
    addr: SocketAddr,
    /// The library id of the configured video.
    video: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(video_path: &Path, embeddings: Option<&Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let embeddings =
            embeddings.map_or_else(|| dir.path().join("embeddings"), Path::to_path_buf);
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "video_path: {video_path:?}\nCLIP:\n  - wall\nmodel: {:?}\nembeddings_dir: {embeddings:?}\n",
                tiny_model()
            ),
        )
        .unwrap();
        let addr = crate::common::free_addr();
        let log = dir.path().join("server.log");
        let child =
            crate::common::spawn_serve(&config, addr, &[], crate::common::ServerLog::File(&log));
        Self {
            child,
            addr,
            video: crate::common::id_of(video_path),
            log,
            _dir: dir,
        }
    }

    fn post(&self, endpoint: &str, content_type: &str, body: &[u8]) -> HttpResponse {
        http(self.addr, "POST", endpoint, content_type, body)
    }

    /// Still running, still serving the page, and no panic in its log.
    fn assert_healthy(&mut self, what: &str) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "{what}: the server exited"
        );
        assert_eq!(
            http(self.addr, "GET", "/", "text/plain", b"").status,
            200,
            "{what}"
        );
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(!log.contains("panicked"), "{what}: {log}");
    }

    fn index_status(&self) -> serde_json::Value {
        let r = self.post(
            "/api/index_status",
            "application/x-www-form-urlencoded",
            format!("video={}", self.video).as_bytes(),
        );
        serde_json::from_slice(&r.body).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn form(server: &Server, endpoint: &str, body: &str) -> HttpResponse {
    server.post(
        endpoint,
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    )
}

#[test]
fn bad_inputs_get_clear_errors_and_the_server_keeps_serving() {
    let mut handled = Vec::new();

    // Videos: the CLI says what is wrong; the server starts, its page and API say it, and it
    // keeps serving (indexing such a file fails with a message, not a crash).
    for (what, path) in video_corpus() {
        let probe = Command::new(BIN).arg("probe").arg(&path).output().unwrap();
        assert!(
            probe.status.code().is_some(),
            "{what}: probe died of a signal"
        );
        if !probe.status.success() {
            let message = String::from_utf8_lossy(&probe.stderr);
            assert!(
                message
                    .lines()
                    .any(|l| l.starts_with("error: ") && l.len() > 20),
                "{what}: {message}"
            );
        }
        let mut server = Server::start(&path, None);
        let info = form(&server, "/api/video_info", "");
        let video = server.video.clone();
        let frame = form(
            &server,
            "/api/frame",
            &format!("video={video}&viewer=bad-input&frame=0"),
        );
        let late = form(
            &server,
            "/api/frame",
            &format!("video={video}&viewer=bad-input&frame=99999999"),
        );
        assert_ne!(late.status, 200, "{what}: a frame past the end");
        for (name, r) in [
            ("video_info", &info),
            ("frame", &frame),
            ("frame past the end", &late),
        ] {
            assert!(
                r.status == 200 || (400..600).contains(&r.status),
                "{what} {name}: {}",
                r.status
            );
            if r.status != 200 {
                assert!(
                    !r.text().trim().is_empty(),
                    "{what} {name}: an error without a message"
                );
            }
        }
        // Indexing reaches an end (done, or failed with a message) without taking the server down.
        let started = Instant::now();
        loop {
            let status = server.index_status();
            if status["state"] == "Failed" {
                assert!(
                    status["message"].as_str().is_some_and(|m| !m.is_empty()),
                    "{what}: {status}"
                );
                break;
            }
            if status["state"] == "Done" || started.elapsed() > Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        server.assert_healthy(&what);
        handled.push(format!(
            "video: {what} (probe {}, video_info {}, frame {})",
            probe.status.code().unwrap(),
            info.status,
            frame.status
        ));
    }

    // Damaged cache files beside a good video: moved aside, indexed again, the page still works.
    let good = video("h264_gop250.mp4");
    let embeddings = tempfile::tempdir().unwrap();
    let cfg = embeddings.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "model: {:?}\nembeddings_dir: {:?}\n",
            tiny_model(),
            embeddings.path()
        ),
    )
    .unwrap();
    let indexed = Command::new(BIN)
        .args([
            "index",
            good.to_str().unwrap(),
            "--sample-fps",
            "10",
            "--json",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        indexed.status.success(),
        "{}",
        String::from_utf8_lossy(&indexed.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&indexed.stdout).unwrap();
    let cache = PathBuf::from(report["cache"].as_str().unwrap());
    let original = std::fs::read(&cache).unwrap();
    let damages: Vec<(&str, Vec<u8>)> = vec![
        (
            "cache file truncated",
            original[..original.len() / 2].to_vec(),
        ),
        ("cache file with a flipped byte", {
            let mut b = original.clone();
            let middle = b.len() / 2;
            b[middle] ^= 1;
            b
        }),
        ("cache file of zero bytes", Vec::new()),
        ("cache file of garbage", vec![0xAB; 4096]),
    ];
    for (what, damaged) in damages {
        std::fs::write(&cache, &damaged).unwrap();
        let output = Command::new(BIN)
            .args([
                "scores",
                good.to_str().unwrap(),
                "--sample-fps",
                "10",
                "--prompt",
                "wall",
                "--json",
                "--config",
                cfg.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.code().is_some(),
            "{what}: scores died of a signal"
        );
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() || message.contains("error: "),
            "{what}: {message}"
        );
        std::fs::write(&cache, &damaged).unwrap();
        let mut server = Server::start(&good, Some(embeddings.path()));
        server.assert_healthy(what);
        handled.push(format!("cache: {what}"));
        drop(server);
        std::fs::write(&cache, &original).unwrap();
    }

    // Malformed and oversized requests against a good server.
    let mut server = Server::start(&good, None);
    let big = vec![b'a'; 40 * 1024 * 1024];
    let video = server.video.clone();
    let requests: Vec<(&str, &str, &str, Vec<u8>)> = vec![
        (
            "frame=-1",
            "/api/frame",
            "application/x-www-form-urlencoded",
            format!("video={video}&viewer=x&frame=-1").into_bytes(),
        ),
        (
            "frame=abc",
            "/api/frame",
            "application/x-www-form-urlencoded",
            format!("video={video}&viewer=x&frame=abc").into_bytes(),
        ),
        (
            "no arguments",
            "/api/frame",
            "application/x-www-form-urlencoded",
            Vec::new(),
        ),
        (
            "a 10,000-character viewer id",
            "/api/frame",
            "application/x-www-form-urlencoded",
            format!("video={video}&viewer={}&frame=1", "v".repeat(10_000)).into_bytes(),
        ),
        (
            "scores: broken JSON",
            "/api/scores",
            "application/json",
            format!("{{\"video\": \"{video}\", \"prompts\": [").into_bytes(),
        ),
        (
            "scores: wrong type",
            "/api/scores",
            "application/json",
            format!("{{\"video\": \"{video}\", \"prompts\": 5}}").into_bytes(),
        ),
        (
            "search: garbage postcard",
            "/api/search",
            "application/x-postcard",
            vec![0xff; 64],
        ),
        (
            "search: truncated postcard",
            "/api/search",
            "application/x-postcard",
            vec![0x01, 0x80],
        ),
        ("a 40 MB body", "/api/scores", "application/json", big),
        (
            "unknown server function",
            "/api/nope",
            "application/x-www-form-urlencoded",
            Vec::new(),
        ),
    ];
    for (what, endpoint, content_type, body) in requests {
        // `http` reads the answer even when the server refuses before reading the body.
        let r = server.post(endpoint, content_type, &body);
        assert!((400..600).contains(&r.status), "{what}: {}", r.status);
        // The request is at fault, not the server: 4xx, never 500.
        assert!(r.status < 500, "{what}: {} {}", r.status, r.text());
        if body.len() > 1 << 20 {
            assert_eq!(r.status, 413, "{what}: {}", r.text());
        }
        assert!(!r.text().trim().is_empty(), "{what}: no message");
        server.assert_healthy(what);
        handled.push(format!("request: {what} ({})", r.status));
    }
    // A request that never finishes its body must not block others.
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "POST /api/scores HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
        server.addr
    );
    stalled.write_all(head.as_bytes()).unwrap();
    server.assert_healthy("a stalled request");
    handled.push("request: a body that never arrives".into());
    drop(stalled);
    drop(server);

    // Malformed config files: serve refuses to start and says why.
    let dir = tempfile::tempdir().unwrap();
    let configs: [(&str, &str); 4] = [
        ("YAML syntax error", "video_path: [unclosed\n"),
        ("wrong type", "CLIP: 5\n"),
        ("unknown key", "vidoe_path: x.mp4\n"),
        ("binary garbage", "\u{0}\u{1}\u{2}\u{ff}"),
    ];
    for (what, text) in configs {
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, text).unwrap();
        let output = Command::new(BIN)
            .args([
                "serve",
                "--config",
                path.to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
            ])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{what}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains("config.yaml"), "{what}: {message}");
        handled.push(format!("config: {what}"));
    }

    println!(
        "{} bad inputs handled:\n  {}",
        handled.len(),
        handled.join("\n  ")
    );
    assert!(handled.len() >= 20);
}
