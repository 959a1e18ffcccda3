//! Why a frame scores high for a prompt: gradient-weighted attention relevance (Chefer, Gur and
//! Wolf, ICCV 2021, "Generic Attention-model Explainability for Interpreting Bi-Modal and
//! Encoder-Decoder Transformers"), as its authors compute it for CLIP.
//!
//! The score is the model's logit for the prompt: `logit_scale · cos(image, text)` (SigLIP adds
//! its `logit_bias`). For each vision layer `l` from `start_layer` to the last: `A_l` are the
//! attention probabilities (heads x tokens x tokens), `G_l = ∂score/∂A_l`, and
//! `Ā_l = mean over heads of max(G_l ⊙ A_l, 0)`; `R` starts as the identity and becomes
//! `R + Ā_l · R`. CLIP: the relevance of the patches is the class token's row of `R` without the
//! class token itself. SigLIP has no class token: its row is the pooling head's, defined the
//! same way — `r = mean over heads of max(G ⊙ A, 0)` for the head's attention `A` (its one
//! query over the patches) and its gradient `G`, applied to `R` — so the relevance is `r · R`.
//! PE-Core's head attends over its class token too: `r · R` without the class token's entry.
//!
//! Invariants: computed on candle (ONNX Runtime has no gradients), in f32 on one image; the
//! towers here are the ones that embed (the same weights, the same ops but softmax and layer
//! norm, which run as the composite ops autograd can go through); `server/tests/it/explain.rs`
//! holds the result against PyTorch + transformers (eager attention, autograd) for every
//! `start_layer`.

use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Tensor};

use super::family::{ImageModel, Pooling};
use super::layers::{AttentionTaps, Pass};
use crate::embed::Relevance;

/// An image tower that explains its scores: any family's candle tower.
pub(crate) struct ExplainTower(pub(crate) Arc<dyn ImageModel>);

impl ExplainTower {
    pub fn layers(&self) -> usize {
        self.0.layers()
    }

    /// The relevance of `pixels` (`[1, 3, h, w]`, preprocessed) for the L2-normalised `text`
    /// embedding; `start_layer` from 0 to `layers() - 1`.
    pub fn relevance(
        &self,
        pixels: &Tensor,
        text: &[f32],
        logit_scale: f32,
        logit_bias: Option<f32>,
        start_layer: usize,
    ) -> candle_core::Result<Relevance> {
        let layers = self.layers();
        if start_layer >= layers {
            candle_core::bail!(
                "start layer {start_layer} is past the last layer ({})",
                layers - 1
            );
        }
        let mut taps = AttentionTaps::new(start_layer);
        let embedding = self.0.forward(pixels, &mut Pass::Traced(&mut taps))?;
        let device = pixels.device();
        let text = Tensor::from_slice(text, (1, text.len()), device)?;
        let norm = embedding.sqr()?.sum_keepdim(1)?.sqrt()?;
        let cosine = embedding.broadcast_div(&norm)?.mul(&text)?.sum_all()?;
        let logit = ((&cosine * f64::from(logit_scale))? + f64::from(logit_bias.unwrap_or(0.0)))?;
        let grads = logit.backward()?;
        let tokens = taps
            .layers
            .first()
            .map(|(a, _)| a.dim(3))
            .transpose()?
            .unwrap_or(0);
        // Ā = mean over heads of max(G ⊙ A, 0).
        let weighted = |a: &Tensor, zero: &candle_core::Var| -> candle_core::Result<Tensor> {
            let g = grads
                .get(zero.as_tensor())
                .cloned()
                .unwrap_or(zero.as_tensor().zeros_like()?);
            (g * a)?.relu()?.mean(1)?.i(0)
        };
        let mut r = Tensor::eye(tokens, DType::F32, device)?;
        for (a, zero) in &taps.layers {
            let cam = weighted(a, zero)?;
            r = (&r + cam.matmul(&r)?)?;
        }
        let row = match (self.0.pooling(), &taps.head) {
            (Pooling::ClassToken, _) => r.i((0, 1..))?,
            (Pooling::Head { prefix_tokens }, Some((a, zero))) => {
                let row = weighted(a, zero)?.matmul(&r)?.i(0)?;
                row.narrow(0, prefix_tokens, tokens - prefix_tokens)?
            }
            (Pooling::Head { .. }, None) => candle_core::bail!("the pooling head was not traced"),
        };
        let values = row.to_vec1::<f32>()?;
        // The patch grid: square patches tile the input, so the patch side is
        // sqrt(pixels / patches) (NaFlex inputs are not square).
        let (_, _, height, width) = pixels.dims4()?;
        let patch = ((height * width) as f64 / values.len().max(1) as f64)
            .sqrt()
            .round() as usize;
        let (rows, cols) = (height / patch.max(1), width / patch.max(1));
        if rows * cols != values.len() {
            candle_core::bail!(
                "{} patch relevances do not tile a {width}x{height} input",
                values.len()
            );
        }
        Ok(Relevance {
            rows,
            cols,
            values,
            logit: logit.to_scalar::<f32>()?,
            cosine: cosine.to_scalar::<f32>()?,
            layers,
            start_layer,
            // The caller knows the frame, and where the model's input lies in it.
            crop: (0.0, 0.0, 0.0, 0.0),
        })
    }
}

/// The preprocessed image as the tower's input tensor.
pub fn pixels(
    image: &[f32],
    height: usize,
    width: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    Tensor::from_slice(image, (1, 3, height, width), device)
}
