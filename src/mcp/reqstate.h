/* reqstate.h — the `requestState` of 2026-07-28 multi round-trip requests
 * (basic/patterns/mrtr.mdx): the opaque string an InputRequiredResult hands the client and the
 * client echoes on its retry. peermcp keeps no memory between the rounds of a request; the state
 * carries the answers the client gave in earlier rounds, so a retry holds everything the
 * handler needs.
 *
 * The spec says to treat it as attacker-controlled input and to protect its integrity, bound to
 * the principal, the originating request and a short expiry. Here:
 *   state   = base64url(payload) "." base64url(tag)
 *   payload = {"v":1,"exp":<Unix ms>,"r":{<key>:<answer>,…}}          (compact JSON)
 *   tag     = HMAC-SHA-256(process key, "peermcp-requestState-v1" 0x00 binding 0x00 payload)
 *   binding = hex SHA-256 of method, name/uri, caller (owner key) and the canonical arguments
 * The key is 32 random bytes drawn once per process: state made by another process, a restarted
 * one or another node behind the same load balancer is refused (the client then starts the
 * request over). A state is at most MCP_REQSTATE_MAX_BYTES, checked before decoding; it expires
 * MCP_REQSTATE_TTL_MS after it was made. It is not single-use (the spec's warning applies: no
 * peermcp handler redeems anything once).
 *
 * Threads: every function is thread-safe (the key is set up once under pthread_once). */
#ifndef PEERMCP_MCP_REQSTATE_H
#define PEERMCP_MCP_REQSTATE_H

#include <jansson.h>
#include <stdint.h>

#define MCP_REQSTATE_MAX_BYTES (64 * 1024)
#define MCP_REQSTATE_TTL_MS (10 * 60 * 1000)
#define MCP_REQSTATE_BINDING_LEN 64 /* hex characters */

/* The binding of a request: method ("tools/call"), the name or uri it is about (may be NULL),
 * the caller's owner key (mcp_tasks_owner_key; may be NULL) and its arguments (any JSON, NULL =
 * none; serialised with sorted keys). out gets 64 hex digits and a NUL. 0 or -ENOMEM. */
int mcp_reqstate_binding(const char *method, const char *name, const char *owner, const json_t *args,
                         char out[MCP_REQSTATE_BINDING_LEN + 1]) __attribute__((warn_unused_result));

/* Seals `answers` (an object, borrowed; NULL = {}) for `binding`, valid until now_ms + TTL.
 * A malloc'd string, or NULL: out of memory (-ENOMEM) or over MCP_REQSTATE_MAX_BYTES (-E2BIG),
 * in *err when err is not NULL. */
char *mcp_reqstate_seal(const json_t *answers, const char *binding, int64_t now_ms, int *err);

/* Checks and opens a state. 0 and *answers (a new reference to the object); -E2BIG longer
 * than MCP_REQSTATE_MAX_BYTES; -EBADMSG malformed, tampered, made by another process or for
 * another request or caller; -ETIMEDOUT expired. now_ms is Unix milliseconds. */
int mcp_reqstate_open(const char *state, const char *binding, int64_t now_ms, json_t **answers)
    __attribute__((warn_unused_result));

#endif
