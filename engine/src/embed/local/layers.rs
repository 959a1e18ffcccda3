//! The transformer pieces every family's towers share, on candle: the MLP's activations, the
//! pre-LayerNorm encoder layers under Hugging Face's names (`encoder.layers.N.*`), and the
//! [`Pass`] that runs them fast (embedding) or traced (explaining), so that what is explained
//! is what embeds.
//!
//! Invariants:
//! - Every weight is read under the checkpoint's own name and shape; a missing or misshapen
//!   one is an error, never a random initialisation.
//! - A traced pass differs from a fast one only in softmax and layer norm running as composite
//!   ops (autograd goes through them) and in the taps; the numbers are the same.

use candle_core::{IndexOp, Module, Result, Tensor, Var, D};
use candle_nn::{LayerNorm, Linear, VarBuilder};

/// The MLP's activation, as `hidden_act` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`, OpenAI's CLIP.
    QuickGelu,
    /// The exact GELU, `x * Φ(x)` with the error function (PyTorch's `nn.GELU()`).
    Gelu,
    /// GELU's tanh approximation (`gelu_pytorch_tanh`, SigLIP's).
    GeluTanh,
}

impl Activation {
    /// The activation `hidden_act` names, if this crate computes it exactly.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "quick_gelu" => Some(Self::QuickGelu),
            "gelu" => Some(Self::Gelu),
            "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            _ => None,
        }
    }

    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702f64)?)?,
            Self::Gelu => xs.gelu_erf(),
            // candle's `gelu` is the tanh approximation.
            Self::GeluTanh => xs.gelu(),
        }
    }
}

/// The attention probabilities a traced forward pass exposes to autograd: for every layer from
/// `from_layer` on (and, for SigLIP, the pooling head), the probabilities and a zero variable
/// added to them. The score's gradient at that variable is its gradient at the probabilities
/// (the sum has their value, and every path from them to the score goes through it); candle's
/// backward keeps gradients only for variables.
pub struct AttentionTaps {
    pub from_layer: usize,
    /// `(probabilities [1, heads, queries, keys], zero variable)`, in layer order.
    pub layers: Vec<(Tensor, Var)>,
    /// SigLIP's pooling head (its one query over the patches).
    pub head: Option<(Tensor, Var)>,
}

impl AttentionTaps {
    pub fn new(from_layer: usize) -> Self {
        Self {
            from_layer,
            layers: Vec::new(),
            head: None,
        }
    }

    /// `probabilities` with a zero variable added where they are tapped.
    pub(crate) fn tap(&mut self, layer: Option<usize>, probabilities: Tensor) -> Result<Tensor> {
        if layer.is_some_and(|l| l < self.from_layer) {
            return Ok(probabilities);
        }
        let zero = Var::zeros(
            probabilities.shape(),
            probabilities.dtype(),
            probabilities.device(),
        )?;
        let tapped = (&probabilities + zero.as_tensor())?;
        match layer {
            Some(_) => self.layers.push((probabilities.detach(), zero)),
            None => self.head = Some((probabilities.detach(), zero)),
        }
        Ok(tapped)
    }

    /// Whether layer `layer` (or the head, for `None`) is in the part autograd goes through.
    pub(crate) fn traced(&self, layer: Option<usize>) -> bool {
        layer.is_none_or(|l| l >= self.from_layer)
    }
}

/// How a forward pass runs: `Fast` with candle's fused softmax and layer norm (embedding), or
/// `Traced` for autograd: the same ops as composites autograd can go through, and the attention
/// probabilities of the layers from `taps.from_layer` on tapped. One code path serves both, so
/// what is explained is what embeds.
pub(crate) enum Pass<'a> {
    Fast,
    Traced(&'a mut AttentionTaps),
}

impl Pass<'_> {
    /// Whether layer `layer` (the pooling head: `None`) runs traced.
    fn traces(&self, layer: Option<usize>) -> bool {
        matches!(self, Self::Traced(taps) if taps.traced(layer))
    }

    /// Softmax over the last dimension; traced, its result tapped for layer `layer`.
    pub(crate) fn softmax(&mut self, xs: &Tensor, layer: Option<usize>) -> Result<Tensor> {
        match self {
            Self::Traced(taps) if taps.traced(layer) => {
                taps.tap(layer, candle_nn::ops::softmax(xs, D::Minus1)?)
            }
            _ => candle_nn::ops::softmax_last_dim(xs),
        }
    }

    pub(crate) fn layer_norm(
        &self,
        norm: &LayerNorm,
        eps: f64,
        xs: &Tensor,
        layer: Option<usize>,
    ) -> Result<Tensor> {
        match (self.traces(layer), norm.bias()) {
            (true, Some(bias)) => {
                candle_nn::ops::layer_norm_slow(xs, norm.weight(), bias, eps as f32)
            }
            _ => norm.forward(xs),
        }
    }
}

/// `[batch, n, heads * head_dim]` → `[batch, heads, n, head_dim]`.
pub(crate) fn split_heads(t: Tensor, heads: usize) -> Result<Tensor> {
    let (batch, n, e) = t.dims3()?;
    t.reshape((batch, n, heads, e / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// The inverse of [`split_heads`].
pub(crate) fn merge_heads(t: Tensor) -> Result<Tensor> {
    let (batch, heads, n, head_dim) = t.dims4()?;
    t.transpose(1, 2)?.reshape((batch, n, heads * head_dim))
}

/// What the text and vision encoders share.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    pub embed_dim: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub activation: Activation,
    pub layer_norm_eps: f64,
}

#[derive(Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
    scale: f64,
}

impl Attention {
    fn new(vb: VarBuilder, c: &EncoderConfig) -> Result<Self> {
        let e = c.embed_dim;
        let linear = |name: &str| candle_nn::linear(e, e, vb.pp(name));
        Ok(Self {
            q_proj: linear("q_proj")?,
            k_proj: linear("k_proj")?,
            v_proj: linear("v_proj")?,
            out_proj: linear("out_proj")?,
            heads: c.num_attention_heads,
            scale: ((e / c.num_attention_heads) as f64).powf(-0.5),
        })
    }

    /// Layer `layer`'s attention, run as `pass` says.
    fn forward(
        &self,
        xs: &Tensor,
        mask: Option<&Tensor>,
        pass: &mut Pass,
        layer: usize,
    ) -> Result<Tensor> {
        let q = split_heads((self.q_proj.forward(xs)? * self.scale)?, self.heads)?;
        let k = split_heads(self.k_proj.forward(xs)?, self.heads)?;
        let v = split_heads(self.v_proj.forward(xs)?, self.heads)?;
        let mut weights = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            weights = weights.broadcast_add(mask)?;
        }
        let weights = pass.softmax(&weights, Some(layer))?;
        self.out_proj.forward(&merge_heads(weights.matmul(&v)?)?)
    }
}

#[derive(Clone)]
struct EncoderLayer {
    self_attn: Attention,
    layer_norm1: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    activation: Activation,
    layer_norm2: LayerNorm,
    eps: f64,
}

impl EncoderLayer {
    fn new(vb: VarBuilder, c: &EncoderConfig) -> Result<Self> {
        let (e, eps) = (c.embed_dim, c.layer_norm_eps);
        Ok(Self {
            self_attn: Attention::new(vb.pp("self_attn"), c)?,
            layer_norm1: candle_nn::layer_norm(e, eps, vb.pp("layer_norm1"))?,
            fc1: candle_nn::linear(e, c.intermediate_size, vb.pp("mlp.fc1"))?,
            fc2: candle_nn::linear(c.intermediate_size, e, vb.pp("mlp.fc2"))?,
            activation: c.activation,
            layer_norm2: candle_nn::layer_norm(e, eps, vb.pp("layer_norm2"))?,
            eps,
        })
    }

    /// Layer `layer`, run as `pass` says (a traced pass runs the layers before its first
    /// tapped one fast: nothing there depends on a tap).
    fn forward(
        &self,
        xs: &Tensor,
        mask: Option<&Tensor>,
        pass: &mut Pass,
        layer: usize,
    ) -> Result<Tensor> {
        let norm1 = pass.layer_norm(&self.layer_norm1, self.eps, xs, Some(layer))?;
        let attended = self.self_attn.forward(&norm1, mask, pass, layer)?;
        let xs = (xs + attended)?;
        let h =
            self.fc1
                .forward(&pass.layer_norm(&self.layer_norm2, self.eps, &xs, Some(layer))?)?;
        let h = self.fc2.forward(&self.activation.forward(&h)?)?;
        xs + h
    }
}

/// Pre-LayerNorm transformer layers (`encoder.layers.N.*`), shared with SigLIP.
#[derive(Clone)]
pub(crate) struct Encoder {
    layers: Vec<EncoderLayer>,
}

impl Encoder {
    pub(crate) fn new(vb: VarBuilder, c: &EncoderConfig) -> Result<Self> {
        let layers = (0..c.num_hidden_layers)
            .map(|i| EncoderLayer::new(vb.pp(format!("layers.{i}")), c))
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    pub(crate) fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.forward_with(xs, mask, &mut Pass::Fast)
    }

    /// [`forward`](Self::forward), run as `pass` says.
    pub(crate) fn forward_with(
        &self,
        xs: &Tensor,
        mask: Option<&Tensor>,
        pass: &mut Pass,
    ) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            xs = layer.forward(&xs, mask, pass, i)?;
        }
        Ok(xs)
    }

    pub(crate) fn layers(&self) -> usize {
        self.layers.len()
    }
}

/// `text_model.*` up to the pooled rows, as CLIP and SigLIP share it: token and position
/// embeddings, the encoder (with a causal mask for CLIP, none for SigLIP), the final layer
/// norm, and each row read at its pooled position. The families add their projection or head.
pub(crate) struct TextEncoder {
    token_embedding: candle_nn::Embedding,
    position_embedding: Tensor,
    encoder: Encoder,
    final_layer_norm: LayerNorm,
    causal: bool,
}

impl TextEncoder {
    /// Reads the weights under `tm` (the checkpoint's `text_model`).
    pub(crate) fn new(
        tm: VarBuilder,
        c: &EncoderConfig,
        vocab_size: usize,
        positions: usize,
        causal: bool,
    ) -> Result<Self> {
        let e = c.embed_dim;
        Ok(Self {
            token_embedding: candle_nn::embedding(
                vocab_size,
                e,
                tm.pp("embeddings.token_embedding"),
            )?,
            position_embedding: tm.get((positions, e), "embeddings.position_embedding.weight")?,
            encoder: Encoder::new(tm.pp("encoder"), c)?,
            final_layer_norm: candle_nn::layer_norm(
                e,
                c.layer_norm_eps,
                tm.pp("final_layer_norm"),
            )?,
            causal,
        })
    }

    /// `ids`: `[batch, length]` token ids; `at`: each row's pooled position. `[batch, e]`.
    pub(crate) fn pooled(&self, ids: &Tensor, at: &[usize]) -> Result<Tensor> {
        let (batch, length) = ids.dims2()?;
        let xs = self
            .token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.narrow(0, 0, length)?)?;
        let mask = if self.causal {
            Some(causal_mask(length, ids)?)
        } else {
            None
        };
        let xs = self.encoder.forward(&xs, mask.as_ref())?;
        let xs = self.final_layer_norm.forward(&xs)?;
        let pooled = (0..batch)
            .map(|b| xs.i((b, at[b]))?.unsqueeze(0))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&pooled, 0)
    }

    /// Whether each position sees only itself and those before it.
    pub(crate) fn causal(&self) -> bool {
        self.causal
    }
}

/// Each position sees itself and the positions before it.
fn causal_mask(length: usize, like: &Tensor) -> Result<Tensor> {
    let mask: Vec<f32> = (0..length)
        .flat_map(|i| (0..length).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (1, 1, length, length), like.device())
}
