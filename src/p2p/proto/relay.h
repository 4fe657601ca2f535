/* relay.h — circuit relay v2 messages (libp2p/specs relay/circuit-v2.md): the HOP protocol
 * (RESERVE, CONNECT and their STATUS, between a client and the relay), the STOP protocol
 * (CONNECT from the relay to the target and its STATUS), and reservation vouchers (signed
 * envelopes, domain "libp2p-relay-rsvp", payload type 0x0302). Sans-I/O: bytes in, structs
 * out and back; the host services in p2p/host/svc_relay*.c do the streams.
 *
 * Every message travels with a varint length prefix (relay_frame_parse, relay_encode) and is
 * at most RELAY_MAX_MSG bytes; address lists keep at most RELAY_MAX_ADDRS entries (more, or a
 * voucher over RELAY_MAX_VOUCHER, is -E2BIG); addresses that are not valid multiaddrs are
 * skipped and counted. Unknown message types and status codes are kept as numbers for the
 * caller to refuse (spec: MALFORMED_MESSAGE / UNEXPECTED_MESSAGE).
 *
 * relay_msg is a plain value (about 18 KiB: allocate it, do not put several on the stack); no
 * function here allocates memory the caller frees. Thread-safe. */
#ifndef PEERMCP_P2P_PROTO_RELAY_H
#define PEERMCP_P2P_PROTO_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/keys.h"
#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"
#include "util/buf.h"

#define RELAY_HOP_PROTOCOL "/libp2p/circuit/relay/0.2.0/hop"
#define RELAY_STOP_PROTOCOL "/libp2p/circuit/relay/0.2.0/stop"

#define RELAY_MAX_MSG 4096     /* what go-libp2p and js-libp2p accept */
#define RELAY_MAX_ADDRS 16
#define RELAY_MAX_VOUCHER 1024

enum { RELAY_HOP_RESERVE = 0, RELAY_HOP_CONNECT = 1, RELAY_HOP_STATUS = 2 };
enum { RELAY_STOP_CONNECT = 0, RELAY_STOP_STATUS = 1 };

typedef enum relay_status {
  RELAY_UNUSED = 0,
  RELAY_OK = 100,
  RELAY_RESERVATION_REFUSED = 200,
  RELAY_RESOURCE_LIMIT_EXCEEDED = 201,
  RELAY_PERMISSION_DENIED = 202,
  RELAY_CONNECTION_FAILED = 203,
  RELAY_NO_RESERVATION = 204,
  RELAY_MALFORMED_MESSAGE = 400,
  RELAY_UNEXPECTED_MESSAGE = 401,
} relay_status;
/* "OK", "RESERVATION_REFUSED", … or "UNKNOWN". */
const char *relay_status_name(uint32_t status);

typedef struct relay_msg {
  bool stop;               /* a StopMessage (else a HopMessage) */
  uint32_t type;           /* RELAY_HOP_* / RELAY_STOP_* (unknown values kept) */
  bool has_status;
  uint32_t status;         /* relay_status (unknown values kept) */
  bool has_peer;
  peerid peer;             /* Peer.id (has_peer means it was present and a valid PeerId) */
  size_t n_peer_addrs;
  multiaddr peer_addrs[RELAY_MAX_ADDRS];
  bool has_reservation;    /* HOP only */
  uint64_t expire;         /* Reservation.expire: Unix seconds */
  size_t n_rsv_addrs;
  multiaddr rsv_addrs[RELAY_MAX_ADDRS]; /* the relay's addresses, with /p2p/<relay> */
  size_t voucher_len;      /* 0: none */
  uint8_t voucher[RELAY_MAX_VOUCHER];
  bool has_limit;
  uint32_t limit_duration; /* seconds; 0 = none (js writes milliseconds here) */
  uint64_t limit_data;     /* bytes; 0 = none */
  size_t n_skipped;        /* decode: addresses that were not multiaddrs */
} relay_msg;

/* Appends varint(len) ‖ message to out. 0, -E2BIG (over a ceiling), -EINVAL, -ENOMEM. */
int relay_encode(const relay_msg *m, buf *out) __attribute__((warn_unused_result));
/* Decodes one message body (no prefix) as a Hop (stop false) or Stop message. 0; -EINVAL
 * (malformed protobuf, no type, a Peer without a valid id); -E2BIG (a ceiling). */
int relay_decode(const uint8_t *p, size_t n, bool stop, relay_msg *out) __attribute__((warn_unused_result));
/* One framed message at the front of in (see varint_frame_parse), at most RELAY_MAX_MSG. */
int relay_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len, size_t *consumed)
    __attribute__((warn_unused_result));

/* ---- reservation vouchers ---- */

#define RELAY_VOUCHER_DOMAIN "libp2p-relay-rsvp"
extern const uint8_t RELAY_VOUCHER_PAYLOAD_TYPE[2]; /* 0x0302 */

typedef struct relay_voucher {
  peerid relay;
  peerid peer;
  uint64_t expiration; /* Unix seconds */
} relay_voucher;

/* The relay (key k) vouches for `peer` until `expiration`: appends the envelope to out. */
int relay_voucher_seal(const keys_private *k, const peerid *peer, uint64_t expiration, buf *out)
    __attribute__((warn_unused_result));
/* Opens a voucher: a valid envelope of the voucher domain and type whose signer is the relay
 * it names (-EACCES otherwise); every field must be present (-EINVAL). Other errors as
 * envelope_open. */
int relay_voucher_open(const uint8_t *p, size_t n, relay_voucher *out) __attribute__((warn_unused_result));

#endif
