// A js-libp2p peer (Node 22; @libp2p/circuit-relay-v2, @libp2p/dcutr) behind a NAT, for
// tests/interop/nat/netns_checks.py (suite 48). It dials a peermcp node through a relay, calls
// a tool over the relayed connection (/mcp+p2p/1.0.0, 4-byte length + JSON frames), lets the
// peermcp side (it received the relayed connection, so it starts DCUtR) punch the hole — js
// answers as the spec's "A": its CONNECT, then on SYNC an immediate dial — and once a direct
// connection is up calls the tool again over it (a stream that may not use a limited one).
// Usage: js_punch.mjs CIRCUIT_ADDR --listen MA [--announce MA] [--token T] [--wait-s N]
//   --announce: the address a NAT maps this host to (js puts only verified addresses, such as
//   announced ones, in its CONNECT; it does not learn its public TCP address from identify).
// Prints one JSON line per step {"step","ok",...}: start (peer_id), relayed, call_relayed, direct,
// call_direct.
// Exit code 0 when every step passed.
const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { circuitRelayTransport } = await import('@libp2p/circuit-relay-v2')
const { dcutr } = await import('@libp2p/dcutr')
const { multiaddr } = await import('@multiformats/multiaddr')

const PROTO = '/mcp+p2p/1.0.0'
const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : dflt
}
const target = multiaddr(args[0])
const token = opt('--token', null)
const waitS = Number(opt('--wait-s', '40'))
const announce = opt('--announce', null)
const toBuf = (c) => (c.subarray ? Buffer.from(c.subarray()) : Buffer.from(c))
let failed = 0
const report = (step, ok, detail) => {
  if (!ok) failed++
  console.log(JSON.stringify({ step, ok, ...detail }))
}

function frame (obj) {
  const body = Buffer.from(JSON.stringify(obj))
  const h = Buffer.alloc(4)
  h.writeUInt32BE(body.length)
  return Buffer.concat([h, body])
}

// Sends frames, reads the reply frames (by count) with a deadline.
async function exchange (stream, frames, want, timeoutMs = 30000) {
  for (const f of frames) stream.send(frame(f))
  const it = stream[Symbol.asyncIterator]()
  let buf = Buffer.alloc(0)
  const out = []
  const deadline = Date.now() + timeoutMs
  while (out.length < want) {
    if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const n = buf.readUInt32BE(0)
      out.push(JSON.parse(buf.subarray(4, 4 + n).toString('utf8')))
      buf = buf.subarray(4 + n)
      continue
    }
    const left = deadline - Date.now()
    if (left <= 0) throw new Error('timeout waiting for a frame')
    const r = await Promise.race([it.next(), new Promise((resolve) => setTimeout(() => resolve({ timeout: true }), left))])
    if (r.timeout) throw new Error('timeout waiting for a frame')
    if (r.done) throw new Error('stream ended')
    buf = Buffer.concat([buf, toBuf(r.value)])
  }
  return out
}

async function callEcho (stream, tag) {
  const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { clientInfo: { name: 'js-punch', version: '1' }, profiles: ['mcp++/p2p-transport'], ...(token ? { token } : {}) } }
  const call = { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { via: tag } } }
  const r = await exchange(stream, [init, call], 2)
  const res = r.find((m) => m.id === 2)
  await stream.close().catch(() => {})
  return JSON.stringify(res && res.result)
}

const node = await createLibp2p({
  addresses: { listen: [opt('--listen', '/ip4/0.0.0.0/tcp/0')], ...(announce ? { appendAnnounce: [announce] } : {}) },
  transports: [tcp(), circuitRelayTransport()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  services: { identify: identify(), dcutr: dcutr() }
})
const peer = args[0].split('/p2p/').pop()
console.log(JSON.stringify({ step: 'start', ok: true, peer_id: node.peerId.toString() }))
const isDirect = (c) => !c.limits && !c.remoteAddr.toString().includes('/p2p-circuit')
const t0 = Date.now()
try {
  const conn = await node.dial(target, { signal: AbortSignal.timeout(30000) })
  report('relayed', conn.remoteAddr.toString().includes('/p2p-circuit'), { addr: conn.remoteAddr.toString(), limited: !!conn.limits })
  try {
    const s = await conn.newStream(PROTO, { runOnLimitedConnection: true, signal: AbortSignal.timeout(30000) })
    const res = await callEcho(s, 'js-relayed')
    report('call_relayed', res.includes('js-relayed'), { result: res })
  } catch (e) {
    report('call_relayed', false, { error: String(e && e.message ? e.message : e) })
  }
  let direct = null
  const end = Date.now() + waitS * 1000
  while (!direct && Date.now() < end) {
    direct = node.getConnections().find((c) => c.remotePeer.toString() === peer && isDirect(c))
    if (!direct) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  report('direct', !!direct, direct
    ? { addr: direct.remoteAddr.toString(), direction: direct.direction, ms: Date.now() - t0 }
    : { conns: node.getConnections().map((c) => c.remoteAddr.toString()) })
  if (direct) {
    try {
      const s = await direct.newStream(PROTO, { signal: AbortSignal.timeout(30000) })
      const res = await callEcho(s, 'js-direct')
      report('call_direct', res.includes('js-direct'), { result: res })
    } catch (e) {
      report('call_direct', false, { error: String(e && e.message ? e.message : e) })
    }
  }
} catch (e) {
  report('relayed', false, { error: String(e && e.message ? e.message : e) })
}
await node.stop()
process.exit(failed ? 1 : 0)
