//! The display proxy shows frame N as frame N: on every file of the real-world corpus (start
//! offsets, open GOPs, edit lists, B-frames, rotation, audio first, HEVC, MJPEG) and the older
//! test videos (VFR among them), a sequential read and random seeks in the proxy give the
//! pattern `ffmpeg` presents as frame N; a proxy that does not match its video is not used.

use std::sync::Arc;

use engine::video::{FrameIndex, Proxy, ProxyDecoder, PROXY_GOP};
use opencv::prelude::MatTraitConst;
use testvideo::{ffmpeg_patterns, read_pattern};

/// Random seeks per file.
const SEEKS: u64 = 60;

fn check_proxy(name: &str, dir: &std::path::Path) -> (u64, u64) {
    let path = crate::common::video(name);
    let expected = ffmpeg_patterns(&path).unwrap();
    let index = FrameIndex::load_or_build(&path, None).unwrap();
    let report = Proxy::build(&path, Arc::clone(&index), dir, 320, &|| true)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .unwrap_or_else(|| panic!("{name}: a proxy was already there"));
    assert_eq!(report.frames, expected.len() as u64, "{name}");
    let proxy = Proxy::open(dir, &index, 320).unwrap_or_else(|| panic!("{name}: not opened"));
    let mut decoder = ProxyDecoder::new(Arc::clone(&proxy)).unwrap();
    let mut wrong = Vec::new();
    for (n, &want) in expected.iter().enumerate() {
        let image = decoder.frame(n as u64).unwrap();
        assert_eq!(image.cols() as u32, proxy.size().0, "{name}");
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
        let before = decoder.pictures_decoded();
        let got = read_pattern(&decoder.frame(n).unwrap()).unwrap();
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
    (report.bytes, seek_cost)
}

#[test]
fn the_proxy_shows_frame_n_as_frame_n_on_every_corpus_file_and_test_video() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<&str> = crate::common::corpus()
        .into_iter()
        .map(|(n, _)| n)
        .chain(crate::common::specs().into_iter().map(|(n, _)| n))
        .collect();
    for name in names {
        let (bytes, cost) = check_proxy(name, dir.path());
        eprintln!("proxy | {name} | {bytes} bytes | worst seek {cost} pictures");
    }
}

#[test]
fn a_proxy_of_other_content_or_cut_short_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::common::video("h264_gop250.mp4");
    let index = FrameIndex::load_or_build(&path, None).unwrap();
    assert!(engine::video::proxy_helps(&index));
    Proxy::build(&path, Arc::clone(&index), dir.path(), 320, &|| true)
        .unwrap()
        .unwrap();
    assert!(Proxy::open(dir.path(), &index, 320).is_some());
    // Built again: nothing to do.
    assert!(
        Proxy::build(&path, Arc::clone(&index), dir.path(), 320, &|| true)
            .unwrap()
            .is_none()
    );
    // A cut packets file: refused.
    let packets = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "proxy"))
        .unwrap();
    let bytes = std::fs::read(&packets).unwrap();
    std::fs::write(&packets, &bytes[..bytes.len() - 100]).unwrap();
    assert!(Proxy::open(dir.path(), &index, 320).is_none());
    // Stopped on the way (the video was closed): no proxy, no file left behind.
    let other = tempfile::tempdir().unwrap();
    let calls = std::cell::Cell::new(0);
    let stop_at_50 = || {
        calls.set(calls.get() + 1);
        calls.get() <= 50
    };
    assert!(
        Proxy::build(&path, Arc::clone(&index), other.path(), 320, &stop_at_50)
            .unwrap()
            .is_none()
    );
    assert!(Proxy::open(other.path(), &index, 320).is_none());
    assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 0);
    // Keyframe-dense videos get none.
    let dense = FrameIndex::load_or_build(&crate::common::video("mpeg2.mkv"), None).unwrap();
    assert!(!engine::video::proxy_helps(&dense));
}
