/* autonat_common.c — what AutoNAT v1 and v2 do alike on the host (see autonat_common.h). */
#include "p2p/host/autonat_common.h"

#include <stdio.h>
#include <string.h>

#include "util/check.h"

autonat_peer *autonat_peers_slot(autonat_peers *t, const char *id, bool create) {
  autonat_peer *pick = NULL;
  for (size_t i = 0; i < AUTONAT_PEER_SLOTS; i++) {
    autonat_peer *p = &t->slot[i];
    if (p->id[0] && strcmp(p->id, id) == 0) return p;
    if (!create) continue;
    if (!p->id[0]) {
      if (!pick || pick->id[0]) pick = p;
    } else if (!p->asking && (!pick || (pick->id[0] && p->last_ms < pick->last_ms))) {
      pick = p;
    }
  }
  if (!create || !pick) return NULL;
  memset(pick, 0, sizeof *pick);
  snprintf(pick->id, sizeof pick->id, "%s", id);
  return pick;
}

static bool direct_conn(p2p_host *h, const char *peer_id) {
  p2p_conn_info ci[8];
  size_t nc = p2p_host_conns(h, peer_id, ci, 8);
  for (size_t i = 0; i < nc && i < 8; i++)
    if (!ci[i].relayed) return true;
  return false;
}

autonat_peer *autonat_peers_due(autonat_peers *t, p2p_host *h, const char *peer_id, int64_t now_ms, int64_t gap_ms) {
  if (!direct_conn(h, peer_id)) return NULL;
  autonat_peer *p = autonat_peers_slot(t, peer_id, true);
  if (!p || p->asking || (p->last_ms && now_ms - p->last_ms < gap_ms)) return NULL;
  return p;
}

void autonat_peers_asked(autonat_peer *p, int64_t now_ms) {
  p->asking = true;
  p->last_ms = now_ms;
}

void autonat_peers_done(autonat_peers *t, const char *id) {
  autonat_peer *p = autonat_peers_slot(t, id, false);
  if (p) p->asking = false;
}

void autonat_peers_forget_times(autonat_peers *t) {
  for (size_t i = 0; i < AUTONAT_PEER_SLOTS; i++) t->slot[i].last_ms = 0;
}

autonat_rate_slot *autonat_rate_room(autonat_rate *rl, const char *peer, int64_t now_ms, unsigned global,
                                     unsigned per_peer) {
  unsigned total = 0, mine = 0;
  autonat_rate_slot *free_slot = NULL;
  for (size_t i = 0; i < AUTONAT_RATE_SLOTS; i++) {
    autonat_rate_slot *r = &rl->slot[i];
    if (!r->peer[0] || now_ms - r->at_ms > 60000) {
      r->peer[0] = 0;
      if (!free_slot) free_slot = r;
      continue;
    }
    total++;
    if (strcmp(r->peer, peer) == 0) mine++;
  }
  return total >= global || mine >= per_peer ? NULL : free_slot;
}

void autonat_rate_take(autonat_rate_slot *slot, const char *peer, int64_t now_ms) {
  snprintf(slot->peer, sizeof slot->peer, "%s", peer);
  slot->at_ms = now_ms;
}

bool autonat_life_close(autonat_life *l, void (*done)(void *ud), void *ud) {
  if (l->closing) return false;
  l->closing = true;
  l->close_done = done;
  l->close_ud = ud;
  l->pending++;
  return true;
}

bool autonat_life_unpend(autonat_life *l) {
  CHECK(l->pending > 0);
  return --l->pending == 0 && l->closing;
}

bool autonat_peer_speaks(const p2p_peer_info *pi, const char *proto) {
  for (size_t i = 0; i < pi->n_protocols; i++)
    if (strcmp(pi->protocols[i], proto) == 0) return true;
  return false;
}

void autonat_each_direct_peer(p2p_host *h, void (*fn)(void *ud, const char *peer_id), void *ud) {
  p2p_conn_info ci[32];
  size_t n = p2p_host_conns(h, NULL, ci, 32);
  for (size_t i = 0; i < n && i < 32; i++)
    if (!ci[i].relayed) fn(ud, ci[i].peer_id);
}
