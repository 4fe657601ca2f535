#!/usr/bin/env bash
# `make bench-p2p`: one run on loopback of
#   - connection set-up + first echoed byte (dial, mss, Noise XX, Yamux, mss, 1 byte there and back)
#     for C→C, JS→JS, C→JS and JS→C;
#   - single-stream throughput with /perf/1.0.0 (download = the server sends), and upload for C↔C;
#   - aggregate throughput over 100 concurrent perf streams on one connection;
#   - CPU seconds per GiB moved (client getrusage/process.cpuUsage + server /proc/<pid>/stat);
#   - raw ChaCha20-Poly1305 speed on this CPU with both Noise backends (aead_speed: OpenSSL, the
#     default p2p.noise_aead and the ceiling for one Noise direction, and libsodium).
# Writes $BUILD/bench-p2p-last-run.jsonl and replaces the "P2P" section of bench/RESULTS.md.
# Bounded: about 1.5 minutes on an idle 2-core machine; every step has a timeout.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="${BUILD:-$root/build}"
node="$root/tests/node_modules/node/bin/node"
js="$root/tests/interop/p2p/peer.mjs"
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release -Dtests=disabled >/dev/null
ninja -C "$BUILD" bench/p2p/p2p_bench_driver bench/p2p/aead_speed >/dev/null || exit 1
drv="$BUILD/bench/p2p/p2p_bench_driver"
aead="$BUILD/bench/p2p/aead_speed"
. "$root/bench/lib.sh"
bench_begin
out="$BUILD/bench-p2p-last-run.jsonl"
: >"$out"
tck=$(getconf CLK_TCK)
C_BIG=$((1024 * 1024 * 1024)) # C↔C single stream
J_BIG=$((256 * 1024 * 1024))  # anything with a JS end
export PEER_TIMEOUT_MS=120000 P2P_DRIVER_TIMEOUT_S=120

start() { # name cmd... : starts a listener; sets LPID and LADDR (its first full multiaddr)
  local name=$1
  shift
  mkfifo "$tmp/$name.in"
  exec {keep}<>"$tmp/$name.in" # held open: the listeners stop when their stdin closes
  "$@" <"$tmp/$name.in" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  LPID=$!
  pids+=($LPID)
  for _ in $(seq 100); do [ -s "$tmp/$name.out" ] && break; sleep 0.1; done
  LADDR=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['addrs'][0])" "$tmp/$name.out" 2>/dev/null)
}
cpu_of() { awk -v t="$tck" '{printf "%.3f", ($14+$15)/t}' "/proc/$1/stat"; }

# record NAME KIND SERVERPID CMD... : runs CMD (prints one JSON line) REPS times (default 1),
# keeps the median run by time, adds the server's CPU (averaged per run), appends to $out.
record() {
  local name=$1 kind=$2 spid=$3
  shift 3
  local s0 s1 lines="" line i
  s0=$(cpu_of "$spid")
  for ((i = 0; i < ${REPS:-1}; i++)); do
    line=$(timeout 150 "$@" 2>>"$tmp/client.err" | tail -n 1)
    [ -n "$line" ] && lines+="$line"$'\n'
  done
  s1=$(cpu_of "$spid")
  if [ -z "$lines" ]; then
    echo "{\"name\":\"$name\",\"kind\":\"$kind\",\"error\":\"no result\"}" | tee -a "$out"
    return
  fi
  python3 - "$name" "$kind" "$s0" "$s1" "$lines" <<'EOF' | tee -a "$out"
import json, sys
name, kind, s0, s1, lines = sys.argv[1:6]
runs = [json.loads(l) for l in lines.splitlines() if l.strip()]
runs.sort(key=lambda d: d.get("secs", d.get("median_ms", 0)))
d = runs[len(runs) // 2]
d["name"], d["kind"], d["runs"] = name, kind, len(runs)
if len(runs) > 1 and "secs" in runs[0]:
    d["all_gbit_s"] = [round(r["bytes"] * 8 / r["secs"] / 1e9, 2) for r in runs]
d["server_cpu_s"] = round((float(s1) - float(s0)) / len(runs), 3)
if "bytes" in d and d.get("secs"):
    gib = d["bytes"] / 2**30
    d["gbit_s"] = round(d["bytes"] * 8 / d["secs"] / 1e9, 3)
    d["mib_s"] = round(d["bytes"] / d["secs"] / 2**20, 1)
    d["cpu_s_per_gib"] = round((d.get("cpu_s", 0) + d["server_cpu_s"]) / gib, 3)
    d["client_cpu_s_per_gib"] = round(d.get("cpu_s", 0) / gib, 3)
    d["server_cpu_s_per_gib"] = round(d["server_cpu_s"] / gib, 3)
    # If each end had a core to itself, the busier end would set the pace.
    busiest = max(d["client_cpu_s_per_gib"], d["server_cpu_s_per_gib"])
    d["cpu_bound_gbit_s"] = round(2**30 * 8 / busiest / 1e9, 2) if busiest > 0 else None
print(json.dumps(d))
EOF
}

echo "== machine" >&2
cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
machine="$cpu_model, $(nproc) cores, $(uname -sr), load avg $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "$machine" >&2

echo "== AEAD ceiling" >&2
"$aead" 1 | python3 -c '
import json, sys
for l in sys.stdin:
    d = json.loads(l)
    d["name"] = "aead" if d.get("backend") == "openssl" else "aead-" + d.get("backend", "?")
    d["kind"] = "aead"
    print(json.dumps(d))' | tee -a "$out"

start c "$drv" listen --state "$tmp/c-srv" --listen /ip4/127.0.0.1/tcp/0
c_ma=$LADDR c_pid=$LPID
start j "$node" "$js" listen
j_ma=$LADDR j_pid=$LPID
[ -n "$c_ma" ] && [ -n "$j_ma" ] || { echo "listeners did not start" >&2; cat "$tmp"/*.err >&2; exit 1; }

echo "== connection set-up + first byte (median of 20)" >&2
record "C->C" setup "$c_pid" "$drv" setup --state "$tmp/c-cli" "$c_ma" --n 20
record "JS->JS" setup "$j_pid" "$node" "$js" setup "$j_ma" --n 20
record "C->JS" setup "$j_pid" "$drv" setup --state "$tmp/c-cli" "$j_ma" --n 20
record "JS->C" setup "$c_pid" "$node" "$js" setup "$c_ma" --n 20

echo "== single stream (perf), median of 3" >&2
export REPS=3
record "C<->C download" single "$c_pid" "$drv" perf --state "$tmp/c-cli" "$c_ma" --upload 0 --download $C_BIG
record "C<->C upload" single "$c_pid" "$drv" perf --state "$tmp/c-cli" "$c_ma" --upload $C_BIG --download 0
record "JS<->JS download" single "$j_pid" "$node" "$js" perf "$j_ma" --upload 0 --download $J_BIG
record "JS<->JS upload" single "$j_pid" "$node" "$js" perf "$j_ma" --upload $J_BIG --download 0
record "C client, JS server download" single "$j_pid" "$drv" perf --state "$tmp/c-cli" "$j_ma" --upload 0 --download $J_BIG
record "JS client, C server download" single "$c_pid" "$node" "$js" perf "$c_ma" --upload 0 --download $J_BIG

export REPS=1
echo "== aggregate over 100 streams" >&2
record "C<->C 100 streams" aggregate "$c_pid" "$drv" perf --state "$tmp/c-cli" "$c_ma" --upload 0 --download $((C_BIG / 100)) --streams 100
record "JS<->JS 100 streams" aggregate "$j_pid" "$node" "$js" perf "$j_ma" --upload 0 --download $((J_BIG / 100)) --streams 100
record "C client, JS server 100 streams" aggregate "$j_pid" "$drv" perf --state "$tmp/c-cli" "$j_ma" --upload 0 --download $((J_BIG / 100)) --streams 100
record "JS client, C server 100 streams" aggregate "$c_pid" "$node" "$js" perf "$c_ma" --upload 0 --download $((J_BIG / 100)) --streams 100

# ---------------------------------------------------------------- RESULTS.md
python3 - "$out" "$root/bench/RESULTS.md" "$machine" <<'EOF'
import json, sys, datetime, re
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
path, machine = sys.argv[2], sys.argv[3]
by = {r["name"]: r for r in runs}
aead = by.get("aead", {})
ceil = aead.get("mbps", 0) / 1000.0
sod = by.get("aead-libsodium", {})
L = []
L.append("## P2P")
L.append("")
L.append(f"`make bench-p2p` (bench/p2p/run.sh), {datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')}, loopback, one run.")
L.append(f"Machine: {machine}. C = peermcp's host (release build), JS = js-libp2p 3.3.11 on Node 22 (tests/interop/p2p/peer.mjs).")
L.append("")
L.append(f"AEAD ceiling (ChaCha20-Poly1305 IETF with OpenSSL, the default Noise backend p2p.noise_aead, 65519-byte messages, one core): "
         f"**{ceil:.2f} Gbit/s** ({aead.get('mib_s', 0)} MiB/s); libsodium, the other backend, in the same run: "
         f"{sod.get('mbps', 0) / 1000.0:.2f} Gbit/s (bench/p2p/aead_speed).")
L.append("")
L.append("| Connection set-up + first byte | median ms | min ms |")
L.append("|---|---|---|")
for n in ["C->C", "JS->JS", "C->JS", "JS->C"]:
    r = by.get(n, {})
    L.append(f"| {n} | {round(r.get('median_ms', float('nan')), 2)} | {round(r.get('min_ms', float('nan')), 2)} |")
L.append("")
L.append("Single-stream rows are the median of 3 transfers (all three in brackets).")
L.append("")
L.append("| Throughput (perf) | bytes | Gbit/s measured | MiB/s | CPU s/GiB client + server | CPU-bound Gbit/s (one core per end) |")
L.append("|---|---|---|---|---|---|")
for r in runs:
    if r.get("kind") in ("single", "aggregate"):
        if "error" in r:
            L.append(f"| {r['name']} | - | error | - | - | - |")
        else:
            extra = f" {r['all_gbit_s']}" if "all_gbit_s" in r else ""
            L.append(f"| {r['name']} | {r['bytes']} | {r['gbit_s']}{extra} | {r['mib_s']} | "
                     f"{r['client_cpu_s_per_gib']} + {r['server_cpu_s_per_gib']} | {r['cpu_bound_gbit_s']} |")
L.append("")
cc = by.get("C<->C download", {}).get("gbit_s", 0)
jj = by.get("JS<->JS download", {}).get("gbit_s", 0)
ratio = cc / jj if jj else 0
frac = cc / ceil if ceil else 0
L.append(f"Goal check (single stream, download, measured): C<->C / JS<->JS = **{ratio:.2f}x** (goal >= 3x); "
         f"C<->C / AEAD ceiling = **{frac*100:.0f}%** (goal >= 50%).")
ccb = by.get("C<->C download", {}).get("cpu_bound_gbit_s") or 0
jjb = by.get("JS<->JS download", {}).get("cpu_bound_gbit_s") or 0
if ccb and jjb and ceil:
    L.append(f"Same check on the CPU-bound figures (what each end's CPU per GiB allows with a core each): "
             f"{ccb/jjb:.2f}x JS<->JS, {ccb/ceil*100:.0f}% of the AEAD ceiling.")
L.append("Note: the machine is shared and both ends run on its 2 cores, so measured throughput swings "
         "with other load (a run at load average 8 measured C<->C single-stream at 1.9 Gbit/s, one at "
         "load 1-4 at 8-9 Gbit/s). The CPU-per-GiB columns are stable across runs; the last column is "
         "what they allow when each end has a core. The ceiling is one core encrypting; in a transfer "
         "the sender encrypts and the receiver decrypts on different cores, so ~100% is reachable.")
section = "\n".join(L) + "\n"
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmark results\n\n"
pat = re.compile(r"^## P2P\n.*?(?=^## |\Z)", re.S | re.M)
text = pat.sub(lambda m: section + "\n", text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
print(section)
EOF
