#!/usr/bin/env bash
# Build benchmarks, ours vs upstream Go buildctl in the same run (median of N):
#  1. a 300 MB context (2,000 x 50 KB files + one 200 MB file), fresh daemon state per run
#  2. the same tree exported with --output type=local
#  3. a fully cached small Dockerfile build
# Usage: scripts/bench_build.sh [N] (default 3)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${BUILDCTL_TOOLS:-$ROOT/.tools}"
export PATH="$TOOLS/bin:$PATH"
N="${1:-3}"
WORK="$(mktemp -d /tmp/bkbuild-XXXX)"
CTX="${BENCH_CONTEXT:-/tmp/buildctl-bench-context}"
DPID=""
stop_daemon() {
  if [[ -n "$DPID" ]]; then
    kill "$DPID" 2>/dev/null || true
    wait "$DPID" 2>/dev/null || true
    DPID=""
  fi
}
cleanup() { stop_daemon; rm -rf "$WORK"; }
trap cleanup EXIT

if [[ ! -f "$CTX/.complete" ]]; then
  echo "bench: creating the 300 MB context in $CTX" >&2
  rm -rf "$CTX"; mkdir -p "$CTX/files"
  for i in $(seq 0 19); do
    mkdir -p "$CTX/files/d$i"
    for j in $(seq 0 99); do head -c 51200 /dev/urandom >"$CTX/files/d$i/f$j"; done
  done
  head -c 209715200 /dev/urandom >"$CTX/big.bin"
  printf 'FROM scratch\nCOPY . /\n' >"$CTX/Dockerfile"
  touch "$CTX/.complete"
fi
SMALL="$WORK/small"; mkdir -p "$SMALL"
printf 'FROM scratch\nCOPY Dockerfile /a\nCOPY Dockerfile /b\n' >"$SMALL/Dockerfile"

start_daemon() {
  stop_daemon
  rm -rf "$WORK/root"
  buildkitd --root "$WORK/root" --addr "unix://$WORK/s.sock" >"$WORK/d.log" 2>&1 &
  DPID=$!
  for _ in $(seq 200); do [[ -S "$WORK/s.sock" ]] && break; sleep 0.05; done
}

# run CLIENT ARGS... -> "wall_ms rss_kb"
run() {
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  t1=$(date +%s%N)
  echo "$(((t1 - t0) / 1000000)) $(cat "$WORK/t")"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
maxcol() { awk '{if ($2>m) m=$2} END {print m}'; }

bench() { # label fresh(0/1) extra-args...
  local label="$1" fresh="$2"; shift 2
  local ours="$WORK/ours.txt" up="$WORK/up.txt"
  : >"$ours"; : >"$up"
  for _ in $(seq "$N"); do
    for who in up ours; do
      if [[ "$fresh" == 1 ]]; then start_daemon; fi
      rm -rf "$WORK/out"
      if [[ $who == ours ]]; then
        run "$ROOT/scripts/buildctl" --addr "unix://$WORK/s.sock" build "$@" >>"$ours"
      else
        run "$TOOLS/bin/buildctl-upstream" --addr "unix://$WORK/s.sock" build "$@" >>"$up"
      fi
    done
  done
  local ow uw orss urss
  ow=$(median <"$ours"); uw=$(median <"$up"); orss=$(maxcol <"$ours"); urss=$(maxcol <"$up")
  printf '%-34s ours %6d ms %4d MB | upstream %6d ms %4d MB | wall ratio %.2f\n' "$label" "$ow" \
    $((orss / 1024)) "$uw" $((urss / 1024)) "$(awk -v a="$ow" -v b="$uw" 'BEGIN{print a/b}')"
}

DF=(--progress=plain --frontend=dockerfile.v0 --local "context=$CTX" --local "dockerfile=$CTX")
bench "300 MB context, fresh daemon" 1 "${DF[@]}"
start_daemon
bench "300 MB tree, --output type=local" 0 "${DF[@]}" --output "type=local,dest=$WORK/out"
SM=(--progress=plain --frontend=dockerfile.v0 --local "context=$SMALL" --local "dockerfile=$SMALL")
"$TOOLS/bin/buildctl-upstream" --addr "unix://$WORK/s.sock" build "${SM[@]}" >/dev/null 2>&1
N=$((N * 3)) bench "fully cached small build" 0 "${SM[@]}"
