//! The hover readout: every visible prompt's score at the frame under the mouse, highest
//! first.
//!
//! Invariant: shown only while the mouse is over a frame of the chart; says so when that frame
//! has no scores yet or could not be decoded, rather than showing numbers.

use leptos::prelude::*;

use super::Investigation;
use investigator_core::types::format_time;

#[component]
pub fn HoverReadout(inv: Investigation) -> impl IntoView {
    let Investigation { hover, curves, .. } = inv;
    move || {
        let frame = hover.get()?;
        let mut rows: Vec<(String, &'static str, f32, bool)> = curves.with(|cs| {
            cs.iter()
                .filter_map(|c| {
                    c.values
                        .get(frame as usize)
                        .map(|&v| (c.label(), c.color, v, c.dashed))
                })
                .collect()
        });
        rows.sort_by(|a, b| b.2.total_cmp(&a.2));
        let undecodable = !rows.is_empty() && rows.iter().all(|r| r.2.is_nan());
        let time = format_time(inv.time_of(frame));
        Some(view! {
            <div id="chart-readout" class="readout" data-frame=frame.to_string()>
                <div class="readout-head">{format!("frame {frame} · {time}")}</div>
                {if rows.is_empty() {
                    view! { <div class="readout-empty">"not indexed yet"</div> }.into_any()
                } else if undecodable {
                    view! { <div class="readout-empty">"this frame could not be decoded"</div> }.into_any()
                } else {
                    rows.into_iter().map(|(prompt, c, v, dashed)| {
                        let key = prompt.clone();
                        // A dashed curve's swatch is a dashed outline in its colour.
                        let swatch = if dashed {
                            format!("border:2px dashed {c}")
                        } else {
                            format!("background:{c}")
                        };
                        view! {
                        <div class="readout-row" data-prompt=key data-value=v.to_string()>
                            <span class="swatch" style=swatch></span>
                            <span class="readout-prompt">{prompt}</span>
                            <span class="readout-value">{format!("{v:.4}")}</span>
                        </div>
                    }}).collect_view().into_any()
                }}
            </div>
        })
    }
}
