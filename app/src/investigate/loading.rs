//! Filling the shared state from the server (browser only): the list of models, each shown
//! model's index status, the config's prompts when the link named none, and the scores of the
//! prompts by the model (and the compared model).
//!
//! Invariant: scores are asked for only once the index has embedded frames, and again as the
//! prompts change or indexing makes progress; a complete index is asked only for new prompts.
//! An answer is kept only if its model is still the one shown on its side.

use std::collections::HashSet;

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::Investigation;
use crate::api::{get_default_prompts, get_models, get_scores, look_at};
use investigator_core::types::IndexState;
use investigator_core::types::{IndexStatus, ScoreSeries};

/// One model's side of the chart: which model, its index status and its scores.
#[derive(Clone, Copy)]
struct Side {
    model: RwSignal<Option<String>>,
    status: RwSignal<Option<Result<IndexStatus, String>>>,
    series: RwSignal<Option<ScoreSeries>>,
    /// The second side: no model means nothing to show (not the default model).
    optional: bool,
}

impl Side {
    fn first(inv: Investigation) -> Self {
        Self {
            model: inv.model,
            status: inv.status,
            series: inv.series,
            optional: false,
        }
    }

    fn second(inv: Investigation) -> Self {
        Self {
            model: inv.compare,
            status: inv.status_b,
            series: inv.series_b,
            optional: true,
        }
    }
}

/// Starts the polling and fetching; `use_defaults`: the link named no prompts.
pub fn start(inv: Investigation, use_defaults: bool) {
    Effect::new(move |first: Option<()>| {
        if first.is_none() {
            spawn_local(async move {
                if let Ok(list) = get_models().await {
                    // A link may name a model this server no longer offers: say so and show
                    // the default instead of polling for it.
                    let mut unknown = Vec::new();
                    for (side, instead) in [
                        (inv.model, "the default model"),
                        (inv.compare, "no second model"),
                    ] {
                        if let Some(id) = side.get_untracked() {
                            if !list.iter().any(|m| m.id == id) {
                                unknown.push(format!(
                                    "this server has no model {id:?}: showing {instead}"
                                ));
                                side.set(None);
                            }
                        }
                    }
                    if !unknown.is_empty() {
                        inv.model_error.set(Some(unknown.join("; ")));
                    }
                    inv.models.set(list);
                }
            });
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
    super::labels::load(inv);
    super::evaluate_panel::evaluate_when_ready(inv);
    super::adapt::client::load(inv);
    follow_view(inv);
    for side in [Side::first(inv), Side::second(inv)] {
        // A model picked: its status from scratch, no scores until its own arrive.
        Effect::new(move |_| {
            let model = side.model.get();
            side.status.set(None);
            side.series.set(None);
            if side.optional && model.is_none() {
                return;
            }
            let video = inv.player.info.with_untracked(|i| i.id.clone());
            crate::status::poll(side.status, video, model, side.model);
        });
        // Fetch scores when the prompts or the adapted prompts change, and again while
        // indexing makes progress.
        Effect::new(move |last_refresh: Option<u32>| {
            let prompts = inv.prompts.get();
            let adapters: Vec<String> = if side.optional {
                Vec::new()
            } else {
                inv.adapters
                    .with(|a| a.iter().map(|(id, _)| id.clone()).collect())
            };
            let refresh = inv.scores_refresh.get();
            let force = last_refresh.is_some_and(|last| last != refresh);
            let done = side.status.with(|s| match s {
                Some(Ok(s)) => Some((s.state, s.done)),
                _ => None,
            });
            // Saved embeddings are shown whatever the job's state: a failed or queued job
            // still has the frames it embedded.
            if matches!(done, Some((IndexState::Running | IndexState::Done, _)))
                || matches!(done, Some((_, done)) if done > 0)
            {
                fetch_scores(inv, side, prompts, adapters, force);
            }
            refresh
        });
    }
}

/// Asks only for the prompts not yet scored when the index is complete (a new prompt then
/// costs one text embedding and one matrix-vector product); everything while it grows, or
/// when the adapted prompts change (`refresh`: an adapter was retrained).
fn fetch_scores(
    inv: Investigation,
    side: Side,
    prompts: Vec<String>,
    adapters: Vec<String>,
    force: bool,
) {
    let series = side.series;
    let have: HashSet<String> = series.with_untracked(|s| {
        s.as_ref()
            .map(|s| s.adapted.iter().map(|a| a.id.clone()).collect())
            .unwrap_or_default()
    });
    let adapters_changed = adapters.len() != have.len()
        || !adapters.iter().all(|id| have.contains(id))
        || (force && !adapters.is_empty());
    let complete =
        series.with_untracked(|s| s.as_ref().is_some_and(|s| s.complete)) && !adapters_changed;
    let known: HashSet<String> = series.with_untracked(|s| {
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
    let model = side.model.get_untracked();
    spawn_local(async move {
        let answer = get_scores(video, model.clone(), wanted, adapters).await;
        if side.model.get_untracked() != model {
            return; // another model is shown now
        }
        match answer {
            Ok(answer) => {
                inv.scores_error.set(None);
                series.update(|current| match current {
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

/// Seconds either side of the playhead refined first when the chart is not zoomed.
const LOOK_AROUND_S: f64 = 10.0;

/// While a coarse-to-fine index refines, tells the server where this viewer looks: the chart's
/// zoom window, or [`LOOK_AROUND_S`] around the playhead. Sent when the span moves by more
/// than a quarter of itself, so playing along re-sends every few seconds, not every frame.
fn follow_view(inv: Investigation) {
    let sent: StoredValue<Option<(u64, u64)>> = StoredValue::new(None);
    Effect::new(move |_| {
        let refining = inv
            .status
            .with(|s| matches!(s, Some(Ok(s)) if s.state == IndexState::Running && s.passes > 0));
        if !refining {
            return;
        }
        let (id, frames, fps) = inv.player.info.with(|i| (i.id.clone(), i.frames, i.fps));
        let last = frames.saturating_sub(1);
        let span = match inv.x_range.get() {
            Some((a, b)) => (
                (a.max(0.0).floor() as u64).min(last),
                (b.max(0.0).ceil() as u64).min(last),
            ),
            None => {
                let at = inv.player.playhead.get();
                let reach = (LOOK_AROUND_S * fps.max(1.0)).round() as u64;
                (at.saturating_sub(reach), at.saturating_add(reach).min(last))
            }
        };
        let moved = sent.get_value().is_none_or(|(a, b)| {
            let tolerance = ((b - a) / 4).max(1);
            a.abs_diff(span.0) > tolerance || b.abs_diff(span.1) > tolerance
        });
        if moved && span.0 <= span.1 {
            sent.set_value(Some(span));
            let models = [
                Some(inv.model.get_untracked()),
                inv.compare.get_untracked().map(Some),
            ];
            for model in models.into_iter().flatten() {
                let id = id.clone();
                spawn_local(async move {
                    let _ = look_at(id, model, span.0, span.1).await;
                });
            }
        }
    });
}
