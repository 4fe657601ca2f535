#!/usr/bin/env bash
# bench/p2p/kcost.sh (issue 11 §3): what the two call paths pay outside user-space instructions —
# syscalls by kind, context switches (all / involuntary), CPU migrations, and CPU time split into
# user and kernel (kernel by the syscall it ran in) — per batch of 16 calls, for the server and
# the client of each pair separately:
#   stdio:  mcp_bench_driver --inflight 16 → `peermcp serve --no-p2p` (pipes);
#   remote: svc_bench_driver --inflight 16 --conns 1 → `peermcp serve --no-stdio` over
#           /mcp+p2p/1.0.0 (TCP loopback, Noise, Yamux), the same `echo` tool as bench/p2p/call.sh.
# Every process runs under perf from its start to its exit, twice: `perf stat` (tracepoints
# raw_syscalls:sys_enter and syscalls:sys_enter_*, context-switches, cpu-migrations,
# sched:sched_switch with prev_state == 0 = preempted while runnable), then `perf record` of its
# task clock (a sample every PERIOD_NS of its CPU, kernel call chains only). Not rusage: this
# kernel splits utime/stime by 250 Hz ticks (CONFIG_TICK_CPU_ACCOUNTING), which on this VM gave
# splits off by several times. Each is run with N1 and with N2 calls; the figures are
# (run N2 − run N1) / (N2 − N1) × 16, so start-up, handshakes and shutdown cancel. The sampling
# itself costs some kernel time (an interrupt per sample): compare columns, not absolute values.
# Knobs: BUILD (default build), N1 / N2 (default 4000 / 68000), REPS (default 3: medians over
# REPS rounds), PERIOD_NS (default 100000), LABEL (a name for this build), BASE_BUILD (optional:
# another build's peermcp and svc_bench_driver measured in the same rounds), PIN (same: both
# processes on CPU 0; split: server on CPU 0, client on CPU 1; unset: where the scheduler puts
# them), KEEP_TMP (keep the perf files). Writes $BUILD/bench-p2p-kcost.jsonl and prints a Markdown
# table. UNIX=1: the remote pair of this build is measured a second time in the same rounds over a
# Unix-domain socket (the node also listens on /unix/<tmp>/b.sock; rows "remote unix (…)").
# Not part of any make target; ~1 minute per build on an idle 2-core machine. Needs perf
# with tracepoints (root or perf_event_paranoid ≤ −1).
set -u
SC="read write readv writev sendto recvfrom sendmsg recvmsg epoll_wait epoll_pwait epoll_ctl poll ppoll futex timerfd_settime getrandom clock_gettime"
EV="raw_syscalls:sys_enter,context-switches,cpu-migrations"
for s in $SC; do EV="$EV,syscalls:sys_enter_$s"; done
PERIOD_NS=${PERIOD_NS:-100000}
export EV PERIOD_NS
perfw() { # opts outfile cmd… : cmd under perf (MODE stat: counts; MODE rec: with -g, a sample every PERIOD_NS of its CPU)
  local opts=$1 o=$2; shift 2
  if [ "$MODE" = stat ]; then
    exec perf stat $opts -o "$o" -e "$EV" -e sched:sched_switch --filter 'prev_state == 0' -- "$@"
  else
    exec perf record -q $opts -o "$o" -e task-clock -c "$PERIOD_NS" -g --kernel-callchains -- "$@"
  fi
}
# as a wrapper for the stdio server (the stdio driver starts its server itself)
[ "${1:-}" = --wrap ] && { shift; perfw "" "$@"; }

root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="${BUILD:-$root/build}"
N1=${N1:-4000}
N2=${N2:-68000}
REPS=${REPS:-3}
# PIN: "same" = server and client on CPU 0 (the kernel's wake-ups stay on one CPU), "split" = server
# on CPU 0, client on CPU 1 (every wake-up crosses CPUs), empty = where the scheduler puts them
case "${PIN:-}" in
  same) PIN_SRV="taskset -c 0" PIN_DRV="taskset -c 0" ;;
  split) PIN_SRV="taskset -c 0" PIN_DRV="taskset -c 1" ;;
  *) PIN_SRV="" PIN_DRV="" ;;
esac
command -v perf >/dev/null || { echo "kcost: perf is missing" >&2; exit 1; }
. "$root/bench/lib.sh"
bench_begin
out="$BUILD/bench-p2p-kcost.jsonl"
: >"$out"
export PEERMCP_TEST_TOOLS=1 SVC_DRIVER_TIMEOUT_S=300 PEERMCP_MCP_TASKS_RUNNER=0
bin="$BUILD/peermcp"
mdrv="${MDRV:-$BUILD/bench/mcp/mcp_bench_driver}"
mkdir -p "$tmp/d"
D_ID=$("$bin" id --state-dir "$tmp/d/0" 2>/dev/null)
cat >"$tmp/b.json" <<EOF
{"log_level": "warning", "p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$D_ID"], "workers": 0}}
EOF
cat >"$tmp/bu.json" <<EOF
{"log_level": "warning", "p2p": {"listen": ["/ip4/127.0.0.1/tcp/0", "/unix$tmp/b.sock"], "trusted_peers": ["$D_ID"], "workers": 0}}
EOF
remote_run() { # bin drv n tag [unix]
  rm -rf "$tmp/b"; mkdir -p "$tmp/b"
  local conf="$tmp/b.json"
  [ "${5:-}" = unix ] && conf="$tmp/bu.json"
  (perfw "" "$tmp/srv.$4" $PIN_SRV "$1" serve --no-stdio --config "$conf" --state-dir "$tmp/b" 2>"$tmp/b.err") &
  local pp=$!
  pids+=("$pp")
  for _ in $(seq 300); do [ -s "$tmp/b/announce.json" ] && break; sleep 0.05; done
  local ma
  ma=$(python3 -c "import json,sys; a=json.load(open('$tmp/b/announce.json'))['multiaddrs']; print([x for x in a if x.startswith('/unix/') == (sys.argv[1] == 'unix')][0])" "${5:-tcp}" 2>/dev/null)
  [ -n "$ma" ] || { echo "kcost: the server did not start" >&2; cat "$tmp/b.err" >&2; exit 1; }
  (perfw "" "$tmp/drv.$4" $PIN_DRV "$2" bench --state "$tmp/d" --peer "$ma" --n "$3" --conns 1 --inflight 16 >"$tmp/drvout.$4" 2>>"$tmp/drv.err")
  # the server is perf's child: stop it, perf prints its counts when it exits
  pkill -TERM -P "$pp" 2>/dev/null
  wait "$pp" 2>/dev/null
}
stdio_run() { # bin n tag
  rm -rf "$tmp/s"; mkdir -p "$tmp/s"
  (perfw -i "$tmp/drv.$3" $PIN_DRV "$mdrv" --inflight 16 --warmup 0 --seq-seconds 0 --calls "$2" -- \
    bash "$0" --wrap "$tmp/srv.$3" $PIN_SRV "$1" serve --no-p2p --state-dir "$tmp/s" --log-level warning \
    >"$tmp/drvout.$3" 2>>"$tmp/stdio.err")
}
emit() { # label kind : per-call figures of the N2 − N1 difference
  for f in "$tmp"/{srv,drv}."$2".{1,2}.rec; do perf script -i "$f" -F comm,tid,ip,sym,dso >"$f.txt" 2>/dev/null; done
  python3 - "$tmp" "$1" "$2" "$N1" "$N2" "$PERIOD_NS" <<'PYEOF' | tee -a "$out"
import json, re, sys, collections
tmp, label, kind, n1, n2, period = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def parse_stat(p):
    d = {}
    for l in open(p):
        m = re.match(r"\s*([\d,.]+)\s+(\S+)", l)
        if m and m.group(1)[0].isdigit() and "seconds" not in l:
            d[m.group(2).replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "syscalls")] = float(m.group(1).replace(",", ""))
    d["invol_cs"] = d.pop("sched:sched_switch", 0)
    return d
SYS = {"sendto": "sendto", "write": "write", "read": "read", "epoll_wait": "epoll_wait", "poll": "poll"}
def parse_rec(p):
    """CPU µs from task-clock samples: user, kernel, kernel by the syscall it ran in"""
    d = collections.Counter()
    def done(chain):
        if chain is None: return
        d["cpu"] += 1
        if not chain or chain[0][1] != "[kernel.kallsyms]":  # user samples carry no chain (--kernel-callchains)
            d["user"] += 1; return
        d["kernel"] += 1
        where = "k_other"
        for sym, _ in chain:
            m = re.match(r"(?:__x64_sys_|__do_sys_|ksys_)(\w+)$", sym)
            if m:
                where = "k_" + SYS.get(m.group(1), "other_syscalls"); break
        d[where] += 1
    chain = None
    for line in open(p):
        if not line.strip():
            done(chain); chain = None; continue
        if not line[0].isspace():
            done(chain); chain = []; continue
        m = re.match(r"\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
        if m and chain is not None: chain.append((re.sub(r"\+0x[0-9a-f]+$", "", m.group(1)), m.group(2)))
    done(chain)
    return {k: v * period / 1000.0 for k, v in d.items()}  # µs
r = {"label": label}
for w in ("srv", "drv"):
    a = parse_stat(f"{tmp}/{w}.{kind}.1.stat"); a.update(parse_rec(f"{tmp}/{w}.{kind}.1.rec.txt"))
    b = parse_stat(f"{tmp}/{w}.{kind}.2.stat"); b.update(parse_rec(f"{tmp}/{w}.{kind}.2.rec.txt"))
    for k in sorted(set(a) | set(b)):
        r[f"{w}.{k}"] = round((b.get(k, 0) - a.get(k, 0)) / (n2 - n1), 4)
print(json.dumps(r))
PYEOF
}
builds=("${LABEL:-this build}|$BUILD")
[ -n "${BASE_BUILD:-}" ] && builds+=("base|$BASE_BUILD")
for r in $(seq "$REPS"); do
  echo "== round $r ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
  for MODE in stat rec; do
    export MODE
    stdio_run "$bin" "$N1" stdio.1.$MODE; stdio_run "$bin" "$N2" stdio.2.$MODE
  done
  emit "stdio" stdio
  for b in "${builds[@]}"; do
    lb=${b%%|*}; bd=${b#*|}
    for MODE in stat rec; do
      export MODE
      remote_run "$bd/peermcp" "$bd/bench/service/svc_bench_driver" "$N1" remote.1.$MODE
      remote_run "$bd/peermcp" "$bd/bench/service/svc_bench_driver" "$N2" remote.2.$MODE
    done
    emit "remote ($lb)" remote
  done
  if [ "${UNIX:-0}" = 1 ]; then
    for MODE in stat rec; do
      export MODE
      remote_run "$bin" "$BUILD/bench/service/svc_bench_driver" "$N1" remote.1.$MODE unix
      remote_run "$bin" "$BUILD/bench/service/svc_bench_driver" "$N2" remote.2.$MODE unix
    done
    emit "remote unix (${LABEL:-this build})" remote
  fi
done
python3 - "$out" <<'PYEOF'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
labels = list(dict.fromkeys(r["label"] for r in rows))
keys = ["syscalls", "read", "write", "sendto", "recvfrom", "epoll_wait", "epoll_pwait", "poll", "epoll_ctl", "futex",
        "timerfd_settime", "getrandom", "clock_gettime", "context-switches", "invol_cs", "cpu-migrations",
        "cpu", "user", "kernel", "k_sendto", "k_write", "k_read", "k_epoll_wait", "k_poll", "k_other_syscalls", "k_other"]
names = {"syscalls": "syscalls (all)", "context-switches": "context switches", "invol_cs": "… of them involuntary",
         "cpu": "CPU µs (task clock samples)", "user": "… user µs", "kernel": "… kernel µs",
         "k_sendto": "kernel µs in sendto", "k_write": "kernel µs in write", "k_read": "kernel µs in read",
         "k_epoll_wait": "kernel µs in epoll_wait", "k_poll": "kernel µs in poll",
         "k_other_syscalls": "kernel µs in other syscalls", "k_other": "kernel µs outside syscalls (faults, IRQs, return to user)"}
cols = [(lb, w) for lb in labels for w in ("srv", "drv")]
print("| per batch of 16 calls (per call × 16), median of rounds | " + " | ".join(f"{lb} {'server' if w == 'srv' else 'client'}" for lb, w in cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for k in keys:
    vals = []
    for lb, w in cols:
        v = [r.get(f"{w}.{k}") for r in rows if r["label"] == lb and r.get(f"{w}.{k}") is not None]
        vals.append(statistics.median(v) * 16 if v else None)
    if all(v is None or abs(v) < 0.05 for v in vals):
        continue
    print(f"| {names.get(k, k)} | " + " | ".join("" if v is None else f"{v:.2f}" for v in vals) + " |")
PYEOF
