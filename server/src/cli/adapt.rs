//! `adapt`: a prompt adapted from the labels of one or more videos (or of the library) on the
//! embeddings their caches hold, measured out of fold, stored beside the caches (and written to
//! `-o FILE`); `--json` prints the report.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use engine::adapt::{adapt, AdapterStore, LabelledVideo, Model};
use engine::labels::LabelStore;
use engine::library::{model_slots, video_id, video_key, Library};
use investigator_core::adapt::{check_alpha, AdaptReport, AdaptRequest, Difference, Metrics};
use investigator_core::labels::Labels;
use serde_json::json;
use store::cache::ModelKey;

use super::args::{AdaptArgs, ModelArgs};
use super::indexed::{open_indexed, Indexed};
use super::output::{print_json, write_file};
use super::settings::resolve;
use super::CommandResult;

/// A video opened for adapting: its id, name, index and labels.
struct Opened {
    path: PathBuf,
    id: String,
    name: String,
    indexed: Indexed,
    labels: Labels,
}

fn open(path: &Path, model: &ModelArgs, sample_fps: Option<f64>) -> anyhow::Result<Opened> {
    let indexed = open_indexed(path, model, sample_fps)?;
    let labels = LabelStore::of_video(&indexed.settings.embeddings_dir, &indexed.video.fingerprint)
        .load(indexed.video.meta.frames)
        .with_context(|| format!("cannot read the labels of {}", path.display()))?;
    let resolved = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    Ok(Opened {
        path: path.to_path_buf(),
        id: video_id(&resolved),
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        indexed,
        labels,
    })
}

/// The videos to adapt on: those named, or every library video labelled with the prompt.
fn videos(args: &AdaptArgs) -> anyhow::Result<Vec<PathBuf>> {
    if !args.library {
        return Ok(args.videos.clone());
    }
    let settings = resolve(&args.model)?;
    let library = Library::without_sessions(&settings, model_slots(&settings));
    let labelled: Vec<PathBuf> = library
        .files()
        .into_iter()
        .map(|(_, path)| path)
        .filter(|path| {
            LabelStore::of_file(&settings.embeddings_dir, path)
                .ok()
                .and_then(|store| store.load(u64::MAX).ok())
                .is_some_and(|labels| !labels.spans(&args.prompt).is_empty())
        })
        .collect();
    if labelled.is_empty() {
        bail!(
            "no video of the library has a segment labelled {:?}: label it in the page, or import a CSV with `clip-investigator labels VIDEO --import FILE`",
            args.prompt
        );
    }
    Ok(labelled)
}

pub fn run(args: &AdaptArgs) -> CommandResult {
    if let Some(alpha) = args.alpha {
        check_alpha(alpha).map_err(anyhow::Error::msg)?;
    }
    investigator_core::requests::check_prompts(std::slice::from_ref(&args.prompt))
        .map_err(|e| anyhow::anyhow!("--prompt: {e}"))?;
    let mut opened = Vec::new();
    for path in videos(args)? {
        match open(&path, &args.model, args.sample_fps) {
            Ok(video) => opened.push(video),
            // With --library, a video not indexed with this model is left out, and said so.
            Err(error) if args.library => {
                eprintln!("note: {} is left out: {error:#}", path.display())
            }
            Err(error) => return Err(error.context(format!("cannot adapt on {}", path.display()))),
        }
    }
    let Some(first) = opened.first() else {
        bail!(
            "no labelled video is indexed with this model: run `clip-investigator index --library`"
        );
    };
    let embedder = first.indexed.embedder.clone();
    let identity = embedder.identity();
    let text = first
        .indexed
        .embed_prompts(std::slice::from_ref(&args.prompt))?
        .remove(0);
    let model = Model {
        key: ModelKey::from(&identity),
        name: identity.name.clone(),
        text,
        logit_scale: f64::from(embedder.logit_scale()),
    };
    // --hold-out-video takes a library id, a file name or a path as given.
    let hold_out = match &args.hold_out_video {
        None => None,
        Some(wanted) => Some(
            opened
                .iter()
                .find(|v| &v.id == wanted || &v.name == wanted || v.path == Path::new(wanted))
                .map(|v| v.id.clone())
                .with_context(|| {
                    format!(
                        "--hold-out-video {wanted}: not one of the videos given (by id, file name or path: {})",
                        opened.iter().map(|v| format!("{} {}", v.id, v.name)).collect::<Vec<_>>().join(", ")
                    )
                })?,
        ),
    };
    let request = AdaptRequest {
        prompt: args.prompt.trim().to_string(),
        method: args.method,
        from: args.from,
        folds: args.folds,
        hold_out_video: hold_out,
    };
    let labelled: Vec<LabelledVideo> = opened
        .iter()
        .map(|v| LabelledVideo {
            id: v.id.clone(),
            key: video_key(&v.indexed.video.fingerprint),
            file: &v.indexed.file,
            labels: &v.labels,
            planned: v
                .indexed
                .video
                .plan(args.sample_fps.or(v.indexed.settings.sample_fps))
                .len(),
        })
        .collect();
    let quiet = args.json;
    let progress = |phase: &str, fraction: f64| {
        if !quiet {
            eprintln!("{:>3.0} % {phase}", fraction * 100.0);
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let (mut adapter, out_of_fold) = adapt(&labelled, &model, &request, threads, &progress)
        .with_context(|| format!("cannot adapt {:?}", request.prompt))?;
    if let Some(alpha) = args.alpha {
        adapter.set_alpha(alpha, &out_of_fold);
    }
    let store = AdapterStore::new(&first.indexed.settings.embeddings_dir);
    let stored = store.save(&adapter).context("cannot store the adapter")?;
    if let Some(output) = &args.output {
        write_file(output, &adapter.to_bytes())?;
    }
    let names: Vec<(String, String)> = opened
        .iter()
        .map(|v| (v.id.clone(), v.name.clone()))
        .collect();
    if args.json {
        return print_json(&to_json(&adapter.report, &names, &stored));
    }
    print_report(&adapter.report, &names, &stored, args.output.as_deref());
    Ok(())
}

fn metrics_json(m: &Metrics) -> serde_json::Value {
    json!({"ap": m.ap, "roc_auc": m.roc_auc, "best_f1": m.best_f1})
}

fn difference_json(d: &Option<Difference>) -> serde_json::Value {
    match d {
        Some(d) => json!({"mean": d.mean, "point": d.point, "low": d.low, "high": d.high}),
        None => serde_json::Value::Null,
    }
}

/// The JSON `adapt --json` prints (and the tests compare with the page's panel).
pub fn to_json(
    report: &AdaptReport,
    names: &[(String, String)],
    stored: &Path,
) -> serde_json::Value {
    let name_of = |id: &str| {
        names
            .iter()
            .find(|(i, _)| i == id)
            .map_or_else(String::new, |(_, n)| n.clone())
    };
    json!({
        "id": report.id,
        "file": stored.display().to_string(),
        "model": report.model,
        "prompt": report.prompt,
        "method": report.method.name(),
        "from": report.from.name(),
        "lambda": report.lambda,
        "tip_beta": report.tip_beta,
        "tip_alpha": report.tip_alpha,
        "alpha": report.alpha,
        "folds": report.folds,
        "tested_on": report.tested_on,
        "train": {
            "positives": report.train.positives,
            "negatives": report.train.negatives,
            "positive_segments": report.train.positive_segments,
            "videos": report.train.videos.iter().map(|id| json!({"video_id": id, "video": name_of(id)})).collect::<Vec<_>>(),
        },
        "zero_shot": metrics_json(&report.zero_shot),
        "adapted": metrics_json(&report.adapted),
        "ap_difference": difference_json(&report.differences.ap),
        "roc_auc_difference": difference_json(&report.differences.roc_auc),
        "best_f1_difference": difference_json(&report.differences.best_f1),
        "by_alpha": report.by_alpha.iter().map(|p| json!({"alpha": p.alpha, "ap": p.metrics.ap, "roc_auc": p.metrics.roc_auc, "best_f1": p.metrics.best_f1})).collect::<Vec<_>>(),
        "label_next": report.label_next.iter().map(|l| json!({
            "video_id": l.video_id, "video": name_of(&l.video_id), "frame": l.frame,
            "score": l.score, "zero_shot": l.zero_shot, "reason": l.reason,
        })).collect::<Vec<_>>(),
        "suspect": report.suspect.iter().map(|s| json!({
            "video_id": s.video_id, "video": name_of(&s.video_id),
            "start_frame": s.start_frame, "end_frame": s.end_frame,
            "label": if s.positive { "positive" } else { "negative" },
            "score": s.score,
        })).collect::<Vec<_>>(),
        "notes": report.notes,
        "seconds": report.seconds,
    })
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(|| "—".into(), |v| format!("{v:.3}"))
}

fn print_report(
    report: &AdaptReport,
    names: &[(String, String)],
    stored: &Path,
    output: Option<&Path>,
) {
    let name_of = |id: &str| {
        names
            .iter()
            .find(|(i, _)| i == id)
            .map_or_else(|| id.to_string(), |(_, n)| n.clone())
    };
    let setting = match (report.lambda, report.tip_beta, report.tip_alpha) {
        (Some(lambda), _, _) => format!("λ {lambda:.4}"),
        (_, Some(beta), Some(weight)) => format!("β {beta}, cache weight {weight:.3}"),
        _ => String::new(),
    };
    println!(
        "{:?} with {}: {} from {}, {setting}, α {:.1}; tested on {}",
        report.prompt,
        report.model,
        report.method.name(),
        report.from.name(),
        report.alpha,
        report.tested_on
    );
    println!(
        "trained on {} positive frames ({} segments) and {} negative frames of {}",
        report.train.positives,
        report.train.positive_segments,
        report.train.negatives,
        report
            .train
            .videos
            .iter()
            .map(|v| name_of(v))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  {:<10} {:>7} {:>8} {:>8}", "", "AP", "ROC AUC", "best F1");
    for (name, m) in [
        ("zero-shot", &report.zero_shot),
        ("adapted", &report.adapted),
    ] {
        println!(
            "  {name:<10} {:>7} {:>8} {:>8}",
            number(m.ap),
            number(m.roc_auc),
            number(m.best_f1)
        );
    }
    let d = &report.differences;
    let spread = |d: &Option<Difference>| {
        d.map_or_else(
            || "—".into(),
            |d| format!("{:+.3} [{:+.3}, {:+.3}]", d.point, d.low, d.high),
        )
    };
    println!(
        "  difference (95 % block bootstrap): AP {}, ROC AUC {}, best F1 {}",
        spread(&d.ap),
        spread(&d.roc_auc),
        spread(&d.best_f1)
    );
    if !report.label_next.is_empty() {
        println!("label next:");
        for l in report.label_next.iter().take(10) {
            println!(
                "  {} frame {:>7}  adapted {:.3}, zero-shot {:.3} ({})",
                name_of(&l.video_id),
                l.frame,
                l.score,
                l.zero_shot,
                l.reason
            );
        }
    }
    if !report.suspect.is_empty() {
        println!("suspect labels:");
        for s in &report.suspect {
            println!(
                "  {} frames {}–{} labelled {} but scored {:.3}",
                name_of(&s.video_id),
                s.start_frame,
                s.end_frame,
                if s.positive { "positive" } else { "negative" },
                s.score
            );
        }
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    println!("adapter {} stored in {}", report.id, stored.display());
    if let Some(output) = output {
        println!("written to {}", output.display());
    }
}
