//! A model folder's configuration: the files it must hold, and `config.json` read into the
//! towers' configuration ([`super::model`] for CLIP, [`super::siglip`] for SigLIP).
//! Configurations the towers cannot compute exactly (another activation, another family, towers
//! whose embeddings differ in size) are refused here rather than run wrongly.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::model::{Activation, ClipConfig, EncoderConfig, TextConfig, VisionConfig};
use super::siglip::{SiglipTextConfig, SiglipVisionConfig};

use crate::embed::ModelIdentity;

/// Files a model folder must hold.
pub const REQUIRED_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];
/// What may stand in for `tokenizer.json`: SentencePiece's model, all SigLIP checkpoints ship.
pub const TOKENIZER_ALTERNATIVE: &str = "spiece.model";

/// The required files `folder` lacks (`tokenizer.json` is there if `spiece.model` is).
pub fn missing_files(folder: &Path) -> Vec<&'static str> {
    REQUIRED_FILES
        .iter()
        .copied()
        .filter(|f| {
            let present = folder.join(f).is_file()
                || (*f == "tokenizer.json" && folder.join(TOKENIZER_ALTERNATIVE).is_file());
            !present
        })
        .collect()
}
/// CLIP's text context: prompts are padded or cut to this many tokens.
pub const CONTEXT_LENGTH: usize = 77;

#[derive(Clone, Debug, thiserror::Error)]
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
    Runtime { message: String },
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

/// SigLIP's text context: prompts are padded or cut to this many tokens.
pub const SIGLIP_CONTEXT_LENGTH: usize = 64;

/// What a model folder holds, read from its `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub enum Architecture {
    Clip(ClipConfig),
    Siglip {
        text: SiglipTextConfig,
        vision: SiglipVisionConfig,
    },
}

impl Architecture {
    pub fn image_size(&self) -> usize {
        match self {
            Architecture::Clip(c) => c.image_size,
            Architecture::Siglip { vision, .. } => vision.image_size,
        }
    }

    /// The size of both towers' embeddings.
    pub fn dimension(&self) -> usize {
        match self {
            Architecture::Clip(c) => c.text_config.projection_dim,
            Architecture::Siglip { text, .. } => text.projection_size,
        }
    }

    /// Tokens per prompt, padding included.
    pub fn context_length(&self) -> usize {
        match self {
            Architecture::Clip(_) => CONTEXT_LENGTH,
            Architecture::Siglip { text, .. } => text.max_position_embeddings,
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
    if check_model_type(path, text)? != Family::Clip {
        return Err(ModelError::Unsupported {
            path: path.into(),
            message: "this is not a CLIP checkpoint".into(),
        });
    }
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
    #[serde(default = "default_channels")]
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
pub(super) fn siglip_config(
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
        },
    ))
}

/// The model families this crate computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Clip,
    Siglip,
}

/// The family of a checkpoint, or a refusal naming what it is.
fn check_model_type(path: &Path, text: &str) -> Result<Family, ModelError> {
    #[derive(Deserialize)]
    struct Kind {
        model_type: Option<String>,
    }
    let Ok(Kind {
        model_type: Some(kind),
    }) = serde_json::from_str::<Kind>(text)
    else {
        return Ok(Family::Clip);
    };
    let message = match kind.as_str() {
        "clip" => return Ok(Family::Clip),
        // SigLIP 2's fixed-resolution checkpoints say "siglip" too.
        "siglip" => return Ok(Family::Siglip),
        "siglip2" => "model_type is \"siglip2\": SigLIP 2's variable-resolution (NaFlex) checkpoints are not supported; use a fixed-resolution one (e.g. google/siglip2-base-patch16-224, whose model_type is \"siglip\")".to_string(),
        other => format!("model_type is {other:?}, not a CLIP or SigLIP model; use a CLIP or SigLIP checkpoint in Hugging Face layout (model_type \"clip\" or \"siglip\")"),
    };
    Err(ModelError::Unsupported {
        path: path.into(),
        message,
    })
}

pub(super) fn read_config(folder: &Path) -> Result<Architecture, ModelError> {
    let config_path = folder.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::Config {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    architecture(&config_path, &text)
}

/// The architecture `config.json` describes, of either family.
pub(super) fn architecture(path: &Path, text: &str) -> Result<Architecture, ModelError> {
    match check_model_type(path, text)? {
        Family::Clip => clip_config(path, text).map(Architecture::Clip),
        Family::Siglip => {
            siglip_config(path, text).map(|(text, vision)| Architecture::Siglip { text, vision })
        }
    }
}

/// The identity [`LocalClip::load_named`](super::LocalClip::load_named) would give, without loading the weights: the
/// projection size from `config.json` and a fingerprint of `model.safetensors`.
pub fn identity_of(folder: &Path, name: &str) -> Result<ModelIdentity, ModelError> {
    let config = read_config(folder)?;
    let weights = folder.join("model.safetensors");
    let fingerprint =
        store::cache::VideoFingerprint::of_file(&weights).map_err(|e| ModelError::Weights {
            path: weights.clone(),
            message: e.to_string(),
        })?;
    Ok(ModelIdentity {
        name: name.to_string(),
        revision: fingerprint.short(),
        dimension: config.dimension(),
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
        let naflex = config_json("gelu", 1e-5).replacen('{', r#"{"model_type": "siglip2", "#, 1);
        let error = architecture(Path::new("config.json"), &naflex)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("\"siglip2\"")
                && error.contains("NaFlex")
                && error.contains("fixed-resolution"),
            "{error}"
        );
        let bert = config_json("gelu", 1e-5).replacen('{', r#"{"model_type": "bert", "#, 1);
        let error = architecture(Path::new("config.json"), &bert)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("\"bert\", not a CLIP or SigLIP model"),
            "{error}"
        );
        let error = clip_config(Path::new("config.json"), "{}")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("text_config"), "{error}");
    }

    #[test]
    fn siglip_configs_take_transformers_defaults_and_refuse_mismatched_towers() {
        let minimal = r#"{"model_type": "siglip", "text_config": {}, "vision_config": {}}"#;
        let Architecture::Siglip { text, vision } =
            architecture(Path::new("config.json"), minimal).unwrap()
        else {
            panic!("not read as SigLIP");
        };
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
        let error = architecture(Path::new("config.json"), mismatch)
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
        let error = architecture(Path::new("config.json"), relu)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("\"relu\"") && error.contains("gelu_pytorch_tanh"),
            "{error}"
        );
        let headless = r#"{"model_type": "siglip", "text_config": {}, "vision_config": {"vision_use_head": false}}"#;
        let error = architecture(Path::new("config.json"), headless)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("vision_use_head"), "{error}");
    }
}
