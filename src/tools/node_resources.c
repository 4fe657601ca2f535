/* node_resources.c — the node's own MCP resources and prompts (see node_resources.h). */
#include "tools/node_resources.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "mcp/content.h"
#include "mcp/dispatch.h"
#include "mcp/prompts.h"
#include "mcp/resources.h"
#include "mcp/tasks.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/jwrite.h"
#include "util/log.h"
#include "util/workpool.h"

#ifndef PEERMCP_VERSION
#define PEERMCP_VERSION "0.0.0"
#endif

#define TASK_URI_PREFIX "peermcp://task/"

/* One subscribed task: what the last poll saw (a change of any of these is an update). */
typedef struct watched {
  char id[64];
  bool known; /* seen by a poll already */
  bool exists;
  int status;
  int attempt;
  double updated_at;
} watched;

typedef struct poll_job {
  struct node_res *nr;
  size_t n;
  watched w[]; /* a copy of the watch list, filled in by the worker */
} poll_job;

typedef struct node_res {
  tq_queue *q;
  mcp_registry *reg;
  double started_at;
  mcp_resources *res;
  /* task subscriptions (loop thread) */
  watched w[NODE_RESOURCES_MAX_WATCHED];
  size_t nw;
  uv_timer_t *timer;  /* runs while nw > 0 */
  mcp_dispatcher *env; /* the loop and pool the poll uses */
  bool polling;       /* a poll job is out */
  mcp_resource_def defs[3];
  mcp_prompt_def prompts[2];
} node_res;

/* ---------- peermcp://server/info ---------- */

static int read_info(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  node_res *nr = ud;
  char started[32];
  mcp_tasks_iso8601(nr->started_at, started);
  json_t *info = json_pack("{s:s, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:b}", "name", "peermcp", "version",
                           PEERMCP_VERSION, "pid", (json_int_t)getpid(), "started_at", started, "tools",
                           (json_int_t)mcp_registry_count(nr->reg), "prompts",
                           (json_int_t)mcp_prompts_count(mcp_registry_prompts(nr->reg)), "resources",
                           (json_int_t)mcp_resources_count(nr->res), "resource_templates",
                           (json_int_t)mcp_resources_template_count(nr->res), "queue", nr->q != NULL);
  char *text = info ? jwrite_dumps(info, JWRITE_SORT_KEYS) : NULL;
  json_decref(info);
  *contents = text ? json_pack("[o]", mcp_resource_text(uri, "application/json", text)) : NULL;
  free(text);
  return *contents ? 0 : -ENOMEM;
}

/* ---------- peermcp://queue/stats (worker thread) ---------- */

static int read_stats(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  node_res *nr = ud;
  json_t *s = NULL;
  int rc = tq_stats_json(nr->q, &s);
  if (rc != 0) return rc;
  tq_io_stats io;
  tq_io_stats_get(nr->q, &io);
  json_object_set_new(s, "io", json_pack("{s:I, s:I, s:I}", "ops", (json_int_t)io.ops, "commits", (json_int_t)io.commits,
                                         "max_group", (json_int_t)io.max_group));
  char *text = jwrite_dumps(s, JWRITE_SORT_KEYS);
  json_decref(s);
  *contents = text ? json_pack("[o]", mcp_resource_text(uri, "application/json", text)) : NULL;
  free(text);
  return *contents ? 0 : -ENOMEM;
}

/* ---------- peermcp://task/{task_id} (worker thread) ---------- */

static bool task_id_ok(const char *id) { return id && *id && strlen(id) < sizeof(((watched *)0)->id); }

static int read_task(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  node_res *nr = ud;
  const char *id = mcp_uri_var(vars, "task_id");
  if (!task_id_ok(id)) return -ENOENT;
  tq_task *t = NULL;
  int rc = tq_get(nr->q, id, &t);
  if (rc != 0) return rc; /* -ENOENT: not found */
  json_t *j = tq_task_to_json(t, TQ_JSON_FULL | TQ_JSON_EXTRA);
  tq_task_free(t);
  char *text = j ? jwrite_dumps(j, JWRITE_SORT_KEYS) : NULL;
  json_decref(j);
  *contents = text ? json_pack("[o]", mcp_resource_text(uri, "application/json", text)) : NULL;
  free(text);
  return *contents ? 0 : -ENOMEM;
}

/* The ids of the most recent tasks (up to 1000 read) that start with prefix, newest first. */
static int recent_task_ids(node_res *nr, const char *prefix, json_t **values) {
  tq_task **v = NULL;
  size_t n = 0;
  tq_list_opts lo = {.status = TQ_STATUS_ANY, .limit = 1000};
  int rc = tq_list(nr->q, &lo, &v, &n);
  if (rc != 0) return rc;
  json_t *a = json_array();
  size_t plen = prefix ? strlen(prefix) : 0;
  for (size_t i = n; a && i-- > 0 && json_array_size(a) < MCP_COMPLETION_MAX_VALUES;)
    if (!plen || strncmp(v[i]->task_id, prefix, plen) == 0) json_array_append_new(a, json_string(v[i]->task_id));
  tq_task_array_free(v, n);
  *values = a;
  return a ? 0 : -ENOMEM;
}

static int complete_task(void *ud, const char *var, const char *prefix, const json_t *context, json_t **values) {
  if (strcmp(var, "task_id") != 0) {
    *values = json_array();
    return *values ? 0 : -ENOMEM;
  }
  return recent_task_ids(ud, prefix, values);
}

/* ---------- task subscriptions: a 1 s poll of the subscribed tasks ---------- */

static void poll_work(void *arg) {
  poll_job *j = arg;
  for (size_t i = 0; i < j->n; i++) {
    tq_task *t = NULL;
    int rc = tq_get(j->nr->q, j->w[i].id, &t);
    j->w[i].known = rc == 0 || rc == -ENOENT; /* a read error says nothing: compare later */
    j->w[i].exists = rc == 0;
    if (t) {
      j->w[i].status = (int)t->status;
      j->w[i].attempt = t->attempt;
      j->w[i].updated_at = t->updated_at;
    }
    tq_task_free(t);
  }
}

static watched *find_watch(node_res *nr, const char *id) {
  for (size_t i = 0; i < nr->nw; i++)
    if (strcmp(nr->w[i].id, id) == 0) return &nr->w[i];
  return NULL;
}

static void poll_done(void *arg) {
  poll_job *j = arg;
  node_res *nr = j->nr;
  nr->polling = false;
  for (size_t i = 0; i < j->n; i++) {
    const watched *now = &j->w[i];
    watched *w = find_watch(nr, now->id); /* it may have been unsubscribed meanwhile */
    if (!w || !now->known) continue;
    bool changed = w->known && (w->exists != now->exists || w->status != now->status || w->attempt != now->attempt ||
                                w->updated_at != now->updated_at);
    *w = *now;
    if (changed) {
      char uri[sizeof TASK_URI_PREFIX + sizeof now->id];
      snprintf(uri, sizeof uri, TASK_URI_PREFIX "%s", now->id);
      mcp_resources_notify_updated(nr->res, uri);
    }
  }
  free(j);
}

static void poll_tick(uv_timer_t *t) {
  node_res *nr = t->data;
  if (nr->polling || nr->nw == 0) return; /* one poll at a time */
  poll_job *j = malloc(sizeof *j + nr->nw * sizeof(watched));
  if (!j) return;
  j->nr = nr;
  j->n = nr->nw;
  memcpy(j->w, nr->w, nr->nw * sizeof(watched));
  workpool *pool = mcp_dispatcher_pool(nr->env);
  if (!pool || workpool_submit(pool, poll_work, poll_done, j) != 0) {
    free(j);
    return;
  }
  nr->polling = true;
}

static void timer_closed(uv_handle_t *h) { free(h); }

static void watch_task(void *ud, const char *uri, bool on, mcp_dispatcher *env) {
  node_res *nr = ud;
  LOOP_THREAD_ONLY();
  const char *id = strncmp(uri, TASK_URI_PREFIX, strlen(TASK_URI_PREFIX)) == 0 ? uri + strlen(TASK_URI_PREFIX) : NULL;
  if (!task_id_ok(id)) return;
  if (on) {
    if (find_watch(nr, id) || nr->nw >= NODE_RESOURCES_MAX_WATCHED) {
      if (nr->nw >= NODE_RESOURCES_MAX_WATCHED) log_warn("node resources: too many watched tasks; not watching", "{s:s}", "uri", uri);
      return;
    }
    watched *w = &nr->w[nr->nw++];
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    if (!nr->timer) {
      uv_timer_t *t = calloc(1, sizeof *t);
      if (!t || uv_timer_init(mcp_dispatcher_loop(env), t) != 0) {
        free(t);
        nr->nw--;
        return;
      }
      t->data = nr;
      nr->timer = t;
      nr->env = env;
      uv_timer_start(t, poll_tick, 0, NODE_RESOURCES_POLL_MS); /* the first tick records where it stands */
    }
    return;
  }
  watched *w = find_watch(nr, id);
  if (!w) return;
  *w = nr->w[--nr->nw];
  if (nr->nw == 0 && nr->timer) {
    uv_timer_stop(nr->timer);
    uv_close((uv_handle_t *)nr->timer, timer_closed);
    nr->timer = NULL;
  }
}

/* ---------- prompts ---------- */

static int task_report(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  node_res *nr = ud;
  const char *id = json_string_value(json_object_get(args, "task_id"));
  char uri[160];
  snprintf(uri, sizeof uri, TASK_URI_PREFIX "%.100s", id ? id : "");
  mcp_uri_vars vars = {0};
  json_t *contents = NULL;
  int rc = mcp_uri_template_match(TASK_URI_PREFIX "{task_id}", uri, &vars) ? read_task(nr, ctx, uri, &vars, &contents)
                                                                             : -ENOENT;
  mcp_uri_vars_clear(&vars);
  if (rc == -ENOENT) {
    char m[200];
    snprintf(m, sizeof m, "No task %.100s in this node's queue", id ? id : "");
    *result = json_string(m);
    return -EINVAL;
  }
  if (rc != 0) return rc;
  char text[400];
  snprintf(text, sizeof text,
           "Report on task %.100s of the peermcp task queue: its state, when it ran and on which worker, its "
           "result or error, and what, if anything, should be done next.",
           id);
  json_t *resource = json_incref(json_array_get(contents, 0));
  json_decref(contents);
  *result = json_pack("{s:s, s:[{s:s, s:o}, {s:s, s:o}]}", "description", "A report on one queued task", "messages", "role",
                      "user", "content", mcp_content_text(text), "role", "user", "content", mcp_content_embedded(resource));
  return *result ? 0 : -ENOMEM;
}

static int complete_report(void *ud, const char *arg, const char *prefix, const json_t *context, json_t **values) {
  return complete_task(ud, arg, prefix, context, values);
}

static int call_tool(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  node_res *nr = ud;
  const char *name = json_string_value(json_object_get(args, "tool"));
  const mcp_tool *t = name ? mcp_registry_find(nr->reg, name) : NULL;
  if (!t || (mcp_tool_def_of(t)->flags & MCP_TOOL_HIDDEN)) {
    char m[200];
    snprintf(m, sizeof m, "No tool %.128s on this server", name ? name : "");
    *result = json_string(m);
    return -EINVAL;
  }
  const mcp_tool_def *d = mcp_tool_def_of(t);
  char *schema = jwrite_dumps(mcp_tool_input_schema(t), JWRITE_SORT_KEYS);
  size_t cap = 512 + strlen(d->name) + (d->description ? strlen(d->description) : 0) + (schema ? strlen(schema) : 0);
  char *text = malloc(cap);
  if (text)
    snprintf(text, cap,
             "Use the tool %s of the peermcp server. What it does: %s\nIts arguments follow this JSON Schema: %s\n"
             "Ask me for any argument you cannot infer, then call it and summarise the result.",
             d->name, d->description ? d->description : "(no description)", schema ? schema : "{}");
  free(schema);
  *result = text ? json_pack("{s:[{s:s, s:o}]}", "messages", "role", "user", "content", mcp_content_text(text)) : NULL;
  free(text);
  return *result ? 0 : -ENOMEM;
}

static int complete_tool(void *ud, const char *arg, const char *prefix, const json_t *context, json_t **values) {
  node_res *nr = ud;
  json_t *a = json_array();
  size_t plen = prefix ? strlen(prefix) : 0;
  for (size_t i = 0; a && strcmp(arg, "tool") == 0 && i < mcp_registry_count(nr->reg); i++) {
    const mcp_tool_def *d = mcp_tool_def_of(mcp_registry_at(nr->reg, i));
    if (!(d->flags & MCP_TOOL_HIDDEN) && (!plen || strncmp(d->name, prefix, plen) == 0))
      json_array_append_new(a, json_string(d->name));
  }
  *values = a;
  return a ? 0 : -ENOMEM;
}

static const mcp_prompt_arg k_report_args[] = {
    {.name = "task_id", .description = "The id of a task in this node's queue", .required = true}};
static const mcp_prompt_arg k_call_args[] = {{.name = "tool", .description = "A tool of this server", .required = true}};

/* ---------- registration ---------- */

static void node_res_free(void *ud) {
  node_res *nr = ud;
  /* every session (hence every subscription and its timer) is gone by now */
  CHECK(nr->nw == 0 && !nr->timer && !nr->polling);
  free(nr);
}

int tools_node_resources_register(mcp_registry *reg, tq_queue *queue) {
  node_res *nr = calloc(1, sizeof *nr);
  if (!nr) return -ENOMEM;
  nr->q = queue;
  nr->reg = reg;
  nr->started_at = clock_wall_s();
  nr->res = mcp_registry_resources(reg);
  int rc = mcp_registry_on_free(reg, node_res_free, nr);
  if (rc != 0) {
    free(nr);
    return rc;
  }
  const auth_scopes admin = AUTH_SCOPES(AUTH_ADMIN);
  nr->defs[0] = (mcp_resource_def){.uri = "peermcp://server/info", .name = "server-info", .title = "peermcp server",
                                   .description = "This server: name, version, pid, start time and what it serves",
                                   .mime_type = "application/json", .read = read_info, .ud = nr};
  nr->defs[1] = (mcp_resource_def){.uri = "peermcp://queue/stats", .name = "queue-stats", .title = "Task queue statistics",
                                   .description = "Tasks by state and type, and the queue's durable commits",
                                   .mime_type = "application/json", .scopes = admin,
                                   .flags = MCP_RESOURCE_BLOCKING | MCP_RESOURCE_VOLATILE, .read = read_stats, .ud = nr};
  nr->defs[2] = (mcp_resource_def){.uri_template = TASK_URI_PREFIX "{task_id}", .name = "task", .title = "A queued task",
                                   .description = "One task of this node's queue with its result or error; subscribe to "
                                                  "hear when it changes state",
                                   .mime_type = "application/json", .scopes = admin,
                                   .flags = MCP_RESOURCE_BLOCKING | MCP_RESOURCE_VOLATILE | MCP_RESOURCE_SUBSCRIBE,
                                   .read = read_task, .complete = complete_task, .watch = watch_task, .ud = nr};
  nr->prompts[0] = (mcp_prompt_def){.name = "peermcp_task_report", .title = "Report on a task",
                                    .description = "Report on one task of this node's queue, with the task embedded",
                                    .args = k_report_args, .nargs = 1, .flags = MCP_PROMPT_BLOCKING, .scopes = admin,
                                    .get = task_report, .complete = complete_report, .ud = nr};
  nr->prompts[1] = (mcp_prompt_def){.name = "peermcp_call_tool", .title = "Call a tool",
                                    .description = "Explain one of this server's tools and ask the model to call it",
                                    .args = k_call_args, .nargs = 1, .get = call_tool, .complete = complete_tool, .ud = nr};
  size_t ndefs = queue ? 3 : 1;
  for (size_t i = 0; rc == 0 && i < ndefs; i++) rc = mcp_resources_add(nr->res, &nr->defs[i]);
  if (rc == 0 && queue) rc = mcp_prompts_add(mcp_registry_prompts(reg), &nr->prompts[0]);
  if (rc == 0) rc = mcp_prompts_add(mcp_registry_prompts(reg), &nr->prompts[1]);
  return rc;
}
