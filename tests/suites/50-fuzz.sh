#!/usr/bin/env bash
# 50-fuzz: a short libFuzzer run of every fuzz target (FUZZ_SECONDS each, default 30) from a
# clang build in build-fuzz, configured like the Makefile's `fuzz` target if it is absent.
# A crash, leak or timeout in any target fails the suite (fuzz/run.sh prints the reproducer).
set -u
root=${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
b="$root/build-fuzz"
log=$(mktemp "${TMPDIR:-/tmp}/fuzz-build.XXXXXX")
trap 'rm -f "$log"' EXIT
if ! command -v clang >/dev/null 2>&1; then
  echo "clang not found (scripts/setup.sh --tests installs it)"
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
if [ ! -f "$b/build.ninja" ]; then
  if ! (cd "$root" && CC=clang meson setup "$b" --buildtype=debug -Dfuzz=true -Dtests=disabled -Db_lundef=false) >"$log" 2>&1; then
    tail -n 20 "$log"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
  fi
fi
if ! nice ninja -C "$b" >"$log" 2>&1; then
  grep -E 'error|FAILED' "$log" | head -n 20
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
# A fixed seed (FUZZ_SEED, default 1) makes the run repeatable: a failure in `make check` is the
# same failure on the next run, not a roll of the dice (`make fuzz` keeps random seeds).
FUZZ_FLAGS="-seed=${FUZZ_SEED:-1}" FUZZ_SECONDS=${FUZZ_SECONDS:-30} bash "$root/fuzz/run.sh" "$b"
