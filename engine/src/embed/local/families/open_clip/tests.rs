use super::*;
use crate::embed::preprocess::{CropRounding, Filter};

/// An open_clip hub config of the tiny ViT CLIP shape, with `model`/`preprocess` merged in.
fn config(model: &str, preprocess: &str) -> String {
    format!(
        r#"{{"model_cfg": {{"embed_dim": 16, "quick_gelu": true,
              "vision_cfg": {{"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 8}},
              "text_cfg": {{"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2}}{model}}},
            "preprocess_cfg": {{"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]{preprocess}}}}}"#
    )
}

fn read_text(text: &str) -> Result<OpenClip, ModelError> {
    let path = Path::new("open_clip_config.json");
    Config::parse(path, text)?.into_family(Path::new("."), PathBuf::from(WEIGHTS_FILE))
}

fn refusal(text: &str) -> String {
    read_text(text).err().expect("refused").to_string()
}

#[test]
fn the_vit_clip_architecture_is_read_with_open_clips_defaults() {
    let family = read_text(&config("", "")).unwrap();
    assert_eq!(family.vision.encoder.num_attention_heads, 4);
    assert_eq!(family.vision.encoder.intermediate_size, 128);
    assert_eq!(family.vision.encoder.activation, Activation::QuickGelu);
    assert_eq!(family.text.max_position_embeddings, 77);
    assert_eq!(family.text.projection_dim, 16);
    assert!(!family.sigmoid && !family.custom_text);
    let p = &family.preprocess;
    assert_eq!(
        (p.shortest_edge, p.resize_box, p.keep_longest),
        (32, None, false)
    );
    assert_eq!(
        (p.mean, p.crop_rounding),
        ([0.5; 3], CropRounding::Torchvision)
    );
    let gelu = read_text(&config("", "").replace("\"quick_gelu\": true", "\"quick_gelu\": false"))
        .unwrap();
    assert_eq!(gelu.text.encoder.activation, Activation::Gelu);
}

#[test]
fn preprocess_cfg_picks_the_resize_mode_and_filter() {
    let squash = read_text(&config(
        "",
        r#", "resize_mode": "squash", "interpolation": "bilinear""#,
    ))
    .unwrap();
    assert_eq!(squash.preprocess.resize_box, Some((32, 32)));
    assert_eq!(squash.preprocess.filter, Filter::Bilinear);
    let longest = read_text(&config(
        "",
        r#", "resize_mode": "longest", "fill_color": 7"#,
    ))
    .unwrap();
    assert!(longest.preprocess.keep_longest);
    assert_eq!(longest.preprocess.fill, 7);
    let error = refusal(&config("", r#", "resize_mode": "crop""#));
    assert!(
        error.contains("preprocess_cfg.resize_mode is \"crop\""),
        "{error}"
    );
    let error = refusal(&config("", r#", "size": 64"#));
    assert!(error.contains("preprocess_cfg.size is 64"), "{error}");
    let error = refusal(&config("", r#", "jitter": 0.1"#));
    assert!(error.contains("preprocess_cfg.jitter"), "{error}");
}

#[test]
fn options_that_change_the_model_are_refused_by_name() {
    for (option, named) in [
        (
            r#", "vision_cfg": {"timm_model_name": "vit_pe_core_base_patch16_224"}"#,
            "Perception Encoder",
        ),
        (
            r#", "vision_cfg": {"timm_model_name": "eva02_base_patch16_clip_224"}"#,
            "EVA",
        ),
        (
            r#", "vision_cfg": {"timm_model_name": "convnext_base"}"#,
            "ConvNeXt",
        ),
        (
            r#", "vision_cfg": {"timm_model_name": "fastvit_mci2"}"#,
            "FastViT/MCi",
        ),
        (
            r#", "vision_cfg": {"layers": [3, 4, 6, 3]}"#,
            "ModifiedResNet",
        ),
        (
            r#", "text_cfg": {"hf_model_name": "xlm-roberta-base"}"#,
            "hf_model_name",
        ),
        (r#", "multimodal_cfg": {"width": 32}"#, "CoCa"),
    ] {
        // Replace the section the option is in.
        let text = config("", "");
        let text = if option.contains("\"vision_cfg\"") {
            let at = text.find("\"vision_cfg\"").unwrap();
            let end = text[at..].find('}').unwrap() + at + 1;
            format!("{}{}{}", &text[..at], &option[2..], &text[end..])
        } else if option.contains("\"text_cfg\"") {
            let at = text.find("\"text_cfg\"").unwrap();
            let end = text[at..].find('}').unwrap() + at + 1;
            format!("{}{}{}", &text[..at], &option[2..], &text[end..])
        } else {
            config(option, "")
        };
        let error = refusal(&text);
        assert!(error.contains(named), "{option}: {error}");
    }
    let text = config("", "").replace(
        "\"head_width\": 8",
        "\"head_width\": 8, \"pos_embed_type\": \"sin_cos_2d\"",
    );
    let error = refusal(&text);
    assert!(
        error.contains("vision_cfg.pos_embed_type is \"sin_cos_2d\""),
        "{error}"
    );
    let text = config("", "").replace(
        "\"layers\": 2}}",
        "\"layers\": 2, \"no_causal_mask\": true}}",
    );
    let error = refusal(&text);
    assert!(error.contains("text_cfg.no_causal_mask is true"), "{error}");
    let text = config("", "").replace("\"head_width\": 8", "\"head_width\": 8, \"new_option\": 1");
    let error = refusal(&text);
    assert!(
        error.contains("vision_cfg.new_option is an option this program does not know"),
        "{error}"
    );
    // Training-only settings change nothing at inference.
    let text = config("", "").replace(
        "\"head_width\": 8",
        "\"head_width\": 8, \"patch_dropout\": 0.5",
    );
    assert!(read_text(&text).is_ok());
}

#[test]
fn a_pickle_without_safetensors_is_refused_with_the_conversion() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CONFIG_FILE), config("", "")).unwrap();
    std::fs::write(dir.path().join(PICKLE_FILE), b"not read").unwrap();
    let error = read(dir.path()).unwrap().err().unwrap().to_string();
    assert!(
        error.contains(PICKLE_FILE) && error.contains("save_file") && error.contains(WEIGHTS_FILE),
        "{error}"
    );
}
