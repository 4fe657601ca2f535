/* auth.h — who may do what over the P2P service (p2p_tasks_spec.md §4, fixing §12.1–12.3).
 *
 * Closed by default: with no trusted peer and no token configured, a remote peer may run
 * `status` (and the MCP handshake and tools/list, which shows it nothing) and every other op
 * answers `unauthorized`. Access comes from
 *   - the PeerId proven by Noise, listed in `trusted_peers` (each with its own scopes), or
 *   - the shared token (IPFS_ACCELERATE_PY_TASK_P2P_TOKEN / IPFS_DATASETS_PY_TASK_P2P_TOKEN),
 *     presented in a TaskQueue message's "token" field, in initialize params ("token") for the
 *     rest of the MCP session, or as a frame's top-level "token" (mcp_server_spec.md §5.4).
 *     Tokens are compared in constant time: both sides are hashed with a per-process random
 *     BLAKE2b key (so the comparison does not depend on the length) and the digests compared
 *     with sodium_memcmp.
 * JWT credentials are not verified yet; mcp_auth.credential is where they will travel.
 *
 * This module also owns the TaskQueue op identities (every name and alias of §3.1 plus the
 * ops peermcp adds) and the scope each op needs.
 *
 * Ownership: a svc_auth_policy is built at start-up on one thread and is read-only afterwards
 * (safe to share between threads). A svc_auth is a plain value owned by its transport (one per
 * stream or per request); its mcp_auth view points into the svc_auth itself, so copy it with
 * svc_auth_copy, never with `=`. */
#ifndef PEERMCP_SERVICE_AUTH_H
#define PEERMCP_SERVICE_AUTH_H

#include <jansson.h>
#include <stdbool.h>

#include "mcp/tool.h"

/* Scopes a token or a trusted peer gets when the configuration does not say. */
#define SVC_AUTH_DEFAULT_SCOPES                                                                  \
  (MCP_SCOPE_CACHE_READ | MCP_SCOPE_CACHE_WRITE | MCP_SCOPE_TASK_SUBMIT | MCP_SCOPE_WORKER |       \
   MCP_SCOPE_TOOL_CALL)
#define SVC_AUTH_MAX_TOKEN 4096 /* longer presented tokens are refused without hashing */
#define SVC_AUTH_MAX_PEER_ID 128

typedef struct svc_auth_policy svc_auth_policy;

/* NULL on ENOMEM (or when libsodium cannot initialise). */
svc_auth_policy *svc_auth_policy_new(void);
void svc_auth_policy_free(svc_auth_policy *p);
/* Sets the shared token and the scopes it grants (0 → SVC_AUTH_DEFAULT_SCOPES). NULL or an
 * empty (after trimming blanks) token means none. 0, -EINVAL (too long), -ENOMEM. */
int svc_auth_policy_set_token(svc_auth_policy *p, const char *token, unsigned scopes)
    __attribute__((warn_unused_result));
/* Reads the token from IPFS_ACCELERATE_PY_TASK_P2P_TOKEN, else IPFS_DATASETS_PY_TASK_P2P_TOKEN
 * (first non-empty after trimming), when none was set explicitly. Returns 1 when one was found. */
int svc_auth_policy_token_from_env(svc_auth_policy *p, unsigned scopes);
/* Grants scopes (0 → SVC_AUTH_DEFAULT_SCOPES) to a PeerId. 0, -EINVAL (bad id), -ENOMEM. */
int svc_auth_policy_add_peer(svc_auth_policy *p, const char *peer_id, unsigned scopes)
    __attribute__((warn_unused_result));
/* Scopes every remote peer gets without any credential (default 0: closed). For tests and
 * for operators who really want an open mesh. */
void svc_auth_policy_set_anonymous(svc_auth_policy *p, unsigned scopes);
bool svc_auth_policy_has_token(const svc_auth_policy *p);
size_t svc_auth_policy_peer_count(const svc_auth_policy *p);

/* Parses "cache.read,cache.write,task.submit,worker,tool.call,admin,all" (comma/space
 * separated, also "cache_read" etc.). 0 or -EINVAL naming nothing it knows. */
int svc_auth_scopes_parse(const char *text, unsigned *out) __attribute__((warn_unused_result));
/* The scope list as a new JSON array of names. */
json_t *svc_auth_scopes_json(unsigned scopes);

/* The caller as a request sees it. */
typedef struct svc_auth {
  mcp_auth a; /* the view tools get; a.peer_id/subject point into this struct */
  char peer_id[SVC_AUTH_MAX_PEER_ID + 1];
  char subject[32];
} svc_auth;

/* A local caller (stdio, CLI on the state directory): every scope. */
void svc_auth_init_local(svc_auth *out);
/* A remote peer whose PeerId the transport proved (may be NULL/"" when unknown): the scopes
 * trusted_peers and the anonymous grant give it. */
void svc_auth_init_peer(svc_auth *out, const svc_auth_policy *p, const char *peer_id);
void svc_auth_copy(svc_auth *dst, const svc_auth *src);
/* Rebuilds a svc_auth from the mcp_auth a tool handler was given (strings copied; an over-long
 * peer id is dropped). */
void svc_auth_from_mcp(svc_auth *dst, const mcp_auth *src);
/* Constant-time check of a presented token. False when no token is configured. */
bool svc_auth_token_ok(const svc_auth_policy *p, const char *token);
/* Adds the token's scopes to *a when `token` is right (subject becomes "token"); returns
 * whether it was. */
bool svc_auth_present_token(svc_auth *a, const svc_auth_policy *p, const char *token);
/* Same, taking the token from msg["token"] (a string) if there is one. */
bool svc_auth_present_msg_token(svc_auth *a, const svc_auth_policy *p, const json_t *msg);
static inline bool svc_auth_has(const svc_auth *a, unsigned scopes) {
  return (a->a.scopes & scopes) == scopes;
}

/* --- TaskQueue ops (§3.1) --- */
typedef enum {
  SVC_OP_UNKNOWN = 0,
  SVC_OP_SUBMIT,         /* submit */
  SVC_OP_CLAIM,          /* claim, claim_next */
  SVC_OP_CLAIM_MANY,     /* claim_many, claim_batch */
  SVC_OP_COMPLETE,       /* complete, task.complete, complete_task */
  SVC_OP_FAIL,           /* fail, task.fail, fail_task (peermcp) */
  SVC_OP_RELEASE,        /* release, task.release, release_task */
  SVC_OP_TASK_HEARTBEAT, /* task.heartbeat, task_heartbeat, lease.renew (peermcp) */
  SVC_OP_PEER_HEARTBEAT, /* peer.heartbeat, heartbeat, peer */
  SVC_OP_LIST,           /* list, tasks.list, queue.list */
  SVC_OP_CANCEL,         /* cancel, task.cancel */
  SVC_OP_STATUS,         /* status, capabilities, describe */
  SVC_OP_TOOL,           /* tool, call_tool, tool.call */
  SVC_OP_CACHE_GET,      /* cache.get, cache_get, cache */
  SVC_OP_CACHE_HAS,      /* cache.has, cache_has */
  SVC_OP_CACHE_SET,      /* cache.set, cache_set */
  SVC_OP_CACHE_DELETE,   /* cache.delete, cache_del, cache_delete */
  SVC_OP_GET,            /* get */
  SVC_OP_WAIT,           /* wait */
  SVC_OP__COUNT
} svc_op;

/* The op a message names: `(msg.get("op") or "").strip().lower()` and its aliases. */
svc_op svc_op_parse(const char *op);
/* Canonical name ("submit", "claim", …). */
const char *svc_op_name(svc_op op);
/* Scopes the op needs; 0 for status. SVC_OP_UNKNOWN needs nothing (it answers unknown_op). */
unsigned svc_op_scopes(svc_op op);
/* Idempotent ops may be retried by a client after a transport failure. */
bool svc_op_idempotent(svc_op op);

#endif
