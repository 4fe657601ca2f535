"""NAT traversal through real NAT routers (issue 16), run by tests/suites/48-nat-netns.sh inside
the namespaces that tests/interop/nat/netns_topo.sh built (PREFIX-r relay, PREFIX-a behind
NAT-A, PREFIX-b behind NAT-B, PREFIX-c behind NAT-C whose masquerade picks random ports).

    netns_checks.py PREFIX MODE [GROUP...]   MODE: nft | firewall (what the topology could build)

Groups (default: all, in this order; they share the nodes started by the first):
    relay      R `peermcp serve` with the hop service in the public namespace; A behind NAT-A
               reserves on R and announces R/p2p-circuit/p2p/A; the CLI behind NAT-B calls a tool
               on A through that address; a direct dial to A's private and to its NAT's public
               address fails (the NAT works); AutoNAT: A private, R public.
    punch      B `peermcp serve` behind NAT-B calls A through the relay (p2p_remote_call_tool):
               A received the relayed connection and starts DCUtR; the connection is upgraded to
               a direct one through both NATs ("p2p hole punch succeeded", relayed:false on both
               sides) and the next call runs over it.
    random     C behind NAT-C (random port mapping) calls A through the relay: the hole punch
               fails with a logged reason after its retries, the relayed connection stays usable.
    js         a js-libp2p peer (tests/interop/nat/js_punch.mjs) behind NAT-B dials A through the
               relay and calls /peermcp/echo over the relayed connection; A starts DCUtR, js
               answers, the connection becomes direct (js reports it).
    jsrelay    a js-libp2p relay (tests/interop/nat/js_relay.mjs) in the public namespace: A2
               behind NAT-A reserves on it, the CLI behind NAT-B calls a tool on A2 through it,
               B2 behind NAT-B calls A2 through it and the two punch a direct connection.
    dht        AD behind NAT-A and RD in the public namespace, both with the DHT on (dht_mode auto)
               and AutoNAT: AD is private and runs its DHT as a client (logged; R sees, through
               identify, that AD does not offer the kad protocol), RD is public and a DHT server
               (R sees it offer kad).
    bench      NETNS_PUNCH_TRIES (3) more hole punches B -> A, each by a fresh B: success rate and
               time from the call to a direct connection.
    autonat2   AutoNAT v2 with js-libp2p (@libp2p/autonat-v2, tests/interop/nat/autonat2_js.mjs):
               a js v2 server in the public namespace (pub, 5.0.0.1) decides peermcp's
               reachability: A3 behind NAT-A private, P in the public namespace public (each
               reaches it by reserving on it: it is a js relay too); peermcp's v2 server (R)
               answers a js client behind NAT-A (its NAT's address with its listen port:
               E_DIAL_ERROR, not confirmed) and a js client in the public namespace (its listen
               address: dialed back, js confirms it by itself).

Not covered here: js-libp2p's AutoNAT v1 in this topology (its server answers over the
requester's own connection), and js as the side that starts DCUtR (broken in js 3.3.11, issue 16).

Prints "PASS name" / "FAIL name: why" / "SKIP name: why" and ends with "netns: N passed, N failed".
Every wait has a deadline; nothing sleeps and then asserts.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (BASE_ENV, NODE, RESULTS, expect, init, json_lines, kill_started, log_lines, run_cli, skip,  # noqa: E402
                    summary, ts_s, wait, JsProc)
import common  # noqa: E402

TMP = init("nat-netns.", why_max=900)
PREFIX = ""
MODE = "nft"
PUB = {"a": "5.1.0.2", "b": "5.2.0.2"}  # where A and B come from as others see them (NAT mode)
BENCH = {}


def ns(n):
    return ["ip", "netns", "exec", "%s-%s" % (PREFIX, n)]


def Serve(name, where, ip, env_extra, cfg, stdio=True, port=4001):
    """A `peermcp serve` in namespace `where`, listening on ip:port (log level debug); .addr its
    multiaddr with /p2p."""
    s = common.Serve(name, listen="/ip4/%s/tcp/%d" % (ip, port), env_extra=env_extra, cfg=cfg, stdio=stdio,
                     prefix=ns(where), log_level="debug")
    s.addr = "/ip4/%s/tcp/%d/p2p/%s" % (ip, port, s.peer_id)
    return s


def cli(where, *args, timeout=120):
    return run_cli(args, prefix=ns(where), timeout=timeout)


def tcp_connect(where, ip, port, secs):
    """A plain TCP connect from namespace `where`: 'connected' or the error."""
    code = ("import socket,sys\ns=socket.socket();s.settimeout(%s)\ntry:\n s.connect((%r,%d));print('connected')\n"
            "except Exception as e:print(type(e).__name__)" % (secs, ip, port))
    r = subprocess.run(ns(where) + [sys.executable, "-c", code], capture_output=True, text=True, timeout=secs + 30)
    return r.stdout.strip()


NODES = {}


def common_cfg(extra=None):
    c = {"p2p": {"autonat": True, "autonat_confidence": 1}}
    if extra:
        c["p2p"].update(extra)
    return c


def group_relay():
    r = Serve("relay", "r", "5.0.0.2", {"IPFS_ACCELERATE_PY_TASK_P2P_RELAY_HOP": "1"}, common_cfg(), stdio=True)
    NODES["r"] = r
    a = Serve("a", "a", "10.0.1.2", {}, common_cfg({"relays": [r.addr]}))
    NODES["a"] = a
    circ = "%s/p2p-circuit/p2p/%s" % (r.addr, a.peer_id)
    NODES["circ"] = circ
    got = wait(lambda: circ in a.announce().get("multiaddrs", []), 60)
    expect("relay: A (behind NAT-A) reserved on R and announce.json lists R/p2p-circuit/p2p/A", got, a.announce())
    rc, out, err = cli("b", "call", "--state-dir", os.path.join(TMP, "cli1"), "--peer", circ, "echo",
                       '{"via":"relay-through-nat"}')
    expect("relay: the CLI behind NAT-B calls a tool on A through /p2p-circuit", rc == 0 and
           "relay-through-nat" in json.dumps(out), (rc, out, err[-600:]))
    # the NAT: A cannot be dialed, neither at its private address nor at its NAT's public one
    rc, out, err = cli("b", "call", "--state-dir", os.path.join(TMP, "cli2"), "--timeout", "10", "--peer",
                       a.addr, "echo", "{}", timeout=60)
    expect("relay: a direct dial from behind NAT-B to A's private address fails", rc != 0, (rc, out))
    if MODE == "nft":
        res = tcp_connect("b", "5.1.0.2", 4001, 3)
        expect("relay: a TCP connect to NAT-A's public address, port 4001, does not get through",
               res != "connected", res)
        # the relay saw A come from NAT-A's public address
        seen = wait(lambda: "5.1.0.2" in json.dumps(r.conns(a.peer_id)), 10)
        expect("relay: R sees A's connection coming from NAT-A's public address 5.1.0.2", seen, r.conns(a.peer_id))
    # AutoNAT: private behind the NAT, public for the relay
    st = wait(lambda: a.nat().get("reachability") == "private" and a.nat(), 60) or a.nat()
    expect("relay: AutoNAT says A (behind NAT-A) is private (p2p_service_status)",
           st.get("reachability") == "private" and (st.get("autonat") or {}).get("status") == "private", st)
    st = wait(lambda: r.nat().get("reachability") == "public" and r.nat(), 60) or r.nat()
    expect("relay: AutoNAT says R (public namespace) is public (p2p_service_status)",
           st.get("reachability") == "public", st)
    rc, out, err = cli("b", "status", "--state-dir", os.path.join(TMP, "cli1"), "--peer", r.addr)
    an = (out.get("nat") or {}).get("autonat") or {}
    expect("relay: R's status op (from behind NAT-B) carries nat.autonat public, code 1",
           rc == 0 and an.get("status") == "public" and an.get("code") == 1, (rc, out, err[-300:]))
    rc, out, err = cli("b", "status", "--state-dir", os.path.join(TMP, "cli1"), "--peer", circ)
    an = (out.get("nat") or {}).get("autonat") or {}
    expect("relay: A's status op (through the relay) carries nat.autonat private, code 2",
           rc == 0 and an.get("status") == "private" and an.get("code") == 2, (rc, out, err[-300:]))


def punch_once(name, where, ip, a, tag, port=4001):
    """A node in `where` calls A through the relay; returns (node, called, result, seconds from the
    call to a direct connection or None)."""
    n = Serve(name, where, ip, {}, common_cfg({"holepunch": True}), port=port)
    t0 = time.time()
    res, is_err = n.tool("p2p_remote_call_tool", {"remote_multiaddr": NODES["circ"], "tool_name": "echo",
                                                    "args": {"via": tag}, "timeout_s": 30})
    called = not is_err and tag in json.dumps(res)
    direct = wait(lambda: any(c.get("relayed") is False for c in n.conns(a.peer_id)), 40)
    return n, called, res, (time.time() - t0) if direct else None


def group_punch():
    a = NODES["a"]
    before = len(log_lines(a.log(), "hole punch succeeded"))
    b, called, res, dt = punch_once("b", "b", "10.0.2.2", a, "relay-then-punch")
    NODES["b"] = b
    expect("punch: B (behind NAT-B) calls a tool on A through the relay (p2p_remote_call_tool)", called, res)
    ok = wait(lambda: len(log_lines(a.log(), "hole punch succeeded")) > before, 40)
    expect("punch: A logs \"p2p hole punch succeeded\"", ok, a.log()[-1500:])
    if ok:
        j = log_lines(a.log(), "hole punch succeeded")[-1]
        print("     A: %s" % json.dumps({k: j.get(k) for k in ("addr", "attempt", "rtt_ms", "role")}), flush=True)
        BENCH.setdefault("tries", []).append(dt)
    cb = b.conns(a.peer_id)
    expect("punch: B's p2p_list_peers: A over a direct connection (relayed:false) through NAT-A's public address",
           any(c.get("relayed") is False and "/ip4/%s/tcp/4001" % PUB["a"] in c.get("addr", "") for c in cb), cb)
    ca = wait(lambda: [c for c in a.conns(b.peer_id) if c.get("relayed") is False] and a.conns(b.peer_id), 20)
    expect("punch: A's p2p_list_peers: B over a direct connection from NAT-B's public address",
           any(c.get("relayed") is False and "/ip4/%s/tcp/4001" % PUB["b"] in c.get("addr", "") for c in (ca or [])),
           ca)
    gone = wait(lambda: all(c.get("relayed") is False for c in b.conns(a.peer_id)), 30)
    expect("punch: the relayed connection is closed once the direct one is up", gone, b.conns(a.peer_id))
    res, is_err = b.tool("p2p_remote_call_tool", {"remote_peer_id": a.peer_id, "tool_name": "echo",
                                                  "args": {"via": "direct"}, "timeout_s": 20})
    expect("punch: the next tool call runs over the direct connection (its reply's via: NAT-A's address)",
           not is_err and '"direct"' in json.dumps(res) and res.get("via", "").startswith("/ip4/%s/tcp/4001" % PUB["a"]) and
           all(c.get("relayed") is False for c in b.conns(a.peer_id)), (res, b.conns(a.peer_id)))
    st = a.nat().get("holepunch") or {}
    expect("punch: A's p2p_service_status counts the hole punch", st.get("succeeded", 0) >= 1, st)


def group_random():
    a = NODES["a"]
    if MODE != "nft":
        skip("random", "no NAT on this kernel")
        return
    before = len(log_lines(a.log(), "hole punch failed; staying"))
    c, called, res, dt = punch_once("c", "c", "10.0.3.2", a, "random-nat")
    expect("random: C (behind NAT-C, random ports) calls a tool on A through the relay", called, res)
    failed = wait(lambda: len(log_lines(a.log(), "hole punch failed; staying")) > before, 60)
    j = log_lines(a.log(), "hole punch failed; staying")[-1] if failed else {}
    expect("random: A logs \"p2p hole punch failed\" with a reason after its tries",
           failed and j.get("reason") and j.get("attempts", 0) >= 3, a.log()[-1500:])
    if j:
        print("     A: %s" % json.dumps({k: j.get(k) for k in ("reason", "attempts")}), flush=True)
    syncs = [ts_s(y) for y in log_lines(a.log(), "hole punch: SYNC sent") if y.get("peer") == c.peer_id]
    gaps = [round(y - x, 2) for x, y in zip(syncs, syncs[1:])]
    expect("random: A tried 3 times (SYNC each time), ≥ 2 s apart", len(syncs) == 3 and all(g >= 2.0 for g in gaps),
           gaps)
    ca_ = [j for j in log_lines(c.log(), "hole punch") if j.get("peer") == a.peer_id]
    hc = c.nat().get("holepunch") or {}
    expect("random: C (answering) logs each failed attempt at info and leaves the give-up to A "
           "(holepunch.failed 0, answered_attempts_failed 3)",
           hc.get("failed") == 0 and hc.get("answered_attempts_failed") == 3 and
           not [j for j in ca_ if j.get("level") == "warning"], (hc, ca_[-3:]))
    ha = a.nat().get("holepunch") or {}
    expect("random: A's p2p_service_status counts one failed hole punch", ha.get("failed") == 1, ha)
    cc = c.conns(a.peer_id)
    expect("random: C stays on the relayed connection", cc and all(x.get("relayed") for x in cc), cc)
    res, is_err = c.tool("p2p_remote_call_tool", {"remote_peer_id": a.peer_id, "tool_name": "echo",
                                                  "args": {"via": "still-relayed"}, "timeout_s": 20})
    expect("random: the relayed connection still carries a tool call (its reply's via: the circuit)",
           not is_err and "still-relayed" in json.dumps(res) and "/p2p-circuit" in res.get("via", ""), res)
    c.stop()


def group_js():
    a = NODES["a"]
    if MODE != "nft":
        skip("js", "no NAT on this kernel")
        return
    if not os.path.exists(NODE):
        expect("js: node binary present", False, NODE)
        return
    before = len(log_lines(a.log(), "hole punch succeeded"))
    js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js_punch.mjs")
    r = subprocess.run(ns("d") + [NODE, js, NODES["circ"], "--listen", "/ip4/10.0.4.2/tcp/4002", "--announce",
                                  "/ip4/5.2.0.2/tcp/4002", "--token", BASE_ENV["IPFS_ACCELERATE_PY_TASK_P2P_TOKEN"],
                                  "--wait-s", "40"], capture_output=True, text=True, timeout=150)
    steps = {j.get("step"): j for j in json_lines(r.stdout)}
    why = (r.stdout[-900:], r.stderr[-600:])
    jid = (steps.get("start") or {}).get("peer_id", "?")
    expect("js: a js-libp2p peer behind NAT-B dials A through the relay (@libp2p/circuit-relay-v2)",
           (steps.get("relayed") or {}).get("ok"), why)
    expect("js: js calls a tool on A over the relayed connection (/mcp+p2p/1.0.0)",
           (steps.get("call_relayed") or {}).get("ok"), why)
    ok = [j for j in log_lines(a.log(), "hole punch succeeded")[before:] if j.get("peer") == jid]
    expect("js: A (it received the relayed connection) punches the hole with js (@libp2p/dcutr answering): "
           "\"p2p hole punch succeeded\"", ok, a.log()[-1500:])
    if ok:
        print("     A: %s" % json.dumps({k: ok[-1].get(k) for k in ("addr", "attempt", "rtt_ms", "role")}), flush=True)
    d = steps.get("direct") or {}
    expect("js: js sees a direct connection to A through NAT-A's public address", d.get("ok") and
           "/ip4/5.1.0.2/tcp/4001" in d.get("addr", ""), why)
    if d.get("ok"):
        print("     js: %s" % json.dumps({k: d.get(k) for k in ("addr", "direction", "ms")}), flush=True)
    expect("js: js calls the tool again over the direct connection", (steps.get("call_direct") or {}).get("ok"), why)
    expect("js: the js peer exits 0", r.returncode == 0, why)


def group_jsrelay():
    """peermcp A2 behind NAT-A reserves on a js-libp2p relay in the public namespace; the CLI
    behind NAT-B calls a tool on A2 through it."""
    if not os.path.exists(NODE):
        expect("jsrelay: node binary present", False, NODE)
        return
    js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js_relay.mjs")
    p = JsProc(js, ["--listen", "/ip4/5.0.0.2/tcp/4003"], os.path.join(TMP, "js_relay.err"), prefix=ns("r"))
    a2 = None
    try:
        info = p.first_line()
        expect("jsrelay: a js-libp2p relay (circuitRelayServer) listens in the public namespace", info.get("peer_id"),
               info)
        if not info.get("peer_id"):
            return
        raddr = "/ip4/5.0.0.2/tcp/4003/p2p/%s" % info["peer_id"]
        a2 = Serve("a2", "a", "10.0.1.2", {}, common_cfg({"relays": [raddr]}), port=4002)
        circ = "%s/p2p-circuit/p2p/%s" % (raddr, a2.peer_id)
        got = wait(lambda: circ in a2.announce().get("multiaddrs", []), 60)
        expect("jsrelay: A2 behind NAT-A reserved on the js relay and announces its circuit address", got,
               (a2.announce(), a2.log()[-1200:]))
        res = (log_lines(a2.log(), "p2p relay reservation made") or [{}])[-1]
        if res:
            print("     A2: %s" % json.dumps({k: res.get(k) for k in ("expire", "limit_duration_s", "limit_data_bytes",
                                                                        "addrs")}), flush=True)
        rc, out, e = cli("b", "call", "--state-dir", os.path.join(TMP, "cli3"), "--peer", circ, "echo",
                         '{"via":"js-relay"}')
        expect("jsrelay: the CLI behind NAT-B calls a tool on A2 through the js relay", rc == 0 and
               "js-relay" in json.dumps(out), (rc, out, e[-600:]))
        if MODE == "nft":
            saved = NODES["circ"]
            NODES["circ"] = circ
            try:
                b2, called, res, dt = punch_once("b2", "b", "10.0.2.2", a2, "via-js-relay", port=4201)
            finally:
                NODES["circ"] = saved
            expect("jsrelay: B2 behind NAT-B calls A2 through the js relay (p2p_remote_call_tool)", called, res)
            ok = wait(lambda: [j for j in log_lines(a2.log(), "hole punch succeeded") if j.get("peer") == b2.peer_id],
                      30)
            expect("jsrelay: A2 and B2 punch the hole through both NATs (DCUtR over the js relay's circuit)",
                   ok and dt is not None, (dt, a2.log()[-1200:]))
            res, is_err = b2.tool("p2p_remote_call_tool", {"remote_peer_id": a2.peer_id, "tool_name": "echo",
                                                           "args": {"via": "direct-after-js-relay"}, "timeout_s": 20})
            expect("jsrelay: the next call runs over the direct connection (its reply's via: NAT-A's address)",
                   not is_err and "direct-after-js-relay" in json.dumps(res) and
                   res.get("via", "").startswith("/ip4/5.1.0.2/tcp/4002"), res)
            gone = wait(lambda: all(c.get("relayed") is False for c in b2.conns(a2.peer_id)), 30)
            expect("jsrelay: the circuit through the js relay is closed once the direct connection is up", gone,
                   b2.conns(a2.peer_id))
            b2.stop()
    finally:
        if a2:
            a2.stop()
        p.stop(20)


def group_dht():
    """AutoNAT's verdict decides the DHT mode (dht_mode auto): behind the NAT a client, in the
    public namespace a server, as another peer sees it in identify."""
    r = NODES["r"]
    cfg = common_cfg({"dht": True, "dht_mode": "auto", "relays": [r.addr]})
    ad = rd = None
    try:
        rd = Serve("dht-r", "r", "5.0.0.2", {}, cfg, port=4007)
        ad = Serve("dht-a", "a", "10.0.1.2", {}, cfg, port=4008)
        st = wait(lambda: ad.nat().get("reachability") == "private" and ad.nat(), 60) or ad.nat()
        expect("dht: AutoNAT says AD (behind NAT-A) is private", st.get("reachability") == "private", st)
        st = wait(lambda: rd.nat().get("reachability") == "public" and rd.nat(), 60) or rd.nat()
        expect("dht: AutoNAT says RD (public namespace) is public", st.get("reachability") == "public", st)
        ma = wait(lambda: (log_lines(ad.log(), "p2p dht: mode") or [{}])[-1].get("mode") == "client" and
                  log_lines(ad.log(), "p2p dht: mode")[-1], 30) or log_lines(ad.log(), "p2p dht: mode")
        expect("dht: AD logs its DHT mode client because it is private", ma and ma.get("because") ==
               "reachability private", ma)
        # RD starts as a server (dht_mode auto before a verdict) and public keeps it one: no
        # switch is logged, and no switch to client either.
        mr = [j for j in log_lines(rd.log(), "p2p dht: mode") if j.get("mode") != "server"]
        expect("dht: RD (public) runs its DHT on: no switch to client mode logged",
               not mr and log_lines(rd.log(), "discovery started") and
               log_lines(rd.log(), "discovery started")[-1].get("dht") is True, mr)

        def protos(peer):
            rows = [p for p in r.tool("p2p_list_peers", {})[0].get("peers") or [] if p.get("peer_id") == peer]
            return (rows[0].get("protocols") or []) if rows else []

        def kad(ps):
            return [p for p in ps if "/kad/" in p]
        pa = wait(lambda: (lambda ps: ps if ps and not kad(ps) else None)(protos(ad.peer_id)), 30) or protos(ad.peer_id)
        expect("dht: R's p2p_list_peers (identify): AD does not offer the kad protocol (DHT client)",
               pa and not kad(pa) and "/ipfs/id/1.0.0" in pa, pa)
        pr = wait(lambda: kad(protos(rd.peer_id)) and protos(rd.peer_id), 30) or protos(rd.peer_id)
        expect("dht: R's p2p_list_peers (identify): RD offers the kad protocol (DHT server)", kad(pr), pr)
    finally:
        for n in (ad, rd):
            if n:
                n.stop()


def group_bench():
    """More hole punches B → A, each by a fresh B (a new PeerId, a new listen port: no TIME_WAIT
    left by the previous one): the success rate and the time from the call to a direct connection."""
    a = NODES["a"]
    if MODE != "nft":
        skip("bench", "no NAT on this kernel")
        return
    n = int(os.environ.get("NETNS_PUNCH_TRIES", "3"))
    ok = 0
    for i in range(n):
        b, called, res, dt = punch_once("bench%d" % i, "b", "10.0.2.2", a, "bench%d" % i, port=4101 + i)
        done = wait(lambda: [j for j in log_lines(a.log(), "hole punch succeeded") if j.get("peer") == b.peer_id], 30)
        if called and dt is not None and done:
            ok += 1
            BENCH.setdefault("tries", []).append(dt)
            BENCH.setdefault("attempt", []).append(done[-1].get("attempt"))
        else:
            print("     try %d: called=%s direct=%s punched=%s" % (i, called, dt, bool(done)), flush=True)
        b.stop(check=False)
    t = sorted(BENCH.get("tries", []))
    print("     hole punches B -> A through NAT-B and NAT-A: %d/%d of these (+ the punch group's) succeeded; "
          "seconds from the call to direct: %s; attempt numbers: %s" % (ok, n, [round(x, 2) for x in t],
                                                                       BENCH.get("attempt")), flush=True)
    expect("bench: %d more hole punches, every one succeeded" % n, ok == n, ok)


AUTONAT2_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "autonat2_js.mjs")


def js_once(where, *args, timeout=150):
    """autonat2_js.mjs ARGS in namespace `where`: its JSON lines."""
    try:
        r = subprocess.run(ns(where) + [NODE, AUTONAT2_JS] + list(args), capture_output=True, text=True,
                           timeout=timeout, cwd=os.path.dirname(AUTONAT2_JS))
        return json_lines(r.stdout), r.stderr
    except subprocess.TimeoutExpired:
        return [], "timeout"


def v2_of(node):
    return ((node.nat().get("autonat") or {}).get("v2")) or {}


def group_autonat2():
    r = NODES["r"]
    # js v2 server in the public namespace; A3 and P reach it by reserving on it (it is a relay too)
    p = JsProc(AUTONAT2_JS, ["server", "--listen", "/ip4/5.0.0.1/tcp/4020"], os.path.join(TMP, "autonat2_js.err"),
               prefix=ns("pub"), cwd=os.path.dirname(AUTONAT2_JS))
    a3 = pn = None
    try:
        info = p.first_line()
        expect("autonat2: a js-libp2p AutoNAT v2 server listens in the public namespace (5.0.0.1)",
               info.get("peer_id"), info)
        if not info.get("peer_id"):
            return
        jaddr = "/ip4/5.0.0.1/tcp/4020/p2p/%s" % info["peer_id"]
        pn = Serve("p-public", "r", "5.0.0.2", {}, common_cfg({"relays": [jaddr]}), port=4006)
        st = wait(lambda: pn.nat().get("reachability") == "public" and pn.nat(), 90) or pn.nat()
        v2 = (st.get("autonat") or {}).get("v2") or {}
        by = [j.get("by") for j in log_lines(pn.log(), "p2p autonat: reachability")]
        expect("autonat2: the js v2 server dials P (public namespace) back at 5.0.0.2:4006: P is public, by v2",
               st.get("reachability") == "public" and by[-1:] == ["v2"] and
               any(x.get("addr") == "/ip4/5.0.0.2/tcp/4006" and x.get("reachability") == "public"
                   for x in v2.get("addrs", [])), (st.get("reachability"), by, v2))
        if MODE == "nft":
            a3 = Serve("a3", "a", "10.0.1.2", {}, common_cfg({"relays": [jaddr]}), port=4005)
            st = wait(lambda: a3.nat().get("reachability") == "private" and a3.nat(), 120) or a3.nat()
            v2 = (st.get("autonat") or {}).get("v2") or {}
            by = [j.get("by") for j in log_lines(a3.log(), "p2p autonat: reachability")]
            expect("autonat2: the js v2 server cannot dial A3 (behind NAT-A) back at 5.1.0.2:4005: A3 is private, "
                   "by v2", st.get("reachability") == "private" and by[-1:] == ["v2"] and
                   any(x.get("addr") == "/ip4/5.1.0.2/tcp/4005" and x.get("reachability") == "private"
                       for x in v2.get("addrs", [])), (st.get("reachability"), by, v2))
            ans = [j for j in log_lines(a3.log(), "p2p autonat2: answer") if j.get("server") == info["peer_id"]]
            expect("autonat2: A3 logs the js server's answer OK / E_DIAL_ERROR for 5.1.0.2:4005",
                   any(j.get("dial_status") == "E_DIAL_ERROR" and j.get("addr") == "/ip4/5.1.0.2/tcp/4005"
                       for j in ans), ans)
        else:
            skip("autonat2: A3 behind NAT-A private by the js server", "no NAT on this kernel (js refuses "
                 "to dial the private addresses of the firewall mode)")
    finally:
        for n in (a3, pn):
            if n:
                n.stop()
        p.stop(20)
    # peermcp's v2 server (R) answers js clients: behind NAT-A and in the public namespace
    out, err = js_once("a", "ask", r.addr, "/ip4/%s/tcp/4031" % PUB["a"], "--listen", "/ip4/10.0.1.2/tcp/4031")
    j = ([x for x in out if "addr" in x] or [{}])[0]
    expect("autonat2: a js v2 client behind NAT-A asks R about %s:4031: E_DIAL_ERROR, not confirmed" % PUB["a"],
           j.get("failure") == 1 and j.get("success") == 0 and j.get("confirmed") is False, (out, err[-600:]))
    out, err = js_once("pub", "verify", r.addr, "--listen", "/ip4/5.0.0.1/tcp/4032")
    j = (out or [{}])[-1]
    expect("autonat2: a js v2 client in the public namespace has R verify its listen address 5.0.0.1:4032 "
           "(js's own flow): dialed back, js marks it verified", "/ip4/5.0.0.1/tcp/4032" in (j.get("verified") or []),
           (out, err[-600:]))
    ans = log_lines(r.log(), "p2p autonat2: answered")
    expect("autonat2: R logs E_DIAL_ERROR for the js client behind NAT-A and dialed back for the public one",
           any(a.get("addr") == "/ip4/%s/tcp/4031" % PUB["a"] and a.get("why") == "E_DIAL_ERROR" for a in ans) and
           any(a.get("addr") == "/ip4/5.0.0.1/tcp/4032" and a.get("why") == "dialed back" for a in ans), ans)


def main():
    global PREFIX, MODE
    if len(sys.argv) < 3:
        print("usage: netns_checks.py PREFIX nft|firewall [GROUP...]")
        print("netns: 0 passed, 1 failed")
        sys.exit(2)
    PREFIX, MODE = sys.argv[1], sys.argv[2]
    if MODE != "nft":  # no NAT: the hosts' own addresses, behind firewalls
        PUB.update(a="10.0.1.2", b="10.0.2.2")
    groups = {"relay": group_relay, "punch": group_punch, "random": group_random, "js": group_js,
              "jsrelay": group_jsrelay, "dht": group_dht, "bench": group_bench, "autonat2": group_autonat2}
    want = sys.argv[3:] or ["relay", "punch", "random", "js", "jsrelay", "dht", "bench", "autonat2"]
    try:
        for g in want:
            if g != "relay" and "a" not in NODES:
                break
            groups[g]()
    except Exception as e:  # a crash is one failure, reported
        expect("ran to the end", False, repr(e))
    for k in ("b", "a", "r"):
        if k in NODES:
            NODES[k].stop()
    kill_started()
    if os.environ.get("NETNS_KEEP_LOGS") or RESULTS["fail"]:
        print("logs in %s" % TMP)
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(summary("netns"))


if __name__ == "__main__":
    main()
