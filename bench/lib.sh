# bench/lib.sh — sourced by the bench scripts: the temporary directory of a run and the processes it
# starts, cleaned up however the script ends.
#   bench_begin [PARENT]  makes $tmp (mktemp -d, under PARENT if given), empties pids and traps EXIT:
#                         every PID the script appends to pids (and that process's children) gets
#                         TERM, then KILL if still there 0.3 s later; $tmp is removed unless KEEP_TMP
#                         is set; a function bench_cleanup_extra, if the script defines one, runs last.
bench_cleanup() {
  local p alive=0
  for p in "${pids[@]}"; do
    kill $(pgrep -P "$p" 2>/dev/null) "$p" 2>/dev/null && alive=1
  done
  if [ "$alive" = 1 ]; then
    sleep 0.3
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  fi
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"
  if declare -F bench_cleanup_extra >/dev/null; then bench_cleanup_extra; fi
}
bench_begin() {
  if [ -n "${1:-}" ]; then tmp=$(mktemp -d "$1/peermcp-bench.XXXXXX") || exit 1; else tmp=$(mktemp -d) || exit 1; fi
  pids=()
  trap bench_cleanup EXIT
}
