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

pub fn revoke(url: &str) {
    let _ = web_sys::Url::revoke_object_url(url);
}

/// Sets `key=value` in the address bar without a navigation, keeping the other parameters.
pub fn replace_query_param(key: &str, value: &str) {
    let window = leptos::prelude::window();
    let location = window.location();
    let (Ok(path), Ok(search)) = (location.pathname(), location.search()) else {
        return;
    };
    let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search) else {
        return;
    };
    params.set(key, value);
    let query: String = params.to_string().into();
    if let Ok(history) = window.history() {
        let _ =
            history.replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}?{query}")));
    }
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
