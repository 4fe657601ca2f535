#!/usr/bin/env bash
# `make bench-dht`: a Kademlia DHT of N peermcp hosts in one process (bench/dht/dht_bench.c,
# release build) over TCP on 127.0.0.1, for N = 100 and N = 300 (DHT_BENCH_SIZES overrides):
# lookup success rate, hops against log2 N, latency, routing-table sizes, peak RSS.
# Writes bench/dht/last.json and replaces the "DHT" section of bench/RESULTS.md.
# Bounded: about 1.5 minutes on an idle 2-core machine (the program has a 15-minute watchdog).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="${BUILD:-$root/build}"
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release -Dtests=disabled >/dev/null
ninja -C "$BUILD" bench/dht/dht_bench >/dev/null || exit 1
out="$root/bench/dht/last.json"
machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load avg $(cut -d' ' -f1-3 /proc/loadavg) at start"
: >"$out.tmp"
for n in ${DHT_BENCH_SIZES:-100 300}; do
  echo "dht_bench --nodes $n ..." >&2
  "$BUILD/bench/dht/dht_bench" --nodes "$n" --lookups "$n" --concurrency 4 --seed 1 >>"$out.tmp" || echo "dht_bench --nodes $n: lookups failed" >&2
done
python3 - "$out.tmp" "$out" "$root/bench/RESULTS.md" "$machine" <<'PY'
import json, sys, datetime, re
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump(runs, open(sys.argv[2], "w"), indent=1)
path, machine = sys.argv[3], sys.argv[4]
L = ["## DHT", ""]
L.append(f"`make bench-dht` (bench/dht/run.sh), {datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')}. "
         "N peermcp hosts in one process on one libuv thread, each a Kademlia server (k = 20, α = 3), "
         "over TCP + Noise + Yamux on 127.0.0.1. Node i joins from 3 random earlier nodes, then every node "
         "looks up its own id; then N `find_peer` lookups from a random node to a random other node, 4 at a time.")
L.append(f"Machine: {machine}.")
L.append("")
L.append("| N | lookups | found | hops mean | hops p50 / p90 / max | log2 N | latency p50 ms | p95 ms | p99 ms | RPCs per lookup | table size mean (min-max) | build-up s | peak RSS MiB |")
L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in runs:
    h, l, t = r["hops"], r["latency_ms"], r["table_size"]
    L.append(f"| {r['nodes']} | {r['lookups']} | {r['found']} ({100*r['success_rate']:.1f}%) | {h['mean']:.2f} | "
             f"{h['p50']:.0f} / {h['p90']:.0f} / {h['max']:.0f} | {r['log2_n']:.2f} | {l['p50']:.1f} | {l['p95']:.1f} | "
             f"{l['p99']:.1f} | {r['queries_mean']:.2f} | {t['mean']:.1f} ({t['min']}-{t['max']}) | {r['setup_s']:.1f} | {r['peak_rss_mib']:.0f} |")
L.append("")
L.append("Hops: the number of RPC round trips in the chain that first named the target with an address (0 = it was "
         "already in the asking node's routing table; its address still has to be confirmed by one RPC). With k = 20 "
         "buckets a node of these small networks knows a large share of the others, so lookups take far fewer hops "
         "than log2 N; the hop count grows with N as Kademlia predicts (about log2(N/k) + 1 for a random target). "
         "Latency is wall time on one shared thread that also runs every other node, so it measures the CPU cost of "
         "the path (new connections: Noise handshakes) more than any network.")
L.append("")
text = open(path).read()
section = "\n".join(L)
if re.search(r"^## DHT\n", text, re.M):
    text = re.sub(r"^## DHT\n.*?(?=^## |\Z)", section + "\n", text, flags=re.S | re.M)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
for r in runs:
    print(f"N={r['nodes']}: found {r['found']}/{r['lookups']}, hops mean {r['hops']['mean']:.2f} (log2 N {r['log2_n']:.2f}), "
          f"p50 {r['latency_ms']['p50']:.1f} ms, p99 {r['latency_ms']['p99']:.1f} ms")
PY
rm -f "$out.tmp"
