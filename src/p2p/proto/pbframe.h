/* pbframe.h — varint-length-prefixed protobuf messages, the framing libp2p's small protocols
 * share (identify, AutoNAT, circuit relay v2, DCUtR): varint(len) ‖ protobuf body, with a
 * per-protocol ceiling on len. One writer (pack a protobuf-c message behind its prefix) and one
 * reader (find one frame at the front of received bytes); the protocol codecs call these
 * instead of each framing by hand. Sans-I/O, no allocation except growing the caller's buf.
 * Thread-safe. */
#ifndef PEERMCP_P2P_PROTO_PBFRAME_H
#define PEERMCP_P2P_PROTO_PBFRAME_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Appends varint(size) ‖ msg packed to out. 0; -E2BIG if the packed size is over max (nothing
 * is written) or over out's ceiling; -ENOMEM. */
int pbframe_pack(const ProtobufCMessage *msg, size_t max, buf *out) __attribute__((warn_unused_result));

/* One frame at the front of in[0..n). 0: *body / *body_len are the message, *consumed is prefix
 * + body; -EAGAIN: incomplete (the prefix or the body; feed more bytes); -EMSGSIZE: the declared
 * length is over max (checked before waiting for the body); -EINVAL: a bad varint (not minimal,
 * or longer than 9 bytes). */
int pbframe_parse(const uint8_t *in, size_t n, size_t max, const uint8_t **body, size_t *body_len, size_t *consumed)
    __attribute__((warn_unused_result));

#endif
