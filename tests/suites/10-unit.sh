#!/usr/bin/env bash
# cmocka unit tests, built with AddressSanitizer + UBSan (build-asan), run through meson test.
# Counts individual cmocka test cases from each executable's output.
set -u
root=${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
b="$root/build-asan"
meson test -C "$b" --suite unit --print-errorlogs --num-processes 2 >"$b/unit.out" 2>&1
rc=$?
tail -n 15 "$b/unit.out"
# cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)..." per executable.
log="$b/meson-logs/testlog.txt"
p=$(grep -hoE '\[  PASSED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
f=$(grep -hoE '\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END {print s+0}')
# an executable that crashed before printing a summary still counts as a failure
crashed=$(grep -cE '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR) ' "$b/unit.out" || true)
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=${crashed:-1}; [ "$f" -eq 0 ] && f=1; fi
echo "unit: $p passed, $f failed"
[ "$rc" -eq 0 ]
