// Byte-level stdio cases: bad input never kills the server, each gets the right JSON-RPC error,
// modern-era (2026-07-28) requests work without initialize, and every way of ending is a clean
// exit 0 (which, under AddressSanitizer, also means no leaks).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { RawServer, scratch, MODERN_META } from './common.mjs';

async function withServer(fn, opts) {
  const sc = scratch();
  const s = new RawServer(sc, opts);
  try {
    await fn(s, sc);
    if (s.proc.exitCode === null) s.end();
    const { code, signal } = await s.exited;
    assert.equal(signal, null, `exited by signal; stderr: ${s.stderr.slice(-3000)}`);
    assert.equal(code, 0, `exit code; stderr: ${s.stderr.slice(-3000)}`);
    assert.deepEqual(s.badStdout, [], 'stdout carries only JSON-RPC messages');
    for (const line of s.stderr.split('\n').filter(Boolean)) {
      if (line.startsWith('=') || line.startsWith(' ')) continue; // sanitizer reports are checked by the exit code
      JSON.parse(line); // logs are JSON lines
    }
  } finally {
    if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
    sc.cleanup();
  }
}

const ping = (id) => ({ jsonrpc: '2.0', id, method: 'ping' });

test('bad JSON gets -32700 with id null, then the server keeps serving', () => withServer(async (s) => {
  await s.write('{"jsonrpc":"2.0","id":1,"method":"ping"\n');
  const e = await s.waitFor((m) => m.error?.code === -32700);
  assert.equal(e.id, null);
  assert.deepEqual((await s.request(ping(2))).result, {});
}));

test('wrong types get -32600 / -32602 / -32601', () => withServer(async (s) => {
  await s.write('42\n');
  assert.equal((await s.waitFor((m) => m.error && m.id === null)).error.code, -32600);
  await s.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 5 } });
  assert.equal((await s.byId(2)).error.code, -32602);
  await s.send({ jsonrpc: '2.0', id: 3, method: 'tools/list', params: [1, 2] });
  assert.equal((await s.byId(3)).error.code, -32602);
  await s.send({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'server_info', arguments: 'x' } });
  assert.equal((await s.byId(4)).error.code, -32602);
  await s.send({ jsonrpc: '1.0', id: 5, method: 'ping' });
  assert.equal((await s.byId(5)).error.code, -32600);
  await s.send({ jsonrpc: '2.0', id: 6, method: 'no/such/method' });
  assert.equal((await s.byId(6)).error.code, -32601);
  await s.send([ping(7)]);
  assert.equal((await s.waitFor((m) => m.error?.message?.includes('batch'))).error.code, -32600);
  assert.deepEqual((await s.request(ping(8))).result, {});
}));

test('a 32 MiB line is refused without killing the server', () => withServer(async (s) => {
  const big = '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + 'x'.repeat(32 * 1024 * 1024) + '"}}\n';
  await s.write(big);
  const e = await s.waitFor((m) => m.error && /too long/.test(m.error.message), 60000);
  assert.equal(e.id, null);
  assert.equal(e.error.code, -32600);
  assert.ok(!s.lines.some((m) => m.id === 1), 'the over-long request was not executed');
  assert.deepEqual((await s.request(ping(2), 30000)).result, {});
}));

test('binary junk gets a parse error and the server keeps serving', () => withServer(async (s) => {
  const junk = Buffer.alloc(4096);
  for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) & 0xff;
  for (let i = 0; i < junk.length; i++) if (junk[i] === 0x0a) junk[i] = 0x00; // one line, with NULs
  await s.write(Buffer.concat([junk, Buffer.from('\n'), Buffer.from([0xff, 0xfe, 0x7b, 0x22, 0xc3, 0x28, 0x0a])]));
  await s.waitFor((m) => m.error?.code === -32700);
  await s.waitFor(() => s.lines.filter((m) => m.error?.code === -32700).length >= 2);
  assert.deepEqual((await s.request(ping(3))).result, {});
}));

test('EOF in the middle of a message: clean exit 0', () => withServer(async (s) => {
  assert.deepEqual((await s.request(ping(1))).result, {});
  await s.write('{"jsonrpc":"2.0","id":2,"meth');
  s.end();
  const { code } = await s.exited;
  assert.equal(code, 0);
}));

test('EOF with a call in flight: the call completes, then exit 0', () => withServer(async (s) => {
  await s.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'test_slow', arguments: { ms: 500 } } });
  s.end();
  const r = await s.byId(1);
  assert.equal(r.result.isError, false);
  assert.equal(r.result.structuredContent.slept_ms, 500);
}));

test('SIGTERM: clean exit 0', () => withServer(async (s) => {
  assert.deepEqual((await s.request(ping(1))).result, {});
  s.proc.kill('SIGTERM');
  const { code, signal } = await s.exited;
  assert.equal(signal, null);
  assert.equal(code, 0);
}));

test('SIGTERM with a call in flight: the call completes, then exit 0', () => withServer(async (s) => {
  await s.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'test_slow', arguments: { ms: 800 }, _meta: { progressToken: 1 } } });
  await s.waitFor((m) => m.method === 'notifications/progress');
  s.proc.kill('SIGTERM');
  const r = await s.byId(1);
  assert.equal(r.result.structuredContent.slept_ms, 800);
  assert.equal((await s.exited).code, 0);
}));

test('a second SIGTERM cancels what still runs: exit 0 at once', () => withServer(async (s) => {
  await s.send({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'test_slow', arguments: { ms: 60000 }, _meta: { progressToken: 1 } } });
  await s.waitFor((m) => m.method === 'notifications/progress');
  const t0 = Date.now();
  s.proc.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  s.proc.kill('SIGTERM');
  assert.equal((await s.exited).code, 0);
  assert.ok(Date.now() - t0 < 30000); // not the 60 s call
}));

test('stdin from a regular file works', async () => {
  const sc = scratch();
  const file = path.join(sc.dir, 'in.jsonl');
  fs.writeFileSync(file, [ping(1), { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'server_info' } }]
    .map((m) => JSON.stringify(m)).join('\n') + '\n');
  const fd = fs.openSync(file, 'r');
  const s = new RawServer(sc, { stdin: fd });
  try {
    assert.deepEqual((await s.byId(1)).result, {});
    assert.equal((await s.byId(2)).result.structuredContent.name, 'peermcp');
    assert.equal((await s.exited).code, 0);
  } finally {
    fs.closeSync(fd);
    if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
    sc.cleanup();
  }
});

test('modern era: server/discover and tools/list without initialize', () => withServer(async (s) => {
  const d = await s.request({ jsonrpc: '2.0', id: 'd', method: 'server/discover', params: { _meta: MODERN_META } });
  assert.equal(d.result.resultType, 'complete');
  assert.ok(d.result.supportedVersions.includes('2026-07-28'));
  assert.ok(d.result.capabilities.tools);
  assert.equal(d.result._meta['io.modelcontextprotocol/serverInfo'].name, 'peermcp');
  assert.ok(Number.isInteger(d.result.ttlMs) && d.result.ttlMs >= 0);
  assert.ok(['public', 'private'].includes(d.result.cacheScope));
  const l = await s.request({ jsonrpc: '2.0', id: 'l', method: 'tools/list', params: { _meta: MODERN_META } });
  assert.ok(l.result.tools.length >= 1);
  assert.ok(Number.isInteger(l.result.ttlMs));
  const c = await s.request({ jsonrpc: '2.0', id: 'c', method: 'tools/call', params: { name: 'server_info', arguments: {}, _meta: MODERN_META } });
  assert.equal(c.result.resultType, 'complete');
  assert.equal(c.result.isError, false);
  // removed in 2026-07-28
  const p = await s.request({ jsonrpc: '2.0', id: 'p', method: 'ping', params: { _meta: MODERN_META } });
  assert.equal(p.error.code, -32601);
  // required _meta field missing
  const m = await s.request({ jsonrpc: '2.0', id: 'm', method: 'tools/list', params: { _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' } } });
  assert.equal(m.error.code, -32602);
}));

test('modern era: subscriptions/listen is acknowledged and ended gracefully at EOF', () => withServer(async (s) => {
  await s.send({ jsonrpc: '2.0', id: 'sub', method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true }, _meta: MODERN_META } });
  const ack = await s.waitFor((m) => m.method === 'notifications/subscriptions/acknowledged');
  assert.equal(ack.params._meta['io.modelcontextprotocol/subscriptionId'], 'sub');
  assert.deepEqual((await s.request(ping(1))).result, {}); // the stream does not block other requests
  s.end();
  const done = await s.byId('sub');
  assert.equal(done.result.resultType, 'complete');
  assert.equal(done.result._meta['io.modelcontextprotocol/subscriptionId'], 'sub');
}));

test('modern era: an unsupported version gets -32022 with the supported list', () => withServer(async (s) => {
  const r = await s.request({ jsonrpc: '2.0', id: 1, method: 'server/discover',
    params: { _meta: { ...MODERN_META, 'io.modelcontextprotocol/protocolVersion': '1900-01-01' } } });
  assert.equal(r.error.code, -32022);
  assert.equal(r.error.data.requested, '1900-01-01');
  assert.ok(r.error.data.supported.includes('2026-07-28'));
  assert.ok(r.error.data.supported.includes('2025-11-25'));
}));

test('notifications/cancelled stops a call and no response is sent for it', () => withServer(async (s) => {
  await s.send({ jsonrpc: '2.0', id: 'slow', method: 'tools/call', params: { name: 'test_slow', arguments: { ms: 20000 }, _meta: { progressToken: 'tok' } } });
  await s.waitFor((m) => m.method === 'notifications/progress' && m.params.progressToken === 'tok');
  await s.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'slow', reason: 'test' } });
  assert.deepEqual((await s.request(ping(2))).result, {});
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(!s.lines.some((m) => m.id === 'slow'), 'no response for the cancelled request');
  s.end();
  assert.equal((await s.exited).code, 0);
}));

// stdio.scopes (issue 13): the local client holds only what the operator gave it; tools needing
// more are neither listed nor callable, and the refusal is logged (never with a token).
test('stdio.scopes narrows what the stdio client may list and call', async () => {
  const sc = scratch({ stdio: { scopes: ['tool.call'] } });
  const s = new RawServer(sc);
  try {
    const names = [];
    let cursor;
    for (let id = 1; id < 200; id++) {
      const r = await s.request({ jsonrpc: '2.0', id, method: 'tools/list', params: cursor ? { cursor } : {} });
      names.push(...r.result.tools.map((t) => t.name));
      cursor = r.result.nextCursor;
      if (!cursor) break;
    }
    assert.ok(names.includes('server_info'), 'tools that need nothing');
    assert.ok(!names.includes('cache_get'), 'cache.read is not held');
    assert.ok(!names.includes('task_submit'), 'task.submit is not held');
    const r = await s.request({ jsonrpc: '2.0', id: 500, method: 'tools/call', params: { name: 'cache_get', arguments: { key: 'k' } } });
    assert.equal(r.result.isError, true);
    assert.match(JSON.stringify(r.result.content), /Forbidden/);
    s.end();
    const { code } = await s.exited;
    assert.equal(code, 0, s.stderr.slice(-2000));
    const refusal = s.stderr.split('\n').find((l) => l.includes('"request refused"'));
    assert.ok(refusal, 'the refusal is logged');
    assert.equal(JSON.parse(refusal).reason, 'insufficient_scope');
    assert.equal(JSON.parse(refusal).transport, 'stdio');
  } finally {
    if (s.proc.exitCode === null) s.proc.kill('SIGKILL');
    sc.cleanup();
  }
});
