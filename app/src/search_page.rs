//! `/search`: one query across the library. Text, an image or both; filters (videos, folders,
//! model, minimum score, minimum length, moments per video); the best moments as thumbnails
//! with video, times and score, twenty at a time ("More"). A result opens its video at the
//! peak frame with the query as a prompt on its chart (an ordinary share link). The address bar
//! is a share link of the search (an image query cannot travel in it: the page says so).
//!
//! Invariant: results and filters name videos by library id and file name, never a path.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::{get_library, get_models};
use investigator_core::library_search::{
    LibraryAnswer, LibraryHit, DEFAULT_PER_VIDEO, LIBRARY_PAGE,
};
use investigator_core::types::format_time;

/// What the search form holds (and the address bar carries).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SearchForm {
    pub text: String,
    pub videos: Vec<String>,
    pub folders: Vec<String>,
    pub model: Option<String>,
    pub min_score: Option<f32>,
    pub min_len_s: f64,
    pub per_video: usize,
}

impl SearchForm {
    /// The form a share link describes; values that make no sense are left out.
    pub fn from_query(
        text: Option<&str>,
        videos: Option<Vec<String>>,
        folders: Option<Vec<String>>,
        model: Option<&str>,
        min_score: Option<&str>,
        min_len: Option<&str>,
        per_video: Option<&str>,
    ) -> Self {
        Self {
            text: text
                .unwrap_or_default()
                .chars()
                .take(investigator_core::requests::MAX_PROMPT_CHARS)
                .collect(),
            videos: videos
                .unwrap_or_default()
                .into_iter()
                .filter(|v| investigator_core::types::is_valid_video_id(v))
                .collect(),
            folders: folders
                .unwrap_or_default()
                .into_iter()
                .filter(|f| !f.is_empty())
                .collect(),
            model: model
                .filter(|m| investigator_core::types::is_valid_model_id(m))
                .map(str::to_string),
            min_score: min_score
                .and_then(|s| s.parse().ok())
                .filter(|s: &f32| s.is_finite()),
            min_len_s: min_len
                .and_then(|s| s.parse().ok())
                .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                .unwrap_or(0.0),
            per_video: per_video
                .and_then(|s| s.parse().ok())
                .filter(|n| (1..=investigator_core::library_search::MAX_PER_VIDEO).contains(n))
                .unwrap_or(DEFAULT_PER_VIDEO),
        }
    }

    /// The player's share link for a result: its video at the peak frame, the query a prompt.
    pub fn open_link(&self, hit: &LibraryHit) -> String {
        let mut link = format!("/?video={}&frame={}", hit.video_id, hit.frame);
        let text = self.text.trim();
        if !text.is_empty() {
            link.push_str("&p=");
            link.push_str(&encode(text));
        }
        if let Some(model) = &self.model {
            link.push_str("&model=");
            link.push_str(&encode(model));
        }
        link
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let initial = query.with_untracked(|q| {
        SearchForm::from_query(
            q.get_str("q"),
            q.get_all("video"),
            q.get_all("folder"),
            q.get_str("model"),
            q.get_str("min"),
            q.get_str("len"),
            q.get_str("per"),
        )
    });
    let form = RwSignal::new(initial.clone());
    let answer: RwSignal<Option<LibraryAnswer>> = RwSignal::new(None);
    let thumbs: RwSignal<std::collections::HashMap<(String, u64), String>> =
        RwSignal::new(Default::default());
    let error: RwSignal<Option<String>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let image_input: NodeRef<leptos::html::Input> = NodeRef::new();
    let library = Resource::new(|| (), |_| get_library());
    let models = Resource::new(|| (), |_| get_models());
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| {
        hydrated.set(true);
        #[cfg(feature = "hydrate")]
        if !form.get_untracked().text.trim().is_empty() {
            client::run(form, image_input, answer, thumbs, error, busy, false);
        }
    });
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        client::run(form, image_input, answer, thumbs, error, busy, false);
    };
    let on_more = move |_| {
        #[cfg(feature = "hydrate")]
        client::run(form, image_input, answer, thumbs, error, busy, true);
    };
    let video_options = move || {
        library.get().and_then(Result::ok).map(|l| {
            l.videos
                .into_iter()
                .map(|v| {
                    let id = v.id.clone();
                    let chosen = move || form.with(|f| f.videos.contains(&id));
                    view! { <option value=v.id.clone() selected=chosen>{v.name}</option> }
                })
                .collect_view()
        })
    };
    let folder_options = move || {
        library.get().and_then(Result::ok).map(|l| {
            let mut folders: Vec<String> = l.videos.into_iter().map(|v| v.folder).collect();
            folders.sort();
            folders.dedup();
            folders
                .into_iter()
                .map(|f| {
                    let name = f.clone();
                    let chosen = move || form.with(|form| form.folders.contains(&name));
                    view! { <option value=f.clone() selected=chosen>{f.clone()}</option> }
                })
                .collect_view()
        })
    };
    let model_options = move || {
        models.get().and_then(Result::ok).map(|list| {
            list.into_iter()
                .enumerate()
                .map(|(i, m)| {
                    let value = if i == 0 { String::new() } else { m.id.clone() };
                    let id = m.id.clone();
                    let chosen = move || {
                        form.with(|f| {
                            f.model.as_deref() == Some(id.as_str()) || (i == 0 && f.model.is_none())
                        })
                    };
                    view! { <option value=value selected=chosen>{m.label}</option> }
                })
                .collect_view()
        })
    };
    let selected = |ev: &leptos::ev::Event| -> Vec<String> {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            ev.target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlSelectElement>().ok())
                .map(|s| {
                    let options = s.selected_options();
                    (0..options.length())
                        .filter_map(|i| options.item(i))
                        .filter_map(|o| o.get_attribute("value"))
                        .collect()
                })
                .unwrap_or_default()
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = ev;
            Vec::new()
        }
    };
    let results = move || {
        answer.get().map(|a| {
            a.results
                .into_iter()
                .map(|hit| {
                    let link = form.with_untracked(|f| f.open_link(&hit));
                    let key = (hit.video_id.clone(), hit.frame);
                    let thumb = move || thumbs.with(|t| t.get(&key).cloned());
                    let frame = hit.frame;
                    view! {
                        <li class="library-hit" data-video=hit.video_id.clone() data-frame=frame.to_string()
                            data-start=hit.start_frame.to_string() data-end=hit.end_frame.to_string()
                            data-score=hit.score.to_string()>
                            <a href=link>
                                {move || thumb().map(|url| view! { <img src=url alt=format!("frame {frame}")/> })}
                                <span class="name">{hit.video.clone()}</span>
                                <span>{format!(
                                    "{} ({}–{}) · frame {} · {:.3}",
                                    format_time(hit.time_s),
                                    format_time(hit.start_s),
                                    format_time(hit.end_s),
                                    frame,
                                    hit.score
                                )}</span>
                            </a>
                        </li>
                    }
                })
                .collect_view()
        })
    };
    let summary = move || {
        answer.get().map(|a| {
            let mut notes = vec![format!(
                "{} moments · {} vectors of {} videos searched with {}",
                a.results.len(),
                a.vectors_searched,
                a.videos_searched,
                a.model
            )];
            if !a.partial.is_empty() {
                notes.push(format!(
                    "{} partly indexed (searched over what they have)",
                    a.partial.len()
                ));
            }
            if !a.not_indexed.is_empty() {
                notes.push(format!("{} not indexed yet", a.not_indexed.len()));
            }
            notes.join(" · ")
        })
    };
    view! {
        <section id="library-search" class="library-search" data-hydrated=move || hydrated.get().to_string()>
            <h2>"Search the library"</h2>
            <form id="library-search-form" class="search" on:submit=on_submit>
                <input id="library-text" type="text" placeholder="a text, e.g. a red door"
                    prop:value=move || form.with(|f| f.text.clone())
                    on:input=move |ev| form.update(|f| f.text = event_target_value(&ev))/>
                <input id="library-image" type="file" accept="image/*" node_ref=image_input/>
                <button id="library-go" type="submit" disabled=move || busy.get()>"Search"</button>
                <details class="filters">
                    <summary>"Filters"</summary>
                    <label>"videos" <select id="library-videos" multiple
                        on:change=move |ev| { let chosen = selected(&ev); form.update(|f| f.videos = chosen) }>
                        <Suspense>{video_options}</Suspense>
                    </select></label>
                    <label>"folders" <select id="library-folders" multiple
                        on:change=move |ev| { let chosen = selected(&ev); form.update(|f| f.folders = chosen) }>
                        <Suspense>{folder_options}</Suspense>
                    </select></label>
                    <label>"model" <select id="library-model"
                        on:change=move |ev| { let v = event_target_value(&ev); form.update(|f| f.model = Some(v).filter(|v| !v.is_empty())) }>
                        <Suspense>{model_options}</Suspense>
                    </select></label>
                    <label>"min score" <input id="library-min-score" type="number" step="0.01"
                        prop:value=move || form.with(|f| f.min_score.map(|s| s.to_string()).unwrap_or_default())
                        on:input=move |ev| form.update(|f| f.min_score = event_target_value(&ev).parse().ok())/></label>
                    <label>"min length (s)" <input id="library-min-len" type="number" step="0.5" min="0"
                        prop:value=move || form.with(|f| f.min_len_s.to_string())
                        on:input=move |ev| form.update(|f| f.min_len_s = event_target_value(&ev).parse().unwrap_or(0.0))/></label>
                    <label>"per video" <input id="library-per-video" type="number" min="1" max="50"
                        prop:value=move || form.with(|f| f.per_video.to_string())
                        on:input=move |ev| form.update(|f| f.per_video = event_target_value(&ev).parse().unwrap_or(DEFAULT_PER_VIDEO))/></label>
                </details>
            </form>
            {move || error.get().map(|e| view! { <p class="error" id="library-error" role="alert">{e}</p> })}
            <p id="library-summary" class="note">{summary}</p>
            <ol id="library-results" class="library-results">{results}</ol>
            {move || answer.with(|a| a.as_ref().is_some_and(|a| a.more)).then(|| view! {
                <button id="library-more" on:click=on_more disabled=move || busy.get()>
                    {format!("More ({LIBRARY_PAGE} more)")}
                </button>
            })}
        </section>
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use std::collections::HashMap;

    use leptos::prelude::*;
    use leptos::task::spawn_local;

    use super::SearchForm;
    use crate::api::{error_text, get_thumbnail, search_library};
    use crate::browser;
    use investigator_core::library_search::{LibraryAnswer, LibraryQuery, LIBRARY_PAGE};

    /// Keeps the address bar a share link of the search.
    fn follow(form: &SearchForm) {
        browser::set_query_param(
            "q",
            Some(form.text.as_str()).filter(|t| !t.trim().is_empty()),
        );
        browser::set_query_list("video", &form.videos);
        browser::set_query_list("folder", &form.folders);
        browser::set_query_param("model", form.model.as_deref());
        browser::set_query_param("min", form.min_score.map(|s| s.to_string()).as_deref());
        browser::set_query_param(
            "len",
            Some(form.min_len_s.to_string())
                .filter(|l| l != "0")
                .as_deref(),
        );
        browser::set_query_param(
            "per",
            Some(form.per_video.to_string())
                .filter(|p| p != "3")
                .as_deref(),
        );
    }

    /// Runs the search (`more`: the next page, appended).
    pub fn run(
        form: RwSignal<SearchForm>,
        image_input: NodeRef<leptos::html::Input>,
        answer: RwSignal<Option<LibraryAnswer>>,
        thumbs: RwSignal<HashMap<(String, u64), String>>,
        error: RwSignal<Option<String>>,
        busy: RwSignal<bool>,
        more: bool,
    ) {
        let f = form.get_untracked();
        follow(&f);
        let file = image_input
            .get_untracked()
            .and_then(|input| input.files())
            .and_then(|files| files.get(0));
        let offset = if more {
            answer.with_untracked(|a| a.as_ref().map_or(0, |a| a.results.len()))
        } else {
            0
        };
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let image = match file {
                Some(file) => match wasm_bindgen_futures::JsFuture::from(file.array_buffer()).await
                {
                    Ok(buffer) => Some(js_sys::Uint8Array::new(&buffer).to_vec()),
                    Err(_) => None,
                },
                None => None,
            };
            let query = LibraryQuery {
                text: Some(f.text.clone()).filter(|t| !t.trim().is_empty()),
                image,
                videos: f.videos.clone(),
                folders: f.folders.clone(),
                model: f.model.clone(),
                min_score: f.min_score,
                min_len_s: f.min_len_s,
                top: LIBRARY_PAGE,
                offset,
                per_video: f.per_video,
            };
            match search_library(query).await {
                Ok(found) => {
                    let new_hits = found.results.clone();
                    answer.update(|a| match (a.as_mut(), more) {
                        (Some(old), true) => {
                            old.results.extend(found.results);
                            old.more = found.more;
                        }
                        _ => *a = Some(found),
                    });
                    for hit in new_hits {
                        let key = (hit.video_id.clone(), hit.frame);
                        if thumbs.with_untracked(|t| t.contains_key(&key)) {
                            continue;
                        }
                        if let Ok(jpeg) = get_thumbnail(hit.video_id.clone(), hit.frame).await {
                            if let Ok(url) = browser::jpeg_object_url(&jpeg.jpeg) {
                                thumbs.update(|t| {
                                    t.insert(key, url);
                                });
                            }
                        }
                    }
                }
                Err(e) => error.set(Some(error_text(&e))),
            }
            busy.set(false);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_link_is_read_safely_and_a_result_opens_as_a_share_link() {
        let form = SearchForm::from_query(
            Some("a red door"),
            Some(vec!["0123456789abcdef".into(), "../etc".into()]),
            Some(vec!["footage".into(), "".into()]),
            Some("../x"),
            Some("0.2"),
            Some("-1"),
            Some("999"),
        );
        assert_eq!(form.videos, vec!["0123456789abcdef".to_string()]);
        assert_eq!(form.folders, vec!["footage".to_string()]);
        assert_eq!(
            (
                form.model.clone(),
                form.min_score,
                form.min_len_s,
                form.per_video
            ),
            (None, Some(0.2), 0.0, DEFAULT_PER_VIDEO)
        );
        let hit = LibraryHit {
            video_id: "0123456789abcdef".into(),
            video: "a.mp4".into(),
            frame: 412,
            time_s: 13.7,
            score: 0.31,
            start_frame: 400,
            end_frame: 430,
            start_s: 13.3,
            end_s: 14.4,
        };
        assert_eq!(
            form.open_link(&hit),
            "/?video=0123456789abcdef&frame=412&p=a%20red%20door"
        );
    }
}
