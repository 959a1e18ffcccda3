//! Adapted prompts, as the page, the CLI and the engine share them: what is asked (method,
//! anchor, folds), what is reported (metrics measured on frames the adapter never trained on,
//! the difference from zero-shot with its block-bootstrap interval, where to label next, which
//! labels look wrong), the adapted scores the chart draws, and the pure maths around them:
//! blocked folds (`folds`), the lists (`suggest`), WiSE-FT's blend.
//!
//! Invariants: a score is a logit (`w·x + b`); what the chart shows is its probability
//! `σ((1 − α)·zero_shot + α·adapted)` (WiSE-FT: blending the weights blends the scores, since
//! both are linear); every metric of an adapted prompt is out of fold (nested cross-validation:
//! the frames scored were not trained on, and λ and α were chosen without them).

pub mod folds;
pub mod suggest;

use serde::{Deserialize, Serialize};

/// How the prompt is adapted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Logistic regression on the image embeddings, held near the anchor (default).
    #[default]
    Probe,
    /// Tip-Adapter: a cache of labelled embeddings added to the zero-shot score, no training.
    Tip,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Tip => "tip",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "probe" => Some(Self::Probe),
            "tip" => Some(Self::Tip),
            _ => None,
        }
    }
}

/// Where the probe starts and is held near.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anchor {
    /// The prompt's text embedding times the logit scale (default).
    #[default]
    Text,
    /// Zero: the plain probe (scikit-learn's `LogisticRegression`).
    Zero,
}

impl Anchor {
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Zero => "zero",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "text" => Some(Self::Text),
            "zero" => Some(Self::Zero),
            _ => None,
        }
    }
}

/// Folds when none are asked for (fewer when the labels have fewer blocks).
pub const DEFAULT_FOLDS: usize = 5;
/// The most folds one may ask for.
pub const MAX_FOLDS: usize = 20;
/// Labelled segments a prompt needs: with fewer, no fold could test on a segment it did not
/// train on.
pub const MIN_POSITIVE_SEGMENTS: usize = 2;
/// The blends offered (and cross-validated): 0, 0.1, …, 1.
pub const ALPHA_STEPS: usize = 10;

/// The blends, 0 to 1 in steps of `1 / ALPHA_STEPS`.
pub fn alpha_grid() -> Vec<f64> {
    (0..=ALPHA_STEPS)
        .map(|k| k as f64 / ALPHA_STEPS as f64)
        .collect()
}

/// What the user asks for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdaptRequest {
    pub prompt: String,
    pub method: Method,
    pub from: Anchor,
    /// `None`: [`DEFAULT_FOLDS`], or fewer when the labels have fewer blocks.
    pub folds: Option<usize>,
    /// Train on the other videos, test on this one (its id).
    pub hold_out_video: Option<String>,
}

impl AdaptRequest {
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            ..Self::default()
        }
    }
}

/// Frame-level metrics (as `evaluation::ranking` computes them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub ap: Option<f64>,
    pub roc_auc: Option<f64>,
    pub best_f1: Option<f64>,
}

/// A difference between two scorings of the same frames (adapted minus zero-shot): on all
/// frames (`point`), and over block-bootstrap resamples (their mean and 95 % interval).
pub use crate::evaluation::bootstrap::Spread as Difference;

/// The differences in each metric; `None` where the resamples could not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Differences {
    pub ap: Option<Difference>,
    pub roc_auc: Option<Difference>,
    pub best_f1: Option<Difference>,
}

/// The out-of-fold metrics with one blend for every fold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlphaPoint {
    pub alpha: f64,
    pub metrics: Metrics,
}

/// What the adapter was trained (and tested) on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainSet {
    /// Frames of the final adapter's training rows.
    pub positives: u64,
    pub negatives: u64,
    /// Labelled segments of the prompt among them.
    pub positive_segments: u64,
    /// The videos (their ids).
    pub videos: Vec<String>,
}

/// A frame worth labelling next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelNext {
    pub video_id: String,
    pub frame: u64,
    /// The adapted probability there (out of fold).
    pub score: f64,
    /// The zero-shot probability there.
    pub zero_shot: f64,
    /// Why: "uncertain" (the adapted score is near 0.5) or "disagree" (zero-shot and adapted
    /// differ most).
    pub reason: String,
}

/// A labelled span whose out-of-fold scores contradict its label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    pub video_id: String,
    pub start_frame: u64,
    pub end_frame: u64,
    /// `true`: labelled as the prompt (yet scored low); `false`: not labelled (yet scored high).
    pub positive: bool,
    /// The mean adapted probability over the span (out of fold).
    pub score: f64,
}

/// Everything measured about one adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptReport {
    /// The stored adapter's id (share links name it).
    pub id: String,
    pub model: String,
    pub prompt: String,
    pub method: Method,
    pub from: Anchor,
    /// The probe's penalty (as in `Σ c·logloss + λ/2·‖w − w0‖²`).
    pub lambda: Option<f64>,
    /// Tip-Adapter's sharpness and the weight of its cache.
    pub tip_beta: Option<f64>,
    pub tip_alpha: Option<f64>,
    /// The blend chosen by cross-validation (the default of the slider and the CLI).
    pub alpha: f64,
    pub folds: usize,
    /// What the numbers are measured on, in words ("5 blocked folds", "video ID held out").
    pub tested_on: String,
    pub train: TrainSet,
    /// Zero-shot (cosine) on the frames tested.
    pub zero_shot: Metrics,
    /// Adapted, out of fold, with λ and α chosen inside each fold.
    pub adapted: Metrics,
    pub differences: Differences,
    /// Out of fold at each blend of [`alpha_grid`].
    pub by_alpha: Vec<AlphaPoint>,
    pub label_next: Vec<LabelNext>,
    pub suspect: Vec<Suspect>,
    /// What was left out or chosen by default, and why.
    pub notes: Vec<String>,
    /// The labels it was trained on (their fingerprint); the adapter is stale when the labels
    /// now differ.
    pub labels_fingerprint: String,
    /// Seconds the training and measuring took.
    pub seconds: f64,
}

impl AdaptReport {
    /// The metrics with one blend `alpha` for every fold (the nearest grid point).
    pub fn at_alpha(&self, alpha: f64) -> Option<&AlphaPoint> {
        self.by_alpha
            .iter()
            .min_by(|a, b| (a.alpha - alpha).abs().total_cmp(&(b.alpha - alpha).abs()))
    }
}

/// A stored adapter as the page lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdapterInfo {
    pub report: AdaptReport,
    /// The labels changed since it was trained.
    pub stale: bool,
}

/// An adapt job as the page polls it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AdaptStatus {
    /// Nothing is running for this prompt (and no adapter is stored).
    Idle,
    Running {
        /// What it is doing, in words.
        phase: String,
        /// 0 to 1.
        fraction: f64,
    },
    Done(AdapterInfo),
    Failed(String),
}

/// One adapter's scores of the embedded frames, for the chart: the zero-shot and the adapted
/// logits, aligned with `ScoreSeries::frames`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdaptedScores {
    pub id: String,
    pub prompt: String,
    pub zero_shot: Vec<f32>,
    pub adapted: Vec<f32>,
    /// The cross-validated blend.
    pub alpha: f64,
    pub stale: bool,
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// WiSE-FT's blend of a zero-shot and an adapted logit.
pub fn blend(zero_shot: f64, adapted: f64, alpha: f64) -> f64 {
    (1.0 - alpha) * zero_shot + alpha * adapted
}

/// The probabilities of the blend at `alpha`, one per embedded frame (NaN stays NaN).
pub fn blended_probabilities(scores: &AdaptedScores, alpha: f64) -> Vec<f32> {
    scores
        .zero_shot
        .iter()
        .zip(&scores.adapted)
        .map(|(&z, &a)| sigmoid(blend(f64::from(z), f64::from(a), alpha)) as f32)
        .collect()
}

/// Whether `id` looks like an adapter id (16 lowercase hex digits): ids from links and
/// requests never name paths.
pub fn is_adapter_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The label of an adapted prompt's curve (and of its moments).
pub fn adapted_name(prompt: &str) -> String {
    format!("{prompt} (adapted)")
}

/// Checks a blend asked for.
pub fn check_alpha(alpha: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&alpha) {
        Ok(alpha)
    } else {
        Err(format!(
            "alpha must be from 0 (zero-shot) to 1 (adapted), not {alpha}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blend_goes_from_zero_shot_to_adapted_and_stays_a_probability() {
        assert_eq!(blend(2.0, -4.0, 0.0), 2.0);
        assert_eq!(blend(2.0, -4.0, 1.0), -4.0);
        assert_eq!(blend(2.0, -4.0, 0.5), -1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-15);
        assert!(sigmoid(800.0) == 1.0 && sigmoid(-800.0) == 0.0);
        let scores = AdaptedScores {
            zero_shot: vec![0.0, f32::NAN],
            adapted: vec![2.0, 1.0],
            ..AdaptedScores::default()
        };
        let p = blended_probabilities(&scores, 0.5);
        assert!((p[0] - sigmoid(1.0) as f32).abs() < 1e-7 && p[1].is_nan());
    }

    #[test]
    fn alphas_outside_zero_to_one_are_refused_and_the_grid_has_both_ends() {
        assert!(check_alpha(1.2).unwrap_err().contains("from 0"));
        assert!(check_alpha(-0.1).is_err() && check_alpha(f64::NAN).is_err());
        assert_eq!(check_alpha(0.3), Ok(0.3));
        let grid = alpha_grid();
        assert_eq!((grid[0], grid[ALPHA_STEPS]), (0.0, 1.0));
        assert_eq!(grid.len(), ALPHA_STEPS + 1);
    }

    #[test]
    fn names_parse_back() {
        for m in [Method::Probe, Method::Tip] {
            assert_eq!(Method::parse(m.name()), Some(m));
        }
        for a in [Anchor::Text, Anchor::Zero] {
            assert_eq!(Anchor::parse(a.name()), Some(a));
        }
        assert_eq!(Method::parse("svm"), None);
    }
}
