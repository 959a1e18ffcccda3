//! Checkpoints in open_clip's own layout: `open_clip_config.json` (`model_cfg`,
//! `preprocess_cfg`) and `open_clip_model.safetensors`, as open_clip's `push_to_hf_hub` writes
//! them (many LAION, DFN and MetaCLIP models are published only so). The OpenAI-style ViT CLIP
//! architecture (`VisionTransformer` + `TextTransformer`, `quick_gelu` or exact GELU) is
//! computed by the CLIP family's towers: its weights are renamed on load ([`names`]), and its
//! preprocessing follows `preprocess_cfg` exactly (open_clip's torchvision transforms: the
//! shortest side or the longest side resized, or the image squashed, then torchvision's centre
//! crop).
//!
//! Invariants:
//! - Every option of `model_cfg` is either computed, inert at inference (training-only, named
//!   in [`INERT`]), or refused with its name: nothing is silently ignored.
//! - The tokenizer is open_clip's for this architecture: CLIP's BPE (the folder's
//!   `tokenizer.json` where it has one, else the one built into this program); a config naming
//!   a Hugging Face tokenizer (`hf_tokenizer_name`) is refused.

mod config;
pub(crate) mod names;

use config::shared_off;
pub(crate) use config::{encoder, Config};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use candle_nn::VarBuilder;
use serde_json::Value;

use super::clip::graph::vision_graph;
use super::clip::towers::{TextConfig, TextTransformer, VisionConfig, VisionTransformer};
use crate::embed::local::config::ModelError;
use crate::embed::local::family::{Family, ImageModel, ProbabilityHead, TextModel};
use crate::embed::local::layers::Activation;
use crate::embed::local::onnx::GraphOptions;
use crate::embed::local::tokenize::{ClipTokenizer, TextTokenizer};
use crate::embed::preprocess::PreprocessConfig;

/// The files of open_clip's layout.
pub const CONFIG_FILE: &str = "open_clip_config.json";
pub const WEIGHTS_FILE: &str = "open_clip_model.safetensors";
/// The PyTorch pickle open_clip also publishes: not read (unpickling runs code).
pub const PICKLE_FILE: &str = "open_clip_pytorch_model.bin";

/// OpenAI's CLIP BPE (as transformers writes it), open_clip's default tokenizer: used where
/// the folder has no `tokenizer.json`, as open_clip uses the vocabulary in its package.
const CLIP_TOKENIZER: &str = include_str!("clip_tokenizer.json");

/// An open_clip checkpoint of the OpenAI-style ViT CLIP architecture.
pub(crate) struct OpenClip {
    folder: PathBuf,
    weights: PathBuf,
    text: TextConfig,
    vision: VisionConfig,
    /// `model_cfg.custom_text`: the text tower's weights are under `text.`.
    custom_text: bool,
    /// `model_cfg.init_logit_bias` is set: a sigmoid head with a learned bias (SigLIP-style).
    sigmoid: bool,
    preprocess: PreprocessConfig,
}

/// The folder as an open_clip checkpoint, where it has `open_clip_config.json`.
pub(crate) fn read(folder: &Path) -> Option<Result<Box<dyn Family>, ModelError>> {
    let path = folder.join(CONFIG_FILE);
    if !path.is_file() {
        return None;
    }
    Some(read_config(folder, &path).map(|family| Box::new(family) as Box<dyn Family>))
}

fn read_config(folder: &Path, path: &Path) -> Result<OpenClip, ModelError> {
    let weights = weights_file(folder)?;
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Config {
        path: path.into(),
        message: e.to_string(),
    })?;
    let config = Config::parse(path, &text)?;
    config.into_family(folder, weights)
}

/// `open_clip_model.safetensors` of the folder; where only the pickle is there, the refusal
/// says how to convert it.
pub(crate) fn weights_file(folder: &Path) -> Result<PathBuf, ModelError> {
    let weights = folder.join(WEIGHTS_FILE);
    if !weights.is_file() {
        let message = if folder.join(PICKLE_FILE).is_file() {
            format!("it has {PICKLE_FILE} but no {WEIGHTS_FILE}: PyTorch pickles are not read (loading one can run code). Convert it once where PyTorch is installed:\n    python -c \"import torch, safetensors.torch as st; st.save_file(torch.load('{PICKLE_FILE}', map_location='cpu', weights_only=True), '{WEIGHTS_FILE}')\"\n  in that folder")
        } else {
            format!("open_clip's layout needs {CONFIG_FILE} and {WEIGHTS_FILE}; the folder has no {WEIGHTS_FILE}")
        };
        return Err(ModelError::Unsupported {
            path: folder.into(),
            message,
        });
    }
    Ok(weights)
}

/// open_clip's CLIP BPE tokenizer for a text tower of `text`'s vocabulary and context: the
/// folder's `tokenizer.json` where it has one, else the one built in.
pub(crate) fn clip_tokenizer(
    folder: &Path,
    text: &TextConfig,
) -> Result<Box<dyn TextTokenizer>, ModelError> {
    let local = folder.join("tokenizer.json");
    let (vocab, context) = (text.vocab_size, text.max_position_embeddings);
    let tokenizer = if local.is_file() {
        ClipTokenizer::load(&local, vocab, context)?
    } else {
        let builtin = Path::new("(CLIP's BPE, built in)");
        let parsed: tokenizers::Tokenizer =
            CLIP_TOKENIZER
                .parse()
                .map_err(|e: tokenizers::Error| ModelError::Tokenizer {
                    path: builtin.into(),
                    message: e.to_string(),
                })?;
        ClipTokenizer::new(parsed, builtin, vocab, context)?
    };
    Ok(Box::new(tokenizer))
}

impl Family for OpenClip {
    fn name(&self) -> &'static str {
        "open_clip CLIP"
    }

    fn dimension(&self) -> usize {
        self.text.projection_dim
    }

    fn weights_file(&self) -> &Path {
        &self.weights
    }

    fn preprocess(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    fn tokenizer(&self) -> Result<Box<dyn TextTokenizer>, ModelError> {
        clip_tokenizer(&self.folder, &self.text)
    }

    fn weights(&self, device: &Device) -> Result<VarBuilder<'static>, ModelError> {
        names::load(
            &self.weights,
            self.custom_text,
            &names::CLIP,
            "vision_model.embeddings.class_embedding",
            device,
        )
    }

    fn text_tower(&self, vb: &VarBuilder) -> candle_core::Result<Box<dyn TextModel>> {
        Ok(Box::new(TextTransformer::new(vb, &self.text)?))
    }

    fn image_tower(&self, vb: &VarBuilder) -> candle_core::Result<Arc<dyn ImageModel>> {
        Ok(Arc::new(VisionTransformer::new(vb, &self.vision)?))
    }

    fn image_graph(
        &self,
        vb: &VarBuilder,
        options: GraphOptions,
        _: (usize, usize),
    ) -> candle_core::Result<Vec<u8>> {
        vision_graph(vb, &self.vision, options)
    }

    fn head(&self, vb: &VarBuilder) -> Result<ProbabilityHead, ModelError> {
        let scalar = |name: &str| super::hf::scalar(vb, name, &self.weights);
        let scale = scalar("logit_scale")?.exp();
        Ok(if self.sigmoid {
            ProbabilityHead::Sigmoid {
                scale,
                bias: scalar("logit_bias")?,
            }
        } else {
            ProbabilityHead::Softmax { scale }
        })
    }
}

/// The OpenAI-style ViT CLIP architecture from the config.
impl Config<'_> {
    /// Refuses an architecture this family does not compute, naming it.
    fn check_architecture(&self) -> Result<(), ModelError> {
        if let Some(name) = self.vision.get("timm_model_name").and_then(Value::as_str) {
            let what = if name.starts_with("vit_pe_") {
                "Meta's Perception Encoder (a timm image tower with 2-D rotary positions and attention pooling)"
            } else if name.starts_with("eva") {
                "an EVA image tower"
            } else if name.starts_with("convnext") {
                "a ConvNeXt image tower"
            } else if name.starts_with("fastvit") || name.contains("mci") {
                "a FastViT/MCi hybrid image tower (MobileCLIP)"
            } else if name.contains("siglip") {
                "a SigLIP image tower pooled by averaging (`_gap_`; those with an attention-pooling head load)"
            } else {
                "a timm image tower"
            };
            return Err(self.unsupported(format!("model_cfg.vision_cfg.timm_model_name is {name:?}: {what}, which this program does not compute; open_clip checkpoints of the OpenAI-style ViT CLIP architecture load")));
        }
        if self.vision.get("layers").is_some_and(Value::is_array) {
            return Err(self.unsupported("model_cfg.vision_cfg.layers is a list: a ModifiedResNet image tower (OpenAI's RN50 family), which this program does not compute".into()));
        }
        if let Some(name) = self.text.get("hf_model_name").and_then(Value::as_str) {
            return Err(self.unsupported(format!("model_cfg.text_cfg.hf_model_name is {name:?}: a Hugging Face text tower (e.g. XLM-RoBERTa), which this program does not compute")));
        }
        if let Some(name) = self.text.get("hf_tokenizer_name").and_then(Value::as_str) {
            return Err(self.unsupported(format!("model_cfg.text_cfg.hf_tokenizer_name is {name:?}: open_clip's Hugging Face tokenizers go with text towers (SigLIP's, timm-built) this program does not compute in open_clip's layout; the CLIP architecture here uses CLIP's BPE")));
        }
        if self
            .model
            .get("multimodal_cfg")
            .is_some_and(|v| !v.is_null())
        {
            return Err(self.unsupported(
                "model_cfg.multimodal_cfg is set: a CoCa model, which this program does not compute"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Every key of `section` (named `name`) is read by this family, inert, or at the value that
    /// leaves its part off; anything else is refused with its name.

    fn into_family(self, folder: &Path, weights: PathBuf) -> Result<OpenClip, ModelError> {
        self.check_architecture()?;
        let false_ = Value::Bool(false);
        let mut vision_off = shared_off();
        vision_off.extend([
            ("attentional_pool", false_.clone()),
            ("no_ln_pre", false_.clone()),
            ("pos_embed_type", Value::String("learnable".into())),
            ("pool_type", Value::String("tok".into())),
        ]);
        let (v, m) = ("model_cfg.vision_cfg", "model_cfg");
        self.check_keys(
            &self.vision,
            v,
            &[
                "layers",
                "width",
                "head_width",
                "mlp_ratio",
                "patch_size",
                "image_size",
            ],
            &vision_off,
        )?;
        self.check_keys(
            &self.model,
            m,
            &[
                "embed_dim",
                "vision_cfg",
                "text_cfg",
                "quick_gelu",
                "custom_text",
                "init_logit_bias",
            ],
            &[("multimodal_cfg", Value::Null)],
        )?;
        let quick_gelu = match self.model.get("quick_gelu") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(
                    self.invalid(format!("{m}.quick_gelu must be true or false, not {other}"))
                )
            }
        };
        let activation = if quick_gelu {
            Activation::QuickGelu
        } else {
            Activation::Gelu
        };
        let embed_dim = self.usize(&self.model, m, "embed_dim", 0)?;
        if embed_dim == 0 {
            return Err(self.invalid(format!("{m}.embed_dim is missing")));
        }
        // open_clip's VisionTransformer: heads = width / head_width.
        let width = self.usize(&self.vision, v, "width", 768)?;
        let head_width = self.usize(&self.vision, v, "head_width", 64)?;
        if !width.is_multiple_of(head_width) {
            return Err(self.invalid(format!(
                "{v}.width ({width}) must be a multiple of head_width ({head_width})"
            )));
        }
        let encoder =
            |width, heads, layers, mlp_ratio| encoder(width, heads, layers, mlp_ratio, activation);
        let image_size = self.square(&self.vision, v, "image_size", 224)?;
        let patch_size = self.usize(&self.vision, v, "patch_size", 16)?;
        if !image_size.is_multiple_of(patch_size) {
            return Err(self.invalid(format!(
                "{v}.image_size ({image_size}) must be a multiple of patch_size ({patch_size})"
            )));
        }
        let vision = VisionConfig {
            encoder: encoder(
                width,
                width / head_width,
                self.usize(&self.vision, v, "layers", 12)?,
                self.float(&self.vision, v, "mlp_ratio", 4.0)?,
            ),
            image_size,
            patch_size,
            num_channels: 3,
            projection_dim: embed_dim,
        };
        let text = self.text_tower(activation, embed_dim)?;
        let preprocess = self.preprocess_config(image_size)?;
        let flag = |key: &str| matches!(self.model.get(key), Some(Value::Bool(true)));
        Ok(OpenClip {
            folder: folder.into(),
            weights,
            text,
            vision,
            custom_text: flag("custom_text"),
            sigmoid: self
                .model
                .get("init_logit_bias")
                .is_some_and(|v| !v.is_null()),
            preprocess,
        })
    }
}

#[cfg(test)]
mod tests;
