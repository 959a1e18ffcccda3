//! The frame server that serves frames to viewers: decoders shared by position (playheads never
//! disturb each other), bounded decoders, exact counts established in the background, and errors
//! that leave it serving.

use std::sync::Arc;

use crate::common::{video, FRAMES};
use engine::frames::{DisplayProxy, FrameRequest, FrameServer, FrameSettings, OpenVideo, Priority};
use testvideo::read_pattern;

fn settings(max_decoders: usize) -> FrameSettings {
    FrameSettings {
        jpeg_quality: 80,
        display_width: 640,
        max_decoders,
        frame_cache: 0,
        frame_cache_mb: 64,
        display_proxy: DisplayProxy::Off,
    }
}

fn shown(engine: &FrameServer, viewer: &str, frame: u64) -> u64 {
    let jpeg = engine.frame_jpeg_blocking(viewer, frame).unwrap();
    read_pattern(&engine::video::decode_image(&jpeg).unwrap()).unwrap()
}

#[test]
fn playheads_in_different_places_keep_their_decoders_named_or_not() {
    let engine = FrameServer::new(&video("h264_gop250.mp4"), settings(4), None);
    for n in 10..20 {
        assert_eq!(shown(&engine, "viewer-aaaa", n), n);
        // Another playhead far away in between (another GOP) must not move the first one's
        // decoder: each request takes the decoder that decodes on to its frame.
        assert_eq!(shown(&engine, "", 260 + n), 260 + n);
    }
    assert_eq!(engine.open_decoders(), 2);
    // Pictures decoded: two seeks (to 10 and to 270 from their keyframes, unreferenced ones
    // skipped) and one picture per frame after them, not a seek per request.
    let decoded = engine.counts().pictures_decoded;
    assert!(decoded <= 10 + 11 + 2 * 9 + 2 * 10, "{decoded}");
}

#[test]
fn decoders_are_bounded_and_evicted_least_recently_used() {
    let engine = FrameServer::new(&video("h264_gop250.mp4"), settings(2), None);
    for (i, viewer) in ["viewer-1111", "viewer-2222", "viewer-3333", "viewer-4444"]
        .iter()
        .enumerate()
    {
        assert_eq!(shown(&engine, viewer, i as u64 * 50), i as u64 * 50);
        assert!(engine.open_decoders() <= 2);
    }
    // An evicted viewer simply gets a new decoder.
    assert_eq!(shown(&engine, "viewer-1111", 77), 77);
}

#[test]
fn out_of_range_is_an_error_and_the_engine_keeps_serving() {
    let engine = FrameServer::new(&video("h264_gop250.mp4"), settings(2), None);
    let error = engine
        .frame_jpeg_blocking("viewer-aaaa", FRAMES)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("out of range") && error.contains("0 to 299"),
        "{error}"
    );
    assert_eq!(shown(&engine, "viewer-aaaa", 42), 42);
}

#[test]
fn counts_are_exact_from_the_start() {
    // MKV does not store a frame count; the frame index (a packet scan) knows it when the
    // video opens, without decoding it.
    let video = OpenVideo::open(&video("mpeg2.mkv"), None).unwrap();
    assert!(video.info().exact_count);
    assert_eq!(video.info().frames, FRAMES);
    let engine = FrameServer::with_video(Ok(Arc::clone(&video)), settings(2));
    let error = engine
        .frame_jpeg_blocking("viewer-aaaa", FRAMES + 10)
        .unwrap_err()
        .to_string();
    assert!(error.contains("out of range"), "{error}");
}

#[test]
fn a_missing_video_is_reported_not_fatal() {
    let engine = FrameServer::new(
        std::path::Path::new("/nonexistent/clip.mp4"),
        settings(2),
        None,
    );
    let message = engine.video().err().unwrap().public();
    assert!(
        message.contains("not found") && message.contains("video_path"),
        "{message}"
    );
    assert!(engine.frame_jpeg_blocking("viewer-aaaa", 0).is_err());
}

#[test]
fn an_overtaken_request_gets_its_own_frame() {
    // Two requests in flight can arrive out of order: 12 before 11.
    let engine = FrameServer::new(
        &video("h264_gop250.mp4"),
        FrameSettings {
            frame_cache: 16,
            ..settings(2)
        },
        None,
    );
    for n in [10, 12, 11, 13, 15, 14, 16] {
        assert_eq!(shown(&engine, "viewer-aaaa", n), n);
    }
}

#[test]
fn the_page_gets_frame_times_only_where_the_rate_varies() {
    let constant = OpenVideo::open(&video("h264_gop250.mp4"), None).unwrap();
    assert!(constant.info().frame_times_ms.is_empty());
    assert_eq!(constant.info().time_s(45), 1.5);
    let variable = OpenVideo::open(&video("vfr_h264.mp4"), None).unwrap();
    let info = variable.info();
    assert_eq!(info.frame_times_ms.len() as u64, FRAMES);
    // Every 7th frame lasts 1.5 periods: frame 14 is shown at (14 + 2 * 0.5) / 30 s.
    assert_eq!(info.frame_times_ms[14], 500);
    assert_eq!(info.frame_at_s(0.5), 14);
    assert!(
        info.duration_s() > FRAMES as f64 / 30.0,
        "{}",
        info.duration_s()
    );
}

#[test]
fn many_viewers_asking_for_one_frame_cost_one_decode() {
    let engine = Arc::new(FrameServer::new(
        &video("h264_gop250.mp4"),
        FrameSettings {
            frame_cache: 64,
            ..settings(32)
        },
        None,
    ));
    let barrier = Arc::new(std::sync::Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (engine, barrier) = (Arc::clone(&engine), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let viewer = format!("viewer-{i:04}");
                let request = FrameRequest {
                    viewer: &viewer,
                    frame: 200,
                    width: None,
                    priority: Priority::Seek,
                    thumbnail: false,
                    supersedes: false,
                };
                let answer = engine.frame(request).unwrap();
                read_pattern(&engine::video::decode_image(&answer.jpeg).unwrap()).unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    // One decode from frame 0's keyframe to 200 (pictures nothing refers to are skipped on
    // the way), one encode; the other 15 waited for it.
    let cache = engine.cache().counts();
    assert_eq!((cache.made, cache.hits), (1, 15));
    let decoded = engine.counts().pictures_decoded;
    assert!((1..=201).contains(&decoded), "{decoded}");
    assert_eq!(engine.open_decoders(), 1);
}

#[test]
fn a_width_asked_for_is_clamped_and_keyed_apart() {
    let engine = FrameServer::new(
        &video("h264_gop250.mp4"),
        FrameSettings {
            frame_cache: 64,
            ..settings(4)
        },
        None,
    );
    let at = |width| {
        let answer = engine
            .frame(FrameRequest {
                viewer: "viewer-aaaa",
                frame: 5,
                width,
                priority: Priority::Seek,
                thumbnail: false,
                supersedes: false,
            })
            .unwrap();
        let image = engine::video::decode_image(&answer.jpeg).unwrap();
        assert_eq!(read_pattern(&image).unwrap(), 5);
        (answer.width, opencv::prelude::MatTraitConst::cols(&image))
    };
    assert_eq!(at(None), (640, 640));
    assert_eq!(at(Some(320)), (320, 320));
    assert_eq!(at(Some(5000)), (640, 640));
    assert_eq!(at(Some(1)), (64, 64));
    assert_eq!(engine.cache().counts().made, 3);
}

#[test]
fn a_request_overtaken_by_the_viewers_next_seek_is_dropped_not_decoded() {
    use engine::frames::FrameError;
    use std::time::Duration;
    let engine = Arc::new(FrameServer::new(
        &video("h264_gop250.mp4"),
        FrameSettings {
            frame_cache: 64,
            ..settings(4)
        },
        None,
    ));
    let ask = |frame: u64| {
        let engine = Arc::clone(&engine);
        std::thread::spawn(move || {
            engine
                .frame(FrameRequest {
                    viewer: "viewer-seeking",
                    frame,
                    width: None,
                    priority: Priority::Seek,
                    thumbnail: false,
                    supersedes: true,
                })
                .map(|answer| answer.jpeg)
        })
    };
    // Every core busy: the requests wait for their turn.
    let gate = engine::sync::gate::gate();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let busy: Vec<_> = (0..cores).map(|_| gate.enter(Priority::Seek)).collect();
    let first = ask(100);
    std::thread::sleep(Duration::from_millis(150));
    let second = ask(200);
    std::thread::sleep(Duration::from_millis(150));
    drop(busy);
    assert!(matches!(first.join().unwrap(), Err(FrameError::Superseded)));
    let jpeg = second.join().unwrap().unwrap();
    assert_eq!(
        read_pattern(&engine::video::decode_image(&jpeg).unwrap()).unwrap(),
        200
    );
    assert_eq!(engine.cache().counts().made, 1, "frame 100 was never made");
}

#[test]
fn requests_past_the_end_open_no_decoder() {
    let engine = FrameServer::new(&video("h264_gop250.mp4"), settings(4), None);
    for n in 0..1000 {
        assert!(engine.frame_jpeg_blocking("", FRAMES + n).is_err());
    }
    assert_eq!(engine.open_decoders(), 0);
    assert_eq!(engine.counts().pictures_decoded, 0);
}

/// The library keeps every video's decoders within `max_decoders` by closing the least
/// recently used idle one; that may be a display proxy's decoder (a budget loop that could
/// close only the video's own spun forever on two cores once the oldest idle was a proxy's).
#[test]
fn the_oldest_idle_decoder_is_closed_whether_the_videos_or_its_proxys() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let engine = FrameServer::sharing(
        &video("h264_gop250.mp4"),
        FrameSettings {
            display_proxy: DisplayProxy::Eager,
            ..settings(4)
        },
        Some(dir.path()),
        settings(4).new_cache(),
    );
    let started = Instant::now();
    while engine.fast_seeking() != Some((FRAMES, FRAMES)) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no whole proxy after 2 minutes: {:?}",
            engine.fast_seeking()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(shown(&engine, "", 77), 77);
    assert_eq!(engine.open_decoders(), 1, "one proxy decoder, idle");
    assert!(engine.oldest_idle_decoder().is_some());
    assert!(engine.close_oldest_decoder());
    assert_eq!(engine.open_decoders(), 0);
    assert!(
        !engine.close_oldest_decoder(),
        "nothing idle is left to close"
    );
    assert!(engine.oldest_idle_decoder().is_none());
}
