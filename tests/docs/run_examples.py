#!/usr/bin/env python3
"""run_examples.py — runs the shell examples of README.md and docs/*.md that are marked runnable,
so the docs cannot drift from the code (suite 80-docs).

A runnable example is a fenced block opened with ```sh runnable. The blocks of one file run in
order, as one bash script (set -euo pipefail), in a fresh scratch directory that is also the
working directory, so a walkthrough's later blocks see what its earlier ones made (files,
variables, background nodes). The environment is a new user's: HOME is in the scratch
directory, no XDG_* or PEERMCP_* variables, `peermcp` on PATH (the binary under test; also as
build/peermcp, as the README calls it from the source tree), the test npm packages' bin
directory on PATH and as ./node_modules (so `npx @modelcontextprotocol/inspector` runs the
pinned package, offline). Every file gets FILE_TIMEOUT seconds; whatever its script left running (a
`serve … &`) is stopped afterwards (SIGTERM, then SIGKILL). One check per block: a block passes
when the script got past it; the block that failed is shown with the tail of the output, and
the blocks after it count as failed (not run). Every file also gets one check that its relative
links (outside code blocks) name files that exist.

    run_examples.py --bin build/peermcp [--root .] [FILE.md …]
Last line: "docs: N passed, N failed".
"""
import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FILE_TIMEOUT = 240
OPEN = re.compile(r"^```sh\s+runnable\s*$")


def blocks_of(path):
    """[(first line number, text)] of the runnable blocks of a markdown file."""
    out, cur, start = [], None, 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if cur is None:
                if OPEN.match(line.rstrip("\n")):
                    cur, start = [], n + 1
            elif line.rstrip("\n").strip() == "```":
                out.append((start, "".join(cur)))
                cur = None
            else:
                cur.append(line)
    if cur is not None:
        raise SystemExit(f"{path}:{start}: a runnable block is not closed")
    return out


def stop_group(p):
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        end = time.time() + wait
        while time.time() < end:
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def run_file(path, blocks, binary, root):
    scratch = tempfile.mkdtemp(prefix="peermcp-docs.")
    try:
        home = os.path.join(scratch, "home")
        bindir = os.path.join(scratch, "bin")
        os.makedirs(home)
        os.makedirs(bindir)
        os.makedirs(os.path.join(scratch, "build"))
        os.symlink(binary, os.path.join(bindir, "peermcp"))
        os.symlink(binary, os.path.join(scratch, "build", "peermcp"))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("XDG_", "PEERMCP_", "IPFS_ACCELERATE_PY_", "IPFS_DATASETS_PY_"))}
        npm_bin = os.path.join(root, "tests", "node_modules", ".bin")
        env.update(HOME=home, PATH=os.pathsep.join([bindir, npm_bin, env.get("PATH", "/usr/bin:/bin")]))
        # `npx PACKAGE` finds the test packages as a user's project would find its own, and never
        # goes to the registry
        if os.path.isdir(os.path.join(root, "tests", "node_modules")):
            os.symlink(os.path.join(root, "tests", "node_modules"), os.path.join(scratch, "node_modules"))
        env.update(npm_config_offline="true", npm_config_update_notifier="false", npm_config_fund="false")
        mark = os.path.join(scratch, ".block")
        script = ["set -euo pipefail"]
        for i, (line, text) in enumerate(blocks):
            script.append(f"echo {i} > {mark}")
            script.append(f"echo '>>> {os.path.relpath(path, root)}:{line}' >&2")
            script.append(text)
        script.append(f"echo {len(blocks)} > {mark}")
        log = os.path.join(scratch, ".log")
        with open(log, "w") as lf:
            p = subprocess.Popen(["bash", "-c", "\n".join(script) + "\n"], cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                                 stdout=lf, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = p.wait(timeout=FILE_TIMEOUT)
            except subprocess.TimeoutExpired:
                rc = "timeout"
            stop_group(p)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            done = int(open(mark).read().strip())
        except (OSError, ValueError):
            done = 0
        tail = open(log, encoding="utf-8", errors="replace").read().splitlines()[-25:]
        results = []
        for i, (line, _) in enumerate(blocks):
            where = f"{os.path.relpath(path, root)}:{line}"
            if rc == 0 or i < done:
                results.append((True, where, ""))
            elif i == done:
                results.append((False, where, f"exit {rc}\n    " + "\n    ".join(tail)))
            else:
                results.append((False, where, "not run (an earlier block failed)"))
        return results
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def broken_links(path):
    """The relative links of a Markdown file (outside code blocks) whose file does not exist."""
    with open(path, encoding="utf-8") as fh:
        text = FENCE.sub("", fh.read())
    bad = []
    for m in LINK.finditer(text):
        target = m.group(1)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        if not os.path.exists(os.path.join(os.path.dirname(path), target.split("#")[0])):
            bad.append(target)
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    binary = os.path.abspath(a.bin)
    files = a.files or [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
    passed = failed = 0
    for f in files:
        bad = broken_links(f)
        if bad:
            failed += 1
            print(f"FAIL {os.path.relpath(f, root)}: links to files that do not exist: {', '.join(bad)}")
        else:
            passed += 1
            print(f"PASS {os.path.relpath(f, root)}: every relative link names a file of the repository")
        blocks = blocks_of(f)
        if not blocks:
            continue
        for good, where, why in run_file(os.path.abspath(f), blocks, binary, root):
            if good:
                passed += 1
                print(f"PASS {where}")
            else:
                failed += 1
                print(f"FAIL {where}: {why}")
        sys.stdout.flush()
    print(f"docs: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
