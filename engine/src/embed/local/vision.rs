//! The image tower: a frame preprocessed as the model's family says (Pillow-exact resize, and
//! crop or squash), then the family's image transformer, on candle or ONNX Runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use opencv::core::Mat;
use opencv::prelude::*;

use super::config::ModelError;
use super::family::{Family, ImageModel};
use super::layers::Pass;
use super::onnx::{GraphOptions, OrtError, OrtVision};
use crate::embed::preprocess::{
    crop_box, normalize, output_size, resize_and_crop, PatchBudget, PreprocessConfig, RgbImage,
};
use crate::embed::EmbedError;
use store::config::ImageRuntime;

/// The family's image graph for inputs of `input` (height, width) on ONNX Runtime, written
/// with `options`, on all cores.
pub(super) fn onnx_session(
    family: &dyn Family,
    vb: &VarBuilder,
    options: GraphOptions,
    input: (usize, usize),
) -> Result<OrtVision, OrtError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    OrtVision::start(
        family.weights_file(),
        family.image_graph(vb, options, input),
        options,
        (input, family.dimension()),
        threads,
    )
}

/// What runs the transformer.
enum Runtime {
    Candle(Arc<dyn ImageModel>),
    OnnxRuntime(OrtVision),
    /// A family whose input size follows the frame (NaFlex): one session per size, made on
    /// first use (a video's frames all share one).
    OnnxPerSize(PerSize),
}

struct PerSize {
    family: Arc<dyn Family>,
    weights: VarBuilder<'static>,
    options: GraphOptions,
    sessions: Mutex<HashMap<(usize, usize), Arc<OrtVision>>>,
}

impl PerSize {
    fn session(&self, input: (usize, usize)) -> Result<Arc<OrtVision>, OrtError> {
        let mut sessions = crate::sync::lock(&self.sessions);
        if let Some(session) = sessions.get(&input) {
            return Ok(Arc::clone(session));
        }
        let session = Arc::new(onnx_session(
            self.family.as_ref(),
            &self.weights,
            self.options,
            input,
        )?);
        sessions.insert(input, Arc::clone(&session));
        Ok(session)
    }
}

pub(super) struct ImageTower {
    runtime: Runtime,
    preprocess: PreprocessConfig,
}

impl ImageTower {
    /// The family's image tower on the runtime asked for (its graph written with `options` on
    /// ONNX Runtime; candle is fp32). `Auto` takes ONNX Runtime where its library loads and falls
    /// back to candle (with a log line saying why) where it does not.
    pub(super) fn load(
        family: &Arc<dyn Family>,
        vb: &VarBuilder<'static>,
        runtime: ImageRuntime,
        options: GraphOptions,
    ) -> Result<Self, ModelError> {
        let preprocess = family.preprocess().clone();
        let candle = || -> Result<Runtime, ModelError> {
            family
                .image_tower(vb)
                .map(Runtime::Candle)
                .map_err(|e| ModelError::weights(family.weights_file(), e))
        };
        let onnx = || -> Result<Runtime, OrtError> {
            crate::embed::local::onnx::available()?;
            match preprocess.patch_budget {
                None => {
                    let input = (
                        preprocess.crop_height as usize,
                        preprocess.crop_width as usize,
                    );
                    onnx_session(family.as_ref(), vb, options, input).map(Runtime::OnnxRuntime)
                }
                Some(_) => Ok(Runtime::OnnxPerSize(PerSize {
                    family: Arc::clone(family),
                    weights: vb.clone(),
                    options,
                    sessions: Mutex::default(),
                })),
            }
        };
        let runtime = match runtime {
            ImageRuntime::Candle => candle()?,
            ImageRuntime::Onnxruntime => onnx().map_err(|error| ModelError::Runtime {
                message: error.to_string(),
            })?,
            ImageRuntime::Auto => match onnx() {
                Ok(runtime) => runtime,
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

    /// Cuts frames into at most `budget.max_patches` patches from now on (NaFlex).
    pub(super) fn set_patch_budget(&mut self, budget: PatchBudget) {
        self.preprocess.patch_budget = Some(budget);
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

    /// L2-normalised embeddings of preprocessed images of `(height, width)`.
    pub(super) fn embed(
        &self,
        images: &[&[f32]],
        size: (usize, usize),
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_on(None, images, size, device)
    }

    /// As [`embed`](Self::embed), on `session` instead of the tower's own runtime where given
    /// (the int8 tower while it is checked against this one).
    pub(super) fn embed_on(
        &self,
        session: Option<&OrtVision>,
        images: &[&[f32]],
        (h, w): (usize, usize),
        device: &Device,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
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
            (None, Runtime::Candle(vision)) => {
                on_candle(&|pixels| vision.forward(pixels, &mut Pass::Fast))
            }
            (None, Runtime::OnnxRuntime(session)) => {
                session.embed(images).map_err(|e| e.to_string())
            }
            (None, Runtime::OnnxPerSize(sessions)) => sessions
                .session((h, w))
                .and_then(|session| session.embed(images))
                .map_err(|e| e.to_string()),
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
    pub(super) fn candle_tower(&self) -> Option<Arc<dyn ImageModel>> {
        match &self.runtime {
            Runtime::Candle(tower) => Some(Arc::clone(tower)),
            Runtime::OnnxRuntime(_) | Runtime::OnnxPerSize(_) => None,
        }
    }

    /// The part of a `width x height` frame the model sees (see [`crop_box`]).
    pub(super) fn crop_box(&self, width: usize, height: usize) -> (f64, f64, f64, f64) {
        crop_box(&self.preprocess, width, height)
    }

    /// The (height, width) of the model's input: the processor's crop, or its resize box;
    /// `None` where it depends on the frame (NaFlex).
    pub(super) fn input_size(&self) -> Option<(usize, usize)> {
        self.preprocess.patch_budget.is_none().then_some((
            self.preprocess.crop_height as usize,
            self.preprocess.crop_width as usize,
        ))
    }

    /// The (height, width) of the model's input for a `width x height` frame.
    pub(super) fn input_size_for(&self, width: usize, height: usize) -> (usize, usize) {
        output_size(&self.preprocess, width, height)
    }

    /// What runs the transformer: "candle" or "onnxruntime".
    pub(super) fn runtime_name(&self) -> &'static str {
        match self.runtime {
            Runtime::Candle(_) => "candle",
            Runtime::OnnxRuntime(_) | Runtime::OnnxPerSize(_) => "onnxruntime",
        }
    }
}
