// The MCP Inspector CLI (a second, independent client) against peermcp's HTTP URL.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpServer } from './common.mjs';

const testsDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const inspector = path.join(testsDir, 'node_modules/.bin/mcp-inspector');
let srv, home;

before(async () => {
  srv = await HttpServer.start();
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'peermcp-inspector-')); // its catalog lives in $HOME
});

after(async () => {
  if (home) fs.rmSync(home, { recursive: true, force: true });
  if (!srv) return;
  const r = await srv.stop();
  assert.equal(r.code, 0, r.stderr.slice(-3000));
});

function cli(...args) {
  return new Promise((resolve, reject) => {
    // Inspector 2.x needs Node >= 22.19: run it with the node the tests pin (tests/package.json)
    const env = { ...process.env, HOME: home, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}` };
    execFile(inspector, ['--cli', srv.url, ...args], { env, timeout: 120000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`inspector ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

test('inspector --cli URL --method tools/list', async () => {
  const r = await cli('--method', 'tools/list');
  const names = r.tools.map((t) => t.name);
  for (const n of ['server_info', 'test_echo']) assert.ok(names.includes(n), `${n} listed`);
});

test('inspector --cli URL --method tools/call', async () => {
  const r = await cli('--method', 'tools/call', '--tool-name', 'test_echo', '--tool-arg', 'word=inspected');
  assert.equal(r.isError, false);
  assert.deepEqual(r.structuredContent, { echo: { word: 'inspected' } });
});

test('inspector --cli URL --method tools/call of an unknown tool fails', async () => {
  await assert.rejects(cli('--method', 'tools/call', '--tool-name', 'no_such_tool'), /no_such_tool/);
});
