/* Unit tests for p2p/core/peerid: derivation (identity vs sha256 multihash) and both text forms. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hexutil.h"
#include "keyvectors.h"
#include "p2p/core/peerid.h"

static void id_of_pub(const char *pubhex, peerid *id) {
  uint8_t pub[1200];
  size_t n = hex_decode(pubhex, pub, sizeof pub);
  keys_public k;
  assert_int_equal(keys_public_decode(pub, n, &k), 0);
  assert_int_equal(peerid_from_public(&k, id), 0);
}

static void test_peerid_spec_ed25519_vector(void **state) {
  (void)state;
  peerid id;
  id_of_pub(SPEC_ED25519_PUB, &id);
  assert_int_equal(id.bytes[0], PEERID_MH_IDENTITY);
  assert_int_equal(id.bytes[1], 36);
  char s[PEERID_STR_MAX];
  assert_int_equal(peerid_to_string(&id, s, sizeof s), 0);
  assert_string_equal(s, SPEC_ED25519_ID);
}

/* Text forms must equal what js-libp2p prints, for identity (Ed25519, secp256k1) and sha256 (RSA). */
static void check_js(const char *pub, const char *want_b58, const char *want_cid, uint8_t want_mh) {
  peerid id, parsed;
  id_of_pub(pub, &id);
  assert_int_equal(id.bytes[0], want_mh);
  char s[PEERID_STR_MAX];
  assert_int_equal(peerid_to_string(&id, s, sizeof s), 0);
  assert_string_equal(s, want_b58);
  assert_int_equal(peerid_to_cid_string(&id, s, sizeof s), 0);
  assert_string_equal(s, want_cid);
  assert_int_equal(peerid_parse(want_b58, strlen(want_b58), &parsed), 0);
  assert_true(peerid_equal(&id, &parsed));
  assert_int_equal(peerid_parse(want_cid, strlen(want_cid), &parsed), 0);
  assert_true(peerid_equal(&id, &parsed));
}

static void test_peerid_ed25519_identity_multihash_matches_js(void **state) {
  (void)state;
  check_js(JS_ED25519_PUB, JS_ED25519_ID, JS_ED25519_CID, PEERID_MH_IDENTITY);
}

static void test_peerid_secp256k1_identity_multihash_matches_js(void **state) {
  (void)state;
  check_js(JS_SECP256K1_PUB, JS_SECP256K1_ID, JS_SECP256K1_CID, PEERID_MH_IDENTITY);
}

static void test_peerid_rsa_uses_sha256_multihash_matches_js(void **state) {
  (void)state;
  check_js(JS_RSA_PUB, JS_RSA_ID, JS_RSA_CID, PEERID_MH_SHA256);
}

static void test_peerid_ecdsa_key_longer_than_42_bytes_is_hashed(void **state) {
  (void)state;
  peerid id;
  id_of_pub(SPEC_ECDSA_PUB, &id);
  assert_int_equal(id.len, 34);
  assert_int_equal(id.bytes[0], PEERID_MH_SHA256);
  char s[PEERID_STR_MAX];
  assert_int_equal(peerid_to_string(&id, s, sizeof s), 0);
  assert_true(strncmp(s, "Qm", 2) == 0);
}

static void test_peerid_extract_public_key_from_identity_id(void **state) {
  (void)state;
  peerid id;
  assert_int_equal(peerid_parse(SPEC_ED25519_ID, strlen(SPEC_ED25519_ID), &id), 0);
  keys_public k;
  assert_int_equal(peerid_extract_public(&id, &k), 0);
  assert_int_equal(k.type, KEYS_TYPE_ED25519);
  assert_true(peerid_matches_public(&id, &k));
  peerid rsa;
  assert_int_equal(peerid_parse(JS_RSA_ID, strlen(JS_RSA_ID), &rsa), 0);
  assert_int_equal(peerid_extract_public(&rsa, &k), -ENOENT);
  assert_false(peerid_matches_public(&rsa, &k));
}

static void test_peerid_parse_rejects_garbage(void **state) {
  (void)state;
  peerid id;
  const char *bad[] = {
      "", "Qm", "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3", /* truncated: key no longer 32 bytes */
      "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5", /* one char short: digest 31 bytes */
      "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", /* CID with dag-pb codec, not libp2p-key */
      "x12D3KooW", "12D3KooW0", "bafz!!",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_not_equal(peerid_parse(bad[i], strlen(bad[i]), &id), 0);
  char longs[200];
  memset(longs, '1', sizeof longs - 1);
  longs[sizeof longs - 1] = 0;
  assert_int_equal(peerid_parse(longs, strlen(longs), &id), -EINVAL);
}

static void test_peerid_from_bytes_rejects_unknown_multihash(void **state) {
  (void)state;
  uint8_t md5[18] = {0xd5, 0x01, 16};
  peerid id;
  assert_int_equal(peerid_from_bytes(md5, 3 + 15, &id), -EINVAL);
  uint8_t sha_short[33] = {0x12, 31};
  assert_int_equal(peerid_from_bytes(sha_short, 33, &id), -EINVAL);
  uint8_t sha_ok[34] = {0x12, 32};
  assert_int_equal(peerid_from_bytes(sha_ok, 34, &id), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_peerid_spec_ed25519_vector),
      cmocka_unit_test(test_peerid_ed25519_identity_multihash_matches_js),
      cmocka_unit_test(test_peerid_secp256k1_identity_multihash_matches_js),
      cmocka_unit_test(test_peerid_rsa_uses_sha256_multihash_matches_js),
      cmocka_unit_test(test_peerid_ecdsa_key_longer_than_42_bytes_is_hashed),
      cmocka_unit_test(test_peerid_extract_public_key_from_identity_id),
      cmocka_unit_test(test_peerid_parse_rejects_garbage),
      cmocka_unit_test(test_peerid_from_bytes_rejects_unknown_multihash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
