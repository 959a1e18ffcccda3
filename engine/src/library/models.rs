//! The models a server offers: each loaded once, on first use, and shared by every video's
//! indexing job; and the page's names for them (never a path).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use investigator_core::types::ModelChoice;

use crate::embed::{Embedder, LoadError};

type LoadModel = dyn Fn() -> Result<Arc<dyn Embedder>, LoadError> + Send + Sync;

/// The model, loaded once on first use and shared by every video's indexing job.
pub struct SharedModel {
    load: Box<LoadModel>,
    loaded: OnceLock<Result<Arc<dyn Embedder>, LoadError>>,
}

impl SharedModel {
    pub fn new(
        load: impl Fn() -> Result<Arc<dyn Embedder>, LoadError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            load: Box::new(load),
            loaded: OnceLock::new(),
        })
    }

    /// Loads on the first call (concurrent callers wait for it); later calls share the result.
    pub fn get(&self) -> Result<Arc<dyn Embedder>, LoadError> {
        self.loaded.get_or_init(|| (self.load)()).clone()
    }

    /// The model if it has loaded, without waiting.
    pub(super) fn ready(&self) -> Option<Arc<dyn Embedder>> {
        self.loaded.get().and_then(|r| r.as_ref().ok().cloned())
    }
}

/// One model the server offers: how the page names it, and the model.
pub struct ModelSlot {
    pub choice: ModelChoice,
    pub model: Arc<SharedModel>,
}

/// The page's names for the config's models: the repo id or folder name, and an id made of it
/// (lowercase; a repeated one gets `-2`, `-3`…). Paths never reach the page.
pub fn model_choices(models: &[String]) -> Vec<ModelChoice> {
    let mut choices: Vec<ModelChoice> = Vec::new();
    for model in models {
        let path = Path::new(model);
        let label = if path.is_absolute() || path.is_dir() {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        } else {
            model.clone()
        };
        // `owner/name@revision` → `name`.
        let repo = label.split('@').next().unwrap_or(&label);
        let name = repo.rsplit('/').next().unwrap_or(repo);
        let mut base: String = name
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .take(56)
            .collect();
        if base.is_empty() {
            base = "model".into();
        }
        let mut id = base.clone();
        let mut n = 2;
        while choices.iter().any(|c| c.id == id) {
            id = format!("{base}-{n}");
            n += 1;
        }
        choices.push(ModelChoice { id, label });
    }
    choices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_come_from_repo_or_folder_names_and_stay_distinct() {
        let choices = model_choices(&[
            "openai/clip-vit-base-patch32@refs/pr/15".into(),
            "/models/My CLIP".into(),
            "laion/My-CLIP".into(),
            "/other/My CLIP".into(),
        ]);
        let ids: Vec<&str> = choices.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["clip-vit-base-patch32", "my-clip", "my-clip-2", "my-clip-3"]
        );
        assert!(ids
            .iter()
            .all(|id| investigator_core::types::is_valid_model_id(id)));
        // The page sees a folder's name, never where it is.
        assert_eq!(choices[1].label, "My CLIP");
        assert_eq!(choices[2].label, "laion/My-CLIP");
    }

    #[test]
    fn a_model_loads_once_and_its_failure_is_shared() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let model = SharedModel::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            Err(LoadError::Source(
                crate::embed::source::SourceError::NotAModel("x".into()),
            ))
        });
        assert!(model.ready().is_none());
        let first = model.get().err().unwrap().to_string();
        let second = model.get().err().unwrap().to_string();
        assert_eq!(first, second);
        assert!(first.contains("`x` is neither a folder"), "{first}");
        assert_eq!(calls.load(Ordering::Relaxed), 1, "loaded once");
    }
}

/// The config's models as slots, each loaded on first use (the default first).
pub fn model_slots(settings: &store::config::Settings) -> Vec<ModelSlot> {
    model_choices(&settings.models)
        .into_iter()
        .zip(&settings.models)
        .map(|(choice, model)| {
            let mut model_settings = settings.clone();
            model_settings.set_model(model.clone());
            ModelSlot {
                choice,
                model: SharedModel::new(move || crate::precision::load(&model_settings)),
            }
        })
        .collect()
}
