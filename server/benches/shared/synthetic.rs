//! Synthetic embeddings for the answer-time benches: random unit vectors, one per frame.

use store::cache::{CacheHeader, EmbeddingFile, ModelKey, VideoFingerprint, FORMAT_VERSION};

/// A random unit vector of `dim` values from a linear congruential sequence.
pub fn unit(seed: &mut u64, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    engine::embed::l2_normalize(&mut v);
    v
}

/// A complete cache of `frames` frames at `fps`, `dim` wide.
pub fn cache(frames: u64, fps: u64, dim: usize) -> EmbeddingFile {
    let mut seed = 1;
    let mut file = EmbeddingFile::new(CacheHeader {
        format_version: FORMAT_VERSION,
        model: ModelKey {
            name: "synthetic".into(),
            revision: "0".into(),
            dimension: dim as u32,
        },
        video: VideoFingerprint {
            size: 0,
            chunks_hash: 0,
        },
        sample_fps_millis: None,
        video_frames: frames,
        video_fps_micros: fps * 1_000_000,
    });
    for n in 0..frames {
        file.frames.push(n);
        file.vectors.extend(unit(&mut seed, dim));
    }
    file
}
