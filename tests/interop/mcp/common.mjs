// Shared helpers for the MCP stdio interop tests: which binary to run, a scratch state dir and
// config file, and a raw line-oriented driver for byte-level cases.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function peermcpBin() {
  const asan = process.env.PEERMCP_ASAN_BIN;
  if (asan && fs.existsSync(asan)) return asan;
  const bin = process.env.PEERMCP_BIN;
  if (bin && fs.existsSync(bin)) return bin;
  throw new Error('set PEERMCP_BIN (or PEERMCP_ASAN_BIN) to a built peermcp');
}

// A fresh state dir + config file (page_size small so tools/list paginates).
export function scratch(extraConfig = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peermcp-mcp-'));
  const cfg = path.join(dir, 'config.json');
  fs.writeFileSync(cfg, JSON.stringify({ page_size: 2, ...extraConfig }));
  return {
    dir,
    cfg,
    args: ['serve', '--no-p2p', '--config', cfg, '--state-dir', path.join(dir, 'state')],
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export function serverEnv(extra = {}) {
  return {
    ...process.env,
    PEERMCP_TEST_TOOLS: '1',
    ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1:abort_on_error=0',
    ...extra,
  };
}

// Raw driver: write lines/bytes to stdin, read newline-delimited JSON from stdout.
export class RawServer {
  constructor(sc, opts = {}) {
    this.proc = spawn(peermcpBin(), sc.args, {
      env: serverEnv(opts.env),
      stdio: [opts.stdin ?? 'pipe', 'pipe', 'pipe'],
    });
    this.lines = [];
    this.waiters = [];
    this.stderr = '';
    this.badStdout = [];
    let pending = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (d) => {
      pending += d;
      let i;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        let msg;
        try { msg = JSON.parse(line); } catch { this.badStdout.push(line); continue; }
        this.lines.push(msg);
        this._wake();
      }
    });
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve({ code, signal })));
    if (this.proc.stdin) this.proc.stdin.on('error', () => {});
  }
  _wake() {
    for (const w of this.waiters.splice(0)) w();
  }
  async waitFor(pred, ms = 30000) { // generous: an ASan server on a loaded 2-core machine
    const deadline = Date.now() + ms;
    for (;;) {
      const hit = this.lines.find(pred);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for a message; got ${JSON.stringify(this.lines).slice(0, 2000)}\nstderr: ${this.stderr.slice(-2000)}`);
      await new Promise((res) => { const t = setTimeout(res, left); this.waiters.push(() => { clearTimeout(t); res(); }); });
    }
  }
  byId(id, ms) { return this.waitFor((m) => m.id === id && ('result' in m || 'error' in m), ms); }
  write(data) {
    return new Promise((res, rej) => this.proc.stdin.write(data, (e) => (e ? rej(e) : res())));
  }
  send(obj) { return this.write(JSON.stringify(obj) + '\n'); }
  async request(obj, ms) { await this.send(obj); return this.byId(obj.id, ms); }
  end() { this.proc.stdin.end(); }
}

export const MODERN_META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'raw-test', version: '1.0.0' },
};
