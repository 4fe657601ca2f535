/* client.h — the client side of /mcp+p2p/1.0.0 on the libp2p host (p2p_tasks_spec.md §2.3,
 * §9; fixing §12.11 and §12.23).
 *
 * One svc_client = one remote peer = one long-lived stream (opened lazily, over the host's
 * connection to that peer) carrying any number of requests, pipelined and matched by id. The
 * Python client built a new host and stream per request; this one sends `initialize` once per
 * stream and then everything else on it.
 *
 * The server's limits (the `limits` of its initialize result) are kept, so nothing is refused:
 *   - max_frames (frames per stream; Python servers allow 128): before a stream would pass it
 *     (room is kept for a cancellation of every request in flight on it) a fresh stream takes
 *     the new requests while the old one finishes those it carries, then closes;
 *   - rate_capacity / rate_refill_per_sec: frames are paced by a copy of that token bucket,
 *     waiting here instead of being refused there.
 * A request the server refused before running it (-32010 "rate_limited" or
 * "too_many_requests") is sent again after a back-off, whatever it is (at most 8 times); after
 * rate_limited, which ends the stream, on a fresh one.
 *
 * Failures: when the stream breaks (reset, connection lost) or a request times out, requests
 * that may be sent again are retried on a fresh stream with exponential back-off and jitter
 * (base backoff_ms, doubling, capped at 5 s), up to `retries` more times; every other request
 * fails with the error. A request that never went out (the stream could not be opened or was
 * refused before initialize was answered) may always try again, `retries` times.
 *
 * A stream that does not become ready is given up (ready_timeout_ms): one still opening (dial,
 * handshake, protocol negotiation) or whose initialize is unanswered past the bound is reset
 * (or, still opening, ended when the host reports), counted (stats.abandoned), logged once
 * (a WARNING naming the state and how long) and replaced by a fresh one after the open
 * back-off. The requests waiting for it are not failed: they go on the next stream, and fail
 * -ETIMEDOUT only at their own deadline (svc_client_not_ready says why, for the message).
 * svc_client_rpc decides from the op (taskq/op.h taskq_op_idempotent): idempotent ops, a
 * submit that carries an idempotency_key, and complete / fail / release fenced by a worker_id
 * and a lease_epoch (once one has taken effect a repeat is refused with lease_lost, or for
 * complete recognised as the same one), so a worker never loses a result it holds.
 *
 * Timers: one, armed for the next deadline, retry or paced send; an idle client (or one whose
 * only request is a long wait) wakes for nothing else.
 *
 * Callbacks: exactly once per accepted request, on the loop thread, never from inside the call
 * that queued it. err < 0 is a transport error (-ETIMEDOUT, -ECONNRESET, -ECANCELED when the
 * client was closed, a dial error from the host — the first attempt's, not a retry's back-off
 * -EAGAIN); otherwise exactly one of result / error (the
 * JSON-RPC error object) is non-NULL. Both are borrowed for the callback's duration.
 *
 * Threads: loop thread only. Ownership: svc_client_close frees the client (after failing what
 * is pending with -ECANCELED). */
#ifndef PEERMCP_SERVICE_CLIENT_H
#define PEERMCP_SERVICE_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "p2p/host/host.h"

typedef struct svc_client svc_client;

typedef struct svc_client_opts {
  const char *token;           /* shared token: sent in initialize and in every rpc message */
  uint32_t request_timeout_ms; /* per attempt; 0 → 30000 */
  unsigned retries;            /* extra attempts for idempotent requests; default 2 (set
                                  no_retries to disable) */
  bool no_retries;
  uint32_t backoff_ms;         /* 0 → 50 */
  size_t max_frame_bytes;      /* inbound reply cap; 0 → 16 MiB */
  size_t max_inflight;         /* requests sent and unanswered on the stream; 0 → 32 (the
                                  server answers more than 64 with -32010) */
  const char *client_name;     /* clientInfo.name; NULL → "peermcp" */
  uint32_t ready_timeout_ms;   /* how long a new stream may stay opening, and then how long
                                  its initialize may stay unanswered, before it is given up and
                                  another opened; 0 → 5000. Doubled after each stream given up
                                  in a row (up to ×4: a slow peer still gets through), back to
                                  the base once one is ready; and at most half the earliest
                                  waiting request's remaining time (so a second stream can
                                  still carry it), but not below 1000 (or the base if lower) */
} svc_client_opts;

typedef void (*svc_client_cb)(void *ud, int err, json_t *result, json_t *error);

/* target: a multiaddr with /p2p/<id> or a bare PeerId known to the peerstore. Copies it.
 * -EDESTADDRREQ when a token is set and target is a multiaddr without /p2p/<id> (the token
 * would go to whoever answers there), -EINVAL, -ENOMEM. */
int svc_client_new(uv_loop_t *loop, p2p_host *host, const char *target, const svc_client_opts *o,
                   svc_client **out) __attribute__((warn_unused_result));

/* A JSON-RPC request (params borrowed, copied). timeout_ms 0 → the default. */
int svc_client_request(svc_client *c, const char *method, json_t *params, bool idempotent, uint32_t timeout_ms,
                       svc_client_cb cb, void *ud) __attribute__((warn_unused_result));

/* A TaskQueue op over tools/call task_queue.rpc; the callback's result is the op reply (the
 * "content" of the Python shape). The token is added to the message if it has none. msg is
 * borrowed; its top level is copied, its values are shared: do not change them afterwards. */
int svc_client_rpc(svc_client *c, json_t *msg, uint32_t timeout_ms, svc_client_cb cb, void *ud)
    __attribute__((warn_unused_result));

/* tools/call of any other tool; result is the CallToolResult. Never retried (a tool may not be
 * idempotent) unless idempotent is set. */
int svc_client_call_tool(svc_client *c, const char *tool, json_t *args, bool idempotent, uint32_t timeout_ms,
                         svc_client_cb cb, void *ud) __attribute__((warn_unused_result));

/* The fast path for tools/call, for callers that want the reply as text (benchmarks, relays,
 * anything that forwards or reads a few fields): no jansson tree is built for the request or
 * the reply. args: the arguments as the JSON text of one object (args_len bytes, copied; NULL
 * means {}); checked with util/jparse (the frame parser's rules: duplicate keys refused, NUL
 * only escaped in values) — -EINVAL when it is not one valid object, -E2BIG past the reply
 * ceiling. The callback gets, for err == 0, reply->result or reply->error (exactly one non-NULL)
 * as the JSON text of that member of the reply frame: borrowed for the callback's duration,
 * already checked (read fields with jparse_find, or parse it with jparse_flags). err < 0: as
 * for svc_client_cb, and reply is NULL. Never retried unless idempotent; retries, pacing,
 * stream renewal and deadlines as for svc_client_call_tool. Cancel with svc_client_cancel_text. */
typedef struct svc_client_reply {
  const char *result; /* JSON text of the reply's "result", or NULL */
  size_t result_len;
  const char *error; /* JSON text of "error" ("null" when the reply had neither), or NULL */
  size_t error_len;
  bool has_nul; /* some string value of the reply holds \u0000 (it is not a C string) */
  /* result.isError as the client saw it while checking the reply (no second walk of result):
   * UNKNOWN (0) when it did not look — result has more than 8 members or an escaped key, the
   * reply was read as a tree — then read it from result yourself. */
  enum {
    SVC_CLIENT_IS_ERROR_UNKNOWN = 0,
    SVC_CLIENT_IS_ERROR_TRUE,  /* "isError": true */
    SVC_CLIENT_IS_ERROR_FALSE, /* "isError": false */
    SVC_CLIENT_IS_ERROR_OTHER, /* no isError member, another value, or result not an object */
  } is_error;
} svc_client_reply;
typedef void (*svc_client_text_cb)(void *ud, int err, const svc_client_reply *reply);
int svc_client_call_tool_text(svc_client *c, const char *tool, const char *args, size_t args_len, bool idempotent,
                              uint32_t timeout_ms, svc_client_text_cb cb, void *ud) __attribute__((warn_unused_result));
int svc_client_cancel_text(svc_client *c, svc_client_text_cb cb, void *ud);

/* Withdraws the pending request queued with this (cb, ud) (the oldest such): its callback will
 * never run. When it was on the wire, the server is told with notifications/cancelled (MCP
 * cancellation, the id of the current attempt), so it stops the work. Returns 0, or -ENOENT
 * when no such request is pending (it already completed). Never calls a callback. */
int svc_client_cancel(svc_client *c, svc_client_cb cb, void *ud);

/* The remote address of the connection the client's last stream ran over ("" before any): the
 * host reuses a live connection to the target's PeerId, which may not be at the address the
 * target names. */
const char *svc_client_via(const svc_client *c);
/* The server's initialize result once known (borrowed), else NULL. */
const json_t *svc_client_server_info(const svc_client *c);
/* Requests queued or in flight. */
size_t svc_client_pending(const svc_client *c);
/* Counters: streams opened, retries done (for tests and benchmarks). */
void svc_client_counters(const svc_client *c, uint64_t *streams_opened, uint64_t *retries);
typedef struct svc_client_stats {
  uint64_t streams_opened;
  uint64_t retries;  /* attempts sent again (after a break, a timeout or a refusal) */
  uint64_t refused;  /* answers -32010 rate_limited / too_many_requests */
  uint64_t paced;    /* times a frame waited for the server's token bucket */
  uint64_t abandoned; /* streams given up: not open, or initialize unanswered, in time */
} svc_client_stats;
void svc_client_stats_get(const svc_client *c, svc_client_stats *out);

/* Why no stream is ready, for the message of a request that failed -ETIMEDOUT: a sentence
 * (static) when the current stream is still opening or initializing, or when the last one
 * was given up so and none has been ready since; NULL otherwise. */
const char *svc_client_not_ready(const svc_client *c);

/* Fails pending requests with -ECANCELED and frees the client (the stream is closed). */
void svc_client_close(svc_client *c);

#endif
