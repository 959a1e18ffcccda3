//! The evaluator's arithmetic, step for step: NumPy's sums and argmax, and its rounding of
//! every figure (the last digits of a benchmark's metrics depend on them).

/// `float(f"{100 * v:.2f}")`: Rust and Python both round the exact binary value half to even.
pub(super) fn percent(value: f64) -> f64 {
    format!("{:.2}", 100.0 * value).parse().unwrap_or(f64::NAN)
}

/// NumPy's `add.reduce` over a contiguous float64 array: pairwise, eight partial sums per
/// block of at most 128 (the last digits of a mean depend on it).
pub fn numpy_sum(values: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = values.len();
    if n < 8 {
        // NumPy starts from -0.0 here, so a lone -0.0 stays -0.0; the value is the same.
        return values.iter().fold(-0.0, |sum, v| sum + v);
    }
    if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += values[i + j];
            }
            i += 8;
        }
        let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &values[whole..] {
            sum += v;
        }
        return sum;
    }
    let mut half = n / 2;
    half -= half % 8;
    numpy_sum(&values[..half]) + numpy_sum(&values[half..])
}

pub(super) fn numpy_mean(values: &[f64]) -> f64 {
    numpy_sum(values) / values.len() as f64
}

/// `np.argmax`: the first largest, or the first NaN.
pub(super) fn numpy_argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            return i;
        }
        if v > values[best] {
            best = i;
        }
    }
    best
}
