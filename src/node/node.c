/* node.c — the composition root (see node.h). The start order is node_start, top to bottom;
 * the stop order is k_stop_steps below, run one step at a time by stop_advance: a step either
 * finishes at once or holds `pending` until its part calls back. */
#include "node/node.h"

#include <assert.h>
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/fernet.h"
#include "auth/jwt.h"
#include "auth/policy.h"
#include "p2p/host/nat.h"
#include "p2p/host/peers.h"
#include "node/statedir.h"
#include "util/fscheck.h"
#include "transport/http.h"
#include "transport/http_auth.h"
#include "transport/http_rules.h"
#include "transport/stdio.h"
#include "service/remote_source.h"
#include "service/service.h"
#include "taskq/local_source.h"
#include "tools/command.h"
#include "tools/mcp_tasks_queue.h"
#include "tools/meta.h"
#include "tools/node_resources.h"
#include "store/health.h"
#include "tools/store_tools.h"
#include "tools/system.h"
#include "tools/conformance.h"
#include "tools/testing.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/workpool.h"

/* How long the service drains in-flight requests at stop (step 2). */
#define NODE_SERVICE_DRAIN_MS 5000u
/* An own loop's final run, waiting for handles to finish closing, gives up after this. */
#define NODE_CLOSE_DEADLINE_MS 10000

typedef enum { NODE_OPEN = 0, NODE_STARTED, NODE_STOPPING, NODE_STOPPED } node_state;

typedef struct node_transport {
  const node_transport_ops *ops;
  void *self;
  bool started, stopped, freed;
} node_transport;

/* The built-in stdio transport (transport/stdio.h) as a node_transport. */
typedef struct node_stdio {
  node *n;
  mcp_stdio *st;
  int in_fd, out_fd;
  bool closed;
  void (*done)(void *arg);
  void *done_arg;
} node_stdio;

/* The Streamable HTTP transport (transport/http.h) as a node_transport. */
typedef struct node_http {
  node *n;
  mcp_http *h;
  void (*done)(void *arg);
  void *done_arg;
  char url_file[4096];
  bool metrics_only; /* the metrics listener (metrics.listen): /metrics, /healthz, /readyz */
} node_http;

struct node {
  const config *cfg;
  char name[32];
  node_options o;
  node_state state;

  uv_loop_t own_loop;
  uv_loop_t *loop;
  bool own, loop_ok;

  tq_queue *queue;
  ttlcache *cache;
  taskq_ctx *taskq;
  mcp_registry *reg;
  mcp_dispatcher *disp;
  svc_service *svc;
  p2p_discovery *disc;          /* mDNS / DHT / rendezvous of a serving node (p2p.profile); a
                                   service of the host, which closes it */
  p2p_nat *nat;                 /* AutoNAT / circuit relay / DCUtR (issue 16, p2p.autonat,
                                   p2p.relay, p2p.relay_hop, p2p.holepunch); a service of the
                                   host, which closes it */
  bool announce_sub;            /* subscribed to address changes: the announce files follow */
  mcp_tasks_queue *tasks;
  p2p_host *host;

  /* `peermcp worker` */
  bool has_workers;
  node_workers_opts wopts;
  char **peers;
  svc_client **wclients;
  taskq_source **wsources; /* one per peer, or the local queue */
  size_t n_wsources;
  taskq_runner *workers;
  char worker_id[256];

  uv_signal_t sigint, sigterm;
  bool signals_on;
  int signal_count;
  uv_timer_t maint;
  bool maint_on, maint_running;
  char store_err[600];      /* store_optional: why the store could not be opened */
  uv_timer_t metrics_timer; /* every METRICS_WINDOW_STEP_S: queue counts, the status window */
  bool metrics_on, metrics_running;

  /* authorization (one policy and one JWT validator for every transport) */
  auth_policy *policy;
  auth_jwt *jwt;
  auth_ctx stdio_auth;
  http_auth http_auth;
  uv_fs_poll_t jwks_poll;
  uv_signal_t sighup;
  bool jwks_poll_on, sighup_on;
  bool reload_busy, reload_again, reload_force;
  int reload_rc;
  char reload_err[320];

  node_transport tr[NODE_MAX_TRANSPORTS];
  size_t n_tr;
  node_stdio stdio;
  node_http http;
  node_http metrics_http;

  /* the stop sequence */
  /* the state directory's lock (serve) and the announce files this node wrote (statedir.h) */
  statedir_lock *lock;
  char announced_pid[160];
  char *announced[2];

  size_t step;
  int pending;
  bool advancing;
  void (*done)(void *ud);
  void *done_ud;
  bool error_logged; /* node_open: the failure was logged where it happened */
};

/* ---------- small helpers ---------- */

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Logs "<name>: msg" with extra fields (a jansson pack format, may be NULL). */
static void nlog(const node *n, log_level lv, const char *msg, const char *fmt, ...) {
  if (lv < log_get_level()) return;
  char full[256];
  snprintf(full, sizeof full, "%s: %s", n->name, msg);
  va_list ap;
  va_start(ap, fmt);
  log_vwrite(lv, full, fmt, ap);
  va_end(ap);
}


/* The state directory exists (fscheck_mkdir_p ran): it must be a directory this process can write and
 * enter — the queue, the cache, the identity key and the announce files live there. A state
 * directory that cannot be used is a start-up error, not a node whose store tools answer
 * "disabled". (Root passes access(2) on any directory of a writable file system.) */
static int check_state_dir(const char *dir, char *err, size_t errlen) {
  struct stat sb;
  if (stat(dir, &sb) != 0) {
    int e = -errno;
    seterr(err, errlen, "cannot use the state directory %s: %s", dir, strerror(-e));
    return e;
  }
  if (!S_ISDIR(sb.st_mode)) {
    seterr(err, errlen, "the state directory %s is not a directory (--state-dir / PEERMCP_STATE_DIR names a file)", dir);
    return -ENOTDIR;
  }
  if (access(dir, W_OK | X_OK) != 0) {
    int e = -errno;
    seterr(err, errlen, "the state directory %s is not writable by this user (uid %u): %s", dir, (unsigned)geteuid(),
           strerror(-e));
    return e;
  }
  return 0;
}

/* ---------- node_open: store, op table, tools, dispatcher ---------- */

/* The directory a store file or directory lives in: created when missing, then checked like the
 * state directory (what = "the queue's directory", "the cache directory"). */
static int usable_dir(const char *dir, const char *what, char *err, size_t errlen) {
  int rc = fscheck_mkdir_p(dir);
  if (rc != 0) {
    seterr(err, errlen, "cannot create %s %s: %s", what, dir, strerror(-rc));
    return rc;
  }
  struct stat sb;
  if (stat(dir, &sb) != 0) {
    rc = -errno;
    seterr(err, errlen, "cannot use %s %s: %s", what, dir, strerror(-rc));
    return rc;
  }
  if (!S_ISDIR(sb.st_mode)) {
    seterr(err, errlen, "%s %s is not a directory", what, dir);
    return -ENOTDIR;
  }
  if (access(dir, W_OK | X_OK) != 0) {
    rc = -errno;
    seterr(err, errlen, "%s %s is not writable by this user (uid %u): %s", what, dir, (unsigned)geteuid(),
           strerror(-rc));
    return rc;
  }
  return 0;
}

/* A store path that exists must not be a symbolic link (another local user could have planted
 * one to make us write elsewhere) and must be ours: a regular file (the queue) or a private
 * directory (the cache). The store opens it without following links too (SQLITE_OPEN_NOFOLLOW,
 * O_NOFOLLOW), so a link planted after this check is refused as well, with a vaguer message. */
static int not_planted(const char *path, const char *what, bool dir, char *err, size_t errlen) {
  struct stat sb;
  if (lstat(path, &sb) != 0) return 0; /* absent: created by us */
  if (S_ISLNK(sb.st_mode)) {
    seterr(err, errlen, "%s %s is a symbolic link; refusing to follow it (point the configuration at the real path)",
           what, path);
    return -ELOOP;
  }
  /* another kind (a file as the cache, a directory as the queue) is reported by the open */
  if (dir) return S_ISDIR(sb.st_mode) ? fscheck_private_dir(&sb, path, what, err, errlen) : 0;
  return S_ISREG(sb.st_mode) ? fscheck_own_file(&sb, path, what, err, errlen) : 0;
}

/* Opens the queue and the cache from the configuration. A store that cannot be opened is a
 * start-up error naming the path and the reason (the store's own log line has the details),
 * never a node whose store tools answer "disabled". */
/* A store that breaks later, while serving, is reported, not hidden (store/health.h): the
 * metrics job probes both every 5 s; status, server_info, p2p_service_status, the store tools'
 * errors and /readyz say which is down, why and which file. */
static int open_store(node *n, char *err, size_t errlen) {
  const config *cfg = n->cfg;
  char qdir[4096];
  snprintf(qdir, sizeof qdir, "%s", cfg->queue.path);
  char *slash = strrchr(qdir, '/');
  int rc = 0;
  if (slash && slash != qdir) {
    *slash = 0;
    if ((rc = usable_dir(qdir, "the queue's directory", err, errlen)) != 0) return rc;
  }
  if ((rc = not_planted(cfg->queue.path, "the task queue", false, err, errlen)) != 0) return rc;
  tq_options qo;
  tq_options_default(&qo);
  qo.path = cfg->queue.path;
  qo.max_payload_bytes = cfg->queue.max_payload_bytes;
  qo.lease_seconds = cfg->queue.lease_seconds;
  qo.max_attempts = (int)cfg->queue.max_attempts;
  qo.wait_max_seconds = cfg->queue.wait_max_seconds;
  qo.group_commit = cfg->queue.group_commit;
  qo.wal_prefill = cfg->queue.wal_prefill;
  qo.sync_pipeline = cfg->queue.sync_pipeline;
  qo.prune_after_seconds = cfg->queue.prune_after_seconds;
  rc = tq_open(&qo, &n->queue);
  if (rc != 0) {
    n->queue = NULL;
    seterr(err, errlen, "cannot open the task queue %s: %s", cfg->queue.path,
           rc == -ENOTSUP ? "not an SQLite database (a Python DuckDB file cannot be shared: point queue.path at a new file)"
                          : tq_strerror(rc));
    return rc;
  }
  if ((rc = not_planted(cfg->cache.dir, "the cache directory", true, err, errlen)) != 0 ||
      (rc = usable_dir(cfg->cache.dir, "the cache directory", err, errlen)) != 0)
    return rc;
  ttlcache_options co;
  ttlcache_options_default(&co);
  co.dir = cfg->cache.dir;
  co.max_bytes = cfg->cache.max_bytes;
  co.max_entries = cfg->cache.max_entries;
  co.max_value_bytes = cfg->cache.max_value_bytes;
  co.default_ttl_seconds = cfg->cache.default_ttl_seconds;
  co.sweep_interval_seconds = cfg->cache.sweep_interval_seconds;
  rc = ttlcache_open(&co, &n->cache);
  if (rc != 0) {
    n->cache = NULL;
    seterr(err, errlen, "cannot open the cache %s: %s", cfg->cache.dir, strerror(-rc));
    return rc;
  }
  return 0;
}

/* <state_dir>/health.json: the status figures of the node serving this state directory
 * (metrics_health_json, with its pid), rewritten by its metrics job every 5 s, so that
 * `peermcp status` without --peer shows the running node's figures, not its own. */
static void health_path(const node *n, char *out, size_t cap) { snprintf(out, cap, "%s/health.json", n->cfg->state_dir); }

static void write_health_file(node *n) {
  json_t *h = metrics_health_json();
  if (!h) return;
  json_object_set_new(h, "pid", json_integer((json_int_t)getpid()));
  if (n->o.store) json_object_set_new(h, "storage", store_health_json(n->queue, n->cache, true));
  json_object_set_new(h, "written_at", json_real(clock_wall_s()));
  char path[4096], tmp[4200];
  health_path(n, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (json_dump_file(h, tmp, JSON_COMPACT) == 0) (void)!rename(tmp, path);
  json_decref(h);
}

/* status of the local op table: the serving node's figures when one runs (its pid is alive and
 * the file is at most a minute old); otherwise the reply keeps this process's own. */
static json_t *local_status_hook(void *ud, bool detail) {
  node *n = ud;
  (void)detail;
  char path[4096];
  health_path(n, path, sizeof path);
  json_t *h = json_load_file(path, 0, NULL);
  json_int_t pid = json_integer_value(json_object_get(h, "pid"));
  double at = json_number_value(json_object_get(h, "written_at"));
  if (!json_is_object(h) || pid <= 0 || kill((pid_t)pid, 0) != 0 || clock_wall_s() - at > 60) {
    json_decref(h);
    /* no node serves this state directory: the stores this process opened (or why it could not) */
    if (n->store_err[0]) return json_pack("{s:{s:b, s:s}}", "storage", "ok", 0, "open_error", n->store_err);
    return n->o.store ? json_pack("{s:o}", "storage", store_health_json(n->queue, n->cache, true)) : NULL;
  }
  json_t *st = json_object_get(h, "storage"); /* the serving node's stores, at the top as over P2P */
  return st ? json_pack("{s:O, s:o}", "storage", st, "health", h) : json_pack("{s:o}", "health", h);
}

/* The op table over the local store, as the local operator (no token, no PeerId). */
static int open_local_ops(node *n) {
  taskq_config tc;
  taskq_config_default(&tc);
  tc.status_hook = local_status_hook;
  tc.status_ud = n;
  tc.queue = n->queue;
  tc.cache = n->cache;
  tc.peer_id = "local";
  tc.wait_max_s = n->cfg->queue.wait_max_seconds ? n->cfg->queue.wait_max_seconds : 300;
  n->taskq = taskq_new(&tc);
  return n->taskq ? 0 : -ENOMEM;
}

/* ---------- authorization ---------- */

/* The policy every transport presents credentials to: trusted peers, the shared token, and —
 * with auth.jwt and a part that serves (the service, HTTP) — the JWT validator, whose JWK Set
 * is loaded now. */
static int open_auth(node *n, char *err, size_t errlen) {
  const config *cfg = n->cfg;
  int rc;
  if (!(n->policy = auth_policy_new())) return -ENOMEM;
  for (size_t i = 0; i < cfg->p2p.trusted_peer_count; i++)
    if ((rc = auth_policy_add_peer(n->policy, cfg->p2p.trusted_peers[i], NULL)) != 0) {
      seterr(err, errlen, "p2p.trusted_peers: bad PeerId %s", cfg->p2p.trusted_peers[i]);
      return rc;
    }
  /* the shared token comes from config only (IPFS_ACCELERATE_PY_TASK_P2P_TOKEN / …) */
  if ((rc = auth_policy_set_token(n->policy, cfg->p2p.token, NULL)) != 0) {
    seterr(err, errlen, "p2p.token: longer than %d bytes", AUTH_MAX_TOKEN);
    return rc;
  }
  bool serves = n->o.service || (n->o.http && cfg->http.listen_count);
  if (!cfg->auth.jwt.enabled || !serves) return 0;
  unsigned algs = 0;
  for (size_t i = 0; i < cfg->auth.jwt.algorithm_count; i++) {
    unsigned bit = 0;
    if (auth_jwt_alg_parse(cfg->auth.jwt.algorithms[i], &bit) != 0) {
      seterr(err, errlen, "auth.jwt.algorithms: unknown algorithm %s", cfg->auth.jwt.algorithms[i]);
      return -EINVAL;
    }
    algs |= bit;
  }
  auth_jwt_opts jo = {
      .issuer = cfg->auth.jwt.issuer,
      .audience = cfg->auth.jwt.audience,
      .algorithms = algs,
      .leeway_s = cfg->auth.jwt.leeway_s,
      .jwks_file = cfg->auth.jwt.jwks_file,
      .hs256_secret = (const unsigned char *)cfg->auth.jwt.hs256_secret,
      .hs256_secret_len = cfg->auth.jwt.hs256_secret ? strlen(cfg->auth.jwt.hs256_secret) : 0,
      .cache_entries = cfg->auth.jwt.cache_entries,
  };
  char why[400] = "";
  if ((rc = auth_jwt_new(&jo, &n->jwt, why, sizeof why)) != 0) {
    n->jwt = NULL;
    seterr(err, errlen, "%s", why[0] ? why : strerror(-rc));
    return rc;
  }
  auth_policy_set_jwt(n->policy, n->jwt, cfg->auth.jwt.require_peer_binding);
  nlog(n, LOG_INFO, "JWT validation on", "{s:s, s:s, s:s*, s:I}", "issuer", cfg->auth.jwt.issuer, "audience",
       cfg->auth.jwt.audience, "jwks_file", cfg->auth.jwt.jwks_file, "keys", (json_int_t)auth_jwt_key_count(n->jwt));
  return 0;
}

/* The local stdio client: the operator, with stdio.scopes (default every scope). Runs after
 * the command tools interned their scope names. */
static int open_stdio_auth(node *n, char *err, size_t errlen) {
  const config *cfg = n->cfg;
  auth_ctx_local(&n->stdio_auth);
  n->stdio_auth.transport = AUTH_TR_STDIO;
  if (!cfg->stdio.scopes) return 0;
  auth_scopes set = AUTH_SCOPES(0);
  for (size_t i = 0; i < cfg->stdio.scope_count; i++) {
    auth_scopes one;
    if (auth_scopes_parse(cfg->stdio.scopes[i], &one) != 0) {
      seterr(err, errlen, "stdio.scopes[%zu]: unknown scope \"%s\" (the node's: cache.read, cache.write, task.submit, "
             "worker, tool.call, admin; \"*\" for all; or one a command tool declares)", i, cfg->stdio.scopes[i]);
      return -EINVAL;
    }
    auth_scopes_union(&set, &one);
  }
  n->stdio_auth.scopes = set;
  return 0;
}

/* JWK Set rotation: a uv_fs_poll notices the file change (its stat runs on libuv's pool) or
 * SIGHUP asks; the file is read and parsed on the dispatcher's pool, never on the loop. */
static void reload_work(void *arg) {
  node *n = arg;
  n->reload_err[0] = 0;
  n->reload_rc = auth_jwt_reload(n->jwt, n->reload_force, n->reload_err, sizeof n->reload_err);
}

static void schedule_reload(node *n, bool force);

static void reload_done(void *arg) {
  node *n = arg;
  n->reload_busy = false;
  if (n->reload_rc > 0)
    nlog(n, LOG_NOTICE, "JWK Set reloaded", "{s:s, s:I}", "jwks_file", auth_jwt_jwks_file(n->jwt), "keys",
         (json_int_t)auth_jwt_key_count(n->jwt));
  else if (n->reload_rc < 0)
    nlog(n, LOG_ERROR, "JWK Set not reloaded; the previous keys stay in force", "{s:s}", "error", n->reload_err);
  if (n->reload_again && n->state == NODE_STARTED) schedule_reload(n, n->reload_force);
}

static void schedule_reload(node *n, bool force) {
  if (!n->jwt || !auth_jwt_jwks_file(n->jwt) || !n->disp) return;
  if (n->reload_busy) {
    n->reload_again = true;
    n->reload_force |= force;
    return;
  }
  n->reload_again = false;
  n->reload_force = force;
  if (workpool_submit(mcp_dispatcher_pool(n->disp), reload_work, reload_done, n) == 0) n->reload_busy = true;
}

static void on_jwks_change(uv_fs_poll_t *h, int status, const uv_stat_t *prev, const uv_stat_t *curr) {
  (void)status, (void)prev, (void)curr;
  schedule_reload(h->data, false);
}

static void on_sighup(uv_signal_t *h, int signum) {
  (void)signum;
  node *n = h->data;
  nlog(n, LOG_INFO, "SIGHUP: reloading the JWK Set", NULL);
  schedule_reload(n, true);
}

static void start_auth_watch(node *n) {
  const char *f = n->jwt ? auth_jwt_jwks_file(n->jwt) : NULL;
  if (!f) return;
  if (uv_fs_poll_init(n->loop, &n->jwks_poll) == 0) {
    n->jwks_poll.data = n;
    n->jwks_poll_on = true;
    if (uv_fs_poll_start(&n->jwks_poll, on_jwks_change, f, 2000) != 0)
      nlog(n, LOG_WARNING, "cannot watch the JWK Set; reload it with SIGHUP", "{s:s}", "jwks_file", f);
  }
  if (n->o.signals && uv_signal_init(n->loop, &n->sighup) == 0) {
    n->sighup.data = n;
    n->sighup_on = true;
    uv_signal_start(&n->sighup, on_sighup, SIGHUP);
  }
}

/* Registry: built-in tools, command tools, the service's tools; then tools.disabled. */
static int open_tools(node *n, char *err, size_t errlen) {
  const config *cfg = n->cfg;
  int rc;
  if (!(n->reg = mcp_registry_new())) return -ENOMEM;
  if ((rc = tools_system_register(n->reg, cfg->tools.test_tools, n->queue, n->cache)) != 0) {
    seterr(err, errlen, "cannot register the system tools: %s", strerror(-rc));
    return rc;
  }
  if ((rc = tools_meta_register(n->reg)) != 0) {
    seterr(err, errlen, "cannot register the meta-tools: %s", strerror(-rc));
    return rc;
  }
  if ((rc = store_tools_register(n->reg, n->queue, n->cache)) != 0) {
    seterr(err, errlen, "cannot register the queue/cache tools: %s", strerror(-rc));
    return rc;
  }
  if ((rc = tools_node_resources_register(n->reg, n->queue)) != 0) {
    seterr(err, errlen, "cannot register the node's resources and prompts: %s", strerror(-rc));
    return rc;
  }
  if (cfg->tools.test_tools && (rc = tools_testing_register(n->reg)) != 0) {
    seterr(err, errlen, "cannot register the testing tools: %s", strerror(-rc));
    return rc;
  }
  if (cfg->tools.conformance_fixtures && (rc = tools_conformance_register(n->reg)) != 0) {
    seterr(err, errlen, "cannot register the conformance fixtures: %s", strerror(-rc));
    return rc;
  }
  char why[1024];
  why[0] = 0;
  if ((rc = tools_command_register(n->reg, cfg, why, sizeof why)) != 0) {
    nlog(n, LOG_DEBUG, "bad command tool", "{s:s}", "error", why); /* the caller prints err */
    n->error_logged = true;
    seterr(err, errlen, "%s", why[0] ? why : strerror(-rc));
    return rc;
  }
  if (n->o.service && (rc = svc_service_new(cfg, n->policy, n->queue, n->cache, n->reg, &n->svc)) != 0) {
    n->svc = NULL;
    seterr(err, errlen, "cannot set up the p2p service: %s", strerror(-rc));
    return rc;
  }
  /* tools.disabled removes built-in tools too (command tools named there were never added) */
  for (size_t i = 0; i < cfg->tools.disabled_count; i++)
    if (mcp_registry_remove(n->reg, cfg->tools.disabled[i]) == 0)
      nlog(n, LOG_INFO, "tool disabled by configuration", "{s:s}", "tool", cfg->tools.disabled[i]);
  mcp_dispatcher_opts dopts = {.default_timeout_ms = cfg->tool_timeout_ms, .threads = cfg->workers_threads,
                               .long_threads = cfg->workers_long_threads, .long_queue = cfg->workers_long_queue,
                               .idle_exit_ms = cfg->workers_idle_seconds * 1000u,
                               .access_log = cfg->log.access == CONFIG_ACCESS_ON    ? MCP_ACCESS_LOG_ON
                                             : cfg->log.access == CONFIG_ACCESS_OFF ? MCP_ACCESS_LOG_OFF
                                                                                    : MCP_ACCESS_LOG_DEBUG};
  if ((rc = mcp_dispatcher_new(n->loop, n->reg, &dopts, &n->disp)) != 0) {
    n->disp = NULL;
    seterr(err, errlen, "cannot start the dispatcher: %s", strerror(-rc));
    return rc;
  }
  return 0;
}

/* ---------- the stdio transport ---------- */

static void stdio_on_closed(void *ud) {
  node_stdio *s = ud;
  s->closed = true;
  if (s->done) {
    void (*done)(void *) = s->done;
    s->done = NULL;
    done(s->done_arg);
  } else if (!node_stopping(s->n) && s->n->http.h) {
    nlog(s->n, LOG_INFO, "stdio closed; HTTP goes on until a signal", NULL);
  } else if (!node_stopping(s->n)) {
    nlog(s->n, LOG_INFO, "stdio closed; shutting down", NULL);
    node_stop(s->n, NULL, NULL);
  }
}

static int stdio_start(void *self, node *n) {
  node_stdio *s = self;
  /* The local stdio client is the operator, with stdio.scopes (default: every scope). */
  mcp_stdio_opts so = {
      .in_fd = s->in_fd,
      .out_fd = s->out_fd,
      .max_line_bytes = n->cfg->max_line_bytes,
      .session = {.dispatcher = n->disp, .auth = &n->stdio_auth, .page_size = n->cfg->page_size,
                  .tasks = node_mcp_tasks(n)},
      .on_closed = stdio_on_closed,
      .ud = s,
  };
  int rc = mcp_stdio_start(n->loop, &so, &s->st);
  if (rc != 0) s->st = NULL;
  return rc;
}

static void stdio_stop(void *self, void (*done)(void *arg), void *arg) {
  node_stdio *s = self;
  if (s->closed || !s->st) {
    done(arg);
    return;
  }
  s->done = done;
  s->done_arg = arg;
  mcp_stdio_stop(s->st); /* on_closed once in-flight calls have drained and output is flushed */
}

static void stdio_cancel(void *self) {
  node_stdio *s = self;
  if (s->st && !s->closed) mcp_stdio_stop(s->st); /* a second stop cancels every call in flight */
}

static void stdio_free(void *self) {
  node_stdio *s = self;
  if (s->st) mcp_stdio_free(s->st);
  s->st = NULL;
}

static const node_transport_ops k_stdio_ops = {
    .name = "stdio", .start = stdio_start, .stop = stdio_stop, .cancel = stdio_cancel, .free = stdio_free};

/* ---------- the HTTP transport ---------- */

static void http_stopped(void *ud) {
  node_http *s = ud;
  void (*done)(void *) = s->done;
  s->done = NULL;
  if (done) done(s->done_arg);
}

/* GET (or HEAD) /metrics on every HTTP listener: the Prometheus text exposition. */
static bool metrics_route(void *ud, const char *method, const char *path, mcp_http_reply *out) {
  (void)ud;
  if (strcmp(path, "/metrics") != 0) return false;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    out->status = 405;
    out->content_type = "text/plain";
    out->body = strdup("method not allowed\n");
    out->body_len = out->body ? strlen(out->body) : 0;
    return true;
  }
  size_t len = 0;
  out->body = metrics_render(&len);
  out->body_len = out->body ? len : 0;
  out->status = out->body ? 200 : 503;
  out->content_type = METRICS_CONTENT_TYPE;
  return true;
}

/* The HTTP listener's extra GET routes: /metrics, and the OAuth protected-resource metadata when
 * auth.jwt is set (transport/http_auth.h). */
static bool node_http_route(void *ud, const char *method, const char *path, mcp_http_reply *out) {
  node *n = ud;
  if (metrics_route(n, method, path, out)) return true;
  return n->jwt && http_auth_route(&n->http_auth, method, path, out);
}

/* The metrics listener's address for people and tests: {"url": "http://HOST:PORT/metrics"}. */
static void write_metrics_file(node *n, const char *mcp_url) {
  char path[4096], tmp[4200], url[160];
  snprintf(url, sizeof url, "%.*s/metrics", (int)(strlen(mcp_url) > 4 ? strlen(mcp_url) - 4 : 0), mcp_url);
  snprintf(path, sizeof path, "%s/metrics.json", n->cfg->state_dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  fprintf(f, "{\"url\": \"%s\"}\n", url);
  if (fclose(f) == 0) (void)!rename(tmp, path);
  nlog(n, LOG_INFO, "metrics listening", "{s:s}", "url", url);
}

/* /readyz of both listeners: not ready while a configured store is down (MHD's thread). */
static bool stores_ready(void *ud, char *why, size_t whylen) {
  node *n = ud;
  return !n->o.store || store_health_ready(n->queue, n->cache, why, whylen);
}

static int http_start(void *self, node *n) {
  node_http *s = self;
  const config *c = n->cfg;
  snprintf(s->url_file, sizeof s->url_file, "%s/http.json", c->state_dir);
  if (s->metrics_only) {
    mcp_http_opts mo = {
        .listen = (const char *const *)&c->metrics.listen,
        .n_listen = 1,
        .dispatcher = n->disp,
        .allow_unauthenticated = true, /* it serves no MCP: nothing to authenticate */
        .max_connections = 64,
        .route = metrics_route,
        .route_ud = n,
        .ready_check = stores_ready,
        .ready_ud = n,
        .no_mcp = true,
    };
    char err[512];
    int rc = mcp_http_start(n->loop, &mo, &s->h, err, sizeof err);
    if (rc != 0) {
      nlog(n, LOG_ERROR, "metrics listener failed", "{s:s, s:s}", "listen", c->metrics.listen, "error", err);
      s->h = NULL;
      return rc;
    }
    write_metrics_file(n, mcp_http_url(s->h, 0));
    mcp_http_set_ready(s->h, !n->o.store || (n->queue && n->cache));
    return 0;
  }
  mcp_http_opts ho = {
      .listen = (const char *const *)c->http.listen,
      .n_listen = c->http.listen_count,
      .dispatcher = n->disp,
      .tasks = node_mcp_tasks(n),
      .page_size = c->page_size,
      .allowed_origins = (const char *const *)c->http.allowed_origins,
      .n_allowed_origins = c->http.allowed_origin_count,
      .allowed_hosts = (const char *const *)c->http.allowed_hosts,
      .n_allowed_hosts = c->http.allowed_host_count,
      .allow_unauthenticated = c->http.allow_unauthenticated,
      .session_idle_seconds = c->http.session_idle_seconds,
      .max_sessions = c->http.max_sessions,
      .max_connections = c->http.max_connections,
      .max_body_bytes = c->http.max_body_bytes,
      .max_header_bytes = c->http.max_header_bytes,
      .request_timeout_seconds = c->http.request_timeout_seconds,
      .idle_timeout_seconds = c->http.idle_timeout_seconds,
      .sse_keepalive_seconds = c->http.sse_keepalive_seconds,
      .url_file = s->url_file,
      .route = node_http_route,
      .route_ud = n,
      .ready_check = stores_ready,
      .ready_ud = n,
  };
  /* An OAuth 2.1 resource server when auth.jwt is set (transport/http_auth.h) */
  if (n->jwt) {
    n->http_auth.policy = n->policy;
    n->http_auth.authorization_servers = (const char *const *)c->auth.authorization_servers;
    n->http_auth.n_authorization_servers = c->auth.authorization_server_count;
    ho.authenticate = http_auth_authenticate;
    ho.auth_ud = &n->http_auth;
  }
  char err[512];
  int rc = mcp_http_start(n->loop, &ho, &s->h, err, sizeof err);
  if (rc != 0) {
    s->h = NULL;
    return rc;
  }
  http_auth_set_resource(&n->http_auth, c->auth.resource ? c->auth.resource : mcp_http_url(s->h, 0));
  /* /readyz: storage open (the node got this far, so every listener is up) */
  mcp_http_set_ready(s->h, !n->o.store || (n->queue && n->cache));
  return 0;
}

static void http_stop(void *self, void (*done)(void *arg), void *arg) {
  node_http *s = self;
  if (!s->h) {
    done(arg);
    return;
  }
  s->done = done;
  s->done_arg = arg;
  mcp_http_stop(s->h, http_stopped, s); /* new requests 503; in-flight ones finish; listeners close */
}

static void http_cancel(void *self) {
  node_http *s = self;
  if (s->h) mcp_http_cancel(s->h);
}

static void http_free(void *self) {
  node_http *s = self;
  if (s->h) mcp_http_free(s->h); /* before the dispatcher: its sessions hold calls */
  s->h = NULL;
}

static const node_transport_ops k_http_ops = {
    .name = "http", .start = http_start, .stop = http_stop, .cancel = http_cancel, .free = http_free};
static const node_transport_ops k_metrics_http_ops = {
    .name = "metrics", .start = http_start, .stop = http_stop, .cancel = http_cancel, .free = http_free};

/* A non-loopback HTTP address without authentication is refused here, with the address in
 * the message, before anything starts (the transport checks it again). */
static int check_http_listen(const config *cfg, char *err, size_t errlen) {
  for (size_t i = 0; i < cfg->http.listen_count; i++) {
    char host[64];
    uint16_t port;
    if (config_host_port_parse(cfg->http.listen[i], host, sizeof host, &port) != 0) {
      seterr(err, errlen, "http.listen: \"%s\" is not HOST:PORT", cfg->http.listen[i]);
      return -EINVAL;
    }
    if (!http_addr_is_loopback(host) && !cfg->http.allow_unauthenticated && !cfg->auth.jwt.enabled) {
      seterr(err, errlen,
             "http.listen: %s is not a loopback address and HTTP has no authentication; refusing to serve it "
             "(set http.allow_unauthenticated: true to serve it anyway)",
             cfg->http.listen[i]);
      return -EINVAL;
    }
  }
  return 0;
}

/* ---------- node_open ---------- */

static int check_options(const node_options *o, char *err, size_t errlen) {
  const char *why = NULL;
  if (o->service && !o->tools) why = "the service needs the tools";
  else if (o->mcp_tasks && !(o->tools && o->store)) why = "MCP Tasks need the tools and the store";
  else if (o->stdio && !o->tools) why = "stdio needs the tools";
  else if (o->http && !o->tools) why = "HTTP needs the tools";
  else if (o->local_ops && !o->store) why = "the local op table needs the store";
  else if (o->maintenance && !(o->store && o->tools)) why = "maintenance needs the store and the tools";
  else if (o->workers && !o->tools) why = "workers need the tools";
  else if (o->workers && o->workers->n_peers && o->host == NODE_HOST_NONE) why = "workers of peers need a host";
  else if (o->workers && !o->workers->n_peers && !o->store) why = "local workers need the store";
  if (!why) return 0;
  seterr(err, errlen, "node options: %s", why);
  return -EINVAL;
}

/* Large blocks (frames, replies, cache values) come from mmap and go back to the system when
 * freed, and heaps give back their tops past 1 MiB: so after a peer that held megabytes goes,
 * the memory returns (issue 9 item 2). Measured: glibc's dynamic thresholds had raised the mmap
 * threshold to 1 MiB after the first large free, each worker thread's arena then kept ~3 MB,
 * and 40 MB stayed after the unread-output attack; malloc_trim(0) gave back 0.6 MB of it
 * (it does not trim the tops of thread arenas). With fixed thresholds 5 MB stay. */
static void node_malloc_tuning(void) {
#ifdef __GLIBC__
  static bool done;
  if (done) return;
  done = true;
  (void)mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  (void)mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
#endif
}

int node_open(const config *cfg, const node_options *o, node **out, char *err, size_t errlen) {
  *out = NULL;
  if (err && errlen) err[0] = 0;
  node_malloc_tuning();
  assert(cfg && o);
  int rc = check_options(o, err, errlen);
  if (rc != 0) return rc;
  node *n = calloc(1, sizeof *n);
  if (!n) return -ENOMEM;
  check_loop_thread_enter(); /* this thread runs the loop: LOOP_THREAD_ONLY() checks hold to it */
  n->cfg = cfg;
  n->o = *o;
  snprintf(n->name, sizeof n->name, "%s", o->name ? o->name : "node");
  n->o.name = n->name;
  n->o.workers = NULL;
  if (o->workers) {
    n->has_workers = true;
    n->wopts = *o->workers;
    n->wopts.worker_id = NULL;
    n->wopts.peers = NULL;
    if (o->workers->worker_id) snprintf(n->worker_id, sizeof n->worker_id, "%s", o->workers->worker_id);
    if (o->workers->n_peers) {
      n->peers = calloc(o->workers->n_peers, sizeof *n->peers);
      n->wclients = calloc(o->workers->n_peers, sizeof *n->wclients);
      if (!n->peers || !n->wclients) goto oom;
      for (size_t i = 0; i < o->workers->n_peers; i++)
        if (!(n->peers[i] = strdup(o->workers->peers[i]))) goto oom;
    }
  }

  /* the caller prints err once; the failure is logged at debug below */
  if ((rc = fscheck_mkdir_p(cfg->state_dir)) != 0) {
    seterr(err, errlen, "cannot create the state directory %s: %s", cfg->state_dir, strerror(-rc));
    goto fail;
  }
  if ((rc = check_state_dir(cfg->state_dir, err, errlen)) != 0) goto fail;
  /* ours and private, the key ours, one serve per directory (node/statedir.h, issue 9 item 9) */
  if ((rc = statedir_check_private(cfg->state_dir, "the state directory", err, errlen)) != 0 ||
      (o->host != NODE_HOST_NONE && (rc = statedir_check_key(cfg->state_dir, err, errlen)) != 0) ||
      (o->lock_state_dir && (rc = statedir_lock_take(cfg->state_dir, &n->lock, err, errlen)) != 0))
    goto fail;
  if (n->lock) { /* nobody else serves from here: an announce file left here is stale */
    char ann[4200];
    snprintf(ann, sizeof ann, "%s/announce.json", cfg->state_dir);
    if (statedir_remove_announce(ann, NULL)) log_info("stale announce file removed", "{s:s}", "path", ann);
  }
  if (o->loop) {
    n->loop = o->loop;
  } else {
    signal(SIGPIPE, SIG_IGN); /* a peer or client that went away must not kill us mid-write */
    if ((rc = uv_loop_init(&n->own_loop)) != 0) {
      seterr(err, errlen, "cannot make the event loop: %s", uv_strerror(rc));
      goto fail;
    }
    n->loop = &n->own_loop;
    n->own = n->loop_ok = true;
  }
  if (o->signals) signal(SIGPIPE, SIG_IGN);

  if (o->store && (rc = open_store(n, err, errlen)) != 0) {
    if (!o->store_optional) goto fail;
    nlog(n, LOG_WARNING, "store unusable; going on without it", "{s:s}", "error", err);
    snprintf(n->store_err, sizeof n->store_err, "%s", err);
    tq_close(n->queue);
    ttlcache_close(n->cache);
    n->queue = NULL;
    n->cache = NULL;
    rc = 0;
  }
  if (o->local_ops && (rc = open_local_ops(n)) != 0) goto fail;
  if (o->tools && (rc = open_auth(n, err, errlen)) != 0) goto fail;
  if (o->tools && (rc = open_tools(n, err, errlen)) != 0) goto fail;
  if (o->tools && (rc = open_stdio_auth(n, err, errlen)) != 0) goto fail;
  if (o->stdio && cfg->stdio.enabled) {
    n->stdio.n = n;
    bool fds = o->stdio_in_fd || o->stdio_out_fd;
    n->stdio.in_fd = fds ? o->stdio_in_fd : 0;
    n->stdio.out_fd = fds ? o->stdio_out_fd : 1;
    n->tr[n->n_tr++] = (node_transport){.ops = &k_stdio_ops, .self = &n->stdio};
  }
  if (o->http && cfg->http.listen_count) {
    if ((rc = check_http_listen(cfg, err, errlen)) != 0) goto fail;
    n->http.n = n;
    n->tr[n->n_tr++] = (node_transport){.ops = &k_http_ops, .self = &n->http};
  }
  if ((o->http || o->stdio || o->workers) && cfg->metrics.listen) {
    n->metrics_http.n = n;
    n->metrics_http.metrics_only = true;
    n->tr[n->n_tr++] = (node_transport){.ops = &k_metrics_http_ops, .self = &n->metrics_http};
  }
  *out = n;
  return 0;
oom:
  rc = -ENOMEM;
fail:
  if (rc == -ENOMEM && err && errlen && !err[0]) seterr(err, errlen, "out of memory");
  if (err && errlen && !err[0]) seterr(err, errlen, "%s", strerror(-rc));
  if (!n->error_logged) nlog(n, LOG_DEBUG, "cannot build the node", "{s:s}", "error", err && errlen ? err : strerror(-rc));
  node_close(n);
  return rc;
}

int node_add_transport(node *n, const node_transport_ops *ops, void *self) {
  if (!ops || !ops->start || !ops->stop || n->state != NODE_OPEN || !n->disp) return -EINVAL;
  if (n->n_tr == NODE_MAX_TRANSPORTS) return -ENOSPC;
  n->tr[n->n_tr++] = (node_transport){.ops = ops, .self = self};
  return 0;
}

/* ---------- node_start ---------- */

static void on_signal(uv_signal_t *h, int signum) {
  node *n = h->data;
  n->signal_count++;
  nlog(n, LOG_INFO, "signal received; shutting down", "{s:i, s:i}", "signal", signum, "count", n->signal_count);
  node_stop(n, NULL, NULL);
}

static void maint_work(void *arg) {
  node *n = arg;
  if (n->queue) {
    int rc = tq_maintain(n->queue);
    if (rc != 0) nlog(n, LOG_WARNING, "queue maintenance failed", "{s:s}", "error", tq_strerror(rc));
  }
  if (n->cache) {
    size_t removed = 0;
    int rc = ttlcache_sweep(n->cache, &removed);
    if (rc != 0) nlog(n, LOG_WARNING, "cache sweep failed", "{s:s}", "error", strerror(-rc));
    else if (removed) nlog(n, LOG_DEBUG, "cache sweep", "{s:I}", "removed", (json_int_t)removed);
  }
}
static void maint_done(void *arg) { ((node *)arg)->maint_running = false; }

/* Every METRICS_WINDOW_STEP_S on the pool: the queue's counts by status (the gauge
 * peermcp_queue_tasks) and a snapshot for the last-minute figures of the status. */
static void metrics_work(void *arg) {
  node *n = arg;
  tq_counts qc;
  if (n->queue && tq_count(n->queue, &qc) != 0) nlog(n, LOG_DEBUG, "queue count failed", NULL);
  metrics_window_tick();
  store_health_probe(n->queue, n->cache); /* a store that broke since: removed, replaced, overwritten */
  if (n->o.host == NODE_HOST_LISTEN || n->o.http || n->o.stdio) write_health_file(n); /* serving */
}
static void metrics_done(void *arg) { ((node *)arg)->metrics_running = false; }

static void on_metrics_timer(uv_timer_t *t) {
  node *n = t->data;
  if (n->metrics_running || !n->disp || n->state != NODE_STARTED) return;
  if (workpool_submit(mcp_dispatcher_pool(n->disp), metrics_work, metrics_done, n) == 0) n->metrics_running = true;
}

static void on_maint_timer(uv_timer_t *t) {
  node *n = t->data;
  if (n->maint_running || !n->disp || n->state != NODE_STARTED) return;
  if (workpool_submit(mcp_dispatcher_pool(n->disp), maint_work, maint_done, n) == 0) n->maint_running = true;
}

/* The NAT-traversal part of a host (docs/p2p-nat.md): a serving node runs what its config
 * switches on; a client (serving false) only dials /p2p-circuit addresses. Private and loopback
 * addresses count for AutoNAT and hole punching only in the local and lan profiles. */
void node_nat_config(const config *cfg, bool serving, p2p_nat_config *nc) {
  memset(nc, 0, sizeof *nc);
  nc->relay_client = cfg->p2p.eff.relay;
  if (!serving) return;
  bool wide = cfg->p2p.profile == CONFIG_PROFILE_PRIVATE || cfg->p2p.profile == CONFIG_PROFILE_PUBLIC;
  nc->autonat_client = nc->autonat_server = cfg->p2p.eff.autonat;
  nc->autonat_confidence = cfg->p2p.autonat_confidence;
  nc->autonat_v2 = cfg->p2p.autonat_v2;
  nc->relay_accept = nc->relay_reserve = cfg->p2p.eff.relay;
  nc->relays = (const char *const *)cfg->p2p.relays;
  nc->n_relays = cfg->p2p.relay_count;
  if (wide) { /* bootstrap peers that offer the hop protocol */
    nc->relay_candidates = (const char *const *)cfg->p2p.bootstrap;
    nc->n_relay_candidates = cfg->p2p.bootstrap_count;
  }
  nc->hop = cfg->p2p.relay_hop.enabled;
  const struct config_relay_hop *rh = &cfg->p2p.relay_hop;
  nc->hop_cfg = (p2p_relay_hop_config){.max_reservations = rh->max_reservations,
                                       .max_reservations_per_ip = rh->max_reservations_per_ip,
                                       .reservation_ttl_s = rh->reservation_ttl_seconds,
                                       .max_circuits = rh->max_circuits,
                                       .max_circuits_per_peer = rh->max_circuits_per_peer,
                                       .limit_duration_s = rh->limit_duration_seconds,
                                       .limit_data = rh->limit_data_bytes};
  nc->holepunch = cfg->p2p.eff.holepunch;
  nc->allow_private = !wide;
}

static void write_announce_files(node *n) {
  const config *cfg = n->cfg;
  if (!cfg->p2p.announce_file || !n->host) return;
  char def[4200];
  snprintf(def, sizeof def, "%s/announce.json", cfg->state_dir);
  const char *paths[2] = {def, strcmp(def, cfg->p2p.announce_file) ? cfg->p2p.announce_file : NULL};
  for (int i = 0; i < 2; i++) {
    if (!paths[i]) continue;
    int rc = p2p_host_write_announce(n->host, paths[i]);
    if (rc) log_warn("p2p: cannot write the announce file", "{s:s, s:s}", "path", paths[i], "error", strerror(-rc));
    else log_debug("p2p: announce file written", "{s:s}", "path", paths[i]);
    if (!rc && !n->announced[i]) n->announced[i] = strdup(paths[i]); /* removed at stop (step_host) */
  }
  snprintf(n->announced_pid, sizeof n->announced_pid, "%s", p2p_host_peer_id(n->host));
}

/* A relay circuit address came or went, or AutoNAT confirmed an external address: the
 * announce files list what identify announces. */
static void on_addrs_changed(p2p_host *h, const p2p_event *ev, void *ud) {
  (void)h;
  (void)ev;
  write_announce_files(ud);
}

static int start_nat(node *n, bool serving, char *err, size_t errlen) {
  p2p_nat_config nc;
  node_nat_config(n->cfg, serving, &nc);
  if (!nc.relay_client && !nc.autonat_client && !nc.autonat_server && !nc.hop && !nc.holepunch) return 0;
  int rc = p2p_nat_new(n->host, n->loop, &nc, &n->nat);
  if (rc == 0 && (rc = p2p_nat_add_to_host(n->nat)) != 0) p2p_nat_close(n->nat, NULL, NULL);
  if (rc) {
    n->nat = NULL;
    log_error("p2p: NAT traversal not started", "{s:s}", "error", strerror(-rc));
    seterr(err, errlen, "cannot start NAT traversal (p2p.autonat / p2p.relay / p2p.relay_hop): %s", strerror(-rc));
  }
  return rc;
}

/* Host for a server: listens on p2p.listen (failing only if no address binds), logs
 * "peer_id=<id>" and one "multiaddr=<addr>/p2p/<id>" per address, writes the announce file to
 * <state_dir>/announce.json and to p2p.announce_file (unless it is disabled). */
static int start_listening_host(node *n, char *err, size_t errlen) {
  const config *cfg = n->cfg;
  p2p_host_config hc = {0};
  hc.state_dir = cfg->state_dir;
  hc.max_connections = cfg->p2p.max_connections;
  hc.max_streams_per_conn = cfg->p2p.max_streams_per_peer;
  hc.max_pending_handshakes = cfg->p2p.max_pending_handshakes;
  hc.max_pending_per_ip = cfg->p2p.max_pending_per_ip;
  hc.max_conns_per_ip = cfg->p2p.max_connections_per_ip;
  hc.reserved_conns = cfg->p2p.reserved_connections;
  hc.reserved_handshakes = cfg->p2p.reserved_handshakes;
  hc.authorized_memory = cfg->p2p.authorized_memory;
  hc.authorized_memory_s = cfg->p2p.authorized_memory_seconds;
  hc.first_byte_timeout_ms = cfg->p2p.first_byte_timeout_ms;
  hc.handshake_timeout_ms = cfg->p2p.handshake_timeout_ms;
  hc.enable_perf = cfg->p2p.enable_perf;
  hc.noise_aead = cfg->p2p.noise_aead == CONFIG_AEAD_LIBSODIUM ? NOISE_AEAD_LIBSODIUM : NOISE_AEAD_OPENSSL;
  hc.write_early_bytes = cfg->p2p.write_early_bytes >= CONFIG_WRITE_EARLY_NEVER ? 0 : cfg->p2p.write_early_bytes;
  hc.reuseport = cfg->p2p.eff.holepunch; /* DCUtR dials from the listen port */
  int rc = p2p_host_new(n->loop, &hc, &n->host);
  if (rc) {
    n->host = NULL;
    log_debug("p2p: cannot create the host", "{s:s, s:s}", "state_dir", cfg->state_dir, "error", strerror(-rc));
    seterr(err, errlen, "cannot create the libp2p host (state dir %s): %s", cfg->state_dir, strerror(-rc));
    return rc;
  }
  size_t ok = 0;
  int last = -EINVAL;
  char failed[1024] = "";
  for (size_t i = 0; i < cfg->p2p.listen_count; i++) {
    rc = p2p_host_listen(n->host, cfg->p2p.listen[i]);
    if (rc == 0) {
      ok++;
      continue;
    }
    last = rc;
    size_t used = strlen(failed);
    snprintf(failed + used, sizeof failed - used, "%s%s: %s", used ? "; " : "", cfg->p2p.listen[i], strerror(-rc));
  }
  if (!ok) {
    seterr(err, errlen, "no p2p.listen address could be bound (%s)", failed);
    return last;
  }
  if (failed[0]) log_warn("p2p: some listen addresses could not be bound", "{s:s}", "failed", failed);
  const char *pid = p2p_host_peer_id(n->host);
  char msg[1200];
  snprintf(msg, sizeof msg, "peer_id=%s", pid);
  log_info(msg, "{s:s}", "peer_id", pid);
  char first[1100] = "";
  for (size_t i = 0;; i++) {
    char full[1100];
    if (p2p_host_announce_addr(n->host, i, full, sizeof full) != 0) break;
    if (!first[0]) snprintf(first, sizeof first, "%s", full);
    snprintf(msg, sizeof msg, "multiaddr=%s", full);
    log_info(msg, "{s:s}", "multiaddr", full); /* the PeerId is in it, and in the line above */
  }
  const char *ua[16];
  size_t nu = p2p_host_unix_addrs(n->host, ua, 16);
  for (size_t i = 0; i < nu && i < 16; i++) { /* this host only: never announced */
    snprintf(msg, sizeof msg, "multiaddr=%s/p2p/%s", ua[i], pid);
    log_info(msg, "{s:s, s:b}", "multiaddr", msg + 10, "local_only", 1);
  }
  if (cfg->p2p.eff.mdns || cfg->p2p.eff.dht) {
    p2p_discovery_config dc;
    node_discovery_config(cfg, true, &dc);
    if ((rc = p2p_discovery_new(n->host, n->loop, &dc, &n->disc)) != 0 || (rc = p2p_discovery_add_to_host(n->disc)) != 0) {
      if (n->disc) p2p_discovery_close(n->disc, NULL, NULL);
      n->disc = NULL;
      log_error("p2p: discovery not started", "{s:s, s:s}", "profile", config_profile_name(cfg->p2p.profile), "error",
                strerror(-rc));
      seterr(err, errlen, "cannot start peer discovery (p2p.profile %s): %s", config_profile_name(cfg->p2p.profile),
             strerror(-rc));
      return rc;
    }
  }
  if ((rc = start_nat(n, true, err, errlen)) != 0) return rc;
  write_announce_files(n);
  if (cfg->p2p.announce_file && p2p_host_subscribe(n->host, P2P_EV_ADDRS_CHANGED, on_addrs_changed, n) == 0)
    n->announce_sub = true;
  return 0;
}

/* Host for a client: dials only; the peerstore file is left to the node that serves. */
static int start_dialing_host(node *n, char *err, size_t errlen) {
  p2p_host_config hc = {0};
  hc.state_dir = n->cfg->state_dir;
  hc.no_peerstore_file = true;
  hc.noise_aead = n->cfg->p2p.noise_aead == CONFIG_AEAD_LIBSODIUM ? NOISE_AEAD_LIBSODIUM : NOISE_AEAD_OPENSSL;
  hc.write_early_bytes = n->cfg->p2p.write_early_bytes >= CONFIG_WRITE_EARLY_NEVER ? 0 : n->cfg->p2p.write_early_bytes;
  int rc = p2p_host_new(n->loop, &hc, &n->host);
  if (rc) {
    n->host = NULL;
    seterr(err, errlen, "cannot create the libp2p host (state dir %s): %s", n->cfg->state_dir, strerror(-rc));
    return rc;
  }
  /* What the serving node knows (its saved peer table) lets a client dial a bare PeerId;
   * read only: the file stays the serving node's. */
  char path[4200];
  snprintf(path, sizeof path, "%s/peers", n->cfg->state_dir);
  int lrc = p2p_host_import_peer_table(n->host, path);
  if (lrc) nlog(n, LOG_DEBUG, "peer table not read", "{s:s, s:s}", "path", path, "error", strerror(-lrc));
  return start_nat(n, false, err, errlen); /* /p2p-circuit targets */
}

static int start_workers(node *n, char *err, size_t errlen) {
  size_t np = n->wopts.n_peers;
  for (size_t i = 0; i < np; i++) {
    int rc = node_dial(n, n->peers[i], &n->wclients[i]);
    if (rc != 0) {
      n->wclients[i] = NULL;
      seterr(err, errlen, "bad peer target %s", n->peers[i]);
      return rc;
    }
  }
  if (!n->worker_id[0])
    snprintf(n->worker_id, sizeof n->worker_id, "%s", np ? p2p_host_peer_id(n->host) : "local-worker");
  int rc = 0;
  if (!(n->wsources = calloc(np ? np : 1, sizeof *n->wsources))) rc = -ENOMEM;
  for (size_t i = 0; rc == 0 && i < np; i++)
    if ((rc = svc_remote_source_new(n->wclients[i], n->peers[i], &n->wsources[i])) == 0) n->n_wsources++;
  if (rc == 0 && !np) {
    taskq_local_source_opts lo = {.queue = n->queue, .pool = mcp_dispatcher_pool(n->disp)};
    if ((rc = taskq_local_source_new(&lo, &n->wsources[0])) == 0) n->n_wsources = 1;
  }
  if (rc != 0) {
    seterr(err, errlen, "cannot start the workers: %s", strerror(-rc));
    return rc;
  }
  taskq_runner_opts wo = {0};
  wo.loop = n->loop;
  wo.dispatcher = n->disp;
  wo.slots = n->wopts.slots ? n->wopts.slots : 1;
  wo.worker_id = n->worker_id;
  wo.sources = n->wsources;
  wo.n_sources = n->n_wsources;
  wo.lease_seconds = n->wopts.lease_seconds > 0 ? n->wopts.lease_seconds : 60;
  if (np) wo.claim_wait_s = n->cfg->p2p.worker_claim_wait_seconds; /* remote peers: wait for work there */
  wo.once = n->wopts.once;
  auth_fernet_key fk = {{0}, {0}}; /* p2p.encrypt: encrypted prompts reach the tools decrypted (§4.5) */
  const config *cfg = n->cfg;
  if (cfg->p2p.encrypt && (cfg->p2p.encryption_key || cfg->p2p.token)) {
    auth_fernet_key_derive(cfg->p2p.encryption_key ? cfg->p2p.encryption_key : cfg->p2p.token, &fk);
    wo.fernet = &fk;
  }
  rc = taskq_runner_start(&wo, &n->workers); /* copies the key */
  auth_fernet_key_wipe(&fk);
  if (rc != 0) {
    n->workers = NULL;
    seterr(err, errlen, "cannot start the workers: %s", strerror(-rc));
  }
  return rc;
}

/* svc_resolve_fn over the node's discovery. */
typedef struct node_resolve_ctx {
  void (*done)(void *, int);
  void *arg;
} node_resolve_ctx;

static void node_resolved(p2p_discovery *d, int err, const char *peer_id, void *ud) {
  (void)d;
  (void)peer_id;
  node_resolve_ctx *c = ud;
  c->done(c->arg, err);
  free(c);
}

static int node_resolve(void *ud, const char *peer_id, uint32_t timeout_ms, void (*done)(void *, int), void *arg) {
  node *n = ud;
  if (!n->disc) return -ENOTSUP;
  node_resolve_ctx *c = malloc(sizeof *c);
  if (!c) return -ENOMEM;
  c->done = done;
  c->arg = arg;
  int rc = p2p_discovery_resolve(n->disc, peer_id, timeout_ms, node_resolved, c);
  if (rc) free(c);
  return rc;
}

int node_start(node *n, char *err, size_t errlen) {
  LOOP_THREAD_ONLY();
  if (err && errlen) err[0] = 0;
  if (n->state != NODE_OPEN) return -EALREADY;
  const config *cfg = n->cfg;
  n->state = NODE_STARTED;
  int rc = 0;
  if (n->o.signals) {
    uv_signal_init(n->loop, &n->sigint);
    uv_signal_init(n->loop, &n->sigterm);
    n->sigint.data = n->sigterm.data = n;
    n->signals_on = true;
    uv_signal_start(&n->sigint, on_signal, SIGINT);
    uv_signal_start(&n->sigterm, on_signal, SIGTERM);
  }
  if (n->o.maintenance) {
    uv_timer_init(n->loop, &n->maint);
    n->maint.data = n;
    n->maint_on = true;
    uint64_t every_ms = (uint64_t)(cfg->cache.sweep_interval_seconds ? cfg->cache.sweep_interval_seconds : 60) * 1000u;
    if (every_ms > 30000) every_ms = 30000; /* the queue wants recovery about every 30 s */
    uv_timer_start(&n->maint, on_maint_timer, 1000, every_ms);
  }
  if (n->o.tools && (n->o.http || n->o.stdio || n->o.workers || n->o.maintenance)) {
    uv_timer_init(n->loop, &n->metrics_timer);
    n->metrics_timer.data = n;
    n->metrics_on = true;
    uv_timer_start(&n->metrics_timer, on_metrics_timer, 0, METRICS_WINDOW_STEP_S * 1000u);
  }
  if (n->o.host == NODE_HOST_LISTEN && cfg->p2p.enabled) rc = start_listening_host(n, err, errlen);
  else if (n->o.host == NODE_HOST_DIAL) rc = start_dialing_host(n, err, errlen);
  if (rc != 0) return rc;
  /* MCP Tasks (tools/mcp_tasks_queue.h): a task-augmented tools/call becomes a durable
   * "tool.call" queue task. Its own in-process runner runs them (mcp_tasks.runner, on unless
   * false), and the node's other in-process workers (p2p.workers) then leave them to it; with
   * the runner off, any worker runs them (p2p.workers, or `peermcp worker --peer` elsewhere).
   * A failure leaves MCP Tasks off; the node still serves. */
  if (n->o.mcp_tasks && n->queue) {
    bool runner = cfg->mcp_tasks.runner != CONFIG_OFF;
    mcp_tasks_queue_opts to = {.loop = n->loop, .dispatcher = n->disp, .queue = n->queue, .runner = runner};
    if ((rc = mcp_tasks_queue_new(&to, &n->tasks)) != 0) {
      nlog(n, LOG_ERROR, "cannot set up MCP tasks; tasks disabled", "{s:i}", "errno", -rc);
      n->tasks = NULL;
    }
  }
  if (n->svc) {
    /* p2p_remote_* tools find a bare PeerId through discovery when the peer table lacks it. */
    if (n->disc) svc_service_set_resolver(n->svc, node_resolve, n, cfg->p2p.discovery_timeout_ms);
    svc_service_set_nat(n->svc, n->nat, n->nat && cfg->p2p.eff.autonat);
    /* Peers get MCP Tasks over /mcp+p2p/1.0.0 too (owner = the peer's identity). */
    if (n->tasks) svc_service_set_mcp_tasks(n->svc, mcp_tasks_queue_backend(n->tasks));
    if (n->tasks && cfg->mcp_tasks.runner != CONFIG_OFF)
      svc_service_set_worker_claim(n->svc, mcp_tasks_queue_claim_others, NULL);
    if ((rc = svc_service_start(n->svc, n->loop, n->host, n->disp)) != 0) {
      nlog(n, LOG_DEBUG, "cannot start the p2p service", "{s:i}", "errno", -rc);
      seterr(err, errlen, "cannot start the p2p service: %s", strerror(-rc));
      return rc;
    }
  }
  if (n->has_workers && (rc = start_workers(n, err, errlen)) != 0) return rc;
  start_auth_watch(n);
  for (size_t i = 0; i < n->n_tr; i++) {
    node_transport *t = &n->tr[i];
    if ((rc = t->ops->start(t->self, n)) != 0) {
      nlog(n, LOG_DEBUG, "cannot start a transport", "{s:s, s:i}", "transport", t->ops->name, "errno", -rc);
      seterr(err, errlen, "cannot start %s: %s", t->ops->name, strerror(-rc));
      return rc;
    }
    t->started = true;
  }
  nlog(n, LOG_INFO, "ready", "{s:s, s:I, s:b, s:b, s:b, s:s}", "version", PEERMCP_VERSION, "tools",
       (json_int_t)(n->reg ? mcp_registry_count(n->reg) : 0), "stdio", n->stdio.n != NULL, "http", n->http.h != NULL, "p2p",
       n->o.host == NODE_HOST_LISTEN && cfg->p2p.enabled, "state_dir", cfg->state_dir);
  return 0;
}

/* ---------- node_stop: the shutdown order, as code ---------- */

static void stop_advance(node *n);

/* A step's part finished. */
static void step_done(void *ud) {
  node *n = ud;
  assert(n->pending > 0);
  n->pending--;
  stop_advance(n);
}

/* 1. Transports: stop reading, drain in-flight calls to their deadline, flush. */
static void step_transports(node *n) {
  for (size_t i = 0; i < n->n_tr; i++) {
    node_transport *t = &n->tr[i];
    if (!t->started || t->stopped) continue;
    t->stopped = true;
    n->pending++;
    t->ops->stop(t->self, step_done, n);
  }
}

/* 2. The P2P service: no new streams, requests drained, in-process workers release their
 *    tasks, remote-tool clients closed. */
static void step_service(node *n) {
  if (!n->svc) return;
  n->pending++;
  svc_service_stop(n->svc, NODE_SERVICE_DRAIN_MS, step_done, n);
}

/* 3. `peermcp worker` workers: running tasks get the grace period, then are released; then
 *    their clients close. */
static void workers_stopped(void *ud) {
  node *n = ud;
  for (size_t i = 0; i < n->n_wsources; i++) { /* the runner asks nothing more of them */
    taskq_source_free(n->wsources[i]);
    n->wsources[i] = NULL;
  }
  for (size_t i = 0; i < n->wopts.n_peers; i++)
    if (n->wclients[i]) {
      svc_client_close(n->wclients[i]);
      n->wclients[i] = NULL;
    }
  step_done(n);
}
static void step_workers(node *n) {
  if (!n->has_workers) return;
  n->pending++;
  if (n->workers) taskq_runner_stop(n->workers, n->wopts.stop_grace_ms, workers_stopped, n);
  else workers_stopped(n);
}

/* 4. MCP Tasks: the runner stops; running tasks are released for the next start. */
static void step_mcp_tasks(node *n) {
  if (!n->tasks) return;
  n->pending++;
  mcp_tasks_queue_stop(n->tasks, step_done, n);
}

/* 5. The host: GoAway to every peer, listeners closed, peerstore saved. */
static void host_closed(p2p_host *h, void *ud) {
  (void)h;
  node *n = ud;
  n->host = NULL; /* freed by the host after this returns */
  step_done(n);
}
static void step_host(node *n) {
  /* No rewrite of the announce files from here on (the NAT part withdraws addresses at close). */
  if (n->announce_sub && n->host) (void)p2p_host_unsubscribe(n->host, on_addrs_changed, n);
  n->announce_sub = false;
  /* The announce files name an address about to close: remove those still ours (another
   * process may have replaced p2p.announce_file since). */
  for (size_t i = 0; i < 2; i++) {
    if (n->announced[i] && statedir_remove_announce(n->announced[i], n->announced_pid))
      log_debug("announce file removed", "{s:s}", "path", n->announced[i]);
    free(n->announced[i]);
    n->announced[i] = NULL;
  }
  if (!n->host) return;
  n->pending++;
  n->disc = NULL; /* a host service: the host's close stops and frees it (mDNS goodbye first) */
  n->nat = NULL;  /* likewise (relay addresses withdrawn, reservations' connections closed) */
  p2p_host_close(n->host, host_closed, n);
}

/* 6. No new calls; the node's own handles closed. (Transports are released by node_close:
 *    this step may run inside a transport's own callback, e.g. stdio's on_closed at EOF.) */
static void handle_closed(uv_handle_t *h) { step_done(h->data); }
static void step_handles(node *n) {
  if (n->disp) mcp_dispatcher_shutdown(n->disp);
  if (n->signals_on) {
    n->signals_on = false;
    n->pending += 2;
    uv_close((uv_handle_t *)&n->sigint, handle_closed);
    uv_close((uv_handle_t *)&n->sigterm, handle_closed);
  }
  if (n->maint_on) {
    n->maint_on = false;
    n->pending++;
    uv_close((uv_handle_t *)&n->maint, handle_closed);
  }
  if (n->jwks_poll_on) {
    n->jwks_poll_on = false;
    n->pending++;
    uv_close((uv_handle_t *)&n->jwks_poll, handle_closed);
  }
  if (n->sighup_on) {
    n->sighup_on = false;
    n->pending++;
    uv_close((uv_handle_t *)&n->sighup, handle_closed);
  }
  if (n->metrics_on) {
    n->metrics_on = false;
    n->pending++;
    uv_close((uv_handle_t *)&n->metrics_timer, handle_closed);
  }
}

static const struct {
  const char *name;
  void (*run)(node *n);
} k_stop_steps[] = {
    {"transports", step_transports}, {"service", step_service}, {"workers", step_workers},
    {"mcp_tasks", step_mcp_tasks},   {"host", step_host},       {"handles", step_handles},
};
#define NODE_STOP_STEPS (sizeof k_stop_steps / sizeof k_stop_steps[0])

/* Runs the next steps while nothing is pending; re-entrant calls (a part answering at once)
 * only return, the outer loop goes on. */
static void stop_advance(node *n) {
  assert(n->state == NODE_STOPPING && n->pending >= 0 && n->step <= NODE_STOP_STEPS);
  if (n->advancing) return;
  n->advancing = true;
  while (n->pending == 0 && n->step < NODE_STOP_STEPS) {
    size_t s = n->step++;
    nlog(n, LOG_DEBUG, "stop step", "{s:s}", "step", k_stop_steps[s].name);
    n->pending++; /* the step's own hold, so a synchronous answer cannot skip ahead */
    k_stop_steps[s].run(n);
    n->pending--;
  }
  n->advancing = false;
  if (n->pending == 0 && n->step == NODE_STOP_STEPS && n->state == NODE_STOPPING) {
    n->state = NODE_STOPPED;
    void (*done)(void *) = n->done;
    n->done = NULL;
    if (done) done(n->done_ud); /* last: done may close the node */
  }
}

void node_stop(node *n, void (*done)(void *ud), void *ud) {
  LOOP_THREAD_ONLY();
  if (n->state == NODE_STOPPED) {
    if (done) done(ud);
    return;
  }
  if (n->state == NODE_STOPPING) { /* a second request: hurry */
    for (size_t i = 0; i < n->n_tr; i++)
      if (n->tr[i].started && !n->tr[i].freed && n->tr[i].ops->cancel) n->tr[i].ops->cancel(n->tr[i].self);
    return;
  }
  n->state = NODE_STOPPING;
  n->done = done;
  n->done_ud = ud;
  stop_advance(n);
}

bool node_stopping(const node *n) { return n->state >= NODE_STOPPING; }

int node_run(node *n) {
  if (!n->own) return -EINVAL;
  bool idle_once = false;
  while (n->state != NODE_STOPPED) {
    if (uv_run(n->loop, UV_RUN_ONCE) != 0) continue;
    if (n->state == NODE_STOPPED) break;
    if (!node_stopping(n)) { /* nothing left that could ever stop the node: stop it */
      nlog(n, LOG_DEBUG, "loop out of work; stopping", NULL);
      node_stop(n, NULL, NULL);
    } else if (idle_once) {
      nlog(n, LOG_ERROR, "stop sequence stalled with nothing left to run", "{s:i}", "step", (int)n->step);
      break;
    } else {
      idle_once = true;
    }
  }
  return 0;
}

/* ---------- node_close ---------- */

static void count_open(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) (*(int *)arg)++;
}

void node_close(node *n) {
  if (!n) return;
  LOOP_THREAD_ONLY();
  if (n->state == NODE_STARTED || n->state == NODE_STOPPING) {
    if (n->own) {
      if (n->state == NODE_STARTED) node_stop(n, NULL, NULL);
      if (node_run(n) != 0 || n->state != NODE_STOPPED)
        nlog(n, LOG_ERROR, "closed before its stop sequence finished", NULL);
    } else {
      nlog(n, LOG_ERROR, "node_close on a running node with a borrowed loop; stop it first", NULL);
      assert(!"node_close: node still running on a borrowed loop");
    }
  }
  /* 7. Transports released (stdio: its session, reader thread and handles), then the
   *    dispatcher: waits for running handlers (they see cancelled) and maintenance. */
  for (size_t i = 0; i < n->n_tr; i++) {
    node_transport *t = &n->tr[i];
    if (!t->freed && t->ops->free) t->ops->free(t->self);
    t->freed = true;
  }
  mcp_dispatcher_free(n->disp);
  n->disp = NULL;
  /* 8. An own loop: let every handle finish closing, then close it. */
  if (n->loop_ok) {
    int open = 0;
    uv_walk(n->loop, count_open, &open);
    if (open == 0) {
      uv_run(n->loop, UV_RUN_DEFAULT);
    } else { /* a handle someone forgot to close: do not wait for it forever */
      int64_t end = clock_mono_ms() + NODE_CLOSE_DEADLINE_MS;
      while (uv_run(n->loop, UV_RUN_NOWAIT) != 0 && clock_mono_ms() < end) uv_sleep(1);
    }
    if (uv_loop_close(n->loop) != 0) nlog(n, LOG_WARNING, "loop closed with handles still open", NULL);
  }
  /* 9. What the handlers and the loop no longer use. */
  mcp_tasks_queue_free(n->tasks); /* after the dispatcher: its pool held the runner's jobs */
  svc_service_free(n->svc);       /* after the dispatcher: its tools' ud */
  taskq_runner_free(n->workers);
  for (size_t i = 0; n->wsources && i < n->n_wsources; i++) taskq_source_free(n->wsources[i]); /* never started */
  free(n->wsources);
  mcp_registry_free(n->reg);      /* before the store: tool ud may refer to it */
  taskq_free(n->taskq);
  auth_policy_free(n->policy);    /* after the service, the transports and the dispatcher's
                                     jobs (a JWK Set reload included) */
  auth_jwt_free(n->jwt);
  tq_close(n->queue);             /* after every handler has returned */
  ttlcache_close(n->cache);
  if (n->peers)
    for (size_t i = 0; i < n->wopts.n_peers; i++) free(n->peers[i]);
  free(n->peers);
  free(n->wclients);
  for (size_t i = 0; i < 2; i++) free(n->announced[i]); /* never stopped */
  statedir_lock_release(n->lock); /* last: everything in the directory is closed */
  free(n);
  check_loop_thread_leave();
}

/* ---------- accessors ---------- */

uv_loop_t *node_loop(node *n) { return n->loop; }
const config *node_config(const node *n) { return n->cfg; }
mcp_registry *node_registry(node *n) { return n->reg; }
mcp_dispatcher *node_dispatcher(node *n) { return n->disp; }
tq_queue *node_queue(node *n) { return n->queue; }
ttlcache *node_cache(node *n) { return n->cache; }
taskq_ctx *node_taskq(node *n) { return n->taskq; }
p2p_host *node_host(node *n) { return n->host; }
const mcp_tasks_backend *node_mcp_tasks(node *n) { return n->tasks ? mcp_tasks_queue_backend(n->tasks) : NULL; }
const char *node_worker_id(const node *n) { return n->worker_id; }
bool node_workers_finished(const node *n) { return n->workers && taskq_runner_finished(n->workers); }
void node_workers_stats(const node *n, taskq_runner_stats *out) {
  memset(out, 0, sizeof *out);
  if (n->workers) taskq_runner_stats_get(n->workers, out);
}

/* A name of p2p.peers becomes its multiaddr; a bare PeerId becomes the announce file's
 * multiaddr when a file names that peer (else the host dials it from its peer table). */
static char *resolve_target(const node *n, const char *t) {
  const char *named = config_peer_by_name(n->cfg, t);
  if (named) t = named;
  if (t[0] == '/') return strdup(t);
  char path[4096];
  snprintf(path, sizeof path, "%s/announce.json", n->cfg->state_dir);
  const char *files[2] = {n->cfg->p2p.announce_file, path};
  for (size_t i = 0; i < 2; i++) {
    if (!files[i]) continue;
    json_t *a = json_load_file(files[i], 0, NULL);
    const char *pid = json_string_value(json_object_get(a, "peer_id"));
    const char *ma = json_string_value(json_object_get(a, "multiaddr"));
    if (pid && ma && strcmp(pid, t) == 0 && strstr(ma, "/p2p/")) {
      char *r = strdup(ma);
      json_decref(a);
      return r;
    }
    json_decref(a);
  }
  return strdup(t); /* the host may still know it */
}

void node_discovery_config(const config *cfg, bool serving, p2p_discovery_config *out) {
  memset(out, 0, sizeof *out);
  out->mdns = cfg->p2p.eff.mdns;
  out->mdns_cfg.engine.allow_loopback = cfg->p2p.mdns_allow_loopback;
  out->mdns_cfg.engine.query_interval_ms = cfg->p2p.mdns_query_interval_ms;
  out->mdns_cfg.engine.passive = !serving; /* a client asks, it does not announce itself */
  out->dht = cfg->p2p.eff.dht;
  out->kad_cfg.protocol = cfg->p2p.eff.dht_protocol;
  out->kad_cfg.server = serving && cfg->p2p.eff.dht_server;
  /* dht_mode "auto" with AutoNAT on: AutoNAT's verdict decides (public → server, private →
   * client); until it has one, the profile's default above. */
  out->dht_follow_reachability = serving && cfg->p2p.dht_mode == CONFIG_DHT_AUTO && cfg->p2p.eff.autonat;
  out->kad_cfg.query_timeout_ms = serving ? 0 : cfg->p2p.discovery_timeout_ms;
  out->rendezvous_publish = serving && cfg->p2p.eff.rendezvous_publish;
  out->rv_cfg.ns = cfg->p2p.rendezvous_ns;
  out->rv_cfg.republish_interval_ms =
      cfg->p2p.dht_provide_interval_seconds ? cfg->p2p.dht_provide_interval_seconds * 1000u : UINT32_MAX;
  out->bootstrap = (const char *const *)cfg->p2p.bootstrap;
  out->n_bootstrap = cfg->p2p.bootstrap_count;
  out->dnsaddr_resolve = cfg->p2p.dnsaddr_resolve;
  out->peer_addr_ttl_s = cfg->p2p.peer_addr_ttl_seconds;
}

int node_dial(node *n, const char *target, svc_client **out) {
  *out = NULL;
  if (!n->host) return -ENODEV;
  char *t = resolve_target(n, target);
  if (!t) return -ENOMEM;
  svc_client_opts o = {0};
  /* --token-file (a JWT or the shared token), else p2p.token */
  o.token = n->cfg->p2p.client_token ? n->cfg->p2p.client_token : n->cfg->p2p.token;
  o.client_name = "peermcp-cli";
  int rc = svc_client_new(n->loop, n->host, t, &o, out);
  free(t);
  if (rc != 0) *out = NULL;
  return rc;
}
