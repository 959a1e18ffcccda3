#!/usr/bin/env bash
# Fails when code imports from a layer above its own, within a crate or across crates. Part of
# scripts/test.sh. `--self-test` plants upward imports in a copy of the repository and fails
# unless each one is caught.
#
# Crates, bottom first (a crate may depend only on crates below it; checked on `cargo tree` and
# on the source's paths):
#   store            config.yaml and the cache files            no heavy crate at all
#   investigator-core  types, scores, moments, status texts,      no Leptos, axum, tokio, no
#                    chart maths, routes (core/)                 native library, not store
#   engine           video, CLIP, indexing, frames, search,      no UI crate: not app, Leptos,
#                    excerpts, library                           axum
#   app              the page (Leptos), built for the browser    not the engine, store, server
#   server           the fronts: web and CLI, the binary
# testvideo (test videos) is a dev-dependency only: no crate may depend on it for real.
#
# Modules inside a crate, bottom first (a module may name only modules of a lower rank;
# `super::` inside a module folder is its own business):
#   engine:  0 sync   1 video   2 embed labels   3 indexing precision   4 frames search
#            5 evaluation explain export adapt   6 library
#   server:  0 web    1 cli
# Below the top, the modules of every folder must be rankable too: no two sibling modules may
# name each other, directly or round a longer loop (scripts/module_edges.awk finds the
# references, `tsort` the loops), in every crate.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --self-test ]; then
  copy=$(mktemp -d)
  trap 'rm -rf "$copy"' EXIT
  # Tracked files and new ones not ignored: the tree as it is, committed or not.
  git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$copy"
  # Planted one at a time; each must make the check fail and be named in its output.
  plant() { # FILE LINE EXPECTED-MESSAGE-PART [cargo]
    local file=$1 line=$2 expected=$3
    rm -rf "$copy.plant"
    cp -r "$copy" "$copy.plant"
    if [ "${4:-1}" = 0 ]; then
      # A real dependency: under [dependencies], not at the end (dev-dependencies).
      sed -i "/^\[dependencies\]/a $line" "$copy.plant/$file"
    else
      printf '%s\n' "$line" >>"$copy.plant/$file"
    fi
    local out
    if out=$(CHECK_LAYERS_SOURCES_ONLY=${4:-1} "$copy.plant/scripts/check_layers.sh" 2>&1); then
      echo "check_layers --self-test: planting '$line' in $file was not caught" >&2
      exit 1
    fi
    if ! grep -qF -- "$expected" <<<"$out"; then
      echo "check_layers --self-test: planting '$line' in $file failed for another reason:" >&2
      echo "$out" >&2
      exit 1
    fi
    echo "check_layers --self-test: caught $file: $line"
  }
  if ! CHECK_LAYERS_SOURCES_ONLY=1 "$copy/scripts/check_layers.sh" >/dev/null; then
    echo "check_layers --self-test: the unchanged copy already fails" >&2
    exit 1
  fi
  plant engine/src/video/mod.rs 'use app::types::VideoInfo;' 'engine/src/video/mod.rs'
  plant engine/src/video/mod.rs 'use crate::library::Library;' 'video (layer 1) imports crate::library (layer 6)'
  plant engine/src/embed/mod.rs 'use leptos::prelude::*;' 'engine/src/embed/mod.rs'
  plant core/src/types.rs 'use store::config::Settings;' 'core/src/types.rs'
  plant app/src/player.rs 'use engine::video::Decoder;' 'app/src/player.rs'
  plant store/src/config/mod.rs 'use investigator_core::types::VideoInfo;' 'store/src/config/mod.rs'
  plant server/src/web/mod.rs 'use crate::cli::Cli;' 'web (layer 0) imports crate::cli (layer 1)'
  # A loop between sub-modules: decode names batches, which names decode.
  plant engine/src/indexing/job/decode.rs 'use super::batches::Tally;' "a loop among indexing::job's modules: batches decode"
  # Across crates in Cargo.toml: the compiler would accept a dependency the layers forbid.
  plant engine/Cargo.toml 'app = { path = "../app" }' 'the engine crate depends on app' 0
  rm -rf "$copy.plant"
  echo "check_layers --self-test: every planted upward import was caught"
  exit 0
fi

failures=0
checked=0
fail() {
  echo "$1" >&2
  failures=$((failures + 1))
}

# --- Modules inside a crate ----------------------------------------------------------------
engine_rank() {
  case "$1" in
    sync) echo 0 ;;
    video) echo 1 ;;
    embed | labels) echo 2 ;;
    indexing | precision) echo 3 ;;
    frames | search | vectors) echo 4 ;;
    evaluation | explain | export | adapt) echo 5 ;;
    library) echo 6 ;;
    *) echo "" ;;
  esac
}
server_rank() {
  case "$1" in
    web) echo 0 ;;
    cli) echo 1 ;;
    *) echo "" ;;
  esac
}

check_modules() { # CRATE-FOLDER RANK-FUNCTION
  local root=$1/src rank=$2 file relative module own line name theirs group
  while IFS= read -r file; do
    relative=${file#"$root"/}
    module=${relative%%/*}
    module=${module%.rs}
    case "$module" in lib | main) continue ;; esac
    own=$($rank "$module")
    if [ -z "$own" ]; then
      fail "check_layers: $file is in no layer: add module '$module' to scripts/check_layers.sh"
      continue
    fi
    # Every `crate::NAME` the file mentions, in `use` lines and in paths alike (comments too:
    # a doc link upward is a dependency in the reader's head).
    while IFS=: read -r line name; do
      [ -n "$name" ] || continue
      theirs=$($rank "$name")
      checked=$((checked + 1))
      if [ -z "$theirs" ]; then
        fail "$file:$line: crate::$name is in no layer (scripts/check_layers.sh)"
      elif [ "$name" != "$module" ] && [ "$theirs" -ge "$own" ]; then
        fail "$file:$line: $module (layer $own) imports crate::$name (layer $theirs): only lower layers may be named"
      fi
    done < <(grep -no 'crate::[a-z_]*' "$file" | sed 's/crate:://' || true)
    # `use crate::{a, b}` groups name several modules at once.
    while IFS=: read -r line group; do
      for name in $(echo "$group" | tr -d '{} ' | tr ',' ' ' | sed 's/::[^ ]*//g'); do
        theirs=$($rank "$name")
        checked=$((checked + 1))
        if [ -z "$theirs" ] || { [ "$name" != "$module" ] && [ "$theirs" -ge "$own" ]; }; then
          fail "$file:$line: $module (layer $own) imports crate::$name (layer ${theirs:-none}): only lower layers may be named"
        fi
      done
    done < <(grep -no 'crate::{[^}]*}' "$file" | sed 's/crate:://' || true)
  done < <(find "$root" -name '*.rs' | sort)
}
check_modules engine engine_rank
check_modules server server_rank

# Modules at every level: sibling modules form no loop.
check_loops() { # CRATE-FOLDER
  local root=$1/src edges parent loop
  edges=$(find "$root" -name '*.rs' | sort | awk -v root="$root/" -f scripts/module_edges.awk | sort -u)
  checked=$((checked + $(grep -c . <<<"$edges" || true)))
  for parent in $(cut -d' ' -f1 <<<"$edges" | sort -u); do
    loop=$(awk -v p="$parent" '$1 == p { print $2, $3 }' <<<"$edges" | tsort 2>&1 >/dev/null |
      grep -v 'input contains a loop' | sed 's/^tsort: //' | sort -u | tr '\n' ' ' || true)
    [ -z "$loop" ] || fail "check_layers: a loop among $parent's modules: ${loop% } name each other (in $1: make one of them lower, or move what both need below them)"
  done
}
for crate in store core engine app server; do check_loops "$crate"; done

# --- Crates, in the source ------------------------------------------------------------------
# A path into a crate above (or beside) names it even where the compiler would not yet see it
# (a doc link, a cfg'd-out line): the reader's dependency counts.
check_sources() { # CRATE-FOLDER PATTERN WHAT
  local folder=$1 pattern=$2 what=$3 hit
  while IFS= read -r hit; do
    [ -n "$hit" ] || continue
    checked=$((checked + 1))
    fail "$hit: $what"
  done < <(grep -rnE "$pattern" "$folder/src" --include='*.rs' || true)
}
check_sources store '\b(investigator_core|engine|app|server|leptos|axum|tokio)::' \
  "store is the bottom layer: it names no crate above it"
check_sources core '\b(store|engine|app|server|leptos|leptos_axum|axum|tokio|opencv|ffmpeg|candle_core|ort)::' \
  "investigator_core names no crate above it and no UI or native crate"
check_sources engine '\b(app|server|leptos|leptos_axum|leptos_router|axum)::' \
  "the engine links no UI crate: use investigator_core for what the page shares"
check_sources app '\b(engine|store|server|testvideo|opencv|ffmpeg)::' \
  "the page (app) never reaches below investigator_core: the engine is behind app::backend::VideoBackend"

# --- Crates, in Cargo.toml ------------------------------------------------------------------
# What each crate links for real (normal edges; dev-dependencies are the tests' business).
if [ "${CHECK_LAYERS_SOURCES_ONLY:-0}" != 1 ]; then
  tree_of() { cargo tree --offline -p "$1" --edges normal --prefix none 2>/dev/null || cargo tree -p "$1" --edges normal --prefix none; }
  forbid() { # PACKAGE NAME REGEX WHY
    local tree heavy
    tree=$(tree_of "$1")
    if ! grep -q "^$1 " <<<"$tree"; then
      fail "check_layers: cargo tree -p $1 did not list the $1 crate"
      return
    fi
    heavy=$(grep -E "^($3) " <<<"$tree" | cut -d' ' -f1 | sort -u | tr '\n' ' ' || true)
    checked=$((checked + 1))
    [ -z "$heavy" ] || fail "check_layers: the $2 crate depends on $heavy($4)"
  }
  forbid store store 'investigator-core|engine|app|server|testvideo|opencv|ffmpeg-next|ffmpeg-sys-next|candle-core|ort|tokenizers|gemm|hf-hub|leptos|axum|tokio' \
    "store is the bottom layer and links nothing heavy"
  forbid investigator-core investigator-core 'store|engine|app|server|testvideo|opencv|ffmpeg-next|candle-core|ort|leptos|leptos_axum|axum|tokio' \
    "the core links no UI, async runtime or native library"
  forbid engine engine 'app|server|testvideo|leptos|leptos_axum|leptos_router|leptos_meta|axum' \
    "the engine links no UI crate"
  forbid app app 'engine|store|server|testvideo|opencv|ffmpeg-next|candle-core|ort' \
    "the page never links the engine"
  forbid server server 'testvideo' "test videos are for tests only"
fi

if [ "$failures" -gt 0 ]; then
  echo "check_layers: $failures upward import(s)" >&2
  exit 1
fi
echo "check_layers: $checked references checked (modules and crates), none upward"
