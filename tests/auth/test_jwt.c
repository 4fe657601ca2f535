/* test_jwt.c — JWT validation (auth/jwt.h): the RFC 7515 and RFC 8037 example vectors, every
 * algorithm with keys generated here, and every failure mode: expired, not yet valid, wrong
 * issuer, wrong audience, bad signature, alg none, HS256 signed with the RSA public key as the
 * secret, unknown kid, key type not matching the algorithm, rotated JWK Set, crit / typ, size
 * and depth ceilings, the cache. Plus the policy's handling of a presented JWT (binding rule). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "auth/jwt.h"
#include "auth/policy.h"
#include "jwt_testkit.h"

#define ISS "https://issuer.example"
#define AUD "http://127.0.0.1:8080/mcp"
#define PEER_A "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define PEER_B "12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
#define NOW 1800000000.0

static const unsigned char k_secret[] = "0123456789abcdef0123456789abcdef-hs256-test-secret";

typedef struct fx {
  char dir[64], jwks[128];
  tk_key rsa, ec, ed, rsa2;
  auth_jwt *v;
} fx;

static fx F;

static int group_setup(void **st) {
  (void)st;
  snprintf(F.dir, sizeof F.dir, "/tmp/peermcp-jwt-XXXXXX");
  if (!mkdtemp(F.dir)) return -1;
  snprintf(F.jwks, sizeof F.jwks, "%s/jwks.json", F.dir);
  if (tk_key_gen(&F.rsa, TK_RSA, "rsa-1") || tk_key_gen(&F.ec, TK_EC, "ec-1") || tk_key_gen(&F.ed, TK_ED25519, "ed-1") ||
      tk_key_gen(&F.rsa2, TK_RSA, "rsa-2"))
    return -1;
  return 0;
}

static int group_teardown(void **st) {
  (void)st;
  tk_key_free(&F.rsa);
  tk_key_free(&F.ec);
  tk_key_free(&F.ed);
  tk_key_free(&F.rsa2);
  unlink(F.jwks);
  rmdir(F.dir);
  return 0;
}

/* A validator over rsa, ec, ed with the given algorithms (HS256 with k_secret when listed). */
static auth_jwt *make(unsigned algs) {
  const tk_key *keys[] = {&F.rsa, &F.ec, &F.ed};
  assert_int_equal(tk_write_jwks(F.jwks, keys, 3), 0);
  auth_jwt_opts o = {.issuer = ISS, .audience = AUD, .algorithms = algs, .leeway_s = 30, .jwks_file = F.jwks};
  if (algs & AUTH_JWT_HS256) {
    o.hs256_secret = k_secret;
    o.hs256_secret_len = sizeof k_secret - 1;
  }
  auth_jwt *v = NULL;
  char err[256] = "";
  int rc = auth_jwt_new(&o, &v, err, sizeof err);
  if (rc != 0) fail_msg("auth_jwt_new: %d %s", rc, err);
  return v;
}

static json_t *claims_at(double now) {
  return json_pack("{s:s, s:s, s:s, s:f, s:f, s:s}", "iss", ISS, "aud", AUD, "sub", "alice", "exp", now + 600, "iat",
                   now - 10, "scope", "tool.call cache.read unknown.scope");
}
static json_t *claims(void) { return claims_at(NOW); }

static auth_jwt_status check(auth_jwt *v, const char *tok, double now, auth_jwt_claims *out) {
  return auth_jwt_verify(v, tok, strlen(tok), now, out);
}

static void expect(auth_jwt *v, const char *tok, auth_jwt_status want) {
  auth_jwt_status got = check(v, tok, NOW, NULL);
  if (got != want) fail_msg("want %s, got %s", auth_jwt_status_name(want), auth_jwt_status_name(got));
}

/* ---------- RFC vectors ---------- */

/* RFC 7515 A.1–A.3 and RFC 8037 A.4 tokens carry no "aud" (or no JSON claims): a valid signature
 * shows as the claim failure that comes after it (wrong_audience / malformed), a broken one as
 * bad_signature. */
#define RFC7515_PAYLOAD "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
static const char k_a1[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." RFC7515_PAYLOAD
                           ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char k_a1_key[] = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
static const char k_a2[] =
    "eyJhbGciOiJSUzI1NiJ9." RFC7515_PAYLOAD
    ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dn"
    "ZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-"
    "eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
static const char k_a2_n[] =
    "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
    "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV"
    "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
static const char k_a3[] = "eyJhbGciOiJFUzI1NiJ9." RFC7515_PAYLOAD
                           ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
static const char k_rfc8037_a4[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
                                   "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

static auth_jwt *vector_validator(const char *jwk_json, unsigned algs, const unsigned char *secret, size_t sl) {
  FILE *f = fopen(F.jwks, "w");
  assert_non_null(f);
  fprintf(f, "{\"keys\":[%s]}", jwk_json ? jwk_json : "");
  fclose(f);
  auth_jwt_opts o = {.issuer = "joe", .audience = AUD, .algorithms = algs, .jwks_file = jwk_json ? F.jwks : NULL,
                     .hs256_secret = secret, .hs256_secret_len = sl};
  auth_jwt *v = NULL;
  char err[256] = "";
  if (auth_jwt_new(&o, &v, err, sizeof err) != 0) fail_msg("%s", err);
  return v;
}

/* A copy of tok with one character of its signature changed. */
static char *tamper_sig(const char *tok) {
  char *t = strdup(tok);
  char *s = strrchr(t, '.') + 3;
  *s = *s == 'A' ? 'B' : 'A';
  return t;
}

static void test_rfc7515_a1_hs256(void **st) {
  (void)st;
  unsigned char key[64];
  size_t kl = 0;
  assert_int_equal(sodium_base642bin(key, sizeof key, k_a1_key, strlen(k_a1_key), NULL, &kl, NULL,
                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                   0);
  assert_int_equal(kl, 64);
  auth_jwt *v = vector_validator(NULL, AUTH_JWT_HS256, key, kl);
  expect(v, k_a1, AUTH_JWT_E_AUDIENCE); /* signature good, then no "aud" */
  char *bad = tamper_sig(k_a1);
  expect(v, bad, AUTH_JWT_E_SIGNATURE);
  free(bad);
  auth_jwt_free(v);
}

static void test_rfc7515_a2_rs256(void **st) {
  (void)st;
  char jwk[1024];
  snprintf(jwk, sizeof jwk, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}", k_a2_n);
  auth_jwt *v = vector_validator(jwk, AUTH_JWT_RS256, NULL, 0);
  expect(v, k_a2, AUTH_JWT_E_AUDIENCE);
  char *bad = tamper_sig(k_a2);
  expect(v, bad, AUTH_JWT_E_SIGNATURE);
  free(bad);
  auth_jwt_free(v);
}

static void test_rfc7515_a3_es256(void **st) {
  (void)st;
  auth_jwt *v = vector_validator("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                                 "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}",
                                 AUTH_JWT_ES256, NULL, 0);
  expect(v, k_a3, AUTH_JWT_E_AUDIENCE);
  char *bad = tamper_sig(k_a3);
  expect(v, bad, AUTH_JWT_E_SIGNATURE);
  free(bad);
  auth_jwt_free(v);
}

static void test_rfc8037_a4_eddsa(void **st) {
  (void)st;
  auth_jwt *v = vector_validator("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
                                 AUTH_JWT_EDDSA, NULL, 0);
  /* the payload is the text "Example of Ed25519 signing": the signature verifies, the claims
   * are not JSON */
  expect(v, k_rfc8037_a4, AUTH_JWT_E_MALFORMED);
  char *bad = tamper_sig(k_rfc8037_a4);
  expect(v, bad, AUTH_JWT_E_SIGNATURE);
  free(bad);
  auth_jwt_free(v);
}

/* ---------- each algorithm, valid ---------- */

static void valid_with(const char *alg, const tk_key *k) {
  auth_jwt *v = make(AUTH_JWT_ALG_ALL);
  json_t *c = claims();
  char *tok = tk_sign(alg, k, k_secret, sizeof k_secret - 1, NULL, c);
  auth_jwt_claims out;
  auth_jwt_status st = check(v, tok, NOW, &out);
  if (st != AUTH_JWT_OK) fail_msg("%s: %s", alg, auth_jwt_status_name(st));
  assert_string_equal(out.subject, "alice");
  assert_string_equal(out.issuer, ISS);
  assert_int_equal(out.expires_at, (int64_t)(NOW + 600 + 30));
  auth_scopes want = AUTH_SCOPES(AUTH_TOOL_CALL | AUTH_CACHE_READ); /* unknown.scope dropped */
  assert_true(auth_scopes_equal(&out.scopes, &want));
  assert_string_equal(out.peer_id, "");
  free(tok);
  json_decref(c);
  auth_jwt_free(v);
}

static void test_valid_rs256(void **st) { (void)st; valid_with("RS256", &F.rsa); }
static void test_valid_ps256(void **st) { (void)st; valid_with("PS256", &F.rsa); }
static void test_valid_es256(void **st) { (void)st; valid_with("ES256", &F.ec); }
static void test_valid_eddsa(void **st) { (void)st; valid_with("EdDSA", &F.ed); }
static void test_valid_hs256(void **st) { (void)st; valid_with("HS256", NULL); }

static void test_ed25519_name_of_rfc9864_is_eddsa(void **st) {
  (void)st;
  auth_jwt *v = make(AUTH_JWT_EDDSA);
  json_t *c = claims(), *h = json_pack("{s:s}", "alg", "Ed25519");
  char *tok = tk_sign("EdDSA", &F.ed, NULL, 0, h, c);
  expect(v, tok, AUTH_JWT_OK);
  free(tok);
  json_decref(h);
  json_decref(c);
  auth_jwt_free(v);
}

static void test_scp_array_and_client_id(void **st) {
  (void)st;
  auth_jwt *v = make(AUTH_JWT_ALG_ALL);
  json_t *c = json_pack("{s:s, s:[s], s:f, s:[s, s, s, i], s:s}", "iss", ISS, "aud", AUD, "exp", NOW + 60, "scp",
                        "worker", "task.submit", "cache.write admin" /* one element, two names: ignored */, 7,
                        "client_id", "svc-1");
  char *tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  auth_jwt_claims out;
  /* a non-string element is a malformed claim */
  assert_int_equal(check(v, tok, NOW, &out), AUTH_JWT_E_CLAIMS);
  free(tok);
  json_array_remove(json_object_get(c, "scp"), 3);
  tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  assert_int_equal(check(v, tok, NOW, &out), AUTH_JWT_OK);
  auth_scopes want = AUTH_SCOPES(AUTH_WORKER | AUTH_TASK_SUBMIT);
  assert_true(auth_scopes_equal(&out.scopes, &want));
  assert_string_equal(out.subject, "svc-1");
  free(tok);
  json_decref(c);
  auth_jwt_free(v);
}

/* ---------- time ---------- */

static void test_expired(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  json_t *c = claims();
  json_object_set_new(c, "exp", json_real(NOW - 31)); /* past the 30 s leeway */
  char *tok = tk_sign("RS256", &F.rsa, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_EXPIRED);
  free(tok);
  json_object_set_new(c, "exp", json_real(NOW - 20)); /* inside the leeway */
  tok = tk_sign("RS256", &F.rsa, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_OK);
  free(tok);
  json_object_del(c, "exp"); /* exp is required */
  tok = tk_sign("RS256", &F.rsa, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_CLAIMS);
  free(tok);
  json_object_set_new(c, "exp", json_string("tomorrow"));
  tok = tk_sign("RS256", &F.rsa, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_CLAIMS);
  free(tok);
  json_decref(c);
  auth_jwt_free(v);
}

static void test_not_yet_valid(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  json_t *c = claims();
  json_object_set_new(c, "nbf", json_real(NOW + 31));
  char *tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_NOT_YET_VALID);
  /* the same token becomes valid once its time comes (and is then cached) */
  assert_int_equal(check(v, tok, NOW + 2, NULL), AUTH_JWT_OK);
  assert_int_equal(check(v, tok, NOW, NULL), AUTH_JWT_E_NOT_YET_VALID); /* the cache re-checks */
  free(tok);
  json_object_del(c, "nbf");
  json_object_set_new(c, "iat", json_real(NOW + 3600)); /* issued in the future */
  tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_NOT_YET_VALID);
  free(tok);
  json_decref(c);
  auth_jwt_free(v);
}

static void test_cache_hits_until_exp(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  json_t *c = claims();
  char *tok = tk_sign("EdDSA", &F.ed, NULL, 0, NULL, c);
  auth_jwt_stats s0, s1;
  auth_jwt_get_stats(v, &s0);
  assert_int_equal(check(v, tok, NOW, NULL), AUTH_JWT_OK);
  assert_int_equal(check(v, tok, NOW + 1, NULL), AUTH_JWT_OK);
  auth_jwt_get_stats(v, &s1);
  assert_int_equal(s1.verified - s0.verified, 1);
  assert_int_equal(s1.cache_hits - s0.cache_hits, 1);
  /* a cached token still expires */
  assert_int_equal(check(v, tok, NOW + 600 + 30, NULL), AUTH_JWT_E_EXPIRED);
  free(tok);
  json_decref(c);
  auth_jwt_free(v);
}

/* ---------- issuer, audience ---------- */

static void test_wrong_issuer(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  json_t *c = claims();
  json_object_set_new(c, "iss", json_string("https://issuer.example.evil"));
  char *tok = tk_sign("RS256", &F.rsa, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_ISSUER);
  free(tok);
  json_object_del(c, "iss");
  tok = tk_sign("RS256", &F.rsa, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_ISSUER);
  free(tok);
  json_decref(c);
  auth_jwt_free(v);
}

static void test_wrong_audience(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  json_t *c = claims();
  json_object_set_new(c, "aud", json_string("http://127.0.0.1:8080/other"));
  char *tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_AUDIENCE);
  free(tok);
  json_object_set_new(c, "aud", json_pack("[s, s]", "https://a.example", "https://b.example"));
  tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_AUDIENCE);
  free(tok);
  json_object_set_new(c, "aud", json_pack("[s, s]", "https://a.example", AUD)); /* contains it */
  tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_OK);
  free(tok);
  json_object_del(c, "aud");
  tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_AUDIENCE);
  free(tok);
  json_decref(c);
  auth_jwt_free(v);
}

/* ---------- signatures and keys ---------- */

static void test_bad_signature(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  json_t *c = claims();
  char *tok = tk_sign("RS256", &F.rsa, NULL, 0, NULL, c);
  char *bad = tamper_sig(tok);
  expect(v, bad, AUTH_JWT_E_SIGNATURE);
  free(bad);
  /* the claims changed after signing */
  json_object_set_new(c, "scope", json_string("admin"));
  char *other = tk_sign("RS256", &F.rsa, NULL, 0, NULL, c);
  char *mix = malloc(strlen(tok) + strlen(other));
  const char *d1 = strchr(tok, '.'), *o1 = strchr(other, '.'), *o2 = strrchr(other, '.'), *d2 = strrchr(tok, '.');
  sprintf(mix, "%.*s%.*s%s", (int)(d1 - tok), tok, (int)(o2 - o1), o1, d2);
  expect(v, mix, AUTH_JWT_E_SIGNATURE);
  /* signed by another RSA key that claims the same kid */
  tk_key imp = F.rsa2;
  snprintf(imp.kid, sizeof imp.kid, "%s", F.rsa.kid);
  char *forged = tk_sign("RS256", &imp, NULL, 0, NULL, c);
  expect(v, forged, AUTH_JWT_E_SIGNATURE);
  free(forged);
  free(mix);
  free(other);
  free(tok);
  json_decref(c);
  auth_jwt_free(v);
}

static void test_alg_none_refused(void **st) {
  (void)st;
  auth_jwt *v = make(AUTH_JWT_ALG_ALL);
  char *h = tk_b64url((const unsigned char *)"{\"alg\":\"none\"}", 14);
  json_t *c = claims();
  char *ct = json_dumps(c, JSON_COMPACT);
  char *cb = tk_b64url((const unsigned char *)ct, strlen(ct));
  char tok[4096];
  snprintf(tok, sizeof tok, "%s.%s.", h, cb); /* the unsecured JWS form: empty signature */
  expect(v, tok, AUTH_JWT_E_MALFORMED);
  snprintf(tok, sizeof tok, "%s.%s.AAAA", h, cb);
  expect(v, tok, AUTH_JWT_E_ALG);
  char *t2 = tk_sign_raw("HS256", NULL, k_secret, sizeof k_secret - 1, "{\"alg\":\"None\"}", ct);
  expect(v, t2, AUTH_JWT_E_ALG);
  free(t2);
  unsigned bit;
  assert_int_equal(auth_jwt_alg_parse("none", &bit), -EINVAL);
  free(h);
  free(cb);
  free(ct);
  json_decref(c);
  auth_jwt_free(v);
}

/* The classic key-confusion attack: HS256 "signed" with the server's RSA public key as the HMAC
 * secret. HS256 keys never come from the JWK Set, so it fails whether HS256 is allowed or not. */
static void test_hs256_with_rsa_public_key_as_secret(void **st) {
  (void)st;
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(b, F.rsa.pk);
  char *pem = NULL;
  long pl = BIO_get_mem_data(b, &pem);
  json_t *c = claims();
  char *tok = tk_sign("HS256", &F.rsa, (const unsigned char *)pem, (size_t)pl, NULL, c); /* kid of the RSA key */
  auth_jwt *v = make(AUTH_JWT_RS256);
  expect(v, tok, AUTH_JWT_E_ALG); /* HS256 not allowed */
  auth_jwt_free(v);
  v = make(AUTH_JWT_RS256 | AUTH_JWT_HS256);
  expect(v, tok, AUTH_JWT_E_SIGNATURE); /* allowed, but only with its own secret */
  free(tok);
  /* the JWK form of the key as the secret does not work either */
  json_t *jwk = tk_key_jwk(&F.rsa, NULL);
  char *jt = json_dumps(jwk, JSON_COMPACT);
  tok = tk_sign("HS256", &F.rsa, (const unsigned char *)jt, strlen(jt), NULL, c);
  expect(v, tok, AUTH_JWT_E_SIGNATURE);
  free(tok);
  free(jt);
  json_decref(jwk);
  auth_jwt_free(v);
  json_decref(c);
  BIO_free(b);
}

static void test_alg_outside_the_allow_list(void **st) {
  (void)st;
  auth_jwt *v = make(AUTH_JWT_RS256);
  json_t *c = claims();
  char *tok = tk_sign("PS256", &F.rsa, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_E_ALG);
  free(tok);
  tok = tk_sign_raw("HS256", NULL, k_secret, sizeof k_secret - 1, "{\"alg\":\"HS512\"}", "{}");
  expect(v, tok, AUTH_JWT_E_ALG);
  free(tok);
  json_decref(c);
  auth_jwt_free(v);
}

static void test_unknown_kid(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  json_t *c = claims(), *h = json_pack("{s:s}", "kid", "nobody");
  char *tok = tk_sign("RS256", &F.rsa, NULL, 0, h, c);
  expect(v, tok, AUTH_JWT_E_UNKNOWN_KEY);
  free(tok);
  /* the kid of a key of another type: an EC key cannot check RS256 */
  json_object_set_new(h, "kid", json_string("ec-1"));
  tok = tk_sign("RS256", &F.rsa, NULL, 0, h, c);
  expect(v, tok, AUTH_JWT_E_UNKNOWN_KEY);
  free(tok);
  /* no kid: the keys usable for the algorithm are tried */
  json_object_set_new(h, "kid", json_string(""));
  json_object_del(h, "kid");
  tk_key anon = F.ed;
  anon.kid[0] = 0;
  tok = tk_sign("EdDSA", &anon, NULL, 0, NULL, c);
  expect(v, tok, AUTH_JWT_OK);
  free(tok);
  /* an unusual kid type */
  tok = tk_sign_raw("RS256", &F.rsa, NULL, 0, "{\"alg\":\"RS256\",\"kid\":7}", "{}");
  expect(v, tok, AUTH_JWT_E_HEADER);
  free(tok);
  json_decref(h);
  json_decref(c);
  auth_jwt_free(v);
}

static void test_rotated_jwks(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  char err[256];
  assert_int_equal(auth_jwt_reload(v, false, err, sizeof err), 0); /* unchanged */
  json_t *c = claims();
  char *old = tk_sign("RS256", &F.rsa, NULL, 0, NULL, c);
  char *next = tk_sign("RS256", &F.rsa2, NULL, 0, NULL, c);
  expect(v, old, AUTH_JWT_OK); /* now in the cache too */
  expect(v, next, AUTH_JWT_E_UNKNOWN_KEY);
  /* the operator replaces rsa-1 by rsa-2 */
  const tk_key *keys[] = {&F.rsa2, &F.ec};
  assert_int_equal(tk_write_jwks(F.jwks, keys, 2), 0);
  assert_int_equal(auth_jwt_reload(v, false, err, sizeof err), 1);
  assert_int_equal(auth_jwt_key_count(v), 2);
  expect(v, old, AUTH_JWT_E_UNKNOWN_KEY); /* the cache was emptied */
  expect(v, next, AUTH_JWT_OK);
  /* a broken file leaves the keys in force */
  FILE *f = fopen(F.jwks, "w");
  fputs("{\"keys\": [", f);
  fclose(f);
  assert_true(auth_jwt_reload(v, false, err, sizeof err) < 0);
  expect(v, next, AUTH_JWT_OK);
  /* so does a file without a usable key; force reloads even an unchanged file */
  f = fopen(F.jwks, "w");
  fputs("{\"keys\": [{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", f);
  fclose(f);
  assert_int_equal(auth_jwt_reload(v, true, err, sizeof err), -EBADMSG);
  assert_int_equal(auth_jwt_key_count(v), 2);
  /* a missing file too */
  unlink(F.jwks);
  assert_true(auth_jwt_reload(v, false, err, sizeof err) < 0);
  expect(v, next, AUTH_JWT_OK);
  free(old);
  free(next);
  json_decref(c);
  auth_jwt_free(v);
}

/* ---------- header, shape, ceilings ---------- */

static void test_crit_and_typ(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  json_t *c = claims(), *h = json_pack("{s:[s], s:b}", "crit", "exp", "exp", 1);
  char *tok = tk_sign("ES256", &F.ec, NULL, 0, h, c);
  expect(v, tok, AUTH_JWT_E_HEADER);
  free(tok);
  json_decref(h);
  h = json_pack("{s:s}", "typ", "dpop+jwt");
  tok = tk_sign("ES256", &F.ec, NULL, 0, h, c);
  expect(v, tok, AUTH_JWT_E_HEADER);
  free(tok);
  json_object_set_new(h, "typ", json_string("at+jwt"));
  tok = tk_sign("ES256", &F.ec, NULL, 0, h, c);
  expect(v, tok, AUTH_JWT_OK);
  free(tok);
  /* an embedded key is never trusted: signed by a key we do not know, carrying it along */
  tk_key stranger;
  assert_int_equal(tk_key_gen(&stranger, TK_EC, ""), 0);
  json_decref(h);
  h = json_pack("{s:o}", "jwk", tk_key_jwk(&stranger, NULL));
  tok = tk_sign("ES256", &stranger, NULL, 0, h, c);
  expect(v, tok, AUTH_JWT_E_SIGNATURE);
  free(tok);
  tk_key_free(&stranger);
  json_decref(h);
  json_decref(c);
  auth_jwt_free(v);
}

static void test_malformed_shapes(void **st) {
  (void)st;
  auth_jwt *v = make(AUTH_JWT_ALG_ALL);
  const char *bad[] = {"", "abc", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.", "eyJ=.eyJ.sig", "ey J.a.b", "a.b.c\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect(v, bad[i], AUTH_JWT_E_MALFORMED);
  assert_false(auth_jwt_looks_like("shared-secret-token", 19));
  assert_true(auth_jwt_looks_like("a.b.c", 5));
  /* header or claims that are not JSON objects */
  char *t = tk_sign_raw("HS256", NULL, k_secret, sizeof k_secret - 1, "[\"alg\",\"HS256\"]", "{}");
  expect(v, t, AUTH_JWT_E_MALFORMED);
  free(t);
  t = tk_sign_raw("HS256", NULL, k_secret, sizeof k_secret - 1, "{\"alg\":\"HS256\"}", "[1]");
  expect(v, t, AUTH_JWT_E_MALFORMED);
  free(t);
  /* duplicate keys are refused (no "last one wins" ambiguity) */
  t = tk_sign_raw("HS256", NULL, k_secret, sizeof k_secret - 1, "{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}");
  expect(v, t, AUTH_JWT_E_MALFORMED);
  free(t);
  auth_jwt_free(v);
}

static void test_size_and_depth_ceilings(void **st) {
  (void)st;
  auth_jwt *v = make(AUTH_JWT_ALG_ALL);
  size_t n = AUTH_JWT_MAX_BYTES + 1;
  char *big = malloc(n + 1);
  memset(big, 'A', n);
  big[10] = '.';
  big[20] = '.';
  big[n] = 0;
  expect(v, big, AUTH_JWT_E_TOO_LARGE);
  free(big);
  /* claims nested past AUTH_JWT_MAX_DEPTH, checked before parsing (the signature is good) */
  char deep[256] = "{\"a\":";
  for (int i = 0; i < 20; i++) strcat(deep, "[");
  for (int i = 0; i < 20; i++) strcat(deep, "]");
  strcat(deep, "}");
  char *t = tk_sign_raw("HS256", NULL, k_secret, sizeof k_secret - 1, "{\"alg\":\"HS256\"}", deep);
  expect(v, t, AUTH_JWT_E_MALFORMED);
  free(t);
  /* brackets inside strings do not count */
  json_t *c = claims();
  json_object_set_new(c, "note", json_string("[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{"));
  t = tk_sign("HS256", NULL, k_secret, sizeof k_secret - 1, NULL, c);
  expect(v, t, AUTH_JWT_OK);
  free(t);
  json_decref(c);
  auth_jwt_free(v);
}

static void test_peer_binding_claims(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  json_t *c = claims();
  json_object_set_new(c, "peer_id", json_string(PEER_A));
  char *tok = tk_sign("EdDSA", &F.ed, NULL, 0, NULL, c);
  auth_jwt_claims out;
  assert_int_equal(check(v, tok, NOW, &out), AUTH_JWT_OK);
  assert_string_equal(out.peer_id, PEER_A);
  free(tok);
  json_object_del(c, "peer_id");
  json_object_set_new(c, "cnf", json_pack("{s:s}", "peer_id", PEER_B));
  tok = tk_sign("EdDSA", &F.ed, NULL, 0, NULL, c);
  assert_int_equal(check(v, tok, NOW, &out), AUTH_JWT_OK);
  assert_string_equal(out.peer_id, PEER_B);
  free(tok);
  json_object_set_new(c, "cnf", json_pack("{s:i}", "peer_id", 5));
  tok = tk_sign("EdDSA", &F.ed, NULL, 0, NULL, c);
  assert_int_equal(check(v, tok, NOW, &out), AUTH_JWT_E_CLAIMS);
  free(tok);
  json_decref(c);
  auth_jwt_free(v);
}

/* ---------- construction ---------- */

static void test_new_refuses_bad_options(void **st) {
  (void)st;
  const tk_key *keys[] = {&F.rsa};
  assert_int_equal(tk_write_jwks(F.jwks, keys, 1), 0);
  auth_jwt *v = NULL;
  char err[256];
  auth_jwt_opts o = {.issuer = ISS, .audience = AUD, .jwks_file = F.jwks};
  o.issuer = NULL;
  assert_int_equal(auth_jwt_new(&o, &v, err, sizeof err), -EINVAL);
  o.issuer = ISS;
  o.audience = "";
  assert_int_equal(auth_jwt_new(&o, &v, err, sizeof err), -EINVAL);
  o.audience = AUD;
  o.algorithms = AUTH_JWT_HS256; /* no secret */
  assert_int_equal(auth_jwt_new(&o, &v, err, sizeof err), -EINVAL);
  o.hs256_secret = (const unsigned char *)"short";
  o.hs256_secret_len = 5;
  assert_int_equal(auth_jwt_new(&o, &v, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "32 bytes"));
  o.algorithms = AUTH_JWT_RS256;
  o.jwks_file = "/nonexistent/jwks.json";
  assert_int_equal(auth_jwt_new(&o, &v, err, sizeof err), -ENOENT);
  o.jwks_file = NULL;
  assert_int_equal(auth_jwt_new(&o, &v, err, sizeof err), -EINVAL);
  /* a set whose only key is unusable (oct, a short RSA key, a P-384 key, a bad point) */
  FILE *f = fopen(F.jwks, "w");
  fputs("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
        "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"},"
        "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"},"
        "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\",\"use\":\"enc\"}]}",
        f);
  fclose(f);
  o.jwks_file = F.jwks;
  o.algorithms = 0;
  assert_int_equal(auth_jwt_new(&o, &v, err, sizeof err), -EBADMSG);
  assert_null(v);
  f = fopen(F.jwks, "w");
  fputs("[1,2,3]", f);
  fclose(f);
  assert_int_equal(auth_jwt_new(&o, &v, err, sizeof err), -EBADMSG);
}

/* ---------- the policy: a JWT where a token may appear ---------- */

static void test_policy_presents_jwt(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  auth_policy *p = auth_policy_new();
  auth_policy_set_jwt(p, v, false);
  json_t *c = claims_at((double)time(NULL));
  char *tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  auth_ctx a;
  auth_policy_peer_ctx(p, PEER_A, &a);
  auth_reason why;
  const char *detail;
  assert_int_equal(auth_policy_present(p, tok, &a, &why, &detail), AUTH_PRESENT_OK);
  assert_int_equal(a.kind, AUTH_KIND_JWT);
  assert_string_equal(a.subject, "alice");
  assert_string_equal(a.issuer, ISS);
  assert_string_equal(a.peer_id, PEER_A); /* the Noise-proven PeerId stays */
  assert_true(a.expires_at > 0);
  assert_true(auth_allows_mask(&a, AUTH_TOOL_CALL));
  assert_false(auth_allows_mask(&a, AUTH_WORKER));
  assert_int_equal(auth_ctx_tier(&a), AUTH_TIER_TRUSTED);
  /* once expired, nothing is allowed */
  a.expires_at = 1;
  assert_false(auth_allows_mask(&a, AUTH_TOOL_CALL));
  auth_scopes need = AUTH_SCOPES(AUTH_TOOL_CALL);
  assert_int_equal(auth_check(&a, &need, (double)time(NULL)), AUTH_REASON_EXPIRED);
  free(tok);

  /* a tampered JWT is refused, the context unchanged */
  tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  char *bad = tamper_sig(tok);
  auth_policy_peer_ctx(p, PEER_A, &a);
  auth_ctx before = a;
  assert_int_equal(auth_policy_present(p, bad, &a, &why, &detail), AUTH_PRESENT_REFUSED);
  assert_int_equal(why, AUTH_REASON_INVALID);
  assert_string_equal(detail, "bad_signature");
  assert_memory_equal(&a, &before, sizeof a);
  free(bad);
  free(tok);

  /* an expired one says so */
  json_object_set_new(c, "exp", json_real((double)time(NULL) - 3600));
  tok = tk_sign("ES256", &F.ec, NULL, 0, NULL, c);
  assert_int_equal(auth_policy_present(p, tok, &a, &why, &detail), AUTH_PRESENT_REFUSED);
  assert_int_equal(why, AUTH_REASON_EXPIRED);
  free(tok);
  json_object_set_new(c, "exp", json_real((double)time(NULL) + 600));

  /* no shared token configured: a non-JWT token is ignored (Python clients send theirs) */
  assert_int_equal(auth_policy_present(p, "some-shared-token", &a, &why, &detail), AUTH_PRESENT_IGNORED);
  assert_memory_equal(&a, &before, sizeof a);
  /* with one configured, a wrong one is refused, the right one accepted */
  assert_int_equal(auth_policy_set_token(p, "s3cr3t", NULL), 0);
  assert_int_equal(auth_policy_present(p, "some-shared-token", &a, &why, &detail), AUTH_PRESENT_REFUSED);
  assert_string_equal(detail, "bad_token");
  assert_int_equal(auth_policy_present(p, "s3cr3t", &a, &why, &detail), AUTH_PRESENT_OK);
  assert_int_equal(a.kind, AUTH_KIND_TOKEN);
  json_decref(c);
  auth_policy_free(p);
  auth_jwt_free(v);
}

static void test_policy_peer_binding_rule(void **st) {
  (void)st;
  auth_jwt *v = make(0);
  auth_policy *p = auth_policy_new();
  auth_policy_set_jwt(p, v, false);
  json_t *c = claims_at((double)time(NULL));
  json_object_set_new(c, "cnf", json_pack("{s:s}", "peer_id", PEER_A));
  char *bound = tk_sign("EdDSA", &F.ed, NULL, 0, NULL, c);
  auth_ctx a;
  auth_reason why;
  const char *detail;
  auth_policy_peer_ctx(p, PEER_A, &a);
  assert_int_equal(auth_policy_present(p, bound, &a, &why, &detail), AUTH_PRESENT_OK);
  auth_policy_peer_ctx(p, PEER_B, &a); /* another peer replaying it */
  assert_int_equal(auth_policy_present(p, bound, &a, &why, &detail), AUTH_PRESENT_REFUSED);
  assert_string_equal(detail, "peer_mismatch");
  auth_ctx_init(&a, AUTH_KIND_NONE); /* HTTP: no PeerId proven */
  assert_int_equal(auth_policy_present(p, bound, &a, &why, &detail), AUTH_PRESENT_REFUSED);
  /* require_peer_binding: an unbound token is refused from a peer, still fine over HTTP */
  json_object_del(c, "cnf");
  char *bearer = tk_sign("EdDSA", &F.ed, NULL, 0, NULL, c);
  auth_policy_set_jwt(p, v, true);
  auth_policy_peer_ctx(p, PEER_B, &a);
  assert_int_equal(auth_policy_present(p, bearer, &a, &why, &detail), AUTH_PRESENT_REFUSED);
  assert_string_equal(detail, "unbound_token");
  auth_ctx_init(&a, AUTH_KIND_NONE);
  assert_int_equal(auth_policy_present(p, bearer, &a, &why, &detail), AUTH_PRESENT_OK);
  free(bound);
  free(bearer);
  json_decref(c);
  auth_policy_free(p);
  auth_jwt_free(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc7515_a1_hs256),
      cmocka_unit_test(test_rfc7515_a2_rs256),
      cmocka_unit_test(test_rfc7515_a3_es256),
      cmocka_unit_test(test_rfc8037_a4_eddsa),
      cmocka_unit_test(test_valid_rs256),
      cmocka_unit_test(test_valid_ps256),
      cmocka_unit_test(test_valid_es256),
      cmocka_unit_test(test_valid_eddsa),
      cmocka_unit_test(test_valid_hs256),
      cmocka_unit_test(test_ed25519_name_of_rfc9864_is_eddsa),
      cmocka_unit_test(test_scp_array_and_client_id),
      cmocka_unit_test(test_expired),
      cmocka_unit_test(test_not_yet_valid),
      cmocka_unit_test(test_cache_hits_until_exp),
      cmocka_unit_test(test_wrong_issuer),
      cmocka_unit_test(test_wrong_audience),
      cmocka_unit_test(test_bad_signature),
      cmocka_unit_test(test_alg_none_refused),
      cmocka_unit_test(test_hs256_with_rsa_public_key_as_secret),
      cmocka_unit_test(test_alg_outside_the_allow_list),
      cmocka_unit_test(test_unknown_kid),
      cmocka_unit_test(test_rotated_jwks),
      cmocka_unit_test(test_crit_and_typ),
      cmocka_unit_test(test_malformed_shapes),
      cmocka_unit_test(test_size_and_depth_ceilings),
      cmocka_unit_test(test_peer_binding_claims),
      cmocka_unit_test(test_new_refuses_bad_options),
      cmocka_unit_test(test_policy_presents_jwt),
      cmocka_unit_test(test_policy_peer_binding_rule),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
