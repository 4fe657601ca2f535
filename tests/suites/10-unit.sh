#!/usr/bin/env bash
# cmocka unit tests, built with AddressSanitizer + UBSan (build-asan), run through meson test.
# Counts individual cmocka test cases from each executable's output.
set -u
root=${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
b="$root/build-asan"
# Per-test timeouts are in tests/*/meson.build; the multiplier leaves room for a loaded
# 2-core machine running two ASan tests at once (a hung test still ends, as a failure).
rm -f "$b/meson-logs/testlog.json" # never count a previous run's results
meson test -C "$b" --suite unit --print-errorlogs --num-processes 2 --timeout-multiplier "${UNIT_TIMEOUT_MULTIPLIER:-3}" \
  >"$b/unit.out" 2>&1
rc=$?
tail -n 15 "$b/unit.out"
# cmocka prints "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s)..." per executable. An
# executable that failed, crashed or timed out without a cmocka FAILED count is one failure; one
# that passed without a summary is one pass.
counts=$(python3 - "$b/meson-logs/testlog.json" <<'PY'
import json, re, sys
p = f = 0
for line in open(sys.argv[1]):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    out = (d.get("stdout") or "") + (d.get("stderr") or "")
    np = sum(int(x) for x in re.findall(r"\[  PASSED  \] (\d+) test", out))
    nf = sum(int(x) for x in re.findall(r"\[  FAILED  \] (\d+) test", out))
    if d.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
        p += np if np or nf else 1
        f += nf
    else:
        p += np
        f += nf if nf else 1
        print("failed: %s (%s)" % (d.get("name"), d.get("result")), file=sys.stderr)
print(p, f)
PY
)
p=${counts% *}
f=${counts#* }
if [ -z "$counts" ]; then p=0; f=1; fi
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
echo "unit: $p passed, $f failed"
[ "$rc" -eq 0 ]
