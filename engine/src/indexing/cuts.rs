//! Scene cuts, measured in the indexing pass's own decode: no second decode of the video.
//!
//! The measure follows PySceneDetect 0.7.2's `AdaptiveDetector` (scenedetect/detectors/
//! adaptive_detector.py on top of content_detector.py, with its SceneManager's defaults): a
//! frame's *content change* is the mean absolute difference of hue, saturation and value
//! (OpenCV's 8-bit HSV), weighted 1:1:1 with edges off, between it and the frame before, on a
//! copy whose longer side is shrunk to 256 pixels (bilinear); frame 0 scores 0. A frame is a
//! cut when its change is at least [`MIN_CHANGE`] and at least [`RATIO`] times the mean change of
//! the [`WINDOW`] frames on either side, and at least [`MIN_SHOT`] frames after the last cut
//! (or frame 0): PySceneDetect's defaults (15, 3.0, 2, 15 frames).
//!
//! Two additions, because a user asking for shots wants neither a photographer's flash nor the
//! end of a fade: a frame is a cut only if what follows it stays new — the frame after a cut
//! must differ from each of the [`PERSIST`] frames before the cut by at least half the cut's
//! own change (`persist`, stored beside the change), which a frame that flashes and returns
//! fails; and hue and saturation count in proportion to brightness on pixels darker than
//! [`DARK`], where they are rounding noise that flips all at once at the end of a fade to black.
//!
//! Invariants: `change[n]` compares frame n with frame n − 1 and `persist[n]` frame n with frames
//! n − 2 ..= n − 1 − PERSIST (the smallest difference); both are NaN where a frame involved did
//! not decode. Cuts are the first frames of new shots, ascending, never frame 0.

use std::collections::VecDeque;

use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;

pub const MIN_CHANGE: f32 = 15.0;
pub const RATIO: f32 = 3.0;
pub const WINDOW: usize = 2;
pub const MIN_SHOT: u64 = 15;
/// Frames before a cut that the frame after it must all differ from.
pub const PERSIST: usize = 3;
/// Values (0–255) under which a pixel's hue and saturation count less, in proportion.
const DARK: f64 = 64.0;
/// The downscaled copy's longer side (PySceneDetect's `DEFAULT_MIN_WIDTH`).
const MIN_WIDTH: i32 = 256;

/// A frame's measures: its change from the frame before, and the smallest change from the
/// `PERSIST` frames before that.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    pub change: f32,
    pub persist: f32,
}

/// Measures each decoded frame against the ones before it; fed every frame in order.
#[derive(Default)]
pub struct ChangeMeter {
    /// The last `PERSIST + 1` frames' small HSV copies, newest last; `None` for a frame that
    /// did not decode.
    recent: VecDeque<Option<Mat>>,
}

impl ChangeMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The measures of the next frame (BGR, any size).
    pub fn measure(&mut self, frame: &Mat) -> opencv::Result<Change> {
        let hsv = small_hsv(frame)?;
        let previous: Vec<Option<&Mat>> = self.recent.iter().rev().map(Option::as_ref).collect();
        let change = match previous.first() {
            None => 0.0,
            Some(Some(last)) => mean_hsv_distance(&hsv, last)?,
            Some(None) => f32::NAN,
        };
        let mut earlier = Vec::with_capacity(PERSIST);
        for frame in previous.iter().skip(1) {
            earlier.push(match frame {
                Some(m) => mean_hsv_distance(&hsv, m)?,
                None => f32::NAN,
            });
        }
        let persist = if earlier.is_empty() {
            change // fewer than two frames before: nothing to compare beyond the last
        } else if earlier.iter().any(|d| d.is_nan()) {
            f32::NAN
        } else {
            earlier.into_iter().fold(f32::INFINITY, f32::min)
        };
        self.push(Some(hsv));
        Ok(Change { change, persist })
    }

    /// Notes a frame that did not decode: its measures and the next frame's are unknown.
    pub fn skip(&mut self) -> Change {
        self.push(None);
        Change {
            change: f32::NAN,
            persist: f32::NAN,
        }
    }

    fn push(&mut self, hsv: Option<Mat>) {
        self.recent.push_back(hsv);
        while self.recent.len() > PERSIST + 1 {
            self.recent.pop_front();
        }
    }
}

/// The frame shrunk by PySceneDetect's default factor (longer side / 256, when over 256) and
/// turned into 8-bit HSV.
fn small_hsv(frame: &Mat) -> opencv::Result<Mat> {
    let size = frame.size()?;
    let longer = size.width.max(size.height);
    let factor = if longer < MIN_WIDTH {
        1.0
    } else {
        f64::from(longer) / f64::from(MIN_WIDTH)
    };
    let small = if factor > 1.0 {
        let mut small = Mat::default();
        let side = |pixels: i32| ((f64::from(pixels) / factor).round() as i32).max(1);
        let target = Size::new(side(size.width), side(size.height));
        imgproc::resize(frame, &mut small, target, 0.0, 0.0, imgproc::INTER_LINEAR)?;
        small
    } else {
        frame.clone()
    };
    let mut hsv = Mat::default();
    imgproc::cvt_color_def(&small, &mut hsv, imgproc::COLOR_BGR2HSV)?;
    without_dark_colour(&hsv)
}

/// The HSV image as floats, hue and saturation weighted by `min(1, value / DARK)`: on dark
/// pixels they are rounding noise (a pixel of (10, 4, 2) has full saturation), and unweighted
/// they would flip all at once in the last frames of a fade to black. At or above [`DARK`] the
/// values are PySceneDetect's, unchanged.
fn without_dark_colour(hsv: &Mat) -> opencv::Result<Mat> {
    use opencv::core::{self, Vector, CV_32F};
    let mut channels = Vector::<Mat>::new();
    core::split(hsv, &mut channels)?;
    let mut value = Mat::default();
    channels.get(2)?.convert_to(&mut value, CV_32F, 1.0, 0.0)?;
    let mut scaled = Mat::default();
    value.convert_to(&mut scaled, CV_32F, 1.0 / DARK, 0.0)?;
    let mut weight = Mat::default();
    core::min(&scaled, &core::Scalar::all(1.0), &mut weight)?;
    let mut out = Vector::<Mat>::new();
    for channel in 0..2 {
        let mut plane = Mat::default();
        channels
            .get(channel)?
            .convert_to(&mut plane, CV_32F, 1.0, 0.0)?;
        let mut weighted = Mat::default();
        core::multiply(&plane, &weight, &mut weighted, 1.0, -1)?;
        out.push(weighted);
    }
    out.push(value);
    let mut merged = Mat::default();
    core::merge(&out, &mut merged)?;
    Ok(merged)
}

/// Mean over pixels and the three channels of |a − b| (equal weights: the mean of the three
/// per-channel means).
fn mean_hsv_distance(a: &Mat, b: &Mat) -> opencv::Result<f32> {
    if a.size()? != b.size()? {
        return Ok(f32::NAN); // a resolution change mid-stream: unknown, not a crash
    }
    let mut difference = Mat::default();
    opencv::core::absdiff(a, b, &mut difference)?;
    let means = opencv::core::mean_def(&difference)?;
    Ok(((means[0] + means[1] + means[2]) / 3.0) as f32)
}

/// A detected cut: the first frame of a new shot and its content change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cut {
    pub frame: u64,
    pub change: f32,
}

/// The cuts in per-frame measures (`change[n]` and `persist[n]` for frames `0..len`).
pub fn find_cuts(change: &[f32], persist: &[f32]) -> Vec<Cut> {
    let frames = change.len().min(persist.len());
    let mut cuts = Vec::new();
    // PySceneDetect counts the minimum shot from the first frame it scores (frame 0).
    let mut last_cut: u64 = 0;
    for t in WINDOW..frames.saturating_sub(WINDOW) {
        let target = change[t];
        let neighbours = (t - WINDOW..t).chain(t + 1..=t + WINDOW).map(|i| change[i]);
        let (sum, unknown) = neighbours.fold((0.0f32, false), |(s, u), v| (s + v, u || v.is_nan()));
        if target.is_nan() || unknown {
            continue;
        }
        let average = sum / (2 * WINDOW) as f32;
        let ratio = if average.abs() < 1e-5 {
            if target >= MIN_CHANGE {
                255.0
            } else {
                0.0
            }
        } else {
            (target / average).min(255.0)
        };
        let stays_new = persist.get(t + 1).is_some_and(|&p| p >= target * 0.5);
        if ratio >= RATIO && target >= MIN_CHANGE && t as u64 - last_cut >= MIN_SHOT && stays_new {
            last_cut = t as u64;
            cuts.push(Cut {
                frame: t as u64,
                change: target,
            });
        }
    }
    cuts
}

/// The cuts measured in a cache file so far, and how many frames were measured (all of the
/// video's once an index pass has finished; fewer for a file indexed before cuts existed).
pub fn cuts_in(file: &store::cache::EmbeddingFile) -> (Vec<Cut>, u64) {
    match &file.scene {
        Some(scene) => (find_cuts(&scene.change, &scene.persist), scene.measured()),
        None => (Vec::new(), 0),
    }
}

/// How far apart consecutive embedded frames are for the model: `1 − cos(e[i], e[i−1])` for
/// each row of `vectors` (L2-normalised rows of `dimension` values) after the first; the first
/// row gets 0. Free to compute, and a second opinion on a cut where frames are sampled.
pub fn embedding_change(vectors: &[f32], dimension: usize) -> Vec<f32> {
    if dimension == 0 {
        return Vec::new();
    }
    let rows: Vec<&[f32]> = vectors.chunks_exact(dimension).collect();
    let mut out = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let change = match i.checked_sub(1) {
            None => 0.0,
            Some(j) => 1.0 - row.iter().zip(rows[j]).map(|(a, b)| a * b).sum::<f32>(),
        };
        out.push(change);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, CV_8UC3};

    fn solid(b: f64, g: f64, r: f64) -> Mat {
        Mat::new_rows_cols_with_default(144, 256, CV_8UC3, Scalar::new(b, g, r, 0.0)).unwrap()
    }

    /// Measures a sequence of frames, one colour per frame.
    fn measures(frames: &[Mat]) -> (Vec<f32>, Vec<f32>) {
        let mut meter = ChangeMeter::new();
        frames
            .iter()
            .map(|f| meter.measure(f).map(|c| (c.change, c.persist)).unwrap())
            .unzip()
    }

    #[test]
    fn the_change_is_the_mean_hsv_distance() {
        // Black to white: H 0 → 0, S 0 → 0, V 0 → 255: mean (0 + 0 + 255) / 3 = 85.
        let (change, _) = measures(&[solid(0.0, 0.0, 0.0), solid(255.0, 255.0, 255.0)]);
        assert_eq!(change[0], 0.0);
        assert!((change[1] - 85.0).abs() < 1e-4, "{change:?}");
    }

    #[test]
    fn a_hard_cut_is_found_at_its_first_frame() {
        let mut frames: Vec<Mat> = (0..40).map(|_| solid(200.0, 50.0, 50.0)).collect();
        frames.extend((0..40).map(|_| solid(30.0, 180.0, 90.0)));
        let (change, persist) = measures(&frames);
        let cuts = find_cuts(&change, &persist);
        assert_eq!(cuts.iter().map(|c| c.frame).collect::<Vec<_>>(), [40]);
        assert!(cuts[0].change >= MIN_CHANGE);
    }

    #[test]
    fn a_one_frame_flash_and_a_slow_fade_are_not_cuts() {
        let grey = |v: f64| solid(v, v, v);
        let mut frames: Vec<Mat> = (0..30).map(|_| grey(120.0)).collect();
        frames.push(grey(255.0)); // a flash at frame 30
        frames.extend((0..30).map(|_| grey(120.0)));
        // A fade to black over 15 frames (8 grey levels a frame), then black.
        frames.extend((1..=15).map(|i| grey(120.0 - 8.0 * f64::from(i))));
        frames.extend((0..20).map(|_| grey(0.0)));
        let (change, persist) = measures(&frames);
        assert!(
            change[30] >= MIN_CHANGE,
            "the flash is a big change: {}",
            change[30]
        );
        assert_eq!(find_cuts(&change, &persist), []);
        // A coloured fade: near black, hue and saturation of (10, 4, 2) are noise, not content.
        let mut frames: Vec<Mat> = (0..30).map(|_| solid(200.0, 80.0, 40.0)).collect();
        frames.extend((1..=20).map(|i| {
            let light = 1.0 - f64::from(i) / 20.0;
            solid(200.0 * light, 80.0 * light, 40.0 * light)
        }));
        frames.extend((0..20).map(|_| solid(0.0, 0.0, 0.0)));
        let (change, persist) = measures(&frames);
        assert_eq!(find_cuts(&change, &persist), [], "{change:?}");
    }

    #[test]
    fn cuts_closer_than_the_minimum_shot_count_once() {
        let colours = [(200.0, 0.0, 0.0), (0.0, 200.0, 0.0), (0.0, 0.0, 200.0)];
        let mut frames = Vec::new();
        for (i, &(b, g, r)) in colours.iter().enumerate() {
            let length = if i == 1 { 5 } else { 30 }; // the middle shot is 5 frames
            frames.extend((0..length).map(|_| solid(b, g, r)));
        }
        let (change, persist) = measures(&frames);
        let found: Vec<u64> = find_cuts(&change, &persist)
            .iter()
            .map(|c| c.frame)
            .collect();
        assert_eq!(found, [30]);
    }

    #[test]
    fn frames_that_did_not_decode_are_unknown_not_cuts() {
        let mut meter = ChangeMeter::new();
        let mut change = Vec::new();
        let mut persist = Vec::new();
        for n in 0..40 {
            let c = if n == 20 {
                meter.skip()
            } else {
                meter.measure(&solid(90.0, 90.0, 90.0)).unwrap()
            };
            change.push(c.change);
            persist.push(c.persist);
        }
        assert!(change[20].is_nan() && change[21].is_nan());
        assert_eq!(change[22], 0.0);
        assert_eq!(find_cuts(&change, &persist), []);
    }

    #[test]
    fn embedding_change_is_one_minus_cosine() {
        let vectors = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0];
        assert_eq!(embedding_change(&vectors, 2), [0.0, 0.0, 1.0]);
        assert!(embedding_change(&[], 2).is_empty());
    }
}
