//! `kill -9` of the server at random moments while it indexes, 20 times in a row: after each
//! kill the cache still opens, nothing in `embeddings/` is unreadable, the restarted server
//! resumes where the file ends, at most one checkpoint of work is lost, and the finished index
//! equals one made without interruption. And `kill -9` of a labels import mid-save: the labels
//! file is always whole, old or new; of a server making a display proxy: never half a proxy.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http, video, Rng};
use store::cache::EmbeddingFile;

const BIN: &str = env!("CARGO_BIN_EXE_clip-investigator");
const KILLS: usize = 20;
const CHECKPOINT_SECS: f64 = 0.05;
const BATCH: u64 = 2;

fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip")
}

fn write_config(dir: &Path, video: &Path) -> PathBuf {
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "roboflow_api_key: \"\"\nvideo_path: {video:?}\nCLIP:\n  - wall\nmodel: {:?}\nembeddings_dir: {:?}\nbatch_size: {BATCH}\ncheckpoint_secs: {CHECKPOINT_SECS}\n",
            tiny_model(),
            dir.join("embeddings"),
        ),
    )
    .unwrap();
    config
}

fn start(config: &Path) -> (Child, SocketAddr) {
    let addr = common::free_addr();
    let env = [("RUST_LOG", "warn")];
    (
        common::spawn_serve(config, addr, &env, common::ServerLog::Discard),
        addr,
    )
}

fn status(addr: SocketAddr) -> serde_json::Value {
    let video = common::id_of(&video("vp9.webm"));
    let response = http(
        addr,
        "POST",
        "/api/index_status",
        "application/x-www-form-urlencoded",
        format!("video={video}").as_bytes(),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    serde_json::from_slice(&response.body).unwrap()
}

/// Every file in the folder: cache files must read; nothing else may be left but text caches.
fn check_folder(dir: &Path) -> Option<EmbeddingFile> {
    let mut found = None;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("texts-") {
            continue;
        }
        if name == "library" {
            // The library search's segments: each must open (a torn append is cut off).
            check_segments(&path);
            continue;
        }
        if name.starts_with('.') && name.contains(".tmp-") {
            // A write cut short by the kill: never read, removed at the next start.
            continue;
        }
        if name.starts_with("proxy-") {
            // The display proxy made meanwhile: every segment there reads back whole.
            let video = video("vp9.webm");
            let index = engine::video::FrameIndex::load_or_build(&video, None).unwrap();
            let segments = engine::video::ProxySegments::open(dir, &video, index).unwrap();
            for k in 0..segments.count() {
                if segments.width_of(k) > 0 {
                    assert!(
                        segments.segment(k, 2).is_some(),
                        "proxy segment {k} unreadable"
                    );
                }
            }
            continue;
        }
        if name.ends_with(".frames") {
            // The video's frame index, written once when the server opened the video.
            let index = store::cache::read_versioned::<engine::video::FrameIndex>(
                &path,
                engine::video::INDEX_VERSION,
            );
            assert!(matches!(index, Ok(Some(_))), "{name} unreadable: {index:?}");
            continue;
        }
        assert!(name.ends_with(".clipemb"), "unexpected file {name}");
        let file = EmbeddingFile::peek(&path).unwrap_or_else(|e| panic!("{name} unreadable: {e}"));
        assert!(found.is_none(), "two cache files");
        found = Some(file);
    }
    found
}

/// Every vector segment under `library/` opens; how many there are, and how many end in a
/// torn append (a writer killed mid-block).
fn check_segments(library: &Path) -> (usize, usize) {
    let (mut count, mut torn) = (0, 0);
    for model in std::fs::read_dir(library).into_iter().flatten().flatten() {
        for entry in std::fs::read_dir(model.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "vseg") {
                let segment =
                    store::vectors::Segment::open(&path).unwrap_or_else(|e| panic!("{e}"));
                count += 1;
                torn += usize::from(segment.torn > 0);
            }
        }
    }
    (count, torn)
}

#[test]
fn killing_the_server_while_it_indexes_loses_at_most_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let video_path = video("vp9.webm");
    let config = write_config(dir.path(), &video_path);
    let embeddings = dir.path().join("embeddings");
    let mut rng = Rng::new(20261127);
    let mut saved_before = 0usize;
    let mut kills_while_indexing = 0;
    let mut worst_loss = 0u64;
    for round in 0..KILLS {
        let (mut child, addr) = start(&config);
        // Wait until this run is indexing past what the file held, then kill at a random moment.
        let waiting = Instant::now();
        let resumed_from = loop {
            let s = status(addr);
            assert_ne!(s["state"], "Failed", "round {round}: {s}");
            if s["state"] == "Done" || s["done"].as_u64().unwrap_or(0) > saved_before as u64 {
                break s["done"].as_u64().unwrap_or(0);
            }
            assert!(
                waiting.elapsed() < Duration::from_secs(60),
                "round {round}: no progress: {s}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(
            resumed_from as usize >= saved_before,
            "round {round}: started behind the file"
        );
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        let before_kill = status(addr);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let done_before_kill = before_kill["done"].as_u64().unwrap();
        let rate = before_kill["frames_per_s"].as_f64().unwrap_or(0.0);
        // No file yet only if the kill came before the first checkpoint.
        let saved = check_folder(&embeddings).map_or(0, |f| f.frames.len());
        assert!(
            saved >= saved_before,
            "round {round}: saved work went missing"
        );
        if before_kill["state"] == "Running" {
            kills_while_indexing += 1;
            // The progress read just before the kill is at most what was done at the kill;
            // what was done but not saved is at most one checkpoint interval of work (plus the
            // batch in flight and the status poll's own delay).
            let lost = done_before_kill.saturating_sub(saved as u64);
            let bound = (rate * (CHECKPOINT_SECS + 0.1)).ceil() as u64 + 2 * BATCH;
            assert!(
                lost <= bound,
                "round {round}: {lost} frames lost, bound {bound} at {rate:.0}/s"
            );
            worst_loss = worst_loss.max(lost);
        }
        saved_before = saved;
    }
    assert!(
        kills_while_indexing >= KILLS / 2,
        "only {kills_while_indexing} kills hit indexing"
    );

    // Let the last run finish, then compare with an uninterrupted index.
    let (mut child, addr) = start(&config);
    let started = Instant::now();
    while status(addr)["state"] != "Done" {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "indexing did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = check_folder(&embeddings).unwrap();
    let leftovers: Vec<String> = std::fs::read_dir(&embeddings)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh_config = write_config(fresh_dir.path(), &video_path);
    let output = Command::new(BIN)
        .args([
            "index",
            video_path.to_str().unwrap(),
            "--json",
            "--config",
            fresh_config.to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fresh = check_folder(&fresh_dir.path().join("embeddings")).unwrap();
    assert_eq!(resumed.frames, fresh.frames);
    assert_eq!(resumed.frames.len() as u64, resumed.header.video_frames);
    let worst = resumed
        .vectors
        .iter()
        .zip(&fresh.vectors)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        worst <= 1e-6,
        "resumed index differs from an uninterrupted one by {worst}"
    );
    // The scene-cut measures resume too (a few frames before the first new one are re-read):
    // bit for bit those of an uninterrupted run (Debug, because NaN != NaN).
    assert_eq!(
        format!("{:?}", resumed.scene),
        format!("{:?}", fresh.scene),
        "scene measures after kills differ from an uninterrupted run's"
    );
    assert_eq!(resumed.scene_measured(), resumed.header.video_frames);
    println!(
        "{KILLS} kills, {kills_while_indexing} while indexing; worst loss {worst_loss} frames; final index equals an uninterrupted one (max diff {worst:e})"
    );
}

/// `kill -9` of `labels --import` at random moments, 20 times: the labels file is always the
/// old labels or the new ones, whole (it is replaced atomically), and reads.
#[test]
fn labels_survive_kill_9_during_a_save() {
    let dir = tempfile::tempdir().unwrap();
    let video = video("h264_gop250.mp4");
    let config = write_config(dir.path(), &video);
    // Two label files of different sizes (thousands of segments: a save takes a while).
    let file = |name: &str, segments: u64| {
        let mut text = String::from("prompt,start_frame,end_frame\n");
        for k in 0..segments {
            text.push_str(&format!("prompt {k},{},{}\n", k % 290, k % 290 + 5));
        }
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (a, b) = (file("a.csv", 3_000), file("b.csv", 5_000));
    let count = || -> usize {
        let out = Command::new(BIN)
            .args(["labels", video.to_str().unwrap(), "--json", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the labels read after a kill: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        value["labels"].as_array().unwrap().len()
    };
    assert_eq!(count(), 0);
    let mut rng = Rng::new(31);
    let mut seen = std::collections::HashSet::new();
    for kill in 0..KILLS {
        let source = if kill % 2 == 0 { &a } else { &b };
        let mut child = Command::new(BIN)
            .args(["labels", video.to_str().unwrap(), "--replace", "--import"])
            .arg(source)
            .arg("--config")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // An import takes some 300 ms (debug build): kills land before, during and after its save.
        std::thread::sleep(Duration::from_millis(rng.below(450)));
        let _ = child.kill();
        let _ = child.wait();
        let now = count();
        assert!(
            [0, 3_000, 5_000].contains(&now),
            "kill {kill}: {now} segments"
        );
        seen.insert(now);
    }
    assert!(
        seen.len() >= 2,
        "the kills landed before and after saves: {seen:?}"
    );
}

/// `kill -9` of `search --library` at random moments while another process indexes a video
/// (its cache file changes every 50 ms, so each search appends to the library index first),
/// 20 times: every segment still opens, and once the index is done the library index answers
/// exactly as one rebuilt from the caches.
#[test]
fn the_library_index_survives_kill_9_while_it_is_updated() {
    let dir = tempfile::tempdir().unwrap();
    let video_path = video("vp9.webm");
    let config = write_config(dir.path(), &video_path);
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .env("HF_HUB_OFFLINE", "1")
            .spawn()
            .unwrap()
    };
    let mut indexer = run(&[
        "index",
        video_path.to_str().unwrap(),
        "--checkpoint-secs",
        "0.05",
        "--batch-size",
        "1",
        "--json",
    ]);
    let mut rng = Rng::new(20261205);
    let library = dir.path().join("embeddings/library");
    let (mut killed, mut torn) = (0, 0);
    for _ in 0..KILLS {
        let mut search = run(&["search", "--library", "--text", "wall", "--json"]);
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        if search.try_wait().unwrap().is_none() {
            killed += 1;
        }
        let _ = search.kill();
        search.wait().unwrap();
        torn += check_segments(&library).1;
    }
    assert!(indexer.wait().unwrap().success());
    assert!(
        killed >= KILLS / 2,
        "only {killed} searches were killed before they ended"
    );
    let answer = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let query = [
        "search",
        "--library",
        "--text",
        "wall",
        "--json",
        "--top",
        "20",
    ];
    let kept = answer(&query);
    assert!(check_segments(&library).0 >= 1);
    std::fs::remove_dir_all(&library).unwrap();
    let rebuilt = answer(&query);
    assert_eq!(kept["results"], rebuilt["results"]);
    assert_eq!(kept["vectors_searched"], rebuilt["vectors_searched"]);
    println!("{killed} of {KILLS} library searches killed mid-run, {torn} times leaving a torn append; the index kept answers as one rebuilt from the caches");
}

/// `kill -9` of the server at random moments while it makes a video's display proxy, 8 times:
/// each time every segment file there reads back whole and exact (never half a segment under
/// its name), and no segment made before is lost; a restarted server goes on from the segments
/// that are whole, and then serves every frame from them.
#[test]
fn a_display_proxy_survives_kill_9_while_it_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let video = video("h264_gop250.mp4");
    let config = write_config(dir.path(), &video);
    let id = common::id_of(&video);
    let embeddings = dir.path().join("embeddings");
    let index = engine::video::FrameIndex::load_or_build(&video, None).unwrap();
    let folder = || {
        std::fs::read_dir(&embeddings).ok().and_then(|entries| {
            entries.flatten().map(|e| e.path()).find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("proxy-")
            })
        })
    };
    // Segments on disk, each checked: (whole segments, temporary files of a killed write).
    let segments_on_disk = || -> (u64, usize) {
        let Some(folder) = folder() else {
            return (0, 0);
        };
        let temporaries = std::fs::read_dir(&folder)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .count();
        let files = std::fs::read_dir(&folder)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".segment"))
            .count() as u64;
        let segments =
            engine::video::ProxySegments::open(&embeddings, &video, Arc::clone(&index)).unwrap();
        for k in 0..segments.count() {
            if segments.width_of(k) > 0 {
                assert!(
                    segments.segment(k, 2).is_some(),
                    "segment {k} is on disk but not whole"
                );
            }
        }
        assert_eq!(segments.frames_covered(2) > 0, files > 0);
        (files, temporaries)
    };
    let frame = |addr: SocketAddr, n: u64, w: u32| {
        let answer = http(
            addr,
            "GET",
            &format!("/frame/{id}/{n}.jpg?w={w}"),
            "text/plain",
            b"",
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        let image = engine::video::decode_image(&answer.body).unwrap();
        assert_eq!(testvideo::read_pattern(&image).unwrap(), n);
        answer.headers.contains("x-frame-source: proxy")
    };
    let mut rng = Rng::new(53);
    let mut made = 0;
    let mut killed_with_temporaries = 0;
    for kill in 0..8 {
        let (mut child, addr) = start(&config);
        // The first frame opens the video, which starts the proxy (a segment takes some
        // hundreds of ms in a debug build).
        frame(addr, 1, 640);
        std::thread::sleep(Duration::from_millis(rng.below(1500)));
        let _ = child.kill();
        let _ = child.wait();
        let (segments, temporaries) = segments_on_disk();
        assert!(
            segments >= made,
            "kill {kill}: {segments} segments, {made} before"
        );
        made = segments;
        killed_with_temporaries += usize::from(temporaries > 0);
    }
    eprintln!(
        "display proxy: {made} segments whole after 8 kills; {killed_with_temporaries} kills left a temporary file"
    );
    // Restarted: goes on, then serves every frame from the proxy; exact frames.
    let (mut child, addr) = start(&config);
    frame(addr, 1, 640);
    let started = Instant::now();
    while segments_on_disk().0 < engine::video::segment_count(index.frames()) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no whole proxy"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for n in [299, 17, 250, 249, 3, 0] {
        assert!(frame(addr, n, 320), "frame {n} not from the proxy");
    }
    let _ = child.kill();
    let _ = child.wait();
}
