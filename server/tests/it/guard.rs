//! A local server is reachable from every page the user opens: these tests play the other
//! site (wrong `Host` = DNS rebinding, foreign `Origin`/`Sec-Fetch-Site` = cross-site
//! requests), check `auth_token`, the warning for non-loopback binds, and that the Roboflow
//! key and the token appear in no page, asset, server-function answer or log line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::common::{http_with, video, HttpResponse};

const KEY: &str = "rf-SECRET-key-0123456789";
const TOKEN: &str = "tok-SECRET-9876543210";

struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// `serve` with the Roboflow key set, listening on `ip` (a free port), the log in a file.
    fn start(ip: &str, token: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "roboflow_api_key: {KEY:?}\nvideo_path: {:?}\nCLIP:\n  - wall\nmodel: {:?}\nembeddings_dir: {:?}\n",
                video("h264_gop250.mp4"),
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip"),
                dir.path().join("embeddings"),
            ),
        )
        .unwrap();
        let port = crate::common::free_addr().port();
        let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
        let log = dir.path().join("server.log");
        // Everything the server logs at its default level and above (stdout too).
        let env: Vec<(&str, &str)> = token
            .map(|t| ("CLIP_INVESTIGATOR_AUTH_TOKEN", t))
            .into_iter()
            .collect();
        let child =
            crate::common::spawn_serve(&config, addr, &env, crate::common::ServerLog::File(&log));
        let local: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        Self {
            child,
            addr: local,
            log,
            _dir: dir,
        }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http_with(self.addr, "GET", path, "text/plain", b"", headers)
    }

    fn post(
        &self,
        endpoint: &str,
        content_type: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        http_with(self.addr, "POST", endpoint, content_type, body, headers)
    }

    fn frame(&self, headers: &[(&str, &str)]) -> HttpResponse {
        self.post(
            "/api/frame",
            "application/x-www-form-urlencoded",
            format!(
                "video={}&viewer=guard-test&frame=7",
                crate::common::id_of(&video("h264_gop250.mp4"))
            )
            .as_bytes(),
            headers,
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn another_host_name_is_refused_as_dns_rebinding() {
    let server = Server::start("127.0.0.1", None);
    let port = server.addr.port();
    let rebound = format!("evil.example:{port}");
    let page = server.get("/", &[("Host", &rebound)]);
    assert_eq!(page.status, 403, "{}", page.text());
    assert!(page.text().contains("DNS rebinding"), "{}", page.text());
    let frame = server.frame(&[("Host", &rebound)]);
    assert_eq!(frame.status, 403);
    // Its own names work, and it keeps serving after refusals.
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        assert_eq!(server.get("/", &[("Host", &host)]).status, 200, "{host}");
    }
    assert_eq!(server.frame(&[]).status, 200);
}

#[test]
fn requests_from_other_sites_cannot_drive_the_server() {
    let server = Server::start("127.0.0.1", None);
    let own = format!("http://{}", server.addr);
    // What a page on another site can make the user's browser send.
    let foreign: [&[(&str, &str)]; 5] = [
        &[("Origin", "http://evil.example")],
        &[("Origin", "null")],
        &[("Referer", "http://evil.example/attack.html")],
        &[("Sec-Fetch-Site", "cross-site")],
        &[
            ("Origin", "http://127.0.0.1:1"),
            ("Sec-Fetch-Site", "same-site"),
        ],
    ];
    for headers in foreign {
        let frame = server.frame(headers);
        assert_eq!(frame.status, 403, "{headers:?}: {}", frame.text());
        assert!(frame.text().contains("its own pages"), "{}", frame.text());
        let scores = server.post(
            "/api/scores",
            "application/json",
            br#"{"prompts":["wall"]}"#,
            headers,
        );
        assert_eq!(scores.status, 403, "{headers:?}");
    }
    // The page's own requests, and clients that are not browsers, pass.
    let origin = own.as_str();
    assert_eq!(
        server
            .frame(&[("Origin", origin), ("Sec-Fetch-Site", "same-origin")])
            .status,
        200
    );
    assert_eq!(server.frame(&[]).status, 200);
    // Reading the page from another origin is not a change (the browser hides the answer).
    assert_eq!(
        server.get("/", &[("Origin", "http://evil.example")]).status,
        200
    );
}

#[test]
fn an_auth_token_protects_every_endpoint() {
    let server = Server::start("127.0.0.1", Some(TOKEN));
    let page = server.get("/", &[]);
    assert_eq!(page.status, 401);
    assert!(page.text().contains("?token="), "{}", page.text());
    assert!(!page.text().contains(TOKEN));
    assert_eq!(server.frame(&[]).status, 401);
    assert_eq!(
        server.frame(&[("Authorization", "Bearer wrong")]).status,
        401
    );
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(server.frame(&[("Authorization", &bearer)]).status, 200);
    // Opening the page once with ?token= gives the browser a cookie for the rest.
    let first = server.get(&format!("/?frame=3&token={TOKEN}"), &[]);
    assert_eq!(first.status, 200);
    let cookie = first
        .headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .expect("a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(first.headers.to_ascii_lowercase().contains("httponly"));
    assert_eq!(server.frame(&[("Cookie", &cookie)]).status, 200);
    assert_eq!(server.get("/pkg/clip-investigator.js", &[]).status, 401);
}

#[test]
fn binding_beyond_loopback_warns() {
    let server = Server::start("0.0.0.0", None);
    let started = Instant::now();
    while !server.log().contains("not a loopback address") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log().contains("auth_token"), "{}", server.log());
}

/// Every page, asset and server function, with good and bad arguments.
fn everything(server: &Server, headers: &[(&str, &str)]) -> Vec<(String, HttpResponse)> {
    let mut answers = Vec::new();
    for path in [
        "/",
        "/?frame=5",
        "/?frame=abc&p=wall",
        "/no-such-page",
        "/pkg/../config.yaml",
    ] {
        answers.push((format!("GET {path}"), server.get(path, headers)));
    }
    let site = PathBuf::from(server::web::site_root()).join("pkg");
    for entry in std::fs::read_dir(&site).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = format!("/pkg/{name}");
        answers.push((format!("GET {path}"), server.get(&path, headers)));
    }
    let form = "application/x-www-form-urlencoded";
    let id = crate::common::id_of(&video("h264_gop250.mp4"));
    let status = format!("video={id}");
    let frame = format!("video={id}&viewer=secrets&frame=3");
    let scores = format!(r#"{{"video":"{id}","prompts":["wall","grass"]}}"#);
    let mut search = vec![16u8];
    search.extend(id.as_bytes());
    search.extend(b"\x01\x04wall\x00\x04");
    let calls: [(&str, &str, &[u8]); 12] = [
        ("/api/library", form, b""),
        ("/api/video_info", form, b""),
        ("/api/index_status", form, status.as_bytes()),
        ("/api/prompts", form, b""),
        ("/api/frame", form, frame.as_bytes()),
        (
            "/api/frame",
            form,
            b"video=../../etc&viewer=../../etc&frame=-1",
        ),
        ("/api/scores", "application/json", scores.as_bytes()),
        ("/api/scores", "application/json", b"{not json"),
        ("/api/search", "application/x-postcard", &search),
        ("/api/search", "application/x-postcard", b"\xff\xff\xff"),
        ("/api/no_such_function", form, b""),
        (
            "/api/upload?name=x.mp4",
            "application/octet-stream",
            b"not a video",
        ),
    ];
    for (endpoint, content_type, body) in calls {
        answers.push((
            format!("POST {endpoint}"),
            server.post(endpoint, content_type, body, headers),
        ));
    }
    answers
}

#[test]
fn secrets_never_reach_a_response_or_the_log() {
    let server = Server::start("127.0.0.1", Some(TOKEN));
    let bearer = format!("Bearer {TOKEN}");
    let answers = everything(&server, &[("Authorization", &bearer)]);
    assert!(answers.iter().filter(|(_, r)| r.status == 200).count() >= 6);
    for (what, response) in &answers {
        let text = format!("{}\n{}", response.headers, response.text());
        assert!(!text.contains(KEY), "{what} shows the Roboflow key");
        assert!(!text.contains(TOKEN), "{what} shows the auth token");
    }
    // Refusals do not echo what was offered either.
    let refused = server.get("/", &[("Authorization", "Bearer tok-SECRET-guess")]);
    assert!(!refused.text().contains("tok-SECRET-guess"));
    let log = server.log();
    assert!(!log.is_empty());
    assert!(!log.contains(KEY) && !log.contains(TOKEN), "{log}");
    let assets = answers
        .iter()
        .filter(|(w, _)| w.starts_with("GET /pkg/"))
        .count();
    println!(
        "checked {} answers ({assets} site assets{}), and {} bytes of log",
        answers.len(),
        if assets == 0 {
            ": the site is not built yet, `cargo leptos build --release`"
        } else {
            ""
        },
        log.len()
    );
}
