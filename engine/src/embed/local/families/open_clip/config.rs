//! `open_clip_config.json` read as open_clip reads it: its sections, every option either used,
//! inert at inference, or at the value that leaves its part off (else refused with its name),
//! the text tower (`text_cfg`) and the preprocessing (`preprocess_cfg`). Shared by the families
//! in open_clip's layout (the ViT CLIP here, PE-Core).

use std::path::Path;

use serde_json::{Map, Value};

use crate::embed::local::config::ModelError;
use crate::embed::local::families::clip::towers::TextConfig;
use crate::embed::local::layers::{Activation, EncoderConfig};
use crate::embed::preprocess::{CropRounding, Filter, PreprocessConfig};

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
pub(super) fn shared_off() -> Vec<(&'static str, Value)> {
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
