//! The similarity chart's pure maths: colours, decimation to pixel columns, gaps, ranges, zoom
//! and dashes. The page draws with them (plotters on a `<canvas>`); they are
//! tested natively here.

/// Okabe–Ito, the colour-blind-safe palette, ordered for a dark background (its black is
/// white here).
pub const PALETTE: [&str; 8] = [
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#D55E00", "#CC79A7", "#FFFFFF", "#0072B2",
];

/// Palette slots for `prompts`: a prompt keeps the slot it had in `previous`; new prompts take
/// the lowest free slot, so editing one prompt never recolours the others.
pub fn assign_colors(
    prompts: &[String],
    previous: &std::collections::HashMap<String, usize>,
) -> std::collections::HashMap<String, usize> {
    let mut out = std::collections::HashMap::new();
    let mut used = std::collections::HashSet::new();
    for p in prompts {
        if let Some(&slot) = previous.get(p) {
            if used.insert(slot) {
                out.insert(p.clone(), slot);
            }
        }
    }
    for p in prompts {
        if !out.contains_key(p) {
            let slot = (0..)
                .find(|s| !used.contains(s))
                .expect("an unused slot exists");
            used.insert(slot);
            out.insert(p.clone(), slot);
        }
    }
    out
}

pub fn color(slot: usize) -> &'static str {
    PALETTE[slot % PALETTE.len()]
}

/// Points to draw for frames `start..end` of `values` on `columns` pixel columns. With more
/// than two frames per column, each column keeps its minimum and maximum (in frame order), so
/// spikes survive and the cost stays flat however long the video.
pub fn decimate(values: &[f32], start: usize, end: usize, columns: usize) -> Vec<(f64, f64)> {
    let end = end.min(values.len());
    if start >= end {
        return Vec::new();
    }
    let count = end - start;
    let columns = columns.max(1);
    if count <= 2 * columns {
        return (start..end)
            .map(|n| (n as f64, f64::from(values[n])))
            .collect();
    }
    let mut points = Vec::with_capacity(2 * columns);
    for c in 0..columns {
        let from = start + c * count / columns;
        let to = (start + (c + 1) * count / columns).max(from + 1).min(end);
        let (mut lo, mut hi) = (from, from);
        for n in from..to {
            if values[n] < values[lo] {
                lo = n;
            }
            if values[n] > values[hi] {
                hi = n;
            }
        }
        let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        points.push((a as f64, f64::from(values[a])));
        if b != a {
            points.push((b as f64, f64::from(values[b])));
        }
    }
    points
}

/// The runs of known values (not NaN) among frames `start..end`, each decimated to its share of
/// `columns`: a frame that could not be decoded breaks the line instead of joining its
/// neighbours.
pub fn segments(values: &[f32], start: usize, end: usize, columns: usize) -> Vec<Vec<(f64, f64)>> {
    let end = end.min(values.len());
    let count = end.saturating_sub(start).max(1);
    let mut out = Vec::new();
    let mut n = start;
    while n < end {
        if values[n].is_nan() {
            n += 1;
            continue;
        }
        let run_start = n;
        while n < end && !values[n].is_nan() {
            n += 1;
        }
        let share = (columns * (n - run_start)).div_ceil(count).max(1);
        out.push(decimate(values, run_start, n, share));
    }
    out
}

/// The runs of frames among `start..end` with no value (they could not be decoded), as
/// `(first, last + 1)`.
pub fn gaps(values: &[f32], start: usize, end: usize) -> Vec<(usize, usize)> {
    let end = end.min(values.len());
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (n, value) in values.iter().enumerate().take(end).skip(start) {
        if value.is_nan() {
            match out.last_mut() {
                Some(last) if last.1 == n => last.1 = n + 1,
                _ => out.push((n, n + 1)),
            }
        }
    }
    out
}

/// The y range for the values of frames `start..end`: their extent plus 5% on each side.
pub fn y_range<'a>(
    series: impl Iterator<Item = &'a [f32]>,
    start: usize,
    end: usize,
) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for values in series {
        for &v in &values[start.min(values.len())..end.min(values.len())] {
            lo = lo.min(f64::from(v));
            hi = hi.max(f64::from(v));
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad, hi + pad)
}

/// The visible frames after zooming by `factor` (< 1 zooms in) around frame `at`, kept
/// inside `0..total` and at least 10 frames wide.
pub fn zoom(range: (f64, f64), at: f64, factor: f64, total: u64) -> (f64, f64) {
    let full = (-0.5, total as f64 - 0.5);
    let width =
        ((range.1 - range.0) * factor).clamp(10.0_f64.min(full.1 - full.0), full.1 - full.0);
    let share = if range.1 > range.0 {
        ((at - range.0) / (range.1 - range.0)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    let mut start = at - share * width;
    start = start.clamp(full.0, full.1 - width);
    (start, start + width)
}

/// One curve as the chart draws it.
#[derive(Clone, Debug, PartialEq)]
pub struct Curve {
    pub prompt: String,
    pub color: &'static str,
    /// Per frame, for the indexed prefix of the video.
    pub values: Vec<f32>,
    /// Which model's curve it is when two are compared (`"A − B"` for the difference);
    /// `None` with one model.
    pub model: Option<String>,
    /// Drawn dashed: the second model's curve of a prompt.
    pub dashed: bool,
    /// An adapted prompt's probability (0 to 1): drawn on the probability axis at the right,
    /// thicker and dotted, in its prompt's colour.
    pub adapted: bool,
}

impl Curve {
    /// The prompt, with the model when two are compared: names columns and readout rows.
    pub fn label(&self) -> String {
        match &self.model {
            Some(model) => format!("{} [{model}]", self.prompt),
            None => self.prompt.clone(),
        }
    }
}

/// `points` (x ascending) cut into dashes: on for the first `on` of every `period` along x,
/// with points added where a dash starts or ends, so a dashed line keeps its shape at any zoom.
/// (plotters' canvas backend strokes solid paths only.)
pub fn dashes(points: &[(f64, f64)], period: f64, on: f64) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let Some(&first) = points.first() else {
        return out;
    };
    if !(period > 0.0 && on > 0.0 && on < period) {
        return vec![points.to_vec()];
    }
    let phase = |x: f64| (x - first.0).rem_euclid(period);
    let mut current = vec![first];
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        let at = |x: f64| y0 + (y1 - y0) * (x - x0) / (x1 - x0);
        // The dash edges strictly between the two points, in order.
        let mut edge = x0 - phase(x0);
        while edge < x1 {
            if edge + on > x0 && edge + on < x1 {
                current.push((edge + on, at(edge + on)));
                out.push(std::mem::take(&mut current));
            }
            if edge + period > x0 && edge + period < x1 {
                current.push((edge + period, at(edge + period)));
            }
            edge += period;
        }
        let p = phase(x1);
        if p <= on {
            current.push((x1, y1));
        }
        if p >= on && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out.retain(|d| d.len() > 1);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashes_cut_a_line_at_even_steps_whatever_its_points() {
        let line = [(0.0, 0.0), (10.0, 10.0)];
        assert_eq!(
            dashes(&line, 4.0, 2.0),
            vec![
                vec![(0.0, 0.0), (2.0, 2.0)],
                vec![(4.0, 4.0), (6.0, 6.0)],
                vec![(8.0, 8.0), (10.0, 10.0)]
            ]
        );
        // Many points: the same dashes, each holding the points inside it.
        let dense: Vec<(f64, f64)> = (0..=10).map(|x| (x as f64, 1.0)).collect();
        let cut = dashes(&dense, 4.0, 2.0);
        assert_eq!(cut.len(), 3);
        assert_eq!(cut[1], vec![(4.0, 1.0), (5.0, 1.0), (6.0, 1.0)]);
        // Nothing is drawn in the gaps.
        assert!(cut.iter().flatten().all(|&(x, _)| x % 4.0 <= 2.0));
        assert_eq!(dashes(&[], 4.0, 2.0), Vec::<Vec<(f64, f64)>>::new());
    }
    use std::collections::HashMap;

    #[test]
    fn colours_stay_with_their_prompt() {
        let prompts: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let first = assign_colors(&prompts, &HashMap::new());
        assert_eq!((first["a"], first["b"], first["c"]), (0, 1, 2));
        // Removing "a" and adding "d": b and c keep theirs, d takes the freed slot.
        let next = assign_colors(&["b", "c", "d"].map(String::from), &first);
        assert_eq!((next["b"], next["c"], next["d"]), (1, 2, 0));
    }

    #[test]
    fn decimation_keeps_spikes_and_bounds_the_points() {
        let mut values = vec![0.0f32; 100_000];
        values[54_321] = 1.0;
        values[12_345] = -1.0;
        let points = decimate(&values, 0, values.len(), 800);
        assert!(points.len() <= 1600);
        assert!(points.contains(&(54_321.0, 1.0)) && points.contains(&(12_345.0, -1.0)));
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0), "in frame order");
        // Few frames: every point.
        assert_eq!(decimate(&values, 10, 20, 800).len(), 10);
        // Past the indexed prefix: nothing is drawn.
        assert_eq!(decimate(&values[..50], 40, 80, 800).len(), 10);
    }

    #[test]
    fn undecodable_frames_break_the_line_and_are_listed_as_gaps() {
        let mut values = vec![0.5f32; 100];
        values[40] = f32::NAN;
        values[41] = f32::NAN;
        values[99] = f32::NAN;
        let runs = segments(&values, 0, 100, 50);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].first().unwrap().0, 0.0);
        assert_eq!(runs[0].last().unwrap().0, 39.0);
        assert_eq!(runs[1].first().unwrap().0, 42.0);
        assert_eq!(runs[1].last().unwrap().0, 98.0);
        assert!(runs.iter().flatten().all(|p| !p.1.is_nan()));
        assert_eq!(gaps(&values, 0, 100), vec![(40, 42), (99, 100)]);
        assert_eq!(gaps(&values, 0, 40), vec![]);
        // No gaps: one run, the same points as plain decimation.
        let plain = vec![0.1f32; 10];
        assert_eq!(
            segments(&plain, 0, 10, 50),
            vec![decimate(&plain, 0, 10, 50)]
        );
    }

    #[test]
    fn zooming_stays_inside_the_video() {
        let full = (-0.5, 999.5);
        let (a, b) = zoom(full, 500.0, 0.5, 1000);
        assert!((b - a - 500.0).abs() < 1e-9 && a <= 500.0 && b >= 500.0);
        // The frame under the cursor stays where it was on screen.
        let (a, b) = zoom((-0.5, 99.5), 0.0, 0.5, 1000);
        assert!(
            (a + 0.25).abs() < 1e-9 && (b - 49.75).abs() < 1e-9,
            "{a} {b}"
        );
        // Never past the start.
        let (a, _) = zoom((-0.5, 99.5), 0.0, 1.5, 1000);
        assert_eq!(a, -0.5);
        assert_eq!(zoom((100.0, 200.0), 150.0, 100.0, 1000), full);
        let (a, b) = zoom((100.0, 110.0), 105.0, 0.1, 1000);
        assert!((b - a - 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_y_range_pads_the_visible_values() {
        let v = vec![0.2f32, 0.3, 0.25];
        let (lo, hi) = y_range(std::iter::once(v.as_slice()), 0, 3);
        assert!(lo < 0.2 && lo > 0.19 && hi > 0.3 && hi < 0.31);
        assert_eq!(y_range(std::iter::empty(), 0, 3), (0.0, 1.0));
    }
}
