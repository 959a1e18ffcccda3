//! Scene cuts measured in the indexing pass itself: the frames a run measures ([`ScenePass`]),
//! and the writer that measures each decoded frame and puts the measures into the cache file
//! in batches.
//!
//! Invariant: the measures reach the file in frame order, without a gap: a frame not fed in
//! order ends this run's measuring (the next run goes on from the last measured frame).

use std::sync::RwLock;

use opencv::core::Mat;
use store::cache::EmbeddingFile;

use super::cuts::{self, Change, ChangeMeter};
use crate::sync::write;

/// The frames a run measures for scene cuts: from a few frames before the first unmeasured one
/// (so the detector knows what came before it) to the last frame of the video.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScenePass {
    /// The first frame decoded for the measures.
    pub from: u64,
    /// The first frame whose measures are new (earlier ones are only re-read).
    pub first_new: u64,
    pub frames: u64,
}

impl ScenePass {
    /// The pass a file with `measured` frames measured needs, if any.
    pub fn after(measured: u64, frames: u64) -> Option<Self> {
        (measured < frames).then(|| ScenePass {
            from: measured.saturating_sub(cuts::PERSIST as u64 + 1),
            first_new: measured,
            frames,
        })
    }
}

/// Measures frames for scene cuts and writes the new measures into the file in batches (a lock
/// per frame would contend with readers of the embeddings).
pub(super) struct SceneWriter<'a> {
    store: &'a RwLock<EmbeddingFile>,
    pass: Option<ScenePass>,
    meter: ChangeMeter,
    /// The next frame the meter expects; a gap (a frame not fed) ends the pass for this run.
    next: u64,
    pending: Vec<(u64, Change)>,
}

impl<'a> SceneWriter<'a> {
    pub(super) fn new(store: &'a RwLock<EmbeddingFile>, pass: Option<ScenePass>) -> Self {
        Self {
            store,
            next: pass.map_or(0, |p| p.from),
            pass,
            meter: ChangeMeter::new(),
            pending: Vec::new(),
        }
    }

    pub(super) fn first_frame(&self) -> Option<u64> {
        self.pass.map(|p| p.from)
    }

    pub(super) fn last_frame(&self) -> Option<u64> {
        self.pass.map(|p| p.frames.saturating_sub(1))
    }

    pub(super) fn wants(&self, n: u64) -> bool {
        self.pass.is_some_and(|p| n >= p.from && n < p.frames)
    }

    pub(super) fn measure(&mut self, n: u64, frame: &Mat) {
        if !self.wants(n) || n != self.next {
            return;
        }
        let change = match self.meter.measure(frame) {
            Ok(change) => change,
            Err(e) => {
                tracing::warn!(frame = n, "scene measure failed ({e}); recorded as unknown");
                self.meter.skip()
            }
        };
        self.record(n, change);
    }

    pub(super) fn skip(&mut self, n: u64) {
        if self.wants(n) && n == self.next {
            let change = self.meter.skip();
            self.record(n, change);
        }
    }

    fn record(&mut self, n: u64, change: Change) {
        self.next = n + 1;
        if self.pass.is_some_and(|p| n >= p.first_new) {
            self.pending.push((n, change));
            if self.pending.len() >= SCENE_FLUSH_FRAMES {
                self.flush();
            }
        }
    }

    pub(super) fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut file = write(self.store);
        let scene = file.scene.get_or_insert_with(Default::default);
        for (n, c) in self.pending.drain(..) {
            scene.set(n, c.change, c.persist);
        }
    }
}

/// The frames a decoder thread goes through: from the first frame to embed or measure to the
/// last; `None` when there is neither.
pub(super) fn frames_to_visit(
    todo: &[u64],
    measures: &SceneWriter,
) -> Option<std::ops::RangeInclusive<u64>> {
    let first = todo
        .first()
        .copied()
        .into_iter()
        .chain(measures.first_frame())
        .min()?;
    let last = todo
        .last()
        .copied()
        .into_iter()
        .chain(measures.last_frame())
        .max()?;
    Some(first..=last)
}

/// Scene measures held by the decoder thread before they go into the file.
const SCENE_FLUSH_FRAMES: usize = 64;

#[cfg(test)]
mod tests {
    use opencv::core::{Scalar, CV_8UC3};

    use super::*;
    use store::cache::{CacheHeader, ModelKey, VideoFingerprint, FORMAT_VERSION};

    fn empty_file() -> EmbeddingFile {
        EmbeddingFile::new(CacheHeader {
            format_version: FORMAT_VERSION,
            model: ModelKey {
                name: "m".into(),
                revision: "r".into(),
                dimension: 2,
            },
            video: VideoFingerprint {
                size: 1,
                chunks_hash: 2,
            },
            sample_fps_millis: None,
            video_frames: 40,
            video_fps_micros: 30_000_000,
        })
    }

    fn grey(level: f64) -> Mat {
        Mat::new_rows_cols_with_default(36, 64, CV_8UC3, Scalar::all(level)).unwrap()
    }

    #[test]
    fn a_pass_starts_a_few_frames_before_the_first_unmeasured_one() {
        assert_eq!(ScenePass::after(40, 40), None, "all measured");
        let pass = ScenePass::after(20, 40).unwrap();
        assert_eq!(pass.first_new, 20);
        assert_eq!(pass.from, 20 - (cuts::PERSIST as u64 + 1));
        assert_eq!(pass.frames, 40);
        assert_eq!(ScenePass::after(0, 40).unwrap().from, 0);
    }

    #[test]
    fn frames_to_visit_span_the_embedding_and_the_measuring() {
        let store = RwLock::new(empty_file());
        let none = SceneWriter::new(&store, None);
        assert_eq!(frames_to_visit(&[], &none), None);
        assert_eq!(frames_to_visit(&[5, 9, 30], &none), Some(5..=30));
        let measuring = SceneWriter::new(&store, ScenePass::after(10, 40));
        assert_eq!(
            frames_to_visit(&[], &measuring),
            Some(10 - cuts::PERSIST as u64 - 1..=39)
        );
        assert_eq!(frames_to_visit(&[0, 3], &measuring), Some(0..=39));
    }

    #[test]
    fn measures_go_into_the_file_in_order_and_a_gap_ends_them() {
        let store = RwLock::new(empty_file());
        let mut writer = SceneWriter::new(&store, ScenePass::after(0, 40));
        assert!(writer.wants(0) && writer.wants(39) && !writer.wants(40));
        for n in 0..10 {
            writer.measure(n, &grey(if n < 5 { 0.0 } else { 200.0 }));
        }
        writer.skip(10);
        // Frame 12 comes before 11: it is not measured, nor is anything after it in this run.
        writer.measure(12, &grey(0.0));
        writer.measure(13, &grey(0.0));
        writer.flush();
        let file = store.read().unwrap();
        assert_eq!(file.scene_measured(), 11, "frames 0..=10, in order");
        let scene = file.scene.as_ref().unwrap();
        assert!(
            scene.change[5] > scene.change[4],
            "the jump from black to grey is measured: {:?}",
            scene.change
        );
    }
}
