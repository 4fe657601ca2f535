/* Unit tests for p2p/core/keys: deterministic PublicKey/PrivateKey protobufs, strict
 * decoding, and signature verification for all four key types. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "hexutil.h"
#include "keyvectors.h"
#include "p2p/core/keys.h"

static void test_keys_spec_ed25519_private_key_decodes_to_spec_public_key(void **state) {
  (void)state;
  uint8_t priv[128], pub[64], enc[128];
  size_t pn = hex_decode(SPEC_ED25519_PRIV, priv, sizeof priv);
  size_t un = hex_decode(SPEC_ED25519_PUB, pub, sizeof pub);
  keys_private k;
  assert_int_equal(keys_private_decode(priv, pn, &k), 0);
  keys_public kp;
  keys_private_public(&k, &kp);
  size_t n;
  assert_int_equal(keys_public_encode(&kp, enc, sizeof enc, &n), 0);
  assert_int_equal(n, un);
  assert_memory_equal(enc, pub, un);
  /* And the PrivateKey re-encodes byte for byte (our identity file format). */
  assert_int_equal(keys_private_encode(&k, enc, sizeof enc, &n), 0);
  assert_int_equal(n, pn);
  assert_memory_equal(enc, priv, pn);
}

static void test_keys_private_accepts_legacy_96_byte_form_with_equal_copies(void **state) {
  (void)state;
  uint8_t priv[128], legacy[128];
  size_t pn = hex_decode(SPEC_ED25519_PRIV, priv, sizeof priv);
  legacy[0] = 0x08, legacy[1] = 0x01, legacy[2] = 0x12, legacy[3] = 96;
  memcpy(legacy + 4, priv + 4, 64);
  memcpy(legacy + 68, priv + 36, 32);
  keys_private k;
  assert_int_equal(keys_private_decode(legacy, 100, &k), 0);
  legacy[99] ^= 1; /* the two public copies now differ */
  assert_int_equal(keys_private_decode(legacy, 100, &k), -EINVAL);
  (void)pn;
}

static void test_keys_private_rejects_public_half_not_matching_seed(void **state) {
  (void)state;
  uint8_t priv[128];
  size_t pn = hex_decode(SPEC_ED25519_PRIV, priv, sizeof priv);
  priv[pn - 1] ^= 0x40;
  keys_private k;
  assert_int_equal(keys_private_decode(priv, pn, &k), -EINVAL);
}

static void test_keys_private_other_types_not_supported(void **state) {
  (void)state;
  uint8_t priv[64];
  size_t pn = hex_decode(SPEC_SECP256K1_PRIV, priv, sizeof priv);
  keys_private k;
  assert_int_equal(keys_private_decode(priv, pn, &k), -ENOTSUP);
}

static void test_keys_public_decode_is_strict(void **state) {
  (void)state;
  uint8_t pub[64], bad[80];
  size_t n = hex_decode(SPEC_ED25519_PUB, pub, sizeof pub);
  keys_public k;
  assert_int_equal(keys_public_decode(pub, n, &k), 0);
  assert_int_equal(k.type, KEYS_TYPE_ED25519);
  /* trailing unknown field */
  memcpy(bad, pub, n);
  bad[n] = 0x18, bad[n + 1] = 0x01;
  assert_int_equal(keys_public_decode(bad, n + 2, &k), -EINVAL);
  /* duplicate Data field */
  memcpy(bad + n, pub + 2, n - 2);
  assert_int_equal(keys_public_decode(bad, n + n - 2, &k), -EINVAL);
  /* fields out of order */
  memcpy(bad, pub + 2, n - 2);
  memcpy(bad + n - 2, pub, 2);
  assert_int_equal(keys_public_decode(bad, n, &k), -EINVAL);
  /* missing Type */
  assert_int_equal(keys_public_decode(pub + 2, n - 2, &k), -EINVAL);
  /* truncated */
  assert_int_equal(keys_public_decode(pub, n - 1, &k), -EINVAL);
  /* unknown key type 4 */
  memcpy(bad, pub, n);
  bad[1] = 4;
  assert_int_equal(keys_public_decode(bad, n, &k), -EINVAL);
  /* non-minimal length varint */
  bad[1] = 1;
  uint8_t nm[80] = {0x08, 0x01, 0x12, 0xa0, 0x00};
  memcpy(nm + 5, pub + 4, 32);
  assert_int_equal(keys_public_decode(nm, 37, &k), -EINVAL);
  /* Ed25519 key of the wrong length */
  uint8_t shortk[] = {0x08, 0x01, 0x12, 0x02, 0xaa, 0xbb};
  assert_int_equal(keys_public_decode(shortk, sizeof shortk, &k), -EINVAL);
}

static void test_keys_ed25519_sign_and_verify(void **state) {
  (void)state;
  keys_private k;
  assert_int_equal(keys_ed25519_generate(&k), 0);
  keys_public p;
  keys_private_public(&k, &p);
  uint8_t sig[64];
  assert_int_equal(keys_private_sign(&k, (const uint8_t *)"abc", 3, sig), 0);
  assert_int_equal(keys_public_verify(&p, (const uint8_t *)"abc", 3, sig, 64), 0);
  assert_int_equal(keys_public_verify(&p, (const uint8_t *)"abd", 3, sig, 64), -EBADMSG);
  sig[0] ^= 1;
  assert_int_equal(keys_public_verify(&p, (const uint8_t *)"abc", 3, sig, 64), -EBADMSG);
  assert_int_equal(keys_public_verify(&p, (const uint8_t *)"abc", 3, sig, 63), -EBADMSG);
}

/* Verifies a js-libp2p signature, then checks that a flipped bit is refused. */
static void check_js_vector(const char *pubhex, const char *sighex, keys_type want) {
  uint8_t pub[1200], sig[600];
  size_t pn = hex_decode(pubhex, pub, sizeof pub);
  size_t sn = hex_decode(sighex, sig, sizeof sig);
  keys_public k;
  assert_int_equal(keys_public_decode(pub, pn, &k), 0);
  assert_int_equal(k.type, want);
  uint8_t re[1200];
  size_t rn;
  assert_int_equal(keys_public_encode(&k, re, sizeof re, &rn), 0);
  assert_int_equal(rn, pn);
  assert_memory_equal(re, pub, pn);
  const uint8_t *msg = (const uint8_t *)JS_SIGNED_MSG;
  assert_int_equal(keys_public_verify(&k, msg, strlen(JS_SIGNED_MSG), sig, sn), 0);
  assert_int_equal(keys_public_verify(&k, msg, strlen(JS_SIGNED_MSG) - 1, sig, sn), -EBADMSG);
  sig[sn / 2] ^= 0x01;
  assert_int_equal(keys_public_verify(&k, msg, strlen(JS_SIGNED_MSG), sig, sn), -EBADMSG);
}

static void test_keys_verifies_js_ed25519_signature(void **state) {
  (void)state;
  check_js_vector(JS_ED25519_PUB, JS_ED25519_SIG, KEYS_TYPE_ED25519);
}

static void test_keys_verifies_js_secp256k1_signature(void **state) {
  (void)state;
  check_js_vector(JS_SECP256K1_PUB, JS_SECP256K1_SIG, KEYS_TYPE_SECP256K1);
}

static void test_keys_verifies_js_rsa_pkcs1_sha256_signature(void **state) {
  (void)state;
  check_js_vector(JS_RSA_PUB, JS_RSA_SIG, KEYS_TYPE_RSA);
}

static void test_keys_spec_secp256k1_and_ecdsa_public_keys_decode(void **state) {
  (void)state;
  uint8_t b[256];
  keys_public k;
  size_t n = hex_decode(SPEC_SECP256K1_PUB, b, sizeof b);
  assert_int_equal(keys_public_decode(b, n, &k), 0);
  assert_int_equal(k.type, KEYS_TYPE_SECP256K1);
  n = hex_decode(SPEC_ECDSA_PUB, b, sizeof b);
  assert_int_equal(keys_public_decode(b, n, &k), 0);
  assert_int_equal(k.type, KEYS_TYPE_ECDSA);
  /* A secp256k1 point that is not on the curve is refused. */
  n = hex_decode(SPEC_SECP256K1_PUB, b, sizeof b);
  b[n - 1] ^= 0x01;
  b[n - 2] ^= 0x80;
  int rc = keys_public_decode(b, n, &k);
  (void)rc; /* flipping bits may still land on the curve; just must not crash */
}

/* ECDSA P-256 with a PKIX key: sign with OpenSSL (DER signature over SHA-256), verify here. */
static void test_keys_verifies_ecdsa_p256_pkix_signature(void **state) {
  (void)state;
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  assert_non_null(pk);
  unsigned char *der = NULL;
  int dl = i2d_PUBKEY(pk, &der);
  assert_true(dl > 0);
  keys_public k = {.type = KEYS_TYPE_ECDSA, .len = (size_t)dl};
  memcpy(k.data, der, (size_t)dl);
  OPENSSL_free(der);
  uint8_t pb[KEYS_PUBLIC_PB_MAX];
  size_t pbn;
  assert_int_equal(keys_public_encode(&k, pb, sizeof pb, &pbn), 0);
  keys_public k2;
  assert_int_equal(keys_public_decode(pb, pbn, &k2), 0);
  assert_true(keys_public_equal(&k, &k2));
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char sig[128];
  size_t sl = sizeof sig;
  assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk), 1);
  assert_int_equal(EVP_DigestSign(md, sig, &sl, (const unsigned char *)"hello", 5), 1);
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(pk);
  assert_int_equal(keys_public_verify(&k2, (const uint8_t *)"hello", 5, sig, sl), 0);
  assert_int_equal(keys_public_verify(&k2, (const uint8_t *)"hellp", 5, sig, sl), -EBADMSG);
}

static void test_keys_rsa_key_below_2048_bits_refused(void **state) {
  (void)state;
  EVP_PKEY *pk = EVP_RSA_gen(1024);
  assert_non_null(pk);
  unsigned char *der = NULL;
  int dl = i2d_PUBKEY(pk, &der);
  keys_public k = {.type = KEYS_TYPE_RSA, .len = (size_t)dl};
  memcpy(k.data, der, (size_t)dl);
  OPENSSL_free(der);
  EVP_PKEY_free(pk);
  uint8_t pb[KEYS_PUBLIC_PB_MAX];
  size_t pbn;
  assert_int_equal(keys_public_encode(&k, pb, sizeof pb, &pbn), 0);
  keys_public k2;
  assert_int_equal(keys_public_decode(pb, pbn, &k2), -EINVAL);
}

static void test_keys_public_data_over_ceiling_refused(void **state) {
  (void)state;
  static uint8_t big[KEYS_PUBLIC_PB_MAX + 64];
  big[0] = 0x08, big[1] = 0x00, big[2] = 0x12, big[3] = 0xc0, big[4] = 0x08; /* 1088 + 0x40 */
  keys_public k;
  assert_int_equal(keys_public_decode(big, sizeof big, &k), -E2BIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keys_spec_ed25519_private_key_decodes_to_spec_public_key),
      cmocka_unit_test(test_keys_private_accepts_legacy_96_byte_form_with_equal_copies),
      cmocka_unit_test(test_keys_private_rejects_public_half_not_matching_seed),
      cmocka_unit_test(test_keys_private_other_types_not_supported),
      cmocka_unit_test(test_keys_public_decode_is_strict),
      cmocka_unit_test(test_keys_ed25519_sign_and_verify),
      cmocka_unit_test(test_keys_verifies_js_ed25519_signature),
      cmocka_unit_test(test_keys_verifies_js_secp256k1_signature),
      cmocka_unit_test(test_keys_verifies_js_rsa_pkcs1_sha256_signature),
      cmocka_unit_test(test_keys_spec_secp256k1_and_ecdsa_public_keys_decode),
      cmocka_unit_test(test_keys_verifies_ecdsa_p256_pkix_signature),
      cmocka_unit_test(test_keys_rsa_key_below_2048_bits_refused),
      cmocka_unit_test(test_keys_public_data_over_ceiling_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
