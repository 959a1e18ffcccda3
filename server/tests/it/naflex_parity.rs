//! SigLIP 2 NaFlex (`model_type: siglip2`) against PyTorch + transformers on a tiny random model
//! (fixture and goldens: scripts/make_tiny_naflex.py): the size search, the resized pixels in
//! the processor's patch layout, embeddings at several patch budgets (the position grid resized
//! up and down, slivers one patch wide), tokens, logits and sigmoid probabilities, and heatmaps
//! over the real patch grid.

use engine::embed::local::LocalClip;
use engine::embed::preprocess::{resize_and_crop, Filter, PatchBudget, PreprocessConfig, RgbImage};
use engine::embed::Embedder;
use opencv::prelude::*;
use store::config::ImageRuntime;

use crate::clip_parity::{fixture, floats, goldens, max_abs_diff, ENGINES};

const NAME: &str = "tiny-siglip2-naflex";

fn image(file: &str) -> opencv::core::Mat {
    let path = fixture(NAME).join(file);
    let image =
        opencv::imgcodecs::imread(path.to_str().unwrap(), opencv::imgcodecs::IMREAD_COLOR).unwrap();
    assert!(!image.empty(), "{path:?}");
    image
}

/// The model with its image tower on `engine` (ONNX Runtime: one session per patch grid).
fn model(engine: ImageRuntime) -> LocalClip {
    let model = crate::clip_parity::load(NAME, engine);
    assert_eq!(model.family(), "SigLIP 2 NaFlex");
    model
}

fn u64s(value: &serde_json::Value) -> Vec<u64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[test]
fn the_size_search_matches_siglip2_image_processor() {
    let goldens = goldens(NAME);
    let cases = goldens["resize_sizes"].as_array().unwrap();
    assert!(cases.len() >= 100);
    for case in cases {
        let n = |key: &str| case[key].as_u64().unwrap() as usize;
        let budget = PatchBudget {
            patch: n("patch_size") as u32,
            max_patches: n("max_num_patches") as u32,
        };
        assert_eq!(
            budget.size_for(n("width"), n("height")),
            (n("resized_height"), n("resized_width")),
            "{case}"
        );
    }
}

#[test]
fn pixels_and_embeddings_match_at_every_patch_budget() {
    for engine in ENGINES {
        pixels_and_embeddings_match_on(engine);
    }
}

fn pixels_and_embeddings_match_on(engine: ImageRuntime) {
    let goldens = goldens(NAME);
    let model = model(engine);
    let mut worst = 0f32;
    for case in goldens["preprocess"].as_array().unwrap() {
        let frame = image(case["file"].as_str().unwrap());
        let patch = case["patch_size"].as_u64().unwrap() as usize;
        let mut config = PreprocessConfig::for_image_size(patch as u32);
        config.patch_budget = Some(PatchBudget {
            patch: patch as u32,
            max_patches: case["max_num_patches"].as_u64().unwrap() as u32,
        });
        config.filter = Filter::Bilinear;
        (config.mean, config.std) = ([0.5; 3], [0.5; 3]);
        let rgb = resize_and_crop(
            &RgbImage {
                width: frame.cols() as usize,
                height: frame.rows() as usize,
                pixels: frame.data_bytes().unwrap(),
                bgr: true,
            },
            &config,
        );
        let shape = u64s(&case["spatial_shapes"]);
        let (rows, cols) = (shape[0] as usize, shape[1] as usize);
        let (height, width) = (rows * patch, cols * patch);
        assert_eq!(rgb.len(), height * width * 3, "{case}");
        // The processor's layout: patches row-major over the grid, (row, column, channel) in each.
        let mut patches = Vec::with_capacity(rgb.len());
        for gy in 0..rows {
            for gx in 0..cols {
                for py in 0..patch {
                    let at = ((gy * patch + py) * width + gx * patch) * 3;
                    patches.extend_from_slice(&rgb[at..at + patch * 3]);
                }
            }
        }
        let expected: Vec<u8> = u64s(&case["pixel_values_u8"])
            .iter()
            .map(|&v| v as u8)
            .collect();
        assert_eq!(
            patches, expected,
            "{} at {}",
            case["file"], case["max_num_patches"]
        );
        let pixels = engine::embed::preprocess::normalize(&rgb, &config);
        let vector = model
            .embed_pixels_sized(&[pixels], (height, width))
            .unwrap()
            .remove(0);
        let diff = max_abs_diff(&vector, &floats(&case["embedding_normalized"]));
        worst = worst.max(diff);
        assert!(
            diff <= 1e-5,
            "{} at {}: {diff:e}",
            case["file"],
            case["max_num_patches"]
        );
    }
    println!("{NAME} {engine:?}: image embeddings at every budget, worst {worst:e}");
}

#[test]
fn frames_prompts_logits_and_probabilities_match() {
    for engine in ENGINES {
        frames_prompts_logits_and_probabilities_match_on(engine);
    }
}

fn frames_prompts_logits_and_probabilities_match_on(engine: ImageRuntime) {
    let goldens = goldens(NAME);
    let model = model(engine);
    let prompts = goldens["prompts"].as_array().unwrap();
    let texts: Vec<String> = prompts
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_string())
        .collect();
    for prompt in prompts {
        let tokens = model.tokenize(prompt["text"].as_str().unwrap()).unwrap();
        let expected: Vec<u32> = u64s(&prompt["input_ids"])
            .iter()
            .map(|&v| v as u32)
            .collect();
        assert_eq!(tokens.ids, expected, "{}", prompt["text"]);
    }
    let text_vectors = model.embed_texts(&texts).unwrap();
    let mut worst = [0f32; 4];
    for (prompt, vector) in prompts.iter().zip(&text_vectors) {
        worst[0] = worst[0].max(max_abs_diff(
            vector,
            &floats(&prompt["embedding_normalized"]),
        ));
    }
    // Through the app's path: the frames prepared (each at its own grid) and embedded together.
    let frames: Vec<_> = goldens["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| image(f["file"].as_str().unwrap()))
        .collect();
    let image_vectors = model.embed_images(&frames).unwrap();
    let (scale, bias) = (model.logit_scale(), model.logit_bias().unwrap());
    for (i, (golden, vector)) in goldens["frames"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&image_vectors)
        .enumerate()
    {
        worst[1] = worst[1].max(max_abs_diff(
            vector,
            &floats(&golden["embedding_normalized"]),
        ));
        let logits: Vec<f32> = text_vectors
            .iter()
            .map(|t| scale * vector.iter().zip(t).map(|(a, b)| a * b).sum::<f32>() + bias)
            .collect();
        let probabilities: Vec<f32> = logits.iter().map(|l| 1.0 / (1.0 + (-l).exp())).collect();
        worst[2] = worst[2].max(max_abs_diff(&logits, &floats(&goldens["logits"][i])));
        worst[3] = worst[3].max(max_abs_diff(
            &probabilities,
            &floats(&goldens["probabilities"][i]),
        ));
    }
    println!(
        "{NAME} {engine:?}: text {:e}, image {:e}, logits {:e}, probabilities {:e}",
        worst[0], worst[1], worst[2], worst[3]
    );
    let [text, image, logits, probabilities] = worst;
    assert!(
        text <= 1e-5 && image <= 1e-5,
        "embeddings {text:e} {image:e}"
    );
    // Logits carry the scale (20 here): 1e-5 of the cosine is 2e-4 of the logit.
    assert!(
        logits <= 1e-5 * scale && probabilities <= 1e-5,
        "logits {logits:e}, probabilities {probabilities:e}"
    );
}

#[test]
fn heatmaps_are_drawn_over_the_real_patch_grid() {
    let model = model(ImageRuntime::Onnxruntime);
    let text = model
        .embed_texts(&["a photo of a cat".into()])
        .unwrap()
        .remove(0);
    // 320x180 at 64 patches: 6 rows of 10 (transformers' spatial_shapes), not a square.
    for (file, grid) in [
        ("frames/frame_030.png", (6, 10)),
        ("images/portrait_180x320.png", (10, 6)),
    ] {
        let relevance = model.explain(&image(file), &text, None).unwrap();
        assert_eq!((relevance.rows, relevance.cols), grid, "{file}");
        assert_eq!(relevance.values.len(), grid.0 * grid.1);
        assert!(relevance.values.iter().all(|v| v.is_finite()));
        // A squashed frame has no unseen area: the map covers all of it.
        let (w, h) = (image(file).cols() as f64, image(file).rows() as f64);
        assert_eq!(relevance.crop, (0.0, 0.0, w, h), "{file}");
    }
}

#[test]
fn the_patch_budget_is_a_setting_and_part_of_the_identity() {
    let goldens = goldens(NAME);
    let folder = fixture(NAME);
    let options = |max_patches| engine::embed::local::LoadOptions {
        runtime: ImageRuntime::Candle,
        max_patches,
    };
    let checkpoint = LocalClip::load_with(&folder, NAME, options(None)).unwrap();
    let same = LocalClip::load_with(&folder, NAME, options(Some(64))).unwrap();
    // The checkpoint's own budget (64) is no override: one identity, one index.
    assert_eq!(checkpoint.identity(), same.identity());
    let small = LocalClip::load_with(&folder, NAME, options(Some(16))).unwrap();
    let revision = small.identity().revision;
    assert_eq!(revision, format!("{}-p16", checkpoint.identity().revision));
    // What the app loads lazily (identity first, without the weights) is the same model.
    let files = engine::embed::source::ModelFiles {
        folder: folder.clone(),
        name: NAME.into(),
    };
    let lazy = engine::embed::LazyLocal::new(&files, options(Some(16))).unwrap();
    assert_eq!(lazy.identity(), small.identity());
    // At 16 patches the 16:9 frame is a 3x5 grid, as transformers cuts it.
    let case = goldens["preprocess"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == "frames/frame_030.png" && c["max_num_patches"] == 16)
        .unwrap();
    let frame = image("frames/frame_030.png");
    assert_eq!(small.input_size_for(&frame), (24, 40));
    for model in [&small as &dyn Embedder, &lazy] {
        let vector = model
            .embed_images(std::slice::from_ref(&frame))
            .unwrap()
            .remove(0);
        assert!(max_abs_diff(&vector, &floats(&case["embedding_normalized"])) <= 1e-5);
    }
    for bad in [0, 1_000_000] {
        let error = LocalClip::load_with(&folder, NAME, options(Some(bad)))
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains(&format!("max_num_patches is {bad}")),
            "{error}"
        );
    }
}
