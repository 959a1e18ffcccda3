//! The moments panel: a query (a prompt that must hold, one that must not, a threshold, snap to
//! cuts, minimum length, gap), the moments it finds (drawn as bands on the chart) with their
//! peak frame's thumbnail, times and scores, "play" (stops at the moment's end) and "download
//! clip"; and a span picked by Shift-dragging across the chart, to download as a clip too.
//!
//! Invariants: moments come from `app::moments` on the chart's own curves (the CLI's
//! `moments` gives the same on the same cache); one clip export at a time per tab, its progress
//! polled from the server while it encodes.

use leptos::prelude::*;

use super::Investigation;
use crate::player;
use investigator_core::moments::{
    Condition, MomentQuery, Threshold, DEFAULT_GAP_S, DEFAULT_MIN_LEN_S, DEFAULT_SNAP_S,
};
use investigator_core::types::format_time;

#[component]
pub fn MomentsPanel(inv: Investigation) -> impl IntoView {
    let Investigation {
        player,
        prompts,
        query,
        moments,
        selection,
        playing_span,
        excerpt_note,
        ..
    } = inv;
    // The form starts from the share link's query, else the first prompt with the defaults.
    let start = query.get_untracked();
    let positive = start
        .as_ref()
        .and_then(|q| q.all_of.first())
        .map(|c| c.prompt.clone());
    let negative = start
        .as_ref()
        .and_then(|q| q.none_of.first())
        .map(|c| c.prompt.clone());
    let positive = RwSignal::new(positive.unwrap_or_default());
    let negative = RwSignal::new(negative.unwrap_or_default());
    let threshold = RwSignal::new(
        start
            .as_ref()
            .and_then(|q| q.all_of.first())
            .map_or("auto".to_string(), |c| c.threshold.to_string()),
    );
    let snap = RwSignal::new(start.as_ref().is_none_or(|q| q.snap_s.is_some()));
    let min_len = RwSignal::new(
        start
            .as_ref()
            .map_or(DEFAULT_MIN_LEN_S, |q| q.min_len_s)
            .to_string(),
    );
    let gap = RwSignal::new(
        start
            .as_ref()
            .map_or(DEFAULT_GAP_S, |q| q.gap_s)
            .to_string(),
    );
    let form_error = RwSignal::new(None::<String>);
    let thumbs = RwSignal::new(std::collections::HashMap::<u64, String>::new());
    #[cfg(feature = "hydrate")]
    client::follow(inv, thumbs);

    let on_find = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let list = inv.with_adapted_names(prompts.get_untracked());
        let chosen = positive.get_untracked();
        let chosen = if chosen.is_empty() {
            list.first().cloned().unwrap_or_default()
        } else {
            chosen
        };
        if chosen.is_empty() {
            form_error.set(Some("add a prompt first".into()));
            return;
        }
        let Ok(t) = threshold.get_untracked().parse::<Threshold>() else {
            form_error.set(Some(
                "the threshold is `auto`, `auto:K` or a number like 0.25".into(),
            ));
            return;
        };
        let seconds = |s: RwSignal<String>| {
            s.get_untracked()
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let (Some(min_len_s), Some(gap_s)) = (seconds(min_len), seconds(gap)) else {
            form_error.set(Some("minimum length and gap are seconds, 0 or more".into()));
            return;
        };
        form_error.set(None);
        positive.set(chosen.clone());
        let not = negative.get_untracked();
        query.set(Some(MomentQuery {
            all_of: vec![Condition {
                prompt: chosen,
                threshold: t,
            }],
            none_of: (!not.is_empty() && list.contains(&not))
                .then_some(Condition {
                    prompt: not,
                    threshold: t,
                })
                .into_iter()
                .collect(),
            hysteresis: None,
            gap_s,
            min_len_s,
            snap_s: snap.get_untracked().then_some(DEFAULT_SNAP_S),
        }));
    };
    let on_clear = move |_| {
        query.set(None);
        playing_span.set(None);
    };
    let options = move |with_none: bool| {
        let list = inv.with_adapted_names(prompts.get());
        with_none
            .then(|| view! { <option value="">"—"</option> })
            .into_iter()
            .map(|o| o.into_any())
            .chain(
                list.into_iter()
                    .map(|p| view! { <option value=p.clone()>{p.clone()}</option> }.into_any()),
            )
            .collect_view()
    };
    let summary = move || {
        moments.get().map(|found| match found {
            Ok(found) => {
                let thresholds: Vec<String> = found.thresholds.iter().map(|t| format!("{t:.4}")).collect();
                view! {
                    <p id="moments-summary" class="note" data-count=found.moments.len().to_string()>
                        {format!("{} moments · thresholds {}", found.moments.len(), thresholds.join(", "))}
                    </p>
                }
                .into_any()
            }
            Err(e) => view! { <p id="moments-summary" class="error" role="alert" data-count="0">{e}</p> }.into_any(),
        })
    };
    let download = move |from: u64, to: u64| {
        #[cfg(feature = "hydrate")]
        client::download_excerpt(inv, from, to);
        #[cfg(not(feature = "hydrate"))]
        let _ = (from, to);
    };
    let list = move || {
        let found = moments
            .get()
            .and_then(Result::ok)
            .map(|m| m.moments)
            .unwrap_or_default();
        found
            .into_iter()
            .map(|m| {
                let (start, end, peak) = (m.start_frame, m.end_frame, m.peak_frame);
                let label = format!(
                    "{} – {} ({:.1} s) · peak {:.3} at frame {peak} · mean {:.3}",
                    format_time(m.start_s),
                    format_time(m.end_s),
                    m.duration_s,
                    m.peak_score,
                    m.mean_score
                );
                let thumb = move || thumbs.with(|t| t.get(&peak).cloned()).map(|url| view! { <img src=url alt=format!("frame {peak}")/> });
                view! {
                    <li class="moment" data-start=start.to_string() data-end=end.to_string() data-peak=peak.to_string()>
                        <button class="hit" on:click=move |_| player::seek(player, peak)>{thumb}<span>{label}</span></button>
                        <button class="play-moment" on:click=move |_| {
                            player::pause(player);
                            player::seek(player, start);
                            playing_span.set(Some((start, end)));
                            player::play(player);
                        }>"Play"</button>
                        <button class="clip-moment" on:click=move |_| download(start, end)>"Download clip"</button>
                    </li>
                }
            })
            .collect_view()
    };
    let picked = move || {
        selection.get().map(|(a, b)| {
            let label = format!(
                "Selected frames {a}–{b} ({} – {})",
                format_time(inv.time_of(a)),
                format_time(inv.time_of(b + 1))
            );
            view! {
                <p id="selection" data-start=a.to_string() data-end=b.to_string()>
                    {label}" "
                    <button id="selection-clip" on:click=move |_| download(a, b)>"Download clip"</button>
                    <button on:click=move |_| selection.set(None)>"×"</button>
                </p>
            }
        })
    };
    view! {
        <div class="panel" id="moments-panel">
            <h3>"Moments"</h3>
            <form id="moment-form" class="moment-form" on:submit=on_find>
                <label>"where "
                    <select id="moment-prompt" prop:value=move || positive.get()
                        on:change=move |ev| positive.set(event_target_value(&ev))>{move || options(false)}</select>
                </label>
                <label>" and not "
                    <select id="moment-not" prop:value=move || negative.get()
                        on:change=move |ev| negative.set(event_target_value(&ev))>{move || options(true)}</select>
                </label>
                <label>" above "
                    <input id="moment-threshold" type="text" size="6" prop:value=move || threshold.get()
                        title="auto (mean + 1 std of the curve), auto:K, or a score like 0.25"
                        on:input=move |ev| threshold.set(event_target_value(&ev))/>
                </label>
                <label><input id="moment-snap" type="checkbox" prop:checked=move || snap.get()
                    on:change=move |ev| snap.set(event_target_checked(&ev))/>" snap to cuts"</label>
                <label>" min "<input id="moment-min-len" type="text" size="4" prop:value=move || min_len.get()
                    on:input=move |ev| min_len.set(event_target_value(&ev))/>" s"</label>
                <label>" gap "<input id="moment-gap" type="text" size="4" prop:value=move || gap.get()
                    on:input=move |ev| gap.set(event_target_value(&ev))/>" s"</label>
                <button id="moment-find" type="submit">"Find"</button>
                <button id="moment-clear" type="button" on:click=on_clear>"Clear"</button>
            </form>
            {move || form_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {summary}
            <ol id="moments" class="results">{list}</ol>
            {picked}
            {move || excerpt_note.get().map(|n| view! { <p id="clip-note" class="note">{n}</p> })}
        </div>
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use std::collections::HashMap;

    use leptos::prelude::*;
    use leptos::task::spawn_local;

    use super::Investigation;
    use crate::browser;
    use crate::player;
    use investigator_core::routes::{EXCERPT_PROGRESS_URL, EXCERPT_URL};

    /// Stops a played moment at its end, keeps the share link's `m` on the query, and loads
    /// the peak thumbnails of new moments.
    pub fn follow(inv: Investigation, thumbs: RwSignal<HashMap<u64, String>>) {
        let player = inv.player;
        Effect::new(move |_| {
            let now = player.playhead.get();
            let playing = player.playing.get();
            if let Some((start, end)) = inv.playing_span.get_untracked() {
                if !playing || now < start || now > end {
                    inv.playing_span.set(None);
                } else if now >= end {
                    player::pause(player);
                    player::seek(player, end);
                    inv.playing_span.set(None);
                }
            }
        });
        Effect::new(move |_| {
            let json = inv.query.get().and_then(|q| serde_json::to_string(&q).ok());
            browser::set_query_param("m", json.as_deref());
        });
        let viewer = browser::random_viewer_id();
        Effect::new(move |_| {
            let peaks: Vec<u64> = inv
                .moments
                .with(|m| {
                    m.as_ref()
                        .and_then(|m| m.as_ref().ok())
                        .map(|m| m.moments.iter().map(|m| m.peak_frame).take(24).collect())
                })
                .unwrap_or_default();
            let (video, version) = player
                .info
                .with_untracked(|i| (i.id.clone(), i.version.clone()));
            let viewer = viewer.clone();
            spawn_local(async move {
                for frame in peaks {
                    if thumbs.with_untracked(|t| t.contains_key(&frame)) {
                        continue;
                    }
                    let thumbnail =
                        browser::fetch_thumbnail(&video, &version, &viewer, frame).await;
                    if let Ok(url) = thumbnail {
                        thumbs.update(|t| {
                            t.insert(frame, url);
                        });
                    }
                }
            });
        });
    }

    /// Asks the server for frames `from..=to` as an MP4 and saves it under the name the server
    /// gives, showing the encoder's progress meanwhile.
    pub fn download_excerpt(inv: Investigation, from: u64, to: u64) {
        let note = inv.excerpt_note;
        if note
            .get_untracked()
            .is_some_and(|n| n.starts_with("encoding"))
        {
            return; // one export at a time
        }
        let video = inv.player.info.with_untracked(|i| i.id.clone());
        let viewer = excerpt_viewer();
        note.set(Some(format!("encoding frames {from}–{to}…")));
        let finished = RwSignal::new(false);
        // Progress: asked every half second until the export ends.
        {
            let viewer = viewer.clone();
            spawn_local(async move {
                while !finished.get_untracked() {
                    browser::sleep_ms(500).await;
                    let url = format!("{EXCERPT_PROGRESS_URL}?viewer={viewer}");
                    if let Ok(value) = browser::fetch_json(&url).await {
                        let done = value["done"].as_u64().unwrap_or(0);
                        let total = value["total"].as_u64().unwrap_or(0);
                        if value["running"].as_bool() == Some(true) && !finished.get_untracked() {
                            note.set(Some(format!("encoding {done} of {total} frames…")));
                        }
                    }
                }
            });
        }
        spawn_local(async move {
            let url = format!(
                "{EXCERPT_URL}?video={}&viewer={viewer}&from={from}&to={to}",
                String::from(js_sys::encode_uri_component(&video))
            );
            let outcome = browser::post_download(&url, "clip.mp4").await;
            finished.set(true);
            note.set(Some(match outcome {
                Ok(name) => format!("saved {name}"),
                Err(e) => format!("the clip failed: {e}"),
            }));
        });
    }

    /// This tab's id for its clip exports (one at a time per id on the server).
    fn excerpt_viewer() -> String {
        thread_local! {
            static VIEWER: String = browser::random_viewer_id();
        }
        VIEWER.with(Clone::clone)
    }
}
