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
    Probe(ProbeArgs),
    /// Write frame N of a video as a full-resolution JPEG.
    Frame(FrameArgs),
    /// Embed every (sampled) frame of a video with CLIP into the cache; resumes where it stopped.
    Index(IndexArgs),
    /// Per-frame similarity of an indexed video with text prompts.
    Scores(ScoresArgs),
    /// The moments of an indexed video most like a text, an image, or both.
    Search(SearchArgs),
    /// Write per-frame scores (csv, json) or the raw embeddings (npy) of an indexed video.
    Export(ExportArgs),
    /// The spans of an indexed video where prompts hold (and others do not).
    Moments(MomentsArgs),
    /// A public moment-retrieval benchmark (QVHighlights, Charades-STA, Lighthouse's files)
    /// scored per model with its official evaluator's metrics.
    Benchmark(BenchmarkArgs),
    /// The scene cuts found while indexing a video.
    Cuts(CutsArgs),
    /// Write frames FROM..=TO of a video as an MP4 (H.264, with the source's audio), frame-exact.
    Clip(ExcerptArgs),
    /// List or remove embedding cache files.
    Cache(CacheArgs),
    /// A video's ground-truth labels: import a CSV (frames or times), export it, or list them.
    Labels(LabelsArgs),
    /// Hold each model's scores against the video's labels: AP, ROC AUC, best F1, events.
    Evaluate(EvaluateArgs),
    /// Frames to fine-tune on (positives, hard positives, hard negatives) with their labels
    /// and scores, as an `imagefolder` dataset (JPEG + metadata.jsonl).
    ExportDataset(ExportDatasetArgs),
    /// Why frame N scores as it does for a prompt: each patch's relevance (gradient-weighted
    /// attention, Chefer et al. 2021) painted over the frame, and the part the model never sees.
    Explain(ExplainArgs),
    /// Compare the int8 image tower with fp32 on this machine: cosine per image, top-5 prompts
    /// per frame, top-10 frames per prompt, speed. Stores the result that `precision: int8`
    /// and `auto` use.
    CheckPrecision(CheckPrecisionArgs),
    /// Adapt a prompt from its labels (a probe on the cached image embeddings held near the
    /// prompt's text, or Tip-Adapter), measured on labelled spans it never trained on; stores
    /// the adapter beside the caches.
    Adapt(AdaptArgs),
}

#[derive(Args, Debug, Clone)]
pub struct AdaptArgs {
    /// The labelled videos (their labels are the ones `labels` and the page keep).
    #[arg(required_unless_present = "library")]
    pub videos: Vec<PathBuf>,
    /// Every video of the library with a segment labelled with the prompt.
    #[arg(long, conflicts_with = "videos")]
    pub library: bool,
    #[arg(long)]
    pub prompt: String,
    /// probe: logistic regression on the image embeddings; tip: Tip-Adapter (no training).
    #[arg(long, default_value = "probe", value_parser = parse_method)]
    pub method: investigator_core::adapt::Method,
    /// Where the probe starts and is held near: the prompt's text embedding, or zero (the
    /// plain probe).
    #[arg(long = "from", default_value = "text", value_parser = parse_anchor)]
    pub from: investigator_core::adapt::Anchor,
    /// Blocked folds (default 5, or the number of blocks when fewer).
    #[arg(long)]
    pub folds: Option<usize>,
    /// Train on the other videos and test on this one (its library id, file name or path).
    #[arg(long, value_name = "ID")]
    pub hold_out_video: Option<String>,
    /// The blend of zero-shot (0) and adapted (1) scores (default: cross-validated).
    #[arg(long, allow_hyphen_values = true)]
    pub alpha: Option<f64>,
    /// Also write the adapter (safetensors) to FILE.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the report as JSON: {"model", "prompt", "method", "lambda", "alpha", "folds",
    /// "train", "zero_shot", "adapted", "ap_difference", "label_next", "suspect", …}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub sample_fps: Option<f64>,
}

fn parse_method(text: &str) -> Result<investigator_core::adapt::Method, String> {
    investigator_core::adapt::Method::parse(text)
        .ok_or_else(|| format!("{text:?} is not a method: probe or tip"))
}

fn parse_anchor(text: &str) -> Result<investigator_core::adapt::Anchor, String> {
    investigator_core::adapt::Anchor::parse(text)
        .ok_or_else(|| format!("{text:?} is not a starting point: text or zero"))
}

#[derive(Args, Debug, Clone)]
pub struct CheckPrecisionArgs {
    /// The video whose frames are compared (default: video_path from the config; without one,
    /// only the built-in images).
    pub video: Option<PathBuf>,
    /// Print the comparison as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ExplainArgs {
    pub video: PathBuf,
    /// The frame: the N-th frame FFmpeg presents, from 0.
    #[arg(long)]
    pub frame: u64,
    #[arg(long)]
    pub prompt: String,
    /// The first vision layer whose attention counts, from 0 (default: the last layer).
    #[arg(long, value_name = "L")]
    pub start_layer: Option<usize>,
    /// Write the frame with the heatmap over it, as PNG.
    #[arg(short, long, value_name = "OUT.png", required_unless_present = "json")]
    pub output: Option<PathBuf>,
    /// How opaque the heatmap is, 0 to 1.
    #[arg(long, default_value_t = 0.5)]
    pub opacity: f32,
    /// Print JSON: {"grid": {"rows", "cols"}, "values" (row-major), "crop" (frame pixels),
    /// "score": {"logit", "cosine"}, …}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Args, Debug, Clone)]
pub struct LabelsArgs {
    pub video: PathBuf,
    /// A CSV to merge into the labels (`prompt,start_frame,end_frame` or
    /// `prompt,start_time,end_time`, times in seconds or HH:MM:SS.mmm; prompt `ignore` marks
    /// frames left out of every metric).
    #[arg(long, value_name = "FILE", conflicts_with = "export")]
    pub import: Option<PathBuf>,
    /// With --import: replace the labels instead of merging.
    #[arg(long, requires = "import")]
    pub replace: bool,
    /// With --import: the only prompts the file may name (and `ignore`).
    #[arg(long = "prompt", requires = "import")]
    pub prompts: Vec<String>,
    /// Write the labels as CSV (frames) to FILE.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Print the labels as JSON: {"labels": [{"prompt", "start_frame", "end_frame", …}], …}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigOnly,
}

#[derive(Args, Debug, Clone)]
pub struct EvaluateArgs {
    pub video: PathBuf,
    /// A label CSV to evaluate against instead of the video's stored labels.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// Only these labelled prompts (default: every labelled prompt).
    #[arg(long = "prompt")]
    pub prompts: Vec<String>,
    /// Print JSON: {"models": [{"model", "prompts": [{"prompt", "ap", "roc_auc", …}]}], …}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub sample_fps: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct ExportDatasetArgs {
    pub video: PathBuf,
    /// A label CSV to use instead of the video's stored labels.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// The folder to write (must not exist, or be empty).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Frames spread over each labelled segment.
    #[arg(long, default_value_t = 5)]
    pub per_segment: usize,
    /// No two frames of a prompt closer than this many seconds.
    #[arg(long, default_value_t = 1.0)]
    pub min_gap: f64,
    /// The highest-scoring frames outside the labels per prompt (and as many of the
    /// lowest-scoring inside them: hard positives).
    #[arg(long, default_value_t = 5)]
    pub hard_negatives: usize,
    /// `full` frames, or `model`: as the (first) model's processor crops them.
    #[arg(long, value_enum, default_value = "full")]
    pub size: DatasetSize,
    /// Only these labelled prompts (default: every labelled prompt).
    #[arg(long = "prompt")]
    pub prompts: Vec<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub sample_fps: Option<f64>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq)]
pub enum DatasetSize {
    Full,
    Model,
}

#[derive(Args, Debug, Clone)]
pub struct ProbeArgs {
    pub video: PathBuf,
    /// Print JSON: {"frames", "fps", "width", "height", "duration_s", "exact_count", …}.
    #[arg(long)]
    pub json: bool,
    /// Accepted for old scripts: every count is exact now (the frame index).
    #[arg(long, hide = true)]
    pub exact: bool,
}

#[derive(Args, Debug, Clone)]
pub struct FrameArgs {
    pub video: PathBuf,
    pub n: u64,
    #[arg(short, long)]
    pub output: PathBuf,
    /// JPEG quality, 1-100.
    #[arg(long, default_value_t = 95, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
}

#[derive(Args, Debug, Clone)]
pub struct IndexArgs {
    #[arg(required_unless_present = "library")]
    pub video: Option<PathBuf>,
    /// Every video of `video_path` and `library_dirs`, with every configured model (one
    /// after another; resumable), then the library index for `search --library`.
    #[arg(long, conflicts_with_all = ["video", "progressive"])]
    pub library: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Frames per second to embed (default: `sample_fps` from the config, else every frame).
    #[arg(long)]
    pub sample_fps: Option<f64>,
    /// Frames per model call (default: `batch_size` from the config).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Print a JSON report instead of a progress bar.
    #[arg(long)]
    pub json: bool,
    /// Seconds of work between saves of the cache file.
    #[arg(long, default_value_t = 5.0, hide = true)]
    pub checkpoint_secs: f64,
    /// Coarse to fine: the whole video at one frame per `--coarse-interval` seconds
    /// first, then ever finer passes until every frame is embedded (the same file as a
    /// straight index in the end). The web server always indexes this way.
    #[arg(long)]
    pub progressive: bool,
    /// Seconds between the frames of the first coarse pass (default:
    /// `coarse_interval_s` from the config, else 1).
    #[arg(long, value_name = "SECONDS", requires = "progressive")]
    pub coarse_interval: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct ScoresArgs {
    pub video: PathBuf,
    /// A text prompt; repeat for several (default: the config's `CLIP:` list).
    #[arg(long = "prompt")]
    pub prompts: Vec<String>,
    /// An adapter file (`adapt -o FILE`): its prompt's adapted probability per frame too.
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
    /// With --adapter: the blend of zero-shot (0) and adapted (1) (default: the adapter's).
    #[arg(long, requires = "adapter", allow_hyphen_values = true)]
    pub alpha: Option<f64>,
    /// Moving-average window in frames (1 = none).
    #[arg(long, default_value_t = 1)]
    pub smooth: usize,
    /// The model's zero-shot probabilities instead of cosine similarity: CLIP's softmax
    /// over the prompts, SigLIP's sigmoid per prompt.
    #[arg(long, visible_alias = "probabilities")]
    pub softmax: bool,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub sample_fps: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct SearchArgs {
    #[arg(required_unless_present = "library")]
    pub video: Option<PathBuf>,
    /// Search every indexed video of the library (`index --library` indexes it): the best
    /// moments, at most `--per-video` per video.
    #[arg(long, conflicts_with = "video")]
    pub library: bool,
    #[arg(long, required_unless_present_any = ["image", "adapter"])]
    pub text: Option<String>,
    /// An image file (JPEG, PNG, …).
    #[arg(long)]
    pub image: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// With --library: only these videos (their library ids, as `search --library --json`
    /// and the page give them).
    #[arg(long = "video", value_name = "ID", requires = "library")]
    pub videos: Vec<String>,
    /// With --library: only the videos of these library folders (their names).
    #[arg(long = "folder", value_name = "NAME", requires = "library")]
    pub folders: Vec<String>,
    /// With --library: at most this many moments per video.
    #[arg(long, default_value_t = 3, requires = "library")]
    pub per_video: usize,
    /// With --library: leave out moments whose peak scores below this.
    #[arg(long, requires = "library")]
    pub min_score: Option<f32>,
    /// With --library: leave out moments shorter than this many seconds.
    #[arg(long, default_value_t = 0.0, requires = "library")]
    pub min_len_s: f64,
    /// With --library: search with an adapter's score (`adapt -o FILE`; a probe) instead of
    /// a text or an image; the scores are its probabilities.
    #[arg(long, value_name = "FILE", requires = "library", conflicts_with_all = ["text", "image"])]
    pub adapter: Option<PathBuf>,
    /// With --adapter: the blend of zero-shot (0) and adapted (1) (default: the adapter's).
    #[arg(long, requires = "adapter", allow_hyphen_values = true)]
    pub alpha: Option<f64>,
    /// Results are at least this many seconds apart (default: 1).
    #[arg(long, default_value_t = 1.0)]
    pub min_gap_s: f64,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub sample_fps: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    pub video: PathBuf,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    #[arg(short, long)]
    pub output: PathBuf,
    /// Prompts to score (default: the config's `CLIP:` list); not used for npy.
    #[arg(long = "prompt")]
    pub prompts: Vec<String>,
    /// An adapter file (`adapt -o FILE`): one more column, its prompt's adapted probability.
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
    /// With --adapter: the blend of zero-shot (0) and adapted (1) (default: the adapter's).
    #[arg(long, requires = "adapter", allow_hyphen_values = true)]
    pub alpha: Option<f64>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub sample_fps: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct MomentsArgs {
    pub video: PathBuf,
    /// A prompt that must hold; repeat for several (all must hold).
    #[arg(long = "prompt", required = true)]
    pub prompts: Vec<String>,
    /// A prompt that must not hold; repeatable.
    #[arg(long = "not")]
    pub not: Vec<String>,
    /// A cosine like 0.25, `auto` (each curve's mean + 1 std) or `auto:K`.
    /// (Negative cosines are fine: `--threshold -0.2`.)
    #[arg(long, default_value = "auto", allow_hyphen_values = true)]
    pub threshold: investigator_core::moments::Threshold,
    /// A moment ends when a prompt falls this far below its threshold (default: a quarter
    /// of the curve's standard deviation).
    #[arg(long)]
    pub hysteresis: Option<f32>,
    /// Drop moments shorter than this many seconds.
    #[arg(long, default_value_t = investigator_core::moments::DEFAULT_MIN_LEN_S)]
    pub min_len: f64,
    /// Join moments less than this many seconds apart.
    #[arg(long, default_value_t = investigator_core::moments::DEFAULT_GAP_S)]
    pub gap: f64,
    /// Move each moment's edges to the nearest scene cut within --snap-s seconds.
    #[arg(long)]
    pub snap_cuts: bool,
    #[arg(long, default_value_t = investigator_core::moments::DEFAULT_SNAP_S)]
    pub snap_s: f64,
    /// Moving-average window in frames applied to the curves first (1 = raw).
    #[arg(long, default_value_t = 1)]
    pub smooth: usize,
    /// Print JSON: {"moments": [{"start_frame", "end_frame", "start_s", "end_s", …}], …}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub sample_fps: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct BenchmarkArgs {
    /// The benchmark's annotations: QVHighlights / Lighthouse JSON Lines, or Charades-STA's
    /// `VID START END##SENTENCE` lines.
    #[arg(long)]
    pub annotations: PathBuf,
    /// qvhighlights (JSON Lines) or charades.
    #[arg(long, default_value = "qvhighlights")]
    pub format: investigator_core::benchmark::annotations::Format,
    /// The folder of the videos, each named after its `vid` (VID.mp4, .mkv, …).
    #[arg(long, default_value = ".")]
    pub videos: PathBuf,
    /// A file of `vid,file` lines, where file names are not the vids.
    #[arg(long)]
    pub map: Option<PathBuf>,
    /// Write the predictions in the official layout (its eval.py reads them unchanged).
    #[arg(long)]
    pub predictions_out: Option<PathBuf>,
    /// Print JSON: per model, "metrics" keyed as the official evaluator's brief block.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Args, Debug, Clone)]
pub struct CutsArgs {
    pub video: PathBuf,
    /// Print JSON: {"cuts": [{"frame", "time_s", "score"}], …}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub sample_fps: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct ExcerptArgs {
    pub video: PathBuf,
    /// The clip's first frame.
    #[arg(long)]
    pub from: u64,
    /// The clip's last frame (inclusive).
    #[arg(long)]
    pub to: u64,
    /// Default: VIDEO_00m12.3s-00m18.0s.mp4 in the current folder.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigOnly,
}

#[derive(Args, Debug, Clone)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
    /// The config file (for `embeddings_dir`).
    #[arg(
        long,
        env = "CLIP_INVESTIGATOR_CONFIG",
        default_value = "config.yaml",
        global = true
    )]
    pub config: PathBuf,
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
    /// A model folder (Hugging Face's layout or open_clip's), or a Hub repo id `REPO[@REVISION]`. `scores`
    /// takes it twice or more to compare models (each video indexed with each).
    #[arg(long)]
    pub model: Vec<String>,
    #[arg(long, value_enum)]
    pub backend: Option<store::config::BackendKind>,
    /// What runs the local model's image tower (default: `image_runtime` from the config, auto).
    /// `--image-engine`, its name before, is still accepted.
    #[arg(long, value_enum, alias = "image-engine")]
    pub image_runtime: Option<store::config::ImageRuntime>,
    /// The image tower's number format on ONNX Runtime (default: `precision` from the config,
    /// fp32). int8 is used once it has passed its check against fp32 on this machine
    /// (`check-precision` prints it); auto takes the fastest precision that passed.
    #[arg(long, value_enum)]
    pub precision: Option<store::config::Precision>,
    /// SigLIP 2 NaFlex models: the most patches a frame is cut into, its aspect ratio kept
    /// (default: `max_num_patches` from the config, else the checkpoint's). Part of the
    /// index's identity: another budget is another index.
    #[arg(long, value_name = "N")]
    pub max_num_patches: Option<u32>,
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
