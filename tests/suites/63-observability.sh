#!/usr/bin/env bash
# Metrics, health and traces across processes (issue 14). Three nodes on 127.0.0.1:
#   A  serve, MCP on stdio driven by a python client, HTTP on port 0, the metrics listener on
#      port 0, p2p listen; trusts C (its worker); runs no worker and no MCP-task runner itself
#   B  serve --no-stdio, trusts A; its metrics listener too
#   C  `peermcp worker --peer A`
#   E, F  DHT nodes: F bootstraps from E and from a dead address (bootstrap and discovery
#      families by exact counts); W  `peermcp worker --metrics-listen` (its metrics listener)
# Checks: /metrics passes `promtool check metrics` (HTTP listener and metrics listener), the
# metrics listener serves /metrics, /healthz and /readyz only, every family moves by exactly the
# number of operations performed, status shows the operator's figures, and one trace id joins
# MCP client → A p2p_remote_call_tool → B and a task submitted on A and run by C's worker in
# the logs of all three processes. Last line "observability: N passed, N failed".
set -u
root="${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
bin="${PEERMCP_ASAN_BIN:-$root/build-asan/peermcp}"
[ -x "$bin" ] || bin="${PEERMCP_BIN:-$root/build/peermcp}"
tmp=$(mktemp -d)
pass=0
fail=0
pids=()
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export PEERMCP_TEST_TOOLS=1
unset IPFS_ACCELERATE_PY_TASK_P2P_TOKEN IPFS_DATASETS_PY_TASK_P2P_TOKEN PEERMCP_METRICS_LISTEN

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ -n "${KEEP_TMP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "PASS $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
check() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else ko "$name"; fi
}
jget() { python3 -c "import json,sys; d=json.loads(sys.stdin.read() or 'null'); print($1)" 2>/dev/null; }
id_of() { "$bin" id --state-dir "$tmp/$1" 2>/dev/null; }
ma_of() { python3 -c "import json; print(json.load(open('$tmp/$1/announce.json'))['multiaddr'])" 2>/dev/null; }
wait_file() { # up to 60 s (ASan start-up on a loaded machine)
  for _ in $(seq 600); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
murl() { python3 -c "import json; print(json.load(open('$tmp/$1/metrics.json'))['url'])" 2>/dev/null; }
stop_wait() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

if ! command -v promtool >/dev/null; then
  echo "SKIP promtool checks: promtool is not installed (scripts/setup.sh --tests installs the Debian package prometheus)"
fi

for n in a b c; do mkdir -p "$tmp/$n"; done
A_ID=$(id_of a)
C_ID=$(id_of c)
if [ -z "$A_ID" ] || [ -z "$C_ID" ]; then
  ko "setup: peermcp id"
  echo "observability: $pass passed, $fail failed"
  exit 1
fi
cat >"$tmp/b.json" <<EOF
{"p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$A_ID"]}, "metrics": {"listen": "127.0.0.1:0"}}
EOF
"$bin" serve --no-stdio --config "$tmp/b.json" --state-dir "$tmp/b" --log-level debug 2>"$tmp/b.err" &
B_PID=$!
pids+=($B_PID)
if ! wait_file "$tmp/b/announce.json" || ! wait_file "$tmp/b/metrics.json"; then
  ko "setup: node B starts"
  echo "observability: $pass passed, $fail failed"
  exit 1
fi
B_MA=$(ma_of b)
B_MURL=$(murl b)
cat >"$tmp/a.json" <<EOF
{"p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$C_ID"], "workers": 0},
 "mcp_tasks": {"runner": false}, "http": {"listen": ["127.0.0.1:0"]}}
EOF

# ---- the client of A: every check it makes is one line of JSON ----
cat >"$tmp/drive_a.py" <<'PYEOF'
import json, os, re, subprocess, sys, time, urllib.request, urllib.error
binp, tmp, b_ma, b_murl = sys.argv[1:5]
state = tmp + "/a"
p = subprocess.Popen([binp, "serve", "--config", tmp + "/a.json", "--state-dir", state, "--log-level", "debug",
                      "--metrics-listen", "127.0.0.1:0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=open(tmp + "/a.err", "w"), text=True)
open(tmp + "/a.pid", "w").write(str(p.pid))
nid = [0]
def out(check, ok, detail=None):
    print(json.dumps({"check": check, "ok": bool(ok), "detail": detail}), flush=True)
def rpc(method, params=None, meta=None):
    nid[0] += 1
    msg = {"jsonrpc": "2.0", "id": nid[0], "method": method}
    if params is not None or meta:
        msg["params"] = dict(params or {})
        if meta: msg["params"]["_meta"] = meta
    p.stdin.write(json.dumps(msg) + "\n"); p.stdin.flush()
    while True:
        line = p.stdout.readline()
        if not line: raise SystemExit("A closed stdout")
        r = json.loads(line)
        if r.get("id") == nid[0]: return r
def tool(name, args, meta=None):
    r = rpc("tools/call", {"name": name, "arguments": args}, meta)
    res = r.get("result") or {}
    return res.get("structuredContent"), bool(res.get("isError")), r
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=20) as r: return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e: return e.code, "", e.read().decode()
def scrape(url):
    fams = {}
    for line in get(url)[2].splitlines():
        if not line or line.startswith("#"): continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m: continue
        labels = tuple(sorted(re.findall(r'([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"', m.group(3) or "")))
        fams[(m.group(1), labels)] = float(m.group(4))
    return fams
def val(fams, name, **labels):
    return fams.get((name, tuple(sorted(labels.items()))), 0.0)
def wait_for(fn, secs=30):
    end = time.time() + secs
    while time.time() < end:
        v = fn()
        if v: return v
        time.sleep(0.2)
    return fn()
try:
    for _ in range(600):
        if os.path.exists(state + "/metrics.json") and os.path.exists(state + "/http.json"): break
        time.sleep(0.1)
    murl = json.load(open(state + "/metrics.json"))["url"]
    base = murl[: -len("/metrics")]
    hurl = json.load(open(state + "/http.json"))["url"][: -len("/mcp")] + "/metrics"
    rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "suite", "version": "1"}})
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n"); p.stdin.flush()

    # --- the metrics listener serves three paths and nothing else ---
    st, ctype, body = get(murl)
    out("metrics listener: GET /metrics is 200 text/plain; version=0.0.4", st == 200 and "version=0.0.4" in ctype, ctype)
    open(tmp + "/a.metrics.txt", "w").write(body)
    out("metrics listener: /healthz and /readyz answer", get(base + "/healthz")[0] == 200 and get(base + "/readyz")[0] == 200)
    out("metrics listener: /mcp and other paths are 404", get(base + "/mcp")[0] == 404 and get(base + "/x")[0] == 404)
    st, ctype, body = get(hurl)
    out("HTTP listener: GET /metrics", st == 200 and "peermcp_build_info" in body, st)
    open(tmp + "/a.http-metrics.txt", "w").write(body)

    # --- each family moves by exactly the number of operations performed ---
    m0 = scrape(murl)
    for i in range(5): tool("echo", {"i": i})
    _, err, r = tool("no_such_tool", {})
    m1 = scrape(murl)
    out("peermcp_tool_calls_total{tool=echo,outcome=success} +5",
        val(m1, "peermcp_tool_calls_total", tool="echo", outcome="success") - val(m0, "peermcp_tool_calls_total", tool="echo", outcome="success") == 5)
    out("peermcp_tool_duration_seconds_count{tool=echo} +5",
        val(m1, "peermcp_tool_duration_seconds_count", tool="echo") - val(m0, "peermcp_tool_duration_seconds_count", tool="echo") == 5)
    out("an unregistered tool counts as tool=other, outcome=unknown_tool (+1)",
        val(m1, "peermcp_tool_calls_total", tool="other", outcome="unknown_tool") - val(m0, "peermcp_tool_calls_total", tool="other", outcome="unknown_tool") == 1)
    d_ok = val(m1, "peermcp_mcp_requests_total", transport="stdio", method="tools/call", outcome="ok") - val(m0, "peermcp_mcp_requests_total", transport="stdio", method="tools/call", outcome="ok")
    d_err = val(m1, "peermcp_mcp_requests_total", transport="stdio", method="tools/call", outcome="error") - val(m0, "peermcp_mcp_requests_total", transport="stdio", method="tools/call", outcome="error")
    out("peermcp_mcp_requests_total{stdio,tools/call}: ok +5, error +1", d_ok == 5 and d_err == 1, [d_ok, d_err])
    d = val(m1, "peermcp_mcp_request_duration_seconds_count", transport="stdio", method="tools/call") - val(m0, "peermcp_mcp_request_duration_seconds_count", transport="stdio", method="tools/call")
    out("peermcp_mcp_request_duration_seconds_count{stdio,tools/call} +6", d == 6, d)

    m0 = scrape(murl)
    tool("cache_set", {"key": "k1", "value": {"v": 1}})
    tool("cache_set", {"key": "k2", "value": {"v": 2}})
    tool("cache_get", {"key": "k1"})
    tool("cache_get", {"key": "absent"})
    tool("cache_delete", {"key": "k2"})
    m1 = scrape(murl)
    dv = lambda n, **l: val(m1, n, **l) - val(m0, n, **l)
    out("peermcp_cache_ops_total: set ok +2, get hit +1, get miss +1, delete ok +1",
        [dv("peermcp_cache_ops_total", op="set", outcome="ok"), dv("peermcp_cache_ops_total", op="get", outcome="hit"),
         dv("peermcp_cache_ops_total", op="get", outcome="miss"), dv("peermcp_cache_ops_total", op="delete", outcome="ok")] == [2, 1, 1, 1])
    out("peermcp_cache_entries +1 and peermcp_cache_bytes grew", dv("peermcp_cache_entries") == 1 and dv("peermcp_cache_bytes") > 0)

    m0 = scrape(murl)
    for i in range(3): tool("task_submit", {"task_type": "nobody.runs.this", "payload": {"i": i}})
    m1 = scrape(murl)
    out("peermcp_queue_ops_total{op=submit,outcome=ok} +3", dv("peermcp_queue_ops_total", op="submit", outcome="ok") == 3)
    q0 = val(m0, "peermcp_queue_tasks", status="queued")
    q1 = wait_for(lambda: val(scrape(murl), "peermcp_queue_tasks", status="queued") - q0 == 3, 30)
    out("peermcp_queue_tasks{status=queued} +3 (counted every 5 s)", q1)

    b0 = scrape(b_murl)
    r, err, _ = tool("p2p_remote_cache_set", {"key": "rk", "value": 1, "remote_multiaddr": b_ma})
    r, err, _ = tool("p2p_remote_cache_get", {"key": "rk", "remote_multiaddr": b_ma})
    r, err, _ = tool("p2p_remote_submit_task", {"task_type": "nobody.runs.this", "payload": {}, "remote_multiaddr": b_ma})
    b1 = scrape(b_murl)
    bv = lambda n, **l: val(b1, n, **l) - val(b0, n, **l)
    out("B: peermcp_p2p_ops_total cache.set +1, cache.get +1, submit +1 (ok)",
        [bv("peermcp_p2p_ops_total", op="cache.set", outcome="ok"), bv("peermcp_p2p_ops_total", op="cache.get", outcome="ok"),
         bv("peermcp_p2p_ops_total", op="submit", outcome="ok")] == [1, 1, 1])
    out("B: peermcp_p2p_op_duration_seconds_count{op=submit} +1", bv("peermcp_p2p_op_duration_seconds_count", op="submit") == 1)
    out("B: peermcp_mcp_requests_total{transport=p2p,method=tools/call,outcome=ok} +3",
        bv("peermcp_mcp_requests_total", transport="p2p", method="tools/call", outcome="ok") == 3)
    out("B: a peer connected, bytes in both directions",
        val(b1, "peermcp_p2p_peers_connected") >= 1 and bv("peermcp_p2p_bytes_total", direction="in") > 0
        and bv("peermcp_p2p_bytes_total", direction="out") > 0)

    # --- status for people ---
    # requests on A so far: initialize and 17 tools/call on stdio, plus C's claims over p2p (a
    # number that depends on timing: claims wait for work)
    r, err, _ = tool("p2p_service_status", {"include_peers": False})
    h = (r or {}).get("health") or {}
    req = h.get("requests") or {}
    out("p2p_service_status: uptime, requests, error rate, p50/p99, queue, cache, peers, refused",
        h.get("uptime_s", -1) >= 0 and req.get("total", 0) >= 18 and req.get("errors", 0) >= 1 and "error_rate" in req
        and req.get("p50_ms") is not None and req.get("p99_ms") is not None and h.get("queue", {}).get("queued", 0) >= 3
        and h.get("cache", {}).get("entries", 0) >= 1 and h.get("peers_connected", 0) >= 1 and "refused" in h, h)
    out("p2p_service_status: the last minute", wait_for(lambda: (tool("p2p_service_status", {"include_peers": False})[0] or {}).get("health", {}).get("requests", {}).get("last_minute"), 15))

    # --- one trace through A, B and C ---
    trace = os.urandom(16).hex()
    tp = "00-%s-%s-01" % (trace, os.urandom(8).hex())
    r, err, _ = tool("p2p_remote_call_tool", {"tool_name": "echo", "args": {"t": 1}, "remote_multiaddr": b_ma}, {"traceparent": tp})
    out("A → B remote call with the client's traceparent", not err, r)
    r, err, _ = tool("task_submit", {"task_type": "tool.call", "payload": {"tool": "echo", "args": {"t": 2}}}, {"traceparent": tp})
    tid = (r or {}).get("task_id")
    out("task submitted on A", not err and tid, r)
    done = wait_for(lambda: ((tool("task_get", {"task_id": tid or ""})[0] or {}).get("task") or {}).get("status") == "completed", 60)
    out("C's worker ran the task", done)
    r, err, _ = tool("task_get", {"task_id": tid or ""})
    out("the task stores the submitting request's traceparent", (((r or {}).get("task") or {}).get("traceparent") or "")[3:35] == trace, r)
    # a request without traceparent gets a new trace, which still reaches B
    _, err, raw = tool("p2p_remote_call_tool", {"tool_name": "echo", "args": {"t": 3}, "remote_multiaddr": b_ma})
    json.dump({"trace": trace, "plain_rpc_id": nid[0]}, open(tmp + "/trace.json", "w"))
finally:
    p.stdin.close() # with HTTP on, end of input closes only stdio: SIGTERM stops the node
    time.sleep(0.5)
    p.terminate()
    try: p.wait(timeout=60)
    except Exception: p.kill()
    out("A stops cleanly on SIGTERM", p.returncode == 0, p.returncode)
PYEOF

# C: a worker claiming from A (started once A announces itself)
( wait_file "$tmp/a/announce.json" && exec timeout 600 "$bin" worker --peer "$(ma_of a)" --state-dir "$tmp/c" --slots 1 \
    --log-level debug 2>"$tmp/c.err" >"$tmp/c.out" ) &
C_PID=$!
pids+=($C_PID)

timeout 300 python3 "$tmp/drive_a.py" "$bin" "$tmp" "$B_MA" "$B_MURL" >"$tmp/a.out" 2>"$tmp/a.py.err"
while read -r line; do
  name=$(echo "$line" | jget 'd["check"]')
  if [ "$(echo "$line" | jget 'd["ok"]')" = "True" ]; then ok "$name"; else ko "$name" "$(echo "$line" | jget 'd.get("detail")')"; fi
done <"$tmp/a.out"
[ -s "$tmp/a.out" ] || ko "node A driver produced no results" "$(tail -3 "$tmp/a.py.err")"

# ---- promtool on what A served (both listeners) and on B now ----
if command -v promtool >/dev/null; then
  for f in a.metrics.txt a.http-metrics.txt; do
    check "promtool check metrics: $f" sh -c "[ -s '$tmp/$f' ] && promtool check metrics < '$tmp/$f'"
  done
  curl -s "$B_MURL" >"$tmp/b.metrics.txt"
  check "promtool check metrics: B after P2P traffic" sh -c "[ -s '$tmp/b.metrics.txt' ] && promtool check metrics < '$tmp/b.metrics.txt'"
fi

# ---- refusals: a stranger D (trusted by nobody, no token) asks B twice ----
auth_fail() { # value of peermcp_auth_failures_total{transport=$1,reason=$2} on B now
  curl -s "$B_MURL" | python3 -c "
import re, sys
v = 0.0
for line in sys.stdin:
    m = re.match(r'^peermcp_auth_failures_total\{transport=\"$1\",reason=\"$2\"\} (\S+)$', line)
    if m: v = float(m.group(1))
print(int(v))"
}
mkdir -p "$tmp/d"
f0=$(auth_fail p2p missing_credential)
for k in 1 2; do timeout 60 "$bin" cache get --peer "$B_MA" --state-dir "$tmp/d" rk >"$tmp/d.out" 2>"$tmp/d.err"; done
f1=$(auth_fail p2p missing_credential)
check "B: peermcp_auth_failures_total{transport=p2p,reason=missing_credential} +2 for two refused requests" \
  [ "$((f1 - f0))" = 2 ]
check "B: the stranger was refused" grep -q unauthorized "$tmp/d.out" "$tmp/d.err"


# ---- discovery and bootstrap families (the Python P2PMetricsCollector's events) ----
# E: a DHT server; F bootstraps from E and from a dead address (a port nobody listens on): one
# round, two dials, one ok and one failed, the bootstrap peer found once.
mval() { # mval URL FAMILY 'label="v",…' → the series' value (0 when absent)
  curl -s "$1" | python3 -c '
import sys
want = sys.argv[1] + "{" + sys.argv[2] + "} "
v = 0.0
for line in sys.stdin:
    if line.startswith(want): v = float(line.split()[-1])
print(int(v))' "$2" "$3"
}
rounds() { echo $(($(mval "$1" peermcp_bootstrap_rounds_total 'outcome="ok"') + $(mval "$1" peermcp_bootstrap_rounds_total 'outcome="failed"'))); }
for n in e f w; do mkdir -p "$tmp/$n"; done
cat >"$tmp/e.json" <<EOF
{"p2p": {"profile": "private", "listen": ["/ip4/127.0.0.1/tcp/0"], "workers": 0}, "metrics": {"listen": "127.0.0.1:0"}}
EOF
"$bin" serve --no-stdio --config "$tmp/e.json" --state-dir "$tmp/e" --log-level debug 2>"$tmp/e.err" &
E_PID=$!
pids+=($E_PID)
if wait_file "$tmp/e/announce.json" && wait_file "$tmp/e/metrics.json"; then
  DEAD=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1]); s.close()")
  cat >"$tmp/f.json" <<EOF
{"p2p": {"profile": "private", "listen": ["/ip4/127.0.0.1/tcp/0"], "workers": 0,
         "bootstrap": ["$(ma_of e)", "/ip4/127.0.0.1/tcp/$DEAD/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"]},
 "metrics": {"listen": "127.0.0.1:0"}}
EOF
  "$bin" serve --no-stdio --config "$tmp/f.json" --state-dir "$tmp/f" --log-level debug 2>"$tmp/f.err" &
  F_PID=$!
  pids+=($F_PID)
  if wait_file "$tmp/f/metrics.json"; then
    F_MURL=$(murl f)
    for _ in $(seq 600); do # the round is over when it is counted (up to 60 s on a loaded machine)
      [ "$(rounds "$F_MURL")" -ge 1 ] && break
      sleep 0.1
    done
    check "F: peermcp_bootstrap_rounds_total{outcome=ok} 1" [ "$(mval "$F_MURL" peermcp_bootstrap_rounds_total 'outcome="ok"')" = 1 ]
    check "F: peermcp_bootstrap_rounds_total{outcome=failed} 0" [ "$(mval "$F_MURL" peermcp_bootstrap_rounds_total 'outcome="failed"')" = 0 ]
    check "F: peermcp_bootstrap_dials_total{outcome=ok} 1 (E)" [ "$(mval "$F_MURL" peermcp_bootstrap_dials_total 'outcome="ok"')" = 1 ]
    check "F: peermcp_bootstrap_dials_total{outcome=failed} 1 (the dead address)" [ "$(mval "$F_MURL" peermcp_bootstrap_dials_total 'outcome="failed"')" = 1 ]
    check "F: peermcp_discovery_peers_found_total{source=bootstrap} 1" [ "$(mval "$F_MURL" peermcp_discovery_peers_found_total 'source="bootstrap"')" = 1 ]
    check "E (no bootstrap peers): no bootstrap round" [ "$(rounds "$(murl e)")" = 0 ]
    if command -v promtool >/dev/null; then
      curl -s "$F_MURL" >"$tmp/f.metrics.txt"
      check "promtool check metrics: F after bootstrap" sh -c "[ -s '$tmp/f.metrics.txt' ] && promtool check metrics < '$tmp/f.metrics.txt'"
    fi
  else
    ko "setup: node F starts"
  fi
  stop_wait "$F_PID"
else
  ko "setup: node E starts"
fi
stop_wait "$E_PID"

# ---- peermcp worker --metrics-listen: the same listener for a worker process ----
"$bin" worker --metrics-listen 127.0.0.1:0 --state-dir "$tmp/w" --log-level info 2>"$tmp/w.err" &
W_PID=$!
pids+=($W_PID)
if wait_file "$tmp/w/metrics.json"; then
  W_MURL=$(murl w)
  check "worker --metrics-listen: /metrics serves the families" sh -c "curl -sf '$W_MURL' | grep -q '^# TYPE peermcp_queue_ops_total counter'"
  check "worker --metrics-listen: /healthz" curl -sf -o /dev/null "${W_MURL%/metrics}/healthz"
  check "worker --metrics-listen: nothing else (/mcp 404)" [ "$(curl -s -o /dev/null -w '%{http_code}' "${W_MURL%/metrics}/mcp")" = 404 ]
else
  ko "worker --metrics-listen: metrics.json written" "$(tail -3 "$tmp/w.err")"
fi
stop_wait "$W_PID"
rc=0
"$bin" call --metrics-listen 127.0.0.1:0 --state-dir "$tmp/w" echo '{}' >/dev/null 2>"$tmp/call-ml.err" || rc=$?
check "call --metrics-listen is refused (exit 2: a serve and worker flag)" [ "$rc" = 2 ]

got=$(timeout 60 "$bin" status --peer "$B_MA" --state-dir "$tmp/a" 2>/dev/null)
check "peermcp status --peer B: health figures" [ "$(echo "$got" | jget '"requests" in d["health"] and "p99_ms" in d["health"]["requests"] and "queue" in d["health"]')" = "True" ]
got=$(timeout 60 "$bin" status --state-dir "$tmp/b" 2>/dev/null)
check "peermcp status (local): the serving node's figures" [ "$(echo "$got" | jget 'd["health"]["pid"] == '"$B_PID"' and d["health"]["requests"]["total"] >= 3')" = "True" ]

# ---- one trace id in the logs of all three processes ----
stop_wait "$C_PID"
stop_wait "$B_PID"
TRACE=$(jget 'd["trace"]' <"$tmp/trace.json")
PLAIN_ID=$(jget 'd["plain_rpc_id"]' <"$tmp/trace.json")
if [ -n "$TRACE" ]; then
  check "trace id in A's log" grep -q "\"trace_id\":\"$TRACE\"" "$tmp/a.err"
  check "trace id in B's log (the remote call)" grep -q "\"trace_id\":\"$TRACE\"" "$tmp/b.err"
  check "trace id in C's log (the worker that ran the task)" grep -q "\"trace_id\":\"$TRACE\"" "$tmp/c.err"
  line=$(grep "\"trace_id\":\"$TRACE\"" "$tmp/a.err" | grep '"msg":"dispatch"' | head -1)
  check "A's line has request_id, rpc_id and transport" [ "$(echo "$line" | jget '"request_id" in d and "rpc_id" in d and d["transport"] == "stdio"')" = "True" ]
  line=$(grep "\"trace_id\":\"$TRACE\"" "$tmp/b.err" | grep '"msg":"dispatch"' | head -1)
  check "B's line names the remote caller (peer_id = A) and transport p2p" [ "$(echo "$line" | jget 'd["peer_id"] == "'"$A_ID"'" and d["transport"] == "p2p"')" = "True" ]
  plain=$(grep '"msg":"dispatch"' "$tmp/a.err" | grep "\"rpc_id\":$PLAIN_ID," | grep '"tool":"p2p_remote_call_tool"' | head -1 | jget 'd["trace_id"]')
  check "a request without traceparent gets a trace of its own that reaches B" \
    sh -c "[ -n '$plain' ] && [ '$plain' != '$TRACE' ] && grep -q '\"trace_id\":\"$plain\"' '$tmp/b.err'"
else
  ko "the driver recorded the trace"
fi

echo "observability: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
