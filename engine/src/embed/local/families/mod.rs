//! The model families, one folder each, and the registry that picks a folder's family from its
//! files. Adding a family: a folder here implementing [`Family`], and one line in [`FAMILIES`].

pub(crate) mod clip;
pub(crate) mod hf;
pub(crate) mod naflex;
pub(crate) mod open_clip;
pub(crate) mod open_clip_siglip;
pub(crate) mod pe_core;
pub(crate) mod siglip;

use std::path::Path;

use super::config::ModelError;
use super::family::Family;

/// Reads a folder as one family: `None` where the folder's files are not that family's.
type Reader = fn(&Path) -> Option<Result<Box<dyn Family>, ModelError>>;

/// Every family, asked in order; the first that recognises the folder reads it.
/// Hugging Face's layout first: a repo that publishes both layouts loads as the one its
/// `config.json` describes.
const FAMILIES: &[Reader] = &[
    clip::read,
    siglip::read,
    naflex::read,
    pe_core::read,
    open_clip_siglip::read,
    open_clip::read,
];

/// The family of the model in `folder`, read with its configuration; a folder no family
/// recognises is refused with what it is and what would do.
pub(crate) fn read(folder: &Path) -> Result<Box<dyn Family>, ModelError> {
    if let Some(read) = FAMILIES.iter().find_map(|reader| reader(folder)) {
        return read;
    }
    match hf::config_json(folder) {
        Some(Ok((path, text))) => Err(unknown_model_type(&path, &text)),
        Some(Err(e)) => Err(e),
        // No family's files: say which a Hugging Face folder lacks.
        None => Err(ModelError::MissingFiles {
            folder: folder.into(),
            missing: hf::missing_files(folder).join(", "),
        }),
    }
}

/// The refusal of a `config.json` whose `model_type` no family reads, naming it.
fn unknown_model_type(path: &Path, text: &str) -> ModelError {
    let kind = hf::model_type(text).unwrap_or_default();
    let message = format!("model_type is {kind:?}, not a CLIP or SigLIP model; use a CLIP or SigLIP checkpoint in Hugging Face layout (model_type \"clip\", \"siglip\" or \"siglip2\") or one in open_clip's layout");
    ModelError::Unsupported {
        path: path.into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(config: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        read(dir.path()).err().unwrap().to_string()
    }

    #[test]
    fn a_model_type_no_family_reads_is_refused_by_name() {
        // SigLIP 2 NaFlex is read (and its missing files named), not refused.
        let error = refusal(r#"{"model_type": "siglip2"}"#);
        assert!(error.contains("lacks model.safetensors"), "{error}");
        let error = refusal(r#"{"model_type": "bert"}"#);
        assert!(
            error.contains("\"bert\", not a CLIP or SigLIP model"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_folder_is_told_which_files_to_put_there() {
        let dir = tempfile::tempdir().unwrap();
        let error = read(dir.path()).err().unwrap().to_string();
        assert!(
            error.contains("config.json, model.safetensors, tokenizer.json"),
            "{error}"
        );
    }
}
