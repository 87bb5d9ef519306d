#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/deps.sh), checks
# formatting, lint and types, then runs every unit and integration test
# against real buildkitd daemons that the tests start themselves.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/deps.sh
DENO="${BUILDCTL_TOOLS:-$ROOT/.tools}/bin/deno"
export PATH="${BUILDCTL_TOOLS:-$ROOT/.tools}/bin:$PATH"

echo "== deno fmt --check / lint / check"
"$DENO" fmt --check
"$DENO" lint
"$DENO" check main.ts src/ tests/

echo "== deno test"
log="$(mktemp)"
set +e
"$DENO" test --quiet --no-prompt -P=test --parallel "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# A plain summary line that any CI reader understands.
summary="$(sed -E 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -1 || true)"
passed="$(sed -nE 's/.*\| ([0-9]+) passed.*/\1/p' <<<"$summary")"
failed="$(sed -nE 's/.*\| ([0-9]+) failed.*/\1/p' <<<"$summary")"
rm -f "$log"
echo "${passed:-0} passed, ${failed:-0} failed"
if [[ "${passed:-0}" == "0" && $rc -eq 0 ]]; then
  echo "no test ran" >&2
  exit 1
fi
exit "$rc"
