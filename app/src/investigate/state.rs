//! The state the investigation panel's parts share: one `Copy` bundle of signals (like
//! [`PlayerState`]), made once per opened video and passed to every child as one prop.
//!
//! Invariants: `prompts` holds trimmed, non-empty, distinct prompts (lists go through
//! [`Investigation::set_prompts`]); `colors` has a slot for every prompt and keeps a prompt's
//! slot while the prompt stays; `curves` is derived from the others and never set; `series`
//! holds the scores of `model` and `series_b` those of `compare`, never another model's (both
//! are emptied when their model changes); `adapters` are the first model's (emptied when it
//! changes).

use std::collections::{HashMap, HashSet};

use leptos::prelude::*;

use super::labels::PlotArea;
use super::{adapted_curves, compared_curves, view_curves, ViewParams};
use crate::player::PlayerState;
use investigator_core::adapt::{AdaptStatus, AdapterInfo};
use investigator_core::chart::{assign_colors, Curve};
use investigator_core::evaluation::Evaluation;
use investigator_core::labels::{Labels, Segment};
use investigator_core::moments::{find_moments, MomentQuery, Moments};
use investigator_core::types::{IndexStatus, ModelChoice, ScoreSeries, SearchHit};

/// Everything the panel's components read or change; cheap to copy into event handlers.
#[derive(Clone, Copy)]
pub struct Investigation {
    pub player: PlayerState,
    /// The index job, as last polled (`None` until the first answer).
    pub status: RwSignal<Option<Result<IndexStatus, String>>>,
    pub prompts: RwSignal<Vec<String>>,
    /// Prompts whose curve the legend has switched off.
    pub hidden: RwSignal<HashSet<String>>,
    /// Each prompt's colour slot (see [`assign_colors`]).
    pub colors: RwSignal<HashMap<String, usize>>,
    /// Smoothing window, in frames (1 to [`super::MAX_SMOOTH`]).
    pub smoothing: RwSignal<usize>,
    /// Probabilities (softmax over the prompts) instead of cosine similarities.
    pub softmax: RwSignal<bool>,
    /// The scores as the server sent them.
    pub series: RwSignal<Option<ScoreSeries>>,
    pub scores_error: RwSignal<Option<String>>,
    /// The models the server offers, the default first (empty until the page asks).
    pub models: RwSignal<Vec<ModelChoice>>,
    /// The model whose scores the page shows (`None`: the server's default).
    pub model: RwSignal<Option<String>>,
    /// A second model compared with the first; its index status and scores.
    pub compare: RwSignal<Option<String>>,
    pub status_b: RwSignal<Option<Result<IndexStatus, String>>>,
    pub series_b: RwSignal<Option<ScoreSeries>>,
    /// Plot the first model minus the second instead of both.
    pub difference: RwSignal<bool>,
    /// A model the link named that the server does not offer.
    pub model_error: RwSignal<Option<String>>,
    /// The frame under the mouse on the chart.
    pub hover: RwSignal<Option<u64>>,
    /// The chart's zoomed frame range; `None`: the whole video.
    pub x_range: RwSignal<Option<(f64, f64)>>,
    /// Search results, each with its thumbnail's object URL once loaded.
    pub hits: RwSignal<Vec<(SearchHit, Option<String>)>>,
    pub search_error: RwSignal<Option<String>>,
    pub show_help: RwSignal<bool>,
    /// The share link has been copied.
    pub copied: RwSignal<bool>,
    /// How many times the chart has been drawn (`data-redraws`, for the tests).
    pub redraws: RwSignal<u32>,
    /// The curves on the chart: the view of `series`, hidden prompts left out.
    pub curves: Memo<Vec<Curve>>,
    /// The chart's canvas: the chart draws on it, the PNG export reads it.
    pub canvas: NodeRef<leptos::html::Canvas>,
    /// The moment query; `None`: no moments shown.
    pub query: RwSignal<Option<MomentQuery>>,
    /// The query's moments on the current view's curves (smoothed, cosine or probability as
    /// chosen), or why there are none.
    pub moments: Memo<Option<Result<Moments, String>>>,
    /// A span picked by Shift-dragging across the chart (first and last frame).
    pub selection: RwSignal<Option<(u64, u64)>>,
    /// A moment being played: playback stops at its last frame.
    pub playing_span: RwSignal<Option<(u64, u64)>>,
    /// The clip export, as the user should read it ("encoding 40 of 120 frames", an error).
    pub excerpt_note: RwSignal<Option<String>>,
    /// The video's ground-truth labels, as the server last answered.
    pub labels: RwSignal<Labels>,
    /// What the last label change merged; why a label change was refused.
    pub label_notes: RwSignal<Vec<String>>,
    pub label_error: RwSignal<Option<String>>,
    /// The label clicked on the track (to adjust or delete).
    pub selected_label: RwSignal<Option<Segment>>,
    /// The chart's plot area as of its last draw (the label track aligns with it).
    pub plot_area: RwSignal<Option<PlotArea>>,
    /// The models held against the labels, or why not; `None` until asked.
    pub evaluation: RwSignal<Option<Result<Evaluation, String>>>,
    /// The prompt whose errors the chart and the panel show (`eval` in the share link).
    pub evaluated_prompt: RwSignal<Option<String>>,
    /// Thumbnails by frame (object URLs; empty while loading).
    pub thumbs: RwSignal<HashMap<u64, String>>,
    /// The dataset download, as the user should read it.
    pub dataset_note: RwSignal<Option<String>>,
    /// The heatmap over the frame: why it scores as it does for one prompt.
    pub heat: super::HeatmapState,
    /// Adapted prompts on the chart: each stored adapter's id and the blend α it is drawn at
    /// (`ad` in the share link).
    pub adapters: RwSignal<Vec<(String, f64)>>,
    /// The adapters stored for this video and model, as the server last listed them.
    pub adapter_infos: RwSignal<Vec<AdapterInfo>>,
    /// Each prompt's adapt job, as last polled.
    pub adapt_jobs: RwSignal<HashMap<String, AdaptStatus>>,
    /// The panel shown under the player.
    pub panel: RwSignal<super::Panel>,
    /// Bumped to fetch the scores again (an adapter was trained or retrained).
    pub scores_refresh: RwSignal<u32>,
}

impl Investigation {
    /// The state for `player`'s video, starting from the share link's view.
    pub fn new(player: PlayerState, initial: &ViewParams) -> Self {
        let prompts: RwSignal<Vec<String>> =
            RwSignal::new(initial.prompts.clone().unwrap_or_default());
        let hidden: RwSignal<HashSet<String>> = RwSignal::new(HashSet::new());
        let colors: RwSignal<HashMap<String, usize>> =
            RwSignal::new(assign_colors(&prompts.get_untracked(), &HashMap::new()));
        let smoothing = RwSignal::new(initial.smooth);
        let softmax = RwSignal::new(initial.softmax);
        let series: RwSignal<Option<ScoreSeries>> = RwSignal::new(None);
        let series_b: RwSignal<Option<ScoreSeries>> = RwSignal::new(None);
        let models: RwSignal<Vec<ModelChoice>> = RwSignal::new(Vec::new());
        let model = RwSignal::new(initial.model.clone());
        let compare = RwSignal::new(initial.compare.clone());
        let difference = RwSignal::new(initial.difference);
        let adapters: RwSignal<Vec<(String, f64)>> = RwSignal::new(
            initial
                .adapters
                .iter()
                .map(|(id, alpha)| (id.clone(), alpha.unwrap_or(f64::NAN)))
                .collect(),
        );
        let curves = Memo::new(move |_| {
            let hidden = hidden.get();
            let view = (smoothing.get(), softmax.get());
            let names = (
                model_label(&models.get(), model.get().as_deref()),
                compare.get().map(|b| model_label(&models.get(), Some(&b))),
            );
            series
                .with(|s| {
                    series_b.with(|b| match (s, b, names) {
                        (Some(s), Some(b), (a_name, Some(b_name))) => compared_curves(
                            (s, b),
                            (&a_name, &b_name),
                            &prompts.get(),
                            &colors.get(),
                            view,
                            difference.get(),
                        ),
                        (Some(s), _, _) => {
                            view_curves(s, &prompts.get(), &colors.get(), view.0, view.1)
                        }
                        (None, _, _) => Vec::new(),
                    })
                })
                .into_iter()
                // The first model's adapted prompts, on their own axis: at the α each is set
                // to (NaN until its adapter's own is known: not drawn yet).
                .chain(series.with(|s| {
                    let wanted: Vec<(String, f64)> = adapters
                        .get()
                        .into_iter()
                        .filter(|(_, alpha)| alpha.is_finite())
                        .collect();
                    s.as_ref()
                        .map(|s| adapted_curves(s, &wanted, &colors.get(), view.0))
                        .unwrap_or_default()
                }))
                .filter(|c| !hidden.contains(&c.prompt))
                .collect::<Vec<_>>()
        });
        let query = RwSignal::new(initial.moments.clone());
        let moments = Memo::new(move |_| {
            let query = query.get()?;
            Some(series.with(|s| {
                let s = s.as_ref().ok_or_else(|| "no scores yet".to_string())?;
                let view = (smoothing.get(), softmax.get());
                let fps = player.info.with(|i| i.fps);
                let adapted: Vec<(String, f64)> = adapters
                    .get()
                    .into_iter()
                    .filter(|(_, alpha)| alpha.is_finite())
                    .collect();
                query_moments(
                    &query,
                    s,
                    &prompts.get(),
                    &adapted,
                    &colors.get(),
                    view,
                    fps,
                )
            }))
        });
        // A new prompt list keeps the colours of the prompts it still has.
        Effect::new(move |_| {
            let list = prompts.get();
            colors.set(assign_colors(&list, &colors.get_untracked()));
        });
        Self {
            player,
            status: RwSignal::new(None),
            prompts,
            hidden,
            colors,
            smoothing,
            softmax,
            series,
            scores_error: RwSignal::new(None),
            models,
            model,
            compare,
            status_b: RwSignal::new(None),
            series_b,
            difference,
            model_error: RwSignal::new(None),
            hover: RwSignal::new(None),
            x_range: RwSignal::new(None),
            hits: RwSignal::new(Vec::new()),
            search_error: RwSignal::new(None),
            show_help: RwSignal::new(false),
            copied: RwSignal::new(false),
            redraws: RwSignal::new(0),
            curves,
            canvas: NodeRef::new(),
            query,
            moments,
            selection: RwSignal::new(None),
            playing_span: RwSignal::new(None),
            excerpt_note: RwSignal::new(None),
            labels: RwSignal::new(Labels::default()),
            label_notes: RwSignal::new(Vec::new()),
            label_error: RwSignal::new(None),
            selected_label: RwSignal::new(None),
            plot_area: RwSignal::new(None),
            evaluation: RwSignal::new(None),
            evaluated_prompt: RwSignal::new(initial.evaluate.clone()),
            thumbs: RwSignal::new(HashMap::new()),
            dataset_note: RwSignal::new(None),
            heat: super::HeatmapState::new(initial),
            adapters,
            adapter_infos: RwSignal::new(Vec::new()),
            adapt_jobs: RwSignal::new(HashMap::new()),
            panel: RwSignal::new(super::Panel::first_for(initial)),
            scores_refresh: RwSignal::new(0),
        }
    }

    /// The error spans of the evaluated prompt (first model), for the chart and the keys.
    pub fn error_spans(self) -> Vec<investigator_core::evaluation::ErrorSpan> {
        let Some(prompt) = self.evaluated_prompt.get() else {
            return Vec::new();
        };
        self.evaluation.with(|e| match e {
            Some(Ok(e)) => super::evaluate_panel::errors_of(e, &prompt),
            _ => Vec::new(),
        })
    }

    /// `prompts` and then the adapted prompts on the chart, by the name their curves have (a
    /// moment query may name either).
    pub fn with_adapted_names(self, mut prompts: Vec<String>) -> Vec<String> {
        let shown = self.adapters.get();
        self.adapter_infos.with(|infos| {
            for info in infos {
                if shown.iter().any(|(id, _)| *id == info.report.id) {
                    prompts.push(investigator_core::adapt::adapted_name(&info.report.prompt));
                }
            }
        });
        prompts
    }

    /// Replaces the prompt list: trimmed, blanks and repeats dropped.
    pub fn set_prompts(self, list: Vec<String>) {
        let mut seen = HashSet::new();
        let list: Vec<String> = list
            .into_iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty() && seen.insert(p.clone()))
            .collect();
        self.prompts.set(list);
    }

    /// The chart's vertical axis: what its values are.
    pub fn y_label(self) -> &'static str {
        let difference = self.difference.get() && self.compare.with(|c| c.is_some());
        match (self.softmax.get(), difference) {
            (false, false) => "cosine similarity",
            (true, false) => "probability",
            (false, true) => "cosine, first − second",
            (true, true) => "probability, first − second",
        }
    }

    /// What the page calls `model` (`None`: the default), tracking the list of models.
    pub fn model_name(self, model: Option<&str>) -> String {
        self.models.with(|list| model_label(list, model))
    }

    /// Seconds from the start of the video to `frame`; reading it tracks the video's info.
    pub fn time_of(self, frame: u64) -> f64 {
        self.player.info.with(|i| i.time_s(frame))
    }
}

/// The label of model `id` (`None`: the default, the list's first), else the id itself.
fn model_label(list: &[ModelChoice], id: Option<&str>) -> String {
    match id {
        None => list
            .first()
            .map_or("default model".into(), |m| m.label.clone()),
        Some(id) => list
            .iter()
            .find(|m| m.id == id)
            .map_or(id.to_string(), |m| m.label.clone()),
    }
}

/// The moments of `query` on the view's curves of its prompts, which must be on the list.
fn query_moments(
    query: &MomentQuery,
    series: &ScoreSeries,
    prompts: &[String],
    adapted: &[(String, f64)],
    colors: &HashMap<String, usize>,
    (smoothing, softmax): (usize, bool),
    fps: f64,
) -> Result<Moments, String> {
    let mut curves = view_curves(series, prompts, colors, smoothing, softmax);
    curves.extend(adapted_curves(series, adapted, colors, smoothing));
    let curve = |prompt: &str| {
        curves
            .iter()
            .find(|c| c.prompt == prompt)
            .map(|c| c.values.as_slice())
            .ok_or_else(|| {
                format!("add the prompt {prompt:?} to the list to use it in a moment query")
            })
    };
    let positive = query
        .all_of
        .iter()
        .map(|c| curve(&c.prompt))
        .collect::<Result<Vec<_>, _>>()?;
    let negative = query
        .none_of
        .iter()
        .map(|c| curve(&c.prompt))
        .collect::<Result<Vec<_>, _>>()?;
    find_moments(query, &positive, &negative, fps, &series.cuts).map_err(|e| e.to_string())
}
