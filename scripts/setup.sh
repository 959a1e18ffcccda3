#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and run the app; anything already there
# is skipped. `--tests` also installs what only the tests need (the nightly toolchain and
# cargo-fuzz for the libFuzzer runs); scripts/test.sh passes it, scripts/run.sh does not.
set -euo pipefail
for_tests=false
[ "${1:-}" = --tests ] && for_tests=true
cd "$(dirname "$0")/.."
source scripts/env.sh

CARGO_LEPTOS_VERSION=0.3.11
WASM_BINDGEN_VERSION=0.2.130 # must equal the wasm-bindgen pinned in Cargo.toml

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
# FFmpeg's libraries (decoding, through ffmpeg-next) and the ffmpeg command (test videos).
for pkg in libopencv-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev clang libclang-dev pkg-config ffmpeg chromium curl unzip; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# Build tools are compiled without their own fat LTO in one codegen unit (cargo-leptos asks for
# both): on 2 cores that link step alone took minutes, for tools whose speed does not matter
# here. Settings from the environment override the package's [profile.release].
quick_install() {
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install "$@"
}

if $for_tests; then
  # libFuzzer runs (scripts/fuzz.sh) need nightly and cargo-fuzz; the app builds on stable.
  CARGO_FUZZ_VERSION=0.13.2
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    quick_install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
  fi
fi

if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
  # --ignore-rust-version: one of its dependencies declares a newer rustc than it needs.
  quick_install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --ignore-rust-version
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  # cargo-leptos would otherwise try to download this CLI.
  quick_install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

# Playwright and wasm-opt (npm's binaryen; Debian's older binaryen breaks hydration).
if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

# ONNX Runtime's CPU library, taken from PyPI's onnxruntime wheel (a zip) and checked by hash;
# the server loads it at run time (scripts/env.sh sets ORT_DYLIB_PATH). Never committed.
ORT_VERSION=1.32.0
ORT_WHEEL=onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_WHEEL_URL=https://files.pythonhosted.org/packages/1d/46/e6f356c9539d2eed44126de3421a81e217da2ad91b22dc11b379cb1e384f/$ORT_WHEEL
ORT_WHEEL_SHA256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
if [ "$(uname -m)" = x86_64 ] && [ ! -e "$ORT_DYLIB_PATH.$ORT_VERSION" ]; then
  echo "setup: fetching ONNX Runtime $ORT_VERSION from PyPI"
  ort_dir=$(dirname "$ORT_DYLIB_PATH")
  mkdir -p "$ort_dir"
  tmp=$(mktemp -d)
  curl -fsSL --retry 3 -o "$tmp/$ORT_WHEEL" "$ORT_WHEEL_URL"
  echo "$ORT_WHEEL_SHA256  $tmp/$ORT_WHEEL" | sha256sum -c --quiet
  unzip -q -j -o "$tmp/$ORT_WHEEL" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" -d "$tmp"
  mv "$tmp/libonnxruntime.so.$ORT_VERSION" "$ORT_DYLIB_PATH.$ORT_VERSION"
  ln -sfn "$(basename "$ORT_DYLIB_PATH").$ORT_VERSION" "$ORT_DYLIB_PATH"
  rm -rf "$tmp"
fi
