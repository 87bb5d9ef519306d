#!/usr/bin/env bash
# Builds examples/hello into an OCI image tarball through a daemon that
# buildctl starts by itself when none is running. Needs nothing but this
# repository: the tools come from scripts/deps.sh, and the base image is a
# busybox rootfs made from Debian's busybox-static.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/deps.sh" >&2
OUT="${1:-$ROOT/dist/hello.oci.tar}"
BB="${BUILDCTL_EXAMPLE_ROOTFS:-$ROOT/.tools/busybox-rootfs}"
if [[ ! -x "$BB/bin/busybox" ]]; then
  mkdir -p "$BB/bin" "$BB/etc" "$BB/tmp"
  cp "$(command -v busybox)" "$BB/bin/busybox"
  for applet in $("$BB/bin/busybox" --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$BB/bin/$applet"
  done
  echo "root:x:0:0:root:/root:/bin/sh" >"$BB/etc/passwd"
fi
mkdir -p "$(dirname "$OUT")"
"$ROOT/scripts/buildctl" build \
  --frontend dockerfile.v0 \
  --local context="$ROOT/examples/hello" \
  --local dockerfile="$ROOT/examples/hello" \
  --opt context:busybox=local:bb --local bb="$BB" \
  --output type=oci,name=example.local/hello:latest,dest="$OUT"
echo "wrote $OUT" >&2
