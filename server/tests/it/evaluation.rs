//! Labels, evaluation and datasets as a user drives them from the CLI: `labels` imports CSVs in
//! frames or times and refuses bad ones naming the line (the labels untouched), `evaluate`
//! prints the metrics `investigator_core::evaluation` computes on the very scores `scores`
//! prints, and `export-dataset` writes for every row exactly the frame it names (read back from
//! the pattern in its pixels).

use std::path::Path;

use investigator_core::evaluation::{evaluated_frames, ranking};
use investigator_core::labels::{Labels, Segment, IGNORE};
use serde_json::Value;

use crate::common::video;
use crate::embedding::{stderr, Workspace};

fn labelled(ws: &Workspace, path: &Path) -> Vec<(String, u64, u64)> {
    let answer = ws.run_json(&["labels", path.to_str().unwrap(), "--json"]);
    let mut out: Vec<(String, u64, u64)> = ["labels", "ignored"]
        .iter()
        .flat_map(|k| answer[*k].as_array().unwrap().clone())
        .map(|s| {
            (
                s["prompt"].as_str().unwrap().to_string(),
                s["start_frame"].as_u64().unwrap(),
                s["end_frame"].as_u64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn labels_import_in_frames_or_times_and_bad_files_change_nothing() {
    let ws = Workspace::new();
    let path = video("h264_gop250.mp4");
    let v = path.to_str().unwrap();
    let file = |name: &str, text: &str| {
        let p = ws.dir().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // Times land on exact frames (30 fps): 1.0 s is frame 30, 00:02.500 frame 75.
    let times = file(
        "times.csv",
        "prompt,start_time,end_time\na brick wall,1.0,00:02.500\nignore,5,5.5\n",
    );
    let out = ws.run(&["labels", v, "--import", &times]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = vec![
        ("a brick wall".to_string(), 30, 75),
        (IGNORE.to_string(), 150, 165),
    ];
    assert_eq!(labelled(&ws, &path), expected);
    // Overlaps are merged, and said.
    let overlapping = file(
        "more.csv",
        "prompt,start_frame,end_frame\na brick wall,70,90\n",
    );
    let out = ws.run(&["labels", v, "--import", &overlapping]);
    assert!(stderr(&out).contains("overlap"), "{}", stderr(&out));
    assert_eq!(
        labelled(&ws, &path)[0],
        ("a brick wall".to_string(), 30, 90)
    );
    let before = labelled(&ws, &path);
    for (name, text, says) in [
        (
            "columns.csv",
            "prompt,from,to\nx,1,2\n",
            "line 1: unknown column \"from\"",
        ),
        (
            "outside.csv",
            "prompt,start_frame,end_frame\nx,1,2\nx,250,400\n",
            "line 3: frame 400 is outside the video",
        ),
        (
            "backwards.csv",
            "prompt,start_frame,end_frame\nx,9,3\n",
            "line 2: the segment ends",
        ),
        (
            "latin1.csv",
            "prompt,start_frame,end_frame\ncaf\u{e9},1,2\n",
            "",
        ),
    ] {
        let p = file(name, text);
        if name == "latin1.csv" {
            std::fs::write(&p, b"prompt,start_frame,end_frame\ncaf\xe9,1,2\n").unwrap();
        }
        let out = ws.run(&["labels", v, "--import", &p]);
        assert!(!out.status.success(), "{name} accepted");
        let message = stderr(&out);
        assert!(message.contains(says), "{name}: {message}");
        assert!(
            message.contains(&format!("cannot import {p}")),
            "{name}: the chain names the file: {message}"
        );
        assert_eq!(labelled(&ws, &path), before, "{name} changed the labels");
    }
    let latin = stderr(&ws.run(&[
        "labels",
        v,
        "--import",
        ws.dir().join("latin1.csv").to_str().unwrap(),
    ]));
    assert!(
        latin.contains("line 2: the label file is not UTF-8"),
        "{latin}"
    );
    let big = ws.dir().join("big.csv");
    std::fs::write(&big, vec![b'a'; 10 << 20]).unwrap();
    let big = stderr(&ws.run(&["labels", v, "--import", big.to_str().unwrap()]));
    assert!(big.contains("bytes; at most"), "{big}");
    // A fixed prompt list: a file naming another prompt is refused.
    let other = file(
        "other.csv",
        "prompt,start_frame,end_frame\na brick wall,1,2\na door,3,4\n",
    );
    let refused = stderr(&ws.run(&["labels", v, "--import", &other, "--prompt", "a brick wall"]));
    assert!(
        refused.contains("line 3: the prompt \"a door\""),
        "{refused}"
    );
    assert_eq!(labelled(&ws, &path), before);
    // Export: the file reads back as the same labels.
    let exported = ws.dir().join("out.csv");
    assert!(ws
        .run(&["labels", v, "--export", exported.to_str().unwrap()])
        .status
        .success());
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(text.starts_with("prompt,start_frame,end_frame\n"), "{text}");
    let replace = ws.run(&[
        "labels",
        v,
        "--import",
        exported.to_str().unwrap(),
        "--replace",
    ]);
    assert!(replace.status.success(), "{}", stderr(&replace));
    assert_eq!(labelled(&ws, &path), before);
}

#[test]
fn evaluate_prints_the_metrics_of_the_scores_scores_prints() {
    let ws = Workspace::new();
    let path = video("h264_gop250.mp4");
    let v = path.to_str().unwrap();
    let labels_csv = ws.dir().join("labels.csv");
    // Scenes change every 75 frames: a wall in two of them, a flash of one frame, an ignored
    // transition.
    std::fs::write(
        &labels_csv,
        "prompt,start_frame,end_frame\na brick wall,75,149\na brick wall,225,299\nstairs,10,10\nignore,148,152\n",
    )
    .unwrap();
    assert!(ws.run(&["index", v]).status.success());
    assert!(ws
        .run(&["labels", v, "--import", labels_csv.to_str().unwrap()])
        .status
        .success());
    let evaluation = ws.run_json(&["evaluate", v, "--json"]);
    let scores = ws.run_json(&[
        "scores",
        v,
        "--prompt",
        "a brick wall",
        "--prompt",
        "stairs",
        "--json",
    ]);
    let mut labels = Labels::default();
    for (prompt, start, end) in [
        ("a brick wall", 75, 149),
        ("a brick wall", 225, 299),
        ("stairs", 10, 10),
        (IGNORE, 148, 152),
    ] {
        labels.segments.push(Segment {
            prompt: prompt.into(),
            start,
            end,
        });
    }
    let prompts = evaluation["models"][0]["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 2, "{evaluation}");
    for p in prompts {
        let name = p["prompt"].as_str().unwrap();
        let values: Vec<f32> = scores["scores"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let frames: Vec<u64> = (0..values.len() as u64).collect();
        let e = evaluated_frames(&frames, &values, &labels, name);
        let close = |ours: Option<f64>, key: &str| {
            let printed = p[key].as_f64();
            match (ours, printed) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{name} {key}: {a} vs {b}"),
                (a, b) => assert_eq!(a, b, "{name} {key}"),
            }
        };
        close(ranking::average_precision(&e.truth, &e.scores), "ap");
        close(ranking::roc_auc(&e.truth, &e.scores), "roc_auc");
        let best = ranking::best_f1(&e.truth, &e.scores).unwrap();
        assert!(
            (best.f1 - p["best_f1"]["f1"].as_f64().unwrap()).abs() < 1e-12,
            "{name}"
        );
        let positives = e.truth.iter().filter(|&&t| t).count() as u64;
        assert_eq!(p["positives"].as_u64(), Some(positives), "{name}");
        assert_eq!(
            p["negatives"].as_u64(),
            Some(e.truth.len() as u64 - positives),
            "{name}"
        );
        assert!(p["events"]["precision"].is_number() || p["events"]["precision"].is_null());
    }
    assert_eq!(
        prompts.iter().find(|p| p["prompt"] == "stairs").unwrap()["positives"],
        1
    );
    assert_eq!(evaluation["ignored_frames"], 5);
    // Without --json: a table with every labelled prompt.
    let table = ws.run(&["evaluate", v]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("\"a brick wall\"") && text.contains("ROC AUC"),
        "{text}"
    );
    // A prompt with no labels is not evaluated; a video with none says what to do.
    let none = ws.run(&["evaluate", v, "--prompt", "a door"]);
    assert!(!none.status.success());
    assert!(stderr(&none).contains("no labels for"), "{}", stderr(&none));
}

#[test]
fn an_exported_dataset_row_is_exactly_its_frame() {
    let ws = Workspace::new();
    let path = video("h264_gop250.mp4");
    let v = path.to_str().unwrap();
    let labels_csv = ws.dir().join("labels.csv");
    std::fs::write(
        &labels_csv,
        "prompt,start_frame,end_frame\na brick wall,40,99\na brick wall,200,239\n",
    )
    .unwrap();
    assert!(ws.run(&["index", v]).status.success());
    let out_dir = ws.dir().join("dataset");
    let out = ws.run(&[
        "export-dataset",
        v,
        "--labels",
        labels_csv.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
        "--per-segment",
        "4",
        "--hard-negatives",
        "3",
        "--min-gap",
        "0.2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Value> = std::fs::read_to_string(out_dir.join("metadata.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds = |kind: &str| rows.iter().filter(|r| r["kind"] == kind).count();
    assert_eq!(kinds("positive"), 8, "4 per segment");
    assert_eq!((kinds("hard_positive"), kinds("hard_negative")), (3, 3));
    for row in &rows {
        let frame = row["frame"].as_u64().unwrap();
        let inside = (40..=99).contains(&frame) || (200..=239).contains(&frame);
        assert_eq!(row["label"].as_u64() == Some(1), inside, "{row}");
        assert_eq!(row["video"], "h264_gop250.mp4");
        assert!((row["time"].as_f64().unwrap() - frame as f64 / 30.0).abs() < 1e-6);
        assert!(row["scores"]["tiny-clip"].is_number(), "{row}");
        let jpeg = std::fs::read(out_dir.join(row["file_name"].as_str().unwrap())).unwrap();
        let image = engine::video::decode_image(&jpeg).unwrap();
        assert_eq!(
            testvideo::read_pattern(&image).unwrap(),
            frame,
            "{row}: the image is its frame"
        );
    }
    // The folder is never written over.
    let again = ws.run(&[
        "export-dataset",
        v,
        "--labels",
        labels_csv.to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
}
