/* test_fernet.c — Fernet (auth/fernet.h): the spec's vectors (github.com/fernet/spec
 * generate.json / verify.json / invalid.json cases), a token made by Python's cryptography with
 * the Python services' key derivation, and the {"enc":"fernet-v1","ct":…} wrapper. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth/fernet.h"

#define SPEC_SECRET "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="
#define SPEC_TOKEN "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
#define SPEC_NOW 499162800u /* 1985-10-26T01:20:00-07:00 */

static void test_spec_generate_vector(void **st) {
  (void)st;
  auth_fernet_key k;
  assert_int_equal(auth_fernet_key_parse(SPEC_SECRET, &k), 0);
  unsigned char iv[16];
  for (int i = 0; i < 16; i++) iv[i] = (unsigned char)i;
  char *t = auth_fernet_encrypt(&k, "hello", 5, SPEC_NOW, iv);
  assert_non_null(t);
  assert_string_equal(t, SPEC_TOKEN);
  free(t);
}

static void test_spec_verify_vector(void **st) {
  (void)st;
  auth_fernet_key k;
  assert_int_equal(auth_fernet_key_parse(SPEC_SECRET, &k), 0);
  unsigned char *p = NULL;
  size_t n = 0;
  assert_int_equal(auth_fernet_decrypt(&k, SPEC_TOKEN, strlen(SPEC_TOKEN), 60, SPEC_NOW + 1, &p, &n), 0);
  assert_int_equal(n, 5);
  assert_memory_equal(p, "hello", 5);
  free(p);
}

/* invalid.json's kinds of failure */
static void test_spec_invalid_tokens(void **st) {
  (void)st;
  auth_fernet_key k;
  assert_int_equal(auth_fernet_key_parse(SPEC_SECRET, &k), 0);
  unsigned char *p = NULL;
  size_t n = 0;
  char t[256];
  /* incorrect mac */
  snprintf(t, sizeof t, "%s", SPEC_TOKEN);
  t[strlen(t) - 5] = t[strlen(t) - 5] == 'A' ? 'B' : 'A';
  assert_int_equal(auth_fernet_decrypt(&k, t, strlen(t), 0, 0, &p, &n), -EINVAL);
  /* too short */
  assert_int_equal(auth_fernet_decrypt(&k, "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==", 56, 0, 0, &p, &n), -EINVAL);
  /* invalid base64 */
  assert_int_equal(auth_fernet_decrypt(&k, "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%", 80, 0, 0, &p, &n), -EINVAL);
  /* expired ttl, far-future timestamp (verify.json's clock rules) */
  assert_int_equal(auth_fernet_decrypt(&k, SPEC_TOKEN, strlen(SPEC_TOKEN), 60, SPEC_NOW + 120, &p, &n), -ETIME);
  static const char skew[] = "gAAAAAAdwStRAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAnja1xKYyhd-Y6mSkTOyTGJmw2Xc2a6kBd-iX9b_qXQcw==";
  assert_int_equal(auth_fernet_decrypt(&k, skew, strlen(skew), 60, SPEC_NOW + 1, &p, &n), -ETIME);
  /* the wrong key */
  auth_fernet_key other;
  auth_fernet_key_derive("another secret", &other);
  assert_int_equal(auth_fernet_decrypt(&other, SPEC_TOKEN, strlen(SPEC_TOKEN), 0, 0, &p, &n), -EINVAL);
  /* a wrong version byte (MAC recomputed would still fail: the MAC covers it) */
  unsigned char raw[128];
  size_t rl = 0;
  assert_int_equal(sodium_base642bin(raw, sizeof raw, SPEC_TOKEN, strlen(SPEC_TOKEN), NULL, &rl, NULL,
                                     sodium_base64_VARIANT_URLSAFE),
                   0);
  raw[0] = 0x81;
  sodium_bin2base64(t, sizeof t, raw, rl, sodium_base64_VARIANT_URLSAFE);
  assert_int_equal(auth_fernet_decrypt(&k, t, strlen(t), 0, 0, &p, &n), -EINVAL);
  /* a ciphertext that is not whole blocks */
  sodium_bin2base64(t, sizeof t, raw, rl - 1, sodium_base64_VARIANT_URLSAFE);
  assert_int_equal(auth_fernet_decrypt(&k, t, strlen(t), 0, 0, &p, &n), -EINVAL);
  assert_null(p);
  /* keys that are not 32 bytes of base64url */
  assert_int_equal(auth_fernet_key_parse("c2hvcnQ=", &k), -EINVAL);
  assert_int_equal(auth_fernet_key_parse(NULL, &k), -EINVAL);
}

/* Python: Fernet(urlsafe_b64encode(sha256(b"ipfs-accelerate-task-p2p-fernet-v1" + b"s3cr3t")))
 * .encrypt_at_time(b'{"prompt": "hello"}', 1700000000), made with cryptography 48. */
static void test_python_services_derivation_and_token(void **st) {
  (void)st;
  auth_fernet_key d, p;
  auth_fernet_key_derive("s3cr3t", &d);
  assert_int_equal(auth_fernet_key_parse("n83wflWBisVb6Nv96j6LYjUKvu1vWACRrajHmFq_ZeY=", &p), 0);
  assert_memory_equal(&d, &p, sizeof d);
  static const char py[] = "gAAAAABlU_EAzoGrXJm02vI-qODshTG1m8NxI8A5m3Xmi2lu6kcTmEWHpkwQs_cTNoZhsXbAvgBZ5yle-tKtUQTdL3N_"
                           "PdfbDZPYIlsxj7WfIwDSGuLATC8=";
  json_t *w = json_pack("{s:s, s:s}", "enc", "fernet-v1", "ct", py);
  assert_true(auth_fernet_is_wrapped(w));
  char *text = auth_fernet_unwrap(&d, w);
  assert_non_null(text);
  assert_string_equal(text, "{\"prompt\": \"hello\"}");
  free(text);
  json_decref(w);
}

static void test_wrap_round_trip(void **st) {
  (void)st;
  auth_fernet_key k;
  auth_fernet_key_derive("tok", &k);
  json_t *w = auth_fernet_wrap(&k, "a prompt, with ünïcode");
  assert_non_null(w);
  assert_string_equal(json_string_value(json_object_get(w, "enc")), "fernet-v1");
  char *t = auth_fernet_unwrap(&k, w);
  assert_string_equal(t, "a prompt, with ünïcode");
  free(t);
  /* another key, or something that is not a wrapper: NULL (Python's decrypt_text → None) */
  auth_fernet_key o;
  auth_fernet_key_derive("other", &o);
  assert_null(auth_fernet_unwrap(&o, w));
  json_t *bad = json_pack("{s:s, s:i}", "enc", "fernet-v1", "ct", 5);
  assert_false(auth_fernet_is_wrapped(bad));
  assert_null(auth_fernet_unwrap(&k, bad));
  json_decref(bad);
  json_decref(w);
  auth_fernet_key_wipe(&k);
  static const auth_fernet_key zero;
  assert_memory_equal(&k, &zero, sizeof k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec_generate_vector),
      cmocka_unit_test(test_spec_verify_vector),
      cmocka_unit_test(test_spec_invalid_tokens),
      cmocka_unit_test(test_python_services_derivation_and_token),
      cmocka_unit_test(test_wrap_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
