//! The player: a frame view fed with JPEGs from the server's frame URLs, paced by the client.
//!
//! Playback is driven by a clock, not by the arrival of frames: at time `t` after Play the
//! playhead is the frame whose presentation time is the start frame's plus `t`. While playing,
//! the next second of frames comes in one streamed request (`/frames/…`), asked for before the
//! buffer runs dry, so the viewer never waits one round trip per frame; a frame that arrives
//! after its time is skipped rather than slowing the clock. A seek, a click or a pause asks for
//! exactly one frame (`/frame/…/N.jpg`, which the browser keeps: a frame seen once is not
//! fetched again).

use leptos::prelude::*;

use investigator_core::types::{format_time, parse_frame_param, VideoInfo};

/// While playing, the next stream is asked for when fewer than this share of a second of
/// frames lies ahead of the playhead.
#[cfg(feature = "hydrate")]
const REFILL_BELOW_S: f64 = 0.5;
/// Seconds of frames one stream carries.
#[cfg(feature = "hydrate")]
const STREAM_S: f64 = 1.0;

/// Reactive state of one tab's player; cheap to copy into event handlers.
#[derive(Clone, Copy)]
pub struct PlayerState {
    pub info: RwSignal<VideoInfo>,
    /// The frame the clock (or the last seek) says should be on screen.
    pub playhead: RwSignal<u64>,
    pub playing: RwSignal<bool>,
    /// The frame and object URL given to the `<img>`.
    pub source: RwSignal<Option<(u64, String)>>,
    /// The frame whose image has finished loading in the `<img>`.
    pub shown: RwSignal<Option<u64>>,
    pub error: RwSignal<Option<String>>,
    /// Frames shown and skipped since the last Play.
    pub displayed: RwSignal<u64>,
    pub dropped: RwSignal<u64>,
    #[cfg(feature = "hydrate")]
    client: StoredValue<client::Loader, LocalStorage>,
}

impl PlayerState {
    pub fn new(info: VideoInfo, start: u64) -> Self {
        Self {
            info: RwSignal::new(info),
            playhead: RwSignal::new(start),
            playing: RwSignal::new(false),
            source: RwSignal::new(None),
            shown: RwSignal::new(None),
            error: RwSignal::new(None),
            displayed: RwSignal::new(0),
            dropped: RwSignal::new(0),
            #[cfg(feature = "hydrate")]
            client: StoredValue::new_local(client::Loader::new()),
        }
    }

    pub fn last_frame(&self) -> u64 {
        self.info.with_untracked(VideoInfo::last_frame)
    }

    /// The state for `info`, opened at the frame `?frame=` asks for (or 0, with the reason).
    pub fn from_param(info: VideoInfo, frame_param: Option<&str>) -> Self {
        let (start, start_error) = match frame_param.map(|raw| parse_frame_param(raw, info.frames))
        {
            None => (0, None),
            Some(Ok(frame)) => (frame, None),
            Some(Err(error)) => (0, Some(error.to_string())),
        };
        let state = Self::new(info, start);
        state.error.set(start_error);
        state
    }
}

/// `overlay` is drawn over the frame (it fills the frame's box); `children` go below the
/// controls.
#[component]
pub fn Player(
    state: PlayerState,
    #[prop(optional, into)] overlay: Option<ViewFn>,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    let hydrated = RwSignal::new(false);

    // Effects run only in the browser: load the first frame once hydrated.
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        {
            client::start(state);
        }
        hydrated.set(true);
    });

    let on_play = move |_| {
        state.error.set(None);
        play(state)
    };
    let on_pause = move |_| pause(state);
    let on_reset = move |_| {
        state.error.set(None);
        pause(state);
        seek(state, 0);
    };
    let on_slider = move |ev: leptos::ev::Event| {
        if let Ok(frame) = event_target_value(&ev).parse::<u64>() {
            state.error.set(None);
            seek(state, frame);
        }
    };

    let info = state.info;
    let counter = move || {
        format!(
            "Frame {} / {}",
            state.playhead.get(),
            info.with(VideoInfo::last_frame)
        )
    };
    let time = move || {
        format!(
            "{} / {}",
            format_time(info.with(|i| i.time_s(state.playhead.get()))),
            format_time(info.with(VideoInfo::duration_s))
        )
    };
    let size = move || {
        info.with(|i| {
            let estimate = if i.exact_count {
                ""
            } else {
                " (estimated, counting…)"
            };
            format!(
                "{}×{} · {:.2} fps · {} frames{estimate}",
                i.width, i.height, i.fps, i.frames
            )
        })
    };

    view! {
        <section id="player" class="player" data-hydrated=move || hydrated.get().to_string()>
            <header class="video-header" id="video-meta"
                data-fps=move || info.with(|i| i.fps.to_string())
                data-frames=move || info.with(|i| i.frames.to_string())
                data-exact-count=move || info.with(|i| i.exact_count.to_string())>
                <h2 id="video-name">{move || info.with(|i| i.name.clone())}</h2>
                <span id="video-size">{size}</span>
            </header>
            {move || state.error.get().map(|message| view! {
                <p id="error" class="error" role="alert">{message}</p>
            })}
            <div class="frame-box">
                <img id="frame-view" alt="video frame"
                    width=move || info.with(|i| i.width)
                    height=move || info.with(|i| i.height)
                    src=move || state.source.get().map(|(_, url)| url)
                    data-frame=move || state.shown.get().map(|f| f.to_string())
                    on:load=move |_| state.shown.set(state.source.get_untracked().map(|(f, _)| f))
                />
                {overlay.map(|overlay| overlay.run())}
            </div>
            <div class="controls">
                <button id="btn-play" on:click=on_play disabled=move || state.playing.get()>"Play"</button>
                <button id="btn-pause" on:click=on_pause disabled=move || !state.playing.get()>"Pause"</button>
                <button id="btn-reset" on:click=on_reset>"Reset"</button>
                <span id="frame-counter" class="counter" data-frame=move || state.playhead.get().to_string()>{counter}</span>
                <span id="frame-time" class="time">{time}</span>
                <a id="open-frame" class="open-frame" target="_blank" rel="noopener"
                    title="this frame at full display size, as an ordinary image URL"
                    href=move || info.with(|i| {
                        investigator_core::routes::frame_url(&i.id, state.playhead.get(), None, &i.version)
                    })>"Open frame as image"</a>
            </div>
            <input id="frame-slider" class="slider" type="range" min="0"
                max=move || info.with(VideoInfo::last_frame).to_string()
                prop:value=move || state.playhead.get().to_string()
                on:input=on_slider
                aria-label="frame"
            />
            <p id="playback-stats" class="stats"
                data-displayed=move || state.displayed.get().to_string()
                data-dropped=move || state.dropped.get().to_string()>
                {move || format!("shown {} · skipped {}", state.displayed.get(), state.dropped.get())}
            </p>
            {children.map(|children| children())}
        </section>
    }
}

pub fn play(state: PlayerState) {
    #[cfg(feature = "hydrate")]
    client::play(state);
    #[cfg(not(feature = "hydrate"))]
    state.playing.set(true);
}

pub fn pause(state: PlayerState) {
    #[cfg(feature = "hydrate")]
    client::pause(state);
    #[cfg(not(feature = "hydrate"))]
    state.playing.set(false);
}

pub fn seek(state: PlayerState, frame: u64) {
    let frame = frame.min(state.last_frame());
    #[cfg(feature = "hydrate")]
    {
        client::seek(state, frame);
        crate::browser::replace_query_param("frame", &frame.to_string());
    }
    #[cfg(not(feature = "hydrate"))]
    state.playhead.set(frame);
}

#[cfg(feature = "hydrate")]
mod client {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use leptos::prelude::*;
    use leptos::task::spawn_local;

    use super::{PlayerState, REFILL_BELOW_S, STREAM_S};
    use crate::api::get_video_info;
    use crate::browser;
    use investigator_core::routes::{frame_url, frames_url, MAX_STREAM_FRAMES};

    /// Browser-side bookkeeping that never leaves the tab.
    pub struct Loader {
        viewer: String,
        /// Bumped by every seek, play and pause; answers to older requests are dropped.
        generation: u64,
        /// Frame requests sent and not yet answered.
        in_flight: usize,
        /// A seek made while a request was in flight; sent when it returns.
        pending_seek: Option<u64>,
        next_fetch: u64,
        /// Frames that arrived ahead of their time while playing.
        buffered: BTreeMap<u64, String>,
        /// The frame last handed to the `<img>`.
        on_screen: Option<u64>,
        /// Playback clock: page time (ms) and frame at the last Play or seek.
        clock: Option<(f64, u64)>,
        ticker: Option<IntervalHandle>,
    }

    impl Loader {
        pub fn new() -> Self {
            Self {
                viewer: browser::random_viewer_id(),
                generation: 0,
                in_flight: 0,
                pending_seek: None,
                next_fetch: 0,
                buffered: BTreeMap::new(),
                on_screen: None,
                clock: None,
                ticker: None,
            }
        }

        fn drop_buffered(&mut self) {
            for url in std::mem::take(&mut self.buffered).into_values() {
                browser::revoke(&url);
            }
        }
    }

    /// Runs `f` on this tab's loader; the loader lives as long as the page.
    fn with_loader<U: Default>(state: PlayerState, f: impl FnOnce(&mut Loader) -> U) -> U {
        state.client.try_update_value(f).unwrap_or_default()
    }

    pub fn start(state: PlayerState) {
        let frame = state.playhead.get_untracked();
        seek(state, frame);
        if !state.info.with_untracked(|i| i.exact_count) {
            poll_exact_count(state);
        }
    }

    /// While the server is still counting frames, refresh the video's metadata.
    fn poll_exact_count(state: PlayerState) {
        let handle = StoredValue::new_local(None::<IntervalHandle>);
        let interval = set_interval_with_handle(
            move || {
                spawn_local(async move {
                    let video = state.info.with_untracked(|i| i.id.clone());
                    if let Ok(info) = get_video_info(Some(video)).await {
                        let exact = info.exact_count;
                        state.info.set(info);
                        if exact {
                            if let Some(h) = handle.get_value() {
                                h.clear();
                            }
                        }
                    }
                });
            },
            Duration::from_secs(2),
        );
        handle.set_value(interval.ok());
    }

    pub fn seek(state: PlayerState, frame: u64) {
        state.playhead.set(frame);
        let playing = state.playing.get_untracked();
        let request_now = with_loader(state, |loader| {
            loader.generation += 1;
            loader.drop_buffered();
            if playing {
                loader.clock = Some((browser::now_ms(), frame));
                loader.next_fetch = frame;
                None
            } else if loader.in_flight > 0 {
                loader.pending_seek = Some(frame);
                None
            } else {
                Some(loader.generation)
            }
        });
        match request_now {
            Some(generation) => request(state, frame, generation),
            None if playing => tick(state),
            None => {}
        }
    }

    pub fn play(state: PlayerState) {
        if state.playing.get_untracked() {
            return;
        }
        let last = state.last_frame();
        let mut frame = state.playhead.get_untracked();
        if frame >= last {
            frame = 0; // Play at the end starts over, as video players do.
            state.playhead.set(0);
        }
        state.playing.set(true);
        state.displayed.set(0);
        state.dropped.set(0);
        let ticker = set_interval_with_handle(move || tick(state), Duration::from_millis(5)).ok();
        with_loader(state, |loader| {
            loader.generation += 1;
            loader.pending_seek = None;
            loader.drop_buffered();
            loader.clock = Some((browser::now_ms(), frame));
            // The frame on screen needs no second request.
            loader.next_fetch = if loader.on_screen == Some(frame) {
                frame + 1
            } else {
                frame
            };
            if let Some(old) = std::mem::replace(&mut loader.ticker, ticker) {
                old.clear();
            }
        });
        tick(state);
    }

    pub fn pause(state: PlayerState) {
        state.playing.set(false);
        let frame = state.playhead.get_untracked();
        let needs_request = with_loader(state, |loader| {
            if let Some(ticker) = loader.ticker.take() {
                ticker.clear();
            }
            loader.generation += 1;
            loader.clock = None;
            loader.drop_buffered();
            // Show exactly the playhead frame, even if it had not arrived yet.
            (loader.on_screen != Some(frame)).then_some(loader.generation)
        });
        if let Some(generation) = needs_request {
            if state.client.with_value(|l| l.in_flight > 0) {
                with_loader(state, |l| l.pending_seek = Some(frame));
            } else {
                request(state, frame, generation);
            }
        }
        browser::replace_query_param("frame", &frame.to_string());
    }

    /// One step of the playback clock: advance the playhead, show the newest frame that is due,
    /// and keep the next frames coming.
    fn tick(state: PlayerState) {
        if !state.playing.get_untracked() {
            return;
        }
        let last = state.last_frame();
        let Some((t0, f0)) = state.client.with_value(|l| l.clock) else {
            return;
        };
        // The frame whose presentation time has come (variable frame rates included).
        let elapsed_s = (browser::now_ms() - t0) / 1000.0;
        let due = state
            .info
            .with_untracked(|i| i.frame_at_s(i.time_s(f0) + elapsed_s))
            .clamp(f0, last);
        if state.playhead.get_untracked() != due {
            state.playhead.set(due);
        }
        let fps = state.info.with_untracked(|i| i.fps).max(1.0);
        let stream = ((fps * STREAM_S).round() as u64).clamp(8, MAX_STREAM_FRAMES);
        let refill = ((fps * REFILL_BELOW_S).round() as u64).max(4);

        let (show, fetch) = with_loader(state, |loader| {
            let show = loader
                .buffered
                .range(..=due)
                .next_back()
                .map(|(&f, _)| f)
                .filter(|&f| loader.on_screen.is_none_or(|shown| f > shown));
            let show = show.map(|f| {
                let skipped = loader
                    .on_screen
                    .map_or(0, |shown| f.saturating_sub(shown + 1));
                let url = loader.buffered.remove(&f).unwrap_or_default();
                let stale: Vec<u64> = loader.buffered.range(..f).map(|(&k, _)| k).collect();
                for k in stale {
                    if let Some(url) = loader.buffered.remove(&k) {
                        browser::revoke(&url);
                    }
                }
                loader.on_screen = Some(f);
                (f, url, skipped)
            });
            // Fell behind: skip to what is due instead of fetching frames already late.
            loader.next_fetch = loader.next_fetch.max(due);
            let fetch = (loader.in_flight == 0
                && loader.next_fetch <= last
                && loader.next_fetch < due + refill)
                .then(|| {
                    let from = loader.next_fetch;
                    let count = stream.min(last + 1 - from);
                    loader.next_fetch = from + count;
                    (from, count, due, loader.generation)
                });
            (show, fetch)
        });

        if let Some((frame, url, skipped)) = show {
            state.displayed.update(|n| *n += 1);
            state.dropped.update(|n| *n += skipped);
            display(state, frame, url);
        }
        if let Some((from, count, at, generation)) = fetch {
            request_stream(state, from, count, at, generation);
        }
        if due == last && state.client.with_value(|l| l.on_screen) == Some(last) {
            pause(state);
        }
    }

    fn display(state: PlayerState, frame: u64, url: String) {
        let previous = state.source.get_untracked();
        state.source.set(Some((frame, url)));
        // The <img> now points at the new URL, so the old one can go.
        if let Some((_, old)) = previous {
            browser::revoke(&old);
        }
    }

    /// Exactly `frame`, alone: a seek, a click, a pause.
    fn request(state: PlayerState, frame: u64, generation: u64) {
        let viewer = with_loader(state, |loader| {
            loader.in_flight += 1;
            loader.viewer.clone()
        });
        let (video, version) = state
            .info
            .with_untracked(|i| (i.id.clone(), i.version.clone()));
        let base = frame_url(&video, frame, browser::frame_view_width(), &version);
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}p=seek&viewer={viewer}");
        spawn_local(async move {
            let answer = browser::fetch_frame(&url).await;
            on_answer(state, frame, generation, answer);
        });
    }

    /// The next `count` frames from `from`, streamed: playback's prefetch.
    fn request_stream(state: PlayerState, from: u64, count: u64, at: u64, generation: u64) {
        let viewer = with_loader(state, |loader| {
            loader.in_flight += 1;
            loader.viewer.clone()
        });
        let video = state.info.with_untracked(|i| i.id.clone());
        let url = frames_url(
            &video,
            from,
            count,
            at,
            browser::frame_view_width(),
            &viewer,
        );
        spawn_local(async move {
            let read = browser::read_frame_stream(&url, |frame, url| {
                let current = with_loader(state, |l| l.generation == generation);
                if !current || !state.playing.get_untracked() {
                    browser::revoke(&url);
                    return false;
                }
                with_loader(state, |l| {
                    if l.on_screen.is_some_and(|shown| frame <= shown) {
                        browser::revoke(&url);
                    } else if let Some(old) = l.buffered.insert(frame, url) {
                        browser::revoke(&old);
                    }
                });
                tick(state);
                true
            })
            .await;
            let current = with_loader(state, |loader| {
                loader.in_flight = loader.in_flight.saturating_sub(1);
                loader.generation == generation
            });
            if let (Err(message), true) = (read, current) {
                state.error.set(Some(message));
                if state.playing.get_untracked() {
                    pause(state);
                }
            }
            let pending = with_loader(state, |l| l.pending_seek.take().map(|f| (f, l.generation)));
            match pending {
                Some((frame, generation)) => request(state, frame, generation),
                None => tick(state),
            }
        });
    }

    fn on_answer(state: PlayerState, frame: u64, generation: u64, answer: Result<String, String>) {
        let current = with_loader(state, |loader| {
            loader.in_flight = loader.in_flight.saturating_sub(1);
            loader.generation == generation
        });
        if current {
            match answer {
                Ok(url) if state.playing.get_untracked() => {
                    with_loader(state, |l| {
                        if let Some(old) = l.buffered.insert(frame, url) {
                            browser::revoke(&old);
                        }
                    });
                }
                Ok(url) => {
                    with_loader(state, |l| l.on_screen = Some(frame));
                    display(state, frame, url);
                }
                Err(message) => {
                    state.error.set(Some(message));
                    if state.playing.get_untracked() {
                        pause(state);
                    }
                }
            }
        } else if let Ok(url) = answer {
            browser::revoke(&url);
        }
        let pending = with_loader(state, |l| l.pending_seek.take().map(|f| (f, l.generation)));
        if let Some((frame, generation)) = pending {
            request(state, frame, generation);
        } else {
            tick(state);
        }
    }
}
