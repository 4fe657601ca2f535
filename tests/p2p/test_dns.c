/* test_dns.c — DNS message reader/writer (RFC 1035 §4, RFC 6762 bits): names, compression,
 * every bound of the reader, writer roll-back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/proto/dns.h"

static dns_name name(const char *t) {
  dns_name n;
  assert_int_equal(dns_name_from_text(t, &n), 0);
  return n;
}

static void test_dns_name_text_round_trip(void **st) {
  (void)st;
  dns_name n = name("_p2p._udp.local");
  assert_int_equal(n.len, 17);
  assert_memory_equal(n.wire, "\x04_p2p\x04_udp\x05local\x00", 17);
  char t[DNS_NAME_TEXT_MAX];
  assert_int_equal(dns_name_to_text(&n, t, sizeof t), 0);
  assert_string_equal(t, "_p2p._udp.local");
  dns_name n2 = name("_p2p._udp.local.");
  assert_true(dns_name_equal(&n, &n2));
  dns_name up = name("_P2P._UDP.Local");
  assert_true(dns_name_equal(&n, &up)); /* RFC 1035 §2.3.3: case-insensitive */
  dns_name root = name("");
  assert_int_equal(root.len, 1);
  assert_int_equal(dns_name_to_text(&root, t, sizeof t), 0);
  assert_string_equal(t, ".");
}

static void test_dns_name_rejects_bad_labels(void **st) {
  (void)st;
  dns_name n;
  char long_label[70];
  memset(long_label, 'a', 64);
  long_label[64] = 0;
  assert_int_equal(dns_name_from_text(long_label, &n), -EINVAL); /* label > 63 */
  assert_int_equal(dns_name_from_text("a..b", &n), -EINVAL);
  assert_int_equal(dns_name_from_text(".a", &n), -EINVAL);
  char too_long[300];
  size_t o = 0;
  for (int i = 0; i < 50; i++) {
    memcpy(too_long + o, "abcde.", 6);
    o += 6;
  }
  too_long[o - 1] = 0; /* 50 labels of 5: 300 wire bytes */
  assert_int_equal(dns_name_from_text(too_long, &n), -EINVAL);
}

static void test_dns_name_to_text_escapes(void **st) {
  (void)st;
  dns_name n = {.len = 7, .wire = {3, 'a', '.', 0x01, 1, '\\', 0}};
  char t[DNS_NAME_TEXT_MAX];
  assert_int_equal(dns_name_to_text(&n, t, sizeof t), 0);
  assert_string_equal(t, "a\\.\\001.\\\\");
  assert_int_equal(dns_name_to_text(&n, t, 4), -ENOSPC);
}

static void test_dns_name_split_and_prepend(void **st) {
  (void)st;
  dns_name svc = name("_p2p._udp.local"), inst;
  assert_int_equal(dns_name_prepend("abc123", 6, &svc, &inst), 0);
  char label[64];
  assert_true(dns_name_split_first(&inst, &svc, label, sizeof label));
  assert_string_equal(label, "abc123");
  dns_name other = name("abc123._tcp.local");
  assert_false(dns_name_split_first(&other, &svc, label, sizeof label));
  assert_false(dns_name_split_first(&svc, &svc, label, sizeof label));
  char big[64];
  memset(big, 'x', 64);
  assert_int_equal(dns_name_prepend(big, 64, &svc, &inst), -EINVAL);
}

/* The query multicast-dns (js-libp2p) sends for `_p2p._udp.local PTR`. */
static const uint8_t js_query[] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, '_', 'p', '2', 'p', 4, '_', 'u', 'd',
                                   'p', 5, 'l', 'o', 'c', 'a', 'l', 0, 0, 12, 0, 1};

static void test_dns_writer_query_matches_js_bytes(void **st) {
  (void)st;
  uint8_t out[512];
  dns_writer w;
  dns_writer_init(&w, out, sizeof out, 0, 0);
  dns_name n = name("_p2p._udp.local");
  assert_int_equal(dns_writer_question(&w, &n, DNS_TYPE_PTR, DNS_CLASS_IN), 0);
  int len = dns_writer_finish(&w);
  assert_int_equal(len, sizeof js_query);
  assert_memory_equal(out, js_query, sizeof js_query);
  dns_reader r;
  assert_int_equal(dns_reader_init(&r, out, (size_t)len), 0);
  dns_question q;
  assert_int_equal(dns_reader_question(&r, &q), 1);
  assert_true(dns_name_equal(&q.name, &n));
  assert_int_equal(q.type, DNS_TYPE_PTR);
  assert_int_equal(q.klass, DNS_CLASS_IN);
  assert_false(q.unicast_response);
  assert_int_equal(dns_reader_question(&r, &q), 0);
  dns_rr rr;
  assert_int_equal(dns_reader_rr(&r, &rr), 0);
}

static void test_dns_records_round_trip_with_compression(void **st) {
  (void)st;
  uint8_t out[1500];
  dns_writer w;
  dns_writer_init(&w, out, sizeof out, 0, DNS_FLAG_QR | DNS_FLAG_AA);
  dns_name svc = name("_p2p._udp.local"), inst = name("peer1._p2p._udp.local"), host = name("peer1.local");
  assert_int_equal(dns_writer_ptr(&w, DNS_SEC_ANSWER, &svc, DNS_CLASS_IN, 120, &inst), 0);
  const uint8_t *strs[2] = {(const uint8_t *)"dnsaddr=/ip4/10.0.0.1/tcp/4001", (const uint8_t *)""};
  size_t lens[2] = {strlen((const char *)strs[0]), 0};
  assert_int_equal(dns_writer_txt(&w, DNS_SEC_ADDITIONAL, &inst, DNS_CLASS_IN | DNS_CLASS_TOP_BIT, 120, strs, lens, 2), 0);
  assert_int_equal(dns_writer_srv(&w, DNS_SEC_ADDITIONAL, &inst, DNS_CLASS_IN, 120, 1, 2, 4001, &host), 0);
  uint8_t a[4] = {10, 0, 0, 1}, aaaa[16] = {0xfd, [15] = 1};
  assert_int_equal(dns_writer_raw(&w, DNS_SEC_ADDITIONAL, &host, DNS_TYPE_A, DNS_CLASS_IN, 120, a, 4), 0);
  assert_int_equal(dns_writer_raw(&w, DNS_SEC_ADDITIONAL, &host, DNS_TYPE_AAAA, DNS_CLASS_IN, 120, aaaa, 16), 0);
  int len = dns_writer_finish(&w);
  assert_true(len > 0);
  /* Without compression the names alone take 17+23+23+23+12+12+12 = 122 bytes. */
  assert_true(len < 12 + 122 + 5 * 10 + 30 + 6);
  dns_reader r;
  assert_int_equal(dns_reader_init(&r, out, (size_t)len), 0);
  assert_int_equal(r.hdr.ancount, 1);
  assert_int_equal(r.hdr.arcount, 4);
  dns_rr rr;
  assert_int_equal(dns_reader_rr(&r, &rr), 1);
  assert_int_equal(rr.section, DNS_SEC_ANSWER);
  assert_int_equal(rr.type, DNS_TYPE_PTR);
  assert_true(dns_name_equal(&rr.name, &svc));
  assert_true(dns_name_equal(&rr.target, &inst));
  assert_int_equal(rr.ttl, 120);
  assert_int_equal(dns_reader_rr(&r, &rr), 1);
  assert_int_equal(rr.section, DNS_SEC_ADDITIONAL);
  assert_int_equal(rr.type, DNS_TYPE_TXT);
  assert_true(rr.cache_flush);
  assert_int_equal(rr.klass, DNS_CLASS_IN);
  assert_true(dns_name_equal(&rr.name, &inst));
  size_t off = 0;
  const uint8_t *s;
  size_t sl;
  assert_int_equal(dns_txt_next(rr.rdata, rr.rdlen, &off, &s, &sl), 1);
  assert_int_equal(sl, lens[0]);
  assert_memory_equal(s, strs[0], sl);
  assert_int_equal(dns_txt_next(rr.rdata, rr.rdlen, &off, &s, &sl), 1);
  assert_int_equal(sl, 0);
  assert_int_equal(dns_txt_next(rr.rdata, rr.rdlen, &off, &s, &sl), 0);
  assert_int_equal(dns_reader_rr(&r, &rr), 1);
  assert_int_equal(rr.type, DNS_TYPE_SRV);
  assert_int_equal(rr.srv_priority, 1);
  assert_int_equal(rr.srv_weight, 2);
  assert_int_equal(rr.srv_port, 4001);
  assert_true(dns_name_equal(&rr.target, &host));
  assert_int_equal(dns_reader_rr(&r, &rr), 1);
  assert_int_equal(rr.type, DNS_TYPE_A);
  assert_memory_equal(rr.rdata, a, 4);
  assert_int_equal(dns_reader_rr(&r, &rr), 1);
  assert_int_equal(rr.type, DNS_TYPE_AAAA);
  assert_memory_equal(rr.rdata, aaaa, 16);
  assert_int_equal(dns_reader_rr(&r, &rr), 0);
}

static void test_dns_writer_full_record_rolls_back(void **st) {
  (void)st;
  uint8_t out[100];
  dns_writer w;
  dns_writer_init(&w, out, sizeof out, 0, DNS_FLAG_QR);
  dns_name n = name("x.local");
  uint8_t big[90] = {0};
  assert_int_equal(dns_writer_raw(&w, DNS_SEC_ANSWER, &n, 99, DNS_CLASS_IN, 1, big, 90), -ENOSPC);
  uint8_t a[4] = {1, 2, 3, 4};
  assert_int_equal(dns_writer_raw(&w, DNS_SEC_ANSWER, &n, DNS_TYPE_A, DNS_CLASS_IN, 1, a, 4), 0);
  int len = dns_writer_finish(&w);
  assert_true(len > 0);
  dns_reader r;
  dns_rr rr;
  assert_int_equal(dns_reader_init(&r, out, (size_t)len), 0);
  assert_int_equal(r.hdr.ancount, 1);
  assert_int_equal(dns_reader_rr(&r, &rr), 1);
  assert_int_equal(rr.type, DNS_TYPE_A);
  assert_int_equal(dns_reader_rr(&r, &rr), 0);
}

static void test_dns_writer_rejects_section_order(void **st) {
  (void)st;
  uint8_t out[200];
  dns_writer w;
  dns_writer_init(&w, out, sizeof out, 0, 0);
  dns_name n = name("x.local");
  uint8_t a[4] = {1, 2, 3, 4};
  assert_int_equal(dns_writer_raw(&w, DNS_SEC_ADDITIONAL, &n, DNS_TYPE_A, DNS_CLASS_IN, 1, a, 4), 0);
  assert_int_equal(dns_writer_raw(&w, DNS_SEC_ANSWER, &n, DNS_TYPE_A, DNS_CLASS_IN, 1, a, 4), -EINVAL);
  assert_int_equal(dns_writer_finish(&w), -EINVAL); /* sticky */
}

/* A response header with one answer, then `body` as the record. */
static size_t one_rr(uint8_t *out, const uint8_t *body, size_t n) {
  static const uint8_t hdr[12] = {0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0};
  memcpy(out, hdr, 12);
  memcpy(out + 12, body, n);
  return 12 + n;
}

static int read_one(const uint8_t *pkt, size_t len) {
  dns_reader r;
  int rc = dns_reader_init(&r, pkt, len);
  if (rc) return rc;
  dns_rr rr;
  return dns_reader_rr(&r, &rr);
}

static void test_dns_reader_rejects_pointer_loops(void **st) {
  (void)st;
  uint8_t pkt[64];
  /* Name is a pointer to itself (offset 12). */
  const uint8_t self[] = {0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0};
  assert_int_equal(read_one(pkt, one_rr(pkt, self, sizeof self)), -EINVAL);
  /* A forward pointer. */
  const uint8_t fwd[] = {0xC0, 20, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0};
  assert_int_equal(read_one(pkt, one_rr(pkt, fwd, sizeof fwd)), -EINVAL);
  /* "a" then a pointer back to the start of that same name: a loop through a label. */
  const uint8_t loop[] = {1, 'a', 0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0};
  assert_int_equal(read_one(pkt, one_rr(pkt, loop, sizeof loop)), -EINVAL);
  /* Two pointers pointing at each other through the header area. */
  uint8_t p2[64];
  static const uint8_t hdr[12] = {0xC0, 2, 0xC0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
  memcpy(p2, hdr, 12);
  const uint8_t body[] = {0xC0, 2, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0};
  memcpy(p2 + 12, body, sizeof body);
  assert_int_equal(read_one(p2, 12 + sizeof body), -EINVAL);
}

static void test_dns_reader_rejects_long_names_and_labels(void **st) {
  (void)st;
  uint8_t pkt[DNS_MAX_MSG];
  /* 0x40 label type (extended label, obsolete). */
  const uint8_t ext[] = {0x41, 'a', 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0};
  assert_int_equal(read_one(pkt, one_rr(pkt, ext, sizeof ext)), -EINVAL);
  /* 5 × 63-byte labels = 320 bytes: over 255. */
  uint8_t body[400];
  size_t o = 0;
  for (int i = 0; i < 5; i++) {
    body[o++] = 63;
    memset(body + o, 'a', 63);
    o += 63;
  }
  body[o++] = 0;
  const uint8_t tail[] = {0, 1, 0, 1, 0, 0, 0, 1, 0, 0};
  memcpy(body + o, tail, sizeof tail);
  o += sizeof tail;
  assert_int_equal(read_one(pkt, one_rr(pkt, body, o)), -EINVAL);
  /* Label running past the end of the message. */
  const uint8_t past[] = {20, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'};
  assert_int_equal(read_one(pkt, one_rr(pkt, past, sizeof past)), -EINVAL);
}

static void test_dns_reader_rejects_bad_rdata(void **st) {
  (void)st;
  uint8_t pkt[128];
  /* A record with 5 bytes of rdata. */
  const uint8_t a5[] = {0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 5, 1, 2, 3, 4, 5};
  assert_int_equal(read_one(pkt, one_rr(pkt, a5, sizeof a5)), -EINVAL);
  /* rdlength past the end. */
  const uint8_t past[] = {0, 0, 16, 0, 1, 0, 0, 0, 1, 0, 50, 1, 2};
  assert_int_equal(read_one(pkt, one_rr(pkt, past, sizeof past)), -EINVAL);
  /* PTR whose target runs past its rdata. */
  const uint8_t ptr[] = {0, 0, 12, 0, 1, 0, 0, 0, 1, 0, 2, 3, 'a', 'b', 'c', 0};
  assert_int_equal(read_one(pkt, one_rr(pkt, ptr, sizeof ptr)), -EINVAL);
  /* TXT string longer than its rdata: the record reads, the string iterator refuses. */
  const uint8_t txt[] = {0, 0, 16, 0, 1, 0, 0, 0, 1, 0, 3, 5, 'a', 'b'};
  size_t len = one_rr(pkt, txt, sizeof txt);
  dns_reader r;
  dns_rr rr;
  assert_int_equal(dns_reader_init(&r, pkt, len), 0);
  assert_int_equal(dns_reader_rr(&r, &rr), 1);
  size_t off = 0;
  const uint8_t *s;
  size_t sl;
  assert_int_equal(dns_txt_next(rr.rdata, rr.rdlen, &off, &s, &sl), -EINVAL);
}

static void test_dns_reader_bounds_counts_and_size(void **st) {
  (void)st;
  static uint8_t big[DNS_MAX_MSG + 1];
  dns_reader r;
  assert_int_equal(dns_reader_init(&r, big, sizeof big), -EMSGSIZE);
  assert_int_equal(dns_reader_init(&r, big, 11), -EINVAL);
  /* 1000 answers claimed in a 40-byte message. */
  uint8_t pkt[40] = {0, 0, 0x84, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 0};
  assert_int_equal(dns_reader_init(&r, pkt, sizeof pkt), -EINVAL);
  /* 3 answers fit 40 bytes only if each is ≥ 11 bytes: 12 + 33 > 40. */
  pkt[6] = 0;
  pkt[7] = 3;
  assert_int_equal(dns_reader_init(&r, pkt, sizeof pkt), -EINVAL);
  /* Truncated record: sticky error. */
  pkt[7] = 2;
  memset(pkt + 12, 0, 28);
  pkt[12] = 0;                   /* root */
  pkt[13] = 0, pkt[14] = 1;      /* A */
  pkt[15] = 0, pkt[16] = 1;      /* IN */
  pkt[21] = 0, pkt[22] = 4;      /* rdlen 4; the second record starts at 27 */
  pkt[37] = 50;                  /* its rdlen: 50 bytes past the end */
  assert_int_equal(dns_reader_init(&r, pkt, sizeof pkt), 0);
  dns_rr rr;
  assert_int_equal(dns_reader_rr(&r, &rr), 1);
  assert_int_equal(dns_reader_rr(&r, &rr), -EINVAL); /* second one runs past the end */
  assert_int_equal(dns_reader_rr(&r, &rr), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dns_name_text_round_trip),
      cmocka_unit_test(test_dns_name_rejects_bad_labels),
      cmocka_unit_test(test_dns_name_to_text_escapes),
      cmocka_unit_test(test_dns_name_split_and_prepend),
      cmocka_unit_test(test_dns_writer_query_matches_js_bytes),
      cmocka_unit_test(test_dns_records_round_trip_with_compression),
      cmocka_unit_test(test_dns_writer_full_record_rolls_back),
      cmocka_unit_test(test_dns_writer_rejects_section_order),
      cmocka_unit_test(test_dns_reader_rejects_pointer_loops),
      cmocka_unit_test(test_dns_reader_rejects_long_names_and_labels),
      cmocka_unit_test(test_dns_reader_rejects_bad_rdata),
      cmocka_unit_test(test_dns_reader_bounds_counts_and_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
