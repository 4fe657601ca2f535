#!/usr/bin/env bash
# Durable syncs per task on node B (issue 11 §2, B's state on the disk): the stable side of the
# on-disk figures. For each build named: B (state under STATE_ROOT, default a mktemp -d on the
# state directory's disk) traced by `strace -f --seccomp-bpf -e trace=fsync,fdatasync` (only
# those syscalls stop, so B runs at nearly full speed), one native `peermcp worker --peer B
# --slots 16`, svc_bench_driver `tasks` (submit → wait) with INFLIGHT tasks in flight (default
# "16 64": one fresh B per value); a warm-up of WARM tasks, then N.
#   bash bench/service/syncs.sh [BUILD_DIR...]     (default: ./build; BASE_BUILD=dir adds it first;
#   ROUNDS=k repeats the whole set k times, interleaved; PIPELINE=1 or 0 sets queue.sync_pipeline
#   in B's config for the builds other than BASE_BUILD, whose config may not know the key)
# Prints one JSON line per build and window: {"build", "inflight", "n", "ok", "per_s", "syncs",
# "syncs_per_task", "sync_ms_total", "sync_us_mean", "sync_ms_max", "wall_ms", "writer_cpu_ms",
# "writer_cpu_us_per_group", "writer_sync_ms", "writer_busy_pct", "writer_in_sync_pct",
# "sync_thread_ms", "sync_thread_busy_pct", "overlap_min_pct"} — syncs counted over the measured
# run only (the warm-up's are subtracted), the time inside them from strace -T. The queue's
# writer thread is the one named tq-writer (a build without the name: the one that made the
# warm-up's syncs), the sync stage's tq-sync (issue 11 §2: the pipelined commit; none in older
# builds). Writer CPU from /proc (10 ms ticks). writer busy % = (its CPU + its own time in
# syncs) / the run's wall time — near 100 % means the serial writer bounds tasks/s;
# writer_in_sync_pct = its time in syncs / its busy time; sync_thread_busy_pct = the sync
# stage's time in syncs / wall; overlap_min_pct = max(0, writer busy + sync stage busy − 100):
# the least share of the wall time in which the writer ran while a sync was in flight (a serial
# writer: 0 by construction; the real overlap can be larger).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/service/lib.sh"
N=${N:-2000}
WARM=${WARM:-100}
INFLIGHT=${INFLIGHT:-16 64}
builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=("$root/build")
[ -n "${BASE_BUILD:-}" ] && builds=("$BASE_BUILD" "${builds[@]}")
export PEERMCP_TEST_TOOLS=1 SVC_DRIVER_TIMEOUT_S=600
. "$root/bench/lib.sh"
bench_begin "${STATE_ROOT:-${TMPDIR:-/tmp}}"
drv="$root/build/bench/service/svc_bench_driver"
[ -x "$drv" ] || ninja -C "$root/build" bench/service/svc_bench_driver >/dev/null || exit 1

count_syncs() { grep -cE '(fsync|fdatasync)\(' "$1" 2>/dev/null || echo 0; }
sync_ms() { grep -oE '<[0-9.]+>' "$1" 2>/dev/null | tr -d '<>' | awk '{s += $1} END {printf "%.1f", s * 1000}'; }
sync_max_ms() { grep -oE '<[0-9.]+>' "$1" 2>/dev/null | tr -d '<>' | awk '$1 > m {m = $1} END {printf "%.1f", m * 1000}'; }
# time in syncs of one thread (its lines start with its tid; a sync's time is on its last line)
tid_sync_ms() { [ -n "$2" ] || { echo 0; return; }; grep -E "^$2 " "$1" 2>/dev/null | grep -oE '<[0-9.]+>' | tr -d '<>' | awk '{s += $1} END {printf "%.1f", s * 1000}'; }
# the thread of process $1 named $2 (pthread_setname_np), or nothing
tid_named() { for t in /proc/"$1"/task/*; do [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] && { basename "$t"; return; }; done; }

k=0
for rd in $(seq "${ROUNDS:-1}"); do
for b in "${builds[@]}"; do
  for f in $INFLIGHT; do
    k=$((k + 1))
    bin="$b/peermcp"
    run="$tmp/r$k"
    svc_topology "$bin" "$run"
    if [ -n "${PIPELINE:-}" ] && [ "$b" != "${BASE_BUILD:-}" ]; then
      python3 - "$run/b.json" "$PIPELINE" <<'PYC'
import json, sys
c = json.load(open(sys.argv[1])); c.setdefault("queue", {})["sync_pipeline"] = sys.argv[2] == "1"
json.dump(c, open(sys.argv[1], "w"))
PYC
    fi
    st="$run/strace.out"
    strace -f --seccomp-bpf -T -e trace=fsync,fdatasync -o "$st" "$bin" serve --no-stdio --config "$run/b.json" \
      --state-dir "$run/b" 2>"$run/b.err" &
    bpid=$!
    pids+=($bpid)
    for _ in $(seq 600); do [ -s "$run/b/announce.json" ] && break; sleep 0.1; done
    ma=$(python3 -c "import json; print(json.load(open('$run/b/announce.json'))['multiaddr'])")
    "$bin" worker --peer "$ma" --state-dir "$run/w" --slots 16 --config "$run/w.json" 2>"$run/w.err" >/dev/null &
    wpid=$!
    pids+=($wpid)
    sleep 1
    timeout 300 "$drv" tasks --state "$run/d" --peer "$ma" --n "$WARM" --conns 1 --inflight "$f" >/dev/null 2>>"$run/drv.err"
    s0=$(count_syncs "$st")
    l0=$(wc -l <"$st")
    bpid_real=$(pgrep -P "$bpid" | head -1)
    # the queue's writer (tq-writer; an older build: the thread that made the warm-up's syncs,
    # strace -f prints its tid) and the sync stage (tq-sync, when there is one)
    wtid=$(tid_named "$bpid_real" tq-writer)
    [ -n "$wtid" ] || wtid=$(grep -oE '^[0-9]+ +(fsync|fdatasync)\(' "$st" | awk '{print $1}' | sort | uniq -c | sort -rn | awk 'NR==1 {print $2}')
    stid=$(tid_named "$bpid_real" tq-sync)
    tcpu() { awk '{print $14+$15}' "/proc/$bpid_real/task/$wtid/stat" 2>/dev/null || echo 0; }
    c0=$(tcpu)
    t0=$(date +%s%N)
    line=$(timeout 300 "$drv" tasks --state "$run/d" --peer "$ma" --n "$N" --conns 1 --inflight "$f" 2>>"$run/drv.err")
    t1=$(date +%s%N)
    c1=$(tcpu)
    s1=$(count_syncs "$st")
    tail -n +"$((l0 + 1))" "$st" >"$run/st1" # the measured run's lines (a sync's time is on its last line)
    kill "$wpid" 2>/dev/null
    kill $(pgrep -P "$bpid") 2>/dev/null # B itself: strace exits with it
    wait "$bpid" 2>/dev/null
    python3 - "$b" "$f" "$N" "${line:-{\}}" "$((s1 - s0))" "$(sync_ms "$run/st1")" "$(sync_max_ms "$run/st1")" \
      "$(( (c1 - c0) * 1000 / $(getconf CLK_TCK) ))" "$(( (t1 - t0) / 1000000 ))" "$(tid_sync_ms "$run/st1" "$wtid")" \
      "$(tid_sync_ms "$run/st1" "$stid")" <<'PY'
import json, sys
b, f, n, line, syncs, ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6] or 0)
mx = float(sys.argv[7] or 0)
wcpu, wall = int(sys.argv[8]), int(sys.argv[9])
wsync, ssync = float(sys.argv[10] or 0), float(sys.argv[11] or 0)
wbusy = (wcpu + wsync) * 100 / wall if wall else None
sbusy = ssync * 100 / wall if wall else None
d = json.loads(line) if line.strip().startswith("{") else {}
print(json.dumps({"build": b, "inflight": f, "n": n, "ok": d.get("ok"), "per_s": d.get("per_s"), "p50_us": d.get("p50_us"),
                  "syncs": syncs, "syncs_per_task": round(syncs / n, 3), "sync_ms_total": ms,
                  "sync_us_mean": round(ms * 1000 / syncs, 1) if syncs else None, "sync_ms_max": mx,
                  # the writer thread: CPU (10 ms ticks) and time in syncs, against the run's wall time
                  "wall_ms": wall, "writer_cpu_ms": wcpu,
                  "writer_cpu_us_per_group": round(wcpu * 1000 / syncs, 1) if syncs else None,
                  "writer_sync_ms": wsync, "writer_busy_pct": round(wbusy, 1) if wall else None,
                  "writer_in_sync_pct": round(wsync * 100 / (wcpu + wsync), 1) if wcpu + wsync else None,
                  # the sync stage (pipelined commit): its time in syncs, and the least overlap
                  "sync_thread_ms": ssync, "sync_thread_busy_pct": round(sbusy, 1) if wall else None,
                  "overlap_min_pct": round(max(0.0, wbusy + sbusy - 100), 1) if wall else None}))
PY
  done
done
done
