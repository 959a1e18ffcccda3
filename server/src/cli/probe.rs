//! `probe`: what a video is, from its frame index (a packet scan; every count is exact).

use anyhow::Context;
use engine::video::{FrameIndex, IndexMethod};

use super::args::ProbeArgs;
use super::CommandResult;

pub fn run(args: &ProbeArgs) -> CommandResult {
    let path = &args.video;
    // `--exact` is accepted for old scripts: every count is exact now.
    let frame_index = FrameIndex::load_or_build(path, None).context("cannot probe the video")?;
    let meta = frame_index.metadata();
    let facts = &frame_index.facts;
    let method = match frame_index.method {
        IndexMethod::Packets => "packets",
        IndexMethod::Decoded => "decoded",
        IndexMethod::Counted => "counted",
    };
    if args.json {
        let audio: Vec<_> = facts
            .audio
            .iter()
            .map(|a| {
                serde_json::json!({
                    "stream": a.stream,
                    "codec": a.codec,
                    "sample_rate": a.sample_rate,
                    "channels": a.channels,
                    "start_time_s": a.start_time_s,
                })
            })
            .collect();
        let value = serde_json::json!({
            "frames": meta.frames,
            "fps": meta.fps,
            "width": meta.width,
            "height": meta.height,
            "duration_s": frame_index.duration_s(),
            "exact_count": meta.exact_count,
            "constant_rate": frame_index.constant_rate(),
            "start_time_s": facts.start_time_s,
            "rotation": facts.rotation,
            "codec": facts.codec,
            "container": facts.container,
            "keyframes": frame_index.keyframes(),
            "packets": frame_index.packets,
            "discarded_by_edit_list": frame_index.discarded,
            "not_shown_at_start": frame_index.not_shown,
            "index_method": method,
            "audio": audio,
        });
        println!("{value}");
    } else {
        println!("{}", path.display());
        println!(
            "  frames:    {} (exact: the frames FFmpeg presents)",
            meta.frames
        );
        println!(
            "  fps:       {:.3}{}",
            meta.fps,
            if frame_index.constant_rate() {
                ""
            } else {
                " on average (variable frame rate)"
            }
        );
        let turned = if facts.rotation == 0 {
            String::new()
        } else {
            format!(" (shown turned {}° clockwise)", facts.rotation)
        };
        println!("  size:      {}x{}{turned}", meta.width, meta.height);
        println!("  duration:  {:.3} s", frame_index.duration_s());
        println!(
            "  video:     {} in {}, {} keyframes",
            facts.codec,
            facts.container,
            frame_index.keyframes()
        );
        if let Some(start) = facts.start_time_s {
            println!("  starts at: {start:.3} s on the file's clock");
        }
        if frame_index.discarded > 0 || frame_index.not_shown > 0 {
            println!(
                "  not shown: {} packets outside the edit list, {} at the start the decoder cannot show",
                frame_index.discarded, frame_index.not_shown
            );
        }
        for a in &facts.audio {
            println!(
                "  audio:     {} {} Hz {} ch{}",
                a.codec,
                a.sample_rate,
                a.channels,
                a.start_time_s
                    .map_or(String::new(), |t| format!(", starts at {t:.3} s"))
            );
        }
    }
    Ok(())
}
