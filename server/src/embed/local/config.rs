//! A model folder's configuration: the files it must hold, and `config.json` read into the
//! towers' configuration ([`super::model`]). Configurations the towers cannot compute exactly
//! (an activation other than `quick_gelu` or `gelu`) are refused here rather than run wrongly.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::model::{Activation, ClipConfig, EncoderConfig, TextConfig, VisionConfig};

use crate::embed::ModelIdentity;

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

impl ModelError {
    /// A weights file candle cannot read or build a tower from.
    pub(super) fn weights(path: &Path, error: impl std::fmt::Display) -> Self {
        ModelError::Weights {
            path: path.into(),
            message: error.to_string(),
        }
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
pub(super) fn clip_config(path: &Path, text: &str) -> Result<ClipConfig, ModelError> {
    check_model_type(path, text)?;
    let hf: HfConfig = serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.into(),
        message: e.to_string(),
    })?;
    let encoder = |tower: &HfTower, name: &str| -> Result<EncoderConfig, ModelError> {
        let activation =
            Activation::named(&tower.hidden_act).ok_or_else(|| ModelError::Unsupported {
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

/// Refuses a checkpoint of another family before its fields are read, naming what it is.
fn check_model_type(path: &Path, text: &str) -> Result<(), ModelError> {
    #[derive(Deserialize)]
    struct Family {
        model_type: Option<String>,
    }
    let Ok(Family {
        model_type: Some(kind),
    }) = serde_json::from_str::<Family>(text)
    else {
        return Ok(());
    };
    let message = match kind.as_str() {
        "clip" => return Ok(()),
        "siglip" | "siglip2" => format!("model_type is {kind:?}: SigLIP checkpoints are not supported yet; use a CLIP checkpoint (model_type \"clip\": OpenAI's, or LAION's OpenCLIP in Hugging Face layout)"),
        other => format!("model_type is {other:?}, not a CLIP model; use a CLIP checkpoint in Hugging Face layout (model_type \"clip\")"),
    };
    Err(ModelError::Unsupported {
        path: path.into(),
        message,
    })
}

pub(super) fn read_config(folder: &Path) -> Result<ClipConfig, ModelError> {
    let config_path = folder.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::Config {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    clip_config(&config_path, &text)
}

/// The identity [`LocalClip::load_named`](super::LocalClip::load_named) would give, without loading the weights: the
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
        let siglip = config_json("gelu", 1e-5).replacen('{', r#"{"model_type": "siglip", "#, 1);
        let error = clip_config(Path::new("config.json"), &siglip)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("\"siglip\"") && error.contains("not supported yet"),
            "{error}"
        );
        let bert = config_json("gelu", 1e-5).replacen('{', r#"{"model_type": "bert", "#, 1);
        let error = clip_config(Path::new("config.json"), &bert)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("\"bert\", not a CLIP model"), "{error}");
        let error = clip_config(Path::new("config.json"), "{}")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("text_config"), "{error}");
    }
}
