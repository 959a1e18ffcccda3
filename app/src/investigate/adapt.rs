//! Adapt, in the Evaluate panel: a labelled prompt adapted from the labels in the background
//! (probe or Tip-Adapter, from the text or from zero), then zero-shot against adapted on frames
//! the adapter never trained on (AP, ROC AUC, best F1, their differences with the
//! block-bootstrap interval), the α slider (the chart's adapted curve and the metrics follow),
//! and two lists that seek to their exact frame: where to label next, and which labels look
//! wrong.
//!
//! Invariants: every number is the server's report (the same code as the CLI's `adapt`); at
//! the cross-validated α the adapted row is the nested figure (λ and α chosen inside each
//! fold), at any other α the figures with that α in every fold; an adapter whose labels
//! changed says so until its retraining is done.

use leptos::prelude::*;

use super::Investigation;
use crate::player;
use investigator_core::adapt::{AdaptReport, AdaptStatus, Anchor, Difference, Method, Metrics};
use investigator_core::types::format_time;

fn cell(metric: &'static str, value: Option<f64>) -> impl IntoView {
    let text = value.map_or_else(|| "—".to_string(), |v| format!("{v:.3}"));
    let exact = value.map_or_else(|| "null".to_string(), |v| v.to_string());
    view! { <td data-metric=metric data-value=exact>{text}</td> }
}

fn difference_cell(metric: &'static str, d: Option<Difference>) -> impl IntoView {
    let text = d.map_or_else(
        || "—".to_string(),
        |d| format!("{:+.3} [{:+.3}, {:+.3}]", d.point, d.low, d.high),
    );
    let exact = d.map_or_else(
        || "null".to_string(),
        |d| {
            serde_json::json!({"point": d.point, "mean": d.mean, "low": d.low, "high": d.high})
                .to_string()
        },
    );
    view! { <td data-metric=metric data-value=exact>{text}</td> }
}

/// The stored adapter of `prompt` on the page: its report, whether it is stale.
fn adapter_of(inv: Investigation, prompt: &str) -> Option<(AdaptReport, bool)> {
    inv.adapter_infos.with(|list| {
        list.iter()
            .find(|a| a.report.prompt == prompt)
            .map(|a| (a.report.clone(), a.stale))
    })
}

/// The α the chart draws `id` at.
fn alpha_of(inv: Investigation, id: &str) -> Option<f64> {
    inv.adapters.with(|a| {
        a.iter()
            .find(|(i, _)| i == id)
            .map(|(_, alpha)| *alpha)
            .filter(|a| a.is_finite())
    })
}

#[component]
pub fn AdaptSection(inv: Investigation) -> impl IntoView {
    let prompt = RwSignal::new(String::new());
    let method = RwSignal::new(Method::Probe);
    let from = RwSignal::new(Anchor::Text);
    let error = RwSignal::new(None::<String>);
    // The chosen prompt: the one asked for, else the evaluated one, else the first labelled.
    let chosen = move || {
        let asked = prompt.get();
        let labelled = inv.labels.with(|l| l.prompts());
        if !asked.is_empty() && labelled.contains(&asked) {
            return Some(asked);
        }
        inv.evaluated_prompt
            .get()
            .filter(|p| labelled.contains(p))
            .or_else(|| labelled.first().cloned())
    };
    let run = move |_| {
        let Some(p) = chosen() else {
            error.set(Some(
                "label a prompt first: Shift-drag across the chart, then Label".into(),
            ));
            return;
        };
        error.set(None);
        #[cfg(feature = "hydrate")]
        client::start(inv, p, method.get_untracked(), from.get_untracked(), error);
        #[cfg(not(feature = "hydrate"))]
        let _ = p;
    };
    let options = move || {
        let current = chosen().unwrap_or_default();
        inv.labels
            .with(|l| l.prompts())
            .into_iter()
            .map(|p| {
                let selected = p == current;
                view! { <option value=p.clone() selected=selected>{p.clone()}</option> }
            })
            .collect_view()
    };
    let job = move || {
        let p = chosen()?;
        inv.adapt_jobs.with(|j| j.get(&p).cloned())
    };
    let running = move || matches!(job(), Some(AdaptStatus::Running { .. }));
    let progress = move || match job() {
        Some(AdaptStatus::Running { phase, fraction }) => Some(view! {
            <p id="adapt-progress" class="note" data-fraction=fraction.to_string()>
                <progress max="1" value=fraction.to_string()></progress>
                {format!(" {phase}…")}
            </p>
        }),
        _ => None,
    };
    let failure = move || {
        let message = error.get().or_else(|| match job() {
            Some(AdaptStatus::Failed(message)) => Some(message),
            _ => None,
        })?;
        Some(view! { <p id="adapt-error" class="error" role="alert">{message}</p> })
    };
    let result = move || {
        let p = chosen()?;
        let (report, stale) = adapter_of(inv, &p)?;
        let id = report.id.clone();
        let alpha = alpha_of(inv, &id).unwrap_or(report.alpha);
        let at_chosen = (alpha - report.alpha).abs() < 1e-9;
        let (adapted, differences): (Metrics, Option<investigator_core::adapt::Differences>) =
            if at_chosen {
                (report.adapted, Some(report.differences))
            } else {
                (
                    report
                        .at_alpha(alpha)
                        .map(|p| p.metrics)
                        .unwrap_or_default(),
                    None,
                )
            };
        let d = differences.unwrap_or_default();
        let setting = match (report.lambda, report.tip_beta, report.tip_alpha) {
            (Some(lambda), _, _) => format!("λ {lambda:.3}"),
            (_, Some(beta), Some(weight)) => format!("β {beta}, cache weight {weight:.2}"),
            _ => String::new(),
        };
        let summary = format!(
            "{} from {}, {setting}; tested on {}; trained on {} frames of the prompt ({} segments) and {} others",
            match report.method {
                Method::Probe => "probe",
                Method::Tip => "Tip-Adapter",
            },
            report.from.name(),
            report.tested_on,
            report.train.positives,
            report.train.positive_segments,
            report.train.negatives,
        );
        let retraining = running();
        let slider_id = id.clone();
        let on_alpha = move |ev| {
            let value: f64 = event_target_value(&ev).parse().unwrap_or(f64::NAN);
            if (0.0..=1.0).contains(&value) {
                let id = slider_id.clone();
                inv.adapters
                    .update(|list| match list.iter_mut().find(|(i, _)| *i == id) {
                        Some(entry) => entry.1 = value,
                        None => list.push((id, value)),
                    });
            }
        };
        let label_next = report
            .label_next
            .iter()
            .map(|l| {
                let frame = l.frame;
                #[cfg(feature = "hydrate")]
                super::thumbnails::thumbnail(inv, frame);
                let thumb = move || {
                    inv.thumbs
                        .with(|t| t.get(&frame).cloned())
                        .filter(|u| !u.is_empty())
                        .map(|url| view! { <img src=url alt=format!("frame {frame}")/> })
                };
                let text = format!(
                    "frame {frame} ({}) · adapted {:.2}, zero-shot {:.2} · {}",
                    format_time(inv.time_of(frame)),
                    l.score,
                    l.zero_shot,
                    l.reason
                );
                view! {
                    <li class="label-next" data-frame=frame.to_string()>
                        <button class="hit" on:click=move |_| player::seek(inv.player, frame)>{thumb}<span>{text}</span></button>
                    </li>
                }
            })
            .collect_view();
        let suspects = report
            .suspect
            .iter()
            .map(|s| {
                let start = s.start_frame;
                #[cfg(feature = "hydrate")]
                super::thumbnails::thumbnail(inv, start);
                let thumb = move || {
                    inv.thumbs
                        .with(|t| t.get(&start).cloned())
                        .filter(|u| !u.is_empty())
                        .map(|url| view! { <img src=url alt=format!("frame {start}")/> })
                };
                let text = format!(
                    "frames {}–{} ({} – {}) labelled {} · scored {:.2}",
                    s.start_frame,
                    s.end_frame,
                    format_time(inv.time_of(s.start_frame)),
                    format_time(inv.time_of(s.end_frame + 1)),
                    if s.positive { "as the prompt" } else { "not as the prompt" },
                    s.score
                );
                view! {
                    <li class="suspect" data-start=s.start_frame.to_string() data-end=s.end_frame.to_string()
                        data-positive=s.positive.to_string()>
                        <button class="hit" on:click=move |_| player::seek(inv.player, start)>{thumb}<span>{text}</span></button>
                    </li>
                }
            })
            .collect_view();
        let notes = report.notes.join("; ");
        Some(view! {
            <div id="adapt-result" data-id=id.clone() data-prompt=report.prompt.clone()
                data-alpha=alpha.to_string() data-chosen-alpha=report.alpha.to_string()>
                <p id="adapt-summary" class="note" title=notes>{summary}</p>
                {stale.then(|| view! {
                    <p id="adapt-stale" class="warn">
                        {if retraining { "The labels changed since it was trained: retraining…" } else { "The labels changed since it was trained: Adapt again to update it." }}
                    </p>
                })}
                <p class="adapt-alpha">
                    <label>"α (0 zero-shot, 1 adapted) "
                        <input id="adapt-alpha" type="range" min="0" max="1" step="0.1"
                            prop:value=alpha.to_string() on:input=on_alpha/>
                    </label>
                    <span id="adapt-alpha-value">{format!(" {alpha:.1}")}</span>
                    {if at_chosen { " (cross-validated)" } else { "" }}
                </p>
                <table id="adapt-table" class="metrics">
                    <thead><tr><th>"out of fold"</th><th>"AP"</th><th>"ROC AUC"</th><th>"best F1"</th></tr></thead>
                    <tbody>
                        <tr data-row="zero_shot"><td>"zero-shot"</td>
                            {cell("ap", report.zero_shot.ap)}{cell("roc_auc", report.zero_shot.roc_auc)}{cell("best_f1", report.zero_shot.best_f1)}</tr>
                        <tr data-row="adapted"><td>{if at_chosen { "adapted".to_string() } else { format!("adapted, α {alpha:.1}") }}</td>
                            {cell("ap", adapted.ap)}{cell("roc_auc", adapted.roc_auc)}{cell("best_f1", adapted.best_f1)}</tr>
                        {differences.map(|_| view! {
                            <tr data-row="difference"><td>"difference, 95 %"</td>
                                {difference_cell("ap", d.ap)}{difference_cell("roc_auc", d.roc_auc)}{difference_cell("best_f1", d.best_f1)}</tr>
                        })}
                    </tbody>
                </table>
                <p class="note">{if at_chosen {
                    "Adapted: λ and α chosen inside each fold, scored on the blocks that fold never saw; the interval resamples whole blocks."
                } else {
                    "With this α in every fold (the interval is given at the cross-validated α)."
                }}</p>
                <h4>"Label next"</h4>
                <ol id="label-next" class="results">{label_next}</ol>
                <h4>"Suspect labels"</h4>
                <ol id="suspects" class="results">{suspects}</ol>
            </div>
        })
    };
    view! {
        <div id="adapt" class="adapt">
            <h3>"Adapt"</h3>
            <p class="evaluate-tools">
                <select id="adapt-prompt" on:change=move |ev| prompt.set(event_target_value(&ev))>{options}</select>
                <select id="adapt-method" on:change=move |ev| {
                    method.set(Method::parse(&event_target_value(&ev)).unwrap_or_default());
                }>
                    <option value="probe">"probe"</option>
                    <option value="tip">"Tip-Adapter"</option>
                </select>
                <select id="adapt-from" on:change=move |ev| {
                    from.set(Anchor::parse(&event_target_value(&ev)).unwrap_or_default());
                }>
                    <option value="text">"held near the text"</option>
                    <option value="zero">"from zero"</option>
                </select>
                <button id="adapt-run" on:click=run disabled=running>
                    {move || if running() { "Adapting…" } else { "Adapt" }}
                </button>
            </p>
            {progress}
            {failure}
            {result}
        </div>
    }
}

#[cfg(feature = "hydrate")]
pub mod client {
    use leptos::prelude::*;
    use leptos::task::spawn_local;

    use super::Investigation;
    use crate::api::{adapt, error_text, get_adapt_status, get_adapters};
    use crate::browser;
    use investigator_core::adapt::{AdaptRequest, AdaptStatus, Anchor, Method};

    /// Starts adapting `prompt` and follows the job.
    pub fn start(
        inv: Investigation,
        prompt: String,
        method: Method,
        from: Anchor,
        error: RwSignal<Option<String>>,
    ) {
        let video = inv.player.info.with_untracked(|i| i.id.clone());
        let model = inv.model.get_untracked();
        let request = AdaptRequest {
            prompt: prompt.clone(),
            method,
            from,
            folds: None,
            hold_out_video: None,
        };
        spawn_local(async move {
            match adapt(video, model, request).await {
                Ok(status) => {
                    inv.adapt_jobs.update(|j| {
                        j.insert(prompt.clone(), status);
                    });
                    follow(inv, prompt).await;
                }
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    }

    /// Polls the job of `prompt` until it is done or failed; a finished adapter joins the chart.
    pub async fn follow(inv: Investigation, prompt: String) {
        let video = inv.player.info.with_untracked(|i| i.id.clone());
        let model = inv.model.get_untracked();
        loop {
            let status = match get_adapt_status(video.clone(), model.clone(), prompt.clone()).await
            {
                Ok(status) => status,
                Err(e) => AdaptStatus::Failed(error_text(&e)),
            };
            if inv.model.get_untracked() != model {
                return; // another model is shown now
            }
            let running = matches!(status, AdaptStatus::Running { .. });
            if let AdaptStatus::Done(info) = &status {
                let id = info.report.id.clone();
                let alpha = info.report.alpha;
                let info = info.clone();
                inv.adapter_infos.update(|list| {
                    list.retain(|a| a.report.id != id && a.report.prompt != info.report.prompt);
                    list.push(info);
                });
                inv.adapters
                    .update(|list| match list.iter_mut().find(|(i, _)| *i == id) {
                        // Retrained: its new cross-validated α.
                        Some(entry) => entry.1 = alpha,
                        None => list.push((id, alpha)),
                    });
                inv.evaluated_prompt.set(Some(prompt.clone()));
                inv.scores_refresh.update(|n| *n += 1);
            }
            inv.adapt_jobs.update(|j| {
                j.insert(prompt.clone(), status);
            });
            if !running {
                return;
            }
            browser::sleep_ms(250).await;
        }
    }

    /// The stored adapters of the video and model: listed once the model is known, and again
    /// when the labels change (a stale adapter retrains on the server: followed until done).
    pub fn load(inv: Investigation) {
        Effect::new(move |previous: Option<Option<String>>| {
            let model = inv.model.get();
            if previous.as_ref().is_some_and(|p| *p != model) {
                // Another model: its own adapters, none of the last one's.
                inv.adapters.set(Vec::new());
                inv.adapter_infos.set(Vec::new());
                inv.adapt_jobs.set(Default::default());
            }
            let video = inv.player.info.with_untracked(|i| i.id.clone());
            let asked = model.clone();
            spawn_local(async move {
                let Ok(list) = get_adapters(video, asked.clone()).await else {
                    return;
                };
                if inv.model.get_untracked() != asked {
                    return;
                }
                // The link's adapters drawn at the link's α, else their own.
                inv.adapters.update(|shown| {
                    shown.retain(|(id, _)| list.iter().any(|a| &a.report.id == id));
                    for (id, alpha) in shown.iter_mut() {
                        if !alpha.is_finite() {
                            if let Some(a) = list.iter().find(|a| &a.report.id == id) {
                                *alpha = a.report.alpha;
                            }
                        }
                    }
                });
                inv.adapter_infos.set(list);
            });
            model
        });
        // A label edit makes adapters stale and retrains them: follow their prompts.
        Effect::new(move |first: Option<()>| {
            inv.labels.track();
            if first.is_none() {
                return;
            }
            let prompts: Vec<String> = inv
                .adapter_infos
                .with_untracked(|list| list.iter().map(|a| a.report.prompt.clone()).collect());
            for prompt in prompts {
                spawn_local(async move {
                    // The server starts the retraining as it answers the edit.
                    browser::sleep_ms(150).await;
                    follow(inv, prompt).await;
                });
            }
        });
        // The share link names the adapters on the chart, and each α off its default.
        Effect::new(move |_| {
            let values: Vec<String> = inv.adapters.with(|list| {
                inv.adapter_infos.with(|infos| {
                    list.iter()
                        .filter(|(_, a)| a.is_finite())
                        .map(|(id, alpha)| {
                            let default = infos
                                .iter()
                                .find(|i| &i.report.id == id)
                                .map(|i| i.report.alpha);
                            if default.is_some_and(|d| (d - alpha).abs() < 1e-9) {
                                id.clone()
                            } else {
                                format!("{id}:{alpha}")
                            }
                        })
                        .collect()
                })
            });
            browser::set_query_list("ad", &values);
        });
    }
}
