//! `moments`, `cuts` and `clip`: from curves to answers. Moments come from the same code as
//! the page's bands (`app::moments`), on the same curves (`score_table`), so both agree.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use app::moments::{find_moments, Condition, MomentQuery, Threshold};
use app::types::format_time;
use serde_json::json;

use super::args::{ConfigOnly, ModelArgs};
use super::commands::{open_indexed, print_json, score_table, Indexed};
use super::settings::resolve;
use super::CommandResult;
use crate::clip::{clip_file_name, export_clip, ClipOptions};
use crate::index::cuts::{cuts_in, embedding_change};
use crate::video::FrameIndex;

/// The arguments of `moments`, gathered.
pub struct MomentArgs {
    pub prompts: Vec<String>,
    pub not: Vec<String>,
    pub threshold: Threshold,
    pub hysteresis: Option<f32>,
    pub min_len_s: f64,
    pub gap_s: f64,
    pub snap_cuts: bool,
    pub snap_s: f64,
    pub smooth: usize,
    pub json: bool,
}

impl MomentArgs {
    fn query(&self) -> MomentQuery {
        let condition = |prompt: &String| Condition {
            prompt: prompt.clone(),
            threshold: self.threshold,
        };
        MomentQuery {
            all_of: self.prompts.iter().map(condition).collect(),
            none_of: self.not.iter().map(condition).collect(),
            hysteresis: self.hysteresis,
            gap_s: self.gap_s,
            min_len_s: self.min_len_s,
            snap_s: self.snap_cuts.then_some(self.snap_s),
        }
    }
}

pub fn moments(
    path: &Path,
    model: &ModelArgs,
    sample_fps: Option<f64>,
    args: &MomentArgs,
) -> CommandResult {
    if args.prompts.is_empty() {
        return Err("moments needs at least one --prompt TEXT that must hold".into());
    }
    let indexed = open_indexed(path, model, sample_fps)?;
    let query = args.query();
    let prompts: Vec<String> = args.prompts.iter().chain(&args.not).cloned().collect();
    let (_, series) = score_table(&indexed, &prompts, args.smooth.max(1), false)?;
    let (positive, negative) = series.split_at(args.prompts.len());
    let positive: Vec<&[f32]> = positive.iter().map(Vec::as_slice).collect();
    let negative: Vec<&[f32]> = negative.iter().map(Vec::as_slice).collect();
    let cuts = scene_cuts(&indexed, args.snap_cuts);
    let found = find_moments(&query, &positive, &negative, indexed.video.meta.fps, &cuts)
        .map_err(|e| e.to_string())?;
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

pub fn cuts(path: &Path, model: &ModelArgs, sample_fps: Option<f64>, json: bool) -> CommandResult {
    let indexed = open_indexed(path, model, sample_fps)?;
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

pub fn clip(
    path: &Path,
    config: &ConfigOnly,
    from: u64,
    to: u64,
    output: Option<&Path>,
) -> CommandResult {
    let settings = resolve(config)?;
    let index = FrameIndex::load_or_build(path, Some(&settings.embeddings_dir))
        .map_err(|e| e.to_string())?;
    let fps = index.fps().max(1e-9);
    let name = clip_file_name(path, from as f64 / fps, (to + 1) as f64 / fps);
    let output = output.map(Path::to_path_buf).unwrap_or_else(|| name.into());
    let cancel = AtomicBool::new(false);
    let options = ClipOptions::default();
    let report = export_clip(
        path,
        index,
        from..=to,
        &output,
        &options,
        &|_, _| {},
        &cancel,
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} ({} frames, {:.2} s, {}, {} KB)",
        output.display(),
        report.frames,
        report.seconds,
        if report.audio {
            "with audio"
        } else {
            "no audio"
        },
        report.bytes / 1024
    );
    Ok(())
}
