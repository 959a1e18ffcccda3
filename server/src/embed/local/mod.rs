//! In-process CLIP with candle, from a model folder in Hugging Face layout:
//! `config.json`, `model.safetensors`, `tokenizer.json` (and optionally
//! `preprocessor_config.json`). The configuration and its refusals (`config`), CLIP's two
//! transformers (`model`), the text tower with its tokenizer (`text`), and the image tower on
//! candle or ONNX Runtime (`vision`); this file loads a folder into them.
//!
//! The architecture is read from `config.json`; configurations the towers cannot compute
//! exactly (another activation, another model family) are refused rather than run wrongly.

mod config;
pub mod model;
mod text;
mod vision;

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use opencv::core::Mat;

pub use config::{identity_of, ModelError, CONTEXT_LENGTH, REQUIRED_FILES};
pub use text::Tokens;

use super::{EmbedError, Embedder, ModelIdentity, PreparedImage};
use crate::config::ImageEngine;
use text::{ClipTokenizer, TextTower};
use vision::ImageTower;

pub struct LocalClip {
    text: TextTower,
    tokenizer: ClipTokenizer,
    images: ImageTower,
    config: model::ClipConfig,
    identity: ModelIdentity,
    device: Device,
    /// `exp(logit_scale)`: the multiplier of cosine scores in CLIP's zero-shot softmax.
    logit_scale: f32,
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
        Self::load_with(folder, name, ImageEngine::Auto)
    }

    /// Loads a model folder with the image tower on `engine`.
    pub fn load_with(folder: &Path, name: &str, engine: ImageEngine) -> Result<Self, ModelError> {
        let missing: Vec<&str> = REQUIRED_FILES
            .iter()
            .copied()
            .filter(|f| !folder.join(f).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(ModelError::MissingFiles {
                folder: folder.into(),
                missing: missing.join(", "),
            });
        }
        let config = config::read_config(folder)?;
        let preprocess = vision::read_preprocess(folder, config.image_size)?;
        let tokenizer = ClipTokenizer::load(
            &folder.join("tokenizer.json"),
            config.text_config.vocab_size,
        )?;

        let weights = folder.join("model.safetensors");
        let device = Device::Cpu;
        // SAFETY: the file is memory-mapped read-only; the app never writes model files.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| ModelError::weights(&weights, e))?;
        // Named first, so that a checkpoint of another layout gets a message that says so.
        for name in [
            "vision_model.embeddings.class_embedding",
            "visual_projection.weight",
            "text_projection.weight",
        ] {
            if !vb.contains_tensor(name) {
                return Err(ModelError::weights(
                    &weights,
                    format!(
                        "it has no tensor {name}: is it a CLIP checkpoint in Hugging Face layout?"
                    ),
                ));
            }
        }
        let text = TextTower::load(&vb, &weights, &config.text_config)?;
        let images = ImageTower::load(&vb, &weights, &config.vision_config, preprocess, engine)?;
        // The temperature, read as candle's ClipModel does.
        let logit_scale = if vb.contains_tensor("logit_scale") {
            vb.get(&[], "logit_scale")
                .and_then(|t| t.to_scalar::<f32>())
                .map_err(|e| ModelError::weights(&weights, format!("logit_scale: {e}")))?
        } else {
            config.logit_scale_init_value
        }
        .exp();

        let identity = identity_of(folder, name)?;
        Ok(Self {
            text,
            tokenizer,
            images,
            config,
            identity,
            device,
            logit_scale,
        })
    }

    /// CLIP tokens of `text`: start, the BPE tokens (cut to fit), end, then padding.
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
    pub fn image_engine(&self) -> &'static str {
        self.images.engine_name()
    }

    pub fn config(&self) -> &model::ClipConfig {
        &self.config
    }
}

impl Embedder for LocalClip {
    fn identity(&self) -> ModelIdentity {
        self.identity.clone()
    }

    fn logit_scale(&self) -> f32 {
        self.logit_scale
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
