//! Is the model right? The Evaluate panel: each model's metrics for every labelled prompt
//! (AP, ROC AUC, the best-F1 threshold with its precision and recall, events matched at IoU
//! 0.5), the difference in AP between two compared models with its 95 % interval, the chosen
//! prompt's precision–recall curve, its false positives and false negatives as hatched bands on
//! the chart and as a list (click one to seek to its first frame; `e` / Shift+`e` step through
//! them), a labelled dataset to download, and prompts adapted from the labels (`adapt`).
//!
//! Invariant: the numbers are the server's (the engine's evaluation), the same code as the CLI's
//! `evaluate`; the panel only shows them (each cell carries its exact value as `data-value`).

use leptos::prelude::*;

use super::Investigation;
use crate::player;
use investigator_core::evaluation::{ErrorKind, ErrorSpan, Evaluation, PromptEvaluation};
use investigator_core::types::format_time;

/// The errors of `prompt` by the first model, as the chart draws them.
pub fn errors_of(evaluation: &Evaluation, prompt: &str) -> Vec<ErrorSpan> {
    evaluation
        .models
        .first()
        .and_then(|m| m.prompts.iter().find(|p| p.prompt == prompt))
        .map(|p| p.errors.clone())
        .unwrap_or_default()
}

fn cell(metric: &'static str, value: Option<f64>, digits: usize) -> impl IntoView {
    let text = value.map_or_else(|| "—".to_string(), |v| format!("{v:.digits$}"));
    let exact = value.map_or_else(|| "null".to_string(), |v| v.to_string());
    view! { <td data-metric=metric data-value=exact>{text}</td> }
}

fn row(model: &str, p: &PromptEvaluation) -> impl IntoView {
    let best = p.best_f1;
    let events = p.events.clone();
    let notes = p.notes.join("; ");
    view! {
        <tr data-model=model.to_string() data-prompt=p.prompt.clone() title=notes>
            <td>{p.prompt.clone()}</td>
            <td class="model">{model.to_string()}</td>
            {cell("ap", p.ap, 3)}
            {cell("roc_auc", p.roc_auc, 3)}
            {cell("f1", best.map(|b| b.f1), 3)}
            {cell("threshold", best.map(|b| b.threshold), 4)}
            {cell("precision", best.map(|b| b.precision), 3)}
            {cell("recall", best.map(|b| b.recall), 3)}
            <td data-metric="positives" data-value=p.positives.to_string()>{p.positives}</td>
            <td data-metric="negatives" data-value=p.negatives.to_string()>{p.negatives}</td>
            {cell("event_precision", events.as_ref().and_then(|e| e.precision), 2)}
            {cell("event_recall", events.as_ref().and_then(|e| e.recall), 2)}
        </tr>
    }
}

/// The adapted prompt's row beside the zero-shot ones (its out-of-fold figures, from the
/// adapter's report), when `prompt` has an adapter on the chart.
fn adapted_row(inv: Investigation, prompt: &str) -> Option<AnyView> {
    let report = inv.adapter_infos.with(|list| {
        list.iter()
            .find(|a| a.report.prompt == prompt)
            .map(|a| a.report.clone())
    })?;
    let shown = inv
        .adapters
        .with(|a| a.iter().any(|(id, _)| *id == report.id));
    if !shown {
        return None;
    }
    let m = report.adapted;
    let label = format!(
        "{} adapted ({}, out of fold)",
        report.model,
        report.method.name()
    );
    Some(
        view! {
            <tr data-model="adapted" data-prompt=prompt.to_string() class="adapted-row">
                <td>{prompt.to_string()}</td>
                <td class="model">{label}</td>
                {cell("ap", m.ap, 3)}
                {cell("roc_auc", m.roc_auc, 3)}
                {cell("f1", m.best_f1, 3)}
                <td></td><td></td><td></td><td></td><td></td><td></td><td></td>
            </tr>
        }
        .into_any(),
    )
}

#[component]
pub fn EvaluatePanel(inv: Investigation) -> impl IntoView {
    let Investigation {
        evaluation,
        evaluated_prompt,
        labels,
        ..
    } = inv;
    let running = RwSignal::new(false);
    let order_by_score = RwSignal::new(false);
    let run = move |_| {
        #[cfg(feature = "hydrate")]
        client::evaluate(inv, running);
    };
    let download = move |_| {
        #[cfg(feature = "hydrate")]
        client::download_dataset(inv);
    };
    let prompt_options = move || {
        labels
            .with(|l| l.prompts())
            .into_iter()
            .map(|p| view! { <option value=p.clone()>{p.clone()}</option> })
            .collect_view()
    };
    let table = move || {
        evaluation.get().map(|result| match result {
            Ok(e) => {
                // Each prompt's rows together, one per model: the models side by side.
                let prompts: Vec<String> = e
                    .models
                    .first()
                    .map(|m| m.prompts.iter().map(|p| p.prompt.clone()).collect())
                    .unwrap_or_default();
                let rows = prompts
                    .iter()
                    .flat_map(|prompt| {
                        e.models
                            .iter()
                            .filter_map(move |m| {
                                m.prompts
                                    .iter()
                                    .find(|p| &p.prompt == prompt)
                                    .map(|p| row(&m.model, p).into_any())
                            })
                            .chain(adapted_row(inv, prompt))
                    })
                    .collect::<Vec<_>>()
                    .collect_view();
                let comparison = (!e.comparison.is_empty()).then(|| {
                    let first = e.models.first().map(|m| m.model.clone()).unwrap_or_default();
                    let second = e.models.get(1).map(|m| m.model.clone()).unwrap_or_default();
                    view! {
                        <table id="evaluate-comparison" class="metrics">
                            <caption>{format!("AP of {first} minus {second}, 95 % block-bootstrap interval")}</caption>
                            <thead><tr><th>"prompt"</th><th>"AP difference"</th><th>"from"</th><th>"to"</th><th></th></tr></thead>
                            <tbody>
                            {e.comparison.iter().map(|c| {
                                let (low, high) = c.interval.map_or((None, None), |(l, h)| (Some(l), Some(h)));
                                view! {
                                    <tr data-prompt=c.prompt.clone()>
                                        <td>{c.prompt.clone()}</td>
                                        {cell("difference", c.difference, 3)}
                                        {cell("low", low, 3)}
                                        {cell("high", high, 3)}
                                        <td class="note">{format!("{} frames", c.frames)}</td>
                                    </tr>
                                }
                            }).collect_view()}
                            </tbody>
                        </table>
                    }
                });
                view! {
                    <table id="evaluate-table" class="metrics">
                        <thead><tr>
                            <th>"prompt"</th><th>"model"</th><th>"AP"</th><th>"ROC AUC"</th>
                            <th>"best F1"</th><th>"at"</th><th>"P"</th><th>"R"</th>
                            <th>"pos"</th><th>"neg"</th><th>"events P"</th><th>"events R"</th>
                        </tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                    {comparison}
                    {(e.ignored_frames > 0).then(|| view! { <p class="note">{format!("{} frames ignored", e.ignored_frames)}</p> })}
                }
                .into_any()
            }
            Err(message) => view! { <p id="evaluate-error" class="error" role="alert">{message}</p> }.into_any(),
        })
    };
    // The chosen prompt's errors (first model), longest or most wrong first.
    let errors = move || {
        let prompt = evaluated_prompt.get()?;
        let mut spans = evaluation.with(|e| {
            e.as_ref()
                .and_then(|e| e.as_ref().ok())
                .map(|e| errors_of(e, &prompt))
        })?;
        if order_by_score.get() {
            spans.retain(|s| s.kind == ErrorKind::FalsePositive);
            spans.sort_by(|a, b| b.worst_score.total_cmp(&a.worst_score));
        } else {
            spans.sort_by(|a, b| (b.end - b.start).cmp(&(a.end - a.start)));
        }
        spans.truncate(12);
        Some(
            spans
                .into_iter()
                .map(|s| {
                    let kind = match s.kind {
                        ErrorKind::FalsePositive => "false positive",
                        ErrorKind::FalseNegative => "false negative",
                    };
                    let start = s.start;
                    let thumb = move || inv.thumbs.with(|t| t.get(&s.worst_frame).cloned()).map(|url| view! { <img src=url alt=format!("frame {}", s.worst_frame)/> });
                    let text = format!(
                        "{kind}: frames {}–{} ({} – {}) · {} {:.3} at {}",
                        s.start,
                        s.end,
                        format_time(inv.time_of(s.start)),
                        format_time(inv.time_of(s.end + 1)),
                        if s.kind == ErrorKind::FalsePositive { "highest" } else { "lowest" },
                        s.worst_score,
                        s.worst_frame
                    );
                    #[cfg(feature = "hydrate")]
                    super::thumbnails::thumbnail(inv, s.worst_frame);
                    view! {
                        <li class="error-span" data-kind=if s.kind == ErrorKind::FalsePositive { "fp" } else { "fn" }
                            data-start=s.start.to_string() data-end=s.end.to_string()>
                            <button class="hit" on:click=move |_| player::seek(inv.player, start)>{thumb}<span>{text}</span></button>
                        </li>
                    }
                })
                .collect_view(),
        )
    };
    #[cfg(feature = "hydrate")]
    client::pr_effect(inv);
    view! {
        <div class="panel" id="evaluate-panel">
            <h3>"Evaluate"</h3>
            <p class="evaluate-tools">
                <button id="evaluate-run" on:click=run disabled=move || running.get()>
                    {move || if running.get() { "Evaluating…" } else { "Evaluate" }}
                </button>
                " errors of "
                <select id="evaluate-prompt" prop:value=move || evaluated_prompt.get().unwrap_or_default()
                    on:change=move |ev| {
                        let p = event_target_value(&ev);
                        evaluated_prompt.set((!p.is_empty()).then_some(p));
                    }>
                    <option value="">"—"</option>
                    {prompt_options}
                </select>
                <label><input id="error-order" type="checkbox" prop:checked=move || order_by_score.get()
                    on:change=move |ev| order_by_score.set(event_target_checked(&ev))/>" highest-scoring false positives first"</label>
                <button id="dataset-download" on:click=download>"Download dataset (zip)"</button>
            </p>
            {table}
            <canvas id="pr-curve" class="pr-curve"
                hidden=move || !evaluation.with(|e| matches!(e, Some(Ok(_))))></canvas>
            <ol id="error-list" class="results">{errors}</ol>
            {move || inv.dataset_note.get().map(|n| view! { <p id="dataset-note" class="note">{n}</p> })}
            <super::adapt::AdaptSection inv/>
        </div>
    }
}

/// A share link that names an evaluated prompt (`eval`) evaluates as soon as the index of the
/// model (and of the compared one) is done (browser only).
#[cfg(feature = "hydrate")]
pub fn evaluate_when_ready(inv: Investigation) {
    if inv.evaluated_prompt.get_untracked().is_none() {
        return;
    }
    let running = RwSignal::new(false);
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) {
            return true;
        }
        let done =
            |status: RwSignal<Option<Result<investigator_core::types::IndexStatus, String>>>| {
                status.with(|s| {
                matches!(s, Some(Ok(s)) if s.state == investigator_core::types::IndexState::Done)
            })
            };
        // Both models, when two are compared: the second's index must be there too.
        let ready = done(inv.status) && (inv.compare.with(Option::is_none) || done(inv.status_b));
        if ready && inv.evaluation.get_untracked().is_none() {
            client::evaluate(inv, running);
            return true;
        }
        false
    });
}

#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;
    use leptos::task::spawn_local;

    use super::Investigation;
    use crate::api::error_text;
    use crate::browser;

    /// Asks the server for the evaluation of the first model (and the compared one).
    pub fn evaluate(inv: Investigation, running: RwSignal<bool>) {
        let video = inv.player.info.with_untracked(|i| i.id.clone());
        let (model, compare) = (inv.model.get_untracked(), inv.compare.get_untracked());
        running.set(true);
        spawn_local(async move {
            let answer = crate::api::evaluate(video, model, compare, Vec::new())
                .await
                .map_err(|e| error_text(&e));
            if let Ok(e) = &answer {
                // Keep the prompt chosen (or the link's), else the first evaluated.
                let first = e
                    .models
                    .first()
                    .and_then(|m| m.prompts.first())
                    .map(|p| p.prompt.clone());
                let chosen = inv.evaluated_prompt.get_untracked();
                let known = e
                    .models
                    .first()
                    .is_some_and(|m| m.prompts.iter().any(|p| Some(&p.prompt) == chosen.as_ref()));
                if !known {
                    inv.evaluated_prompt.set(first);
                }
            }
            inv.evaluation.set(Some(answer));
            running.set(false);
        });
    }

    /// Draws the chosen prompt's precision–recall curves whenever they change.
    pub fn pr_effect(inv: Investigation) {
        Effect::new(move |_| {
            let Some(canvas) = leptos::prelude::document()
                .get_element_by_id("pr-curve")
                .and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlCanvasElement>(e).ok())
            else {
                return;
            };
            let prompt = inv.evaluated_prompt.get().unwrap_or_default();
            let color = inv.colors.with(|c| {
                c.get(&prompt)
                    .map_or("#ffffff", |&slot| investigator_core::chart::color(slot))
            });
            inv.evaluation.with(|e| {
                let Some(Ok(e)) = e else {
                    return;
                };
                let curves: Vec<Vec<(f64, f64)>> = e
                    .models
                    .iter()
                    .map(|m| {
                        m.prompts
                            .iter()
                            .find(|p| p.prompt == prompt)
                            .map(|p| p.pr_curve.clone())
                            .unwrap_or_default()
                    })
                    .collect();
                let lines: Vec<crate::chart::PrLine> = curves
                    .iter()
                    .enumerate()
                    .map(|(i, points)| crate::chart::PrLine {
                        color,
                        dashed: i > 0,
                        points,
                    })
                    .collect();
                let _ = canvas.set_attribute("data-lines", &lines.len().to_string());
                crate::chart::draw_pr(&canvas, &lines);
            });
        });
    }

    /// Builds the labelled dataset on the server and downloads it as a zip.
    pub fn download_dataset(inv: Investigation) {
        let video = inv.player.info.with_untracked(|i| i.id.clone());
        let mut url = format!("{}?video={video}", investigator_core::routes::DATASET_URL);
        if let Some(model) = inv.model.get_untracked() {
            url.push_str(&format!("&model={model}"));
        }
        if let Some(compare) = inv.compare.get_untracked() {
            url.push_str(&format!("&compare={compare}"));
        }
        inv.dataset_note.set(Some("building the dataset…".into()));
        spawn_local(async move {
            let note = match browser::post_download(&url, "dataset.zip").await {
                Ok(name) => format!("downloaded {name}"),
                Err(e) => e,
            };
            inv.dataset_note.set(Some(note));
        });
    }
}
