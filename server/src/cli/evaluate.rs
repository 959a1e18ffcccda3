//! `evaluate`: each model's scores held against the video's labels (frame metrics as
//! scikit-learn computes them, events at the best-F1 threshold), and two models compared.
//! Reads caches only.

use std::path::Path;

use anyhow::{bail, Context};
use engine::evaluation::{evaluate, prompts_to_evaluate, ModelScores};
use engine::labels::{labels_from_csv, LabelStore};
use engine::video::FrameIndex;
use investigator_core::evaluation::{Evaluation, PromptEvaluation};
use investigator_core::labels::Labels;
use serde_json::json;

use super::args::{EvaluateArgs, ModelArgs};
use super::indexed::{open_indexed, Indexed};
use super::output::print_json;
use super::settings::resolve;
use super::CommandResult;

/// The labels of `path`: those in `file` when given, else the stored ones.
pub(super) fn labels_for(
    path: &Path,
    file: Option<&Path>,
    model: &ModelArgs,
) -> anyhow::Result<(Labels, std::sync::Arc<FrameIndex>)> {
    let mut one = model.clone();
    one.model.truncate(1);
    let settings = resolve(&one)?;
    let cache = &settings.embeddings_dir;
    let frame_index =
        FrameIndex::load_or_build(path, Some(cache)).context("cannot open the video")?;
    let labels = match file {
        Some(file) => {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let (labels, notes) = labels_from_csv(&bytes, &frame_index, None)
                .with_context(|| format!("{} is not a label file", file.display()))?;
            for note in notes {
                eprintln!("note: {note}");
            }
            labels
        }
        None => LabelStore::of_file(cache, path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .load(frame_index.frames())?,
    };
    Ok((labels, frame_index))
}

/// Each model named (or the default) opened on `path`, with its vectors for `prompts`.
pub(super) fn open_models(
    path: &Path,
    args: &ModelArgs,
    sample_fps: Option<f64>,
) -> anyhow::Result<Vec<Indexed>> {
    let names: Vec<Option<String>> = if args.model.is_empty() {
        vec![None]
    } else {
        args.model.iter().cloned().map(Some).collect()
    };
    names
        .into_iter()
        .map(|name| {
            let one = ModelArgs {
                model: name.clone().into_iter().collect(),
                ..args.clone()
            };
            open_indexed(path, &one, sample_fps)
                .with_context(|| format!("model {}", name.unwrap_or_else(|| "(default)".into())))
        })
        .collect()
}

/// Evaluates the opened models on the labelled `prompts`.
pub(super) fn evaluate_models(
    models: &[Indexed],
    prompts: &[String],
    labels: &Labels,
) -> anyhow::Result<Evaluation> {
    let mut inputs = Vec::new();
    for indexed in models {
        inputs.push(ModelScores {
            model: indexed.embedder.identity().name,
            file: &indexed.file,
            prompts: indexed.embed_prompts(prompts)?,
            fill_radius: indexed.radius,
            complete: indexed.complete,
        });
    }
    Ok(evaluate(&inputs, prompts, labels))
}

pub fn run(args: &EvaluateArgs) -> CommandResult {
    let path = args.video.as_path();
    let (labels, _) = labels_for(path, args.labels.as_deref(), &args.model)?;
    let prompts = prompts_to_evaluate(&labels, &args.prompts);
    if prompts.is_empty() {
        bail!(
            "{} has no labels{}: label it in the page, or import a CSV with `clip-investigator labels {} --import FILE`",
            path.display(),
            if args.prompts.is_empty() { String::new() } else { format!(" for {:?}", args.prompts) },
            path.display()
        );
    }
    let models = open_models(path, &args.model, args.sample_fps)?;
    let evaluation = evaluate_models(&models, &prompts, &labels)?;
    if args.json {
        return print_json(&to_json(path, &evaluation));
    }
    print_table(&evaluation);
    Ok(())
}

fn prompt_json(p: &PromptEvaluation) -> serde_json::Value {
    json!({
        "prompt": p.prompt,
        "ap": p.ap,
        "roc_auc": p.roc_auc,
        "best_f1": p.best_f1.map(|b| json!({
            "threshold": b.threshold,
            "precision": b.precision,
            "recall": b.recall,
            "f1": b.f1,
        })),
        "positives": p.positives,
        "negatives": p.negatives,
        "events": p.events.as_ref().map(|e| json!({
            "precision": e.precision,
            "recall": e.recall,
            "moments": e.moments,
            "segments": e.segments,
            "best_iou": e.best_iou,
        })),
        "notes": p.notes,
        "errors": p.errors,
    })
}

/// The JSON `evaluate --json` prints (and the tests compare with the page's panel).
pub fn to_json(path: &Path, evaluation: &Evaluation) -> serde_json::Value {
    let mut value = json!({
        "video": path.file_name().map(|n| n.to_string_lossy()),
        "ignored_frames": evaluation.ignored_frames,
        "models": evaluation.models.iter().map(|m| json!({
            "model": m.model,
            "prompts": m.prompts.iter().map(prompt_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    if !evaluation.comparison.is_empty() {
        value["comparison"] = json!(evaluation
            .comparison
            .iter()
            .map(|c| json!({
                "prompt": c.prompt,
                "frames": c.frames,
                "ap_first": c.first,
                "ap_second": c.second,
                "ap_difference": c.difference,
                "interval_95": c.interval.map(|(low, high)| [low, high]),
            }))
            .collect::<Vec<_>>());
    }
    value
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "—".into(), |v| format!("{v:.3}"))
}

fn print_table(evaluation: &Evaluation) {
    for model in &evaluation.models {
        println!("{}", model.model);
        println!(
            "  {:<24} {:>6} {:>7} {:>7} {:>9} {:>5} {:>5} {:>5} {:>7} {:>11}",
            "prompt", "AP", "ROC AUC", "best F1", "threshold", "P", "R", "pos", "neg", "events P/R"
        );
        for p in &model.prompts {
            let best = p.best_f1;
            println!(
                "  {:<24} {:>6} {:>7} {:>7} {:>9} {:>5} {:>5} {:>5} {:>7} {:>11}",
                format!("{:?}", p.prompt),
                number(p.ap),
                number(p.roc_auc),
                number(best.map(|b| b.f1)),
                best.map_or_else(|| "—".into(), |b| format!("{:.4}", b.threshold)),
                number(best.map(|b| b.precision)),
                number(best.map(|b| b.recall)),
                p.positives,
                p.negatives,
                format!(
                    "{}/{}",
                    number(p.events.as_ref().and_then(|e| e.precision)),
                    number(p.events.as_ref().and_then(|e| e.recall))
                ),
            );
            for note in &p.notes {
                println!("      note: {note}");
            }
        }
    }
    if evaluation.ignored_frames > 0 {
        println!(
            "({} frames ignored by the labels)",
            evaluation.ignored_frames
        );
    }
    if let [first, second, ..] = evaluation.models.as_slice() {
        println!(
            "AP of {} minus {} (95 % block-bootstrap interval):",
            first.model, second.model
        );
        for c in &evaluation.comparison {
            println!(
                "  {:<24} {:>7}  [{}, {}]  over {} frames",
                format!("{:?}", c.prompt),
                c.difference
                    .map_or_else(|| "—".into(), |d| format!("{d:+.3}")),
                c.interval
                    .map_or_else(|| "—".into(), |i| format!("{:+.3}", i.0)),
                c.interval
                    .map_or_else(|| "—".into(), |i| format!("{:+.3}", i.1)),
                c.frames
            );
        }
    }
}
