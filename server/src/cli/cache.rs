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
                let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                let name = path.file_name().unwrap_or_default().to_string_lossy();
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
                std::fs::remove_file(path)
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

/// A display proxy's packets or table (`engine::video::Proxy`).
fn is_proxy_file(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".proxy") || name.ends_with(".proxy-table"))
}
