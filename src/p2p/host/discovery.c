/* discovery.c — mDNS, DHT, rendezvous, bootstrap and peer-table upkeep as one part. See
 * discovery.h. */
#include "p2p/host/discovery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/host/dns_resolve.h"
#include "p2p/host/peers.h"
#include "p2p/proto/dnsaddr.h"
#include "util/log.h"
#include "util/metrics.h"

#define TICK_MS 100
#define UPKEEP_MS 60000
#define MAX_BOOT_OUT 64

/* ---------------------------------------------------------------- metrics
 * What the Python P2PMetricsCollector's track_peer_discovery and track_bootstrap_operation
 * were meant to record (docs/observability.md). Loop thread only; process-wide families. */

enum { SRC_MDNS, SRC_DHT, SRC_RENDEZVOUS, SRC_BOOTSTRAP, N_SRC };
static const char *const k_sources[N_SRC] = {"mdns", "dht", "rendezvous", "bootstrap"};
enum { LK_DHT, LK_RENDEZVOUS, N_LK };
static const char *const k_lookup_sources[N_LK] = {"dht", "rendezvous"};
enum { LK_FOUND, LK_NOT_FOUND, N_LK_OUT };
static const char *const k_lookup_outcomes[N_LK_OUT] = {"found", "not_found"};
enum { BOOT_OK, BOOT_FAILED, N_BOOT_OUT };
static const char *const k_boot_outcomes[N_BOOT_OUT] = {"ok", "failed"};

static _Atomic uint64_t g_found_cells[N_SRC];
static metrics_family g_peers_found = {
    .name = "peermcp_discovery_peers_found_total",
    .help = "Peers found, by source: mdns (announcements received; a peer re-announcing counts again), dht (a "
            "PeerId lookup that found the peer), rendezvous (peers a namespace find returned), bootstrap "
            "(bootstrap peers connected at the end of a bootstrap round).",
    .kind = METRICS_COUNTER,
    .ndims = 1,
    .dims = {{"source", k_sources, N_SRC, NULL}},
    .cells = g_found_cells,
};
METRICS_REGISTER(g_peers_found)
static _Atomic uint64_t g_lookup_cells[N_LK * N_LK_OUT];
static metrics_family g_lookups = {
    .name = "peermcp_discovery_lookups_total",
    .help = "Discovery lookups finished, by source (dht: a PeerId lookup for a resolve; rendezvous: a namespace "
            "find) and outcome.",
    .kind = METRICS_COUNTER,
    .ndims = 2,
    .dims = {{"source", k_lookup_sources, N_LK, NULL}, {"outcome", k_lookup_outcomes, N_LK_OUT, NULL}},
    .cells = g_lookup_cells,
};
METRICS_REGISTER(g_lookups)
static _Atomic uint64_t g_boot_round_cells[N_BOOT_OUT];
static metrics_family g_boot_rounds = {
    .name = "peermcp_bootstrap_rounds_total",
    .help = "Bootstrap rounds over (dial the bootstrap peers, then a DHT lookup of our own id): ok when at least one "
            "peer answered, failed when none did or no bootstrap address was usable.",
    .kind = METRICS_COUNTER,
    .ndims = 1,
    .dims = {{"outcome", k_boot_outcomes, N_BOOT_OUT, NULL}},
    .cells = g_boot_round_cells,
};
METRICS_REGISTER(g_boot_rounds)
static _Atomic uint64_t g_boot_dial_cells[N_BOOT_OUT];
static metrics_family g_boot_dials = {
    .name = "peermcp_bootstrap_dials_total",
    .help = "Bootstrap peers dialed in a round, by outcome: ok = connected at the end of the round.",
    .kind = METRICS_COUNTER,
    .ndims = 1,
    .dims = {{"outcome", k_boot_outcomes, N_BOOT_OUT, NULL}},
    .cells = g_boot_dial_cells,
};
METRICS_REGISTER(g_boot_dials)

typedef struct resolve_op {
  p2p_discovery *d;
  char peer_id[PEERID_STR_MAX];
  uint64_t deadline;
  uint64_t kad_retry_at;    /* 0: no retry scheduled; else when the DHT lookup runs again */
  bool done, kad_pending;
  bool kad_waits;           /* the DHT lookup starts when bootstrap is over */
  p2p_discovery_resolve_fn cb;
  void *ud;
  struct resolve_op *next;
} resolve_op;

typedef struct ns_op {
  p2p_discovery *d;
  bool done, rv_pending;
  bool waits_boot;          /* the rendezvous find starts when bootstrap is over */
  p2p_discovery_peers_fn cb;
  void *ud;
  struct ns_op *next;
} ns_op;

/* /dnsaddr expansion on a worker thread: in → out. */
typedef struct boot_work {
  uv_work_t req;
  p2p_discovery *d;
  char **in;
  size_t n_in;
  bool resolve;
  char *out[MAX_BOOT_OUT];
  size_t n_out;
} boot_work;

struct p2p_discovery {
  p2p_host *h;
  uv_loop_t *loop;
  p2p_discovery_config cfg;
  char **boot;
  size_t n_boot;
  p2p_mdns *mdns;
  p2p_kad *kad;
  p2p_rendezvous *rv;
  uv_timer_t tick;
  bool tick_open, started, closing, boot_running;
  bool booting; /* bootstrap (expansion + the DHT's first lookup) not over yet */
  unsigned boot_rounds;     /* bootstrap rounds over (p2p_discovery_boot_rounds) */
  uint64_t boot_retry_at;   /* a resolve may dial the bootstrap peers again from then on */
  uint32_t boot_backoff_ms; /* 0, then BOOT_RETRY_MIN_MS doubling to BOOT_RETRY_MAX_MS */
  char (*round_ids)[PEERID_STR_MAX]; /* the running round's bootstrap peers (metrics), or NULL */
  size_t n_round_ids;
  uint64_t next_upkeep;
  resolve_op *resolves;
  ns_op *finds;
  int closing_parts;
  void (*done)(void *);
  void *done_ud;
  p2p_service svc;              /* p2p_discovery_add_to_host */
  p2p_service_handler handler;
  bool attached;                /* a host service (else the DHT handler is registered by hand) */
  bool handler_registered;
};

p2p_kad *p2p_discovery_kad(p2p_discovery *d) { return d->kad; }
unsigned p2p_discovery_boot_rounds(const p2p_discovery *d) { return d->boot_rounds; }
p2p_mdns *p2p_discovery_mdns(p2p_discovery *d) { return d->mdns; }

static bool has_addr(p2p_discovery *d, const char *peer_id) {
  p2p_peer_info info;
  return p2p_host_peer_info(d->h, peer_id, &info) == 0 && info.n_listen_addrs > 0;
}

/* ---------------------------------------------------------------- resolve */

static void resolve_finish(resolve_op *op, int err) {
  if (op->done) return;
  op->done = true;
  if (op->cb) op->cb(op->d, err, op->peer_id, op->ud);
}

static void reap_resolves(p2p_discovery *d) {
  for (resolve_op **pp = &d->resolves; *pp;) {
    resolve_op *op = *pp;
    if (op->done && !op->kad_pending) {
      *pp = op->next;
      free(op);
    } else {
      pp = &op->next;
    }
  }
}

static void on_kad_found(p2p_kad *k, int err, const kad_peer_info *peers, size_t n, const p2p_kad_op_stats *st,
                         void *ud);

/* A DHT lookup that ended without the peer's addresses is retried every KAD_RETRY_MS until the
 * deadline: one lookup can miss on a busy network (a responder slow to answer, a routing table
 * that dropped the peer for a moment) and the caller gave us the whole deadline to find it. */
#define KAD_RETRY_MS 1000

/* A resolve that needs the DHT while its routing table is empty — every bootstrap dial failed,
 * e.g. refused by js-libp2p's limit of 5 inbound connections per second from one IP — dials
 * the bootstrap peers again (a lookup in an empty table finds nothing until the deadline), at
 * most once per back-off: 0.5 s, doubling to 8 s, back to 0.5 s once the table has peers. */
#define BOOT_RETRY_MIN_MS 500
#define BOOT_RETRY_MAX_MS 8000

static void bootstrap(p2p_discovery *d);

/* True when the resolve's lookup must wait for a bootstrap (running, or started now). */
static bool boot_again_if_alone(p2p_discovery *d, uint64_t now) {
  if (!d->kad || !d->n_boot || d->closing) return false;
  if (d->booting) return true;
  p2p_kad_stats st;
  p2p_kad_get_stats(d->kad, &st);
  if (st.table_size > 0) {
    d->boot_backoff_ms = 0;
    return false;
  }
  if (now < d->boot_retry_at) return false;
  d->boot_backoff_ms = d->boot_backoff_ms ? d->boot_backoff_ms * 2 : BOOT_RETRY_MIN_MS;
  if (d->boot_backoff_ms > BOOT_RETRY_MAX_MS) d->boot_backoff_ms = BOOT_RETRY_MAX_MS;
  d->boot_retry_at = now + d->boot_backoff_ms;
  log_info("dht: routing table empty, dialing the bootstrap peers again", "{s:i, s:i}", "bootstrap", (int)d->n_boot,
           "next_retry_ms", (int)d->boot_backoff_ms);
  bootstrap(d);
  return d->booting;
}

static void check_resolves(p2p_discovery *d) {
  uint64_t now = uv_now(d->loop);
  for (resolve_op *op = d->resolves; op; op = op->next) {
    if (op->done) continue;
    if (has_addr(d, op->peer_id)) {
      resolve_finish(op, 0);
    } else if (now >= op->deadline) {
      resolve_finish(op, -ETIMEDOUT);
    } else if (!op->kad_pending && !op->kad_waits && op->kad_retry_at && now >= op->kad_retry_at && d->kad &&
               !d->closing) {
      op->kad_retry_at = 0;
      if (boot_again_if_alone(d, now)) op->kad_waits = op->kad_pending = true; /* boot_over looks it up */
      else if (p2p_kad_find_peer(d->kad, op->peer_id, on_kad_found, op) == 0) op->kad_pending = true;
      else if (!d->mdns) resolve_finish(op, -ENOENT);
    } else if (!op->kad_pending && !op->kad_waits && !op->kad_retry_at && !d->mdns) {
      resolve_finish(op, -ENOENT); /* no DHT to ask */
    }
  }
}

static void on_kad_found(p2p_kad *k, int err, const kad_peer_info *peers, size_t n, const p2p_kad_op_stats *st,
                         void *ud) {
  (void)k;
  (void)peers;
  (void)n;
  (void)st;
  resolve_op *op = ud;
  op->kad_pending = false;
  if (err != -ECANCELED) {
    bool found = has_addr(op->d, op->peer_id);
    metrics_inc(&g_lookups, metrics_series2(&g_lookups, LK_DHT, found ? LK_FOUND : LK_NOT_FOUND));
    if (found) metrics_inc(&g_peers_found, SRC_DHT);
  }
  /* Found: its addresses went to the peer table (check_resolves answers). Not found, or found
   * without an address: look again shortly, until the deadline. */
  if (!op->done && err != -ECANCELED && !has_addr(op->d, op->peer_id))
    op->kad_retry_at = uv_now(op->d->loop) + KAD_RETRY_MS;
  check_resolves(op->d);
}

int p2p_discovery_resolve(p2p_discovery *d, const char *peer_id, uint32_t timeout_ms, p2p_discovery_resolve_fn cb,
                          void *ud) {
  peerid id;
  if (d->closing || !d->started) return -ESHUTDOWN;
  if (peerid_parse(peer_id, strlen(peer_id), &id)) return -EINVAL;
  resolve_op *op = calloc(1, sizeof *op);
  if (!op) return -ENOMEM;
  op->d = d;
  if (peerid_to_string(&id, op->peer_id, sizeof op->peer_id)) {
    free(op);
    return -EINVAL;
  }
  op->deadline = uv_now(d->loop) + timeout_ms;
  op->cb = cb;
  op->ud = ud;
  if (!has_addr(d, op->peer_id)) {
    if (d->kad && boot_again_if_alone(d, uv_now(d->loop))) op->kad_waits = op->kad_pending = true;
    else if (d->kad && p2p_kad_find_peer(d->kad, op->peer_id, on_kad_found, op) == 0) op->kad_pending = true;
    if (d->mdns) p2p_mdns_query_now(d->mdns);
  }
  op->next = d->resolves;
  d->resolves = op; /* answered from the tick, never from inside this call */
  return 0;
}

/* ---------------------------------------------------------------- namespace */

static void ns_report(ns_op *op, const p2p_rendezvous_peer *rv_peers, size_t n_rv) {
  p2p_discovery *d = op->d;
  const char *ids[P2P_RV_MAX_PEERS + 64];
  size_t n = 0;
  for (size_t i = 0; i < n_rv && n < P2P_RV_MAX_PEERS; i++) ids[n++] = rv_peers[i].peer_id;
  if (d->mdns) {
    p2p_peer_row rows[64];
    p2p_peer_filter f = {.sources = P2P_SRC_MDNS};
    size_t nr = p2p_host_list_peers(d->h, &f, rows, 64);
    for (size_t i = 0; i < nr; i++) {
      bool dup = false;
      for (size_t k = 0; k < n && !dup; k++) dup = strcmp(ids[k], rows[i].peer_id) == 0;
      if (!dup && rows[i].n_addrs) ids[n++] = rows[i].peer_id;
    }
  }
  op->done = true;
  if (op->cb) op->cb(d, n ? 0 : -ENOENT, ids, n, op->ud);
}

static void on_rv_found(p2p_rendezvous *r, int err, const p2p_rendezvous_peer *peers, size_t n, void *ud) {
  (void)r;
  ns_op *op = ud;
  op->rv_pending = false;
  if (err != -ECANCELED) {
    metrics_inc(&g_lookups, metrics_series2(&g_lookups, LK_RENDEZVOUS, !err && n ? LK_FOUND : LK_NOT_FOUND));
    if (!err) metrics_add(&g_peers_found, SRC_RENDEZVOUS, n);
  }
  if (!op->done) ns_report(op, err ? NULL : peers, err ? 0 : n);
}

int p2p_discovery_find_namespace(p2p_discovery *d, p2p_discovery_peers_fn cb, void *ud) {
  if (d->closing || !d->started) return -ESHUTDOWN;
  if (!d->rv && !d->mdns) return -ENOTSUP;
  ns_op *op = calloc(1, sizeof *op);
  if (!op) return -ENOMEM;
  op->d = d;
  op->cb = cb;
  op->ud = ud;
  if (d->rv && d->booting) {
    op->waits_boot = op->rv_pending = true;
  } else if (d->rv) {
    int rc = p2p_rendezvous_find(d->rv, on_rv_found, op);
    if (rc) {
      free(op);
      return rc;
    }
    op->rv_pending = true;
  }
  op->next = d->finds;
  d->finds = op; /* mDNS-only finds are answered from the tick */
  return 0;
}

static void check_finds(p2p_discovery *d) {
  for (ns_op **pp = &d->finds; *pp;) {
    ns_op *op = *pp;
    if (!op->done && !op->rv_pending) ns_report(op, NULL, 0);
    if (op->done && !op->rv_pending) {
      *pp = op->next;
      free(op);
    } else {
      pp = &op->next;
    }
  }
}

/* ---------------------------------------------------------------- bootstrap */

static void maybe_done(p2p_discovery *d);

static void boot_run(uv_work_t *req) {
  boot_work *w = req->data;
  for (size_t i = 0; i < w->n_in && w->n_out < MAX_BOOT_OUT; i++) {
    multiaddr ma;
    if (multiaddr_parse(w->in[i], &ma) != 0) continue;
    size_t off = 0;
    multiaddr_component c;
    if (multiaddr_next(&ma, &off, &c) == 1 && c.code == MA_DNSADDR) {
      if (!w->resolve) continue;
      multiaddr found[16];
      size_t n = 0;
      if (dnsaddr_resolve(&ma, dns_resolve_txt, NULL, found, 16, &n) != 0) continue;
      for (size_t k = 0; k < n && w->n_out < MAX_BOOT_OUT; k++) {
        char text[MULTIADDR_STR_MAX];
        if (multiaddr_to_string(&found[k], text, sizeof text) == 0 && (w->out[w->n_out] = strdup(text))) w->n_out++;
      }
    } else if ((w->out[w->n_out] = strdup(w->in[i]))) {
      w->n_out++;
    }
  }
}

/* Bootstrap is over (or never ran): the lookups that waited for it start. */
static void boot_over(p2p_discovery *d) {
  if (!d->booting) return;
  d->booting = false;
  d->boot_rounds++;
  if (d->closing) return;
  for (resolve_op *op = d->resolves; op; op = op->next) {
    if (!op->kad_waits) continue;
    op->kad_waits = false;
    if (op->done || !d->kad || p2p_kad_find_peer(d->kad, op->peer_id, on_kad_found, op) != 0) op->kad_pending = false;
  }
  for (ns_op *op = d->finds; op; op = op->next) {
    if (!op->waits_boot) continue;
    op->waits_boot = false;
    if (op->done || !d->rv || p2p_rendezvous_find(d->rv, on_rv_found, op) != 0) op->rv_pending = false;
  }
}

/* The round's bootstrap peers (w->out), for the dial counts at its end. */
static void round_begin(p2p_discovery *d, boot_work *w) {
  free(d->round_ids);
  d->n_round_ids = 0;
  if (!(d->round_ids = calloc(w->n_out, sizeof *d->round_ids))) return; /* counted as no dials */
  for (size_t i = 0; i < w->n_out; i++) {
    multiaddr ma;
    peerid id;
    if (multiaddr_parse(w->out[i], &ma) || multiaddr_get_peerid(&ma, &id) ||
        peerid_to_string(&id, d->round_ids[d->n_round_ids], PEERID_STR_MAX))
      continue;
    bool dup = false;
    for (size_t k = 0; k < d->n_round_ids && !dup; k++) dup = !strcmp(d->round_ids[k], d->round_ids[d->n_round_ids]);
    if (!dup) d->n_round_ids++;
  }
}

static void round_end(p2p_discovery *d, int err) {
  if (err != -ECANCELED) {
    metrics_inc(&g_boot_rounds, err ? BOOT_FAILED : BOOT_OK);
    size_t ok = 0;
    for (size_t i = 0; i < d->n_round_ids; i++) ok += p2p_host_conns(d->h, d->round_ids[i], NULL, 0) > 0;
    metrics_add(&g_boot_dials, BOOT_OK, ok);
    metrics_add(&g_boot_dials, BOOT_FAILED, d->n_round_ids - ok);
    metrics_add(&g_peers_found, SRC_BOOTSTRAP, ok);
  }
  free(d->round_ids);
  d->round_ids = NULL;
  d->n_round_ids = 0;
}

static void boot_done_cb(p2p_kad *k, int err, size_t acked, const p2p_kad_op_stats *st, void *ud) {
  (void)k;
  (void)st;
  if (err) log_info("dht: bootstrap reached nobody", "{s:i}", "error", err);
  else log_info("dht: bootstrapped", "{s:i}", "answered", (int)acked);
  round_end(ud, err);
  boot_over(ud);
}

static void boot_after(uv_work_t *req, int status) {
  boot_work *w = req->data;
  p2p_discovery *d = w->d;
  d->boot_running = false;
  bool started = false;
  if (status == 0 && !d->closing && d->kad && w->n_out) {
    round_begin(d, w);
    int rc = p2p_kad_bootstrap(d->kad, (const char *const *)w->out, w->n_out, boot_done_cb, d);
    if (rc) {
      log_warn("dht: bootstrap not started", "{s:i}", "error", rc);
      round_end(d, rc);
    }
    started = rc == 0;
  } else if (status == 0 && !d->closing && d->n_boot) {
    log_warn("dht: no usable bootstrap address", "{s:i}", "configured", (int)d->n_boot);
    metrics_inc(&g_boot_rounds, BOOT_FAILED);
  }
  if (!started) boot_over(d);
  for (size_t i = 0; i < w->n_out; i++) free(w->out[i]);
  free(w);
  if (d->closing) maybe_done(d);
}

static void bootstrap(p2p_discovery *d) {
  if (!d->kad || !d->n_boot || d->boot_running || d->closing) return;
  boot_work *w = calloc(1, sizeof *w);
  if (!w) return;
  w->d = d;
  w->in = d->boot;
  w->n_in = d->n_boot;
  w->resolve = d->cfg.dnsaddr_resolve;
  w->req.data = w;
  if (uv_queue_work(d->loop, &w->req, boot_run, boot_after) != 0) {
    free(w);
    return;
  }
  d->boot_running = true;
  d->booting = true;
}

/* ---------------------------------------------------------------- events */

void p2p_discovery_peer_identified(p2p_discovery *d, const char *peer_id) {
  if (d->closing) return;
  int rc = p2p_host_add_peer_addrs(d->h, peer_id, NULL, 0, P2P_SRC_IDENTIFY);
  (void)rc;
  if (d->kad) p2p_kad_peer_identified(d->kad, peer_id);
}

void p2p_discovery_listen_addrs_changed(p2p_discovery *d) {
  if (!d->closing && d->mdns) p2p_mdns_refresh_addrs(d->mdns);
}

static void on_mdns_peer(p2p_mdns *m, const mdns_peer *p, void *ud) {
  (void)m;
  if (p->ttl_s) metrics_inc(&g_peers_found, SRC_MDNS); /* not a goodbye */
  check_resolves(ud);
}

/* ---------------------------------------------------------------- tick */

static void tick_cb(uv_timer_t *t) {
  p2p_discovery *d = t->data;
  if (d->closing) {
    maybe_done(d);
    return;
  }
  check_resolves(d);
  reap_resolves(d);
  check_finds(d);
  uint64_t now = uv_now(d->loop);
  if (now >= d->next_upkeep) {
    d->next_upkeep = now + UPKEEP_MS;
    size_t gone = p2p_host_expire_peer_addrs(d->h, d->cfg.peer_addr_ttl_s);
    if (gone) log_debug("peer table: stale addresses forgotten", "{s:i}", "count", (int)gone);
    if (d->kad) {
      p2p_kad_stats st;
      p2p_kad_get_stats(d->kad, &st);
      if (st.table_size == 0) bootstrap(d); /* alone: try the bootstrap peers again */
    }
  }
}

/* ---------------------------------------------------------------- life cycle */

/* ---------------------------------------------------------------- as a host service */

static void svc_kad_handler(p2p_stream *s, void *ud) {
  p2p_discovery *d = ud;
  if (d->kad && !d->closing) p2p_kad_serve(d->kad, s);
  else p2p_stream_reset(s);
}

static int svc_start(p2p_host *h, void *state) {
  (void)h;
  return p2p_discovery_start(state);
}

/* Server mode on or off (the DHT protocol handler registered or not). */
static void dht_set_server(p2p_discovery *d, bool server, const char *why) {
  if (!d->kad || d->closing || !d->started || server == d->handler_registered) return;
  const char *proto = p2p_kad_protocol(d->kad);
  if (server) {
    int rc = p2p_host_handle(d->h, proto, svc_kad_handler, d);
    if (rc) {
      log_warn("p2p dht: cannot switch to server mode", "{s:s}", "error", strerror(-rc));
      return;
    }
    d->handler_registered = true;
  } else {
    (void)p2p_host_unhandle(d->h, proto);
    d->handler_registered = false;
  }
  log_info("p2p dht: mode", "{s:s, s:s}", "mode", server ? "server" : "client", "because", why);
}

static void svc_event(p2p_host *h, const p2p_event *ev, void *state) {
  (void)h;
  p2p_discovery *d = state;
  if ((ev->type == P2P_EV_PEER_IDENTIFIED || ev->type == P2P_EV_IDENTIFY_PUSH) && ev->peer_id)
    p2p_discovery_peer_identified(d, ev->peer_id);
  else if (ev->type == P2P_EV_LISTEN_ADDRS_CHANGED && ev->addr)
    p2p_discovery_listen_addrs_changed(d);
  else if (ev->type == P2P_EV_REACHABILITY_CHANGED && d->cfg.dht_follow_reachability) {
    if (ev->reachability == P2P_REACH_PUBLIC) dht_set_server(d, true, "reachability public");
    else if (ev->reachability == P2P_REACH_PRIVATE) dht_set_server(d, false, "reachability private");
  }
}

static void svc_closed(void *ud) { p2p_host_release(ud); }

static void svc_stop(p2p_host *h, void *state) {
  p2p_host_hold(h); /* until every part has closed its handles and streams */
  p2p_discovery_close(state, svc_closed, h);
}

int p2p_discovery_add_to_host(p2p_discovery *d) {
  d->attached = true;
  d->svc = (p2p_service){.name = "discovery",
                         .events = P2P_EV_PEER_IDENTIFIED | P2P_EV_IDENTIFY_PUSH | P2P_EV_LISTEN_ADDRS_CHANGED |
                                   (d->cfg.dht_follow_reachability ? P2P_EV_REACHABILITY_CHANGED : 0u),
                         .start = svc_start,
                         .on_event = svc_event,
                         .stop = svc_stop};
  if (d->kad && d->cfg.kad_cfg.server && !d->cfg.dht_follow_reachability) {
    d->handler = (p2p_service_handler){.protocol = p2p_kad_protocol(d->kad), .fn = svc_kad_handler};
    d->svc.handlers = &d->handler;
    d->svc.n_handlers = 1;
  }
  int rc = p2p_host_add_service(d->h, &d->svc, d);
  if (rc) d->attached = false;
  return rc;
}

int p2p_discovery_new(p2p_host *h, uv_loop_t *loop, const p2p_discovery_config *cfg, p2p_discovery **out) {
  *out = NULL;
  p2p_discovery *d = calloc(1, sizeof *d);
  if (!d) return -ENOMEM;
  d->h = h;
  d->loop = loop;
  d->cfg = *cfg;
  if (d->cfg.peer_addr_ttl_s <= 0) d->cfg.peer_addr_ttl_s = 86400;
  int rc = -ENOMEM;
  if (cfg->n_bootstrap) {
    if (!(d->boot = calloc(cfg->n_bootstrap, sizeof *d->boot))) goto fail;
    for (size_t i = 0; i < cfg->n_bootstrap; i++) {
      if (!(d->boot[i] = strdup(cfg->bootstrap[i]))) goto fail;
      d->n_boot++;
    }
  }
  d->cfg.bootstrap = NULL;
  if (cfg->mdns && (rc = p2p_mdns_new(h, loop, &cfg->mdns_cfg, on_mdns_peer, d, &d->mdns))) goto fail;
  if (cfg->dht) {
    p2p_kad_config kc = cfg->kad_cfg;
    kc.external_handler = true; /* standalone: discovery registers the handler below or in add_to_host */
    if ((rc = p2p_kad_new(h, loop, &kc, &d->kad))) goto fail;
    p2p_rendezvous_config rc_cfg = cfg->rv_cfg;
    rc_cfg.publish = cfg->rendezvous_publish;
    if ((rc = p2p_rendezvous_new(d->kad, h, loop, &rc_cfg, &d->rv))) goto fail;
  }
  *out = d;
  return 0;
fail:
  if (d->mdns) p2p_mdns_close(d->mdns, NULL, NULL);
  if (d->rv) p2p_rendezvous_close(d->rv, NULL, NULL);
  if (d->kad) p2p_kad_close(d->kad, NULL, NULL);
  for (size_t i = 0; i < d->n_boot; i++) free(d->boot[i]);
  free(d->boot);
  free(d);
  return rc;
}

int p2p_discovery_start(p2p_discovery *d) {
  if (d->started) return -EALREADY;
  int rc = uv_timer_init(d->loop, &d->tick);
  if (rc) return rc;
  d->tick.data = d;
  d->tick_open = true;
  if (d->kad) {
    if ((rc = p2p_kad_start(d->kad)) != 0) return rc;
    if ((rc = p2p_rendezvous_start(d->rv, NULL, NULL)) != 0) return rc;
    /* by hand when standalone, or when the mode follows reachability (it comes and goes) */
    bool server = d->cfg.kad_cfg.server;
    if (d->cfg.dht_follow_reachability && p2p_host_reachability(d->h) != P2P_REACH_UNKNOWN)
      server = p2p_host_reachability(d->h) == P2P_REACH_PUBLIC;
    if ((!d->attached || d->cfg.dht_follow_reachability) && server) {
      if ((rc = p2p_host_handle(d->h, p2p_kad_protocol(d->kad), svc_kad_handler, d)) != 0) return rc;
      d->handler_registered = true;
    }
  }
  if (d->mdns && (rc = p2p_mdns_start(d->mdns)) != 0) {
    log_warn("mdns: not started", "{s:s}", "error", strerror(-rc));
    p2p_mdns_close(d->mdns, NULL, NULL);
    d->mdns = NULL;
  }
  d->started = true;
  d->next_upkeep = uv_now(d->loop) + UPKEEP_MS;
  uv_timer_start(&d->tick, tick_cb, TICK_MS, TICK_MS);
  bootstrap(d);
  log_info("discovery started", "{s:b, s:b, s:b, s:i}", "mdns", d->mdns != NULL, "dht", d->kad != NULL,
           "rendezvous_publish", d->rv && d->cfg.rendezvous_publish, "bootstrap", (int)d->n_boot);
  return 0;
}

static void part_closed(void *ud) {
  p2p_discovery *d = ud;
  d->closing_parts--;
  maybe_done(d);
}

static void tick_closed(uv_handle_t *hd) {
  p2p_discovery *d = hd->data;
  d->tick_open = false;
  maybe_done(d);
}

static void maybe_done(p2p_discovery *d) {
  if (d->closing_parts > 0 || d->boot_running) return;
  reap_resolves(d);
  if (d->resolves) return; /* a DHT lookup's callback is still to come */
  if (d->tick_open) {
    if (!uv_is_closing((uv_handle_t *)&d->tick)) uv_close((uv_handle_t *)&d->tick, tick_closed);
    return;
  }
  void (*done)(void *) = d->done;
  void *ud = d->done_ud;
  for (size_t i = 0; i < d->n_boot; i++) free(d->boot[i]);
  free(d->boot);
  free(d->round_ids);
  free(d);
  if (done) done(ud);
}

void p2p_discovery_close(p2p_discovery *d, void (*done)(void *ud), void *ud) {
  if (d->closing) return;
  d->closing = true;
  d->done = done;
  d->done_ud = ud;
  for (resolve_op *op = d->resolves; op; op = op->next) {
    resolve_finish(op, -ECANCELED);
    if (op->kad_waits) op->kad_waits = op->kad_pending = false;
  }
  for (ns_op *op = d->finds; op; op = op->next)
    if (!op->done) {
      op->done = true;
      if (op->cb) op->cb(d, -ECANCELED, NULL, 0, op->ud);
    }
  if (d->handler_registered) (void)p2p_host_unhandle(d->h, p2p_kad_protocol(d->kad));
  d->closing_parts = 1; /* held while the parts are asked to close */
  if (d->rv) {
    d->closing_parts++;
    p2p_rendezvous_close(d->rv, part_closed, d); /* its finds see -ECANCELED: ns ops freed below */
    d->rv = NULL;
  }
  while (d->finds) {
    ns_op *op = d->finds;
    d->finds = op->next;
    free(op);
  }
  if (d->kad) {
    d->closing_parts++;
    p2p_kad_close(d->kad, part_closed, d); /* pending find_peer callbacks run with -ECANCELED */
    d->kad = NULL;
  }
  if (d->mdns) {
    d->closing_parts++;
    p2p_mdns_close(d->mdns, part_closed, d);
    d->mdns = NULL;
  }
  if (d->tick_open && uv_is_active((uv_handle_t *)&d->tick)) uv_timer_stop(&d->tick);
  part_closed(d);
}
