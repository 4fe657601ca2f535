/* multibase.h — the base encodings libp2p text forms need: base58btc (Bitcoin alphabet),
 * base32 (RFC 4648, lower case, no padding), base16, base64url (no padding), and the
 * multibase prefix dispatch ('z', 'b'/'B', 'f'/'F', 'u', 'm').
 *
 * All functions write into caller-owned memory with an explicit capacity and NUL-terminate
 * text output; inputs are bounded by MULTIBASE_MAX_INPUT before any work. Thread-safe. */
#ifndef PEERMCP_P2P_CORE_MULTIBASE_H
#define PEERMCP_P2P_CORE_MULTIBASE_H

#include <stddef.h>
#include <stdint.h>

/* Ceiling on binary input to the encoders and on text input to the decoders (base58 is
 * quadratic, so it must stay small). */
#define MULTIBASE_MAX_INPUT 4096

/* Each returns 0, -ENOSPC if out is too small, -EINVAL on a bad character or length,
 * -E2BIG past MULTIBASE_MAX_INPUT. Text output is NUL-terminated; *outlen excludes the NUL. */
int multibase_base58btc_encode(const uint8_t *in, size_t n, char *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));
int multibase_base58btc_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));
int multibase_base32_encode(const uint8_t *in, size_t n, char *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));
/* Accepts lower or upper case, no padding. */
int multibase_base32_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));

/* Multibase: text = one prefix character + encoding. encode supports 'z' (base58btc),
 * 'b' (base32 lower), 'f' (base16 lower), 'u' (base64url); decode additionally 'B', 'F', 'm'. */
int multibase_encode(char prefix, const uint8_t *in, size_t n, char *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));
int multibase_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *outlen)
    __attribute__((warn_unused_result));

#endif
