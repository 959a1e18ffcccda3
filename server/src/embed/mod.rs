//! Embedders turn frames and prompts into L2-normalised CLIP vectors.
//!
//! Implementations: [`roboflow::RoboflowEmbedder`] (an inference server, wire-compatible with
//! the old app). The in-process candle backend comes with the CLIP engine.
//! Calls block: run them on indexing or `spawn_blocking` threads, never on async workers.

pub mod local;
pub mod preprocess;
pub mod roboflow;

use opencv::core::Mat;

/// Which model produced a set of vectors; caches are keyed by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelIdentity {
    pub name: String,
    /// A revision, file hash or server URL: whatever tells two models of one name apart.
    pub revision: String,
    pub dimension: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("cannot reach the inference server at {url}: {reason}. Is it running there? (Set roboflow_url, or use the local backend.)")]
    Unreachable { url: String, reason: String },
    #[error(
        "the inference server at {url} did not answer within {seconds} s ({attempts} attempts)"
    )]
    Timeout {
        url: String,
        seconds: u64,
        attempts: u32,
    },
    #[error("the inference server at {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("the inference server at {url} sent a malformed answer: {reason}")]
    Malformed { url: String, reason: String },
    #[error("cannot encode a frame for the inference server: {0}")]
    Encode(String),
}

/// Batch embedding of images (BGR frames) and texts.
pub trait Embedder: Send + Sync {
    fn identity(&self) -> ModelIdentity;
    fn embed_images(&self, frames: &[Mat]) -> Result<Vec<Vec<f32>>, EmbedError>;
    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalised_vectors_have_unit_length() {
        let mut v = vec![3.0, 4.0];
        super::l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0; 3];
        super::l2_normalize(&mut zero);
        assert_eq!(zero, vec![0.0; 3]);
    }
}
