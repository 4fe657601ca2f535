#!/usr/bin/env bash
# MCP over stdio: the official TypeScript SDK client and raw byte-level cases against
# `peermcp serve --no-p2p` (the ASan build when it exists). Last line: "mcp-stdio: N passed, N failed".
set -u
root=${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export PEERMCP_BIN="${PEERMCP_BIN:-$root/build/peermcp}"
export PEERMCP_ASAN_BIN="${PEERMCP_ASAN_BIN:-$root/build-asan/peermcp}"
node="$root/tests/node_modules/node/bin/node"
[ -x "$node" ] || node=$(command -v node)
if [ ! -x "$PEERMCP_ASAN_BIN" ] && [ ! -x "$PEERMCP_BIN" ]; then
  echo "no peermcp binary (build first)" >&2
  echo "mcp-stdio: 0 passed, 1 failed"
  exit 1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cd "$root/tests/interop/mcp" || exit 1
timeout 600 "$node" --test --test-concurrency=1 --test-reporter=tap ./*.test.mjs >"$out" 2>&1
rc=$?
# show the failures (and the summary) in the suite log
grep -E '^(not ok|# (tests|pass|fail))' "$out" >&2
grep -B2 -A30 '^not ok' "$out" | head -200 >&2
pass=$(grep -E '^# pass ' "$out" | tail -n1 | awk '{print $3}')
fail=$(grep -E '^# fail ' "$out" | tail -n1 | awk '{print $3}')
pass=${pass:-0}; fail=${fail:-0}
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
echo "mcp-stdio: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
