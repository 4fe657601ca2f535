// peermcp over Streamable HTTP driven by the official MCP TypeScript SDK Client with
// StreamableHTTPClientTransport (2025-11-25: initialize, Mcp-Session-Id, SSE for progress).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { HttpServer } from './common.mjs';

let srv, client, transport;

before(async () => {
  srv = await HttpServer.start();
  transport = new StreamableHTTPClientTransport(new URL(srv.url));
  client = new Client({ name: 'peermcp-http-interop', version: '1.0.0' });
  await client.connect(transport);
});

after(async () => {
  await transport?.terminateSession().catch(() => {});
  await client?.close();
  if (srv) {
    const r = await srv.stop();
    assert.equal(r.signal, null, `exited by signal: ${r.stderr.slice(-3000)}`);
    assert.equal(r.code, 0, `exit code (ASan leaks make it non-zero): ${r.stderr.slice(-3000)}`);
    assert.deepEqual(r.badStderr, [], 'stderr is JSON lines only');
    assert.equal(r.stdout, '', 'nothing on stdout without stdio');
  }
});

test('initialize over HTTP negotiates 2025-11-25 and issues a session id', () => {
  assert.equal(client.getServerVersion().name, 'peermcp');
  assert.ok(client.getServerCapabilities().tools);
  assert.match(transport.sessionId, /^[A-Za-z0-9_-]{43}$/, 'a 256-bit base64url session id');
  assert.equal(transport.protocolVersion, '2025-11-25');
});

test('ping and tools/list', async () => {
  assert.deepEqual(await client.ping(), {});
  const names = (await client.listTools()).tools.map((t) => t.name);
  for (const n of ['server_info', 'test_echo', 'test_slow', 'tools_dispatch']) assert.ok(names.includes(n), `${n} listed`);
});

test('tools/call returns structured content; an unknown tool is -32602', async () => {
  const r = await client.callTool({ name: 'test_echo', arguments: { word: 'héllo' } });
  assert.equal(r.isError, false);
  assert.deepEqual(r.structuredContent, { echo: { word: 'héllo' } });
  await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }), (e) => e instanceof McpError && e.code === -32602);
});

test('progress notifications arrive on the request stream, in order, before the result', async () => {
  const seen = [];
  const r = await client.callTool({ name: 'test_slow', arguments: { ms: 600, progress_every_ms: 100 } }, undefined, {
    onprogress: (p) => seen.push(p),
  });
  assert.equal(r.isError, false);
  assert.ok(seen.length >= 3, `progress events: ${JSON.stringify(seen)}`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress > seen[i - 1].progress, 'progress increases');
  assert.equal(seen.at(-1).total, 600);
});

test('log notifications reach the client after logging/setLevel', async () => {
  const logs = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
  await client.setLoggingLevel('debug');
  await client.callTool({ name: 'test_slow', arguments: { ms: 50 } });
  assert.ok(logs.some((l) => /test_slow: sleeping/.test(String(l.data))), JSON.stringify(logs));
});

test('cancellation: an aborted call stops the tool and the session goes on', async () => {
  const ac = new AbortController();
  const started = Date.now();
  const p = client.callTool({ name: 'test_slow', arguments: { ms: 60000 } }, undefined, { signal: ac.signal });
  setTimeout(() => ac.abort('test'), 300);
  await assert.rejects(p);
  assert.ok(Date.now() - started < 30000, 'the call ended long before its 60 s');
  // the server is still fine, and nothing is left running in it
  const r = await client.callTool({ name: 'test_echo', arguments: { after: 'cancel' } });
  assert.deepEqual(r.structuredContent, { echo: { after: 'cancel' } });
});

test('a 50-way concurrent burst on one session: every answer matches its request', async () => {
  const rs = await Promise.all(Array.from({ length: 50 }, (_, i) =>
    client.callTool({ name: i % 5 === 0 ? 'test_slow' : 'test_echo', arguments: i % 5 === 0 ? { ms: 100 } : { i } })));
  rs.forEach((r, i) => {
    assert.equal(r.isError, false, JSON.stringify(r));
    if (i % 5 === 0) assert.equal(r.structuredContent.slept_ms, 100);
    else assert.deepEqual(r.structuredContent, { echo: { i } });
  });
});

test('a second client gets its own session; a terminated session is 404', async () => {
  const t2 = new StreamableHTTPClientTransport(new URL(srv.url));
  const c2 = new Client({ name: 'second', version: '1.0.0' });
  await c2.connect(t2);
  assert.notEqual(t2.sessionId, transport.sessionId);
  const sid = t2.sessionId;
  await t2.terminateSession();
  await c2.close();
  const res = await fetch(srv.url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', 'Mcp-Session-Id': sid },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error.code, -32001);
});
