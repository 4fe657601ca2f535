/* services.c — the host's built-in protocols on top of the stream API:
 *   identify (/ipfs/id/1.0.0, libp2p/specs identify/README.md): served to every peer, and
 *     requested once on every new connection; results go to the peerstore;
 *   identify-push (/ipfs/id/push/1.0.0): received and applied; sent to connected peers when
 *     our protocol list changes;
 *   ping (/ipfs/ping/1.0.0, ping/ping.md): echo server and one-shot client;
 *   perf (/perf/1.0.0, perf/perf.md): server (only when enabled) and client. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/host/internal.h"
#include "p2p/proto/identify.h"
#include "p2p/proto/perf.h"
#include "p2p/proto/ping.h"
#include "util/clock.h"
#include "util/log.h"

#define SERVICE_CHUNK (64u * 1024u)

/* ---------------------------------------------------------------- identify */

/* Our listen addresses as multiaddrs; wildcard addresses are expanded to the interfaces. */
static size_t own_listen_addrs(p2p_host *h, multiaddr *out, size_t max) {
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
  return n;
}

/* Builds our Identify message for the peer at the other end of `c` into `out`. */
static int identify_build(p2p_host *h, p2p_conn *c, buf *out) {
  identify_msg m;
  memset(&m, 0, sizeof m);
  uint8_t pk[KEYS_PUBLIC_PB_MAX];
  size_t pklen;
  int rc = keys_public_encode(&h->pub, pk, sizeof pk, &pklen);
  if (rc) return rc;
  multiaddr addrs[IDENTIFY_MAX_ADDRS];
  char *protos[IDENTIFY_MAX_PROTOCOLS];
  size_t np = 0;
  for (host_handler *hd = h->handlers; hd && np < IDENTIFY_MAX_PROTOCOLS; hd = hd->next) protos[np++] = hd->protocol;
  m.protocol_version = (char *)IDENTIFY_PROTOCOL_VERSION;
  m.agent_version = h->agent_version;
  m.public_key = pk;
  m.public_key_len = pklen;
  m.listen_addrs = addrs;
  m.n_listen_addrs = own_listen_addrs(h, addrs, IDENTIFY_MAX_ADDRS);
  m.protocols = protos;
  m.n_protocols = np;
  if (c && c->remote_addr[0] && multiaddr_parse(c->remote_addr, &m.observed_addr) == 0) m.has_observed_addr = true;
  return identify_encode(&m, out);
}

static void write_and_close(p2p_stream *s, buf *b) {
  int rc = p2p_stream_write(s, buf_ptr(b), buf_len(b));
  if (rc < 0) p2p_stream_reset(s);
  else p2p_stream_close_write(s);
}

static void noop_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  (void)ud;
}

static void identify_serve(p2p_stream *s, void *ud) {
  p2p_host *h = ud;
  static const p2p_stream_callbacks cbs = {.on_close = noop_close};
  p2p_stream_set_callbacks(s, &cbs, NULL);
  buf out;
  buf_init(&out, IDENTIFY_MAX_MSG + 16);
  if (identify_build(h, s->conn, &out) == 0) write_and_close(s, &out);
  else p2p_stream_reset(s);
  buf_free(&out);
}

/* Reading side (identify response or push). */
typedef struct identify_rx {
  p2p_host *h;
  bool push;
  char peer_id[PEERID_STR_MAX];
  peerid remote;
  buf in;
} identify_rx;

static void identify_apply(identify_rx *rx) {
  const uint8_t *msg;
  size_t msg_len, used;
  if (identify_frame_parse(buf_ptr(&rx->in), buf_len(&rx->in), IDENTIFY_MAX_MSG, &msg, &msg_len, &used) != 0) {
    log_info("p2p identify: bad frame", "{s:s}", "peer", rx->peer_id);
    return;
  }
  identify_msg m;
  if (identify_decode(msg, msg_len, &m) != 0) {
    log_info("p2p identify: bad message", "{s:s}", "peer", rx->peer_id);
    return;
  }
  p2p_host *h = rx->h;
  peerstore_entry *e = peerstore_upsert(h->ps, rx->peer_id);
  if (e) {
    if (m.agent_version) (void)!peerstore_set_str(&e->agent_version, m.agent_version, strlen(m.agent_version));
    if (m.protocol_version)
      (void)!peerstore_set_str(&e->protocol_version, m.protocol_version, strlen(m.protocol_version));
    if (m.n_protocols || !rx->push) (void)!peerstore_set_protocols(e, (const char *const *)m.protocols, m.n_protocols);
    for (size_t i = 0; i < m.n_listen_addrs; i++) {
      char a[MULTIADDR_STR_MAX];
      if (multiaddr_to_string(&m.listen_addrs[i], a, sizeof a) == 0) (void)!peerstore_add_addr(e, a);
    }
    if (m.has_observed_addr) {
      char a[MULTIADDR_STR_MAX];
      if (multiaddr_to_string(&m.observed_addr, a, sizeof a) == 0) (void)!peerstore_set_str(&e->observed_addr, a, strlen(a));
    }
    if (m.public_key) {
      keys_public pk;
      bool match = keys_public_decode(m.public_key, m.public_key_len, &pk) == 0 && peerid_matches_public(&rx->remote, &pk);
      if (!match) log_warn("p2p identify: public key does not match the PeerId", "{s:s}", "peer", rx->peer_id);
      (void)!peerstore_set_public_key(e, m.public_key, m.public_key_len, match);
    }
    e->last_seen = clock_wall_s();
    host_mark_peers_dirty(h);
    log_info(rx->push ? "p2p identify-push" : "p2p identify", "{s:s, s:s, s:i, s:i}", "peer", rx->peer_id, "agent",
             e->agent_version ? e->agent_version : "", "protocols", (int)e->n_protocols, "listen_addrs",
             (int)m.n_listen_addrs);
  }
  identify_msg_clear(&m);
  if (h->on_identify) h->on_identify(h, rx->peer_id, h->on_identify_ud);
}

static void identify_rx_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  identify_rx *rx = ud;
  if (buf_append(&rx->in, d, n) != 0) p2p_stream_reset(s);
}

static void identify_rx_eof(p2p_stream *s, void *ud) {
  identify_apply(ud);
  p2p_stream_close_write(s);
}

static void identify_rx_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  identify_rx *rx = ud;
  buf_free(&rx->in);
  free(rx);
}

static const p2p_stream_callbacks identify_rx_cbs = {
    .on_data = identify_rx_data, .on_eof = identify_rx_eof, .on_close = identify_rx_close};

static identify_rx *identify_rx_new(p2p_host *h, p2p_conn *c, bool push) {
  identify_rx *rx = calloc(1, sizeof *rx);
  if (!rx) return NULL;
  rx->h = h;
  rx->push = push;
  rx->remote = c->remote;
  snprintf(rx->peer_id, sizeof rx->peer_id, "%s", c->remote_id);
  buf_init(&rx->in, IDENTIFY_MAX_MSG + 16);
  return rx;
}

static void identify_push_serve(p2p_stream *s, void *ud) {
  identify_rx *rx = identify_rx_new(ud, s->conn, true);
  if (!rx) {
    p2p_stream_reset(s);
    return;
  }
  p2p_stream_set_callbacks(s, &identify_rx_cbs, rx);
}

static void identify_opened(p2p_stream *s, int err, void *ud) {
  p2p_host *h = ud;
  if (!s) {
    log_debug("p2p identify stream failed", "{s:i}", "error", err);
    return;
  }
  identify_rx *rx = identify_rx_new(h, s->conn, false);
  if (!rx) {
    p2p_stream_reset(s);
    return;
  }
  p2p_stream_set_callbacks(s, &identify_rx_cbs, rx);
  p2p_stream_close_write(s);
}

void services_on_conn_ready(p2p_conn *c) {
  if (c->identify_started) return;
  c->identify_started = true;
  int rc = conn_open_stream(c, IDENTIFY_PROTOCOL_ID, identify_opened, c->h);
  if (rc) log_debug("p2p identify not started", "{s:i}", "error", rc);
}

static void push_opened(p2p_stream *s, int err, void *ud) {
  (void)err;
  p2p_host *h = ud;
  if (!s) return;
  static const p2p_stream_callbacks cbs = {.on_close = noop_close};
  p2p_stream_set_callbacks(s, &cbs, NULL);
  buf out;
  buf_init(&out, IDENTIFY_MAX_MSG + 16);
  if (identify_build(h, s->conn, &out) == 0) write_and_close(s, &out);
  else p2p_stream_reset(s);
  buf_free(&out);
}

void services_push_identify(p2p_host *h) {
  for (p2p_conn *c = h->conns; c; c = c->next) {
    if (!conn_is_usable(c)) continue;
    peerstore_entry *e = peerstore_get(h->ps, c->remote_id);
    if (e && !peerstore_has_protocol(e, IDENTIFY_PUSH_PROTOCOL_ID)) continue;
    (void)!conn_open_stream(c, IDENTIFY_PUSH_PROTOCOL_ID, push_opened, h);
  }
}

/* ---------------------------------------------------------------- ping */

typedef struct ping_srv {
  ping_server p;
  buf out;
} ping_srv;

static void ping_srv_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  ping_srv *ps = ud;
  if (ping_server_feed(&ps->p, d, n, &ps->out) != 0) {
    p2p_stream_reset(s);
    return;
  }
  if (buf_len(&ps->out)) {
    int rc = p2p_stream_write(s, buf_ptr(&ps->out), buf_len(&ps->out));
    buf_reset(&ps->out);
    if (rc < 0) p2p_stream_reset(s);
  }
}

static void ping_srv_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}

static void ping_srv_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  ping_srv *ps = ud;
  buf_free(&ps->out);
  free(ps);
}

static void ping_serve(p2p_stream *s, void *ud) {
  (void)ud;
  ping_srv *ps = calloc(1, sizeof *ps);
  if (!ps) {
    p2p_stream_reset(s);
    return;
  }
  ping_server_init(&ps->p);
  buf_init(&ps->out, 64 * 1024);
  static const p2p_stream_callbacks cbs = {.on_data = ping_srv_data, .on_eof = ping_srv_eof, .on_close = ping_srv_close};
  p2p_stream_set_callbacks(s, &cbs, ps);
}

typedef struct ping_cli {
  ping_client p;
  p2p_ping_fn cb;
  void *ud;
  bool done;
} ping_cli;

static void ping_cli_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  ping_cli *pc = ud;
  size_t used;
  uint64_t rtt;
  int rc = ping_client_feed(&pc->p, d, n, clock_mono_us(), &used, &rtt);
  if (rc < 0) {
    p2p_stream_reset(s);
    return;
  }
  if (rc == 1 && !pc->done) {
    pc->done = true;
    pc->cb(0, rtt, pc->ud);
    p2p_stream_close_write(s);
  }
}

static void ping_cli_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  ping_cli *pc = ud;
  if (!pc->done) pc->cb(err ? err : -EPROTO, 0, pc->ud);
  free(pc);
}

static void ping_cli_opened(p2p_stream *s, int err, void *ud) {
  ping_cli *pc = ud;
  if (!s) {
    pc->cb(err, 0, pc->ud);
    free(pc);
    return;
  }
  static const p2p_stream_callbacks cbs = {.on_data = ping_cli_data, .on_close = ping_cli_close};
  p2p_stream_set_callbacks(s, &cbs, pc);
  uint8_t payload[PING_PAYLOAD_LEN];
  if (ping_client_start(&pc->p, clock_mono_us(), payload) != 0 || p2p_stream_write(s, payload, sizeof payload) < 0)
    p2p_stream_reset(s);
}

int p2p_host_ping(p2p_host *h, const char *target, p2p_ping_fn cb, void *ud) {
  if (!cb) return -EINVAL;
  ping_cli *pc = calloc(1, sizeof *pc);
  if (!pc) return -ENOMEM;
  ping_client_init(&pc->p);
  pc->cb = cb;
  pc->ud = ud;
  int rc = p2p_host_open_stream(h, target, PING_PROTO_ID, ping_cli_opened, pc);
  if (rc) free(pc);
  return rc;
}

/* ---------------------------------------------------------------- perf */

static uint8_t perf_block[SERVICE_CHUNK];

typedef struct perf_srv {
  perf_server p;
} perf_srv;

static void perf_srv_send(p2p_stream *s, perf_srv *ps) {
  while (ps->p.state == PERF_SRV_SEND) {
    size_t n = perf_server_fill(&ps->p, perf_block, sizeof perf_block);
    if (!n) break;
    int rc = p2p_stream_write(s, perf_block, n);
    if (rc < 0) {
      p2p_stream_reset(s);
      return;
    }
    perf_server_sent(&ps->p, n);
    if (rc == 1) return; /* on_writable continues */
  }
  if (ps->p.state == PERF_SRV_SEND && ps->p.sent >= ps->p.to_send) ps->p.state = PERF_SRV_DONE;
  if (ps->p.state == PERF_SRV_DONE) p2p_stream_close_write(s);
}

static void perf_srv_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  perf_srv *ps = ud;
  if (perf_server_feed(&ps->p, d, n) != 0) p2p_stream_reset(s);
}

static void perf_srv_eof(p2p_stream *s, void *ud) {
  perf_srv *ps = ud;
  if (perf_server_eof(&ps->p) != 0) {
    p2p_stream_reset(s);
    return;
  }
  perf_srv_send(s, ps);
}

static void perf_srv_writable(p2p_stream *s, void *ud) { perf_srv_send(s, ud); }

static void perf_srv_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  free(ud);
}

static void perf_serve(p2p_stream *s, void *ud) {
  (void)ud;
  perf_srv *ps = calloc(1, sizeof *ps);
  if (!ps) {
    p2p_stream_reset(s);
    return;
  }
  perf_server_init(&ps->p);
  static const p2p_stream_callbacks cbs = {
      .on_data = perf_srv_data, .on_eof = perf_srv_eof, .on_writable = perf_srv_writable, .on_close = perf_srv_close};
  p2p_stream_set_callbacks(s, &cbs, ps);
}

typedef struct perf_cli {
  perf_client p;
  p2p_perf_fn cb;
  void *ud;
  uint64_t t0_us;
  bool done;
} perf_cli;

static void perf_cli_send(p2p_stream *s, perf_cli *pc) {
  while (pc->p.state == PERF_CLI_SEND) {
    size_t n = perf_client_fill(&pc->p, perf_block, sizeof perf_block);
    if (!n) break;
    int rc = p2p_stream_write(s, perf_block, n);
    if (rc < 0) {
      p2p_stream_reset(s);
      return;
    }
    perf_client_sent(&pc->p, n);
    if (rc == 1) return;
  }
  if (pc->p.state == PERF_CLI_RECEIVE) p2p_stream_close_write(s);
}

static void perf_cli_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  perf_cli *pc = ud;
  if (perf_client_feed(&pc->p, d, n) != 0) p2p_stream_reset(s);
}

static void perf_cli_eof(p2p_stream *s, void *ud) {
  perf_cli *pc = ud;
  if (perf_client_eof(&pc->p) != 0) {
    p2p_stream_reset(s);
    return;
  }
  pc->done = true;
}

static void perf_cli_writable(p2p_stream *s, void *ud) { perf_cli_send(s, ud); }

static void perf_cli_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  perf_cli *pc = ud;
  p2p_perf_result r = {pc->p.upload_total, pc->p.received, clock_mono_us() - pc->t0_us};
  if (pc->done && err == 0) pc->cb(0, &r, pc->ud);
  else pc->cb(err ? err : -EPROTO, &r, pc->ud);
  free(pc);
}

static void perf_cli_opened(p2p_stream *s, int err, void *ud) {
  perf_cli *pc = ud;
  if (!s) {
    pc->cb(err, NULL, pc->ud);
    free(pc);
    return;
  }
  static const p2p_stream_callbacks cbs = {
      .on_data = perf_cli_data, .on_eof = perf_cli_eof, .on_writable = perf_cli_writable, .on_close = perf_cli_close};
  p2p_stream_set_callbacks(s, &cbs, pc);
  pc->t0_us = clock_mono_us();
  perf_cli_send(s, pc);
}

int p2p_host_perf(p2p_host *h, const char *target, uint64_t upload, uint64_t download, p2p_perf_fn cb, void *ud) {
  if (!cb) return -EINVAL;
  perf_cli *pc = calloc(1, sizeof *pc);
  if (!pc) return -ENOMEM;
  perf_client_init(&pc->p, upload, download);
  pc->cb = cb;
  pc->ud = ud;
  int rc = p2p_host_open_stream(h, target, PERF_PROTO_ID, perf_cli_opened, pc);
  if (rc) free(pc);
  return rc;
}

/* ---------------------------------------------------------------- registration */

int services_register(p2p_host *h) {
  int rc = p2p_host_handle(h, IDENTIFY_PROTOCOL_ID, identify_serve, h);
  if (!rc) rc = p2p_host_handle(h, IDENTIFY_PUSH_PROTOCOL_ID, identify_push_serve, h);
  if (!rc) rc = p2p_host_handle(h, PING_PROTO_ID, ping_serve, h);
  if (!rc && h->cfg.enable_perf) rc = p2p_host_handle(h, PERF_PROTO_ID, perf_serve, h);
  return rc;
}
