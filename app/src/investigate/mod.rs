//! The investigation panel beside the player: the similarity chart (click or drag to seek,
//! hover to read every prompt's score, wheel to zoom), live prompts, view controls, search,
//! share links, export, moments (bands on the chart, a list to play or download as clips),
//! scene cuts and keyboard shortcuts.
//!
//! [`Investigator`] makes the shared [`Investigation`] state and lays out the parts, one
//! component per file; each file keeps its browser-only (`hydrate`) code beside it.

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
pub use investigator_core::curves::{compared_curves, curves_csv, view_curves};
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
                <SearchPanel inv/>
                <MomentsPanel inv/>
                <EvaluatePanel inv/>
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
