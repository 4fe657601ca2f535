#!/usr/bin/env bash
# bench-http: peermcp vs the official TypeScript SDK's Streamable HTTP server under wrk (50
# connections), stateless and stateful, in the same run. Called by `make bench-http` after
# `make` built build/peermcp, the npm packages are installed and wrk is present
# (scripts/setup.sh --bench). Prints a table and writes bench/http/last.json.
# BENCH_SECONDS (default 5) per measured run, BENCH_TRIALS (default 3, interleaved; the median
# is reported), BENCH_CONNECTIONS (50), BENCH_THREADS (wrk threads, 2).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${PEERMCP_BIN:-$root/build/peermcp}
node=$root/tests/node_modules/node/bin/node
[ -x "$bin" ] || { echo "bench-http: $bin missing (run make)" >&2; exit 1; }
[ -x "$node" ] || { echo "bench-http: $node missing (run make test-deps)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench-http: wrk missing (scripts/setup.sh --bench)" >&2; exit 1; }
ninja -C "$root/build" bench/http/mhd_modes >/dev/null # the I/O-model comparison (docs/mcp.md)
nice -n 5 python3 "$root/bench/http/bench.py" --peermcp "$bin" --node "$node" \
  --seconds "${BENCH_SECONDS:-5}" --trials "${BENCH_TRIALS:-3}" \
  --connections "${BENCH_CONNECTIONS:-50}" --threads "${BENCH_THREADS:-2}" --json "$root/bench/http/last.json" \
  --mhd-modes "$root/build/bench/http/mhd_modes"
