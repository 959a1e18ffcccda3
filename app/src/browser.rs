//! Thin helpers over browser APIs, used only by the hydrated client.

use wasm_bindgen::JsValue;

/// Milliseconds on the page's monotonic clock.
pub fn now_ms() -> f64 {
    leptos::prelude::window()
        .performance()
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// An object URL for JPEG bytes; revoke it with [`revoke`] once no element shows it.
pub fn jpeg_object_url(bytes: &[u8]) -> Result<String, String> {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("image/jpeg");
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(describe)?;
    web_sys::Url::create_object_url_with_blob(&blob).map_err(describe)
}

/// GETs a frame URL and gives an object URL for its JPEG (the browser's HTTP cache answers a
/// frame it has seen); the server's message where it refuses.
pub async fn fetch_frame(url: &str) -> Result<String, String> {
    use wasm_bindgen::JsCast;
    let response = get_ok(url).await?;
    let blob = wasm_bindgen_futures::JsFuture::from(response.blob().map_err(describe)?)
        .await
        .map_err(describe)?
        .dyn_into::<web_sys::Blob>()
        .map_err(describe)?;
    web_sys::Url::create_object_url_with_blob(&blob).map_err(describe)
}

/// GETs `url`; the server's message where it answers with an error.
async fn get_ok(url: &str) -> Result<web_sys::Response, String> {
    use wasm_bindgen::JsCast;
    let response =
        wasm_bindgen_futures::JsFuture::from(leptos::prelude::window().fetch_with_str(url))
            .await
            .map_err(|_| "the server cannot be reached".to_string())?
            .dyn_into::<web_sys::Response>()
            .map_err(describe)?;
    if response.ok() {
        Ok(response)
    } else {
        Err(response_text(&response).await)
    }
}

async fn response_text(response: &web_sys::Response) -> String {
    let text = match response.text() {
        Ok(p) => wasm_bindgen_futures::JsFuture::from(p)
            .await
            .ok()
            .and_then(|t| t.as_string()),
        Err(_) => None,
    };
    let text = text.unwrap_or_default().trim().to_string();
    if text.is_empty() {
        format!("the server answered {}", response.status())
    } else {
        text
    }
}

/// Reads a frame stream (`investigator_core::routes::FRAMES_ROUTE`) as it arrives: each frame
/// goes to `on_frame` with an object URL for its JPEG; `on_frame` returns false to stop reading.
pub async fn read_frame_stream(
    url: &str,
    mut on_frame: impl FnMut(u64, String) -> bool,
) -> Result<(), String> {
    use wasm_bindgen::JsCast;
    let response = get_ok(url).await?;
    let Some(body) = response.body() else {
        return Ok(());
    };
    let reader = body
        .get_reader()
        .dyn_into::<web_sys::ReadableStreamDefaultReader>()
        .map_err(|_| "the frame stream cannot be read".to_string())?;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = wasm_bindgen_futures::JsFuture::from(reader.read())
            .await
            .map_err(describe)?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .map(|d| d.is_truthy())
            .unwrap_or(true);
        if done {
            return Ok(());
        }
        if let Ok(value) = js_sys::Reflect::get(&chunk, &JsValue::from_str("value")) {
            pending.extend(js_sys::Uint8Array::new(&value).to_vec());
        }
        while pending.len() >= 12 {
            let frame = u64::from_le_bytes(pending[..8].try_into().unwrap_or_default());
            let length = u32::from_le_bytes(pending[8..12].try_into().unwrap_or_default()) as usize;
            if pending.len() < 12 + length {
                break;
            }
            let url = jpeg_object_url(&pending[12..12 + length])?;
            pending.drain(..12 + length);
            if !on_frame(frame, url) {
                let _ = reader.cancel();
                return Ok(());
            }
        }
    }
}

/// The width, in device pixels, that the frame view shows a frame at, in steps of 160 (so
/// that viewers of one size share cached frames); `None` before it is laid out.
pub fn frame_view_width() -> Option<u32> {
    let window = leptos::prelude::window();
    let element = window.document()?.get_element_by_id("frame-view")?;
    let css = element.client_width();
    if css <= 0 {
        return None;
    }
    let device = (f64::from(css) * window.device_pixel_ratio()).ceil() as u32;
    Some(device.div_ceil(160).max(2) * 160)
}

/// A thumbnail of `frame` (320 pixels wide) through `viewer`'s own decoder, as an object URL.
pub async fn fetch_thumbnail(
    video: &str,
    version: &str,
    viewer: &str,
    frame: u64,
) -> Result<String, String> {
    let base = investigator_core::routes::frame_url(video, frame, Some(320), version);
    fetch_frame(&format!("{base}&p=thumb&viewer={viewer}")).await
}

pub fn revoke(url: &str) {
    let _ = web_sys::Url::revoke_object_url(url);
}

/// Sets `key=value` in the address bar without a navigation, keeping the other parameters.
pub fn replace_query_param(key: &str, value: &str) {
    edit_query(|params| params.set(key, value));
}

/// Rewrites the address bar's query with `edit`, through history.replaceState (no navigation).
fn edit_query(edit: impl FnOnce(&web_sys::UrlSearchParams)) {
    let window = leptos::prelude::window();
    let location = window.location();
    let (Ok(path), Ok(search)) = (location.pathname(), location.search()) else {
        return;
    };
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search) else {
        return;
    };
    edit(&params);
    let query: String = params.to_string().into();
    if let Ok(history) = window.history() {
        let _ =
            history.replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}?{query}")));
    }
}

/// Sets `key` to each of `values` (repeated) in the address bar; none removes it.
pub fn set_query_list(key: &str, values: &[String]) {
    edit_query(|params| {
        params.delete(key);
        for v in values {
            params.append(key, v);
        }
    });
}

/// A random id for this tab's playhead on the server.
pub fn random_viewer_id() -> String {
    (0..4)
        .map(|_| format!("{:04x}", (js_sys::Math::random() * 65536.0) as u32))
        .collect()
}

fn describe(error: JsValue) -> String {
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}

/// Writes the view into the address bar (`p` repeated, `smooth`, `view`), keeping `frame`.
pub fn replace_view_params(prompts: &[String], smooth: usize, softmax: bool) {
    edit_query(|params| {
        params.delete("p");
        for p in prompts {
            params.append("p", p);
        }
        if smooth > 1 {
            params.set("smooth", &smooth.to_string());
        } else {
            params.delete("smooth");
        }
        if softmax {
            params.set("view", "softmax");
        } else {
            params.delete("view");
        }
    });
}

/// Keeps the address bar's `model`, `compare` and `diff` on the models shown.
pub fn replace_model_params(model: Option<&str>, compare: Option<&str>, difference: bool) {
    edit_query(|params| {
        for (key, value) in [("model", model), ("compare", compare)] {
            match value {
                Some(value) => params.set(key, value),
                None => params.delete(key),
            }
        }
        if difference && compare.is_some() {
            params.set("diff", "1");
        } else {
            params.delete("diff");
        }
    });
}

pub fn current_url() -> String {
    leptos::prelude::window()
        .location()
        .href()
        .unwrap_or_default()
}

/// Puts `text` on the clipboard where the page may (secure context, user gesture).
pub fn copy_to_clipboard(text: &str) {
    let _ = leptos::prelude::window()
        .navigator()
        .clipboard()
        .write_text(text);
}

/// Saves `text` as a file through a temporary link.
pub fn download_text(name: &str, mime: &str, text: &str) {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    if let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) {
        if let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) {
            download_url(name, &url);
            revoke(&url);
        }
    }
}

pub fn download_url(name: &str, url: &str) {
    use wasm_bindgen::JsCast;
    let document = leptos::prelude::document();
    if let Ok(anchor) = document.create_element("a") {
        if let Ok(anchor) = anchor.dyn_into::<web_sys::HtmlAnchorElement>() {
            anchor.set_href(url);
            anchor.set_download(name);
            anchor.click();
        }
    }
}

/// Sets `key` in the address bar (removes it for `None`) without a navigation.
pub fn set_query_param(key: &str, value: Option<&str>) {
    edit_query(|params| match value {
        Some(v) => params.set(key, v),
        None => params.delete(key),
    });
}

/// Waits `ms` milliseconds (a `setTimeout` as a future).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = leptos::prelude::window()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// GETs `url` and reads its JSON answer.
pub async fn fetch_json(url: &str) -> Result<serde_json::Value, String> {
    use wasm_bindgen::JsCast;
    let response =
        wasm_bindgen_futures::JsFuture::from(leptos::prelude::window().fetch_with_str(url))
            .await
            .map_err(describe)?
            .dyn_into::<web_sys::Response>()
            .map_err(describe)?;
    let text = wasm_bindgen_futures::JsFuture::from(response.text().map_err(describe)?)
        .await
        .map_err(describe)?;
    serde_json::from_str(&text.as_string().unwrap_or_default()).map_err(|e| e.to_string())
}

/// POSTs `url` and saves its answer as a download, under the name the server gives (else
/// `fallback`); the server's message where it refuses.
pub async fn post_download(url: &str, fallback: &str) -> Result<String, String> {
    use wasm_bindgen::JsCast;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    let promise = leptos::prelude::window().fetch_with_str_and_init(url, &init);
    let response = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|_| "the server cannot be reached".to_string())?
        .dyn_into::<web_sys::Response>()
        .map_err(|_| "the server's answer cannot be read".to_string())?;
    if !response.ok() {
        return Err(response_text(&response).await);
    }
    let name = response
        .headers()
        .get("content-disposition")
        .ok()
        .flatten()
        .and_then(|d| {
            d.split("filename=\"")
                .nth(1)
                .map(|n| n.trim_end_matches('"').to_string())
        })
        .unwrap_or_else(|| fallback.to_string());
    let blob = response.blob().map_err(|_| "no body".to_string())?;
    let blob = wasm_bindgen_futures::JsFuture::from(blob)
        .await
        .map_err(|_| "the download was interrupted".to_string())?
        .dyn_into::<web_sys::Blob>()
        .map_err(|_| "the download cannot be read".to_string())?;
    let object =
        web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| "cannot save".to_string())?;
    download_url(&name, &object);
    revoke(&object);
    Ok(name)
}
