//! Moments, scene cuts and clips as a user drives them from the command line: cuts found while
//! indexing (hard cuts at known frames; a flash and a fade that are not cuts), a video without
//! cuts, a cache file from before cuts that gets them on the next index, `moments` agreeing
//! with the shared code on `scores`' curves, and clips whose every frame is checked by its
//! pattern against what FFmpeg presents.

use std::path::{Path, PathBuf};
use std::process::Command;

use investigator_core::moments::{find_moments, Condition, MomentQuery, Threshold};
use store::cache::EmbeddingFile;
use testvideo::{self, Codec, Spec};

use crate::embedding::{stderr, Workspace};

/// A pattern video written once per test run.
fn written(name: &str, spec: &Spec) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("moments-videos-v1");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    if !path.exists() {
        testvideo::write(&path, spec).unwrap();
    }
    path
}

/// 460 frames at 640x360: hard cuts every 75 frames, a one-frame white flash at 110, and a fade
/// to black over frames 190..210 that stays black until the cut at 225.
fn cut_spec() -> Spec {
    Spec {
        width: 640,
        height: 360,
        keyframe_interval: 48,
        flash_at: Some(110),
        fade_to_black: Some((190, 20)),
        ..Spec::new(Codec::H264, 460)
    }
}

fn cut_frames(value: &serde_json::Value) -> Vec<u64> {
    value["cuts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["frame"].as_u64().unwrap())
        .collect()
}

/// (precision, recall) of `found` against `truth`, a match being within one frame.
fn precision_recall(found: &[u64], truth: &[u64]) -> (f64, f64) {
    let near = |a: u64, list: &[u64]| list.iter().any(|&b| a.abs_diff(b) <= 1);
    let hits = found.iter().filter(|&&f| near(f, truth)).count();
    let recalled = truth.iter().filter(|&&t| near(t, found)).count();
    (
        hits as f64 / found.len().max(1) as f64,
        recalled as f64 / truth.len().max(1) as f64,
    )
}

#[test]
fn cuts_are_found_while_indexing_at_every_decoded_frame_even_when_sampling() {
    let spec = cut_spec();
    let path = written("cuts.mp4", &spec);
    let arg = path.to_str().unwrap();
    let truth = spec.cuts();
    assert_eq!(truth, [75, 150, 225, 300, 375, 450]);
    // Sampled at 2 fps: the model sees one frame in 15, the cut detector every frame.
    for sampling in [&["--sample-fps", "2"][..], &[][..]] {
        let ws = Workspace::new();
        let report = ws.run_json(&[&["index", arg, "--json"][..], sampling].concat());
        assert_eq!(report["missing"], 0, "{report}");
        let cuts = ws.run_json(&[&["cuts", arg, "--json"][..], sampling].concat());
        assert_eq!(cuts["measured_frames"], 460);
        let found = cut_frames(&cuts);
        let (precision, recall) = precision_recall(&found, &truth);
        println!("{sampling:?}: cuts {found:?}: precision {precision}, recall {recall}");
        // Every hard cut at its exact first frame; neither the flash nor the fade.
        assert_eq!(found, truth, "{cuts}");
        for cut in cuts["cuts"].as_array().unwrap() {
            let time = cut["time_s"].as_f64().unwrap();
            assert!((time - cut["frame"].as_f64().unwrap() / 30.0).abs() < 1e-6);
            assert!(cut["score"].as_f64().unwrap() >= 15.0);
            let model = cut["embedding_change"].as_f64().unwrap();
            assert!((0.0..=2.0).contains(&model), "{cut}");
        }
    }
}

#[test]
fn a_video_without_cuts_has_none_and_no_error() {
    let spec = Spec {
        width: 640,
        height: 360,
        scene_changes: false,
        ..Spec::new(Codec::H264, 200)
    };
    assert!(spec.cuts().is_empty());
    let path = written("one_scene.mp4", &spec);
    let arg = path.to_str().unwrap();
    let ws = Workspace::new();
    ws.run_json(&["index", arg, "--sample-fps", "5", "--json"]);
    let cuts = ws.run_json(&["cuts", arg, "--sample-fps", "5", "--json"]);
    assert_eq!(cut_frames(&cuts), Vec::<u64>::new());
    assert_eq!(cuts["measured_frames"], 200);
}

#[test]
fn a_file_indexed_before_cuts_gets_them_on_the_next_index_without_embedding_again() {
    let spec = cut_spec();
    let path = written("cuts.mp4", &spec);
    let arg = path.to_str().unwrap();
    let ws = Workspace::new();
    ws.run_json(&["index", arg, "--sample-fps", "3", "--json"]);
    // Take the scene record away, as a format-3 file has none.
    let cache = ws.cache_files().remove(0);
    let mut file = EmbeddingFile::from_bytes(&std::fs::read(&cache).unwrap()).unwrap();
    let vectors = file.vectors.clone();
    file.scene = None;
    file.save(&cache).unwrap();
    let output = ws.run(&["cuts", arg, "--sample-fps", "3", "--json"]);
    assert!(
        stderr(&output).contains("measured for 0 of 460"),
        "{}",
        stderr(&output)
    );

    let report = ws.run_json(&["index", arg, "--sample-fps", "3", "--json"]);
    assert_eq!(report["embedded"], 0, "nothing is embedded again: {report}");
    let cuts = ws.run_json(&["cuts", arg, "--sample-fps", "3", "--json"]);
    assert_eq!(cut_frames(&cuts), spec.cuts());
    let after = EmbeddingFile::from_bytes(&std::fs::read(&cache).unwrap()).unwrap();
    assert_eq!(after.vectors, vectors);
}

#[test]
fn moments_from_the_cli_are_the_shared_code_on_the_scores_curves() {
    let spec = cut_spec();
    let path = written("cuts.mp4", &spec);
    let arg = path.to_str().unwrap();
    let ws = Workspace::new();
    ws.run_json(&["index", arg, "--sample-fps", "6", "--json"]);
    let scores = ws.run_json(&[
        "scores",
        arg,
        "--sample-fps",
        "6",
        "--prompt",
        "grass",
        "--prompt",
        "a dog",
        "--smooth",
        "5",
        "--json",
    ]);
    let curve = |p: &str| -> Vec<f32> {
        scores["scores"][p]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
            .collect()
    };
    let (grass, dog) = (curve("grass"), curve("a dog"));
    let cuts = cut_frames(&ws.run_json(&["cuts", arg, "--sample-fps", "6", "--json"]));
    assert_eq!(cuts, spec.cuts());
    // A cosine threshold at the curve's mean (the tiny model's scores are near it, not near 0).
    let mean = investigator_core::moments::mean_std(&grass).0;
    let at_mean = mean.to_string();
    for (threshold, flag) in [
        (Threshold::Auto { k: 0.5 }, "auto:0.5"),
        (Threshold::Cosine(mean), at_mean.as_str()),
    ] {
        let query = MomentQuery {
            all_of: vec![Condition {
                prompt: "grass".into(),
                threshold,
            }],
            none_of: vec![Condition {
                prompt: "a dog".into(),
                threshold,
            }],
            hysteresis: None,
            gap_s: 0.5,
            min_len_s: 0.3,
            snap_s: Some(1.0),
        };
        let expected = find_moments(&query, &[&grass], &[&dog], 30.0, &cuts).unwrap();
        let answer = ws.run_json(&[
            "moments",
            arg,
            "--sample-fps",
            "6",
            "--prompt",
            "grass",
            "--not",
            "a dog",
            "--threshold",
            flag,
            "--smooth",
            "5",
            "--gap",
            "0.5",
            "--min-len",
            "0.3",
            "--snap-cuts",
            "--json",
        ]);
        let moments: Vec<investigator_core::moments::Moment> =
            serde_json::from_value(answer["moments"].clone()).unwrap();
        // Frames exactly; times and scores to the last bits JSON keeps (serde_json's parser is
        // not exactly round-trip for f64).
        assert_eq!(moments.len(), expected.moments.len(), "{flag}: {answer}");
        for (got, want) in moments.iter().zip(&expected.moments) {
            let frames =
                |m: &investigator_core::moments::Moment| (m.start_frame, m.end_frame, m.peak_frame);
            assert_eq!(frames(got), frames(want), "{flag}");
            for (a, b) in [
                (got.start_s, want.start_s),
                (got.end_s, want.end_s),
                (got.duration_s, want.duration_s),
            ] {
                assert!((a - b).abs() < 1e-9, "{flag}: {a} vs {b}");
            }
            assert!(
                (got.peak_score - want.peak_score).abs() < 1e-6
                    && (got.mean_score - want.mean_score).abs() < 1e-6
            );
        }
        let thresholds: Vec<f32> = serde_json::from_value(answer["thresholds"].clone()).unwrap();
        assert_eq!(thresholds, expected.thresholds);
        for m in &moments {
            assert!(m.start_frame <= m.peak_frame && m.peak_frame <= m.end_frame);
            assert!((m.start_s - m.start_frame as f64 / 30.0).abs() < 1e-9);
        }
        println!("{flag}: {} moments", moments.len());
        assert!(
            !moments.is_empty(),
            "{flag}: the query finds something on this video"
        );
    }
    // A moment query without a prompt that must hold is refused by clap, with a reason.
    let output = ws.run(&["moments", arg, "--not", "a dog"]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--prompt"), "{}", stderr(&output));
}

/// The streams of a file as ffprobe sees them: (codec type, codec name, duration in seconds).
fn streams(path: &Path) -> Vec<(String, String, f64)> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    value["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or("").to_string(),
                s["codec_name"].as_str().unwrap_or("").to_string(),
                s["duration"]
                    .as_str()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(f64::NAN),
            )
        })
        .collect()
}

#[test]
fn clips_start_and_end_on_exactly_the_frames_asked_for_on_users_files() {
    let ws = Workspace::new();
    let out_dir = tempfile::tempdir().unwrap();
    // Spans that start between keyframes (48 apart), on files with B-frames, open GOPs, start
    // offsets, a stream-copy trim, a capture cut mid-GOP, rotation and audio that starts first.
    let cases = [
        ("h264_bframes.mp4", 37, 121),
        ("audio_first.mp4", 50, 99),
        ("h264_open_gop.ts", 31, 88),
        ("capture_h264_mid_gop.ts", 5, 60),
        ("trimmed_stream_copy.mp4", 0, 40),
        ("mpeg2_open_gop_1.4s.ts", 13, 70),
        ("rotated_90.mp4", 100, 100),
    ];
    for (name, from, to) in cases {
        let source = crate::common::video(name);
        let patterns = testvideo::ffmpeg_patterns(&source).unwrap();
        let out = out_dir.path().join(format!("{name}.mp4"));
        let output = ws.run(&[
            "clip",
            source.to_str().unwrap(),
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let clip = testvideo::ffmpeg_patterns(&out).unwrap();
        assert_eq!(clip, patterns[from..=to], "{name}: frames {from}..={to}");
        let found = streams(&out);
        assert_eq!(found[0].0, "video");
        assert_eq!(found[0].1, "h264", "{name}: {found:?}");
        let has_audio = found.iter().any(|s| s.0 == "audio");
        assert_eq!(has_audio, name == "audio_first.mp4", "{name}: {found:?}");
        if has_audio {
            let audio = found.iter().find(|s| s.0 == "audio").unwrap();
            let video_s = (to - from + 1) as f64 / 30.0;
            // Within one AAC frame (1024 samples at 48 kHz) of the picture's length.
            assert!(
                (audio.2 - video_s).abs() <= 0.025,
                "{name}: audio {} s, video {video_s} s",
                audio.2
            );
        }
        assert!(!out.with_extension("partial.mp4").exists());
    }
    // Bad spans are refused with the reason, and leave no file.
    let source = crate::common::video("h264_bframes.mp4");
    let out = out_dir.path().join("bad.mp4");
    for (from, to) in [("50", "40"), ("0", "190")] {
        let output = ws.run(&[
            "clip",
            source.to_str().unwrap(),
            "--from",
            from,
            "--to",
            to,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(!output.status.success());
        assert!(
            stderr(&output).contains("from <= to <"),
            "{}",
            stderr(&output)
        );
        assert!(!out.exists());
    }
}
