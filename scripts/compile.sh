#!/usr/bin/env bash
# Builds the two self-contained binaries with `deno compile`, each with the
# named permission set it is tested with:
#   dist/buildctl            -P=buildctl  (main.ts)
#   dist/buildkitd-launcher  -P=launcher  (src/launcher/main.ts, no npm code)
# `deno compile` needs the runtime base (denort) for Deno 2.9.6. It is
# downloaded on first use; offline builders point DENORT_BIN at a local copy.
# Commands import most of their code on demand: compile must see the whole
# graph, so --unstable-lazy-dynamic-imports (used by scripts/buildctl) is
# never set here nor in deno.json: with it, compile leaves those modules out
# (checked by building with a stand-in base and listing the embedded files).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DENO="${BUILDCTL_TOOLS:-$ROOT/.tools}/bin/deno"
[[ -x "$DENO" ]] || bash "$ROOT/scripts/deps.sh" >&2
cd "$ROOT"
mkdir -p dist

if [[ -n "${DENORT_BIN:-}" && ! -f "$DENORT_BIN" ]]; then
  echo "compile: DENORT_BIN=$DENORT_BIN does not exist" >&2
  exit 1
fi

compile() {
  local set="$1" out="$2" entry="$3" log
  log="$(mktemp)"
  if ! "$DENO" compile --quiet --no-prompt -P="$set" --output "dist/$out" "$entry" 2>"$log"; then
    cat "$log" >&2
    rm -f "$log"
    echo "compile: could not build dist/$out." >&2
    if [[ -z "${DENORT_BIN:-}" ]]; then
      echo "compile: deno compile needs the runtime base 'denort' for Deno $("$DENO" --version | head -1 | cut -d' ' -f2)," >&2
      echo "compile: which is downloaded on first use and could not be had here." >&2
      echo "compile: set DENORT_BIN=/path/to/denort (same version and target) and run again." >&2
    fi
    exit 1
  fi
  rm -f "$log"
  echo "compile: built dist/$out (-P=$set)"
}

compile buildctl buildctl main.ts
compile launcher buildkitd-launcher src/launcher/main.ts
