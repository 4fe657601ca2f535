#!/usr/bin/env bash
# fuzz/run.sh BUILD_DIR — runs every libFuzzer target BUILD_DIR/fuzz/fuzz_<stem> for
# $FUZZ_SECONDS (default 30) with its seed corpus fuzz/corpus/<stem>/ (read-only: new inputs
# go to a temporary directory). Prints one line per target and a last line
# "fuzz: N passed, N failed"; exits non-zero if any target crashed, leaked or timed out.
#
# A crash leaves its input in BUILD_DIR/fuzz-out/<stem>/crash-*. After fixing the bug, copy
# that file into fuzz/corpus/<stem>/: every corpus file is replayed first by the fuzzer, and
# by the unit tests (tests/p2p fuzz_regress_<stem>), so it stays a regression test.
# FUZZ_MERGE=1 additionally merges new coverage-increasing inputs into the tree corpus.
# Optional extra libFuzzer flags per target: a file fuzz/<stem>.options (one line); for every
# target: $FUZZ_FLAGS (e.g. "-seed=1", which tests/suites/50-fuzz.sh uses for repeatable runs).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
b=${1:?usage: fuzz/run.sh BUILD_DIR}
secs=${FUZZ_SECONDS:-30}
out="$b/fuzz-out"
mkdir -p "$out"
pass=0
fail=0
shopt -s nullglob
for exe in "$b"/fuzz/fuzz_*; do
  [ -f "$exe" ] && [ -x "$exe" ] || continue
  stem=${exe##*/fuzz_}
  work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$stem.XXXXXX")
  seeds="$root/fuzz/corpus/$stem"
  corpora=("$work")
  [ -d "$seeds" ] && corpora+=("$seeds")
  art="$out/$stem"
  mkdir -p "$art"
  extra=""
  [ -f "$root/fuzz/$stem.options" ] && extra=$(head -n1 "$root/fuzz/$stem.options")
  # -timeout: one input may take at most 10 s; -rss_limit_mb bounds memory growth.
  # shellcheck disable=SC2086
  nice -n 10 "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art/" ${FUZZ_FLAGS:-} $extra "${corpora[@]}" >"$out/$stem.log" 2>&1
  rc=$?
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$out/$stem.log" | grep -oE '[0-9]+$' || true)
  if [ "$rc" -eq 0 ]; then
    pass=$((pass + 1))
    echo "fuzz_$stem: ok (${runs:-?} runs in ${secs}s)"
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
      mkdir -p "$seeds"
      nice -n 10 "$exe" -merge=1 $extra "$seeds" "$work" >>"$out/$stem.log" 2>&1 || true
    fi
  else
    fail=$((fail + 1))
    echo "fuzz_$stem: FAILED (exit $rc); log $out/$stem.log"
    for c in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
      echo "  reproducer: $c (after the fix, copy it into fuzz/corpus/$stem/)"
    done
    grep -m3 -E 'ERROR: |SUMMARY: ' "$out/$stem.log" | sed 's/^/  /'
  fi
  rm -rf "$work"
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
