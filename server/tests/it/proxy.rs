//! The display proxy shows frame N as frame N: on every file of the real-world corpus (start
//! offsets, open GOPs, edit lists, B-frames, rotation, audio first, HEVC, MJPEG) and the older
//! test videos (VFR among them), its segments — made out of order, as viewers ask for them —
//! give, read in order and at random, the pattern `ffmpeg` presents as frame N for every frame
//! of every segment; a segment that does not match its video is not used.

use std::sync::Arc;

use engine::video::{
    segment_count, segment_frames, segment_of, Decoder, FrameIndex, ProxyDecoder, ProxySegments,
    PROXY_GOP, SEGMENT_FRAMES,
};
use opencv::prelude::MatTraitConst;
use testvideo::{ffmpeg_patterns, read_pattern};

/// Random seeks per file.
const SEEKS: u64 = 60;

/// Makes every segment of the video at `path` into `dir`, the last first and then the others
/// in order (so each is made both after a seek and by decoding on); returns the segments.
fn make_all(path: &std::path::Path, dir: &std::path::Path, width: u32) -> Arc<ProxySegments> {
    let index = FrameIndex::load_or_build(path, None).unwrap();
    let segments = ProxySegments::open(dir, path, Arc::clone(&index)).unwrap();
    let mut decoder = Decoder::with_index(path, Arc::clone(&index)).unwrap();
    let count = segments.count();
    assert_eq!(count, segment_count(index.frames()));
    for k in std::iter::once(count - 1).chain(0..count - 1) {
        let report = segments
            .make(k, width, &mut decoder, &|| true)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .unwrap();
        let r = segment_frames(k, index.frames());
        assert_eq!(report.frames, r.end - r.start);
    }
    segments
}

fn check_proxy(name: &str, dir: &std::path::Path) -> (u64, u64) {
    let path = crate::common::video(name);
    let expected = ffmpeg_patterns(&path).unwrap();
    let segments = make_all(&path, dir, 320);
    assert_eq!(
        segments.frames_covered(320),
        expected.len() as u64,
        "{name}"
    );
    let mut decoder = ProxyDecoder::new(&segments).unwrap();
    let mut wrong = Vec::new();
    let bytes = segment_files(&segments)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    for (n, &want) in expected.iter().enumerate() {
        let segment = segments.segment(segment_of(n as u64), 320).unwrap();
        let image = decoder.frame_at_width(&segment, n as u64, 320).unwrap();
        assert_eq!(image.cols() as u32, segment.size().0.min(320), "{name}");
        let got = read_pattern(&image).unwrap();
        if got != want {
            wrong.push((n, want, got));
        }
    }
    let sequential = decoder.pictures_decoded();
    let mut rng = crate::common::Rng::new(name.len() as u64 * 7919);
    let mut seek_cost = 0;
    for _ in 0..SEEKS {
        let n = rng.below(expected.len() as u64);
        let segment = segments.segment(segment_of(n), 320).unwrap();
        let before = decoder.pictures_decoded();
        let got = read_pattern(&decoder.frame_at_width(&segment, n, 320).unwrap()).unwrap();
        seek_cost = seek_cost.max(decoder.pictures_decoded() - before);
        if got != expected[n as usize] {
            wrong.push((n as usize, expected[n as usize], got));
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: (frame, ffmpeg's, proxy's): {wrong:?}"
    );
    assert_eq!(
        sequential,
        expected.len() as u64,
        "{name}: one picture per frame"
    );
    assert!(
        seek_cost <= PROXY_GOP,
        "{name}: a seek decoded {seek_cost} pictures"
    );
    (bytes, seek_cost)
}

#[test]
fn the_proxy_shows_frame_n_as_frame_n_on_every_corpus_file_and_test_video() {
    let names: Vec<&str> = crate::common::corpus()
        .into_iter()
        .map(|(n, _)| n)
        .chain(crate::common::specs().into_iter().map(|(n, _)| n))
        .collect();
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, cost) = check_proxy(name, dir.path());
        eprintln!("proxy | {name} | {bytes} bytes | worst seek {cost} pictures");
    }
}

/// The segment files in the proxy's folder.
fn segment_files(segments: &ProxySegments) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(segments.folder())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "segment"))
        .collect();
    files.sort();
    files
}

#[test]
fn a_segment_of_other_content_cut_short_or_stopped_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::common::video("h264_gop250.mp4");
    let index = FrameIndex::load_or_build(&path, None).unwrap();
    assert!(engine::video::proxy_helps(&index));
    let segments = make_all(&path, dir.path(), 320);
    let files = segment_files(&segments);
    assert_eq!(files.len() as u64, segments.count());
    // Opened again: every segment is there.
    let again = ProxySegments::open(dir.path(), &path, Arc::clone(&index)).unwrap();
    assert_eq!(again.frames_covered(320), index.frames());
    // A cut segment file: refused, removed, and counted as not made.
    let bytes = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], &bytes[..bytes.len() - 100]).unwrap();
    assert!(again.segment(1, 320).is_none());
    assert!(!files[1].exists());
    assert_eq!(again.width_of(1), 0);
    assert_eq!(again.frames_covered(320), index.frames() - SEGMENT_FRAMES);
    // Another segment's file under this one's name: refused.
    std::fs::copy(&files[0], &files[2]).unwrap();
    assert!(again.segment(2, 320).is_none());
    // Narrower than asked: not used for that width.
    assert!(again.segment(0, 640).is_none());
    assert!(again.segment(0, 320).is_some());
    // Stopped on the way (the video was closed): no segment, no file left behind.
    let other = tempfile::tempdir().unwrap();
    let fresh = ProxySegments::open(other.path(), &path, Arc::clone(&index)).unwrap();
    let calls = std::cell::Cell::new(0);
    let stop_at_50 = || {
        calls.set(calls.get() + 1);
        calls.get() <= 50
    };
    let mut decoder = Decoder::with_index(&path, Arc::clone(&index)).unwrap();
    assert!(fresh
        .make(0, 320, &mut decoder, &stop_at_50)
        .unwrap()
        .is_none());
    assert!(segment_files(&fresh).is_empty());
    assert_eq!(fresh.width_of(0), 0);
    // Keyframe-dense videos get none.
    let dense = FrameIndex::load_or_build(&crate::common::video("mpeg2.mkv"), None).unwrap();
    assert!(!engine::video::proxy_helps(&dense));
}

#[test]
fn a_new_content_of_the_file_drops_the_old_proxy_and_a_killed_write_leaves_no_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("video.mp4");
    std::fs::copy(crate::common::video("h264_gop250.mp4"), &path).unwrap();
    let cache = dir.path().join("cache");
    let old = make_all(&path, &cache, 320);
    let old_folder = old.folder().to_path_buf();
    // A write killed before its rename leaves only a temporary file: removed on opening.
    let torn = old_folder.join(".000000-w640.segment.tmp-99999-0");
    std::fs::write(&torn, b"half a segment").unwrap();
    let index = FrameIndex::load_or_build(&path, None).unwrap();
    let reopened = ProxySegments::open(&cache, &path, Arc::clone(&index)).unwrap();
    assert!(!torn.exists());
    assert_eq!(reopened.frames_covered(320), index.frames());
    // The file is replaced by another video: the old content's proxy goes.
    std::fs::copy(crate::common::video("vfr_h264.mp4"), &path).unwrap();
    let index = FrameIndex::load_or_build(&path, None).unwrap();
    let new = ProxySegments::open(&cache, &path, Arc::clone(&index)).unwrap();
    assert_ne!(new.folder(), old_folder);
    assert!(!old_folder.exists());
    assert_eq!(new.frames_covered(2), 0);
}

/// One decode, two consumers: the frames an index job decodes, given to the proxy's builder in
/// order, become whole segments without a decode of their own; a job that skips a frame leaves
/// that segment to the workers; the segments show frame N as N.
#[test]
fn segments_recorded_from_an_index_jobs_frames_are_exact() {
    use engine::frames::ProxyBuilder;
    use engine::indexing::FrameTap;
    let dir = tempfile::tempdir().unwrap();
    let path = crate::common::video("h264_gop250.mp4");
    let expected = ffmpeg_patterns(&path).unwrap();
    let index = FrameIndex::load_or_build(&path, None).unwrap();
    let segments = ProxySegments::open(dir.path(), &path, Arc::clone(&index)).unwrap();
    let builder = ProxyBuilder::start_with_workers(Arc::clone(&segments), path.clone(), 1280, 0);
    let mut decoder = Decoder::with_index(&path, Arc::clone(&index)).unwrap();
    for n in 0..index.frames() {
        // The job skips frame 130: segment 1 is not recorded.
        if n != 130 {
            builder.offer(n, &decoder.frame(n).unwrap());
        }
    }
    let counts = builder.counts();
    assert_eq!((counts.segments_made, counts.segments_tapped), (2, 2));
    assert_eq!(segments.width_of(1), 0);
    let width = segments.width_of(0);
    assert!(width > 0);
    let mut reader = ProxyDecoder::new(&segments).unwrap();
    for k in [0, 2] {
        for n in segment_frames(k, index.frames()) {
            let segment = segments.segment(k, width).unwrap();
            let image = reader.frame_at_width(&segment, n, width).unwrap();
            assert_eq!(
                read_pattern(&image).unwrap(),
                expected[n as usize],
                "frame {n}"
            );
        }
    }
    builder.close();
}
