#!/usr/bin/env python3
"""The layers of docs/ARCHITECTURE.md, checked on #include lines.

meson.build's `layers` table says which subsystems each subsystem may use; the build enforces
it on symbols (liblayercheck_*.so are linked with --no-undefined). This test enforces it on
headers: a file under src/<layer>/ may include only headers of its own layer and of the
layers the table allows. It first checks itself on a planted tree, so it cannot pass by
matching nothing. Usage: check_includes.py SOURCE_ROOT"""
import os
import re
import sys
import tempfile

ROW = re.compile(r"\[\s*'([a-z0-9_/]+)'\s*,\s*\[([^\]]*)\]\s*\]", re.S)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def read_layers(meson_build):
    text = open(meson_build, encoding="utf-8").read()
    start = text.index("layers = [")
    end = text.index("\n]", start)
    table = {}
    for name, allowed in ROW.findall(text[start:end]):
        table[name] = set(re.findall(r"'([a-z0-9_/]+)'", allowed))
    if len(table) < 5:
        sys.exit("could not read the layers table from %s" % meson_build)
    return table


def layer_of(path, layers):
    """The longest layer name that prefixes `path` (relative to src/)."""
    best = None
    for name in layers:
        if path == name or path.startswith(name + "/"):
            if best is None or len(name) > len(best):
                best = name
    return best


def violations(src, layers):
    out = []
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith((".c", ".h")):
                continue
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, src)
            own = layer_of(os.path.dirname(rel), layers)
            if own is None:
                continue  # src/main.c: the program itself may use everything
            text = open(full, encoding="utf-8", errors="replace").read()
            for m in INCLUDE.finditer(text):
                inc = m.group(1)
                if "/" not in inc:
                    continue  # a sibling header, or a generated *.pb-c.h (layer proto)
                target = layer_of(os.path.dirname(inc), layers)
                if target is None or target == own or target in layers[own]:
                    continue
                line = text.count("\n", 0, m.start()) + 1
                out.append("%s:%d: %s may not include %s (layer %s)" % (rel, line, own, inc, target))
    return out


def main():
    root = sys.argv[1]
    layers = read_layers(os.path.join(root, "meson.build"))
    with tempfile.TemporaryDirectory() as t:
        os.makedirs(os.path.join(t, "util"))
        os.makedirs(os.path.join(t, "mcp"))
        with open(os.path.join(t, "util", "bad.c"), "w") as f:
            f.write('#include "mcp/session.h"\n#include "util/log.h"\n')
        with open(os.path.join(t, "mcp", "ok.c"), "w") as f:
            f.write('#include "util/log.h"\n#include "auth/auth.h"\n')
        planted = violations(t, layers)
        if len(planted) != 1:
            sys.exit("self-check failed: expected 1 planted violation, got %r" % planted)
    bad = violations(os.path.join(root, "src"), layers)
    for b in bad:
        print(b)
    print("layers: %d include(s) across layers that the table does not allow" % len(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
