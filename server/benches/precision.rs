//! int8 against fp32, per model family, in one run: images/s at batch 1, 8 and 32 of our fp32
//! and int8 graphs (written from the safetensors, run by ONNX Runtime) beside the peer — ONNX
//! Runtime's Python package running `quantize_dynamic(per_channel=True, weight_type=QInt8)` on
//! a torch.onnx.export of the same tower (scripts/bench_quantize_dynamic.py) — and the accuracy
//! of each int8 model against its fp32 on the check's sample (64 frames of the 720p test video,
//! the 8 built-in images, 10 prompts); which layers are sensitive (ViT-B/32, one group of
//! layers in int8 at a time); `index` end to end in fp32 and int8.
//!
//!     cargo bench -p server --bench precision
//!
//! Models: the real architectures with random weights (speed does not depend on the values;
//! accuracy on random weights is what this machine can measure, see the README). The peer
//! columns appear when `CLIP_BENCH_PYTHON` (default `python3`) imports torch, transformers,
//! onnx and onnxruntime. Environment: `PRECISION_BENCH_REPS=10,3,2` (timed calls at batch 1, 8,
//! 32), `CLIP_BENCH_THREADS`, `PRECISION_BENCH_INDEX=0` to leave out the end-to-end runs.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/index_cli.rs"]
mod index_cli;
#[path = "shared/timing.rs"]
mod timing;
#[path = "shared/vit_b32.rs"]
mod vit_b32;

use std::path::{Path, PathBuf};
use std::process::Command;

use engine::embed::local::LocalClip;
use engine::embed::ort_vision::{GraphOptions, LinearLayers, OrtVision};
use engine::embed::Embedder;
use engine::precision::{agreement, machine, Agreement, Sample};
use store::config::ImageRuntime;

const BATCHES: [usize; 3] = [1, 8, 32];

fn threads() -> usize {
    std::env::var("CLIP_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Images/s of `embed` on `batch` of `pixels` (cycled): the median of `reps` timed calls.
fn rate(embed: &dyn Fn(&[Vec<f32>]), pixels: &[Vec<f32>], batch: usize, reps: usize) -> f64 {
    let images: Vec<Vec<f32>> = pixels.iter().cycle().take(batch).cloned().collect();
    embed(&images); // warm-up: ONNX Runtime allocates on a shape's first run
    let ms = timing::sorted_ms(reps, || embed(&images));
    batch as f64 * 1000.0 / timing::percentile(&ms, 0.5)
}

/// Multiply-accumulates per image of the parts of a ViT-Base tower (E 768, MLP 3072, 12
/// layers, 224 px): (in int8, kept fp32).
fn macs(patch: usize, siglip: bool) -> (f64, f64) {
    let (e, i, layers) = (768.0, 3072.0, 12.0);
    let patches = ((224 / patch) * (224 / patch)) as f64;
    let t = if siglip { patches } else { patches + 1.0 };
    let linear = layers * (4.0 * t * e * e + 2.0 * t * e * i);
    let attention = layers * 2.0 * t * t * e;
    let patch_embedding = patches * 3.0 * (patch * patch) as f64 * e;
    let tail = if siglip {
        2.0 * t * e * e + 2.0 * e * e + 2.0 * e * i // pooling head: kv over patches, q, out, MLP
    } else {
        e * 512.0 // projection
    };
    (linear, attention + patch_embedding + tail)
}

struct Peer {
    version: String,
    fp32: Vec<f64>,
    int8: Vec<f64>,
    accuracy: Agreement,
}

/// The Python peer on the same tower and images; `None` (and why on stderr) without Python.
fn peer(
    folder: &Path,
    pixels: &[Vec<f32>],
    texts: &[Vec<f32>],
    ranked: usize,
    reps: &str,
) -> Option<Peer> {
    let python = std::env::var("CLIP_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench_quantize_dynamic.py");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pixels.f32");
    let bytes: Vec<u8> = pixels
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(&file, bytes).unwrap();
    let out = dir.path().join("out");
    let output = Command::new(&python)
        .arg(&script)
        .arg(folder)
        .arg("--pixels")
        .arg(&file)
        .args(["--images", &pixels.len().to_string()])
        .arg("--out")
        .arg(&out)
        .args(["--batches", "1,8,32", "--reps", reps])
        .args(["--threads", &threads().to_string()])
        .output();
    let json: serde_json::Value = match output {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).ok()?,
        Ok(o) => {
            let stderr = String::from_utf8_lossy(&o.stderr);
            eprintln!(
                "peer skipped ({python}): {}",
                stderr.lines().last().unwrap_or("")
            );
            return None;
        }
        Err(e) => {
            eprintln!("peer skipped: cannot run {python}: {e}");
            return None;
        }
    };
    let read = |name: &str| -> Vec<Vec<f32>> {
        let bytes = std::fs::read(format!("{}-{name}.f32", out.display())).unwrap();
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let dimension = values.len() / pixels.len();
        values.chunks(dimension).map(<[f32]>::to_vec).collect()
    };
    let rates = |name: &str| -> Vec<f64> {
        BATCHES
            .iter()
            .map(|b| {
                let mut seconds: Vec<f64> = json[name][b.to_string()]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_f64().unwrap())
                    .collect();
                seconds.sort_by(f64::total_cmp);
                *b as f64 / timing::percentile(&seconds, 0.5)
            })
            .collect()
    };
    Some(Peer {
        version: json["onnxruntime"].as_str().unwrap_or("?").into(),
        fp32: rates("fp32"),
        int8: rates("int8"),
        accuracy: agreement(&read("fp32"), &read("int8"), texts, ranked),
    })
}

fn embed_all(model: &LocalClip, tower: Option<&OrtVision>, pixels: &[Vec<f32>]) -> Vec<Vec<f32>> {
    pixels
        .chunks(8)
        .flat_map(|batch| match tower {
            Some(tower) => model.embed_pixels_on(tower, batch).unwrap(),
            None => model.embed_pixels(batch).unwrap(),
        })
        .collect()
}

fn accuracy_cells(a: &Agreement) -> String {
    format!(
        "{:.4} | {:.4} | {:.3} | {:.3}",
        a.cosine_min, a.cosine_mean, a.frame_top10_overlap, a.prompt_top5_overlap
    )
}

fn main() {
    let reps_text = std::env::var("PRECISION_BENCH_REPS").unwrap_or_else(|_| "10,3,2".into());
    let reps: Vec<usize> = reps_text.split(',').map(|r| r.parse().unwrap()).collect();
    let with_index = std::env::var("PRECISION_BENCH_INDEX").map_or(true, |v| v != "0");
    let video = common::video("h264_gop250.mp4");
    let sample = Sample::gather(Some(&video), None, &[]);
    let ranked = sample.video_frames;
    let models: [(&str, PathBuf, usize, bool); 3] = [
        ("CLIP ViT-B/32", vit_b32::model_folder(), 32, false),
        (
            "CLIP ViT-B/16",
            vit_b32::vit_base_folder(16, "vit-b16-random-v1"),
            16,
            false,
        ),
        ("SigLIP B/16-224", vit_b32::siglip_b16_folder(), 16, true),
    ];
    let mut speed_rows = Vec::new();
    let mut accuracy_rows = Vec::new();
    let mut sensitivity_rows = Vec::new();
    let mut versions = None;
    for (name, folder, patch, siglip) in &models {
        let model = LocalClip::load_with(folder, name, ImageRuntime::Onnxruntime).unwrap();
        let int8 = model.ort_tower(GraphOptions::INT8).unwrap();
        let pixels: Vec<Vec<f32>> = sample
            .images
            .iter()
            .map(|(_, m)| model.preprocess_frame(m).unwrap())
            .collect();
        let texts = model.embed_texts(&sample.prompts).unwrap();
        let fp32_vectors = embed_all(&model, None, &pixels);
        let ours = agreement(
            &fp32_vectors,
            &embed_all(&model, Some(&int8), &pixels),
            &texts,
            ranked,
        );
        let fp32_rates: Vec<f64> = BATCHES
            .iter()
            .zip(&reps)
            .map(|(&b, &n)| rate(&|x| drop(model.embed_pixels(x).unwrap()), &pixels, b, n))
            .collect();
        let int8_rates: Vec<f64> = BATCHES
            .iter()
            .zip(&reps)
            .map(|(&b, &n)| {
                rate(
                    &|x| drop(model.embed_pixels_on(&int8, x).unwrap()),
                    &pixels,
                    b,
                    n,
                )
            })
            .collect();
        if *patch == 32 && !siglip {
            let groups = [
                (
                    "q, k, v",
                    LinearLayers {
                        qkv: true,
                        ..LinearLayers::NONE
                    },
                ),
                (
                    "attention out",
                    LinearLayers {
                        out: true,
                        ..LinearLayers::NONE
                    },
                ),
                (
                    "MLP fc1",
                    LinearLayers {
                        fc1: true,
                        ..LinearLayers::NONE
                    },
                ),
                (
                    "MLP fc2",
                    LinearLayers {
                        fc2: true,
                        ..LinearLayers::NONE
                    },
                ),
                ("all four (the app's int8)", LinearLayers::ALL),
            ];
            for (group, layers) in groups {
                let tower = model
                    .ort_tower(GraphOptions {
                        int8: layers,
                        class_only_last: true,
                    })
                    .unwrap();
                let a = agreement(
                    &fp32_vectors,
                    &embed_all(&model, Some(&tower), &pixels),
                    &texts,
                    ranked,
                );
                sensitivity_rows.push(format!("| {group} | {} |", accuracy_cells(&a)));
            }
        }
        drop((int8, model));
        let peer = peer(folder, &pixels, &texts, ranked, &reps_text);
        if let Some(p) = &peer {
            versions.get_or_insert(p.version.clone());
        }
        let (int8_macs, fp32_macs) = macs(*patch, *siglip);
        let cell = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
        for (i, batch) in BATCHES.iter().enumerate() {
            speed_rows.push(format!(
                "| {name} | {batch} | {:.1} | {:.1} | **{:.2}x** | {} | {} | {} |",
                fp32_rates[i],
                int8_rates[i],
                int8_rates[i] / fp32_rates[i],
                cell(peer.as_ref().map(|p| p.fp32[i])),
                cell(peer.as_ref().map(|p| p.int8[i])),
                peer.as_ref().map_or("–".into(), |p| format!(
                    "{:.2}x",
                    int8_rates[i] / p.int8[i]
                )),
            ));
        }
        accuracy_rows.push(format!("| {name} | ours | {} |", accuracy_cells(&ours)));
        if let Some(p) = &peer {
            accuracy_rows.push(format!(
                "| {name} | peer (quantize_dynamic) | {} |",
                accuracy_cells(&p.accuracy)
            ));
        }
        accuracy_rows.push(format!(
            "| {name} | (share of the multiply-adds in int8: {:.1} %) | | | | |",
            100.0 * int8_macs / (int8_macs + fp32_macs)
        ));
        eprintln!("{name}: done");
    }

    let index = with_index.then(|| {
        let folder = vit_b32::model_folder();
        let run = |precision: &str| {
            let dir = tempfile::tempdir().unwrap();
            let report = index_cli::index_json(
                &video,
                &folder,
                dir.path(),
                &["--batch-size", "8", "--precision", precision],
            );
            (
                report["frames_per_s"].as_f64().unwrap(),
                report["planned"].as_u64().unwrap_or(0),
            )
        };
        (run("fp32"), run("int8"))
    });

    println!("Machine: {}", machine());
    println!(
        "{} threads per engine; peer: onnxruntime {} (Python); images/s are medians of timed calls (reps {reps_text})",
        threads(),
        versions.as_deref().unwrap_or("– (not run)")
    );
    println!();
    println!("| model | batch | ours fp32 | ours int8 | int8 / fp32 | peer fp32 | peer int8 | ours int8 / peer int8 |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    speed_rows.iter().for_each(|r| println!("{r}"));
    println!();
    println!(
        "Accuracy of int8 against its own fp32 on the check's sample ({} frames of the 720p test video, {} built-in images, {} prompts):",
        sample.video_frames,
        sample.images.len() - sample.video_frames,
        sample.prompts.len()
    );
    println!();
    println!("| model | int8 by | worst cosine | mean cosine | top-10 frames kept | top-5 prompts kept |");
    println!("|---|---|---:|---:|---:|---:|");
    accuracy_rows.iter().for_each(|r| println!("{r}"));
    println!();
    println!("ViT-B/32, one group of layers in int8 at a time (the rest fp32):");
    println!();
    println!("| in int8 | worst cosine | mean cosine | top-10 frames kept | top-5 prompts kept |");
    println!("|---|---:|---:|---:|---:|");
    sensitivity_rows.iter().for_each(|r| println!("{r}"));
    if let Some(((fp32, frames), (int8, _))) = index {
        println!();
        println!(
            "index end to end (720p test video, {frames} frames, ViT-B/32, batch 8): fp32 {fp32:.1} frames/s, int8 {int8:.1} frames/s ({:.2}x)",
            int8 / fp32
        );
    }
}
