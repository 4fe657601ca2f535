/* auth.h — the AuthContext: who is calling and what it may do, as one plain value every
 * transport builds and every tool reads (through mcp_call_auth(), where it is called mcp_auth).
 *
 *   kind      how the caller authenticated: local (stdio, the CLI on the state directory), peer
 *             (a libp2p PeerId proven by Noise, scopes from trusted_peers or the anonymous
 *             grant), token (the shared token), jwt (a validated JWT; issue 13). A zeroed
 *             context is AUTH_KIND_NONE: nobody, no scopes.
 *   scopes    the set the caller holds (scope.h: a 256-bit set of interned ids);
 *   peer_id   the PeerId the transport proved ("" when none), kept whatever the credential;
 *   subject   who the credential names ("" when none): "local", "trusted_peer", "token",
 *             "worker", "mcp-task-runner", or a JWT "sub";
 *   issuer    the JWT "iss" ("" otherwise);
 *   expires_at  Unix seconds after which the context holds no scopes (0 = never);
 *   transport   which transport built it (stdio, http, mcp+p2p, taskqueue; internal for the
 *               node's own workers), for audit lines and counters;
 *   remote_addr the network address of an HTTP client ("" otherwise; peers are named by
 *               peer_id).
 *
 * A value type: strings are stored inline with fixed ceilings, so a context is copied with `=`
 * or memcpy, never freed, and may cross threads by value. A string over its ceiling is refused
 * by the setters (the context is left as it was). The raw credential is never stored: tools and
 * logs cannot leak what they never see.
 *
 * Threads: plain data; every function here is reentrant. */
#ifndef PEERMCP_AUTH_AUTH_H
#define PEERMCP_AUTH_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "auth/scope.h"

#define AUTH_MAX_PEER_ID 128 /* longest PeerId text accepted (base58btc / CIDv1 base32) */
#define AUTH_MAX_SUBJECT 255 /* OpenID Connect: "sub" is at most 255 ASCII characters */
#define AUTH_MAX_ISSUER 255
#define AUTH_MAX_REMOTE 63  /* "[v6 address]:port" */

typedef enum {
  AUTH_KIND_NONE = 0, /* nobody: the zero value */
  AUTH_KIND_LOCAL,
  AUTH_KIND_PEER,
  AUTH_KIND_TOKEN,
  AUTH_KIND_JWT,
} auth_kind;

/* Which transport built a context (audit.h counts refusals by it). */
typedef enum {
  AUTH_TR_INTERNAL = 0, /* the node's own workers, the MCP Tasks runner, tests */
  AUTH_TR_STDIO,
  AUTH_TR_HTTP,
  AUTH_TR_MCP_P2P,   /* /mcp+p2p/1.0.0 */
  AUTH_TR_TASKQUEUE, /* the legacy NDJSON /ipfs-datasets/task-queue/1.0.0 */
  AUTH_TR__COUNT
} auth_transport;

/* Why a request was refused: a small fixed set (metrics label values). */
typedef enum {
  AUTH_REASON_NONE = 0,         /* allowed */
  AUTH_REASON_MISSING,          /* no credential, and what the caller holds without one is not enough */
  AUTH_REASON_INVALID,          /* a credential was presented and is not valid (bad token, bad JWT,
                                   a JWT bound to another PeerId) */
  AUTH_REASON_EXPIRED,          /* the credential has expired */
  AUTH_REASON_INSUFFICIENT_SCOPE, /* authenticated, but without a scope the request needs */
  AUTH_REASON_TOKEN_IN_QUERY,   /* a token in an HTTP query string (never accepted) */
  AUTH_REASON__COUNT
} auth_reason;

/* Trust tiers of the Python services (p2p_tasks_spec.md §4.3), from verified credentials only:
 * trusted = the shared token or a valid JWT (or the local operator); elevated = a PeerId listed
 * in trusted_peers (proven by Noise); baseline = everyone else. */
typedef enum { AUTH_TIER_BASELINE = 0, AUTH_TIER_ELEVATED, AUTH_TIER_TRUSTED } auth_tier;

typedef struct auth_ctx {
  auth_kind kind;
  auth_scopes scopes;
  int64_t expires_at; /* Unix seconds; 0 = never */
  char peer_id[AUTH_MAX_PEER_ID + 1];
  char subject[AUTH_MAX_SUBJECT + 1];
  char issuer[AUTH_MAX_ISSUER + 1];
  auth_transport transport;
  char remote_addr[AUTH_MAX_REMOTE + 1];
} auth_ctx;

/* Initialiser of the local operator (every scope), usable in static data. */
#define AUTH_CTX_LOCAL_INIT {.kind = AUTH_KIND_LOCAL, .scopes = AUTH_SCOPES_ALL_INIT, .subject = "local"}

/* "none", "local", "peer", "token", "jwt". */
const char *auth_kind_name(auth_kind k);
/* "internal", "stdio", "http", "mcp_p2p", "taskqueue". */
const char *auth_transport_name(auth_transport t);
/* "none", "missing_credential", "invalid_credential", "expired", "insufficient_scope",
 * "token_in_query". */
const char *auth_reason_name(auth_reason r);
/* "baseline", "elevated", "trusted". */
const char *auth_tier_name(auth_tier t);

/* The local operator: every scope, subject "local". */
void auth_ctx_local(auth_ctx *out);
/* kind with no scopes and empty strings. */
void auth_ctx_init(auth_ctx *out, auth_kind kind);
/* Setters: NULL or "" clears. 0, or -ENAMETOOLONG (left unchanged). */
int auth_ctx_set_peer_id(auth_ctx *a, const char *peer_id) __attribute__((warn_unused_result));
int auth_ctx_set_subject(auth_ctx *a, const char *subject) __attribute__((warn_unused_result));
int auth_ctx_set_issuer(auth_ctx *a, const char *issuer) __attribute__((warn_unused_result));
int auth_ctx_set_remote_addr(auth_ctx *a, const char *addr) __attribute__((warn_unused_result));

static inline bool auth_ctx_is_local(const auth_ctx *a) { return a->kind == AUTH_KIND_LOCAL; }

/* True when the context has expired at Unix time now_s. */
static inline bool auth_ctx_expired_at(const auth_ctx *a, double now_s) {
  return a->expires_at != 0 && now_s >= (double)a->expires_at;
}

/* True when the caller holds every scope of `need` and has not expired (reads the clock only
 * for contexts that expire). An empty `need` is always allowed: it is what anyone may do. */
bool auth_allows(const auth_ctx *a, const auth_scopes *need);
/* Shorthand for the node's scopes by mask: auth_allows_mask(a, AUTH_WORKER). */
bool auth_allows_mask(const auth_ctx *a, uint64_t mask);
/* Like auth_allows, but says why not (AUTH_REASON_NONE when allowed) at Unix time now_s:
 * expired, missing_credential (a remote caller holding no scope at all and no credential) or
 * insufficient_scope. */
auth_reason auth_check(const auth_ctx *a, const auth_scopes *need, double now_s);

/* The trust tier of a context (see auth_tier). */
auth_tier auth_ctx_tier(const auth_ctx *a);

#endif
