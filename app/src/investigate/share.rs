//! Share and export: the page's address is kept a share link of the current view; buttons copy
//! it and download the visible curves as CSV or JSON, or the chart as PNG.
//!
//! Invariant: exports hold exactly the curves on the chart (hidden prompts left out), in the
//! view's values (cosine or probability, smoothed), named after the video's file.

use leptos::prelude::*;

use super::Investigation;

#[component]
pub fn ShareButtons(inv: Investigation) -> impl IntoView {
    let copied = inv.copied;
    // The share link follows the view.
    #[cfg(feature = "hydrate")]
    client::follow_view(inv);
    let on_copy = move |_| {
        #[cfg(feature = "hydrate")]
        {
            crate::browser::copy_to_clipboard(&crate::browser::current_url());
            copied.set(true);
        }
    };
    let on_export = move |kind: &'static str| {
        move |_| {
            #[cfg(feature = "hydrate")]
            client::export(kind, inv);
            #[cfg(not(feature = "hydrate"))]
            let _ = kind;
        }
    };
    view! {
        <button id="copy-link" on:click=on_copy>"Copy link"</button>
        {move || copied.get().then(|| view! { <span class="note">"copied"</span> })}
        <button id="export-csv" on:click=on_export("csv")>"CSV"</button>
        <button id="export-json" on:click=on_export("json")>"JSON"</button>
        <button id="export-png" on:click=on_export("png")>"PNG"</button>
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;

    use super::Investigation;
    use crate::browser;
    use crate::investigate::curves_csv;

    /// Keeps the address bar's `p`, `smooth`, `view`, `model`, `compare`, `diff` and `eval`
    /// parameters on the current view.
    pub fn follow_view(inv: Investigation) {
        Effect::new(move |_| {
            browser::replace_view_params(
                &inv.prompts.get(),
                inv.smoothing.get(),
                inv.softmax.get(),
            );
            browser::replace_model_params(
                inv.model.get().as_deref(),
                inv.compare.get().as_deref(),
                inv.difference.get(),
            );
            browser::set_query_param("eval", inv.evaluated_prompt.get().as_deref());
        });
    }

    /// Downloads `kind` ("csv", "json", else the chart as PNG).
    pub fn export(kind: &str, inv: Investigation) {
        let Investigation {
            player,
            curves,
            canvas,
            ..
        } = inv;
        let softmax = inv.softmax.get_untracked();
        let name = player.info.with_untracked(|i| i.name.clone());
        let stem = name
            .rsplit_once('.')
            .map_or(name.as_str(), |(s, _)| s)
            .to_string();
        let fps = player.info.with_untracked(|i| i.fps);
        match kind {
            "csv" => {
                let csv = curves
                    .with_untracked(|c| player.info.with_untracked(|info| curves_csv(c, info)));
                browser::download_text(&format!("{stem}-scores.csv"), "text/csv", &csv);
            }
            "json" => {
                let json = curves.with_untracked(|cs| {
                    let scores: serde_json::Map<String, serde_json::Value> = cs
                        .iter()
                        .map(|c| (c.label(), serde_json::json!(c.values)))
                        .collect();
                    serde_json::json!({
                        "video": name,
                        "fps": fps,
                        "model": inv.model_name(inv.model.get_untracked().as_deref()),
                        "compare": inv.compare.get_untracked().map(|b| inv.model_name(Some(&b))),
                        "view": match (inv.difference.get_untracked() && inv.compare.get_untracked().is_some(), softmax) {
                            (true, true) => "probability difference",
                            (true, false) => "cosine difference",
                            (false, true) => "probability",
                            (false, false) => "cosine",
                        },
                        "scores": scores,
                    })
                    .to_string()
                });
                browser::download_text(&format!("{stem}-scores.json"), "application/json", &json);
            }
            _ => {
                if let Some(url) = canvas.get_untracked().and_then(|c| c.to_data_url().ok()) {
                    browser::download_url(&format!("{stem}-chart.png"), &url);
                }
            }
        }
    }
}
