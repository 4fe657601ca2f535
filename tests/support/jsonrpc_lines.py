"""jsonrpc_lines.py — a JSON-RPC client over a child process's stdin/stdout, one message per
line (MCP's stdio transport), for the shell suites' Python drivers. Every wait is bounded.

    import sys; sys.path.insert(0, os.environ["PEERMCP_ROOT"] + "/tests/support")
    from jsonrpc_lines import LineClient
    c = LineClient([bin, "serve", "--state-dir", st], stderr_path=st + ".err")
    c.initialize()                                  # initialize + notifications/initialized
    r = c.request("tools/call", {"name": "echo", "arguments": {"x": 1}})
    c.request("tools/call", {...}, wait=False)      # send, do not wait for the answer
    rc = c.stop("int", grace=60)                    # "eof" | "int" | "term"; "hung" if killed
"""
import json
import os
import select
import signal
import subprocess
import time


class LineClient:
    def __init__(self, cmd, stderr_path=None, env=None):
        self.err = open(stderr_path, "w") if stderr_path else subprocess.DEVNULL
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                  env=env)
        self.next_id = 0
        self.buf = ""

    def send(self, msg):
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()

    def notify(self, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def _readline(self, deadline):
        while "\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no answer in time")
            ready, _, _ = select.select([self.p.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.p.stdout.fileno(), 65536).decode()
            if not chunk:
                raise RuntimeError("the server closed stdout")
            self.buf += chunk
        line, self.buf = self.buf.split("\n", 1)
        return line

    def request(self, method, params=None, wait=True, timeout=120):
        """Sends a request; returns its answer (other messages are skipped) unless wait=False."""
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        if not wait:
            return None
        deadline = time.time() + timeout
        while True:
            r = json.loads(self._readline(deadline))
            if r.get("id") == self.next_id and "method" not in r:
                return r

    def initialize(self, version="2025-06-18", name="suite"):
        r = self.request("initialize", {"protocolVersion": version, "capabilities": {},
                                        "clientInfo": {"name": name, "version": "1"}})
        self.notify("notifications/initialized")
        return r

    def tool(self, name, args):
        """tools/call: (structuredContent, isError)."""
        res = self.request("tools/call", {"name": name, "arguments": args}).get("result") or {}
        return res.get("structuredContent"), bool(res.get("isError"))

    def stop(self, how="term", grace=60):
        """Ends the server by EOF on stdin or a signal; its exit status, or "hung" (then killed)."""
        if how == "eof":
            self.p.stdin.close()
        else:
            self.p.send_signal(signal.SIGINT if how == "int" else signal.SIGTERM)
        try:
            return self.p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return "hung"

    def kill(self):
        try:
            self.p.kill()
            self.p.wait(timeout=30)
        except Exception:
            pass
