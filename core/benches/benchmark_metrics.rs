//! How long the official metrics take on a benchmark of 10,000 queries (generated: QVHighlights'
//! shape, 150-s videos, 1–4 windows, 10 predicted windows and 75 clip scores each), one core.
//! `cargo bench -p investigator-core --bench benchmark_metrics`

use std::time::Instant;

use investigator_core::benchmark::{evaluate, GroundTruth, Prediction};

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn window(rng: &mut Rng) -> [f64; 2] {
    let length = [
        2.0 + 8.0 * rng.next(),
        10.0 + 20.0 * rng.next(),
        30.0 + 100.0 * rng.next(),
    ][(rng.next() * 3.0) as usize];
    let start = rng.next() * (150.0 - length);
    [
        (start * 2.0).round() / 2.0,
        ((start + length) * 2.0).round() / 2.0,
    ]
}

fn main() {
    let mut rng = Rng(0x5eed_1234_abcd);
    for queries in [1_550usize, 10_000] {
        let mut truth = Vec::with_capacity(queries);
        let mut predictions = Vec::with_capacity(queries);
        for q in 0..queries {
            let windows: Vec<[f64; 2]> = (0..1 + (rng.next() * 4.0) as usize)
                .map(|_| window(&mut rng))
                .collect();
            let clips: Vec<usize> = (0..75).filter(|_| rng.next() < 0.3).collect();
            let scores = clips
                .iter()
                .map(|_| [0, 1, 2].map(|_| (rng.next() * 5.0) as u8))
                .collect();
            truth.push(GroundTruth {
                qid: q.to_string(),
                duration: 150.0,
                windows,
                relevant_clip_ids: clips,
                saliency_scores: scores,
            });
            let mut predicted: Vec<[f64; 3]> = (0..10)
                .map(|_| {
                    let w = window(&mut rng);
                    [w[0], w[1], rng.next()]
                })
                .collect();
            predicted.sort_by(|a, b| b[2].total_cmp(&a[2]));
            predictions.push(Prediction {
                qid: q.to_string(),
                windows: predicted,
                saliency: (0..75).map(|_| rng.next()).collect(),
            });
        }
        let started = Instant::now();
        let metrics = evaluate(&predictions, &truth).expect("generated queries are scorable");
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "| {queries} queries | {:.3} s | MR-full-mAP {:.2}, HL-min-Good-mAP {:.2} |",
            seconds, metrics.moments[3].map_average, metrics.highlights[1].map
        );
    }
}
