//! Any bytes as the arguments of each server function, decoded as server_fn decodes them (form
//! encoding through serde_qs, JSON, postcard), then through the same checks the functions run.
//! Refused or accepted, never a panic.
#![no_main]

use app::api::{Adapt, GetFrame, GetIndexStatus, GetScores, GetVideoInfo, LookAt, SearchFrames};
use investigator_core::adapt::{is_adapter_id, MAX_FOLDS};
use investigator_core::requests::{check_look_span, check_prompts};
use investigator_core::types::{is_valid_model_id, is_valid_video_id, is_valid_viewer_id};
use libfuzzer_sys::fuzz_target;

/// server_fn's form decoder: `serde_qs::Config::new(5, false)` (server_fn 0.8, codec/url.rs).
fn form<T: serde::de::DeserializeOwned>(data: &[u8]) -> Option<T> {
    let text = std::str::from_utf8(data).ok()?;
    serde_qs::Config::new(5, false).deserialize_str(text).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 7 {
        0 => {
            if let Some(args) = form::<GetFrame>(body) {
                let _ = is_valid_video_id(&args.video) && is_valid_viewer_id(&args.viewer);
            }
        }
        1 => {
            if let Some(args) = form::<GetVideoInfo>(body) {
                let _ = args.video.as_deref().map(is_valid_video_id);
            }
        }
        2 => {
            if let Some(args) = form::<GetIndexStatus>(body) {
                let _ = is_valid_video_id(&args.video);
                let _ = args.model.as_deref().map(is_valid_model_id);
            }
        }
        5 => {
            if let Some(args) = form::<LookAt>(body) {
                let _ = is_valid_video_id(&args.video) && check_look_span(args.from, args.to).is_ok();
                let _ = args.model.as_deref().map(is_valid_model_id);
            }
        }
        3 => {
            if let Ok(args) = serde_json::from_slice::<GetScores>(body) {
                let _ = is_valid_video_id(&args.video);
                let _ = args.model.as_deref().map(is_valid_model_id);
                let _ = check_prompts(&args.prompts);
                let _ = args.adapters.iter().all(|id| is_adapter_id(id));
            }
        }
        6 => {
            if let Ok(args) = serde_json::from_slice::<Adapt>(body) {
                let _ = is_valid_video_id(&args.video);
                let _ = args.model.as_deref().map(is_valid_model_id);
                let _ = check_prompts(std::slice::from_ref(&args.request.prompt));
                let _ = args.request.folds.map(|k| (2..=MAX_FOLDS).contains(&k));
            }
        }
        _ => {
            if let Ok(args) = postcard::from_bytes::<SearchFrames>(body) {
                let _ = is_valid_video_id(&args.video);
                let _ = args.model.as_deref().map(is_valid_model_id);
                if let Some(text) = &args.text {
                    let _ = check_prompts(std::slice::from_ref(text));
                }
            }
        }
    }
});
