//! CLIP image-embedding throughput: ours (candle, in process) and, in the same run,
//! PyTorch + transformers on the same weights; then end-to-end `index` on the 720p test video.
//!
//!     cargo bench -p server --bench clip
//!
//! The model is the full ViT-B/32 architecture (openai/clip-vit-base-patch32's config) with
//! random weights written by this bench: speed does not depend on the weights' values. The
//! PyTorch column appears when `CLIP_BENCH_PYTHON` (default `python3`) imports torch and
//! transformers; see scripts/bench_pytorch_clip.py. Environment: `CLIP_BENCH_REPS=10,5,3`
//! (timed calls at batch 1, 8, 32), `CLIP_BENCH_THREADS` (PyTorch threads, default: all cores).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::clip::ClipModel;
use server::embed::local::LocalClip;
use server::embed::Embedder;

const BATCHES: [usize; 3] = [1, 8, 32];

/// openai/clip-vit-base-patch32's architecture, as its config.json states it.
const VIT_B32_CONFIG: &str = r#"{
  "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 512,
  "logit_scale_init_value": 2.6592,
  "text_config": {"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8,
    "num_hidden_layers": 12, "vocab_size": 49408, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "projection_dim": 512,
    "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1},
  "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
    "num_hidden_layers": 12, "image_size": 224, "patch_size": 32, "num_channels": 3,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "projection_dim": 512}
}"#;

/// Writes the random-weight ViT-B/32 folder once (kept between runs).
fn model_folder() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("vit-b32-random-v2");
    if dir.join("model.safetensors").is_file() {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), VIT_B32_CONFIG).unwrap();
    // The tiny fixture's tokenizer is the real CLIP BPE (49408 tokens), as ViT-B/32 uses.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    std::fs::copy(fixture.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    // candle makes up a class embedding when the variable store lacks one; create it first so
    // that it is saved and PyTorch reads the same value.
    vb.pp("vision_model.embeddings")
        .get_with_hints(
            768,
            "class_embedding",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )
        .unwrap();
    ClipModel::new(
        vb,
        &candle_transformers::models::clip::ClipConfig::vit_base_patch32(),
    )
    .unwrap();
    let partial = dir.join("model.safetensors.partial");
    varmap.save(&partial).unwrap();
    std::fs::rename(partial, dir.join("model.safetensors")).unwrap();
    dir
}

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

fn pytorch(model: &Path, reps: &str) -> Option<serde_json::Value> {
    let python = std::env::var("CLIP_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench_pytorch_clip.py");
    let threads = std::env::var("CLIP_BENCH_THREADS").unwrap_or_else(|_| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .to_string()
    });
    let output = Command::new(&python)
        .arg(script)
        .arg(model)
        .args(["--batches", "1,8,32", "--reps", reps, "--threads", &threads])
        .output();
    match output {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok(),
        Ok(o) => {
            eprintln!(
                "PyTorch peer skipped ({python}): {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            None
        }
        Err(e) => {
            eprintln!("PyTorch peer skipped: cannot run {python}: {e}");
            None
        }
    }
}

fn main() {
    let reps_text = std::env::var("CLIP_BENCH_REPS").unwrap_or_else(|_| "10,5,3".into());
    let reps: Vec<usize> = reps_text.split(',').map(|r| r.parse().unwrap()).collect();
    let folder = model_folder();
    let clip = LocalClip::load(&folder).unwrap();
    let size = clip.config().image_size;

    // Ours.
    let mut ours = Vec::new();
    let mut seed = 1u64;
    for (&batch, &n) in BATCHES.iter().zip(&reps) {
        let images: Vec<Vec<f32>> = (0..batch)
            .map(|_| {
                (0..3 * size * size)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((seed >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
                    })
                    .collect()
            })
            .collect();
        clip.embed_pixels(&images).unwrap(); // warm-up
        let times: Vec<f64> = (0..n)
            .map(|_| {
                let started = Instant::now();
                clip.embed_pixels(&images).unwrap();
                started.elapsed().as_secs_f64()
            })
            .collect();
        ours.push(times);
    }
    // A new prompt in the page costs one text forward pass.
    let mut text_ms: Vec<f64> = (0..10)
        .map(|i| {
            let prompt = vec![format!("a photo of a red door number {i}")];
            let started = Instant::now();
            clip.embed_texts(&prompt).unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    text_ms.sort_by(f64::total_cmp);
    drop(clip);

    // PyTorch, same weights, same run.
    let peer = pytorch(&folder, &reps_text);

    println!("ViT-B/32 image embeddings, images/s: median (min–max) of timed calls");
    println!();
    match &peer {
        Some(p) => {
            println!(
                "| batch | ours (candle) | PyTorch {} ({} threads) | ours / PyTorch |",
                p["torch"].as_str().unwrap_or("?"),
                p["threads"]
            );
            println!("| ---: | ---: | ---: | ---: |");
        }
        None => {
            println!("| batch | ours (candle) |");
            println!("| ---: | ---: |");
        }
    }
    for (i, &batch) in BATCHES.iter().enumerate() {
        let (ours_median, ours_text) = rate(batch, &ours[i]);
        match &peer {
            Some(p) => {
                let times: Vec<f64> = p["times"][batch.to_string()]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_f64().unwrap())
                    .collect();
                let (peer_median, peer_text) = rate(batch, &times);
                println!(
                    "| {batch} | {ours_text} | {peer_text} | {:.2} |",
                    ours_median / peer_median
                );
            }
            None => println!("| {batch} | {ours_text} |"),
        }
    }

    // End to end: the release binary indexing the 720p test video with this model.
    let video = common::video("h264_gop250.mp4");
    let embeddings = tempfile::tempdir().unwrap();
    let config = embeddings.path().join("config.yaml");
    std::fs::write(&config, "# defaults; the model comes from --model\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_clip-investigator"))
        .arg("index")
        .arg(&video)
        .arg("--model")
        .arg(&folder)
        .args(["--json", "--batch-size", "8", "--config"])
        .arg(&config)
        .env("CLIP_INVESTIGATOR_EMBEDDINGS", embeddings.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
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
        "| ... relative to embedding alone at batch 8 (median above) | {:.2} |",
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
