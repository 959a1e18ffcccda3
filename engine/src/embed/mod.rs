//! Embedders turn frames and prompts into L2-normalised CLIP vectors.
//!
//! Implementations: [`local::LocalClip`] (candle, in this process; the default) and
//! [`roboflow::RoboflowEmbedder`] (an inference server, wire-compatible with the old app).
//! Calls block: run them on indexing or `spawn_blocking` threads, never on async workers.

pub mod local;
pub mod preprocess;
pub mod roboflow;
pub mod source;

/// ONNX Runtime for the image tower (the int8 check and the benches reach it by this name).
pub use local::onnx as ort_vision;

use std::sync::Arc;

use store::config::{BackendKind, Settings};

use opencv::core::Mat;

/// Which model produced a set of vectors; caches are keyed by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelIdentity {
    pub name: String,
    /// A revision, file hash or server URL: whatever tells two models of one name apart.
    pub revision: String,
    pub dimension: usize,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("cannot reach the inference server at {url}: {reason}. Is it running there? (Set roboflow_url, or use the local backend.)")]
    Unreachable { url: String, reason: String },
    #[error(
        "the inference server at {url} did not answer within {seconds} s ({attempts} attempts)"
    )]
    Timeout {
        url: String,
        seconds: u64,
        attempts: u32,
    },
    #[error("the inference server at {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the inference server at {url} sent a malformed answer: {reason}")]
    Malformed { url: String, reason: String },
    #[error("cannot encode a frame for the inference server: {0}")]
    Encode(String),
    #[error("{0}")]
    Model(String),
    #[error("this model cannot explain its scores: the Roboflow backend gives no gradients (use the local backend, `backend: local`)")]
    NoGradients,
    #[error("start layer {given} is out of range: the model's vision tower has {layers} layers (0 to {})", .layers.saturating_sub(1))]
    StartLayer { given: usize, layers: usize },
}

/// Why a frame scores as it does for a prompt: each patch's gradient-weighted attention
/// relevance (see `local::explain`), and where the model's input lies in the frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Relevance {
    /// Row-major, `rows x cols`: the patch grid of the model's input.
    pub values: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
    /// The model's logit for the prompt (`logit_scale · cos`, SigLIP `+ logit_bias`), and the
    /// cosine in it.
    pub logit: f32,
    pub cosine: f32,
    /// Vision layers in the tower, and the first whose attention was used.
    pub layers: usize,
    pub start_layer: usize,
    /// The part of the frame the model sees, in the frame's pixels: `(left, top, width,
    /// height)` (CLIP's centre crop leaves a wide frame's sides out).
    pub crop: (f64, f64, f64, f64),
}

/// Why the model the settings name cannot be loaded (each message says what to do next).
#[derive(Clone, Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a folder, not a Hub repo id, or not cached and not downloadable.
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// The folder's files cannot make a model this engine computes exactly.
    #[error(transparent)]
    Model(#[from] local::ModelError),
    /// The inference server's settings are wrong.
    #[error(transparent)]
    Server(#[from] EmbedError),
    /// The precision asked for cannot be had here (bf16 without kernels, int8 without ONNX
    /// Runtime, a bad check bar).
    #[error("{0}")]
    Precision(String),
}

/// A frame made ready for one embedder, so that this work can run on another thread than
/// the model (the indexing pipeline prepares frames while the previous batch is embedded).
#[derive(Clone)]
pub enum PreparedImage {
    /// CLIP's input resized and cropped, `H x W` RGB bytes: normalised just before the model,
    /// so a frame waiting for it takes a quarter of the memory of its floats.
    Cropped(Vec<u8>),
    /// A model input whose size depends on the frame (SigLIP 2 NaFlex): `height x width` RGB
    /// bytes.
    Resized {
        rgb: Vec<u8>,
        height: usize,
        width: usize,
    },
    /// A base64 JPEG for an inference server.
    Base64Jpeg(String),
}

impl PreparedImage {
    /// The bytes this image holds in memory.
    pub fn size_bytes(&self) -> usize {
        match self {
            Self::Cropped(bytes) | Self::Resized { rgb: bytes, .. } => bytes.len(),
            Self::Base64Jpeg(text) => text.len(),
        }
    }
}

/// Batch embedding of images (BGR frames) and texts.
pub trait Embedder: Send + Sync {
    fn identity(&self) -> ModelIdentity;
    /// The image tower's number format (fp32 or int8); `None` where a server embeds.
    fn precision(&self) -> Option<store::config::Precision> {
        None
    }
    /// Why the precision in use is not the one asked for (a failed check, a runtime without
    /// int8), for the page and the log.
    fn precision_note(&self) -> Option<String> {
        None
    }
    /// CLIP's learned temperature (`exp(logit_scale)`, 100 for OpenAI's models): softmax over
    /// prompts of `scale * cosine` gives its zero-shot probabilities.
    fn logit_scale(&self) -> f32 {
        100.0
    }
    /// SigLIP's learned bias: its probability for a prompt is `sigmoid(scale * cosine + bias)`,
    /// each prompt on its own. `None` for CLIP (softmax across prompts).
    fn logit_bias(&self) -> Option<f32> {
        None
    }
    fn prepare_image(&self, frame: &Mat) -> Result<PreparedImage, EmbedError>;
    fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Whether `text` is too long for the model and would be cut.
    fn is_truncated(&self, _text: &str) -> bool {
        false
    }

    /// How different two prepared images look to the model: the mean absolute difference of
    /// its input, in grey levels (0-255). `None` where this embedder cannot tell cheaply.
    fn image_difference(&self, _a: &PreparedImage, _b: &PreparedImage) -> Option<f32> {
        None
    }

    /// The size (height, width) of the image the model sees after its processor's resize and
    /// crop, where it prepares images itself; `None` for an inference server.
    fn input_size(&self) -> Option<(usize, usize)> {
        None
    }

    /// Whether [`explain`](Self::explain) can answer: it needs gradients, which only the local
    /// backend gives.
    fn explains(&self) -> bool {
        false
    }

    /// Why `frame` scores as it does for a prompt whose L2-normalised embedding is `text` (as
    /// [`embed_texts`](Self::embed_texts) gives it): each patch's relevance, from the vision
    /// layer `start_layer` on (`None`: the last layer). Blocks for a forward and a backward pass.
    fn explain(
        &self,
        _frame: &Mat,
        _text: &[f32],
        _start_layer: Option<usize>,
    ) -> Result<Relevance, EmbedError> {
        Err(EmbedError::NoGradients)
    }

    fn embed_images(&self, frames: &[Mat]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let prepared = frames
            .iter()
            .map(|f| self.prepare_image(f))
            .collect::<Result<Vec<_>, _>>()?;
        self.embed_prepared(&prepared)
    }
}

/// A local model that is loaded on first use: answering from the caches needs only its
/// identity, which costs a few file reads instead of loading hundreds of MB of weights.
pub struct LazyLocal {
    folder: std::path::PathBuf,
    options: local::LoadOptions,
    identity: ModelIdentity,
    model: std::sync::OnceLock<Result<local::LocalClip, local::ModelError>>,
}

impl LazyLocal {
    pub fn new(
        files: &source::ModelFiles,
        options: impl Into<local::LoadOptions>,
    ) -> Result<Self, local::ModelError> {
        let options = options.into();
        // The identity reads the folder through the families' registry, which refuses a folder
        // of no family's files (saying which to put there) before anything is loaded.
        Ok(Self {
            folder: files.folder.clone(),
            options,
            identity: local::identity_with(&files.folder, &files.name, options.max_patches)?,
            model: Default::default(),
        })
    }

    fn model(&self) -> Result<&local::LocalClip, EmbedError> {
        self.model
            .get_or_init(|| {
                local::LocalClip::load_with(&self.folder, &self.identity.name, self.options)
            })
            .as_ref()
            .map_err(|e| EmbedError::Model(e.to_string()))
    }
}

impl Embedder for LazyLocal {
    fn identity(&self) -> ModelIdentity {
        self.identity.clone()
    }
    fn precision(&self) -> Option<store::config::Precision> {
        // Lazy models are fp32 (`precision::load_lazy` loads others at once, checked).
        Some(store::config::Precision::Fp32)
    }
    fn logit_scale(&self) -> f32 {
        self.model().map_or(100.0, |m| m.logit_scale())
    }
    fn logit_bias(&self) -> Option<f32> {
        self.model().ok()?.logit_bias()
    }
    fn prepare_image(&self, frame: &Mat) -> Result<PreparedImage, EmbedError> {
        self.model()?.prepare_image(frame)
    }
    fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.model()?.embed_prepared(images)
    }
    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.model()?.embed_texts(texts)
    }
    fn image_difference(&self, a: &PreparedImage, b: &PreparedImage) -> Option<f32> {
        self.model().ok()?.image_difference(a, b)
    }
    fn input_size(&self) -> Option<(usize, usize)> {
        self.model().ok()?.input_size()
    }
    fn explains(&self) -> bool {
        true
    }
    fn explain(
        &self,
        frame: &Mat,
        text: &[f32],
        start_layer: Option<usize>,
    ) -> Result<Relevance, EmbedError> {
        self.model()?.explain(frame, text, start_layer)
    }
    fn is_truncated(&self, text: &str) -> bool {
        // Every token covers at least one byte but SentencePiece's word-start mark: short texts
        // fit both CLIP's 75 and SigLIP's 63 text tokens.
        text.len() > 61 && self.model().is_ok_and(|m| m.is_truncated(text))
    }
}

/// The embedder the settings ask for, with a local model loaded on first use.
pub fn load_lazy(settings: &Settings) -> Result<Arc<dyn Embedder>, LoadError> {
    match settings.backend {
        BackendKind::Local => {
            let files = source::resolve(&settings.model)?;
            Ok(Arc::new(LazyLocal::new(
                &files,
                local::LoadOptions::of(settings),
            )?))
        }
        BackendKind::Roboflow => load(settings),
    }
}

/// The embedder the settings ask for. Loading a local model can take seconds (and download
/// where online): call it off the async runtime.
pub fn load(settings: &Settings) -> Result<Arc<dyn Embedder>, LoadError> {
    match settings.backend {
        BackendKind::Local => {
            let files = source::resolve(&settings.model)?;
            let model = local::LocalClip::load_with(
                &files.folder,
                &files.name,
                local::LoadOptions::of(settings),
            )?;
            Ok(Arc::new(model))
        }
        BackendKind::Roboflow => {
            let embedder = roboflow::RoboflowEmbedder::new(roboflow::RoboflowSettings {
                url: settings.roboflow_url.clone(),
                api_key: settings.roboflow_api_key.clone(),
                ..Default::default()
            })?;
            Ok(Arc::new(embedder))
        }
    }
}

/// The model as status lines name it: its name, and `int8` where its image tower is.
pub fn model_label(embedder: &dyn Embedder) -> String {
    let name = embedder.identity().name;
    match embedder.precision() {
        Some(store::config::Precision::Int8) => format!("{name} (int8)"),
        _ => name,
    }
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl From<&ModelIdentity> for store::cache::ModelKey {
    fn from(m: &ModelIdentity) -> Self {
        Self {
            name: m.name.clone(),
            revision: m.revision.clone(),
            dimension: m.dimension as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalised_vectors_have_unit_length() {
        let mut v = vec![3.0, 4.0];
        super::l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0; 3];
        super::l2_normalize(&mut zero);
        assert_eq!(zero, vec![0.0; 3]);
    }
}
