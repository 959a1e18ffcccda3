//! What one frame for the browser costs, step by step, on the 1280x720 H.264 test video with a
//! keyframe every 250 frames (one run, one core): a random seek in the video and in its display
//! proxy, the next frame while playing, and the picture-to-JPEG paths (a full-size conversion
//! then a resize, against one conversion straight to the size sent), at full and at reduced
//! (load) size and quality; and what making the display proxy costs at the full width and at
//! the page's 640 px.
//!
//!     cargo bench -p server --bench frame_cost

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "shared/timing.rs"]
mod timing;

use std::sync::Arc;
use std::time::Instant;

use engine::video::{encode_jpeg, segment_of, Decoder, FrameIndex, ProxyDecoder, ProxySegments};
use timing::percentile;

/// Durations in milliseconds, sorted.
fn sorted(durations: impl Iterator<Item = std::time::Duration>) -> Vec<f64> {
    let mut ms: Vec<f64> = durations.map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    ms
}

const SEEKS: usize = 60;

/// Makes every segment of the proxy at `width` in a folder of its own: the segments, the
/// seconds it took, and its bytes.
fn make_proxy(
    path: &std::path::Path,
    index: &Arc<FrameIndex>,
    dir: &std::path::Path,
    width: u32,
) -> (Arc<ProxySegments>, f64, u64) {
    let started = Instant::now();
    let segments = ProxySegments::open(dir, path, Arc::clone(index)).unwrap();
    let mut decoder = Decoder::with_index(path, Arc::clone(index)).unwrap();
    let mut bytes = 0;
    for k in 0..segments.count() {
        bytes += segments
            .make(k, width, &mut decoder, &|| true)
            .unwrap()
            .unwrap()
            .bytes;
    }
    (segments, started.elapsed().as_secs_f64(), bytes)
}

fn main() {
    let path = common::video("h264_gop250.mp4");
    let dir = tempfile::tempdir().unwrap();
    let index = FrameIndex::load_or_build(&path, Some(dir.path())).unwrap();
    let (proxy, proxy_s, proxy_bytes) = make_proxy(&path, &index, dir.path(), 1280);
    let small_dir = tempfile::tempdir().unwrap();
    let (_, small_s, small_bytes) = make_proxy(&path, &index, small_dir.path(), 640);
    // What decoding the source alone takes (the part a shared decode with indexing saves).
    let started = Instant::now();
    let mut alone = Decoder::with_index(&path, Arc::clone(&index)).unwrap();
    for n in 0..index.frames() {
        alone.frame(n).unwrap();
    }
    let decode_s = started.elapsed().as_secs_f64();
    let frames = index.frames();
    let segment = |n: u64| proxy.segment(segment_of(n), 1280).unwrap();

    let mut rng = common::Rng::new(17);
    let targets: Vec<u64> = (0..SEEKS).map(|_| rng.below(frames)).collect();
    let mut source = Decoder::with_index(&path, Arc::clone(&index)).unwrap();
    let source_seeks = sorted(targets.iter().map(|&n| {
        let t = Instant::now();
        source.frame(n).unwrap();
        t.elapsed()
    }));
    let mut from_proxy = ProxyDecoder::new(&proxy).unwrap();
    let proxy_seeks = sorted(targets.iter().map(|&n| {
        let segment = segment(n);
        let t = Instant::now();
        from_proxy.frame_at_width(&segment, n, 1280).unwrap();
        t.elapsed()
    }));
    let next_source = sorted((0..60).map(|n| {
        let t = Instant::now();
        source.frame(100 + n).unwrap();
        t.elapsed()
    }));
    let next_proxy = sorted((0..60).map(|n| {
        let segment = segment(100 + n);
        let t = Instant::now();
        from_proxy.frame_at_width(&segment, 100 + n, 1280).unwrap();
        t.elapsed()
    }));

    // Picture to JPEG at the reduced size: a full-size conversion, then OpenCV's resize and
    // the encoder, against the decoder's planes converted straight to the size sent.
    let mut decoder = ProxyDecoder::new(&proxy).unwrap();
    let at_150 = segment(150);
    decoder.frame_at_width(&at_150, 150, 1280).unwrap();
    let mut to_jpeg = |convert_at: u32, width: u32, quality: u8| {
        sorted((0..40).map(|_| {
            let t = Instant::now();
            let picture = decoder.frame_at_width(&at_150, 150, convert_at).unwrap();
            encode_jpeg(&picture, width, quality).unwrap();
            t.elapsed()
        }))
    };
    let full = to_jpeg(1280, 1280, 80);
    let reduced_resize = to_jpeg(1280, 640, 60);
    let reduced_direct = to_jpeg(640, 640, 60);

    println!("1280x720 H.264, {frames} frames, keyframe every 250; display proxy 1280x720, keyframe every 15, in segments of {} frames", engine::video::SEGMENT_FRAMES);
    println!();
    println!("| display proxy | made in (s) | of which decoding the source (s) | MB |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| 1280x720 | {proxy_s:.2} | {decode_s:.2} | {:.2} |",
        proxy_bytes as f64 / 1e6
    );
    println!(
        "| 640x360 (the page's width) | {small_s:.2} | {decode_s:.2} | {:.2} |",
        small_bytes as f64 / 1e6
    );
    println!();
    println!("| step | video | display proxy |");
    println!("| --- | ---: | ---: |");
    println!(
        "| random seek, p50 / p95 (ms) | {:.1} / {:.1} | {:.1} / {:.1} |",
        percentile(&source_seeks, 0.5),
        percentile(&source_seeks, 0.95),
        percentile(&proxy_seeks, 0.5),
        percentile(&proxy_seeks, 0.95)
    );
    println!(
        "| next frame while playing, p50 (ms) | {:.2} | {:.2} |",
        percentile(&next_source, 0.5),
        percentile(&next_proxy, 0.5)
    );
    println!();
    println!("| picture (decoded) to JPEG, p50 (ms) | full-size BGR, resize, encode | YUV straight to the size sent, encode |");
    println!("| --- | ---: | ---: |");
    println!(
        "| 1280x720, quality 80 | {:.2} | (same) |",
        percentile(&full, 0.5)
    );
    println!(
        "| 640x360, quality 60 (playback under load) | {:.2} | {:.2} |",
        percentile(&reduced_resize, 0.5),
        percentile(&reduced_direct, 0.5)
    );
}
