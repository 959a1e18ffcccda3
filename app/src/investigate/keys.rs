//! Keyboard shortcuts (play, step, jump, previous/next scene cut, next/previous error) and the
//! help that lists them, opened by `?` or its button and closed by Escape or a click.
//!
//! Invariant: keys typed into a field, or with Ctrl, Meta or Alt, are left to the browser; a
//! key that moves the playhead pauses playback first.

use leptos::prelude::*;

use super::Investigation;

/// The button that opens or closes the help.
#[component]
pub fn HelpButton(inv: Investigation) -> impl IntoView {
    let show_help = inv.show_help;
    view! {
        <button id="show-help" on:click=move |_| show_help.update(|s| *s = !*s)>"Keys (?)"</button>
    }
}

/// The help, while open; also starts listening for the shortcuts.
#[component]
pub fn HelpDialog(inv: Investigation) -> impl IntoView {
    let show_help = inv.show_help;
    #[cfg(feature = "hydrate")]
    Effect::new(move |first: Option<()>| {
        if first.is_none() {
            client::keyboard(inv);
        }
    });
    move || {
        show_help.get().then(|| view! {
            <div id="help" class="help" role="dialog" on:click=move |_| show_help.set(false)>
                <h3>"Keyboard"</h3>
                <dl>
                    <dt>"Space"</dt><dd>"play / pause"</dd>
                    <dt>"← / →"</dt><dd>"one frame back / forward"</dd>
                    <dt>"Shift + ← / →"</dt><dd>"one second back / forward"</dd>
                    <dt>"Home / End"</dt><dd>"first / last frame"</dd>
                    <dt>"[ / ]"</dt><dd>"previous / next scene cut"</dd>
                    <dt>"e / Shift + e"</dt><dd>"next / previous error of the evaluated prompt"</dd>
                    <dt>"?"</dt><dd>"this help"</dd>
                </dl>
                <p class="note">"Chart: click or drag to seek, Shift-drag to pick a span to download, wheel to zoom, double-click to reset the zoom. Ticks on the time axis are scene cuts."</p>
            </div>
        })
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;

    use super::Investigation;
    use crate::player;

    pub fn keyboard(inv: Investigation) {
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
            let player = inv.player;
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
                "[" | "]" => {
                    let cuts = inv
                        .series
                        .with_untracked(|s| s.as_ref().map(|s| s.cuts.clone()).unwrap_or_default());
                    let found = if ev.key() == "[" {
                        cuts.iter().rev().find(|&&c| c < now).copied().or(Some(0))
                    } else {
                        cuts.iter().find(|&&c| c > now).copied()
                    };
                    match found {
                        Some(cut) => Some(cut),
                        None => return,
                    }
                }
                "e" | "E" => {
                    let starts: Vec<u64> = inv.error_spans().iter().map(|e| e.start).collect();
                    let found = if ev.shift_key() {
                        starts.iter().rev().find(|&&s| s < now).copied()
                    } else {
                        starts.iter().find(|&&s| s > now).copied()
                    };
                    match found {
                        Some(start) => Some(start),
                        None => return,
                    }
                }
                "Home" => Some(0),
                "End" => Some(last),
                "?" => {
                    inv.show_help.update(|s| *s = !*s);
                    None
                }
                "Escape" => {
                    inv.show_help.set(false);
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
}
