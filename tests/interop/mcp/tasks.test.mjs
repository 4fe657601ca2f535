// MCP Tasks over stdio: the official TypeScript SDK's experimental tasks client (2025-11-25
// tasks) against peermcp, raw JSON-RPC for the 2026-07-28 io.modelcontextprotocol/tasks
// extension, and durability (a task survives kill -9 of the server). Test tools: echo, sleep
// (PEERMCP_TEST_TOOLS=1); tasks run on serve's in-process runner (p2p.workers = 0), which
// also takes back, at start, the tasks a killed predecessor was running.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, CreateTaskResultSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import { RawServer, peermcpBin, scratch, serverEnv } from './common.mjs';

let sc, client, stderr = '';

before(async () => {
  sc = scratch();
  const transport = new StdioClientTransport({ command: peermcpBin(), args: sc.args, env: serverEnv(), stderr: 'pipe' });
  transport.stderr.on('data', (d) => { stderr += d; });
  client = new Client({ name: 'peermcp-tasks', version: '1.0.0' }, { capabilities: { tasks: { list: {}, cancel: {} } } });
  await client.connect(transport);
});

after(async () => {
  await client?.close();
  sc?.cleanup();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function createTask(name, args, ttl = 60000) {
  const r = await client.request({ method: 'tools/call', params: { name, arguments: args, task: { ttl } } },
    CreateTaskResultSchema);
  return r.task;
}

async function waitStatus(taskId, want, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const t = await client.experimental.tasks.getTask(taskId);
    if (t.status === want) return t;
    if (Date.now() > deadline) throw new Error(`task ${taskId} still ${t.status}, wanted ${want}\n${stderr.slice(-2000)}`);
    await sleep(50);
  }
}

test('initialize advertises the tasks capability; tools declare execution.taskSupport', async () => {
  const caps = client.getServerCapabilities();
  assert.ok(caps.tasks?.requests?.tools?.call, 'tasks.requests.tools.call');
  assert.ok(caps.tasks.list && caps.tasks.cancel);
  const support = {};
  let cursor;
  do {
    const r = await client.listTools(cursor ? { cursor } : {});
    for (const t of r.tools) support[t.name] = t.execution?.taskSupport;
    cursor = r.nextCursor;
  } while (cursor);
  assert.equal(support.echo, 'optional');
  assert.equal(support.sleep, 'optional');
  assert.equal(support.fail, 'forbidden'); // not remotely callable: workers could not run it
});

test('callToolStream: task created, polled, result delivered', async () => {
  const seen = [];
  let result;
  for await (const m of client.experimental.tasks.callToolStream({ name: 'echo', arguments: { hello: 'tasks' } },
    CallToolResultSchema, { task: { ttl: 60000 } })) {
    seen.push(m.type);
    if (m.type === 'taskCreated') {
      assert.match(m.task.taskId, /^[0-9a-f]{32}$/);
      assert.equal(m.task.status, 'working');
      assert.equal(m.task.ttl, 60000);
      assert.ok(!Number.isNaN(Date.parse(m.task.createdAt)));
    }
    if (m.type === 'error') throw m.error;
    if (m.type === 'result') result = m.result;
  }
  assert.equal(seen[0], 'taskCreated');
  assert.equal(result.isError, false);
  assert.deepEqual(result.structuredContent, { hello: 'tasks' });
});

test('tasks/result blocks until the task completes and carries related-task _meta', async () => {
  const task = await createTask('sleep', { ms: 1500 }); // the run may start before t0: keep a margin
  const t0 = Date.now();
  const res = await client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema);
  assert.ok(Date.now() - t0 >= 200, 'waited for the run');
  assert.equal(res.isError, false);
  assert.equal(res.structuredContent.cancelled, false);
  assert.equal(res._meta['io.modelcontextprotocol/related-task'].taskId, task.taskId);
  const t = await client.experimental.tasks.getTask(task.taskId);
  assert.equal(t.status, 'completed');
});

test('a tool error ends the task failed; tasks/result returns the isError result', async () => {
  const task = await createTask('sleep', { ms: -5 }); // fails the input schema at run time
  const t = await waitStatus(task.taskId, 'failed');
  assert.ok(t.statusMessage);
  const res = await client.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema);
  assert.equal(res.isError, true);
});

test('tasks/list pages through the caller\'s tasks', async () => {
  const ids = new Set();
  for (let i = 0; i < 3; i++) ids.add((await createTask('echo', { i })).taskId);
  const listed = [];
  let cursor, pages = 0;
  do {
    const r = await client.experimental.tasks.listTasks(cursor);
    listed.push(...r.tasks.map((t) => t.taskId));
    cursor = r.nextCursor;
    pages++;
    assert.ok(pages < 50);
  } while (cursor);
  for (const id of ids) assert.ok(listed.includes(id), `listed ${id}`);
  assert.ok(pages >= 2, 'page size 2 → several pages');
  assert.equal(new Set(listed).size, listed.length, 'no task twice');
});

test('tasks/cancel stops a running task; cancelling again is -32602', async () => {
  const task = await createTask('sleep', { ms: 30000, steps: 300 });
  await waitStatus(task.taskId, 'working');
  await sleep(200); // let the runner claim it
  const c = await client.experimental.tasks.cancelTask(task.taskId);
  assert.equal(c.status, 'cancelled');
  const t = await client.experimental.tasks.getTask(task.taskId);
  assert.equal(t.status, 'cancelled');
  await assert.rejects(client.experimental.tasks.cancelTask(task.taskId),
    (e) => e instanceof McpError && e.code === -32602);
  await assert.rejects(client.experimental.tasks.getTask('0'.repeat(32)),
    (e) => e instanceof McpError && e.code === -32602);
});

test('a forbidden tool called as a task is -32601', async () => {
  await assert.rejects(createTask('fail', {}), (e) => e instanceof McpError && e.code === -32601);
});

// ---------- raw JSON-RPC: modern era and durability ----------

const EXT_META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': { extensions: { 'io.modelcontextprotocol/tasks': {} } },
};

test('2026-07-28 extension: server/discover, resultType task, tasks/get with the result inline', async () => {
  const s2 = scratch();
  const srv = new RawServer(s2);
  try {
    const d = await srv.request({ jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: EXT_META } });
    assert.ok(d.result.capabilities.extensions['io.modelcontextprotocol/tasks']);
    const c = await srv.request({ jsonrpc: '2.0', id: 2, method: 'tools/call',
      params: { name: 'echo', arguments: { m: 1 }, _meta: EXT_META } });
    assert.equal(c.result.resultType, 'task');
    assert.equal(c.result.status, 'working');
    assert.equal(typeof c.result.ttlSeconds, 'number');
    const id = c.result.taskId;
    let g;
    for (let i = 0; i < 200; i++) {
      g = await srv.request({ jsonrpc: '2.0', id: 100 + i, method: 'tasks/get', params: { taskId: id, _meta: EXT_META } });
      if (g.result.status !== 'working') break;
      await sleep(250); // up to ~50 s on a loaded machine
    }
    assert.equal(g.result.resultType, 'complete');
    assert.equal(g.result.status, 'completed');
    assert.deepEqual(g.result.result.structuredContent, { m: 1 });
    // the optional status notification, with the DetailedTask of SEP-2663
    const note = await srv.waitFor((m) => m.method === 'notifications/tasks/status' && m.params?.taskId === id, 5000);
    assert.equal(note.params.status, 'completed');
    assert.deepEqual(note.params.result.structuredContent, { m: 1 });
    const u = await srv.request({ jsonrpc: '2.0', id: 3, method: 'tasks/update',
      params: { taskId: id, inputResponses: {}, _meta: EXT_META } });
    assert.equal(u.result.resultType, 'complete');
    const k = await srv.request({ jsonrpc: '2.0', id: 4, method: 'tasks/cancel',
      params: { taskId: 'no-such-task', _meta: EXT_META } });
    assert.equal(k.result.resultType, 'complete'); // an acknowledgement, whatever the id
  } finally {
    srv.end();
    await srv.exited;
    s2.cleanup();
  }
});

test('a task survives kill -9 of the server: created before the reply, found after restart', async () => {
  const s3 = scratch();
  try {
    const a = new RawServer(s3);
    await a.request({ jsonrpc: '2.0', id: 1, method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'dur', version: '1' } } });
    const c = await a.request({ jsonrpc: '2.0', id: 2, method: 'tools/call',
      params: { name: 'sleep', arguments: { ms: 60000, steps: 600 }, task: { ttl: 600000 } } });
    const id = c.result.task.taskId;
    a.proc.kill('SIGKILL'); // right after CreateTaskResult
    await a.exited;

    const b = new RawServer(s3);
    try {
      await b.request({ jsonrpc: '2.0', id: 1, method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'dur', version: '1' } } });
      const g = await b.request({ jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { taskId: id } });
      assert.equal(g.result?.taskId, id, JSON.stringify(g));
      assert.equal(g.result.status, 'working');
      assert.equal(g.result.ttl, 600000);
      // the dead process's run is released at once (not after the lease) and runs again here
      let again = g;
      for (let i = 0; i < 100 && !again.result.statusMessage?.includes(`mcp-tasks/${b.proc.pid}/`); i++) {
        await sleep(500); // up to ~50 s on a loaded machine
        again = await b.request({ jsonrpc: '2.0', id: 1000 + i, method: 'tasks/get', params: { taskId: id } });
      }
      assert.match(again.result.statusMessage, new RegExp(`running on worker mcp-tasks/${b.proc.pid}/`));
      const l = await b.request({ jsonrpc: '2.0', id: 3, method: 'tasks/list', params: {} });
      assert.ok(l.result.tasks.some((t) => t.taskId === id));
      const k = await b.request({ jsonrpc: '2.0', id: 4, method: 'tasks/cancel', params: { taskId: id } });
      assert.equal(k.result.status, 'cancelled');
    } finally {
      b.end();
      const ex = await b.exited;
      assert.equal(ex.code, 0, b.stderr.slice(-2000));
    }
  } finally {
    s3.cleanup();
  }
});
