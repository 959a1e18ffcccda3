//! CLIP embedding as a user drives it: `index`, `scores`, `search`, `export`, `cache` with the
//! tiny random-weight CLIP fixture, crash recovery (`kill -9`), bad models, bad prompts and
//! damaged cache files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{video, FRAMES};
use engine::embed::local::LocalClip;
use engine::embed::Embedder;

const BIN: &str = env!("CARGO_BIN_EXE_clip-investigator");

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip")
}

/// A config in a fresh folder: the tiny model, a private embeddings folder, two prompts.
/// (`moments.rs` uses it too.)
pub(crate) struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.yaml"),
            format!(
                "roboflow_api_key: \"\"\nvideo_path: video.mp4\nCLIP:\n  - a brick wall\n  - grass\nmodel: {:?}\n",
                fixture()
            ),
        )
        .unwrap();
        Self { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// Adds `lines` (YAML settings) to the config.
    pub(crate) fn add_to_config(&self, lines: &str) {
        let config = std::fs::read_to_string(self.config()).unwrap();
        std::fs::write(self.config(), config + lines).unwrap();
    }

    pub(crate) fn embeddings(&self) -> PathBuf {
        self.dir.path().join("embeddings")
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .arg("--config")
            .arg(self.config())
            .env("RUST_LOG", "warn")
            .env("HF_HUB_OFFLINE", "1");
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub(crate) fn run_json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.run(args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&output.stdout))
        })
    }

    pub(crate) fn cache_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.embeddings())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with("texts-") && name.ends_with(".clipemb")
        });
        files
    }
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn floats(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn index_then_scores_search_and_export_answer_from_the_cache() {
    let ws = Workspace::new();
    let path = video("mpeg2.mkv");
    let video_arg = path.to_str().unwrap();

    let first = ws.run_json(&["index", video_arg, "--json"]);
    assert_eq!(first["planned"], FRAMES);
    assert_eq!(first["embedded"], FRAMES);
    assert_eq!(first["resumed"], 0);
    // An indexed video costs no embedding the second time.
    let again = ws.run_json(&["index", video_arg, "--json"]);
    assert_eq!(
        (again["embedded"].as_u64(), again["resumed"].as_u64()),
        (Some(0), Some(FRAMES))
    );

    let scores = ws.run_json(&[
        "scores",
        video_arg,
        "--prompt",
        "a brick wall",
        "--prompt",
        "grass",
        "--json",
    ]);
    assert_eq!(scores["fps"], 30.0);
    assert_eq!(scores["frames"].as_array().unwrap().len() as u64, FRAMES);
    let wall = floats(&scores["scores"]["a brick wall"]);
    assert_eq!(wall.len() as u64, FRAMES);

    // The cached score of a frame equals embedding that frame and the prompt directly.
    let clip = LocalClip::load(&fixture()).unwrap();
    let text = clip
        .embed_texts(&["a brick wall".to_string()])
        .unwrap()
        .remove(0);
    let mut decoder = engine::video::Decoder::open(&path).unwrap();
    for n in [0u64, 1, 137, FRAMES - 1] {
        let frame = decoder.frame(n).unwrap();
        let image = clip
            .embed_images(std::slice::from_ref(&frame))
            .unwrap()
            .remove(0);
        let expected = dot(&image, &text);
        assert!(
            (wall[n as usize] - expected).abs() < 1e-5,
            "frame {n}: {} vs {expected}",
            wall[n as usize]
        );
    }

    // Softmax over prompts: probabilities that sum to one per frame.
    let soft = ws.run_json(&["scores", video_arg, "--softmax", "--json"]);
    let (a, b) = (
        floats(&soft["scores"]["a brick wall"]),
        floats(&soft["scores"]["grass"]),
    );
    assert!(a.iter().zip(&b).all(|(x, y)| (x + y - 1.0).abs() < 1e-5));
    // Smoothing keeps the length and averages neighbours.
    let smooth = ws.run_json(&[
        "scores",
        video_arg,
        "--prompt",
        "a brick wall",
        "--smooth",
        "5",
        "--json",
    ]);
    let smoothed = floats(&smooth["scores"]["a brick wall"]);
    let mean: f32 = wall[8..13].iter().sum::<f32>() / 5.0;
    assert!((smoothed[10] - mean).abs() < 1e-5);

    // Searching with a frame's own image finds that frame first.
    let dir = tempfile::tempdir().unwrap();
    let still = dir.path().join("still.png");
    let frame = decoder.frame(200).unwrap();
    opencv::imgcodecs::imwrite_def(still.to_str().unwrap(), &frame).unwrap();
    let found = ws.run_json(&[
        "search",
        video_arg,
        "--image",
        still.to_str().unwrap(),
        "--top",
        "5",
        "--json",
    ]);
    let results = found["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["frame"], 200);
    assert!((results[0]["time_s"].as_f64().unwrap() - 200.0 / 30.0).abs() < 1e-9);
    let frames: Vec<i64> = results
        .iter()
        .map(|r| r["frame"].as_i64().unwrap())
        .collect();
    for (i, a) in frames.iter().enumerate() {
        for b in &frames[i + 1..] {
            assert!(
                (a - b).abs() >= 30,
                "results within a second of each other: {frames:?}"
            );
        }
    }
    let by_text = ws.run_json(&[
        "search", video_arg, "--text", "grass", "--top", "3", "--json",
    ]);
    let grass = floats(&scores["scores"]["grass"]);
    let best = grass.iter().cloned().fold(f32::MIN, f32::max);
    assert!((by_text["results"][0]["score"].as_f64().unwrap() as f32 - best).abs() < 1e-6);

    // Exports: CSV rows per frame, JSON like `scores`, and an .npy of the raw embeddings.
    let csv = dir.path().join("scores.csv");
    let output = ws.run(&[
        "export",
        video_arg,
        "--format",
        "csv",
        "-o",
        csv.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "frame,time_s,a brick wall,grass");
    assert_eq!(lines.len() as u64, FRAMES + 1);
    let row: Vec<f32> = lines[138].split(',').map(|v| v.parse().unwrap()).collect();
    assert_eq!(row[0], 137.0);
    assert!((row[2] - wall[137]).abs() < 1e-6);
    let npy = dir.path().join("emb.npy");
    let output = ws.run(&[
        "export",
        video_arg,
        "--format",
        "npy",
        "-o",
        npy.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + header_len]);
    let dim = clip.identity().dimension;
    assert!(
        header.contains(&format!("'shape': ({FRAMES}, {dim})")),
        "{header}"
    );
    assert_eq!(bytes.len(), 10 + header_len + FRAMES as usize * dim * 4);

    // cache list shows the file; cache clear removes it.
    let list = ws.run(&["cache", "list"]);
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(
        listing.contains(&format!("{FRAMES} frames of a {FRAMES}-frame video")),
        "{listing}"
    );
    let clear = ws.run(&["cache", "clear"]);
    assert!(clear.status.success());
    assert!(ws.cache_files().is_empty());
}

#[test]
fn scores_compare_two_models_frame_by_frame() {
    // tiny-clip and tiny-clip-gelu: the same weights with another activation, a base and its
    // variant. Each indexes the video into its own cache file.
    let ws = Workspace::new();
    let path = video("mpeg2.mkv");
    let video_arg = path.to_str().unwrap();
    let gelu = fixture().with_file_name("tiny-clip-gelu");
    let (base, variant) = (fixture(), gelu);
    let (base, variant) = (base.to_str().unwrap(), variant.to_str().unwrap());
    for model in [base, variant] {
        let report = ws.run_json(&["index", video_arg, "--model", model, "--json"]);
        assert_eq!(report["embedded"], FRAMES, "{model}");
    }
    assert_eq!(ws.cache_files().len(), 2, "one cache file per model");
    let alone = |model: &str| {
        let one = ws.run_json(&[
            "scores", video_arg, "--model", model, "--prompt", "grass", "--json",
        ]);
        floats(&one["scores"]["grass"])
    };
    let (a, b) = (alone(base), alone(variant));
    let both = ws.run_json(&[
        "scores", video_arg, "--model", base, "--model", variant, "--prompt", "grass", "--json",
    ]);
    let models = both["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["model"], "tiny-clip");
    assert_eq!(models[1]["model"], "tiny-clip-gelu");
    assert!(models.iter().all(|m| m["view"] == "cosine"), "{models:?}");
    assert_eq!(floats(&models[0]["scores"]["grass"]), a);
    assert_eq!(floats(&models[1]["scores"]["grass"]), b);
    let difference = floats(&both["difference"]["grass"]);
    assert_eq!(difference.len() as u64, FRAMES);
    for (n, d) in difference.iter().enumerate() {
        assert_eq!(*d, a[n] - b[n], "frame {n}");
    }
    assert!(
        difference.iter().any(|d| d.abs() > 1e-6),
        "the two models differ somewhere"
    );
    // Other commands take one model, and say so.
    let output = ws.run(&["index", video_arg, "--model", base, "--model", variant]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("only `scores` compares several models"));
}

/// `scores --probabilities` gives the model's own probabilities: SigLIP's sigmoid of each
/// prompt's scaled and shifted cosine (not a softmax across the prompts).
#[test]
fn siglip_probabilities_are_a_sigmoid_per_prompt() {
    let ws = Workspace::new();
    let path = video("mpeg2.mkv");
    let video_arg = path.to_str().unwrap();
    let siglip = fixture().with_file_name("tiny-siglip");
    let model = siglip.to_str().unwrap();
    ws.run_json(&["index", video_arg, "--model", model, "--json"]);
    let scores = |extra: &[&str]| {
        let mut args = vec![
            "scores", video_arg, "--model", model, "--prompt", "grass", "--prompt", "a wall",
            "--json",
        ];
        args.extend_from_slice(extra);
        ws.run_json(&args)
    };
    let (cosine, probability) = (scores(&[]), scores(&["--probabilities"]));
    assert_eq!(
        (cosine["view"].as_str(), probability["view"].as_str()),
        (Some("cosine"), Some("sigmoid"))
    );
    let goldens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(siglip.join("goldens.json")).unwrap())
            .unwrap();
    let (scale, bias) = (
        goldens["logit_scale"].as_f64().unwrap() as f32,
        goldens["logit_bias"].as_f64().unwrap() as f32,
    );
    let mut sums_to_one = true;
    for prompt in ["grass", "a wall"] {
        let (c, p) = (
            floats(&cosine["scores"][prompt]),
            floats(&probability["scores"][prompt]),
        );
        assert_eq!(c.len() as u64, FRAMES);
        for (c, p) in c.iter().zip(&p) {
            let expected = 1.0 / (1.0 + (-(scale * c + bias)).exp());
            assert!(
                (p - expected).abs() <= 1e-6 * expected.max(1e-3),
                "{p} vs {expected}"
            );
        }
    }
    let (g, w) = (
        floats(&probability["scores"]["grass"]),
        floats(&probability["scores"]["a wall"]),
    );
    sums_to_one &= g.iter().zip(&w).all(|(a, b)| (a + b - 1.0).abs() < 1e-3);
    assert!(
        !sums_to_one,
        "a sigmoid per prompt, not a softmax across them"
    );
}

#[test]
fn sampling_embeds_fewer_frames_and_fills_the_rest() {
    let ws = Workspace::new();
    let path = video("h264_gop250.mp4");
    let video_arg = path.to_str().unwrap();
    let report = ws.run_json(&["index", video_arg, "--sample-fps", "3", "--json"]);
    assert_eq!(report["planned"], 30);
    let scores = ws.run_json(&[
        "scores",
        video_arg,
        "--sample-fps",
        "3",
        "--prompt",
        "grass",
        "--json",
    ]);
    let values = floats(&scores["scores"]["grass"]);
    assert_eq!(values.len() as u64, FRAMES);
    // Frames 0..=5 take frame 0's score, 6..=15 frame 10's.
    assert!(values[..=5].iter().all(|v| *v == values[0]));
    assert!(values[6..=15].iter().all(|v| *v == values[10]));
    assert_ne!(values[0], values[10]);
    // Another sampling is another index: not answered from this one.
    let output = ws.run(&["scores", video_arg, "--prompt", "grass", "--json"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("clip-investigator index"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_killed_index_resumes_from_its_last_checkpoint() {
    let ws = Workspace::new();
    let path = video("vp9.webm");
    let video_arg = path.to_str().unwrap();
    let mut child = ws
        .command(&[
            "index",
            video_arg,
            "--json",
            "--batch-size",
            "1",
            "--checkpoint-secs",
            "0.05",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while ws.cache_files().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no checkpoint written"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    // SIGKILL: no chance to save anything more.
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = ws.run_json(&["index", video_arg, "--json", "--batch-size", "1"]);
    let (before, now) = (
        resumed["resumed"].as_u64().unwrap(),
        resumed["embedded"].as_u64().unwrap(),
    );
    eprintln!("kill -9 after the first checkpoint: {before} frames kept, {now} embedded on resume");
    assert!(
        before > 0 && before < FRAMES,
        "kill landed mid-run: {before}"
    );
    assert_eq!(before + now, FRAMES);
    // No stray temporary files, and the result equals an uninterrupted run.
    let names: Vec<String> = std::fs::read_dir(ws.embeddings())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains(".tmp-") || n.starts_with('.')),
        "{names:?}"
    );
    let resumed_scores = ws.run_json(&["scores", video_arg, "--prompt", "grass", "--json"]);
    let clean = Workspace::new();
    clean.run_json(&["index", video_arg, "--json", "--batch-size", "1"]);
    let clean_scores = clean.run_json(&["scores", video_arg, "--prompt", "grass", "--json"]);
    assert_eq!(resumed_scores["scores"], clean_scores["scores"]);
}

#[test]
fn damaged_cache_files_are_moved_aside_and_rebuilt() {
    let ws = Workspace::new();
    let path = video("mpeg2.mkv");
    let video_arg = path.to_str().unwrap();
    ws.run_json(&["index", video_arg, "--json", "--sample-fps", "5"]);
    let cache = ws.cache_files().pop().unwrap();
    let good = std::fs::read(&cache).unwrap();
    for (what, bytes) in [
        ("truncated mid-write", good[..good.len() / 2].to_vec()),
        ("garbage", b"not a cache file at all".repeat(100)),
    ] {
        std::fs::write(&cache, &bytes).unwrap();
        let output = ws.run(&["index", video_arg, "--json", "--sample-fps", "5"]);
        assert!(output.status.success(), "{what}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("moved aside"),
            "{what}: {}",
            stderr(&output)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["embedded"], 50, "{what}: rebuilt");
        assert_eq!(
            std::fs::read(&cache).unwrap(),
            good,
            "{what}: same embeddings again"
        );
    }
    let kept: Vec<PathBuf> = std::fs::read_dir(ws.embeddings())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".bad-"))
        .collect();
    assert_eq!(kept.len(), 2, "damaged files are kept for inspection");
}

/// A copy of the fixture with one file replaced (or removed when `contents` is None).
fn broken_model(file: &str, contents: Option<&[u8]>) -> tempfile::TempDir {
    broken_copy(&fixture(), file, contents)
}

/// A copy of the model folder `from` with `file` replaced by `contents` (or removed).
fn broken_copy(from: &Path, file: &str, contents: Option<&[u8]>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    match contents {
        Some(bytes) => std::fs::write(dir.path().join(file), bytes).unwrap(),
        None => std::fs::remove_file(dir.path().join(file)).unwrap(),
    }
    dir
}

fn index_with_model(model: &Path) -> String {
    let ws = Workspace::new();
    let output = ws.run(&[
        "index",
        video("mpeg2.mkv").to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    stderr(&output)
}

#[test]
fn bad_models_are_refused_with_what_to_do() {
    let missing = broken_model("model.safetensors", None);
    let error = index_with_model(missing.path());
    assert!(
        error.contains("lacks model.safetensors") && error.contains("--model"),
        "{error}"
    );

    let config = std::fs::read_to_string(fixture().join("config.json")).unwrap();
    // An activation no CLIP checkpoint uses: refused, naming it and those that work.
    let relu = config.replace("quick_gelu", "relu");
    assert_ne!(relu, config);
    let unsupported = broken_model("config.json", Some(relu.as_bytes()));
    let error = index_with_model(unsupported.path());
    assert!(
        error.contains("\"relu\"") && error.contains("quick_gelu") && error.contains("gelu"),
        "{error}"
    );

    // Another family: named, with what works.
    let mut bert: serde_json::Value = serde_json::from_str(&config).unwrap();
    bert["model_type"] = serde_json::json!("bert");
    let other_family = broken_model("config.json", Some(bert.to_string().as_bytes()));
    let error = index_with_model(other_family.path());
    assert!(
        error.contains("\"bert\", not a CLIP or SigLIP model"),
        "{error}"
    );
    // A SigLIP whose text embedding would not have the image embedding's size.
    let siglip_dir = fixture().parent().unwrap().join("tiny-siglip");
    let siglip = std::fs::read_to_string(siglip_dir.join("config.json")).unwrap();
    let mut mismatch: serde_json::Value = serde_json::from_str(&siglip).unwrap();
    mismatch["text_config"]["projection_size"] = serde_json::json!(16);
    let mismatched = broken_copy(
        &siglip_dir,
        "config.json",
        Some(mismatch.to_string().as_bytes()),
    );
    let error = index_with_model(mismatched.path());
    assert!(
        error.contains("shape mismatch")
            && error.contains("projection_size is 16")
            && error.contains("hidden_size is 32"),
        "{error}"
    );

    // A processor whose images do not fit the tower.
    let processor = std::fs::read_to_string(siglip_dir.join("preprocessor_config.json")).unwrap();
    let bigger = processor.replace("\"height\": 32", "\"height\": 48");
    assert_ne!(bigger, processor);
    let misfit = broken_copy(
        &siglip_dir,
        "preprocessor_config.json",
        Some(bigger.as_bytes()),
    );
    let error = index_with_model(misfit.path());
    assert!(
        error.contains("32x48 images") && error.contains("takes 32x32"),
        "{error}"
    );

    // Weights of another shape than config.json says.
    let mut value: serde_json::Value = serde_json::from_str(&config).unwrap();
    value["vision_config"]["intermediate_size"] = serde_json::json!(48);
    let wrong_shapes = broken_model("config.json", Some(value.to_string().as_bytes()));
    let error = index_with_model(wrong_shapes.path());
    assert!(
        error.contains("cannot load the weights") && error.contains("shape"),
        "{error}"
    );

    let garbage_weights = broken_model(
        "model.safetensors",
        Some(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}"),
    );
    let error = index_with_model(garbage_weights.path());
    assert!(error.contains("cannot load the weights"), "{error}");

    let no_tokenizer = broken_model("tokenizer.json", None);
    let error = index_with_model(no_tokenizer.path());
    assert!(error.contains("lacks tokenizer.json"), "{error}");
    let bad_tokenizer = broken_model("tokenizer.json", Some(b"{\"model\": 42"));
    let error = index_with_model(bad_tokenizer.path());
    assert!(error.contains("cannot load the tokenizer"), "{error}");

    // A Hub id that is not cached, offline: which files to put where.
    let ws = Workspace::new();
    let output = ws
        .command(&[
            "index",
            video("mpeg2.mkv").to_str().unwrap(),
            "--model",
            "openai/clip-vit-base-patch32",
        ])
        .env("HF_HOME", ws.dir.path().join("hf"))
        .output()
        .unwrap();
    let error = stderr(&output);
    assert!(!output.status.success());
    for expected in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "refs%2Fpr%2F15",
        "--model",
    ] {
        assert!(error.contains(expected), "{expected}: {error}");
    }
}

#[test]
fn prompts_from_empty_to_huge() {
    let ws = Workspace::new();
    let path = video("mpeg2.mkv");
    let video_arg = path.to_str().unwrap();
    ws.run_json(&["index", video_arg, "--json", "--sample-fps", "1"]);
    let scores = |prompts: &[&str]| {
        let mut args = vec!["scores", video_arg, "--sample-fps", "1", "--json"];
        for p in prompts {
            args.extend(["--prompt", p]);
        }
        ws.run(&args)
    };
    for bad in ["", "   \t "] {
        let output = scores(&[bad]);
        assert!(!output.status.success());
        assert!(
            stderr(&output).contains("prompt 1 is empty"),
            "{}",
            stderr(&output)
        );
    }
    // A prompt far past 77 tokens is cut, and the user is told.
    let long = "a very long prompt about a brick wall ".repeat(300);
    let long = &long[..10_000];
    let output = scores(&[long, "grass"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("longer than CLIP's 77 tokens"),
        "{}",
        stderr(&output)
    );
    let too_long = "x".repeat(10_001);
    let output = scores(&[&too_long]);
    assert!(!output.status.success() && stderr(&output).contains("at most 10000"));

    // 1,000 prompts in one call: all answered, each with its own series.
    let many: Vec<String> = (0..1000).map(|i| format!("prompt number {i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let output = scores(&refs);
    assert!(output.status.success(), "{}", stderr(&output));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(value["scores"].as_object().unwrap().len(), 1000);
    assert_ne!(
        value["scores"]["prompt number 1"],
        value["scores"]["prompt number 2"]
    );
}

#[test]
fn skipping_similar_frames_reuses_vectors_and_records_which() {
    let ws = Workspace::new();
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/sample.mp4");
    let video_arg = sample.to_str().unwrap();
    let skipping = ws.run_json(&["index", video_arg, "--skip-similar", "3", "--json"]);
    let (planned, embedded, reused) = (
        skipping["planned"].as_u64().unwrap(),
        skipping["embedded"].as_u64().unwrap(),
        skipping["reused"].as_u64().unwrap(),
    );
    assert_eq!(embedded + reused, planned);
    assert!(
        reused > planned / 10 && embedded > 0,
        "the sample video has still stretches: {skipping}"
    );
    let every = ws.run_json(&["index", video_arg, "--json"]);
    assert_eq!(every["reused"], 0);
    assert_eq!(every["embedded"].as_u64(), Some(planned));

    // Two cache files; the skipping one records which frames reused the previous vector.
    let skip_path = PathBuf::from(skipping["cache"].as_str().unwrap());
    let every_path = PathBuf::from(every["cache"].as_str().unwrap());
    assert_ne!(skip_path, every_path);
    let skip_file = store::cache::EmbeddingFile::peek(&skip_path).unwrap();
    let every_file = store::cache::EmbeddingFile::peek(&every_path).unwrap();
    assert!(every_file.skip.is_none());
    let record = skip_file.skip.as_ref().unwrap();
    assert_eq!(record.threshold_milli_levels, 3000);
    assert_eq!(record.reused.len() as u64, reused);
    let d = skip_file.dimension();
    let row = |f: &store::cache::EmbeddingFile, n: u64| {
        f.vectors[n as usize * d..(n as usize + 1) * d].to_vec()
    };
    for &n in &record.reused {
        assert!(n > 0);
        assert_eq!(row(&skip_file, n), row(&skip_file, n - 1), "frame {n}");
    }
    // Embedded frames hold the same vectors as when every frame is embedded.
    for n in (0..planned).filter(|n| !record.reused.contains(n)) {
        let diff = row(&skip_file, n)
            .iter()
            .zip(row(&every_file, n))
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-5, "frame {n}: {diff}");
    }

    // Scores read the skipping index when asked for it, and only then.
    let scores = ws.run_json(&[
        "scores",
        video_arg,
        "--skip-similar",
        "3",
        "--prompt",
        "grass",
        "--json",
    ]);
    let values = floats(&scores["scores"]["grass"]);
    assert_eq!(values.len() as u64, planned);
    for &n in &record.reused {
        assert_eq!(values[n as usize], values[n as usize - 1]);
    }
    let output = ws.run(&[
        "scores",
        video_arg,
        "--skip-similar",
        "2",
        "--prompt",
        "grass",
        "--json",
    ]);
    assert!(!output.status.success(), "another threshold, another index");
}

#[test]
fn the_image_engine_falls_back_to_candle_without_onnx_runtime() {
    let ws = Workspace::new();
    let path = video("h264_gop250.mp4");
    let video_arg = path.to_str().unwrap();
    // Default (auto) with ONNX Runtime installed (scripts/setup.sh): its engine, no warning.
    let output = ws.run(&["index", video_arg, "--sample-fps", "1", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !stderr(&output).contains("image tower on candle"),
        "ONNX Runtime should load here (run scripts/setup.sh): {}",
        stderr(&output)
    );
    // Without the library: auto falls back to candle and says why; the same embeddings.
    let missing = ws.dir.path().join("no-such-libonnxruntime.so");
    let mut fallback = ws.command(&["index", video_arg, "--sample-fps", "2", "--json"]);
    fallback.env("ORT_DYLIB_PATH", &missing);
    let output = fallback.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("image tower on candle")
            && stderr(&output).contains("scripts/setup.sh"),
        "{}",
        stderr(&output)
    );
    // Asking for ONNX Runtime explicitly without it is an error that says what to do.
    let mut explicit = ws.command(&[
        "index",
        video_arg,
        "--sample-fps",
        "3",
        "--image-engine",
        "onnxruntime",
        "--json",
    ]);
    explicit.env("ORT_DYLIB_PATH", &missing);
    let output = explicit.output().unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("ORT_DYLIB_PATH"),
        "{}",
        stderr(&output)
    );
}
