// The 2026-07-28 side of prompts, resources, completion, subscriptions and client input
// (multi round-trip requests with requestState), and the wire order of notifications, over raw
// newline-delimited JSON-RPC on stdio against `peermcp serve --conformance-fixtures`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawServer, scratch, MODERN_META } from './common.mjs';

let sc, srv;
let nextId = 1;
const ALL = { sampling: {}, elicitation: {}, roots: { listChanged: true } };
const meta = (caps = ALL, extra = {}) => ({ ...MODERN_META, 'io.modelcontextprotocol/clientCapabilities': caps, ...extra });

before(() => {
  sc = scratch({ page_size: 100 });
  sc.args.push('--conformance-fixtures');
  srv = new RawServer(sc);
});

after(async () => {
  srv.end();
  const { code } = await srv.exited;
  assert.equal(code, 0, srv.stderr.slice(-2000));
  assert.deepEqual(srv.badStdout, []);
  sc.cleanup();
});

async function call(method, params) {
  const id = nextId++;
  return srv.request({ jsonrpc: '2.0', id, method, params });
}
const tool = (name, extra = {}, caps = ALL) => call('tools/call', { name, arguments: {}, ...extra, _meta: meta(caps) });

test('2026-07-28: an InputRequiredResult with requestState, then the complete result', async () => {
  const r1 = await tool('test_input_required_result_elicitation');
  assert.equal(r1.result.resultType, 'input_required');
  assert.equal(r1.result.inputRequests.user_name.method, 'elicitation/create');
  assert.equal(typeof r1.result.requestState, 'string');
  assert.ok(r1.result._meta['io.modelcontextprotocol/serverInfo']);
  const r2 = await tool('test_input_required_result_elicitation', {
    inputResponses: { user_name: { action: 'accept', content: { name: 'Alice' } } },
    requestState: r1.result.requestState,
  });
  assert.equal(r2.result.resultType, 'complete');
  assert.equal(r2.result.content[0].text, 'Hello, Alice!');
  // no server-to-client request ever went out in this era
  assert.ok(!srv.lines.some((m) => m.method && m.id !== undefined));
});

test('2026-07-28: requestState is integrity-protected and bound to its request', async () => {
  const r1 = await tool('test_input_required_result_tampered_state');
  const good = r1.result.requestState;
  const answers = { inputResponses: { confirm: { action: 'accept', content: { ok: true } } } };
  const bad = await tool('test_input_required_result_tampered_state', { ...answers, requestState: `${good}-TAMPERED` });
  assert.equal(bad.error.code, -32602);
  const other = await tool('test_input_required_result_request_state', { ...answers, requestState: good });
  assert.equal(other.error.code, -32602, 'a state made for another tool');
  const ok = await tool('test_input_required_result_tampered_state', { ...answers, requestState: good });
  assert.equal(ok.result.content[0].text, 'integrity-ok: state verified');
  const st = await tool('test_input_required_result_request_state');
  const done = await tool('test_input_required_result_request_state', { ...answers, requestState: st.result.requestState });
  assert.match(done.result.content[0].text, /state-ok/);
});

test('2026-07-28: multi-round, multiple inputs, capabilities, bad inputResponses', async () => {
  const r1 = await tool('test_input_required_result_multi_round');
  assert.ok(r1.result.inputRequests.step1);
  const r2 = await tool('test_input_required_result_multi_round', {
    inputResponses: { step1: { action: 'accept', content: { name: 'Bob' } } }, requestState: r1.result.requestState,
  });
  assert.ok(r2.result.inputRequests.step2);
  assert.notEqual(r2.result.requestState, r1.result.requestState);
  const r3 = await tool('test_input_required_result_multi_round', {
    inputResponses: { step2: { action: 'accept', content: { color: 'blue' } } }, requestState: r2.result.requestState,
  });
  assert.equal(r3.result.content[0].text, 'Multi-round complete for Bob who likes blue');

  const m = await tool('test_input_required_result_multiple_inputs');
  assert.deepEqual(Object.keys(m.result.inputRequests).sort(), ['client_roots', 'greeting', 'user_name']);

  const caps = await tool('test_input_required_result_capabilities', {}, { sampling: {} });
  assert.deepEqual(Object.values(caps.result.inputRequests).map((q) => q.method), ['sampling/createMessage']);

  const missing = await tool('test_missing_capability', {}, {});
  assert.equal(missing.error.code, -32021);
  assert.deepEqual(missing.error.data.requiredCapabilities, { sampling: {} });

  const wrong = await tool('test_input_required_result_elicitation', { inputResponses: { wrong_key: { action: 'accept' } } });
  assert.equal(wrong.result.resultType, 'input_required', 'asks again instead of failing');
  const extra = await tool('test_input_required_result_elicitation', {
    inputResponses: { user_name: { action: 'accept', content: { name: 'Al' } }, other: { action: 'accept' } },
  });
  assert.equal(extra.result.content[0].text, 'Hello, Al!');
  assert.equal((await tool('test_input_required_result_elicitation', { inputResponses: { user_name: 12345 } })).error.code, -32602);
  assert.equal((await tool('test_input_required_result_elicitation', { inputResponses: null })).error.code, -32602);
});

test('2026-07-28: prompts/get may need input too; lists and reads carry caching hints', async () => {
  const p1 = await call('prompts/get', { name: 'test_input_required_result_prompt', _meta: meta() });
  assert.equal(p1.result.resultType, 'input_required');
  const p2 = await call('prompts/get', {
    name: 'test_input_required_result_prompt', _meta: meta(),
    inputResponses: { user_context: { action: 'accept', content: { context: 'tests' } } }, requestState: p1.result.requestState,
  });
  assert.equal(p2.result.messages[0].content.text, 'Prompt with context: tests');
  for (const method of ['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list']) {
    const r = await call(method, { _meta: meta() });
    assert.equal(r.result.resultType, 'complete', method);
    assert.ok(Number.isInteger(r.result.ttlMs) && r.result.ttlMs >= 0, method);
    assert.ok(['public', 'private'].includes(r.result.cacheScope), method);
  }
  const read = await call('resources/read', { uri: 'test://static-text', _meta: meta() });
  assert.equal(read.result.resultType, 'complete');
  assert.ok(Number.isInteger(read.result.ttlMs));
  const gone = await call('resources/read', { uri: 'test://nonexistent-resource', _meta: meta() });
  assert.equal(gone.error.code, -32602);
  assert.equal(gone.error.data.uri, 'test://nonexistent-resource');
  const c = await call('completion/complete', {
    ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' }, argument: { name: 'arg1', value: 'test' }, _meta: meta(),
  });
  assert.deepEqual(c.result.completion.values, ['test', 'testing']);
});

test('2026-07-28: removed methods are -32601 with the id echoed', async () => {
  for (const method of ['initialize', 'ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe', 'unknown/method']) {
    const id = `m-${method}`;
    const r = await srv.request({ jsonrpc: '2.0', id, method, params: { _meta: meta() } });
    assert.equal(r.error.code, -32601, method);
    assert.equal(r.id, id);
  }
});

test('2026-07-28: log notifications only when the request asks for a level', async () => {
  const before = srv.lines.length;
  await tool('test_logging_tool');
  assert.ok(!srv.lines.slice(before).some((m) => m.method === 'notifications/message'));
  const id = nextId++;
  await srv.request({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'test_logging_tool', arguments: {}, _meta: meta(ALL, { 'io.modelcontextprotocol/logLevel': 'info' }) } });
  assert.ok(srv.lines.slice(before).some((m) => m.method === 'notifications/message' && m.params.level === 'info'));
});

test('2026-07-28: subscriptions/listen with resourceSubscriptions gets tagged updates', async () => {
  const lid = 'listen-1';
  await srv.send({ jsonrpc: '2.0', id: lid, method: 'subscriptions/listen', params: {
    _meta: meta(), notifications: { toolsListChanged: true, resourceSubscriptions: ['test://watched-resource', 'test://static-text'] } } });
  const ack = await srv.waitFor((m) => m.method === 'notifications/subscriptions/acknowledged');
  assert.equal(ack.params._meta['io.modelcontextprotocol/subscriptionId'], lid);
  assert.deepEqual(ack.params.notifications, { resourceSubscriptions: ['test://watched-resource'] });
  await tool('test_update_watched_resource');
  const upd = await srv.waitFor((m) => m.method === 'notifications/resources/updated');
  assert.equal(upd.params.uri, 'test://watched-resource');
  assert.equal(upd.params._meta['io.modelcontextprotocol/subscriptionId'], lid);
  await srv.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: lid } });
  // the stream ended without a response; another request is answered normally
  const p = await call('prompts/list', { _meta: meta() });
  assert.ok(p.result.prompts.length > 0);
  assert.ok(!srv.lines.some((m) => m.id === lid));
});

test('2025-11-25: progress and log notifications precede the response on the wire', async () => {
  await srv.request({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  const from = srv.lines.length;
  const id = nextId++;
  await srv.request({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'test_tool_with_progress', arguments: {}, _meta: { progressToken: 'p-1' } } });
  const seen = srv.lines.slice(from);
  const at = seen.findIndex((m) => m.id === id);
  const progress = seen.slice(0, at).filter((m) => m.method === 'notifications/progress' && m.params.progressToken === 'p-1');
  assert.deepEqual(progress.map((m) => m.params.progress), [0, 50, 100]);
  // a legacy client that declared no sampling: the tool says so in its result
  const r = await srv.request({ jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name: 'test_sampling', arguments: { prompt: 'x' } } });
  assert.equal(r.result.isError, true);
  assert.match(r.result.content[0].text, /does not support sampling/);
});
