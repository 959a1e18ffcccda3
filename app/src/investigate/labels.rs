//! Ground-truth labels under the chart: one row per labelled prompt (in its colour; `ignore`
//! spans grey), aligned with the chart's own time axis. Shift-drag a span on the chart, then
//! "Label as …" makes it a label; click a label to adjust its ends or delete it; Import CSV
//! (frames or times) and Export CSV.
//!
//! Invariants: every change goes to the server as one edit, applied there to the file as it
//! is (two tabs lose nothing), and the track shows the labels the server answered with; a
//! label is drawn through the chart's last transform, so it sits over the frames it covers.

use leptos::prelude::*;

use super::Investigation;
use crate::player;
use investigator_core::labels::{LabelEdit, Segment, IGNORE};
use investigator_core::types::format_time;

/// Where the chart's plot area lies in the canvas (CSS pixels from its left edge) and which
/// frames it shows, as of the last draw: what the label track aligns with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlotArea {
    pub left: f64,
    pub right: f64,
    pub from: f64,
    pub to: f64,
}

impl PlotArea {
    /// The CSS pixel of a frame edge (frame `n` spans `n - 0.5 .. n + 0.5`).
    pub fn x_of(&self, frame: f64) -> f64 {
        let share = (frame - self.from) / (self.to - self.from).max(1e-9);
        self.left + share * (self.right - self.left)
    }
}

#[component]
pub fn LabelTrack(inv: Investigation) -> impl IntoView {
    let Investigation {
        labels,
        selected_label,
        selection,
        prompts,
        ..
    } = inv;
    let label_prompt = RwSignal::new(String::new());
    // The rows: each labelled prompt, then `ignore` if any span is ignored.
    let rows = move || {
        labels.with(|l| {
            let mut names = l.prompts();
            if !l.ignored().is_empty() {
                names.push(IGNORE.to_string());
            }
            names
        })
    };
    let color_of = move |prompt: &str| {
        if prompt == IGNORE {
            return "#777777";
        }
        inv.colors.with(|c| {
            c.get(prompt)
                .map_or("#bbbbbb", |&slot| investigator_core::chart::color(slot))
        })
    };
    let segment_view = move |s: Segment| {
        let area = inv.plot_area.get()?;
        let (a, b) = (
            area.x_of(s.start as f64 - 0.5),
            area.x_of(s.end as f64 + 0.5),
        );
        let (a, b) = (a.max(area.left), b.min(area.right));
        if b <= a {
            return None;
        }
        let selected = selected_label.with(|x| x.as_ref() == Some(&s));
        let style = format!(
            "left:{a:.1}px;width:{:.1}px;background:{}",
            (b - a).max(2.0),
            color_of(&s.prompt)
        );
        let title = format!(
            "{}: frames {}–{} ({} – {})",
            s.prompt,
            s.start,
            s.end,
            format_time(inv.time_of(s.start)),
            format_time(inv.time_of(s.end + 1))
        );
        let clicked = s.clone();
        Some(view! {
            <div class="label" class:selected=selected class:ignore=s.is_ignore()
                data-prompt=s.prompt.clone() data-start=s.start.to_string() data-end=s.end.to_string()
                style=style title=title
                on:click=move |_| selected_label.set(Some(clicked.clone()))></div>
        })
    };
    let track = move || {
        rows()
            .into_iter()
            .map(|prompt| {
                let segments: Vec<Segment> = labels.with(|l| {
                    l.segments
                        .iter()
                        .filter(|s| s.prompt == prompt)
                        .cloned()
                        .collect()
                });
                view! {
                    <div class="label-row" data-prompt=prompt.clone()>
                        <span class="label-name">{prompt.clone()}</span>
                        {segments.into_iter().filter_map(segment_view).collect_view()}
                    </div>
                }
            })
            .collect_view()
    };
    let edit = move |edit: LabelEdit| {
        #[cfg(feature = "hydrate")]
        client::edit(inv, edit);
        #[cfg(not(feature = "hydrate"))]
        let _ = edit;
    };
    // "Label as …" for the span picked by Shift-drag.
    let label_selection = move || {
        selection.get().map(|(a, b)| {
            let options = move || {
                let mut names = prompts.get();
                names.push(IGNORE.to_string());
                names
                    .into_iter()
                    .map(|p| view! { <option value=p.clone()>{p.clone()}</option> })
                    .collect_view()
            };
            view! {
                <p id="label-as" class="label-as">
                    {format!("Label frames {a}–{b} as ")}
                    <select id="label-prompt" prop:value=move || label_prompt.get()
                        on:change=move |ev| label_prompt.set(event_target_value(&ev))>{options}</select>
                    <button id="label-selection" on:click=move |_| {
                        let prompt = label_prompt.get_untracked();
                        let prompt = if prompt.is_empty() {
                            prompts.with_untracked(|p| p.first().cloned()).unwrap_or_default()
                        } else {
                            prompt
                        };
                        if !prompt.is_empty() {
                            edit(LabelEdit::Add(Segment { prompt, start: a, end: b }));
                            selection.set(None);
                        }
                    }>"Label"</button>
                </p>
            }
        })
    };
    // The selected label: adjust its ends, or delete it.
    let start_text = RwSignal::new(String::new());
    let end_text = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Some(s) = selected_label.get() {
            start_text.set(s.start.to_string());
            end_text.set(s.end.to_string());
        }
    });
    let selected = move || {
        selected_label.get().map(|s| {
            let (for_save, for_delete, for_seek) = (s.clone(), s.clone(), s.start);
            view! {
                <p id="label-selected" class="label-selected" data-prompt=s.prompt.clone()
                    data-start=s.start.to_string() data-end=s.end.to_string()>
                    <button class="hit" on:click=move |_| player::seek(inv.player, for_seek)>{format!("{} ", s.prompt)}</button>
                    "frames "
                    <input id="label-start" type="text" size="7" prop:value=move || start_text.get()
                        on:input=move |ev| start_text.set(event_target_value(&ev))/>
                    "–"
                    <input id="label-end" type="text" size="7" prop:value=move || end_text.get()
                        on:input=move |ev| end_text.set(event_target_value(&ev))/>
                    <button id="label-save" on:click=move |_| {
                        let parse = |s: RwSignal<String>| s.get_untracked().trim().parse::<u64>().ok();
                        match (parse(start_text), parse(end_text)) {
                            (Some(start), Some(end)) => {
                                let new = Segment { prompt: for_save.prompt.clone(), start, end };
                                selected_label.set(Some(new.clone()));
                                edit(LabelEdit::Replace { old: for_save.clone(), new: Some(new) });
                            }
                            _ => inv.label_error.set(Some("the ends are frame numbers".into())),
                        }
                    }>"Save"</button>
                    <button id="label-delete" on:click=move |_| {
                        selected_label.set(None);
                        edit(LabelEdit::Replace { old: for_delete.clone(), new: None });
                    }>"Delete"</button>
                    <button on:click=move |_| selected_label.set(None)>"×"</button>
                </p>
            }
        })
    };
    let on_import = move |ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        client::import(inv, &ev);
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let on_export = move |_| {
        #[cfg(feature = "hydrate")]
        client::export(inv);
    };
    let count = move || labels.with(|l| l.segments.len());
    view! {
        <div id="label-track" class="label-track" data-count=move || count().to_string()>{track}</div>
        <div class="label-tools">
            {label_selection}
            {selected}
            <label class="file-button">"Import CSV"
                <input id="labels-import" type="file" accept=".csv,text/csv" on:change=on_import/>
            </label>
            <button id="labels-export" on:click=on_export>"Export CSV"</button>
            <span class="note">{move || match count() {
                0 => "No labels: Shift-drag across the chart, then Label.".to_string(),
                n => format!("{n} labelled spans"),
            }}</span>
            {move || inv.label_error.get().map(|e| view! { <p id="labels-error" class="error" role="alert">{e}</p> })}
            {move || {
                let notes = inv.label_notes.get();
                (!notes.is_empty()).then(|| view! { <p id="labels-notes" class="note">{notes.join("; ")}</p> })
            }}
        </div>
    }
}

/// Reads the video's labels as the page opens (browser only).
#[cfg(feature = "hydrate")]
pub fn load(inv: Investigation) {
    client::load(inv);
}

#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;
    use leptos::task::spawn_local;
    use wasm_bindgen::JsCast;

    use super::Investigation;
    use crate::api::{edit_labels, error_text, get_labels};
    use investigator_core::labels::LabelEdit;

    /// Reads the video's labels (on open).
    pub fn load(inv: Investigation) {
        let video = inv.player.info.with_untracked(|i| i.id.clone());
        spawn_local(async move {
            match get_labels(video).await {
                Ok(answer) => {
                    inv.labels.set(answer.labels);
                    inv.label_error.set(None);
                }
                Err(e) => inv.label_error.set(Some(error_text(&e))),
            }
        });
    }

    /// Sends one edit; the track shows what the server answers.
    pub fn edit(inv: Investigation, edit: LabelEdit) {
        let video = inv.player.info.with_untracked(|i| i.id.clone());
        spawn_local(async move {
            match edit_labels(video, edit).await {
                Ok(answer) => {
                    inv.labels.set(answer.labels);
                    inv.label_notes.set(answer.notes);
                    inv.label_error.set(None);
                    // Numbers that held against the old labels no longer do.
                    inv.evaluation.set(None);
                }
                Err(e) => inv.label_error.set(Some(error_text(&e))),
            }
        });
    }

    /// Reads the chosen CSV file and merges it into the labels.
    pub fn import(inv: Investigation, ev: &leptos::ev::Event) {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|f| f.get(0)) else {
            return;
        };
        input.set_value("");
        if file.size() > investigator_core::labels::MAX_LABEL_FILE_BYTES as f64 {
            inv.label_error.set(Some(format!(
                "{} is larger than {} MB: is it a label file?",
                file.name(),
                investigator_core::labels::MAX_LABEL_FILE_BYTES >> 20
            )));
            return;
        }
        spawn_local(async move {
            let text = wasm_bindgen_futures::JsFuture::from(file.text()).await;
            match text.ok().and_then(|t| t.as_string()) {
                Some(csv) => edit(
                    inv,
                    LabelEdit::Import {
                        csv,
                        replace: false,
                    },
                ),
                None => inv
                    .label_error
                    .set(Some(format!("{} cannot be read as text", file.name()))),
            }
        });
    }

    /// Downloads the labels as CSV (frames), named after the video.
    pub fn export(inv: Investigation) {
        let csv = inv.labels.with_untracked(|l| l.to_csv());
        let name = inv.player.info.with_untracked(|i| i.name.clone());
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        crate::browser::download_text(&format!("{stem}.labels.csv"), "text/csv", &csv);
    }
}
