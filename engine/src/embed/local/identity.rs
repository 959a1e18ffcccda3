//! A model's identity (its name, the fingerprint of its weights, its embedding size), known
//! without loading the weights: caches and stored checks are keyed by it.

use std::path::Path;

use super::config::ModelError;
use super::families::naflex::MAX_PATCHES;
use super::family::Family;
use crate::embed::preprocess::PatchBudget;
use crate::embed::ModelIdentity;

/// The identity [`LocalClip::load_named`](super::LocalClip::load_named) would give, without
/// loading the weights: the embedding size from the family's configuration and a fingerprint of
/// its weights file.
pub fn identity_of(folder: &Path, name: &str) -> Result<ModelIdentity, ModelError> {
    identity_with(folder, name, None)
}

/// [`identity_of`] with a patch budget asked for (`max_num_patches`), which NaFlex models'
/// identities carry where it is not the checkpoint's: their embeddings differ with it.
pub fn identity_with(
    folder: &Path,
    name: &str,
    max_patches: Option<u32>,
) -> Result<ModelIdentity, ModelError> {
    let family = super::families::read(folder)?;
    let budget = patch_budget(family.as_ref(), max_patches, folder)?;
    identity(family.as_ref(), name, budget)
}

/// The patch budget that overrides the checkpoint's: `Some` only for a model that has one and
/// a different `max_patches` asked for; out of range, refused naming the setting.
pub(crate) fn patch_budget(
    family: &dyn Family,
    max_patches: Option<u32>,
    folder: &Path,
) -> Result<Option<PatchBudget>, ModelError> {
    let (Some(checkpoint), Some(asked)) = (family.preprocess().patch_budget, max_patches) else {
        return Ok(None);
    };
    if !(1..=MAX_PATCHES).contains(&asked) {
        return Err(ModelError::Unsupported {
            path: folder.into(),
            message: format!("max_num_patches is {asked}; it must be from 1 to {MAX_PATCHES}"),
        });
    }
    Ok((asked != checkpoint.max_patches).then_some(PatchBudget {
        max_patches: asked,
        ..checkpoint
    }))
}

/// A model's identity: `name`, the fingerprint of its weights, its embedding size; a patch
/// budget other than the checkpoint's is part of the revision.
pub(crate) fn identity(
    family: &dyn Family,
    name: &str,
    budget: Option<PatchBudget>,
) -> Result<ModelIdentity, ModelError> {
    let weights = family.weights_file();
    let fingerprint =
        store::cache::VideoFingerprint::of_file(weights).map_err(|e| ModelError::Weights {
            path: weights.into(),
            message: e.to_string(),
        })?;
    Ok(ModelIdentity {
        name: name.to_string(),
        revision: match budget {
            Some(budget) => format!("{}-p{}", fingerprint.short(), budget.max_patches),
            None => fingerprint.short(),
        },
        dimension: family.dimension(),
    })
}
