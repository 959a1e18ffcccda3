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

pub(crate) mod names;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use candle_nn::VarBuilder;
use serde_json::{Map, Value};

use super::clip::graph::vision_graph;
use super::clip::towers::{TextConfig, TextTransformer, VisionConfig, VisionTransformer};
use crate::embed::local::config::ModelError;
use crate::embed::local::family::{Family, ImageModel, ProbabilityHead, TextModel, TextTokenizer};
use crate::embed::local::layers::{Activation, EncoderConfig};
use crate::embed::local::onnx::GraphOptions;
use crate::embed::local::tokenize::ClipTokenizer;
use crate::embed::preprocess::{CropRounding, Filter, PreprocessConfig};

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
            names::clip_vision,
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

    fn image_graph(&self, vb: &VarBuilder, options: GraphOptions) -> candle_core::Result<Vec<u8>> {
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

/// Options that change nothing at inference: training-time settings, and the settings of parts
/// that are off (read only where the part is on, which is refused).
const INERT: &[&str] = &[
    "patch_dropout",
    "output_tokens",
    "attn_pooler_queries",
    "attn_pooler_heads",
    "timm_model_pretrained",
    "timm_pool",
    "timm_proj",
    "timm_proj_bias",
    "timm_drop",
    "timm_drop_path",
    "hf_model_pretrained",
    "hf_proj_type",
    "hf_pooler_type",
    "pad_id",
    "eos_id",
    "cast_dtype",
    "nonscalar_logit_scale",
];

/// The settings of parts that are off, where they are at the value that leaves them off
/// (`null` is always accepted as "the default").
fn shared_off() -> Vec<(&'static str, Value)> {
    let false_ = Value::Bool(false);
    vec![
        ("ls_init_value", Value::Null),
        ("final_ln_after_pool", false_.clone()),
        ("act_kwargs", Value::Null),
        ("norm_kwargs", Value::Null),
        ("block_type", Value::String("default".into())),
        ("qk_norm", false_.clone()),
        ("scaled_cosine_attn", false_.clone()),
        ("scale_heads", false_.clone()),
        ("scale_attn_inner", false_.clone()),
        ("scale_attn", false_.clone()),
        ("scale_fc", false_),
        ("timm_model_name", Value::Null),
        ("hf_model_name", Value::Null),
        ("hf_tokenizer_name", Value::Null),
    ]
}

/// A pre-LayerNorm encoder as open_clip builds it.
pub(crate) fn encoder(
    width: usize,
    heads: usize,
    layers: usize,
    mlp_ratio: f64,
    activation: Activation,
) -> EncoderConfig {
    EncoderConfig {
        embed_dim: width,
        intermediate_size: (width as f64 * mlp_ratio) as usize,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        activation,
        // open_clip's LayerNorm: PyTorch's default eps.
        layer_norm_eps: 1e-5,
    }
}

/// `open_clip_config.json`, its sections as JSON maps.
pub(crate) struct Config<'a> {
    path: &'a Path,
    pub(crate) model: Map<String, Value>,
    pub(crate) vision: Map<String, Value>,
    pub(crate) text: Map<String, Value>,
    preprocess: Map<String, Value>,
}

impl<'a> Config<'a> {
    pub(crate) fn parse(path: &'a Path, text: &str) -> Result<Self, ModelError> {
        let error = |message: String| ModelError::Config {
            path: path.into(),
            message,
        };
        let root: Value = serde_json::from_str(text).map_err(|e| error(e.to_string()))?;
        let section =
            |value: Option<&Value>, name: &str| -> Result<Map<String, Value>, ModelError> {
                match value {
                    Some(Value::Object(map)) => Ok(map.clone()),
                    None | Some(Value::Null) => Ok(Map::new()),
                    Some(_) => Err(error(format!("{name} must be an object"))),
                }
            };
        let model = section(root.get("model_cfg"), "model_cfg")?;
        if model.is_empty() {
            return Err(error(
                "model_cfg is missing: is this open_clip's hub config (model_cfg, preprocess_cfg)?"
                    .into(),
            ));
        }
        Ok(Self {
            path,
            vision: section(model.get("vision_cfg"), "model_cfg.vision_cfg")?,
            text: section(model.get("text_cfg"), "model_cfg.text_cfg")?,
            preprocess: section(root.get("preprocess_cfg"), "preprocess_cfg")?,
            model,
        })
    }

    pub(crate) fn unsupported(&self, message: String) -> ModelError {
        ModelError::Unsupported {
            path: self.path.into(),
            message,
        }
    }

    pub(crate) fn invalid(&self, message: String) -> ModelError {
        ModelError::Config {
            path: self.path.into(),
            message,
        }
    }

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
                "a SigLIP image tower built by timm (use the model's Hugging Face transformers checkpoint, e.g. google/siglip-base-patch16-224)"
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
    pub(crate) fn check_keys(
        &self,
        section: &Map<String, Value>,
        name: &str,
        used: &[&str],
        off: &[(&str, Value)],
    ) -> Result<(), ModelError> {
        for (key, value) in section {
            if used.contains(&key.as_str()) || INERT.contains(&key.as_str()) {
                continue;
            }
            match off.iter().find(|(k, _)| k == key) {
                Some((_, expected)) if value.is_null() || value == expected => {}
                Some(_) if matches!(key.as_str(), "act_kwargs" | "norm_kwargs")
                    && value.as_object().is_some_and(Map::is_empty) => {}
                Some((_, expected)) => {
                    return Err(self.unsupported(format!(
                        "{name}.{key} is {value}; this program computes the model only with {key} = {expected}"
                    )))
                }
                None => {
                    return Err(self.unsupported(format!(
                        "{name}.{key} is an option this program does not know, so it cannot compute the model as open_clip would"
                    )))
                }
            }
        }
        Ok(())
    }

    pub(crate) fn usize(
        &self,
        section: &Map<String, Value>,
        name: &str,
        key: &str,
        default: usize,
    ) -> Result<usize, ModelError> {
        match section.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => value
                .as_u64()
                .filter(|&v| v > 0)
                .map(|v| v as usize)
                .ok_or_else(|| {
                    self.invalid(format!(
                        "{name}.{key} must be a positive whole number, not {value}"
                    ))
                }),
        }
    }

    pub(crate) fn float(
        &self,
        section: &Map<String, Value>,
        name: &str,
        key: &str,
        default: f64,
    ) -> Result<f64, ModelError> {
        match section.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(value) => value
                .as_f64()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    self.invalid(format!(
                        "{name}.{key} must be a positive number, not {value}"
                    ))
                }),
        }
    }

    /// A square size given as `n` or `[n, n]`.
    pub(crate) fn square(
        &self,
        section: &Map<String, Value>,
        name: &str,
        key: &str,
        default: usize,
    ) -> Result<usize, ModelError> {
        match section.get(key) {
            Some(Value::Array(sides)) => {
                let sides: Vec<Option<u64>> = sides.iter().map(Value::as_u64).collect();
                match sides.as_slice() {
                    [Some(h), Some(w)] if h == w && *h > 0 => Ok(*h as usize),
                    _ => Err(self.unsupported(format!(
                        "{name}.{key} is {:?}: only square sizes are computed",
                        section[key]
                    ))),
                }
            }
            _ => self.usize(section, name, key, default),
        }
    }

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

    /// `text_cfg`: open_clip's `TextTransformer` (CLIP's text tower), checked option by option.
    pub(crate) fn text_tower(
        &self,
        activation: Activation,
        embed_dim: usize,
    ) -> Result<TextConfig, ModelError> {
        let t = "model_cfg.text_cfg";
        let false_ = Value::Bool(false);
        let mut text_off = shared_off();
        text_off.extend([
            ("embed_cls", false_.clone()),
            ("no_causal_mask", false_.clone()),
            ("pool_type", Value::String("argmax".into())),
            ("proj_bias", false_.clone()),
            ("proj_type", Value::String("linear".into())),
            ("tokenizer_mode", Value::Null),
            ("tokenizer_kwargs", Value::Null),
        ]);
        self.check_keys(
            &self.text,
            t,
            &[
                "context_length",
                "vocab_size",
                "width",
                "heads",
                "layers",
                "mlp_ratio",
            ],
            &text_off,
        )?;
        let encoder =
            |width, heads, layers, mlp_ratio| encoder(width, heads, layers, mlp_ratio, activation);
        let text_width = self.usize(&self.text, t, "width", 512)?;
        let heads = self.usize(&self.text, t, "heads", 8)?;
        if !text_width.is_multiple_of(heads) {
            return Err(self.invalid(format!(
                "{t}.width ({text_width}) must be a multiple of heads ({heads})"
            )));
        }
        let context = self.usize(&self.text, t, "context_length", 77)?;
        if context < 3 {
            return Err(self.invalid(format!(
                "{t}.context_length must be at least 3, not {context}"
            )));
        }
        Ok(TextConfig {
            encoder: encoder(
                text_width,
                heads,
                self.usize(&self.text, t, "layers", 12)?,
                self.float(&self.text, t, "mlp_ratio", 4.0)?,
            ),
            vocab_size: self.usize(&self.text, t, "vocab_size", 49408)?,
            max_position_embeddings: context,
            projection_dim: embed_dim,
        })
    }

    /// `preprocess_cfg` as open_clip's `image_transform` applies it at inference.
    pub(crate) fn preprocess_config(
        &self,
        image_size: usize,
    ) -> Result<PreprocessConfig, ModelError> {
        let p = "preprocess_cfg";
        let section = &self.preprocess;
        self.check_keys(
            section,
            p,
            &[
                "size",
                "mean",
                "std",
                "interpolation",
                "resize_mode",
                "fill_color",
            ],
            &[("mode", Value::String("RGB".into()))],
        )?;
        let size = self.square(section, p, "size", image_size)?;
        if size != image_size {
            return Err(self.unsupported(format!("{p}.size is {size} but model_cfg.vision_cfg.image_size is {image_size}: the tower's position embeddings fit only {image_size}x{image_size} images")));
        }
        let triple = |key: &str, default: [f32; 3]| -> Result<[f32; 3], ModelError> {
            match section.get(key) {
                None | Some(Value::Null) => Ok(default),
                // open_clip repeats a single number over the channels.
                Some(Value::Number(n)) => Ok([n.as_f64().unwrap_or(f64::NAN) as f32; 3]),
                Some(Value::Array(values)) if values.len() == 3 => {
                    let values: Vec<f32> = values
                        .iter()
                        .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
                        .collect();
                    Ok([values[0], values[1], values[2]])
                }
                Some(other) => {
                    Err(self.invalid(format!("{p}.{key} must be three numbers, not {other}")))
                }
            }
            .and_then(|t| {
                if t.iter().all(|v| v.is_finite()) && (key != "std" || t.iter().all(|v| *v > 0.0)) {
                    Ok(t)
                } else {
                    Err(self.invalid(format!("{p}.{key} must be finite numbers (std positive)")))
                }
            })
        };
        let mut config = PreprocessConfig::for_image_size(size as u32);
        config.crop_rounding = CropRounding::Torchvision;
        config.mean = triple("mean", config.mean)?;
        config.std = triple("std", config.std)?;
        config.filter = match section.get("interpolation").and_then(Value::as_str) {
            // open_clip resizes with bicubic where it is told "random" (a training setting).
            None | Some("bicubic") | Some("random") => Filter::Bicubic,
            Some("bilinear") => Filter::Bilinear,
            Some(other) => {
                return Err(self.unsupported(format!(
                    "{p}.interpolation is {other:?}; open_clip's are bicubic and bilinear"
                )))
            }
        };
        match section.get("resize_mode").and_then(Value::as_str) {
            None | Some("shortest") => {}
            Some("squash") => config.resize_box = Some((size as u32, size as u32)),
            Some("longest") => config.keep_longest = true,
            Some(other) => {
                return Err(self.unsupported(format!(
                    "{p}.resize_mode is {other:?}; open_clip's are shortest, longest and squash"
                )))
            }
        }
        config.fill = match section.get("fill_color") {
            None | Some(Value::Null) => 0,
            Some(value) => value
                .as_u64()
                .filter(|&v| v <= 255)
                .map(|v| v as u8)
                .ok_or_else(|| {
                    self.unsupported(format!(
                        "{p}.fill_color is {value}; a grey level from 0 to 255 is computed"
                    ))
                })?,
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
