/* jwt.c — JWS compact JWT validation with OpenSSL EVP (see jwt.h; RFC 7515 §5.2, RFC 7519 §7.2,
 * RFC 7518 §3, RFC 8037 §3.1, RFC 8725 best practices). */
#include "auth/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

#define JWT_MAX_HEADER 2048 /* decoded header bytes */
#define JWT_MAX_SIG 1024    /* decoded signature bytes (RSA 8192 bits) */
#define JWT_MAX_AUD 32      /* entries of an "aud" array looked at */

/* ---------- names ---------- */

static const char *const k_status[AUTH_JWT_E__COUNT] = {
    "ok",          "too_large",   "malformed",      "alg_not_allowed", "bad_header",  "unknown_key",
    "bad_signature", "expired",   "not_yet_valid",  "wrong_issuer",    "wrong_audience", "bad_claims",
    "internal",
};

const char *auth_jwt_status_name(auth_jwt_status st) {
  return (unsigned)st < AUTH_JWT_E__COUNT ? k_status[st] : "internal";
}

static const struct {
  const char *name;
  unsigned bit;
} k_algs[] = {{"RS256", AUTH_JWT_RS256}, {"PS256", AUTH_JWT_PS256}, {"ES256", AUTH_JWT_ES256},
              {"EdDSA", AUTH_JWT_EDDSA}, {"HS256", AUTH_JWT_HS256}};

int auth_jwt_alg_parse(const char *name, unsigned *bit) {
  /* RFC 9864's fully-specified name for EdDSA over Ed25519: the same check */
  if (name && strcmp(name, "Ed25519") == 0) {
    *bit = AUTH_JWT_EDDSA;
    return 0;
  }
  for (size_t i = 0; name && i < sizeof k_algs / sizeof k_algs[0]; i++)
    if (strcmp(name, k_algs[i].name) == 0) {
      *bit = k_algs[i].bit;
      return 0;
    }
  return -EINVAL;
}

const char *auth_jwt_alg_name(unsigned bit) {
  for (size_t i = 0; i < sizeof k_algs / sizeof k_algs[0]; i++)
    if (k_algs[i].bit == bit) return k_algs[i].name;
  return NULL;
}

/* ---------- keys ---------- */

typedef struct jwt_key {
  char kid[AUTH_JWT_MAX_KID + 1];
  bool has_kid;
  unsigned algs; /* what this key may verify */
  EVP_PKEY *pk;
  unsigned char ed[32]; /* OKP Ed25519: the raw public key (verified with libsodium) */
} jwt_key;

typedef struct jwt_keyset {
  atomic_int refs;
  size_t n;
  jwt_key k[];
} jwt_keyset;

static void keyset_unref(jwt_keyset *ks) {
  if (!ks || atomic_fetch_sub(&ks->refs, 1) != 1) return;
  for (size_t i = 0; i < ks->n; i++) EVP_PKEY_free(ks->k[i].pk);
  free(ks);
}

/* ---------- the cache ---------- */

typedef struct cache_slot {
  unsigned char hash[32];
  bool used;
  uint64_t gen;      /* key-set generation it was verified under */
  int64_t not_before; /* nbf/iat − leeway, INT64_MIN when none */
  auth_jwt_claims claims;
} cache_slot;

struct auth_jwt {
  char *issuer, *audience, *jwks_file;
  unsigned algorithms;
  uint32_t leeway_s;
  unsigned char *secret;
  size_t secret_len;
  pthread_mutex_t mu;
  jwt_keyset *keys; /* under mu */
  uint64_t gen;     /* under mu: bumped by every reload */
  struct stat file_id;
  bool have_file_id;
  cache_slot *cache;
  size_t n_cache;
  atomic_uint_fast64_t st_verified, st_hits, st_refused, st_reloads;
};

/* ---------- helpers ---------- */

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t n, const char *fmt, ...) {
  if (!err || !n) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
}

static bool b64url_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Decodes base64url without padding into out (cap bytes). 0 and *outlen, or -1. */
static int b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outlen) {
  const char *end = NULL;
  if (n == 0) {
    *outlen = 0;
    return 0;
  }
  if (sodium_base642bin(out, cap, s, n, NULL, outlen, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) return -1;
  return end == s + n ? 0 : -1;
}

/* Decodes a base64url JWK member into a new buffer. NULL when absent, malformed or too long. */
static unsigned char *b64url_member(const json_t *o, const char *key, size_t max, size_t *len) {
  const json_t *v = json_object_get(o, key);
  if (!json_is_string(v)) return NULL;
  size_t n = json_string_length(v);
  if (n == 0 || n > max * 4 / 3 + 4) return NULL;
  unsigned char *buf = malloc(n);
  if (!buf) return NULL;
  if (b64url_decode(json_string_value(v), n, buf, n, len) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* The deepest nesting of JSON text, counted without parsing (strings skipped). False when
 * deeper than max. Brackets inside strings do not count; a malformed text is left to the parser. */
static bool json_depth_ok(const char *s, size_t n, int max) {
  int depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      if (c == '\\') i++;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    else if (c == '{' || c == '[') {
      if (++depth > max) return false;
    } else if (c == '}' || c == ']') {
      depth--;
    }
  }
  return true;
}

/* Parses decoded JSON bytes into an object, depth checked first. NULL otherwise. */
static json_t *parse_object(const unsigned char *s, size_t n) {
  if (!json_depth_ok((const char *)s, n, AUTH_JWT_MAX_DEPTH)) return NULL;
  json_t *j = json_loadb((const char *)s, n, JSON_REJECT_DUPLICATES, NULL);
  if (j && !json_is_object(j)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

/* ---------- JWK → EVP_PKEY ---------- */

static EVP_PKEY *fromdata(const char *type, OSSL_PARAM_BLD *bld) {
  EVP_PKEY *pk = NULL;
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
  if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 && EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) pk = NULL;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return pk;
}

static EVP_PKEY *jwk_rsa(const json_t *j, const char **why) {
  size_t nl = 0, el = 0;
  unsigned char *n = b64url_member(j, "n", 2048, &nl), *e = b64url_member(j, "e", 16, &el);
  EVP_PKEY *pk = NULL;
  BIGNUM *bn = NULL, *be = NULL;
  OSSL_PARAM_BLD *bld = NULL;
  *why = "bad RSA members n/e";
  if (!n || !e) goto out;
  bn = BN_bin2bn(n, (int)nl, NULL);
  be = BN_bin2bn(e, (int)el, NULL);
  bld = OSSL_PARAM_BLD_new();
  if (!bn || !be || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
    goto out;
  pk = fromdata("RSA", bld);
  if (pk && EVP_PKEY_get_bits(pk) < AUTH_JWT_MIN_RSA_BITS) {
    *why = "RSA key shorter than 2048 bits";
    EVP_PKEY_free(pk);
    pk = NULL;
  }
out:
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn);
  BN_free(be);
  free(n);
  free(e);
  return pk;
}

static EVP_PKEY *jwk_ec(const json_t *j, const char **why) {
  const char *crv = json_string_value(json_object_get(j, "crv"));
  *why = "EC key: only crv P-256 is supported";
  if (!crv || strcmp(crv, "P-256") != 0) return NULL;
  *why = "bad EC members x/y (32 bytes each)";
  size_t xl = 0, yl = 0;
  unsigned char *x = b64url_member(j, "x", 32, &xl), *y = b64url_member(j, "y", 32, &yl);
  EVP_PKEY *pk = NULL;
  OSSL_PARAM_BLD *bld = NULL;
  if (!x || !y || xl != 32 || yl != 32) goto out;
  unsigned char pt[65];
  pt[0] = 0x04; /* uncompressed point */
  memcpy(pt + 1, x, 32);
  memcpy(pt + 33, y, 32);
  bld = OSSL_PARAM_BLD_new();
  if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt))
    goto out;
  pk = fromdata("EC", bld);
  if (pk) { /* the point must be on the curve (invalid-curve attacks) */
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
    if (!c || EVP_PKEY_public_check(c) != 1) {
      *why = "EC point not on P-256";
      EVP_PKEY_free(pk);
      pk = NULL;
    }
    EVP_PKEY_CTX_free(c);
  }
out:
  OSSL_PARAM_BLD_free(bld);
  free(x);
  free(y);
  return pk;
}

static EVP_PKEY *jwk_okp(const json_t *j, const char **why) {
  const char *crv = json_string_value(json_object_get(j, "crv"));
  *why = "OKP key: only crv Ed25519 is supported";
  if (!crv || strcmp(crv, "Ed25519") != 0) return NULL;
  *why = "bad OKP member x (32 bytes)";
  size_t xl = 0;
  unsigned char *x = b64url_member(j, "x", 32, &xl);
  EVP_PKEY *pk = x && xl == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, 32) : NULL;
  free(x);
  return pk;
}

/* One JWK (RFC 7517 §4) → a key, or false with *why (the key is skipped). */
static bool jwk_load(const json_t *j, jwt_key *out, const char **why) {
  memset(out, 0, sizeof *out);
  if (!json_is_object(j)) {
    *why = "not an object";
    return false;
  }
  const char *kty = json_string_value(json_object_get(j, "kty"));
  const json_t *use = json_object_get(j, "use"), *ops = json_object_get(j, "key_ops");
  const json_t *kid = json_object_get(j, "kid"), *alg = json_object_get(j, "alg");
  if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) {
    *why = "\"use\" is not \"sig\"";
    return false;
  }
  if (ops) {
    bool verify = false;
    size_t i;
    const json_t *op;
    if (json_is_array(ops)) json_array_foreach(ops, i, op) if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0) verify = true;
    if (!verify) {
      *why = "\"key_ops\" lacks \"verify\"";
      return false;
    }
  }
  if (kid) {
    if (!json_is_string(kid) || json_string_length(kid) == 0 || json_string_length(kid) > AUTH_JWT_MAX_KID) {
      *why = "bad \"kid\"";
      return false;
    }
    memcpy(out->kid, json_string_value(kid), json_string_length(kid) + 1);
    out->has_kid = true;
  }
  if (!kty) {
    *why = "no \"kty\"";
    return false;
  }
  if (strcmp(kty, "RSA") == 0) {
    out->algs = AUTH_JWT_RS256 | AUTH_JWT_PS256;
    out->pk = jwk_rsa(j, why);
  } else if (strcmp(kty, "EC") == 0) {
    out->algs = AUTH_JWT_ES256;
    out->pk = jwk_ec(j, why);
  } else if (strcmp(kty, "OKP") == 0) {
    out->algs = AUTH_JWT_EDDSA;
    out->pk = jwk_okp(j, why);
    size_t rl = sizeof out->ed;
    if (out->pk && (EVP_PKEY_get_raw_public_key(out->pk, out->ed, &rl) != 1 || rl != sizeof out->ed)) {
      EVP_PKEY_free(out->pk);
      out->pk = NULL;
    }
  } else {
    /* "oct" included: an HMAC secret never comes from the JWK Set */
    *why = "unsupported \"kty\" (RSA, EC P-256 and OKP Ed25519 only; HS256 takes its secret from the environment)";
    return false;
  }
  if (!out->pk) return false;
  if (alg) { /* a key restricted to one algorithm (RFC 7517 §4.4) */
    unsigned bit = 0;
    if (!json_is_string(alg) || auth_jwt_alg_parse(json_string_value(alg), &bit) != 0 || !(out->algs & bit)) {
      *why = "\"alg\" unsupported or not matching the key type";
      EVP_PKEY_free(out->pk);
      out->pk = NULL;
      return false;
    }
    out->algs = bit;
  }
  return true;
}

/* Reads and parses the JWK Set file. 0 and *out (maybe with no key), or -errno / -EBADMSG. */
static int jwks_read(const char *path, jwt_keyset **out, struct stat *id, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    seterr(err, errlen, "auth.jwt.jwks_file %s: %s", path, strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > AUTH_JWT_MAX_JWKS_BYTES) {
    close(fd);
    seterr(err, errlen, "auth.jwt.jwks_file %s: not a regular file of at most %u bytes", path, AUTH_JWT_MAX_JWKS_BYTES);
    return -EFBIG;
  }
  char *text = malloc((size_t)st.st_size + 1);
  if (!text) {
    close(fd);
    return -ENOMEM;
  }
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  json_error_t je;
  json_t *root = json_loadb(text, got, JSON_REJECT_DUPLICATES, &je);
  free(text);
  const json_t *keys = json_object_get(root, "keys");
  if (!json_is_array(keys)) {
    json_decref(root);
    seterr(err, errlen, "auth.jwt.jwks_file %s: not a JWK Set (an object with a \"keys\" array)", path);
    return -EBADMSG;
  }
  size_t n = json_array_size(keys);
  if (n > AUTH_JWT_MAX_KEYS) n = AUTH_JWT_MAX_KEYS;
  jwt_keyset *ks = calloc(1, sizeof *ks + n * sizeof ks->k[0]);
  if (!ks) {
    json_decref(root);
    return -ENOMEM;
  }
  atomic_init(&ks->refs, 1);
  for (size_t i = 0; i < n; i++) {
    const char *why = "";
    const json_t *j = json_array_get(keys, i);
    if (jwk_load(j, &ks->k[ks->n], &why)) {
      if (json_object_get(j, "d")) log_write(LOG_WARNING, "jwks: a key holds private material; only its public part is used", "{s:s, s:s}", "file", path, "kid", ks->k[ks->n].kid);
      ks->n++;
    } else {
      log_write(LOG_WARNING, "jwks: key skipped", "{s:s, s:I, s:s}", "file", path, "index", (json_int_t)i, "reason", why);
    }
  }
  if (json_array_size(keys) > AUTH_JWT_MAX_KEYS)
    log_write(LOG_WARNING, "jwks: keys past the ceiling ignored", "{s:s, s:i}", "file", path, "max", AUTH_JWT_MAX_KEYS);
  json_decref(root);
  *out = ks;
  *id = st;
  return 0;
}

static bool same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* ---------- life cycle ---------- */

void auth_jwt_free(auth_jwt *v) {
  if (!v) return;
  keyset_unref(v->keys);
  if (v->secret) {
    sodium_memzero(v->secret, v->secret_len);
    free(v->secret);
  }
  if (v->cache) {
    sodium_memzero(v->cache, v->n_cache * sizeof *v->cache);
    free(v->cache);
  }
  free(v->issuer);
  free(v->audience);
  free(v->jwks_file);
  pthread_mutex_destroy(&v->mu);
  free(v);
}

int auth_jwt_new(const auth_jwt_opts *o, auth_jwt **out, char *err, size_t errlen) {
  *out = NULL;
  if (sodium_init() < 0) return -EIO;
  if (!o || !o->issuer || !*o->issuer || !o->audience || !*o->audience) {
    seterr(err, errlen, "auth.jwt: issuer and audience are required");
    return -EINVAL;
  }
  unsigned algs = o->algorithms ? o->algorithms : AUTH_JWT_RS256 | AUTH_JWT_ES256 | AUTH_JWT_EDDSA;
  if (algs & ~(unsigned)AUTH_JWT_ALG_ALL) {
    seterr(err, errlen, "auth.jwt.algorithms: unknown algorithm");
    return -EINVAL;
  }
  if ((algs & AUTH_JWT_HS256) && (!o->hs256_secret || o->hs256_secret_len < AUTH_JWT_MIN_HMAC_SECRET)) {
    seterr(err, errlen, "auth.jwt: HS256 is allowed but its secret (auth.jwt.hs256_secret_env) is %s",
           o->hs256_secret ? "shorter than 32 bytes" : "not set");
    return -EINVAL;
  }
  bool asym = algs & ~(unsigned)AUTH_JWT_HS256;
  if (asym && (!o->jwks_file || !*o->jwks_file)) {
    seterr(err, errlen, "auth.jwt: %s needs auth.jwt.jwks_file", "an asymmetric algorithm");
    return -EINVAL;
  }
  auth_jwt *v = calloc(1, sizeof *v);
  if (!v) return -ENOMEM;
  pthread_mutex_init(&v->mu, NULL);
  v->algorithms = algs;
  v->leeway_s = o->leeway_s;
  v->n_cache = o->cache_entries ? o->cache_entries : 256;
  v->issuer = strdup(o->issuer);
  v->audience = strdup(o->audience);
  v->jwks_file = o->jwks_file && *o->jwks_file ? strdup(o->jwks_file) : NULL;
  v->cache = calloc(v->n_cache, sizeof *v->cache);
  if (!v->issuer || !v->audience || (o->jwks_file && *o->jwks_file && !v->jwks_file) || !v->cache) goto oom;
  if (algs & AUTH_JWT_HS256) {
    if (!(v->secret = malloc(o->hs256_secret_len))) goto oom;
    memcpy(v->secret, o->hs256_secret, o->hs256_secret_len);
    v->secret_len = o->hs256_secret_len;
  }
  if (v->jwks_file) {
    jwt_keyset *ks = NULL;
    int rc = jwks_read(v->jwks_file, &ks, &v->file_id, err, errlen);
    if (rc != 0) {
      auth_jwt_free(v);
      return rc;
    }
    v->have_file_id = true;
    v->keys = ks;
    if (asym && ks->n == 0) {
      seterr(err, errlen, "auth.jwt.jwks_file %s: no usable key (see the warnings above)", v->jwks_file);
      auth_jwt_free(v);
      return -EBADMSG;
    }
  }
  *out = v;
  return 0;
oom:
  auth_jwt_free(v);
  return -ENOMEM;
}

int auth_jwt_reload(auth_jwt *v, bool force, char *err, size_t errlen) {
  if (!v->jwks_file) return 0;
  struct stat st;
  if (!force && v->have_file_id) {
    if (stat(v->jwks_file, &st) != 0) {
      int e = errno;
      seterr(err, errlen, "auth.jwt.jwks_file %s: %s (the previous keys stay in force)", v->jwks_file, strerror(e));
      return -e;
    }
    pthread_mutex_lock(&v->mu);
    bool same = same_file(&st, &v->file_id);
    pthread_mutex_unlock(&v->mu);
    if (same) return 0;
  }
  jwt_keyset *ks = NULL;
  int rc = jwks_read(v->jwks_file, &ks, &st, err, errlen);
  if (rc != 0) return rc;
  if (ks->n == 0 && (v->algorithms & ~(unsigned)AUTH_JWT_HS256)) {
    keyset_unref(ks);
    seterr(err, errlen, "auth.jwt.jwks_file %s: no usable key; the previous keys stay in force", v->jwks_file);
    return -EBADMSG;
  }
  pthread_mutex_lock(&v->mu);
  jwt_keyset *old = v->keys;
  v->keys = ks;
  v->gen++;
  v->file_id = st;
  v->have_file_id = true;
  for (size_t i = 0; i < v->n_cache; i++) v->cache[i].used = false;
  pthread_mutex_unlock(&v->mu);
  keyset_unref(old);
  atomic_fetch_add(&v->st_reloads, 1);
  return 1;
}

const char *auth_jwt_jwks_file(const auth_jwt *v) { return v ? v->jwks_file : NULL; }

size_t auth_jwt_key_count(auth_jwt *v) {
  pthread_mutex_lock(&v->mu);
  size_t n = v->keys ? v->keys->n : 0;
  pthread_mutex_unlock(&v->mu);
  return n;
}

void auth_jwt_get_stats(auth_jwt *v, auth_jwt_stats *out) {
  out->verified = atomic_load(&v->st_verified);
  out->cache_hits = atomic_load(&v->st_hits);
  out->refused = atomic_load(&v->st_refused);
  out->reloads = atomic_load(&v->st_reloads);
}

bool auth_jwt_looks_like(const char *s, size_t len) {
  if (!s || len < 5 || len > AUTH_JWT_MAX_BYTES) return false;
  int dots = 0;
  size_t seg = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '.') {
      if (seg == 0 || ++dots > 2) return false;
      seg = 0;
    } else if (b64url_char((unsigned char)s[i])) {
      seg++;
    } else {
      return false;
    }
  }
  return dots == 2 && seg > 0;
}

/* ---------- signatures ---------- */

/* ES256 signatures are R || S, 32 bytes each (RFC 7518 §3.4); OpenSSL wants DER. */
static int es256_der(const unsigned char *sig, unsigned char *der, size_t cap, size_t *len) {
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
  int rc = -1;
  if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
    r = s = NULL; /* owned by es */
    int n = i2d_ECDSA_SIG(es, NULL);
    if (n > 0 && (size_t)n <= cap) {
      unsigned char *p = der;
      if (i2d_ECDSA_SIG(es, &p) == n) {
        *len = (size_t)n;
        rc = 0;
      }
    }
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(es);
  return rc;
}

/* 1 valid, 0 invalid, -1 internal error. */
static int verify_with(unsigned alg, const jwt_key *k, const unsigned char *data, size_t n, const unsigned char *sig,
                       size_t sl) {
  unsigned char der[80];
  EVP_PKEY *pk = k->pk;
  if (alg == AUTH_JWT_EDDSA) {
    /* libsodium's Ed25519 (RFC 8032, strict: small-order keys and non-canonical signatures
     * refused) checks in about half the time of OpenSSL 3.0's */
    return sl == crypto_sign_BYTES && crypto_sign_verify_detached(sig, data, n, k->ed) == 0;
  }
  if (alg == AUTH_JWT_ES256) {
    size_t dl = 0;
    if (sl != 64) return 0;
    if (es256_der(sig, der, sizeof der, &dl) != 0) return -1;
    sig = der;
    sl = dl;
  }
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  if (!m) return -1;
  EVP_PKEY_CTX *pc = NULL;
  int ok = EVP_DigestVerifyInit_ex(m, &pc, "SHA256", NULL, NULL, pk, NULL) == 1;
  if (ok && alg == AUTH_JWT_PS256)
    ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, "SHA256", NULL) == 1;
  else if (ok && alg == AUTH_JWT_RS256)
    ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1;
  int r = ok ? (EVP_DigestVerify(m, sig, sl, data, n) == 1 ? 1 : 0) : -1;
  EVP_MD_CTX_free(m);
  return r;
}

static int verify_hs256(const unsigned char *key, size_t kl, const unsigned char *data, size_t n,
                        const unsigned char *sig, size_t sl) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int ml = 0;
  if (!HMAC(EVP_sha256(), key, (int)kl, data, n, mac, &ml)) return -1;
  int ok = sl == ml && CRYPTO_memcmp(mac, sig, ml) == 0;
  OPENSSL_cleanse(mac, sizeof mac);
  return ok;
}

/* ---------- claims ---------- */

/* A NumericDate (RFC 7519 §2): a finite number. */
static bool numeric_date(const json_t *v, double *out) {
  if (!json_is_number(v)) return false;
  double d = json_number_value(v);
  if (!isfinite(d) || d < 0 || d > 9.2e18) return false;
  *out = d;
  return true;
}

static bool copy_str(char *dst, size_t cap, const json_t *v) {
  if (!json_is_string(v)) return false;
  size_t n = json_string_length(v);
  if (n >= cap || memchr(json_string_value(v), 0, n)) return false;
  memcpy(dst, json_string_value(v), n + 1);
  return true;
}

static auth_jwt_status check_claims(auth_jwt *v, const json_t *c, double now, auth_jwt_claims *out, int64_t *nbf_out) {
  memset(out, 0, sizeof *out);
  double lw = (double)v->leeway_s, exp, nbf, iat;
  const json_t *iss = json_object_get(c, "iss");
  if (!json_is_string(iss) || strcmp(json_string_value(iss), v->issuer) != 0 ||
      json_string_length(iss) != strlen(v->issuer))
    return AUTH_JWT_E_ISSUER;
  const json_t *aud = json_object_get(c, "aud");
  bool aud_ok = false;
  if (json_is_string(aud)) {
    aud_ok = strcmp(json_string_value(aud), v->audience) == 0;
  } else if (json_is_array(aud)) {
    size_t i;
    const json_t *a;
    json_array_foreach(aud, i, a) {
      if (i >= JWT_MAX_AUD) break;
      if (json_is_string(a) && strcmp(json_string_value(a), v->audience) == 0) aud_ok = true;
    }
  }
  if (!aud_ok) return AUTH_JWT_E_AUDIENCE;
  if (!numeric_date(json_object_get(c, "exp"), &exp)) return AUTH_JWT_E_CLAIMS;
  if (now >= exp + lw) return AUTH_JWT_E_EXPIRED;
  int64_t nb = INT64_MIN;
  const json_t *jn = json_object_get(c, "nbf"), *ji = json_object_get(c, "iat");
  if (jn) {
    if (!numeric_date(jn, &nbf)) return AUTH_JWT_E_CLAIMS;
    if (nbf - lw > now) return AUTH_JWT_E_NOT_YET_VALID;
    nb = (int64_t)ceil(nbf - lw);
  }
  if (ji) { /* issued in the future: a clock far off, or a forged issuer clock */
    if (!numeric_date(ji, &iat)) return AUTH_JWT_E_CLAIMS;
    if (iat - lw > now) return AUTH_JWT_E_NOT_YET_VALID;
    if ((int64_t)ceil(iat - lw) > nb) nb = (int64_t)ceil(iat - lw);
  }
  *nbf_out = nb;
  /* whole seconds, rounded down: the context expires no later than the token */
  out->expires_at = (int64_t)floor(exp + lw);
  if (out->expires_at <= 0) out->expires_at = 1;
  if (!copy_str(out->issuer, sizeof out->issuer, iss)) return AUTH_JWT_E_CLAIMS;
  const json_t *sub = json_object_get(c, "sub");
  if (!sub) sub = json_object_get(c, "client_id");
  if (sub && !copy_str(out->subject, sizeof out->subject, sub)) return AUTH_JWT_E_CLAIMS;
  const json_t *scope = json_object_get(c, "scope"), *scp = json_object_get(c, "scp");
  if (scope) {
    if (!json_is_string(scope)) return AUTH_JWT_E_CLAIMS;
    auth_scopes_parse_granted(json_string_value(scope), &out->scopes);
  } else if (json_is_string(scp)) {
    auth_scopes_parse_granted(json_string_value(scp), &out->scopes);
  } else if (json_is_array(scp)) {
    size_t i;
    const json_t *s;
    json_array_foreach(scp, i, s) {
      if (i >= AUTH_SCOPE_MAX) break;
      if (!json_is_string(s)) return AUTH_JWT_E_CLAIMS;
      auth_scopes one;
      /* one name per element: a separator inside an element would smuggle in a second one */
      if (strpbrk(json_string_value(s), " \t,;")) continue;
      auth_scopes_parse_granted(json_string_value(s), &one);
      auth_scopes_union(&out->scopes, &one);
    }
  } else if (scp) {
    return AUTH_JWT_E_CLAIMS;
  }
  const json_t *pid = json_object_get(c, "peer_id");
  const json_t *cnf = json_object_get(c, "cnf");
  if (!pid && json_is_object(cnf)) pid = json_object_get(cnf, "peer_id");
  if (pid && !copy_str(out->peer_id, sizeof out->peer_id, pid)) return AUTH_JWT_E_CLAIMS;
  if (pid && !out->peer_id[0]) return AUTH_JWT_E_CLAIMS;
  return AUTH_JWT_OK;
}

/* ---------- verification ---------- */

static bool typ_ok(const json_t *typ) {
  if (!typ) return true;
  if (!json_is_string(typ)) return false;
  const char *t = json_string_value(typ);
  return strcasecmp(t, "JWT") == 0 || strcasecmp(t, "at+jwt") == 0 || strcasecmp(t, "application/at+jwt") == 0;
}

static auth_jwt_status refuse(auth_jwt *v, auth_jwt_status st) {
  atomic_fetch_add(&v->st_refused, 1);
  return st;
}

auth_jwt_status auth_jwt_verify(auth_jwt *v, const char *token, size_t len, double now, auth_jwt_claims *out) {
  if (!v || !token) return AUTH_JWT_E_MALFORMED;
  if (len > AUTH_JWT_MAX_BYTES) return refuse(v, AUTH_JWT_E_TOO_LARGE);
  if (!auth_jwt_looks_like(token, len)) return refuse(v, AUTH_JWT_E_MALFORMED);
  unsigned char hash[32];
  crypto_generichash(hash, sizeof hash, (const unsigned char *)token, len, NULL, 0);

  /* the cache: a token verified before under the same keys */
  size_t slot = (((size_t)hash[0] << 8 | hash[1]) << 8 | hash[2]) % v->n_cache;
  pthread_mutex_lock(&v->mu);
  cache_slot *cs = &v->cache[slot];
  if (cs->used && cs->gen == v->gen && sodium_memcmp(cs->hash, hash, sizeof hash) == 0) {
    auth_jwt_claims cl = cs->claims;
    int64_t nb = cs->not_before;
    pthread_mutex_unlock(&v->mu);
    if (now >= (double)cl.expires_at) return refuse(v, AUTH_JWT_E_EXPIRED);
    if (nb != INT64_MIN && now < (double)nb) return refuse(v, AUTH_JWT_E_NOT_YET_VALID);
    atomic_fetch_add(&v->st_hits, 1);
    if (out) *out = cl;
    return AUTH_JWT_OK;
  }
  jwt_keyset *ks = v->keys;
  if (ks) atomic_fetch_add(&ks->refs, 1);
  uint64_t gen = v->gen;
  pthread_mutex_unlock(&v->mu);

  auth_jwt_status st = AUTH_JWT_E_MALFORMED;
  const char *d1 = memchr(token, '.', len);
  const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
  size_t hl = (size_t)(d1 - token), pl = (size_t)(d2 - d1 - 1), sl = len - (size_t)(d2 + 1 - token);
  unsigned char *hbuf = NULL, *pbuf = NULL, *sbuf = NULL;
  json_t *hdr = NULL, *claims = NULL;
  size_t hn = 0, pn = 0, sn = 0;
  if (hl > JWT_MAX_HEADER * 4 / 3 + 4 || sl > JWT_MAX_SIG * 4 / 3 + 4) goto done;
  hbuf = malloc(hl + 1);
  pbuf = malloc(pl + 1);
  sbuf = malloc(sl + 1);
  if (!hbuf || !pbuf || !sbuf) {
    st = AUTH_JWT_E_INTERNAL;
    goto done;
  }
  if (b64url_decode(token, hl, hbuf, hl + 1, &hn) != 0 || b64url_decode(d1 + 1, pl, pbuf, pl + 1, &pn) != 0 ||
      b64url_decode(d2 + 1, sl, sbuf, sl + 1, &sn) != 0)
    goto done;
  if (!(hdr = parse_object(hbuf, hn))) goto done;

  /* the header (RFC 7515 §4.1; RFC 8725 §3.1: the algorithm is checked against the allow-list
   * before anything else uses it) */
  const json_t *jalg = json_object_get(hdr, "alg"), *jkid = json_object_get(hdr, "kid");
  unsigned alg = 0;
  if (!json_is_string(jalg) || auth_jwt_alg_parse(json_string_value(jalg), &alg) != 0 || !(alg & v->algorithms)) {
    st = AUTH_JWT_E_ALG;
    goto done;
  }
  if (json_object_get(hdr, "crit") || !typ_ok(json_object_get(hdr, "typ")) ||
      (jkid && (!json_is_string(jkid) || json_string_length(jkid) > AUTH_JWT_MAX_KID))) {
    st = AUTH_JWT_E_HEADER;
    goto done;
  }
  const unsigned char *signing_input = (const unsigned char *)token;
  size_t si_len = hl + 1 + pl;
  int ok = 0;
  if (alg == AUTH_JWT_HS256) {
    ok = verify_hs256(v->secret, v->secret_len, signing_input, si_len, sbuf, sn);
  } else {
    const char *kid = json_string_value(jkid);
    bool tried = false;
    for (size_t i = 0; ks && i < ks->n && ok != 1; i++) {
      const jwt_key *k = &ks->k[i];
      if (!(k->algs & alg)) continue;
      if (kid && (!k->has_kid || strcmp(k->kid, kid) != 0)) continue;
      tried = true;
      ok = verify_with(alg, k, signing_input, si_len, sbuf, sn);
      if (ok < 0) break;
    }
    if (!tried) {
      st = AUTH_JWT_E_UNKNOWN_KEY;
      goto done;
    }
  }
  if (ok < 0) {
    st = AUTH_JWT_E_INTERNAL;
    goto done;
  }
  if (ok != 1) {
    st = AUTH_JWT_E_SIGNATURE;
    goto done;
  }
  /* the claims are read only once the signature holds */
  if (!(claims = parse_object(pbuf, pn))) goto done;
  auth_jwt_claims cl;
  int64_t nb = INT64_MIN;
  st = check_claims(v, claims, now, &cl, &nb);
  if (st == AUTH_JWT_OK) {
    atomic_fetch_add(&v->st_verified, 1);
    if (out) *out = cl;
    pthread_mutex_lock(&v->mu);
    if (gen == v->gen) { /* keys not replaced meanwhile */
      cs = &v->cache[slot];
      memcpy(cs->hash, hash, sizeof hash);
      cs->used = true;
      cs->gen = gen;
      cs->not_before = nb;
      cs->claims = cl;
    }
    pthread_mutex_unlock(&v->mu);
  }
done:
  json_decref(hdr);
  json_decref(claims);
  free(hbuf);
  free(pbuf);
  free(sbuf);
  keyset_unref(ks);
  return st == AUTH_JWT_OK ? st : refuse(v, st);
}
