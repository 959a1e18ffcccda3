#!/usr/bin/env bash
# Runs every test: the Rust workspace's tests, bounded libFuzzer runs, then the Playwright suite
# in headless Chromium against a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
source scripts/env.sh

echo "== layers: no crate or module imports from a layer above its own"
scripts/check_layers.sh
scripts/check_layers.sh --self-test
echo "== cargo test"
cargo test -p store -p investigator-core -p engine -p app -p server -p testvideo
echo "== libFuzzer: config parser, cache decoder, server-function arguments (FUZZ_SECONDS each)"
FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh
echo "== release build (server + WASM), and the end-to-end suite's test-video maker"
cargo leptos build --release
cargo build -p testvideo --bin make-test-video
echo "== Playwright (headless Chromium)"
cd end2end
npx playwright test
