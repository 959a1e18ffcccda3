//! What the families in Hugging Face's transformers layout share: the files such a folder holds,
//! `config.json`'s `model_type`, `preprocessor_config.json`, and the weights memory-mapped from
//! `model.safetensors` and checked to be the family's.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::Deserialize;

use crate::embed::local::config::ModelError;
use crate::embed::local::{REQUIRED_FILES, TOKENIZER_ALTERNATIVE};
use crate::embed::preprocess::PreprocessConfig;

/// The required files `folder` lacks (`tokenizer.json` is there if `spiece.model` is).
pub(crate) fn missing_files(folder: &Path) -> Vec<&'static str> {
    REQUIRED_FILES
        .iter()
        .copied()
        .filter(|f| {
            let present = folder.join(f).is_file()
                || (*f == "tokenizer.json" && folder.join(TOKENIZER_ALTERNATIVE).is_file());
            !present
        })
        .collect()
}

/// `config.json` of a folder in Hugging Face layout: its path and text, or `None` where the
/// folder has none.
pub(crate) fn config_json(folder: &Path) -> Option<Result<(PathBuf, String), ModelError>> {
    let path = folder.join("config.json");
    if !path.is_file() {
        return None;
    }
    Some(
        std::fs::read_to_string(&path)
            .map(|text| (path.clone(), text))
            .map_err(|e| ModelError::Config {
                path,
                message: e.to_string(),
            }),
    )
}

/// `config.json`'s `model_type`, if it names one.
pub(crate) fn model_type(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Kind {
        model_type: Option<String>,
    }
    serde_json::from_str::<Kind>(text).ok()?.model_type
}

/// Refuses a folder in Hugging Face layout that lacks a required file, saying which.
pub(crate) fn require_files(folder: &Path) -> Result<(), ModelError> {
    let missing = missing_files(folder);
    if missing.is_empty() {
        return Ok(());
    }
    Err(ModelError::MissingFiles {
        folder: folder.into(),
        missing: missing.join(", "),
    })
}

/// `preprocessor_config.json` when the folder has one, else CLIP's processor for `image_size`;
/// refused where its output is not the `image_size` square the tower's position embeddings fit.
pub(crate) fn read_preprocess(
    folder: &Path,
    image_size: usize,
) -> Result<PreprocessConfig, ModelError> {
    let path = folder.join("preprocessor_config.json");
    let config = match std::fs::read_to_string(&path) {
        Ok(text) => PreprocessConfig::from_json(&text, image_size as u32).map_err(|message| {
            ModelError::Config {
                path: path.clone(),
                message,
            }
        })?,
        Err(_) => PreprocessConfig::for_image_size(image_size as u32),
    };
    let size = image_size as u32;
    if (config.crop_height, config.crop_width) != (size, size) {
        return Err(ModelError::Unsupported {
            path,
            message: format!(
                "it gives {}x{} images, but config.json's vision tower takes {size}x{size}",
                config.crop_width, config.crop_height
            ),
        });
    }
    Ok(config)
}

/// `weights` memory-mapped, checked to hold `expected` (named first, so that a checkpoint of
/// another layout gets a message that says so rather than a missing layer's name).
pub(crate) fn open_weights(
    weights: &Path,
    expected: &[&str],
    family: &str,
    device: &Device,
) -> Result<VarBuilder<'static>, ModelError> {
    // SAFETY: the file is memory-mapped read-only; the app never writes model files.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device) }
        .map_err(|e| ModelError::weights(weights, e))?;
    for name in expected {
        if !vb.contains_tensor(name) {
            return Err(ModelError::weights(
                weights,
                format!(
                    "it has no tensor {name}: is it a {family} checkpoint in Hugging Face layout?"
                ),
            ));
        }
    }
    Ok(vb)
}

/// A learned scalar of `vb`: shape `[]` (CLIP) or `[1]` (SigLIP).
pub(crate) fn scalar(vb: &VarBuilder, name: &str, weights: &Path) -> Result<f32, ModelError> {
    vb.get_unchecked(name)
        .and_then(|t| t.flatten_all()?.get(0)?.to_scalar::<f32>())
        .map_err(|e| ModelError::weights(weights, format!("{name}: {e}")))
}
