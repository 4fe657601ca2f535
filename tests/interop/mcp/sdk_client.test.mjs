// peermcp driven by the official MCP TypeScript SDK Client over StdioClientTransport
// (legacy era: the SDK negotiates 2025-11-25 through initialize).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { execFileSync } from 'node:child_process';
import { peermcpBin, scratch, serverEnv } from './common.mjs';

// A unique sleep argument, so the test can tell whether its process group was killed.
const SLEEP_ARG = `${30 + (process.pid % 1000) / 1000}`;
function sleepersAlive() {
  try { return execFileSync('pgrep', ['-f', `^/bin/sleep ${SLEEP_ARG}$`]).toString().trim().length > 0; }
  catch { return false; }
}

let sc, client, transport, stderr = '';

before(async () => {
  sc = scratch({
    tools: {
      commands: [
        { name: 'cmd_cat', description: 'returns its JSON arguments', argv: ['/bin/cat'],
          input_schema: { type: 'object', properties: { word: { type: 'string' } }, required: ['word'] } },
        { name: 'cmd_sleep', description: 'sleeps', argv: ['/bin/sleep', SLEEP_ARG], timeout_ms: 60000 },
      ],
    },
  });
  transport = new StdioClientTransport({ command: peermcpBin(), args: sc.args, env: serverEnv(), stderr: 'pipe' });
  transport.stderr.on('data', (d) => { stderr += d; });
  client = new Client({ name: 'peermcp-interop', version: '1.0.0' });
  await client.connect(transport);
});

after(async () => {
  await client?.close();
  sc?.cleanup();
});

async function allTools() {
  const names = [];
  let cursor, pages = 0;
  do {
    const r = await client.listTools(cursor ? { cursor } : {});
    names.push(...r.tools.map((t) => t.name));
    cursor = r.nextCursor;
    pages++;
    assert.ok(pages < 100, 'pagination terminates');
  } while (cursor);
  return { names, pages };
}

test('initialize negotiates 2025-11-25 and advertises tools, logging, completions', () => {
  const info = client.getServerVersion();
  assert.equal(info.name, 'peermcp');
  const caps = client.getServerCapabilities();
  assert.ok(caps.tools);
  assert.ok(caps.logging);
  assert.ok(caps.completions);
});

test('ping answers', async () => {
  assert.deepEqual(await client.ping(), {});
});

test('tools/list paginates with an opaque cursor, in category/name order', async () => {
  const { names, pages } = await allTools();
  assert.ok(pages >= 3, `page_size 2 should need several pages, got ${pages}`);
  for (const n of ['server_info', 'tools_list_categories', 'tools_list_tools', 'tools_get_schema', 'tools_dispatch', 'test_slow', 'test_echo'])
    assert.ok(names.includes(n), `${n} listed`);
  assert.equal(new Set(names).size, names.length, 'no duplicates across pages');
  await assert.rejects(client.listTools({ cursor: 'not-a-cursor' }), (e) => e instanceof McpError && e.code === -32602);
});

test('server_info returns version, uptime, eras and counts as structured content', async () => {
  const r = await client.callTool({ name: 'server_info', arguments: {} });
  assert.equal(r.isError, false);
  assert.equal(r.structuredContent.name, 'peermcp');
  assert.ok(r.structuredContent.uptime_seconds >= 0);
  assert.deepEqual(r.structuredContent.protocol_eras.modern, ['2026-07-28']);
  assert.ok(r.structuredContent.tools.total >= 7);
  assert.deepEqual(JSON.parse(r.content[0].text), r.structuredContent);
});

test('tools_list_categories lists categories with counts', async () => {
  const r = await client.callTool({ name: 'tools_list_categories', arguments: { include_count: true } });
  assert.equal(r.isError, false);
  const s = r.structuredContent;
  assert.equal(s.status, 'success');
  const sys = s.categories.find((c) => c.name === 'system');
  assert.ok(sys, 'system category present');
  assert.equal(sys.tool_count, 1);
});

test('tools_list_tools lists a category', async () => {
  const r = await client.callTool({ name: 'tools_list_tools', arguments: { category: 'system' } });
  assert.equal(r.isError, false);
  assert.ok(r.structuredContent.tools.some((t) => t.name === 'server_info'));
});

test('tools_get_schema answers a real JSON Schema', async () => {
  const r = await client.callTool({ name: 'tools_get_schema', arguments: { category: 'test', tool: 'test_slow' } });
  assert.equal(r.isError, false);
  const schema = r.structuredContent.schema;
  assert.equal(schema.name, 'test_slow');
  assert.equal(schema.inputSchema.type, 'object');
  assert.equal(schema.inputSchema.properties.ms.type, 'integer');
});

test('tools_dispatch runs a tool and returns its envelope', async () => {
  const r = await client.callTool({ name: 'tools_dispatch', arguments: { category: 'test', tool: 'test_echo', params: { a: 1 } } });
  assert.equal(r.isError, false);
  const env = r.structuredContent;
  assert.equal(env.status, 'success');
  assert.deepEqual(env.result, { echo: { a: 1 } });
  assert.match(env.request_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(env.category, 'test');
  assert.equal(env.tool, 'test_echo');
  assert.equal(typeof env.duration_ms, 'number');
});

test('tools_dispatch to an unknown category is a tool error listing the categories', async () => {
  const r = await client.callTool({ name: 'tools_dispatch', arguments: { category: 'nope', tool: 'x' } });
  assert.equal(r.isError, true);
  // tools_dispatch has an outputSchema, so an error carries its object in the text block only
  const err = JSON.parse(r.content[0].text);
  assert.equal(err.error_type, 'unknown_category');
  assert.ok(err.available_categories.includes('system'));
  assert.ok(err.request_id);
});

test('a validation failure is a tool error (isError), not a protocol error', async () => {
  const r = await client.callTool({ name: 'test_slow', arguments: { ms: 'soon' } });
  assert.equal(r.isError, true);
  assert.match(r.content[0].text, /ms/);
});

test('an unknown tool is a JSON-RPC invalid-params error', async () => {
  await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }),
    (e) => e instanceof McpError && e.code === -32602 && /no_such_tool/.test(e.message));
});

test('progress notifications echo the progress token and increase', async () => {
  const seen = [];
  const r = await client.callTool({ name: 'test_slow', arguments: { ms: 600, progress_every_ms: 100 } }, undefined,
    { onprogress: (p) => seen.push(p) });
  assert.equal(r.isError, false);
  assert.equal(r.structuredContent.slept_ms, 600);
  assert.ok(seen.length >= 3, `got ${seen.length} progress notifications`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress > seen[i - 1].progress);
  assert.equal(seen.at(-1).total, 600);
});

test('cancelling a slow call reaches the handler and the server keeps serving', async () => {
  const ac = new AbortController();
  const t0 = Date.now();
  const p = client.callTool({ name: 'test_slow', arguments: { ms: 20000 } }, undefined, { signal: ac.signal });
  setTimeout(() => ac.abort('test cancels'), 300);
  await assert.rejects(p);
  assert.ok(Date.now() - t0 < 15000); // not the 20 s call
  // the server logged that the handler was cancelled, and answers the next call
  const deadline = Date.now() + 20000;
  while (!/request cancelled by the client/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.match(stderr, /request cancelled by the client/);
  const r = await client.callTool({ name: 'server_info', arguments: {} });
  assert.equal(r.isError, false);
});

test('a command tool gets its arguments as JSON on stdin and returns its stdout', async () => {
  const r = await client.callTool({ name: 'cmd_cat', arguments: { word: 'hello' } });
  assert.equal(r.isError, false);
  assert.deepEqual(r.structuredContent, { word: 'hello' });
  const bad = await client.callTool({ name: 'cmd_cat', arguments: {} });
  assert.equal(bad.isError, true, 'schema validation applies to command tools');
});

test('cancelling a slow command tool kills its process group', async () => {
  const ac = new AbortController();
  const p = client.callTool({ name: 'cmd_sleep', arguments: {} }, undefined, { signal: ac.signal });
  const deadline0 = Date.now() + 20000;
  while (!sleepersAlive() && Date.now() < deadline0) await new Promise((r) => setTimeout(r, 50));
  assert.ok(sleepersAlive(), 'the command is running');
  ac.abort('test cancels the command');
  await assert.rejects(p);
  const deadline = Date.now() + 20000;
  while (sleepersAlive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(sleepersAlive(), false, 'the sleeping process was killed');
});

test('32 concurrent calls are answered and matched by id', async () => {
  const calls = Array.from({ length: 32 }, (_, i) => client.callTool({ name: 'test_echo', arguments: { i } }));
  const results = await Promise.all(calls);
  results.forEach((r, i) => assert.equal(r.structuredContent.echo.i, i));
});

test('logging/setLevel controls notifications/message from tools', async () => {
  const got = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => got.push(n.params));
  assert.deepEqual(await client.setLoggingLevel('info'), {});
  await client.callTool({ name: 'test_slow', arguments: { ms: 10 } });
  assert.ok(got.some((p) => p.level === 'info' && /sleeping 10 ms/.test(String(p.data))), JSON.stringify(got));
  assert.deepEqual(await client.setLoggingLevel('error'), {});
  const n = got.length;
  await client.callTool({ name: 'test_slow', arguments: { ms: 10 } });
  assert.equal(got.length, n, 'info lines are filtered at level error');
});

test('completion/complete and the node\'s own resources and prompts (paginated)', async () => {
  assert.deepEqual(await client.setLoggingLevel('debug'), {});
  await assert.rejects(client.complete({ ref: { type: 'ref/prompt', name: 'x' }, argument: { name: 'a', value: '' } }),
    (e) => e instanceof McpError && e.code === -32602);
  const c = await client.complete({ ref: { type: 'ref/prompt', name: 'peermcp_call_tool' }, argument: { name: 'tool', value: 'server_i' } });
  assert.deepEqual(c.completion.values, ['server_info']);
  async function all(list, key) {
    const out = [];
    let cursor;
    do {
      const r = await list(cursor ? { cursor } : {});
      out.push(...r[key]);
      cursor = r.nextCursor;
    } while (cursor);
    return out;
  }
  const resources = (await all((p) => client.listResources(p), 'resources')).map((r) => r.uri);
  assert.deepEqual(resources.sort(), ['peermcp://queue/stats', 'peermcp://server/info']);
  const templates = (await all((p) => client.listResourceTemplates(p), 'resourceTemplates')).map((t) => t.uriTemplate);
  assert.deepEqual(templates, ['peermcp://task/{task_id}']);
  const prompts = (await all((p) => client.listPrompts(p), 'prompts')).map((p) => p.name);
  assert.deepEqual(prompts, ['peermcp_call_tool', 'peermcp_task_report']);
  /* the conformance fixtures are not in a normal server */
  const tools = await allTools();
  assert.ok(!tools.names.some((n) => n.startsWith('test_input_required_result')));
});
