//! WASM entry: hydrates the page that the server rendered.

// The page is one deeply nested view type; its layout needs a higher query depth.
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
