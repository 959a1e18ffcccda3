//! SigLIP's two towers on candle (SigLIP and SigLIP 2's fixed-resolution checkpoints, both
//! `model_type: siglip`), mirroring the Hugging Face checkpoint's names as [`super::model`]
//! does for CLIP: `text_model.*` with its `head`, `vision_model.*` with its attention-pooling
//! `head`.
//!
//! Invariants:
//! - Every weight is read under the checkpoint's own name and shape; a missing or misshapen
//!   one is an error, never a random initialisation.
//! - The text tower attends over all positions, padding included, with no mask, and reads the
//!   text at the last position: SigLIP's text embedding depends on its padding to the context,
//!   so the tokenizer always pads to it (as transformers does with `padding="max_length"`).
//! - The image has no class token; the embedding is the pooling head's output (no projection).

use candle_core::{IndexOp, Module, Result, Tensor};
use candle_nn::{Conv2dConfig, LayerNorm, Linear, VarBuilder};

use crate::embed::local::family::{ImageModel, Pooling, TextModel};
use crate::embed::local::layers::{
    merge_heads, split_heads, Activation, Encoder, EncoderConfig, Pass, TextEncoder,
};

#[derive(Clone, Debug, PartialEq)]
pub struct SiglipTextConfig {
    pub encoder: EncoderConfig,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    /// The text head's output size: the embedding's.
    pub projection_size: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SiglipVisionConfig {
    pub encoder: EncoderConfig,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
}

/// `text_model.*` with its `head`: a prompt's embedding, not yet L2-normalised.
pub struct SiglipText {
    text: TextEncoder,
    head: Linear,
}

impl SiglipText {
    pub fn new(vb: &VarBuilder, c: &SiglipTextConfig) -> Result<Self> {
        let tm = vb.pp("text_model");
        Ok(Self {
            head: candle_nn::linear(c.encoder.embed_dim, c.projection_size, tm.pp("head"))?,
            text: TextEncoder::new(
                tm,
                &c.encoder,
                c.vocab_size,
                c.max_position_embeddings,
                false,
            )?,
        })
    }
}

impl TextModel for SiglipText {
    /// `ids`: `[batch, context]` token ids, padded to the context; `at`: each row's pooled
    /// position (the last).
    fn forward(&self, ids: &Tensor, at: &[usize]) -> Result<Tensor> {
        self.head.forward(&self.text.pooled(ids, at)?)
    }

    fn reads_whole_context(&self) -> bool {
        !self.text.causal()
    }
}

/// `vision_model.*`: an image's embedding, not yet L2-normalised.
#[derive(Clone)]
pub struct SiglipVision {
    patch_embedding: candle_nn::Conv2d,
    position_embedding: Tensor,
    encoder: Encoder,
    post_layernorm: LayerNorm,
    head: PoolingHead,
    eps: f64,
}

impl SiglipVision {
    pub fn new(vb: &VarBuilder, c: &SiglipVisionConfig) -> Result<Self> {
        let vm = vb.pp("vision_model");
        let (e, eps) = (c.encoder.embed_dim, c.encoder.layer_norm_eps);
        let positions = (c.image_size / c.patch_size).pow(2);
        let conv = Conv2dConfig {
            stride: c.patch_size,
            ..Default::default()
        };
        Ok(Self {
            patch_embedding: candle_nn::conv2d(
                c.num_channels,
                e,
                c.patch_size,
                conv,
                vm.pp("embeddings.patch_embedding"),
            )?,
            position_embedding: vm.get((positions, e), "embeddings.position_embedding.weight")?,
            encoder: Encoder::new(vm.pp("encoder"), &c.encoder)?,
            post_layernorm: candle_nn::layer_norm(e, eps, vm.pp("post_layernorm"))?,
            head: PoolingHead::new(vm.pp("head"), &c.encoder)?,
            eps,
        })
    }
}

impl ImageModel for SiglipVision {
    /// `pixels`: `[batch, channels, size, size]`; traced, the pooling head's attention is
    /// tapped as the head's.
    fn forward(&self, pixels: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let patches = self
            .patch_embedding
            .forward(pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let xs = patches.broadcast_add(&self.position_embedding)?;
        let xs = self.encoder.forward_with(&xs, None, pass)?;
        let xs = pass.layer_norm(&self.post_layernorm, self.eps, &xs, None)?;
        self.head.forward(&xs, pass, self.eps)
    }

    fn layers(&self) -> usize {
        self.encoder.layers()
    }

    fn pooling(&self) -> Pooling {
        Pooling::Head { prefix_tokens: 0 }
    }
}

/// `vision_model.head`: one learned query (`probe`) attends over the patches through a
/// `torch.nn.MultiheadAttention` (q, k, v stacked in `in_proj_*`), then a residual MLP.
#[derive(Clone)]
struct PoolingHead {
    probe: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    out_proj: Linear,
    layernorm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    activation: Activation,
    heads: usize,
}

impl PoolingHead {
    fn new(vb: VarBuilder, c: &EncoderConfig) -> Result<Self> {
        let e = c.embed_dim;
        let weight = vb.get((3 * e, e), "attention.in_proj_weight")?;
        let bias = vb.get(3 * e, "attention.in_proj_bias")?;
        let part = |i: usize| -> Result<Linear> {
            Ok(Linear::new(
                weight.narrow(0, i * e, e)?,
                Some(bias.narrow(0, i * e, e)?),
            ))
        };
        Ok(Self {
            probe: vb.get((1, 1, e), "probe")?,
            q: part(0)?,
            k: part(1)?,
            v: part(2)?,
            out_proj: candle_nn::linear(e, e, vb.pp("attention.out_proj"))?,
            layernorm: candle_nn::layer_norm(e, c.layer_norm_eps, vb.pp("layernorm"))?,
            fc1: candle_nn::linear(e, c.intermediate_size, vb.pp("mlp.fc1"))?,
            fc2: candle_nn::linear(c.intermediate_size, e, vb.pp("mlp.fc2"))?,
            activation: c.activation,
            heads: c.num_attention_heads,
        })
    }

    /// `xs`: `[batch, patches, e]` → `[batch, e]`, run as `pass` says (traced: its attention
    /// tapped as the pooling head's).
    fn forward(&self, xs: &Tensor, pass: &mut Pass, eps: f64) -> Result<Tensor> {
        let (batch, _, e) = xs.dims3()?;
        let probe = self.probe.repeat((batch, 1, 1))?;
        let q = split_heads(self.q.forward(&probe)?, self.heads)?;
        let k = split_heads(self.k.forward(xs)?, self.heads)?;
        let v = split_heads(self.v.forward(xs)?, self.heads)?;
        let weights = (q.matmul(&k.t()?)? * ((e / self.heads) as f64).powf(-0.5))?;
        let weights = pass.softmax(&weights, None)?;
        let attended = self.out_proj.forward(&merge_heads(weights.matmul(&v)?)?)?;
        let h = self
            .fc1
            .forward(&pass.layer_norm(&self.layernorm, eps, &attended, None)?)?;
        let h = self.fc2.forward(&self.activation.forward(&h)?)?;
        (attended + h)?.i((.., 0))
    }
}
