// js-libp2p AutoNAT v2 peers (@libp2p/autonat-v2 2.0.15, libp2p 3.3.11) for the AutoNAT v2
// interop checks: tests/interop/nat/nat_checks.py (suite 47, loopback) and
// tests/interop/nat/netns_checks.py (suite 48, NAT namespaces). Prints JSON lines on stdout.
//
//   autonat2_js.mjs ask SERVER_MA ADDR...   [--listen MA]...
//        a js node with autoNATv2() dials SERVER_MA and, for each ADDR in turn, runs js's own
//        AutoNATv2Client.askPeerToVerify (nonce registered, dial-back handled by js, dial data
//        paid by js) about that one address; prints {"addr","success","failure","confirmed"}
//        per ADDR. js only asks by itself about public addresses it has not verified (and it
//        ignores identify-observed TCP addresses), so the addresses are handed to it here, as
//        the v1 check does.
//   autonat2_js.mjs verify SERVER_MA --listen MA
//        js's natural flow: a js node listening on a public MA dials SERVER_MA and js's client
//        verifies its unverified listen address by itself (on connect, when identify shows
//        the dial-request protocol); prints {"verified": [...], "results": {...}} after the
//        address was confirmed or 30 s.
//   autonat2_js.mjs server --listen MA
//        a js node with autoNATv2() (its v2 server; also a circuit relay so that peermcp keeps
//        a connection to it by reserving) until stdin closes; prints {"peer_id","addrs"}.
const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { circuitRelayServer } = await import('@libp2p/circuit-relay-v2')
const { autoNATv2 } = await import('@libp2p/autonat-v2')
const { multiaddr } = await import('@multiformats/multiaddr')

const args = process.argv.slice(2)
const mode = args[0]
const listens = []
const pos = []
for (let i = 1; i < args.length; i++) {
  if (args[i] === '--listen') listens.push(args[++i])
  else pos.push(args[i])
}
const out = (o) => console.log(JSON.stringify(o, (k, v) => typeof v === 'bigint' ? v.toString() : v))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const REQ = '/libp2p/autonat/2/dial-request'

async function makeNode (listen, { relay = false, announce = false } = {}) {
  const services = { identify: identify(), ping: ping(), autonat2: autoNATv2() }
  if (relay) services.relay = circuitRelayServer()
  return createLibp2p({
    addresses: announce ? { listen, announce: listen } : { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: { denyDialMultiaddr: () => false },
    connectionManager: { maxConnections: 1000, inboundConnectionThreshold: 10000, maxIncomingPendingConnections: 100 },
    services
  })
}

async function waitFor (pred, ms) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await pred()) return true
    await sleep(100)
  }
  return !!(await pred())
}

async function connectTo (node, server) {
  const conn = await node.dial(multiaddr(server), { signal: AbortSignal.timeout(15000) })
  const ok = await waitFor(async () => (await node.peerStore.get(conn.remotePeer)).protocols.includes(REQ), 15000)
  if (!ok) throw new Error('the server does not list ' + REQ)
  return conn
}

async function modeAsk (server, addrs) {
  const node = await makeNode(listens.length ? listens : ['/ip4/127.0.0.1/tcp/0'])
  try {
    const conn = await connectTo(node, server)
    const client = node.services.autonat2.client
    const am = client.components.addressManager
    // The server's dial-back is a new connection, on which js's topology starts its own
    // verification round: it drops the dial results of addresses js would not have asked about
    // by itself (loopback ones), the very entry this request is about. Driven by hand here.
    client.verifyExternalAddresses = async () => {}
    for (const a of addrs) {
      const ma = multiaddr(a)
      client.dialResults.clear()
      const results = { multiaddr: ma, success: 0, failure: 0, networkSegments: [], verifyingPeers: new Set(), type: 'transport' }
      // verifyingPeers: js's peerSet; a Set of PeerIds is what it calls has/add on
      results.verifyingPeers = { has: () => false, add: () => {} }
      client.dialResults.set(ma.toString(), results)
      const confirmed = []
      const orig = am.confirmObservedAddr.bind(am)
      am.confirmObservedAddr = (m, o) => { confirmed.push(m.toString()); return orig(m, o) }
      const nonce = BigInt(Math.floor(Math.random() * Number.MAX_SAFE_INTEGER))
      client.nonces.add(nonce)
      let error = null
      try {
        await client.askPeerToVerify(conn, String(Date.now() % 100000), nonce, { signal: AbortSignal.timeout(40000) })
      } catch (e) {
        error = String(e.message ?? e)
      } finally {
        client.nonces.delete(nonce)
        am.confirmObservedAddr = orig
      }
      out({ addr: a, success: results.success, failure: results.failure, confirmed: confirmed.includes(ma.toString()), error })
      await sleep(300)
    }
  } catch (e) {
    out({ error: String(e.stack ?? e.message).slice(0, 800) })
  }
  await node.stop()
}

async function modeVerify (server) {
  const node = await makeNode(listens)
  const client = node.services.autonat2.client
  const seen = {}
  const origSet = client.dialResults.set.bind(client.dialResults)
  client.dialResults.set = (k, v) => { seen[k] = v; return origSet(k, v) }
  const verified = () => node.components.addressManager.getAddressesWithMetadata()
    .filter((a) => a.verified).map((a) => a.multiaddr.toString())
  try {
    await connectTo(node, server)
    await waitFor(() => listens.every((l) => verified().includes(l)), 30000)
  } catch (e) {
    out({ error: String(e.stack ?? e.message).slice(0, 800) })
  }
  const results = {}
  for (const [k, v] of Object.entries(seen)) results[k] = { success: v.success, failure: v.failure, result: v.result ?? null }
  out({ verified: verified(), results })
  await node.stop()
}

async function modeServer () {
  const node = await makeNode(listens, { relay: true, announce: true })
  out({ peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map((m) => m.toString()) })
  const stop = async () => {
    await node.stop()
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.stdin.on('end', stop)
  process.stdin.resume()
}

try {
  if (mode === 'ask') await modeAsk(pos[0], pos.slice(1))
  else if (mode === 'verify') await modeVerify(pos[0])
  else if (mode === 'server') await modeServer()
  else { console.error('usage: autonat2_js.mjs ask|verify|server …'); process.exit(2) }
} catch (e) {
  out({ error: String(e.stack ?? e.message).slice(0, 800) })
}
if (mode !== 'server') process.exit(0)
