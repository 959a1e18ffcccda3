//! The text tower: a family's text transformer on candle, run on batches of tokenised prompts.

use candle_core::{Device, Tensor};

use super::family::TextModel;
use super::tokenize::Tokens;
use crate::embed::EmbedError;

pub(super) struct TextTower {
    model: Box<dyn TextModel>,
}

impl TextTower {
    pub(super) fn new(model: Box<dyn TextModel>) -> Self {
        Self { model }
    }

    /// L2-normalised embeddings of tokenised prompts.
    pub(super) fn embed(
        &self,
        tokens: &[Tokens],
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        // With a causal mask no position sees later ones, so the end token's output (the text's
        // embedding) does not depend on the padding after it: run only up to the last end token
        // of the batch instead of the whole context. A tower without one runs it all.
        let context = tokens.iter().map(|t| t.ids.len()).min().unwrap_or(0);
        let length = if self.model.reads_whole_context() {
            context
        } else {
            tokens
                .iter()
                .map(|t| t.end + 1)
                .max()
                .unwrap_or(context)
                .min(context)
        };
        let ids: Vec<u32> = tokens
            .iter()
            .flat_map(|t| t.ids[..length].iter().copied())
            .collect();
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (tokens.len(), length), device)?;
            let ends: Vec<usize> = tokens.iter().map(|t| t.end).collect();
            self.model.forward(&ids, &ends)?.to_vec2::<f32>()
        };
        let mut vectors = run().map_err(|e| EmbedError::Model(format!("text model: {e}")))?;
        vectors
            .iter_mut()
            .for_each(|v| crate::embed::l2_normalize(v));
        Ok(vectors)
    }
}
