//! `benchmark` as a user runs it: annotations in QVHighlights' JSON Lines and Charades-STA's
//! text over the test videos, scored with the tiny CLIP fixture; what cannot be scored listed
//! with why; the predictions file in the official layout, and read back, the same metrics.

use std::path::{Path, PathBuf};

use investigator_core::benchmark::annotations::{parse, Format};
use investigator_core::benchmark::{evaluate, Prediction};
use serde_json::Value;

use crate::common::video;
use crate::embedding::{stderr, Workspace};

/// The official evaluator's brief keys.
const MOMENT_KEYS: [&str; 8] = [
    "MR-full-R1@0.5",
    "MR-full-R1@0.7",
    "MR-full-mAP",
    "MR-full-mAP@0.5",
    "MR-full-mAP@0.75",
    "MR-long-mAP",
    "MR-middle-mAP",
    "MR-short-mAP",
];

/// A workspace with `h264_gop250.mp4` (300 frames, 10 s) as `videos/clipA.mp4`, indexed.
fn indexed_workspace() -> (Workspace, PathBuf) {
    let ws = Workspace::new();
    let videos = ws.dir().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    let clip = videos.join("clipA.mp4");
    std::fs::copy(video("h264_gop250.mp4"), &clip).unwrap();
    ws.run_json(&["index", clip.to_str().unwrap(), "--json"]);
    (ws, videos)
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn predictions_in(path: &Path) -> (Vec<Value>, Vec<Prediction>) {
    let rows: Vec<Value> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let predictions = rows
        .iter()
        .map(|r| Prediction {
            qid: r["qid"].to_string(),
            windows: r["pred_relevant_windows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| {
                    let w = numbers(w);
                    assert_eq!(w.len(), 3, "[start, end, score]");
                    [w[0], w[1], w[2]]
                })
                .collect(),
            saliency: r.get("pred_saliency_scores").map_or_else(Vec::new, numbers),
        })
        .collect();
    (rows, predictions)
}

#[test]
fn a_qvhighlights_file_is_scored_with_the_official_metrics_and_its_predictions_give_them_back() {
    let (ws, videos) = indexed_workspace();
    let annotations = write(
        &ws.dir().join("val.jsonl"),
        concat!(
            r#"{"qid": 11, "query": "a brick wall", "vid": "clipA", "duration": 10, "relevant_windows": [[2, 4]], "relevant_clip_ids": [1, 2], "saliency_scores": [[4, 3, 2], [1, 2, 3]]}"#,
            "\n",
            r#"{"qid": 12, "query": "grass", "vid": "clipA", "duration": 10, "relevant_windows": [[0, 1], [6, 9.5]], "relevant_clip_ids": [0, 3, 4], "saliency_scores": [[2, 2, 2], [0, 0, 1], [4, 4, 4]]}"#,
            "\n",
            r#"{"qid": 13, "query": "a dog", "vid": "no-such-video", "duration": 10, "relevant_windows": [[1, 2]], "relevant_clip_ids": [0], "saliency_scores": [[1, 1, 1]]}"#,
            "\n",
            r#"{"qid": 14, "query": "a door", "vid": "clipA", "duration": 10, "relevant_windows": [[8, 12]], "relevant_clip_ids": [0], "saliency_scores": [[1, 1, 1]]}"#,
            "\n",
            r#"{"qid": 15, "query": "a kitchen", "vid": "clipA", "duration": 150, "relevant_windows": [[20, 30]], "relevant_clip_ids": [0], "saliency_scores": [[1, 1, 1]]}"#,
            "\n",
        ),
    );
    let out = ws.dir().join("predictions.jsonl");
    let answer = ws.run_json(&[
        "benchmark",
        "--annotations",
        &annotations,
        "--videos",
        videos.to_str().unwrap(),
        "--predictions-out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(answer["queries"], 5);
    let model = &answer["models"][0];
    assert_eq!(model["scored"], 2, "{answer}");
    let skipped: Vec<(u64, String)> = model["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["line"].as_u64().unwrap(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
        [3, 4, 5],
        "{skipped:?}"
    );
    assert!(
        skipped[0].1.contains("no video \"no-such-video\""),
        "{}",
        skipped[0].1
    );
    assert!(
        skipped[1].1.contains("ends after the video's 10 s"),
        "{}",
        skipped[1].1
    );
    assert!(
        skipped[2].1.contains("ends after the video (10.000 s)"),
        "{}",
        skipped[2].1
    );

    // Every brief key of the evaluator; the splits with no ground-truth window have no number.
    let metrics = model["metrics"].as_object().unwrap();
    let mut keys: Vec<&str> = metrics.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected: Vec<String> = MOMENT_KEYS.iter().map(|k| k.to_string()).collect();
    for level in ["Fair", "Good", "VeryGood"] {
        expected.push(format!("HL-min-{level}-mAP"));
        expected.push(format!("HL-min-{level}-Hit1"));
    }
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert!(metrics["MR-middle-mAP"].is_null() && metrics["MR-long-mAP"].is_null());
    for (key, value) in metrics {
        if let Some(v) = value.as_f64() {
            assert!((0.0..=100.0).contains(&v), "{key} {v}");
            assert_eq!(v, (v * 100.0).round() / 100.0, "{key}: two decimals");
        }
    }

    // The predictions file: the official layout, 10 windows at most, one saliency per 2-s clip;
    // scored again from the file, the same numbers.
    let (rows, predictions) = predictions_in(&out);
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for field in [
            "qid",
            "query",
            "vid",
            "pred_relevant_windows",
            "pred_saliency_scores",
        ] {
            assert!(row.get(field).is_some(), "{field} in {row}");
        }
        assert!(row["qid"].is_number());
        assert!((1..=10).contains(&row["pred_relevant_windows"].as_array().unwrap().len()));
        assert_eq!(row["pred_saliency_scores"].as_array().unwrap().len(), 5);
    }
    let annotations = parse(&std::fs::read(&annotations).unwrap(), Format::QvHighlights).unwrap();
    let truth: Vec<_> = annotations
        .queries
        .iter()
        .filter(|q| q.qid == "11" || q.qid == "12")
        .map(|q| q.truth(10.0))
        .collect();
    let again = evaluate(&predictions, &truth).unwrap();
    for (key, value) in again.brief() {
        match metrics[&key].as_f64() {
            Some(v) => assert_eq!(v, value, "{key}"),
            None => assert!(value.is_nan(), "{key}"),
        }
    }
}

#[test]
fn a_charades_sta_file_is_scored_for_moments_only() {
    let (ws, videos) = indexed_workspace();
    let annotations = write(
        &ws.dir().join("charades_test.txt"),
        "clipA 2.0 4.0##a brick wall.\nclipA 0 30##grass\nnoclip 1 2##a dog\n",
    );
    let out = ws.dir().join("charades_predictions.jsonl");
    let answer = ws.run_json(&[
        "benchmark",
        "--annotations",
        &annotations,
        "--format",
        "charades",
        "--videos",
        videos.to_str().unwrap(),
        "--predictions-out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let model = &answer["models"][0];
    assert_eq!(model["scored"], 1, "{answer}");
    assert_eq!(model["skipped"].as_array().unwrap().len(), 2);
    let mut keys: Vec<&str> = model["metrics"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys, MOMENT_KEYS,
        "no highlight metrics without saliency annotations"
    );
    let (rows, _) = predictions_in(&out);
    assert_eq!(rows[0]["qid"], 0);
    assert!(
        rows[0].get("pred_saliency_scores").is_none(),
        "the evaluator would try to score highlights"
    );
    // The plain table says the same.
    let output = ws.run(&[
        "benchmark",
        "--annotations",
        &annotations,
        "--format",
        "charades",
        "--videos",
        videos.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("1 of 3 queries scored, 2 skipped"),
        "{table}"
    );
    assert!(table.contains("MR-full-R1@0.5"), "{table}");
}

#[test]
fn broken_annotation_files_are_refused_with_the_line_and_nothing_is_written() {
    let ws = Workspace::new();
    let out = ws.dir().join("never.jsonl");
    let cases = [
        ("bad.jsonl", "qvhighlights", "{\"qid\": 1, \"query\": \"x\", \"vid\": \"v\", \"relevant_windows\": [[0, 1]]}\n{\"qid\": 2,\n", "line 2: not valid JSON"),
        ("twice.jsonl", "qvhighlights", "{\"qid\": 1, \"query\": \"x\", \"vid\": \"v\", \"relevant_windows\": [[0, 1]]}\n{\"qid\": 1, \"query\": \"y\", \"vid\": \"v\", \"relevant_windows\": [[0, 1]]}\n", "line 2: qid 1 is already on line 1"),
        ("bytes.txt", "charades", "v 0 1##ok\n\u{0}\n", "line 2: not \"VID START END##SENTENCE\""),
        ("any.txt", "tsv", "v 0 1##ok\n", "unknown annotation format"),
    ];
    for (name, format, text, why) in cases {
        let file = write(&ws.dir().join(name), text);
        let output = ws.run(&[
            "benchmark",
            "--annotations",
            &file,
            "--format",
            format,
            "--predictions-out",
            out.to_str().unwrap(),
        ]);
        assert!(!output.status.success(), "{name}");
        assert!(stderr(&output).contains(why), "{name}: {}", stderr(&output));
        assert!(!out.exists());
    }
    // Not UTF-8.
    let file = ws.dir().join("latin1.txt");
    std::fs::write(&file, b"v 0 1##caf\xe9\n").unwrap();
    let output = ws.run(&[
        "benchmark",
        "--annotations",
        file.to_str().unwrap(),
        "--format",
        "charades",
    ]);
    assert!(
        stderr(&output).contains("line 1 is not UTF-8"),
        "{}",
        stderr(&output)
    );
}
