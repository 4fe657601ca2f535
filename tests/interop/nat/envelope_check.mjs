// Signed envelopes and peer records against js-libp2p (@libp2p/peer-record, @libp2p/crypto):
//   envelope_check.mjs seal SEED_HEX SEQ ADDR...   a peer record signed by js with the Ed25519 key
//                                                 of that 32-byte seed: prints the envelope hex
//   envelope_check.mjs open HEX                   opens an envelope made elsewhere (peermcp) as a
//                                                 peer record: prints {"ok","peer_id","seq","addrs"}
//                                                 or {"ok":false,"error"}
//   envelope_check.mjs voucher-open HEX           opens a relay reservation voucher (domain
//                                                 libp2p-relay-rsvp, type 0x0302) and prints its fields
// Run by tests/suites/47-nat.sh with the envelopes nat_driver makes; the fixed vectors in
// tests/p2p/test_envelope.c came from `seal`.
const { generateKeyPairFromSeed } = await import('@libp2p/crypto/keys')
const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
const { PeerRecord, RecordEnvelope } = await import('@libp2p/peer-record')
const { multiaddr } = await import('@multiformats/multiaddr')

const hex = (u) => Buffer.from(u).toString('hex')
const [cmd, ...args] = process.argv.slice(2)
try {
  if (cmd === 'seal') {
    const key = await generateKeyPairFromSeed('Ed25519', Buffer.from(args[0], 'hex'))
    const peerId = peerIdFromPrivateKey(key)
    const rec = new PeerRecord({ peerId, seqNumber: BigInt(args[1]), multiaddrs: args.slice(2).map((a) => multiaddr(a)) })
    const env = await RecordEnvelope.seal(rec, key)
    console.log(hex(env.marshal()))
  } else if (cmd === 'open') {
    const env = await RecordEnvelope.openAndCertify(Buffer.from(args[0], 'hex'), PeerRecord.DOMAIN)
    const rec = PeerRecord.createFromProtobuf(env.payload)
    console.log(JSON.stringify({ ok: true, peer_id: rec.peerId.toString(), seq: rec.seqNumber.toString(),
      addrs: rec.multiaddrs.map(String), type: hex(env.payloadType),
      signer_matches: rec.peerId.publicKey != null && rec.peerId.publicKey.equals(env.publicKey) }))
  } else if (cmd === 'voucher-open') {
    const env = await RecordEnvelope.openAndCertify(Buffer.from(args[0], 'hex'), 'libp2p-relay-rsvp')
    console.log(JSON.stringify({ ok: true, type: hex(env.payloadType), payload: hex(env.payload) }))
  } else {
    throw new Error('usage: seal|open|voucher-open')
  }
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e.message ?? e) }))
  process.exit(1)
}
