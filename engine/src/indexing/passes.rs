//! Coarse-to-fine indexing: which frames each pass embeds, how fine the curves are after it,
//! and the span a viewer is looking at, which is refined before the pass goes on.
//!
//! Invariants:
//! - The passes together are exactly the plan (the frames a straight index embeds), each frame
//!   in one pass; a frame the file already holds is in none of this run's passes. So the
//!   finished file holds the same frames as a straight index's, and each is embedded once.
//! - A frame is taken from [`Schedule`] once: by its pass, or earlier by a detour into the
//!   span the viewer looks at, never by both.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use investigator_core::scores::progressive_passes;

/// One pass of a run: the frames it still embeds, and how fine the curves are once it is done.
#[derive(Clone, Debug, PartialEq)]
pub struct Pass {
    /// Frames to embed, ascending (the pass's frames the file does not hold yet).
    pub frames: Vec<u64>,
    /// Widest gap between embedded frames once this pass (and those before it) is done.
    pub spacing_after: u64,
    /// How far a score must stand in for its neighbours to span the video after this pass.
    pub radius_after: u64,
}

/// The passes that finish `plan` for a file that holds `covered` (both ascending): coarse to
/// fine when `first_spacing` (plan positions between the first pass's frames) is given, else
/// one straight pass. `total` is the video's frame count.
pub fn plan_passes(
    plan: &[u64],
    covered: &[u64],
    first_spacing: Option<f64>,
    total: u64,
) -> Vec<Pass> {
    let mut groups = match first_spacing {
        Some(spacing) => progressive_passes(plan, spacing),
        None => Vec::new(),
    };
    // At least one pass, even with nothing to embed: it measures scene cuts where needed.
    if groups.is_empty() {
        groups.push(plan.to_vec());
    }
    let mut reached: Vec<u64> = Vec::with_capacity(plan.len());
    groups
        .into_iter()
        .map(|group| {
            reached.extend_from_slice(&group);
            reached.sort_unstable();
            let (spacing_after, radius_after) = coverage(&reached, total);
            Pass {
                frames: group
                    .into_iter()
                    .filter(|f| covered.binary_search(f).is_err())
                    .collect(),
                spacing_after,
                radius_after,
            }
        })
        .collect()
}

/// The widest gap between consecutive `frames` (ascending; the end of the video counts as
/// one more), and the radius at which every frame of the video has an embedded frame within
/// reach.
pub fn coverage(frames: &[u64], total: u64) -> (u64, u64) {
    let Some((&first, &last)) = frames.first().zip(frames.last()) else {
        return (0, 0);
    };
    let gap = frames
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain([total.saturating_sub(last)])
        .max()
        .unwrap_or(1);
    let inner = frames
        .windows(2)
        .map(|w| (w[1] - w[0]) / 2)
        .max()
        .unwrap_or(0);
    let radius = inner
        .max(first)
        .max(total.saturating_sub(1).saturating_sub(last));
    (gap.max(1), radius)
}

/// The span of frames a viewer is looking at (the chart's zoom window, or around the
/// playhead), set by the web server; the latest viewer to move wins.
#[derive(Default)]
pub struct Focus {
    span: Mutex<Option<RangeInclusive<u64>>>,
    changes: AtomicU64,
}

impl Focus {
    pub fn set(&self, span: RangeInclusive<u64>) {
        let mut current = crate::sync::lock(&self.span);
        if current.as_ref() != Some(&span) {
            *current = Some(span);
            self.changes.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> Option<RangeInclusive<u64>> {
        crate::sync::lock(&self.span).clone()
    }

    /// Counts changes, so that the decoder notices one without taking the lock per frame.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

/// The frames a run has yet to send to the model, shared by its passes and its detours.
pub struct Schedule<'a> {
    remaining: Mutex<BTreeSet<u64>>,
    focus: Option<&'a Focus>,
    /// Off during the first pass: the whole-video curve comes first, then where one looks.
    detours: AtomicBool,
}

impl<'a> Schedule<'a> {
    pub fn new(passes: &[Pass], focus: Option<&'a Focus>) -> Self {
        Self {
            remaining: Mutex::new(
                passes
                    .iter()
                    .flat_map(|p| p.frames.iter().copied())
                    .collect(),
            ),
            focus,
            detours: AtomicBool::new(false),
        }
    }

    /// From the next frame on, detours into the viewer's span are taken.
    pub fn allow_detours(&self) {
        self.detours.store(true, Ordering::Relaxed);
    }

    /// Takes frame `n` if no detour has taken it yet.
    pub fn take(&self, n: u64) -> bool {
        self.lock().remove(&n)
    }

    /// Whether frame `n` is still to be taken.
    pub fn is_pending(&self, n: u64) -> bool {
        self.lock().contains(&n)
    }

    /// Frames of `frames` not taken yet.
    pub fn still_to_do(&self, frames: &[u64]) -> u64 {
        let remaining = self.lock();
        frames.iter().filter(|f| remaining.contains(f)).count() as u64
    }

    /// The changes of the focus seen so far (0 without one).
    pub fn focus_changes(&self) -> u64 {
        self.focus.map_or(0, Focus::changes)
    }

    /// Takes the first frame not done yet in the span the viewer looks at, of any pass.
    pub fn take_in_focus(&self) -> Option<u64> {
        if !self.detours.load(Ordering::Relaxed) {
            return None;
        }
        let span = self.focus?.get()?;
        let mut remaining = self.lock();
        let next = remaining.range(span).next().copied()?;
        remaining.remove(&next);
        Some(next)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        crate::sync::lock(&self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passes_are_the_plan_less_what_the_file_holds() {
        let plan: Vec<u64> = (0..100).collect();
        let covered: Vec<u64> = (0..100).step_by(7).collect();
        let passes = plan_passes(&plan, &covered, Some(30.0), 100);
        let mut all: Vec<u64> = passes.iter().flat_map(|p| p.frames.clone()).collect();
        all.extend(&covered);
        all.sort_unstable();
        assert_eq!(all, plan);
        // Halving spacing: 30 (the end counts: 100 - 90 = 10), 15, 8, 4, 2, 1.
        let spacings: Vec<u64> = passes.iter().map(|p| p.spacing_after).collect();
        assert_eq!(spacings, [30, 15, 8, 4, 2, 1]);
        // After the first pass every frame has a sample within reach: 0,30,60,90 → 15, and
        // the last frames (91..=99) reach back 9.
        assert_eq!(passes[0].radius_after, 15);
        assert_eq!(passes.last().unwrap().radius_after, 0);
        // Straight: one pass.
        let straight = plan_passes(&plan, &covered, None, 100);
        assert_eq!(straight.len(), 1);
        assert_eq!(straight[0].frames.len(), 100 - covered.len());
    }

    #[test]
    fn coverage_counts_the_ends_of_the_video() {
        assert_eq!(coverage(&[0, 10, 20], 40), (20, 19));
        assert_eq!(coverage(&[5], 6), (1, 5));
        assert_eq!(coverage(&[], 6), (0, 0));
    }

    #[test]
    fn a_detour_takes_the_frames_in_focus_once() {
        let passes = plan_passes(&(0..50).collect::<Vec<_>>(), &[], Some(10.0), 50);
        let focus = Focus::default();
        let schedule = Schedule::new(&passes, Some(&focus));
        schedule.allow_detours();
        assert_eq!(schedule.take_in_focus(), None, "no focus yet");
        let seen = schedule.focus_changes();
        focus.set(45..=47);
        assert_ne!(schedule.focus_changes(), seen);
        let taken: Vec<u64> = std::iter::from_fn(|| schedule.take_in_focus()).collect();
        assert_eq!(taken, [45, 46, 47]);
        assert!(!schedule.take(46), "a frame is taken once");
        assert!(schedule.take(40));
        assert_eq!(schedule.still_to_do(&[40, 41, 45]), 1);
    }
}
