// A js-libp2p peer (Node 22) that speaks /mcp+p2p/1.0.0 to peermcp with frames written by this
// test (4-byte big-endian length + JSON), for tests/suites/60-service.sh.
// Usage: mcpp_peer.mjs MULTIADDR CHECK[,CHECK...] [--token T] [--jwt JWT]
// Checks (one JSON line each: {"check","ok","detail"}):
//   authorized   initialize (with --token) → keys Python clients read; tools/list shows echo;
//                tools/call echo → CallToolResult; task_queue.rpc status → {"content":{"ok":true}}
//   mcp_tasks    MCP Tasks over the stream: CreateTaskResult, tasks/result, tasks/get
//   unauthorized no token: tools/list is empty, tools/call → -32001, rpc submit → unauthorized
//   before_init  tools/list before initialize → -32000 init_required, then the stream ends
//   oversize     a header declaring 2 MiB → -32003 frame_too_large (body never sent), stream ends
//   junk         a frame of invalid JSON → -32003 invalid_json; a JSON array → invalid_message
//   ratelimit    500 pings in one burst → some -32010 rate_limited, then the stream ends
//   legacy       /ipfs-datasets/task-queue/1.0.0: one NDJSON status request, one reply line
//   jwt          initialize with the JWT as params.token → tools/list shows echo, tools/call echo
//                works; task_queue.rpc with the JWT in the message's "jwt" field → status ok
//   jwt_tampered the JWT with its signature changed → initialize -32001, the stream stays
//                unauthorized (tools/list empty, tools/call -32001)
//   refused_token (issue 9 item 8; needs --token) a frame the stream refuses carries the valid
//                token (jsonrpc 1.0, no jsonrpc, a request or a notification before initialize, a
//                NUL in the method, a duplicate token key): the stream gains no scope — a later
//                initialize without the token leaves tools/call echo at -32001 (or the stream
//                ended); the same initialize with the token is accepted
//   dup_keys     (item 8) duplicate keys are refused: "op" twice in task_queue.rpc arguments →
//                -32003 invalid_json naming the duplicate, and the stream ends
//   nul          (item 11) an escaped NUL in a string argument comes back intact from echo; a NUL
//                in the tool name → -32600 naming params.name and NUL; the stream stays usable
// Exit code 0 when every check passed.
const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { multiaddr } = await import('@multiformats/multiaddr')

const PROTO = '/mcp+p2p/1.0.0'
const args = process.argv.slice(2)
const target = multiaddr(args[0])
const checks = (args[1] || '').split(',').filter(Boolean)
const ti = args.indexOf('--token')
const token = ti >= 0 ? args[ti + 1] : null
const ji = args.indexOf('--jwt')
const jwt = ji >= 0 ? args[ji + 1] : null
const toBuf = (c) => (c.subarray ? Buffer.from(c.subarray()) : Buffer.from(c))

function frame (obj) {
  const body = Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj))
  const h = Buffer.alloc(4)
  h.writeUInt32BE(body.length)
  return Buffer.concat([h, body])
}

// Reads u32 frames from a stream; next() resolves to an object, or null at end of stream.
class Frames {
  constructor (stream) {
    this.it = stream[Symbol.asyncIterator]()
    this.buf = Buffer.alloc(0)
    this.ended = false
  }

  async next (timeoutMs = 30000) { // generous: an ASan node on a loaded 2-core machine
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (this.buf.length >= 4) {
        const n = this.buf.readUInt32BE(0)
        if (this.buf.length >= 4 + n) {
          const body = this.buf.subarray(4, 4 + n)
          this.buf = this.buf.subarray(4 + n)
          return JSON.parse(body.toString('utf8'))
        }
      }
      if (this.ended) return null
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('timeout waiting for a frame')
      const r = await Promise.race([this.it.next(), new Promise((resolve) => setTimeout(() => resolve({ timeout: true }), left))])
      if (r.timeout) throw new Error('timeout waiting for a frame')
      if (r.done) { this.ended = true; continue }
      this.buf = Buffer.concat([this.buf, toBuf(r.value)])
    }
  }
}

const node = await createLibp2p({
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  services: { identify: identify() }
})

async function open () {
  const s = await node.dialProtocol(target, PROTO, { runOnLimitedConnection: true })
  return { s, f: new Frames(s) }
}

async function init (s, f, withToken) {
  const params = { clientInfo: { name: 'js-test', version: '1' }, profiles: ['mcp++/p2p-transport'] }
  if (withToken && token) params.token = token
  s.send(frame({ jsonrpc: '2.0', id: 1, method: 'initialize', params }))
  return f.next()
}

const results = []
function report (check, ok, detail) {
  results.push(ok)
  console.log(JSON.stringify({ check, ok, detail }))
}

async function run (name, fn) {
  try {
    const detail = await fn()
    report(name, true, detail)
  } catch (e) {
    report(name, false, String(e && e.message ? e.message : e))
  }
}

function expect (cond, msg) { if (!cond) throw new Error(msg) }

const impl = {
  async authorized () {
    const { s, f } = await open()
    const r = await init(s, f, true)
    const res = r.result
    expect(res && res.transport === PROTO, 'transport ' + JSON.stringify(r))
    expect(res.server && typeof res.server.peer_id === 'string', 'server.peer_id')
    expect(res.protocolVersion && res.serverInfo && res.capabilities && res.limits, 'initialize keys')
    s.send(frame({ jsonrpc: '2.0', id: 2, method: 'tools/list' }))
    const l = await f.next()
    const names = l.result.tools.map((t) => t.name)
    expect(names.includes('echo') && names.includes('task_queue.rpc'), 'tools/list ' + names.join(','))
    // two requests in flight on the stream, answered by id
    s.send(frame({ jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'echo', arguments: { x: 1 } } }))
    s.send(frame({ jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { op: 'status', token } } }))
    const got = {}
    got[(await f.next()).id] = true
    got[(await f.next()).id] = true
    expect(got.a && got.b, 'both ids answered')
    s.send(frame({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { y: 2 } } }))
    const c = await f.next()
    expect(c.result && c.result.isError === false && c.result.structuredContent.y === 2, 'echo ' + JSON.stringify(c))
    s.send(frame({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { op: 'status', token } } }))
    const q = await f.next()
    expect(q.result && q.result.content && q.result.content.ok === true, 'rpc ' + JSON.stringify(q))
    await s.close()
    return names.length
  },
  // MCP Tasks (2025-11-25) over a stream: the call becomes a durable queue task that the
  // node's task runner executes; tasks/get and tasks/result reach it from this peer.
  async mcp_tasks () {
    const { s, f } = await open()
    const params = { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'js-test', version: '1' }, token }
    s.send(frame({ jsonrpc: '2.0', id: 1, method: 'initialize', params }))
    const r = await f.next()
    expect(r.result && r.result.capabilities && r.result.capabilities.tasks, 'tasks capability ' + JSON.stringify(r.result && r.result.capabilities))
    s.send(frame({ jsonrpc: '2.0', method: 'notifications/initialized' }))
    s.send(frame({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { via: 'task' }, task: { ttl: 60000 } } }))
    const c = await f.next()
    const task = c.result && c.result.task
    expect(task && typeof task.taskId === 'string' && task.status === 'working', 'CreateTaskResult ' + JSON.stringify(c))
    s.send(frame({ jsonrpc: '2.0', id: 3, method: 'tasks/result', params: { taskId: task.taskId } }))
    let res
    for (;;) { const m = await f.next(60000); if (m && m.id === 3) { res = m; break } }
    expect(res.result && res.result.isError === false && res.result.structuredContent && res.result.structuredContent.via === 'task', 'tasks/result ' + JSON.stringify(res))
    s.send(frame({ jsonrpc: '2.0', id: 4, method: 'tasks/get', params: { taskId: task.taskId } }))
    let g
    for (;;) { const m = await f.next(); if (m && m.id === 4) { g = m; break } }
    expect(g.result && g.result.status === 'completed', 'tasks/get ' + JSON.stringify(g))
    await s.close()
    return task.taskId
  },

  async unauthorized () {
    const { s, f } = await open()
    await init(s, f, false)
    s.send(frame({ jsonrpc: '2.0', id: 2, method: 'tools/list' }))
    const l = await f.next()
    expect(l.result.tools.length === 0, 'tools visible: ' + l.result.tools.length)
    s.send(frame({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: {} } }))
    const c = await f.next()
    expect(c.error && c.error.code === -32001, 'call ' + JSON.stringify(c))
    s.send(frame({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { op: 'submit', payload: {} } } }))
    const q = await f.next()
    expect(q.result.content.error === 'unauthorized', 'rpc ' + JSON.stringify(q))
    await s.close()
  },
  async before_init () {
    const { s, f } = await open()
    s.send(frame({ jsonrpc: '2.0', id: 1, method: 'tools/list' }))
    const r = await f.next()
    expect(r.error && r.error.code === -32000 && r.error.message === 'init_required', JSON.stringify(r))
    expect((await f.next()) === null, 'stream still open')
  },
  async oversize () {
    const { s, f } = await open()
    const h = Buffer.alloc(4)
    h.writeUInt32BE(2 * 1024 * 1024)
    s.send(h)
    const r = await f.next()
    expect(r.error && r.error.code === -32003 && r.error.message === 'frame_too_large' && r.id === null, JSON.stringify(r))
    expect((await f.next()) === null, 'stream still open')
  },
  async junk () {
    let { s, f } = await open()
    s.send(frame('{"jsonrpc": nope'))
    let r = await f.next()
    expect(r.error && r.error.code === -32003 && r.error.message === 'invalid_json', JSON.stringify(r));
    ({ s, f } = await open())
    s.send(frame('[1,2]'))
    r = await f.next()
    expect(r.error && r.error.message === 'invalid_message', JSON.stringify(r))
  },
  async legacy () {
    const s = await node.dialProtocol(target, '/ipfs-datasets/task-queue/1.0.0', { runOnLimitedConnection: true })
    const msg = { op: 'status' }
    if (token) msg.token = token
    s.send(Buffer.from(JSON.stringify(msg).replace(/,/g, ', ').replace(/":/g, '": ') + '\n'))
    await s.close()
    const parts = []
    for await (const c of s) parts.push(toBuf(c))
    const line = Buffer.concat(parts).toString('utf8')
    expect(line.endsWith('\n'), 'no newline: ' + line)
    const r = JSON.parse(line)
    expect(r.ok === true && typeof r.peer_id === 'string', line)
  },
  async jwt () {
    expect(jwt, 'no --jwt')
    const { s, f } = await open()
    s.send(frame({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { clientInfo: { name: 'js-jwt', version: '1' }, token: jwt } }))
    const r = await f.next()
    expect(r.result && r.result.ok === true, 'initialize ' + JSON.stringify(r))
    s.send(frame({ jsonrpc: '2.0', id: 2, method: 'tools/list' }))
    const names = (await f.next()).result.tools.map((t) => t.name)
    expect(names.includes('echo'), 'tools/list ' + names.join(','))
    s.send(frame({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { via: 'jwt' } } }))
    const c = await f.next()
    expect(c.result && c.result.isError === false && c.result.structuredContent.via === 'jwt', 'echo ' + JSON.stringify(c))
    await s.close()
    // the same JWT inside a TaskQueue message, on an anonymous stream
    const o = await open()
    await init(o.s, o.f, false)
    o.s.send(frame({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'task_queue.rpc', arguments: { op: 'list', jwt } } }))
    const q = await o.f.next()
    expect(q.result && q.result.content && q.result.content.ok === true, 'rpc with jwt ' + JSON.stringify(q))
    await o.s.close()
    return names.length
  },
  async jwt_tampered () {
    expect(jwt, 'no --jwt')
    const sig = jwt.slice(jwt.lastIndexOf('.') + 1)
    const bad = jwt.slice(0, jwt.lastIndexOf('.') + 1) + (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1)
    const { s, f } = await open()
    s.send(frame({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { clientInfo: { name: 'js-jwt', version: '1' }, token: bad } }))
    const r = await f.next()
    expect(r.error && r.error.code === -32001 && r.error.message === 'unauthorized', 'initialize ' + JSON.stringify(r))
    s.send(frame({ jsonrpc: '2.0', id: 2, method: 'initialize', params: { clientInfo: { name: 'js-jwt', version: '1' } } }))
    expect((await f.next()).result, 'a second initialize without the token')
    s.send(frame({ jsonrpc: '2.0', id: 3, method: 'tools/list' }))
    const l = await f.next()
    expect(l.result.tools.length === 0, 'tools visible: ' + l.result.tools.length)
    s.send(frame({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'echo', arguments: {} } }))
    const c = await f.next()
    expect(c.error && c.error.code === -32001, 'call ' + JSON.stringify(c))
    await s.close()
  },
  async refused_token () {
    expect(token, 'needs --token')
    const T = JSON.stringify(token)
    const variants = {
      jsonrpc_1_0: `{"jsonrpc":"1.0","id":1,"method":"initialize","token":${T},"params":{"token":${T}}}`,
      no_jsonrpc: `{"id":1,"method":"initialize","token":${T}}`,
      request_before_init: `{"jsonrpc":"2.0","id":1,"method":"tools/list","token":${T}}`,
      notification_before_init: `{"jsonrpc":"2.0","method":"notifications/initialized","token":${T},"params":{"token":${T}}}`,
      nul_in_method: `{"jsonrpc":"2.0","id":1,"method":"initialize\\u0000x","token":${T}}`,
      duplicate_token: `{"jsonrpc":"2.0","id":1,"method":"initialize","token":"nope","token":${T}}`
    }
    const out = {}
    let reached = 0
    for (const [name, text] of Object.entries(variants)) {
      const { s, f } = await open()
      s.send(frame(text))
      if (name === 'notification_before_init') {
        // no reply to a notification: the stream goes on to a tokenless initialize at once
      } else {
        const r = await f.next()
        expect(r === null || r.error, name + ': refused frame answered ' + JSON.stringify(r))
      }
      let outcome
      try {
        s.send(frame({ jsonrpc: '2.0', id: 10, method: 'initialize', params: { clientInfo: { name: 'js-test', version: '1' } } }))
        const i = await f.next(10000)
        if (i === null) outcome = 'stream ended'
        else {
          s.send(frame({ jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'echo', arguments: { x: 1 } } }))
          const c = await f.next(10000)
          if (c === null) outcome = 'stream ended'
          else {
            expect(c.error && c.error.code === -32001, name + ': the refused frame\'s token opened the stream: ' + JSON.stringify(c))
            outcome = 'unauthorized'
            reached++
          }
        }
      } catch (e) {
        if (String(e.message).includes('opened the stream')) throw e
        outcome = 'stream ended (' + e.message + ')'
      }
      out[name] = outcome
      try { await s.close() } catch {}
    }
    expect(reached >= 2, 'too few variants reached a call (the check could not fail): ' + JSON.stringify(out))
    // the contrast: the token in an accepted initialize opens the stream
    const { s, f } = await open()
    await init(s, f, true)
    s.send(frame({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { x: 1 } } }))
    const c = await f.next()
    expect(c.result && c.result.isError === false, 'accepted initialize with the token: ' + JSON.stringify(c))
    await s.close()
    return out
  },
  async dup_keys () {
    const { s, f } = await open()
    await init(s, f, true)
    s.send(frame(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"task_queue.rpc","arguments":{"op":"status","op":"cache.delete","key":"k"}}}`))
    const r = await f.next()
    const detail = r && r.error && r.error.data && r.error.data.detail
    expect(r.error && r.error.code === -32003 && r.error.message === 'invalid_json' && String(detail).includes('duplicate'), JSON.stringify(r))
    expect((await f.next()) === null, 'stream still open')
    return detail
  },
  async nul () {
    const { s, f } = await open()
    await init(s, f, true)
    s.send(frame(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"s":"a\\u0000b"}}}`))
    const r = await f.next()
    const got = r.result && r.result.structuredContent && r.result.structuredContent.s
    expect(got === 'a\u0000b', 'echo of a NUL string: ' + JSON.stringify(r))
    s.send(frame(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo\\u0000x","arguments":{}}}`))
    const e = await f.next()
    expect(e.error && e.error.code === -32600 && /NUL/.test(e.error.message) && /params\.name/.test(e.error.message), 'NUL in the tool name: ' + JSON.stringify(e))
    s.send(frame({ jsonrpc: '2.0', id: 4, method: 'ping' }))
    const p = await f.next()
    expect(p && p.id === 4 && p.result, 'still usable: ' + JSON.stringify(p))
    await s.close()
    return e.error.message
  },
  async ratelimit () {
    const { s, f } = await open()
    await init(s, f, true)
    const parts = []
    for (let i = 0; i < 500; i++) parts.push(frame({ jsonrpc: '2.0', id: 100 + i, method: 'ping' }))
    s.send(Buffer.concat(parts))
    let limited = 0
    let ok = 0
    for (;;) {
      const r = await f.next()
      if (r === null) break
      if (r.error && r.error.code === -32010) limited++
      else ok++
    }
    expect(limited === 1 && ok < 500, `ok=${ok} limited=${limited}`)
    return { ok, limited }
  }
}

for (const c of checks) {
  if (!impl[c]) report(c, false, 'unknown check')
  else await run(c, impl[c])
}
await node.stop()
process.exit(results.every(Boolean) ? 0 : 1)
