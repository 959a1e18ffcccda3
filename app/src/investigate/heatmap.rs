//! Why this score: a heatmap over the frame of where one prompt matches, for the paused (or
//! clicked) frame, by the shown model or the compared one. The controls sit under the player
//! ([`HeatmapControls`]); the map is a canvas over the frame ([`HeatmapOverlay`]): the
//! relevance of each patch (the server's, `api::explain`) upsampled to the model's crop, the
//! rest of the frame dimmed and labelled as never seen, the crop outlined; hovering reads the
//! value under the pointer.
//!
//! Invariants: a map is drawn only over the frame it was computed for (`data-frame` of the
//! overlay equals the `<img>`'s); nothing is computed while playing; one request per tab is in
//! flight, the latest wanted one next (dragging the slider does not queue a map per frame).

use leptos::prelude::*;

use super::{Investigation, ViewParams};
use investigator_core::explain::Explanation;

/// Where the heatmap stands, as the controls say it.
#[derive(Clone, Debug, PartialEq)]
pub enum HeatStatus {
    Off,
    /// Maps are computed for paused frames only.
    Playing,
    Computing(u64),
    Ready,
    Failed(String),
}

/// The heatmap's part of the page state (one `Copy` bundle, inside [`Investigation`]).
#[derive(Clone, Copy)]
pub struct HeatmapState {
    pub on: RwSignal<bool>,
    /// The prompt the map is for (`None`: the first on the list).
    pub prompt: RwSignal<Option<String>>,
    /// The compared model's map instead of the shown model's.
    pub compared: RwSignal<bool>,
    /// The first vision layer whose attention counts (`None`: the last).
    pub start_layer: RwSignal<Option<u32>>,
    /// 0 to 1.
    pub opacity: RwSignal<f64>,
    /// The map of the frame on screen, once computed.
    pub map: RwSignal<Option<Explanation>>,
    pub status: RwSignal<HeatStatus>,
    /// The value under the pointer, as the page says it.
    pub readout: RwSignal<Option<String>>,
    pub canvas: NodeRef<leptos::html::Canvas>,
}

impl HeatmapState {
    pub fn new(initial: &ViewParams) -> Self {
        Self {
            on: RwSignal::new(initial.heat.is_some()),
            prompt: RwSignal::new(initial.heat.clone()),
            compared: RwSignal::new(initial.heat_compared),
            start_layer: RwSignal::new(None),
            opacity: RwSignal::new(0.55),
            map: RwSignal::new(None),
            status: RwSignal::new(HeatStatus::Off),
            readout: RwSignal::new(None),
            canvas: NodeRef::new(),
        }
    }
}

/// The prompt the map is for: the chosen one, else the first of the list.
fn heat_prompt(inv: Investigation) -> Option<String> {
    inv.heat
        .prompt
        .get()
        .or_else(|| inv.prompts.with(|p| p.first().cloned()))
}

#[component]
pub fn HeatmapControls(inv: Investigation) -> impl IntoView {
    let heat = inv.heat;
    #[cfg(feature = "hydrate")]
    client::follow(inv);
    let on_toggle = move |_| heat.on.update(|on| *on = !*on);
    let on_prompt = move |ev: leptos::ev::Event| heat.prompt.set(Some(event_target_value(&ev)));
    let on_model = move |ev: leptos::ev::Event| heat.compared.set(event_target_value(&ev) == "b");
    let on_layer = move |ev: leptos::ev::Event| {
        heat.start_layer.set(event_target_value(&ev).parse().ok());
    };
    let on_opacity = move |ev: leptos::ev::Event| {
        if let Ok(percent) = event_target_value(&ev).parse::<f64>() {
            heat.opacity.set((percent / 100.0).clamp(0.0, 1.0));
        }
    };
    let prompt_options = move || {
        let chosen = heat_prompt(inv);
        let mut list = inv.prompts.get();
        if let Some(p) = &chosen {
            if !list.contains(p) {
                list.push(p.clone());
            }
        }
        list.into_iter()
            .map(|p| {
                let selected = chosen.as_ref() == Some(&p);
                view! { <option value=p.clone() selected=selected>{p.clone()}</option> }
            })
            .collect_view()
    };
    let layers = move || heat.map.with(|m| m.as_ref().map_or(0, |m| m.layers));
    let status = move || match heat.status.get() {
        HeatStatus::Off => String::new(),
        HeatStatus::Playing => "shown on paused frames: pause or click the chart".into(),
        HeatStatus::Computing(frame) => format!("computing frame {frame}…"),
        HeatStatus::Failed(message) => message,
        HeatStatus::Ready => heat.map.with(|m| {
            m.as_ref().map_or_else(String::new, |m| {
                format!(
                    "frame {} · {} · logit {:.3} (cosine {:.4}) · layers {}–{} of {}",
                    m.frame,
                    m.model,
                    m.logit,
                    m.cosine,
                    m.start_layer,
                    m.layers.saturating_sub(1),
                    m.layers
                )
            })
        }),
    };
    let state_name = move || match heat.status.get() {
        HeatStatus::Off => "off",
        HeatStatus::Playing => "playing",
        HeatStatus::Computing(_) => "computing",
        HeatStatus::Ready => "ready",
        HeatStatus::Failed(_) => "failed",
    };
    view! {
        <div id="heatmap-controls" class="heatmap-controls">
            <button id="heat-toggle" aria-pressed=move || heat.on.get().to_string() on:click=on_toggle
                title="Where in the frame the prompt matches (gradient-weighted attention relevance, Chefer et al. 2021)">
                "Heatmap"
            </button>
            <select id="heat-prompt" aria-label="heatmap prompt" on:change=on_prompt>{prompt_options}</select>
            {move || inv.compare.get().map(|b| {
                let a_name = inv.model_name(inv.model.get().as_deref());
                let b_name = inv.model_name(Some(&b));
                view! {
                    <select id="heat-model" aria-label="heatmap model" on:change=on_model>
                        <option value="a" selected=move || !heat.compared.get()>{a_name}</option>
                        <option value="b" selected=move || heat.compared.get()>{b_name}</option>
                    </select>
                }
            })}
            <select id="heat-layer" aria-label="first layer" on:change=on_layer
                title="The first vision layer whose attention counts">
                <option value="" selected=move || heat.start_layer.get().is_none()>"last layer"</option>
                {move || (0..layers()).map(|l| view! {
                    <option value=l.to_string() selected=move || heat.start_layer.get() == Some(l)>
                        {format!("from layer {l}")}
                    </option>
                }).collect_view()}
            </select>
            <label class="opacity">"opacity"
                <input id="heat-opacity" type="range" min="0" max="100"
                    prop:value=move || ((heat.opacity.get() * 100.0).round() as i64).to_string()
                    on:input=on_opacity/>
            </label>
            <span id="heat-status" class="note" data-state=state_name>{status}</span>
            {move || heat.map.with(|m| m.as_ref().and_then(Explanation::view_note)).filter(|_| heat.on.get()).map(|note| view! {
                <p id="heat-note" class="note">{note}</p>
            })}
        </div>
    }
}

#[component]
pub fn HeatmapOverlay(inv: Investigation) -> impl IntoView {
    let heat = inv.heat;
    let player = inv.player;
    // Drawn only over the frame it belongs to.
    let drawn = Memo::new(move |_| {
        let shown = player.shown.get();
        heat.map.with(|m| {
            m.as_ref()
                .filter(|m| heat.on.get() && !player.playing.get() && Some(m.frame) == shown)
                .cloned()
        })
    });
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let opacity = heat.opacity.get();
        drawn.with(|map| {
            if let (Some(map), Some(canvas)) = (map, heat.canvas.get()) {
                client::draw(&canvas, map, opacity);
            }
        });
    });
    let on_move = move |ev: leptos::ev::MouseEvent| {
        #[cfg(feature = "hydrate")]
        heat.readout
            .set(drawn.with_untracked(|m| m.as_ref().map(|m| client::read_at(&ev, m))));
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let crop = move |f: fn(&Explanation) -> f64| {
        move || drawn.with(|m| m.as_ref().map(|m| f(m).to_string()))
    };
    view! {
        <canvas id="heat-overlay" class="heat-overlay" node_ref=heat.canvas
            hidden=move || drawn.with(Option::is_none)
            data-frame=move || drawn.with(|m| m.as_ref().map(|m| m.frame.to_string()))
            data-prompt=move || drawn.with(|m| m.as_ref().map(|m| m.prompt.clone()))
            data-model=move || drawn.with(|m| m.as_ref().map(|m| m.model.clone()))
            data-start-layer=move || drawn.with(|m| m.as_ref().map(|m| m.start_layer.to_string()))
            data-crop-left=crop(|m| m.crop.left)
            data-crop-top=crop(|m| m.crop.top)
            data-crop-width=crop(|m| m.crop.width)
            data-crop-height=crop(|m| m.crop.height)
            on:mousemove=on_move
            on:mouseleave=move |_| heat.readout.set(None)
        ></canvas>
        {move || heat.readout.get().filter(|_| drawn.with(Option::is_some)).map(|text| view! {
            <span id="heat-readout" class="heat-readout">{text}</span>
        })}
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use std::collections::HashMap;

    use leptos::prelude::*;
    use leptos::task::spawn_local;
    use wasm_bindgen::{Clamped, JsCast};

    use super::{heat_prompt, HeatStatus, Investigation};
    use crate::api::{error_text, explain};
    use crate::browser;
    use investigator_core::explain::{heat_rgb, Explanation};

    /// What tells two maps apart.
    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    struct Key {
        video: String,
        model: Option<String>,
        frame: u64,
        prompt: String,
        start_layer: Option<u32>,
    }

    /// The model the map is for (`None`: the default).
    fn heat_model(inv: Investigation) -> Option<String> {
        if inv.heat.compared.get() && inv.compare.with(Option::is_some) {
            inv.compare.get()
        } else {
            inv.model.get()
        }
    }

    /// Maps kept in the tab (a few KB each).
    const KEPT: usize = 64;

    #[derive(Default)]
    struct Fetcher {
        in_flight: bool,
        /// The map the page wants now; asked for when the one in flight returns.
        wanted: Option<Key>,
        maps: HashMap<Key, Explanation>,
    }

    /// Keeps the map on the paused frame's, and the share link's `heat` on the map's prompt.
    pub fn follow(inv: Investigation) {
        let fetcher = StoredValue::new_local(Fetcher::default());
        let heat = inv.heat;
        Effect::new(move |_| {
            let on = heat.on.get();
            let prompt = heat_prompt(inv);
            browser::set_query_param("heat", prompt.as_deref().filter(|_| on));
            let compared = heat.compared.get() && inv.compare.with(Option::is_some);
            browser::set_query_param("heatm", (on && compared).then_some("b"));
            if !on {
                heat.status.set(HeatStatus::Off);
                fetcher.update_value(|f| f.wanted = None);
                return;
            }
            if inv.player.playing.get() {
                heat.status.set(HeatStatus::Playing);
                fetcher.update_value(|f| f.wanted = None);
                return;
            }
            let Some(prompt) = prompt else {
                heat.status.set(HeatStatus::Failed(
                    "add a prompt to see where it matches".into(),
                ));
                return;
            };
            let frame = inv.player.playhead.get();
            let key = Key {
                video: inv.player.info.with(|i| i.id.clone()),
                model: heat_model(inv),
                frame,
                prompt,
                start_layer: heat.start_layer.get(),
            };
            if let Some(map) = fetcher.with_value(|f| f.maps.get(&key).cloned()) {
                heat.map.set(Some(map));
                heat.status.set(HeatStatus::Ready);
                return;
            }
            heat.status.set(HeatStatus::Computing(frame));
            let send = fetcher
                .try_update_value(|f| {
                    f.wanted = Some(key.clone());
                    !std::mem::replace(&mut f.in_flight, true)
                })
                .unwrap_or(false);
            if send {
                request(inv, fetcher, key);
            }
        });
    }

    fn request(inv: Investigation, fetcher: StoredValue<Fetcher, LocalStorage>, key: Key) {
        let heat = inv.heat;
        spawn_local(async move {
            let answer = explain(
                key.video.clone(),
                key.model.clone(),
                key.frame,
                key.prompt.clone(),
                key.start_layer,
            )
            .await;
            let next = fetcher
                .try_update_value(|f| {
                    f.in_flight = false;
                    if let Ok(map) = &answer {
                        if f.maps.len() >= KEPT {
                            f.maps.clear();
                        }
                        f.maps.insert(key.clone(), map.clone());
                    }
                    match f.wanted.clone() {
                        Some(wanted) if wanted != key && !f.maps.contains_key(&wanted) => {
                            f.in_flight = true;
                            Some(wanted)
                        }
                        _ => None,
                    }
                })
                .flatten();
            let current = fetcher.with_value(|f| f.wanted.as_ref() == Some(&key));
            if current {
                match answer {
                    Ok(map) => {
                        heat.map.set(Some(map));
                        heat.status.set(HeatStatus::Ready);
                    }
                    Err(error) => heat.status.set(HeatStatus::Failed(error_text(&error))),
                }
            } else if let Some(map) =
                fetcher.with_value(|f| f.wanted.as_ref().and_then(|w| f.maps.get(w).cloned()))
            {
                heat.map.set(Some(map));
                heat.status.set(HeatStatus::Ready);
            }
            if let Some(next) = next {
                request(inv, fetcher, next);
            }
        });
    }

    /// Draws `map` on `canvas` (the frame's size; CSS fits it over the `<img>` as the image is
    /// fitted): the dimmed outside of the crop, saying so, the map upsampled (bilinear) into
    /// the crop at `opacity`, the crop's outline.
    pub fn draw(canvas: &web_sys::HtmlCanvasElement, map: &Explanation, opacity: f64) {
        let (w, h) = (map.frame_width.max(1), map.frame_height.max(1));
        canvas.set_width(w);
        canvas.set_height(h);
        let Some(ctx) = context(canvas) else { return };
        let (w, h) = (f64::from(w), f64::from(h));
        ctx.clear_rect(0.0, 0.0, w, h);
        let c = map.crop;
        let (left, top) = (c.left.max(0.0), c.top.max(0.0));
        let (right, bottom) = (c.right().min(w), c.bottom().min(h));
        ctx.set_fill_style_str("rgba(0, 0, 0, 0.65)");
        ctx.fill_rect(0.0, 0.0, w, top);
        ctx.fill_rect(0.0, bottom, w, h - bottom);
        ctx.fill_rect(0.0, top, left, bottom - top);
        ctx.fill_rect(right, top, w - right, bottom - top);
        // Say so where there is room.
        let size = (h / 28.0).max(11.0);
        ctx.set_font(&format!("{size}px sans-serif"));
        ctx.set_fill_style_str("rgba(255, 255, 255, 0.85)");
        ctx.set_text_align("center");
        for (x0, x1) in [(0.0, left), (right, w)] {
            if x1 - x0 > size * 4.0 {
                let _ = ctx.fill_text_with_max_width(
                    "not seen",
                    (x0 + x1) / 2.0,
                    h / 2.0 - size * 0.6,
                    x1 - x0 - 8.0,
                );
                let _ = ctx.fill_text_with_max_width(
                    "by the model",
                    (x0 + x1) / 2.0,
                    h / 2.0 + size * 0.6,
                    x1 - x0 - 8.0,
                );
            }
        }
        if let Some(grid) = grid_canvas(map) {
            ctx.save();
            ctx.begin_path();
            ctx.rect(left, top, right - left, bottom - top);
            ctx.clip();
            ctx.set_global_alpha(opacity.clamp(0.0, 1.0));
            ctx.set_image_smoothing_enabled(true);
            let _ = ctx.draw_image_with_html_canvas_element_and_dw_and_dh(
                &grid, c.left, c.top, c.width, c.height,
            );
            ctx.restore();
        }
        ctx.set_stroke_style_str("#ffffff");
        let line = (w / 400.0).max(2.0);
        ctx.set_line_width(line);
        ctx.stroke_rect(
            left + line / 2.0,
            top + line / 2.0,
            right - left - line,
            bottom - top - line,
        );
    }

    fn context(canvas: &web_sys::HtmlCanvasElement) -> Option<web_sys::CanvasRenderingContext2d> {
        canvas
            .get_context("2d")
            .ok()
            .flatten()?
            .dyn_into::<web_sys::CanvasRenderingContext2d>()
            .ok()
    }

    /// The map at one pixel per patch, in the heat colours.
    fn grid_canvas(map: &Explanation) -> Option<web_sys::HtmlCanvasElement> {
        let (rows, cols) = (map.rows, map.cols);
        let values = map.normalized();
        if rows == 0 || cols == 0 || values.len() != (rows * cols) as usize {
            return None;
        }
        let mut rgba = Vec::with_capacity(values.len() * 4);
        for v in values {
            let [r, g, b] = heat_rgb(v);
            rgba.extend_from_slice(&[r, g, b, 255]);
        }
        let grid = document()
            .create_element("canvas")
            .ok()?
            .dyn_into::<web_sys::HtmlCanvasElement>()
            .ok()?;
        grid.set_width(cols);
        grid.set_height(rows);
        let image =
            web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), cols, rows)
                .ok()?;
        context(&grid)?.put_image_data(&image, 0.0, 0.0).ok()?;
        Some(grid)
    }

    /// What the pointer is over: the value of its patch, or that the model does not see it.
    pub fn read_at(ev: &web_sys::MouseEvent, map: &Explanation) -> String {
        let Some(target) = ev
            .current_target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return String::new();
        };
        let rect = target.get_bounding_client_rect();
        let (fw, fh) = (
            f64::from(map.frame_width.max(1)),
            f64::from(map.frame_height.max(1)),
        );
        // The canvas is fitted as the image is (object-fit: contain): centred, scaled.
        let scale = (rect.width() / fw).min(rect.height() / fh);
        let x0 = rect.left() + (rect.width() - fw * scale) / 2.0;
        let y0 = rect.top() + (rect.height() - fh * scale) / 2.0;
        let x = (f64::from(ev.client_x()) - x0) / scale;
        let y = (f64::from(ev.client_y()) - y0) / scale;
        match (map.patch_at(x, y), map.value_at(x, y)) {
            (Some((row, col)), Some((raw, share))) => {
                format!("relevance {raw:.4} ({share:.2} on the map's scale, lowest 0 to highest 1) · patch row {row}, column {col}")
            }
            _ if x >= 0.0 && y >= 0.0 && x < fw && y < fh => {
                "the model does not see this part of the frame".into()
            }
            _ => String::new(),
        }
    }
}
