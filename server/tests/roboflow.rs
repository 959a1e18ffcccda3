//! The Roboflow backend against an in-test inference server that speaks the protocol, and
//! misbehaves on request: HTTP 500, a hang past the timeout, malformed JSON, wrong lengths.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::embed::roboflow::{RoboflowEmbedder, RoboflowSettings};
use engine::embed::{EmbedError, Embedder};
use serde_json::Value;

const KEY: &str = "secret-test-key-123";
const DIM: usize = 512;

#[derive(Clone, Copy)]
enum Behaviour {
    Correct,
    /// HTTP 500 for the first `n` requests, then correct.
    FailFirst(usize),
    Hang,
    MalformedJson,
    WrongLength,
    WrongCount,
    Unauthorized,
}

struct Request {
    target: String,
    body: Value,
}

struct FakeServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

/// A vector that depends on the input, like a real embedding would.
fn fake_embedding(seed: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((seed * 31 + i * 7) % 13) as f32 - 6.0)
        .collect()
}

fn items(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    }
}

fn answer(behaviour: Behaviour, served: usize, body: &Value) -> (u16, String) {
    let inputs = body
        .get("text")
        .or_else(|| body.get("image"))
        .map(items)
        .unwrap_or_default();
    let embeddings = |len: usize, count: usize| {
        let vectors: Vec<Vec<f32>> = (0..count)
            .map(|i| fake_embedding(i + inputs.len(), len))
            .collect();
        serde_json::json!({ "embeddings": vectors }).to_string()
    };
    match behaviour {
        Behaviour::FailFirst(n) if served < n => (500, "internal error".into()),
        Behaviour::Correct | Behaviour::FailFirst(_) | Behaviour::Hang => {
            (200, embeddings(DIM, inputs.len()))
        }
        Behaviour::MalformedJson => (200, "{\"embeddings\": [[1, 2,".into()),
        Behaviour::WrongLength => (200, embeddings(DIM - 1, inputs.len())),
        Behaviour::WrongCount => (200, embeddings(DIM, inputs.len() + 1)),
        Behaviour::Unauthorized => (401, format!("bad api key {KEY}")),
    }
}

fn serve_one(
    mut stream: TcpStream,
    behaviour: Behaviour,
    served: usize,
    requests: &Mutex<Vec<Request>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let (status, text) = answer(behaviour, served, &body);
    requests.lock().unwrap().push(Request { target, body });
    if let Behaviour::Hang = behaviour {
        std::thread::sleep(Duration::from_secs(3));
    }
    let head = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", text.len());
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(text.as_bytes());
}

impl FakeServer {
    fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(AtomicUsize::new(0));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let n = served.fetch_add(1, Ordering::SeqCst);
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve_one(stream, behaviour, n, &log));
            }
        });
        Self { addr, requests }
    }

    fn embedder(&self) -> RoboflowEmbedder {
        embedder_for(&format!("http://{}", self.addr))
    }
}

fn embedder_for(url: &str) -> RoboflowEmbedder {
    RoboflowEmbedder::new(RoboflowSettings {
        url: url.to_string(),
        api_key: KEY.into(),
        timeout: Duration::from_millis(500),
        attempts: 3,
        backoff: Duration::from_millis(20),
        ..RoboflowSettings::default()
    })
    .unwrap()
}

fn texts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn assert_unit_vectors(vectors: &[Vec<f32>], count: usize) {
    assert_eq!(vectors.len(), count);
    for v in vectors {
        assert_eq!(v.len(), DIM);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

#[test]
fn texts_and_images_are_embedded_in_batches_with_the_protocol_of_the_old_app() {
    let server = FakeServer::start(Behaviour::Correct);
    let embedder = server.embedder();
    assert_unit_vectors(
        &embedder
            .embed_texts(&texts(&["wall", "tile wall"]))
            .unwrap(),
        2,
    );
    assert_unit_vectors(&embedder.embed_texts(&texts(&["one"])).unwrap(), 1);

    let mut decoder = engine::video::Decoder::open(&common::video("h264_gop250.mp4")).unwrap();
    let frames = vec![decoder.frame(3).unwrap(), decoder.frame(4).unwrap()];
    assert_unit_vectors(&embedder.embed_images(&frames).unwrap(), 2);

    let requests = server.requests.lock().unwrap();
    assert_eq!(
        requests[0].target,
        format!("/clip/embed_text?api_key={KEY}")
    );
    assert_eq!(
        requests[0].body,
        serde_json::json!({"text": ["wall", "tile wall"]})
    );
    // A single text goes as a plain string, as the old app sent it.
    assert_eq!(requests[1].body, serde_json::json!({"text": "one"}));
    assert_eq!(
        requests[2].target,
        format!("/clip/embed_image?api_key={KEY}")
    );
    let images = requests[2].body["image"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["type"], "base64");
    use base64::Engine as _;
    let jpeg = base64::engine::general_purpose::STANDARD
        .decode(images[1]["value"].as_str().unwrap())
        .unwrap();
    let image = engine::video::decode_image(&jpeg).unwrap();
    assert_eq!(
        testvideo::read_pattern(&image).unwrap(),
        4,
        "the frame sent is the frame asked for"
    );
}

#[test]
fn transient_server_errors_are_retried() {
    let server = FakeServer::start(Behaviour::FailFirst(2));
    assert_unit_vectors(&server.embedder().embed_texts(&texts(&["a"])).unwrap(), 1);
    assert_eq!(server.requests.lock().unwrap().len(), 3);
}

fn error_of(behaviour: Behaviour) -> (EmbedError, usize, Duration) {
    let server = FakeServer::start(behaviour);
    let started = Instant::now();
    let error = server
        .embedder()
        .embed_texts(&texts(&["a", "b"]))
        .unwrap_err();
    let elapsed = started.elapsed();
    let requests = server.requests.lock().unwrap().len();
    let message = error.to_string();
    assert!(
        !message.contains(KEY),
        "the API key must not appear in errors: {message}"
    );
    (error, requests, elapsed)
}

#[test]
fn a_server_that_keeps_failing_gives_up_after_the_attempts() {
    let (error, requests, _) = error_of(Behaviour::FailFirst(usize::MAX));
    assert!(
        matches!(error, EmbedError::Status { status: 500, .. }),
        "{error}"
    );
    assert_eq!(requests, 3);
}

#[test]
fn a_hanging_server_times_out() {
    let (error, requests, elapsed) = error_of(Behaviour::Hang);
    assert!(
        matches!(error, EmbedError::Timeout { attempts: 3, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("did not answer"), "{error}");
    assert_eq!(requests, 3);
    assert!(
        elapsed < Duration::from_secs(3),
        "3 tries of 0.5 s, took {elapsed:?}"
    );
}

#[test]
fn malformed_answers_are_errors_not_retries() {
    for (behaviour, expected) in [
        (Behaviour::MalformedJson, "expected {\"embeddings\""),
        (Behaviour::WrongLength, "length 511"),
        (Behaviour::WrongCount, "3 embeddings for 2 inputs"),
    ] {
        let (error, requests, _) = error_of(behaviour);
        assert!(matches!(error, EmbedError::Malformed { .. }), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
        assert_eq!(requests, 1);
    }
}

#[test]
fn a_rejected_key_is_not_retried_and_not_echoed() {
    let (error, requests, _) = error_of(Behaviour::Unauthorized);
    assert!(
        matches!(error, EmbedError::Status { status: 401, .. }),
        "{error}"
    );
    assert_eq!(requests, 1);
}

#[test]
fn no_server_says_to_check_that_it_runs() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = embedder_for(&format!("http://127.0.0.1:{port}"))
        .embed_texts(&texts(&["a"]))
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, EmbedError::Unreachable { .. }), "{message}");
    assert!(
        message.contains("Is it running") && message.contains(&port.to_string()),
        "{message}"
    );
    assert!(!message.contains(KEY));
}

#[test]
fn a_video_indexes_through_the_inference_server_in_batches_and_resumes() {
    let server = FakeServer::start(Behaviour::Correct);
    let embedder = server.embedder();
    let cache = tempfile::tempdir().unwrap();
    let options = engine::indexing::IndexOptions {
        sample_fps: Some(3.0),
        batch_size: 8,
        ..engine::indexing::IndexOptions::new(cache.path().to_path_buf())
    };
    let video =
        engine::indexing::VideoToIndex::open(&common::video("h264_gop250.mp4"), None).unwrap();
    let progress = engine::indexing::Progress::default();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let report =
        engine::indexing::index_video(&video, &embedder, &options, &progress, &cancel).unwrap();
    assert_eq!((report.planned, report.embedded), (30, 30));
    let images: Vec<usize> = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.target.starts_with("/clip/embed_image"))
        .map(|r| items(&r.body["image"]).len())
        .collect();
    assert_eq!(
        images,
        vec![8, 8, 8, 6],
        "frames go in batches of batch_size"
    );
    let again =
        engine::indexing::index_video(&video, &embedder, &options, &progress, &cancel).unwrap();
    assert_eq!((again.resumed, again.embedded), (30, 0));
}

#[test]
fn an_inference_server_that_keeps_failing_stops_indexing_with_its_reason() {
    let server = FakeServer::start(Behaviour::FailFirst(usize::MAX));
    let embedder = server.embedder();
    let cache = tempfile::tempdir().unwrap();
    let options = engine::indexing::IndexOptions {
        sample_fps: Some(1.0),
        ..engine::indexing::IndexOptions::new(cache.path().to_path_buf())
    };
    let video = engine::indexing::VideoToIndex::open(&common::video("mpeg2.mkv"), None).unwrap();
    let error = engine::indexing::index_video(
        &video,
        &embedder,
        &options,
        &engine::indexing::Progress::default(),
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("HTTP 500"), "{error}");
    assert!(
        !error.contains(KEY),
        "the key stays out of messages: {error}"
    );
}
