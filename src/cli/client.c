/* client.c — `peermcp call | task | cache | status | worker`: the P2P service from the command
 * line (p2p_tasks_spec.md §9, §10.1; issue 5 "Clients", "Workers").
 *
 * Each command builds the node it needs (src/node/node.h): with --peer TARGET (a multiaddr
 * with /p2p/<id>, a name of p2p.peers, or a bare PeerId — found in the announce file or the
 * peer table, else searched for with mDNS / the DHT when the profile turns them on:
 * cli/resolve.h) a dialing host, and the command
 * speaks /mcp+p2p/1.0.0 to that peer over one connection (service/client.h), with this node's
 * identity (<state_dir>/identity.key) and the configured token; without --peer the local
 * store (and, for `call` and `worker`, the tools) opened as `serve` opens them. Each command
 * takes only its own flags (cli/help.c lists them) and refuses a bad number with the reason.
 * Output: one JSON object on stdout. Exit code: 0 when the reply says ok (or the tool call is
 * not an error), 1 when the operation failed (a dial error is named: cli/common.h), 2 for
 * usage errors. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "auth/auth.h"
#include "cli/cli.h"
#include "cli/common.h"
#include "cli/help.h"
#include "cli/resolve.h"
#include "config/config.h"
#include "mcp/dispatch.h"
#include "auth/fernet.h"
#include "node/node.h"
#include "p2p/host/host.h"
#include "service/client.h"
#include "taskq/table.h"
#include "util/log.h"

#define MAX_PEERS 32

/* The flags of these commands; each command says which it takes. */
enum {
  F_PEER = 1u << 0,
  F_PEERS = 1u << 1, /* --peer repeatable */
  F_DETAIL = 1u << 2,
  F_ONCE = 1u << 3,
  F_TIMEOUT = 1u << 4,
  F_TTL = 1u << 5,
  F_TYPE = 1u << 6,
  F_MODEL = 1u << 7,
  F_STATUS = 1u << 8,
  F_WORKER_ID = 1u << 9,
  F_IDEM = 1u << 10,
  F_LIMIT = 1u << 11,
  F_SLOTS = 1u << 12,
  F_LEASE = 1u << 13,
  F_DISCOVER = 1u << 14,
};

typedef struct cli_opts {
  const char *peers[MAX_PEERS];
  size_t n_peers;
  const char *pos[16];
  size_t n_pos;
  unsigned given; /* F_* seen */
  bool detail, once;
  double timeout_s;
  const char *type, *model, *status, *worker_id, *idem;
  double ttl_s;
  uint64_t limit, slots;
  double lease_s;
  bool discover; /* worker --discover */
} cli_opts;

typedef struct cenv {
  const char *cmd;
  config_args args;
  config cfg;
  bool cfg_ok;
  node *n;
} cenv;

/* ---------- argument parsing ---------- */

static const struct {
  const char *name;
  unsigned bit;
} k_flags[] = {
    {"--peer", F_PEER},         {"--detail", F_DETAIL},   {"--once", F_ONCE},        {"--timeout", F_TIMEOUT},
    {"--ttl", F_TTL},           {"--type", F_TYPE},       {"--model", F_MODEL},      {"--status", F_STATUS},
    {"--worker-id", F_WORKER_ID}, {"--idempotency-key", F_IDEM}, {"--limit", F_LIMIT}, {"--slots", F_SLOTS},
    {"--lease", F_LEASE},       {"--discover", F_DISCOVER},
};

static int usage_error(const char *cmd, const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "peermcp %s: ", cmd);
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  cli_help_print_usage(stderr, cmd);
  return CLI_EXIT_USAGE;
}

/* Parses argv (past the shared flags) for `cmd`, which takes the flags in `allowed`. Returns
 * -1 to go on, or an exit code (help printed: 0; usage error: 2). */
static int parse_opts(const char *cmd, int argc, char **argv, unsigned allowed, cli_opts *o) {
  memset(o, 0, sizeof *o);
  char err[512];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      cli_help_print(stdout, cmd);
      return CLI_EXIT_OK;
    }
    if (strcmp(a, "--") == 0) {
      for (i++; i < argc; i++) {
        if (o->n_pos == sizeof o->pos / sizeof o->pos[0]) return usage_error(cmd, "too many arguments%s%s", "", "");
        o->pos[o->n_pos++] = argv[i];
      }
      break;
    }
    if (a[0] != '-' || !a[1] || (a[1] != '-' && !(a[1] >= 'a' && a[1] <= 'z'))) {
      if (o->n_pos == sizeof o->pos / sizeof o->pos[0]) return usage_error(cmd, "too many arguments%s%s", "", "");
      o->pos[o->n_pos++] = a;
      continue;
    }
    /* --flag=value is --flag value */
    char name[64];
    const char *eq = strchr(a, '=');
    const char *inline_v = NULL;
    if (eq && (size_t)(eq - a) < sizeof name) {
      snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
      inline_v = eq + 1;
    } else {
      snprintf(name, sizeof name, "%s", a);
    }
    unsigned bit = 0;
    for (size_t k = 0; k < sizeof k_flags / sizeof k_flags[0]; k++)
      if (strcmp(name, k_flags[k].name) == 0) bit = k_flags[k].bit;
    if (!bit) return usage_error(cmd, "unknown option %s%s", name, "");
    if (!(allowed & bit) && !(bit == F_PEER && (allowed & F_PEERS)))
      return usage_error(cmd, "%s is not an option of this command%s", name, "");
    bool takes_value = !(bit == F_DETAIL || bit == F_ONCE || bit == F_DISCOVER);
    const char *v = NULL;
    if (takes_value) {
      v = inline_v ? inline_v : (i + 1 < argc ? argv[++i] : NULL);
      if (!v) return usage_error(cmd, "%s needs a value%s", name, "");
    } else if (inline_v) {
      return usage_error(cmd, "%s takes no value%s", name, "");
    }
    if ((o->given & bit) && bit != F_PEER) return usage_error(cmd, "%s given twice%s", name, "");
    if (bit == F_PEER && o->n_peers && !(allowed & F_PEERS)) return usage_error(cmd, "--peer given twice%s%s", "", "");
    o->given |= bit;
    int rc = 0;
    switch (bit) {
    case F_PEER:
      if (o->n_peers == MAX_PEERS) return usage_error(cmd, "more than 32 --peer%s%s", "", "");
      o->peers[o->n_peers++] = v;
      break;
    case F_DETAIL: o->detail = true; break;
    case F_ONCE: o->once = true; break;
    case F_DISCOVER: o->discover = true; break;
    case F_TIMEOUT: rc = cli_parse_seconds("--timeout", v, 86400, &o->timeout_s, err, sizeof err); break;
    case F_TTL: rc = cli_parse_seconds("--ttl", v, 10.0 * 365 * 86400, &o->ttl_s, err, sizeof err); break;
    case F_LEASE: rc = cli_parse_seconds("--lease", v, 86400, &o->lease_s, err, sizeof err); break;
    case F_LIMIT: rc = cli_parse_uint("--limit", v, 1, 1000, &o->limit, err, sizeof err); break;
    case F_SLOTS: rc = cli_parse_uint("--slots", v, 1, 256, &o->slots, err, sizeof err); break;
    case F_TYPE: o->type = v; break;
    case F_MODEL: o->model = v; break;
    case F_STATUS: o->status = v; break;
    case F_WORKER_ID: o->worker_id = v; break;
    case F_IDEM: o->idem = v; break;
    }
    if (rc != 0) return usage_error(cmd, "%s%s", err, "");
  }
  return -1;
}

static json_t *parse_json_arg(const char *cmd, const char *what, const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
  if (!v) fprintf(stderr, "peermcp %s: %s is not JSON: %s (column %d)\n", cmd, what, e.text, e.column);
  return v;
}

/* ---------- the node each command needs ---------- */

/* Loads the configuration; returns -1 to go on, else the exit code. */
static int env_open(cenv *e, int *argc, char **argv) {
  memset(e, 0, sizeof *e);
  e->cmd = argv[0];
  int rc = cli_load_config(e->cmd, argc, argv, &e->args, &e->cfg);
  if (rc != 0) return rc;
  e->cfg_ok = true;
  return -1;
}

/* Opens and starts the node; on failure prints why and returns the node_open/node_start error
 * (the node, if any, is closed by env_close). */
static int env_node(cenv *e, node_options *o) {
  char err[1024];
  o->name = e->cmd;
  int rc = node_open(&e->cfg, o, &e->n, err, sizeof err);
  if (rc == 0) rc = node_start(e->n, err, sizeof err);
  if (rc != 0) fprintf(stderr, "peermcp %s: %s\n", e->cmd, err);
  return rc;
}

static void env_close(cenv *e) {
  node_close(e->n); /* stops it first: clients' connections GoAway, handles closed */
  e->n = NULL;
  if (e->cfg_ok) config_free(&e->cfg);
  config_args_free(&e->args);
}

/* A --peer target that cannot work is a usage error, said before anything is built: not a
 * dialable multiaddr nor a PeerId, or an address without /p2p/ when a token would be sent. */
static int check_targets(const cenv *e, const cli_opts *o) {
  char why[1600];
  for (size_t i = 0; i < o->n_peers; i++) {
    const char *t = o->peers[i];
    if (config_peer_by_name(&e->cfg, t)) continue; /* a name of p2p.peers: its multiaddr is checked at load */
    if (svc_target_problem(t, NULL, why, sizeof why)) {
      fprintf(stderr, "peermcp %s: --peer %s\n", e->cmd, why);
      return CLI_EXIT_USAGE;
    }
    if ((e->cfg.p2p.token || e->cfg.p2p.client_token) && t[0] == '/' && !strstr(t, "/p2p/")) {
      fprintf(stderr, "peermcp %s: --peer %s\n", e->cmd,
              svc_dial_error_text(NULL, t, NULL, -EDESTADDRREQ, why, sizeof why));
      return CLI_EXIT_USAGE;
    }
  }
  return -1;
}

/* A failure to reach the peer: the reply printed on stdout, and the sentence on stderr.
 * not_ready: svc_client_not_ready's sentence after a timeout (or NULL), said after it. */
static json_t *dial_failure(cenv *e, const char *target, const char *protocol, int err, const char *not_ready,
                            bool tool_shape) {
  char why[1600];
  svc_dial_error_text(e->n ? node_host(e->n) : NULL, target, protocol, err, why, sizeof why);
  if (not_ready) {
    size_t l = strlen(why);
    snprintf(why + l, sizeof why - l, ": %s", not_ready);
  }
  fprintf(stderr, "peermcp %s: %s\n", e->cmd, why);
  if (tool_shape)
    return json_pack("{s:b, s:s, s:s}", "isError", 1, "error", svc_dial_error_code(err), "detail", why);
  return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", svc_dial_error_code(err), "detail", why);
}

/* A client to target over a dialing node. Returns 0, or prints why and returns the exit code. */
static int env_client(cenv *e, const char *target, svc_client **out) {
  *out = NULL;
  node_options no = {.host = NODE_HOST_DIAL};
  if (!e->n && env_node(e, &no) != 0) return CLI_EXIT_FAIL; /* a second request reuses the node */
  (void)cli_find_peer(e->n, target); /* a bare PeerId not found: the dial below says so */
  int rc = node_dial(e->n, target, out);
  if (rc != 0) {
    *out = NULL;
    json_t *r = dial_failure(e, target, "/mcp+p2p/1.0.0", rc, NULL, false);
    json_decref(r);
    return rc == -EINVAL || rc == -EDESTADDRREQ ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
  }
  return 0;
}

/* ---------- one request, synchronously ---------- */

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

/* Runs op `msg` (stolen) on the peer or locally; *reply_out is the reply. Returns -1 when a
 * reply came, else the exit code (the failure printed). */
static int run_op(cenv *e, const cli_opts *o, json_t *msg, double timeout_s, json_t **reply_out) {
  *reply_out = NULL;
  json_t *reply = NULL;
  if (o->n_peers) {
    svc_client *c = NULL;
    int rc = env_client(e, o->peers[0], &c);
    if (rc != 0) {
      json_decref(msg);
      return rc;
    }
    sync_reply r = {0};
    if (svc_client_rpc(c, msg, (uint32_t)(timeout_s * 1000), sync_cb, &r) != 0) r.done = 1, r.err = -ENOMEM;
    while (!r.done) uv_run(node_loop(e->n), UV_RUN_ONCE);
    const char *not_ready = r.err == -ETIMEDOUT ? svc_client_not_ready(c) : NULL; /* static text */
    svc_client_close(c);
    if (r.err < 0) reply = dial_failure(e, o->peers[0], "/mcp+p2p/1.0.0", r.err, not_ready, false);
    else if (r.result) reply = json_incref(r.result);
    else reply = json_pack("{s:b, s:s, s:O?}", "ok", 0, "error", "rpc_error", "detail", r.error);
    json_decref(r.result);
    json_decref(r.error);
  } else {
    /* status reports a broken store (the serving node's health file says why), never dies on it */
    node_options no = {.store = true, .store_optional = strcmp(e->cmd, "status") == 0, .local_ops = true};
    if (!e->n && env_node(e, &no) != 0) {
      json_decref(msg);
      return CLI_EXIT_FAIL;
    }
    auth_ctx local;
    auth_ctx_local(&local);
    taskq_call call = {.auth = &local};
    reply = taskq_handle(node_taskq(e->n), msg, &call);
  }
  json_decref(msg);
  if (!reply) {
    fprintf(stderr, "peermcp %s: out of memory\n", e->cmd);
    return CLI_EXIT_FAIL;
  }
  /* p2p.encrypt (§4.5): a cache value read from a peer is shown decrypted */
  json_t *val = json_object_get(reply, "value");
  if (o->n_peers && e->cfg.p2p.encrypt && auth_fernet_is_wrapped(val)) {
    auth_fernet_key k;
    auth_fernet_key_derive(e->cfg.p2p.encryption_key ? e->cfg.p2p.encryption_key : e->cfg.p2p.token, &k);
    json_t *plain = auth_fernet_unwrap_json(&k, val);
    auth_fernet_key_wipe(&k);
    if (plain) json_object_set_new(reply, "value", plain);
    else json_object_set_new(reply, "decrypt_error", json_true());
  }
  *reply_out = reply;
  return -1;
}

/* Prints the reply; exit 0 when it says ok. */
static int print_reply(json_t *reply) {
  cli_print_json(reply);
  int rc = json_is_true(json_object_get(reply, "ok")) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
  json_decref(reply);
  return rc;
}

static json_t *not_found(json_t *reply, const char *task_id) {
  json_t *r = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "not_found", "task_id", task_id);
  json_t *pid = json_object_get(reply, "peer_id");
  if (r && pid) json_object_set(r, "peer_id", pid);
  json_decref(reply);
  return r;
}

static bool task_ended(const json_t *task) {
  const char *st = json_string_value(json_object_get(task, "status"));
  return st && (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0);
}

/* ---------- commands ---------- */

/* Loads the configuration and parses the flags; -1 to go on, else the exit code. */
static int cmd_begin(cenv *e, int *argc, char **argv, unsigned allowed, cli_opts *o) {
  memset(o, 0, sizeof *o);
  int rc = env_open(e, argc, argv);
  if (rc >= 0) return rc;
  rc = parse_opts(e->cmd, *argc, argv, allowed, o);
  if (rc >= 0) return rc;
  return check_targets(e, o);
}

int cli_task(int argc, char **argv) {
  cenv e;
  cli_opts o;
  int rc = cmd_begin(&e, &argc, argv, F_PEER | F_TYPE | F_MODEL | F_IDEM | F_STATUS | F_LIMIT | F_TIMEOUT, &o);
  if (rc >= 0) goto out;
  rc = CLI_EXIT_USAGE;
  const char *sub = o.n_pos ? o.pos[0] : "";
  static const struct {
    const char *sub;
    size_t npos;
    unsigned flags;
  } k_subs[] = {{"submit", 2, F_PEER | F_TYPE | F_MODEL | F_IDEM}, {"get", 2, F_PEER},
                {"cancel", 2, F_PEER},                             {"wait", 2, F_PEER | F_TIMEOUT},
                {"list", 1, F_PEER | F_STATUS | F_LIMIT}};
  size_t k = 0;
  while (k < sizeof k_subs / sizeof k_subs[0] && strcmp(k_subs[k].sub, sub) != 0) k++;
  if (k == sizeof k_subs / sizeof k_subs[0]) {
    rc = usage_error("task", o.n_pos ? "unknown subcommand \"%s\"%s" : "which subcommand?%s%s", sub, "");
    goto out;
  }
  if (o.n_pos != k_subs[k].npos) {
    rc = usage_error("task", o.n_pos < k_subs[k].npos ? "task %s: missing argument%s" : "task %s: too many arguments%s",
                     sub, "");
    goto out;
  }
  for (size_t f = 0; f < sizeof k_flags / sizeof k_flags[0]; f++)
    if ((o.given & k_flags[f].bit) && !(k_subs[k].flags & k_flags[f].bit)) {
      rc = usage_error("task", "%s is not an option of task %s", k_flags[f].name, sub);
      goto out;
    }
  json_t *m = NULL;
  double t = 35;
  if (strcmp(sub, "submit") == 0) {
    json_t *payload = parse_json_arg("task", "PAYLOAD_JSON", o.pos[1]);
    if (!payload) goto out;
    m = json_pack("{s:s, s:s, s:s, s:o}", "op", "submit", "task_type", o.type ? o.type : "tool.call", "model_name",
                  o.model ? o.model : "", "payload", payload);
    if (o.idem) json_object_set_new(m, "idempotency_key", json_string(o.idem));
  } else if (strcmp(sub, "get") == 0 || strcmp(sub, "cancel") == 0) {
    m = json_pack("{s:s, s:s}", "op", sub, "task_id", o.pos[1]);
  } else if (strcmp(sub, "wait") == 0) {
    double w = o.timeout_s > 0 ? o.timeout_s : 60;
    m = json_pack("{s:s, s:s, s:f}", "op", "wait", "task_id", o.pos[1], "timeout_s", w);
    t = w + 15;
  } else {
    m = json_pack("{s:s, s:I}", "op", "list", "limit", (json_int_t)(o.limit ? o.limit : 50));
    if (o.status) json_object_set_new(m, "status", json_string(o.status));
  }
  json_t *reply;
  if ((rc = run_op(&e, &o, m, t, &reply)) >= 0) goto out;
  bool ok = json_is_true(json_object_get(reply, "ok"));
  if (ok && (strcmp(sub, "get") == 0 || strcmp(sub, "wait") == 0) && json_is_null(json_object_get(reply, "task"))) {
    reply = not_found(reply, o.pos[1]); /* the op table answers an unknown id with task: null */
  } else if (ok && strcmp(sub, "wait") == 0 && !task_ended(json_object_get(reply, "task"))) {
    json_object_set_new(reply, "ok", json_false());
    json_object_set_new(reply, "error", json_string("wait_timeout"));
  } else if (ok && strcmp(sub, "cancel") == 0 && !json_is_true(json_object_get(reply, "cancelled")) &&
             !json_is_true(json_object_get(reply, "cancel_requested"))) {
    /* nothing was cancelled: an unknown id, or a task that had ended — ask which */
    json_t *g = NULL;
    if (run_op(&e, &o, json_pack("{s:s, s:s}", "op", "get", "task_id", o.pos[1]), 35, &g) < 0 && g &&
        json_is_true(json_object_get(g, "ok"))) {
      json_t *task = json_object_get(g, "task");
      if (json_is_null(task)) reply = not_found(reply, o.pos[1]);
      else json_object_set(reply, "status", json_object_get(task, "status"));
    }
    json_decref(g);
  }
  rc = print_reply(reply);
out:
  env_close(&e);
  return rc;
}

int cli_cache(int argc, char **argv) {
  cenv e;
  cli_opts o;
  int rc = cmd_begin(&e, &argc, argv, F_PEER | F_TTL, &o);
  if (rc >= 0) goto out;
  rc = CLI_EXIT_USAGE;
  const char *sub = o.n_pos ? o.pos[0] : "";
  json_t *m = NULL;
  bool one_key = strcmp(sub, "get") == 0 || strcmp(sub, "has") == 0 || strcmp(sub, "delete") == 0;
  if (!one_key && strcmp(sub, "set") != 0) {
    rc = usage_error("cache", o.n_pos ? "unknown subcommand \"%s\"%s" : "which subcommand?%s%s", sub, "");
    goto out;
  }
  if (o.n_pos != (one_key ? 2u : 3u)) {
    rc = usage_error("cache", "cache %s: wrong number of arguments%s", sub, "");
    goto out;
  }
  if (one_key && (o.given & F_TTL)) {
    rc = usage_error("cache", "--ttl is not an option of cache %s%s", sub, "");
    goto out;
  }
  if (one_key) {
    char op[32];
    snprintf(op, sizeof op, "cache.%s", sub);
    m = json_pack("{s:s, s:s}", "op", op, "key", o.pos[1]);
  } else {
    json_t *v = parse_json_arg("cache", "VALUE_JSON", o.pos[2]);
    if (!v) goto out;
    if (o.n_peers && e.cfg.p2p.encrypt) { /* the value rests encrypted in the peer's cache (§4.5) */
      auth_fernet_key k;
      auth_fernet_key_derive(e.cfg.p2p.encryption_key ? e.cfg.p2p.encryption_key : e.cfg.p2p.token, &k);
      json_t *w = auth_fernet_wrap_json(&k, v);
      auth_fernet_key_wipe(&k);
      json_decref(v);
      if (!(v = w)) goto out;
    }
    m = json_pack("{s:s, s:s, s:o}", "op", "cache.set", "key", o.pos[1], "value", v);
    if (o.given & F_TTL) json_object_set_new(m, "ttl_s", json_real(o.ttl_s));
  }
  json_t *reply;
  if ((rc = run_op(&e, &o, m, 15, &reply)) >= 0) goto out;
  rc = print_reply(reply);
out:
  env_close(&e);
  return rc;
}

int cli_status(int argc, char **argv) {
  cenv e;
  cli_opts o;
  int rc = cmd_begin(&e, &argc, argv, F_PEER | F_DETAIL, &o);
  if (rc >= 0) goto out;
  if (o.n_pos) {
    rc = usage_error("status", "unexpected argument \"%s\"%s", o.pos[0], "");
    goto out;
  }
  json_t *reply;
  if ((rc = run_op(&e, &o, json_pack("{s:s, s:b}", "op", "status", "detail", o.detail), 15, &reply)) >= 0) goto out;
  rc = print_reply(reply);
out:
  env_close(&e);
  return rc;
}

typedef struct local_call {
  int done;
  json_t *result;
  mcp_dispatch_status st;
} local_call;

static void local_call_done(void *ud, const mcp_call_outcome *out) {
  local_call *lc = ud;
  lc->done = 1;
  lc->st = out->status;
  lc->result = mcp_dispatch_call_result(out->envelope);
}

int cli_call(int argc, char **argv) {
  cenv e;
  cli_opts o;
  int rc = cmd_begin(&e, &argc, argv, F_PEER | F_TIMEOUT, &o);
  if (rc >= 0) goto out;
  rc = CLI_EXIT_USAGE;
  if (o.n_pos < 1 || o.n_pos > 2) {
    rc = usage_error("call", o.n_pos ? "too many arguments%s%s" : "which tool?%s%s", "", "");
    goto out;
  }
  json_t *args = o.n_pos == 2 ? parse_json_arg("call", "ARGS_JSON", o.pos[1]) : json_object();
  if (!args) goto out;
  if (!json_is_object(args)) {
    fprintf(stderr, "peermcp call: ARGS_JSON must be a JSON object\n");
    json_decref(args);
    goto out;
  }
  uint32_t tmo = (uint32_t)((o.timeout_s > 0 ? o.timeout_s : 30) * 1000);
  json_t *result = NULL;
  if (o.n_peers) {
    svc_client *c = NULL;
    if ((rc = env_client(&e, o.peers[0], &c)) != 0) {
      json_decref(args);
      goto out;
    }
    sync_reply r = {0};
    if (svc_client_call_tool(c, o.pos[0], args, false, tmo + 5000, sync_cb, &r) != 0) r.done = 1, r.err = -ENOMEM;
    while (!r.done) uv_run(node_loop(e.n), UV_RUN_ONCE);
    const char *not_ready = r.err == -ETIMEDOUT ? svc_client_not_ready(c) : NULL; /* static text */
    svc_client_close(c);
    if (r.err < 0) result = dial_failure(&e, o.peers[0], "/mcp+p2p/1.0.0", r.err, not_ready, true);
    else if (r.result) result = json_incref(r.result);
    else result = json_pack("{s:b, s:O?}", "isError", 1, "error", r.error);
    json_decref(r.result);
    json_decref(r.error);
  } else {
    node_options no = {.store = true, .tools = true};
    if (env_node(&e, &no) != 0) {
      json_decref(args);
      rc = CLI_EXIT_FAIL;
      goto out;
    }
    static const mcp_auth k_local = AUTH_CTX_LOCAL_INIT;
    mcp_call_request req = {.tool = o.pos[0], .args = args, .auth = &k_local, .timeout_ms = tmo};
    local_call lc = {0};
    if (mcp_dispatch_start(node_dispatcher(e.n), &req, local_call_done, &lc, NULL) != 0) lc.done = 1;
    while (!lc.done) uv_run(node_loop(e.n), UV_RUN_ONCE);
    result = lc.result;
  }
  json_decref(args);
  if (result) cli_print_json(result);
  rc = result && !json_is_true(json_object_get(result, "isError")) ? CLI_EXIT_OK : CLI_EXIT_FAIL;
  json_decref(result);
out:
  env_close(&e);
  return rc;
}

/* ---------- worker ---------- */

/* Before the worker's node dials its sources: bare PeerIds searched for, --discover's namespace
 * peers added, all as "<addr>/p2p/<id>" (a first, dialing-only node does the searching).
 * Returns 0, or an exit code. */
static int worker_targets(cenv *e, const cli_opts *o, char ***out, size_t *count) {
  *out = NULL;
  *count = 0;
  bool search = o->discover;
  for (size_t i = 0; i < o->n_peers && !search; i++) search = o->peers[i][0] != '/' && !config_peer_by_name(&e->cfg, o->peers[i]);
  if (!search) return 0;
  node_options dial = {.host = NODE_HOST_DIAL};
  if (env_node(e, &dial) != 0) return CLI_EXIT_FAIL;
  char **t = calloc(MAX_PEERS + 1, sizeof *t);
  size_t n = 0;
  int rc = t ? 0 : CLI_EXIT_FAIL;
  for (size_t i = 0; rc == 0 && i < o->n_peers; i++) {
    const char *p = o->peers[i];
    p2p_peer_info info;
    if (p[0] != '/' && !config_peer_by_name(&e->cfg, p) && cli_find_peer(e->n, p) == 0 &&
        p2p_host_peer_info(node_host(e->n), p, &info) == 0 && info.n_listen_addrs) {
      size_t len = strlen(info.listen_addrs[0]) + strlen(p) + 8;
      if ((t[n] = malloc(len))) snprintf(t[n], len, "%s/p2p/%s", info.listen_addrs[0], p);
    } else {
      t[n] = strdup(p); /* as given: the worker's node resolves names and known PeerIds itself */
    }
    if (!t[n]) rc = CLI_EXIT_FAIL;
    else n++;
  }
  if (rc == 0 && o->discover) {
    char **found;
    size_t nf;
    int drc = cli_discover_targets(e->n, &found, &nf);
    if (drc == -ENOTSUP) fprintf(stderr, "peermcp worker: --discover needs mDNS or the DHT (p2p.profile lan, private or public)\n");
    else if (drc == -ENOENT) log_write(LOG_WARNING, "worker: no peer of the namespace found", "{s:s}", "ns", e->cfg.p2p.rendezvous_ns);
    for (size_t i = 0; drc == 0 && i < nf; i++) {
      bool dup = false;
      for (size_t k = 0; k < n && !dup; k++) dup = strcmp(t[k], found[i]) == 0;
      if (!dup && n < MAX_PEERS) {
        t[n++] = found[i];
        found[i] = NULL;
      }
    }
    if (drc == 0) cli_free_targets(found, nf);
    if (drc == -ENOTSUP) rc = CLI_EXIT_USAGE;
  }
  node_close(e->n); /* the worker's node is built next */
  e->n = NULL;
  if (rc) {
    cli_free_targets(t, n);
    return rc;
  }
  *out = t;
  *count = n;
  return 0;
}

int cli_worker(int argc, char **argv) {
  cenv e;
  cli_opts o;
  char **targets = NULL;
  size_t n_targets = 0;
  int rc = cmd_begin(&e, &argc, argv, F_PEERS | F_SLOTS | F_ONCE | F_WORKER_ID | F_LEASE | F_DISCOVER, &o);
  if (rc >= 0) goto out;
  if (o.n_pos) {
    rc = usage_error("worker", "unexpected argument \"%s\"%s", o.pos[0], "");
    goto out;
  }
  if ((rc = worker_targets(&e, &o, &targets, &n_targets)) != 0) goto out;
  if (o.discover && !n_targets) {
    json_t *none = json_pack("{s:b, s:s}", "ok", 0, "error", "no_peers_found");
    cli_print_json(none);
    json_decref(none);
    rc = CLI_EXIT_FAIL;
    goto out;
  }
  node_workers_opts wo = {
      .slots = o.slots ? (unsigned)o.slots : 1,
      .worker_id = o.worker_id,
      .peers = targets ? (const char *const *)targets : (const char *const *)o.peers,
      .n_peers = targets ? n_targets : o.n_peers,
      .lease_seconds = o.lease_s > 0 ? o.lease_s : 60,
      .once = o.once,
      .stop_grace_ms = 2000,
  };
  node_options no = {
      .tools = true,
      .store = !wo.n_peers,
      .host = wo.n_peers ? NODE_HOST_DIAL : NODE_HOST_NONE,
      .signals = true, /* SIGINT/SIGTERM: stop claiming, release what runs after the grace period */
      .workers = &wo,
  };
  int nrc = env_node(&e, &no);
  if (nrc != 0) {
    rc = nrc == -EINVAL || nrc == -EDESTADDRREQ ? CLI_EXIT_USAGE : CLI_EXIT_FAIL; /* a bad --peer is a usage error */
    goto out;
  }
  uv_loop_t *loop = node_loop(e.n);
  log_write(LOG_INFO, "worker running", "{s:s, s:i, s:i}", "worker_id", node_worker_id(e.n), "peers", (int)wo.n_peers,
            "slots", (int)wo.slots);
  while (!node_stopping(e.n) && !(o.once && node_workers_finished(e.n))) uv_run(loop, UV_RUN_ONCE);
  taskq_runner_stats st;
  node_workers_stats(e.n, &st); /* before the stop: the clients are still there to explain */
  char why[1600] = "";
  if (st.claim_errors && !st.claims_answered)
    svc_dial_error_text(node_host(e.n), wo.n_peers ? wo.peers[0] : "the local queue", "/mcp+p2p/1.0.0",
                        st.last_claim_error, why, sizeof why);
  if (!node_stopping(e.n)) node_stop(e.n, NULL, NULL);
  if (node_run(e.n) != 0) {
    rc = CLI_EXIT_FAIL;
    goto out;
  }
  node_workers_stats(e.n, &st);
  /* No source ever answered a claim: nothing was asked at all, which is a failure — for --once
   * at once, for a long-running worker when it is stopped. */
  bool failed = st.claim_errors > 0 && st.claims_answered == 0;
  json_t *summary = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "ok", !failed, "worker_id",
                              node_worker_id(e.n), "claimed", (json_int_t)st.claimed, "completed",
                              (json_int_t)st.completed, "failed", (json_int_t)st.failed, "released",
                              (json_int_t)st.released, "lease_lost", (json_int_t)st.lease_lost, "claim_errors",
                              (json_int_t)st.claim_errors);
  if (failed && summary) {
    json_object_set_new(summary, "error", json_string(svc_dial_error_code(st.last_claim_error)));
    json_object_set_new(summary, "detail", json_string(why));
    fprintf(stderr, "peermcp worker: %s\n", why);
  }
  cli_print_json(summary);
  json_decref(summary);
  rc = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
  env_close(&e);
  cli_free_targets(targets, n_targets);
  return rc;
}
