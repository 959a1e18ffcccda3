//! Past fp32: the image tower in int8, used only after it has been checked against fp32 on this
//! machine, this model and a sample of the video at hand.
//!
//! Invariants:
//! - fp32 is what runs until a check has passed: a model is switched to int8 only by
//!   [`load`] after a stored or fresh [`CheckReport`] with `passed` for this model's weights,
//!   this machine (CPU, its flags, the ONNX Runtime library) and the bar in force.
//! - An int8 model's identity has `-int8` in its revision, so its vectors live in cache files
//!   of their own; switching back to fp32 finds the fp32 files as they were.
//! - The check compares the two towers of the same weights on the same pixels: per-image cosine,
//!   each image's top-5 prompts and each prompt's top-10 frames (see [`Bar`]).
//! - bf16 is refused with the reason: ONNX Runtime's CPU kernels have no bf16 matrix products
//!   on x86 (`scripts/bf16_probe.py` shows the error it gives).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use opencv::core::{Mat, CV_8UC3};
use opencv::prelude::*;
use serde::{Deserialize, Serialize};
use store::config::{BackendKind, ImageRuntime, Precision, Settings};

use crate::embed::local::{LocalClip, ModelError};
use crate::embed::ort_vision::{GraphOptions, OrtVision};
use crate::embed::{source, Embedder, LoadError};
use crate::video::{Decoder, FrameIndex};

/// Frames of the video the check embeds both ways, spread over it.
pub const VIDEO_SAMPLES: usize = 64;
/// Images the check embeds per model call (as indexing does).
const BATCH: usize = 8;
/// Prompts the rankings are compared on: the configured ones, filled up with these.
const GENERAL_PROMPTS: [&str; 10] = [
    "a person",
    "a car on a street",
    "a dog",
    "text on a screen",
    "a building",
    "the sky",
    "a kitchen",
    "a street at night",
    "a forest",
    "a face in close-up",
];
/// Where a stricter (or, for tests, impossible) bar can be set: `MIN,MEAN,TOP10[,TOP5]`.
pub const BAR_VARIABLE: &str = "CLIP_INVESTIGATOR_PRECISION_BAR";

/// What int8 must keep of fp32 to be used.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    /// Cosine between an image's int8 and fp32 embeddings: the worst image, and the mean.
    pub min_cosine: f32,
    pub mean_cosine: f32,
    /// Mean over prompts of the share of the video's top-10 frames that stay top-10.
    pub frame_top10_overlap: f32,
    /// Mean over images of the share of their top-5 prompts that stay top-5.
    pub prompt_top5_overlap: f32,
}

impl Default for Bar {
    fn default() -> Self {
        Self {
            min_cosine: 0.99,
            mean_cosine: 0.998,
            frame_top10_overlap: 0.9,
            prompt_top5_overlap: 0.9,
        }
    }
}

impl Bar {
    /// The default bar, or the one [`BAR_VARIABLE`] sets.
    pub fn in_force() -> Result<Self, PrecisionError> {
        let Ok(text) = std::env::var(BAR_VARIABLE) else {
            return Ok(Self::default());
        };
        let values: Vec<f32> = text
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| PrecisionError::Bar(text.clone()))?;
        let mut bar = Self::default();
        match values.as_slice() {
            [min, mean, top10, rest @ ..] if rest.len() <= 1 => {
                bar.min_cosine = *min;
                bar.mean_cosine = *mean;
                bar.frame_top10_overlap = *top10;
                if let [top5] = rest {
                    bar.prompt_top5_overlap = *top5;
                }
                Ok(bar)
            }
            _ => Err(PrecisionError::Bar(text)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PrecisionError {
    #[error("{BAR_VARIABLE}={0:?}: give MIN_COSINE,MEAN_COSINE,TOP10_OVERLAP[,TOP5_OVERLAP], e.g. 0.99,0.998,0.9")]
    Bar(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Embed(#[from] crate::embed::EmbedError),
    #[error("cannot save the precision check to {}: {message}", .path.display())]
    Save { path: PathBuf, message: String },
}

/// What a check of a precision against fp32 found, as stored and as `check-precision` prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub model: String,
    /// The fp32 model's revision (its weights' fingerprint).
    pub revision: String,
    pub precision: String,
    pub machine: String,
    pub bar: Bar,
    /// The video the frames came from (file name only), and how many; and the built-in images.
    pub video: Option<String>,
    pub video_frames: usize,
    pub fixture_images: usize,
    pub prompts: usize,
    pub cosine_min: f32,
    pub cosine_mean: f32,
    /// Which image had the lowest cosine ("frame 120" or "fixture: checkerboard").
    pub worst_image: String,
    pub prompt_top5_overlap: f32,
    pub frame_top10_overlap: f32,
    /// The lowest prompt's top-10 overlap.
    pub frame_top10_overlap_min: f32,
    /// Throughput of each tower on the sample, batches of 8, this machine's threads.
    pub fp32_images_per_s: f64,
    pub int8_images_per_s: f64,
    pub passed: bool,
    /// Each bar missed, in words.
    pub failures: Vec<String>,
    pub checked_at_unix: u64,
}

impl CheckReport {
    /// The comparison as `check-precision` prints it.
    pub fn table(&self) -> String {
        let mark = |ok: bool| if ok { "ok" } else { "BELOW" };
        let bar = &self.bar;
        let mut out = format!(
            "model {} ({}), {} against fp32 on {}\nsample: {} frames of {}, {} built-in images, {} prompts\n\n",
            self.model,
            self.revision,
            self.precision,
            self.machine,
            self.video_frames,
            self.video.as_deref().unwrap_or("no video"),
            self.fixture_images,
            self.prompts
        );
        out += &format!("{:<34} {:>9} {:>9}\n", "", "measured", "bar");
        let rows = [
            (
                "cosine to fp32, worst image",
                self.cosine_min,
                bar.min_cosine,
            ),
            ("cosine to fp32, mean", self.cosine_mean, bar.mean_cosine),
            (
                "top-10 frames per prompt kept",
                self.frame_top10_overlap,
                bar.frame_top10_overlap,
            ),
            (
                "top-5 prompts per image kept",
                self.prompt_top5_overlap,
                bar.prompt_top5_overlap,
            ),
        ];
        for (name, value, limit) in rows {
            out += &format!(
                "{name:<34} {value:>9.4} {:>9} {}\n",
                format!(">= {limit}"),
                mark(value >= limit)
            );
        }
        out += &format!(
            "\nworst image: {}; lowest prompt's top-10 kept: {:.2}\nspeed (batches of 8): fp32 {:.1} images/s, {} {:.1} images/s ({:.2}x)\n",
            self.worst_image,
            self.frame_top10_overlap_min,
            self.fp32_images_per_s,
            self.precision,
            self.int8_images_per_s,
            self.int8_images_per_s / self.fp32_images_per_s.max(1e-9)
        );
        out += &if self.passed {
            format!("passed: {} may be used on this machine\n", self.precision)
        } else {
            format!(
                "below the bar ({}): fp32 is used\n",
                self.failures.join("; ")
            )
        };
        out
    }

    /// The page's note for a model that asked for int8 but runs fp32 because of this check.
    pub fn fallback_note(&self) -> String {
        format!(
            "{} fell short of fp32 in its check on this machine ({}): fp32 is used (clip-investigator check-precision shows the comparison)",
            self.precision,
            self.failures.join("; ")
        )
    }
}

/// This machine as far as int8 speed and results go: the CPU, its vector instruction sets and
/// the ONNX Runtime library. A stored check from another machine is not trusted here.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let model = field("model name");
    let flags = field("flags");
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let wanted = [
        "avx2",
        "avx512f",
        "avx512bw",
        "avx512_vnni",
        "avx_vnni",
        "avx512_bf16",
        "amx_int8",
        "amx_bf16",
    ];
    let have: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| flags.contains(w))
        .collect();
    format!(
        "{}, {} [{}], {}",
        if model.is_empty() {
            std::env::consts::ARCH
        } else {
            &model
        },
        std::env::consts::ARCH,
        have.join(" "),
        crate::embed::ort_vision::library_path().display()
    )
}

/// The CPU flags that matter for int8 and bf16 (as [`machine`] lists them).
pub fn cpu_flags() -> String {
    let machine = machine();
    machine
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(flags, _)| flags.to_string())
        .unwrap_or_default()
}

/// Where the check of `model` at `precision` is kept.
pub fn stored_path(
    embeddings_dir: &Path,
    model: &crate::embed::ModelIdentity,
    precision: Precision,
) -> PathBuf {
    let name: String = format!("{}-{}", model.name, model.revision)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    embeddings_dir
        .join("precision")
        .join(format!("{name}-{}.json", precision.as_str()))
}

/// The stored check, where it was made on this machine with this bar.
pub fn stored(path: &Path, bar: &Bar) -> Option<CheckReport> {
    let text = std::fs::read_to_string(path).ok()?;
    let report: CheckReport = serde_json::from_str(&text).ok()?;
    (report.machine == machine() && report.bar == *bar).then_some(report)
}

fn save(path: &Path, report: &CheckReport) -> Result<(), PrecisionError> {
    let text = serde_json::to_vec_pretty(report).expect("a report serialises");
    store::cache::write_atomically(path, &text).map_err(|e| PrecisionError::Save {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Built-in images the check always embeds beside the video's frames: gradients, stripes,
/// a checkerboard, colour bars, noise, circles, flat grey (deterministic, 224 x 224 BGR).
pub fn fixture_images() -> Vec<(&'static str, Mat)> {
    const SIZE: usize = 224;
    let make = |f: &dyn Fn(usize, usize) -> [u8; 3]| -> Mat {
        let mut bytes = Vec::with_capacity(SIZE * SIZE * 3);
        for y in 0..SIZE {
            for x in 0..SIZE {
                bytes.extend_from_slice(&f(x, y));
            }
        }
        let flat = Mat::from_slice(&bytes).expect("a byte buffer");
        flat.reshape(3, SIZE as i32)
            .and_then(|m| m.try_clone())
            .expect("224 x 224 x 3 bytes")
    };
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = vec![0u8; SIZE * SIZE * 3];
    for v in &mut noise {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *v = (state >> 24) as u8;
    }
    let bars = [
        [255, 255, 255],
        [0, 255, 255],
        [255, 255, 0],
        [0, 255, 0],
        [255, 0, 255],
        [0, 0, 255],
        [255, 0, 0],
        [0, 0, 0],
    ];
    let images: Vec<(&'static str, Mat)> = vec![
        (
            "horizontal gradient",
            make(&|x, _| [(x * 255 / SIZE) as u8, 80, (255 - x * 255 / SIZE) as u8]),
        ),
        (
            "vertical gradient",
            make(&|_, y| [40, (y * 255 / SIZE) as u8, 200]),
        ),
        (
            "checkerboard",
            make(&|x, y| {
                if (x / 28 + y / 28) % 2 == 0 {
                    [230, 230, 230]
                } else {
                    [20, 20, 20]
                }
            }),
        ),
        ("colour bars", make(&|x, _| bars[x * 8 / SIZE])),
        (
            "noise",
            make(&|x, y| {
                let i = (y * SIZE + x) * 3;
                [noise[i], noise[i + 1], noise[i + 2]]
            }),
        ),
        (
            "circles",
            make(&|x, y| {
                let (dx, dy) = (x as f32 - 112.0, y as f32 - 112.0);
                let r = (dx * dx + dy * dy).sqrt() as usize;
                if (r / 14) % 2 == 0 {
                    [30, 60, 220]
                } else {
                    [240, 200, 40]
                }
            }),
        ),
        (
            "diagonal stripes",
            make(&|x, y| {
                if ((x + y) / 20) % 2 == 0 {
                    [0, 160, 0]
                } else {
                    [200, 200, 255]
                }
            }),
        ),
        ("flat grey", make(&|_, _| [128, 128, 128])),
    ];
    debug_assert!(images.iter().all(|(_, m)| m.typ() == CV_8UC3));
    images
}

/// Frames spread over the video: `count` positions, each moved back to the keyframe it is
/// decoded from where keyframes are dense enough (so the sample costs about one picture per
/// frame to decode), else the positions themselves.
fn video_frames(
    path: &Path,
    index_dir: Option<&Path>,
    count: usize,
) -> Result<Vec<(u64, Mat)>, crate::video::VideoError> {
    let frame_index = FrameIndex::load_or_build(path, index_dir)?;
    let total = frame_index.frames();
    if total == 0 {
        return Ok(Vec::new());
    }
    let targets: Vec<u64> = (0..count as u64)
        .map(|i| (i * total + total / 2) / count as u64)
        .map(|n| n.min(total - 1))
        .collect();
    let starts = frame_index.starts();
    let mut keyframes: Vec<u64> = targets
        .iter()
        .filter_map(|&n| {
            let start = starts.get(frame_index.start_for(n))?;
            start
                .pts
                .and_then(|pts| frame_index.frame_at_timestamp(pts))
        })
        .collect();
    keyframes.sort_unstable();
    keyframes.dedup();
    let mut frames = if keyframes.len() >= count / 2 {
        keyframes
    } else {
        targets
    };
    frames.dedup();
    let mut decoder = Decoder::with_index(path, frame_index)?;
    frames
        .into_iter()
        .map(|n| decoder.frame(n).map(|m| (n, m)))
        .collect()
}

/// The `k` best indices of `scores`, best first (ties: the lower index).
fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

fn overlap(a: &[usize], b: &[usize]) -> f32 {
    if a.is_empty() {
        return 1.0;
    }
    a.iter().filter(|x| b.contains(x)).count() as f32 / a.len() as f32
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// How closely a tower's embeddings follow the reference's on the same images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    /// Cosine between each image's two embeddings: the lowest, which image, and the mean.
    pub cosine_min: f32,
    pub worst: usize,
    pub cosine_mean: f32,
    /// Mean over images of the share of their top-5 prompts kept.
    pub prompt_top5_overlap: f32,
    /// Mean over prompts of the share of their top-10 images kept, and the lowest prompt's.
    pub frame_top10_overlap: f32,
    pub frame_top10_overlap_min: f32,
}

/// Compares `candidate` with `reference` (L2-normalised embeddings of the same images) and
/// their rankings under the prompts `texts`; frames are ranked among the first `ranked` images.
pub fn agreement(
    reference: &[Vec<f32>],
    candidate: &[Vec<f32>],
    texts: &[Vec<f32>],
    ranked: usize,
) -> Agreement {
    let cosines: Vec<f32> = reference
        .iter()
        .zip(candidate)
        .map(|(a, b)| dot(a, b))
        .collect();
    let (worst, cosine_min) = cosines
        .iter()
        .copied()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 1.0));
    let cosine_mean = cosines.iter().sum::<f32>() / cosines.len().max(1) as f32;
    let scores = |vectors: &[Vec<f32>]| -> Vec<Vec<f32>> {
        vectors
            .iter()
            .map(|v| texts.iter().map(|t| dot(v, t)).collect())
            .collect()
    };
    let (ours, theirs) = (scores(candidate), scores(reference));
    let k5 = 5.min(texts.len());
    let prompt_top5_overlap = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| overlap(&top_k(a, k5), &top_k(b, k5)))
        .sum::<f32>()
        / ours.len().max(1) as f32;
    let ranked = ranked.min(ours.len());
    let k10 = 10.min(ranked);
    let per_prompt: Vec<f32> = (0..texts.len())
        .map(|p| {
            let column =
                |rows: &[Vec<f32>]| rows[..ranked].iter().map(|r| r[p]).collect::<Vec<_>>();
            overlap(&top_k(&column(&ours), k10), &top_k(&column(&theirs), k10))
        })
        .collect();
    let frame_top10_overlap = per_prompt.iter().sum::<f32>() / per_prompt.len().max(1) as f32;
    let frame_top10_overlap_min = per_prompt.iter().copied().fold(1.0, f32::min);
    Agreement {
        cosine_min,
        worst,
        cosine_mean,
        prompt_top5_overlap,
        frame_top10_overlap,
        frame_top10_overlap_min,
    }
}

/// Embeds `pixels` in batches of [`BATCH`]; returns the vectors and images per second.
fn timed(
    embed: impl Fn(&[Vec<f32>]) -> Result<Vec<Vec<f32>>, crate::embed::EmbedError>,
    pixels: &[Vec<f32>],
) -> Result<(Vec<Vec<f32>>, f64), crate::embed::EmbedError> {
    // One batch first: ONNX Runtime's first run of a shape allocates.
    embed(&pixels[..pixels.len().min(BATCH)])?;
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(pixels.len());
    for batch in pixels.chunks(BATCH) {
        vectors.extend(embed(batch)?);
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    Ok((vectors, pixels.len() as f64 / seconds))
}

/// A sample to check on: the video at hand's frames (if it opens) and the built-in images.
pub struct Sample {
    pub video: Option<String>,
    /// (label, frame), video frames first.
    pub images: Vec<(String, Mat)>,
    pub video_frames: usize,
    pub prompts: Vec<String>,
}

impl Sample {
    /// [`VIDEO_SAMPLES`] frames of `video` (where given and readable; a video that cannot be
    /// read is logged and left out), the built-in images, and the configured prompts filled
    /// up to ten with general ones.
    pub fn gather(video: Option<&Path>, index_dir: Option<&Path>, prompts: &[String]) -> Self {
        let mut images = Vec::new();
        let mut name = None;
        if let Some(path) = video.filter(|p| p.is_file()) {
            match video_frames(path, index_dir, VIDEO_SAMPLES) {
                Ok(frames) => {
                    name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                    images.extend(frames.into_iter().map(|(n, m)| (format!("frame {n}"), m)));
                }
                Err(e) => tracing::warn!("precision check without the video's frames: {e}"),
            }
        }
        let video_frames = images.len();
        images.extend(
            fixture_images()
                .into_iter()
                .map(|(label, m)| (format!("built-in image: {label}"), m)),
        );
        let mut prompts: Vec<String> = prompts
            .iter()
            .filter(|p| !p.trim().is_empty())
            .cloned()
            .collect();
        for general in GENERAL_PROMPTS {
            if prompts.len() >= 10 {
                break;
            }
            if !prompts.iter().any(|p| p == general) {
                prompts.push(general.to_string());
            }
        }
        Self {
            video: name,
            images,
            video_frames,
            prompts,
        }
    }
}

/// Compares `tower` (the int8 graph of `model`'s weights) with `model`'s own fp32 tower on
/// `sample`, against `bar`.
pub fn check(
    model: &LocalClip,
    tower: &OrtVision,
    precision: Precision,
    sample: &Sample,
    bar: Bar,
) -> Result<CheckReport, PrecisionError> {
    let pixels = sample
        .images
        .iter()
        .map(|(_, m)| model.preprocess_frame(m))
        .collect::<Result<Vec<_>, _>>()?;
    let (reference, fp32_speed) = timed(|b| model.embed_pixels(b), &pixels)?;
    let (candidate, int8_speed) = timed(|b| model.embed_pixels_on(tower, b), &pixels)?;
    let texts = model.embed_texts(&sample.prompts)?;
    // Frames ranked per prompt: the video's frames (all images where there is no video).
    let ranked = if sample.video_frames > 0 {
        sample.video_frames
    } else {
        reference.len()
    };
    let Agreement {
        cosine_min,
        cosine_mean,
        worst,
        prompt_top5_overlap,
        frame_top10_overlap,
        frame_top10_overlap_min,
    } = agreement(&reference, &candidate, &texts, ranked);

    let mut failures = Vec::new();
    let mut below = |name: &str, value: f32, limit: f32| {
        if value < limit || value.is_nan() {
            failures.push(format!("{name} {value:.4} < {limit}"));
        }
    };
    below("worst cosine", cosine_min, bar.min_cosine);
    below("mean cosine", cosine_mean, bar.mean_cosine);
    below(
        "top-10 frames kept",
        frame_top10_overlap,
        bar.frame_top10_overlap,
    );
    below(
        "top-5 prompts kept",
        prompt_top5_overlap,
        bar.prompt_top5_overlap,
    );
    let identity = model.identity();
    Ok(CheckReport {
        model: identity.name,
        revision: identity.revision,
        precision: precision.as_str().into(),
        machine: machine(),
        bar,
        video: sample.video.clone(),
        video_frames: sample.video_frames,
        fixture_images: sample.images.len() - sample.video_frames,
        prompts: sample.prompts.len(),
        cosine_min,
        cosine_mean,
        worst_image: sample
            .images
            .get(worst)
            .map(|(l, _)| l.clone())
            .unwrap_or_default(),
        prompt_top5_overlap,
        frame_top10_overlap,
        frame_top10_overlap_min,
        fp32_images_per_s: fp32_speed,
        int8_images_per_s: int8_speed,
        passed: failures.is_empty(),
        failures,
        checked_at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}

/// Runs the check of int8 for `model` on the video and prompts of `settings`, stores it, and
/// returns it with the int8 tower it checked.
pub fn check_and_store(
    model: &LocalClip,
    settings: &Settings,
) -> Result<(CheckReport, OrtVision), PrecisionError> {
    let bar = Bar::in_force()?;
    let tower = model.ort_tower(GraphOptions::INT8)?;
    let sample = Sample::gather(
        Some(&settings.video_path),
        Some(&settings.embeddings_dir),
        &settings.prompts,
    );
    let report = check(model, &tower, Precision::Int8, &sample, bar)?;
    save(
        &stored_path(&settings.embeddings_dir, &model.identity(), Precision::Int8),
        &report,
    )?;
    Ok((report, tower))
}

/// Why bf16 is refused here.
pub fn bf16_refusal() -> String {
    let flags = cpu_flags();
    let has = flags
        .split(' ')
        .any(|f| f == "avx512_bf16" || f == "amx_bf16");
    format!(
        "precision bf16 is not available: {}ONNX Runtime's CPU kernels have no bf16 matrix products \
         on {} (MatMul, Gemm and FusedMatMul on bfloat16: \"Could not find an implementation\", \
         scripts/bf16_probe.py). Use `precision: int8` (checked against fp32 first) or fp32.",
        if has {
            "this CPU has bf16 instructions, but "
        } else {
            "this CPU has no bf16 instructions (avx512_bf16 or amx_bf16), and "
        },
        std::env::consts::ARCH
    )
}

/// The embedder `settings` ask for, at the precision they ask for where it may be used:
/// int8 after its check has passed on this machine (stored, or run now on the settings'
/// video), else fp32 with a log line and a note for the page. `auto` takes int8 where it passed
/// and was faster. Loading and a first check take seconds: call it off the async runtime.
pub fn load(settings: &Settings) -> Result<Arc<dyn Embedder>, LoadError> {
    let asked = settings.precision;
    if asked == Precision::Fp32 {
        return crate::embed::load(settings);
    }
    let refuse = |message: String| Err(LoadError::Precision(message));
    if asked == Precision::Bf16 {
        return refuse(bf16_refusal());
    }
    let explicit = asked == Precision::Int8;
    if settings.backend == BackendKind::Roboflow {
        if explicit {
            return refuse(
                "precision int8 is for the local backend: the Roboflow server chooses its own (set backend: local, or precision: fp32)".into(),
            );
        }
        return crate::embed::load(settings);
    }
    if settings.image_runtime == ImageRuntime::Candle {
        if explicit {
            return refuse(
                "precision int8 runs on ONNX Runtime, and image_runtime is candle: set image_runtime: auto (or onnxruntime), or precision: fp32".into(),
            );
        }
        return crate::embed::load(settings);
    }
    let files = source::resolve(&settings.model)?;
    let mut model = LocalClip::load_with(&files.folder, &files.name, settings.image_runtime)?;
    if model.image_runtime() != "onnxruntime" {
        // auto runtime without ONNX Runtime's library: candle, fp32 (the loader logged why).
        if explicit {
            return refuse(format!(
                "precision int8 runs on ONNX Runtime, which cannot be loaded here: {}",
                crate::embed::ort_vision::available()
                    .err()
                    .map_or_else(|| "unknown reason".into(), |e| e.to_string())
            ));
        }
        return Ok(Arc::new(model));
    }
    let bar = Bar::in_force().map_err(|e| LoadError::Precision(e.to_string()))?;
    let path = stored_path(&settings.embeddings_dir, &model.identity(), Precision::Int8);
    let (report, tower) = match stored(&path, &bar) {
        Some(report) if !report.passed => (report, None),
        Some(report) => (report, Some(model.ort_tower(GraphOptions::INT8)?)),
        None => {
            tracing::info!(
                "checking int8 against fp32 for {} on this machine (once; stored in {})",
                model.identity().name,
                path.display()
            );
            let (report, tower) = check_and_store(&model, settings).map_err(|e| match e {
                PrecisionError::Model(e) => LoadError::Model(e),
                other => LoadError::Precision(other.to_string()),
            })?;
            tracing::info!("{}", report.table());
            (report, Some(tower))
        }
    };
    match tower {
        Some(tower) if report.passed => {
            let faster = report.int8_images_per_s > report.fp32_images_per_s;
            if explicit || faster {
                tracing::info!(
                    "{}: image tower in int8 (checked: worst cosine {:.4}, mean {:.4}; {:.1} vs {:.1} images/s)",
                    report.model,
                    report.cosine_min,
                    report.cosine_mean,
                    report.int8_images_per_s,
                    report.fp32_images_per_s
                );
                model.use_int8(tower);
            } else {
                let note = format!(
                    "int8 passed its check but was not faster on this machine ({:.1} vs {:.1} images/s): fp32 is used",
                    report.int8_images_per_s, report.fp32_images_per_s
                );
                tracing::info!("{}: {note}", report.model);
                model.set_precision_note(Some(note));
            }
        }
        _ => {
            let note = report.fallback_note();
            tracing::warn!("{}: {note}", report.model);
            model.set_precision_note(Some(note));
        }
    }
    Ok(Arc::new(model))
}

/// As [`load`], with an fp32 local model loaded on first use (answers from the caches need only
/// its identity); other precisions load and check at once.
pub fn load_lazy(settings: &Settings) -> Result<Arc<dyn Embedder>, LoadError> {
    if settings.precision == Precision::Fp32 {
        crate::embed::load_lazy(settings)
    } else {
        load(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_overlap() {
        assert_eq!(top_k(&[0.1, 0.5, 0.3, 0.5], 2), vec![1, 3]);
        assert_eq!(overlap(&[1, 2, 3, 4], &[4, 3, 9, 8]), 0.5);
        assert_eq!(overlap(&[], &[]), 1.0);
    }

    #[test]
    fn the_fixture_images_are_distinct_bgr_images() {
        let images = fixture_images();
        assert_eq!(images.len(), 8);
        let bytes: Vec<Vec<u8>> = images
            .iter()
            .map(|(_, m)| {
                assert_eq!((m.rows(), m.cols(), m.typ()), (224, 224, CV_8UC3));
                m.data_bytes().unwrap().to_vec()
            })
            .collect();
        for i in 0..bytes.len() {
            for j in i + 1..bytes.len() {
                assert_ne!(bytes[i], bytes[j], "{} and {}", images[i].0, images[j].0);
            }
        }
    }

    #[test]
    fn a_stored_check_counts_only_on_its_machine_with_its_bar() {
        let dir = tempfile::tempdir().unwrap();
        let identity = crate::embed::ModelIdentity {
            name: "org/model".into(),
            revision: "abc".into(),
            dimension: 4,
        };
        let path = stored_path(dir.path(), &identity, Precision::Int8);
        assert!(
            path.ends_with("precision/org_model-abc-int8.json"),
            "{path:?}"
        );
        let mut report = CheckReport {
            model: "org/model".into(),
            revision: "abc".into(),
            precision: "int8".into(),
            machine: machine(),
            bar: Bar::default(),
            video: None,
            video_frames: 0,
            fixture_images: 8,
            prompts: 10,
            cosine_min: 0.995,
            cosine_mean: 0.999,
            worst_image: "frame 1".into(),
            prompt_top5_overlap: 1.0,
            frame_top10_overlap: 1.0,
            frame_top10_overlap_min: 1.0,
            fp32_images_per_s: 10.0,
            int8_images_per_s: 20.0,
            passed: true,
            failures: vec![],
            checked_at_unix: 0,
        };
        save(&path, &report).unwrap();
        assert_eq!(stored(&path, &Bar::default()), Some(report.clone()));
        let stricter = Bar {
            min_cosine: 0.999,
            ..Bar::default()
        };
        assert_eq!(stored(&path, &stricter), None, "another bar: check again");
        report.machine = "another CPU".into();
        save(&path, &report).unwrap();
        assert_eq!(stored(&path, &Bar::default()), None, "another machine");
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(stored(&path, &Bar::default()), None, "damaged: check again");
    }

    #[test]
    fn bf16_is_refused_with_the_reason() {
        let message = bf16_refusal();
        assert!(message.contains("no bf16 matrix products"), "{message}");
        assert!(message.contains("precision: int8"), "{message}");
    }
}
