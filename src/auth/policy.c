/* policy.c — trusted peers, the shared token (constant-time), the anonymous grant (see
 * policy.h; p2p_tasks_spec.md §4, §12.1–12.3). */
#include "auth/policy.h"

#include "util/clock.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef struct auth_peer {
  char *peer_id;
  auth_scopes scopes;
} auth_peer;

struct auth_policy {
  unsigned char key[crypto_generichash_KEYBYTES]; /* per-process random hash key */
  unsigned char token_hash[crypto_generichash_BYTES];
  bool has_token;
  auth_scopes token_scopes;
  auth_scopes anonymous;
  auth_peer *peers;
  size_t n_peers, cap_peers;
  auth_jwt *jwt; /* borrowed; NULL = JWTs off */
  bool require_binding;
};

auth_policy *auth_policy_new(void) {
  if (sodium_init() < 0) return NULL;
  auth_policy *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  randombytes_buf(p->key, sizeof p->key);
  return p;
}

void auth_policy_free(auth_policy *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n_peers; i++) free(p->peers[i].peer_id);
  free(p->peers);
  sodium_memzero(p, sizeof *p);
  free(p);
}

static void token_hash(const auth_policy *p, const char *tok, size_t n, unsigned char out[crypto_generichash_BYTES]) {
  crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)tok, n, p->key, sizeof p->key);
}

/* ASCII blanks off both ends (the Python service strip()s its token). */
static void trim(const char **s, size_t *n) {
  while (*n && isspace((unsigned char)(*s)[0])) (*s)++, (*n)--;
  while (*n && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

int auth_policy_set_token(auth_policy *p, const char *token, const auth_scopes *scopes) {
  size_t n = token ? strlen(token) : 0;
  trim(&token, &n);
  p->has_token = false;
  if (n > AUTH_MAX_TOKEN) return -EINVAL;
  if (n == 0) return 0;
  p->has_token = true;
  token_hash(p, token, n, p->token_hash);
  p->token_scopes = scopes ? *scopes : AUTH_SCOPES(AUTH_DEFAULT_MASK);
  return 0;
}

static bool peer_id_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > AUTH_MAX_PEER_ID) return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i])) return false; /* base58btc / base32 CIDs are alphanumeric */
  return true;
}

int auth_policy_add_peer(auth_policy *p, const char *peer_id, const auth_scopes *scopes) {
  if (!peer_id_valid(peer_id)) return -EINVAL;
  auth_scopes sc = scopes ? *scopes : AUTH_SCOPES(AUTH_DEFAULT_MASK);
  for (size_t i = 0; i < p->n_peers; i++)
    if (strcmp(p->peers[i].peer_id, peer_id) == 0) {
      auth_scopes_union(&p->peers[i].scopes, &sc);
      return 0;
    }
  if (p->n_peers == p->cap_peers) {
    size_t cap = p->cap_peers ? p->cap_peers * 2 : 8;
    auth_peer *np = realloc(p->peers, cap * sizeof *np);
    if (!np) return -ENOMEM;
    p->peers = np;
    p->cap_peers = cap;
  }
  char *dup = strdup(peer_id);
  if (!dup) return -ENOMEM;
  p->peers[p->n_peers++] = (auth_peer){dup, sc};
  return 0;
}

void auth_policy_set_anonymous(auth_policy *p, const auth_scopes *scopes) {
  p->anonymous = scopes ? *scopes : (auth_scopes){{0}};
}
bool auth_policy_has_token(const auth_policy *p) { return p && p->has_token; }
size_t auth_policy_peer_count(const auth_policy *p) { return p ? p->n_peers : 0; }

void auth_policy_peer_ctx(const auth_policy *p, const char *peer_id, auth_ctx *out) {
  auth_ctx_init(out, AUTH_KIND_PEER);
  if (auth_ctx_set_peer_id(out, peer_id) != 0) out->peer_id[0] = 0; /* too long: unknown */
  if (!p) return;
  out->scopes = p->anonymous;
  if (!out->peer_id[0]) return;
  for (size_t i = 0; i < p->n_peers; i++)
    if (strcmp(p->peers[i].peer_id, out->peer_id) == 0) {
      auth_scopes_union(&out->scopes, &p->peers[i].scopes);
      memcpy(out->subject, "trusted_peer", sizeof "trusted_peer");
    }
}

bool auth_policy_token_ok(const auth_policy *p, const char *token) {
  if (!p || !p->has_token || !token) return false;
  size_t n = strnlen(token, AUTH_MAX_TOKEN + 1);
  if (n == 0 || n > AUTH_MAX_TOKEN) return false;
  unsigned char h[crypto_generichash_BYTES];
  token_hash(p, token, n, h);
  return sodium_memcmp(h, p->token_hash, sizeof h) == 0;
}

void auth_policy_set_jwt(auth_policy *p, auth_jwt *jwt, bool require_peer_binding) {
  p->jwt = jwt;
  p->require_binding = jwt && require_peer_binding;
}
auth_jwt *auth_policy_jwt(const auth_policy *p) { return p ? p->jwt : NULL; }
bool auth_policy_has_credentials(const auth_policy *p) { return p && (p->has_token || p->jwt); }

static auth_present_result refused(auth_reason r, const char *d, auth_reason *reason, const char **detail) {
  if (reason) *reason = r;
  if (detail) *detail = d;
  return AUTH_PRESENT_REFUSED;
}

static auth_present_result present_jwt(const auth_policy *p, const char *cred, size_t n, auth_ctx *a,
                                       auth_reason *reason, const char **detail) {
  auth_jwt_claims cl;
  auth_jwt_status st = auth_jwt_verify(p->jwt, cred, n, clock_wall_s(), &cl);
  if (st != AUTH_JWT_OK)
    return refused(st == AUTH_JWT_E_EXPIRED ? AUTH_REASON_EXPIRED : AUTH_REASON_INVALID, auth_jwt_status_name(st),
                   reason, detail);
  /* The binding rule: a token naming a PeerId is good only from a transport that proved it. */
  if (cl.peer_id[0] && strcmp(cl.peer_id, a->peer_id) != 0)
    return refused(AUTH_REASON_INVALID, "peer_mismatch", reason, detail);
  if (!cl.peer_id[0] && p->require_binding && a->peer_id[0])
    return refused(AUTH_REASON_INVALID, "unbound_token", reason, detail);
  auth_ctx next = *a;
  if (auth_ctx_set_subject(&next, cl.subject) != 0 || auth_ctx_set_issuer(&next, cl.issuer) != 0)
    return refused(AUTH_REASON_INVALID, "bad_claims", reason, detail);
  auth_scopes_union(&next.scopes, &cl.scopes);
  if (next.kind != AUTH_KIND_LOCAL) {
    next.kind = AUTH_KIND_JWT;
    next.expires_at = cl.expires_at;
  }
  *a = next;
  return AUTH_PRESENT_OK;
}

auth_present_result auth_policy_present(const auth_policy *p, const char *cred, auth_ctx *a, auth_reason *reason,
                                        const char **detail) {
  if (reason) *reason = AUTH_REASON_NONE;
  if (detail) *detail = NULL;
  if (!p || !cred) return AUTH_PRESENT_IGNORED;
  if (auth_policy_token_ok(p, cred)) {
    auth_scopes_union(&a->scopes, &p->token_scopes);
    if (a->kind != AUTH_KIND_LOCAL && a->kind != AUTH_KIND_JWT) {
      a->kind = AUTH_KIND_TOKEN;
      memcpy(a->subject, "token", sizeof "token");
    }
    return AUTH_PRESENT_OK;
  }
  size_t n = strnlen(cred, AUTH_JWT_MAX_BYTES + 1);
  if (p->jwt && n > AUTH_JWT_MAX_BYTES && memchr(cred, '.', AUTH_JWT_MAX_BYTES))
    return refused(AUTH_REASON_INVALID, auth_jwt_status_name(AUTH_JWT_E_TOO_LARGE), reason, detail);
  if (p->jwt && auth_jwt_looks_like(cred, n)) return present_jwt(p, cred, n, a, reason, detail);
  if (p->has_token) return refused(AUTH_REASON_INVALID, "bad_token", reason, detail);
  return AUTH_PRESENT_IGNORED;
}

auth_present_result auth_policy_present_jwt(const auth_policy *p, const char *cred, auth_ctx *a, auth_reason *reason,
                                            const char **detail) {
  if (reason) *reason = AUTH_REASON_NONE;
  if (detail) *detail = NULL;
  if (!p || !p->jwt) return AUTH_PRESENT_IGNORED;
  if (!cred || !*cred) return refused(AUTH_REASON_MISSING, "no_token", reason, detail);
  size_t n = strnlen(cred, AUTH_JWT_MAX_BYTES + 1);
  if (n > AUTH_JWT_MAX_BYTES) return refused(AUTH_REASON_INVALID, auth_jwt_status_name(AUTH_JWT_E_TOO_LARGE), reason, detail);
  if (!auth_jwt_looks_like(cred, n)) return refused(AUTH_REASON_INVALID, auth_jwt_status_name(AUTH_JWT_E_MALFORMED), reason, detail);
  return present_jwt(p, cred, n, a, reason, detail);
}

bool auth_policy_present_token(const auth_policy *p, const char *token, auth_ctx *a) {
  return auth_policy_present(p, token, a, NULL, NULL) == AUTH_PRESENT_OK;
}
