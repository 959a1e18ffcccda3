//! Checkpoints in open_clip's own layout (`open_clip_config.json` + `open_clip_model.safetensors`)
//! against open_clip itself on tiny random-weight models (fixtures and goldens:
//! scripts/make_tiny_open_clip.py, see tests/fixtures/tiny-open-clip/README.md): tokens, text and
//! image embeddings, logits and probabilities on both image runtimes, and open_clip's
//! preprocessing (`shortest`, `longest`, `squash`; bicubic and bilinear) on frames of both
//! orientations and odd sizes.

use engine::embed::preprocess::{preprocess, CropRounding, Filter, PreprocessConfig, RgbImage};
use engine::embed::Embedder;
use opencv::prelude::*;
use store::config::ImageRuntime;

use crate::clip_parity::{fixture, floats, goldens, load, max_abs_diff, ENGINES};

/// The fixtures in open_clip's layout.
const FIXTURES: [&str; 3] = ["tiny-open-clip", "tiny-pe-core", "tiny-open-clip-siglip"];

/// Prompts whose cleaning by open_clip this program does not reproduce: ftfy's repair of
/// mojibake (UTF-8 read as Latin-1) — the ids differ, and are checked to.
const UNREPAIRED: &[(&str, &str)] = &[("tiny-open-clip-siglip", "cafÃ© crÃ¨me, ‘single’ quotes")];

fn unrepaired(name: &str, text: &str) -> bool {
    UNREPAIRED.contains(&(name, text))
}

fn frame(name: &str, file: &str) -> opencv::core::Mat {
    let path = fixture(name).join(file);
    let image =
        opencv::imgcodecs::imread(path.to_str().unwrap(), opencv::imgcodecs::IMREAD_COLOR).unwrap();
    assert!(!image.empty(), "{path:?}");
    image
}

#[test]
fn tokens_match_open_clips_tokenizer() {
    for name in FIXTURES {
        let model = load(name, ImageRuntime::Candle);
        for prompt in goldens(name)["prompts"].as_array().unwrap() {
            let text = prompt["text"].as_str().unwrap();
            let tokens = model.tokenize(text).unwrap();
            let expected: Vec<u32> = prompt["input_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            if unrepaired(name, text) {
                assert_ne!(
                    tokens.ids, expected,
                    "{name} {text:?} is now cleaned as open_clip does: take it off UNREPAIRED"
                );
                continue;
            }
            // The padding (CLIP: 0, SigLIP: its end token) is open_clip's: the whole context is equal.
            assert_eq!(tokens.ids, expected, "{name} {text:?}");
            assert_eq!(
                tokens.end,
                prompt["pool_position"].as_u64().unwrap() as usize
            );
            assert_eq!(tokens.truncated, prompt["truncated"].as_bool().unwrap());
        }
    }
}

#[test]
fn embeddings_logits_and_probabilities_match_open_clip() {
    for name in FIXTURES {
        let goldens = goldens(name);
        for &engine in engines(name) {
            let model = load(name, engine);
            let texts: Vec<String> = goldens["prompts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["text"].as_str().unwrap().to_string())
                .collect();
            let text_vectors = model.embed_texts(&texts).unwrap();
            let mut worst = [0f32; 5];
            let prompts = goldens["prompts"].as_array().unwrap();
            // The prompts compared: all but those whose cleaning is not reproduced.
            let kept: Vec<usize> = (0..prompts.len())
                .filter(|&j| !unrepaired(name, prompts[j]["text"].as_str().unwrap()))
                .collect();
            assert!(
                kept.len() + 1 >= prompts.len(),
                "{name}: one prompt left out at most"
            );
            for (prompt, vector) in kept.iter().map(|&j| (&prompts[j], &text_vectors[j])) {
                let diff = max_abs_diff(vector, &floats(&prompt["embedding_normalized"]));
                worst[0] = worst[0].max(diff);
            }
            let frames = goldens["frames"].as_array().unwrap();
            for (i, golden) in frames.iter().enumerate() {
                let image = frame(name, golden["file"].as_str().unwrap());
                let pixels = model.preprocess_frame(&image).unwrap();
                worst[1] = worst[1].max(max_abs_diff(&pixels, &floats(&golden["pixel_values"])));
                let vector = model
                    .embed_images(std::slice::from_ref(&image))
                    .unwrap()
                    .remove(0);
                worst[2] = worst[2].max(max_abs_diff(
                    &vector,
                    &floats(&golden["embedding_normalized"]),
                ));
                // The model's logits and probabilities over the prompts.
                let scale = model.logit_scale();
                let bias = model.logit_bias();
                let logits: Vec<f32> = text_vectors
                    .iter()
                    .map(|t| {
                        scale * vector.iter().zip(t).map(|(a, b)| a * b).sum::<f32>()
                            + bias.unwrap_or(0.0)
                    })
                    .collect();
                let probabilities: Vec<f32> = match bias {
                    Some(_) => logits.iter().map(|l| 1.0 / (1.0 + (-l).exp())).collect(),
                    None => {
                        let top = logits.iter().copied().fold(f32::MIN, f32::max);
                        let sum: f32 = logits.iter().map(|l| (l - top).exp()).sum();
                        logits.iter().map(|l| (l - top).exp() / sum).collect()
                    }
                };
                let only = |values: &[f32]| kept.iter().map(|&j| values[j]).collect::<Vec<f32>>();
                let (golden_logits, golden_probabilities) = (
                    floats(&goldens["logits"][i]),
                    floats(&goldens["probabilities"][i]),
                );
                worst[3] = worst[3].max(max_abs_diff(&only(&logits), &only(&golden_logits)));
                // A sigmoid is per prompt; a softmax spans them all (no prompt is left out there).
                worst[4] = worst[4].max(max_abs_diff(
                    &only(&probabilities),
                    &only(&golden_probabilities),
                ));
            }
            println!("{name} {engine:?}: text {:e}, pixels {:e}, image {:e}, logits {:e}, probabilities {:e}", worst[0], worst[1], worst[2], worst[3], worst[4]);
            let [text, pixels, image, logits, probabilities] = worst;
            assert!(
                text <= 1e-5 && image <= 1e-5,
                "{name} {engine:?}: embeddings {text:e} {image:e}"
            );
            assert!(pixels <= 1e-6, "{name} {engine:?}: pixels {pixels:e}");
            // Logits carry the scale (about 13): 1e-5 of the cosine is 1e-4 of the logit.
            assert!(
                logits <= 1e-5 * scale_of(&goldens),
                "{name} {engine:?}: logits {logits:e}"
            );
            assert!(
                probabilities <= 1e-5,
                "{name} {engine:?}: probabilities {probabilities:e}"
            );
        }
    }
}

/// The image runtimes each fixture's family has (all have both).
fn engines(_name: &str) -> &'static [ImageRuntime] {
    &ENGINES
}

fn scale_of(goldens: &serde_json::Value) -> f32 {
    goldens["logit_scale"].as_f64().unwrap() as f32
}

#[test]
fn preprocessing_matches_open_clips_transforms_in_every_mode() {
    for name in FIXTURES {
        let goldens = goldens(name);
        let cases = goldens["preprocess"].as_array().unwrap();
        assert!(cases.len() >= 24, "{name}: {} cases", cases.len());
        let mut worst = 0f32;
        for case in cases {
            let image = frame(name, case["image"].as_str().unwrap());
            let size = case["size"].as_u64().unwrap() as u32;
            let mut config = PreprocessConfig::for_image_size(size);
            config.crop_rounding = CropRounding::Torchvision;
            let triple = |v: &serde_json::Value| {
                let f = floats(v);
                [f[0], f[1], f[2]]
            };
            (config.mean, config.std) = (triple(&case["mean"]), triple(&case["std"]));
            config.filter = match case["interpolation"].as_str().unwrap() {
                "bilinear" => Filter::Bilinear,
                _ => Filter::Bicubic,
            };
            let mode = case["resize_mode"].as_str().unwrap();
            match mode {
                "squash" => config.resize_box = Some((size, size)),
                "longest" => config.keep_longest = true,
                _ => {}
            }
            let bytes = image.data_bytes().unwrap();
            let (width, height) = (image.cols() as usize, image.rows() as usize);
            let ours = preprocess(
                &RgbImage {
                    width,
                    height,
                    pixels: bytes,
                    bgr: true,
                },
                &config,
            );
            let diff = max_abs_diff(&ours, &floats(&case["pixel_values"]));
            worst = worst.max(diff);
            assert!(
                diff <= 1e-6,
                "{name} {} {width}x{height} {mode} {}: {diff:e}",
                case["image"],
                case["interpolation"]
            );
        }
        println!(
            "{name}: {} preprocessing cases, worst {worst:e}",
            cases.len()
        );
    }
}

#[test]
fn the_registry_reads_each_layout_as_its_family() {
    for (name, family) in [
        ("tiny-clip", "CLIP"),
        ("tiny-siglip", "SigLIP"),
        ("tiny-siglip2", "SigLIP"),
        ("tiny-open-clip", "open_clip CLIP"),
        ("tiny-pe-core", "PE-Core"),
        ("tiny-open-clip-siglip", "open_clip SigLIP"),
    ] {
        assert_eq!(load(name, ImageRuntime::Candle).family(), family, "{name}");
    }
}

/// What `index`, `scores` and the server load (lazily, behind the cache's identity): a folder
/// in open_clip's layout is a model there too, not only to `LocalClip`.
#[test]
fn the_app_loads_models_in_open_clips_layout() {
    for name in FIXTURES {
        let files = engine::embed::source::ModelFiles {
            folder: fixture(name),
            name: name.into(),
        };
        let model = engine::embed::LazyLocal::new(&files, ImageRuntime::Auto)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let golden = floats(&goldens(name)["prompts"][0]["embedding_normalized"]);
        assert_eq!(model.identity().dimension, golden.len(), "{name}");
        let text = model.embed_texts(&["a photo of a cat".into()]).unwrap();
        assert!(max_abs_diff(&text[0], &golden) <= 1e-5, "{name}");
    }
}
