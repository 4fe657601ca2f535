#!/usr/bin/env bash
# P2P interop against js-libp2p 3.x (tests/node_modules, Node 22): both directions over IPv4
# and IPv6 loopback. The C side is tests/p2p/p2p_driver (ASan build) and the peermcp CLI; the
# JS side is tests/interop/p2p/peer.mjs. Each check is one test. Last line:
# "p2p-interop: N passed, N failed".
set -u
root="${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
node="$root/tests/node_modules/node/bin/node"
peer_js="$root/tests/interop/p2p/peer.mjs"
driver="${P2P_DRIVER:-$root/build-asan/tests/p2p/p2p_driver}"
bin="${PEERMCP_ASAN_BIN:-$root/build-asan/peermcp}"
[ -x "$bin" ] || bin="${PEERMCP_BIN:-$root/build/peermcp}"
tmp=$(mktemp -d)
pass=0
fail=0
pids=()
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export PEER_TIMEOUT_MS=150000

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "PASS $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }

# Runs a python expression over one JSON line (stdin) and prints its value.
jget() { python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print($1)"; }

# Starts a listener whose first stdout line is JSON with "addrs"; waits for it (60 s: node and
# ASan start slowly on a loaded machine). usage: start_listener NAME cmd... → sets LISTEN_JSON
# and PID_<NAME>
start_listener() {
  local name=$1
  shift
  local fifo="$tmp/$name.in"
  mkfifo "$fifo"
  "$@" <"$fifo" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  eval "PID_$name=$!"
  exec {fd}>"$fifo" # keep stdin open; closing it stops the listener
  eval "FD_$name=$fd"
  for _ in $(seq 600); do
    [ -s "$tmp/$name.out" ] && break
    sleep 0.1
  done
  LISTEN_JSON=$(head -n 1 "$tmp/$name.out")
  [ -n "$LISTEN_JSON" ]
}

# Reads check lines ({"check":…,"ok":…}) and counts each one.
count_checks() {
  local prefix=$1 file=$2 want=$3
  local c
  for c in ${want//,/ }; do
    local line
    line=$(grep -F "\"check\":\"$c\"" "$file" | head -n 1)
    if [ -z "$line" ]; then
      ko "$prefix $c" "no result"
    elif [ "$(jget 'd["ok"]' <<<"$line")" = "True" ]; then
      ok "$prefix $c"
    else
      ko "$prefix $c" "$(cut -c1-400 <<<"$line")"
    fi
  done
}

if [ ! -x "$node" ] || [ ! -f "$peer_js" ] || [ ! -x "$driver" ]; then
  echo "missing prerequisites: node=$node driver=$driver"
  echo "p2p-interop: 0 passed, 1 failed"
  exit 1
fi

# ---------------------------------------------------------------- JS dials C
if start_listener cl timeout 200 "$driver" listen --state "$tmp/c-state" \
  --listen /ip4/127.0.0.1/tcp/0 --listen /ip6/::1/tcp/0; then
  c4=$(jget 'd["addrs"][0]' <<<"$LISTEN_JSON")
  c6=$(jget 'd["addrs"][1]' <<<"$LISTEN_JSON")
  checks=connect,ping,identify,echo100,big,slowread,wrongid,goaway
  timeout 150 "$node" "$peer_js" dial "$c4" "$checks" >"$tmp/js-dials-c.out" 2>"$tmp/js-dials-c.err"
  count_checks "js->c ip4" "$tmp/js-dials-c.out" "$checks"
  timeout 60 "$node" "$peer_js" dial "$c6" connect,ping,identify >"$tmp/js-dials-c6.out" 2>"$tmp/js-dials-c6.err"
  count_checks "js->c ip6" "$tmp/js-dials-c6.out" connect,ping,identify
  # The JS slow reader pulled 8 MiB from C's source: C's per-stream send queue stayed bounded.
  maxq=$(grep -F '"stream_stats":"source"' "$tmp/cl.err" | python3 -c '
import json,sys
print(max([json.loads(l)["max_send_queued"] for l in sys.stdin] or [-1]))')
  if [ "$maxq" -ge 0 ] && [ "$maxq" -le $((4 * 1024 * 1024 + 65536)) ]; then
    ok "c send queue bounded under a slow js reader (max ${maxq} B)"
  else
    ko "c send queue bounded under a slow js reader" "max_send_queued=$maxq"
  fi
  eval "exec {FD_cl}>&-"
  # the listener exits on EOF; its sanitizer report (if any) is written by then (bounded: 30 s)
  for _ in $(seq 300); do kill -0 "$PID_cl" 2>/dev/null || break; sleep 0.1; done
  if grep -q "ERROR: AddressSanitizer\|runtime error:" "$tmp/cl.err"; then
    ko "c listener clean under ASan/UBSan" "$(grep -m1 -A3 'ERROR\|runtime error' "$tmp/cl.err")"
  else
    ok "c listener clean under ASan/UBSan"
  fi
else
  ko "c listener start" "$(tail -n 5 "$tmp/cl.err")"
fi

# ---------------------------------------------------------------- C dials JS
if start_listener jl timeout 200 "$node" "$peer_js" listen --ip6 --slow-sink-ms 5; then
  j4=$(jget 'd["addrs"][0]' <<<"$LISTEN_JSON")
  j6=$(jget 'd["addrs"][1]' <<<"$LISTEN_JSON")
  checks=ping,identify,push,echo100,big,slowread,slowwrite,wrongid,goaway
  P2P_DRIVER_TIMEOUT_S=150 timeout 160 "$driver" dial --state "$tmp/d-state" "$j4" "$checks" \
    >"$tmp/c-dials-js.out" 2>"$tmp/c-dials-js.err"
  count_checks "c->js ip4" "$tmp/c-dials-js.out" "$checks"
  # Flow control: our receive buffer while pausing stays within the Yamux window ceiling, and
  # our send queue towards the slow JS sink stays under the stream cap.
  rb=$(grep -F '"check":"slowread"' "$tmp/c-dials-js.out" | jget 'd.get("max_recv_buffered", -1)' 2>/dev/null || echo -1)
  sq=$(grep -F '"check":"slowwrite"' "$tmp/c-dials-js.out" | jget 'd.get("sink_max_send_queued", -1)' 2>/dev/null || echo -1)
  if [ "$rb" -ge 0 ] && [ "$rb" -le $((16 * 1024 * 1024)) ]; then ok "c recv buffer bounded by the yamux window (max $rb B)"
  else ko "c recv buffer bounded by the yamux window" "max_recv_buffered=$rb"; fi
  if [ "$sq" -ge 0 ] && [ "$sq" -le $((4 * 1024 * 1024 + 65536)) ]; then ok "c send queue bounded under a slow js sink (max $sq B)"
  else ko "c send queue bounded under a slow js sink" "sink_max_send_queued=$sq"; fi
  if grep -q 'peer:update.*/peermcp/late/1.0.0' "$tmp/jl.err"; then ok "c->js identify-push (js learned our new protocol)"
  else ko "c->js identify-push (js learned our new protocol)" "$(grep -m3 'peer:update' "$tmp/jl.err")"; fi
  P2P_DRIVER_TIMEOUT_S=60 timeout 70 "$driver" dial --state "$tmp/d-state" "$j6" ping,identify \
    >"$tmp/c-dials-js6.out" 2>"$tmp/c-dials-js6.err"
  count_checks "c->js ip6" "$tmp/c-dials-js6.out" ping,identify
  if grep -q "ERROR: AddressSanitizer\|runtime error:" "$tmp/c-dials-js.err" "$tmp/c-dials-js6.err"; then
    ko "c dialer clean under ASan/UBSan" "$(grep -h -m1 -A3 'ERROR\|runtime error' "$tmp"/c-dials-js*.err)"
  else
    ok "c dialer clean under ASan/UBSan"
  fi

  # CLI against the JS peer
  if [ -x "$bin" ]; then
    out=$(timeout 90 "$bin" ping "$j4" -n 3 --state-dir "$tmp/cli-state" 2>"$tmp/cli-ping.err")
    if [ $? -eq 0 ] && [ "$(grep -c 'time=' <<<"$out")" -eq 3 ]; then ok "cli ping js -n 3"
    else ko "cli ping js -n 3" "$out $(tail -n 3 "$tmp/cli-ping.err")"; fi
    id=$(timeout 60 "$bin" id --state-dir "$tmp/cli-state" 2>/dev/null)
    if [[ "$id" =~ ^12D3KooW[1-9A-HJ-NP-Za-km-z]+$ ]]; then ok "cli id"; else ko "cli id" "$id"; fi
    wrong="${j4%/p2p/*}/p2p/$id"
    if timeout 30 "$bin" ping "$wrong" -n 1 --state-dir "$tmp/cli-state2" >/dev/null 2>&1; then
      ko "cli ping refuses a wrong PeerId"
    else
      ok "cli ping refuses a wrong PeerId"
    fi
  fi
  eval "exec {FD_jl}>&-"
else
  ko "js listener start" "$(tail -n 5 "$tmp/jl.err")"
fi

# ---------------------------------------------------------------- C dials C (quick)
if start_listener cc timeout 100 "$driver" listen --state "$tmp/cc-state" --listen /ip6/::1/tcp/0; then
  a=$(jget 'd["addrs"][0]' <<<"$LISTEN_JSON")
  P2P_DRIVER_TIMEOUT_S=60 timeout 70 "$driver" dial --state "$tmp/cc-d" "$a" ping,identify,echo100,wrongid \
    >"$tmp/cc.out" 2>"$tmp/cc-d.err"
  count_checks "c->c ip6" "$tmp/cc.out" ping,identify,echo100,wrongid
  eval "exec {FD_cc}>&-"
else
  ko "c listener (c->c) start"
fi

# ---------------------------------------------------------------- over Unix-domain sockets
# Same-host peers (issue 11 §3): /unix/<percent-encoded path> as js-libp2p's @libp2p/tcp writes it,
# both directions, the same multistream-select → Noise → Yamux upgrade.
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
if start_listener cu timeout 200 "$driver" listen --state "$tmp/cu-state" \
  --listen /ip4/127.0.0.1/tcp/0 --listen "/unix/$(enc "$tmp/c.sock")"; then
  cu=$(jget '[a for a in d["addrs"] if a.startswith("/unix/")][0]' <<<"$LISTEN_JSON")
  checks=connect,ping,identifyunix,echo100,big,wrongid
  timeout 150 "$node" "$peer_js" dial "$cu" "$checks" >"$tmp/js-dials-cu.out" 2>"$tmp/js-dials-cu.err"
  count_checks "js->c unix" "$tmp/js-dials-cu.out" "$checks"
  if [ "$(stat -c %a "$tmp/c.sock" 2>/dev/null)" = 600 ]; then ok "c unix socket file is 0600"
  else ko "c unix socket file is 0600" "$(stat -c %a "$tmp/c.sock" 2>&1)"; fi
  eval "exec {FD_cu}>&-"
  for _ in $(seq 300); do kill -0 "$PID_cu" 2>/dev/null || break; sleep 0.1; done
  if [ ! -e "$tmp/c.sock" ] && ! grep -q "ERROR: AddressSanitizer\|runtime error:" "$tmp/cu.err"; then
    ok "c unix listener removed its socket file and is clean under ASan/UBSan"
  else
    ko "c unix listener removed its socket file and is clean under ASan/UBSan" "$(ls -l "$tmp/c.sock" 2>&1) $(grep -m1 -A3 'ERROR\|runtime error' "$tmp/cu.err")"
  fi
else
  ko "c unix listener start" "$(tail -n 5 "$tmp/cu.err")"
fi
if start_listener ju timeout 200 "$node" "$peer_js" listen --unix "$tmp/j.sock"; then
  ju=$(jget '[a for a in d["addrs"] if a.startswith("/unix/")][0]' <<<"$LISTEN_JSON")
  checks=ping,echo100,big,wrongid
  P2P_DRIVER_TIMEOUT_S=150 timeout 160 "$driver" dial --state "$tmp/du-state" "$ju" "$checks" \
    >"$tmp/c-dials-ju.out" 2>"$tmp/c-dials-ju.err"
  count_checks "c->js unix" "$tmp/c-dials-ju.out" "$checks"
  if grep -q "ERROR: AddressSanitizer\|runtime error:" "$tmp/c-dials-ju.err"; then
    ko "c unix dialer clean under ASan/UBSan" "$(grep -m1 -A3 'ERROR\|runtime error' "$tmp/c-dials-ju.err")"
  else
    ok "c unix dialer clean under ASan/UBSan"
  fi
  eval "exec {FD_ju}>&-"
else
  ko "js unix listener start" "$(tail -n 5 "$tmp/ju.err")"
fi

# ---------------------------------------------------------------- peermcp serve: announce + JS ping
if [ -x "$bin" ] && "$bin" serve --help 2>&1 | grep -q -- "--p2p-listen"; then
  ann="$tmp/announce-env.json"
  IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE="$ann" timeout 60 "$bin" serve --no-stdio \
    --state-dir "$tmp/serve-state" --p2p-listen /ip4/127.0.0.1/tcp/0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
  spid=$!
  pids+=($spid)
  for _ in $(seq 600); do [ -s "$tmp/serve-state/announce.json" ] && [ -s "$ann" ] && break; sleep 0.1; done
  if [ -s "$tmp/serve-state/announce.json" ] && [ -s "$ann" ]; then
    ma=$(jget 'd["multiaddr"]' <"$tmp/serve-state/announce.json")
    pid=$(jget 'd["peer_id"]' <"$tmp/serve-state/announce.json")
    if [[ "$ma" == /ip4/127.0.0.1/tcp/*/p2p/"$pid" ]] && [[ "$ma" != */tcp/0/* ]] &&
      grep -q "peer_id=$pid" "$tmp/serve.err" && grep -qF "multiaddr=$ma" "$tmp/serve.err" &&
      cmp -s "$ann" "$tmp/serve-state/announce.json"; then
      ok "serve logs peer_id=/multiaddr= and writes both announce files with the real port"
    else
      ko "serve announce" "ma=$ma $(grep -m2 'peer_id=\|multiaddr=' "$tmp/serve.err")"
    fi
    timeout 60 "$node" "$peer_js" dial "$ma" connect,ping,identify \
      --want-protocols /ipfs/id/1.0.0,/ipfs/ping/1.0.0 >"$tmp/js-serve.out" 2>"$tmp/js-serve.err"
    count_checks "js->serve" "$tmp/js-serve.out" connect,ping,identify
  else
    ko "serve announce" "$(tail -n 5 "$tmp/serve.err")"
  fi
  kill -TERM "$spid" 2>/dev/null
  wait "$spid" 2>/dev/null
  src=$?
  if [ "$src" -eq 0 ] && ! grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$tmp/serve.err" &&
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["peers"]' "$tmp/serve-state/peers" 2>/dev/null; then
    ok "serve stops cleanly on SIGTERM and saves the peerstore"
  else
    ko "serve stops cleanly on SIGTERM and saves the peerstore" "rc=$src $(grep -m1 -A4 'Sanitizer\|runtime error' "$tmp/serve.err")"
  fi
fi

echo "p2p-interop: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
