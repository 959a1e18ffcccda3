//! The `clip-investigator` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::config::Settings;
use crate::{testvideo, video};

#[derive(Parser, Debug)]
#[command(
    name = "clip-investigator",
    version,
    about = "See how every frame of a video matches text prompts under CLIP."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options for `serve`, which also runs when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web app (the default).
    Serve(ServeArgs),
    /// Print a video's metadata.
    Probe {
        video: PathBuf,
        /// Print JSON: {"frames", "fps", "width", "height", "duration_s", "exact_count", …}.
        #[arg(long)]
        json: bool,
        /// Accepted for old scripts: every count is exact now (the frame index).
        #[arg(long, hide = true)]
        exact: bool,
    },
    /// Write frame N of a video as a full-resolution JPEG.
    Frame {
        video: PathBuf,
        n: u64,
        #[arg(short, long)]
        output: PathBuf,
        /// JPEG quality, 1-100.
        #[arg(long, default_value_t = 95, value_parser = clap::value_parser!(u8).range(1..=100))]
        quality: u8,
    },
    /// Embed every (sampled) frame of a video with CLIP into the cache; resumes where it stopped.
    Index {
        video: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        /// Frames per second to embed (default: `sample_fps` from the config, else every frame).
        #[arg(long)]
        sample_fps: Option<f64>,
        /// Frames per model call (default: `batch_size` from the config).
        #[arg(long)]
        batch_size: Option<usize>,
        /// Print a JSON report instead of a progress bar.
        #[arg(long)]
        json: bool,
        /// Seconds of work between saves of the cache file.
        #[arg(long, default_value_t = 5.0, hide = true)]
        checkpoint_secs: f64,
    },
    /// Per-frame similarity of an indexed video with text prompts.
    Scores {
        video: PathBuf,
        /// A text prompt; repeat for several (default: the config's `CLIP:` list).
        #[arg(long = "prompt")]
        prompts: Vec<String>,
        /// Moving-average window in frames (1 = none).
        #[arg(long, default_value_t = 1)]
        smooth: usize,
        /// CLIP's zero-shot probabilities over the prompts instead of cosine similarity.
        #[arg(long)]
        softmax: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        sample_fps: Option<f64>,
    },
    /// The moments of an indexed video most like a text, an image, or both.
    Search {
        video: PathBuf,
        #[arg(long, required_unless_present = "image")]
        text: Option<String>,
        /// An image file (JPEG, PNG, …).
        #[arg(long)]
        image: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Results are at least this many seconds apart (default: 1).
        #[arg(long, default_value_t = 1.0)]
        min_gap_s: f64,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        sample_fps: Option<f64>,
    },
    /// Write per-frame scores (csv, json) or the raw embeddings (npy) of an indexed video.
    Export {
        video: PathBuf,
        #[arg(long, value_enum)]
        format: ExportFormat,
        #[arg(short, long)]
        output: PathBuf,
        /// Prompts to score (default: the config's `CLIP:` list); not used for npy.
        #[arg(long = "prompt")]
        prompts: Vec<String>,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        sample_fps: Option<f64>,
    },
    /// List or remove embedding cache files.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
        /// The config file (for `embeddings_dir`).
        #[arg(
            long,
            env = "CLIP_INVESTIGATOR_CONFIG",
            default_value = "config.yaml",
            global = true
        )]
        config: PathBuf,
    },
    /// Write a test video whose frames carry their own index (used by the test suites).
    #[command(hide = true)]
    MakeTestVideo {
        output: PathBuf,
        #[arg(long, default_value_t = 300)]
        frames: u32,
        #[arg(long, default_value_t = 250)]
        keyframe_interval: u32,
    },
}

#[derive(Subcommand, Debug, Clone, Copy)]
pub enum CacheAction {
    /// Show each cache file: video, model, frames indexed, size.
    List,
    /// Remove all cache files, including ones moved aside as damaged.
    Clear,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq)]
pub enum ExportFormat {
    Csv,
    Json,
    Npy,
}

/// Which model to use; flags win over the config file.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The config file (the old app's config.yaml works unchanged).
    #[arg(long, env = "CLIP_INVESTIGATOR_CONFIG", default_value = "config.yaml")]
    pub config: PathBuf,
    /// A model folder in Hugging Face layout, or a Hub repo id `REPO[@REVISION]`.
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, value_enum)]
    pub backend: Option<crate::config::BackendKind>,
    /// What runs the local model's image tower (default: `image_engine` from the config, auto).
    #[arg(long, value_enum)]
    pub image_engine: Option<crate::config::ImageEngine>,
    /// Index: reuse the last embedded frame's vector for frames whose model input differs from
    /// it by less than LEVELS grey levels (mean absolute difference); other commands: read
    /// such an index (default: `skip_similar` from the config, else off).
    #[arg(long, value_name = "LEVELS")]
    pub skip_similar: Option<f32>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The config file (the old app's config.yaml works unchanged).
    #[arg(long, env = "CLIP_INVESTIGATOR_CONFIG", default_value = "config.yaml")]
    pub config: PathBuf,
    /// Address to listen on; overrides `address` in the config and CLIP_INVESTIGATOR_ADDR.
    #[arg(long)]
    pub addr: Option<SocketAddr>,
}

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
        }) => crate::commands::index(
            &video,
            &model,
            sample_fps,
            batch_size,
            json,
            checkpoint_secs,
        ),
        Some(Command::Scores {
            video,
            prompts,
            smooth,
            softmax,
            json,
            model,
            sample_fps,
        }) => crate::commands::scores(&video, &model, sample_fps, prompts, smooth, softmax, json),
        Some(Command::Search {
            video,
            text,
            image,
            top,
            min_gap_s,
            json,
            model,
            sample_fps,
        }) => crate::commands::search(
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
        }) => crate::commands::export(&video, &model, sample_fps, format, &output, prompts),
        Some(Command::Cache { action, config }) => crate::commands::cache(action, &config),
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

/// Loads settings for `serve`: a bad config refuses to start (its intent is unknown), while a
/// bad video starts the server and shows the problem in the page.
pub fn load_settings(args: &ServeArgs) -> Result<Settings, String> {
    let mut settings = Settings::load(&args.config).map_err(|e| e.to_string())?;
    settings.apply_env()?;
    if let Some(addr) = args.addr {
        settings.address = addr;
    }
    Ok(settings)
}

fn serve(args: ServeArgs) -> CommandResult {
    let settings = load_settings(&args)?;
    let model_settings = settings.clone();
    let model = crate::library::SharedModel::new(move || crate::embed::load(&model_settings));
    let library = crate::library::Library::new(&settings, model);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let guard = crate::guard::Guard::new(
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
        session.indexer.stop(std::time::Duration::from_secs(10));
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
