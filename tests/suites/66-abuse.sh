#!/usr/bin/env bash
# Holding under abuse (issue 9 items 1–4, 6): each attack of tests/service/attacks.c runs against
# a fresh `peermcp serve --no-stdio` on 127.0.0.1 while a trusted peer keeps using it
# (tests/service/abuse_driver), and the server's memory (VmRSS), threads and the trusted
# peer's latency are checked against stated bounds — generous, for a loaded 2-core machine. The
# server is the release build when there is one (ASan's quarantine holds freed memory, so its
# RSS says little), else the ASan one. Each check is one test; last line "abuse: N passed, N failed".
# Also: the process-wide budget with 8 peers together over it, paused readers with 1 MB ids, the
# node's CPU under item 2, and items 8 and 11 through a js-libp2p peer (mcpp_peer.mjs).
set -u
root="${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
bin="${PEERMCP_BIN:-$root/build/peermcp}"
[ -x "$bin" ] || bin="${PEERMCP_ASAN_BIN:-$root/build-asan/peermcp}"
driver="${ABUSE_DRIVER:-$root/build-asan/tests/service/abuse_driver}"
tmp=$(mktemp -d)
pass=0
fail=0
pids=()
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export PEERMCP_TEST_TOOLS=1
unset IPFS_ACCELERATE_PY_TASK_P2P_TOKEN IPFS_DATASETS_PY_TASK_P2P_TOKEN
TOKEN="tok-abuse-$$"
ITEMS="${ABUSE_ITEMS:-1 2 3 4 6 8 fair}" # ABUSE_ITEMS="2 3" runs only those items (while working on one)
want() { [[ " $ITEMS " == *" $1 "* ]]; }

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "PASS $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
jget() { python3 -c "import json,sys; d=json.loads(sys.stdin.read() or 'null'); print($1)" 2>/dev/null; }
check() { # name, python expression over d (the driver's JSON), the JSON
  local name=$1 expr=$2 json=$3
  if [ "$(echo "$json" | jget "bool($expr)")" = "True" ]; then ok "$name"; else ko "$name" "$(echo "$json" | head -c 600)"; fi
}

if [ ! -x "$driver" ]; then
  ko "abuse_driver missing ($driver)"
  echo "abuse: $pass passed, $fail failed"
  exit 1
fi
mkdir -p "$tmp/ids/normal"
NORMAL_ID=$("$bin" id --state-dir "$tmp/ids/normal" 2>/dev/null)

SERVER_PID=
SERVER_MA=
# start_server NAME EXTRA_P2P_JSON [EXTRA_TOP_JSON]: a fresh node trusting the normal peer, with
# the shared token
start_server() {
  local name=$1 extra=$2 top=${3:-}
  mkdir -p "$tmp/$name"
  cat >"$tmp/$name.json" <<EOF
{"log_level": "warning",$top
 "p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$NORMAL_ID"], "token": "$TOKEN"$extra}}
EOF
  "$bin" serve --no-stdio --config "$tmp/$name.json" --state-dir "$tmp/$name" 2>"$tmp/$name.err" &
  SERVER_PID=$!
  pids+=($SERVER_PID)
  for _ in $(seq 600); do
    [ -s "$tmp/$name/announce.json" ] && break
    sleep 0.1
  done
  SERVER_MA=$(python3 -c "import json; print(json.load(open('$tmp/$name/announce.json'))['multiaddr'])" 2>/dev/null)
  [ -n "$SERVER_MA" ]
}
stop_server() { # NAME: SIGTERM, bounded wait, exit status 0 and no sanitizer report
  local name=$1 rc=0 i
  kill -TERM "$SERVER_PID" 2>/dev/null
  for ((i = 0; i < 600; i++)); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$SERVER_PID" 2>/dev/null; then kill -9 "$SERVER_PID"; rc=124; fi
  wait "$SERVER_PID" 2>/dev/null || rc=$?
  if [ "$rc" = 0 ] && ! grep -q 'LeakSanitizer\|ERROR: AddressSanitizer\|runtime error' "$tmp/$name.err"; then
    ok "$name: the node stops cleanly afterwards"
  else
    ko "$name: the node stops cleanly afterwards" "rc=$rc $(grep -m1 -E 'Sanitizer|runtime error' "$tmp/$name.err")"
  fi
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat" 2>/dev/null || echo 0; }
run_attack() { # NAME ATTACK [driver args…] → JSON on stdout; the server's CPU time goes to stderr
  local name=$1 attack=$2 t0
  shift 2
  t0=$(cpu_ticks)
  trap 'echo "($name: the server used $(( ($(cpu_ticks) - t0) * 10 )) ms of CPU)" >&2' RETURN
  timeout 300 "$driver" "$attack" --peer "$SERVER_MA" --state "$tmp/ids/$name" --normal "$tmp/ids/normal" \
    --token "$TOKEN" --pid "$SERVER_PID" "$@" 2>"$tmp/$name.drv.err" | tee "$tmp/$name.drv.json"
  [ -z "${ABUSE_KEEP:-}" ] || cp "$tmp/$name.drv.json" "$ABUSE_KEEP/$name.json" # the driver's full report
}
# the normal peer's latency while the attack ran stays under the bound (ms)
NORMAL_OK='d["normal"]["during"]["failed"] == 0 and d["normal"]["during"]["ok"] >= 10 and d["normal"]["after"]["failed"] == 0'

# ---- item 1: 80 silent connections + one reconnected every 50 ms; 12 fresh peers dial meanwhile
if ! want 1; then :
elif start_server hs ""; then
  got=$(run_attack hs handshake_slots --seconds 8 --settle 2 --dials 12 --arg silent=80 --arg reconnect_ms=50)
  check "item 1: every legitimate dial succeeds under 80 silent connections + reconnects every 50 ms" \
    'd["dials"]["ok"] == 12 and d["dials"]["failed"] == 0' "$got"
  check "item 1: …each within 5 s (slowest $(echo "$got" | jget 'd["dials"]["max_ms"]') ms)" 'd["dials"]["max_ms"] < 5000' "$got"
  check "item 1: the trusted peer's calls keep working, max $(echo "$got" | jget 'd["normal"]["during"]["max_ms"]') ms (< 2000)" \
    "$NORMAL_OK"' and d["normal"]["during"]["max_ms"] < 2000' "$got"
  check "item 1: the attacker held silent connections (it really ran)" 'd["report"]["opened"] >= 80' "$got"
  stop_server hs
else
  ko "item 1: server start"
fi

# ---- item 1, leftover: handshakes that move (the multistream header, then nothing) from two other
# addresses, each replaced before it is 500 ms old, keep every pending slot taken (80 connections
# reconnected at 500/s); a token holder NOT in trusted_peers that authorized once before dials 10
# times meanwhile (the same identity, a new connection each time). Before the reserved handshakes
# for remembered peers most of its dials were refused.
if ! want 1; then :
elif start_server hsr ""; then
  mkdir -p "$tmp/ids/holder"
  (umask 077 && printf %s "$TOKEN" >"$tmp/token")
  "$bin" status --peer "$SERVER_MA" --state-dir "$tmp/ids/holder" --token-file "$tmp/token" >/dev/null 2>"$tmp/hsr.status.err" ||
    ko "item 1 (remembered peer): the token holder's first status" "$(head -c 300 "$tmp/hsr.status.err")"
  got=$(run_attack hsr handshake_slots --seconds 10 --settle 2 --dials 10 --dial-dir "$tmp/ids/holder" \
    --arg silent=80 --arg reconnect_ms=2 --arg stall=1 --arg ips=2)
  check "item 1: a token holder that authorized before connects under stalled handshakes from 2 addresses ($(echo "$got" | jget 'd["dials"]["ok"]') of 10 dials; slowest $(echo "$got" | jget 'd["dials"]["max_ms"]') ms)" \
    'd["dials"]["ok"] == 10 and d["dials"]["failed"] == 0' "$got"
  check "item 1: …the attacker really held the slots ($(echo "$got" | jget 'd["report"]["opened"]') connections opened)" \
    'd["report"]["opened"] >= 1000' "$got"
  check "item 1: …the trusted peer's calls keep working, max $(echo "$got" | jget 'd["normal"]["during"]["max_ms"]') ms (< 2000)" \
    "$NORMAL_OK"' and d["normal"]["during"]["max_ms"] < 2000' "$got"
  stop_server hsr
else
  ko "item 1 (remembered peer): server start"
fi

# ---- item 2: a token holder, a 1 MB cache value, 32 streams that never read × 64 cache.get
if ! want 2; then :
elif start_server uo ', "rate_limit_per_second": 100000, "max_streams_per_peer": 256' ' "workers_idle_seconds": 2,'; then
  c0=$(cpu_ticks)
  got=$(run_attack uo unread_output --seconds 12 --settle 8 --arg streams=32 --arg gets=64 --arg value_bytes=1000000)
  cpu_ms=$(( ($(cpu_ticks) - c0) * 10 ))
  grow=$(echo "$got" | jget '(d["server"]["rss_kb_max"] - d["server"]["rss_kb_before"]) // 1024')
  left=$(echo "$got" | jget '(d["server"]["rss_kb_after"] - d["server"]["rss_kb_before"]) // 1024')
  check "item 2: the attack ran (value stored, 32 streams, 2048 gets sent)" \
    'd["report"]["value_stored"] and d["report"]["opened"] == 32 and d["report"]["gets_sent"] == 2048' "$got"
  check "item 2: RSS grows at most 200 MB while nobody reads (grew ${grow} MB; before the fix: 1.87 GB)" \
    'd["server"]["rss_kb_max"] - d["server"]["rss_kb_before"] < 200 * 1024' "$got"
  check "item 2: memory goes back after the peer disconnects (${left} MB above the start; < 60 MB)" \
    'd["server"]["rss_kb_after"] - d["server"]["rss_kb_before"] < 60 * 1024' "$got"
  check "item 2: the pool threads grown for the attack go away after idling 2 s (threads $(echo "$got" | jget 'd["server"]["threads_before"]') → $(echo "$got" | jget 'd["server"]["threads_max"]') → $(echo "$got" | jget 'd["server"]["threads_after"]'); before: they stayed)" \
    'd["server"]["threads_max"] > d["server"]["threads_before"] + 4 and d["server"]["threads_after"] <= d["server"]["threads_before"] + 2' "$got"
  check "item 2: the trusted peer stays fast meanwhile, max $(echo "$got" | jget 'd["normal"]["during"]["max_ms"]') ms (< 10000: each 1 MB reply costs ~75 ms of loop and ~110 ms of worker CPU; 1.4–5 s seen at load 16 on 2 cores)" \
    "$NORMAL_OK"' and d["normal"]["during"]["max_ms"] < 10000' "$got"
  # CPU: the calls whose answers a budget would refuse are held, not computed (before: 5-7 s
  # here in a release build, 23 s seen; after: ~0.8 s). ASan costs ~3x.
  cpu_bound=3000
  [[ "$bin" == *build-asan* ]] && cpu_bound=9000
  if [ "$cpu_ms" -lt "$cpu_bound" ]; then ok "item 2: the node's CPU during the attack stays under ${cpu_bound} ms (${cpu_ms} ms over 20 s)"
  else ko "item 2: the node's CPU during the attack stays under ${cpu_bound} ms" "${cpu_ms} ms"; fi
  budgets=$("$bin" status --peer "$SERVER_MA" --detail --state-dir "$tmp/ids/normal" 2>/dev/null | jget 'json.dumps(d["transport"]["mcp_p2p"]["budgets"])')
  check "item 2: few answers were computed only to be refused ($(echo "$budgets" | jget 'd["refused_replies"]') refused of 2048 calls; before: 222-292)" \
    'd["refused_replies"] < 100' "$budgets"
  stop_server uo
else
  ko "item 2: server start"
fi

# ---- item 2, the process-wide budget: 8 token holders × 4 streams that never read, each peer
# within its own budget (8 MiB) but together over the process's (16 MiB here)
if ! want 2; then :
elif start_server pb ', "rate_limit_per_second": 100000, "max_streams_per_peer": 256, "process_budget_bytes": 16777216'; then
  got=$(run_attack pb unread_output --seconds 12 --settle 8 --arg peers=8 --arg streams=32 --arg gets=16 --arg value_bytes=500000)
  budgets=$("$bin" status --peer "$SERVER_MA" --detail --state-dir "$tmp/ids/normal" 2>/dev/null | jget 'json.dumps(d["transport"]["mcp_p2p"]["budgets"])')
  check "item 2 (process budget): the attack ran (8 peers, 32 streams, 512 gets)" \
    'd["report"]["peers"] == 8 and d["report"]["opened"] == 32 and d["report"]["gets_sent"] == 512' "$got"
  check "item 2 (process budget): unsent answers over all peers stay under 16 MiB + its 1/8 reserve (max $(echo "$budgets" | jget 'd["held_output_max_bytes"] // 1048576') MiB; 8 peers x 8 MiB = 64 MiB without it)" \
    'd["held_output_max_bytes"] < 16777216 * 9 // 8 and d["held_output_max_bytes"] > 8388608 and d["refused_replies"] > 0' "$budgets"
  check "item 2 (process budget): RSS grows at most 250 MB (grew $(echo "$got" | jget '(d["server"]["rss_kb_max"] - d["server"]["rss_kb_before"]) // 1024') MB)" \
    'd["server"]["rss_kb_max"] - d["server"]["rss_kb_before"] < 250 * 1024' "$got"
  check "item 2 (process budget): another peer is still served, max $(echo "$got" | jget 'd["normal"]["during"]["max_ms"]') ms (< 10000)" \
    "$NORMAL_OK"' and d["normal"]["during"]["max_ms"] < 10000' "$got"
  stop_server pb
else
  ko "item 2 (process budget): server start"
fi

# ---- item 3: 6 fresh PeerIds × 64 streams × a ~1 MB frame cut one byte short (strangers), then
# the same from 2 token holders (their budgets and the frame deadline hold them)
if ! want 3; then :
elif start_server pf ', "rate_limit_per_second": 100000, "max_streams_per_peer": 256, "frame_timeout_ms": 3000'; then
  got=$(run_attack pf partial_frames --seconds 8 --settle 4 --arg peers=6 --arg streams=64 --arg frame=1048000)
  check "item 3: strangers get 4 streams each, and a small frame limit refuses the header ($(echo "$got" | jget 'd["report"]["frame_errors"]') refused, $(echo "$got" | jget 'd["report"]["reset"]') streams reset)" \
    'd["report"]["frame_errors"] == 6 * 4 and d["report"]["reset"] >= 6 * 60' "$got"
  check "item 3: RSS grows at most 50 MB under 6 × 64 partial 1 MB frames from strangers (grew $(echo "$got" | jget '(d["server"]["rss_kb_max"] - d["server"]["rss_kb_before"]) // 1024') MB; before: 400 MB)" \
    'd["server"]["rss_kb_max"] - d["server"]["rss_kb_before"] < 50 * 1024' "$got"
  check "item 3: the trusted peer stays fast meanwhile (max $(echo "$got" | jget 'd["normal"]["during"]["max_ms"]') ms < 2000)" \
    "$NORMAL_OK"' and d["normal"]["during"]["max_ms"] < 2000' "$got"
  got=$(run_attack pft partial_frames --seconds 10 --settle 5 --arg peers=2 --arg streams=64 --arg frame=1048000 --arg token=1)
  check "item 3: token holders' partial frames are held by their budgets (grew $(echo "$got" | jget '(d["server"]["rss_kb_max"] - d["server"]["rss_kb_before"]) // 1024') MB < 200)" \
    'd["report"]["opened"] >= 64 and d["server"]["rss_kb_max"] - d["server"]["rss_kb_before"] < 200 * 1024' "$got"
  check "item 3: a frame must be whole within frame_timeout_ms: the stalled streams were answered frame_timeout ($(echo "$got" | jget 'd["report"]["frame_errors"]'))" \
    'd["report"]["frame_errors"] >= 32' "$got"
  check "item 3: memory goes back afterwards ($(echo "$got" | jget '(d["server"]["rss_kb_after"] - d["server"]["rss_kb_before"]) // 1024') MB above the start; < 60)" \
    'd["server"]["rss_kb_after"] - d["server"]["rss_kb_before"] < 60 * 1024' "$got"
  stop_server pf
else
  ko "item 3: server start"
fi

# ---- item 3, paused readers with 1 MB JSON-RPC ids: 32 streams that never read, 8 pings each
# whose id is 1 MB (before the budgets: +141 MB, 92 MB left after)
if ! want 3; then :
elif start_server pi ', "rate_limit_per_second": 100000, "max_streams_per_peer": 256'; then
  got=$(run_attack pi unread_output --seconds 10 --settle 6 --arg streams=32 --arg gets=8 --arg id_bytes=1000000 --arg value_bytes=10)
  check "item 3: paused readers sending 1 MB ids: the attack ran (32 streams, 256 pings)" \
    'd["report"]["opened"] == 32 and d["report"]["gets_sent"] == 256' "$got"
  check "item 3: …RSS grows at most 60 MB (grew $(echo "$got" | jget '(d["server"]["rss_kb_max"] - d["server"]["rss_kb_before"]) // 1024') MB; before: 141 MB)" \
    'd["server"]["rss_kb_max"] - d["server"]["rss_kb_before"] < 60 * 1024' "$got"
  check "item 3: …and goes back after ($(echo "$got" | jget '(d["server"]["rss_kb_after"] - d["server"]["rss_kb_before"]) // 1024') MB above the start; < 30; before: 92 MB)" \
    'd["server"]["rss_kb_after"] - d["server"]["rss_kb_before"] < 30 * 1024' "$got"
  check "item 3: …the trusted peer stays fast (max $(echo "$got" | jget 'd["normal"]["during"]["max_ms"]') ms < 2000)" \
    "$NORMAL_OK"' and d["normal"]["during"]["max_ms"] < 2000' "$got"
  stop_server pi
else
  ko "item 3 (1 MB ids): server start"
fi

# ---- items 8 and 11 through a js-libp2p peer (tests/interop/service/mcpp_peer.mjs): a token in a
# frame the stream refuses opens nothing, duplicate keys are refused, escaped NULs in strings
# pass and a NUL in a tool name is refused with a clear error
node_bin="$root/tests/node_modules/node/bin/node"
if ! want 8; then :
elif [ ! -x "$node_bin" ]; then
  ko "items 8/11: node missing ($node_bin)"
elif start_server js ''; then
  while IFS= read -r line; do
    name=$(echo "$line" | jget 'd["check"]')
    if [ "$(echo "$line" | jget 'd["ok"]')" = True ]; then ok "items 8/11 (js-libp2p peer): $name $(echo "$line" | jget 'json.dumps(d["detail"])' | head -c 300)"
    else ko "items 8/11 (js-libp2p peer): $name" "$(echo "$line" | jget 'd["detail"]' | head -c 600)"; fi
  done < <(cd "$root/tests" && timeout 180 "$node_bin" interop/service/mcpp_peer.mjs "$SERVER_MA" refused_token,dup_keys,nul --token "$TOKEN" 2>"$tmp/js.err")
  [ -s "$tmp/js.err" ] && tail -3 "$tmp/js.err"
  stop_server js
else
  ko "items 8/11: server start"
fi

# ---- item 4: a token holder sends 64 × 64 waits of 30 s; another peer's status and cache.get
if ! want 4; then :
elif start_server lw ', "rate_limit_per_second": 100000, "max_streams_per_peer": 256'; then
  got=$(run_attack lw long_waits --seconds 10 --settle 3 --arg streams=64 --arg waits=64 --arg timeout_s=30)
  check "item 4: the waits beyond the per-peer cap are refused busy at once ($(echo "$got" | jget 'd["report"]["busy"]') busy, $(echo "$got" | jget 'd["report"]["held"]') held)" \
    'd["report"]["waits_sent"] == 4096 and d["report"]["held"] <= 64 and d["report"]["busy"] >= 4096 - 64' "$got"
  check "item 4: another peer's status and cache.get stay fast (max $(echo "$got" | jget 'd["normal"]["during"]["max_ms"]') ms < 2000)" \
    "$NORMAL_OK"' and d["normal"]["during"]["max_ms"] < 2000' "$got"
  check "item 4: the held waits take no thread (threads $(echo "$got" | jget 'd["server"]["threads_before"]') → $(echo "$got" | jget 'd["server"]["threads_max"]'))" \
    'd["server"]["threads_max"] - d["server"]["threads_before"] < 16' "$got"
  stop_server lw
else
  ko "item 4: server start"
fi

# ---- item 6: 300 pipelined calls on one stream cross the peer's rate limit (100/s, burst 200; the
# authorized bucket too — a token holder draws from it, and by default it does not limit)
if ! want 6; then :
elif start_server pl ', "rate_limit_per_second": 100, "authorized_rate_limit_per_second": 100'; then
  got=$(run_attack pl pipeline --seconds 30 --settle 1 --arg n=300 --arg ms=200)
  check "item 6: the crossing request gets -32010 rate_limited (id $(echo "$got" | jget 'd["report"]["crossing_id"]'))" \
    'd["report"]["crossing_id"] > 2 and d["report"]["rate_limited"] == 1' "$got"
  check "item 6: every request read before it is answered ($(echo "$got" | jget 'd["report"]["missing_before_crossing"]') missing, $(echo "$got" | jget 'd["report"]["results"]') results)" \
    'd["report"]["missing_before_crossing"] == 0 and d["report"]["results"] >= 1' "$got"
  check "item 6: nothing after it is read, then the stream closes" \
    'd["report"]["answered_after_crossing"] == 0 and d["report"]["stream_ended"]' "$got"
  stop_server pl
else
  ko "item 6: server start"
fi

# ---- fairness of the worker pools: 2 token holders keep 16 one-second `sleep` calls each in flight
# (their share) on a long pool of 4 threads; another token holder's 20 ms `sleep` calls are timed.
# FIFO pools queued the victim's call behind the ~28 waiting jobs (about 7 s); pools that serve
# callers in turn start it after at most one job (~1 s).
if ! want fair; then :
elif start_server fair '' ' "workers_long_threads": 4,'; then
  got=$(run_attack fair pool_burst --seconds 10 --settle 2 --arg peers=2 --arg calls=16 --arg ms=1000 --arg victim_ms=20)
  check "fairness: the burst ran ($(echo "$got" | jget 'd["report"]["answered"]') one-second calls answered, the victim's $(echo "$got" | jget 'd["report"]["victim"]["ok"]'))" \
    'd["report"]["answered"] >= 24 and d["report"]["victim"]["ok"] >= 3 and d["report"]["victim"]["failed"] == 0' "$got"
  check "fairness: another peer's call waits at most about one job, not the burst (worst $(echo "$got" | jget 'd["report"]["victim"]["max_ms"]') ms, mean $(echo "$got" | jget 'round(d["report"]["victim"]["mean_ms"])') ms; < 2500; FIFO: ~7000)" \
    'd["report"]["victim"]["max_ms"] < 2500' "$got"
  stop_server fair
else
  ko "fairness: server start"
fi

echo "abuse: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
