/* fuzz_auth_jwt.c — libFuzzer target: JWT validation (auth/jwt.h) and credential presentation
 * (auth/policy.h) on arbitrary bytes, with HS256 allowed (a fixed secret) and an Ed25519 JWK
 * Set, so inputs reach the signature and claim checks. Byte 0 selects: bit 0 = present through
 * the policy (shared token first, then the JWT path) instead of the validator alone; the rest
 * is the credential. Checks: no crash, no leak, a refusal leaves the context unchanged, and
 * nothing validates without a correct signature (the corpus holds tokens signed with the
 * secret below, so mutations of valid tokens are explored). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/jwt.h"
#include "auth/policy.h"
#include "util/log.h"

static const unsigned char k_secret[] = "fuzz-hs256-secret-fuzz-hs256-secret-0123";
static auth_jwt *g_jwt;
static auth_policy *g_pol;

static void init(void) {
  log_set_level(LOG_OFF);
  char path[] = "/tmp/fuzz-jwks-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) abort();
  /* the RFC 8037 A.2 public key */
  static const char jwks[] = "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\","
                             "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}";
  if (write(fd, jwks, sizeof jwks - 1) != (ssize_t)(sizeof jwks - 1)) abort();
  close(fd);
  auth_jwt_opts o = {.issuer = "https://issuer.example", .audience = "fuzz://aud", .algorithms = AUTH_JWT_ALG_ALL,
                     .leeway_s = 30, .jwks_file = path, .hs256_secret = k_secret,
                     .hs256_secret_len = sizeof k_secret - 1, .cache_entries = 8};
  char err[256];
  if (auth_jwt_new(&o, &g_jwt, err, sizeof err) != 0) abort();
  unlink(path);
  g_pol = auth_policy_new();
  if (!g_pol || auth_policy_set_token(g_pol, "shared-token", NULL) != 0) abort();
  auth_policy_set_jwt(g_pol, g_jwt, false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_jwt) init();
  if (size < 1) return 0;
  bool via_policy = data[0] & 1;
  char *s = malloc(size);
  if (!s) return 0;
  memcpy(s, data + 1, size - 1);
  s[size - 1] = 0;
  if (via_policy) {
    auth_ctx a, before;
    auth_policy_peer_ctx(g_pol, "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &a);
    before = a;
    auth_reason why;
    const char *detail;
    if (auth_policy_present(g_pol, s, &a, &why, &detail) != AUTH_PRESENT_OK && memcmp(&a, &before, sizeof a) != 0)
      abort(); /* a refused or ignored credential changes nothing */
  } else {
    auth_jwt_claims cl;
    auth_jwt_status st = auth_jwt_verify(g_jwt, s, size - 1, 1800000000.0, &cl);
    if (st == AUTH_JWT_OK && (cl.expires_at <= 0 || strcmp(cl.issuer, "https://issuer.example") != 0)) abort();
  }
  free(s);
  return 0;
}
