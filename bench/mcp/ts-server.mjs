// ts-server.mjs — the reference for bench-mcp: the same trivial `echo` tool served by the
// official TypeScript SDK (McpServer over StdioServerTransport). The packages come from
// tests/node_modules (pinned in tests/package.json); run with tests/node_modules/node/bin/node.
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../tests/package.json', import.meta.url));
const { McpServer } = require('@modelcontextprotocol/sdk/server/mcp.js');
const { StdioServerTransport } = require('@modelcontextprotocol/sdk/server/stdio.js');
const { z } = require('zod');

const server = new McpServer({ name: 'ts-echo-bench', version: '1.0.0' });

// Same contract as peermcp's bench tool: validated arguments come back as structuredContent
// and as one JSON text block.
server.registerTool(
  'echo',
  {
    description: 'Return the arguments unchanged.',
    inputSchema: { text: z.string().optional(), n: z.number().int().optional() },
  },
  async (args) => ({
    content: [{ type: 'text', text: JSON.stringify(args) }],
    structuredContent: args,
  }),
);

await server.connect(new StdioServerTransport());
