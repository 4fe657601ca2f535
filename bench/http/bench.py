#!/usr/bin/env python3
"""bench-http: peermcp vs the official TypeScript SDK's Streamable HTTP server, same trivial
`echo` tool, same load generator (wrk, 50 connections), in the same run: stateless (peermcp:
2026-07-28 requests; SDK: its stateless mode, a server per request) and stateful (one
2025-11-25 session; SDK: one session). Reports requests/s, p50/p99 latency, server CPU per
request (from /proc, robust to a busy machine), peak RSS (VmHWM) and the ratios.
Called by bench/http/run.sh (`make bench-http`)."""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def post(url, body, headers):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream", **headers})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, dict(r.headers), r.read().decode()


class Server:
    def __init__(self, kind, mode, args):
        self.kind, self.mode = kind, mode
        self.tmp = tempfile.mkdtemp(prefix="peermcp-bench-http-")
        if kind == "peermcp":
            state = os.path.join(self.tmp, "state")
            env = {**os.environ, "PEERMCP_TEST_TOOLS": "1"}
            self.proc = subprocess.Popen(
                [args.peermcp, "serve", "--no-p2p", "--no-stdio", "--http-listen", "127.0.0.1:0",
                 "--state-dir", state, "--log-level", "warning"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            deadline = time.time() + 60
            path = os.path.join(state, "http.json")
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("peermcp exited: " + self.proc.stderr.read().decode()[-2000:])
                try:
                    with open(path) as f:
                        self.url = json.load(f)["url"]
                    break
                except (OSError, ValueError, KeyError):
                    if time.time() > deadline:
                        raise RuntimeError("peermcp did not write http.json")
                    time.sleep(0.05)
            self.tool = "test_echo"
        elif kind in ("mhd-loop", "mhd-thread"):  # the I/O-model measurement (mhd_modes.c)
            self.proc = subprocess.Popen([args.mhd_modes, kind[4:]], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("mhd_modes exited: " + self.proc.stderr.read().decode()[-2000:])
            self.url = f"http://127.0.0.1:{json.loads(line)['port']}/mcp"
            self.tool, self.session, self.era = "echo", "", "legacy"
            return
        else:
            self.proc = subprocess.Popen(
                [args.node, os.path.join(HERE, "ts-server.mjs"), mode],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("ts-server exited: " + self.proc.stderr.read().decode()[-2000:])
            self.url = f"http://127.0.0.1:{json.loads(line)['port']}/mcp"
            self.tool = "echo"
        self.session = ""
        if mode == "stateful":
            st, hdrs, _ = post(self.url, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "bench-http", "version": "1.0.0"}}}, {})
            self.session = {k.lower(): v for k, v in hdrs.items()}.get("mcp-session-id", "")
            if st != 200 or not self.session:
                raise RuntimeError(f"{kind}: initialize gave {st} without a session id")
            post(self.url, {"jsonrpc": "2.0", "method": "notifications/initialized"},
                 {"Mcp-Session-Id": self.session, "MCP-Protocol-Version": "2025-11-25"})
        # one call by hand: the load below must be successful calls, not errors
        era = "modern" if (kind == "peermcp" and mode == "stateless") else "legacy"
        params = {"name": self.tool, "arguments": {"text": "hello", "n": 1}}
        headers = {"MCP-Protocol-Version": "2025-11-25"}
        if era == "modern":
            params["_meta"] = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                               "io.modelcontextprotocol/clientCapabilities": {}}
            headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": self.tool}
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        st, _, text = post(self.url, {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}, headers)
        body = text
        if text.startswith("event:") or text.startswith("data:"):
            body = "".join(l[5:].strip() for l in text.splitlines() if l.startswith("data:"))
        res = json.loads(body)
        if st != 200 or "result" not in res or res["result"].get("isError"):
            raise RuntimeError(f"{kind} {mode}: a tools/call did not succeed: {text[:500]}")
        self.era = era

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(args, srv, seconds, latency=True):
    env = {**os.environ, "BENCH_ERA": srv.era, "BENCH_TOOL": srv.tool, "BENCH_SESSION": srv.session}
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s",
           "-s", os.path.join(HERE, "call.lua")] + (["--latency"] if latency else []) + [srv.url]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60).stdout
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = {"raw": out}
    client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        r[f"p{p}_ms"] = float(m.group(1)) * UNIT[m.group(2)] if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    r["socket_errors"] = m.group(1).strip() if m else ""
    r["client_cpu_us_per_req"] = round(client_cpu * 1e6 / r["requests"], 1) if r["requests"] else None
    return r


def machine():
    def sh(c):
        try:
            return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    return {"nproc": sh("nproc"), "model": sh("lscpu | sed -n 's/^Model name: *//p'"),
            "kernel": sh("uname -srm"), "loadavg_start": open("/proc/loadavg").read().split()[:3],
            "wrk": sh("wrk -v 2>&1 | head -1"), "node": sh(f"'{ARGS.node}' --version"),
            "peermcp": sh(f"'{ARGS.peermcp}' --version")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peermcp", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=os.path.join(HERE, "last.json"))
    ap.add_argument("--mhd-modes", dest="mhd_modes", default="")
    global ARGS
    ARGS = ap.parse_args()
    args = ARGS
    info = machine()
    runs = []
    for mode in ("stateless", "stateful"):
        for trial in range(args.trials):
            for kind in ("peermcp", "typescript"):  # interleaved: both see the same machine load
                srv = Server(kind, mode, args)
                try:
                    wrk(args, srv, args.warmup, latency=False)  # JIT warm-up for the SDK; caches for both
                    c0 = cpu_seconds(srv.proc.pid)
                    r = wrk(args, srv, args.seconds)
                    c1 = cpu_seconds(srv.proc.pid)
                    r["cpu_us_per_req"] = round((c1 - c0) * 1e6 / r["requests"], 1) if r["requests"] else None
                    r["peak_rss_mib"] = round(peak_rss_mib(srv.proc.pid), 1)
                    # what 2 idle cores allow when server and wrk share them: 2 s of CPU per
                    # second over the CPU both spend per request (robust to other load)
                    both = (r["cpu_us_per_req"] or 0) + (r["client_cpu_us_per_req"] or 0)
                    r["capacity_rps_2_cores"] = round(2e6 / both) if both else None
                finally:
                    srv.stop()
                r.update({"server": kind, "mode": mode, "trial": trial})
                print(f"{mode:9} {kind:10} trial {trial}: {r['rps']:9.0f} req/s  p50 {r['p50_ms']} ms  "
                      f"p99 {r['p99_ms']} ms  cpu {r['cpu_us_per_req']} us/req  rss {r['peak_rss_mib']} MiB"
                      + (f"  NON-2XX {r['non2xx']}" if r["non2xx"] else ""), file=sys.stderr)
                runs.append(r)
    # The I/O model (docs/mcp.md): libmicrohttpd on the loop vs its own thread + a hand-off, a
    # fixed answer, one hop through a libuv loop either way.
    iomodel = []
    if args.mhd_modes:
        for trial in range(args.trials):
            for kind in ("mhd-loop", "mhd-thread"):
                srv = Server(kind, "stateless", args)
                try:
                    wrk(args, srv, args.warmup, latency=False)
                    c0 = cpu_seconds(srv.proc.pid)
                    r = wrk(args, srv, args.seconds)
                    c1 = cpu_seconds(srv.proc.pid)
                    r["cpu_us_per_req"] = round((c1 - c0) * 1e6 / r["requests"], 1) if r["requests"] else None
                finally:
                    srv.stop()
                r.update({"server": kind, "trial": trial})
                r.pop("raw", None)
                print(f"io-model  {kind:10} trial {trial}: {r['rps']:9.0f} req/s  p99 {r['p99_ms']} ms  "
                      f"cpu {r['cpu_us_per_req']} us/req", file=sys.stderr)
                iomodel.append(r)
    best = {}
    for mode in ("stateless", "stateful"):
        for kind in ("peermcp", "typescript"):
            rs = sorted((r for r in runs if r["mode"] == mode and r["server"] == kind), key=lambda r: r["rps"])
            best[(mode, kind)] = rs[len(rs) // 2]
    lines = ["| mode | server | req/s | p50 ms | p99 ms | server CPU µs/req | wrk CPU µs/req | 2-core capacity req/s | peak RSS MiB | non-2xx |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (mode, kind), r in best.items():
        lines.append(f"| {mode} | {kind} | {r['rps']:.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['cpu_us_per_req']} | "
                     f"{r['client_cpu_us_per_req']} | {r['capacity_rps_2_cores']} | {r['peak_rss_mib']} | {r['non2xx']} |")
    ratios = {}
    for mode in ("stateless", "stateful"):
        p, t = best[(mode, "peermcp")], best[(mode, "typescript")]
        ratios[mode] = {"rps": round(p["rps"] / t["rps"], 1) if t["rps"] else None,
                        "cpu": round(t["cpu_us_per_req"] / p["cpu_us_per_req"], 1)
                        if p["cpu_us_per_req"] and t["cpu_us_per_req"] else None,
                        "rss": round(t["peak_rss_mib"] / p["peak_rss_mib"], 1) if p["peak_rss_mib"] else None}
        lines.append(f"\n{mode}: peermcp/TS req/s **{ratios[mode]['rps']}×**, TS/peermcp CPU per request "
                     f"{ratios[mode]['cpu']}×, TS/peermcp peak RSS {ratios[mode]['rss']}×")
    s = best[("stateless", "peermcp")]
    targets = {"stateless_rps_ge_20000": s["rps"] >= 20000, "stateless_ge_10x_sdk": (ratios["stateless"]["rps"] or 0) >= 10,
               "p99_lt_5ms": (s["p99_ms"] or 1e9) < 5, "peak_rss_lt_16mib": s["peak_rss_mib"] < 16}
    lines.append("\ntargets (stateless peermcp): " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in targets.items()))
    if iomodel:
        lines.append("\n| I/O model (fixed answer, one loop hop) | req/s | p99 ms | CPU µs/req |\n|---|---|---|---|")
        for kind in ("mhd-loop", "mhd-thread"):
            rs = sorted((r for r in iomodel if r["server"] == kind), key=lambda r: r["rps"])
            r = rs[len(rs) // 2]
            lines.append(f"| {kind} | {r['rps']:.0f} | {r['p99_ms']} | {r['cpu_us_per_req']} |")
    info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    table = "\n".join(lines)
    print(table)
    for r in runs:
        r.pop("raw", None)
    doc = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": info,
           "setup": {"wrk_threads": args.threads, "connections": args.connections, "seconds": args.seconds,
                     "warmup_seconds": args.warmup, "trials": args.trials},
           "median_runs": {f"{m}/{k}": {x: r[x] for x in r} for (m, k), r in best.items()},
           "ratios": ratios, "targets": targets, "runs": runs, "io_model_runs": iomodel, "table": table}
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
