// An MCP task created on node A runs on another peer's worker: A serves MCP on stdio with its
// own task runner off (PEERMCP_MCP_TASKS_RUNNER=0) and trusts W; `peermcp worker --peer A`
// (process W) claims the task over /mcp+p2p/1.0.0, runs it and completes it on A's queue; the
// MCP client on A sees it run on W and gets the result through tasks/result. Loopback only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RawServer, peermcpBin, serverEnv } from './common.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFile(p, ms = 60000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { if (fs.statSync(p).size > 0) return; } catch {}
    await sleep(50);
  }
  throw new Error(`no ${p}`);
}

test('a task created over MCP on A runs on peer W\'s worker', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peermcp-tasks-remote-'));
  const aState = path.join(dir, 'a'), wState = path.join(dir, 'w');
  fs.mkdirSync(aState);
  fs.mkdirSync(wState);
  let worker, a;
  try {
    const wId = execFileSync(peermcpBin(), ['id', '--state-dir', wState], { env: serverEnv() }).toString().trim();
    assert.match(wId, /^12D3KooW/);
    const cfg = path.join(dir, 'a.json');
    fs.writeFileSync(cfg, JSON.stringify({ p2p: { listen: ['/ip4/127.0.0.1/tcp/0'], trusted_peers: [wId], workers: 0 } }));
    a = new RawServer({ args: ['serve', '--config', cfg, '--state-dir', aState] },
      { env: { PEERMCP_MCP_TASKS_RUNNER: '0' } });
    await waitFile(path.join(aState, 'announce.json'));
    const ma = JSON.parse(fs.readFileSync(path.join(aState, 'announce.json'), 'utf8')).multiaddr;
    await a.request({ jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'remote', version: '1' } } });
    const c = await a.request({ jsonrpc: '2.0', id: 2, method: 'tools/call',
      params: { name: 'sleep', arguments: { ms: 1500, steps: 15 }, task: { ttl: 120000 } } });
    const id = c.result.task.taskId;
    await sleep(300);
    const g0 = await a.request({ jsonrpc: '2.0', id: 3, method: 'tasks/get', params: { taskId: id } });
    assert.equal(g0.result.statusMessage, 'queued', 'nobody on A runs it');

    worker = spawn(peermcpBin(), ['worker', '--peer', ma, '--state-dir', wState, '--slots', '1'],
      { env: serverEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let wErr = '';
    worker.stderr.on('data', (d) => { wErr += d; });
    let g, n = 10;
    for (let i = 0; i < 200; i++) {
      g = await a.request({ jsonrpc: '2.0', id: n++, method: 'tasks/get', params: { taskId: id } });
      if (g.result.statusMessage?.includes(wId) || g.result.status !== 'working') break;
      await sleep(250); // the worker (ASan) may take a while to start on a loaded machine
    }
    assert.ok(g.result.statusMessage?.startsWith(`running on worker ${wId}`), `${JSON.stringify(g)}\n${wErr.slice(-1500)}`);
    const r = await a.request({ jsonrpc: '2.0', id: 500, method: 'tasks/result', params: { taskId: id } }, 30000);
    assert.equal(r.result.isError, false, JSON.stringify(r));
    assert.equal(r.result.structuredContent.cancelled, false);
    assert.ok(r.result.structuredContent.slept_ms >= 1400);
    assert.equal(r.result._meta['io.modelcontextprotocol/related-task'].taskId, id);
  } finally {
    if (worker) {
      worker.kill('SIGTERM');
      await new Promise((res) => (worker.exitCode !== null ? res() : worker.on('exit', res)));
    }
    if (a) {
      a.end();
      const ex = await a.exited;
      assert.equal(ex.code, 0, a.stderr.slice(-2000));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
