// bench.mjs — bench-mcp: the same trivial tool served by peermcp and by the official TypeScript
// SDK (ts-server.mjs), driven by the same Node client, sequentially and with 32 calls in flight.
// Reports calls/s, p50/p99 latency and the servers' peak RSS (VmHWM), and their ratios.
//
// Two clients, both run against both servers:
//   raw — a minimal newline-delimited JSON-RPC client (JSON.stringify / JSON.parse per message),
//         so the figures measure the servers rather than client-side validation;
//   sdk — the official SDK Client over StdioClientTransport (callTool), as an MCP app would.
//
//   c   — bench/mcp/driver.c, a pipelined C client (--driver BIN): the client costs ~1 µs per call,
//         so the servers set the pace; its server CPU per call is the figure issue 11 §1 targets.
// --profile FILE: a callgrind summary (bench/mcp/profile.sh) included in the section.
//
// usage: node bench.mjs --peermcp BIN [--driver BIN] [--seconds S] [--json OUT]
//                       [--results FILE --machine FILE [--profile FILE]]
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(new URL('../../tests/package.json', import.meta.url));

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const SECONDS = Number(args.seconds ?? 3);
const WARMUP = 300;
const WARMUP_SECONDS = Number(args.warmup ?? 1.5);
const TRIALS = Math.max(1, Number(args.trials ?? 3));
const INFLIGHT = 32;
// c: bench/mcp/driver.c (--driver BIN), the measure of the servers; raw, sdk: Node clients.
const CLIENTS = args.driver ? ['c', 'raw', 'sdk'] : ['raw', 'sdk'];
const PROTOCOL = '2025-06-18';

function vm(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) || [])[1] || 0);
    return { hwm_kb: get('VmHWM'), rss_kb: get('VmRSS') };
  } catch {
    return { hwm_kb: 0, rss_kb: 0 };
  }
}

// CPU time (user + system) the process has used so far, in ms (clock ticks are 10 ms).
function cpuMs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

function pct(sorted, p) {
  if (!sorted.length) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summarize(lat, seconds, cpu) {
  const s = Float64Array.from(lat).sort();
  return {
    calls: lat.length,
    server_cpu_us_per_call: lat.length ? +((cpu * 1000) / lat.length).toFixed(1) : 0,
    seconds: +seconds.toFixed(3),
    calls_per_s: Math.round(lat.length / seconds),
    p50_ms: +pct(s, 50).toFixed(4),
    p99_ms: +pct(s, 99).toFixed(4),
  };
}

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

// ---------- raw client ----------
class RawClient {
  constructor(cmd, argv, env) {
    this.child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'ignore'], env });
    this.pending = new Map();
    this.nextId = 1;
    this.buf = '';
    this.out = [];
    this.flushQueued = false;
    this.child.stdin.on('error', () => {}); // EPIPE when the server died: reported via 'exit'
    this.child.on('error', (e) => console.error(`bench-mcp: cannot start ${cmd}: ${e.message}`));
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (d) => {
      // split once per chunk; keep the unfinished tail
      const parts = (this.buf + d).split('\n');
      this.buf = parts.pop();
      for (const line of parts) {
        if (!line) continue;
        const msg = JSON.parse(line);
        if (msg.id === undefined || msg.method) continue; // notifications / server requests
        const p = this.pending.get(msg.id);
        if (p) {
          this.pending.delete(msg.id);
          p(msg);
        }
      }
    });
    this.exited = new Promise((r) =>
      this.child.on('exit', (code, sig) => {
        // a server that dies must fail the run, not hang it
        for (const p of this.pending.values()) p({ error: { message: `server exited (${code ?? sig})` } });
        this.pending.clear();
        r();
      }),
    );
  }
  get pid() {
    return this.child.pid;
  }
  request(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (msg) => (msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result)));
      this.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }
  // Messages produced in the same tick go out in one write (what a pipelining client does).
  send(line) {
    this.out.push(line);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        const data = this.out.join('\n') + '\n';
        this.out = [];
        this.child.stdin.write(data);
      });
    }
  }
  notify(method, params) {
    this.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
  }
  async init() {
    await this.request('initialize', {
      protocolVersion: PROTOCOL,
      capabilities: {},
      clientInfo: { name: 'bench-mcp-raw', version: '1.0.0' },
    });
    this.notify('notifications/initialized', {});
  }
  async listTools() {
    const names = [];
    let cursor;
    do {
      const r = await this.request('tools/list', cursor ? { cursor } : {});
      for (const t of r.tools) names.push(t.name);
      cursor = r.nextCursor;
    } while (cursor);
    return names;
  }
  call(name, a) {
    return this.request('tools/call', { name, arguments: a });
  }
  async close() {
    this.child.stdin.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

// ---------- SDK client ----------
async function sdkClient(cmd, argv, env) {
  const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
  const { StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js');
  const transport = new StdioClientTransport({ command: cmd, args: argv, env, stderr: 'ignore' });
  const client = new Client({ name: 'bench-mcp-sdk', version: '1.0.0' });
  await client.connect(transport);
  return {
    get pid() {
      return transport.pid;
    },
    async listTools() {
      const names = [];
      let cursor;
      do {
        const r = await client.listTools(cursor ? { cursor } : {});
        for (const t of r.tools) names.push(t.name);
        cursor = r.nextCursor;
      } while (cursor);
      return names;
    },
    call: (name, a) => client.callTool({ name, arguments: a }),
    close: () => client.close(),
  };
}

function check(r) {
  if (!r || r.isError || !r.structuredContent) throw new Error('bad tool result: ' + JSON.stringify(r));
}

async function sequential(c, tool, seconds) {
  for (let i = 0; i < WARMUP; i++) check(await c.call(tool, { text: 'hello', n: i }));
  const lat = [];
  const cpu0 = cpuMs(c.pid);
  const t0 = now();
  const end = t0 + seconds * 1000;
  let i = 0;
  while (now() < end) {
    const s = now();
    const r = await c.call(tool, { text: 'hello', n: i++ });
    lat.push(now() - s);
    check(r);
  }
  return summarize(lat, (now() - t0) / 1000, cpuMs(c.pid) - cpu0);
}

async function concurrent(c, tool, seconds) {
  await Promise.all(Array.from({ length: INFLIGHT }, (_, i) => c.call(tool, { text: 'warm', n: i })));
  const lat = [];
  const cpu0 = cpuMs(c.pid);
  const t0 = now();
  const end = t0 + seconds * 1000;
  let i = 0;
  async function lane() {
    while (now() < end) {
      const s = now();
      const r = await c.call(tool, { text: 'hello', n: i++ });
      lat.push(now() - s);
      check(r);
    }
  }
  await Promise.all(Array.from({ length: INFLIGHT }, lane));
  return summarize(lat, (now() - t0) / 1000, cpuMs(c.pid) - cpu0);
}

// ---------- C driver (bench/mcp/driver.c) ----------
// The same three phases, run by mcp_bench_driver: pipelined, in C, so the client costs ~1 µs per
// call and the servers, not the client, set the pace. It checks every response itself.
function driverRun(kind, server) {
  return new Promise((resolve, reject) => {
    const argv = ['--inflight', String(INFLIGHT), '--seconds', String(SECONDS), '--warmup', String(WARMUP_SECONDS),
      '--seq-seconds', String(SECONDS), '--tool', 'echo', '--label', kind, '--', server.cmd, ...server.argv];
    const child = spawn(args.driver, argv, { stdio: ['ignore', 'pipe', 'ignore'], env: server.env });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`mcp_bench_driver on ${kind} exited with ${code}: ${out.trim()}`));
      const j = JSON.parse(out);
      const phase = (p) => ({
        calls: p.calls,
        server_cpu_us_per_call: +p.server_cpu_us_per_call.toFixed(1),
        seconds: p.seconds,
        calls_per_s: p.calls_per_s,
        p50_ms: p.p50_ms,
        p99_ms: p.p99_ms,
      });
      resolve({ server: kind, client: 'c', tool: j.tool, sequential: phase(j.sequential), concurrent32: phase(j.concurrent),
        hwm_kb: j.hwm_kb, rss_kb: j.rss_kb, driver_cpu_us_per_call: j.concurrent.driver_cpu_us_per_call });
    });
  });
}

async function measure(kind, server, clientKind) {
  if (clientKind === 'c') return driverRun(kind, server);
  const c = clientKind === 'raw' ? new RawClient(server.cmd, server.argv, server.env) : await sdkClient(server.cmd, server.argv, server.env);
  if (clientKind === 'raw') await c.init();
  const tools = await c.listTools();
  const tool = server.pickTool(tools);
  if (!tool) throw new Error(`${kind}: no echo tool in tools/list (${tools.join(', ')})`);
  // Warm up (V8 needs thousands of calls to optimise; a long-running server is warm): 32 in
  // flight for WARMUP_SECONDS, discarded.
  await concurrent(c, tool, WARMUP_SECONDS);
  const seq = await sequential(c, tool, SECONDS);
  const conc = await concurrent(c, tool, SECONDS);
  const mem = vm(c.pid);
  await c.close();
  return { server: kind, client: clientKind, tool, sequential: seq, concurrent32: conc, ...mem };
}

// ---------- main ----------
const node = process.execPath;
const peermcp = args.peermcp;
if (!peermcp || !existsSync(peermcp)) {
  console.error('bench.mjs: --peermcp BIN is required (build it with `make`)');
  process.exit(2);
}
const scratch = mkdtempSync(join(tmpdir(), 'bench-mcp-'));
const baseEnv = { PATH: process.env.PATH, HOME: scratch, XDG_CONFIG_HOME: join(scratch, 'config'), XDG_STATE_HOME: join(scratch, 'state') };
const servers = {
  peermcp: {
    cmd: peermcp,
    argv: ['serve', '--no-p2p', '--state-dir', join(scratch, 'state'), '--log-level', 'warning'],
    env: { ...baseEnv, PEERMCP_TEST_TOOLS: '1' },
    pickTool: (t) => ['echo', 'test_echo'].find((n) => t.includes(n)),
  },
  typescript: {
    cmd: node,
    argv: [join(here, 'ts-server.mjs')],
    env: baseEnv,
    pickTool: (t) => (t.includes('echo') ? 'echo' : undefined),
  },
};

// A watchdog: a stuck server or client must not hang `make bench-mcp`.
const watchdog = setTimeout(() => {
  console.error('bench-mcp: timed out');
  process.exit(1);
}, Math.max(120, TRIALS * 6 * (WARMUP_SECONDS + 2 * SECONDS + 5) * 3) * 1000);
watchdog.unref();

const results = [];
try {
  // TRIALS runs of each (client, server) pair, interleaved so that load from other work on the
  // machine hits both servers alike; the run with the median 32-in-flight calls/s is reported.
  for (const clientKind of CLIENTS) {
    const runs = { peermcp: [], typescript: [] };
    for (let trial = 0; trial < TRIALS; trial++) {
      for (const kind of ['peermcp', 'typescript']) {
        const r = await measure(kind, servers[kind], clientKind);
        runs[kind].push(r);
        console.error(
          `${clientKind.padEnd(3)} ${kind.padEnd(10)} #${trial + 1} seq ${r.sequential.calls_per_s} calls/s p50 ${r.sequential.p50_ms} ms p99 ${r.sequential.p99_ms} ms | ` +
            `32 in flight ${r.concurrent32.calls_per_s} calls/s p50 ${r.concurrent32.p50_ms} ms p99 ${r.concurrent32.p99_ms} ms ` +
            `${r.concurrent32.server_cpu_us_per_call} us cpu/call | peak RSS ${(r.hwm_kb / 1024).toFixed(1)} MiB`,
        );
      }
    }
    for (const kind of ['peermcp', 'typescript']) {
      const sorted = [...runs[kind]].sort((a, b) => a.concurrent32.calls_per_s - b.concurrent32.calls_per_s);
      const med = sorted[Math.floor(sorted.length / 2)];
      med.trials = runs[kind].map((r) => ({
        sequential_calls_per_s: r.sequential.calls_per_s,
        concurrent32_calls_per_s: r.concurrent32.calls_per_s,
        server_cpu_us_per_call: r.concurrent32.server_cpu_us_per_call,
      }));
      results.push(med);
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

const ratios = {};
for (const clientKind of CLIENTS) {
  const p = results.find((r) => r.server === 'peermcp' && r.client === clientKind);
  const t = results.find((r) => r.server === 'typescript' && r.client === clientKind);
  ratios[clientKind] = {
    sequential_calls_per_s: +(p.sequential.calls_per_s / t.sequential.calls_per_s).toFixed(2),
    concurrent32_calls_per_s: +(p.concurrent32.calls_per_s / t.concurrent32.calls_per_s).toFixed(2),
    cpu_per_call_ts_over_peermcp: p.concurrent32.server_cpu_us_per_call
      ? +(t.concurrent32.server_cpu_us_per_call / p.concurrent32.server_cpu_us_per_call).toFixed(2)
      : 0,
    peak_rss: +(p.hwm_kb / t.hwm_kb).toFixed(3),
  };
}
const out = { date: new Date().toISOString(), seconds_per_phase: SECONDS, warmup_seconds: WARMUP_SECONDS, trials: TRIALS, inflight: INFLIGHT, results, ratios };
if (args.json) writeFileSync(args.json, JSON.stringify(out, null, 2) + '\n');

// ---------- bench/RESULTS.md section ----------
if (args.results) {
  const machine = args.machine && existsSync(args.machine) ? readFileSync(args.machine, 'utf8').trim() : '(not recorded)';
  const row = (r) =>
    `| ${r.client} | ${r.server} | ${r.sequential.calls_per_s} | ${r.sequential.p50_ms} | ${r.sequential.p99_ms} | ` +
    `${r.concurrent32.calls_per_s} | ${r.concurrent32.p50_ms} | ${r.concurrent32.p99_ms} | ${r.concurrent32.server_cpu_us_per_call} | ` +
    `${(r.hwm_kb / 1024).toFixed(1)} |`;
  // issue 11 §1: server CPU per call ≤ 1/5 of the SDK's (goal 1/10), peak RSS ≤ 1/10
  const goal = (x) =>
    x.peak_rss > 0.1 ? 'RSS not met' : x.cpu_per_call_ts_over_peermcp >= 10 ? 'goal (1/10) met' : x.cpu_per_call_ts_over_peermcp >= 5 ? 'target (1/5) met' : 'not met';
  const profile = args.profile && existsSync(args.profile) ? readFileSync(args.profile, 'utf8').trim() : '';
  const section = [
    '## MCP (bench-mcp)',
    '',
    `Run with \`make bench-mcp\` (\`bench/mcp/run.sh\`) on ${out.date}. One trivial tool — \`echo\`, returning its`,
    'validated arguments as structuredContent plus one JSON text block — served by `peermcp serve` (release build,',
    '`PEERMCP_TEST_TOOLS=1`, `--no-p2p --log-level warning`) and by the official TypeScript SDK',
    '(`McpServer` + `StdioServerTransport`, `bench/mcp/ts-server.mjs`, zod input schema), each over stdio.',
    `Each phase runs ${SECONDS} s after a ${WARMUP_SECONDS} s warm-up at 32 in flight (so V8 has optimised the TS server);`,
    '"32 in flight" keeps 32 calls outstanding. Latency is per call as the',
    'client sees it. Server CPU per call is the server\'s user+system time over the 32-in-flight phase divided by',
    'the calls (from /proc/<pid>/stat; robust to a busy machine). Peak RSS is the server\'s VmHWM. Three clients drive both servers:',
    '`c` is `bench/mcp/driver.c`, a pipelined C client (~1 µs of its own CPU per call, so the servers set the pace: the',
    'figures that issue 11 §1 targets), `raw` a minimal newline-delimited JSON-RPC client in Node, `sdk` the SDK `Client`',
    '(`callTool` with its result validation, what an MCP app sees; on this machine it is the bottleneck).',
    `Client and server share the machine\'s cores. Each pair ran ${TRIALS} times, interleaved; the table shows the run with`,
    'the median 32-in-flight calls/s (all runs are in bench/mcp/last.json). With client and server on the same few',
    'cores, the calls/s columns are bounded by the Node client too (it spends several µs per call itself); the',
    '"server CPU µs/call" column is the server-only comparison. The `sdk` client sends each request in a write of its',
    'own, so a server pays a read(2), a write(2) and a loop turn per call there (the `c` and `raw` clients batch what',
    'they send together); that, not JSON, is most of peermcp\'s CPU per call in the `sdk` rows. CPU time per call rises',
    'with the machine\'s load (shared caches, two cores): compare the two servers within one run, and see the',
    '`uptime` below; callgrind\'s instruction counts (after the tables) do not depend on the load.',
    '',
    '| client | server | seq calls/s | seq p50 ms | seq p99 ms | 32-in-flight calls/s | p50 ms | p99 ms | server CPU µs/call | peak RSS MiB |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...results.map(row),
    '',
    '| client | peermcp/TS calls/s, sequential | peermcp/TS calls/s, 32 in flight | TS/peermcp server CPU per call | peermcp/TS peak RSS | issue 11 §1 (CPU ≤ 1/5, goal 1/10; RSS ≤ 1/10) |',
    '|---|---|---|---|---|---|',
    ...Object.entries(ratios).map(
      ([k, x]) =>
        `| ${k} | ${x.sequential_calls_per_s}× | ${x.concurrent32_calls_per_s}× | ${x.cpu_per_call_ts_over_peermcp}× | ${x.peak_rss} | ${goal(x)} |`,
    ),
    '',
    ...(profile ? ['Where peermcp\'s CPU goes (`bench/mcp/profile.sh`: callgrind instruction counts, stable on a busy', 'machine; earlier profiles are kept in bench/mcp/profile.md):', '', profile, ''] : []),
    'Machine:',
    '',
    '```',
    machine,
    '```',
    '',
  ].join('\n');
  let text = existsSync(args.results) ? readFileSync(args.results, 'utf8') : '# Benchmark results\n\n';
  const start = text.indexOf('## MCP (bench-mcp)');
  if (start >= 0) {
    const next = text.indexOf('\n## ', start + 1);
    text = text.slice(0, start) + section + (next >= 0 ? '\n' + text.slice(next + 1) : '');
  } else {
    text = text.replace(/\s*$/, '\n\n') + section;
  }
  writeFileSync(args.results, text);
  console.error(`bench-mcp: wrote the "MCP (bench-mcp)" section of ${args.results}`);
}
console.log(JSON.stringify(ratios));
