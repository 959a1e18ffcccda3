//! The view controls: the smoothing window and cosine similarity or probabilities.
//!
//! Invariant: the smoothing window stays within 1 to [`MAX_SMOOTH`] frames whatever is typed.

use leptos::prelude::*;

use super::{Investigation, MAX_SMOOTH};

#[component]
pub fn ViewControls(inv: Investigation) -> impl IntoView {
    let Investigation {
        smoothing, softmax, ..
    } = inv;
    view! {
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
    }
}
