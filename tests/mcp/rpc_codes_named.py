#!/usr/bin/env python3
"""JSON-RPC error codes come by name from src/mcp/session.h (MCP_RPC_*): this test fails,
listing them, when a numeric code of the JSON-RPC ranges (-32700, -32600..-32603, the
server-error range -32000..-32099) appears in code anywhere else in src/ — comments and strings
do not count. It first checks itself on planted text, so it cannot pass by matching nothing.
Usage: rpc_codes_named.py SOURCE_ROOT"""
import os
import re
import sys

CODE = re.compile(r"(?<![\w.])-\s*(32700|3260[0-3]|320\d\d)(?![\w.])")
TOKEN = re.compile(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def blank(m):
    return re.sub(r"[^\n]", " ", m.group(0))  # keep line numbers


def uses(text):
    code = TOKEN.sub(blank, text)
    return [code.count("\n", 0, m.start()) + 1 for m in CODE.finditer(code)]


def main():
    root = sys.argv[1]
    planted = uses('/* -32603 */ x = "-32010"; // -32600\nint c = -32010;\nreply(-32603);\nint k = 32000 - 1;\n')
    if planted != [2, 3]:
        print("self-check failed: planted uses at lines", planted)
        return 1
    allowed = os.path.join(root, "src", "mcp", "session.h")
    hits = []
    for d, _, files in os.walk(os.path.join(root, "src")):
        for f in files:
            p = os.path.join(d, f)
            if not f.endswith((".c", ".h")) or p == allowed:
                continue
            with open(p, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            lines = text.split("\n")
            hits += ["%s:%d: %s" % (os.path.relpath(p, root), n, lines[n - 1].strip()) for n in uses(text)]
    if hits:
        print("JSON-RPC error codes as numbers outside src/mcp/session.h (use or add an MCP_RPC_* name):")
        print("\n".join(hits))
        return 1
    print("every JSON-RPC error code in src/ comes by name from mcp/session.h")
    return 0


sys.exit(main())
