/* jwt_testkit.c — see jwt_testkit.h. Signing goes through OpenSSL EVP (no hand-made crypto). */
#include "jwt_testkit.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tk_key_gen(tk_key *k, tk_kind kind, const char *kid) {
  memset(k, 0, sizeof *k);
  k->kind = kind;
  snprintf(k->kid, sizeof k->kid, "%s", kid ? kid : "");
  if (kind == TK_RSA) k->pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  else if (kind == TK_EC) k->pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  else k->pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  return k->pk ? 0 : -1;
}

void tk_key_free(tk_key *k) {
  EVP_PKEY_free(k->pk);
  k->pk = NULL;
}

char *tk_b64url(const unsigned char *p, size_t n) {
  size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *s = malloc(cap);
  if (s) sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return s;
}

static json_t *b64_bn(const EVP_PKEY *pk, const char *param) {
  BIGNUM *bn = NULL;
  if (EVP_PKEY_get_bn_param(pk, param, &bn) != 1) return NULL;
  int n = BN_num_bytes(bn);
  unsigned char *buf = malloc((size_t)n);
  BN_bn2bin(bn, buf);
  char *s = tk_b64url(buf, (size_t)n);
  json_t *j = json_string(s);
  free(s);
  free(buf);
  BN_free(bn);
  return j;
}

json_t *tk_key_jwk(const tk_key *k, const char *alg) {
  json_t *j = json_object();
  if (k->kind == TK_RSA) {
    json_object_set_new(j, "kty", json_string("RSA"));
    json_object_set_new(j, "n", b64_bn(k->pk, OSSL_PKEY_PARAM_RSA_N));
    json_object_set_new(j, "e", b64_bn(k->pk, OSSL_PKEY_PARAM_RSA_E));
  } else if (k->kind == TK_EC) {
    unsigned char pt[65];
    size_t n = 0;
    EVP_PKEY_get_octet_string_param(k->pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt, &n);
    char *x = tk_b64url(pt + 1, 32), *y = tk_b64url(pt + 33, 32);
    json_object_set_new(j, "kty", json_string("EC"));
    json_object_set_new(j, "crv", json_string("P-256"));
    json_object_set_new(j, "x", json_string(x));
    json_object_set_new(j, "y", json_string(y));
    free(x);
    free(y);
  } else {
    unsigned char raw[32];
    size_t n = sizeof raw;
    EVP_PKEY_get_raw_public_key(k->pk, raw, &n);
    char *x = tk_b64url(raw, n);
    json_object_set_new(j, "kty", json_string("OKP"));
    json_object_set_new(j, "crv", json_string("Ed25519"));
    json_object_set_new(j, "x", json_string(x));
    free(x);
  }
  if (k->kid[0]) json_object_set_new(j, "kid", json_string(k->kid));
  if (alg) json_object_set_new(j, "alg", json_string(alg));
  return j;
}

int tk_write_jwks(const char *path, const tk_key *const *keys, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, tk_key_jwk(keys[i], NULL));
  json_t *root = json_pack("{s:o}", "keys", arr);
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int rc = json_dump_file(root, tmp, JSON_COMPACT);
  json_decref(root);
  if (rc != 0) return -1;
  return rename(tmp, path) == 0 ? 0 : -1; /* atomic, as an operator's rotation should be */
}

/* Signature bytes of alg over data. malloc'd, *len. */
static unsigned char *sign_bytes(const char *alg, const tk_key *k, const unsigned char *secret, size_t sl,
                                 const unsigned char *data, size_t n, size_t *len) {
  if (strcmp(alg, "HS256") == 0) {
    unsigned char *mac = malloc(EVP_MAX_MD_SIZE);
    unsigned int ml = 0;
    HMAC(EVP_sha256(), secret, (int)sl, data, n, mac, &ml);
    *len = ml;
    return mac;
  }
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pc = NULL;
  bool ed = strcmp(alg, "EdDSA") == 0;
  EVP_DigestSignInit_ex(m, &pc, ed ? NULL : "SHA256", NULL, NULL, k->pk, NULL);
  if (strcmp(alg, "PS256") == 0) {
    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST);
  }
  size_t cap = 0;
  EVP_DigestSign(m, NULL, &cap, data, n);
  unsigned char *sig = malloc(cap);
  EVP_DigestSign(m, sig, &cap, data, n);
  EVP_MD_CTX_free(m);
  if (strcmp(alg, "ES256") == 0) { /* DER → R || S */
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)cap);
    unsigned char *rs = calloc(1, 64);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
    ECDSA_SIG_free(es);
    free(sig);
    *len = 64;
    return rs;
  }
  *len = cap;
  return sig;
}

char *tk_sign_raw(const char *alg, const tk_key *k, const unsigned char *secret, size_t secret_len,
                  const char *header_json, const char *claims_json) {
  char *h = tk_b64url((const unsigned char *)header_json, strlen(header_json));
  char *c = tk_b64url((const unsigned char *)claims_json, strlen(claims_json));
  size_t n = strlen(h) + 1 + strlen(c);
  char *input = malloc(n + 1);
  snprintf(input, n + 1, "%s.%s", h, c);
  size_t sl = 0;
  unsigned char *sig = sign_bytes(alg, k, secret, secret_len, (const unsigned char *)input, n, &sl);
  char *s = tk_b64url(sig, sl);
  char *tok = malloc(n + 2 + strlen(s));
  sprintf(tok, "%s.%s", input, s);
  free(h);
  free(c);
  free(input);
  free(sig);
  free(s);
  return tok;
}

char *tk_sign(const char *alg, const tk_key *k, const unsigned char *secret, size_t secret_len, json_t *header,
              json_t *claims) {
  json_t *hdr = header ? json_deep_copy(header) : json_object();
  if (!json_object_get(hdr, "alg")) json_object_set_new(hdr, "alg", json_string(alg));
  if (k && k->kid[0] && !json_object_get(hdr, "kid")) json_object_set_new(hdr, "kid", json_string(k->kid));
  char *ht = json_dumps(hdr, JSON_COMPACT), *ct = json_dumps(claims, JSON_COMPACT);
  char *tok = tk_sign_raw(alg, k, secret, secret_len, ht, ct);
  free(ht);
  free(ct);
  json_decref(hdr);
  return tok;
}
