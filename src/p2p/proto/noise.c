/* noise.c — Noise_XX_25519_ChaChaPoly_SHA256 (Noise Protocol Framework rev 34, §5 processing
 * rules, §7.5 pattern XX) and the libp2p Noise handshake on top of it (libp2p noise spec:
 * signed static key, NoiseExtensions.stream_muxers, 2-byte length framing). Sans-I/O.
 * See noise.h. */
#include "p2p/proto/noise.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include "noise.pb-c.h"
#include "util/check.h"

#define HASHLEN 32
#define DHLEN 32
#define XX_MSG2_OVERHEAD (DHLEN + DHLEN + NOISE_TAG_LEN + NOISE_TAG_LEN) /* e, enc(s), payload tag */
#define XX_MSG3_OVERHEAD (DHLEN + NOISE_TAG_LEN + NOISE_TAG_LEN)
#define STATIC_KEY_PREFIX "noise-libp2p-static-key:"

/* Exactly HASHLEN bytes, so h starts as the name itself (§5.2 InitializeSymmetric). */
static const char protocol_name[] = "Noise_XX_25519_ChaChaPoly_SHA256";

/* ---------------------------------------------------------------------------------------
 * CipherState (§5.1) */

typedef struct cstate {
  uint8_t k[32];
  bool has_key;
  uint64_t n;
  EVP_CIPHER_CTX *evp; /* transport ciphers: OpenSSL's ChaCha20-Poly1305, keyed once */
  bool nonce_param;    /* evp's nonce is set through OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED (below) */
} cstate;

static void cs_init_key(cstate *c, const uint8_t k[32]) {
  memcpy(c->k, k, 32);
  c->has_key = true;
  c->n = 0;
}

static void cs_wipe(cstate *c) {
  if (c->evp) EVP_CIPHER_CTX_free(c->evp);
  sodium_memzero(c, sizeof *c);
}

int noise_aead_parse(const char *name, noise_aead *out) {
  if (!name || !*name) return 0;
  if (strcmp(name, "openssl") == 0) *out = NOISE_AEAD_OPENSSL;
  else if (strcmp(name, "libsodium") == 0) *out = NOISE_AEAD_LIBSODIUM;
  else return -EINVAL;
  return 0;
}

const char *noise_aead_name(noise_aead a) { return a == NOISE_AEAD_LIBSODIUM ? "libsodium" : "openssl"; }

/* Changing only the nonce of a keyed context. EVP_EncryptInit_ex / EVP_DecryptInit_ex with the
 * nonce cost ~1 k instructions a message in OpenSSL 3.0 (the generic init, with
 * EVP_CIPHER_CTX_get_iv_length's parameter lookups ~460); its ChaCha20-Poly1305 provider also
 * takes the whole 12-byte nonce as the settable OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED, and the MAC
 * is keyed afresh with the nonce in force at the next Update or Final after a Final — so a
 * context whose last message was finished seals and opens the next one exactly as after an
 * init, ~670 instructions a message less (callgrind). Nothing of TLS enters the MAC: that is
 * OSSL_CIPHER_PARAM_AEAD_TLS1_AAD, never set here. That behaviour is the provider's, not a
 * documented contract, so it is checked once per process on known messages (seal and open, a
 * message after a finished one, an empty one, against the init path's bytes and tags) and used
 * only when every byte agrees; otherwise the init path stays. */
static bool g_nonce_param;
static pthread_once_t g_nonce_param_once = PTHREAD_ONCE_INIT;

static int evp_set_nonce(EVP_CIPHER_CTX *x, bool by_param, bool encrypt, const uint8_t nonce[12]) {
  if (!by_param)
    return (encrypt ? EVP_EncryptInit_ex(x, NULL, NULL, NULL, nonce) : EVP_DecryptInit_ex(x, NULL, NULL, NULL, nonce)) == 1
               ? 0
               : -EIO;
  OSSL_PARAM p[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED, (void *)nonce, 12),
                     OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_set_params(x, p) == 1 ? 0 : -EIO;
}

static int evp_seal_with(EVP_CIPHER_CTX *x, bool by_param, const uint8_t nonce[12], const uint8_t *pt, size_t n,
                         uint8_t *out) {
  int l1 = 0, l2 = 0;
  if (evp_set_nonce(x, by_param, true, nonce) != 0 || (n && EVP_EncryptUpdate(x, out, &l1, pt, (int)n) != 1) ||
      EVP_EncryptFinal_ex(x, out + l1, &l2) != 1 || (size_t)(l1 + l2) != n)
    return -EIO;
  OSSL_PARAM tag[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out + n, NOISE_TAG_LEN),
                       OSSL_PARAM_construct_end()};
  if (EVP_CIPHER_CTX_get_params(x, tag) != 1) return -EIO;
  return 0;
}

/* Plaintext is written to out before the tag is checked; callers only expose it on 0. */
static int evp_open_with(EVP_CIPHER_CTX *x, bool by_param, const uint8_t nonce[12], const uint8_t *ct, size_t n,
                         uint8_t *out) {
  int l1 = 0, l2 = 0;
  size_t m = n - NOISE_TAG_LEN;
  if (evp_set_nonce(x, by_param, false, nonce) != 0) return -EIO;
  if (m && EVP_DecryptUpdate(x, out, &l1, ct, (int)m) != 1) return -EBADMSG;
  OSSL_PARAM tag[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)(ct + m), NOISE_TAG_LEN),
                       OSSL_PARAM_construct_end()};
  if (EVP_CIPHER_CTX_set_params(x, tag) != 1) return -EIO;
  if (EVP_DecryptFinal_ex(x, out + l1, &l2) != 1) return -EBADMSG;
  return 0;
}

static void nonce_param_probe(void) {
  static const uint8_t key[32] = {7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2, 3, 5, 3, 6, 0, 2, 8, 7, 4, 7, 1, 3, 5, 2, 6, 6};
  static const size_t sizes[] = {100, 0, 1, 300, 64, 17}; /* the first right after the key */
  uint8_t pt[300], a[300 + NOISE_TAG_LEN], b[300 + NOISE_TAG_LEN], back[300];
  for (size_t i = 0; i < sizeof pt; i++) pt[i] = (uint8_t)(i * 29 + 5);
  EVP_CIPHER_CTX *ei = EVP_CIPHER_CTX_new(), *ep = EVP_CIPHER_CTX_new(), *dp = EVP_CIPHER_CTX_new();
  bool ok = ei && ep && dp && EVP_EncryptInit_ex(ei, EVP_chacha20_poly1305(), NULL, key, NULL) == 1 &&
            EVP_EncryptInit_ex(ep, EVP_chacha20_poly1305(), NULL, key, NULL) == 1 &&
            EVP_DecryptInit_ex(dp, EVP_chacha20_poly1305(), NULL, key, NULL) == 1;
  for (size_t k = 0; ok && k < sizeof sizes / sizeof sizes[0]; k++) {
    uint8_t nonce[12] = {0, 0, 0, 0, (uint8_t)(k * 3 + 1), 0, 0, 0, 0, 0, 0, (uint8_t)k};
    size_t n = sizes[k];
    ok = evp_seal_with(ei, false, nonce, pt, n, a) == 0 && evp_seal_with(ep, true, nonce, pt, n, b) == 0 &&
         memcmp(a, b, n + NOISE_TAG_LEN) == 0 && evp_open_with(dp, true, nonce, a, n + NOISE_TAG_LEN, back) == 0 &&
         (n == 0 || memcmp(back, pt, n) == 0);
    if (ok && k == 2) { /* a forged tag is refused, and the context goes on (the next message) */
      a[n] ^= 1;
      ok = evp_open_with(dp, true, nonce, a, n + NOISE_TAG_LEN, back) == -EBADMSG;
    }
  }
  EVP_CIPHER_CTX_free(ei);
  EVP_CIPHER_CTX_free(ep);
  EVP_CIPHER_CTX_free(dp);
  g_nonce_param = ok;
}

bool noise_openssl_nonce_by_param(void) {
  pthread_once(&g_nonce_param_once, nonce_param_probe);
  return g_nonce_param;
}

/* Keys a transport cipher. The transport phase moves all the bulk data: with the OpenSSL
 * backend (the default; several times faster than libsodium's on CPUs with AVX2 / AVX-512) it
 * gets an EVP context keyed once; with libsodium it uses the key directly. */
static int cs_init_transport(cstate *c, const uint8_t k[32], bool encrypt, noise_aead aead) {
  cs_init_key(c, k);
  if (aead == NOISE_AEAD_LIBSODIUM) return 0;
  CHECK(aead == NOISE_AEAD_OPENSSL);
  c->nonce_param = noise_openssl_nonce_by_param();
  c->evp = EVP_CIPHER_CTX_new();
  if (!c->evp) return -ENOMEM;
  int ok = encrypt ? EVP_EncryptInit_ex(c->evp, EVP_chacha20_poly1305(), NULL, k, NULL)
                   : EVP_DecryptInit_ex(c->evp, EVP_chacha20_poly1305(), NULL, k, NULL);
  if (ok != 1) {
    EVP_CIPHER_CTX_free(c->evp);
    c->evp = NULL;
    return -EIO;
  }
  return 0;
}

/* The tag is read and set through the provider's parameters (OSSL_CIPHER_PARAM_AEAD_TAG)
 * rather than EVP_CIPHER_CTX_ctrl, which only translates EVP_CTRL_AEAD_GET_TAG / SET_TAG into
 * the same parameter (~100 instructions a message less, callgrind; the same bytes on the wire);
 * the nonce as evp_set_nonce says. */
static int evp_seal(cstate *c, const uint8_t nonce[12], const uint8_t *pt, size_t n, uint8_t *out) {
  return evp_seal_with(c->evp, c->nonce_param, nonce, pt, n, out);
}

static int evp_open(cstate *c, const uint8_t nonce[12], const uint8_t *ct, size_t n, uint8_t *out) {
  return evp_open_with(c->evp, c->nonce_param, nonce, ct, n, out);
}

static void nonce_of(uint64_t n, uint8_t nonce[12]) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(n >> (8 * i)); /* little-endian counter */
}

/* out gets n + 16 bytes (or n bytes copied when there is no key yet). out may equal pt. */
static int cs_encrypt(cstate *c, const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t n, uint8_t *out) {
  if (!c->has_key) {
    if (out != pt && n) memmove(out, pt, n);
    return 0;
  }
  if (c->n == UINT64_MAX) return -EOVERFLOW; /* 2^64-1 is reserved: the nonce is exhausted */
  uint8_t nonce[12];
  nonce_of(c->n, nonce);
  if (c->evp) {
    int rc = evp_seal(c, nonce, pt, n, out); /* transport: no associated data */
    if (rc) return rc;
  } else {
    unsigned long long clen;
    crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, pt, n, ad, adlen, NULL, nonce, c->k);
  }
  c->n++;
  return 0;
}

/* ct is n bytes (>= 16 with a key); out gets n - 16 bytes. out may equal ct. */
static int cs_decrypt(cstate *c, const uint8_t *ad, size_t adlen, const uint8_t *ct, size_t n, uint8_t *out) {
  if (!c->has_key) {
    if (out != ct && n) memmove(out, ct, n);
    return 0;
  }
  if (n < NOISE_TAG_LEN) return -EPROTO;
  if (c->n == UINT64_MAX) return -EOVERFLOW;
  uint8_t nonce[12];
  nonce_of(c->n, nonce);
  if (c->evp) {
    int rc = evp_open(c, nonce, ct, n, out);
    if (rc) return rc;
  } else {
    unsigned long long mlen;
    if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, ct, n, ad, adlen, nonce, c->k) != 0)
      return -EBADMSG;
  }
  c->n++;
  return 0;
}

/* ---------------------------------------------------------------------------------------
 * SymmetricState + HandshakeState for XX (§5.2, §5.3) */

struct noise_xx {
  bool initiator;
  int msg_index; /* 0..2 handshake messages, 3 = transport */
  uint8_t ck[HASHLEN], h[HASHLEN];
  cstate cs;
  uint8_t s_sk[32], s_pk[32], e_sk[32], e_pk[32], rs[32], re[32];
  bool e_fixed;
  noise_aead aead; /* backend of tx and rx */
  cstate tx, rx;
};

static void mix_hash2(uint8_t h[HASHLEN], const uint8_t *a, size_t an) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  crypto_hash_sha256_update(&st, h, HASHLEN);
  crypto_hash_sha256_update(&st, a, an);
  crypto_hash_sha256_final(&st, h);
}

static void hmac(const uint8_t key[32], const uint8_t *a, size_t an, const uint8_t *b, size_t bn, uint8_t out[32]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, 32);
  crypto_auth_hmacsha256_update(&st, a, an);
  if (bn) crypto_auth_hmacsha256_update(&st, b, bn);
  crypto_auth_hmacsha256_final(&st, out);
}

/* HKDF(chaining_key, ikm) with two outputs (§4.3). */
static void hkdf2(const uint8_t ck[32], const uint8_t *ikm, size_t n, uint8_t o1[32], uint8_t o2[32]) {
  uint8_t temp[32];
  const uint8_t one = 1, two = 2;
  hmac(ck, ikm, n, NULL, 0, temp);
  hmac(temp, &one, 1, NULL, 0, o1);
  hmac(temp, o1, 32, &two, 1, o2);
  sodium_memzero(temp, sizeof temp);
}

static void mix_key(noise_xx *x, const uint8_t ikm[DHLEN]) {
  uint8_t ck[32], k[32];
  hkdf2(x->ck, ikm, DHLEN, ck, k);
  memcpy(x->ck, ck, 32);
  cs_init_key(&x->cs, k);
  sodium_memzero(k, sizeof k);
}

static int encrypt_and_hash(noise_xx *x, const uint8_t *pt, size_t n, uint8_t *out, size_t *outlen) {
  int rc = cs_encrypt(&x->cs, x->h, HASHLEN, pt, n, out);
  if (rc) return rc;
  *outlen = n + (x->cs.has_key ? NOISE_TAG_LEN : 0);
  mix_hash2(x->h, out, *outlen);
  return 0;
}

/* The new h covers the ciphertext, so compute it before a possibly in-place decryption. */
static int decrypt_and_hash(noise_xx *x, const uint8_t *ct, size_t n, uint8_t *out, size_t *outlen) {
  uint8_t h2[HASHLEN];
  memcpy(h2, x->h, HASHLEN);
  mix_hash2(h2, ct, n);
  int rc = cs_decrypt(&x->cs, x->h, HASHLEN, ct, n, out);
  if (rc) return rc;
  *outlen = n - (x->cs.has_key ? NOISE_TAG_LEN : 0);
  memcpy(x->h, h2, HASHLEN);
  return 0;
}

static int dh(const uint8_t sk[32], const uint8_t pk[32], uint8_t out[32]) {
  /* libsodium refuses low-order points (an all-zero shared secret). */
  return crypto_scalarmult(out, sk, pk) == 0 ? 0 : -EPROTO;
}

static int dh_mix(noise_xx *x, const uint8_t sk[32], const uint8_t pk[32]) {
  uint8_t shared[32];
  int rc = dh(sk, pk, shared);
  if (!rc) mix_key(x, shared);
  sodium_memzero(shared, sizeof shared);
  return rc;
}

static int split(noise_xx *x) {
  CHECK(x->msg_index == 3); /* after the third handshake message, once */
  uint8_t k1[32], k2[32];
  hkdf2(x->ck, NULL, 0, k1, k2);
  int rc = cs_init_transport(x->initiator ? &x->tx : &x->rx, k1, x->initiator, x->aead);
  if (!rc) rc = cs_init_transport(x->initiator ? &x->rx : &x->tx, k2, !x->initiator, x->aead);
  sodium_memzero(k1, sizeof k1);
  sodium_memzero(k2, sizeof k2);
  sodium_memzero(&x->cs, sizeof x->cs);
  sodium_memzero(x->e_sk, sizeof x->e_sk);
  return rc;
}

/* Frees the transport contexts and zeroes every secret. */
static void xx_wipe(noise_xx *x) {
  cs_wipe(&x->tx);
  cs_wipe(&x->rx);
  sodium_memzero(x, sizeof *x);
}

static void xx_init(noise_xx *x, bool initiator, const uint8_t *prologue, size_t plen, const uint8_t s_sk[32],
                    const uint8_t *e_sk, noise_aead aead) {
  memset(x, 0, sizeof *x);
  x->initiator = initiator;
  x->aead = aead;
  memcpy(x->h, protocol_name, HASHLEN);
  memcpy(x->ck, x->h, HASHLEN);
  mix_hash2(x->h, prologue, plen);
  memcpy(x->s_sk, s_sk, 32);
  crypto_scalarmult_base(x->s_pk, x->s_sk);
  if (e_sk) {
    memcpy(x->e_sk, e_sk, 32);
    x->e_fixed = true;
  }
}

static void xx_make_ephemeral(noise_xx *x) {
  if (!x->e_fixed) randombytes_buf(x->e_sk, 32);
  crypto_scalarmult_base(x->e_pk, x->e_sk);
}

/* Bytes noise_xx_write() produces for a payload of n bytes at the current step. */
static size_t xx_write_len(const noise_xx *x, size_t n) {
  switch (x->msg_index) {
  case 0: return DHLEN + n;
  case 1: return XX_MSG2_OVERHEAD + n;
  case 2: return XX_MSG3_OVERHEAD + n;
  default: return n + NOISE_TAG_LEN;
  }
}

static bool xx_my_turn(const noise_xx *x) { return (x->msg_index % 2 == 0) == x->initiator; }

int noise_xx_write(noise_xx *x, const uint8_t *payload, size_t n, uint8_t *out, size_t cap, size_t *outlen) {
  size_t need = xx_write_len(x, n), o = 0, l;
  int rc;
  if (need > cap) return -ENOSPC;
  if (x->msg_index >= 3) {
    if ((rc = cs_encrypt(&x->tx, NULL, 0, payload, n, out))) return rc;
    *outlen = need;
    return 0;
  }
  if (!xx_my_turn(x)) return -EPROTO;
  if (x->msg_index == 0 || x->msg_index == 1) { /* e */
    xx_make_ephemeral(x);
    memcpy(out, x->e_pk, DHLEN);
    mix_hash2(x->h, x->e_pk, DHLEN);
    o = DHLEN;
  }
  if (x->msg_index == 1) {
    if ((rc = dh_mix(x, x->e_sk, x->re))) return rc; /* ee */
    if ((rc = encrypt_and_hash(x, x->s_pk, DHLEN, out + o, &l))) return rc; /* s */
    o += l;
    if ((rc = dh_mix(x, x->s_sk, x->re))) return rc; /* es (responder side) */
  } else if (x->msg_index == 2) {
    if ((rc = encrypt_and_hash(x, x->s_pk, DHLEN, out + o, &l))) return rc; /* s */
    o += l;
    if ((rc = dh_mix(x, x->s_sk, x->re))) return rc; /* se (initiator side) */
  }
  if ((rc = encrypt_and_hash(x, payload, n, out + o, &l))) return rc;
  o += l;
  *outlen = o;
  if (++x->msg_index == 3) return split(x);
  return 0;
}

int noise_xx_read(noise_xx *x, const uint8_t *msg, size_t n, uint8_t *payload, size_t cap, size_t *outlen) {
  size_t o = 0, l;
  int rc;
  if (x->msg_index >= 3) {
    if (n < NOISE_TAG_LEN) return -EPROTO;
    if (n - NOISE_TAG_LEN > cap) return -ENOSPC;
    if ((rc = cs_decrypt(&x->rx, NULL, 0, msg, n, payload))) return rc;
    *outlen = n - NOISE_TAG_LEN;
    return 0;
  }
  if (xx_my_turn(x)) return -EPROTO;
  size_t min = x->msg_index == 0 ? DHLEN : x->msg_index == 1 ? XX_MSG2_OVERHEAD : XX_MSG3_OVERHEAD;
  if (n < min) return -EPROTO;
  if (n - min > cap) return -ENOSPC;
  if (x->msg_index == 0 || x->msg_index == 1) { /* e */
    memcpy(x->re, msg, DHLEN);
    mix_hash2(x->h, x->re, DHLEN);
    o = DHLEN;
  }
  if (x->msg_index == 1) {
    if ((rc = dh_mix(x, x->e_sk, x->re))) return rc; /* ee */
    uint8_t rs[DHLEN];
    if ((rc = decrypt_and_hash(x, msg + o, DHLEN + NOISE_TAG_LEN, rs, &l))) return rc; /* s */
    memcpy(x->rs, rs, DHLEN);
    o += DHLEN + NOISE_TAG_LEN;
    if ((rc = dh_mix(x, x->e_sk, x->rs))) return rc; /* es (initiator side) */
  } else if (x->msg_index == 2) {
    uint8_t rs[DHLEN];
    if ((rc = decrypt_and_hash(x, msg + o, DHLEN + NOISE_TAG_LEN, rs, &l))) return rc; /* s */
    memcpy(x->rs, rs, DHLEN);
    o += DHLEN + NOISE_TAG_LEN;
    if ((rc = dh_mix(x, x->e_sk, x->rs))) return rc; /* se (responder side) */
  }
  if ((rc = decrypt_and_hash(x, msg + o, n - o, payload, outlen))) return rc;
  if (++x->msg_index == 3) return split(x);
  return 0;
}

int noise_xx_new(bool initiator, const uint8_t *prologue, size_t prologue_len, const uint8_t s_sk[32],
                 const uint8_t *e_sk, noise_aead aead, noise_xx **out) {
  if (aead != NOISE_AEAD_OPENSSL && aead != NOISE_AEAD_LIBSODIUM) return -EINVAL;
  if (sodium_init() < 0) return -EIO;
  noise_xx *x = malloc(sizeof *x);
  if (!x) return -ENOMEM;
  xx_init(x, initiator, prologue, prologue_len, s_sk, e_sk, aead);
  *out = x;
  return 0;
}

void noise_xx_free(noise_xx *x) {
  if (!x) return;
  xx_wipe(x);
  free(x);
}

void noise_xx_handshake_hash(const noise_xx *x, uint8_t h[32]) { memcpy(h, x->h, 32); }

/* ---------------------------------------------------------------------------------------
 * libp2p session */

enum { ST_I_START, ST_I_WAIT2, ST_R_WAIT1, ST_R_WAIT3, ST_ESTABLISHED, ST_FAILED };

struct noise_session {
  noise_xx xx;
  int state;
  int err;
  bool initiator;
  noise_aead aead;
  keys_private id;
  bool has_expected;
  peerid expected;
  char muxers[NOISE_MAX_MUXERS][NOISE_MUXER_NAME_MAX + 1];
  size_t n_muxers;
  char rmuxers[NOISE_MAX_MUXERS][NOISE_MUXER_NAME_MAX + 1];
  size_t n_rmuxers;
  const char *negotiated;
  peerid remote_id;
  bool remote_proved; /* remote_id came from a valid signed payload */
  keys_public remote_key;
  uint8_t *rx; /* partial frame: 2-byte header + body, allocated on first need */
  size_t rx_len;
};

int noise_session_new(const noise_config *cfg, noise_session **out) {
  if (!cfg || !cfg->identity || cfg->identity->type != KEYS_TYPE_ED25519) return -EINVAL;
  if (cfg->n_muxers > NOISE_MAX_MUXERS || (cfg->n_muxers && !cfg->muxers)) return -EINVAL;
  if (cfg->aead != NOISE_AEAD_OPENSSL && cfg->aead != NOISE_AEAD_LIBSODIUM) return -EINVAL;
  for (size_t i = 0; i < cfg->n_muxers; i++)
    if (!cfg->muxers[i] || !cfg->muxers[i][0] || strlen(cfg->muxers[i]) > NOISE_MUXER_NAME_MAX) return -EINVAL;
  if (sodium_init() < 0) return -EIO;
  noise_session *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  uint8_t s_sk[32];
  if (cfg->test_static_sk) memcpy(s_sk, cfg->test_static_sk, 32);
  else randombytes_buf(s_sk, 32);
  xx_init(&s->xx, cfg->initiator, NULL, 0, s_sk, cfg->test_ephemeral_sk, cfg->aead); /* libp2p: empty prologue */
  sodium_memzero(s_sk, sizeof s_sk);
  s->initiator = cfg->initiator;
  s->aead = cfg->aead;
  s->state = cfg->initiator ? ST_I_START : ST_R_WAIT1;
  s->id = *cfg->identity;
  if (cfg->expected_remote) {
    s->has_expected = true;
    s->expected = *cfg->expected_remote;
  }
  for (size_t i = 0; i < cfg->n_muxers; i++) strcpy(s->muxers[i], cfg->muxers[i]);
  s->n_muxers = cfg->n_muxers;
  *out = s;
  return 0;
}

void noise_session_free(noise_session *s) {
  if (!s) return;
  if (s->rx) {
    sodium_memzero(s->rx, 2 + NOISE_MAX_FRAME);
    free(s->rx);
  }
  xx_wipe(&s->xx);
  sodium_memzero(s, sizeof *s);
  free(s);
}

static int fail(noise_session *s, int rc) {
  if (s->state != ST_FAILED) {
    s->state = ST_FAILED;
    s->err = rc;
    xx_wipe(&s->xx);
  }
  return s->err;
}

/* NoiseHandshakePayload{identity_key, identity_sig, extensions{stream_muxers}}. */
static int build_payload(noise_session *s, uint8_t *out, size_t cap, size_t *n) {
  uint8_t pk[KEYS_PUBLIC_PB_MAX], sig[KEYS_ED25519_SIG_LEN];
  uint8_t tosign[sizeof STATIC_KEY_PREFIX - 1 + DHLEN];
  size_t pkn;
  keys_public kp;
  keys_private_public(&s->id, &kp);
  int rc = keys_public_encode(&kp, pk, sizeof pk, &pkn);
  if (rc) return rc;
  memcpy(tosign, STATIC_KEY_PREFIX, sizeof STATIC_KEY_PREFIX - 1);
  memcpy(tosign + sizeof STATIC_KEY_PREFIX - 1, s->xx.s_pk, DHLEN);
  if ((rc = keys_private_sign(&s->id, tosign, sizeof tosign, sig))) return rc;
  Pb__NoiseHandshakePayload m = PB__NOISE_HANDSHAKE_PAYLOAD__INIT;
  Pb__NoiseExtensions ext = PB__NOISE_EXTENSIONS__INIT;
  char *names[NOISE_MAX_MUXERS];
  m.has_identity_key = 1;
  m.identity_key.data = pk;
  m.identity_key.len = pkn;
  m.has_identity_sig = 1;
  m.identity_sig.data = sig;
  m.identity_sig.len = sizeof sig;
  if (s->n_muxers) {
    for (size_t i = 0; i < s->n_muxers; i++) names[i] = s->muxers[i];
    ext.n_stream_muxers = s->n_muxers;
    ext.stream_muxers = names;
    m.extensions = &ext;
  }
  size_t sz = pb__noise_handshake_payload__get_packed_size(&m);
  if (sz > cap) return -E2BIG;
  *n = pb__noise_handshake_payload__pack(&m, out);
  return 0;
}

/* Checks the remote payload: key, signature over its static key, expected PeerId; keeps
 * its muxer list. Early data is only used once this returned 0. */
static int check_payload(noise_session *s, const uint8_t *p, size_t n) {
  Pb__NoiseHandshakePayload *m = pb__noise_handshake_payload__unpack(NULL, n, p);
  if (!m) return -EPROTO;
  int rc = -EACCES;
  uint8_t tosign[sizeof STATIC_KEY_PREFIX - 1 + DHLEN];
  if (!m->has_identity_key || !m->has_identity_sig) goto out;
  if (keys_public_decode(m->identity_key.data, m->identity_key.len, &s->remote_key)) goto out;
  memcpy(tosign, STATIC_KEY_PREFIX, sizeof STATIC_KEY_PREFIX - 1);
  memcpy(tosign + sizeof STATIC_KEY_PREFIX - 1, s->xx.rs, DHLEN);
  if (keys_public_verify(&s->remote_key, tosign, sizeof tosign, m->identity_sig.data, m->identity_sig.len)) goto out;
  if (peerid_from_public(&s->remote_key, &s->remote_id)) goto out;
  s->remote_proved = true;
  if (s->has_expected && !peerid_equal(&s->expected, &s->remote_id)) goto out;
  s->n_rmuxers = 0;
  if (m->extensions) {
    for (size_t i = 0; i < m->extensions->n_stream_muxers && s->n_rmuxers < NOISE_MAX_MUXERS; i++) {
      const char *name = m->extensions->stream_muxers[i];
      size_t l = name ? strnlen(name, NOISE_MUXER_NAME_MAX + 1) : 0;
      if (l == 0 || l > NOISE_MUXER_NAME_MAX) continue; /* not a muxer we could support anyway */
      memcpy(s->rmuxers[s->n_rmuxers], name, l + 1);
      s->n_rmuxers++;
    }
  }
  rc = 0;
out:
  pb__noise_handshake_payload__free_unpacked(m, NULL);
  return rc;
}

/* Inlined muxer negotiation: the first of the initiator's list the responder supports. */
static int negotiate_muxer(noise_session *s) {
  s->negotiated = NULL;
  if (!s->n_muxers || !s->n_rmuxers) return 0;
  size_t ni = s->initiator ? s->n_muxers : s->n_rmuxers;
  size_t nr = s->initiator ? s->n_rmuxers : s->n_muxers;
  for (size_t i = 0; i < ni; i++) {
    const char *want = s->initiator ? s->muxers[i] : s->rmuxers[i];
    for (size_t j = 0; j < nr; j++) {
      const char *have = s->initiator ? s->rmuxers[j] : s->muxers[j];
      if (strcmp(want, have) == 0) {
        /* point at our own copy */
        s->negotiated = s->initiator ? s->muxers[i] : s->muxers[j];
        return 0;
      }
    }
  }
  return -ENOPROTOOPT;
}

/* Appends one framed handshake message carrying payload to wire_out. */
static int write_handshake(noise_session *s, const uint8_t *payload, size_t n, buf *wire_out) {
  size_t len = xx_write_len(&s->xx, n), outlen;
  if (len > NOISE_MAX_FRAME) return -EPROTO;
  uint8_t *p;
  int rc = buf_reserve(wire_out, 2 + len, &p);
  if (rc) return rc;
  if ((rc = noise_xx_write(&s->xx, payload, n, p + 2, len, &outlen))) return rc;
  p[0] = (uint8_t)(outlen >> 8);
  p[1] = (uint8_t)outlen;
  buf_commit(wire_out, 2 + outlen);
  return 0;
}

static int write_payload_message(noise_session *s, buf *wire_out) {
  uint8_t payload[1024];
  size_t n;
  int rc = build_payload(s, payload, sizeof payload, &n);
  return rc ? rc : write_handshake(s, payload, n, wire_out);
}

int noise_start(noise_session *s, buf *wire_out) {
  if (s->state == ST_FAILED) return s->err;
  if (s->state != ST_I_START) return 0;
  int rc = write_handshake(s, NULL, 0, wire_out); /* -> e, empty payload */
  if (rc) return fail(s, rc);
  s->state = ST_I_WAIT2;
  return 0;
}

/* Handles one complete handshake message. Returns events or a negative error. */
static int on_handshake_message(noise_session *s, const uint8_t *f, size_t fl, buf *wire_out) {
  uint8_t *payload = malloc(fl ? fl : 1);
  if (!payload) return -ENOMEM;
  size_t pn;
  int rc = noise_xx_read(&s->xx, f, fl, payload, fl, &pn);
  int ev = 0;
  if (rc) goto out;
  switch (s->state) {
  case ST_R_WAIT1: /* -> e: its payload is unauthenticated and carries nothing for us */
    if ((rc = write_payload_message(s, wire_out))) goto out; /* <- e, ee, s, es */
    s->state = ST_R_WAIT3;
    break;
  case ST_I_WAIT2: /* <- e, ee, s, es */
    if ((rc = check_payload(s, payload, pn)) || (rc = negotiate_muxer(s))) goto out;
    if ((rc = write_payload_message(s, wire_out))) goto out; /* -> s, se */
    s->state = ST_ESTABLISHED;
    ev = NOISE_EV_ESTABLISHED;
    break;
  case ST_R_WAIT3: /* -> s, se */
    if ((rc = check_payload(s, payload, pn)) || (rc = negotiate_muxer(s))) goto out;
    s->state = ST_ESTABLISHED;
    ev = NOISE_EV_ESTABLISHED;
    break;
  default: rc = -EPROTO;
  }
out:
  sodium_memzero(payload, fl ? fl : 1);
  free(payload);
  if (!rc && ev) {
    /* Long-term secrets are not needed once the transport keys exist. */
    keys_private_wipe(&s->id);
    sodium_memzero(s->xx.s_sk, sizeof s->xx.s_sk);
  }
  return rc ? rc : ev;
}

static int on_transport_message(noise_session *s, const uint8_t *f, size_t fl, buf *plain_out) {
  if (fl < NOISE_TAG_LEN) return -EPROTO;
  uint8_t *p;
  int rc = buf_reserve(plain_out, fl - NOISE_TAG_LEN, &p);
  if (rc) return rc;
  size_t n;
  if ((rc = noise_xx_read(&s->xx, f, fl, p, fl - NOISE_TAG_LEN, &n))) return rc;
  buf_commit(plain_out, n);
  return 0;
}

/* Takes the next complete frame from the input (zero-copy) or the partial-frame buffer.
 * 1: frame ready in *f, *fl (*from_rx tells which); 0: all input buffered, need more. */
static int next_frame(noise_session *s, const uint8_t **in, size_t *n, const uint8_t **f, size_t *fl, bool *from_rx) {
  if (s->rx_len == 0 && *n >= 2) {
    size_t len = (size_t)(*in)[0] << 8 | (*in)[1];
    if (*n >= 2 + len) {
      *f = *in + 2;
      *fl = len;
      *in += 2 + len;
      *n -= 2 + len;
      *from_rx = false;
      return 1;
    }
  }
  if (!s->rx && !(s->rx = malloc(2 + NOISE_MAX_FRAME))) return -ENOMEM;
  if (s->rx_len < 2) {
    size_t take = 2 - s->rx_len < *n ? 2 - s->rx_len : *n;
    memcpy(s->rx + s->rx_len, *in, take);
    s->rx_len += take, *in += take, *n -= take;
    if (s->rx_len < 2) return 0;
  }
  size_t total = 2 + ((size_t)s->rx[0] << 8 | s->rx[1]);
  CHECK(total <= 2 + NOISE_MAX_FRAME && s->rx_len <= total); /* the partial frame fits rx */
  size_t take = total - s->rx_len < *n ? total - s->rx_len : *n;
  memcpy(s->rx + s->rx_len, *in, take);
  s->rx_len += take, *in += take, *n -= take;
  if (s->rx_len < total) return 0;
  *f = s->rx + 2;
  *fl = total - 2;
  *from_rx = true;
  return 1;
}

int noise_feed(noise_session *s, const uint8_t *in, size_t n, buf *wire_out, buf *plain_out) {
  if (s->state == ST_FAILED) return s->err;
  if (s->state == ST_I_START && n) return fail(s, -EPROTO); /* the initiator speaks first */
  int events = 0;
  while (n > 0) {
    const uint8_t *f;
    size_t fl;
    bool from_rx;
    int rc = next_frame(s, &in, &n, &f, &fl, &from_rx);
    if (rc < 0) return fail(s, rc);
    if (rc == 0) break;
    if (s->state == ST_ESTABLISHED) rc = on_transport_message(s, f, fl, plain_out);
    else rc = on_handshake_message(s, f, fl, wire_out);
    if (from_rx) s->rx_len = 0;
    if (rc < 0) return fail(s, rc);
    events |= rc;
  }
  return events;
}

int noise_encrypt(noise_session *s, const uint8_t *in, size_t n, buf *wire_out) {
  if (s->state == ST_FAILED) return s->err;
  if (s->state != ST_ESTABLISHED) return -ENOTCONN;
  size_t frames = (n + NOISE_MAX_PLAINTEXT - 1) / NOISE_MAX_PLAINTEXT;
  /* All or nothing: check room for every frame before writing any. */
  if (n + frames * (2 + NOISE_TAG_LEN) > buf_room(wire_out)) return -E2BIG;
  if (frames > UINT64_MAX - s->xx.tx.n) return fail(s, -EOVERFLOW);
  CHECK(s->xx.msg_index >= 3 && s->xx.tx.has_key); /* established: transport keys exist */
  while (n > 0) {
    size_t chunk = n < NOISE_MAX_PLAINTEXT ? n : NOISE_MAX_PLAINTEXT;
    uint8_t *p;
    int rc = buf_reserve(wire_out, 2 + chunk + NOISE_TAG_LEN, &p);
    if (rc) return fail(s, rc);
    if ((rc = cs_encrypt(&s->xx.tx, NULL, 0, in, chunk, p + 2))) return fail(s, rc);
    size_t fl = chunk + NOISE_TAG_LEN;
    p[0] = (uint8_t)(fl >> 8);
    p[1] = (uint8_t)fl;
    buf_commit(wire_out, 2 + fl);
    in += chunk;
    n -= chunk;
  }
  return 0;
}

bool noise_is_established(const noise_session *s) { return s->state == ST_ESTABLISHED; }
const peerid *noise_remote_peer(const noise_session *s) { return s->state == ST_ESTABLISHED ? &s->remote_id : NULL; }
const peerid *noise_proved_peer(const noise_session *s) { return s->remote_proved ? &s->remote_id : NULL; }
const keys_public *noise_remote_public_key(const noise_session *s) {
  return s->state == ST_ESTABLISHED ? &s->remote_key : NULL;
}
const char *noise_negotiated_muxer(const noise_session *s) {
  return s->state == ST_ESTABLISHED ? s->negotiated : NULL;
}
size_t noise_pending_input(const noise_session *s) { return s->rx_len; }
noise_aead noise_session_aead(const noise_session *s) { return s->aead; }
void noise_test_set_send_nonce(noise_session *s, uint64_t n) { s->xx.tx.n = n; }
