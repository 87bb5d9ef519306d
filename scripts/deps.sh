#!/usr/bin/env bash
# Installs everything the project needs, idempotently, into the git-ignored
# tools folder (.tools/ by default, BUILDCTL_TOOLS to override).
# Seconds when everything is already present.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${BUILDCTL_TOOLS:-$ROOT/.tools}"
DENO_VERSION="2.9.6"
BUILDKIT_VERSION="v0.32.2"
APT_PACKAGES=(runc busybox-static uidmap rootlesskit sudo docker-registry openssl iproute2 util-linux time python3-minimal tar containernetworking-plugins iptables)

log() { printf 'deps: %s\n' "$*" >&2; }
mkdir -p "$TOOLS/bin"

# --- Debian packages --------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing Debian packages: ${missing[*]} (run as root: apt-get install ${missing[*]})"
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Looked up on the system PATH only: with $TOOLS/bin on PATH, `command -v` would
# find our own link and make it point at itself.
SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
for b in runc busybox rootlesskit newuidmap newgidmap; do
  src="$(PATH="$SYSTEM_PATH" command -v "$b" || true)"
  [[ -n "$src" ]] && ln -sfn "$(readlink -f "$src")" "$TOOLS/bin/$b"
done
[[ -x /usr/bin/docker-registry ]] && ln -sf /usr/bin/docker-registry "$TOOLS/bin/docker-registry"

# --- Deno from npm ------------------------------------------------------------
if [[ ! -x "$TOOLS/bin/deno" ]] || [[ "$("$TOOLS/bin/deno" --version 2>/dev/null | head -1)" != "deno $DENO_VERSION"* ]]; then
  log "npm install deno@$DENO_VERSION"
  mkdir -p "$TOOLS/npm"
  (cd "$TOOLS/npm" && npm install --silent --no-audit --no-fund --prefix . "deno@$DENO_VERSION" >/dev/null)
  real="$(find "$TOOLS/npm/node_modules/@deno" -maxdepth 3 -type f -name deno -perm -u+x | head -1)"
  [[ -n "$real" ]] || { log "npm package deno@$DENO_VERSION has no binary"; exit 1; }
  ln -sf "$real" "$TOOLS/bin/deno"
fi

# --- BuildKit daemon and the upstream client (reference only) -------------
# `go install github.com/moby/buildkit/cmd/...@VERSION` is refused by the Go
# tool (buildkit's go.mod has exclude directives), so we fetch the same module
# through the module proxy and build the two commands from it, stamped with
# the version exactly as upstream's release build does.
if [[ ! -x "$TOOLS/bin/buildkitd" || ! -x "$TOOLS/bin/buildctl-upstream" || ! -x "$TOOLS/bin/dockerfile-frontend" ]] ||
  ! "$TOOLS/bin/buildkitd" --version 2>/dev/null | grep -q " $BUILDKIT_VERSION "; then
  command -v go >/dev/null || { log "go is required to build buildkitd (apt-get install golang-go)"; exit 1; }
  log "building github.com/moby/buildkit/cmd/{buildkitd,buildctl}@$BUILDKIT_VERSION"
  moddir="$(cd /tmp && go mod download -json "github.com/moby/buildkit@$BUILDKIT_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$moddir" ]] || { log "go mod download github.com/moby/buildkit@$BUILDKIT_VERSION failed"; exit 1; }
  gobin="$TOOLS/go-bin"
  mkdir -p "$gobin"
  ldflags="-X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION -X github.com/moby/buildkit/version.Revision=release"
  (cd "$moddir" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$gobin/" \
    ./cmd/buildkitd ./cmd/buildctl ./frontend/dockerfile/cmd/dockerfile-frontend)
  cp -f "$gobin/buildkitd" "$TOOLS/bin/buildkitd"
  # The upstream client gets a name that can never be mistaken for ours.
  cp -f "$gobin/buildctl" "$TOOLS/bin/buildctl-upstream"
  # The Dockerfile frontend as a gateway image, for `--frontend gateway.v0` tests.
  cp -f "$gobin/dockerfile-frontend" "$TOOLS/bin/dockerfile-frontend"
fi

# --- npm modules for Deno (from deno.lock) -------------------------------------
if [[ -f "$ROOT/deno.json" ]]; then
  (cd "$ROOT" && "$TOOLS/bin/deno" install --frozen --quiet >/dev/null 2>&1) ||
    (cd "$ROOT" && "$TOOLS/bin/deno" install --frozen)
fi
log "ready: $TOOLS/bin"
