//! The prompt list and editor: each prompt with its colour (click to show or hide its curve),
//! editable in place, removable; and the field that adds one.
//!
//! Invariant: every change goes through [`Investigation::set_prompts`], so the list stays
//! trimmed and free of blanks and repeats; rows are addressed by position.

use std::collections::HashSet;

use leptos::prelude::*;

use super::Investigation;
use investigator_core::chart::color;

#[component]
pub fn PromptList(inv: Investigation) -> impl IntoView {
    let Investigation {
        prompts,
        hidden,
        colors,
        series,
        ..
    } = inv;
    let new_prompt = RwSignal::new(String::new());
    let add_prompt = move || {
        let text = new_prompt.get_untracked();
        if !text.trim().is_empty() {
            let mut list = prompts.get_untracked();
            list.push(text);
            inv.set_prompts(list);
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
                        inv.set_prompts(list);
                    }
                };
                let remove = move |_| {
                    let mut list = prompts.get_untracked();
                    if i < list.len() {
                        list.remove(i);
                        inv.set_prompts(list);
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

    view! {
        <h3>"Prompts"</h3>
        <ul id="prompt-list" class="prompts">{legend}</ul>
        <form class="add-prompt" on:submit=move |ev: leptos::ev::SubmitEvent| { ev.prevent_default(); add_prompt(); }>
            <input id="new-prompt" type="text" placeholder="add a prompt, e.g. a red door"
                prop:value=move || new_prompt.get()
                on:input=move |ev| new_prompt.set(event_target_value(&ev))/>
            <button id="add-prompt" type="submit">"Add"</button>
        </form>
    }
}
