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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    /// SigLIP 2 NaFlex: the side of the position-embedding grid, resized to each input's patch
    /// grid, and a linear patch embedding over (row, column, channel) pixels; `None` for the
    /// fixed-resolution layout (a convolution, one position per patch of `image_size`).
    pub naflex_grid: Option<usize>,
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
    positions: Positions,
    encoder: Encoder,
    post_layernorm: LayerNorm,
    head: PoolingHead,
    eps: f64,
}

/// Where each patch's position embedding comes from.
#[derive(Clone)]
enum Positions {
    /// One learned embedding per patch of the fixed input.
    Fixed(Tensor),
    /// NaFlex: a `side x side` grid (row-major), resized to each input's patch grid; kept per
    /// grid, as a video's frames all share one.
    Grid {
        grid: Arc<Vec<f32>>,
        side: usize,
        resized: Arc<Mutex<HashMap<(usize, usize), Tensor>>>,
    },
}

impl Positions {
    /// The embeddings of a `rows x cols` patch grid, `[rows * cols, e]`.
    fn for_grid(&self, rows: usize, cols: usize, device: &candle_core::Device) -> Result<Tensor> {
        match self {
            Self::Fixed(positions) => Ok(positions.clone()),
            Self::Grid {
                grid,
                side,
                resized,
            } => {
                let mut cache = crate::sync::lock(resized);
                if let Some(positions) = cache.get(&(rows, cols)) {
                    return Ok(positions.clone());
                }
                let e = grid.len() / (side * side);
                let values = resize_positions(grid, *side, e, rows, cols);
                let positions = Tensor::from_vec(values, (rows * cols, e), device)?;
                cache.insert((rows, cols), positions.clone());
                Ok(positions)
            }
        }
    }
}

/// One axis of `F.interpolate(mode="bilinear", align_corners=False, antialias=True)` from
/// `from` to `to` samples, as transformers' `Siglip2VisionEmbeddings` computes it: a tent
/// whose support widens when shrinking, centred on the output pixel, normalised to sum 1.
fn axis_weights(from: usize, to: usize) -> Vec<Vec<f32>> {
    let scale = from as f32 / to as f32;
    let support = scale.max(1.0);
    (0..to)
        .map(|i| {
            let center = (i as f32 + 0.5) * scale - 0.5;
            let weights: Vec<f32> = (0..from)
                .map(|j| (1.0 - (j as f32 - center).abs() / support).max(0.0))
                .collect();
            let sum: f32 = weights.iter().sum();
            weights.into_iter().map(|w| w / sum).collect()
        })
        .collect()
}

/// The `side x side` grid of `e`-long embeddings resized to `rows x cols` (row-major).
pub fn resize_positions(grid: &[f32], side: usize, e: usize, rows: usize, cols: usize) -> Vec<f32> {
    let (by_row, by_col) = (axis_weights(side, rows), axis_weights(side, cols));
    let mut out = vec![0f32; rows * cols * e];
    for r in 0..rows {
        for c in 0..cols {
            let at = &mut out[(r * cols + c) * e..(r * cols + c + 1) * e];
            for (y, wy) in by_row[r].iter().enumerate() {
                for (x, wx) in by_col[c].iter().enumerate() {
                    let weight = wy * wx;
                    if weight == 0.0 {
                        continue;
                    }
                    let source = &grid[(y * side + x) * e..(y * side + x + 1) * e];
                    at.iter_mut()
                        .zip(source)
                        .for_each(|(o, v)| *o += weight * v);
                }
            }
        }
    }
    out
}

impl SiglipVision {
    pub fn new(vb: &VarBuilder, c: &SiglipVisionConfig) -> Result<Self> {
        let vm = vb.pp("vision_model");
        let (e, eps) = (c.encoder.embed_dim, c.encoder.layer_norm_eps);
        let (p, channels) = (c.patch_size, c.num_channels);
        let conv = Conv2dConfig {
            stride: p,
            ..Default::default()
        };
        let embeddings = vm.pp("embeddings");
        let (patch_embedding, positions) = match c.naflex_grid {
            None => {
                let positions = (c.image_size / p).pow(2);
                (
                    candle_nn::conv2d(channels, e, p, conv, embeddings.pp("patch_embedding"))?,
                    Positions::Fixed(embeddings.get((positions, e), "position_embedding.weight")?),
                )
            }
            Some(side) => {
                // A linear layer over each patch's pixels in (row, column, channel) order is
                // the convolution whose kernel is its weight reshaped and permuted.
                let linear = embeddings.pp("patch_embedding");
                let kernel = linear
                    .get((e, p * p * channels), "weight")?
                    .reshape((e, p, p, channels))?
                    .permute((0, 3, 1, 2))?
                    .contiguous()?;
                let grid = embeddings
                    .get((side * side, e), "position_embedding.weight")?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                (
                    candle_nn::Conv2d::new(kernel, Some(linear.get(e, "bias")?), conv),
                    Positions::Grid {
                        grid: Arc::new(grid),
                        side,
                        resized: Arc::default(),
                    },
                )
            }
        };
        Ok(Self {
            patch_embedding,
            positions,
            encoder: Encoder::new(vm.pp("encoder"), &c.encoder)?,
            post_layernorm: candle_nn::layer_norm(e, eps, vm.pp("post_layernorm"))?,
            head: PoolingHead::new(vm.pp("head"), &c.encoder)?,
            eps,
        })
    }
}

impl ImageModel for SiglipVision {
    /// `pixels`: `[batch, channels, height, width]` (fixed for SigLIP, any whole number of
    /// patches for NaFlex); traced, the pooling head's attention is tapped as the head's.
    fn forward(&self, pixels: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let patches = self.patch_embedding.forward(pixels)?;
        let (_, _, rows, cols) = patches.dims4()?;
        let patches = patches.flatten_from(2)?.transpose(1, 2)?;
        let positions = self.positions.for_grid(rows, cols, pixels.device())?;
        let xs = patches.broadcast_add(&positions)?;
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
