//! The list of videos (`/videos`): name, duration, resolution, how far each is indexed, and an
//! upload form when the server has a library folder. Links open a video by its id.

use leptos::prelude::*;

use crate::api::get_library;
use investigator_core::types::{format_time, Indexed, Library, LibraryVideo};

/// Where a video opens: by id, so the link works for whoever it is shared with.
pub fn video_href(id: &str) -> String {
    format!("/?video={id}")
}

fn indexed_text(indexed: Indexed, progress: f32) -> String {
    match indexed {
        Indexed::Yes => "yes".into(),
        Indexed::Partly => format!("partly ({:.0} %)", progress * 100.0),
        Indexed::No => "no".into(),
    }
}

fn size_text(bytes: u64) -> String {
    if bytes >= 1024 * 1024 * 1024 {
        format!("{:.1} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{} MiB", bytes / (1024 * 1024))
    }
}

#[component]
pub fn VideosPage() -> impl IntoView {
    let reload = RwSignal::new(0u32);
    let listing = Resource::new_blocking(move || reload.get(), |_| get_library());
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    // Outside the list, which is rebuilt when it reloads after an upload.
    let upload = UploadState {
        message: RwSignal::new(None),
        busy: RwSignal::new(false),
        reload,
    };
    view! {
        <section id="library" class="library" data-hydrated=move || hydrated.get().to_string()>
            <h2>"Videos"</h2>
            <Transition fallback=|| view! { <p class="loading">"Listing the videos…"</p> }>
                {move || Suspend::new(async move {
                    match listing.await {
                        Ok(library) => view! { <VideoTable library upload/> }.into_any(),
                        Err(error) => view! {
                            <p class="error" role="alert">
                                {format!("The videos cannot be listed: {error}")}
                            </p>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The upload form's state: its last message, whether a file is on its way, and the list's
/// reload counter.
#[derive(Clone, Copy)]
struct UploadState {
    message: RwSignal<Option<Result<String, String>>>,
    busy: RwSignal<bool>,
    reload: RwSignal<u32>,
}

#[component]
fn VideoTable(library: Library, upload: UploadState) -> impl IntoView {
    let rows = library
        .videos
        .into_iter()
        .map(|video| view! { <VideoRow video/> })
        .collect_view();
    view! {
        <table class="videos">
            <thead><tr>
                <th>"Name"</th><th>"Duration"</th><th>"Resolution"</th><th>"Indexed"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
        <IndexLibrarySwitch on=library.index_library reload=upload.reload/>
        {library.max_upload_bytes.map(|limit| view! { <UploadForm limit upload/> })}
    }
}

#[component]
fn VideoRow(video: LibraryVideo) -> impl IntoView {
    let LibraryVideo {
        id,
        name,
        width,
        height,
        duration_s,
        indexed,
        progress,
        error,
        default,
        ..
    } = video;
    let title = if default {
        format!("{name} (config)")
    } else {
        name.clone()
    };
    match error {
        Some(error) => view! {
            <tr class="video broken" data-id=id data-name=name>
                <td>{title}</td>
                <td colspan="3" class="error">{error}</td>
            </tr>
        }
        .into_any(),
        None => view! {
            <tr class="video" data-id=id.clone() data-name=name>
                <td><a href=video_href(&id)>{title}</a></td>
                <td>{format_time(duration_s)}</td>
                <td>{format!("{width}×{height}")}</td>
                <td class="indexed" data-progress=progress.to_string()>{indexed_text(indexed, progress)}</td>
            </tr>
        }
        .into_any(),
    }
}

#[component]
fn UploadForm(limit: u64, upload: UploadState) -> impl IntoView {
    let input: NodeRef<leptos::html::Input> = NodeRef::new();
    let UploadState {
        message,
        busy,
        reload,
    } = upload;
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        client::upload(input.get_untracked(), limit, message, busy, reload);
        #[cfg(not(feature = "hydrate"))]
        let _ = (input, reload);
    };
    view! {
        <form id="upload" class="upload" on:submit=on_submit>
            <label>"Add a video (up to " {size_text(limit)} "): "
                <input id="upload-file" type="file" accept="video/*" node_ref=input/>
            </label>
            <button type="submit" disabled=move || busy.get()>
                {move || if busy.get() { "Uploading…" } else { "Upload" }}
            </button>
            {move || message.get().map(|m| match m {
                Ok(text) => view! { <p id="upload-message" class="ok">{text}</p> }.into_any(),
                Err(text) => view! { <p id="upload-message" class="error" role="alert">{text}</p> }.into_any(),
            })}
        </form>
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;
    use wasm_bindgen::JsCast;

    /// Sends the chosen file as the request body: the browser streams it from disk.
    pub fn upload(
        input: Option<web_sys::HtmlInputElement>,
        limit: u64,
        message: RwSignal<Option<Result<String, String>>>,
        busy: RwSignal<bool>,
        reload: RwSignal<u32>,
    ) {
        let Some(file) = input.and_then(|i| i.files()).and_then(|f| f.get(0)) else {
            message.set(Some(Err("choose a video file first".into())));
            return;
        };
        if file.size() as u64 > limit {
            message.set(Some(Err(format!(
                "{} is larger than the server accepts ({})",
                file.name(),
                super::size_text(limit)
            ))));
            return;
        }
        busy.set(true);
        message.set(None);
        let name = file.name();
        leptos::task::spawn_local(async move {
            let answer = send(&file, &name).await;
            busy.set(false);
            match answer {
                Ok(()) => {
                    message.set(Some(Ok(format!("{name} was added."))));
                    reload.update(|n| *n += 1);
                }
                Err(error) => message.set(Some(Err(error))),
            }
        });
    }

    async fn send(file: &web_sys::File, name: &str) -> Result<(), String> {
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_body(file);
        let url = format!(
            "{}?name={}",
            investigator_core::routes::UPLOAD_URL,
            String::from(js_sys::encode_uri_component(name))
        );
        let promise = window().fetch_with_str_and_init(&url, &init);
        let response = wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .map_err(|_| "the server cannot be reached".to_string())?
            .dyn_into::<web_sys::Response>()
            .map_err(|_| "the server's answer cannot be read".to_string())?;
        if response.ok() {
            return Ok(());
        }
        let text = match response.text() {
            Ok(promise) => wasm_bindgen_futures::JsFuture::from(promise)
                .await
                .ok()
                .and_then(|t| t.as_string())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        Err(format!("The upload was refused: {}", text.trim()))
    }
}

/// The switch that indexes every video in the background (for the library search); the list
/// reloads every few seconds while it is on, to show how far each video is.
#[component]
fn IndexLibrarySwitch(on: bool, reload: RwSignal<u32>) -> impl IntoView {
    let state = RwSignal::new(on);
    #[cfg(not(feature = "hydrate"))]
    let _ = reload;
    let on_change = move |ev: leptos::ev::Event| {
        let wanted = event_target_checked(&ev);
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            if let Ok(now) = crate::api::set_index_library(wanted).await {
                state.set(now);
                reload.update(|n| *n += 1);
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = wanted;
    };
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if state.get() {
            let handle = set_timeout_with_handle(
                move || reload.update(|n| *n += 1),
                std::time::Duration::from_secs(3),
            );
            on_cleanup(move || {
                if let Ok(h) = handle {
                    h.clear();
                }
            });
        }
    });
    view! {
        <p class="note">
            <label>
                <input id="index-library" type="checkbox" prop:checked=move || state.get() on:change=on_change/>
                " Index every video in the background (with every model), for "
                <a href="/search">"the library search"</a>
                "; the videos people open go first"
            </label>
        </p>
    }
}
