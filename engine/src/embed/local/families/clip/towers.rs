//! CLIP's two transformers on candle, mirroring the Hugging Face checkpoint's names
//! (`text_model.*`, `vision_model.*`) as candle-transformers' `models::clip` does, with what
//! that module lacks: the activation the config names (`quick_gelu` in OpenAI's checkpoints,
//! `gelu` in LAION's OpenCLIP ones) and the config's `layer_norm_eps`.
//!
//! Invariants:
//! - Every weight is read under the checkpoint's own name and shape; a missing or misshapen
//!   one is an error, never a random initialisation.
//! - The text embedding is read at the end token's position, which the tokenizer gives (as
//!   transformers reads it at `eos_token_id`), not guessed from the ids.

use candle_core::{IndexOp, Module, Result, Tensor, D};
use candle_nn::{Conv2dConfig, LayerNorm, Linear, VarBuilder};

use crate::embed::local::family::{ImageModel, Pooling, TextModel};
use crate::embed::local::layers::{Encoder, EncoderConfig, Pass, TextEncoder};

#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    pub encoder: EncoderConfig,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub projection_dim: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VisionConfig {
    pub encoder: EncoderConfig,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    pub projection_dim: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClipConfig {
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
    pub logit_scale_init_value: f32,
    pub image_size: usize,
}

/// `text_model.*` and `text_projection`: a prompt's embedding, not yet L2-normalised.
pub struct TextTransformer {
    text: TextEncoder,
    projection: Linear,
}

impl TextTransformer {
    /// Reads the weights under `text_model` and `text_projection` of `vb`.
    pub fn new(vb: &VarBuilder, c: &TextConfig) -> Result<Self> {
        Ok(Self {
            text: TextEncoder::new(
                vb.pp("text_model"),
                &c.encoder,
                c.vocab_size,
                c.max_position_embeddings,
                true,
            )?,
            projection: candle_nn::linear_no_bias(
                c.encoder.embed_dim,
                c.projection_dim,
                vb.pp("text_projection"),
            )?,
        })
    }
}

impl TextModel for TextTransformer {
    /// `ids`: `[batch, length]` token ids; `ends`: each row's end-token position.
    fn forward(&self, ids: &Tensor, ends: &[usize]) -> Result<Tensor> {
        self.projection.forward(&self.text.pooled(ids, ends)?)
    }

    fn reads_whole_context(&self) -> bool {
        !self.text.causal()
    }
}

/// `vision_model.*` and `visual_projection`: an image's embedding, not yet L2-normalised.
#[derive(Clone)]
pub struct VisionTransformer {
    patch_embedding: candle_nn::Conv2d,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_layrnorm: LayerNorm,
    encoder: Encoder,
    post_layernorm: LayerNorm,
    projection: Linear,
    eps: f64,
}

impl VisionTransformer {
    /// Reads the weights under `vision_model` and `visual_projection` of `vb`.
    pub fn new(vb: &VarBuilder, c: &VisionConfig) -> Result<Self> {
        let vm = vb.pp("vision_model");
        let (e, eps) = (c.encoder.embed_dim, c.encoder.layer_norm_eps);
        let positions = (c.image_size / c.patch_size).pow(2) + 1;
        let conv = Conv2dConfig {
            stride: c.patch_size,
            ..Default::default()
        };
        Ok(Self {
            patch_embedding: candle_nn::conv2d_no_bias(
                c.num_channels,
                e,
                c.patch_size,
                conv,
                vm.pp("embeddings.patch_embedding"),
            )?,
            class_embedding: vm.get(e, "embeddings.class_embedding")?,
            position_embedding: vm.get((positions, e), "embeddings.position_embedding.weight")?,
            pre_layrnorm: candle_nn::layer_norm(e, eps, vm.pp("pre_layrnorm"))?,
            encoder: Encoder::new(vm.pp("encoder"), &c.encoder)?,
            post_layernorm: candle_nn::layer_norm(e, eps, vm.pp("post_layernorm"))?,
            projection: candle_nn::linear_no_bias(e, c.projection_dim, vb.pp("visual_projection"))?,
            eps,
        })
    }
}

impl ImageModel for VisionTransformer {
    /// `pixels`: `[batch, channels, size, size]`.
    fn forward(&self, pixels: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let batch = pixels.dim(0)?;
        let patches = self
            .patch_embedding
            .forward(pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let e = self.class_embedding.dim(D::Minus1)?;
        let class = self
            .class_embedding
            .reshape((1, 1, e))?
            .repeat((batch, 1, 1))?;
        let xs = Tensor::cat(&[class, patches], 1)?.broadcast_add(&self.position_embedding)?;
        let xs = self.pre_layrnorm.forward(&xs)?;
        let xs = self.encoder.forward_with(&xs, None, pass)?;
        // After the last layer: traced whenever the pass is (the pooling is on the score's path).
        let pooled = pass.layer_norm(&self.post_layernorm, self.eps, &xs.i((.., 0))?, None)?;
        self.projection.forward(&pooled)
    }

    fn layers(&self) -> usize {
        self.encoder.layers()
    }

    fn pooling(&self) -> Pooling {
        Pooling::ClassToken
    }
}
