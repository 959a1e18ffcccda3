//! Why a frame scores as it does for a prompt, as it travels to the page and the CLI's JSON: the
//! relevance of each patch of the model's input (gradient-weighted attention relevance, Chefer,
//! Gur and Wolf 2021; computed by the engine), where that input lies in the frame, and the maths
//! both fronts draw it with.
//!
//! Invariants: `values` is row-major, `rows x cols`, the model's patch grid; the grid covers the
//! crop box exactly (the box may reach past the frame where the model's processor pads); the
//! crop box is in the pixels of the frame as decoded (upright), the size `frame_width x
//! frame_height` says.

use serde::{Deserialize, Serialize};

/// The part of a frame the model sees, in the frame's pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CropBox {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

impl CropBox {
    pub fn right(&self) -> f64 {
        self.left + self.width
    }

    pub fn bottom(&self) -> f64 {
        self.top + self.height
    }

    /// Whether the model sees all of a `width x height` frame (to half a pixel).
    pub fn covers(&self, width: u32, height: u32) -> bool {
        self.left <= 0.5
            && self.top <= 0.5
            && self.right() >= f64::from(width) - 0.5
            && self.bottom() >= f64::from(height) - 0.5
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    pub frame: u64,
    pub prompt: String,
    /// The model's name.
    pub model: String,
    pub rows: u32,
    pub cols: u32,
    /// Each patch's relevance, row-major (0 or more; only their ratios mean something).
    pub values: Vec<f32>,
    pub crop: CropBox,
    pub frame_width: u32,
    pub frame_height: u32,
    /// The model's logit for the prompt (`logit_scale · cos`, SigLIP `+ logit_bias`) and the
    /// cosine in it.
    pub logit: f32,
    pub cosine: f32,
    /// Vision layers in the model, and the first whose attention the relevance uses.
    pub layers: u32,
    pub start_layer: u32,
}

impl Explanation {
    /// The values scaled to 0..=1 (lowest to highest); all 0 where they are all equal.
    pub fn normalized(&self) -> Vec<f32> {
        let (low, high) = self
            .values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let span = high - low;
        self.values
            .iter()
            .map(|&v| if span > 0.0 { (v - low) / span } else { 0.0 })
            .collect()
    }

    /// The patch (row, column) under frame pixel `(x, y)`; `None` outside the frame or where
    /// the model does not look.
    pub fn patch_at(&self, x: f64, y: f64) -> Option<(u32, u32)> {
        let inside_frame = x >= 0.0
            && y >= 0.0
            && x < f64::from(self.frame_width)
            && y < f64::from(self.frame_height);
        let c = &self.crop;
        if !inside_frame || self.rows == 0 || self.cols == 0 || c.width <= 0.0 || c.height <= 0.0 {
            return None;
        }
        let u = (x - c.left) / c.width;
        let v = (y - c.top) / c.height;
        if !(0.0..1.0).contains(&u) || !(0.0..1.0).contains(&v) {
            return None;
        }
        Some((
            ((v * f64::from(self.rows)) as u32).min(self.rows - 1),
            ((u * f64::from(self.cols)) as u32).min(self.cols - 1),
        ))
    }

    /// The relevance under frame pixel `(x, y)`, raw and normalised; `None` where
    /// [`patch_at`](Self::patch_at) is.
    pub fn value_at(&self, x: f64, y: f64) -> Option<(f32, f32)> {
        let (row, col) = self.patch_at(x, y)?;
        let at = (row * self.cols + col) as usize;
        let raw = *self.values.get(at)?;
        Some((raw, self.normalized()[at]))
    }

    /// What the page and the CLI say when the model does not see the frame as it is: a part it
    /// never sees (a centre crop), or all of it squashed to another shape (a square input, or
    /// NaFlex's whole patches).
    pub fn view_note(&self) -> Option<String> {
        if self.crop.covers(self.frame_width, self.frame_height) {
            return self.squash_note();
        }
        let (w, h) = (f64::from(self.frame_width), f64::from(self.frame_height));
        let seen_w = (self.crop.right().min(w) - self.crop.left.max(0.0)).max(0.0);
        let seen_h = (self.crop.bottom().min(h) - self.crop.top.max(0.0)).max(0.0);
        let share = if w > 0.0 && h > 0.0 {
            seen_w * seen_h / (w * h)
        } else {
            0.0
        };
        let sides = if seen_w < w - 0.5 && seen_h < h - 0.5 {
            "its edges"
        } else if seen_w < w - 0.5 {
            "its left and right edges"
        } else {
            "its top and bottom edges"
        };
        Some(format!(
            "the model sees only the middle {:.0}% of this frame (its centre crop): {sides} never count in any score",
            share * 100.0
        ))
    }
}

impl Explanation {
    /// The whole frame reaches the model, but at another aspect ratio than on screen (patches
    /// are square, so the grid's is the input's): said where it differs by more than 3%.
    fn squash_note(&self) -> Option<String> {
        if self.rows == 0 || self.cols == 0 || self.crop.height <= 0.0 {
            return None;
        }
        let frame = self.crop.width / self.crop.height;
        let model = f64::from(self.cols) / f64::from(self.rows);
        if (frame / model - 1.0).abs() <= 0.03 {
            return None;
        }
        let (axis, share) = if frame > model {
            ("its width", model / frame)
        } else {
            ("its height", frame / model)
        };
        Some(format!(
            "the model sees all of this frame, but squashed from {frame:.2}:1 to {model:.2}:1 ({} x {} patches): {axis} is pressed to {:.0}%, so shapes look other to it than here",
            self.cols,
            self.rows,
            share * 100.0
        ))
    }
}

/// The colour of normalised relevance `t` (0 to 1): the classic "jet" map (blue, cyan, yellow,
/// red), the one the method's authors draw with; the page and the CLI both use this.
pub fn heat_rgb(t: f32) -> [u8; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let channel =
        |centre: f32| ((1.5 - (4.0 * t - centre).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(3.0), channel(2.0), channel(1.0)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide() -> Explanation {
        // A 1280x720 frame under a 224 centre crop: 398x224 after the resize, columns 87..311.
        let scale = 1280.0 / 398.0;
        Explanation {
            rows: 2,
            cols: 2,
            values: vec![0.0, 1.0, 2.0, 4.0],
            crop: CropBox {
                left: 87.0 * scale,
                top: 0.0,
                width: 224.0 * scale,
                height: 720.0,
            },
            frame_width: 1280,
            frame_height: 720,
            ..Explanation::default()
        }
    }

    #[test]
    fn pixels_map_to_the_patch_under_them_and_none_outside_the_crop() {
        let e = wide();
        let (left, right) = (e.crop.left, e.crop.right());
        assert_eq!(e.patch_at(left + 1.0, 1.0), Some((0, 0)));
        assert_eq!(e.patch_at(right - 1.0, 719.0), Some((1, 1)));
        assert_eq!(
            e.patch_at(left + e.crop.width / 2.0 + 1.0, 10.0),
            Some((0, 1))
        );
        assert_eq!(e.patch_at(left - 1.0, 10.0), None);
        assert_eq!(e.patch_at(right + 1.0, 10.0), None);
        assert_eq!(e.patch_at(640.0, 720.0), None, "past the frame");
        assert_eq!(e.value_at(right - 1.0, 719.0), Some((4.0, 1.0)));
        assert_eq!(e.value_at(right - 1.0, 1.0), Some((1.0, 0.25)));
    }

    #[test]
    fn a_wide_frame_says_which_part_the_model_never_sees() {
        let note = wide().view_note().unwrap();
        assert!(
            note.contains("middle 56%") && note.contains("left and right"),
            "{note}"
        );
        let whole = Explanation {
            crop: CropBox {
                left: 0.0,
                top: 0.0,
                width: 1280.0,
                height: 720.0,
            },
            rows: 9,
            cols: 16,
            ..wide()
        };
        assert_eq!(whole.view_note(), None);
        // A square input (SigLIP's box, PE-Core's squash) sees a 16:9 frame pressed together.
        let squashed = Explanation {
            rows: 2,
            cols: 2,
            ..whole.clone()
        };
        let note = squashed.view_note().unwrap();
        assert!(
            note.contains("all of this frame")
                && note.contains("1.78:1 to 1.00:1")
                && note.contains("its width is pressed to 56%"),
            "{note}"
        );
        // NaFlex's whole patches keep the shape within 3%: a 12x21 grid for 16:9.
        let naflex = Explanation {
            rows: 12,
            cols: 21,
            ..whole
        };
        assert_eq!(naflex.view_note(), None);
    }

    #[test]
    fn flat_maps_normalise_to_zero_and_colours_run_blue_to_red() {
        let flat = Explanation {
            values: vec![3.0; 4],
            ..wide()
        };
        assert_eq!(flat.normalized(), vec![0.0; 4]);
        assert_eq!(heat_rgb(0.0), [0, 0, 128]);
        assert_eq!(heat_rgb(0.5), [128, 255, 128]);
        assert_eq!(heat_rgb(1.0), [128, 0, 0]);
        assert_eq!(heat_rgb(f32::NAN), heat_rgb(0.0));
    }
}
