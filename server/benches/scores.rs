//! Answering from the cache at scale: scores for 1 and 20 prompts and a search, on synthetic
//! embeddings of a 60-minute 30 fps video (108,000 frames x 512), the matrix product against
//! the row-by-row reference, side by side in one run.
//!
//!     cargo bench -p server --bench scores

#[path = "shared/synthetic.rs"]
mod synthetic;
#[path = "shared/timing.rs"]
mod timing;

use engine::search::{cosine_rows, cosine_rows_naive, top_k};
use timing::sorted_ms;

const FRAMES: u64 = 108_000;
const DIM: usize = 512;

/// Median and range of `runs` timings of `f`, in ms.
fn time(runs: usize, mut f: impl FnMut()) -> String {
    f(); // warm-up
    let ms = sorted_ms(runs, f);
    format!("{:.1} ({:.1}–{:.1})", ms[runs / 2], ms[0], ms[runs - 1])
}

fn main() {
    let file = synthetic::cache(FRAMES, 30, DIM);
    let mut seed = 2;
    let prompts: Vec<Vec<f32>> = (0..20).map(|_| synthetic::unit(&mut seed, DIM)).collect();
    println!("60-minute video at 30 fps: {FRAMES} frames x {DIM}, ms: median (min–max) of 9 runs");
    println!();
    println!("| work | matrix product (ours) | row-by-row dot products |");
    println!("| --- | ---: | ---: |");
    for count in [1, 20] {
        let q = &prompts[..count];
        println!(
            "| scores, {count} prompt{} | {} | {} |",
            if count == 1 { "" } else { "s" },
            time(9, || drop(cosine_rows(&file, q))),
            time(9, || drop(cosine_rows_naive(&file, q)))
        );
    }
    println!(
        "| search, top 10 at least 1 s apart | {} | |",
        time(9, || drop(top_k(&file, &prompts[0], 10, 30)))
    );
}
