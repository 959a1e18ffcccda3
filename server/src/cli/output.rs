//! What the commands write: JSON on stdout, files written atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use super::CommandResult;

/// Writes JSON to stdout, treating a closed pipe (`| head`) as success.
pub fn print_json(value: &serde_json::Value) -> CommandResult {
    let mut out = std::io::stdout().lock();
    match serde_json::to_writer(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|_| writeln!(out))
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// `{"PROMPT": [value per frame]}`.
pub fn by_prompt(
    prompts: &[String],
    series: &[Vec<f32>],
) -> serde_json::Map<String, serde_json::Value> {
    prompts
        .iter()
        .zip(series)
        .map(|(p, s)| (p.clone(), json!(s)))
        .collect()
}

/// Writes atomically, so a failed export never leaves half a file under the name.
pub fn write_file(path: &Path, bytes: &[u8]) -> CommandResult {
    let temporary = PathBuf::from(format!("{}.partial", path.display()));
    std::fs::write(&temporary, bytes)
        .and_then(|_| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            e
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_appear_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        write_file(&path, b"frame\n0\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"frame\n0\n");
        let nowhere = dir.path().join("missing-folder/out.csv");
        let message = format!("{:#}", write_file(&nowhere, b"x").unwrap_err());
        assert!(message.starts_with("cannot write "), "{message}");
        assert!(message.contains("missing-folder/out.csv"), "{message}");
        assert!(!dir.path().join("missing-folder").exists());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no .partial file left");
    }

    #[test]
    fn series_are_keyed_by_their_prompt() {
        let map = by_prompt(&["a".into(), "b".into()], &[vec![0.5], vec![0.25]]);
        assert_eq!(
            serde_json::Value::Object(map),
            json!({"a": [0.5], "b": [0.25]})
        );
    }
}
