/* ping.h — libp2p ping (`/ipfs/ping/1.0.0`, libp2p/specs ping/ping.md), sans-I/O.
 *
 * The dialer writes 32 random bytes, the listener echoes them; the dialer measures the RTT
 * from its write to the full echo, and may repeat on the same stream. The dialer closes its
 * write side after the last ping; the listener finishes echoing and closes.
 * No clock inside: callers pass timestamps (µs, any monotonic origin). Plain structs the
 * caller embeds; nothing allocated. Not thread-safe (one owner). */
#ifndef PEERMCP_P2P_PROTO_PING_H
#define PEERMCP_P2P_PROTO_PING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"

#define PING_PROTO_ID "/ipfs/ping/1.0.0"
#define PING_PAYLOAD_LEN 32

/* Dialer side: one ping in flight at a time. */
typedef struct ping_client {
  uint8_t sent[PING_PAYLOAD_LEN];
  uint8_t got[PING_PAYLOAD_LEN];
  size_t got_len;
  uint64_t sent_us;
  bool in_flight;
} ping_client;

void ping_client_init(ping_client *c);
/* Fills payload with 32 fresh random bytes (libsodium) and records now_us as the send time.
 * Write `payload` to the stream. -EBUSY if a ping is still in flight. */
int ping_client_start(ping_client *c, uint64_t now_us, uint8_t payload[PING_PAYLOAD_LEN])
    __attribute__((warn_unused_result));
/* Feeds echoed bytes. Sets *used to the bytes consumed (stops after a completed echo).
 * Returns 1 when the echo completed and matched (*rtt_us = now_us - send time),
 * 0 when more bytes are needed, -EPROTO if the echo differs or bytes arrive with no ping
 * in flight. */
int ping_client_feed(ping_client *c, const uint8_t *data, size_t len, uint64_t now_us,
                     size_t *used, uint64_t *rtt_us) __attribute__((warn_unused_result));

/* Listener side: echoes each complete 32-byte payload. */
typedef struct ping_server {
  uint8_t cur[PING_PAYLOAD_LEN];
  size_t cur_len;
  uint64_t echoed; /* payloads echoed so far */
} ping_server;

void ping_server_init(ping_server *p);
/* Consumes all len bytes, appending each completed payload to `out`. 0 or -E2BIG/-ENOMEM
 * from `out` (then nothing of the failing payload was appended). */
int ping_server_feed(ping_server *p, const uint8_t *data, size_t len, buf *out)
    __attribute__((warn_unused_result));
/* The dialer closed its write side: 0 if it ended on a payload boundary, -EPROTO if a
 * partial payload was left (the listener then just closes). */
int ping_server_finish(const ping_server *p) __attribute__((warn_unused_result));

#endif
