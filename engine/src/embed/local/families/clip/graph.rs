//! CLIP's image tower as an ONNX graph, mirroring Hugging Face's
//! `CLIPVisionModelWithProjection`, with the checkpoint's weights as initializers.

use candle_nn::VarBuilder;

use super::towers::VisionConfig;
use crate::embed::local::onnx::graph::{flat, writer, Attr};
use crate::embed::local::onnx::GraphOptions;

/// The ONNX model (opset 17) of CLIP's image tower, mirroring Hugging Face's
/// `CLIPVisionModelWithProjection`, with the checkpoint's weights as initializers.
pub fn vision_graph(
    vb: &VarBuilder,
    c: &VisionConfig,
    options: GraphOptions,
) -> candle_core::Result<Vec<u8>> {
    let e = c.encoder.embed_dim;
    let positions = (c.image_size / c.patch_size).pow(2) + 1;
    let mut w = writer(
        vb,
        &c.encoder,
        c.num_channels,
        (c.image_size, c.image_size),
        options,
    );
    let x = w.patches(c.num_channels, c.patch_size, false)?;
    // A zero row in front of the patches, then one constant adds both the class embedding
    // (to that row) and the position embeddings: no batch-sized Expand/Concat needed.
    let pads = w.g.ints("pads", &[6], &[0, 1, 0, 0, 0, 0]);
    let x = w.g.node("Pad", &[&x, &pads], &[]);
    let em = w.vm.pp("embeddings");
    let class = em.get(e, "class_embedding")?.to_vec1::<f32>()?;
    let mut added = flat(em.get((positions, e), "position_embedding.weight")?)?;
    added[..e].iter_mut().zip(&class).for_each(|(a, c)| *a += c);
    let added = w.g.floats("class_pos", &[positions, e], &added);
    let x = w.g.node("Add", &[&x, &added], &[]);
    // From here the hidden state is 2-D, [N * positions, E], so that every linear layer is
    // one Gemm with its bias fused and its weights as stored ([out, in], transB).
    let rows = w.g.ints("rows", &[2], &[-1, e as i64]);
    let x = w.g.node("Reshape", &[&x, &rows], &[]);
    let x = w.layer_norm(&x, "pre_layrnorm")?;
    let x = w.encoder(x, &c.encoder, positions, options.class_only_last)?;
    // Without the class-only last layer, x has every token's row: keep the class tokens'.
    let x = if options.class_only_last {
        x
    } else {
        let tokens = w.g.ints("tokens", &[3], &[-1, positions as i64, e as i64]);
        let first = w.g.ints("first", &[], &[0]);
        let all = w.g.node("Reshape", &[&x, &tokens], &[]);
        w.g.node("Gather", &[&all, &first], &[Attr::Int("axis", 1)])
    };
    // x is now the class token's row per image: post-LayerNorm, projected.
    let pooled = w.layer_norm(&x, "post_layernorm")?;
    // Stored [out, in]; MatMul wants [in, out].
    let projection = flat(
        vb.get((c.projection_dim, e), "visual_projection.weight")?
            .t()?
            .contiguous()?,
    )?;
    let projection =
        w.g.floats("visual_projection", &[e, c.projection_dim], &projection);
    let embeds = w.g.node("MatMul", &[&pooled, &projection], &[]);
    w.g.output(&embeds, "image_embeds", &[None, Some(c.projection_dim)]);
    Ok(w.g.into_model(17))
}
