//! The web server: Leptos pages and server functions over axum, with the engine in context.

use std::net::SocketAddr;
use std::sync::Arc;

use app::backend::Backend;
use app::{shell, App};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};

use crate::guard::Guard;
use crate::library::{Library, LibraryBackend};

/// Where cargo-leptos put the WASM, JS and CSS: `LEPTOS_SITE_ROOT`, else `target/site`.
pub fn site_root() -> String {
    std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".to_string())
}

pub fn leptos_options(addr: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("clip-investigator")
        .site_root(site_root())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build()
}

pub fn router(library: Arc<Library>, prompts: Vec<String>, options: LeptosOptions) -> Router {
    let backend = Backend(Arc::new(LibraryBackend {
        library: Arc::clone(&library),
        prompts,
    }));
    let routes = generate_route_list(App);
    Router::new()
        .route(
            crate::upload::UPLOAD_PATH,
            axum::routing::post(move |query, body| crate::upload::upload(library, query, body)),
        )
        .leptos_routes_with_context(
            &options,
            routes,
            move || provide_context(backend.clone()),
            {
                let options = options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(options)
}

/// server_fn answers every error with 500; a request whose arguments were wrong gets 400 (and
/// an id that names no video 404), so clients and logs can tell their mistakes from ours.
async fn server_fn_error_status(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !response
            .headers()
            .contains_key(leptos::server_fn::error::SERVER_FN_ERROR_HEADER)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Error answers are short messages; a longer one keeps its 500 and loses its body.
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return axum::response::Response::from_parts(parts, axum::body::Body::empty());
    };
    parts.status = StatusCode::from_u16(app::api::error_status(&bytes))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Serves until Ctrl-C; `guard` decides which requests reach the app.
pub async fn serve(
    library: Arc<Library>,
    prompts: Vec<String>,
    addr: SocketAddr,
    guard: Guard,
) -> Result<(), String> {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "listening on {addr}, which is not a loopback address: anyone who can reach it can use this server{}",
            if guard.has_token() { " if they know its auth_token" } else { ". Set `auth_token` in the config to require a token." }
        );
    }
    let options = leptos_options(addr);
    let pkg = std::path::Path::new(options.site_root.as_ref()).join("pkg");
    if !pkg.is_dir() {
        tracing::warn!(
            "{} does not exist: the page will not hydrate. Build the site with `cargo leptos build --release` or set LEPTOS_SITE_ROOT.",
            pkg.display()
        );
    }
    // Search uploads an image (postcard writes bytes of 128 and over in two bytes, so twice
    // its limit); everything else is small.
    let body_limit = 2 * app::api::MAX_SEARCH_IMAGE_BYTES + 64 * 1024;
    let mut guard = guard.with_max_body(body_limit as u64);
    if let Some((folder, max_upload)) = library.upload_target() {
        crate::upload::remove_abandoned_uploads(folder);
        guard = guard.with_max_upload(max_upload);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}. Is another server running there? Pick another with --addr."))?;
    println!("CLIP Video Investigator: open http://{addr}");
    axum::serve(
        listener,
        router(library, prompts, options)
            .layer(axum::extract::DefaultBodyLimit::max(body_limit))
            .layer(axum::middleware::from_fn(server_fn_error_status))
            .layer(axum::middleware::from_fn_with_state(
                guard,
                crate::guard::check,
            ))
            .into_make_service(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| format!("server error: {e}"))
}
