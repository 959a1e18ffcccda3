//! The `index` command's progress bar, in the same words as the page's status line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use engine::indexing::Progress;
use investigator_core::status::{pass_text, time_left};

/// Draws `progress` on stderr until `finished` is set.
pub fn draw(progress: &Progress, finished: &AtomicBool) {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} frames {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    while !finished.load(Ordering::Relaxed) {
        let status = progress.snapshot();
        bar.set_length(status.total);
        bar.set_position(status.done);
        let eta = time_left(status.eta_s);
        let pass = pass_text(&status);
        bar.set_message(format!("{:.1} frames/s{eta}{pass}", status.frames_per_s));
        std::thread::sleep(Duration::from_millis(200));
    }
    bar.finish_and_clear();
}

/// The process's peak resident memory (Linux `VmHWM`), in MB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
