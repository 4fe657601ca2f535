#!/usr/bin/env bash
# make bench-store: durable submit / claim+complete / cache throughput of src/store on this
# machine's disk, with the disk's fsync rate measured in the same run (the physical limit of
# one commit per operation). Env: BUILD (release build dir, default build), BENCH_DIR (where
# the databases go; default $BUILD/bench-store.tmp, i.e. the repository's disk),
# BENCH_SECONDS (per case, default 3). Takes about 30 s. Results: JSON lines on stdout and a
# Markdown table in $BUILD/bench-store.md (copy it into bench/RESULTS.md, section "Store").
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
ninja -C "$build" bench/store/bench_store >/dev/null
dir=${BENCH_DIR:-$build/bench-store.tmp}
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
secs=${BENCH_SECONDS:-3}
{
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), nproc $(nproc)"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
  echo "disk: $(df -h "$dir" | awk 'NR==2 {print $1 " " $2 " size, " $4 " free, mounted on " $6}')"
  echo "build: $build ($(sed -n "s/.*buildtype *= *//p" "$build/meson-private/cmd_line.txt" 2>/dev/null | head -1))"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ), load average $(cut -d" " -f1-3 /proc/loadavg) at start"
} | tee "$build/bench-store.md.head" >&2
out=$(nice -n 5 "$build/bench/store/bench_store" "$dir" "$secs")
echo "$out"
python3 - "$build/bench-store.md" "$build/bench-store.md.head" <<PY
import json, sys
rows = [json.loads(l) for l in """$out""".splitlines() if l.startswith("{")]
head = open(sys.argv[2]).read().strip().splitlines()
lines = ["- " + h for h in head] + ["", "| case | config | ops/s | p50 ms | p99 ms | notes |", "|---|---|---:|---:|---:|---|"]
for r in rows:
    c = r["case"]
    if c == "summary":
        continue
    cfg = ""
    if c.startswith("submit"):
        cfg = f'{r["submitters"]} submitter(s) x {r["in_flight_per_submitter"]} in flight, group commit {"on" if r["group_commit"] else "off"}'
        note = f'{r["ops_per_commit"]} ops/commit'
    elif c == "claim_complete":
        cfg = f'{r["workers"]} workers'; note = "claim + complete = 2 durable ops"
    elif c.startswith("cache"):
        cfg = f'{r["threads"]} threads, 1 KiB values'; note = "fsync file + dir" if c == "cache_set" else f'hit ratio {r.get("hit_ratio")}'
    else:
        note = "4 KiB pwrite + fdatasync: the disk's commit limit"
    lines.append(f'| {c} | {cfg} | {r["ops_per_s"]:,} | {r["p50_ms"]} | {r["p99_ms"]} | {note} |')
s = [r for r in rows if r["case"] == "summary"]
if s:
    s = s[0]
    lines += ["", f'8 submitters: group commit {s["speedup_8_group_vs_baseline"]}x the one-transaction-per-op baseline '
              f'(synchronous callers), {s["speedup_8x32_vs_baseline"]}x with 32 submits in flight per submitter.']
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
print("\n".join(lines), file=sys.stderr)
PY
rm -f "$build/bench-store.md.head"
