//! `search`: the moments of an indexed video most like a text, an image, or both.

use anyhow::{bail, Context};
use investigator_core::types::format_time;
use serde_json::json;

use super::args::SearchArgs;
use super::indexed::open_indexed;
use super::output::print_json;
use super::CommandResult;

pub fn run(args: &SearchArgs) -> CommandResult {
    if args.library {
        return super::library::search(args);
    }
    let Some(video) = args.video.as_deref() else {
        bail!("give a VIDEO to search, or --library");
    };
    let (top, min_gap_s, json) = (args.top, args.min_gap_s, args.json);
    if !(min_gap_s.is_finite() && min_gap_s >= 0.0) {
        bail!("--min-gap-s must be 0 or more, not {min_gap_s}");
    }
    let indexed = open_indexed(video, &args.model, args.sample_fps)?;
    let mut queries = Vec::new();
    if let Some(text) = &args.text {
        queries.extend(indexed.embed_prompts(std::slice::from_ref(text))?);
    }
    if let Some(image) = &args.image {
        let bytes =
            std::fs::read(image).with_context(|| format!("cannot read {}", image.display()))?;
        // OpenCV's own message says nothing a user can act on.
        let Ok(frame) = engine::video::decode_image(&bytes) else {
            bail!(
                "{} is not an image OpenCV can read (JPEG, PNG, BMP, WebP…)",
                image.display()
            );
        };
        queries.extend(
            indexed
                .embedder
                .embed_images(std::slice::from_ref(&frame))
                .context("cannot embed the image")?,
        );
    }
    let query = engine::search::combine(&queries);
    let fps = indexed.video.meta.fps;
    let min_gap = (min_gap_s * fps).round() as u64;
    let hits = engine::search::top_k(&indexed.file, &query, top, min_gap);
    if json {
        let results: Vec<_> = hits
            .iter()
            .map(|h| json!({"frame": h.frame, "time_s": indexed.time_s(h.frame), "score": h.score}))
            .collect();
        print_json(&json!({ "results": results }))
    } else {
        for (rank, hit) in hits.iter().enumerate() {
            println!(
                "{:>3}. frame {:>7}  {}  score {:.4}",
                rank + 1,
                hit.frame,
                format_time(indexed.time_s(hit.frame)),
                hit.score
            );
        }
        Ok(())
    }
}
