//! The text embedding cache: one file per model in the cache folder, mapping each prompt to its
//! embedding, so a prompt costs one forward pass per model, ever. The file is written with
//! [`write_versioned`] (atomic); a damaged one is moved aside and the cache starts empty, and
//! past [`TEXT_CACHE_LIMIT`] entries it starts over.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{read_versioned, safe_name, write_versioned, ModelKey, TEXT_FORMAT_VERSION};

/// Text embeddings per (model, prompt), so a prompt costs one forward pass per model, ever.
pub struct TextCache {
    path: PathBuf,
    model: ModelKey,
    entries: std::collections::HashMap<String, Vec<f32>>,
}

#[derive(Serialize, Deserialize)]
struct TextCacheFile {
    format_version: u32,
    model: ModelKey,
    entries: Vec<(String, Vec<f32>)>,
}

/// Entries kept; past this the cache starts over (prompts are cheap to embed again).
const TEXT_CACHE_LIMIT: usize = 50_000;

impl TextCache {
    /// Opens the model's text cache in `dir`; a damaged file is moved aside (and logged) and
    /// the cache starts empty.
    pub fn open(dir: &Path, model: ModelKey) -> Self {
        let name = safe_name(&format!("texts-{}-{}", model.name, model.revision), 100);
        let path = dir.join(format!("{name}.clipemb"));
        let entries = match read_versioned::<TextCacheFile>(&path, TEXT_FORMAT_VERSION) {
            Ok(Some(file)) if file.model == model => file.entries.into_iter().collect(),
            Ok(Some(_)) => {
                tracing::warn!(
                    "{} holds another model's texts; starting over",
                    path.display()
                );
                Default::default()
            }
            Ok(None) => Default::default(),
            Err(e) => {
                tracing::warn!("{e}");
                Default::default()
            }
        };
        Self {
            path,
            model,
            entries,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, text: &str) -> Option<&Vec<f32>> {
        self.entries.get(text)
    }

    /// Embeddings of `texts`, computing (in batches, with `embed_texts`) and saving only the
    /// ones not cached.
    pub fn embed<E>(
        &mut self,
        mut embed_texts: impl FnMut(&[String]) -> Result<Vec<Vec<f32>>, E>,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, E> {
        let mut missing: Vec<String> = texts
            .iter()
            .filter(|t| !self.entries.contains_key(*t))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            if self.entries.len() + missing.len() > TEXT_CACHE_LIMIT {
                self.entries.clear();
            }
            for chunk in missing.chunks(64) {
                let vectors = embed_texts(chunk)?;
                self.entries.extend(chunk.iter().cloned().zip(vectors));
            }
            let file = TextCacheFile {
                format_version: TEXT_FORMAT_VERSION,
                model: self.model.clone(),
                entries: self
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            // A failed write costs only a recomputation later.
            if let Err(e) = write_versioned(&self.path, &file) {
                tracing::warn!("{e}");
            }
        }
        Ok(texts.iter().map(|t| self.entries[t].clone()).collect())
    }
}
