//! What the chart and the exports show, as pure functions: the per-frame curves of the current
//! view, and their CSV.
//!
//! Invariant: one curve per asked prompt, in the asked order (a prompt with no scores yet gets
//! an empty curve), per model when two are compared (the first model's, then the second's,
//! dashed) or one per prompt for their difference; a frame that could not be decoded is NaN in
//! a curve and an empty CSV field.

use std::collections::HashMap;

use crate::chart::{color, Curve};
use crate::scores::{sigmoid_per_prompt, smooth, softmax_over_prompts};
use crate::types::{ScoreSeries, VideoInfo};

/// The per-frame curves for the current view: filled from the embedded frames, then the
/// model's probabilities if asked (CLIP: softmax over the prompts; SigLIP: a sigmoid per
/// prompt), then smoothed.
pub fn view_curves(
    series: &ScoreSeries,
    prompts: &[String],
    colors: &HashMap<String, usize>,
    window: usize,
    softmax: bool,
) -> Vec<Curve> {
    let mut values: Vec<Vec<f32>> = prompts
        .iter()
        .map(|p| {
            series
                .prompts
                .iter()
                .position(|s| &s.prompt == p)
                .map(|i| series.filled(i))
                .unwrap_or_default()
        })
        .collect();
    if softmax && !values.is_empty() {
        values = match series.logit_bias {
            Some(bias) => sigmoid_per_prompt(&values, series.logit_scale, bias),
            None => softmax_over_prompts(&values, series.logit_scale),
        };
    }
    prompts
        .iter()
        .zip(values)
        .map(|(prompt, v)| Curve {
            prompt: prompt.clone(),
            color: color(colors.get(prompt).copied().unwrap_or(0)),
            values: smooth(&v, window),
            model: None,
            dashed: false,
            adapted: false,
        })
        .collect()
}

/// The adapted prompts' curves: for each adapter asked for (`(id, α)`) that the series holds,
/// the probability of the blend at α per frame, filled between embedded frames as the cosine
/// curves are, then smoothed; in the colour of the prompt adapted (when it is on the list).
pub fn adapted_curves(
    series: &ScoreSeries,
    wanted: &[(String, f64)],
    colors: &HashMap<String, usize>,
    window: usize,
) -> Vec<Curve> {
    let radius = if series.complete {
        u64::MAX
    } else {
        series.fill_radius
    };
    wanted
        .iter()
        .filter_map(|(id, alpha)| {
            let scores = series.adapted.iter().find(|a| &a.id == id)?;
            if scores.adapted.len() != series.frames.len() {
                return None;
            }
            let values = crate::adapt::blended_probabilities(scores, *alpha);
            let filled = crate::scores::fill_frames_with_gaps(
                &series.frames,
                &values,
                &series.missing,
                series.video_frames,
                radius,
            );
            Some(Curve {
                prompt: crate::adapt::adapted_name(&scores.prompt),
                color: color(colors.get(&scores.prompt).copied().unwrap_or(0)),
                values: smooth(&filled, window),
                model: None,
                dashed: false,
                adapted: true,
            })
        })
        .collect()
}

/// Two models' curves of the same prompts: each prompt's first-model curve (solid) then its
/// second-model curve (dashed, same colour); with `difference`, one curve per prompt, first
/// minus second, over the frames both have indexed. `names` label the two models.
pub fn compared_curves(
    (a, b): (&ScoreSeries, &ScoreSeries),
    names: (&str, &str),
    prompts: &[String],
    colors: &HashMap<String, usize>,
    (window, softmax): (usize, bool),
    difference: bool,
) -> Vec<Curve> {
    let first = view_curves(a, prompts, colors, window, softmax);
    let second = view_curves(b, prompts, colors, window, softmax);
    if difference {
        return first
            .into_iter()
            .zip(second)
            .map(|(a, b)| Curve {
                values: a.values.iter().zip(&b.values).map(|(x, y)| x - y).collect(),
                model: Some(format!("{} − {}", names.0, names.1)),
                ..a
            })
            .collect();
    }
    first
        .into_iter()
        .zip(second)
        .flat_map(|(a, b)| {
            [
                Curve {
                    model: Some(names.0.to_string()),
                    ..a
                },
                Curve {
                    model: Some(names.1.to_string()),
                    dashed: true,
                    ..b
                },
            ]
        })
        .collect()
}

/// CSV of the curves: one row per frame with its time.
pub fn curves_csv(curves: &[Curve], info: &VideoInfo) -> String {
    let mut out = String::from("frame,time_s");
    for c in curves {
        out.push(',');
        let label = c.label();
        if label.contains([',', '"', '\n']) {
            out.push_str(&format!("\"{}\"", label.replace('"', "\"\"")));
        } else {
            out.push_str(&label);
        }
    }
    out.push('\n');
    let frames = curves.iter().map(|c| c.values.len()).min().unwrap_or(0);
    for n in 0..frames {
        out.push_str(&format!("{n},{:.6}", info.time_s(n as u64)));
        for c in curves {
            // A frame that could not be decoded has no value: an empty field.
            let v = c.values[n];
            if v.is_nan() {
                out.push(',');
            } else {
                out.push_str(&format!(",{v}"));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::assign_colors;
    use crate::types::PromptScores;

    #[test]
    fn curves_fill_softmax_and_smooth_in_that_order() {
        let series = ScoreSeries {
            frames: vec![0, 2],
            missing: vec![],
            video_frames: 4,
            fill_radius: 1,
            complete: true,
            logit_scale: 100.0,
            logit_bias: None,
            cuts: vec![],
            spacing_frames: 2,
            spacing_s: 2.0 / 30.0,
            refining: false,
            adapted: vec![],
            prompts: vec![
                PromptScores {
                    prompt: "a".into(),
                    values: vec![0.3, 0.1],
                    truncated: false,
                },
                PromptScores {
                    prompt: "b".into(),
                    values: vec![0.1, 0.1],
                    truncated: false,
                },
            ],
        };
        let prompts = vec!["a".to_string(), "b".to_string()];
        let colors = assign_colors(&prompts, &HashMap::new());
        let raw = view_curves(&series, &prompts, &colors, 1, false);
        assert_eq!(raw[0].values, vec![0.3, 0.3, 0.1, 0.1]);
        let soft = view_curves(&series, &prompts, &colors, 1, true);
        assert!((soft[0].values[0] + soft[1].values[0] - 1.0).abs() < 1e-6);
        assert!((soft[0].values[3] - 0.5).abs() < 1e-6);
        let smoothed = view_curves(&series, &prompts, &colors, 3, false);
        assert!((smoothed[0].values[1] - (0.3 + 0.3 + 0.1) / 3.0).abs() < 1e-6);
        // SigLIP: a sigmoid per prompt, not a softmax across them.
        let siglip = ScoreSeries {
            logit_scale: 10.0,
            logit_bias: Some(-2.0),
            ..series.clone()
        };
        let sig = view_curves(&siglip, &prompts, &colors, 1, true);
        let expected = 1.0 / (1.0 + (-(10.0f32 * 0.3 - 2.0)).exp());
        assert!(
            (sig[0].values[0] - expected).abs() < 1e-6,
            "{:?}",
            sig[0].values
        );
        assert!((sig[1].values[0] - 1.0 / (1.0 + 1.0f32.exp())).abs() < 1e-6);
        // Two models: solid and dashed per prompt, or their difference.
        let other = ScoreSeries {
            prompts: vec![
                PromptScores {
                    prompt: "b".into(),
                    values: vec![0.5, 0.0],
                    truncated: false,
                },
                PromptScores {
                    prompt: "a".into(),
                    values: vec![0.1, 0.2],
                    truncated: false,
                },
            ],
            ..series.clone()
        };
        let both = compared_curves(
            (&series, &other),
            ("A", "B"),
            &prompts,
            &colors,
            (1, false),
            false,
        );
        assert_eq!(both.len(), 4);
        assert_eq!(
            both.iter()
                .map(|c| (c.label(), c.dashed))
                .collect::<Vec<_>>(),
            [
                ("a [A]".to_string(), false),
                ("a [B]".into(), true),
                ("b [A]".into(), false),
                ("b [B]".into(), true)
            ]
        );
        assert_eq!(both[0].color, both[1].color);
        assert_eq!(both[1].values, vec![0.1, 0.1, 0.2, 0.2]);
        let diff = compared_curves(
            (&series, &other),
            ("A", "B"),
            &prompts,
            &colors,
            (1, false),
            true,
        );
        assert_eq!(diff.len(), 2);
        assert_eq!(diff[0].label(), "a [A − B]");
        let expected = [0.3f32 - 0.1, 0.3 - 0.1, 0.1 - 0.2, 0.1 - 0.2];
        assert!(
            diff[0]
                .values
                .iter()
                .zip(expected)
                .all(|(v, e)| (v - e).abs() < 1e-7),
            "{:?}",
            diff[0].values
        );
        let info = VideoInfo {
            id: String::new(),
            name: String::new(),
            width: 1,
            height: 1,
            fps: 2.0,
            frames: 4,
            exact_count: true,
            frame_times_ms: vec![],
            version: String::new(),
        };
        let csv = curves_csv(&raw, &info);
        assert_eq!(csv.lines().next(), Some("frame,time_s,a,b"));
        assert_eq!(csv.lines().nth(2), Some("1,0.500000,0.3,0.1"));
        // Variable frame rate: the frame's own time.
        let variable = VideoInfo {
            frame_times_ms: vec![0, 750, 1000, 1500],
            version: String::new(),
            ..info
        };
        assert_eq!(
            curves_csv(&raw, &variable).lines().nth(2),
            Some("1,0.750000,0.3,0.1")
        );
    }
}
