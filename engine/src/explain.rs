//! Why a frame scores as it does for a prompt, for the fronts: the model's relevance map
//! (`embed::local::explain`) of an exact frame, as `investigator_core::explain::Explanation`;
//! the map painted over the frame (the CLI's PNG); and, for the web, a bounded cache with one
//! explanation computed at a time.
//!
//! Invariants: the frame is the one the decoder gives for its number (the same frame indexing
//! embeds and the page shows); an explanation is computed on one thread at a time (one takes
//! both cores for a fraction of a second, as an indexing batch does; frames keep being served
//! beside it), at most `MAX_WAITING` more wait and the next are told to try again; the cache
//! holds at most `CACHE_ENTRIES` maps (a few KB each) and one decoded frame.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use investigator_core::explain::{heat_rgb, CropBox, Explanation};
use opencv::core::Mat;
use opencv::prelude::*;

use crate::embed::{EmbedError, Embedder};
use crate::frames::FrameServer;
use crate::indexing::service::NotReady;
use crate::indexing::IndexService;
use crate::sync::lock;
use crate::video::VideoError;

/// The decoder slot explanations read frames with: the viewers' own stay where playback left
/// them.
pub const EXPLAIN_DECODER: &str = "explanations";
/// Explanations kept in memory, most recently used last.
const CACHE_ENTRIES: usize = 256;
/// Requests that may wait for the one being computed.
const MAX_WAITING: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    NotReady(#[from] NotReady),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Video(#[from] VideoError),
    #[error("the prompt is empty: type what the heatmap should look for")]
    EmptyPrompt,
    #[error("{0} heatmaps are being computed or waiting already: try again in a moment")]
    Busy(usize),
}

impl ExplainError {
    /// Whether the request is at fault (a prompt, frame, model or layer it named).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Self::EmptyPrompt
                | Self::Video(VideoError::OutOfRange { .. })
                | Self::Embed(EmbedError::NoGradients | EmbedError::StartLayer { .. })
        )
    }
}

/// Whether `embedder` can explain its scores for `prompt` (before any work is done for it).
pub fn check_explainable(embedder: &dyn Embedder, prompt: &str) -> Result<(), ExplainError> {
    if prompt.trim().is_empty() {
        Err(ExplainError::EmptyPrompt)
    } else if !embedder.explains() {
        Err(EmbedError::NoGradients.into())
    } else {
        Ok(())
    }
}

/// The explanation of `image` (frame `frame`, upright BGR) for `prompt`, whose embedding is
/// `text` (see [`check_explainable`]).
pub fn explain_image(
    embedder: &dyn Embedder,
    image: &Mat,
    frame: u64,
    (prompt, text): (&str, &[f32]),
    start_layer: Option<usize>,
) -> Result<Explanation, ExplainError> {
    check_explainable(embedder, prompt)?;
    let relevance = embedder.explain(image, text, start_layer)?;
    let (left, top, width, height) = relevance.crop;
    Ok(Explanation {
        frame,
        prompt: prompt.to_string(),
        model: embedder.identity().name,
        rows: relevance.rows as u32,
        cols: relevance.cols as u32,
        values: relevance.values,
        crop: CropBox {
            left,
            top,
            width,
            height,
        },
        frame_width: image.cols().max(0) as u32,
        frame_height: image.rows().max(0) as u32,
        logit: relevance.logit,
        cosine: relevance.cosine,
        layers: relevance.layers as u32,
        start_layer: relevance.start_layer as u32,
    })
}

/// `image` with the explanation painted over it: the map, upsampled bilinearly from the patch
/// grid to the crop box, in [`heat_rgb`]'s colours at `opacity` (0 to 1); outside the crop
/// box the frame dimmed (the model never sees it); the box outlined in white.
pub fn overlay_image(image: &Mat, explanation: &Explanation, opacity: f32) -> opencv::Result<Mat> {
    let mut out = image.try_clone()?;
    let (width, height) = (out.cols().max(0) as usize, out.rows().max(0) as usize);
    if out.typ() != opencv::core::CV_8UC3 || !out.is_continuous() {
        return Err(opencv::Error::new(
            opencv::core::StsBadArg,
            "the overlay paints 8-bit BGR frames",
        ));
    }
    paint_overlay(out.data_bytes_mut()?, width, height, explanation, opacity);
    Ok(out)
}

/// [`overlay_image`] as PNG bytes.
pub fn overlay_png(
    image: &Mat,
    explanation: &Explanation,
    opacity: f32,
) -> opencv::Result<Vec<u8>> {
    let painted = overlay_image(image, explanation, opacity)?;
    let mut bytes = opencv::core::Vector::<u8>::new();
    opencv::imgcodecs::imencode(".png", &painted, &mut bytes, &opencv::core::Vector::new())?;
    Ok(bytes.to_vec())
}

/// [`overlay_image`] on `width x height` BGR bytes.
pub fn paint_overlay(bgr: &mut [u8], width: usize, height: usize, e: &Explanation, opacity: f32) {
    let heat = e.normalized();
    let (rows, cols) = (e.rows as usize, e.cols as usize);
    let opacity = opacity.clamp(0.0, 1.0);
    let crop = e.crop;
    let outline = 2.0;
    // Bilinear, pixel centres aligned (as PyTorch's interpolate with align_corners=False).
    let sample = |u: f64, v: f64| -> f32 {
        let x = (u * cols as f64 - 0.5).clamp(0.0, cols as f64 - 1.0);
        let y = (v * rows as f64 - 0.5).clamp(0.0, rows as f64 - 1.0);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(cols - 1), (y0 + 1).min(rows - 1));
        let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
        let at = |r: usize, c: usize| heat[r * cols + c];
        let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
        let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
        top * (1.0 - fy) + bottom * fy
    };
    for y in 0..height {
        let cy = y as f64 + 0.5;
        for x in 0..width {
            let cx = x as f64 + 0.5;
            let pixel = &mut bgr[(y * width + x) * 3..][..3];
            let inside =
                cx >= crop.left && cx < crop.right() && cy >= crop.top && cy < crop.bottom();
            if !inside || rows == 0 || cols == 0 || heat.len() != rows * cols {
                for channel in pixel.iter_mut() {
                    *channel = (f32::from(*channel) * 0.35).round() as u8;
                }
                continue;
            }
            let near_edge = cx - crop.left < outline
                || crop.right() - cx < outline
                || cy - crop.top < outline
                || crop.bottom() - cy < outline;
            if near_edge {
                pixel.fill(255);
                continue;
            }
            let [r, g, b] = heat_rgb(sample(
                (cx - crop.left) / crop.width,
                (cy - crop.top) / crop.height,
            ));
            for (channel, colour) in pixel.iter_mut().zip([b, g, r]) {
                let mixed = f32::from(*channel) * (1.0 - opacity) + f32::from(colour) * opacity;
                *channel = mixed.round() as u8;
            }
        }
    }
}

/// What tells two explanations apart: the video, the model, the frame, the prompt, the layer.
type Key = (PathBuf, String, u64, String, Option<usize>);

/// The web's explanations: cached, computed one at a time.
#[derive(Default)]
pub struct Explanations {
    cache: Mutex<VecDeque<(Key, Arc<Explanation>)>>,
    /// Held while one is computed.
    gate: Mutex<()>,
    /// Requests computing or waiting to.
    busy: AtomicUsize,
    /// The last frame decoded for an explanation: another prompt on it decodes nothing.
    last_frame: Mutex<Option<(PathBuf, u64, Mat)>>,
}

impl Explanations {
    pub fn new() -> Self {
        Self::default()
    }

    /// The explanation of frame `frame` of `frames`' video by `index`'s model. Blocking.
    pub fn explain_blocking(
        &self,
        frames: &FrameServer,
        index: &IndexService,
        frame: u64,
        prompt: &str,
        start_layer: Option<usize>,
    ) -> Result<Arc<Explanation>, ExplainError> {
        let embedder = index.ready_embedder()?;
        check_explainable(embedder.as_ref(), prompt)?;
        let video = frames
            .video()
            .map_err(|error| VideoError::Unavailable(error.public()))?;
        let identity = embedder.identity();
        let key: Key = (
            video.path().to_path_buf(),
            format!("{}@{}", identity.name, identity.revision),
            frame,
            prompt.to_string(),
            start_layer,
        );
        if let Some(found) = self.cached(&key) {
            return Ok(found);
        }
        let waiting = self.busy.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.busy);
        if waiting > MAX_WAITING {
            return Err(ExplainError::Busy(waiting));
        }
        let _turn = lock(&self.gate);
        // Another request may have computed it while this one waited.
        if let Some(found) = self.cached(&key) {
            return Ok(found);
        }
        // The prompt's embedding from the model's text cache: a prompt on the chart costs no
        // text pass.
        let text = index
            .embed_texts(embedder.as_ref(), &[prompt.to_string()])?
            .pop()
            .unwrap_or_default();
        let image = self.frame(frames, &key.0, frame)?;
        let explanation = Arc::new(explain_image(
            embedder.as_ref(),
            &image,
            frame,
            (prompt, &text),
            start_layer,
        )?);
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHE_ENTRIES {
            cache.pop_front();
        }
        cache.push_back((key, Arc::clone(&explanation)));
        Ok(explanation)
    }

    fn cached(&self, key: &Key) -> Option<Arc<Explanation>> {
        let mut cache = lock(&self.cache);
        let at = cache.iter().position(|(k, _)| k == key)?;
        let entry = cache.remove(at)?;
        let found = Arc::clone(&entry.1);
        cache.push_back(entry);
        Some(found)
    }

    fn frame(&self, frames: &FrameServer, video: &PathBuf, frame: u64) -> Result<Mat, VideoError> {
        let mut last = lock(&self.last_frame);
        if let Some((path, number, image)) = last.as_ref() {
            if path == video && *number == frame {
                return Ok(image.clone());
            }
        }
        let image = frames.frame_image_blocking(EXPLAIN_DECODER, frame)?;
        *last = Some((video.clone(), frame, image.clone()));
        Ok(image)
    }
}

/// Counts a request out of `busy` however it ends.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlay_colours_the_crop_by_relevance_and_dims_what_the_model_never_sees() {
        // A 32x16 grey frame; the model sees its middle 16x16 (columns 8..24) as 2x2 patches,
        // the bottom-right one relevant.
        let e = Explanation {
            rows: 2,
            cols: 2,
            values: vec![0.0, 0.0, 0.0, 1.0],
            crop: CropBox {
                left: 8.0,
                top: 0.0,
                width: 16.0,
                height: 16.0,
            },
            frame_width: 32,
            frame_height: 16,
            ..Explanation::default()
        };
        let paint = |opacity: f32| {
            let mut bgr = vec![100u8; 32 * 16 * 3];
            paint_overlay(&mut bgr, 32, 16, &e, opacity);
            bgr
        };
        let bgr = paint(1.0);
        let px =
            |x: usize, y: usize| -> [u8; 3] { bgr[(y * 32 + x) * 3..][..3].try_into().unwrap() };
        assert_eq!(px(3, 8), [35, 35, 35], "left of the crop: dimmed");
        assert_eq!(px(28, 8), [35, 35, 35], "right of the crop: dimmed");
        assert_eq!(px(8, 8), [255, 255, 255], "the crop's outline");
        let bgr_of = |t: f32| {
            let [r, g, b] = heat_rgb(t);
            [b, g, r]
        };
        assert_eq!(px(20, 12), bgr_of(1.0), "the relevant patch");
        assert_eq!(px(10, 2), bgr_of(0.0), "the others");
        // Column 15 lies 7/16 of the way from the left patch centre (x 12) to the right (x 20).
        assert_eq!(px(15, 12), bgr_of(0.4375), "bilinear between patch centres");
        // Half opacity mixes the frame in.
        let half = paint(0.5);
        let [b0, _, _] = bgr_of(0.0);
        assert_eq!(
            half[(2 * 32 + 10) * 3],
            ((100.0 + f32::from(b0)) / 2.0).round() as u8
        );
    }

    #[test]
    fn only_bad_requests_are_the_requests_fault() {
        assert!(ExplainError::EmptyPrompt.is_bad_request());
        assert!(ExplainError::Embed(EmbedError::NoGradients).is_bad_request());
        assert!(ExplainError::Video(VideoError::OutOfRange {
            frame: 9,
            frames: 3
        })
        .is_bad_request());
        assert!(!ExplainError::Busy(9).is_bad_request());
        assert!(!ExplainError::Embed(EmbedError::Model("x".into())).is_bad_request());
    }
}
