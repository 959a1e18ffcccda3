//! Meta's Perception Encoder, PE-Core (T/S-16-384, B-16, L-14-336, bigG-14-448), in open_clip's
//! layout: `open_clip_config.json` names the image tower by its timm name
//! (`vit_pe_core_base_patch16_224`…), whose architecture is timm's table below (the config does
//! not carry it); the text tower is open_clip's CLIP text transformer with exact GELU and a 32-
//! token context (72 for bigG), under `text.`; scores are CLIP's softmax. Preprocessing is
//! `preprocess_cfg`'s (PE-Core's: squash to a square, bilinear, mean = std = 0.5).
//!
//! Invariant: a timm name not in the table is refused with its name; so is any option of the
//! config that would change the model (as for open_clip's ViT CLIP).

pub(crate) mod graph;
pub(crate) mod towers;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use candle_nn::VarBuilder;
use serde_json::Value;

use super::clip::towers::{TextConfig, TextTransformer};
use super::open_clip::names;
use super::open_clip::{Config, CONFIG_FILE};
use crate::embed::local::config::ModelError;
use crate::embed::local::family::{Family, ImageModel, ProbabilityHead, TextModel};
use crate::embed::local::layers::Activation;
use crate::embed::local::onnx::GraphOptions;
use crate::embed::local::tokenize::TextTokenizer;
use crate::embed::preprocess::PreprocessConfig;
use towers::{PeVision, PeVisionConfig};

/// timm's PE-Core image towers: name → (image, patch, width, depth, heads, MLP hidden, class
/// token, RoPE reference grid, RoPE grid offset), from timm's `eva.py` registrations.
const ARCHITECTURES: &[(&str, [usize; 6], bool, usize, f32)] = &[
    (
        "vit_pe_core_tiny_patch16_384",
        [384, 16, 192, 12, 3, 768],
        true,
        24,
        1.0,
    ),
    (
        "vit_pe_core_small_patch16_384",
        [384, 16, 384, 12, 6, 1536],
        true,
        24,
        1.0,
    ),
    (
        "vit_pe_core_base_patch16_224",
        [224, 16, 768, 12, 12, 3072],
        true,
        14,
        1.0,
    ),
    (
        "vit_pe_core_large_patch14_336",
        [336, 14, 1024, 24, 16, 4096],
        true,
        24,
        1.0,
    ),
    (
        "vit_pe_core_gigantic_patch14_448",
        [448, 14, 1536, 50, 16, 8960],
        false,
        32,
        0.0,
    ),
    // The test fixture's (scripts/make_tiny_open_clip.py): B-16's arguments, made small.
    (
        "vit_pe_core_test_patch8_32",
        [32, 8, 32, 2, 4, 128],
        true,
        4,
        1.0,
    ),
];

pub(crate) struct PeCore {
    folder: PathBuf,
    weights: PathBuf,
    text: TextConfig,
    vision: PeVisionConfig,
    preprocess: PreprocessConfig,
}

/// The folder as PE-Core, where its open_clip config names a `vit_pe_core_*` image tower.
pub(crate) fn read(folder: &Path) -> Option<Result<Box<dyn Family>, ModelError>> {
    let path = folder.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let config = Config::parse(&path, &text).ok()?;
    let name = config.vision.get("timm_model_name")?.as_str()?.to_string();
    if !name.starts_with("vit_pe_core_") {
        return None;
    }
    Some(read_config(folder, &config, &name).map(|family| Box::new(family) as Box<dyn Family>))
}

fn read_config(folder: &Path, config: &Config, name: &str) -> Result<PeCore, ModelError> {
    let weights = super::open_clip::weights_file(folder)?;
    let Some(&(_, [image, patch, width, depth, heads, mlp], class_token, reference, offset)) =
        ARCHITECTURES.iter().find(|(n, ..)| *n == name)
    else {
        let known: Vec<&str> = ARCHITECTURES.iter().map(|(n, ..)| *n).collect();
        return Err(config.unsupported(format!(
            "model_cfg.vision_cfg.timm_model_name is {name:?}, a Perception Encoder this program does not know; it knows {}",
            known.join(", ")
        )));
    };
    let (v, m) = ("model_cfg.vision_cfg", "model_cfg");
    config.check_keys(
        &config.vision,
        v,
        &["image_size", "timm_model_name"],
        &[
            ("timm_pool", Value::String("map".into())),
            ("timm_proj", Value::Null),
            ("timm_proj_bias", Value::Bool(false)),
        ],
    )?;
    config.check_keys(
        &config.model,
        m,
        &["embed_dim", "vision_cfg", "text_cfg", "custom_text"],
        &[
            ("quick_gelu", Value::Bool(false)),
            ("init_logit_bias", Value::Null),
            ("multimodal_cfg", Value::Null),
        ],
    )?;
    if config.model.get("custom_text") != Some(&Value::Bool(true)) {
        return Err(config.unsupported(format!(
            "{m}.custom_text is not true: PE-Core's text tower is open_clip's custom one (weights under text.)"
        )));
    }
    let size = config.square(&config.vision, v, "image_size", image)?;
    if size != image {
        return Err(config.unsupported(format!(
            "{v}.image_size is {size}, but {name} takes {image}x{image} images"
        )));
    }
    let embed_dim = config.usize(&config.model, m, "embed_dim", 0)?;
    Ok(PeCore {
        folder: folder.into(),
        weights,
        // timm models, and open_clip's text tower without quick_gelu: exact GELU.
        text: config.text_tower(Activation::Gelu, embed_dim)?,
        vision: PeVisionConfig {
            image_size: image,
            patch_size: patch,
            width,
            depth,
            heads,
            mlp_hidden: mlp,
            class_token,
            rope_reference: reference,
            rope_offset: offset,
            embed_dim,
        },
        preprocess: config.preprocess_config(image)?,
    })
}

/// `visual.trunk.*` → `vision_model.*` (timm's names kept).
fn vision_names(
    rest: &str,
    tensor: candle_core::Tensor,
    out: &mut std::collections::HashMap<String, candle_core::Tensor>,
) -> candle_core::Result<bool> {
    let Some(name) = rest.strip_prefix("trunk.") else {
        return Ok(false);
    };
    out.insert(format!("vision_model.{name}"), tensor);
    Ok(true)
}

impl Family for PeCore {
    fn name(&self) -> &'static str {
        "PE-Core"
    }

    fn dimension(&self) -> usize {
        self.vision.embed_dim
    }

    fn weights_file(&self) -> &Path {
        &self.weights
    }

    fn preprocess(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    fn tokenizer(&self) -> Result<Box<dyn TextTokenizer>, ModelError> {
        super::open_clip::clip_tokenizer(&self.folder, &self.text)
    }

    fn weights(&self, device: &Device) -> Result<VarBuilder<'static>, ModelError> {
        let renaming = names::Renaming {
            vision: vision_names,
            text: names::clip_text,
            finish: names::no_finish,
        };
        names::load(
            &self.weights,
            true,
            &renaming,
            "vision_model.attn_pool.latent",
            device,
        )
    }

    fn text_tower(&self, vb: &VarBuilder) -> candle_core::Result<Box<dyn TextModel>> {
        Ok(Box::new(TextTransformer::new(vb, &self.text)?))
    }

    fn image_tower(&self, vb: &VarBuilder) -> candle_core::Result<Arc<dyn ImageModel>> {
        Ok(Arc::new(PeVision::new(vb, &self.vision)?))
    }

    fn image_graph(
        &self,
        vb: &VarBuilder,
        options: GraphOptions,
        _: (usize, usize),
    ) -> candle_core::Result<Vec<u8>> {
        graph::pe_vision_graph(vb, &self.vision, options)
    }

    fn head(&self, vb: &VarBuilder) -> Result<ProbabilityHead, ModelError> {
        let scale = super::hf::scalar(vb, "logit_scale", &self.weights)?.exp();
        Ok(ProbabilityHead::Softmax { scale })
    }
}
