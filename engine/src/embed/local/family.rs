//! What a model family is to the engine: the one trait a family implements ([`Family`]), with
//! its towers ([`ImageModel`], [`TextModel`]) and its tokenizer ([`TextTokenizer`]). Everything
//! outside `families/` sees models only through these; `families/mod.rs` picks the family from
//! the files in a model folder.
//!
//! Invariants:
//! - A family's weights reach the towers under the names its towers read (a family whose files
//!   name them otherwise renames them on load); the candle towers and the ONNX graph read the
//!   same `VarBuilder`, so both runtimes compute the same model.
//! - A configuration a family cannot compute exactly is refused when the folder is read, with
//!   the field's name, never run approximately.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

use super::config::ModelError;
use super::layers::Pass;
use super::onnx::GraphOptions;
use super::tokenize::TextTokenizer;
use crate::embed::preprocess::PreprocessConfig;

/// A model family read from a folder: its configuration, preprocessing and files.
pub(crate) trait Family: Send + Sync {
    /// The family's name for messages: "CLIP", "SigLIP", …
    fn name(&self) -> &'static str;

    /// The size of both towers' embeddings.
    fn dimension(&self) -> usize;

    /// The weights file: the model's identity is its fingerprint.
    fn weights_file(&self) -> &Path;

    /// How a frame becomes the image tower's input.
    fn preprocess(&self) -> &PreprocessConfig;

    /// The family's tokenizer, from the folder's files.
    fn tokenizer(&self) -> Result<Box<dyn TextTokenizer>, ModelError>;

    /// The weights under the names the towers read, checked to be this family's.
    fn weights(&self, device: &Device) -> Result<VarBuilder<'static>, ModelError>;

    /// The text tower on candle.
    fn text_tower(&self, vb: &VarBuilder) -> candle_core::Result<Box<dyn TextModel>>;

    /// The image tower on candle (shared between embedding and explaining).
    fn image_tower(&self, vb: &VarBuilder) -> candle_core::Result<Arc<dyn ImageModel>>;

    /// The image tower as an ONNX graph (`pixel_values` in, `image_embeds` out) for inputs of
    /// `(height, width)` (a fixed-size family's own), fp32 or with int8 layers as `options`
    /// says.
    fn image_graph(
        &self,
        vb: &VarBuilder,
        options: GraphOptions,
        input: (usize, usize),
    ) -> candle_core::Result<Vec<u8>>;

    /// How scores become probabilities, with the learned scalars read from `vb`.
    fn head(&self, vb: &VarBuilder) -> Result<ProbabilityHead, ModelError>;
}

/// How a model turns the cosine similarity of an image and a prompt into a probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProbabilityHead {
    /// CLIP: a softmax over the prompts of `scale · cos`.
    Softmax { scale: f32 },
    /// SigLIP: each prompt on its own, `sigmoid(scale · cos + bias)`.
    Sigmoid { scale: f32, bias: f32 },
}

impl ProbabilityHead {
    /// The multiplier of the cosine in the logit.
    pub fn scale(&self) -> f32 {
        match *self {
            Self::Softmax { scale } | Self::Sigmoid { scale, .. } => scale,
        }
    }

    /// The sigmoid's bias; `None` for a softmax.
    pub fn bias(&self) -> Option<f32> {
        match *self {
            Self::Softmax { .. } => None,
            Self::Sigmoid { bias, .. } => Some(bias),
        }
    }
}

/// Where an image tower's output comes from, which says how relevance reaches the patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The class token's row (CLIP): relevance is that row of the rollout, patches only.
    ClassToken,
    /// An attention-pooling head over the tokens (SigLIP's over the patches, PE-Core's over
    /// its class token and the patches), whose one query's attention is tapped as the head's;
    /// the first `prefix_tokens` tokens are not patches.
    Head { prefix_tokens: usize },
}

/// An image tower on candle: preprocessed pixels `[batch, channels, h, w]` → embeddings (not
/// yet L2-normalised).
pub(crate) trait ImageModel: Send + Sync {
    /// The forward pass, fast or traced as `pass` says.
    fn forward(&self, pixels: &Tensor, pass: &mut Pass) -> candle_core::Result<Tensor>;

    /// Transformer layers in the tower (a pooling head not counted).
    fn layers(&self) -> usize;

    fn pooling(&self) -> Pooling;
}

/// A text tower on candle: token ids `[batch, length]` and each row's pooled position →
/// embeddings (not yet L2-normalised).
pub(crate) trait TextModel: Send + Sync {
    fn forward(&self, ids: &Tensor, at: &[usize]) -> candle_core::Result<Tensor>;

    /// Whether a row's embedding depends on the positions after its pooled one (no causal
    /// mask): then every batch runs the whole context.
    fn reads_whole_context(&self) -> bool;
}
