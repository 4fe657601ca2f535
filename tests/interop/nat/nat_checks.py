"""NAT-traversal checks with whole nodes (issue 16), run by tests/suites/47-nat.sh.

    nat_checks.py relay   three processes on 127.0.0.1: R `peermcp serve` with the relay's hop
                          service (IPFS_ACCELERATE_PY_TASK_P2P_RELAY_HOP=1), B `peermcp serve`
                          with p2p.relays = [R]: B reserves on R and announces
                          R/p2p-circuit/p2p/B in announce.json; the CLI calls a tool on B through
                          that address (a relayed connection: Noise + Yamux over a stream of the
                          connection to R); with the switch IPFS_ACCELERATE_PY_TASK_P2P_RELAY=0 the
                          same call fails; every process stops cleanly.

Prints "PASS name" / "FAIL name: why" per check and ends with "<group>: N passed, N failed".
Every wait has a deadline; nothing sleeps and then asserts.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("PEERMCP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
PEERMCP = os.environ.get("PEERMCP_ASAN_BIN", os.path.join(ROOT, "build-asan/peermcp"))
RESULTS = {"pass": 0, "fail": 0}
TMP = tempfile.mkdtemp(prefix="nat-checks.")
BASE_ENV = {"IPFS_ACCELERATE_PY_TASK_P2P_TOKEN": "tok-nat", "PEERMCP_TEST_TOOLS": "1"}


def expect(name, cond, why=""):
    RESULTS["pass" if cond else "fail"] += 1
    print(("PASS " + name) if cond else ("FAIL " + name + (": " + str(why)[:600] if why else "")), flush=True)


def wait(pred, secs):
    end = time.time() + secs
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return pred()


class Serve:
    """A `peermcp serve --no-stdio` process; stderr (JSON log lines) to a file."""

    def __init__(self, name, env_extra, *args, stdio=False):
        self.name = name
        self.nid = 0
        self.dir = os.path.join(TMP, name)
        self.err_path = self.dir + ".err"
        self.env = dict(os.environ, **BASE_ENV, **env_extra)
        self.proc = subprocess.Popen([PEERMCP, "serve"] + ([] if stdio else ["--no-stdio"]) +
                                     ["--state-dir", self.dir, "--p2p-listen", "/ip4/127.0.0.1/tcp/0",
                                      "--log-level", "info"] + list(args),
                                     stdin=subprocess.PIPE if stdio else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if stdio else subprocess.DEVNULL,
                                     stderr=open(self.err_path, "w"), env=self.env, text=True)
        if stdio:
            self.rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "nat-checks", "version": "1"}})
            self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
            self.proc.stdin.flush()
        if not wait(lambda: 'ready"' in self.log() or self.proc.poll() is not None, 90) or self.proc.poll() is not None:
            raise RuntimeError("%s did not start: %s" % (name, self.log()[-600:]))
        self.peer_id = self.announce()["peer_id"]

    def rpc(self, method, params=None):
        self.nid += 1
        msg = {"jsonrpc": "2.0", "id": self.nid, "method": method}
        if params is not None:
            msg["params"] = params
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("%s closed stdout" % self.name)
            r = json.loads(line)
            if r.get("id") == self.nid:
                return r

    def tool(self, name, args):
        res = self.rpc("tools/call", {"name": name, "arguments": args}).get("result") or {}
        return res.get("structuredContent") or {}

    def log(self):
        return open(self.err_path).read()

    def announce(self):
        try:
            return json.load(open(os.path.join(self.dir, "announce.json")))
        except (OSError, ValueError):
            return {}

    def stop(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = self.log()
        clean = self.proc.returncode == 0 and "ERROR: AddressSanitizer" not in err and "runtime error" not in err
        expect("%s stops cleanly" % self.name, clean, "rc=%s %s" % (self.proc.returncode, err[-600:]))


def peermcp(env, *args, timeout=120):
    r = subprocess.run([PEERMCP] + list(args), capture_output=True, text=True, env=env, timeout=timeout)
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    except ValueError:
        out = {"raw": r.stdout[-400:]}
    return r.returncode, out, r.stderr


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
    st = b.tool("p2p_service_status", {})
    nat = st.get("nat") or {}
    res = nat.get("reservations") or [{}]
    expect("relay: B's p2p_service_status reports the active reservation and the circuit address",
           res[0].get("state") == "active" and want in nat.get("announced_addrs", []) and
           nat.get("autonat", {}).get("status") == "unknown", nat)
    peers = (b.tool("p2p_list_peers", {}).get("peers")) or []
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


def main():
    groups = {"relay": group_relay}
    g = sys.argv[1] if len(sys.argv) > 1 else ""
    if g not in groups:
        print("usage: nat_checks.py relay")
        print("%s: 0 passed, 1 failed" % (g or "nat"))
        sys.exit(2)
    try:
        groups[g]()
    except Exception as e:  # a crash is one failure, reported
        expect("%s: ran to the end" % g, False, repr(e))
    print("%s: %d passed, %d failed" % (g, RESULTS["pass"], RESULTS["fail"]), flush=True)
    sys.exit(0 if RESULTS["fail"] == 0 else 1)


if __name__ == "__main__":
    main()
