//! The image tower on ONNX Runtime: the graph (each family's `graph.rs` from the pieces in
//! [`graph`]: fp32, or with int8 layers) is written from the same weights the candle path reads
//! (no export step, no second copy of the model on disk), and ONNX Runtime's CPU kernels run it. `libonnxruntime.so` is loaded at run
//! time from `ORT_DYLIB_PATH` (scripts/setup.sh installs it from PyPI's onnxruntime wheel).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::{builder::GraphOptimizationLevel, Session};

pub(crate) mod graph;
mod proto;

pub use graph::{quantize_per_output_channel, GraphOptions, LinearLayers};

/// Where the library is looked for when `ORT_DYLIB_PATH` is not set.
pub fn default_library_path() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/clip-investigator/onnxruntime/libonnxruntime.so")
}

/// The library this process uses: `ORT_DYLIB_PATH`, else [`default_library_path`].
pub fn library_path() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(default_library_path)
}

/// Why ONNX Runtime cannot run an image tower here.
#[derive(Clone, Debug, thiserror::Error)]
pub enum OrtError {
    #[error("ONNX Runtime's library is not at {} (run scripts/setup.sh, or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.22 or later)", .0.display())]
    NoLibrary(PathBuf),
    #[error("cannot load ONNX Runtime from {}: {message}", .path.display())]
    Load { path: PathBuf, message: String },
    #[error("cannot start ONNX Runtime ({}): {message}", .path.display())]
    Start { path: PathBuf, message: String },
    #[error("cannot read {} for ONNX Runtime: {message}", .path.display())]
    Weights { path: PathBuf, message: String },
    #[error("CLIP_INVESTIGATOR_SAVE_ONNX: cannot write {path:?}: {message}")]
    SaveGraph {
        path: std::ffi::OsString,
        message: String,
    },
    #[error("ONNX Runtime refused the image graph: {0}")]
    Graph(String),
    #[error("ONNX Runtime: {0}")]
    Run(String),
    #[error("ONNX Runtime returned {values} values for {images} images of dimension {dimension}")]
    Shape {
        values: usize,
        images: usize,
        dimension: usize,
    },
}

/// ONNX Runtime allows one environment per process: loaded once, shared by all sessions.
fn environment() -> Result<&'static ort::environment::Environment, OrtError> {
    static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, OrtError>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = library_path();
            if !path.exists() {
                return Err(OrtError::NoLibrary(path));
            }
            ort::init_from(&path)
                .map_err(|e| OrtError::Load {
                    path: path.clone(),
                    message: e.to_string(),
                })?
                .with_name("clip-investigator")
                .build()
                .map_err(|e| OrtError::Start {
                    path: path.clone(),
                    message: e.to_string(),
                })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether ONNX Runtime can be loaded in this process (loads it on first call).
pub fn available() -> Result<(), OrtError> {
    environment().map(|_| ())
}

/// The image tower as an ONNX Runtime session: `pixel_values [N, 3, H, W]` in,
/// un-normalised `image_embeds [N, projection_dim]` out.
pub struct OrtVision {
    session: Mutex<Session>,
    /// (height, width) of the input images.
    input_size: (usize, usize),
    dimension: usize,
}

impl OrtVision {
    /// A session of `graph` (written from `weights` with `options`) taking `(height, width)`
    /// images to `dimension`-long embeddings, on `threads` cores.
    pub(crate) fn start(
        weights: &Path,
        graph: candle_core::Result<Vec<u8>>,
        options: GraphOptions,
        (input_size, dimension): ((usize, usize), usize),
        threads: usize,
    ) -> Result<Self, OrtError> {
        let model = graph.map_err(|e| OrtError::Weights {
            path: weights.to_path_buf(),
            message: e.to_string(),
        })?;
        let environment = environment()?;
        // For inspection (Netron, onnxruntime in Python): the graph exactly as it is run; an
        // int8 graph goes beside it, `-int8` appended to the name.
        if let Some(mut path) = std::env::var_os("CLIP_INVESTIGATOR_SAVE_ONNX") {
            if options.int8 != LinearLayers::NONE {
                path.push("-int8");
            }
            std::fs::write(&path, &model).map_err(|e| OrtError::SaveGraph {
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
        let session = Session::builder(environment)
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::Level3)
                    .map_err(Into::into)
            })
            .and_then(|b| {
                b.with_log_level(ort::logging::LogLevel::Warning)
                    .map_err(Into::into)
            })
            .and_then(|b| b.with_intra_threads(threads).map_err(Into::into))
            // Smaller work blocks balance the two threads when the decoder thread takes a core
            // for a moment during indexing: measured 14.4 -> 15.3 frames/s end to end.
            .and_then(|b| b.with_dynamic_block_base(4).map_err(Into::into))
            .and_then(|mut b| b.commit_from_memory(&model))
            .map_err(|e| OrtError::Graph(e.to_string()))?;
        Ok(Self {
            session: Mutex::new(session),
            input_size,
            dimension,
        })
    }

    /// Image embeddings (not normalised) of preprocessed images, `3 * height * width` floats each.
    pub fn embed(&self, images: &[&[f32]]) -> Result<Vec<Vec<f32>>, OrtError> {
        let (height, width) = self.input_size;
        let flat: Vec<f32> = images.iter().flat_map(|i| i.iter()).copied().collect();
        let run = |e: ort::Error| OrtError::Run(e.to_string());
        let input = ort::value::Tensor::from_array(([images.len(), 3, height, width], flat))
            .map_err(run)?;
        let mut session = crate::sync::lock(&self.session);
        let outputs = session
            .run(ort::inputs!["pixel_values" => input])
            .map_err(run)?;
        let (_, values) = outputs["image_embeds"]
            .try_extract_tensor::<f32>()
            .map_err(run)?;
        if values.len() != images.len() * self.dimension {
            return Err(OrtError::Shape {
                values: values.len(),
                images: images.len(),
                dimension: self.dimension,
            });
        }
        Ok(values.chunks(self.dimension).map(<[f32]>::to_vec).collect())
    }
}
