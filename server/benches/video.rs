//! Video engine figures, printed as a table: sequential decode rate, random-seek latency
//! (p50/p95) through the frame-exact `Decoder`, and JPEG encode time.
//!
//!     cargo bench -p server --bench video
//!
//! Uses the same generated 1280x720 test videos as the tests (written on first use).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use server::video::{encode_jpeg, Decoder};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    println!(
        "| video | sequential decode (frames/s) | random seek p50 (ms) | random seek p95 (ms) |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for (name, _) in common::specs() {
        let path = common::video(name);
        let mut decoder = Decoder::open(&path).unwrap();
        decoder.frame(0).unwrap();
        let started = Instant::now();
        for n in 1..common::FRAMES {
            decoder.frame(n).unwrap();
        }
        let fps = (common::FRAMES - 1) as f64 / started.elapsed().as_secs_f64();

        let mut rng = common::Rng::new(42);
        let mut latencies: Vec<f64> = (0..60)
            .map(|_| {
                // Far jumps only: near ones are sequential reads, measured above.
                let n = loop {
                    let n = rng.below(common::FRAMES);
                    if n < decoder.position() || n > decoder.position() + 64 {
                        break n;
                    }
                };
                let t = Instant::now();
                decoder.frame(n).unwrap();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        println!(
            "| {name} | {fps:.0} | {:.1} | {:.1} |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.95)
        );
    }

    let mut decoder = Decoder::open(&common::video("h264_gop250.mp4")).unwrap();
    let frame = decoder.frame(100).unwrap();
    println!();
    println!("| JPEG encode of a 1280x720 frame | ms (median of 50) | bytes |");
    println!("| --- | ---: | ---: |");
    for (label, width, quality) in [
        ("full width, q80", 0, 80),
        ("960 wide, q80", 960, 80),
        ("640 wide, q80", 640, 80),
    ] {
        let mut times: Vec<f64> = (0..50)
            .map(|_| {
                let t = Instant::now();
                encode_jpeg(&frame, width, quality).unwrap();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let bytes = encode_jpeg(&frame, width, quality).unwrap().len();
        println!("| {label} | {:.2} | {bytes} |", percentile(&times, 0.5));
    }
}
