#!/usr/bin/env bash
# Discovery (issue 15): mDNS inside a network namespace whose loopback carries multicast (two
# peermcp drivers, and peermcp with js-libp2p's @libp2p/mdns both ways; `peermcp serve` with the
# lan profile and the CLI calling by PeerId alone; the default profile multicasting nothing and
# dialing nothing), and the Kademlia DHT with js-libp2p's @libp2p/kad-dht over 127.0.0.1 (js as
# bootstrap, peermcp answering js, the rendezvous records, a private protocol id; two
# `peermcp serve` found through a js-only bootstrap by the CLI and `worker --discover`). The checks are in
# tests/interop/p2p/discovery_checks.py. Creating the namespace needs root (CI and these
# machines have it); without it the mDNS group counts as one failure. Last line:
# "discovery: N passed, N failed".
set -u
root="${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
export PEERMCP_ROOT="$root"
export DISCO_DRIVER="${DISCO_DRIVER:-$root/build-asan/tests/p2p/disco_driver}"
export NODE="$root/tests/node_modules/node/bin/node"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
checks="$root/tests/interop/p2p/discovery_checks.py"
ns="peermcp-disco-$$"
pass=0
fail=0

cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT

add() { # reads a group's output, echoes it, adds its last line's counts
  local out=$1 line
  echo "$out"
  line=$(grep -E '^[a-z-]+: [0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n 1)
  if [ -z "$line" ]; then
    fail=$((fail + 1))
    return
  fi
  pass=$((pass + $(sed -E 's/^[a-z-]+: ([0-9]+) passed.*/\1/' <<<"$line")))
  fail=$((fail + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
}

if [ ! -x "$DISCO_DRIVER" ] || [ ! -x "$NODE" ] || [ ! -d "$root/tests/node_modules/@libp2p/kad-dht" ]; then
  echo "missing prerequisites: driver=$DISCO_DRIVER node=$NODE (@libp2p/kad-dht, @libp2p/mdns from tests/package.json)"
  echo "discovery: 0 passed, 1 failed"
  exit 1
fi

export PEERMCP_ASAN_BIN="${PEERMCP_ASAN_BIN:-$root/build-asan/peermcp}"
add "$(timeout -k 10 600 python3 "$checks" dht 2>&1)"
add "$(timeout -k 10 600 python3 "$checks" cli-dht 2>&1)"

# mDNS stays inside a private namespace: nothing is multicast on the machine's real interfaces.
if ip netns add "$ns" 2>/dev/null && ip -n "$ns" link set lo up && ip -n "$ns" link set lo multicast on &&
  ip -n "$ns" route add 224.0.0.0/4 dev lo; then
  add "$(timeout -k 10 600 ip netns exec "$ns" python3 "$checks" mdns 2>&1)"
  add "$(timeout -k 10 600 ip netns exec "$ns" python3 "$checks" cli-lan 2>&1)"
  add "$(timeout -k 10 600 ip netns exec "$ns" python3 "$checks" profile 2>&1)"
else
  echo "FAIL mdns: could not create network namespace $ns (needs root and iproute2)"
  fail=$((fail + 1))
fi

echo "discovery: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
