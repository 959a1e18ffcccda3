//! `moments`: the spans of an indexed video where prompts hold (and others do not). They come
//! from the same code as the page's bands (`investigator_core::moments`), on the same curves
//! (`Indexed::score_table`), so both agree.

use anyhow::bail;
use engine::indexing::cuts::cuts_in;
use investigator_core::moments::{find_moments, Condition, MomentQuery};
use investigator_core::types::format_time;
use serde_json::json;

use super::args::MomentsArgs;
use super::indexed::{open_indexed, Indexed};
use super::output::print_json;
use super::CommandResult;

impl MomentsArgs {
    /// The moment query the flags describe.
    fn query(&self) -> MomentQuery {
        let condition = |prompt: &String| Condition {
            prompt: prompt.clone(),
            threshold: self.threshold,
        };
        MomentQuery {
            all_of: self.prompts.iter().map(condition).collect(),
            none_of: self.not.iter().map(condition).collect(),
            hysteresis: self.hysteresis,
            gap_s: self.gap,
            min_len_s: self.min_len,
            snap_s: self.snap_cuts.then_some(self.snap_s),
        }
    }
}

pub fn run(args: &MomentsArgs) -> CommandResult {
    let path = args.video.as_path();
    if args.prompts.is_empty() {
        bail!("moments needs at least one --prompt TEXT that must hold");
    }
    let indexed = open_indexed(path, &args.model, args.sample_fps)?;
    let query = args.query();
    let prompts: Vec<String> = args.prompts.iter().chain(&args.not).cloned().collect();
    let (_, series) = indexed.score_table(&prompts, args.smooth.max(1), false)?;
    let (positive, negative) = series.split_at(args.prompts.len());
    let positive: Vec<&[f32]> = positive.iter().map(Vec::as_slice).collect();
    let negative: Vec<&[f32]> = negative.iter().map(Vec::as_slice).collect();
    let cuts = scene_cuts(&indexed, args.snap_cuts);
    let found = find_moments(&query, &positive, &negative, indexed.video.meta.fps, &cuts)?;
    if args.json {
        return print_json(&json!({
            "video": path.file_name().map(|n| n.to_string_lossy()),
            "model": indexed.embedder.identity().name,
            "fps": indexed.video.meta.fps,
            "query": query,
            "thresholds": found.thresholds,
            "hysteresis": found.hysteresis,
            "moments": found.moments,
        }));
    }
    let conditions = query.all_of.iter().map(|c| format!("{:?}", c.prompt));
    let negatives = query.none_of.iter().map(|c| format!("not {:?}", c.prompt));
    let thresholds = found.thresholds.iter().map(|t| format!("{t:.4}"));
    println!(
        "{} moments where {} (thresholds {})",
        found.moments.len(),
        conditions
            .chain(negatives)
            .collect::<Vec<_>>()
            .join(" and "),
        thresholds.collect::<Vec<_>>().join(", ")
    );
    for m in &found.moments {
        println!(
            "  frames {}-{}  {} - {}  ({:.1} s)  peak {:.4} at frame {}, mean {:.4}",
            m.start_frame,
            m.end_frame,
            format_time(m.start_s),
            format_time(m.end_s),
            m.duration_s,
            m.peak_score,
            m.peak_frame,
            m.mean_score
        );
    }
    Ok(())
}

/// The file's cut frames, with a note on stderr where they are not all measured yet.
fn scene_cuts(indexed: &Indexed, wanted: bool) -> Vec<u64> {
    let (cuts, measured) = cuts_in(&indexed.file);
    let frames = indexed.video.meta.frames;
    if wanted && measured < frames {
        eprintln!(
            "note: scene cuts are measured for {measured} of {frames} frames (a file indexed before cuts existed); `clip-investigator index` measures the rest"
        );
    }
    cuts.iter().map(|c| c.frame).collect()
}
