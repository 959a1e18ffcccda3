//! The bicubic resize behind CLIP preprocessing equals Pillow's, byte for byte
//! (fixture: scripts/make_pil_resize_goldens.py).

use base64::Engine as _;
use server::embed::preprocess::{resize_bicubic, RgbImage};

fn decode(value: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
}

#[test]
fn bicubic_resize_matches_pillow_exactly() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pil_resize.json"
    ))
    .unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let input = decode(&fixture["input"]["rgb"]);
    let image = RgbImage {
        width: fixture["input"]["width"].as_u64().unwrap() as usize,
        height: fixture["input"]["height"].as_u64().unwrap() as usize,
        pixels: &input,
    };
    let cases = fixture["resized"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let (w, h) = (
            case["width"].as_u64().unwrap() as usize,
            case["height"].as_u64().unwrap() as usize,
        );
        let expected = decode(&case["rgb"]);
        let ours = resize_bicubic(&image, w, h);
        let differing = ours.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(ours.len(), expected.len());
        assert_eq!(
            differing,
            0,
            "{w}x{h}: {differing} of {} bytes differ from Pillow",
            expected.len()
        );
    }
}
