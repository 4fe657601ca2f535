/* peers.c — the peer table over the peerstore. See peers.h. */
#include "p2p/host/peers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/multiaddr.h"
#include "p2p/host/internal.h"
#include "util/clock.h"

int p2p_host_add_peer_addrs(p2p_host *h, const char *peer_id, const char *const *addrs, size_t n,
                            unsigned source) {
  peerid id;
  if (peerid_parse(peer_id, strlen(peer_id), &id) || peerid_equal(&id, &h->id)) return -EINVAL;
  char canon[PEERID_STR_MAX];
  if (peerid_to_string(&id, canon, sizeof canon)) return -EINVAL;
  peerstore_entry *e = peerstore_upsert(h->ps, canon);
  if (!e) return -ENOSPC;
  if ((e->sources | source) != e->sources) h->peers_dirty = true;
  e->sources |= source;
  int added = 0;
  for (size_t i = 0; i < n; i++) {
    multiaddr ma;
    peerid in;
    if (!addrs[i] || multiaddr_parse(addrs[i], &ma)) continue;
    /* a /unix/ path names a socket on this host: taken from the operator (config, CLI) only,
     * never from the network (a peer must not steer our dials into local sockets) */
    if (multiaddr_is_unix(&ma) && source != P2P_SRC_MANUAL && source != P2P_SRC_BOOTSTRAP) continue;
    if (multiaddr_get_peerid(&ma, &in) == 0 && !peerid_equal(&in, &id)) continue;
    multiaddr_strip_p2p(&ma, &ma);
    char text[MULTIADDR_STR_MAX];
    if (ma.len == 0 || multiaddr_to_string(&ma, text, sizeof text)) continue;
    bool known = false;
    for (size_t k = 0; k < e->n_addrs && !known; k++) known = strcmp(e->addrs[k], text) == 0;
    int rc = peerstore_add_addr(e, text); /* also refreshes a known address's time */
    if (rc == -ENOMEM) return rc;
    if (rc == 0 && !known) added++;
  }
  h->peers_dirty = true;
  return added;
}

int p2p_host_import_peer_table(p2p_host *h, const char *path) { return peerstore_load(h->ps, path); }

int p2p_host_record_latency(p2p_host *h, const char *peer_id, double rtt_ms) {
  peerstore_entry *e = peerstore_get(h->ps, peer_id);
  if (!e) return -ENOENT;
  e->latency_ms = rtt_ms;
  return 0;
}

size_t p2p_host_expire_peer_addrs(p2p_host *h, double max_age_s) {
  size_t n = peerstore_expire_addrs(h->ps, clock_wall_s(), max_age_s);
  if (n) h->peers_dirty = true;
  return n;
}

static double recency(const peerstore_entry *e) {
  double r = e->last_seen > e->first_seen ? e->last_seen : e->first_seen;
  for (size_t i = 0; i < e->n_addrs; i++)
    if (e->addr_seen[i] > r) r = e->addr_seen[i];
  return r;
}

size_t p2p_host_list_peers(p2p_host *h, const p2p_peer_filter *f, p2p_peer_row *out, size_t max) {
  return p2p_peers_list(h->ps, f, clock_wall_s(), out, max);
}

json_t *p2p_peer_row_json(const p2p_peer_row *r) {
  json_t *addrs = json_array(), *srcs = json_array(), *protos = json_array();
  for (size_t i = 0; addrs && i < r->n_addrs; i++) json_array_append_new(addrs, json_string(r->addrs[i]));
  for (unsigned b = 0; srcs && b < PEERSTORE_SRC_COUNT; b++)
    if (r->sources & (1u << b)) json_array_append_new(srcs, json_string(peerstore_source_name(1u << b)));
  for (size_t i = 0; protos && i < r->n_protocols; i++) json_array_append_new(protos, json_string(r->protocols[i]));
  json_t *o = json_pack("{s:s, s:o, s:o, s:f, s:f, s:b, s:o}", "peer_id", r->peer_id, "addrs", addrs, "sources", srcs,
                        "first_seen", r->first_seen, "last_seen", r->last_seen, "connected", r->connected,
                        "protocols", protos);
  if (o && r->latency_ms > 0) json_object_set_new(o, "latency_ms", json_real(r->latency_ms));
  if (o && r->agent_version) json_object_set_new(o, "agent", json_string(r->agent_version));
  return o;
}

size_t p2p_peers_list(peerstore *ps, const p2p_peer_filter *f, double now, p2p_peer_row *out, size_t max) {
  p2p_peer_filter dflt = {0};
  if (!f) f = &dflt;
  if (f->limit && f->limit < max) max = f->limit;
  double window = f->alive_window_s > 0 ? f->alive_window_s : 300.0;
  size_t got = 0;
  size_t count = peerstore_count(ps);
  if (max == 0) return 0;
  double *rec = malloc(max * sizeof *rec); /* recency of out[i] */
  if (!rec) return 0;
  for (size_t i = 0; i < count; i++) {
    peerstore_entry *e = peerstore_at(ps, i);
    if (f->sources && !(e->sources & f->sources)) continue;
    if (f->alive_only && !e->connections && !(e->last_seen > 0 && now - e->last_seen <= window)) continue;
    /* Insertion by recency, newest first, keeping the first `max`. */
    size_t pos = got;
    double r = recency(e);
    while (pos > 0 && rec[pos - 1] < r) pos--;
    if (pos >= max) continue;
    size_t last = got < max ? got : max - 1;
    memmove(&out[pos + 1], &out[pos], (last - pos) * sizeof *out);
    memmove(&rec[pos + 1], &rec[pos], (last - pos) * sizeof *rec);
    rec[pos] = r;
    out[pos] = (p2p_peer_row){.peer_id = e->peer_id,
                              .addrs = (const char *const *)e->addrs,
                              .n_addrs = e->n_addrs,
                              .sources = e->sources,
                              .first_seen = e->first_seen,
                              .last_seen = e->last_seen,
                              .latency_ms = e->latency_ms,
                              .agent_version = e->agent_version,
                              .protocols = (const char *const *)e->protocols,
                              .n_protocols = e->n_protocols,
                              .connected = e->connections > 0};
    if (got < max) got++;
  }
  free(rec);
  return got;
}
