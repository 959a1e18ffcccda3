//! The video decoder on real files: metadata, frame-exact random seeks, sequential play, JPEG
//! round trips, and bad input.

use crate::common::{video, Rng, FRAMES};
use engine::video::{self, Decoder, VideoError};
use testvideo::read_pattern;

const ALL: [&str; 4] = ["h264_gop250.mp4", "mpeg2.mkv", "vp9.webm", "vfr_h264.mp4"];

#[test]
fn metadata_matches_each_file() {
    for name in ALL {
        let path = video(name);
        let meta = video::probe(&path).unwrap();
        assert_eq!((meta.width, meta.height), (1280, 720), "{name}");
        assert!(meta.fps > 0.0, "{name}: fps {}", meta.fps);
        // Exact for every container (mkv and webm store no count): the frame index.
        assert!(meta.exact_count, "{name}");
        assert_eq!(meta.frames, FRAMES, "{name}");
        assert_eq!(
            video::count_frames(&path).unwrap(),
            FRAMES,
            "{name}: counted by decoding"
        );
        if name.starts_with("h264") {
            assert!(
                (meta.fps - 30.0).abs() < 1e-6 && (meta.duration_s() - 10.0).abs() < 1e-6,
                "{name}: {meta:?}"
            );
        }
    }
}

#[test]
fn two_hundred_random_seeks_land_on_the_requested_frame() {
    for (seed, name) in ALL.iter().enumerate() {
        let path = video(name);
        let mut decoder = Decoder::open(&path).unwrap();
        let mut rng = Rng::new(seed as u64 + 7);
        let mut wrong = Vec::new();
        for _ in 0..200 {
            let n = rng.below(FRAMES);
            let frame = decoder.frame(n).unwrap();
            let got = read_pattern(&frame).unwrap();
            if got != n {
                wrong.push((n, got));
            }
        }
        assert!(wrong.is_empty(), "{name}: (requested, got) {wrong:?}");
    }
}

#[test]
fn sequential_play_after_a_seek_stays_exact() {
    for name in ALL {
        let mut decoder = Decoder::open(&video(name)).unwrap();
        // A backward seek first, so the decoder is not simply at the start.
        decoder.frame(250).unwrap();
        for n in 137..=220 {
            assert_eq!(
                read_pattern(&decoder.frame(n).unwrap()).unwrap(),
                n,
                "{name}"
            );
        }
        assert_eq!(decoder.position(), 221);
        // Small forward jumps skip frames without seeking and stay exact.
        for n in [223, 230, 260, 299] {
            assert_eq!(
                read_pattern(&decoder.frame(n).unwrap()).unwrap(),
                n,
                "{name}"
            );
        }
    }
}

#[test]
fn unreferenced_pictures_before_the_frame_asked_for_are_skipped() {
    // A third of this file's pictures are B-frames no other picture refers to: on the way to
    // frame 240 they are not decoded, and frame 240 is still exactly frame 240.
    let path = video("h264_gop250.mp4");
    let mut jump = Decoder::open(&path).unwrap();
    assert_eq!(read_pattern(&jump.frame(240).unwrap()).unwrap(), 240);
    let decoded = jump.pictures_decoded();
    assert!(
        (150..200).contains(&decoded),
        "{decoded} pictures decoded for 241 frames"
    );
    // Every frame asked for is decoded, unreferenced or not.
    let mut every = Decoder::open(&path).unwrap();
    for n in 0..=240 {
        assert_eq!(read_pattern(&every.frame(n).unwrap()).unwrap(), n);
    }
    assert!(every.pictures_decoded() >= 241);
}

#[test]
fn a_jpeg_of_frame_n_decodes_back_to_n() {
    let mut decoder = Decoder::open(&video("h264_gop250.mp4")).unwrap();
    for n in [0, 1, 201, 299] {
        let frame = decoder.frame(n).unwrap();
        for (width, quality) in [(0, 80), (640, 80), (320, 50)] {
            let jpeg = video::encode_jpeg(&frame, width, quality).unwrap();
            assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "JPEG magic");
            let back = video::decode_image(&jpeg).unwrap();
            use opencv::prelude::MatTraitConst;
            assert_eq!(back.cols(), if width == 0 { 1280 } else { width as i32 });
            assert_eq!(
                read_pattern(&back).unwrap(),
                n,
                "width {width} quality {quality}"
            );
        }
    }
}

#[test]
fn reading_past_the_end_is_an_error_and_the_decoder_keeps_working() {
    let mut decoder = Decoder::open(&video("h264_gop250.mp4")).unwrap();
    assert!(decoder.frame(FRAMES).is_err());
    assert!(decoder.frame(FRAMES + 1000).is_err());
    assert_eq!(read_pattern(&decoder.frame(5).unwrap()).unwrap(), 5);
}

#[test]
fn bad_files_get_clear_errors() {
    let missing = std::path::Path::new("/nonexistent/video.mp4");
    let error = video::probe(missing).unwrap_err();
    assert!(matches!(error, VideoError::NotFound(_)), "{error}");
    assert!(error.to_string().contains("not found"));

    let empty = crate::common::scratch_file("empty.mp4", b"");
    let error = video::probe(&empty).unwrap_err();
    assert!(matches!(error, VideoError::Empty(_)), "{error}");

    let text =
        crate::common::scratch_file("notes.mp4", "this is not a video\n".repeat(200).as_bytes());
    let error = video::probe(&text).unwrap_err();
    assert!(
        matches!(error, VideoError::CannotOpen(_) | VideoError::NoFrames(_)),
        "{error}"
    );

    let truncated = crate::common::truncated_copy("h264_gop250.mp4", 0.5);
    let error = video::probe(&truncated).unwrap_err();
    assert!(
        matches!(
            error,
            VideoError::Truncated { .. } | VideoError::CannotOpen(_)
        ),
        "{error}"
    );
    assert!(error.to_string().contains("truncated"), "{error}");
}
