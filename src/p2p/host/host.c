/* host.c — the host object: listeners, dials (TCP and Unix-domain socket transports), connections over streams
 * (p2p_host_upgrade_stream), the connection manager (limits on connections, pending handshakes
 * and streams; handshake, negotiation and idle timeouts; per-peer dial back-off), the protocol
 * handler registry, outbound stream requests, deferred work and the reaper of closed streams,
 * the peerstore snapshot and the announce file. Connection internals live in conn.c, streams
 * in stream.c, services and events in services.c. */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "p2p/core/identity.h"
#include "p2p/host/internal.h"
#include "p2p/host/transport_stream.h"
#include "p2p/host/unix_listen.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"

/* ---- metrics (internal.h) ---- */
static _Atomic uint64_t g_peers_cell[1], g_streams_cell[1], g_bytes_cells[2];
static const char *const k_directions[] = {"in", "out"};
metrics_family p2p_host_peers_metric = {.name = "peermcp_p2p_peers_connected",
                                        .help = "Peers with at least one ready libp2p connection.",
                                        .kind = METRICS_GAUGE,
                                        .cells = g_peers_cell};
METRICS_REGISTER(p2p_host_peers_metric)
metrics_family p2p_host_streams_metric = {.name = "peermcp_p2p_streams_open",
                                          .help = "Open libp2p streams (both directions).",
                                          .kind = METRICS_GAUGE,
                                          .cells = g_streams_cell};
METRICS_REGISTER(p2p_host_streams_metric)
metrics_family p2p_host_bytes_metric = {.name = "peermcp_p2p_bytes_total",
                                        .help = "TCP payload bytes of libp2p connections, by direction.",
                                        .kind = METRICS_COUNTER,
                                        .ndims = 1,
                                        .dims = {{"direction", k_directions, 2, NULL}},
                                        .cells = g_bytes_cells};
METRICS_REGISTER(p2p_host_bytes_metric)

#ifndef PEERMCP_VERSION
#define PEERMCP_VERSION "0"
#endif

/* ---------------------------------------------------------------- helpers */

/* /dns, /dns4, /dns6 dials: resolved with uv_getaddrinfo on the thread pool. The request
 * outlives a connection closed meanwhile (c is cleared then). */
struct host_resolve {
  uv_getaddrinfo_t req;
  p2p_conn *c;
};


static void conn_link(p2p_host *h, p2p_conn *c) {
  c->next = h->conns;
  if (h->conns) h->conns->prev = c;
  h->conns = c;
  h->n_conns++;
}

static void conn_unlink(p2p_host *h, p2p_conn *c) {
  if (c->prev) c->prev->next = c->next;
  else if (h->conns == c) h->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  h->n_conns--;
}

static host_backoff *backoff_find(p2p_host *h, const char *key, bool create) {
  host_backoff *free_slot = NULL, *oldest = NULL;
  int64_t now = clock_mono_ms();
  for (size_t i = 0; i < HOST_BACKOFF_SLOTS; i++) {
    host_backoff *b = &h->backoff[i];
    if (b->key[0] && strcmp(b->key, key) == 0) return b;
    if (!b->key[0] || b->until_ms + (int64_t)HOST_BACKOFF_MAX_MS < now) {
      if (!free_slot) free_slot = b;
    } else if (!oldest || b->until_ms < oldest->until_ms) {
      oldest = b;
    }
  }
  if (!create) return NULL;
  host_backoff *b = free_slot ? free_slot : oldest;
  memset(b, 0, sizeof *b);
  snprintf(b->key, sizeof b->key, "%s", key);
  return b;
}

static void maybe_finish_close(p2p_host *h);

/* Closes a TCP transport no connection was made for (out of memory). */
static void transport_discard(p2p_transport *t) {
  static const p2p_transport_events none = {0};
  p2p_transport_bind(t, &none, NULL);
  p2p_transport_close(t, -ENOMEM);
}

/* How a dial is made (p2p_host_connect's options; all false for ordinary dials). */
typedef struct dial_how {
  bool from_listen_port, responder, no_backoff;
  uint32_t timeout_ms;
} dial_how;
static int host_dial(p2p_host *h, const multiaddr *ma, const peerid *expected, const dial_how *how, p2p_conn **out);
static bool host_room_for_own(p2p_host *h);

void host_mark_peers_dirty(p2p_host *h) { h->peers_dirty = true; }

host_handler *host_find_handler(p2p_host *h, const char *protocol) {
  for (host_handler *hd = h->handlers; hd; hd = hd->next)
    if (strcmp(hd->protocol, protocol) == 0) return hd;
  return NULL;
}

static void fail_waiters(host_open_req *w, int err) {
  while (w) {
    host_open_req *next = w->next;
    w->cb(NULL, err, w->ud);
    free(w->protocol);
    free(w);
    w = next;
  }
}

/* ---------------------------------------------------------------- connection events */

/* Reserved slots (issue 9 item 1): an inbound connection whose peer the gate does not admit
 * may take only max_connections - reserved_conns slots among upgraded inbound connections. */
static const host_known *known_peer(p2p_host *h, const char *peer_id);

static bool admit_upgraded(p2p_host *h, p2p_conn *c) {
  if (c->outbound) return true;
  c->privileged = c->known || known_peer(h, c->remote_id) || (h->gate && h->gate(h->gate_ud, c->remote_id));
  if (c->privileged || !h->gate || !h->cfg.reserved_conns) return true; /* (no gate: no reserve) */
  uint32_t others = 0;
  for (p2p_conn *o = h->conns; o; o = o->next)
    if (o != c && !o->outbound && o->state == CONN_READY && !o->privileged) others++;
  return others + h->cfg.reserved_conns < h->cfg.max_connections;
}

bool host_conn_ready(p2p_conn *c) {
  p2p_host *h = c->h;
  if (c->counted_pending) {
    c->counted_pending = false;
    h->pending_handshakes--;
  }
  if (!admit_upgraded(h, c)) {
    h->stats.reserved_refused++;
    log_warn("p2p inbound connection refused (only reserved slots left)", "{s:s, s:s}", "peer", c->remote_id, "addr",
             c->remote_addr);
    c->was_ready = false; /* it never opened: no event, no peerstore count */
    conn_close(c, -EMFILE);
    return false;
  }
  if (c->dialed) {
    h->stats.dials_ok++;
    host_backoff *b = c->dial_key[0] ? backoff_find(h, c->dial_key, false) : NULL;
    if (b) b->key[0] = 0;
  }
  peerstore_entry *e = peerstore_upsert(h->ps, c->remote_id);
  if (e) {
    if (e->connections++ == 0) metrics_gauge_add(&p2p_host_peers_metric, 0, 1);
    e->last_seen = clock_wall_s();
    if (c->dialed) (void)!peerstore_add_addr(e, c->remote_addr);
    const keys_public *pk = noise_remote_public_key(c->noise);
    uint8_t pb[KEYS_PUBLIC_PB_MAX];
    size_t pblen;
    if (pk && keys_public_encode(pk, pb, sizeof pb, &pblen) == 0)
      (void)!peerstore_set_public_key(e, pb, pblen, peerid_matches_public(&c->remote, pk));
    host_mark_peers_dirty(h);
  }
  log_info("p2p connection established", "{s:s, s:s, s:s, s:s, s:s, s:b}", "peer", c->remote_id, "addr",
           c->remote_addr, "direction", c->outbound ? "outbound" : "inbound", "muxer_in_noise",
           noise_negotiated_muxer(c->noise) ? "yes" : "no", "transport", p2p_transport_name(c->t), "relayed",
           c->relayed);
  if (c->upgrade_cb) {
    p2p_upgrade_fn cb = c->upgrade_cb;
    c->upgrade_cb = NULL;
    cb(h, 0, c->remote_id, c->id, c->upgrade_ud);
    if (c->state != CONN_READY) return false;
  }
  host_open_req *w = c->waiters;
  c->waiters = NULL;
  while (w) {
    host_open_req *next = w->next;
    int rc = stream_open(c, w->protocol, w->cb, w->ud);
    if (rc) w->cb(NULL, rc, w->ud);
    free(w->protocol);
    free(w);
    w = next;
  }
  if (c->state != CONN_READY) return false;
  p2p_event ev = {.type = P2P_EV_CONN_OPENED, .peer_id = c->remote_id, .conn_id = c->id,
                  .remote_addr = c->remote_addr, .inbound = !c->outbound, .relayed = c->relayed};
  services_emit(h, &ev);
  return c->state == CONN_READY;
}

void host_conn_closed(p2p_conn *c) {
  p2p_host *h = c->h;
  conn_flush_forget(c);
  if (c->counted_pending) {
    c->counted_pending = false;
    h->pending_handshakes--;
  }
  int err = c->close_err;
  if (c->upgrade_cb) { /* never got ready */
    p2p_upgrade_fn cb = c->upgrade_cb;
    c->upgrade_cb = NULL;
    cb(h, err ? err : -ECONNABORTED, NULL, 0, c->upgrade_ud);
  }
  if (!c->dialed) {
    /* not a dial (inbound, or a stream upgraded in place): no dial statistics, no back-off */
  } else if (c->outbound && !c->was_ready && c->waiters && c->n_alts && !h->closing && c->has_expected) {
    /* Dial by PeerId: move the waiters to the next address. */
    h->stats.dials_failed++;
    log_info("p2p dial failed; trying the next address", "{s:s, s:i}", "addr", c->remote_addr, "error", err);
    for (size_t i = 0; i < c->n_alts; i++) {
      multiaddr ma;
      p2p_conn *next = NULL;
      c->dial_key[0] = 0; /* no back-off between a peer's own addresses */
      if (multiaddr_parse(c->alts[i], &ma) != 0 || host_dial(h, &ma, &c->expected, NULL, &next) != 0) continue;
      next->waiters = c->waiters;
      c->waiters = NULL;
      for (size_t j = i + 1; j < c->n_alts; j++) {
        next->alts[next->n_alts++] = c->alts[j];
        c->alts[j] = NULL;
      }
      break;
    }
  } else if (c->outbound && !c->was_ready) {
    h->stats.dials_failed++;
    if (c->dial_key[0]) {
      host_backoff *b = backoff_find(h, c->dial_key, true);
      b->step_ms = b->step_ms ? b->step_ms * 2 : h->cfg.dial_backoff_ms;
      if (b->step_ms > HOST_BACKOFF_MAX_MS) b->step_ms = HOST_BACKOFF_MAX_MS;
      b->until_ms = clock_mono_ms() + b->step_ms;
    }
    log_info("p2p dial failed", "{s:s, s:i, s:s}", "addr", c->remote_addr, "error", err, "reason",
             err ? strerror(-err) : "closed");
  }
  host_open_req *w = c->waiters;
  c->waiters = NULL;
  fail_waiters(w, err ? err : -ECONNABORTED);
  if (c->was_ready) {
    peerstore_entry *e = peerstore_get(h->ps, c->remote_id);
    if (e && e->connections) {
      if (--e->connections == 0) metrics_gauge_add(&p2p_host_peers_metric, 0, -1);
      e->last_seen = clock_wall_s();
    }
    /* one info line per connection (established); its normal end is a detail */
    log_write(err ? LOG_INFO : LOG_DEBUG, "p2p connection closed", "{s:s, s:s, s:i}", "peer", c->remote_id, "reason",
              err ? strerror(err < 0 ? -err : err) : "normal", "error", err);
    p2p_event ev = {.type = P2P_EV_CONN_CLOSED, .peer_id = c->remote_id, .conn_id = c->id,
                    .remote_addr = c->remote_addr, .inbound = !c->outbound, .relayed = c->relayed, .err = err};
    services_emit(h, &ev);
  }
  if (c->resolve) c->resolve->c = NULL; /* its callback frees it */
  for (size_t i = 0; i < c->n_alts; i++) free(c->alts[i]);
  conn_unlink(h, c);
  if (c->mss) mss_free(c->mss);
  if (c->noise) noise_session_free(c->noise);
  if (c->ymx) yamux_session_free(c->ymx);
  buf_free(&c->plain);
  free(c);
  maybe_finish_close(h);
}

/* ---------------------------------------------------------------- listeners and dials */

/* The address part of a TCP multiaddr (/ip4/A/tcp/P → /ip4/A): what per-IP limits count. */
static void ip_of(const char *ma, char *out, size_t cap) {
  const char *t = strstr(ma, "/tcp/");
  size_t n = t ? (size_t)(t - ma) : strlen(ma);
  if (n >= cap) n = cap - 1;
  memcpy(out, ma, n);
  out[n] = 0;
}

/* A pending inbound handshake counted in the pending limits (not one of the reserved ones). */
static bool conn_pending_inbound(const p2p_conn *c) {
  return !c->outbound && !c->reserve && c->state != CONN_READY && c->state != CONN_CLOSED;
}

/* Pending inbound connections from `ip` (every IP when NULL), not counting `skip`. */
static uint32_t count_pending_in(p2p_host *h, const char *ip, const p2p_conn *skip) {
  uint32_t n = 0;
  for (p2p_conn *o = h->conns; o; o = o->next)
    if (o != skip && conn_pending_inbound(o) && (!ip || strcmp(o->ip, ip) == 0)) n++;
  return n;
}

/* A pending inbound handshake that may be closed to make room for a newer connection (issue 9
 * item 1): from `ip`, or when ip is NULL from the IP with the most pending handshakes; one that
 * has sent nothing for HOST_EVICT_SILENT_AGE_MS first, then the oldest — but never one younger
 * than HOST_EVICT_MIN_AGE_MS that has sent bytes (a handshake that is moving). NULL when there
 * is none. So silent or stalled connections cannot hold the slots against a peer that speaks,
 * and a burst of honest dials (accepted before their first bytes are read) evicts nobody. A
 * handshake that proved a remembered or admitted PeerId (known) is never taken. */
static p2p_conn *evict_candidate(p2p_host *h, const char *ip, const p2p_conn *skip) {
  const char *from = ip;
  if (!from) {
    uint32_t best = 0;
    for (p2p_conn *o = h->conns; o; o = o->next) {
      if (o == skip || !conn_pending_inbound(o)) continue;
      uint32_t k = count_pending_in(h, o->ip, skip);
      if (k > best) {
        best = k;
        from = o->ip;
      }
    }
    if (!from) return NULL;
  }
  int64_t now = clock_mono_ms();
  p2p_conn *silent = NULL, *old = NULL;
  for (p2p_conn *o = h->conns; o; o = o->next) {
    if (o == skip || !conn_pending_inbound(o) || o->known || strcmp(o->ip, from) != 0) continue;
    if (!o->got_bytes) {
      if (now - o->created_ms >= HOST_EVICT_SILENT_AGE_MS && (!silent || o->created_ms < silent->created_ms)) silent = o;
    } else if (now - o->created_ms >= HOST_EVICT_MIN_AGE_MS) {
      if (!old || o->created_ms < old->created_ms) old = o;
    }
  }
  return silent ? silent : old;
}

static bool evict_one(p2p_host *h, const char *ip, const p2p_conn *skip) {
  p2p_conn *v = evict_candidate(h, ip, skip);
  if (!v) return false;
  h->stats.inbound_evicted++;
  log_debug("p2p pending inbound connection evicted for a newer one", "{s:s, s:b}", "addr", v->remote_addr, "silent",
            !v->got_bytes);
  conn_close(v, -ECONNABORTED);
  return true;
}

static uint32_t count_live(p2p_host *h, const p2p_conn *skip) {
  uint32_t n = 0;
  for (p2p_conn *o = h->conns; o; o = o->next)
    if (o != skip && o->state != CONN_CLOSED) n++;
  return n;
}

/* Admission of a new inbound TCP connection: per-IP connection and handshake limits, the
 * pending-handshake limit and the connection limit, each making room by evicting a pending
 * handshake (evict_candidate) before refusing the newcomer. */
static const char *admit_inbound(p2p_host *h, p2p_conn *c) {
  if (h->closing) return "closing";
  uint32_t ip_all = 0;
  for (p2p_conn *o = h->conns; o; o = o->next)
    if (o != c && !o->outbound && o->state != CONN_CLOSED && strcmp(o->ip, c->ip) == 0) ip_all++;
  if (ip_all >= h->cfg.max_conns_per_ip && !evict_one(h, c->ip, c)) return "max_connections_per_ip";
  if (count_pending_in(h, c->ip, c) >= h->cfg.max_pending_per_ip && !evict_one(h, c->ip, c)) return "max_pending_per_ip";
  if (count_pending_in(h, NULL, c) >= h->cfg.max_pending_handshakes && !evict_one(h, NULL, c))
    return "max_pending_handshakes";
  if (count_live(h, c) >= h->cfg.max_connections && !evict_one(h, NULL, c)) return "max_connections";
  return NULL;
}

/* ---- remembered peers and the reserved handshakes (issue 9 item 1, docs/security.md) ---- */

static bool known_fresh(const p2p_host *h, const host_known *k, int64_t now) {
  return k->peer_id[0] && now - k->last_ms < (int64_t)h->cfg.authorized_memory_s * 1000;
}

static const host_known *known_peer(p2p_host *h, const char *peer_id) {
  int64_t now = clock_mono_ms();
  for (uint32_t i = 0; i < h->n_known; i++)
    if (known_fresh(h, &h->known[i], now) && strcmp(h->known[i].peer_id, peer_id) == 0) return &h->known[i];
  return NULL;
}

/* The key a source address is remembered by: fixed-size whatever the address's length (a unix
 * listener's percent-encoded path may be three times sun_path). */
static void src_key(const char *ip, uint8_t key[HOST_SRC_KEY_LEN]) {
  crypto_generichash(key, HOST_SRC_KEY_LEN, (const unsigned char *)ip, strlen(ip), NULL, 0);
}

static bool known_ip(p2p_host *h, const char *ip) {
  int64_t now = clock_mono_ms();
  uint8_t key[HOST_SRC_KEY_LEN];
  src_key(ip, key);
  for (uint32_t i = 0; i < h->n_known; i++)
    if (known_fresh(h, &h->known[i], now) && h->known[i].has_src && memcmp(h->known[i].src, key, sizeof key) == 0)
      return true;
  return false;
}

void p2p_host_remember_authorized(p2p_host *h, const char *peer_id) {
  LOOP_THREAD_ONLY();
  if (!peer_id || !*peer_id || strlen(peer_id) >= PEERID_STR_MAX || !h->cfg.authorized_memory) return;
  if (!h->known && !(h->known = calloc(h->cfg.authorized_memory, sizeof *h->known))) return;
  /* its entry, else a free or stale one, else the least recently authorized */
  host_known *k = NULL, *oldest = NULL;
  int64_t now = clock_mono_ms();
  for (uint32_t i = 0; i < h->n_known && !k; i++)
    if (strcmp(h->known[i].peer_id, peer_id) == 0) k = &h->known[i];
  if (!k && h->n_known < h->cfg.authorized_memory) k = &h->known[h->n_known++];
  for (uint32_t i = 0; i < h->n_known && !k; i++) {
    host_known *e = &h->known[i];
    if (!known_fresh(h, e, now)) k = e;
    else if (!oldest || e->last_ms < oldest->last_ms) oldest = e;
  }
  if (!k) k = oldest;
  if (strcmp(k->peer_id, peer_id) != 0) {
    snprintf(k->peer_id, sizeof k->peer_id, "%s", peer_id);
    k->has_src = false;
  }
  k->last_ms = now;
  for (p2p_conn *c = h->conns; c; c = c->next) /* the address it comes from (loopback, a NAT: shared) */
    if (!c->outbound && !c->relayed && c->ip[0] && c->state == CONN_READY && strcmp(c->remote_id, peer_id) == 0) {
      src_key(c->ip, k->src);
      k->has_src = true;
      break;
    }
}

static uint32_t count_reserve(p2p_host *h, const p2p_conn *skip) {
  uint32_t n = 0;
  for (p2p_conn *o = h->conns; o; o = o->next)
    if (o != skip && o->reserve && o->state != CONN_READY && o->state != CONN_CLOSED) n++;
  return n;
}

/* A new connection the pending limits refused may use a reserved handshake when its address is
 * one a remembered peer used: while one is free, or by evicting a reserved handshake that has not
 * proved a known PeerId and is silent (100 ms) or stalled (500 ms), as for the pending ones. Who
 * it is shows only in Noise's third message (host_conn_identified decides then). */
static bool admit_reserve(p2p_host *h, p2p_conn *c) {
  if (!h->cfg.reserved_handshakes || !c->ip[0] || !known_ip(h, c->ip)) return false;
  if (count_live(h, c) >= h->cfg.max_connections) return false;
  if (count_reserve(h, c) >= h->cfg.reserved_handshakes) {
    int64_t now = clock_mono_ms();
    p2p_conn *v = NULL;
    for (p2p_conn *o = h->conns; o; o = o->next) {
      if (o == c || !o->reserve || o->known || o->state == CONN_READY || o->state == CONN_CLOSED) continue;
      int64_t age = now - o->created_ms;
      if (age < (o->got_bytes ? HOST_EVICT_MIN_AGE_MS : HOST_EVICT_SILENT_AGE_MS)) continue;
      if (!v || o->created_ms < v->created_ms) v = o;
    }
    if (!v) return false;
    h->stats.inbound_evicted++;
    conn_close(v, -ECONNABORTED);
  }
  c->reserve = true;
  h->stats.reserve_admitted++;
  return true;
}

int host_conn_identified(p2p_conn *c) {
  p2p_host *h = c->h;
  if (c->outbound || c->relayed) return 0;
  c->known = known_peer(h, c->remote_id) || (h->gate && h->gate(h->gate_ud, c->remote_id));
  if (c->reserve && !c->known) {
    h->stats.reserve_refused++;
    log_info("p2p reserved handshake closed: the peer is not one we know", "{s:s, s:s}", "peer", c->remote_id,
             "addr", c->remote_addr);
    return -EACCES;
  }
  return 0;
}

static void on_inbound(uv_stream_t *server, int status) {
  host_listener *l = server->data;
  p2p_host *h = l->h;
  if (status < 0) return;
  p2p_tcp_ctx ctx;
  host_tcp_ctx(h, &ctx);
  p2p_transport *t;
  if ((l->is_unix ? p2p_unix_new(&ctx, &t) : p2p_tcp_new(&ctx, &t)) != 0) return;
  p2p_conn *c = conn_new(h, t, false);
  if (!c) {
    transport_discard(t);
    return;
  }
  conn_link(h, c);
  if (p2p_tcp_accept(t, server) != 0) {
    conn_close(c, -ECONNABORTED);
    return;
  }
  if (l->is_unix) { /* the socket was bound at a temporary name (unix_listen.h): its name says that */
    snprintf(t->local_addr, sizeof t->local_addr, "%s", l->addr);
    snprintf(t->remote_addr, sizeof t->remote_addr, "%s", l->addr);
  }
  snprintf(c->remote_addr, sizeof c->remote_addr, "%s", t->remote_addr);
  /* The per-source limits count a unix listener as one source (a dialer has no address): its
   * /unix/ address stands in for the IP, so max_connections_per_ip and max_pending_per_ip bound
   * what the local users together may hold, and the process-wide limits apply as for TCP. */
  if (l->is_unix) snprintf(c->ip, sizeof c->ip, "%s", l->addr);
  else ip_of(c->remote_addr, c->ip, sizeof c->ip);
  const char *why = admit_inbound(h, c);
  if (why && (strcmp(why, "max_pending_per_ip") == 0 || strcmp(why, "max_pending_handshakes") == 0) &&
      admit_reserve(h, c))
    why = NULL;
  if (why) {
    h->stats.inbound_refused++;
    log_warn("p2p inbound connection refused (limits)", "{s:s, s:s, s:i, s:i}", "addr", c->remote_addr, "limit", why,
             "connections", (int)h->n_conns, "pending", (int)h->pending_handshakes);
    conn_close(c, -EMFILE);
    return;
  }
  c->counted_pending = true;
  h->pending_handshakes++;
  int rc = conn_start(c);
  if (rc) conn_close(c, rc);
}

/* Removes the socket file of a unix listener, if the path still names the one we bound (another
 * process may have replaced it meanwhile). */
static void unix_unlink(host_listener *l) {
  int rc = l->is_unix && l->path[0] ? unix_listen_remove(l->path, l->dev, l->ino) : 0;
  if (rc) log_warn("p2p unix listener: socket file not removed", "{s:s, s:s}", "path", l->path, "error", strerror(-rc));
  l->path[0] = 0;
}

static void on_listener_closed(uv_handle_t *hd) {
  host_listener *l = hd->data;
  p2p_host *h = l->h;
  free(l);
  h->open_handles--;
  maybe_finish_close(h);
}

/* The socket file appears at `path` with mode 0600 and listening (unix_listen.h); the handle
 * takes the fd and its inode is recorded (unlinked on close only while the path names it). */
static int unix_bind(host_listener *l, const char *path) {
  int fd;
  int rc = unix_listen_open(path, 128, &fd, &l->dev, &l->ino);
  if (rc) return rc;
  snprintf(l->path, sizeof l->path, "%s", path);
  rc = uv_pipe_open(&l->u.pipe, fd); /* from here the handle owns fd */
  if (rc == 0) return 0;
  unix_unlink(l);
  close(fd);
  return rc;
}

static int host_listen_unix(p2p_host *h, const multiaddr *ma, const char *text) {
  if (h->n_unix == HOST_MAX_LISTENERS) return -EMFILE;
  char path[HOST_UNIX_PATH_MAX];
  int rc = multiaddr_unix_path(ma, path, sizeof path);
  if (rc == -ENAMETOOLONG) {
    log_error("p2p listen failed: a unix socket path must be shorter than 108 bytes", "{s:s}", "multiaddr", text);
    return rc;
  }
  if (rc) return rc;
  multiaddr bare;
  if (multiaddr_from_unix_path(path, &bare) != 0) return -EINVAL; /* a /p2p/ suffix is not listened on */
  if ((rc = unix_listen_make_room(path)) != 0) {
    log_error("p2p listen failed: the unix socket path is in use or is not a socket", "{s:s, s:s}", "multiaddr",
              text, "error", strerror(-rc));
    return rc;
  }
  host_listener *l = calloc(1, sizeof *l);
  if (!l) return -ENOMEM;
  l->h = h;
  l->is_unix = true;
  rc = uv_pipe_init(h->loop, &l->u.pipe, 0);
  if (rc) {
    free(l);
    return rc;
  }
  l->u.handle.data = l;
  h->open_handles++;
  rc = unix_bind(l, path);
  if (rc == 0) rc = uv_listen(&l->u.stream, 128, on_inbound);
  if (rc == 0) rc = multiaddr_to_string(&bare, l->addr, sizeof l->addr);
  if (rc) {
    log_error("p2p listen failed", "{s:s, s:s}", "multiaddr", text, "error", uv_strerror(rc));
    unix_unlink(l);
    uv_close(&l->u.handle, on_listener_closed);
    return rc;
  }
  h->unix_listeners[h->n_unix++] = l;
  log_info("p2p listening (this host only, not advertised)", "{s:s}", "multiaddr", l->addr);
  return 0;
}

int p2p_host_listen(p2p_host *h, const char *text) {
  LOOP_THREAD_ONLY();
  if (h->closing) return -ESHUTDOWN;
  multiaddr ma;
  int rc = multiaddr_parse(text, &ma);
  if (rc) return rc;
  size_t off0 = 0;
  multiaddr_component first;
  if (multiaddr_next(&ma, &off0, &first) == 1 && first.code == MA_UNIX) return host_listen_unix(h, &ma, text);
  if (h->n_listeners == HOST_MAX_LISTENERS) return -EMFILE;
  struct sockaddr_storage ss;
  socklen_t sslen;
  rc = multiaddr_to_sockaddr(&ma, &ss, &sslen);
  if (rc) return rc;
  host_listener *l = calloc(1, sizeof *l);
  if (!l) return -ENOMEM;
  l->h = h;
  /* With reuseport the socket exists at once, to set SO_REUSEPORT before bind. */
  rc = h->cfg.reuseport ? uv_tcp_init_ex(h->loop, &l->u.tcp, ss.ss_family) : uv_tcp_init(h->loop, &l->u.tcp);
  if (rc) {
    free(l);
    return rc;
  }
  l->u.handle.data = l;
  h->open_handles++;
  unsigned flags = ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
  if (h->cfg.reuseport) {
    uv_os_fd_t fd;
    int one = 1;
    rc = uv_fileno(&l->u.handle, &fd);
    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) rc = -errno;
  }
  if (rc == 0) rc = uv_tcp_bind(&l->u.tcp, (struct sockaddr *)&ss, flags);
  if (rc == 0) rc = uv_listen(&l->u.stream, 128, on_inbound);
  int len = sizeof ss;
  if (rc == 0) rc = uv_tcp_getsockname(&l->u.tcp, (struct sockaddr *)&ss, &len);
  if (rc == 0) rc = multiaddr_from_sockaddr((struct sockaddr *)&ss, &ma);
  if (rc == 0) rc = multiaddr_to_string(&ma, l->addr, sizeof l->addr);
  if (rc) {
    log_error("p2p listen failed", "{s:s, s:s}", "multiaddr", text, "error", uv_strerror(rc));
    uv_close(&l->u.handle, on_listener_closed);
    return rc;
  }
  h->listeners[h->n_listeners++] = l;
  log_debug("p2p listening", "{s:s}", "multiaddr", l->addr);
  p2p_event ev = {.type = P2P_EV_LISTEN_ADDRS_CHANGED, .addr = l->addr};
  services_emit(h, &ev);
  return 0;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct host_resolve *r = req->data;
  p2p_conn *c = r->c;
  if (c) c->resolve = NULL;
  free(r);
  if (!c || c->state == CONN_CLOSED) {
    uv_freeaddrinfo(res);
    return;
  }
  int rc = status < 0 || !res ? -EHOSTUNREACH : 0;
  if (!rc) rc = p2p_tcp_connect(c->t, res->ai_addr);
  uv_freeaddrinfo(res);
  if (rc) conn_close(c, rc);
}

/* If `bare` is /dns|dns4|dns6/NAME/tcp/PORT, starts resolving it for c. 0, or -EAFNOSUPPORT. */
static int host_resolve_start(p2p_host *h, p2p_conn *c, const multiaddr *bare) {
  size_t off = 0;
  multiaddr_component a, b, extra;
  if (multiaddr_next(bare, &off, &a) != 1 || multiaddr_next(bare, &off, &b) != 1 ||
      multiaddr_next(bare, &off, &extra) != 0)
    return -EAFNOSUPPORT;
  if ((a.code != MA_DNS && a.code != MA_DNS4 && a.code != MA_DNS6) || b.code != MA_TCP || b.value_len != 2 ||
      a.value_len == 0 || a.value_len > 253)
    return -EAFNOSUPPORT;
  char name[256], port[8];
  memcpy(name, a.value, a.value_len);
  name[a.value_len] = 0;
  snprintf(port, sizeof port, "%u", (unsigned)(b.value[0] << 8 | b.value[1]));
  struct host_resolve *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  r->c = c;
  r->req.data = r;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                           .ai_family = a.code == MA_DNS4 ? AF_INET : a.code == MA_DNS6 ? AF_INET6 : AF_UNSPEC};
  int rc = uv_getaddrinfo(h->loop, &r->req, on_resolved, name, port, &hints);
  if (rc) {
    free(r);
    return rc;
  }
  c->resolve = r;
  return 0;
}

/* Room for a connection we make ourselves (a dial, an upgrade over a stream): our own
 * handshakes have their own max_pending_handshakes, apart from inbound ones, and when every
 * slot is taken a pending inbound handshake makes room (strangers filling the table must not
 * keep us from dialing). */
static bool host_room_for_own(p2p_host *h) {
  uint32_t own_pending = 0;
  for (p2p_conn *o = h->conns; o; o = o->next)
    if ((o->outbound || o->relayed) && o->state != CONN_READY && o->state != CONN_CLOSED) own_pending++;
  if (own_pending >= h->cfg.max_pending_handshakes) return false;
  return count_live(h, NULL) < h->cfg.max_connections || evict_one(h, NULL, NULL);
}

/* The local address a hole-punching dial leaves from: our listener of that family's address
 * and port (SO_REUSEPORT on both). 0 or -EADDRNOTAVAIL. */
static int listen_sockaddr(p2p_host *h, int family, struct sockaddr_storage *out) {
  if (!h->cfg.reuseport) return -EADDRNOTAVAIL;
  for (size_t i = 0; i < h->n_listeners; i++) {
    int len = sizeof *out;
    if (uv_tcp_getsockname(&h->listeners[i]->u.tcp, (struct sockaddr *)out, &len) == 0 && out->ss_family == family)
      return 0;
  }
  return -EADDRNOTAVAIL;
}

/* Splits a /p2p-circuit address: `relay` is everything before the first /p2p-circuit (as
 * text, or the bare relay PeerId when that is all there is); what follows must be nothing or
 * /p2p/<peer>. 0 or -EINVAL. */
static int circuit_split(const multiaddr *ma, char *relay, size_t cap) {
  size_t off = 0, before = 0;
  multiaddr_component comp;
  int rc, n_before = 0;
  bool found = false;
  multiaddr r = {0};
  while ((rc = multiaddr_next(ma, &off, &comp)) == 1) {
    if (!found && comp.code == MA_P2P_CIRCUIT) {
      found = true;
      memcpy(r.bytes, ma->bytes, before);
      r.len = before;
      continue;
    }
    if (found && comp.code != MA_P2P) return -EINVAL; /* nested circuits are not dialed */
    if (!found) {
      before = off;
      n_before++;
    }
  }
  if (rc < 0 || !found || !n_before) return -EINVAL;
  if (n_before == 1) { /* just /p2p/<relay>: dial the relay by PeerId */
    peerid rid;
    if (multiaddr_get_peerid(&r, &rid) != 0) return -EINVAL;
    return peerid_to_string(&rid, relay, cap) == 0 ? 0 : -EINVAL;
  }
  return multiaddr_to_string(&r, relay, cap) == 0 ? 0 : -EINVAL;
}

static bool is_circuit(const multiaddr *ma) {
  size_t off = 0;
  multiaddr_component comp;
  while (multiaddr_next(ma, &off, &comp) == 1)
    if (comp.code == MA_P2P_CIRCUIT) return true;
  return false;
}

/* A circuit address names its destination: it ends in /p2p-circuit/p2p/<peer>. */
static bool circuit_has_dest(const multiaddr *ma) {
  size_t off = 0;
  multiaddr_component comp;
  uint32_t last = 0, before_last = 0;
  while (multiaddr_next(ma, &off, &comp) == 1) {
    before_last = last;
    last = comp.code;
  }
  return last == MA_P2P && before_last == MA_P2P_CIRCUIT;
}

/* Starts a dial to `ma` (its last /p2p/ part, if any, is `expected`): TCP, or through a relay
 * for a /p2p-circuit address (the circuit dialer sets up the stream the connection runs on). */
static int host_dial(p2p_host *h, const multiaddr *ma, const peerid *expected, const dial_how *how, p2p_conn **out) {
  static const dial_how plain = {0};
  if (!how) how = &plain;
  multiaddr bare;
  multiaddr_strip_p2p(ma, &bare);
  char addr[MULTIADDR_STR_MAX];
  int rc = multiaddr_to_string(&bare, addr, sizeof addr);
  if (rc) return rc;
  bool circuit = is_circuit(ma);
  char relay[MULTIADDR_STR_MAX];
  if (circuit) {
    if (!expected || how->from_listen_port || how->responder) return -EINVAL;
    if (!h->circuit.dial) return -EAFNOSUPPORT;
    if ((rc = circuit_split(ma, relay, sizeof relay)) != 0) return rc;
  }
  char key[MULTIADDR_STR_MAX];
  if (expected && !circuit) {
    char id[PEERID_STR_MAX];
    if (peerid_to_string(expected, id, sizeof id) != 0) return -EINVAL;
    snprintf(key, sizeof key, "%s", id);
  } else {
    snprintf(key, sizeof key, "%s", addr); /* a failing relay does not hold up direct dials */
  }
  host_backoff *b = how->no_backoff ? NULL : backoff_find(h, key, false);
  if (b && b->until_ms > clock_mono_ms()) return -EAGAIN;
  if (!host_room_for_own(h)) return -EMFILE;
  struct sockaddr_storage ss, local;
  socklen_t sslen;
  bool dns = false;
  char upath[HOST_UNIX_PATH_MAX];
  bool is_unix = false;
  if (!circuit && (rc = multiaddr_unix_path(&bare, upath, sizeof upath)) != -EAFNOSUPPORT) {
    if (rc) return rc; /* -ENAMETOOLONG: longer than sun_path */
    if (how->from_listen_port) return -EINVAL;
    is_unix = true;
  } else if (!circuit) {
    rc = multiaddr_to_sockaddr(&bare, &ss, &sslen);
    if (rc == -EAFNOSUPPORT && !how->from_listen_port) {
      size_t off = 0;
      multiaddr_component first;
      dns = multiaddr_next(&bare, &off, &first) == 1 &&
            (first.code == MA_DNS || first.code == MA_DNS4 || first.code == MA_DNS6);
    }
    if (rc && !dns) return rc;
    if (how->from_listen_port && (rc = listen_sockaddr(h, ss.ss_family, &local)) != 0) return rc;
  }
  p2p_transport *t;
  if (circuit) {
    rc = p2p_stream_transport_pending(h, &t);
  } else {
    p2p_tcp_ctx ctx;
    host_tcp_ctx(h, &ctx);
    rc = is_unix ? p2p_unix_new(&ctx, &t) : p2p_tcp_new(&ctx, &t);
  }
  if (rc) return rc;
  p2p_conn *c = conn_new(h, t, true);
  if (!c) {
    transport_discard(t);
    return -ENOMEM;
  }
  c->dialed = true;
  c->initiator = !how->responder;
  if (how->timeout_ms) c->deadline_ms = c->created_ms + how->timeout_ms;
  if (expected) {
    c->has_expected = true;
    c->expected = *expected;
  }
  snprintf(c->remote_addr, sizeof c->remote_addr, "%s", addr);
  if (!how->no_backoff) snprintf(c->dial_key, sizeof c->dial_key, "%s", key);
  conn_link(h, c);
  c->counted_pending = true;
  h->pending_handshakes++;
  if (circuit) {
    char id[PEERID_STR_MAX];
    rc = peerid_to_string(expected, id, sizeof id);
    p2p_stream_transport_dialing(t, true);
    if (rc == 0) rc = h->circuit.dial(h->circuit_ud, p2p_stream_transport_req(t), relay, id);
    if (rc) p2p_stream_transport_dialing(t, false); /* nothing to cancel */
  } else if (is_unix) {
    rc = p2p_unix_connect(t, upath);
  } else if (dns) {
    rc = host_resolve_start(h, c, &bare);
  } else if (how->from_listen_port) {
    rc = p2p_tcp_connect_from(t, (struct sockaddr *)&ss, (struct sockaddr *)&local);
  } else {
    rc = p2p_tcp_connect(t, (struct sockaddr *)&ss);
  }
  if (rc) {
    c->dial_key[0] = 0; /* synchronous failure: no back-off, the caller sees the error */
    conn_close(c, rc);
    return rc;
  }
  *out = c;
  return 0;
}

int p2p_host_open_stream(p2p_host *h, const char *target, const char *protocol, p2p_open_fn cb, void *ud) {
  LOOP_THREAD_ONLY();
  if (!target || !protocol || !cb) return -EINVAL;
  size_t plen = strlen(protocol);
  if (plen == 0 || plen > HOST_MAX_PROTO) return -EINVAL;
  if (h->closing) return -ESHUTDOWN;
  multiaddr ma;
  peerid pid;
  bool has_pid = false, has_addr = false;
  if (target[0] == '/') {
    int rc = multiaddr_parse(target, &ma);
    if (rc) return rc;
    has_addr = true;
    has_pid = multiaddr_get_peerid(&ma, &pid) == 0;
    if (is_circuit(&ma) && !circuit_has_dest(&ma)) return -EINVAL; /* whom would we reach? */
  } else {
    if (peerid_parse(target, strlen(target), &pid) != 0) return -EINVAL;
    has_pid = true;
  }
  if (has_pid && peerid_equal(&pid, &h->id)) return -EINVAL;
  char addr_str[MULTIADDR_STR_MAX] = "";
  if (has_addr) {
    multiaddr bare;
    multiaddr_strip_p2p(&ma, &bare);
    if (multiaddr_to_string(&bare, addr_str, sizeof addr_str) != 0) return -EINVAL;
  }
  /* Reuse a live connection (newest first; a direct one before a relayed one), or join one
   * still handshaking. */
  p2p_conn *pending = NULL, *relayed = NULL;
  for (p2p_conn *c = h->conns; c; c = c->next) {
    bool same = has_pid ? (c->state >= CONN_READY ? peerid_equal(&c->remote, &pid)
                                                  : (c->has_expected && peerid_equal(&c->expected, &pid)))
                        : (c->outbound && strcmp(c->remote_addr, addr_str) == 0);
    if (!same) continue;
    if (conn_is_usable(c)) {
      if (!c->relayed) return stream_open(c, protocol, cb, ud);
      if (!relayed) relayed = c;
      continue;
    }
    if (c->state < CONN_READY && c->outbound && !pending) pending = c;
  }
  if (relayed) return stream_open(relayed, protocol, cb, ud);
  if (!pending) {
    if (!has_addr) {
      char id[PEERID_STR_MAX];
      if (peerid_to_string(&pid, id, sizeof id) != 0) return -EINVAL;
      peerstore_entry *e = peerstore_get(h->ps, id);
      if (!e || !e->n_addrs) return -EHOSTUNREACH;
      /* Oldest first (the address we dialed ourselves precedes what identify reported); the
       * others are kept on the connection and tried in turn if this dial fails. */
      int rc = -EHOSTUNREACH;
      size_t i = 0;
      for (; i < e->n_addrs; i++) {
        if (multiaddr_parse(e->addrs[i], &ma) != 0) continue;
        rc = host_dial(h, &ma, &pid, NULL, &pending);
        if (rc == 0) break;
      }
      if (rc) return rc;
      for (i++; i < e->n_addrs && pending->n_alts < PEERSTORE_MAX_ADDRS; i++) {
        char *d = strdup(e->addrs[i]);
        if (d) pending->alts[pending->n_alts++] = d;
      }
    } else {
      int rc = host_dial(h, &ma, has_pid ? &pid : NULL, NULL, &pending);
      if (rc) return rc;
    }
  }
  host_open_req *w = calloc(1, sizeof *w);
  if (!w) return -ENOMEM;
  w->protocol = strdup(protocol);
  if (!w->protocol) {
    free(w);
    return -ENOMEM;
  }
  w->h = h;
  w->cb = cb;
  w->ud = ud;
  host_open_req **tail = &pending->waiters;
  while (*tail) tail = &(*tail)->next;
  *tail = w;
  return 0;
}

/* ---------------------------------------------------------------- connections over streams */

p2p_conn *host_conn_by_id(p2p_host *h, uint64_t id) {
  for (p2p_conn *c = h->conns; c; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

void host_tcp_ctx(p2p_host *h, p2p_tcp_ctx *ctx) {
  *ctx = (p2p_tcp_ctx){.loop = h->loop,
                       .rbuf = h->rbuf,
                       .rbuf_len = HOST_READ_CHUNK,
                       .pool = &h->wpool,
                       .write_queue_max = h->cfg.conn_write_queue_max,
                       .bytes_in = &h->stats.bytes_in,
                       .bytes_out = &h->stats.bytes_out};
}

int p2p_host_upgrade_stream(p2p_host *h, p2p_stream *s, const p2p_upgrade_opts *o, p2p_upgrade_fn cb, void *ud) {
  LOOP_THREAD_ONLY();
  if (!s || !o || !cb) return -EINVAL;
  if (h->closing) return -ESHUTDOWN;
  if ((s->life != STREAM_HANDING && s->life != STREAM_OPEN) || s->tx != TX_OPEN || s->conn->h != h) return -EINVAL;
  peerid expected;
  bool has_expected = false;
  if (o->expected_peer) {
    if (peerid_parse(o->expected_peer, strlen(o->expected_peer), &expected) != 0) return -EINVAL;
    if (peerid_equal(&expected, &h->id)) return -EINVAL;
    has_expected = true;
  } else if (o->outbound) {
    return -EINVAL; /* a dial must know whom it reaches */
  }
  if (o->remote_addr && strlen(o->remote_addr) >= MULTIADDR_STR_MAX) return -EINVAL;
  if (o->initial_len > P2P_STREAM_TRANSPORT_PREFIX_MAX || (o->initial_len && !o->initial)) return -EINVAL;
  if (!host_room_for_own(h)) return -EMFILE;
  p2p_conn *c = conn_new(h, NULL, o->outbound);
  if (!c) return -ENOMEM;
  p2p_transport *t;
  int rc = p2p_stream_transport_pending(h, &t);
  if (rc == 0 && (rc = p2p_stream_transport_set_initial(t, o->initial, o->initial_len)) != 0) {
    static const p2p_transport_events none = {0};
    p2p_transport_bind(t, &none, NULL);
    p2p_transport_close(t, rc); /* never had a stream: frees itself from a later iteration */
  }
  if (rc) {
    conn_free_unused(c);
    return rc;
  }
  p2p_stream_transport_attach(t, s); /* takes s */
  if (o->limit.duration_ms || o->limit.data_bytes) p2p_stream_transport_set_limit(t, &o->limit);
  conn_attach(c, t);
  if (has_expected) {
    c->has_expected = true;
    c->expected = expected;
  }
  snprintf(c->remote_addr, sizeof c->remote_addr, "%s", o->remote_addr ? o->remote_addr : "");
  c->upgrade_cb = cb;
  c->upgrade_ud = ud;
  conn_link(h, c);
  c->counted_pending = true;
  h->pending_handshakes++;
  rc = conn_start(c);
  if (rc) conn_close(c, rc); /* reported through cb, from a later iteration */
  return 0;
}

int p2p_host_connect(p2p_host *h, const char *target, const p2p_connect_opts *o, p2p_upgrade_fn cb, void *ud) {
  LOOP_THREAD_ONLY();
  if (!target || !cb) return -EINVAL;
  if (h->closing) return -ESHUTDOWN;
  multiaddr ma;
  peerid pid;
  int rc = multiaddr_parse(target, &ma);
  if (rc) return rc;
  if (multiaddr_get_peerid(&ma, &pid) != 0) return -EINVAL; /* we must know whom we reach */
  if (peerid_equal(&pid, &h->id)) return -EINVAL;
  dial_how how = {0};
  if (o) how = (dial_how){o->from_listen_port, o->responder, o->no_backoff, o->timeout_ms};
  p2p_conn *c;
  rc = host_dial(h, &ma, &pid, &how, &c);
  if (rc) return rc;
  c->upgrade_cb = cb;
  c->upgrade_ud = ud;
  return 0;
}

int p2p_host_close_conn(p2p_host *h, uint64_t conn_id, bool graceful) {
  LOOP_THREAD_ONLY();
  p2p_conn *c = host_conn_by_id(h, conn_id);
  if (!c || c->state == CONN_CLOSED) return -ENOENT;
  if (graceful) conn_drain(c);
  else conn_close(c, -ECONNRESET);
  return 0;
}

int p2p_host_set_keepalive(p2p_host *h, uint64_t conn_id, bool on) {
  LOOP_THREAD_ONLY();
  p2p_conn *c = host_conn_by_id(h, conn_id);
  if (!c || c->state == CONN_CLOSED) return -ENOENT;
  c->keepalive = on;
  if (!on) c->idle_since_ms = clock_mono_ms();
  return 0;
}

size_t p2p_host_conns(p2p_host *h, const char *peer_id, p2p_conn_info *out, size_t max) {
  LOOP_THREAD_ONLY();
  size_t n = 0;
  int64_t now = clock_mono_ms();
  for (p2p_conn *c = h->conns; c; c = c->next) {
    if (c->state != CONN_READY || (peer_id && strcmp(c->remote_id, peer_id) != 0)) continue;
    if (n < max) {
      out[n] = (p2p_conn_info){.conn_id = c->id, .peer_id = c->remote_id, .remote_addr = c->remote_addr,
                               .inbound = !c->outbound, .relayed = c->relayed,
                               .age_s = (double)(now - c->created_ms) / 1000.0};
      if (c->relayed && c->t) p2p_stream_transport_usage(c->t, now, &out[n].relay);
    }
    n++;
  }
  return n;
}

void p2p_host_set_circuit_dialer(p2p_host *h, const p2p_circuit_dialer *d, void *ud) {
  LOOP_THREAD_ONLY();
  h->circuit = d ? *d : (p2p_circuit_dialer){0};
  h->circuit_ud = d ? ud : NULL;
}

/* ---------------------------------------------------------------- announced addresses */

const char *p2p_reachability_name(p2p_reachability r) {
  return r == P2P_REACH_PUBLIC ? "public" : r == P2P_REACH_PRIVATE ? "private" : "unknown";
}

void p2p_host_set_reachability(p2p_host *h, p2p_reachability r) {
  LOOP_THREAD_ONLY();
  if (h->reach == r) return;
  h->reach = r;
  p2p_event ev = {.type = P2P_EV_REACHABILITY_CHANGED, .reachability = r};
  services_emit(h, &ev);
}

p2p_reachability p2p_host_reachability(const p2p_host *h) { return h->reach; }

int p2p_host_add_addr(p2p_host *h, const char *text) {
  LOOP_THREAD_ONLY();
  multiaddr ma;
  char canon[MULTIADDR_STR_MAX];
  if (!text || multiaddr_parse(text, &ma) != 0 || multiaddr_to_string(&ma, canon, sizeof canon) != 0) return -EINVAL;
  for (size_t i = 0; i < h->n_extra; i++)
    if (strcmp(h->extra_addrs[i], canon) == 0) return -EEXIST;
  if (h->n_extra == P2P_HOST_MAX_EXTRA_ADDRS) return -ENOSPC;
  char *d = strdup(canon);
  if (!d) return -ENOMEM;
  h->extra_addrs[h->n_extra++] = d;
  log_info("p2p address announced", "{s:s}", "multiaddr", canon);
  p2p_event ev = {.type = P2P_EV_ADDRS_CHANGED, .addr = canon};
  services_emit(h, &ev);
  return 0;
}

int p2p_host_remove_addr(p2p_host *h, const char *text) {
  LOOP_THREAD_ONLY();
  multiaddr ma;
  char canon[MULTIADDR_STR_MAX];
  if (!text || multiaddr_parse(text, &ma) != 0 || multiaddr_to_string(&ma, canon, sizeof canon) != 0) return -ENOENT;
  for (size_t i = 0; i < h->n_extra; i++) {
    if (strcmp(h->extra_addrs[i], canon) != 0) continue;
    free(h->extra_addrs[i]);
    memmove(&h->extra_addrs[i], &h->extra_addrs[i + 1], (h->n_extra - i - 1) * sizeof h->extra_addrs[0]);
    h->n_extra--;
    log_info("p2p address withdrawn", "{s:s}", "multiaddr", canon);
    p2p_event ev = {.type = P2P_EV_ADDRS_CHANGED, .addr = canon, .removed = true};
    services_emit(h, &ev);
    return 0;
  }
  return -ENOENT;
}

size_t host_own_addrs(p2p_host *h, multiaddr *out, size_t max) {
  size_t n = 0;
  for (size_t i = 0; i < h->n_listeners && n < max; i++) {
    const char *a = h->listeners[i]->addr;
    bool any4 = strncmp(a, "/ip4/0.0.0.0/", 13) == 0, any6 = strncmp(a, "/ip6/::/", 8) == 0;
    if (!any4 && !any6) {
      if (multiaddr_parse(a, &out[n]) == 0) n++;
      continue;
    }
    const char *port = strstr(a, "/tcp/");
    uv_interface_address_t *ifs;
    int cnt;
    if (!port || uv_interface_addresses(&ifs, &cnt) != 0) continue;
    for (int k = 0; k < cnt && n < max; k++) {
      char ip[64], text[MULTIADDR_STR_MAX];
      if (any4 && ifs[k].address.address4.sin_family == AF_INET) {
        uv_ip4_name(&ifs[k].address.address4, ip, sizeof ip);
        snprintf(text, sizeof text, "/ip4/%s%s", ip, port);
      } else if (any6 && ifs[k].address.address6.sin6_family == AF_INET6 &&
                 !IN6_IS_ADDR_LINKLOCAL(&ifs[k].address.address6.sin6_addr)) {
        uv_ip6_name(&ifs[k].address.address6, ip, sizeof ip);
        snprintf(text, sizeof text, "/ip6/%s%s", ip, port);
      } else {
        continue;
      }
      if (multiaddr_parse(text, &out[n]) == 0) n++;
    }
    uv_free_interface_addresses(ifs, cnt);
  }
  for (size_t i = 0; i < h->n_extra && n < max; i++)
    if (multiaddr_parse(h->extra_addrs[i], &out[n]) == 0) n++;
  return n;
}

static void announced_clear(p2p_host *h) {
  for (size_t i = 0; i < h->n_announced; i++) free(h->announced[i]);
  free(h->announced);
  h->announced = NULL;
  h->n_announced = 0;
}

size_t p2p_host_announced_addrs(p2p_host *h, const char **out, size_t max) {
  LOOP_THREAD_ONLY();
  enum { CAP = 64 };
  multiaddr *mas = malloc(CAP * sizeof *mas);
  announced_clear(h);
  size_t n = mas ? host_own_addrs(h, mas, CAP) : 0;
  h->announced = n ? calloc(n, sizeof *h->announced) : NULL;
  size_t k = 0;
  for (size_t i = 0; h->announced && i < n; i++) {
    char t[MULTIADDR_STR_MAX];
    if (multiaddr_to_string(&mas[i], t, sizeof t) != 0 || !(h->announced[k] = strdup(t))) continue;
    if (k < max) out[k] = h->announced[k];
    k++;
  }
  h->n_announced = k;
  free(mas);
  return k;
}

int p2p_host_open_stream_on(p2p_host *h, uint64_t conn_id, const char *protocol, p2p_open_fn cb, void *ud) {
  LOOP_THREAD_ONLY();
  if (!protocol || !cb) return -EINVAL;
  size_t plen = strlen(protocol);
  if (plen == 0 || plen > HOST_MAX_PROTO) return -EINVAL;
  if (h->closing) return -ESHUTDOWN;
  p2p_conn *c = host_conn_by_id(h, conn_id);
  if (!c) return -ENOENT;
  return stream_open(c, protocol, cb, ud);
}

/* ---------------------------------------------------------------- periodic work */

typedef struct save_work {
  uv_work_t req;
  p2p_host *h;
  char *path;
  char *json;
  int rc;
} save_work;

static void save_run(uv_work_t *req) {
  save_work *w = req->data;
  w->rc = peerstore_write_file(w->path, w->json);
}

static void save_done(uv_work_t *req, int status) {
  (void)status;
  save_work *w = req->data;
  w->h->save_in_flight = false;
  if (w->rc) log_warn("p2p peerstore save failed", "{s:s, s:s}", "path", w->path, "error", strerror(-w->rc));
  p2p_host *h = w->h;
  free(w->path);
  free(w->json);
  free(w);
  maybe_finish_close(h);
}

static char *peers_path(const p2p_host *h) {
  size_t n = strlen(h->state_dir) + 8;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/peers", h->state_dir);
  return p;
}

static void save_peers_async(p2p_host *h) {
  if (h->cfg.no_peerstore_file || h->save_in_flight || !h->peers_dirty) return;
  save_work *w = calloc(1, sizeof *w);
  if (!w) return;
  w->h = h;
  w->path = peers_path(h);
  w->json = peerstore_snapshot(h->ps);
  w->req.data = w;
  if (!w->path || !w->json || uv_queue_work(h->loop, &w->req, save_run, save_done) != 0) {
    free(w->path);
    free(w->json);
    free(w);
    return;
  }
  h->save_in_flight = true;
  h->peers_dirty = false;
  h->peers_saved_ms = clock_mono_ms();
}

static void on_tick(uv_timer_t *t) {
  p2p_host *h = t->data;
  int64_t now = clock_mono_ms();
  for (p2p_conn *c = h->conns, *next; c; c = next) {
    next = c->next;
    if (h->closing && now > h->close_deadline_ms) conn_close(c, -ECANCELED);
    else conn_tick(c, now);
  }
  if (!h->closing && h->peers_dirty && now - h->peers_saved_ms > 30000) save_peers_async(h);
}

/* ---------------------------------------------------------------- life cycle */

/* ---------------------------------------------------------------- deferred work, reaper */

static void on_idle(uv_idle_t *idle) {
  p2p_host *h = idle->data;
  /* Runs the tasks queued before this round, one at a time from the live list (a task may
   * cancel another); tasks queued meanwhile belong to the next round (no endless loop). */
  uint64_t round = h->task_round++;
  while (h->tasks && h->tasks->round <= round) {
    host_task *t = h->tasks;
    h->tasks = t->next;
    if (!h->tasks) h->tasks_tail = NULL;
    t->next = NULL;
    t->queued = false;
    t->fn(t);
  }
  /* Nothing on the stack holds a closed stream any more. */
  while (h->dead) {
    p2p_stream *st = h->dead;
    h->dead = st->next;
    stream_free(st);
  }
  if (!h->tasks) uv_idle_stop(&h->idle);
  maybe_finish_close(h);
}

void host_defer(p2p_host *h, host_task *t) {
  CHECK(t->fn);
  if (t->queued) return;
  t->queued = true;
  t->round = h->task_round;
  t->next = NULL;
  if (h->tasks_tail) h->tasks_tail->next = t;
  else h->tasks = t;
  h->tasks_tail = t;
  (void)!uv_idle_start(&h->idle, on_idle);
}

void host_cancel(p2p_host *h, host_task *t) {
  if (!t->queued) return;
  host_task *prev = NULL;
  for (host_task *x = h->tasks; x; prev = x, x = x->next) {
    if (x != t) continue;
    if (prev) prev->next = t->next;
    else h->tasks = t->next;
    if (h->tasks_tail == t) h->tasks_tail = prev;
    break;
  }
  t->queued = false;
  t->next = NULL;
}

void host_bury_stream(p2p_host *h, p2p_stream *st) {
  CHECK(st->life == STREAM_CLOSED && !st->prev && !st->next);
  st->next = h->dead;
  h->dead = st;
  (void)!uv_idle_start(&h->idle, on_idle);
}

/* ---------------------------------------------------------------- life cycle */

int p2p_host_new(uv_loop_t *loop, const p2p_host_config *cfg, p2p_host **out) {
  LOOP_THREAD_ONLY();
  if (!loop || !cfg || !cfg->state_dir || !*cfg->state_dir) return -EINVAL;
  if (cfg->noise_aead != NOISE_AEAD_OPENSSL && cfg->noise_aead != NOISE_AEAD_LIBSODIUM) return -EINVAL;
  p2p_host *h = calloc(1, sizeof *h);
  if (!h) return -ENOMEM;
  h->loop = loop;
  h->cfg = *cfg;
  p2p_host_config *c = &h->cfg;
  if (!c->max_connections) c->max_connections = 256;
  if (!c->max_streams_per_conn) c->max_streams_per_conn = 256;
  if (!c->max_pending_handshakes) c->max_pending_handshakes = 64;
  if (!c->max_pending_per_ip) c->max_pending_per_ip = 32;
  if (!c->max_conns_per_ip) c->max_conns_per_ip = 64;
  if (c->reserved_conns >= c->max_connections) c->reserved_conns = c->max_connections / 8;
  if (!c->first_byte_timeout_ms) c->first_byte_timeout_ms = 2500;
  if (!c->reserved_handshakes) c->reserved_handshakes = 16;
  if (!c->authorized_memory) c->authorized_memory = 256;
  if (!c->authorized_memory_s) c->authorized_memory_s = 3600;
  if (!c->handshake_timeout_ms) c->handshake_timeout_ms = 10000;
  if (!c->idle_timeout_ms) c->idle_timeout_ms = 120000;
  if (!c->stream_negotiate_timeout_ms) c->stream_negotiate_timeout_ms = 10000;
  if (!c->dial_backoff_ms) c->dial_backoff_ms = 1000;
  if (!c->stream_send_hwm) c->stream_send_hwm = 256u * 1024u;
  if (!c->stream_send_max) c->stream_send_max = 4u << 20;
  if (c->stream_send_max < c->stream_send_hwm) c->stream_send_max = c->stream_send_hwm;
  if (!c->conn_write_queue_max) c->conn_write_queue_max = 1u << 20;
  if (!c->write_early_bytes) c->write_early_bytes = SIZE_MAX; /* off: a Yamux output never holds that much */
  h->state_dir = strdup(cfg->state_dir);
  h->agent_version = strdup(cfg->agent_version ? cfg->agent_version : "peermcp/" PEERMCP_VERSION);
  c->state_dir = h->state_dir;
  c->agent_version = h->agent_version;
  int rc = (!h->state_dir || !h->agent_version) ? -ENOMEM : 0;
  if (!rc) rc = identity_load_or_create(h->state_dir, &h->key, NULL);
  if (!rc) {
    keys_private_public(&h->key, &h->pub);
    rc = peerid_from_public(&h->pub, &h->id);
  }
  if (!rc) rc = peerid_to_string(&h->id, h->id_str, sizeof h->id_str);
  if (!rc) rc = peerstore_new(&h->ps);
  if (!rc && !(h->rbuf = malloc(HOST_READ_CHUNK))) rc = -ENOMEM;
  if (!rc && !c->no_peerstore_file) {
    char *p = peers_path(h);
    int lrc = p ? peerstore_load(h->ps, p) : -ENOMEM;
    if (lrc) log_warn("p2p peerstore snapshot ignored", "{s:s, s:s}", "path", p ? p : "", "error", strerror(-lrc));
    free(p);
    /* The snapshot is not trusted for key/PeerId agreement: check it again. */
    for (size_t i = 0; i < peerstore_count(h->ps); i++) {
      peerstore_entry *e = peerstore_at(h->ps, i);
      keys_public pk;
      peerid pid;
      e->public_key_matches = e->public_key && keys_public_decode(e->public_key, e->public_key_len, &pk) == 0 &&
                              peerid_parse(e->peer_id, strlen(e->peer_id), &pid) == 0 &&
                              peerid_matches_public(&pid, &pk);
    }
  }
  if (!rc) rc = uv_timer_init(loop, &h->tick);
  if (!rc) {
    int irc = uv_idle_init(loop, &h->idle); /* these only initialise the struct: cannot fail */
    CHECK(irc == 0);
    irc = uv_prepare_init(loop, &h->flush_prep);
    CHECK(irc == 0);
    (void)irc;
  }
  if (rc) {
    if (h->ps) peerstore_free(h->ps);
    free(h->rbuf);
    keys_private_wipe(&h->key);
    free(h->state_dir);
    free(h->agent_version);
    free(h);
    return rc;
  }
  h->tick.data = h;
  h->idle.data = h;
  h->flush_prep.data = h;
  (void)!uv_timer_start(&h->tick, on_tick, HOST_TICK_MS, HOST_TICK_MS);
  h->peers_saved_ms = clock_mono_ms();
  if ((rc = svc_identify_add(h)) != 0 || (rc = svc_ping_add(h)) != 0 || (rc = svc_perf_add(h)) != 0)
    log_warn("p2p services registration failed", "{s:i}", "error", rc);
  *out = h;
  return 0;
}

const char *p2p_host_peer_id(const p2p_host *h) { return h->id_str; }

int p2p_host_last_mismatch(const p2p_host *h, p2p_dial_mismatch *out) {
  if (!h->last_mismatch.addr[0]) return -ENOENT;
  *out = h->last_mismatch;
  return 0;
}

size_t p2p_host_listen_addrs(const p2p_host *h, const char **out, size_t max) {
  for (size_t i = 0; i < h->n_listeners && i < max; i++) out[i] = h->listeners[i]->addr;
  return h->n_listeners;
}

size_t p2p_host_unix_addrs(const p2p_host *h, const char **out, size_t max) {
  for (size_t i = 0; i < h->n_unix && i < max; i++) out[i] = h->unix_listeners[i]->addr;
  return h->n_unix;
}

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == HOST_UNIX_PATH_MAX, "HOST_UNIX_PATH_MAX is sun_path");

/* The timer, the idle and the prepare handle close last; the last close callback frees the
 * host. */
static void on_last_handle_closed(uv_handle_t *hd) {
  p2p_host *h = hd->data;
  if (--h->final_closes > 0) return;
  CHECK(!h->conns && !h->tasks);
  while (h->dead) {
    p2p_stream *st = h->dead;
    h->dead = st->next;
    stream_free(st);
  }
  void (*done)(p2p_host *, void *) = h->close_done;
  void *ud = h->close_ud;
  if (done) done(h, ud);
  while (h->handlers) {
    host_handler *hd2 = h->handlers;
    h->handlers = hd2->next;
    free(hd2->protocol);
    free(hd2);
  }
  for (size_t i = 0; i < h->n_extra; i++) free(h->extra_addrs[i]);
  announced_clear(h);
  peerstore_free(h->ps);
  p2p_tcp_pool_free(&h->wpool);
  free(h->known);
  free(h->rbuf);
  keys_private_wipe(&h->key);
  free(h->state_dir);
  free(h->agent_version);
  free(h);
}

/* Once closing: no connection, listener, hold, save or deferred task is left. */
static void maybe_finish_close(p2p_host *h) {
  if (!h->closing || h->conns || h->open_handles != 0 || h->save_in_flight || h->tasks) return;
  if (uv_is_closing((uv_handle_t *)&h->tick)) return;
  uv_timer_stop(&h->tick);
  uv_idle_stop(&h->idle);
  CHECK(!h->flush_head); /* each conn left the list as it was freed */
  uv_prepare_stop(&h->flush_prep);
  h->final_closes = 3;
  uv_close((uv_handle_t *)&h->tick, on_last_handle_closed);
  uv_close((uv_handle_t *)&h->idle, on_last_handle_closed);
  uv_close((uv_handle_t *)&h->flush_prep, on_last_handle_closed);
}

void p2p_host_hold(p2p_host *h) {
  LOOP_THREAD_ONLY();
  h->open_handles++;
}

void p2p_host_release(p2p_host *h) {
  LOOP_THREAD_ONLY();
  CHECK(h->open_handles > 0);
  h->open_handles--;
  maybe_finish_close(h);
}

void p2p_host_close(p2p_host *h, void (*done)(p2p_host *h, void *ud), void *ud) {
  LOOP_THREAD_ONLY();
  if (h->closing) return;
  h->closing = true;
  h->close_done = done;
  h->close_ud = ud;
  h->close_deadline_ms = clock_mono_ms() + 2000;
  services_stop_all(h);
  for (size_t i = 0; i < h->n_listeners; i++) uv_close(&h->listeners[i]->u.handle, on_listener_closed);
  for (size_t i = 0; i < h->n_unix; i++) { /* the socket file goes now: no new dialer finds it */
    unix_unlink(h->unix_listeners[i]);
    uv_close(&h->unix_listeners[i]->u.handle, on_listener_closed);
  }
  h->n_unix = 0;
  if (h->n_listeners) {
    h->n_listeners = 0;
    p2p_event ev = {.type = P2P_EV_LISTEN_ADDRS_CHANGED};
    services_emit(h, &ev);
  }
  for (p2p_conn *c = h->conns, *next; c; c = next) {
    next = c->next;
    conn_drain(c);
  }
  if (!h->cfg.no_peerstore_file && (h->peers_dirty || peerstore_count(h->ps))) {
    char *p = peers_path(h);
    char *json = peerstore_snapshot(h->ps);
    if (p && json) {
      int rc = peerstore_write_file(p, json);
      if (rc) log_warn("p2p peerstore save failed", "{s:s, s:s}", "path", p, "error", strerror(-rc));
    }
    free(p);
    free(json);
  }
  maybe_finish_close(h);
}

/* ---------------------------------------------------------------- handlers */

static void emit_protocols_changed(p2p_host *h, const char *protocol) {
  p2p_event ev = {.type = P2P_EV_PROTOCOLS_CHANGED, .addr = protocol};
  services_emit(h, &ev);
}

int p2p_host_handle(p2p_host *h, const char *protocol, p2p_stream_handler_fn fn, void *ud) {
  LOOP_THREAD_ONLY();
  if (!protocol || !fn) return -EINVAL;
  size_t n = strlen(protocol);
  if (n == 0 || n > HOST_MAX_PROTO) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)protocol[i] < 0x21 || (unsigned char)protocol[i] > 0x7e) return -EINVAL;
  host_handler *hd = host_find_handler(h, protocol);
  if (hd) {
    hd->fn = fn;
    hd->ud = ud;
    return 0;
  }
  hd = calloc(1, sizeof *hd);
  if (!hd) return -ENOMEM;
  hd->protocol = strdup(protocol);
  if (!hd->protocol) {
    free(hd);
    return -ENOMEM;
  }
  hd->fn = fn;
  hd->ud = ud;
  host_handler **tail = &h->handlers;
  while (*tail) tail = &(*tail)->next;
  *tail = hd;
  emit_protocols_changed(h, hd->protocol);
  return 0;
}

int p2p_host_unhandle(p2p_host *h, const char *protocol) {
  LOOP_THREAD_ONLY();
  for (host_handler **pp = &h->handlers; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->protocol, protocol) == 0) {
      host_handler *hd = *pp;
      *pp = hd->next;
      emit_protocols_changed(h, hd->protocol);
      free(hd->protocol);
      free(hd);
      return 0;
    }
  }
  return -ENOENT;
}

/* ---------------------------------------------------------------- queries */

int p2p_host_peer_info(p2p_host *h, const char *peer_id, p2p_peer_info *out) {
  LOOP_THREAD_ONLY();
  peerstore_entry *e = peerstore_get(h->ps, peer_id);
  if (!e) return -ENOENT;
  memset(out, 0, sizeof *out);
  out->peer_id = e->peer_id;
  out->agent_version = e->agent_version;
  out->protocol_version = e->protocol_version;
  out->observed_addr = e->observed_addr;
  for (size_t i = 0; i < e->n_protocols; i++) h->info_protos[i] = e->protocols[i];
  for (size_t i = 0; i < e->n_addrs; i++) h->info_addrs[i] = e->addrs[i];
  out->protocols = h->info_protos;
  out->n_protocols = e->n_protocols;
  out->listen_addrs = h->info_addrs;
  out->n_listen_addrs = e->n_addrs;
  out->public_key_matches = e->public_key_matches;
  out->last_seen = e->last_seen;
  out->record_seq = e->record_seq;
  return 0;
}

int p2p_host_disconnect(p2p_host *h, const char *peer_id) {
  LOOP_THREAD_ONLY();
  int found = -ENOENT;
  for (p2p_conn *c = h->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == CONN_READY && strcmp(c->remote_id, peer_id) == 0) {
      conn_drain(c);
      found = 0;
    }
  }
  return found;
}

void p2p_host_set_peer_gate(p2p_host *h, p2p_peer_gate_fn fn, void *ud) {
  LOOP_THREAD_ONLY();
  h->gate = fn;
  h->gate_ud = fn ? ud : NULL;
}

void p2p_host_get_stats(const p2p_host *h, p2p_host_stats *out) {
  LOOP_THREAD_ONLY();
  *out = h->stats;
  out->connections = h->n_conns;
  out->pending_handshakes = h->pending_handshakes;
  int64_t now = clock_mono_ms();
  out->remembered = 0;
  for (uint32_t i = 0; i < h->n_known; i++) out->remembered += known_fresh(h, &h->known[i], now);
  uint32_t n = 0;
  for (const p2p_conn *c = h->conns; c; c = c->next) n += (uint32_t)c->n_streams;
  out->streams = n;
}

/* ---------------------------------------------------------------- announce file */

/* A wildcard listen address becomes a concrete one: the first non-internal interface address
 * of that family, else loopback. */
static void announce_addr(const char *listen, char *out, size_t cap) {
  const char *rest = NULL, *fam = NULL, *fallback = NULL;
  if (strncmp(listen, "/ip4/0.0.0.0/", 13) == 0) {
    rest = listen + 12;
    fam = "ip4";
    fallback = "127.0.0.1";
  } else if (strncmp(listen, "/ip6/::/", 8) == 0) {
    rest = listen + 7;
    fam = "ip6";
    fallback = "::1";
  }
  if (!rest) {
    snprintf(out, cap, "%s", listen);
    return;
  }
  char ip[64];
  snprintf(ip, sizeof ip, "%s", fallback);
  uv_interface_address_t *ifs;
  int n;
  if (uv_interface_addresses(&ifs, &n) == 0) {
    for (int i = 0; i < n; i++) {
      if (ifs[i].is_internal) continue;
      if (fam[2] == '4' && ifs[i].address.address4.sin_family == AF_INET) {
        uv_ip4_name(&ifs[i].address.address4, ip, sizeof ip);
        break;
      }
      if (fam[2] == '6' && ifs[i].address.address6.sin6_family == AF_INET6 &&
          !IN6_IS_ADDR_LINKLOCAL(&ifs[i].address.address6.sin6_addr)) {
        uv_ip6_name(&ifs[i].address.address6, ip, sizeof ip);
        break;
      }
    }
    uv_free_interface_addresses(ifs, n);
  }
  snprintf(out, cap, "/%s/%s%s", fam, ip, rest);
}

int p2p_host_announce_addr(const p2p_host *h, size_t i, char *out, size_t cap) {
  if (i >= h->n_listeners) return -ENOENT;
  char a[MULTIADDR_STR_MAX];
  announce_addr(h->listeners[i]->addr, a, sizeof a);
  if ((size_t)snprintf(out, cap, "%s/p2p/%s", a, h->id_str) >= cap) return -ENOSPC;
  return 0;
}

int p2p_host_write_announce(const p2p_host *h, const char *path) {
  if (!h->n_listeners && !h->n_unix) return -ENOTCONN;
  json_t *arr = json_array();
  char first[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8] = "";
  for (size_t i = 0; i < h->n_listeners; i++) {
    char full[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8];
    if (p2p_host_announce_addr(h, i, full, sizeof full) != 0) continue;
    if (!first[0]) snprintf(first, sizeof first, "%s", full);
    json_array_append_new(arr, json_string(full));
  }
  /* relay circuits and confirmed external addresses (p2p_host_add_addr) */
  for (size_t i = 0; i < h->n_extra; i++) {
    char full[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8];
    if ((size_t)snprintf(full, sizeof full, "%s/p2p/%s", h->extra_addrs[i], h->id_str) >= sizeof full) continue;
    json_array_append_new(arr, json_string(full));
  }
  for (size_t i = 0; i < h->n_unix; i++) { /* this host's clients only */
    char full[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8];
    if ((size_t)snprintf(full, sizeof full, "%s/p2p/%s", h->unix_listeners[i]->addr, h->id_str) >= sizeof full) continue;
    if (!first[0]) snprintf(first, sizeof first, "%s", full);
    json_array_append_new(arr, json_string(full));
  }
  json_t *o = json_pack("{s:s, s:s, s:o}", "peer_id", h->id_str, "multiaddr", first, "multiaddrs", arr);
  if (!o) return -ENOMEM;
  char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(o);
  if (!s) return -ENOMEM;
  int rc = peerstore_write_file(path, s);
  free(s);
  return rc;
}
