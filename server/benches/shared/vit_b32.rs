//! The random-weight model folders the benches share (speed does not depend on the weights'
//! values), written once into cargo's bench tmp dir: ViT-B/32 (and B/16), SigLIP B/16.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::clip::ClipModel;

/// openai/clip-vit-base-patch32's architecture, as its config.json states it.
const VIT_B32_CONFIG: &str = r#"{
  "architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": 512,
  "logit_scale_init_value": 2.6592,
  "text_config": {"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8,
    "num_hidden_layers": 12, "vocab_size": 49408, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "projection_dim": 512,
    "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 1},
  "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
    "num_hidden_layers": 12, "image_size": 224, "patch_size": 32, "num_channels": 3,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05, "projection_dim": 512}
}"#;

/// The model a bench runs: `CLIP_BENCH_MODEL` (a relative path is taken from the workspace
/// root, where the command is typed; cargo runs benches in `server/`), else the random ViT-B/32.
#[allow(dead_code)] // not every bench that includes this file takes another model
pub fn bench_model() -> PathBuf {
    match std::env::var_os("CLIP_BENCH_MODEL").map(PathBuf::from) {
        Some(path) if path.is_relative() => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(path),
        Some(path) => path,
        None => model_folder(),
    }
}

/// Writes the random-weight ViT-B/32 folder once (kept between runs).
pub fn model_folder() -> PathBuf {
    vit_base_folder(32, "vit-b32-random-v2")
}

/// openai/clip-vit-base-patch32's architecture with `patch`-pixel patches (16:
/// openai/clip-vit-base-patch16's), random weights, written once into `name` under cargo's
/// bench tmp dir.
pub fn vit_base_folder(patch: usize, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    if dir.join("model.safetensors").is_file() {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let config = VIT_B32_CONFIG.replace("\"patch_size\": 32", &format!("\"patch_size\": {patch}"));
    assert!(config.contains(&format!("\"patch_size\": {patch}")));
    std::fs::write(dir.join("config.json"), config).unwrap();
    // The tiny fixture's tokenizer is the real CLIP BPE (49408 tokens), as ViT-B/32 uses.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    std::fs::copy(fixture.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    // candle makes up a class embedding when the variable store lacks one; create it first so
    // that it is saved and PyTorch reads the same value.
    vb.pp("vision_model.embeddings")
        .get_with_hints(
            768,
            "class_embedding",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )
        .unwrap();
    let mut clip = candle_transformers::models::clip::ClipConfig::vit_base_patch32();
    clip.vision_config.patch_size = patch;
    ClipModel::new(vb, &clip).unwrap();
    save_varmap(&varmap, &dir);
    dir
}

/// Saves `varmap` as `dir/model.safetensors`, atomically (a killed bench leaves no half file).
pub fn save_varmap(varmap: &VarMap, dir: &Path) {
    let partial = dir.join("model.safetensors.partial");
    varmap.save(&partial).unwrap();
    std::fs::rename(partial, dir.join("model.safetensors")).unwrap();
}

/// google/siglip-base-patch16-224's architecture (its config.json), with the tiny SigLIP
/// fixture's tokenizer (a text pass costs the same whatever the vocabulary).
const SIGLIP_B16_CONFIG: &str = r#"{
  "architectures": ["SiglipModel"], "model_type": "siglip",
  "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
    "num_hidden_layers": 12, "vocab_size": 32000, "max_position_embeddings": 64,
    "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-06, "model_type": "siglip_text_model"},
  "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
    "num_hidden_layers": 12, "image_size": 224, "patch_size": 16, "num_channels": 3,
    "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-06, "model_type": "siglip_vision_model"}
}"#;

#[allow(dead_code)] // not every bench that includes this file runs SigLIP
pub fn siglip_b16_folder() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("siglip-b16-224-random-v1");
    if dir.join("model.safetensors").is_file() {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), SIGLIP_B16_CONFIG).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-siglip");
    for file in [
        "tokenizer.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
    ] {
        std::fs::copy(fixture.join(file), dir.join(file)).unwrap();
    }
    // The fixture's processor says 32x32; the real one 224x224.
    let processor = std::fs::read_to_string(dir.join("preprocessor_config.json"))
        .unwrap()
        .replace("\"height\": 32", "\"height\": 224")
        .replace("\"width\": 32", "\"width\": 224");
    std::fs::write(dir.join("preprocessor_config.json"), processor).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    candle_transformers::models::siglip::Model::new(
        &candle_transformers::models::siglip::Config::base_patch16_224(),
        vb,
    )
    .unwrap();
    save_varmap(&varmap, &dir);
    dir
}
