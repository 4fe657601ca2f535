/* auth.c — AuthContext helpers (see auth.h). */
#include "auth/auth.h"

#include <errno.h>
#include <string.h>

#include "util/clock.h"

const char *auth_kind_name(auth_kind k) {
  switch (k) {
  case AUTH_KIND_LOCAL: return "local";
  case AUTH_KIND_PEER: return "peer";
  case AUTH_KIND_TOKEN: return "token";
  case AUTH_KIND_JWT: return "jwt";
  default: return "none";
  }
}

const char *auth_transport_name(auth_transport t) {
  static const char *const names[AUTH_TR__COUNT] = {"internal", "stdio", "http", "mcp_p2p", "taskqueue"};
  return (unsigned)t < AUTH_TR__COUNT ? names[t] : "internal";
}

const char *auth_reason_name(auth_reason r) {
  static const char *const names[AUTH_REASON__COUNT] = {"none", "missing_credential", "invalid_credential",
                                                        "expired", "insufficient_scope", "token_in_query"};
  return (unsigned)r < AUTH_REASON__COUNT ? names[r] : "none";
}

const char *auth_tier_name(auth_tier t) {
  return t == AUTH_TIER_TRUSTED ? "trusted" : t == AUTH_TIER_ELEVATED ? "elevated" : "baseline";
}

void auth_ctx_init(auth_ctx *out, auth_kind kind) {
  memset(out, 0, sizeof *out);
  out->kind = kind;
}

void auth_ctx_local(auth_ctx *out) {
  static const auth_ctx local = AUTH_CTX_LOCAL_INIT;
  *out = local;
}

static int set_str(char *dst, size_t cap, const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n >= cap) return -ENAMETOOLONG;
  if (n) memcpy(dst, s, n);
  dst[n] = 0;
  return 0;
}

int auth_ctx_set_peer_id(auth_ctx *a, const char *v) { return set_str(a->peer_id, sizeof a->peer_id, v); }
int auth_ctx_set_subject(auth_ctx *a, const char *v) { return set_str(a->subject, sizeof a->subject, v); }
int auth_ctx_set_issuer(auth_ctx *a, const char *v) { return set_str(a->issuer, sizeof a->issuer, v); }
int auth_ctx_set_remote_addr(auth_ctx *a, const char *v) { return set_str(a->remote_addr, sizeof a->remote_addr, v); }

/* A remote caller that authenticated with nothing (no token, no JWT, not a listed PeerId). */
static bool no_credential(const auth_ctx *a) {
  return a->kind == AUTH_KIND_NONE || (a->kind == AUTH_KIND_PEER && strcmp(a->subject, "trusted_peer") != 0);
}

auth_reason auth_check(const auth_ctx *a, const auth_scopes *need, double now_s) {
  if (auth_scopes_empty(need)) return AUTH_REASON_NONE;
  if (auth_ctx_expired_at(a, now_s)) return AUTH_REASON_EXPIRED;
  if (auth_scopes_cover(&a->scopes, need)) return AUTH_REASON_NONE;
  return no_credential(a) ? AUTH_REASON_MISSING : AUTH_REASON_INSUFFICIENT_SCOPE;
}

auth_tier auth_ctx_tier(const auth_ctx *a) {
  switch (a->kind) {
  case AUTH_KIND_LOCAL:
  case AUTH_KIND_TOKEN:
  case AUTH_KIND_JWT: return AUTH_TIER_TRUSTED;
  case AUTH_KIND_PEER: return strcmp(a->subject, "trusted_peer") == 0 ? AUTH_TIER_ELEVATED : AUTH_TIER_BASELINE;
  default: return AUTH_TIER_BASELINE;
  }
}

bool auth_allows(const auth_ctx *a, const auth_scopes *need) {
  if (auth_scopes_empty(need)) return true;
  if (!auth_scopes_cover(&a->scopes, need)) return false;
  return a->expires_at == 0 || !auth_ctx_expired_at(a, clock_wall_s());
}

bool auth_allows_mask(const auth_ctx *a, uint64_t mask) {
  auth_scopes need = AUTH_SCOPES(mask);
  return auth_allows(a, &need);
}
