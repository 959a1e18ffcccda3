//! The investigation panel beside the player: the similarity chart (click or drag to seek,
//! hover to read every prompt's score, wheel to zoom), live prompts, view controls, search,
//! share links, export, moments (bands on the chart, a list to play or download as clips),
//! scene cuts and keyboard shortcuts.
//!
//! [`Investigator`] lays out the chart and the prompts beside the player, and [`Panels`] the
//! search, moments and evaluate panels (as tabs) under it; they share one [`Investigation`]
//! state, one component per file, each file keeping its browser-only (`hydrate`) code beside
//! it.

mod adapt;
#[cfg(feature = "hydrate")]
mod chart_hook;
mod chart_view;
mod evaluate_panel;
mod heatmap;
mod keys;
mod labels;
#[cfg(feature = "hydrate")]
mod loading;
mod moments_panel;
mod prompts;
mod readout;
mod search;
mod share;
mod state;
#[cfg(feature = "hydrate")]
mod thumbnails;
mod view_controls;

use leptos::prelude::*;

use self::chart_view::ChartView;
use self::evaluate_panel::EvaluatePanel;
pub use self::heatmap::{HeatmapControls, HeatmapOverlay, HeatmapState};
use self::keys::{HelpButton, HelpDialog};
use self::labels::LabelTrack;
pub use self::labels::PlotArea;
use self::moments_panel::MomentsPanel;
use self::prompts::PromptList;
use self::search::SearchPanel;
use self::share::ShareButtons;
pub use self::state::Investigation;
use self::view_controls::ViewControls;
use crate::status::IndexStatusLine;
pub use investigator_core::curves::{adapted_curves, compared_curves, curves_csv, view_curves};
use investigator_core::moments::MomentQuery;

/// What a share link carries besides the frame: `p` (repeated), `smooth`, `view`, `m`, the
/// moment query (JSON), `model`, `compare` (a second model), `diff` (A − B view), `eval`
/// (the evaluated prompt) and `heat` (the heatmap's prompt; `heatm=b`: the compared model's).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewParams {
    /// `None`: start from the config's prompts.
    pub prompts: Option<Vec<String>>,
    pub smooth: usize,
    pub softmax: bool,
    pub moments: Option<MomentQuery>,
    /// `None`: the server's default model.
    pub model: Option<String>,
    /// A second model drawn beside the first (dashed), or subtracted from it.
    pub compare: Option<String>,
    /// Plot the first model minus the second, per prompt.
    pub difference: bool,
    /// The prompt whose evaluation the page shows (`eval`): evaluated as the page opens.
    pub evaluate: Option<String>,
    /// The prompt of the heatmap over the frame (`heat`): shown as the page opens.
    pub heat: Option<String>,
    /// The heatmap is the compared model's (`heatm=b`).
    pub heat_compared: bool,
    /// Adapted prompts (`ad=ID` or `ad=ID:ALPHA`, repeated): their stored adapters' ids and
    /// the blend each is drawn at (`None`: the adapter's own).
    pub adapters: Vec<(String, Option<f64>)>,
    /// The panel shown under the player (`tab`).
    pub panel: Option<Panel>,
}

impl ViewParams {
    /// Reads the query; values that make no sense fall back to the defaults.
    pub fn parse(prompts: Option<Vec<String>>, smooth: Option<&str>, view: Option<&str>) -> Self {
        Self::parse_with_moments(prompts, smooth, view, None)
    }

    /// Also reads `m`, a moment query as JSON; one that does not parse is left out.
    pub fn parse_with_moments(
        prompts: Option<Vec<String>>,
        smooth: Option<&str>,
        view: Option<&str>,
        moments: Option<&str>,
    ) -> Self {
        let moments = moments
            .and_then(|m| serde_json::from_str::<MomentQuery>(m).ok())
            .filter(|q| !q.all_of.is_empty());
        let prompts = prompts
            .map(|ps| {
                ps.into_iter()
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .take(investigator_core::requests::MAX_PROMPTS)
                    .collect::<Vec<_>>()
            })
            .filter(|ps| !ps.is_empty());
        Self {
            prompts,
            smooth: smooth
                .and_then(|s| s.parse().ok())
                .filter(|&s| s <= MAX_SMOOTH)
                .unwrap_or(1),
            softmax: view == Some("softmax"),
            moments,
            ..Self::default()
        }
    }

    /// Also reads `eval`, the evaluated prompt.
    pub fn with_evaluation(self, prompt: Option<&str>) -> Self {
        Self {
            evaluate: prompt.map(|p| p.trim().to_string()).filter(|p| {
                !p.is_empty() && p.chars().count() <= investigator_core::requests::MAX_PROMPT_CHARS
            }),
            ..self
        }
    }

    /// Also reads `ad` (repeated): adapted prompts, `ID` or `ID:ALPHA`; ids that are not ids
    /// and blends outside 0 to 1 are left out.
    pub fn with_adapters(self, values: Option<Vec<String>>) -> Self {
        let adapters = values
            .unwrap_or_default()
            .iter()
            .filter_map(|v| {
                let (id, alpha) = match v.split_once(':') {
                    Some((id, alpha)) => (
                        id,
                        Some(
                            alpha
                                .parse::<f64>()
                                .ok()
                                .filter(|a| (0.0..=1.0).contains(a))?,
                        ),
                    ),
                    None => (v.as_str(), None),
                };
                investigator_core::adapt::is_adapter_id(id).then(|| (id.to_string(), alpha))
            })
            .take(investigator_core::requests::MAX_PROMPTS)
            .collect();
        Self { adapters, ..self }
    }

    /// Also reads `tab`, the panel shown under the player.
    pub fn with_panel(self, tab: Option<&str>) -> Self {
        Self {
            panel: Panel::ALL.into_iter().find(|p| Some(p.name()) == tab),
            ..self
        }
    }

    /// Also reads `heat`, the heatmap's prompt, and `heatm` (`b`: the compared model's).
    pub fn with_heatmap(self, prompt: Option<&str>, model: Option<&str>) -> Self {
        Self {
            heat: prompt.map(|p| p.trim().to_string()).filter(|p| {
                !p.is_empty() && p.chars().count() <= investigator_core::requests::MAX_PROMPT_CHARS
            }),
            heat_compared: model == Some("b"),
            ..self
        }
    }

    /// Also reads `model`, `compare` and `diff`; an id that is not one is left out (the server
    /// refuses a well-formed id it does not have, and the page says so).
    pub fn with_models(
        self,
        model: Option<&str>,
        compare: Option<&str>,
        diff: Option<&str>,
    ) -> Self {
        let id = |m: Option<&str>| {
            m.map(str::trim)
                .filter(|m| investigator_core::types::is_valid_model_id(m))
                .map(str::to_string)
        };
        let model = id(model);
        let compare = id(compare).filter(|c| Some(c) != model.as_ref());
        Self {
            difference: compare.is_some() && diff == Some("1"),
            model,
            compare,
            ..self
        }
    }
}

/// Largest smoothing window offered, in frames.
pub const MAX_SMOOTH: usize = 10_000;

/// The panels under the player, one shown at a time (`tab` in the share link).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Panel {
    Search,
    Moments,
    Evaluate,
}

impl Panel {
    pub const ALL: [Panel; 3] = [Panel::Search, Panel::Moments, Panel::Evaluate];

    pub fn name(self) -> &'static str {
        match self {
            Self::Search => "search",
            Self::Moments => "moments",
            Self::Evaluate => "evaluate",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Search => "Search",
            Self::Moments => "Moments",
            Self::Evaluate => "Evaluate",
        }
    }

    /// The panel a link opens on: the one it names, else what it asks to see (an
    /// evaluation, adapted prompts, moments), else search.
    pub fn first_for(initial: &ViewParams) -> Self {
        if let Some(panel) = initial.panel {
            panel
        } else if initial.evaluate.is_some() || !initial.adapters.is_empty() {
            Self::Evaluate
        } else if initial.moments.is_some() {
            Self::Moments
        } else {
            Self::Search
        }
    }
}

/// The panels under the player: search, moments, evaluate (with adapted prompts), as tabs, so
/// the one in use sits beside the video at any window height.
#[component]
pub fn Panels(inv: Investigation) -> impl IntoView {
    let panel = inv.panel;
    let tabs = Panel::ALL
        .iter()
        .map(|&p| {
            view! {
                <button class="tab" id=format!("tab-{}", p.name()) role="tab"
                    aria-selected=move || (panel.get() == p).to_string()
                    on:click=move |_| panel.set(p)>{p.title()}</button>
            }
        })
        .collect_view();
    let shown = move |p: Panel| move || panel.get() != p;
    // The link (and so a reload) keeps the panel.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let p = panel.get();
        crate::browser::set_query_param("tab", (p != Panel::Search).then_some(p.name()));
    });
    view! {
        <section id="panels" class="tabbed">
            <div class="tabs" role="tablist">{tabs}</div>
            <div class="tab-panel" role="tabpanel" hidden=shown(Panel::Search)><SearchPanel inv/></div>
            <div class="tab-panel" role="tabpanel" hidden=shown(Panel::Moments)><MomentsPanel inv/></div>
            <div class="tab-panel" role="tabpanel" hidden=shown(Panel::Evaluate)><EvaluatePanel inv/></div>
        </section>
    }
}

/// The panel of `inv` (made by the page, which shares it with the player's heatmap).
#[component]
pub fn Investigator(inv: Investigation, initial: ViewParams) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    loading::start(inv, initial.prompts.is_none());
    #[cfg(not(feature = "hydrate"))]
    let _ = initial;
    let scores_error = inv.scores_error;
    view! {
        <section id="investigator" class="investigator">
            <IndexStatusLine status=inv.status/>
            {move || inv.compare.with(|c| c.is_some()).then(|| view! {
                <IndexStatusLine status=inv.status_b compared=true/>
            })}
            {move || scores_error.get().map(|e| view! { <p class="error" id="scores-error" role="alert">{e}</p> })}
            {move || inv.model_error.get().map(|e| view! { <p class="error" id="model-error" role="alert">{e}</p> })}
            <ChartView inv/>
            <LabelTrack inv/>

            {view! {
            <div class="panels">
                <div class="panel">
                    <PromptList inv/>
                    <ViewControls inv/>
                    <div class="actions">
                        <ShareButtons inv/>
                        <HelpButton inv/>
                    </div>
                </div>
            </div>
            }.into_any()}
            <HelpDialog inv/>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_link_parameters_are_read_safely() {
        let v = ViewParams::parse(
            Some(vec!["a cat".into(), "  ".into()]),
            Some("5"),
            Some("softmax"),
        );
        assert_eq!(v.prompts, Some(vec!["a cat".to_string()]));
        assert_eq!((v.smooth, v.softmax), (5, true));
        let bad = ViewParams::parse(Some(vec![" ".into()]), Some("-3"), Some("weird"));
        assert_eq!(
            bad,
            ViewParams {
                prompts: None,
                smooth: 1,
                softmax: false,
                ..ViewParams::default()
            }
        );
        let two =
            ViewParams::parse(None, None, None).with_models(Some("base"), Some("tuned"), Some("1"));
        assert_eq!(
            (two.model.as_deref(), two.compare.as_deref(), two.difference),
            (Some("base"), Some("tuned"), true)
        );
        // A path is not a model id; a model compared with itself, or a difference without a
        // second model, is nothing.
        let odd =
            ViewParams::parse(None, None, None).with_models(Some("../x"), Some("a"), Some("1"));
        assert_eq!(
            (odd.model, odd.compare.as_deref(), odd.difference),
            (None, Some("a"), true)
        );
        let same = ViewParams::parse(None, None, None).with_models(Some("a"), Some("a"), Some("1"));
        assert_eq!((same.compare, same.difference), (None, false));
        assert_eq!(ViewParams::parse(None, Some("99999999"), None).smooth, 1);
        // A moment query travels as JSON; a broken one is dropped.
        let query = MomentQuery::prompt("a dog");
        let json = serde_json::to_string(&query).unwrap();
        let with = ViewParams::parse_with_moments(None, None, None, Some(&json));
        assert_eq!(with.moments, Some(query));
        assert_eq!(
            ViewParams::parse_with_moments(None, None, None, Some("{oops")).moments,
            None
        );
        let evaluated = ViewParams::parse(None, None, None).with_evaluation(Some(" a door "));
        assert_eq!(evaluated.evaluate.as_deref(), Some("a door"));
        assert_eq!(
            ViewParams::parse(None, None, None)
                .with_evaluation(Some("  "))
                .evaluate,
            None
        );
        let heat =
            ViewParams::parse(None, None, None).with_heatmap(Some(" a red door "), Some("b"));
        assert_eq!(
            (heat.heat.as_deref(), heat.heat_compared),
            (Some("a red door"), true)
        );
        let long = "x".repeat(investigator_core::requests::MAX_PROMPT_CHARS + 1);
        assert_eq!(
            ViewParams::parse(None, None, None)
                .with_heatmap(Some(&long), None)
                .heat,
            None
        );
    }
}
