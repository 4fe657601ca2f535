/* session.c — the sans-I/O JSON-RPC/MCP session core (see session.h).
 *
 * Spec: MCP 2025-11-25 (basic/lifecycle, utilities/{ping,cancellation,progress,pagination},
 * server/{tools,resources,prompts,utilities/logging,utilities/completion}) for the legacy era
 * and 2026-07-28 (basic/index §_meta, basic/versioning, server/discover,
 * server/utilities/caching) for the modern era. Every error is produced here, in one shape. */
#include "mcp/session.h"

#include "mcp/session_int.h"

#include <errno.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "mcp/envelope.h"
#include "mcp/schema.h"
#include "util/alloc.h"
#include "util/jparse.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/trace.h"

#ifndef PEERMCP_VERSION
#define PEERMCP_VERSION "0.0.0"
#endif

static const char *const k_legacy_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
#define N_LEGACY (sizeof k_legacy_versions / sizeof k_legacy_versions[0])

static const char *const k_log_levels[] = {"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"};
#define N_LEVELS 8

/* The era of the request being handled, for replies made through the public reply functions. */
static bool cur_modern(const mcp_session *s, const json_t *id) {
  return s->cur && s->cur->modern && id && s->cur->id && json_equal(s->cur->id, (json_t *)id);
}

static int level_rank(const char *name) {
  if (!name) return -1;
  for (int i = 0; i < N_LEVELS; i++)
    if (strcmp(name, k_log_levels[i]) == 0) return i;
  if (strcmp(name, "warn") == 0) return 3;
  return -1;
}

/* ---------- output ---------- */

/* Out of memory: every answer the session builds is whole or replaced by this error (a client
 * must never see a result with a field missing). Building it may fail too; then the request
 * goes unanswered and the log says why. */
#define MSG_OOM "out of memory"

/* True for the error this file sends when out of memory (it has no smaller fallback). */
static bool is_oom_error(const json_t *msg) {
  const json_t *e = json_object_get(msg, "error");
  return e && json_integer_value(json_object_get(e, "code")) == RPC_INTERNAL_ERROR &&
         json_string_value(json_object_get(e, "message")) &&
         strcmp(json_string_value(json_object_get(e, "message")), MSG_OOM) == 0;
}

static void req_answered(mcp_session *s, const json_t *request_id, int error_code);

/* The room kept in s->out between messages: an out-of-memory error always fits. */
#define OUT_KEEP_BYTES 1024u
#define OUT_SHRINK_BYTES (1024u * 1024u) /* a larger buffer is given back after its message */

/* Hands the message in s->out to the transport with where it belongs (session.h, per-request
 * routing). False when the transport's copy could not be allocated (nothing was sent). */
static bool sess_deliver(mcp_session *s, mcp_out_kind kind, const json_t *request_id, int error_code, bool modern) {
  if (kind == MCP_OUT_RESPONSE) req_answered(s, request_id, error_code); /* counted once (metrics) */
  const char *p = jwrite_ptr(&s->out);
  size_t n = jwrite_len(&s->out);
  char *text = NULL;
  if (!s->o.write && !(s->o.route && s->o.route_borrowed)) { /* `send` and `route` take a malloc'd string */
    if (!(text = malloc(n + 1))) return false;
    memcpy(text, p, n);
    text[n] = 0;
  }
  CHECK(!s->in_send); /* a send callback does not send through the session it serves */
  s->in_send = true;
  if (s->o.write) {
    s->o.write(s->o.send_ud, p, n);
  } else if (s->o.route) {
    mcp_session_out out = {.kind = kind, .request_id = request_id, .error_code = error_code, .modern = modern};
    s->o.route(s->o.send_ud, &out, text ? text : (char *)p, n);
  } else {
    s->o.send(s->o.send_ud, text, n);
  }
  s->in_send = false;
  if (s->out.cap > OUT_SHRINK_BYTES) { /* one big message does not pin its memory for the session's life */
    jwrite_free(&s->out);
    if (jwrite_grow(&s->out, OUT_KEEP_BYTES) != 0) jwrite_reset(&s->out); /* the next message grows it */
  }
  jwrite_reset(&s->out);
  return true;
}

/* The one exit of every outgoing message built as a tree: serialises msg (stolen) and hands it
 * to the transport. */
void sess_emit(mcp_session *s, mcp_out_kind kind, const json_t *request_id, int error_code, bool modern, json_t *msg) {
  if (!msg) {
    if (kind == MCP_OUT_RESPONSE) req_answered(s, request_id, error_code);
    return;
  }
  jwrite_reset(&s->out);
  jwrite_json(&s->out, msg);
  if (jwrite_error(&s->out) || !sess_deliver(s, kind, request_id, error_code, modern)) {
    jwrite_reset(&s->out);
    /* An answer that cannot be written still owes the client a reply: a short error (a
     * notification or a server-to-client request is dropped). */
    json_t *id = json_incref(json_object_get(msg, "id"));
    bool fallback = kind == MCP_OUT_RESPONSE && id && !is_oom_error(msg);
    json_decref(msg);
    if (fallback) sess_error_era(s, json_is_null(id) ? NULL : id, modern, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    else log_error("session: cannot serialise a message (out of memory)", NULL);
    json_decref(id);
    return;
  }
  json_decref(msg);
}

/* A notification caused by request `rid` (NULL = of the session as a whole). */
void sess_notify(mcp_session *s, const json_t *rid, bool modern, json_t *msg) {
  sess_emit(s, MCP_OUT_NOTIFICATION, rid, 0, modern, msg);
}

void sess_notify_whole(mcp_session *s, alloc_watch w, const json_t *rid, bool modern, json_t *msg) {
  if (alloc_watch_end(w)) {
    json_decref(msg);
    return;
  }
  sess_notify(s, rid, modern, msg);
}

static bool cur_modern(const mcp_session *s, const json_t *id);

void sess_error_era(mcp_session *s, json_t *id, bool modern, int code, const char *message, json_t *data) {
  alloc_watch w = alloc_watch_begin();
  json_t *err = json_pack("{s:i, s:s}", "code", code, "message", message ? message : "error");
  if (err && data) json_object_set(err, "data", data);
  json_decref(data);
  json_t *m = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", err);
  if (alloc_watch_end(w) && code != RPC_INTERNAL_ERROR) { /* e.g. the data went missing */
    json_decref(m);
    sess_error_era(s, id, modern, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    return;
  }
  if (!m) log_error("session: cannot answer a request (out of memory)", NULL);
  sess_emit(s, MCP_OUT_RESPONSE, id, code, modern, m);
}

void sess_result_era(mcp_session *s, json_t *id, bool modern, json_t *result) {
  alloc_watch w = alloc_watch_begin();
  json_t *m = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "result",
                        result ? result : json_object());
  if (alloc_watch_end(w)) {
    json_decref(m);
    sess_error_era(s, id, modern, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    return;
  }
  sess_emit(s, MCP_OUT_RESPONSE, id, 0, modern, m);
}

void sess_reply_whole(mcp_session *s, json_t *id, bool modern, json_t *result) {
  if (!result || alloc_oom_seen()) {
    json_decref(result);
    sess_error_era(s, id, modern, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    return;
  }
  sess_result_era(s, id, modern, result);
}

void mcp_session_reply_error(mcp_session *s, json_t *id, int code, const char *message, json_t *data) {
  sess_error_era(s, id, cur_modern(s, id), code, message, data);
}

void mcp_session_reply_result(mcp_session *s, json_t *id, json_t *result) {
  sess_result_era(s, id, cur_modern(s, id), result);
}

json_t *sess_server_info(const mcp_session *s) {
  return json_pack("{s:s, s:s}", "name", s->o.server_name, "version", s->o.server_version);
}

/* Adds the modern per-result fields. `cacheable` adds ttlMs/cacheScope. A failure shows in the
 * unit of work's alloc_watch (sess_reply_whole refuses the result then). */
json_t *sess_modern_result(const mcp_session *s, json_t *result, bool cacheable) {
  if (!result) return NULL;
  json_object_set_new(result, "resultType", json_string("complete"));
  json_t *meta = json_object_get(result, "_meta");
  if (!json_is_object(meta)) {
    meta = json_object();
    if (json_object_set_new(result, "_meta", meta) != 0) return result; /* meta is gone */
  }
  json_object_set_new(meta, "io.modelcontextprotocol/serverInfo", sess_server_info(s));
  if (cacheable) {
    json_object_set_new(result, "ttlMs", json_integer(s->o.list_ttl_ms));
    /* A remote caller's lists are filtered by what it may use: not shareable across callers. */
    json_object_set_new(result, "cacheScope", json_string(s->o.remote ? "private" : "public"));
  }
  return result;
}

void sess_reply(mcp_session *s, const req_ctx *rc, json_t *result, bool cacheable) {
  if (!rc->id) {
    json_decref(result);
    return;
  }
  if (rc->modern) result = sess_modern_result(s, result, cacheable);
  sess_reply_whole(s, rc->id, rc->modern, result);
}

void sess_reply_err(mcp_session *s, const req_ctx *rc, int code, const char *message, json_t *data) {
  if (!rc->id) { /* notifications never get a response */
    json_decref(data);
    return;
  }
  if (alloc_oom_seen()) { /* this unit of work lost an allocation: the data may be partial */
    json_decref(data);
    code = RPC_INTERNAL_ERROR;
    message = MSG_OOM;
    data = NULL;
  }
  sess_error_era(s, rc->id, rc->modern, code, message, data);
}

static json_t *supported_versions(void) {
  json_t *a = json_array();
  json_array_append_new(a, json_string(MCP_PROTOCOL_MODERN));
  for (size_t i = 0; i < N_LEGACY; i++) json_array_append_new(a, json_string(k_legacy_versions[i]));
  return a;
}

/* Tasks arrived in 2025-11-25 (legacy core) and live in an extension in 2026-07-28. */
static bool legacy_has_tasks(const mcp_session *s) {
  return s->o.tasks && (!s->legacy_version || strcmp(s->legacy_version, "2025-11-25") >= 0);
}

static json_t *capabilities(const mcp_session *s, bool modern, const char *legacy_version) {
  json_t *c = json_pack("{s:{s:b}, s:{}, s:{s:b}, s:{s:b, s:b}}", "tools", "listChanged", 0, "logging", "prompts",
                        "listChanged", 0, "resources", "subscribe", 1, "listChanged", 0);
  /* completions arrived in 2025-03-26 */
  if (modern || !legacy_version || strcmp(legacy_version, "2025-03-26") >= 0)
    json_object_set_new(c, "completions", json_object());
  if (s->o.tasks && modern)
    json_object_set_new(c, "extensions", json_pack("{s:{}}", MCP_TASKS_EXTENSION));
  else if (s->o.tasks && (!legacy_version || strcmp(legacy_version, "2025-11-25") >= 0))
    json_object_set_new(c, "tasks", json_pack("{s:{}, s:{}, s:{s:{s:{}}}}", "list", "cancel", "requests", "tools", "call"));
  return c;
}

/* ---------- lifecycle ---------- */

int mcp_session_new(const mcp_session_opts *opts, mcp_session **out) {
  *out = NULL;
  if (!opts || !opts->dispatcher || !opts->auth || (!opts->send && !opts->route && !opts->write)) return -EINVAL;
  mcp_session *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->o = *opts;
  jwrite_init(&s->out, MCP_SESSION_MAX_OUT_BYTES, opts->ascii_only ? JWRITE_ASCII : 0);
  jwrite_init(&s->tmp, MCP_SESSION_MAX_OUT_BYTES, 0);
  if (jwrite_grow(&s->out, OUT_KEEP_BYTES) != 0) {
    free(s);
    return -ENOMEM;
  }
  if (!s->o.page_size) s->o.page_size = MCP_SESSION_DEFAULT_PAGE_SIZE;
  if (!s->o.max_message_bytes) s->o.max_message_bytes = MCP_SESSION_DEFAULT_MAX_MESSAGE;
  if (!s->o.list_ttl_ms) s->o.list_ttl_ms = 60000;
  if (!s->o.max_inflight || s->o.max_inflight > MCP_SESSION_MAX_INFLIGHT) s->o.max_inflight = MCP_SESSION_MAX_INFLIGHT;
  if (!s->o.server_name) s->o.server_name = "peermcp";
  if (!s->o.server_version) s->o.server_version = PEERMCP_VERSION;
  if (!s->o.init_required_code) s->o.init_required_code = RPC_INVALID_REQUEST;
  if (!s->o.init_required_message) s->o.init_required_message = "initialize first";
  if (!s->o.busy_code) s->o.busy_code = RPC_INTERNAL_ERROR;
  if (!s->o.busy_message) s->o.busy_message = "too many requests in flight";
  if (!s->o.transport) s->o.transport = "stdio";
  s->m_transport = !strcmp(s->o.transport, "stdio") ? 0 : !strcmp(s->o.transport, "http") ? 1
                   : !strcmp(s->o.transport, "p2p") ? 2 : -1;
  s->log_min = s->o.quiet_logs ? -1 : 1; /* info */
  sess_catalog_open(s);
  *out = s;
  return 0;
}

void sess_req_unlink(mcp_session *s, sess_req *r) {
  CHECK(s->inflight > 0);
  CHECK(r->prev ? r->prev->next == r : s->reqs == r); /* r is on this session's list */
  CHECK(!r->next || r->next->prev == r);
  if (r->prev) r->prev->next = r->next;
  else s->reqs = r->next;
  if (r->next) r->next->prev = r->prev;
  s->inflight--;
}

void sess_req_free(sess_req *r) {
  json_decref(r->id);
  mcp_reqctx_unref(r->ctx);
  json_decref(r->params);
  json_decref(r->progress_token);
  json_decref(r->answers);
  free(r);
}

void sess_req_done(mcp_session *s, sess_req *r) {
  sess_req_unlink(s, r);
  sess_req_free(r);
  if (s->inflight == 0 && s->idle_cb) s->idle_cb(s->idle_ud); /* last: the callback may free s */
}

const char *sess_req_name(const sess_req *r) {
  const json_t *p = r->params;
  switch (r->kind) {
  case RK_RESOURCE: return json_string_value(json_object_get(p, "uri"));
  case RK_COMPLETE: return json_string_value(json_object_get(json_object_get(p, "ref"), "uri"));
  default: return json_string_value(json_object_get(p, "name"));
  }
}

json_t *sess_req_args(const sess_req *r) {
  json_t *a = r->kind == RK_COMPLETE ? json_object_get(json_object_get(r->params, "context"), "arguments")
              : r->kind == RK_RESOURCE ? NULL
                                       : json_object_get(r->params, "arguments");
  return json_is_object(a) ? a : NULL;
}

req_ctx sess_rc_of(const sess_req *r) { return (req_ctx){.id = r->id, .modern = r->modern, .log_min = r->log_min}; }

void sess_sub_free(mcp_session *s, sess_sub *u) {
  mcp_resources *res = mcp_registry_resources(mcp_dispatcher_registry(s->o.dispatcher));
  for (size_t i = 0; i < json_array_size(u->uris); i++) {
    mcp_resources_unsubscribe(res, json_string_value(json_array_get(u->uris, i)));
    s->nlisten_uris--;
  }
  json_decref(u->uris);
  json_decref(u->id);
  free(u);
}

/* Forgets the server-to-client requests of r (all of them when r is NULL); tells the client
 * they are cancelled when `tell` (cancellation.mdx: either side may cancel its requests). */
static void outs_drop(mcp_session *s, sess_req *r, bool tell) {
  for (sess_out **pp = &s->outs; *pp;) {
    sess_out *o = *pp;
    if (r && o->r != r) {
      pp = &o->next;
      continue;
    }
    *pp = o->next;
    s->nouts--;
    if (tell)
      sess_notify(s, o->r->id, o->r->modern,
                  json_pack("{s:s, s:s, s:{s:I, s:s}}", "jsonrpc", "2.0", "method", "notifications/cancelled", "params",
                            "requestId", (json_int_t)o->id, "reason", "the request that needed it was cancelled"));
    free(o);
  }
  if (r) r->waiting = 0;
}

void mcp_session_free(mcp_session *s) {
  if (!s) return;
  LOOP_THREAD_ONLY();
  CHECK(!s->in_send); /* session.h: the send callback must not free the session */
  CHECK(!s->cur);     /* nor a method hook */
  outs_drop(s, NULL, false);
  while (s->watches) {
    sess_watch *w = s->watches;
    s->watches = w->next;
    s->o.tasks->detach(s->o.tasks->impl, w->op);
    free(w);
  }
  while (s->subs) {
    sess_sub *n = s->subs->next;
    sess_sub_free(s, s->subs);
    s->subs = n;
  }
  sess_req *r = s->reqs;
  while (r) {
    sess_req *next = r->next;
    if (r->call) mcp_dispatch_detach(r->call);
    if (r->top) s->o.tasks->detach(s->o.tasks->impl, r->top);
    if (r->job) sess_job_detach(r);
    sess_req_free(r);
    r = next;
  }
  sess_catalog_close(s);
  json_decref(s->client_caps);
  free(s->legacy_version);
  jwrite_free(&s->out);
  jwrite_free(&s->tmp);
  free(s);
}

size_t mcp_session_inflight(const mcp_session *s) { return s->inflight; }
void mcp_session_on_idle(mcp_session *s, void (*cb)(void *ud), void *ud) {
  s->idle_cb = cb;
  s->idle_ud = ud;
}
static void task_wait_abort(mcp_session *s, sess_req *r, bool reply_retry);

static void input_wait_abort(mcp_session *s, sess_req *r, bool reply);

void mcp_session_cancel_all(mcp_session *s) {
  LOOP_THREAD_ONLY();
  for (sess_req *r = s->reqs, *next; r; r = next) {
    next = r->next;
    r->cancelled = true;
    if (r->call) mcp_dispatch_cancel(r->call);
    /* other task operations are short and their completions still come; a result wait is not */
    if (r->top && r->kind == RK_TASK_RESULT) task_wait_abort(s, r, false);
    /* nor is a wait for the client's answers */
    else if (r->waiting) input_wait_abort(s, r, false);
  }
}
const char *mcp_session_legacy_version(const mcp_session *s) { return s->legacy_version; }

/* ---------- tool calls ---------- */

static void on_progress(void *ud, json_t *token, double progress, double total, const char *message) {
  sess_req *r = ud;
  if (r->cancelled) return;
  alloc_watch w = alloc_watch_begin();
  json_t *p = json_pack("{s:O, s:f}", "progressToken", token, "progress", progress);
  if (total >= 0) json_object_set_new(p, "total", json_real(total));
  if (message) json_object_set_new(p, "message", json_string(message));
  sess_notify_whole(r->s, w, r->id, r->modern,
                    json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", "notifications/progress", "params", p));
}

static void on_log(void *ud, const char *level, const char *message) {
  sess_req *r = ud;
  int rank = level_rank(level);
  if (rank < 0) rank = 1;
  int min = r->modern ? r->log_min : r->s->log_min;
  if (r->cancelled || min < 0 || rank < min) return;
  alloc_watch w = alloc_watch_begin();
  sess_notify_whole(r->s, w, r->id, r->modern, json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "jsonrpc", "2.0", "method", "notifications/message",
                           "params", "level", k_log_levels[rank], "logger", "peermcp", "data", message ? message : ""));
}

/* The CallToolResult of a tool that added content blocks (mcp_reqctx_add_content): exactly those
 * blocks, its value as structuredContent, and the envelope's _meta. */
static json_t *content_result(const mcp_call_outcome *o, json_t *content) {
  bool ok = o->status == MCP_DISPATCH_OK;
  json_t *env = mcp_call_outcome_envelope(o);
  if (!env) return NULL;
  json_t *res = json_pack("{s:O, s:b}", "content", content, "isError", !ok);
  json_t *value = json_object_get(env, "result");
  if (res && ok && value && !json_is_null(value))
    json_object_set_new(res, "structuredContent", json_is_object(value) ? json_incref(value) : json_pack("{s:O}", "result", value));
  json_t *meta = json_pack("{s:O*, s:O*}", "io.peermcp/request_id", json_object_get(env, "request_id"),
                           "io.peermcp/duration_ms", json_object_get(env, "duration_ms"));
  if (res && meta) json_object_set_new(res, "_meta", meta);
  else json_decref(meta);
  return res;
}

/* server/tools.mdx §Output Schema: structured results MUST conform to the tool's outputSchema.
 * A result that does not is the tool's bug: the client gets a tool error saying so instead of
 * data that breaks its validation. Returns false (and replaces *res) when it does not conform. */
static bool output_conforms(const mcp_call_outcome *o, json_t **res) {
  json_t *schema = o->tool ? mcp_tool_output_schema(o->tool) : NULL;
  json_t *sc = json_object_get(*res, "structuredContent");
  if (!schema || !sc || o->status != MCP_DISPATCH_OK) return true;
  json_t *copy = json_deep_copy(sc); /* validation fills defaults in: keep the envelope as it was */
  char err[400] = "";
  int rc = copy ? mcp_schema_validate(schema, copy, err, sizeof err) : -ENOMEM;
  json_decref(copy);
  if (rc == 0) return true;
  const char *tool = mcp_tool_def_of(o->tool)->name;
  log_error("session: a tool result does not match its outputSchema", "{s:s, s:s}", "tool", tool, "error", err);
  char msg[600];
  snprintf(msg, sizeof msg, "Tool %.64s returned a result that does not match its outputSchema: %.400s", tool, err);
  json_decref(*res);
  *res = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", msg, "isError", 1);
  return false;
}

static void call_dispatch(mcp_session *s, sess_req *r, const char *tool, json_t *args, const mcp_auth *auth,
                          bool with_ctx, json_t *caps);
static bool call_keep_params(sess_req *r, const mcp_call_outcome *o, mcp_call *call);

static void call_done_work(sess_req *r, const mcp_call_outcome *o);

/* The answer to a successful tools/call of a tool with no outputSchema and no content blocks —
 * the common case — written straight into the output buffer: exactly the bytes the tree path
 * (mcp_dispatch_call_result + sess_reply) gives, with no envelope, no CallToolResult tree and
 * one serialisation of the value (its text is both the text block and structuredContent).
 * False when it could not be written (out of memory): nothing was sent, take the tree path. */
/* No byte of p[0..n) is outside ASCII (so a JWRITE_ASCII writer would write it unchanged). */
static bool all_ascii(const char *p, size_t n) {
  const unsigned char *u = (const unsigned char *)p;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    memcpy(&x, u + i, 8);
    if (x & 0x8080808080808080ull) return false;
  }
  for (; i < n; i++)
    if (u[i] & 0x80) return false;
  return true;
}

static bool call_reply_fast(mcp_session *s, sess_req *r, const mcp_call_outcome *o) {
  json_t *v = o->value;
  bool obj = json_is_object(v);
  jwrite *t = &s->tmp, *w = &s->out;
  jwrite_reset(t);
  if (!obj) jwrite_lit(t, "{\"result\":"); /* structuredContent must be an object */
  if (v) jwrite_json(t, v);
  else jwrite_lit(t, "null");
  if (!obj) jwrite_byte(t, '}');
  jwrite_reset(w);
  jwrite_lit(w, "{\"jsonrpc\":\"2.0\",\"id\":");
  jwrite_json(w, r->id);
  jwrite_lit(w, ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"");
  jwrite_str_body(w, jwrite_ptr(t), jwrite_len(t));
  jwrite_lit(w, "\"}],\"structuredContent\":");
  if ((w->flags & JWRITE_ASCII) && !all_ascii(jwrite_ptr(t), jwrite_len(t))) {
    /* the text above was not ASCII-escaped and holds non-ASCII: write it again, escaped */
    if (!obj) jwrite_lit(w, "{\"result\":");
    if (v) jwrite_json(w, v);
    else jwrite_lit(w, "null");
    if (!obj) jwrite_byte(w, '}');
  } else {
    jwrite_raw(w, jwrite_ptr(t), jwrite_len(t));
  }
  jwrite_lit(w, ",\"isError\":false,\"_meta\":{\"io.peermcp/request_id\":");
  jwrite_cstr(w, o->request_id);
  jwrite_lit(w, ",\"io.peermcp/duration_ms\":");
  jwrite_fixed(w, o->duration_us, MCP_DURATION_DECIMALS);
  if (r->modern) { /* sess_modern_result's fields, in its order */
    jwrite_lit(w, ",\"io.modelcontextprotocol/serverInfo\":{\"name\":");
    jwrite_cstr(w, s->o.server_name);
    jwrite_lit(w, ",\"version\":");
    jwrite_cstr(w, s->o.server_version);
    jwrite_lit(w, "}},\"resultType\":\"complete\"}}");
  } else {
    jwrite_lit(w, "}}}");
  }
  bool ok = !jwrite_error(t) && !jwrite_error(w);
  if (t->cap > OUT_SHRINK_BYTES) jwrite_free(t);
  jwrite_reset(t);
  if (!ok) {
    jwrite_reset(w);
    return false;
  }
  return sess_deliver(s, MCP_OUT_RESPONSE, r->id, 0, r->modern);
}

/* A shaper's raw_content answer: {"jsonrpc":"2.0","id":…,"result":{"content":<text>}} written
 * straight into the output (the text is already in this writer's form); a modern-era request,
 * or a writer that is not ASCII-only (the text is), parses it and takes the tree path. */
static void reply_raw_content(mcp_session *s, sess_req *r, const req_ctx *rc, const mcp_session_shaped *sh) {
  if (!r->modern && (s->out.flags & JWRITE_ASCII)) {
    jwrite *w = &s->out;
    jwrite_reset(w);
    jwrite_lit(w, "{\"jsonrpc\":\"2.0\",\"id\":");
    jwrite_json(w, r->id);
    jwrite_lit(w, ",\"result\":{\"content\":");
    jwrite_raw(w, sh->raw_content, sh->raw_content_len);
    jwrite_lit(w, "}}");
    if (!jwrite_error(w) && sess_deliver(s, MCP_OUT_RESPONSE, r->id, 0, false)) return;
    jwrite_reset(w);
  }
  json_t *v = NULL;
  if (jparse(sh->raw_content, sh->raw_content_len, JWRITE_MAX_DEPTH, &v, NULL) != 0) {
    sess_reply_err(s, rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    return;
  }
  json_t *res = json_object();
  if (!res || json_object_set_new_nocheck(res, "content", v) != 0) {
    json_decref(res);
    sess_reply_err(s, rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    return;
  }
  sess_reply(s, rc, res, false);
}

/* A completion is a unit of work: its answer is whole or -32603 (util/alloc.h). */
static void on_call_done(void *ud, const mcp_call_outcome *o) {
  sess_req *r = ud;
  /* The request's answer time for its metrics: the dispatcher's completion reading (a first
   * round started at the request's arrival, call_dispatch) — no clock read of our own. */
  r->m_end_us = OBS_HOT && !r->rounds && o->duration_us >= 0 && r->m_start_us > 0 ? r->m_start_us + o->duration_us : 0;
  alloc_watch w = alloc_watch_begin();
  call_done_work(ud, o);
  (void)alloc_watch_end(w);
}

static void call_done_work(sess_req *r, const mcp_call_outcome *o) {
  mcp_session *s = r->s;
  CHECK(r->kind == RK_CALL && r->call && !r->top); /* a call request waits for its call only */
  mcp_call *call = r->call;
  r->call = NULL;
  if (r->cancelled) {
    sess_req_done(s, r);
    return;
  }
  /* the handler returned (not a timeout, a refusal or a cancel): did it ask the client? */
  bool ran = o->status == MCP_DISPATCH_OK || o->status == MCP_DISPATCH_TOOL_ERROR;
  if (ran && r->ctx && json_object_size(mcp_reqctx_questions(r->ctx)) > 0 && !call_keep_params(r, o, call)) {
    req_ctx rc = sess_rc_of(r);
    sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    sess_req_done(s, r);
    return;
  }
  if (ran && r->ctx && sess_input_after(s, r, o->status != MCP_DISPATCH_OK)) return;
  mcp_session_shaped shaped = {0};
  req_ctx rc = sess_rc_of(r);
  json_t *content = ran ? mcp_reqctx_content(r->ctx) : NULL;
  /* The transport's shaper first, on the outcome as it came (its envelope may still be lazy:
   * a shaper that reads it calls mcp_call_outcome_envelope), so a call it leaves alone takes
   * the fast path below like any other. */
  if (s->o.result_shaper && s->o.result_shaper(s->o.hook_ud, o, &shaped)) {
    if (shaped.raw_content) reply_raw_content(s, r, &rc, &shaped);
    else if (shaped.result) sess_reply(s, &rc, shaped.result, false);
    else sess_reply_err(s, &rc, shaped.code ? shaped.code : RPC_INTERNAL_ERROR, shaped.message, NULL);
    sess_req_done(s, r);
    return;
  }
  if (!content && o->status == MCP_DISPATCH_OK && !alloc_oom_seen() && !(o->tool && mcp_tool_output_schema(o->tool)) &&
      call_reply_fast(s, r, o)) {
    sess_req_done(s, r);
    return;
  }
  mcp_call_outcome full = *o; /* the tree paths read the envelope */
  full.envelope = mcp_call_outcome_envelope(o);
  if (!full.envelope) {
    sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    sess_req_done(s, r);
    return;
  }
  o = &full;
  if (o->status == MCP_DISPATCH_UNKNOWN_TOOL) {
    const char *tool = json_string_value(json_object_get(o->envelope, "tool"));
    char msg[200];
    snprintf(msg, sizeof msg, "Unknown tool: %.128s", tool ? tool : "");
    sess_reply_err(s, &rc, RPC_INVALID_PARAMS, msg, NULL);
  } else {
    json_t *res = content ? content_result(o, content) : mcp_dispatch_call_result(o->envelope);
    /* An error need not match the tool's outputSchema, and some clients validate whatever
     * structuredContent they get: leave it out there (the text block still carries it). */
    if (res && o->status != MCP_DISPATCH_OK && o->tool && mcp_tool_output_schema(o->tool))
      json_object_del(res, "structuredContent");
    if (res) output_conforms(o, &res);
    if (res) sess_reply(s, &rc, res, false);
    else sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
  }
  sess_req_done(s, r);
}

/* Request ids are strings or integers (checked on input); integers, the common case, compare
 * without json_equal's type dispatch (this scan runs once per request over those in flight). */
static bool same_id(const json_t *a, const json_t *b) {
  if (json_is_integer(a)) return json_is_integer(b) && json_integer_value(a) == json_integer_value(b);
  return json_equal((json_t *)a, (json_t *)b);
}

sess_req *sess_find_req(mcp_session *s, const json_t *id) {
  for (sess_req *r = s->reqs; r; r = r->next)
    if (same_id(r->id, id)) return r;
  return NULL;
}

sess_sub *sess_find_sub(mcp_session *s, const json_t *id, sess_sub ***link) {
  for (sess_sub **pp = &s->subs; *pp; pp = &(*pp)->next)
    if (same_id((*pp)->id, id)) {
      if (link) *link = pp;
      return *pp;
    }
  return NULL;
}

/* 2026-07-28 basic/patterns/subscriptions.mdx. peermcp's tool, prompt and resource lists never
 * change while it runs, so the acknowledged filter holds at most the resourceSubscriptions it
 * can serve (sess_listen_filter); the stream stays open until the client cancels it or the
 * server ends it (mcp_session_end_subscriptions). */
static void m_subscriptions_listen(mcp_session *s, req_ctx *rc) {
  if (!rc->id) return;
  json_t *filter = json_object_get(rc->params, "notifications");
  if (filter && !json_is_object(filter)) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "subscriptions/listen: params.notifications must be an object", NULL);
    return;
  }
  if (sess_find_req(s, rc->id) || sess_find_sub(s, rc->id, NULL)) {
    sess_reply_err(s, rc, RPC_INVALID_REQUEST, "a request with this id is already in flight", NULL);
    return;
  }
  if (s->nsubs >= MCP_SESSION_MAX_SUBSCRIPTIONS) {
    sess_reply_err(s, rc, RPC_INTERNAL_ERROR, "too many subscriptions", NULL);
    return;
  }
  sess_sub *u = calloc(1, sizeof *u);
  if (!u) {
    sess_reply_err(s, rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    return;
  }
  u->id = json_incref(rc->id);
  json_t *agreed = sess_listen_filter(s, rc, u);
  if (!agreed) {
    sess_sub_free(s, u);
    return;
  }
  u->next = s->subs;
  s->subs = u;
  s->nsubs++;
  CHECK(s->nsubs <= MCP_SESSION_MAX_SUBSCRIPTIONS);
  alloc_watch w = alloc_watch_begin();
  sess_notify_whole(s, w, u->id, true,
                    json_pack("{s:s, s:s, s:{s:{s:O}, s:o}}", "jsonrpc", "2.0", "method",
                              "notifications/subscriptions/acknowledged", "params", "_meta",
                              "io.modelcontextprotocol/subscriptionId", u->id, "notifications", agreed));
}

void mcp_session_end_subscriptions(mcp_session *s) {
  LOOP_THREAD_ONLY();
  for (sess_req *r = s->reqs, *next; r; r = next) {
    next = r->next;
    if (r->top && r->kind == RK_TASK_RESULT) task_wait_abort(s, r, true);
    else if (r->waiting) input_wait_abort(s, r, true);
  }
  while (s->subs) {
    sess_sub *u = s->subs;
    s->subs = u->next;
    s->nsubs--;
    alloc_watch w = alloc_watch_begin();
    json_t *res = json_pack("{s:{s:O}}", "_meta", "io.modelcontextprotocol/subscriptionId", u->id);
    sess_reply_whole(s, u->id, true, sess_modern_result(s, res, false));
    (void)alloc_watch_end(w);
    sess_sub_free(s, u);
  }
}

size_t mcp_session_subscriptions(const mcp_session *s) { return s->nsubs; }

static bool task_call_route(mcp_session *s, req_ctx *rc, const char *tool, json_t *args);
static void call_start(mcp_session *s, req_ctx *rc, const char *tool, json_t *args, const mcp_auth *auth,
                       uint32_t timeout_ms);

static void m_tools_call(mcp_session *s, req_ctx *rc) {
  if (rc->call_fast) { /* checked by feed_envelope: a string name, arguments an object or none */
    if (!rc->id) return;
    if (s->o.tasks && task_call_route(s, rc, rc->call_tool, rc->call_args)) return;
    call_start(s, rc, rc->call_tool, rc->call_args, s->o.auth, s->o.call_timeout_ms);
    return;
  }
  json_t *name = json_object_get(rc->params, "name");
  if (!json_is_string(name)) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "tools/call: params.name must be a string", NULL);
    return;
  }
  json_t *args = json_object_get(rc->params, "arguments");
  if (args && !json_is_null(args) && !json_is_object(args)) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "tools/call: params.arguments must be an object", NULL);
    return;
  }
  if (!rc->id) return; /* a tools/call notification: nothing to answer, nothing to run */
  if (s->o.tasks && task_call_route(s, rc, json_string_value(name), args)) return;
  call_start(s, rc, json_string_value(name), args, s->o.auth, s->o.call_timeout_ms);
}

int mcp_session_start_call(mcp_session *s, const mcp_session_call *call) {
  LOOP_THREAD_ONLY();
  if (!s->cur || !s->cur->id || !call || !call->tool) return -EINVAL;
  json_t *args = call->args;
  if (args && !json_is_null(args) && !json_is_object(args)) {
    sess_reply_err(s, s->cur, RPC_INVALID_PARAMS, "tools/call: params.arguments must be an object", NULL);
    return 0;
  }
  call_start(s, s->cur, call->tool, args, call->auth ? call->auth : s->o.auth,
             call->timeout_ms ? call->timeout_ms : s->o.call_timeout_ms);
  return 0;
}

/* Starts one tracked dispatch for request rc (answered in every case). */
static void call_start(mcp_session *s, req_ctx *rc, const char *tool, json_t *args, const mcp_auth *auth,
                       uint32_t timeout_ms) {
  sess_req *r = sess_req_begin(s, rc, RK_CALL);
  if (!r) return;
  r->timeout_ms = timeout_ms;
  json_t *tok = json_object_get(rc->meta, "progressToken");
  if (tok && (json_is_string(tok) || json_is_integer(tok))) r->progress_token = json_incref(tok);
  /* Client input (mcp/reqctx.h) for calls made as the session's own caller; a hook's caller
   * lives only as long as the hook's request, too short for a later round. */
  json_t *caps = NULL;
  bool with_ctx = auth == s->o.auth;
  if (with_ctx) {
    if (!sess_input_begin(s, rc, r)) {
      sess_req_done(s, r);
      return;
    }
    caps = rc->modern ? json_object_get(rc->meta, "io.modelcontextprotocol/clientCapabilities") : s->client_caps;
  }
  call_dispatch(s, r, tool, json_is_object(args) ? args : NULL, auth, with_ctx, caps);
}

/* Runs (or runs again) the tool of request r, with a request context when with_ctx. */
static void call_dispatch(mcp_session *s, sess_req *r, const char *tool, json_t *args, const mcp_auth *auth,
                          bool with_ctx, json_t *caps) {
  mcp_reqctx *ctx = NULL;
  if (with_ctx && !(ctx = mcp_reqctx_new(caps, r->answers))) {
    req_ctx rc = sess_rc_of(r);
    sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    sess_req_done(s, r);
    return;
  }
  mcp_reqctx_unref(r->ctx);
  r->ctx = ctx;
  mcp_call_request cr = {
      .tool = tool,
      .args = args,
      .auth = auth,
      .remote = s->o.remote,
      .progress_token = r->progress_token,
      .timeout_ms = r->timeout_ms,
      .sink = {.progress = on_progress, .log = on_log, .ud = r},
      .ext = mcp_reqctx_ref(ctx),
      .ext_free = ctx ? mcp_reqctx_unref_void : NULL,
      /* call_done_work copes with all three: an inline tool is answered before
       * mcp_dispatch_start returns (r is gone then), from the outcome's fields, and the
       * arguments are the request's own tree, read-only */
      .sync_done = true,
      .lazy_envelope = true,
      .args_shared = true,
      .rpc_id = r->id,
      .transport = s->o.transport,
      /* the request's own trace and arrival time (msg_begin): no second span, no clock read */
      .trace = &r->trace,
      .start_us = r->rounds ? 0 : r->m_start_us, /* a later round starts now */
  };
  int err = mcp_dispatch_start(s->o.dispatcher, &cr, on_call_done, r, &r->call);
  if (err != 0) {
    mcp_reqctx_unref(ctx); /* the dispatcher did not take it */
    req_ctx rc = sess_rc_of(r);
    sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, "cannot start the call", NULL);
    sess_req_done(s, r);
  }
}

/* A later round of r (legacy): the same tool and arguments, the client's new answers. */
static void call_again(mcp_session *s, sess_req *r) {
  call_dispatch(s, r, sess_req_name(r), sess_req_args(r), s->o.auth, true, s->client_caps);
}

/* A tool asked the client something: keep what a later round needs — its name and the arguments
 * it ran with (defaults filled in; the requestState binding uses them too). */
static bool call_keep_params(sess_req *r, const mcp_call_outcome *o, mcp_call *call) {
  if (r->params) return true;
  r->params = json_pack("{s:s, s:O}", "name", o->tool ? mcp_tool_def_of(o->tool)->name : "", "arguments",
                        call && mcp_call_args(call) ? mcp_call_args(call) : json_object());
  return r->params != NULL;
}

/* ---------- client input rounds (mcp/reqctx.h; 2026-07-28 basic/patterns/mrtr.mdx) ---------- */

static int64_t unix_ms(void) { return (int64_t)(clock_wall_s() * 1000.0); }

static const char *method_of(const sess_req *r) {
  return r->kind == RK_CALL ? "tools/call" : r->kind == RK_PROMPT ? "prompts/get" : "resources/read";
}

/* The requestState binding: method, name/uri, caller, arguments. */
static int binding_for(mcp_session *s, const sess_req *r, const char *name, json_t *args,
                       char out[MCP_REQSTATE_BINDING_LEN + 1]) {
  char owner[MCP_TASKS_MAX_OWNER];
  if (!mcp_tasks_owner_key(s->o.auth, owner, sizeof owner)) owner[0] = 0;
  if (json_object_size(args) == 0) args = NULL; /* {} and no arguments are the same request */
  return mcp_reqstate_binding(method_of(r), name, owner, args, out);
}

static int binding_of(mcp_session *s, const sess_req *r, char out[MCP_REQSTATE_BINDING_LEN + 1]) {
  return binding_for(s, r, sess_req_name(r), sess_req_args(r), out);
}

/* A tool's arguments as its handler gets them (defaults of the input schema filled in), which
 * is what the binding of a tools/call covers. A new reference, or NULL on ENOMEM. */
static json_t *tool_args(mcp_session *s, const char *tool, json_t *args) {
  json_t *copy = json_is_object(args) ? json_deep_copy(args) : json_object();
  const mcp_tool *t = tool ? mcp_registry_find(mcp_dispatcher_registry(s->o.dispatcher), tool) : NULL;
  char err[8];
  if (copy && t && mcp_schema_validate(mcp_tool_input_schema(t), copy, err, sizeof err) != 0) {
    /* invalid arguments: the call fails anyway; bind what was sent */
  }
  return copy;
}

bool sess_input_begin(mcp_session *s, req_ctx *rc, sess_req *r) {
  if (!rc->modern) return true; /* legacy: answers come by server-to-client requests */
  json_t *state = json_object_get(rc->params, "requestState");
  json_t *in = json_object_get(rc->params, "inputResponses");
  if (!state && !in) return true;
  if (in) {
    if (!json_is_object(in)) {
      sess_reply_err(s, rc, RPC_INVALID_PARAMS, "Invalid params: inputResponses must be an object", NULL);
      return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(in, k, v) {
      if (!json_is_object(v)) {
        char m[160];
        snprintf(m, sizeof m, "Invalid params: inputResponses.%.64s must be the client's result object", k);
        sess_reply_err(s, rc, RPC_INVALID_PARAMS, m, NULL);
        return false;
      }
    }
  }
  if (state) {
    char b[MCP_REQSTATE_BINDING_LEN + 1];
    json_t *answers = NULL;
    int err = -EBADMSG;
    if (json_is_string(state) && r->kind == RK_CALL) {
      const char *tool = json_string_value(json_object_get(rc->params, "name"));
      json_t *args = tool_args(s, tool, json_object_get(rc->params, "arguments"));
      err = args ? binding_for(s, r, tool, args, b) : -ENOMEM;
      json_decref(args);
    } else if (json_is_string(state)) {
      err = binding_of(s, r, b);
    }
    if (err == 0) err = mcp_reqstate_open(json_string_value(state), b, unix_ms(), &answers);
    if (err == -ENOMEM) {
      sess_reply_err(s, rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
      return false;
    }
    if (err != 0) {
      log_info("session: refused a requestState", "{s:s, s:i}", "method", method_of(r), "errno", -err);
      sess_reply_err(s, rc, RPC_INVALID_PARAMS,
                     err == -ETIMEDOUT ? "Invalid params: requestState expired; start the request again"
                     : err == -E2BIG   ? "Invalid params: requestState too long"
                                       : "Invalid params: requestState failed verification",
                     NULL);
      return false;
    }
    r->answers = answers;
  }
  if (in) {
    if (!r->answers) r->answers = json_object();
    if (!r->answers || json_object_update(r->answers, in) != 0) {
      sess_reply_err(s, rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
      return false;
    }
  }
  return true;
}

/* The client's capabilities: 2026-07-28 per request (_meta), earlier ones from initialize. */
mcp_reqctx *sess_input_ctx(mcp_session *s, sess_req *r) {
  json_t *caps = r->modern ? json_object_get(json_object_get(r->params, "_meta"), "io.modelcontextprotocol/clientCapabilities")
                           : s->client_caps;
  return mcp_reqctx_new(caps, r->answers);
}

/* Ends r with an error made by the server (a tool gets an error result, other requests a
 * JSON-RPC error). */
static void input_fail(mcp_session *s, sess_req *r, const char *msg) {
  req_ctx rc = sess_rc_of(r);
  if (r->kind == RK_CALL)
    sess_reply(s, &rc, json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", msg, "isError", 1), false);
  else
    sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, msg, NULL);
  sess_req_done(s, r);
}

/* 2026-07-28: the InputRequiredResult, with the answers used so far sealed in requestState. */
static void input_required_reply(mcp_session *s, sess_req *r, json_t *questions) {
  char b[MCP_REQSTATE_BINDING_LEN + 1];
  int err = binding_of(s, r, b);
  char *state = err == 0 ? mcp_reqstate_seal(mcp_reqctx_answers_used(r->ctx), b, unix_ms(), &err) : NULL;
  if (!state) {
    input_fail(s, r, err == -E2BIG ? "the answers of this request no longer fit in a requestState"
                                   : "cannot make the requestState");
    return;
  }
  json_t *res = json_pack("{s:s, s:O, s:s, s:{s:o}}", "resultType", "input_required", "inputRequests", questions,
                          "requestState", state, "_meta", "io.modelcontextprotocol/serverInfo", sess_server_info(s));
  free(state);
  sess_result_era(s, r->id, true, res);
  sess_req_done(s, r);
}

/* Legacy: each question becomes a server-to-client request made on r's behalf. */
static void ask_client(mcp_session *s, sess_req *r, json_t *questions) {
  if (r->rounds++ >= MCP_REQCTX_MAX_ROUNDS) {
    input_fail(s, r, "too many rounds of questions to the client");
    return;
  }
  if (s->nouts + json_object_size(questions) > MCP_SESSION_MAX_PENDING_QUESTIONS) {
    input_fail(s, r, "too many questions to the client pending");
    return;
  }
  /* carry the answers the handler used into the next round; later answers join them */
  json_t *used = mcp_reqctx_answers_used(r->ctx);
  json_t *answers = used ? json_deep_copy(used) : json_object();
  if (!answers) {
    input_fail(s, r, "out of memory");
    return;
  }
  json_decref(r->answers);
  r->answers = answers;
  json_t *q = json_incref(questions); /* the context goes now; keep what we send */
  mcp_reqctx_unref(r->ctx);
  r->ctx = NULL;
  const char *key;
  json_t *v;
  json_object_foreach(q, key, v) {
    sess_out *o = calloc(1, sizeof *o);
    if (!o) break;
    o->id = ++s->out_seq;
    o->r = r;
    snprintf(o->key, sizeof o->key, "%s", key);
    snprintf(o->method, sizeof o->method, "%s", json_string_value(json_object_get(v, "method")));
    o->next = s->outs;
    s->outs = o;
    s->nouts++;
    r->waiting++;
    sess_emit(s, MCP_OUT_REQUEST, r->id, 0, false,
              json_pack("{s:s, s:I, s:s, s:O}", "jsonrpc", "2.0", "id", (json_int_t)o->id, "method", o->method, "params",
                        json_object_get(v, "params")));
  }
  json_decref(q);
  if (r->waiting == 0) input_fail(s, r, "out of memory");
}

bool sess_input_after(mcp_session *s, sess_req *r, bool failed) {
  json_t *q = mcp_reqctx_questions(r->ctx);
  if (json_object_size(q) > 0) {
    if (r->modern) input_required_reply(s, r, q);
    else ask_client(s, r, q);
    return true;
  }
  json_t *missing = mcp_reqctx_missing(r->ctx);
  if (!failed || !missing) return false;
  if (!r->modern && r->kind == RK_CALL) return false; /* the tool's own error result says it */
  req_ctx rc = sess_rc_of(r);
  json_t *data = json_pack("{s:O}", "requiredCapabilities", missing);
  if (r->modern) sess_reply_err(s, &rc, MCP_MISSING_CLIENT_CAPABILITY, "Missing required client capability", data);
  else sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, "The client did not declare a capability this request needs", data);
  sess_req_done(s, r);
  return true;
}

/* A wait for the client's answers ends early (cancel, shutdown): its questions are withdrawn. */
static void input_wait_abort(mcp_session *s, sess_req *r, bool reply) {
  outs_drop(s, r, !reply);
  if (reply && !r->cancelled) {
    req_ctx rc = sess_rc_of(r);
    sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, "the server is shutting down; the client's answers are no longer awaited",
                   NULL);
  }
  sess_req_done(s, r);
}

/* A JSON-RPC response from the client: the answer to one of our server-to-client requests. */
static void client_answer(mcp_session *s, json_t *m) {
  json_t *id = json_object_get(m, "id");
  if (!json_is_integer(id)) return;
  sess_out *o = NULL;
  for (sess_out **pp = &s->outs; *pp; pp = &(*pp)->next)
    if ((*pp)->id == json_integer_value(id)) {
      o = *pp;
      *pp = o->next;
      s->nouts--;
      break;
    }
  if (!o) return; /* unknown or withdrawn: ignored */
  sess_req *r = o->r;
  r->waiting--;
  json_t *res = json_object_get(m, "result");
  if (!json_is_object(res)) {
    json_t *err = json_object_get(m, "error");
    const char *em = json_string_value(json_object_get(err, "message"));
    char msg[300];
    snprintf(msg, sizeof msg, "The client answered %s with an error: %.200s", o->method,
             em ? em : json_is_object(err) ? "(no message)" : "(not a result object)");
    free(o);
    outs_drop(s, r, true);
    input_fail(s, r, msg);
    return;
  }
  int rc = json_object_set(r->answers, o->key, res);
  free(o);
  if (rc != 0) {
    outs_drop(s, r, true);
    input_fail(s, r, "out of memory");
    return;
  }
  if (r->waiting > 0) return;
  if (r->kind == RK_CALL) call_again(s, r);
  else sess_catalog_run(s, r);
}

/* ---------- MCP Tasks (mcp/tasks.h) ---------- */

/* Registers a request in flight, after the duplicate-id and capacity checks. NULL = answered. */
sess_req *sess_req_begin(mcp_session *s, req_ctx *rc, int kind) {
  if (sess_find_req(s, rc->id) || sess_find_sub(s, rc->id, NULL)) {
    sess_reply_err(s, rc, RPC_INVALID_REQUEST, "a request with this id is already in flight", NULL);
    return NULL;
  }
  if (s->inflight >= s->o.max_inflight) {
    sess_reply_err(s, rc, s->o.busy_code, s->o.busy_message, NULL);
    return NULL;
  }
  /* malloc and a struct assignment, not calloc: glibc's calloc (before 2.41) bypasses the
   * thread cache, ~400 instructions a request more (and GCC turns malloc + memset into calloc) */
  sess_req *r = malloc(sizeof *r);
  if (!r) {
    sess_reply_err(s, rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    return NULL;
  }
  *r = (sess_req){
      .s = s,
      .id = json_incref(rc->id),
      .modern = rc->modern,
      .log_min = rc->log_min,
      .kind = kind,
      .m_method = (uint8_t)s->m_method, /* answered later: counted then (req_answered) */
      .m_start_us = s->m_start_us,
  };
  if (OBS_HOT) r->trace = s->m_scope.trace; /* a later round (call_again) runs in the same trace */
  if (s->m_id == rc->id) s->m_open = false;
  r->next = s->reqs;
  if (s->reqs) s->reqs->prev = r;
  s->reqs = r;
  s->inflight++;
  return r;
}

/* Ends a tasks/result wait early: the backend forgets the op; optionally the client hears why. */
static void task_wait_abort(mcp_session *s, sess_req *r, bool reply_retry) {
  CHECK(r->kind == RK_TASK_RESULT && r->top && !r->call);
  s->o.tasks->detach(s->o.tasks->impl, r->top);
  r->top = NULL;
  sess_req_unlink(s, r);
  if (reply_retry && !r->cancelled)
    sess_error_era(s, r->id, r->modern, RPC_INTERNAL_ERROR,
                    "the server is shutting down; the task goes on: retry tasks/result later", NULL);
  sess_req_free(r);
}

static void task_reply_rc(mcp_session *s, const req_ctx *rc, int err) {
  if (err == -ENOENT) sess_reply_err(s, rc, RPC_INVALID_PARAMS, "Failed to retrieve task: Task not found", NULL);
  else if (err == -EINVAL) sess_reply_err(s, rc, RPC_INVALID_PARAMS, "Invalid cursor", NULL);
  else if (err == -ESHUTDOWN) sess_reply_err(s, rc, RPC_INTERNAL_ERROR, "the task store is shutting down", NULL);
  else if (err == -EBUSY) sess_reply_err(s, rc, RPC_INTERNAL_ERROR, "too many task operations waiting", NULL);
  else sess_reply_err(s, rc, RPC_INTERNAL_ERROR, "task store error", NULL);
}

/* tasks/result for a terminal task: exactly what the tools/call would have answered. */
static void task_reply_result(mcp_session *s, const req_ctx *rc, const mcp_task_view *v) {
  json_t *related = json_pack("{s:s}", "taskId", v->task_id);
  if (v->result && !v->error) {
    json_t *res = json_deep_copy(v->result);
    json_t *meta = json_object_get(res, "_meta");
    if (!json_is_object(meta)) {
      meta = json_object();
      if (json_object_set_new(res, "_meta", meta) != 0) meta = NULL; /* freed; the watch saw it */
    }
    if (meta) json_object_set_new(meta, MCP_TASKS_RELATED_META, related);
    else json_decref(related);
    sess_reply(s, rc, res, false);
    return;
  }
  int code = RPC_INTERNAL_ERROR;
  const char *msg = v->status == MCP_TASK_CANCELLED ? "the task was cancelled" : "the task failed";
  if (v->error) {
    json_t *c = json_object_get(v->error, "code");
    if (json_is_integer(c)) code = (int)json_integer_value(c);
    const char *m = json_string_value(json_object_get(v->error, "message"));
    if (m) msg = m;
  } else if (v->status_message) {
    msg = v->status_message;
  }
  sess_reply_err(s, rc, code, msg, json_pack("{s:{s:o}}", "_meta", MCP_TASKS_RELATED_META, related));
}

static void on_watch_done(void *ud, int err, const mcp_task_view *v, size_t n, const char *next_cursor) {
  sess_watch *w = ud;
  mcp_session *s = w->s;
  for (sess_watch **pp = &s->watches; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      s->nwatches--;
      break;
    }
  if (err == 0 && n == 1) {
    /* the full task, as tasks/get would show it now; no related-task _meta (tasks.mdx) */
    alloc_watch aw = alloc_watch_begin();
    json_t *p = w->modern ? mcp_tasks_modern_json(&v[0], true) : mcp_tasks_legacy_json(&v[0]);
    sess_notify_whole(s, aw, NULL, w->modern,
                      json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", "notifications/tasks/status", "params", p));
  }
  free(w);
}

static void task_watch(mcp_session *s, const char *task_id, bool modern) {
  char owner[MCP_TASKS_MAX_OWNER];
  if (s->nwatches >= MCP_SESSION_MAX_TASK_WATCHES || !mcp_tasks_owner_key(s->o.auth, owner, sizeof owner)) return;
  sess_watch *w = calloc(1, sizeof *w);
  if (!w) return;
  w->s = s;
  w->modern = modern;
  if (s->o.tasks->get(s->o.tasks->impl, owner, task_id, true, on_watch_done, w, &w->op) != 0) {
    free(w); /* e.g. too many waits: notifications are optional */
    return;
  }
  w->next = s->watches;
  s->watches = w;
  s->nwatches++;
  CHECK(s->nwatches <= MCP_SESSION_MAX_TASK_WATCHES);
}

static void on_task_done(void *ud, int err, const mcp_task_view *v, size_t n, const char *next_cursor) {
  sess_req *r = ud;
  mcp_session *s = r->s;
  CHECK(r->kind >= RK_TASK_CREATE && r->kind <= RK_TASK_CANCEL && r->top && !r->call);
  alloc_watch aw = alloc_watch_begin();
  r->top = NULL;
  sess_req_unlink(s, r);
  req_ctx rc = {.id = r->id, .modern = r->modern};
  if (r->cancelled) goto done;
  if (r->kind == RK_TASK_CANCEL && r->modern) { /* SEP-2663: always an empty acknowledgement */
    sess_reply(s, &rc, json_object(), false);
    goto done;
  }
  if (err == -EALREADY && r->kind == RK_TASK_CANCEL && n == 1) {
    char m[160];
    snprintf(m, sizeof m, "Cannot cancel task: already in terminal status '%s'", mcp_task_status_name(v[0].status));
    sess_reply_err(s, &rc, RPC_INVALID_PARAMS, m, NULL);
    goto done;
  }
  if (err != 0 || (r->kind != RK_TASK_LIST && n != 1)) {
    task_reply_rc(s, &rc, err != 0 ? err : -EIO);
    goto done;
  }
  switch (r->kind) {
  case RK_TASK_CREATE:
    log_info("session: task created", "{s:s, s:s}", "task_id", v[0].task_id, "era", r->modern ? "modern" : "legacy");
    if (r->modern) {
      json_t *res = sess_modern_result(s, mcp_tasks_modern_json(&v[0], false), false);
      json_object_set_new(res, "resultType", json_string("task"));
      sess_reply_whole(s, r->id, true, res);
    } else {
      sess_reply(s, &rc, json_pack("{s:o}", "task", mcp_tasks_legacy_json(&v[0])), false);
    }
    task_watch(s, v[0].task_id, r->modern);
    break;
  case RK_TASK_GET:
    sess_reply(s, &rc, r->modern ? mcp_tasks_modern_json(&v[0], true) : mcp_tasks_legacy_json(&v[0]), false);
    break;
  case RK_TASK_CANCEL:
    sess_reply(s, &rc, mcp_tasks_legacy_json(&v[0]), false);
    break;
  case RK_TASK_RESULT:
    task_reply_result(s, &rc, &v[0]);
    break;
  case RK_TASK_LIST: {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, mcp_tasks_legacy_json(&v[i]));
    json_t *res = json_pack("{s:o}", "tasks", a);
    if (next_cursor) json_object_set_new(res, "nextCursor", json_string(next_cursor));
    sess_reply(s, &rc, res, false);
    break;
  }
  }
done:
  sess_req_free(r);
  (void)alloc_watch_end(aw);
  if (s->inflight == 0 && s->idle_cb) s->idle_cb(s->idle_ud); /* last: the callback may free s */
}

/* Checks that the backend accepted the op; on a synchronous refusal answers and forgets r. */
static void task_op_started(mcp_session *s, req_ctx *rc, sess_req *r, int err) {
  if (err == 0) return;
  sess_req_unlink(s, r);
  sess_req_free(r);
  task_reply_rc(s, rc, err);
}

static bool owner_of(mcp_session *s, req_ctx *rc, char owner[MCP_TASKS_MAX_OWNER]) {
  if (mcp_tasks_owner_key(s->o.auth, owner, MCP_TASKS_MAX_OWNER)) return true;
  sess_reply_err(s, rc, RPC_INTERNAL_ERROR, "caller identity too long to bind a task to", NULL);
  return false;
}

/* Decides whether a tools/call becomes a task (2025-11-25 tasks.mdx §Tool-Level Negotiation;
 * SEP-2663 §Capability Negotiation). Returns true when it answered or started a task. */
static bool task_call_route(mcp_session *s, req_ctx *rc, const char *name, json_t *args) {
  const mcp_registry *reg = mcp_dispatcher_registry(s->o.dispatcher);
  const mcp_tool *t = mcp_registry_find(reg, name);
  if (!t || (s->o.remote && !(mcp_tool_def_of(t)->flags & MCP_TOOL_REMOTE))) return false; /* unknown: normal path */
  if (s->o.tool_filter && !s->o.tool_filter(s->o.hook_ud, t, s->o.auth)) return false; /* the dispatcher refuses it */
  mcp_task_support sup = mcp_tasks_tool_support(s->o.tasks, t);
  json_t *task = json_object_get(rc->params, "task");
  int64_t ttl_ms = -1;
  bool want;
  char m[300];
  if (rc->modern) {
    json_t *caps = json_object_get(rc->meta, "io.modelcontextprotocol/clientCapabilities");
    bool ext = json_is_object(json_object_get(json_object_get(caps, "extensions"), MCP_TASKS_EXTENSION));
    if (!ext && sup == MCP_TASK_SUPPORT_REQUIRED) {
      snprintf(m, sizeof m, "Tool %.128s runs only as a task: declare the %s extension", name, MCP_TASKS_EXTENSION);
      sess_reply_err(s, rc, MCP_MISSING_CLIENT_CAPABILITY, m, NULL);
      return true;
    }
    /* The server decides (SEP-2663): every task-capable tool runs as a task for a client that
     * declared the extension on this request. */
    want = ext && sup != MCP_TASK_SUPPORT_FORBIDDEN;
  } else {
    if (!legacy_has_tasks(s)) return false; /* no capability negotiated: process normally */
    if (task && !json_is_null(task) && !json_is_object(task)) {
      sess_reply_err(s, rc, RPC_INVALID_PARAMS, "tools/call: params.task must be an object", NULL);
      return true;
    }
    want = json_is_object(task);
    if (want && sup == MCP_TASK_SUPPORT_FORBIDDEN) {
      snprintf(m, sizeof m, "Tool %.128s does not support task-augmented calls", name);
      sess_reply_err(s, rc, RPC_METHOD_NOT_FOUND, m, NULL);
      return true;
    }
    if (!want && sup == MCP_TASK_SUPPORT_REQUIRED) {
      snprintf(m, sizeof m, "Tool %.128s requires task augmentation", name);
      sess_reply_err(s, rc, RPC_METHOD_NOT_FOUND, m, NULL);
      return true;
    }
  }
  if (!want) return false;
  json_t *ttl = json_object_get(task, "ttl");
  if (ttl && !json_is_null(ttl)) {
    if (!json_is_number(ttl) || json_number_value(ttl) < 0) {
      sess_reply_err(s, rc, RPC_INVALID_PARAMS, "tools/call: params.task.ttl must be a non-negative number", NULL);
      return true;
    }
    double v = json_number_value(ttl);
    ttl_ms = v > 9.0e15 ? (int64_t)9e15 : (int64_t)v;
  }
  char owner[MCP_TASKS_MAX_OWNER];
  if (!owner_of(s, rc, owner)) return true;
  sess_req *r = sess_req_begin(s, rc, RK_TASK_CREATE);
  if (!r) return true;
  json_t *empty = NULL;
  if (!json_is_object(args)) args = empty = json_object();
  mcp_task_create cr = {.owner = owner, .tool = name, .args = args, .ttl_ms = ttl_ms};
  int err = s->o.tasks->create(s->o.tasks->impl, &cr, on_task_done, r, &r->top);
  json_decref(empty);
  task_op_started(s, rc, r, err);
  return true;
}

/* params.taskId: a non-empty string of bounded length. NULL = answered with -32602. */
static const char *task_id_param(mcp_session *s, req_ctx *rc) {
  json_t *id = json_object_get(rc->params, "taskId");
  if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > MCP_TASKS_MAX_ID) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "params.taskId must be a task id string", NULL);
    return NULL;
  }
  return json_string_value(id);
}

static bool tasks_enabled(mcp_session *s, req_ctx *rc, const char *method) {
  if (s->o.tasks) return true;
  char m[120];
  snprintf(m, sizeof m, "Method not found: %s", method);
  sess_reply_err(s, rc, RPC_METHOD_NOT_FOUND, m, NULL);
  return false;
}

static void task_get_common(mcp_session *s, req_ctx *rc, int kind, const char *method) {
  if (!tasks_enabled(s, rc, method)) return;
  const char *tid = task_id_param(s, rc);
  char owner[MCP_TASKS_MAX_OWNER];
  if (!tid || !owner_of(s, rc, owner)) return;
  sess_req *r = sess_req_begin(s, rc, kind);
  if (!r) return;
  int err;
  if (kind == RK_TASK_CANCEL)
    err = s->o.tasks->cancel(s->o.tasks->impl, owner, tid, on_task_done, r, &r->top);
  else
    err = s->o.tasks->get(s->o.tasks->impl, owner, tid, kind == RK_TASK_RESULT, on_task_done, r, &r->top);
  task_op_started(s, rc, r, err);
}

static void m_tasks_get(mcp_session *s, req_ctx *rc) { task_get_common(s, rc, RK_TASK_GET, "tasks/get"); }
static void m_tasks_result(mcp_session *s, req_ctx *rc) { task_get_common(s, rc, RK_TASK_RESULT, "tasks/result"); }
static void m_tasks_cancel(mcp_session *s, req_ctx *rc) { task_get_common(s, rc, RK_TASK_CANCEL, "tasks/cancel"); }

/* SEP-2663 tasks/update: peermcp's tools never ask for input, so there is never an outstanding
 * input request; the acknowledgement is empty whatever the task id (as the SEP requires). */
static void m_tasks_update(mcp_session *s, req_ctx *rc) {
  if (!tasks_enabled(s, rc, "tasks/update")) return;
  if (!task_id_param(s, rc)) return;
  json_t *in = json_object_get(rc->params, "inputResponses");
  if (in && !json_is_object(in)) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "tasks/update: params.inputResponses must be an object", NULL);
    return;
  }
  sess_reply(s, rc, json_object(), false);
}

static void m_tasks_list(mcp_session *s, req_ctx *rc) {
  if (!tasks_enabled(s, rc, "tasks/list")) return;
  json_t *cur = json_object_get(rc->params, "cursor");
  const char *cursor = NULL;
  if (cur && !json_is_null(cur)) {
    if (!json_is_string(cur) || json_string_length(cur) == 0 || json_string_length(cur) > MCP_TASKS_MAX_CURSOR) {
      sess_reply_err(s, rc, RPC_INVALID_PARAMS, "Invalid cursor", NULL);
      return;
    }
    cursor = json_string_value(cur);
  }
  char owner[MCP_TASKS_MAX_OWNER];
  if (!owner_of(s, rc, owner)) return;
  sess_req *r = sess_req_begin(s, rc, RK_TASK_LIST);
  if (!r) return;
  int err = s->o.tasks->list(s->o.tasks->impl, owner, cursor, s->o.page_size, on_task_done, r, &r->top);
  task_op_started(s, rc, r, err);
}

/* ---------- other methods ---------- */

static bool tool_listed(const mcp_session *s, const mcp_tool *t) {
  const mcp_tool_def *d = mcp_tool_def_of(t);
  if (d->flags & MCP_TOOL_HIDDEN) return false;
  if (s->o.remote && !(d->flags & MCP_TOOL_REMOTE)) return false;
  if (!auth_allows(s->o.auth, &d->scopes)) return false; /* what the dispatcher would refuse, on every transport */
  if (s->o.tool_filter && !s->o.tool_filter(s->o.hook_ud, t, s->o.auth)) return false;
  return true;
}

/* Cursor format (opaque to clients): "t" + decimal registry index. */
static void m_tools_list(mcp_session *s, req_ctx *rc) {
  const mcp_registry *reg = mcp_dispatcher_registry(s->o.dispatcher);
  size_t n = mcp_registry_count(reg), start = 0;
  json_t *cur = json_object_get(rc->params, "cursor");
  if (cur && !json_is_null(cur)) {
    const char *c = json_string_value(cur);
    char *end = NULL;
    unsigned long long v = 0;
    if (c && c[0] == 't' && c[1] >= '0' && c[1] <= '9') v = strtoull(c + 1, &end, 10);
    if (!c || !end || *end || v > n) {
      sess_reply_err(s, rc, RPC_INVALID_PARAMS, "Invalid cursor", NULL);
      return;
    }
    start = (size_t)v;
  }
  json_t *tools = json_array();
  size_t i = start, taken = 0;
  /* A client of the oldest revision (2024-11-05: the Python MCP client) reads one page only:
   * it gets every tool at once (the registry is bounded; no cursor to follow). */
  size_t page = !rc->modern && s->legacy_version && strcmp(s->legacy_version, "2024-11-05") == 0 ? n : s->o.page_size;
  for (; i < n && taken < page; i++) {
    const mcp_tool *t = mcp_registry_at(reg, i);
    if (!tool_listed(s, t)) continue;
    json_t *tj = mcp_tool_to_json(t);
    if (tj && !rc->modern && legacy_has_tasks(s))
      json_object_set_new(tj, "execution", json_pack("{s:s}", "taskSupport",
                                                     mcp_task_support_name(mcp_tasks_tool_support(s->o.tasks, t))));
    json_array_append_new(tools, tj);
    taken++;
  }
  size_t more = i;
  while (more < n && !tool_listed(s, mcp_registry_at(reg, more))) more++;
  json_t *res = json_pack("{s:o}", "tools", tools);
  if (more < n) {
    char buf[32];
    snprintf(buf, sizeof buf, "t%zu", more);
    json_object_set_new(res, "nextCursor", json_string(buf));
  }
  sess_reply(s, rc, res, true);
}

static void m_initialize(mcp_session *s, req_ctx *rc) {
  json_t *pv = json_object_get(rc->params, "protocolVersion");
  if (!json_is_string(pv) && !(s->o.init_default_version && (!pv || json_is_null(pv)))) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "initialize: params.protocolVersion must be a string", NULL);
    return;
  }
  const char *want = json_is_string(pv) ? json_string_value(pv) : "", *got = NULL;
  for (size_t i = 0; i < N_LEGACY; i++)
    if (strcmp(want, k_legacy_versions[i]) == 0) got = k_legacy_versions[i];
  if (!got) {
    got = MCP_PROTOCOL_LEGACY_LATEST;
    for (size_t i = 0; s->o.init_default_version && i < N_LEGACY; i++)
      if (strcmp(s->o.init_default_version, k_legacy_versions[i]) == 0) got = k_legacy_versions[i];
  }
  char *dup = strdup(got);
  if (!dup) {
    sess_reply_err(s, rc, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    return;
  }
  free(s->legacy_version);
  s->legacy_version = dup;
  json_t *caps = json_object_get(rc->params, "capabilities");
  json_decref(s->client_caps);
  s->client_caps = json_is_object(caps) ? json_incref(caps) : NULL;
  json_t *ci = json_object_get(rc->params, "clientInfo");
  log_debug("session: initialize", "{s:s, s:s, s:s}", "requested", want, "negotiated", got, "client",
           json_is_string(json_object_get(ci, "name")) ? json_string_value(json_object_get(ci, "name")) : "?");
  json_t *si = sess_server_info(s);
  if (strcmp(got, "2025-06-18") >= 0) json_object_set_new(si, "title", json_string("peermcp"));
  json_t *res = json_pack("{s:s, s:o, s:o}", "protocolVersion", got, "capabilities", capabilities(s, false, got),
                          "serverInfo", si);
  if (s->o.instructions) json_object_set_new(res, "instructions", json_string(s->o.instructions));
  if (s->o.init_decorator && res) s->o.init_decorator(s->o.hook_ud, s, rc->params, res);
  s->ready = true;
  sess_reply(s, rc, res, false);
}

static void m_discover(mcp_session *s, req_ctx *rc) {
  json_t *res = json_pack("{s:o, s:o}", "supportedVersions", supported_versions(), "capabilities",
                          capabilities(s, true, NULL));
  if (s->o.instructions) json_object_set_new(res, "instructions", json_string(s->o.instructions));
  sess_reply(s, rc, res, true);
}

static void m_set_level(mcp_session *s, req_ctx *rc) {
  int r = level_rank(json_string_value(json_object_get(rc->params, "level")));
  if (r < 0) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "logging/setLevel: params.level must be a logging level", NULL);
    return;
  }
  s->log_min = r;
  sess_reply(s, rc, json_object(), false);
}

static void cancel_id(mcp_session *s, const json_t *rid, const char *reason);

static void m_cancelled(mcp_session *s, req_ctx *rc) {
  json_t *rid = json_object_get(rc->params, "requestId");
  if (!rid) return;
  json_t *reason = json_object_get(rc->params, "reason");
  cancel_id(s, rid, json_is_string(reason) ? json_string_value(reason) : "");
}

void mcp_session_cancel_request(mcp_session *s, const json_t *id) {
  LOOP_THREAD_ONLY();
  if (s && id) cancel_id(s, id, "the client closed the request's stream");
}

static void cancel_id(mcp_session *s, const json_t *rid, const char *reason) {
  sess_sub **link;
  sess_sub *u = sess_find_sub(s, rid, &link);
  if (u) { /* the client closes its subscription: no response (cancellation.mdx) */
    *link = u->next;
    s->nsubs--;
    sess_sub_free(s, u);
    return;
  }
  sess_req *r = sess_find_req(s, rid);
  if (!r || r->cancelled) return; /* unknown or finished: races are fine (cancellation.mdx) */
  r->cancelled = true;
  char *idtext = jwrite_dumps(rid, 0);
  log_info("session: request cancelled by the client", "{s:s, s:s}", "id", idtext ? idtext : "?", "reason", reason);
  free(idtext);
  if (r->call) mcp_dispatch_cancel(r->call);
  if (r->top && r->kind == RK_TASK_RESULT) task_wait_abort(s, r, false);
  else if (r->waiting) input_wait_abort(s, r, false); /* its questions are withdrawn */
  else if (r->job) { /* a handler on the pool: its end is ignored */
    sess_job_detach(r);
    sess_req_done(s, r);
  }
}

typedef void (*method_fn)(mcp_session *s, req_ctx *rc);

typedef struct method_entry {
  const char *name;
  method_fn fn;
  unsigned eras; /* 1 = legacy, 2 = modern */
} method_entry;

static void m_ping(mcp_session *s, req_ctx *rc) { sess_reply(s, rc, json_object(), false); }
static void m_initialized(mcp_session *s, req_ctx *rc) { s->initialized = true; }
static void m_ignore(mcp_session *s, req_ctx *rc) {}

#define LEGACY 1u
#define MODERN 2u
#define BOTH 3u

static const method_entry k_requests[] = {
    {"initialize", m_initialize, LEGACY},
    {"ping", m_ping, LEGACY},
    {"logging/setLevel", m_set_level, LEGACY},
    {"server/discover", m_discover, MODERN},
    {"tools/list", m_tools_list, BOTH},
    {"tools/call", m_tools_call, BOTH},
    {"resources/list", sess_m_resources_list, BOTH},
    {"resources/templates/list", sess_m_templates_list, BOTH},
    {"resources/read", sess_m_resources_read, BOTH},
    {"resources/subscribe", sess_m_resources_subscribe, LEGACY},
    {"resources/unsubscribe", sess_m_resources_unsubscribe, LEGACY},
    {"prompts/list", sess_m_prompts_list, BOTH},
    {"prompts/get", sess_m_prompts_get, BOTH},
    {"completion/complete", sess_m_complete, BOTH},
    {"subscriptions/listen", m_subscriptions_listen, MODERN},
    {"tasks/get", m_tasks_get, BOTH},
    {"tasks/cancel", m_tasks_cancel, BOTH},
    {"tasks/result", m_tasks_result, LEGACY},
    {"tasks/list", m_tasks_list, LEGACY},
    {"tasks/update", m_tasks_update, MODERN},
};

/* ---------- metrics: every answered request, by transport, method and outcome ---------- */

#define N_REQ_METHODS (sizeof k_requests / sizeof k_requests[0])
#define M_OTHER N_REQ_METHODS /* a method not in k_requests */
#define M_TOOLS_CALL 5u       /* k_requests' "tools/call" (asserted below) */
#define M_COUNTED 0xff        /* sess_req.m_method once its answer was counted */
static const char *const k_transports[] = {"stdio", "http", "p2p"};
static const char *const k_req_outcomes[] = {"ok", "error"};
static const char *k_method_labels[N_REQ_METHODS + 1];
static _Atomic uint64_t g_req_cells[3 * (N_REQ_METHODS + 1) * 2];
static metrics_family g_requests = {
    .name = "peermcp_mcp_requests_total",
    .help = "MCP requests answered, by transport, JSON-RPC method and outcome (error = a JSON-RPC error).",
    .kind = METRICS_COUNTER,
    .ndims = 3,
    .dims = {{"transport", k_transports, 3, NULL},
             {"method", k_method_labels, N_REQ_METHODS + 1, NULL},
             {"outcome", k_req_outcomes, 2, NULL}},
    .cells = g_req_cells,
};
static _Atomic uint64_t g_req_dur_cells[METRICS_CELLS_HIST(3 * (N_REQ_METHODS + 1))];
static metrics_family g_req_duration = {
    .name = "peermcp_mcp_request_duration_seconds",
    .help = "MCP request duration from arrival to answer, by transport and JSON-RPC method.",
    .kind = METRICS_HISTOGRAM,
    .ndims = 2,
    .dims = {{"transport", k_transports, 3, NULL}, {"method", k_method_labels, N_REQ_METHODS + 1, NULL}},
    .cells = g_req_dur_cells,
};

__attribute__((constructor)) static void session_metrics_register(void) {
  CHECK(strcmp(k_requests[M_TOOLS_CALL].name, "tools/call") == 0);
  for (size_t i = 0; i < N_REQ_METHODS; i++) k_method_labels[i] = k_requests[i].name;
  k_method_labels[N_REQ_METHODS] = METRICS_OTHER;
  metrics_register(&g_requests);
  metrics_register(&g_req_duration);
}

/* The method's label: its index in k_requests (the MCP++ aliases tools.call / tools.list
 * count as their MCP names), else M_OTHER. */
static unsigned method_label(const char *name) {
  if (strcmp(name, "tools/call") == 0) return M_TOOLS_CALL; /* the hot one first */
  for (unsigned i = 0; i < N_REQ_METHODS; i++)
    if (strcmp(name, k_requests[i].name) == 0) return i;
  if (strcmp(name, "tools.call") == 0) return method_label("tools/call");
  if (strcmp(name, "tools.list") == 0) return method_label("tools/list");
  return M_OTHER;
}

/* end_us: when it was answered (0: now). */
static void req_record(mcp_session *s, unsigned method, int64_t start_us, int64_t end_us, int error_code) {
  if (s->m_transport < 0 || method > M_OTHER) return;
  int64_t us = (end_us > 0 ? end_us : clock_mono_us()) - start_us;
  metrics_inc(&g_requests, metrics_series3(&g_requests, (unsigned)s->m_transport, method, error_code ? 1 : 0));
  metrics_observe_us(&g_req_duration, metrics_series2(&g_req_duration, (unsigned)s->m_transport, method),
                     us > 0 ? (uint64_t)us : 0);
}

/* A response is going out: counts its request once — the message being handled, or a request
 * in flight (matched by its id object, which every reply to it passes along). */
static void req_answered(mcp_session *s, const json_t *request_id, int error_code) {
  if (!OBS_HOT) return;
  if (s->m_open && request_id == s->m_id) {
    s->m_open = false;
    req_record(s, s->m_method, s->m_start_us, 0, error_code);
    return;
  }
  if (!request_id) return;
  for (sess_req *r = s->reqs; r; r = r->next)
    if (r->id == request_id) {
      if (r->m_method != M_COUNTED) req_record(s, r->m_method, r->m_start_us, r->m_end_us, error_code);
      r->m_method = M_COUNTED;
      return;
    }
}

/* A message arrives: its trace scope (the trace itself is set once _meta is read) and its
 * metrics. Returns the scope to restore. The arrival time and the trace go on to the
 * dispatcher for a tool call (call_dispatch), so a request reads the clock and makes ids once
 * (issue 14's budget: bench/RESULTS.md "Metrics and traces on the hot path"). */
static const trace_scope *msg_begin(mcp_session *s) {
  if (!OBS_HOT) return NULL;
  s->m_open = true;
  s->m_id = NULL;
  s->m_method = M_OTHER;
  s->m_start_us = clock_mono_us();
  memset(&s->m_scope, 0, sizeof s->m_scope);
  s->m_scope.transport = s->o.transport;
  s->m_scope.peer_id = s->o.auth->peer_id;
  return trace_scope_enter(&s->m_scope);
}

static void msg_end(mcp_session *s, const trace_scope *outer) {
  s->m_open = false; /* unanswered by now: a notification, or answered later */
  if (OBS_HOT) trace_scope_leave(outer);
}

static const method_entry k_notifications[] = {
    {"notifications/initialized", m_initialized, LEGACY},
    {"notifications/cancelled", m_cancelled, BOTH},
    {"notifications/roots/list_changed", m_ignore, LEGACY},
    {"notifications/progress", m_ignore, BOTH},
};

/* ---------- parsing and routing ---------- */

static bool id_valid(const json_t *id) { return json_is_string(id) || json_is_integer(id); }

/* A message's envelope as handle_env reads it: taken from a tree (handle_message) or read from
 * the text (feed_envelope, mcp/envelope.h). Everything borrowed from the caller. */
typedef struct sess_msg {
  json_t *tree;       /* the whole message, for an answer to a server-to-client request; NULL
                         when read from text (feed_envelope leaves those to the tree path) */
  json_t *id;         /* NULL when absent */
  bool jsonrpc_ok;    /* "jsonrpc" is the string "2.0" */
  bool has_method;
  const char *method; /* NULL when "method" is not a string */
  bool answer;        /* a "result" or "error" member */
  json_t *params;     /* NULL when absent */
  /* A tools/call read from text whose params hold only name (a string), arguments (null or an
   * object) and _meta (an object): params stays NULL — no tree of it is built — and these
   * stand for its members (m_tools_call). */
  bool call_fast;
  const char *call_tool;
  json_t *call_args; /* NULL when absent or null */
  json_t *call_meta; /* NULL when absent */
} sess_msg;

static void handle_env(mcp_session *s, const sess_msg *e, const char *hdr_version);

static void handle_message(mcp_session *s, json_t *m, const char *hdr_version) {
  if (!json_is_object(m)) {
    if (json_is_array(m))
      mcp_session_reply_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported", NULL);
    else
      mcp_session_reply_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: expected a JSON object", NULL);
    return;
  }
  json_t *ver = json_object_get(m, "jsonrpc");
  json_t *method = json_object_get(m, "method");
  sess_msg e = {
      .tree = m,
      .id = json_object_get(m, "id"),
      .jsonrpc_ok = json_is_string(ver) && strcmp(json_string_value(ver), "2.0") == 0,
      .has_method = method != NULL,
      .method = json_string_value(method),
      .answer = json_object_get(m, "result") || json_object_get(m, "error"),
      .params = json_object_get(m, "params"),
  };
  handle_env(s, &e, hdr_version);
}

static void handle_env(mcp_session *s, const sess_msg *e, const char *hdr_version) {
  json_t *id = e->id;
  bool has_id = id != NULL;
  json_t *reply_id = has_id && id_valid(id) ? id : NULL;
  if (!e->jsonrpc_ok) {
    mcp_session_reply_error(s, reply_id, RPC_INVALID_REQUEST, "Invalid Request: jsonrpc must be \"2.0\"", NULL);
    return;
  }
  if (!e->has_method) {
    if (e->answer && e->tree) { /* an answer to our request */
      client_answer(s, e->tree);
      return;
    }
    mcp_session_reply_error(s, reply_id, RPC_INVALID_REQUEST, "Invalid Request: no method", NULL);
    return;
  }
  if (has_id && !id_valid(id)) {
    mcp_session_reply_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: id must be a string or an integer", NULL);
    return;
  }
  if (!e->method) {
    mcp_session_reply_error(s, reply_id, RPC_INVALID_REQUEST, "Invalid Request: method must be a string", NULL);
    return;
  }
  const char *name = e->method;
  json_t *params = e->params;
  req_ctx rc = {.id = reply_id, .params = NULL, .meta = NULL, .modern = false, .log_min = -1};
  unsigned mlabel = method_label(name);
  if (has_id) {
    s->m_method = mlabel;
    s->m_id = reply_id;
    s->m_scope.rpc_id = reply_id;
  } else {
    s->m_open = false; /* a notification: nothing to count */
  }
  if (params && !json_is_null(params)) {
    if (!json_is_object(params)) {
      sess_reply_err(s, &rc, RPC_INVALID_PARAMS, "Invalid params: params must be an object", NULL);
      return;
    }
    rc.params = params;
  }
  if (e->call_fast) {
    rc.call_fast = true;
    rc.call_tool = e->call_tool;
    rc.call_args = e->call_args;
  }
  json_t *meta = e->call_fast ? e->call_meta : json_object_get(rc.params, "_meta");
  if (meta && !json_is_object(meta)) {
    sess_reply_err(s, &rc, RPC_INVALID_PARAMS, "Invalid params: _meta must be an object", NULL);
    return;
  }
  rc.meta = meta;
  /* W3C trace context: the caller's, continued with a span of our own, or a new trace */
  if (OBS_HOT && trace_continue_json(json_object_getn(meta, "traceparent", 11), &s->m_scope.trace) != 0)
    trace_new(&s->m_scope.trace);

  /* Era: per request, from _meta (2026-07-28 versioning.mdx). */
  json_t *pv = json_object_get(meta, "io.modelcontextprotocol/protocolVersion");
  if (hdr_version && has_id) { /* streamable-http.mdx: the header and _meta must agree */
    bool hdr_modern = strcmp(hdr_version, MCP_PROTOCOL_MODERN) == 0;
    if (json_is_string(pv) && strcmp(json_string_value(pv), hdr_version) != 0 &&
        (hdr_modern || strcmp(json_string_value(pv), MCP_PROTOCOL_MODERN) == 0)) {
      char msg[200];
      snprintf(msg, sizeof msg, "Header mismatch: MCP-Protocol-Version %.40s, _meta protocolVersion %.40s", hdr_version,
               json_string_value(pv));
      rc.modern = true;
      sess_reply_err(s, &rc, MCP_HEADER_MISMATCH, msg, NULL);
      return;
    }
    if (hdr_modern && !pv) {
      rc.modern = true;
      sess_reply_err(s, &rc, RPC_INVALID_PARAMS,
                "Invalid params: missing required _meta field io.modelcontextprotocol/protocolVersion", NULL);
      return;
    }
  }
  if (pv && has_id) {
    if (!json_is_string(pv)) {
      sess_reply_err(s, &rc, RPC_INVALID_PARAMS, "Invalid params: io.modelcontextprotocol/protocolVersion must be a string", NULL);
      return;
    }
    const char *v = json_string_value(pv);
    bool legacy = false;
    for (size_t i = 0; i < N_LEGACY; i++)
      if (strcmp(v, k_legacy_versions[i]) == 0) legacy = true;
    if (strcmp(v, MCP_PROTOCOL_MODERN) == 0) {
      rc.modern = true;
    } else if (!legacy) {
      sess_reply_err(s, &rc, MCP_UNSUPPORTED_VERSION, "Unsupported protocol version",
                json_pack("{s:o, s:s}", "supported", supported_versions(), "requested", v));
      return;
    }
  }
  if (rc.modern) {
    if (!json_is_object(json_object_get(meta, "io.modelcontextprotocol/clientCapabilities"))) {
      sess_reply_err(s, &rc, RPC_INVALID_PARAMS,
                "Invalid params: missing required _meta field io.modelcontextprotocol/clientCapabilities", NULL);
      return;
    }
    json_t *ll = json_object_get(meta, "io.modelcontextprotocol/logLevel");
    if (ll) {
      rc.log_min = level_rank(json_string_value(ll));
      if (rc.log_min < 0) {
        sess_reply_err(s, &rc, RPC_INVALID_PARAMS, "Invalid params: io.modelcontextprotocol/logLevel is not a logging level", NULL);
        return;
      }
    }
  }
  unsigned era = rc.modern ? MODERN : LEGACY;

  if (s->o.init_required && has_id && !s->ready && !rc.modern && strcmp(name, "initialize") != 0) {
    sess_reply_err(s, &rc, s->o.init_required_code, s->o.init_required_message, NULL);
    s->ended = true;
    return;
  }
  if (rc.modern) s->ready = true;
  if (s->o.hook && !e->call_fast) { /* a fast call: the transport said its hook declines it */
    CHECK(!s->cur); /* hooks do not nest: a hook does not feed the session it serves */
    s->cur = &rc;
    bool taken = s->o.hook(s->o.hook_ud, s, name, rc.id, rc.params);
    s->cur = NULL;
    if (taken) return;
  }

  if (!has_id) {
    for (size_t i = 0; i < sizeof k_notifications / sizeof k_notifications[0]; i++)
      if (strcmp(name, k_notifications[i].name) == 0) {
        k_notifications[i].fn(s, &rc);
        return;
      }
    return; /* unknown notifications are ignored */
  }
  if (mlabel < N_REQ_METHODS && strcmp(name, k_requests[mlabel].name) == 0) { /* not an alias */
    const method_entry *e = &k_requests[mlabel];
    if (e->eras & era) {
      e->fn(s, &rc);
      return;
    }
    if (!rc.modern && strcmp(name, "server/discover") == 0) {
      sess_reply_err(s, &rc, RPC_INVALID_PARAMS,
                "Invalid params: server/discover requires _meta io.modelcontextprotocol/protocolVersion", NULL);
      return;
    }
    /* removed in this era */
  }
  char msg[200];
  snprintf(msg, sizeof msg, "Method not found: %.120s", name);
  sess_reply_err(s, &rc, RPC_METHOD_NOT_FOUND, msg, NULL);
}

bool mcp_session_ended(const mcp_session *s) { return s->ended; }
bool mcp_session_ready(const mcp_session *s) { return s->ready; }

/* True when a parsed document nests deeper than max (the same ceiling as for text). */
static bool json_too_deep(const json_t *j, int max) {
  if (!json_is_object(j) && !json_is_array(j)) return false;
  if (max <= 0) return true;
  if (json_is_array(j)) {
    for (size_t i = 0; i < json_array_size(j); i++)
      if (json_too_deep(json_array_get(j, i), max - 1)) return true;
    return false;
  }
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)j, k, v) {
    if (json_too_deep(v, max - 1)) return true;
  }
  return false;
}

void mcp_session_feed_json(mcp_session *s, json_t *msg) { mcp_session_feed_json_depth(s, msg, -1); }

void mcp_session_feed_json_depth(mcp_session *s, json_t *msg, int depth) {
  LOOP_THREAD_ONLY();
  if (s->ended || !msg) return;
  /* the transport's parser measured the nesting: no second walk over the tree */
  if (depth < 0 ? json_too_deep(msg, MCP_SESSION_MAX_DEPTH) : depth > MCP_SESSION_MAX_DEPTH) {
    mcp_session_reply_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: JSON nested too deeply", NULL);
    return;
  }
  alloc_watch w = alloc_watch_begin(); /* the unit of work that sess_reply() and sess_reply_err() read */
  const trace_scope *outer = msg_begin(s);
  handle_message(s, msg, NULL);
  msg_end(s, outer);
  (void)alloc_watch_end(w);
}

void mcp_session_feed_json_versioned(mcp_session *s, json_t *msg, const char *header_version) {
  LOOP_THREAD_ONLY();
  if (s->ended || !msg) return;
  if (json_too_deep(msg, MCP_SESSION_MAX_DEPTH)) {
    mcp_session_reply_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: JSON nested too deeply", NULL);
    return;
  }
  alloc_watch w = alloc_watch_begin();
  const trace_scope *outer = msg_begin(s);
  handle_message(s, msg, header_version && *header_version ? header_version : NULL);
  msg_end(s, outer);
  (void)alloc_watch_end(w);
}

void mcp_session_msg_route(const json_t *msg, const char **method, const char **name) {
  *method = json_string_value(json_object_get(msg, "method"));
  *name = NULL;
  if (!*method) return;
  json_t *p = json_object_get(msg, "params");
  const char *m = *method;
  if (strcmp(m, "tools/call") == 0 || strcmp(m, "prompts/get") == 0) *name = json_string_value(json_object_get(p, "name"));
  else if (strcmp(m, "resources/read") == 0) *name = json_string_value(json_object_get(p, "uri"));
  else if (strcmp(m, "tasks/get") == 0 || strcmp(m, "tasks/update") == 0 || strcmp(m, "tasks/cancel") == 0)
    *name = json_string_value(json_object_get(p, "taskId"));
}

static void feed_text(mcp_session *s, const char *msg, size_t len);

void mcp_session_feed(mcp_session *s, const char *msg, size_t len) {
  LOOP_THREAD_ONLY();
  if (s->ended) return;
  const trace_scope *outer = msg_begin(s);
  feed_text(s, msg, len);
  msg_end(s, outer);
}

/* Test switch (session.h): false sends every message through the tree path. */
bool mcp_session_text_envelope = true;
_Thread_local size_t mcp_session_text_envelope_fed;

#define ENV_METHOD_MAX 128 /* longer method names go the tree path */
#define ENV_TOOL_MAX 256   /* longer tool names: params as a tree */

/* The text path (issue 11 §3): the envelope read from the bytes (mcp/envelope.h), trees built
 * only of what the handler reads as one — the id, and a tools/call's arguments and _meta or
 * another method's params — then handled as the tree path handles the whole message (the same
 * checks in the same order: handle_env). env is the envelope of text (checked with jflags).
 * hook_declines: the transport vouches that its method hook would decline a tools/call (return
 * false), so one can take the fast form without a params tree for the hook. Returns false,
 * having answered nothing, for what it leaves to the tree path: a message without a method (an
 * answer, or the errors about it), a jsonrpc or method string with escapes, a method name
 * longer than ENV_METHOD_MAX, a failed allocation. The trees built here are owned here and
 * released before returning (a request in flight keeps references of its own). */
static bool feed_envelope(mcp_session *s, const mcp_envelope *env, unsigned jflags, bool hook_declines,
                          const char *hdr_version) {
  if (!mcp_session_text_envelope) return false;
  if (!env->method.p || mcp_env_str_escaped(env->jsonrpc) || mcp_env_str_escaped(env->method)) return false;
  char method[ENV_METHOD_MAX], tool[ENV_TOOL_MAX];
  sess_msg e = {.jsonrpc_ok = mcp_env_is_str(env->jsonrpc, "2.0"), .has_method = true, .answer = env->has_answer};
  if (mcp_env_is_string(env->method)) {
    if (!mcp_env_cstr(env->method, method, sizeof method)) return false;
    e.method = method;
  }
  bool ok = !env->id.p || mcp_envelope_tree(env->id, jflags, &e.id) == 0;
  e.call_fast = ok && (!s->o.hook || hook_declines) && e.method && strcmp(e.method, "tools/call") == 0 &&
                env->params.p && env->params.p[0] == '{' && !env->params_escaped_key && env->params_other == 0 &&
                mcp_env_cstr(env->name, tool, sizeof tool) &&
                (!env->arguments.p || env->arguments.p[0] == '{' || env->arguments.p[0] == 'n') &&
                (!env->meta.p || env->meta.p[0] == '{');
  if (e.call_fast) {
    /* Not done: the arguments' bytes are read twice (the scan, then this tree); a scan that
     * builds the tree of one member as it goes would save ~1 k instructions a call. */
    e.call_tool = tool;
    if (env->arguments.p && env->arguments.p[0] == '{') ok = mcp_envelope_tree(env->arguments, jflags, &e.call_args) == 0;
    if (ok && env->meta.p) ok = mcp_envelope_tree(env->meta, jflags, &e.call_meta) == 0;
  } else if (ok && env->params.p) {
    ok = mcp_envelope_tree(env->params, jflags, &e.params) == 0;
  }
  if (ok) {
    mcp_session_text_envelope_fed++;
    handle_env(s, &e, hdr_version);
  }
  json_decref(e.id);
  json_decref(e.params);
  json_decref(e.call_args);
  json_decref(e.call_meta);
  return ok;
}

void mcp_session_feed_text(mcp_session *s, const mcp_session_text *t) {
  LOOP_THREAD_ONLY();
  if (s->ended) return;
  mcp_envelope read;
  const mcp_envelope *env = t->env;
  int rc = env ? 0 : mcp_envelope_read(t->text, t->len, MCP_SESSION_MAX_DEPTH, t->jflags, &read);
  if (!env) env = &read;
  if (rc == -ELOOP || (rc == 0 && JPARSE_FOUND_DEPTH(env->found) > MCP_SESSION_MAX_DEPTH)) {
    /* as mcp_session_feed_json_depth: before the message counts */
    mcp_session_reply_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: JSON nested too deeply", NULL);
    return;
  }
  alloc_watch w = alloc_watch_begin();
  const trace_scope *outer = msg_begin(s);
  if (rc != 0 || !feed_envelope(s, env, t->jflags, t->hook_declines_call, NULL)) {
    alloc_oom_set(false); /* the tree path starts afresh (the reader's trees are gone) */
    json_t *m;
    int prc = jparse_flags(t->text, t->len, MCP_SESSION_MAX_DEPTH, t->jflags, &m, NULL, NULL);
    if (prc == 0) handle_message(s, m, NULL);
    else if (prc == -ENOMEM)
      mcp_session_reply_error(s, NULL, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
    else /* the transport checked the text: cannot be */
      mcp_session_reply_error(s, NULL, RPC_PARSE_ERROR, "Parse error", NULL);
    json_decref(m);
  }
  msg_end(s, outer);
  (void)alloc_watch_end(w);
}

static void feed_text(mcp_session *s, const char *msg, size_t len) {
  if (len > s->o.max_message_bytes) {
    char m[128];
    snprintf(m, sizeof m, "Invalid Request: message of %zu bytes exceeds the limit of %zu", len, s->o.max_message_bytes);
    mcp_session_reply_error(s, NULL, RPC_INVALID_REQUEST, m, NULL);
    return;
  }
  jparse_error jerr;
  alloc_watch w = alloc_watch_begin();
  mcp_envelope env;
  if (mcp_envelope_read(msg, len, MCP_SESSION_MAX_DEPTH, 0, &env) == 0 && feed_envelope(s, &env, 0, false, NULL)) {
    (void)alloc_watch_end(w);
    return;
  }
  alloc_oom_set(false); /* the tree path starts afresh (the reader's trees are gone) */
  json_t *m;
  int prc = jparse(msg, len, MCP_SESSION_MAX_DEPTH, &m, &jerr); /* depth checked as brackets open */
  if (prc == -ENOMEM) { /* ours, not the client's */
    mcp_session_reply_error(s, NULL, RPC_INTERNAL_ERROR, MSG_OOM, NULL);
  } else if (prc == -ELOOP) {
    mcp_session_reply_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: JSON nested too deeply", NULL);
  } else if (prc != 0) {
    char em[240];
    snprintf(em, sizeof em, "Parse error: %s (at byte %zu)", jerr.text, jerr.position);
    mcp_session_reply_error(s, NULL, RPC_PARSE_ERROR, em, NULL);
  } else {
    handle_message(s, m, NULL);
    json_decref(m);
  }
  (void)alloc_watch_end(w);
}
