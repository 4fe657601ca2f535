/* fuzz_envelope.c — libFuzzer target: signed envelopes and peer records (p2p/core/envelope).
 * The input is tried as an envelope (peer-record and relay-voucher domains) and as a bare
 * PeerRecord payload. Invariants: nothing crashes or leaks; a decoded record re-encodes and
 * the re-encoding decodes to the same PeerId, seq and addresses. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  peer_record r;
  if (peer_record_open(data, size, &r) == 0) peer_record_clear(&r);
  envelope e;
  if (envelope_open(data, size, "libp2p-relay-rsvp", NULL, 0, &e) == 0) envelope_clear(&e);
  if (peer_record_decode(data, size, &r) != 0) return 0;
  buf b;
  buf_init(&b, ENVELOPE_MAX_BYTES);
  if (peer_record_encode(&r, &b) == 0) {
    peer_record r2;
    if (peer_record_decode(buf_ptr(&b), buf_len(&b), &r2) != 0) abort();
    if (!peerid_equal(&r.id, &r2.id) || r.seq != r2.seq || r.n_addrs != r2.n_addrs || r2.n_skipped) abort();
    for (size_t i = 0; i < r.n_addrs; i++)
      if (!multiaddr_equal(&r.addrs[i], &r2.addrs[i])) abort();
    peer_record_clear(&r2);
  }
  buf_free(&b);
  peer_record_clear(&r);
  return 0;
}
