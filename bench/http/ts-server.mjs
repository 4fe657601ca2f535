// ts-server.mjs — the reference for bench-http: the same trivial `echo` tool served by the
// official TypeScript SDK (McpServer + StreamableHTTPServerTransport on node:http), in the SDK's
// documented stateless shape (a server and a transport per request, no session id) or stateful
// shape (one transport per session, routed by Mcp-Session-Id). JSON responses
// (enableJsonResponse), as peermcp gives for a call with no notifications. The packages come
// from tests/node_modules (pinned in tests/package.json); run with tests/node_modules/node/bin/node.
// usage: node ts-server.mjs stateless|stateful  → prints {"port": N} on stdout
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../tests/package.json', import.meta.url));
const { McpServer } = require('@modelcontextprotocol/sdk/server/mcp.js');
const { StreamableHTTPServerTransport } = require('@modelcontextprotocol/sdk/server/streamableHttp.js');
const { isInitializeRequest } = require('@modelcontextprotocol/sdk/types.js');
const { z } = require('zod');

const mode = process.argv[2] ?? 'stateless';

function makeServer() {
  const server = new McpServer({ name: 'ts-echo-bench', version: '1.0.0' });
  server.registerTool(
    'echo',
    { description: 'Return the arguments unchanged.', inputSchema: { text: z.string().optional(), n: z.number().int().optional() } },
    async (args) => ({ content: [{ type: 'text', text: JSON.stringify(args) }], structuredContent: args }),
  );
  return server;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try { resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))); } catch (e) { reject(e); }
    });
    req.on('error', reject);
  });
}

const sessions = new Map(); // stateful: session id → transport

const httpServer = http.createServer(async (req, res) => {
  if (req.url !== '/mcp') { res.writeHead(404).end(); return; }
  try {
    if (mode === 'stateless') {
      const body = await readBody(req);
      const server = makeServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      res.on('close', () => { transport.close(); server.close(); });
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
      return;
    }
    const sid = req.headers['mcp-session-id'];
    const body = req.method === 'POST' ? await readBody(req) : undefined;
    let transport = sid ? sessions.get(sid) : undefined;
    if (!transport && req.method === 'POST' && isInitializeRequest(body)) {
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: true,
        onsessioninitialized: (id) => sessions.set(id, transport),
      });
      transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
      await makeServer().connect(transport);
    }
    if (!transport) { res.writeHead(400).end('no session'); return; }
    await transport.handleRequest(req, res, body);
  } catch (e) {
    if (!res.headersSent) res.writeHead(500).end(String(e));
  }
});
httpServer.keepAliveTimeout = 60000;
httpServer.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: httpServer.address().port }) + '\n');
});
process.on('SIGTERM', () => httpServer.close(() => process.exit(0)));
