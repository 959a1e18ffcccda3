//! SigLIP 2 NaFlex in Hugging Face's layout (`model_type: siglip2`): SigLIP's towers, but each
//! image keeps its aspect ratio. It is resized to the largest grid of whole patches that fits
//! the patch budget (`max_num_patches`, transformers' `Siglip2ImageProcessor` search, exactly),
//! the patch embedding is a linear layer over each patch's pixels, and the learned `side x side`
//! position grid is resized to each image's patch grid (bilinear with antialiasing, as
//! transformers computes it). Heatmaps are drawn over that real grid.
//!
//! Invariants: one image's patches run alone or with images of the same grid, so no padding or
//! mask is needed (transformers masks its padding's keys everywhere, which gives the same
//! numbers); a budget of 0, or one past [`MAX_PATCHES`], is refused naming the field.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use candle_nn::VarBuilder;
use serde::Deserialize;

use super::hf;
use super::siglip::siglip_config;
use super::siglip::towers::{SiglipText, SiglipTextConfig, SiglipVision, SiglipVisionConfig};
use crate::embed::local::config::ModelError;
use crate::embed::local::family::{Family, ImageModel, ProbabilityHead, TextModel};
use crate::embed::local::onnx::GraphOptions;
use crate::embed::local::tokenize::{SiglipTokenizer, TextTokenizer};
use crate::embed::preprocess::{Filter, PatchBudget, PreprocessConfig};

/// The largest patch budget accepted: 64x64 patches, far past the checkpoints' 256 to 1024
/// (attention's cost grows with its square).
pub const MAX_PATCHES: u32 = 4096;

pub(crate) struct Naflex {
    folder: PathBuf,
    weights: PathBuf,
    text: SiglipTextConfig,
    vision: SiglipVisionConfig,
    preprocess: PreprocessConfig,
}

/// The folder as SigLIP 2 NaFlex, where `config.json` says `model_type: siglip2`.
pub(crate) fn read(folder: &Path) -> Option<Result<Box<dyn Family>, ModelError>> {
    let (path, text) = match hf::config_json(folder)? {
        Ok(found) => found,
        Err(e) => return Some(Err(e)),
    };
    if hf::model_type(&text).as_deref() != Some("siglip2") {
        return None;
    }
    Some(read_config(folder, &path, &text).map(|f| Box::new(f) as Box<dyn Family>))
}

fn read_config(folder: &Path, path: &Path, text: &str) -> Result<Naflex, ModelError> {
    hf::require_files(folder)?;
    let (text_config, mut vision) = siglip_config(path, text)?;
    #[derive(Deserialize)]
    struct Vision {
        num_patches: Option<usize>,
    }
    #[derive(Deserialize)]
    struct Config {
        vision_config: Vision,
    }
    let config: Config = serde_json::from_str(text).map_err(|e| ModelError::Config {
        path: path.into(),
        message: e.to_string(),
    })?;
    // transformers' default: 256 positions, a 16x16 grid.
    let positions = config.vision_config.num_patches.unwrap_or(256);
    let side = (positions as f64).sqrt().round() as usize;
    if side == 0 || side * side != positions {
        return Err(ModelError::Config {
            path: path.into(),
            message: format!("vision_config.num_patches must be a square number (its positions are a square grid), not {positions}"),
        });
    }
    vision.naflex_grid = Some(side);
    let preprocess = read_preprocess(folder, vision.patch_size)?;
    Ok(Naflex {
        folder: folder.into(),
        weights: folder.join("model.safetensors"),
        text: text_config,
        vision,
        preprocess,
    })
}

/// `preprocessor_config.json` (`Siglip2ImageProcessor`'s); absent fields take its defaults.
fn read_preprocess(folder: &Path, patch_size: usize) -> Result<PreprocessConfig, ModelError> {
    #[derive(Deserialize, Default)]
    struct Raw {
        patch_size: Option<u32>,
        max_num_patches: Option<i64>,
        resample: Option<u32>,
        image_mean: Option<[f32; 3]>,
        image_std: Option<[f32; 3]>,
        rescale_factor: Option<f64>,
        do_resize: Option<bool>,
        do_rescale: Option<bool>,
        do_normalize: Option<bool>,
    }
    let path = folder.join("preprocessor_config.json");
    let error = |message: String| ModelError::Config {
        path: path.clone(),
        message,
    };
    let raw: Raw = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| error(e.to_string()))?,
        Err(_) => Raw::default(),
    };
    for (name, value) in [
        ("do_resize", raw.do_resize),
        ("do_rescale", raw.do_rescale),
        ("do_normalize", raw.do_normalize),
    ] {
        if value == Some(false) {
            return Err(error(format!(
                "{name} is false; the model takes resized, rescaled, normalised images"
            )));
        }
    }
    if raw
        .rescale_factor
        .is_some_and(|f| (f - 1.0 / 255.0).abs() > 1e-12)
    {
        return Err(error(format!(
            "rescale_factor is {:?}; only 1/255 is computed",
            raw.rescale_factor.unwrap_or_default()
        )));
    }
    let patch = raw.patch_size.unwrap_or(16);
    if patch as usize != patch_size {
        return Err(error(format!(
            "patch_size is {patch}, but config.json's vision tower has patches of {patch_size}"
        )));
    }
    let max_patches = raw.max_num_patches.unwrap_or(256);
    if !(1..=i64::from(MAX_PATCHES)).contains(&max_patches) {
        return Err(error(format!(
            "max_num_patches is {max_patches}; it must be from 1 to {MAX_PATCHES}"
        )));
    }
    let mut config = PreprocessConfig::for_image_size(patch);
    config.patch_budget = Some(PatchBudget {
        patch,
        max_patches: max_patches as u32,
    });
    config.filter = match raw.resample {
        None | Some(2) => Filter::Bilinear,
        Some(3) => Filter::Bicubic,
        Some(other) => {
            return Err(error(format!(
                "resample is {other}; only bilinear (2) and bicubic (3) are supported"
            )))
        }
    };
    config.mean = raw.image_mean.unwrap_or([0.5; 3]);
    config.std = raw.image_std.unwrap_or([0.5; 3]);
    Ok(config)
}

impl Family for Naflex {
    fn name(&self) -> &'static str {
        "SigLIP 2 NaFlex"
    }

    fn dimension(&self) -> usize {
        self.text.projection_size
    }

    fn weights_file(&self) -> &Path {
        &self.weights
    }

    fn preprocess(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    fn tokenizer(&self) -> Result<Box<dyn TextTokenizer>, ModelError> {
        // transformers' Siglip2Tokenizer: the Gemma tokenizer with lower-casing, which the
        // SigLIP tokenizer does for any tokenizer class but SigLIP 1's.
        let tokenizer = SiglipTokenizer::load(
            &self.folder,
            self.text.vocab_size,
            self.text.max_position_embeddings,
        )?;
        Ok(Box::new(tokenizer))
    }

    fn weights(&self, device: &Device) -> Result<VarBuilder<'static>, ModelError> {
        hf::open_weights(
            &self.weights,
            &[
                "vision_model.head.probe",
                "text_model.head.weight",
                "logit_bias",
            ],
            "SigLIP 2",
            device,
        )
    }

    fn text_tower(&self, vb: &VarBuilder) -> candle_core::Result<Box<dyn TextModel>> {
        Ok(Box::new(SiglipText::new(vb, &self.text)?))
    }

    fn image_tower(&self, vb: &VarBuilder) -> candle_core::Result<Arc<dyn ImageModel>> {
        Ok(Arc::new(SiglipVision::new(vb, &self.vision)?))
    }

    fn image_graph(
        &self,
        vb: &VarBuilder,
        options: GraphOptions,
        input: (usize, usize),
    ) -> candle_core::Result<Vec<u8>> {
        super::siglip::graph::siglip_vision_graph(vb, &self.vision, options, input)
    }

    fn head(&self, vb: &VarBuilder) -> Result<ProbabilityHead, ModelError> {
        Ok(ProbabilityHead::Sigmoid {
            scale: hf::scalar(vb, "logit_scale", &self.weights)?.exp(),
            bias: hf::scalar(vb, "logit_bias", &self.weights)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_with(preprocessor: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("preprocessor_config.json"), preprocessor).unwrap();
        dir
    }

    #[test]
    fn the_patch_budget_is_read_and_refused_out_of_range() {
        let dir = folder_with(r#"{"patch_size": 8, "max_num_patches": 64}"#);
        let config = read_preprocess(dir.path(), 8).unwrap();
        assert_eq!(
            config.patch_budget,
            Some(PatchBudget {
                patch: 8,
                max_patches: 64
            })
        );
        assert_eq!((config.filter, config.mean), (Filter::Bilinear, [0.5; 3]));
        for (text, named) in [
            (
                r#"{"patch_size": 8, "max_num_patches": 0}"#,
                "max_num_patches is 0",
            ),
            (
                r#"{"patch_size": 8, "max_num_patches": 1000000}"#,
                "max_num_patches is 1000000",
            ),
            (r#"{"patch_size": 16}"#, "patch_size is 16"),
            (
                r#"{"patch_size": 8, "do_resize": false}"#,
                "do_resize is false",
            ),
        ] {
            let error = read_preprocess(folder_with(text).path(), 8)
                .err()
                .unwrap()
                .to_string();
            assert!(error.contains(named), "{text}: {error}");
        }
    }

    #[test]
    fn the_size_search_is_transformers() {
        // Siglip2ImageProcessor's own examples (WxH → HxW): patch 16, 256 patches.
        let budget = PatchBudget {
            patch: 16,
            max_patches: 256,
        };
        assert_eq!(budget.size_for(1280, 720), (192, 336));
        assert_eq!(budget.size_for(1080, 1920), (336, 192));
        assert_eq!(budget.size_for(640, 480), (224, 288));
        assert_eq!(budget.size_for(512, 512), (256, 256));
        // A sliver keeps one row of patches; the scale is capped at 100.
        assert_eq!(budget.size_for(400, 3), (16, 2144));
        assert_eq!(budget.size_for(1, 1), (112, 112));
    }
}
