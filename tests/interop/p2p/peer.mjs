// js-libp2p reference peer for peermcp's P2P interop tests and benchmarks (Node 22,
// tests/node_modules/node/bin/node). TCP + Noise + Yamux + identify + ping, plus the test
// protocols that tests/p2p/p2p_driver.c also serves:
//   /peermcp/echo/1.0.0    echo every byte back until EOF, then close
//   /peermcp/sink/1.0.0    read until EOF, reply with the 32-byte SHA-256 of what was read, close
//   /peermcp/source/1.0.0  read u64 BE N, send N bytes of pattern(N), close
//   /perf/1.0.0            perf spec (libp2p/specs perf/perf.md), written here by hand
// Usage:
//   peer.mjs listen [--ip6] [--unix PATH] [--slow-sink-ms MS]  (--unix: also /unix/PATH) prints {"peer_id","addrs"} as one JSON line,
//                                                  runs until stdin closes or SIGTERM
//   peer.mjs dial MULTIADDR CHECK[,CHECK...]       runs checks against a remote peer; prints one
//                                                  JSON line per check {"check","ok",...}
//   peer.mjs perf MULTIADDR --upload N --download N [--streams K]   perf client, prints JSON
//   peer.mjs setup MULTIADDR [--n N]               connection set-up + first byte (echo), ms
// Exit code 0 when every check passed.
import { createHash, randomBytes } from 'node:crypto'

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify, identifyPush } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { multiaddr } = await import('@multiformats/multiaddr')
const { peerIdFromPublicKey, peerIdFromString } = await import('@libp2p/peer-id')
const { publicKeyFromProtobuf } = await import('@libp2p/crypto/keys')

const ECHO = '/peermcp/echo/1.0.0'
const SINK = '/peermcp/sink/1.0.0'
const SOURCE = '/peermcp/source/1.0.0'
const PERF = '/perf/1.0.0'
const STREAM_OPTS = { maxInboundStreams: 1024, maxOutboundStreams: 1024, runOnLimitedConnection: true }

const args = process.argv.slice(2)
const mode = args[0]
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : dflt
}
const flag = (name) => args.includes(name)
const log = (...a) => console.error('[js]', ...a)

// Deterministic payload so both ends can checksum without sharing data.
function pattern (n, seed = 1) {
  const b = Buffer.allocUnsafe(n)
  let x = Math.imul(seed, 2654435761 | 0) >>> 0
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    b[i] = x >>> 24
  }
  return b
}

const toBuf = (c) => (c.subarray ? Buffer.from(c.subarray()) : Buffer.from(c))

// Writes data honouring backpressure (send() returns false -> wait for drain).
async function sendAll (stream, data, chunk = 65536) {
  for (let off = 0; off < data.length; off += chunk) {
    if (!stream.send(data.subarray(off, Math.min(off + chunk, data.length)))) {
      await stream.onDrain()
    }
  }
}

async function readAll (stream, onChunk) {
  const parts = []
  let n = 0
  for await (const c of stream) {
    const b = toBuf(c)
    n += b.length
    if (onChunk) onChunk(b); else parts.push(b)
  }
  return onChunk ? n : Buffer.concat(parts)
}

// Reads exactly n bytes from an async iterator over the stream (returns [bytes, leftover]).
async function readExact (it, n) {
  const parts = []
  let have = 0
  while (have < n) {
    const { value, done } = await it.next()
    if (done) throw new Error(`EOF after ${have} of ${n} bytes`)
    const b = toBuf(value)
    parts.push(b)
    have += b.length
  }
  const all = Buffer.concat(parts)
  return [all.subarray(0, n), all.subarray(n)]
}

// js-libp2p's own defaults disagree: a Yamux stream window may grow to 16 MiB while a paused
// stream aborts itself past a 4 MiB read buffer. With the slow sink (which pauses), a fast
// sender that keeps to the window — as it must — could fill that buffer and make js reset the
// stream ("sink error Cannot write to a stream that is closed", 1 run in 3–8 of suite 40). So
// the slow listener caps its window under the buffer: the window is what holds the sender.
const SLOW_STREAM_OPTS = {
  initialStreamWindowSize: 256 * 1024,
  maxStreamWindowSize: 2 * 1024 * 1024,
  inactivityTimeout: 120_000,
  maxReadBufferLength: 4 * 1024 * 1024,
  maxWriteBufferLength: Infinity
}

async function makeNode (listen) {
  const slow = Number(opt('--slow-sink-ms', '0')) > 0
  const node = await createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: 1024, maxOutboundStreams: 1024, ...(slow ? { streamOptions: SLOW_STREAM_OPTS } : {}) })],
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: { maxConnections: 1000, inboundConnectionThreshold: 10000, maxIncomingPendingConnections: 100 },
    services: { identify: identify(), identifyPush: identifyPush(), ping: ping() }
  })
  const slowMs = Number(opt('--slow-sink-ms', '0'))
  await node.handle(ECHO, async (stream) => {
    try {
      for await (const c of stream) {
        if (!stream.send(c)) await stream.onDrain()
      }
      await stream.close()
    } catch (e) { log('echo error', e.message); stream.abort(e) }
  }, STREAM_OPTS)
  await node.handle(SINK, async (stream) => {
    try {
      const h = createHash('sha256')
      if (slowMs > 0) {
        // Slow reader: take one chunk, pause, wait, resume — Yamux windows must hold the sender.
        let n = 0
        await new Promise((resolve, reject) => {
          stream.addEventListener('message', (ev) => {
            const b = toBuf(ev.data)
            h.update(b)
            n += b.length
            try { stream.pause() } catch {}
            setTimeout(() => { try { stream.resume() } catch {} }, slowMs)
          })
          stream.addEventListener('end', resolve)
          stream.addEventListener('close', (ev) => { if (ev.error) reject(ev.error) })
        })
        log('slow sink read', n)
      } else {
        await readAll(stream, (b) => h.update(b))
      }
      stream.send(h.digest())
      await stream.close()
    } catch (e) { log('sink error', e.message); stream.abort(e) }
  }, STREAM_OPTS)
  await node.handle(SOURCE, async (stream) => {
    try {
      const it = stream[Symbol.asyncIterator]()
      const [hdr] = await readExact(it, 8)
      const n = Number(hdr.readBigUInt64BE(0))
      await sendAll(stream, pattern(n))
      await stream.close()
    } catch (e) { log('source error', e.message); stream.abort(e) }
  }, STREAM_OPTS)
  await node.handle(PERF, async (stream) => {
    try {
      const it = stream[Symbol.asyncIterator]()
      const [hdr, rest] = await readExact(it, 8)
      let down = hdr.readBigUInt64BE(0)
      let up = rest.length
      for (;;) {
        const { value, done } = await it.next()
        if (done) break
        up += value.byteLength
      }
      const block = Buffer.alloc(65536)
      while (down > 0n) {
        const k = down > 65536n ? 65536 : Number(down)
        if (!stream.send(block.subarray(0, k))) await stream.onDrain()
        down -= BigInt(k)
      }
      await stream.close()
    } catch (e) { log('perf error', e.message); stream.abort(e) }
  }, STREAM_OPTS)
  return node
}

async function perfClient (node, target, upload, download) {
  const stream = await node.dialProtocol(target, PERF, STREAM_OPTS)
  const t0 = performance.now()
  const hdr = Buffer.alloc(8)
  hdr.writeBigUInt64BE(BigInt(download))
  stream.send(hdr)
  const block = Buffer.alloc(65536)
  let left = upload
  const reading = readAll(stream, () => {})
  while (left > 0) {
    const k = Math.min(left, 65536)
    if (!stream.send(block.subarray(0, k))) await stream.onDrain()
    left -= k
  }
  await stream.close()
  const got = await reading
  const secs = (performance.now() - t0) / 1000
  if (got !== download) throw new Error(`perf: got ${got} of ${download} bytes`)
  return secs
}

// ---- checks run by `dial` (JS dials the peer under test) ----
const checks = {
  async connect (node, target, ctx) {
    const conn = await node.dial(target)
    ctx.conn = conn
    const want = target.getComponents().find(c => c.name === 'p2p')?.value
    return { ok: conn.remotePeer.toString() === want, remote_peer: conn.remotePeer.toString(),
      muxer: conn.multiplexer, encryption: conn.encryption }
  },
  async ping (node, target) {
    const rtts = []
    for (let i = 0; i < 3; i++) rtts.push(await node.services.ping.ping(target))
    return { ok: rtts.length === 3, rtts }
  },
  async identify (node, target, ctx) {
    const conn = ctx.conn ?? await node.dial(target)
    const r = await node.services.identify.identify(conn)
    const pk = r.publicKey ? publicKeyFromProtobuf(r.publicKey) : null
    const keyMatches = pk != null && peerIdFromPublicKey(pk).equals(conn.remotePeer)
    const protocols = r.protocols
    const listen = r.listenAddrs.map(String)
    const observed = r.observedAddr?.toString()
    const local = conn.localAddr?.toString() // may be undefined for dialers in some versions
    const wantProtos = opt('--want-protocols', `/ipfs/id/1.0.0,/ipfs/ping/1.0.0,${ECHO}`).split(',')
    const targetTcp = target.toString().split('/p2p/')[0]
    const ok = keyMatches && wantProtos.every(p => protocols.includes(p)) &&
      listen.some(a => a.startsWith(targetTcp)) && typeof r.agentVersion === 'string' &&
      r.agentVersion.startsWith('peermcp/') && r.protocolVersion != null &&
      observed != null && /^\/ip[46]\/(127\.0\.0\.1|::1)\/tcp\/\d+(\/p2p\/\w+)?$/.test(observed) &&
      (local == null || local.startsWith(observed))
    return { ok, agent: r.agentVersion, protocol_version: r.protocolVersion, protocols, listen,
      observed, local, key_matches: keyMatches }
  },
  // Over a /unix/ connection: the peer's identify carries no /unix/ listen address and no
  // observedAddr (a socket path means nothing to another host), and its key is the PeerId's.
  async identifyunix (node, target, ctx) {
    const conn = ctx.conn ?? await node.dial(target)
    const r = await node.services.identify.identify(conn)
    const pk = r.publicKey ? publicKeyFromProtobuf(r.publicKey) : null
    const keyMatches = pk != null && peerIdFromPublicKey(pk).equals(conn.remotePeer)
    const listen = r.listenAddrs.map(String)
    const observed = r.observedAddr?.toString()
    const ok = keyMatches && conn.remoteAddr.toString().startsWith('/unix/') && listen.length > 0 &&
      listen.every(a => !a.includes('/unix/')) && observed == null && r.agentVersion?.startsWith('peermcp/')
    return { ok, listen, observed, remote: conn.remoteAddr.toString(), key_matches: keyMatches }
  },
  async echo100 (node, target) {
    const conn = await node.dial(target)
    const jobs = []
    for (let i = 0; i < 100; i++) {
      jobs.push((async () => {
        const data = randomBytes(1024 + Math.floor(Math.random() * 64 * 1024))
        const s = await conn.newStream(ECHO, STREAM_OPTS)
        const reading = readAll(s)
        await sendAll(s, data)
        await s.close()
        const back = await reading
        return Buffer.compare(back, data) === 0
      })())
    }
    const res = await Promise.all(jobs)
    const good = res.filter(Boolean).length
    return { ok: good === 100, streams_ok: good }
  },
  async big (node, target) {
    // 64 MiB each way at once on one echo stream, checksummed on both sides.
    const n = Number(opt('--big-bytes', String(64 << 20)))
    const data = pattern(n, 7)
    const want = createHash('sha256').update(data).digest('hex')
    const s = await node.dialProtocol(target, ECHO, STREAM_OPTS)
    const h = createHash('sha256')
    const t0 = performance.now()
    const reading = readAll(s, (b) => h.update(b))
    await sendAll(s, data)
    await s.close()
    const got = await reading
    const secs = (performance.now() - t0) / 1000
    const hex = h.digest('hex')
    // And C's sink checksums what it read (JS -> C direction verified by the C side).
    const s2 = await node.dialProtocol(target, SINK, STREAM_OPTS)
    const r2 = readAll(s2)
    await sendAll(s2, data)
    await s2.close()
    const digest = (await r2).toString('hex')
    // And C -> JS from C's source.
    const s3 = await node.dialProtocol(target, SOURCE, STREAM_OPTS)
    const hdr = Buffer.alloc(8); hdr.writeBigUInt64BE(BigInt(n)); s3.send(hdr)
    const h3 = createHash('sha256')
    const r3 = readAll(s3, (b) => h3.update(b))
    await s3.close()
    const got3 = await r3
    const ok = got === n && hex === want && digest === createHash('sha256').update(data).digest('hex') &&
      got3 === n && h3.digest('hex') === createHash('sha256').update(pattern(n)).digest('hex')
    return { ok, bytes: n, echo_secs: secs, sha256: hex, sink_sha256: digest }
  },
  async slowread (node, target) {
    // C's source sends 8 MiB; we read one chunk every 5 ms with the stream paused in between.
    const n = 8 << 20
    const s = await node.dialProtocol(target, SOURCE, STREAM_OPTS)
    const hdr = Buffer.alloc(8); hdr.writeBigUInt64BE(BigInt(n)); s.send(hdr)
    await s.close()
    const h = createHash('sha256')
    let got = 0
    let maxBuffered = 0
    const t0 = performance.now()
    await new Promise((resolve, reject) => {
      s.addEventListener('message', (ev) => {
        const b = toBuf(ev.data)
        h.update(b); got += b.length
        maxBuffered = Math.max(maxBuffered, s.readBufferLength)
        try { s.pause() } catch {}
        setTimeout(() => { try { s.resume() } catch {} }, 5)
      })
      s.addEventListener('end', resolve)
      s.addEventListener('close', (ev) => { if (ev.error) reject(ev.error) })
    })
    const ok = got === n && h.digest('hex') === createHash('sha256').update(pattern(n)).digest('hex')
    return { ok, bytes: got, secs: (performance.now() - t0) / 1000, max_read_buffer: maxBuffered }
  },
  async wrongid (node, target) {
    // Same address, a PeerId that is not the listener's: the dial must fail.
    const other = (await makeKeyPeer()).toString()
    const bad = multiaddr(target.toString().split('/p2p/')[0] + '/p2p/' + other)
    try {
      const c = await node.dial(bad, { signal: AbortSignal.timeout(5000) })
      return { ok: false, error: 'dial succeeded to ' + c.remotePeer.toString() }
    } catch (e) {
      return { ok: true, error: String(e.message).slice(0, 200) }
    }
  },
  async goaway (node, target) {
    // We close our connection (js-yamux sends GoAway then closes); the peer must stay
    // healthy: a fresh connection still works afterwards.
    const c = await node.dial(target)
    await c.close()
    await new Promise(r => setTimeout(r, 100))
    const c2 = await node.dial(target, { force: true })
    const s = await c2.newStream(ECHO, STREAM_OPTS)
    const it = s[Symbol.asyncIterator]()
    s.send(Buffer.from([7]))
    const [b] = await readExact(it, 1)
    await s.close()
    return { ok: c.status === 'closed' && c2.status === 'open' && b[0] === 7, status: c.status }
  }
}

async function makeKeyPeer () {
  const { generateKeyPair } = await import('@libp2p/crypto/keys')
  const k = await generateKeyPair('Ed25519')
  return peerIdFromPublicKey(k.publicKey)
}

async function main () {
  if (mode === 'listen') {
    const listen = flag('--ip6') ? ['/ip4/127.0.0.1/tcp/0', '/ip6/::1/tcp/0'] : ['/ip4/127.0.0.1/tcp/0']
    if (opt('--unix', null)) listen.push('/unix/' + encodeURIComponent(opt('--unix', null))) // same-host peers
    const node = await makeNode(listen)
    node.addEventListener('peer:connect', (e) => log('peer:connect', e.detail.toString()))
    node.addEventListener('peer:disconnect', (e) => log('peer:disconnect', e.detail.toString()))
    // identify-push both ways: log protocol updates we learn, and add a protocol of our own
    // shortly after the first peer identified us (js pushes it to connected peers).
    node.addEventListener('peer:update', (e) => log('peer:update', JSON.stringify({
      peer: e.detail.peer.id.toString(), protocols: e.detail.peer.protocols })))
    let lateDone = false
    node.addEventListener('peer:identify', () => {
      if (lateDone) return
      lateDone = true
      setTimeout(() => node.handle('/peermcp/late-js/1.0.0', (s) => s.abort(new Error('unused'))).catch(() => {}), 300)
    })
    node.addEventListener('peer:identify', (e) => log('peer:identify', JSON.stringify({
      agent: e.detail.agentVersion, protocols: e.detail.protocols,
      observed: e.detail.observedAddr?.toString(), listen: e.detail.listenAddrs.map(String)
    })))
    console.log(JSON.stringify({ peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) }))
    const stop = async () => { await node.stop(); process.exit(0) }
    process.on('SIGTERM', stop)
    process.stdin.on('end', stop)
    process.stdin.resume()
    return
  }
  if (mode === 'dial') {
    const target = multiaddr(args[1])
    const want = (args[2] ?? 'connect,ping,identify').split(',')
    const node = await makeNode([])
    const ctx = {}
    let failed = 0
    for (const name of want) {
      const t0 = performance.now()
      let res
      try {
        res = await checks[name](node, target, ctx)
      } catch (e) {
        res = { ok: false, error: String(e?.stack ?? e).slice(0, 400) }
      }
      if (!res.ok) failed++
      console.log(JSON.stringify({ check: name, ...res, ms: Math.round(performance.now() - t0) }))
    }
    await node.stop()
    process.exit(failed ? 1 : 0)
  }
  if (mode === 'perf') {
    const target = multiaddr(args[1])
    const up = Number(opt('--upload', '0'))
    const down = Number(opt('--download', '0'))
    const k = Number(opt('--streams', '1'))
    const node = await makeNode([])
    await node.dial(target)
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await Promise.all(Array.from({ length: k }, () => perfClient(node, target, up, down)))
    const secs = (performance.now() - t0) / 1000
    const cpu = process.cpuUsage(cpu0)
    console.log(JSON.stringify({ streams: k, upload: up, download: down, secs,
      bytes: (up + down) * k, mbps: ((up + down) * k * 8) / secs / 1e6,
      cpu_s: (cpu.user + cpu.system) / 1e6 }))
    await node.stop()
    process.exit(0)
  }
  if (mode === 'setup') {
    // Connection set-up + first byte: dial, open an echo stream, one byte there and back.
    const target = multiaddr(args[1])
    const n = Number(opt('--n', '10'))
    const node = await makeNode([])
    const ms = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      const conn = await node.dial(target, { force: true })
      const s = await conn.newStream(ECHO, STREAM_OPTS)
      const it = s[Symbol.asyncIterator]()
      s.send(Buffer.from([42]))
      await readExact(it, 1)
      ms.push(performance.now() - t0)
      await s.close()
      await conn.close()
    }
    ms.sort((a, b) => a - b)
    console.log(JSON.stringify({ n, median_ms: ms[Math.floor(n / 2)], min_ms: ms[0] }))
    await node.stop()
    process.exit(0)
  }
  console.error('usage: peer.mjs listen|dial|perf|setup ...')
  process.exit(2)
}

const watchdog = Number(process.env.PEER_TIMEOUT_MS ?? 120000)
if (watchdog > 0) setTimeout(() => { log('watchdog timeout'); process.exit(3) }, watchdog).unref?.()
await main()
