//! Timing helpers shared by the benches (each bench uses some of them).
#![allow(dead_code)]

use std::time::Instant;

/// `runs` timings of `f` in milliseconds, sorted (no warm-up call: callers that want one make
/// it first).
pub fn sorted_ms(runs: usize, mut f: impl FnMut()) -> Vec<f64> {
    let mut ms: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms
}

/// The value at fraction `p` (0 to 1) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
