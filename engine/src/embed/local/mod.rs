//! In-process CLIP and SigLIP with candle, from a model folder in Hugging Face layout:
//! `config.json`, `model.safetensors`, `tokenizer.json` (and optionally
//! `preprocessor_config.json`, `tokenizer_config.json`). The configuration and its refusals
//! (`config`), CLIP's two transformers (`model`), SigLIP's (`siglip`), the text tower with its
//! tokenizer (`text`), and the image tower on candle or ONNX Runtime (`vision`); this file loads
//! a folder into them.
//!
//! The architecture is read from `config.json`; configurations the towers cannot compute
//! exactly (another activation, another model family) are refused rather than run wrongly.

mod config;
pub mod explain;
pub mod model;
pub mod siglip;
mod spiece;
mod text;
mod vision;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use opencv::core::Mat;

pub use config::{
    identity_of, missing_files, Architecture, ModelError, CONTEXT_LENGTH, REQUIRED_FILES,
    TOKENIZER_ALTERNATIVE,
};
pub use text::{canonicalize, Tokens};

use super::ort_vision::{GraphOptions, OrtVision};
use super::{EmbedError, Embedder, ModelIdentity, PreparedImage, Relevance};
use explain::ExplainTower;
use store::config::{ImageRuntime, Precision};
use text::{ClipTokenizer, SiglipTokenizer, TextTower, Tokenizer};
use vision::ImageTower;

pub struct LocalClip {
    text: TextTower,
    tokenizer: Tokenizer,
    images: ImageTower,
    config: Architecture,
    identity: ModelIdentity,
    device: Device,
    /// `exp(logit_scale)`: the multiplier of cosine scores in CLIP's zero-shot softmax and in
    /// SigLIP's sigmoid.
    logit_scale: f32,
    /// SigLIP's `logit_bias`; `None` for CLIP.
    logit_bias: Option<f32>,
    /// `model.safetensors`, for the candle image tower that explains scores where the tower that
    /// embeds is ONNX Runtime's, which has no gradients (loaded on first use).
    weights: PathBuf,
    explainer: OnceLock<Result<ExplainTower, String>>,
    /// The image tower's number format: fp32, or int8 once [`use_int8`](Self::use_int8) has
    /// put the checked int8 tower in.
    precision: Precision,
    /// Why the precision asked for is not the one used, for the page and the log.
    precision_note: Option<String>,
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

    /// Loads a model folder with the image tower on `runtime`.
    pub fn load_with(folder: &Path, name: &str, runtime: ImageRuntime) -> Result<Self, ModelError> {
        Self::load_with_options(folder, name, runtime, GraphOptions::FP32)
    }

    /// Loads a model folder with its image tower in int8 on ONNX Runtime, without building the
    /// fp32 tower: for a model whose int8 check has passed (see `use_int8` for the identity).
    pub fn load_int8(folder: &Path, name: &str) -> Result<Self, ModelError> {
        let mut model =
            Self::load_with_options(folder, name, ImageRuntime::Onnxruntime, GraphOptions::INT8)?;
        model.mark_int8();
        Ok(model)
    }

    fn load_with_options(
        folder: &Path,
        name: &str,
        runtime: ImageRuntime,
        options: GraphOptions,
    ) -> Result<Self, ModelError> {
        let missing = config::missing_files(folder);
        if !missing.is_empty() {
            return Err(ModelError::MissingFiles {
                folder: folder.into(),
                missing: missing.join(", "),
            });
        }
        let config = config::read_config(folder)?;
        let preprocess = vision::read_preprocess(folder, config.image_size())?;
        let tokenizer = match &config {
            Architecture::Clip(c) => Tokenizer::Clip(ClipTokenizer::load(
                &folder.join("tokenizer.json"),
                c.text_config.vocab_size,
            )?),
            Architecture::Siglip { text, .. } => Tokenizer::Siglip(SiglipTokenizer::load(
                folder,
                text.vocab_size,
                text.max_position_embeddings,
            )?),
        };

        let weights = folder.join("model.safetensors");
        let device = Device::Cpu;
        // SAFETY: the file is memory-mapped read-only; the app never writes model files.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| ModelError::weights(&weights, e))?;
        // Named first, so that a checkpoint of another layout gets a message that says so.
        let (expected, family): (&[&str], &str) = match &config {
            Architecture::Clip(_) => (
                &[
                    "vision_model.embeddings.class_embedding",
                    "visual_projection.weight",
                    "text_projection.weight",
                ],
                "CLIP",
            ),
            Architecture::Siglip { .. } => (
                &[
                    "vision_model.head.probe",
                    "text_model.head.weight",
                    "logit_bias",
                ],
                "SigLIP",
            ),
        };
        for name in expected {
            if !vb.contains_tensor(name) {
                return Err(ModelError::weights(
                    &weights,
                    format!(
                        "it has no tensor {name}: is it a {family} checkpoint in Hugging Face layout?"
                    ),
                ));
            }
        }
        let (text, images) = match &config {
            Architecture::Clip(c) => (
                TextTower::load(&vb, &weights, &c.text_config)?,
                ImageTower::load(
                    &vb,
                    &weights,
                    &c.vision_config,
                    preprocess,
                    runtime,
                    options,
                )?,
            ),
            Architecture::Siglip { text, vision } => (
                TextTower::load_siglip(&vb, &weights, text)?,
                ImageTower::load_siglip(&vb, &weights, vision, preprocess, runtime, options)?,
            ),
        };
        // A learned scalar: shape [] (CLIP) or [1] (SigLIP).
        let scalar = |name: &str| -> Result<f32, ModelError> {
            vb.get_unchecked(name)
                .and_then(|t| t.flatten_all()?.get(0)?.to_scalar::<f32>())
                .map_err(|e| ModelError::weights(&weights, format!("{name}: {e}")))
        };
        // The temperature, read as candle's ClipModel does.
        let logit_scale = match &config {
            Architecture::Clip(c) if !vb.contains_tensor("logit_scale") => c.logit_scale_init_value,
            _ => scalar("logit_scale")?,
        }
        .exp();
        let logit_bias = match &config {
            Architecture::Clip(_) => None,
            Architecture::Siglip { .. } => Some(scalar("logit_bias")?),
        };

        let identity = identity_of(folder, name)?;
        Ok(Self {
            text,
            tokenizer,
            images,
            config,
            identity,
            device,
            logit_scale,
            logit_bias,
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
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = |error: super::ort_vision::OrtError| ModelError::Runtime {
            message: error.to_string(),
        };
        super::ort_vision::available().map_err(runtime)?;
        match &self.config {
            Architecture::Clip(c) => {
                OrtVision::load(&self.weights, &c.vision_config, options, threads)
            }
            Architecture::Siglip { vision, .. } => {
                OrtVision::load_siglip(&self.weights, vision, options, threads)
            }
        }
        .map_err(runtime)
    }

    /// L2-normalised embeddings of preprocessed images on `tower` instead of the model's own.
    pub fn embed_pixels_on(
        &self,
        tower: &OrtVision,
        images: &[Vec<f32>],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let slices: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
        self.images.embed_on(Some(tower), &slices, &self.device)
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
                    return Ok(tower);
                }
                // SAFETY: the file is memory-mapped read-only; the app never writes model files.
                let vb = unsafe {
                    VarBuilder::from_mmaped_safetensors(&[&self.weights], DType::F32, &self.device)
                }
                .map_err(|e| e.to_string())?;
                match &self.config {
                    Architecture::Clip(c) => {
                        model::VisionTransformer::new(&vb, &c.vision_config).map(ExplainTower::Clip)
                    }
                    Architecture::Siglip { vision, .. } => {
                        siglip::SiglipVision::new(&vb, vision).map(ExplainTower::Siglip)
                    }
                }
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
        let tower = self.explainer()?;
        let layers = tower.layers();
        let start_layer = start_layer.unwrap_or(layers.saturating_sub(1));
        if start_layer >= layers {
            return Err(EmbedError::StartLayer {
                given: start_layer,
                layers,
            });
        }
        let (height, width) = self.images.input_size();
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
                self.logit_scale,
                self.logit_bias,
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
        let slices: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
        self.images.embed(&slices, &self.device)
    }

    /// What runs the image tower: "candle" or "onnxruntime".
    pub fn image_runtime(&self) -> &'static str {
        self.images.runtime_name()
    }

    pub fn config(&self) -> &Architecture {
        &self.config
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
        self.logit_scale
    }

    fn logit_bias(&self) -> Option<f32> {
        self.logit_bias
    }

    fn prepare_image(&self, frame: &Mat) -> Result<PreparedImage, EmbedError> {
        self.images.crop_frame(frame).map(PreparedImage::Cropped)
    }

    fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let pixels = images
            .iter()
            .map(|image| match image {
                PreparedImage::Cropped(crop) => Ok(self.images.normalize(crop)),
                PreparedImage::Base64Jpeg(_) => Err(EmbedError::Model(
                    "the local model takes pixel tensors, not JPEG images".into(),
                )),
            })
            .collect::<Result<Vec<Vec<f32>>, _>>()?;
        self.embed_pixels(&pixels)
    }

    fn is_truncated(&self, text: &str) -> bool {
        self.tokenize(text).is_ok_and(|t| t.truncated)
    }

    fn image_difference(&self, a: &PreparedImage, b: &PreparedImage) -> Option<f32> {
        let (PreparedImage::Cropped(a), PreparedImage::Cropped(b)) = (a, b) else {
            return None;
        };
        self.images.difference(a, b)
    }

    fn input_size(&self) -> Option<(usize, usize)> {
        Some(self.images.input_size())
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
        let mut relevance = self.explain_pixels(&image, text, start_layer)?;
        relevance.crop = self.images.crop_box(
            opencv::prelude::MatTraitConst::cols(frame).max(0) as usize,
            opencv::prelude::MatTraitConst::rows(frame).max(0) as usize,
        );
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
