//! Which requests reach the app at all. A server on the user's machine is reachable from every
//! web page the user opens, so:
//! - `Host` must name this server (a DNS-rebinding page sends its own name);
//! - a request that can change state (anything but GET/HEAD/OPTIONS; the server functions are
//!   POSTs) must come from this server's own pages: a browser's `Origin`/`Sec-Fetch-Site`
//!   naming another site is refused. Clients that send neither (curl, scripts) are not
//!   browsers driven by another site and pass;
//!   Frame URLs (`/frame/…`, `/frames/…`) are GETs but are held to the same rule, so that
//!   another site cannot show or time this server's frames in its own page;
//! - with `auth_token` set, every request must carry it (header, cookie, or `?token=` once).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The cookie a browser keeps the token in after opening `/?token=…` once.
pub const TOKEN_COOKIE: &str = "clip_investigator_token";

#[derive(Clone)]
pub struct Guard {
    /// Largest request body accepted; bigger declared bodies are refused before reading.
    max_body: Option<u64>,
    /// `POST /api/upload` streams to disk and has its own, larger limit.
    max_upload: Option<(&'static str, u64)>,
    /// `host[:port]` names this server answers to, lower case; `None` = any.
    hosts: Option<Arc<Vec<String>>>,
    token: Option<Arc<str>>,
}

impl Guard {
    /// The names of `addr` (and `localhost` for a loopback address) plus `extra_hosts`; a
    /// server bound to every interface (0.0.0.0) cannot know its names, so it then accepts
    /// any `Host` unless `extra_hosts` lists them.
    pub fn new(addr: SocketAddr, extra_hosts: &[String], token: Option<String>) -> Self {
        let port = addr.port();
        let mut hosts: Vec<String> = extra_hosts
            .iter()
            .map(|h| {
                let h = h.trim().to_ascii_lowercase();
                if h.rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                    && !h.ends_with(']')
                {
                    h
                } else {
                    format!("{h}:{port}")
                }
            })
            .collect();
        let any = addr.ip().is_unspecified() && hosts.is_empty();
        hosts.push(addr.to_string());
        if addr.ip().is_loopback() {
            hosts.extend([
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]);
        }
        Self {
            max_body: None,
            max_upload: None,
            hosts: (!any).then(|| Arc::new(hosts)),
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
        }
    }

    /// Refuses requests that declare a body over `bytes` with 413 before reading it (the
    /// body-limit layer still caps bodies sent without a length).
    pub fn with_max_body(mut self, bytes: u64) -> Self {
        self.max_body = Some(bytes);
        self
    }

    /// The limit for bodies posted to `path` (the upload route, which streams to disk).
    pub fn with_max_upload(mut self, path: &'static str, bytes: u64) -> Self {
        self.max_upload = Some((path, bytes));
        self
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn allows_host(&self, host: &str) -> bool {
        self.hosts
            .as_ref()
            .is_none_or(|hosts| hosts.iter().any(|h| h == &host.to_ascii_lowercase()))
    }

    /// Why `request` is refused, if it is (any path but a frame's).
    #[cfg(test)]
    fn refusal(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Option<Refusal> {
        self.refusal_at(method, "/", headers, query)
    }

    /// Why a request for `path` is refused, if it is.
    fn refusal_at(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Option<Refusal> {
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let host = text(header::HOST)?;
        if !self.allows_host(host) {
            return Some(Refusal::forbidden(format!(
                "this server does not answer to the name {host:?} (a page on another site may be trying to reach it through DNS rebinding). Open it at its own address, or list the name in `allowed_hosts`."
            )));
        }
        let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if changes || investigator_core::routes::is_frame_path(path) {
            if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
                if site != "same-origin" && site != "none" {
                    return Some(Refusal::forbidden(format!(
                        "a request from another site ({site}) was refused: this server takes changes, and shows frames, only to its own pages."
                    )));
                }
            }
            let origin = text(header::ORIGIN).or_else(|| text(header::REFERER));
            if let Some(origin) = origin {
                let origin_host = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    .map(|rest| rest.split('/').next().unwrap_or(""));
                if !origin_host.is_some_and(|h| h.eq_ignore_ascii_case(host)) {
                    return Some(Refusal::forbidden(format!(
                        "a request from {origin} was refused: this server takes changes, and shows frames, only to its own pages."
                    )));
                }
            }
        }
        let token = self.token.as_deref()?;
        let offered = [
            text(header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer ")),
            cookie(headers, TOKEN_COOKIE),
            query.and_then(|q| query_value(q, "token")),
        ];
        if offered
            .iter()
            .flatten()
            .any(|t| same(t.as_bytes(), token.as_bytes()))
        {
            return None;
        }
        Some(Refusal {
            status: StatusCode::UNAUTHORIZED,
            message: "this server needs its auth_token: open it once as http://HOST:PORT/?token=TOKEN (the browser then keeps it in a cookie), or send `Authorization: Bearer TOKEN`.".into(),
        })
    }
}

struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn forbidden(message: String) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message,
        }
    }
}

/// Middleware: refuses what [`Guard`] does not allow, with a plain-text reason.
pub async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let query = request.uri().query().map(str::to_owned);
    if request.headers().get(header::HOST).is_none() {
        return (StatusCode::BAD_REQUEST, "a Host header is required\n").into_response();
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = match guard.max_upload {
        Some((path, bytes)) if request.uri().path() == path => Some(bytes),
        _ => guard.max_body,
    };
    if let (Some(length), Some(limit)) = (declared, limit) {
        if length > limit {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("refused: the request body is {length} bytes; this server takes at most {limit}\n"),
            )
                .into_response();
        }
    }
    if let Some(refusal) = guard.refusal_at(
        request.method(),
        request.uri().path(),
        request.headers(),
        query.as_deref(),
    ) {
        tracing::warn!(
            "refused {} {}: {}",
            request.method(),
            request.uri().path(),
            refusal.status
        );
        return (refusal.status, format!("refused: {}\n", refusal.message)).into_response();
    }
    let token_in_query = query
        .as_deref()
        .and_then(|q| query_value(q, "token"))
        .is_some();
    let mut response = next.run(request).await;
    if let (Some(token), true) = (&guard.token, token_in_query) {
        // Keep the token for the page's own requests; JavaScript cannot read it.
        if let Ok(value) = HeaderValue::from_str(&format!(
            "{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        )) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

fn query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

/// Constant-time equality, so that the time of a refusal does not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn loopback_servers_answer_to_their_own_names_only() {
        let guard = Guard::new("127.0.0.1:3000".parse().unwrap(), &[], None);
        for host in [
            "127.0.0.1:3000",
            "localhost:3000",
            "LOCALHOST:3000",
            "[::1]:3000",
        ] {
            assert!(guard.allows_host(host), "{host}");
        }
        for host in [
            "evil.example:3000",
            "127.0.0.1:3001",
            "localhost",
            "attacker.test",
        ] {
            assert!(!guard.allows_host(host), "{host}");
        }
        let open = Guard::new("0.0.0.0:3000".parse().unwrap(), &[], None);
        assert!(open.allows_host("anything:3000"));
        let named = Guard::new("0.0.0.0:3000".parse().unwrap(), &["lab.local".into()], None);
        assert!(named.allows_host("lab.local:3000") && !named.allows_host("evil:3000"));
    }

    #[test]
    fn changes_from_other_origins_are_refused() {
        let guard = Guard::new("127.0.0.1:3000".parse().unwrap(), &[], None);
        let post = Method::POST;
        let host = ("host", "127.0.0.1:3000");
        assert!(guard.refusal(&post, &headers(&[host]), None).is_none());
        assert!(guard
            .refusal(
                &post,
                &headers(&[host, ("origin", "http://127.0.0.1:3000")]),
                None
            )
            .is_none());
        for bad in [
            ("origin", "http://evil.example"),
            ("origin", "null"),
            ("origin", "http://127.0.0.1:3001"),
            ("referer", "http://evil.example/page"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            let refusal = guard.refusal(&post, &headers(&[host, bad]), None);
            assert_eq!(
                refusal.map(|r| r.status),
                Some(StatusCode::FORBIDDEN),
                "{bad:?}"
            );
        }
        // Reading a page is not a change: another origin's GET only gets the Host check.
        assert!(guard
            .refusal(
                &Method::GET,
                &headers(&[host, ("origin", "http://evil.example")]),
                None
            )
            .is_none());
    }

    #[test]
    fn a_token_is_needed_when_set() {
        let guard = Guard::new("0.0.0.0:3000".parse().unwrap(), &[], Some("s3cret".into()));
        let host = ("host", "10.0.0.5:3000");
        let get = Method::GET;
        let status = |h: &[(&'static str, &str)], q: Option<&str>| {
            guard.refusal(&get, &headers(h), q).map(|r| r.status)
        };
        assert_eq!(status(&[host], None), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            status(&[host, ("authorization", "Bearer nope")], None),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            status(&[host, ("authorization", "Bearer s3cret")], None),
            None
        );
        assert_eq!(
            status(
                &[host, ("cookie", "a=b; clip_investigator_token=s3cret")],
                None
            ),
            None
        );
        assert_eq!(status(&[host], Some("frame=3&token=s3cret")), None);
        assert_eq!(
            status(&[host], Some("token=s3cre")),
            Some(StatusCode::UNAUTHORIZED)
        );
    }
}
