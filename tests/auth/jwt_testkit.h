/* jwt_testkit.h — test-only helpers: generate keys with OpenSSL, write them as a JWK Set, sign
 * JWS compact tokens (RS256, PS256, ES256, EdDSA, HS256, or a chosen header and signature) so
 * the validator can be tested against every failure mode. Keys are made at run time; nothing
 * private is ever committed. Used by tests/auth, tests/service and bench/auth. */
#ifndef PEERMCP_TESTS_JWT_TESTKIT_H
#define PEERMCP_TESTS_JWT_TESTKIT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

typedef enum { TK_RSA, TK_EC, TK_ED25519 } tk_kind;

typedef struct tk_key {
  tk_kind kind;
  EVP_PKEY *pk;
  char kid[64];
} tk_key;

/* Generates a key (RSA 2048). 0 or -1. */
int tk_key_gen(tk_key *k, tk_kind kind, const char *kid);
void tk_key_free(tk_key *k);
/* The public JWK of k (new object), with "kid" when set and "alg" when alg != NULL. */
json_t *tk_key_jwk(const tk_key *k, const char *alg);
/* Writes {"keys":[jwk…]} (keys[i] with its kid) to path. 0 or -1. */
int tk_write_jwks(const char *path, const tk_key *const *keys, size_t n);

/* base64url without padding of n bytes (malloc'd). */
char *tk_b64url(const unsigned char *p, size_t n);

/* Signs header.claims (both JSON objects, serialised compactly) with alg ("RS256", "PS256",
 * "ES256", "EdDSA", "HS256"): k for the asymmetric ones, secret for HS256. The header gets
 * "alg" (and "kid" from k unless the header has one or kid is ""). Returns a malloc'd token. */
char *tk_sign(const char *alg, const tk_key *k, const unsigned char *secret, size_t secret_len, json_t *header,
              json_t *claims);
/* header text and claims text taken verbatim (base64url-encoded as given), signature bytes
 * computed by alg over them; for malformed-token tests. */
char *tk_sign_raw(const char *alg, const tk_key *k, const unsigned char *secret, size_t secret_len,
                  const char *header_json, const char *claims_json);

#endif
