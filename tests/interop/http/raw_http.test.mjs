// Byte-level HTTP cases against `peermcp serve --http-listen`: every bad request gets the status
// the spec names (and a JSON-RPC error body where it says so), slow or greedy clients cannot
// stall others, 2026-07-28 header rules, DNS-rebinding protection, health endpoints, and the
// server still exits 0 (no leak under ASan) at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { HttpServer, rawHttp, statusOf, modernHeaders, modernBody, sseMessages, waitFor } from './common.mjs';

// A unique sleep argument, so the test can tell whether the tool's process was killed.
const SLEEP_ARG = `${40 + (process.pid % 1000) / 1000}`;
function sleepersAlive() {
  try { return execFileSync('pgrep', ['-f', `^/bin/sleep ${SLEEP_ARG}$`]).toString().trim().length > 0; }
  catch { return false; }
}

let srv;
const JSON_SSE = 'application/json, text/event-stream';

before(async () => {
  srv = await HttpServer.start({
    config: {
      http: { max_body_bytes: 65536, max_header_bytes: 4096, max_connections: 64, request_timeout_seconds: 2,
              allowed_origins: ['https://app.example'], allowed_hosts: ['mcp.example'] },
      tools: { commands: [{ name: 'cmd_sleep', description: 'sleeps', argv: ['/bin/sleep', SLEEP_ARG], timeout_ms: 60000 }] },
    },
  });
});

after(async () => {
  if (!srv) return;
  const r = await srv.stop();
  assert.equal(r.signal, null, `exited by signal: ${r.stderr.slice(-3000)}`);
  assert.equal(r.code, 0, `exit code (ASan leaks make it non-zero): ${r.stderr.slice(-3000)}`);
  assert.deepEqual(r.badStderr, [], 'stderr is JSON lines only');
});

function post(body, headers = {}, signal = undefined) {
  return fetch(srv.url, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: JSON_SSE, ...headers }, body, signal });
}

async function initSession() {
  const res = await post(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }));
  assert.equal(res.status, 200);
  const sid = res.headers.get('mcp-session-id');
  assert.ok(sid);
  await res.json();
  const n = await post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), { 'Mcp-Session-Id': sid });
  assert.equal(n.status, 202);
  assert.equal(await n.text(), '');
  return sid;
}

// ---- transport-level refusals ----

test('bad JSON is 400 with a -32700 error and id null', async () => {
  const res = await post('{"jsonrpc":"2.0","id":1,"method":');
  assert.equal(res.status, 400);
  const j = await res.json();
  assert.equal(j.error.code, -32700);
  assert.equal(j.id, null);
});

test('a JSON-RPC batch or a non-object is 400 with -32600', async () => {
  for (const body of ['[{"jsonrpc":"2.0","id":1,"method":"ping"}]', '42', '"x"']) {
    const res = await post(body);
    assert.equal(res.status, 400, body);
    assert.equal((await res.json()).error.code, -32600, body);
  }
});

test('a wrong Content-Type is 415', async () => {
  for (const ct of ['text/plain', 'application/jsonx', 'multipart/form-data']) {
    const res = await post('{}', { 'Content-Type': ct });
    assert.equal(res.status, 415, ct);
    assert.equal((await res.json()).jsonrpc, '2.0');
  }
  const raw = await rawHttp(srv.host, srv.port, `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: ${JSON_SSE}\r\nContent-Length: 2\r\n\r\n{}`);
  assert.equal(statusOf(raw.text), 415, 'no Content-Type at all');
});

test('a missing or narrow Accept is 406 (POST needs both types, GET needs text/event-stream)', async () => {
  for (const acc of ['application/json', 'text/event-stream', 'text/html', 'application/json;q=0, text/event-stream']) {
    const res = await fetch(srv.url, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: acc }, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
    assert.equal(res.status, 406, `Accept: ${acc}`);
  }
  const none = await rawHttp(srv.host, srv.port, 'POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
  assert.equal(statusOf(none.text), 406, 'no Accept at all');
  const ok = await post(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }), { Accept: '*/*' });
  assert.equal(ok.status, 200, '*/* admits both');
  await ok.text();
  const sid = await initSession();
  const g = await fetch(srv.url, { headers: { Accept: 'application/json', 'Mcp-Session-Id': sid } });
  assert.equal(g.status, 406);
});

test('a body over max_body_bytes is 413, by Content-Length before reading and while streaming chunks', async () => {
  const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(70000) } });
  const res = await post(big);
  assert.equal(res.status, 413);
  assert.equal((await res.json()).error.code, -32600);
  // chunked: no Content-Length, the limit trips while the body arrives
  const head = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: ${JSON_SSE}\r\nTransfer-Encoding: chunked\r\n\r\n`;
  let chunks = '';
  for (let i = 0; i < 20; i++) chunks += `1000\r\n${'y'.repeat(4096)}\r\n`;
  const raw = await rawHttp(srv.host, srv.port, head + chunks + '0\r\n\r\n');
  assert.equal(statusOf(raw.text), 413);
});

test('headers over max_header_bytes are 431 and the server goes on', async () => {
  const raw = await rawHttp(srv.host, srv.port,
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'z'.repeat(5000)}\r\nContent-Length: 0\r\n\r\n`);
  assert.equal(statusOf(raw.text), 431, 'just over max_header_bytes (4096): our own count');
  const huge = await rawHttp(srv.host, srv.port,
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'z'.repeat(64 * 1024)}\r\nContent-Length: 0\r\n\r\n`);
  assert.equal(statusOf(huge.text), 431, "far over: libmicrohttpd's memory pool refuses it before we see it");
  const ok = await fetch(`${srv.base}/healthz`);
  assert.equal(ok.status, 200);
});

test('other paths are 404, other methods 405 with Allow', async () => {
  const r1 = await fetch(`${srv.base}/nope`);
  assert.equal(r1.status, 404);
  const r2 = await fetch(srv.url, { method: 'PUT', body: '{}' });
  assert.equal(r2.status, 405);
  assert.match(r2.headers.get('allow'), /POST/);
  const r3 = await fetch(srv.url, { headers: { Accept: 'text/event-stream' } });
  assert.equal(r3.status, 405, 'GET without a session: 2026-07-28 has no GET stream');
  const r4 = await fetch(srv.url, { method: 'DELETE' });
  assert.equal(r4.status, 405);
});

// ---- sessions (2025-11-25) ----

test('no session id is 400, an unknown one 404, a bad MCP-Protocol-Version 400', async () => {
  const ping = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping' });
  const r1 = await post(ping);
  assert.equal(r1.status, 400);
  assert.equal((await r1.json()).id, 7);
  const r2 = await post(ping, { 'Mcp-Session-Id': 'A'.repeat(43) });
  assert.equal(r2.status, 404);
  assert.equal((await r2.json()).error.code, -32001);
  const sid = await initSession();
  const r3 = await post(ping, { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '1999-01-01' });
  assert.equal(r3.status, 400);
  const r4 = await post(ping, { 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-06-18' });
  assert.equal(r4.status, 200);
  assert.deepEqual((await r4.json()).result, {});
  const r5 = await post(ping, { 'Mcp-Session-Id': sid }); // no header: assumed 2025-03-26
  assert.equal(r5.status, 200);
  await r5.text();
});

test('an invalid notification in a session is 400, a valid one 202', async () => {
  const sid = await initSession();
  const bad = await post(JSON.stringify({ jsonrpc: '1.0', method: 'notifications/whatever' }), { 'Mcp-Session-Id': sid });
  assert.equal(bad.status, 400);
  const good = await post(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/roots/list_changed' }), { 'Mcp-Session-Id': sid });
  assert.equal(good.status, 202);
});

test('GET opens the session stream; a second GET is 409; DELETE ends the session (then 404)', async () => {
  const sid = await initSession();
  const ac = new AbortController();
  const g = await fetch(srv.url, { headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': sid }, signal: ac.signal });
  assert.equal(g.status, 200);
  assert.match(g.headers.get('content-type'), /text\/event-stream/);
  const reader = g.body.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.match(first, /^id: \d+-\d+\ndata: \n\n/, 'a priming event with an id');
  const g2 = await fetch(srv.url, { headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': sid } });
  assert.equal(g2.status, 409);
  const d = await fetch(srv.url, { method: 'DELETE', headers: { 'Mcp-Session-Id': sid } });
  assert.equal(d.status, 200);
  const end = await reader.read().catch(() => ({ done: true }));
  assert.ok(end.done || end.value, 'the GET stream ends with the session');
  ac.abort();
  const after = await post(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }), { 'Mcp-Session-Id': sid });
  assert.equal(after.status, 404);
});

test('Last-Event-ID resumes a POST stream whose connection broke: the missed response arrives on GET', async () => {
  const sid = await initSession();
  const ac = new AbortController();
  const res = await post(JSON.stringify({ jsonrpc: '2.0', id: 'slow-1', method: 'tools/call',
    params: { name: 'test_slow', arguments: { ms: 1500, progress_every_ms: 200 }, _meta: { progressToken: 'p1' } } }),
  { 'Mcp-Session-Id': sid }, ac.signal);
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  const reader = res.body.getReader();
  let text = '';
  while (!/"progress"/.test(text)) text += new TextDecoder().decode((await reader.read()).value);
  const ids = [...text.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]);
  assert.ok(ids.length >= 2, text);
  await reader.cancel(); // the connection breaks; the request goes on (2025-11-25: not a cancel)
  const g = await fetch(srv.url, { headers: { Accept: 'text/event-stream', 'Mcp-Session-Id': sid, 'Last-Event-ID': ids.at(-1) } });
  assert.equal(g.status, 200);
  const msgs = await sseMessages(g);
  const final = msgs.find((m) => m.id === 'slow-1');
  assert.ok(final, JSON.stringify(msgs));
  assert.equal(final.result.structuredContent.slept_ms, 1500);
});

// ---- 2026-07-28 (stateless) ----

test('2026-07-28: a plain POST is answered with JSON, no session id', async () => {
  const res = await post(modernBody(1, 'tools/call', { name: 'test_echo', arguments: { a: 1 } }), modernHeaders('tools/call', 'test_echo'));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('mcp-session-id'), null);
  const j = await res.json();
  assert.equal(j.result.resultType, 'complete');
  assert.deepEqual(j.result.structuredContent, { echo: { a: 1 } });
});

test('2026-07-28: header/body mismatches are 400 with -32020 and the id', async () => {
  const body = modernBody(11, 'tools/call', { name: 'test_echo', arguments: {} });
  const cases = [
    [{ ...modernHeaders('tools/call', 'test_echo'), 'MCP-Protocol-Version': '2025-11-25' }, 'version mismatch'],
    [(() => { const h = modernHeaders('tools/call', 'test_echo'); delete h['MCP-Protocol-Version']; return h; })(), 'no version header'],
    [modernHeaders('tools/list', 'test_echo'), 'method mismatch'],
    [(() => { const h = modernHeaders('tools/call'); return h; })(), 'no Mcp-Name'],
    [modernHeaders('tools/call', 'server_info'), 'name mismatch'],
    [modernHeaders('tools/call', '=?base64?not base64?='), 'bad base64'],
  ];
  for (const [h, what] of cases) {
    const res = await post(body, h);
    assert.equal(res.status, 400, what);
    const j = await res.json();
    assert.equal(j.error.code, -32020, what);
    assert.equal(j.id, 11, what);
  }
  const b64 = Buffer.from('test_echo').toString('base64');
  const ok = await post(body, modernHeaders('tools/call', `=?base64?${b64}?=`));
  assert.equal(ok.status, 200, 'a Base64-sentinel Mcp-Name is decoded');
  await ok.text();
  const ws = await rawHttp(srv.host, srv.port, `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: ${JSON_SSE}\r\n`
    + `MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name:   test_echo  \r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  assert.equal(statusOf(ws.text), 200, 'whitespace around a header value is not part of it');
});

test('2026-07-28: unknown and removed methods are 404 + -32601; bad _meta 400 + -32602; bad version 400 + -32022', async () => {
  for (const m of ['initialize', 'ping', 'logging/setLevel', 'no/such']) {
    const res = await post(modernBody(21, m), modernHeaders(m));
    assert.equal(res.status, 404, m);
    const j = await res.json();
    assert.equal(j.error.code, -32601, m);
    assert.equal(j.id, 21);
  }
  const noMeta = await post(JSON.stringify({ jsonrpc: '2.0', id: 22, method: 'server/discover', params: {} }), modernHeaders('server/discover'));
  assert.equal(noMeta.status, 400);
  assert.equal((await noMeta.json()).error.code, -32602);
  const v = await post(JSON.stringify({ jsonrpc: '2.0', id: 23, method: 'server/discover',
    params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2099-01-01', 'io.modelcontextprotocol/clientCapabilities': {} } } }),
  { ...modernHeaders('server/discover'), 'MCP-Protocol-Version': '2099-01-01' });
  assert.equal(v.status, 400);
  const vj = await v.json();
  assert.equal(vj.error.code, -32022);
  assert.ok(vj.error.data.supported.includes('2026-07-28'));
  assert.equal(vj.error.data.requested, '2099-01-01');
});

test('2026-07-28: progress comes on an SSE response stream, then the result', async () => {
  const res = await post(modernBody(31, 'tools/call', { name: 'test_slow', arguments: { ms: 400, progress_every_ms: 100 }, _meta: { progressToken: 't31' } }),
    modernHeaders('tools/call', 'test_slow'));
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  assert.equal(res.headers.get('x-accel-buffering'), 'no');
  const msgs = await sseMessages(res);
  assert.ok(msgs.filter((m) => m.method === 'notifications/progress').length >= 2, JSON.stringify(msgs));
  assert.equal(msgs.at(-1).id, 31);
  assert.equal(msgs.at(-1).result.structuredContent.slept_ms, 400);
});

test('2026-07-28: closing the HTTP response cancels the call (its process is killed)', async () => {
  const count = () => { try { return Number(execFileSync('pgrep', ['-fc', `^/bin/sleep ${SLEEP_ARG}$`]).toString().trim()); } catch { return 0; } };
  const a1 = new AbortController(), a2 = new AbortController();
  const p1 = post(modernBody(41, 'tools/call', { name: 'cmd_sleep', arguments: {} }), modernHeaders('tools/call', 'cmd_sleep'), a1.signal).catch(() => null);
  const p2 = post(modernBody(42, 'tools/call', { name: 'cmd_sleep', arguments: {} }), modernHeaders('tools/call', 'cmd_sleep'), a2.signal).catch(() => null);
  await waitFor(() => count() === 2, 30000, 'both command tools to start');
  a2.abort();
  await p2;
  await waitFor(() => count() === 1, 30000, "the cancelled call's process to be killed");
  a1.abort();
  await p1;
  await waitFor(() => !sleepersAlive(), 30000, 'the second one too');
});

// ---- DNS rebinding ----

test('Host and Origin are both checked: loopback and configured values pass, others 403', async () => {
  const body = modernBody(51, 'server/discover');
  const send = (host, origin) => rawHttp(srv.host, srv.port, `POST /mcp HTTP/1.1\r\nHost: ${host}\r\n${origin ? `Origin: ${origin}\r\n` : ''}`
    + `Content-Type: application/json\r\nAccept: ${JSON_SSE}\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: server/discover\r\n`
    + `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  const p = srv.port;
  for (const [host, origin] of [[`127.0.0.1:${p}`, null], [`localhost:${p}`, `http://localhost:${p}`], [`[::1]:${p}`, `http://[::1]:${p}`],
    ['mcp.example', 'https://app.example'], [`127.0.0.1:${p}`, `https://127.0.0.1:9999`]])
    assert.equal(statusOf((await send(host, origin)).text), 200, `${host} ${origin}`);
  for (const [host, origin] of [['evil.example.com', null], [`127.0.0.1:${p}`, 'http://evil.example.com'], ['evil.example.com', 'http://evil.example.com'],
    [`127.0.0.1:${p}`, 'null'], [`127.0.0.1:${p}`, 'https://app.example.evil'], [`localhost.evil:${p}`, null]]) {
    const r = await send(host, origin);
    assert.equal(statusOf(r.text), 403, `${host} ${origin}`);
    assert.match(r.text, /"error":\{"code":-32000/);
  }
  const noHost = await rawHttp(srv.host, srv.port, `POST /mcp HTTP/1.0\r\nContent-Type: application/json\r\nAccept: ${JSON_SSE}\r\nContent-Length: 2\r\n\r\n{}`);
  assert.equal(statusOf(noHost.text), 403, 'no Host at all');
});

// ---- health ----

test('/healthz is 200; /readyz is 200 once storage and listeners are up', async () => {
  const h = await fetch(`${srv.base}/healthz`);
  assert.equal(h.status, 200);
  assert.deepEqual(await h.json(), { status: 'ok' });
  const r = await fetch(`${srv.base}/readyz`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { status: 'ready' });
});

// ---- slow and greedy clients ----

test('a slow-loris client is closed after request_timeout_seconds while others are served', async () => {
  const sock = net.connect({ host: srv.host, port: srv.port });
  await new Promise((r) => sock.on('connect', r));
  let closed = false;
  sock.on('close', () => { closed = true; });
  sock.on('error', () => {});
  sock.write('POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const started = Date.now();
  const drip = setInterval(() => { if (!closed) sock.write('X-Drip: 1\r\n'); }, 300); // never finishes its headers
  try {
    for (let i = 0; i < 5; i++) { // others are served meanwhile
      const res = await post(modernBody(60 + i, 'tools/list'), modernHeaders('tools/list'));
      assert.equal(res.status, 200);
      await res.text();
    }
    await waitFor(() => closed, 30000, 'the slow client to be closed');
    const took = Date.now() - started;
    assert.ok(took >= 1500, `closed after ${took} ms (limit 2 s)`);
  } finally {
    clearInterval(drip);
    sock.destroy();
  }
});

test('connections over max_connections are refused at once; the server keeps serving', async () => {
  const socks = [];
  for (let i = 0; i < 100; i++) {
    const s = net.connect({ host: srv.host, port: srv.port });
    s.on('error', () => {});
    socks.push(s);
  }
  await Promise.all(socks.map((s) => new Promise((r) => { s.on('connect', r); s.on('close', r); s.on('error', r); })));
  // some were closed by the server (limit 64); wait for those closes to be seen
  await waitFor(() => socks.filter((s) => s.destroyed || s.readyState !== 'open').length >= 30, 30000, 'excess connections to be closed');
  for (const s of socks) s.destroy();
  await waitFor(async () => {
    try { const r = await fetch(`${srv.base}/healthz`); return r.status === 200; } catch { return false; }
  }, 30000, 'the server to serve again');
  const res = await post(modernBody(70, 'tools/list'), modernHeaders('tools/list'));
  assert.equal(res.status, 200);
  await res.text();
});

test('keep-alive: many requests on one connection', async () => {
  const body = modernBody(80, 'tools/call', { name: 'test_echo', arguments: { k: 1 } });
  const one = `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: ${JSON_SSE}\r\n`
    + `MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: test_echo\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const sock = net.connect({ host: srv.host, port: srv.port });
  let text = '';
  sock.setEncoding('latin1');
  sock.on('data', (d) => { text += d; });
  await new Promise((r) => sock.on('connect', r));
  for (let i = 0; i < 20; i++) {
    sock.write(one);
    await waitFor(() => (text.match(/HTTP\/1\.1 200/g) ?? []).length >= i + 1, 30000, `response ${i + 1}`);
  }
  sock.destroy();
  assert.equal((text.match(/"echo":\{"k":1\}/g) ?? []).length, 20);
});
