//! Drawing the similarity chart with plotters on a `<canvas>` (hydrated client only), and
//! mapping pointer positions back to frames through the chart's own transform. The pure maths
//! (colours, decimation, ranges) is `investigator_core::chart`.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::ReverseCoordTranslate;
use plotters::prelude::*;
use plotters_canvas::CanvasBackend;
use web_sys::HtmlCanvasElement;

use investigator_core::chart::{gaps, segments, y_range, Curve};
use investigator_core::types::format_time;

/// The chart's own coordinate transform, kept from the last draw for mouse events.
pub type Mapping = Cartesian2d<RangedCoordf64, RangedCoordf64>;

pub struct ChartInput<'a> {
    pub curves: &'a [Curve],
    /// Visible frames, as a continuous range (frame n is centred on n).
    pub x_range: (f64, f64),
    pub fps: f64,
    /// Frame times where the rate is not constant (see `VideoInfo::frame_times_ms`).
    pub frame_times_ms: &'a [u32],
    pub y_label: &'a str,
    pub playhead: u64,
    pub hover: Option<u64>,
    pub marks: &'a [u64],
    /// Moments (first and last frame), shaded in `band_color`.
    pub bands: &'a [(u64, u64)],
    pub band_color: &'a str,
    /// Thresholds the moments came from: a dashed line each, in its prompt's colour.
    pub thresholds: &'a [(f32, &'static str)],
    /// Scene cuts: thin ticks on the time axis.
    pub cuts: &'a [u64],
    /// A span picked by Shift-drag.
    pub selection: Option<(u64, u64)>,
    /// Where the evaluated model is wrong: `(first, last, false_positive)`, hatched (red for
    /// false positives, blue for false negatives).
    pub errors: &'a [(u64, u64, bool)],
}

fn rgb(hex: &str) -> RGBColor {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0xffffff);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

/// Draws the chart into `canvas` (sized to its CSS box times the device pixel ratio) and
/// returns the coordinate transform of its plotting area.
pub fn draw(canvas: &HtmlCanvasElement, input: &ChartInput<'_>) -> Option<Mapping> {
    let scale = leptos::prelude::window().device_pixel_ratio().max(1.0);
    let (w, h) = (canvas.client_width().max(1), canvas.client_height().max(1));
    let (pw, ph) = ((w as f64 * scale) as u32, (h as f64 * scale) as u32);
    if canvas.width() != pw || canvas.height() != ph {
        canvas.set_width(pw);
        canvas.set_height(ph);
    }
    let backend = CanvasBackend::with_canvas_object(canvas.clone())?;
    let root = backend.into_drawing_area();
    let background = RGBColor(0x22, 0x22, 0x22);
    root.fill(&background).ok()?;
    let font = (12.0 * scale) as u32;
    let text = RGBColor(0xcc, 0xcc, 0xcc);
    let start = input.x_range.0.ceil().max(0.0) as usize;
    let end = (input.x_range.1.floor() + 1.0).max(0.0) as usize;
    // Adapted prompts are probabilities, on an axis of their own at the right (0 at the
    // bottom, 1 at the top); the left axis fits the other curves.
    let adapted = input.curves.iter().any(|c| c.adapted);
    let (y0, y1) = if input.curves.iter().all(|c| c.adapted) && adapted {
        (0.0, 1.0)
    } else {
        y_range(
            input
                .curves
                .iter()
                .filter(|c| !c.adapted)
                .map(|c| c.values.as_slice()),
            start,
            end,
        )
    };
    let fps = input.fps;
    let mut chart = ChartBuilder::on(&root)
        .margin((10.0 * scale) as u32)
        .x_label_area_size((28.0 * scale) as u32)
        .y_label_area_size((56.0 * scale) as u32)
        // Room at the right for the probability axis (drawn by hand below: a label area there
        // would repeat the left axis).
        .margin_right(((if adapted { 52.0 } else { 10.0 }) * scale) as u32)
        .build_cartesian_2d(input.x_range.0..input.x_range.1, y0..y1)
        .ok()?;
    chart
        .configure_mesh()
        .bold_line_style(RGBColor(0x3a, 0x3a, 0x3a))
        .light_line_style(RGBColor(0x2e, 0x2e, 0x2e))
        // Two faint lines between labels: each is a canvas stroke of its own.
        .max_light_lines(2)
        .axis_style(RGBColor(0x77, 0x77, 0x77))
        .label_style(("sans-serif", font).into_font().color(&text))
        .axis_desc_style(("sans-serif", font).into_font().color(&text))
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|x| {
            let frame = x.max(0.0).round() as u64;
            let t = format_time(investigator_core::types::time_at(
                frame,
                fps,
                input.frame_times_ms,
            ));
            t.rsplit_once('.')
                .map_or(t.clone(), |(whole, _)| whole.to_string())
        })
        // No "-0.000" for a value that rounds to zero.
        .y_label_formatter(&|y| format!("{:.3}", if y.abs() < 5e-4 { 0.0 } else { *y }))
        .y_desc(input.y_label)
        .draw()
        .ok()?;
    let columns = ((chart.plotting_area().dim_in_pixel().0 as f64) / scale).max(1.0) as usize;
    // Frames that could not be decoded: a red band (at least two pixels wide) across
    // the plot, the same for every prompt.
    if let Some(first) = input.curves.first() {
        let frames_per_pixel = (input.x_range.1 - input.x_range.0) / columns as f64;
        for (a, b) in gaps(&first.values, start, end) {
            let half = ((b - a) as f64 / 2.0).max(frames_per_pixel);
            let middle = (a + b) as f64 / 2.0 - 0.5;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(middle - half, y0), (middle + half, y1)],
                    RGBColor(0xd0, 0x30, 0x30).mix(0.45).filled(),
                )))
                .ok()?;
        }
    }
    // Moments and the picked span: bands behind the curves, a frame wide at least.
    let span = |(a, b): (u64, u64), color: RGBColor, alpha: f64| {
        Rectangle::new(
            [(a as f64 - 0.5, y0), (b as f64 + 0.5, y1)],
            color.mix(alpha).filled(),
        )
    };
    let band_color = rgb(input.band_color);
    for &band in input.bands {
        chart
            .draw_series(std::iter::once(span(band, band_color, 0.18)))
            .ok()?;
    }
    // Errors: a light fill and diagonal hatching (45° on screen), clipped to each span.
    let plot_height = chart.plotting_area().dim_in_pixel().1 as f64 / scale;
    let frames_per_css_pixel = (input.x_range.1 - input.x_range.0) / columns as f64;
    let run = plot_height * frames_per_css_pixel;
    let spacing = 8.0 * frames_per_css_pixel;
    for &(a, b, false_positive) in input.errors {
        let color = if false_positive {
            RGBColor(0xff, 0x55, 0x55)
        } else {
            RGBColor(0x55, 0x99, 0xff)
        };
        chart
            .draw_series(std::iter::once(span((a, b), color, 0.10)))
            .ok()?;
        let (left, right) = (a as f64 - 0.5, b as f64 + 0.5);
        let mut x = (left - run).max(input.x_range.0 - run);
        let mut hatches = Vec::new();
        while x < right.min(input.x_range.1) && spacing > 0.0 {
            // The line from (x, y0) to (x + run, y1), clipped to left..right.
            let (from, to) = (x.max(left), (x + run).min(right));
            if from < to {
                let y = |at: f64| y0 + (y1 - y0) * (at - x) / run;
                hatches.push(PathElement::new(
                    vec![(from, y(from)), (to, y(to))],
                    color.mix(0.6).stroke_width(1),
                ));
            }
            x += spacing;
        }
        chart.draw_series(hatches).ok()?;
    }
    if let Some(picked) = input.selection {
        chart
            .draw_series(std::iter::once(span(
                picked,
                RGBColor(0x99, 0xbb, 0xff),
                0.22,
            )))
            .ok()?;
    }
    for &(value, color) in input.thresholds {
        let y = f64::from(value);
        if y < y0 || y > y1 {
            continue;
        }
        // Dashes by hand: plotters' canvas backend draws solid paths only.
        let width = input.x_range.1 - input.x_range.0;
        let dash = width / 120.0;
        let dashes = (0..60).map(|i| {
            let x = input.x_range.0 + 2.0 * i as f64 * dash;
            PathElement::new(
                vec![(x, y), (x + dash, y)],
                rgb(color).mix(0.8).stroke_width(1),
            )
        });
        chart.draw_series(dashes).ok()?;
    }
    // Cuts: ticks rising from the time axis, a tenth of the plot high.
    let tick = (y1 - y0) * 0.06;
    let cuts = input
        .cuts
        .iter()
        .filter(|&&c| (c as f64) >= input.x_range.0 && (c as f64) <= input.x_range.1)
        .map(|&c| {
            let x = c as f64 - 0.5;
            PathElement::new(
                vec![(x, y0), (x, y0 + tick)],
                RGBColor(0xee, 0xcc, 0x55).stroke_width(scale.round() as u32),
            )
        });
    chart.draw_series(cuts).ok()?;
    // A dashed curve: 6 pixels on, 4 off.
    let pixel = (input.x_range.1 - input.x_range.0) / columns as f64;
    // A probability drawn in the left axis's units: 0 at its bottom, 1 at its top.
    let probability = |p: f64| y0 + p * (y1 - y0);
    for curve in input.curves {
        for points in segments(&curve.values, start, end, columns) {
            let (pieces, width) = if curve.adapted {
                // Dotted and twice as thick: the adapted curve of its prompt, same colour.
                let points: Vec<(f64, f64)> = points
                    .into_iter()
                    .map(|(x, y)| (x, probability(y)))
                    .collect();
                (
                    investigator_core::chart::dashes(&points, 3.0 * pixel, 3.0 * pixel),
                    (2.0 * scale).round() as u32,
                )
            } else if curve.dashed {
                (
                    investigator_core::chart::dashes(&points, 10.0 * pixel, 6.0 * pixel),
                    scale.round() as u32,
                )
            } else {
                (vec![points], scale.round() as u32)
            };
            for piece in pieces {
                chart
                    .draw_series(LineSeries::new(piece, rgb(curve.color).stroke_width(width)))
                    .ok()?;
            }
        }
    }
    if adapted {
        // The probability axis: ticks and labels at the right edge of the plot.
        let style = ("sans-serif", font).into_font().color(&text);
        let x = input.x_range.1;
        for p in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let (px, py) = chart.backend_coord(&(x, probability(p)));
            root.draw(&PathElement::new(
                vec![(px, py), (px + (4.0 * scale) as i32, py)],
                RGBColor(0x77, 0x77, 0x77).stroke_width(1),
            ))
            .ok()?;
            root.draw(&Text::new(
                format!("{p:.2}"),
                (px + (6.0 * scale) as i32, py - (6.0 * scale) as i32),
                style.clone(),
            ))
            .ok()?;
        }
        let (px, top) = chart.backend_coord(&(x, probability(1.0)));
        let (_, bottom) = chart.backend_coord(&(x, probability(0.0)));
        root.draw(&Text::new(
            "adapted probability",
            (
                px + (38.0 * scale) as i32,
                (top + bottom) / 2 - (60.0 * scale) as i32,
            ),
            style.transform(FontTransform::Rotate90),
        ))
        .ok()?;
    }
    let vertical = |frame: u64, style: ShapeStyle| {
        PathElement::new(vec![(frame as f64, y0), (frame as f64, y1)], style)
    };
    for &mark in input.marks {
        chart
            .draw_series(std::iter::once(vertical(
                mark,
                RGBColor(0xff, 0x55, 0x55).mix(0.6).stroke_width(1),
            )))
            .ok()?;
    }
    if let Some(hover) = input.hover {
        chart
            .draw_series(std::iter::once(vertical(
                hover,
                WHITE.mix(0.35).stroke_width(1),
            )))
            .ok()?;
    }
    chart
        .draw_series(std::iter::once(vertical(
            input.playhead,
            RGBColor(0xff, 0xff, 0xff).stroke_width((2.0 * scale) as u32),
        )))
        .ok()?;
    root.present().ok()?;
    Some(chart.as_coord_spec().clone())
}

/// The frame under a mouse event's offset (CSS pixels), through the chart's own transform;
/// `None` outside the plotting area.
pub fn frame_at(mapping: &Mapping, canvas: &HtmlCanvasElement, offset: (f64, f64)) -> Option<f64> {
    let scale = canvas.width() as f64 / canvas.client_width().max(1) as f64;
    // The canvas pixel the point falls in.
    let pixel = (
        (offset.0 * scale).floor() as i32,
        (offset.1 * scale).floor() as i32,
    );
    mapping.reverse_translate(pixel).map(|(x, _)| x)
}

/// One model's precision–recall curve as the Evaluate panel draws it.
pub struct PrLine<'a> {
    pub color: &'static str,
    pub dashed: bool,
    /// `(recall, precision)`.
    pub points: &'a [(f64, f64)],
}

/// Draws precision against recall, one line per model (the second dashed), on `canvas`.
pub fn draw_pr(canvas: &HtmlCanvasElement, lines: &[PrLine<'_>]) -> Option<()> {
    let scale = leptos::prelude::window().device_pixel_ratio().max(1.0);
    let (w, h) = (canvas.client_width().max(1), canvas.client_height().max(1));
    let (pw, ph) = ((w as f64 * scale) as u32, (h as f64 * scale) as u32);
    if canvas.width() != pw || canvas.height() != ph {
        canvas.set_width(pw);
        canvas.set_height(ph);
    }
    let root = CanvasBackend::with_canvas_object(canvas.clone())?.into_drawing_area();
    root.fill(&RGBColor(0x22, 0x22, 0x22)).ok()?;
    let font = (12.0 * scale) as u32;
    let text = RGBColor(0xcc, 0xcc, 0xcc);
    let mut chart = ChartBuilder::on(&root)
        .margin((10.0 * scale) as u32)
        .x_label_area_size((28.0 * scale) as u32)
        .y_label_area_size((44.0 * scale) as u32)
        .build_cartesian_2d(0.0..1.0f64, 0.0..1.02f64)
        .ok()?;
    chart
        .configure_mesh()
        .bold_line_style(RGBColor(0x3a, 0x3a, 0x3a))
        .light_line_style(RGBColor(0x2e, 0x2e, 0x2e))
        .max_light_lines(1)
        .axis_style(RGBColor(0x77, 0x77, 0x77))
        .label_style(("sans-serif", font).into_font().color(&text))
        .axis_desc_style(("sans-serif", font).into_font().color(&text))
        .x_desc("recall")
        .y_desc("precision")
        .x_labels(6)
        .y_labels(6)
        .draw()
        .ok()?;
    let pixel = 1.0 / (chart.plotting_area().dim_in_pixel().0 as f64 / scale).max(1.0);
    for line in lines {
        // A step curve, as precision is defined between thresholds.
        let mut steps = Vec::with_capacity(line.points.len() * 2);
        for pair in line.points.windows(2) {
            steps.push(pair[0]);
            steps.push((pair[1].0, pair[0].1));
        }
        if let Some(&last) = line.points.last() {
            steps.push(last);
        }
        let pieces = if line.dashed {
            investigator_core::chart::dashes(&steps, 10.0 * pixel, 6.0 * pixel)
        } else {
            vec![steps]
        };
        for piece in pieces {
            chart
                .draw_series(LineSeries::new(
                    piece,
                    rgb(line.color).stroke_width((1.5 * scale).round() as u32),
                ))
                .ok()?;
        }
    }
    root.present().ok()
}
