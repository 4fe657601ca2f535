/* keys.h — libp2p identity keys (peer-ids spec, "Keys" and "How Keys are Encoded").
 *
 * Owns the PublicKey / PrivateKey protobuf messages, hand-encoded so the bytes are
 * deterministic (fields in tag order, minimal varints, both fields always present) and
 * decoded strictly (unknown, duplicate, missing or out-of-order fields are rejected).
 * Signing is Ed25519 only (our own identity, libsodium); verification covers Ed25519
 * (libsodium), and secp256k1, ECDSA and RSA (OpenSSL 3 EVP) so older peers can connect.
 * Structs are plain values owned by the caller; nothing here allocates memory the caller
 * must free. Thread-safe (call keys_init() once, before threads, or rely on lazy init). */
#ifndef PEERMCP_P2P_CORE_KEYS_H
#define PEERMCP_P2P_CORE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
  KEYS_TYPE_RSA = 0,
  KEYS_TYPE_ED25519 = 1,
  KEYS_TYPE_SECP256K1 = 2,
  KEYS_TYPE_ECDSA = 3,
} keys_type;

/* Ceiling on PublicKey.Data: an 8192-bit RSA PKIX DER key is about 1062 bytes. */
#define KEYS_PUBLIC_DATA_MAX 1100
/* Ceiling on an encoded PublicKey protobuf (2 bytes tag/type + tag + 2-byte length + data). */
#define KEYS_PUBLIC_PB_MAX (KEYS_PUBLIC_DATA_MAX + 8)
#define KEYS_ED25519_SIG_LEN 64
/* Ceiling on a signature we accept for verification (RSA-8192 is 1024 bytes). */
#define KEYS_SIG_MAX 1024

typedef struct keys_public {
  keys_type type;
  size_t len;                          /* bytes used in data */
  uint8_t data[KEYS_PUBLIC_DATA_MAX];  /* the type-specific encoding (Ed25519: 32 raw bytes) */
} keys_public;

/* Our own identity: always Ed25519. sk is libsodium's 64-byte secret (seed ‖ public). */
typedef struct keys_private {
  keys_type type; /* KEYS_TYPE_ED25519 */
  uint8_t sk[64];
  uint8_t pk[32];
} keys_private;

/* Initialises libsodium (idempotent). 0 or -EIO. Called lazily by the functions below too. */
int keys_init(void) __attribute__((warn_unused_result));

/* Fresh Ed25519 key from the OS RNG. */
int keys_ed25519_generate(keys_private *out) __attribute__((warn_unused_result));
/* Deterministic Ed25519 key from a 32-byte seed (tests). */
int keys_ed25519_from_seed(const uint8_t seed[32], keys_private *out) __attribute__((warn_unused_result));
void keys_private_public(const keys_private *k, keys_public *out);
/* Zeroes the secret. */
void keys_private_wipe(keys_private *k);

/* Ed25519 signature over msg. */
int keys_private_sign(const keys_private *k, const uint8_t *msg, size_t n, uint8_t sig[KEYS_ED25519_SIG_LEN])
    __attribute__((warn_unused_result));

/* PublicKey protobuf. encode: 0, -ENOSPC; writes *outlen bytes. decode: 0, -EINVAL (malformed
 * / non-canonical / unknown type), -E2BIG (data over the ceiling). decode also checks the
 * Data is well-formed for its type (Ed25519: 32 bytes; others: parseable by OpenSSL). */
int keys_public_encode(const keys_public *k, uint8_t *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));
int keys_public_decode(const uint8_t *in, size_t n, keys_public *out) __attribute__((warn_unused_result));

/* PrivateKey protobuf (our identity file format). encode writes Type=Ed25519 and the 64-byte
 * Data [seed ‖ public]. decode accepts Ed25519 Data of 64 bytes, or the legacy 96 bytes
 * [seed ‖ public ‖ public] with equal copies; checks that the public half matches the seed.
 * Other key types: -ENOTSUP. */
int keys_private_encode(const keys_private *k, uint8_t *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));
int keys_private_decode(const uint8_t *in, size_t n, keys_private *out) __attribute__((warn_unused_result));

/* Verifies sig over msg with the signing rules of k->type. 0 = valid; -EBADMSG = invalid
 * signature; -EINVAL = unusable key; -ENOTSUP = type not supported. */
int keys_public_verify(const keys_public *k, const uint8_t *msg, size_t n, const uint8_t *sig, size_t siglen)
    __attribute__((warn_unused_result));

bool keys_public_equal(const keys_public *a, const keys_public *b);
const char *keys_type_name(keys_type t); /* "Ed25519", "RSA", ... or "unknown" */

#endif
