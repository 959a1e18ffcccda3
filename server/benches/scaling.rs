//! How cost grows with video length: synthetic 1-, 10- and 60-minute 30 fps videos (made on
//! the fly with ffmpeg's `testsrc2`, 256x144, kept in cargo's bench tmp dir, never committed),
//! each indexed at full frame rate by the release binary in its own process (wall time, peak
//! RSS, cache size), then `scores` (1 and 20 prompts) and `search` on a cache of that length.
//!
//!     cargo bench -p server --bench scaling
//!
//! Indexing uses the tiny fixture model, so the table shows the pipeline's growth (decode,
//! preprocess, batches, checkpoints, cache writes) rather than ViT-B/32's arithmetic, whose
//! per-frame cost `cargo bench --bench clip` measures. Scores and search run on 512-wide
//! vectors (ViT-B/32's size) of the same frame count, so their times are the real model's.
//! `CLIP_SCALING_MINUTES=1,10,60` picks the lengths.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "shared/index_cli.rs"]
mod index_cli;
#[path = "shared/synthetic.rs"]
mod synthetic;
#[path = "shared/timing.rs"]
mod timing;

use engine::search::{cosine_rows, top_k};
use timing::sorted_ms;

const FPS: u64 = 30;
const DIM: usize = 512;

fn video(minutes: u64) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scaling-videos-v1");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("testsrc2-{minutes}min.mp4"));
    if !path.exists() {
        let partial = dir.join(format!("testsrc2-{minutes}min.partial.mp4"));
        let status = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(format!(
                "testsrc2=size=256x144:rate={FPS}:duration={}",
                minutes * 60
            ))
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "250"])
            .args(["-pix_fmt", "yuv420p", "-movflags", "+faststart"])
            .arg(&partial)
            .status()
            .expect("ffmpeg (apt-get install ffmpeg)");
        assert!(status.success());
        std::fs::rename(partial, &path).unwrap();
    }
    path
}

/// Median of 7 timings of `f` (after a warm-up), in ms.
fn time_ms(mut f: impl FnMut()) -> f64 {
    f();
    sorted_ms(7, f)[3]
}

fn main() {
    let minutes: Vec<u64> = std::env::var("CLIP_SCALING_MINUTES")
        .unwrap_or_else(|_| "1,10,60".into())
        .split(',')
        .map(|m| m.trim().parse().unwrap())
        .collect();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    let work = tempfile::tempdir().unwrap();

    println!("Synthetic 30 fps videos (256x144 H.264), every frame indexed; scores/search on 512-wide vectors");
    println!();
    println!("| length | frames | index time | frames/s | index time per frame | peak RSS | cache (tiny, 16-wide) | cache at 512 wide | scores, 1 prompt | scores, 20 prompts | search, top 10 |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for m in minutes {
        let path = video(m);
        let embeddings = work.path().join(format!("embeddings-{m}"));
        let report = index_cli::index_json(&path, &tiny, &embeddings, &[]);
        let frames = report["planned"].as_u64().unwrap();
        let seconds = report["seconds"].as_f64().unwrap();
        let cache_bytes = std::fs::metadata(report["cache"].as_str().unwrap())
            .unwrap()
            .len();

        let file = synthetic::cache(frames, FPS, DIM);
        let mut serialised = work.path().join(format!("synthetic-{m}.clipemb"));
        file.save(&serialised).unwrap();
        let wide_bytes = std::fs::metadata(&serialised).unwrap().len();
        std::fs::remove_file(&serialised).unwrap();
        serialised.clear();
        let mut seed = 7;
        let prompts: Vec<Vec<f32>> = (0..20).map(|_| synthetic::unit(&mut seed, DIM)).collect();
        let one = time_ms(|| drop(cosine_rows(&file, &prompts[..1])));
        let twenty = time_ms(|| drop(cosine_rows(&file, &prompts)));
        let search = time_ms(|| drop(top_k(&file, &prompts[0], 10, FPS)));
        println!(
            "| {m} min | {frames} | {seconds:.1} s | {:.0} | {:.2} ms | {:.0} MB | {:.2} MB | {:.1} MB | {one:.1} ms | {twenty:.1} ms | {search:.1} ms |",
            frames as f64 / seconds,
            seconds * 1000.0 / frames as f64,
            report["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
            cache_bytes as f64 / 1e6,
            wide_bytes as f64 / 1e6,
        );
    }
}
