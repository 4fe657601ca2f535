/* table.c — the TaskQueue op table over store/queue and store/cache (see table.h;
 * p2p_tasks_spec.md §3). One function per op; taskq_handle checks scopes and dispatches. */
#include "taskq/table.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/audit.h"
#include "store/health.h"
#include "util/clock.h"
#include "util/jwrite.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/trace.h"

#define TQO_MAX_KEY 4096

typedef struct known_peer {
  char *peer_id;
  double last_seen;
  json_t *extra; /* {worker_id, supported_task_types, transport_peer_id, peer_hint} */
} known_peer;

struct taskq_ctx {
  taskq_config cfg;
  char *peer_id;
  char *session;
  char *protocol;
  json_t *capabilities;
  pthread_mutex_t mu; /* guards clock and peers */
  json_t *clock_vector; /* {node: int} */
  known_peer *peers;
  size_t n_peers;
  /* waiting claims, under mu: the total and per caller */
  unsigned n_waiting;
  struct {
    char id[96];
    unsigned n;
  } waiting[64];
  size_t peer_bytes, clock_bytes; /* accounting (taskq_scheduler_usage) */
  bool auth_required; /* a peer with no credential holds no scope (the policy is closed) */
};

void taskq_config_default(taskq_config *c) {
  memset(c, 0, sizeof *c);
  c->tools_enabled = true;
  c->wait_max_s = 300;
  c->tool_timeout_max_s = 300;
  c->max_known_peers = 1024;
  c->peer_timeout_s = 300;
  c->baseline_max_priority = 5;
  c->claim_wait_max_s = 30;
  c->claim_waiters_max = 1024;
  c->claim_waiters_per_peer = 256;
  c->max_waits_per_peer = 64;
}

taskq_ctx *taskq_new(const taskq_config *cfg) {
  if (sodium_init() < 0) return NULL;
  taskq_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return NULL;
  ctx->cfg = *cfg;
  if (ctx->cfg.wait_max_s <= 0) ctx->cfg.wait_max_s = 300;
  if (ctx->cfg.tool_timeout_max_s <= 0) ctx->cfg.tool_timeout_max_s = 300;
  if (!ctx->cfg.max_known_peers) ctx->cfg.max_known_peers = 1024;
  if (ctx->cfg.peer_timeout_s <= 0) ctx->cfg.peer_timeout_s = 300;
  if (!(ctx->cfg.claim_wait_max_s >= 0)) ctx->cfg.claim_wait_max_s = 0;
  if (!ctx->cfg.max_waits_per_peer) ctx->cfg.max_waits_per_peer = 64;
  ctx->peer_id = strdup(cfg->peer_id ? cfg->peer_id : "");
  ctx->session = strdup(cfg->session ? cfg->session : "");
  ctx->capabilities = cfg->capabilities
                          ? json_deep_copy(cfg->capabilities)
                          : json_pack("{s:[s], s:[], s:{}, s:{}, s:{}, s:[]}", "task_types", "tool.call", "models",
                                      "endpoints_by_model", "endpoint_types_by_model", "hwtest", "resource_keys");
  ctx->clock_vector = json_pack("{s:i}", "taskqueue-service", 0);
  ctx->peers = calloc(ctx->cfg.max_known_peers, sizeof *ctx->peers);
  if (!ctx->peer_id || !ctx->session || !ctx->capabilities || !ctx->clock_vector || !ctx->peers ||
      pthread_mutex_init(&ctx->mu, NULL) != 0) {
    free(ctx->peer_id);
    free(ctx->session);
    json_decref(ctx->capabilities);
    json_decref(ctx->clock_vector);
    free(ctx->peers);
    free(ctx);
    return NULL;
  }
  ctx->cfg.peer_id = ctx->peer_id;
  ctx->cfg.session = ctx->session;
  ctx->cfg.protocol = NULL; /* borrowed text is not kept: the caller's string may go */
  if (cfg->protocol && !(ctx->protocol = strdup(cfg->protocol))) {
    taskq_free(ctx);
    return NULL;
  }
  ctx->cfg.protocol = ctx->protocol;
  auth_ctx anon;
  auth_policy_peer_ctx(cfg->policy, NULL, &anon);
  ctx->auth_required = auth_scopes_empty(&anon.scopes);
  ctx->cfg.capabilities = ctx->capabilities;
  return ctx;
}

void taskq_free(taskq_ctx *ctx) {
  if (!ctx) return;
  for (size_t i = 0; i < ctx->n_peers; i++) {
    free(ctx->peers[i].peer_id);
    json_decref(ctx->peers[i].extra);
  }
  free(ctx->peers);
  json_decref(ctx->clock_vector);
  json_decref(ctx->capabilities);
  pthread_mutex_destroy(&ctx->mu);
  free(ctx->peer_id);
  free(ctx->session);
  free(ctx->protocol);
  free(ctx);
}

const char *taskq_peer_id(const taskq_ctx *ctx) { return ctx->peer_id; }

int taskq_set_capabilities(taskq_ctx *ctx, const json_t *caps) {
  json_t *c = json_deep_copy(caps);
  if (!c) return -ENOMEM;
  json_decref(ctx->capabilities);
  ctx->capabilities = c;
  ctx->cfg.capabilities = c;
  return 0;
}

int taskq_set_peer_id(taskq_ctx *ctx, const char *peer_id) {
  char *dup = strdup(peer_id ? peer_id : "");
  if (!dup) return -ENOMEM;
  free(ctx->peer_id);
  ctx->peer_id = dup;
  ctx->cfg.peer_id = dup;
  return 0;
}

/* ---------- small JSON helpers ---------- */

/* {"ok": ok[, k1: v1][, k2: v2], "peer_id": …} with the keys in that order, or NULL (out of
 * memory, or a string that is not UTF-8). The replies of the hot ops: json_pack parses its
 * format each time (~2.5 k instructions a reply, four replies a task). */
static json_t *reply_of(const taskq_ctx *ctx, bool ok, const char *k1, const char *v1, const char *k2, const char *v2) {
  json_t *r = json_object();
  if (!r) return NULL;
  int bad = json_object_set_new_nocheck(r, "ok", json_boolean(ok));
  if (k1) bad |= json_object_set_new_nocheck(r, k1, json_string(v1));
  if (k2) bad |= json_object_set_new_nocheck(r, k2, json_string(v2));
  bad |= json_object_set_new_nocheck(r, "peer_id", json_string(ctx->peer_id));
  if (bad) {
    json_decref(r);
    return NULL;
  }
  return r;
}

static json_t *reply_ok(const taskq_ctx *ctx) { return reply_of(ctx, true, NULL, NULL, NULL, NULL); }

json_t *taskq_error(const taskq_ctx *ctx, const char *code) { return reply_of(ctx, false, "error", code, NULL, NULL); }

static const char *get_str(const json_t *msg, const char *key) {
  const json_t *v = json_object_get(msg, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* First non-empty string among keys. */
static const char *get_str_any(const json_t *msg, const char *const *keys) {
  for (; *keys; keys++) {
    const char *s = get_str(msg, *keys);
    if (s && *s) return s;
  }
  return NULL;
}

static bool json_truthy(const json_t *v) {
  if (!v) return false;
  switch (json_typeof(v)) {
  case JSON_TRUE: return true;
  case JSON_INTEGER: return json_integer_value(v) != 0;
  case JSON_REAL: return json_real_value(v) != 0.0;
  case JSON_STRING: return json_string_length(v) > 0;
  case JSON_ARRAY: return json_array_size(v) > 0;
  case JSON_OBJECT: return json_object_size(v) > 0;
  default: return false;
  }
}

/* A number (or numeric string) at key, else dflt. */
static double get_num(const json_t *msg, const char *key, double dflt) {
  const json_t *v = json_object_get(msg, key);
  if (json_is_number(v)) return json_number_value(v);
  if (json_is_string(v)) {
    char *end;
    double d = strtod(json_string_value(v), &end);
    if (end != json_string_value(v) && *end == 0 && isfinite(d)) return d;
  }
  return dflt;
}

static bool get_bool(const json_t *msg, const char *key, bool dflt) {
  const json_t *v = json_object_get(msg, key);
  return v && !json_is_null(v) ? json_truthy(v) : dflt;
}

/* Borrowed C string view of a JSON array of strings (for tq filters). */
typedef struct types_view {
  const char *v[TASKQ_MAX_TYPES * 12];
  size_t n;
} types_view;

static void types_view_of(const json_t *arr, types_view *tv) {
  size_t i;
  json_t *x;
  tv->n = 0;
  json_array_foreach(arr, i, x) {
    if (tv->n >= sizeof tv->v / sizeof tv->v[0]) break;
    tv->v[tv->n++] = json_string_value(x);
  }
}

/* ---------- scheduler state: MerkleClock + known peers (§3.2) ---------- */

static int cmp_keys(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

void taskq_merkle_root(const json_t *vector, char out[65]) {
  /* json.dumps(sorted(vector.items())) with Python's default separators. */
  size_t n = json_object_size(vector), k = 0;
  const char **keys = calloc(n ? n : 1, sizeof *keys);
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)vector, key, val) {
    if (keys) keys[k++] = key;
  }
  if (keys) qsort(keys, k, sizeof *keys, cmp_keys);
  json_t *arr = json_array();
  for (size_t i = 0; keys && i < k; i++)
    json_array_append_new(arr, json_pack("[s, O]", keys[i], json_object_get(vector, keys[i])));
  char *text = json_dumps(arr, JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)(text ? text : ""), text ? strlen(text) : 0);
  sodium_bin2hex(out, 65, h, sizeof h);
  free(text);
  json_decref(arr);
  free(keys);
}

static json_t *clock_dict_locked(taskq_ctx *ctx) {
  char root[65];
  taskq_merkle_root(ctx->clock_vector, root);
  return json_pack("{s:s, s:O, s:s}", "node_id", "taskqueue-service", "vector", ctx->clock_vector, "merkle_root", root);
}

/* MerkleClock.update(other): element-wise max, then tick ourselves. A node name longer than
 * TASKQ_MAX_NAME or a vector past max_known_peers nodes is not added (at most 64 new nodes per
 * merge): a heartbeat cannot grow the clock without bound. */
static void clock_merge_locked(taskq_ctx *ctx, const json_t *clock) {
  const json_t *vec = json_object_get(clock, "vector");
  if (!json_is_object(vec)) return;
  const char *key;
  json_t *val;
  size_t added = 0;
  json_object_foreach((json_t *)vec, key, val) {
    if (!json_is_integer(val)) continue;
    json_t *mine = json_object_get(ctx->clock_vector, key);
    if (!mine) {
      if (strlen(key) > TASKQ_MAX_NAME || json_object_size(ctx->clock_vector) >= ctx->cfg.max_known_peers ||
          ++added > 64)
        continue;
      json_object_set_new(ctx->clock_vector, key, json_integer(json_integer_value(val)));
      ctx->clock_bytes += strlen(key) + 1;
    } else if (json_integer_value(val) > json_integer_value(mine)) {
      json_integer_set(mine, json_integer_value(val));
    }
  }
  json_t *self = json_object_get(ctx->clock_vector, "taskqueue-service");
  if (self) json_integer_set(self, json_integer_value(self) + 1);
}

/* Bytes an entry holds, for the accounting (taskq_scheduler_usage). */
static size_t peer_entry_bytes(const known_peer *p) {
  size_t n = sizeof *p + strlen(p->peer_id) + 1;
  const char *k;
  json_t *v;
  json_object_foreach(p->extra, k, v) {
    n += strlen(k) + 64;
    if (json_is_string(v)) n += json_string_length(v);
    size_t i;
    json_t *x;
    if (json_is_array(v)) json_array_foreach(v, i, x) n += json_string_length(x) + 48;
  }
  return n;
}

/* Records that `peer` (a key already checked against TASKQ_MAX_NAME) was seen, merging its
 * clock and replacing its extra (taken, may be NULL; with merge its keys are added to the
 * entry's). Full table: the peer seen longest ago is dropped. */
static void peer_seen(taskq_ctx *ctx, const char *peer, const json_t *clock, json_t *extra, bool merge) {
  assert(strlen(peer) <= TASKQ_MAX_NAME);
  double now = clock_wall_s();
  pthread_mutex_lock(&ctx->mu);
  if (json_is_object(clock)) clock_merge_locked(ctx, clock);
  size_t idx = ctx->n_peers;
  for (size_t i = 0; i < ctx->n_peers; i++)
    if (strcmp(ctx->peers[i].peer_id, peer) == 0) {
      idx = i;
      break;
    }
  if (idx == ctx->n_peers) {
    char *dup = strdup(peer);
    if (!dup) goto out;
    if (ctx->n_peers == ctx->cfg.max_known_peers) {
      /* full: drop the peer seen longest ago */
      size_t old = 0;
      for (size_t i = 1; i < ctx->n_peers; i++)
        if (ctx->peers[i].last_seen < ctx->peers[old].last_seen) old = i;
      ctx->peer_bytes -= peer_entry_bytes(&ctx->peers[old]);
      free(ctx->peers[old].peer_id);
      json_decref(ctx->peers[old].extra);
      ctx->peers[old] = ctx->peers[--ctx->n_peers];
      idx = ctx->n_peers;
    }
    ctx->peers[idx] = (known_peer){dup, now, NULL};
    ctx->n_peers++;
    ctx->peer_bytes += peer_entry_bytes(&ctx->peers[idx]);
  }
  ctx->peers[idx].last_seen = now;
  if (extra) {
    ctx->peer_bytes -= peer_entry_bytes(&ctx->peers[idx]);
    if (merge && ctx->peers[idx].extra) { /* keep what claims recorded (worker_id, types) */
      json_t *m = json_copy(ctx->peers[idx].extra);
      if (m && json_object_update(m, extra) == 0) {
        json_decref(extra);
        extra = m;
      } else {
        json_decref(m);
      }
    }
    json_decref(ctx->peers[idx].extra);
    ctx->peers[idx].extra = json_incref(extra);
    ctx->peer_bytes += peer_entry_bytes(&ctx->peers[idx]);
  }
  assert(ctx->n_peers <= ctx->cfg.max_known_peers);
out:
  pthread_mutex_unlock(&ctx->mu);
  json_decref(extra);
}

static int cmp_last_seen_desc(const void *a, const void *b) {
  double x = (*(const known_peer *const *)a)->last_seen, y = (*(const known_peer *const *)b)->last_seen;
  return x > y ? -1 : x < y;
}

/* [{peer_id,last_seen,…extra}] of peers seen within the timeout (full: with the extra keys),
 * the most recently seen first, at most `limit` rows; *alive (may be NULL) counts them all. */
static json_t *known_peers_json(taskq_ctx *ctx, bool full, bool workers_only, size_t limit, size_t *alive) {
  json_t *arr = json_array();
  double now = clock_wall_s();
  pthread_mutex_lock(&ctx->mu);
  const known_peer **v = calloc(ctx->n_peers ? ctx->n_peers : 1, sizeof *v);
  size_t n = 0;
  for (size_t i = 0; v && i < ctx->n_peers; i++) {
    const known_peer *p = &ctx->peers[i];
    if (now - p->last_seen > ctx->cfg.peer_timeout_s) continue;
    const char *wid = p->extra ? get_str(p->extra, "worker_id") : NULL;
    if (workers_only && !(wid && *wid)) continue;
    v[n++] = p;
  }
  if (v) qsort(v, n, sizeof *v, cmp_last_seen_desc);
  for (size_t i = 0; i < n && i < limit; i++) {
    json_t *row = json_pack("{s:s, s:f}", "peer_id", v[i]->peer_id, "last_seen", v[i]->last_seen);
    if (full && v[i]->extra) json_object_update_missing(row, v[i]->extra);
    json_array_append_new(arr, row);
  }
  pthread_mutex_unlock(&ctx->mu);
  free(v);
  if (alive) *alive = n;
  return arr;
}

void taskq_scheduler_usage(taskq_ctx *ctx, taskq_sched_usage *out) {
  pthread_mutex_lock(&ctx->mu);
  out->peers = ctx->n_peers;
  out->max_peers = ctx->cfg.max_known_peers;
  out->clock_nodes = json_object_size(ctx->clock_vector);
  out->bytes = ctx->peer_bytes + ctx->clock_bytes + ctx->cfg.max_known_peers * sizeof(known_peer);
  pthread_mutex_unlock(&ctx->mu);
}

/* A copy of s when it is a string of 1..max bytes, else NULL (not kept). */
static json_t *bounded_str(const char *s, size_t max) {
  return s && *s && strlen(s) <= max ? json_string(s) : NULL;
}

/* The extra a claim records for its peer, with every string bounded: worker_id, peer_hint,
 * session_id ≤ TASKQ_MAX_NAME bytes (longer ones are not kept) and at most TASKQ_MAX_TYPES task
 * types of ≤ TASKQ_MAX_NAME bytes each. New reference (NULL on ENOMEM). */
static json_t *bounded_extra(const char *worker, const char *hint, const char *transport, const json_t *types,
                             const char *session) {
  json_t *x = json_object();
  json_t *t = json_array();
  size_t i;
  json_t *v;
  json_array_foreach(types, i, v) {
    if (json_array_size(t) >= TASKQ_MAX_TYPES) break;
    if (json_is_string(v) && json_string_length(v) <= TASKQ_MAX_NAME) json_array_append(t, v);
  }
  json_t *w = bounded_str(worker, TASKQ_MAX_NAME), *h = bounded_str(hint, TASKQ_MAX_NAME),
         *tr = bounded_str(transport, TASKQ_MAX_NAME), *se = bounded_str(session, TASKQ_MAX_NAME);
  if (x && t) {
    json_object_set_new(x, "worker_id", w ? w : json_string(""));
    json_object_set_new(x, "peer_hint", h ? h : json_string(""));
    json_object_set_new(x, "transport_peer_id", tr ? tr : json_string(""));
    json_object_set_new(x, "supported_task_types", t);
    if (se) json_object_set_new(x, "session_id", se);
    return x;
  }
  json_decref(w), json_decref(h), json_decref(tr), json_decref(se), json_decref(t), json_decref(x);
  return NULL;
}

/* The scheduler key of a caller (see table.h): a remote caller is its proven PeerId, whatever
 * peer it names; the local operator may name any peer (else its own id, else `fallback`).
 * NULL when there is none or the named one is too long. */
static const char *sched_key(const auth_ctx *a, const char *named, const char *fallback) {
  if (!auth_ctx_is_local(a) && a->peer_id[0]) return a->peer_id;
  const char *k = auth_ctx_is_local(a) ? (named ? named : a->peer_id[0] ? a->peer_id : fallback) : fallback;
  return k && *k && strlen(k) <= TASKQ_MAX_NAME ? k : NULL;
}

/* ---------- ops ---------- */

typedef struct op_env {
  taskq_ctx *ctx;
  const json_t *msg;
  const taskq_call *call;
  const auth_ctx *auth; /* effective (transport + message token) */
} op_env;

static json_t *err(op_env *e, const char *code) { return taskq_error(e->ctx, code); }

static json_t *err_detail(op_env *e, const char *code, const char *detail) {
  json_t *r = err(e, code);
  if (r && detail) json_object_set_new(r, "detail", json_string(detail));
  return r;
}

/* The queue's request for a submit message, for op_submit and taskq_handle_async alike: the
 * defaults of Python's submit (task_type "text-generation", model_name ""), and a payload that is
 * not an object wrapped as {"payload": <it>}. Returns that wrapper (the caller json_decrefs it
 * after the queue call; req borrows from it and from m); req->payload is NULL only when the
 * wrapper could not be allocated. */
static json_t *submit_req_of(const json_t *m, tq_submit_req *req) {
  const char *task_type = get_str(m, "task_type");
  const char *model = get_str(m, "model_name");
  json_t *payload = json_object_get(m, "payload");
  json_t *owned = NULL;
  if (!json_is_object(payload)) {
    owned = json_pack("{s:O}", "payload", payload ? payload : json_null());
    payload = owned;
  }
  *req = (tq_submit_req){0};
  req->task_type = task_type && *task_type ? task_type : "text-generation";
  req->model_name = model ? model : "";
  req->payload = payload;
  req->task_id = get_str(m, "task_id");
  req->idempotency_key = get_str(m, "idempotency_key");
  return owned;
}

static json_t *op_submit(op_env *e) {
  tq_submit_req req;
  json_t *owned = submit_req_of(e->msg, &req);
  char id[33];
  bool replayed = false;
  int rc = tq_submit(e->ctx->cfg.queue, &req, id, &replayed);
  json_decref(owned);
  if (rc < 0) {
    /* Python lets the queue's exception escape: internal_error + detail (§3.1). */
    return err_detail(e, "internal_error", tq_strerror(rc));
  }
  json_t *r = reply_ok(e->ctx);
  json_object_set_new(r, "task_id", json_string(id));
  if (replayed) json_object_set_new(r, "replayed", json_true());
  return r;
}

static const char *const K_SESSION[] = {"session_id", "session", "p2p_session", NULL};
static const char *const K_PEER[] = {"peer", "peer_id", NULL};
static const char *const K_WORKER[] = {"worker_id", "assigned_worker", NULL};

/* ---------- deterministic claim (§3.2, opt-in) ---------- */

static void sha256_hex_of(const char *text, char out[65]) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
  sodium_bin2hex(out, 65, h, sizeof h);
}

/* Hamming distance between two 64-hex-digit values (256 bits). */
static int hex_hamming(const char *a, const char *b) {
  int d = 0;
  for (size_t i = 0; i < 64; i++) {
    int x = (isdigit((unsigned char)a[i]) ? a[i] - '0' : a[i] - 'a' + 10) ^
            (isdigit((unsigned char)b[i]) ? b[i] - '0' : b[i] - 'a' + 10);
    d += __builtin_popcount((unsigned)x);
  }
  return d;
}

/* select_owner_peer: the peer whose sha256 is nearest (Hamming) to sha256(clock:task); the first
 * one wins a tie. Returns the index into peers. */
static size_t owner_of(const char *clock_hash, const char *task_hash, const char *const *peers, size_t n) {
  char combined_in[160], combined[65];
  snprintf(combined_in, sizeof combined_in, "%s:%s", clock_hash, task_hash);
  sha256_hex_of(combined_in, combined);
  size_t best = 0;
  int best_d = 1 << 30;
  for (size_t i = 0; i < n; i++) {
    char ph[65];
    sha256_hex_of(peers[i], ph);
    int d = hex_hamming(combined, ph);
    if (d < best_d) best_d = d, best = i;
  }
  return best;
}

static int cmp_candidates(const void *x, const void *y) {
  const tq_task *a = *(tq_task *const *)x, *b = *(tq_task *const *)y;
  int pa = a->priority < 1 ? 1 : a->priority > 10 ? 10 : a->priority;
  int pb = b->priority < 1 ? 1 : b->priority > 10 ? 10 : b->priority;
  if (pa != pb) return pb - pa; /* (10 - p) ascending */
  return a->created_at < b->created_at ? -1 : a->created_at > b->created_at;
}

/* Picks the task this peer owns among the oldest 200 queued ones and claims exactly that one;
 * *out NULL when it owns none or the claim lost (no fallback, as in the Python service). */
static int deterministic_claim(op_env *e, const char *ident, const tq_claim_opts *o, tq_task **out) {
  *out = NULL;
  tq_list_opts lo = {0};
  lo.status = TQ_QUEUED;
  lo.task_types = o->task_types;
  lo.n_task_types = o->n_task_types;
  lo.limit = 200;
  tq_task **v = NULL;
  size_t n = 0;
  int rc = tq_list(e->ctx->cfg.queue, &lo, &v, &n);
  if (rc < 0) return rc;
  qsort(v, n, sizeof *v, cmp_candidates);
  /* alive peers, in the order they were first seen, then the requester */
  taskq_ctx *ctx = e->ctx;
  const char **peers = calloc(ctx->cfg.max_known_peers + 1, sizeof *peers);
  char **owned = calloc(ctx->cfg.max_known_peers + 1, sizeof *owned);
  size_t np = 0;
  char clock_hash[65];
  double now = clock_wall_s();
  pthread_mutex_lock(&ctx->mu);
  taskq_merkle_root(ctx->clock_vector, clock_hash);
  for (size_t i = 0; peers && owned && i < ctx->n_peers; i++)
    if (now - ctx->peers[i].last_seen <= ctx->cfg.peer_timeout_s && (owned[np] = strdup(ctx->peers[i].peer_id)))
      peers[np] = owned[np], np++;
  pthread_mutex_unlock(&ctx->mu);
  const char *pick = NULL;
  if (peers && owned) {
    peers[np++] = ident;
    for (size_t i = 0; i < n && !pick; i++) {
      tq_task *t = v[i];
      if (t->session_id && (!o->session_id || strcmp(o->session_id, t->session_id) != 0)) continue;
      if (t->sticky_worker_id) {
        if (strcmp(t->sticky_worker_id, ident) == 0) pick = t->task_id;
        continue;
      }
      char th_in[600], th[65];
      snprintf(th_in, sizeof th_in, "%s:%s:%s", t->task_id, t->task_type, t->model_name ? t->model_name : "");
      sha256_hex_of(th_in, th);
      if (strcmp(peers[owner_of(clock_hash, th, peers, np)], ident) == 0) pick = t->task_id;
    }
  }
  if (pick) rc = tq_claim(ctx->cfg.queue, pick, o, out);
  for (size_t i = 0; owned && i < np; i++) free(owned[i]); /* the requester's slot is NULL */
  free(owned);
  free(peers);
  tq_task_array_free(v, n);
  return rc < 0 ? rc : 0;
}

/* A waiting claim may start for this caller (counted until claim_wait_leave). */
static bool claim_wait_enter(taskq_ctx *ctx, const char *ident) {
  bool ok = false;
  pthread_mutex_lock(&ctx->mu);
  if (ctx->n_waiting < ctx->cfg.claim_waiters_max) {
    size_t n = sizeof ctx->waiting / sizeof ctx->waiting[0], free_i = n;
    for (size_t i = 0; i < n; i++) {
      if (ctx->waiting[i].n && strncmp(ctx->waiting[i].id, ident, sizeof ctx->waiting[i].id - 1) == 0) {
        free_i = i;
        break;
      }
      if (!ctx->waiting[i].n && free_i == n) free_i = i;
    }
    if (free_i < n && ctx->waiting[free_i].n < ctx->cfg.claim_waiters_per_peer) {
      if (!ctx->waiting[free_i].n) { /* a longer id is counted by its first 95 bytes */
        size_t len = strnlen(ident, sizeof ctx->waiting[free_i].id - 1);
        memcpy(ctx->waiting[free_i].id, ident, len);
        ctx->waiting[free_i].id[len] = 0;
      }
      ctx->waiting[free_i].n++;
      ctx->n_waiting++;
      ok = true;
    }
  }
  pthread_mutex_unlock(&ctx->mu);
  return ok;
}

static void claim_wait_leave(taskq_ctx *ctx, const char *ident) {
  pthread_mutex_lock(&ctx->mu);
  for (size_t i = 0; i < sizeof ctx->waiting / sizeof ctx->waiting[0]; i++)
    if (ctx->waiting[i].n && strncmp(ctx->waiting[i].id, ident, sizeof ctx->waiting[i].id - 1) == 0) {
      ctx->waiting[i].n--;
      ctx->n_waiting--;
      break;
    }
  pthread_mutex_unlock(&ctx->mu);
}

/* The wait a claim asks for, capped; 0 = answer at once. */
double taskq_claim_wait_s(const taskq_ctx *ctx, const json_t *msg) {
  const json_t *w = json_object_get(msg, "wait_s");
  double v = json_is_number(w) ? json_number_value(w) : 0;
  if (!(v > 0)) return 0;
  return v > ctx->cfg.claim_wait_max_s ? ctx->cfg.claim_wait_max_s : v;
}

/* One claim that waits up to wait_s for a task when none is claimable now. *waited: the wait
 * applied (0 when it answered at once: nothing asked, or over a cap). */
static int claim_next_waiting(op_env *e, const char *ident, const tq_claim_opts *o, double wait_s, tq_task **t,
                              double *waited) {
  tq_queue *q = e->ctx->cfg.queue;
  *waited = 0;
  uint64_t gen = wait_s > 0 ? tq_work_gen(q) : 0;
  int rc = tq_claim_next(q, o, t);
  if (rc < 0 || *t || !(wait_s > 0) || !claim_wait_enter(e->ctx, ident)) return rc;
  *waited = wait_s;
  int64_t end = clock_mono_ms() + (int64_t)(wait_s * 1000.0);
  bool (*cancelled)(void *) = e->call ? e->call->cancelled : NULL;
  void *cud = e->call ? e->call->cancel_ud : NULL;
  for (;;) {
    int64_t left = end - clock_mono_ms();
    if (left <= 0) break;
    bool targeted = false;
    if (tq_wait_work(q, gen, o, (double)left / 1000.0, cancelled, cud, &targeted) != 0) break;
    gen = tq_work_gen(q);
    if ((rc = tq_claim_next(q, o, t)) < 0 || *t) break;
    if (targeted) tq_work_pass(q); /* chosen for a task we did not get: let the others look */
  }
  claim_wait_leave(e->ctx, ident);
  return rc;
}

/* What both claim paths (op_claim, blocking, and taskq_handle_async) build from a claim
 * message: the queue's filter and options, and the scheduler identity; the caller is recorded
 * in the scheduler table. 0, or -ENOMEM. On success the caller owns p->types and json_decref's
 * it after the claim (p->o.task_types points into p->tv, which points into p->types); p must
 * not move while p->o is used. */
typedef struct claim_prep {
  json_t *types;
  types_view tv;
  tq_claim_opts o;
  const char *ident; /* the scheduler key (proven PeerId) or the worker id */
} claim_prep;

static int claim_prepare(op_env *e, const char *worker, claim_prep *p) {
  const json_t *m = e->msg;
  const json_t *types_in = json_object_get(m, "supported_task_types");
  if (!types_in || json_is_null(types_in)) types_in = json_object_get(m, "task_types");
  p->types = taskq_task_types_normalize(types_in, true);
  if (!p->types) return -ENOMEM;
  const char *session = get_str_any(m, K_SESSION);
  const char *peer = get_str_any(m, K_PEER);
  const char *transport = e->auth->peer_id[0] ? e->auth->peer_id : NULL;
  /* The scheduler entry is the caller's proven PeerId (a remote caller cannot update another
   * peer's entry or invent one); the peer it names is kept as peer_hint. */
  const char *key = sched_key(e->auth, peer, worker);
  p->ident = key ? key : worker;
  if (key) {
    json_t *extra = bounded_extra(worker, peer, transport, p->types, session);
    if (extra) peer_seen(e->ctx, key, json_object_get(m, "clock"), extra, false);
  }
  types_view_of(p->types, &p->tv);
  memset(&p->o, 0, sizeof p->o);
  p->o.worker_id = worker;
  p->o.task_types = p->tv.n ? p->tv.v : NULL;
  p->o.n_task_types = p->tv.n;
  p->o.session_id = session;
  p->o.lease_seconds = get_num(m, "lease_seconds", 0);
  if (p->o.lease_seconds < 0) p->o.lease_seconds = 0;
  /* §4.3: a baseline caller (nothing verified vouches for it) claims low-priority work only */
  if (e->ctx->cfg.trust_tiers && auth_ctx_tier(e->auth) == AUTH_TIER_BASELINE)
    p->o.max_priority = e->ctx->cfg.baseline_max_priority >= 1 && e->ctx->cfg.baseline_max_priority <= 10
                            ? e->ctx->cfg.baseline_max_priority
                            : 5;
  return 0;
}

/* The status a complete op names: "completed" (default), "cancelled", anything else failed (§3.1). */
static tq_status complete_status_of(const json_t *m) {
  const char *st = get_str(m, "status");
  if (!st || !*st) return TQ_COMPLETED;
  char w[16];
  snprintf(w, sizeof w, "%s", st);
  for (char *c = w; *c; c++) *c = (char)tolower((unsigned char)*c);
  if (strcmp(w, "completed") == 0) return TQ_COMPLETED;
  if (strcmp(w, "cancelled") == 0) return TQ_CANCELLED;
  return TQ_FAILED;
}

static json_t *op_claim(op_env *e, bool many) {
  const json_t *m = e->msg;
  const char *worker = get_str(m, "worker_id");
  if (!worker || !*worker) return err(e, "missing_worker_id");
  claim_prep cp;
  if (claim_prepare(e, worker, &cp) != 0) return NULL;
  json_t *types = cp.types;
  const char *ident = cp.ident;
  tq_claim_opts o = cp.o;
  json_t *r = NULL;
  if (e->ctx->cfg.deterministic) {
    /* deterministic mode hands out at most one task per claim, claim_many included (§3.1) */
    tq_task *t = NULL;
    int rc = deterministic_claim(e, ident, &o, &t);
    if (rc < 0) {
      r = err(e, tq_strerror(rc));
    } else {
      r = reply_ok(e->ctx);
      json_t *tj = t ? tq_task_to_json(t, TQ_JSON_CLAIM | TQ_JSON_EXTRA) : NULL;
      if (many) json_object_set_new(r, "tasks", tj ? json_pack("[o]", tj) : json_array());
      else json_object_set_new(r, "task", tj ? tj : json_null());
      tq_task_free(t);
    }
  } else if (!many) {
    tq_task *t = NULL;
    double waited = 0;
    int rc = claim_next_waiting(e, ident, &o, taskq_claim_wait_s(e->ctx, m), &t, &waited);
    if (rc < 0) {
      r = err(e, tq_strerror(rc));
    } else {
      r = reply_ok(e->ctx);
      json_object_set_new(r, "task", t ? tq_task_to_json(t, TQ_JSON_CLAIM | TQ_JSON_EXTRA) : json_null());
      if (waited > 0) json_object_set_new(r, "wait_s", json_real(waited));
      tq_task_free(t);
    }
  } else {
    double mt = get_num(m, "max_tasks", NAN);
    if (isnan(mt)) mt = get_num(m, "limit", 1);
    o.max_tasks = mt < 1 ? 1 : mt > 128 ? 128 : (size_t)mt;
    const json_t *st = json_object_get(m, "same_task_type");
    if (!st) st = json_object_get(m, "same_type");
    o.same_task_type = st && !json_is_null(st) ? json_truthy(st) : true;
    tq_task **v = NULL;
    size_t n = 0;
    int rc = tq_claim_many(e->ctx->cfg.queue, &o, &v, &n);
    if (rc < 0) {
      r = err(e, tq_strerror(rc));
    } else {
      json_t *arr = json_array();
      for (size_t i = 0; i < n; i++) json_array_append_new(arr, tq_task_to_json(v[i], TQ_JSON_CLAIM | TQ_JSON_EXTRA));
      tq_task_array_free(v, n);
      r = reply_ok(e->ctx);
      json_object_set_new(r, "tasks", arr);
    }
  }
  json_decref(types);
  return r;
}

/* The fence a worker presents: worker_id (or assigned_worker) and optional lease_epoch. */
static bool fence_of(op_env *e, tq_fence *f) {
  f->worker_id = get_str_any(e->msg, K_WORKER);
  double ep = get_num(e->msg, "lease_epoch", 0);
  f->lease_epoch = ep > 0 ? (int64_t)ep : 0;
  return f->worker_id != NULL;
}

static json_t *reply_task_ok(op_env *e, bool ok, const char *task_id, int rc) {
  json_t *r = json_pack("{s:b, s:s, s:s}", "ok", ok, "task_id", task_id, "peer_id", e->ctx->peer_id);
  if (r && !ok && rc < 0) json_object_set_new(r, "error", json_string(tq_strerror(rc)));
  return r;
}

static json_t *op_complete(op_env *e) {
  const char *task_id = get_str(e->msg, "task_id");
  if (!task_id || !*task_id) return err(e, "missing_task_id");
  tq_status status = complete_status_of(e->msg);
  tq_fence f;
  bool fenced = fence_of(e, &f);
  if (!fenced && !e->ctx->cfg.compat_unfenced_complete && !auth_ctx_is_local(e->auth)) return err(e, "missing_worker_id");
  json_t *result = json_object_get(e->msg, "result");
  if (json_is_null(result)) result = NULL;
  const char *error = get_str(e->msg, "error");
  int rc = tq_complete(e->ctx->cfg.queue, task_id, fenced ? &f : NULL, status, result, error);
  return reply_task_ok(e, rc == 0, task_id, rc);
}

static json_t *op_fail(op_env *e) {
  const char *task_id = get_str(e->msg, "task_id");
  if (!task_id || !*task_id) return err(e, "missing_task_id");
  tq_fence f;
  if (!fence_of(e, &f)) return err(e, "missing_worker_id");
  const char *error = get_str(e->msg, "error");
  if (!error) error = "failed";
  tq_status final = TQ_FAILED;
  int rc;
  if (get_bool(e->msg, "retry", true)) {
    double delay = get_num(e->msg, "delay_s", 0);
    rc = tq_retry(e->ctx->cfg.queue, task_id, &f, delay < 0 ? 0 : delay, error, &final);
  } else {
    json_t *result = json_object_get(e->msg, "result");
    rc = tq_complete(e->ctx->cfg.queue, task_id, &f, TQ_FAILED, json_is_null(result) ? NULL : result, error);
  }
  json_t *r = reply_task_ok(e, rc == 0, task_id, rc);
  if (r && rc == 0) json_object_set_new(r, "status", json_string(tq_status_name(final)));
  return r;
}

static json_t *op_release(op_env *e) {
  const char *task_id = get_str(e->msg, "task_id");
  if (!task_id || !*task_id) return err(e, "missing_task_id");
  tq_fence f;
  if (!fence_of(e, &f)) return err(e, "missing_worker_id");
  const char *reason = get_str(e->msg, "reason");
  int rc = tq_release(e->ctx->cfg.queue, task_id, &f, reason && *reason ? reason : NULL);
  return reply_task_ok(e, rc == 0, task_id, rc);
}

static json_t *op_task_heartbeat(op_env *e) {
  const char *task_id = get_str(e->msg, "task_id");
  if (!task_id || !*task_id) return err(e, "missing_task_id");
  tq_fence f;
  if (!fence_of(e, &f)) return err(e, "missing_worker_id");
  double lease = get_num(e->msg, "lease_seconds", 0);
  tq_heartbeat_reply hb = {0};
  int rc = tq_heartbeat(e->ctx->cfg.queue, task_id, &f, lease < 0 ? 0 : lease, &hb);
  json_t *r = reply_task_ok(e, rc == 0, task_id, rc);
  if (r && rc == 0) {
    json_object_set_new(r, "lease_until", json_real(hb.lease_until));
    json_object_set_new(r, "cancel_requested", json_boolean(hb.cancel_requested));
  }
  return r;
}

/* Heartbeat replies list at most this many known peers (the most recently seen): every reply
 * listing the whole table (1,024 rows, ~100 KB of JSON) made each small heartbeat cost the
 * server a large reply — the RSS growth of issue 9 item 5. */
#define TASKQ_HEARTBEAT_PEERS 32

static json_t *op_peer_heartbeat(op_env *e) {
  const char *named = get_str_any(e->msg, K_PEER);
  const char *key = sched_key(e->auth, named, NULL);
  if (!key) return err(e, named && strlen(named) > TASKQ_MAX_NAME ? "invalid_peer_id" : "missing_peer_id");
  json_t *extra = NULL;
  if (named && strcmp(named, key) != 0) { /* a remote caller naming another peer: a hint only */
    json_t *h = bounded_str(named, TASKQ_MAX_NAME);
    if (h) extra = json_pack("{s:o, s:s}", "peer_hint", h, "transport_peer_id", e->auth->peer_id);
  }
  peer_seen(e->ctx, key, json_object_get(e->msg, "clock"), extra, true);
  json_t *r = reply_ok(e->ctx);
  if (!r) return NULL;
  pthread_mutex_lock(&e->ctx->mu);
  json_t *clock = clock_dict_locked(e->ctx);
  pthread_mutex_unlock(&e->ctx->mu);
  size_t alive = 0;
  json_t *peers = known_peers_json(e->ctx, false, false, TASKQ_HEARTBEAT_PEERS, &alive);
  json_object_set_new(r, "peer", json_string(key));
  if (named && strcmp(named, key) != 0 && strlen(named) <= TASKQ_MAX_NAME)
    json_object_set_new(r, "peer_hint", json_string(named));
  json_object_set_new(r, "scheduler", json_pack("{s:o, s:o, s:I}", "clock", clock, "known_peers", peers,
                                                "known_peers_total", (json_int_t)alive));
  return r;
}

static json_t *tasks_json(tq_task **v, size_t n, unsigned flags) {
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, tq_task_to_json(v[i], flags));
  return arr;
}

static json_t *op_list(op_env *e) {
  tq_list_opts o = {0};
  o.status = TQ_STATUS_ANY;
  const char *st = get_str(e->msg, "status");
  if (st && *st) {
    char w[16];
    snprintf(w, sizeof w, "%s", st);
    for (char *c = w; *c; c++) *c = (char)tolower((unsigned char)*c);
    tq_status s;
    if (tq_status_parse(w, &s) != 0) {
      json_t *r = reply_ok(e->ctx); /* a status nobody has: nothing matches */
      json_object_set_new(r, "tasks", json_array());
      return r;
    }
    o.status = s;
  }
  double lim = get_num(e->msg, "limit", 50);
  o.limit = lim < 1 ? 1 : lim > 1000 ? 1000 : (size_t)lim;
  json_t *types = taskq_task_types_normalize(json_object_get(e->msg, "task_types"), false);
  types_view tv;
  types_view_of(types, &tv);
  o.task_types = tv.n ? tv.v : NULL;
  o.n_task_types = tv.n;
  tq_task **v = NULL;
  size_t n = 0;
  int rc = tq_list(e->ctx->cfg.queue, &o, &v, &n);
  json_decref(types);
  if (rc < 0) return err(e, tq_strerror(rc));
  json_t *r = reply_ok(e->ctx);
  json_object_set_new(r, "tasks", tasks_json(v, n, TQ_JSON_FULL | TQ_JSON_EXTRA));
  tq_task_array_free(v, n);
  return r;
}

static json_t *op_cancel(op_env *e) {
  const char *task_id = get_str(e->msg, "task_id");
  if (!task_id || !*task_id) return err(e, "missing_task_id");
  const json_t *rv = json_object_get(e->msg, "reason");
  char reason[256] = "";
  if (json_is_string(rv)) snprintf(reason, sizeof reason, "%s", json_string_value(rv));
  else if (json_is_integer(rv)) snprintf(reason, sizeof reason, "%lld", (long long)json_integer_value(rv));
  else if (json_is_real(rv)) jwrite_fmt_double(reason, json_real_value(rv)); /* 0.1, not 0.10000000000000001 */
  tq_cancel_outcome out = TQ_CANCEL_NONE;
  int rc = tq_cancel(e->ctx->cfg.queue, task_id, reason[0] ? reason : NULL, &out);
  if (rc < 0 && rc != -ENOENT) return err(e, tq_strerror(rc));
  json_t *r = reply_ok(e->ctx);
  json_object_set_new(r, "cancelled", json_boolean(out == TQ_CANCEL_DONE));
  if (out == TQ_CANCEL_REQUESTED) json_object_set_new(r, "cancel_requested", json_true());
  return r;
}

/* Rows of known peers / workers a detailed status lists (the most recently seen; the counts
 * cover them all). */
#define TASKQ_STATUS_PEERS 256

/* True when the caller holds at least one scope (and has not expired). */
static bool caller_has_scope(const auth_ctx *a) {
  return !auth_scopes_empty(&a->scopes) && !auth_ctx_expired_at(a, clock_wall_s());
}

/* What a caller with no scope learns (issue 9 item 5): enough to bootstrap — who we are, the
 * protocol, that credentials are needed — and the keys Python clients read (ok, peer_id,
 * capabilities, nat), with capabilities empty. No task types (they name command tools), no
 * session tag, no counts. */
static json_t *status_for_stranger(op_env *e) {
  json_t *r = reply_ok(e->ctx);
  if (!r) return NULL;
  if (e->ctx->cfg.protocol) json_object_set_new(r, "protocol", json_string(e->ctx->cfg.protocol));
  json_object_set_new(r, "auth_required", json_true());
  json_object_set_new(r, "capabilities",
                      json_pack("{s:[], s:[], s:{}, s:{}, s:{}, s:[]}", "task_types", "models", "endpoints_by_model",
                                "endpoint_types_by_model", "hwtest", "resource_keys"));
  json_object_set_new(r, "nat", json_pack("{s:{s:b, s:s, s:n}}", "autonat", "supported", 0, "status", "unknown", "code"));
  return r;
}

static json_t *op_status(op_env *e) {
  bool detail = json_truthy(json_object_get(e->msg, "detail"));
  /* The detail (queue counts by type, known peers and workers, transport counters) is for the
   * peers that schedule work: it needs the worker scope. */
  if (detail && !auth_allows_mask(e->auth, AUTH_WORKER)) {
    log_write(LOG_INFO, "p2p op refused", "{s:s, s:s, s:s}", "op", "status", "peer", e->auth->peer_id, "reason",
              "detail needs the worker scope");
    return err_detail(e, "unauthorized", "status detail needs the worker scope");
  }
  if (!caller_has_scope(e->auth)) return status_for_stranger(e);
  json_t *r = reply_ok(e->ctx);
  if (!r) return NULL;
  if (e->ctx->cfg.protocol) json_object_set_new(r, "protocol", json_string(e->ctx->cfg.protocol));
  json_object_set_new(r, "auth_required", json_boolean(e->ctx->auth_required));
  char scopes[1024];
  auth_scopes_format(&e->auth->scopes, scopes, sizeof scopes);
  json_object_set_new(r, "scopes", json_string(scopes));
  json_object_set_new(r, "capabilities", json_deep_copy(e->ctx->capabilities));
  json_object_set_new(r, "nat", json_pack("{s:{s:b, s:s, s:n}}", "autonat", "supported", 0, "status", "unknown", "code"));
  json_object_set_new(r, "session", json_string(e->ctx->session));
  if (detail) {
    json_t *q = NULL;
    if (e->ctx->cfg.queue && tq_stats_json(e->ctx->cfg.queue, &q) == 0 && q) json_object_set_new(r, "queue", q);
    size_t n_peers = 0, n_workers = 0;
    json_t *peers = known_peers_json(e->ctx, true, false, TASKQ_STATUS_PEERS, &n_peers);
    json_t *workers = known_peers_json(e->ctx, true, true, TASKQ_STATUS_PEERS, &n_workers);
    size_t docker = 0, i;
    json_t *w;
    json_array_foreach(workers, i, w) {
      const json_t *types = json_object_get(w, "supported_task_types");
      size_t j;
      json_t *t;
      json_array_foreach(types, j, t) {
        const char *s = json_string_value(t);
        if (s && (!strcmp(s, "docker.execute") || !strcmp(s, "docker.execute_docker_container") || !strcmp(s, "docker.github"))) {
          docker++;
          break;
        }
      }
    }
    taskq_sched_usage u;
    taskq_scheduler_usage(e->ctx, &u);
    pthread_mutex_lock(&e->ctx->mu);
    json_t *clock = clock_dict_locked(e->ctx);
    pthread_mutex_unlock(&e->ctx->mu);
    json_object_set_new(r, "scheduler",
                        json_pack("{s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}}", "clock", clock,
                                  "known_peers", peers, "known_workers", workers, "counts", "peers", (json_int_t)n_peers,
                                  "workers", (json_int_t)n_workers, "docker_workers", (json_int_t)docker,
                                  "docker_workers_configured", (json_int_t)0, "table", "entries", (json_int_t)u.peers,
                                  "max_entries", (json_int_t)u.max_peers, "clock_nodes", (json_int_t)u.clock_nodes,
                                  "bytes", (json_int_t)u.bytes));
  }
  /* the operator's figures (uptime, requests, latency, queue, cache, peers, refusals): for the
   * local operator and callers trusted with the worker scope, never for strangers */
  if (auth_ctx_is_local(e->auth) || auth_allows_mask(e->auth, AUTH_WORKER)) {
    json_t *h = metrics_health_json();
    if (h) json_object_set_new(r, "health", h);
  }
  if (e->ctx->cfg.status_hook) {
    json_t *extra = e->ctx->cfg.status_hook(e->ctx->cfg.status_ud, detail);
    if (json_is_object(extra)) json_object_update(r, extra);
    json_decref(extra);
  }
  return r;
}

static const char *tool_err_code(int rc) {
  switch (rc) {
  case -ENOENT: return "unknown_tool";
  case -EPERM:
  case -EACCES: return "unauthorized";
  case -ETIMEDOUT: return "timeout";
  case -ECANCELED: return "cancelled";
  case -EINVAL: return "invalid_params";
  case -ENOMEM: return "internal_error";
  default: return "tool_error";
  }
}

static json_t *op_tool(op_env *e) {
  if (!e->ctx->cfg.tools_enabled) return err(e, "tools_disabled");
  static const char *const K_TOOL[] = {"tool", "tool_name", "name", NULL};
  const char *name = get_str_any(e->msg, K_TOOL);
  if (!name) return err(e, "missing_tool_name");
  taskq_tool_call_fn fn = e->call->tool_call ? e->call->tool_call : e->ctx->cfg.tool_call;
  void *fn_ud = e->call->tool_call ? e->call->tool_ud : e->ctx->cfg.tool_ud;
  if (!fn) return err(e, "mcp_registry_unavailable");
  json_t *args = json_object_get(e->msg, "args");
  if (!args) args = json_object_get(e->msg, "arguments");
  if (!args) args = json_object_get(e->msg, "params");
  json_t *owned = NULL;
  if (!args || json_is_null(args)) args = owned = json_object();
  else if (!json_is_object(args)) args = owned = json_pack("{s:O}", "value", args);
  double t = get_num(e->msg, "timeout_s", 30.0);
  if (!(t > 0)) t = 30.0;
  if (t > e->ctx->cfg.tool_timeout_max_s) t = e->ctx->cfg.tool_timeout_max_s;
  json_t *result = NULL;
  bool is_error = false;
  int rc = fn(fn_ud, e->auth, name, args, (int64_t)(t * 1000), &result, &is_error);
  json_decref(owned);
  json_t *r;
  if (rc < 0) {
    r = err(e, tool_err_code(rc));
    json_object_set_new(r, "tool", json_string(name));
  } else if (is_error) {
    r = json_pack("{s:b, s:s, s:O, s:s}", "ok", 0, "tool", name, "error", result ? result : json_null(), "peer_id",
                  e->ctx->peer_id);
  } else {
    r = json_pack("{s:b, s:s, s:O, s:s}", "ok", 1, "tool", name, "result", result ? result : json_null(), "peer_id",
                  e->ctx->peer_id);
  }
  json_decref(result);
  return r;
}

/* Forwards a cache write to the replication hook unless the message said replicate:false
 * (which replicated writes always say, so nothing loops). */
static void replicate(op_env *e, const char *op, const char *key, json_t *value, const double *ttl) {
  if (!e->ctx->cfg.replicate) return;
  const json_t *rep = json_object_get(e->msg, "replicate");
  if (rep && !json_truthy(rep) && !json_is_null(rep)) return;
  json_t *fwd = json_pack("{s:s, s:s, s:s, s:b}", "op", op, "key", key, "origin_peer_id", e->ctx->peer_id,
                          "replicate", 0);
  if (!fwd) return;
  if (value) json_object_set(fwd, "value", value);
  if (value) json_object_set_new(fwd, "ttl_s", ttl ? json_real(*ttl) : json_null());
  const trace_ctx *tr = trace_current(); /* the replication belongs to the request's trace */
  if (tr) {
    char tp[TRACE_PARENT_LEN + 1];
    trace_format(tr, tp);
    json_object_set_new(fwd, "traceparent", json_string(tp));
  }
  e->ctx->cfg.replicate(e->ctx->cfg.replicate_ud, fwd);
  json_decref(fwd);
}

static json_t *op_cache(op_env *e, taskq_op op) {
  if (!e->ctx->cfg.cache) return err(e, "cache_disabled");
  const char *key = get_str(e->msg, "key");
  if (!key || !*key) return err(e, "missing_key");
  if (strlen(key) > TQO_MAX_KEY) return err(e, "invalid_key");
  ttlcache *c = e->ctx->cfg.cache;
  json_t *r = NULL;
  switch (op) {
  case TASKQ_OP_CACHE_GET: {
    json_t *v = NULL;
    int rc = ttlcache_get(c, key, &v);
    if (rc < 0 && rc != -ENOENT) return err(e, ttlcache_strerror(rc));
    r = json_pack("{s:b, s:s, s:b, s:o, s:s}", "ok", 1, "key", key, "hit", rc == 0, "value", v ? v : json_null(),
                  "peer_id", e->ctx->peer_id);
    break;
  }
  case TASKQ_OP_CACHE_HAS: {
    bool hit = false;
    int rc = ttlcache_has(c, key, &hit);
    if (rc < 0) return err(e, ttlcache_strerror(rc));
    r = json_pack("{s:b, s:s, s:b, s:s}", "ok", 1, "key", key, "hit", hit, "peer_id", e->ctx->peer_id);
    break;
  }
  case TASKQ_OP_CACHE_SET: {
    json_t *v = json_object_get(e->msg, "value");
    const json_t *tv = json_object_get(e->msg, "ttl_s");
    double ttl = 0;
    const double *pttl = NULL;
    if (json_is_number(tv)) {
      ttl = json_number_value(tv);
      if (ttl < 0) ttl = 0; /* Python: ttl_s <= 0 means never expires */
      pttl = &ttl;
    }
    int rc = ttlcache_set(c, key, v ? v : json_null(), pttl);
    if (rc < 0) return err(e, ttlcache_strerror(rc));
    r = json_pack("{s:b, s:s, s:s}", "ok", 1, "key", key, "peer_id", e->ctx->peer_id);
    replicate(e, "cache.set", key, v ? v : json_null(), pttl);
    break;
  }
  case TASKQ_OP_CACHE_DELETE: {
    bool deleted = false;
    int rc = ttlcache_delete(c, key, &deleted);
    if (rc < 0) return err(e, ttlcache_strerror(rc));
    r = json_pack("{s:b, s:s, s:b, s:s}", "ok", 1, "key", key, "deleted", deleted, "peer_id", e->ctx->peer_id);
    replicate(e, "cache.delete", key, NULL, NULL);
    break;
  }
  default: r = err(e, "unknown_op");
  }
  return r;
}

static json_t *op_get(op_env *e) {
  const char *task_id = get_str(e->msg, "task_id");
  tq_task *t = NULL;
  if (task_id && *task_id) {
    int rc = tq_get(e->ctx->cfg.queue, task_id, &t);
    if (rc < 0 && rc != -ENOENT) return err(e, tq_strerror(rc));
  }
  json_t *r = reply_ok(e->ctx);
  json_object_set_new(r, "task", t ? tq_task_to_json(t, TQ_JSON_FULL | TQ_JSON_EXTRA) : json_null());
  tq_task_free(t);
  return r;
}

static bool wait_cancelled(void *ud) {
  const taskq_call *call = ud;
  return call->cancelled && call->cancelled(call->cancel_ud);
}

static json_t *op_wait(op_env *e) {
  const char *task_id = get_str(e->msg, "task_id");
  double t = get_num(e->msg, "timeout_s", 60.0);
  if (!(t > 0)) t = 60.0; /* a falsy value becomes 60 (§3.1) */
  if (t > e->ctx->cfg.wait_max_s) t = e->ctx->cfg.wait_max_s;
  tq_task *task = NULL;
  if (task_id && *task_id) {
    int rc = tq_wait(e->ctx->cfg.queue, task_id, t, wait_cancelled, (void *)e->call, &task);
    if (rc < 0 && rc != -ENOENT) return err(e, tq_strerror(rc));
  }
  json_t *r = reply_ok(e->ctx);
  json_object_set_new(r, "task", task ? tq_task_to_json(task, TQ_JSON_FULL | TQ_JSON_EXTRA) : json_null());
  tq_task_free(task);
  return r;
}

static bool op_needs_queue(taskq_op op) {
  switch (op) {
  case TASKQ_OP_SUBMIT: case TASKQ_OP_CLAIM: case TASKQ_OP_CLAIM_MANY: case TASKQ_OP_COMPLETE:
  case TASKQ_OP_FAIL: case TASKQ_OP_RELEASE: case TASKQ_OP_TASK_HEARTBEAT: case TASKQ_OP_LIST:
  case TASKQ_OP_CANCEL: case TASKQ_OP_GET: case TASKQ_OP_WAIT: return true;
  default: return false;
  }
}

auth_present_result taskq_present_msg_credentials(const auth_policy *p, const json_t *msg, auth_ctx *a,
                                                  auth_reason *reason, const char **detail) {
  static const char *const keys[] = {"token", "jwt"}; /* the Python TaskQueue's fields (§4.1, §4.3) */
  auth_present_result res = AUTH_PRESENT_IGNORED;
  if (reason) *reason = AUTH_REASON_NONE;
  if (detail) *detail = NULL;
  for (size_t i = 0; json_is_object(msg) && i < 2; i++) {
    const json_t *t = json_object_get(msg, keys[i]);
    if (!json_is_string(t)) continue;
    auth_ctx next = *a;
    auth_present_result r = auth_policy_present(p, json_string_value(t), &next, reason, detail);
    if (r == AUTH_PRESENT_REFUSED) return r; /* *a unchanged */
    if (r == AUTH_PRESENT_OK) {
      *a = next;
      res = r;
    }
  }
  return res;
}

bool taskq_present_msg_token(const auth_policy *p, const json_t *msg, auth_ctx *a) {
  return taskq_present_msg_credentials(p, msg, a, NULL, NULL) == AUTH_PRESENT_OK;
}

json_t *taskq_check_strings(const taskq_ctx *ctx, const json_t *msg) {
  static const char *const data_keys[] = {"payload", "value", "result", "args", "arguments", "error", "detail", NULL};
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)msg, k, v) {
    if (!json_is_string(v) || !memchr(json_string_value(v), 0, json_string_length(v))) continue;
    bool data = false;
    for (const char *const *d = data_keys; *d && !data; d++) data = strcmp(*d, k) == 0;
    if (data) continue;
    char detail[160];
    snprintf(detail, sizeof detail, "NUL character (\\u0000) not allowed in \"%.100s\"", k);
    json_t *r = taskq_error(ctx, "invalid_message");
    if (r) json_object_set_new(r, "detail", json_string(detail));
    return r;
  }
  return NULL;
}

tq_queue *taskq_queue(const taskq_ctx *ctx) { return ctx->cfg.queue; }
unsigned taskq_max_waits_per_peer(const taskq_ctx *ctx) { return ctx->cfg.max_waits_per_peer; }

json_t *taskq_wait_prepare(taskq_ctx *ctx, const json_t *msg, const auth_ctx *auth, char task_id[33],
                           double *timeout_s) {
  task_id[0] = 0;
  if (!json_is_object(msg)) return taskq_error(ctx, "invalid_message");
  json_t *bad = taskq_check_strings(ctx, msg);
  if (bad) return bad;
  auth_ctx eff = *auth;
  taskq_present_msg_token(ctx->cfg.policy, msg, &eff);
  auth_scopes need = taskq_op_scopes(TASKQ_OP_WAIT);
  if (!auth_allows(&eff, &need)) {
    log_write(LOG_INFO, "p2p op refused", "{s:s, s:s, s:s}", "op", "wait", "peer", eff.peer_id, "reason",
              "unauthorized");
    return taskq_error(ctx, "unauthorized");
  }
  if (!ctx->cfg.queue) return taskq_error(ctx, "queue_disabled");
  const char *id = get_str(msg, "task_id");
  double t = get_num(msg, "timeout_s", 60.0);
  if (!(t > 0)) t = 60.0; /* a falsy value becomes 60 (§3.1) */
  if (t > ctx->cfg.wait_max_s) t = ctx->cfg.wait_max_s;
  *timeout_s = t;
  /* what tq_wait would answer at once: no id, or one that cannot name a task (null task) */
  if (!id || !*id || strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32) {
    json_t *r = reply_ok(ctx);
    json_object_set_new(r, "task", json_null());
    return r;
  }
  memcpy(task_id, id, 33);
  return NULL;
}

json_t *taskq_wait_reply_task(taskq_ctx *ctx, const tq_task *t) {
  json_t *r = reply_ok(ctx);
  json_object_set_new(r, "task", t ? tq_task_to_json(t, TQ_JSON_FULL | TQ_JSON_EXTRA) : json_null());
  return r;
}

json_t *taskq_wait_read(taskq_ctx *ctx, const char *task_id, bool always, bool *over) {
  tq_task *t = NULL;
  int rc = tq_get(ctx->cfg.queue, task_id, &t);
  *over = true; /* no task (deleted, never existed), an error, or a terminal task */
  if (rc < 0 && rc != -ENOENT) return taskq_error(ctx, tq_strerror(rc));
  if (t && !tq_status_terminal(t->status)) {
    *over = false;
    if (!always) { /* nothing to answer yet: no reply built only to be dropped */
      tq_task_free(t);
      return NULL;
    }
  }
  json_t *r = taskq_wait_reply_task(ctx, t);
  tq_task_free(t);
  return r;
}

json_t *taskq_wait_reply(taskq_ctx *ctx, const char *task_id) {
  bool over;
  return taskq_wait_read(ctx, task_id, true, &over);
}

/* ---------- replies written as text (TASKQ_ASYNC_RAW, taskq_wait_reply_task_raw) ---------- */

/* Every byte printable ASCII and nothing JSON escapes: json_string() takes it and every writer
 * writes it between quotes as it is. */
static bool plain_ascii(const char *s) { return !s[jwrite_plain_len(s)]; }

/* {"ok":true,"peer_id":… — reply_ok's first two keys — into a fresh writer; false when the tree
 * path must be taken (no peer id, or one that is not plain). */
static bool raw_head(jwrite *w, const taskq_ctx *ctx) {
  if (!ctx->peer_id || !plain_ascii(ctx->peer_id)) return false;
  jwrite_init(w, TASKQ_RAW_MAX_BYTES, JWRITE_ASCII);
  jwrite_lit(w, "{\"ok\":true,\"peer_id\":");
  jwrite_cstr(w, ctx->peer_id);
  return true;
}

/* The finished text as the reply's carrier (a JSON string holding it); NULL when it could not
 * be written (the caller builds the tree instead). */
static json_t *raw_take(jwrite *w) {
  jwrite_byte(w, '}');
  json_t *r = jwrite_error(w) ? NULL : json_stringn_nocheck(jwrite_ptr(w), jwrite_len(w));
  jwrite_free(w);
  return r;
}

static json_t *raw_with_task(const taskq_ctx *ctx, const tq_task *t, unsigned flags, bool with_wait, double wait_s) {
  jwrite w;
  if (!raw_head(&w, ctx)) return NULL;
  jwrite_lit(&w, ",\"task\":");
  if (!t) jwrite_lit(&w, "null");
  else if (tq_task_write_json(&w, t, flags) != 0) {
    jwrite_free(&w);
    return NULL;
  }
  if (with_wait) {
    jwrite_lit(&w, ",\"wait_s\":");
    jwrite_double(&w, wait_s);
  }
  return raw_take(&w);
}

json_t *taskq_wait_reply_task_raw(taskq_ctx *ctx, const tq_task *t) {
  return raw_with_task(ctx, t, TQ_JSON_FULL | TQ_JSON_EXTRA, false, 0);
}

/* ---------- the hot ops without a thread (taskq_handle_async) ---------- */

static void op_metrics(taskq_op op, const json_t *r, int64_t t0);
static void op_metrics_ok(taskq_op op, bool ok, int64_t t0);

/* Whether a caller may see store file names in errors: as for the status detail (worker scope),
 * the local operator and admins. */
static bool store_paths_for(const auth_ctx *a) {
  return a && (auth_ctx_is_local(a) || auth_allows_mask(a, AUTH_WORKER) || auth_allows_mask(a, AUTH_ADMIN));
}

/* A failed op whose store is down says why (issue 9 leftover; store/health.h): "cause" (the
 * store's error code), "reason" and, for callers of store_paths_for, "path" — keys the Python
 * client ignores beside "error". Not for refusals that come before the store is used. */
static void note_store_down(const taskq_ctx *ctx, taskq_op op, json_t *r, bool paths) {
  if (!r || json_is_true(json_object_get(r, "ok")) || json_object_get(r, "cause")) return;
  const char *code = json_string_value(json_object_get(r, "error"));
  if (!code || !strcmp(code, "unauthorized") || !strcmp(code, "unknown_op") || !strncmp(code, "invalid_", 8) ||
      !strncmp(code, "missing_", 8))
    return;
  bool cache = op == TASKQ_OP_CACHE_GET || op == TASKQ_OP_CACHE_HAS || op == TASKQ_OP_CACHE_SET ||
               op == TASKQ_OP_CACHE_DELETE;
  if (cache ? !ctx->cfg.cache : !op_needs_queue(op) || !ctx->cfg.queue) return;
  store_health_annotate(ctx->cfg.queue, ctx->cfg.cache, cache ? STORE_CACHE : STORE_QUEUE, r, paths);
}

typedef struct async_op {
  taskq_ctx *ctx;
  taskq_op op;
  taskq_async_done done;
  void *ud;
  json_t *msg;        /* a reference: the result / strings the queue borrows live here */
  int64_t t0;
  char task_id[33];
  char ident[96];     /* a waiting claim's caller, counted until it ends ("" = not counted) */
  bool paths;         /* store_paths_for the caller */
  bool raw;           /* TASKQ_ASYNC_RAW: a success may be answered as text */
} async_op;

/* raw: r is a success written as text (a JSON string holding the reply object). */
static void async_finish_as(async_op *a, json_t *r, bool raw) {
  if (raw) {
    op_metrics_ok(a->op, true, a->t0);
  } else {
    note_store_down(a->ctx, a->op, r, a->paths);
    op_metrics(a->op, r, a->t0);
  }
  taskq_async_done done = a->done;
  void *ud = a->ud;
  json_decref(a->msg);
  free(a);
  done(r, ud);
}

static void async_finish(async_op *a, json_t *r) { async_finish_as(a, r, false); }

static void async_submit_done(int rc, const char *task_id, bool replayed, void *ud) {
  async_op *a = ud;
  json_t *r;
  if (rc < 0) {
    r = taskq_error(a->ctx, "internal_error");
    if (r) json_object_set_new(r, "detail", json_string(tq_strerror(rc)));
  } else {
    jwrite w;
    if (a->raw && plain_ascii(task_id) && raw_head(&w, a->ctx)) {
      jwrite_lit(&w, ",\"task_id\":");
      jwrite_cstr(&w, task_id);
      if (replayed) jwrite_lit(&w, ",\"replayed\":true");
      if ((r = raw_take(&w))) {
        async_finish_as(a, r, true);
        return;
      }
    }
    r = reply_ok(a->ctx);
    if (r) {
      json_object_set_new(r, "task_id", json_string(task_id));
      if (replayed) json_object_set_new(r, "replayed", json_true());
    }
  }
  async_finish(a, r);
}

static void async_claim_done(int rc, tq_task *t, bool waited, void *ud) {
  async_op *a = ud;
  if (a->ident[0]) claim_wait_leave(a->ctx, a->ident);
  json_t *r;
  if (rc < 0) {
    r = taskq_error(a->ctx, tq_strerror(rc));
  } else {
    bool with_wait = waited || (a->ident[0] && !t);
    double wait_s = with_wait ? taskq_claim_wait_s(a->ctx, a->msg) : 0;
    if (a->raw && (r = raw_with_task(a->ctx, t, TQ_JSON_CLAIM | TQ_JSON_EXTRA, with_wait, wait_s))) {
      tq_task_free(t);
      async_finish_as(a, r, true);
      return;
    }
    r = reply_ok(a->ctx);
    if (r) {
      json_object_set_new(r, "task", t ? tq_task_to_json(t, TQ_JSON_CLAIM | TQ_JSON_EXTRA) : json_null());
      if (with_wait) json_object_set_new(r, "wait_s", json_real(wait_s));
    }
  }
  tq_task_free(t);
  async_finish(a, r);
}

static json_t *task_reply(const taskq_ctx *ctx, bool ok, const char *task_id, int rc) {
  json_t *r = reply_of(ctx, ok, "task_id", task_id, NULL, NULL);
  if (r && !ok && rc < 0) json_object_set_new(r, "error", json_string(tq_strerror(rc)));
  return r;
}

static void async_complete_done(int rc, void *ud) {
  async_op *a = ud;
  jwrite w;
  /* task_reply's success: {"ok":true,"task_id":…,"peer_id":…} */
  if (rc == 0 && a->raw && plain_ascii(a->task_id) && a->ctx->peer_id && plain_ascii(a->ctx->peer_id)) {
    jwrite_init(&w, TASKQ_RAW_MAX_BYTES, JWRITE_ASCII);
    jwrite_lit(&w, "{\"ok\":true,\"task_id\":");
    jwrite_cstr(&w, a->task_id);
    jwrite_lit(&w, ",\"peer_id\":");
    jwrite_cstr(&w, a->ctx->peer_id);
    json_t *r = raw_take(&w);
    if (r) {
      async_finish_as(a, r, true);
      return;
    }
  }
  async_finish(a, task_reply(a->ctx, rc == 0, a->task_id, rc));
}

static void async_heartbeat_done(int rc, const tq_heartbeat_reply *hb, void *ud) {
  async_op *a = ud;
  json_t *r = task_reply(a->ctx, rc == 0, a->task_id, rc);
  if (r && rc == 0) {
    json_object_set_new(r, "lease_until", json_real(hb->lease_until));
    json_object_set_new(r, "cancel_requested", json_boolean(hb->cancel_requested));
  }
  async_finish(a, r);
}

/* Starts the op; 0, or a reply to give now (*now). */
static int async_start(async_op *a, op_env *e, uint64_t *claim_id, json_t **now) {
  const json_t *m = e->msg;
  tq_queue *q = e->ctx->cfg.queue;
  int rc = 0;
  switch (a->op) {
  case TASKQ_OP_SUBMIT: {
    tq_submit_req req;
    json_t *owned = submit_req_of(m, &req);
    rc = req.payload ? tq_submit_async(q, &req, async_submit_done, a) : -ENOMEM;
    json_decref(owned);
    if (rc < 0) *now = err_detail(e, "internal_error", tq_strerror(rc));
    return rc;
  }
  case TASKQ_OP_CLAIM: {
    const char *worker = get_str(m, "worker_id");
    if (!worker || !*worker) {
      *now = err(e, "missing_worker_id");
      return -EINVAL;
    }
    claim_prep cp;
    if (claim_prepare(e, worker, &cp) != 0) {
      *now = NULL;
      return -ENOMEM;
    }
    json_t *types = cp.types;
    const char *ident = cp.ident;
    double wait_s = taskq_claim_wait_s(e->ctx, m);
    if (wait_s > 0 && claim_wait_enter(e->ctx, ident)) {
      size_t len = strnlen(ident, sizeof a->ident - 1);
      memcpy(a->ident, ident, len);
      a->ident[len] = 0;
    } else {
      wait_s = 0;
    }
    rc = tq_claim_next_async(q, &cp.o, wait_s, async_claim_done, a, claim_id);
    json_decref(types); /* the queue copied the filter */
    if (rc < 0) {
      if (a->ident[0]) claim_wait_leave(e->ctx, a->ident);
      *now = err(e, tq_strerror(rc));
    }
    return rc;
  }
  case TASKQ_OP_COMPLETE: {
    const char *task_id = get_str(m, "task_id");
    if (!task_id || !*task_id) {
      *now = err(e, "missing_task_id");
      return -EINVAL;
    }
    tq_status status = complete_status_of(m);
    tq_fence f;
    bool fenced = fence_of(e, &f);
    if (!fenced && !e->ctx->cfg.compat_unfenced_complete && !auth_ctx_is_local(e->auth)) {
      *now = err(e, "missing_worker_id");
      return -EINVAL;
    }
    json_t *result = json_object_get(m, "result");
    if (json_is_null(result)) result = NULL;
    snprintf(a->task_id, sizeof a->task_id, "%s", task_id);
    if (strlen(task_id) >= sizeof a->task_id) {
      *now = task_reply(e->ctx, false, task_id, -ENOENT);
      return -ENOENT;
    }
    rc = tq_complete_async(q, task_id, fenced ? &f : NULL, status, result, get_str(m, "error"), async_complete_done, a);
    if (rc < 0) *now = task_reply(e->ctx, false, task_id, rc);
    return rc;
  }
  case TASKQ_OP_TASK_HEARTBEAT: {
    const char *task_id = get_str(m, "task_id");
    if (!task_id || !*task_id) {
      *now = err(e, "missing_task_id");
      return -EINVAL;
    }
    tq_fence f;
    if (!fence_of(e, &f)) {
      *now = err(e, "missing_worker_id");
      return -EINVAL;
    }
    if (strlen(task_id) >= sizeof a->task_id) {
      *now = task_reply(e->ctx, false, task_id, -ENOENT);
      return -ENOENT;
    }
    snprintf(a->task_id, sizeof a->task_id, "%s", task_id);
    double lease = get_num(m, "lease_seconds", 0);
    rc = tq_heartbeat_async(q, task_id, &f, lease < 0 ? 0 : lease, async_heartbeat_done, a);
    if (rc < 0) *now = task_reply(e->ctx, false, task_id, rc);
    return rc;
  }
  default: *now = taskq_error(e->ctx, "unknown_op"); return -EINVAL;
  }
}

taskq_async_status taskq_handle_async(taskq_ctx *ctx, const json_t *msg, const auth_ctx *auth, unsigned flags,
                                      taskq_async_done done, void *ud, uint64_t *claim_id, json_t **reply) {
  *reply = NULL;
  if (claim_id) *claim_id = 0;
  if (!json_is_object(msg) || !ctx->cfg.queue) return TASKQ_ASYNC_BLOCKING;
  taskq_op op = taskq_op_parse(get_str(msg, "op"));
  if (op != TASKQ_OP_SUBMIT && op != TASKQ_OP_CLAIM && op != TASKQ_OP_COMPLETE && op != TASKQ_OP_TASK_HEARTBEAT)
    return TASKQ_ASYNC_BLOCKING;
  if (op == TASKQ_OP_CLAIM && ctx->cfg.deterministic) return TASKQ_ASYNC_BLOCKING;
  /* a message naming another trace than the request's: taskq_handle enters its scope */
  trace_ctx t;
  if (trace_continue_json(json_object_get(msg, "traceparent"), &t) == 0 &&
      (!trace_current() || memcmp(trace_current()->trace_id, t.trace_id, 16) != 0))
    return TASKQ_ASYNC_BLOCKING;
  int64_t t0 = clock_mono_us();
  json_t *bad = taskq_check_strings(ctx, msg);
  if (bad) {
    op_metrics(op, bad, t0);
    *reply = bad;
    return TASKQ_ASYNC_REPLY;
  }
  auth_ctx eff = *auth;
  auth_reason why = AUTH_REASON_NONE;
  const char *detail = NULL;
  if (taskq_present_msg_credentials(ctx->cfg.policy, msg, &eff, &why, &detail) == AUTH_PRESENT_REFUSED) {
    auth_audit_refused(&eff, why, "op", taskq_op_name(op), detail);
    *reply = taskq_error(ctx, "unauthorized");
    op_metrics(op, *reply, t0);
    return TASKQ_ASYNC_REPLY;
  }
  auth_scopes need = taskq_op_scopes(op);
  if ((why = auth_check(&eff, &need, clock_wall_s())) != AUTH_REASON_NONE) {
    auth_audit_refused(&eff, why, "op", taskq_op_name(op), NULL);
    *reply = taskq_error(ctx, "unauthorized");
    op_metrics(op, *reply, t0);
    return TASKQ_ASYNC_REPLY;
  }
  async_op *a = calloc(1, sizeof *a);
  if (!a) return TASKQ_ASYNC_REPLY; /* *reply NULL: out of memory */
  a->ctx = ctx;
  a->op = op;
  a->done = done;
  a->ud = ud;
  a->msg = json_incref((json_t *)msg);
  a->t0 = t0;
  a->paths = store_paths_for(&eff);
  a->raw = (flags & TASKQ_ASYNC_RAW) != 0;
  op_env e = {ctx, msg, NULL, &eff};
  json_t *now = NULL;
  if (async_start(a, &e, claim_id, &now) == 0) return TASKQ_ASYNC_STARTED;
  json_decref(a->msg);
  free(a);
  note_store_down(ctx, op, now, store_paths_for(&eff));
  op_metrics(op, now, t0);
  *reply = now;
  return TASKQ_ASYNC_REPLY;
}

/* ---------- metrics: every op handled, by op and outcome, and its duration ---------- */

static const char *k_op_labels[TASKQ_OP__COUNT]; /* taskq_op order; "other" for unknown ops */
static const char *const k_op_outcomes[] = {"ok", "error"};
static _Atomic uint64_t g_ops_cells[TASKQ_OP__COUNT * 2];
static metrics_family g_p2p_ops = {
    .name = "peermcp_p2p_ops_total",
    .help = "TaskQueue ops handled by the op table (from peers over /mcp+p2p/1.0.0 or the legacy protocol, "
            "and from local clients), by op and outcome (error = an {\"ok\": false} reply).",
    .kind = METRICS_COUNTER,
    .ndims = 2,
    .dims = {{"op", k_op_labels, TASKQ_OP__COUNT, NULL}, {"outcome", k_op_outcomes, 2, NULL}},
    .cells = g_ops_cells,
};
static _Atomic uint64_t g_op_dur_cells[METRICS_CELLS_HIST(TASKQ_OP__COUNT)];
static metrics_family g_p2p_op_duration = {
    .name = "peermcp_p2p_op_duration_seconds",
    .help = "TaskQueue op duration in the op table, by op.",
    .kind = METRICS_HISTOGRAM,
    .ndims = 1,
    .dims = {{"op", k_op_labels, TASKQ_OP__COUNT, NULL}},
    .cells = g_op_dur_cells,
};

__attribute__((constructor)) static void table_metrics_register(void) {
  for (int i = 0; i < TASKQ_OP__COUNT; i++) k_op_labels[i] = taskq_op_name((taskq_op)i);
  k_op_labels[TASKQ_OP_UNKNOWN] = METRICS_OTHER;
  metrics_register(&g_p2p_ops);
  metrics_register(&g_p2p_op_duration);
}

static json_t *handle_op(taskq_ctx *ctx, const json_t *msg, const taskq_call *call, taskq_op op);

json_t *taskq_handle(taskq_ctx *ctx, const json_t *msg, const taskq_call *call) {
  if (!json_is_object(msg)) return taskq_error(ctx, "invalid_message");
  int64_t t0 = clock_mono_us();
  taskq_op op = taskq_op_parse(get_str(msg, "op"));
  /* An op message's own traceparent (the legacy protocol has no _meta; Python peers send none)
   * names the trace when the transport gave none or another one. */
  trace_scope sc;
  const trace_scope *outer = trace_scope_current(), *prev = NULL;
  bool entered = false;
  trace_ctx t;
  if (trace_continue_json(json_object_get(msg, "traceparent"), &t) == 0 &&
      (!trace_current() || memcmp(trace_current()->trace_id, t.trace_id, 16) != 0)) {
    if (outer) sc = *outer;
    else memset(&sc, 0, sizeof sc);
    sc.trace = t;
    prev = trace_scope_enter(&sc);
    entered = true;
  }
  json_t *r = handle_op(ctx, msg, call, op);
  note_store_down(ctx, op, r, store_paths_for(call->auth));
  if (entered) trace_scope_leave(prev);
  op_metrics(op, r, t0);
  return r;
}

static void op_metrics(taskq_op op, const json_t *r, int64_t t0) {
  op_metrics_ok(op, json_is_true(json_object_get(r, "ok")), t0);
}

static void op_metrics_ok(taskq_op op, bool ok, int64_t t0) {
  metrics_inc(&g_p2p_ops, metrics_series2(&g_p2p_ops, op, ok ? 0 : 1));
  int64_t us = clock_mono_us() - t0;
  metrics_observe_us(&g_p2p_op_duration, op, us > 0 ? (uint64_t)us : 0);
}

static json_t *handle_op(taskq_ctx *ctx, const json_t *msg, const taskq_call *call, taskq_op op) {
  json_t *bad = taskq_check_strings(ctx, msg);
  if (bad) return bad;
  auth_ctx eff = *call->auth;
  auth_reason why = AUTH_REASON_NONE;
  const char *detail = NULL;
  if (taskq_present_msg_credentials(ctx->cfg.policy, msg, &eff, &why, &detail) == AUTH_PRESENT_REFUSED) {
    auth_audit_refused(&eff, why, "op", taskq_op_name(op), detail);
    return taskq_error(ctx, "unauthorized");
  }
  /* Authorisation runs before dispatch (§4); unknown ops need no scope and say unknown_op. */
  auth_scopes need = taskq_op_scopes(op);
  if ((why = auth_check(&eff, &need, clock_wall_s())) != AUTH_REASON_NONE) {
    auth_audit_refused(&eff, why, "op", taskq_op_name(op), NULL);
    return taskq_error(ctx, "unauthorized");
  }
  if (op_needs_queue(op) && !ctx->cfg.queue) return taskq_error(ctx, "queue_disabled");
  op_env e = {ctx, msg, call, &eff};
  switch (op) {
  case TASKQ_OP_SUBMIT: return op_submit(&e);
  case TASKQ_OP_CLAIM: return op_claim(&e, false);
  case TASKQ_OP_CLAIM_MANY: return op_claim(&e, true);
  case TASKQ_OP_COMPLETE: return op_complete(&e);
  case TASKQ_OP_FAIL: return op_fail(&e);
  case TASKQ_OP_RELEASE: return op_release(&e);
  case TASKQ_OP_TASK_HEARTBEAT: return op_task_heartbeat(&e);
  case TASKQ_OP_PEER_HEARTBEAT: return op_peer_heartbeat(&e);
  case TASKQ_OP_LIST: return op_list(&e);
  case TASKQ_OP_CANCEL: return op_cancel(&e);
  case TASKQ_OP_STATUS: return op_status(&e);
  case TASKQ_OP_TOOL: return op_tool(&e);
  case TASKQ_OP_CACHE_GET:
  case TASKQ_OP_CACHE_HAS:
  case TASKQ_OP_CACHE_SET:
  case TASKQ_OP_CACHE_DELETE: return op_cache(&e, op);
  case TASKQ_OP_GET: return op_get(&e);
  case TASKQ_OP_WAIT: return op_wait(&e);
  default: return taskq_error(ctx, "unknown_op");
  }
}
