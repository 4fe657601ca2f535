/* keys.c — libp2p PublicKey/PrivateKey protobufs, Ed25519 signing, multi-type verification
 * (peer-ids spec). See keys.h. */
#include "p2p/core/keys.h"

#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "p2p/core/varint.h"

#define RSA_MIN_BITS 2048 /* what go-libp2p and rust-libp2p accept */
#define RSA_MAX_BITS 8192

int keys_init(void) { return sodium_init() < 0 ? -EIO : 0; }

int keys_ed25519_generate(keys_private *out) {
  if (keys_init()) return -EIO;
  memset(out, 0, sizeof *out);
  out->type = KEYS_TYPE_ED25519;
  if (crypto_sign_keypair(out->pk, out->sk) != 0) return -EIO;
  return 0;
}

int keys_ed25519_from_seed(const uint8_t seed[32], keys_private *out) {
  if (keys_init()) return -EIO;
  memset(out, 0, sizeof *out);
  out->type = KEYS_TYPE_ED25519;
  if (crypto_sign_seed_keypair(out->pk, out->sk, seed) != 0) return -EIO;
  return 0;
}

void keys_private_public(const keys_private *k, keys_public *out) {
  memset(out, 0, offsetof(keys_public, data));
  out->type = KEYS_TYPE_ED25519;
  out->len = 32;
  memcpy(out->data, k->pk, 32);
}

void keys_private_wipe(keys_private *k) { sodium_memzero(k, sizeof *k); }

int keys_private_sign(const keys_private *k, const uint8_t *msg, size_t n, uint8_t sig[KEYS_ED25519_SIG_LEN]) {
  if (k->type != KEYS_TYPE_ED25519) return -ENOTSUP;
  if (keys_init()) return -EIO;
  if (crypto_sign_detached(sig, NULL, msg, n, k->sk) != 0) return -EIO;
  return 0;
}

/* --- the two-field messages, { Type = 1 (varint), Data = 2 (bytes) } --- */

static int pb_encode_key(keys_type type, const uint8_t *data, size_t len, uint8_t *out, size_t cap,
                         size_t *outlen) {
  uint8_t lenbuf[VARINT_MAX_BYTES];
  size_t ll = varint_encode(len, lenbuf);
  size_t total = 2 + 1 + ll + len;
  if (total > cap) return -ENOSPC;
  out[0] = 0x08; /* field 1, varint */
  out[1] = (uint8_t)type;
  out[2] = 0x12; /* field 2, length-delimited */
  memcpy(out + 3, lenbuf, ll);
  memcpy(out + 3 + ll, data, len);
  *outlen = total;
  return 0;
}

/* Strict: exactly field 1 then field 2, once each, minimal varints, nothing else. */
static int pb_decode_key(const uint8_t *in, size_t n, keys_type *type, const uint8_t **data, size_t *len) {
  size_t off = 0, used;
  uint64_t v;
  if (n < 1 || in[0] != 0x08) return -EINVAL;
  off = 1;
  if (varint_decode(in + off, n - off, &v, &used) != 0) return -EINVAL;
  if (v > KEYS_TYPE_ECDSA) return -EINVAL;
  *type = (keys_type)v;
  off += used;
  if (off >= n || in[off] != 0x12) return -EINVAL;
  off++;
  if (varint_decode(in + off, n - off, &v, &used) != 0) return -EINVAL;
  off += used;
  if (v != n - off) return -EINVAL; /* truncated, or trailing (unknown / duplicate) fields */
  *data = in + off;
  *len = (size_t)v;
  return 0;
}

int keys_public_encode(const keys_public *k, uint8_t *out, size_t cap, size_t *outlen) {
  if (k->len > KEYS_PUBLIC_DATA_MAX || (unsigned)k->type > KEYS_TYPE_ECDSA) return -EINVAL;
  return pb_encode_key(k->type, k->data, k->len, out, cap, outlen);
}

/* Builds an OpenSSL key for the non-Ed25519 types. NULL if the data does not parse. */
static EVP_PKEY *evp_from_public(const keys_public *k) {
  EVP_PKEY *pkey = NULL;
  if (k->type == KEYS_TYPE_SECP256K1) {
    /* Bitcoin encoding: a 33-byte compressed or 65-byte uncompressed SEC1 point. */
    if (!((k->len == 33 && (k->data[0] == 2 || k->data[0] == 3)) || (k->len == 65 && k->data[0] == 4)))
      return NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "secp256k1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, k->data, k->len) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) && (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) &&
        EVP_PKEY_fromdata_init(ctx) > 0) {
      if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    if (pkey) {
      /* fromdata does not check the point is on the curve; a public check does. */
      EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
      int ok = c && EVP_PKEY_public_check(c) > 0;
      EVP_PKEY_CTX_free(c);
      if (!ok) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
      }
    }
    return pkey;
  }
  if (k->type == KEYS_TYPE_RSA || k->type == KEYS_TYPE_ECDSA) {
    /* DER SubjectPublicKeyInfo (PKIX); all bytes must be consumed. */
    const unsigned char *p = k->data;
    pkey = d2i_PUBKEY(NULL, &p, (long)k->len);
    if (!pkey) return NULL;
    if (p != k->data + k->len) goto bad;
    if (k->type == KEYS_TYPE_RSA) {
      if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA) goto bad;
      int bits = EVP_PKEY_get_bits(pkey);
      if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) goto bad;
    } else {
      if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC) goto bad;
    }
    return pkey;
  bad:
    EVP_PKEY_free(pkey);
    return NULL;
  }
  return NULL;
}

int keys_public_decode(const uint8_t *in, size_t n, keys_public *out) {
  keys_type type;
  const uint8_t *data;
  size_t len;
  if (n > KEYS_PUBLIC_PB_MAX) return -E2BIG;
  if (pb_decode_key(in, n, &type, &data, &len)) return -EINVAL;
  if (len > KEYS_PUBLIC_DATA_MAX) return -E2BIG;
  memset(out, 0, offsetof(keys_public, data));
  out->type = type;
  out->len = len;
  memcpy(out->data, data, len);
  if (type == KEYS_TYPE_ED25519) return len == 32 ? 0 : -EINVAL;
  EVP_PKEY *pkey = evp_from_public(out);
  if (!pkey) return -EINVAL;
  EVP_PKEY_free(pkey);
  return 0;
}

int keys_private_encode(const keys_private *k, uint8_t *out, size_t cap, size_t *outlen) {
  if (k->type != KEYS_TYPE_ED25519) return -ENOTSUP;
  uint8_t data[64];
  memcpy(data, k->sk, 32); /* seed */
  memcpy(data + 32, k->pk, 32);
  int rc = pb_encode_key(KEYS_TYPE_ED25519, data, 64, out, cap, outlen);
  sodium_memzero(data, sizeof data);
  return rc;
}

int keys_private_decode(const uint8_t *in, size_t n, keys_private *out) {
  keys_type type;
  const uint8_t *data;
  size_t len;
  if (pb_decode_key(in, n, &type, &data, &len)) return -EINVAL;
  if (type != KEYS_TYPE_ED25519) return -ENOTSUP;
  if (len != 64 && len != 96) return -EINVAL;
  if (len == 96 && sodium_memcmp(data + 32, data + 64, 32) != 0) return -EINVAL;
  keys_private k;
  int rc = keys_ed25519_from_seed(data, &k);
  if (rc) return rc;
  if (sodium_memcmp(k.pk, data + 32, 32) != 0) {
    keys_private_wipe(&k);
    return -EINVAL; /* public half does not belong to the seed */
  }
  *out = k;
  keys_private_wipe(&k);
  return 0;
}

int keys_public_verify(const keys_public *k, const uint8_t *msg, size_t n, const uint8_t *sig, size_t siglen) {
  if (siglen > KEYS_SIG_MAX) return -EBADMSG;
  if (k->type == KEYS_TYPE_ED25519) {
    if (k->len != 32) return -EINVAL;
    if (keys_init()) return -EIO;
    if (siglen != crypto_sign_BYTES) return -EBADMSG;
    return crypto_sign_verify_detached(sig, msg, n, k->data) == 0 ? 0 : -EBADMSG;
  }
  if ((unsigned)k->type > KEYS_TYPE_ECDSA) return -ENOTSUP;
  EVP_PKEY *pkey = evp_from_public(k);
  if (!pkey) return -EINVAL;
  /* RSA: PKCS#1 v1.5 over SHA-256 (the default padding); EC: DER ECDSA over SHA-256. */
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  int rc = -EBADMSG;
  if (md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) > 0 &&
      EVP_DigestVerify(md, sig, siglen, msg, n) == 1)
    rc = 0;
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(pkey);
  return rc;
}

bool keys_public_equal(const keys_public *a, const keys_public *b) {
  return a->type == b->type && a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

const char *keys_type_name(keys_type t) {
  switch (t) {
  case KEYS_TYPE_RSA: return "RSA";
  case KEYS_TYPE_ED25519: return "Ed25519";
  case KEYS_TYPE_SECP256K1: return "Secp256k1";
  case KEYS_TYPE_ECDSA: return "ECDSA";
  }
  return "unknown";
}
