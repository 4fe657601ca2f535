// peermcp as an OAuth 2.1 resource server (MCP 2025-11-25 authorization; RFC 6750, 9728, 8707):
// `serve` with the auth config of issue 13, tokens signed here with keys generated here (Node's
// crypto; nothing private is committed), driven by raw fetch and by the official SDK Client with
// a Bearer token. Covers: 401 without / with a bad token (resource_metadata challenge), the
// metadata documents, a token in the query string, 403 insufficient_scope, tools/list filtered
// by scope, expiry, a session bound to its subject, and a rotated JWK Set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { HttpServer } from './common.mjs';

const ISS = 'https://issuer.example';
let srv, port, aud, dir, jwksFile;
const keys = {};

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

function b64url(buf) { return Buffer.from(buf).toString('base64url'); }

// A JWS compact token. alg: RS256 | ES256 | EdDSA; key: { kid, privateKey }.
function sign(alg, key, claims, header = {}) {
  const h = b64url(JSON.stringify({ alg, kid: key.kid, typ: 'JWT', ...header }));
  const p = b64url(JSON.stringify(claims));
  const input = Buffer.from(`${h}.${p}`);
  let sig;
  if (alg === 'RS256') sig = crypto.sign('sha256', input, key.privateKey);
  else if (alg === 'ES256') sig = crypto.sign('sha256', input, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  else sig = crypto.sign(null, input, key.privateKey);
  return `${h}.${p}.${b64url(sig)}`;
}

function makeKey(type, kid) {
  const opts = type === 'rsa' ? { modulusLength: 2048 } : type === 'ec' ? { namedCurve: 'P-256' } : {};
  const { publicKey, privateKey } = crypto.generateKeyPairSync(type, opts);
  return { kid, privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid } };
}

function writeJwks(list) {
  const tmp = `${jwksFile}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ keys: list.map((k) => k.jwk) }));
  fs.renameSync(tmp, jwksFile);
}

function claims(extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: ISS, aud, sub: 'alice', iat: now, exp: now + 600, scope: 'tool.call', ...extra };
}

const MCP_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
};

function post(body, token, extraHeaders = {}, url = srv.url) {
  const headers = { ...MCP_HEADERS, ...extraHeaders };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
}

const INIT = {
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'auth-test', version: '1' } },
};

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peermcp-auth-'));
  jwksFile = path.join(dir, 'jwks.json');
  keys.rsa = makeKey('rsa', 'rsa-1');
  keys.ec = makeKey('ec', 'ec-1');
  keys.ed = makeKey('ed25519', 'ed-1');
  keys.next = makeKey('ed25519', 'ed-2');
  writeJwks([keys.rsa, keys.ec, keys.ed]);
  port = await freePort();
  aud = `http://127.0.0.1:${port}/mcp`;
  srv = await HttpServer.start({
    listen: [`127.0.0.1:${port}`],
    config: {
      http: { listen: `127.0.0.1:${port}` },
      auth: {
        resource: aud,
        authorization_servers: [ISS],
        jwt: { issuer: ISS, audience: aud, jwks_file: jwksFile, algorithms: ['RS256', 'ES256', 'EdDSA'], leeway_s: 30 },
      },
    },
  });
});

after(async () => {
  if (srv) {
    const r = await srv.stop();
    assert.equal(r.signal, null, `exited by signal: ${r.stderr.slice(-3000)}`);
    assert.equal(r.code, 0, `exit code (ASan leaks make it non-zero): ${r.stderr.slice(-3000)}`);
    assert.deepEqual(r.badStderr, [], 'stderr is JSON lines only');
    assert.ok(!/eyJ[A-Za-z0-9_-]+\.eyJ/.test(r.stderr), 'no token in the logs');
    assert.match(r.stderr, /"msg":"request refused"/, 'refusals are logged');
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('no token: 401 with the resource_metadata challenge', async () => {
  const r = await post(INIT);
  assert.equal(r.status, 401);
  const w = r.headers.get('www-authenticate');
  assert.match(w, /^Bearer /);
  assert.ok(w.includes(`resource_metadata="http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp"`), w);
  assert.ok(!w.includes('error='), 'no error code when no token was sent');
});

test('RFC 9728 metadata at the path form and the root form', async () => {
  for (const p of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
    const r = await fetch(`${srv.base}${p}`);
    assert.equal(r.status, 200, p);
    assert.match(r.headers.get('content-type'), /application\/json/);
    const m = await r.json();
    assert.equal(m.resource, aud);
    assert.deepEqual(m.authorization_servers, [ISS]);
    assert.deepEqual(m.bearer_methods_supported, ['header']);
    for (const s of ['tool.call', 'cache.read', 'task.submit']) assert.ok(m.scopes_supported.includes(s), s);
    assert.ok(!m.scopes_supported.includes('offline_access'));
  }
});

test('invalid tokens: 401 error="invalid_token" (bad signature, wrong audience, wrong issuer, expired, alg none)', async () => {
  const good = sign('ES256', keys.ec, claims());
  const parts = good.split('.');
  const tampered = `${parts[0]}.${parts[1]}.${parts[2].slice(0, -4)}${parts[2].slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
  const none = `${b64url(JSON.stringify({ alg: 'none' }))}.${parts[1]}.`;
  const cases = {
    tampered,
    wrong_audience: sign('ES256', keys.ec, claims({ aud: 'http://127.0.0.1:1/mcp' })),
    wrong_issuer: sign('RS256', keys.rsa, claims({ iss: 'https://evil.example' })),
    expired: sign('EdDSA', keys.ed, claims({ exp: Math.floor(Date.now() / 1000) - 3600 })),
    alg_none: none,
    unknown_kid: sign('EdDSA', { ...keys.ed, kid: 'nobody' }, claims()),
    garbage: 'not-a-jwt',
  };
  for (const [name, tok] of Object.entries(cases)) {
    const r = await post(INIT, tok);
    assert.equal(r.status, 401, name);
    const w = r.headers.get('www-authenticate');
    assert.match(w, /error="invalid_token"/, `${name}: ${w}`);
    assert.match(w, /resource_metadata="/, name);
  }
});

test('a token in the query string is refused, even with a good header', async () => {
  const tok = sign('EdDSA', keys.ed, claims());
  for (const q of ['access_token', 'token', 'jwt']) {
    const r = await post(INIT, tok, {}, `${srv.url}?${q}=${tok}`);
    assert.equal(r.status, 400, q);
    assert.match(r.headers.get('www-authenticate'), /error="invalid_request"/);
  }
});

test('the SDK Client with a Bearer token: tools/list filtered by scope, 403 insufficient_scope', async () => {
  const tok = sign('RS256', keys.rsa, claims({ scope: 'tool.call task.submit' }));
  const transport = new StreamableHTTPClientTransport(new URL(srv.url), {
    requestInit: { headers: { Authorization: `Bearer ${tok}` } },
  });
  const client = new Client({ name: 'peermcp-auth-interop', version: '1.0.0' });
  await client.connect(transport);
  try {
    const names = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(names.includes('test_echo'), 'tools that need nothing');
    assert.ok(names.includes('task_submit'), 'task.submit is held');
    assert.ok(!names.includes('cache_get'), 'cache.read is not held: not listed');
    const r = await client.callTool({ name: 'test_echo', arguments: { word: 'hi' } });
    assert.equal(r.isError, false);
    // the same session, a tool needing cache.read: 403 with the scope challenge
    const raw = await post({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'cache_get', arguments: { key: 'k' } } },
      tok, { 'mcp-session-id': transport.sessionId, 'mcp-protocol-version': '2025-11-25' });
    assert.equal(raw.status, 403);
    const w = raw.headers.get('www-authenticate');
    assert.match(w, /error="insufficient_scope"/, w);
    assert.match(w, /scope="cache\.read"/, w);
    assert.match(w, /resource_metadata="/, w);
    await assert.rejects(client.callTool({ name: 'cache_get', arguments: { key: 'k' } }));
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close();
  }
});

test('a session is bound to the subject that created it', async () => {
  const alice = sign('EdDSA', keys.ed, claims());
  const r = await post(INIT, alice);
  assert.equal(r.status, 200);
  const sid = r.headers.get('mcp-session-id');
  assert.ok(sid);
  const bob = sign('EdDSA', keys.ed, claims({ sub: 'bob' }));
  const hdrs = { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' };
  const r2 = await post({ jsonrpc: '2.0', id: 2, method: 'ping' }, bob, hdrs);
  assert.equal(r2.status, 404, 'another subject cannot use the session');
  const r3 = await post({ jsonrpc: '2.0', id: 3, method: 'ping' }, alice, hdrs);
  assert.equal(r3.status, 200);
  await fetch(srv.url, { method: 'DELETE', headers: { ...hdrs, authorization: `Bearer ${alice}` } });
});

test('a rotated JWK Set is picked up without a restart', async () => {
  const old = sign('EdDSA', keys.ed, claims());
  const next = sign('EdDSA', keys.next, claims());
  assert.equal((await post(INIT, old)).status, 200);
  assert.equal((await post(INIT, next)).status, 401);
  writeJwks([keys.rsa, keys.ec, keys.next]); // ed-1 retired, ed-2 in
  const deadline = Date.now() + 30000; // the file is polled every 2 s
  let st = 0;
  while (Date.now() < deadline) {
    st = (await post(INIT, next)).status;
    if (st === 200) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.equal(st, 200, 'the new key is accepted');
  assert.equal((await post(INIT, old)).status, 401, 'the retired key is not');
});
