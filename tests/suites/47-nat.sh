#!/usr/bin/env bash
# NAT traversal (issue 16). Signed envelopes and peer records (RFC 0002/0003) against
# js-libp2p's @libp2p/peer-record: for random keys, sequence numbers and addresses, the
# envelope peermcp seals is byte-identical to the one js seals (Ed25519 is deterministic), js
# opens ours and we open js's, and both refuse a tampered envelope. Then whole nodes on
# 127.0.0.1 (tests/interop/nat/nat_checks.py relay): a node reserves on a `peermcp serve` relay,
# announces the circuit address and is called through it by the CLI; status and peer lists.
# Then js-libp2p (@libp2p/circuit-relay-v2, @libp2p/autonat, @libp2p/autonat-v2) against whole
# nodes (nat_checks.py js-relay, js-hop, autonat, autonat2; the js side is
# tests/interop/nat/relay_js.mjs and autonat2_js.mjs).
# Last line: "nat: N passed, N failed".
set -u
root="${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
tool="${ENVELOPE_TOOL:-$root/build-asan/tests/p2p/envelope_tool}"
NODE="$root/tests/node_modules/node/bin/node"
js="$root/tests/interop/nat/envelope_check.mjs"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }

nm="$root/tests/node_modules/@libp2p"
if [ ! -x "$tool" ] || [ ! -x "$NODE" ] || [ ! -d "$nm/peer-record" ] || [ ! -d "$nm/circuit-relay-v2" ] || [ ! -d "$nm/autonat" ] || [ ! -d "$nm/autonat-v2" ]; then
  echo "missing prerequisites: tool=$tool node=$NODE (@libp2p/peer-record, circuit-relay-v2, autonat, autonat-v2 from tests/package.json)"
  echo "nat: 0 passed, 1 failed"
  exit 1
fi
jsrun() { (cd "$root/tests" && timeout -k 5 60 "$NODE" "$js" "$@"); }

addrsets=("/ip4/10.0.0.1/tcp/4001" "/ip4/192.168.1.7/tcp/9710 /ip6/::1/tcp/4001 /dns4/relay.example/tcp/443"
  "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5/p2p-circuit" "")
for i in 0 1 2 3; do
  seed=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
  seq=$(( (RANDOM << 15 | RANDOM) + 1 ))
  # shellcheck disable=SC2206
  addrs=(${addrsets[$i]})
  ours=$("$tool" seal "$seed" "$seq" "${addrs[@]}")
  theirs=$(jsrun seal "$seed" "$seq" "${addrs[@]}")
  name="record $i (${#addrs[@]} addresses)"
  if [ -n "$ours" ] && [ "$ours" = "$theirs" ]; then ok "$name: sealed byte-identical to js"; else
    ko "$name: ours=$ours js=$theirs"; fi
  jo=$(jsrun open "$ours")
  want_addrs=$(printf '%s\n' "${addrs[@]}" | python3 -c 'import json,sys; print(json.dumps([l for l in sys.stdin.read().split("\n") if l]))')
  if python3 - "$jo" "$seq" "$want_addrs" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r.get("ok") and r["seq"] == sys.argv[2] and r["addrs"] == json.loads(sys.argv[3])
         and r["type"] == "0301" and r["signer_matches"] else 1)
PY
  then ok "$name: js opens ours"; else ko "$name: js open: $jo"; fi
  co=$("$tool" open "$theirs")
  if [ "$co" = "ok $(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("peer_id",""))' "$jo") $seq${addrs[*]:+ ${addrs[*]}}" ]; then ok "$name: we open js's"; else
    ko "$name: open: $co"; fi
done

# A flipped bit in the signature (the last byte) and in the payload (middle): both refuse.
seed=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
env=$(jsrun seal "$seed" 7 /ip4/10.1.2.3/tcp/4001)
flip() { python3 -c 'import sys; h=bytearray.fromhex(sys.argv[1]); i=int(sys.argv[2]) % len(h); h[i]^=1; print(h.hex())' "$@"; }
for at in -1 60; do
  bad=$(flip "$env" "$at")
  co=$("$tool" open "$bad")
  case "$co" in error*) ok "tampered byte $at: refused here ($co)" ;; *) ko "tampered byte $at accepted here: $co" ;; esac
  jo=$(jsrun open "$bad")
  case "$jo" in *'"ok":false'*) ok "tampered byte $at: refused by js" ;; *) ko "tampered byte $at accepted by js: $jo" ;; esac
done

# Whole nodes: relay reservation, a tool called through /p2p-circuit, status; then with
# js-libp2p: a js relay, peermcp as the relay for js peers (vouchers, limits, the cap), and
# @libp2p/autonat's client against our AutoNAT server, @libp2p/autonat-v2's against our v2 one;
# last, the limits a peermcp relay states kept by the client side (nat_checks.py limits).
export PEERMCP_ASAN_BIN="${PEERMCP_ASAN_BIN:-$root/build-asan/peermcp}"
groups="relay js-relay js-hop autonat autonat2 limits"
out=$(timeout -k 10 900 python3 "$root/tests/interop/nat/nat_checks.py" $groups 2>&1)
echo "$out"
line=$(grep -E '^[a-z0-9+-]+: [0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n 1)
if [ -n "$line" ]; then
  pass=$((pass + $(sed -E 's/^[a-z0-9+-]+: ([0-9]+) passed.*/\1/' <<<"$line")))
  fail=$((fail + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
else
  ko "relay group: no result line"
fi

echo "nat: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
