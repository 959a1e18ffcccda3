//! The video library against a running server: listing, opening by id, the indexing queue,
//! uploads (streamed, checked, limited), and every way a request could try to reach a file
//! outside the library folders.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{decode_frame_payload, http_with, id_of, tiny_model, video, Served};

/// A library folder beside a folder it must not leak: the server's config folder holds both.
struct Fixture {
    server: Served,
    library: PathBuf,
    outside: PathBuf,
}

const MARKER: &str = "OUTSIDE-THE-LIBRARY-7f3a";

fn fixture(max_upload_mb: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("library");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&library).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(video("vp9.webm"), library.join("a.webm")).unwrap();
    std::fs::copy(video("mpeg2.mkv"), library.join("b.mkv")).unwrap();
    std::fs::write(library.join("broken.mp4"), "not a video\n".repeat(50)).unwrap();
    std::fs::write(library.join("notes.txt"), "not listed").unwrap();
    std::fs::copy(video("vp9.webm"), library.join(".hidden.webm")).unwrap();
    std::fs::copy(video("vfr_h264.mp4"), outside.join("secret.mp4")).unwrap();
    std::fs::write(outside.join("secret.txt"), MARKER).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.mp4"), library.join("escape.mp4")).unwrap();
    std::os::unix::fs::symlink("../outside/secret.mp4", library.join("relative.mp4")).unwrap();
    std::os::unix::fs::symlink(&outside, library.join("outside-dir.mp4")).unwrap();
    std::os::unix::fs::symlink(library.join("a.webm"), library.join("same-as-a.webm")).unwrap();
    let server = Served::start_in(
        dir,
        &format!(
            "video_path: {:?}\nlibrary_dirs: [\"{{dir}}/library\"]\nCLIP:\n  - wall\nmodel: {:?}\nembeddings_dir: \"{{dir}}/embeddings\"\nmax_upload_mb: {max_upload_mb}\n",
            video("h264_gop250.mp4"),
            tiny_model(),
        ),
        &[],
    );
    Fixture {
        server,
        library,
        outside,
    }
}

impl Fixture {
    fn library(&self) -> investigator_core::types::Library {
        let r = self.server.form("/api/library", "");
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    fn id(&self, name: &str) -> String {
        self.library()
            .videos
            .into_iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("{name} is not listed"))
            .id
    }

    fn status(&self, id: &str) -> serde_json::Value {
        let r = self
            .server
            .form("/api/index_status", &format!("video={id}"));
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    }

    fn upload(
        &self,
        query_name: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> common::HttpResponse {
        http_with(
            self.server.addr,
            "POST",
            &format!("/api/upload?name={query_name}"),
            "application/octet-stream",
            body,
            headers,
        )
    }

    /// Every file under the fixture's folder, to check that nothing appeared where it must not.
    fn all_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_symlink() || !path.is_dir() {
                    out.push(path);
                } else {
                    walk(&path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.server.dir.path(), &mut out);
        out.retain(|p| !p.starts_with(self.server.dir.path().join("embeddings")));
        out.sort();
        out
    }
}

#[test]
fn the_library_lists_its_videos_and_opens_each_by_id() {
    let f = fixture(64);
    let raw = f.server.form("/api/library", "");
    assert!(
        !raw.text().contains(f.server.dir.path().to_str().unwrap()),
        "the list names files, never folders: {}",
        raw.text()
    );
    let library = f.library();
    let names: Vec<&str> = library.videos.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["h264_gop250.mp4", "a.webm", "b.mkv", "broken.mp4"],
        "the config's video first, then the folder's videos by name; no symlinks out, no \
         hidden files, no duplicates, nothing but videos"
    );
    assert!(library.videos[0].default);
    assert_eq!(library.max_upload_bytes, Some(64 * 1024 * 1024));
    let a = &library.videos[1];
    assert_eq!((a.width, a.height), (1280, 720), "{a:?}");
    assert!((a.duration_s - 10.0).abs() < 0.5, "{a:?}");
    assert!(a.error.is_none());
    let broken = &library.videos[3];
    assert!(
        broken
            .error
            .as_deref()
            .is_some_and(|e| e.contains("broken.mp4")),
        "{broken:?}"
    );
    for video in &library.videos {
        assert!(
            investigator_core::types::is_valid_video_id(&video.id),
            "{video:?}"
        );
    }

    // Opening by id: its metadata and its exact frames, one decoder per (video, viewer).
    let info = f.server.form("/api/video_info", &format!("video={}", a.id));
    assert_eq!(info.status, 200, "{}", info.text());
    let info: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
    assert_eq!(info["name"], "a.webm");
    assert_eq!(info["id"], a.id.as_str());
    for (video, frame) in [
        (&a.id, 7),
        (&library.videos[2].id, 11),
        (&library.videos[0].id, 5),
    ] {
        let r = f.server.form(
            "/api/frame",
            &format!("video={video}&viewer=viewer-one&frame={frame}"),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(decode_frame_payload(&r.body).0, frame);
    }

    // Queue: at most one video indexes at a time (max_indexing_jobs: 1); all finish.
    let ids = [
        library.videos[0].id.clone(),
        a.id.clone(),
        library.videos[2].id.clone(),
    ];
    let started = Instant::now();
    let mut saw_waiting = false;
    loop {
        let states: Vec<serde_json::Value> = ids.iter().map(|id| f.status(id)).collect();
        // Mid-job (some frames embedded, some not): the reads are a few ms apart, far less
        // than one batch takes, so two jobs mid-job in one round ran at the same time.
        let mid_job = states
            .iter()
            .filter(|s| {
                s["state"] == "Running"
                    && s["done"].as_u64() > Some(0)
                    && s["done"].as_u64() < s["total"].as_u64()
            })
            .count();
        assert!(mid_job <= 1, "two jobs at once: {states:?}");
        saw_waiting |= states
            .iter()
            .any(|s| s["message"].as_str().is_some_and(|m| m.contains("queued")));
        if states.iter().all(|s| s["state"] == "Done") {
            break;
        }
        assert!(states.iter().all(|s| s["state"] != "Failed"), "{states:?}");
        assert!(started.elapsed() < Duration::from_secs(120), "{states:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(saw_waiting, "a second video waited for its turn");
    let indexed: Vec<investigator_core::types::Indexed> =
        f.library().videos.iter().map(|v| v.indexed).collect();
    assert_eq!(
        indexed[..3],
        [investigator_core::types::Indexed::Yes; 3],
        "the list shows the finished indexes"
    );

    // Another server on the same folders knows from the cache files, without opening a video.
    let again = Served::start(
        &format!(
            "video_path: {:?}\nlibrary_dirs: [{:?}]\nmodel: {:?}\nembeddings_dir: {:?}\n",
            video("h264_gop250.mp4"),
            f.library,
            tiny_model(),
            f.server.dir.path().join("embeddings"),
        ),
        &[],
    );
    let started = Instant::now();
    loop {
        let r = again.form("/api/library", "");
        let listed: investigator_core::types::Library = serde_json::from_slice(&r.body).unwrap();
        let states: Vec<_> = listed
            .videos
            .iter()
            .map(|v| (v.name.clone(), v.indexed))
            .collect();
        if states[1..3]
            .iter()
            .all(|(_, i)| *i == investigator_core::types::Indexed::Yes)
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{states:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn no_request_reaches_a_file_outside_the_library() {
    let f = fixture(64);
    let before = f.all_files();
    let outside_video = f.outside.join("secret.mp4");
    let long = "a".repeat(10_000);
    let ids: Vec<String> = vec![
        "../outside/secret.mp4".into(),
        "..%2Foutside%2Fsecret.mp4".into(),
        "%2e%2e%2foutside%2fsecret.txt".into(),
        "%252e%252e%252foutside%252fsecret.txt".into(),
        f.outside.join("secret.txt").to_string_lossy().into_owned(),
        "/etc/passwd".into(),
        "%2Fetc%2Fpasswd".into(),
        "0123456789abcdef%00.mp4".into(),
        "0123456789abcde%00".into(),
        long,
        // Well-formed ids of files the library does not list.
        id_of(&outside_video),
        id_of(&f.library.join("escape.mp4")),
        engine::library::video_id(&f.library.join("escape.mp4")),
        engine::library::video_id(&f.library.join("relative.mp4")),
        id_of(&f.library.join(".hidden.webm")),
        id_of(&f.library.join("notes.txt")),
        id_of(&f.outside.join("secret.txt")),
        id_of(&f.library).to_uppercase(),
        "ffffffffffffffff".into(),
    ];
    for id in &ids {
        let calls = [
            ("/api/video_info", format!("video={id}")),
            ("/api/index_status", format!("video={id}")),
            ("/api/frame", format!("video={id}&viewer=traversal&frame=0")),
        ];
        for (endpoint, body) in calls {
            let r = f.server.form(endpoint, &body);
            let text = r.text();
            assert_ne!(r.status, 200, "{endpoint} {id:.80}: {text:.300}");
            assert!(
                text.contains("not a video id") || text.contains("no video"),
                "{endpoint} {id:.80}: {text:.300}"
            );
            assert!(
                !text.contains(MARKER) && !text.contains("secret") && !text.contains("/outside"),
                "{endpoint} {id:.80}: {text:.300}"
            );
        }
        let json = serde_json::json!({ "video": id, "prompts": ["wall"] }).to_string();
        let r = f
            .server
            .post("/api/scores", "application/json", json.as_bytes());
        assert_ne!(r.status, 200, "scores {id:.80}");
    }
    println!(
        "{} ids x 4 server functions refused; 13 upload names refused",
        ids.len()
    );
    // The page with such an id says so and names nothing outside.
    let page = common::http(
        f.server.addr,
        "GET",
        &format!("/?video={}", id_of(&outside_video)),
        "text/html",
        b"",
    )
    .text();
    assert!(page.contains("no video"), "{page:.2000}");
    assert!(!page.contains("secret"), "{page:.2000}");

    // Uploads whose names try to leave the folder are refused, and write nothing.
    for name in [
        "../escape.mp4",
        "..%2Fescape.mp4",
        "%2e%2e%2fescape.mp4",
        "%252e%252e%252fescape.mp4",
        "..%5Cescape.mp4",
        "%2Ftmp%2Fclip-investigator-escape.mp4",
        "outside%2Fsecret.mp4",
        "a.mp4%00.txt",
        "%00",
        "",
        ".hidden2.webm",
        "notes.txt",
        &format!("{}.webm", "a".repeat(300)),
    ] {
        // A small body: the server refuses by name before reading it.
        let r = f.upload(name, b"\x1aE\xdf\xa3 a tiny body", &[]);
        assert_eq!(r.status, 400, "upload {name:.80}: {}", r.text());
    }
    // The symlink to a file outside exists, so an upload cannot write through it either.
    let r = f.upload("escape.mp4", b"overwrite?", &[]);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(f.all_files(), before, "nothing was written");
    assert!(!Path::new("/tmp/clip-investigator-escape.mp4").exists());
    assert_eq!(
        std::fs::read_to_string(f.outside.join("secret.txt")).unwrap(),
        MARKER
    );

    // An id that was valid stops working when its file is deleted, and says why.
    std::fs::copy(video("vp9.webm"), f.library.join("doomed.webm")).unwrap();
    let doomed = f.id("doomed.webm");
    let r = f.server.form("/api/video_info", &format!("video={doomed}"));
    assert_eq!(r.status, 200, "{}", r.text());
    std::fs::remove_file(f.library.join("doomed.webm")).unwrap();
    for (endpoint, body) in [
        ("/api/video_info", format!("video={doomed}")),
        (
            "/api/frame",
            format!("video={doomed}&viewer=doomed-viewer&frame=1"),
        ),
    ] {
        let r = f.server.form(endpoint, &body);
        assert_ne!(r.status, 200, "{endpoint}");
        assert!(r.text().contains("deleted or renamed"), "{}", r.text());
    }
    assert!(!f.server.log().contains("panicked"), "{}", f.server.log());
}

/// Sends `total` bytes of zeros as an upload, chunked (no declared length) or with its length
/// declared, and returns the answer (the server may answer before reading it all).
fn raw_upload(f: &Fixture, name: &str, total: usize, chunked: bool) -> (u16, String) {
    let mut stream = TcpStream::connect(f.server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let length = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {total}")
    };
    let head = format!(
        "POST /api/upload?name={name} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{length}\r\n\r\n",
        f.server.addr
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        let framed = if chunked {
            [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat()
        } else {
            chunk[..n].to_vec()
        };
        if stream.write_all(&framed).is_err() {
            break; // The server answered and closed early.
        }
        sent += n;
    }
    if chunked {
        let _ = stream.write_all(b"0\r\n\r\n");
    }
    let answer = common::read_response(&mut stream, &format!("upload {name}"));
    (answer.status, answer.text())
}

#[test]
fn uploads_are_streamed_to_disk_checked_and_limited() {
    let f = fixture(32);
    let clip = std::fs::read(video("vp9.webm")).unwrap();

    // A good video is listed under its name and opens.
    let r = f.upload("new%20clip.webm", &clip, &[]);
    assert_eq!(r.status, 201, "{}", r.text());
    let uploaded: investigator_core::types::Uploaded = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(uploaded.name, "new clip.webm");
    assert_eq!(f.id("new clip.webm"), uploaded.id);
    assert_eq!(
        std::fs::read(f.library.join("new clip.webm")).unwrap(),
        clip
    );
    let frame = f.server.form(
        "/api/frame",
        &format!("video={}&viewer=uploader&frame=42", uploaded.id),
    );
    assert_eq!(frame.status, 200, "{}", frame.text());
    assert_eq!(decode_frame_payload(&frame.body).0, 42);

    // The same name again: refused, the first file untouched.
    let r = f.upload("new%20clip.webm", b"something else", &[]);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        std::fs::read(f.library.join("new clip.webm")).unwrap(),
        clip
    );

    // Content that does not decode is refused and not kept.
    for (name, body) in [
        ("text.mp4", b"just some text, not a video\n".repeat(100)),
        ("header-only.webm", clip[..4096].to_vec()),
        ("empty.mp4", Vec::new()),
    ] {
        let r = f.upload(name, &body, &[]);
        assert!(
            r.status == 422 || (name == "empty.mp4" && r.status == 400),
            "{name}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains(".upload-"), "{}", r.text());
        assert!(!f.library.join(name).exists(), "{name} was kept");
    }

    // Over the limit, declared: refused before the body is read.
    let (status, answer) = raw_upload(&f, "big.mp4", 33 * 1024 * 1024, false);
    assert_eq!(status, 413, "{answer}");
    // Memory from here on: wait until the indexing jobs (which use memory of their own) end.
    for id in [f.library().videos[0].id.clone(), uploaded.id.clone()] {
        let started = Instant::now();
        while f.status(&id)["state"] != "Done" {
            assert!(started.elapsed() < Duration::from_secs(120));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Over the limit without a declared length: cut off at the limit, with memory flat.
    // The peak from here on, starting at the current resident size.
    f.server.reset_peak_rss();
    let before = f.server.peak_rss_mb();
    let (status, answer) = raw_upload(&f, "stream.mp4", 48 * 1024 * 1024, true);
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("32 MiB"), "{answer}");
    let grown = f.server.peak_rss_mb() - before;
    assert!(
        grown < 16.0,
        "an upload of 32 MiB and more raised the server's peak memory by {grown:.1} MB"
    );
    // Under the limit without a declared length: streamed, checked, refused as not a video.
    f.server.reset_peak_rss();
    let before_24 = f.server.peak_rss_mb();
    let (status, answer) = raw_upload(&f, "zeros.mp4", 24 * 1024 * 1024, true);
    assert_eq!(status, 422, "{answer}");
    let grown_24 = f.server.peak_rss_mb() - before_24;
    assert!(
        grown_24 < 16.0,
        "a 24 MiB upload raised peak memory by {grown_24:.1} MB"
    );
    println!(
        "RSS {before:.1} MB; peak +{grown:.1} MB while 48 MiB were sent (413 at 32 MiB); RSS {before_24:.1} MB, peak +{grown_24:.1} MB during a 24 MiB upload"
    );

    // Another site's page cannot upload.
    let r = f.upload(
        "cross-site.webm",
        &clip[..1000],
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!f.library.join("cross-site.webm").exists());

    // No temporary file is left behind, and only the good upload was added.
    let hidden: Vec<PathBuf> = std::fs::read_dir(&f.library)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".upload-")
        })
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
    let names: Vec<String> = f.library().videos.into_iter().map(|v| v.name).collect();
    assert_eq!(
        names,
        [
            "h264_gop250.mp4",
            "a.webm",
            "b.mkv",
            "broken.mp4",
            "new clip.webm"
        ]
    );
    assert!(!f.server.log().contains("panicked"));
}

/// The models of the three-model test: folder names under tests/fixtures.
const THREE_MODELS: [&str; 3] = ["tiny-clip", "tiny-clip-gelu", "tiny-siglip"];

fn fixture_model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `models:` with three models: each indexes the video into a cache file of its own, each
/// model's scores are its own, asking again (switching back) embeds nothing, and a restarted
/// server reads all three from their files.
#[test]
fn three_models_index_one_video_into_three_cache_files_and_switching_back_embeds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "video_path: {:?}\nCLIP:\n  - wall\nmodels:\n{}embeddings_dir: \"{{dir}}/embeddings\"\nmax_indexing_jobs: 1\n",
        video("mpeg2.mkv"),
        THREE_MODELS
            .iter()
            .map(|m| format!("  - {:?}\n", fixture_model(m)))
            .collect::<String>(),
    );
    let dir_path = dir.path().to_path_buf();
    let server = Served::start_in(dir, &config, &[]);
    let models: Vec<investigator_core::types::ModelChoice> =
        serde_json::from_slice(&server.form("/api/models", "").body).unwrap();
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, THREE_MODELS, "the config's order, the default first");
    assert!(
        models.iter().all(|m| !m.label.contains('/')),
        "folders are named, never their paths: {models:?}"
    );
    let video_id = id_of(&video("mpeg2.mkv"));
    let status = |server: &Served, model: Option<&str>| -> serde_json::Value {
        let model = model.map(|m| format!("&model={m}")).unwrap_or_default();
        let r = server.form("/api/index_status", &format!("video={video_id}{model}"));
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    };
    let wait_done = |server: &Served, model: &str| -> serde_json::Value {
        let started = Instant::now();
        loop {
            let s = status(server, Some(model));
            if s["state"] == "Done" {
                return s;
            }
            assert_ne!(s["state"], "Failed", "{model}: {s}\n{}", server.log());
            assert!(started.elapsed() < Duration::from_secs(120), "{model}: {s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let scores = |server: &Served, model: &str| -> investigator_core::types::ScoreSeries {
        let body =
            serde_json::json!({ "video": video_id, "model": model, "prompts": ["wall", "grass"] });
        let r = server.post(
            "/api/scores",
            "application/json",
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        postcard::from_bytes(&r.body).unwrap()
    };

    let mut done = Vec::new();
    for model in THREE_MODELS {
        let s = wait_done(&server, model);
        let embedded = s["images_embedded"].as_u64().unwrap();
        assert_eq!(embedded, s["total"].as_u64().unwrap(), "{model}: {s}");
        done.push((s, scores(&server, model)));
    }
    // No model given: the default, the same index as asking for it by name.
    assert_eq!(
        status(&server, None)["images_embedded"],
        done[0].0["images_embedded"]
    );
    // Three cache files of the video's frames, one per model (and each model's prompt cache).
    let files: Vec<String> = std::fs::read_dir(dir_path.join("embeddings"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".clipemb") && !name.starts_with("texts-"))
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    for model in THREE_MODELS {
        assert!(
            files.iter().any(|f| f.contains(&format!("-{model}-"))),
            "{model}: {files:?}"
        );
    }
    // Each model's scores are its own.
    for (i, (_, a)) in done.iter().enumerate() {
        for (_, b) in &done[i + 1..] {
            assert_eq!(a.frames, b.frames);
            assert_ne!(a.prompts[0].values, b.prompts[0].values);
        }
    }
    // Switching back and forth embeds nothing more and gives the same scores.
    for _ in 0..2 {
        for (model, (before, series)) in THREE_MODELS.iter().zip(&done) {
            assert_eq!(scores(&server, model), *series, "{model}");
            let now = status(&server, Some(model));
            assert_eq!(
                now["images_embedded"], before["images_embedded"],
                "{model}: {now}"
            );
        }
    }
    // An unknown model is refused with a message that says what to do.
    let r = server.form("/api/index_status", &format!("video={video_id}&model=nope"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("no model") && r.text().contains("nope"),
        "{}",
        r.text()
    );
    let r = server.form(
        "/api/index_status",
        &format!("video={video_id}&model=..%2Fx"),
    );
    assert_eq!(r.status, 400, "{}", r.text());

    // A restarted server reads every model's file: done at once, nothing embedded.
    let dir = server.stop();
    let again = Served::start_in(dir, &config, &[]);
    for (model, (_, series)) in THREE_MODELS.iter().zip(&done) {
        let s = wait_done(&again, model);
        assert_eq!(s["images_embedded"], 0, "{model}: {s}");
        assert_eq!(scores(&again, model), *series, "{model}");
    }
}
