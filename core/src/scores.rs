//! Similarity math shared by the server (CLI, server functions) and the browser (live view
//! controls): which frames are sampled, filling unsampled frames, smoothing and CLIP's softmax.

/// The frames embedded when sampling `sample_fps` frames per second of a `fps` video with
/// `total` frames; every frame when `sample_fps` is absent or not below `fps`.
pub fn sampled_frames(total: u64, fps: f64, sample_fps: Option<f64>) -> Vec<u64> {
    match sample_fps {
        Some(rate) if fps > 0.0 && rate > 0.0 && rate < fps => {
            let step = fps / rate;
            let mut frames: Vec<u64> = (0..)
                .map(|k| (k as f64 * step).round() as u64)
                .take_while(|&n| n < total)
                .collect();
            frames.dedup();
            frames
        }
        _ => (0..total).collect(),
    }
}

/// Coarse-to-fine passes over `plan` (the frames a straight index embeds, ascending): the
/// first pass takes one frame every `first_spacing` frames of the plan (at least 1), each next
/// pass the midpoints between the frames taken so far (and after the last one, towards the
/// end), until every frame of the plan is taken. Every planned frame is in exactly one pass;
/// each pass is ascending; the spacing between taken frames halves from pass to pass.
pub fn progressive_passes(plan: &[u64], first_spacing: f64) -> Vec<Vec<u64>> {
    if plan.is_empty() {
        return Vec::new();
    }
    let spacing = if first_spacing.is_finite() {
        first_spacing.max(1.0)
    } else {
        1.0
    };
    // Positions in `plan`, not frame numbers: a sampled plan is already spaced.
    let mut taken: Vec<usize> = (0..)
        .map(|k| (k as f64 * spacing).round() as usize)
        .take_while(|&p| p < plan.len())
        .collect();
    taken.dedup();
    let mut passes = vec![taken.iter().map(|&p| plan[p]).collect::<Vec<u64>>()];
    loop {
        // Midpoints of each gap of two or more positions; the end of the plan bounds the last.
        let bounds = taken.iter().copied().chain(std::iter::once(plan.len()));
        let midpoints: Vec<usize> = taken
            .iter()
            .zip(bounds.skip(1))
            .filter(|(&a, b)| b - a >= 2)
            .map(|(&a, b)| a + (b - a) / 2)
            .collect();
        if midpoints.is_empty() {
            break;
        }
        passes.push(midpoints.iter().map(|&p| plan[p]).collect());
        taken.extend(midpoints);
        taken.sort_unstable();
    }
    passes
}

/// The largest distance from a frame to the sampled frame that stands in for it.
pub fn fill_radius(fps: f64, sample_fps: Option<f64>) -> u64 {
    match sample_fps {
        Some(rate) if fps > 0.0 && rate > 0.0 && rate < fps => (fps / rate / 2.0).ceil() as u64,
        _ => 0,
    }
}

/// Per-frame values for frames `0..n`, where every frame takes the value of its nearest
/// embedded frame (ties go to the earlier one). `n` stops at the first frame with no embedded
/// frame within `radius`, so a partly indexed video yields the indexed prefix and never a
/// made-up value.
pub fn fill_frames(embedded: &[u64], values: &[f32], total: u64, radius: u64) -> Vec<f32> {
    debug_assert_eq!(embedded.len(), values.len());
    let mut out = Vec::new();
    let mut next = 0; // index of the first embedded frame >= n
    for n in 0..total {
        while next < embedded.len() && embedded[next] < n {
            next += 1;
        }
        let before = next.checked_sub(1).map(|i| (n - embedded[i], i));
        let after = embedded.get(next).map(|&f| (f - n, next));
        let nearest = match (before, after) {
            (Some(b), Some(a)) => Some(if a.0 < b.0 { a } else { b }),
            (b, a) => b.or(a),
        };
        match nearest {
            Some((distance, i)) if distance <= radius => out.push(values[i]),
            _ => break,
        }
    }
    out
}

/// [`fill_frames`] where `missing` frames (which could not be decoded) count as samples whose
/// value is NaN: the prefix goes on past them, and they (and the frames they stand in for)
/// read as gaps rather than as a neighbour's value.
pub fn fill_frames_with_gaps(
    embedded: &[u64],
    values: &[f32],
    missing: &[u64],
    total: u64,
    radius: u64,
) -> Vec<f32> {
    if missing.is_empty() {
        return fill_frames(embedded, values, total, radius);
    }
    let mut samples: Vec<(u64, f32)> = embedded
        .iter()
        .copied()
        .zip(values.iter().copied())
        .chain(missing.iter().map(|&m| (m, f32::NAN)))
        .collect();
    samples.sort_by_key(|&(frame, _)| frame);
    let (frames, values): (Vec<u64>, Vec<f32>) = samples.into_iter().unzip();
    fill_frames(&frames, &values, total, radius)
}

/// Centred moving average over `window` frames (1 or 0 = unchanged); the window shrinks at
/// the ends instead of padding with made-up values. Gaps (NaN) stay gaps and are left out of
/// their neighbours' averages.
pub fn smooth(values: &[f32], window: usize) -> Vec<f32> {
    if window <= 1 || values.is_empty() {
        return values.to_vec();
    }
    let mut sums = Vec::with_capacity(values.len() + 1);
    let mut counts = Vec::with_capacity(values.len() + 1);
    sums.push(0.0f64);
    counts.push(0u64);
    for &v in values {
        let known = !v.is_nan();
        sums.push(sums.last().unwrap() + if known { f64::from(v) } else { 0.0 });
        counts.push(counts.last().unwrap() + u64::from(known));
    }
    let (left, right) = ((window - 1) / 2, window / 2);
    (0..values.len())
        .map(|i| {
            if values[i].is_nan() {
                return f32::NAN;
            }
            let start = i.saturating_sub(left);
            let end = (i + right + 1).min(values.len());
            ((sums[end] - sums[start]) / (counts[end] - counts[start]) as f64) as f32
        })
        .collect()
}

/// CLIP's zero-shot probabilities: per frame, softmax over prompts of `logit_scale * cosine`.
/// `series[p][n]` is prompt p's cosine at frame n; all series must have the same length.
pub fn softmax_over_prompts(series: &[Vec<f32>], logit_scale: f32) -> Vec<Vec<f32>> {
    let frames = series.iter().map(Vec::len).min().unwrap_or(0);
    let mut out = vec![Vec::with_capacity(frames); series.len()];
    let mut row = vec![0f32; series.len()];
    for n in 0..frames {
        let max = series
            .iter()
            .map(|s| s[n] * logit_scale)
            .fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for (p, s) in series.iter().enumerate() {
            row[p] = (s[n] * logit_scale - max).exp();
            sum += row[p];
        }
        for (p, o) in out.iter_mut().enumerate() {
            o.push(row[p] / sum);
        }
    }
    out
}

/// SigLIP's probabilities: `sigmoid(logit_scale * cosine + logit_bias)`, each prompt on its
/// own (SigLIP is trained with a sigmoid per pair, not a softmax across texts).
pub fn sigmoid_per_prompt(series: &[Vec<f32>], logit_scale: f32, logit_bias: f32) -> Vec<Vec<f32>> {
    series
        .iter()
        .map(|s| {
            s.iter()
                .map(|&c| 1.0 / (1.0 + (-(logit_scale * c + logit_bias)).exp()))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_picks_evenly_spaced_frames() {
        assert_eq!(sampled_frames(5, 30.0, None), vec![0, 1, 2, 3, 4]);
        assert_eq!(sampled_frames(5, 30.0, Some(60.0)), vec![0, 1, 2, 3, 4]);
        assert_eq!(sampled_frames(61, 30.0, Some(1.0)), vec![0, 30, 60]);
        assert_eq!(sampled_frames(10, 25.0, Some(10.0)), vec![0, 3, 5, 8]);
        assert_eq!(fill_radius(30.0, Some(1.0)), 15);
        assert_eq!(fill_radius(30.0, None), 0);
    }

    #[test]
    fn unsampled_frames_take_the_nearest_sample() {
        let filled = fill_frames(&[0, 4, 8], &[1.0, 2.0, 3.0], 10, 2);
        assert_eq!(
            filled,
            vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0]
        );
        // Partly indexed: stops where no sample is near, instead of inventing values.
        let partial = fill_frames(&[0, 4], &[1.0, 2.0], 10, 2);
        assert_eq!(partial.len(), 7);
        assert_eq!(fill_frames(&[], &[], 10, 2), Vec::<f32>::new());
        assert_eq!(
            fill_frames(&[0, 1, 2], &[5.0, 6.0, 7.0], 3, 0),
            vec![5.0, 6.0, 7.0]
        );
    }

    #[test]
    fn missing_frames_are_gaps_not_the_end() {
        let filled = fill_frames_with_gaps(&[0, 1, 3, 4], &[1.0, 2.0, 4.0, 5.0], &[2], 5, 0);
        assert_eq!(filled.len(), 5, "the prefix goes on past the missing frame");
        assert_eq!(&filled[..2], &[1.0, 2.0]);
        assert!(filled[2].is_nan());
        assert_eq!(&filled[3..], &[4.0, 5.0]);
        // Sampled: the missing sample's neighbourhood is a gap too, the rest is filled.
        let sampled = fill_frames_with_gaps(&[0, 8], &[1.0, 3.0], &[4], 10, 2);
        assert_eq!(sampled.len(), 10);
        assert!(sampled[3..=6].iter().all(|v| v.is_nan()), "{sampled:?}");
        assert_eq!(sampled[2], 1.0);
        assert_eq!(sampled[7], 3.0);
        // Nothing missing: the same as fill_frames.
        assert_eq!(
            fill_frames_with_gaps(&[0, 4], &[1.0, 2.0], &[], 10, 2),
            fill_frames(&[0, 4], &[1.0, 2.0], 10, 2)
        );
    }

    #[test]
    fn progressive_passes_cover_the_plan_once_halving_the_spacing() {
        let plan: Vec<u64> = (0..300).collect();
        let passes = progressive_passes(&plan, 30.0);
        // One frame a second first, then every half second, quarter, …, then every frame.
        assert_eq!(passes[0], (0..10).map(|k| k * 30).collect::<Vec<u64>>());
        assert_eq!(
            passes[1],
            (0..10).map(|k| k * 30 + 15).collect::<Vec<u64>>()
        );
        let mut all: Vec<u64> = passes.concat();
        all.sort_unstable();
        assert_eq!(all, plan, "every planned frame exactly once");
        assert!(passes.iter().all(|p| p.windows(2).all(|w| w[0] < w[1])));
        // The largest gap between frames taken so far halves (rounded up) from pass to pass.
        let mut taken: Vec<u64> = Vec::new();
        let mut last_gap = u64::MAX;
        for pass in &passes {
            taken.extend(pass);
            taken.sort_unstable();
            let gap = taken
                .windows(2)
                .map(|w| w[1] - w[0])
                .chain([plan.len() as u64 - taken[taken.len() - 1]])
                .max()
                .unwrap();
            assert!(
                gap < last_gap && (last_gap == u64::MAX || gap <= last_gap.div_ceil(2)),
                "{gap} after {last_gap}"
            );
            last_gap = gap;
        }
        assert_eq!(last_gap, 1);
        // A sampled plan is spaced by plan positions; a spacing under one frame is every frame.
        let sampled = sampled_frames(900, 30.0, Some(2.0));
        assert_eq!(
            progressive_passes(&sampled, 2.0)[0],
            sampled.iter().step_by(2).copied().collect::<Vec<u64>>()
        );
        assert_eq!(progressive_passes(&plan, 0.3), vec![plan.clone()]);
        assert!(progressive_passes(&[], 30.0).is_empty());
    }

    #[test]
    fn smoothing_averages_a_centred_window() {
        let v = [0.0, 0.0, 3.0, 0.0, 0.0];
        assert_eq!(smooth(&v, 1), v.to_vec());
        assert_eq!(smooth(&v, 3), vec![0.0, 1.0, 1.0, 1.0, 0.0]);
        // Shrinking window at the ends: the first value averages frames 0 and 1 only.
        assert_eq!(smooth(&[2.0, 4.0, 6.0], 3), vec![3.0, 4.0, 5.0]);
        let even = smooth(&[0.0, 4.0, 0.0, 0.0], 2);
        assert_eq!(even, vec![2.0, 2.0, 0.0, 0.0]);
        // A gap stays a gap and does not poison its neighbours.
        let gap = smooth(&[2.0, f32::NAN, 4.0, 6.0], 3);
        assert!(gap[1].is_nan());
        assert_eq!([gap[0], gap[2], gap[3]], [2.0, 5.0, 5.0]);
    }

    #[test]
    fn softmax_gives_probabilities_per_frame() {
        let series = vec![vec![0.30, 0.20], vec![0.20, 0.20]];
        let p = softmax_over_prompts(&series, 100.0);
        for n in 0..2 {
            let total: f32 = p.iter().map(|s| s[n]).sum();
            assert!((total - 1.0).abs() < 1e-6);
        }
        // exp(100 * 0.1) = e^10: the first prompt dominates frame 0; frame 1 is a tie.
        assert!((p[0][0] - 1.0 / (1.0 + (-10f32).exp())).abs() < 1e-6);
        assert!((p[0][1] - 0.5).abs() < 1e-6);
    }
}
