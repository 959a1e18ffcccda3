//! Answers from an embedding file: per-frame cosine scores for prompts, and the top moments
//! for a query, with non-maximum suppression so that one moment does not fill the list. The
//! `*_blocking` functions answer the page from a video's indexing service while it runs.

use investigator_core::scores::fill_frames_with_gaps;
use investigator_core::types::{IndexState, PromptScores, ScoreSeries, SearchHit};

use store::cache::EmbeddingFile;

use crate::embed::EmbedError;
use crate::indexing::service::NotReady;
use crate::indexing::IndexService;
use crate::sync::read;

/// Why scores or a search cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The model is loading, or failed to load (the message says what to do).
    #[error(transparent)]
    NotReady(#[from] NotReady),
    #[error("the uploaded file is not an image (JPEG, PNG, BMP or WebP)")]
    NotAnImage,
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// Cosine scores of the embedded frames. Blocking: embeds prompts not yet cached.
pub fn scores_blocking(
    service: &IndexService,
    prompts: &[String],
) -> Result<ScoreSeries, SearchError> {
    scores_blocking_with(service, prompts, |_| ()).map(|(series, _)| series)
}

/// [`scores_blocking`], and `also` of the same snapshot of the cache (`None` before there is
/// one): what else is computed from its rows stays aligned with the series' frames.
pub fn scores_blocking_with<T>(
    service: &IndexService,
    prompts: &[String],
    also: impl FnOnce(&EmbeddingFile) -> T,
) -> Result<(ScoreSeries, Option<T>), SearchError> {
    let embedder = service.ready_embedder()?;
    let vectors = service.embed_texts(embedder.as_ref(), prompts)?;
    let status = service.status();
    let complete = status.state == IndexState::Done;
    let mut extra = None;
    let (frames, missing, video_frames, series, cuts, fps) = match service.embeddings() {
        Some(store) => {
            let file = read(store);
            let (cuts, _) = crate::indexing::cuts::cuts_in(&file);
            extra = Some(also(&file));
            (
                file.frames.clone(),
                file.missing.clone(),
                file.header.video_frames,
                cosine_rows(&file, &vectors),
                cuts.iter().map(|c| c.frame).collect(),
                file.header.video_fps_micros as f64 / 1e6,
            )
        }
        None => (
            Vec::new(),
            Vec::new(),
            0,
            vec![Vec::new(); prompts.len()],
            Vec::new(),
            0.0,
        ),
    };
    // How fine the curves are: the running pass's spacing, or once done, the widest gap.
    let refining = status.passes > 0 && !complete;
    let spacing_frames = if refining {
        status.spacing_frames
    } else {
        crate::indexing::passes::coverage(&frames, video_frames).0
    };
    let series = ScoreSeries {
        spacing_frames,
        spacing_s: if fps > 0.0 {
            spacing_frames as f64 / fps
        } else {
            0.0
        },
        refining,
        frames,
        missing,
        video_frames,
        fill_radius: service.fill_radius(),
        complete,
        logit_scale: embedder.logit_scale(),
        logit_bias: embedder.logit_bias(),
        cuts,
        prompts: prompts
            .iter()
            .zip(series)
            .map(|(prompt, values)| PromptScores {
                prompt: prompt.clone(),
                values,
                truncated: embedder.is_truncated(prompt),
            })
            .collect(),
        adapted: Vec::new(),
    };
    Ok((series, extra))
}

/// The `top` embedded frames most like `text`, `image` or both, at least a second apart.
pub fn search_blocking(
    service: &IndexService,
    text: Option<&str>,
    image: Option<&[u8]>,
    top: usize,
    fps: f64,
) -> Result<Vec<SearchHit>, SearchError> {
    let embedder = service.ready_embedder()?;
    let mut queries = Vec::new();
    if let Some(text) = text {
        queries.extend(service.embed_texts(embedder.as_ref(), &[text.to_string()])?);
    }
    if let Some(bytes) = image {
        let frame = crate::video::decode_image(bytes)
            .ok()
            .filter(|m| !opencv::prelude::MatTraitConst::empty(m))
            .ok_or(SearchError::NotAnImage)?;
        queries.extend(embedder.embed_images(std::slice::from_ref(&frame))?);
    }
    let Some(store) = service.embeddings() else {
        return Ok(Vec::new());
    };
    let file = read(store);
    let min_gap = fps.round().max(1.0) as u64;
    Ok(top_k(&file, &combine(&queries), top, min_gap)
        .into_iter()
        .map(|h| SearchHit {
            frame: h.frame,
            score: h.score,
        })
        .collect())
}

/// Cosine of every embedded frame with each query (`[query][row]`); both sides are unit
/// vectors, so this is the matrix product `queries x vectorsᵀ`, computed with the same GEMM
/// kernels candle uses (SIMD, both cores) straight on the cache's memory, without a copy.
pub fn cosine_rows(file: &EmbeddingFile, queries: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let dim = file.dimension();
    let rows = file.frames.len();
    let q = queries.len();
    if dim == 0 || rows == 0 || q == 0 || queries.iter().any(|v| v.len() != dim) {
        return cosine_rows_naive(file, queries);
    }
    debug_assert_eq!(file.vectors.len(), rows * dim);
    let flat: Vec<f32> = queries.iter().flatten().copied().collect();
    // queries (q x dim) x vectorsᵀ (dim x rows): each query's series comes out contiguous.
    let mut product = vec![0f32; q * rows];
    // SAFETY: `product` is q x rows (column stride 1, row stride rows); `flat` is q x dim
    // (column stride 1, row stride dim); `vectors` read as its transpose is dim x rows (column
    // stride dim, row stride 1). All three buffers hold exactly those elements and live across
    // the call, and `product` does not alias the inputs.
    unsafe {
        gemm::gemm(
            q,
            rows,
            dim,
            product.as_mut_ptr(),
            1,
            rows as isize,
            false,
            flat.as_ptr(),
            1,
            dim as isize,
            file.vectors.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
    product.chunks_exact(rows).map(<[f32]>::to_vec).collect()
}

/// Row-by-row dot products: the reference for [`cosine_rows`], and its fallback for queries
/// of the wrong length (which then score as far as they go).
pub fn cosine_rows_naive(file: &EmbeddingFile, queries: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let dim = file.dimension();
    let mut out = vec![Vec::with_capacity(file.frames.len()); queries.len()];
    if dim == 0 {
        return out;
    }
    for row in file.vectors.chunks_exact(dim) {
        for (q, o) in queries.iter().zip(out.iter_mut()) {
            o.push(dot(row, q));
        }
    }
    out
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums let the compiler vectorise without reassociating floats itself.
    let mut sums = [0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() / 8 * 8);
    let (b8, b_rest) = b.split_at(a8.len().min(b.len()));
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum::<f32>()
}

/// Per-frame scores for frames `0..covered` of the video (see [`fill_frames_with_gaps`]: NaN
/// where a frame could not be decoded). Once the index is `complete`, the frames after the last
/// sample take its value too.
pub fn frame_scores(
    file: &EmbeddingFile,
    queries: &[Vec<f32>],
    fill_radius: u64,
    complete: bool,
) -> (u64, Vec<Vec<f32>>) {
    let fill_radius = if complete { u64::MAX } else { fill_radius };
    let series: Vec<Vec<f32>> = cosine_rows(file, queries)
        .iter()
        .map(|rows| {
            fill_frames_with_gaps(
                &file.frames,
                rows,
                &file.missing,
                file.header.video_frames,
                fill_radius,
            )
        })
        .collect();
    let covered = series.first().map_or(0, |s| s.len() as u64);
    (covered, series)
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub frame: u64,
    pub score: f32,
}

/// The `k` best frames for `query`, no two closer than `min_gap` frames: take the best, drop
/// its neighbours, repeat.
pub fn top_k(file: &EmbeddingFile, query: &[f32], k: usize, min_gap: u64) -> Vec<Hit> {
    let scores = cosine_rows(file, std::slice::from_ref(&query.to_vec()))
        .pop()
        .unwrap_or_default();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut hits: Vec<Hit> = Vec::with_capacity(k);
    for i in order {
        if hits.len() == k {
            break;
        }
        let frame = file.frames[i];
        if hits
            .iter()
            .all(|h| h.frame.abs_diff(frame) >= min_gap.max(1))
        {
            hits.push(Hit {
                frame,
                score: scores[i],
            });
        }
    }
    hits
}

/// Sum of unit vectors, normalised: a query meaning "like this text and like this image".
pub fn combine(vectors: &[Vec<f32>]) -> Vec<f32> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut sum = vec![0f32; dim];
    for v in vectors {
        for (s, x) in sum.iter_mut().zip(v) {
            *s += x;
        }
    }
    crate::embed::l2_normalize(&mut sum);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::cache::{CacheHeader, ModelKey, VideoFingerprint, FORMAT_VERSION};

    fn file(frames: Vec<u64>, vectors: Vec<[f32; 2]>, total: u64) -> EmbeddingFile {
        EmbeddingFile {
            skip: None,
            scene: None,
            header: CacheHeader {
                format_version: FORMAT_VERSION,
                model: ModelKey {
                    name: "t".into(),
                    revision: "r".into(),
                    dimension: 2,
                },
                video: VideoFingerprint {
                    size: 1,
                    chunks_hash: 1,
                },
                sample_fps_millis: None,
                video_frames: total,
                video_fps_micros: 30_000_000,
            },
            frames,
            vectors: vectors.concat(),
            missing: Vec::new(),
        }
    }

    #[test]
    fn scores_are_dot_products_per_frame() {
        let f = file(vec![0, 1, 2], vec![[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], 3);
        let (covered, s) = frame_scores(&f, &[vec![1.0, 0.0], vec![0.6, 0.8]], 0, false);
        assert_eq!(covered, 3);
        assert_eq!(s[0], vec![1.0, 0.0, 0.6]);
        assert!((s[1][2] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_matrix_product_equals_row_by_row_dot_products() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let dim = 40;
        let mut f = file(Vec::new(), Vec::new(), 0);
        f.header.model.dimension = dim as u32;
        for n in 0..1000u64 {
            f.frames.push(n);
            f.vectors.extend((0..dim).map(|_| next()));
        }
        let queries: Vec<Vec<f32>> = (0..7).map(|_| (0..dim).map(|_| next()).collect()).collect();
        let fast = cosine_rows(&f, &queries);
        let slow = cosine_rows_naive(&f, &queries);
        assert_eq!((fast.len(), fast[0].len()), (7, 1000));
        for (a, b) in fast.iter().flatten().zip(slow.iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn long_vectors_sum_every_element() {
        let a: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let expected: f32 = a.iter().map(|x| x * x).sum();
        assert_eq!(dot(&a, &a), expected);
    }

    #[test]
    fn search_suppresses_neighbours_of_a_hit() {
        // Frames 10..=12 form one bright moment, frame 40 another, weaker one.
        let mut frames = Vec::new();
        let mut vectors = Vec::new();
        for n in 0..50u64 {
            frames.push(n);
            let s = match n {
                10 | 12 => 0.9,
                11 => 0.95,
                40 => 0.8,
                _ => 0.1,
            };
            vectors.push([s, (1.0f32 - s * s).sqrt()]);
        }
        let f = file(frames, vectors, 50);
        let hits = top_k(&f, &[1.0, 0.0], 3, 5);
        let found: Vec<u64> = hits.iter().map(|h| h.frame).collect();
        assert_eq!(found[..2], [11, 40]);
        assert!(found[2].abs_diff(11) >= 5 && found[2].abs_diff(40) >= 5);
        // Without suppression the neighbours win.
        let plain: Vec<u64> = top_k(&f, &[1.0, 0.0], 3, 1)
            .iter()
            .map(|h| h.frame)
            .collect();
        assert_eq!(plain, vec![11, 10, 12]);
    }

    #[test]
    fn combined_queries_are_unit_vectors() {
        let q = combine(&[vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!((q[0] - q[1]).abs() < 1e-6 && (q[0] * q[0] + q[1] * q[1] - 1.0).abs() < 1e-6);
    }
}
