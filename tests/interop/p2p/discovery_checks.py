#!/usr/bin/env python3
"""Discovery interop checks (issue 15), run by tests/suites/45-discovery.sh.

    discovery_checks.py mdns   two C drivers and @libp2p/mdns; needs a network namespace whose
                               loopback carries multicast (the suite makes one)
    discovery_checks.py dht    C drivers and @libp2p/kad-dht over 127.0.0.1
    discovery_checks.py cli-lan     `peermcp serve` with p2p.profile lan and the CLI calling by
                                    PeerId alone (namespace with multicast on loopback)
    discovery_checks.py cli-dht     two `peermcp serve` through a js-only bootstrap; the CLI
                                    and `worker --discover` by PeerId / namespace
    discovery_checks.py profile     the default profile: nothing multicast, nothing dialed
                                    (with the lan profile as the control that the listener works)

The C side is tests/p2p/disco_driver (ASan build), the JS side tests/interop/p2p/disco_peer.mjs;
both read one JSON command per line and answer with one JSON line (see their headers).
Prints "PASS name" / "FAIL name: why" per check and ends with "<group>: N passed, N failed".
Every wait has a deadline; nothing sleeps and then asserts.
"""
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.environ.get("PEERMCP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
DRIVER = os.environ.get("DISCO_DRIVER", os.path.join(ROOT, "build-asan/tests/p2p/disco_driver"))
NODE = os.environ.get("NODE", os.path.join(ROOT, "tests/node_modules/node/bin/node"))
PEER_JS = os.path.join(ROOT, "tests/interop/p2p/disco_peer.mjs")
PEERMCP = os.environ.get("PEERMCP_ASAN_BIN", os.path.join(ROOT, "build-asan/peermcp"))
RESULTS = {"pass": 0, "fail": 0}
TMP = tempfile.mkdtemp(prefix="disco-checks.")


def ok(name):
    RESULTS["pass"] += 1
    print("PASS " + name, flush=True)


def ko(name, why=""):
    RESULTS["fail"] += 1
    print("FAIL " + name + (": " + str(why)[:400] if why else ""), flush=True)


class Peer:
    """A driver or js peer speaking JSON lines; stderr goes to a file for post-mortems."""

    count = 0

    def __init__(self, name, argv):
        Peer.count += 1
        self.name = name
        self.err_path = os.path.join(TMP, name + ".err")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(self.err_path, "w"), text=True, bufsize=1)
        self.lines = queue.Queue()
        self.events = []
        self.tag = 0
        threading.Thread(target=self._read, daemon=True).start()
        first = self.lines.get(timeout=90)  # node and ASan start slowly on a loaded machine
        self.peer_id = first["peer_id"]
        self.addrs = first["addrs"]

    def _read(self):
        for line in self.proc.stdout:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if "event" in d:
                self.events.append(d)
            else:
                self.lines.put(d)

    def call(self, cmd, timeout=60, **kw):
        self.tag += 1
        tag = "t%d" % self.tag
        self.proc.stdin.write(json.dumps(dict(cmd=cmd, tag=tag, **kw)) + "\n")
        self.proc.stdin.flush()
        end = time.time() + timeout
        while time.time() < end:
            try:
                d = self.lines.get(timeout=max(0.05, end - time.time()))
            except queue.Empty:
                break
            if d.get("tag") == tag:
                return d
        return {"ok": False, "error": "no answer within %ds" % timeout}

    def wait_event(self, pred, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            for e in list(self.events):
                if pred(e):
                    return e
            time.sleep(0.05)
        return None

    def stop(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


def c_peer(name, *args):
    return Peer(name, [DRIVER, "--state", os.path.join(TMP, name)] + list(args))


def js_peer(name, *args):
    return Peer(name, [NODE, PEER_JS] + list(args))


def expect(name, cond, why=""):
    if cond:
        ok(name)
    else:
        ko(name, why)


def check_clean_exit(peers):
    """ASan reports leaks and errors in stderr; a driver must exit 0 on stdin EOF."""
    for p in peers:
        rc = p.stop()
        err = open(p.err_path).read()
        if p.name.startswith("c") and (rc != 0 or "ERROR: AddressSanitizer" in err or "runtime error" in err):
            ko("%s exits cleanly" % p.name, "rc=%s %s" % (rc, err[-400:]))
        elif p.name.startswith("c"):
            ok("%s exits cleanly" % p.name)


def group_mdns():
    # Two peermcp drivers and a js peer, all on the namespace's loopback.
    c1 = c_peer("c1", "--dht", "off", "--mdns", "--mdns-loopback", "--mdns-interval", "2000")
    c2 = c_peer("c2", "--dht", "off", "--mdns", "--mdns-loopback", "--mdns-interval", "2000")
    js = js_peer("js", "--dht", "off", "--mdns", "--mdns-interval", "1000")
    r = c1.call("mdns_wait", id=c2.peer_id, timeout_ms=30000, timeout=40)
    expect("mdns: peermcp finds peermcp", r.get("ok") and any(a.startswith("/ip4/127.0.0.1/tcp/") for a in r.get("addrs", [])), r)
    r = c2.call("mdns_wait", id=c1.peer_id, timeout_ms=30000, timeout=40)
    expect("mdns: and the other way", r.get("ok"), r)
    r = c1.call("mdns_wait", id=js.peer_id, timeout_ms=30000, timeout=40)
    expect("mdns: peermcp finds @libp2p/mdns", r.get("ok"), r)
    r = js.call("mdns_wait", id=c1.peer_id, timeout_ms=30000, timeout=40)
    expect("mdns: @libp2p/mdns finds peermcp", r.get("ok") and r.get("addrs"), r)
    # A discovered peer is dialable by PeerId alone (its addresses went to the peerstore).
    r = c2.call("ping", id=c1.peer_id, timeout=40)
    expect("mdns: ping by PeerId after discovery", r.get("ok"), r)
    # Leaving sends a goodbye (TTL 0) that the other side sees.
    c2_id = c2.peer_id
    check_clean_exit([c2])
    e = c1.wait_event(lambda e: e.get("event") == "mdns" and e.get("id") == c2_id and e.get("ttl") == 0, 20)
    expect("mdns: goodbye on exit", e is not None)
    check_clean_exit([c1, js])


def group_dht():
    js_a = js_peer("jsA", "--dht", "server")
    boot = js_a.addrs[0]
    c1 = c_peer("c1", "--bootstrap", boot, "--rendezvous")
    c2 = c_peer("c2", "--bootstrap", boot)
    for p in (c1, c2):
        e = p.wait_event(lambda e: e.get("event") == "bootstrap", 60)
        expect("dht: %s bootstraps from @libp2p/kad-dht" % p.name, e and e.get("error") == 0 and e.get("answered", 0) >= 1, e)
    # js added the C servers to its routing table: identify lists /ipfs/kad/1.0.0 and they answer ping.
    deadline = time.time() + 30
    size = 0
    while time.time() < deadline:
        size = js_a.call("table").get("size", 0)
        if size >= 2:
            break
        time.sleep(0.2)
    expect("dht: js keeps peermcp servers in its routing table", size >= 2, size)
    # Two peermcp nodes find each other through a js-only bootstrap.
    r = c2.call("find_peer", id=c1.peer_id, timeout=60)
    expect("dht: peermcp finds peermcp by PeerId through js", r.get("ok") and r.get("addrs"), r)
    r = c2.call("ping", id=c1.peer_id, timeout=40)
    expect("dht: then reaches it by PeerId alone", r.get("ok"), r)
    # peermcp answers js's lookups.
    r = js_a.call("find_peer", id=c2.peer_id, timeout=60)
    expect("dht: js finds peermcp (FIND_NODE answered)", r.get("ok"), r)
    # The rendezvous records c1 published: js reads the Python record and the provider record.
    e = c1.wait_event(lambda e: e.get("event") == "published" and e.get("error") == 0, 60)
    expect("dht: rendezvous published to the DHT", e is not None, c1.events[-3:])
    key = "/ipfs-accelerate/task-queue/ns/ipfs-accelerate-task-queue"
    r = js_a.call("get", key=key, timeout=60)
    rec = {}
    try:
        rec = json.loads(r.get("value", "{}"))
    except ValueError:
        pass
    expect("dht: js reads the rendezvous record peermcp put", r.get("ok") and rec.get("peer_id") == c1.peer_id
           and isinstance(rec.get("ts"), (int, float)) and c1.peer_id in rec.get("multiaddr", ""), r)
    r = js_a.call("providers", ns="ipfs-accelerate-task-queue", want=c1.peer_id, timeout=60)
    expect("dht: js finds peermcp as provider of CIDv1 raw(sha256(ns))",
           r.get("ok") and any(p["id"] == c1.peer_id for p in r.get("providers", [])), r)
    r = c2.call("rv_find", timeout=90)
    how = {p["id"]: p["how"] for p in r.get("peers", [])}
    expect("dht: peermcp finds the namespace's peers (record + providers)", r.get("ok") and how.get(c1.peer_id, 0) & 3 == 3, r)
    # peermcp reads what js put and finds what js provides.
    js_rec = json.dumps({"peer_id": js_a.peer_id, "multiaddr": boot, "ts": time.time()})
    r = js_a.call("put", key="/ipfs-accelerate/task-queue/ns/jsns", value=js_rec, timeout=60)
    expect("dht: js puts a rendezvous record", r.get("ok"), r)
    r = c2.call("get", key="/ipfs-accelerate/task-queue/ns/jsns", timeout=60)
    expect("dht: peermcp reads the record js put", r.get("ok") and r.get("value") == js_rec, r)
    r = js_a.call("provide", ns="jsprovided", timeout=60)
    expect("dht: js provides a key", r.get("ok"), r)
    r = c1.call("providers", ns="jsprovided", timeout=60)
    expect("dht: peermcp finds js as provider", r.get("ok") and any(p["id"] == js_a.peer_id for p in r.get("providers", [])), r)
    # A record that names another peer than the one storing it is refused by peermcp servers.
    forged = json.dumps({"peer_id": c1.peer_id, "multiaddr": "/ip4/10.9.9.9/tcp/1", "ts": time.time() + 1000})
    js_a.call("put", key="/ipfs-accelerate/task-queue/ns/forged", value=forged, timeout=60)
    r = c2.call("get", key="/ipfs-accelerate/task-queue/ns/forged", timeout=60)
    stored_by_c = r.get("ok") and r.get("from") != js_a.peer_id  # "" = c2's own store
    expect("dht: peermcp servers refuse a record stored by another peer than it names", not stored_by_c, r)
    # A private protocol id keeps the DHTs apart.
    c3 = c_peer("c3", "--protocol", "/peermcp/kad/1.0.0", "--bootstrap", boot)
    e = c3.wait_event(lambda e: e.get("event") == "bootstrap", 60)
    expect("dht: a private protocol id does not talk to /ipfs/kad/1.0.0 peers", e and e.get("answered") == 0, e)
    check_clean_exit([c1, c2, c3, js_a])


class Serve:
    """A `peermcp serve --no-stdio` process; stderr (JSON log lines) to a file."""

    def __init__(self, name, env_extra, *args):
        self.name = name
        self.dir = os.path.join(TMP, name)
        self.err_path = self.dir + ".err"
        env = dict(os.environ, **env_extra)
        self.env = env
        self.proc = subprocess.Popen([PEERMCP, "serve", "--no-stdio", "--state-dir", self.dir,
                                      "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--log-level", "info"] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.err_path, "w"), env=env)
        end = time.time() + 90
        while time.time() < end and 'ready"' not in open(self.err_path).read():
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: %s" % (name, open(self.err_path).read()[-400:]))
            time.sleep(0.1)
        self.peer_id = subprocess.run([PEERMCP, "id", "--state-dir", self.dir], capture_output=True, text=True,
                                      env=env).stdout.strip()

    def log_has(self, text):
        return text in open(self.err_path).read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = open(self.err_path).read()
        clean = self.proc.returncode == 0 and "ERROR: AddressSanitizer" not in err and "runtime error" not in err
        expect("%s stops cleanly" % self.name, clean, "rc=%s %s" % (self.proc.returncode, err[-400:]))


def peermcp(env, *args, timeout=120):
    r = subprocess.run([PEERMCP] + list(args), capture_output=True, text=True, env=env, timeout=timeout)
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    except ValueError:
        out = {"raw": r.stdout[-400:]}
    return r.returncode, out, r.stderr


BASE_ENV = {"IPFS_ACCELERATE_PY_TASK_P2P_TOKEN": "tok-disco", "PEERMCP_TEST_TOOLS": "1"}


def group_cli_lan():
    env = dict(BASE_ENV, PEERMCP_P2P_PROFILE="lan", IPFS_ACCELERATE_PY_TASK_P2P_MDNS_ALLOW_LOOPBACK="1",
               PEERMCP_LOG_LEVEL="warning", IPFS_ACCELERATE_PY_TASK_P2P_DISCOVERY_TIMEOUT_S="30")
    a = Serve("srvA", env)
    b = Serve("srvB", env)
    cenv = dict(os.environ, **env)
    rc, out, err = peermcp(cenv, "call", "--state-dir", os.path.join(TMP, "cli1"), "--peer", a.peer_id, "echo",
                           '{"via":"mdns"}')
    expect("cli: call --peer <bare PeerId> found through mDNS", rc == 0 and "mdns" in json.dumps(out), (rc, out, err[-300:]))
    rc, out, err = peermcp(dict(cenv, PEERMCP_P2P_PROFILE="local"), "call", "--state-dir", os.path.join(TMP, "cli2"),
                           "--peer", a.peer_id, "echo", "{}")
    expect("cli: the local profile does not search (unknown PeerId: unreachable)", rc != 0, (rc, out))
    # B discovered A: after B stops, its saved peer table lists A with source mdns.
    deadline = time.time() + 30
    while time.time() < deadline and not b.log_has("mdns started"):
        time.sleep(0.1)
    time.sleep(3)  # two announcements: a peer found within the first round is in B's table
    b.stop()
    rc, out, err = peermcp(cenv, "peers", "--state-dir", b.dir, "--source", "mdns")
    rows = {p["peer_id"]: p for p in out.get("peers", [])}
    expect("cli: peermcp peers shows the peer mDNS found, with its source", rc == 0 and a.peer_id in rows
           and "mdns" in rows[a.peer_id]["sources"] and rows[a.peer_id]["addrs"], (rc, out, err[-300:]))
    rc, out, err = peermcp(cenv, "peers", "--state-dir", b.dir, "--source", "dht")
    expect("cli: peermcp peers filters by source", rc == 0 and not out.get("peers"), out)
    # The MCP tool p2p_list_peers of a serving node, with its filters.
    d = os.path.join(TMP, "srvM")
    m = subprocess.Popen([PEERMCP, "serve", "--state-dir", d, "--p2p-listen", "/ip4/127.0.0.1/tcp/0"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(d + ".err", "w"), text=True,
                         env=cenv, bufsize=1)
    rid = [0]

    def list_peers(args):
        rid[0] += 1
        m.stdin.write(json.dumps({"jsonrpc": "2.0", "id": rid[0], "method": "tools/call",
                                  "params": {"name": "p2p_list_peers", "arguments": args}}) + "\n")
        m.stdin.flush()
        line = m.stdout.readline()
        try:
            return json.loads(line)["result"]["structuredContent"]["peers"]
        except (ValueError, KeyError, TypeError):
            return None
    found = None
    end = time.time() + 30
    while time.time() < end and not found:
        peers = list_peers({"source": "mdns"}) or []
        found = next((p for p in peers if p["peer_id"] == a.peer_id), None)
        if not found:
            time.sleep(0.5)
    expect("tool: p2p_list_peers {source: mdns} lists the peer mDNS found (peer_id, addrs, last_seen, sources)",
           found and found["addrs"] and "last_seen" in found and "mdns" in found["sources"], found)
    peers = list_peers({"source": ["dht", "bootstrap"]})
    expect("tool: p2p_list_peers filters by source", peers == [], peers)
    peers = list_peers({"alive_only": True})
    expect("tool: p2p_list_peers alive_only leaves out peers never contacted",
           peers is not None and all(p.get("alive") for p in peers) and not any(p["peer_id"] == a.peer_id for p in peers), peers)
    peers = list_peers({"limit": 1})
    expect("tool: p2p_list_peers limit", peers is not None and len(peers) <= 1, peers)
    m.stdin.close()
    m.wait(timeout=60)
    expect("srvM exits cleanly on EOF", m.returncode == 0, m.returncode)
    a.stop()


def group_cli_dht():
    js_a = js_peer("jsA", "--dht", "server")
    boot = js_a.addrs[0]
    cfg_path = os.path.join(TMP, "dht.json")
    # workers 0: the nodes' own in-process workers would run the task the worker must claim
    json.dump({"p2p": {"profile": "private", "dht_protocol": "/ipfs/kad/1.0.0", "bootstrap": [boot], "workers": 0}},
              open(cfg_path, "w"))
    # A generous search budget: a loaded machine may take seconds to dial and bootstrap.
    env = dict(BASE_ENV, PEERMCP_CONFIG=cfg_path, PEERMCP_LOG_LEVEL="info",
               IPFS_ACCELERATE_PY_TASK_P2P_DISCOVERY_TIMEOUT_S="30")
    b = Serve("srvB", env)
    c = Serve("srvC", env)
    cenv = dict(os.environ, **env)
    # Wait until B and C have published (their routing tables came from js).
    for s in (b, c):
        end = time.time() + 60
        while time.time() < end and not s.log_has("dht: bootstrapped"):
            time.sleep(0.1)
        expect("cli-dht: %s bootstraps from js" % s.name, s.log_has("dht: bootstrapped"))
    rc, out, err = peermcp(cenv, "call", "--state-dir", os.path.join(TMP, "cli1"), "--peer", c.peer_id, "echo",
                           '{"via":"dht"}')
    expect("cli-dht: call --peer <bare PeerId> found through the DHT (js-only bootstrap)",
           rc == 0 and "dht" in json.dumps(out), (rc, out, err[-400:]))
    rc, out, err = peermcp(cenv, "task", "submit", "--state-dir", os.path.join(TMP, "cli2"), "--peer", b.peer_id,
                           "--type", "tool.call", '{"tool":"echo","args":{"n":42}}')
    tid = out.get("task_id")
    expect("cli-dht: task submit --peer <bare PeerId>", rc == 0 and tid, (rc, out, err[-300:]))
    rc, out, err = peermcp(cenv, "worker", "--state-dir", os.path.join(TMP, "wk"), "--discover", "--once",
                           "--lease", "20", timeout=180)
    expect("cli-dht: worker --discover ran a task of the namespace", rc == 0 and out.get("completed", 0) >= 1,
           (rc, out, err[-400:]))
    if tid:
        # By B's bare PeerId again, right after the worker and two CLI runs: js-libp2p refuses more
        # than 5 inbound connections per second from one IP, so this CLI's first bootstrap dial may
        # be refused; its resolve must dial the bootstrap peers again (discovery.c), not wait out
        # the deadline with an empty routing table.
        rc, out, err = peermcp(cenv, "task", "get", "--state-dir", os.path.join(TMP, "cli2"), "--peer", b.peer_id, tid)
        expect("cli-dht: …B's task is completed", rc == 0 and out.get("task", {}).get("status") == "completed",
               (rc, out, err[-600:]))
    b.stop()
    c.stop()
    check_clean_exit([js_a])


def multicast_listener(seconds):
    """Counts mDNS packets on 224.0.0.251:5353 for `seconds` (joined on lo)."""
    import socket
    import struct
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", 5353))
    mreq = struct.pack("4s4s", socket.inet_aton("224.0.0.251"), socket.inet_aton("127.0.0.1"))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.settimeout(0.2)
    n = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            s.recvfrom(9000)
            n += 1
        except socket.timeout:
            pass
    s.close()
    return n


def tcp_connections(pid):
    """Established or connecting TCP sockets of a process (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    n = 0
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(f).read().splitlines()[1:]:
            parts = line.split()
            if parts[9] in inodes and parts[3] != "0A":  # 0A = LISTEN
                n += 1
    return n


def group_profile():
    env = dict(BASE_ENV, PEERMCP_LOG_LEVEL="warning")
    # The default profile, with a bootstrap list and named peers configured: still silent.
    cfg_path = os.path.join(TMP, "local.json")
    json.dump({"p2p": {"bootstrap": ["/ip4/127.0.0.1/tcp/9/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"],
                       "peers": {"x": "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"}}},
              open(cfg_path, "w"))
    quiet = Serve("srvLocal", dict(env, PEERMCP_CONFIG=cfg_path))
    n = multicast_listener(4)
    conns = tcp_connections(quiet.proc.pid)
    expect("profile local: nothing multicast in 4 s", n == 0, n)
    expect("profile local: no connection opened", conns == 0, conns)
    quiet.stop()
    loud = Serve("srvLan", dict(env, PEERMCP_P2P_PROFILE="lan", IPFS_ACCELERATE_PY_TASK_P2P_MDNS_ALLOW_LOOPBACK="1"))
    n = multicast_listener(4)
    expect("profile lan (control): the listener hears its mDNS packets", n >= 2, n)
    loud.stop()


def main():
    group = sys.argv[1] if len(sys.argv) > 1 else "dht"
    try:
        {"mdns": group_mdns, "dht": group_dht, "cli-lan": group_cli_lan, "cli-dht": group_cli_dht,
         "profile": group_profile}[group]()
    except Exception as e:  # a crash of the harness is a failure, not a pass
        ko("%s: harness" % group, repr(e))
    print("%s: %d passed, %d failed" % (group, RESULTS["pass"], RESULTS["fail"]), flush=True)


if __name__ == "__main__":
    main()
