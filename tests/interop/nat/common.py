"""Helpers shared by the NAT-traversal checks (issue 16): nat_checks.py (suite 47, nodes on
127.0.0.1) and netns_checks.py (suite 48, nodes in network namespaces).

What lives here: the check counters and their printing (expect/skip/summary), waiting for a
condition with a deadline (wait), reading JSON log lines (log_lines, ts_s), a whole
`peermcp serve` node driven over MCP stdio (Serve), one-shot CLI runs (run_cli), js-libp2p
helper processes (JsProc, json_lines) and the list of started processes that a failed group
leaves behind (STARTED, kill_started).

Each checks script calls init(tmp_prefix, why_max) once before anything else: it makes the
directory for state and logs (TMP) and sets how much of a failure's "why" is printed.
Every wait has a deadline; nothing sleeps and then asserts.
"""
import json
import os
import subprocess
import tempfile
import time

ROOT = os.environ.get("PEERMCP_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
PEERMCP = os.environ.get("PEERMCP_ASAN_BIN", os.path.join(ROOT, "build-asan/peermcp"))
NODE = os.path.join(ROOT, "tests/node_modules/node/bin/node")
BASE_ENV = {"IPFS_ACCELERATE_PY_TASK_P2P_TOKEN": "tok-nat", "PEERMCP_TEST_TOOLS": "1"}
RESULTS = {"pass": 0, "fail": 0}
STARTED = []  # every process started here; kill_started() ends what a failed group left running
TMP = None
WHY_MAX = 600


def init(tmp_prefix, why_max=600):
    """Makes TMP (state directories and logs of this run) and sets the printed length of a "why"."""
    global TMP, WHY_MAX
    TMP = tempfile.mkdtemp(prefix=tmp_prefix)
    WHY_MAX = why_max
    return TMP


def expect(name, cond, why=""):
    """One check: counts it and prints "PASS name" or "FAIL name: why"; returns cond."""
    RESULTS["pass" if cond else "fail"] += 1
    print(("PASS " + name) if cond else ("FAIL " + name + (": " + str(why)[:WHY_MAX] if why else "")), flush=True)
    return cond


def skip(name, why):
    print("SKIP %s: %s" % (name, why), flush=True)


def summary(label):
    """Prints "<label>: N passed, N failed"; returns the exit code (0 when nothing failed)."""
    print("%s: %d passed, %d failed" % (label, RESULTS["pass"], RESULTS["fail"]), flush=True)
    return 0 if RESULTS["fail"] == 0 else 1


def wait(pred, secs):
    """pred() until it is truthy or secs have passed; returns its last value."""
    end = time.time() + secs
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return pred()


def ts_s(j):
    """A log line's "ts" (2026-12-07T04:11:27.228Z) in seconds."""
    t = j.get("ts", "")
    return time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + t[19:].rstrip("Z"))


def log_lines(text, msg):
    """The JSON log lines of text whose "msg" contains msg, parsed."""
    out = []
    for line in text.splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if msg in str(j.get("msg", "")):
            out.append(j)
    return out


def json_lines(text):
    """Every line of text that parses as a JSON object."""
    out = []
    for line in text.splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if isinstance(j, dict):
            out.append(j)
    return out


def stop_proc(proc, secs):
    """Waits up to secs for proc to exit, then kills it."""
    try:
        proc.wait(timeout=secs)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_started():
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()


class Serve:
    """A `peermcp serve` process; stderr (JSON log lines) to TMP/<name>.err.

    listen: the --p2p-listen multiaddr; prefix: a command prefix (ip netns exec …); cfg: a dict
    written to TMP/<name>.json and passed as --config; args: more command-line arguments.
    With stdio the node is an MCP server on its stdin/stdout (tool(), rpc()); without it,
    --no-stdio. Ready once its log says so; peer_id from its announce.json."""

    def __init__(self, name, listen="/ip4/127.0.0.1/tcp/0", env_extra=None, args=(), cfg=None, stdio=False,
                 prefix=(), log_level="info"):
        self.name = name
        self.nid = 0
        self.dir = os.path.join(TMP, name)
        self.err_path = self.dir + ".err"
        cfg_args = []
        if cfg is not None:
            cpath = self.dir + ".json"
            json.dump(cfg, open(cpath, "w"))
            cfg_args = ["--config", cpath]
        env = dict(os.environ, **BASE_ENV, **(env_extra or {}))
        self.proc = subprocess.Popen(list(prefix) + [PEERMCP, "serve"] + ([] if stdio else ["--no-stdio"]) +
                                     ["--state-dir", self.dir] + cfg_args + ["--p2p-listen", listen,
                                                                             "--log-level", log_level] + list(args),
                                     stdin=subprocess.PIPE if stdio else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE if stdio else subprocess.DEVNULL,
                                     stderr=open(self.err_path, "w"), env=env, text=True)
        STARTED.append(self.proc)
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
        """(structuredContent or {}, isError) of a tools/call."""
        r = self.rpc("tools/call", {"name": name, "arguments": args}).get("result") or {}
        return r.get("structuredContent") or {}, bool(r.get("isError"))

    def conns(self, peer_id):
        """peer_id's connections in this node's p2p_list_peers."""
        peers = self.tool("p2p_list_peers", {})[0].get("peers") or []
        row = [p for p in peers if p.get("peer_id") == peer_id]
        return row[0].get("connections", []) if row else []

    def nat(self):
        return self.tool("p2p_service_status", {})[0].get("nat") or {}

    def log(self):
        return open(self.err_path).read()

    def announce(self):
        try:
            return json.load(open(os.path.join(self.dir, "announce.json")))
        except (OSError, ValueError):
            return {}

    def stop(self, check=True):
        """Closes stdin, SIGTERM; with check, one check that it exited 0 without sanitizer reports."""
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.terminate()
        stop_proc(self.proc, 60)
        if check:
            err = self.log()
            clean = self.proc.returncode == 0 and "ERROR: AddressSanitizer" not in err and "runtime error" not in err
            expect("%s stops cleanly" % self.name, clean, "rc=%s %s" % (self.proc.returncode, err[-600:]))


def run_cli(args, prefix=(), env=None, timeout=120):
    """A one-shot `peermcp ARGS` (call, status…): (returncode, its last stdout line as JSON, stderr)."""
    env = env if env is not None else dict(os.environ, **BASE_ENV)
    r = subprocess.run(list(prefix) + [PEERMCP] + list(args), capture_output=True, text=True, env=env,
                       timeout=timeout)
    try:
        out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    except ValueError:
        out = {"raw": r.stdout[-400:]}
    return r.returncode, out, r.stderr


class JsProc:
    """A long-running js-libp2p helper (node SCRIPT ARGS) that prints one JSON line when it is up
    and runs until its stdin closes; stderr to err_path."""

    def __init__(self, script, args, err_path, prefix=(), cwd=None):
        self.proc = subprocess.Popen(list(prefix) + [NODE, script] + list(args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=open(err_path, "w"), text=True, cwd=cwd)
        STARTED.append(self.proc)

    def first_line(self):
        """Its first stdout line parsed ({} when it printed nothing; ValueError when it is no JSON)."""
        line = self.proc.stdout.readline()
        return json.loads(line) if line.strip() else {}

    def stop(self, secs=30):
        self.proc.stdin.close()
        stop_proc(self.proc, secs)
