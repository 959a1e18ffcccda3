//! `export-dataset`: frames to fine-tune on, with their labels and every model's scores, as a
//! Hugging Face `imagefolder` dataset.

use anyhow::{bail, Context};
use engine::evaluation::prompts_to_evaluate;
use engine::export::dataset::{pick_frames, write_dataset, DatasetOptions, ImageSize};
use investigator_core::evaluation::evaluated_frames;

use super::args::{DatasetSize, ExportDatasetArgs};
use super::evaluate::{labels_for, open_models};
use super::CommandResult;

pub fn run(args: &ExportDatasetArgs) -> CommandResult {
    let path = args.video.as_path();
    if !(args.min_gap.is_finite() && args.min_gap >= 0.0) {
        bail!("--min-gap must be 0 or more seconds, not {}", args.min_gap);
    }
    let (labels, frame_index) = labels_for(path, args.labels.as_deref(), &args.model)?;
    let prompts = prompts_to_evaluate(&labels, &args.prompts);
    if prompts.is_empty() {
        bail!(
            "{} has no labels to export: label it in the page, or import a CSV with `clip-investigator labels {} --import FILE`",
            path.display(),
            path.display()
        );
    }
    let models = open_models(path, &args.model, args.sample_fps)?;
    let options = DatasetOptions {
        per_segment: args.per_segment,
        min_gap_s: args.min_gap,
        hard: args.hard_negatives,
        size: match args.size {
            DatasetSize::Full => ImageSize::Full,
            DatasetSize::Model => ImageSize::Model,
        },
        ..DatasetOptions::default()
    };
    let min_gap = (args.min_gap * frame_index.fps()).round() as u64;
    // Each model's scores per prompt, for every frame (filled as the chart shows them).
    let mut names = Vec::new();
    let mut curves = Vec::new();
    for indexed in &models {
        names.push(indexed.embedder.identity().name);
        curves.push(indexed.score_table(&prompts, 1, false)?.1);
    }
    // The first model decides which frames are hard.
    let first = &models[0];
    let rows = engine::search::cosine_rows(&first.file, &first.embed_prompts(&prompts)?);
    let mut picks = Vec::new();
    for (prompt, scores) in prompts.iter().zip(&rows) {
        let evaluated = evaluated_frames(&first.file.frames, scores, &labels, prompt);
        picks.extend(pick_frames(prompt, &labels, &evaluated, &options, min_gap));
    }
    let score = |model: usize, prompt: &str, frame: u64| -> Option<f64> {
        let p = prompts.iter().position(|q| q == prompt)?;
        let value = *curves[model][p].get(frame as usize)?;
        value.is_finite().then_some(f64::from(value))
    };
    let report = write_dataset(
        path,
        frame_index,
        &picks,
        &names,
        &score,
        Some(first.embedder.as_ref()),
        &options,
        &args.output,
    )
    .with_context(|| format!("cannot export the dataset to {}", args.output.display()))?;
    eprintln!(
        "wrote {}: {} rows ({} positive, {} negative), {} images, metadata.jsonl",
        args.output.display(),
        report.rows,
        report.positives,
        report.negatives,
        report.images
    );
    Ok(())
}
