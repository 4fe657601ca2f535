/* test_dnsaddr.c — /dnsaddr resolution (multiaddr DNSADDR.md): TXT parsing, /p2p/ filter,
 * nesting depth, query budget, ordering; over a table instead of a DNS server. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kadutil.h"
#include "p2p/proto/dns.h"
#include "p2p/proto/dnsaddr.h"

typedef struct zone {
  const char *name;
  const char *txt[6];
} zone;

typedef struct fake {
  const zone *z;
  size_t n;
  int queries;
  char last[256];
} fake;

static int fake_query(void *ud, const char *qname, uint8_t *answer, size_t cap) {
  fake *f = ud;
  f->queries++;
  snprintf(f->last, sizeof f->last, "%s", qname);
  for (size_t i = 0; i < f->n; i++) {
    if (strcmp(f->z[i].name, qname) != 0) continue;
    dns_writer w;
    dns_writer_init(&w, answer, cap, 1, DNS_FLAG_QR);
    dns_name n;
    assert_int_equal(dns_name_from_text(qname, &n), 0);
    assert_int_equal(dns_writer_question(&w, &n, DNS_TYPE_TXT, DNS_CLASS_IN), 0);
    for (size_t k = 0; k < 6 && f->z[i].txt[k]; k++) {
      const uint8_t *s = (const uint8_t *)f->z[i].txt[k];
      size_t l = strlen(f->z[i].txt[k]);
      assert_int_equal(dns_writer_txt(&w, DNS_SEC_ANSWER, &n, DNS_CLASS_IN, 60, &s, &l, 1), 0);
    }
    return dns_writer_finish(&w);
  }
  return -ENOENT;
}

static void test_dnsaddr_resolves_and_filters_by_peer(void **st) {
  (void)st;
  char ida[PEERID_STR_MAX], idb[PEERID_STR_MAX];
  peerid a = test_peer(1, NULL, NULL), b = test_peer(2, NULL, NULL);
  assert_int_equal(peerid_to_string(&a, ida, sizeof ida), 0);
  assert_int_equal(peerid_to_string(&b, idb, sizeof idb), 0);
  char t[4][200];
  snprintf(t[0], sizeof t[0], "dnsaddr=/ip4/1.2.3.4/udp/4001/quic-v1/p2p/%s", ida);
  snprintf(t[1], sizeof t[1], "dnsaddr=/ip4/1.2.3.4/tcp/4001/p2p/%s", ida);
  snprintf(t[2], sizeof t[2], "dnsaddr=/ip4/5.6.7.8/tcp/4001/p2p/%s", idb);
  snprintf(t[3], sizeof t[3], "dnsaddr=/ip6/::5/tcp/4001/p2p/%s", ida);
  zone z[1] = {{"_dnsaddr.boot.example", {t[0], t[1], t[2], t[3], "v=junk", NULL}}};
  fake f = {z, 1, 0, ""};
  char in[200];
  snprintf(in, sizeof in, "/dnsaddr/boot.example/p2p/%s", ida);
  multiaddr ma, out[8];
  assert_int_equal(multiaddr_parse(in, &ma), 0);
  size_t n;
  assert_int_equal(dnsaddr_resolve(&ma, fake_query, &f, out, 8, &n), 0);
  assert_string_equal(f.last, "_dnsaddr.boot.example");
  assert_int_equal(n, 3); /* b's address filtered out */
  char s[MULTIADDR_STR_MAX], want[200];
  assert_int_equal(multiaddr_to_string(&out[0], s, sizeof s), 0);
  snprintf(want, sizeof want, "/ip4/1.2.3.4/tcp/4001/p2p/%s", ida);
  assert_string_equal(s, want); /* TCP first, ip4 before ip6, UDP last */
  assert_int_equal(multiaddr_to_string(&out[1], s, sizeof s), 0);
  snprintf(want, sizeof want, "/ip6/::5/tcp/4001/p2p/%s", ida);
  assert_string_equal(s, want);
  /* Without /p2p/ everything comes back. */
  assert_int_equal(multiaddr_parse("/dnsaddr/boot.example", &ma), 0);
  assert_int_equal(dnsaddr_resolve(&ma, fake_query, &f, out, 8, &n), 0);
  assert_int_equal(n, 4);
  /* max bounds the result */
  assert_int_equal(dnsaddr_resolve(&ma, fake_query, &f, out, 2, &n), 0);
  assert_int_equal(n, 2);
}

static void test_dnsaddr_nesting_is_bounded(void **st) {
  (void)st;
  /* l0 → l1 → l2 → l3: depth 3 reaches l2's addresses, never l3's. */
  zone z[4] = {
      {"_dnsaddr.l0.example", {"dnsaddr=/dnsaddr/l1.example", "dnsaddr=/ip4/10.0.0.0/tcp/1", NULL}},
      {"_dnsaddr.l1.example", {"dnsaddr=/dnsaddr/l2.example", "dnsaddr=/ip4/10.0.0.1/tcp/1", NULL}},
      {"_dnsaddr.l2.example", {"dnsaddr=/dnsaddr/l3.example", "dnsaddr=/ip4/10.0.0.2/tcp/1", NULL}},
      {"_dnsaddr.l3.example", {"dnsaddr=/ip4/10.0.0.3/tcp/1", NULL}},
  };
  fake f = {z, 4, 0, ""};
  multiaddr ma, out[8];
  assert_int_equal(multiaddr_parse("/dnsaddr/l0.example", &ma), 0);
  size_t n;
  assert_int_equal(dnsaddr_resolve(&ma, fake_query, &f, out, 8, &n), 0);
  assert_int_equal(n, 3);
  assert_int_equal(f.queries, 3);
  /* A self-referencing name ends at the depth bound as well. */
  zone loop[1] = {{"_dnsaddr.loop.example", {"dnsaddr=/dnsaddr/loop.example", NULL}}};
  fake g = {loop, 1, 0, ""};
  assert_int_equal(multiaddr_parse("/dnsaddr/loop.example", &ma), 0);
  assert_int_equal(dnsaddr_resolve(&ma, fake_query, &g, out, 8, &n), 0);
  assert_int_equal(n, 0);
  assert_true(g.queries <= DNSADDR_MAX_DEPTH);
}

static void test_dnsaddr_query_budget(void **st) {
  (void)st;
  /* Fan-out: one name lists 6 nested names, each listing 6 more. */
  zone z[8];
  memset(z, 0, sizeof z);
  z[0].name = "_dnsaddr.fan.example";
  for (int i = 0; i < 6; i++) z[0].txt[i] = "dnsaddr=/dnsaddr/fan2.example";
  z[1].name = "_dnsaddr.fan2.example";
  for (int i = 0; i < 6; i++) z[1].txt[i] = "dnsaddr=/dnsaddr/fan.example";
  fake f = {z, 2, 0, ""};
  multiaddr ma, out[4];
  assert_int_equal(multiaddr_parse("/dnsaddr/fan.example", &ma), 0);
  size_t n;
  assert_int_equal(dnsaddr_resolve(&ma, fake_query, &f, out, 4, &n), 0);
  assert_true(f.queries <= DNSADDR_MAX_QUERIES);
}

static void test_dnsaddr_errors(void **st) {
  (void)st;
  fake f = {NULL, 0, 0, ""};
  multiaddr ma, out[2];
  size_t n;
  assert_int_equal(multiaddr_parse("/ip4/1.2.3.4/tcp/1", &ma), 0);
  assert_int_equal(dnsaddr_resolve(&ma, fake_query, &f, out, 2, &n), -EINVAL);
  assert_int_equal(multiaddr_parse("/dnsaddr/missing.example", &ma), 0);
  assert_int_equal(dnsaddr_resolve(&ma, fake_query, &f, out, 2, &n), -ENOENT);
  assert_int_equal(n, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dnsaddr_resolves_and_filters_by_peer),
      cmocka_unit_test(test_dnsaddr_nesting_is_bounded),
      cmocka_unit_test(test_dnsaddr_query_budget),
      cmocka_unit_test(test_dnsaddr_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
