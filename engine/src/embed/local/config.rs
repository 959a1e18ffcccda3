//! Why a model folder cannot be loaded ([`ModelError`]). Each family reads its own
//! configuration (`families/`), refusing what its towers cannot compute exactly.

use std::path::{Path, PathBuf};

#[derive(Clone, Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the CLIP model folder {folder} lacks {missing}.\n  Put the Hugging Face files {files} of the model (e.g. openai/clip-vit-base-patch32) in that folder (or open_clip's {open_clip}), or point --model / `model:` at a folder that has them.", files = super::REQUIRED_FILES.join(", "), open_clip = super::OPEN_CLIP_FILES.join(" and "))]
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
