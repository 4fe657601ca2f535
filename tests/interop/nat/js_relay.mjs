// A js-libp2p circuit relay v2 (@libp2p/circuit-relay-v2 circuitRelayServer, Node 22) for
// tests/interop/nat/netns_checks.py (suite 48): peermcp nodes behind NAT reserve on it and are
// called through it.
// Usage: js_relay.mjs --listen MA
// Prints {"peer_id","addrs"} as one JSON line once listening; runs until stdin closes or
// SIGTERM.
const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { circuitRelayServer } = await import('@libp2p/circuit-relay-v2')

const args = process.argv.slice(2)
const li = args.indexOf('--listen')
const listen = li >= 0 ? args[li + 1] : '/ip4/0.0.0.0/tcp/0'

const node = await createLibp2p({
  // the relay is on the public side: its listen address is what it is, say so (js lists only
  // verified addresses in RESERVE replies)
  addresses: { listen: [listen], announce: [listen] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionGater: { denyDialMultiaddr: () => false },
  services: { identify: identify(), relay: circuitRelayServer() }
})
console.log(JSON.stringify({ peer_id: node.peerId.toString(), addrs: node.getMultiaddrs().map((m) => m.toString()) }))

const stop = async () => {
  await node.stop()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
