//! The view controls: the model and a second model to compare with (both lines, or their
//! difference), the smoothing window, and cosine similarity or probabilities.
//!
//! Invariants: the smoothing window stays within 1 to [`MAX_SMOOTH`] frames whatever is typed;
//! the second model is never the first (picking the first's model as the second clears it);
//! the model pickers show only when the server offers more than one model.

use leptos::prelude::*;

use super::{Investigation, MAX_SMOOTH};

#[component]
pub fn ViewControls(inv: Investigation) -> impl IntoView {
    let Investigation {
        smoothing,
        softmax,
        models,
        model,
        compare,
        difference,
        ..
    } = inv;
    // The default model is `None` in the state: the picker shows its id.
    let selected = move || {
        model
            .get()
            .or_else(|| models.with(|m| m.first().map(|m| m.id.clone())))
            .unwrap_or_default()
    };
    let on_model = move |ev: leptos::ev::Event| {
        let id = event_target_value(&ev);
        let default = models.with_untracked(|m| m.first().map(|m| m.id.clone()));
        let id = (Some(&id) != default.as_ref()).then_some(id);
        if compare.get_untracked().is_some() && compare.get_untracked() == id.clone().or(default) {
            compare.set(None);
            difference.set(false);
        }
        model.set(id);
    };
    let on_compare = move |ev: leptos::ev::Event| {
        let id = event_target_value(&ev);
        let first = selected();
        let id = (!id.is_empty() && id != first).then_some(id);
        if id.is_none() {
            difference.set(false);
        }
        compare.set(id);
    };
    let options = move |skip_selected: bool| {
        let first = selected();
        models
            .get()
            .into_iter()
            .filter(|m| !(skip_selected && m.id == first))
            .map(|m| {
                let chosen = if skip_selected {
                    compare.get().as_deref() == Some(m.id.as_str())
                } else {
                    m.id == first
                };
                view! { <option value=m.id.clone() selected=chosen>{m.label}</option> }
            })
            .collect_view()
    };
    let pickers = move || {
        (models.with(|m| m.len()) > 1).then(|| {
            view! {
                <label>"Model "
                    <select id="model" prop:value=selected on:change=on_model>
                        {move || options(false)}
                    </select>
                </label>
                <label>"compare with "
                    <select id="compare" prop:value=move || compare.get().unwrap_or_default()
                        on:change=on_compare>
                        <option value="">"—"</option>
                        {move || options(true)}
                    </select>
                </label>
                {move || compare.with(|c| c.is_some()).then(|| view! {
                    <label>
                        <input id="difference" type="checkbox" prop:checked=move || difference.get()
                            on:change=move |ev| difference.set(event_target_checked(&ev))/>
                        " difference (first − second)"
                    </label>
                })}
            }
        })
    };
    // SigLIP's probabilities are a sigmoid per prompt, CLIP's a softmax across them.
    let probability_label = move || {
        let sigmoid = inv
            .series
            .with(|s| s.as_ref().is_some_and(|s| s.logit_bias.is_some()));
        if sigmoid {
            " probabilities (sigmoid per prompt)"
        } else {
            " probabilities (softmax over prompts)"
        }
    };
    view! {
        <div class="view-controls">
            {pickers}
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
                <span id="probability-label">{probability_label}</span>
            </label>
        </div>
    }
}
