#!/usr/bin/env bash
# Measures new-prompt-to-curve time in the page on a 1-hour 30 fps video indexed at 1 fps with
# the tiny CLIP fixture (the video is generated, ~60 MB, under $CARGO_TARGET_DIR/measure).
# Needs a release build (`cargo leptos build --release`) and end2end's npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bin="$CARGO_TARGET_DIR/release/clip-investigator"
dir="$CARGO_TARGET_DIR/measure"
mkdir -p "$dir"
video="$dir/hour.mp4"
[ -f "$video" ] || ffmpeg -loglevel error -y -f lavfi -i testsrc=size=320x180:rate=30 -t 3600 \
  -c:v libx264 -preset ultrafast -g 300 -pix_fmt yuv420p "$video"
cat > "$dir/config.yaml" <<YAML
video_path: "$video"
CLIP:
  - a test pattern
  - a clock
model: "$PWD/server/tests/fixtures/tiny-clip"
embeddings_dir: "$dir/embeddings"
sample_fps: 1
YAML
"$bin" index "$video" --config "$dir/config.yaml" --json
"$bin" serve --config "$dir/config.yaml" --addr 127.0.0.1:3400 > "$dir/server.log" 2>&1 &
server=$!
trap 'kill $server' EXIT
sleep 3
(cd end2end && URL=http://127.0.0.1:3400/ node measure/new-prompt-hour.cjs)
