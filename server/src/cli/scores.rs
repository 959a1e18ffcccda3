//! `scores`: per-frame similarity of an indexed video with prompts; with `--model A --model B`,
//! each model's curves and their difference.

use anyhow::Context;
use investigator_core::types::format_time;
use serde_json::json;

use super::args::{ModelArgs, ScoresArgs};
use super::indexed::{open_indexed, prompts_or_config, view_name};
use super::output::{by_prompt, print_json};
use super::CommandResult;

pub fn run(args: &ScoresArgs) -> CommandResult {
    if args.model.model.len() > 1 {
        return compare_models(args);
    }
    let path = args.video.as_path();
    let (window, softmax) = (args.smooth, args.softmax);
    let indexed = open_indexed(path, &args.model, args.sample_fps)?;
    let prompts = prompts_or_config(args.prompts.clone(), &indexed.settings)?;
    let (covered, series) = indexed.score_table(&prompts, window, softmax)?;
    let adapted = match &args.adapter {
        Some(file) => Some(indexed.adapted_series(file, args.alpha, covered, window)?),
        None => None,
    };
    if args.json {
        let scores = by_prompt(&prompts, &series);
        let mut value = json!({
            "video": path.file_name().map(|n| n.to_string_lossy()),
            "model": indexed.embedder.identity().name,
            "fps": indexed.video.meta.fps,
            "frames": (0..covered).collect::<Vec<u64>>(),
            "times_s": (0..covered).map(|n| indexed.time_s(n)).collect::<Vec<f64>>(),
            "missing": indexed.file.missing,
            "view": view_name(softmax, indexed.embedder.logit_bias().is_some()),
            "scores": scores,
        });
        if let Some((adapter, alpha, values)) = &adapted {
            value["adapted"] = json!({
                "id": adapter.id(),
                "prompt": adapter.prompt(),
                "method": adapter.report.method.name(),
                "alpha": alpha,
                "view": "probability",
                "scores": values,
            });
        }
        print_json(&value)
    } else {
        println!("{} frames scored", covered);
        for (prompt, s) in prompts.iter().zip(&series) {
            let known = || s.iter().enumerate().filter(|(_, v)| !v.is_nan());
            let best = known()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(n, v)| {
                    format!(
                        "best {v:.4} at frame {n} ({})",
                        format_time(indexed.time_s(n as u64))
                    )
                })
                .unwrap_or_default();
            let mean = known().map(|(_, v)| v).sum::<f32>() / known().count().max(1) as f32;
            println!("  {prompt:?}: mean {mean:.4}, {best}");
        }
        if let Some((adapter, alpha, values)) = &adapted {
            let best = values
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .max_by(|a, b| a.1.total_cmp(b.1));
            if let Some((n, v)) = best {
                println!(
                    "  {:?} adapted ({}, α {alpha}): highest probability {v:.4} at frame {n} ({})",
                    adapter.prompt(),
                    adapter.report.method.name(),
                    format_time(indexed.time_s(n as u64))
                );
            }
        }
        Ok(())
    }
}

/// `scores --model A --model B …`: each model's scores of the same video (each indexed with
/// that model), and for two models their difference A - B per prompt, over the frames both
/// cover, where the models disagree most.
fn compare_models(args: &ScoresArgs) -> CommandResult {
    let path = args.video.as_path();
    let (window, softmax, json) = (args.smooth, args.softmax, args.json);
    let mut runs = Vec::new();
    let mut prompts = args.prompts.clone();
    for (i, model) in args.model.model.iter().enumerate() {
        let one = ModelArgs {
            model: vec![model.clone()],
            ..args.model.clone()
        };
        let indexed =
            open_indexed(path, &one, args.sample_fps).with_context(|| format!("model {model}"))?;
        // The models share the config, and so its prompts.
        if i == 0 {
            prompts = prompts_or_config(prompts, &indexed.settings)?;
        }
        let (covered, series) = indexed.score_table(&prompts, window, softmax)?;
        runs.push((indexed, covered, series));
    }
    // Two models: A - B over the frames both cover.
    let difference: Option<Vec<Vec<f32>>> = match runs.as_slice() {
        [(_, covered_a, a), (_, covered_b, b)] => Some(
            a.iter()
                .zip(b)
                .map(|(a, b)| {
                    let both = (*covered_a).min(*covered_b) as usize;
                    a.iter().zip(b).take(both).map(|(x, y)| x - y).collect()
                })
                .collect(),
        ),
        _ => None,
    };
    if json {
        let models: Vec<serde_json::Value> = runs
            .iter()
            .map(|(indexed, covered, series)| {
                json!({
                    "model": indexed.embedder.identity().name,
                    "frames": (0..*covered).collect::<Vec<u64>>(),
                    "missing": indexed.file.missing,
                    // Each model's own probabilities: a CLIP and a SigLIP differ.
                    "view": view_name(softmax, indexed.embedder.logit_bias().is_some()),
                    "scores": by_prompt(&prompts, series),
                })
            })
            .collect();
        let mut value = json!({
            "video": path.file_name().map(|n| n.to_string_lossy()),
            "fps": runs[0].0.video.meta.fps,
            "models": models,
        });
        if let Some(difference) = &difference {
            value["difference"] = json!(by_prompt(&prompts, difference));
        }
        return print_json(&value);
    }
    for (indexed, covered, _) in &runs {
        println!(
            "{}: {covered} frames scored",
            indexed.embedder.identity().name
        );
    }
    if let Some(difference) = &difference {
        let (a, b) = (
            runs[0].0.embedder.identity().name,
            runs[1].0.embedder.identity().name,
        );
        println!("{a} - {b}:");
        for (prompt, d) in prompts.iter().zip(difference) {
            let widest = d
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()));
            match widest {
                Some((n, v)) => println!(
                    "  {prompt:?}: they disagree most at frame {n} ({}): {v:+.4}",
                    format_time(runs[0].0.time_s(n as u64))
                ),
                None => println!("  {prompt:?}: no frame scored by both"),
            }
        }
    }
    Ok(())
}
