//! `cuts`: the scene cuts found while indexing a video, with the model's view of each (the
//! embedding change across it).

use engine::indexing::cuts::{cuts_in, embedding_change};
use investigator_core::types::format_time;
use serde_json::json;

use super::args::CutsArgs;
use super::indexed::open_indexed;
use super::output::print_json;
use super::CommandResult;

pub fn run(args: &CutsArgs) -> CommandResult {
    let json = args.json;
    let indexed = open_indexed(&args.video, &args.model, args.sample_fps)?;
    let (cuts, measured) = cuts_in(&indexed.file);
    let frames = indexed.video.meta.frames;
    if measured < frames {
        eprintln!(
            "note: scene cuts are measured for {measured} of {frames} frames; `clip-investigator index` measures the rest"
        );
    }
    // The model's view of each cut: 1 − cos between the embedded frames on either side of it.
    let file = &indexed.file;
    let dimension = file.dimension();
    let across = embedding_change(&file.vectors, dimension);
    let model_change = |frame: u64| {
        let i = file.frames.partition_point(|&f| f < frame);
        (i > 0 && i < file.frames.len()).then(|| across[i])
    };
    if json {
        let list: Vec<_> = cuts
            .iter()
            .map(|c| {
                json!({
                    "frame": c.frame,
                    "time_s": indexed.time_s(c.frame),
                    "score": c.change,
                    "embedding_change": model_change(c.frame),
                })
            })
            .collect();
        return print_json(&json!({"measured_frames": measured, "frames": frames, "cuts": list}));
    }
    println!("{} scene cuts in {measured} frames measured", cuts.len());
    for c in &cuts {
        let model = model_change(c.frame)
            .map(|m| format!(", embedding change {m:.3}"))
            .unwrap_or_default();
        println!(
            "  frame {}  {}  change {:.1}{model}",
            c.frame,
            format_time(indexed.time_s(c.frame)),
            c.change
        );
    }
    Ok(())
}
