/* jwt.h — validation of JWS compact JWTs (RFC 7515, 7517, 7518, 7519, 8037) as OAuth 2.1 access
 * tokens for this resource server (RFC 8707 audience), with OpenSSL's EVP (no JOSE library: the
 * Debian libcjose 0.6.2 has no EdDSA/OKP keys and no claim checks; see docs/auth.md).
 *
 * What a token must be to pass:
 *   - three base64url parts without padding, at most AUTH_JWT_MAX_BYTES in all, header and
 *     claims JSON objects nested at most AUTH_JWT_MAX_DEPTH deep (checked before parsing);
 *   - header "alg" in the allow-list (RS256, PS256, ES256, EdDSA, HS256; "none" is never
 *     accepted, whatever the list says); no "crit"; "typ", when present, "JWT" or "at+jwt";
 *     embedded keys ("jwk", "jku", "x5u", "x5c") are ignored, never trusted;
 *   - signed by a key of the type the algorithm needs: RS256/PS256 an RSA key (≥ 2048 bits),
 *     ES256 an EC P-256 key, EdDSA an OKP Ed25519 key — all from the JWK Set file — and HS256
 *     only the secret given in the options (never a JWK Set entry, so an RSA public key can
 *     never serve as an HMAC secret). "kid" selects the key; without a kid every key usable
 *     for the algorithm is tried (a JWK Set holds at most AUTH_JWT_MAX_KEYS);
 *   - claims: "iss" equal to the issuer, "aud" (string or array) containing the audience, "exp"
 *     required and "nbf" / "iat" when present checked with `leeway_s` either way; scopes from
 *     "scope" (space-separated) or "scp" (array or string), through auth_scopes_parse_granted
 *     (names nobody asks for are dropped, never interned); "sub" (else "client_id") is the
 *     subject; a "peer_id" claim, or "cnf": {"peer_id": …}, binds the token to a libp2p PeerId
 *     (the caller enforces the binding, auth/policy.h).
 *
 * Keys rotate without a restart: auth_jwt_reload re-reads the JWK Set file when its identity
 * (device, inode, size, mtime) changed, or always with force (SIGHUP); a file that cannot be
 * read or parsed leaves the old keys in place. Reloading reads a file: call it off the event
 * loop (the node does it on a worker when a uv_fs_poll sees a change or on SIGHUP).
 * Verification itself never touches the file system.
 *
 * Recently verified tokens are cached, keyed by the BLAKE2b-256 of the whole token, until their
 * "exp" (time claims are re-checked on every hit); a key reload empties the cache.
 *
 * Ownership: auth_jwt_new copies the options (and the secret, wiped at free). Threads:
 * auth_jwt_verify and auth_jwt_reload may be called from any thread, concurrently (a mutex
 * guards the key set pointer and the cache; signatures are checked outside it). */
#ifndef PEERMCP_AUTH_JWT_H
#define PEERMCP_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

#define AUTH_JWT_MAX_BYTES 8192            /* a longer token is refused before decoding */
#define AUTH_JWT_MAX_DEPTH 8               /* JSON nesting of header and claims */
#define AUTH_JWT_MAX_JWKS_BYTES (1u << 20) /* the JWK Set file */
#define AUTH_JWT_MAX_KEYS 64               /* keys kept from a JWK Set */
#define AUTH_JWT_MAX_KID 128
#define AUTH_JWT_MIN_HMAC_SECRET 32        /* RFC 7518 §3.2: at least the hash size */
#define AUTH_JWT_MIN_RSA_BITS 2048         /* RFC 7518 §3.3 */

/* Algorithms, as bits of an allow-list. */
enum {
  AUTH_JWT_RS256 = 1u << 0,
  AUTH_JWT_PS256 = 1u << 1,
  AUTH_JWT_ES256 = 1u << 2,
  AUTH_JWT_EDDSA = 1u << 3,
  AUTH_JWT_HS256 = 1u << 4,
  AUTH_JWT_ALG_ALL = (1u << 5) - 1
};

/* Why a token was refused (a fixed set: logs and tests name them). */
typedef enum {
  AUTH_JWT_OK = 0,
  AUTH_JWT_E_TOO_LARGE,      /* over AUTH_JWT_MAX_BYTES */
  AUTH_JWT_E_MALFORMED,      /* not a JWS compact token, bad base64url or JSON, too deep */
  AUTH_JWT_E_ALG,            /* "none", unknown, or not allowed */
  AUTH_JWT_E_HEADER,         /* "crit", an unexpected "typ", a header field of the wrong type */
  AUTH_JWT_E_UNKNOWN_KEY,    /* no key for the kid / for the algorithm */
  AUTH_JWT_E_SIGNATURE,      /* the signature does not verify */
  AUTH_JWT_E_EXPIRED,        /* exp + leeway ≤ now */
  AUTH_JWT_E_NOT_YET_VALID,  /* nbf (or iat) − leeway > now */
  AUTH_JWT_E_ISSUER,         /* iss missing or not the configured issuer */
  AUTH_JWT_E_AUDIENCE,       /* aud missing or without the configured audience */
  AUTH_JWT_E_CLAIMS,         /* exp missing, a claim of the wrong type or too long */
  AUTH_JWT_E_INTERNAL,       /* out of memory, OpenSSL failure */
  AUTH_JWT_E__COUNT
} auth_jwt_status;

/* "ok", "too_large", "malformed", "alg_not_allowed", "bad_header", "unknown_key",
 * "bad_signature", "expired", "not_yet_valid", "wrong_issuer", "wrong_audience", "bad_claims",
 * "internal". */
const char *auth_jwt_status_name(auth_jwt_status st);

/* "RS256" → AUTH_JWT_RS256 … (exact spelling; "Ed25519", RFC 9864, is EdDSA). 0 and *bit, or
 * -EINVAL ("none" included). */
int auth_jwt_alg_parse(const char *name, unsigned *bit) __attribute__((warn_unused_result));
const char *auth_jwt_alg_name(unsigned bit);

typedef struct auth_jwt_opts {
  const char *issuer;    /* required: "iss" must equal it */
  const char *audience;  /* required: "aud" must contain it (the resource URI) */
  unsigned algorithms;   /* allow-list (AUTH_JWT_*); 0 → RS256 | ES256 | EdDSA */
  uint32_t leeway_s;     /* clock skew allowed on exp / nbf / iat */
  const char *jwks_file; /* JWK Set (RFC 7517 §5); NULL when only HS256 is used */
  const unsigned char *hs256_secret; /* HS256 key (copied); needed when HS256 is allowed */
  size_t hs256_secret_len;           /* ≥ AUTH_JWT_MIN_HMAC_SECRET */
  size_t cache_entries;  /* verified-token cache slots; 0 → 256 */
} auth_jwt_opts;

/* What a valid token says (plain value). */
typedef struct auth_jwt_claims {
  char subject[AUTH_MAX_SUBJECT + 1]; /* "sub", else "client_id", else "" */
  char issuer[AUTH_MAX_ISSUER + 1];
  char peer_id[AUTH_MAX_PEER_ID + 1]; /* the PeerId the token is bound to ("" = none) */
  auth_scopes scopes;
  int64_t expires_at; /* "exp" */
} auth_jwt_claims;

typedef struct auth_jwt auth_jwt;

/* Builds a validator and loads the JWK Set (blocking: at start-up). -EINVAL (bad options: no
 * issuer/audience, HS256 allowed without a secret or with a short one, "none"), -ENOENT /
 * -errno (the JWK Set file), -EBADMSG (not a JWK Set, or no usable key in it while an
 * asymmetric algorithm is allowed), -ENOMEM; err says which. */
int auth_jwt_new(const auth_jwt_opts *o, auth_jwt **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
void auth_jwt_free(auth_jwt *v);

/* Validates `token` (len bytes; not NUL-terminated necessarily) at Unix time now_s. On
 * AUTH_JWT_OK fills *out (may be NULL). Never logs the token. */
auth_jwt_status auth_jwt_verify(auth_jwt *v, const char *token, size_t len, double now_s, auth_jwt_claims *out);

/* Re-reads the JWK Set file if it changed since the last load (always with force). Returns 1
 * (new keys in force; the cache is emptied), 0 (unchanged), or -errno / -EBADMSG (the old keys
 * stay; err says why). Blocking: not on the event loop. */
int auth_jwt_reload(auth_jwt *v, bool force, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The JWK Set file (NULL when none). */
const char *auth_jwt_jwks_file(const auth_jwt *v);
/* Keys now in force (from the JWK Set; the HS256 secret is not counted). */
size_t auth_jwt_key_count(auth_jwt *v);

/* True when s has the shape of a JWS compact token: three non-empty base64url parts (the
 * signature part may not be empty either). A cheap test to tell a JWT from a shared token. */
bool auth_jwt_looks_like(const char *s, size_t len);

typedef struct auth_jwt_stats {
  uint64_t verified;   /* signatures checked and valid */
  uint64_t cache_hits; /* answered from the cache */
  uint64_t refused;    /* any failure */
  uint64_t reloads;    /* key sets loaded after the first */
} auth_jwt_stats;
void auth_jwt_get_stats(auth_jwt *v, auth_jwt_stats *out);

#endif
