/* Unit tests for p2p/core/envelope: signed envelopes (RFC 0002) and peer records (RFC 0003),
 * checked against bytes js-libp2p made (@libp2p/peer-record 9.0.16, envelope_check.mjs seal),
 * and every way an envelope can be wrong. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "envelope.pb-c.h"
#include "hexutil.h"
#include "p2p/core/envelope.h"

/* js: envelope_check.mjs seal 01×32 42 /ip4/1.2.3.4/tcp/4001 /ip6/::1/tcp/9710 */
static const char *JS_RECORD =
    "0a24080112208a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c120203011a4e0a2600240801122"
    "08a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c102a1a0a0a080401020304060fa11a160a1429"
    "000000000000000000000000000000010625ee2a409d804dc4f7b7a04c8cf4fa36b5f52463fa32167ee927599dca2e4a037936e"
    "0e4f388650ae8e79ba16d562d8191d716df4949b2980398ad8ae3ca764d8ef4f60e";
static const char *JS_PEER = "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5";

static void seed_key(uint8_t fill, keys_private *k) {
  uint8_t seed[32];
  memset(seed, fill, sizeof seed);
  assert_int_equal(keys_ed25519_from_seed(seed, k), 0);
}

static size_t js_record(uint8_t *out, size_t cap) { return hex_decode(JS_RECORD, out, cap); }

static void test_peer_record_made_by_js_opens(void **state) {
  (void)state;
  uint8_t b[1024];
  size_t n = js_record(b, sizeof b);
  peer_record r;
  assert_int_equal(peer_record_open(b, n, &r), 0);
  char id[PEERID_STR_MAX], a[MULTIADDR_STR_MAX];
  assert_int_equal(peerid_to_string(&r.id, id, sizeof id), 0);
  assert_string_equal(id, JS_PEER);
  assert_int_equal(r.seq, 42);
  assert_int_equal(r.n_addrs, 2);
  assert_int_equal(multiaddr_to_string(&r.addrs[0], a, sizeof a), 0);
  assert_string_equal(a, "/ip4/1.2.3.4/tcp/4001");
  assert_int_equal(multiaddr_to_string(&r.addrs[1], a, sizeof a), 0);
  assert_string_equal(a, "/ip6/::1/tcp/9710");
  peer_record_clear(&r);
}

/* Ed25519 signatures are deterministic: the same key, record and addresses give js's bytes. */
static void test_peer_record_sealed_here_is_byte_identical_to_js(void **state) {
  (void)state;
  keys_private k;
  seed_key(1, &k);
  multiaddr addrs[2];
  assert_int_equal(multiaddr_parse("/ip4/1.2.3.4/tcp/4001", &addrs[0]), 0);
  assert_int_equal(multiaddr_parse("/ip6/::1/tcp/9710", &addrs[1]), 0);
  buf out;
  buf_init(&out, ENVELOPE_MAX_BYTES);
  assert_int_equal(peer_record_seal(&k, 42, addrs, 2, &out), 0);
  uint8_t want[1024];
  size_t n = js_record(want, sizeof want);
  assert_int_equal(buf_len(&out), n);
  assert_memory_equal(buf_ptr(&out), want, n);
  buf_free(&out);
}

static void test_envelope_roundtrip_any_payload(void **state) {
  (void)state;
  keys_private k;
  seed_key(7, &k);
  const uint8_t type[] = {0x03, 0x02}, payload[] = "hello";
  buf out;
  buf_init(&out, ENVELOPE_MAX_BYTES);
  assert_int_equal(envelope_seal(&k, "test-domain", type, 2, payload, 5, &out), 0);
  envelope e;
  assert_int_equal(envelope_open(buf_ptr(&out), buf_len(&out), "test-domain", type, 2, &e), 0);
  assert_int_equal(e.payload_len, 5);
  assert_memory_equal(e.payload, "hello", 5);
  keys_public pub;
  keys_private_public(&k, &pub);
  assert_true(peerid_matches_public(&e.signer_id, &pub));
  envelope_clear(&e);
  /* any type when none is asked for; an empty payload is allowed */
  buf_reset(&out);
  assert_int_equal(envelope_seal(&k, "test-domain", NULL, 0, NULL, 0, &out), 0);
  assert_int_equal(envelope_open(buf_ptr(&out), buf_len(&out), "test-domain", NULL, 0, &e), 0);
  assert_int_equal(e.payload_len, 0);
  assert_int_equal(e.payload_type_len, 0);
  envelope_clear(&e);
  buf_free(&out);
}

static void test_envelope_rejects_another_domain(void **state) {
  (void)state;
  uint8_t b[1024];
  size_t n = js_record(b, sizeof b);
  envelope e;
  assert_int_equal(envelope_open(b, n, "libp2p-relay-rsvp", NULL, 0, &e), -EBADMSG);
  assert_int_equal(envelope_open(b, n, "", NULL, 0, &e), -EINVAL);
}

static void test_envelope_rejects_another_payload_type(void **state) {
  (void)state;
  uint8_t b[1024];
  size_t n = js_record(b, sizeof b);
  envelope e;
  const uint8_t other[] = {0x03, 0x02};
  assert_int_equal(envelope_open(b, n, PEER_RECORD_DOMAIN, other, 2, &e), -EPROTOTYPE);
  assert_int_equal(envelope_open(b, n, PEER_RECORD_DOMAIN, other, 1, &e), -EPROTOTYPE);
}

/* Flipping any bit of the payload, the payload type or the signature breaks the signature;
 * flipping one in the key makes it another (or no) key. */
static void test_envelope_rejects_every_tampered_byte(void **state) {
  (void)state;
  uint8_t b[1024];
  size_t n = js_record(b, sizeof b);
  for (size_t i = 0; i < n; i++) {
    uint8_t t[1024];
    memcpy(t, b, n);
    t[i] ^= 0x01;
    peer_record r;
    int rc = peer_record_open(t, n, &r);
    assert_true(rc < 0);
    peer_record_clear(&r);
  }
}

static void test_envelope_rejects_missing_fields_and_truncation(void **state) {
  (void)state;
  uint8_t b[1024];
  size_t n = js_record(b, sizeof b);
  envelope e;
  for (size_t cut = 0; cut < n; cut++) assert_true(envelope_open(b, cut, PEER_RECORD_DOMAIN, NULL, 0, &e) < 0);
  /* no signature */
  Record__Envelope *pb = record__envelope__unpack(NULL, n, b);
  assert_non_null(pb);
  pb->has_signature = 0;
  uint8_t o[1024];
  size_t on = record__envelope__pack(pb, o);
  assert_int_equal(envelope_open(o, on, PEER_RECORD_DOMAIN, NULL, 0, &e), -EINVAL);
  /* no key */
  pb->has_signature = 1;
  pb->has_public_key = 0;
  on = record__envelope__pack(pb, o);
  assert_int_equal(envelope_open(o, on, PEER_RECORD_DOMAIN, NULL, 0, &e), -EINVAL);
  /* a key that is not a key */
  pb->has_public_key = 1;
  uint8_t junk[] = {0x08, 0x01, 0x12, 0x03, 1, 2, 3};
  uint8_t *orig = pb->public_key.data;
  size_t orig_len = pb->public_key.len;
  pb->public_key.data = junk;
  pb->public_key.len = sizeof junk;
  on = record__envelope__pack(pb, o);
  assert_int_equal(envelope_open(o, on, PEER_RECORD_DOMAIN, NULL, 0, &e), -EINVAL);
  pb->public_key.data = orig;
  pb->public_key.len = orig_len;
  record__envelope__free_unpacked(pb, NULL);
  /* over the ceiling, before any parsing */
  uint8_t *big = calloc(1, ENVELOPE_MAX_BYTES + 1);
  assert_non_null(big);
  assert_int_equal(envelope_open(big, ENVELOPE_MAX_BYTES + 1, PEER_RECORD_DOMAIN, NULL, 0, &e), -E2BIG);
  free(big);
}

/* A record signed by one key that names another peer is a forgery. */
static void test_peer_record_must_name_its_signer(void **state) {
  (void)state;
  keys_private k, other;
  seed_key(1, &k);
  seed_key(2, &other);
  keys_public opub;
  keys_private_public(&other, &opub);
  peer_record r = {.seq = 1};
  assert_int_equal(peerid_from_public(&opub, &r.id), 0);
  buf payload, env;
  buf_init(&payload, ENVELOPE_MAX_BYTES);
  buf_init(&env, ENVELOPE_MAX_BYTES);
  assert_int_equal(peer_record_encode(&r, &payload), 0);
  assert_int_equal(envelope_seal(&k, PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, 2, buf_ptr(&payload),
                                 buf_len(&payload), &env),
                   0);
  peer_record d;
  assert_int_equal(peer_record_open(buf_ptr(&env), buf_len(&env), &d), -EACCES);
  buf_free(&payload);
  buf_free(&env);
}

static void test_peer_record_address_ceiling_and_bad_addresses(void **state) {
  (void)state;
  keys_private k;
  seed_key(3, &k);
  multiaddr addrs[PEER_RECORD_MAX_ADDRS + 1];
  for (size_t i = 0; i < PEER_RECORD_MAX_ADDRS + 1; i++) {
    char t[64];
    snprintf(t, sizeof t, "/ip4/10.0.0.%zu/tcp/%zu", i, 1000 + i);
    assert_int_equal(multiaddr_parse(t, &addrs[i]), 0);
  }
  buf out;
  buf_init(&out, ENVELOPE_MAX_BYTES);
  assert_int_equal(peer_record_seal(&k, 9, addrs, PEER_RECORD_MAX_ADDRS + 1, &out), -E2BIG);
  assert_int_equal(peer_record_seal(&k, 9, addrs, PEER_RECORD_MAX_ADDRS, &out), 0);
  peer_record r;
  assert_int_equal(peer_record_open(buf_ptr(&out), buf_len(&out), &r), 0);
  assert_int_equal(r.n_addrs, PEER_RECORD_MAX_ADDRS);
  assert_int_equal(r.seq, 9);
  peer_record_clear(&r);
  /* an address that is not a multiaddr is skipped and counted, not fatal */
  Record__PeerRecord pb = RECORD__PEER_RECORD__INIT;
  Record__PeerRecord__AddressInfo ai[2], *aip[2] = {&ai[0], &ai[1]};
  keys_public pub;
  keys_private_public(&k, &pub);
  peerid id;
  assert_int_equal(peerid_from_public(&pub, &id), 0);
  pb.has_peer_id = 1;
  pb.peer_id = (ProtobufCBinaryData){id.len, id.bytes};
  uint8_t junk[] = {0xff, 0xff, 0x01};
  for (int i = 0; i < 2; i++) record__peer_record__address_info__init(&ai[i]);
  ai[0].has_multiaddr = 1;
  ai[0].multiaddr = (ProtobufCBinaryData){sizeof junk, junk};
  ai[1].has_multiaddr = 1;
  ai[1].multiaddr = (ProtobufCBinaryData){addrs[0].len, addrs[0].bytes};
  pb.n_addresses = 2;
  pb.addresses = aip;
  uint8_t enc[512];
  size_t en = record__peer_record__pack(&pb, enc);
  assert_int_equal(peer_record_decode(enc, en, &r), 0);
  assert_int_equal(r.n_addrs, 1);
  assert_int_equal(r.n_skipped, 1);
  peer_record_clear(&r);
  /* a record without a peer id is malformed */
  pb.has_peer_id = 0;
  en = record__peer_record__pack(&pb, enc);
  assert_int_equal(peer_record_decode(enc, en, &r), -EINVAL);
  buf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_peer_record_made_by_js_opens),
      cmocka_unit_test(test_peer_record_sealed_here_is_byte_identical_to_js),
      cmocka_unit_test(test_envelope_roundtrip_any_payload),
      cmocka_unit_test(test_envelope_rejects_another_domain),
      cmocka_unit_test(test_envelope_rejects_another_payload_type),
      cmocka_unit_test(test_envelope_rejects_every_tampered_byte),
      cmocka_unit_test(test_envelope_rejects_missing_fields_and_truncation),
      cmocka_unit_test(test_peer_record_must_name_its_signer),
      cmocka_unit_test(test_peer_record_address_ceiling_and_bad_addresses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
