//! Per model family, in one run: image embeddings/s at batch 8 and 32 on the default engine
//! (ONNX Runtime with the graph written from the safetensors, else candle) beside the
//! `onnxruntime` Python package on a torch.onnx.export of the same tower and weights
//! (scripts/bench_onnxruntime_clip.py); one text pass (a new prompt); and `index` end to end on
//! the 720p test video.
//!
//!     cargo bench -p server --bench families
//!
//! The models are the real architectures with random weights written by this bench (speed does
//! not depend on the weights' values): openai/clip-vit-base-patch32's and -patch16's configs,
//! and google/siglip-base-patch16-224's; PE-Core-B-16 in open_clip's layout and SigLIP 2 NaFlex
//! B/16 at 256 patches (a 720p frame: a 12x21 grid) are written by scripts/make_bench_models.py
//! with `CLIP_BENCH_PYTHON` (left out where it cannot run). The peer column appears when `CLIP_BENCH_PYTHON`
//! (default `python3`) imports torch, transformers, onnx and onnxruntime. Environment:
//! `FAMILIES_BENCH_REPS=5,3` (timed calls at batch 8, 32), `CLIP_BENCH_THREADS` (threads of
//! every engine, default: all cores), `FAMILIES_BENCH_INDEX=0` to leave out the end-to-end runs.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/index_cli.rs"]
mod index_cli;
#[path = "shared/vit_b32.rs"]
mod vit_b32;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use engine::embed::local::LocalClip;
use engine::embed::Embedder;
use store::config::ImageRuntime;

const BATCHES: [usize; 2] = [8, 32];

/// openai/clip-vit-base-patch16's architecture: ViT-B/32's with 16-pixel patches.
fn vit_b16_folder() -> PathBuf {
    vit_b32::vit_base_folder(16, "vit-b16-random-v1")
}

fn threads() -> usize {
    std::env::var("CLIP_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Median images/s over the timed calls.
fn rate(batch: usize, seconds: &[f64]) -> f64 {
    let mut rates: Vec<f64> = seconds.iter().map(|s| batch as f64 / s).collect();
    median(&mut rates)
}

/// A random-weight model of `kind` written by scripts/make_bench_models.py (with
/// `CLIP_BENCH_PYTHON`, which needs torch, open_clip and transformers), kept between runs.
fn python_model(kind: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{kind}-random-v1"));
    let done = dir.join("written");
    if done.is_file() {
        return Some(dir);
    }
    let python = std::env::var("CLIP_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make_bench_models.py");
    let status = Command::new(&python)
        .arg(&script)
        .arg(kind)
        .arg(&dir)
        .status();
    match status {
        Ok(s) if s.success() => {
            std::fs::write(&done, "").ok()?;
            Some(dir)
        }
        _ => None,
    }
}

/// Deterministic pseudo-random pixel tensors (the values do not change the speed).
fn test_images(batch: usize, (height, width): (usize, usize)) -> Vec<Vec<f32>> {
    let mut seed = 1u64;
    (0..batch)
        .map(|_| {
            (0..3 * height * width)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
                })
                .collect()
        })
        .collect()
}

/// The onnxruntime Python package on the same tower: seconds per call at each batch.
fn peer(model: &Path, reps: &str) -> Option<serde_json::Value> {
    let python = std::env::var("CLIP_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench_onnxruntime_clip.py");
    let batches = BATCHES.map(|b| b.to_string()).join(",");
    let output = Command::new(&python)
        .arg(&script)
        .arg(model)
        .args(["--batches", &batches, "--reps", reps])
        .args(["--threads", &threads().to_string()])
        .output();
    match output {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            eprintln!(
                "peer skipped ({python}): {}",
                stderr.lines().last().unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("peer skipped: cannot run {python}: {e}");
            None
        }
    }
}

/// `index` of the 720p test video with `model`: frames/s and the frames indexed.
fn index_end_to_end(model: &Path) -> (f64, u64) {
    let embeddings = tempfile::tempdir().unwrap();
    let video = common::video("h264_gop250.mp4");
    let report = index_cli::index_json(&video, model, embeddings.path(), &["--batch-size", "8"]);
    (
        report["frames_per_s"].as_f64().unwrap(),
        report["planned"].as_u64().unwrap_or(0),
    )
}

struct Row {
    name: &'static str,
    engine: &'static str,
    ours: Vec<f64>,
    peer: Option<(String, Vec<f64>)>,
    text_ms: f64,
    index: Option<(f64, u64)>,
}

fn main() {
    let reps_text = std::env::var("FAMILIES_BENCH_REPS").unwrap_or_else(|_| "5,3".into());
    let reps: Vec<usize> = reps_text.split(',').map(|r| r.parse().unwrap()).collect();
    let with_index = std::env::var("FAMILIES_BENCH_INDEX").map_or(true, |v| v != "0");
    let mut models: Vec<(&str, PathBuf)> = vec![
        ("CLIP ViT-B/32", vit_b32::model_folder()),
        ("CLIP ViT-B/16", vit_b16_folder()),
        ("SigLIP B/16-224", vit_b32::siglip_b16_folder()),
    ];
    for (name, kind) in [
        ("PE-Core B/16 (open_clip layout)", "pe-core-b16"),
        ("SigLIP 2 NaFlex B/16, 256 patches", "naflex-b16"),
    ] {
        match python_model(kind) {
            Some(folder) => models.push((name, folder)),
            None => eprintln!("{name}: left out (its random-weight folder needs {kind} from scripts/make_bench_models.py)"),
        }
    }
    let mut rows = Vec::new();
    for (name, folder) in &models {
        let model = LocalClip::load_with(folder, name, ImageRuntime::Auto).unwrap();
        // A 720p frame's input: the fixed size, or (NaFlex) its own patch grid.
        let frame = opencv::core::Mat::new_rows_cols_with_default(
            720,
            1280,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::all(0.0),
        )
        .unwrap();
        let size = model.input_size_for(&frame);
        let ours: Vec<f64> = BATCHES
            .iter()
            .zip(&reps)
            .map(|(&batch, &n)| {
                let images = test_images(batch, size);
                model.embed_pixels_sized(&images, size).unwrap(); // warm-up
                let seconds: Vec<f64> = (0..n)
                    .map(|_| {
                        let started = Instant::now();
                        model.embed_pixels_sized(&images, size).unwrap();
                        started.elapsed().as_secs_f64()
                    })
                    .collect();
                rate(batch, &seconds)
            })
            .collect();
        // A new prompt costs one text pass (candle).
        let mut text_ms: Vec<f64> = (0..10)
            .map(|i| {
                let prompt = vec![format!("a photo of a red door number {i}")];
                let started = Instant::now();
                model.embed_texts(&prompt).unwrap();
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        let engine = model.image_runtime();
        drop(model);
        let peer = peer(folder, &reps_text).map(|p| {
            let rates = BATCHES
                .iter()
                .map(|b| {
                    let seconds: Vec<f64> = p["times"][b.to_string()]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_f64().unwrap())
                        .collect();
                    rate(*b, &seconds)
                })
                .collect();
            (p["onnxruntime"].as_str().unwrap_or("?").to_string(), rates)
        });
        let index = with_index.then(|| index_end_to_end(folder));
        rows.push(Row {
            name,
            engine,
            ours,
            peer,
            text_ms: median(&mut text_ms),
            index,
        });
        eprintln!("{name}: done");
    }

    println!(
        "Per model family (random weights at the real shapes), {} threads each; images/s are medians of timed calls",
        threads()
    );
    println!();
    let peer_version = rows
        .iter()
        .find_map(|r| r.peer.as_ref().map(|p| p.0.clone()));
    let mut header = "| model | default engine | ours, batch 8 | ours, batch 32 |".to_string();
    let mut rule = "| --- | --- | ---: | ---: |".to_string();
    if let Some(v) = &peer_version {
        header += &format!(
            " onnxruntime {v} (Python), batch 8 | batch 32 | ours / onnxruntime, batch 8 | batch 32 |"
        );
        rule += " ---: | ---: | ---: | ---: |";
    }
    header += " text pass (ms) | `index` 720p, frames/s |";
    rule += " ---: | ---: |";
    println!("{header}");
    println!("{rule}");
    for r in &rows {
        let mut line = format!(
            "| {} | {} | {:.1} | {:.1} |",
            r.name, r.engine, r.ours[0], r.ours[1]
        );
        if peer_version.is_some() {
            match &r.peer {
                Some((_, p)) => {
                    line += &format!(
                        " {:.1} | {:.1} | {:.2} | {:.2} |",
                        p[0],
                        p[1],
                        r.ours[0] / p[0],
                        r.ours[1] / p[1]
                    )
                }
                None => line += " — | — | — | — |",
            }
        }
        line += &format!(" {:.1} |", r.text_ms);
        line += &match r.index {
            Some((fps, frames)) => format!(" {fps:.1} ({frames} frames) |"),
            None => " — |".into(),
        };
        println!("{line}");
    }
}
