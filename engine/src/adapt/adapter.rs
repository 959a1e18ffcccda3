//! A trained adapter: the model it belongs to, its zero-shot and adapted scores, its blend, its
//! report; stored beside the caches as safetensors, one file per (model + revision +
//! precision, prompt, videos trained on):
//! `adapters/MODEL-REVISION/ID.safetensors`, where the id (which share links carry) is a hash
//! of those three, so a retrained adapter keeps its id.
//!
//! The file: tensors `weight` and `bias` (the adapted linear score; for Tip-Adapter the
//! zero-shot one), `zero_shot_weight` and `zero_shot_bias`, and for Tip-Adapter `keys` and
//! `values`; metadata `format`, `model`, `revision`, `dimension`, `prompt`, `method`, `from`,
//! `alpha`, `lambda`, `tip_beta`, `tip_alpha`, `folds`, `videos`, `labels_fingerprint` and
//! `report` (the whole report as JSON, metrics included).
//!
//! Invariants: files are written atomically (a `kill -9` during a save leaves the old file or
//! the new one, whole); a file is read only whole and checked (format, shapes, finite values,
//! the report), and used only with the model it was trained for (name, revision and
//! precision, which int8 adds to the revision).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use investigator_core::adapt::{AdaptReport, AdaptedScores, Method};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use store::cache::{write_atomically, EmbeddingFile, ModelKey};
use store::fnv::Fnv64;

use super::probe::Linear;
use super::tip::Cache;
use super::train::Scorer;

/// The `format` metadata of adapter files.
pub const FORMAT: &str = "clip-investigator adapter 1";
/// Largest adapter file read (keys of 1024 × 4096 floats and a report).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// A trained adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct Adapter {
    pub model: ModelKey,
    /// The videos it was trained on (their content keys, sorted).
    pub videos: Vec<String>,
    pub zero_shot: Linear,
    pub scorer: Scorer,
    pub alpha: f64,
    pub report: AdaptReport,
}

/// Why an adapter file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AdapterFileError {
    #[error("cannot read or write the adapter {}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} is not a usable adapter file ({reason}): train it again with `clip-investigator adapt`", .path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("no stored adapter has the id {0}: adapt the prompt again")]
    NotFound(String),
    #[error("{what}")]
    WrongModel { what: String },
}

impl AdapterFileError {
    fn damaged(path: &Path, reason: impl Into<String>) -> Self {
        Self::Damaged {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// The message for the browser: file names, never folders.
    pub fn public(&self) -> String {
        match self {
            Self::Io { path, .. } | Self::Damaged { path, .. } => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.to_string().replace(&path.display().to_string(), &name)
            }
            other => other.to_string(),
        }
    }
}

/// The id of the adapter of `prompt` for `model` trained on `videos` (sorted keys).
pub fn adapter_id(model: &ModelKey, prompt: &str, videos: &[String]) -> String {
    let mut hash = Fnv64::new();
    for part in [
        model.name.as_str(),
        model.revision.as_str(),
        &model.dimension.to_string(),
        prompt,
    ]
    .into_iter()
    .chain(videos.iter().map(String::as_str))
    {
        hash.update(part.as_bytes());
        hash.update(&[0]);
    }
    format!("{:016x}", hash.finish())
}

pub use investigator_core::adapt::is_adapter_id;

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl Adapter {
    pub fn id(&self) -> &str {
        &self.report.id
    }

    pub fn prompt(&self) -> &str {
        &self.report.prompt
    }

    /// Zero-shot and adapted logits of every embedded frame of `file` (its rows).
    pub fn scores(&self, file: &EmbeddingFile) -> (Vec<f32>, Vec<f32>) {
        let dim = file.dimension();
        let zero = super::train::linear_logits(&self.zero_shot, &file.vectors, dim);
        let adapted = self.scorer.logits(&file.vectors, dim);
        (
            zero.into_iter().map(|z| z as f32).collect(),
            adapted.into_iter().map(|z| z as f32).collect(),
        )
    }

    /// The scores the chart draws, aligned with `file.frames`.
    pub fn chart_scores(&self, file: &EmbeddingFile, stale: bool) -> AdaptedScores {
        let (zero_shot, adapted) = self.scores(file);
        AdaptedScores {
            id: self.id().to_string(),
            prompt: self.prompt().to_string(),
            zero_shot,
            adapted,
            alpha: self.alpha,
            stale,
        }
    }

    /// The probe's blended score at `alpha` as a unit direction, its length and bias: a
    /// search by cosine with the direction ranks frames as the adapted score does. `None`
    /// for Tip-Adapter (its cache is not one direction).
    pub fn direction(&self, alpha: f64) -> Option<(Vec<f32>, f64, f64)> {
        let Scorer::Linear(adapted) = &self.scorer else {
            return None;
        };
        let blended = self.zero_shot.blend(adapted, alpha);
        let norm = blended.weight.iter().map(|w| w * w).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return None;
        }
        let unit = blended.weight.iter().map(|w| (w / norm) as f32).collect();
        Some((unit, norm, blended.bias))
    }

    /// Refuses a model other than the one the adapter was trained for, saying which.
    pub fn check_model(&self, model: &ModelKey) -> Result<(), AdapterFileError> {
        if &self.model == model {
            return Ok(());
        }
        let int8 = |r: &str| r.ends_with("-int8");
        let what = if self.model.name == model.name
            && self.model.revision.trim_end_matches("-int8")
                == model.revision.trim_end_matches("-int8")
        {
            format!(
                "the adapter for {:?} was trained on the {} image tower of {}; this run uses {}: pass --precision {}",
                self.prompt(),
                if int8(&self.model.revision) { "int8" } else { "fp32" },
                self.model.name,
                if int8(&model.revision) { "int8" } else { "fp32" },
                if int8(&self.model.revision) { "int8" } else { "fp32" },
            )
        } else {
            format!(
                "the adapter for {:?} was trained for the model {} (revision {}, {} dimensions), not {} (revision {}, {} dimensions): pass --model {}",
                self.prompt(),
                self.model.name,
                self.model.revision,
                self.model.dimension,
                model.name,
                model.revision,
                model.dimension,
                self.model.name
            )
        };
        Err(AdapterFileError::WrongModel { what })
    }

    /// The safetensors file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (weight, bias) = match &self.scorer {
            Scorer::Linear(linear) => (&linear.weight, linear.bias),
            Scorer::Tip { base, .. } => (&base.weight, base.bias),
        };
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = vec![
            (
                "weight".into(),
                Dtype::F64,
                vec![weight.len()],
                f64_bytes(weight),
            ),
            ("bias".into(), Dtype::F64, vec![1], f64_bytes(&[bias])),
            (
                "zero_shot_weight".into(),
                Dtype::F64,
                vec![self.zero_shot.weight.len()],
                f64_bytes(&self.zero_shot.weight),
            ),
            (
                "zero_shot_bias".into(),
                Dtype::F64,
                vec![1],
                f64_bytes(&[self.zero_shot.bias]),
            ),
        ];
        if let Scorer::Tip { cache, .. } = &self.scorer {
            tensors.push((
                "keys".into(),
                Dtype::F32,
                vec![cache.values.len(), cache.dim],
                f32_bytes(&cache.keys),
            ));
            tensors.push((
                "values".into(),
                Dtype::F32,
                vec![cache.values.len()],
                f32_bytes(&cache.values),
            ));
        }
        let r = &self.report;
        let number = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
        let metadata: HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("model", self.model.name.clone()),
            ("revision", self.model.revision.clone()),
            ("dimension", self.model.dimension.to_string()),
            ("prompt", r.prompt.clone()),
            ("method", r.method.name().into()),
            ("from", r.from.name().into()),
            ("alpha", self.alpha.to_string()),
            ("lambda", number(r.lambda)),
            ("tip_beta", number(r.tip_beta)),
            ("tip_alpha", number(r.tip_alpha)),
            ("folds", r.folds.to_string()),
            (
                "videos",
                serde_json::to_string(&self.videos).expect("strings serialise"),
            ),
            ("labels_fingerprint", r.labels_fingerprint.clone()),
            (
                "report",
                serde_json::to_string(r).expect("the report serialises"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                (
                    name.clone(),
                    TensorView::new(*dtype, shape.clone(), bytes)
                        .expect("shapes match their bytes"),
                )
            })
            .collect();
        safetensors::serialize(views, Some(metadata)).expect("an adapter serialises")
    }

    /// Reads an adapter file's bytes, checking everything (`path` names it in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, AdapterFileError> {
        let damaged = |reason: String| AdapterFileError::damaged(path, reason);
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| damaged(format!("not a safetensors file: {e}")))?;
        let metadata = header
            .metadata()
            .clone()
            .ok_or_else(|| damaged("no metadata".into()))?;
        let field = |key: &str| {
            metadata
                .get(key)
                .cloned()
                .ok_or_else(|| damaged(format!("no {key:?} in its metadata")))
        };
        if field("format")? != FORMAT {
            return Err(damaged(format!(
                "its format is {:?}, not {FORMAT:?}",
                field("format")?
            )));
        }
        let dimension: u32 = field("dimension")?
            .parse()
            .map_err(|_| damaged("its dimension is not a number".into()))?;
        let model = ModelKey {
            name: field("model")?,
            revision: field("revision")?,
            dimension,
        };
        let report: AdaptReport = serde_json::from_str(&field("report")?)
            .map_err(|e| damaged(format!("its report does not read: {e}")))?;
        let videos: Vec<String> = serde_json::from_str(&field("videos")?)
            .map_err(|e| damaged(format!("its list of videos does not read: {e}")))?;
        let alpha: f64 = field("alpha")?
            .parse()
            .map_err(|_| damaged("its alpha is not a number".into()))?;
        if !(0.0..=1.0).contains(&alpha) {
            return Err(damaged(format!("its alpha {alpha} is outside 0 to 1")));
        }
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| damaged(format!("its tensors do not read: {e}")))?;
        let dim = dimension as usize;
        let read_f64 = |name: &str, len: usize| -> Result<Vec<f64>, AdapterFileError> {
            let view = tensors
                .tensor(name)
                .map_err(|_| damaged(format!("no tensor {name:?}")))?;
            if view.dtype() != Dtype::F64 || view.shape().iter().product::<usize>() != len {
                return Err(damaged(format!(
                    "tensor {name:?} is {:?} {:?}, not F64 [{len}]",
                    view.dtype(),
                    view.shape()
                )));
            }
            let values: Vec<f64> = view
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(damaged(format!(
                    "tensor {name:?} holds a value that is not finite"
                )));
            }
            Ok(values)
        };
        let read_f32 = |name: &str, shape: &[usize]| -> Result<Vec<f32>, AdapterFileError> {
            let view = tensors
                .tensor(name)
                .map_err(|_| damaged(format!("no tensor {name:?}")))?;
            if view.dtype() != Dtype::F32 || view.shape() != shape {
                return Err(damaged(format!(
                    "tensor {name:?} is {:?} {:?}, not F32 {shape:?}",
                    view.dtype(),
                    view.shape()
                )));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(damaged(format!(
                    "tensor {name:?} holds a value that is not finite"
                )));
            }
            Ok(values)
        };
        let linear = Linear {
            weight: read_f64("weight", dim)?,
            bias: read_f64("bias", 1)?[0],
        };
        let zero_shot = Linear {
            weight: read_f64("zero_shot_weight", dim)?,
            bias: read_f64("zero_shot_bias", 1)?[0],
        };
        let scorer = match report.method {
            Method::Probe => Scorer::Linear(linear),
            Method::Tip => {
                let count = tensors
                    .tensor("values")
                    .map_err(|_| damaged("no tensor \"values\"".into()))?
                    .shape()
                    .first()
                    .copied()
                    .unwrap_or(0);
                let (beta, weight) = report
                    .tip_beta
                    .zip(report.tip_alpha)
                    .ok_or_else(|| damaged("a Tip-Adapter without β or its weight".into()))?;
                Scorer::Tip {
                    base: linear,
                    cache: Cache {
                        keys: read_f32("keys", &[count, dim])?,
                        values: read_f32("values", &[count])?,
                        dim,
                        beta,
                        weight,
                    },
                }
            }
        };
        if report.prompt.trim().is_empty() || field("prompt")? != report.prompt {
            return Err(damaged("its prompt and its report disagree".into()));
        }
        Ok(Self {
            model,
            videos,
            zero_shot,
            scorer,
            alpha,
            report,
        })
    }

    /// Reads an adapter file.
    pub fn read(path: &Path) -> Result<Self, AdapterFileError> {
        let io = |error| AdapterFileError::Io {
            path: path.to_path_buf(),
            error,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_FILE_BYTES {
            return Err(AdapterFileError::damaged(
                path,
                format!("{size} bytes, more than an adapter holds"),
            ));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::from_bytes(&bytes, path)
    }

    /// Writes the adapter to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<(), AdapterFileError> {
        write_atomically(path, &self.to_bytes()).map_err(|error| AdapterFileError::Io {
            path: path.to_path_buf(),
            error,
        })
    }
}

/// The adapters beside the caches.
#[derive(Clone, Debug)]
pub struct AdapterStore {
    dir: PathBuf,
}

impl AdapterStore {
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            dir: cache_dir.join("adapters"),
        }
    }

    /// The folder of `model`'s adapters.
    pub fn folder(&self, model: &ModelKey) -> PathBuf {
        self.dir.join(EmbeddingFile::model_part(model))
    }

    pub fn path(&self, model: &ModelKey, id: &str) -> PathBuf {
        self.folder(model).join(format!("{id}.safetensors"))
    }

    /// Stores `adapter` (replacing the one with its id), atomically.
    pub fn save(&self, adapter: &Adapter) -> Result<PathBuf, AdapterFileError> {
        let path = self.path(&adapter.model, adapter.id());
        store::cache::remove_stale_temporaries(&path);
        adapter.write(&path)?;
        Ok(path)
    }

    /// The adapter `id` of `model`.
    pub fn load(&self, model: &ModelKey, id: &str) -> Result<Adapter, AdapterFileError> {
        if !is_adapter_id(id) {
            return Err(AdapterFileError::NotFound(id.chars().take(40).collect()));
        }
        let path = self.path(model, id);
        if !path.exists() {
            return Err(AdapterFileError::NotFound(id.to_string()));
        }
        let adapter = Adapter::read(&path)?;
        adapter.check_model(model)?;
        Ok(adapter)
    }

    /// Every stored adapter of `model` (a damaged file as its error), by id.
    pub fn list(&self, model: &ModelKey) -> Vec<Result<Adapter, AdapterFileError>> {
        let Ok(entries) = std::fs::read_dir(self.folder(model)) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|e| e == "safetensors")
                    && p.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(is_adapter_id)
            })
            .collect();
        paths.sort();
        paths.iter().map(|p| Adapter::read(p)).collect()
    }
}
