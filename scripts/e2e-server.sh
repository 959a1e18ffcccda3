#!/usr/bin/env bash
# Started by Playwright (end2end/playwright.config.ts): makes the 720p test video whose frames
# carry their index, then serves it with the release build on 127.0.0.1:$E2E_PORT, indexed with
# the tiny CLIP fixture.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bin="$CARGO_TARGET_DIR/release/clip-investigator"
dir="$CARGO_TARGET_DIR/e2e"
mkdir -p "$dir"
video="$dir/pattern720.mp4"
# The test videos come from the testvideo crate's own small binary (not part of the app).
make_test_video() { cargo run --quiet -p testvideo --bin make-test-video -- "$@"; }
[ -f "$video" ] || make_test_video "$video" --frames 600 --keyframe-interval 60
# A library folder, fresh each run: one more video, and room for the upload test.
library="$dir/library"
rm -rf "$library"
mkdir -p "$library"
[ -f "$dir/short.mp4" ] || make_test_video "$dir/short.mp4" --frames 90 --keyframe-interval 30
cp "$dir/short.mp4" "$library/short.mp4"
# Long enough that its coarse-to-fine index is seen refining (progressive.spec.ts).
[ -f "$dir/long.mp4" ] || make_test_video "$dir/long.mp4" --frames 2400 --keyframe-interval 250
cp "$dir/long.mp4" "$library/long.mp4"
# Indexed afresh each run, as on a new machine: progressive.spec.ts watches an index refine.
rm -rf "$dir/embeddings"
cat > "$dir/config.yaml" <<YAML
roboflow_api_key: ""
video_path: "$video"
CLIP:
  - wall
# Tiny random-weight fixtures: real code paths, seconds to index. The first is the default;
# the page picks and compares the others (models.spec.ts).
models:
  - "$PWD/server/tests/fixtures/tiny-clip"
  - "$PWD/server/tests/fixtures/tiny-clip-gelu"
  - "$PWD/server/tests/fixtures/tiny-siglip"
embeddings_dir: "$dir/embeddings"
library_dirs: ["$library"]
# Clips longer than this are refused (the end-to-end tests check the refusal).
clip_max_s: 10
# Display proxies for videos with sparse keyframes (long.mp4); E2E_DISPLAY_PROXY=false measures
# clicks without them (serving.spec.ts).
display_proxy: ${E2E_DISPLAY_PROXY:-true}
YAML
exec "$bin" serve --config "$dir/config.yaml" --addr "127.0.0.1:${E2E_PORT:-3100}"
