//! Adapted prompts as a user drives them from the CLI: `adapt` on the sample video's labels
//! (made by looking at it: `server/tests/fixtures/adapt/`) prints a report measured out of fold
//! and stores its adapter; `-o FILE` exports it and `scores --adapter FILE` and
//! `search --library --adapter FILE` use it; bad inputs (a prompt never labelled, one segment,
//! more folds than blocks, α outside 0 to 1, a damaged file, another model's file, a video not
//! indexed) each get a clear error and leave the stored adapter as it was; `kill -9` during
//! saves leaves a whole adapter (the old one or the new one).

use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::adapt::Adapter;
use serde_json::Value;

use crate::embedding::{stderr, Workspace};

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/sample.mp4")
}

fn labels_fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adapt/sample-labels.csv")
}

/// A workspace whose library holds the sample video, indexed with the tiny CLIP, labelled.
fn labelled() -> Workspace {
    let ws = Workspace::new();
    let data = sample().parent().unwrap().canonicalize().unwrap();
    ws.add_to_config(&format!("library_dirs: [{data:?}]\n"));
    let sample = sample();
    let v = sample.to_str().unwrap();
    let out = ws.run(&["index", v]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ws.run(&["labels", v, "--import", labels_fixture().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    ws
}

fn number(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

fn spearman_sorted(a: &[f64], b: &[f64]) -> bool {
    // Whether `b` orders the frames as `a` does (ties allowed in either).
    let mut order: Vec<usize> = (0..a.len()).collect();
    order.sort_by(|&i, &j| a[i].total_cmp(&a[j]));
    order
        .windows(2)
        .all(|w| b[w[0]] <= b[w[1]] + 1e-12 || a[w[0]] == a[w[1]])
}

#[test]
fn adapt_measures_out_of_fold_and_its_adapter_works_in_scores_and_library_search() {
    let ws = labelled();
    let sample = sample();
    let v = sample.to_str().unwrap();
    let exported = ws.dir().join("dark.safetensors");
    let report = ws.run_json(&[
        "adapt",
        v,
        "--prompt",
        "a dark picture",
        "--json",
        "-o",
        exported.to_str().unwrap(),
    ]);
    assert_eq!(report["prompt"], "a dark picture");
    assert_eq!(report["method"], "probe");
    assert_eq!(report["from"], "text");
    assert_eq!(report["folds"], 5);
    // 60 + 60 frames labelled; 90 frames of cross-fades ignored.
    assert_eq!(report["train"]["positives"], 120);
    assert_eq!(report["train"]["negatives"], 540 - 90 - 120);
    let zero = number(&report["zero_shot"]["ap"]);
    let adapted = number(&report["adapted"]["ap"]);
    let difference = &report["ap_difference"];
    assert!((number(&difference["point"]) - (adapted - zero)).abs() < 1e-12);
    assert!(number(&difference["low"]) <= number(&difference["high"]));
    assert!(number(&report["lambda"]) > 0.0);
    let alpha = number(&report["alpha"]);
    assert!((0.0..=1.0).contains(&alpha));
    // The zero-shot figures are the Evaluate panel's own (the cosine ranking).
    let evaluated = ws.run_json(&["evaluate", v, "--prompt", "a dark picture", "--json"]);
    let cosine_ap = number(&evaluated["models"][0]["prompts"][0]["ap"]);
    assert!(
        (zero - cosine_ap).abs() < 1e-12,
        "{zero} vs evaluate's {cosine_ap}"
    );
    // α = 0 is zero-shot exactly.
    let at_zero = &report["by_alpha"][0];
    assert_eq!(number(&at_zero["alpha"]), 0.0);
    assert!((number(&at_zero["ap"]) - zero).abs() < 1e-12);
    // Label next: unlabelled frames only, one per moment (2 s at 30 fps).
    let next = report["label_next"].as_array().unwrap();
    assert!(!next.is_empty() && next.len() <= 20);
    let frames: Vec<u64> = next.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    for &f in &frames {
        assert!(
            !(240..=299).contains(&f) && !(315..=374).contains(&f),
            "{f} is labelled"
        );
        assert!(!(300..=314).contains(&f), "{f} is ignored");
    }
    for (i, a) in frames.iter().enumerate() {
        for b in &frames[i + 1..] {
            assert!(a.abs_diff(*b) >= 60, "{a} and {b} are one moment");
        }
    }
    for s in report["suspect"].as_array().unwrap() {
        assert!(["positive", "negative"].contains(&s["label"].as_str().unwrap()));
        assert!(s["start_frame"].as_u64() <= s["end_frame"].as_u64());
    }
    // Stored beside the caches, and exported.
    let stored = PathBuf::from(report["file"].as_str().unwrap());
    assert!(stored.starts_with(ws.embeddings()), "{}", stored.display());
    let from_store = Adapter::read(&stored).unwrap();
    let from_export = Adapter::read(&exported).unwrap();
    assert_eq!(from_store, from_export);
    assert_eq!(from_store.report.id, report["id"].as_str().unwrap());

    // scores --adapter: the adapted probability per frame. At α = 0 it ranks frames as the
    // cosine does; at the adapter's α it is the blend the report measured.
    let cosine = ws.run_json(&["scores", v, "--prompt", "a dark picture", "--json"]);
    let cosine: Vec<f64> = cosine["scores"]["a dark picture"]
        .as_array()
        .unwrap()
        .iter()
        .map(number)
        .collect();
    let at = |alpha: &str| -> Vec<f64> {
        let answer = ws.run_json(&[
            "scores",
            v,
            "--prompt",
            "a dark picture",
            "--adapter",
            exported.to_str().unwrap(),
            "--alpha",
            alpha,
            "--json",
        ]);
        assert_eq!(answer["adapted"]["prompt"], "a dark picture");
        answer["adapted"]["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(number)
            .collect()
    };
    let zero_shot = at("0");
    assert_eq!(zero_shot.len(), 540);
    assert!(zero_shot.iter().all(|p| (0.0..=1.0).contains(p)));
    assert!(
        spearman_sorted(&cosine, &zero_shot),
        "α = 0 orders frames as the cosine does"
    );
    let full = at("1");
    assert!(
        !spearman_sorted(&cosine, &full),
        "the adapted score is another ranking"
    );

    // search --library --adapter: the dark photographs first.
    let results = ws.run_json(&[
        "search",
        "--library",
        "--adapter",
        exported.to_str().unwrap(),
        "--alpha",
        "1",
        "--top",
        "2",
        "--json",
    ]);
    let top = &results["results"][0];
    let frame = top["frame"].as_u64().unwrap();
    assert!(
        (240..=374).contains(&frame),
        "the best moment is a dark picture: {results}"
    );
    assert!((0.0..=1.0).contains(&number(&top["score"])));
}

#[test]
fn other_methods_anchors_and_blends_are_measured_the_same_way() {
    let ws = labelled();
    let sample = sample();
    let v = sample.to_str().unwrap();
    let tip = ws.run_json(&[
        "adapt",
        v,
        "--prompt",
        "a warm red or orange picture",
        "--method",
        "tip",
        "--json",
    ]);
    assert_eq!(tip["method"], "tip");
    assert!(tip["lambda"].is_null() && number(&tip["tip_beta"]) > 0.0);
    let zero = ws.run_json(&[
        "adapt",
        v,
        "--prompt",
        "a warm red or orange picture",
        "--from",
        "zero",
        "--json",
    ]);
    assert_eq!(zero["from"], "zero");
    // One adapter per (model, prompt, videos): the second replaced the first.
    assert_eq!(tip["id"], zero["id"]);
    let adapters: Vec<_> =
        std::fs::read_dir(Path::new(zero["file"].as_str().unwrap()).parent().unwrap())
            .unwrap()
            .collect();
    assert_eq!(adapters.len(), 1);
    // --alpha sets the blend, and the adapted figures are that blend's.
    let fixed = ws.run_json(&[
        "adapt",
        v,
        "--prompt",
        "a warm red or orange picture",
        "--alpha",
        "0.3",
        "--json",
    ]);
    assert_eq!(number(&fixed["alpha"]), 0.3);
    let at = fixed["by_alpha"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| (number(&p["alpha"]) - 0.3).abs() < 1e-9)
        .unwrap();
    assert!((number(&fixed["adapted"]["ap"]) - number(&at["ap"])).abs() < 1e-12);
    assert!(fixed["notes"].to_string().contains("set by hand"));
}

#[test]
fn bad_inputs_get_clear_errors_and_change_nothing() {
    let ws = labelled();
    let sample = sample();
    let v = sample.to_str().unwrap();
    let good = ws.run_json(&["adapt", v, "--prompt", "space", "--json"]);
    let stored = PathBuf::from(good["file"].as_str().unwrap());
    let before = std::fs::read(&stored).unwrap();
    let failing = |args: &[&str], says: &str| {
        let out = ws.run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let message = stderr(&out);
        assert!(message.contains(says), "{args:?}: {message}");
        assert_eq!(
            std::fs::read(&stored).unwrap(),
            before,
            "{args:?} touched the adapter"
        );
    };
    failing(
        &["adapt", v, "--prompt", "a red door"],
        "has no labelled segment",
    );
    failing(
        &["adapt", v, "--prompt", "space", "--folds", "9"],
        "ask for 7 folds or fewer",
    );
    failing(
        &["adapt", v, "--prompt", "space", "--folds", "1"],
        "2 to 20",
    );
    failing(
        &["adapt", v, "--prompt", "space", "--alpha", "1.5"],
        "from 0 (zero-shot) to 1",
    );
    failing(
        &[
            "adapt",
            v,
            "--prompt",
            "space",
            "--hold-out-video",
            "sample.mp4",
        ],
        "the only labelled video",
    );
    // One segment only.
    let one = ws.dir().join("one.csv");
    std::fs::write(&one, "prompt,start_frame,end_frame\na single cat,90,149\n").unwrap();
    let out = ws.run(&["labels", v, "--import", one.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    failing(
        &["adapt", v, "--prompt", "a single cat"],
        "1 labelled segment",
    );
    // Labels on every frame: one class only.
    let all = ws.dir().join("all.csv");
    std::fs::write(&all, "prompt,start_frame,end_frame\neverything,0,539\n").unwrap();
    let out = ws.run(&["labels", v, "--import", all.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    failing(&["adapt", v, "--prompt", "everything"], "form 0 stretches");
    // A damaged adapter file, and another model's.
    let damaged = ws.dir().join("damaged.safetensors");
    std::fs::write(&damaged, &before[..before.len() / 2]).unwrap();
    failing(
        &[
            "scores",
            v,
            "--prompt",
            "space",
            "--adapter",
            damaged.to_str().unwrap(),
        ],
        "is not a usable adapter file",
    );
    std::fs::write(&damaged, b"not safetensors at all").unwrap();
    failing(
        &[
            "scores",
            v,
            "--prompt",
            "space",
            "--adapter",
            damaged.to_str().unwrap(),
        ],
        "is not a usable adapter file",
    );
    let gelu = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip-gelu");
    let out = ws.run(&["index", v, "--model", gelu.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    failing(
        &[
            "scores",
            v,
            "--prompt",
            "space",
            "--adapter",
            stored.to_str().unwrap(),
            "--model",
            gelu.to_str().unwrap(),
        ],
        "was trained for the model tiny-clip",
    );
    failing(
        &[
            "scores",
            v,
            "--prompt",
            "space",
            "--adapter",
            stored.to_str().unwrap(),
            "--alpha",
            "-0.2",
        ],
        "from 0 (zero-shot) to 1",
    );
    // A video not indexed with this model.
    let other = crate::common::video("h264_gop250.mp4");
    failing(
        &["adapt", other.to_str().unwrap(), "--prompt", "space"],
        "is not indexed",
    );
}

#[test]
fn kill_9_while_saving_leaves_a_whole_adapter() {
    let ws = labelled();
    let sample = sample();
    let v = sample.to_str().unwrap();
    let first = ws.run_json(&["adapt", v, "--prompt", "an animal or a plant", "--json"]);
    let stored = PathBuf::from(first["file"].as_str().unwrap());
    let exported = ws.dir().join("exported.safetensors");
    let mut rng = crate::common::Rng::new(35);
    for round in 0..12 {
        let mut child = ws
            .command(&[
                "adapt",
                v,
                "--prompt",
                "an animal or a plant",
                "--json",
                "-o",
                exported.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50 + rng.below(500)));
        let _ = child.kill();
        let _ = child.wait();
        // The stored adapter (there from the first run) reads whole; the export, if written.
        let read = Adapter::read(&stored).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(read.report.prompt, "an animal or a plant");
        if exported.exists() {
            Adapter::read(&exported).unwrap_or_else(|e| panic!("round {round}: the export: {e}"));
        }
    }
    // A later save cleans what killed writers left behind.
    ws.run_json(&["adapt", v, "--prompt", "an animal or a plant", "--json"]);
    let left: Vec<String> = std::fs::read_dir(stored.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The page's side, through the server functions the page calls: Adapt runs in the background
/// and gives `adapt --json`'s numbers; the chart's scores carry the adapter's logits frame for
/// frame; bad requests are refused; a label edit makes the adapter stale and the server
/// retrains it; a restarted server still has it.
#[test]
fn the_page_adapts_in_the_background_and_retrains_after_a_label_edit() {
    use crate::common::Served;
    let sample = sample();
    let tiny = crate::common::tiny_model();
    let config = format!(
        "video_path: {sample:?}\nmodel: {tiny:?}\nembeddings_dir: \"{{dir}}/embeddings\"\nCLIP:\n  - a dark picture\n"
    );
    let served = Served::start(&config, &[]);
    let json = |served: &Served, endpoint: &str, body: Value| -> (u16, Value) {
        let answer = served.post(endpoint, "application/json", body.to_string().as_bytes());
        let value = serde_json::from_slice(&answer.body).unwrap_or(Value::String(answer.text()));
        (answer.status, value)
    };
    let (_, info) = json(&served, "/api/video_info", serde_json::json!({}));
    let id = info["id"].as_str().unwrap().to_string();
    let wait_indexed = |served: &Served| {
        for _ in 0..600 {
            let answer = served.form("/api/index_status", &format!("video={id}"));
            let status: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            if status["state"] == "Done" {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("not indexed in a minute");
    };
    wait_indexed(&served);
    let csv = std::fs::read_to_string(labels_fixture()).unwrap();
    let (code, _) = json(
        &served,
        "/api/edit_labels",
        serde_json::json!({"video": id, "edit": {"Import": {"csv": csv, "replace": true}}}),
    );
    assert_eq!(code, 200);
    let request = |prompt: &str| serde_json::json!({"video": id, "model": null, "request": {"prompt": prompt, "method": "probe", "from": "text", "folds": null, "hold_out_video": null}});
    let finished = |served: &Served, prompt: &str| -> Value {
        for _ in 0..600 {
            let (code, status) = json(
                served,
                "/api/adapt_status",
                serde_json::json!({"video": id, "model": null, "prompt": prompt}),
            );
            assert_eq!(code, 200, "{status}");
            if status.get("Running").is_none() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the job did not finish in a minute");
    };
    let (code, started) = json(&served, "/api/adapt", request("a dark picture"));
    assert_eq!(code, 200, "{started}");
    let done = finished(&served, "a dark picture");
    let report = &done["Done"]["report"];
    assert_eq!(done["Done"]["stale"], false, "{done}");
    // The CLI on the same labels gives the same adapter and the same numbers.
    let ws_config = served.dir.path().join("config.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clip-investigator"))
        .args([
            "adapt",
            sample.to_str().unwrap(),
            "--prompt",
            "a dark picture",
            "--json",
            "--config",
        ])
        .arg(&ws_config)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["id"], report["id"]);
    for metric in ["ap", "roc_auc", "best_f1"] {
        assert_eq!(
            cli["adapted"][metric], report["adapted"][metric],
            "{metric}"
        );
        assert_eq!(
            cli["zero_shot"][metric], report["zero_shot"][metric],
            "{metric}"
        );
    }
    assert_eq!(
        cli["ap_difference"]["low"],
        report["differences"]["ap"]["low"]
    );
    // The chart's scores: the adapter's zero-shot and adapted logits, one per embedded frame.
    let adapter = report["id"].as_str().unwrap().to_string();
    let answer = served.post(
        "/api/scores",
        "application/json",
        serde_json::json!({"video": id, "model": null, "prompts": ["a dark picture"], "adapters": [adapter]}).to_string().as_bytes(),
    );
    assert_eq!(answer.status, 200);
    let series: investigator_core::types::ScoreSeries = postcard_or_json(&answer.body);
    assert_eq!(series.adapted.len(), 1);
    let adapted = &series.adapted[0];
    assert_eq!(adapted.id, adapter);
    assert_eq!(adapted.adapted.len(), series.frames.len());
    assert_eq!(adapted.zero_shot.len(), series.frames.len());
    // Zero-shot logits rank the frames as the cosine does.
    let cosine: Vec<f64> = series.prompts[0]
        .values
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let zero: Vec<f64> = adapted.zero_shot.iter().map(|&v| f64::from(v)).collect();
    assert!(spearman_sorted(&cosine, &zero));
    // Bad requests are refused, saying why.
    for (body, says) in [
        (
            serde_json::json!({"video": id, "model": null, "request": {"prompt": "a dark picture", "method": "probe", "from": "text", "folds": 1, "hold_out_video": null}}),
            "folds must be from 2",
        ),
        (
            serde_json::json!({"video": id, "model": null, "request": {"prompt": "", "method": "probe", "from": "text", "folds": null, "hold_out_video": null}}),
            "empty",
        ),
        (
            serde_json::json!({"video": id, "model": "../x", "request": {"prompt": "a dark picture", "method": "probe", "from": "text", "folds": null, "hold_out_video": null}}),
            "not a model id",
        ),
    ] {
        let (code, answer) = json(&served, "/api/adapt", body);
        assert_eq!(code, 400, "{answer}");
        assert!(answer.to_string().contains(says), "{answer}");
    }
    let (code, answer) = json(
        &served,
        "/api/scores",
        serde_json::json!({"video": id, "model": null, "prompts": ["a dark picture"], "adapters": ["../../etc/passwd"]}),
    );
    assert_eq!(code, 400, "{answer}");
    // A prompt with no labels: the job fails and says why.
    json(&served, "/api/adapt", request("a red door"));
    let failed = finished(&served, "a red door");
    assert!(
        failed["Failed"].to_string().contains("no labelled segment"),
        "{failed}"
    );
    // A label edit: stale, then retrained in the background.
    let (code, _) = json(
        &served,
        "/api/edit_labels",
        serde_json::json!({"video": id, "edit": {"Add": {"prompt": "a dark picture", "start": 470, "end": 500}}}),
    );
    assert_eq!(code, 200);
    let retrained = finished(&served, "a dark picture");
    let new_report = &retrained["Done"]["report"];
    assert_eq!(retrained["Done"]["stale"], false, "{retrained}");
    assert_eq!(
        new_report["id"], report["id"],
        "a retrained adapter keeps its id"
    );
    assert_ne!(
        new_report["labels_fingerprint"],
        report["labels_fingerprint"]
    );
    assert_eq!(new_report["train"]["positives"], 120 + 31);
    // A restarted server lists it.
    let dir = served.stop();
    let served = Served::start_in(dir, &config, &[]);
    let (_, list) = json(
        &served,
        "/api/adapters",
        serde_json::json!({"video": id, "model": null}),
    );
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["report"]["id"], report["id"]);
    assert_eq!(list[0]["stale"], false);
}

/// The scores' answer (postcard, as the page reads it).
fn postcard_or_json(body: &[u8]) -> investigator_core::types::ScoreSeries {
    postcard::from_bytes(body).unwrap_or_else(|_| serde_json::from_slice(body).unwrap())
}
