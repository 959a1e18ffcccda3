//! The bicubic resize behind CLIP preprocessing equals Pillow's, byte for byte
//! (fixture: scripts/make_pil_resize_goldens.py).

use base64::Engine as _;
use engine::embed::preprocess::{resize_bicubic, resize_window, RgbImage};

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
        bgr: false,
    };
    // The same picture in OpenCV's byte order, read without a conversion pass.
    let swapped: Vec<u8> = input
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let bgr = RgbImage {
        pixels: &swapped,
        bgr: true,
        ..image
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
        assert_eq!(resize_bicubic(&bgr, w, h), expected, "{w}x{h} from BGR");
        // A window (what the centre crop keeps) equals the same pixels of the full resize.
        let (xs, ys) = (w / 4..w - w / 3, h / 3..h);
        let window = resize_window(&bgr, w, h, xs.clone(), ys.clone());
        let cut: Vec<u8> = ys
            .flat_map(|y| expected[(y * w + xs.start) * 3..(y * w + xs.end) * 3].to_vec())
            .collect();
        assert_eq!(window, cut, "{w}x{h} window");
    }
}
