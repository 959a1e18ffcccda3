//! Which display proxy segment to make next, and at what width.
//!
//! Invariants:
//! - a segment a request wanted (under a playhead, or just ahead of it) goes before the rest,
//!   the most recently wanted first; a wish older than [`WISH_LASTS`] is forgotten (the viewer
//!   has moved on; the sweep makes it in its turn);
//! - then every segment still needed, in the video's order;
//! - the width is the narrowest that covers [`WIDTH_SHARE`] of the frames asked lately, so a
//!   rare full-size request ("Open frame as image") does not make the whole proxy 4× larger;
//!   it is served from the source instead.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A wish for a segment lasts this long.
pub const WISH_LASTS: Duration = Duration::from_secs(10);

/// The proxy's width covers this share of the requests (by weight).
const WIDTH_SHARE: f64 = 0.9;

/// Each request's weight decays by half after this many requests.
const WIDTH_HALF_LIFE: f64 = 2000.0;

/// The order in which segments are made.
#[derive(Debug, Default)]
pub struct SegmentPlan {
    /// Wished-for segments, the most recent last, with when.
    wishes: Vec<(u64, Instant)>,
}

impl SegmentPlan {
    /// A request wants segment `k` (made now, or next).
    pub fn wish(&mut self, k: u64, now: Instant) {
        self.wishes.retain(|(w, _)| *w != k);
        self.wishes.push((k, now));
    }

    /// Segments wished for and not yet forgotten.
    pub fn wished(&self) -> usize {
        self.wishes.len()
    }

    /// The segment to make next out of `count`, where `needed(k)` says whether it is to be
    /// made, and whether a viewer wished for it; `None` when none is to be made (or, without
    /// `sweep`, none is wished for).
    pub fn next(
        &mut self,
        count: u64,
        needed: impl Fn(u64) -> bool,
        now: Instant,
        sweep: bool,
    ) -> Option<(u64, bool)> {
        self.wishes
            .retain(|(k, at)| now.duration_since(*at) < WISH_LASTS && needed(*k));
        if let Some((k, _)) = self.wishes.pop() {
            return Some((k, true));
        }
        if !sweep {
            return None;
        }
        (0..count).find(|&k| needed(k)).map(|k| (k, false))
    }
}

/// The widths frames were asked at lately, weighted towards the latest.
#[derive(Debug)]
pub struct WidthVotes {
    /// Weight per width.
    weights: BTreeMap<u32, f64>,
    /// The width before any request.
    default: u32,
}

impl WidthVotes {
    pub fn new(default: u32) -> Self {
        Self {
            weights: BTreeMap::new(),
            default,
        }
    }

    /// A request asked for frames `width` wide.
    pub fn vote(&mut self, width: u32) {
        let keep = 0.5f64.powf(1.0 / WIDTH_HALF_LIFE);
        for weight in self.weights.values_mut() {
            *weight *= keep;
        }
        self.weights.retain(|_, w| *w > 1e-3);
        *self.weights.entry(width).or_default() += 1.0;
    }

    /// The narrowest width at least [`WIDTH_SHARE`] of the requests ask for no more than.
    pub fn width(&self) -> u32 {
        let total: f64 = self.weights.values().sum();
        if total <= 0.0 {
            return self.default;
        }
        let mut covered = 0.0;
        for (&width, &weight) in &self.weights {
            covered += weight;
            if covered >= WIDTH_SHARE * total - 1e-9 {
                return width;
            }
        }
        self.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wished_segments_first_the_latest_first_then_the_rest_in_order() {
        let t0 = Instant::now();
        let mut plan = SegmentPlan::default();
        let done = std::cell::RefCell::new(vec![false; 10]);
        let needed = |k: u64| !done.borrow()[k as usize];
        plan.wish(7, t0);
        plan.wish(3, t0 + Duration::from_secs(1));
        plan.wish(4, t0 + Duration::from_secs(1)); // just ahead of the playhead in 3
        plan.wish(3, t0 + Duration::from_secs(2)); // asked again: the latest again
        let mut order = Vec::new();
        while let Some((k, wished)) = plan.next(10, needed, t0 + Duration::from_secs(3), true) {
            done.borrow_mut()[k as usize] = true;
            order.push((k, wished));
        }
        let wished: Vec<bool> = order.iter().map(|&(_, w)| w).collect();
        let order: Vec<u64> = order.iter().map(|&(k, _)| k).collect();
        assert_eq!(order, [3, 4, 7, 0, 1, 2, 5, 6, 8, 9]);
        assert_eq!(wished.iter().filter(|&&w| w).count(), 3);
        assert!(wished[..3].iter().all(|&w| w));
    }

    #[test]
    fn old_or_made_wishes_are_forgotten() {
        let t0 = Instant::now();
        let mut plan = SegmentPlan::default();
        plan.wish(8, t0);
        plan.wish(5, t0 + WISH_LASTS);
        // 5 was made meanwhile (by the sweep); 8 is too old.
        let later = t0 + WISH_LASTS + Duration::from_millis(1);
        // A worker that only makes wished segments finds none.
        assert_eq!(plan.next(10, |k| k != 5, later, false), None);
        assert_eq!(plan.next(10, |k| k != 5, later, true), Some((0, false)));
        assert_eq!(plan.wished(), 0);
        assert_eq!(plan.next(3, |_| false, t0, true), None);
    }

    #[test]
    fn the_width_covers_most_requests_not_the_rare_full_size_one() {
        let mut votes = WidthVotes::new(640);
        assert_eq!(votes.width(), 640);
        for i in 0..200 {
            votes.vote(if i % 25 == 0 { 1280 } else { 640 });
        }
        assert_eq!(votes.width(), 640);
        // Clients that all ask full size: the proxy follows.
        for _ in 0..3000 {
            votes.vote(1280);
        }
        assert_eq!(votes.width(), 1280);
        // Mixed widths: the narrowest that covers 90 %.
        let mut mixed = WidthVotes::new(640);
        for i in 0..100 {
            mixed.vote(match i % 20 {
                0 => 320,
                19 => 640,
                _ => 480,
            });
        }
        assert_eq!(mixed.width(), 480);
    }
}
