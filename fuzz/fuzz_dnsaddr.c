/* fuzz_dnsaddr.c — libFuzzer target: /dnsaddr resolution fed hostile DNS answers. The input is
 * a sequence of answers, each a 2-byte big-endian length and that many bytes, handed out one per
 * TXT query. Invariants: at most DNSADDR_MAX_QUERIES queries and `max` results, no /dnsaddr
 * left in the results, and with a /p2p/ filter only that peer's addresses. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/dns.h"
#include "p2p/proto/dnsaddr.h"

typedef struct feed {
  const uint8_t *p;
  size_t n, off;
  int queries;
} feed;

static int answer(void *ud, const char *qname, uint8_t *out, size_t cap) {
  feed *f = ud;
  (void)qname;
  if (++f->queries > DNSADDR_MAX_QUERIES) abort();
  if (f->off + 2 > f->n) return -2;
  size_t l = (size_t)f->p[f->off] << 8 | f->p[f->off + 1];
  f->off += 2;
  if (l > f->n - f->off) l = f->n - f->off;
  if (l > cap) l = cap;
  memcpy(out, f->p + f->off, l);
  f->off += l;
  return (int)l;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *ins[2] = {"/dnsaddr/boot.example",
                               "/dnsaddr/boot.example/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"};
  const char *in_text = ins[size & 1];
  multiaddr in, out[8];
  if (multiaddr_parse(in_text, &in)) abort();
  peerid want;
  int has_want = multiaddr_get_peerid(&in, &want) == 0;
  feed f = {data, size, 0, 0};
  size_t n = 0;
  int rc = dnsaddr_resolve(&in, answer, &f, out, 8, &n);
  if (rc != 0 && n != 0) abort();
  if (n > 8) abort();
  for (size_t i = 0; i < n; i++) {
    size_t off = 0;
    multiaddr_component c;
    if (multiaddr_next(&out[i], &off, &c) != 1 || c.code == MA_DNSADDR) abort();
    if (has_want) {
      peerid got;
      if (multiaddr_get_peerid(&out[i], &got) != 0 || !peerid_equal(&got, &want)) abort();
    }
  }
  return 0;
}
