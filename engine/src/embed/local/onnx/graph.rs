//! The pieces of an image tower's ONNX graph that the families share ([`Writer`]: layer norms,
//! linear layers in fp32 or int8, the activations, attention, the pre-LayerNorm encoder, the
//! patch convolution), written from the same weights the candle towers read; each family's
//! `graph.rs` puts them together, and `onnx` runs the result. fp32, or with the encoder's
//! linear layers in int8 ([`GraphOptions`]).

use crate::embed::local::layers::{Activation, EncoderConfig};
use candle_core::Tensor;
use candle_nn::VarBuilder;

pub(crate) use super::proto::{Attr, Graph};

/// The encoder's linear layers, by role: which of them a graph computes in int8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinearLayers {
    /// The query, key and value projections (one matrix product per layer).
    pub qkv: bool,
    /// The attention's output projection.
    pub out: bool,
    /// The MLP's first and second layers.
    pub fc1: bool,
    pub fc2: bool,
}

impl LinearLayers {
    pub const NONE: Self = Self {
        qkv: false,
        out: false,
        fc1: false,
        fc2: false,
    };
    pub const ALL: Self = Self {
        qkv: true,
        out: true,
        fc1: true,
        fc2: true,
    };
}

/// How the image graph is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GraphOptions {
    /// Encoder layers computed in int8: weights quantized per output channel (symmetric, as
    /// ONNX Runtime's `quantize_dynamic` does), activations quantized per tensor at run time
    /// (`DynamicQuantizeMatMul`). Everything else stays fp32: the patch embedding, the layer
    /// norms, attention's two products and softmax, SigLIP's pooling head and CLIP's
    /// projection (together about 3% of the work; see `precision` in the README for why).
    pub int8: LinearLayers,
    /// CLIP: the last layer computes only the class token's row (all the output reads). In
    /// int8 this also quantizes that layer's activations over the class rows alone (a finer
    /// scale than over all tokens); off, the graph is ONNX Runtime's quantizer's scheme exactly.
    pub class_only_last: bool,
}

impl GraphOptions {
    /// The fp32 graph.
    pub const FP32: Self = Self {
        int8: LinearLayers::NONE,
        class_only_last: true,
    };
    /// The int8 graph the app runs.
    pub const INT8: Self = Self {
        int8: LinearLayers::ALL,
        class_only_last: true,
    };
}

/// A weight `[out, in]` (row-major, as checkpoints store it) quantized per output channel the
/// way ONNX Runtime's `quantize_dynamic(per_channel=True, weight_type=QInt8)` does: symmetric,
/// scale `max|w| / 127`, zero point 0, values rounded half to even into -127..=127. Returns
/// the int8 matrix transposed to `[in, out]` (`DynamicQuantizeMatMul`'s B) and the scales.
pub fn quantize_per_output_channel(w: &[f32], d_in: usize, d_out: usize) -> (Vec<i8>, Vec<f32>) {
    assert_eq!(w.len(), d_in * d_out);
    let mut q = vec![0i8; d_in * d_out];
    let mut scales = Vec::with_capacity(d_out);
    for (o, row) in w.chunks_exact(d_in).enumerate() {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        // As onnxruntime.quantization's compute_scale_zp: the range in f64, kept as f32.
        let mut scale = ((2.0 * f64::from(max)) / 254.0) as f32;
        if scale < f32::MIN_POSITIVE {
            scale = 1.0;
        }
        for (i, v) in row.iter().enumerate() {
            q[i * d_out + o] = (v / scale).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
        scales.push(scale);
    }
    (q, scales)
}

/// Writes graph nodes for one tower's weights (under `vision_model`): the pieces CLIP's and
/// SigLIP's towers share.
pub(crate) struct Writer<'a> {
    pub(crate) g: Graph,
    pub(crate) vm: VarBuilder<'a>,
    e: usize,
    eps: f32,
    /// The activation's constants, made on first use (ONNX Runtime warns of unused ones).
    constants: Option<Vec<String>>,
    /// The encoder layers written as int8 matrix products.
    int8: LinearLayers,
}

/// Which part of the tower an MLP is in: an encoder layer's may be int8, a pooling head's
/// (SigLIP's `head`, PE-Core's `attn_pool`) stays fp32.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Encoder,
    PoolingHead,
}

/// What a linear layer is, for [`GraphOptions::int8`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Linear {
    Qkv,
    Out,
    Fc1,
    Fc2,
    /// A pooling head's layers and the projection after it: always fp32.
    Head,
}

pub(crate) fn flat(t: Tensor) -> candle_core::Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

impl Writer<'_> {
    pub(crate) fn layer_norm(&mut self, x: &str, prefix: &str) -> candle_core::Result<String> {
        let (e, ln) = (self.e, self.vm.pp(prefix));
        let w = self
            .g
            .floats("ln_w", &[e], &ln.get(e, "weight")?.to_vec1::<f32>()?);
        let b = self
            .g
            .floats("ln_b", &[e], &ln.get(e, "bias")?.to_vec1::<f32>()?);
        Ok(self.g.node(
            "LayerNormalization",
            &[x, &w, &b],
            &[Attr::Int("axis", -1), Attr::Float("epsilon", self.eps)],
        ))
    }

    /// `parts` linear layers of the same input as one Gemm (weights stacked by output), each
    /// weight and bias scaled.
    pub(crate) fn gemm(
        &mut self,
        x: &str,
        parts: &[(String, f32)],
        d_in: usize,
        d_out: usize,
        role: Linear,
    ) -> candle_core::Result<String> {
        let (mut w, mut b) = (Vec::new(), Vec::new());
        for (prefix, scale) in parts {
            let l = self.vm.pp(prefix);
            w.extend(
                flat(l.get((d_out, d_in), "weight")?)?
                    .into_iter()
                    .map(|v| v * scale),
            );
            b.extend(
                l.get(d_out, "bias")?
                    .to_vec1::<f32>()?
                    .into_iter()
                    .map(|v| v * scale),
            );
        }
        let int8 = match role {
            Linear::Qkv => self.int8.qkv,
            Linear::Out => self.int8.out,
            Linear::Fc1 => self.int8.fc1,
            Linear::Fc2 => self.int8.fc2,
            Linear::Head => false,
        };
        if int8 {
            Ok(self.quantized_matmul(x, &w, &b, d_in))
        } else {
            Ok(self.gemm_of(x, &w, &b, d_in))
        }
    }

    /// `x · wᵀ + b` with `w` (`[b.len(), d_in]`) quantized per output channel and `x`
    /// quantized per tensor at run time: ONNX Runtime's `DynamicQuantizeMatMul`, the node its
    /// optimizer makes of `quantize_dynamic`'s DynamicQuantizeLinear → MatMulInteger → Mul.
    pub(crate) fn quantized_matmul(
        &mut self,
        x: &str,
        w: &[f32],
        b: &[f32],
        d_in: usize,
    ) -> String {
        let d_out = b.len();
        let (q, scales) = quantize_per_output_channel(w, d_in, d_out);
        let q = self.g.int8s("w_int8", &[d_in, d_out], &q);
        let scales = self.g.floats("w_scale", &[d_out], &scales);
        let zero = self.g.int8s("w_zero", &[d_out], &vec![0; d_out]);
        let b = self.g.floats("b", &[d_out], b);
        self.g.node_in(
            super::proto::MICROSOFT,
            "DynamicQuantizeMatMul",
            &[x, &q, &scales, &zero, &b],
            &[],
        )
    }

    /// A Gemm with weights `[b.len(), d_in]` as stored (`[out, in]`, transB) and bias `b`.
    pub(crate) fn gemm_of(&mut self, x: &str, w: &[f32], b: &[f32], d_in: usize) -> String {
        let w = self.g.floats("w", &[b.len(), d_in], w);
        let b = self.g.floats("b", &[b.len()], b);
        self.g.node("Gemm", &[x, &w, &b], &[Attr::Int("transB", 1)])
    }

    /// `h * gate(h)` for the MLP's activation.
    pub(crate) fn activate(&mut self, h: &str, activation: Activation) -> String {
        let g = &mut self.g;
        let c = self.constants.get_or_insert_with(|| match activation {
            Activation::QuickGelu => vec![g.floats("quick_gelu_alpha", &[], &[1.702])],
            Activation::Gelu => vec![
                g.floats("sqrt_half", &[], &[std::f32::consts::FRAC_1_SQRT_2]),
                g.floats("one", &[], &[1.0]),
                g.floats("half", &[], &[0.5]),
            ],
            Activation::GeluTanh => vec![
                g.floats("gelu_cubic", &[], &[0.044_715]),
                g.floats(
                    "sqrt_2_over_pi",
                    &[],
                    &[(2.0 / std::f32::consts::PI).sqrt()],
                ),
                g.floats("one", &[], &[1.0]),
                g.floats("half", &[], &[0.5]),
            ],
        });
        let gate = match activation {
            // quick_gelu(x) = x * sigmoid(1.702 x)
            Activation::QuickGelu => {
                let scaled = g.node("Mul", &[h, &c[0]], &[]);
                g.node("Sigmoid", &[&scaled], &[])
            }
            // gelu(x) = x * 0.5 * (1 + erf(x / sqrt 2)), exact as PyTorch's nn.GELU()
            Activation::Gelu => {
                let scaled = g.node("Mul", &[h, &c[0]], &[]);
                let erf = g.node("Erf", &[&scaled], &[]);
                let shifted = g.node("Add", &[&erf, &c[1]], &[]);
                g.node("Mul", &[&shifted, &c[2]], &[])
            }
            // gelu_tanh(x) = x * 0.5 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), SigLIP's
            Activation::GeluTanh => {
                let square = g.node("Mul", &[h, h], &[]);
                let cube = g.node("Mul", &[&square, h], &[]);
                let cubic = g.node("Mul", &[&cube, &c[0]], &[]);
                let inner = g.node("Add", &[h, &cubic], &[]);
                let scaled = g.node("Mul", &[&inner, &c[1]], &[]);
                let tanh = g.node("Tanh", &[&scaled], &[]);
                let shifted = g.node("Add", &[&tanh, &c[2]], &[]);
                g.node("Mul", &[&shifted, &c[3]], &[])
            }
        };
        g.node("Mul", &[h, &gate], &[])
    }

    /// `mlp.fc1`, the activation, `mlp.fc2` under `prefix`.
    pub(crate) fn mlp(
        &mut self,
        x: &str,
        prefix: &str,
        encoder: &EncoderConfig,
        part: Part,
    ) -> candle_core::Result<String> {
        let (e, inner) = (self.e, encoder.intermediate_size);
        let role = |layer| match part {
            Part::Encoder => layer,
            Part::PoolingHead => Linear::Head,
        };
        let h = self.gemm(
            x,
            &[(format!("{prefix}.mlp.fc1"), 1.0)],
            e,
            inner,
            role(Linear::Fc1),
        )?;
        let h = self.activate(&h, encoder.activation);
        self.gemm(
            &h,
            &[(format!("{prefix}.mlp.fc2"), 1.0)],
            inner,
            e,
            role(Linear::Fc2),
        )
    }

    /// Attention of queries `q` `[N, heads, queries, head_dim]` (already scaled) over keys and
    /// values `[N, heads, positions, head_dim]`: the context, `[N * queries, E]` rows.
    pub(crate) fn attend(&mut self, q: &str, k: &str, v: &str) -> String {
        let rows = self.g.ints("rows", &[2], &[-1, self.e as i64]);
        let g = &mut self.g;
        let k_t = g.node("Transpose", &[k], &[Attr::Ints("perm", &[0, 1, 3, 2])]);
        let scores = g.node("MatMul", &[q, &k_t], &[]);
        let probs = g.node("Softmax", &[&scores], &[Attr::Int("axis", -1)]);
        let context = g.node("MatMul", &[&probs, v], &[]);
        let context = g.node(
            "Transpose",
            &[&context],
            &[Attr::Ints("perm", &[0, 2, 1, 3])],
        );
        g.node("Reshape", &[&context, &rows], &[])
    }

    /// Rows `[N * positions, parts * E]` of stacked projections as `parts` tensors
    /// `[N, heads, positions, head_dim]`.
    pub(crate) fn split_heads<const PARTS: usize>(
        &mut self,
        x: &str,
        positions: usize,
        heads: usize,
    ) -> [String; PARTS] {
        let parts = PARTS;
        let head_dim = self.e / heads;
        let shape = self.g.ints(
            "heads_shape",
            &[5],
            &[
                -1,
                positions as i64,
                parts as i64,
                heads as i64,
                head_dim as i64,
            ],
        );
        let x = self.g.node("Reshape", &[x, &shape], &[]);
        let x = self
            .g
            .node("Transpose", &[&x], &[Attr::Ints("perm", &[2, 0, 3, 1, 4])]);
        std::array::from_fn(|i| {
            let index = self.g.ints("part", &[], &[i as i64]);
            self.g
                .node("Gather", &[&x, &index], &[Attr::Int("axis", 0)])
        })
    }

    /// The pre-LayerNorm encoder layers over `x` (`[N * positions, E]` rows). With
    /// `class_only_last`, the last layer computes only each image's first row (CLIP's class
    /// token, all its output reads): the same numbers, about 6% less work for ViT-B/32.
    pub(crate) fn encoder(
        &mut self,
        mut x: String,
        encoder: &EncoderConfig,
        positions: usize,
        class_only_last: bool,
    ) -> candle_core::Result<String> {
        let (e, heads) = (self.e, encoder.num_attention_heads);
        if encoder.num_hidden_layers == 0 {
            return Err(candle_core::Error::Msg(
                "the vision tower has no layers".into(),
            ));
        }
        let head_dim = e / heads;
        // Hugging Face scales the queries by head_dim^-0.5: folded into q_proj.
        let scale = (head_dim as f32).powf(-0.5);
        let last = encoder.num_hidden_layers - 1;
        for layer in 0..encoder.num_hidden_layers {
            let prefix = format!("encoder.layers.{layer}");
            let proj = |name: &str, scale: f32| (format!("{prefix}.self_attn.{name}_proj"), scale);
            let h = self.layer_norm(&x, &format!("{prefix}.layer_norm1"))?;
            let (q, k, v) = if layer < last || !class_only_last {
                let qkv = self.gemm(
                    &h,
                    &[proj("q", scale), proj("k", 1.0), proj("v", 1.0)],
                    e,
                    e,
                    Linear::Qkv,
                )?;
                let [q, k, v] = self.split_heads(&qkv, positions, heads);
                (q, k, v)
            } else {
                let kv = self.gemm(&h, &[proj("k", 1.0), proj("v", 1.0)], e, e, Linear::Qkv)?;
                let [k, v] = self.split_heads(&kv, positions, heads);
                let tokens = self
                    .g
                    .ints("tokens", &[3], &[-1, positions as i64, e as i64]);
                let first = self.g.ints("first", &[], &[0]);
                let all = self.g.node("Reshape", &[&x, &tokens], &[]);
                x = self
                    .g
                    .node("Gather", &[&all, &first], &[Attr::Int("axis", 1)]);
                let h = self.layer_norm(&x, &format!("{prefix}.layer_norm1"))?;
                let q = self.gemm(&h, &[proj("q", scale)], e, e, Linear::Qkv)?;
                let class_heads =
                    self.g
                        .ints("class_heads", &[4], &[-1, 1, heads as i64, head_dim as i64]);
                let q = self.g.node("Reshape", &[&q, &class_heads], &[]);
                let q = self
                    .g
                    .node("Transpose", &[&q], &[Attr::Ints("perm", &[0, 2, 1, 3])]);
                (q, k, v)
            };
            let context = self.attend(&q, &k, &v);
            let attended = self.gemm(&context, &[proj("out", 1.0)], e, e, Linear::Out)?;
            x = self.g.node("Add", &[&x, &attended], &[]);
            let h = self.layer_norm(&x, &format!("{prefix}.layer_norm2"))?;
            let h = self.mlp(&h, &prefix, encoder, Part::Encoder)?;
            x = self.g.node("Add", &[&x, &h], &[]);
        }
        Ok(x)
    }

    /// Patches of `pixel_values` by the convolution under `embeddings.patch_embedding`
    /// (stride = kernel = patch size), as `[N, patches, E]`.
    pub(crate) fn patches(
        &mut self,
        channels: usize,
        patch: usize,
        with_bias: bool,
    ) -> candle_core::Result<String> {
        self.patches_at("embeddings.patch_embedding", channels, patch, with_bias)
    }

    /// [`patches`](Self::patches) with the convolution under `prefix`.
    pub(crate) fn patches_at(
        &mut self,
        prefix: &str,
        channels: usize,
        patch: usize,
        with_bias: bool,
    ) -> candle_core::Result<String> {
        let (e, em) = (self.e, self.vm.pp(prefix));
        let kernel = flat(em.get((e, channels, patch, patch), "weight")?)?;
        let bias = if with_bias {
            Some(em.get(e, "bias")?.to_vec1::<f32>()?)
        } else {
            None
        };
        self.patches_of(&kernel, bias.as_deref(), channels, patch)
    }

    /// [`patches`](Self::patches) with the convolution's `kernel` (`[E, channels, patch,
    /// patch]`) and `bias` given.
    pub(crate) fn patches_of(
        &mut self,
        kernel: &[f32],
        bias: Option<&[f32]>,
        channels: usize,
        patch: usize,
    ) -> candle_core::Result<String> {
        let e = self.e;
        let w = self
            .g
            .floats("patch_w", &[e, channels, patch, patch], kernel);
        let mut inputs = vec!["pixel_values".to_string(), w];
        if let Some(bias) = bias {
            inputs.push(self.g.floats("patch_b", &[e], bias));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let p = patch as i64;
        let x = self.g.node(
            "Conv",
            &inputs,
            &[
                Attr::Ints("kernel_shape", &[p, p]),
                Attr::Ints("strides", &[p, p]),
            ],
        );
        let shape = self.g.ints("shape", &[3], &[0, e as i64, -1]);
        let x = self.g.node("Reshape", &[&x, &shape], &[]);
        Ok(self
            .g
            .node("Transpose", &[&x], &[Attr::Ints("perm", &[0, 2, 1])]))
    }
}

/// A writer of `weights`' vision tower, with `pixel_values [N, channels, height, width]`
/// declared.
pub(crate) fn writer<'a>(
    vb: &VarBuilder<'a>,
    encoder: &EncoderConfig,
    channels: usize,
    (height, width): (usize, usize),
    options: GraphOptions,
) -> Writer<'a> {
    let mut g = Graph::default();
    g.input(
        "pixel_values",
        &[None, Some(channels), Some(height), Some(width)],
    );
    Writer {
        g,
        vm: vb.pp("vision_model"),
        e: encoder.embed_dim,
        eps: encoder.layer_norm_eps as f32,
        constants: None,
        int8: options.int8,
    }
}

#[cfg(test)]
mod tests {
    use super::quantize_per_output_channel;

    #[test]
    fn weights_are_quantized_per_output_channel_symmetrically_and_transposed() {
        // Two outputs (rows) of three inputs: each row gets its own scale, max|w| / 127.
        let w = [0.5, -1.27, 0.0, 254.0, 127.0, -63.5];
        let (q, scales) = quantize_per_output_channel(&w, 3, 2);
        assert_eq!(scales, vec![0.01, 2.0]);
        // [in, out]: column 0 is row 0 of w. 0.5 / 0.01 = 50; -1.27 / 0.01 = -127;
        // 127 / 2 = 63.5 and -63.5 / 2 = -31.75: half to even gives 64 (as numpy's round).
        assert_eq!(q, vec![50, 127, -127, 64, 0, -32]);
        // A row of zeros gets scale 1 (as onnxruntime's compute_scale_zp), not a division by 0.
        let (q, scales) = quantize_per_output_channel(&[0.0, 0.0], 2, 1);
        assert_eq!((q, scales), (vec![0, 0], vec![1.0]));
    }
}
