//! CLIP image-embedding throughput: ours on both image engines (ONNX Runtime with the graph we
//! write from the safetensors, and candle) and, in the same run, two peers on the same weights:
//! PyTorch + transformers, and the `onnxruntime` Python package on a torch.onnx.export of the
//! same tower; then end-to-end `index` on the 720p test video.
//!
//!     cargo bench -p server --bench clip
//!
//! The model is the full ViT-B/32 architecture (openai/clip-vit-base-patch32's config) with
//! random weights written by this bench: speed does not depend on the weights' values. The
//! peer columns appear when `CLIP_BENCH_PYTHON` (default `python3`) imports torch and
//! transformers (and onnx + onnxruntime); see scripts/bench_pytorch_clip.py and
//! scripts/bench_onnxruntime_clip.py. Environment: `CLIP_BENCH_REPS=10,5,3` (timed calls at
//! batch 1, 8, 32), `CLIP_BENCH_THREADS` (threads of every engine, default: all cores).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/index_cli.rs"]
mod index_cli;
#[path = "shared/vit_b32.rs"]
mod vit_b32;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use engine::embed::local::LocalClip;
use engine::embed::Embedder;
use store::config::ImageRuntime;

const BATCHES: [usize; 3] = [1, 8, 32];

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// "median (min–max)" of images/s over the timed calls.
fn rate(batch: usize, seconds: &[f64]) -> (f64, String) {
    let mut rates: Vec<f64> = seconds.iter().map(|s| batch as f64 / s).collect();
    rates.sort_by(f64::total_cmp);
    let m = median(&rates);
    (
        m,
        format!("{m:.1} ({:.1}–{:.1})", rates[0], rates[rates.len() - 1]),
    )
}

fn threads() -> usize {
    std::env::var("CLIP_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs a peer script; its JSON has "times": {batch: [seconds per call]}.
fn peer(script: &str, model: &Path, reps: &str) -> Option<serde_json::Value> {
    let python = std::env::var("CLIP_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(script);
    let threads = threads().to_string();
    let output = Command::new(&python)
        .arg(&script)
        .arg(model)
        .args(["--batches", "1,8,32", "--reps", reps, "--threads", &threads])
        .output();
    match output {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        Ok(o) => {
            eprintln!(
                "peer {} skipped ({python}): {}",
                script.display(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!(
                "peer {} skipped: cannot run {python}: {e}",
                script.display()
            );
            None
        }
    }
}

/// Deterministic pseudo-random pixel tensors (the values do not change the speed).
fn test_images(batch: usize, size: usize, seed: &mut u64) -> Vec<Vec<f32>> {
    (0..batch)
        .map(|_| {
            (0..3 * size * size)
                .map(|_| {
                    *seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
                })
                .collect()
        })
        .collect()
}

/// Seconds per call at each batch size, after one warm-up call.
fn time_engine(clip: &LocalClip, reps: &[usize]) -> Vec<Vec<f64>> {
    let size = clip.input_size().unwrap().0;
    let mut seed = 1u64;
    BATCHES
        .iter()
        .zip(reps)
        .map(|(&batch, &n)| {
            let images = test_images(batch, size, &mut seed);
            clip.embed_pixels(&images).unwrap(); // warm-up
            (0..n)
                .map(|_| {
                    let started = Instant::now();
                    clip.embed_pixels(&images).unwrap();
                    started.elapsed().as_secs_f64()
                })
                .collect()
        })
        .collect()
}

fn peer_times(peer: &serde_json::Value, batch: usize) -> Vec<f64> {
    peer["times"][batch.to_string()]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect()
}

fn main() {
    let reps_text = std::env::var("CLIP_BENCH_REPS").unwrap_or_else(|_| "10,5,3".into());
    let reps: Vec<usize> = reps_text.split(',').map(|r| r.parse().unwrap()).collect();
    let folder = vit_b32::model_folder();

    // Ours, both engines; then how far apart their embeddings are (both are fp32).
    let onnx = LocalClip::load_with(&folder, "vit-b32", ImageRuntime::Onnxruntime).unwrap();
    let ours_onnx = time_engine(&onnx, &reps);
    let candle = LocalClip::load_with(&folder, "vit-b32", ImageRuntime::Candle).unwrap();
    let ours_candle = time_engine(&candle, &reps);
    let check = test_images(8, candle.input_size().unwrap().0, &mut 7);
    let (a, b) = (
        onnx.embed_pixels(&check).unwrap(),
        candle.embed_pixels(&check).unwrap(),
    );
    let min_cosine = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>())
        .fold(f32::INFINITY, f32::min);
    drop(onnx);
    // A new prompt in the page costs one text forward pass (candle, whatever the image engine).
    let mut text_ms: Vec<f64> = (0..10)
        .map(|i| {
            let prompt = vec![format!("a photo of a red door number {i}")];
            let started = Instant::now();
            candle.embed_texts(&prompt).unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    text_ms.sort_by(f64::total_cmp);
    drop(candle);

    // The peers, same weights, same run.
    let pytorch = peer("bench_pytorch_clip.py", &folder, &reps_text);
    let onnxruntime = peer("bench_onnxruntime_clip.py", &folder, &reps_text);

    println!(
        "ViT-B/32 image embeddings, images/s: median (min–max) of timed calls; {} threads each",
        threads()
    );
    println!();
    let mut header = "| batch | ours: ONNX Runtime engine | ours: candle engine |".to_string();
    let mut rule = "| ---: | ---: | ---: |".to_string();
    if let Some(p) = &pytorch {
        header += &format!(" PyTorch {} |", p["torch"].as_str().unwrap_or("?"));
        rule += " ---: |";
    }
    if let Some(p) = &onnxruntime {
        header += &format!(
            " onnxruntime {} (torch.onnx export) | ours (best) / onnxruntime |",
            p["onnxruntime"].as_str().unwrap_or("?")
        );
        rule += " ---: | ---: |";
    }
    println!("{header}");
    println!("{rule}");
    for (i, &batch) in BATCHES.iter().enumerate() {
        let (onnx_median, onnx_text) = rate(batch, &ours_onnx[i]);
        let (candle_median, candle_text) = rate(batch, &ours_candle[i]);
        let mut row = format!("| {batch} | {onnx_text} | {candle_text} |");
        if let Some(p) = &pytorch {
            row += &format!(" {} |", rate(batch, &peer_times(p, batch)).1);
        }
        if let Some(p) = &onnxruntime {
            let (peer_median, peer_text) = rate(batch, &peer_times(p, batch));
            row += &format!(
                " {peer_text} | {:.2} |",
                onnx_median.max(candle_median) / peer_median
            );
        }
        println!("{row}");
    }
    println!();
    println!("smallest cosine between the two engines' embeddings (8 images): {min_cosine:.6}");
    let ours = &ours_onnx;

    // End to end: the release binary indexing the 720p test video with this model.
    let video = common::video("h264_gop250.mp4");
    let embeddings = tempfile::tempdir().unwrap();
    let report = index_cli::index_json(&video, &folder, embeddings.path(), &["--batch-size", "8"]);
    let cache = Path::new(report["cache"].as_str().unwrap());
    let cache_bytes = std::fs::metadata(cache).unwrap().len();
    println!();
    println!(
        "| end-to-end `index`, 1280x720 H.264, {} frames, batch 8 | value |",
        report["planned"]
    );
    println!("| --- | ---: |");
    let index_fps = report["frames_per_s"].as_f64().unwrap();
    println!("| frames/s (decode + preprocess + embed + checkpoints) | {index_fps:.1} |");
    println!(
        "| ... relative to embedding alone at batch 8 (ONNX Runtime engine, median above) | {:.2} |",
        index_fps / rate(8, &ours[1]).0
    );
    println!(
        "| peak RSS of the process | {:.0} MB |",
        report["peak_rss_mb"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "| one text forward pass (a new prompt), median (min–max) of 10 | {:.1} ms ({:.1}–{:.1}) |",
        (text_ms[4] + text_ms[5]) / 2.0,
        text_ms[0],
        text_ms[9]
    );
    println!(
        "| cache file per 1,000 frames | {:.2} MB |",
        cache_bytes as f64 / report["planned"].as_f64().unwrap() * 1000.0 / 1e6
    );
}
