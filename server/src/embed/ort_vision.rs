//! CLIP's image tower on ONNX Runtime: the graph is written from the same Hugging Face
//! safetensors the candle path reads (no export step, no second copy of the model on disk),
//! and ONNX Runtime's CPU kernels run it. `libonnxruntime.so` is loaded at run time from
//! `ORT_DYLIB_PATH` (scripts/setup.sh installs it from PyPI's onnxruntime wheel).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::embed::local::model::{Activation, VisionConfig};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ort::session::{builder::GraphOptimizationLevel, Session};

use super::onnx_proto::{Attr, Graph};

/// Where the library is looked for when `ORT_DYLIB_PATH` is not set.
pub fn default_library_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/clip-investigator/onnxruntime/libonnxruntime.so")
}

/// The library this process uses: `ORT_DYLIB_PATH`, else [`default_library_path`].
pub fn library_path() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(default_library_path)
}

/// ONNX Runtime allows one environment per process: loaded once, shared by all sessions.
fn environment() -> Result<&'static ort::environment::Environment, String> {
    static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = library_path();
            if !path.exists() {
                return Err(format!(
                    "ONNX Runtime's library is not at {} (run scripts/setup.sh, or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.22 or later)",
                    path.display()
                ));
            }
            ort::init_from(&path)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
                .with_name("clip-investigator")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime ({}): {e}", path.display()))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether ONNX Runtime can be loaded in this process (loads it on first call).
pub fn available() -> Result<(), String> {
    environment().map(|_| ())
}

/// The image tower as an ONNX Runtime session: `pixel_values [N, 3, H, W]` in,
/// un-normalised `image_embeds [N, projection_dim]` out.
pub struct OrtVision {
    session: Mutex<Session>,
    image_size: usize,
    dimension: usize,
}

impl OrtVision {
    /// Builds the graph from `weights` (vision tower + `visual_projection`) and starts a session
    /// that uses `threads` cores.
    pub fn load(weights: &Path, config: &VisionConfig, threads: usize) -> Result<Self, String> {
        let environment = environment()?;
        let model = vision_graph(weights, config)
            .map_err(|e| format!("cannot read {} for ONNX Runtime: {e}", weights.display()))?;
        // For inspection (Netron, onnxruntime in Python): the graph exactly as it is run.
        if let Some(path) = std::env::var_os("CLIP_INVESTIGATOR_SAVE_ONNX") {
            std::fs::write(&path, &model)
                .map_err(|e| format!("CLIP_INVESTIGATOR_SAVE_ONNX: cannot write {path:?}: {e}"))?;
        }
        let session = Session::builder(environment)
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::Level3)
                    .map_err(Into::into)
            })
            .and_then(|b| {
                b.with_log_level(ort::logging::LogLevel::Warning)
                    .map_err(Into::into)
            })
            .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
            // Smaller work blocks balance the two threads when the decoder thread takes a core
            // for a moment during indexing: measured 14.4 -> 15.3 frames/s end to end.
            .and_then(|b| b.with_dynamic_block_base(4).map_err(Into::into))
            .and_then(|mut b| b.commit_from_memory(&model))
            .map_err(|e| format!("ONNX Runtime refused the CLIP image graph: {e}"))?;
        Ok(Self {
            session: Mutex::new(session),
            image_size: config.image_size,
            dimension: config.projection_dim,
        })
    }

    /// Image embeddings (not normalised) of preprocessed images, `3 * size * size` floats each.
    pub fn embed(&self, images: &[&[f32]]) -> Result<Vec<Vec<f32>>, String> {
        let size = self.image_size;
        let flat: Vec<f32> = images.iter().flat_map(|i| i.iter()).copied().collect();
        let input = ort::value::Tensor::from_array(([images.len(), 3, size, size], flat))
            .map_err(|e| e.to_string())?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs!["pixel_values" => input])
            .map_err(|e| format!("ONNX Runtime: {e}"))?;
        let (_, values) = outputs["image_embeds"]
            .try_extract_tensor::<f32>()
            .map_err(|e| e.to_string())?;
        if values.len() != images.len() * self.dimension {
            return Err(format!(
                "ONNX Runtime returned {} values for {} images of dimension {}",
                values.len(),
                images.len(),
                self.dimension
            ));
        }
        Ok(values.chunks(self.dimension).map(<[f32]>::to_vec).collect())
    }
}

/// The ONNX model (opset 17) of CLIP's image tower, mirroring Hugging Face's
/// `CLIPVisionModelWithProjection`, with the checkpoint's weights as initializers.
pub fn vision_graph(weights: &Path, c: &VisionConfig) -> candle_core::Result<Vec<u8>> {
    // SAFETY: read-only memory map of a file the app never writes.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu)? };
    let encoder = &c.encoder;
    let (e, heads) = (encoder.embed_dim, encoder.num_attention_heads);
    let eps = encoder.layer_norm_eps as f32;
    let head_dim = e / heads;
    let patches = (c.image_size / c.patch_size).pow(2);
    let positions = patches + 1;
    let flat = |t: Tensor| -> candle_core::Result<Vec<f32>> { t.flatten_all()?.to_vec1::<f32>() };
    // Stored [out, in]; MatMul wants [in, out].
    let transposed = |t: Tensor| -> candle_core::Result<Vec<f32>> { flat(t.t()?.contiguous()?) };

    let mut g = Graph::default();
    g.input(
        "pixel_values",
        &[
            None,
            Some(c.num_channels),
            Some(c.image_size),
            Some(c.image_size),
        ],
    );

    // Patches: a convolution with stride = kernel = patch size, then [N, patches, E].
    let vm = vb.pp("vision_model");
    let em = vm.pp("embeddings");
    let conv_w = em.get(
        (e, c.num_channels, c.patch_size, c.patch_size),
        "patch_embedding.weight",
    )?;
    let conv_w = g.floats(
        "patch_w",
        &[e, c.num_channels, c.patch_size, c.patch_size],
        &flat(conv_w)?,
    );
    let p = c.patch_size as i64;
    let x = g.node(
        "Conv",
        &["pixel_values", &conv_w],
        &[
            Attr::Ints("kernel_shape", &[p, p]),
            Attr::Ints("strides", &[p, p]),
        ],
    );
    let shape = g.ints("shape", &[3], &[0, e as i64, -1]);
    let x = g.node("Reshape", &[&x, &shape], &[]);
    let x = g.node("Transpose", &[&x], &[Attr::Ints("perm", &[0, 2, 1])]);
    // A zero row in front of the patches, then one constant adds both the class embedding
    // (to that row) and the position embeddings: no batch-sized Expand/Concat needed.
    let pads = g.ints("pads", &[6], &[0, 1, 0, 0, 0, 0]);
    let x = g.node("Pad", &[&x, &pads], &[]);
    let class = em.get(e, "class_embedding")?.to_vec1::<f32>()?;
    let mut added = flat(em.get((positions, e), "position_embedding.weight")?)?;
    added[..e].iter_mut().zip(&class).for_each(|(a, c)| *a += c);
    let added = g.floats("class_pos", &[positions, e], &added);
    let x = g.node("Add", &[&x, &added], &[]);

    // From here the hidden state is 2-D, [N * positions, E], so that every linear layer is
    // one Gemm with its bias fused and its weights as stored ([out, in], transB).
    let rows = g.ints("rows", &[2], &[-1, e as i64]);
    let mut x = g.node("Reshape", &[&x, &rows], &[]);
    let layer_norm = |g: &mut Graph, x: &str, prefix: &str| -> candle_core::Result<String> {
        let ln = vm.pp(prefix);
        let w = g.floats("ln_w", &[e], &ln.get(e, "weight")?.to_vec1::<f32>()?);
        let b = g.floats("ln_b", &[e], &ln.get(e, "bias")?.to_vec1::<f32>()?);
        Ok(g.node(
            "LayerNormalization",
            &[x, &w, &b],
            &[Attr::Int("axis", -1), Attr::Float("epsilon", eps)],
        ))
    };
    // `parts` linear layers of the same input as one Gemm (weights stacked by output).
    let gemm = |g: &mut Graph,
                x: &str,
                parts: &[(String, f32)],
                d_in: usize,
                d_out: usize|
     -> candle_core::Result<String> {
        let (mut w, mut b) = (Vec::new(), Vec::new());
        for (prefix, scale) in parts {
            let l = vm.pp(prefix);
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
        let n = parts.len() * d_out;
        let w = g.floats("w", &[n, d_in], &w);
        let b = g.floats("b", &[n], &b);
        Ok(g.node("Gemm", &[x, &w, &b], &[Attr::Int("transB", 1)]))
    };

    x = layer_norm(&mut g, &x, "pre_layrnorm")?;
    if encoder.num_hidden_layers == 0 {
        return Err(candle_core::Error::Msg(
            "the vision tower has no layers".into(),
        ));
    }
    let qkv_shape = g.ints(
        "qkv_shape",
        &[5],
        &[-1, positions as i64, 3, heads as i64, head_dim as i64],
    );
    // The activation's constants: only those its nodes use (ONNX Runtime warns of others).
    let constants: Vec<String> = match encoder.activation {
        Activation::QuickGelu => vec![g.floats("quick_gelu_alpha", &[], &[1.702])],
        Activation::Gelu => vec![
            g.floats("sqrt_half", &[], &[std::f32::consts::FRAC_1_SQRT_2]),
            g.floats("one", &[], &[1.0]),
            g.floats("half", &[], &[0.5]),
        ],
        // Only SigLIP uses it, and SigLIP's tower is not written as a graph.
        Activation::GeluTanh => {
            return Err(candle_core::Error::Msg(
                "the ONNX graph is written for quick_gelu and gelu only".into(),
            ))
        }
    };
    let (q_index, k_index, v_index) = (
        g.ints("q", &[], &[0]),
        g.ints("k", &[], &[1]),
        g.ints("v", &[], &[2]),
    );
    let tokens = g.ints("tokens", &[3], &[-1, positions as i64, e as i64]);
    let first = g.ints("first", &[], &[0]);
    let kv_shape = g.ints(
        "kv_shape",
        &[5],
        &[-1, positions as i64, 2, heads as i64, head_dim as i64],
    );
    let class_heads = g.ints("class_heads", &[4], &[-1, 1, heads as i64, head_dim as i64]);
    // Hugging Face scales the queries by head_dim^-0.5 after q_proj: folded into q_proj.
    let scale = (head_dim as f32).powf(-0.5);
    let last = encoder.num_hidden_layers.saturating_sub(1);
    for layer in 0..encoder.num_hidden_layers {
        let prefix = format!("encoder.layers.{layer}");
        let proj = |name: &str, scale: f32| (format!("{prefix}.self_attn.{name}_proj"), scale);
        let h = layer_norm(&mut g, &x, &format!("{prefix}.layer_norm1"))?;
        let (q, k, v) = if layer < last {
            // [N * positions, 3E] -> [N, positions, 3, heads, head_dim] -> [3, N, heads, positions, head_dim]
            let qkv = gemm(
                &mut g,
                &h,
                &[proj("q", scale), proj("k", 1.0), proj("v", 1.0)],
                e,
                e,
            )?;
            let qkv = g.node("Reshape", &[&qkv, &qkv_shape], &[]);
            let qkv = g.node(
                "Transpose",
                &[&qkv],
                &[Attr::Ints("perm", &[2, 0, 3, 1, 4])],
            );
            let q = g.node("Gather", &[&qkv, &q_index], &[Attr::Int("axis", 0)]);
            let k = g.node("Gather", &[&qkv, &k_index], &[Attr::Int("axis", 0)]);
            let v = g.node("Gather", &[&qkv, &v_index], &[Attr::Int("axis", 0)]);
            (q, k, v)
        } else {
            // The output reads only the class token, so the last layer computes the rest
            // (query, attention output, MLP) for that row alone; keys and values still come
            // from every position. The same numbers, about 6% less work for ViT-B/32.
            let kv = gemm(&mut g, &h, &[proj("k", 1.0), proj("v", 1.0)], e, e)?;
            let kv = g.node("Reshape", &[&kv, &kv_shape], &[]);
            let kv = g.node("Transpose", &[&kv], &[Attr::Ints("perm", &[2, 0, 3, 1, 4])]);
            let k = g.node("Gather", &[&kv, &q_index], &[Attr::Int("axis", 0)]);
            let v = g.node("Gather", &[&kv, &k_index], &[Attr::Int("axis", 0)]);
            let all = g.node("Reshape", &[&x, &tokens], &[]);
            x = g.node("Gather", &[&all, &first], &[Attr::Int("axis", 1)]);
            let h = layer_norm(&mut g, &x, &format!("{prefix}.layer_norm1"))?;
            let q = gemm(&mut g, &h, &[proj("q", scale)], e, e)?;
            let q = g.node("Reshape", &[&q, &class_heads], &[]);
            let q = g.node("Transpose", &[&q], &[Attr::Ints("perm", &[0, 2, 1, 3])]);
            (q, k, v)
        };
        let k_t = g.node("Transpose", &[&k], &[Attr::Ints("perm", &[0, 1, 3, 2])]);
        let scores = g.node("MatMul", &[&q, &k_t], &[]);
        let probs = g.node("Softmax", &[&scores], &[Attr::Int("axis", -1)]);
        let context = g.node("MatMul", &[&probs, &v], &[]);
        let context = g.node(
            "Transpose",
            &[&context],
            &[Attr::Ints("perm", &[0, 2, 1, 3])],
        );
        let context = g.node("Reshape", &[&context, &rows], &[]);
        let attended = gemm(&mut g, &context, &[proj("out", 1.0)], e, e)?;
        x = g.node("Add", &[&x, &attended], &[]);

        let h = layer_norm(&mut g, &x, &format!("{prefix}.layer_norm2"))?;
        let h = gemm(
            &mut g,
            &h,
            &[(format!("{prefix}.mlp.fc1"), 1.0)],
            e,
            encoder.intermediate_size,
        )?;
        let gate = match encoder.activation {
            // quick_gelu(x) = x * sigmoid(1.702 x)
            Activation::QuickGelu => {
                let scaled = g.node("Mul", &[&h, &constants[0]], &[]);
                g.node("Sigmoid", &[&scaled], &[])
            }
            // gelu(x) = x * 0.5 * (1 + erf(x / sqrt 2)), exact as PyTorch's nn.GELU()
            Activation::Gelu => {
                let scaled = g.node("Mul", &[&h, &constants[0]], &[]);
                let erf = g.node("Erf", &[&scaled], &[]);
                let shifted = g.node("Add", &[&erf, &constants[1]], &[]);
                g.node("Mul", &[&shifted, &constants[2]], &[])
            }
            Activation::GeluTanh => unreachable!("refused with the constants"),
        };
        let h = g.node("Mul", &[&h, &gate], &[]);
        let h = gemm(
            &mut g,
            &h,
            &[(format!("{prefix}.mlp.fc2"), 1.0)],
            encoder.intermediate_size,
            e,
        )?;
        x = g.node("Add", &[&x, &h], &[]);
    }

    // x is now the class token's row per image: post-LayerNorm, projected.
    let pooled = layer_norm(&mut g, &x, "post_layernorm")?;
    let projection = transposed(vb.get((c.projection_dim, e), "visual_projection.weight")?)?;
    let projection = g.floats("visual_projection", &[e, c.projection_dim], &projection);
    let embeds = g.node("MatMul", &[&pooled, &projection], &[]);
    g.output(&embeds, "image_embeds", &[None, Some(c.projection_dim)]);
    Ok(g.into_model(17))
}
