//! The comparison itself: the bar, the two towers on the same pixels, what they agree on, and
//! the report that is printed and stored.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use store::config::Precision;

use super::machine::machine;
use super::sample::Sample;
use super::PrecisionError;
use crate::embed::local::LocalClip;
use crate::embed::ort_vision::OrtVision;
use crate::embed::Embedder;

/// Images the check embeds per model call (as indexing does).
const BATCH: usize = 8;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_and_overlap() {
        assert_eq!(top_k(&[0.1, 0.5, 0.3, 0.5], 2), vec![1, 3]);
        assert_eq!(overlap(&[1, 2, 3, 4], &[4, 3, 9, 8]), 0.5);
        assert_eq!(overlap(&[], &[]), 1.0);
    }
}
