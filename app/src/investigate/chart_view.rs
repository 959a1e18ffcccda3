//! The similarity chart: the canvas (click or drag to seek, Shift-drag to pick a span, hover to
//! read the scores, wheel to zoom, double-click to reset the zoom), moments as bands, scene cuts
//! as ticks, the hover readout and the visible range's label.
//!
//! Invariants: the canvas's `data-*` attributes describe what is drawn (the end-to-end tests
//! read them); a mouse position becomes a frame only through the transform of the last draw,
//! so a click lands on the frame drawn under it.

use leptos::prelude::*;

use super::readout::HoverReadout;
use super::Investigation;
use crate::player;
use investigator_core::types::format_time;

#[component]
pub fn ChartView(inv: Investigation) -> impl IntoView {
    let Investigation {
        player,
        hover,
        x_range,
        redraws,
        curves,
        canvas: canvas_ref,
        ..
    } = inv;
    let total = move || player.info.with(|i| i.frames);
    let full_range = move || (-0.5, total() as f64 - 0.5);
    let visible = move || x_range.get().unwrap_or_else(full_range);

    #[cfg(feature = "hydrate")]
    let mapping = client::chart_effect(inv);

    // Mouse: click or drag seeks, moving shows the readout, wheel zooms, double-click resets.
    let dragging = RwSignal::new(false);
    let frame_under = move |ev: &leptos::ev::MouseEvent| -> Option<u64> {
        #[cfg(feature = "hydrate")]
        {
            let canvas = canvas_ref.get_untracked()?;
            // Offsets from the canvas's exact position: Chrome rounds offsetX/Y to whole pixels,
            // which can move a click into the neighbouring frame's pixel.
            let client = |name: &str| {
                js_sys::Reflect::get(ev, &name.into())
                    .ok()
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0)
            };
            let rect = canvas.get_bounding_client_rect();
            let offset = (
                client("clientX") - rect.left(),
                client("clientY") - rect.top(),
            );
            let x = mapping.with_value(|m| {
                m.as_ref()
                    .and_then(|m| crate::chart::frame_at(m, &canvas, offset))
            })?;
            let last = player.last_frame();
            Some((x.round().max(0.0) as u64).min(last))
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = ev;
            None
        }
    };
    // Shift-drag picks a span (to export as a clip) instead of seeking.
    let picking = RwSignal::new(None::<u64>);
    let on_down = move |ev: leptos::ev::MouseEvent| {
        if ev.button() == 0 {
            if let Some(frame) = frame_under(&ev) {
                if ev.shift_key() {
                    ev.prevent_default();
                    picking.set(Some(frame));
                    inv.selection.set(Some((frame, frame)));
                    return;
                }
                dragging.set(true);
                player::seek(player, frame);
            }
        }
    };
    let on_move = move |ev: leptos::ev::MouseEvent| {
        let frame = frame_under(&ev);
        hover.set(frame);
        if let (Some(anchor), Some(frame)) = (picking.get_untracked(), frame) {
            if ev.buttons() & 1 == 1 {
                inv.selection
                    .set(Some((anchor.min(frame), anchor.max(frame))));
            }
            return;
        }
        if dragging.get_untracked() && ev.buttons() & 1 == 1 {
            if let Some(frame) = frame {
                if player.playhead.get_untracked() != frame {
                    player::seek(player, frame);
                }
            }
        }
    };
    let on_up = move |_| {
        dragging.set(false);
        picking.set(None);
    };
    let on_leave = move |_| {
        hover.set(None);
        dragging.set(false);
        picking.set(None);
    };
    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        let Some(frame) = frame_under(&ev) else {
            return;
        };
        ev.prevent_default();
        let factor = if ev.delta_y() < 0.0 { 0.8 } else { 1.25 };
        let next = investigator_core::chart::zoom(visible(), frame as f64, factor, total());
        x_range.set((next != full_range()).then_some(next));
    };
    let on_dblclick = move |_| x_range.set(None);

    let range_label = move || {
        let (a, b) = visible();
        let a = (a.ceil().max(0.0)) as u64;
        let b = (b.floor().max(0.0) as u64).min(total().saturating_sub(1));
        let zoomed = x_range.get().is_some();
        format!(
            "{}frames {a}–{b} ({} – {}){}",
            if zoomed { "zoomed: " } else { "" },
            format_time(inv.time_of(a)),
            format_time(inv.time_of(b)),
            if zoomed {
                " · double-click to reset"
            } else {
                " · wheel to zoom"
            }
        )
    };
    // "1 sample / 0.5 s, refining…" while a coarse-to-fine index refines the curves.
    let fineness = move || {
        inv.series.with(|s| match s {
            Some(s) if s.refining && s.spacing_frames > 1 => view! {
                <span id="chart-fineness" class="fineness">
                    {format!(" · {}, refining…", investigator_core::status::spacing_text(s.spacing_s))}
                </span>
            }
            .into_any(),
            _ => ().into_any(),
        })
    };
    let y_label = move || inv.y_label();

    view! {
        <div class="chart-box">
            <canvas id="chart" node_ref=canvas_ref
                data-lines=move || curves.with(|c| c.len().to_string())
                data-prompts=move || curves.with(|c| serde_json::to_string(&c.iter().map(|c| &c.prompt).collect::<Vec<_>>()).unwrap_or_default())
                data-labels=move || curves.with(|c| serde_json::to_string(&c.iter().map(|c| c.label()).collect::<Vec<_>>()).unwrap_or_default())
                data-dashed=move || curves.with(|c| c.iter().filter(|c| c.dashed).count().to_string())
                data-adapted=move || curves.with(|c| adapted_summary(c))
                data-covered=move || curves.with(|c| c.iter().map(|c| c.values.len()).max().unwrap_or(0).to_string())
                data-spacing=move || inv.series.with(|s| s.as_ref().map_or(0, |s| s.spacing_frames).to_string())
                data-y-label=y_label
                data-redraws=move || redraws.get().to_string()
                on:mousedown=on_down on:mousemove=on_move on:mouseup=on_up
                on:mouseleave=on_leave on:wheel=on_wheel on:dblclick=on_dblclick
            ></canvas>
            <HoverReadout inv/>
        </div>
        <p id="chart-range" class="range">{range_label}{fineness}</p>
    }
}

/// The adapted curves as the tests read them: each one's label and the mean of its values.
fn adapted_summary(curves: &[investigator_core::chart::Curve]) -> String {
    let list: Vec<serde_json::Value> = curves
        .iter()
        .filter(|c| c.adapted)
        .map(|c| {
            let known: Vec<f64> = c
                .values
                .iter()
                .filter(|v| v.is_finite())
                .map(|&v| f64::from(v))
                .collect();
            let mean = known.iter().sum::<f64>() / known.len().max(1) as f64;
            serde_json::json!({"label": c.label(), "mean": mean})
        })
        .collect();
    serde_json::to_string(&list).unwrap_or_default()
}

#[cfg(feature = "hydrate")]
mod client {
    use leptos::prelude::*;

    use super::Investigation;
    use crate::browser;

    /// Redraws the chart whenever what it shows changes, and on window resize; returns the
    /// chart's coordinate transform for mouse events.
    pub fn chart_effect(
        inv: Investigation,
    ) -> StoredValue<Option<crate::chart::Mapping>, LocalStorage> {
        let mapping = StoredValue::new_local(None);
        let resized = RwSignal::new(0u32);
        let listener =
            window_event_listener(leptos::ev::resize, move |_| resized.update(|n| *n += 1));
        std::mem::forget(listener);
        crate::investigate::chart_hook::install_test_hook(
            mapping,
            inv.canvas,
            resized,
            inv.player.info.with_untracked(|i| i.fps),
        );
        Effect::new(move |_| {
            resized.track();
            let Some(canvas) = inv.canvas.get() else {
                return;
            };
            let total = inv.player.info.with(|i| i.frames);
            let marks: Vec<u64> = inv
                .hits
                .with(|h| h.iter().map(|(hit, _)| hit.frame).collect());
            let (bands, band_color, thresholds) = moment_marks(inv);
            let cuts = inv
                .series
                .with(|s| s.as_ref().map(|s| s.cuts.clone()).unwrap_or_default());
            let _ = canvas.set_attribute(
                "data-bands",
                &serde_json::to_string(&bands).unwrap_or_default(),
            );
            let _ = canvas.set_attribute(
                "data-cuts",
                &serde_json::to_string(&cuts).unwrap_or_default(),
            );
            let errors: Vec<(u64, u64, bool)> = inv
                .error_spans()
                .iter()
                .map(|e| {
                    (
                        e.start,
                        e.end,
                        e.kind == investigator_core::evaluation::ErrorKind::FalsePositive,
                    )
                })
                .collect();
            let _ = canvas.set_attribute(
                "data-errors",
                &serde_json::to_string(&errors).unwrap_or_default(),
            );
            let started = browser::now_ms();
            let drawn = inv.curves.with(|curves| {
                crate::chart::draw(
                    &canvas,
                    &crate::chart::ChartInput {
                        curves,
                        x_range: inv.x_range.get().unwrap_or((-0.5, total as f64 - 0.5)),
                        fps: inv.player.info.with(|i| i.fps),
                        frame_times_ms: &inv.player.info.with(|i| i.frame_times_ms.clone()),
                        y_label: inv.y_label(),
                        playhead: inv.player.playhead.get(),
                        hover: inv.hover.get(),
                        marks: &marks,
                        bands: &bands,
                        band_color,
                        thresholds: &thresholds,
                        cuts: &cuts,
                        selection: inv.selection.get(),
                        errors: &errors,
                    },
                )
            });
            let _ = canvas.set_attribute(
                "data-draw-ms",
                &format!("{:.2}", browser::now_ms() - started),
            );
            let area = drawn.as_ref().map(|m| super::plot_area(m, &canvas));
            if inv.plot_area.get_untracked() != area {
                inv.plot_area.set(area);
            }
            mapping.set_value(drawn);
            inv.redraws.update(|n| *n += 1);
        });
        mapping
    }

    /// The moments' bands, their colour (the query's first prompt's) and the thresholds of the
    /// positive prompts, each in its prompt's colour.
    fn moment_marks(
        inv: Investigation,
    ) -> (Vec<(u64, u64)>, &'static str, Vec<(f32, &'static str)>) {
        let Some(query) = inv.query.get() else {
            return (Vec::new(), "#ffffff", Vec::new());
        };
        let colors = inv.colors.get();
        let color_of = |prompt: &str| {
            colors
                .get(prompt)
                .map_or("#ffffff", |&slot| investigator_core::chart::color(slot))
        };
        let band_color = query
            .all_of
            .first()
            .map_or("#ffffff", |c| color_of(&c.prompt));
        inv.moments.with(|m| match m {
            Some(Ok(found)) => (
                found
                    .moments
                    .iter()
                    .map(|m| (m.start_frame, m.end_frame))
                    .collect(),
                band_color,
                query
                    .all_of
                    .iter()
                    .zip(&found.thresholds)
                    .map(|(c, &t)| (t, color_of(&c.prompt)))
                    .collect(),
            ),
            _ => (Vec::new(), band_color, Vec::new()),
        })
    }
}

/// Where the plot area of the last draw lies, in CSS pixels from the canvas's left edge, and
/// the frames it spans (for what is drawn in HTML beside the chart, such as the label track).
#[cfg(feature = "hydrate")]
fn plot_area(
    mapping: &crate::chart::Mapping,
    canvas: &web_sys::HtmlCanvasElement,
) -> super::PlotArea {
    use plotters::coord::CoordTranslate;
    let scale = canvas.width() as f64 / canvas.client_width().max(1) as f64;
    let (from, to) = (mapping.get_x_range().start, mapping.get_x_range().end);
    let y = mapping.get_y_range().start;
    super::PlotArea {
        left: mapping.translate(&(from, y)).0 as f64 / scale,
        right: mapping.translate(&(to, y)).0 as f64 / scale,
        from,
        to,
    }
}
