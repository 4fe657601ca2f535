/* client.c — `peermcp call | task | cache | status | worker`: the P2P service from the command
 * line (p2p_tasks_spec.md §9, §10.1; issue 5 "Clients", "Workers").
 *
 * Each command builds the node it needs (src/node/node.h): with --peer TARGET (a multiaddr
 * with /p2p/<id>, a name of p2p.peers, or a bare PeerId — found in the announce file or the
 * peer table, else searched for with mDNS / the DHT when the profile turns them on:
 * cli/resolve.h) a dialing host, and the command
 * speaks /mcp+p2p/1.0.0 to that peer over one connection (service/client.h), with this node's
 * identity (<state_dir>/identity.key) and the configured token; without --peer the local
 * store (and, for `call` and `worker`, the tools) opened as `serve` opens them. Output: one JSON object
 * on stdout. Exit code: 0 when the reply says ok (or the tool call is not an error), 1 when
 * the operation failed, 2 for usage errors. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli/cli.h"
#include "cli/resolve.h"
#include "config/config.h"
#include "mcp/dispatch.h"
#include "auth/fernet.h"
#include "node/node.h"
#include "p2p/host/host.h"
#include "auth/auth.h"
#include "service/client.h"
#include "taskq/table.h"
#include "util/log.h"

#define MAX_PEERS 32

typedef struct cli_opts {
  const char *peers[MAX_PEERS];
  size_t n_peers;
  const char *pos[16];
  size_t n_pos;
  bool detail, once;
  double timeout_s; /* < 0: not given */
  const char *type, *model, *status, *worker_id, *idem;
  double ttl_s;
  bool has_ttl;
  long limit;
  unsigned slots;
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

static void usage(const char *cmd) {
  fprintf(stderr,
          "usage:\n"
          "  peermcp call [--peer TARGET] TOOL [ARGS_JSON]\n"
          "  peermcp task submit [--peer TARGET] [--type T] [--model M] [--idempotency-key K] PAYLOAD_JSON\n"
          "  peermcp task get|wait|cancel [--peer TARGET] [--timeout S] TASK_ID\n"
          "  peermcp task list [--peer TARGET] [--status S] [--limit N]\n"
          "  peermcp cache get|has|delete [--peer TARGET] KEY\n"
          "  peermcp cache set [--peer TARGET] [--ttl S] KEY VALUE_JSON\n"
          "  peermcp status [--peer TARGET] [--detail]\n"
          "  peermcp worker [--peer TARGET]... [--discover] [--slots N] [--once] [--worker-id ID] [--lease S]\n"
          "TARGET: /ip4/A/tcp/P/p2p/<PeerId>, a name of p2p.peers, or a bare PeerId (announce file,\n"
          "peer table, then mDNS / the DHT when p2p.profile turns them on).\n"
          "--discover: also serve every peer of the rendezvous namespace (p2p.rendezvous_ns).\n"
          "Common options:\n%s",
          config_args_help());
  (void)cmd;
}

/* ---------- argument parsing ---------- */

static int parse_opts(int argc, char **argv, cli_opts *o) {
  memset(o, 0, sizeof *o);
  o->timeout_s = -1;
  o->limit = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : NULL)
    if (strcmp(a, "--peer") == 0) {
      const char *v = NEXT();
      if (!v || o->n_peers == MAX_PEERS) return -1;
      o->peers[o->n_peers++] = v;
    } else if (strcmp(a, "--detail") == 0) {
      o->detail = true;
    } else if (strcmp(a, "--once") == 0) {
      o->once = true;
    } else if (strcmp(a, "--discover") == 0) {
      o->discover = true;
    } else if (strcmp(a, "--timeout") == 0) {
      const char *v = NEXT();
      if (!v) return -1;
      o->timeout_s = atof(v);
    } else if (strcmp(a, "--ttl") == 0) {
      const char *v = NEXT();
      if (!v) return -1;
      o->ttl_s = atof(v);
      o->has_ttl = true;
    } else if (strcmp(a, "--type") == 0) {
      if (!(o->type = NEXT())) return -1;
    } else if (strcmp(a, "--model") == 0) {
      if (!(o->model = NEXT())) return -1;
    } else if (strcmp(a, "--status") == 0) {
      if (!(o->status = NEXT())) return -1;
    } else if (strcmp(a, "--worker-id") == 0) {
      if (!(o->worker_id = NEXT())) return -1;
    } else if (strcmp(a, "--idempotency-key") == 0) {
      if (!(o->idem = NEXT())) return -1;
    } else if (strcmp(a, "--limit") == 0) {
      const char *v = NEXT();
      if (!v) return -1;
      o->limit = atol(v);
    } else if (strcmp(a, "--slots") == 0) {
      const char *v = NEXT();
      if (!v) return -1;
      o->slots = (unsigned)atoi(v);
    } else if (strcmp(a, "--lease") == 0) {
      const char *v = NEXT();
      if (!v) return -1;
      o->lease_s = atof(v);
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      return 1;
    } else if (a[0] == '-' && a[1] == '-' && a[2]) {
      fprintf(stderr, "unknown option %s\n", a);
      return -1;
    } else {
      if (o->n_pos == sizeof o->pos / sizeof o->pos[0]) return -1;
      o->pos[o->n_pos++] = a;
    }
#undef NEXT
  }
  return 0;
}

static json_t *parse_json_arg(const char *text) {
  json_error_t e;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
  if (!v) fprintf(stderr, "invalid JSON argument: %s (line %d column %d)\n", e.text, e.line, e.column);
  return v;
}

/* ---------- the node each command needs ---------- */

static int env_open(cenv *e, int *argc, char **argv) {
  memset(e, 0, sizeof *e);
  e->cmd = argv[0];
  config_args_init(&e->args);
  char err[1024];
  if (config_args_parse(&e->args, argc, argv, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp %s: %s\n", argv[0], err);
    return 2;
  }
  if (config_load(&e->cfg, &e->args, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp %s: %s\n", argv[0], err);
    return 1;
  }
  e->cfg_ok = true;
  log_set_level(e->cfg.log_level > LOG_WARNING ? e->cfg.log_level : LOG_WARNING);
  return 0;
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

/* A node that only dials out (--peer). */
static int env_dialer(cenv *e) {
  node_options o = {.host = NODE_HOST_DIAL};
  return env_node(e, &o);
}

static void env_close(cenv *e) {
  node_close(e->n); /* stops it first: clients' connections GoAway, handles closed */
  e->n = NULL;
  if (e->cfg_ok) config_free(&e->cfg);
  config_args_free(&e->args);
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

static void print_json(const json_t *v) {
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
  }
  fflush(stdout);
}

/* Runs op `msg` (stolen) on the peer or locally; prints the reply; returns the exit code. */
static int run_op(cenv *e, const cli_opts *o, json_t *msg, double timeout_s) {
  json_t *reply = NULL;
  if (o->n_peers) {
    if (env_dialer(e) != 0) {
      json_decref(msg);
      return 1;
    }
    (void)cli_find_peer(e->n, o->peers[0]); /* not found: the dial below reports it */
    svc_client *c = NULL;
    if (node_dial(e->n, o->peers[0], &c) != 0) {
      fprintf(stderr, "bad peer target %s\n", o->peers[0]);
      json_decref(msg);
      return 2;
    }
    sync_reply r = {0};
    if (svc_client_rpc(c, msg, (uint32_t)(timeout_s * 1000), sync_cb, &r) != 0) r.done = 1, r.err = -ENOMEM;
    while (!r.done) uv_run(node_loop(e->n), UV_RUN_ONCE);
    svc_client_close(c);
    if (r.err < 0) {
      const char *pid = p2p_host_peer_id(node_host(e->n));
      bool self = pid && strstr(o->peers[0], pid);
      reply = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "unreachable", "detail",
                        self ? "that is this node's own PeerId (use another --state-dir)" : strerror(-r.err));
    } else if (r.result) {
      reply = json_incref(r.result);
    } else {
      reply = json_pack("{s:b, s:s, s:O?}", "ok", 0, "error", "rpc_error", "detail", r.error);
    }
    json_decref(r.result);
    json_decref(r.error);
  } else {
    node_options no = {.store = true, .local_ops = true};
    if (env_node(e, &no) != 0) {
      json_decref(msg);
      return 1;
    }
    auth_ctx local;
    auth_ctx_local(&local);
    taskq_call call = {.auth = &local};
    reply = taskq_handle(node_taskq(e->n), msg, &call);
  }
  json_decref(msg);
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
  print_json(reply);
  int rc = json_is_true(json_object_get(reply, "ok")) ? 0 : 1;
  json_decref(reply);
  return rc;
}

/* ---------- commands ---------- */

static int cmd_begin(cenv *e, int *argc, char **argv, cli_opts *o) {
  int rc = env_open(e, argc, argv);
  if (rc) return rc;
  rc = parse_opts(*argc, argv, o);
  if (rc != 0) {
    usage(argv[0]);
    return rc > 0 ? 0 : 2;
  }
  return -1; /* go on */
}

int cli_task(int argc, char **argv) {
  cenv e;
  cli_opts o;
  int rc = cmd_begin(&e, &argc, argv, &o);
  if (rc >= 0) goto out;
  rc = 2;
  if (o.n_pos < 1) {
    usage(argv[0]);
    goto out;
  }
  const char *sub = o.pos[0];
  json_t *m = NULL;
  double t = 35;
  if (strcmp(sub, "submit") == 0 && o.n_pos == 2) {
    json_t *payload = parse_json_arg(o.pos[1]);
    if (!payload) goto out;
    m = json_pack("{s:s, s:s, s:s, s:o}", "op", "submit", "task_type", o.type ? o.type : "tool.call", "model_name",
                  o.model ? o.model : "", "payload", payload);
    if (o.idem) json_object_set_new(m, "idempotency_key", json_string(o.idem));
  } else if ((strcmp(sub, "get") == 0 || strcmp(sub, "cancel") == 0) && o.n_pos == 2) {
    m = json_pack("{s:s, s:s}", "op", sub, "task_id", o.pos[1]);
  } else if (strcmp(sub, "wait") == 0 && o.n_pos == 2) {
    double w = o.timeout_s >= 0 ? o.timeout_s : 60;
    m = json_pack("{s:s, s:s, s:f}", "op", "wait", "task_id", o.pos[1], "timeout_s", w);
    t = w + 15;
  } else if (strcmp(sub, "list") == 0 && o.n_pos == 1) {
    m = json_pack("{s:s, s:I}", "op", "list", "limit", (json_int_t)(o.limit > 0 ? o.limit : 50));
    if (o.status) json_object_set_new(m, "status", json_string(o.status));
  } else {
    usage(argv[0]);
    goto out;
  }
  rc = run_op(&e, &o, m, t);
out:
  env_close(&e);
  return rc;
}

int cli_cache(int argc, char **argv) {
  cenv e;
  cli_opts o;
  int rc = cmd_begin(&e, &argc, argv, &o);
  if (rc >= 0) goto out;
  rc = 2;
  if (o.n_pos < 2) {
    usage(argv[0]);
    goto out;
  }
  const char *sub = o.pos[0];
  json_t *m = NULL;
  if ((strcmp(sub, "get") == 0 || strcmp(sub, "has") == 0 || strcmp(sub, "delete") == 0) && o.n_pos == 2) {
    char op[32];
    snprintf(op, sizeof op, "cache.%s", sub);
    m = json_pack("{s:s, s:s}", "op", op, "key", o.pos[1]);
  } else if (strcmp(sub, "set") == 0 && o.n_pos == 3) {
    json_t *v = parse_json_arg(o.pos[2]);
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
    if (o.has_ttl) json_object_set_new(m, "ttl_s", json_real(o.ttl_s));
  } else {
    usage(argv[0]);
    goto out;
  }
  rc = run_op(&e, &o, m, o.timeout_s > 0 ? o.timeout_s + 2 : 15);
out:
  env_close(&e);
  return rc;
}

int cli_status(int argc, char **argv) {
  cenv e;
  cli_opts o;
  int rc = cmd_begin(&e, &argc, argv, &o);
  if (rc >= 0) goto out;
  json_t *m = json_pack("{s:s, s:b}", "op", "status", "detail", o.detail);
  rc = run_op(&e, &o, m, o.timeout_s > 0 ? o.timeout_s : 15);
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
  int rc = cmd_begin(&e, &argc, argv, &o);
  if (rc >= 0) goto out;
  rc = 2;
  if (o.n_pos < 1 || o.n_pos > 2) {
    usage(argv[0]);
    goto out;
  }
  json_t *args = o.n_pos == 2 ? parse_json_arg(o.pos[1]) : json_object();
  if (!args) goto out;
  if (!json_is_object(args)) {
    fprintf(stderr, "ARGS_JSON must be an object\n");
    json_decref(args);
    goto out;
  }
  uint32_t tmo = (uint32_t)((o.timeout_s > 0 ? o.timeout_s : 30) * 1000);
  json_t *result = NULL;
  if (o.n_peers) {
    rc = 1;
    if (env_dialer(&e) != 0) {
      json_decref(args);
      goto out;
    }
    (void)cli_find_peer(e.n, o.peers[0]);
    svc_client *c = NULL;
    if (node_dial(e.n, o.peers[0], &c) != 0) c = NULL;
    sync_reply r = {0};
    if (!c || svc_client_call_tool(c, o.pos[0], args, false, tmo + 5000, sync_cb, &r) != 0) r.done = 1, r.err = -EINVAL;
    while (!r.done) uv_run(node_loop(e.n), UV_RUN_ONCE);
    if (c) svc_client_close(c);
    if (r.err < 0) result = json_pack("{s:b, s:s, s:s}", "isError", 1, "error", "unreachable", "detail", strerror(-r.err));
    else if (r.result) result = json_incref(r.result);
    else result = json_pack("{s:b, s:O?}", "isError", 1, "error", r.error);
    json_decref(r.result);
    json_decref(r.error);
  } else {
    rc = 1;
    node_options no = {.store = true, .tools = true};
    if (env_node(&e, &no) != 0) {
      json_decref(args);
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
  if (result) print_json(result);
  rc = result && !json_is_true(json_object_get(result, "isError")) ? 0 : 1;
  json_decref(result);
out:
  env_close(&e);
  return rc;
}

/* ---------- worker ---------- */

/* Before the worker's node dials its sources: bare PeerIds searched for, --discover's namespace
 * peers added, all as "<addr>/p2p/<id>" (a first, dialing-only node does the searching). */
static int worker_targets(cenv *e, const cli_opts *o, char ***out, size_t *count) {
  *out = NULL;
  *count = 0;
  bool search = o->discover;
  for (size_t i = 0; i < o->n_peers && !search; i++) search = o->peers[i][0] != '/' && !config_peer_by_name(&e->cfg, o->peers[i]);
  if (!search) return 0;
  if (env_dialer(e) != 0) return 1;
  char **t = calloc(MAX_PEERS + 1, sizeof *t);
  size_t n = 0;
  int rc = t ? 0 : 1;
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
    if (!t[n]) rc = 1;
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
    if (drc == -ENOTSUP) rc = 2;
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
  int rc = cmd_begin(&e, &argc, argv, &o);
  if (rc >= 0) goto out;
  if ((rc = worker_targets(&e, &o, &targets, &n_targets)) != 0) goto out;
  if (o.discover && !n_targets) {
    json_t *none = json_pack("{s:b, s:s}", "ok", 0, "error", "no_peers_found");
    print_json(none);
    json_decref(none);
    rc = 1;
    goto out;
  }
  node_workers_opts wo = {
      .slots = o.slots ? o.slots : 1,
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
    rc = nrc == -EINVAL ? 2 : 1; /* a bad --peer target is a usage error */
    goto out;
  }
  uv_loop_t *loop = node_loop(e.n);
  log_write(LOG_WARNING, "worker running", "{s:s, s:i}", "worker_id", node_worker_id(e.n), "peers", (int)wo.n_peers);
  while (!node_stopping(e.n) && !(o.once && node_workers_finished(e.n))) uv_run(loop, UV_RUN_ONCE);
  if (!node_stopping(e.n)) node_stop(e.n, NULL, NULL);
  if (node_run(e.n) != 0) {
    rc = 1;
    goto out;
  }
  taskq_runner_stats st;
  node_workers_stats(e.n, &st);
  json_t *summary = json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:I}", "ok", 1, "worker_id", node_worker_id(e.n),
                              "claimed", (json_int_t)st.claimed, "completed", (json_int_t)st.completed, "failed",
                              (json_int_t)st.failed, "released", (json_int_t)st.released, "lease_lost",
                              (json_int_t)st.lease_lost);
  print_json(summary);
  json_decref(summary);
  rc = 0;
out:
  env_close(&e);
  cli_free_targets(targets, n_targets);
  return rc;
}
