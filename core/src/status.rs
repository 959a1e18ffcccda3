//! The indexing status texts: progress with speed and time left while the video is embedded,
//! and why there are no curves when the model is unavailable. The page's status line
//! and the CLI's progress bar say the same words.

use crate::types::{format_time, IndexState, IndexStatus};

/// What the line says for a status.
pub fn describe(status: &IndexStatus) -> String {
    let text = describe_state(status);
    match &status.precision_note {
        Some(note) if status.state != IndexState::Failed => format!("{text} Note: {note}."),
        _ => text,
    }
}

fn describe_state(status: &IndexStatus) -> String {
    let model = status.model.as_deref().unwrap_or("CLIP");
    match status.state {
        IndexState::Waiting => status
            .message
            .clone()
            .unwrap_or_else(|| "Waiting to index the video…".into()),
        IndexState::Running => {
            let percent = if status.total > 0 {
                100.0 * status.done as f64 / status.total as f64
            } else {
                0.0
            };
            let eta = time_left(status.eta_s);
            format!(
                "Indexing with {model}: {} / {} frames ({percent:.0}%), {:.1} frames/s{eta}{}",
                status.done,
                status.total,
                status.frames_per_s,
                pass_text(status)
            )
        }
        IndexState::Done => format!("Indexed {} frames with {model}.", status.done),
        IndexState::Failed => status
            .message
            .clone()
            .unwrap_or_else(|| "Indexing failed.".into()),
    }
}

/// "; pass 2 of 6 (10 / 20 frames, 00:01.00 left), 1 sample / 1 s" for a coarse-to-fine index
/// (the page's status line and the CLI's progress bar); empty for a straight one.
pub fn pass_text(status: &IndexStatus) -> String {
    if status.passes == 0 {
        return String::new();
    }
    let pass_eta = time_left(status.pass_eta_s);
    format!(
        "; pass {} of {} ({} / {} frames{pass_eta}), {}",
        status.pass,
        status.passes,
        status.pass_done,
        status.pass_total,
        spacing_text(status.spacing_s),
    )
}

/// ", 00:36.00 left" when the time left is known.
pub fn time_left(seconds: Option<f64>) -> String {
    seconds
        .map(|s| format!(", {} left", format_time(s)))
        .unwrap_or_default()
}

/// "1 sample / 0.5 s": how fine the curves are while a coarse-to-fine index refines.
pub fn spacing_text(seconds: f64) -> String {
    if seconds.is_nan() || seconds <= 0.0 {
        return "first pass".into();
    }
    let text = if seconds >= 0.995 {
        format!("{:.0}", seconds)
    } else if seconds >= 0.1 {
        format!("{:.2}", seconds)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{:.3}", seconds)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    format!("1 sample / {text} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_progress_speed_and_time_left() {
        let status = IndexStatus {
            state: IndexState::Running,
            done: 150,
            total: 600,
            frames_per_s: 12.5,
            eta_s: Some(36.0),
            model: Some("tiny-clip".into()),
            message: None,
            ..Default::default()
        };
        assert_eq!(
            describe(&status),
            "Indexing with tiny-clip: 150 / 600 frames (25%), 12.5 frames/s, 00:36.00 left"
        );
        let done = IndexStatus {
            state: IndexState::Done,
            done: 600,
            ..status
        };
        assert_eq!(describe(&done), "Indexed 600 frames with tiny-clip.");
    }

    #[test]
    fn a_coarse_to_fine_index_says_its_pass_and_how_fine_the_curves_are() {
        let status = IndexStatus {
            state: IndexState::Running,
            done: 60,
            total: 600,
            frames_per_s: 10.0,
            eta_s: Some(54.0),
            model: Some("tiny-clip".into()),
            pass: 2,
            passes: 6,
            pass_done: 10,
            pass_total: 20,
            pass_eta_s: Some(1.0),
            spacing_s: 1.0,
            ..Default::default()
        };
        assert_eq!(
            describe(&status),
            "Indexing with tiny-clip: 60 / 600 frames (10%), 10.0 frames/s, 00:54.00 left; \
             pass 2 of 6 (10 / 20 frames, 00:01.00 left), 1 sample / 1 s"
        );
        assert_eq!(spacing_text(0.5), "1 sample / 0.5 s");
        assert_eq!(spacing_text(0.25), "1 sample / 0.25 s");
        assert_eq!(spacing_text(2.0 / 30.0), "1 sample / 0.067 s");
        assert_eq!(spacing_text(0.0), "first pass");
    }
}
