//! The indexing status line of the page, and the poll that keeps it current; its words are
//! `investigator_core::status`.

use leptos::prelude::*;

use investigator_core::status::describe;
use investigator_core::types::{IndexState, IndexStatus};

/// The line for `status`, which [`poll`] keeps up to date; `compared`: the second model's.
#[component]
pub fn IndexStatusLine(
    status: RwSignal<Option<Result<IndexStatus, String>>>,
    #[prop(optional)] compared: bool,
) -> impl IntoView {
    let id = if compared {
        "index-status-compare"
    } else {
        "index-status"
    };
    let state = move || match status.get() {
        Some(Ok(s)) => format!("{:?}", s.state).to_lowercase(),
        Some(Err(_)) => "failed".into(),
        None => "unknown".into(),
    };
    view! {
        <div class="index-status-line">
            <div id=id class="index-status" role="status" data-state=state>
                {move || match status.get() {
                    Some(Ok(s)) if s.state == IndexState::Running => view! {
                        <progress max=s.total as f64 value=s.done as f64></progress>
                    }.into_any(),
                    _ => ().into_any(),
                }}
                <span>{move || match status.get() {
                    None => "Checking the CLIP index…".to_string(),
                    Some(Ok(s)) => describe(&s),
                    Some(Err(e)) => format!("Cannot reach the server: {e}"),
                }}</span>
            </div>
            {move || match status.get() {
                Some(Ok(IndexStatus { fast_seeking: Some(fast), .. })) if !compared => view! {
                    <span id="fast-seeking" class="fast-seeking" role="status"
                        data-frames=fast.frames.to_string() data-of=fast.of.to_string()
                        title="the share of the video whose display proxy is made: seeks there decode a few small pictures; elsewhere frames come from the video itself, and the part being watched is made first">
                        {if fast.complete() {
                            "Fast seeking everywhere".to_string()
                        } else {
                            format!("Fast seeking on {} % of the video", fast.percent())
                        }}
                    </span>
                }.into_any(),
                _ => ().into_any(),
            }}
        </div>
    }
}

/// Asks how `model`'s index of `video` stands now, and again every second until indexing
/// has finished or failed, or until `current` no longer names `model` (the page switched).
#[cfg(feature = "hydrate")]
pub fn poll(
    status: RwSignal<Option<Result<IndexStatus, String>>>,
    video: String,
    model: Option<String>,
    current: RwSignal<Option<String>>,
) {
    leptos::task::spawn_local(async move {
        let answer = crate::api::get_index_status(video.clone(), model.clone())
            .await
            .map_err(|e| crate::api::error_text(&e));
        if current.get_untracked() != model {
            return;
        }
        // Until indexing has ended and the display proxy (if any) is complete.
        let finished = matches!(&answer, Ok(s) if matches!(s.state, IndexState::Done | IndexState::Failed)
            && s.fast_seeking.is_none_or(|f| f.complete()));
        status.set(Some(answer));
        if !finished {
            set_timeout(
                move || poll(status, video, model, current),
                std::time::Duration::from_secs(1),
            );
        }
    });
}
