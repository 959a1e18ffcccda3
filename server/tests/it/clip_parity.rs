//! The local backend against PyTorch + transformers on the same tiny random-weight CLIPs
//! (fixtures and goldens: scripts/make_tiny_clip.py, see tests/fixtures/tiny-clip/README.md):
//! `tiny-clip` with OpenAI's `quick_gelu`, `tiny-clip-gelu` with the exact `gelu` of LAION's
//! OpenCLIP checkpoints. The image tower is checked on both engines: candle and ONNX Runtime
//! (whose library scripts/setup.sh installs; without it these tests fail and say so).

use std::path::PathBuf;

use engine::embed::local::LocalClip;
use engine::embed::Embedder;
use store::config::ImageRuntime;

/// Each fixture and the activation its config.json names.
const FIXTURES: [(&str, &str); 2] = [("tiny-clip", "quick_gelu"), ("tiny-clip-gelu", "gelu")];

pub(crate) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub(crate) fn goldens(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(name).join("goldens.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn each_fixture_has_the_activation_it_tests() {
    for (name, act) in FIXTURES {
        let config = std::fs::read_to_string(fixture(name).join("config.json")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        for tower in ["text_config", "vision_config"] {
            assert_eq!(config[tower]["hidden_act"], act, "{name} {tower}");
        }
    }
}

pub(crate) fn floats(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

pub(crate) const ENGINES: [ImageRuntime; 2] = [ImageRuntime::Candle, ImageRuntime::Onnxruntime];

/// A fixture's model with its image tower on `engine` (checked to be that engine).
pub(crate) fn load(name: &str, engine: ImageRuntime) -> LocalClip {
    let clip = LocalClip::load_with(&fixture(name), name, engine)
        .unwrap_or_else(|e| panic!("{engine:?}: {e}"));
    let expected = match engine {
        ImageRuntime::Onnxruntime => "onnxruntime",
        _ => "candle",
    };
    assert_eq!(clip.image_runtime(), expected);
    clip
}

pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn token_ids_match_the_reference_tokenizer() {
    for (name, _) in FIXTURES {
        token_ids_match_on(name);
    }
}

fn token_ids_match_on(name: &str) {
    let clip = LocalClip::load(&fixture(name)).unwrap();
    let goldens = goldens(name);
    let prompts = goldens["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 10);
    for prompt in prompts {
        let text = prompt["text"].as_str().unwrap();
        let tokens = clip.tokenize(text).unwrap();
        let expected: Vec<u32> = prompt["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        // Same tokens up to the end token; after it we pad with 0 (see LocalClip::tokenize).
        let end = prompt["eos_position"].as_u64().unwrap() as usize;
        assert_eq!(tokens.end, end, "{text}");
        assert_eq!(&tokens.ids[..=end], &expected[..=end], "{text}");
        assert_eq!(
            tokens.truncated,
            prompt["truncated"].as_bool().unwrap(),
            "{text}"
        );
    }
}

#[test]
fn text_embeddings_match_pytorch() {
    for (name, _) in FIXTURES {
        text_embeddings_match_pytorch_on(name);
    }
}

fn text_embeddings_match_pytorch_on(name: &str) {
    let clip = LocalClip::load(&fixture(name)).unwrap();
    let goldens = goldens(name);
    let prompts = goldens["prompts"].as_array().unwrap();
    let texts: Vec<String> = prompts
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect();
    let ours = clip.embed_texts(&texts).unwrap();
    let mut worst = 0f32;
    for (prompt, vector) in prompts.iter().zip(&ours) {
        let diff = max_abs_diff(vector, &floats(&prompt["embedding_normalized"]));
        worst = worst.max(diff);
        assert!(
            diff <= 1e-4,
            "{name} {:?}: max abs diff {diff}",
            prompt["text"]
        );
        let cos = cosine(vector, &floats(&prompt["embedding_normalized"]));
        assert!(cos >= 0.999, "{name} {:?}: cosine {cos}", prompt["text"]);
    }
    println!("{name}: worst text embedding difference: {worst:e}");
    // One at a time, each short prompt runs only up to its end token (not all 77 positions):
    // the same embedding, as the causal mask promises.
    let mut worst_alone = 0f32;
    for prompt in prompts {
        let text = prompt["text"].as_str().unwrap().to_string();
        let alone = clip.embed_texts(&[text]).unwrap().remove(0);
        let diff = max_abs_diff(&alone, &floats(&prompt["embedding_normalized"]));
        worst_alone = worst_alone.max(diff);
        assert!(
            diff <= 1e-4,
            "{name} {:?} alone: max abs diff {diff}",
            prompt["text"]
        );
    }
    println!("{name}: worst text embedding difference, one prompt at a time: {worst_alone:e}");
}

#[test]
fn preprocessing_and_image_embeddings_match_pytorch() {
    for (name, _) in FIXTURES {
        for engine in ENGINES {
            image_embeddings_match_pytorch(name, engine);
        }
    }
}

fn image_embeddings_match_pytorch(name: &str, engine: ImageRuntime) {
    let clip = load(name, engine);
    let goldens = goldens(name);
    let mut worst_pixels = 0f32;
    for frame in goldens["frames"].as_array().unwrap() {
        let path = fixture(name)
            .join("frames")
            .join(frame["file"].as_str().unwrap().rsplit('/').next().unwrap());
        let image =
            opencv::imgcodecs::imread(path.to_str().unwrap(), opencv::imgcodecs::IMREAD_COLOR)
                .unwrap();
        let pixels = clip.preprocess_frame(&image).unwrap();
        // Pillow-exact resampling: the same 8-bit values, so only float rounding remains.
        let diff = max_abs_diff(&pixels, &floats(&frame["pixel_values"]));
        worst_pixels = worst_pixels.max(diff);
        assert!(diff <= 1e-5, "{path:?}: pixel values differ by {diff}");
        let ours = clip.embed_images(std::slice::from_ref(&image)).unwrap();
        let golden = floats(&frame["embedding_normalized"]);
        let diff = max_abs_diff(&ours[0], &golden);
        assert!(
            diff <= 1e-4,
            "{name} {engine:?} {path:?}: embedding max abs diff {diff}"
        );
        let cos = cosine(&ours[0], &golden);
        assert!(cos >= 0.999, "{name} {engine:?} {path:?}: cosine {cos}");
        println!("{name} {engine:?} {path:?}: image embedding max abs diff {diff:e}, cosine {cos}");
    }
    println!("worst preprocessing difference: {worst_pixels:e}");
}

#[test]
fn cosine_scores_match_pytorch() {
    for (name, _) in FIXTURES {
        for engine in ENGINES {
            cosine_scores_match_pytorch_on(name, engine);
        }
    }
}

fn cosine_scores_match_pytorch_on(name: &str, engine: ImageRuntime) {
    let clip = load(name, engine);
    let goldens = goldens(name);
    let texts: Vec<String> = goldens["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect();
    let text_vectors = clip.embed_texts(&texts).unwrap();
    let pixels: Vec<Vec<f32>> = goldens["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| floats(&f["pixel_values"]))
        .collect();
    let image_vectors = clip.embed_pixels(&pixels).unwrap();
    let expected = goldens["similarity"].as_array().unwrap();
    for (i, image) in image_vectors.iter().enumerate() {
        let row = floats(&expected[i]);
        for (j, text) in text_vectors.iter().enumerate() {
            let score: f32 = image.iter().zip(text).map(|(a, b)| a * b).sum();
            assert!(
                (score - row[j]).abs() <= 1e-5,
                "{name} {engine:?} frame {i} prompt {j}: {score} vs {}",
                row[j]
            );
        }
    }
}
