#!/usr/bin/env bash
# bench-mcp: peermcp vs the official TypeScript SDK server, same tool, same Node client.
# Called by `make bench-mcp` after `make` built build/peermcp and the npm packages are installed.
# Writes the "MCP (bench-mcp)" section of bench/RESULTS.md and bench/mcp/last.json; appends the
# callgrind profile of the run to bench/mcp/profile.md.
# BENCH_SECONDS (default 3) sets the length of each measured phase, BENCH_TRIALS (default 3) the
# number of interleaved runs per server (the median is reported).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${PEERMCP_BIN:-$root/build/peermcp}
node=$root/tests/node_modules/node/bin/node
[ -x "$bin" ] || { echo "bench-mcp: $bin missing (run make)" >&2; exit 1; }
[ -x "$node" ] || { echo "bench-mcp: $node missing (run make test-deps)" >&2; exit 1; }

machine=$(mktemp)
trap 'rm -f "$machine"' EXIT
{
  echo "\$ nproc"; nproc
  echo "\$ lscpu (excerpt)"; lscpu | grep -E '^(Architecture|CPU\(s\)|Model name|Thread\(s\) per core|Core\(s\) per socket|Socket\(s\)|CPU max MHz|L2 cache|L3 cache):' || true
  echo "\$ free -h"; free -h
  echo "\$ uname -srm"; uname -srm
  echo "\$ uptime (load from other work on the machine during the run)"; uptime
  echo "node $("$node" --version); $("$bin" --version)"
} >"$machine"

# The C load driver (bench/mcp/driver.c), built with the release build.
build=${BUILD:-$root/build}
ninja -C "$build" bench/mcp/mcp_bench_driver >/dev/null
drv=$build/bench/mcp/mcp_bench_driver

# Where the CPU goes: callgrind instructions per call (bench/mcp/profile.sh; skipped without
# valgrind or with BENCH_PROFILE=0). Kept in bench/mcp/profile.md too, the history of profiles.
prof=$(mktemp)
trap 'rm -f "$machine" "$prof"' EXIT
if [ "${BENCH_PROFILE:-1}" != 0 ] && command -v valgrind >/dev/null; then
  BUILD=$build PEERMCP_BIN=$bin bash "$root/bench/mcp/profile.sh" --out "$prof" && cat "$prof" >>"$root/bench/mcp/profile.md"
fi

nice -n 5 "$node" "$root/bench/mcp/bench.mjs" --peermcp "$bin" --driver "$drv" --seconds "${BENCH_SECONDS:-3}" \
  --trials "${BENCH_TRIALS:-3}" --json "$root/bench/mcp/last.json" --results "$root/bench/RESULTS.md" --machine "$machine" \
  --profile "$prof"
