/* autonat.h — AutoNAT v1 (libp2p/specs autonat/autonat-v1.md): the Message codec (DIAL with
 * our PeerId and addresses; DIAL_RESPONSE with a status, a text and the address dialed), the
 * server's choice of what it may dial back, and the client's tally of answers into a
 * reachability. Sans-I/O; p2p/host/svc_autonat.c does the streams and the dials.
 *
 * Server rule (spec "AutoNAT Protocol", against RFC 3489 §12.1.1 amplification): dial only
 * addresses whose IP is the one the request came from, never one of our own, never over a
 * relayed connection; TCP only (our one transport); at most AUTONAT_MAX_DIALS of them.
 *
 * Client rule: the status changes once `confidence` different servers agree (spec: "more than
 * 3 peers"; the default here is 3, as go-libp2p); an answer other than OK / E_DIAL_ERROR (the
 * server refused, or failed itself) says nothing about us and is not counted.
 *
 * Structs are plain values; nothing allocates memory for the caller. Thread-safe. */
#ifndef PEERMCP_P2P_PROTO_AUTONAT_H
#define PEERMCP_P2P_PROTO_AUTONAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"
#include "util/buf.h"

#define AUTONAT_PROTOCOL "/libp2p/autonat/1.0.0"
#define AUTONAT_MAX_MSG 8192       /* js-libp2p's limit */
#define AUTONAT_MAX_ADDRS 32
#define AUTONAT_MAX_DIALS 4        /* addresses a server dials back for one request */
#define AUTONAT_MAX_TEXT 256

enum { AUTONAT_DIAL = 0, AUTONAT_DIAL_RESPONSE = 1 };
typedef enum autonat_status {
  AUTONAT_OK = 0,
  AUTONAT_E_DIAL_ERROR = 100,
  AUTONAT_E_DIAL_REFUSED = 101,
  AUTONAT_E_BAD_REQUEST = 200,
  AUTONAT_E_INTERNAL_ERROR = 300,
} autonat_status;
const char *autonat_status_name(uint32_t status); /* "OK", "E_DIAL_ERROR", … or "UNKNOWN" */

typedef struct autonat_msg {
  uint32_t type;                  /* AUTONAT_DIAL / AUTONAT_DIAL_RESPONSE (unknown kept) */
  bool has_dial;                  /* DIAL: */
  bool has_peer_id;
  peerid peer;
  size_t n_addrs;
  multiaddr addrs[AUTONAT_MAX_ADDRS];
  size_t n_skipped;
  bool has_response;              /* DIAL_RESPONSE: */
  uint32_t status;
  char status_text[AUTONAT_MAX_TEXT]; /* truncated, NUL-terminated */
  bool has_addr;
  multiaddr addr;
} autonat_msg;

int autonat_encode(const autonat_msg *m, buf *out) __attribute__((warn_unused_result));
/* 0, -EINVAL (malformed, no type), -E2BIG. A bad PeerId in a DIAL leaves has_peer_id false. */
int autonat_decode(const uint8_t *p, size_t n, autonat_msg *out) __attribute__((warn_unused_result));
int autonat_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len, size_t *consumed)
    __attribute__((warn_unused_result));

/* Server: which of `req` (n_req addresses) may be dialed for a requester observed at
 * `observed` (its connection's remote address), given our own addresses `ours`. Writes at
 * most AUTONAT_MAX_DIALS addresses (without /p2p/) to out and returns how many. With
 * allow_private false, private and loopback addresses are never dialed (tests turn it on). */
size_t autonat_dialable(const multiaddr *observed, const multiaddr *req, size_t n_req, const multiaddr *ours,
                        size_t n_ours, bool allow_private, multiaddr *out);

/* True for loopback, RFC 1918, link-local, CGNAT, ULA and the other non-global ranges. */
bool autonat_addr_is_private(const multiaddr *ma);

/* Client: answers from servers, one vote per server (its latest). */
#define AUTONAT_TALLY_MAX 16
typedef struct autonat_tally {
  unsigned confidence;            /* agreeing servers needed to decide (≥ 1) */
  size_t n;
  struct {
    peerid server;
    bool ok;
  } votes[AUTONAT_TALLY_MAX];     /* oldest first; the oldest is dropped when full */
  int reachability;               /* 0 unknown, 1 public, 2 private (p2p_reachability) */
} autonat_tally;

void autonat_tally_init(autonat_tally *t, unsigned confidence);
/* Records a server's answer (status as received). Returns the reachability afterwards: it
 * becomes public / private when at least `confidence` servers' latest votes say OK /
 * E_DIAL_ERROR and more of them say so than the other; other statuses are ignored. */
int autonat_tally_add(autonat_tally *t, const peerid *server, uint32_t status);
/* Forgets every vote (e.g. our addresses changed); the reachability is kept until new votes
 * decide otherwise. */
void autonat_tally_reset(autonat_tally *t);

#endif
