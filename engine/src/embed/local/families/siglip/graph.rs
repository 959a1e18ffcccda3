//! SigLIP's image tower as an ONNX graph, mirroring Hugging Face's `SiglipVisionModel` with its
//! attention-pooling head (`pooler_output`), with the checkpoint's weights as initializers.

use candle_nn::VarBuilder;

use super::towers::{resize_positions, SiglipVisionConfig};
use crate::embed::local::onnx::graph::{flat, writer, Linear, Part};
use crate::embed::local::onnx::GraphOptions;

/// The ONNX model (opset 17) of SigLIP's image tower, mirroring Hugging Face's
/// `SiglipVisionModel` with its attention-pooling head (`pooler_output`), with the
/// checkpoint's weights as initializers.
///
/// `input` is the `(height, width)` the graph takes: SigLIP's fixed size, or (NaFlex) the size
/// of one patch grid, whose resized position embeddings the graph holds.
pub fn siglip_vision_graph(
    vb: &VarBuilder,
    c: &SiglipVisionConfig,
    options: GraphOptions,
    input: (usize, usize),
) -> candle_core::Result<Vec<u8>> {
    let encoder = &c.encoder;
    let (e, heads) = (encoder.embed_dim, encoder.num_attention_heads);
    let head_dim = e / heads;
    let (p, channels) = (c.patch_size, c.num_channels);
    let (rows, cols) = (input.0 / p, input.1 / p);
    let positions = rows * cols;
    let mut w = writer(vb, encoder, channels, input, options);
    // Patches (the convolution has a bias) plus positions; no class token, no pre-LayerNorm.
    let embeddings = w.vm.pp("embeddings");
    let (x, position) = match c.naflex_grid {
        None => (
            w.patches(channels, p, true)?,
            flat(embeddings.get((positions, e), "position_embedding.weight")?)?,
        ),
        Some(side) => {
            // The linear patch embedding as the convolution it is (see `towers`).
            let linear = embeddings.pp("patch_embedding");
            let kernel = linear
                .get((e, p * p * channels), "weight")?
                .reshape((e, p, p, channels))?
                .permute((0, 3, 1, 2))?;
            let bias = linear.get(e, "bias")?.to_vec1::<f32>()?;
            let grid = flat(embeddings.get((side * side, e), "position_embedding.weight")?)?;
            (
                w.patches_of(&flat(kernel.contiguous()?)?, Some(&bias), channels, p)?,
                resize_positions(&grid, side, e, rows, cols),
            )
        }
    };
    let position = w.g.floats("position", &[positions, e], &position);
    let x = w.g.node("Add", &[&x, &position], &[]);
    let rows = w.g.ints("rows", &[2], &[-1, e as i64]);
    let x = w.g.node("Reshape", &[&x, &rows], &[]);
    let x = w.encoder(x, encoder, positions, false)?;
    let x = w.layer_norm(&x, "post_layernorm")?;

    // The pooling head: `probe` is the only query. Its projection does not depend on the
    // image, so it is computed here, scaled by head_dim^-0.5, as a [1, heads, 1, head_dim]
    // constant; keys and values come from every patch (in_proj rows E..3E).
    let head = w.vm.pp("head");
    let in_w = head.get((3 * e, e), "attention.in_proj_weight")?;
    let in_b = head.get(3 * e, "attention.in_proj_bias")?;
    let probe = head.get((1, 1, e), "probe")?.reshape((1, e))?;
    let q = probe
        .matmul(&in_w.narrow(0, 0, e)?.t()?)?
        .broadcast_add(&in_b.narrow(0, 0, e)?)?;
    let q = flat((q * (head_dim as f64).powf(-0.5))?)?;
    let q = w.g.floats("probe_query", &[1, heads, 1, head_dim], &q);
    let kv = w.gemm_of(
        &x,
        &flat(in_w.narrow(0, e, 2 * e)?)?,
        &in_b.narrow(0, e, 2 * e)?.to_vec1::<f32>()?,
        e,
    );
    let [k, v] = w.split_heads(&kv, positions, heads);
    let context = w.attend(&q, &k, &v);
    let attended = w.gemm(
        &context,
        &[("head.attention.out_proj".into(), 1.0)],
        e,
        e,
        Linear::Head,
    )?;
    let h = w.layer_norm(&attended, "head.layernorm")?;
    let h = w.mlp(&h, "head", encoder, Part::PoolingHead)?;
    let embeds = w.g.node("Add", &[&attended, &h], &[]);
    w.g.output(&embeds, "image_embeds", &[None, Some(e)]);
    Ok(w.g.into_model(17))
}
