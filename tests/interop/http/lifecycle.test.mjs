// serve with HTTP and stdio both on: stdin EOF closes only stdio, HTTP goes on; SIGTERM then
// ends everything with exit 0 and removes http.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { HttpServer, modernHeaders, modernBody } from './common.mjs';

test('stdin EOF closes only stdio when HTTP serves; SIGTERM stops with exit 0', async () => {
  const srv = await HttpServer.start({ stdio: true });
  const file = path.join(srv.state, 'http.json');
  try {
    // stdin was /dev/null: wait until stdio has seen its EOF, then HTTP must still answer
    const deadline = Date.now() + 30000;
    while (!/stdio closed; HTTP goes on/.test(srv.stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.match(srv.stderr, /stdio closed; HTTP goes on until a signal/);
    const res = await fetch(srv.url, { method: 'POST', headers: modernHeaders('tools/call', 'test_echo'),
      body: modernBody(1, 'tools/call', { name: 'test_echo', arguments: { alive: true } }) });
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).result.structuredContent, { echo: { alive: true } });
    assert.equal(srv.proc.exitCode, null, 'still running');
    assert.ok(fs.existsSync(file));
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.match(r.stderr, /"http: stopped"/);
    assert.equal(r.urlFileLeft, false, 'http.json is removed at a clean stop');
  }
});
