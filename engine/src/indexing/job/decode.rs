//! A pass's decoder thread: reads the pass's frames in order (one seek at most, then sequential
//! decoding), prepares each for the model and sends it to the embedding loop; detours into the
//! span a viewer looks at; keeps frames of the next two passes that it decodes on its way
//! anyway; measures every frame for scene cuts where the run asks for them.
//!
//! Invariant: a frame that does not decode is sent as missing and decoding goes on (one broken
//! frame is one frame); any other failure is sent and ends the thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use opencv::core::Mat;

use super::IndexJob;
use crate::embed::PreparedImage;
use crate::indexing::passes::Schedule;
use crate::indexing::scene_writer::{frames_to_visit, ScenePass, SceneWriter};
use crate::indexing::stash::Stash;
use crate::sync::lock;
use crate::video::{Decoder, VideoError};

/// What the decoder thread sends: a frame by number, or the frame it failed at and why.
pub(super) type Decoded = Result<(u64, Frame), (u64, String)>;

/// The frames a pass's decoder thread works on.
#[derive(Clone, Copy)]
pub(super) struct PassFrames<'a> {
    /// The pass's frames, ascending.
    pub(super) todo: &'a [u64],
    /// Where frames are taken from, the pass's and the detours'.
    pub(super) schedule: &'a Schedule<'a>,
    /// Frames of the next pass and of the one after it to keep on the way, each ascending;
    /// empty where this pass keeps none.
    pub(super) later: [&'a [u64]; 2],
    /// Frames kept for later passes (by a pass before, for this one).
    pub(super) stash: &'a Mutex<Stash>,
}

/// A decoded frame on its way to the model, a note that it can reuse the previous vector, or
/// that it cannot be decoded (and why).
pub(super) enum Frame {
    Embed(PreparedImage),
    Reuse,
    Missing(String),
}

/// A frame for the keeper thread to prepare and keep: its number, the picture, and the frames
/// to leave room for.
type ToKeep = (u64, Mat, u64);

/// Pictures waiting for the keeper thread (each a few MB).
const KEEPER_QUEUE: usize = 2;

impl IndexJob<'_> {
    /// The decoder thread: reads the frames of `todo` in order (one seek at most, then
    /// sequential decoding), prepares each for the model and sends it on, or notes that it can
    /// reuse the previous vector. A frame that does not decode is sent as missing and decoding
    /// goes on; any other failure is sent and ends the thread. While `scene` asks for it, every
    /// frame from its start is decoded and measured for scene cuts as well (the same pass: a
    /// sampled index decodes the frames between its samples anyway), and the measures go into
    /// the file in order.
    ///
    /// Frames are taken from `schedule`; whenever the viewer's focus moves, the frames not done
    /// yet in its span are decoded and sent first (a detour), then the pass goes on where it
    /// was. A frame a pass before kept is sent without decoding; frames of the next two passes
    /// that the decoder decodes on its way are prepared (on a keeper thread) and kept (see
    /// [`Stash`]). Returns the pictures the decoder produced.
    pub(super) fn decode(
        &self,
        work: PassFrames,
        scene: Option<ScenePass>,
        sender: SyncSender<Decoded>,
        stop: &AtomicBool,
    ) -> u64 {
        let mut measures = SceneWriter::new(self.store, scene);
        let Some(frames) = frames_to_visit(work.todo, &measures) else {
            return 0;
        };
        let video = self.video;
        let opened = match &video.frames {
            Some(frame_index) => Decoder::with_index(&video.path, Arc::clone(frame_index)),
            None => Decoder::open(&video.path),
        };
        let mut decoder = match opened {
            Ok(d) => d,
            Err(e) => {
                let _ = sender.send(Err((*frames.start(), e.to_string())));
                return 0;
            }
        };
        let has_later = work.later.iter().any(|l| !l.is_empty());
        std::thread::scope(|scope| {
            // Frames kept for later passes are prepared on a thread of their own: where a pass
            // waits on decoding (the first), that work would otherwise leave a core idle.
            let keeper = has_later.then(|| {
                let (to_keep, kept) = sync_channel::<ToKeep>(KEEPER_QUEUE);
                scope.spawn(move || {
                    for (n, frame, reserve) in kept {
                        if let Ok(image) = self.embedder.prepare_image(&frame) {
                            lock(work.stash).keep(n, image, reserve);
                        }
                    }
                });
                to_keep
            });
            self.decode_frames(&mut decoder, work, &mut measures, &sender, keeper, stop);
        });
        measures.flush();
        decoder.pictures_decoded()
    }

    fn decode_frames(
        &self,
        decoder: &mut Decoder,
        work: PassFrames,
        measures: &mut SceneWriter,
        sender: &SyncSender<Decoded>,
        keeper: Option<SyncSender<ToKeep>>,
        stop: &AtomicBool,
    ) {
        let PassFrames { todo, schedule, .. } = work;
        let skip_similar = self.options.skip_similar;
        // Checked at once: a viewer may have moved before this pass began.
        let mut focus_seen = None;
        // The last frame sent to be embedded; a run's first frame is always embedded.
        let mut last_embedded: Option<PreparedImage> = None;
        let mut wanted = todo.iter().copied().peekable();
        // Where the next frames of the two later passes are in their lists.
        let mut later_at = [0usize; 2];
        let stopped = || stop.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed);
        let Some(frames) = frames_to_visit(todo, measures) else {
            return;
        };
        // From the next pass's first frame to its last as well, to keep those.
        let ends = work
            .later
            .iter()
            .flat_map(|l| l.first().into_iter().chain(l.last()));
        let first = ends.clone().copied().fold(*frames.start(), u64::min);
        let last = ends.copied().fold(*frames.end(), u64::max);
        for n in first..=last {
            if stopped() {
                return;
            }
            if Some(schedule.focus_changes()) != focus_seen {
                focus_seen = Some(schedule.focus_changes());
                // The viewer's span first, whichever pass its frames belong to.
                while let Some(t) = schedule.take_in_focus() {
                    if stopped() {
                        return;
                    }
                    let sent = match lock(work.stash).take(t) {
                        Some(kept) => sender.send(Ok((t, Frame::Embed(kept)))).is_ok(),
                        None => self.send_frame(t, decoder.frame(t), sender),
                    };
                    if !sent {
                        return;
                    }
                }
            }
            let embed = wanted.next_if_eq(&n).is_some() && schedule.take(n);
            if embed && !measures.wants(n) {
                if let Some(kept) = lock(work.stash).take(n) {
                    if sender.send(Ok((n, Frame::Embed(kept)))).is_err() {
                        return;
                    }
                    continue;
                }
            }
            if !embed && !measures.wants(n) {
                for (at, frames) in later_at.iter_mut().zip(work.later) {
                    while frames.get(*at).is_some_and(|&f| f < n) {
                        *at += 1;
                    }
                }
                let [next, after] = work.later;
                // Frames of the pass after the next leave room for the next pass's still ahead.
                let reserve = if next.get(later_at[0]) == Some(&n) {
                    Some(0)
                } else if after.get(later_at[1]) == Some(&n) {
                    Some((next.len() - later_at[0]) as u64)
                } else {
                    None
                };
                if let (Some(reserve), Some(keeper)) = (reserve, &keeper) {
                    let next_target = wanted.peek().copied();
                    keep_on_the_way(decoder, n, next_target, reserve, work, keeper);
                }
                continue;
            }
            let decoded = match decoder.frame(n) {
                // One broken frame is one frame: recorded, and indexing goes on.
                Err(VideoError::Decode { reason, .. }) => {
                    measures.skip(n);
                    if embed && sender.send(Ok((n, Frame::Missing(reason)))).is_err() {
                        return;
                    }
                    continue;
                }
                other => other,
            };
            if let Ok(frame) = &decoded {
                measures.measure(n, frame);
                if let Some(tap) = &self.video.tap {
                    tap.0.offer(n, frame);
                }
            }
            if !embed {
                if let Err(e) = decoded {
                    let _ = sender.send(Err((n, e.to_string())));
                    return;
                }
                continue;
            }
            let item = decoded
                .map_err(|e| e.to_string())
                .and_then(|frame| {
                    let prepared = self.embedder.prepare_image(&frame);
                    prepared.map_err(|e| e.to_string())
                })
                .map(|prepared| {
                    let similar = skip_similar.is_some_and(|threshold| {
                        last_embedded.as_ref().is_some_and(|last| {
                            self.embedder
                                .image_difference(last, &prepared)
                                .is_some_and(|d| d < threshold)
                        })
                    });
                    if similar {
                        (n, Frame::Reuse)
                    } else {
                        if skip_similar.is_some() {
                            last_embedded = Some(prepared.clone());
                        }
                        (n, Frame::Embed(prepared))
                    }
                })
                .map_err(|message| (n, message));
            let failed = item.is_err();
            if sender.send(item).is_err() || failed {
                return;
            }
        }
    }

    /// Sends frame `n` of a detour to be embedded (a coarse-to-fine index never skips similar
    /// frames); `false` when the run must end.
    fn send_frame(
        &self,
        n: u64,
        decoded: Result<Mat, VideoError>,
        sender: &SyncSender<Decoded>,
    ) -> bool {
        let item = match decoded {
            Err(VideoError::Decode { reason, .. }) => Ok((n, Frame::Missing(reason))),
            Err(e) => Err((n, e.to_string())),
            Ok(frame) => match self.embedder.prepare_image(&frame) {
                Ok(prepared) => Ok((n, Frame::Embed(prepared))),
                Err(e) => Err((n, e.to_string())),
            },
        };
        let failed = item.is_err();
        sender.send(item).is_ok() && !failed
    }
}

/// Hands frame `n` of a later pass to the keeper when the decoder decodes it anyway on its way
/// to `next_target` (this pass's next frame), or when no keyframe lies between here and it (the
/// later pass would decode more to reach it: from its keyframe), and the budget has room for
/// it beside `reserve` frames. A frame that fails is left to its pass, which
/// reports it.
fn keep_on_the_way(
    decoder: &mut Decoder,
    n: u64,
    next_target: Option<u64>,
    reserve: u64,
    work: PassFrames,
    keeper: &SyncSender<ToKeep>,
) {
    let on_the_way =
        next_target.is_some_and(|t| decoder.passes_on_the_way(n, t)) || decoder.in_reach(n);
    if !on_the_way || !lock(work.stash).has_room(reserve) || !work.schedule.is_pending(n) {
        return;
    }
    if let Ok(frame) = decoder.frame(n) {
        let _ = keeper.send((n, frame, reserve));
    }
}
