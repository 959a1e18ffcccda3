//! Where the local backend's model files come from: `model:` / `--model` names either a folder
//! in Hugging Face layout or a Hub repo id, `REPO[@REVISION]`.
//!
//! A repo id is looked up in the local Hugging Face cache (`$HF_HOME/hub`, by default
//! `~/.cache/huggingface/hub`) and, where it is not cached and the machine is online, downloaded
//! there with a progress bar. `openai/clip-vit-base-patch32` keeps its safetensors weights on
//! the PR revision `refs/pr/15` (its `main` has only PyTorch pickles), so that revision is used
//! for it unless another is named.

use std::path::{Path, PathBuf};

use hf_hub::{api::sync::ApiBuilder, Cache, Repo, RepoType};

use super::local::{OPEN_CLIP_FILES, REQUIRED_FILES, TOKENIZER_ALTERNATIVE};

/// The sets of files a model can be made of: Hugging Face's transformers layout (with
/// SentencePiece's model standing in for `tokenizer.json`), then open_clip's own. Each entry
/// lists a file and what may stand in for it.
const LAYOUTS: [&[&[&str]]; 2] = [
    &[
        &[REQUIRED_FILES[0]],
        &[REQUIRED_FILES[1]],
        &[REQUIRED_FILES[2], TOKENIZER_ALTERNATIVE],
    ],
    &[&[OPEN_CLIP_FILES[0]], &[OPEN_CLIP_FILES[1]]],
];

/// Optional files fetched alongside the required ones when the repo has them.
/// Files used where the repo has them: the image processor's settings, and the tokenizer's
/// class and special tokens (SigLIP's text steps and padding depend on them).
const OPTIONAL_FILES: [&str; 2] = ["preprocessor_config.json", "tokenizer_config.json"];

/// Revisions known to hold safetensors weights for repos whose `main` does not.
const SAFETENSORS_REVISIONS: &[(&str, &str)] = &[
    ("openai/clip-vit-base-patch32", "refs/pr/15"),
    ("openai/clip-vit-base-patch16", "refs/pr/4"),
    ("openai/clip-vit-large-patch14", "refs/pr/9"),
];

/// A model ready to load: a folder holding (links to) its files, and how to name it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFiles {
    pub folder: PathBuf,
    /// `REPO@REVISION` for Hub models, the folder name for local folders.
    pub name: String,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the CLIP model {repo} (revision {revision}) is not in the Hugging Face cache at {cache} and cannot be downloaded: {reason}\n  Either run once where the machine is online (the files are then cached), or put these files from https://huggingface.co/{repo}/tree/{revision_url} into one folder:\n    {files}\n  (or, for a model in open_clip's layout, {open_clip}) and point `model:` in config.yaml (or --model) at that folder.", files = REQUIRED_FILES.join("\n    "), open_clip = OPEN_CLIP_FILES.join(" and "), revision_url = .revision.replace('/', "%2F"))]
    Unavailable {
        repo: String,
        revision: String,
        cache: PathBuf,
        reason: String,
    },
    #[error("`{0}` is neither a folder nor a Hugging Face repo id like openai/clip-vit-base-patch32 (a folder path must exist)")]
    NotAModel(String),
}

/// Splits `REPO[@REVISION]`; `None` when `spec` cannot be a repo id.
fn parse_repo(spec: &str) -> Option<(String, Option<String>)> {
    let (repo, revision) = match spec.split_once('@') {
        Some((repo, revision)) if !revision.is_empty() => (repo, Some(revision.to_string())),
        Some(_) => return None,
        None => (spec, None),
    };
    let parts: Vec<&str> = repo.split('/').collect();
    let valid_part = |p: &&str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    (parts.len() == 2 && parts.iter().all(valid_part)).then(|| (repo.to_string(), revision))
}

/// The revisions to look for in the cache, in order, and the one to download.
fn revisions(repo: &str, named: Option<String>) -> (Vec<String>, String) {
    if let Some(revision) = named {
        return (vec![revision.clone()], revision);
    }
    match SAFETENSORS_REVISIONS.iter().find(|(r, _)| *r == repo) {
        Some((_, pr)) => (vec![pr.to_string(), "main".into()], pr.to_string()),
        None => (vec!["main".into()], "main".into()),
    }
}

/// Finds the model's files: the folder itself, the HF cache, or a download.
pub fn resolve(spec: &str) -> Result<ModelFiles, SourceError> {
    resolve_with(spec, &Cache::from_env(), offline())
}

/// `HF_HUB_OFFLINE=1` (as in Python's huggingface_hub) forbids downloads.
fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

pub fn resolve_with(spec: &str, cache: &Cache, offline: bool) -> Result<ModelFiles, SourceError> {
    let path = Path::new(spec);
    if path.is_dir() {
        let name = path
            .canonicalize()
            .ok()
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.to_string());
        return Ok(ModelFiles {
            folder: path.to_path_buf(),
            name,
        });
    }
    let Some((repo, named)) = parse_repo(spec) else {
        return Err(SourceError::NotAModel(spec.to_string()));
    };
    let (cached_revisions, download_revision) = revisions(&repo, named);
    for revision in &cached_revisions {
        let cached = cache.repo(Repo::with_revision(
            repo.clone(),
            RepoType::Model,
            revision.clone(),
        ));
        // The first layout whose every file (or its stand-in) is cached.
        let folder = LAYOUTS.iter().find_map(|layout| {
            let files: Option<Vec<PathBuf>> = layout
                .iter()
                .map(|choices| choices.iter().find_map(|f| cached.get(f)))
                .collect();
            files.and_then(|files| files[0].parent().map(Path::to_path_buf))
        });
        if let Some(folder) = folder {
            return Ok(ModelFiles {
                folder,
                name: format!("{repo}@{revision}"),
            });
        }
    }
    let unavailable = |reason: String| SourceError::Unavailable {
        repo: repo.clone(),
        revision: download_revision.clone(),
        cache: cache.path().clone(),
        reason,
    };
    if offline {
        return Err(unavailable("HF_HUB_OFFLINE is set".into()));
    }
    let api = ApiBuilder::from_cache(cache.clone())
        .with_progress(true)
        .build()
        .map_err(|e| unavailable(e.to_string()))?;
    let remote = api.repo(Repo::with_revision(
        repo.clone(),
        RepoType::Model,
        download_revision.clone(),
    ));
    // The layout whose first file the repo has; then each of its files, or a stand-in.
    let mut tried = Vec::new();
    let mut folder = None;
    for layout in LAYOUTS {
        let first = layout[0][0];
        tracing::info!("downloading {first} of {repo}@{download_revision}");
        match remote.get(first) {
            Ok(path) => {
                folder = path.parent().map(Path::to_path_buf);
                for choices in &layout[1..] {
                    let mut last_error = None;
                    let found = choices.iter().find_map(|file| {
                        tracing::info!("downloading {file} of {repo}@{download_revision}");
                        remote.get(file).map_err(|e| last_error = Some(e)).ok()
                    });
                    if found.is_none() {
                        let reason = last_error.map(|e| e.to_string()).unwrap_or_default();
                        return Err(unavailable(format!("{}: {reason}", choices.join(" or "))));
                    }
                }
                break;
            }
            Err(e) => tried.push(format!("{first}: {e}")),
        }
    }
    let Some(folder) = folder else {
        return Err(unavailable(tried.join("; ")));
    };
    for file in OPTIONAL_FILES {
        if let Err(e) = remote.get(file) {
            tracing::info!("{repo} has no {file} ({e}); using the family's defaults");
        }
    }
    Ok(ModelFiles {
        folder,
        name: format!("{repo}@{download_revision}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_revisions_are_parsed() {
        assert_eq!(
            parse_repo("openai/clip-vit-base-patch32"),
            Some(("openai/clip-vit-base-patch32".into(), None))
        );
        assert_eq!(
            parse_repo("me/my.clip@v2"),
            Some(("me/my.clip".into(), Some("v2".into())))
        );
        for bad in [
            "clip",
            "a/b/c",
            "../x",
            "a/..",
            "a/b@",
            "a b/c",
            "/abs/path",
        ] {
            assert_eq!(parse_repo(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_default_model_uses_its_safetensors_revision() {
        let (cached, download) = revisions("openai/clip-vit-base-patch32", None);
        assert_eq!(download, "refs/pr/15");
        assert_eq!(cached, vec!["refs/pr/15".to_string(), "main".into()]);
        assert_eq!(revisions("me/clip", None).1, "main");
        assert_eq!(revisions("me/clip", Some("abc".into())).0, vec!["abc"]);
    }

    #[test]
    fn offline_and_uncached_says_which_files_to_put_where() {
        let cache = tempfile::tempdir().unwrap();
        let error = resolve_with(
            "openai/clip-vit-base-patch32",
            &Cache::new(cache.path().to_path_buf()),
            true,
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "refs%2Fpr%2F15",
            "--model",
        ] {
            assert!(error.contains(expected), "{expected} missing from: {error}");
        }
        assert!(error.contains(&cache.path().display().to_string()));
    }

    #[test]
    fn a_cached_snapshot_is_found_without_network() {
        // The Hugging Face cache layout: refs/<revision> holds the commit of snapshots/<commit>/.
        let cache = tempfile::tempdir().unwrap();
        let repo_dir = cache.path().join("models--me--clip");
        let snapshot = repo_dir.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
        std::fs::write(repo_dir.join("refs").join("main"), "abc123").unwrap();
        for file in REQUIRED_FILES {
            std::fs::write(snapshot.join(file), "x").unwrap();
        }
        let found = resolve_with("me/clip", &Cache::new(cache.path().to_path_buf()), true).unwrap();
        assert_eq!(found.folder, snapshot);
        assert_eq!(found.name, "me/clip@main");
    }

    #[test]
    fn a_cached_open_clip_snapshot_is_found_too() {
        let cache = tempfile::tempdir().unwrap();
        let repo_dir = cache.path().join("models--timm--pe");
        let snapshot = repo_dir.join("snapshots").join("def456");
        std::fs::create_dir_all(&snapshot).unwrap();
        std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
        std::fs::write(repo_dir.join("refs").join("main"), "def456").unwrap();
        std::fs::write(snapshot.join(OPEN_CLIP_FILES[0]), "x").unwrap();
        let cached = Cache::new(cache.path().to_path_buf());
        // Half a layout is not a model.
        assert!(resolve_with("timm/pe", &cached, true).is_err());
        std::fs::write(snapshot.join(OPEN_CLIP_FILES[1]), "x").unwrap();
        let found = resolve_with("timm/pe", &cached, true).unwrap();
        assert_eq!(found.folder, snapshot);
    }

    #[test]
    fn a_folder_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let found = resolve_with(
            dir.path().to_str().unwrap(),
            &Cache::new(dir.path().into()),
            true,
        )
        .unwrap();
        assert_eq!(found.folder, dir.path());
        let error = resolve_with("no/such/folder", &Cache::new(dir.path().into()), true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("neither a folder"), "{error}");
    }
}
