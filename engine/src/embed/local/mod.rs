//! In-process image-text models with candle (and ONNX Runtime for the image tower), from a
//! model folder. Each model family is a folder under `families/` implementing the `Family`
//! trait (`family`): its configuration and refusals, its preprocessing, tokenizer, towers, ONNX
//! graph and probability head; `families/mod.rs` picks the family from the folder's files.
//! Shared here: the transformer layers (`layers`), tokenizers (`tokenizers`, `spiece`), the text
//! and image towers' batching and runtimes (`text`, `vision`, `onnx`) and explanations
//! (`explain`); this file loads a folder into them.
//!
//! Configurations a family cannot compute exactly (another activation, another architecture)
//! are refused rather than run wrongly.

mod config;
pub mod explain;
pub(crate) mod families;
mod family;
mod identity;
mod layers;
pub mod onnx;
mod spiece;
mod text;
mod tokenize;
mod vision;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use candle_core::Device;
use candle_nn::VarBuilder;
use opencv::core::Mat;

pub use config::ModelError;
pub use identity::{identity_of, identity_with};
/// Files a model folder in Hugging Face layout must hold.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];
/// What may stand in for `tokenizer.json`: SentencePiece's model, all SigLIP checkpoints ship.
pub const TOKENIZER_ALTERNATIVE: &str = "spiece.model";
/// open_clip's layout: its config and its weights.
pub const OPEN_CLIP_FILES: [&str; 2] = [
    families::open_clip::CONFIG_FILE,
    families::open_clip::WEIGHTS_FILE,
];
pub use family::{Pooling, ProbabilityHead};
pub use tokenize::{canonicalize, Tokens};

use super::{EmbedError, Embedder, ModelIdentity, PreparedImage, Relevance};
use explain::ExplainTower;
use family::Family;
use onnx::{GraphOptions, OrtVision};
use store::config::{ImageRuntime, Precision};
use text::TextTower;
use tokenize::TextTokenizer;
use vision::ImageTower;

pub struct LocalClip {
    text: TextTower,
    tokenizer: Box<dyn TextTokenizer>,
    images: ImageTower,
    family: Arc<dyn Family>,
    identity: ModelIdentity,
    device: Device,
    /// How cosine scores become probabilities: CLIP's softmax over prompts with its
    /// temperature, SigLIP's sigmoid with its scale and bias.
    head: ProbabilityHead,
    /// The weights under the towers' names, for the candle image tower that explains scores
    /// where the tower that embeds is ONNX Runtime's, which has no gradients (built on first
    /// use), and for the int8 graph.
    weights: VarBuilder<'static>,
    explainer: OnceLock<Result<ExplainTower, String>>,
    /// The image tower's number format: fp32, or int8 once [`use_int8`](Self::use_int8) has
    /// put the checked int8 tower in.
    precision: Precision,
    /// Why the precision asked for is not the one used, for the page and the log.
    precision_note: Option<String>,
}

/// How a model folder is loaded: where its image tower runs, and (SigLIP 2 NaFlex) the patch
/// budget that overrides the checkpoint's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    pub runtime: ImageRuntime,
    pub max_patches: Option<u32>,
}

impl From<ImageRuntime> for LoadOptions {
    fn from(runtime: ImageRuntime) -> Self {
        Self {
            runtime,
            max_patches: None,
        }
    }
}

impl LoadOptions {
    /// The settings' `image_runtime` and `max_num_patches`.
    pub fn of(settings: &store::config::Settings) -> Self {
        Self {
            runtime: settings.image_runtime,
            max_patches: settings.max_num_patches,
        }
    }
}

impl LocalClip {
    /// Loads a model folder in Hugging Face layout, named after the folder.
    pub fn load(folder: &Path) -> Result<Self, ModelError> {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "clip".into());
        Self::load_named(folder, &name)
    }

    /// Loads a model folder; `name` (e.g. `REPO@REVISION`) goes into the model's identity.
    pub fn load_named(folder: &Path, name: &str) -> Result<Self, ModelError> {
        Self::load_with(folder, name, ImageRuntime::Auto)
    }

    /// Loads a model folder with the image tower on a runtime (and other options).
    pub fn load_with(
        folder: &Path,
        name: &str,
        options: impl Into<LoadOptions>,
    ) -> Result<Self, ModelError> {
        Self::load_with_options(folder, name, options.into(), GraphOptions::FP32)
    }

    /// Loads a model folder with its image tower in int8 on ONNX Runtime, without building the
    /// fp32 tower: for a model whose int8 check has passed (see `use_int8` for the identity).
    pub fn load_int8(folder: &Path, name: &str) -> Result<Self, ModelError> {
        let options = LoadOptions::from(ImageRuntime::Onnxruntime);
        let mut model = Self::load_with_options(folder, name, options, GraphOptions::INT8)?;
        model.mark_int8();
        Ok(model)
    }

    fn load_with_options(
        folder: &Path,
        name: &str,
        load: LoadOptions,
        options: GraphOptions,
    ) -> Result<Self, ModelError> {
        let family: Arc<dyn Family> = Arc::from(families::read(folder)?);
        let budget = identity::patch_budget(family.as_ref(), load.max_patches, folder)?;
        let tokenizer = family.tokenizer()?;
        let device = Device::Cpu;
        let weights = family.weights(&device)?;
        let text = family
            .text_tower(&weights)
            .map_err(|e| ModelError::weights(family.weights_file(), e))?;
        let mut images = ImageTower::load(&family, &weights, load.runtime, options)?;
        if let Some(budget) = budget {
            images.set_patch_budget(budget);
        }
        let head = family.head(&weights)?;
        let identity = identity::identity(family.as_ref(), name, budget)?;
        Ok(Self {
            text: TextTower::new(text),
            tokenizer,
            images,
            family,
            identity,
            device,
            head,
            weights,
            explainer: OnceLock::new(),
            precision: Precision::Fp32,
            precision_note: None,
        })
    }

    /// The image tower of this model's weights written with `options` (int8 layers) on ONNX
    /// Runtime, beside the one that embeds: for the check against fp32 and for
    /// [`use_int8`](Self::use_int8).
    pub fn ort_tower(&self, options: GraphOptions) -> Result<OrtVision, ModelError> {
        let input = self.fixed_size().map_err(|e| ModelError::Runtime {
            message: format!("{e}: its int8 tower is not made yet"),
        })?;
        onnx::available()
            .and_then(|()| {
                vision::onnx_session(self.family.as_ref(), &self.weights, options, input)
            })
            .map_err(|error| ModelError::Runtime {
                message: error.to_string(),
            })
    }

    /// L2-normalised embeddings of preprocessed images on `tower` instead of the model's own.
    pub fn embed_pixels_on(
        &self,
        tower: &OrtVision,
        images: &[Vec<f32>],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let slices: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
        let size = self.fixed_size()?;
        self.images
            .embed_on(Some(tower), &slices, size, &self.device)
    }

    /// The model's one input size; an error for a model whose size depends on the frame.
    fn fixed_size(&self) -> Result<(usize, usize), EmbedError> {
        self.images.input_size().ok_or_else(|| {
            EmbedError::Model(
                "this model's input size depends on the frame: give the size with the pixels"
                    .into(),
            )
        })
    }

    /// Embeds images with the int8 `tower` (made by [`ort_tower`](Self::ort_tower) with
    /// [`GraphOptions::INT8`]) from now on. The identity's revision gains `-int8`: an int8
    /// index has cache files of its own, and the fp32 ones stay as they are.
    pub fn use_int8(&mut self, tower: OrtVision) {
        self.images.replace_runtime(tower);
        self.mark_int8();
    }

    fn mark_int8(&mut self) {
        if self.precision != Precision::Int8 {
            self.identity.revision = format!("{}-int8", self.identity.revision);
        }
        self.precision = Precision::Int8;
    }

    /// Says why the precision asked for is not the one used (shown on the page).
    pub fn set_precision_note(&mut self, note: Option<String>) {
        self.precision_note = note;
    }

    /// The candle image tower that explains scores: the one that embeds where candle runs it,
    /// else loaded from the weights on first use (a second copy of the image tower's weights).
    fn explainer(&self) -> Result<&ExplainTower, EmbedError> {
        self.explainer
            .get_or_init(|| {
                if let Some(tower) = self.images.candle_tower() {
                    return Ok(ExplainTower(tower));
                }
                self.family
                    .image_tower(&self.weights)
                    .map(ExplainTower)
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| EmbedError::Model(format!("the image tower for explanations: {e}")))
    }

    /// The relevance of a preprocessed image (as [`preprocess_frame`](Self::preprocess_frame)
    /// gives it) for an L2-normalised text embedding, from vision layer `start_layer` on
    /// (`None`: the last). Its crop box is the model's input, whole.
    pub fn explain_pixels(
        &self,
        image: &[f32],
        text: &[f32],
        start_layer: Option<usize>,
    ) -> Result<Relevance, EmbedError> {
        self.explain_pixels_sized(image, self.fixed_size()?, text, start_layer)
    }

    /// [`explain_pixels`](Self::explain_pixels) of an image of `(height, width)`.
    pub fn explain_pixels_sized(
        &self,
        image: &[f32],
        (height, width): (usize, usize),
        text: &[f32],
        start_layer: Option<usize>,
    ) -> Result<Relevance, EmbedError> {
        let tower = self.explainer()?;
        let layers = tower.layers();
        let start_layer = start_layer.unwrap_or(layers.saturating_sub(1));
        if start_layer >= layers {
            return Err(EmbedError::StartLayer {
                given: start_layer,
                layers,
            });
        }
        if image.len() != 3 * height * width {
            return Err(EmbedError::Model(format!(
                "explaining: {} floats given, the model takes 3 x {height} x {width}",
                image.len()
            )));
        }
        let failed = |e: candle_core::Error| EmbedError::Model(format!("explaining: {e}"));
        let pixels = explain::pixels(image, height, width, &self.device).map_err(failed)?;
        let mut relevance = tower
            .relevance(
                &pixels,
                text,
                self.head.scale(),
                self.head.bias(),
                start_layer,
            )
            .map_err(failed)?;
        relevance.crop = (0.0, 0.0, width as f64, height as f64);
        Ok(relevance)
    }

    /// The model's tokens of `text`, padded to its context.
    pub fn tokenize(&self, text: &str) -> Result<Tokens, EmbedError> {
        self.tokenizer.tokenize(text)
    }

    pub fn preprocess_frame(&self, frame: &Mat) -> Result<Vec<f32>, EmbedError> {
        self.images.preprocess_frame(frame)
    }

    /// Image embeddings of already preprocessed images (`3 * size * size` floats each).
    pub fn embed_pixels(&self, images: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_pixels_sized(images, self.fixed_size()?)
    }

    /// Image embeddings of preprocessed images of `(height, width)`.
    pub fn embed_pixels_sized(
        &self,
        images: &[Vec<f32>],
        size: (usize, usize),
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let slices: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
        self.images.embed(&slices, size, &self.device)
    }

    /// The (height, width) of the model's input for a frame.
    pub fn input_size_for(&self, frame: &Mat) -> (usize, usize) {
        let (width, height) = frame_size(frame);
        self.images.input_size_for(width, height)
    }

    /// What runs the image tower: "candle" or "onnxruntime".
    pub fn image_runtime(&self) -> &'static str {
        self.images.runtime_name()
    }

    /// The model's family: "CLIP", "SigLIP", …
    pub fn family(&self) -> &'static str {
        self.family.name()
    }

    /// How the model's scores become probabilities.
    pub fn probability_head(&self) -> ProbabilityHead {
        self.head
    }
}

impl Embedder for LocalClip {
    fn identity(&self) -> ModelIdentity {
        self.identity.clone()
    }

    fn precision(&self) -> Option<Precision> {
        Some(self.precision)
    }

    fn precision_note(&self) -> Option<String> {
        self.precision_note.clone()
    }

    fn logit_scale(&self) -> f32 {
        self.head.scale()
    }

    fn logit_bias(&self) -> Option<f32> {
        self.head.bias()
    }

    fn prepare_image(&self, frame: &Mat) -> Result<PreparedImage, EmbedError> {
        let rgb = self.images.crop_frame(frame)?;
        Ok(match self.images.input_size() {
            Some(_) => PreparedImage::Cropped(rgb),
            None => {
                let (height, width) = self.input_size_for(frame);
                PreparedImage::Resized { rgb, height, width }
            }
        })
    }

    fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let sized = images
            .iter()
            .map(|image| match image {
                PreparedImage::Cropped(crop) => Ok((self.fixed_size()?, crop)),
                PreparedImage::Resized { rgb, height, width } => Ok(((*height, *width), rgb)),
                PreparedImage::Base64Jpeg(_) => Err(EmbedError::Model(
                    "the local model takes pixel tensors, not JPEG images".into(),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // One pass per run of images of one size (a video's frames all have one).
        let mut vectors = Vec::with_capacity(images.len());
        for run in sized.chunk_by(|a, b| a.0 == b.0) {
            let pixels: Vec<Vec<f32>> = run
                .iter()
                .map(|(_, rgb)| self.images.normalize(rgb))
                .collect();
            vectors.extend(self.embed_pixels_sized(&pixels, run[0].0)?);
        }
        Ok(vectors)
    }

    fn is_truncated(&self, text: &str) -> bool {
        self.tokenize(text).is_ok_and(|t| t.truncated)
    }

    fn image_difference(&self, a: &PreparedImage, b: &PreparedImage) -> Option<f32> {
        match (a, b) {
            (PreparedImage::Cropped(a), PreparedImage::Cropped(b)) => self.images.difference(a, b),
            (
                PreparedImage::Resized {
                    rgb: a,
                    height,
                    width,
                },
                PreparedImage::Resized {
                    rgb: b,
                    height: h,
                    width: w,
                },
            ) if (height, width) == (h, w) => self.images.difference(a, b),
            _ => None,
        }
    }

    fn input_size(&self) -> Option<(usize, usize)> {
        self.images.input_size()
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
        let image = self.images.preprocess_frame(frame)?;
        let size = self.input_size_for(frame);
        let mut relevance = self.explain_pixels_sized(&image, size, text, start_layer)?;
        let (width, height) = frame_size(frame);
        relevance.crop = self.images.crop_box(width, height);
        Ok(relevance)
    }

    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let tokens = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.text.embed(&tokens, &self.device)
    }
}

/// `(width, height)` of a frame.
fn frame_size(frame: &Mat) -> (usize, usize) {
    use opencv::prelude::MatTraitConst;
    (frame.cols().max(0) as usize, frame.rows().max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_the_files_says_which_to_put_where() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let error = LocalClip::load(dir.path()).err().unwrap().to_string();
        assert!(
            error.contains("model.safetensors, tokenizer.json") && error.contains("--model"),
            "{error}"
        );
    }
}
