-- call.lua — wrk script for bench-http: one trivial tools/call per request, a unique JSON-RPC
-- id per request (a session rejects two in-flight requests with one id). Set by run.sh:
--   BENCH_ERA      modern (2026-07-28, stateless, _meta + Mcp-* headers) or legacy (2025-11-25)
--   BENCH_TOOL     the echo tool's name on that server
--   BENCH_SESSION  Mcp-Session-Id for a stateful run ("" = none)
local era = os.getenv("BENCH_ERA") or "modern"
local tool = os.getenv("BENCH_TOOL") or "test_echo"
local session = os.getenv("BENCH_SESSION") or ""

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
local headers

function init(args)
  headers = {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
  }
  if era == "modern" then
    headers["MCP-Protocol-Version"] = "2026-07-28"
    headers["Mcp-Method"] = "tools/call"
    headers["Mcp-Name"] = tool
  else
    headers["MCP-Protocol-Version"] = "2025-11-25"
  end
  if session ~= "" then headers["Mcp-Session-Id"] = session end
end

local meta = ',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}'

function request()
  n = n + 1
  local id = (tid or 0) * 1000000000 + n
  local body = '{"jsonrpc":"2.0","id":' .. id .. ',"method":"tools/call","params":{"name":"' .. tool ..
    '","arguments":{"text":"hello","n":' .. (n % 1000) .. '}' .. (era == "modern" and meta or "") .. '}}'
  return wrk.format("POST", nil, headers, body)
end
