//! Skipping similar frames (`--skip-similar LEVELS`): on the sample video and the test
//! videos, how many frames are skipped at each threshold, how much faster indexing gets, and
//! the largest error this causes in any prompt's score against embedding every frame.
//!
//!     cargo bench -p server --bench skip
//!
//! Model: the random-weight ViT-B/32 (see shared/vit_b32.rs), or `CLIP_BENCH_MODEL=FOLDER`.
//! Prompts: the CLIP list of the repository's config.yaml. A threshold is run only when the
//! next larger one skipped something: when every frame differs from the one before by at least
//! the largest threshold, no smaller threshold can skip either.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/vit_b32.rs"]
mod vit_b32;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use engine::embed::local::LocalClip;
use engine::embed::Embedder;
use engine::indexing::{index_video, IndexOptions, Progress, VideoToIndex};
use store::cache::EmbeddingFile;
use store::config::{ImageRuntime, Settings};

const THRESHOLDS: [f32; 3] = [4.0, 2.0, 1.0];

struct Run {
    vectors: Vec<f32>,
    embedded: u64,
    reused: u64,
    seconds: f64,
}

fn index(video: &VideoToIndex, clip: &LocalClip, skip: Option<f32>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let options = IndexOptions {
        skip_similar: skip,
        ..IndexOptions::new(dir.path().to_path_buf())
    };
    let report = index_video(
        video,
        clip,
        &options,
        &Progress::default(),
        &AtomicBool::new(false),
    )
    .unwrap();
    let header = video.header(clip, None);
    let file = EmbeddingFile::load_skipping(&report.cache_path, &header, skip)
        .unwrap()
        .unwrap();
    if let Some(record) = &file.skip {
        assert_eq!(record.reused.len() as u64, report.reused);
    }
    Run {
        vectors: file.vectors,
        embedded: report.embedded,
        reused: report.reused,
        seconds: report.seconds,
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let folder = vit_b32::bench_model();
    let clip = LocalClip::load_with(&folder, "bench", ImageRuntime::Auto).unwrap();
    let prompts = Settings::load(&root.join("config.yaml")).unwrap().prompts;
    let texts = clip.embed_texts(&prompts).unwrap();
    let dimension = clip.identity().dimension;

    let mut videos = vec![("sample.mp4".to_string(), root.join("data/sample.mp4"))];
    for (name, _) in common::specs() {
        videos.push((name.to_string(), common::video(name)));
    }

    println!(
        "Skipping similar frames: model {} ({} image engine), {} prompts from config.yaml",
        folder.file_name().unwrap_or_default().to_string_lossy(),
        clip.image_runtime(),
        prompts.len()
    );
    println!();
    println!("| video | frames | threshold (grey levels) | embedded | skipped | index time, skipping | index time, every frame | largest score error | smallest cosine to every-frame vector |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, path) in videos {
        let video = VideoToIndex::open(&path, None).unwrap();
        let frames = video.meta.frames;
        let mut runs: Vec<(f32, Run)> = Vec::new();
        for threshold in THRESHOLDS {
            if runs.last().is_some_and(|(_, r)| r.reused == 0) {
                break;
            }
            runs.push((threshold, index(&video, &clip, Some(threshold))));
        }
        let skipped_any = runs.iter().any(|(_, r)| r.reused > 0);
        let full = skipped_any.then(|| index(&video, &clip, None));
        for (threshold, run) in &runs {
            let (error, cosine) = match &full {
                Some(full) => {
                    let mut error = 0f32;
                    let mut cosine = 1f32;
                    for (a, b) in run
                        .vectors
                        .chunks(dimension)
                        .zip(full.vectors.chunks(dimension))
                    {
                        let dot =
                            |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
                        cosine = cosine.min(dot(a, b));
                        for text in &texts {
                            error = error.max((dot(a, text) - dot(b, text)).abs());
                        }
                    }
                    (format!("{error:.4}"), format!("{cosine:.4}"))
                }
                None => ("0 (nothing skipped)".into(), "1".into()),
            };
            println!(
                "| {name} | {frames} | {threshold} | {} | {} ({:.0}%) | {:.1} s | {} | {error} | {cosine} |",
                run.embedded,
                run.reused,
                100.0 * run.reused as f64 / frames.max(1) as f64,
                run.seconds,
                full.as_ref()
                    .map_or("same".to_string(), |f| format!("{:.1} s", f.seconds)),
            );
        }
        if runs.len() < THRESHOLDS.len() {
            println!(
                "| {name} | {frames} | < {} | {frames} | 0 (0%) | | | 0 | 1 |",
                runs.last().map_or(0.0, |r| r.0)
            );
        }
    }
}
