// Shared helpers for the MCP-over-HTTP interop tests: start `peermcp serve --http-listen
// 127.0.0.1:0`, wait for <state-dir>/http.json, stop it and check it exited cleanly.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';

export function peermcpBin() {
  const asan = process.env.PEERMCP_ASAN_BIN;
  if (asan && fs.existsSync(asan)) return asan;
  const bin = process.env.PEERMCP_BIN;
  if (bin && fs.existsSync(bin)) return bin;
  throw new Error('set PEERMCP_BIN (or PEERMCP_ASAN_BIN) to a built peermcp');
}

// A running server. opts.config: extra config keys; opts.args: extra flags; opts.env; opts.stdio:
// keep stdio on (stdin is /dev/null: it sees EOF at once).
export class HttpServer {
  static async start(opts = {}) {
    const s = new HttpServer(opts);
    await s.ready();
    return s;
  }

  constructor(opts) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peermcp-http-'));
    this.state = path.join(this.dir, 'state');
    const cfg = path.join(this.dir, 'config.json');
    fs.writeFileSync(cfg, JSON.stringify({ page_size: 50, ...(opts.config ?? {}) }));
    const listen = opts.listen ?? ['127.0.0.1:0'];
    const args = ['serve', '--no-p2p', ...(opts.stdio ? [] : ['--no-stdio']), '--config', cfg, '--state-dir', this.state,
      ...listen.flatMap((l) => ['--http-listen', l]), ...(opts.args ?? [])];
    this.proc = spawn(peermcpBin(), args, {
      env: { ...process.env, PEERMCP_TEST_TOOLS: '1', ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=0', ...(opts.env ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.stderr = '';
    this.stdout = '';
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (d) => { this.stdout += d; });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
  }

  // Waits (generously: an ASan build on a loaded machine) for http.json.
  async ready(ms = 60000) {
    const file = path.join(this.state, 'http.json');
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`peermcp exited ${this.proc.exitCode}: ${this.stderr.slice(-3000)}`);
      try {
        const j = JSON.parse(fs.readFileSync(file, 'utf8'));
        this.url = j.url;
        this.urls = j.urls;
        const u = new URL(this.url);
        this.host = u.hostname.replace(/^\[|\]$/g, '');
        this.port = Number(u.port);
        this.base = `${u.protocol}//${u.host}`;
        return;
      } catch { /* not yet */ }
      if (Date.now() > deadline) throw new Error(`no http.json after ${ms} ms: ${this.stderr.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  // SIGTERM, then checks exit 0 (under ASan: no leak) and JSON-only stderr.
  async stop() {
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 60000);
    const r = await this.exited;
    clearTimeout(t);
    const bad = this.stderr.split('\n').filter((l) => l && !l.startsWith('{'));
    const urlFileLeft = fs.existsSync(path.join(this.state, 'http.json'));
    fs.rmSync(this.dir, { recursive: true, force: true });
    return { ...r, stderr: this.stderr, badStderr: bad, stdout: this.stdout, urlFileLeft };
  }
}

// Raw HTTP/1.1 over one TCP socket: exact bytes out, the whole response (or what came before
// the server closed) back. For cases fetch cannot express.
export function rawHttp(host, port, bytes, { ms = 30000, keepOpen = false } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let data = Buffer.alloc(0);
    const t = setTimeout(() => { sock.destroy(); resolve({ text: data.toString('latin1'), timedOut: true, closed: false }); }, ms);
    sock.on('connect', () => { if (bytes) sock.write(bytes); if (!keepOpen) sock.end(); });
    sock.on('data', (d) => { data = Buffer.concat([data, d]); });
    sock.on('error', (e) => { clearTimeout(t); resolve({ text: data.toString('latin1'), error: e, closed: true }); });
    sock.on('close', () => { clearTimeout(t); resolve({ text: data.toString('latin1'), closed: true }); });
  });
}

export function statusOf(text) {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return m ? Number(m[1]) : 0;
}

export const MODERN_META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'http-test', version: '1.0.0' },
};

// The headers a conforming client sends with a 2026-07-28 request.
export function modernHeaders(method, name) {
  const h = {
    'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream',
    'MCP-Protocol-Version': '2026-07-28',
    'Mcp-Method': method,
  };
  if (name !== undefined) h['Mcp-Name'] = name;
  return h;
}

export function modernBody(id, method, params = {}) {
  return JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: { ...MODERN_META, ...(params._meta ?? {}) } } });
}

// Reads an SSE body into parsed JSON messages (data lines), until the stream ends.
export async function sseMessages(res) {
  const text = await res.text();
  const out = [];
  for (const block of text.split(/\n\n/)) {
    const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
    if (data) out.push(JSON.parse(data));
  }
  return out;
}

export async function waitFor(pred, ms = 30000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
