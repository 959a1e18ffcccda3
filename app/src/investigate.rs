//! The investigation panel beside the player: the similarity chart (click or drag to seek,
//! hover to read every prompt's score, wheel to zoom), live prompts, view controls, search,
//! share links, export and keyboard shortcuts.

use std::collections::{HashMap, HashSet};

use leptos::prelude::*;

use crate::chart::{assign_colors, color, Curve};
use crate::player::{self, PlayerState};
use crate::scores::{smooth, softmax_over_prompts};
use crate::status::IndexStatusLine;
use crate::types::{format_time, IndexStatus, ScoreSeries, SearchHit, VideoInfo};

/// What a share link carries besides the frame: `p` (repeated), `smooth`, `view`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewParams {
    /// `None`: start from the config's prompts.
    pub prompts: Option<Vec<String>>,
    pub smooth: usize,
    pub softmax: bool,
}

impl ViewParams {
    /// Reads the query; values that make no sense fall back to the defaults.
    pub fn parse(prompts: Option<Vec<String>>, smooth: Option<&str>, view: Option<&str>) -> Self {
        let prompts = prompts
            .map(|ps| {
                ps.into_iter()
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .take(crate::api::MAX_PROMPTS)
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
        }
    }
}

/// Largest smoothing window offered, in frames.
pub const MAX_SMOOTH: usize = 10_000;

/// The per-frame curves for the current view: filled from the embedded frames, then
/// softmax over all prompts (CLIP's probabilities) if asked, then smoothed.
pub fn view_curves(
    series: &ScoreSeries,
    prompts: &[String],
    colors: &HashMap<String, usize>,
    window: usize,
    softmax: bool,
) -> Vec<Curve> {
    let mut values: Vec<Vec<f32>> = prompts
        .iter()
        .map(|p| {
            series
                .prompts
                .iter()
                .position(|s| &s.prompt == p)
                .map(|i| series.filled(i))
                .unwrap_or_default()
        })
        .collect();
    if softmax && !values.is_empty() {
        values = softmax_over_prompts(&values, series.logit_scale);
    }
    prompts
        .iter()
        .zip(values)
        .map(|(prompt, v)| Curve {
            prompt: prompt.clone(),
            color: color(colors.get(prompt).copied().unwrap_or(0)),
            values: smooth(&v, window),
        })
        .collect()
}

/// CSV of the curves: one row per frame with its time.
pub fn curves_csv(curves: &[Curve], info: &VideoInfo) -> String {
    let mut out = String::from("frame,time_s");
    for c in curves {
        out.push(',');
        if c.prompt.contains([',', '"', '\n']) {
            out.push_str(&format!("\"{}\"", c.prompt.replace('"', "\"\"")));
        } else {
            out.push_str(&c.prompt);
        }
    }
    out.push('\n');
    let frames = curves.iter().map(|c| c.values.len()).min().unwrap_or(0);
    for n in 0..frames {
        out.push_str(&format!("{n},{:.6}", info.time_s(n as u64)));
        for c in curves {
            // A frame that could not be decoded has no value: an empty field.
            let v = c.values[n];
            if v.is_nan() {
                out.push(',');
            } else {
                out.push_str(&format!(",{v}"));
            }
        }
        out.push('\n');
    }
    out
}

#[component]
pub fn Investigator(player: PlayerState, initial: ViewParams) -> impl IntoView {
    let status: RwSignal<Option<Result<IndexStatus, String>>> = RwSignal::new(None);
    let prompts: RwSignal<Vec<String>> = RwSignal::new(initial.prompts.clone().unwrap_or_default());
    let hidden: RwSignal<HashSet<String>> = RwSignal::new(HashSet::new());
    let colors: RwSignal<HashMap<String, usize>> =
        RwSignal::new(assign_colors(&prompts.get_untracked(), &HashMap::new()));
    let smoothing = RwSignal::new(initial.smooth);
    let softmax = RwSignal::new(initial.softmax);
    let series: RwSignal<Option<ScoreSeries>> = RwSignal::new(None);
    let scores_error: RwSignal<Option<String>> = RwSignal::new(None);
    let hover: RwSignal<Option<u64>> = RwSignal::new(None);
    let x_range: RwSignal<Option<(f64, f64)>> = RwSignal::new(None);
    let hits: RwSignal<Vec<(SearchHit, Option<String>)>> = RwSignal::new(Vec::new());
    let search_error: RwSignal<Option<String>> = RwSignal::new(None);
    let show_help = RwSignal::new(false);
    let copied = RwSignal::new(false);
    let redraws = RwSignal::new(0u32);

    let time_of = move |frame: u64| player.info.with(|i| i.time_s(frame));
    let total = move || player.info.with(|i| i.frames);
    let full_range = move || (-0.5, total() as f64 - 0.5);
    let visible = move || x_range.get().unwrap_or_else(full_range);

    let curves = Memo::new(move |_| {
        let hidden = hidden.get();
        series.with(|s| match s {
            Some(s) => view_curves(
                s,
                &prompts.get(),
                &colors.get(),
                smoothing.get(),
                softmax.get(),
            )
            .into_iter()
            .filter(|c| !hidden.contains(&c.prompt))
            .collect::<Vec<_>>(),
            None => Vec::new(),
        })
    });

    // A new prompt list keeps the colours of the prompts it still has.
    Effect::new(move |_| {
        let list = prompts.get();
        colors.set(assign_colors(&list, &colors.get_untracked()));
    });
    let set_prompts = move |list: Vec<String>| {
        let mut seen = HashSet::new();
        let list: Vec<String> = list
            .into_iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty() && seen.insert(p.clone()))
            .collect();
        prompts.set(list);
    };

    #[cfg(feature = "hydrate")]
    client::start(client::Ui {
        player,
        status,
        prompts,
        smoothing,
        softmax,
        series,
        scores_error,
        show_help,
        use_defaults: initial.prompts.is_none(),
    });

    let canvas_ref: NodeRef<leptos::html::Canvas> = NodeRef::new();
    #[cfg(feature = "hydrate")]
    let mapping = client::chart_effect(client::ChartParts {
        canvas: canvas_ref,
        curves,
        player,
        hover,
        x_range,
        hits,
        softmax,
        redraws,
    });

    // Mouse: click or drag seeks, moving shows the readout, wheel zooms, double-click resets.
    let dragging = RwSignal::new(false);
    let frame_under = move |ev: &leptos::ev::MouseEvent| -> Option<u64> {
        #[cfg(feature = "hydrate")]
        {
            let canvas = canvas_ref.get_untracked()?;
            // Offsets from the canvas's exact position: Chrome rounds offsetX/Y to whole pixels,
            // which can move a click into the neighbouring frame's pixel.
            let client = |name: &str| {
                js_sys::Reflect::get(ev, &name.into())
                    .ok()
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0)
            };
            let rect = canvas.get_bounding_client_rect();
            let offset = (
                client("clientX") - rect.left(),
                client("clientY") - rect.top(),
            );
            let x = mapping.with_value(|m| {
                m.as_ref()
                    .and_then(|m| crate::chart::frame_at(m, &canvas, offset))
            })?;
            let last = player.last_frame();
            Some((x.round().max(0.0) as u64).min(last))
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = ev;
            None
        }
    };
    let on_down = move |ev: leptos::ev::MouseEvent| {
        if ev.button() == 0 {
            if let Some(frame) = frame_under(&ev) {
                dragging.set(true);
                player::seek(player, frame);
            }
        }
    };
    let on_move = move |ev: leptos::ev::MouseEvent| {
        let frame = frame_under(&ev);
        hover.set(frame);
        if dragging.get_untracked() && ev.buttons() & 1 == 1 {
            if let Some(frame) = frame {
                if player.playhead.get_untracked() != frame {
                    player::seek(player, frame);
                }
            }
        }
    };
    let on_up = move |_| dragging.set(false);
    let on_leave = move |_| {
        hover.set(None);
        dragging.set(false);
    };
    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        let Some(frame) = frame_under(&ev) else {
            return;
        };
        ev.prevent_default();
        let factor = if ev.delta_y() < 0.0 { 0.8 } else { 1.25 };
        let next = crate::chart::zoom(visible(), frame as f64, factor, total());
        x_range.set((next != full_range()).then_some(next));
    };
    let on_dblclick = move |_| x_range.set(None);

    let readout = move || {
        let frame = hover.get()?;
        let mut rows: Vec<(String, &'static str, f32)> = curves.with(|cs| {
            cs.iter()
                .filter_map(|c| {
                    c.values
                        .get(frame as usize)
                        .map(|&v| (c.prompt.clone(), c.color, v))
                })
                .collect()
        });
        rows.sort_by(|a, b| b.2.total_cmp(&a.2));
        let undecodable = !rows.is_empty() && rows.iter().all(|r| r.2.is_nan());
        let time = format_time(time_of(frame));
        Some(view! {
            <div id="chart-readout" class="readout" data-frame=frame.to_string()>
                <div class="readout-head">{format!("frame {frame} · {time}")}</div>
                {if rows.is_empty() {
                    view! { <div class="readout-empty">"not indexed yet"</div> }.into_any()
                } else if undecodable {
                    view! { <div class="readout-empty">"this frame could not be decoded"</div> }.into_any()
                } else {
                    rows.into_iter().map(|(prompt, c, v)| {
                        let key = prompt.clone();
                        view! {
                        <div class="readout-row" data-prompt=key data-value=v.to_string()>
                            <span class="swatch" style=format!("background:{c}")></span>
                            <span class="readout-prompt">{prompt}</span>
                            <span class="readout-value">{format!("{v:.4}")}</span>
                        </div>
                    }}).collect_view().into_any()
                }}
            </div>
        })
    };

    let range_label = move || {
        let (a, b) = visible();
        let a = (a.ceil().max(0.0)) as u64;
        let b = (b.floor().max(0.0) as u64).min(total().saturating_sub(1));
        let zoomed = x_range.get().is_some();
        format!(
            "{}frames {a}–{b} ({} – {}){}",
            if zoomed { "zoomed: " } else { "" },
            format_time(time_of(a)),
            format_time(time_of(b)),
            if zoomed {
                " · double-click to reset"
            } else {
                " · wheel to zoom"
            }
        )
    };

    // Prompt editing.
    let new_prompt = RwSignal::new(String::new());
    let add_prompt = move || {
        let text = new_prompt.get_untracked();
        if !text.trim().is_empty() {
            let mut list = prompts.get_untracked();
            list.push(text);
            set_prompts(list);
            new_prompt.set(String::new());
        }
    };
    let legend = move || {
        let colors = colors.get();
        let hidden_now = hidden.get();
        let truncated: HashSet<String> = series.with(|s| {
            s.as_ref()
                .map(|s| {
                    s.prompts
                        .iter()
                        .filter(|p| p.truncated)
                        .map(|p| p.prompt.clone())
                        .collect()
                })
                .unwrap_or_default()
        });
        prompts
            .get()
            .into_iter()
            .enumerate()
            .map(|(i, prompt)| {
                let c = color(colors.get(&prompt).copied().unwrap_or(0));
                let is_hidden = hidden_now.contains(&prompt);
                let toggle = {
                    let prompt = prompt.clone();
                    move |_| {
                        hidden.update(|h| {
                            if !h.remove(&prompt) {
                                h.insert(prompt.clone());
                            }
                        })
                    }
                };
                let edit = move |ev: leptos::ev::Event| {
                    let mut list = prompts.get_untracked();
                    if i < list.len() {
                        list[i] = event_target_value(&ev);
                        set_prompts(list);
                    }
                };
                let remove = move |_| {
                    let mut list = prompts.get_untracked();
                    if i < list.len() {
                        list.remove(i);
                        set_prompts(list);
                    }
                };
                let note = truncated
                    .contains(&prompt)
                    .then_some(" (cut to CLIP's 77 tokens)");
                view! {
                    <li class="prompt" class:hidden=is_hidden data-prompt=prompt.clone()>
                        <button class="swatch-button" title="show or hide this curve"
                            aria-pressed=(!is_hidden).to_string() on:click=toggle>
                            <span class="swatch" style=format!("background:{c}")></span>
                        </button>
                        <input class="prompt-text" type="text" prop:value=prompt.clone()
                            aria-label="prompt" on:change=edit/>
                        {note.map(|n| view! { <span class="note">{n}</span> })}
                        <button class="remove" title="remove this prompt" on:click=remove>"×"</button>
                    </li>
                }
            })
            .collect_view()
    };

    // Search.
    let search_text = RwSignal::new(String::new());
    let search_top = RwSignal::new(8usize);
    let image_input: NodeRef<leptos::html::Input> = NodeRef::new();
    let searching = RwSignal::new(false);
    let on_search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        client::search(client::SearchParts {
            video: player.info.with_untracked(|i| i.id.clone()),
            text: search_text.get_untracked(),
            top: search_top.get_untracked(),
            image: image_input.get_untracked(),
            hits,
            error: search_error,
            busy: searching,
        });
    };
    let results = move || {
        hits.get()
            .into_iter()
            .map(|(hit, thumb)| {
                let frame = hit.frame;
                let time = format_time(time_of(frame));
                view! {
                    <li>
                        <button class="hit" data-frame=frame.to_string()
                            on:click=move |_| player::seek(player, frame)>
                            {thumb.map(|url| view! { <img src=url alt=format!("frame {frame}")/> })}
                            <span>{format!("{time} · frame {frame} · {:.3}", hit.score)}</span>
                        </button>
                    </li>
                }
            })
            .collect_view()
    };

    let on_copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            crate::browser::copy_to_clipboard(&crate::browser::current_url());
            copied.set(true);
        }
    };
    let on_export = move |kind: &'static str| {
        move |_| {
            #[cfg(feature = "hydrate")]
            client::export(kind, curves, player, canvas_ref, softmax.get_untracked());
            #[cfg(not(feature = "hydrate"))]
            let _ = kind;
        }
    };

    let y_label = move || {
        if softmax.get() {
            "probability"
        } else {
            "cosine similarity"
        }
    };

    view! {
        <section id="investigator" class="investigator">
            <IndexStatusLine status/>
            {move || scores_error.get().map(|e| view! { <p class="error" id="scores-error" role="alert">{e}</p> })}
            <div class="chart-box">
                <canvas id="chart" node_ref=canvas_ref
                    data-lines=move || curves.with(|c| c.len().to_string())
                    data-prompts=move || curves.with(|c| serde_json::to_string(&c.iter().map(|c| &c.prompt).collect::<Vec<_>>()).unwrap_or_default())
                    data-covered=move || curves.with(|c| c.iter().map(|c| c.values.len()).max().unwrap_or(0).to_string())
                    data-y-label=y_label
                    data-redraws=move || redraws.get().to_string()
                    on:mousedown=on_down on:mousemove=on_move on:mouseup=on_up
                    on:mouseleave=on_leave on:wheel=on_wheel on:dblclick=on_dblclick
                ></canvas>
                {readout}
            </div>
            <p id="chart-range" class="range">{range_label}</p>

            {view! {
            <div class="panels">
                <div class="panel">
                    <h3>"Prompts"</h3>
                    <ul id="prompt-list" class="prompts">{legend}</ul>
                    <form class="add-prompt" on:submit=move |ev: leptos::ev::SubmitEvent| { ev.prevent_default(); add_prompt(); }>
                        <input id="new-prompt" type="text" placeholder="add a prompt, e.g. a red door"
                            prop:value=move || new_prompt.get()
                            on:input=move |ev| new_prompt.set(event_target_value(&ev))/>
                        <button id="add-prompt" type="submit">"Add"</button>
                    </form>
                    <div class="view-controls">
                        <label>"Smoothing "
                            <input id="smoothing" type="number" min="1" max=MAX_SMOOTH.to_string()
                                prop:value=move || smoothing.get().to_string()
                                on:change=move |ev| {
                                    let n = event_target_value(&ev).parse::<usize>().unwrap_or(1).clamp(1, MAX_SMOOTH);
                                    smoothing.set(n);
                                }/>
                            " frames"
                        </label>
                        <label>
                            <input id="softmax" type="checkbox" prop:checked=move || softmax.get()
                                on:change=move |ev| softmax.set(event_target_checked(&ev))/>
                            " probabilities (softmax over prompts)"
                        </label>
                    </div>
                    <div class="actions">
                        <button id="copy-link" on:click=on_copy>"Copy link"</button>
                        {move || copied.get().then(|| view! { <span class="note">"copied"</span> })}
                        <button id="export-csv" on:click=on_export("csv")>"CSV"</button>
                        <button id="export-json" on:click=on_export("json")>"JSON"</button>
                        <button id="export-png" on:click=on_export("png")>"PNG"</button>
                        <button id="show-help" on:click=move |_| show_help.update(|s| *s = !*s)>"Keys (?)"</button>
                    </div>
                </div>
                <div class="panel">
                    <h3>"Find frames like…"</h3>
                    <form id="search-form" class="search" on:submit=on_search>
                        <input id="search-text" type="text" placeholder="a text"
                            prop:value=move || search_text.get()
                            on:input=move |ev| search_text.set(event_target_value(&ev))/>
                        <input id="search-image" type="file" accept="image/*" node_ref=image_input/>
                        <select id="search-top" on:change=move |ev| search_top.set(event_target_value(&ev).parse().unwrap_or(8))>
                            <option value="4">"4"</option>
                            <option value="8" selected>"8"</option>
                            <option value="16">"16"</option>
                        </select>
                        <button id="search-go" type="submit" disabled=move || searching.get()>"Search"</button>
                    </form>
                    {move || search_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                    <ol id="search-results" class="results">{results}</ol>
                </div>
            </div>
            }.into_any()}
            {move || show_help.get().then(|| view! {
                <div id="help" class="help" role="dialog" on:click=move |_| show_help.set(false)>
                    <h3>"Keyboard"</h3>
                    <dl>
                        <dt>"Space"</dt><dd>"play / pause"</dd>
                        <dt>"← / →"</dt><dd>"one frame back / forward"</dd>
                        <dt>"Shift + ← / →"</dt><dd>"one second back / forward"</dd>
                        <dt>"Home / End"</dt><dd>"first / last frame"</dd>
                        <dt>"?"</dt><dd>"this help"</dd>
                    </dl>
                    <p class="note">"Chart: click or drag to seek, wheel to zoom, double-click to reset the zoom."</p>
                </div>
            })}
        </section>
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;
    use leptos::task::spawn_local;

    use super::*;
    use crate::api::{get_default_prompts, get_frame, get_scores, search_frames};
    use crate::browser;
    use crate::types::IndexState;

    #[derive(Clone, Copy)]
    pub struct Ui {
        pub player: PlayerState,
        pub status: RwSignal<Option<Result<IndexStatus, String>>>,
        pub prompts: RwSignal<Vec<String>>,
        pub smoothing: RwSignal<usize>,
        pub softmax: RwSignal<bool>,
        pub series: RwSignal<Option<ScoreSeries>>,
        pub scores_error: RwSignal<Option<String>>,
        pub show_help: RwSignal<bool>,
        pub use_defaults: bool,
    }

    pub fn start(ui: Ui) {
        Effect::new(move |first: Option<()>| {
            if first.is_none() {
                crate::status::poll(ui.status, ui.player.info.with_untracked(|i| i.id.clone()));
                if ui.use_defaults {
                    spawn_local(async move {
                        if let Ok(list) = get_default_prompts().await {
                            if ui.prompts.get_untracked().is_empty() {
                                ui.prompts.set(list.clone());
                            }
                        }
                    });
                }
                keyboard(ui);
            }
        });
        // Fetch scores when the prompts change, and again while indexing makes progress.
        Effect::new(move |_| {
            let prompts = ui.prompts.get();
            let done = ui.status.with(|s| match s {
                Some(Ok(s)) => Some((s.state, s.done)),
                _ => None,
            });
            // Saved embeddings are shown whatever the job's state: a failed or queued job
            // still has the frames it embedded.
            if matches!(done, Some((IndexState::Running | IndexState::Done, _)))
                || matches!(done, Some((_, done)) if done > 0)
            {
                fetch_scores(ui, prompts);
            }
        });
        // The share link follows the view.
        Effect::new(move |_| {
            browser::replace_view_params(&ui.prompts.get(), ui.smoothing.get(), ui.softmax.get());
        });
    }

    /// Asks only for the prompts not yet scored when the index is complete (a new prompt then
    /// costs one text embedding and one matrix-vector product); everything while it grows.
    fn fetch_scores(ui: Ui, prompts: Vec<String>) {
        let complete = ui
            .series
            .with_untracked(|s| s.as_ref().is_some_and(|s| s.complete));
        let known: HashSet<String> = ui.series.with_untracked(|s| {
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
        let video = ui.player.info.with_untracked(|i| i.id.clone());
        spawn_local(async move {
            match get_scores(video, wanted).await {
                Ok(answer) => {
                    ui.scores_error.set(None);
                    ui.series.update(|current| match current {
                        Some(old) if complete && answer.frames == old.frames => {
                            old.prompts.extend(answer.prompts);
                        }
                        _ => *current = Some(answer),
                    });
                }
                Err(e) => ui.scores_error.set(Some(crate::api::error_text(&e))),
            }
        });
    }

    fn keyboard(ui: Ui) {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            let typing = ev
                .target()
                .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
                .is_some_and(|el| {
                    matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                });
            if typing || ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
                return;
            }
            let player = ui.player;
            let now = player.playhead.get_untracked();
            let last = player.last_frame();
            let second = player.info.with_untracked(|i| i.fps).round().max(1.0) as u64;
            let step = if ev.shift_key() { second } else { 1 };
            let target = match ev.key().as_str() {
                " " => {
                    if player.playing.get_untracked() {
                        player::pause(player);
                    } else {
                        player::play(player);
                    }
                    None
                }
                "ArrowLeft" => Some(now.saturating_sub(step)),
                "ArrowRight" => Some((now + step).min(last)),
                "Home" => Some(0),
                "End" => Some(last),
                "?" => {
                    ui.show_help.update(|s| *s = !*s);
                    None
                }
                "Escape" => {
                    ui.show_help.set(false);
                    None
                }
                _ => return,
            };
            ev.prevent_default();
            if let Some(frame) = target {
                if player.playing.get_untracked() {
                    player::pause(player);
                }
                player::seek(player, frame);
            }
        });
        // The page lives as long as the tab: keep the listener.
        std::mem::forget(handle);
    }

    pub struct ChartParts {
        pub canvas: NodeRef<leptos::html::Canvas>,
        pub curves: Memo<Vec<Curve>>,
        pub player: PlayerState,
        pub hover: RwSignal<Option<u64>>,
        pub x_range: RwSignal<Option<(f64, f64)>>,
        pub hits: RwSignal<Vec<(SearchHit, Option<String>)>>,
        pub softmax: RwSignal<bool>,
        pub redraws: RwSignal<u32>,
    }

    /// Redraws the chart whenever what it shows changes, and on window resize; returns the
    /// chart's coordinate transform for mouse events.
    pub fn chart_effect(
        parts: ChartParts,
    ) -> StoredValue<Option<crate::chart::Mapping>, LocalStorage> {
        let mapping = StoredValue::new_local(None);
        let resized = RwSignal::new(0u32);
        let listener =
            window_event_listener(leptos::ev::resize, move |_| resized.update(|n| *n += 1));
        std::mem::forget(listener);
        install_test_hook(
            mapping,
            parts.canvas,
            resized,
            parts.player.info.with_untracked(|i| i.fps),
        );
        Effect::new(move |_| {
            resized.track();
            let Some(canvas) = parts.canvas.get() else {
                return;
            };
            let total = parts.player.info.with(|i| i.frames);
            let marks: Vec<u64> = parts
                .hits
                .with(|h| h.iter().map(|(hit, _)| hit.frame).collect());
            let started = browser::now_ms();
            let drawn = parts.curves.with(|curves| {
                crate::chart::draw(
                    &canvas,
                    &crate::chart::ChartInput {
                        curves,
                        x_range: parts.x_range.get().unwrap_or((-0.5, total as f64 - 0.5)),
                        fps: parts.player.info.with(|i| i.fps),
                        frame_times_ms: &parts.player.info.with(|i| i.frame_times_ms.clone()),
                        y_label: if parts.softmax.get() {
                            "probability"
                        } else {
                            "cosine similarity"
                        },
                        playhead: parts.player.playhead.get(),
                        hover: parts.hover.get(),
                        marks: &marks,
                    },
                )
            });
            let _ = canvas.set_attribute(
                "data-draw-ms",
                &format!("{:.2}", browser::now_ms() - started),
            );
            mapping.set_value(drawn);
            parts.redraws.update(|n| *n += 1);
        });
        mapping
    }

    /// `window.clipChart`: hooks for the end-to-end tests and the redraw benchmark.
    fn install_test_hook(
        mapping: StoredValue<Option<crate::chart::Mapping>, LocalStorage>,
        canvas: NodeRef<leptos::html::Canvas>,
        resized: RwSignal<u32>,
        fps: f64,
    ) {
        use plotters::coord::CoordTranslate;
        use wasm_bindgen::prelude::*;
        // `clipChart.pointOfFrame(f)`: whole-pixel page (client) coordinates where a click
        // lands on frame `f` through the same transform and rounding as real clicks; the middle
        // of such points when there are several. Null when no whole pixel maps to `f` (more
        // frames than pixels: zoom in).
        let point_of_frame = Closure::<dyn Fn(f64) -> JsValue>::new(move |frame: f64| {
            let Some(canvas) = canvas.get_untracked() else {
                return JsValue::NULL;
            };
            let rect = canvas.get_bounding_client_rect();
            let scale = canvas.width() as f64 / canvas.client_width().max(1) as f64;
            let found = mapping.try_with_value(|m| {
                let m = m.as_ref()?;
                let (ys, ye) = (m.get_y_range().start, m.get_y_range().end);
                let (x, y) = m.translate(&(frame, (ys + ye) / 2.0));
                let guess = (rect.left() + x as f64 / scale).round() as i64;
                let hits: Vec<i64> = (guess - 6..=guess + 6)
                    .filter(|&cx| {
                        crate::chart::frame_at(
                            m,
                            &canvas,
                            (cx as f64 - rect.left(), y as f64 / scale),
                        )
                        .is_some_and(|v| v.round().max(0.0) == frame)
                    })
                    .collect();
                let cx = *hits.get(hits.len() / 2)?;
                Some((cx as f64, (rect.top() + y as f64 / scale).round()))
            });
            match found.flatten() {
                Some((x, y)) => {
                    let out = js_sys::Array::new();
                    out.push(&JsValue::from_f64(x));
                    out.push(&JsValue::from_f64(y));
                    out.into()
                }
                None => JsValue::NULL,
            }
        });
        // `clipChart.drawBenchmark(frames, prompts)`: milliseconds to draw that many synthetic
        // curves on the chart's canvas (the real chart is redrawn right after).
        let draw_benchmark =
            Closure::<dyn Fn(f64, f64) -> f64>::new(move |frames: f64, prompts: f64| {
                let Some(canvas) = canvas.get_untracked() else {
                    return f64::NAN;
                };
                let frames = frames.max(1.0) as usize;
                let curves: Vec<Curve> = (0..prompts.max(1.0) as usize)
                    .map(|p| Curve {
                        prompt: format!("prompt {p}"),
                        color: crate::chart::color(p),
                        values: (0..frames)
                            .map(|n| {
                                (0.2 + 0.05 * ((n as f32 / 500.0) + p as f32).sin())
                                    + 0.01 * ((n * 7919 % 101) as f32 / 101.0)
                            })
                            .collect(),
                    })
                    .collect();
                let started = browser::now_ms();
                crate::chart::draw(
                    &canvas,
                    &crate::chart::ChartInput {
                        curves: &curves,
                        x_range: (-0.5, frames as f64 - 0.5),
                        fps,
                        frame_times_ms: &[],
                        y_label: "cosine similarity",
                        playhead: frames as u64 / 2,
                        hover: None,
                        marks: &[],
                    },
                );
                let ms = browser::now_ms() - started;
                resized.update(|n| *n += 1);
                ms
            });
        let hook = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&hook, &"pointOfFrame".into(), point_of_frame.as_ref());
        let _ = js_sys::Reflect::set(&hook, &"drawBenchmark".into(), draw_benchmark.as_ref());
        draw_benchmark.forget();
        let _ = js_sys::Reflect::set(&window(), &"clipChart".into(), &hook);
        point_of_frame.forget();
    }

    pub struct SearchParts {
        pub video: String,
        pub text: String,
        pub top: usize,
        pub image: Option<web_sys::HtmlInputElement>,
        pub hits: RwSignal<Vec<(SearchHit, Option<String>)>>,
        pub error: RwSignal<Option<String>>,
        pub busy: RwSignal<bool>,
    }

    pub fn search(parts: SearchParts) {
        let file = parts
            .image
            .and_then(|input| input.files())
            .and_then(|files| files.get(0));
        parts.busy.set(true);
        parts.error.set(None);
        spawn_local(async move {
            let image = match file {
                Some(file) if file.size() > crate::api::MAX_SEARCH_IMAGE_BYTES as f64 => {
                    parts.error.set(Some(format!(
                        "the image is larger than {} MB",
                        crate::api::MAX_SEARCH_IMAGE_BYTES / (1024 * 1024)
                    )));
                    parts.busy.set(false);
                    return;
                }
                Some(file) => match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await
                {
                    Ok(buffer) => Some(js_sys::Uint8Array::new(&buffer).to_vec()),
                    Err(_) => None,
                },
                None => None,
            };
            let text = Some(parts.text).filter(|t| !t.trim().is_empty());
            match search_frames(parts.video.clone(), text, image, parts.top).await {
                Ok(found) => {
                    for url in parts
                        .hits
                        .get_untracked()
                        .into_iter()
                        .filter_map(|(_, u)| u)
                    {
                        browser::revoke(&url);
                    }
                    parts
                        .hits
                        .set(found.iter().cloned().map(|h| (h, None)).collect());
                    // Thumbnails through a decoder of their own, not the player's.
                    let viewer = browser::random_viewer_id();
                    for (i, hit) in found.into_iter().enumerate() {
                        if let Ok(jpeg) =
                            get_frame(parts.video.clone(), viewer.clone(), hit.frame).await
                        {
                            if let Ok(url) = browser::jpeg_object_url(&jpeg.jpeg) {
                                parts.hits.update(|h| {
                                    if let Some(slot) = h.get_mut(i) {
                                        slot.1 = Some(url);
                                    }
                                });
                            }
                        }
                    }
                }
                Err(e) => parts.error.set(Some(crate::api::error_text(&e))),
            }
            parts.busy.set(false);
        });
    }

    pub fn export(
        kind: &str,
        curves: Memo<Vec<Curve>>,
        player: PlayerState,
        canvas: NodeRef<leptos::html::Canvas>,
        softmax: bool,
    ) {
        let name = player.info.with_untracked(|i| i.name.clone());
        let stem = name
            .rsplit_once('.')
            .map_or(name.as_str(), |(s, _)| s)
            .to_string();
        let fps = player.info.with_untracked(|i| i.fps);
        match kind {
            "csv" => {
                let csv = curves
                    .with_untracked(|c| player.info.with_untracked(|info| curves_csv(c, info)));
                browser::download_text(&format!("{stem}-scores.csv"), "text/csv", &csv);
            }
            "json" => {
                let json = curves.with_untracked(|cs| {
                    let scores: serde_json::Map<String, serde_json::Value> = cs
                        .iter()
                        .map(|c| (c.prompt.clone(), serde_json::json!(c.values)))
                        .collect();
                    serde_json::json!({
                        "video": name,
                        "fps": fps,
                        "view": if softmax { "probability" } else { "cosine" },
                        "scores": scores,
                    })
                    .to_string()
                });
                browser::download_text(&format!("{stem}-scores.json"), "application/json", &json);
            }
            _ => {
                if let Some(url) = canvas.get_untracked().and_then(|c| c.to_data_url().ok()) {
                    browser::download_url(&format!("{stem}-chart.png"), &url);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PromptScores;

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
                softmax: false
            }
        );
        assert_eq!(ViewParams::parse(None, Some("99999999"), None).smooth, 1);
    }

    #[test]
    fn curves_fill_softmax_and_smooth_in_that_order() {
        let series = ScoreSeries {
            frames: vec![0, 2],
            missing: vec![],
            video_frames: 4,
            fill_radius: 1,
            complete: true,
            logit_scale: 100.0,
            prompts: vec![
                PromptScores {
                    prompt: "a".into(),
                    values: vec![0.3, 0.1],
                    truncated: false,
                },
                PromptScores {
                    prompt: "b".into(),
                    values: vec![0.1, 0.1],
                    truncated: false,
                },
            ],
        };
        let prompts = vec!["a".to_string(), "b".to_string()];
        let colors = assign_colors(&prompts, &HashMap::new());
        let raw = view_curves(&series, &prompts, &colors, 1, false);
        assert_eq!(raw[0].values, vec![0.3, 0.3, 0.1, 0.1]);
        let soft = view_curves(&series, &prompts, &colors, 1, true);
        assert!((soft[0].values[0] + soft[1].values[0] - 1.0).abs() < 1e-6);
        assert!((soft[0].values[3] - 0.5).abs() < 1e-6);
        let smoothed = view_curves(&series, &prompts, &colors, 3, false);
        assert!((smoothed[0].values[1] - (0.3 + 0.3 + 0.1) / 3.0).abs() < 1e-6);
        let info = VideoInfo {
            id: String::new(),
            name: String::new(),
            width: 1,
            height: 1,
            fps: 2.0,
            frames: 4,
            exact_count: true,
            frame_times_ms: vec![],
        };
        let csv = curves_csv(&raw, &info);
        assert_eq!(csv.lines().next(), Some("frame,time_s,a,b"));
        assert_eq!(csv.lines().nth(2), Some("1,0.500000,0.3,0.1"));
        // Variable frame rate: the frame's own time.
        let variable = VideoInfo {
            frame_times_ms: vec![0, 750, 1000, 1500],
            ..info
        };
        assert_eq!(
            curves_csv(&raw, &variable).lines().nth(2),
            Some("1,0.750000,0.3,0.1")
        );
    }
}
