# Issue 9 item 10 through the real interfaces: a node serving MCP on stdio (this script is its
# client), HTTP and the metrics listener, P2P with a trusted CLI peer. Its stores are broken
# under it while it runs; every check prints one JSON line {"check", "ok", "detail"}.
# argv: peermcp binary, temp dir (a/ = the node's state dir, c/ = the trusted CLI's), and
# optionally "full MOUNT": the node's queue and cache live on a small tmpfs at MOUNT, which is
# filled up under it and then freed (disk full while serving, and recovery).
import json, os, subprocess, sys, time, urllib.request, urllib.error

binp, tmp = sys.argv[1:3]
mode = sys.argv[3] if len(sys.argv) > 3 else "break"
mnt = sys.argv[4] if len(sys.argv) > 4 else None
state = tmp + "/a"
p = subprocess.Popen([binp, "serve", "--config", tmp + "/a.json", "--state-dir", state, "--log-level", "info",
                      "--metrics-listen", "127.0.0.1:0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=open(tmp + "/a.err", "w"), text=True)
open(tmp + "/a.pid", "w").write(str(p.pid))
nid = [0]

def out(check, ok, detail=None):
    print(json.dumps({"check": check, "ok": bool(ok), "detail": detail}), flush=True)

def rpc(method, params=None):
    nid[0] += 1
    msg = {"jsonrpc": "2.0", "id": nid[0], "method": method}
    if params is not None: msg["params"] = params
    p.stdin.write(json.dumps(msg) + "\n"); p.stdin.flush()
    while True:
        line = p.stdout.readline()
        if not line: raise SystemExit("the node closed stdout")
        r = json.loads(line)
        if r.get("id") == nid[0]: return r

def tool(name, args):
    r = rpc("tools/call", {"name": name, "arguments": args})
    res = r.get("result") or {}
    return res.get("structuredContent") or {}, bool(res.get("isError"))

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=20) as r: return r.status, r.read().decode()
    except urllib.error.HTTPError as e: return e.code, e.read().decode()
    except Exception as e: return 0, str(e)

def cli(*args):
    r = subprocess.run([binp, *args], capture_output=True, text=True, timeout=120)
    try: j = json.loads(r.stdout)
    except Exception: j = {}
    return r.returncode, j, r.stderr

def p2p_op(msg):
    """A TaskQueue op over /mcp+p2p/1.0.0 from the trusted CLI peer (task_queue.rpc): its reply."""
    rc, res, err = cli("call", "--peer", ma, "--state-dir", tmp + "/c", "task_queue.rpc", json.dumps({"message": msg}))
    for k in ("structuredContent", "content"): # task_queue.rpc: the op reply itself
        if isinstance(res.get(k), dict): return res[k]
    for c in res.get("content") or []:
        try: return json.loads(c.get("text", ""))
        except Exception: pass
    return {"_rc": rc, "_out": res, "_err": err[-300:]}

def wait_for(fn, secs=60):
    end = time.time() + secs
    while time.time() < end:
        v = fn()
        if v: return v
        time.sleep(0.25)
    return fn()

try:
    for _ in range(600):
        if all(os.path.exists(state + f) for f in ("/metrics.json", "/http.json", "/announce.json")): break
        time.sleep(0.1)
    murl = json.load(open(state + "/metrics.json"))["url"][: -len("/metrics")] + "/readyz"
    hurl = json.load(open(state + "/http.json"))["url"][: -len("/mcp")] + "/readyz"
    ma = json.load(open(state + "/announce.json"))["multiaddr"]
    qpath, cdir = state + "/queue.sqlite3", state + "/cache"
    rpc("initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "suite", "version": "1"}})
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n"); p.stdin.flush()
    if mode == "full":
        qpath, cdir = mnt + "/q/queue.sqlite3", mnt + "/cache"
        r, e = tool("cache_set", {"key": "before", "value": "x"})
        out("10 (full disk): healthy at first", not e and get(hurl)[0] == 200, r)
        filler = mnt + "/filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        r, e = tool("cache_set", {"key": "big", "value": "v" * 200000})
        out("10 (full disk): cache_set answers disk_full with the cause, the reason naming the file, and the path",
            e and r.get("error") == "disk_full" and r.get("path") == cdir and cdir in r.get("reason", ""), r)
        body = wait_for(lambda: (lambda sb: sb[1] if sb[0] == 503 and "cache:" in sb[1] else None)(get(hurl)), 30)
        out("10 (full disk): /readyz is 503 while the cache cannot write", body, body)
        rs = []
        for i in range(40):  # fill the WAL's free pages until SQLite meets the full disk
            r, e = tool("task_submit", {"task_type": "nobody.runs.this", "payload": {"pad": "p" * 20000, "i": i}})
            rs.append(r)
            if e: break
        out("10 (full disk): task_submit answers disk_full naming the queue file",
            e and r.get("error") == "disk_full" and r.get("path") == qpath and qpath in r.get("reason", ""), rs[-1])
        info, _ = tool("server_info", {})
        st = info.get("storage", {})
        out("10 (full disk): server_info says both are down with disk_full",
            st.get("queue", {}).get("error") == "disk_full" and st.get("cache", {}).get("error") == "disk_full", st)
        os.unlink(filler)
        r, e = tool("cache_set", {"key": "after", "value": "y"})
        r2, e2 = tool("task_submit", {"task_type": "nobody.runs.this", "payload": {"after": True}})
        out("10 (full disk): space freed: writes succeed again", not e and not e2, [r, r2])
        s_, body = get(hurl)
        info, _ = tool("server_info", {})
        out("10 (full disk): …and the node is ready again (a store is down only until an operation succeeds)",
            s_ == 200 and info.get("storage", {}).get("ok") is True, [s_, body, info.get("storage")])
        raise SystemExit(0)

    # ---- healthy ----
    info, _ = tool("server_info", {})
    out("10: server_info says both stores are up", info.get("storage", {}).get("ok") is True, info.get("storage"))
    out("10: /readyz is 200 on the HTTP and the metrics listener", get(hurl)[0] == 200 and get(murl)[0] == 200)
    r, _ = tool("task_submit", {"task_type": "nobody.runs.this", "payload": {"i": 1}})
    out("10: a task is accepted while healthy", r.get("ok") is True, r)
    rc, rep, err = cli("queue", "check", "--state-dir", state)
    out("10: `peermcp queue check` of a healthy database while the node runs: exit 0, integrity ok",
        rc == 0 and rep.get("ok") is True and rep.get("integrity") == "ok" and rep.get("tasks") == 1, [rc, rep, err[-300:]])

    # ---- a corrupt cache file: a miss, removed, and its name kept for status ----
    r, _ = tool("cache_set", {"key": "victim", "value": {"v": 1}})
    files = [f for f in os.listdir(cdir) if f.endswith(".json")]
    victim = files[0] if len(files) == 1 else None
    if victim: open(cdir + "/" + victim, "w").write("this is not JSON {")
    r, e = tool("cache_get", {"key": "victim"})
    out("10: a corrupt cache file reads as a miss", r.get("hit") is False and not e, r)
    rc, st, err = cli("status", "--state-dir", state)
    def corrupt_seen():
        rc, st, _ = cli("status", "--state-dir", state)
        lc = st.get("storage", {}).get("cache", {}).get("last_corrupt", {})
        return lc if lc.get("file") == victim and lc.get("reason") == "not JSON" else None
    lc = wait_for(corrupt_seen, 30)
    out("10: local `peermcp status` names the corrupt cache file and why", lc, lc)
    info, _ = tool("server_info", {})
    c = info.get("storage", {}).get("cache", {})
    out("10: server_info counts it and keeps its name (the cache stays up)",
        c.get("state") == "up" and c.get("corrupt_records") == 1 and c.get("last_corrupt", {}).get("file") == victim, c)

    # ---- the queue database's first page overwritten under the running node ----
    with open(qpath, "r+b") as f:
        f.write(os.urandom(4096))
    def hdown():
        s, body = get(hurl)
        return body if s == 503 and qpath in body and "corrupt" in body else None
    body = wait_for(hdown, 60)
    out("10: HTTP /readyz turns 503 naming the queue file and the reason", body, body)
    s, body = get(murl)
    out("10: metrics /readyz too", s == 503 and qpath in body, [s, body])
    info, _ = tool("server_info", {})
    q = info.get("storage", {}).get("queue", {})
    out("10: server_info: queue down, database_corrupt, the reason names the file",
        q.get("state") == "down" and q.get("error") == "database_corrupt" and qpath in q.get("reason", ""), q)
    r, e = tool("task_submit", {"task_type": "nobody.runs.this", "payload": {"i": 2}})
    out("10: task_submit is refused with the cause, the reason and the file",
        e and r.get("error") == "database_corrupt" and r.get("path") == qpath and "peermcp queue check" in r.get("reason", ""), r)
    r, e = tool("cache_set", {"key": "still", "value": 2})
    r2, _ = tool("cache_get", {"key": "still"})
    out("10: the cache keeps serving meanwhile", r.get("ok") is True and r2.get("hit") is True, [r, r2])
    st_ = tool("p2p_service_status", {})[0].get("storage", {})
    out("10: p2p_service_status says it too", st_.get("queue", {}).get("state") == "down" and qpath in st_.get("queue", {}).get("reason", ""), st_)
    def local_down():
        rc, st, _ = cli("status", "--state-dir", state)
        q = st.get("storage", {}).get("queue", {})
        return q if rc == 0 and q.get("state") == "down" and qpath in q.get("reason", "") else None
    q = wait_for(local_down, 30)
    out("10: local `peermcp status` (its own open of the file fails) reports the serving node's queue down", q, q)
    rc, st, err = cli("status", "--peer", ma, "--detail", "--state-dir", tmp + "/c")
    q = st.get("storage", {}).get("queue", {})
    out("10: P2P status --detail (a trusted peer) names the reason and the file",
        q.get("state") == "down" and q.get("error") == "database_corrupt" and qpath in q.get("reason", ""), [rc, st.get("storage"), err[-300:]])
    r = p2p_op({"op": "submit", "task_type": "nobody.runs.this", "payload": {"i": 3}})
    out("10: a P2P `submit` op (trusted peer) is refused with the cause, the reason and the file (not the code alone)",
        r.get("ok") is False and r.get("cause") == "database_corrupt" and r.get("path") == qpath and "peermcp queue check" in r.get("reason", ""), r)
    rc, rep, err = cli("queue", "check", "--state-dir", state)
    # SQLite's own "not a database" when page 1 is read from the file; while the node's WAL still
    # holds page 1 (the node keeps its lock, so nobody deletes its WAL) the header check names it
    out("10: `peermcp queue check` exits 1 and names the problem", rc == 1 and rep.get("ok") is False and "not healthy" in err
        and ("not a database" in err or "header is not SQLite's" in err), [rc, rep, err[-300:]])

    # ---- the cache directory removed under the running node ----
    subprocess.run(["rm", "-rf", cdir])
    def cdown():
        info, _ = tool("server_info", {})
        c = info.get("storage", {}).get("cache", {})
        return c if c.get("state") == "down" and cdir in c.get("reason", "") and "removed" in c.get("reason", "") else None
    c = wait_for(cdown, 60)
    out("10: a removed cache directory: server_info says cache down, removed, naming it", c, c)
    r, e = tool("cache_set", {"key": "lost", "value": 3})
    out("10: cache_set fails with the cause, the reason and the directory",
        e and r.get("error") == "storage_error" and r.get("path") == cdir and "removed" in r.get("reason", ""), r)
    r = p2p_op({"op": "cache.set", "key": "lost2", "value": 4})
    out("10: a P2P `cache.set` op fails with the cause, the reason and the directory",
        r.get("ok") is False and r.get("path") == cdir and "removed" in r.get("reason", ""), r)
    s, body = get(hurl)
    out("10: /readyz lists both stores", s == 503 and "queue:" in body and "cache:" in body, body)
finally:
    try:
        p.terminate()
        p.wait(timeout=60)
    except Exception:
        p.kill()
        p.wait()
    out("10: the node exits cleanly (SIGTERM) after all that", p.returncode == 0, p.returncode)
