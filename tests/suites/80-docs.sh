#!/usr/bin/env bash
# The docs work as written: every ```sh runnable block of README.md and docs/*.md runs, in
# order per file, in a scratch directory with the release binary as `peermcp`
# (tests/docs/run_examples.py). Last line: "docs: N passed, N failed".
set -u
root=${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${PEERMCP_BIN:-$root/build/peermcp}
if [ ! -x "$bin" ]; then
  echo "no binary at $bin (make)"
  echo "docs: 0 passed, 1 failed"
  exit 1
fi
python3 "$root/tests/docs/run_examples.py" --bin "$bin" --root "$root"
