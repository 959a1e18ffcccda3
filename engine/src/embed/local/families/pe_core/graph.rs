//! PE-Core's image tower as an ONNX graph, mirroring [`super::towers::PeVision`] (timm's `Eva`
//! with PE-Core's arguments) with the checkpoint's weights as initializers. The rotary position
//! embedding is `q·cos + (q·M)·sin` with constant tables (the class token's row the identity)
//! and `M` the fixed matrix that maps each pair `(x0, x1)` to `(-x1, x0)`: two products and an
//! addition, no reshapes. In int8, the blocks' linear layers are; the attention pool and the
//! projection stay fp32 (as SigLIP's head).

use candle_nn::VarBuilder;

use super::towers::{rope_table, PeVisionConfig, POOL_HEADS};
use crate::embed::local::layers::{Activation, EncoderConfig};
use crate::embed::local::onnx::graph::{flat, writer, Linear, Part};
use crate::embed::local::onnx::GraphOptions;

pub fn pe_vision_graph(
    vb: &VarBuilder,
    c: &PeVisionConfig,
    options: GraphOptions,
) -> candle_core::Result<Vec<u8>> {
    let (e, hd) = (c.width, c.head_dim());
    let block = EncoderConfig {
        embed_dim: e,
        intermediate_size: c.mlp_hidden,
        num_hidden_layers: c.depth,
        num_attention_heads: c.heads,
        activation: Activation::Gelu,
        layer_norm_eps: 1e-5,
    };
    let prefix = c.prefix_tokens();
    let tokens = prefix + c.grid() * c.grid();
    let mut w = writer(vb, &block, 3, (c.image_size, c.image_size), options);
    let x = w.patches_at("patch_embed.proj", 3, c.patch_size, false)?;
    // The class token as a zero row in front, then one constant adds it and the positions.
    let x = if prefix > 0 {
        let pads = w.g.ints("pads", &[6], &[0, 1, 0, 0, 0, 0]);
        w.g.node("Pad", &[&x, &pads], &[])
    } else {
        x
    };
    let mut added = flat(w.vm.get((1, tokens, e), "pos_embed")?)?;
    if prefix > 0 {
        let class = flat(w.vm.get((1, 1, e), "cls_token")?)?;
        added[..e].iter_mut().zip(&class).for_each(|(a, c)| *a += c);
    }
    let added = w.g.floats("class_pos", &[tokens, e], &added);
    let x = w.g.node("Add", &[&x, &added], &[]);
    let rows = w.g.ints("rows", &[2], &[-1, e as i64]);
    let x = w.g.node("Reshape", &[&x, &rows], &[]);
    let mut x = w.layer_norm(&x, "norm_pre")?;

    let (cos, sin) = rope_table(c);
    let cos = w.g.floats("rope_cos", &[tokens, hd], &cos);
    let sin = w.g.floats("rope_sin", &[tokens, hd], &sin);
    let mut pairs = vec![0f32; hd * hd];
    for i in (0..hd).step_by(2) {
        // out[i] = -x[i+1], out[i+1] = x[i]: out_j = Σ_k x_k M[k][j].
        pairs[(i + 1) * hd + i] = -1.0;
        pairs[i * hd + i + 1] = 1.0;
    }
    let pairs = w.g.floats("rope_pairs", &[hd, hd], &pairs);
    let scale = w.g.floats("q_scale", &[], &[(hd as f32).powf(-0.5)]);
    for layer in 0..c.depth {
        let at = format!("blocks.{layer}");
        let h = w.layer_norm(&x, &format!("{at}.norm1"))?;
        let qkv = w.gemm(
            &h,
            &[(format!("{at}.attn.qkv"), 1.0)],
            e,
            3 * e,
            Linear::Qkv,
        )?;
        let [q, k, v] = w.split_heads(&qkv, tokens, c.heads);
        let mut rotate = |t: &str| {
            let turned = w.g.node("MatMul", &[t, &pairs], &[]);
            let a = w.g.node("Mul", &[t, &cos], &[]);
            let b = w.g.node("Mul", &[&turned, &sin], &[]);
            w.g.node("Add", &[&a, &b], &[])
        };
        let (q, k) = (rotate(&q), rotate(&k));
        let q = w.g.node("Mul", &[&q, &scale], &[]);
        let context = w.attend(&q, &k, &v);
        let attended = w.gemm(
            &context,
            &[(format!("{at}.attn.proj"), 1.0)],
            e,
            e,
            Linear::Out,
        )?;
        x = w.g.node("Add", &[&x, &attended], &[]);
        let h = w.layer_norm(&x, &format!("{at}.norm2"))?;
        let h = w.mlp(&h, &at, &block, Part::Encoder)?;
        x = w.g.node("Add", &[&x, &h], &[]);
    }
    let x = w.layer_norm(&x, "norm")?;

    // The attention pool: its query does not depend on the image, so it is a constant
    // [1, heads, 1, head_dim], scaled; keys and values from every token.
    let pool = w.vm.pp("attn_pool");
    let pool_dim = e / POOL_HEADS;
    let latent = pool.get((1, 1, e), "latent")?.reshape((1, e))?;
    let q = latent
        .matmul(&pool.get((e, e), "q.weight")?.t()?)?
        .broadcast_add(&pool.get(e, "q.bias")?)?;
    let q = flat((q * (pool_dim as f64).powf(-0.5))?)?;
    let q = w.g.floats("pool_query", &[1, POOL_HEADS, 1, pool_dim], &q);
    let kv = w.gemm(&x, &[("attn_pool.kv".into(), 1.0)], e, 2 * e, Linear::Head)?;
    let [k, v] = w.split_heads(&kv, tokens, POOL_HEADS);
    let context = w.attend(&q, &k, &v);
    let attended = w.gemm(
        &context,
        &[("attn_pool.proj".into(), 1.0)],
        e,
        e,
        Linear::Head,
    )?;
    let h = w.layer_norm(&attended, "attn_pool.norm")?;
    let pool_mlp = EncoderConfig {
        intermediate_size: 4 * e,
        ..block
    };
    let h = w.mlp(&h, "attn_pool", &pool_mlp, Part::PoolingHead)?;
    let pooled = w.g.node("Add", &[&attended, &h], &[]);
    let embeds = w.gemm(
        &pooled,
        &[("head".into(), 1.0)],
        e,
        c.embed_dim,
        Linear::Head,
    )?;
    w.g.output(&embeds, "image_embeds", &[None, Some(c.embed_dim)]);
    Ok(w.g.into_model(17))
}
