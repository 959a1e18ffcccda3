//! `clip`: frames FROM..=TO of a video as an MP4 excerpt (H.264, with the source's audio),
//! frame-exact.

use std::sync::atomic::AtomicBool;

use anyhow::Context;
use engine::export::excerpt::{excerpt_file_name, export_excerpt, ExcerptOptions};
use engine::video::FrameIndex;

use super::args::ExcerptArgs;
use super::settings::resolve;
use super::CommandResult;

pub fn run(args: &ExcerptArgs) -> CommandResult {
    let (path, from, to) = (args.video.as_path(), args.from, args.to);
    let settings = resolve(&args.config)?;
    let frame_index = FrameIndex::load_or_build(path, Some(&settings.embeddings_dir))
        .context("cannot open the video")?;
    let fps = frame_index.fps().max(1e-9);
    let name = excerpt_file_name(path, from as f64 / fps, (to + 1) as f64 / fps);
    let output = args.output.clone().unwrap_or_else(|| name.into());
    let cancel = AtomicBool::new(false);
    let options = ExcerptOptions::default();
    let report = export_excerpt(
        path,
        frame_index,
        from..=to,
        &output,
        &options,
        &|_, _| {},
        &cancel,
    )
    .with_context(|| format!("cannot export frames {from}..={to}"))?;
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
