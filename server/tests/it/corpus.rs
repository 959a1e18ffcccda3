//! Frame N is the N-th frame FFmpeg presents, on files shaped like users' files.
//!
//! For every file of the corpus (`crate::common::corpus()`: made from the pattern videos by Debian's
//! `ffmpeg` — MPEG-PS and MPEG-TS with start offsets, H.264 with B-frames in TS, MP4 and MKV,
//! open-GOP MPEG-2, captures that start mid-GOP, an MP4 trimmed by stream copy (edit list),
//! audio that starts first, HEVC 8/10-bit with open GOPs, MJPEG at 29.97 fps, a rotated MP4)
//! and the older test videos: the frame count equals what `ffmpeg -fps_mode passthrough`
//! decodes, a sequential read from frame 0 and 200 random seeks give exactly the frame that
//! `ffmpeg` presents as N (read from the pattern in its pixels), and `index` then `scores`
//! give one value per frame.

use std::path::Path;
use std::process::Command;

use engine::video::{Decoder, FrameIndex};
use testvideo::{ffmpeg_patterns, read_pattern};

const BIN: &str = env!("CARGO_BIN_EXE_clip-investigator");

fn seed(name: &str) -> u64 {
    name.bytes()
        .fold(7, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// Count, sequential read and 200 random seeks against what `ffmpeg` presents.
fn check_frames(name: &str) {
    let path = crate::common::video(name);
    let expected = ffmpeg_patterns(&path).unwrap();
    assert!(
        expected.len() > 50,
        "{name}: ffmpeg presents {} frames",
        expected.len()
    );
    let index = FrameIndex::load_or_build(&path, None).unwrap();
    let ours = index.frames();
    assert_eq!(
        ours,
        expected.len() as u64,
        "{name}: frame count (ffmpeg presents {}, starting with pattern {})",
        expected.len(),
        expected[0]
    );

    let mut decoder = Decoder::with_index(&path, index.clone()).unwrap();
    let mut wrong = Vec::new();
    for (n, &want) in expected.iter().enumerate() {
        let got = read_pattern(&decoder.frame(n as u64).unwrap()).unwrap();
        if got != want {
            wrong.push((n, want, got));
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: sequential (frame, ffmpeg's, ours): {wrong:?}"
    );
    let sequential_exact = expected.len() - wrong.len();

    let mut decoder = Decoder::with_index(&path, index).unwrap();
    let mut rng = crate::common::Rng::new(seed(name));
    for _ in 0..SEEKS {
        let n = rng.below(expected.len() as u64);
        let frame = decoder
            .frame(n)
            .unwrap_or_else(|e| panic!("{name}: frame {n}: {e}"));
        let got = read_pattern(&frame).unwrap();
        if got != expected[n as usize] {
            wrong.push((n as usize, expected[n as usize], got));
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: random seeks (frame, ffmpeg's, ours): {wrong:?}"
    );
    // One row of the corpus table (`cargo test --test it corpus:: -- --nocapture`).
    eprintln!(
        "corpus | {name} | {} | {ours} | {sequential_exact}/{} | {}/{SEEKS} |",
        expected.len(),
        expected.len(),
        SEEKS - wrong.len()
    );
}

/// Random seeks per corpus file.
const SEEKS: usize = 200;

macro_rules! corpus_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check_frames($name);
            }
        )*

        /// Every corpus file has a test above.
        #[test]
        fn every_corpus_file_is_checked() {
            let tested = [$($name),*];
            for (name, _) in crate::common::corpus() {
                assert!(tested.contains(&name), "{name} has no test");
            }
        }
    };
}

corpus_tests! {
    h264_with_b_frames_in_mp4 => "h264_bframes.mp4",
    mpeg2_with_open_gops_in_mkv => "mpeg2_open_gop.mkv",
    mpeg_program_stream_starting_at_half_a_second => "program_stream_0.5s.mpg",
    h264_with_b_frames_in_transport_stream_starting_at_10s => "h264_bframes_10s.ts",
    open_gop_mpeg2_in_transport_stream_starting_at_1_4s => "mpeg2_open_gop_1.4s.ts",
    mpeg2_capture_starting_mid_gop => "capture_mid_gop.ts",
    h264_capture_starting_mid_gop => "capture_h264_mid_gop.ts",
    h264_with_open_gops_in_mp4 => "h264_open_gop.mp4",
    h264_with_open_gops_in_transport_stream => "h264_open_gop.ts",
    h264_open_gop_capture_starting_mid_gop => "capture_h264_open_gop.ts",
    mp4_trimmed_by_stream_copy_at_a_non_keyframe => "trimmed_stream_copy.mp4",
    mp4_whose_audio_starts_first => "audio_first.mp4",
    h264_in_mkv => "h264.mkv",
    mp4_rotated_by_a_quarter_turn => "rotated_90.mp4",
    hevc_8_bit => "hevc.mp4",
    hevc_10_bit => "hevc_10bit.mp4",
    mjpeg_avi_at_29_97 => "mjpeg_29.97.avi",
    mpeg2_of_odd_height_in_mkv => "mpeg2_405.mkv",
    mpeg_program_stream_of_odd_height => "program_stream_405.mpg",
    mpeg2_of_even_height_in_mkv => "mpeg2_406.mkv",
    mpeg_program_stream_of_even_height => "program_stream_406.mpg",
}

#[test]
fn the_older_test_videos_too() {
    for (name, _) in crate::common::specs() {
        check_frames(name);
    }
}

#[test]
fn what_ffmpeg_shows_of_the_edited_files() {
    // The ground truth itself, so the tests above cannot pass on files that are not shaped as
    // intended: the trim starts at frame 33, the captures mid-stream, the offsets do not.
    let first = |name: &str| ffmpeg_patterns(&crate::common::video(name)).unwrap()[0];
    assert_eq!(first("trimmed_stream_copy.mp4"), 33);
    assert!(first("capture_mid_gop.ts") > 12);
    assert!(first("capture_h264_mid_gop.ts") > 12);
    assert!(first("capture_h264_open_gop.ts") > 12);
    assert_eq!(first("program_stream_0.5s.mpg"), 0);
    assert_eq!(first("h264_bframes_10s.ts"), 0);
    // ffmpeg turns the rotated file upright: its patterns read as 0, 1, 2, …
    let rotated = ffmpeg_patterns(&crate::common::video("rotated_90.mp4")).unwrap();
    assert_eq!(rotated, (0..190).collect::<Vec<u64>>());
    let index = |name: &str| FrameIndex::load_or_build(&crate::common::video(name), None).unwrap();
    let ts = index("h264_bframes_10s.ts");
    assert!(
        (ts.facts.start_time_s.unwrap() - 10.0).abs() < 0.2,
        "{:?}",
        ts.facts.start_time_s
    );
    let ps = index("program_stream_0.5s.mpg");
    assert!(
        (ps.facts.start_time_s.unwrap() - 0.5).abs() < 0.1,
        "{:?}",
        ps.facts.start_time_s
    );
    assert!(
        index("trimmed_stream_copy.mp4").discarded > 0,
        "an edit list that starts mid-GOP"
    );
    assert!(
        index("capture_mid_gop.ts").not_shown > 0,
        "packets before the first keyframe"
    );
    // Frame times start at 0 whatever the file's clock says, and follow its timestamps.
    assert_eq!(ts.time_s(0), 0.0);
    assert!((ts.time_s(30) - 1.0).abs() < 1e-6, "{}", ts.time_s(30));
    assert!((ps.fps() - 25.0).abs() < 1e-9, "{}", ps.fps());
    let mjpeg = index("mjpeg_29.97.avi");
    assert!(
        (mjpeg.fps() - 30000.0 / 1001.0).abs() < 1e-6,
        "{}",
        mjpeg.fps()
    );
    let vfr = index("vfr_h264.mp4");
    assert!(!vfr.constant_rate());
    // Every 7th frame lasts 1.5 periods: frame 14 is shown at (14 + 0.5 * 2) / 30 s.
    assert!(
        (vfr.time_s(14) - 15.0 / 30.0).abs() < 1e-3,
        "{}",
        vfr.time_s(14)
    );
}

#[test]
fn rotated_videos_are_upright_with_width_and_height_swapped() {
    let path = crate::common::video("rotated_90.mp4");
    let index = FrameIndex::load_or_build(&path, None).unwrap();
    // The file's display matrix turns the stored (sideways) pictures a quarter turn
    // counter-clockwise: 270° clockwise.
    assert_eq!(index.facts.rotation, 270);
    assert_eq!(
        (index.facts.coded_width, index.facts.coded_height),
        (360, 640)
    );
    let meta = engine::video::probe(&path).unwrap();
    assert_eq!((meta.width, meta.height), (640, 360));
    let mut decoder = Decoder::with_index(&path, index).unwrap();
    let frame = decoder.frame(77).unwrap();
    use opencv::prelude::MatTraitConst;
    assert_eq!((frame.cols(), frame.rows()), (640, 360));
    assert_eq!(
        read_pattern(&frame).unwrap(),
        77,
        "upright: the pattern reads"
    );
}

#[test]
fn the_frame_index_is_saved_under_the_content_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::common::video("h264_bframes_10s.ts");
    let built = FrameIndex::load_or_build(&path, Some(dir.path())).unwrap();
    let file = FrameIndex::path_in(dir.path(), &path).unwrap();
    assert!(file.is_file(), "saved as {}", file.display());
    // A copy under another name is the same content: the saved index is found and used.
    let copy = dir.path().join("renamed.ts");
    std::fs::copy(&path, &copy).unwrap();
    let read = FrameIndex::load_or_build(&copy, Some(dir.path())).unwrap();
    assert_eq!(*read, *built);
    // A damaged index file is moved aside and rebuilt, never trusted.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let rebuilt = FrameIndex::load_or_build(&path, Some(dir.path())).unwrap();
    assert_eq!(*rebuilt, *built);
    let aside = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains(".bad"));
    assert!(aside, "the damaged file was moved aside");
}

/// `index` then `scores --json` with the tiny model, through the binary.
fn index_and_score(dir: &Path, video: &Path) -> serde_json::Value {
    let config = dir.join("config.yaml");
    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let video = video.to_str().unwrap();
    run(&["index", video, "--json"]);
    serde_json::from_slice(&run(&[
        "scores",
        video,
        "--prompt",
        "a brick wall",
        "--json",
    ]))
    .unwrap()
}

#[test]
fn index_then_scores_give_one_value_per_frame() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        format!(
            "video_path: v.mp4\nmodel: {:?}\n",
            crate::common::tiny_model()
        ),
    )
    .unwrap();
    let names = crate::common::corpus().into_iter().map(|(n, _)| n);
    for name in names.chain(crate::common::specs().into_iter().map(|(n, _)| n)) {
        let path = crate::common::video(name);
        let frames = ffmpeg_patterns(&path).unwrap().len();
        let answer = index_and_score(dir.path(), &path);
        let values = answer["scores"]["a brick wall"].as_array().unwrap();
        assert_eq!(values.len(), frames, "{name}: one score per frame");
        assert!(values.iter().all(|v| v.is_number()), "{name}: no gaps");
        assert_eq!(answer["frames"].as_array().unwrap().len(), frames, "{name}");
        let times = answer["times_s"].as_array().unwrap();
        assert_eq!(times[0].as_f64(), Some(0.0), "{name}: frame 0 is at 0 s");
        assert!(answer["missing"].as_array().unwrap().is_empty(), "{name}");
        eprintln!(
            "index | {name} | {frames} frames | {} scores | {} missing |",
            values.len(),
            answer["missing"].as_array().map_or(0, Vec::len)
        );
    }
}

/// A copy of the MJPEG file whose JPEG of frame `broken` is damaged (its first 400 bytes after
/// the start-of-image marker zeroed): one frame that cannot be decoded, in an intact file.
fn with_one_broken_frame(broken: usize) -> std::path::PathBuf {
    let mut bytes = std::fs::read(crate::common::video("mjpeg_29.97.avi")).unwrap();
    let starts: Vec<usize> = bytes
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0xff, 0xd8, 0xff])
        .map(|(i, _)| i)
        .collect();
    let at = starts[broken] + 2;
    bytes[at..at + 400].fill(0);
    crate::common::scratch_file("one_broken_frame.avi", &bytes)
}

#[test]
fn a_frame_that_cannot_be_decoded_is_one_frame_not_the_end() {
    let path = with_one_broken_frame(50);
    let index = FrameIndex::load_or_build(&path, None).unwrap();
    assert_eq!(
        index.frames(),
        150,
        "the packet is there: frame 50 exists, broken"
    );
    let mut decoder = Decoder::with_index(&path, index).unwrap();
    for n in 0..150u64 {
        match decoder.frame(n) {
            Ok(frame) => assert_eq!(read_pattern(&frame).unwrap(), n),
            Err(error) => {
                assert_eq!(n, 50, "only frame 50 is broken: {error}");
                let message = error.to_string();
                assert!(
                    message.contains("frame 50") && message.contains("cannot be decoded"),
                    "{message}"
                );
                assert!(!message.contains("truncated"), "{message}");
                assert!(!message.contains("()"), "the reason is said: {message}");
            }
        }
    }
    // Seeking to it, and to its neighbours after it, behaves the same.
    assert!(decoder.frame(50).is_err());
    assert_eq!(read_pattern(&decoder.frame(49).unwrap()).unwrap(), 49);
    assert_eq!(read_pattern(&decoder.frame(51).unwrap()).unwrap(), 51);

    // Indexing records it as missing and goes on; scores have a gap there and values elsewhere.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        format!(
            "video_path: v.mp4\nmodel: {:?}\n",
            crate::common::tiny_model()
        ),
    )
    .unwrap();
    let answer = index_and_score(dir.path(), &path);
    assert_eq!(answer["missing"], serde_json::json!([50]));
    let values = answer["scores"]["a brick wall"].as_array().unwrap();
    assert_eq!(values.len(), 150);
    for (n, v) in values.iter().enumerate() {
        assert_eq!(v.is_null(), n == 50, "frame {n}: {v}");
    }
}
