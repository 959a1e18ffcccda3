//! `window.clipChart` (browser only): hooks into the chart for the end-to-end tests and the
//! redraw benchmark.
//!
//! Invariant: the hooks go through the same transform and rounding as real mouse events, so a
//! test that clicks where `pointOfFrame` says lands on that frame.

use leptos::prelude::*;
use plotters::coord::CoordTranslate;
use wasm_bindgen::prelude::*;

use crate::browser;
use investigator_core::chart::Curve;

/// Installs `window.clipChart` for the chart on `canvas`.
pub fn install_test_hook(
    mapping: StoredValue<Option<crate::chart::Mapping>, LocalStorage>,
    canvas: NodeRef<leptos::html::Canvas>,
    resized: RwSignal<u32>,
    fps: f64,
) {
    // `clipChart.pointOfFrame(f)`: whole-pixel page (client) coordinates where a click
    // lands on frame `f` through the same transform and rounding as real clicks; the middle
    // of such points when there are several. Null when no whole pixel maps to `f` (more
    // frames than pixels: zoom in).
    let point_of_frame = Closure::<dyn Fn(f64) -> JsValue>::new(move |frame: f64| {
        let Some(canvas) = canvas.get_untracked() else {
            return JsValue::NULL;
        };
        let rect = canvas.get_bounding_client_rect();
        let scale = canvas.width() as f64 / canvas.client_width().max(1) as f64;
        let found = mapping.try_with_value(|m| {
            let m = m.as_ref()?;
            let (ys, ye) = (m.get_y_range().start, m.get_y_range().end);
            let (x, y) = m.translate(&(frame, (ys + ye) / 2.0));
            let guess = (rect.left() + x as f64 / scale).round() as i64;
            let hits: Vec<i64> = (guess - 6..=guess + 6)
                .filter(|&cx| {
                    crate::chart::frame_at(m, &canvas, (cx as f64 - rect.left(), y as f64 / scale))
                        .is_some_and(|v| v.round().max(0.0) == frame)
                })
                .collect();
            let cx = *hits.get(hits.len() / 2)?;
            Some((cx as f64, (rect.top() + y as f64 / scale).round()))
        });
        match found.flatten() {
            Some((x, y)) => {
                let out = js_sys::Array::new();
                out.push(&JsValue::from_f64(x));
                out.push(&JsValue::from_f64(y));
                out.into()
            }
            None => JsValue::NULL,
        }
    });
    // `clipChart.drawBenchmark(frames, prompts)`: milliseconds to draw that many synthetic
    // curves on the chart's canvas (the real chart is redrawn right after).
    let draw_benchmark =
        Closure::<dyn Fn(f64, f64) -> f64>::new(move |frames: f64, prompts: f64| {
            let Some(canvas) = canvas.get_untracked() else {
                return f64::NAN;
            };
            let frames = frames.max(1.0) as usize;
            let curves: Vec<Curve> = (0..prompts.max(1.0) as usize)
                .map(|p| Curve {
                    prompt: format!("prompt {p}"),
                    color: investigator_core::chart::color(p),
                    values: (0..frames)
                        .map(|n| {
                            (0.2 + 0.05 * ((n as f32 / 500.0) + p as f32).sin())
                                + 0.01 * ((n * 7919 % 101) as f32 / 101.0)
                        })
                        .collect(),
                    model: None,
                    dashed: false,
                    adapted: false,
                })
                .collect();
            let started = browser::now_ms();
            crate::chart::draw(
                &canvas,
                &crate::chart::ChartInput {
                    curves: &curves,
                    x_range: (-0.5, frames as f64 - 0.5),
                    fps,
                    frame_times_ms: &[],
                    y_label: "cosine similarity",
                    playhead: frames as u64 / 2,
                    hover: None,
                    marks: &[],
                    bands: &[],
                    band_color: "#ffffff",
                    thresholds: &[],
                    cuts: &[],
                    selection: None,
                    errors: &[],
                },
            );
            let ms = browser::now_ms() - started;
            resized.update(|n| *n += 1);
            ms
        });
    let hook = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&hook, &"pointOfFrame".into(), point_of_frame.as_ref());
    let _ = js_sys::Reflect::set(&hook, &"drawBenchmark".into(), draw_benchmark.as_ref());
    draw_benchmark.forget();
    let _ = js_sys::Reflect::set(&window(), &"clipChart".into(), &hook);
    point_of_frame.forget();
}
