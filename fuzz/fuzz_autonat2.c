/* fuzz_autonat2.c — libFuzzer target: AutoNAT v2 (p2p/proto/autonat2): Message framing and
 * decoding, DialBack / DialBackResponse, the server's one-address choice, and both sides of
 * a dial-request stream fed the input. Invariants: nothing crashes or leaks; a decoded
 * message re-encodes and decodes to the same fields; the server never chooses an address
 * outside the request, a private one when private ones are refused, or another IP without
 * the dial-data cost; it dials only after the cost is paid; the client never pays more than
 * its ceiling. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/autonat.h"
#include "p2p/proto/autonat2.h"

static autonat2_msg m, m2;

static bool admit_some(void *ud, bool other) {
  (void)other;
  return (*(const uint8_t *)ud & 1) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *body;
  size_t bl, used;
  if (autonat2_frame_parse(data, size, &body, &bl, &used) != 0) {
    body = data;
    bl = size;
  }
  uint64_t nonce;
  uint32_t st;
  (void)!autonat2_dialback_decode(body, bl < AUTONAT2_MAX_DIALBACK_MSG ? bl : AUTONAT2_MAX_DIALBACK_MSG, &nonce);
  (void)!autonat2_dialback_response_decode(body, bl < AUTONAT2_MAX_DIALBACK_MSG ? bl : AUTONAT2_MAX_DIALBACK_MSG, &st);
  if (autonat2_decode(body, bl, &m) == 0) {
    (void)autonat2_response_status_name(m.status);
    (void)autonat2_dial_status_name(m.dial_status);
    buf b;
    buf_init(&b, 2 * AUTONAT2_MAX_MSG);
    int rc = autonat2_encode(&m, &b);
    if (rc == 0) {
      const uint8_t *b2;
      size_t l2, u2;
      if (autonat2_frame_parse(buf_ptr(&b), buf_len(&b), &b2, &l2, &u2) != 0 || u2 != buf_len(&b)) abort();
      if (autonat2_decode(b2, l2, &m2) != 0) abort();
      if (m.kind != m2.kind || m.n_addrs != m2.n_addrs || m.nonce != m2.nonce || m.status != m2.status ||
          m.addr_idx != m2.addr_idx || m.dial_status != m2.dial_status || m.num_bytes != m2.num_bytes ||
          m.data_len != m2.data_len)
        abort();
      for (size_t i = 0; i < m.n_addrs; i++)
        if (m.addrs[i].len && !multiaddr_equal(&m.addrs[i], &m2.addrs[i])) abort();
    } else if (rc != -E2BIG && !(rc == -EINVAL && m.kind == AUTONAT2_DIAL_DATA_RESPONSE)) {
      abort();
    }
    buf_free(&b);
    if (m.kind == AUTONAT2_DIAL_REQUEST && m.n_addrs) {
      multiaddr obs = m.addrs[0].len ? m.addrs[0] : m.addrs[m.n_addrs - 1];
      bool other;
      int i = autonat2_select(&obs, &m, m.addrs + 1, m.n_addrs - 1, false, false, &other);
      if (i >= (int)m.n_addrs || (i >= 0 && (other || autonat_addr_is_private(&m.addrs[i])))) abort();
      i = autonat2_select(&obs, &m, NULL, 0, true, true, &other);
      if (i >= (int)m.n_addrs) abort();
    }
  }
  /* the input as a whole stream to a server (observed 1.2.3.4) and to a client */
  multiaddr obs;
  static const char *const obs_s = "/ip4/1.2.3.4/tcp/1";
  if (multiaddr_parse(obs_s, &obs) != 0) abort();
  autonat2_server_policy pol = {.observed = &obs, .allow_other_ip = true, .allow_private = size & 1,
                                .data_bytes = 30000, .admit = admit_some, .admit_ud = (void *)(size ? data : (const uint8_t *)"")};
  autonat2_server s;
  autonat2_server_init(&s);
  buf out;
  buf_init(&out, 1 << 20);
  autonat2_server_ev ev = autonat2_server_feed(&s, &pol, data, size, &used, &out);
  if (used > size) abort();
  if (ev == A2S_DIAL && (s.state != A2S_ST_DIALING || (s.other_ip && s.data_got < s.data_need) || s.idx < 0)) abort();
  if (ev == A2S_DIAL && autonat2_server_dialed(&s, AUTONAT2_DS_OK, &out) != A2S_DONE) abort();
  buf_reset(&out);
  autonat2_client c;
  if (autonat2_client_start(&c, &obs, 1, 9, 40000, &out) != 0) abort();
  (void)autonat2_client_feed(&c, data, size, &used, &out);
  if (used > size || c.data_paid > 40000 + AUTONAT2_DATA_CHUNK) abort();
  buf_free(&out);
  return 0;
}
