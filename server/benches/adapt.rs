//! Adapted prompts, measured:
//!
//! 1. Training: the nested 5-fold cross-validation with the λ grid, the adapter kept and its
//!    report, on 10^5 labelled frames x 512 (ViT-B/32's width; synthetic embeddings shaped
//!    like CLIP's: a large shared direction, one per scene, a little noise per frame, 40
//!    labelled segments whose frames lean towards a concept); the plain probe (from zero) and
//!    Tip-Adapter the same way; beside scikit-learn's `LogisticRegressionCV` on the same rows
//!    (5 folds x the same 4 λ, lbfgs, class-balanced; not nested, so it fits 5 x 4 + 1 models
//!    where ours fits 15 x 4 + 1) when `ADAPT_BENCH_PYTHON` names a Python with scikit-learn.
//! 2. Exactness: the probe against scikit-learn and the text-anchored probe against SciPy's
//!    L-BFGS-B on the goldens of `scripts/make_adapt_goldens.py`.
//! 3. The page: an hour of video (108,000 frames, its cache 512 wide), labels imported, then
//!    `POST /api/adapt` and polling until the adapter is stored, and `POST /api/scores` with the
//!    adapter: the adapted curve, from the click to its data in the browser.
//! 4. Effect: on the sample video with labels made by looking at it
//!    (`server/tests/fixtures/adapt/`), zero-shot against adapted AP out of fold, for every
//!    labelled prompt, with the tiny CLIP and a random-weight ViT-B/32.
//!
//!     cargo bench -p server --bench adapt
//!
//! The hour of video and the random ViT-B/32 are made on first run and kept.

#[path = "shared/timing.rs"]
mod timing;
#[path = "shared/vit_b32.rs"]
mod vit_b32;

use std::borrow::Cow;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use engine::adapt::probe::{Linear, Options, Probe, Rows, Spec};
use engine::adapt::{train, Training, TrainingRows};
use investigator_core::adapt::{AdaptRequest, Anchor, Method};
use store::cache::{CacheHeader, EmbeddingFile, ModelKey, VideoFingerprint, FORMAT_VERSION};
use timing::sorted_ms;

const FRAMES: usize = 100_000;
const DIM: usize = 512;

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }

    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| self.normal()).collect();
        engine::embed::l2_normalize(&mut v);
        v
    }
}

/// `frames` rows in scenes of 300 to 3,300 frames, every other one of the first 80 labelled
/// and shortened to 100 to 1,000 frames (about a fifth of the frames labelled), leaning towards a
/// concept; the text mixes the concept with the shared direction.
fn video_rows(frames: usize, dim: usize) -> (Vec<f32>, Vec<bool>, Vec<f32>) {
    let mut rng = Rng(0xADA97);
    let shared = rng.unit(dim);
    let concept = rng.unit(dim);
    let (mut rows, mut truth) = (Vec::with_capacity(frames * dim), Vec::with_capacity(frames));
    let mut scene_count = 0;
    while truth.len() < frames {
        let positive = scene_count % 2 == 1 && scene_count < 80;
        let len = if positive {
            (100.0 + rng.uniform() * 900.0) as usize
        } else {
            (300.0 + rng.uniform() * 3000.0) as usize
        };
        scene_count += 1;
        let scene = rng.unit(dim);
        for _ in 0..len.min(frames - truth.len()) {
            let mut v: Vec<f32> = (0..dim)
                .map(|k| {
                    0.8 * shared[k] + 0.6 * scene[k] + 0.15 * rng.normal() / (dim as f32).sqrt()
                })
                .collect();
            if positive {
                v.iter_mut().zip(&concept).for_each(|(x, c)| *x += 0.15 * c);
            }
            engine::embed::l2_normalize(&mut v);
            rows.extend(v);
            truth.push(positive);
        }
    }
    let mut text: Vec<f32> = (0..dim)
        .map(|k| 0.3 * concept[k] + 0.5 * shared[k] + 0.05 * rng.normal())
        .collect();
    engine::embed::l2_normalize(&mut text);
    (rows, truth, text)
}

fn training<'a>(
    rows: &'a [f32],
    truth: &[bool],
    text: &[f32],
    method: Method,
    from: Anchor,
) -> Training<'a> {
    let n = truth.len();
    Training {
        rows: TrainingRows {
            vectors: Cow::Borrowed(rows),
            dim: DIM,
            truth: truth.to_vec(),
            video: vec![0; n],
            frame: (0..n as u64).collect(),
            stretch: vec![0; n],
            videos: vec![("synthetic".into(), 30.0)],
        },
        text: text.to_vec(),
        logit_scale: 100.0,
        request: AdaptRequest {
            method,
            from,
            ..AdaptRequest::new("a concept")
        },
        hold_out: None,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
    }
}

fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn main() {
    let (cpu, flags) = engine::precision::cpu();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("CPU: {cpu} ({threads} threads; flags: {})", flags.join(" "));
    println!();
    // ADAPT_BENCH_ONLY=training|exactness|page|effect runs one part.
    let only = std::env::var("ADAPT_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    if run("training") {
        training_speed();
    }
    if run("exactness") {
        exactness();
    }
    if run("page") {
        page_end_to_end();
    }
    if run("effect") {
        effect();
    }
}

fn training_speed() {
    println!("## 1. Training on {FRAMES} labelled frames x {DIM}: 5 blocked folds, nested, the λ grid (4), the adapter and its report");
    println!();
    let started = Instant::now();
    let (rows, truth, text) = video_rows(FRAMES, DIM);
    println!(
        "({} positive frames in 40 segments; rows made in {:.1} s)",
        truth.iter().filter(|&&t| t).count(),
        started.elapsed().as_secs_f64()
    );
    println!();
    if std::env::var("ADAPT_BENCH_PHASES").is_ok() {
        // Where one training's time goes, phase by phase.
        let t = training(&rows, &truth, &text, Method::Probe, Anchor::Text);
        let start = Instant::now();
        let last = std::cell::Cell::new(0.0f64);
        train(&t, &|phase, _| {
            let now = start.elapsed().as_secs_f64();
            println!("  {:>6.3} s (+{:.3}) {phase}", now, now - last.get());
            last.set(now);
        })
        .unwrap();
    }
    println!("| what | s: median (min–max) of 3 | models fitted | zero-shot AP | adapted AP (out of fold) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, method, from) in [
        (
            "probe held near the text (default)",
            Method::Probe,
            Anchor::Text,
        ),
        (
            "probe from zero (scikit-learn's)",
            Method::Probe,
            Anchor::Zero,
        ),
        (
            "Tip-Adapter (5 β x 5 weights, 1,024 keys)",
            Method::Tip,
            Anchor::Text,
        ),
    ] {
        let t = training(&rows, &truth, &text, method, from);
        let mut report = None;
        let ms = sorted_ms(3, || report = Some(train(&t, &|_, _| {}).unwrap().report));
        let report = report.unwrap();
        let fitted = match method {
            Method::Probe => "15 x 4 + 1",
            Method::Tip => "none",
        };
        println!(
            "| {name} | {:.2} ({:.2}–{:.2}) | {fitted} | {:.3} | {:.3} |",
            ms[1] / 1000.0,
            ms[0] / 1000.0,
            ms[2] / 1000.0,
            report.zero_shot.ap.unwrap_or(f64::NAN),
            report.adapted.ap.unwrap_or(f64::NAN),
        );
    }
    // The peer: scikit-learn on the same rows (written as .npy for it).
    match std::env::var("ADAPT_BENCH_PYTHON") {
        Ok(python) => {
            let dir = target().join("bench-adapt");
            std::fs::create_dir_all(&dir).unwrap();
            write_npy_f32(&dir.join("rows.npy"), &rows, &[FRAMES, DIM]);
            let labels: Vec<f32> = truth.iter().map(|&t| f32::from(u8::from(t))).collect();
            write_npy_f32(&dir.join("truth.npy"), &labels, &[FRAMES]);
            let plan = investigator_core::adapt::folds::plan(&truth, &vec![0; FRAMES], None).unwrap();
            let folds: Vec<f32> = plan.row_fold.iter().map(|&f| f32::from(f)).collect();
            write_npy_f32(&dir.join("folds.npy"), &folds, &[FRAMES]);
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench_adapt_sklearn.py");
            let out = Command::new(python).arg(script).arg(&dir).output().unwrap();
            print!("{}", String::from_utf8_lossy(&out.stdout));
            if !out.status.success() {
                println!("(scikit-learn peer failed: {})", String::from_utf8_lossy(&out.stderr));
            }
        }
        Err(_) => println!("| scikit-learn `LogisticRegressionCV` | (set ADAPT_BENCH_PYTHON to a Python with scikit-learn) | | | |"),
    }
    println!();
}

fn write_npy_f32(path: &Path, values: &[f32], shape: &[usize]) {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (header.len() + 11) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

fn exactness() {
    println!("## 2. Exactness on the goldens (scripts/make_adapt_goldens.py: 600 rows x 64)");
    println!();
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../engine/tests/fixtures/adapt/goldens.json"),
    )
    .unwrap();
    let g: serde_json::Value = serde_json::from_str(&text).unwrap();
    let dim = g["dim"].as_u64().unwrap() as usize;
    let rows: Vec<f32> = g["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect();
    let truth: Vec<bool> = g["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_bool().unwrap())
        .collect();
    let t: Vec<f32> = g["text"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let fold = vec![0u8; truth.len()];
    println!("| case | reference | weights, relative error | bias, relative error |");
    println!("| --- | --- | ---: | ---: |");
    for case in g["cases"].as_array().unwrap() {
        let lambda = case["lambda"].as_f64().unwrap();
        let scale = case["scale"].as_f64().unwrap();
        let anchor: Vec<f32> = t.iter().map(|&x| (f64::from(x) * scale) as f32).collect();
        let probe = Probe::new(
            Rows {
                vectors: &rows,
                dim,
                truth: &truth,
                fold: &fold,
            },
            &anchor,
        );
        let fitted: Linear = probe
            .fit(
                &[Spec {
                    excluded: 0,
                    lambda,
                    start: None,
                }],
                &Options::default(),
            )
            .remove(0)
            .unwrap()
            .model;
        let w: Vec<f64> = case["weight"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let b = case["bias"].as_f64().unwrap();
        let error = w
            .iter()
            .zip(&fitted.weight)
            .map(|(a, c)| (a - c) * (a - c))
            .sum::<f64>()
            .sqrt()
            / w.iter().map(|a| a * a).sum::<f64>().sqrt();
        let reference = if case["from"] == "zero" {
            "scikit-learn LogisticRegression"
        } else {
            "SciPy L-BFGS-B"
        };
        println!(
            "| {} | {reference} | {error:.1e} | {:.1e} |",
            case["name"].as_str().unwrap(),
            (fitted.bias - b).abs() / b.abs().max(1.0)
        );
    }
    println!();
}

/// A minimal HTTP/1.1 client: POST a JSON body, read the whole answer.
fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, Vec<u8>) {
    post_as(addr, path, "application/json", body)
}

fn post_as(addr: SocketAddr, path: &str, content_type: &str, body: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = answer[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[line + 2..line + 2 + size]);
        data = &data[line + 4 + size..];
    }
}

fn page_end_to_end() {
    println!("## 3. The page: an hour of video (108,000 frames, a cache 512 wide), Adapt clicked until the adapted curve's data is in");
    println!();
    let bin = target().join("release/clip-investigator");
    if !bin.exists() {
        println!("(skipped: build the release binary first, `cargo leptos build --release`)\n");
        return;
    }
    let dir = target().join("bench-adapt");
    std::fs::create_dir_all(&dir).unwrap();
    let video = dir.join("hour.mp4");
    if !video.exists() {
        let made = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=256x144:rate=30",
                "-t",
                "3600",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "250",
            ])
            .arg(&video)
            .status()
            .unwrap();
        assert!(made.success());
    }
    let model = vit_b32::model_folder();
    let embeddings = dir.join("embeddings");
    let _ = std::fs::remove_dir_all(&embeddings);
    std::fs::create_dir_all(&embeddings).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(&config, format!("video_path: {video:?}\nmodel: {model:?}\nembeddings_dir: {embeddings:?}\nCLIP:\n  - a concept\n")).unwrap();
    // The hour's cache, written as the index would have: the model's key, the video's content.
    let mut settings = store::config::Settings::default();
    settings.set_model(model.to_string_lossy().into_owned());
    let identity = engine::precision::load_lazy(&settings).unwrap().identity();
    let frame_index = engine::video::FrameIndex::load_or_build(&video, Some(&embeddings)).unwrap();
    let frames = frame_index.frames() as usize;
    let (rows, truth, _) = video_rows(frames, DIM);
    let mut file = EmbeddingFile::new(CacheHeader {
        format_version: FORMAT_VERSION,
        model: ModelKey::from(&identity),
        video: VideoFingerprint::of_file(&video).unwrap(),
        sample_fps_millis: None,
        video_frames: frames as u64,
        video_fps_micros: 30_000_000,
    });
    for n in 0..frames {
        file.push_embedded(n as u64, &rows[n * DIM..(n + 1) * DIM]);
    }
    file.save(&embeddings.join(EmbeddingFile::file_name(&file.header)))
        .unwrap();
    // The labels: the synthetic scenes' labelled segments.
    let mut csv = String::from("prompt,start_frame,end_frame\n");
    let mut start = None;
    for (n, &t) in truth.iter().chain([&false]).enumerate() {
        match (t, start) {
            (true, None) => start = Some(n),
            (false, Some(s)) => {
                csv.push_str(&format!("a concept,{s},{}\n", n - 1));
                start = None;
            }
            _ => {}
        }
    }
    let labels = dir.join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    let status = Command::new(&bin)
        .args([
            "labels",
            video.to_str().unwrap(),
            "--import",
            labels.to_str().unwrap(),
            "--replace",
            "--config",
            config.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = Command::new(&bin)
        .args([
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--addr",
            &addr.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let info = loop {
        if let Ok(mut s) = TcpStream::connect(addr) {
            drop(s.flush());
            let (code, body) = post_as(
                addr,
                "/api/video_info",
                "application/x-www-form-urlencoded",
                "",
            );
            if code == 200 {
                break serde_json::from_slice::<serde_json::Value>(&body).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let id = info["id"].as_str().unwrap().to_string();
    // Wait for the model and the (complete) cache.
    loop {
        let (_, body) = post_as(
            addr,
            "/api/index_status",
            "application/x-www-form-urlencoded",
            &format!("video={id}"),
        );
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if status["state"] == "Done" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut rows_out = Vec::new();
    for round in 0..3 {
        let clicked = Instant::now();
        let request = format!("{{\"video\":\"{id}\",\"model\":null,\"request\":{{\"prompt\":\"a concept\",\"method\":\"probe\",\"from\":\"text\",\"folds\":null,\"hold_out_video\":null}}}}");
        let (code, body) = post(addr, "/api/adapt", &request);
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let report = loop {
            let (_, body) = post(
                addr,
                "/api/adapt_status",
                &format!("{{\"video\":\"{id}\",\"model\":null,\"prompt\":\"a concept\"}}"),
            );
            let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
            if let Some(done) = status.get("Done") {
                break done["report"].clone();
            }
            assert!(status.get("Failed").is_none(), "{status}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let trained = clicked.elapsed();
        let adapter = report["id"].as_str().unwrap();
        let (code, body) = post(addr, "/api/scores", &format!("{{\"video\":\"{id}\",\"model\":null,\"prompts\":[\"a concept\"],\"adapters\":[\"{adapter}\"]}}"));
        assert_eq!(code, 200);
        let total = clicked.elapsed();
        rows_out.push((
            round,
            trained,
            total,
            body.len(),
            report["seconds"].as_f64().unwrap(),
        ));
    }
    let _ = server.kill();
    let _ = server.wait();
    println!("| run | training job (s, the report's own) | click to stored adapter (s) | click to the adapted curve's data (s) | scores answer (MB) |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for (round, trained, total, bytes, seconds) in rows_out {
        println!(
            "| {} | {seconds:.2} | {:.2} | {:.2} | {:.1} |",
            round + 1,
            trained.as_secs_f64(),
            total.as_secs_f64(),
            bytes as f64 / 1e6
        );
    }
    println!("(run 1 includes the first text embedding and loading the cache into the library; the server polls at 100 ms)\n");
}

fn effect() {
    println!("## 4. Effect on the sample video (labels made by looking at it), out of fold");
    println!();
    let bin = target().join("release/clip-investigator");
    if !bin.exists() {
        println!("(skipped: build the release binary first)\n");
        return;
    }
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/sample.mp4");
    let labels =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adapt/sample-labels.csv");
    let prompts = [
        "a greyscale picture",
        "a dark picture",
        "a warm red or orange picture",
        "space",
        "an animal or a plant",
        "a man-made object",
    ];
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    println!("| model | prompt | segments | zero-shot AP | probe AP | difference [95 %] | Tip-Adapter AP |");
    println!("| --- | --- | ---: | ---: | ---: | --- | ---: |");
    for (name, model) in [
        ("tiny CLIP (16 wide)", tiny),
        ("ViT-B/32, random weights", vit_b32::model_folder()),
    ] {
        let dir = target().join(format!(
            "bench-adapt/effect-{}",
            model.file_name().unwrap().to_string_lossy()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "video_path: {sample:?}\nmodel: {model:?}\nembeddings_dir: {:?}\n",
                dir.join("embeddings")
            ),
        )
        .unwrap();
        let run = |args: &[&str]| -> serde_json::Value {
            let out = Command::new(&bin)
                .args(args)
                .arg("--config")
                .arg(&config)
                .env("RUST_LOG", "warn")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
        };
        let v = sample.to_str().unwrap();
        run(&["index", v, "--json"]);
        run(&[
            "labels",
            v,
            "--import",
            labels.to_str().unwrap(),
            "--replace",
        ]);
        for prompt in prompts {
            let probe = run(&["adapt", v, "--prompt", prompt, "--json"]);
            let tip = run(&["adapt", v, "--prompt", prompt, "--method", "tip", "--json"]);
            let d = &probe["ap_difference"];
            println!(
                "| {name} | {prompt} | {} | {:.3} | {:.3} | {:+.3} [{:+.3}, {:+.3}] | {:.3} |",
                probe["train"]["positive_segments"],
                probe["zero_shot"]["ap"].as_f64().unwrap_or(f64::NAN),
                probe["adapted"]["ap"].as_f64().unwrap_or(f64::NAN),
                d["point"].as_f64().unwrap_or(f64::NAN),
                d["low"].as_f64().unwrap_or(f64::NAN),
                d["high"].as_f64().unwrap_or(f64::NAN),
                tip["adapted"]["ap"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    println!();
}
