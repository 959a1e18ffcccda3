//! SigLIP and SigLIP 2 (fixed resolution) against PyTorch + transformers on tiny random-weight
//! checkpoints (fixtures and goldens: scripts/make_tiny_siglip.py, see
//! tests/fixtures/tiny-siglip/README.md): token ids with the family's text steps and padding,
//! preprocessed pixels (bicubic for SigLIP, bilinear for SigLIP 2, squashed to the box),
//! embeddings, cosine scores and the sigmoid probabilities, with the image tower on both engines
//! (candle, and ONNX Runtime on the graph written from the same safetensors).

use engine::embed::local::LocalClip;
use engine::embed::Embedder;
use store::config::ImageRuntime;

use crate::clip_parity::{cosine, fixture, floats, goldens, load, max_abs_diff, ENGINES};

/// Each fixture and what its preprocessor resamples with (Pillow's code).
const FIXTURES: [(&str, u64); 2] = [("tiny-siglip", 3), ("tiny-siglip2", 2)];

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

fn texts(goldens: &serde_json::Value) -> Vec<String> {
    goldens["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn each_fixture_is_the_family_and_filter_it_tests() {
    for (name, resample) in FIXTURES {
        let read = |file: &str| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(fixture(name).join(file)).unwrap())
                .unwrap()
        };
        assert_eq!(read("config.json")["model_type"], "siglip", "{name}");
        assert_eq!(
            read("preprocessor_config.json")["resample"],
            resample,
            "{name}"
        );
        assert_eq!(goldens(name)["context_length"], 64, "{name}");
    }
}

#[test]
fn token_ids_with_the_familys_text_steps_and_padding_match_transformers() {
    for (name, _) in FIXTURES {
        let model = load(name, ImageRuntime::Candle);
        let goldens = goldens(name);
        let prompts = goldens["prompts"].as_array().unwrap();
        assert!(prompts.len() >= 14, "{name}");
        let mut truncated = 0;
        for prompt in prompts {
            let text = prompt["text"].as_str().unwrap();
            let tokens = model.tokenize(text).unwrap();
            // Every id, padding included: SigLIP reads the last position.
            assert_eq!(tokens.ids, ids(&prompt["input_ids"]), "{name} {text:?}");
            assert_eq!(tokens.end, 63, "{name} {text:?}");
            assert_eq!(
                tokens.truncated,
                prompt["truncated"].as_bool().unwrap(),
                "{name} {text:?}"
            );
            assert_eq!(
                model.is_truncated(text),
                tokens.truncated,
                "{name} {text:?}"
            );
            truncated += usize::from(tokens.truncated);
            if name == "tiny-siglip" {
                assert_eq!(
                    engine::embed::local::canonicalize(text),
                    prompt["text_after_canonicalisation"].as_str().unwrap(),
                    "{text:?}"
                );
            }
        }
        assert!(truncated >= 1, "{name}: no prompt is cut at 64 tokens");
    }
}

/// SigLIP's real checkpoints ship `spiece.model` and no `tokenizer.json`: read as transformers
/// converts it, the same ids.
#[test]
fn a_checkpoint_with_only_spiece_model_tokenizes_the_same() {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "config.json",
        "model.safetensors",
        "spiece.model",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fixture("tiny-siglip").join(file), dir.path().join(file)).unwrap();
    }
    let model = LocalClip::load_with(dir.path(), "tiny-siglip", ImageRuntime::Candle).unwrap();
    let goldens = goldens("tiny-siglip");
    for prompt in goldens["prompts"].as_array().unwrap() {
        let text = prompt["text"].as_str().unwrap();
        assert_eq!(
            model.tokenize(text).unwrap().ids,
            ids(&prompt["input_ids"]),
            "{text:?}"
        );
    }
    // Neither file: the message names what to put there.
    std::fs::remove_file(dir.path().join("spiece.model")).unwrap();
    let error = LocalClip::load_with(dir.path(), "x", ImageRuntime::Candle)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("tokenizer.json"), "{error}");
    // A damaged one: refused, saying why.
    std::fs::write(dir.path().join("spiece.model"), [0xff; 40]).unwrap();
    let error = LocalClip::load_with(dir.path(), "x", ImageRuntime::Candle)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("spiece.model") && error.contains("SentencePiece"),
        "{error}"
    );
}

#[test]
fn preprocessing_and_embeddings_match_pytorch() {
    for (name, _) in FIXTURES {
        let goldens = goldens(name);
        for engine in ENGINES {
            let model = load(name, engine);
            let (mut worst_pixels, mut worst_image) = (0f32, 0f32);
            for frame in goldens["frames"].as_array().unwrap() {
                let path = fixture(name).join(frame["file"].as_str().unwrap());
                let image = opencv::imgcodecs::imread(
                    path.to_str().unwrap(),
                    opencv::imgcodecs::IMREAD_COLOR,
                )
                .unwrap();
                let pixels = model.preprocess_frame(&image).unwrap();
                let diff = max_abs_diff(&pixels, &floats(&frame["pixel_values"]));
                worst_pixels = worst_pixels.max(diff);
                assert!(
                    diff <= 1e-5,
                    "{name} {path:?}: pixel values differ by {diff}"
                );
                let ours = model.embed_images(std::slice::from_ref(&image)).unwrap();
                let golden = floats(&frame["embedding_normalized"]);
                let diff = max_abs_diff(&ours[0], &golden);
                worst_image = worst_image.max(diff);
                assert!(
                    diff <= 1e-4,
                    "{name} {engine:?} {path:?}: image embedding differs by {diff}"
                );
                assert!(
                    cosine(&ours[0], &golden) >= 0.999,
                    "{name} {engine:?} {path:?}"
                );
            }
            println!("{name} {engine:?}: preprocessing {worst_pixels:e}, image embedding {worst_image:e}");
        }
        let model = load(name, ImageRuntime::Candle);
        let mut worst_text = 0f32;
        let prompts = goldens["prompts"].as_array().unwrap();
        for (prompt, vector) in prompts
            .iter()
            .zip(model.embed_texts(&texts(&goldens)).unwrap())
        {
            let golden = floats(&prompt["embedding_normalized"]);
            let diff = max_abs_diff(&vector, &golden);
            worst_text = worst_text.max(diff);
            assert!(
                diff <= 1e-4,
                "{name} {:?}: text embedding differs by {diff}",
                prompt["text"]
            );
            assert!(
                cosine(&vector, &golden) >= 0.999,
                "{name} {:?}",
                prompt["text"]
            );
        }
        println!("{name}: text embedding {worst_text:e}");
    }
}

#[test]
fn cosine_scores_and_sigmoid_probabilities_match_pytorch() {
    for (name, _) in FIXTURES {
        for engine in ENGINES {
            scores_match_on(name, engine);
        }
    }
}

fn scores_match_on(name: &str, engine: ImageRuntime) {
    let model = load(name, engine);
    let goldens = goldens(name);
    let scale = goldens["logit_scale"].as_f64().unwrap() as f32;
    let bias = goldens["logit_bias"].as_f64().unwrap() as f32;
    assert!(
        (model.logit_scale() - scale).abs() <= 1e-5 * scale,
        "{name}"
    );
    assert_eq!(model.logit_bias(), Some(bias), "{name}");
    let text_vectors = model.embed_texts(&texts(&goldens)).unwrap();
    let pixels: Vec<Vec<f32>> = goldens["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| floats(&f["pixel_values"]))
        .collect();
    let image_vectors = model.embed_pixels(&pixels).unwrap();
    let (similarity, probability) = (
        goldens["similarity"].as_array().unwrap(),
        goldens["probability"].as_array().unwrap(),
    );
    let mut worst_relative = 0f32;
    for (i, image) in image_vectors.iter().enumerate() {
        let (cos_row, p_row) = (floats(&similarity[i]), floats(&probability[i]));
        for (j, text) in text_vectors.iter().enumerate() {
            let score: f32 = image.iter().zip(text).map(|(a, b)| a * b).sum();
            assert!(
                (score - cos_row[j]).abs() <= 1e-5,
                "{name} {engine:?} frame {i} prompt {j}"
            );
            // What the page's probability view computes from the cosine.
            let p = investigator_core::scores::sigmoid_per_prompt(
                &[vec![score]],
                model.logit_scale(),
                bias,
            )[0][0];
            let relative = (p - p_row[j]).abs() / p_row[j];
            worst_relative = worst_relative.max(relative);
            assert!(
                relative <= 1e-3,
                "{name} {engine:?} frame {i} prompt {j}: {p} vs {}",
                p_row[j]
            );
        }
    }
    println!("{name} {engine:?}: sigmoid probability worst relative difference {worst_relative:e}");
}
