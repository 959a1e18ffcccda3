#!/usr/bin/env bash
# Fails when a server module imports from a layer above its own, or when the store crate (the
# bottom layer) depends on OpenCV, FFmpeg or a model crate. Part of scripts/test.sh.
#
# Layers, bottom first (a module may name only modules of a lower rank; `super::` inside a
# module folder is its own business):
#   0 cache config (the store crate)   1 video testvideo   2 embed   3 index
#   4 frames search clip   5 library   6 web   7 cli
set -euo pipefail
cd "$(dirname "$0")/.."

rank() {
  case "$1" in
    cache | config) echo 0 ;;
    video | testvideo) echo 1 ;;
    embed) echo 2 ;;
    index) echo 3 ;;
    frames | search | clip) echo 4 ;;
    library) echo 5 ;;
    web) echo 6 ;;
    cli) echo 7 ;;
    *) echo "" ;;
  esac
}

failures=0
checked=0
while IFS= read -r file; do
  relative=${file#server/src/}
  module=${relative%%/*}
  module=${module%.rs}
  case "$module" in lib | main) continue ;; esac
  own=$(rank "$module")
  if [ -z "$own" ]; then
    echo "check_layers: server/src/$relative is in no layer: add module '$module' to scripts/check_layers.sh" >&2
    failures=$((failures + 1))
    continue
  fi
  # Every `crate::NAME` the file mentions, in `use` lines and in paths alike (comments too:
  # a doc link upward is a dependency in the reader's head).
  while IFS=: read -r line name; do
    [ -n "$name" ] || continue
    theirs=$(rank "$name")
    checked=$((checked + 1))
    if [ -z "$theirs" ]; then
      echo "server/src/$relative:$line: crate::$name is in no layer (scripts/check_layers.sh)" >&2
      failures=$((failures + 1))
    elif [ "$name" != "$module" ] && [ "$theirs" -ge "$own" ]; then
      echo "server/src/$relative:$line: $module (layer $own) imports crate::$name (layer $theirs): only lower layers may be named" >&2
      failures=$((failures + 1))
    fi
  done < <(grep -no 'crate::[a-z_]*' "$file" | sed 's/crate:://' || true)
  # `use crate::{a, b}` groups name several modules at once.
  while IFS=: read -r line group; do
    for name in $(echo "$group" | tr -d '{} ' | tr ',' ' ' | sed 's/::[^ ]*//g'); do
      theirs=$(rank "$name")
      checked=$((checked + 1))
      if [ -z "$theirs" ] || { [ "$name" != "$module" ] && [ "$theirs" -ge "$own" ]; }; then
        echo "server/src/$relative:$line: $module (layer $own) imports crate::$name (layer ${theirs:-none})" >&2
        failures=$((failures + 1))
      fi
    done
  done < <(grep -no 'crate::{[^}]*}' "$file" | sed 's/crate:://' || true)
done < <(find server/src -name '*.rs' | sort)

# The store crate links nothing heavy: the compiler keeps the bottom layer honest only if it
# cannot reach OpenCV, FFmpeg or the model crates at all.
tree=$(cargo tree -p store --edges normal --prefix none)
if ! grep -q '^store ' <<<"$tree"; then
  echo "check_layers: cargo tree -p store did not list the store crate" >&2
  exit 1
fi
heavy=$(grep -E '^(opencv|ffmpeg|candle|ort|tokenizers|gemm|hf-hub|leptos|axum|tokio)[- ]' <<<"$tree" || true)
if [ -n "$heavy" ]; then
  echo "check_layers: the store crate depends on $heavy" >&2
  failures=$((failures + 1))
fi

if [ "$failures" -gt 0 ]; then
  echo "check_layers: $failures upward import(s)" >&2
  exit 1
fi
echo "check_layers: $checked references to crate modules, none upward; store links no heavy crate"
