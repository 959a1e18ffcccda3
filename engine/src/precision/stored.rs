//! Where a check is kept, and when a kept one counts: on the machine (CPU, its int8 and bf16
//! instruction sets, the ONNX Runtime library) and with the bar it was made on.

use std::path::{Path, PathBuf};

use store::config::Precision;

use super::check::{Bar, CheckReport};
use super::machine::machine;
use super::PrecisionError;

/// Where the check of `model` at `precision` is kept.
pub fn stored_path(
    embeddings_dir: &Path,
    model: &crate::embed::ModelIdentity,
    precision: Precision,
) -> PathBuf {
    let name: String = format!("{}-{}", model.name, model.revision)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    embeddings_dir
        .join("precision")
        .join(format!("{name}-{}.json", precision.as_str()))
}

/// The stored check, where it was made on this machine with this bar.
pub fn stored(path: &Path, bar: &Bar) -> Option<CheckReport> {
    let text = std::fs::read_to_string(path).ok()?;
    let report: CheckReport = serde_json::from_str(&text).ok()?;
    (report.machine == machine() && report.bar == *bar).then_some(report)
}

pub(super) fn save(path: &Path, report: &CheckReport) -> Result<(), PrecisionError> {
    let text = serde_json::to_vec_pretty(report).expect("a report serialises");
    store::cache::write_atomically(path, &text).map_err(|e| PrecisionError::Save {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_check_counts_only_on_its_machine_with_its_bar() {
        let dir = tempfile::tempdir().unwrap();
        let identity = crate::embed::ModelIdentity {
            name: "org/model".into(),
            revision: "abc".into(),
            dimension: 4,
        };
        let path = stored_path(dir.path(), &identity, Precision::Int8);
        assert!(
            path.ends_with("precision/org_model-abc-int8.json"),
            "{path:?}"
        );
        let mut report = CheckReport {
            model: "org/model".into(),
            revision: "abc".into(),
            precision: "int8".into(),
            machine: machine(),
            bar: Bar::default(),
            video: None,
            video_frames: 0,
            fixture_images: 8,
            prompts: 10,
            cosine_min: 0.995,
            cosine_mean: 0.999,
            worst_image: "frame 1".into(),
            prompt_top5_overlap: 1.0,
            frame_top10_overlap: 1.0,
            frame_top10_overlap_min: 1.0,
            fp32_images_per_s: 10.0,
            int8_images_per_s: 20.0,
            passed: true,
            failures: vec![],
            checked_at_unix: 0,
        };
        save(&path, &report).unwrap();
        assert_eq!(stored(&path, &Bar::default()), Some(report.clone()));
        let stricter = Bar {
            min_cosine: 0.999,
            ..Bar::default()
        };
        assert_eq!(stored(&path, &stricter), None, "another bar: check again");
        report.machine = "another CPU".into();
        save(&path, &report).unwrap();
        assert_eq!(stored(&path, &Bar::default()), None, "another machine");
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(stored(&path, &Bar::default()), None, "damaged: check again");
    }
}
