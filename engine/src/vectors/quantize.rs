//! int8 codes of unit vectors, and the scan that scores them.
//!
//! A row's code is `round(v / scale)` with `scale = max|v| / 127` (symmetric, one scale per
//! row); a code's dot product with a query's code, times both scales, approximates the cosine
//! to about 1e-2 on 512 dimensions, which only chooses candidates: every score a search gives
//! is re-ranked from the f32 vectors.

/// `v`'s int8 codes, appended to `codes`; returns the scale.
pub fn quantize(v: &[f32], codes: &mut Vec<i8>) -> f32 {
    let largest = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if largest > 0.0 && largest.is_finite() {
        largest / 127.0
    } else {
        1.0
    };
    codes.extend(
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8),
    );
    scale
}

/// The dot product of two codes. Sixteen independent i32 sums of i16 products let the compiler
/// use its widest multiply-add (`vpmaddwd`) without reassociating anything itself.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut sums = [0i32; 16];
    let whole = a.len().min(b.len()) / 16 * 16;
    for (x, y) in a[..whole].chunks_exact(16).zip(b[..whole].chunks_exact(16)) {
        for i in 0..16 {
            sums[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    let rest: i32 = a[whole..]
        .iter()
        .zip(&b[whole..])
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum();
    sums.iter().sum::<i32>() + rest
}

/// The exact dot product of two f32 vectors (eight sums, as the scores' own kernel).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let whole = a.len().min(b.len()) / 8 * 8;
    for (x, y) in a[..whole].chunks_exact(8).zip(b[..whole].chunks_exact(8)) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>()
        + a[whole..]
            .iter()
            .zip(&b[whole..])
            .map(|(x, y)| x * y)
            .sum::<f32>()
}

/// The `keep` best rows of `codes` (rows of `dimension`) for the query code `query`, by
/// approximate score, best first: `(row, approximate cosine)`.
pub fn best_rows(
    query: &[i8],
    query_scale: f32,
    codes: &[i8],
    scales: &[f32],
    dimension: usize,
    keep: usize,
) -> Vec<(usize, f32)> {
    if dimension == 0 || keep == 0 {
        return Vec::new();
    }
    let mut scored: Vec<(usize, f32)> = codes
        .chunks_exact(dimension)
        .zip(scales)
        .enumerate()
        .map(|(row, (code, &scale))| (row, dot_i8(query, code) as f32 * scale * query_scale))
        .collect();
    if scored.len() > keep {
        scored.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1));
        scored.truncate(keep);
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        let mut v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    #[test]
    fn codes_approximate_the_cosine_and_the_kernels_agree_with_plain_sums() {
        let (a, b) = (unit(1, 512), unit(2, 512));
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        let (sa, sb) = (quantize(&a, &mut ca), quantize(&b, &mut cb));
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let approx = dot_i8(&ca, &cb) as f32 * sa * sb;
        assert!((exact - approx).abs() < 0.01, "{exact} vs {approx}");
        assert!((dot_f32(&a, &b) - exact).abs() < 1e-5);
        let plain: i32 = ca
            .iter()
            .zip(&cb)
            .map(|(&x, &y)| i32::from(x) * i32::from(y))
            .sum();
        assert_eq!(dot_i8(&ca, &cb), plain);
        // Lengths that are not a multiple of the lanes.
        assert_eq!(
            dot_i8(&ca[..37], &cb[..37]),
            ca[..37]
                .iter()
                .zip(&cb[..37])
                .map(|(&x, &y)| i32::from(x) * i32::from(y))
                .sum::<i32>()
        );
        assert_eq!(
            quantize(&[0.0, 0.0], &mut Vec::new()),
            1.0,
            "a zero vector has a usable scale"
        );
    }

    #[test]
    fn the_best_rows_come_first() {
        let rows: Vec<Vec<f32>> = (0..50).map(|i| unit(i, 64)).collect();
        let (mut codes, mut scales) = (Vec::new(), Vec::new());
        for r in &rows {
            scales.push(quantize(r, &mut codes));
        }
        let query = rows[17].clone();
        let mut q = Vec::new();
        let qs = quantize(&query, &mut q);
        let best = best_rows(&q, qs, &codes, &scales, 64, 5);
        assert_eq!(best.len(), 5);
        assert_eq!(best[0].0, 17);
        assert!(best.windows(2).all(|w| w[0].1 >= w[1].1));
    }
}
