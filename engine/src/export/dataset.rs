//! A labelled dataset to fine-tune on, from a video's labels and its models' scores: JPEG
//! frames and a `metadata.jsonl` in the layout Hugging Face's `imagefolder` loader reads
//! (`file_name` beside each row's fields: video, frame, time, prompt, label 0/1, what the row
//! is, and each model's score).
//!
//! What is taken, per labelled prompt: `per_segment` frames spread over each labelled segment
//! (positives), the `hard` lowest-scoring embedded frames inside the labels (hard positives) and
//! the `hard` highest-scoring embedded frames outside them (hard negatives), no two frames of a
//! prompt closer than `min_gap_s`, none in an ignored span.
//!
//! Invariants: every image is exactly the frame its row names (decoded through the frame
//! index, never a neighbour); the folder appears whole (written beside it and renamed) or not
//! at all.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use investigator_core::evaluation::Evaluated;
use investigator_core::labels::Labels;
use serde::Serialize;

use crate::embed::{EmbedError, Embedder, PreparedImage};
use crate::indexing::service::NotReady;
use crate::indexing::IndexService;
use crate::search::{cosine_rows, frame_scores};
use crate::sync::read;
use crate::video::{encode_jpeg, Decoder, FrameIndex, VideoError};
use investigator_core::evaluation::evaluated_frames;
use investigator_core::types::IndexState;

/// The size of the exported images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageSize {
    /// The frame as decoded (upright).
    #[default]
    Full,
    /// What the model sees: its processor's resize and crop.
    Model,
}

/// How many frames of which kind.
#[derive(Clone, Copy, Debug)]
pub struct DatasetOptions {
    pub per_segment: usize,
    pub min_gap_s: f64,
    pub hard: usize,
    pub size: ImageSize,
    pub jpeg_quality: u8,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        Self {
            per_segment: 5,
            min_gap_s: 1.0,
            hard: 5,
            size: ImageSize::Full,
            jpeg_quality: 95,
        }
    }
}

/// Why a row is in the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    Positive,
    HardPositive,
    HardNegative,
}

/// One picked frame of one prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct Pick {
    pub prompt: String,
    pub frame: u64,
    pub kind: RowKind,
}

impl Pick {
    pub fn label(&self) -> u8 {
        u8::from(self.kind != RowKind::HardNegative)
    }
}

/// Picks the frames of one prompt. `evaluated` holds the frames the deciding model embedded
/// (not ignored), with truth and scores; `min_gap` is in frames.
pub fn pick_frames(
    prompt: &str,
    labels: &Labels,
    evaluated: &Evaluated,
    options: &DatasetOptions,
    min_gap: u64,
) -> Vec<Pick> {
    let ignored = labels.ignored();
    let is_ignored = |n: u64| ignored.iter().any(|&(s, e)| s <= n && n <= e);
    let mut taken: Vec<u64> = Vec::new();
    let far_enough = |taken: &[u64], n: u64| taken.iter().all(|&t| t.abs_diff(n) >= min_gap.max(1));
    let mut picks = Vec::new();
    for (start, end) in labels.spans(prompt) {
        let frames = end - start + 1;
        let wanted = (options.per_segment as u64).min(frames);
        for k in 0..wanted {
            // Spread over the segment: the centres of `wanted` equal parts.
            let n = start + (2 * k + 1) * frames / (2 * wanted);
            if !is_ignored(n) && far_enough(&taken, n) {
                taken.push(n);
                picks.push(Pick {
                    prompt: prompt.to_string(),
                    frame: n,
                    kind: RowKind::Positive,
                });
            }
        }
    }
    let mut by_score: Vec<usize> = (0..evaluated.frames.len()).collect();
    by_score.sort_by(|&a, &b| evaluated.scores[a].total_cmp(&evaluated.scores[b]));
    let mut take = |order: &mut dyn Iterator<Item = &usize>, truth: bool, kind: RowKind| {
        let mut count = 0;
        for &i in order {
            if count == options.hard {
                break;
            }
            let n = evaluated.frames[i];
            if evaluated.truth[i] == truth && far_enough(&taken, n) {
                taken.push(n);
                picks.push(Pick {
                    prompt: prompt.to_string(),
                    frame: n,
                    kind,
                });
                count += 1;
            }
        }
    };
    take(&mut by_score.iter(), true, RowKind::HardPositive);
    take(&mut by_score.iter().rev(), false, RowKind::HardNegative);
    picks.sort_by_key(|p| (p.frame, p.kind));
    picks
}

/// One line of `metadata.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct DatasetRow {
    pub file_name: String,
    pub video: String,
    pub frame: u64,
    pub time: f64,
    pub prompt: String,
    pub label: u8,
    pub kind: RowKind,
    /// Each model's cosine score of the prompt at this frame (`null`: not scored there).
    pub scores: BTreeMap<String, Option<f64>>,
}

/// Why a dataset cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{} already exists and is not empty: choose a new folder", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Video(#[from] VideoError),
    #[error("cannot make frame {frame}'s image: {message}")]
    Image { frame: u64, message: String },
    #[error("this video has no labels to export: Shift-drag across the chart and Label a span (or import a CSV) first")]
    NoLabels,
    /// A model is loading, or failed to load.
    #[error(transparent)]
    NotReady(#[from] NotReady),
    #[error("{0} has embedded no frame of this video yet: wait for its index")]
    NotIndexed(String),
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// The dataset of a served video, from its models' indexes as they are (one service per model;
/// the first decides which frames are hard), for every labelled prompt.
pub fn write_from_services(
    video: &Path,
    frame_index: Arc<FrameIndex>,
    services: &[&IndexService],
    labels: &Labels,
    options: &DatasetOptions,
    out: &Path,
) -> Result<DatasetReport, DatasetError> {
    let prompts = labels.prompts();
    if prompts.is_empty() {
        return Err(DatasetError::NoLabels);
    }
    let mut names = Vec::new();
    let mut curves = Vec::new();
    let mut first_rows = Vec::new();
    let mut first_frames = Vec::new();
    for (i, service) in services.iter().enumerate() {
        let embedder = service.ready_embedder()?;
        let name = embedder.identity().name;
        let vectors = service.embed_texts(embedder.as_ref(), &prompts)?;
        let store = service
            .embeddings()
            .ok_or_else(|| DatasetError::NotIndexed(name.clone()))?;
        let file = read(store);
        let complete = service.status().state == IndexState::Done;
        curves.push(frame_scores(&file, &vectors, service.fill_radius(), complete).1);
        if i == 0 {
            first_rows = cosine_rows(&file, &vectors);
            first_frames = file.frames.clone();
        }
        names.push(name);
    }
    let min_gap = (options.min_gap_s * frame_index.fps()).round() as u64;
    let mut picks = Vec::new();
    for (prompt, scores) in prompts.iter().zip(&first_rows) {
        let evaluated = evaluated_frames(&first_frames, scores, labels, prompt);
        picks.extend(pick_frames(prompt, labels, &evaluated, options, min_gap));
    }
    let score = |model: usize, prompt: &str, frame: u64| -> Option<f64> {
        let p = prompts.iter().position(|q| q == prompt)?;
        let value = *curves[model].get(p)?.get(frame as usize)?;
        value.is_finite().then_some(f64::from(value))
    };
    let embedder = services
        .first()
        .and_then(|s| s.ready_embedder().ok())
        .cloned();
    write_dataset(
        video,
        frame_index,
        &picks,
        &names,
        &score,
        embedder.as_deref(),
        options,
        out,
    )
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetReport {
    pub rows: usize,
    pub images: usize,
    pub positives: usize,
    pub negatives: usize,
}

/// Writes the images and `metadata.jsonl` of `picks` into `out` (which must not exist, or be
/// empty). `scores(model, prompt, frame)` gives each model's score; `models` names them.
#[allow(clippy::too_many_arguments)]
pub fn write_dataset(
    video: &Path,
    frame_index: Arc<FrameIndex>,
    picks: &[Pick],
    models: &[String],
    scores: &dyn Fn(usize, &str, u64) -> Option<f64>,
    embedder: Option<&dyn Embedder>,
    options: &DatasetOptions,
    out: &Path,
) -> Result<DatasetReport, DatasetError> {
    if std::fs::read_dir(out).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(DatasetError::Exists(out.to_path_buf()));
    }
    let partial = PathBuf::from(format!("{}.partial-{}", out.display(), std::process::id()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| DatasetError::Io { path, error }
    };
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(partial.join("frames")).map_err(io(&partial))?;
    let result = write_into(
        video,
        frame_index,
        picks,
        models,
        scores,
        embedder,
        options,
        &partial,
    );
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    let _ = std::fs::remove_dir(out);
    std::fs::rename(&partial, out).map_err(io(out))?;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn write_into(
    video: &Path,
    frame_index: Arc<FrameIndex>,
    picks: &[Pick],
    models: &[String],
    scores: &dyn Fn(usize, &str, u64) -> Option<f64>,
    embedder: Option<&dyn Embedder>,
    options: &DatasetOptions,
    dir: &Path,
) -> Result<DatasetReport, DatasetError> {
    let name = video
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut decoder = Decoder::with_index(video, Arc::clone(&frame_index))?;
    let mut order: Vec<&Pick> = picks.iter().collect();
    order.sort_by_key(|p| p.frame);
    let mut report = DatasetReport::default();
    let mut lines = String::new();
    let mut last: Option<(u64, Vec<u8>)> = None;
    for (row, pick) in order.iter().enumerate() {
        let jpeg = match &last {
            Some((frame, jpeg)) if *frame == pick.frame => jpeg.clone(),
            _ => {
                let image = decoder.frame(pick.frame)?;
                let jpeg = encode(&image, pick.frame, embedder, options)?;
                report.images += 1;
                last = Some((pick.frame, jpeg.clone()));
                jpeg
            }
        };
        let file_name = format!("frames/{row:05}_{:06}.jpg", pick.frame);
        let path = dir.join(&file_name);
        std::fs::write(&path, &jpeg).map_err(|error| DatasetError::Io { path, error })?;
        let record = DatasetRow {
            file_name,
            video: name.clone(),
            frame: pick.frame,
            time: frame_index.time_s(pick.frame),
            prompt: pick.prompt.clone(),
            label: pick.label(),
            kind: pick.kind,
            scores: models
                .iter()
                .enumerate()
                .map(|(m, model)| (model.clone(), scores(m, &pick.prompt, pick.frame)))
                .collect(),
        };
        lines.push_str(&serde_json::to_string(&record).unwrap_or_default());
        lines.push('\n');
        report.rows += 1;
        if pick.label() == 1 {
            report.positives += 1;
        } else {
            report.negatives += 1;
        }
    }
    let metadata = dir.join("metadata.jsonl");
    let mut file = std::fs::File::create(&metadata).map_err(|error| DatasetError::Io {
        path: metadata.clone(),
        error,
    })?;
    file.write_all(lines.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|error| DatasetError::Io {
            path: metadata,
            error,
        })?;
    Ok(report)
}

/// The frame as JPEG: whole, or as the model's processor crops it.
fn encode(
    image: &opencv::core::Mat,
    frame: u64,
    embedder: Option<&dyn Embedder>,
    options: &DatasetOptions,
) -> Result<Vec<u8>, DatasetError> {
    let failed = |message: String| DatasetError::Image { frame, message };
    let crop = match (options.size, embedder) {
        (ImageSize::Model, Some(embedder)) => match (
            embedder
                .prepare_image(image)
                .map_err(|e| failed(e.to_string()))?,
            embedder.input_size(),
        ) {
            (PreparedImage::Cropped(rgb), Some((height, width)))
            | (PreparedImage::Resized { rgb, height, width }, _) => {
                Some(bgr_mat(&rgb, height, width).map_err(|e| failed(e.to_string()))?)
            }
            _ => return Err(failed("this model has no image size to crop to".into())),
        },
        (ImageSize::Model, None) => return Err(failed("no model to crop for".into())),
        (ImageSize::Full, _) => None,
    };
    encode_jpeg(crop.as_ref().unwrap_or(image), 0, options.jpeg_quality)
        .map_err(|e| failed(e.to_string()))
}

/// RGB bytes (`height x width x 3`) as an OpenCV BGR image.
fn bgr_mat(rgb: &[u8], height: usize, width: usize) -> opencv::Result<opencv::core::Mat> {
    use opencv::prelude::*;
    let mut mat = opencv::core::Mat::new_rows_cols_with_default(
        height as i32,
        width as i32,
        opencv::core::CV_8UC3,
        0.into(),
    )?;
    let bytes = mat.data_bytes_mut()?;
    for (out, pixel) in bytes.chunks_exact_mut(3).zip(rgb.chunks_exact(3)) {
        out.copy_from_slice(&[pixel[2], pixel[1], pixel[0]]);
    }
    Ok(mat)
}

#[cfg(test)]
mod tests {
    use investigator_core::labels::{Segment, IGNORE};

    use super::*;

    #[test]
    fn positives_spread_over_segments_and_hard_frames_come_from_the_scores() {
        let labels = Labels {
            segments: vec![
                Segment {
                    prompt: "door".into(),
                    start: 100,
                    end: 199,
                },
                Segment {
                    prompt: IGNORE.into(),
                    start: 300,
                    end: 309,
                },
            ],
        };
        // Every 2nd frame embedded; frame 250 scores highest outside, 150 lowest inside.
        let frames: Vec<u64> = (0..400)
            .step_by(2)
            .filter(|n| !(300..310).contains(n))
            .collect();
        let truth: Vec<bool> = frames.iter().map(|n| (100..200).contains(n)).collect();
        let scores: Vec<f64> = frames
            .iter()
            .map(|&n| match n {
                250 => 0.9,
                150 => -0.5,
                n if (100..200).contains(&n) => 0.3,
                n => n as f64 / 10_000.0,
            })
            .collect();
        let evaluated = Evaluated {
            frames,
            truth,
            scores,
        };
        let options = DatasetOptions {
            per_segment: 4,
            hard: 2,
            ..DatasetOptions::default()
        };
        let picks = pick_frames("door", &labels, &evaluated, &options, 10);
        let of = |kind| -> Vec<u64> {
            picks
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.frame)
                .collect()
        };
        assert_eq!(of(RowKind::Positive), vec![112, 137, 162, 187]);
        assert!(
            of(RowKind::HardPositive).contains(&150),
            "the lowest inside"
        );
        assert!(of(RowKind::HardPositive).len() == 2);
        let negatives = of(RowKind::HardNegative);
        assert_eq!(negatives.len(), 2);
        assert!(negatives.contains(&250), "{negatives:?}");
        assert!(
            negatives.iter().all(|n| !(300..310).contains(n)),
            "never an ignored frame"
        );
        let mut all: Vec<u64> = picks.iter().map(|p| p.frame).collect();
        all.sort();
        assert!(
            all.windows(2).all(|w| w[1] - w[0] >= 10),
            "min gap: {all:?}"
        );
        assert!(picks
            .iter()
            .all(|p| p.label() == u8::from(p.kind != RowKind::HardNegative)));
    }
}
