#!/usr/bin/env bash
# `make bench-p2p-call` (issue 11 §3): the same trivial tools/call (`echo`, PEERMCP_TEST_TOOLS=1,
# arguments {"text":"hello","n":i}) made in ONE run
#   - locally over stdio: mcp_bench_driver (bench/mcp/driver.c, C, pipelined) against
#     `peermcp serve --no-p2p`, 1 and 16 in flight;
#   - remotely over /mcp+p2p/1.0.0 on one connection: svc_bench_driver (tests/service/svc_driver.c,
#     C, speaking libp2p through src/service/client.c) against `peermcp serve --no-stdio` (the
#     node's default limits, the driver's PeerId trusted), 1 and 16 in flight;
#   - remotely over a Unix-domain socket (same-host peers): the same driver and node, the node also
#     listening on /unix/<tmp>/b.sock, dialed as /unix/…/p2p/<id> — rows "remote unix, …";
#   - the kernel's floor under them, in the same rounds: bench/p2p/pingpong.c, one message in
#     flight between two processes over TCP loopback, a Unix-domain socket pair and pipes, no
#     crypto/framing/JSON;
# and reports calls/s, p50/p99 and the server's CPU per call (/proc/PID/stat, all threads) for
# each, the ratios remote/stdio and remote/TCP floor. Then, unless BENCH_PROFILE=0 or valgrind is
# missing, the instructions per remote call under callgrind, of the server (`peermcp serve
# --no-stdio`) and of the client (svc_bench_driver), each driven with 2,000 and 12,000 calls (16
# in flight, one connection); (total₂ − total₁) / 10,000, start-up and shutdown cancelled out,
# plus the server's top symbols of the longer run.
# Writes $BUILD/bench-p2p-call.jsonl and replaces the generated part of the "P2P call path" section
# of bench/RESULTS.md (up to its first "### " subsection: dated subsections are kept).
# Knobs: N_CALLS (remote calls per measurement, default 20000), STDIO_SECONDS (default 2),
# REPS (default 3: the stdio/remote pairs are interleaved REPS times, the median pair reported),
# EARLY_ROW (default 1: a row more each round, this build with the host's early sends on at both
# ends — p2p.write_early_bytes and SVC_DRIVER_WRITE_EARLY_BYTES = EARLY_BYTES, default 2048),
# BASE_BUILD (optional: another build directory, e.g. of an older commit, whose peermcp and
# svc_bench_driver run the remote rows too, interleaved in the same rounds: before/after in one
# run; its rows are labelled "(base)"), PIN_ROWS (default 1: rows more each round, stdio and
# remote at 16 in flight with both processes pinned to CPU 0 ("one CPU": every wake-up stays on
# that CPU) and with the server on CPU 0 and the client on CPU 1 ("two CPUs": every wake-up
# crosses CPUs) — on this VM the two placements differ ~3× in calls/s and the unpinned rows land
# anywhere between, which is most of their noise: bench/RESULTS.md, 2026-12-07 19:05 net9); with
# PIN_ROWS, also the one-CPU floor under those rows: pingpong pinned to CPU 0 with a 16-call batch's
# wire sizes (BATCH_REQ / BATCH_REP bytes, default 1918 / 4510: what the remote server reads and
# sends per batch of 16 echo calls, strace, 2026-12-08) over a pipe and a Unix-domain socket pair,
# and aead_speed's seal of those two sizes — the line "One CPU, the floor" then says how much of
# stdio's calls/s a remote unix path with no other cost than the socket and Noise could reach.
# Bounded: ~1–2 minutes on an idle 2-core machine (+ ~2 minutes for callgrind).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="${BUILD:-$root/build}"
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release -Dtests=disabled >/dev/null
[ "${BENCH_NO_BUILD:-0}" = 1 ] || ninja -C "$BUILD" peermcp bench/service/svc_bench_driver bench/mcp/mcp_bench_driver bench/p2p/pingpong bench/p2p/aead_speed >/dev/null || exit 1
bin="$BUILD/peermcp"
sdrv="$BUILD/bench/service/svc_bench_driver"
mdrv="$BUILD/bench/mcp/mcp_bench_driver"
ppong="$BUILD/bench/p2p/pingpong"
aead="$BUILD/bench/p2p/aead_speed"
BATCH_REQ=${BATCH_REQ:-1918}
BATCH_REP=${BATCH_REP:-4510}
. "$root/bench/lib.sh"
bench_begin
out="$BUILD/bench-p2p-call.jsonl"
: >"$out"
export PEERMCP_TEST_TOOLS=1 SVC_DRIVER_TIMEOUT_S=300 PEERMCP_MCP_TASKS_RUNNER=0
N_CALLS=${N_CALLS:-20000}
STDIO_SECONDS=${STDIO_SECONDS:-2}
REPS=${REPS:-3}
tck=$(getconf CLK_TCK)
cpu_of() { awk -v t="$tck" '{printf "%.4f", ($14+$15)/t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
machine="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1), $(nproc) cores, $(uname -sr), load avg $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "$machine" >&2

# The remote server B: default limits, no in-process workers, the driver's PeerId trusted.
mkdir -p "$tmp/b" "$tmp/d" "$tmp/s"
D_ID=$("$bin" id --state-dir "$tmp/d/0" 2>/dev/null)
cat >"$tmp/b.json" <<EOF
{"log_level": "warning", "p2p": {"listen": ["/ip4/127.0.0.1/tcp/0", "/unix$tmp/b.sock"], "trusted_peers": ["$D_ID"], "workers": 0}}
EOF
# The base build (BASE_BUILD) may predate /unix/ listeners: TCP only for it.
cat >"$tmp/b-tcp.json" <<EOF
{"log_level": "warning", "p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$D_ID"], "workers": 0}}
EOF
# The same with the host's write policy on at both ends (p2p.write_early_bytes 2048; the driver's
# SVC_DRIVER_WRITE_EARLY_BYTES=2048): a read's output also leaves whenever it reaches 2 KiB (then
# 4, 8 KiB …), so the two ends can work at the same time (off by default: docs/p2p-host.md).
cat >"$tmp/b-early.json" <<EOF
{"log_level": "warning", "p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$D_ID"], "workers": 0, "write_early_bytes": ${EARLY_BYTES:-2048}}}
EOF
start_b() { # cmd prefix… : starts B (optionally under a wrapper), sets B_PID and B_MA
  rm -f "$tmp/b/announce.json"
  "$@" "${B_BIN:-$bin}" serve --no-stdio --config "${B_CONF:-$tmp/b.json}" --state-dir "$tmp/b" 2>"$tmp/b.err" &
  B_PID=$!
  pids+=($B_PID)
  for _ in $(seq 600); do [ -s "$tmp/b/announce.json" ] && break; sleep 0.1; done
  B_MA=$(python3 -c "import json; print(json.load(open('$tmp/b/announce.json'))['multiaddr'])" 2>/dev/null)
  B_UNIX=$(python3 -c "import json; print(([a for a in json.load(open('$tmp/b/announce.json'))['multiaddrs'] if a.startswith('/unix/')] + [''])[0])" 2>/dev/null)
  [ -n "$B_MA" ] || { echo "bench-p2p-call: the server did not start" >&2; cat "$tmp/b.err" >&2; exit 1; }
}
stop_b() {
  kill "$B_PID" 2>/dev/null
  for _ in $(seq 600); do kill -0 "$B_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$B_PID" 2>/dev/null
}

remote() { # label inflight
  local c0 c1 line
  c0=$(cpu_of "$B_PID")
  line=$(timeout 300 ${PIN_DRV:-} "${B_DRV:-$sdrv}" bench --state "$tmp/d" --peer "${R_MA:-$B_MA}" --n "$N_CALLS" --conns 1 --inflight "$2" 2>>"$tmp/drv.err")
  c1=$(cpu_of "$B_PID")
  [ -n "$line" ] || line='{"failed":-1}'
  python3 -c "
import json,sys
d=json.loads(sys.argv[1]); d['label']=sys.argv[2]; d['transport']='p2p'
cpu=float(sys.argv[4])-float(sys.argv[3])
d['server_cpu_us_per_call']=round(cpu*1e6/d['ok'],2) if d.get('ok') else None
print(json.dumps(d))" "$line" "$1" "$c0" "$c1" | tee -a "$out"
}

stdio() { # label [driver CPU] [server CPU]: without CPUs, both phases; with them, 16 in flight only, pinned
  local line
  if [ $# -ge 3 ]; then
    line=$(timeout 300 taskset -c "$2" "$mdrv" --inflight 16 --warmup 0.5 --seq-seconds 0 --seconds "$STDIO_SECONDS" -- \
      taskset -c "$3" "$bin" serve --no-p2p --state-dir "$tmp/s" --log-level warning 2>>"$tmp/stdio.err")
  else
    line=$(timeout 300 "$mdrv" --inflight 16 --warmup 0.5 --seq-seconds "$STDIO_SECONDS" --seconds "$STDIO_SECONDS" -- \
      "$bin" serve --no-p2p --state-dir "$tmp/s" --log-level warning 2>>"$tmp/stdio.err")
  fi
  [ -n "$line" ] || line='{"failed":-1}'
  python3 -c "
import json,sys
d=json.loads(sys.argv[1])
for ph,k in (('sequential',1),('concurrent',16)):
    if ph not in d: continue
    p=d.get(ph,{})
    print(json.dumps({'label':'stdio, %d in flight%s'%(k,sys.argv[2]),'transport':'stdio','inflight':k,'n':p.get('calls'),
        'per_s':p.get('calls_per_s'),'p50_us':round(p.get('p50_ms',0)*1000,1),'p99_us':round(p.get('p99_ms',0)*1000,1),
        'server_cpu_us_per_call':p.get('server_cpu_us_per_call'),'driver_cpu_us_per_call':p.get('driver_cpu_us_per_call')}))
" "$line" "${1#stdio}" | tee -a "$out"
}

floor() { # the kernel's round trip, no peermcp: TCP loopback and pipe ping-pong (bench/p2p/pingpong.c)
  local line
  line=$(timeout 120 "$ppong" --n 20000 2>/dev/null)
  [ -n "$line" ] || return 0
  python3 -c "
import json,sys
d=json.loads(sys.argv[1])
for k,lb in (('tcp','TCP loopback ping-pong, 1 in flight (floor)'),('unix','unix socket ping-pong, 1 in flight (floor)'),
             ('pipe','pipe ping-pong, 1 in flight (floor)')):
    if k not in d: continue
    print(json.dumps({'label':lb,'transport':k,'per_s':d[k]['per_s'],'p50_us':d[k]['p50_us'],'p99_us':d[k]['p99_us']}))
" "$line" | tee -a "$out"
}

floor_batch() { # the one-CPU floor of a 16-call batch: pipe and unix ping-pong pinned to CPU 0, batch-sized
  local line
  line=$(timeout 120 taskset -c 0 "$ppong" --n 20000 --req "$BATCH_REQ" --rep "$BATCH_REP" 2>/dev/null)
  [ -n "$line" ] || return 0
  python3 -c "
import json,sys
d=json.loads(sys.argv[1])
for k,lb in (('unix','unix socket ping-pong, 16-call batches, one CPU (floor)'),('pipe','pipe ping-pong, 16-call batches, one CPU (floor)')):
    if k not in d: continue
    print(json.dumps({'label':lb,'transport':k,'per_s':d[k]['per_s'],'p50_us':d[k]['p50_us'],'p99_us':d[k]['p99_us']}))
" "$line" | tee -a "$out"
  line=$(timeout 120 taskset -c 0 "$aead" --sweep "$BATCH_REQ" "$BATCH_REP" 2>/dev/null | grep '"openssl"' | tr '\n' ' ')
  [ -n "$line" ] || return 0
  python3 -c "
import json,sys
v={json.loads(l)['msg_bytes']:json.loads(l)['us_per_msg'] for l in sys.argv[1].replace('} {','}\n{').splitlines() if l.strip()}
print(json.dumps({'label':'Noise seal of a 16-call batch, one CPU','us_req':v.get(int(sys.argv[2])),'us_rep':v.get(int(sys.argv[3]))}))
" "$line" "$BATCH_REQ" "$BATCH_REP" | tee -a "$out"
}

start_b
# warm-up of the remote path (identity, connection caches, the allocator)
timeout 120 "$sdrv" bench --state "$tmp/d" --peer "$B_MA" --n 2000 --conns 1 --inflight 16 >/dev/null 2>>"$tmp/drv.err"
for r in $(seq "$REPS"); do
  echo "== round $r: stdio, then remote" >&2
  floor
  stdio "stdio"
  remote "remote, 1 connection, 1 in flight" 1
  remote "remote, 1 connection, 16 in flight" 16
  if [ -n "$B_UNIX" ]; then
    R_MA="$B_UNIX" remote "remote unix, 1 connection, 1 in flight" 1
    R_MA="$B_UNIX" remote "remote unix, 1 connection, 16 in flight" 16
  fi
  if [ "${EARLY_ROW:-1}" = 1 ]; then
    stop_b
    B_CONF="$tmp/b-early.json" start_b
    SVC_DRIVER_WRITE_EARLY_BYTES=${EARLY_BYTES:-2048} remote "remote, 1 connection, 16 in flight, early sends" 16
    stop_b
    start_b
  fi
  if [ "${PIN_ROWS:-1}" = 1 ] && command -v taskset >/dev/null; then
    floor_batch
    stdio "stdio, one CPU" 0 0
    stdio "stdio, two CPUs" 1 0
    stop_b
    start_b taskset -c 0
    PIN_DRV="taskset -c 0" remote "remote, 1 connection, 16 in flight, one CPU" 16
    PIN_DRV="taskset -c 1" remote "remote, 1 connection, 16 in flight, two CPUs" 16
    if [ -n "$B_UNIX" ]; then
      R_MA="$B_UNIX" PIN_DRV="taskset -c 0" remote "remote unix, 1 connection, 16 in flight, one CPU" 16
      R_MA="$B_UNIX" PIN_DRV="taskset -c 1" remote "remote unix, 1 connection, 16 in flight, two CPUs" 16
    fi
    stop_b
    start_b
  fi
  if [ -n "${BASE_BUILD:-}" ]; then
    stop_b
    B_CONF="$tmp/b-tcp.json" B_BIN="$BASE_BUILD/peermcp" start_b
    B_DRV="$BASE_BUILD/bench/service/svc_bench_driver" remote "remote, 1 connection, 1 in flight (base)" 1
    B_DRV="$BASE_BUILD/bench/service/svc_bench_driver" remote "remote, 1 connection, 16 in flight (base)" 16
    stop_b
    start_b
  fi
done
stop_b

# ---- callgrind: instructions per remote call on the server ----
prof=""
if [ "${BENCH_PROFILE:-1}" != 0 ] && command -v valgrind >/dev/null; then
  echo "== callgrind (server, remote echo, 16 in flight)" >&2
  totals=()
  for n in 2000 12000; do
    start_b valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$n"
    timeout 600 "$sdrv" bench --state "$tmp/d" --peer "$B_MA" --n "$n" --conns 1 --inflight 16 >/dev/null 2>>"$tmp/drv.err"
    stop_b
    totals+=("$(grep -E '^summary:' "$tmp/cg.$n" | awk '{print $2}')")
  done
  per=$(( (totals[1] - totals[0]) / 10000 ))
  # the client side too: svc_bench_driver under callgrind against a plain server
  ctot=()
  for n in 2000 12000; do
    start_b
    timeout 600 valgrind --tool=callgrind --callgrind-out-file="$tmp/cgc.$n" "$sdrv" bench --state "$tmp/d" --peer "$B_MA" \
      --n "$n" --conns 1 --inflight 16 >/dev/null 2>>"$tmp/drv.err"
    stop_b
    ctot+=("$(grep -E '^summary:' "$tmp/cgc.$n" | awk '{print $2}')")
  done
  cper=$(( (ctot[1] - ctot[0]) / 10000 ))
  echo "{\"label\":\"callgrind-client\",\"instructions_per_call\":$cper,\"total_2000\":${ctot[0]},\"total_12000\":${ctot[1]}}" | tee -a "$out"
  echo "{\"label\":\"callgrind\",\"instructions_per_call\":$per,\"total_2000\":${totals[0]},\"total_12000\":${totals[1]}}" | tee -a "$out"
  prof="$tmp/prof.txt"
  cp "$tmp/cg.12000" "$BUILD/bench-p2p-call.callgrind" 2>/dev/null
  callgrind_annotate "$tmp/cg.12000" 2>"$tmp/annotate.err" | awk '/^-+$/{n++} n>=4 && /%\)/ && k++ < 20' |
    sed -E 's#\./[^ ]*/([^/ ]+:)#\1#; s#\[/[^]]*/([^/]+)\]#[\1]#; s#  +# #g' >"$prof"
fi

# ---- RESULTS.md ----
python3 - "$out" "${RESULTS:-$root/bench/RESULTS.md}" "$machine" "$(git -C "$root" rev-parse --short HEAD 2>/dev/null)" "$prof" <<'PYEOF'
import json, sys, time, os, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
path, machine, rev, prof = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
load = " ".join(open("/proc/loadavg").read().split()[:3])
cg = [r for r in rows if r.get("label") == "callgrind"]
cgc = [r for r in rows if r.get("label") == "callgrind-client"]
meas = [r for r in rows if not str(r.get("label")).startswith("callgrind")]
labels = ["stdio, 1 in flight", "remote, 1 connection, 1 in flight", "stdio, 16 in flight", "remote, 1 connection, 16 in flight"]
floors = [l for l in ("TCP loopback ping-pong, 1 in flight (floor)", "pipe ping-pong, 1 in flight (floor)") if any(r.get("label") == l for r in meas)]
ufloor = [l for l in ("unix socket ping-pong, 1 in flight (floor)",) if any(r.get("label") == l for r in meas)]
bfloors = [l for l in ("pipe ping-pong, 16-call batches, one CPU (floor)", "unix socket ping-pong, 16-call batches, one CPU (floor)")
           if any(r.get("label") == l for r in meas)]
seals = [r for r in meas if r.get("label") == "Noise seal of a 16-call batch, one CPU" and r.get("us_req") and r.get("us_rep")]
meas = [r for r in meas if r.get("label") != "Noise seal of a 16-call batch, one CPU"]
unix_labels = [l for l in ("remote unix, 1 connection, 1 in flight", "remote unix, 1 connection, 16 in flight") if any(r.get("label") == l for r in meas)]
upins = [(p, "stdio, 16 in flight, " + p, "remote unix, 1 connection, 16 in flight, " + p) for p in ("one CPU", "two CPUs")]
upins = [t for t in upins if any(r.get("label") == t[1] for r in meas) and any(r.get("label") == t[2] for r in meas)]
base_labels = [l + " (base)" for l in (labels[1], labels[3]) if any(r.get("label") == l + " (base)" for r in meas)]
off_labels = [l for l in ("remote, 1 connection, 16 in flight, early sends",) if any(r.get("label") == l for r in meas)]
pins = [(p, "stdio, 16 in flight, " + p, "remote, 1 connection, 16 in flight, " + p) for p in ("one CPU", "two CPUs")]
pins = [t for t in pins if any(r.get("label") == t[1] for r in meas) and any(r.get("label") == t[2] for r in meas)]
pin_labels = [l for t in pins for l in t[1:]]
def med(label, key):
    v = [r.get(key) for r in meas if r.get("label") == label and r.get(key) is not None]
    return statistics.median(v) if v else None
def allv(label, key):
    return [r.get(key) for r in meas if r.get("label") == label and r.get(key) is not None]
L = ["## P2P call path (issue 11 §3)", "",
     f"`make bench-p2p-call` (bench/p2p/call.sh), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {rev}, "
     "loopback, one run, release build. Tool `echo` {\"text\":\"hello\",\"n\":i}. stdio = mcp_bench_driver (C, pipelined) "
     "→ `peermcp serve --no-p2p`; remote = svc_bench_driver (C, src/service/client.c over libp2p) → `peermcp serve "
     "--no-stdio` over /mcp+p2p/1.0.0, one connection, default limits. Both ends share the machine's cores.",
     f"Machine: {machine}; load avg {load} at the end. Each row: the median of the interleaved rounds (all rounds in brackets).",
     "", "| Measurement | calls/s | p50 µs | p99 µs | server CPU µs/call | driver CPU µs/call |", "|---|---|---|---|---|---|"]
def fmt(v):
    return "" if v is None else (f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}")
for lb in labels + unix_labels + off_labels + pin_labels + [t[2] for t in upins] + base_labels + floors + ufloor + bfloors:
    ps = allv(lb, "per_s")
    L.append(f"| {lb} | {fmt(med(lb,'per_s'))} {[round(x) for x in ps]} | {fmt(med(lb,'p50_us'))} {allv(lb,'p50_us')} | "
             f"{fmt(med(lb,'p99_us'))} | {fmt(med(lb,'server_cpu_us_per_call'))} {allv(lb,'server_cpu_us_per_call')} | "
             f"{fmt(med(lb,'driver_cpu_us_per_call'))} |")
s1, r1 = med(labels[0], "p50_us"), med(labels[1], "p50_us")
s16, r16 = med(labels[2], "per_s"), med(labels[3], "per_s")
L.append("")
if s1 and r1:
    L.append(f"Remote / stdio p50 at 1 in flight: **{r1/s1:.2f}×** (target ≤ 1.25×).")
if s16 and r16:
    L.append(f"Remote / stdio calls/s at 16 in flight: **{r16/s16:.2f}** (target ≥ 0.75).")
tf, pf = (med(floors[0], "p50_us") if floors else None), (med(floors[1], "p50_us") if len(floors) > 1 else None)
if tf and r1 and s1:
    L.append(f"Against the kernel's floor in the same run: remote p50 {r1:.1f} µs = **{r1/tf:.2f}× a bare TCP loopback round "
             f"trip** ({tf:.1f} µs, {r1-tf:.1f} µs above it); stdio p50 {s1:.1f} µs = {s1/pf:.2f}× a bare pipe round trip "
             f"({pf:.1f} µs); 1.25× stdio = {1.25*s1:.1f} µs" + (" — below the TCP floor itself." if 1.25*s1 < tf else "."))
if len(unix_labels) == 2 and s1 and s16:
    u1, u16 = med(unix_labels[0], "p50_us"), med(unix_labels[1], "per_s")
    if u1 and u16:
        per = [f"{y/x:.2f}" for x, y in zip(allv(labels[2], "per_s"), allv(unix_labels[1], "per_s")) if x]
        L.append(f"Remote over a unix socket (same-host peers), same rounds: p50 at 1 in flight **{u1/s1:.2f}×** stdio's "
                 f"(target ≤ 1.25×), calls/s at 16 in flight **{u16/s16:.2f}** of stdio's (target ≥ 0.75; per round "
                 f"{', '.join(per)})" + (f"; against TCP: p50 {u1/r1:.2f}×, calls/s {u16/r16:.2f}×." if r1 and r16 else "."))
uf = med(ufloor[0], "p50_us") if ufloor else None
if uf and pf and tf:
    L.append(f"Kernel floors, same rounds (one message in flight, no peermcp): unix socket {uf:.1f} µs, pipe {pf:.1f} µs, "
             f"TCP loopback {tf:.1f} µs per round trip.")
if base_labels:
    b1, b16 = med(base_labels[0], "p50_us"), med(base_labels[-1], "per_s")
    if s1 and b1 and s16 and b16:
        L.append(f"Base build, same rounds: p50 **{b1/s1:.2f}×** stdio, calls/s at 16 in flight **{b16/s16:.2f}** of stdio's.")
if off_labels and s16 and r16:
    o16 = med(off_labels[0], "per_s")
    if o16:
        L.append(f"Early sends on (p2p.write_early_bytes {os.environ.get('EARLY_BYTES', '2048')} at both ends), same rounds: "
                 f"calls/s at 16 in flight **{o16/s16:.2f}** of stdio's; without them (the default) {r16/s16:.2f}.")
for p, sl, rl in pins:
    a, b = med(sl, "per_s"), med(rl, "per_s")
    if a and b:
        per = [f"{y/x:.2f}" for x, y in zip(allv(sl, "per_s"), allv(rl, "per_s")) if x]
        L.append(f"Pinned, {p} (" + ("server and client on CPU 0" if p == "one CPU" else "server on CPU 0, client on CPU 1") +
                 f"), same rounds: remote / stdio calls/s at 16 in flight **{b/a:.2f}** (per round {', '.join(per)}).")
for p, sl, rl in upins:
    a, b = med(sl, "per_s"), med(rl, "per_s")
    if a and b:
        per = [f"{y/x:.2f}" for x, y in zip(allv(sl, "per_s"), allv(rl, "per_s")) if x]
        L.append(f"Pinned, {p}, remote over the unix socket / stdio calls/s at 16 in flight: **{b/a:.2f}** (per round {', '.join(per)}).")
so = med("stdio, 16 in flight, one CPU", "per_s")
if len(bfloors) == 2 and seals and so:
    # per batch of 16 on one CPU: what a remote unix path pays beyond stdio's at the least — the
    # socket's kernel path over a pipe's (batch-sized ping-pong, one message each way) and Noise
    # (each batch's two messages sealed once and opened once; opening costs what sealing does)
    fp, fu = 1e6 / med(bfloors[0], "per_s"), 1e6 / med(bfloors[1], "per_s")
    ns = 2 * (statistics.median(r["us_req"] for r in seals) + statistics.median(r["us_rep"] for r in seals))
    sb = 16e6 / so
    L.append(f"One CPU, the floor (same rounds): a batch of 16 calls takes stdio {sb:.1f} µs; a unix socket round trip of "
             f"a batch's sizes ({os.environ.get('BATCH_REQ', '1918')} / {os.environ.get('BATCH_REP', '4510')} bytes) costs "
             f"{fu - fp:.1f} µs more than a pipe's ({fu:.1f} vs {fp:.1f} µs) and Noise seals and opens the batch's two "
             f"messages in {ns:.1f} µs: a remote unix path with no other cost than these would reach "
             f"**{sb / (sb + fu - fp + ns):.2f}** of stdio's one-CPU calls/s (target ≥ 0.75); 0.75 leaves "
             f"{sb / 0.75 - sb:.1f} µs a batch above stdio.")
sc1, rc1 = med(labels[2], "server_cpu_us_per_call"), med(labels[3], "server_cpu_us_per_call")
if sc1 and rc1:
    L.append(f"Server CPU per call at 16 in flight, remote / stdio: {rc1/sc1:.2f}× ({rc1} vs {sc1} µs).")
if cgc:
    c = cgc[-1]
    L += ["", f"callgrind, client (svc_bench_driver: src/service/client.c over libp2p, 16 in flight): **{c['instructions_per_call']} "
          f"instructions per call** (({c['total_12000']} − {c['total_2000']}) / 10,000; the driver's own latency bookkeeping included)."]
if cg:
    c = cg[-1]
    L += ["", f"callgrind, server, remote echo (16 in flight, one connection): **{c['instructions_per_call']} instructions "
          f"per call** (({c['total_12000']} − {c['total_2000']}) / 10,000). Top symbols by self cost (12,000-call run, "
          "start-up and shutdown included):", "", "```"]
    if prof and os.path.exists(prof):
        L += [l.rstrip() for l in open(prof)]
    L += ["```"]
section = "\n".join(L) + "\n"
text = open(path).read() if os.path.exists(path) else "# Benchmark results\n\n"
start = text.find("## P2P call path (issue 11 §3)")
if start >= 0:
    # the generated part ends at the next section or at the first dated subsection ("### …"),
    # which records a past run and its analysis and is kept
    ends = [e for e in (text.find("\n## ", start + 1), text.find("\n### ", start + 1)) if e >= 0]
    end = min(ends) if ends else -1
    text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
print(section)
PYEOF
