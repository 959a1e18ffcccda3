//! `export`: per-frame scores (CSV, JSON) or the raw embeddings (NumPy `.npy`) of an indexed
//! video, written atomically.

use anyhow::Context;
use serde_json::json;
use store::cache::EmbeddingFile;

use super::args::{ExportArgs, ExportFormat};
use super::indexed::{open_indexed, prompts_or_config};
use super::output::{by_prompt, write_file};
use super::CommandResult;

pub fn run(args: &ExportArgs) -> CommandResult {
    let (path, format, output) = (args.video.as_path(), args.format, args.output.as_path());
    let indexed = open_indexed(path, &args.model, args.sample_fps)?;
    let bytes = match format {
        ExportFormat::Npy => npy(&indexed.file),
        ExportFormat::Csv | ExportFormat::Json => {
            let mut prompts = prompts_or_config(args.prompts.clone(), &indexed.settings)?;
            let (covered, mut series) = indexed.score_table(&prompts, 1, false)?;
            // An adapted prompt is one more column: its probability at the adapter's α.
            if let Some(file) = &args.adapter {
                let (adapter, _, values) = indexed.adapted_series(file, args.alpha, covered, 1)?;
                prompts.push(investigator_core::adapt::adapted_name(adapter.prompt()));
                series.push(values);
            }
            let fps = indexed.video.meta.fps;
            if format == ExportFormat::Csv {
                let mut csv = String::from("frame,time_s");
                for p in &prompts {
                    csv.push(',');
                    csv.push_str(&csv_field(p));
                }
                csv.push('\n');
                for n in 0..covered as usize {
                    csv.push_str(&format!("{n},{:.6}", indexed.time_s(n as u64)));
                    for s in &series {
                        // A frame that could not be decoded has no value: an empty field.
                        if s[n].is_nan() {
                            csv.push(',');
                        } else {
                            csv.push_str(&format!(",{}", s[n]));
                        }
                    }
                    csv.push('\n');
                }
                csv.into_bytes()
            } else {
                let scores = by_prompt(&prompts, &series);
                serde_json::to_vec(&json!({
                    "video": path.file_name().map(|n| n.to_string_lossy()),
                    "model": indexed.embedder.identity().name,
                    "fps": fps,
                    "frames": (0..covered).collect::<Vec<u64>>(),
                    "times_s": (0..covered).map(|n| indexed.time_s(n)).collect::<Vec<f64>>(),
                    "missing": indexed.file.missing,
                    "scores": scores,
                }))
                .context("cannot encode the scores as JSON")?
            }
        }
    };
    write_file(output, &bytes)?;
    eprintln!("wrote {}", output.display());
    Ok(())
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The embeddings as a NumPy `.npy` file: float32, shape (frames, dimension), C order.
fn npy(file: &EmbeddingFile) -> Vec<u8> {
    let header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        file.frames.len(),
        file.dimension()
    );
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let mut out = Vec::with_capacity(unpadded + padding + file.vectors.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((header.len() + padding + 1) as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    for v in &file.vectors {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_headers_are_aligned_and_describe_the_matrix() {
        let mut file = EmbeddingFile::new(store::cache::CacheHeader {
            format_version: store::cache::FORMAT_VERSION,
            model: store::cache::ModelKey {
                name: "m".into(),
                revision: "r".into(),
                dimension: 3,
            },
            video: store::cache::VideoFingerprint {
                size: 1,
                chunks_hash: 2,
            },
            sample_fps_millis: None,
            video_frames: 2,
            video_fps_micros: 30_000_000,
        });
        file.frames = vec![0, 1];
        file.vectors = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bytes = npy(&file);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (2, 3)") && header.ends_with('\n'));
        assert_eq!(bytes.len(), 10 + header_len + 6 * 4);
        assert_eq!(
            &bytes[10 + header_len..10 + header_len + 4],
            &1f32.to_le_bytes()
        );
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a cat"), "a cat");
        assert_eq!(csv_field("cats, dogs"), "\"cats, dogs\"");
        assert_eq!(csv_field("a \"big\" cat"), "\"a \"\"big\"\" cat\"");
    }
}
