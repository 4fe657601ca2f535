#!/usr/bin/env bash
# NAT traversal through real NAT routers (issue 16): tests/interop/nat/netns_topo.sh builds a
# closed network of namespaces (a public "internet" with a peermcp relay, three private LANs
# behind nftables masquerade routers, one of them with random port mapping; every veth inside
# the test's namespaces), tests/interop/nat/netns_checks.py runs peermcp (and js-libp2p) nodes in
# it: reservation and a tool call through the relay, AutoNAT private/public, a direct dial that
# the NAT stops, a DCUtR hole punch through both NATs and a call over the direct connection, a
# clean failure behind the random-port NAT; AutoNAT's verdict sets the DHT mode (client behind
# the NAT, server in public, as identify shows another peer). The namespaces are removed at the end (trap), also
# when the suite is interrupted. Needs root, iproute2 and nftables (scripts/setup.sh --tests);
# without them the suite says SKIP. Last line: "nat-netns: N passed, N failed".
set -u
root="${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
export PEERMCP_ROOT="$root"
export PEERMCP_ASAN_BIN="${PEERMCP_ASAN_BIN:-$root/build-asan/peermcp}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
topo="$root/tests/interop/nat/netns_topo.sh"

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
  echo "SKIP: network namespaces need root and iproute2 (uid $(id -u))"
  echo "nat-netns: 0 passed, 0 failed"
  exit 0
fi
if [ ! -x "$PEERMCP_ASAN_BIN" ]; then
  echo "missing $PEERMCP_ASAN_BIN"
  echo "nat-netns: 0 passed, 1 failed"
  exit 1
fi

# A prefix of our own per run: parallel runs and leftovers of a killed run do not collide.
prefix="pm48-$$-$(od -An -tx1 -N2 /dev/urandom | tr -d ' \n')"
cleanup() { bash "$topo" down "$prefix"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# NETNS_TOPO_MODE=firewall tests the fallback (no NAT, hosts behind firewalls) on purpose.
out=$(bash "$topo" up "$prefix" "${NETNS_TOPO_MODE:-nat}" 2>&1)
echo "$out"
mode=$(sed -n 's/^topo: nat=//p' <<<"$out" | tail -n 1)
if [ -z "$mode" ]; then
  echo "FAIL the namespace topology could not be built"
  echo "nat-netns: 0 passed, 1 failed"
  exit 1
fi
[ "$mode" = nft ] || echo "NOTE/SKIP: no NAT (on this kernel, or NETNS_TOPO_MODE=firewall); hosts behind firewalls that drop inbound instead: hole punching is tested through the firewalls only, the random-port NAT, js and timing groups are skipped"

pass=0; fail=0
timeout -k 10 600 python3 "$root/tests/interop/nat/netns_checks.py" "$prefix" "$mode" | tee "/tmp/$prefix.out"
line=$(grep -E '^netns: [0-9]+ passed, [0-9]+ failed' "/tmp/$prefix.out" | tail -n 1)
rm -f "/tmp/$prefix.out"
if [ -n "$line" ]; then
  pass=$(sed -E 's/^netns: ([0-9]+) passed.*/\1/' <<<"$line")
  fail=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
else
  echo "FAIL netns_checks.py: no result line"; fail=1
fi
cleanup
trap - EXIT
left=$(ip netns list | grep -c "^$prefix-")
if [ "$left" -eq 0 ]; then echo "ok   every namespace of the run removed"; pass=$((pass + 1)); else
  echo "FAIL $left namespaces of $prefix left behind"; fail=$((fail + 1)); fi
if ip link show type veth 2>/dev/null | grep -q .; then echo "NOTE: veths in the host namespace (not ours)"; fi
echo "nat-netns: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
