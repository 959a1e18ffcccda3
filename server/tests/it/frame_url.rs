//! Frames as ordinary URLs: `GET /frame/ID/N.jpg` answers `image/jpeg` of exactly frame N with
//! a validator from the video's content and a 304 on revalidation; `GET /frames/ID/N` streams
//! the frames after N in order; unknown ids, frames past the end and bad requests are refused
//! with the right status; other sites and requests without the token are refused; the display
//! proxy is made in the background and then serves the same exact frames.

use std::time::{Duration, Instant};

use crate::common::{http_with, id_of, video, HttpResponse, Served, FRAMES};
use testvideo::read_pattern;

fn config(extra: &str) -> String {
    format!(
        "video_path: {:?}\nCLIP:\n  - wall\nmodel: {:?}\nembeddings_dir: \"{{dir}}/embeddings\"\n{extra}",
        video("h264_gop250.mp4"),
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip"),
    )
}

fn get(served: &Served, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_with(served.addr, "GET", path, "text/plain", b"", headers)
}

fn header<'a>(response: &'a HttpResponse, name: &str) -> Option<&'a str> {
    response.headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn pattern(jpeg: &[u8]) -> u64 {
    read_pattern(&engine::video::decode_image(jpeg).unwrap()).unwrap()
}

/// The video's version, as the page gets it.
fn version(served: &Served, id: &str) -> String {
    let info = served.post(
        "/api/video_info",
        "application/x-www-form-urlencoded",
        format!("video={id}").as_bytes(),
    );
    let info: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    info["version"].as_str().unwrap().to_string()
}

#[test]
fn a_frame_url_answers_the_exact_frame_with_validators_and_304() {
    let served = Served::start(&config("display_proxy: false\n"), &[]);
    let id = id_of(&video("h264_gop250.mp4"));
    let version = version(&served, &id);
    assert!(!version.is_empty());
    for n in [0, 137, 299, 12] {
        let answer = get(&served, &format!("/frame/{id}/{n}.jpg"), &[]);
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(header(&answer, "content-type"), Some("image/jpeg"));
        assert_eq!(pattern(&answer.body), n);
        // Without the version in the URL: kept, but asked again (a changed file, same URL).
        assert_eq!(header(&answer, "cache-control"), Some("private, no-cache"));
        let etag = header(&answer, "etag").unwrap().to_string();
        assert!(etag.starts_with(&format!("\"{version}-{n}-")), "{etag}");
        let again = get(
            &served,
            &format!("/frame/{id}/{n}.jpg"),
            &[("If-None-Match", &etag)],
        );
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
        assert_eq!(header(&again, "etag"), Some(etag.as_str()));
        // Another size is another picture.
        let small = get(
            &served,
            &format!("/frame/{id}/{n}.jpg?w=320"),
            &[("If-None-Match", &etag)],
        );
        assert_eq!(small.status, 200);
        assert_eq!(pattern(&small.body), n);
        assert_ne!(header(&small, "etag"), Some(etag.as_str()));
    }
    // With the current version: kept for good.
    let kept = get(&served, &format!("/frame/{id}/5.jpg?v={version}"), &[]);
    assert_eq!(
        header(&kept, "cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    // Refusals: past the end, not a number, an unknown id, a malformed one, a bad viewer.
    let past = get(&served, &format!("/frame/{id}/{FRAMES}.jpg"), &[]);
    assert_eq!(past.status, 404);
    assert!(past.text().contains("out of range"), "{}", past.text());
    assert_eq!(get(&served, &format!("/frame/{id}/x.jpg"), &[]).status, 404);
    assert_eq!(get(&served, &format!("/frame/{id}/7.png"), &[]).status, 404);
    assert_eq!(
        get(&served, "/frame/0123456789abcdef/1.jpg", &[]).status,
        404
    );
    assert_eq!(get(&served, "/frame/..%2f..%2fetc/1.jpg", &[]).status, 400);
    assert_eq!(
        get(&served, &format!("/frame/{id}/1.jpg?viewer=a%20b"), &[]).status,
        400
    );
    assert_eq!(
        get(&served, &format!("/frame/{id}/1.jpg?p=now"), &[]).status,
        400
    );
    // Other sites: refused, as for changes.
    for hostile in [
        ("Sec-Fetch-Site", "cross-site"),
        ("Origin", "http://evil.example"),
        ("Referer", "http://evil.example/page"),
    ] {
        let refused = get(&served, &format!("/frame/{id}/1.jpg"), &[hostile]);
        assert_eq!(refused.status, 403, "{hostile:?}");
        let stream = get(&served, &format!("/frames/{id}/1?count=3"), &[hostile]);
        assert_eq!(stream.status, 403, "{hostile:?}");
    }
    // Its own pages, and a URL typed in the address bar: answered.
    for own in [
        ("Sec-Fetch-Site", "same-origin"),
        ("Sec-Fetch-Site", "none"),
    ] {
        assert_eq!(
            get(&served, &format!("/frame/{id}/1.jpg"), &[own]).status,
            200
        );
    }
}

#[test]
fn a_frame_stream_carries_the_next_frames_in_order() {
    let served = Served::start(&config("display_proxy: false\n"), &[]);
    let id = id_of(&video("h264_gop250.mp4"));
    // `at=0`: the viewer's clock is at frame 0, so none of these is late and none is skipped
    // (a debug build is slower than 30 fps).
    let answer = get(
        &served,
        &format!("/frames/{id}/290?count=30&at=0&w=320&viewer=viewer-stream"),
        &[],
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(header(&answer, "cache-control"), Some("no-store"));
    let mut body = answer.body.as_slice();
    let mut frames = Vec::new();
    while !body.is_empty() {
        let n = u64::from_le_bytes(body[..8].try_into().unwrap());
        let length = u32::from_le_bytes(body[8..12].try_into().unwrap()) as usize;
        assert_eq!(pattern(&body[12..12 + length]), n);
        frames.push(n);
        body = &body[12 + length..];
    }
    // To the end of the video, not past it.
    assert_eq!(frames, (290..FRAMES).collect::<Vec<_>>());
    for bad in ["count=0", "count=121", "count=x"] {
        let refused = get(&served, &format!("/frames/{id}/0?{bad}"), &[]);
        assert_eq!(refused.status, 400, "{bad}");
    }
    assert_eq!(
        get(&served, &format!("/frames/{id}/{FRAMES}?count=3"), &[]).status,
        404
    );
}

#[test]
fn a_frame_url_needs_the_token_where_one_is_set() {
    let served = Served::start(
        &config("display_proxy: false\nauth_token: \"tok-frame-0123456789\"\n"),
        &[],
    );
    let id = id_of(&video("h264_gop250.mp4"));
    let path = format!("/frame/{id}/3.jpg");
    assert_eq!(get(&served, &path, &[]).status, 401);
    assert_eq!(
        get(&served, &format!("/frames/{id}/3?count=2"), &[]).status,
        401
    );
    let with = get(
        &served,
        &path,
        &[("Authorization", "Bearer tok-frame-0123456789")],
    );
    assert_eq!(with.status, 200);
    assert_eq!(pattern(&with.body), 3);
    let cookie = get(
        &served,
        &path,
        &[("Cookie", "clip_investigator_token=tok-frame-0123456789")],
    );
    assert_eq!(cookie.status, 200);
}

#[test]
fn the_display_proxy_is_made_in_the_background_and_serves_the_same_frames() {
    let served = Served::start(&config(""), &[]);
    let id = id_of(&video("h264_gop250.mp4"));
    let first = get(&served, &format!("/frame/{id}/250.jpg"), &[]);
    assert_eq!(pattern(&first.body), 250);
    // The page is told how much of the video has fast seeking, until all of it has.
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let status = served.post(
            "/api/index_status",
            "application/x-www-form-urlencoded",
            format!("video={id}").as_bytes(),
        );
        let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
        let fast = &status["fast_seeking"];
        let (frames, of) = (
            fast["frames"].as_u64().unwrap(),
            fast["of"].as_u64().unwrap(),
        );
        assert_eq!(of, FRAMES);
        assert!(frames <= of && seen.last().is_none_or(|&last| frames >= last));
        seen.push(frames);
        if frames == of {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no whole proxy after 2 minutes: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let folders: Vec<std::path::PathBuf> = std::fs::read_dir(served.dir.path().join("embeddings"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("proxy-")
        })
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    let segments = std::fs::read_dir(&folders[0])
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".segment"))
        .count();
    assert_eq!(
        segments as u64,
        FRAMES.div_ceil(engine::video::SEGMENT_FRAMES)
    );
    // Random frames from the proxy (or the cache, for a frame asked twice): exact.
    let mut rng = crate::common::Rng::new(29);
    for _ in 0..40 {
        let n = rng.below(FRAMES);
        let answer = get(&served, &format!("/frame/{id}/{n}.jpg?w=640"), &[]);
        assert_ne!(
            header(&answer, "x-frame-source"),
            Some("video"),
            "frame {n}"
        );
        assert_eq!(pattern(&answer.body), n);
    }
}

/// 20 anonymous clients right after the video is opened (no display proxy yet, indexing
/// starting), each playing by plain GETs from its own place on a video with a keyframe every
/// 250 frames: every answer is the exact frame, none fails, and none takes longer than a bound
/// far above the goal (the goal itself is measured by `cargo bench -p server --bench load`).
/// Meanwhile clients that hang up mid-request leave the server serving.
#[test]
fn twenty_anonymous_clients_right_after_opening_get_exact_frames() {
    let served = Served::start(&config(""), &[]);
    let id = id_of(&video("h264_gop250.mp4"));
    let addr = served.addr;
    let clients: Vec<_> = (0..20u64)
        .map(|c| {
            let id = id.clone();
            std::thread::spawn(move || {
                let start = (c * 37) % (FRAMES - 120);
                let clock = Instant::now();
                let mut slowest = Duration::ZERO;
                let mut got = 0;
                while clock.elapsed() < Duration::from_secs(4) {
                    let n = (start + (clock.elapsed().as_secs_f64() * 30.0) as u64).min(FRAMES - 1);
                    let asked = Instant::now();
                    let answer = crate::common::http(
                        addr,
                        "GET",
                        &format!("/frame/{id}/{n}.jpg"),
                        "text/plain",
                        b"",
                    );
                    slowest = slowest.max(asked.elapsed());
                    assert_eq!(answer.status, 200, "frame {n}: {}", answer.text());
                    assert_eq!(pattern(&answer.body), n, "client {c}");
                    got += 1;
                }
                (got, slowest)
            })
        })
        .collect();
    // Clients that ask for a frame far away and hang up at once.
    for n in 0..10u64 {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        let _ = write!(
            stream,
            "GET /frame/{id}/{}.jpg HTTP/1.1\r\nHost: {addr}\r\n\r\n",
            (n * 53) % FRAMES
        );
        drop(stream);
    }
    for client in clients {
        let (got, slowest) = client.join().unwrap();
        assert!(got >= 1);
        assert!(slowest < Duration::from_secs(30), "{slowest:?}");
    }
    // Still serving, exactly.
    let answer = get(&served, &format!("/frame/{id}/123.jpg"), &[]);
    assert_eq!(pattern(&answer.body), 123);
}

/// A disk too full for the display proxy's segments (here: a limit on the size of the files
/// the server may write, which fails those writes as a full disk does, and leaves the small
/// frame index and embeddings alone): every frame still comes exactly from the video, the log
/// says why, and the server keeps serving.
#[test]
fn a_disk_too_full_for_the_display_proxy_leaves_frames_served_from_the_video() {
    // `ulimit -f` counts 1024-byte blocks in bash; the ignored SIGXFSZ turns an oversized
    // write into an error (EFBIG) instead of killing the process.
    let wrapper = [
        "bash",
        "-c",
        "trap '' XFSZ; ulimit -f 256; exec \"$@\"",
        "limited",
    ];
    let served = Served::start_through(&wrapper, tempfile::tempdir().unwrap(), &config(""), &[]);
    let id = id_of(&video("h264_gop250.mp4"));
    let started = Instant::now();
    loop {
        // Frames far apart, each the exact frame whatever the proxy's state.
        for n in [7, FRAMES / 2 + 3, FRAMES - 2] {
            let answer = get(&served, &format!("/frame/{id}/{n}.jpg?w=640"), &[]);
            assert_eq!(answer.status, 200, "{}", answer.text());
            assert_eq!(pattern(&answer.body), n);
            assert_ne!(
                header(&answer, "x-frame-source"),
                Some("proxy"),
                "frame {n}"
            );
        }
        let log = served.log();
        if log.contains("come from the video itself") {
            assert!(
                log.contains("display proxy segment") && log.contains("File too large"),
                "the log says which segment and why: {log}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no segment failed in a minute: {}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = served.form("/api/index_status", &format!("video={id}"));
    let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(status["fast_seeking"]["frames"], 0, "{status}");
    // A frame not asked before, after the failures: still exact, from the video.
    let answer = get(
        &served,
        &format!("/frame/{id}/{}.jpg?w=320", FRAMES / 3),
        &[],
    );
    assert_eq!(pattern(&answer.body), FRAMES / 3);
    assert_eq!(header(&answer, "x-frame-source"), Some("video"));
}
