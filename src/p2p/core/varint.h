/* varint.h — unsigned varints as the multiformats unsigned-varint spec defines them.
 *
 * LEB128, at most 9 bytes (so values up to 2^63 - 1), and the encoding MUST be minimal: a
 * decoder rejects trailing zero groups such as 0x80 0x00. Pure functions, no allocation,
 * callable from any thread. */
#ifndef PEERMCP_P2P_CORE_VARINT_H
#define PEERMCP_P2P_CORE_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define VARINT_MAX_BYTES 9
#define VARINT_MAX_VALUE ((uint64_t)INT64_MAX) /* 2^63 - 1, the largest 9-byte value */

/* Number of bytes varint_encode() writes for v (1..9), or 0 if v > VARINT_MAX_VALUE. */
size_t varint_len(uint64_t v);

/* Writes v into out (room for VARINT_MAX_BYTES); returns bytes written, 0 if v is too big. */
size_t varint_encode(uint64_t v, uint8_t out[VARINT_MAX_BYTES]);

/* Reads one varint from p[0..len). On success stores the value and the bytes used.
 * Returns 0; -EAGAIN if the input ends inside the varint (feed more and retry);
 * -EOVERFLOW if it runs past 9 bytes; -EINVAL if the encoding is not minimal. */
int varint_decode(const uint8_t *p, size_t len, uint64_t *out, size_t *used)
    __attribute__((warn_unused_result));

/* A message prefixed with its varint length (libp2p's framing for identify, relay, DCUtR,
 * AutoNAT) at the front of in[0..n). 0: *msg / *msg_len are the body, *consumed prefix + body;
 * -EAGAIN: incomplete; -EMSGSIZE: the declared length is over max; -EINVAL: bad varint. */
int varint_frame_parse(const uint8_t *in, size_t n, size_t max, const uint8_t **msg, size_t *msg_len,
                       size_t *consumed) __attribute__((warn_unused_result));

#endif
