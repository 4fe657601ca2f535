/* fuzz_multiaddr.c — libFuzzer target: multiaddr binary and text decoders.
 * Byte 0 picks the mode: even = the rest is binary, odd = the rest is text.
 * Invariants: a valid binary address prints, and the printed text parses back to the same
 * bytes; a valid text address re-prints to text that parses (and, printed, to the same bytes). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/multiaddr.h"

static void check_roundtrip(const multiaddr *ma) {
  char s[MULTIADDR_STR_MAX + 1];
  if (multiaddr_to_string(ma, s, sizeof s) != 0) return; /* may legitimately not fit */
  multiaddr back;
  if (multiaddr_parse(s, &back) != 0) abort(); /* printed text always parses (/unix/: one encoded segment) */
  size_t off = 0;
  multiaddr_component c;
  int rc;
  while ((rc = multiaddr_next(&back, &off, &c)) == 1) {
  }
  if (rc != 0) abort();
  peerid id;
  (void)!multiaddr_get_peerid(&back, &id);
  struct sockaddr_storage ss;
  socklen_t sl;
  if (multiaddr_to_sockaddr(&back, &ss, &sl) == 0) {
    multiaddr m2;
    if (multiaddr_from_sockaddr((struct sockaddr *)&ss, &m2) != 0) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  multiaddr ma;
  if ((data[0] & 1) == 0) {
    if (multiaddr_from_bytes(data + 1, size - 1, &ma) == 0) {
      check_roundtrip(&ma);
      char s[MULTIADDR_STR_MAX + 1];
      if (multiaddr_to_string(&ma, s, sizeof s) == 0) {
        multiaddr back;
        /* Text from a valid binary address parses to the same bytes (a /unix/ path prints as
         * one percent-encoded segment, which reads back unambiguously). */
        if (multiaddr_parse(s, &back) != 0 || !multiaddr_equal(&ma, &back)) abort();
      }
    }
  } else {
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    if (multiaddr_parse(s, &ma) == 0) check_roundtrip(&ma);
    free(s);
  }
  return 0;
}
