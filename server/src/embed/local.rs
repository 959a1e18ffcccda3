//! In-process CLIP with candle, from a model folder in Hugging Face layout:
//! `config.json`, `model.safetensors`, `tokenizer.json` (and optionally
//! `preprocessor_config.json`).
//!
//! The architecture is read from `config.json`; configurations candle's CLIP cannot compute
//! exactly (another activation or layer-norm epsilon) are refused rather than run wrongly.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_nn::{Linear, Module};
use candle_transformers::models::clip::{self, text_model, vision_model};
use opencv::core::Mat;
use opencv::prelude::*;
use serde::Deserialize;

use super::ort_vision::OrtVision;
use super::preprocess::{preprocess, PreprocessConfig, RgbImage};
use super::{EmbedError, Embedder, ModelIdentity, PreparedImage};
use crate::config::ImageEngine;

/// Files a model folder must hold.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];
/// CLIP's text context: prompts are padded or cut to this many tokens.
pub const CONTEXT_LENGTH: usize = 77;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the CLIP model folder {folder} lacks {missing}.\n  Put the Hugging Face files {files} of the model (e.g. openai/clip-vit-base-patch32) in that folder, or point --model / `model:` at a folder that has them.", files = REQUIRED_FILES.join(", "))]
    MissingFiles { folder: PathBuf, missing: String },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path} cannot be used: {message}")]
    Unsupported { path: PathBuf, message: String },
    #[error("cannot load the weights in {path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("cannot load the tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{message}")]
    Engine { message: String },
}

/// The parts of Hugging Face's `config.json` that define a CLIP model.
#[derive(Deserialize)]
struct HfConfig {
    text_config: HfTower,
    vision_config: HfTower,
    projection_dim: usize,
    #[serde(default = "default_logit_scale")]
    logit_scale_init_value: f32,
}

fn default_logit_scale() -> f32 {
    2.6592
}

#[derive(Deserialize)]
struct HfTower {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    // Text only.
    #[serde(default)]
    vocab_size: usize,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    // Vision only.
    #[serde(default)]
    image_size: usize,
    #[serde(default)]
    patch_size: usize,
    #[serde(default = "default_channels")]
    num_channels: usize,
}

fn default_act() -> String {
    "quick_gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_positions() -> usize {
    CONTEXT_LENGTH
}
fn default_channels() -> usize {
    3
}

/// Turns `config.json` into candle's configuration, refusing what candle would compute wrongly.
fn clip_config(path: &Path, text: &str) -> Result<clip::ClipConfig, ModelError> {
    let hf: HfConfig = serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.into(),
        message: e.to_string(),
    })?;
    for (tower, name) in [
        (&hf.text_config, "text_config"),
        (&hf.vision_config, "vision_config"),
    ] {
        if tower.hidden_act != "quick_gelu" {
            return Err(ModelError::Unsupported {
                path: path.into(),
                message: format!("{name}.hidden_act is {:?}; candle's CLIP implements only quick_gelu (OpenAI's CLIP models use it)", tower.hidden_act),
            });
        }
        if (tower.layer_norm_eps - 1e-5).abs() > 1e-12 {
            return Err(ModelError::Unsupported {
                path: path.into(),
                message: format!(
                    "{name}.layer_norm_eps is {}; candle's CLIP uses 1e-5",
                    tower.layer_norm_eps
                ),
            });
        }
        if tower.num_attention_heads == 0 || tower.hidden_size % tower.num_attention_heads != 0 {
            return Err(ModelError::Config {
                path: path.into(),
                message: format!("{name}: hidden_size must be a multiple of num_attention_heads"),
            });
        }
    }
    let (t, v) = (&hf.text_config, &hf.vision_config);
    if t.vocab_size == 0
        || v.image_size == 0
        || v.patch_size == 0
        || v.image_size % v.patch_size != 0
    {
        return Err(ModelError::Config {
            path: path.into(),
            message: "text_config.vocab_size, vision_config.image_size and patch_size must be set (image_size a multiple of patch_size)".into(),
        });
    }
    if t.max_position_embeddings != CONTEXT_LENGTH {
        return Err(ModelError::Unsupported {
            path: path.into(),
            message: format!(
                "text_config.max_position_embeddings is {}; CLIP's context is {CONTEXT_LENGTH}",
                t.max_position_embeddings
            ),
        });
    }
    Ok(clip::ClipConfig {
        text_config: text_model::ClipTextConfig {
            vocab_size: t.vocab_size,
            embed_dim: t.hidden_size,
            activation: text_model::Activation::QuickGelu,
            intermediate_size: t.intermediate_size,
            max_position_embeddings: t.max_position_embeddings,
            pad_with: None,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            projection_dim: hf.projection_dim,
        },
        vision_config: vision_model::ClipVisionConfig {
            embed_dim: v.hidden_size,
            activation: text_model::Activation::QuickGelu,
            intermediate_size: v.intermediate_size,
            num_hidden_layers: v.num_hidden_layers,
            num_attention_heads: v.num_attention_heads,
            projection_dim: hf.projection_dim,
            num_channels: v.num_channels,
            image_size: v.image_size,
            patch_size: v.patch_size,
        },
        logit_scale_init_value: hf.logit_scale_init_value,
        image_size: v.image_size,
    })
}

fn read_config(folder: &Path) -> Result<clip::ClipConfig, ModelError> {
    let config_path = folder.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::Config {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    clip_config(&config_path, &text)
}

/// The identity [`LocalClip::load_named`] would give, without loading the weights: the
/// projection size from `config.json` and a fingerprint of `model.safetensors`.
pub fn identity_of(folder: &Path, name: &str) -> Result<ModelIdentity, ModelError> {
    let config = read_config(folder)?;
    let weights = folder.join("model.safetensors");
    let fingerprint =
        crate::cache::VideoFingerprint::of_file(&weights).map_err(|e| ModelError::Weights {
            path: weights.clone(),
            message: e.to_string(),
        })?;
    Ok(ModelIdentity {
        name: name.to_string(),
        revision: fingerprint.short(),
        dimension: config.text_config.projection_dim,
    })
}

/// Token ids of one prompt, padded to the context, and whether it had to be cut.
#[derive(Clone, Debug, PartialEq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    /// Position of the end token, where CLIP reads the text's embedding.
    pub end: usize,
    pub truncated: bool,
}

/// What runs the image tower.
enum ImageTower {
    Candle {
        vision: vision_model::ClipVisionTransformer,
        projection: Linear,
    },
    OnnxRuntime(OrtVision),
}

pub struct LocalClip {
    text_model: text_model::ClipTextTransformer,
    text_projection: Linear,
    images: ImageTower,
    tokenizer: tokenizers::Tokenizer,
    preprocess: PreprocessConfig,
    config: clip::ClipConfig,
    identity: ModelIdentity,
    start_token: u32,
    end_token: u32,
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
        let config = read_config(folder)?;

        let preprocess_path = folder.join("preprocessor_config.json");
        let preprocess =
            match std::fs::read_to_string(&preprocess_path) {
                Ok(text) => PreprocessConfig::from_json(&text, config.image_size as u32).map_err(
                    |message| ModelError::Config {
                        path: preprocess_path,
                        message,
                    },
                )?,
                Err(_) => PreprocessConfig::for_image_size(config.image_size as u32),
            };

        let tokenizer_path = folder.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            ModelError::Tokenizer {
                path: tokenizer_path.clone(),
                message: e.to_string(),
            }
        })?;
        let token = |name: &str| {
            tokenizer
                .token_to_id(name)
                .ok_or_else(|| ModelError::Tokenizer {
                    path: tokenizer_path.clone(),
                    message: format!("it has no {name} token: is it a CLIP tokenizer?"),
                })
        };
        let (start_token, end_token) = (token("<|startoftext|>")?, token("<|endoftext|>")?);
        if tokenizer.get_vocab_size(true) > config.text_config.vocab_size {
            return Err(ModelError::Tokenizer {
                path: tokenizer_path,
                message: format!(
                    "{} tokens, more than the model's vocabulary of {}",
                    tokenizer.get_vocab_size(true),
                    config.text_config.vocab_size
                ),
            });
        }

        let weights = folder.join("model.safetensors");
        let device = Device::Cpu;
        // SAFETY: the file is memory-mapped read-only; the app never writes model files.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| ModelError::Weights {
            path: weights.clone(),
            message: e.to_string(),
        })?;
        // candle's CLIP substitutes random values for a missing class embedding: refuse instead.
        for name in [
            "vision_model.embeddings.class_embedding",
            "visual_projection.weight",
            "text_projection.weight",
        ] {
            if !vb.contains_tensor(name) {
                return Err(ModelError::Weights {
                    path: weights.clone(),
                    message: format!(
                        "it has no tensor {name}: is it a CLIP checkpoint in Hugging Face layout?"
                    ),
                });
            }
        }
        let weights_error = |e: candle_core::Error| ModelError::Weights {
            path: weights.clone(),
            message: e.to_string(),
        };
        let text_model =
            text_model::ClipTextTransformer::new(vb.pp("text_model"), &config.text_config)
                .map_err(weights_error)?;
        let text_projection = candle_nn::linear_no_bias(
            config.text_config.embed_dim,
            config.text_config.projection_dim,
            vb.pp("text_projection"),
        )
        .map_err(weights_error)?;
        let images = image_tower(&vb, &weights, &config.vision_config, engine)?;
        // The temperature, read as candle's ClipModel does.
        let logit_scale = if vb.contains_tensor("logit_scale") {
            vb.get(&[], "logit_scale")
                .and_then(|t| t.to_scalar::<f32>())
                .map_err(|e| ModelError::Weights {
                    path: weights.clone(),
                    message: format!("logit_scale: {e}"),
                })?
        } else {
            config.logit_scale_init_value
        }
        .exp();

        let identity = identity_of(folder, name)?;
        Ok(Self {
            text_model,
            text_projection,
            images,
            tokenizer,
            preprocess,
            config,
            identity,
            start_token,
            end_token,
            device,
            logit_scale,
        })
    }

    /// CLIP tokens of `text`: start, the BPE tokens (cut to fit), end, then padding.
    ///
    /// Padding uses id 0, never the end token: candle reads each text's embedding at its
    /// largest token id, which must be the one end token (with the CLIP vocabulary the end
    /// token has the largest id). Padding does not change the result otherwise: the causal
    /// mask hides later positions from the end token.
    pub fn tokenize(&self, text: &str) -> Result<Tokens, EmbedError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        let mut body: Vec<u32> = encoding
            .get_ids()
            .iter()
            .copied()
            .filter(|&id| id != self.start_token && id != self.end_token)
            .collect();
        let truncated = body.len() > CONTEXT_LENGTH - 2;
        body.truncate(CONTEXT_LENGTH - 2);
        let mut ids = Vec::with_capacity(CONTEXT_LENGTH);
        ids.push(self.start_token);
        ids.extend(body);
        ids.push(self.end_token);
        let end = ids.len() - 1;
        ids.resize(CONTEXT_LENGTH, 0);
        Ok(Tokens {
            ids,
            end,
            truncated,
        })
    }

    pub fn preprocess_frame(&self, frame: &Mat) -> Result<Vec<f32>, EmbedError> {
        if frame.typ() != opencv::core::CV_8UC3 {
            return Err(EmbedError::Model(format!(
                "frames must be 8-bit BGR images (OpenCV type {}), got type {}",
                opencv::core::CV_8UC3,
                frame.typ()
            )));
        }
        // The resampler reads OpenCV's BGR bytes directly: no colour conversion pass.
        let owned;
        let frame = if frame.is_continuous() {
            frame
        } else {
            owned = frame
                .try_clone()
                .map_err(|e| EmbedError::Model(e.to_string()))?;
            &owned
        };
        let bytes = frame
            .data_bytes()
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        let image = RgbImage {
            width: frame.cols() as usize,
            height: frame.rows() as usize,
            pixels: bytes,
            bgr: true,
        };
        Ok(preprocess(&image, &self.preprocess))
    }

    /// Image embeddings of already preprocessed images (`3 * size * size` floats each).
    pub fn embed_pixels(&self, images: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let slices: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
        self.embed_pixel_slices(&slices)
    }

    fn embed_pixel_slices(&self, images: &[&[f32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (h, w) = (
            self.preprocess.crop_height as usize,
            self.preprocess.crop_width as usize,
        );
        if let Some(bad) = images.iter().find(|i| i.len() != 3 * h * w) {
            return Err(EmbedError::Model(format!(
                "a preprocessed image has {} values, the model takes 3 x {h} x {w}",
                bad.len()
            )));
        }
        match &self.images {
            ImageTower::Candle { vision, projection } => {
                let flat: Vec<f32> = images.iter().flat_map(|i| i.iter()).copied().collect();
                let run = || -> candle_core::Result<Vec<Vec<f32>>> {
                    let pixels = Tensor::from_vec(flat, (images.len(), 3, h, w), &self.device)?;
                    let features = projection.forward(&vision.forward(&pixels)?)?;
                    clip::div_l2_norm(&features)?.to_vec2::<f32>()
                };
                run().map_err(|e| EmbedError::Model(format!("CLIP image model: {e}")))
            }
            ImageTower::OnnxRuntime(session) => {
                let mut vectors = session
                    .embed(images)
                    .map_err(|e| EmbedError::Model(format!("CLIP image model: {e}")))?;
                vectors.iter_mut().for_each(|v| super::l2_normalize(v));
                Ok(vectors)
            }
        }
    }

    /// What runs the image tower: "candle" or "onnxruntime".
    pub fn image_engine(&self) -> &'static str {
        match self.images {
            ImageTower::Candle { .. } => "candle",
            ImageTower::OnnxRuntime(_) => "onnxruntime",
        }
    }

    pub fn config(&self) -> &clip::ClipConfig {
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
        self.preprocess_frame(frame).map(PreparedImage::Pixels)
    }

    fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let pixels = images
            .iter()
            .map(|image| match image {
                PreparedImage::Pixels(p) => Ok(p.as_slice()),
                PreparedImage::Base64Jpeg(_) => Err(EmbedError::Model(
                    "the local model takes pixel tensors, not JPEG images".into(),
                )),
            })
            .collect::<Result<Vec<&[f32]>, _>>()?;
        self.embed_pixel_slices(&pixels)
    }

    fn is_truncated(&self, text: &str) -> bool {
        self.tokenize(text).is_ok_and(|t| t.truncated)
    }

    fn image_difference(&self, a: &PreparedImage, b: &PreparedImage) -> Option<f32> {
        let (PreparedImage::Pixels(a), PreparedImage::Pixels(b)) = (a, b) else {
            return None;
        };
        if a.len() != b.len() || a.is_empty() || a.len() % 3 != 0 {
            return None;
        }
        // Inputs are (level / 255 - mean) / std per channel plane: back to grey levels.
        let plane = a.len() / 3;
        let total: f64 = (0..3)
            .map(|c| {
                let range = c * plane..(c + 1) * plane;
                let sum: f32 = a[range.clone()]
                    .iter()
                    .zip(&b[range])
                    .map(|(x, y)| (x - y).abs())
                    .sum();
                f64::from(sum) * f64::from(self.preprocess.std[c]) * 255.0
            })
            .sum();
        Some((total / a.len() as f64) as f32)
    }

    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let tokens = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>, _>>()?;
        // The causal mask keeps every position from seeing later ones, so the end token's
        // output (the text's embedding) does not depend on the padding after it: run only up
        // to the last end token of the batch instead of all 77 positions.
        let length = tokens
            .iter()
            .map(|t| t.end + 1)
            .max()
            .unwrap_or(CONTEXT_LENGTH);
        let ids: Vec<u32> = tokens
            .iter()
            .flat_map(|t| t.ids[..length].iter().copied())
            .collect();
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (texts.len(), length), &self.device)?;
            let features = self
                .text_projection
                .forward(&self.text_model.forward(&ids)?)?;
            clip::div_l2_norm(&features)?.to_vec2::<f32>()
        };
        run().map_err(|e| EmbedError::Model(format!("CLIP text model: {e}")))
    }
}

/// The image tower on the engine asked for. `Auto` takes ONNX Runtime where its library
/// loads and falls back to candle (with a log line saying why) where it does not.
fn image_tower(
    vb: &VarBuilder,
    weights: &Path,
    config: &vision_model::ClipVisionConfig,
    engine: ImageEngine,
) -> Result<ImageTower, ModelError> {
    let candle = || -> Result<ImageTower, ModelError> {
        let error = |e: candle_core::Error| ModelError::Weights {
            path: weights.into(),
            message: e.to_string(),
        };
        Ok(ImageTower::Candle {
            vision: vision_model::ClipVisionTransformer::new(vb.pp("vision_model"), config)
                .map_err(error)?,
            projection: candle_nn::linear_no_bias(
                config.embed_dim,
                config.projection_dim,
                vb.pp("visual_projection"),
            )
            .map_err(error)?,
        })
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    match engine {
        ImageEngine::Candle => candle(),
        ImageEngine::Onnxruntime => OrtVision::load(weights, config, threads)
            .map(ImageTower::OnnxRuntime)
            .map_err(|message| ModelError::Engine { message }),
        ImageEngine::Auto => match super::ort_vision::available()
            .and_then(|()| OrtVision::load(weights, config, threads))
        {
            Ok(session) => Ok(ImageTower::OnnxRuntime(session)),
            Err(reason) => {
                tracing::warn!("image tower on candle, not ONNX Runtime: {reason}");
                candle()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_json(act: &str, eps: f64) -> String {
        format!(
            r#"{{"projection_dim": 16,
                "text_config": {{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                 "vocab_size": 49408, "max_position_embeddings": 77, "hidden_act": "{act}", "layer_norm_eps": {eps}}},
                "vision_config": {{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                   "image_size": 32, "patch_size": 8}}}}"#
        )
    }

    #[test]
    fn the_architecture_comes_from_config_json() {
        let config =
            clip_config(Path::new("config.json"), &config_json("quick_gelu", 1e-5)).unwrap();
        assert_eq!(config.text_config.embed_dim, 32);
        assert_eq!(config.vision_config.patch_size, 8);
        assert_eq!(config.image_size, 32);
        assert_eq!(config.text_config.projection_dim, 16);
    }

    #[test]
    fn configs_candle_cannot_run_are_refused() {
        let error = clip_config(Path::new("config.json"), &config_json("gelu", 1e-5))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("quick_gelu"), "{error}");
        let error = clip_config(Path::new("config.json"), &config_json("quick_gelu", 1e-6))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("layer_norm_eps"), "{error}");
        let error = clip_config(Path::new("config.json"), "{}")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("text_config"), "{error}");
    }

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
