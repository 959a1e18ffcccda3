//! CLIP image preprocessing equal to transformers' `CLIPImageProcessor`: resize the shortest
//! side with bicubic resampling, centre-crop, rescale by 1/255, normalise by the model's
//! mean/std; channel-first RGB floats.
//!
//! The processor resizes through Pillow on 8-bit images, so this reproduces Pillow's
//! resampler exactly (its `Resample.c`): a separable convolution (horizontal pass, then
//! vertical) whose support widens with the downscale factor (antialiasing), fixed-point
//! coefficients with 22 fractional bits, and rounding to 8 bits after each pass. OpenCV's
//! `INTER_CUBIC` does not antialias and differs by many grey levels on downscales.

use serde::Deserialize;

/// CLIP's normalisation constants, used when the model ships no preprocessor config.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Pillow's fixed-point precision for 8-bit resampling: 32 bits - 8 - 2.
const PRECISION_BITS: u32 = 22;

#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    /// Target of the shortest side after resizing.
    pub shortest_edge: u32,
    pub crop_height: u32,
    pub crop_width: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl PreprocessConfig {
    /// The defaults of `CLIPImageProcessor` for a model with this input size.
    pub fn for_image_size(size: u32) -> Self {
        Self {
            shortest_edge: size,
            crop_height: size,
            crop_width: size,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }

    /// Reads a Hugging Face `preprocessor_config.json`; absent fields keep CLIP's defaults.
    pub fn from_json(text: &str, image_size: u32) -> Result<Self, String> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Size {
            Edge { shortest_edge: u32 },
            Box { height: u32, width: u32 },
            Square(u32),
        }
        #[derive(Deserialize)]
        struct Raw {
            size: Option<Size>,
            crop_size: Option<Size>,
            image_mean: Option<[f32; 3]>,
            image_std: Option<[f32; 3]>,
            resample: Option<u32>,
        }
        let raw: Raw =
            serde_json::from_str(text).map_err(|e| format!("preprocessor_config.json: {e}"))?;
        // Pillow's resampling codes: 3 = BICUBIC, the only one CLIP uses.
        if let Some(resample) = raw.resample.filter(|&r| r != 3) {
            return Err(format!("preprocessor_config.json asks for resampling filter {resample}; only bicubic (3) is supported"));
        }
        let mut config = Self::for_image_size(image_size);
        match raw.size {
            Some(Size::Edge { shortest_edge }) | Some(Size::Square(shortest_edge)) => config.shortest_edge = shortest_edge,
            Some(Size::Box { .. }) => return Err("preprocessor_config.json: a fixed resize box is not supported; CLIP resizes the shortest edge".into()),
            None => {}
        }
        match raw.crop_size {
            Some(Size::Box { height, width }) => {
                (config.crop_height, config.crop_width) = (height, width)
            }
            Some(Size::Square(s)) | Some(Size::Edge { shortest_edge: s }) => {
                (config.crop_height, config.crop_width) = (s, s)
            }
            None => {}
        }
        config.mean = raw.image_mean.unwrap_or(CLIP_MEAN);
        config.std = raw.image_std.unwrap_or(CLIP_STD);
        Ok(config)
    }
}

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
pub struct RgbImage<'a> {
    pub width: usize,
    pub height: usize,
    pub pixels: &'a [u8],
}

/// `CLIPImageProcessor(image)["pixel_values"][0]`: `3 * crop_height * crop_width` floats.
pub fn preprocess(image: &RgbImage<'_>, config: &PreprocessConfig) -> Vec<f32> {
    let (width, height) = resized_size(image.width, image.height, config.shortest_edge as usize);
    let resized = resize_bicubic(image, width, height);
    let (crop_w, crop_h) = (config.crop_width as usize, config.crop_height as usize);
    // transformers' center_crop: integer offsets, padding with zeros where the image is smaller.
    let top = (height as isize - crop_h as isize).div_euclid(2);
    let left = (width as isize - crop_w as isize).div_euclid(2);
    let mut out = vec![0f32; 3 * crop_h * crop_w];
    for c in 0..3 {
        let zero = (0.0 - config.mean[c]) / config.std[c];
        for y in 0..crop_h {
            for x in 0..crop_w {
                let (sy, sx) = (y as isize + top, x as isize + left);
                let value = if sy >= 0 && sx >= 0 && (sy as usize) < height && (sx as usize) < width
                {
                    let v = resized[(sy as usize * width + sx as usize) * 3 + c] as f32 / 255.0;
                    (v - config.mean[c]) / config.std[c]
                } else {
                    zero
                };
                out[(c * crop_h + y) * crop_w + x] = value;
            }
        }
    }
    out
}

/// transformers' `get_resize_output_image_size(..., default_to_square=False)`: the short side
/// becomes `shortest_edge`, the long side is scaled and truncated.
pub fn resized_size(width: usize, height: usize, shortest_edge: usize) -> (usize, usize) {
    if width <= height {
        (
            shortest_edge,
            (shortest_edge as f64 * height as f64 / width as f64) as usize,
        )
    } else {
        (
            (shortest_edge as f64 * width as f64 / height as f64) as usize,
            shortest_edge,
        )
    }
}

fn bicubic(x: f64) -> f64 {
    // Pillow's bicubic kernel, a = -0.5.
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// For each output index: the first input index and the fixed-point weights.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let inv = 1.0 / filter_scale;
            // Pillow truncates with (int) casts here; the values are non-negative or clamped.
            let xmin = ((center - support + 0.5) as isize).max(0) as usize;
            let xmax = (((center + support + 0.5) as isize).min(in_size as isize) as usize)
                .saturating_sub(xmin);
            let weights: Vec<f64> = (0..xmax)
                .map(|x| bicubic((x as f64 + xmin as f64 - center + 0.5) * inv))
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|w| {
                    let k = if total != 0.0 { w / total } else { 0.0 };
                    (k * f64::from(1u32 << PRECISION_BITS) + if k < 0.0 { -0.5 } else { 0.5 })
                        as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(value: i64) -> u8 {
    (value >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `Image.resize(size, BICUBIC)` on an RGB image: horizontal pass, then vertical.
pub fn resize_bicubic(image: &RgbImage<'_>, width: usize, height: usize) -> Vec<u8> {
    let round = 1i64 << (PRECISION_BITS - 1);
    let (in_w, in_h) = (image.width, image.height);
    let horizontal: Vec<u8> = if width == in_w {
        image.pixels.to_vec()
    } else {
        let coeffs = coefficients(in_w, width);
        let mut out = vec![0u8; width * in_h * 3];
        for y in 0..in_h {
            let row = &image.pixels[y * in_w * 3..(y + 1) * in_w * 3];
            for (x, (start, weights)) in coeffs.iter().enumerate() {
                for c in 0..3 {
                    let sum: i64 = weights
                        .iter()
                        .enumerate()
                        .map(|(i, &w)| i64::from(row[(start + i) * 3 + c]) * i64::from(w))
                        .sum();
                    out[(y * width + x) * 3 + c] = clip8(sum + round);
                }
            }
        }
        out
    };
    if height == in_h {
        return horizontal;
    }
    let coeffs = coefficients(in_h, height);
    let mut out = vec![0u8; width * height * 3];
    for (y, (start, weights)) in coeffs.iter().enumerate() {
        for x in 0..width {
            for c in 0..3 {
                let sum: i64 = weights
                    .iter()
                    .enumerate()
                    .map(|(i, &w)| {
                        i64::from(horizontal[((start + i) * width + x) * 3 + c]) * i64::from(w)
                    })
                    .sum();
                out[(y * width + x) * 3 + c] = clip8(sum + round);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_side_becomes_the_target_and_the_long_side_is_truncated() {
        assert_eq!(resized_size(320, 180, 32), (56, 32));
        assert_eq!(resized_size(180, 320, 224), (224, 398));
        assert_eq!(resized_size(640, 640, 224), (224, 224));
    }

    #[test]
    fn a_flat_image_stays_flat_and_normalises_to_known_values() {
        let pixels = vec![128u8; 50 * 40 * 3];
        let image = RgbImage {
            width: 50,
            height: 40,
            pixels: &pixels,
        };
        let out = preprocess(&image, &PreprocessConfig::for_image_size(16));
        assert_eq!(out.len(), 3 * 16 * 16);
        for c in 0..3 {
            let expected = (128.0 / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
            assert!(out[c * 256..(c + 1) * 256]
                .iter()
                .all(|v| (v - expected).abs() < 1e-6));
        }
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (input, output) in [(320, 56), (56, 320), (180, 32), (7, 7)] {
            for (_, weights) in coefficients(input, output) {
                let sum: i64 = weights.iter().map(|&w| i64::from(w)).sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= weights.len() as i64,
                    "{input}->{output}: {sum}"
                );
            }
        }
    }

    #[test]
    fn preprocessor_configs_are_read_with_defaults() {
        let config = PreprocessConfig::from_json(
            r#"{"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}, "resample": 3}"#,
            32,
        )
        .unwrap();
        assert_eq!(config, PreprocessConfig::for_image_size(224));
        assert!(PreprocessConfig::from_json(r#"{"resample": 2}"#, 224)
            .unwrap_err()
            .contains("bicubic"));
    }
}
