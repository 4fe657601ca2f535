/* queue.c — `peermcp queue import --from-peer TARGET [--status LIST]`: moving from the Python
 * system (or another peermcp node) over the wire. Python's DuckDB file cannot be read here (no
 * DuckDB in Debian); its TaskQueue op table can: `list` (per state, the oldest 1000, as the op
 * table clamps) names the tasks, `get` fetches each full task dict, and each is written into
 * the local queue keeping its task id, idempotency key, type, model, payload, priority and
 * attempt limit; a terminal task keeps its status, result and error; a queued or running task
 * is imported queued (a running task's lease belongs to the old node's worker). A task id
 * already in the local queue is skipped, so a second run imports nothing twice.
 *
 * Not done: more than 1000 tasks of one state (the op table has no paging; run it again once
 * the source has moved on, or split by --status); created_at, attempt counts and leases are not
 * carried over (the queue stamps the import time).
 *
 * `peermcp queue check [--path FILE]` (issue 9 item 10): the queue database checked without
 * changing it — SQLite's integrity_check and the queue's own invariants (store/queue.h
 * tq_check_file) on queue.path or FILE, read-only, safe while `serve` runs. Prints the report
 * (one JSON object); exit 0 healthy, 1 not healthy or unreadable (the problem on stderr too).
 * What to do with a bad report: docs/store.md, "Recovery". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "cli/help.h"
#include "node/node.h"
#include "service/client.h"
#include "store/queue.h"
#include "util/log.h"

#define IMPORT_LIST_LIMIT 1000

typedef struct sync_reply {
  int done, err;
  json_t *result, *error;
} sync_reply;

static void sync_cb(void *ud, int err, json_t *result, json_t *error) {
  sync_reply *r = ud;
  r->done = 1;
  r->err = err;
  r->result = json_incref(result);
  r->error = json_incref(error);
}

/* One op on the peer; the reply (new reference) or NULL with *err set. */
static json_t *rpc(node *n, svc_client *c, json_t *msg, int *err) {
  sync_reply r = {0};
  *err = 0;
  if (svc_client_rpc(c, msg, 60000, sync_cb, &r) != 0) {
    json_decref(msg);
    *err = -ENOMEM;
    return NULL;
  }
  json_decref(msg);
  while (!r.done) uv_run(node_loop(n), UV_RUN_ONCE);
  json_decref(r.error);
  if (r.err < 0 || !r.result) {
    json_decref(r.result);
    *err = r.err < 0 ? r.err : -EPROTO;
    return NULL;
  }
  return r.result;
}

static bool hex32(const char *s) {
  if (!s || strlen(s) != 32) return false;
  for (; *s; s++)
    if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return false;
  return true;
}

typedef enum { IMP_DONE = 0, IMP_SKIPPED, IMP_FAILED } imp_outcome;

/* Writes one full task dict into the local queue. */
static imp_outcome import_one(tq_queue *q, const json_t *t, char *why, size_t whylen) {
  const char *id = json_string_value(json_object_get(t, "task_id"));
  const char *type = json_string_value(json_object_get(t, "task_type"));
  const char *status = json_string_value(json_object_get(t, "status"));
  tq_status st;
  if (!hex32(id) || !type || !*type || !status || tq_status_parse(status, &st) != 0) {
    snprintf(why, whylen, "not a task dict (task_id of 32 lower-case hex digits, task_type, status)");
    return IMP_FAILED;
  }
  tq_task *have = NULL;
  if (tq_get(q, id, &have) == 0 && have) {
    tq_task_free(have);
    return IMP_SKIPPED; /* imported before (or the same id made here) */
  }
  json_t *payload = json_object_get(t, "payload");
  json_t *owned = json_is_object(payload) ? NULL : json_pack("{s:O?}", "payload", payload);
  const json_t *pri = json_object_get(t, "priority"), *ma = json_object_get(t, "max_attempts");
  tq_submit_req req = {
      .task_type = type,
      .model_name = json_string_value(json_object_get(t, "model_name")),
      .payload = owned ? owned : payload,
      .task_id = id,
      .idempotency_key = json_string_value(json_object_get(t, "idempotency_key")),
  };
  if (json_is_integer(pri) && json_integer_value(pri) >= 1 && json_integer_value(pri) <= 10) {
    req.has_priority = true;
    req.priority = (int)json_integer_value(pri);
  }
  if (json_is_integer(ma) && json_integer_value(ma) >= 0 && json_integer_value(ma) <= 1000) {
    req.has_max_attempts = true;
    req.max_attempts = (int)json_integer_value(ma);
  }
  char got[33];
  bool replayed = false;
  int rc = tq_submit(q, &req, got, &replayed);
  json_decref(owned);
  if (rc != 0) {
    snprintf(why, whylen, "%s", tq_strerror(rc));
    return IMP_FAILED;
  }
  if (strcmp(got, id) != 0) { /* its idempotency key names another task here */
    snprintf(why, whylen, "idempotency key already used by local task %s", got);
    return IMP_SKIPPED;
  }
  if (st == TQ_COMPLETED || st == TQ_FAILED || st == TQ_CANCELLED) {
    json_t *res = json_object_get(t, "result");
    json_t *ro = json_is_object(res) ? json_incref(res) : json_is_null(res) || !res ? NULL : json_pack("{s:O}", "result", res);
    rc = tq_complete(q, id, NULL, st, ro, json_string_value(json_object_get(t, "error")));
    json_decref(ro);
    if (rc != 0) {
      snprintf(why, whylen, "imported queued, but setting its status %s failed: %s", status, tq_strerror(rc));
      return IMP_FAILED;
    }
  }
  return IMP_DONE;
}

/* `queue check`: the report on stdout, the verdict as the exit code. */
static int check(const char *path) {
  json_t *report = NULL;
  int rc = tq_check_file(path, &report);
  bool healthy = rc == 0 && json_is_true(json_object_get(report, "ok"));
  if (report) cli_print_json(report);
  if (!healthy) {
    const char *e = json_string_value(json_object_get(report, "error"));
    const json_t *integ = json_object_get(report, "integrity");
    const char *first = json_is_array(integ) ? json_string_value(json_array_get(integ, 0)) : NULL;
    const json_t *inv = json_object_get(report, "invariants");
    const char *rule = json_array_size(inv) ? json_string_value(json_object_get(json_array_get(inv, 0), "rule")) : NULL;
    fprintf(stderr, "peermcp queue check: %s is not healthy: %s (recovery: docs/store.md, \"Recovery\")\n", path,
            e ? e : first ? first : rule ? rule : "see the report");
  }
  json_decref(report);
  return healthy ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cli_queue(int argc, char **argv) {
  config_args args;
  config cfg;
  int rc = cli_load_config("queue", &argc, argv, &args, &cfg);
  if (rc) return rc;
  int exit_code = CLI_EXIT_USAGE;
  node *n = NULL;
  svc_client *c = NULL;
  json_t *ids = NULL, *failures = NULL;
  const char *from = NULL, *statuses = "queued,running,completed,failed,cancelled", *sub = NULL, *path = NULL;
  char err[1600];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      cli_help_print(stdout, "queue");
      exit_code = CLI_EXIT_OK;
      goto out;
    } else if (!strcmp(a, "--path")) {
      if (i + 1 >= argc) {
        snprintf(err, sizeof err, "%s needs a value", a);
        goto usage;
      }
      path = argv[++i];
    } else if (!strcmp(a, "--from-peer") || !strcmp(a, "--status")) {
      if (i + 1 >= argc) {
        snprintf(err, sizeof err, "%s needs a value", a);
        goto usage;
      }
      if (a[2] == 'f') from = argv[++i];
      else statuses = argv[++i];
    } else if (a[0] == '-') {
      snprintf(err, sizeof err, "%s is not an option of queue", a);
      goto usage;
    } else if (!sub) {
      sub = a;
    } else {
      snprintf(err, sizeof err, "unexpected argument \"%.500s\"", a);
      goto usage;
    }
  }
  if (sub && strcmp(sub, "check") == 0) {
    if (from) {
      snprintf(err, sizeof err, "check takes no --from-peer");
      goto usage;
    }
    exit_code = check(path ? path : cfg.queue.path);
    goto out;
  }
  if (!sub || strcmp(sub, "import") != 0) {
    snprintf(err, sizeof err, sub ? "unknown subcommand \"%.100s\" (import, check)" : "which subcommand? (import, check)", sub);
    goto usage;
  }
  if (path) {
    snprintf(err, sizeof err, "--path belongs to check");
    goto usage;
  }
  if (!from) {
    snprintf(err, sizeof err, "import needs --from-peer TARGET");
    goto usage;
  }
  if (svc_target_problem(from, NULL, err, sizeof err)) goto usage;
  if ((cfg.p2p.token || cfg.p2p.client_token) && from[0] == '/' && !strstr(from, "/p2p/")) {
    svc_dial_error_text(NULL, from, NULL, -EDESTADDRREQ, err, sizeof err);
    goto usage;
  }
  /* the states to copy */
  const char *wanted[5];
  size_t n_wanted = 0;
  for (const char *p = statuses; *p;) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    char w[16];
    tq_status st;
    snprintf(w, sizeof w, "%.*s", (int)(l < 15 ? l : 15), p);
    if (l >= 16 || tq_status_parse(w, &st) != 0) {
      snprintf(err, sizeof err, "--status: \"%.*s\" is not a task state (queued, running, completed, failed, cancelled)",
               (int)(l < 100 ? l : 100), p);
      goto usage;
    }
    static const char *const k_names[] = {"queued", "running", "completed", "failed", "cancelled"};
    for (size_t k = 0; k < 5; k++)
      if (strcmp(k_names[k], w) == 0 && n_wanted < 5) {
        bool dup = false;
        for (size_t j = 0; j < n_wanted; j++) dup |= wanted[j] == k_names[k];
        if (!dup) wanted[n_wanted++] = k_names[k];
      }
    p = e ? e + 1 : p + l;
  }
  exit_code = CLI_EXIT_FAIL;
  node_options no = {.name = "queue", .store = true, .host = NODE_HOST_DIAL};
  char nerr[1024];
  if (node_open(&cfg, &no, &n, nerr, sizeof nerr) != 0 || node_start(n, nerr, sizeof nerr) != 0) {
    fprintf(stderr, "peermcp queue: %s\n", nerr);
    goto out;
  }
  tq_queue *q = node_queue(n);
  if (!q) {
    fprintf(stderr, "peermcp queue: the local queue cannot be opened (%s)\n", cfg.queue.path);
    goto out;
  }
  if ((rc = node_dial(n, from, &c)) != 0) {
    c = NULL;
    fprintf(stderr, "peermcp queue: %s\n", svc_dial_error_text(node_host(n), from, "/mcp+p2p/1.0.0", rc, err, sizeof err));
    goto out;
  }
  ids = json_array();
  failures = json_array();
  for (size_t k = 0; k < n_wanted; k++) {
    json_t *r = rpc(n, c, json_pack("{s:s, s:s, s:i}", "op", "list", "status", wanted[k], "limit", IMPORT_LIST_LIMIT), &rc);
    if (!r || !json_is_true(json_object_get(r, "ok"))) {
      if (!r) svc_dial_error_text(node_host(n), from, "/mcp+p2p/1.0.0", rc, err, sizeof err);
      else snprintf(err, sizeof err, "the peer refused list: %s", json_string_value(json_object_get(r, "error")) ? json_string_value(json_object_get(r, "error")) : "?");
      fprintf(stderr, "peermcp queue: %s\n", err);
      json_t *o = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", r ? "refused" : svc_dial_error_code(rc), "detail", err);
      cli_print_json(o);
      json_decref(o);
      json_decref(r);
      goto out;
    }
    size_t i;
    json_t *t;
    json_t *tasks = json_object_get(r, "tasks");
    if (json_array_size(tasks) >= IMPORT_LIST_LIMIT)
      log_warn("queue import: the peer listed the most it lists at once; later tasks of this state are left",
               "{s:s, s:i}", "status", wanted[k], "limit", IMPORT_LIST_LIMIT);
    json_array_foreach(tasks, i, t) {
      json_t *id = json_object_get(t, "task_id");
      if (json_is_string(id)) json_array_append(ids, id);
    }
    json_decref(r);
  }
  size_t imported = 0, skipped = 0, failed = 0, i;
  json_t *idv;
  json_array_foreach(ids, i, idv) {
    json_t *r = rpc(n, c, json_pack("{s:s, s:O}", "op", "get", "task_id", idv), &rc);
    json_t *t = r ? json_object_get(r, "task") : NULL;
    char why[300] = "";
    imp_outcome out;
    if (!json_is_object(t)) {
      snprintf(why, sizeof why, "%s", r ? "gone from the peer before it could be read" : strerror(-rc));
      out = IMP_FAILED;
    } else {
      out = import_one(q, t, why, sizeof why);
    }
    if (out == IMP_DONE) imported++;
    else if (out == IMP_SKIPPED) skipped++;
    else {
      failed++;
      json_array_append_new(failures, json_pack("{s:O, s:s}", "task_id", idv, "error", why));
    }
    if (out != IMP_DONE && why[0])
      log_info("queue import: task not imported", "{s:O, s:s}", "task_id", idv, "reason", why);
    json_decref(r);
  }
  json_t *o = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I}", "ok", failed == 0, "from", from, "listed",
                        (json_int_t)json_array_size(ids), "imported", (json_int_t)imported, "skipped",
                        (json_int_t)skipped, "failed", (json_int_t)failed);
  if (o && failed) json_object_set(o, "failures", failures);
  cli_print_json(o);
  json_decref(o);
  exit_code = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
  goto out;
usage:
  fprintf(stderr, "peermcp queue: %s\n", err);
  cli_help_print_usage(stderr, "queue");
  exit_code = CLI_EXIT_USAGE;
out:
  if (c) svc_client_close(c);
  node_close(n);
  json_decref(ids);
  json_decref(failures);
  config_free(&cfg);
  config_args_free(&args);
  return exit_code;
}
