#!/usr/bin/env bash
# Runs every suite in tests/suites/ in name order and ends with one line "N passed, N failed".
# A suite is an executable script whose last line of output is "N passed, N failed"; a suite
# that exits non-zero without that line counts as one failure. SUITES=pattern picks suites.
# Each suite is bounded (SUITE_TIMEOUT seconds, default 1800): a hung suite is killed (with the
# processes it started) and counts as a failure, so `make check` always ends.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export PEERMCP_ROOT="$root"
export PEERMCP_BIN="${PEERMCP_BIN:-$root/build/peermcp}"
export PEERMCP_ASAN_BIN="${PEERMCP_ASAN_BIN:-$root/build-asan/peermcp}"
total_pass=0; total_fail=0
logdir="$root/build-asan/test-logs"; mkdir -p "$logdir"
for s in "$here"/suites/*.sh; do
  name=$(basename "$s" .sh)
  if [ -n "${SUITES:-}" ] && [[ "$name" != *${SUITES}* ]]; then continue; fi
  echo "=== suite $name" >&2
  start=$(date +%s)
  timeout -k 30 "${SUITE_TIMEOUT:-1800}" bash "$s" </dev/null 2>&1 | tee "$logdir/$name.log"
  rc=${PIPESTATUS[0]}
  line=$(grep -E '^([A-Za-z0-9_.-]+: )?[0-9]+ passed, [0-9]+ failed' "$logdir/$name.log" | tail -n 1)
  if [ -n "$line" ]; then
    p=$(sed -E 's/^([A-Za-z0-9_.-]+: )?([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
    f=$(sed -E 's/^([A-Za-z0-9_.-]+: )?([0-9]+) passed, ([0-9]+) failed.*/\3/' <<<"$line")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  else
    p=0; f=1
  fi
  echo "=== suite $name: $p passed, $f failed ($(( $(date +%s) - start )) s)" >&2
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
