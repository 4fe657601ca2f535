"""NAT-traversal checks with whole nodes (issue 16), run by tests/suites/47-nat.sh.

    nat_checks.py relay   three processes on 127.0.0.1: R `peermcp serve` with the relay's hop
                          service (IPFS_ACCELERATE_PY_TASK_P2P_RELAY_HOP=1), B `peermcp serve`
                          with p2p.relays = [R]: B reserves on R and announces
                          R/p2p-circuit/p2p/B in announce.json; the CLI calls a tool on B through
                          that address (a relayed connection: Noise + Yamux over a stream of the
                          connection to R); with the switch IPFS_ACCELERATE_PY_TASK_P2P_RELAY=0 the
                          same call fails; every process stops cleanly.

    nat_checks.py js-relay  a js-libp2p relay (circuitRelayServer, relay_js.mjs server): a
                          `peermcp serve` B with p2p.relays = [it] reserves and announces the
                          circuit address; a js peer reaches B through it (ping, identify over
                          the limited connection) and the CLI calls a tool on B through it
    nat_checks.py js-hop  `peermcp serve` as the relay (hop service, cap 3, 64 KiB, 4 s) for js
                          peers (relay_js.mjs hop): js A reserves and js B reaches it and
                          exchanges data; the voucher js receives verifies; a circuit is cut at
                          its data limit and one at its time limit (and R logs which); the 4th
                          reservation is refused with RESERVATION_REFUSED, A's refresh succeeds
    nat_checks.py limits  the limits a relay states are kept by our side: R `peermcp serve` relay
                          (6 s, 64 KiB per circuit), B reserves on it, D (`peermcp serve`) calls
                          a tool on B through it; D's and B's p2p_service_status list the relayed
                          connection with the stated limit; one of them closes it at the duration
                          (logged) before R has to cut it; a call whose request is past the data
                          limit makes D close the circuit itself (logged), not R
    nat_checks.py autonat @libp2p/autonat's client asks a `peermcp serve` AutoNAT server
                          (relay_js.mjs autonat): OK for its listen address, E_DIAL_ERROR for a
                          closed port; the server logs the same answers
    nat_checks.py autonat2  @libp2p/autonat-v2's client asks a `peermcp serve` AutoNAT v2
                          server (autonat2_js.mjs ask): its listen address OK (nonce, js
                          confirms), a closed port E_DIAL_ERROR, its address on 127.0.0.2 OK
                          after js paid the dial data (it comes from 127.0.0.1)

Several groups may be named at once. Prints "PASS name" / "FAIL name: why" per check and ends
with "<group>: N passed, N failed" (the groups joined with "+").
Every wait has a deadline; nothing sleeps and then asserts.
"""
import json
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BASE_ENV, NODE, ROOT, expect, init, json_lines, kill_started, log_lines,  # noqa: E402
                    run_cli, summary, wait, JsProc)
import common  # noqa: E402

TMP = init("nat-checks.", why_max=600)
RELAY_JS = os.path.join(ROOT, "tests/interop/nat/relay_js.mjs")


def Serve(name, env_extra, *args, stdio=False):
    """A `peermcp serve` on 127.0.0.1 (an ephemeral port), log level info unless args say otherwise."""
    return common.Serve(name, env_extra=env_extra, args=args, stdio=stdio)


def peermcp(env, *args, timeout=120):
    return run_cli(args, env=env, timeout=timeout)


def group_relay():
    r = Serve("relay", {"IPFS_ACCELERATE_PY_TASK_P2P_RELAY_HOP": "1"})
    raddr = r.announce()["multiaddr"]
    cfg = os.path.join(TMP, "b.json")
    json.dump({"p2p": {"relays": [raddr]}}, open(cfg, "w"))
    b = Serve("behind", {}, "--config", cfg, stdio=True)
    want = "%s/p2p-circuit/p2p/%s" % (raddr, b.peer_id)
    got = wait(lambda: want in b.announce().get("multiaddrs", []), 60)
    expect("relay: B reserved on R and announce.json lists R/p2p-circuit/p2p/B", got, b.announce())
    expect("relay: B logs the reservation", "p2p relay reservation made" in b.log(), b.log()[-400:])
    expect("relay: R logs the reservation it accepted", "reservation accepted" in r.log(), r.log()[-400:])
    cenv = dict(os.environ, **BASE_ENV)
    rc, out, err = peermcp(cenv, "call", "--state-dir", os.path.join(TMP, "cli1"), "--peer", want, "echo",
                           '{"via":"relay"}')
    expect("relay: the CLI calls a tool on B through /p2p-circuit", rc == 0 and "relay" in json.dumps(out),
           (rc, out, err[-600:]))
    expect("relay: R opened a circuit to B", "circuit open" in r.log(), r.log()[-400:])
    st = b.tool("p2p_service_status", {})[0]
    nat = st.get("nat") or {}
    res = nat.get("reservations") or [{}]
    expect("relay: B's p2p_service_status reports the active reservation and the circuit address",
           res[0].get("state") == "active" and want in nat.get("announced_addrs", []) and
           nat.get("autonat", {}).get("status") == "unknown", nat)
    peers = (b.tool("p2p_list_peers", {})[0].get("peers")) or []
    row = [p for p in peers if p.get("peer_id") == r.peer_id]
    conns = row[0].get("connections", []) if row else []
    expect("relay: B's p2p_list_peers shows its connection to R (addr, direction outbound, not relayed)",
           any(c.get("direction") == "outbound" and c.get("relayed") is False and "/tcp/" in c.get("addr", "")
               for c in conns), row)
    for extra in ([], ["--detail"]):
        rc, out, err = peermcp(cenv, "status", "--state-dir", os.path.join(TMP, "cli1"), "--peer",
                               b.announce()["multiaddr"], *extra)
        an = (out.get("nat") or {}).get("autonat") or {}
        expect("relay: the status op %scarries nat.autonat {supported, status, code} (the Python shape)" %
               ("--detail " if extra else ""),
               rc == 0 and an.get("supported") is False and an.get("status") == "unknown" and an.get("code") == 0
               and (not extra or "transport" in out), (rc, out, err[-300:]))
    rc, out, err = peermcp(dict(cenv, IPFS_ACCELERATE_PY_TASK_P2P_RELAY="0"), "call", "--state-dir",
                           os.path.join(TMP, "cli2"), "--peer", want, "echo", "{}", timeout=120)
    expect("relay: with IPFS_ACCELERATE_PY_TASK_P2P_RELAY=0 the CLI does not dial /p2p-circuit", rc != 0, (rc, out))
    b.stop()
    r.stop()


def js_checks(prefix, *args, timeout=180):
    """Runs relay_js.mjs ARGS; every {"check","ok"} line it prints becomes one check."""
    try:
        r = subprocess.run([NODE, RELAY_JS] + list(args), capture_output=True, text=True, timeout=timeout,
                           cwd=os.path.join(ROOT, "tests"))
        out, err = r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        out, err = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), "timeout"
    n = 0
    for c in json_lines(out):
        if "check" in c:
            n += 1
            expect("%s: %s" % (prefix, c["check"]), c.get("ok") is True, json.dumps(c))
    if n == 0:
        expect("%s: relay_js.mjs %s printed its checks" % (prefix, args[0]), False, (out[-300:], err[-600:]))


class JsRelay(JsProc):
    """relay_js.mjs server: a js-libp2p circuit relay on 127.0.0.1 until its stdin closes."""

    def __init__(self):
        super().__init__(RELAY_JS, ["server"], os.path.join(TMP, "jsrelay.err"), cwd=os.path.join(ROOT, "tests"))
        first = self.first_line()
        self.peer_id = first["peer_id"]
        self.addr = first["addrs"][0]


def group_js_relay():
    jr = JsRelay()
    try:
        cfg = os.path.join(TMP, "b-js.json")
        json.dump({"p2p": {"relays": [jr.addr]}}, open(cfg, "w"))
        b = Serve("behind-js", {}, "--config", cfg, "--log-level", "debug")
        want = "%s/p2p-circuit/p2p/%s" % (jr.addr, b.peer_id)
        got = wait(lambda: want in b.announce().get("multiaddrs", []), 60)
        expect("js-relay: B reserved on the js relay and announce.json lists J/p2p-circuit/p2p/B", got, b.announce())
        # js writes the duration limit in milliseconds where the spec says seconds: 120000.
        expect("js-relay: B logs the reservation with the js relay's limits",
               '"p2p relay reservation made"' in b.log() and jr.peer_id in b.log(), b.log()[-600:])
        made = (log_lines(b.log(), "p2p relay reservation made") or [{}])[-1]
        expect("js-relay: B reads the js relay's duration limit (120000, milliseconds) as 120 s",
               made.get("limit_duration_raw") == 120000 and made.get("limit_duration_s") == 120, made)
        js_checks("js-relay", "reach", want)
        recs = [json.loads(l) for l in b.log().splitlines() if '"p2p identify: signed peer record"' in l]
        expect("js-relay: B opened the js relay's signed peer record (identify) and refused none",
               any(r.get("peer") == jr.peer_id and r.get("addrs", 0) > 0 for r in recs) and
               "bad signed peer record" not in b.log(), recs[:3])
        cenv = dict(os.environ, **BASE_ENV)
        rc, out, err = peermcp(cenv, "call", "--state-dir", os.path.join(TMP, "cli-js"), "--peer", want, "echo",
                               '{"via":"js relay"}')
        expect("js-relay: the CLI (another peermcp node) calls a tool on B through the js relay",
               rc == 0 and "js relay" in json.dumps(out), (rc, out, err[-600:]))
        b.stop()
    finally:
        jr.stop()


def group_js_hop():
    cfg = os.path.join(TMP, "r-hop.json")
    json.dump({"p2p": {"relay_hop": {"enabled": True, "max_reservations": 3, "max_reservations_per_ip": 64,
                                     "limit_data_bytes": 65536, "limit_duration_seconds": 4}}}, open(cfg, "w"))
    r = Serve("relay-for-js", {}, "--config", cfg)
    js_checks("js-hop", "hop", r.announce()["multiaddr"], "--cap", "3", "--limit-data", "65536",
              "--limit-seconds", "4")
    log = r.log()
    expect("js-hop: R logs a circuit cut at its data limit and one at its time limit",
           '"limit":"data","max":65536' in log and '"limit":"duration","max":4' in log,
           [l for l in log.splitlines() if "limit reached" in l])
    expect("js-hop: R logs the refused reservation (full)", '"p2p relay: reservation refused"' in log and '"reason":"full"' in log,
           [l for l in log.splitlines() if "reserv" in l][-5:])
    r.stop()


def limit_lines(node, which):
    return [j for j in log_lines(node.log(), "the relay's limit is reached") if j.get("limit") == which]


def group_limits():
    cfg = os.path.join(TMP, "r-limits.json")
    json.dump({"p2p": {"relay_hop": {"enabled": True, "limit_data_bytes": 65536, "limit_duration_seconds": 6}}},
              open(cfg, "w"))
    r = Serve("relay-limits", {}, "--config", cfg)
    raddr = r.announce()["multiaddr"]
    cfgb = os.path.join(TMP, "b-limits.json")
    json.dump({"p2p": {"relays": [raddr]}}, open(cfgb, "w"))
    b = Serve("behind-limits", {}, "--config", cfgb, stdio=True)
    circ = "%s/p2p-circuit/p2p/%s" % (raddr, b.peer_id)
    got = wait(lambda: circ in b.announce().get("multiaddrs", []), 60)
    expect("limits: B reserved on R", got, b.announce())
    rsv = (b.nat().get("reservations") or [{}])[0]
    lim = rsv.get("limit") or {}
    expect("limits: B's reservation reports R's limit (6 s, 64 KiB per direction)",
           lim.get("duration_s") == 6 and lim.get("duration_raw") == 6 and lim.get("data_bytes") == 65536 and
           lim.get("data_both_directions") is False, rsv)
    d = Serve("caller-limits", {}, stdio=True)
    res, is_err = d.tool("p2p_remote_call_tool", {"remote_multiaddr": circ, "tool_name": "echo",
                                                    "args": {"via": "limited"}, "timeout_s": 30})
    expect("limits: D calls a tool on B through R", not is_err and "limited" in json.dumps(res), res)

    def row(node, peer):
        rows = [c for c in node.nat().get("relayed_connections") or [] if c.get("peer") == peer]
        return rows[0] if rows else {}
    rd, rb = row(d, b.peer_id), row(b, d.peer_id)
    expect("limits: D's p2p_service_status lists the relayed connection to B with the stated limit and when "
           "it closes", rd.get("direction") == "outbound" and (rd.get("limit") or {}).get("duration_s") == 6 and
           (rd.get("limit") or {}).get("data_bytes") == 65536 and 0 < rd.get("closes_in_s", -1) <= 5 and
           rd.get("bytes_out", 0) > 0, rd)
    expect("limits: B's lists it too (inbound)", rb.get("direction") == "inbound" and
           (rb.get("limit") or {}).get("duration_s") == 6, rb)
    closed = wait(lambda: limit_lines(d, "duration") or limit_lines(b, "duration"), 30)
    expect("limits: D or B closes the relayed connection at its duration and logs it", closed,
           (d.log()[-800:], b.log()[-800:]))
    gone = wait(lambda: not row(d, b.peer_id), 20)
    expect("limits: the relayed connection is gone from D's status", gone, row(d, b.peer_id))
    cut = [j for j in log_lines(r.log(), "circuit limit reached")]
    expect("limits: R did not have to cut that circuit (no \"circuit limit reached\")", not cut, cut)
    res, is_err = d.tool("p2p_remote_call_tool", {"remote_multiaddr": circ, "tool_name": "echo",
                                                    "args": {"blob": "x" * 100000}, "timeout_s": 30})
    expect("limits: a call whose request is past the 64 KiB limit fails", is_err or "x" * 1000 not in json.dumps(res),
           json.dumps(res)[:300])
    said = wait(lambda: [j for j in limit_lines(d, "data") if j.get("max") == 65536], 20)
    expect("limits: D closed that circuit itself at the data limit and logs it", said, d.log()[-1200:])
    cut = [j for j in log_lines(r.log(), "circuit limit reached")]
    expect("limits: R did not have to cut it", not cut, cut)
    d.stop()
    b.stop()
    r.stop()


def group_autonat():
    a = Serve("autonat-server", {"IPFS_ACCELERATE_PY_TASK_P2P_AUTONAT": "1"})
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()  # nothing listens there any more: a dial-back is refused
    js_checks("autonat", "autonat", a.announce()["multiaddr"], str(closed))
    ans = [json.loads(l) for l in a.log().splitlines() if '"p2p autonat: answered"' in l]
    expect("autonat: the server logs OK then E_DIAL_ERROR for the js client",
           [x.get("status") for x in ans][-2:] == ["OK", "E_DIAL_ERROR"], ans)
    a.stop()


AUTONAT2_JS = os.path.join(ROOT, "tests/interop/nat/autonat2_js.mjs")


def free_port(host):
    s = socket.socket()
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def group_autonat2():
    """@libp2p/autonat-v2's client (js's own askPeerToVerify, nonce and dial-back handled by js)
    asks a `peermcp serve` AutoNAT v2 server about three addresses, one per request."""
    a = Serve("autonat2-server", {"IPFS_ACCELERATE_PY_TASK_P2P_AUTONAT": "1"}, "--log-level", "debug")
    p1, p2, closed = free_port("127.0.0.1"), free_port("127.0.0.2"), free_port("127.0.0.1")
    want = [("/ip4/127.0.0.1/tcp/%d" % p1, "its listen address: OK, dialed back with the nonce, js confirms it", True),
            ("/ip4/127.0.0.1/tcp/%d" % closed, "a closed port: OK / E_DIAL_ERROR", False),
            ("/ip4/127.0.0.2/tcp/%d" % p2, "its listen address on another IP (127.0.0.2) than the one it came "
             "from: js pays the dial data, then OK and confirmed", True)]
    try:
        r = subprocess.run([NODE, AUTONAT2_JS, "ask", a.announce()["multiaddr"]] + [w[0] for w in want] +
                           ["--listen", want[0][0], "--listen", want[2][0]], capture_output=True, text=True,
                           timeout=180, cwd=os.path.join(ROOT, "tests"))
        out, err = r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        out, err = "", "timeout"
    got = {j.get("addr"): j for j in json_lines(out) if "addr" in j}
    for addr, what, ok in want:
        j = got.get(addr, {})
        good = (j.get("success") == 1 and j.get("confirmed") is True) if ok else \
            (j.get("failure") == 1 and j.get("success") == 0 and j.get("confirmed") is False)
        expect("autonat2: js v2 client asks peermcp's v2 server about %s" % what, good, (j, out[-300:], err[-400:]))
    ans = [x for x in json_lines(a.log()) if x.get("msg") == "p2p autonat2: answered"]
    expect("autonat2: the server logs OK (dialed back), OK (E_DIAL_ERROR), OK after the dial data (cost \"dial data\")",
           [(x.get("why"), x.get("cost")) for x in ans][-3:] ==
           [("dialed back", "none"), ("E_DIAL_ERROR", "none"), ("dialed back", "dial data")], ans)
    paid = [x for x in json_lines(a.log()) if x.get("msg") == "p2p autonat2: asking for dial data"]
    expect("autonat2: the server asked js for 30000..100000 bytes of dial data before dialing 127.0.0.2",
           len(paid) == 1 and 30000 <= paid[0].get("bytes", 0) <= 100000, paid)
    a.stop()


def main():
    groups = {"relay": group_relay, "js-relay": group_js_relay, "js-hop": group_js_hop, "autonat": group_autonat,
              "autonat2": group_autonat2, "limits": group_limits}
    names = sys.argv[1:]
    if not names or any(g not in groups for g in names):
        print("usage: nat_checks.py GROUP... (%s)" % " ".join(groups))
        print("%s: 0 passed, 1 failed" % ("+".join(names) or "nat"))
        sys.exit(2)
    for g in names:
        try:
            groups[g]()
        except Exception as e:  # a crash is one failure, reported
            expect("%s: ran to the end" % g, False, repr(e))
        kill_started()
    sys.exit(summary("+".join(names)))


if __name__ == "__main__":
    main()
