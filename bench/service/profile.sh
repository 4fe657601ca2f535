#!/usr/bin/env bash
# Instructions per task on node B (callgrind, all of B's threads), issue 11 §2: the figure that
# stays stable on a loaded machine. For each build named: B under callgrind with its state on
# tmpfs, one native `peermcp worker --peer B --slots 16`, svc_bench_driver `tasks` (submit →
# wait) with 16 in flight; counters zeroed after a warm-up of WARM tasks, dumped after N.
#   bash bench/service/profile.sh [BUILD_DIR...]     (default: ./build)
#   N=300 WARM=20 TOP=15 — BASE_BUILD=dir adds that build first (before/after in one run).
#   WHO=w profiles the worker process instead of B, WHO=d the driver (its whole measured run,
#   its connection's handshake included) — on 2 cores every process's CPU per task bounds
#   tasks/s.
# Prints one JSON line per build ({"build", "n", "instr_per_task", "ok"}) and the top
# exclusive symbols; keeps the callgrind files in $OUT (default /tmp/peermcp-svc-prof).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/service/lib.sh"
N=${N:-300}
WARM=${WARM:-20}
TOP=${TOP:-15}
OUT=${OUT:-/tmp/peermcp-svc-prof}
WHO=${WHO:-b}
case "$WHO" in b | w | d) ;; *) echo "WHO must be b, w or d" >&2; exit 2 ;; esac
builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=("$root/build")
[ -n "${BASE_BUILD:-}" ] && builds=("$BASE_BUILD" "${builds[@]}")
mkdir -p "$OUT"
export PEERMCP_TEST_TOOLS=1 SVC_DRIVER_TIMEOUT_S=600
. "$root/bench/lib.sh"
bench_begin /dev/shm

k=0
for b in "${builds[@]}"; do
  k=$((k + 1))
  bin="$b/peermcp"
  drv="$b/bench/service/svc_bench_driver"
  [ -x "$drv" ] || drv="$root/build/bench/service/svc_bench_driver"
  run="$tmp/r$k"
  svc_topology "$bin" "$run"
  cg="$OUT/callgrind.$k.out"
  rm -f "$cg"*
  cgb=() cgw=() cgd=()
  vg=(valgrind --tool=callgrind --callgrind-out-file="$cg")
  case "$WHO" in b) cgb=("${vg[@]}") ;; w) cgw=("${vg[@]}") ;; d) cgd=("${vg[@]}") ;; esac
  "${cgb[@]}" "$bin" serve --no-stdio --config "$run/b.json" \
    --state-dir "$run/b" 2>"$run/b.err" &
  bpid=$!
  pids+=($bpid)
  for _ in $(seq 1200); do [ -s "$run/b/announce.json" ] && break; sleep 0.1; done
  ma=$(python3 -c "import json; print(json.load(open('$run/b/announce.json'))['multiaddr'])")
  "${cgw[@]}" "$bin" worker --peer "$ma" --state-dir "$run/w" --slots 16 --config "$run/w.json" 2>"$run/w.err" >/dev/null &
  wpid=$!
  pids+=($wpid)
  sleep 2
  [ "$WHO" = w ] && sleep 3 # the worker starts under callgrind
  timeout 300 "$drv" tasks --state "$run/d" --peer "$ma" --n "$WARM" --conns 1 --inflight 16 >/dev/null 2>>"$run/drv.err"
  ppid=$bpid
  [ "$WHO" = w ] && ppid=$wpid
  [ "$WHO" = d ] || callgrind_control -z "$ppid" >/dev/null
  line=$(timeout 900 "${cgd[@]}" "$drv" tasks --state "$run/d" --peer "$ma" --n "$N" --conns 1 --inflight 16 2>>"$run/drv.err")
  [ "$WHO" = d ] || callgrind_control -d "$ppid" >/dev/null
  kill "$wpid" 2>/dev/null
  kill "$bpid" 2>/dev/null
  wait "$bpid" 2>/dev/null
  ok=$(python3 -c "import json,sys; print(json.loads(sys.argv[1]).get('ok', -1))" "${line:-{\}}" 2>/dev/null)
  # the dump after the zeroing (callgrind_control -d writes <file>.N); the driver's whole run
  dump=$(ls -t "$cg".* 2>/dev/null | head -1)
  [ "$WHO" = d ] && dump="$cg"
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
  echo "{\"build\": \"$b\", \"who\": \"$WHO\", \"n\": $N, \"ok\": ${ok:-null}, \"instr_per_task\": $(( ${total:-0} / N ))}"
  callgrind_annotate --threshold=100 "$dump" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | head -"$TOP"
done
