// js-libp2p discovery peer for peermcp's mDNS and Kademlia interop tests (issue 15), Node 22
// from tests/node_modules. TCP + Noise + Yamux + identify + ping, plus @libp2p/kad-dht and
// optionally @libp2p/mdns.
// Usage:
//   disco_peer.mjs [--dht server|client|off] [--protocol ID] [--mdns] [--mdns-interval MS]
//                  [--listen MA]... [--bootstrap MA]...
// Prints {"peer_id","addrs"} as its first stdout line, then reads one JSON command per stdin
// line and answers each with one JSON line {"cmd",...,"ok":bool,...}:
//   {"cmd":"dial","addr":MA}                     dial (also puts the peer into the routing table
//                                                when identify shows the DHT protocol)
//   {"cmd":"find_peer","id":PEERID}              DHT peer routing → {"addrs":[...]}
//   {"cmd":"get","key":TEXT}                     DHT get_value → {"value":TEXT}
//   {"cmd":"put","key":TEXT,"value":TEXT}        DHT put_value
//   {"cmd":"provide","ns":TEXT}                  provide CIDv1 raw(sha256(ns))
//   {"cmd":"providers","ns":TEXT}                find providers of it → {"providers":[{"id","addrs"}]}
//   {"cmd":"table"}                              routing table → {"size","peers":[...]}
//   {"cmd":"mdns_wait","id":PEERID,"timeout_ms":N}   wait for that peer from mDNS → {"addrs"}
//   {"cmd":"ping","id":PEERID}                   libp2p ping → {"rtt_ms"}
// Runs until stdin closes or SIGTERM. Logs go to stderr.
import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { kadDHT, passthroughMapper } = await import('@libp2p/kad-dht')
const { mdns } = await import('@libp2p/mdns')
const { multiaddr } = await import('@multiformats/multiaddr')
const { peerIdFromString } = await import('@libp2p/peer-id')
const { CID } = await import('multiformats/cid')
const Digest = await import('multiformats/hashes/digest')

const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : dflt
}
const opts = (name) => args.flatMap((a, i) => (a === name ? [args[i + 1]] : []))
const flag = (name) => args.includes(name)
const log = (...a) => console.error('[js-disco]', ...a)

const dhtMode = opt('--dht', 'server')
const protocol = opt('--protocol', '/ipfs/kad/1.0.0')
const listen = opts('--listen')
if (listen.length === 0) listen.push('/ip4/127.0.0.1/tcp/0')

// The Python rendezvous records: JSON {"peer_id","multiaddr","ts"}; the greatest ts wins.
const parseRec = (v) => JSON.parse(new TextDecoder().decode(v))
const validators = {
  'ipfs-accelerate': async (key, value) => {
    const r = parseRec(value)
    if (typeof r.peer_id !== 'string' || typeof r.multiaddr !== 'string' || typeof r.ts !== 'number') {
      throw new Error('bad ipfs-accelerate record')
    }
  }
}
const selectors = {
  'ipfs-accelerate': (key, values) => {
    let best = 0
    values.forEach((v, i) => { if (parseRec(v).ts > parseRec(values[best]).ts) best = i })
    return best
  }
}

const services = { identify: identify(), ping: ping() }
if (dhtMode !== 'off') {
  services.dht = kadDHT({
    protocol,
    clientMode: dhtMode === 'client',
    peerInfoMapper: passthroughMapper, // loopback addresses are what these tests have
    allowQueryWithZeroPeers: true,
    validators,
    selectors,
    initialQuerySelfInterval: 500
  })
}

const discovered = new Map() // peer id → addrs, from mDNS
const node = await createLibp2p({
  addresses: { listen },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  peerDiscovery: flag('--mdns') ? [mdns({ interval: Number(opt('--mdns-interval', '1000')) })] : [],
  services
})
node.addEventListener('peer:discovery', (e) => {
  const id = e.detail.id.toString()
  discovered.set(id, e.detail.multiaddrs.map(String))
  log('discovered', id, e.detail.multiaddrs.map(String).join(' '))
})

for (const b of opts('--bootstrap')) {
  try { await node.dial(multiaddr(b)) } catch (err) { log('bootstrap dial failed', b, err.message) }
}

console.log(JSON.stringify({ peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) }))

const nsKey = (ns) => CID.createV1(0x55, Digest.create(0x12, createHash('sha256').update(ns).digest()))
const enc = (s) => new TextEncoder().encode(s)
const withTimeout = (ms) => AbortSignal.timeout(ms ?? 30000)

async function run (c) {
  switch (c.cmd) {
    case 'dial': {
      const conn = await node.dial(multiaddr(c.addr), { signal: withTimeout(c.timeout_ms) })
      return { peer: conn.remotePeer.toString() }
    }
    case 'find_peer': {
      const p = await node.peerRouting.findPeer(peerIdFromString(c.id), { signal: withTimeout(c.timeout_ms) })
      return { addrs: p.multiaddrs.map(String) }
    }
    case 'get': {
      for await (const ev of node.services.dht.get(enc(c.key), { signal: withTimeout(c.timeout_ms) })) {
        if (ev.name === 'VALUE') return { value: new TextDecoder().decode(ev.value), from: ev.from.toString() }
      }
      throw new Error('no value')
    }
    case 'put': {
      const events = {}
      for await (const ev of node.services.dht.put(enc(c.key), enc(c.value), { signal: withTimeout(c.timeout_ms) })) {
        events[ev.name] = (events[ev.name] ?? 0) + 1
      }
      return { events }
    }
    case 'provide': {
      await node.contentRouting.provide(nsKey(c.ns), { signal: withTimeout(c.timeout_ms) })
      return { cid: nsKey(c.ns).toString() }
    }
    case 'providers': {
      const providers = []
      for await (const p of node.contentRouting.findProviders(nsKey(c.ns), { signal: withTimeout(c.timeout_ms) })) {
        providers.push({ id: p.id.toString(), addrs: p.multiaddrs.map(String) })
        if (c.want && providers.some((x) => x.id === c.want)) break
      }
      return { providers }
    }
    case 'table': {
      const rt = node.services.dht.routingTable
      const kadId = createHash('sha256').update(node.peerId.toMultihash().bytes).digest()
      return { size: rt.size, peers: rt.closestPeers(kadId, { count: 100 }).map(String) }
    }
    case 'mdns_wait': {
      const deadline = Date.now() + (c.timeout_ms ?? 30000)
      while (Date.now() < deadline) {
        if (discovered.has(c.id)) return { addrs: discovered.get(c.id) }
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      throw new Error('not discovered')
    }
    case 'ping': {
      const rtt = await node.services.ping.ping(peerIdFromString(c.id), { signal: withTimeout(c.timeout_ms) })
      return { rtt_ms: rtt }
    }
    default:
      throw new Error('unknown command ' + c.cmd)
  }
}

const rl = createInterface({ input: process.stdin })
rl.on('line', async (line) => {
  if (!line.trim()) return
  let c
  try { c = JSON.parse(line) } catch { return }
  try {
    const r = await run(c)
    console.log(JSON.stringify({ cmd: c.cmd, tag: c.tag, ok: true, ...r }))
  } catch (err) {
    console.log(JSON.stringify({ cmd: c.cmd, tag: c.tag, ok: false, error: String(err?.message ?? err) }))
  }
})
const stop = async () => { await node.stop(); process.exit(0) }
rl.on('close', stop)
process.on('SIGTERM', stop)
