/* host.c — the host object: listeners, dials, the connection manager (limits on connections,
 * pending handshakes and streams; handshake, negotiation and idle timeouts; per-peer dial
 * back-off), the protocol handler registry, outbound stream requests, the peerstore snapshot
 * and the announce file. Connection internals live in conn.c, services in services.c. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/identity.h"
#include "p2p/host/internal.h"
#include "util/clock.h"
#include "util/log.h"

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
static int host_dial(p2p_host *h, const multiaddr *ma, const peerid *expected, p2p_conn **out);

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

void host_conn_ready(p2p_conn *c) {
  p2p_host *h = c->h;
  if (c->counted_pending) {
    c->counted_pending = false;
    h->pending_handshakes--;
  }
  if (c->outbound) {
    h->stats.dials_ok++;
    host_backoff *b = backoff_find(h, c->dial_key, false);
    if (b) b->key[0] = 0;
  }
  peerstore_entry *e = peerstore_upsert(h->ps, c->remote_id);
  if (e) {
    e->connections++;
    e->last_seen = clock_wall_s();
    if (c->outbound) (void)!peerstore_add_addr(e, c->remote_addr);
    const keys_public *pk = noise_remote_public_key(c->noise);
    uint8_t pb[KEYS_PUBLIC_PB_MAX];
    size_t pblen;
    if (pk && keys_public_encode(pk, pb, sizeof pb, &pblen) == 0)
      (void)!peerstore_set_public_key(e, pb, pblen, peerid_matches_public(&c->remote, pk));
    host_mark_peers_dirty(h);
  }
  log_info("p2p connection established", "{s:s, s:s, s:s, s:s}", "peer", c->remote_id, "addr", c->remote_addr,
           "direction", c->outbound ? "outbound" : "inbound", "muxer_in_noise",
           noise_negotiated_muxer(c->noise) ? "yes" : "no");
  host_open_req *w = c->waiters;
  c->waiters = NULL;
  while (w) {
    host_open_req *next = w->next;
    int rc = conn_open_stream(c, w->protocol, w->cb, w->ud);
    if (rc) w->cb(NULL, rc, w->ud);
    free(w->protocol);
    free(w);
    w = next;
  }
  if (c->state == CONN_READY) services_on_conn_ready(c);
}

void host_conn_closed(p2p_conn *c) {
  p2p_host *h = c->h;
  if (c->counted_pending) {
    c->counted_pending = false;
    h->pending_handshakes--;
  }
  int err = c->close_err;
  if (c->outbound && !c->was_ready && c->waiters && c->n_alts && !h->closing && c->has_expected) {
    /* Dial by PeerId: move the waiters to the next address. */
    h->stats.dials_failed++;
    log_info("p2p dial failed; trying the next address", "{s:s, s:i}", "addr", c->remote_addr, "error", err);
    for (size_t i = 0; i < c->n_alts; i++) {
      multiaddr ma;
      p2p_conn *next = NULL;
      c->dial_key[0] = 0; /* no back-off between a peer's own addresses */
      if (multiaddr_parse(c->alts[i], &ma) != 0 || host_dial(h, &ma, &c->expected, &next) != 0) continue;
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
      e->connections--;
      e->last_seen = clock_wall_s();
    }
    log_info("p2p connection closed", "{s:s, s:s, s:i}", "peer", c->remote_id, "reason",
             err ? strerror(err < 0 ? -err : err) : "normal", "error", err);
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

static void on_inbound(uv_stream_t *server, int status) {
  host_listener *l = server->data;
  p2p_host *h = l->h;
  if (status < 0) return;
  p2p_conn *c = conn_new(h, false);
  if (!c) return;
  if (uv_tcp_init(h->loop, &c->tcp) != 0) {
    buf_free(&c->plain);
    free(c);
    return;
  }
  c->tcp.data = c;
  conn_link(h, c);
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c, -ECONNABORTED);
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  multiaddr ma;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 &&
      multiaddr_from_sockaddr((struct sockaddr *)&ss, &ma) == 0)
    (void)!multiaddr_to_string(&ma, c->remote_addr, sizeof c->remote_addr);
  if (h->closing || h->n_conns > h->cfg.max_connections || h->pending_handshakes >= h->cfg.max_pending_handshakes) {
    h->stats.inbound_refused++;
    log_warn("p2p inbound connection refused (limits)", "{s:s, s:i, s:i}", "addr", c->remote_addr, "connections",
             (int)h->n_conns, "pending", (int)h->pending_handshakes);
    conn_close(c, -EMFILE);
    return;
  }
  c->counted_pending = true;
  h->pending_handshakes++;
  int rc = conn_start(c);
  if (rc) conn_close(c, rc);
}

static void on_listener_closed(uv_handle_t *hd) {
  host_listener *l = hd->data;
  p2p_host *h = l->h;
  free(l);
  h->open_handles--;
  maybe_finish_close(h);
}

int p2p_host_listen(p2p_host *h, const char *text) {
  if (h->closing) return -ESHUTDOWN;
  if (h->n_listeners == HOST_MAX_LISTENERS) return -EMFILE;
  multiaddr ma;
  int rc = multiaddr_parse(text, &ma);
  if (rc) return rc;
  struct sockaddr_storage ss;
  socklen_t sslen;
  rc = multiaddr_to_sockaddr(&ma, &ss, &sslen);
  if (rc) return rc;
  host_listener *l = calloc(1, sizeof *l);
  if (!l) return -ENOMEM;
  l->h = h;
  rc = uv_tcp_init(h->loop, &l->tcp);
  if (rc) {
    free(l);
    return rc;
  }
  l->tcp.data = l;
  h->open_handles++;
  unsigned flags = ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
  rc = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, flags);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&l->tcp, 128, on_inbound);
  int len = sizeof ss;
  if (rc == 0) rc = uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
  if (rc == 0) rc = multiaddr_from_sockaddr((struct sockaddr *)&ss, &ma);
  if (rc == 0) rc = multiaddr_to_string(&ma, l->addr, sizeof l->addr);
  if (rc) {
    log_error("p2p listen failed", "{s:s, s:s}", "multiaddr", text, "error", uv_strerror(rc));
    uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
    return rc;
  }
  h->listen_addr_ptrs[h->n_listeners] = l->addr;
  h->listeners[h->n_listeners++] = l;
  log_info("p2p listening", "{s:s, s:s}", "multiaddr", l->addr, "peer_id", h->id_str);
  return 0;
}

static void on_connected(uv_connect_t *req, int status) {
  p2p_conn *c = req->data;
  if (status == UV_ECANCELED || c->state == CONN_CLOSED) return;
  if (status < 0) {
    conn_close(c, status);
    return;
  }
  int rc = conn_start(c);
  if (rc) conn_close(c, rc);
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
  if (!rc) rc = uv_tcp_connect(&c->connect_req, &c->tcp, res->ai_addr, on_connected);
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

/* Starts a TCP dial to `ma` (its /p2p/ part, if any, is `expected`). */
static int host_dial(p2p_host *h, const multiaddr *ma, const peerid *expected, p2p_conn **out) {
  multiaddr bare;
  multiaddr_strip_p2p(ma, &bare);
  char addr[MULTIADDR_STR_MAX];
  int rc = multiaddr_to_string(&bare, addr, sizeof addr);
  if (rc) return rc;
  char key[MULTIADDR_STR_MAX];
  if (expected) {
    char id[PEERID_STR_MAX];
    if (peerid_to_string(expected, id, sizeof id) != 0) return -EINVAL;
    snprintf(key, sizeof key, "%s", id);
  } else {
    snprintf(key, sizeof key, "%s", addr);
  }
  host_backoff *b = backoff_find(h, key, false);
  if (b && b->until_ms > clock_mono_ms()) return -EAGAIN;
  if (h->n_conns >= h->cfg.max_connections || h->pending_handshakes >= h->cfg.max_pending_handshakes) return -EMFILE;
  struct sockaddr_storage ss;
  socklen_t sslen;
  rc = multiaddr_to_sockaddr(&bare, &ss, &sslen);
  bool dns = false;
  if (rc == -EAFNOSUPPORT) {
    size_t off = 0;
    multiaddr_component first;
    dns = multiaddr_next(&bare, &off, &first) == 1 &&
          (first.code == MA_DNS || first.code == MA_DNS4 || first.code == MA_DNS6);
  }
  if (rc && !dns) return rc;
  p2p_conn *c = conn_new(h, true);
  if (!c) return -ENOMEM;
  rc = uv_tcp_init(h->loop, &c->tcp);
  if (rc) {
    buf_free(&c->plain);
    free(c);
    return rc;
  }
  c->tcp.data = c;
  if (expected) {
    c->has_expected = true;
    c->expected = *expected;
  }
  snprintf(c->remote_addr, sizeof c->remote_addr, "%s", addr);
  snprintf(c->dial_key, sizeof c->dial_key, "%s", key);
  conn_link(h, c);
  c->counted_pending = true;
  h->pending_handshakes++;
  rc = dns ? host_resolve_start(h, c, &bare) : uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&ss, on_connected);
  if (rc) {
    c->dial_key[0] = 0; /* synchronous failure: no back-off, the caller sees the error */
    conn_close(c, rc);
    return rc;
  }
  *out = c;
  return 0;
}

int p2p_host_open_stream(p2p_host *h, const char *target, const char *protocol, p2p_open_fn cb, void *ud) {
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
  /* Reuse a live connection (newest first), or join one still handshaking. */
  p2p_conn *pending = NULL;
  for (p2p_conn *c = h->conns; c; c = c->next) {
    bool same = has_pid ? (c->state >= CONN_READY ? peerid_equal(&c->remote, &pid)
                                                  : (c->has_expected && peerid_equal(&c->expected, &pid)))
                        : (c->outbound && strcmp(c->remote_addr, addr_str) == 0);
    if (!same) continue;
    if (conn_is_usable(c)) return conn_open_stream(c, protocol, cb, ud);
    if (c->state < CONN_READY && c->outbound && !pending) pending = c;
  }
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
        rc = host_dial(h, &ma, &pid, &pending);
        if (rc == 0) break;
      }
      if (rc) return rc;
      for (i++; i < e->n_addrs && pending->n_alts < PEERSTORE_MAX_ADDRS; i++) {
        char *d = strdup(e->addrs[i]);
        if (d) pending->alts[pending->n_alts++] = d;
      }
    } else {
      int rc = host_dial(h, &ma, has_pid ? &pid : NULL, &pending);
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

int p2p_host_new(uv_loop_t *loop, const p2p_host_config *cfg, p2p_host **out) {
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
  if (!c->handshake_timeout_ms) c->handshake_timeout_ms = 10000;
  if (!c->idle_timeout_ms) c->idle_timeout_ms = 120000;
  if (!c->stream_negotiate_timeout_ms) c->stream_negotiate_timeout_ms = 10000;
  if (!c->dial_backoff_ms) c->dial_backoff_ms = 1000;
  if (!c->stream_send_hwm) c->stream_send_hwm = 256u * 1024u;
  if (!c->stream_send_max) c->stream_send_max = 4u << 20;
  if (c->stream_send_max < c->stream_send_hwm) c->stream_send_max = c->stream_send_hwm;
  if (!c->conn_write_queue_max) c->conn_write_queue_max = 1u << 20;
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
  h->open_handles = 1;
  (void)!uv_timer_start(&h->tick, on_tick, HOST_TICK_MS, HOST_TICK_MS);
  h->peers_saved_ms = clock_mono_ms();
  rc = services_register(h);
  if (rc) log_warn("p2p services registration failed", "{s:i}", "error", rc);
  *out = h;
  return 0;
}

const char *p2p_host_peer_id(const p2p_host *h) { return h->id_str; }

size_t p2p_host_listen_addrs(const p2p_host *h, const char **out, size_t max) {
  for (size_t i = 0; i < h->n_listeners && i < max; i++) out[i] = h->listeners[i]->addr;
  return h->n_listeners;
}

static void on_tick_closed(uv_handle_t *hd) {
  p2p_host *h = hd->data;
  void (*done)(p2p_host *, void *) = h->close_done;
  void *ud = h->close_ud;
  if (done) done(h, ud);
  while (h->handlers) {
    host_handler *hd2 = h->handlers;
    h->handlers = hd2->next;
    free(hd2->protocol);
    free(hd2);
  }
  peerstore_free(h->ps);
  conn_free_wpool(h);
  free(h->rbuf);
  keys_private_wipe(&h->key);
  free(h->state_dir);
  free(h->agent_version);
  free(h);
}

static void maybe_finish_close(p2p_host *h) {
  if (!h->closing || h->conns || h->open_handles != 1 || h->save_in_flight) return;
  if (uv_is_closing((uv_handle_t *)&h->tick)) return;
  uv_timer_stop(&h->tick);
  uv_close((uv_handle_t *)&h->tick, on_tick_closed);
}

void p2p_host_close(p2p_host *h, void (*done)(p2p_host *h, void *ud), void *ud) {
  if (h->closing) return;
  h->closing = true;
  h->close_done = done;
  h->close_ud = ud;
  h->close_deadline_ms = clock_mono_ms() + 2000;
  for (size_t i = 0; i < h->n_listeners; i++) uv_close((uv_handle_t *)&h->listeners[i]->tcp, on_listener_closed);
  h->n_listeners = 0;
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

int p2p_host_handle(p2p_host *h, const char *protocol, p2p_stream_handler_fn fn, void *ud) {
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
  services_push_identify(h);
  return 0;
}

int p2p_host_unhandle(p2p_host *h, const char *protocol) {
  for (host_handler **pp = &h->handlers; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->protocol, protocol) == 0) {
      host_handler *hd = *pp;
      *pp = hd->next;
      free(hd->protocol);
      free(hd);
      services_push_identify(h);
      return 0;
    }
  }
  return -ENOENT;
}

/* ---------------------------------------------------------------- queries */

int p2p_host_peer_info(p2p_host *h, const char *peer_id, p2p_peer_info *out) {
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
  return 0;
}

void p2p_host_on_identify(p2p_host *h, p2p_identify_fn fn, void *ud) {
  h->on_identify = fn;
  h->on_identify_ud = ud;
}

int p2p_host_disconnect(p2p_host *h, const char *peer_id) {
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

void p2p_host_get_stats(const p2p_host *h, p2p_host_stats *out) {
  *out = h->stats;
  out->connections = h->n_conns;
  out->pending_handshakes = h->pending_handshakes;
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
  if (!h->n_listeners) return -ENOTCONN;
  json_t *arr = json_array();
  char first[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8] = "";
  for (size_t i = 0; i < h->n_listeners; i++) {
    char full[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8];
    if (p2p_host_announce_addr(h, i, full, sizeof full) != 0) continue;
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
