//! A saturated server: beyond 64 frames waiting per core, new requests are told to come back
//! (`FrameError::Busy`, a 429 over HTTP) while those waiting are served. In a test binary of
//! its own: saturating the process's gate would refuse the frames of tests running beside it.

mod common;

use std::sync::Arc;

use common::{video, FRAMES};
use engine::frames::{DisplayProxy, FrameRequest, FrameServer, FrameSettings, Priority};
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

#[test]
fn a_saturated_server_tells_new_requests_to_come_back_and_serves_those_waiting() {
    use engine::frames::FrameError;
    use engine::sync::gate::MAX_WAITING_PER_SLOT;
    use std::time::Duration;
    let engine = Arc::new(FrameServer::new(
        &video("h264_gop250.mp4"),
        FrameSettings {
            frame_cache: 4096,
            ..settings(4)
        },
        None,
    ));
    let ask = |viewer: &'static str, frame: u64| {
        let engine = Arc::clone(&engine);
        std::thread::spawn(move || {
            engine
                .frame(FrameRequest {
                    viewer,
                    frame,
                    width: Some(320),
                    priority: Priority::Seek,
                    thumbnail: false,
                    supersedes: false,
                })
                .map(|answer| answer.jpeg)
        })
    };
    // Every core busy: requests wait for their turn, more than saturate the gate.
    let gate = engine::sync::gate::gate();
    let busy: Vec<_> = (0..gate.slots())
        .map(|_| gate.enter(Priority::Seek))
        .collect();
    let capacity = gate.slots() * MAX_WAITING_PER_SLOT;
    let asked: Vec<_> = (0..(capacity + 8) as u64)
        .map(|i| {
            let t = ask("viewer-many", i % FRAMES);
            std::thread::sleep(Duration::from_millis(2));
            t
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(busy);
    let (mut served, mut refused) = (0, 0);
    for (i, t) in asked.into_iter().enumerate() {
        match t.join().unwrap() {
            Ok(jpeg) => {
                served += 1;
                assert_eq!(
                    read_pattern(&engine::video::decode_image(&jpeg).unwrap()).unwrap(),
                    i as u64 % FRAMES
                );
            }
            Err(FrameError::Busy) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        refused >= 8 && served >= capacity - 8,
        "{served} served, {refused} refused"
    );
    // No longer saturated: served.
    let jpeg = ask("viewer-other", FRAMES - 1).join().unwrap().unwrap();
    assert_eq!(
        read_pattern(&engine::video::decode_image(&jpeg).unwrap()).unwrap(),
        FRAMES - 1
    );
}
