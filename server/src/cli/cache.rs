//! `cache list | clear`: the embedding cache files of the config's `embeddings_dir`, and the
//! display proxies kept beside them.

use std::path::PathBuf;

use anyhow::Context;
use store::cache::EmbeddingFile;

use super::args::{CacheAction, CacheArgs};
use super::settings::{resolve, ConfigArg};
use super::CommandResult;

pub fn run(args: &CacheArgs) -> CommandResult {
    let settings = resolve(&ConfigArg(&args.config))?;
    let dir = &settings.embeddings_dir;
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.contains(".clipemb") || is_proxy_file(name)
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    files.sort();
    match args.action {
        CacheAction::List => {
            if files.is_empty() {
                println!("{}: no cache files", dir.display());
            }
            for path in &files {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                if path.is_dir() {
                    let (count, size) = folder_size(path);
                    println!(
                        "{name}  {:.1} MB  display proxy: {count} segments (frames for the page)",
                        size as f64 / 1e6
                    );
                    continue;
                }
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let what = match EmbeddingFile::peek(path) {
                    _ if is_proxy_file(&name) => "display proxy (frames for the page)".into(),
                    Ok(file) => format!(
                        "{} frames of a {}-frame video, {} ({}-d){}{}",
                        file.frames.len(),
                        file.header.video_frames,
                        file.header.model.name,
                        file.header.model.dimension,
                        file.header
                            .sample_fps_millis
                            .map(|m| format!(", {} fps sampled", m as f64 / 1000.0))
                            .unwrap_or_default(),
                        file.skip
                            .as_ref()
                            .map(|s| format!(
                                ", {} reused the frame before's vector (skip below {} grey levels)",
                                s.reused.len(),
                                s.threshold_milli_levels as f64 / 1000.0
                            ))
                            .unwrap_or_default()
                    ),
                    Err(_) if name.starts_with("texts-") => "text embeddings".into(),
                    Err(reason) => format!("unreadable: {reason}"),
                };
                println!("{name}  {:.1} MB  {what}", size as f64 / 1e6);
            }
            Ok(())
        }
        CacheAction::Clear => {
            for path in &files {
                if path.is_dir() {
                    std::fs::remove_dir_all(path)
                } else {
                    std::fs::remove_file(path)
                }
                .with_context(|| format!("cannot remove {}", path.display()))?;
            }
            println!(
                "removed {} cache files (display proxies included) from {}",
                files.len(),
                dir.display()
            );
            Ok(())
        }
    }
}

/// A display proxy: a folder of segments (`engine::video::ProxySegments`), or the packets or
/// table of a proxy made in one piece by an earlier version.
fn is_proxy_file(name: &str) -> bool {
    !name.starts_with('.')
        && (name.starts_with("proxy-")
            || name.ends_with(".proxy")
            || name.ends_with(".proxy-table"))
}

/// Files in a folder, and their bytes.
fn folder_size(path: &std::path::Path) -> (usize, u64) {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".segment"))
                .fold((0, 0), |(n, bytes), e| {
                    (n + 1, bytes + e.metadata().map(|m| m.len()).unwrap_or(0))
                })
        })
        .unwrap_or((0, 0))
}
