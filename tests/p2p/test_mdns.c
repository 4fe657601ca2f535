/* test_mdns.c — libp2p mDNS engine (discovery/mdns.md): queries, responses, what is accepted
 * from js-libp2p and py-libp2p style packets, the address filter, RFC 6762 timing rules. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/core/keys.h"
#include "p2p/proto/dns.h"
#include "p2p/proto/mdns.h"

static void make_id(uint8_t seed, char out[PEERID_STR_MAX]) {
  uint8_t s[32];
  memset(s, seed, sizeof s);
  keys_private k;
  assert_int_equal(keys_ed25519_from_seed(s, &k), 0);
  keys_public pub;
  keys_private_public(&k, &pub);
  peerid p;
  assert_int_equal(peerid_from_public(&pub, &p), 0);
  assert_int_equal(peerid_to_string(&p, out, PEERID_STR_MAX), 0);
}

typedef struct node {
  char id[PEERID_STR_MAX];
  mdns *m;
} node;

static void node_init(node *n, uint8_t seed, const mdns_config *cfg, const char *addr) {
  make_id(seed, n->id);
  mdns_config c = {0};
  if (cfg) c = *cfg;
  assert_int_equal(mdns_new(&c, n->id, &n->m), 0);
  if (addr) {
    const char *addrs[1] = {addr};
    assert_int_equal(mdns_set_addrs(n->m, addrs, 1), 1);
  }
}

static dns_name name(const char *t) {
  dns_name n;
  assert_int_equal(dns_name_from_text(t, &n), 0);
  return n;
}

static const uint8_t js_query[] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, '_', 'p', '2', 'p', 4, '_', 'u', 'd',
                                   'p', 5, 'l', 'o', 'c', 'a', 'l', 0, 0, 12, 0, 1};

static void test_mdns_start_sends_announcement_then_query(void **st) {
  (void)st;
  node a;
  mdns_config cfg = {.allow_loopback = true};
  node_init(&a, 1, &cfg, "/ip4/127.0.0.1/tcp/4001");
  uint8_t pkt[MDNS_MAX_OUT];
  assert_int_equal(mdns_poll(a.m, 0, pkt, sizeof pkt), 0); /* not started */
  mdns_start(a.m, 1000);
  int n = mdns_poll(a.m, 1000, pkt, sizeof pkt);
  assert_true(n > 0);
  dns_reader r;
  assert_int_equal(dns_reader_init(&r, pkt, (size_t)n), 0);
  assert_true(r.hdr.flags & DNS_FLAG_QR); /* the announcement */
  n = mdns_poll(a.m, 1000, pkt, sizeof pkt);
  assert_int_equal(n, sizeof js_query); /* then the query, byte for byte what js sends */
  assert_memory_equal(pkt, js_query, sizeof js_query);
  assert_int_equal(mdns_poll(a.m, 1000, pkt, sizeof pkt), 0);
  /* Second announcement and second query one second later; queries then back off. */
  assert_int_equal(mdns_next_deadline(a.m), 2000);
  assert_true(mdns_poll(a.m, 2000, pkt, sizeof pkt) > 0);
  assert_int_equal(mdns_poll(a.m, 2000, pkt, sizeof pkt), sizeof js_query);
  assert_int_equal(mdns_poll(a.m, 2000, pkt, sizeof pkt), 0);
  assert_int_equal(mdns_next_deadline(a.m), 4000);
  assert_int_equal(mdns_poll(a.m, 4000, pkt, sizeof pkt), sizeof js_query);
  assert_int_equal(mdns_next_deadline(a.m), 8000);
  mdns_free(a.m);
}

static void test_mdns_query_backoff_capped_by_interval(void **st) {
  (void)st;
  node a;
  mdns_config cfg = {.query_interval_ms = 3000, .passive = true};
  node_init(&a, 1, &cfg, NULL);
  uint8_t pkt[MDNS_MAX_OUT];
  mdns_start(a.m, 0);
  uint64_t t = 0;
  uint64_t gaps[6];
  for (int i = 0; i < 6; i++) {
    assert_int_equal(mdns_poll(a.m, t, pkt, sizeof pkt), sizeof js_query);
    uint64_t next = mdns_next_deadline(a.m);
    gaps[i] = next - t;
    t = next;
  }
  assert_int_equal(gaps[0], 1000);
  assert_int_equal(gaps[1], 2000);
  assert_int_equal(gaps[2], 3000);
  assert_int_equal(gaps[5], 3000);
  mdns_free(a.m);
}

/* Sends everything due at t (announcements, queries) into the void. */
static void settle(mdns *m, uint64_t t) {
  uint8_t pkt[MDNS_MAX_OUT];
  while (mdns_poll(m, t, pkt, sizeof pkt) > 0) {
  }
}

/* Runs b's response to a query from a; returns the peers a learns. */
static size_t exchange(node *a, node *b, uint64_t now, mdns_peer *peers, size_t max) {
  uint8_t q[MDNS_MAX_OUT], resp[MDNS_MAX_OUT];
  mdns_config qc = {.passive = true};
  mdns *qm;
  assert_int_equal(mdns_new(&qc, a->id, &qm), 0);
  mdns_start(qm, now);
  int ql = mdns_poll(qm, now, q, sizeof q);
  assert_true(ql > 0);
  mdns_free(qm);
  settle(b->m, now);
  size_t n = 0;
  assert_int_equal(mdns_handle(b->m, q, (size_t)ql, now, peers, max, &n), 0);
  assert_int_equal(n, 0);
  uint64_t due = mdns_next_deadline(b->m);
  assert_true(due >= now + 20 && due <= now + 1000);
  int rl = mdns_poll(b->m, due, resp, sizeof resp);
  assert_true(rl > 0);
  assert_int_equal(mdns_handle(a->m, resp, (size_t)rl, due, peers, max, &n), 0);
  return n;
}

static void test_mdns_two_nodes_discover_each_other(void **st) {
  (void)st;
  node a, b;
  mdns_config cfg = {.allow_loopback = true};
  node_init(&a, 1, &cfg, "/ip4/127.0.0.1/tcp/4001");
  node_init(&b, 2, &cfg, NULL);
  const char *baddrs[3] = {"/ip4/127.0.0.1/tcp/4002", "/ip6/::1/tcp/4002", "/ip4/192.168.1.7/tcp/4002"};
  assert_int_equal(mdns_set_addrs(b.m, baddrs, 3), 3);
  /* b answers only once started (and not before 20 ms). */
  mdns_start(b.m, 0);
  uint8_t pkt[MDNS_MAX_OUT];
  while (mdns_poll(b.m, 0, pkt, sizeof pkt) > 0) {
  }
  mdns_peer peers[4];
  size_t n = exchange(&a, &b, 5000, peers, 4);
  assert_int_equal(n, 1);
  assert_string_equal(peers[0].peer_id, b.id);
  assert_string_equal(peers[0].instance, mdns_peer_name(b.m));
  assert_int_equal(peers[0].n_addrs, 3);
  assert_int_equal(peers[0].ttl_s, MDNS_DEFAULT_TTL_S);
  char t[MULTIADDR_STR_MAX];
  assert_int_equal(multiaddr_to_string(&peers[0].addrs[0], t, sizeof t), 0);
  assert_string_equal(t, "/ip4/127.0.0.1/tcp/4002"); /* no /p2p/ */
  assert_int_equal(multiaddr_to_string(&peers[0].addrs[2], t, sizeof t), 0);
  assert_string_equal(t, "/ip4/192.168.1.7/tcp/4002");
  mdns_free(a.m);
  mdns_free(b.m);
}

static void test_mdns_ignores_its_own_packets(void **st) {
  (void)st;
  node a;
  mdns_config cfg = {.allow_loopback = true};
  node_init(&a, 1, &cfg, "/ip4/127.0.0.1/tcp/4001");
  mdns_start(a.m, 0);
  uint8_t pkt[MDNS_MAX_OUT];
  int n = mdns_poll(a.m, 0, pkt, sizeof pkt); /* our announcement, looped back */
  assert_true(n > 0);
  mdns_peer peers[2];
  size_t np = 9;
  assert_int_equal(mdns_handle(a.m, pkt, (size_t)n, 0, peers, 2, &np), 0);
  assert_int_equal(np, 0);
  mdns_free(a.m);
}

/* A response shaped as @libp2p/mdns 12 sends it: PTR and one TXT per address, all answers. */
static int js_response(const char *inst_label, const char *const *txts, size_t n, uint32_t ttl, uint8_t *out,
                       size_t cap) {
  dns_writer w;
  dns_writer_init(&w, out, cap, 0, DNS_FLAG_QR | DNS_FLAG_AA);
  dns_name svc = name("_p2p._udp.local"), inst;
  assert_int_equal(dns_name_prepend(inst_label, strlen(inst_label), &svc, &inst), 0);
  assert_int_equal(dns_writer_ptr(&w, DNS_SEC_ANSWER, &svc, DNS_CLASS_IN, ttl, &inst), 0);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *s = (const uint8_t *)txts[i];
    size_t l = strlen(txts[i]);
    assert_int_equal(dns_writer_txt(&w, DNS_SEC_ANSWER, &inst, DNS_CLASS_IN, ttl, &s, &l, 1), 0);
  }
  return dns_writer_finish(&w);
}

static void test_mdns_accepts_js_style_response_and_filters_addresses(void **st) {
  (void)st;
  node a;
  char bid[PEERID_STR_MAX];
  make_id(2, bid);
  node_init(&a, 1, NULL, NULL); /* loopback not allowed */
  char t[8][200];
  const char *addrs[8] = {"/ip4/127.0.0.1/tcp/1", "/ip4/0.0.0.0/tcp/2", "/ip6/::/tcp/3",
                          "/ip4/169.254.3.4/tcp/4", "/ip6/fe80::1/tcp/5", "/ip4/10.1.2.3/tcp/6",
                          "/ip6/fd00::5/tcp/7", "/ip4/10.1.2.3/tcp/8/p2p-circuit"};
  const char *txts[8];
  for (int i = 0; i < 8; i++) {
    snprintf(t[i], sizeof t[i], "dnsaddr=%s/p2p/%s", addrs[i], bid);
    txts[i] = t[i];
  }
  uint8_t pkt[2048];
  int n = js_response("abcdefghijklmnopqrstuvwxyz0123456789", txts, 8, 120, pkt, sizeof pkt);
  assert_true(n > 0);
  mdns_peer peers[2];
  size_t np = 0;
  assert_int_equal(mdns_handle(a.m, pkt, (size_t)n, 0, peers, 2, &np), 0);
  assert_int_equal(np, 1);
  assert_string_equal(peers[0].peer_id, bid);
  assert_int_equal(peers[0].n_addrs, 2);
  assert_int_equal(peers[0].n_dropped, 6);
  char s[MULTIADDR_STR_MAX];
  assert_int_equal(multiaddr_to_string(&peers[0].addrs[0], s, sizeof s), 0);
  assert_string_equal(s, "/ip4/10.1.2.3/tcp/6");
  assert_int_equal(multiaddr_to_string(&peers[0].addrs[1], s, sizeof s), 0);
  assert_string_equal(s, "/ip6/fd00::5/tcp/7");
  mdns_free(a.m);
  /* With loopback allowed the first address is kept as well. */
  mdns_config cfg = {.allow_loopback = true};
  node_init(&a, 1, &cfg, NULL);
  assert_int_equal(mdns_handle(a.m, pkt, (size_t)n, 0, peers, 2, &np), 0);
  assert_int_equal(np, 1);
  assert_int_equal(peers[0].n_addrs, 3);
  mdns_free(a.m);
}

static void test_mdns_peer_with_no_acceptable_address_is_not_reported(void **st) {
  (void)st;
  node a;
  char bid[PEERID_STR_MAX];
  make_id(2, bid);
  node_init(&a, 1, NULL, NULL);
  char t[200];
  snprintf(t, sizeof t, "dnsaddr=/ip4/127.0.0.1/tcp/1/p2p/%s", bid);
  const char *txts[1] = {t};
  uint8_t pkt[1024];
  int n = js_response("peerb", txts, 1, 120, pkt, sizeof pkt);
  mdns_peer peers[2];
  size_t np = 9;
  assert_int_equal(mdns_handle(a.m, pkt, (size_t)n, 0, peers, 2, &np), 0);
  assert_int_equal(np, 0);
  mdns_free(a.m);
}

static void test_mdns_accepts_numbered_dnsaddr_keys(void **st) {
  (void)st;
  /* py-libp2p writes dnsaddr=, dnsaddr2=, dnsaddr3= … in one TXT record. */
  node a;
  char bid[PEERID_STR_MAX];
  make_id(2, bid);
  node_init(&a, 1, NULL, NULL);
  char s1[200], s2[200];
  snprintf(s1, sizeof s1, "dnsaddr=/ip4/10.0.0.1/tcp/9710/p2p/%s", bid);
  snprintf(s2, sizeof s2, "dnsaddr2=/ip4/10.0.0.2/tcp/9710/p2p/%s", bid);
  const uint8_t *strs[3] = {(const uint8_t *)s1, (const uint8_t *)s2, (const uint8_t *)"dnsaddrx=/ip4/1.1.1.1/tcp/1"};
  size_t lens[3] = {strlen(s1), strlen(s2), strlen((const char *)strs[2])};
  uint8_t pkt[1024];
  dns_writer w;
  dns_writer_init(&w, pkt, sizeof pkt, 0, DNS_FLAG_QR | DNS_FLAG_AA);
  dns_name svc = name("_p2p._udp.local"), inst = name("pyname._p2p._udp.local");
  assert_int_equal(dns_writer_ptr(&w, DNS_SEC_ANSWER, &svc, DNS_CLASS_IN, 120, &inst), 0);
  assert_int_equal(dns_writer_txt(&w, DNS_SEC_ADDITIONAL, &inst, DNS_CLASS_IN, 120, strs, lens, 3), 0);
  int n = dns_writer_finish(&w);
  mdns_peer peers[2];
  size_t np = 0;
  assert_int_equal(mdns_handle(a.m, pkt, (size_t)n, 0, peers, 2, &np), 0);
  assert_int_equal(np, 1);
  assert_int_equal(peers[0].n_addrs, 2);
  mdns_free(a.m);
}

static void test_mdns_falls_back_to_id_srv_and_a_records(void **st) {
  (void)st;
  /* Older py-libp2p: TXT "id=<PeerId>", SRV port, A records of the SRV target. */
  node a;
  char bid[PEERID_STR_MAX];
  make_id(2, bid);
  node_init(&a, 1, NULL, NULL);
  char idtxt[120];
  snprintf(idtxt, sizeof idtxt, "id=%s", bid);
  const uint8_t *strs[1] = {(const uint8_t *)idtxt};
  size_t lens[1] = {strlen(idtxt)};
  uint8_t pkt[1024];
  dns_writer w;
  dns_writer_init(&w, pkt, sizeof pkt, 0, DNS_FLAG_QR | DNS_FLAG_AA);
  dns_name svc = name("_p2p._udp.local"), inst = name("oldpy._p2p._udp.local"), host = name("oldpy.local");
  uint8_t ip[4] = {192, 168, 0, 9};
  assert_int_equal(dns_writer_ptr(&w, DNS_SEC_ANSWER, &svc, DNS_CLASS_IN, 120, &inst), 0);
  assert_int_equal(dns_writer_txt(&w, DNS_SEC_ADDITIONAL, &inst, DNS_CLASS_IN, 120, strs, lens, 1), 0);
  assert_int_equal(dns_writer_srv(&w, DNS_SEC_ADDITIONAL, &inst, DNS_CLASS_IN, 120, 0, 0, 9710, &host), 0);
  assert_int_equal(dns_writer_raw(&w, DNS_SEC_ADDITIONAL, &host, DNS_TYPE_A, DNS_CLASS_IN, 120, ip, 4), 0);
  int n = dns_writer_finish(&w);
  mdns_peer peers[2];
  size_t np = 0;
  assert_int_equal(mdns_handle(a.m, pkt, (size_t)n, 0, peers, 2, &np), 0);
  assert_int_equal(np, 1);
  assert_string_equal(peers[0].peer_id, bid);
  assert_int_equal(peers[0].n_addrs, 1);
  char s[MULTIADDR_STR_MAX];
  assert_int_equal(multiaddr_to_string(&peers[0].addrs[0], s, sizeof s), 0);
  assert_string_equal(s, "/ip4/192.168.0.9/tcp/9710");
  mdns_free(a.m);
}

static void test_mdns_response_carries_srv_and_addresses(void **st) {
  (void)st;
  node b;
  node_init(&b, 2, NULL, "/ip4/192.168.1.7/tcp/4002");
  mdns_start(b.m, 0);
  uint8_t pkt[MDNS_MAX_OUT];
  int n = mdns_poll(b.m, 0, pkt, sizeof pkt);
  assert_true(n > 0);
  dns_reader r;
  dns_rr rr;
  assert_int_equal(dns_reader_init(&r, pkt, (size_t)n), 0);
  int saw_ptr = 0, saw_txt = 0, saw_srv = 0, saw_a = 0;
  while (dns_reader_rr(&r, &rr) == 1) {
    if (rr.type == DNS_TYPE_PTR && rr.section == DNS_SEC_ANSWER) saw_ptr++;
    if (rr.type == DNS_TYPE_TXT && rr.section == DNS_SEC_ADDITIONAL) {
      saw_txt++;
      assert_true(rr.cache_flush);
    }
    if (rr.type == DNS_TYPE_SRV) {
      saw_srv++;
      assert_int_equal(rr.srv_port, 4002);
    }
    if (rr.type == DNS_TYPE_A) {
      saw_a++;
      assert_memory_equal(rr.rdata, "\xc0\xa8\x01\x07", 4);
    }
  }
  assert_int_equal(saw_ptr, 1);
  assert_int_equal(saw_txt, 1);
  assert_int_equal(saw_srv, 1);
  assert_int_equal(saw_a, 1);
  mdns_free(b.m);
}

static int query_packet(const char *qname, uint16_t type, uint8_t *out, size_t cap) {
  dns_writer w;
  dns_writer_init(&w, out, cap, 0, 0);
  dns_name n = name(qname);
  assert_int_equal(dns_writer_question(&w, &n, type, DNS_CLASS_IN), 0);
  return dns_writer_finish(&w);
}

static void test_mdns_answers_direct_and_meta_questions(void **st) {
  (void)st;
  node b;
  node_init(&b, 2, NULL, "/ip4/192.168.1.7/tcp/4002");
  mdns_start(b.m, 0);
  uint8_t pkt[MDNS_MAX_OUT];
  while (mdns_poll(b.m, 0, pkt, sizeof pkt) > 0) {
  }
  char inst[128];
  snprintf(inst, sizeof inst, "%s._p2p._udp.local", mdns_peer_name(b.m));
  settle(b.m, 5000);
  int ql = query_packet(inst, DNS_TYPE_TXT, pkt, sizeof pkt);
  mdns_peer peers[1];
  size_t np;
  assert_int_equal(mdns_handle(b.m, pkt, (size_t)ql, 5000, peers, 1, &np), 0);
  assert_int_equal(mdns_next_deadline(b.m), 6000); /* 1 s after the announcement at 5000 */
  int n = mdns_poll(b.m, mdns_next_deadline(b.m), pkt, sizeof pkt);
  assert_true(n > 0);
  dns_reader r;
  dns_rr rr;
  assert_int_equal(dns_reader_init(&r, pkt, (size_t)n), 0);
  assert_int_equal(dns_reader_rr(&r, &rr), 1);
  assert_int_equal(rr.section, DNS_SEC_ANSWER);
  assert_int_equal(rr.type, DNS_TYPE_TXT);
  /* DNS-SD meta query → PTR _services._dns-sd._udp.local → _p2p._udp.local */
  settle(b.m, 10000);
  ql = query_packet("_services._dns-sd._udp.local", DNS_TYPE_PTR, pkt, sizeof pkt);
  assert_int_equal(mdns_handle(b.m, pkt, (size_t)ql, 10000, peers, 1, &np), 0);
  n = mdns_poll(b.m, mdns_next_deadline(b.m), pkt, sizeof pkt);
  assert_true(n > 0);
  assert_int_equal(dns_reader_init(&r, pkt, (size_t)n), 0);
  assert_int_equal(r.hdr.ancount, 1);
  assert_int_equal(r.hdr.arcount, 0);
  assert_int_equal(dns_reader_rr(&r, &rr), 1);
  dns_name svc = name("_p2p._udp.local");
  assert_true(dns_name_equal(&rr.target, &svc));
  /* A question for some other service gets nothing. */
  settle(b.m, 20000);
  ql = query_packet("_http._tcp.local", DNS_TYPE_PTR, pkt, sizeof pkt);
  assert_int_equal(mdns_handle(b.m, pkt, (size_t)ql, 20000, peers, 1, &np), 0);
  assert_true(mdns_next_deadline(b.m) > 20000 + 200);
  mdns_free(b.m);
}

static void test_mdns_known_answer_suppresses_ptr(void **st) {
  (void)st;
  node b;
  node_init(&b, 2, NULL, "/ip4/192.168.1.7/tcp/4002");
  mdns_start(b.m, 0);
  uint8_t pkt[MDNS_MAX_OUT];
  while (mdns_poll(b.m, 0, pkt, sizeof pkt) > 0) {
  }
  uint64_t before = mdns_next_deadline(b.m);
  dns_writer w;
  dns_writer_init(&w, pkt, sizeof pkt, 0, 0);
  dns_name svc = name("_p2p._udp.local"), inst;
  const char *nm = mdns_peer_name(b.m);
  assert_int_equal(dns_name_prepend(nm, strlen(nm), &svc, &inst), 0);
  assert_int_equal(dns_writer_question(&w, &svc, DNS_TYPE_PTR, DNS_CLASS_IN), 0);
  assert_int_equal(dns_writer_ptr(&w, DNS_SEC_ANSWER, &svc, DNS_CLASS_IN, 100, &inst), 0);
  int ql = dns_writer_finish(&w);
  mdns_peer peers[1];
  size_t np;
  assert_int_equal(mdns_handle(b.m, pkt, (size_t)ql, 5000, peers, 1, &np), 0);
  assert_int_equal(mdns_next_deadline(b.m), before); /* nothing scheduled */
  mdns_free(b.m);
}

static void test_mdns_responses_at_least_one_second_apart(void **st) {
  (void)st;
  node b;
  node_init(&b, 2, NULL, "/ip4/192.168.1.7/tcp/4002");
  mdns_start(b.m, 0);
  uint8_t pkt[MDNS_MAX_OUT];
  while (mdns_poll(b.m, 0, pkt, sizeof pkt) > 0) { /* announcement at 0 */
  }
  int ql = query_packet("_p2p._udp.local", DNS_TYPE_PTR, pkt, sizeof pkt);
  mdns_peer peers[1];
  size_t np;
  assert_int_equal(mdns_handle(b.m, pkt, (size_t)ql, 100, peers, 1, &np), 0);
  assert_int_equal(mdns_next_deadline(b.m), 1000); /* not before 1 s after the announcement */
  assert_int_equal(mdns_poll(b.m, 999, pkt, sizeof pkt), 0);
  assert_true(mdns_poll(b.m, 1000, pkt, sizeof pkt) > 0);
  mdns_free(b.m);
}

static void test_mdns_passive_never_answers(void **st) {
  (void)st;
  node b;
  mdns_config cfg = {.passive = true};
  node_init(&b, 2, &cfg, "/ip4/192.168.1.7/tcp/4002");
  mdns_start(b.m, 0);
  uint8_t pkt[MDNS_MAX_OUT];
  int n = mdns_poll(b.m, 0, pkt, sizeof pkt);
  assert_int_equal(n, sizeof js_query); /* only the query */
  assert_int_equal(mdns_poll(b.m, 0, pkt, sizeof pkt), 0);
  int ql = query_packet("_p2p._udp.local", DNS_TYPE_PTR, pkt, sizeof pkt);
  mdns_peer peers[1];
  size_t np;
  assert_int_equal(mdns_handle(b.m, pkt, (size_t)ql, 100, peers, 1, &np), 0);
  assert_int_equal(mdns_next_deadline(b.m), 1000); /* the next query only */
  assert_int_equal(mdns_goodbye(b.m, pkt, sizeof pkt), 0);
  mdns_free(b.m);
}

static void test_mdns_goodbye_reports_ttl_zero(void **st) {
  (void)st;
  node a, b;
  mdns_config cfg = {.allow_loopback = true};
  node_init(&a, 1, &cfg, NULL);
  node_init(&b, 2, &cfg, "/ip4/127.0.0.1/tcp/4002");
  uint8_t pkt[MDNS_MAX_OUT];
  int n = mdns_goodbye(b.m, pkt, sizeof pkt);
  assert_true(n > 0);
  mdns_peer peers[1];
  size_t np = 0;
  assert_int_equal(mdns_handle(a.m, pkt, (size_t)n, 0, peers, 1, &np), 0);
  assert_int_equal(np, 1);
  assert_int_equal(peers[0].ttl_s, 0);
  assert_string_equal(peers[0].peer_id, b.id);
  mdns_free(a.m);
  mdns_free(b.m);
}

static void test_mdns_set_addrs_filters_and_reannounces(void **st) {
  (void)st;
  node b;
  node_init(&b, 2, NULL, NULL);
  char other[PEERID_STR_MAX], with_other[200], with_self[200];
  make_id(3, other);
  snprintf(with_other, sizeof with_other, "/ip4/10.0.0.1/tcp/1/p2p/%s", other);
  snprintf(with_self, sizeof with_self, "/ip4/10.0.0.2/tcp/2/p2p/%s", b.id);
  const char *addrs[5] = {with_other, with_self, "/ip4/127.0.0.1/tcp/3", "not a multiaddr", "/ip4/10.0.0.2/tcp/2"};
  assert_int_equal(mdns_set_addrs(b.m, addrs, 5), 1); /* only with_self (its duplicate dropped) */
  mdns_start(b.m, 0);
  uint8_t pkt[MDNS_MAX_OUT];
  while (mdns_poll(b.m, 0, pkt, sizeof pkt) > 0) {
  }
  assert_true(mdns_poll(b.m, 1000, pkt, sizeof pkt) > 0); /* second announcement */
  while (mdns_poll(b.m, 1000, pkt, sizeof pkt) > 0) {
  }
  assert_int_equal(mdns_next_deadline(b.m), 3000);
  const char *more[1] = {"/ip4/10.0.0.3/tcp/3"};
  assert_int_equal(mdns_set_addrs(b.m, more, 1), 1);
  assert_int_equal(mdns_next_deadline(b.m), 0); /* changed: announce again now */
  assert_true(mdns_poll(b.m, 1500, pkt, sizeof pkt) > 0);
  assert_int_equal(mdns_set_addrs(b.m, more, 1), 1);
  assert_int_equal(mdns_next_deadline(b.m), 2500); /* unchanged: only the pending second announce */
  mdns_free(b.m);
}

static void test_mdns_rejects_malformed_packets(void **st) {
  (void)st;
  node a;
  node_init(&a, 1, NULL, "/ip4/10.0.0.1/tcp/1");
  mdns_peer peers[1];
  size_t np = 5;
  const uint8_t shortp[5] = {0};
  assert_int_equal(mdns_handle(a.m, shortp, sizeof shortp, 0, peers, 1, &np), -EINVAL);
  assert_int_equal(np, 0);
  /* A response whose PTR target loops. */
  const uint8_t loop[] = {0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xC0, 12, 0, 12, 0, 1, 0, 0, 0, 1, 0, 2, 0xC0, 12};
  assert_int_equal(mdns_handle(a.m, loop, sizeof loop, 0, peers, 1, &np), -EINVAL);
  assert_int_equal(np, 0);
  mdns_free(a.m);
}

static void test_mdns_config_checks(void **st) {
  (void)st;
  char id[PEERID_STR_MAX];
  make_id(1, id);
  mdns *m;
  mdns_config bad = {.peer_name = "Has-Upper"};
  assert_int_equal(mdns_new(&bad, id, &m), -EINVAL);
  mdns_config ok = {.peer_name = "fixedname01"};
  assert_int_equal(mdns_new(&ok, id, &m), 0);
  assert_string_equal(mdns_peer_name(m), "fixedname01");
  mdns_free(m);
  mdns_config none = {0};
  assert_int_equal(mdns_new(&none, "not-a-peer-id", &m), -EINVAL);
  assert_int_equal(mdns_new(&none, id, &m), 0);
  assert_int_equal(strlen(mdns_peer_name(m)), MDNS_PEER_NAME_LEN);
  mdns_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mdns_start_sends_announcement_then_query),
      cmocka_unit_test(test_mdns_query_backoff_capped_by_interval),
      cmocka_unit_test(test_mdns_two_nodes_discover_each_other),
      cmocka_unit_test(test_mdns_ignores_its_own_packets),
      cmocka_unit_test(test_mdns_accepts_js_style_response_and_filters_addresses),
      cmocka_unit_test(test_mdns_peer_with_no_acceptable_address_is_not_reported),
      cmocka_unit_test(test_mdns_accepts_numbered_dnsaddr_keys),
      cmocka_unit_test(test_mdns_falls_back_to_id_srv_and_a_records),
      cmocka_unit_test(test_mdns_response_carries_srv_and_addresses),
      cmocka_unit_test(test_mdns_answers_direct_and_meta_questions),
      cmocka_unit_test(test_mdns_known_answer_suppresses_ptr),
      cmocka_unit_test(test_mdns_responses_at_least_one_second_apart),
      cmocka_unit_test(test_mdns_passive_never_answers),
      cmocka_unit_test(test_mdns_goodbye_reports_ttl_zero),
      cmocka_unit_test(test_mdns_set_addrs_filters_and_reannounces),
      cmocka_unit_test(test_mdns_rejects_malformed_packets),
      cmocka_unit_test(test_mdns_config_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
