//! SigLIP and SigLIP 2 in open_clip's own layout (`timm/ViT-B-16-SigLIP`, `…-SigLIP2-256`, …):
//! a timm image tower (`vit_*_siglip_*`: no class token, an attention-pooling head) and
//! open_clip's text tower configured as SigLIP's (no mask, read at the last position, a head
//! with a bias). Both are SigLIP's towers under other names: the weights are renamed onto the
//! SigLIP family's (fused `qkv` split, the pool's `q` and `kv` stacked as `in_proj`), so the
//! candle towers, the ONNX graph and the heatmaps are SigLIP's. The config names only the timm
//! model: its architecture is timm's table below (activation included: timm's registrations
//! differ, exact GELU or its tanh form). Text: the tokenizer files in the folder (what
//! `hf_tokenizer_name` names), cleaned as open_clip's `clean="canonicalize"` does.
//!
//! Invariant: every option of the config is computed, inert, or refused with its name (as for
//! open_clip's ViT CLIP); a timm name not in the table is refused naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::{json, Value};

use super::open_clip::names::{self, split_qkv, Renaming};
use super::open_clip::{encoder, Config, CONFIG_FILE};
use super::siglip::graph::siglip_vision_graph;
use super::siglip::towers::{SiglipText, SiglipTextConfig, SiglipVision, SiglipVisionConfig};
use crate::embed::local::config::ModelError;
use crate::embed::local::family::{Family, ImageModel, ProbabilityHead, TextModel};
use crate::embed::local::layers::Activation;
use crate::embed::local::onnx::GraphOptions;
use crate::embed::local::tokenize::{SiglipTokenizer, TextTokenizer};
use crate::embed::preprocess::PreprocessConfig;

/// timm's SigLIP image towers: name → ([image, patch, width, depth, heads, MLP hidden], the
/// MLP's GELU is the tanh form), from timm's `vision_transformer.py` registrations.
const ARCHITECTURES: &[(&str, [usize; 6], bool)] = &[
    (
        "vit_base_patch16_siglip_224",
        [224, 16, 768, 12, 12, 3072],
        false,
    ),
    (
        "vit_base_patch16_siglip_256",
        [256, 16, 768, 12, 12, 3072],
        false,
    ),
    (
        "vit_base_patch16_siglip_384",
        [384, 16, 768, 12, 12, 3072],
        false,
    ),
    (
        "vit_base_patch16_siglip_512",
        [512, 16, 768, 12, 12, 3072],
        false,
    ),
    (
        "vit_base_patch32_siglip_256",
        [256, 32, 768, 12, 12, 3072],
        true,
    ),
    (
        "vit_large_patch16_siglip_256",
        [256, 16, 1024, 24, 16, 4096],
        false,
    ),
    (
        "vit_large_patch16_siglip_384",
        [384, 16, 1024, 24, 16, 4096],
        false,
    ),
    (
        "vit_large_patch16_siglip_512",
        [512, 16, 1024, 24, 16, 4096],
        true,
    ),
    (
        "vit_so400m_patch14_siglip_224",
        [224, 14, 1152, 27, 16, 4304],
        false,
    ),
    (
        "vit_so400m_patch14_siglip_378",
        [378, 14, 1152, 27, 16, 4304],
        false,
    ),
    (
        "vit_so400m_patch14_siglip_384",
        [384, 14, 1152, 27, 16, 4304],
        false,
    ),
    (
        "vit_so400m_patch16_siglip_256",
        [256, 16, 1152, 27, 16, 4304],
        true,
    ),
    (
        "vit_so400m_patch16_siglip_384",
        [384, 16, 1152, 27, 16, 4304],
        true,
    ),
    (
        "vit_so400m_patch16_siglip_512",
        [512, 16, 1152, 27, 16, 4304],
        true,
    ),
    (
        "vit_giantopt_patch16_siglip_256",
        [256, 16, 1536, 40, 16, 6144],
        true,
    ),
    (
        "vit_giantopt_patch16_siglip_384",
        [384, 16, 1536, 40, 16, 6144],
        true,
    ),
    // The test fixture's (scripts/make_tiny_open_clip_siglip.py): B/16's arguments, made small.
    ("vit_test_patch8_siglip_32", [32, 8, 32, 2, 4, 128], false),
];

/// timm's ViT LayerNorm eps, and open_clip's SigLIP text tower's (`norm_kwargs.eps`).
const EPS: f64 = 1e-6;

pub(crate) struct OpenClipSiglip {
    folder: PathBuf,
    weights: PathBuf,
    text: SiglipTextConfig,
    vision: SiglipVisionConfig,
    preprocess: PreprocessConfig,
}

/// The folder as open_clip's SigLIP, where its config names a `vit_*_siglip_*` image tower.
pub(crate) fn read(folder: &Path) -> Option<Result<Box<dyn Family>, ModelError>> {
    let path = folder.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let config = Config::parse(&path, &text).ok()?;
    let name = config.vision.get("timm_model_name")?.as_str()?.to_string();
    if !(name.starts_with("vit_") && name.contains("_siglip_")) {
        return None;
    }
    Some(read_config(folder, &config, &name).map(|f| Box::new(f) as Box<dyn Family>))
}

fn read_config(folder: &Path, config: &Config, name: &str) -> Result<OpenClipSiglip, ModelError> {
    let weights = super::open_clip::weights_file(folder)?;
    let Some(&(_, [image, patch, width, depth, heads, mlp], tanh)) =
        ARCHITECTURES.iter().find(|(n, ..)| *n == name)
    else {
        let known: Vec<&str> = ARCHITECTURES.iter().map(|(n, ..)| *n).collect();
        return Err(config.unsupported(format!(
            "model_cfg.vision_cfg.timm_model_name is {name:?}, a SigLIP image tower this program does not know (those pooled by averaging, `_gap_`, are not computed); it knows {}",
            known.join(", ")
        )));
    };
    let (v, t, m) = ("model_cfg.vision_cfg", "model_cfg.text_cfg", "model_cfg");
    config.check_keys(
        &config.vision,
        v,
        &["image_size", "timm_model_name"],
        &[
            ("timm_pool", json!("map")),
            ("timm_proj", json!("none")),
            ("timm_proj_bias", json!(false)),
        ],
    )?;
    config.check_keys(
        &config.model,
        m,
        &[
            "embed_dim",
            "vision_cfg",
            "text_cfg",
            "custom_text",
            "init_logit_bias",
        ],
        &[
            ("quick_gelu", json!(false)),
            ("multimodal_cfg", Value::Null),
        ],
    )?;
    config.check_keys(
        &config.text,
        t,
        &[
            "context_length",
            "vocab_size",
            "width",
            "heads",
            "layers",
            "mlp_ratio",
            "hf_tokenizer_name",
            "act_kwargs",
            "norm_kwargs",
        ],
        &[
            ("tokenizer_kwargs", json!({"clean": "canonicalize"})),
            ("no_causal_mask", json!(true)),
            ("proj_bias", json!(true)),
            ("pool_type", json!("last")),
            ("proj_type", json!("linear")),
            ("embed_cls", json!(false)),
            ("final_ln_after_pool", json!(false)),
            ("ls_init_value", Value::Null),
            ("hf_model_name", Value::Null),
        ],
    )?;
    // Where SigLIP differs from open_clip's defaults the config must say so: absent, these
    // options would mean another model (a causal text mask, a linear image projection…).
    for (section, name, key, required) in [
        (&config.model, m, "custom_text", json!(true)),
        (&config.vision, v, "timm_pool", json!("map")),
        (&config.vision, v, "timm_proj", json!("none")),
        (&config.text, t, "no_causal_mask", json!(true)),
        (&config.text, t, "proj_bias", json!(true)),
        (&config.text, t, "pool_type", json!("last")),
        (
            &config.text,
            t,
            "tokenizer_kwargs",
            json!({"clean": "canonicalize"}),
        ),
    ] {
        if section.get(key) != Some(&required) {
            return Err(config.unsupported(format!(
                "{name}.{key} is {}; SigLIP in open_clip's layout is computed with {key} = {required}",
                section.get(key).map_or("absent".to_string(), Value::to_string)
            )));
        }
    }
    if config
        .model
        .get("init_logit_bias")
        .is_none_or(Value::is_null)
    {
        return Err(config.unsupported(format!(
            "{m}.init_logit_bias is absent: SigLIP's sigmoid has a bias"
        )));
    }
    // Only the settings open_clip's SigLIP configs use are computed.
    let text_tanh = match config.text.get("act_kwargs") {
        None | Some(Value::Null) => false,
        Some(value) if *value == json!({"approximate": "tanh"}) => true,
        Some(value) => {
            return Err(config.unsupported(format!(
                "{t}.act_kwargs is {value}; the GELU computed is exact or {{\"approximate\": \"tanh\"}}"
            )))
        }
    };
    match config.text.get("norm_kwargs") {
        None | Some(Value::Null) => {}
        Some(value) if *value == json!({"eps": 1e-6}) => {}
        Some(value) => {
            return Err(config.unsupported(format!(
                "{t}.norm_kwargs is {value}; SigLIP's text tower here has {{\"eps\": 1e-6}}"
            )))
        }
    }
    let size = config.square(&config.vision, v, "image_size", image)?;
    if size != image {
        return Err(config.unsupported(format!(
            "{v}.image_size is {size}, but {name} takes {image}x{image} images"
        )));
    }
    let embed_dim = config.usize(&config.model, m, "embed_dim", 0)?;
    if embed_dim != width {
        return Err(config.unsupported(format!(
            "{m}.embed_dim is {embed_dim} but {name} is {width} wide: SigLIP's image embedding is its pooling head's output, with no projection"
        )));
    }
    let gelu = |tanh: bool| {
        if tanh {
            Activation::GeluTanh
        } else {
            Activation::Gelu
        }
    };
    let text_width = config.usize(&config.text, t, "width", 512)?;
    let text_heads = config.usize(&config.text, t, "heads", 8)?;
    if !text_width.is_multiple_of(text_heads) {
        return Err(config.invalid(format!(
            "{t}.width ({text_width}) must be a multiple of heads ({text_heads})"
        )));
    }
    let mut text_encoder = encoder(
        text_width,
        text_heads,
        config.usize(&config.text, t, "layers", 12)?,
        config.float(&config.text, t, "mlp_ratio", 4.0)?,
        gelu(text_tanh),
    );
    text_encoder.layer_norm_eps = EPS;
    let mut vision_encoder = encoder(width, heads, depth, 1.0, gelu(tanh));
    vision_encoder.intermediate_size = mlp;
    vision_encoder.layer_norm_eps = EPS;
    Ok(OpenClipSiglip {
        folder: folder.into(),
        weights,
        text: SiglipTextConfig {
            encoder: text_encoder,
            vocab_size: config.usize(&config.text, t, "vocab_size", 32000)?,
            max_position_embeddings: config.usize(&config.text, t, "context_length", 64)?,
            projection_size: embed_dim,
        },
        vision: SiglipVisionConfig {
            encoder: vision_encoder,
            image_size: image,
            patch_size: patch,
            num_channels: 3,
            naflex_grid: None,
        },
        preprocess: config.preprocess_config(image)?,
    })
}

/// `visual.trunk.*` (timm's ViT) → the SigLIP family's `vision_model.*`; the pool's `q` and
/// `kv` are kept apart here and stacked by [`stack_pool`].
fn vision_names(
    rest: &str,
    tensor: Tensor,
    out: &mut HashMap<String, Tensor>,
) -> candle_core::Result<bool> {
    let Some(rest) = rest.strip_prefix("trunk.") else {
        return Ok(false);
    };
    let vm = "vision_model";
    if let Some(rest) = rest.strip_prefix("blocks.") {
        let Some((layer, part)) = rest.split_once('.') else {
            return Ok(false);
        };
        let at = format!("{vm}.encoder.layers.{layer}");
        let name = match part {
            "norm1.weight" => "layer_norm1.weight",
            "norm1.bias" => "layer_norm1.bias",
            "norm2.weight" => "layer_norm2.weight",
            "norm2.bias" => "layer_norm2.bias",
            "attn.proj.weight" => "self_attn.out_proj.weight",
            "attn.proj.bias" => "self_attn.out_proj.bias",
            "mlp.fc1.weight" | "mlp.fc1.bias" | "mlp.fc2.weight" | "mlp.fc2.bias" => part,
            "attn.qkv.weight" | "attn.qkv.bias" => {
                let kind = part.rsplit('.').next().unwrap_or("weight");
                split_qkv(&tensor, &format!("{at}.self_attn"), kind, out)?;
                return Ok(true);
            }
            _ => return Ok(false),
        };
        out.insert(format!("{at}.{name}"), tensor);
        return Ok(true);
    }
    let (name, tensor) = match rest {
        "patch_embed.proj.weight" => ("embeddings.patch_embedding.weight", tensor),
        "patch_embed.proj.bias" => ("embeddings.patch_embedding.bias", tensor),
        // [1, patches, width] → one row per patch.
        "pos_embed" => ("embeddings.position_embedding.weight", tensor.squeeze(0)?),
        "norm.weight" => ("post_layernorm.weight", tensor),
        "norm.bias" => ("post_layernorm.bias", tensor),
        "attn_pool.latent" => ("head.probe", tensor),
        "attn_pool.q.weight" => ("head.pool_q.weight", tensor),
        "attn_pool.q.bias" => ("head.pool_q.bias", tensor),
        "attn_pool.kv.weight" => ("head.pool_kv.weight", tensor),
        "attn_pool.kv.bias" => ("head.pool_kv.bias", tensor),
        "attn_pool.proj.weight" => ("head.attention.out_proj.weight", tensor),
        "attn_pool.proj.bias" => ("head.attention.out_proj.bias", tensor),
        "attn_pool.norm.weight" => ("head.layernorm.weight", tensor),
        "attn_pool.norm.bias" => ("head.layernorm.bias", tensor),
        "attn_pool.mlp.fc1.weight" => ("head.mlp.fc1.weight", tensor),
        "attn_pool.mlp.fc1.bias" => ("head.mlp.fc1.bias", tensor),
        "attn_pool.mlp.fc2.weight" => ("head.mlp.fc2.weight", tensor),
        "attn_pool.mlp.fc2.bias" => ("head.mlp.fc2.bias", tensor),
        _ => return Ok(false),
    };
    out.insert(format!("{vm}.{name}"), tensor);
    Ok(true)
}

/// The pool's query and key-value weights stacked as the one `in_proj` (q, k, v) of
/// SigLIP's head.
fn stack_pool(tensors: &mut HashMap<String, Tensor>) -> candle_core::Result<()> {
    for kind in ["weight", "bias"] {
        let q = tensors.remove(&format!("vision_model.head.pool_q.{kind}"));
        let kv = tensors.remove(&format!("vision_model.head.pool_kv.{kind}"));
        if let (Some(q), Some(kv)) = (q, kv) {
            tensors.insert(
                format!("vision_model.head.attention.in_proj_{kind}"),
                Tensor::cat(&[q, kv], 0)?,
            );
        }
    }
    Ok(())
}

/// open_clip's SigLIP text tower: CLIP's names, but its projection is SigLIP's `head` (a linear
/// layer with a bias).
fn text_names(
    rest: &str,
    tensor: Tensor,
    out: &mut HashMap<String, Tensor>,
) -> candle_core::Result<bool> {
    match rest {
        "text_projection.weight" => out.insert("text_model.head.weight".into(), tensor),
        "text_projection.bias" => out.insert("text_model.head.bias".into(), tensor),
        _ => return names::clip_text(rest, tensor, out),
    };
    Ok(true)
}

impl Family for OpenClipSiglip {
    fn name(&self) -> &'static str {
        "open_clip SigLIP"
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
        let (vocab, context) = (self.text.vocab_size, self.text.max_position_embeddings);
        let tokenizer = SiglipTokenizer::load(&self.folder, vocab, context)?;
        Ok(Box::new(tokenizer.with_open_clip_cleaning()))
    }

    fn weights(&self, device: &Device) -> Result<VarBuilder<'static>, ModelError> {
        let renaming = Renaming {
            vision: vision_names,
            text: text_names,
            finish: stack_pool,
        };
        names::load(
            &self.weights,
            true,
            &renaming,
            "vision_model.head.attention.in_proj_weight",
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
        siglip_vision_graph(vb, &self.vision, options, (size, size))
    }

    fn head(&self, vb: &VarBuilder) -> Result<ProbabilityHead, ModelError> {
        Ok(ProbabilityHead::Sigmoid {
            scale: super::hf::scalar(vb, "logit_scale", &self.weights)?.exp(),
            bias: super::hf::scalar(vb, "logit_bias", &self.weights)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiny fixture's config with `edit` applied to its JSON text.
    fn refusal(edit: impl Fn(&str) -> String) -> String {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../server/tests/fixtures/tiny-open-clip-siglip");
        let path = folder.join(CONFIG_FILE);
        let text = edit(&std::fs::read_to_string(&path).unwrap());
        let config = Config::parse(&path, &text).unwrap();
        let name = config.vision["timm_model_name"]
            .as_str()
            .unwrap()
            .to_string();
        read_config(&folder, &config, &name)
            .err()
            .expect("refused")
            .to_string()
    }

    #[test]
    fn what_would_make_it_another_model_is_refused_by_name() {
        for (from, to, named) in [
            (
                "\"no_causal_mask\": true",
                "\"no_causal_mask\": false",
                "text_cfg.no_causal_mask is false",
            ),
            (
                "\"pool_type\": \"last\"",
                "\"pool_type\": \"argmax\"",
                "text_cfg.pool_type is \"argmax\"",
            ),
            (
                "\"timm_proj\": \"none\"",
                "\"timm_proj\": \"linear\"",
                "vision_cfg.timm_proj is \"linear\"",
            ),
            (
                "\"clean\": \"canonicalize\"",
                "\"clean\": \"whitespace\"",
                "text_cfg.tokenizer_kwargs",
            ),
            (
                "vit_test_patch8_siglip_32",
                "vit_base_patch16_siglip_gap_224",
                "pooled by averaging",
            ),
            ("\"init_logit_bias\": -10,", "", "init_logit_bias is absent"),
        ] {
            let error = refusal(|text| {
                assert!(text.contains(from), "{from}");
                text.replace(from, to)
            });
            assert!(error.contains(named), "{from} -> {to}: {error}");
        }
        // An option that is absent takes open_clip's default, which is not SigLIP's.
        let error = refusal(|text| text.replace("\"no_causal_mask\": true,", ""));
        assert!(
            error.contains("text_cfg.no_causal_mask is absent"),
            "{error}"
        );
    }
}
