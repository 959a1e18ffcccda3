//! The text tower: CLIP's tokenizer (byte-pair tokens between start and end, padded to the
//! 77-token context) and the text transformer with its projection, on candle.

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

use super::model::{TextConfig, TextTransformer};

use super::config::{ModelError, CONTEXT_LENGTH};
use crate::embed::EmbedError;

/// Token ids of one prompt, padded to the context, and whether it had to be cut.
#[derive(Clone, Debug, PartialEq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    /// Position of the end token, where CLIP reads the text's embedding.
    pub end: usize,
    pub truncated: bool,
}

/// `tokenizer.json` and the ids of its start and end tokens.
pub(super) struct ClipTokenizer {
    tokenizer: tokenizers::Tokenizer,
    start_token: u32,
    end_token: u32,
}

impl ClipTokenizer {
    /// Reads `tokenizer.json`, refusing one that is not CLIP's or does not fit the model's
    /// vocabulary of `vocab_size` tokens.
    pub(super) fn load(path: &Path, vocab_size: usize) -> Result<Self, ModelError> {
        let tokenizer =
            tokenizers::Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
                path: path.into(),
                message: e.to_string(),
            })?;
        let token = |name: &str| {
            tokenizer
                .token_to_id(name)
                .ok_or_else(|| ModelError::Tokenizer {
                    path: path.into(),
                    message: format!("it has no {name} token: is it a CLIP tokenizer?"),
                })
        };
        let (start_token, end_token) = (token("<|startoftext|>")?, token("<|endoftext|>")?);
        if tokenizer.get_vocab_size(true) > vocab_size {
            return Err(ModelError::Tokenizer {
                path: path.into(),
                message: format!(
                    "{} tokens, more than the model's vocabulary of {vocab_size}",
                    tokenizer.get_vocab_size(true),
                ),
            });
        }
        Ok(Self {
            tokenizer,
            start_token,
            end_token,
        })
    }

    /// CLIP tokens of `text`: start, the BPE tokens (cut to fit), end, then padding.
    ///
    /// Padding uses id 0. It does not change the result: the text's embedding is read at the
    /// end token, and the causal mask hides later positions from it.
    pub(super) fn tokenize(&self, text: &str) -> Result<Tokens, EmbedError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        let mut body: Vec<u32> = encoding
            .get_ids()
            .iter()
            .copied()
            .filter(|&id| id != self.start_token && id != self.end_token)
            .collect();
        let truncated = body.len() > CONTEXT_LENGTH - 2;
        body.truncate(CONTEXT_LENGTH - 2);
        let mut ids = Vec::with_capacity(CONTEXT_LENGTH);
        ids.push(self.start_token);
        ids.extend(body);
        ids.push(self.end_token);
        let end = ids.len() - 1;
        ids.resize(CONTEXT_LENGTH, 0);
        Ok(Tokens {
            ids,
            end,
            truncated,
        })
    }
}

/// The text transformer (`text_model.*`) and `text_projection`.
pub(super) struct TextTower {
    model: TextTransformer,
}

impl TextTower {
    pub(super) fn load(
        vb: &VarBuilder,
        weights: &Path,
        config: &TextConfig,
    ) -> Result<Self, ModelError> {
        Ok(Self {
            model: TextTransformer::new(vb, config).map_err(|e| ModelError::weights(weights, e))?,
        })
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
        // The causal mask keeps every position from seeing later ones, so the end token's
        // output (the text's embedding) does not depend on the padding after it: run only up
        // to the last end token of the batch instead of all 77 positions.
        let length = tokens
            .iter()
            .map(|t| t.end + 1)
            .max()
            .unwrap_or(CONTEXT_LENGTH);
        let ids: Vec<u32> = tokens
            .iter()
            .flat_map(|t| t.ids[..length].iter().copied())
            .collect();
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let ids = Tensor::from_vec(ids, (tokens.len(), length), device)?;
            let ends: Vec<usize> = tokens.iter().map(|t| t.end).collect();
            self.model.forward(&ids, &ends)?.to_vec2::<f32>()
        };
        let mut vectors = run().map_err(|e| EmbedError::Model(format!("CLIP text model: {e}")))?;
        vectors
            .iter_mut()
            .for_each(|v| crate::embed::l2_normalize(v));
        Ok(vectors)
    }
}
