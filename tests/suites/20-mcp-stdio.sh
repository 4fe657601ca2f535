#!/usr/bin/env bash
# MCP over stdio: the official TypeScript SDK client and raw byte-level cases against
# `peermcp serve --no-p2p` (the ASan build when it exists). Last line: "mcp-stdio: N passed, N failed".
set -u
. "$(dirname "$0")/../support/suite.sh"
suite_init mcp-stdio
if [ ! -x "$PEERMCP_ASAN_BIN" ] && [ ! -x "$PEERMCP_BIN" ]; then
  ko "setup" "no peermcp binary (build first)"
  suite_end
  exit 1
fi
cd "$root/tests/interop/mcp" || exit 1
timeout 600 "$node" --test --test-concurrency=1 --test-reporter=tap ./*.test.mjs >"$suite_tmp/tap" 2>&1
suite_tap "$suite_tmp/tap" $?
suite_end
