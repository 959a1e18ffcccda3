//! `index --library` (every video of `video_path` and `library_dirs`, with every configured
//! model, resumable like `index`) and `search --library` (one query across the library: the
//! best moments, at most `--per-video` per video).

use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context};
use engine::indexing::{index_video, Progress, VideoToIndex};
use engine::library::{model_slots, Library};
use investigator_core::library_search::{LibraryQuery, MAX_LIBRARY_RESULTS, MAX_PER_VIDEO};
use investigator_core::types::format_time;
use serde_json::json;

use super::args::{IndexArgs, SearchArgs};
use super::output::print_json;
use super::settings::{index_options, resolve};
use super::CommandResult;

pub fn index(args: &IndexArgs) -> CommandResult {
    let settings = resolve(&args.model)?;
    let options = index_options(&settings, args.sample_fps, args.batch_size);
    let library = Library::without_sessions(&settings, model_slots(&settings));
    let files = library.files();
    let mut failed = 0;
    for (place, model) in settings.models.iter().enumerate() {
        let mut model_settings = settings.clone();
        model_settings.set_model(model.clone());
        let embedder = engine::precision::load(&model_settings)
            .with_context(|| format!("cannot load the model {model}"))?;
        for (_, path) in &files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let report = VideoToIndex::open(path, Some(&options.cache_dir))
                .map_err(anyhow::Error::from)
                .and_then(|video| {
                    index_video(
                        &video,
                        embedder.as_ref(),
                        &options,
                        &Progress::default(),
                        &AtomicBool::new(false),
                    )
                    .map_err(anyhow::Error::from)
                });
            match report {
                Ok(report) => {
                    let line = json!({
                        "video": name,
                        "model": embedder.identity().name,
                        "planned": report.planned,
                        "resumed": report.resumed,
                        "embedded": report.embedded,
                        "missing": report.missing,
                    });
                    if args.json {
                        println!("{line}");
                    } else {
                        println!(
                            "{name} with {}: {} of {} frames ({} now)",
                            embedder.identity().name,
                            report.resumed + report.embedded + report.missing,
                            report.planned,
                            report.embedded
                        );
                    }
                }
                Err(error) => {
                    failed += 1;
                    eprintln!("note: {name} is left out: {error:#}");
                }
            }
        }
        let synced = library
            .refresh_vectors(place)
            .with_context(|| format!("cannot update the library index of {model}"))?;
        let stats = engine::vectors::VectorStore::stats(synced.as_ref());
        if !args.json {
            println!(
                "library index of {}: {} videos, {} vectors",
                embedder.identity().name,
                stats.videos,
                stats.vectors
            );
        }
    }
    if failed == files.len() * settings.models.len() && failed > 0 {
        bail!("no video of the library could be indexed");
    }
    Ok(())
}

pub fn search(args: &SearchArgs) -> CommandResult {
    if args.top == 0 || args.top > MAX_LIBRARY_RESULTS {
        bail!(
            "--top must be from 1 to {MAX_LIBRARY_RESULTS}, not {}",
            args.top
        );
    }
    if args.per_video == 0 || args.per_video > MAX_PER_VIDEO {
        bail!(
            "--per-video must be from 1 to {MAX_PER_VIDEO}, not {}",
            args.per_video
        );
    }
    if let Some(text) = &args.text {
        investigator_core::requests::check_prompts(std::slice::from_ref(text))
            .map_err(|e| anyhow::anyhow!("--text: {e}"))?;
    }
    // An adapted prompt searches by its direction; its scores are its probabilities.
    let adapter = match &args.adapter {
        Some(file) => {
            let adapter = engine::adapt::Adapter::read(file)?;
            let alpha = match args.alpha {
                Some(alpha) => {
                    investigator_core::adapt::check_alpha(alpha).map_err(anyhow::Error::msg)?
                }
                None => adapter.alpha,
            };
            let (direction, norm, bias) = adapter.direction(alpha).with_context(|| {
                format!(
                    "{} is a Tip-Adapter: its score is a cache of frames, not one direction to search the library with; adapt the prompt with --method probe",
                    file.display()
                )
            })?;
            Some((adapter, direction, norm, bias))
        }
        None => None,
    };
    let settings = resolve(&args.model)?;
    let image = match &args.image {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let library = Library::without_sessions(&settings, model_slots(&settings));
    let query = LibraryQuery {
        text: args.text.clone(),
        image,
        videos: args.videos.clone(),
        folders: args.folders.clone(),
        model: None,
        // With an adapter the minimum is a probability: the cosine with its direction that
        // gives it.
        min_score: match (&adapter, args.min_score) {
            (Some((_, _, norm, bias)), Some(p)) if p > 0.0 && p < 1.0 => {
                Some(((f64::from(p) / (1.0 - f64::from(p))).ln() - bias) as f32 / *norm as f32)
            }
            (_, score) => score,
        },
        min_len_s: args.min_len_s,
        top: args.top,
        offset: 0,
        per_video: args.per_video,
    };
    let mut answer = match &adapter {
        Some((adapter, direction, _, _)) => library
            .search_library_by_vector(&query, direction, &adapter.model)
            .context("the library search failed")?,
        None => library
            .search_library(&query)
            .context("the library search failed")?,
    };
    if let Some((adapter, _, norm, bias)) = &adapter {
        // Cosines with the direction become the adapted probabilities.
        for hit in &mut answer.results {
            hit.score =
                investigator_core::adapt::sigmoid(norm * f64::from(hit.score) + bias) as f32;
        }
        answer.model = format!("{} adapted for {:?}", answer.model, adapter.prompt());
    }
    if args.json {
        return print_json(&json!({
            "model": answer.model,
            "results": answer.results.iter().map(|r| json!({
                "video_id": r.video_id,
                "video": r.video,
                "frame": r.frame,
                "time_s": r.time_s,
                "score": r.score,
                "start_frame": r.start_frame,
                "end_frame": r.end_frame,
                "start_s": r.start_s,
                "end_s": r.end_s,
            })).collect::<Vec<_>>(),
            "videos_searched": answer.videos_searched,
            "vectors_searched": answer.vectors_searched,
            "partial": answer.partial,
            "not_indexed": answer.not_indexed,
            "more": answer.more,
        }));
    }
    for (rank, r) in answer.results.iter().enumerate() {
        println!(
            "{:>3}. {}  frame {:>7}  {}  score {:.4}  (frames {}–{})  [{}]",
            rank + 1,
            r.video,
            r.frame,
            format_time(r.time_s),
            r.score,
            r.start_frame,
            r.end_frame,
            r.video_id
        );
    }
    println!(
        "{} vectors of {} videos searched with {}",
        answer.vectors_searched, answer.videos_searched, answer.model
    );
    if !answer.partial.is_empty() {
        println!("note: {} videos are partly indexed and were searched over what they have: `clip-investigator index --library` indexes the rest", answer.partial.len());
    }
    if !answer.not_indexed.is_empty() {
        println!(
            "note: {} videos are not indexed yet: `clip-investigator index --library`",
            answer.not_indexed.len()
        );
    }
    Ok(())
}
