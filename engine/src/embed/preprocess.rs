//! Image preprocessing equal to transformers' `CLIPImageProcessor` (resize the shortest side
//! with bicubic resampling, centre-crop) and `SiglipImageProcessor` (resize to a fixed box,
//! bicubic or bilinear as the config says, no crop), then rescale by 1/255 and normalise by the
//! model's mean/std; channel-first RGB floats.
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

/// Pillow's resampling filters that the processors use (`resample` in the config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// 2: SigLIP 2's processors.
    Bilinear,
    /// 3: CLIP's and SigLIP's.
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Bicubic => bicubic(x),
        }
    }
}

/// How the centre crop's offsets are rounded where the resized image and the crop differ by an
/// odd number of pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CropRounding {
    /// transformers' `center_crop`: `(size - crop) // 2`, floored (also where it pads).
    Floor,
    /// torchvision's `center_crop` (open_clip): `round((size - crop) / 2)`, half to even, where
    /// the image is larger; where it is smaller, padding of `(crop - size) // 2` before it.
    Torchvision,
}

/// SigLIP 2 NaFlex's sizing: patches of `patch` pixels, at most `max_patches` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatchBudget {
    pub patch: u32,
    pub max_patches: u32,
}

impl PatchBudget {
    /// `get_image_size_for_max_num_patches` of transformers' `Siglip2ImageProcessor`, exactly:
    /// a bisection (in f64) on one scale for both sides, each side rounded up to whole patches
    /// (at least one), keeping the last scale whose patches fit. `(height, width)` in pixels.
    pub fn size_for(&self, width: usize, height: usize) -> (usize, usize) {
        let patch = f64::from(self.patch);
        let scaled = |scale: f64, size: usize| -> usize {
            let s = size as f64 * scale;
            ((s / patch).ceil() * patch).max(patch) as usize
        };
        let eps = 1e-5;
        let (mut low, mut high) = (eps / 10.0, 100.0);
        while high - low >= eps {
            let mid = (low + high) / 2.0;
            let (h, w) = (scaled(mid, height), scaled(mid, width));
            let patches = (h as f64 / patch) * (w as f64 / patch);
            if patches <= f64::from(self.max_patches) {
                low = mid;
            } else {
                high = mid;
            }
        }
        (scaled(low, height), scaled(low, width))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    /// Target of the shortest side after resizing.
    pub shortest_edge: u32,
    /// Resize to exactly this box (height, width) instead, ignoring the aspect ratio, and do
    /// not crop (SigLIP's `size: {height, width}`, open_clip's `squash`); the crop size is then
    /// the box.
    pub resize_box: Option<(u32, u32)>,
    /// Resize so that the whole image fits the crop box, keeping its aspect ratio (each side
    /// scaled by the larger ratio and rounded half to even), then pad it to the box with
    /// `fill`: open_clip's `longest`. `shortest_edge` is then unused.
    pub keep_longest: bool,
    /// The grey level padding is made of (before rescaling and normalising).
    pub fill: u8,
    pub crop_rounding: CropRounding,
    /// SigLIP 2 NaFlex: instead of a fixed size, each image is resized (squashed, no crop) to
    /// the largest size of whole patches, at its own aspect ratio, that fits the patch budget
    /// (`Siglip2ImageProcessor`'s search); the crop size is then unused.
    pub patch_budget: Option<PatchBudget>,
    pub filter: Filter,
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
            resize_box: None,
            keep_longest: false,
            fill: 0,
            crop_rounding: CropRounding::Floor,
            patch_budget: None,
            filter: Filter::Bicubic,
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
            do_center_crop: Option<bool>,
            do_resize: Option<bool>,
            do_normalize: Option<bool>,
            do_rescale: Option<bool>,
        }
        let raw: Raw =
            serde_json::from_str(text).map_err(|e| format!("preprocessor_config.json: {e}"))?;
        let mut config = Self::for_image_size(image_size);
        // Pillow's resampling codes: 2 = BILINEAR (SigLIP 2), 3 = BICUBIC (CLIP, SigLIP).
        config.filter = match raw.resample {
            None | Some(3) => Filter::Bicubic,
            Some(2) => Filter::Bilinear,
            Some(other) => return Err(format!("preprocessor_config.json asks for resampling filter {other}; only bilinear (2) and bicubic (3) are supported")),
        };
        for (name, value) in [
            ("do_resize", raw.do_resize),
            ("do_rescale", raw.do_rescale),
            ("do_normalize", raw.do_normalize),
        ] {
            if value == Some(false) {
                return Err(format!("preprocessor_config.json sets {name} to false; the model takes resized, rescaled, normalised images"));
            }
        }
        match raw.size {
            Some(Size::Edge { shortest_edge }) | Some(Size::Square(shortest_edge)) => {
                config.shortest_edge = shortest_edge
            }
            Some(Size::Box { height, width }) => {
                if raw.do_center_crop == Some(true) {
                    return Err("preprocessor_config.json: a resize box with a centre crop is not supported (SigLIP resizes to the box, CLIP crops after resizing the shortest edge)".into());
                }
                config.resize_box = Some((height, width));
                (config.crop_height, config.crop_width) = (height, width);
            }
            None => {}
        }
        if config.resize_box.is_some() {
            config.mean = raw.image_mean.unwrap_or(CLIP_MEAN);
            config.std = raw.image_std.unwrap_or(CLIP_STD);
            return Ok(config);
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

/// An 8-bit colour image, row-major, 3 bytes per pixel.
pub struct RgbImage<'a> {
    pub width: usize,
    pub height: usize,
    pub pixels: &'a [u8],
    /// The bytes are B, G, R (OpenCV's order): read as RGB without a conversion pass.
    pub bgr: bool,
}

/// `CLIPImageProcessor(image)["pixel_values"][0]`: `3 * crop_height * crop_width` floats.
pub fn preprocess(image: &RgbImage<'_>, config: &PreprocessConfig) -> Vec<f32> {
    normalize(&resize_and_crop(image, config), config)
}

/// The processor's resize and centre crop, before rescaling: `crop_height * crop_width` RGB
/// pixels, 3 bytes each, row-major, zero where the crop reaches past the resized image (as
/// transformers pads). A quarter of the floats' size: the form indexing keeps frames in while
/// they wait for the model.
pub fn resize_and_crop(image: &RgbImage<'_>, config: &PreprocessConfig) -> Vec<u8> {
    if let Some(budget) = config.patch_budget {
        let (height, width) = budget.size_for(image.width, image.height);
        return resize_window_with(image, width, height, 0..width, 0..height, config.filter);
    }
    if let Some((height, width)) = config.resize_box {
        let (width, height) = (width as usize, height as usize);
        return resize_window_with(image, width, height, 0..width, 0..height, config.filter);
    }
    let (width, height) = resized_dimensions(image.width, image.height, config);
    let (crop_w, crop_h) = (config.crop_width as usize, config.crop_height as usize);
    // Integer offsets of the crop in the resized image, negative where it pads.
    let top = crop_offset(height, crop_h, config.crop_rounding);
    let left = crop_offset(width, crop_w, config.crop_rounding);
    // Only the part of the resized image that survives the crop is computed: every output
    // pixel depends on its own taps alone, so it equals the same pixel of the full resize.
    let xs = left.max(0) as usize..((left + crop_w as isize).min(width as isize)).max(0) as usize;
    let ys = top.max(0) as usize..((top + crop_h as isize).min(height as isize)).max(0) as usize;
    let window = resize_window_with(image, width, height, xs.clone(), ys.clone(), config.filter);
    if xs.len() == crop_w && ys.len() == crop_h {
        return window;
    }
    let window_w = xs.len();
    // Where crop coordinate `i` falls in the window, if inside the resized image.
    let inside = |i: usize, offset: isize, range: &std::ops::Range<usize>| {
        let at = i as isize + offset;
        (at >= 0 && range.contains(&(at as usize))).then(|| at as usize - range.start)
    };
    let mut out = vec![config.fill; crop_h * crop_w * 3];
    for y in 0..crop_h {
        let Some(wy) = inside(y, top, &ys) else {
            continue;
        };
        for x in 0..crop_w {
            if let Some(wx) = inside(x, left, &xs) {
                let from = (wy * window_w + wx) * 3;
                out[(y * crop_w + x) * 3..][..3].copy_from_slice(&window[from..from + 3]);
            }
        }
    }
    out
}

/// Rescale by 1/255 and normalise [`resize_and_crop`]'s bytes: `3 * crop_height * crop_width`
/// floats, channel planes. Zero bytes (the padding) become what transformers pads with.
pub fn normalize(crop: &[u8], config: &PreprocessConfig) -> Vec<f32> {
    let plane = crop.len() / 3;
    let mut out = vec![0f32; 3 * plane];
    for c in 0..3 {
        let (mean, std) = (config.mean[c], config.std[c]);
        for (value, pixel) in out[c * plane..(c + 1) * plane]
            .iter_mut()
            .zip(crop.chunks_exact(3))
        {
            *value = (f32::from(pixel[c]) / 255.0 - mean) / std;
        }
    }
    out
}

/// The part of a `width x height` frame the model sees, in the frame's pixels:
/// `(left, top, width, height)`. CLIP's centre crop after the shortest-side resize keeps the
/// middle (a 16:9 frame loses its left and right edges); a resize box (SigLIP) keeps it all.
/// Where the crop is larger than the resized frame (transformers pads it) the box reaches past
/// the frame, so that the model's patch grid always maps onto the box.
pub fn crop_box(config: &PreprocessConfig, width: usize, height: usize) -> (f64, f64, f64, f64) {
    if config.resize_box.is_some() || config.patch_budget.is_some() || width == 0 || height == 0 {
        return (0.0, 0.0, width as f64, height as f64);
    }
    let (rw, rh) = resized_dimensions(width, height, config);
    let (cw, ch) = (config.crop_width as isize, config.crop_height as isize);
    let left = crop_offset(rw, cw as usize, config.crop_rounding);
    let top = crop_offset(rh, ch as usize, config.crop_rounding);
    let (sx, sy) = (width as f64 / rw as f64, height as f64 / rh as f64);
    (
        left as f64 * sx,
        top as f64 * sy,
        cw as f64 * sx,
        ch as f64 * sy,
    )
}

/// `(height, width)` of the model's input for a `width x height` image: the crop, or (NaFlex)
/// the size the patch budget gives it.
pub fn output_size(config: &PreprocessConfig, width: usize, height: usize) -> (usize, usize) {
    match config.patch_budget {
        Some(budget) => budget.size_for(width, height),
        None => (config.crop_height as usize, config.crop_width as usize),
    }
}

/// The size a `width x height` image is resized to before the crop (or the padding).
fn resized_dimensions(width: usize, height: usize, config: &PreprocessConfig) -> (usize, usize) {
    if !config.keep_longest {
        return resized_size(width, height, config.shortest_edge as usize);
    }
    // open_clip's ResizeKeepRatio(longest=1): both sides divided by the larger ratio, rounded
    // half to even as Python's round().
    let (cw, ch) = (config.crop_width as f64, config.crop_height as f64);
    let ratio = (height as f64 / ch).max(width as f64 / cw);
    let side = |x: usize| ((x as f64 / ratio).round_ties_even() as usize).max(1);
    (side(width), side(height))
}

/// Where a crop of `crop` pixels starts in a side of `size` (negative: padding before it).
fn crop_offset(size: usize, crop: usize, rounding: CropRounding) -> isize {
    let (size, crop) = (size as isize, crop as isize);
    match rounding {
        CropRounding::Floor => (size - crop).div_euclid(2),
        CropRounding::Torchvision if size >= crop => {
            ((size - crop) as f64 / 2.0).round_ties_even() as isize
        }
        CropRounding::Torchvision => -((crop - size) / 2),
    }
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

/// For each output index: the first input index and the fixed-point bicubic weights.
#[cfg(test)]
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    coefficients_with(in_size, out_size, Filter::Bicubic)
}

/// For each output index: the first input index and the fixed-point weights of `filter`.
fn coefficients_with(in_size: usize, out_size: usize, filter: Filter) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let inv = 1.0 / filter_scale;
            // Pillow truncates with (int) casts here; the values are non-negative or clamped.
            let xmin = ((center - support + 0.5) as isize).max(0) as usize;
            let xmax = (((center + support + 0.5) as isize).min(in_size as isize) as usize)
                .saturating_sub(xmin);
            let weights: Vec<f64> = (0..xmax)
                .map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * inv))
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

fn clip8(value: i32) -> u8 {
    (value >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pillow's `Image.resize(size, BICUBIC)` on an RGB image: horizontal pass, then vertical.
pub fn resize_bicubic(image: &RgbImage<'_>, width: usize, height: usize) -> Vec<u8> {
    resize_window(image, width, height, 0..width, 0..height)
}

/// The pixels `xs` x `ys` of [`resize_bicubic`]'s output (RGB), computing only those.
///
/// Sums are 32-bit like Pillow's (`|pixel x weight|` summed stays below 2^31 with 22-bit
/// weights), which lets the compiler vectorise the loops.
pub fn resize_window(
    image: &RgbImage<'_>,
    width: usize,
    height: usize,
    xs: std::ops::Range<usize>,
    ys: std::ops::Range<usize>,
) -> Vec<u8> {
    resize_window_with(image, width, height, xs, ys, Filter::Bicubic)
}

/// [`resize_window`] with Pillow's `filter`.
pub fn resize_window_with(
    image: &RgbImage<'_>,
    width: usize,
    height: usize,
    xs: std::ops::Range<usize>,
    ys: std::ops::Range<usize>,
    filter: Filter,
) -> Vec<u8> {
    let round = 1i32 << (PRECISION_BITS - 1);
    let (in_w, in_h) = (image.width, image.height);
    let channel = |c: usize| if image.bgr { 2 - c } else { c };
    let (window_w, window_h) = (xs.len(), ys.len());
    if window_w == 0 || window_h == 0 {
        return Vec::new();
    }

    // Input rows the vertical pass reads for the output rows in `ys`.
    let vertical = (height != in_h).then(|| coefficients_with(in_h, height, filter));
    let (row_from, row_to) = match &vertical {
        Some(coeffs) => coeffs[ys.clone()]
            .iter()
            .fold((usize::MAX, 0), |(lo, hi), (start, w)| {
                (lo.min(*start), hi.max(start + w.len()))
            }),
        None => (ys.start, ys.end),
    };

    // Horizontal pass over those rows, only the columns in `xs`; RGB out.
    let rows = row_to - row_from;
    let mut horizontal = vec![0u8; rows * window_w * 3];
    if width == in_w {
        for y in 0..rows {
            let row = &image.pixels[(row_from + y) * in_w * 3..(row_from + y + 1) * in_w * 3];
            for x in 0..window_w {
                for c in 0..3 {
                    horizontal[(y * window_w + x) * 3 + c] = row[(xs.start + x) * 3 + channel(c)];
                }
            }
        }
    } else {
        let coeffs = coefficients_with(in_w, width, filter);
        let coeffs = &coeffs[xs.clone()];
        for y in 0..rows {
            let row = &image.pixels[(row_from + y) * in_w * 3..(row_from + y + 1) * in_w * 3];
            let out = &mut horizontal[y * window_w * 3..(y + 1) * window_w * 3];
            for (x, (start, weights)) in coeffs.iter().enumerate() {
                let taps = &row[start * 3..(start + weights.len()) * 3];
                let mut sum = [round; 3];
                for (pixel, &w) in taps.chunks_exact(3).zip(weights) {
                    sum[0] += i32::from(pixel[0]) * w;
                    sum[1] += i32::from(pixel[1]) * w;
                    sum[2] += i32::from(pixel[2]) * w;
                }
                for c in 0..3 {
                    out[x * 3 + c] = clip8(sum[channel(c)]);
                }
            }
        }
    }

    let Some(coeffs) = vertical else {
        return horizontal;
    };
    // Vertical pass: whole rows at a time, so the inner loop runs over contiguous bytes.
    let stride = window_w * 3;
    let mut out = vec![0u8; window_h * stride];
    let mut sums = vec![0i32; stride];
    for (y, (start, weights)) in coeffs[ys].iter().enumerate() {
        sums.iter_mut().for_each(|s| *s = round);
        for (i, &w) in weights.iter().enumerate() {
            let row =
                &horizontal[(start + i - row_from) * stride..(start + i - row_from + 1) * stride];
            for (s, &p) in sums.iter_mut().zip(row) {
                *s += i32::from(p) * w;
            }
        }
        for (o, &s) in out[y * stride..(y + 1) * stride].iter_mut().zip(&sums) {
            *o = clip8(s);
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
            bgr: false,
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
        let siglip = PreprocessConfig::from_json(
            r#"{"size": {"height": 256, "width": 256}, "resample": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#,
            224,
        )
        .unwrap();
        assert_eq!(siglip.resize_box, Some((256, 256)));
        assert_eq!((siglip.crop_height, siglip.filter), (256, Filter::Bilinear));
        assert_eq!(siglip.mean, [0.5; 3]);
        assert!(PreprocessConfig::from_json(r#"{"resample": 1}"#, 224)
            .unwrap_err()
            .contains("bicubic"));
    }

    #[test]
    fn the_crop_the_model_sees_is_the_middle_of_a_wide_frame() {
        let clip = PreprocessConfig::for_image_size(224);
        // 1280x720: resized to 398x224, the middle 224 columns kept: frame x 312.5 to 967.5.
        let (x, y, w, h) = crop_box(&clip, 1280, 720);
        assert!(
            (x - 87.0 * 1280.0 / 398.0).abs() < 1e-9 && y == 0.0 && h == 720.0,
            "{x} {y} {w} {h}"
        );
        assert!((w - 224.0 * 1280.0 / 398.0).abs() < 1e-9);
        // A square frame is seen whole; a resize box (SigLIP) sees any frame whole.
        assert_eq!(crop_box(&clip, 500, 500), (0.0, 0.0, 500.0, 500.0));
        let siglip = PreprocessConfig {
            resize_box: Some((224, 224)),
            ..clip
        };
        assert_eq!(crop_box(&siglip, 1280, 720), (0.0, 0.0, 1280.0, 720.0));
    }
}
