//! The web front: Leptos pages and server functions over axum (`backend` puts the library behind
//! them), the request guard in front, and streamed uploads and excerpt downloads beside them.

pub mod backend;
pub mod dataset;
pub mod excerpt;
pub mod frame_route;
pub mod guard;
pub mod upload;

use std::net::SocketAddr;
use std::sync::Arc;

use app::backend::Backend;
use app::{shell, App};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};

use backend::LibraryBackend;
use engine::library::Library;
use guard::Guard;

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
        explanations: Arc::new(engine::explain::Explanations::new()),
    }));
    let routes = generate_route_list(App);
    let exports = excerpt::Exports::default();
    let excerpt_library = Arc::clone(&library);
    let excerpt_exports = exports.clone();
    Router::new()
        .route(
            excerpt::EXCERPT_PATH,
            axum::routing::post(move |query| {
                excerpt::export(excerpt_library, excerpt_exports, query)
            }),
        )
        .route(
            excerpt::EXCERPT_PROGRESS_PATH,
            axum::routing::get(move |query| excerpt::progress(exports, query)),
        )
        .route(
            investigator_core::routes::DATASET_URL,
            axum::routing::post({
                let library = Arc::clone(&library);
                move |query| dataset::download(library, query)
            }),
        )
        .route(
            investigator_core::routes::FRAME_ROUTE,
            axum::routing::get({
                let library = Arc::clone(&library);
                move |path, query, headers| frame_route::frame(library, path, query, headers)
            }),
        )
        .route(
            investigator_core::routes::FRAMES_ROUTE,
            axum::routing::get({
                let library = Arc::clone(&library);
                move |path, query| frame_route::stream(library, path, query)
            }),
        )
        .route(
            upload::UPLOAD_PATH,
            axum::routing::post(move |query, body| upload::upload(library, query, body)),
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

/// Why the server stopped, or never started.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {error}. Is another server running there? Pick another with --addr.")]
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

/// Serves until Ctrl-C; `guard` decides which requests reach the app.
pub async fn serve(
    library: Arc<Library>,
    prompts: Vec<String>,
    addr: SocketAddr,
    guard: Guard,
) -> Result<(), ServeError> {
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
    let body_limit = 2 * investigator_core::requests::MAX_SEARCH_IMAGE_BYTES + 64 * 1024;
    let mut guard = guard.with_max_body(body_limit as u64);
    if let Some((folder, max_upload)) = library.upload_target() {
        upload::remove_abandoned_uploads(folder);
        guard = guard.with_max_upload(upload::UPLOAD_PATH, max_upload);
    }
    excerpt::remove_abandoned_excerpts(&library.excerpt_target().0);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| ServeError::Listen { addr, error })?;
    println!("CLIP Video Investigator: open http://{addr}");
    axum::serve(
        listener,
        router(library, prompts, options)
            .layer(axum::extract::DefaultBodyLimit::max(body_limit))
            .layer(axum::middleware::from_fn_with_state(guard, guard::check))
            .into_make_service(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(ServeError::Serve)
}
