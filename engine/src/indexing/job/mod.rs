//! One indexing run ([`IndexJob`]): plans its passes and runs each as a decoder thread
//! (`decode.rs`) feeding the embedding loop (`batches.rs`), with a checkpoint at the end of
//! every pass.
//!
//! Invariants: frames go into the file in their places whatever the order, so a finished file
//! is the same however it was made (straight or coarse to fine, in one run or resumed); every
//! pass ends with a checkpoint, and a failure saves what was embedded before it is reported;
//! no more than a few batches are held in memory (a bounded channel between the threads).

mod batches;
mod decode;

use batches::{Counts, Tally};
use decode::{Decoded, PassFrames};

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use investigator_core::types::IndexState;
use store::cache::EmbeddingFile;

use super::options::IndexOptions;
use super::passes::{coverage, plan_passes, Focus, Schedule};
use super::plan::{load_cache, VideoToIndex};
use super::report::{IndexError, IndexReport, PassReport, Progress};
use super::scene_writer::ScenePass;
use super::stash::Stash;
use crate::embed::Embedder;
use crate::sync::{lock, read, write};

/// Embeds the frames of `video` that its cache file lacks. Blocks; run it on its own thread.
pub fn index_video(
    video: &VideoToIndex,
    embedder: &dyn Embedder,
    options: &IndexOptions,
    progress: &Progress,
    cancel: &AtomicBool,
) -> Result<IndexReport, IndexError> {
    let (cache_path, file, cache_problem) = load_cache(video, embedder, options);
    let store = RwLock::new(file);
    IndexJob {
        video,
        embedder,
        options,
        progress,
        cancel,
        cache_path: &cache_path,
        store: &store,
        cache_problem,
        focus: None,
    }
    .run()
}

/// One run of [`index_video`] into an embedding file that others may read while it grows:
/// a decoder thread ([`decode`](Self::decode)) feeds the embedding loop
/// ([`embed`](Self::embed)) on the calling thread.
pub struct IndexJob<'a> {
    pub video: &'a VideoToIndex,
    pub embedder: &'a dyn Embedder,
    pub options: &'a IndexOptions,
    pub progress: &'a Progress,
    pub cancel: &'a AtomicBool,
    pub cache_path: &'a Path,
    pub store: &'a RwLock<EmbeddingFile>,
    /// A damaged cache file moved aside before this run (shown with its progress).
    pub cache_problem: Option<String>,
    /// The span a viewer looks at, refined first by a coarse-to-fine index.
    pub focus: Option<&'a Focus>,
}

impl IndexJob<'_> {
    pub fn run(&self) -> Result<IndexReport, IndexError> {
        let started = Instant::now();
        let plan = self.video.plan(self.options.sample_fps);
        let covered = self.resume_point(&plan);
        let resumed = covered.len() as u64;
        let total = self.video.meta.frames;
        let first_spacing = self.options.first_spacing(self.video.meta.fps);
        let passes = plan_passes(&plan, &covered, first_spacing, total);
        let progressive = first_spacing.is_some();
        self.progress.update(|s| {
            s.state = IndexState::Running;
            s.done = resumed;
            s.total = plan.len() as u64;
            s.model = Some(crate::embed::model_label(self.embedder));
            s.precision_note = self.embedder.precision_note();
            s.message = self.cache_problem.clone();
            s.passes = if progressive { passes.len() as u32 } else { 0 };
        });
        let mut report = IndexReport {
            cache_path: self.cache_path.to_path_buf(),
            resumed,
            embedded: 0,
            reused: 0,
            missing: 0,
            planned: plan.len() as u64,
            seconds: 0.0,
            cache_problem: self.cache_problem.clone(),
            passes: Vec::new(),
        };
        let measured = read(self.store).scene_measured();
        let scene = ScenePass::after(measured, total).filter(|_| self.options.scene_cuts);
        let todo: usize = passes.iter().map(|p| p.frames.len()).sum();
        if todo == 0 && scene.is_none() {
            if !self.cache_path.exists() {
                self.save()?;
            }
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        if todo == 0 {
            self.progress.update(|s| {
                s.message = Some("measuring scene cuts (the embeddings are complete)".into());
            });
        }

        let schedule = Schedule::new(&passes, self.focus.filter(|_| progressive));
        let budget = if progressive {
            self.options.keep_for_later_passes
        } else {
            0
        };
        let stash = Mutex::new(Stash::new(budget));
        let mut done = resumed;
        // How fine the curves are before a pass: what the passes before it reached.
        let mut reach = coverage(&covered, total);
        for (number, pass) in passes.iter().enumerate() {
            let last = number + 1 == passes.len();
            // Scene cuts need every frame in order: the last pass decodes them all anyway.
            let scene = scene.filter(|_| last);
            let pass_total = schedule.still_to_do(&pass.frames);
            if pass_total == 0 && scene.is_none() {
                reach = (pass.spacing_after, pass.radius_after);
                continue;
            }
            // The first pass fills a prefix at its own spacing; later ones refine a whole curve.
            let (spacing, radius) = if number == 0 {
                (
                    pass.spacing_after,
                    pass.radius_after.min(pass.spacing_after / 2 + 1),
                )
            } else {
                reach
            };
            // A straight run leaves the pass fields at 0: the page then shows no pass.
            if progressive {
                let fps = self.video.meta.fps;
                self.progress.update(|s| {
                    s.pass = number as u32 + 1;
                    s.pass_done = 0;
                    s.pass_total = pass_total;
                    s.pass_eta_s = None;
                    s.spacing_frames = spacing;
                    s.spacing_s = if fps > 0.0 { spacing as f64 / fps } else { 0.0 };
                    s.fill_radius = radius;
                });
            }
            if number > 0 {
                schedule.allow_detours();
            }
            let pass_started = Instant::now();
            let counts = Counts {
                done_before: done,
                planned: plan.len() as u64,
                pass_total,
            };
            // A pass that decodes the video keeps frames for the next two, nearest first, which
            // then decode nothing (or only what did not fit) and keep none; not for the last
            // pass, which decodes every frame anyway (scene cuts).
            let keeping = lock(&stash).is_empty();
            let later = |k: usize| match passes.get(number + k) {
                Some(p) if keeping && number + k + 1 < passes.len() => p.frames.as_slice(),
                _ => &[],
            };
            let work = PassFrames {
                todo: &pass.frames,
                schedule: &schedule,
                later: [later(1), later(2)],
                stash: &stash,
            };
            let outcome = self.run_pass(work, scene, counts);
            let (tally, decoded, failure) = match outcome {
                Ok(outcome) => outcome,
                Err(e) => {
                    let _ = self.save();
                    return Err(e);
                }
            };
            report.embedded += tally.embedded;
            report.reused += tally.reused;
            report.missing += tally.missing;
            done += tally.frames();
            let per_frame = decoded as f64 / tally.frames().max(1) as f64;
            self.progress.update(|s| s.decoded_per_embedded = per_frame);
            report.passes.push(PassReport {
                spacing_frames: pass.spacing_after,
                frames: tally.frames(),
                decoded,
                seconds: pass_started.elapsed().as_secs_f64(),
                finished_at_s: started.elapsed().as_secs_f64(),
                kept_for_later: if keeping {
                    lock(&stash).len() as u64
                } else {
                    0
                },
            });
            if let Some(e) = failure {
                self.save()?;
                return Err(e);
            }
            reach = (pass.spacing_after, pass.radius_after);
            // Each pass ends with a checkpoint: its curves survive a crash whole.
            self.save()?;
        }
        // Every pass ended with a checkpoint: the file is saved. Every planned frame is in it,
        // so no score stands in for its neighbours beyond the sampling any more.
        if progressive {
            self.progress.update(|s| {
                s.spacing_frames = reach.0;
                s.spacing_s = 0.0;
                s.fill_radius = 0;
                s.pass_eta_s = None;
            });
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// One pass: a decoder thread ([`decode`](Self::decode)) feeds the embedding loop
    /// ([`embed`](Self::embed)) on this thread. Returns what it did, the pictures decoded, and
    /// the failure that ended it, if one did.
    fn run_pass(
        &self,
        work: PassFrames,
        scene: Option<ScenePass>,
        counts: Counts,
    ) -> Result<(Tally, u64, Option<IndexError>), IndexError> {
        let stop_decoding = AtomicBool::new(false);
        let (sender, receiver) = sync_channel::<Decoded>(self.batch_size() * 2);
        std::thread::scope(|scope| {
            let stop = &stop_decoding;
            let decoder = scope.spawn(move || self.decode(work, scene, sender, stop));
            // `embed` owns the receiver: dropping it when it returns (even early, on a failed
            // checkpoint) unblocks a decoder thread waiting to send, so it can be joined.
            let outcome = self.embed(receiver, work.todo, counts);
            stop_decoding.store(true, Ordering::Relaxed);
            // A decoder thread that panicked decoded nothing this report can count.
            let decoded = decoder.join().unwrap_or(0);
            outcome.map(|(tally, failure)| (tally, decoded, failure))
        })
    }

    /// The frames of `plan` the file already holds, ascending; a file from another plan is
    /// emptied.
    fn resume_point(&self, plan: &[u64]) -> Vec<u64> {
        let mut file = write(self.store);
        let covered = file.covered_frames();
        // A straight index that skips similar frames runs in order, so its file holds a prefix
        // of the plan; any other index may hold any of the plan's frames (coarse to fine).
        // Anything else is from a different plan and is started over rather than mixed.
        let fits = if self.options.skip_similar.is_some() {
            plan.starts_with(&covered)
        } else {
            covered.iter().all(|f| plan.binary_search(f).is_ok())
        };
        if !fits {
            tracing::warn!(
                "{} does not match this video's frames; indexing again",
                self.cache_path.display()
            );
            *file = EmbeddingFile::with_skip(file.header.clone(), self.options.skip_similar);
            return Vec::new();
        }
        covered
    }

    pub(super) fn save(&self) -> Result<(), IndexError> {
        let file = read(self.store);
        Ok(file.save(self.cache_path)?)
    }

    pub(super) fn batch_size(&self) -> usize {
        self.options.batch_size.max(1)
    }

    pub(super) fn video_name(&self) -> String {
        let name = self.video.path.file_name();
        name.map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use opencv::core::Mat;

    use super::*;
    use crate::embed::{EmbedError, ModelIdentity, PreparedImage};

    /// Each frame's mean colour as its vector: deterministic, weight-free, and different on
    /// every frame of a pattern video (its top band encodes the frame number).
    struct MeanColour;

    impl Embedder for MeanColour {
        fn identity(&self) -> ModelIdentity {
            ModelIdentity {
                name: "mean-colour".into(),
                revision: "1".into(),
                dimension: 3,
            }
        }
        fn prepare_image(&self, frame: &Mat) -> Result<PreparedImage, EmbedError> {
            let mean =
                opencv::core::mean_def(frame).map_err(|e| EmbedError::Model(e.to_string()))?;
            Ok(PreparedImage::Cropped(
                (0..3).map(|c| mean[c].round() as u8).collect(),
            ))
        }
        fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(images
                .iter()
                .map(|image| match image {
                    PreparedImage::Cropped(bytes) => {
                        let mut v: Vec<f32> = bytes.iter().map(|&b| f32::from(b) + 1.0).collect();
                        crate::embed::l2_normalize(&mut v);
                        v
                    }
                    PreparedImage::Resized { .. } | PreparedImage::Base64Jpeg(_) => vec![0.0; 3],
                })
                .collect())
        }
        fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            Ok(vec![vec![1.0, 0.0, 0.0]; texts.len()])
        }
    }

    const FRAMES: u64 = 48;

    /// A 48-frame pattern video (a keyframe every 12) in `dir`, ready to index.
    fn video(dir: &Path) -> VideoToIndex {
        let path = dir.join("pattern.mp4");
        let spec = testvideo::Spec {
            width: 160,
            height: 96,
            keyframe_interval: 12,
            ..testvideo::Spec::new(testvideo::Codec::H264, FRAMES as u32)
        };
        testvideo::write(&path, &spec).unwrap();
        VideoToIndex::open(&path, None).unwrap()
    }

    fn options(cache: PathBuf) -> IndexOptions {
        std::fs::create_dir_all(&cache).unwrap();
        IndexOptions {
            batch_size: 5,
            ..IndexOptions::new(cache)
        }
    }

    fn run(
        video: &VideoToIndex,
        options: &IndexOptions,
        cancel: bool,
    ) -> Result<IndexReport, IndexError> {
        let cancel = AtomicBool::new(cancel);
        index_video(video, &MeanColour, options, &Progress::default(), &cancel)
    }

    fn cache_bytes(report: &IndexReport) -> Vec<u8> {
        std::fs::read(&report.cache_path).unwrap()
    }

    #[test]
    fn a_run_embeds_every_planned_frame_and_the_next_has_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let video = video(dir.path());
        let options = options(dir.path().join("cache"));
        let first = run(&video, &options, false).unwrap();
        assert_eq!(
            (first.planned, first.resumed, first.embedded),
            (FRAMES, 0, FRAMES)
        );
        assert_eq!((first.reused, first.missing), (0, 0));
        assert_eq!(first.passes.len(), 1, "straight: one pass");
        let file = EmbeddingFile::peek(&first.cache_path).unwrap();
        assert_eq!(file.frames, (0..FRAMES).collect::<Vec<_>>());
        assert_eq!(
            file.scene_measured(),
            FRAMES,
            "cuts measured in the same pass"
        );
        let second = run(&video, &options, false).unwrap();
        assert_eq!((second.resumed, second.embedded), (FRAMES, 0));
        assert_eq!(cache_bytes(&first), cache_bytes(&second));
    }

    /// [`MeanColour`] that stops the run (as a server shutting down would) after `after`
    /// batches.
    struct StopAfter {
        after: usize,
        batches: std::sync::atomic::AtomicUsize,
        cancel: std::sync::Arc<AtomicBool>,
    }

    impl Embedder for StopAfter {
        fn identity(&self) -> ModelIdentity {
            MeanColour.identity()
        }
        fn prepare_image(&self, frame: &Mat) -> Result<PreparedImage, EmbedError> {
            MeanColour.prepare_image(frame)
        }
        fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
            if self.batches.fetch_add(1, Ordering::Relaxed) + 1 >= self.after {
                self.cancel.store(true, Ordering::Relaxed);
            }
            MeanColour.embed_prepared(images)
        }
        fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            MeanColour.embed_texts(texts)
        }
    }

    #[test]
    fn a_stopped_run_keeps_what_it_embedded_and_the_next_finishes_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let video = video(dir.path());
        let straight = run(&video, &options(dir.path().join("straight")), false).unwrap();
        let options = options(dir.path().join("stopped"));
        let cancel = std::sync::Arc::new(AtomicBool::new(false));
        let stopper = StopAfter {
            after: 2,
            batches: Default::default(),
            cancel: std::sync::Arc::clone(&cancel),
        };
        let stopped =
            index_video(&video, &stopper, &options, &Progress::default(), &cancel).unwrap_err();
        assert!(matches!(stopped, IndexError::Cancelled), "{stopped}");
        // The same name in another folder: the name is the video's and the model's, not the run's.
        let name = straight.cache_path.file_name().unwrap();
        let kept = EmbeddingFile::peek(&options.cache_dir.join(name)).unwrap();
        assert!(
            kept.frames.len() >= 10 && (kept.frames.len() as u64) < FRAMES,
            "the batches before the stop are saved: {} frames",
            kept.frames.len()
        );
        let finished = run(&video, &options, false).unwrap();
        assert_eq!(finished.resumed, kept.frames.len() as u64);
        assert_eq!(finished.resumed + finished.embedded, FRAMES);
        assert_eq!(
            cache_bytes(&finished),
            cache_bytes(&straight),
            "byte for byte"
        );
    }

    #[test]
    fn coarse_to_fine_passes_end_in_the_straight_file_and_keep_frames_for_later() {
        let dir = tempfile::tempdir().unwrap();
        let video = video(dir.path());
        let straight = run(&video, &options(dir.path().join("straight")), false).unwrap();
        let progressive = IndexOptions {
            // 0.2 s at 30 fps: one frame in 6 first, then 3, 2 and 1 apart.
            coarse_interval_s: Some(0.2),
            ..options(dir.path().join("progressive"))
        };
        let report = run(&video, &progressive, false).unwrap();
        assert!(report.passes.len() > 2, "{:?}", report.passes);
        assert_eq!(report.passes[0].frames, FRAMES.div_ceil(6));
        assert_eq!(report.passes.iter().map(|p| p.frames).sum::<u64>(), FRAMES);
        assert!(
            report.passes[0].kept_for_later > 0,
            "the first pass keeps frames on its way"
        );
        let widths: Vec<u64> = report.passes.iter().map(|p| p.spacing_frames).collect();
        assert!(widths.windows(2).all(|w| w[1] <= w[0]), "{widths:?}");
        assert_eq!(
            cache_bytes(&report),
            cache_bytes(&straight),
            "byte for byte"
        );
    }

    #[test]
    fn a_sampled_plan_embeds_only_its_frames() {
        let dir = tempfile::tempdir().unwrap();
        let video = video(dir.path());
        let sampled = IndexOptions {
            sample_fps: Some(5.0),
            ..options(dir.path().join("cache"))
        };
        let report = run(&video, &sampled, false).unwrap();
        assert_eq!(report.planned, FRAMES.div_ceil(6));
        let file = EmbeddingFile::peek(&report.cache_path).unwrap();
        assert_eq!(file.frames, (0..FRAMES).step_by(6).collect::<Vec<_>>());
        assert_eq!(
            file.scene_measured(),
            FRAMES,
            "every frame is still measured for cuts"
        );
    }
}
