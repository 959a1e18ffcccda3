//! Coarse-to-fine indexing: the finished file is the straight index's, byte for byte, on our
//! pattern videos and on the real-world corpus; each pass halves the spacing; a sparse pass
//! decodes only what its frames need; the span a viewer looks at is refined before the rest.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::common::video;
use crate::embedding::{stderr, Workspace};
use engine::embed::{EmbedError, Embedder, ModelIdentity, PreparedImage};
use engine::indexing::{load_cache, Focus, IndexJob, IndexOptions, Progress, VideoToIndex};
use store::cache::EmbeddingFile;

/// Indexes `path` straight and coarse to fine (`extra` arguments to both), and returns both
/// cache files' bytes and the progressive run's report.
fn straight_and_progressive(path: &Path, extra: &[&str]) -> (Vec<u8>, Vec<u8>, serde_json::Value) {
    let video_arg = path.to_str().unwrap();
    let straight = Workspace::new();
    let progressive = Workspace::new();
    let mut args = vec!["index", video_arg, "--json"];
    args.extend(extra);
    let plain = straight.run_json(&args);
    assert_eq!(plain["passes"].as_array().unwrap().len(), 1, "{plain}");
    args.push("--progressive");
    let report = progressive.run_json(&args);
    let bytes = |ws: &Workspace| {
        let files = ws.cache_files();
        assert_eq!(files.len(), 1, "{files:?}");
        std::fs::read(&files[0]).unwrap()
    };
    (bytes(&straight), bytes(&progressive), report)
}

/// Per pass: frames kept for later passes and pictures decoded.
fn kept_and_decoded(report: &serde_json::Value) -> Vec<(u64, u64)> {
    report["passes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kept_for_later"].as_u64().unwrap(),
                p["decoded"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn passes(report: &serde_json::Value) -> Vec<(u64, u64, f64)> {
    report["passes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["frames"].as_u64().unwrap(),
                p["spacing_frames"].as_u64().unwrap(),
                p["decoded_per_embedded"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_progressive_index_ends_byte_identical_to_a_straight_one() {
    // 300 frames at 30 fps, a keyframe every 250: first pass one frame a second.
    let path = video("h264_gop250.mp4");
    let (straight_every, progressive, report) = straight_and_progressive(&path, &[]);
    assert!(straight_every == progressive, "the finished files differ");
    let passes = passes(&report);
    eprintln!("h264_gop250.mp4 passes (frames, spacing after, decoded per embedded): {passes:?}");
    assert_eq!(passes.iter().map(|p| p.0).sum::<u64>(), 300);
    assert_eq!(passes[0].0, 10, "one frame a second");
    let spacings: Vec<u64> = passes.iter().map(|p| p.1).collect();
    assert_eq!(spacings, [30, 15, 8, 4, 2, 1]);
    // The first pass decodes on from one frame to the next (no keyframe between them), not the
    // whole video per frame, and skips the pictures on the way that nothing refers to (a third
    // of this file's): about 20 pictures per frame rather than 30.
    assert!(
        passes[0].2 <= 25.0,
        "first pass decoded {} per frame",
        passes[0].2
    );
    // Pass 1 decodes through the frames of passes 2 and 3 and keeps them, pass 4 those of
    // pass 5: passes 2, 3 and 5 decode nothing. The last pass decodes every frame for scene
    // cuts, so none are kept for it.
    let kept = kept_and_decoded(&report);
    eprintln!("h264_gop250.mp4 passes (kept for later passes, decoded): {kept:?}");
    assert_eq!(kept[0].0, passes[1].0 + passes[2].0);
    assert_eq!(kept[3].0, passes[4].0);
    for pass in [1, 2, 4] {
        assert_eq!(kept[pass].1, 0, "pass {} decodes nothing", pass + 1);
    }
    assert_eq!(kept[1].0 + kept[2].0 + kept[4].0 + kept[5].0, 0);
    assert!(kept[5].1 >= 300, "the last pass decodes every frame");

    // Sampled at 5 fps: the passes cover the sampled plan, the file equals the straight one.
    let (straight, progressive, report) = straight_and_progressive(&path, &["--sample-fps", "5"]);
    assert!(
        straight == progressive,
        "sampled: the finished files differ"
    );
    let passes = self::passes(&report);
    assert_eq!(passes.iter().map(|p| p.0).sum::<u64>(), 50);
    assert_eq!(passes[0].0, 10);

    // With no memory to keep frames in, each pass decodes what it needs itself: the same file.
    let unkept = Workspace::new();
    unkept.add_to_config("progressive_memory_mb: 0\n");
    let report = unkept.run_json(&["index", path.to_str().unwrap(), "--json", "--progressive"]);
    let unkept = std::fs::read(&unkept.cache_files()[0]).unwrap();
    assert!(
        straight_every == unkept,
        "without keeping: the finished files differ"
    );
    assert!(kept_and_decoded(&report)
        .iter()
        .all(|&(kept, decoded)| kept == 0 && decoded > 0));
}

#[test]
fn sparse_passes_seek_to_keyframes_where_that_decodes_less() {
    // A keyframe every 10 frames (the MJPEG file: every frame a keyframe; MPEG-2: short GOPs):
    // a pass one frame a second seeks instead of decoding the second through.
    let path = video("mjpeg_29.97.avi");
    let (straight, progressive, report) = straight_and_progressive(&path, &[]);
    assert!(straight == progressive);
    let passes = passes(&report);
    eprintln!("mjpeg_29.97.avi passes: {passes:?}");
    assert!(
        passes[0].2 <= 1.5,
        "an intra-only file decodes about one picture per frame: {}",
        passes[0].2
    );
}

#[test]
fn progressive_indexing_of_the_real_world_corpus_ends_as_the_straight_index() {
    // Start offsets, open GOPs, edit lists, B-frames, rotation, audio first.
    for name in [
        "h264_bframes_10s.ts",
        "mpeg2_open_gop_1.4s.ts",
        "capture_h264_open_gop.ts",
        "trimmed_stream_copy.mp4",
        "rotated_90.mp4",
        "audio_first.mp4",
    ] {
        let (straight, progressive, report) = straight_and_progressive(&video(name), &[]);
        assert!(straight == progressive, "{name}: the finished files differ");
        let file = EmbeddingFile::from_bytes(&progressive).unwrap();
        assert_eq!(
            file.frames.len() as u64 + file.missing.len() as u64,
            file.header.video_frames,
            "{name}"
        );
        assert_eq!(file.scene_measured(), file.header.video_frames, "{name}");
        eprintln!("{name}: identical after {} passes", passes(&report).len());
    }
}

#[test]
fn progressive_refuses_skipping_similar_frames_with_what_to_do() {
    let ws = Workspace::new();
    let path = video("h264_gop250.mp4");
    let output = ws.run(&[
        "index",
        path.to_str().unwrap(),
        "--progressive",
        "--skip-similar",
        "1",
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("drop --skip-similar or --progressive"));
}

/// The tiny model, slowed down so that a test can act between batches, noting which frames the
/// file held at each call.
struct Watched {
    inner: Arc<dyn Embedder>,
    store: Arc<RwLock<EmbeddingFile>>,
    seen: Mutex<Vec<Vec<u64>>>,
}

impl Embedder for Watched {
    fn identity(&self) -> ModelIdentity {
        self.inner.identity()
    }
    fn prepare_image(&self, frame: &opencv::core::Mat) -> Result<PreparedImage, EmbedError> {
        self.inner.prepare_image(frame)
    }
    fn embed_prepared(&self, images: &[PreparedImage]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let held = self.store.read().unwrap().frames.clone();
        self.seen.lock().unwrap().push(held);
        std::thread::sleep(Duration::from_millis(15));
        self.inner.embed_prepared(images)
    }
    fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.embed_texts(texts)
    }
}

#[test]
fn the_span_a_viewer_zooms_into_is_refined_before_the_rest() {
    let path = video("h264_gop250.mp4");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
    let tiny: Arc<dyn Embedder> = Arc::new(engine::embed::local::LocalClip::load(&model).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let options = IndexOptions {
        coarse_interval_s: Some(1.0),
        batch_size: 4,
        ..IndexOptions::new(dir.path().to_path_buf())
    };
    let to_index = VideoToIndex::open(&path, None).unwrap();
    let (cache_path, file, _) = load_cache(&to_index, tiny.as_ref(), &options);
    let store = Arc::new(RwLock::new(file));
    let watched = Watched {
        inner: tiny,
        store: Arc::clone(&store),
        seen: Mutex::new(Vec::new()),
    };
    let progress = Progress::default();
    let focus = Focus::default();
    let cancel = AtomicBool::new(false);
    // The last 10 % of the video.
    let span = 270..=299u64;
    let report = std::thread::scope(|scope| {
        // During the first fine pass (pass 2), the viewer zooms in.
        scope.spawn(|| {
            let started = Instant::now();
            while progress.snapshot().pass < 2 {
                assert!(started.elapsed() < Duration::from_secs(60), "no pass 2");
                std::thread::sleep(Duration::from_millis(1));
            }
            focus.set(span.clone());
        });
        IndexJob {
            video: &to_index,
            embedder: &watched,
            options: &options,
            progress: &progress,
            cancel: &cancel,
            cache_path: &cache_path,
            store: &store,
            cache_problem: None,
            focus: Some(&focus),
        }
        .run()
        .unwrap()
    });
    assert_eq!(report.resumed + report.embedded, 300);
    let seen = watched.seen.into_inner().unwrap();
    let in_span = |held: &Vec<u64>| held.iter().filter(|f| span.contains(f)).count();
    // The first call at which the span was complete: the rest was far from it.
    let at = seen
        .iter()
        .position(|held| in_span(held) == 30)
        .expect("the span was complete before the last batch");
    let outside = seen[at].len() - 30;
    eprintln!(
        "span 270..=299 complete after {} of {} batches, with {outside} of 270 other frames embedded",
        at,
        seen.len()
    );
    assert!(
        outside < 60,
        "{outside} other frames were embedded before the span was done"
    );
    // And its frames went before the first fine pass's own frames outside the span.
    assert!(
        at < seen.len() / 2,
        "span done at batch {at} of {}",
        seen.len()
    );
    // The finished file is the straight index's.
    let finished = store.read().unwrap().clone();
    assert_eq!(finished.frames, (0..300).collect::<Vec<u64>>());
    let status = progress.snapshot();
    assert_eq!((status.pass, status.passes), (6, 6));
}
