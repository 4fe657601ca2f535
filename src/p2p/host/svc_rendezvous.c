/* svc_rendezvous.c — namespace publish/find over the DHT. See svc_rendezvous.h. */
#include "p2p/host/svc_rendezvous.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/host/peers.h"
#include "util/clock.h"
#include "util/log.h"

#define MAX_FINDS 4
#define RETRY_MS 200
#define MAX_TRIES 20

enum { T_PUT, T_PROVIDE, T_GET, T_PROV, T_RAW };

typedef struct rv_find {
  bool active;
  int pending;
  p2p_rendezvous_peer peers[P2P_RV_MAX_PEERS];
  size_t n;
  p2p_rendezvous_find_fn cb;
  void *ud;
} rv_find;

/* Each DHT operation we start carries a ticket; closing clears ticket->r so late callbacks
 * find nothing to touch, and the callback frees the ticket. */
typedef struct ticket {
  p2p_rendezvous *r;
  rv_find *f;
  int kind;
  struct ticket *next;
} ticket;

struct p2p_rendezvous {
  p2p_kad *kad;
  p2p_host *h;
  uv_loop_t *loop;
  p2p_rendezvous_config cfg;
  char ns[KAD_NS_MAX + 1];
  char key[sizeof KAD_RENDEZVOUS_PREFIX + KAD_NS_MAX];
  size_t key_len;
  uint8_t mh[KAD_PROVIDER_KEY_LEN];
  uv_timer_t timer;
  bool timer_open, started, closing;
  int tries;
  int round_pending;
  size_t record_acks, provider_acks;
  int round_err;
  p2p_rendezvous_published_fn on_published;
  void *pub_ud;
  rv_find finds[MAX_FINDS];
  ticket *tickets;
  void (*done)(void *);
  void *done_ud;
};

const char *p2p_rendezvous_ns(const p2p_rendezvous *r) { return r->ns; }

int p2p_rendezvous_new(p2p_kad *k, p2p_host *h, uv_loop_t *loop, const p2p_rendezvous_config *cfg,
                       p2p_rendezvous **out) {
  *out = NULL;
  const char *ns = cfg && cfg->ns ? cfg->ns : KAD_RENDEZVOUS_DEFAULT_NS;
  if (!kad_rendezvous_ns_valid(ns)) return -EINVAL;
  p2p_rendezvous *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  r->kad = k;
  r->h = h;
  r->loop = loop;
  if (cfg) r->cfg = *cfg;
  if (!r->cfg.republish_interval_ms) r->cfg.republish_interval_ms = 1800u * 1000u;
  snprintf(r->ns, sizeof r->ns, "%s", ns);
  r->cfg.ns = r->ns;
  int kl = kad_rendezvous_record_key(ns, r->key, sizeof r->key);
  if (kl < 0) {
    free(r);
    return kl;
  }
  r->key_len = (size_t)kl;
  kad_rendezvous_provider_key(ns, r->mh);
  *out = r;
  return 0;
}

static ticket *ticket_new(p2p_rendezvous *r, rv_find *f, int kind) {
  ticket *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->r = r;
  t->f = f;
  t->kind = kind;
  t->next = r->tickets;
  r->tickets = t;
  return t;
}

/* Unlinks t (the callback then frees it); returns its rendezvous or NULL if closed. */
static p2p_rendezvous *ticket_take(ticket *t) {
  p2p_rendezvous *r = t->r;
  if (r)
    for (ticket **pp = &r->tickets; *pp; pp = &(*pp)->next)
      if (*pp == t) {
        *pp = t->next;
        break;
      }
  return r;
}

/* ---------------------------------------------------------------- publish */

static void publish_round(p2p_rendezvous *r);

static void timer_cb(uv_timer_t *t) { publish_round(t->data); }

static void round_done(p2p_rendezvous *r) {
  bool nobody = r->record_acks == 0 && r->provider_acks == 0;
  if (r->on_published) r->on_published(r, nobody ? (r->round_err ? r->round_err : -ENOENT) : 0, r->record_acks,
                                       r->provider_acks, r->pub_ud);
  if (r->closing) return;
  uint64_t next;
  if (nobody && ++r->tries < MAX_TRIES) {
    next = RETRY_MS;
  } else {
    r->tries = 0;
    if (r->cfg.republish_interval_ms == UINT32_MAX) return;
    next = r->cfg.republish_interval_ms;
  }
  uv_timer_start(&r->timer, timer_cb, next, 0);
}

static void on_put(p2p_kad *k, int err, size_t acked, const p2p_kad_op_stats *st, void *ud) {
  (void)k;
  (void)st;
  ticket *t = ud;
  p2p_rendezvous *r = ticket_take(t);
  int kind = t->kind;
  free(t);
  if (!r) return;
  if (kind == T_PUT) r->record_acks = acked;
  else r->provider_acks = acked;
  if (err && !r->round_err) r->round_err = err;
  if (--r->round_pending == 0) round_done(r);
}

static void publish_round(p2p_rendezvous *r) {
  if (r->closing || r->round_pending) return;
  r->record_acks = r->provider_acks = 0;
  r->round_err = 0;
  char addr[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8];
  char value[KAD_RENDEZVOUS_MAX_VALUE];
  int vl = -ENOENT;
  if (p2p_host_announce_addr(r->h, 0, addr, sizeof addr) == 0)
    vl = kad_rendezvous_record_make(p2p_host_peer_id(r->h), addr, clock_wall_s(), value, sizeof value);
  /* Our own entry for the raw namespace key, answered to Python peers that ask us. */
  const multiaddr *self_addrs;
  size_t ns_addrs = p2p_kad_self_addrs(r->kad, &self_addrs);
  peerid self;
  const char *me = p2p_host_peer_id(r->h);
  if (peerid_parse(me, strlen(me), &self) == 0) {
    int rc = kad_store_add_provider(p2p_kad_get_store(r->kad), (const uint8_t *)r->ns, strlen(r->ns), &self,
                                    self_addrs, ns_addrs, uv_now(r->loop));
    (void)rc; /* bounded store: our own single entry always fits unless flooded */
  }
  r->round_pending = 2;
  ticket *tp = vl > 0 ? ticket_new(r, NULL, T_PUT) : NULL;
  int rc = tp ? p2p_kad_put_value(r->kad, (const uint8_t *)r->key, r->key_len, (const uint8_t *)value, (size_t)vl,
                                  on_put, tp)
              : (vl < 0 ? vl : -ENOMEM);
  if (rc) {
    if (tp) {
      (void)ticket_take(tp);
      free(tp);
    }
    r->round_err = rc;
    r->round_pending--;
  }
  ticket *tv = ticket_new(r, NULL, T_PROVIDE);
  rc = tv ? p2p_kad_provide(r->kad, r->mh, sizeof r->mh, on_put, tv) : -ENOMEM;
  if (rc) {
    if (tv) {
      (void)ticket_take(tv);
      free(tv);
    }
    if (!r->round_err) r->round_err = rc;
    r->round_pending--;
  }
  if (r->round_pending == 0) round_done(r);
}

int p2p_rendezvous_start(p2p_rendezvous *r, p2p_rendezvous_published_fn on_published, void *ud) {
  if (r->started) return -EALREADY;
  int rc = uv_timer_init(r->loop, &r->timer);
  if (rc) return rc;
  r->timer.data = r;
  r->timer_open = true;
  r->started = true;
  r->on_published = on_published;
  r->pub_ud = ud;
  if (r->cfg.publish) uv_timer_start(&r->timer, timer_cb, 0, 0); /* first round on the next loop turn */
  return 0;
}

/* ---------------------------------------------------------------- find */

static void add_peer(rv_find *f, const char *id, const multiaddr *addrs, size_t n, unsigned how, double ts) {
  p2p_rendezvous_peer *p = NULL;
  for (size_t i = 0; i < f->n && !p; i++)
    if (!strcmp(f->peers[i].peer_id, id)) p = &f->peers[i];
  if (!p) {
    if (f->n == P2P_RV_MAX_PEERS) return;
    p = &f->peers[f->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->peer_id, sizeof p->peer_id, "%s", id);
  }
  p->how |= how;
  if (ts > p->ts) p->ts = ts;
  for (size_t i = 0; i < n && p->n_addrs < P2P_RV_MAX_ADDRS; i++) {
    multiaddr a;
    multiaddr_strip_p2p(&addrs[i], &a);
    bool dup = false;
    for (size_t k = 0; k < p->n_addrs && !dup; k++) dup = multiaddr_equal(&p->addrs[k], &a);
    if (!dup) p->addrs[p->n_addrs++] = a;
  }
}

static void find_step(p2p_rendezvous *r, rv_find *f) {
  if (--f->pending > 0) return;
  const char *me = p2p_host_peer_id(r->h);
  size_t kept = 0;
  for (size_t i = 0; i < f->n; i++) {
    p2p_rendezvous_peer *p = &f->peers[i];
    if (!strcmp(p->peer_id, me)) continue;
    char texts[P2P_RV_MAX_ADDRS][MULTIADDR_STR_MAX];
    const char *ptrs[P2P_RV_MAX_ADDRS];
    size_t n = 0;
    for (size_t a = 0; a < p->n_addrs; a++)
      if (multiaddr_to_string(&p->addrs[a], texts[n], sizeof texts[n]) == 0) {
        ptrs[n] = texts[n];
        n++;
      }
    int added = p2p_host_add_peer_addrs(r->h, p->peer_id, ptrs, n, P2P_SRC_RENDEZVOUS);
    (void)added;
    if (kept != i) f->peers[kept] = *p;
    kept++;
  }
  f->active = false;
  if (f->cb) f->cb(r, kept ? 0 : -ENOENT, f->peers, kept, f->ud);
}

static void on_value(p2p_kad *k, int err, const uint8_t *v, size_t n, const char *from, const p2p_kad_op_stats *st,
                     void *ud) {
  (void)k;
  (void)from;
  (void)st;
  ticket *t = ud;
  p2p_rendezvous *r = ticket_take(t);
  rv_find *f = t->f;
  free(t);
  if (!r) return;
  kad_rendezvous_record rec;
  if (!err && kad_rendezvous_record_parse(v, n, &rec) == 0) add_peer(f, rec.peer_id, &rec.addr, 1, P2P_RV_RECORD, rec.ts);
  find_step(r, f);
}

static void on_providers(p2p_kad *k, int err, const kad_peer_info *peers, size_t n, const p2p_kad_op_stats *st,
                         void *ud) {
  (void)k;
  (void)st;
  ticket *t = ud;
  p2p_rendezvous *r = ticket_take(t);
  rv_find *f = t->f;
  int kind = t->kind;
  free(t);
  if (!r) return;
  for (size_t i = 0; !err && i < n; i++) {
    char id[PEERID_STR_MAX];
    if (peerid_to_string(&peers[i].id, id, sizeof id) == 0)
      add_peer(f, id, peers[i].addrs, peers[i].n_addrs, kind == T_RAW ? P2P_RV_RAW_PROVIDER : P2P_RV_PROVIDER, 0);
  }
  find_step(r, f);
}

int p2p_rendezvous_find(p2p_rendezvous *r, p2p_rendezvous_find_fn cb, void *ud) {
  if (r->closing || !r->started) return -ESHUTDOWN;
  rv_find *f = NULL;
  for (size_t i = 0; i < MAX_FINDS && !f; i++)
    if (!r->finds[i].active) f = &r->finds[i];
  if (!f) return -EBUSY;
  memset(f, 0, sizeof *f);
  f->active = true;
  f->cb = cb;
  f->ud = ud;
  f->pending = 1; /* held until all three are started */
  int first_err = 0;
  for (int kind = T_GET; kind <= T_RAW; kind++) {
    ticket *t = ticket_new(r, f, kind);
    int rc = -ENOMEM;
    if (t) {
      if (kind == T_GET) rc = p2p_kad_get_value(r->kad, (const uint8_t *)r->key, r->key_len, on_value, t);
      else if (kind == T_PROV) rc = p2p_kad_find_providers(r->kad, r->mh, sizeof r->mh, 20, on_providers, t);
      else rc = p2p_kad_find_providers(r->kad, (const uint8_t *)r->ns, strlen(r->ns), 20, on_providers, t);
    }
    if (rc) {
      if (t) {
        (void)ticket_take(t);
        free(t);
      }
      if (!first_err) first_err = rc;
      continue;
    }
    f->pending++;
  }
  if (f->pending == 1) {
    f->active = false;
    return first_err ? first_err : -EIO;
  }
  f->pending--; /* the hold; callbacks always come later */
  return 0;
}

/* ---------------------------------------------------------------- close */

static void closed_cb(uv_handle_t *hd) {
  p2p_rendezvous *r = hd->data;
  void (*done)(void *) = r->done;
  void *ud = r->done_ud;
  free(r);
  if (done) done(ud);
}

void p2p_rendezvous_close(p2p_rendezvous *r, void (*done)(void *ud), void *ud) {
  if (r->closing) return;
  r->closing = true;
  r->done = done;
  r->done_ud = ud;
  for (ticket *t = r->tickets; t; t = t->next) t->r = NULL;
  r->tickets = NULL;
  for (size_t i = 0; i < MAX_FINDS; i++)
    if (r->finds[i].active) {
      r->finds[i].active = false;
      if (r->finds[i].cb) r->finds[i].cb(r, -ECANCELED, NULL, 0, r->finds[i].ud);
    }
  if (r->timer_open) {
    uv_close((uv_handle_t *)&r->timer, closed_cb);
    return;
  }
  free(r);
  if (done) done(ud);
}
