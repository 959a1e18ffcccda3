//! The `clip-investigator` command line: `args` (the clap types, only there), `settings` (one
//! way from config file, environment and flags to `Settings`, for every subcommand), `commands`
//! (the CLIP subcommands), `moments` (moments, cuts, clips); `serve`, `probe` and `frame` are here.

pub mod args;
pub mod commands;
pub mod moments;
pub mod settings;

use std::path::Path;
use std::sync::Arc;

pub use args::{Cli, Command};
pub use settings::resolve;

use crate::{testvideo, video};

/// A failed command: the message for stderr.
pub type CommandResult = Result<(), String>;

pub fn run(cli: Cli) -> CommandResult {
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Probe { video, json, exact }) => probe(&video, json, exact),
        Some(Command::Frame {
            video,
            n,
            output,
            quality,
        }) => frame(&video, n, &output, quality),
        Some(Command::Index {
            video,
            model,
            sample_fps,
            batch_size,
            json,
            checkpoint_secs,
            progressive,
            coarse_interval,
        }) => commands::index(
            &video,
            &model,
            sample_fps,
            batch_size,
            json,
            checkpoint_secs,
            progressive.then_some(coarse_interval),
        ),
        Some(Command::Scores {
            video,
            prompts,
            smooth,
            softmax,
            json,
            model,
            sample_fps,
        }) => commands::scores(&video, &model, sample_fps, prompts, smooth, softmax, json),
        Some(Command::Search {
            video,
            text,
            image,
            top,
            min_gap_s,
            json,
            model,
            sample_fps,
        }) => commands::search(
            &video,
            &model,
            sample_fps,
            text.as_deref(),
            image.as_deref(),
            top,
            min_gap_s,
            json,
        ),
        Some(Command::Export {
            video,
            format,
            output,
            prompts,
            model,
            sample_fps,
        }) => commands::export(&video, &model, sample_fps, format, &output, prompts),
        Some(Command::Moments {
            video,
            prompts,
            not,
            threshold,
            hysteresis,
            min_len,
            gap,
            snap_cuts,
            snap_s,
            smooth,
            json,
            model,
            sample_fps,
        }) => {
            let args = moments::MomentArgs {
                prompts,
                not,
                threshold,
                hysteresis,
                min_len_s: min_len,
                gap_s: gap,
                snap_cuts,
                snap_s,
                smooth,
                json,
            };
            moments::moments(&video, &model, sample_fps, &args)
        }
        Some(Command::Cuts {
            video,
            json,
            model,
            sample_fps,
        }) => moments::cuts(&video, &model, sample_fps, json),
        Some(Command::Clip {
            video,
            from,
            to,
            output,
            config,
        }) => moments::clip(&video, &config, from, to, output.as_deref()),
        Some(Command::Cache { action, config }) => commands::cache(action, &config),
        Some(Command::MakeTestVideo {
            output,
            frames,
            keyframe_interval,
        }) => {
            let spec = testvideo::Spec {
                keyframe_interval,
                ..testvideo::Spec::new(testvideo::Codec::H264, frames)
            };
            testvideo::write(&output, &spec)
        }
    }
}

/// `serve`: a bad config refuses to start (its intent is unknown), while a bad video starts the
/// server and shows the problem in the page.
fn serve(args: args::ServeArgs) -> CommandResult {
    let settings = resolve(&args)?;
    let models = crate::library::model_choices(&settings.models)
        .into_iter()
        .zip(&settings.models)
        .map(|(choice, model)| {
            let mut model_settings = settings.clone();
            model_settings.set_model(model.clone());
            crate::library::ModelSlot {
                choice,
                model: crate::library::SharedModel::new(move || {
                    crate::embed::load(&model_settings)
                }),
            }
        })
        .collect();
    let library = crate::library::Library::new(&settings, models);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let guard = crate::web::guard::Guard::new(
        settings.address,
        &settings.allowed_hosts,
        settings.auth_token.clone(),
    );
    let served = runtime.block_on(crate::web::serve(
        Arc::clone(&library),
        settings.prompts.clone(),
        settings.address,
        guard,
    ));
    // Save what is indexed before exiting; each job stops at its next batch.
    for session in library.sessions() {
        for index in session.indexes() {
            index.stop(std::time::Duration::from_secs(10));
        }
    }
    served
}

/// `probe`: what the video is, from its frame index (a packet scan; `--exact` is accepted for
/// old scripts, every count is exact now).
fn probe(path: &Path, json: bool, _exact: bool) -> CommandResult {
    let index = video::FrameIndex::load_or_build(path, None).map_err(|e| e.to_string())?;
    let meta = index.metadata();
    let facts = &index.facts;
    let method = match index.method {
        video::IndexMethod::Packets => "packets",
        video::IndexMethod::Decoded => "decoded",
        video::IndexMethod::Counted => "counted",
    };
    if json {
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
            "duration_s": index.duration_s(),
            "exact_count": meta.exact_count,
            "constant_rate": index.constant_rate(),
            "start_time_s": facts.start_time_s,
            "rotation": facts.rotation,
            "codec": facts.codec,
            "container": facts.container,
            "keyframes": index.keyframes(),
            "packets": index.packets,
            "discarded_by_edit_list": index.discarded,
            "not_shown_at_start": index.not_shown,
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
            if index.constant_rate() {
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
        println!("  duration:  {:.3} s", index.duration_s());
        println!(
            "  video:     {} in {}, {} keyframes",
            facts.codec,
            facts.container,
            index.keyframes()
        );
        if let Some(start) = facts.start_time_s {
            println!("  starts at: {start:.3} s on the file's clock");
        }
        if index.discarded > 0 || index.not_shown > 0 {
            println!(
                "  not shown: {} packets outside the edit list, {} at the start the decoder cannot show",
                index.discarded, index.not_shown
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

fn frame(path: &Path, n: u64, output: &Path, quality: u8) -> CommandResult {
    let mut decoder = video::Decoder::open(path).map_err(|e| e.to_string())?;
    let image = decoder.frame(n).map_err(|e| e.to_string())?;
    let jpeg =
        video::encode_jpeg(&image, 0, quality).map_err(|e| format!("JPEG encoding failed: {e}"))?;
    std::fs::write(output, jpeg).map_err(|e| format!("cannot write {}: {e}", output.display()))
}
