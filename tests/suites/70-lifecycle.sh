#!/usr/bin/env bash
# Lifecycle of `peermcp serve` with everything on (issue 5 item 8): MCP on stdio, the libp2p
# peer, the P2P service and in-process workers (p2p.workers = 2). Each run does real work (an
# MCP tool call, a task submitted over the network and run by a local worker, a call still in
# flight at shutdown) and is then stopped by EOF on stdin, SIGINT or SIGTERM. Under the ASan
# build (LeakSanitizer on) it must exit 0 within a bounded time with no sanitizer report and no
# libuv handle left open; once under valgrind (release build) with no definite leak or memory
# error and no thread left unjoined. Last line: "lifecycle: N passed, N failed".
set -u
. "$(dirname "$0")/../support/suite.sh"
suite_init lifecycle
asan_bin=$PEERMCP_ASAN_BIN
rel_bin=$PEERMCP_BIN
tmp=$suite_tmp
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export PEERMCP_TEST_TOOLS=1
unset IPFS_ACCELERATE_PY_TASK_P2P_TOKEN IPFS_DATASETS_PY_TASK_P2P_TOKEN

# The driver starts serve (argv after the options), speaks MCP to it, submits a task over the
# network with the CLI, starts a slow call, stops serve the chosen way and reports one JSON
# line with what happened. Every wait is bounded.
cat >"$tmp/drive.py" <<'PYEOF'
import json, os, subprocess, sys, time
sys.path.insert(0, os.path.join(os.environ["PEERMCP_ROOT"], "tests", "support"))
from jsonrpc_lines import LineClient
mode, state, cli_bin, cli_state, errf, grace = sys.argv[1:7]
cmd = sys.argv[7:]
grace = float(grace)
res = {"mode": mode, "steps": []}
c = LineClient(cmd, stderr_path=errf)
def cli(*args):
    out = subprocess.run([cli_bin, *args, "--state-dir", cli_state], capture_output=True, text=True, timeout=90)
    return json.loads(out.stdout or "null")
try:
    c.initialize(name="lc")
    r = c.request("tools/call", {"name": "echo", "arguments": {"x": 1}})
    res["steps"].append(("mcp echo", (r.get("result") or {}).get("structuredContent", {}).get("x") == 1))
    ann = os.path.join(state, "announce.json")
    t0 = time.time()
    while not (os.path.exists(ann) and os.path.getsize(ann) > 0) and time.time() - t0 < 60: time.sleep(0.1)
    ma = json.load(open(ann))["multiaddr"]
    sub = cli("task", "submit", "--peer", ma, "--type", "tool.call", json.dumps({"tool": "echo", "args": {"n": 7}}))
    got = cli("task", "wait", "--peer", ma, "--timeout", "60", sub["task_id"])
    res["steps"].append(("task run by an in-process worker",
                         (got or {}).get("task", {}).get("result", {}).get("result", {}).get("n") == 7))
    # a call still running when the stop arrives: it finishes (EOF) or is answered (signal)
    c.request("tools/call", {"name": "sleep", "arguments": {"ms": 300}}, wait=False)
    time.sleep(0.05)
    res["rc"] = c.stop(mode, grace)
except Exception as e:
    res["error"] = repr(e)
    c.kill()
print(json.dumps(res), flush=True)
PYEOF

cli_state="$tmp/cli"
mkdir -p "$cli_state"
cli_id=$("$rel_bin" id --state-dir "$cli_state" 2>/dev/null || "$asan_bin" id --state-dir "$cli_state" 2>/dev/null)
cli_bin="$rel_bin"
[ -x "$cli_bin" ] || cli_bin="$asan_bin"

# run_one NAME MODE GRACE_S BINARY [PREFIX…]: one serve lifetime; checks its report and stderr.
run_one() {
  local name=$1 mode=$2 grace=$3
  shift 3
  local st="$tmp/$name"
  mkdir -p "$st"
  cat >"$st.json" <<EOF
{"p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "workers": 2, "trusted_peers": ["$cli_id"]}}
EOF
  local bin=$1
  shift
  local out
  out=$(timeout $((${grace%.*} + 300)) python3 "$tmp/drive.py" "$mode" "$st" "$cli_bin" "$cli_state" "$st.err" "$grace" \
    "$@" "$bin" serve --config "$st.json" --state-dir "$st" 2>"$st.py.err")
  local steps_ok rc
  steps_ok=$(python3 -c 'import json,sys; d=json.loads(sys.stdin.read() or "{}"); print("yes" if d.get("steps") and all(s[1] for s in d["steps"]) and len(d["steps"]) == 2 else "no: %s" % d)' <<<"$out")
  rc=$(python3 -c 'import json,sys; d=json.loads(sys.stdin.read() or "{}"); print(d.get("rc"))' <<<"$out")
  if [ "$steps_ok" = yes ]; then ok "$name: serves MCP and runs a network task on its workers"; else ko "$name: work" "$steps_ok $(tail -2 "$st.py.err")"; fi
  if [ "$rc" = 0 ]; then ok "$name: exits 0"; else ko "$name: exits 0" "rc=$rc $(grep -m3 -E 'error|Sanitizer' "$st.err")"; fi
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|WARNING: ThreadSanitizer|Invalid (read|write)|definitely lost|ERROR SUMMARY: [1-9]' "$st.err" "$st.vg" 2>/dev/null; then
    ko "$name: no leak or memory error" "$(grep -m1 -A6 -E 'Sanitizer|runtime error|Invalid|definitely lost|ERROR SUMMARY' "$st.err" "$st.vg" 2>/dev/null | head -8)"
  else
    ok "$name: no leak or memory error"
  fi
  if grep -q 'handles still open' "$st.err"; then ko "$name: no libuv handle left open"; else ok "$name: no libuv handle left open"; fi
  # valgrind lists a thread never joined as a "possibly lost" TLS block from pthread_create
  if [ -f "$st.vg" ]; then
    if grep -q 'pthread_create' "$st.vg"; then
      ko "$name: no thread left running" "$(grep -m1 -B8 pthread_create "$st.vg" | head -10)"
    else
      ok "$name: no thread left running"
    fi
  fi
}

if [ ! -x "$asan_bin" ] || [ -z "$cli_id" ]; then
  ko "setup" "no ASan binary ($asan_bin) or no CLI identity"
else
  run_one asan-eof eof 60 "$asan_bin"
  run_one asan-sigint int 60 "$asan_bin"
  run_one asan-sigterm term 60 "$asan_bin"
fi

# `peermcp worker --peer` (ASan) attached to a serve --no-stdio node: runs a task, then stops on
# SIGINT (the worker) and SIGTERM (the node); both exit 0 with no sanitizer report.
sanitizer_re='ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|handles still open'
if [ -x "$asan_bin" ] && [ -n "$cli_id" ]; then
  st="$tmp/wnode"
  mkdir -p "$st" "$tmp/wk"
  wk_id=$("$asan_bin" id --state-dir "$tmp/wk" 2>/dev/null)
  cat >"$st.json" <<EOF
{"p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$cli_id", "$wk_id"], "workers": 0}}
EOF
  # no in-process task runner nor workers on the node: the task must go to the worker. Both run without a
  # `timeout` wrapper: the signals below must reach them, not a wrapper (GNU timeout relays a
  # SIGINT to its whole process group and may exit 130 itself); the loop below bounds them.
  PEERMCP_MCP_TASKS_RUNNER=0 peermcp_bg "$st.err" "$asan_bin" serve --no-stdio --config "$st.json" --state-dir "$st"
  npid=$peermcp_pid
  ma=$(announce_multiaddr "$st")
  peermcp_bg "$tmp/wk.err" "$asan_bin" worker --peer "$ma" --state-dir "$tmp/wk" --slots 2 >"$tmp/wk.out"
  wpid=$peermcp_pid
  tid=$(timeout 120 "$cli_bin" task submit --peer "$ma" --type tool.call '{"tool":"echo","args":{"w":5}}' \
    --state-dir "$cli_state" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["task_id"])' 2>/dev/null)
  got=$(timeout 120 "$cli_bin" task wait --peer "$ma" --timeout 90 "$tid" --state-dir "$cli_state" 2>/dev/null |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["task"]; print(t["result"]["result"]["w"], t["assigned_worker"].startswith(sys.argv[1]))' "$wk_id" 2>/dev/null)
  if [ "$got" = "5 True" ]; then ok "worker: runs a task from the node"; else ko "worker: runs a task from the node" "got=$got $(tail -2 "$tmp/wk.err")"; fi
  for pair in "worker:$wpid:INT:$tmp/wk.err" "node:$npid:TERM:$st.err"; do
    IFS=: read -r who pid sig errf <<<"$pair"
    peermcp_stop "$pid" "$sig" 60
    rc=$peermcp_rc
    [ "$rc" = 137 ] && ko "$who: stops on SIG$sig within 60 s"
    if [ "$rc" = 0 ] && ! grep -qE "$sanitizer_re" "$errf"; then
      ok "$who: SIG$sig: exit 0, no leak, no handle left"
    else
      ko "$who: SIG$sig: exit 0, no leak, no handle left" "rc=$rc $(grep -m1 -A6 -E "$sanitizer_re" "$errf" | head -8)"
    fi
  done
fi

# valgrind on the release build (no sanitizer runtime in the way), stopped by SIGTERM.
if command -v valgrind >/dev/null 2>&1 && [ -x "$rel_bin" ]; then
  run_one valgrind-sigterm term 240 "$rel_bin" valgrind -q --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite,possible \
    --error-exitcode=99 --log-file="$tmp/valgrind-sigterm.vg"
else
  echo "valgrind or the release build missing: valgrind run skipped"
fi

suite_end
