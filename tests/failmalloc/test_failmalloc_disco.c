/* Allocation failures in the discovery engines (issue 15): the Kademlia messages, routing
 * table, record/provider store, iterative lookup and server, the rendezvous record, libp2p
 * mDNS and /dnsaddr resolution, each run whole with the Nth allocation failing, for every N
 * (tests/support/failmalloc.h). protobuf-c allocates inside its shared library (neither counted
 * nor failed here); the arrays kad_msg_decode builds around it are ours and are counted. The DNS
 * codec allocates nothing; the mDNS and /dnsaddr scenarios go through it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../p2p/kadutil.h"
#include "../support/failmalloc.h"
#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"
#include "p2p/proto/dns.h"
#include "p2p/proto/dnsaddr.h"
#include "p2p/proto/kad_lookup.h"
#include "p2p/proto/kad_msg.h"
#include "p2p/proto/kad_record.h"
#include "p2p/proto/kad_rpc.h"
#include "p2p/proto/kad_store.h"
#include "p2p/proto/kad_table.h"
#include "p2p/proto/mdns.h"
#include "util/buf.h"

#define NPEERS 40

/* Deterministic peers, made once with allocation counting paused (key derivation is set-up). */
static peerid g_peers[NPEERS];
static uint8_t g_pk[KEYS_PUBLIC_PB_MAX];
static size_t g_pkl;
static peerid g_self;

static void peers_init(void) {
  g_self = test_peer(1000, g_pk, &g_pkl);
  for (uint32_t i = 0; i < NPEERS; i++) g_peers[i] = test_peer(i + 1, NULL, NULL);
}

static multiaddr addr_n(unsigned i) {
  char t[64];
  snprintf(t, sizeof t, "/ip4/10.0.%u.%u/tcp/4001", i / 250, i % 250 + 1);
  multiaddr ma;
  assert_int_equal(multiaddr_parse(t, &ma), 0);
  return ma;
}

/* ---- kad_msg: a FIND_NODE response and a PUT_VALUE request, encoded and decoded ---- */

static int sc_kad_msg(void *ud) {
  (void)ud;
  multiaddr addrs[NPEERS];
  kad_peer_info closer[NPEERS];
  for (unsigned i = 0; i < NPEERS; i++) {
    addrs[i] = addr_n(i);
    closer[i] = (kad_peer_info){.id = g_peers[i], .addrs = &addrs[i], .n_addrs = 1, .connection = KAD_CONNECTED};
  }
  static const uint8_t value[] = "{\"peer_id\": \"x\"}";
  kad_msg m[2] = {
      {.type = KAD_FIND_NODE, .has_key = true, .key = g_self.bytes, .key_len = g_self.len, .closer = closer,
       .n_closer = NPEERS, .providers = closer, .n_providers = 3},
      {.type = KAD_PUT_VALUE, .has_key = true, .key = (const uint8_t *)"/pk/x", .key_len = 5, .has_record = true,
       .record = {.key = (const uint8_t *)"/pk/x", .key_len = 5, .value = value, .value_len = sizeof value - 1,
                  .time_received = "2024-01-02T03:04:05.000000000Z"}},
  };
  int rc = 0;
  for (int k = 0; k < 2 && !rc; k++) {
    buf out;
    buf_init(&out, KAD_MAX_MSG + 16);
    rc = (int)FM_STEP(kad_msg_encode(&m[k], &out), NULL);
    if (!rc) {
      const uint8_t *body;
      size_t bl, used;
      assert_int_equal(kad_frame_parse(buf_ptr(&out), buf_len(&out), &body, &bl, &used), 0);
      kad_msg d;
      rc = (int)FM_STEP(kad_msg_decode(body, bl, &d), NULL);
      if (!rc) {
        assert_int_equal(d.type, m[k].type);
        assert_int_equal(d.n_closer, m[k].n_closer);
        assert_int_equal(d.n_providers, m[k].n_providers);
        if (d.n_closer) {
          assert_true(peerid_equal(&d.closer[NPEERS - 1].id, &g_peers[NPEERS - 1]));
          assert_int_equal(d.closer[NPEERS - 1].n_addrs, 1);
        }
        if (d.has_record) assert_memory_equal(d.record.value, value, sizeof value - 1);
        kad_msg_clear(&d);
      }
    }
    buf_free(&out);
  }
  return rc;
}

/* ---- kad_table: fill, refresh, query, remove ---- */

static int sc_kad_table(void *ud) {
  (void)ud;
  kad_table *t = NULL;
  int rc = (int)FM_STEP(kad_table_new(&g_self, 0, &t), NULL);
  if (rc) return rc;
  size_t added = 0;
  for (unsigned i = 0; i < NPEERS && !rc; i++) {
    multiaddr a = addr_n(i);
    int r = kad_table_add(t, &g_peers[i], &a, 1, i, NULL);
    if (r == -ENOSPC) continue;
    if ((r = (int)FM_STEP(r, NULL)) < 0) rc = r;
    if (r == 1) added++;
  }
  if (!rc) {
    /* A refresh with a second address, then the closest peers to one of them. */
    multiaddr b = addr_n(200);
    int r = kad_table_add(t, &g_peers[0], &b, 1, 100, NULL);
    if (r != -ENOSPC && (r = (int)FM_STEP(r, NULL)) < 0) rc = r;
  }
  if (!rc) {
    assert_int_equal(kad_table_size(t), added);
    kad_key target;
    kad_key_of_peer(&g_peers[5], &target);
    const kad_entry *out[KAD_K];
    size_t n = kad_table_closest(t, &target, KAD_K, NULL, true, out);
    assert_true(n > 0 && n <= KAD_K);
    assert_int_equal(kad_table_remove(t, &g_peers[5]), kad_table_find(t, &g_peers[5]) ? 0 : -ENOENT);
  }
  kad_table_free(t);
  return rc;
}

/* ---- kad_store: records, providers, quotas, expiry ---- */

static const int k_store_errs[] = {-ENOMEM, 0};

static int sc_kad_store(void *ud) {
  (void)ud;
  kad_store_config cfg = {.max_records = 8, .max_records_per_peer = 4, .record_ttl_ms = 1000,
                          .max_providers = 16, .max_providers_per_key = 4, .max_keys_per_provider = 4,
                          .provider_ttl_ms = 1000, .provider_addr_ttl_ms = 500};
  kad_store *s = NULL;
  int rc = (int)FM_STEP(kad_store_new(&cfg, &s), NULL);
  if (rc) return rc;
  char key[32], val[32];
  for (unsigned i = 0; i < 10 && !rc; i++) {
    int kl = snprintf(key, sizeof key, "/k/%u", i), vl = snprintf(val, sizeof val, "v%u", i);
    int r = kad_store_put_record(s, (uint8_t *)key, (size_t)kl, (uint8_t *)val, (size_t)vl, &g_peers[i % 3], i, 1.0);
    if (r == -ENOSPC || r == -EDQUOT) continue;
    rc = (int)FM_STEP(r, k_store_errs);
  }
  /* Replacing a stored record. */
  if (!rc) {
    int r = kad_store_put_record(s, (const uint8_t *)"/k/0", 4, (const uint8_t *)"v0b", 3, &g_peers[0], 20, 1.0);
    if (r != -ENOSPC && r != -EDQUOT) rc = (int)FM_STEP(r, k_store_errs);
  }
  for (unsigned i = 0; i < 12 && !rc; i++) {
    multiaddr a = addr_n(i);
    int r = kad_store_add_provider(s, (const uint8_t *)"/prov", 5 + (i % 2), &g_peers[i], &a, 1, 10 + i);
    if (r == -ENOSPC || r == -EDQUOT) continue;
    rc = (int)FM_STEP(r, k_store_errs);
  }
  if (!rc) {
    const kad_stored_record *r0 = kad_store_get_record(s, (const uint8_t *)"/k/0", 4, 30);
    assert_non_null(r0);
    assert_memory_equal(r0->value, "v0b", 3);
    kad_provider pv[4];
    assert_int_equal(kad_store_get_providers(s, (const uint8_t *)"/prov", 5, 30, pv, 4), 4);
    kad_store_expire(s, 5000);
    kad_store_stats st;
    kad_store_get_stats(s, &st);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.providers, 0);
  }
  kad_store_free(s);
  return rc;
}

/* ---- kad_lookup: a lookup over a simulated network where every peer knows its neighbours ---- */

static int sc_kad_lookup(void *ud) {
  (void)ud;
  kad_lookup *l = NULL;
  kad_lookup_config cfg = {.rpc_timeout_ms = 100};
  const peerid *target = &g_peers[NPEERS - 1];
  int rc = (int)FM_STEP(kad_lookup_new(&g_self, target->bytes, target->len, &cfg, &l), NULL);
  if (rc) return rc;
  for (unsigned i = 0; i < 3; i++) (void)kad_lookup_add(l, &g_peers[i], 0);
  uint64_t now = 0;
  for (int guard = 0; guard < 1000; guard++) {
    peerid p;
    kad_lookup_step step = kad_lookup_next(l, now, &p);
    if (step == KAD_LOOKUP_DONE) break;
    if (step == KAD_LOOKUP_WAIT) {
      now += 10;
      continue;
    }
    unsigned idx = 0;
    while (idx < NPEERS && !peerid_equal(&g_peers[idx], &p)) idx++;
    assert_true(idx < NPEERS);
    if (idx % 7 == 6) { /* some peers never answer */
      kad_lookup_fail(l, &p);
      continue;
    }
    peerid closer[4];
    for (unsigned k = 0; k < 4; k++) closer[k] = g_peers[(idx * 3 + k + 1) % NPEERS];
    assert_true(kad_lookup_reply(l, &p, closer, 4) >= 0);
  }
  assert_true(kad_lookup_done(l));
  peerid best[KAD_K];
  assert_true(kad_lookup_closest(l, best, KAD_K) > 0);
  kad_lookup_free(l);
  return 0;
}

/* ---- kad_server: every RPC against a table and a store, responses decoded ---- */

static const int k_server_errs[] = {-ENOMEM, 0};

static int server_call(kad_server *s, const peerid *from, const kad_msg *req, size_t *n_closer) {
  buf out;
  buf_init(&out, KAD_MAX_MSG + 16);
  int rc = (int)FM_STEP(kad_server_handle(s, from, req, 1000, 1700000000.0, &out), k_server_errs);
  if (!rc && buf_len(&out)) {
    const uint8_t *body;
    size_t bl, used;
    assert_int_equal(kad_frame_parse(buf_ptr(&out), buf_len(&out), &body, &bl, &used), 0);
    kad_msg d;
    rc = (int)FM_STEP(kad_msg_decode(body, bl, &d), NULL);
    if (!rc) {
      assert_int_equal(d.type, req->type);
      if (n_closer) *n_closer = d.n_closer + d.n_providers;
      kad_msg_clear(&d);
    }
  }
  buf_free(&out);
  return rc;
}

static int sc_kad_server(void *ud) {
  (void)ud;
  kad_server s = {.self = g_self, .self_public_key = g_pk, .self_public_key_len = g_pkl};
  multiaddr self_addr = addr_n(240);
  s.self_addrs = &self_addr;
  s.n_self_addrs = 1;
  int rc = (int)FM_STEP(kad_table_new(&g_self, 0, &s.table), NULL);
  if (!rc) rc = (int)FM_STEP(kad_store_new(NULL, &s.store), NULL);
  for (unsigned i = 0; i < 20 && !rc; i++) {
    multiaddr a = addr_n(i);
    int r = kad_table_add(s.table, &g_peers[i], &a, 1, 0, NULL);
    if (r != -ENOSPC && (r = (int)FM_STEP(r, NULL)) < 0) rc = r;
  }
  /* The rendezvous record of peer 30, put by peer 30, read back, and its provider records. */
  char id30[PEERID_STR_MAX], key[256], val[KAD_RENDEZVOUS_MAX_VALUE];
  assert_int_equal(peerid_to_string(&g_peers[30], id30, sizeof id30), 0);
  int kl = kad_rendezvous_record_key("fm-ns", key, sizeof key);
  assert_true(kl > 0);
  int vl = kad_rendezvous_record_make(id30, "/ip4/10.1.1.1/tcp/9710", 1700000000.5, val, sizeof val);
  assert_true(vl > 0);
  uint8_t pkey[KAD_PROVIDER_KEY_LEN];
  kad_rendezvous_provider_key("fm-ns", pkey);
  multiaddr a30 = addr_n(30);
  kad_peer_info prov = {.id = g_peers[30], .addrs = &a30, .n_addrs = 1, .connection = -1};
  const kad_msg reqs[] = {
      {.type = KAD_FIND_NODE, .has_key = true, .key = g_peers[3].bytes, .key_len = g_peers[3].len},
      {.type = KAD_PUT_VALUE, .has_key = true, .key = (uint8_t *)key, .key_len = (size_t)kl, .has_record = true,
       .record = {.key = (uint8_t *)key, .key_len = (size_t)kl, .value = (uint8_t *)val, .value_len = (size_t)vl}},
      {.type = KAD_GET_VALUE, .has_key = true, .key = (uint8_t *)key, .key_len = (size_t)kl},
      {.type = KAD_ADD_PROVIDER, .has_key = true, .key = pkey, .key_len = sizeof pkey, .providers = &prov,
       .n_providers = 1},
      {.type = KAD_ADD_PROVIDER, .has_key = true, .key = (const uint8_t *)"fm-ns", .key_len = 5, .providers = &prov,
       .n_providers = 1},
      {.type = KAD_GET_PROVIDERS, .has_key = true, .key = pkey, .key_len = sizeof pkey},
      {.type = KAD_GET_PROVIDERS, .has_key = true, .key = (const uint8_t *)"fm-ns", .key_len = 5},
      {.type = KAD_PING},
  };
  for (size_t i = 0; i < sizeof reqs / sizeof reqs[0] && !rc; i++) {
    size_t n = 0;
    rc = server_call(&s, &g_peers[30], &reqs[i], &n);
    if (!rc && reqs[i].type == KAD_FIND_NODE) assert_true(n > 0);
  }
  kad_table_free(s.table);
  kad_store_free(s.store);
  return rc;
}

/* ---- rendezvous record: make, parse, validate (jansson counts) ---- */

static int sc_rendezvous_record(void *ud) {
  (void)ud;
  char id[PEERID_STR_MAX], key[256], val[KAD_RENDEZVOUS_MAX_VALUE];
  assert_int_equal(peerid_to_string(&g_peers[2], id, sizeof id), 0);
  int kl = kad_rendezvous_record_key(KAD_RENDEZVOUS_DEFAULT_NS, key, sizeof key);
  int vl = kad_rendezvous_record_make(id, "/ip4/192.0.2.7/tcp/4001", 1700000001.25, val, sizeof val);
  assert_true(kl > 0 && vl > 0);
  kad_rendezvous_record r;
  int rc = (int)FM_STEP(kad_rendezvous_record_parse((uint8_t *)val, (size_t)vl, &r), NULL);
  if (rc) return rc;
  assert_true(peerid_equal(&r.id, &g_peers[2]));
  rc = (int)FM_STEP(kad_record_validate((uint8_t *)key, (size_t)kl, (uint8_t *)val, (size_t)vl, &g_peers[2]), NULL);
  if (rc) return rc;
  /* Another storer is refused whatever happens to memory. */
  int other = kad_record_validate((uint8_t *)key, (size_t)kl, (uint8_t *)val, (size_t)vl, &g_peers[3]);
  assert_true(other == -EPERM || (fm_failed() && other == -ENOMEM));
  return 0;
}

/* ---- mDNS: a query, the response, discovery and goodbye between two engines ---- */

static const int k_mdns_errs[] = {-ENOMEM, 0};

static int sc_mdns(void *ud) {
  (void)ud;
  char ida[PEERID_STR_MAX], idb[PEERID_STR_MAX];
  assert_int_equal(peerid_to_string(&g_peers[0], ida, sizeof ida), 0);
  assert_int_equal(peerid_to_string(&g_peers[1], idb, sizeof idb), 0);
  mdns_config ca = {.allow_loopback = true, .peer_name = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
  mdns_config cb = {.allow_loopback = true, .peer_name = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"};
  mdns *a = NULL, *b = NULL;
  int rc = (int)FM_STEP(mdns_new(&ca, ida, &a), k_mdns_errs);
  if (!rc) rc = (int)FM_STEP(mdns_new(&cb, idb, &b), k_mdns_errs);
  static const char *const baddrs[] = {"/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4001", "/ip4/10.0.0.2/tcp/4002"};
  if (!rc) {
    int r = mdns_set_addrs(b, baddrs, 3);
    rc = (int)FM_STEP(r < 0 ? r : 0, k_mdns_errs);
    if (!rc) assert_int_equal(r, 3);
  }
  uint8_t pkt[MDNS_MAX_OUT];
  mdns_peer peers[2];
  size_t n = 0;
  if (!rc) {
    mdns_start(a, 0);
    mdns_start(b, 0);
    /* b's announcement reaches a; a's query reaches b, whose answer reaches a. */
    int len;
    while (!rc && (len = mdns_poll(b, 0, pkt, sizeof pkt)) != 0) {
      rc = (int)FM_STEP(len < 0 ? len : 0, k_mdns_errs);
      if (!rc) rc = (int)FM_STEP(mdns_handle(a, pkt, (size_t)len, 0, peers, 2, &n), k_mdns_errs);
    }
    size_t found = n;
    while (!rc && (len = mdns_poll(a, 0, pkt, sizeof pkt)) != 0) {
      rc = (int)FM_STEP(len < 0 ? len : 0, k_mdns_errs);
      if (!rc) rc = (int)FM_STEP(mdns_handle(b, pkt, (size_t)len, 0, peers, 2, &n), k_mdns_errs);
    }
    uint64_t due = mdns_next_deadline(b);
    while (!rc && due != UINT64_MAX && due < 2000 && (len = mdns_poll(b, due, pkt, sizeof pkt)) != 0) {
      rc = (int)FM_STEP(len < 0 ? len : 0, k_mdns_errs);
      if (!rc) rc = (int)FM_STEP(mdns_handle(a, pkt, (size_t)len, due, peers, 2, &n), k_mdns_errs);
      found += n;
    }
    if (!rc) {
      assert_true(found > 0);
      assert_string_equal(peers[0].peer_id, idb);
      assert_int_equal(peers[0].n_addrs, 3);
      len = mdns_goodbye(b, pkt, sizeof pkt);
      rc = (int)FM_STEP(len < 0 ? len : 0, k_mdns_errs);
      if (!rc) rc = (int)FM_STEP(mdns_handle(a, pkt, (size_t)len, 3000, peers, 2, &n), k_mdns_errs);
      if (!rc) assert_int_equal(peers[0].ttl_s, 0);
    }
  }
  mdns_free(a);
  mdns_free(b);
  return rc;
}

/* ---- /dnsaddr: a nested resolution over a fake zone ---- */

typedef struct zone {
  const char *name;
  const char *txt[3];
} zone;

static char g_txt[4][200];
static const zone *g_zone;

static int fake_txt(void *ud, const char *qname, uint8_t *answer, size_t cap) {
  (void)ud;
  for (size_t i = 0; i < 2; i++) {
    if (strcmp(g_zone[i].name, qname) != 0) continue;
    dns_writer w;
    dns_writer_init(&w, answer, cap, 1, DNS_FLAG_QR);
    dns_name n;
    assert_int_equal(dns_name_from_text(qname, &n), 0);
    assert_int_equal(dns_writer_question(&w, &n, DNS_TYPE_TXT, DNS_CLASS_IN), 0);
    for (size_t k = 0; k < 3 && g_zone[i].txt[k]; k++) {
      const uint8_t *s = (const uint8_t *)g_zone[i].txt[k];
      size_t l = strlen(g_zone[i].txt[k]);
      assert_int_equal(dns_writer_txt(&w, DNS_SEC_ANSWER, &n, DNS_CLASS_IN, 60, &s, &l, 1), 0);
    }
    return dns_writer_finish(&w);
  }
  return -ENOENT;
}

static int sc_dnsaddr(void *ud) {
  (void)ud;
  char id[PEERID_STR_MAX], in[256];
  assert_int_equal(peerid_to_string(&g_peers[4], id, sizeof id), 0);
  snprintf(g_txt[0], sizeof g_txt[0], "dnsaddr=/dnsaddr/sub.boot.example/p2p/%s", id);
  snprintf(g_txt[1], sizeof g_txt[1], "dnsaddr=/ip4/192.0.2.1/tcp/4001/p2p/%s", id);
  snprintf(g_txt[2], sizeof g_txt[2], "dnsaddr=/ip6/2001:db8::1/tcp/4001/p2p/%s", id);
  static zone z[2];
  z[0] = (zone){"_dnsaddr.boot.example", {g_txt[0], NULL, NULL}};
  z[1] = (zone){"_dnsaddr.sub.boot.example", {g_txt[1], g_txt[2], NULL}};
  g_zone = z;
  snprintf(in, sizeof in, "/dnsaddr/boot.example/p2p/%s", id);
  multiaddr ma, out[8];
  assert_int_equal(multiaddr_parse(in, &ma), 0);
  size_t n = 0;
  int rc = (int)FM_STEP(dnsaddr_resolve(&ma, fake_txt, NULL, out, 8, &n), NULL);
  if (!rc) assert_int_equal(n, 2);
  return rc;
}

#define SCENARIO(fn)                                                           \
  static void test_failmalloc_##fn(void **state) {                            \
    (void)state;                                                               \
    (void)fm_run_scenario(#fn, sc_##fn, NULL, NULL);                           \
  }
SCENARIO(kad_msg)
SCENARIO(kad_table)
SCENARIO(kad_store)
SCENARIO(kad_lookup)
SCENARIO(kad_server)
SCENARIO(rendezvous_record)
SCENARIO(mdns)
SCENARIO(dnsaddr)

int main(void) {
  fm_init();
  peers_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_failmalloc_kad_msg),    cmocka_unit_test(test_failmalloc_kad_table),
      cmocka_unit_test(test_failmalloc_kad_store),  cmocka_unit_test(test_failmalloc_kad_lookup),
      cmocka_unit_test(test_failmalloc_kad_server), cmocka_unit_test(test_failmalloc_rendezvous_record),
      cmocka_unit_test(test_failmalloc_mdns),       cmocka_unit_test(test_failmalloc_dnsaddr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
