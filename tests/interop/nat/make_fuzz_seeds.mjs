// Seed corpora for the relay / AutoNAT / DCUtR fuzz targets, encoded by js-libp2p's own
// protobuf codecs (@libp2p/circuit-relay-v2, @libp2p/autonat, @libp2p/dcutr) and vouchers
// sealed by @libp2p/peer-record with a fixed Ed25519 key, so the seeds are what a real peer
// sends. Run once by hand (from tests/): node interop/nat/make_fuzz_seeds.mjs ../fuzz/corpus
// Writes <dir>/relay/js_*, <dir>/autonat/js_*, <dir>/autonat2/js_* (@libp2p/autonat-v2),
// <dir>/dcutr/js_*: varint-length-prefixed
// messages (what travels on the stream), plus the bare bodies of some.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const nm = fileURLToPath(new URL('../../node_modules/', import.meta.url))
const relayPb = await import(join(nm, '@libp2p/circuit-relay-v2/dist/src/pb/index.js'))
const { ReservationVoucherRecord } = await import(join(nm, '@libp2p/circuit-relay-v2/dist/src/server/reservation-voucher.js'))
const { Message } = await import(join(nm, '@libp2p/autonat/dist/src/pb/index.js'))
const { HolePunch } = await import(join(nm, '@libp2p/dcutr/dist/src/pb/message.js'))
const a2 = await import(join(nm, '@libp2p/autonat-v2/dist/src/pb/index.js'))
const { generateKeyPairFromSeed } = await import('@libp2p/crypto/keys')
const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
const { RecordEnvelope } = await import('@libp2p/peer-record')
const { multiaddr } = await import('@multiformats/multiaddr')

const out = process.argv[2]
if (!out) { console.error('usage: make_fuzz_seeds.mjs CORPUS_DIR'); process.exit(2) }

function uvarint (n) {
  const b = []
  do { let x = n & 0x7f; n >>>= 7; if (n) x |= 0x80; b.push(x) } while (n)
  return Uint8Array.from(b)
}
const framed = (body) => Buffer.concat([uvarint(body.length), body])
function write (stem, name, body, alsoBare = false) {
  mkdirSync(join(out, stem), { recursive: true })
  writeFileSync(join(out, stem, 'js_' + name), framed(body))
  if (alsoBare) writeFileSync(join(out, stem, 'js_' + name + '_bare'), body)
}

const relayKey = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(1))
const peerKey = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(2))
const relay = peerIdFromPrivateKey(relayKey)
const peer = peerIdFromPrivateKey(peerKey)
const ma = (s) => multiaddr(s).bytes
const relayAddrs = [ma(`/ip4/127.0.0.1/tcp/4001/p2p/${relay}`), ma(`/ip6/::1/tcp/4001/p2p/${relay}`)]
const { publicKeyToProtobuf } = await import('@libp2p/crypto/keys')
const sealed = await RecordEnvelope.seal(new ReservationVoucherRecord({ relay, peer, expiration: 1893456000n }), relayKey)
const voucher = sealed.marshal()
// What the js relay puts into a RESERVE reply (server/index.js makeReservation): the envelope
// as a message whose payload is the ReservationVoucher message (same bytes on the wire).
const voucherMsg = {
  publicKey: publicKeyToProtobuf(sealed.publicKey), payloadType: sealed.payloadType,
  payload: { relay: relay.toMultihash().bytes, peer: peer.toMultihash().bytes, expiration: 1893456000n },
  signature: sealed.signature
}

const { HopMessage, StopMessage, Status } = relayPb
write('relay', 'hop_reserve', HopMessage.encode({ type: HopMessage.Type.RESERVE }), true)
write('relay', 'hop_reserve_ok', HopMessage.encode({
  type: HopMessage.Type.STATUS, status: Status.OK,
  reservation: { expire: 1893456000n, addrs: relayAddrs, voucher: voucherMsg },
  limit: { duration: 120000, data: 131072n }
}), true)
write('relay', 'hop_refused', HopMessage.encode({ type: HopMessage.Type.STATUS, status: Status.RESERVATION_REFUSED }))
write('relay', 'hop_connect', HopMessage.encode({ type: HopMessage.Type.CONNECT, peer: { id: peer.toMultihash().bytes, addrs: [] } }), true)
write('relay', 'hop_connect_ok', HopMessage.encode({ type: HopMessage.Type.STATUS, status: Status.OK, limit: { duration: 120, data: 131072n } }))
write('relay', 'stop_connect', StopMessage.encode({
  type: StopMessage.Type.CONNECT, peer: { id: relay.toMultihash().bytes, addrs: [ma('/ip4/10.0.0.2/tcp/9')] },
  limit: { duration: 120, data: 1024n }
}), true)
write('relay', 'stop_status', StopMessage.encode({ type: StopMessage.Type.STATUS, status: Status.OK }))
mkdirSync(join(out, 'relay'), { recursive: true })
writeFileSync(join(out, 'relay', 'js_voucher_envelope'), voucher)

write('autonat', 'dial', Message.encode({
  type: Message.MessageType.DIAL,
  dial: { peer: { id: peer.toMultihash().bytes, addrs: [ma('/ip4/127.0.0.1/tcp/4001'), ma('/ip4/1.2.3.4/tcp/4001'), ma('/ip6/::1/tcp/5')] } }
}), true)
write('autonat', 'ok', Message.encode({
  type: Message.MessageType.DIAL_RESPONSE,
  dialResponse: { status: Message.ResponseStatus.OK, addr: ma('/ip4/1.2.3.4/tcp/4001') }
}), true)
write('autonat', 'dial_error', Message.encode({
  type: Message.MessageType.DIAL_RESPONSE,
  dialResponse: { status: Message.ResponseStatus.E_DIAL_ERROR, statusText: 'dial failed' }
}))

write('dcutr', 'connect', HolePunch.encode({
  type: HolePunch.Type.CONNECT, observedAddresses: [ma('/ip4/1.2.3.4/tcp/4001'), ma('/ip6/2001:db8::1/tcp/4001')]
}), true)
write('dcutr', 'sync', HolePunch.encode({ type: HolePunch.Type.SYNC, observedAddresses: [] }), true)

// AutoNAT v2 (@libp2p/autonat-v2 2.0.15's codecs): each message, and whole streams
const A2 = a2.Message
write('autonat2', 'dial_request', A2.encode({
  dialRequest: { addrs: [ma('/ip4/1.2.3.4/tcp/4001'), ma('/ip4/5.6.7.8/tcp/4001'), ma('/ip6/2001:db8::1/tcp/5')], nonce: 12345678901234567n }
}), true)
write('autonat2', 'dial_response_ok', A2.encode({
  dialResponse: { status: a2.DialResponse.ResponseStatus.OK, addrIdx: 0, dialStatus: a2.DialStatus.OK }
}), true)
write('autonat2', 'dial_response_error', A2.encode({
  dialResponse: { status: a2.DialResponse.ResponseStatus.OK, addrIdx: 1, dialStatus: a2.DialStatus.E_DIAL_ERROR }
}))
write('autonat2', 'dial_response_refused', A2.encode({
  dialResponse: { status: a2.DialResponse.ResponseStatus.E_DIAL_REFUSED, addrIdx: 0, dialStatus: a2.DialStatus.UNUSED }
}))
write('autonat2', 'dial_data_request', A2.encode({ dialDataRequest: { addrIdx: 0, numBytes: 30000n } }), true)
write('autonat2', 'dial_data_response', A2.encode({ dialDataResponse: { data: new Uint8Array(4096) } }))
write('autonat2', 'dial_back', a2.DialBack.encode({ nonce: 12345678901234567n }), true)
write('autonat2', 'dial_back_response', a2.DialBackResponse.encode({ status: a2.DialBackResponse.DialBackStatus.OK }))
{
  // a client's stream paying for another IP: DialRequest, then 8 DialDataResponses
  const parts = [framed(A2.encode({ dialRequest: { addrs: [ma('/ip4/5.6.7.8/tcp/4001')], nonce: 7n } }))]
  for (let i = 0; i < 8; i++) parts.push(framed(A2.encode({ dialDataResponse: { data: new Uint8Array(4096) } })))
  mkdirSync(join(out, 'autonat2'), { recursive: true })
  writeFileSync(join(out, 'autonat2', 'js_stream_request_and_data'), Buffer.concat(parts))
  // a server's stream to a client: DialDataRequest then DialResponse
  writeFileSync(join(out, 'autonat2', 'js_stream_data_request_and_response'), Buffer.concat([
    framed(A2.encode({ dialDataRequest: { addrIdx: 0, numBytes: 35000n } })),
    framed(A2.encode({ dialResponse: { status: a2.DialResponse.ResponseStatus.OK, addrIdx: 0, dialStatus: a2.DialStatus.OK } }))]))
}
