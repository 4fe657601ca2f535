/* nat.c — AutoNAT, circuit relay v2 (client and hop) and DCUtR as one part of the host (see
 * nat.h). */
#include "p2p/host/nat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/multiaddr.h"
#include "p2p/proto/autonat.h"
#include "p2p/proto/autonat2.h"
#include "p2p/proto/dcutr.h"
#include "p2p/proto/relay.h"
#include "p2p/host/svc_autonat.h"
#include "p2p/host/svc_autonat2.h"
#include "p2p/host/svc_dcutr.h"
#include "p2p/host/svc_relay.h"
#include "util/log.h"

#define NAT_TICK_MS 1000
#define NAT_OBSERVED_MAX 8
#define NAT_MAX_HANDLERS 6

struct p2p_nat {
  p2p_host *h;
  uv_loop_t *loop;
  p2p_nat_config cfg;
  p2p_autonat *autonat;
  p2p_autonat2 *autonat2;                             /* AutoNAT v2; votes into autonat */
  p2p_relay_client *relay;
  p2p_relay_hop *hop;
  p2p_dcutr *dcutr;
  uv_timer_t tick;
  bool tick_open, started, attached, closing;
  int closing_parts;
  void (*done)(void *);
  void *done_ud;
  char observed[NAT_OBSERVED_MAX][MULTIADDR_STR_MAX]; /* newest first */
  size_t n_observed;
  p2p_service svc;
  p2p_service_handler handlers[NAT_MAX_HANDLERS];
};

/* ---------------------------------------------------------------- candidate addresses */

static bool ip_tcp_of(const multiaddr *ma, multiaddr_component *ip, uint16_t *port) {
  size_t off = 0;
  multiaddr_component tcp, rest;
  if (multiaddr_next(ma, &off, ip) != 1 || (ip->code != MA_IP4 && ip->code != MA_IP6)) return false;
  if (multiaddr_next(ma, &off, &tcp) != 1 || tcp.code != MA_TCP || tcp.value_len != 2) return false;
  if (multiaddr_next(ma, &off, &rest) != 0) return false;
  *port = (uint16_t)(tcp.value[0] << 8 | tcp.value[1]);
  return true;
}

static size_t add_candidate(p2p_nat *n, multiaddr *out, size_t k, size_t max, const multiaddr *ma) {
  multiaddr_component ip;
  uint16_t port;
  if (k >= max || !ip_tcp_of(ma, &ip, &port) || port == 0) return k;
  if (!n->cfg.allow_private && autonat_addr_is_private(ma)) return k;
  for (size_t i = 0; i < k; i++)
    if (multiaddr_equal(&out[i], ma)) return k;
  out[k] = *ma;
  return k + 1;
}

size_t p2p_nat_candidates(p2p_nat *n, multiaddr *out, size_t max) {
  size_t k = 0;
  const char *ann[64];
  size_t na = p2p_host_announced_addrs(n->h, ann, 64);
  uint16_t ports[16];
  size_t np = 0;
  for (size_t i = 0; i < na && i < 64; i++) {
    multiaddr ma;
    multiaddr_component ip;
    uint16_t port;
    if (multiaddr_parse(ann[i], &ma) != 0 || !ip_tcp_of(&ma, &ip, &port)) continue;
    k = add_candidate(n, out, k, max, &ma);
  }
  const char *listen[16];
  size_t nl = p2p_host_listen_addrs(n->h, listen, 16);
  for (size_t i = 0; i < nl && i < 16; i++) {
    multiaddr ma;
    multiaddr_component ip;
    uint16_t port;
    if (multiaddr_parse(listen[i], &ma) == 0 && ip_tcp_of(&ma, &ip, &port) && np < 16) ports[np++] = port;
  }
  for (size_t i = 0; i < n->n_observed; i++) {
    multiaddr ma;
    multiaddr_component ip;
    uint16_t port;
    if (multiaddr_parse(n->observed[i], &ma) != 0 || !ip_tcp_of(&ma, &ip, &port)) continue;
    /* the observed IP with each listen port first: where a port-keeping NAT maps us */
    for (size_t p = 0; p < np; p++) {
      char t[MULTIADDR_STR_MAX], ipt[64];
      multiaddr c;
      if (ip.code == MA_IP4) snprintf(ipt, sizeof ipt, "%u.%u.%u.%u", ip.value[0], ip.value[1], ip.value[2], ip.value[3]);
      else if (uv_inet_ntop(AF_INET6, ip.value, ipt, sizeof ipt) != 0) continue;
      snprintf(t, sizeof t, "/ip%c/%s/tcp/%u", ip.code == MA_IP4 ? '4' : '6', ipt, (unsigned)ports[p]);
      if (multiaddr_parse(t, &c) == 0) k = add_candidate(n, out, k, max, &c);
    }
    k = add_candidate(n, out, k, max, &ma);
  }
  return k;
}

static size_t candidates_cb(void *ud, multiaddr *out, size_t max) { return p2p_nat_candidates(ud, out, max); }

static void note_observed(p2p_nat *n, const p2p_event *ev) {
  /* only what a direct connection's peer saw */
  p2p_conn_info ci[8];
  size_t nc = p2p_host_conns(n->h, ev->peer_id, ci, 8);
  bool direct = false;
  for (size_t i = 0; i < nc && i < 8; i++)
    if (ci[i].conn_id == ev->conn_id) direct = !ci[i].relayed;
  multiaddr full, ma;
  multiaddr_component ip;
  uint16_t port;
  if (!direct || !ev->addr || multiaddr_parse(ev->addr, &full) != 0) return;
  /* js-libp2p sends its connection's remoteAddr, which ends in /p2p/<our PeerId> */
  multiaddr_strip_p2p(&full, &ma);
  if (!ip_tcp_of(&ma, &ip, &port)) return;
  char t[MULTIADDR_STR_MAX];
  if (multiaddr_to_string(&ma, t, sizeof t) != 0) return;
  size_t at = n->n_observed;
  for (size_t i = 0; i < n->n_observed; i++)
    if (strcmp(n->observed[i], t) == 0) at = i;
  bool is_new = at == n->n_observed;
  if (is_new && n->n_observed == NAT_OBSERVED_MAX) at = --n->n_observed; /* the oldest goes */
  if (!is_new || at < n->n_observed) memmove(&n->observed[1], &n->observed[0], at * sizeof n->observed[0]);
  else memmove(&n->observed[1], &n->observed[0], n->n_observed * sizeof n->observed[0]);
  if (is_new) n->n_observed++;
  snprintf(n->observed[0], sizeof n->observed[0], "%s", t);
  if (is_new) log_debug("p2p nat: observed address", "{s:s, s:s}", "addr", t, "by", ev->peer_id);
}

/* ---------------------------------------------------------------- service */

static void h_hop(p2p_stream *s, void *ud) {
  p2p_nat *n = ud;
  if (n->hop) p2p_relay_hop_serve(n->hop, s);
  else p2p_stream_reset(s);
}
static void h_stop(p2p_stream *s, void *ud) {
  p2p_nat *n = ud;
  if (n->relay) p2p_relay_client_serve_stop(n->relay, s);
  else p2p_stream_reset(s);
}
static void h_autonat(p2p_stream *s, void *ud) {
  p2p_nat *n = ud;
  if (n->autonat) p2p_autonat_serve(n->autonat, s);
  else p2p_stream_reset(s);
}
static void h_autonat2_request(p2p_stream *s, void *ud) {
  p2p_nat *n = ud;
  if (n->autonat2) p2p_autonat2_serve_request(n->autonat2, s);
  else p2p_stream_reset(s);
}
static void h_autonat2_dialback(p2p_stream *s, void *ud) {
  p2p_nat *n = ud;
  if (n->autonat2) p2p_autonat2_serve_dialback(n->autonat2, s);
  else p2p_stream_reset(s);
}
static void h_dcutr(p2p_stream *s, void *ud) {
  p2p_nat *n = ud;
  if (n->dcutr) p2p_dcutr_serve(n->dcutr, s);
  else p2p_stream_reset(s);
}

static void on_tick(uv_timer_t *t) {
  p2p_nat *n = t->data;
  if (n->closing) return;
  if (n->relay) p2p_relay_client_tick(n->relay);
  if (n->hop) p2p_relay_hop_tick(n->hop);
  if (n->autonat) p2p_autonat_tick(n->autonat);
  if (n->autonat2) p2p_autonat2_tick(n->autonat2);
}

static void svc_event(p2p_host *h, const p2p_event *ev, void *state) {
  (void)h;
  p2p_nat *n = state;
  if (n->closing) return;
  if (ev->type == P2P_EV_OBSERVED_ADDR) note_observed(n, ev);
  if (n->relay) p2p_relay_client_on_event(n->relay, ev);
  if (n->hop) p2p_relay_hop_on_event(n->hop, ev);
  if (n->autonat) p2p_autonat_on_event(n->autonat, ev);
  if (n->autonat2) p2p_autonat2_on_event(n->autonat2, ev);
  if (n->dcutr) p2p_dcutr_on_event(n->dcutr, ev);
}

static int nat_start(p2p_nat *n) {
  if (n->started) return -EALREADY;
  int rc = uv_timer_init(n->loop, &n->tick);
  if (rc) return rc;
  n->tick.data = n;
  n->tick_open = true;
  (void)uv_timer_start(&n->tick, on_tick, NAT_TICK_MS, NAT_TICK_MS);
  if (n->relay) p2p_relay_client_start(n->relay);
  n->started = true;
  log_info("p2p nat started", "{s:b, s:b, s:b, s:b, s:b, s:b, s:i, s:b}", "autonat_client", n->cfg.autonat_client,
           "autonat_v2", n->autonat2 != NULL,
           "autonat_server", n->cfg.autonat_server, "relay_client", n->relay != NULL, "relay_reserve",
           n->cfg.relay_reserve, "relay_hop", n->hop != NULL, "relays", (int)n->cfg.n_relays, "holepunch",
           n->dcutr != NULL);
  return 0;
}

static int svc_start(p2p_host *h, void *state) {
  (void)h;
  return nat_start(state);
}

int p2p_nat_start(p2p_nat *n) { return nat_start(n); }

static void part_closed(void *ud) {
  p2p_nat *n = ud;
  if (--n->closing_parts > 0) return;
  if (n->tick_open) return; /* tick_closed finishes */
  void (*done)(void *) = n->done;
  void *dud = n->done_ud;
  free(n);
  if (done) done(dud);
}

static void tick_closed(uv_handle_t *hd) {
  p2p_nat *n = hd->data;
  n->tick_open = false;
  n->closing_parts++;
  part_closed(n);
}

void p2p_nat_close(p2p_nat *n, void (*done)(void *ud), void *ud) {
  if (!n || n->closing) return;
  n->closing = true;
  n->done = done;
  n->done_ud = ud;
  n->closing_parts = 1; /* held while starting the closes */
  if (n->dcutr) {
    n->closing_parts++;
    p2p_dcutr_close(n->dcutr, part_closed, n);
  }
  if (n->autonat2) { /* first: it votes into autonat */
    n->closing_parts++;
    p2p_autonat2_close(n->autonat2, part_closed, n);
  }
  if (n->autonat) {
    n->closing_parts++;
    p2p_autonat_close(n->autonat, part_closed, n);
  }
  if (n->hop) {
    n->closing_parts++;
    p2p_relay_hop_close(n->hop, part_closed, n);
  }
  if (n->relay) {
    n->closing_parts++;
    p2p_relay_client_close(n->relay, part_closed, n);
  }
  if (n->tick_open) {
    uv_timer_stop(&n->tick);
    uv_close((uv_handle_t *)&n->tick, tick_closed);
  }
  part_closed(n);
}

static void svc_closed(void *ud) { p2p_host_release(ud); }

static void svc_stop(p2p_host *h, void *state) {
  p2p_host_hold(h); /* until every part has closed its streams and handles */
  p2p_nat_close(state, svc_closed, h);
}

int p2p_nat_add_to_host(p2p_nat *n) {
  size_t nh = 0;
  if (n->hop) n->handlers[nh++] = (p2p_service_handler){RELAY_HOP_PROTOCOL, h_hop};
  if (n->relay && n->cfg.relay_accept) n->handlers[nh++] = (p2p_service_handler){RELAY_STOP_PROTOCOL, h_stop};
  if (n->autonat && n->cfg.autonat_server) n->handlers[nh++] = (p2p_service_handler){AUTONAT_PROTOCOL, h_autonat};
  if (n->autonat2 && n->cfg.autonat_server)
    n->handlers[nh++] = (p2p_service_handler){AUTONAT2_DIAL_REQUEST_PROTOCOL, h_autonat2_request};
  if (n->autonat2 && n->cfg.autonat_client)
    n->handlers[nh++] = (p2p_service_handler){AUTONAT2_DIAL_BACK_PROTOCOL, h_autonat2_dialback};
  if (n->dcutr) n->handlers[nh++] = (p2p_service_handler){DCUTR_PROTOCOL, h_dcutr};
  n->svc = (p2p_service){.name = "nat",
                         .handlers = nh ? n->handlers : NULL,
                         .n_handlers = nh,
                         .events = P2P_EV_CONN_OPENED | P2P_EV_CONN_CLOSED | P2P_EV_PEER_IDENTIFIED |
                                   P2P_EV_IDENTIFY_PUSH | P2P_EV_OBSERVED_ADDR | P2P_EV_LISTEN_ADDRS_CHANGED |
                                   P2P_EV_REACHABILITY_CHANGED,
                         .start = svc_start,
                         .on_event = svc_event,
                         .stop = svc_stop};
  n->attached = true;
  int rc = p2p_host_add_service(n->h, &n->svc, n);
  if (rc) n->attached = false;
  return rc;
}

int p2p_nat_new(p2p_host *h, uv_loop_t *loop, const p2p_nat_config *cfg, p2p_nat **out) {
  *out = NULL;
  p2p_nat *n = calloc(1, sizeof *n);
  if (!n) return -ENOMEM;
  n->h = h;
  n->loop = loop;
  n->cfg = *cfg;
  n->cfg.relays = NULL; /* copied by the relay client */
  n->cfg.relay_candidates = NULL;
  int rc = 0;
  if (cfg->autonat_client || cfg->autonat_server) {
    p2p_autonat_config ac = {.client = cfg->autonat_client,
                             .server = cfg->autonat_server,
                             .candidates = candidates_cb,
                             .candidates_ud = n,
                             .confidence = cfg->autonat_confidence,
                             .allow_private = cfg->allow_private,
                             .prefer_v2 = cfg->autonat_v2};
    rc = p2p_autonat_new(h, &ac, &n->autonat);
  }
  if (rc == 0 && cfg->autonat_v2 && (cfg->autonat_client || cfg->autonat_server)) {
    p2p_autonat2_config a2 = {.client = cfg->autonat_client,
                              .server = cfg->autonat_server,
                              .candidates = candidates_cb,
                              .candidates_ud = n,
                              .votes = n->autonat,
                              .confidence = cfg->autonat_confidence,
                              .allow_private = cfg->allow_private,
                              .data_bytes = cfg->autonat_v2_data_bytes};
    rc = p2p_autonat2_new(h, &a2, &n->autonat2);
  }
  if (rc == 0 && cfg->relay_client) {
    p2p_relay_client_config rcfg = {.relays = cfg->relays,
                                    .n_relays = cfg->n_relays,
                                    .candidates = cfg->relay_candidates,
                                    .n_candidates = cfg->n_relay_candidates,
                                    .reserve = cfg->relay_reserve,
                                    .accept = cfg->relay_accept,
                                    .ignore_limits = cfg->relay_ignore_limits};
    rc = p2p_relay_client_new(h, &rcfg, &n->relay);
  }
  if (rc == 0 && cfg->hop) rc = p2p_relay_hop_new(h, &cfg->hop_cfg, &n->hop);
  if (rc == 0 && cfg->holepunch) {
    p2p_dcutr_config dc = {.candidates = candidates_cb,
                           .candidates_ud = n,
                           .allow_private = cfg->allow_private,
                           .unilateral = !cfg->holepunch_no_unilateral};
    rc = p2p_dcutr_new(h, loop, &dc, &n->dcutr);
  }
  if (rc) {
    p2p_nat_close(n, NULL, NULL);
    return rc;
  }
  *out = n;
  return 0;
}

json_t *p2p_nat_status_json(p2p_nat *n) {
  p2p_reachability r = p2p_host_reachability(n->h);
  json_t *autonat = n->autonat ? p2p_autonat_status_json(n->autonat)
                               : json_pack("{s:b, s:s, s:i}", "supported", 0, "status", p2p_reachability_name(r),
                                           "code", (int)r);
  if (n->autonat) json_object_set_new(autonat, "v2", n->autonat2 ? p2p_autonat2_status_json(n->autonat2) : json_null());
  json_t *ann = json_array();
  const char *a[64];
  size_t na = p2p_host_announced_addrs(n->h, a, 64);
  const char *me = p2p_host_peer_id(n->h);
  for (size_t i = 0; i < na && i < 64; i++) {
    char full[MULTIADDR_STR_MAX + 128];
    snprintf(full, sizeof full, "%s/p2p/%s", a[i], me);
    json_array_append_new(ann, json_string(full));
  }
  json_t *obs = json_array();
  for (size_t i = 0; i < n->n_observed; i++) json_array_append_new(obs, json_string(n->observed[i]));
  return json_pack("{s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "autonat", autonat, "reachability",
                   p2p_reachability_name(r), "announced_addrs", ann, "observed_addrs", obs, "reservations",
                   n->relay ? p2p_relay_client_status_json(n->relay) : json_array(), "relayed_connections",
                   p2p_relay_client_circuits_json(n->h), "relay_hop",
                   n->hop ? p2p_relay_hop_status_json(n->hop) : json_null(), "holepunch",
                   n->dcutr ? p2p_dcutr_status_json(n->dcutr) : json_null());
}
