#!/usr/bin/env bash
# Regenerate the protobuf TypeScript in src/gen (or in the directory given as $1)
# from our own .proto files in proto/.
#
# Generator: ts-proto + buf, pinned in scripts/gen/package.json and
# scripts/gen/package-lock.json, installed with `npm ci` into .tools/gen/
# (git-ignored). Installing is skipped when the pinned versions are present.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/src/gen}"
tools="$root/.tools/gen"
bin="$tools/node_modules/.bin"

# Install (or reinstall) the pinned generator when the lock file changed or the
# binaries are missing.
if ! cmp -s "$root/scripts/gen/package-lock.json" "$tools/package-lock.json" ||
  [ ! -x "$bin/buf" ] || [ ! -x "$bin/protoc-gen-ts_proto" ]; then
  mkdir -p "$tools"
  cp "$root/scripts/gen/package.json" "$root/scripts/gen/package-lock.json" "$tools/"
  # --ignore-scripts: buf's postinstall only optimises its launcher; the
  # platform binary comes from an optional dependency.
  (cd "$tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
fi

# Fresh output directory (relative paths are taken from the caller's cwd).
mkdir -p "$out"
out="$(cd "$out" && pwd)"
case "$out" in
/ | "$root" | "$root/src" | "$root/proto") echo "gen.sh: refusing to use $out as output" >&2 && exit 1 ;;
esac
find "$out" -mindepth 1 -delete

cd "$root"
PATH="$bin:$PATH" buf generate proto --template scripts/gen/buf.gen.yaml -o "$out"
