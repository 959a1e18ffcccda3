# Sourced by the other scripts: one place for paths shared by builds, tests and CI.
# Cargo's target dir lives outside the clone so every checkout (and CI) builds incrementally.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clip-investigator/target}"
export PATH="$HOME/.cargo/bin:$PWD/end2end/node_modules/.bin:$PATH"
# cargo-leptos writes the site (WASM, JS, CSS) here; the server reads it from here.
export LEPTOS_SITE_ROOT="${LEPTOS_SITE_ROOT:-$CARGO_TARGET_DIR/site}"
# ONNX Runtime's shared library (scripts/setup.sh fetches it from PyPI's onnxruntime wheel);
# the server loads it at run time for the image tower (ort's "load-dynamic" mode).
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$HOME/.cache/clip-investigator/onnxruntime/libonnxruntime.so}"
