/* envelope.h — a JSON-RPC message's envelope read straight from its text (issue 11 §3): the
 * top-level "jsonrpc", "id", "method", "params" (and whether "result" / "error" are there) and,
 * when params is an object, its "name", "arguments" and "_meta", as spans of the text — no
 * jansson tree. The session (mcp/session.c) builds trees only of what a handler needs as one
 * (a tools/call's arguments and _meta, or the params of any other method) with
 * mcp_envelope_tree.
 *
 * Validation is util/jparse's: mcp_envelope_read first checks the whole text with jparse_scan
 * (the verdicts of the tree parse: grammar, UTF-8, duplicate keys under
 * JPARSE_REJECT_DUPLICATES, \u0000 under JPARSE_ALLOW_NUL, number ranges, max_depth), so every
 * span it hands out is valid JSON. It reads only the common shape and leaves everything else
 * to the caller's tree path (MCP_ENV_TREE, or a negative jparse return: the tree parse then
 * gives the exact error): text that is not an object, more than MCP_ENV_MAX_MEMBERS top-level
 * members, or a top-level key with an escape (its decoded name would need comparing). A key
 * repeated at one level (allowed without JPARSE_REJECT_DUPLICATES) is read as the tree holds it:
 * the last one wins.
 *
 * Ownership: an envelope points into the caller's text and owns nothing; it is valid while
 * the text is. mcp_envelope_tree returns a new reference. Thread-safe, no global state. */
#ifndef PEERMCP_MCP_ENVELOPE_H
#define PEERMCP_MCP_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "util/jparse.h"

#define MCP_ENV_MAX_MEMBERS 8 /* top-level and params members read; more: a tree decides */

/* A value's JSON text within the message (a string's quotes included); p == NULL: absent. */
typedef struct mcp_env_span {
  const char *p;
  size_t n;
} mcp_env_span;

typedef struct mcp_envelope {
  mcp_env_span jsonrpc, id, method, params;
  bool has_answer; /* a top-level "result" or "error" member */
  size_t top_other; /* top-level members besides these six (e.g. a /mcp+p2p/1.0.0 "token") */
  /* params, when it is an object ("{"): its members of these names (last one wins) */
  mcp_env_span name, arguments, meta;
  size_t params_other;      /* params members besides name, arguments and _meta */
  bool params_escaped_key;  /* a params key holds an escape: name/arguments/_meta not reliable */
  unsigned found;           /* jparse_scan's found flags (JPARSE_FOUND_NUL, JPARSE_FOUND_DEPTH) */
} mcp_envelope;

#define MCP_ENV_TREE 1 /* valid JSON in a shape left to a tree (see above) */

/* Reads text[0..len) with jparse's max_depth and flags (JPARSE_REJECT_DUPLICATES,
 * JPARSE_ALLOW_NUL). 0 with *env filled; MCP_ENV_TREE; or jparse_scan's error (-EINVAL not
 * JSON, -ELOOP too deep, -ENOMEM), *env then undefined. Allocates nothing in the common case. */
int mcp_envelope_read(const char *text, size_t len, int max_depth, unsigned jflags, mcp_envelope *env)
    __attribute__((warn_unused_result));

/* The same from a scan the caller made already: jparse_scan_sub of text[0..len) with sub_key
 * "params" (members[] of cap entries, n = its *n_members; params[] of pcap entries, pn = its
 * *n_sub; found = its found flags; the same max_depth and flags as above) — no byte is read
 * twice. params NULL: the caller's scan did not list them (jparse_scan): params is walked. */
int mcp_envelope_from_scan(const char *text, size_t len, const jparse_member *members, size_t n, size_t cap,
                           const jparse_member *params, size_t pn, size_t pcap, unsigned found, mcp_envelope *env)
    __attribute__((warn_unused_result));

/* True when span is the JSON string lit written without escapes ("2.0" for lit 2.0). Inline:
 * with a literal lit the compiler folds its length (the per-call text path calls it). */
static inline bool mcp_env_is_str(mcp_env_span span, const char *lit) {
  size_t n = strlen(lit);
  return span.p && span.n == n + 2 && span.p[0] == '"' && memcmp(span.p + 1, lit, n) == 0 && span.p[n + 1] == '"';
}
/* True when span is a JSON string (escaped or not). */
static inline bool mcp_env_is_string(mcp_env_span span) { return span.p && span.n >= 2 && span.p[0] == '"'; }
/* True when span is a JSON string holding an escape (its decoded value differs from its bytes). */
static inline bool mcp_env_str_escaped(mcp_env_span span) {
  return mcp_env_is_string(span) && memchr(span.p + 1, '\\', span.n - 2) != NULL;
}
/* Copies an escape-free string value into buf as a C string: true; false when span is not a
 * string, holds an escape, or does not fit cap (terminator included). */
bool mcp_env_cstr(mcp_env_span span, char *buf, size_t cap);

/* The tree of a span (a new reference in *out) with the flags given to mcp_envelope_read:
 * 0, or -ENOMEM (the span was validated: nothing else can fail). */
int mcp_envelope_tree(mcp_env_span span, unsigned jflags, json_t **out) __attribute__((warn_unused_result));

#endif
