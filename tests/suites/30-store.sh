#!/usr/bin/env bash
# Storage suite: crash consistency of the task queue and the TTL cache under SIGKILL
# (tests/store/crashtest.c), CRASH_ITERATIONS times (default 200; set e.g. 5000 for the long
# mode), and store/pyjson against CPython's json.dumps. (The store unit tests run in 10-unit.)
# Last line: "store: N passed, N failed".
set -u
. "$(dirname "$0")/../support/suite.sh"
suite_init store
b="$root/build-asan"
iters=${CRASH_ITERATIONS:-200}
bin="$b/tests/store/crashtest"
if [ ! -x "$bin" ]; then
  ninja -C "$b" tests/store/crashtest tests/store/pyjson_echo >/dev/null 2>&1 || true
fi
if [ ! -x "$bin" ]; then
  ko "setup" "crashtest binary missing ($bin)"
  suite_end
  exit 1
fi
dir="$suite_tmp/crash"
mkdir -p "$dir"
seed=${CRASH_SEED:-$(date +%s)}
start=$(date +%s)
out=$(ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 "$bin" run "$dir" "$iters" "$seed" 2>"$suite_tmp/crash.err"; echo "rc=$?")
grep -E 'VIOLATION|iteration|crashtest:' "$suite_tmp/crash.err" | head -20
line=$(grep -E '^crash: [0-9]+ passed' <<<"$out")
echo "$line ($(( $(date +%s) - start )) s, seed $seed)"
if [ -n "$line" ]; then
  p=$(sed -E 's/^crash: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
  f=$(sed -E 's/^crash: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
  # one pass/fail per iteration is too fine for the summary: count the run as one check
  if [ "$f" -eq 0 ] && [ "$p" -eq "$iters" ]; then ok "crash consistency ($iters runs)"; else ko "crash consistency" "$line"; fi
else
  ko "crash consistency" "no result line"
fi
# Python-compatible JSON (the canonical payload form and the cache record) against CPython
echo_bin="$b/tests/store/pyjson_echo"
if command -v python3 >/dev/null 2>&1 && [ -x "$echo_bin" ]; then
  if python3 "$root/tests/store/pyjson_check.py" "$echo_bin" "$seed" 2000; then ok "pyjson matches CPython"; else ko "pyjson matches CPython"; fi
else
  echo "pyjson check skipped (python3 or $echo_bin missing)"
fi
suite_end
