/* noise.h — libp2p Noise security handshake and transport, sans-I/O (noise spec r5,
 * Noise Protocol Framework rev 34, Noise_XX_25519_ChaChaPoly_SHA256).
 *
 * The session never touches a socket: the caller feeds bytes received from the wire with
 * noise_feed(), which appends bytes to send (handshake messages) to `wire_out` and
 * decrypted application data to `plain_out`; application data is encrypted with
 * noise_encrypt() into `wire_out`. Frames are 2-byte big-endian length + message, at most
 * 65535 bytes (65519 bytes of plaintext). The handshake payload carries the libp2p identity
 * key and its signature over "noise-libp2p-static-key:" ‖ static X25519 key, plus the
 * NoiseExtensions.stream_muxers list for inlined muxer negotiation.
 *
 * Ownership: noise_session_new() allocates, noise_session_free() frees (and wipes keys).
 * One session is used by one thread at a time (the loop thread). Any negative return is
 * fatal for the session: close the connection. */
#ifndef PEERMCP_P2P_PROTO_NOISE_H
#define PEERMCP_P2P_PROTO_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/keys.h"
#include "p2p/core/peerid.h"
#include "util/buf.h"

#define NOISE_PROTOCOL_ID "/noise"
#define NOISE_MAX_FRAME 65535u
#define NOISE_TAG_LEN 16u
#define NOISE_MAX_PLAINTEXT (NOISE_MAX_FRAME - NOISE_TAG_LEN) /* 65519 */
#define NOISE_MAX_MUXERS 8      /* stream_muxers entries we send or keep */
#define NOISE_MUXER_NAME_MAX 64 /* longest muxer id kept */

typedef struct noise_session noise_session;

/* Which ChaCha20-Poly1305 implementation the transport phase uses: the same algorithm and the
 * same bytes either way. OpenSSL (the default, 0) is several times faster on AVX2/AVX-512 CPUs;
 * the handshake always uses libsodium. */
typedef enum noise_aead { NOISE_AEAD_OPENSSL = 0, NOISE_AEAD_LIBSODIUM = 1 } noise_aead;

/* "openssl" / "libsodium" → *out (0); NULL or "" leave *out unchanged (0); anything else
 * -EINVAL (*out unchanged). */
int noise_aead_parse(const char *name, noise_aead *out) __attribute__((warn_unused_result));
/* "openssl" or "libsodium". */
const char *noise_aead_name(noise_aead a);
/* Whether the OpenSSL backend sets each transport message's nonce through the cipher's
 * parameters (a check run once per process on known messages against the init path) rather
 * than re-initialising the context; the same bytes either way (noise.c). Any thread. */
bool noise_openssl_nonce_by_param(void);

typedef struct noise_config {
  bool initiator;                 /* true on the dialing side */
  const keys_private *identity;   /* signs our static key; copied */
  const peerid *expected_remote;  /* dial: the PeerId we expect (mismatch fails); NULL = any */
  /* Our muxers for NoiseExtensions.stream_muxers, in preference order (e.g. "/yamux/1.0.0");
   * n_muxers = 0 sends no extension and the caller runs multistream-select afterwards. */
  const char *const *muxers;
  size_t n_muxers;
  noise_aead aead;                /* transport-phase AEAD backend (0 = OpenSSL) */
  /* Tests and fuzzing only: fixed X25519 secrets instead of fresh random ones (NULL = random). */
  const uint8_t *test_static_sk;    /* 32 bytes */
  const uint8_t *test_ephemeral_sk; /* 32 bytes */
} noise_config;

/* Returned (OR-ed) by noise_feed()/noise_start() on success. */
enum { NOISE_EV_ESTABLISHED = 1 }; /* the handshake completed during this call */

/* 0, -EINVAL (bad config), -ENOMEM. */
int noise_session_new(const noise_config *cfg, noise_session **out) __attribute__((warn_unused_result));
void noise_session_free(noise_session *s);

/* Initiator: appends handshake message 1 to wire_out. Responder: no-op. Call once, first.
 * Returns >= 0 (events) or negative errno. */
int noise_start(noise_session *s, buf *wire_out) __attribute__((warn_unused_result));

/* Feeds received bytes (any split). Handshake replies go to wire_out; transport data, after
 * the handshake, is decrypted into plain_out. Returns event flags (>= 0) or:
 *   -EPROTO   malformed message (bad length, garbage, oversized, wrong handshake size)
 *   -EBADMSG  decryption/authentication failed (tampering)
 *   -EACCES   bad identity: signature invalid, or PeerId differs from expected_remote
 *   -ENOPROTOOPT  both sides sent stream_muxers and none is common
 *   -EOVERFLOW    nonce exhausted (2^64 - 1 messages)
 *   -E2BIG    wire_out / plain_out would pass their maximum
 * After an error the session is failed and every call returns the same error. */
int noise_feed(noise_session *s, const uint8_t *in, size_t n, buf *wire_out, buf *plain_out)
    __attribute__((warn_unused_result));

/* Encrypts application data (established sessions only), split into frames of at most
 * NOISE_MAX_PLAINTEXT bytes, appended to wire_out. 0, -ENOTCONN (handshake not done),
 * -EOVERFLOW (nonce exhausted), -E2BIG. */
int noise_encrypt(noise_session *s, const uint8_t *in, size_t n, buf *wire_out)
    __attribute__((warn_unused_result));

bool noise_is_established(const noise_session *s);
/* Remote identity, valid once established. */
const peerid *noise_remote_peer(const noise_session *s);
/* The PeerId the remote's signed handshake payload proved, set as soon as it checked out — also
 * when it was not expected_remote and the handshake failed with -EACCES (for error messages
 * that name both ids); NULL before. */
const peerid *noise_proved_peer(const noise_session *s);
const keys_public *noise_remote_public_key(const noise_session *s);
/* The muxer agreed inside the handshake (first of the initiator's list the responder also
 * supports), or NULL when either side sent no list: then negotiate with multistream-select. */
const char *noise_negotiated_muxer(const noise_session *s);
/* Bytes buffered inside the session waiting for the rest of a frame (for accounting). */
size_t noise_pending_input(const noise_session *s);

/* The transport-phase AEAD backend this session was configured with. */
noise_aead noise_session_aead(const noise_session *s);

/* Tests only: sets the next send nonce (to exercise the 2^64-1 limit). */
void noise_test_set_send_nonce(noise_session *s, uint64_t n);

/* --- Raw Noise_XX_25519_ChaChaPoly_SHA256 (no libp2p payload, no framing) -------------
 * The HandshakeState machine the session is built on, exposed so tests can check it
 * against the Noise test vectors (cacophony). Messages alternate initiator/responder; after
 * the third handshake message write/read use the transport ciphers. */
typedef struct noise_xx noise_xx;
/* e_sk NULL = random ephemeral; aead: the transport ciphers' backend. */
int noise_xx_new(bool initiator, const uint8_t *prologue, size_t prologue_len, const uint8_t s_sk[32],
                 const uint8_t *e_sk, noise_aead aead, noise_xx **out) __attribute__((warn_unused_result));
void noise_xx_free(noise_xx *x);
int noise_xx_write(noise_xx *x, const uint8_t *payload, size_t n, uint8_t *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));
int noise_xx_read(noise_xx *x, const uint8_t *msg, size_t n, uint8_t *payload, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));
/* h after the handshake (the channel binding). */
void noise_xx_handshake_hash(const noise_xx *x, uint8_t h[32]);

#endif
