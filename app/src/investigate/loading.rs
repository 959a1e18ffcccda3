//! Filling the shared state from the server (browser only): the index status, the config's
//! prompts when the link named none, and the scores of the prompts.
//!
//! Invariant: scores are asked for only once the index has embedded frames, and again as the
//! prompts change or indexing makes progress; a complete index is asked only for new prompts.

use std::collections::HashSet;

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::Investigation;
use crate::api::{get_default_prompts, get_scores};
use crate::types::IndexState;

/// Starts the polling and fetching; `use_defaults`: the link named no prompts.
pub fn start(inv: Investigation, use_defaults: bool) {
    Effect::new(move |first: Option<()>| {
        if first.is_none() {
            crate::status::poll(inv.status, inv.player.info.with_untracked(|i| i.id.clone()));
            if use_defaults {
                spawn_local(async move {
                    if let Ok(list) = get_default_prompts().await {
                        if inv.prompts.get_untracked().is_empty() {
                            inv.prompts.set(list.clone());
                        }
                    }
                });
            }
        }
    });
    // Fetch scores when the prompts change, and again while indexing makes progress.
    Effect::new(move |_| {
        let prompts = inv.prompts.get();
        let done = inv.status.with(|s| match s {
            Some(Ok(s)) => Some((s.state, s.done)),
            _ => None,
        });
        // Saved embeddings are shown whatever the job's state: a failed or queued job
        // still has the frames it embedded.
        if matches!(done, Some((IndexState::Running | IndexState::Done, _)))
            || matches!(done, Some((_, done)) if done > 0)
        {
            fetch_scores(inv, prompts);
        }
    });
}

/// Asks only for the prompts not yet scored when the index is complete (a new prompt then
/// costs one text embedding and one matrix-vector product); everything while it grows.
fn fetch_scores(inv: Investigation, prompts: Vec<String>) {
    let complete = inv
        .series
        .with_untracked(|s| s.as_ref().is_some_and(|s| s.complete));
    let known: HashSet<String> = inv.series.with_untracked(|s| {
        s.as_ref()
            .map(|s| s.prompts.iter().map(|p| p.prompt.clone()).collect())
            .unwrap_or_default()
    });
    let wanted: Vec<String> = if complete {
        prompts
            .iter()
            .filter(|p| !known.contains(*p))
            .cloned()
            .collect()
    } else {
        prompts.clone()
    };
    if complete && wanted.is_empty() {
        return;
    }
    if prompts.is_empty() {
        return;
    }
    let video = inv.player.info.with_untracked(|i| i.id.clone());
    spawn_local(async move {
        match get_scores(video, wanted).await {
            Ok(answer) => {
                inv.scores_error.set(None);
                inv.series.update(|current| match current {
                    Some(old) if complete && answer.frames == old.frames => {
                        old.prompts.extend(answer.prompts);
                    }
                    _ => *current = Some(answer),
                });
            }
            Err(e) => inv.scores_error.set(Some(crate::api::error_text(&e))),
        }
    });
}
