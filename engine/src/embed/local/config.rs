//! Why a model folder cannot be loaded ([`ModelError`]), and its identity without loading it.
//! Each family reads its own configuration (`families/`), refusing what its towers cannot
//! compute exactly.

use std::path::{Path, PathBuf};

use super::family::Family;
use crate::embed::ModelIdentity;

#[derive(Clone, Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the CLIP model folder {folder} lacks {missing}.\n  Put the Hugging Face files {files} of the model (e.g. openai/clip-vit-base-patch32) in that folder (or open_clip's {open_clip}), or point --model / `model:` at a folder that has them.", files = super::families::hf::REQUIRED_FILES.join(", "), open_clip = super::OPEN_CLIP_FILES.join(" and "))]
    MissingFiles { folder: PathBuf, missing: String },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path} cannot be used: {message}")]
    Unsupported { path: PathBuf, message: String },
    #[error("cannot load the weights in {path}: {message}")]
    Weights { path: PathBuf, message: String },
    #[error("cannot load the tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{message}")]
    Runtime { message: String },
}

impl ModelError {
    /// A weights file candle cannot read or build a tower from.
    pub(crate) fn weights(path: &Path, error: impl std::fmt::Display) -> Self {
        ModelError::Weights {
            path: path.into(),
            message: error.to_string(),
        }
    }
}

/// The identity [`LocalClip::load_named`](super::LocalClip::load_named) would give, without
/// loading the weights: the embedding size from the family's configuration and a fingerprint of
/// its weights file.
pub fn identity_of(folder: &Path, name: &str) -> Result<ModelIdentity, ModelError> {
    identity(super::families::read(folder)?.as_ref(), name)
}

/// A model's identity: `name`, the fingerprint of its weights, its embedding size.
pub(crate) fn identity(family: &dyn Family, name: &str) -> Result<ModelIdentity, ModelError> {
    let weights = family.weights_file();
    let fingerprint =
        store::cache::VideoFingerprint::of_file(weights).map_err(|e| ModelError::Weights {
            path: weights.into(),
            message: e.to_string(),
        })?;
    Ok(ModelIdentity {
        name: name.to_string(),
        revision: fingerprint.short(),
        dimension: family.dimension(),
    })
}
