#!/usr/bin/env bash
# `make soak` (issue 9): a release-built `peermcp serve --no-stdio` serving normal traffic while
# attacks run against it, measured before, during and after by bench/soak/soak.c: the server's
# RSS, descriptors and threads, and the normal traffic's p50/p99/max latency and errors.
#
#   SOAK_BEFORE / SOAK_DURING / SOAK_AFTER   phase lengths in seconds (60 / 600 / 60)
#   SOAK_RATE                                normal requests per second (50)
#   SOAK_ATTACKS                             comma-separated attack names (`soak list`);
#                                            default: every attack this build knows
#   SOAK_ARGS                                space-separated NAME:KEY=VALUE attack options
#   SOAK_P2P_EXTRA                           extra keys for the server's "p2p" config object, e.g.
#                                            ', "max_streams_per_peer": 256' (suite 66's raised
#                                            limits, so every attack gets going at full strength)
#
# Writes bench/soak/last.json and prints a summary table. Not part of `make check`; a short run
# is e.g. SOAK_BEFORE=5 SOAK_DURING=20 SOAK_AFTER=5 make soak. SOAK_BIN runs another server binary
# (the driver stays this tree's), SOAK_OUT writes the JSON elsewhere than bench/soak/last.json.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="${BUILD:-$root/build}"
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=release -Dtests=disabled >/dev/null
ninja -C "$BUILD" peermcp bench/soak/soak >/dev/null || exit 1
bin="${SOAK_BIN:-$BUILD/peermcp}" # SOAK_BIN: another server binary (before/after runs)
soak="$BUILD/bench/soak/soak"
. "$root/bench/lib.sh"
bench_begin
out="${SOAK_OUT:-$root/bench/soak/last.json}"

BEFORE=${SOAK_BEFORE:-60}
DURING=${SOAK_DURING:-600}
AFTER=${SOAK_AFTER:-60}
RATE=${SOAK_RATE:-50}
ATTACKS=${SOAK_ATTACKS:-$("$soak" list | awk '{print $1}' | paste -sd, -)}
TOKEN="soak-token-$$"

mkdir -p "$tmp/server" "$tmp/ids/normal/0"
NORMAL_ID=$("$bin" id --state-dir "$tmp/ids/normal/0" 2>/dev/null)
cat >"$tmp/server.json" <<EOF
{"log_level": "warning",
 "p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$NORMAL_ID"], "token": "$TOKEN"${SOAK_P2P_EXTRA:-}}}
EOF
"$bin" serve --no-stdio --config "$tmp/server.json" --state-dir "$tmp/server" 2>"$tmp/server.err" &
SERVER_PID=$!
pids+=($SERVER_PID)
for _ in $(seq 300); do [ -s "$tmp/server/announce.json" ] && break; sleep 0.1; done
MA=$(python3 -c "import json; print(json.load(open('$tmp/server/announce.json'))['multiaddr'])" 2>/dev/null)
if [ -z "$MA" ]; then
  echo "soak: the server did not start" >&2
  tail -5 "$tmp/server.err" >&2
  exit 1
fi

args=(run --peer "$MA" --server-pid "$SERVER_PID" --id-dir "$tmp/ids" --token "$TOKEN"
  --before "$BEFORE" --during "$DURING" --after "$AFTER" --rate "$RATE")
IFS=, read -r -a list <<<"$ATTACKS"
for a in "${list[@]}"; do [ -n "$a" ] && args+=(--attack "$a"); done
for a in ${SOAK_ARGS:-}; do args+=(--arg "$a"); done
echo "soak: ${BEFORE}s before, ${DURING}s during (${ATTACKS:-no attacks}), ${AFTER}s after; normal traffic ${RATE}/s" >&2
limit=$(python3 -c "print(int($BEFORE + $DURING + $AFTER + 120))")
timeout "$limit" "$soak" "${args[@]}" >"$out"
rc=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "soak: the server died during the run" >&2
  tail -5 "$tmp/server.err" >&2
  rc=1
fi
python3 - "$out" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
print("%-8s %8s %8s %8s %8s %10s %10s %6s %8s" % ("phase", "answered", "errors", "p50 ms", "p99 ms", "RSS start", "RSS max", "fds", "threads"))
for ph in ("before", "during", "after"):
    p = d["phases"][ph]
    print("%-8s %8d %8d %8.2f %8.2f %8d kB %7d kB %6d %8d" % (ph, p["answered"], p["errors"], p["p50_ms"], p["p99_ms"],
          p["server_start"]["rss_kb"], p["server_max"]["rss_kb"], p["server_max"]["fds"], p["server_max"]["threads"]))
for a in d["attacks"]:
    print("attack %s: %s" % (a["attack"], json.dumps(a["report"])))
PYEOF
exit $rc
