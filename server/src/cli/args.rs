//! The command line's arguments (clap derive types), and nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
        /// Coarse to fine: the whole video at one frame per `--coarse-interval` seconds
        /// first, then ever finer passes until every frame is embedded (the same file as a
        /// straight index in the end). The web server always indexes this way.
        #[arg(long)]
        progressive: bool,
        /// Seconds between the frames of the first coarse pass (default:
        /// `coarse_interval_s` from the config, else 1).
        #[arg(long, value_name = "SECONDS", requires = "progressive")]
        coarse_interval: Option<f64>,
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
        /// The model's zero-shot probabilities instead of cosine similarity: CLIP's softmax
        /// over the prompts, SigLIP's sigmoid per prompt.
        #[arg(long, visible_alias = "probabilities")]
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
    /// The spans of an indexed video where prompts hold (and others do not).
    Moments {
        video: PathBuf,
        /// A prompt that must hold; repeat for several (all must hold).
        #[arg(long = "prompt", required = true)]
        prompts: Vec<String>,
        /// A prompt that must not hold; repeatable.
        #[arg(long = "not")]
        not: Vec<String>,
        /// A cosine like 0.25, `auto` (each curve's mean + 1 std) or `auto:K`.
        /// (Negative cosines are fine: `--threshold -0.2`.)
        #[arg(long, default_value = "auto", allow_hyphen_values = true)]
        threshold: app::moments::Threshold,
        /// A moment ends when a prompt falls this far below its threshold (default: a quarter
        /// of the curve's standard deviation).
        #[arg(long)]
        hysteresis: Option<f32>,
        /// Drop moments shorter than this many seconds.
        #[arg(long, default_value_t = app::moments::DEFAULT_MIN_LEN_S)]
        min_len: f64,
        /// Join moments less than this many seconds apart.
        #[arg(long, default_value_t = app::moments::DEFAULT_GAP_S)]
        gap: f64,
        /// Move each moment's edges to the nearest scene cut within --snap-s seconds.
        #[arg(long)]
        snap_cuts: bool,
        #[arg(long, default_value_t = app::moments::DEFAULT_SNAP_S)]
        snap_s: f64,
        /// Moving-average window in frames applied to the curves first (1 = raw).
        #[arg(long, default_value_t = 1)]
        smooth: usize,
        /// Print JSON: {"moments": [{"start_frame", "end_frame", "start_s", "end_s", …}], …}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        sample_fps: Option<f64>,
    },
    /// The scene cuts found while indexing a video.
    Cuts {
        video: PathBuf,
        /// Print JSON: {"cuts": [{"frame", "time_s", "score"}], …}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        sample_fps: Option<f64>,
    },
    /// Write frames FROM..=TO of a video as an MP4 (H.264, with the source's audio), frame-exact.
    Clip {
        video: PathBuf,
        /// The clip's first frame.
        #[arg(long)]
        from: u64,
        /// The clip's last frame (inclusive).
        #[arg(long)]
        to: u64,
        /// Default: VIDEO_00m12.3s-00m18.0s.mp4 in the current folder.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigOnly,
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
    /// A model folder in Hugging Face layout, or a Hub repo id `REPO[@REVISION]`. `scores`
    /// takes it twice or more to compare models (each video indexed with each).
    #[arg(long)]
    pub model: Vec<String>,
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

/// Only the config file (for its cache folder).
#[derive(Args, Debug, Clone)]
pub struct ConfigOnly {
    #[arg(long, env = "CLIP_INVESTIGATOR_CONFIG", default_value = "config.yaml")]
    pub config: PathBuf,
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
