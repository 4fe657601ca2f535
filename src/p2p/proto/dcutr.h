/* dcutr.h — Direct Connection Upgrade through Relay messages (libp2p/specs relay/DCUtR.md):
 * HolePunch {type CONNECT = 100 | SYNC = 300, ObsAddrs}, varint-length framed (p2p/proto/
 * pbframe.h), at most DCUTR_MAX_MSG (the spec's 4 KiB). Sans-I/O; the exchange itself (who sends what, the RTT
 * timer, the dials) is in p2p/host/svc_dcutr.c.
 *
 * dcutr_msg is a plain value (about 17 KiB); nothing here allocates memory for the caller.
 * Addresses that are not valid multiaddrs are skipped and counted; more than DCUTR_MAX_ADDRS
 * is -E2BIG. Thread-safe. */
#ifndef PEERMCP_P2P_PROTO_DCUTR_H
#define PEERMCP_P2P_PROTO_DCUTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"
#include "util/buf.h"

#define DCUTR_PROTOCOL "/libp2p/dcutr"
#define DCUTR_MAX_MSG 4096
#define DCUTR_MAX_ADDRS 32

enum { DCUTR_CONNECT = 100, DCUTR_SYNC = 300 };

typedef struct dcutr_msg {
  uint32_t type;            /* DCUTR_CONNECT / DCUTR_SYNC (unknown values kept) */
  size_t n_addrs;
  multiaddr addrs[DCUTR_MAX_ADDRS];
  size_t n_skipped;
} dcutr_msg;

/* Appends varint(len) ‖ HolePunch to out. 0, -E2BIG (over DCUTR_MAX_MSG), -ENOMEM. */
int dcutr_encode(const dcutr_msg *m, buf *out) __attribute__((warn_unused_result));
/* One HolePunch body (no prefix). 0, -EINVAL (malformed, no type), -E2BIG. */
int dcutr_decode(const uint8_t *p, size_t n, dcutr_msg *out) __attribute__((warn_unused_result));
/* One frame at the front of in: as pbframe_parse with DCUTR_MAX_MSG (-EAGAIN: feed more;
 * -EMSGSIZE, -EINVAL). */
int dcutr_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len, size_t *consumed)
    __attribute__((warn_unused_result));

#endif
