//! The image tower: a frame preprocessed as the model's processor does (Pillow-exact resize,
//! and crop for CLIP), then the vision transformer and `visual_projection` (CLIP) or SigLIP's
//! vision transformer with its pooling head, on candle or ONNX Runtime.

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use opencv::core::Mat;
use opencv::prelude::*;

use super::config::ModelError;
use super::explain::ExplainTower;
use super::model::{VisionConfig, VisionTransformer};
use super::siglip::{SiglipVision, SiglipVisionConfig};
use crate::embed::ort_vision::{GraphOptions, OrtVision};
use crate::embed::preprocess::{crop_box, normalize, resize_and_crop, PreprocessConfig, RgbImage};
use crate::embed::EmbedError;
use store::config::ImageRuntime;

/// `preprocessor_config.json` when the folder has one, else CLIP's processor for `image_size`.
pub(super) fn read_preprocess(
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
    // The tower's position embeddings are fixed: other input sizes would fail on every batch.
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

/// What runs the transformer.
enum Runtime {
    Candle(VisionTransformer),
    CandleSiglip(SiglipVision),
    OnnxRuntime(OrtVision),
}

pub(super) struct ImageTower {
    runtime: Runtime,
    preprocess: PreprocessConfig,
}

impl ImageTower {
    /// The image tower on the runtime asked for (its graph written with `options` on ONNX
    /// Runtime; candle is fp32). `Auto` takes ONNX Runtime where its library loads and falls back
    /// to candle (with a log line saying why) where it does not.
    pub(super) fn load(
        vb: &VarBuilder,
        weights: &Path,
        config: &VisionConfig,
        preprocess: PreprocessConfig,
        runtime: ImageRuntime,
        options: GraphOptions,
    ) -> Result<Self, ModelError> {
        let candle = || -> Result<Runtime, ModelError> {
            VisionTransformer::new(vb, config)
                .map(Runtime::Candle)
                .map_err(|e| ModelError::weights(weights, e))
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = match runtime {
            ImageRuntime::Candle => candle()?,
            ImageRuntime::Onnxruntime => OrtVision::load(weights, config, options, threads)
                .map(Runtime::OnnxRuntime)
                .map_err(|error| ModelError::Runtime {
                    message: error.to_string(),
                })?,
            ImageRuntime::Auto => match crate::embed::ort_vision::available()
                .and_then(|()| OrtVision::load(weights, config, options, threads))
            {
                Ok(session) => Runtime::OnnxRuntime(session),
                Err(reason) => {
                    tracing::warn!("image tower on candle, not ONNX Runtime: {reason}");
                    candle()?
                }
            },
        };
        Ok(Self {
            runtime,
            preprocess,
        })
    }

    /// SigLIP's image tower on the runtime asked for, as [`load`](Self::load) chooses.
    pub(super) fn load_siglip(
        vb: &VarBuilder,
        weights: &Path,
        config: &SiglipVisionConfig,
        preprocess: PreprocessConfig,
        runtime: ImageRuntime,
        options: GraphOptions,
    ) -> Result<Self, ModelError> {
        let candle = || -> Result<Runtime, ModelError> {
            SiglipVision::new(vb, config)
                .map(Runtime::CandleSiglip)
                .map_err(|e| ModelError::weights(weights, e))
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = match runtime {
            ImageRuntime::Candle => candle()?,
            ImageRuntime::Onnxruntime => OrtVision::load_siglip(weights, config, options, threads)
                .map(Runtime::OnnxRuntime)
                .map_err(|error| ModelError::Runtime {
                    message: error.to_string(),
                })?,
            ImageRuntime::Auto => match crate::embed::ort_vision::available()
                .and_then(|()| OrtVision::load_siglip(weights, config, options, threads))
            {
                Ok(session) => Runtime::OnnxRuntime(session),
                Err(reason) => {
                    tracing::warn!("image tower on candle, not ONNX Runtime: {reason}");
                    candle()?
                }
            },
        };
        Ok(Self {
            runtime,
            preprocess,
        })
    }

    /// The model's input for an 8-bit BGR frame: `3 * height * width` floats, channel planes.
    pub(super) fn preprocess_frame(&self, frame: &Mat) -> Result<Vec<f32>, EmbedError> {
        self.crop_frame(frame).map(|crop| self.normalize(&crop))
    }

    /// The frame resized and cropped for the model, 8-bit RGB (see [`resize_and_crop`]).
    pub(super) fn crop_frame(&self, frame: &Mat) -> Result<Vec<u8>, EmbedError> {
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
        Ok(resize_and_crop(&image, &self.preprocess))
    }

    /// The model's input from [`crop_frame`](Self::crop_frame)'s bytes.
    pub(super) fn normalize(&self, crop: &[u8]) -> Vec<f32> {
        normalize(crop, &self.preprocess)
    }

    /// L2-normalised embeddings of preprocessed images.
    pub(super) fn embed(
        &self,
        images: &[&[f32]],
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_on(None, images, device)
    }

    /// As [`embed`](Self::embed), on `session` instead of the tower's own runtime where given
    /// (the int8 tower while it is checked against this one).
    pub(super) fn embed_on(
        &self,
        session: Option<&OrtVision>,
        images: &[&[f32]],
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (h, w) = self.input_size();
        if let Some(bad) = images.iter().find(|i| i.len() != 3 * h * w) {
            return Err(EmbedError::Model(format!(
                "a preprocessed image has {} values, the model takes 3 x {h} x {w}",
                bad.len()
            )));
        }
        let on_candle = |forward: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>| {
            let flat: Vec<f32> = images.iter().flat_map(|i| i.iter()).copied().collect();
            Tensor::from_vec(flat, (images.len(), 3, h, w), device)
                .and_then(|pixels| forward(&pixels))
                .and_then(|out| out.to_vec2::<f32>())
                .map_err(|e| e.to_string())
        };
        let mut vectors = match (session, &self.runtime) {
            (Some(session), _) => session.embed(images).map_err(|e| e.to_string()),
            (None, Runtime::Candle(vision)) => on_candle(&|pixels| vision.forward(pixels)),
            (None, Runtime::CandleSiglip(vision)) => on_candle(&|pixels| vision.forward(pixels)),
            (None, Runtime::OnnxRuntime(session)) => {
                session.embed(images).map_err(|e| e.to_string())
            }
        }
        .map_err(|e| EmbedError::Model(format!("image model: {e}")))?;
        vectors
            .iter_mut()
            .for_each(|v| crate::embed::l2_normalize(v));
        Ok(vectors)
    }

    /// Runs the transformer on `session` from now on (the int8 tower, once it has passed its
    /// check); the tower it replaces is dropped.
    pub(super) fn replace_runtime(&mut self, session: OrtVision) {
        self.runtime = Runtime::OnnxRuntime(session);
    }

    /// Mean absolute difference of two cropped images, in grey levels (0-255).
    pub(super) fn difference(&self, a: &[u8], b: &[u8]) -> Option<f32> {
        if a.len() != b.len() || a.is_empty() {
            return None;
        }
        let total: u64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        Some((total as f64 / a.len() as f64) as f32)
    }

    /// The tower itself where candle runs it (tensors are shared, not copied): explanations
    /// need gradients, which ONNX Runtime does not give.
    pub(super) fn candle_tower(&self) -> Option<ExplainTower> {
        match &self.runtime {
            Runtime::Candle(tower) => Some(ExplainTower::Clip(tower.clone())),
            Runtime::CandleSiglip(tower) => Some(ExplainTower::Siglip(tower.clone())),
            Runtime::OnnxRuntime(_) => None,
        }
    }

    /// The part of a `width x height` frame the model sees (see [`crop_box`]).
    pub(super) fn crop_box(&self, width: usize, height: usize) -> (f64, f64, f64, f64) {
        crop_box(&self.preprocess, width, height)
    }

    /// The (height, width) of the model's input: the processor's crop, or its resize box.
    pub(super) fn input_size(&self) -> (usize, usize) {
        (
            self.preprocess.crop_height as usize,
            self.preprocess.crop_width as usize,
        )
    }

    /// What runs the transformer: "candle" or "onnxruntime".
    pub(super) fn runtime_name(&self) -> &'static str {
        match self.runtime {
            Runtime::Candle(_) | Runtime::CandleSiglip(_) => "candle",
            Runtime::OnnxRuntime(_) => "onnxruntime",
        }
    }
}
