//! CLIP in Hugging Face's layout (`model_type: clip`, or none): `config.json` read into the
//! towers' configuration, refusing what they would compute wrongly; OpenAI's and LAION's
//! checkpoints (`quick_gelu` or `gelu`).

pub(crate) mod graph;
pub(crate) mod towers;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::hf;
use crate::embed::local::config::ModelError;
use crate::embed::local::family::{Family, ImageModel, ProbabilityHead, TextModel};
use crate::embed::local::layers::{Activation, EncoderConfig};
use crate::embed::local::onnx::GraphOptions;
use crate::embed::local::tokenize::{ClipTokenizer, TextTokenizer};
use crate::embed::preprocess::PreprocessConfig;
use towers::{ClipConfig, TextConfig, TextTransformer, VisionConfig, VisionTransformer};

/// CLIP's text context: prompts are padded or cut to this many tokens.
pub const CONTEXT_LENGTH: usize = 77;

/// A CLIP folder in Hugging Face layout: `config.json`, `model.safetensors`, `tokenizer.json`.
pub(crate) struct Clip {
    folder: PathBuf,
    weights: PathBuf,
    config: ClipConfig,
    preprocess: PreprocessConfig,
}

/// The folder as CLIP, where `config.json` says `model_type: clip` (or names none, as some
/// older checkpoints).
pub(crate) fn read(folder: &Path) -> Option<Result<Box<dyn Family>, ModelError>> {
    let (path, text) = match hf::config_json(folder)? {
        Ok(found) => found,
        Err(e) => return Some(Err(e)),
    };
    if hf::model_type(&text).is_some_and(|kind| kind != "clip") {
        return None;
    }
    Some((|| {
        hf::require_files(folder)?;
        let config = clip_config(&path, &text)?;
        let preprocess = hf::read_preprocess(folder, config.image_size)?;
        Ok(Box::new(Clip {
            folder: folder.into(),
            weights: folder.join("model.safetensors"),
            config,
            preprocess,
        }) as Box<dyn Family>)
    })())
}

impl Family for Clip {
    fn name(&self) -> &'static str {
        "CLIP"
    }

    fn dimension(&self) -> usize {
        self.config.text_config.projection_dim
    }

    fn weights_file(&self) -> &Path {
        &self.weights
    }

    fn preprocess(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    fn tokenizer(&self) -> Result<Box<dyn TextTokenizer>, ModelError> {
        let tokenizer = ClipTokenizer::load(
            &self.folder.join("tokenizer.json"),
            self.config.text_config.vocab_size,
            CONTEXT_LENGTH,
        )?;
        Ok(Box::new(tokenizer))
    }

    fn weights(&self, device: &Device) -> Result<VarBuilder<'static>, ModelError> {
        hf::open_weights(
            &self.weights,
            &[
                "vision_model.embeddings.class_embedding",
                "visual_projection.weight",
                "text_projection.weight",
            ],
            "CLIP",
            device,
        )
    }

    fn text_tower(&self, vb: &VarBuilder) -> candle_core::Result<Box<dyn TextModel>> {
        Ok(Box::new(TextTransformer::new(
            vb,
            &self.config.text_config,
        )?))
    }

    fn image_tower(&self, vb: &VarBuilder) -> candle_core::Result<Arc<dyn ImageModel>> {
        Ok(Arc::new(VisionTransformer::new(
            vb,
            &self.config.vision_config,
        )?))
    }

    fn image_graph(
        &self,
        vb: &VarBuilder,
        options: GraphOptions,
        _: (usize, usize),
    ) -> candle_core::Result<Vec<u8>> {
        graph::vision_graph(vb, &self.config.vision_config, options)
    }

    fn head(&self, vb: &VarBuilder) -> Result<ProbabilityHead, ModelError> {
        // The temperature, read as candle's ClipModel does: the config's initial value where
        // the checkpoint has none.
        let scale = if vb.contains_tensor("logit_scale") {
            hf::scalar(vb, "logit_scale", &self.weights)?
        } else {
            self.config.logit_scale_init_value
        };
        Ok(ProbabilityHead::Softmax { scale: scale.exp() })
    }
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

/// Turns `config.json` into the towers' configuration, refusing what they would compute
/// wrongly.
pub(crate) fn clip_config(path: &Path, text: &str) -> Result<ClipConfig, ModelError> {
    let hf: HfConfig = serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.into(),
        message: e.to_string(),
    })?;
    let encoder = |tower: &HfTower, name: &str| -> Result<EncoderConfig, ModelError> {
        let activation = Activation::named(&tower.hidden_act)
            .filter(|a| *a != Activation::GeluTanh)
            .ok_or_else(|| ModelError::Unsupported {
                path: path.into(),
                message: format!("{name}.hidden_act is {:?}; CLIP models here use quick_gelu (OpenAI's) or gelu (LAION's OpenCLIP)", tower.hidden_act),
            })?;
        if !(tower.layer_norm_eps.is_finite() && tower.layer_norm_eps > 0.0) {
            return Err(ModelError::Config {
                path: path.into(),
                message: format!(
                    "{name}.layer_norm_eps must be a positive number, not {}",
                    tower.layer_norm_eps
                ),
            });
        }
        if tower.num_attention_heads == 0
            || !tower.hidden_size.is_multiple_of(tower.num_attention_heads)
        {
            return Err(ModelError::Config {
                path: path.into(),
                message: format!("{name}: hidden_size must be a multiple of num_attention_heads"),
            });
        }
        Ok(EncoderConfig {
            embed_dim: tower.hidden_size,
            intermediate_size: tower.intermediate_size,
            num_hidden_layers: tower.num_hidden_layers,
            num_attention_heads: tower.num_attention_heads,
            activation,
            layer_norm_eps: tower.layer_norm_eps,
        })
    };
    let (t, v) = (&hf.text_config, &hf.vision_config);
    let (text_encoder, vision_encoder) = (encoder(t, "text_config")?, encoder(v, "vision_config")?);
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
    Ok(ClipConfig {
        text_config: TextConfig {
            encoder: text_encoder,
            vocab_size: t.vocab_size,
            max_position_embeddings: t.max_position_embeddings,
            projection_dim: hf.projection_dim,
        },
        vision_config: VisionConfig {
            encoder: vision_encoder,
            image_size: v.image_size,
            patch_size: v.patch_size,
            num_channels: v.num_channels,
            projection_dim: hf.projection_dim,
        },
        logit_scale_init_value: hf.logit_scale_init_value,
        image_size: v.image_size,
    })
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
        assert_eq!(config.text_config.encoder.embed_dim, 32);
        assert_eq!(config.text_config.encoder.activation, Activation::QuickGelu);
        let config = clip_config(Path::new("config.json"), &config_json("gelu", 1e-6)).unwrap();
        assert_eq!(config.text_config.encoder.activation, Activation::Gelu);
        assert_eq!(config.text_config.encoder.layer_norm_eps, 1e-6);
        assert_eq!(config.vision_config.patch_size, 8);
        assert_eq!(config.image_size, 32);
        assert_eq!(config.text_config.projection_dim, 16);
    }

    #[test]
    fn configs_the_towers_cannot_run_are_refused() {
        let error = clip_config(Path::new("config.json"), &config_json("gelu_new", 1e-5))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("\"gelu_new\"") && error.contains("quick_gelu"),
            "{error}"
        );
        let error = clip_config(Path::new("config.json"), &config_json("gelu", 0.0))
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
}
