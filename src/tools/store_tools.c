/* store_tools.c — MCP tools over store/queue and store/cache (see store_tools.h).
 *
 * Native names (queue: task_*, cache: cache_*) return {"ok":true,…} objects with the task dict
 * of p2p_tasks_spec.md §3.1 plus lease_epoch / cancel_requested; the ipfs_datasets_py names
 * (category p2p, mcp_server_spec.md §3.4) keep their exact argument and result shapes. Every
 * error is MCP_TOOL_ERROR with {"ok":false,"error":"<code>"} — one place turns store error codes
 * into that shape (fail()). */
#include "tools/store_tools.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "mcp/tool.h"
#include "store/health.h"
#include "util/clock.h"

typedef struct {
  tq_queue *q;
  ttlcache *c;
} store_ctx;

static mcp_tool_status fail(json_t **result, const char *code) {
  *result = json_pack("{s:b, s:s}", "ok", 0, "error", code);
  return MCP_TOOL_ERROR;
}

/* {"ok":true, …obj} (ok first, as the Python tools write it); takes obj. */
static mcp_tool_status ok(json_t **result, json_t *obj) {
  json_t *r = obj ? json_pack("{s:b}", "ok", 1) : NULL;
  if (!r || json_object_update(r, obj) != 0) {
    json_decref(obj);
    json_decref(r);
    return fail(result, "out_of_memory");
  }
  json_decref(obj);
  *result = r;
  return MCP_TOOL_OK;
}

static const char *sarg(json_t *args, const char *k) { return json_string_value(json_object_get(args, k)); }

/* ---- queue ---- */

static mcp_tool_status submit_common(store_ctx *x, json_t *args, json_t **result, bool compat) {
  if (!x->q) return fail(result, "queue_disabled");
  json_t *payload = json_object_get(args, "payload");
  json_t *wrapped = NULL;
  if (!payload) payload = wrapped = json_object();
  else if (!json_is_object(payload)) payload = wrapped = json_pack("{s:O}", "payload", payload);
  if (!payload) return fail(result, "out_of_memory");
  tq_submit_req r = {.task_type = sarg(args, "task_type"), .model_name = sarg(args, "model_name"),
                     .payload = payload};
  if (!r.task_type) r.task_type = "text-generation";
  if (!compat) {
    json_t *v;
    if ((v = json_object_get(args, "priority")) && json_is_integer(v)) {
      r.has_priority = true;
      r.priority = (int)json_integer_value(v);
    }
    if ((v = json_object_get(args, "max_attempts")) && json_is_integer(v)) {
      r.has_max_attempts = true;
      r.max_attempts = (int)json_integer_value(v);
    }
    if ((v = json_object_get(args, "delay_seconds")) && json_is_number(v)) {
      r.has_next_attempt_at = true;
      r.next_attempt_at = clock_wall_s() + json_number_value(v);
    }
    r.idempotency_key = sarg(args, "idempotency_key");
  }
  char id[33];
  bool replayed = false;
  int rc = tq_submit(x->q, &r, id, &replayed);
  json_decref(wrapped);
  if (rc < 0) return fail(result, tq_strerror(rc));
  if (compat) return ok(result, json_pack("{s:s}", "task_id", id));
  return ok(result, json_pack("{s:s, s:b}", "task_id", id, "replayed", replayed));
}

static mcp_tool_status t_task_submit(mcp_call *call, json_t *args, json_t **result, void *ud) {
  return submit_common(ud, args, result, false);
}
static mcp_tool_status t_p2p_task_submit(mcp_call *call, json_t *args, json_t **result, void *ud) {
  return submit_common(ud, args, result, true);
}

static mcp_tool_status get_common(store_ctx *x, json_t *args, json_t **result, unsigned flags) {
  if (!x->q) return fail(result, "queue_disabled");
  tq_task *t;
  int rc = tq_get(x->q, sarg(args, "task_id"), &t);
  if (rc < 0) return fail(result, tq_strerror(rc));
  json_t *j = tq_task_to_json(t, flags);
  tq_task_free(t);
  if (!j) return fail(result, "out_of_memory");
  return ok(result, json_pack("{s:o}", "task", j));
}

static mcp_tool_status t_task_get(mcp_call *call, json_t *args, json_t **result, void *ud) {
  return get_common(ud, args, result, TQ_JSON_FULL | TQ_JSON_EXTRA);
}
static mcp_tool_status t_p2p_task_get(mcp_call *call, json_t *args, json_t **result, void *ud) {
  return get_common(ud, args, result, TQ_JSON_FULL);
}

static bool call_cancelled(void *ud) { return mcp_call_cancelled(ud); }

static mcp_tool_status t_task_wait(mcp_call *call, json_t *args, json_t **result, void *ud) {
  store_ctx *x = ud;
  if (!x->q) return fail(result, "queue_disabled");
  json_t *tv = json_object_get(args, "timeout_s");
  double timeout = json_is_number(tv) ? json_number_value(tv) : 60;
  if (!isfinite(timeout) || timeout < 0) return fail(result, "invalid_argument");
  /* answer before the dispatcher's deadline, with the task as it is then */
  double left = (double)(mcp_call_deadline_ms(call) - clock_mono_ms() - 500) / 1000.0;
  if (timeout > left) timeout = left > 0 ? left : 0;
  tq_task *t;
  int rc = tq_wait(x->q, sarg(args, "task_id"), timeout, call_cancelled, call, &t);
  if (rc < 0) return fail(result, tq_strerror(rc));
  bool done = tq_status_terminal(t->status);
  json_t *j = tq_task_to_json(t, TQ_JSON_FULL | TQ_JSON_EXTRA);
  tq_task_free(t);
  if (!j) return fail(result, "out_of_memory");
  return ok(result, json_pack("{s:o, s:b}", "task", j, "done", done));
}

static mcp_tool_status t_task_list(mcp_call *call, json_t *args, json_t **result, void *ud) {
  store_ctx *x = ud;
  if (!x->q) return fail(result, "queue_disabled");
  bool truncated = false;
  /* a listing is one tool result: keep it far below the transports' frame caps */
  tq_list_opts o = {.status = TQ_STATUS_ANY, .limit = 50, .max_bytes = 4u << 20, .truncated = &truncated};
  const char *st = sarg(args, "status");
  if (st && tq_status_parse(st, &o.status) < 0) return fail(result, "invalid_status");
  json_t *lim = json_object_get(args, "limit");
  if (json_is_integer(lim)) o.limit = (size_t)json_integer_value(lim);
  json_t *types = json_object_get(args, "task_types");
  const char *tv[64];
  if (json_is_array(types)) {
    if (json_array_size(types) > 64) return fail(result, "too_many_task_types");
    for (size_t i = 0; i < json_array_size(types); i++) tv[i] = json_string_value(json_array_get(types, i));
    o.task_types = tv;
    o.n_task_types = json_array_size(types);
  }
  tq_task **v;
  size_t n;
  int rc = tq_list(x->q, &o, &v, &n);
  if (rc < 0) return fail(result, tq_strerror(rc));
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < n; i++) json_array_append_new(arr, tq_task_to_json(v[i], TQ_JSON_FULL | TQ_JSON_EXTRA));
  tq_task_array_free(v, n);
  if (!arr) return fail(result, "out_of_memory");
  return ok(result, json_pack("{s:o, s:I, s:b}", "tasks", arr, "count", (json_int_t)n, "truncated", truncated));
}

static mcp_tool_status t_task_cancel(mcp_call *call, json_t *args, json_t **result, void *ud) {
  store_ctx *x = ud;
  if (!x->q) return fail(result, "queue_disabled");
  tq_cancel_outcome co;
  const char *id = sarg(args, "task_id");
  int rc = tq_cancel(x->q, id, sarg(args, "reason"), &co);
  if (rc < 0) return fail(result, tq_strerror(rc));
  return ok(result, json_pack("{s:s, s:b, s:b}", "task_id", id, "cancelled", co == TQ_CANCEL_DONE,
                              "cancel_requested", co == TQ_CANCEL_REQUESTED));
}

static mcp_tool_status t_task_stats(mcp_call *call, json_t *args, json_t **result, void *ud) {
  store_ctx *x = ud;
  if (!x->q) return fail(result, "queue_disabled");
  json_t *s;
  int rc = tq_stats_json(x->q, &s);
  if (rc < 0) return fail(result, tq_strerror(rc));
  tq_io_stats io;
  tq_io_stats_get(x->q, &io);
  json_object_set_new(s, "io", json_pack("{s:I, s:I, s:I}", "ops", (json_int_t)io.ops, "commits",
                                         (json_int_t)io.commits, "max_group", (json_int_t)io.max_group));
  return ok(result, s);
}

static mcp_tool_status t_p2p_task_delete(mcp_call *call, json_t *args, json_t **result, void *ud) {
  store_ctx *x = ud;
  if (!x->q) return fail(result, "queue_disabled");
  const char *id = sarg(args, "task_id");
  bool deleted = false;
  int rc = tq_delete(x->q, id, &deleted);
  if (rc < 0) return fail(result, tq_strerror(rc));
  return ok(result, json_pack("{s:s, s:b}", "task_id", id, "deleted", deleted));
}

/* ---- cache ---- */

static mcp_tool_status t_cache_get(mcp_call *call, json_t *args, json_t **result, void *ud) {
  store_ctx *x = ud;
  if (!x->c) return fail(result, "cache_disabled");
  const char *key = sarg(args, "key");
  json_t *v = NULL;
  int rc = ttlcache_get(x->c, key, &v);
  if (rc < 0 && rc != -ENOENT) return fail(result, ttlcache_strerror(rc));
  return ok(result, json_pack("{s:s, s:b, s:o}", "key", key, "hit", rc == 0, "value", v ? v : json_null()));
}

static mcp_tool_status t_cache_has(mcp_call *call, json_t *args, json_t **result, void *ud) {
  store_ctx *x = ud;
  if (!x->c) return fail(result, "cache_disabled");
  const char *key = sarg(args, "key");
  bool hit;
  int rc = ttlcache_has(x->c, key, &hit);
  if (rc < 0) return fail(result, ttlcache_strerror(rc));
  return ok(result, json_pack("{s:s, s:b}", "key", key, "hit", hit));
}

static mcp_tool_status t_cache_set(mcp_call *call, json_t *args, json_t **result, void *ud) {
  store_ctx *x = ud;
  if (!x->c) return fail(result, "cache_disabled");
  const char *key = sarg(args, "key");
  json_t *value = json_object_get(args, "value");
  json_t *ttl = json_object_get(args, "ttl_s");
  double t = 0;
  const double *tp = NULL;
  if (json_is_number(ttl)) {
    t = json_number_value(ttl);
    tp = &t;
  }
  int rc = ttlcache_set(x->c, key, value ? value : json_null(), tp);
  if (rc < 0) return fail(result, rc == -EINVAL ? "invalid_ttl_or_key" : ttlcache_strerror(rc));
  return ok(result, json_pack("{s:s}", "key", key));
}

static mcp_tool_status t_cache_delete(mcp_call *call, json_t *args, json_t **result, void *ud) {
  store_ctx *x = ud;
  if (!x->c) return fail(result, "cache_disabled");
  const char *key = sarg(args, "key");
  bool deleted;
  int rc = ttlcache_delete(x->c, key, &deleted);
  if (rc < 0) return fail(result, ttlcache_strerror(rc));
  return ok(result, json_pack("{s:s, s:b}", "key", key, "deleted", deleted));
}

static mcp_tool_status t_cache_stats(mcp_call *call, json_t *args, json_t **result, void *ud) {
  store_ctx *x = ud;
  if (!x->c) return fail(result, "cache_disabled");
  ttlcache_stats s;
  ttlcache_stats_get(x->c, &s);
  return ok(result, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "hits", (json_int_t)s.hits,
                              "misses", (json_int_t)s.misses, "sets", (json_int_t)s.sets, "deletes",
                              (json_int_t)s.deletes, "evictions", (json_int_t)s.evictions, "expired",
                              (json_int_t)s.expired, "corrupt", (json_int_t)s.corrupt, "bytes", (json_int_t)s.bytes,
                              "entries", (json_int_t)s.entries, "max_bytes", (json_int_t)s.max_bytes, "max_entries",
                              (json_int_t)s.max_entries));
}

/* ---- schemas ---- */

#define TASK_ID "\"task_id\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64,\"description\":\"32 lower-case hex\"}"
#define KEY "\"key\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":4096}"
#define TTL "\"ttl_s\":{\"type\":[\"number\",\"null\"],\"minimum\":0,\"maximum\":315360000,\"description\":\"seconds; 0 = never expires; null or absent = the configured default\"}"
#define TYPE_PROP "\"task_type\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":256}"
#define MODEL_PROP "\"model_name\":{\"type\":\"string\",\"maxLength\":256,\"default\":\"\"}"
#define OBJ(props, req) "{\"type\":\"object\",\"properties\":{" props "},\"required\":[" req "],\"additionalProperties\":false}"

static const char *s_submit = OBJ(
    TYPE_PROP "," MODEL_PROP ",\"payload\":{\"description\":\"the work; a non-object x becomes {\\\"payload\\\": x}\"},"
    "\"priority\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10},"
    "\"max_attempts\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000,\"description\":\"0 = unlimited\"},"
    "\"idempotency_key\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":256},"
    "\"delay_seconds\":{\"type\":\"number\",\"minimum\":0,\"maximum\":31536000}",
    "\"task_type\"");
static const char *s_p2p_submit = OBJ(TYPE_PROP ",\"payload\":{\"type\":\"object\"}," MODEL_PROP,
                                      "\"task_type\",\"payload\"");
static const char *s_task_id = OBJ(TASK_ID, "\"task_id\"");
static const char *s_wait = OBJ(TASK_ID ",\"timeout_s\":{\"type\":\"number\",\"minimum\":0,\"maximum\":86400,"
                                "\"default\":60,\"description\":\"capped by the server (queue wait_max_seconds)\"}",
                                "\"task_id\"");
static const char *s_list = OBJ("\"status\":{\"enum\":[\"queued\",\"running\",\"completed\",\"failed\",\"cancelled\"]},"
                                "\"task_types\":{\"type\":\"array\",\"maxItems\":64,\"items\":{\"type\":\"string\","
                                "\"minLength\":1,\"maxLength\":256}},"
                                "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":50}",
                                "");
static const char *s_cancel = OBJ(TASK_ID ",\"reason\":{\"type\":\"string\",\"maxLength\":4096}", "\"task_id\"");
static const char *s_empty = OBJ("", "");
static const char *s_key = OBJ(KEY, "\"key\"");
static const char *s_set = OBJ(KEY ",\"value\":{}," TTL, "\"key\",\"value\"");

static const char *ro = "{\"readOnlyHint\":true}";

#define TOOL(n, cat, desc, schema, fn_, scope, fl, ann) \
  {.name = n, .category = cat, .description = desc, .input_schema = schema, .scopes = AUTH_SCOPES_INIT(scope), .flags = fl, \
   .fn = fn_, .annotations = ann}

/* Every tool runs through wrapped(): a storage error (or queue_disabled / cache_disabled) gets
 * the store's cause and reason, and the file for the operator (local, or the admin scope) —
 * issue 9 item 10: no bare "storage_error" while the store knows why. */
typedef struct {
  store_ctx *x;
  mcp_tool_fn fn;
  store_kind k;
} wrap;

static bool storage_code(const char *code) {
  static const char *const k_codes[] = {"queue_disabled", "cache_disabled", "database_corrupt", "storage_error",
                                        "not_an_sqlite_database", "read_only_storage", "storage_permission_denied",
                                        "disk_full", NULL};
  for (const char *const *c = k_codes; code && *c; c++)
    if (strcmp(code, *c) == 0) return true;
  return false;
}

static mcp_tool_status wrapped(mcp_call *call, json_t *args, json_t **result, void *ud) {
  const wrap *w = ud;
  mcp_tool_status st = w->fn(call, args, result, w->x);
  if (st == MCP_TOOL_ERROR && json_is_object(*result) &&
      storage_code(json_string_value(json_object_get(*result, "error")))) {
    const mcp_auth *a = mcp_call_auth(call);
    store_health_annotate(w->x->q, w->x->c, w->k, *result, a && (auth_ctx_is_local(a) || auth_allows_mask(a, AUTH_ADMIN)));
  }
  return st;
}

int store_tools_register(mcp_registry *reg, tq_queue *q, ttlcache *c) {
  mcp_tool_def defs[] = {
      TOOL("task_submit", "queue",
           "Submit a task to the durable queue; returns its task_id once the task is on disk. Same "
           "idempotency_key + same work replays the existing id. Who runs it: this node's in-process "
           "workers (p2p.workers, one per CPU by default) take task_type \"tool.call\" (payload "
           "{\"tool\": NAME, \"args\": {...}}, any remotely callable tool) and the name of a remote command "
           "tool; with p2p.workers 0 a task waits for a `peermcp worker` elsewhere. Follow it with "
           "task_get or task_wait.",
           s_submit, t_task_submit, AUTH_TASK_SUBMIT, MCP_TOOL_REMOTE, NULL),
      TOOL("task_get", "queue", "Get a task (the full task dict) by id.", s_task_id, t_task_get,
           AUTH_TASK_SUBMIT, MCP_TOOL_REMOTE, ro),
      TOOL("task_wait", "queue",
           "Wait until a task is completed, failed or cancelled, or the timeout passes; returns the task "
           "and done=true when it finished.",
           s_wait, t_task_wait, AUTH_TASK_SUBMIT, MCP_TOOL_REMOTE | MCP_TOOL_LONG, ro),
      TOOL("task_list", "queue", "List tasks (oldest first), optionally by status and task types.", s_list,
           t_task_list, AUTH_TASK_SUBMIT, MCP_TOOL_REMOTE, ro),
      TOOL("task_cancel", "queue",
           "Cancel a task: a queued task is cancelled at once, a running one gets cancel_requested (its worker "
           "sees it at the next heartbeat).",
           s_cancel, t_task_cancel, AUTH_TASK_SUBMIT, MCP_TOOL_REMOTE, NULL),
      TOOL("task_stats", "queue", "Task counts by status and by type, and the queue's commit counters.", s_empty,
           t_task_stats, AUTH_TASK_SUBMIT, MCP_TOOL_REMOTE, ro),
      TOOL("cache_get", "cache", "Read a cache entry: {key, hit, value}.", s_key, t_cache_get, AUTH_CACHE_READ,
           MCP_TOOL_REMOTE, ro),
      TOOL("cache_has", "cache", "Whether a live cache entry exists: {key, hit}.", s_key, t_cache_has,
           AUTH_CACHE_READ, MCP_TOOL_REMOTE, ro),
      TOOL("cache_set", "cache", "Write a cache entry durably, with an optional TTL in seconds.", s_set, t_cache_set,
           AUTH_CACHE_WRITE, MCP_TOOL_REMOTE, NULL),
      TOOL("cache_delete", "cache", "Delete a cache entry: {key, deleted}.", s_key, t_cache_delete,
           AUTH_CACHE_WRITE, MCP_TOOL_REMOTE, NULL),
      TOOL("cache_stats", "cache", "Cache counters: hits, misses, evictions, expired, corrupt, bytes, entries.",
           s_empty, t_cache_stats, AUTH_CACHE_READ, MCP_TOOL_REMOTE, ro),
      TOOL("p2p_task_submit", "p2p", "ipfs_datasets_py compatible: submit a task; returns {ok, task_id}.",
           s_p2p_submit, t_p2p_task_submit, AUTH_TASK_SUBMIT, MCP_TOOL_REMOTE, NULL),
      TOOL("p2p_task_get", "p2p",
           "ipfs_datasets_py compatible: {ok, task} or {ok:false, error:\"task_not_found\"}.", s_task_id,
           t_p2p_task_get, AUTH_TASK_SUBMIT, MCP_TOOL_REMOTE, ro),
      TOOL("p2p_task_delete", "p2p", "ipfs_datasets_py compatible: delete a task in any state (local admin).",
           s_task_id, t_p2p_task_delete, AUTH_ADMIN, 0, NULL),
      TOOL("p2p_cache_get", "p2p", "ipfs_datasets_py compatible cache read: {ok, key, hit, value}.", s_key,
           t_cache_get, AUTH_CACHE_READ, MCP_TOOL_REMOTE, ro),
      TOOL("p2p_cache_has", "p2p", "ipfs_datasets_py compatible: {ok, key, hit}.", s_key, t_cache_has,
           AUTH_CACHE_READ, MCP_TOOL_REMOTE, ro),
      TOOL("p2p_cache_set", "p2p", "ipfs_datasets_py compatible cache write: {ok, key}.", s_set, t_cache_set,
           AUTH_CACHE_WRITE, MCP_TOOL_REMOTE, NULL),
      TOOL("p2p_cache_delete", "p2p", "ipfs_datasets_py compatible: {ok, key, deleted}.", s_key, t_cache_delete,
           AUTH_CACHE_WRITE, MCP_TOOL_REMOTE, NULL),
  };
  size_t n = sizeof defs / sizeof defs[0];
  /* one block: the wrappers, then the context they share */
  wrap *ws = calloc(1, n * sizeof(wrap) + sizeof(store_ctx));
  if (!ws) return -ENOMEM;
  store_ctx *x = (store_ctx *)(void *)(ws + n);
  x->q = q;
  x->c = c;
  for (size_t i = 0; i < n; i++) {
    ws[i] = (wrap){.x = x, .fn = defs[i].fn, .k = strstr(defs[i].name, "cache") ? STORE_CACHE : STORE_QUEUE};
    defs[i].fn = wrapped;
    defs[i].ud = &ws[i];
    if (strcmp(defs[i].name, "task_wait") == 0) defs[i].timeout_ms = 320000; /* wait_max 300 s + margin */
    if (i == 0) defs[i].ud_free = free;                                      /* the first tool owns the block */
    int rc = mcp_registry_add(reg, &defs[i]);
    if (rc < 0) {
      if (i == 0) free(ws);
      return rc;
    }
  }
  int rc = mcp_registry_describe_category(reg, "queue", "Durable task queue: submit, inspect, wait for, cancel tasks.");
  if (rc == 0) rc = mcp_registry_describe_category(reg, "cache", "Shared disk TTL cache.");
  if (rc == 0 && mcp_registry_category_description(reg, "p2p")[0] == 0)
    rc = mcp_registry_describe_category(reg, "p2p", "ipfs_datasets_py compatible P2P tool names.");
  if (rc < 0) return rc;
  return 0;
}
