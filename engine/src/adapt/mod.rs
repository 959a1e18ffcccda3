//! Adapted prompts: from a prompt's labels to a better score, trained on the embeddings the
//! caches already hold (no image tower runs again), measured on spans it never saw.
//!
//! - `probe`: logistic regression held near the prompt's text embedding (or from zero:
//!   scikit-learn's probe), fitted many at a time in lockstep;
//! - `tip`: Tip-Adapter, the training-free baseline;
//! - `select`: the nested cross-validation that chooses λ (or β and the cache's weight) and
//!   the blend α, and the out-of-fold scores;
//! - `train`: one training, from rows to the adapter and its report;
//! - `rows`: the rows of a prompt from caches and labels, and the labels' fingerprint;
//! - `adapter`: the adapter, its file (safetensors beside the caches) and its store;
//! - `maths`: the logistic loss and `e^x` in float32 for loops that vectorise.
//!
//! Invariants: every figure of a report is out of fold (see `select`); an adapter is used only
//! with the model (name, revision, precision) it was trained for; files are written
//! atomically.

pub mod adapter;
mod lbfgs;
pub mod maths;
pub mod probe;
pub mod rows;
pub mod select;
pub mod tip;
pub mod train;

use investigator_core::adapt::folds::FoldError;
use investigator_core::adapt::AdaptRequest;
use store::cache::ModelKey;

pub use adapter::{adapter_id, is_adapter_id, Adapter, AdapterFileError, AdapterStore};
pub use rows::{gather, labels_fingerprint, LabelledVideo};
pub use train::{train, OutOfFold, Scorer, Trained, Training, TrainingRows};

/// Why a prompt cannot be adapted.
#[derive(Debug, thiserror::Error)]
pub enum AdaptError {
    #[error("the prompt {prompt:?} has no labelled segment: label the spans where it holds (Shift-drag on the chart, then Label), or import a CSV")]
    NoLabels { prompt: String },
    #[error(transparent)]
    Folds(#[from] FoldError),
    #[error(
        "{video} has embedded no frame yet: wait for its index (or run `clip-investigator index`)"
    )]
    NotIndexed { video: String },
    #[error("the text embedding has {text} dimensions and the image embeddings {images}: the caches and the model disagree")]
    Dimension { text: usize, images: usize },
    #[error("the training rows hold one class only: label where the prompt holds and leave frames where it does not")]
    OneClass,
    #[error("--hold-out-video {0}: no video of those given has that id")]
    NoSuchVideo(String),
    #[error("{video} is the only labelled video: nothing is left to train on when it is held out (label the prompt in another video, or use the folds)")]
    HoldOutOnly { video: String },
    #[error("{video} (held out) has frames of one class only for this prompt: a test needs frames where it holds and frames where it does not")]
    HoldOutOneClass { video: String },
    #[error("{0}")]
    Request(String),
    #[error(transparent)]
    File(#[from] AdapterFileError),
}

impl AdaptError {
    /// Whether the request (or its labels) is at fault, not the server.
    pub fn is_bad_request(&self) -> bool {
        !matches!(
            self,
            Self::File(AdapterFileError::Io { .. }) | Self::Dimension { .. }
        )
    }
}

/// The model an adapter is trained for, and its text embedding of the prompt.
pub struct Model {
    pub key: ModelKey,
    /// The name the report gives.
    pub name: String,
    pub text: Vec<f32>,
    pub logit_scale: f64,
}

/// Trains the adapter of `request.prompt` on `videos` and names it (its id, its report's
/// model and labels' fingerprint), with the out-of-fold scores it was measured on. Nothing is
/// stored.
pub fn adapt(
    videos: &[LabelledVideo],
    model: &Model,
    request: &AdaptRequest,
    threads: usize,
    progress: &dyn Fn(&str, f64),
) -> Result<(Adapter, OutOfFold), AdaptError> {
    let prompt = request.prompt.trim();
    if prompt.is_empty() {
        return Err(AdaptError::Request("the prompt is empty".into()));
    }
    let (rows, mut notes) = gather(videos, prompt)?;
    let hold_out = match &request.hold_out_video {
        None => None,
        Some(id) => Some(
            rows.videos
                .iter()
                .position(|(v, _)| v == id)
                .ok_or_else(|| AdaptError::NoSuchVideo(id.clone()))? as u32,
        ),
    };
    let used: Vec<&LabelledVideo> = videos
        .iter()
        .filter(|v| !v.labels.spans(prompt).is_empty())
        .collect();
    let mut keys: Vec<String> = used.iter().map(|v| v.key.clone()).collect();
    keys.sort();
    let fingerprint = labels_fingerprint(used.iter().map(|v| (v.key.as_str(), v.labels)), prompt);
    let training = Training {
        rows,
        text: model.text.clone(),
        logit_scale: model.logit_scale,
        request: AdaptRequest {
            prompt: prompt.to_string(),
            ..request.clone()
        },
        hold_out,
        threads,
    };
    let trained = train(&training, progress)?;
    let mut report = trained.report;
    report.id = adapter_id(&model.key, prompt, &keys);
    report.model = model.name.clone();
    report.labels_fingerprint = fingerprint;
    notes.append(&mut report.notes);
    report.notes = notes;
    Ok((
        Adapter {
            model: model.key.clone(),
            videos: keys,
            zero_shot: trained.zero_shot,
            scorer: trained.scorer,
            alpha: trained.alpha,
            report,
        },
        trained.out_of_fold,
    ))
}

impl Adapter {
    /// Sets the blend to `alpha` (instead of the cross-validated one), and the report's
    /// adapted metrics and differences to those of that blend in every fold.
    pub fn set_alpha(&mut self, alpha: f64, out_of_fold: &OutOfFold) {
        let (metrics, differences) = out_of_fold.at_alpha(alpha);
        self.report.notes.push(format!(
            "α = {alpha} set by hand (cross-validation chose {}): the adapted figures use it in every fold",
            self.alpha
        ));
        self.alpha = alpha;
        self.report.alpha = alpha;
        self.report.adapted = metrics;
        self.report.differences = differences;
    }
}
