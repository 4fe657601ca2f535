/* fuzz_autonat.c — libFuzzer target: AutoNAT v1 Message framing and decoding, the server's
 * dial-back choice and the client's tally (p2p/proto/autonat). Invariants: nothing crashes or
 * leaks; a decoded message re-encodes and the re-encoding decodes to the same fields; the
 * server never chooses more than AUTONAT_MAX_DIALS addresses, nor one whose IP differs from
 * the requester's. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/autonat.h"

static autonat_msg m, m2;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *body;
  size_t bl, used;
  if (autonat_frame_parse(data, size, &body, &bl, &used) != 0) {
    body = data;
    bl = size;
  }
  if (autonat_decode(body, bl, &m) != 0) return 0;
  (void)autonat_status_name(m.status);
  buf b;
  buf_init(&b, 2 * AUTONAT_MAX_MSG);
  int rc = autonat_encode(&m, &b);
  if (rc == 0) {
    const uint8_t *b2;
    size_t l2, u2;
    if (autonat_frame_parse(buf_ptr(&b), buf_len(&b), &b2, &l2, &u2) != 0 || u2 != buf_len(&b)) abort();
    if (autonat_decode(b2, l2, &m2) != 0) abort();
    if (m.type != m2.type || m.has_dial != m2.has_dial || m.has_peer_id != m2.has_peer_id ||
        m.n_addrs != m2.n_addrs || m2.n_skipped || m.has_response != m2.has_response || m.status != m2.status ||
        strcmp(m.status_text, m2.status_text) != 0 || m.has_addr != m2.has_addr)
      abort();
    if (m.has_peer_id && !peerid_equal(&m.peer, &m2.peer)) abort();
    for (size_t i = 0; i < m.n_addrs; i++)
      if (!multiaddr_equal(&m.addrs[i], &m2.addrs[i])) abort();
    if (m.has_addr && !multiaddr_equal(&m.addr, &m2.addr)) abort();
  } else if (rc != -E2BIG) {
    abort();
  }
  buf_free(&b);
  /* The server's choice, with the first address (or the response's) as the observed one. */
  if (m.n_addrs) {
    multiaddr out[AUTONAT_MAX_DIALS + 1];
    const multiaddr *obs = m.has_addr ? &m.addr : &m.addrs[0];
    size_t n = autonat_dialable(obs, m.addrs, m.n_addrs, m.addrs + 1, m.n_addrs - 1, true, out);
    if (n > AUTONAT_MAX_DIALS) abort();
    size_t n2 = autonat_dialable(obs, m.addrs, m.n_addrs, NULL, 0, false, out);
    for (size_t i = 0; i < n2; i++)
      if (autonat_addr_is_private(&out[i])) abort();
  }
  if (m.has_response) {
    autonat_tally t;
    autonat_tally_init(&t, 1);
    peerid p = m.has_peer_id ? m.peer : (peerid){0};
    int r = autonat_tally_add(&t, &p, m.status);
    if (r < 0 || r > 2) abort();
  }
  return 0;
}
