#!/usr/bin/env bash
# netns_topo.sh — a closed network of namespaces for the NAT tests (issue 16, suite 48):
#
#   netns_topo.sh up PREFIX [nat|firewall]    build it; prints "topo: nat=<nft|firewall>" on success
#   netns_topo.sh down PREFIX                 stop what runs in it and delete every namespace
#
#                 "the internet" (PREFIX-pub, a router; 5.0.0.0/8, no NAT)
#      5.0.0.2 relay ──┤ 5.1.0.1 ─── 5.1.0.2 NAT-A ── 10.0.1.1 ─ 10.0.1.2 host A (PREFIX-a)
#      (PREFIX-r)      ├ 5.2.0.1 ─── 5.2.0.2 NAT-B ── 10.0.2.1 ─ 10.0.2.2 host B (PREFIX-b)
#                      └ 5.3.0.1 ─── 5.3.0.2 NAT-C ── 10.0.3.1 ─ 10.0.3.2 host C (PREFIX-c)
#
# NAT-A and NAT-B masquerade (nftables; the port of a flow is kept when free, so a dial from
# the listen port leaves from that port: what TCP hole punching needs); NAT-C masquerades with
# `fully-random` ports (hole punching cannot work). Host D (the js-libp2p peer) is behind NAT-B
# with endpoint-independent mapping: every flow it starts leaves from 5.2.0.2:4002 (Node.js
# cannot dial from its listen port, so only such a NAT lets its hole-punch dial through). Each NAT router's firewall drops every
# inbound packet from its WAN side that is not part of a flow started inside (what home routers
# do), so a host behind it cannot be dialed. The public addresses are not private ones (AutoNAT
# and DCUtR skip private addresses), yet no packet can leave the machine: every veth pair is
# created inside the test's namespaces (`ip -n A link add … peer … netns B`), none in the
# host's namespace, and nothing routes to the host.
#
# "firewall" mode (also chosen by `up` when nft cannot build NAT tables on this kernel): no
# NAT; the routers forward the private LANs and drop inbound connections, pub routes 10.0.N/24.
# Needs root (CI runs as root), iproute2, nftables. Namespaces: PREFIX-{pub,r,na,a,nb,b,nc,c,d}.
set -u
cmd=${1:-}; P=${2:-}
[ -n "$P" ] || { echo "usage: $0 up|down PREFIX [nat|firewall]" >&2; exit 2; }
NS="pub r na a nb b nc c d"

down() {
  local n pids
  for n in $NS; do
    ip netns list 2>/dev/null | grep -qw "$P-$n" || continue
    pids=$(ip netns pids "$P-$n" 2>/dev/null)
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill $pids 2>/dev/null
  done
  for n in $NS; do
    ip netns list 2>/dev/null | grep -qw "$P-$n" || continue
    for _ in 1 2 3 4 5 6 7 8 9 10; do [ -z "$(ip netns pids "$P-$n" 2>/dev/null)" ] && break; sleep 0.5; done
    pids=$(ip netns pids "$P-$n" 2>/dev/null)
    # shellcheck disable=SC2086
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    ip netns del "$P-$n" 2>/dev/null
  done
  return 0
}

x() { ip netns exec "$P-$1" "${@:2}"; }

# link NS_A IF_A ADDR_A NS_B IF_B ADDR_B: a veth pair between two of our namespaces.
link() {
  ip -n "$P-$1" link add "$2" type veth peer name "$5" netns "$P-$4" || return 1
  ip -n "$P-$1" addr add "$3" dev "$2" && ip -n "$P-$4" addr add "$6" dev "$5" &&
    ip -n "$P-$1" link set "$2" up && ip -n "$P-$4" link set "$5" up
}

nat_rules() { # NS plain|random|eim
  local masq="masquerade" eim=""
  [ "$2" = random ] && masq="masquerade fully-random"
  [ "$2" = eim ] && eim='ip saddr 10.0.4.2 ip protocol tcp oifname "wan" snat to 5.2.0.2:4002;'
  x "$1" nft -f - <<EOF
table ip nat {
  chain post { type nat hook postrouting priority srcnat; policy accept; $eim oifname "wan" $masq; }
}
table inet fw {
  chain input { type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept; iifname "wan" drop; }
  chain forward { type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept; iifname "wan" drop; }
}
EOF
}

fw_rules() { # NS: no NAT, drop inbound connections from the WAN side
  x "$1" nft -f - <<EOF
table inet fw {
  chain input { type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept; iifname "wan" drop; }
  chain forward { type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept; iifname "wan" drop; }
}
EOF
}

up() {
  local mode=${1:-nat} n i
  down
  for n in $NS; do ip netns add "$P-$n" || return 1; ip -n "$P-$n" link set lo up; done
  link pub pr 5.0.0.1/24 r eth0 5.0.0.2/24 || return 1
  ip -n "$P-r" route add default via 5.0.0.1
  i=0
  for s in a b c; do
    i=$((i + 1))
    link pub "p$s" "5.$i.0.1/24" "n$s" wan "5.$i.0.2/24" || return 1
    link "n$s" lan "10.0.$i.1/24" "$s" eth0 "10.0.$i.2/24" || return 1
    ip -n "$P-n$s" route add default via "5.$i.0.1"
    ip -n "$P-$s" route add default via "10.0.$i.1"
    x "n$s" sysctl -qw net.ipv4.ip_forward=1
  done
  link nb lan2 10.0.4.1/24 d eth0 10.0.4.2/24 || return 1
  ip -n "$P-d" route add default via 10.0.4.1
  x pub sysctl -qw net.ipv4.ip_forward=1
  # can this kernel do NAT in a namespace?
  if [ "$mode" = nat ] && ! { command -v nft >/dev/null && x na nft list ruleset >/dev/null 2>&1 &&
    nat_rules na plain && nat_rules nb eim && nat_rules nc random; }; then
    echo "topo: NOTE: nftables NAT cannot be built on this kernel; falling back to firewalled hosts without NAT" >&2
    for s in a b c; do x "n$s" nft flush ruleset 2>/dev/null; done
    mode=firewall
  fi
  if [ "$mode" = firewall ]; then
    i=0
    for s in a b c; do
      i=$((i + 1))
      ip -n "$P-pub" route add "10.0.$i.0/24" via "5.$i.0.2"
      [ "$s" = b ] && ip -n "$P-pub" route add 10.0.4.0/24 via 5.2.0.2
      command -v nft >/dev/null && fw_rules "n$s" || echo "topo: NOTE: no firewall either (nft missing)" >&2
    done
  fi
  echo "topo: nat=$([ "$mode" = nat ] && echo nft || echo firewall)"
}

case "$cmd" in
  up) up "${3:-nat}" ;;
  down) down ;;
  *) echo "usage: $0 up|down PREFIX [nat|firewall]" >&2; exit 2 ;;
esac
