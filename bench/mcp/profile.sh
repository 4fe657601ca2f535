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
#
# Issue 14's budget (metrics and traces < 2 % of a trivial call): the same tree is also built
# with -DPEERMCP_BENCH_NO_OBS (util/metrics.h: the request path's metrics and traces compiled
# out) in $BUILD-noobs and measured in the same run (five runs of each, the request path only);
# the section says what they cost. BENCH_OBS_BASELINE=0 skips that build and its runs.
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
obs_line=
if [ "${BENCH_OBS_BASELINE:-1}" != 0 ] && [ "$bin" = "$BUILD/peermcp" ]; then  # the baseline is of this tree
  nb=$BUILD-noobs
  [ -f "$nb/build.ninja" ] ||
    meson setup "$nb" "$root" --buildtype=release -Dtests=disabled -Dc_args=-DPEERMCP_BENCH_NO_OBS >/dev/null
  nice ninja -C "$nb" peermcp >/dev/null
  # Only the request path is counted (mcp_session_feed: parse, dispatch, the tool, the answer;
  # not stdio_write's output queue, not timers), 3,000 calls per run, five runs of each build
  # taken in turn. glibc's allocator internals (malloc.c) are counted apart: the heap's layout
  # moves them by ±150 instructions per call from run to run in either build (timers allocate
  # at different moments), and the metrics and traces allocate nothing (same malloc calls).
  obs_run() { # binary outfile -> "total without_allocator" per call
    local d=$tmp/obs-state
    rm -rf "$d"
    PEERMCP_TEST_TOOLS=1 PEERMCP_MCP_TASKS_RUNNER=0 HOME=$tmp XDG_STATE_HOME=$d XDG_CONFIG_HOME=$tmp/config \
      nice "$drv" --seconds 100000 --warmup 0 --seq-seconds 0 --calls 3000 --inflight 32 -- \
      valgrind --tool=callgrind --callgrind-out-file="$2" --collect-atstart=no --toggle-collect=mcp_session_feed \
      --toggle-collect=stdio_write "$1" serve --no-p2p --state-dir "$d" --log-level warning >/dev/null 2>"$tmp/err-obs" ||
      { tail -5 "$tmp/err-obs" >&2; exit 1; }
    callgrind_annotate "$2" 2>/dev/null | awk '
      /PROGRAM TOTALS/ { gsub(",", "", $1); tot = $1 }
      /%\)/ && /malloc\/malloc\.c/ { gsub(",", "", $1); al += $1 }
      END { printf "%d %d\n", tot / 3000, (tot - al) / 3000 }'
  }
  wi=(); wa=(); ni=(); na=()
  for i in 1 2 3 4 5; do
    r=$(obs_run "$bin" "$tmp/obs-w$i.cg"); read -r t x <<<"$r"; wi+=("$t"); wa+=("$x")
    r=$(obs_run "$nb/peermcp" "$tmp/obs-n$i.cg"); read -r t x <<<"$r"; ni+=("$t"); na+=("$x")
  done
  med() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
  W=$(med "${wi[@]}"); N=$(med "${ni[@]}"); WA=$(med "${wa[@]}"); NA=$(med "${na[@]}")
  pct() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN{printf "%+.2f", (a-b)*100/t}'; }
  obs_line="Metrics and traces (issue 14, budget < 2 %): the request path (mcp_session_feed, 3,000 calls, median of 5 runs) costs **$W** instructions per call with them and **$N** with them compiled out (-DPEERMCP_BENCH_NO_OBS, same tree): **$((W - N))**, **$(pct "$W" "$N" "$N") %**; without glibc's allocator internals, whose share moves by ±150 from run to run in either build: **$WA** vs **$NA**, **+$((WA - NA))**, **$(pct "$WA" "$NA" "$N") %** of the call. Runs: with ${wi[*]} / ${wa[*]}; without ${ni[*]} / ${na[*]}."
fi
{
  echo "### callgrind, $label ($(date -u +%Y-%m-%d))"
  echo
  echo "Instructions per tools/call (echo, 32 in flight, stdio): **$per** ((${b} − ${a}) / 10,000)."
  echo
  if [ -n "$obs_line" ]; then echo "$obs_line"; echo; fi
  echo "Top symbols by self cost (12,000-call run, start-up and shutdown included):"
  echo
  echo '```'
  # awk keeps 15 lines itself: a `head` would close the pipe early, and pipefail stop the script
  callgrind_annotate "$tmp/b.cg" 2>/dev/null | awk '/^-+$/{n++} n>=4 && /%\)/ && k++ < 15' |
    sed -E 's#\./[^ ]*/([^/ ]+:)#\1#; s#\[/[^]]*/([^/]+)\]#[\1]#; s#  +# #g'
  echo '```'
  echo
} >>"$out"
echo "profile.sh: $per instructions per call; appended to $out${obs_line:+
$obs_line}" >&2
