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

bool auth_allows(const auth_ctx *a, const auth_scopes *need) {
  if (auth_scopes_empty(need)) return true;
  if (!auth_scopes_cover(&a->scopes, need)) return false;
  return a->expires_at == 0 || !auth_ctx_expired_at(a, clock_wall_s());
}

bool auth_allows_mask(const auth_ctx *a, uint64_t mask) {
  auth_scopes need = AUTH_SCOPES(mask);
  return auth_allows(a, &need);
}
