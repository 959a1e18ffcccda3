//! The binary as a user runs it: `probe`, `frame`, errors, and `serve` answering HTTP.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crate::common::{http, video, FRAMES};
use testvideo::read_pattern;

const BIN: &str = env!("CARGO_BIN_EXE_clip-investigator");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn probe_prints_json_metadata() {
    let path = video("h264_gop250.mp4");
    let output = run(&["probe", path.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["frames"], FRAMES);
    assert_eq!(json["fps"], 30.0);
    assert_eq!(json["width"], 1280);
    assert_eq!(json["height"], 720);
    assert_eq!(json["duration_s"], 10.0);
    assert_eq!(json["exact_count"], true);

    let mkv = video("mpeg2.mkv");
    let output = run(&["probe", mkv.to_str().unwrap(), "--json", "--exact"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (json["frames"].as_u64(), json["exact_count"].as_bool()),
        (Some(FRAMES), Some(true))
    );
}

#[test]
fn frame_writes_the_exact_frame_at_full_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.jpg");
    let output = run(&[
        "frame",
        video("vp9.webm").to_str().unwrap(),
        "123",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let image = engine::video::decode_image(&std::fs::read(&out).unwrap()).unwrap();
    use opencv::prelude::MatTraitConst;
    assert_eq!((image.cols(), image.rows()), (1280, 720));
    assert_eq!(read_pattern(&image).unwrap(), 123);
}

#[test]
fn bad_input_exits_non_zero_with_a_clear_message() {
    let empty = crate::common::scratch_file("cli_empty.mp4", b"");
    let text = crate::common::scratch_file("cli_text.mp4", "hello\n".repeat(500).as_bytes());
    let truncated = crate::common::truncated_copy("h264_gop250.mp4", 0.4);
    let h264 = video("h264_gop250.mp4");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["probe", "/nonexistent/a.mp4"], "not found"),
        (vec!["probe", empty.to_str().unwrap()], "empty"),
        (vec!["probe", text.to_str().unwrap()], "video"),
        (vec!["probe", truncated.to_str().unwrap()], "truncated"),
        (
            vec![
                "frame",
                h264.to_str().unwrap(),
                "300",
                "-o",
                "/tmp/never.jpg",
            ],
            "out of range",
        ),
        (
            vec!["frame", "/nonexistent/a.mp4", "1", "-o", "/tmp/never.jpg"],
            "not found",
        ),
    ];
    for (args, expected) in cases {
        let output = run(&args);
        assert!(!output.status.success(), "{args:?} should fail");
        let message = stderr(&output);
        assert!(
            message.contains(expected),
            "{args:?}: expected {expected:?} in {message}"
        );
    }
}

#[test]
fn serve_refuses_a_bad_config_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("vidoe_path: a.mp4\n", "did you mean `video_path`?"),
        ("video_path: a.mp4\njpeg_quality: [1, 2]\n", "line 2"),
    ];
    for (text, expected) in cases {
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, text).unwrap();
        let output = run(&[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--addr",
            "127.0.0.1:9",
        ]);
        assert!(!output.status.success());
        let message = stderr(&output);
        assert!(message.contains(expected), "{message}");
    }
    let output = run(&["serve", "--config", "/nonexistent/config.yaml"]);
    assert!(!output.status.success() && stderr(&output).contains("--config"));
}

/// A `serve` process on a free loopback port, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// The library id of the configured video.
    video: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(video_path: &Path) -> Self {
        Self::start_with_env(video_path, &[])
    }

    fn start_with_env(video_path: &Path, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "roboflow_api_key: \"test-secret-key\"\nvideo_path: {:?}\nCLIP:\n  - wall\n",
                video_path
            ),
        )
        .unwrap();
        let addr = crate::common::free_addr();
        let env = [env, &[("RUST_LOG", "warn")]].concat();
        let child =
            crate::common::spawn_serve(&config, addr, &env, crate::common::ServerLog::Discard);
        let video = env
            .iter()
            .find(|(k, _)| *k == "CLIP_INVESTIGATOR_VIDEO")
            .map_or_else(
                || crate::common::id_of(video_path),
                |(_, v)| crate::common::id_of(Path::new(v)),
            );
        Self {
            child,
            addr,
            video,
            _dir: dir,
        }
    }

    fn frame(&self, viewer: &str, frame: &str) -> crate::common::HttpResponse {
        let body = format!("video={}&viewer={viewer}&frame={frame}", self.video);
        http(
            self.addr,
            "POST",
            "/api/frame",
            "application/x-www-form-urlencoded",
            body.as_bytes(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_renders_the_page_and_serves_exact_frames() {
    let server = Server::start(&video("h264_gop250.mp4"));
    let page = http(server.addr, "GET", "/?frame=12", "text/plain", b"");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("h264_gop250.mp4") && html.contains("id=\"frame-view\""),
        "{html}"
    );
    assert!(
        !html.contains("test-secret-key"),
        "the API key must never reach the browser"
    );

    let info = http(
        server.addr,
        "POST",
        "/api/video_info",
        "application/x-www-form-urlencoded",
        b"",
    );
    assert_eq!(info.status, 200, "{}", info.text());
    let json: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(json["frames"], FRAMES);
    assert!(
        !info.text().contains("test-secret-key") && !info.text().contains("/tmp"),
        "no secrets, no paths"
    );

    for n in [0u64, 150, 151, 37, 299] {
        let response = server.frame("viewer-test-1", &n.to_string());
        assert_eq!(response.status, 200, "{}", response.text());
        let (frame, jpeg) = crate::common::decode_frame_payload(&response.body);
        assert_eq!(frame, n);
        assert_eq!(
            read_pattern(&engine::video::decode_image(&jpeg).unwrap()).unwrap(),
            n
        );
    }
}

#[test]
fn bad_frame_requests_get_errors_and_the_server_keeps_serving() {
    let server = Server::start(&video("h264_gop250.mp4"));
    let out_of_range = server.frame("viewer-test-2", "300");
    assert!(out_of_range.status >= 400, "status {}", out_of_range.status);
    assert!(
        out_of_range.text().contains("out of range"),
        "{}",
        out_of_range.text()
    );
    for (viewer, frame) in [
        ("viewer-test-2", "-1"),
        ("viewer-test-2", "abc"),
        ("../../etc", "1"),
        ("viewer-test-2", ""),
    ] {
        let response = server.frame(viewer, frame);
        assert!(
            response.status >= 400,
            "{viewer} {frame}: status {}",
            response.status
        );
    }
    let garbage = http(
        server.addr,
        "POST",
        "/api/frame",
        "application/x-www-form-urlencoded",
        &[0xff, 0x00, 0x13],
    );
    assert!(garbage.status >= 400);
    let ok = server.frame("viewer-test-2", "12");
    assert_eq!(ok.status, 200);
    assert_eq!(crate::common::decode_frame_payload(&ok.body).0, 12);
}

#[test]
fn serve_with_a_broken_video_starts_and_shows_the_problem_in_the_page() {
    let text =
        crate::common::scratch_file("serve_text.mp4", "not a video\n".repeat(100).as_bytes());
    for path in [Path::new("/nonexistent/missing.mp4"), text.as_path()] {
        let server = Server::start(path);
        let page = http(server.addr, "GET", "/", "text/plain", b"").text();
        assert!(page.contains("The video cannot be shown"), "{page}");
        assert!(
            page.contains("not found") || page.contains("cannot be opened"),
            "{page}"
        );
        assert!(
            !page.contains("/nonexistent") && !page.contains("/scratch/"),
            "the page names files, not their folders: {page}"
        );
        assert!(server.frame("viewer-test-3", "0").status >= 400);
    }
}

#[test]
fn environment_variables_override_the_config_file() {
    let video_path = video("vp9.webm");
    let server = Server::start_with_env(
        Path::new("/nonexistent/from-config.mp4"),
        &[("CLIP_INVESTIGATOR_VIDEO", video_path.to_str().unwrap())],
    );
    let page = http(server.addr, "GET", "/", "text/plain", b"").text();
    assert!(
        page.contains("vp9.webm") && !page.contains("cannot be shown"),
        "{page}"
    );
}

fn index_status(server: &Server) -> serde_json::Value {
    let response = http(
        server.addr,
        "POST",
        "/api/index_status",
        "application/x-www-form-urlencoded",
        format!("video={}", server.video).as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    serde_json::from_slice(&response.body).unwrap()
}

fn scores(
    server: &Server,
    prompts: &[&str],
) -> Result<investigator_core::types::ScoreSeries, String> {
    let body = serde_json::json!({ "video": server.video, "prompts": prompts }).to_string();
    let response = http(
        server.addr,
        "POST",
        "/api/scores",
        "application/json",
        body.as_bytes(),
    );
    if response.status == 200 {
        Ok(postcard::from_bytes(&response.body).unwrap())
    } else {
        Err(response.text())
    }
}

/// The search server function's arguments, in their postcard order.
#[derive(serde::Serialize)]
struct SearchArgs {
    video: String,
    model: Option<String>,
    text: Option<String>,
    image: Option<Vec<u8>>,
    top: usize,
}

fn search(
    server: &Server,
    text: Option<String>,
    image: Option<Vec<u8>>,
    top: usize,
) -> Result<Vec<investigator_core::types::SearchHit>, String> {
    let body = postcard::to_stdvec(&SearchArgs {
        video: server.video.clone(),
        model: None,
        text,
        image,
        top,
    })
    .unwrap();
    let response = http(
        server.addr,
        "POST",
        "/api/search",
        "application/x-postcard",
        &body,
    );
    if response.status == 200 {
        Ok(postcard::from_bytes(&response.body).unwrap())
    } else {
        Err(response.text())
    }
}

#[test]
fn serve_indexes_the_video_in_the_background_and_answers_scores() {
    let embeddings = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    let env = [
        ("CLIP_INVESTIGATOR_MODEL", model.to_str().unwrap()),
        (
            "CLIP_INVESTIGATOR_EMBEDDINGS",
            embeddings.path().to_str().unwrap(),
        ),
    ];
    let video_path = video("mpeg2.mkv");
    let server = Server::start_with_env(&video_path, &env);
    let started = Instant::now();
    let mut seen_running = false;
    let status = loop {
        let status = index_status(&server);
        // Frames keep being served while indexing runs.
        assert_eq!(server.frame("viewer-index-1", "150").status, 200);
        match status["state"].as_str().unwrap() {
            "Done" => break status,
            "Running" => {
                seen_running = true;
                // Partial scores cover the indexed prefix only.
                let partial = scores(&server, &["grass"]).unwrap();
                assert!(partial.frames.len() as u64 <= FRAMES);
                assert_eq!(partial.prompts[0].values.len(), partial.frames.len());
            }
            "Failed" => panic!("{status}"),
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "indexing did not finish: {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        (status["done"].as_u64(), status["total"].as_u64()),
        (Some(FRAMES), Some(FRAMES))
    );
    assert_eq!(status["model"], "tiny-clip");
    eprintln!("saw the job running: {seen_running}");
    let series = scores(&server, &["grass", "a brick wall"]).unwrap();
    assert_eq!(
        (series.frames.len() as u64, series.video_frames),
        (FRAMES, FRAMES)
    );
    assert!(series.complete);
    assert_eq!(series.prompts.len(), 2);
    assert!(series
        .prompts
        .iter()
        .all(|p| p.values.len() as u64 == FRAMES && !p.truncated));
    assert_eq!(series.filled(0).len() as u64, FRAMES);
    // Adding a prompt embeds one text and no image.
    let before = index_status(&server);
    scores(&server, &["grass", "a brick wall", "a new prompt"]).unwrap();
    let after = index_status(&server);
    assert_eq!(after["images_embedded"], before["images_embedded"]);
    assert_eq!(
        after["texts_embedded"].as_u64().unwrap(),
        before["texts_embedded"].as_u64().unwrap() + 1
    );
    assert!(series.logit_scale > 1.0);
    // Bad prompt lists are refused with a reason; the server keeps serving.
    assert!(scores(&server, &[" "])
        .unwrap_err()
        .contains("prompt 1 is empty"));
    let long = "a cat ".repeat(200);
    assert!(scores(&server, &[&long]).unwrap().prompts[0].truncated);

    // Search by an uploaded image finds that frame; a file that is not an image is refused.
    let mut decoder = engine::video::Decoder::open(&video_path).unwrap();
    let still = engine::video::encode_jpeg(&decoder.frame(200).unwrap(), 0, 95).unwrap();
    let hits = search(&server, None, Some(still), 5).unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!(hits[0].frame, 200);
    let error = search(&server, None, Some(b"GIF89a not really".to_vec()), 5).unwrap_err();
    assert!(error.contains("not an image"), "{error}");
    let error = search(&server, Some("  ".into()), None, 5).unwrap_err();
    assert!(error.contains("type a text or choose an image"), "{error}");
    let by_text = search(&server, Some("grass".into()), None, 3).unwrap();
    assert_eq!(by_text.len(), 3);
    assert!(by_text.windows(2).all(|w| w[0].score >= w[1].score));
    drop(server);

    // A second server on the same video and cache embeds nothing: it is Done at once.
    let again = Server::start_with_env(&video_path, &env);
    let started = Instant::now();
    loop {
        let status = index_status(&again);
        if status["state"] == "Done" {
            assert_eq!(status["done"], FRAMES);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_without_a_model_says_why_and_still_plays() {
    let server = Server::start_with_env(
        &video("mpeg2.mkv"),
        &[
            ("CLIP_INVESTIGATOR_MODEL", "openai/clip-vit-base-patch32"),
            ("HF_HOME", "/nonexistent/hf"),
        ],
    );
    let started = Instant::now();
    let status = loop {
        let status = index_status(&server);
        if status["state"] == "Failed" {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{status}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let message = status["message"].as_str().unwrap();
    assert!(
        message.contains("model.safetensors") && message.contains("--model"),
        "{message}"
    );
    assert!(scores(&server, &["grass"])
        .unwrap_err()
        .contains("model.safetensors"));
    assert_eq!(server.frame("viewer-nomodel", "10").status, 200);
}
