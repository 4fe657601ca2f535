/* fuzz_mss.c — libFuzzer target: multistream-select parser, both roles.
 *
 * Input layout: byte 0 picks the role (bit 0) and the feed chunk size (bits 1..7, +1);
 * the rest is fed as received bytes. Checks the module's contract: consumed never exceeds
 * what was fed, the state after an error is MSS_FAILED, and a selected protocol is one of
 * ours. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/mss.h"

static const char *const PROTOS[] = {"/noise", "/yamux/1.0.0", "/ipfs/ping/1.0.0"};

static bool match_any_mcp(void *ud, const char *proto, size_t len) {
  (void)ud;
  return len >= 9 && memcmp(proto, "/mcp+p2p/", 9) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  bool listener = data[0] & 1;
  size_t chunk = (size_t)(data[0] >> 1) + 1;
  data++;
  size--;
  mss *m;
  int rc = listener ? mss_listener_new(&m, PROTOS, 3) : mss_dialer_new(&m, PROTOS, 3);
  if (rc) return 0;
  if (listener) mss_listener_set_match(m, match_any_mcp, NULL);
  buf out;
  buf_init(&out, 1u << 20);
  if (mss_start(m, &out) == 0) {
    size_t pos = 0;
    while (pos < size) {
      size_t n = size - pos < chunk ? size - pos : chunk;
      ssize_t used = mss_feed(m, data + pos, n, &out);
      if (used < 0) {
        if (mss_state_get(m) != MSS_FAILED) abort();
        break;
      }
      if ((size_t)used > n) abort();
      pos += (size_t)used;
      if ((size_t)used < n) {
        if (mss_state_get(m) != MSS_DONE) abort();
        break;
      }
      buf_reset(&out);
    }
    if (mss_state_get(m) == MSS_DONE) {
      const char *sel = mss_selected(m);
      if (!sel) abort();
      bool ours = false;
      for (size_t i = 0; i < 3; i++) ours |= strcmp(sel, PROTOS[i]) == 0;
      if (!ours && !(listener && strncmp(sel, "/mcp+p2p/", 9) == 0)) abort();
    }
  }
  buf_free(&out);
  mss_free(m);
  return 0;
}
