//! The library search as a user drives it: `index --library` over three videos, then
//! `search --library` (an image of frame k of one video finds that video at frame k first;
//! at most `--per-video` moments per video; a removed video disappears; the index rebuilt from
//! the caches answers as the one appended to over time; bad input is refused), and the web's
//! `/api/search_library` (the server's live index, its 400s).

use std::path::{Path, PathBuf};

use investigator_core::library_search::{LibraryAnswer, LibraryQuery};
use opencv::core::VectorToVec;
use serde_json::Value;
use testvideo::{Codec, Spec};

use crate::clip_parity::fixture;
use crate::embedding::stderr;

/// A library folder of three short videos whose frames differ between videos: `scenes.mp4`
/// changes colour every 75 frames, `plain.mp4` never does, `fade.mp4` fades to black.
struct Lib {
    dir: tempfile::TempDir,
}

const K: u64 = 100;

impl Lib {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("footage");
        std::fs::create_dir_all(&folder).unwrap();
        let small = |frames: u32| Spec {
            width: 640,
            height: 360,
            keyframe_interval: 30,
            ..Spec::new(Codec::H264, frames)
        };
        testvideo::write(
            &folder.join("scenes.mp4"),
            &Spec {
                scene_changes: true,
                ..small(160)
            },
        )
        .unwrap();
        testvideo::write(&folder.join("plain.mp4"), &small(90)).unwrap();
        testvideo::write(
            &folder.join("fade.mp4"),
            &Spec {
                fade_to_black: Some((10, 60)),
                ..small(90)
            },
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config.yaml"),
            format!(
                "video_path: footage/plain.mp4\nlibrary_dirs: [footage]\nmodel: {:?}\nembeddings_dir: emb\nCLIP: [wall]\n",
                fixture("tiny-clip")
            ),
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_clip-investigator"))
            .args(args)
            .arg("--config")
            .arg(self.path("config.yaml"))
            .env("RUST_LOG", "warn")
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn frame_png(&self, name: &str, k: u64) -> PathBuf {
        frame_png_in(self.dir.path(), name, k)
    }
}

fn results(answer: &Value) -> Vec<(String, u64)> {
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["video"].as_str().unwrap().to_string(),
                r["frame"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn an_image_of_a_frame_finds_that_video_at_that_frame_first() {
    let lib = Lib::new();
    let out = lib.run(&["index", "--library"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("library index of tiny-clip: 3 videos, 340 vectors"),
        "{text}"
    );
    let png = lib.frame_png("scenes.mp4", K);
    let answer = lib.json(&[
        "search",
        "--library",
        "--image",
        png.to_str().unwrap(),
        "--json",
        "--top",
        "10",
    ]);
    let (video, frame) = results(&answer)[0].clone();
    assert_eq!(video, "scenes.mp4");
    assert!(frame.abs_diff(K) <= 1, "frame {frame}");
    let first = &answer["results"][0];
    assert!(first["score"].as_f64().unwrap() > 0.999, "{first}");
    assert!(
        first["start_frame"].as_u64().unwrap() <= frame
            && frame <= first["end_frame"].as_u64().unwrap()
    );
    assert_eq!(
        (
            answer["videos_searched"].as_u64(),
            answer["vectors_searched"].as_u64()
        ),
        (Some(3), Some(340))
    );
    assert_eq!(answer["partial"], serde_json::json!([]));
    // Names, never paths; ids the library's.
    for r in answer["results"].as_array().unwrap() {
        assert!(!r["video"].as_str().unwrap().contains('/'), "{r}");
        assert!(investigator_core::types::is_valid_video_id(
            r["video_id"].as_str().unwrap()
        ));
    }
    // At most --per-video moments per video (3 by default).
    for cap in [1usize, 3] {
        let answer = lib.json(&[
            "search",
            "--library",
            "--text",
            "wall",
            "--json",
            "--top",
            "50",
            "--per-video",
            &cap.to_string(),
        ]);
        let found = results(&answer);
        for name in ["scenes.mp4", "plain.mp4", "fade.mp4"] {
            let count = found.iter().filter(|(v, _)| v == name).count();
            assert!(
                count >= 1 && count <= cap,
                "{name}: {count} with --per-video {cap}: {found:?}"
            );
        }
        let scores: Vec<f64> = answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "best peaks first: {scores:?}"
        );
    }
    // Only one video, by id: the others are not searched.
    let id = first["video_id"].as_str().unwrap();
    let only = lib.json(&[
        "search",
        "--library",
        "--text",
        "wall",
        "--json",
        "--video",
        id,
    ]);
    assert!(results(&only).iter().all(|(v, _)| v == "scenes.mp4"));
    assert_eq!(only["videos_searched"].as_u64(), Some(1));
    // The index rebuilt from the caches answers as the one kept up to date.
    let before = lib.json(&[
        "search",
        "--library",
        "--image",
        png.to_str().unwrap(),
        "--json",
        "--top",
        "20",
    ]);
    std::fs::remove_dir_all(lib.path("emb/library")).unwrap();
    let rebuilt = lib.json(&[
        "search",
        "--library",
        "--image",
        png.to_str().unwrap(),
        "--json",
        "--top",
        "20",
    ]);
    assert_eq!(before["results"], rebuilt["results"]);
    // A removed video disappears from the results.
    std::fs::remove_file(lib.path("footage/fade.mp4")).unwrap();
    let after = lib.json(&[
        "search",
        "--library",
        "--text",
        "wall",
        "--json",
        "--top",
        "50",
    ]);
    assert!(results(&after).iter().all(|(v, _)| v != "fade.mp4"));
    assert_eq!(after["videos_searched"].as_u64(), Some(2));
}

#[test]
fn a_partly_indexed_video_is_searched_over_what_it_has_and_said_so() {
    let lib = Lib::new();
    // Index one video fully; the library search then says the others are not indexed.
    let one = lib.run(&[
        "index",
        lib.path("footage/scenes.mp4").to_str().unwrap(),
        "--sample-fps",
        "5",
    ]);
    assert!(one.status.success(), "{}", stderr(&one));
    // A sampled index is searched over its frames; the videos without one are said.
    let answer = lib.json(&["search", "--library", "--text", "wall", "--json"]);
    assert_eq!(
        answer["not_indexed"].as_array().unwrap().len(),
        2,
        "{answer}"
    );
    assert_eq!(answer["videos_searched"].as_u64(), Some(1));
    assert_eq!(
        answer["partial"],
        serde_json::json!([]),
        "every sampled frame is indexed"
    );
    let full = lib.run(&["index", lib.path("footage/scenes.mp4").to_str().unwrap()]);
    assert!(full.status.success());
    // Cut the cache file short: the video is partly indexed.
    let cache = std::fs::read_dir(lib.path("emb"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-all.clipemb"))
        .unwrap();
    let mut file = store::cache::EmbeddingFile::peek(&cache).unwrap();
    let dim = file.dimension();
    file.frames.truncate(40);
    file.vectors.truncate(40 * dim);
    file.save(&cache).unwrap();
    let answer = lib.json(&["search", "--library", "--text", "wall", "--json"]);
    assert_eq!(answer["partial"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["vectors_searched"].as_u64(), Some(40));
    assert!(results(&answer).iter().all(|(_, f)| *f < 40));
}

#[test]
fn bad_library_queries_are_refused_saying_why() {
    let lib = Lib::new();
    let long = "x".repeat(10_001);
    let not_image = lib.path("config.yaml");
    for (args, says) in [
        (vec!["--text", long.as_str()], "characters; at most"),
        (vec!["--text", " "], "prompt 1 is empty"),
        (vec!["--image", not_image.to_str().unwrap()], "not an image"),
        (
            vec!["--text", "x", "--video", "../../etc/passwd"],
            "not a video id",
        ),
        (
            vec!["--text", "x", "--video", "0123456789abcdef"],
            "no video 0123456789abcdef",
        ),
        (vec!["--text", "x", "--top", "0"], "--top must be from 1"),
        (
            vec!["--text", "x", "--top", "100000"],
            "--top must be from 1",
        ),
        (
            vec!["--text", "x", "--per-video", "0"],
            "--per-video must be from 1",
        ),
    ] {
        let out = lib.run(&[&["search", "--library"][..], &args[..]].concat());
        let message = stderr(&out);
        assert!(
            !out.status.success() && message.contains(says),
            "{args:?}: {message}"
        );
        assert!(
            !message.contains(lib.dir.path().to_str().unwrap()) || says.is_empty(),
            "no paths: {message}"
        );
    }
}

fn post_query(served: &crate::common::Served, query: &LibraryQuery) -> crate::common::HttpResponse {
    #[derive(serde::Serialize)]
    struct Args<'a> {
        query: &'a LibraryQuery,
    }
    let body = postcard::to_stdvec(&Args { query }).unwrap();
    served.post("/api/search_library", "application/x-postcard", &body)
}

#[test]
fn the_server_searches_its_library_and_refuses_bad_requests_with_400() {
    let lib = Lib::new();
    let out = lib.run(&["index", "--library"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = std::fs::read_to_string(lib.path("config.yaml")).unwrap();
    let Lib { dir } = lib;
    let served = crate::common::Served::start_in(dir, &config, &[("HF_HUB_OFFLINE", "1")]);
    let png = std::fs::read(frame_png_in(served.dir.path(), "scenes.mp4", K)).unwrap();
    let query = LibraryQuery {
        image: Some(png),
        top: 5,
        ..LibraryQuery::default()
    };
    let started = std::time::Instant::now();
    let answer: LibraryAnswer = loop {
        let response = post_query(&served, &query);
        if response.status == 200 {
            break postcard::from_bytes(&response.body).unwrap();
        }
        assert!(
            response.status == 503 && started.elapsed().as_secs() < 60,
            "{} {}",
            response.status,
            response.text()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(answer.results[0].video, "scenes.mp4");
    // A text of 10,000 characters is cut to the model's context, like a prompt.
    let longest = post_query(
        &served,
        &LibraryQuery {
            text: Some("x".repeat(10_000)),
            top: 5,
            ..LibraryQuery::default()
        },
    );
    assert_eq!(longest.status, 200, "{}", longest.text());
    assert!(answer.results[0].frame.abs_diff(K) <= 1);
    // A thumbnail of the result.
    let thumb = served.form(
        "/api/thumbnail",
        &format!(
            "video={}&frame={}",
            answer.results[0].video_id, answer.results[0].frame
        ),
    );
    assert_eq!(thumb.status, 200);
    let bad = [
        LibraryQuery {
            top: 5,
            ..LibraryQuery::default()
        },
        LibraryQuery {
            text: Some("x".repeat(10_001)),
            top: 5,
            ..LibraryQuery::default()
        },
        LibraryQuery {
            image: Some(b"not an image".to_vec()),
            top: 5,
            ..LibraryQuery::default()
        },
        LibraryQuery {
            text: Some("x".into()),
            videos: vec!["../etc".into()],
            top: 5,
            ..LibraryQuery::default()
        },
        LibraryQuery {
            text: Some("x".into()),
            videos: vec!["0123456789abcdef".into()],
            top: 5,
            ..LibraryQuery::default()
        },
        LibraryQuery {
            text: Some("x".into()),
            model: Some("no-such-model".into()),
            top: 5,
            ..LibraryQuery::default()
        },
    ];
    for query in &bad {
        let response = post_query(&served, query);
        assert!(
            [400, 404].contains(&response.status),
            "{query:?}: {} {}",
            response.status,
            response.text()
        );
        assert!(
            !response
                .text()
                .contains(served.dir.path().to_str().unwrap()),
            "no paths"
        );
    }
    // Huge pages are clamped, not refused.
    let huge = post_query(
        &served,
        &LibraryQuery {
            text: Some("wall".into()),
            top: usize::MAX / 2,
            ..LibraryQuery::default()
        },
    );
    assert_eq!(huge.status, 200, "{}", huge.text());
    let thumb = served.form(
        "/api/thumbnail",
        &format!("video={}&frame=100000", answer.results[0].video_id),
    );
    assert_eq!(thumb.status, 400, "{}", thumb.text());
}

/// Frame `k` of `footage/name` under `dir`, as a lossless PNG.
fn frame_png_in(dir: &Path, name: &str, k: u64) -> PathBuf {
    let mut decoder = engine::video::Decoder::open(&dir.join("footage").join(name)).unwrap();
    let image = decoder.frame(k).unwrap();
    let out = dir.join(format!("{name}-{k}.png"));
    let mut bytes = opencv::core::Vector::<u8>::new();
    opencv::imgcodecs::imencode(".png", &image, &mut bytes, &opencv::core::Vector::new()).unwrap();
    std::fs::write(&out, bytes.to_vec()).unwrap();
    out
}

/// `index_library: true`: the server indexes every video of the library in the background, the
/// list shows each one's progress, and the library search then finds all of them.
#[test]
fn the_server_indexes_the_whole_library_in_the_background() {
    let lib = Lib::new();
    let config =
        std::fs::read_to_string(lib.path("config.yaml")).unwrap() + "index_library: true\n";
    let Lib { dir } = lib;
    let served = crate::common::Served::start_in(dir, &config, &[("HF_HUB_OFFLINE", "1")]);
    let started = std::time::Instant::now();
    let listing = loop {
        let response = served.form("/api/library", "");
        assert_eq!(response.status, 200, "{}", response.text());
        let listing: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(listing["index_library"], true);
        let videos = listing["videos"].as_array().unwrap();
        if videos.len() == 3 && videos.iter().all(|v| v["indexed"] == "Yes") {
            break listing;
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "not indexed in time: {listing}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    for video in listing["videos"].as_array().unwrap() {
        assert_eq!(video["progress"].as_f64(), Some(1.0), "{video}");
        assert_eq!(video["folder"], "footage");
    }
    let answer = loop {
        let response = post_query(
            &served,
            &LibraryQuery {
                text: Some("wall".into()),
                top: 20,
                ..LibraryQuery::default()
            },
        );
        assert_eq!(response.status, 200, "{}", response.text());
        let answer: LibraryAnswer = postcard::from_bytes(&response.body).unwrap();
        if answer.videos_searched == 3 || started.elapsed().as_secs() > 120 {
            break answer;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!((answer.videos_searched, answer.vectors_searched), (3, 340));
    assert!(answer.not_indexed.is_empty() && answer.partial.is_empty());
    // The switch, as the Videos page turns it off.
    let off = served.form("/api/index_library", "on=false");
    assert_eq!((off.status, off.text().trim()), (200, "false"));
}
