//! The release binary's `index --json` as the benches run it end to end.

use std::path::Path;
use std::process::Command;

/// `clip-investigator index VIDEO --model MODEL --json` with `extra` arguments, a config of
/// defaults and the cache in `embeddings`; its JSON report. Panics (the bench stops) with the
/// command's stderr if it fails.
pub fn index_json(
    video: &Path,
    model: &Path,
    embeddings: &Path,
    extra: &[&str],
) -> serde_json::Value {
    let config = embeddings.join("config.yaml");
    std::fs::create_dir_all(embeddings).unwrap();
    std::fs::write(&config, "# defaults; the model comes from --model\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_clip-investigator"))
        .arg("index")
        .arg(video)
        .arg("--model")
        .arg(model)
        .arg("--json")
        .args(extra)
        .arg("--config")
        .arg(&config)
        .env("CLIP_INVESTIGATOR_EMBEDDINGS", embeddings)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
