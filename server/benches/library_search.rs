//! Which engine answers a library search: our exact int8 scan with an f32 re-rank (the
//! library's `engine::vectors`, through its segment files), an exact f32 scan, and usearch's
//! HNSW graph (a maintained ANN library: i8 and f16 storage), on synthetic vectors shaped like
//! video (per video a slow random walk on the sphere, a scene change now and then; 512 dims),
//! at 10^5 and 10^6 vectors: build time, query p50/p95, recall@10 against the exact f32 answer,
//! RAM and disk.
//!
//!     cargo bench -p server --bench library_search --features library-bench
//!
//! `LIBRARY_BENCH_SIZES=100000,1000000` (vectors), `LIBRARY_BENCH_QUERIES=100`,
//! `LIBRARY_BENCH_USEARCH_THREADS` (usearch's build threads; default all cores).
//! The compile time each engine adds is measured apart (docs/measured.md says how).

#[path = "shared/timing.rs"]
mod timing;

use std::time::Instant;

use engine::vectors::{SearchLimits, VectorIndex, VectorStore};
use store::cache::{CacheHeader, EmbeddingFile, ModelKey, VideoFingerprint, FORMAT_VERSION};
use timing::percentile;

const DIM: usize = 512;
/// Frames per synthetic video (a 5.5-minute video at one sample a second is 330).
const FRAMES_PER_VIDEO: usize = 10_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Sum of two uniforms: cheap, roughly bell-shaped.
        let a = (self.0 >> 40) as f32 / (1u64 << 24) as f32;
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = (self.0 >> 40) as f32 / (1u64 << 24) as f32;
        a + b - 1.0
    }
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// `n` vectors: videos of `FRAMES_PER_VIDEO`, each a random walk whose neighbouring frames
/// have a cosine near 0.99, jumping to a new place every 300 frames or so (a cut).
fn video_like(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(n * DIM);
    let mut v = vec![0f32; DIM];
    for i in 0..n {
        if i % FRAMES_PER_VIDEO == 0 || rng.next() > 0.993 {
            v.iter_mut().for_each(|x| *x = rng.next());
        } else {
            for x in v.iter_mut() {
                *x += 0.005 * rng.next();
            }
        }
        normalize(&mut v);
        out.extend_from_slice(&v);
    }
    out
}

/// Queries near stored frames (a frame seen again, or a description of it): the frame plus
/// noise of about its own size.
fn queries(vectors: &[f32], count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    let n = vectors.len() / DIM;
    (0..count)
        .map(|_| {
            let at = ((rng.next() + 1.0) / 2.0 * (n - 1) as f32) as usize;
            let mut q: Vec<f32> = vectors[at * DIM..(at + 1) * DIM]
                .iter()
                .map(|x| x + 0.04 * rng.next())
                .collect();
            normalize(&mut q);
            q
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    engine::vectors::quantize::dot_f32(a, b)
}

/// The exact top 10 (row numbers), scanning every f32 vector on all cores.
fn exact_top10(vectors: &[f32], q: &[f32]) -> Vec<usize> {
    let n = vectors.len() / DIM;
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let part = n.div_ceil(threads);
    let mut all: Vec<(usize, f32)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let range = t * part..((t + 1) * part).min(n);
                    let mut scored: Vec<(usize, f32)> = range
                        .map(|i| (i, dot(&vectors[i * DIM..(i + 1) * DIM], q)))
                        .collect();
                    let keep = scored.len().min(10);
                    if keep > 0 && scored.len() > keep {
                        scored.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1));
                        scored.truncate(keep);
                    }
                    scored
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    all.sort_by(|a, b| b.1.total_cmp(&a.1));
    all.into_iter().take(10).map(|(i, _)| i).collect()
}

fn recall(found: &[usize], truth: &[usize]) -> f64 {
    found.iter().filter(|f| truth.contains(f)).count() as f64 / truth.len().max(1) as f64
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn folder_mb(dir: &std::path::Path) -> f64 {
    fn walk(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p)
                } else {
                    e.metadata().map_or(0, |m| m.len())
                }
            })
            .sum()
    }
    walk(dir) as f64 / 1e6
}

struct Row {
    engine: String,
    vectors: usize,
    build_s: f64,
    p50: f64,
    p95: f64,
    recall: f64,
    ram_mb: f64,
    disk_mb: f64,
}

fn timed_queries(
    qs: &[Vec<f32>],
    truth: &[Vec<usize>],
    mut search: impl FnMut(&[f32]) -> Vec<usize>,
) -> (f64, f64, f64) {
    search(&qs[0]); // warm-up
    let mut ms = Vec::with_capacity(qs.len());
    let mut total = 0.0;
    for (q, t) in qs.iter().zip(truth) {
        let started = Instant::now();
        let found = search(q);
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        total += recall(&found, t);
    }
    ms.sort_by(f64::total_cmp);
    (
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        total / qs.len() as f64,
    )
}

fn model() -> ModelKey {
    ModelKey {
        name: "bench".into(),
        revision: "synthetic".into(),
        dimension: DIM as u32,
    }
}

/// Our engine: every video's rows synced into segments, then searched as the library does.
fn ours(vectors: &[f32], qs: &[Vec<f32>], truth: &[Vec<usize>]) -> Row {
    let n = vectors.len() / DIM;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let before = rss_mb();
    let started = Instant::now();
    let index = VectorIndex::open(dir.path(), &model());
    let mut names = Vec::new();
    for (video, chunk) in vectors.chunks(FRAMES_PER_VIDEO * DIM).enumerate() {
        let mut file = EmbeddingFile::new(CacheHeader {
            format_version: FORMAT_VERSION,
            model: model(),
            video: VideoFingerprint {
                size: video as u64 + 1,
                chunks_hash: video as u64,
            },
            sample_fps_millis: None,
            video_frames: (chunk.len() / DIM) as u64,
            video_fps_micros: 1_000_000,
        });
        for (f, v) in chunk.chunks_exact(DIM).enumerate() {
            file.push_embedded(f as u64, v);
        }
        let name = format!("video{video}.clipemb");
        index.sync(&name, &file).unwrap();
        names.push(name);
    }
    let build_s = started.elapsed().as_secs_f64();
    let ram_mb = rss_mb() - before;
    // As the library search asks: 128 candidates per video (it groups moments from them),
    // the best videos' candidates re-ranked.
    let limits = SearchLimits {
        per_video: 128,
        videos: 10,
    };
    let (p50, p95, r) = timed_queries(qs, truth, |q| {
        let found = index.search(q, &|_| true, limits).unwrap();
        let mut all: Vec<(usize, f32)> = found
            .iter()
            .flat_map(|v| {
                let video = (v.header.video.size - 1) as usize;
                v.hits
                    .iter()
                    .map(move |&(f, s)| (video * FRAMES_PER_VIDEO + f as usize, s))
            })
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.into_iter().take(10).map(|(i, _)| i).collect()
    });
    Row {
        engine: "ours: int8 scan + exact f32 re-rank (segments)".into(),
        vectors: n,
        build_s,
        p50,
        p95,
        recall: r,
        ram_mb,
        disk_mb: folder_mb(dir.path()),
    }
}

/// The exact f32 scan, all vectors in memory.
fn exact(vectors: &[f32], qs: &[Vec<f32>], truth: &[Vec<usize>]) -> Row {
    let (p50, p95, r) = timed_queries(qs, truth, |q| exact_top10(vectors, q));
    Row {
        engine: "exact f32 scan (in memory)".into(),
        vectors: vectors.len() / DIM,
        build_s: 0.0,
        p50,
        p95,
        recall: r,
        ram_mb: (vectors.len() * 4) as f64 / 1e6,
        disk_mb: (vectors.len() * 4) as f64 / 1e6,
    }
}

/// usearch's HNSW graph (cosine as inner product on unit vectors), `quantization` storage,
/// `connectivity` links per node (0: its default, 16) built with `expansion_add`, on all
/// cores; queries at each of `expansions`, the best `rerank` candidates (0: none, the graph's
/// own top 10) re-ranked exactly from the f32 vectors.
#[allow(clippy::too_many_arguments)]
fn usearch_rows(
    vectors: &[f32],
    qs: &[Vec<f32>],
    truth: &[Vec<usize>],
    quantization: usearch::ScalarKind,
    label: &str,
    (connectivity, expansion_add): (usize, usize),
    expansions: &[usize],
    rerank: usize,
) -> Vec<Row> {
    let n = vectors.len() / DIM;
    let threads = std::env::var("LIBRARY_BENCH_USEARCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |t| t.get()));
    let before = rss_mb();
    let started = Instant::now();
    let options = usearch::IndexOptions {
        dimensions: DIM,
        metric: usearch::MetricKind::IP,
        quantization,
        connectivity,
        expansion_add,
        ..Default::default()
    };
    let index = usearch::Index::new(&options).unwrap();
    index.reserve_capacity_and_threads(n, threads).unwrap();
    let part = n.div_ceil(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let index = &index;
            s.spawn(move || {
                for i in t * part..((t + 1) * part).min(n) {
                    index
                        .add(i as u64, &vectors[i * DIM..(i + 1) * DIM])
                        .unwrap();
                }
            });
        }
    });
    let build_s = started.elapsed().as_secs_f64();
    let ram_mb = rss_mb() - before;
    let disk_mb = index.serialized_length() as f64 / 1e6;
    let mut rows = Vec::new();
    for &expansion in expansions {
        index.change_expansion_search(expansion);
        let (p50, p95, r) = timed_queries(qs, truth, |q| {
            let matches = index.search(q, rerank.max(10)).unwrap();
            let mut found: Vec<(usize, f32)> = matches
                .keys
                .iter()
                .map(|&k| {
                    (
                        k as usize,
                        if rerank > 0 {
                            dot(&vectors[k as usize * DIM..(k as usize + 1) * DIM], q)
                        } else {
                            0.0
                        },
                    )
                })
                .collect();
            if rerank > 0 {
                found.sort_by(|a, b| b.1.total_cmp(&a.1));
            }
            found.into_iter().take(10).map(|(k, _)| k).collect()
        });
        let reranked = if rerank > 0 {
            format!(", top {rerank} re-ranked exactly")
        } else {
            String::new()
        };
        rows.push(Row {
            engine: format!("usearch HNSW, {label} (expansion {expansion}{reranked})"),
            vectors: n,
            build_s,
            p50,
            p95,
            recall: r,
            ram_mb,
            disk_mb,
        });
    }
    rows
}

fn main() {
    let sizes: Vec<usize> = std::env::var("LIBRARY_BENCH_SIZES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let count: usize = std::env::var("LIBRARY_BENCH_QUERIES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100);
    let mut rows = Vec::new();
    for &n in &sizes {
        let vectors = video_like(n, 7);
        let qs = queries(&vectors, count, 11);
        let truth: Vec<Vec<usize>> = qs.iter().map(|q| exact_top10(&vectors, q)).collect();
        eprintln!("{n} vectors: made, exact answers known");
        rows.push(exact(&vectors, &qs, &truth));
        rows.push(ours(&vectors, &qs, &truth));
        eprintln!("{n}: ours done");
        rows.extend(usearch_rows(
            &vectors,
            &qs,
            &truth,
            usearch::ScalarKind::I8,
            "i8, defaults",
            (0, 0),
            &[64, 256],
            0,
        ));
        rows.extend(usearch_rows(
            &vectors,
            &qs,
            &truth,
            usearch::ScalarKind::F16,
            "f16, defaults",
            (0, 0),
            &[64, 256],
            0,
        ));
        rows.extend(usearch_rows(
            &vectors,
            &qs,
            &truth,
            usearch::ScalarKind::F16,
            "f16, 32 links, build expansion 256",
            (32, 256),
            &[256, 1024],
            100,
        ));
        eprintln!("{n}: usearch done");
    }
    println!(
        "Library search engines, 512-dim video-like vectors ({FRAMES_PER_VIDEO} per video), {count} queries near stored frames, {} threads",
        std::thread::available_parallelism().map_or(1, |t| t.get())
    );
    println!();
    println!(
        "| engine | vectors | build s | query p50 ms | p95 ms | recall@10 | RAM MB | disk MB |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {} | {:.1} | {:.2} | {:.2} | {:.3} | {:.0} | {:.0} |",
            r.engine, r.vectors, r.build_s, r.p50, r.p95, r.recall, r.ram_mb, r.disk_mb
        );
    }
}
