/* session_catalog.c — the session core's prompts, resources, completion and resource
 * subscriptions (see session.h, session_int.h).
 *
 * Spec: server/prompts.mdx, server/resources.mdx, server/utilities/completion.mdx and
 * pagination.mdx of 2025-11-25 and 2026-07-28; 2026-07-28 basic/patterns/subscriptions.mdx
 * (resourceSubscriptions of subscriptions/listen) and SEP-2164 (a missing resource is -32602
 * with the uri; -32002 up to 2025-11-25). The tables are the registry's (mcp/prompts.h,
 * mcp/resources.h). Handlers flagged blocking run on the dispatcher's worker pool; the others
 * here, on the loop thread. Handlers that ask the client for input go through the input rounds
 * of session.c (sess_input_*), in both eras. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/session_int.h"
#include "util/log.h"
#include "util/workpool.h"

/* A prompts/get, resources/read or completion/complete handler run, on the pool or inline. */
typedef struct sess_job {
  sess_req *r; /* NULL once the request went away (the result is dropped) */
  int kind;
  const void *def;
  mcp_reqctx *ctx;
  json_t *args; /* prompt arguments, or the completion context */
  char *uri;
  char *arg, *prefix;
  int rc;
  json_t *out;
  size_t total;
} sess_job;

static mcp_prompts *prompts_of(const mcp_session *s) {
  return mcp_registry_prompts(mcp_dispatcher_registry(s->o.dispatcher));
}
static mcp_resources *resources_of(const mcp_session *s) {
  return mcp_registry_resources(mcp_dispatcher_registry(s->o.dispatcher));
}

static bool prompt_visible(const mcp_session *s, const mcp_prompt_def *d) {
  if (!d || (s->o.remote && !(d->flags & MCP_PROMPT_REMOTE))) return false;
  return auth_allows(s->o.auth, &d->scopes);
}

static bool resource_visible(const mcp_session *s, const mcp_resource_def *d) {
  if (!d || (s->o.remote && !(d->flags & MCP_RESOURCE_REMOTE))) return false;
  return auth_allows(s->o.auth, &d->scopes);
}

/* ---------- lists ---------- */

/* Opaque cursors: a tag letter and a decimal index ("p12"). false after answering -32602. */
static bool cursor_start(mcp_session *s, req_ctx *rc, char tag, size_t n, size_t *start) {
  *start = 0;
  json_t *cur = json_object_get(rc->params, "cursor");
  if (!cur || json_is_null(cur)) return true;
  const char *c = json_string_value(cur);
  char *end = NULL;
  unsigned long long v = 0;
  if (c && c[0] == tag && c[1] >= '0' && c[1] <= '9') v = strtoull(c + 1, &end, 10);
  if (!c || !end || *end || v > n) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "Invalid cursor", NULL);
    return false;
  }
  *start = (size_t)v;
  return true;
}

static void set_next_cursor(json_t *res, char tag, size_t next) {
  char buf[32];
  snprintf(buf, sizeof buf, "%c%zu", tag, next);
  json_object_set_new(res, "nextCursor", json_string(buf));
}

void sess_m_prompts_list(mcp_session *s, req_ctx *rc) {
  const mcp_prompts *p = prompts_of(s);
  size_t n = mcp_prompts_count(p), i;
  if (!cursor_start(s, rc, 'p', n, &i)) return;
  json_t *a = json_array();
  for (size_t taken = 0; i < n && taken < s->o.page_size; i++) {
    const mcp_prompt_def *d = mcp_prompts_at(p, i);
    if (!prompt_visible(s, d)) continue;
    json_array_append_new(a, mcp_prompt_to_json(d));
    taken++;
  }
  while (i < n && !prompt_visible(s, mcp_prompts_at(p, i))) i++;
  json_t *res = json_pack("{s:o}", "prompts", a);
  if (res && i < n) set_next_cursor(res, 'p', i);
  sess_reply(s, rc, res, true);
}

/* resources/list (fixed resources) and resources/templates/list share the walk. */
static void list_resources(mcp_session *s, req_ctx *rc, bool templates) {
  const mcp_resources *r = resources_of(s);
  size_t n = templates ? mcp_resources_template_count(r) : mcp_resources_count(r), i;
  char tag = templates ? 'u' : 'r';
  if (!cursor_start(s, rc, tag, n, &i)) return;
  json_t *a = json_array();
#define AT(k) (templates ? mcp_resources_template_at(r, (k)) : mcp_resources_at(r, (k)))
  for (size_t taken = 0; i < n && taken < s->o.page_size; i++) {
    const mcp_resource_def *d = AT(i);
    if (!resource_visible(s, d)) continue;
    json_array_append_new(a, mcp_resource_to_json(d));
    taken++;
  }
  while (i < n && !resource_visible(s, AT(i))) i++;
#undef AT
  json_t *res = json_pack("{s:o}", templates ? "resourceTemplates" : "resources", a);
  if (res && i < n) set_next_cursor(res, tag, i);
  sess_reply(s, rc, res, true);
}

void sess_m_resources_list(mcp_session *s, req_ctx *rc) { list_resources(s, rc, false); }
void sess_m_templates_list(mcp_session *s, req_ctx *rc) { list_resources(s, rc, true); }

/* ---------- handler runs ---------- */

static void not_found(mcp_session *s, req_ctx *rc, const char *uri) {
  /* 2026-07-28 (SEP-2164) moved resource-not-found to -32602; earlier revisions use -32002 */
  sess_reply_err(s, rc, rc->modern ? RPC_INVALID_PARAMS : MCP_RESOURCE_NOT_FOUND_LEGACY, "Resource not found",
                 json_pack("{s:s}", "uri", uri));
}

static void job_free(sess_job *j) {
  mcp_reqctx_unref(j->ctx);
  json_decref(j->args);
  json_decref(j->out);
  free(j->uri);
  free(j->arg);
  free(j->prefix);
  free(j);
}

void sess_job_detach(sess_req *r) {
  if (!r->job) return;
  r->job->r = NULL;
  r->job = NULL;
}

/* Runs the handler (worker thread for blocking definitions, else the loop thread). */
static void job_work(void *arg) {
  sess_job *j = arg;
  j->out = NULL;
  switch (j->kind) {
  case RK_PROMPT: {
    const mcp_prompt_def *d = j->def;
    j->rc = d->get(d->ud, j->ctx, j->args, &j->out);
    break;
  }
  case RK_RESOURCE: {
    const mcp_resource_def *d = j->def;
    mcp_uri_vars vars = {0};
    if (d->uri_template && !mcp_uri_template_match(d->uri_template, j->uri, &vars)) {
      j->rc = -ENOENT;
      break;
    }
    j->rc = d->read(d->ud, j->ctx, j->uri, &vars, &j->out);
    mcp_uri_vars_clear(&vars);
    break;
  }
  case RK_COMPLETE: {
    if (j->uri) { /* a resource template's variable */
      const mcp_resource_def *d = j->def;
      j->rc = d->complete(d->ud, j->arg, j->prefix, j->args, &j->out);
      if (j->rc == 0 && !json_is_array(j->out)) {
        json_decref(j->out);
        j->out = json_array();
      }
      if (j->rc == 0) j->total = mcp_complete_trim(j->out);
    } else {
      j->rc = mcp_prompt_complete(j->def, j->arg, j->prefix, j->args, &j->out, &j->total);
    }
    break;
  }
  default:
    j->rc = -EINVAL;
  }
  if (j->rc != 0 && !(j->kind == RK_PROMPT && j->rc == -EINVAL)) { /* only a prompt's reason is kept */
    json_decref(j->out);
    j->out = NULL;
  }
}

static void reply_completion(mcp_session *s, req_ctx *rc, json_t *values, size_t total) {
  size_t n = json_array_size(values);
  sess_reply(s, rc,
             json_pack("{s:{s:O, s:I, s:b}}", "completion", "values", values, "total", (json_int_t)total, "hasMore",
                       total > n),
             false);
}

/* The request's answer once its handler returned (loop thread). */
static void job_finish(mcp_session *s, sess_req *r, sess_job *j) {
  if (r->kind != RK_COMPLETE) {
    mcp_reqctx_unref(r->ctx);
    r->ctx = mcp_reqctx_ref(j->ctx);
    if (sess_input_after(s, r, j->rc != 0)) return;
  }
  req_ctx rc = sess_rc_of(r);
  switch (r->kind) {
  case RK_PROMPT:
    if (j->rc == 0 && json_is_array(json_object_get(j->out, "messages"))) {
      sess_reply(s, &rc, json_incref(j->out), false);
    } else if (j->rc == -EINVAL) {
      sess_reply_err(s, &rc, RPC_INVALID_PARAMS, json_is_string(j->out) ? json_string_value(j->out) : "Invalid arguments",
                     NULL);
    } else {
      log_warn("session: a prompt failed", "{s:s, s:i}", "prompt", sess_req_name(r), "errno", -j->rc);
      sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, "the prompt could not be rendered", NULL);
    }
    break;
  case RK_RESOURCE: {
    const mcp_resource_def *d = j->def;
    /* SEP-2164: a missing resource MUST NOT be an empty contents array */
    if (j->rc == 0 && json_array_size(j->out) > 0) {
      json_t *res = json_pack("{s:O}", "contents", j->out);
      if (res && r->modern) {
        res = sess_modern_result(s, res, true);
        if (d->flags & MCP_RESOURCE_VOLATILE) json_object_set_new(res, "ttlMs", json_integer(0));
      }
      sess_reply_whole(s, r->id, r->modern, res);
    } else if (j->rc == 0 || j->rc == -ENOENT) {
      not_found(s, &rc, j->uri);
    } else {
      log_warn("session: a resource read failed", "{s:s, s:i}", "uri", j->uri, "errno", -j->rc);
      sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, "the resource could not be read", json_pack("{s:s}", "uri", j->uri));
    }
    break;
  }
  case RK_COMPLETE:
    if (j->rc == 0) reply_completion(s, &rc, j->out, j->total);
    else sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, "completion failed", NULL);
    break;
  }
  sess_req_done(s, r);
}

static void job_done(void *arg) {
  sess_job *j = arg;
  sess_req *r = j->r;
  if (r) {
    alloc_watch w = alloc_watch_begin(); /* a completion: its answer is whole or -32603 */
    r->job = NULL;
    job_finish(r->s, r, j);
    (void)alloc_watch_end(w);
  }
  job_free(j);
}

static bool blocking(const sess_req *r) {
  if (r->kind == RK_PROMPT || (r->kind == RK_COMPLETE && !sess_req_name(r)))
    return ((const mcp_prompt_def *)r->def)->flags & MCP_PROMPT_BLOCKING;
  return ((const mcp_resource_def *)r->def)->flags & MCP_RESOURCE_BLOCKING;
}

void sess_catalog_run(mcp_session *s, sess_req *r) {
  sess_job *j = calloc(1, sizeof *j);
  if (!j) goto oom;
  j->r = r;
  j->kind = r->kind;
  j->def = r->def;
  j->args = sess_req_args(r);
  j->args = j->args ? json_incref(j->args) : r->kind == RK_PROMPT ? json_object() : NULL;
  const char *name = sess_req_name(r);
  if ((r->kind == RK_RESOURCE || (r->kind == RK_COMPLETE && name)) && !(j->uri = strdup(name))) goto oom;
  if (r->kind == RK_COMPLETE) {
    json_t *arg = json_object_get(r->params, "argument");
    j->arg = strdup(json_string_value(json_object_get(arg, "name")));
    j->prefix = strdup(json_string_value(json_object_get(arg, "value")));
    if (!j->arg || !j->prefix) goto oom;
  } else if (!(j->ctx = sess_input_ctx(s, r))) {
    goto oom;
  }
  if (r->kind == RK_PROMPT && !j->args) goto oom;
  r->job = j;
  if (blocking(r)) {
    workpool *pool = mcp_dispatcher_pool(s->o.dispatcher);
    const mcp_auth *a = s->o.auth;
    uint64_t key = workpool_key_of(a->peer_id[0] ? a->peer_id : a->remote_addr); /* the caller's turn */
    if (pool && workpool_submit_for(pool, key, job_work, job_done, j) == 0) return;
    r->job = NULL;
    job_free(j);
    req_ctx rc = sess_rc_of(r);
    sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, "cannot schedule the request", NULL);
    sess_req_done(s, r);
    return;
  }
  job_work(j);
  job_done(j);
  return;
oom:
  if (j) job_free(j);
  req_ctx rc = sess_rc_of(r);
  sess_reply_err(s, &rc, RPC_INTERNAL_ERROR, "out of memory", NULL);
  sess_req_done(s, r);
}

/* ---------- prompts/get, resources/read ---------- */

/* Begins the tracked request of a prompts/get, resources/read or completion/complete whose
 * checks passed, keeps its params for the run and starts it; with `input`, first opens the
 * input (elicitation/sampling) context the handler may use. Replies itself on failure. */
static void start_request(mcp_session *s, req_ctx *rc, int kind, const void *def, bool input) {
  sess_req *r = sess_req_begin(s, rc, kind);
  if (!r) return;
  r->def = def;
  r->params = json_incref(rc->params);
  if (input && !sess_input_begin(s, rc, r)) {
    sess_req_done(s, r);
    return;
  }
  sess_catalog_run(s, r);
}


void sess_m_prompts_get(mcp_session *s, req_ctx *rc) {
  json_t *name = json_object_get(rc->params, "name");
  if (!json_is_string(name)) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "prompts/get: params.name must be a string", NULL);
    return;
  }
  const mcp_prompt_def *d = mcp_prompts_find(prompts_of(s), json_string_value(name));
  if (!prompt_visible(s, d)) {
    char msg[200];
    snprintf(msg, sizeof msg, "Unknown prompt: %.128s", json_string_value(name));
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, msg, NULL);
    return;
  }
  json_t *args = json_object_get(rc->params, "arguments");
  if (json_is_null(args)) args = NULL;
  char err[200];
  if (mcp_prompt_check_args(d, args, err, sizeof err) != 0) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, err, NULL);
    return;
  }
  if (!rc->id) return;
  start_request(s, rc, RK_PROMPT, d, true);
}

void sess_m_resources_read(mcp_session *s, req_ctx *rc) {
  json_t *uri = json_object_get(rc->params, "uri");
  if (!json_is_string(uri)) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "resources/read: params.uri must be a string", NULL);
    return;
  }
  mcp_uri_vars vars = {0};
  const mcp_resource_def *d = mcp_resources_match(resources_of(s), json_string_value(uri), &vars);
  mcp_uri_vars_clear(&vars);
  if (!resource_visible(s, d)) {
    not_found(s, rc, json_string_value(uri));
    return;
  }
  if (!rc->id) return;
  start_request(s, rc, RK_RESOURCE, d, true);
}

/* ---------- completion/complete ---------- */

void sess_m_complete(mcp_session *s, req_ctx *rc) {
  json_t *ref = json_object_get(rc->params, "ref");
  json_t *arg = json_object_get(rc->params, "argument");
  const char *type = json_string_value(json_object_get(ref, "type"));
  const char *aname = json_string_value(json_object_get(arg, "name"));
  const char *value = json_string_value(json_object_get(arg, "value"));
  if (!json_is_object(ref) || !type || !aname || !value) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS,
                   "completion/complete: params.ref {type} and params.argument {name, value} are required", NULL);
    return;
  }
  json_t *context = json_object_get(json_object_get(rc->params, "context"), "arguments");
  if (context && !json_is_object(context)) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "completion/complete: params.context.arguments must be an object", NULL);
    return;
  }
  const void *def = NULL;
  json_t *uri = NULL;
  bool block = false;
  char msg[240];
  if (strcmp(type, "ref/prompt") == 0) {
    const char *pname = json_string_value(json_object_get(ref, "name"));
    const mcp_prompt_def *d = pname ? mcp_prompts_find(prompts_of(s), pname) : NULL;
    if (!prompt_visible(s, d)) {
      snprintf(msg, sizeof msg, "Unknown prompt: %.128s", pname ? pname : "");
      sess_reply_err(s, rc, RPC_INVALID_PARAMS, msg, NULL);
      return;
    }
    def = d;
    block = d->flags & MCP_PROMPT_BLOCKING;
  } else if (strcmp(type, "ref/resource") == 0) {
    uri = json_object_get(ref, "uri");
    const char *u = json_string_value(uri);
    const mcp_resource_def *d = u ? mcp_resources_find_template(resources_of(s), u) : NULL;
    if (!d) { /* a fixed resource has nothing to complete */
      mcp_uri_vars vars = {0};
      d = u ? mcp_resources_match(resources_of(s), u, &vars) : NULL;
      mcp_uri_vars_clear(&vars);
      if (resource_visible(s, d)) {
        json_t *none = json_array();
        reply_completion(s, rc, none, 0);
        json_decref(none);
        return;
      }
      d = NULL;
    }
    if (!resource_visible(s, d)) {
      snprintf(msg, sizeof msg, "Unknown resource template: %.160s", u ? u : "");
      sess_reply_err(s, rc, RPC_INVALID_PARAMS, msg, NULL);
      return;
    }
    if (!d->complete) {
      json_t *none = json_array();
      reply_completion(s, rc, none, 0);
      json_decref(none);
      return;
    }
    def = d;
    block = d->flags & MCP_RESOURCE_BLOCKING;
  } else {
    snprintf(msg, sizeof msg, "completion/complete: unknown ref type %.64s", type);
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, msg, NULL);
    return;
  }
  if (!rc->id) return;
  if (!block) { /* answered now: no request to track */
    sess_job j = {.kind = RK_COMPLETE, .def = def, .args = context, .uri = (char *)json_string_value(uri),
                  .arg = (char *)aname, .prefix = (char *)value};
    job_work(&j);
    if (j.rc == 0) reply_completion(s, rc, j.out, j.total);
    else sess_reply_err(s, rc, RPC_INTERNAL_ERROR, "completion failed", NULL);
    json_decref(j.out);
    return;
  }
  start_request(s, rc, RK_COMPLETE, def, false); /* ref, argument, context: read again by the run */
}

/* ---------- subscriptions ---------- */

static size_t resource_subs(const mcp_session *s) { return s->nrsubs + s->nlisten_uris; }

/* The definition a client may subscribe to at uri, or NULL. */
static const mcp_resource_def *subscribable(mcp_session *s, const char *uri) {
  mcp_uri_vars vars = {0};
  const mcp_resource_def *d = mcp_resources_match(resources_of(s), uri, &vars);
  mcp_uri_vars_clear(&vars);
  return resource_visible(s, d) ? d : NULL;
}

void sess_m_resources_subscribe(mcp_session *s, req_ctx *rc) {
  json_t *uri = json_object_get(rc->params, "uri");
  if (!json_is_string(uri) || json_string_length(uri) > MCP_URI_MAX_BYTES) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "resources/subscribe: params.uri must be a URI string", NULL);
    return;
  }
  const char *u = json_string_value(uri);
  const mcp_resource_def *d = subscribable(s, u);
  if (!d) {
    not_found(s, rc, u);
    return;
  }
  if (!(d->flags & MCP_RESOURCE_SUBSCRIBE)) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "This resource does not support subscriptions",
                   json_pack("{s:s}", "uri", u));
    return;
  }
  for (size_t i = 0; i < s->nrsubs; i++)
    if (strcmp(s->rsubs[i], u) == 0) {
      sess_reply(s, rc, json_object(), false);
      return;
    }
  char **v = resource_subs(s) < MCP_SESSION_MAX_RESOURCE_SUBS ? realloc(s->rsubs, (s->nrsubs + 1) * sizeof *v) : NULL;
  if (v) s->rsubs = v;
  char *copy = v ? strdup(u) : NULL;
  if (!copy || mcp_resources_subscribe(resources_of(s), d, u, s->o.dispatcher) != 0) {
    free(copy);
    sess_reply_err(s, rc, RPC_INTERNAL_ERROR, "too many resource subscriptions", NULL);
    return;
  }
  s->rsubs[s->nrsubs++] = copy;
  sess_reply(s, rc, json_object(), false);
}

void sess_m_resources_unsubscribe(mcp_session *s, req_ctx *rc) {
  json_t *uri = json_object_get(rc->params, "uri");
  if (!json_is_string(uri)) {
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "resources/unsubscribe: params.uri must be a string", NULL);
    return;
  }
  for (size_t i = 0; i < s->nrsubs; i++)
    if (strcmp(s->rsubs[i], json_string_value(uri)) == 0) {
      mcp_resources_unsubscribe(resources_of(s), s->rsubs[i]);
      free(s->rsubs[i]);
      s->rsubs[i] = s->rsubs[--s->nrsubs];
      break;
    }
  sess_reply(s, rc, json_object(), false);
}

json_t *sess_listen_filter(mcp_session *s, req_ctx *rc, sess_sub *u) {
  json_t *want = json_object_get(json_object_get(rc->params, "notifications"), "resourceSubscriptions");
  json_t *agreed = json_object();
  if (!agreed) goto oom;
  if (!want || json_is_null(want)) return agreed;
  if (!json_is_array(want)) {
    json_decref(agreed);
    sess_reply_err(s, rc, RPC_INVALID_PARAMS, "subscriptions/listen: notifications.resourceSubscriptions must be an array",
                   NULL);
    return NULL;
  }
  for (size_t i = 0; i < json_array_size(want); i++)
    if (!json_is_string(json_array_get(want, i))) {
      json_decref(agreed);
      sess_reply_err(s, rc, RPC_INVALID_PARAMS,
                     "subscriptions/listen: notifications.resourceSubscriptions must hold URI strings", NULL);
      return NULL;
    }
  u->uris = json_array();
  if (!u->uris) goto oom;
  /* the subset it can honor (subscriptions.mdx §Acknowledgment): existing, subscribable, within
   * the session's budget; anything else is left out of the acknowledgment */
  for (size_t i = 0; i < json_array_size(want); i++) {
    json_t *w = json_array_get(want, i);
    const char *uri = json_string_value(w);
    if (json_string_length(w) > MCP_URI_MAX_BYTES || resource_subs(s) >= MCP_SESSION_MAX_RESOURCE_SUBS) continue;
    bool dup = false;
    for (size_t k = 0; k < json_array_size(u->uris) && !dup; k++) dup = json_equal(json_array_get(u->uris, k), w);
    const mcp_resource_def *d = dup ? NULL : subscribable(s, uri);
    if (!d || !(d->flags & MCP_RESOURCE_SUBSCRIBE)) continue;
    if (mcp_resources_subscribe(resources_of(s), d, uri, s->o.dispatcher) != 0) continue;
    if (json_array_append(u->uris, w) != 0) {
      mcp_resources_unsubscribe(resources_of(s), uri);
      continue;
    }
    s->nlisten_uris++;
  }
  if (json_array_size(u->uris)) json_object_set(agreed, "resourceSubscriptions", u->uris);
  return agreed;
oom:
  json_decref(agreed);
  sess_reply_err(s, rc, RPC_INTERNAL_ERROR, "out of memory", NULL);
  return NULL;
}

/* A provider reported a change: notifications/resources/updated to this session's subscribers —
 * session-wide for resources/subscribe, on the stream of each listen that asked for the URI. */
static void on_resource_updated(void *ud, const char *uri) {
  mcp_session *s = ud;
  for (size_t i = 0; i < s->nrsubs; i++)
    if (strcmp(s->rsubs[i], uri) == 0) {
      alloc_watch w = alloc_watch_begin();
      sess_notify_whole(s, w, NULL, false,
                  json_pack("{s:s, s:s, s:{s:s}}", "jsonrpc", "2.0", "method", "notifications/resources/updated", "params",
                            "uri", uri));
      break;
    }
  for (sess_sub *u = s->subs; u; u = u->next)
    for (size_t k = 0; k < json_array_size(u->uris); k++)
      if (strcmp(json_string_value(json_array_get(u->uris, k)), uri) == 0) {
        alloc_watch w = alloc_watch_begin();
        sess_notify_whole(s, w, u->id, true,
                    json_pack("{s:s, s:s, s:{s:{s:O}, s:s}}", "jsonrpc", "2.0", "method", "notifications/resources/updated",
                              "params", "_meta", "io.modelcontextprotocol/subscriptionId", u->id, "uri", uri));
        break;
      }
}

void sess_catalog_open(mcp_session *s) {
  s->res_listener = mcp_resources_listen(resources_of(s), on_resource_updated, s);
  if (!s->res_listener) log_warn("session: cannot listen for resource updates (out of memory)", NULL);
}

void sess_catalog_close(mcp_session *s) {
  mcp_resources *res = resources_of(s);
  if (s->res_listener) mcp_resources_unlisten(res, s->res_listener);
  s->res_listener = 0;
  for (size_t i = 0; i < s->nrsubs; i++) {
    mcp_resources_unsubscribe(res, s->rsubs[i]);
    free(s->rsubs[i]);
  }
  free(s->rsubs);
  s->rsubs = NULL;
  s->nrsubs = 0;
}
