#!/usr/bin/env bash
# libFuzzer runs of the config parser, the cache decoder and the server functions' argument
# decoding (server/fuzz), FUZZ_SECONDS each (default 60), starting from the committed inputs in
# server/fuzz/seeds/TARGET (crash inputs found so far included, with their fixes in place). New
# inputs go to a scratch folder, so the committed seeds stay as they are. A crash fails the run
# and leaves its input in server/fuzz/artifacts/TARGET/: commit it under seeds/ with the fix.
# Needs the nightly toolchain and cargo-fuzz (scripts/setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seconds=${FUZZ_SECONDS:-60}
# Its own target folder: the fuzz build uses another toolchain and instrumentation.
export CARGO_TARGET_DIR="$HOME/.cache/clip-investigator/fuzz-target"
cd server/fuzz
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in config cache_file server_fn_args; do
  echo "== fuzz $target for ${seconds} s"
  mkdir -p "$scratch/$target"
  # No sanitizer: the code is safe Rust; what libFuzzer catches here is panics, aborts (such as
  # an allocation the input cannot justify), timeouts and memory over -rss_limit_mb.
  cargo +nightly fuzz run --sanitizer none "$target" "$scratch/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 |
    grep -E "^(INFO: seed corpus|#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|thread .* panicked|Done [0-9]+ runs|ERROR|SUMMARY|artifact_prefix|Test unit written)" || true
  status=${PIPESTATUS[0]}
  if [ "$status" != 0 ]; then
    echo "fuzz $target: failed (exit $status); the input is in server/fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
