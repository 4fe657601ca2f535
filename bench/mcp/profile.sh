#!/usr/bin/env bash
# bench/mcp/profile.sh — where a tools/call's CPU goes: instruction counts under callgrind,
# which are stable on a busy shared machine where CPU time is not (make bench-mcp includes the
# result, bench/mcp/profile.md, in the "MCP (bench-mcp)" section of bench/RESULTS.md).
#
#   bench/mcp/profile.sh [--label TEXT] [--out FILE]     (PEERMCP_BIN, BUILD as in run.sh)
#
# Runs `peermcp serve --no-p2p` under callgrind twice, driven by mcp_bench_driver with 32 calls
# in flight (the trivial `echo` tool over stdio): 2,000 and 12,000 calls. The difference of the
# two totals over 10,000 is the cost of one call, start-up and shutdown cancelled out. The MCP
# Tasks runner is switched off (PEERMCP_MCP_TASKS_RUNNER=0): its idle polling is timed, and
# under callgrind's ~50× slowdown it would be counted into the calls. Appends to FILE (default
# bench/mcp/profile.md) a section with instructions per call and the top symbols (self cost,
# the longer run).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$root/build}
bin=${PEERMCP_BIN:-$BUILD/peermcp}
drv=$BUILD/bench/mcp/mcp_bench_driver
label=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "?")
out=$root/bench/mcp/profile.md
while [ $# -gt 0 ]; do
  case $1 in
    --label) label=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--label TEXT] [--out FILE]" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "profile.sh: valgrind missing (scripts/setup.sh --tests)" >&2; exit 1; }
[ -x "$drv" ] || ninja -C "$BUILD" bench/mcp/mcp_bench_driver >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # calls outfile
  local d=$tmp/state-$1
  PEERMCP_TEST_TOOLS=1 PEERMCP_MCP_TASKS_RUNNER=0 HOME=$tmp XDG_STATE_HOME=$d XDG_CONFIG_HOME=$tmp/config \
    nice "$drv" --seconds 100000 --warmup 0 --seq-seconds 0 --calls "$1" --inflight 32 -- \
    valgrind --tool=callgrind --callgrind-out-file="$2" "$bin" serve --no-p2p --state-dir "$d" --log-level warning \
    >/dev/null 2>"$tmp/err-$1" || { tail -5 "$tmp/err-$1" >&2; exit 1; }
  grep -E '^summary:' "$2" | awk '{print $2}'
}
a=$(run 2000 "$tmp/a.cg")
b=$(run 12000 "$tmp/b.cg")
per=$(( (b - a) / 10000 ))
{
  echo "### callgrind, $label ($(date -u +%Y-%m-%d))"
  echo
  echo "Instructions per tools/call (echo, 32 in flight, stdio): **$per** ((${b} − ${a}) / 10,000)."
  echo
  echo "Top symbols by self cost (12,000-call run, start-up and shutdown included):"
  echo
  echo '```'
  # awk keeps 15 lines itself: a `head` would close the pipe early, and pipefail stop the script
  callgrind_annotate "$tmp/b.cg" 2>/dev/null | awk '/^-+$/{n++} n>=4 && /%\)/ && k++ < 15' |
    sed -E 's#\./[^ ]*/([^/ ]+:)#\1#; s#\[/[^]]*/([^/]+)\]#[\1]#; s#  +# #g'
  echo '```'
  echo
} >>"$out"
echo "profile.sh: $per instructions per call; appended to $out" >&2
