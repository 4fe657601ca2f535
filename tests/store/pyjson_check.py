#!/usr/bin/env python3
# pyjson_check.py <pyjson_echo> [seed] [count] — random JSON values (no NUL: jansson refuses it on
# input) dumped by CPython and by store/pyjson must match byte for byte (spec §12.27).
import json, random, subprocess, sys
# Random JSON values; compares CPython's json.dumps with store/pyjson byte for byte.
rnd = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
def rstr():
    pool = ["a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\x1f", "\x7f", "é", "ß", "中", "😀", "\u2028", "\ufeff"]
    return "".join(rnd.choice(pool) for _ in range(rnd.randint(0, 8)))
def rfloat():
    c = rnd.randint(0, 5)
    if c == 0: return rnd.uniform(-1e6, 1e6)
    if c == 1: return rnd.uniform(-1, 1) * 10 ** rnd.randint(-30, 30)
    if c == 2: return float(rnd.randint(-10**17, 10**17))
    if c == 3: return rnd.choice([0.0, -0.0, 1e16, 1e15, 1e-4, 1e-5, 0.1, 5e-324, 1.7976931348623157e308])
    return round(rnd.uniform(0, 2e9), 3)
def rval(d=0):
    c = rnd.randint(0, 7 if d < 4 else 4)
    if c == 0: return None
    if c == 1: return rnd.choice([True, False])
    if c == 2: return rnd.randint(-2**63, 2**63 - 1)
    if c == 3: return rfloat()
    if c == 4: return rstr()
    if c == 5: return [rval(d + 1) for _ in range(rnd.randint(0, 4))]
    return {rstr(): rval(d + 1) for _ in range(rnd.randint(0, 5))}
vals = [rval() for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 2000)]
bad = 0
for style in ("0", "1"):
    # feed compact ASCII JSON to the C side (jansson parses it), compare with the expected text
    inp = "".join(json.dumps(v, ensure_ascii=True) + "\n" for v in vals)
    out = subprocess.run([sys.argv[1], style], input=inp.encode(), capture_output=True).stdout.decode("utf-8").split("\n")
    for v, got in zip(vals, out):
        want = json.dumps(v, sort_keys=True) if style == "0" else json.dumps(v, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        if got != want:
            bad += 1
            if bad <= 5: print("MISMATCH style", style, repr(want)[:200], repr(got)[:200])
print(f"pyjson: {2 * len(vals) - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
