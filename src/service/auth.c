/* auth.c — AuthContext construction, constant-time token check, the op/scope table (see
 * auth.h; p2p_tasks_spec.md §3.1, §4, §12.1–12.3). */
#include "service/auth.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct auth_peer {
  char *peer_id;
  unsigned scopes;
} auth_peer;

struct svc_auth_policy {
  unsigned char key[crypto_generichash_KEYBYTES]; /* per-process random hash key */
  unsigned char token_hash[crypto_generichash_BYTES];
  bool has_token;
  unsigned token_scopes;
  unsigned anonymous;
  auth_peer *peers;
  size_t n_peers, cap_peers;
};

svc_auth_policy *svc_auth_policy_new(void) {
  if (sodium_init() < 0) return NULL;
  svc_auth_policy *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  randombytes_buf(p->key, sizeof p->key);
  return p;
}

void svc_auth_policy_free(svc_auth_policy *p) {
  if (!p) return;
  for (size_t i = 0; i < p->n_peers; i++) free(p->peers[i].peer_id);
  free(p->peers);
  sodium_memzero(p, sizeof *p);
  free(p);
}

static void token_hash(const svc_auth_policy *p, const char *tok, size_t n,
                       unsigned char out[crypto_generichash_BYTES]) {
  crypto_generichash(out, crypto_generichash_BYTES, (const unsigned char *)tok, n, p->key, sizeof p->key);
}

/* Trims ASCII blanks (the Python reads strip() the env value). */
static void trim(const char **s, size_t *n) {
  while (*n && isspace((unsigned char)(*s)[0])) (*s)++, (*n)--;
  while (*n && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

int svc_auth_policy_set_token(svc_auth_policy *p, const char *token, unsigned scopes) {
  p->has_token = false;
  if (!token) return 0;
  size_t n = strlen(token);
  trim(&token, &n);
  if (n == 0) return 0;
  if (n > SVC_AUTH_MAX_TOKEN) return -EINVAL;
  token_hash(p, token, n, p->token_hash);
  p->has_token = true;
  p->token_scopes = scopes ? scopes : SVC_AUTH_DEFAULT_SCOPES;
  return 0;
}

int svc_auth_policy_token_from_env(svc_auth_policy *p, unsigned scopes) {
  static const char *names[] = {"IPFS_ACCELERATE_PY_TASK_P2P_TOKEN", "IPFS_DATASETS_PY_TASK_P2P_TOKEN"};
  if (p->has_token) return 1;
  for (size_t i = 0; i < 2; i++) {
    const char *v = getenv(names[i]);
    if (!v) continue;
    if (svc_auth_policy_set_token(p, v, scopes) == 0 && p->has_token) return 1;
  }
  return 0;
}

static bool peer_id_valid(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > SVC_AUTH_MAX_PEER_ID) return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i])) return false; /* base58btc / base32 CIDs are alphanumeric */
  return true;
}

int svc_auth_policy_add_peer(svc_auth_policy *p, const char *peer_id, unsigned scopes) {
  if (!peer_id_valid(peer_id)) return -EINVAL;
  if (!scopes) scopes = SVC_AUTH_DEFAULT_SCOPES;
  for (size_t i = 0; i < p->n_peers; i++)
    if (strcmp(p->peers[i].peer_id, peer_id) == 0) {
      p->peers[i].scopes |= scopes;
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
  p->peers[p->n_peers++] = (auth_peer){dup, scopes};
  return 0;
}

void svc_auth_policy_set_anonymous(svc_auth_policy *p, unsigned scopes) { p->anonymous = scopes & MCP_SCOPE_ALL; }
bool svc_auth_policy_has_token(const svc_auth_policy *p) { return p && p->has_token; }
size_t svc_auth_policy_peer_count(const svc_auth_policy *p) { return p ? p->n_peers : 0; }

/* --- scopes --- */

static const struct {
  const char *name;
  unsigned bit;
} scope_names[] = {
    {"cache.read", MCP_SCOPE_CACHE_READ},   {"cache.write", MCP_SCOPE_CACHE_WRITE},
    {"task.submit", MCP_SCOPE_TASK_SUBMIT}, {"worker", MCP_SCOPE_WORKER},
    {"tool.call", MCP_SCOPE_TOOL_CALL},     {"admin", MCP_SCOPE_ADMIN},
};

int svc_auth_scopes_parse(const char *text, unsigned *out) {
  unsigned acc = 0;
  const char *s = text ? text : "";
  while (*s) {
    while (*s == ',' || *s == ' ' || *s == '\t' || *s == ';') s++;
    if (!*s) break;
    const char *e = s;
    while (*e && *e != ',' && *e != ' ' && *e != '\t' && *e != ';') e++;
    size_t n = (size_t)(e - s);
    char word[32];
    if (n >= sizeof word) return -EINVAL;
    for (size_t i = 0; i < n; i++) word[i] = s[i] == '_' ? '.' : (char)tolower((unsigned char)s[i]);
    word[n] = 0;
    bool found = false;
    if (strcmp(word, "all") == 0 || strcmp(word, "*") == 0) {
      acc |= MCP_SCOPE_ALL;
      found = true;
    }
    for (size_t i = 0; !found && i < sizeof scope_names / sizeof scope_names[0]; i++)
      if (strcmp(word, scope_names[i].name) == 0) {
        acc |= scope_names[i].bit;
        found = true;
      }
    if (!found) return -EINVAL;
    s = e;
  }
  *out = acc;
  return 0;
}

json_t *svc_auth_scopes_json(unsigned scopes) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < sizeof scope_names / sizeof scope_names[0]; i++)
    if (scopes & scope_names[i].bit) json_array_append_new(a, json_string(scope_names[i].name));
  return a;
}

/* --- per-caller contexts --- */

static void auth_fix_view(svc_auth *a) {
  a->a.peer_id = a->peer_id[0] ? a->peer_id : NULL;
  a->a.subject = a->subject[0] ? a->subject : NULL;
}

void svc_auth_init_local(svc_auth *out) {
  memset(out, 0, sizeof *out);
  out->a.scopes = MCP_SCOPE_ALL;
  out->a.local = true;
  snprintf(out->subject, sizeof out->subject, "local");
  auth_fix_view(out);
}

void svc_auth_init_peer(svc_auth *out, const svc_auth_policy *p, const char *peer_id) {
  memset(out, 0, sizeof *out);
  if (peer_id && strlen(peer_id) <= SVC_AUTH_MAX_PEER_ID) snprintf(out->peer_id, sizeof out->peer_id, "%s", peer_id);
  unsigned sc = p ? p->anonymous : 0;
  if (p && out->peer_id[0])
    for (size_t i = 0; i < p->n_peers; i++)
      if (strcmp(p->peers[i].peer_id, out->peer_id) == 0) {
        sc |= p->peers[i].scopes;
        snprintf(out->subject, sizeof out->subject, "trusted_peer");
      }
  out->a.scopes = sc;
  out->a.local = false;
  auth_fix_view(out);
}

void svc_auth_copy(svc_auth *dst, const svc_auth *src) {
  if (dst == src) return;
  memcpy(dst, src, sizeof *dst);
  dst->a.credential = src->a.credential; /* borrowed, as in the source */
  auth_fix_view(dst);
}

void svc_auth_from_mcp(svc_auth *dst, const mcp_auth *src) {
  memset(dst, 0, sizeof *dst);
  if (src->peer_id && strlen(src->peer_id) <= SVC_AUTH_MAX_PEER_ID)
    snprintf(dst->peer_id, sizeof dst->peer_id, "%s", src->peer_id);
  if (src->subject) snprintf(dst->subject, sizeof dst->subject, "%s", src->subject);
  dst->a.scopes = src->scopes;
  dst->a.local = src->local;
  dst->a.credential = src->credential;
  auth_fix_view(dst);
}

bool svc_auth_token_ok(const svc_auth_policy *p, const char *token) {
  if (!p || !p->has_token || !token) return false;
  size_t n = strnlen(token, SVC_AUTH_MAX_TOKEN + 1);
  if (n == 0 || n > SVC_AUTH_MAX_TOKEN) return false;
  unsigned char h[crypto_generichash_BYTES];
  token_hash(p, token, n, h);
  return sodium_memcmp(h, p->token_hash, sizeof h) == 0;
}

bool svc_auth_present_token(svc_auth *a, const svc_auth_policy *p, const char *token) {
  if (!svc_auth_token_ok(p, token)) return false;
  a->a.scopes |= p->token_scopes;
  if (!a->subject[0] || strcmp(a->subject, "local") != 0) snprintf(a->subject, sizeof a->subject, "token");
  auth_fix_view(a);
  return true;
}

bool svc_auth_present_msg_token(svc_auth *a, const svc_auth_policy *p, const json_t *msg) {
  const json_t *t = json_is_object(msg) ? json_object_get(msg, "token") : NULL;
  return json_is_string(t) && svc_auth_present_token(a, p, json_string_value(t));
}

/* --- the op table --- */

static const struct {
  const char *name;
  svc_op op;
} op_names[] = {
    {"submit", SVC_OP_SUBMIT},
    {"claim", SVC_OP_CLAIM},
    {"claim_next", SVC_OP_CLAIM},
    {"claim_many", SVC_OP_CLAIM_MANY},
    {"claim_batch", SVC_OP_CLAIM_MANY},
    {"complete", SVC_OP_COMPLETE},
    {"task.complete", SVC_OP_COMPLETE},
    {"complete_task", SVC_OP_COMPLETE},
    {"fail", SVC_OP_FAIL},
    {"task.fail", SVC_OP_FAIL},
    {"fail_task", SVC_OP_FAIL},
    {"release", SVC_OP_RELEASE},
    {"task.release", SVC_OP_RELEASE},
    {"release_task", SVC_OP_RELEASE},
    {"task.heartbeat", SVC_OP_TASK_HEARTBEAT},
    {"task_heartbeat", SVC_OP_TASK_HEARTBEAT},
    {"lease.renew", SVC_OP_TASK_HEARTBEAT},
    {"peer.heartbeat", SVC_OP_PEER_HEARTBEAT},
    {"heartbeat", SVC_OP_PEER_HEARTBEAT},
    {"peer", SVC_OP_PEER_HEARTBEAT},
    {"list", SVC_OP_LIST},
    {"tasks.list", SVC_OP_LIST},
    {"queue.list", SVC_OP_LIST},
    {"cancel", SVC_OP_CANCEL},
    {"task.cancel", SVC_OP_CANCEL},
    {"status", SVC_OP_STATUS},
    {"capabilities", SVC_OP_STATUS},
    {"describe", SVC_OP_STATUS},
    {"tool", SVC_OP_TOOL},
    {"call_tool", SVC_OP_TOOL},
    {"tool.call", SVC_OP_TOOL},
    {"cache.get", SVC_OP_CACHE_GET},
    {"cache_get", SVC_OP_CACHE_GET},
    {"cache", SVC_OP_CACHE_GET},
    {"cache.has", SVC_OP_CACHE_HAS},
    {"cache_has", SVC_OP_CACHE_HAS},
    {"cache.set", SVC_OP_CACHE_SET},
    {"cache_set", SVC_OP_CACHE_SET},
    {"cache.delete", SVC_OP_CACHE_DELETE},
    {"cache_del", SVC_OP_CACHE_DELETE},
    {"cache_delete", SVC_OP_CACHE_DELETE},
    {"get", SVC_OP_GET},
    {"wait", SVC_OP_WAIT},
};

static const char *const op_canon[SVC_OP__COUNT] = {
    [SVC_OP_UNKNOWN] = "unknown",          [SVC_OP_SUBMIT] = "submit",
    [SVC_OP_CLAIM] = "claim",              [SVC_OP_CLAIM_MANY] = "claim_many",
    [SVC_OP_COMPLETE] = "complete",        [SVC_OP_FAIL] = "fail",
    [SVC_OP_RELEASE] = "release",          [SVC_OP_TASK_HEARTBEAT] = "task.heartbeat",
    [SVC_OP_PEER_HEARTBEAT] = "peer.heartbeat", [SVC_OP_LIST] = "list",
    [SVC_OP_CANCEL] = "cancel",            [SVC_OP_STATUS] = "status",
    [SVC_OP_TOOL] = "call_tool",           [SVC_OP_CACHE_GET] = "cache.get",
    [SVC_OP_CACHE_HAS] = "cache.has",      [SVC_OP_CACHE_SET] = "cache.set",
    [SVC_OP_CACHE_DELETE] = "cache.delete", [SVC_OP_GET] = "get",
    [SVC_OP_WAIT] = "wait",
};

svc_op svc_op_parse(const char *op) {
  if (!op) return SVC_OP_UNKNOWN;
  size_t n = strlen(op);
  trim(&op, &n);
  char w[32];
  if (n == 0 || n >= sizeof w) return SVC_OP_UNKNOWN;
  for (size_t i = 0; i < n; i++) w[i] = (char)tolower((unsigned char)op[i]);
  w[n] = 0;
  for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
    if (strcmp(w, op_names[i].name) == 0) return op_names[i].op;
  return SVC_OP_UNKNOWN;
}

const char *svc_op_name(svc_op op) { return op < SVC_OP__COUNT ? op_canon[op] : "unknown"; }

unsigned svc_op_scopes(svc_op op) {
  switch (op) {
  case SVC_OP_STATUS:
  case SVC_OP_UNKNOWN: return 0;
  case SVC_OP_SUBMIT:
  case SVC_OP_GET:
  case SVC_OP_WAIT:
  case SVC_OP_LIST:
  case SVC_OP_CANCEL: return MCP_SCOPE_TASK_SUBMIT;
  case SVC_OP_CLAIM:
  case SVC_OP_CLAIM_MANY:
  case SVC_OP_COMPLETE:
  case SVC_OP_FAIL:
  case SVC_OP_RELEASE:
  case SVC_OP_TASK_HEARTBEAT:
  case SVC_OP_PEER_HEARTBEAT: return MCP_SCOPE_WORKER;
  case SVC_OP_TOOL: return MCP_SCOPE_TOOL_CALL;
  case SVC_OP_CACHE_GET:
  case SVC_OP_CACHE_HAS: return MCP_SCOPE_CACHE_READ;
  case SVC_OP_CACHE_SET:
  case SVC_OP_CACHE_DELETE: return MCP_SCOPE_CACHE_WRITE;
  default: return MCP_SCOPE_ADMIN;
  }
}

bool svc_op_idempotent(svc_op op) {
  switch (op) {
  case SVC_OP_STATUS:
  case SVC_OP_GET:
  case SVC_OP_WAIT:
  case SVC_OP_LIST:
  case SVC_OP_CACHE_GET:
  case SVC_OP_CACHE_HAS:
  case SVC_OP_CACHE_SET:    /* same key, same value */
  case SVC_OP_CACHE_DELETE:
  case SVC_OP_CANCEL:       /* cancelling twice is harmless */
  case SVC_OP_TASK_HEARTBEAT:
  case SVC_OP_PEER_HEARTBEAT: return true;
  default: return false;    /* submit (without idempotency key), claim, complete, tool calls */
  }
}
