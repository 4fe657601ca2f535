// js-libp2p peers for the NAT interop checks of tests/suites/47-nat.sh (driven by
// tests/interop/nat/nat_checks.py; @libp2p/circuit-relay-v2 4.2.13, @libp2p/autonat 3.0.28,
// libp2p 3.3.11). Every mode prints JSON lines on stdout: {"check","ok",...} per check, and
// the long-running modes first {"peer_id","addrs"}.
//
//   relay_js.mjs server [--max-reservations N]   a js relay (circuitRelayServer) on 127.0.0.1;
//                                                runs until stdin closes
//   relay_js.mjs reach CIRCUIT_ADDR              a js peer dials a peer through a relay
//                                                (…/p2p-circuit/p2p/<target>): ping and identify
//                                                over the relayed connection
//   relay_js.mjs hop RELAY_ADDR --cap N --limit-data B --limit-seconds S
//                                                two js peers use a relay (peermcp's hop service):
//                                                A reserves (circuit transport) and B dials A
//                                                through the relay and exchanges data; A's own
//                                                RESERVE reply is checked by hand (status, voucher
//                                                signed by the relay for A, limits in seconds);
//                                                N-1 more js peers fill the cap, one more is
//                                                refused with RESERVATION_REFUSED and A's refresh
//                                                still succeeds; a circuit is cut at its data
//                                                limit and another at its time limit
//   relay_js.mjs autonat SERVER_ADDR CLOSED_PORT @libp2p/autonat's v1 client (its own
//                                                askPeerToVerify) asks the server to dial back one
//                                                of our listen addresses (expects OK), then an
//                                                address on CLOSED_PORT (expects E_DIAL_ERROR)
// Every js node accepts any number of inbound connections per second (js refuses more than 5
// per IP by default, and on loopback every peer has the same IP).
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { circuitRelayServer, circuitRelayTransport } = await import('@libp2p/circuit-relay-v2')
const { autoNAT } = await import('@libp2p/autonat')
const { multiaddr } = await import('@multiformats/multiaddr')
const { peerIdFromMultihash, peerIdFromPublicKey } = await import('@libp2p/peer-id')
const { PeerRecord, RecordEnvelope } = await import('@libp2p/peer-record')
const Digest = await import('multiformats/hashes/digest')

const nm = fileURLToPath(new URL('../../node_modules/', import.meta.url))
const { HopMessage, ReservationVoucher, Status } = await import(join(nm, '@libp2p/circuit-relay-v2/dist/src/pb/index.js'))

const ECHO = '/peermcp/echo/1.0.0'
const HOP = '/libp2p/circuit/relay/0.2.0/hop'
const SOPTS = { runOnLimitedConnection: true }
const args = process.argv.slice(2)
const mode = args[0]
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt }
const log = (...a) => console.error('[relay_js]', ...a)
const out = (o) => console.log(JSON.stringify(o, (k, v) => typeof v === 'bigint' ? v.toString() : v))
const toBuf = (c) => (c.subarray ? Buffer.from(c.subarray()) : Buffer.from(c))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
let failed = 0
function check (name, ok, extra = {}) {
  if (!ok) failed++
  out({ check: name, ok: !!ok, ...extra })
}

async function makeNode ({ listen = ['/ip4/127.0.0.1/tcp/0'], server = null, client = false, autonat = false } = {}) {
  const services = { identify: identify(), ping: ping() }
  if (server) services.relay = circuitRelayServer(server)
  if (autonat) services.autonat = autoNAT()
  const node = await createLibp2p({
    addresses: { listen },
    transports: client ? [tcp(), circuitRelayTransport()] : [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: { maxConnections: 1000, inboundConnectionThreshold: 10000, maxIncomingPendingConnections: 100 },
    services
  })
  await node.handle(ECHO, async (stream) => {
    try {
      for await (const c of stream) {
        if (!stream.send(c)) await stream.onDrain()
      }
      await stream.close()
    } catch (e) { stream.abort(e) }
  }, SOPTS)
  return node
}

// ---- varint-framed protobuf on a raw stream ----
function uvarint (n) {
  const b = []
  do { let x = n & 0x7f; n >>>= 7; if (n) x |= 0x80; b.push(x) } while (n)
  return Buffer.from(b)
}
async function readFramed (it, state) {
  for (;;) {
    let len = 0; let shift = 0; let i = 0
    for (; i < state.buf.length && i < 5; i++) {
      len |= (state.buf[i] & 0x7f) << shift; shift += 7
      if (!(state.buf[i] & 0x80)) break
    }
    if (i < state.buf.length && !(state.buf[i] & 0x80) && state.buf.length >= i + 1 + len) {
      const msg = state.buf.subarray(i + 1, i + 1 + len)
      state.buf = state.buf.subarray(i + 1 + len)
      return msg
    }
    const { value, done } = await it.next()
    if (done) throw new Error('EOF before a whole message')
    state.buf = Buffer.concat([state.buf, toBuf(value)])
  }
}

// RESERVE by hand on a new HOP stream of node's connection to relay: the decoded reply.
async function reserve (node, relayAddr) {
  const s = await node.dialProtocol(relayAddr, HOP, { signal: AbortSignal.timeout(15000) })
  const body = HopMessage.encode({ type: HopMessage.Type.RESERVE })
  s.send(Buffer.concat([uvarint(body.length), body]))
  const reply = HopMessage.decode(await readFramed(s[Symbol.asyncIterator](), { buf: Buffer.alloc(0) }))
  try { await s.close() } catch { s.abort(new Error('closed')) }
  return reply
}

async function waitFor (pred, ms) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    const v = await pred()
    if (v) return v
    await sleep(100)
  }
  return pred()
}

// Sends n bytes on an echo stream through conn; resolves {sent, echoed, error, ms}.
async function pump (conn, n, { chunk = 4096, gapMs = 0 } = {}) {
  const t0 = Date.now()
  const s = await conn.newStream(ECHO, SOPTS)
  let echoed = 0
  let error = null
  const reading = (async () => {
    try { for await (const c of s) echoed += toBuf(c).length } catch (e) { error = e.message }
  })()
  let sent = 0
  try {
    while (sent < n && s.status === 'open') {
      const k = Math.min(chunk, n - sent)
      if (!s.send(randomBytes(k))) await s.onDrain({ signal: AbortSignal.timeout(20000) })
      sent += k
      if (gapMs) await sleep(gapMs)
    }
    if (s.status === 'open') await s.close({ signal: AbortSignal.timeout(20000) })
  } catch (e) { error = error ?? e.message }
  await Promise.race([reading, sleep(20000)])
  return { sent, echoed, error, ms: Date.now() - t0, status: s.status, conn_status: conn.status }
}

async function modeServer () {
  const node = await makeNode({
    server: { reservations: { maxReservations: Number(opt('--max-reservations', '15')) } }
  })
  out({ peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
  process.stdin.resume()
  await new Promise((resolve) => { process.stdin.on('end', resolve); process.stdin.on('close', resolve) })
  await node.stop()
}

async function modeReach (addr) {
  const node = await makeNode({ client: true, listen: [] })
  const target = multiaddr(addr)
  try {
    const conn = await node.dial(target, { signal: AbortSignal.timeout(30000) })
    check('js dials the peer through the relay (a limited, relayed connection)',
      conn.remoteAddr.toString().includes('/p2p-circuit') && conn.limits != null,
      { remote_addr: conn.remoteAddr.toString(), limits: conn.limits ? { bytes: conn.limits.bytes, seconds: conn.limits.seconds } : null })
    const rtts = []
    for (let i = 0; i < 3; i++) rtts.push(await node.services.ping.ping(target, { signal: AbortSignal.timeout(10000) }))
    check('js pings the peer over the relayed connection', rtts.length === 3, { rtts })
    const r = await node.services.identify.identify(conn, { signal: AbortSignal.timeout(10000) })
    check('js identifies the peer over the relayed connection', typeof r.agentVersion === 'string' &&
      r.agentVersion.startsWith('peermcp/') && r.peerId.equals(conn.remotePeer),
    { agent: r.agentVersion, listen: r.listenAddrs.map(String), protocols: r.protocols })
    // identify's signedPeerRecord: js opens it (RecordEnvelope.openAndCertify, signer = the
    // peer), keeps the envelope in its peerStore and marks the record's addresses certified.
    const certified = await waitFor(async () => {
      const p = await node.peerStore.get(conn.remotePeer)
      return p.peerRecordEnvelope != null && p.addresses.some(a => a.isCertified) ? p : null
    }, 10000)
    let rec = null
    if (certified) {
      const env = await RecordEnvelope.openAndCertify(certified.peerRecordEnvelope, PeerRecord.DOMAIN)
      const pr = PeerRecord.createFromProtobuf(env.payload)
      rec = { peer: pr.peerId.toString(), seq: pr.seqNumber, addrs: pr.multiaddrs.map(String),
        certified: certified.addresses.filter(a => a.isCertified).map(a => a.multiaddr.toString()) }
    }
    const listenAddrs = r.listenAddrs.map(String)
    check('js keeps the signed peer record from identify: signed by the peer, its addresses certified in the peerStore',
      rec != null && rec.peer === conn.remotePeer.toString() && rec.addrs.length > 0 &&
      rec.addrs.every(a => listenAddrs.includes(a)) && rec.certified.length === rec.addrs.length, { record: rec })
  } catch (e) {
    check('js reaches the peer through the relay', false, { error: String(e.message) })
  }
  await node.stop()
}

async function modeHop (relayStr) {
  const relay = multiaddr(relayStr)
  const cap = Number(opt('--cap', '3'))
  const limitData = Number(opt('--limit-data', '65536'))
  const limitSeconds = Number(opt('--limit-seconds', '4'))
  const nodes = []
  try {
    // A reserves through the circuit transport (listening on the relay's /p2p-circuit).
    const a = await makeNode({ client: true, listen: ['/ip4/127.0.0.1/tcp/0', relayStr + '/p2p-circuit'] })
    nodes.push(a)
    const circ = await waitFor(() => a.getMultiaddrs().map(String).find(s => s.includes('/p2p-circuit')), 30000)
    check('js A reserved a slot on the relay (its circuit transport listens on R/p2p-circuit)', !!circ, { addr: circ })
    const mine = await reserve(a, relay)
    const r = mine.reservation
    let voucher = null
    try {
      const env = await RecordEnvelope.openAndCertify(Buffer.from(encodeEnvelope(r.voucher)), 'libp2p-relay-rsvp')
      const v = ReservationVoucher.decode(env.payload)
      voucher = {
        relay: peerIdFromMultihash(Digest.decode(v.relay)).toString(),
        peer: peerIdFromMultihash(Digest.decode(v.peer)).toString(),
        expiration: v.expiration,
        signer: peerIdFromPublicKeyBytes(env.publicKey),
        type: Buffer.from(env.payloadType).toString('hex')
      }
    } catch (e) { voucher = { error: e.message } }
    const relayPeer = relayStr.split('/p2p/')[1]
    const now = Math.floor(Date.now() / 1000)
    check('A\'s RESERVE reply: OK, relay addresses, expire in the future, a voucher that js opens, signed by R for A',
      mine.status === Status.OK && r && r.addrs.length > 0 && Number(r.expire) > now &&
      voucher && voucher.relay === relayPeer && voucher.signer === relayPeer && voucher.peer === a.peerId.toString() &&
      voucher.type === '0302' && BigInt(voucher.expiration) === BigInt(r.expire),
    { status: mine.status, expire: r?.expire, addrs: (r?.addrs ?? []).map(b => multiaddr(b).toString()), voucher })
    check('the reply carries the limits in the spec\'s units (seconds, bytes)',
      mine.limit && mine.limit.duration === limitSeconds && BigInt(mine.limit.data) === BigInt(limitData),
      { limit: mine.limit })

    // B dials A through the relay and exchanges data.
    const b = await makeNode({ client: true, listen: [] })
    nodes.push(b)
    const target = multiaddr(`${relayStr}/p2p-circuit/p2p/${a.peerId}`)
    let conn = await b.dial(target, { signal: AbortSignal.timeout(30000) })
    const small = await pump(conn, 1024)
    check('js B reaches js A through the relay and exchanges data', small.echoed === 1024 && !small.error &&
      conn.remoteAddr.toString().includes('/p2p-circuit'), small)

    // The data limit: more than limit-data bytes in one direction; the relay cuts the circuit.
    const big = await pump(conn, limitData * 3, { chunk: 8192 })
    check('a circuit is cut at its data limit', big.echoed < limitData * 3 && big.echoed <= limitData + 65536 &&
      (big.error != null || big.status !== 'closed' || conn.status !== 'open'), big)

    // The time limit: a slow trickle outlives the circuit's limit-seconds.
    conn = await waitFor(async () => {
      try { return await b.dial(target, { signal: AbortSignal.timeout(10000), force: true }) } catch { return null }
    }, 20000)
    const t0 = Date.now()
    const slow = conn ? await pump(conn, 64 * 100, { chunk: 64, gapMs: 200 }) : { error: 'no second circuit' }
    const lived = Date.now() - t0
    check('a circuit is cut at its time limit', conn != null && slow.echoed < 64 * 100 &&
      lived >= (limitSeconds - 1) * 1000 && lived < (limitSeconds + 10) * 1000, { ...slow, lived_ms: lived })

    // The cap: A holds one reservation; cap-1 more peers fill the relay, the next is refused,
    // and A's refresh still succeeds.
    const statuses = []
    for (let i = 0; i < cap; i++) {
      const c = await makeNode({ listen: [] })
      nodes.push(c)
      statuses.push((await reserve(c, relay)).status)
    }
    const wantStatuses = [...Array(cap - 1).fill(Status.OK), Status.RESERVATION_REFUSED]
    check(`reservations beyond the cap (${cap}) are refused with RESERVATION_REFUSED`,
      JSON.stringify(statuses) === JSON.stringify(wantStatuses), { statuses })
    const again = await reserve(a, relay)
    check('a refresh of an existing reservation still succeeds when the relay is full', again.status === Status.OK,
      { status: again.status })
  } catch (e) {
    check('hop scenario ran to the end', false, { error: String(e.stack ?? e.message).slice(0, 800) })
  }
  for (const n of nodes) await n.stop()
}

// The reply's voucher comes decoded (js's pb types it as an Envelope message): back to bytes.
function encodeEnvelope (v) {
  const field = (no, bytes) => Buffer.concat([uvarint(no << 3 | 2), uvarint(bytes.length), Buffer.from(bytes)])
  return Buffer.concat([field(1, v.publicKey), field(2, v.payloadType),
    field(3, ReservationVoucher.encode(v.payload)), field(5, v.signature)])
}
function peerIdFromPublicKeyBytes (pk) {
  return peerIdFromPublicKey(pk).toString()
}

async function modeAutonat (serverStr, closedPort) {
  const node = await makeNode({ autonat: true })
  try {
    const conn = await node.dial(multiaddr(serverStr), { signal: AbortSignal.timeout(15000) })
    await waitFor(async () => (await node.peerStore.get(conn.remotePeer)).protocols.includes('/libp2p/autonat/1.0.0'), 15000)
    const an = node.services.autonat
    const mine = node.getMultiaddrs().map(m => multiaddr(m.toString().split('/p2p/')[0]))
    const closed = multiaddr(`/ip4/127.0.0.1/tcp/${closedPort}`)
    for (const [name, ma, want] of [['a dialable listen address', mine[0], 'OK'], ['an undialable address', closed, 'E_DIAL_ERROR']]) {
      // js's client keeps its pending verifications in dialResults; it only asks about public
      // addresses, so on loopback the entry is made here and js's own askPeerToVerify runs.
      const results = { multiaddr: ma, success: 0, failure: 0, networkSegments: [], verifyingPeers: new Set(), queue: { abort () {}, size: 0 }, type: 'transport' }
      an.dialResults.set(ma.toString(), results)
      const confirmed = []
      const am = an.components.addressManager
      const orig = am.confirmObservedAddr.bind(am)
      am.confirmObservedAddr = (m) => { confirmed.push(m.toString()); return orig(m) }
      const segment = String(Date.now() % 1000) // a new segment each time: js counts one answer per segment
      await an.askPeerToVerify(conn, segment, { multiaddr: ma, signal: AbortSignal.timeout(30000) })
      am.confirmObservedAddr = orig
      const got = results.success ? 'OK' : results.failure ? 'E_DIAL_ERROR' : 'none'
      check(`js autonat client: the server answers ${want} for ${name}`, got === want &&
        (want !== 'OK' || confirmed.includes(ma.toString())), { addr: ma.toString(), got, confirmed })
      await sleep(1100)
    }
  } catch (e) {
    check('autonat scenario ran to the end', false, { error: String(e.stack ?? e.message).slice(0, 800) })
  }
  await node.stop()
}

try {
  if (mode === 'server') await modeServer()
  else if (mode === 'reach') await modeReach(args[1])
  else if (mode === 'hop') await modeHop(args[1])
  else if (mode === 'autonat') await modeAutonat(args[1], args[2])
  else { console.error('usage: relay_js.mjs server|reach|hop|autonat …'); process.exit(2) }
} catch (e) {
  check(`${mode} ran`, false, { error: String(e.stack ?? e.message).slice(0, 800) })
}
log('done', mode, 'failed', failed)
process.exit(failed ? 1 : 0)
