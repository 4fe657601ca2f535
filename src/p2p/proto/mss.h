/* mss.h — multistream-select 1.0 (`/multistream/1.0.0`), sans-I/O, both roles.
 *
 * Implements the negotiation described in libp2p/specs connections/README.md
 * §multistream-select and multiformats/multistream-select: every message is
 * uvarint(length incl. '\n') ‖ UTF-8 text ‖ '\n'. Both sides first send the
 * `/multistream/1.0.0` header; the dialer then proposes protocol ids one after the other
 * (next one on `na`); the listener echoes a supported id, answers `na` to unknown ones and
 * answers `ls` with its list.
 *
 * Usage (the owner does all I/O):
 *   mss *m; rc = mss_dialer_new(&m, ids, n)       (or mss_listener_new)
 *   rc = mss_start(m, &out);                       send out's bytes
 *   loop: n = mss_feed(m, rx, rxlen, &out);        send out's bytes after every call
 *         n <  0: failed (see errors below); close / reset the channel
 *         state MSS_DONE: mss_selected(m) is the protocol; rx[n .. rxlen) are the first
 *                         bytes of that protocol and belong to the owner (never lost).
 *   mss_free(m);
 * Bytes are consumed message by message; an incomplete message is kept inside (bounded by
 * MSS_MAX_MSG), so the owner may feed any split of the stream.
 *
 * Optimistic ("lazy") dialer: with exactly one proposal the dialer may write application
 * data right after mss_start()'s bytes without waiting for the echo
 * (mss_can_send_early()); if the listener then answers `na`, feed fails with -ENOPROTOOPT
 * and the early data is lost with the channel (reset it).
 *
 * Errors (negative errno): -EPROTO junk (no '\n' terminator, wrong header, unexpected
 * reply, bad varint), -EMSGSIZE a message longer than MSS_MAX_MSG, -ENOPROTOOPT no
 * protocol agreed (dialer: every proposal got `na`; listener: more than
 * MSS_MAX_ATTEMPTS proposals), -ENOMEM, -EINVAL bad argument. After an error the object
 * only answers mss_state_get() == MSS_FAILED; free it.
 *
 * Ownership: mss_*_new() copies the protocol strings; mss_free() releases everything.
 * `out` is the caller's bounded buffer (util/buf.h): replies are appended to it, and a
 * full `out` (-E2BIG) is reported as the error. Not thread-safe: one owner at a time
 * (the libuv loop thread in the host). */
#ifndef PEERMCP_P2P_PROTO_MSS_H
#define PEERMCP_P2P_PROTO_MSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"

#define MSS_PROTO_ID "/multistream/1.0.0"
/* Longest message accepted or sent, counting the '\n' (spec guidance: small, 1 KiB). */
#define MSS_MAX_MSG 1024
/* Most protocol ids a dialer proposes or a listener supports. */
#define MSS_MAX_PROTOS 64
/* Most proposals a listener answers (na or ls) before giving up on a channel. */
#define MSS_MAX_ATTEMPTS 32

typedef enum { MSS_DIALER = 0, MSS_LISTENER = 1 } mss_role;
typedef enum { MSS_NEGOTIATING = 0, MSS_DONE = 1, MSS_FAILED = 2 } mss_state;

typedef struct mss mss;

/* Listener-side dynamic matching: return true if `proto` (len bytes, NUL-terminated) is
 * supported. Consulted after the static list. Called from inside mss_feed(). */
typedef bool (*mss_match_fn)(void *ud, const char *proto, size_t len);

/* Dialer that proposes protos[0..n) in that order (1 <= n <= MSS_MAX_PROTOS; each id
 * non-empty, shorter than MSS_MAX_MSG, without '\n'). */
int mss_dialer_new(mss **out, const char *const *protos, size_t n)
    __attribute__((warn_unused_result));

/* Listener supporting protos[0..n) (n may be 0 when a match function is set). */
int mss_listener_new(mss **out, const char *const *protos, size_t n)
    __attribute__((warn_unused_result));
/* Optional extra matcher for the listener (e.g. the host's handler registry). */
void mss_listener_set_match(mss *m, mss_match_fn fn, void *ud);

void mss_free(mss *m);

/* Appends the opening bytes: the header (listener) or header + first proposal (dialer).
 * Call it first; mss_feed() calls it itself if the owner has not. Idempotent. */
int mss_start(mss *m, buf *out) __attribute__((warn_unused_result));

/* Consumes received bytes, appending replies to `out`. Returns the number of bytes consumed
 * (< len only once negotiation is done: the rest is application data) or a negative error.
 * Feeding after MSS_DONE consumes nothing and returns 0. */
ssize_t mss_feed(mss *m, const uint8_t *data, size_t len, buf *out)
    __attribute__((warn_unused_result));

mss_state mss_state_get(const mss *m);
mss_role mss_role_get(const mss *m);
/* The agreed protocol id (NUL-terminated, owned by m) once MSS_DONE, else NULL. */
const char *mss_selected(const mss *m);
/* Dialer with a single proposal that has sent it: application data may follow at once. */
bool mss_can_send_early(const mss *m);
/* The error that made the state MSS_FAILED (negative errno), 0 otherwise. */
int mss_error(const mss *m);

/* Appends one framed message uvarint(len+1) ‖ msg ‖ '\n' (exposed for tests and tools). */
int mss_write_msg(buf *out, const char *msg, size_t len) __attribute__((warn_unused_result));

#endif
