//! CLIP Video Investigator: the Leptos app shared by the server (SSR) and the browser (hydrate).
//!
//! The UI only: components, server functions and the drawing of the chart. What the page shares
//! with the engine (types, score maths, moments, status texts, the chart's maths, routes and
//! request limits) is `investigator_core`, which links no Leptos; the engine never links this
//! crate (`scripts/check_layers.sh`).

// The page is one deeply nested view type; its layout needs a higher query depth.
#![recursion_limit = "256"]

pub mod api;
#[cfg(feature = "ssr")]
pub mod backend;
#[cfg(feature = "hydrate")]
mod browser;
#[cfg(feature = "hydrate")]
pub mod chart;
pub mod error;
pub mod investigate;
pub mod player;
pub mod search_page;
pub mod status;
pub mod videos_page;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::use_query_map;
use leptos_router::StaticSegment;

use crate::api::get_video_info;
use crate::player::{Player, PlayerState};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/clip-investigator.css"/>
        <Title text="CLIP Video Investigator"/>
        <Router>
            <header class="app-header">
                <h1>"CLIP Video Investigator"</h1>
                <nav>
                    <a id="nav-videos" href="/videos">"Videos"</a>
                    <a id="nav-search" href="/search">"Search"</a>
                </nav>
            </header>
            <main>
                <Routes fallback=|| view! { <p class="error" role="alert">"Page not found."</p> }>
                    <Route path=StaticSegment("") view=PlayerPage/>
                    <Route path=StaticSegment("videos") view=videos_page::VideosPage/>
                    <Route path=StaticSegment("search") view=search_page::SearchPage/>
                </Routes>
            </main>
        </Router>
    }
}

/// The page of one video: `?video=ID` (else the config's `video_path`); `?frame=N` opens it
/// at frame N.
#[component]
fn PlayerPage() -> impl IntoView {
    let query = use_query_map();
    let frame_param = query.with_untracked(|q| q.get("frame"));
    let video = query.with_untracked(|q| q.get("video"));
    let view = query.with_untracked(|q| {
        investigate::ViewParams::parse_with_moments(
            q.get_all("p"),
            q.get_str("smooth"),
            q.get_str("view"),
            q.get_str("m"),
        )
        .with_models(q.get_str("model"), q.get_str("compare"), q.get_str("diff"))
        .with_evaluation(q.get_str("eval"))
        .with_heatmap(q.get_str("heat"), q.get_str("heatm"))
        .with_adapters(q.get_all("ad"))
        .with_panel(q.get_str("tab"))
    });
    let info = Resource::new_blocking(move || video.clone(), get_video_info);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Opening the video…"</p> }>
            {move || {
                let frame_param = frame_param.clone();
                let view = view.clone();
                Suspend::new(async move {
                    match info.await {
                        Ok(info) => {
                            // Share links name the video even when this URL did not.
                            #[cfg(feature = "hydrate")]
                            {
                                let id = info.id.clone();
                                Effect::new(move |_| browser::replace_query_param("video", &id));
                            }
                            let state = PlayerState::from_param(info, frame_param.as_deref());
                            let inv = investigate::Investigation::new(state, &view);
                            view! {
                                <div class="workspace">
                                    <div class="left-column">
                                        <Player state overlay=move || view! { <investigate::HeatmapOverlay inv/> }>
                                            <investigate::HeatmapControls inv/>
                                        </Player>
                                        <investigate::Panels inv/>
                                    </div>
                                    <investigate::Investigator inv initial=view/>
                                </div>
                            }.into_any()
                        }
                        Err(error) => view! {
                            <section id="player" class="player" data-hydrated="true">
                                <p id="error" class="error" role="alert">
                                    {format!("The video cannot be shown: {}", api::error_text(&error))}
                                </p>
                            </section>
                        }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}
