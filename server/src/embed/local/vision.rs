//! The image tower: a frame preprocessed as CLIP's processor does (Pillow-exact resize and
//! crop), then the vision transformer and `visual_projection`, on candle or ONNX Runtime.

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use candle_transformers::models::clip::{self, vision_model};
use opencv::core::Mat;
use opencv::prelude::*;

use super::config::ModelError;
use crate::config::ImageEngine;
use crate::embed::ort_vision::OrtVision;
use crate::embed::preprocess::{preprocess, PreprocessConfig, RgbImage};
use crate::embed::EmbedError;

/// `preprocessor_config.json` when the folder has one, else CLIP's processor for `image_size`.
pub(super) fn read_preprocess(
    folder: &Path,
    image_size: usize,
) -> Result<PreprocessConfig, ModelError> {
    let path = folder.join("preprocessor_config.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => PreprocessConfig::from_json(&text, image_size as u32)
            .map_err(|message| ModelError::Config { path, message }),
        Err(_) => Ok(PreprocessConfig::for_image_size(image_size as u32)),
    }
}

/// What runs the transformer.
enum Engine {
    Candle {
        vision: vision_model::ClipVisionTransformer,
        projection: Linear,
    },
    OnnxRuntime(OrtVision),
}

pub(super) struct ImageTower {
    engine: Engine,
    preprocess: PreprocessConfig,
}

impl ImageTower {
    /// The image tower on the engine asked for. `Auto` takes ONNX Runtime where its library
    /// loads and falls back to candle (with a log line saying why) where it does not.
    pub(super) fn load(
        vb: &VarBuilder,
        weights: &Path,
        config: &vision_model::ClipVisionConfig,
        preprocess: PreprocessConfig,
        engine: ImageEngine,
    ) -> Result<Self, ModelError> {
        let candle = || -> Result<Engine, ModelError> {
            let error = |e| ModelError::weights(weights, e);
            Ok(Engine::Candle {
                vision: vision_model::ClipVisionTransformer::new(vb.pp("vision_model"), config)
                    .map_err(error)?,
                projection: candle_nn::linear_no_bias(
                    config.embed_dim,
                    config.projection_dim,
                    vb.pp("visual_projection"),
                )
                .map_err(error)?,
            })
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let engine = match engine {
            ImageEngine::Candle => candle()?,
            ImageEngine::Onnxruntime => OrtVision::load(weights, config, threads)
                .map(Engine::OnnxRuntime)
                .map_err(|message| ModelError::Engine { message })?,
            ImageEngine::Auto => match crate::embed::ort_vision::available()
                .and_then(|()| OrtVision::load(weights, config, threads))
            {
                Ok(session) => Engine::OnnxRuntime(session),
                Err(reason) => {
                    tracing::warn!("image tower on candle, not ONNX Runtime: {reason}");
                    candle()?
                }
            },
        };
        Ok(Self { engine, preprocess })
    }

    /// The model's input for an 8-bit BGR frame: `3 * height * width` floats, channel planes.
    pub(super) fn preprocess_frame(&self, frame: &Mat) -> Result<Vec<f32>, EmbedError> {
        if frame.typ() != opencv::core::CV_8UC3 {
            return Err(EmbedError::Model(format!(
                "frames must be 8-bit BGR images (OpenCV type {}), got type {}",
                opencv::core::CV_8UC3,
                frame.typ()
            )));
        }
        // The resampler reads OpenCV's BGR bytes directly: no colour conversion pass.
        let owned;
        let frame = if frame.is_continuous() {
            frame
        } else {
            owned = frame
                .try_clone()
                .map_err(|e| EmbedError::Model(e.to_string()))?;
            &owned
        };
        let bytes = frame
            .data_bytes()
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        let image = RgbImage {
            width: frame.cols() as usize,
            height: frame.rows() as usize,
            pixels: bytes,
            bgr: true,
        };
        Ok(preprocess(&image, &self.preprocess))
    }

    /// L2-normalised embeddings of preprocessed images.
    pub(super) fn embed(
        &self,
        images: &[&[f32]],
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (h, w) = (
            self.preprocess.crop_height as usize,
            self.preprocess.crop_width as usize,
        );
        if let Some(bad) = images.iter().find(|i| i.len() != 3 * h * w) {
            return Err(EmbedError::Model(format!(
                "a preprocessed image has {} values, the model takes 3 x {h} x {w}",
                bad.len()
            )));
        }
        match &self.engine {
            Engine::Candle { vision, projection } => {
                let flat: Vec<f32> = images.iter().flat_map(|i| i.iter()).copied().collect();
                let run = || -> candle_core::Result<Vec<Vec<f32>>> {
                    let pixels = Tensor::from_vec(flat, (images.len(), 3, h, w), device)?;
                    let features = projection.forward(&vision.forward(&pixels)?)?;
                    clip::div_l2_norm(&features)?.to_vec2::<f32>()
                };
                run().map_err(|e| EmbedError::Model(format!("CLIP image model: {e}")))
            }
            Engine::OnnxRuntime(session) => {
                let mut vectors = session
                    .embed(images)
                    .map_err(|e| EmbedError::Model(format!("CLIP image model: {e}")))?;
                vectors
                    .iter_mut()
                    .for_each(|v| crate::embed::l2_normalize(v));
                Ok(vectors)
            }
        }
    }

    /// Mean absolute difference of two preprocessed images, in grey levels (0-255).
    pub(super) fn difference(&self, a: &[f32], b: &[f32]) -> Option<f32> {
        if a.len() != b.len() || a.is_empty() || !a.len().is_multiple_of(3) {
            return None;
        }
        // Inputs are (level / 255 - mean) / std per channel plane: back to grey levels.
        let plane = a.len() / 3;
        let total: f64 = (0..3)
            .map(|c| {
                let range = c * plane..(c + 1) * plane;
                let sum: f32 = a[range.clone()]
                    .iter()
                    .zip(&b[range])
                    .map(|(x, y)| (x - y).abs())
                    .sum();
                f64::from(sum) * f64::from(self.preprocess.std[c]) * 255.0
            })
            .sum();
        Some((total / a.len() as f64) as f32)
    }

    /// What runs the transformer: "candle" or "onnxruntime".
    pub(super) fn engine_name(&self) -> &'static str {
        match self.engine {
            Engine::Candle { .. } => "candle",
            Engine::OnnxRuntime(_) => "onnxruntime",
        }
    }
}
