//! The search panel: frames like a text or an image, best first, each with its time, score and
//! thumbnail; clicking one seeks to it (the chart marks them too).
//!
//! Invariants: a new search replaces the results and frees the old thumbnails' object URLs;
//! thumbnails come from a decoder of their own, never the player's.

use leptos::prelude::*;

use super::Investigation;
use crate::player;
use investigator_core::types::format_time;

#[component]
pub fn SearchPanel(inv: Investigation) -> impl IntoView {
    let Investigation {
        player,
        hits,
        search_error,
        ..
    } = inv;
    let search_text = RwSignal::new(String::new());
    let search_top = RwSignal::new(8usize);
    let image_input: NodeRef<leptos::html::Input> = NodeRef::new();
    let searching = RwSignal::new(false);
    let on_search = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        client::search(
            inv,
            search_text.get_untracked(),
            search_top.get_untracked(),
            image_input.get_untracked(),
            searching,
        );
    };
    let results = move || {
        hits.get()
            .into_iter()
            .map(|(hit, thumb)| {
                let frame = hit.frame;
                let time = format_time(inv.time_of(frame));
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
    view! {
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
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;
    use leptos::task::spawn_local;

    use super::Investigation;
    use crate::api::search_frames;
    use crate::browser;

    /// Searches the video for `text` and/or the image chosen in `image`, `top` results;
    /// `busy` while it runs.
    pub fn search(
        inv: Investigation,
        text: String,
        top: usize,
        image: Option<web_sys::HtmlInputElement>,
        busy: RwSignal<bool>,
    ) {
        let Investigation {
            hits,
            search_error: error,
            ..
        } = inv;
        let (video, version) = inv
            .player
            .info
            .with_untracked(|i| (i.id.clone(), i.version.clone()));
        let file = image
            .and_then(|input| input.files())
            .and_then(|files| files.get(0));
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let image = match file {
                Some(file)
                    if file.size() > investigator_core::requests::MAX_SEARCH_IMAGE_BYTES as f64 =>
                {
                    error.set(Some(format!(
                        "the image is larger than {} MB",
                        investigator_core::requests::MAX_SEARCH_IMAGE_BYTES / (1024 * 1024)
                    )));
                    busy.set(false);
                    return;
                }
                Some(file) => match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await
                {
                    Ok(buffer) => Some(js_sys::Uint8Array::new(&buffer).to_vec()),
                    Err(_) => None,
                },
                None => None,
            };
            let text = Some(text).filter(|t| !t.trim().is_empty());
            match search_frames(video.clone(), inv.model.get_untracked(), text, image, top).await {
                Ok(found) => {
                    for url in hits.get_untracked().into_iter().filter_map(|(_, u)| u) {
                        browser::revoke(&url);
                    }
                    hits.set(found.iter().cloned().map(|h| (h, None)).collect());
                    // Thumbnails through a decoder of their own, not the player's.
                    let viewer = browser::random_viewer_id();
                    for (i, hit) in found.into_iter().enumerate() {
                        let thumbnail =
                            browser::fetch_thumbnail(&video, &version, &viewer, hit.frame).await;
                        if let Ok(url) = thumbnail {
                            hits.update(|h| {
                                if let Some(slot) = h.get_mut(i) {
                                    slot.1 = Some(url);
                                }
                            });
                        }
                    }
                }
                Err(e) => error.set(Some(crate::api::error_text(&e))),
            }
            busy.set(false);
        });
    }
}
