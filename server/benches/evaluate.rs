//! Evaluating a 60-minute video from its caches: the metrics of 5 labelled prompts (20
//! segments each, 10 ignored spans) for one model, and for two compared (with the 1,000-draw
//! block bootstrap), on synthetic embeddings of 108,000 frames x 512 (ViT-B/32's width) that
//! drift slowly, as neighbouring frames of a video do; then `evaluate --json` end to end on a
//! real hour of video indexed with the tiny model (the CLI reads the cache and the labels: it
//! embeds nothing but the prompts, from the text cache).
//!
//!     cargo bench -p server --bench evaluate
//!
//! The hour of video (ffmpeg's testsrc2 at 256x144) and its index are made on first run in the
//! target folder and kept.

#[path = "shared/synthetic.rs"]
mod synthetic;
#[path = "shared/timing.rs"]
mod timing;

use std::path::PathBuf;
use std::process::Command;

use engine::evaluation::{evaluate, ModelScores};
use investigator_core::labels::{Labels, Segment, IGNORE};
use store::cache::EmbeddingFile;
use timing::sorted_ms;

const FRAMES: u64 = 108_000;
const DIM: usize = 512;
const PROMPTS: [&str; 5] = ["a dog", "stairs", "a kitchen", "a red door", "the sea"];

/// A cache whose vectors take a slow random walk (each frame a small step from the last).
fn drifting_cache(seed: u64) -> EmbeddingFile {
    let mut file = synthetic::cache(1, 30, DIM);
    file.header.video_frames = FRAMES;
    file.frames.clear();
    file.vectors.clear();
    let mut state = seed;
    let mut current = synthetic::unit(&mut state, DIM);
    for n in 0..FRAMES {
        let step = synthetic::unit(&mut state, DIM);
        for (c, s) in current.iter_mut().zip(&step) {
            *c += 0.08 * s;
        }
        engine::embed::l2_normalize(&mut current);
        file.frames.push(n);
        file.vectors.extend_from_slice(&current);
    }
    file
}

fn labels() -> Labels {
    let mut labels = Labels::default();
    for (p, prompt) in PROMPTS.iter().enumerate() {
        for k in 0..20u64 {
            let start = (k * 5_400 + p as u64 * 977) % (FRAMES - 400);
            labels.segments.push(Segment {
                prompt: prompt.to_string(),
                start,
                end: start + 150 + (k * 37) % 200,
            });
        }
    }
    for k in 0..10u64 {
        let start = k * 10_800 + 5_000;
        labels.segments.push(Segment {
            prompt: IGNORE.into(),
            start,
            end: start + 60,
        });
    }
    labels.normalize();
    labels
}

fn row(what: &str, mut f: impl FnMut()) {
    f();
    let ms = sorted_ms(5, f);
    println!("| {what} | {:.0} ({:.0}–{:.0}) |", ms[2], ms[0], ms[4]);
}

fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn main() {
    let (a, b) = (drifting_cache(7), drifting_cache(8));
    let labels = labels();
    let prompts: Vec<String> = labels.prompts();
    let mut seed = 99;
    let vectors: Vec<Vec<f32>> = prompts
        .iter()
        .map(|_| synthetic::unit(&mut seed, DIM))
        .collect();
    let model = |name: &str, file| ModelScores {
        model: name.into(),
        file,
        prompts: vectors.clone(),
        fill_radius: 0,
        complete: true,
    };
    println!("60-minute video at 30 fps ({FRAMES} frames x {DIM}), 5 labelled prompts (100 segments, 10 ignored spans); ms: median (min–max) of 5 runs");
    println!();
    println!("| work | ms |");
    println!("| --- | ---: |");
    row(
        "evaluate, one model (metrics, PR curves, events, errors)",
        || drop(evaluate(&[model("a", &a)], &prompts, &labels)),
    );
    row(
        "evaluate, two models compared (1,000 block-bootstrap draws per prompt)",
        || {
            drop(evaluate(
                &[model("a", &a), model("b", &b)],
                &prompts,
                &labels,
            ))
        },
    );
    end_to_end();
}

/// `evaluate --json` on an hour of real video indexed with the tiny model.
fn end_to_end() {
    let dir = target().join("bench-evaluate");
    std::fs::create_dir_all(&dir).unwrap();
    let bin = target().join("release/clip-investigator");
    if !bin.exists() {
        println!("\n(end to end skipped: build the release binary first, `cargo leptos build --release`)");
        return;
    }
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!("video_path: hour.mp4\nmodel: {tiny:?}\nembeddings_dir: embeddings\n"),
    )
    .unwrap();
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
            ])
            .arg("testsrc2=size=256x144:rate=30")
            .args([
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
    let run = |args: &[&str]| {
        let out = Command::new(&bin)
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let v = video.to_str().unwrap();
    run(&["index", v, "--json"]);
    let csv = dir.join("labels.csv");
    std::fs::write(&csv, labels().to_csv()).unwrap();
    run(&["labels", v, "--import", csv.to_str().unwrap(), "--replace"]);
    run(&["evaluate", v, "--json"]); // the prompts' text vectors go to the text cache
    let ms = sorted_ms(5, || drop(run(&["evaluate", v, "--json"])));
    println!(
        "| `evaluate --json`, whole process, hour of video (108,000 frames, tiny model, 16 wide) | {:.0} ({:.0}–{:.0}) |",
        ms[2], ms[0], ms[4]
    );
}
