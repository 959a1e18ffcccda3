//! Explanations (gradient-weighted attention relevance, `engine::embed::local::explain`):
//! against PyTorch + transformers on the four tiny fixtures in Hugging Face layout and against
//! open_clip + timm on PE-Core's for every start layer (scripts/make_relevance_goldens.py,
//! scripts/make_pe_relevance_goldens.py), and on models patched so that their score depends on one
//! patch alone, where the relevance must be highest on that patch whatever the weights are.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use engine::embed::local::LocalClip;
use engine::embed::{EmbedError, Embedder};
use store::config::ImageRuntime;

use crate::clip_parity::{fixture, floats, goldens};

const FIXTURES: [&str; 5] = [
    "tiny-clip",
    "tiny-clip-gelu",
    "tiny-siglip",
    "tiny-siglip2",
    "tiny-pe-core",
];

/// How far a map may be from PyTorch's, relative to its largest value. PE-Core's random tiny
/// model sends its blocks so little gradient that its maps from layer 0 and layer 1 differ by
/// only 2.3e-5 (scripts/make_pe_relevance_goldens.py): held to 1e-6, the per-layer part is
/// still tested there.
fn map_tolerance(name: &str) -> f32 {
    if name == "tiny-pe-core" {
        1e-6
    } else {
        1e-4
    }
}

fn relevance_goldens(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(name).join("relevance.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Ours against PyTorch's, per fixture: the largest difference relative to the map's largest
/// value, over every frame, prompt and start layer.
#[test]
fn relevance_matches_pytorch_for_every_start_layer() {
    for name in FIXTURES {
        let model = LocalClip::load_with(&fixture(name), name, ImageRuntime::Candle).unwrap();
        let inputs = goldens(name);
        let expected = relevance_goldens(name);
        let layers = expected["layers"].as_u64().unwrap() as usize;
        let pixels = |file: &str| {
            let frame = inputs["frames"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["file"] == file)
                .unwrap();
            floats(&frame["pixel_values"])
        };
        let text = |prompt: &str| {
            let p = inputs["prompts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["text"] == prompt)
                .unwrap();
            floats(&p["embedding_normalized"])
        };
        let cases = expected["cases"].as_array().unwrap();
        let mut start_layers = std::collections::BTreeSet::new();
        let (mut worst_map, mut worst_logit) = (0f32, 0f32);
        for case in cases {
            let start_layer = case["start_layer"].as_u64().unwrap() as usize;
            start_layers.insert(start_layer);
            let ours = model
                .explain_pixels(
                    &pixels(case["frame"].as_str().unwrap()),
                    &text(case["prompt"].as_str().unwrap()),
                    Some(start_layer),
                )
                .unwrap();
            let theirs = floats(&case["relevance"]);
            assert_eq!(
                (ours.rows, ours.cols),
                (
                    case["rows"].as_u64().unwrap() as usize,
                    case["cols"].as_u64().unwrap() as usize
                ),
                "{name}"
            );
            assert_eq!(ours.values.len(), theirs.len(), "{name}");
            assert_eq!((ours.layers, ours.start_layer), (layers, start_layer));
            let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{name}: an all-zero golden map tests nothing");
            let map_error = ours
                .values
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs() / scale)
                .fold(0f32, f32::max);
            let logit = case["logit"].as_f64().unwrap() as f32;
            let logit_error = (ours.logit - logit).abs() / logit.abs().max(1.0);
            worst_map = worst_map.max(map_error);
            worst_logit = worst_logit.max(logit_error);
            assert!(
                map_error <= map_tolerance(name) && logit_error <= 1e-4,
                "{name} {} {:?} from layer {start_layer}: map off by {map_error:e} of its \
                 largest value, logit {} vs {logit}",
                case["frame"],
                case["prompt"],
                ours.logit
            );
        }
        assert_eq!(
            start_layers,
            (0..layers).collect(),
            "{name}: every start layer has goldens"
        );
        println!(
            "{name}: {} cases, largest map difference {worst_map:.2e} of the map's largest \
             value, logit {worst_logit:.2e}",
            cases.len()
        );
    }
}

#[test]
fn a_start_layer_past_the_last_is_refused_saying_the_range() {
    let model = LocalClip::load_with(&fixture("tiny-clip"), "x", ImageRuntime::Candle).unwrap();
    let pixels = vec![0.0; 3 * 32 * 32];
    let text = vec![0.25; 16];
    match model.explain_pixels(&pixels, &text, Some(2)) {
        Err(
            error @ EmbedError::StartLayer {
                given: 2,
                layers: 2,
            },
        ) => {
            assert!(error.to_string().contains("0 to 1"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    // The default is the last layer.
    assert_eq!(
        model
            .explain_pixels(&pixels, &text, None)
            .unwrap()
            .start_layer,
        1
    );
}

/// The ONNX Runtime tower has no gradients: the explanation runs on candle with the same
/// weights, and gives what the candle-only model gives.
#[test]
fn a_model_on_onnx_runtime_explains_on_candle() {
    let candle = LocalClip::load_with(&fixture("tiny-clip"), "x", ImageRuntime::Candle).unwrap();
    let ort = LocalClip::load_with(&fixture("tiny-clip"), "x", ImageRuntime::Onnxruntime).unwrap();
    let frame = opencv::imgcodecs::imread(
        fixture("tiny-clip")
            .join("frames/frame_200.png")
            .to_str()
            .unwrap(),
        opencv::imgcodecs::IMREAD_COLOR,
    )
    .unwrap();
    let text = candle
        .embed_texts(&["a cat".to_string()])
        .unwrap()
        .remove(0);
    let a = candle.explain(&frame, &text, None).unwrap();
    let b = ort.explain(&frame, &text, None).unwrap();
    assert_eq!(a, b);
}

/// A copy of fixture `name` whose weights `patch` rewrites.
fn patched_model(
    name: &str,
    patch: impl Fn(&mut HashMap<String, Vec<f32>>),
) -> (tempfile::TempDir, LocalClip) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let weights = dir.path().join("model.safetensors");
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let shapes: HashMap<String, Vec<usize>> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    let mut values: HashMap<String, Vec<f32>> = tensors
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            )
        })
        .collect();
    patch(&mut values);
    let tensors: HashMap<String, Tensor> = values
        .into_iter()
        .map(|(k, v)| {
            let t = Tensor::from_vec(v, shapes[&k].as_slice(), &Device::Cpu).unwrap();
            (k, t)
        })
        .collect();
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let model = LocalClip::load_with(dir.path(), name, ImageRuntime::Candle).unwrap();
    (dir, model)
}

const HIDDEN: usize = 32;
const HEADS: usize = 4;
const HEAD_DIM: usize = HIDDEN / HEADS;
/// The hidden dimension that carries where a token is (the patches' content never reaches it).
const WHERE: usize = HIDDEN - 1;

/// Rewrites `vision_model.{key}` of the weights.
fn edit(values: &mut HashMap<String, Vec<f32>>, key: &str, f: impl FnOnce(&mut [f32])) {
    let key = format!("vision_model.{key}");
    f(values.get_mut(&key).unwrap_or_else(|| panic!("no {key}")))
}

/// Every head's query fixed: `bias` alone (the weights read nothing).
fn fixed_query(bias: &mut [f32]) {
    bias.fill(0.0);
    for head in 0..HEADS {
        bias[head * HEAD_DIM] = 10.0;
    }
}

/// Every head's key reads dimension `WHERE` alone.
fn keys_read_where(weight: &mut [f32]) {
    weight.fill(0.0);
    for head in 0..HEADS {
        weight[head * HEAD_DIM * HIDDEN + WHERE] = 1.0;
    }
}

/// Patches a tiny tower so that only patch `chosen` reaches the image embedding: the patches'
/// content stays out of dimension `WHERE`, where the position embedding marks `chosen` with +4
/// and every other token with -4; every layer but the last (CLIP) or every layer (SigLIP) adds
/// nothing to the residual stream; and the attention that pools (CLIP's last layer, SigLIP's
/// head) has every head's query fixed and its keys reading `WHERE` alone, so it attends to
/// `chosen` with a weight of 1 - e^-30 or so. The rest are the fixture's random weights.
fn one_patch_matters(
    values: &mut HashMap<String, Vec<f32>>,
    siglip: bool,
    chosen: usize,
    layers: usize,
) {
    edit(values, "embeddings.patch_embedding.weight", |t| {
        let per_output = t.len() / HIDDEN;
        t[WHERE * per_output..].fill(0.0)
    });
    // A norm keeps WHERE's sign where its weight is 1 and its bias 0.
    let keeps_where = |values: &mut HashMap<String, Vec<f32>>, norm: &str| {
        edit(values, &format!("{norm}.weight"), |t| t[WHERE] = 1.0);
        edit(values, &format!("{norm}.bias"), |t| t[WHERE] = 0.0);
    };
    if siglip {
        edit(values, "embeddings.patch_embedding.bias", |t| {
            t[WHERE] = 0.0
        });
    } else {
        edit(values, "embeddings.class_embedding", |t| t[WHERE] = 0.0);
        keeps_where(values, "pre_layrnorm");
    }
    // CLIP's token 0 is its class token.
    let first_patch = usize::from(!siglip);
    edit(values, "embeddings.position_embedding.weight", |t| {
        for (token, row) in t.chunks_exact_mut(HIDDEN).enumerate() {
            row[WHERE] = if token == first_patch + chosen {
                4.0
            } else {
                -4.0
            };
        }
    });
    let silent = if siglip { layers } else { layers - 1 };
    for layer in 0..silent {
        for key in ["self_attn.out_proj", "mlp.fc2"] {
            for part in ["weight", "bias"] {
                edit(
                    values,
                    &format!("encoder.layers.{layer}.{key}.{part}"),
                    |t| t.fill(0.0),
                );
            }
        }
    }
    if siglip {
        keeps_where(values, "post_layernorm");
        // in_proj packs q, k and v.
        edit(values, "head.attention.in_proj_weight", |w| {
            w[..HIDDEN * HIDDEN].fill(0.0);
            keys_read_where(&mut w[HIDDEN * HIDDEN..2 * HIDDEN * HIDDEN]);
        });
        edit(values, "head.attention.in_proj_bias", |b| {
            fixed_query(&mut b[..HIDDEN]);
            b[HIDDEN..2 * HIDDEN].fill(0.0);
        });
    } else {
        let last = format!("encoder.layers.{}", layers - 1);
        keeps_where(values, &format!("{last}.layer_norm1"));
        edit(values, &format!("{last}.self_attn.q_proj.weight"), |t| {
            t.fill(0.0)
        });
        edit(
            values,
            &format!("{last}.self_attn.q_proj.bias"),
            fixed_query,
        );
        edit(
            values,
            &format!("{last}.self_attn.k_proj.weight"),
            keys_read_where,
        );
        edit(values, &format!("{last}.self_attn.k_proj.bias"), |t| {
            t.fill(0.0)
        });
    }
}

/// Deterministic pixels in [-1.5, 1.5].
fn noise(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 3.0 - 1.5
        })
        .collect()
}

/// `pixels` with patch `patch` (of the 4 x 4 grid of 8-pixel patches) changed.
fn with_patch_changed(pixels: &[f32], patch: usize) -> Vec<f32> {
    let mut out = pixels.to_vec();
    let (row, col) = (patch / 4, patch % 4);
    for c in 0..3 {
        for y in row * 8..row * 8 + 8 {
            for x in col * 8..col * 8 + 8 {
                let at = c * 32 * 32 + y * 32 + x;
                out[at] = -out[at] + 0.5;
            }
        }
    }
    out
}

#[test]
fn relevance_is_highest_on_the_one_patch_the_score_depends_on() {
    for (name, siglip) in [("tiny-clip", false), ("tiny-siglip", true)] {
        for chosen in [0, 6, 13] {
            let (_dir, model) = patched_model(name, |v| one_patch_matters(v, siglip, chosen, 2));
            let pixels = noise(chosen as u64 + 7, 3 * 32 * 32);
            let text = model
                .embed_texts(&["a photo of a dog".to_string()])
                .unwrap()
                .remove(0);
            let logit = |pixels: &[f32]| model.explain_pixels(pixels, &text, None).unwrap().logit;
            let base = logit(&pixels);
            // The construction holds: the chosen patch moves the score, no other patch does.
            let moved: Vec<f32> = (0..16)
                .map(|p| (logit(&with_patch_changed(&pixels, p)) - base).abs())
                .collect();
            let others = moved
                .iter()
                .enumerate()
                .filter(|&(p, _)| p != chosen)
                .fold(0f32, |m, (_, &d)| m.max(d));
            assert!(
                moved[chosen] > 1e-3 && others < 1e-5,
                "{name} patch {chosen}: the score moves by {moved:?}"
            );
            for start_layer in 0..2 {
                let relevance = model
                    .explain_pixels(&pixels, &text, Some(start_layer))
                    .unwrap();
                let (best, &top) = relevance
                    .values
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .unwrap();
                let runner_up = relevance
                    .values
                    .iter()
                    .enumerate()
                    .filter(|&(p, _)| p != best)
                    .fold(0f32, |m, (_, &v)| m.max(v));
                assert_eq!(
                    best, chosen,
                    "{name} from layer {start_layer}: {:?}",
                    relevance.values
                );
                assert!(top > 100.0 * runner_up, "{name}: {:?}", relevance.values);
            }
        }
    }
}

/// `explain` as a user runs it on a 16:9 video: the PNG is the exact frame with the map over
/// the part the model sees and the rest dimmed; the JSON's score is that frame's own.
#[test]
fn explain_paints_the_exact_frame_and_its_json_gives_the_grid_and_the_crop() {
    let ws = crate::embedding::Workspace::new();
    let path = crate::common::video("h264_gop250.mp4");
    let v = path.to_str().unwrap();
    let png = ws.dir().join("heat.png");
    let args = [
        "explain",
        v,
        "--frame",
        "151",
        "--prompt",
        "a brick wall",
        "--opacity",
        "0.6",
    ];
    let json = ws.run_json(&[&args[..], &["--json", "-o", png.to_str().unwrap()]].concat());
    // The tiny model: 32x32 input, 8-pixel patches; a 1280x720 frame is resized to 56x32 and
    // its middle 32 columns kept: frame x 12 * 1280/56 to 44 * 1280/56.
    assert_eq!(
        (json["grid"]["rows"].as_u64(), json["grid"]["cols"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(json["values"].as_array().unwrap().len(), 16);
    let crop = &json["crop"];
    let scale = 1280.0 / 56.0;
    for (key, expected) in [
        ("left", 12.0 * scale),
        ("top", 0.0),
        ("width", 32.0 * scale),
        ("height", 720.0),
    ] {
        assert!(
            (crop[key].as_f64().unwrap() - expected).abs() < 1e-9,
            "{key}: {crop}"
        );
    }
    assert!(
        json["note"].as_str().unwrap().contains("left and right"),
        "{json}"
    );
    assert_eq!(
        (json["layers"].as_u64(), json["start_layer"].as_u64()),
        (Some(2), Some(1))
    );

    // The frame itself, decoded here: its cosine is the JSON's, and frame 150's is not.
    let model =
        LocalClip::load_with(&fixture("tiny-clip"), "tiny-clip", ImageRuntime::Candle).unwrap();
    let text = model
        .embed_texts(&["a brick wall".to_string()])
        .unwrap()
        .remove(0);
    let mut decoder = engine::video::Decoder::open(&path).unwrap();
    let cosine_of = |image: &opencv::core::Mat| -> f64 {
        let e = model
            .embed_images(std::slice::from_ref(image))
            .unwrap()
            .remove(0);
        e.iter().zip(&text).map(|(a, b)| f64::from(a * b)).sum()
    };
    let before = decoder.frame(150).unwrap();
    let frame = decoder.frame(151).unwrap();
    let cosine = json["score"]["cosine"].as_f64().unwrap();
    assert!(
        (cosine - cosine_of(&frame)).abs() < 1e-5,
        "{cosine} vs {}",
        cosine_of(&frame)
    );
    assert!(
        (cosine - cosine_of(&before)).abs() > 1e-4,
        "frames 150 and 151 score alike"
    );

    // The PNG, pixel by pixel against that frame.
    let painted =
        opencv::imgcodecs::imread(png.to_str().unwrap(), opencv::imgcodecs::IMREAD_COLOR).unwrap();
    use opencv::prelude::*;
    assert_eq!((painted.cols(), painted.rows()), (1280, 720));
    let at = |m: &opencv::core::Mat, x: i32, y: i32| *m.at_2d::<opencv::core::Vec3b>(y, x).unwrap();
    let (left, right) = (12.0 * scale, 44.0 * scale);
    for y in [5, 360, 715] {
        for x in [0, (left as i32) - 2, (right as i32) + 2, 1279] {
            let (p, f) = (at(&painted, x, y), at(&frame, x, y));
            for c in 0..3 {
                assert_eq!(
                    p[c],
                    (f32::from(f[c]) * 0.35).round() as u8,
                    "({x}, {y}) outside the crop is dimmed"
                );
            }
        }
        assert_eq!(
            at(&painted, left as i32 + 1, y).0,
            [255; 3],
            "the crop's outline at y {y}"
        );
    }
    // Inside: 60% map, 40% frame; the map's colour is recovered from the mix.
    let inside = (640, 360);
    let (p, f) = (
        at(&painted, inside.0, inside.1),
        at(&frame, inside.0, inside.1),
    );
    let colour: Vec<f32> = (0..3)
        .map(|c| (f32::from(p[c]) - 0.4 * f32::from(f[c])) / 0.6)
        .collect();
    assert!(
        colour.iter().all(|&c| (-2.0..=257.0).contains(&c)),
        "{colour:?}"
    );
    assert!(
        colour.iter().any(|&c| c > 100.0),
        "the map is drawn: {colour:?}"
    );

    // Without --json: a line saying where the map peaks, and the note.
    let out = ws.run(&[&args[..], &["-o", png.to_str().unwrap()]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("most relevant patch")
            && text.contains("note: the model sees only"),
        "{text}"
    );
}

#[test]
fn explain_refuses_bad_input_saying_what_to_do() {
    let ws = crate::embedding::Workspace::new();
    let path = crate::common::video("h264_gop250.mp4");
    let v = path.to_str().unwrap();
    let png = ws.dir().join("heat.png");
    let o = png.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--frame", "300", "--prompt", "x", "-o", o],
            "frame 300 is out of range: the video has 300 frames (0 to 299)",
        ),
        (
            vec!["--frame", "3", "--prompt", "  ", "-o", o],
            "the prompt is empty",
        ),
        (
            vec![
                "--frame",
                "3",
                "--prompt",
                "x",
                "--start-layer",
                "2",
                "-o",
                o,
            ],
            "the model's vision tower has 2 layers (0 to 1)",
        ),
        (
            vec!["--frame", "3", "--prompt", "x", "--opacity", "2", "-o", o],
            "--opacity must be between 0 and 1",
        ),
        (vec!["--frame", "3", "--prompt", "x"], "--output"),
    ] {
        let out = ws.run(&[&["explain", v][..], &args[..]].concat());
        let message = crate::embedding::stderr(&out);
        assert!(
            !out.status.success() && message.contains(says),
            "{args:?}: {message}"
        );
        assert!(!png.exists(), "{args:?} wrote a file");
    }
    // The Roboflow backend has no gradients: it says so, and what to use instead.
    let out = ws
        .command(&[
            "explain",
            v,
            "--frame",
            "3",
            "--prompt",
            "x",
            "-o",
            o,
            "--backend",
            "roboflow",
        ])
        .env("ROBOFLOW_API_KEY", "test-key")
        .env("CLIP_INVESTIGATOR_ROBOFLOW_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let message = crate::embedding::stderr(&out);
    assert!(
        !out.status.success() && message.contains("Roboflow") && message.contains("backend: local"),
        "{message}"
    );
}

/// The arguments of the `explain` server function (JSON in).
fn explain_body(
    video: &str,
    frame: u64,
    prompt: &str,
    start_layer: Option<u32>,
    model: Option<&str>,
) -> Vec<u8> {
    serde_json::json!({"video": video, "model": model, "frame": frame, "prompt": prompt, "start_layer": start_layer})
        .to_string()
        .into_bytes()
}

#[test]
fn the_explain_endpoint_answers_maps_and_refuses_bad_requests_with_400() {
    let path = crate::common::video("h264_gop250.mp4");
    let served = crate::common::Served::start(
        &format!(
            "video_path: {path:?}\nmodel: {:?}\nembeddings_dir: \"{{dir}}/emb\"\nCLIP: [wall]\n",
            fixture("tiny-clip")
        ),
        &[("HF_HUB_OFFLINE", "1")],
    );
    let video = crate::common::id_of(&path);
    let post = |body: Vec<u8>| served.post("/api/explain", "application/json", &body);
    // The model loads in the background: "not now" (503) until it has.
    let started = std::time::Instant::now();
    let answer = loop {
        let answer = post(explain_body(&video, 151, "wall", None, None));
        if answer.status != 503 {
            break answer;
        }
        assert!(started.elapsed().as_secs() < 60, "{}", answer.text());
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(answer.status, 200, "{}", answer.text());
    let map: investigator_core::explain::Explanation = postcard::from_bytes(&answer.body).unwrap();
    assert_eq!(
        (map.frame, map.rows, map.cols, map.values.len()),
        (151, 4, 4, 16)
    );
    assert_eq!((map.frame_width, map.frame_height), (1280, 720));
    assert!(
        (map.crop.left - 12.0 * 1280.0 / 56.0).abs() < 1e-9,
        "{:?}",
        map.crop
    );
    assert_eq!(map.model, "tiny-clip");
    // Asked again: the same map (from the cache).
    let again = post(explain_body(&video, 151, "wall", None, None));
    assert_eq!(
        postcard::from_bytes::<investigator_core::explain::Explanation>(&again.body).unwrap(),
        map
    );
    let from_0 = post(explain_body(&video, 151, "wall", Some(0), None));
    let from_0: investigator_core::explain::Explanation =
        postcard::from_bytes(&from_0.body).unwrap();
    assert_eq!(from_0.start_layer, 0);
    assert_ne!(from_0.values, map.values);

    for (body, says) in [
        (
            explain_body(&video, 151, " ", None, None),
            "prompt 1 is empty",
        ),
        (
            explain_body(&video, 300, "wall", None, None),
            "out of range",
        ),
        (explain_body(&video, 3, "wall", Some(7), None), "0 to 1"),
        (
            explain_body(&video, 3, "wall", None, Some("no-such-model")),
            "no model",
        ),
        (
            explain_body("../etc", 3, "wall", None, None),
            "not a video id",
        ),
        (b"{\"video\": 3}".to_vec(), ""),
    ] {
        let answer = post(body.clone());
        assert_eq!(
            answer.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(&body),
            answer.text()
        );
        assert!(answer.text().contains(says), "{}", answer.text());
    }
    // Still serving.
    let frame = served.form(
        "/api/frame",
        &format!("video={video}&viewer=viewer-after&frame=5"),
    );
    assert_eq!(frame.status, 200);
}
