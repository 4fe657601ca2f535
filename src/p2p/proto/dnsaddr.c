/* dnsaddr.c — /dnsaddr resolution over a caller-supplied TXT query. See dnsaddr.h. */
#include "p2p/proto/dnsaddr.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/dns.h"

typedef struct res {
  dnsaddr_txt_fn query;
  void *ud;
  multiaddr *out;
  size_t max, n;
  unsigned queries;
  bool failed;
  uint8_t *answer; /* DNS_MAX_MSG bytes, shared by every query */
} res;

/* Splits /dnsaddr/<host>[/p2p/<id>...]: host text and the wanted PeerId (if any). */
static int split(const multiaddr *in, char *host, size_t cap, peerid *want, bool *has_want) {
  size_t off = 0;
  multiaddr_component c;
  if (multiaddr_next(in, &off, &c) != 1 || c.code != MA_DNSADDR || c.value_len == 0 || c.value_len >= cap)
    return -EINVAL;
  memcpy(host, c.value, c.value_len);
  host[c.value_len] = 0;
  if (memchr(host, 0, c.value_len)) return -EINVAL;
  *has_want = multiaddr_get_peerid(in, want) == 0;
  return 0;
}

static void add_result(res *r, const multiaddr *ma) {
  for (size_t i = 0; i < r->n; i++)
    if (multiaddr_equal(&r->out[i], ma)) return;
  if (r->n < r->max) r->out[r->n++] = *ma;
}

static int resolve(res *r, const multiaddr *in, unsigned depth) {
  char host[256];
  peerid want;
  bool has_want;
  if (split(in, host, sizeof host, &want, &has_want)) return -EINVAL;
  if (r->queries >= DNSADDR_MAX_QUERIES) return 0;
  r->queries++;
  char qname[300];
  snprintf(qname, sizeof qname, "_dnsaddr.%s", host);
  int n = r->query(r->ud, qname, r->answer, DNS_MAX_MSG);
  if (n < 0) {
    r->failed = true;
    return 0;
  }
  dns_reader rd;
  if (dns_reader_init(&rd, r->answer, (size_t)n)) {
    r->failed = true;
    return 0;
  }
  dns_rr rr;
  int rc;
  /* Collect first (nested lookups reuse the answer buffer). */
  multiaddr *found = malloc(sizeof *found * 64);
  if (!found) return -ENOMEM;
  size_t nf = 0;
  while ((rc = dns_reader_rr(&rd, &rr)) == 1) {
    if (rr.section != DNS_SEC_ANSWER || rr.type != DNS_TYPE_TXT) continue;
    size_t off = 0;
    const uint8_t *s;
    size_t sl;
    while (dns_txt_next(rr.rdata, rr.rdlen, &off, &s, &sl) == 1) {
      if (sl <= 8 || memcmp(s, "dnsaddr=", 8) != 0 || nf == 64) continue;
      char text[256];
      memcpy(text, s + 8, sl - 8);
      text[sl - 8] = 0;
      multiaddr ma;
      if (multiaddr_parse(text, &ma)) continue;
      if (has_want) {
        peerid got;
        if (multiaddr_get_peerid(&ma, &got) || !peerid_equal(&got, &want)) continue;
      }
      found[nf++] = ma;
    }
  }
  if (rc < 0) r->failed = true;
  for (size_t i = 0; i < nf; i++) {
    size_t off = 0;
    multiaddr_component c;
    if (multiaddr_next(&found[i], &off, &c) == 1 && c.code == MA_DNSADDR) {
      if (depth + 1 < DNSADDR_MAX_DEPTH) {
        int e = resolve(r, &found[i], depth + 1);
        if (e == -ENOMEM) {
          free(found);
          return e;
        }
      }
    } else {
      add_result(r, &found[i]);
    }
  }
  free(found);
  return 0;
}

int dnsaddr_rank(const multiaddr *ma) {
  size_t off = 0;
  multiaddr_component c;
  int first = -1;
  bool tcp = false, ws = false, p4001 = false;
  while (multiaddr_next(ma, &off, &c) == 1) {
    if (first < 0) first = (int)c.code;
    if (c.code == MA_TCP) {
      tcp = true;
      p4001 = c.value_len == 2 && (c.value[0] << 8 | c.value[1]) == 4001;
    }
    if (c.code == MA_WS || c.code == MA_WSS) ws = true;
  }
  int fam = first == MA_IP4 ? 0 : first == MA_IP6 ? 1 : first == MA_DNS4 ? 2 : first == MA_DNS6 ? 3 : 4;
  return (tcp ? 0 : 1) * 1000 + (ws ? 1 : 0) * 100 + (p4001 ? 0 : 1) * 10 + fam;
}

int dnsaddr_resolve(const multiaddr *in, dnsaddr_txt_fn query, void *ud, multiaddr *out, size_t max,
                    size_t *n_out) {
  *n_out = 0;
  char host[256];
  peerid want;
  bool has_want;
  if (split(in, host, sizeof host, &want, &has_want)) return -EINVAL;
  res r = {.query = query, .ud = ud, .out = out, .max = max};
  r.answer = malloc(DNS_MAX_MSG);
  if (!r.answer) return -ENOMEM;
  int rc = resolve(&r, in, 0);
  free(r.answer);
  if (rc) return rc;
  /* Stable insertion sort by rank (n ≤ max, small). */
  for (size_t i = 1; i < r.n; i++) {
    multiaddr t = out[i];
    int rk = dnsaddr_rank(&t);
    size_t j = i;
    while (j > 0 && dnsaddr_rank(&out[j - 1]) > rk) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = t;
  }
  *n_out = r.n;
  return (r.n == 0 && r.failed) ? -ENOENT : 0;
}
