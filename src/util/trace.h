/* trace.h — W3C Trace Context (https://www.w3.org/TR/trace-context/ §3.2 "traceparent") and the
 * request a thread is working for.
 *
 * A request gets a trace: the one its caller sent (`_meta.traceparent` on MCP, a `traceparent`
 * field on a TaskQueue op message) continued with a span of its own, or a new one. Every
 * outgoing request made on its behalf carries "00-<trace-id>-<our span id>-<flags>". Spans are
 * not exported (no OTLP): the ids exist so that logs of several processes can be joined.
 *
 * The request scope: code that works for a request enters its trace_scope on the thread doing
 * the work (the dispatcher around a handler and a completion, the session around a message, a
 * runner around a task's steps) and leaves it after; util/log adds the scope's fields
 * (trace_id, request_id, rpc_id, transport, peer_id) to every line written meanwhile, and
 * clients read trace_scope_current() to propagate the trace. Scopes nest (enter returns the
 * previous one, leave restores it); the scope object is the caller's and must outlive its
 * bracket.
 *
 * Ids come from a per-thread generator (wyrand, seeded from getrandom once per thread): random
 * as the specification asks (not secret: ids are not capabilities), a few instructions, no system
 * call per request. Nothing is formatted as hex until a log line or an outgoing request asks
 * (trace_format, trace_id_hex).
 *
 * Threads: any; the scope is per thread. */
#ifndef PEERMCP_UTIL_TRACE_H
#define PEERMCP_UTIL_TRACE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define TRACE_PARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define TRACE_ID_HEX 32

typedef struct trace_ctx {
  uint8_t trace_id[16]; /* all zero = no trace */
  uint8_t span_id[8];   /* this hop's span: the parent-id of what it sends */
  uint8_t flags;        /* trace-flags, passed on as received (01 = sampled for new traces) */
} trace_ctx;

static inline bool trace_valid(const trace_ctx *t) {
  uint64_t a, b;
  __builtin_memcpy(&a, t->trace_id, 8);
  __builtin_memcpy(&b, t->trace_id + 8, 8);
  return (a | b) != 0;
}

/* A new trace (random trace id and span id, flags 01). */
void trace_new(trace_ctx *out);
/* The same trace, a new span (what a hop does with its caller's context). */
void trace_child(const trace_ctx *parent, trace_ctx *out);
/* Parses a traceparent header value (version 00 exactly 55 characters; a later version may
 * append "-…"; version ff, upper-case or non-hex digits, an all-zero trace-id or parent-id are
 * invalid). On success *out continues it: its trace id and flags with a new span id; returns
 * 0. Otherwise -EINVAL and *out is untouched. */
int trace_continue(const char *traceparent, trace_ctx *out) __attribute__((warn_unused_result));
/* The same from a JSON value (a string, else -EINVAL). */
int trace_continue_json(const json_t *v, trace_ctx *out) __attribute__((warn_unused_result));
/* "00-<trace-id>-<span-id>-<flags>" of t (what the next hop receives). */
void trace_format(const trace_ctx *t, char out[TRACE_PARENT_LEN + 1]);
void trace_id_hex(const trace_ctx *t, char out[TRACE_ID_HEX + 1]);

/* ---- the request this thread works for ---- */
typedef struct trace_scope {
  trace_ctx trace;
  const char *request_id; /* the dispatcher's request id, or NULL */
  const json_t *rpc_id;   /* the JSON-RPC id, or NULL */
  const char *transport;  /* "stdio", "http", "p2p", "internal" …, or NULL */
  const char *peer_id;    /* a remote caller's PeerId, or NULL / "" */
} trace_scope;

/* The current scope (the hot path: inline, one thread-local load or store). */
extern _Thread_local const trace_scope *trace_tls_scope;

/* Makes s the current scope; returns the previous one (give it to trace_scope_leave). */
static inline const trace_scope *trace_scope_enter(const trace_scope *s) {
  const trace_scope *prev = trace_tls_scope;
  trace_tls_scope = s;
  return prev;
}
static inline void trace_scope_leave(const trace_scope *prev) { trace_tls_scope = prev; }
/* The current scope or NULL. */
static inline const trace_scope *trace_scope_current(void) { return trace_tls_scope; }
/* The current scope's trace or NULL (none, or no valid trace). */
static inline const trace_ctx *trace_current(void) {
  const trace_scope *s = trace_tls_scope;
  return s && trace_valid(&s->trace) ? &s->trace : NULL;
}
/* Adds the current scope's fields to a log line (an object) where it has no such key. */
void trace_scope_log_fields(json_t *line);

#endif
