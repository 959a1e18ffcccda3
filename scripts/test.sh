#!/usr/bin/env bash
# Runs every test: the Rust workspace's tests, bounded libFuzzer runs, then the Playwright suite
# in headless Chromium against a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
source scripts/env.sh

echo "== layers: no server module imports from a layer above its own"
scripts/check_layers.sh
echo "== cargo test"
cargo test -p store -p app -p server
echo "== libFuzzer: config parser, cache decoder, server-function arguments (FUZZ_SECONDS each)"
FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh
echo "== release build (server + WASM)"
cargo leptos build --release
echo "== Playwright (headless Chromium)"
cd end2end
npx playwright test
