#!/usr/bin/env bash
# Benchmarks: ours vs upstream Go buildctl against the same real daemon, in
# the same run. Prints median wall time and peak RSS over N runs, and the
# ratio. Usage: scripts/bench.sh [N] (default 15).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/deps.sh" >/dev/null 2>&1 || bash "$ROOT/scripts/deps.sh"
TOOLS="${BUILDCTL_TOOLS:-$ROOT/.tools}"
export PATH="$TOOLS/bin:$PATH"
N="${1:-15}"
WORK="$(mktemp -d /tmp/bkbench-XXXX)"
buildkitd --root "$WORK/root" --addr "unix://$WORK/s.sock" >"$WORK/d.log" 2>&1 &
DPID=$!
cleanup() { kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 100); do [[ -S "$WORK/s.sock" ]] && break; sleep 0.05; done
ADDR="unix://$WORK/s.sock"

# measure NAME CMD...: N runs after one warm-up; prints "median_ms peak_rss_kb"
measure() {
  local out="$WORK/$1.txt"; shift
  "$@" >/dev/null 2>&1 || { echo "bench: command failed: $*" >&2; exit 1; }
  : >"$out"
  for _ in $(seq "$N"); do
    local t0 t1
    t0=$(date +%s%N)
    /usr/bin/time -f "%M" -o "$WORK/t" "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    echo "$(((t1 - t0) / 1000)) $(cat "$WORK/t")" >>"$out"
  done
  sort -n -k1 "$out" | awk '{w[NR]=$1; if ($2>m) m=$2} END {printf "%.0f %d\n", w[int((NR+1)/2)]/1000, m}'
}

report() { # label ours upstream
  read -r ow orss <<<"$2"; read -r uw urss <<<"$3"
  printf '%-28s ours %5.1f ms %7d KB | upstream %5.1f ms %7d KB | wall ratio %.2f\n' \
    "$1" "$ow" "$orss" "$uw" "$urss" "$(awk -v a="$ow" -v b="$uw" 'BEGIN{print (b>0)?a/b:0}')"
}

OURS=("$ROOT/scripts/buildctl" --addr "$ADDR")
UP=("$TOOLS/bin/buildctl-upstream" --addr "$ADDR")
echo "bench: $N runs each, daemon $(buildkitd --version | cut -d' ' -f3)"
report "debug workers" "$(measure ours-workers "${OURS[@]}" debug workers)" "$(measure up-workers "${UP[@]}" debug workers)"
report "du" "$(measure ours-du "${OURS[@]}" du)" "$(measure up-du "${UP[@]}" du)"

if [[ "${BENCH_BUILD:-1}" == 1 ]]; then
  cleanup
  trap - EXIT
  bash "$ROOT/scripts/bench_build.sh" "${BENCH_BUILD_RUNS:-3}"
fi
