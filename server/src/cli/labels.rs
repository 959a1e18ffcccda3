//! `labels`: a video's ground-truth labels, kept beside its caches: import a CSV (frames or
//! times), export it, list it.

use anyhow::Context;
use engine::labels::LabelStore;
use engine::video::FrameIndex;
use investigator_core::types::format_time;
use serde_json::json;

use super::args::LabelsArgs;
use super::output::{print_json, write_file};
use super::settings::resolve;
use super::CommandResult;

pub fn run(args: &LabelsArgs) -> CommandResult {
    let path = args.video.as_path();
    let settings = resolve(&args.config)?;
    let cache = &settings.embeddings_dir;
    let frame_index =
        FrameIndex::load_or_build(path, Some(cache)).context("cannot open the video")?;
    let store = LabelStore::of_file(cache, path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let frames = frame_index.frames();
    let labels = match &args.import {
        Some(file) => {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let known = (!args.prompts.is_empty()).then_some(args.prompts.as_slice());
            let changed = store
                .import(&bytes, &frame_index, known, args.replace)
                .with_context(|| format!("cannot import {}", file.display()))?;
            for note in &changed.notes {
                eprintln!("note: {note}");
            }
            eprintln!(
                "{} segments in {} (from {})",
                changed.labels.segments.len(),
                store.path().display(),
                file.display()
            );
            changed.labels
        }
        None => store.load(frames)?,
    };
    if let Some(out) = &args.export {
        write_file(out, labels.to_csv().as_bytes())?;
        eprintln!("wrote {}", out.display());
    }
    if args.json {
        let segment = |s: &investigator_core::labels::Segment| {
            json!({
                "prompt": s.prompt,
                "start_frame": s.start,
                "end_frame": s.end,
                "start_s": frame_index.time_s(s.start),
                "end_s": frame_index.time_s(s.end),
                "frames": s.frames(),
            })
        };
        return print_json(&json!({
            "video": path.file_name().map(|n| n.to_string_lossy()),
            "frames": frames,
            "labels": labels.segments.iter().filter(|s| !s.is_ignore()).map(segment).collect::<Vec<_>>(),
            "ignored": labels.segments.iter().filter(|s| s.is_ignore()).map(segment).collect::<Vec<_>>(),
            "prompts": labels.prompts(),
        }));
    }
    if args.import.is_none() && args.export.is_none() {
        if labels.segments.is_empty() {
            println!(
                "{}: no labels (import a CSV with --import FILE, or label in the page)",
                path.display()
            );
        }
        for s in &labels.segments {
            println!(
                "  {:<24} frames {:>7}-{:<7} {} - {}",
                format!("{:?}", s.prompt),
                s.start,
                s.end,
                format_time(frame_index.time_s(s.start)),
                format_time(frame_index.time_s(s.end))
            );
        }
    }
    Ok(())
}
