//! Past fp32: the image tower in int8, used only after it has been checked against fp32 on this
//! machine, this model and a sample of the video at hand.
//!
//! Invariants:
//! - fp32 is what runs until a check has passed: a model is switched to int8 only by
//!   [`load`] after a stored or fresh [`CheckReport`] with `passed` for this model's weights,
//!   this machine (CPU, its flags, the ONNX Runtime library) and the bar in force.
//! - An int8 model's identity has `-int8` in its revision, so its vectors live in cache files
//!   of their own; switching back to fp32 finds the fp32 files as they were.
//! - The check compares the two towers of the same weights on the same pixels: per-image cosine,
//!   each image's top-5 prompts and each prompt's top-10 frames (see [`Bar`]).
//! - bf16 is refused with the reason: ONNX Runtime's CPU kernels have no bf16 matrix products
//!   on x86 (`scripts/bf16_probe.py` shows the error it gives).
//!
//! `check` compares the towers, `sample` gathers what it compares them on, `machine` says which
//! machine it ran on, `stored` keeps the result per machine; this file loads a model at the
//! precision that may be used.

mod check;
mod machine;
mod sample;
mod stored;

use std::path::PathBuf;
use std::sync::Arc;

use store::config::{BackendKind, ImageRuntime, Precision, Settings};

pub use check::{agreement, check, Agreement, Bar, CheckReport, BAR_VARIABLE};
pub use machine::{cpu, machine};
pub use sample::{fixture_images, Sample, VIDEO_SAMPLES};
use stored::save;
pub use stored::{stored, stored_path};

use crate::embed::local::{LoadOptions, LocalClip, ModelError};
use crate::embed::ort_vision::{GraphOptions, OrtVision};
use crate::embed::{source, Embedder, LoadError};

#[derive(Debug, thiserror::Error)]
pub enum PrecisionError {
    #[error("{BAR_VARIABLE}={0:?}: give MIN_COSINE,MEAN_COSINE,TOP10_OVERLAP[,TOP5_OVERLAP], e.g. 0.99,0.998,0.9")]
    Bar(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Embed(#[from] crate::embed::EmbedError),
    #[error("cannot save the precision check to {}: {message}", .path.display())]
    Save { path: PathBuf, message: String },
}

/// Runs the check of int8 for `model` on the video and prompts of `settings` against `bar`,
/// stores it, and
/// returns it with the int8 tower it checked.
pub fn check_and_store(
    model: &LocalClip,
    settings: &Settings,
    bar: Bar,
) -> Result<(CheckReport, OrtVision), PrecisionError> {
    let tower = model.ort_tower(GraphOptions::INT8)?;
    let sample = Sample::gather(
        Some(&settings.video_path),
        Some(&settings.embeddings_dir),
        &settings.prompts,
    );
    let report = check(model, &tower, Precision::Int8, &sample, bar)?;
    save(
        &stored_path(&settings.embeddings_dir, &model.identity(), Precision::Int8),
        &report,
    )?;
    Ok((report, tower))
}

/// Why bf16 is refused here.
pub fn bf16_refusal() -> String {
    let has = cpu()
        .1
        .iter()
        .any(|f| *f == "avx512_bf16" || *f == "amx_bf16");
    format!(
        "precision bf16 is not available: {}ONNX Runtime's CPU kernels have no bf16 matrix products \
         on {} (MatMul, Gemm and FusedMatMul on bfloat16: \"Could not find an implementation\", \
         scripts/bf16_probe.py). Use `precision: int8` (checked against fp32 first) or fp32.",
        if has {
            "this CPU has bf16 instructions, but "
        } else {
            "this CPU has no bf16 instructions (avx512_bf16 or amx_bf16), and "
        },
        std::env::consts::ARCH
    )
}

/// The embedder `settings` ask for, at the precision they ask for where it may be used:
/// int8 after its check has passed on this machine (stored, or run now on the settings'
/// video), else fp32 with a log line and a note for the page. `auto` takes int8 where it passed
/// and was faster. Loading and a first check take seconds: call it off the async runtime.
pub fn load(settings: &Settings) -> Result<Arc<dyn Embedder>, LoadError> {
    let asked = settings.precision;
    if asked == Precision::Fp32 {
        return crate::embed::load(settings);
    }
    let refuse = |message: String| Err(LoadError::Precision(message));
    if asked == Precision::Bf16 {
        return refuse(bf16_refusal());
    }
    let explicit = asked == Precision::Int8;
    if settings.backend == BackendKind::Roboflow {
        if explicit {
            return refuse(
                "precision int8 is for the local backend: the Roboflow server chooses its own (set backend: local, or precision: fp32)".into(),
            );
        }
        return crate::embed::load(settings);
    }
    if settings.image_runtime == ImageRuntime::Candle {
        if explicit {
            return refuse(
                "precision int8 runs on ONNX Runtime, and image_runtime is candle: set image_runtime: auto (or onnxruntime), or precision: fp32".into(),
            );
        }
        return crate::embed::load(settings);
    }
    let files = source::resolve(&settings.model)?;
    let bar = Bar::in_force().map_err(|e| LoadError::Precision(e.to_string()))?;
    // The check is kept under the weights' fingerprint: known without loading the model, so a
    // model whose int8 passed loads straight in int8, without an fp32 tower to throw away.
    let identity =
        crate::embed::local::identity_with(&files.folder, &files.name, settings.max_num_patches)?;
    let path = stored_path(&settings.embeddings_dir, &identity, Precision::Int8);
    if let Some(report) = stored(&path, &bar) {
        let model = match verdict(&report, explicit) {
            Ok(()) => LocalClip::load_int8(&files.folder, &files.name)?,
            Err(note) => {
                let mut model =
                    LocalClip::load_with(&files.folder, &files.name, LoadOptions::of(settings))?;
                model.set_precision_note(Some(note));
                model
            }
        };
        return Ok(Arc::new(model));
    }
    let mut model = LocalClip::load_with(&files.folder, &files.name, LoadOptions::of(settings))?;
    if model.image_runtime() != "onnxruntime" {
        // auto runtime without ONNX Runtime's library: candle, fp32 (the loader logged why).
        if explicit {
            return refuse(format!(
                "precision int8 runs on ONNX Runtime, which cannot be loaded here: {}",
                crate::embed::ort_vision::available()
                    .err()
                    .map_or_else(|| "unknown reason".into(), |e| e.to_string())
            ));
        }
        return Ok(Arc::new(model));
    }
    tracing::info!(
        "checking int8 against fp32 for {} on this machine (once; stored in {})",
        identity.name,
        path.display()
    );
    let (report, tower) = check_and_store(&model, settings, bar).map_err(|e| match e {
        PrecisionError::Model(e) => LoadError::Model(e),
        other => LoadError::Precision(other.to_string()),
    })?;
    tracing::info!("{}", report.table());
    match verdict(&report, explicit) {
        Ok(()) => model.use_int8(tower),
        Err(note) => model.set_precision_note(Some(note)),
    }
    Ok(Arc::new(model))
}

/// Whether a checked int8 tower is used (`int8`: where it passed; `auto`: where it passed and
/// was faster), logged; where not, the note that says why.
fn verdict(report: &CheckReport, explicit: bool) -> Result<(), String> {
    let (int8, fp32) = (report.int8_images_per_s, report.fp32_images_per_s);
    if !report.passed {
        let note = report.fallback_note();
        tracing::warn!("{}: {note}", report.model);
        return Err(note);
    }
    if !explicit && int8 <= fp32 {
        let note = format!(
            "int8 passed its check but was not faster on this machine ({int8:.1} vs {fp32:.1} images/s): fp32 is used"
        );
        tracing::info!("{}: {note}", report.model);
        return Err(note);
    }
    tracing::info!(
        "{}: image tower in int8 (checked: worst cosine {:.4}, mean {:.4}; {int8:.1} vs {fp32:.1} images/s)",
        report.model,
        report.cosine_min,
        report.cosine_mean,
    );
    Ok(())
}

/// As [`load`], with an fp32 local model loaded on first use (answers from the caches need only
/// its identity); other precisions load and check at once.
pub fn load_lazy(settings: &Settings) -> Result<Arc<dyn Embedder>, LoadError> {
    if settings.precision == Precision::Fp32 {
        crate::embed::load_lazy(settings)
    } else {
        load(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_is_refused_with_the_reason() {
        let message = bf16_refusal();
        assert!(message.contains("no bf16 matrix products"), "{message}");
        assert!(message.contains("precision: int8"), "{message}");
    }
}
