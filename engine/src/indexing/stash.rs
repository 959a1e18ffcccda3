//! Frames kept for the next pass. Where keyframes are farther apart than a coarse-to-fine
//! pass's spacing, the pass decodes every frame between its own anyway; it prepares the next
//! pass's frames on its way and keeps them, within a memory budget, so the next pass embeds
//! them without decoding the video again.
//!
//! Invariants:
//! - A kept frame is the prepared image of that very frame from the same exact decoder, so a
//!   frame's vector is the same whichever pass decoded it.
//! - The bytes kept never exceed the budget; a frame is kept once and taken once.

use std::collections::HashMap;

use crate::embed::PreparedImage;

pub struct Stash {
    frames: HashMap<u64, PreparedImage>,
    bytes: usize,
    budget: usize,
    /// A frame did not fit: stop decoding frames to keep.
    full: bool,
    /// The size of the frames kept so far (all frames of a video prepare to the same size).
    frame_size: Option<usize>,
}

impl Stash {
    pub fn new(budget: usize) -> Self {
        Self {
            frames: HashMap::new(),
            bytes: 0,
            budget,
            full: budget == 0,
            frame_size: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether one more frame fits beside `reserve` frames still to come (before the first
    /// frame is kept, its size is not known: then [`keep`](Self::keep) decides).
    pub fn has_room(&self, reserve: u64) -> bool {
        !self.full && self.frame_size.is_none_or(|size| self.fits(size, reserve))
    }

    fn fits(&self, size: usize, reserve: u64) -> bool {
        let reserved = usize::try_from(reserve).map_or(usize::MAX, |r| r.saturating_mul(size));
        self.bytes.saturating_add(size).saturating_add(reserved) <= self.budget
    }

    /// Keeps frame `n`'s image if it fits in the budget beside `reserve` more frames of its
    /// size (room held for frames wanted sooner). Without a reserve, a frame that does not fit
    /// makes the stash full from now on.
    pub fn keep(&mut self, n: u64, image: PreparedImage, reserve: u64) -> bool {
        let size = image.size_bytes();
        if !self.fits(size, reserve) {
            self.full |= reserve == 0;
            return false;
        }
        self.frame_size = Some(size);
        self.bytes += size;
        if let Some(old) = self.frames.insert(n, image) {
            self.bytes -= old.size_bytes();
        }
        true
    }

    /// Frame `n`'s kept image, given up by the stash.
    pub fn take(&mut self, n: u64) -> Option<PreparedImage> {
        let image = self.frames.remove(&n)?;
        self.bytes -= image.size_bytes();
        // Room again for a later pass to fill.
        self.full = self.budget == 0;
        Some(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(bytes: usize) -> PreparedImage {
        PreparedImage::Cropped(vec![7; bytes])
    }

    #[test]
    fn keeps_frames_within_the_budget_and_gives_each_up_once() {
        let mut stash = Stash::new(250);
        assert!(stash.has_room(1000), "sizes are known once a frame is kept");
        assert!(stash.keep(3, image(100), 0));
        assert!(
            !stash.keep(4, image(100), 1),
            "100 + 100 + 1 x 100 reserved exceed 250"
        );
        assert!(
            stash.has_room(0),
            "a frame refused for a reserve leaves room for others"
        );
        assert!(stash.has_room(0) && !stash.has_room(1));
        assert!(stash.keep(5, image(100), 0));
        assert!(!stash.keep(9, image(100), 0), "300 bytes exceed 250");
        assert!(!stash.has_room(0), "full from now on");
        assert_eq!(stash.len(), 2);
        assert!(stash.take(9).is_none());
        assert_eq!(stash.take(3).map(|i| i.size_bytes()), Some(100));
        assert!(stash.take(3).is_none(), "taken once");
        assert!(stash.has_room(0), "room again once a frame is taken");
        assert!(stash.keep(9, image(100), 0));
        assert!(
            !Stash::new(0).keep(1, image(1), 0),
            "a zero budget keeps nothing"
        );
        assert!(!Stash::new(0).has_room(0));
    }
}
