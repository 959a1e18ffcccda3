//! `benchmark`: a public moment-retrieval benchmark scored for each model named, with the
//! official evaluator's metrics (`investigator_core::benchmark`). Reads the videos' caches and
//! the text cache only: videos not indexed with a model are listed as skipped with the command
//! that indexes them.
//!
//! Invariants:
//! - every query is scored or listed as skipped with why (its video missing or not indexed,
//!   its windows past the video's end, what the annotation file itself gets wrong);
//! - the predictions file is the official layout the evaluator reads unchanged, written whole
//!   or not at all (atomically), and only when it is one the evaluator accepts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use investigator_core::benchmark::annotations::{parse, Query, Skipped, MAX_ANNOTATION_BYTES};
use investigator_core::benchmark::predict::predict;
use investigator_core::benchmark::{evaluate, GroundTruth, Metrics, Prediction};
use serde_json::{json, Value};

use super::args::{BenchmarkArgs, ModelArgs};
use super::indexed::{open_indexed, Indexed};
use super::output::print_json;
use super::CommandResult;

/// File names a benchmark's `vid` may have in the videos folder.
const VIDEO_EXTENSIONS: [&str; 7] = ["mp4", "mkv", "webm", "mov", "avi", "m4v", "mpg"];

/// One model's run over the benchmark.
struct Scored {
    model: String,
    /// Each scored query's prediction, with its query text and video id.
    predictions: Vec<(Prediction, String, String)>,
    /// Whether highlight detection is scored (every query has saliency annotations).
    highlights: bool,
    truth: Vec<GroundTruth>,
    skipped: Vec<Skipped>,
    metrics: Option<Metrics>,
}

pub fn run(args: &BenchmarkArgs) -> CommandResult {
    let bytes = read_annotations(&args.annotations)?;
    let annotations = parse(&bytes, args.format).with_context(|| {
        format!(
            "{} is not a benchmark annotation file",
            args.annotations.display()
        )
    })?;
    let mapping = match &args.map {
        Some(file) => read_mapping(file)?,
        None => BTreeMap::new(),
    };
    if args.predictions_out.is_some() && args.model.model.len() > 1 {
        bail!("--predictions-out writes one model's predictions: name one --model");
    }
    let names: Vec<Option<String>> = if args.model.model.is_empty() {
        vec![None]
    } else {
        args.model.model.iter().cloned().map(Some).collect()
    };
    let mut runs = Vec::new();
    for name in names {
        let one = ModelArgs {
            model: name.clone().into_iter().collect(),
            ..args.model.clone()
        };
        runs.push(score_model(
            args,
            &one,
            &annotations.queries,
            &annotations.skipped,
            &mapping,
        )?);
    }
    if let (Some(out), Some(run)) = (&args.predictions_out, runs.first()) {
        write_predictions(out, run)?;
    }
    if args.json {
        let models: Vec<Value> = runs.iter().map(model_json).collect();
        return print_json(&json!({
            "annotations": args.annotations.file_name().map(|n| n.to_string_lossy()),
            "queries": annotations.queries.len() + annotations.skipped.len(),
            "models": models,
        }));
    }
    print_table(&runs, annotations.queries.len() + annotations.skipped.len());
    Ok(())
}

fn read_annotations(path: &Path) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > MAX_ANNOTATION_BYTES as u64 {
        bail!(
            "{} has {size} bytes; annotation files of at most {MAX_ANNOTATION_BYTES} are read",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `vid,file` lines: a benchmark's video ids to file names (relative to `--videos`).
fn read_mapping(path: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the mapping file {}", path.display()))?;
    let mut mapping = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((vid, file)) = line.split_once(',') else {
            bail!("{} line {}: not \"vid,file\"", path.display(), i + 1);
        };
        mapping.insert(vid.trim().to_string(), PathBuf::from(file.trim()));
    }
    Ok(mapping)
}

/// The file of video `vid`: from the mapping, else `VID.EXT` in the videos folder.
fn video_of(vid: &str, folder: &Path, mapping: &BTreeMap<String, PathBuf>) -> Option<PathBuf> {
    if let Some(file) = mapping.get(vid) {
        let path = folder.join(file);
        return path.is_file().then_some(path);
    }
    // A vid is a name, never a path.
    if vid.is_empty() || vid.contains(['/', '\\']) || vid == ".." {
        return None;
    }
    VIDEO_EXTENSIONS
        .iter()
        .map(|ext| folder.join(format!("{vid}.{ext}")))
        .find(|p| p.is_file())
}

fn score_model(
    args: &BenchmarkArgs,
    model: &ModelArgs,
    queries: &[Query],
    skipped_in_file: &[Skipped],
    mapping: &BTreeMap<String, PathBuf>,
) -> anyhow::Result<Scored> {
    let mut skipped = skipped_in_file.to_vec();
    let skip = |skipped: &mut Vec<Skipped>, q: &Query, reason: String| {
        skipped.push(Skipped {
            line: q.line,
            qid: q.qid.clone(),
            reason,
        })
    };
    // Queries by video, in the file's order.
    let mut by_video: BTreeMap<PathBuf, Vec<&Query>> = BTreeMap::new();
    for q in queries {
        match video_of(&q.vid, &args.videos, mapping) {
            Some(path) => by_video.entry(path).or_default().push(q),
            None => skip(
                &mut skipped,
                q,
                format!(
                    "no video {:?} in {} (VID.mp4, …, or --map)",
                    q.vid,
                    args.videos.display()
                ),
            ),
        }
    }
    let mut name = model.model.first().cloned().unwrap_or_default();
    let mut predictions = Vec::new();
    let mut truth = Vec::new();
    for (path, queries) in &by_video {
        let indexed = match open_indexed(path, model, None) {
            Ok(indexed) => indexed,
            Err(e) => {
                for q in queries {
                    skip(&mut skipped, q, format!("{e:#}"));
                }
                continue;
            }
        };
        name = indexed.embedder.identity().name.clone();
        let prompts: Vec<String> = queries.iter().map(|q| q.query.clone()).collect();
        let (covered, series) = indexed.score_table(&prompts, 1, false)?;
        let (starts, duration) = frame_starts(&indexed, covered);
        for (q, curve) in queries.iter().zip(&series) {
            if let Some(&[start, end]) = q.windows.iter().find(|w| w[1] > duration + 1e-6) {
                skip(
                    &mut skipped,
                    q,
                    format!("window [{start}, {end}] ends after the video ({duration:.3} s)"),
                );
                continue;
            }
            let truth_here = q.truth(duration);
            let prediction = predict(&q.qid, curve, &starts, truth_here.duration);
            predictions.push((prediction, q.query.clone(), q.vid.clone()));
            truth.push(truth_here);
        }
    }
    skipped.sort_by_key(|s| s.line);
    // Highlights where every query scored has saliency annotations (QVHighlights); else
    // moments only, as the evaluator would (it fails on ground truth without them).
    let highlights = truth.iter().all(|t| !t.saliency_scores.is_empty());
    if !highlights {
        for (p, _, _) in &mut predictions {
            p.saliency.clear();
        }
    }
    let metrics = if truth.is_empty() {
        None
    } else {
        let only: Vec<Prediction> = predictions.iter().map(|(p, _, _)| p.clone()).collect();
        Some(evaluate(&only, &truth)?)
    };
    Ok(Scored {
        model: name,
        predictions,
        highlights,
        truth,
        skipped,
        metrics,
    })
}

/// Each frame's start in seconds, for the frames scored, and the video's length.
fn frame_starts(indexed: &Indexed, covered: u64) -> (Vec<f64>, f64) {
    let starts: Vec<f64> = (0..covered).map(|n| indexed.time_s(n)).collect();
    let frames = indexed.video.meta.frames;
    let duration = match &indexed.frame_index {
        Some(index) if frames > 0 && frames <= index.frames() => {
            index.time_s(frames - 1) + 1.0 / indexed.video.meta.fps.max(1e-9)
        }
        _ => indexed.video.meta.duration_s(),
    };
    (starts, duration)
}

/// A qid as the annotation wrote it: a number stays a number.
fn qid_value(qid: &str) -> Value {
    match qid.parse::<i64>() {
        Ok(n) if n.to_string() == qid => Value::from(n),
        _ => Value::from(qid),
    }
}

fn model_json(run: &Scored) -> Value {
    let metrics: serde_json::Map<String, Value> = run
        .metrics
        .as_ref()
        .map(|m| {
            m.brief()
                .into_iter()
                .map(|(k, v)| (k, if v.is_finite() { json!(v) } else { Value::Null }))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "model": run.model,
        "scored": run.truth.len(),
        "skipped": run.skipped.iter().map(|s| json!({"line": s.line, "qid": s.qid, "reason": s.reason})).collect::<Vec<_>>(),
        "metrics": metrics,
    })
}

fn print_table(runs: &[Scored], queries: usize) {
    for run in runs {
        println!(
            "{}: {} of {queries} queries scored, {} skipped",
            run.model,
            run.truth.len(),
            run.skipped.len()
        );
        if let Some(metrics) = &run.metrics {
            for (key, value) in metrics.brief() {
                let value = if value.is_finite() {
                    format!("{value:.2}")
                } else {
                    "– (no ground-truth window of this length)".into()
                };
                println!("  {key:<22} {value}");
            }
        }
        for s in run.skipped.iter().take(20) {
            println!("  skipped line {} (qid {}): {}", s.line, s.qid, s.reason);
        }
        if run.skipped.len() > 20 {
            println!(
                "  … and {} more skipped (--json lists them all)",
                run.skipped.len() - 20
            );
        }
    }
}

/// The predictions in the official layout, one JSON object a line (saliency only where
/// highlights are scored: the evaluator reads it as a request to score them), written
/// atomically.
fn write_predictions(out: &Path, run: &Scored) -> anyhow::Result<()> {
    if run.predictions.is_empty() {
        bail!("no query was scored: {} is not written", out.display());
    }
    let mut text = Vec::new();
    for (p, query, vid) in &run.predictions {
        let mut row = json!({
            "qid": qid_value(&p.qid),
            "query": query,
            "vid": vid,
            "pred_relevant_windows": p.windows,
        });
        if run.highlights {
            row["pred_saliency_scores"] = json!(p.saliency);
        }
        serde_json::to_writer(&mut text, &row)?;
        text.push(b'\n');
    }
    store::cache::write_atomically(out, &text)
        .with_context(|| format!("cannot write {}", out.display()))
}
