//! open_clip's weight names → the CLIP family's (Hugging Face's), so that one set of towers and
//! one ONNX graph writer serve both layouts. The mapping is transformers' own conversion
//! (`convert_clip_original_pytorch_to_hf.py`): `in_proj` split into q, k, v; `c_fc`/`c_proj` as
//! `fc1`/`fc2`; the projections (`x @ proj` in open_clip) transposed into linear weights.
//!
//! Invariant: every tensor of the file is either renamed or named in the refusal; a checkpoint
//! with tensors this mapping does not know is refused, not loaded with parts left out.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::embed::local::config::ModelError;

/// Renames one tower's tensor (its name after `visual.`, or after the text prefix) into `out`;
/// `false` where the name is not the tower's.
pub(crate) type TowerNames =
    fn(&str, Tensor, &mut HashMap<String, Tensor>) -> candle_core::Result<bool>;

/// How a family's open_clip weights become its towers' names: the image tower's renaming, the
/// text tower's, and a last step over all of them (tensors that come in parts).
pub(crate) struct Renaming {
    pub vision: TowerNames,
    pub text: TowerNames,
    pub finish: fn(&mut HashMap<String, Tensor>) -> candle_core::Result<()>,
}

/// Nothing to put together.
pub(crate) fn no_finish(_: &mut HashMap<String, Tensor>) -> candle_core::Result<()> {
    Ok(())
}

/// OpenAI-style ViT CLIP: both towers as the CLIP family names them.
pub(crate) const CLIP: Renaming = Renaming {
    vision: clip_vision,
    text: clip_text,
    finish: no_finish,
};

/// The weights of `file` (open_clip names, text tower under `text.` where `custom_text`) under
/// the towers' names as `renaming` gives them, in f32; `expected` must be among them.
pub(crate) fn load(
    file: &Path,
    custom_text: bool,
    renaming: &Renaming,
    expected: &str,
    device: &Device,
) -> Result<VarBuilder<'static>, ModelError> {
    let error = |message: String| ModelError::Weights {
        path: file.into(),
        message,
    };
    let tensors = candle_core::safetensors::load(file, device).map_err(|e| error(e.to_string()))?;
    let text_prefix = if custom_text { "text." } else { "" };
    let mut renamed = HashMap::with_capacity(tensors.len() + 64);
    let mut unknown = Vec::new();
    for (name, tensor) in tensors {
        let tensor = tensor
            .to_dtype(DType::F32)
            .map_err(|e| error(format!("{name}: {e}")))?;
        let result = if name == "logit_scale" || name == "logit_bias" {
            renamed.insert(name.clone(), tensor);
            Ok(true)
        } else if let Some(rest) = name.strip_prefix("visual.") {
            (renaming.vision)(rest, tensor, &mut renamed)
        } else if let Some(rest) = name.strip_prefix(text_prefix) {
            (renaming.text)(rest, tensor, &mut renamed)
        } else {
            Ok(false)
        }
        .map_err(|e| error(format!("{name}: {e}")))?;
        if !result {
            unknown.push(name);
        }
    }
    (renaming.finish)(&mut renamed).map_err(|e| error(e.to_string()))?;
    if !unknown.is_empty() {
        unknown.sort();
        return Err(error(format!(
            "tensors this program does not know for the architecture open_clip_config.json names: {} (does the file belong to that config?)",
            unknown.join(", ")
        )));
    }
    if !renamed.contains_key(expected) {
        return Err(error(format!(
            "it has no tensor for {expected}: does it belong to open_clip_config.json?"
        )));
    }
    Ok(VarBuilder::from_tensors(renamed, DType::F32, device))
}

/// Inserts a transformer block's tensor (`resblocks.N.…` relative `rest`) under `prefix`.
pub(crate) fn block(
    prefix: &str,
    rest: &str,
    tensor: Tensor,
    out: &mut HashMap<String, Tensor>,
) -> candle_core::Result<bool> {
    let Some((layer, part)) = rest.split_once('.') else {
        return Ok(false);
    };
    let at = format!("{prefix}.encoder.layers.{layer}");
    let simple = |name: &str| match name {
        "ln_1.weight" => Some("layer_norm1.weight"),
        "ln_1.bias" => Some("layer_norm1.bias"),
        "ln_2.weight" => Some("layer_norm2.weight"),
        "ln_2.bias" => Some("layer_norm2.bias"),
        "attn.out_proj.weight" => Some("self_attn.out_proj.weight"),
        "attn.out_proj.bias" => Some("self_attn.out_proj.bias"),
        "mlp.c_fc.weight" => Some("mlp.fc1.weight"),
        "mlp.c_fc.bias" => Some("mlp.fc1.bias"),
        "mlp.c_proj.weight" => Some("mlp.fc2.weight"),
        "mlp.c_proj.bias" => Some("mlp.fc2.bias"),
        _ => None,
    };
    if let Some(name) = simple(part) {
        out.insert(format!("{at}.{name}"), tensor);
        return Ok(true);
    }
    let kind = match part {
        "attn.in_proj_weight" => "weight",
        "attn.in_proj_bias" => "bias",
        _ => return Ok(false),
    };
    split_qkv(&tensor, &format!("{at}.self_attn"), kind, out)?;
    Ok(true)
}

/// q, k and v stacked along the first dimension (torch's `MultiheadAttention`, timm's fused
/// `qkv`) as `{at}.q_proj.{kind}`, `k_proj`, `v_proj`.
pub(crate) fn split_qkv(
    tensor: &Tensor,
    at: &str,
    kind: &str,
    out: &mut HashMap<String, Tensor>,
) -> candle_core::Result<()> {
    let third = tensor.dim(0)? / 3;
    for (i, name) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
        out.insert(
            format!("{at}.{name}.{kind}"),
            tensor.narrow(0, i * third, third)?.contiguous()?,
        );
    }
    Ok(())
}

pub(crate) fn clip_vision(
    rest: &str,
    tensor: Tensor,
    out: &mut HashMap<String, Tensor>,
) -> candle_core::Result<bool> {
    let vm = "vision_model";
    if let Some(rest) = rest.strip_prefix("transformer.resblocks.") {
        return block(vm, rest, tensor, out);
    }
    let name = match rest {
        "conv1.weight" => "vision_model.embeddings.patch_embedding.weight",
        "class_embedding" => "vision_model.embeddings.class_embedding",
        "positional_embedding" => "vision_model.embeddings.position_embedding.weight",
        "ln_pre.weight" => "vision_model.pre_layrnorm.weight",
        "ln_pre.bias" => "vision_model.pre_layrnorm.bias",
        "ln_post.weight" => "vision_model.post_layernorm.weight",
        "ln_post.bias" => "vision_model.post_layernorm.bias",
        // `x @ proj` ([width, embed]) is a linear layer with weight projᵀ.
        "proj" => {
            out.insert("visual_projection.weight".into(), tensor.t()?.contiguous()?);
            return Ok(true);
        }
        _ => return Ok(false),
    };
    out.insert(name.into(), tensor);
    Ok(true)
}

pub(crate) fn clip_text(
    rest: &str,
    tensor: Tensor,
    out: &mut HashMap<String, Tensor>,
) -> candle_core::Result<bool> {
    if let Some(rest) = rest.strip_prefix("transformer.resblocks.") {
        return block("text_model", rest, tensor, out);
    }
    let name = match rest {
        "token_embedding.weight" => "text_model.embeddings.token_embedding.weight",
        "positional_embedding" => "text_model.embeddings.position_embedding.weight",
        "ln_final.weight" => "text_model.final_layer_norm.weight",
        "ln_final.bias" => "text_model.final_layer_norm.bias",
        "text_projection" => {
            out.insert("text_projection.weight".into(), tensor.t()?.contiguous()?);
            return Ok(true);
        }
        // open_clip's causal mask is a buffer, not saved; some older files hold it.
        "attn_mask" => return Ok(true),
        _ => return Ok(false),
    };
    out.insert(name.into(), tensor);
    Ok(true)
}
