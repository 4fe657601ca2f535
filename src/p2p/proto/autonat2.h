/* autonat2.h — AutoNAT v2 (libp2p/specs autonat/autonat-v2.md): the Message codec of
 * /libp2p/autonat/2/dial-request (DialRequest, DialResponse, DialDataRequest,
 * DialDataResponse) and the DialBack / DialBackResponse of /libp2p/autonat/2/dial-back, the
 * server's choice of the one address it dials, and the two sides of a dial-request stream as
 * state machines (bytes in, bytes out, no sockets). p2p/host/svc_autonat2.c does the streams
 * and the dials.
 *
 * Server rule: the first requested address that is /ip4|ip6/…/tcp/PORT (our one transport),
 * not ours, not private or loopback (unless allow_private: tests on one host), is the one
 * dialed; no other is. If its IP differs from the requester's observed IP the requester first
 * pays the amplification cost: the server asks for `data_bytes` (spec: 30k..100k) and counts
 * only the data fields of DialDataResponse messages, each at most AUTONAT2_DATA_CHUNK; with
 * allow_other_ip false such addresses are skipped instead. A request over the admission
 * limits (the `admit` callback: rate limits) gets E_REQUEST_REJECTED before any data is asked.
 *
 * Client rule: one DialRequest per stream; a DialDataRequest for a known index and at most
 * `max_data` bytes is paid (in AUTONAT2_DATA_CHUNK pieces), a larger one resets the stream
 * (spec: "the client resets the stream"); the first DialResponse ends the exchange.
 * autonat2_result says what a response tells about the address (the caller also requires
 * that the nonce came back on a dial-back stream — an inbound, direct connection whose local
 * address autonat2_dialback_addr_matches the tested one — before believing an OK).
 *
 * Structs are plain values; nothing allocates memory for the caller except growing its buf.
 * Thread-safe (no globals). */
#ifndef PEERMCP_P2P_PROTO_AUTONAT2_H
#define PEERMCP_P2P_PROTO_AUTONAT2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"
#include "util/buf.h"

#define AUTONAT2_DIAL_REQUEST_PROTOCOL "/libp2p/autonat/2/dial-request"
#define AUTONAT2_DIAL_BACK_PROTOCOL "/libp2p/autonat/2/dial-back"
#define AUTONAT2_MAX_MSG 8192           /* js-libp2p's limit; a DialDataResponse fits */
#define AUTONAT2_MAX_DIALBACK_MSG 64    /* DialBack / DialBackResponse: a nonce or a status */
#define AUTONAT2_MAX_ADDRS 32           /* decoded; further addresses are counted, not kept */
#define AUTONAT2_DATA_CHUNK 4096        /* spec: data of one DialDataResponse */
#define AUTONAT2_DATA_MIN 30000         /* spec: servers SHOULD ask 30k..100k */
#define AUTONAT2_DATA_MAX 100000
#define AUTONAT2_CLIENT_MAX_DATA 131072 /* what our client pays at most for one request */

typedef enum autonat2_kind {
  AUTONAT2_NONE = 0,
  AUTONAT2_DIAL_REQUEST = 1,
  AUTONAT2_DIAL_RESPONSE = 2,
  AUTONAT2_DIAL_DATA_REQUEST = 3,
  AUTONAT2_DIAL_DATA_RESPONSE = 4,
} autonat2_kind;

/* DialResponse.ResponseStatus */
enum { AUTONAT2_RS_E_INTERNAL_ERROR = 0, AUTONAT2_RS_E_REQUEST_REJECTED = 100, AUTONAT2_RS_E_DIAL_REFUSED = 101,
       AUTONAT2_RS_OK = 200 };
/* DialStatus */
enum { AUTONAT2_DS_UNUSED = 0, AUTONAT2_DS_E_DIAL_ERROR = 100, AUTONAT2_DS_E_DIAL_BACK_ERROR = 101,
       AUTONAT2_DS_OK = 200 };
const char *autonat2_response_status_name(uint32_t s); /* "OK", "E_DIAL_REFUSED", … "UNKNOWN" */
const char *autonat2_dial_status_name(uint32_t s);

typedef struct autonat2_msg {
  autonat2_kind kind;
  /* DIAL_REQUEST */
  size_t n_addrs;        /* entries kept, in the request's order (indexes are the request's) */
  multiaddr addrs[AUTONAT2_MAX_ADDRS]; /* len 0: an entry that did not parse */
  size_t n_bad;          /* entries that did not parse */
  size_t n_dropped;      /* entries past AUTONAT2_MAX_ADDRS (never chosen) */
  uint64_t nonce;
  /* DIAL_RESPONSE */
  uint32_t status, dial_status;
  /* DIAL_RESPONSE, DIAL_DATA_REQUEST */
  uint32_t addr_idx;
  /* DIAL_DATA_REQUEST */
  uint64_t num_bytes;
  /* DIAL_DATA_RESPONSE: decode gives the length only; encode sends data_len zero bytes */
  size_t data_len;
} autonat2_msg;

/* Appends varint(len) ‖ Message. 0, -EINVAL (kind NONE, data_len over a chunk), -E2BIG. */
int autonat2_encode(const autonat2_msg *m, buf *out) __attribute__((warn_unused_result));
/* A Message body (no prefix). 0; -EINVAL (not protobuf, or no msg set); -E2BIG. */
int autonat2_decode(const uint8_t *p, size_t n, autonat2_msg *out) __attribute__((warn_unused_result));
/* One frame of a dial-request stream (ceiling AUTONAT2_MAX_MSG), as pbframe_parse. */
int autonat2_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len, size_t *consumed)
    __attribute__((warn_unused_result));

/* dial-back stream: DialBack{nonce} one way, DialBackResponse{status} the other (framed). */
int autonat2_dialback_encode(uint64_t nonce, buf *out) __attribute__((warn_unused_result));
int autonat2_dialback_decode(const uint8_t *p, size_t n, uint64_t *nonce) __attribute__((warn_unused_result));
int autonat2_dialback_response_encode(uint32_t status, buf *out) __attribute__((warn_unused_result));
int autonat2_dialback_response_decode(const uint8_t *p, size_t n, uint32_t *status)
    __attribute__((warn_unused_result));
/* One frame of a dial-back stream (ceiling AUTONAT2_MAX_DIALBACK_MSG). */
int autonat2_dialback_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len,
                                  size_t *consumed) __attribute__((warn_unused_result));

/* Server: the index (in req, i.e. the request's own numbering) of the address to dial, or -1.
 * *other_ip tells whether its IP differs from observed's (then dial data is due). */
int autonat2_select(const multiaddr *observed, const autonat2_msg *req, const multiaddr *ours, size_t n_ours,
                    bool allow_private, bool allow_other_ip, bool *other_ip);

/* Client: whether a dial-back connection whose local address is `local` (our end, as the socket
 * reports it) can be the dial of `tested` (spec: "the client can verify the server did
 * successfully dial an address of the same transport … by checking the local address of the
 * connection on which the nonce was received"). True when both have the same protocols in the
 * same order (values aside: behind a NAT the local IP and port differ from the tested ones), a
 * /p2p/ suffix of `tested` ignored and its first component matched as a name may resolve
 * (dns, dnsaddr: ip4 or ip6; dns4: ip4; dns6: ip6). False for an empty `local` (unknown, or a
 * relayed connection, whose local address is not a socket's). */
bool autonat2_dialback_addr_matches(const multiaddr *local, const multiaddr *tested);

/* What a DialResponse says about the address it names: 1 reachable (OK / OK), 2 not
 * reachable (OK / E_DIAL_ERROR), 0 nothing (refused, rejected, dial-back error, unknown). */
int autonat2_result(uint32_t status, uint32_t dial_status);

/* ---------------------------------------------------------------- server side of a stream */

typedef struct autonat2_server_policy {
  const multiaddr *observed;  /* the requester's connection's remote address */
  const multiaddr *ours;      /* our addresses: never dialed */
  size_t n_ours;
  bool allow_private;
  bool allow_other_ip;        /* accept the amplification-cost exchange (else refuse) */
  uint64_t data_bytes;        /* asked when the IP differs (clamped to DATA_MIN..DATA_MAX) */
  bool (*admit)(void *ud, bool other_ip); /* limits, asked once an address is chosen; NULL = yes */
  void *admit_ud;
} autonat2_server_policy;

typedef enum autonat2_server_state { A2S_ST_WAIT_REQUEST, A2S_ST_WAIT_DATA, A2S_ST_DIALING, A2S_ST_DONE } autonat2_server_state;
typedef enum autonat2_server_ev {
  A2S_MORE = 0,   /* feed more bytes */
  A2S_DIAL,       /* dial s->target, send s->nonce on dial-back; then autonat2_server_dialed */
  A2S_DONE,       /* the answer is in out: close the stream */
  A2S_ERROR,      /* protocol violation (s->why): reset the stream */
} autonat2_server_ev;

typedef struct autonat2_server {
  autonat2_server_state state;
  uint64_t nonce;
  int idx;                    /* chosen index */
  multiaddr target;
  bool other_ip;
  uint64_t data_need, data_got;
  uint32_t status;            /* ResponseStatus written (A2S_DONE) */
  const char *why;            /* A2S_DONE / A2S_ERROR: a static explanation for logs */
} autonat2_server;

void autonat2_server_init(autonat2_server *s);
/* Consumes whole frames from in[0..n) (*used says how many bytes). Bytes after the request
 * while dialing are a protocol error; after A2S_DONE nothing is read. */
autonat2_server_ev autonat2_server_feed(autonat2_server *s, const autonat2_server_policy *pol, const uint8_t *in,
                                        size_t n, size_t *used, buf *out);
/* The dial-back ended with dial_status (AUTONAT2_DS_*): writes the DialResponse; A2S_DONE. */
autonat2_server_ev autonat2_server_dialed(autonat2_server *s, uint32_t dial_status, buf *out);

/* ---------------------------------------------------------------- client side of a stream */

typedef enum autonat2_client_ev {
  A2C_MORE = 0,   /* feed more bytes (data may have been written to out) */
  A2C_RESULT,     /* c->status / c->addr_idx / c->dial_status are the answer: close */
  A2C_ERROR,      /* protocol violation or refused cost (c->why): reset the stream */
} autonat2_client_ev;

typedef struct autonat2_client {
  size_t n_addrs;
  uint64_t nonce, max_data;
  bool paid;                  /* dial data sent */
  uint64_t data_paid;
  uint32_t status, addr_idx, dial_status;
  const char *why;
} autonat2_client;

/* Writes the DialRequest (addrs in priority order, 1..AUTONAT2_MAX_ADDRS). 0 or the encode
 * error. max_data 0 = AUTONAT2_CLIENT_MAX_DATA. */
int autonat2_client_start(autonat2_client *c, const multiaddr *addrs, size_t n, uint64_t nonce, uint64_t max_data,
                          buf *out) __attribute__((warn_unused_result));
autonat2_client_ev autonat2_client_feed(autonat2_client *c, const uint8_t *in, size_t n, size_t *used, buf *out);

#endif
