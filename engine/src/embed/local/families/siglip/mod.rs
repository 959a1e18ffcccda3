//! SigLIP in Hugging Face's layout (`model_type: siglip`: SigLIP, and SigLIP 2's
//! fixed-resolution checkpoints): `config.json` read into the towers' configuration, absent
//! fields taking transformers' defaults, refusing what the towers would compute wrongly.

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
use crate::embed::local::tokenize::{SiglipTokenizer, TextTokenizer};
use crate::embed::preprocess::PreprocessConfig;
use towers::{SiglipText, SiglipTextConfig, SiglipVision, SiglipVisionConfig};

/// SigLIP's text context: prompts are padded or cut to this many tokens.
pub const SIGLIP_CONTEXT_LENGTH: usize = 64;

/// A SigLIP folder in Hugging Face layout: `config.json`, `model.safetensors`, and
/// `tokenizer.json` or `spiece.model`.
pub(crate) struct Siglip {
    folder: PathBuf,
    weights: PathBuf,
    text: SiglipTextConfig,
    vision: SiglipVisionConfig,
    preprocess: PreprocessConfig,
}

/// The folder as SigLIP, where `config.json` says `model_type: siglip`.
pub(crate) fn read(folder: &Path) -> Option<Result<Box<dyn Family>, ModelError>> {
    let (path, text) = match hf::config_json(folder)? {
        Ok(found) => found,
        Err(e) => return Some(Err(e)),
    };
    if hf::model_type(&text).as_deref() != Some("siglip") {
        return None;
    }
    Some((|| {
        hf::require_files(folder)?;
        let (text, vision) = siglip_config(&path, &text)?;
        let preprocess = hf::read_preprocess(folder, vision.image_size)?;
        Ok(Box::new(Siglip {
            folder: folder.into(),
            weights: folder.join("model.safetensors"),
            text,
            vision,
            preprocess,
        }) as Box<dyn Family>)
    })())
}

impl Family for Siglip {
    fn name(&self) -> &'static str {
        "SigLIP"
    }

    fn dimension(&self) -> usize {
        self.text.projection_size
    }

    fn weights_file(&self) -> &Path {
        &self.weights
    }

    fn preprocess(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    fn tokenizer(&self) -> Result<Box<dyn TextTokenizer>, ModelError> {
        let tokenizer = SiglipTokenizer::load(
            &self.folder,
            self.text.vocab_size,
            self.text.max_position_embeddings,
        )?;
        Ok(Box::new(tokenizer))
    }

    fn weights(&self, device: &Device) -> Result<VarBuilder<'static>, ModelError> {
        hf::open_weights(
            &self.weights,
            &[
                "vision_model.head.probe",
                "text_model.head.weight",
                "logit_bias",
            ],
            "SigLIP",
            device,
        )
    }

    fn text_tower(&self, vb: &VarBuilder) -> candle_core::Result<Box<dyn TextModel>> {
        Ok(Box::new(SiglipText::new(vb, &self.text)?))
    }

    fn image_tower(&self, vb: &VarBuilder) -> candle_core::Result<Arc<dyn ImageModel>> {
        Ok(Arc::new(SiglipVision::new(vb, &self.vision)?))
    }

    fn image_graph(
        &self,
        vb: &VarBuilder,
        options: GraphOptions,
        _: (usize, usize),
    ) -> candle_core::Result<Vec<u8>> {
        let size = self.vision.image_size;
        graph::siglip_vision_graph(vb, &self.vision, options, (size, size))
    }

    fn head(&self, vb: &VarBuilder) -> Result<ProbabilityHead, ModelError> {
        Ok(ProbabilityHead::Sigmoid {
            scale: hf::scalar(vb, "logit_scale", &self.weights)?.exp(),
            bias: hf::scalar(vb, "logit_bias", &self.weights)?,
        })
    }
}

/// A SigLIP tower as `config.json` describes it; absent fields take transformers' defaults
/// (`SiglipTextConfig`, `SiglipVisionConfig`), as real checkpoints leave many out.
#[derive(Deserialize)]
struct HfSiglipTower {
    #[serde(default = "siglip_hidden")]
    hidden_size: usize,
    #[serde(default = "siglip_intermediate")]
    intermediate_size: usize,
    #[serde(default = "siglip_layers")]
    num_hidden_layers: usize,
    #[serde(default = "siglip_layers")]
    num_attention_heads: usize,
    #[serde(default = "siglip_act")]
    hidden_act: String,
    #[serde(default = "siglip_eps")]
    layer_norm_eps: f64,
    // Text only.
    #[serde(default = "siglip_vocab")]
    vocab_size: usize,
    #[serde(default = "siglip_positions")]
    max_position_embeddings: usize,
    projection_size: Option<usize>,
    // Vision only.
    #[serde(default = "siglip_image")]
    image_size: usize,
    #[serde(default = "siglip_patch")]
    patch_size: usize,
    #[serde(default = "siglip_channels")]
    num_channels: usize,
    #[serde(default = "yes")]
    vision_use_head: bool,
}

fn siglip_hidden() -> usize {
    768
}
fn siglip_intermediate() -> usize {
    3072
}
fn siglip_layers() -> usize {
    12
}
fn siglip_act() -> String {
    "gelu_pytorch_tanh".into()
}
fn siglip_eps() -> f64 {
    1e-6
}
fn siglip_vocab() -> usize {
    32000
}
fn siglip_positions() -> usize {
    SIGLIP_CONTEXT_LENGTH
}
fn siglip_image() -> usize {
    224
}
fn siglip_patch() -> usize {
    16
}
fn yes() -> bool {
    true
}

/// Turns a SigLIP `config.json` into the towers' configuration, refusing what they would
/// compute wrongly.
pub(crate) fn siglip_config(
    path: &Path,
    text: &str,
) -> Result<(SiglipTextConfig, SiglipVisionConfig), ModelError> {
    #[derive(Deserialize)]
    struct Hf {
        text_config: HfSiglipTower,
        vision_config: HfSiglipTower,
    }
    let hf: Hf = serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.into(),
        message: e.to_string(),
    })?;
    let config_error = |message: String| ModelError::Config {
        path: path.into(),
        message,
    };
    let encoder = |tower: &HfSiglipTower, name: &str| -> Result<EncoderConfig, ModelError> {
        if tower.hidden_act != "gelu_pytorch_tanh" {
            return Err(ModelError::Unsupported {
                path: path.into(),
                message: format!(
                    "{name}.hidden_act is {:?}; SigLIP models here use gelu_pytorch_tanh",
                    tower.hidden_act
                ),
            });
        }
        if !(tower.layer_norm_eps.is_finite() && tower.layer_norm_eps > 0.0) {
            return Err(config_error(format!(
                "{name}.layer_norm_eps must be a positive number, not {}",
                tower.layer_norm_eps
            )));
        }
        if tower.num_attention_heads == 0
            || !tower.hidden_size.is_multiple_of(tower.num_attention_heads)
        {
            return Err(config_error(format!(
                "{name}: hidden_size must be a multiple of num_attention_heads"
            )));
        }
        Ok(EncoderConfig {
            embed_dim: tower.hidden_size,
            intermediate_size: tower.intermediate_size,
            num_hidden_layers: tower.num_hidden_layers,
            num_attention_heads: tower.num_attention_heads,
            activation: Activation::GeluTanh,
            layer_norm_eps: tower.layer_norm_eps,
        })
    };
    let (t, v) = (&hf.text_config, &hf.vision_config);
    let (text_encoder, vision_encoder) = (encoder(t, "text_config")?, encoder(v, "vision_config")?);
    if v.patch_size == 0 || v.image_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
        return Err(config_error(
            "vision_config.image_size must be a multiple of patch_size".into(),
        ));
    }
    if !v.vision_use_head {
        return Err(ModelError::Unsupported {
            path: path.into(),
            message: "vision_config.vision_use_head is false: the image embedding is the attention-pooling head's output, and this checkpoint has none".into(),
        });
    }
    let projection_size = t.projection_size.unwrap_or(t.hidden_size);
    if projection_size != v.hidden_size {
        return Err(ModelError::Unsupported {
            path: path.into(),
            message: format!("shape mismatch: text_config.projection_size is {projection_size} but vision_config.hidden_size is {}; SigLIP compares the two embeddings, so they must have the same size", v.hidden_size),
        });
    }
    if t.max_position_embeddings == 0 || t.vocab_size == 0 {
        return Err(config_error(
            "text_config.max_position_embeddings and vocab_size must be positive".into(),
        ));
    }
    Ok((
        SiglipTextConfig {
            encoder: text_encoder,
            vocab_size: t.vocab_size,
            max_position_embeddings: t.max_position_embeddings,
            projection_size,
        },
        SiglipVisionConfig {
            encoder: vision_encoder,
            image_size: v.image_size,
            patch_size: v.patch_size,
            num_channels: v.num_channels,
            naflex_grid: None,
        },
    ))
}
fn siglip_channels() -> usize {
    3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siglip_configs_take_transformers_defaults_and_refuse_mismatched_towers() {
        let minimal = r#"{"model_type": "siglip", "text_config": {}, "vision_config": {}}"#;
        let (text, vision) = siglip_config(Path::new("config.json"), minimal).unwrap();
        assert_eq!(
            (
                text.encoder.embed_dim,
                text.max_position_embeddings,
                text.vocab_size
            ),
            (768, 64, 32000)
        );
        assert_eq!((vision.image_size, vision.patch_size), (224, 16));
        assert_eq!(vision.encoder.activation, Activation::GeluTanh);
        let mismatch = r#"{"model_type": "siglip", "text_config": {"projection_size": 512}, "vision_config": {"hidden_size": 768}}"#;
        let error = siglip_config(Path::new("config.json"), mismatch)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("shape mismatch")
                && error.contains("projection_size is 512")
                && error.contains("hidden_size is 768"),
            "{error}"
        );
        let relu = r#"{"model_type": "siglip", "text_config": {"hidden_act": "relu"}, "vision_config": {}}"#;
        let error = siglip_config(Path::new("config.json"), relu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("\"relu\"") && error.contains("gelu_pytorch_tanh"),
            "{error}"
        );
        let headless = r#"{"model_type": "siglip", "text_config": {}, "vision_config": {"vision_use_head": false}}"#;
        let error = siglip_config(Path::new("config.json"), headless)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("vision_use_head"), "{error}");
    }
}
