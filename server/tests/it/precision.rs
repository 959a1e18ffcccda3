//! int8 image towers: the graph our writer emits against ONNX Runtime's own quantizer
//! (goldens: scripts/make_int8_goldens.py), the check before use and its fallback (logged, on the
//! page's status), separate caches per precision, and the refusals.

use std::time::{Duration, Instant};

use engine::embed::local::LocalClip;
use engine::embed::ort_vision::{GraphOptions, LinearLayers};
use store::config::ImageRuntime;

use crate::clip_parity::{fixture, floats, goldens};
use crate::common::{http, id_of, video, Served, FRAMES};
use crate::embedding::{stderr, Workspace};

/// An impossible bar (cosine above 1): every check falls short.
const FAILING_BAR: (&str, &str) = ("CLIP_INVESTIGATOR_PRECISION_BAR", "1.01,1.01,1.01");

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn relative_difference(ours: &[f32], theirs: &[f32]) -> f32 {
    let diff: Vec<f32> = ours.iter().zip(theirs).map(|(a, b)| a - b).collect();
    max_abs(&diff) / max_abs(theirs)
}

fn pixels(name: &str) -> Vec<(String, Vec<f32>)> {
    goldens(name)["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().into(),
                floats(&f["pixel_values"]),
            )
        })
        .collect()
}

#[test]
fn the_int8_graph_computes_what_onnx_runtimes_quantizer_makes_of_the_same_tower() {
    for name in ["tiny-clip", "tiny-siglip"] {
        let model = LocalClip::load_with(&fixture(name), name, ImageRuntime::Onnxruntime).unwrap();
        // ONNX Runtime's quantizer's scheme exactly: every token through every layer.
        let same_scheme = model
            .ort_tower(GraphOptions {
                int8: LinearLayers::ALL,
                class_only_last: false,
            })
            .unwrap();
        let app = model.ort_tower(GraphOptions::INT8).unwrap();
        let fp32_goldens = goldens(name);
        let int8 = serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(fixture(name).join("int8.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            int8["quantized_nodes"], 12,
            "2 layers x q, k, v, out, fc1, fc2"
        );
        for (i, (file, pixels)) in pixels(name).into_iter().enumerate() {
            let quantizer = floats(&int8["frames"][i]["embedding_normalized"]);
            let fp32 = floats(&fp32_goldens["frames"][i]["embedding_normalized"]);
            let ours = model
                .embed_pixels_on(&same_scheme, std::slice::from_ref(&pixels))
                .unwrap()
                .remove(0);
            let ours_fp32 = model
                .embed_pixels(std::slice::from_ref(&pixels))
                .unwrap()
                .remove(0);
            let diff = relative_difference(&ours, &quantizer);
            // The bound must tell int8 from fp32: the fp32 tower is further from the goldens.
            let fp32_diff = relative_difference(&ours_fp32, &quantizer);
            println!(
                "{name} {file}: int8 vs quantizer {diff:.2e}; fp32 vs quantizer {fp32_diff:.2e}"
            );
            assert!(
                diff <= 1e-3,
                "{name} {file}: {diff} from ONNX Runtime's quantizer"
            );
            assert!(
                fp32_diff > 2.0 * diff,
                "{name} {file}: fp32 ({fp32_diff}) is as close to the int8 goldens as int8 ({diff})"
            );
            // The app's graph (class rows alone through CLIP's last layer) stays near fp32.
            let app_embedding = model
                .embed_pixels_on(&app, std::slice::from_ref(&pixels))
                .unwrap()
                .remove(0);
            let cosine: f32 = app_embedding.iter().zip(&fp32).map(|(a, b)| a * b).sum();
            assert!(cosine >= 0.99, "{name} {file}: cosine to fp32 {cosine}");
        }
    }
}

#[test]
fn check_precision_prints_and_stores_the_comparison() {
    let ws = Workspace::new();
    let path = video("mpeg2.mkv");
    let report = ws.run_json(&["check-precision", path.to_str().unwrap(), "--json"]);
    assert_eq!(report["precision"], "int8");
    assert_eq!(report["video"], "mpeg2.mkv");
    assert_eq!(report["video_frames"].as_u64().unwrap(), FRAMES.min(64));
    assert_eq!(report["fixture_images"], 8);
    assert_eq!(report["prompts"], 10, "2 configured + 8 general");
    assert_eq!(report["passed"], true, "{report}");
    assert!(report["cosine_min"].as_f64().unwrap() >= 0.99, "{report}");
    let stored = std::fs::read_dir(ws.embeddings().join("precision"))
        .unwrap()
        .count();
    assert_eq!(stored, 1);

    // The table names each measure with its bar; an impossible bar fails it and says why.
    let output = ws
        .command(&["check-precision", path.to_str().unwrap()])
        .env(FAILING_BAR.0, FAILING_BAR.1)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    for line in [
        "cosine to fp32, worst image",
        "top-10 frames per prompt kept",
        "top-5 prompts per image kept",
        "below the bar (worst cosine",
        "fp32 is used",
    ] {
        assert!(table.contains(line), "{line:?} in {table}");
    }
}

#[test]
fn an_int8_index_has_cache_files_of_its_own_and_switching_back_embeds_nothing() {
    let ws = Workspace::new();
    let path = video("mpeg2.mkv");
    let v = path.to_str().unwrap();
    let fp32 = ws.run_json(&["index", v, "--json"]);
    assert_eq!(fp32["embedded"], FRAMES);
    let int8 = ws.run_json(&["index", v, "--precision", "int8", "--json"]);
    assert_eq!(int8["embedded"], FRAMES, "int8 embeds into its own file");
    let mut names: Vec<String> = ws
        .cache_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.contains("-int8")).count(),
        1,
        "{names:?}"
    );
    let check = ws.embeddings().join("precision");
    let stored = std::fs::read_dir(&check).unwrap().next().unwrap().unwrap();
    let checked = std::fs::read_to_string(stored.path()).unwrap();
    for (precision, note) in [("fp32", "back to fp32"), ("int8", "int8 again")] {
        let again = ws.run_json(&["index", v, "--precision", precision, "--json"]);
        assert_eq!(
            (again["embedded"].as_u64(), again["resumed"].as_u64()),
            (Some(0), Some(FRAMES)),
            "{note}: nothing embedded"
        );
    }
    assert_eq!(
        std::fs::read_to_string(stored.path()).unwrap(),
        checked,
        "the check ran once"
    );
    // Each precision's scores come from its own index: they differ (int8 is not fp32), barely.
    let scores = |precision: &str| {
        let out = ws.run_json(&[
            "scores",
            v,
            "--prompt",
            "grass",
            "--precision",
            precision,
            "--json",
        ]);
        floats(&out["scores"]["grass"])
    };
    let (fp32, int8) = (scores("fp32"), scores("int8"));
    assert_eq!(fp32.len() as u64, FRAMES);
    let largest = fp32
        .iter()
        .zip(&int8)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        largest > 0.0 && largest < 0.02,
        "largest score difference {largest}"
    );
}

#[test]
fn an_int8_check_that_falls_short_leaves_fp32_in_use_and_says_so() {
    let ws = Workspace::new();
    let path = video("mpeg2.mkv");
    let output = ws
        .command(&[
            "index",
            path.to_str().unwrap(),
            "--precision",
            "int8",
            "--json",
        ])
        .env(FAILING_BAR.0, FAILING_BAR.1)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains("int8 fell short of fp32 in its check on this machine")
            && log.contains("fp32 is used"),
        "{log}"
    );
    let names: Vec<String> = ws
        .cache_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.len() == 1 && !names[0].contains("int8"),
        "fp32's cache: {names:?}"
    );

    // The page's status line says it.
    let served = Served::start(
        &format!(
            "video_path: {path:?}\nmodel: {:?}\nembeddings_dir: \"{{dir}}/emb\"\nprecision: int8\nCLIP: [grass]\n",
            fixture("tiny-clip")
        ),
        &[FAILING_BAR],
    );
    let id = id_of(&path);
    let started = Instant::now();
    let status = loop {
        let response = http(
            served.addr,
            "POST",
            "/api/index_status",
            "application/x-www-form-urlencoded",
            format!("video={id}").as_bytes(),
        );
        assert_eq!(response.status, 200, "{}", response.text());
        let status: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        if status["state"] == "Done" {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{status}\n{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let note = status["precision_note"].as_str().unwrap_or_default();
    assert!(note.contains("fell short"), "{status}");
    assert_eq!(status["model"], "tiny-clip", "fp32: no int8 in the name");
    let line = investigator_core::status::describe(&serde_json::from_value(status).unwrap());
    assert!(line.contains("Note: int8 fell short"), "{line}");
    assert!(served.log().contains("fell short"), "{}", served.log());
}

#[test]
fn auto_takes_int8_only_where_its_check_passed_and_it_was_faster() {
    let path = video("mpeg2.mkv");
    let v = path.to_str().unwrap();
    // Below the bar: fp32, whatever the speed.
    let ws = Workspace::new();
    let output = ws
        .command(&["index", v, "--precision", "auto", "--json"])
        .env(FAILING_BAR.0, FAILING_BAR.1)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["precision"], "fp32", "{report}");
    assert!(report["precision_note"]
        .as_str()
        .is_some_and(|n| n.contains("fell short")));

    // Above it: int8 exactly where the check's own timing found int8 faster.
    let ws = Workspace::new();
    let report = ws.run_json(&["index", v, "--precision", "auto", "--json"]);
    let stored = std::fs::read_dir(ws.embeddings().join("precision"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let check: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stored.path()).unwrap()).unwrap();
    assert_eq!(check["passed"], true, "{check}");
    let faster =
        check["int8_images_per_s"].as_f64().unwrap() > check["fp32_images_per_s"].as_f64().unwrap();
    let expected = if faster { "int8" } else { "fp32" };
    assert_eq!(report["precision"], expected, "{report}\n{check}");
    let int8_files = ws
        .cache_files()
        .iter()
        .filter(|p| p.to_string_lossy().contains("-int8"))
        .count();
    assert_eq!(int8_files, usize::from(faster));
}

#[test]
fn precisions_that_cannot_run_are_refused_with_the_reason() {
    let ws = Workspace::new();
    let path = video("mpeg2.mkv");
    let v = path.to_str().unwrap();
    for (args, expected) in [
        (
            vec!["index", v, "--precision", "bf16"],
            "no bf16 matrix products",
        ),
        (
            vec![
                "index",
                v,
                "--precision",
                "int8",
                "--image-runtime",
                "candle",
            ],
            "int8 runs on ONNX Runtime",
        ),
        (
            vec!["check-precision", "--precision", "bf16"],
            "precision bf16 is not available",
        ),
        (
            vec!["check-precision", "/no/such/video.mp4"],
            "is not a file",
        ),
    ] {
        let output = ws.run(&args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let message = stderr(&output);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    // A bad bar is named with the form it should have.
    let output = ws
        .command(&["index", v, "--precision", "int8"])
        .env("CLIP_INVESTIGATOR_PRECISION_BAR", "high")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("MIN_COSINE,MEAN_COSINE"),
        "{}",
        stderr(&output)
    );
}
