//! Meta's Perception Encoder (PE-Core) image tower on candle, as open_clip builds it through
//! timm (`Eva` with `vit_pe_core_*` arguments), under timm's names after `visual.trunk.`
//! (renamed `vision_model.`). Its differences from OpenAI's ViT: 2-D rotary position embeddings
//! on the patch tokens' queries and keys in every block (on top of the learned absolute ones),
//! a fused `qkv` with bias, exact GELU, a LayerNorm over all tokens after the blocks, an
//! attention-pooling head (one learned query, 8 heads, over all tokens, class token included)
//! instead of the class token, and a projection with a bias.
//!
//! Invariants:
//! - Every weight is read under the checkpoint's own name and shape; a missing or misshapen
//!   one is an error, never a random initialisation.
//! - The rotary table is timm's (`RotaryEmbeddingCat`, interleaved pairs, x = column then
//!   y = row, positions from the grid offset, temperature 10000), computed in f32 as timm does;
//!   the class token's row is the identity rotation, so one table covers every token.

use candle_core::{IndexOp, Module, Result, Tensor, D};
use candle_nn::{Conv2dConfig, LayerNorm, Linear, VarBuilder};

use crate::embed::local::family::{ImageModel, Pooling};
use crate::embed::local::layers::{merge_heads, split_heads, Pass};

/// LayerNorm's eps in every PE-Core norm.
const EPS: f64 = 1e-5;
/// The attention pool's heads, the same for every size.
pub const POOL_HEADS: usize = 8;

#[derive(Clone, Debug, PartialEq)]
pub struct PeVisionConfig {
    pub image_size: usize,
    pub patch_size: usize,
    pub width: usize,
    pub depth: usize,
    pub heads: usize,
    pub mlp_hidden: usize,
    /// A class token in front of the patches (all sizes but bigG).
    pub class_token: bool,
    /// RoPE's reference grid side (`ref_feat_shape`) and the grid's first position.
    pub rope_reference: usize,
    pub rope_offset: f32,
    /// The projection's output: the embedding's size.
    pub embed_dim: usize,
}

impl PeVisionConfig {
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn prefix_tokens(&self) -> usize {
        usize::from(self.class_token)
    }

    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }
}

/// timm's rotary table for `c`: `(cos, sin)`, each `[tokens, head_dim]` (tokens = prefix +
/// patches, the prefix rows cos 1, sin 0), as f32 values row by row.
pub fn rope_table(c: &PeVisionConfig) -> (Vec<f32>, Vec<f32>) {
    let (grid, hd, prefix) = (c.grid(), c.head_dim(), c.prefix_tokens());
    let bands_count = hd / 4;
    // freq_bands: 1 / temperature^(k / bands), in f32.
    let bands: Vec<f32> = (0..bands_count)
        .map(|k| 1.0 / 10000f32.powf(k as f32 / bands_count as f32))
        .collect();
    // _build_grid: (arange + offset) / size * reference.
    let coordinate = |i: usize| (i as f32 + c.rope_offset) / grid as f32 * c.rope_reference as f32;
    let tokens = prefix + grid * grid;
    let (mut cos, mut sin) = (vec![1f32; tokens * hd], vec![0f32; tokens * hd]);
    for row in 0..grid {
        for col in 0..grid {
            let t = prefix + row * grid + col;
            let (x, y) = (coordinate(col), coordinate(row));
            // [x·b0, x·b0, x·b1, x·b1, …, y·b0, y·b0, …]: pairs interleaved.
            for (k, band) in bands.iter().enumerate() {
                for (half, position) in [(0, x), (1, y)] {
                    let angle = position * band;
                    let at = t * hd + half * hd / 2 + 2 * k;
                    for i in at..at + 2 {
                        cos[i] = angle.cos();
                        sin[i] = angle.sin();
                    }
                }
            }
        }
    }
    (cos, sin)
}

/// `x·cos + rot(x)·sin` with `rot(x) = (-x1, x0, -x3, x2, …)` over the last dimension.
fn rotate(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let dims = xs.dims().to_vec();
    let last = dims[dims.len() - 1];
    let mut pairs = dims.clone();
    pairs.pop();
    pairs.extend([last / 2, 2]);
    let paired = xs.reshape(pairs)?;
    let even = paired.narrow(D::Minus1, 0, 1)?;
    let odd = paired.narrow(D::Minus1, 1, 1)?;
    let rotated = Tensor::cat(&[odd.neg()?, even], D::Minus1)?.reshape(dims)?;
    xs.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}

#[derive(Clone)]
struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Block {
    fn new(vb: VarBuilder, c: &PeVisionConfig) -> Result<Self> {
        let w = c.width;
        Ok(Self {
            norm1: candle_nn::layer_norm(w, EPS, vb.pp("norm1"))?,
            qkv: candle_nn::linear(w, 3 * w, vb.pp("attn.qkv"))?,
            proj: candle_nn::linear(w, w, vb.pp("attn.proj"))?,
            norm2: candle_nn::layer_norm(w, EPS, vb.pp("norm2"))?,
            fc1: candle_nn::linear(w, c.mlp_hidden, vb.pp("mlp.fc1"))?,
            fc2: candle_nn::linear(c.mlp_hidden, w, vb.pp("mlp.fc2"))?,
            heads: c.heads,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        pass: &mut Pass,
        layer: usize,
    ) -> Result<Tensor> {
        let h = pass.layer_norm(&self.norm1, EPS, xs, Some(layer))?;
        let qkv = self.qkv.forward(&h)?;
        let w = qkv.dim(D::Minus1)? / 3;
        let part = |i: usize| split_heads(qkv.narrow(D::Minus1, i * w, w)?, self.heads);
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let (q, k) = (rotate(&q, cos, sin)?, rotate(&k, cos, sin)?);
        let scale = ((w / self.heads) as f64).powf(-0.5);
        let weights = (q.matmul(&k.t()?)? * scale)?;
        let weights = pass.softmax(&weights, Some(layer))?;
        let attended = self.proj.forward(&merge_heads(weights.matmul(&v)?)?)?;
        let xs = (xs + attended)?;
        let h = pass.layer_norm(&self.norm2, EPS, &xs, Some(layer))?;
        let h = self.fc2.forward(&self.fc1.forward(&h)?.gelu_erf()?)?;
        xs + h
    }
}

/// timm's `AttentionPoolLatent`: one learned query over all tokens, then a residual MLP.
#[derive(Clone)]
struct AttentionPool {
    latent: Tensor,
    q: Linear,
    kv: Linear,
    proj: Linear,
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl AttentionPool {
    fn new(vb: VarBuilder, c: &PeVisionConfig) -> Result<Self> {
        let w = c.width;
        Ok(Self {
            latent: vb.get((1, 1, w), "latent")?,
            q: candle_nn::linear(w, w, vb.pp("q"))?,
            kv: candle_nn::linear(w, 2 * w, vb.pp("kv"))?,
            proj: candle_nn::linear(w, w, vb.pp("proj"))?,
            norm: candle_nn::layer_norm(w, EPS, vb.pp("norm"))?,
            fc1: candle_nn::linear(w, 4 * w, vb.pp("mlp.fc1"))?,
            fc2: candle_nn::linear(4 * w, w, vb.pp("mlp.fc2"))?,
        })
    }

    /// `[batch, tokens, w]` → `[batch, w]`; traced, its attention tapped as the head's.
    fn forward(&self, xs: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let (batch, _, w) = xs.dims3()?;
        let q = split_heads(
            self.q.forward(&self.latent.repeat((batch, 1, 1))?)?,
            POOL_HEADS,
        )?;
        let kv = self.kv.forward(xs)?;
        let k = split_heads(kv.narrow(D::Minus1, 0, w)?, POOL_HEADS)?;
        let v = split_heads(kv.narrow(D::Minus1, w, w)?, POOL_HEADS)?;
        let weights = (q.matmul(&k.t()?)? * ((w / POOL_HEADS) as f64).powf(-0.5))?;
        let weights = pass.softmax(&weights, None)?;
        let attended = self.proj.forward(&merge_heads(weights.matmul(&v)?)?)?;
        let h = pass.layer_norm(&self.norm, EPS, &attended, None)?;
        let h = self.fc2.forward(&self.fc1.forward(&h)?.gelu_erf()?)?;
        (attended + h)?.i((.., 0))
    }
}

/// `vision_model.*` (timm's `visual.trunk.*`): an image's embedding, not yet L2-normalised.
#[derive(Clone)]
pub struct PeVision {
    patch_embed: candle_nn::Conv2d,
    cls_token: Option<Tensor>,
    pos_embed: Tensor,
    norm_pre: LayerNorm,
    blocks: Vec<Block>,
    norm: LayerNorm,
    pool: AttentionPool,
    head: Linear,
    cos: Tensor,
    sin: Tensor,
    prefix: usize,
}

impl PeVision {
    pub fn new(vb: &VarBuilder, c: &PeVisionConfig) -> Result<Self> {
        let vm = vb.pp("vision_model");
        let w = c.width;
        let tokens = c.prefix_tokens() + c.grid() * c.grid();
        let conv = Conv2dConfig {
            stride: c.patch_size,
            ..Default::default()
        };
        let (cos, sin) = rope_table(c);
        let table =
            |values: Vec<f32>| Tensor::from_vec(values, (tokens, c.head_dim()), vb.device());
        Ok(Self {
            patch_embed: candle_nn::conv2d_no_bias(
                3,
                w,
                c.patch_size,
                conv,
                vm.pp("patch_embed.proj"),
            )?,
            cls_token: if c.class_token {
                Some(vm.get((1, 1, w), "cls_token")?)
            } else {
                None
            },
            pos_embed: vm.get((1, tokens, w), "pos_embed")?,
            norm_pre: candle_nn::layer_norm(w, EPS, vm.pp("norm_pre"))?,
            blocks: (0..c.depth)
                .map(|i| Block::new(vm.pp(format!("blocks.{i}")), c))
                .collect::<Result<_>>()?,
            norm: candle_nn::layer_norm(w, EPS, vm.pp("norm"))?,
            pool: AttentionPool::new(vm.pp("attn_pool"), c)?,
            head: candle_nn::linear(w, c.embed_dim, vm.pp("head"))?,
            cos: table(cos)?,
            sin: table(sin)?,
            prefix: c.prefix_tokens(),
        })
    }
}

impl ImageModel for PeVision {
    /// `pixels`: `[batch, 3, size, size]`.
    fn forward(&self, pixels: &Tensor, pass: &mut Pass) -> Result<Tensor> {
        let batch = pixels.dim(0)?;
        let patches = self
            .patch_embed
            .forward(pixels)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let xs = match &self.cls_token {
            Some(cls) => Tensor::cat(&[cls.repeat((batch, 1, 1))?, patches], 1)?,
            None => patches,
        };
        let xs = xs.broadcast_add(&self.pos_embed)?;
        let mut xs = self.norm_pre.forward(&xs)?;
        for (i, block) in self.blocks.iter().enumerate() {
            xs = block.forward(&xs, (&self.cos, &self.sin), pass, i)?;
        }
        let xs = pass.layer_norm(&self.norm, EPS, &xs, None)?;
        self.head.forward(&self.pool.forward(&xs, pass)?)
    }

    fn layers(&self) -> usize {
        self.blocks.len()
    }

    fn pooling(&self) -> Pooling {
        Pooling::Head {
            prefix_tokens: self.prefix,
        }
    }
}
