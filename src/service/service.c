/* service.c — the P2P service as one unit: policy, op context, tools, server, workers (see
 * service.h).
 *
 * The p2p_* tools are MCP_TOOL_ASYNC: they run on the loop, which owns the host and the
 * clients. A p2p_remote_* call starts its request on a pooled svc_client and returns pending;
 * the reply completes the call (mcp_call_complete). Its cancel callback withdraws the request
 * (svc_client_cancel tells the peer with notifications/cancelled), so a cancelled or timed-out
 * call holds neither a thread nor a request slot. Cache replication is the one path from a
 * worker thread to the loop here (a small queue + uv_async). */
#include "service/service.h"

#include <stdatomic.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/fernet.h"
#include "auth/policy.h"
#include "p2p/host/nat.h"
#include "p2p/host/peers.h"
#include "service/client.h"
#include "service/dial_error.h"
#include "service/mcpp.h"
#include "service/server.h"
#include "taskq/local_source.h"
#include "taskq/rpc_tool.h"
#include "taskq/runner.h"
#include "taskq/table.h"
#include "store/health.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"

#define SVC_MAX_CLIENTS 32
#define SVC_MAX_SEEN 256

/* A cache write to forward to a replication target (worker thread → loop). */
typedef struct repl_job {
  struct repl_job *next;
  char *target;
  json_t *msg;
} repl_job;

typedef struct client_slot {
  char *target;
  svc_client *c;
  uint64_t last_use;
} client_slot;

typedef struct seen_peer {
  char id[AUTH_MAX_PEER_ID + 1];
  double last_seen;
} seen_peer;

struct svc_service {
  const config *cfg;
  tq_queue *q;
  ttlcache *cache;
  const auth_policy *policy; /* the node's */
  auth_fernet_key fernet;    /* p2p.encrypt: payload encryption (has_fernet) */
  bool has_fernet;
  taskq_ctx *tq;
  /* loop side */
  uv_loop_t *loop;
  p2p_host *host;
  mcp_dispatcher *disp;
  const mcp_tasks_backend *mcp_tasks; /* offered to peers over /mcp+p2p/1.0.0 */
  svc_resolve_fn resolve;      /* finds a bare PeerId before a p2p_remote_* dial (may be NULL) */
  void *resolve_ud;
  uint32_t resolve_timeout_ms;
  p2p_nat *nat;                /* the host's NAT part (status; may be NULL) */
  bool autonat_supported;      /* written before start */
  atomic_int reach;            /* p2p_reachability, for the status op on worker threads */
  svc_server *server;
  taskq_runner *workers;       /* p2p.workers in-process workers */
  taskq_source *local_source; /* the local queue, for them */
  taskq_local_claim_fn worker_claim; /* their claim (NULL: tq_claim_next) */
  void *worker_claim_ud;
  uv_async_t async;
  bool async_init, started, stopping;
  bool watching;          /* the queue tells us of new work (tq_work_watch) */
  atomic_bool work_kick;  /* set by the queue's writer, read by on_async */
  client_slot clients[SVC_MAX_CLIENTS];
  uint64_t use_clock;
  seen_peer seen[SVC_MAX_SEEN];
  size_t n_seen;
  double started_at;
  char peer_id[AUTH_MAX_PEER_ID + 1];
  /* replication jobs queued by workers for the loop */
  pthread_mutex_t mu;
  repl_job *jobs;
  json_t *task_types; /* what this node's workers run (status capabilities) */
  unsigned n_workers;
  /* cache replication targets (env, §3.5) */
  char *repl[8];
  size_t n_repl;
  /* stop */
  int stop_pending;
  void (*stop_done)(void *);
  void *stop_ud;
};

/* ---------- the loop side: clients, peers, status ---------- */

static void repl_job_free(repl_job *j) {
  free(j->target);
  json_decref(j->msg);
  free(j);
}

static svc_client *client_for(svc_service *s, const char *target, int *err) {
  client_slot *free_slot = NULL, *lru = NULL;
  *err = -ENOMEM;
  for (size_t i = 0; i < SVC_MAX_CLIENTS; i++) {
    client_slot *cs = &s->clients[i];
    if (cs->c && strcmp(cs->target, target) == 0) {
      cs->last_use = ++s->use_clock;
      return cs->c;
    }
    if (!cs->c && !free_slot) free_slot = cs;
    if (cs->c && (!lru || cs->last_use < lru->last_use)) lru = cs;
  }
  client_slot *cs = free_slot;
  if (!cs) {
    cs = lru;
    svc_client_close(cs->c);
    free(cs->target);
    cs->c = NULL;
    cs->target = NULL;
  }
  svc_client_opts o = {0};
  /* what this node presents to others: --token-file (a JWT or the shared token), else p2p.token */
  o.token = s->cfg ? (s->cfg->p2p.client_token ? s->cfg->p2p.client_token : s->cfg->p2p.token) : NULL;
  o.max_frame_bytes = 16u * 1024 * 1024;
  svc_client *c;
  if ((*err = svc_client_new(s->loop, s->host, target, &o, &c)) != 0) return NULL;
  cs->target = strdup(target);
  if (!cs->target) {
    svc_client_close(c);
    return NULL;
  }
  cs->c = c;
  cs->last_use = ++s->use_clock;
  return c;
}

/* The peer table (p2p/host/peers.h, issue 15 §6): the host's peerstore — every peer heard of,
 * with its sources — filtered; without a host, the peers seen by this service. Rows carry
 * peer_id, addrs, last_seen, sources (and first_seen, connected, latency_ms, agent, protocols;
 * "addresses", "alive" and "age_s" as before). */
static json_t *peers_json(svc_service *s, int limit, bool alive_only, unsigned sources) {
  json_t *arr = json_array();
  double now = clock_wall_s();
  double window = s->cfg ? s->cfg->p2p.peer_timeout_seconds : 300;
  if (s->host) {
    size_t max = limit > 0 && limit < PEERSTORE_MAX_PEERS ? (size_t)limit : PEERSTORE_MAX_PEERS;
    p2p_peer_row *rows = calloc(max, sizeof *rows);
    p2p_peer_filter f = {.alive_only = alive_only, .alive_window_s = window, .sources = sources};
    size_t n = rows ? p2p_host_list_peers(s->host, &f, rows, max) : 0;
    for (size_t i = 0; arr && i < n; i++) {
      json_t *row = p2p_peer_row_json(&rows[i]);
      if (!row) continue;
      json_object_set(row, "addresses", json_object_get(row, "addrs"));
      p2p_conn_info ci[8];
      size_t nc = p2p_host_conns(s->host, rows[i].peer_id, ci, 8);
      json_t *conns = json_array();
      for (size_t k = 0; conns && k < nc && k < 8; k++)
        json_array_append_new(conns, json_pack("{s:s, s:s, s:b}", "addr", ci[k].remote_addr ? ci[k].remote_addr : "",
                                               "direction", ci[k].inbound ? "inbound" : "outbound", "relayed",
                                               ci[k].relayed));
      if (conns) json_object_set_new(row, "connections", conns);
      double seen = rows[i].last_seen;
      json_object_set_new(row, "alive", json_boolean(rows[i].connected || (seen > 0 && now - seen <= window)));
      if (seen > 0) json_object_set_new(row, "age_s", json_real(now - seen));
      json_array_append_new(arr, row);
    }
    free(rows);
    return arr;
  }
  for (size_t i = 0; i < s->n_seen && (limit <= 0 || (int)json_array_size(arr) < limit); i++) {
    seen_peer *sp = &s->seen[i];
    bool alive = now - sp->last_seen <= window;
    if (alive_only && !alive) continue;
    json_array_append_new(arr, json_pack("{s:s, s:f, s:f, s:b, s:[], s:[s]}", "peer_id", sp->id, "last_seen",
                                         sp->last_seen, "age_s", now - sp->last_seen, "alive", alive, "addrs",
                                         "sources", "identify"));
  }
  return arr;
}

/* The Python service's nat.autonat {supported, status, code}; any thread (atomic). */
static json_t *nat_autonat_json(svc_service *s) {
  p2p_reachability r = (p2p_reachability)atomic_load(&s->reach);
  return json_pack("{s:b, s:s, s:i}", "supported", s->autonat_supported, "status", p2p_reachability_name(r), "code",
                   (int)r);
}

static json_t *status_json(svc_service *s, bool include_peers, int limit) {
  json_t *addrs = json_array();
  const char *la[16];
  size_t n = s->host ? p2p_host_listen_addrs(s->host, la, 16) : 0;
  int port = 0;
  for (size_t i = 0; i < n && i < 16; i++) {
    json_array_append_new(addrs, json_string(la[i]));
    const char *t = strstr(la[i], "/tcp/");
    if (t && !port) port = atoi(t + 5);
  }
  n = s->host ? p2p_host_unix_addrs(s->host, la, 16) : 0; /* this host only (never advertised) */
  for (size_t i = 0; i < n && i < 16; i++) json_array_append_new(addrs, json_string(la[i]));
  json_t *r = json_pack("{s:b, s:s, s:b, s:{s:b, s:s, s:i, s:f, s:o, s:b}}", "ok", 1, "status", "ok", "degraded_mode",
                        s->host == NULL, "service", "running", s->started && s->host != NULL, "peer_id", s->peer_id,
                        "listen_port", port, "started_at", s->started_at, "listen_addrs", addrs, "legacy",
                        s->cfg && s->cfg->p2p.enable_legacy_protocol);
  if (s->server) json_object_set_new(json_object_get(r, "service"), "server", svc_server_stats_json(s->server));
  if (s->workers) {
    taskq_runner_stats ws;
    taskq_runner_stats_get(s->workers, &ws);
    json_object_set_new(r, "workers",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "claimed", (json_int_t)ws.claimed, "completed",
                                  (json_int_t)ws.completed, "failed", (json_int_t)ws.failed, "released",
                                  (json_int_t)ws.released, "lease_lost", (json_int_t)ws.lease_lost, "cancelled",
                                  (json_int_t)ws.cancelled));
  }
  /* reachability, reservations, announced addresses (issue 16 §4) */
  json_t *nat = s->nat ? p2p_nat_status_json(s->nat) : json_pack("{s:o}", "autonat", nat_autonat_json(s));
  if (nat) json_object_set_new(r, "nat", nat);
  if (include_peers) json_object_set_new(r, "peers", peers_json(s, limit, false, 0));
  /* the figures an operator looks at first (util/metrics.h; docs/observability.md) */
  json_t *h = metrics_health_json();
  if (h) json_object_set_new(r, "health", h);
  return r;
}

static void repl_done(void *ud, int err, json_t *result, json_t *error) {
  (void)ud;
  (void)result;
  if (err < 0 || error) log_write(LOG_INFO, "p2p cache replication failed", "{s:i}", "err", err);
}

/* Loop: sends the cache writes the workers queued for replication (fire and forget). */
/* Any thread (the queue's writer, under its lock): new work may be claimable — the in-process
 * workers look now instead of at the end of their back-off. */
static void on_work(void *ud, const char *task_type) {
  svc_service *s = ud;
  (void)task_type;
  if (!atomic_exchange(&s->work_kick, true)) uv_async_send(&s->async);
}

static void on_async(uv_async_t *a) {
  svc_service *s = a->data;
  if (atomic_exchange(&s->work_kick, false) && s->workers && !s->stopping) taskq_runner_kick(s->workers);
  pthread_mutex_lock(&s->mu);
  repl_job *list = s->jobs;
  s->jobs = NULL;
  pthread_mutex_unlock(&s->mu);
  while (list) {
    repl_job *j = list;
    list = j->next;
    int cerr;
    svc_client *c = s->host && !s->stopping ? client_for(s, j->target, &cerr) : NULL;
    if (c && svc_client_rpc(c, j->msg, 2000, repl_done, NULL) != 0)
      log_write(LOG_INFO, "p2p cache replication not sent", "{s:s}", "target", j->target);
    repl_job_free(j);
  }
}

static void on_identify(p2p_host *h, const p2p_event *ev, void *ud) {
  svc_service *s = ud;
  const char *peer_id = ev->peer_id;
  (void)h;
  if (ev->type == P2P_EV_REACHABILITY_CHANGED) {
    atomic_store(&s->reach, (int)ev->reachability);
    return;
  }
  if (!peer_id || strlen(peer_id) > AUTH_MAX_PEER_ID) return;
  size_t i;
  for (i = 0; i < s->n_seen; i++)
    if (strcmp(s->seen[i].id, peer_id) == 0) break;
  if (i == s->n_seen) {
    if (s->n_seen == SVC_MAX_SEEN) { /* drop the oldest */
      size_t old = 0;
      for (size_t k = 1; k < s->n_seen; k++)
        if (s->seen[k].last_seen < s->seen[old].last_seen) old = k;
      i = old;
    } else {
      i = s->n_seen++;
    }
    snprintf(s->seen[i].id, sizeof s->seen[i].id, "%s", peer_id);
  }
  s->seen[i].last_seen = clock_wall_s();
}

/* ---------- status extras (worker thread; everything read here is immutable or atomic) ---------- */

static json_t *status_hook(void *ud, bool detail) {
  svc_service *s = ud;
  if (!detail) return json_pack("{s:{s:o}}", "nat", "autonat", nat_autonat_json(s));
  /* detail needs the worker scope (taskq/table.h): a trusted peer reads which store is down,
   * why and which file (store/health.h) */
  return json_pack("{s:{s:o}, s:{s:{s:o, s:o*}}, s:{s:b, s:i, s:O}, s:o}", "nat", "autonat", nat_autonat_json(s),
                   "transport", "mcp_p2p", "stats", svc_mcpp_stats_json(), "budgets", svc_server_budget_json(s->server),
                   "local_worker", "enabled", s->n_workers > 0, "slots", (int)s->n_workers, "supported_task_types",
                   s->task_types ? s->task_types : json_array(), "storage", store_health_json(s->q, s->cache, true));
}

/* ---------- cache replication (§3.5, opt-in) ---------- */

/* p2p.cache_replicate (IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE=1) plus explicit targets
 * (p2p.cache_replicate_targets: multiaddrs / PeerIds), at most p2p.cache_replicate_max_peers.
 * The Python LAN heuristic (every peerstore peer with a private address) is not copied: writes
 * go only where the operator said. */
static void repl_configure(svc_service *s) {
  const config *cfg = s->cfg;
  if (!cfg || !cfg->p2p.cache_replicate) return;
  size_t max = cfg->p2p.cache_replicate_max_peers;
  if (max > sizeof s->repl / sizeof s->repl[0]) max = sizeof s->repl / sizeof s->repl[0];
  for (size_t i = 0; i < cfg->p2p.cache_replicate_target_count && s->n_repl < max; i++)
    if ((s->repl[s->n_repl] = strdup(cfg->p2p.cache_replicate_targets[i]))) s->n_repl++;
  if (s->n_repl)
    log_write(LOG_INFO, "p2p cache replication on", "{s:I}", "targets", (json_int_t)s->n_repl);
}

/* Worker thread: queue one fire-and-forget cache op per target for the loop. */
static void repl_hook(void *ud, const json_t *fwd) {
  svc_service *s = ud;
  if (json_dumpb(fwd, NULL, 0, JSON_COMPACT) > 65536) return; /* …_MAX_MESSAGE_BYTES default */
  for (size_t i = 0; i < s->n_repl; i++) {
    repl_job *j = calloc(1, sizeof *j);
    if (!j) return;
    j->target = strdup(s->repl[i]);
    j->msg = json_deep_copy(fwd);
    pthread_mutex_lock(&s->mu);
    if (!j->target || !j->msg || !s->async_init || s->stopping) {
      pthread_mutex_unlock(&s->mu);
      repl_job_free(j);
      continue;
    }
    j->next = s->jobs;
    s->jobs = j;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->async);
  }
}

/* ---------- the p2p_* tools ---------- */

static const char *arg_str(const json_t *args, const char *k) {
  const json_t *v = json_object_get(args, k);
  return json_is_string(v) && json_string_length(v) ? json_string_value(v) : NULL;
}

static double arg_num(const json_t *args, const char *k, double dflt) {
  const json_t *v = json_object_get(args, k);
  return json_is_number(v) ? json_number_value(v) : dflt;
}

static const char *arg_target(const json_t *args) {
  static const char *const keys[] = {"remote_multiaddr", "multiaddr", "remote_peer_id", "peer_id", NULL};
  for (const char *const *k = keys; *k; k++) {
    const char *v = arg_str(args, *k);
    if (v) return v;
  }
  return NULL;
}

/* One p2p_remote_* call in flight: the pending tool call and its request on a client. Freed
 * when the reply arrives or the call withdraws the request, whichever comes first. While a
 * bare PeerId is being searched for (resolver), it also holds the message to send; a call
 * withdrawn then is completed at once and the search's end frees it. */
typedef struct remote_req {
  mcp_call *call;
  svc_client *client;
  svc_service *s;
  json_t *msg;        /* while resolving */
  uint32_t tmo;
  bool resolving, cancelled;
  char target[1024];  /* a bare PeerId, or a multiaddr (for error messages) */
  bool decrypt_value; /* cache.get with p2p.encrypt: the reply's "value" wrapper is opened */
} remote_req;

/* Loop: the peer answered (or the request failed): completes the pending call. */
static void remote_done(void *ud, int err, json_t *result, json_t *error) {
  remote_req *rr = ud;
  json_t *r;
  if (err < 0) {
    char why[1600];
    svc_dial_error_text(rr->s->host, rr->target, SVC_MCPP_PROTOCOL, err, why, sizeof why);
    r = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", svc_dial_error_code(err), "detail", why);
  } else if (result) {
    r = json_deep_copy(result);
  } else {
    r = json_pack("{s:b, s:s, s:O?}", "ok", 0, "error", "rpc_error", "detail", error);
  }
  /* The host reuses a live connection to the target's PeerId even when the target names
   * another address: say which connection carried the request. */
  const char *via = svc_client_via(rr->client);
  if (r && err >= 0 && via[0]) json_object_set_new(r, "via", json_string(via));
  mcp_tool_status st = json_is_true(json_object_get(r, "ok")) ? MCP_TOOL_OK : MCP_TOOL_ERROR;
  json_t *val = json_object_get(r, "value");
  if (rr->decrypt_value && auth_fernet_is_wrapped(val)) { /* §4.5 */
    json_t *plain = auth_fernet_unwrap_json(&rr->s->fernet, val);
    if (plain) json_object_set_new(r, "value", plain);
    else json_object_set_new(r, "decrypt_error", json_true()); /* another key: shown as stored */
  }
  mcp_call_complete(rr->call, st, r ? r : json_string("out of memory"));
  free(rr);
}

/* Loop: the call was cancelled, timed out or detached: withdraw the request (the peer is told
 * to stop) and complete at once. If the client already finished it, remote_done ran and the
 * dispatcher never calls this. */
static void remote_cancel(mcp_call *call, void *ud) {
  remote_req *rr = ud;
  if (rr->resolving) { /* still searching: answer now, the search's end frees rr */
    rr->cancelled = true;
    rr->call = NULL;
    mcp_call_complete(call, MCP_TOOL_ERROR, json_pack("{s:b, s:s}", "ok", 0, "error", "cancelled"));
    return;
  }
  if (svc_client_cancel(rr->client, remote_done, rr) != 0) return; /* its completion is under way */
  mcp_call_complete(call, MCP_TOOL_ERROR, json_pack("{s:b, s:s}", "ok", 0, "error", "cancelled"));
  free(rr);
}

/* Sends rr->msg over a client to target; completes and frees rr on failure. */
static void remote_send(remote_req *rr, const char *target) {
  svc_service *s = rr->s;
  int cerr = -ESHUTDOWN;
  svc_client *c = s->host && !s->stopping ? client_for(s, target, &cerr) : NULL;
  int rc = c ? svc_client_rpc(c, rr->msg, rr->tmo, remote_done, rr) : -EINVAL;
  json_decref(rr->msg);
  rr->msg = NULL;
  if (rc != 0) {
    char why[1600];
    if (!c && cerr != -ENOMEM) svc_dial_error_text(s->host, target, SVC_MCPP_PROTOCOL, cerr, why, sizeof why);
    mcp_call_complete(rr->call, MCP_TOOL_ERROR,
                      c || cerr == -ENOMEM ? json_pack("{s:b, s:s}", "ok", 0, "error", "internal_error")
                                           : json_pack("{s:b, s:s, s:s}", "ok", 0, "error", svc_dial_error_code(cerr),
                                                       "detail", why));
    free(rr);
    return;
  }
  rr->client = c;
}

/* Loop: the search for a bare PeerId ended. */
static void remote_resolved(void *arg, int err) {
  remote_req *rr = arg;
  rr->resolving = false;
  if (rr->cancelled) {
    json_decref(rr->msg);
    free(rr);
    return;
  }
  if (err) log_write(LOG_INFO, "p2p: peer not found", "{s:s, s:s}", "peer_id", rr->target, "error", strerror(-err));
  remote_send(rr, rr->target); /* not found: the dial reports unreachable */
}

/* A bare PeerId the peer table has no address for, and a resolver to ask. */
static bool needs_search(svc_service *s, const char *target) {
  if (!s->resolve || target[0] == '/' || strlen(target) > AUTH_MAX_PEER_ID) return false;
  p2p_peer_info info;
  return !(p2p_host_peer_info(s->host, target, &info) == 0 && info.n_listen_addrs > 0);
}

/* Loop (an MCP_TOOL_ASYNC handler): sends the op message to the target and returns pending. */
static mcp_tool_status remote_op_ex(svc_service *s, mcp_call *call, json_t *args, json_t *msg /* stolen */,
                                    double timeout_s, bool decrypt_value, json_t **result) {
  const char *target = arg_target(args);
  if (!target) {
    json_decref(msg);
    *result = json_pack("{s:b, s:s}", "ok", 0, "error", "missing_remote");
    return MCP_TOOL_ERROR;
  }
  if (!msg) {
    *result = json_string("out of memory");
    return MCP_TOOL_ERROR;
  }
  if (!s->host || s->stopping) {
    json_decref(msg);
    *result = json_pack("{s:b, s:s}", "ok", 0, "error", "p2p_disabled");
    return MCP_TOOL_ERROR;
  }
  char why[1600];
  if (svc_target_problem(target, p2p_host_peer_id(s->host), why, sizeof why)) {
    json_decref(msg);
    *result = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "invalid_target", "detail", why);
    return MCP_TOOL_ERROR;
  }
  if (needs_search(s, target)) {
    remote_req *rr = calloc(1, sizeof *rr);
    if (!rr) {
      json_decref(msg);
      *result = json_string("out of memory");
      return MCP_TOOL_ERROR;
    }
    rr->call = call;
    rr->s = s;
    rr->decrypt_value = decrypt_value;
    rr->msg = msg;
    double ms = timeout_s * 1000;
    rr->tmo = ms < 1 ? 1 : ms > 3600000 ? 3600000 : (uint32_t)ms;
    snprintf(rr->target, sizeof rr->target, "%s", target);
    rr->resolving = true;
    if (s->resolve(s->resolve_ud, rr->target, s->resolve_timeout_ms, remote_resolved, rr) == 0) {
      mcp_call_on_cancel(call, remote_cancel, rr);
      return MCP_TOOL_PENDING;
    }
    rr->resolving = false;
    rr->msg = NULL;
    free(rr); /* no search: dial from the peer table as below */
  }
  int cerr = 0;
  svc_client *c = client_for(s, target, &cerr);
  remote_req *rr = c ? calloc(1, sizeof *rr) : NULL;
  if (!rr) {
    json_decref(msg);
    if (c || cerr == -ENOMEM) {
      *result = json_pack("{s:b, s:s}", "ok", 0, "error", "internal_error");
    } else {
      svc_dial_error_text(s->host, target, SVC_MCPP_PROTOCOL, cerr, why, sizeof why);
      *result = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", svc_dial_error_code(cerr), "detail", why);
    }
    return MCP_TOOL_ERROR;
  }
  rr->call = call;
  rr->client = c;
  rr->s = s;
  rr->decrypt_value = decrypt_value;
  snprintf(rr->target, sizeof rr->target, "%s", target);
  double ms = timeout_s * 1000;
  uint32_t tmo = ms < 1 ? 1 : ms > 3600000 ? 3600000 : (uint32_t)ms;
  int rc = svc_client_rpc(c, msg, tmo, remote_done, rr);
  json_decref(msg);
  if (rc != 0) {
    free(rr);
    *result = json_pack("{s:b, s:s}", "ok", 0, "error", "internal_error");
    return MCP_TOOL_ERROR;
  }
  mcp_call_on_cancel(call, remote_cancel, rr);
  return MCP_TOOL_PENDING;
}

static mcp_tool_status remote_op(svc_service *s, mcp_call *call, json_t *args, json_t *msg /* stolen */,
                                 double timeout_s, json_t **result) {
  return remote_op_ex(s, call, args, msg, timeout_s, false, result);
}

static mcp_tool_status t_remote_status(mcp_call *call, json_t *args, json_t **result, void *ud) {
  double t = arg_num(args, "timeout_s", 10);
  json_t *m = json_pack("{s:s, s:b}", "op", "status", "detail", json_is_true(json_object_get(args, "detail")));
  return remote_op(ud, call, args, m, t + 5, result);
}

static mcp_tool_status t_remote_call_tool(mcp_call *call, json_t *args, json_t **result, void *ud) {
  const char *tool = arg_str(args, "tool_name");
  if (!tool) tool = arg_str(args, "tool");
  if (!tool) {
    *result = json_pack("{s:b, s:s}", "ok", 0, "error", "missing_tool_name");
    return MCP_TOOL_ERROR;
  }
  double t = arg_num(args, "timeout_s", 30);
  json_t *a = json_object_get(args, "args");
  json_t *m = json_pack("{s:s, s:s, s:O, s:f}", "op", "call_tool", "tool_name", tool, "args", a ? a : json_object(),
                        "timeout_s", t);
  if (!a) json_decref(json_object_get(m, "args")); /* drop the extra ref of the {} made above */
  return remote_op(ud, call, args, m, t + 5, result);
}

static mcp_tool_status t_remote_submit(mcp_call *call, json_t *args, json_t **result, void *ud) {
  const char *type = arg_str(args, "task_type");
  json_t *payload = json_object_get(args, "payload");
  json_t *m = json_pack("{s:s, s:s, s:s, s:O}", "op", "submit", "task_type", type ? type : "tool.call", "model_name",
                        arg_str(args, "model_name") ? arg_str(args, "model_name") : "", "payload",
                        payload ? payload : json_null());
  const char *ik = arg_str(args, "idempotency_key");
  if (ik) json_object_set_new(m, "idempotency_key", json_string(ik));
  return remote_op(ud, call, args, m, 35, result);
}

static mcp_tool_status t_remote_get(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *m = json_pack("{s:s, s:s?}", "op", "get", "task_id", arg_str(args, "task_id"));
  return remote_op(ud, call, args, m, 35, result);
}

static mcp_tool_status t_remote_wait(mcp_call *call, json_t *args, json_t **result, void *ud) {
  double t = arg_num(args, "timeout_s", 60);
  json_t *m = json_pack("{s:s, s:s?, s:f}", "op", "wait", "task_id", arg_str(args, "task_id"), "timeout_s", t);
  return remote_op(ud, call, args, m, t + 15, result);
}

static mcp_tool_status cache_op(const char *op, mcp_call *call, json_t *args, json_t **result, void *ud) {
  svc_service *s = ud;
  double t = arg_num(args, "timeout_s", 10);
  json_t *m = json_pack("{s:s, s:s?}", "op", op, "key", arg_str(args, "key"));
  if (strcmp(op, "cache.set") == 0) {
    json_t *v = json_object_get(args, "value");
    /* p2p.encrypt (§4.5): the value rests encrypted in the other peer's cache */
    json_t *enc = s->has_fernet ? auth_fernet_wrap_json(&s->fernet, v ? v : json_null()) : NULL;
    if (enc) json_object_set_new(m, "value", enc);
    else json_object_set(m, "value", v ? v : json_null());
    json_t *ttl = json_object_get(args, "ttl_s");
    if (json_is_number(ttl)) json_object_set(m, "ttl_s", ttl);
  }
  return remote_op_ex(s, call, args, m, t + 2, s->has_fernet && strcmp(op, "cache.get") == 0, result);
}
static mcp_tool_status t_cache_get(mcp_call *c, json_t *a, json_t **r, void *ud) { return cache_op("cache.get", c, a, r, ud); }
static mcp_tool_status t_cache_has(mcp_call *c, json_t *a, json_t **r, void *ud) { return cache_op("cache.has", c, a, r, ud); }
static mcp_tool_status t_cache_set(mcp_call *c, json_t *a, json_t **r, void *ud) { return cache_op("cache.set", c, a, r, ud); }
static mcp_tool_status t_cache_del(mcp_call *c, json_t *a, json_t **r, void *ud) { return cache_op("cache.delete", c, a, r, ud); }

/* p2p_service_status and p2p_list_peers read loop state: MCP_TOOL_ASYNC handlers on the loop
 * that answer at once. */
static mcp_tool_status t_service_status(mcp_call *call, json_t *args, json_t **result, void *ud) {
  svc_service *s = ud;
  const json_t *ip = json_object_get(args, "include_peers");
  *result = status_json(s, !ip || json_is_true(ip), (int)arg_num(args, "peers_limit", 50));
  if (*result && (s->q || s->cache)) { /* the stores: the reason and file for the operator */
    const mcp_auth *a = mcp_call_auth(call);
    json_object_set_new(*result, "storage",
                        store_health_json(s->q, s->cache, a && (auth_ctx_is_local(a) || auth_allows_mask(a, AUTH_ADMIN))));
  }
  return *result ? MCP_TOOL_OK : MCP_TOOL_ERROR;
}

static mcp_tool_status t_list_peers(mcp_call *call, json_t *args, json_t **result, void *ud) {
  svc_service *s = ud;
  (void)call;
  unsigned sources = 0, bit;
  const json_t *src = json_object_get(args, "source");
  size_t i;
  const json_t *v;
  if (json_is_string(src) && peerstore_source_parse(json_string_value(src), &bit) == 0) sources |= bit;
  json_array_foreach(json_is_array(src) ? src : NULL, i, v) {
    if (json_is_string(v) && peerstore_source_parse(json_string_value(v), &bit) == 0) sources |= bit;
  }
  *result = json_pack("{s:b, s:o}", "ok", 1, "peers",
                      peers_json(s, (int)arg_num(args, "limit", 100), json_is_true(json_object_get(args, "alive_only")),
                                 sources));
  return *result ? MCP_TOOL_OK : MCP_TOOL_ERROR;
}

#define REMOTE_PROPS                                                                                               \
  "\"remote_multiaddr\":{\"type\":\"string\",\"description\":\"/ip4/…/tcp/…/p2p/<id>\"},"                         \
  "\"remote_peer_id\":{\"type\":\"string\",\"description\":\"PeerId already known to this node\"},"               \
  "\"timeout_s\":{\"type\":\"number\",\"minimum\":0,\"maximum\":300}"

static const struct {
  const char *name, *title, *desc, *schema;
  mcp_tool_fn fn;
} k_tools[] = {
    {"p2p_service_status", "P2P service status", "This node's P2P service: peer id, addresses, streams, peers, workers.",
     "{\"type\":\"object\",\"properties\":{\"include_peers\":{\"type\":\"boolean\",\"default\":true},"
     "\"peers_limit\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000,\"default\":50}}}",
     t_service_status},
    {"p2p_list_peers", "List peers",
     "The peer table: every peer this node heard of (connections, identify, mDNS, the DHT, bootstrap, rendezvous), "
     "most recent first, with peer_id, addrs, last_seen, sources, first_seen, connected, latency_ms, agent, protocols.",
     "{\"type\":\"object\",\"properties\":{\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"default\":100},"
     "\"alive_only\":{\"type\":\"boolean\",\"default\":false,\"description\":\"connected, or contacted within "
     "p2p.peer_timeout_seconds\"},\"source\":{\"description\":\"only peers heard of from these\",\"oneOf\":[{\"$ref\":"
     "\"#/$defs/src\"},{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/src\"},\"maxItems\":6}]}},\"$defs\":{\"src\":"
     "{\"type\":\"string\",\"enum\":[\"manual\",\"identify\",\"mdns\",\"dht\",\"bootstrap\",\"rendezvous\"]}}}",
     t_list_peers},
    {"p2p_remote_status", "Remote status", "The TaskQueue status of another peer (op status).",
     "{\"type\":\"object\",\"properties\":{\"detail\":{\"type\":\"boolean\"},\"peer_id\":{\"type\":\"string\"},"
     "\"multiaddr\":{\"type\":\"string\"}," REMOTE_PROPS "}}",
     t_remote_status},
    {"p2p_remote_call_tool", "Call a tool on a peer", "Runs a tool on another peer (op call_tool) and returns its reply.",
     "{\"type\":\"object\",\"required\":[\"tool_name\"],\"properties\":{\"tool_name\":{\"type\":\"string\"},"
     "\"args\":{\"type\":\"object\"}," REMOTE_PROPS "}}",
     t_remote_call_tool},
    {"p2p_remote_submit_task", "Submit a task to a peer", "Queues a task on another peer (op submit).",
     "{\"type\":\"object\",\"required\":[\"payload\"],\"properties\":{\"task_type\":{\"type\":\"string\",\"default\":"
     "\"tool.call\"},\"model_name\":{\"type\":\"string\"},\"payload\":{},\"idempotency_key\":{\"type\":\"string\"},"
     REMOTE_PROPS "}}",
     t_remote_submit},
    {"p2p_remote_task_get", "Get a task from a peer", "A task as another peer's queue has it (op get).",
     "{\"type\":\"object\",\"required\":[\"task_id\"],\"properties\":{\"task_id\":{\"type\":\"string\"}," REMOTE_PROPS "}}",
     t_remote_get},
    {"p2p_remote_task_wait", "Wait for a task on a peer",
     "Waits until a task on another peer ends or timeout_s passes (op wait, capped by the peer).",
     "{\"type\":\"object\",\"required\":[\"task_id\"],\"properties\":{\"task_id\":{\"type\":\"string\"}," REMOTE_PROPS "}}",
     t_remote_wait},
    {"p2p_remote_cache_get", "Read a peer's cache", "op cache.get on another peer.",
     "{\"type\":\"object\",\"required\":[\"key\"],\"properties\":{\"key\":{\"type\":\"string\"}," REMOTE_PROPS "}}",
     t_cache_get},
    {"p2p_remote_cache_has", "Check a peer's cache", "op cache.has on another peer.",
     "{\"type\":\"object\",\"required\":[\"key\"],\"properties\":{\"key\":{\"type\":\"string\"}," REMOTE_PROPS "}}",
     t_cache_has},
    {"p2p_remote_cache_set", "Write a peer's cache", "op cache.set on another peer.",
     "{\"type\":\"object\",\"required\":[\"key\",\"value\"],\"properties\":{\"key\":{\"type\":\"string\"},\"value\":{},"
     "\"ttl_s\":{\"type\":[\"number\",\"null\"]}," REMOTE_PROPS "}}",
     t_cache_set},
    {"p2p_remote_cache_delete", "Delete from a peer's cache", "op cache.delete on another peer.",
     "{\"type\":\"object\",\"required\":[\"key\"],\"properties\":{\"key\":{\"type\":\"string\"}," REMOTE_PROPS "}}",
     t_cache_del},
};

/* ---------- life cycle ---------- */

int svc_service_new(const config *cfg, const auth_policy *policy, tq_queue *q, ttlcache *c, mcp_registry *reg,
                    svc_service **out) {
  svc_service *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->cfg = cfg;
  s->q = q;
  s->cache = c;
  s->policy = policy;
  if (cfg && cfg->p2p.encrypt && (cfg->p2p.encryption_key || cfg->p2p.token)) {
    auth_fernet_key_derive(cfg->p2p.encryption_key ? cfg->p2p.encryption_key : cfg->p2p.token, &s->fernet);
    s->has_fernet = true;
  }
  pthread_mutex_init(&s->mu, NULL);
  int rc = -ENOMEM;
  taskq_config tc;
  taskq_config_default(&tc);
  tc.queue = q;
  tc.cache = c;
  tc.policy = s->policy;
  tc.peer_id = "";
  tc.session = cfg ? cfg->p2p.session : NULL;
  tc.protocol = SVC_MCPP_PROTOCOL; /* what status names to a stranger (issue 9 item 5) */
  if (cfg && cfg->queue.wait_max_seconds) tc.wait_max_s = cfg->queue.wait_max_seconds;
  if (cfg) tc.max_waits_per_peer = cfg->p2p.max_waits_per_peer;
  tc.deterministic = cfg && cfg->p2p.deterministic;
  /* Python mesh workers complete without worker_id; accepting that gives up fencing. */
  tc.compat_unfenced_complete = cfg && cfg->p2p.unfenced_complete;
  tc.trust_tiers = cfg && cfg->p2p.trust_tiers;
  if (cfg) tc.baseline_max_priority = (int)cfg->p2p.baseline_max_priority;
  tc.status_hook = status_hook;
  tc.status_ud = s;
  repl_configure(s);
  if (s->n_repl) {
    tc.replicate = repl_hook;
    tc.replicate_ud = s;
  }
  rc = -ENOMEM;
  if (!(s->tq = taskq_new(&tc))) goto fail;
  if ((rc = taskq_rpc_tool_register(reg, s->tq)) != 0) goto fail;
  /* The p2p_* tools that reach other peers need the libp2p peer: without it (--no-p2p) they
   * are not offered at all. */
  for (size_t i = 0; (!cfg || cfg->p2p.enabled) && i < sizeof k_tools / sizeof k_tools[0]; i++) {
    if (cfg && config_tool_disabled(cfg, k_tools[i].name)) continue;
    mcp_tool_def d = {0};
    d.name = k_tools[i].name;
    d.category = "p2p";
    d.title = k_tools[i].title;
    d.description = k_tools[i].desc;
    d.input_schema = k_tools[i].schema;
    d.scopes = AUTH_SCOPES(AUTH_TOOL_CALL);
    /* local only (a peer must not make us dial others); on the loop, holding no thread */
    d.flags = MCP_TOOL_ASYNC;
    d.timeout_ms = 330000;
    d.fn = k_tools[i].fn;
    d.ud = s;
    if ((rc = mcp_registry_add(reg, &d)) != 0) goto fail;
  }
  log_write(LOG_DEBUG, "p2p service configured", "{s:I, s:b, s:b, s:b, s:b}", "trusted_peers",
            (json_int_t)auth_policy_peer_count(s->policy), "token", auth_policy_has_token(s->policy), "jwt",
            auth_policy_jwt(s->policy) != NULL, "trust_tiers", cfg && cfg->p2p.trust_tiers, "legacy",
            cfg && cfg->p2p.enable_legacy_protocol);
  *out = s;
  return 0;
fail:
  for (size_t i = 0; i < s->n_repl; i++) free(s->repl[i]);
  taskq_free(s->tq);
  pthread_mutex_destroy(&s->mu);
  free(s);
  return rc;
}

void svc_service_set_mcp_tasks(svc_service *s, const mcp_tasks_backend *tasks) { s->mcp_tasks = tasks; }

void svc_service_set_nat(svc_service *s, p2p_nat *nat, bool autonat) {
  s->nat = nat;
  s->autonat_supported = autonat;
}

void svc_service_set_resolver(svc_service *s, svc_resolve_fn fn, void *ud, uint32_t timeout_ms) {
  s->resolve = fn;
  s->resolve_ud = ud;
  s->resolve_timeout_ms = timeout_ms ? timeout_ms : 5000;
}

void svc_service_set_worker_claim(svc_service *s, taskq_local_claim_fn fn, void *ud) {
  s->worker_claim = fn;
  s->worker_claim_ud = ud;
}

/* The host's reserved connection slots go to peers we know: a trusted PeerId, or one that
 * presented a valid token on an earlier stream (issue 9 item 1). */
static bool peer_gate(void *ud, const char *peer_id) {
  svc_service *s = ud;
  auth_ctx a;
  auth_policy_peer_ctx(s->policy, peer_id, &a);
  return !auth_scopes_empty(&a.scopes) || svc_server_peer_authorized(s->server, peer_id);
}

int svc_service_start(svc_service *s, uv_loop_t *loop, p2p_host *host, mcp_dispatcher *d) {
  s->loop = loop;
  s->host = host;
  s->disp = d;
  s->started_at = clock_wall_s();
  if (host) snprintf(s->peer_id, sizeof s->peer_id, "%s", p2p_host_peer_id(host));
  int rc = taskq_set_peer_id(s->tq, s->peer_id);
  if (rc != 0) return rc;
  /* capabilities: the task types a worker here runs (tool.call + remote command tools) */
  s->task_types = taskq_runner_default_types(mcp_dispatcher_registry(d));
  s->n_workers = s->cfg && s->q ? s->cfg->p2p.workers : 0;
  json_t *caps = json_pack("{s:O, s:[], s:{}, s:{}, s:{}, s:[]}", "task_types", s->task_types ? s->task_types : json_array(),
                           "models", "endpoints_by_model", "endpoint_types_by_model", "hwtest", "resource_keys");
  if (caps) {
    rc = taskq_set_capabilities(s->tq, caps);
    json_decref(caps);
    if (rc != 0) return rc;
  }
  rc = uv_async_init(loop, &s->async, on_async);
  if (rc != 0) return rc;
  s->async.data = s;
  pthread_mutex_lock(&s->mu);
  s->async_init = true;
  pthread_mutex_unlock(&s->mu);
  if (host) {
    atomic_store(&s->reach, (int)p2p_host_reachability(host));
    if ((rc = p2p_host_subscribe(host, P2P_EV_PEER_IDENTIFIED | P2P_EV_IDENTIFY_PUSH | P2P_EV_REACHABILITY_CHANGED,
                                 on_identify, s)) != 0)
      return rc;
    svc_server_opts so = {0};
    so.loop = loop;
    so.host = host;
    so.dispatcher = d;
    so.tasks = s->mcp_tasks;
    so.policy = s->policy;
    so.max_frame_bytes = s->cfg ? s->cfg->p2p.max_frame_bytes : 0;
    so.max_streams_per_peer = s->cfg ? s->cfg->p2p.max_streams_per_peer : 0;
    so.rate_per_s = s->cfg ? s->cfg->p2p.rate_limit_per_second : 0;
    if (s->cfg && s->cfg->p2p.rate_limit_per_second == 0) so.rate_per_s = SVC_RATE_UNLIMITED; /* 0 = no limit */
    so.rate_burst = so.rate_per_s > 0 ? so.rate_per_s * 2 : 0;
    so.auth_rate_per_s = s->cfg ? s->cfg->p2p.authorized_rate_limit_per_second : 0;
    so.auth_rate_burst = so.auth_rate_per_s * 2;
    so.legacy = s->cfg && s->cfg->p2p.enable_legacy_protocol;
    so.trust_tiers = s->cfg && s->cfg->p2p.trust_tiers;
    if (s->cfg) {
      so.frame_timeout_ms = s->cfg->p2p.frame_timeout_ms;
      so.stream_budget = s->cfg->p2p.stream_budget_bytes;
      so.peer_budget = s->cfg->p2p.peer_budget_bytes;
      so.process_budget = s->cfg->p2p.process_budget_bytes;
      so.stranger_max_frame_bytes = s->cfg->p2p.stranger_max_frame_bytes;
      so.stranger_max_streams = s->cfg->p2p.stranger_max_streams;
      so.max_inflight_per_peer = s->cfg->p2p.max_inflight_per_peer;
    }
    if ((rc = svc_server_start(&so, &s->server)) != 0) return rc;
    p2p_host_set_peer_gate(host, peer_gate, s);
  }
  unsigned nw = s->cfg ? s->cfg->p2p.workers : 0;
  if (nw > 0 && s->q) {
    taskq_local_source_opts lo = {.queue = s->q, .pool = mcp_dispatcher_pool(d), .claim_fn = s->worker_claim,
                                  .claim_ud = s->worker_claim_ud};
    if ((rc = taskq_local_source_new(&lo, &s->local_source)) != 0) return rc;
    char wid[200];
    snprintf(wid, sizeof wid, "%s", s->peer_id[0] ? s->peer_id : "local");
    /* they are kicked when work is queued (on_work), so their back-off only covers what the
     * queue cannot announce: a delayed retry falling due, another process's commits */
    taskq_runner_opts ro = {.loop = loop, .dispatcher = d, .sources = &s->local_source, .n_sources = 1, .slots = nw,
                            .worker_id = wid, .fernet = s->has_fernet ? &s->fernet : NULL, .idle_poll_ms = 2000};
    if ((rc = taskq_runner_start(&ro, &s->workers)) != 0) return rc;
    if (tq_work_watch(s->q, on_work, s) == 0) s->watching = true;
  }
  s->started = true;
  return 0;
}

static void stop_step_done(void *ud) {
  svc_service *s = ud;
  if (--s->stop_pending == 0 && s->stop_done) s->stop_done(s->stop_ud);
}

static void async_closed(uv_handle_t *h) { stop_step_done(h->data); }

void svc_service_stop(svc_service *s, uint32_t deadline_ms, void (*done)(void *ud), void *ud) {
  s->stop_done = done;
  s->stop_ud = ud;
  if (s->host) {
    (void)p2p_host_unsubscribe(s->host, on_identify, s);
    if (s->server) p2p_host_set_peer_gate(s->host, NULL, NULL);
  }
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  repl_job *list = s->jobs;
  s->jobs = NULL;
  pthread_mutex_unlock(&s->mu);
  while (list) { /* replication not yet sent is dropped */
    repl_job *j = list;
    list = j->next;
    repl_job_free(j);
  }
  for (size_t i = 0; i < SVC_MAX_CLIENTS; i++)
    if (s->clients[i].c) {
      svc_client_close(s->clients[i].c); /* pending p2p_remote_* calls complete (-ECANCELED) */
      free(s->clients[i].target);
      s->clients[i].c = NULL;
      s->clients[i].target = NULL;
    }
  s->stop_pending = 1; /* this function's own step, released at the end */
  if (s->server) {
    s->stop_pending++;
    svc_server_stop(s->server, deadline_ms, stop_step_done, s);
  }
  if (s->workers) {
    s->stop_pending++;
    taskq_runner_stop(s->workers, deadline_ms, stop_step_done, s);
  }
  if (s->watching) { /* no on_work (no uv_async_send) after this returns */
    tq_work_unwatch(s->q, on_work, s);
    s->watching = false;
  }
  if (s->async_init) {
    s->stop_pending++;
    uv_close((uv_handle_t *)&s->async, async_closed);
  }
  stop_step_done(s);
}

void svc_service_free(svc_service *s) {
  if (!s) return;
  if (s->watching) tq_work_unwatch(s->q, on_work, s); /* freed without a stop */
  svc_server_free(s->server);
  taskq_runner_free(s->workers);
  taskq_source_free(s->local_source); /* after the runner: no job of it is left */
  taskq_free(s->tq);
  for (size_t i = 0; i < s->n_repl; i++) free(s->repl[i]);
  while (s->jobs) { /* never stopped: replication jobs still queued */
    repl_job *j = s->jobs;
    s->jobs = j->next;
    repl_job_free(j);
  }
  json_decref(s->task_types);
  auth_fernet_key_wipe(&s->fernet);
  pthread_mutex_destroy(&s->mu);
  free(s);
}
