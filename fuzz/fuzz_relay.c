/* fuzz_relay.c — libFuzzer target: circuit relay v2 HopMessage / StopMessage framing and
 * decoding, and reservation vouchers (p2p/proto/relay). The input is read as a framed message
 * (else as a bare body), decoded both as a HopMessage and as a StopMessage, and opened as a
 * voucher envelope; a decoded voucher inside a reservation is opened too. Invariants: nothing
 * crashes or leaks; a decoded message re-encodes (or is -E2BIG: the encoder writes both limit
 * fields and the expiry, which can grow a message at the ceiling) and the re-encoding decodes
 * to the same fields. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/relay.h"

static relay_msg m, m2; /* about 18 KiB each: not on the stack */

static void same(const relay_msg *a, const relay_msg *b) {
  if (a->stop != b->stop || a->type != b->type || a->has_status != b->has_status || a->status != b->status ||
      a->has_peer != b->has_peer || a->n_peer_addrs != b->n_peer_addrs || a->has_reservation != b->has_reservation ||
      a->n_rsv_addrs != b->n_rsv_addrs || a->voucher_len != b->voucher_len || a->has_limit != b->has_limit ||
      a->limit_duration != b->limit_duration || a->limit_data != b->limit_data || b->n_skipped)
    abort();
  if (a->has_peer && !peerid_equal(&a->peer, &b->peer)) abort();
  for (size_t i = 0; i < a->n_peer_addrs; i++)
    if (!multiaddr_equal(&a->peer_addrs[i], &b->peer_addrs[i])) abort();
  for (size_t i = 0; i < a->n_rsv_addrs; i++)
    if (!multiaddr_equal(&a->rsv_addrs[i], &b->rsv_addrs[i])) abort();
  if (a->has_reservation && a->expire != b->expire) abort();
  if (memcmp(a->voucher, b->voucher, a->voucher_len) != 0) abort();
}

static void roundtrip(const uint8_t *body, size_t bl, bool stop) {
  if (relay_decode(body, bl, stop, &m) != 0) return;
  if (m.voucher_len) {
    relay_voucher v;
    (void)!relay_voucher_open(m.voucher, m.voucher_len, &v);
  }
  (void)relay_status_name(m.status);
  buf b;
  buf_init(&b, 2 * RELAY_MAX_MSG);
  int rc = relay_encode(&m, &b);
  if (rc == 0) {
    const uint8_t *b2;
    size_t l2, u2;
    if (relay_frame_parse(buf_ptr(&b), buf_len(&b), &b2, &l2, &u2) != 0 || u2 != buf_len(&b)) abort();
    if (relay_decode(b2, l2, stop, &m2) != 0) abort();
    same(&m, &m2);
  } else if (rc != -E2BIG) {
    abort();
  }
  buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *body;
  size_t bl, used;
  if (relay_frame_parse(data, size, &body, &bl, &used) != 0) {
    body = data;
    bl = size;
  }
  roundtrip(body, bl, false);
  roundtrip(body, bl, true);
  relay_voucher v;
  (void)!relay_voucher_open(data, size, &v);
  return 0;
}
