//! The embedding loop of a pass: gathers what the decoder thread sends into batches, embeds each
//! batch in one model call, appends it to the cache file in frame order, reports progress and
//! checkpoints the file every `checkpoint_every`.
//!
//! Invariant: a batch goes into the file whole (embedded frames with their vectors, reused ones
//! with a copy, missing ones noted) or not at all; a checkpoint that cannot be written ends the
//! run at once.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use super::decode::{Decoded, Frame};
use super::IndexJob;
use crate::embed::PreparedImage;
use crate::indexing::report::IndexError;
use crate::sync::write;

/// Frames done before a pass and planned in all (for the whole index's progress), and the
/// pass's own frames still to do.
#[derive(Clone, Copy)]
pub(super) struct Counts {
    pub(super) done_before: u64,
    pub(super) planned: u64,
    pub(super) pass_total: u64,
}

/// What this run did with the frames it was given.
#[derive(Clone, Copy, Default)]
pub(super) struct Tally {
    pub(super) embedded: u64,
    pub(super) reused: u64,
    pub(super) missing: u64,
}

impl Tally {
    pub(super) fn frames(&self) -> u64 {
        self.embedded + self.reused + self.missing
    }
}

impl IndexJob<'_> {
    /// The embedding loop: gathers what the decoder sends into batches of `batch_size` frames
    /// to embed, appends each batch to the file, reports progress and saves a checkpoint every
    /// `checkpoint_every`. Returns what it did and the failure that ended it, if one did; a
    /// checkpoint that cannot be written ends the run at once.
    pub(super) fn embed(
        &self,
        decoded: Receiver<Decoded>,
        pass: &[u64],
        counts: Counts,
    ) -> Result<(Tally, Option<IndexError>), IndexError> {
        let Counts {
            done_before: resumed,
            planned,
            pass_total,
        } = counts;
        let mut pass_done = 0u64;
        let batch_size = self.batch_size();
        let mut tally = Tally::default();
        let mut batch: Vec<(u64, Frame)> = Vec::with_capacity(batch_size);
        // Frames to embed in `batch`; reused and missing ones only ride along.
        let mut to_embed = 0usize;
        let mut failure: Option<IndexError> = None;
        let mut last_save = Instant::now();
        let run_started = Instant::now();
        loop {
            let next = decoded.recv().ok();
            let end = next.is_none();
            match next {
                Some(Ok(item)) => {
                    to_embed += usize::from(matches!(item.1, Frame::Embed(_)));
                    pass_done += u64::from(pass.binary_search(&item.0).is_ok());
                    batch.push(item);
                }
                Some(Err((frame, message))) => {
                    failure = Some(IndexError::Video {
                        video: self.video_name(),
                        frame,
                        message,
                        done: resumed + tally.frames(),
                    });
                }
                None => {}
            }
            if self.cancel.load(Ordering::Relaxed) {
                failure = Some(IndexError::Cancelled);
            }
            let full = to_embed == batch_size || batch.len() >= MAX_PENDING_FRAMES;
            if !batch.is_empty() && (full || end || failure.is_some()) {
                match self.append_batch(&mut batch, &mut tally) {
                    Ok(()) => to_embed = 0,
                    Err(e) => failure = failure.or(Some(IndexError::Embed(e))),
                }
                let elapsed = run_started.elapsed().as_secs_f64();
                let rate = tally.frames() as f64 / elapsed.max(1e-9);
                let done = resumed + tally.frames();
                let in_pass = pass_done.min(pass_total);
                self.progress.update(|s| {
                    s.done = done;
                    s.frames_per_s = rate;
                    s.eta_s = (rate > 0.0).then(|| planned.saturating_sub(done) as f64 / rate);
                    s.pass_done = in_pass;
                    s.pass_eta_s = (rate > 0.0).then(|| (pass_total - in_pass) as f64 / rate);
                });
                if last_save.elapsed() >= self.options.checkpoint_every {
                    self.save()?;
                    last_save = Instant::now();
                }
            }
            if end || failure.is_some() {
                return Ok((tally, failure));
            }
        }
    }

    /// Embeds the batch's frames in one call and appends the whole batch, in order, to the
    /// file: embedded frames with their vectors, reused ones with a copy, missing ones noted.
    /// The batch is emptied once it is in the file.
    fn append_batch(
        &self,
        batch: &mut Vec<(u64, Frame)>,
        tally: &mut Tally,
    ) -> Result<(), crate::embed::EmbedError> {
        let images: Vec<PreparedImage> = batch
            .iter_mut()
            .filter_map(|(_, frame)| match frame {
                Frame::Embed(p) => Some(take(p)),
                Frame::Reuse | Frame::Missing(_) => None,
            })
            .collect();
        // Viewers first: while they are active a batch waits for a quiet moment (a second
        // at most, so the index keeps going).
        crate::sync::gate::gate().background_turn(crate::sync::gate::BACKGROUND_MAX_WAIT);
        let mut vectors = self.embedder.embed_prepared(&images)?.into_iter();
        let mut rows: Vec<(u64, Vec<f32>)> = Vec::with_capacity(batch.len());
        let mut missing = Vec::new();
        let mut file = write(self.store);
        for (n, frame) in batch.drain(..) {
            match frame {
                Frame::Embed(_) => {
                    rows.push((n, vectors.next().unwrap_or_default()));
                    tally.embedded += 1;
                }
                Frame::Reuse => {
                    // Only a straight index skips, so the frame before is the row before.
                    let previous = rows.last().map(|r| r.1.clone());
                    rows.push((n, previous.unwrap_or_else(|| file.last_vector().to_vec())));
                    file.note_reused(n);
                    tally.reused += 1;
                }
                Frame::Missing(reason) => {
                    let video = self.video_name();
                    tracing::warn!(video = %video, frame = n, "frame {n} cannot be decoded ({reason}); recorded as missing, indexing goes on");
                    missing.push(n);
                    tally.missing += 1;
                    let note = format!("frame {n} could not be decoded ({reason}); the chart marks it, indexing goes on");
                    self.progress.update(|s| s.message = Some(note));
                }
            }
        }
        file.insert_embedded(rows);
        for n in missing {
            file.insert_missing(n);
        }
        Ok(())
    }
}

/// Frames held before a flush when most are reused (so that progress and checkpoints go on).
const MAX_PENDING_FRAMES: usize = 256;

/// Moves a prepared image out of the batch, leaving an empty one.
fn take(image: &mut PreparedImage) -> PreparedImage {
    std::mem::replace(image, PreparedImage::Cropped(Vec::new()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::RwLock;

    use store::cache::EmbeddingFile;

    use super::*;
    use crate::embed::{EmbedError, Embedder, ModelIdentity};
    use crate::indexing::{IndexOptions, Progress, VideoToIndex};
    use crate::video::Metadata;

    /// Vectors that say which image they were: `[first byte, 1]`.
    struct Echo;

    impl Embedder for Echo {
        fn identity(&self) -> ModelIdentity {
            ModelIdentity {
                name: "echo".into(),
                revision: "1".into(),
                dimension: 2,
            }
        }
        fn prepare_image(&self, _: &opencv::core::Mat) -> Result<PreparedImage, EmbedError> {
            Ok(PreparedImage::Cropped(vec![0]))
        }
        fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(images
                .iter()
                .map(|image| match image {
                    PreparedImage::Cropped(bytes) => vec![f32::from(bytes[0]), 1.0],
                    PreparedImage::Resized { .. } | PreparedImage::Base64Jpeg(_) => vec![0.0, 0.0],
                })
                .collect())
        }
        fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(vec![vec![1.0, 0.0]; texts.len()])
        }
    }

    #[test]
    fn a_batch_goes_into_the_file_whole_reused_and_missing_frames_included() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.mp4");
        std::fs::write(&path, b"only fingerprinted").unwrap();
        let meta = Metadata {
            frames: 10,
            fps: 10.0,
            width: 16,
            height: 16,
            exact_count: true,
        };
        let video = VideoToIndex::with_metadata(&path, meta).unwrap();
        let options = IndexOptions {
            skip_similar: Some(1.0),
            ..IndexOptions::new(dir.path().to_path_buf())
        };
        let store = RwLock::new(EmbeddingFile::with_skip(
            video.header(&Echo, None),
            options.skip_similar,
        ));
        let (progress, cancel) = (Progress::default(), AtomicBool::new(false));
        let cache_path = dir.path().join("v.clipemb");
        let job = IndexJob {
            video: &video,
            embedder: &Echo,
            options: &options,
            progress: &progress,
            cancel: &cancel,
            cache_path: &cache_path,
            store: &store,
            cache_problem: None,
            focus: None,
        };
        let mut batch = vec![
            (0, Frame::Embed(PreparedImage::Cropped(vec![7]))),
            (1, Frame::Reuse),
            (2, Frame::Missing("a damaged slice".into())),
            (3, Frame::Embed(PreparedImage::Cropped(vec![9]))),
        ];
        let mut tally = Tally::default();
        job.append_batch(&mut batch, &mut tally).unwrap();
        assert!(
            batch.is_empty(),
            "the batch is emptied once it is in the file"
        );
        assert_eq!((tally.embedded, tally.reused, tally.missing), (2, 1, 1));
        assert_eq!(tally.frames(), 4);
        let file = store.read().unwrap();
        assert_eq!(file.frames, vec![0, 1, 3]);
        assert_eq!(
            file.vectors,
            vec![7.0, 1.0, 7.0, 1.0, 9.0, 1.0],
            "1 copies 0's vector"
        );
        assert_eq!(file.missing, vec![2]);
        assert_eq!(file.skip.as_ref().unwrap().reused, vec![1]);
        let note = progress.snapshot().message.unwrap();
        assert!(note.contains("frame 2 could not be decoded"), "{note}");
    }

    #[test]
    fn an_image_moved_out_of_a_batch_leaves_an_empty_one() {
        let mut image = PreparedImage::Cropped(vec![1, 2, 3]);
        let moved = take(&mut image);
        assert_eq!(moved.size_bytes(), 3);
        assert_eq!(image.size_bytes(), 0);
    }
}
