//! Frame thumbnails of the panels' lists (label next, suspects, error spans), each fetched once
//! and kept as an object URL in `Investigation::thumbs`.

use leptos::prelude::*;
use leptos::task::spawn_local;

use super::Investigation;
use crate::browser;

/// Loads the thumbnail of `frame` once.
pub(super) fn thumbnail(inv: Investigation, frame: u64) {
    if inv.thumbs.with_untracked(|t| t.contains_key(&frame)) {
        return;
    }
    inv.thumbs.update(|t| {
        t.insert(frame, String::new());
    });
    let (video, version) = inv
        .player
        .info
        .with_untracked(|i| (i.id.clone(), i.version.clone()));
    thread_local! {
        static VIEWER: String = browser::random_viewer_id();
    }
    let viewer = VIEWER.with(Clone::clone);
    spawn_local(async move {
        if let Ok(url) = browser::fetch_thumbnail(&video, &version, &viewer, frame).await {
            inv.thumbs.update(|t| {
                t.insert(frame, url);
            });
        }
    });
}
