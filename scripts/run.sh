#!/usr/bin/env bash
# Sets up a fresh machine, builds the release app and serves config.yaml's video at
# http://127.0.0.1:3000 (extra arguments go to `clip-investigator serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
source scripts/env.sh
cargo leptos build --release
exec "$CARGO_TARGET_DIR/release/clip-investigator" serve "$@"
