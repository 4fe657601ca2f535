/* kad_lookup.c — iterative Kademlia lookup state machine. See kad_lookup.h. */
#include "p2p/proto/kad_lookup.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct kad_lookup {
  peerid self;
  kad_key target;
  size_t k, alpha, max_queries;
  uint32_t timeout_ms;
  kad_candidate c[KAD_LOOKUP_MAX_CANDIDATES]; /* sorted by distance to target, closest first */
  size_t n;
  size_t inflight;
  bool done;
  kad_lookup_stats st;
};

int kad_lookup_new(const peerid *self, const uint8_t *target, size_t target_len, const kad_lookup_config *cfg,
                   kad_lookup **out) {
  *out = NULL;
  if (!target || target_len == 0) return -EINVAL;
  kad_lookup *l = calloc(1, sizeof *l);
  if (!l) return -ENOMEM;
  l->self = *self;
  kad_key_of(target, target_len, &l->target);
  l->k = cfg && cfg->k ? cfg->k : KAD_K;
  l->alpha = cfg && cfg->alpha ? cfg->alpha : KAD_ALPHA;
  l->timeout_ms = cfg && cfg->rpc_timeout_ms ? cfg->rpc_timeout_ms : KAD_DEFAULT_RPC_TIMEOUT_MS;
  l->max_queries = cfg && cfg->max_queries ? cfg->max_queries : 10 * KAD_LOOKUP_MAX_CANDIDATES;
  if (l->k > KAD_LOOKUP_MAX_CANDIDATES) l->k = KAD_LOOKUP_MAX_CANDIDATES;
  *out = l;
  return 0;
}

void kad_lookup_free(kad_lookup *l) { free(l); }

static kad_candidate *find(kad_lookup *l, const peerid *id) {
  for (size_t i = 0; i < l->n; i++)
    if (peerid_equal(&l->c[i].id, id)) return &l->c[i];
  return NULL;
}

const kad_candidate *kad_lookup_find(const kad_lookup *l, const peerid *id) {
  return find((kad_lookup *)l, id);
}

int kad_lookup_add(kad_lookup *l, const peerid *id, unsigned hop) {
  if (peerid_equal(id, &l->self)) return 0;
  kad_key key;
  kad_key_of_peer(id, &key);
  /* Position by distance; the same key means the same peer. */
  size_t lo = 0, hi = l->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = kad_key_cmp_distance(&l->target, &l->c[mid].key, &key);
    if (c == 0) return 0;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  size_t pos = lo;
  if (l->n == KAD_LOOKUP_MAX_CANDIDATES) {
    /* Replace the farthest candidate that is not in flight or answered, if farther. */
    size_t victim = l->n;
    for (size_t i = l->n; i-- > pos;)
      if (l->c[i].state == KAD_CAND_NEW || l->c[i].state == KAD_CAND_FAILED) {
        victim = i;
        break;
      }
    if (victim == l->n) return 0;
    memmove(&l->c[victim], &l->c[victim + 1], (l->n - victim - 1) * sizeof l->c[0]);
    l->n--;
  }
  memmove(&l->c[pos + 1], &l->c[pos], (l->n - pos) * sizeof l->c[0]);
  kad_candidate *c = &l->c[pos];
  memset(c, 0, sizeof *c);
  c->id = *id;
  c->key = key;
  c->state = KAD_CAND_NEW;
  c->hop = hop > UINT16_MAX ? UINT16_MAX : (uint16_t)hop;
  l->n++;
  return 1;
}

static void expire(kad_lookup *l, uint64_t now_ms) {
  for (size_t i = 0; i < l->n; i++) {
    kad_candidate *c = &l->c[i];
    if (c->state == KAD_CAND_ASKED && now_ms >= c->sent_ms + l->timeout_ms) {
      c->state = KAD_CAND_FAILED;
      l->inflight--;
      l->st.failures++;
      l->st.timeouts++;
    }
  }
}

kad_lookup_step kad_lookup_next(kad_lookup *l, uint64_t now_ms, peerid *peer) {
  if (l->done) return KAD_LOOKUP_DONE;
  expire(l, now_ms);
  bool waiting = false;
  size_t seen = 0;
  for (size_t i = 0; i < l->n && seen < l->k; i++) {
    kad_candidate *c = &l->c[i];
    if (c->state == KAD_CAND_FAILED) continue;
    seen++;
    if (c->state == KAD_CAND_ASKED) {
      waiting = true;
    } else if (c->state == KAD_CAND_NEW) {
      if (l->inflight >= l->alpha || l->st.queries >= l->max_queries) {
        waiting = true;
        continue;
      }
      c->state = KAD_CAND_ASKED;
      c->sent_ms = now_ms;
      l->inflight++;
      l->st.queries++;
      *peer = c->id;
      return KAD_LOOKUP_QUERY;
    }
  }
  /* Out of queries: finish once nothing is in flight. */
  if (waiting && l->st.queries >= l->max_queries && l->inflight == 0) waiting = false;
  if (waiting) return KAD_LOOKUP_WAIT;
  l->done = true;
  return KAD_LOOKUP_DONE;
}

int kad_lookup_reply(kad_lookup *l, const peerid *from, const peerid *closer, size_t n_closer) {
  kad_candidate *c = find(l, from);
  if (!c || c->state == KAD_CAND_NEW) return -ENOENT;
  if (c->state == KAD_CAND_ASKED) {
    assert(l->inflight > 0);
    l->inflight--;
  }
  if (c->state == KAD_CAND_REPLIED) return 0;
  c->state = KAD_CAND_REPLIED;
  l->st.replies++;
  unsigned hop = (unsigned)c->hop + 1;
  int added = 0;
  for (size_t i = 0; i < n_closer; i++) added += kad_lookup_add(l, &closer[i], hop);
  return added;
}

void kad_lookup_fail(kad_lookup *l, const peerid *from) {
  kad_candidate *c = find(l, from);
  if (!c || c->state != KAD_CAND_ASKED) return;
  c->state = KAD_CAND_FAILED;
  l->inflight--;
  l->st.failures++;
}

uint64_t kad_lookup_deadline(const kad_lookup *l) {
  uint64_t t = UINT64_MAX;
  for (size_t i = 0; i < l->n; i++)
    if (l->c[i].state == KAD_CAND_ASKED && l->c[i].sent_ms + l->timeout_ms < t) t = l->c[i].sent_ms + l->timeout_ms;
  return t;
}

bool kad_lookup_done(const kad_lookup *l) { return l->done; }

size_t kad_lookup_closest(const kad_lookup *l, peerid *out, size_t n) {
  size_t got = 0;
  for (size_t i = 0; i < l->n && got < n; i++)
    if (l->c[i].state == KAD_CAND_REPLIED) out[got++] = l->c[i].id;
  return got;
}

const kad_key *kad_lookup_target(const kad_lookup *l) { return &l->target; }

void kad_lookup_get_stats(const kad_lookup *l, kad_lookup_stats *out) { *out = l->st; }
