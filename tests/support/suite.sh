# suite.sh — shared setup of the shell suites (tests/suites/NN-*.sh), sourced, never run.
#
#   . "$(dirname "$0")/../support/suite.sh"
#   suite_init mcp-stdio                 # root, binaries, node, $suite_tmp, counters, cleanup
#   ok "what held"; ko "what failed" "detail"
#   suite_tap "$report"                  # counts of a `node --test --test-reporter=tap` run
#   peermcp_bg "$suite_tmp/a.err" "$bin" serve --no-stdio …; pid=$peermcp_pid
#   ma=$(announce_multiaddr "$state")     # waits (60 s) for the node's announce.json
#   wait_for 30 test -s "$file"          # polls a command until it succeeds or time runs out
#   peermcp_stop "$pid" TERM 60; rc=$peermcp_rc   # signal, bounded wait, SIGKILL (137) if needed
#   suite_end                            # last line "NAME: P passed, F failed"; exit status
#
# Every wait is bounded; every process started with peermcp_bg is stopped at exit, and
# $suite_tmp removed. Nothing here sleeps and then asserts (docs/testing.md).

suite_init() {
  suite_name=$1
  root=${PEERMCP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
  export PEERMCP_ROOT="$root"
  export PEERMCP_BIN="${PEERMCP_BIN:-$root/build/peermcp}"
  export PEERMCP_ASAN_BIN="${PEERMCP_ASAN_BIN:-$root/build-asan/peermcp}"
  node="$root/tests/node_modules/node/bin/node"
  [ -x "$node" ] || node=$(command -v node || true)
  pass=0
  fail=0
  suite_pids=()
  suite_tmp=$(mktemp -d "${TMPDIR:-/tmp}/peermcp-$suite_name.XXXXXX")
  trap suite_cleanup EXIT
}

suite_cleanup() {
  local p
  for p in "${suite_pids[@]}"; do
    kill -0 "$p" 2>/dev/null && peermcp_stop "$p" TERM 10
  done
  rm -rf "$suite_tmp"
}

ok() { pass=$((pass + 1)); echo "PASS $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }

suite_end() {
  echo "$suite_name: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}

# suite_tap REPORT [RC]: adds the "# pass"/"# fail" counts of a node TAP report; a run that
# exited non-zero (RC) without a failure counted is one failure. Shows the failures.
suite_tap() {
  local report=$1 rc=${2:-0} p f
  grep -E '^(not ok|# (tests|pass|fail))' "$report" >&2
  grep -B2 -A30 '^not ok' "$report" | head -200 >&2
  p=$(grep -E '^# pass ' "$report" | tail -n1 | awk '{print $3}')
  f=$(grep -E '^# fail ' "$report" | tail -n1 | awk '{print $3}')
  p=${p:-0}
  f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  pass=$((pass + p))
  fail=$((fail + f))
}

# wait_for SECONDS CMD…: runs CMD every 0.1 s until it succeeds (0) or SECONDS pass (1).
wait_for() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  "$@"
}

# peermcp_bg STDERR_FILE CMD…: starts CMD in the background (stdin from /dev/null unless the
# caller redirects), stderr to the file; its pid in $peermcp_pid, stopped at exit if still up.
peermcp_bg() {
  local errf=$1
  shift
  "$@" 2>"$errf" &
  peermcp_pid=$!
  suite_pids+=("$peermcp_pid")
}

# peermcp_stop PID [SIG] [GRACE_S]: sends SIG (default TERM), waits up to GRACE_S (default
# 60) for the process to end, then SIGKILLs it; its exit status in $peermcp_rc (137 when it
# had to be killed). Call it in the suite's own shell (not in $(…)): only the parent can wait.
peermcp_stop() {
  local pid=$1 sig=${2:-TERM} grace=${3:-60} i
  peermcp_rc=0
  kill "-$sig" "$pid" 2>/dev/null
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || peermcp_rc=$?
}

# announce_multiaddr STATE_DIR [SECONDS]: the multiaddr a node wrote to its announce.json
# (waits up to SECONDS, default 60: ASan on a loaded machine); empty when it never came.
announce_multiaddr() {
  local st=$1 secs=${2:-60}
  wait_for "$secs" test -s "$st/announce.json" || return 1
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["multiaddr"])' "$st/announce.json" 2>/dev/null
}
