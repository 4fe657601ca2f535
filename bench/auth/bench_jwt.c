/* bench_jwt.c — what one JWT validation costs (auth/jwt.h): per algorithm, a fresh token each
 * time (signature checked: the cache misses) and the same token again (a cache hit), on one
 * core, release build, in CPU time of the calling thread (the machine is shared). Keys are generated here (tests/auth/jwt_testkit.c). Prints one JSON
 * line per case: {"alg","case","tokens","us_per_token","per_s"}. Target (issue 13): under
 * 50 µs for RS256 / ES256 / EdDSA with the signature checked.
 *
 * Usage: bench_jwt [TOKENS] (default 2000 per algorithm). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "../../tests/auth/jwt_testkit.h"
#include "auth/jwt.h"

#define ISS "https://issuer.example"
#define AUD "http://127.0.0.1:8080/mcp"

static const unsigned char k_secret[] = "bench-hs256-secret-bench-hs256-secret-0123456789";

/* CPU time of this thread: on a shared, loaded machine wall time measures the neighbours. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *alg, const char *what, int n, double secs) {
  printf("{\"alg\":\"%s\",\"case\":\"%s\",\"tokens\":%d,\"us_per_token\":%.2f,\"per_s\":%.0f}\n", alg, what, n,
         secs / n * 1e6, n / secs);
  fflush(stdout);
}

/* The signature primitive alone on a token's signing input (what no validator can go below):
 * OpenSSL EVP for RSA / P-256, libsodium for Ed25519 (what auth/jwt.c uses), HMAC-SHA256. */
static void primitive(const char *alg, const tk_key *k, const char *tok, int n) {
  const char *dot = strrchr(tok, '.');
  size_t in = (size_t)(dot - tok), sl = 0;
  unsigned char sig[1024];
  sodium_base642bin(sig, sizeof sig, dot + 1, strlen(dot + 1), NULL, &sl, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  int ok = 0;
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    if (strcmp(alg, "EdDSA") == 0) {
      unsigned char raw[32];
      size_t rl = sizeof raw;
      EVP_PKEY_get_raw_public_key(k->pk, raw, &rl);
      ok += crypto_sign_verify_detached(sig, (const unsigned char *)tok, in, raw) == 0;
    } else if (strcmp(alg, "HS256") == 0) {
      unsigned char mac[32];
      crypto_auth_hmacsha256_state st;
      crypto_auth_hmacsha256_init(&st, k_secret, sizeof k_secret - 1);
      crypto_auth_hmacsha256_update(&st, (const unsigned char *)tok, in);
      crypto_auth_hmacsha256_final(&st, mac);
      ok += memcmp(mac, sig, 32) == 0;
    } else if (strcmp(alg, "RS256") == 0) {
      EVP_MD_CTX *m = EVP_MD_CTX_new();
      EVP_DigestVerifyInit_ex(m, NULL, "SHA256", NULL, NULL, k->pk, NULL);
      ok += EVP_DigestVerify(m, sig, sl, (const unsigned char *)tok, in) == 1;
      EVP_MD_CTX_free(m);
    } else {
      return; /* PS256 and ES256: the same primitive as RS256 / not comparable without DER */
    }
  }
  report(alg, "primitive", n, now_s() - t0);
  if (ok != n) fprintf(stderr, "bench_jwt: primitive %s failed\n", alg);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2000;
  if (n < 1) n = 1;
  char dir[] = "/tmp/peermcp-bench-jwt-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char jwks[128];
  snprintf(jwks, sizeof jwks, "%s/jwks.json", dir);
  tk_key rsa, ec, ed;
  if (tk_key_gen(&rsa, TK_RSA, "rsa") || tk_key_gen(&ec, TK_EC, "ec") || tk_key_gen(&ed, TK_ED25519, "ed")) return 1;
  const tk_key *keys[] = {&rsa, &ec, &ed};
  if (tk_write_jwks(jwks, keys, 3) != 0) return 1;
  auth_jwt_opts o = {.issuer = ISS, .audience = AUD, .algorithms = AUTH_JWT_ALG_ALL, .leeway_s = 30, .jwks_file = jwks,
                     .hs256_secret = k_secret, .hs256_secret_len = sizeof k_secret - 1,
                     .cache_entries = 256};
  auth_jwt *v = NULL;
  char err[256];
  if (auth_jwt_new(&o, &v, err, sizeof err) != 0) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  struct {
    const char *alg;
    const tk_key *k;
  } cases[] = {{"RS256", &rsa}, {"PS256", &rsa}, {"ES256", &ec}, {"EdDSA", &ed}, {"HS256", NULL}};
  double t = (double)time(NULL);
  int rc = 0;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int w = n / 10 + 1, all = n + w; /* w more tokens to warm up with */
    char **toks = calloc((size_t)all, sizeof *toks);
    for (int i = 0; i < all; i++) {
      json_t *cl = json_pack("{s:s, s:s, s:s, s:f, s:f, s:s, s:i}", "iss", ISS, "aud", AUD, "sub", "bench", "exp",
                             t + 3600, "iat", t, "scope", "tool.call cache.read", "jti", i);
      toks[i] = tk_sign(cases[c].alg, cases[c].k, k_secret, sizeof k_secret - 1, NULL, cl);
      json_decref(cl);
    }
    /* warm up (first touches of the key, allocator, caches), then every token new: signature,
     * header and claims checked */
    for (int i = n; i < all; i++) (void)auth_jwt_verify(v, toks[i], strlen(toks[i]), t, NULL);
    double t0 = now_s();
    for (int i = 0; i < n; i++)
      if (auth_jwt_verify(v, toks[i], strlen(toks[i]), t, NULL) != AUTH_JWT_OK) rc = 1;
    report(cases[c].alg, "verify", n, now_s() - t0);
    primitive(cases[c].alg, cases[c].k, toks[0], n);
    /* the same token again and again: the cache */
    t0 = now_s();
    for (int i = 0; i < n; i++)
      if (auth_jwt_verify(v, toks[n - 1], strlen(toks[n - 1]), t, NULL) != AUTH_JWT_OK) rc = 1;
    report(cases[c].alg, "cached", n, now_s() - t0);
    for (int i = 0; i < all; i++) free(toks[i]);
    free(toks);
  }
  if (rc) fprintf(stderr, "bench_jwt: a token did not validate\n");
  auth_jwt_free(v);
  tk_key_free(&rsa);
  tk_key_free(&ec);
  tk_key_free(&ed);
  unlink(jwks);
  rmdir(dir);
  return rc;
}
