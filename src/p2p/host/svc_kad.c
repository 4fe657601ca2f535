/* svc_kad.c — the Kademlia DHT on the host: streams, operations, table upkeep. See svc_kad.h. */
#include "p2p/host/svc_kad.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/keys.h"
#include "p2p/host/peers.h"
#include "p2p/proto/kad_lookup.h"
#include "p2p/proto/kad_record.h"
#include "p2p/proto/kad_rpc.h"
#include "p2p/proto/kad_table.h"
#include "util/clock.h"
#include "util/log.h"

#define TICK_MS 100
#define LINGER_MS 2000          /* after our part of an RPC, how long the peer has to close */
#define INBOUND_IDLE_MS 10000   /* between requests on an inbound stream (js: 10 s) */
#define MAX_SELF_ADDRS 8
#define MAX_PINGS 8
#define MAX_PROVIDERS_OUT 64
#define REFRESH_MAX_CPL 12

typedef enum op_kind { OP_FIND_PEER, OP_CLOSEST, OP_PROVIDERS, OP_GET, OP_PUT, OP_PROVIDE, OP_BOOTSTRAP, OP_REFRESH } op_kind;
enum { PH_LOOKUP, PH_SEND };

typedef struct kad_op kad_op;
typedef struct kad_rpc kad_rpc;
typedef struct kad_in kad_in;

struct kad_op {
  p2p_kad *k;
  op_kind kind;
  int phase;
  uint8_t key[KAD_MAX_KEY];
  size_t klen;
  uint8_t *value; /* put */
  size_t vlen;
  kad_lookup *lk;
  uint64_t start_ms, deadline_ms;
  size_t inflight, acked;
  bool pumping, repump, finished, needs_pump;
  /* find_peer */
  peerid target;
  bool found;
  multiaddr found_addrs[KAD_PEER_MAX_ADDRS];
  size_t n_found_addrs;
  /* providers */
  kad_peer_info provs[MAX_PROVIDERS_OUT];
  multiaddr prov_addrs[MAX_PROVIDERS_OUT][KAD_STORE_MAX_PROVIDER_ADDRS];
  size_t nprov, maxprov;
  /* get */
  uint8_t *best;
  size_t best_len;
  char best_from[PEERID_STR_MAX];
  size_t nvalues;
  p2p_kad_peers_fn peers_cb;
  p2p_kad_value_fn value_cb;
  p2p_kad_done_fn done_cb;
  void *ud;
  kad_op *next;
};

enum { RPC_OPENING, RPC_WAITING, RPC_LINGER };

struct kad_rpc {
  p2p_kad *k;
  kad_op *op;            /* NULL once the operation is over */
  peerid peer;
  char peer_str[PEERID_STR_MAX];
  bool expect_reply;
  int state;
  bool reported;
  bool closed;           /* on_close ran (or the open failed): freed by reap() */
  buf req, in;
  p2p_stream *s;
  uint64_t deadline;
  kad_rpc *next;
};

struct kad_in {
  p2p_kad *k;
  p2p_stream *s;          /* NULL once closed: freed by reap() */
  buf in;
  buf out;
  uint64_t deadline;
  kad_in *next;
};

typedef struct kad_ping {
  p2p_kad *k;
  peerid oldest, newcomer;
  char newcomer_str[PEERID_STR_MAX];
  char oldest_str[PEERID_STR_MAX];
  bool live;
} kad_ping;

struct p2p_kad {
  p2p_host *h;
  uv_loop_t *loop;
  p2p_kad_config cfg;
  char *protocol;
  peerid self;
  char self_str[PEERID_STR_MAX];
  uint8_t self_pk[KEYS_PUBLIC_PB_MAX];
  size_t self_pk_len;
  multiaddr self_addrs[MAX_SELF_ADDRS];
  size_t n_self_addrs;
  kad_table *table;
  kad_store *store;
  kad_server server;
  uv_timer_t tick, kick;
  int open_timers;
  bool started, closing, handler_registered;
  kad_op *ops, *dead;
  size_t n_ops;
  kad_rpc *rpcs;
  kad_in *ins;
  size_t n_ins;
  kad_ping *pings[MAX_PINGS];
  uint64_t next_refresh, next_addr_refresh;
  p2p_kad_stats st;
  void (*close_done)(void *);
  void *close_ud;
};

static uint64_t now_ms(const p2p_kad *k) { return uv_now(k->loop); }

/* ---------------------------------------------------------------- addresses */

static void refresh_self_addrs(p2p_kad *k) {
  k->n_self_addrs = 0;
  char text[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8];
  for (size_t i = 0; k->n_self_addrs < MAX_SELF_ADDRS; i++) {
    if (p2p_host_announce_addr(k->h, i, text, sizeof text) != 0) break;
    multiaddr ma;
    if (multiaddr_parse(text, &ma) != 0) continue;
    multiaddr_strip_p2p(&ma, &ma);
    k->self_addrs[k->n_self_addrs++] = ma;
  }
  k->server.self_addrs = k->self_addrs;
  k->server.n_self_addrs = k->n_self_addrs;
}

/* Puts a peer's addresses from a DHT message into the peerstore. */
static void learn_addrs(p2p_kad *k, const kad_peer_info *p) {
  if (!p->n_addrs || peerid_equal(&p->id, &k->self)) return;
  char id[PEERID_STR_MAX];
  if (peerid_to_string(&p->id, id, sizeof id)) return;
  char texts[KAD_PEER_MAX_ADDRS][MULTIADDR_STR_MAX];
  const char *ptrs[KAD_PEER_MAX_ADDRS];
  size_t n = 0;
  for (size_t i = 0; i < p->n_addrs && n < KAD_PEER_MAX_ADDRS; i++)
    if (multiaddr_to_string(&p->addrs[i], texts[n], sizeof texts[n]) == 0) {
      ptrs[n] = texts[n];
      n++;
    }
  int rc = p2p_host_add_peer_addrs(k->h, id, ptrs, n, P2P_SRC_DHT);
  (void)rc; /* a full peerstore only means we may not reach that peer */
}

/* ---------------------------------------------------------------- operations (decl) */

static void op_pump(kad_op *op);
static void op_rpc_done(kad_op *op, kad_rpc *r, int err, const kad_msg *m);
static void kick(p2p_kad *k);

/* ---------------------------------------------------------------- outbound RPCs */

static void rpc_report(kad_rpc *r, int err, const kad_msg *m) {
  if (r->reported) return;
  r->reported = true;
  r->k->st.rpcs_out++;
  if (err) r->k->st.rpcs_out_failed++;
  if (r->op) op_rpc_done(r->op, r, err, m);
}

/* RPCs and inbound streams are freed on a later loop turn (reap), never inside a callback that
 * may still be running for them. */
static void rpc_release(kad_rpc *r) {
  r->closed = true;
  r->s = NULL;
  kick(r->k);
}

static void rpc_linger(kad_rpc *r) {
  r->state = RPC_LINGER;
  r->deadline = now_ms(r->k) + LINGER_MS;
  if (r->s) p2p_stream_close_write(r->s);
}

static void rpc_on_data(p2p_stream *s, const uint8_t *data, size_t len, void *ud) {
  kad_rpc *r = ud;
  (void)s;
  if (r->reported || r->closed) return;
  if (buf_append(&r->in, data, len) != 0) {
    rpc_report(r, -EMSGSIZE, NULL);
    p2p_stream_reset(r->s);
    return;
  }
  const uint8_t *body;
  size_t bl, used;
  int rc = kad_frame_parse(buf_ptr(&r->in), buf_len(&r->in), &body, &bl, &used);
  if (rc == -EAGAIN) return;
  if (rc) {
    rpc_report(r, -EPROTO, NULL);
    p2p_stream_reset(r->s);
    return;
  }
  kad_msg m;
  rc = kad_msg_decode(body, bl, &m);
  if (rc) {
    rpc_report(r, -EPROTO, NULL);
    p2p_stream_reset(r->s);
    return;
  }
  rpc_report(r, 0, &m);
  kad_msg_clear(&m);
  if (!r->closed) rpc_linger(r);
}

static void rpc_on_eof(p2p_stream *s, void *ud) {
  kad_rpc *r = ud;
  (void)s;
  rpc_report(r, -ECONNRESET, NULL); /* closed without a (complete) reply */
}

static void rpc_on_close(p2p_stream *s, int err, void *ud) {
  kad_rpc *r = ud;
  (void)s;
  r->s = NULL;
  rpc_report(r, err ? err : -ECONNRESET, NULL);
  rpc_release(r);
}

static void rpc_on_open(p2p_stream *s, int err, void *ud) {
  kad_rpc *r = ud;
  if (err) {
    rpc_report(r, err, NULL);
    rpc_release(r);
    return;
  }
  static const p2p_stream_callbacks cbs = {rpc_on_data, rpc_on_eof, NULL, rpc_on_close};
  r->s = s;
  p2p_stream_set_callbacks(s, &cbs, r);
  if (r->reported || r->k->closing) { /* timed out or cancelled while dialing */
    p2p_stream_reset(s);
    return;
  }
  int rc = p2p_stream_write(s, buf_ptr(&r->req), buf_len(&r->req));
  if (rc < 0) {
    rpc_report(r, rc, NULL);
    p2p_stream_reset(s);
    return;
  }
  r->state = RPC_WAITING;
  if (!r->expect_reply) {
    rpc_report(r, 0, NULL);
    rpc_linger(r);
  }
}

/* Sends an encoded request to peer. On error nothing was started. */
static int rpc_start(p2p_kad *k, kad_op *op, const peerid *peer, const kad_msg *req, bool expect_reply) {
  kad_rpc *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  r->k = k;
  r->op = op;
  r->peer = *peer;
  r->expect_reply = expect_reply;
  buf_init(&r->req, KAD_MAX_MSG + 16);
  buf_init(&r->in, KAD_MAX_MSG + 16);
  int rc = peerid_to_string(peer, r->peer_str, sizeof r->peer_str);
  if (!rc) rc = kad_msg_encode(req, &r->req);
  if (!rc) rc = p2p_host_open_stream(k->h, r->peer_str, k->protocol, rpc_on_open, r);
  if (rc) {
    buf_free(&r->req);
    buf_free(&r->in);
    free(r);
    return rc;
  }
  r->state = RPC_OPENING;
  r->deadline = now_ms(k) + k->cfg.rpc_timeout_ms;
  r->next = k->rpcs;
  k->rpcs = r;
  return 0;
}

/* ---------------------------------------------------------------- inbound streams */

static void reap(p2p_kad *k) {
  for (kad_rpc **pp = &k->rpcs; *pp;) {
    kad_rpc *r = *pp;
    if (!r->closed) {
      pp = &r->next;
      continue;
    }
    *pp = r->next;
    buf_free(&r->req);
    buf_free(&r->in);
    free(r);
  }
  for (kad_in **pp = &k->ins; *pp;) {
    kad_in *in = *pp;
    if (in->s) {
      pp = &in->next;
      continue;
    }
    *pp = in->next;
    k->n_ins--;
    buf_free(&in->in);
    buf_free(&in->out);
    free(in);
  }
}

static void in_on_data(p2p_stream *s, const uint8_t *data, size_t len, void *ud) {
  kad_in *in = ud;
  p2p_kad *k = in->k;
  if (!in->s) return;
  if (buf_append(&in->in, data, len) != 0) {
    p2p_stream_reset(s);
    return;
  }
  peerid from;
  const char *rp = p2p_stream_remote_peer(s);
  if (!rp || peerid_parse(rp, strlen(rp), &from)) {
    p2p_stream_reset(s);
    return;
  }
  for (;;) {
    const uint8_t *body;
    size_t bl, used;
    int rc = kad_frame_parse(buf_ptr(&in->in), buf_len(&in->in), &body, &bl, &used);
    if (rc == -EAGAIN) return;
    kad_msg m;
    if (rc == 0) rc = kad_msg_decode(body, bl, &m);
    if (rc) {
      k->st.rpcs_in_refused++;
      p2p_stream_reset(s);
      return;
    }
    buf_reset(&in->out);
    rc = kad_server_handle(&k->server, &from, &m, now_ms(k), clock_wall_s(), &in->out);
    kad_msg_clear(&m);
    buf_consume(&in->in, used);
    k->st.rpcs_in++;
    if (rc) {
      k->st.rpcs_in_refused++;
      log_debug("kad request refused", "{s:s, s:i}", "peer", rp, "error", rc);
      p2p_stream_reset(s);
      return;
    }
    if (buf_len(&in->out) && p2p_stream_write(s, buf_ptr(&in->out), buf_len(&in->out)) < 0) {
      p2p_stream_reset(s);
      return;
    }
    in->deadline = now_ms(k) + INBOUND_IDLE_MS;
  }
}

static void in_on_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}

static void in_on_close(p2p_stream *s, int err, void *ud) {
  kad_in *in = ud;
  (void)s;
  (void)err;
  in->s = NULL;
  kick(in->k);
}

void p2p_kad_serve(p2p_kad *k, p2p_stream *s) {
  if (k->closing || k->n_ins >= k->cfg.max_inbound_streams) {
    k->st.rpcs_in_refused++;
    p2p_stream_reset(s);
    return;
  }
  kad_in *in = calloc(1, sizeof *in);
  if (!in) {
    p2p_stream_reset(s);
    return;
  }
  in->k = k;
  in->s = s;
  buf_init(&in->in, KAD_MAX_MSG + 16);
  buf_init(&in->out, KAD_MAX_MSG + 16);
  in->deadline = now_ms(k) + INBOUND_IDLE_MS;
  in->next = k->ins;
  k->ins = in;
  k->n_ins++;
  static const p2p_stream_callbacks cbs = {in_on_data, in_on_eof, NULL, in_on_close};
  p2p_stream_set_callbacks(s, &cbs, in);
}

static void kad_handler(p2p_stream *s, void *ud) { p2p_kad_serve(ud, s); }

/* ---------------------------------------------------------------- routing table upkeep */

static size_t parse_addrs(const char *const *texts, size_t n, multiaddr *out, size_t max) {
  size_t got = 0;
  for (size_t i = 0; i < n && got < max; i++) {
    if (!texts[i] || multiaddr_parse(texts[i], &out[got])) continue;
    size_t off = 0;
    multiaddr_component c;
    bool relayed = false;
    while (multiaddr_next(&out[got], &off, &c) == 1) relayed |= c.code == MA_P2P_CIRCUIT || c.code == MA_UNIX;
    if (!relayed) got++; /* nor a /unix/ address we dialed: it means nothing to other hosts */
  }
  return got;
}

static void ping_done(int err, uint64_t rtt_us, void *ud) {
  kad_ping *p = ud;
  p2p_kad *k = p->k;
  for (size_t i = 0; i < MAX_PINGS; i++)
    if (k->pings[i] == p) k->pings[i] = NULL;
  if (!k->closing) {
    if (err) {
      /* The old peer is gone: the newcomer takes its place. */
      (void)kad_table_failed(k->table, &p->oldest);
      p2p_kad_peer_identified(k, p->newcomer_str);
    } else {
      const kad_entry *unused;
      int rc = kad_table_add(k->table, &p->oldest, NULL, 0, now_ms(k), &unused);
      (void)rc;
      (void)p2p_host_record_latency(k->h, p->oldest_str, (double)rtt_us / 1000.0);
    }
  }
  free(p);
  kick(k);
}

void p2p_kad_peer_identified(p2p_kad *k, const char *peer_id) {
  if (k->closing) return;
  p2p_peer_info info;
  peerid id;
  if (p2p_host_peer_info(k->h, peer_id, &info) != 0 || peerid_parse(peer_id, strlen(peer_id), &id) != 0) return;
  bool speaks = false;
  for (size_t i = 0; i < info.n_protocols && !speaks; i++) speaks = strcmp(info.protocols[i], k->protocol) == 0;
  if (!speaks) {
    (void)kad_table_remove(k->table, &id);
    return;
  }
  multiaddr addrs[KAD_ENTRY_MAX_ADDRS];
  size_t na = parse_addrs(info.listen_addrs, info.n_listen_addrs, addrs, KAD_ENTRY_MAX_ADDRS);
  const kad_entry *oldest = NULL;
  int rc = kad_table_add(k->table, &id, addrs, na, now_ms(k), &oldest);
  if (rc != -ENOSPC || !oldest) return;
  /* Full bucket: ping its least recently seen peer; the newcomer waits for the verdict. */
  size_t slot = MAX_PINGS;
  for (size_t i = 0; i < MAX_PINGS; i++) {
    if (k->pings[i] && peerid_equal(&k->pings[i]->oldest, &oldest->id)) return;
    if (!k->pings[i] && slot == MAX_PINGS) slot = i;
  }
  if (slot == MAX_PINGS) return;
  kad_ping *p = calloc(1, sizeof *p);
  if (!p) return;
  p->k = k;
  p->oldest = oldest->id;
  p->newcomer = id;
  snprintf(p->newcomer_str, sizeof p->newcomer_str, "%s", peer_id);
  if (peerid_to_string(&p->oldest, p->oldest_str, sizeof p->oldest_str) ||
      p2p_host_ping(k->h, p->oldest_str, ping_done, p) != 0) {
    free(p);
    return;
  }
  k->pings[slot] = p;
}

/* ---------------------------------------------------------------- operations */

static void op_detach_rpcs(kad_op *op) {
  for (kad_rpc *r = op->k->rpcs; r; r = r->next)
    if (r->op == op) r->op = NULL;
}

static void op_stats(kad_op *op, p2p_kad_op_stats *st) {
  memset(st, 0, sizeof *st);
  kad_lookup_stats ls;
  kad_lookup_get_stats(op->lk, &ls);
  st->queries = (uint32_t)ls.queries;
  st->replies = (uint32_t)ls.replies;
  st->failures = (uint32_t)ls.failures;
  st->elapsed_ms = now_ms(op->k) - op->start_ms;
  if (op->kind == OP_FIND_PEER) {
    const kad_candidate *c = kad_lookup_find(op->lk, &op->target);
    st->hops = c ? c->hop : 0;
  } else {
    peerid best[KAD_K];
    size_t n = kad_lookup_closest(op->lk, best, KAD_K);
    for (size_t i = 0; i < n; i++) {
      const kad_candidate *c = kad_lookup_find(op->lk, &best[i]);
      if (c && c->hop + 1u > st->hops) st->hops = c->hop + 1u;
    }
  }
}

/* Ends an operation: callback once, then the op waits on the dead list for kick() to free it
 * (the caller may still be inside op_pump or an RPC callback for it). */
static void op_finish(kad_op *op, int err) {
  if (op->finished) return;
  op->finished = true;
  p2p_kad *k = op->k;
  for (kad_op **pp = &k->ops; *pp; pp = &(*pp)->next)
    if (*pp == op) {
      *pp = op->next;
      break;
    }
  k->n_ops--;
  op->next = k->dead;
  k->dead = op;
  op_detach_rpcs(op);
  p2p_kad_op_stats st;
  op_stats(op, &st);
  switch (op->kind) {
  case OP_FIND_PEER: {
    kad_peer_info pi = {.id = op->target, .addrs = op->found_addrs, .n_addrs = op->n_found_addrs, .connection = -1};
    if (op->peers_cb) op->peers_cb(k, err, err ? NULL : &pi, err ? 0 : 1, &st, op->ud);
    break;
  }
  case OP_CLOSEST: {
    peerid ids[KAD_K];
    kad_peer_info ps[KAD_K];
    multiaddr(*addrs)[KAD_ENTRY_MAX_ADDRS] = calloc(KAD_K, sizeof *addrs);
    size_t n = err || !addrs ? 0 : kad_lookup_closest(op->lk, ids, k->cfg.k < KAD_K ? k->cfg.k : KAD_K);
    for (size_t i = 0; i < n; i++) {
      char id[PEERID_STR_MAX];
      p2p_peer_info info;
      size_t na = 0;
      if (peerid_to_string(&ids[i], id, sizeof id) == 0 && p2p_host_peer_info(k->h, id, &info) == 0)
        na = parse_addrs(info.listen_addrs, info.n_listen_addrs, addrs[i], KAD_ENTRY_MAX_ADDRS);
      ps[i] = (kad_peer_info){.id = ids[i], .addrs = addrs[i], .n_addrs = na, .connection = -1};
    }
    if (op->peers_cb) op->peers_cb(k, err, ps, n, &st, op->ud);
    free(addrs);
    break;
  }
  case OP_PROVIDERS:
    if (op->peers_cb) op->peers_cb(k, err, op->provs, err ? 0 : op->nprov, &st, op->ud);
    break;
  case OP_GET:
    if (op->value_cb) op->value_cb(k, err, op->best, op->best_len, op->best_from, &st, op->ud);
    break;
  case OP_PUT:
  case OP_PROVIDE:
  case OP_BOOTSTRAP:
  case OP_REFRESH:
    if (op->done_cb) op->done_cb(k, err, op->kind == OP_BOOTSTRAP ? st.replies : op->acked, &st, op->ud);
    break;
  }
  kick(k);
}

static void op_free(kad_op *op) {
  kad_lookup_free(op->lk);
  free(op->value);
  free(op->best);
  free(op);
}

static int op_send_query(kad_op *op, const peerid *p) {
  kad_msg req = {.type = KAD_FIND_NODE, .has_key = true, .key = op->key, .key_len = op->klen};
  if (op->kind == OP_GET) req.type = KAD_GET_VALUE;
  if (op->kind == OP_PROVIDERS) req.type = KAD_GET_PROVIDERS;
  int rc = rpc_start(op->k, op, p, &req, true);
  if (rc == 0) op->inflight++;
  return rc;
}

/* After the lookup: PUT_VALUE / ADD_PROVIDER to the closest peers, or the result. */
static void op_lookup_done(kad_op *op) {
  p2p_kad *k = op->k;
  switch (op->kind) {
  case OP_FIND_PEER:
    op_finish(op, op->found ? 0 : -ENOENT);
    return;
  case OP_CLOSEST:
  case OP_BOOTSTRAP:
  case OP_REFRESH: {
    peerid one;
    op_finish(op, kad_lookup_closest(op->lk, &one, 1) ? 0 : -ENOENT);
    return;
  }
  case OP_PROVIDERS:
    op_finish(op, op->nprov ? 0 : -ENOENT);
    return;
  case OP_GET:
    op_finish(op, op->best ? 0 : -ENOENT);
    return;
  case OP_PUT:
  case OP_PROVIDE:
    break;
  }
  peerid closest[KAD_K];
  size_t n = kad_lookup_closest(op->lk, closest, k->cfg.k < KAD_K ? k->cfg.k : KAD_K);
  op->phase = PH_SEND;
  char tbuf[32];
  kad_time_format(clock_wall_s(), tbuf);
  kad_peer_info self = {.id = k->self, .addrs = k->self_addrs, .n_addrs = k->n_self_addrs, .connection = -1};
  for (size_t i = 0; i < n; i++) {
    kad_msg req = {.has_key = true, .key = op->key, .key_len = op->klen};
    if (op->kind == OP_PUT) {
      req.type = KAD_PUT_VALUE;
      req.has_record = true;
      req.record = (kad_record){op->key, op->klen, op->value, op->vlen, tbuf};
    } else {
      req.type = KAD_ADD_PROVIDER;
      req.providers = &self;
      req.n_providers = 1;
    }
    if (rpc_start(k, op, &closest[i], &req, op->kind == OP_PUT) == 0) op->inflight++;
  }
  if (op->inflight == 0) op_finish(op, n ? -EHOSTUNREACH : -ENOENT);
}

static void op_pump(kad_op *op) {
  if (op->finished) return;
  if (op->pumping) {
    op->repump = true;
    return;
  }
  op->pumping = true;
  do {
    op->repump = false;
    if (op->phase == PH_LOOKUP) {
      peerid p;
      kad_lookup_step step;
      while ((step = kad_lookup_next(op->lk, now_ms(op->k), &p)) == KAD_LOOKUP_QUERY)
        if (op_send_query(op, &p) != 0) kad_lookup_fail(op->lk, &p);
      if (step == KAD_LOOKUP_DONE) op_lookup_done(op);
    } else if (op->inflight == 0) {
      op_finish(op, op->acked ? 0 : -EHOSTUNREACH);
    }
  } while (op->repump && !op->finished);
  op->pumping = false;
}

static void add_provider_result(kad_op *op, const peerid *id, const multiaddr *addrs, size_t n) {
  for (size_t i = 0; i < op->nprov; i++)
    if (peerid_equal(&op->provs[i].id, id)) return;
  if (op->nprov >= op->maxprov) return;
  size_t i = op->nprov++;
  if (n > KAD_STORE_MAX_PROVIDER_ADDRS) n = KAD_STORE_MAX_PROVIDER_ADDRS;
  memcpy(op->prov_addrs[i], addrs, n * sizeof *addrs);
  op->provs[i] = (kad_peer_info){.id = *id, .addrs = op->prov_addrs[i], .n_addrs = n, .connection = -1};
}

static void take_value(kad_op *op, const uint8_t *v, size_t n, const char *from) {
  if (kad_record_validate(op->key, op->klen, v, n, NULL) != 0) return;
  op->nvalues++;
  if (op->best && kad_record_select(op->key, op->klen, op->best, op->best_len, v, n) == 0) return;
  uint8_t *c = malloc(n ? n : 1);
  if (!c) return;
  if (n) memcpy(c, v, n);
  free(op->best);
  op->best = c;
  op->best_len = n;
  snprintf(op->best_from, sizeof op->best_from, "%s", from);
}

static void op_rpc_done(kad_op *op, kad_rpc *r, int err, const kad_msg *m) {
  p2p_kad *k = op->k;
  assert(op->inflight > 0);
  op->inflight--;
  if (op->phase == PH_SEND) {
    if (!err) op->acked++;
    op_pump(op);
    return;
  }
  if (err || !m || m->type != (op->kind == OP_GET ? KAD_GET_VALUE : op->kind == OP_PROVIDERS ? KAD_GET_PROVIDERS : KAD_FIND_NODE)) {
    kad_lookup_fail(op->lk, &r->peer);
    if (kad_table_failed(k->table, &r->peer) >= 3 || err == -EPROTONOSUPPORT) (void)kad_table_remove(k->table, &r->peer);
    op_pump(op);
    return;
  }
  {
    /* It answered on our protocol, so it is a DHT server: refresh it, or add it with the
     * addresses that reached it (js-libp2p and go-libp2p add responders too; identify is not
     * needed for that, which matters for a client that only dials out). */
    const kad_entry *unused;
    multiaddr addrs[KAD_ENTRY_MAX_ADDRS];
    size_t na = 0;
    p2p_peer_info info;
    if (!kad_table_find(k->table, &r->peer) && p2p_host_peer_info(k->h, r->peer_str, &info) == 0)
      na = parse_addrs(info.listen_addrs, info.n_listen_addrs, addrs, KAD_ENTRY_MAX_ADDRS);
    (void)!kad_table_add(k->table, &r->peer, addrs, na, now_ms(k), &unused);
  }
  peerid ids[KAD_MAX_PEERS];
  size_t n = 0;
  for (size_t i = 0; i < m->n_closer; i++) {
    learn_addrs(k, &m->closer[i]);
    if (peerid_equal(&m->closer[i].id, &k->self)) continue;
    ids[n++] = m->closer[i].id;
    if (op->kind == OP_FIND_PEER && !op->found && peerid_equal(&m->closer[i].id, &op->target) &&
        m->closer[i].n_addrs) {
      op->found = true;
      op->n_found_addrs = m->closer[i].n_addrs;
      memcpy(op->found_addrs, m->closer[i].addrs, op->n_found_addrs * sizeof(multiaddr));
    }
  }
  int rc = kad_lookup_reply(op->lk, &r->peer, ids, n);
  (void)rc;
  if (op->kind == OP_FIND_PEER && peerid_equal(&r->peer, &op->target) && !op->found) {
    /* The target itself answered: its peerstore addresses are the ones that worked. */
    p2p_peer_info info;
    op->found = true;
    if (p2p_host_peer_info(k->h, r->peer_str, &info) == 0)
      op->n_found_addrs = parse_addrs(info.listen_addrs, info.n_listen_addrs, op->found_addrs, KAD_PEER_MAX_ADDRS);
  }
  if (op->kind == OP_PROVIDERS)
    for (size_t i = 0; i < m->n_providers; i++) {
      learn_addrs(k, &m->providers[i]);
      add_provider_result(op, &m->providers[i].id, m->providers[i].addrs, m->providers[i].n_addrs);
    }
  if (op->kind == OP_GET && m->has_record && m->record.key_len == op->klen &&
      memcmp(m->record.key, op->key, op->klen) == 0)
    take_value(op, m->record.value, m->record.value_len, r->peer_str);
  if (op->kind == OP_FIND_PEER && op->found) {
    op_finish(op, 0);
    return;
  }
  if (op->kind == OP_PROVIDERS && op->nprov >= op->maxprov) {
    op_finish(op, 0);
    return;
  }
  if (op->kind == OP_GET && op->nvalues >= k->cfg.quorum) {
    op_finish(op, 0);
    return;
  }
  op_pump(op);
}

static int op_new(p2p_kad *k, op_kind kind, const uint8_t *key, size_t klen, kad_op **out) {
  if (k->closing || !k->started) return -ESHUTDOWN;
  if (!key || klen == 0 || klen > KAD_MAX_KEY) return -EINVAL;
  if (k->n_ops >= k->cfg.max_ops && kind != OP_REFRESH) return -EBUSY;
  kad_op *op = calloc(1, sizeof *op);
  if (!op) return -ENOMEM;
  kad_lookup_config lc = {.k = k->cfg.k, .alpha = k->cfg.alpha, .rpc_timeout_ms = k->cfg.rpc_timeout_ms + 1000};
  int rc = kad_lookup_new(&k->self, key, klen, &lc, &op->lk);
  if (rc) {
    free(op);
    return rc;
  }
  op->k = k;
  op->kind = kind;
  memcpy(op->key, key, klen);
  op->klen = klen;
  op->start_ms = now_ms(k);
  op->deadline_ms = op->start_ms + k->cfg.query_timeout_ms;
  const kad_entry *seeds[KAD_K];
  size_t ns = kad_table_closest(k->table, kad_lookup_target(op->lk), k->cfg.k < KAD_K ? k->cfg.k : KAD_K, NULL,
                                false, seeds);
  for (size_t i = 0; i < ns; i++) kad_lookup_add(op->lk, &seeds[i]->id, 0);
  op->next = k->ops;
  k->ops = op;
  k->n_ops++;
  op->needs_pump = true;
  kick(k);
  *out = op;
  return 0;
}

/* ---------------------------------------------------------------- timers */

static void free_dead(p2p_kad *k) {
  while (k->dead) {
    kad_op *op = k->dead;
    k->dead = op->next;
    op_free(op);
  }
}

static void maybe_close_done(p2p_kad *k);

static void kick_cb(uv_timer_t *t) {
  p2p_kad *k = t->data;
  for (kad_op *op = k->ops, *next; op; op = next) {
    next = op->next;
    if (op->needs_pump) {
      op->needs_pump = false;
      op_pump(op);
    }
  }
  free_dead(k);
  reap(k);
  if (k->closing) maybe_close_done(k);
}

static void kick(p2p_kad *k) {
  if (k->open_timers == 2 && !uv_is_closing((uv_handle_t *)&k->kick) && !uv_is_active((uv_handle_t *)&k->kick))
    uv_timer_start(&k->kick, kick_cb, 0, 0);
}

static void refresh(p2p_kad *k) {
  kad_op *op;
  if (kad_table_size(k->table) == 0) return;
  if (op_new(k, OP_REFRESH, k->self.bytes, k->self.len, &op) != 0) return;
  for (unsigned cpl = 0; cpl <= REFRESH_MAX_CPL; cpl++) {
    if (kad_table_bucket_size(k->table, cpl) == 0) continue;
    uint8_t key[34];
    if (kad_key_random_in_bucket(kad_table_self_key(k->table), cpl, key) != 0) continue;
    if (op_new(k, OP_REFRESH, key, sizeof key, &op) != 0) break;
  }
}

/* What an operation that ran out of time returns: its partial result if it has one. */
static int timeout_result(kad_op *op) {
  peerid one;
  switch (op->kind) {
  case OP_GET:
    return op->best ? 0 : -ETIMEDOUT;
  case OP_PROVIDERS:
    return op->nprov ? 0 : -ETIMEDOUT;
  case OP_FIND_PEER:
    return op->found ? 0 : -ETIMEDOUT;
  case OP_PUT:
  case OP_PROVIDE:
    return op->acked ? 0 : -ETIMEDOUT;
  default:
    return kad_lookup_closest(op->lk, &one, 1) ? 0 : -ETIMEDOUT;
  }
}

static void tick_cb(uv_timer_t *t) {
  p2p_kad *k = t->data;
  uint64_t now = now_ms(k);
  for (kad_rpc *r = k->rpcs, *next; r; r = next) {
    next = r->next;
    if (r->closed || now < r->deadline) continue;
    if (r->state == RPC_LINGER) {
      if (r->s) p2p_stream_reset(r->s); /* on_close frees it */
      continue;
    }
    if (!r->reported) {
      rpc_report(r, -ETIMEDOUT, NULL);
      if (r->s) p2p_stream_reset(r->s);
    }
  }
  for (kad_in *in = k->ins, *next; in; in = next) {
    next = in->next;
    if (in->s && now >= in->deadline) p2p_stream_reset(in->s);
  }
  for (kad_op *op = k->ops, *next; op; op = next) {
    next = op->next;
    if (now >= op->deadline_ms) {
      op_finish(op, timeout_result(op));
    } else {
      op_pump(op); /* the lookup's own timeouts */
    }
  }
  if (now >= k->next_addr_refresh) {
    refresh_self_addrs(k);
    k->next_addr_refresh = now + 5000;
  }
  if (k->cfg.refresh_interval_ms != UINT32_MAX && now >= k->next_refresh) {
    k->next_refresh = now + k->cfg.refresh_interval_ms;
    refresh(k);
  }
  free_dead(k);
  reap(k);
  kad_store_expire(k->store, now);
}

/* ---------------------------------------------------------------- life cycle */

int p2p_kad_new(p2p_host *h, uv_loop_t *loop, const p2p_kad_config *cfg, p2p_kad **out) {
  *out = NULL;
  p2p_kad *k = calloc(1, sizeof *k);
  if (!k) return -ENOMEM;
  k->h = h;
  k->loop = loop;
  if (cfg) k->cfg = *cfg;
  p2p_kad_config *c = &k->cfg;
  if (!c->k) c->k = KAD_K;
  if (!c->alpha) c->alpha = KAD_ALPHA;
  if (!c->quorum) c->quorum = 8;
  if (!c->rpc_timeout_ms) c->rpc_timeout_ms = 10000;
  if (!c->query_timeout_ms) c->query_timeout_ms = 60000;
  if (!c->refresh_interval_ms) c->refresh_interval_ms = 600000;
  if (!c->max_ops) c->max_ops = 64;
  if (!c->max_inbound_streams) c->max_inbound_streams = 256;
  int rc = -ENOMEM;
  k->protocol = strdup(c->protocol ? c->protocol : KAD_PROTOCOL_ID);
  if (!k->protocol) goto fail;
  c->protocol = k->protocol;
  const char *me = p2p_host_peer_id(h);
  rc = -EINVAL;
  if (peerid_parse(me, strlen(me), &k->self) || peerid_to_string(&k->self, k->self_str, sizeof k->self_str)) goto fail;
  keys_public pub;
  if (peerid_extract_public(&k->self, &pub) == 0 &&
      keys_public_encode(&pub, k->self_pk, sizeof k->self_pk, &k->self_pk_len) != 0)
    k->self_pk_len = 0;
  if ((rc = kad_table_new(&k->self, c->k, &k->table)) || (rc = kad_store_new(&c->store, &k->store))) goto fail;
  k->server = (kad_server){.self = k->self, .table = k->table, .store = k->store, .k = c->k,
                           .self_public_key = k->self_pk_len ? k->self_pk : NULL,
                           .self_public_key_len = k->self_pk_len};
  *out = k;
  return 0;
fail:
  kad_table_free(k->table);
  kad_store_free(k->store);
  free(k->protocol);
  free(k);
  return rc;
}

int p2p_kad_start(p2p_kad *k) {
  if (k->started) return -EALREADY;
  int rc = uv_timer_init(k->loop, &k->tick);
  if (rc) return rc;
  k->tick.data = k;
  k->open_timers = 1;
  rc = uv_timer_init(k->loop, &k->kick);
  if (rc) {
    uv_close((uv_handle_t *)&k->tick, NULL);
    return rc;
  }
  k->kick.data = k;
  k->open_timers = 2;
  if (k->cfg.server && !k->cfg.external_handler) {
    rc = p2p_host_handle(k->h, k->protocol, kad_handler, k);
    if (rc) {
      uv_close((uv_handle_t *)&k->tick, NULL);
      uv_close((uv_handle_t *)&k->kick, NULL);
      k->open_timers = 0;
      return rc;
    }
    k->handler_registered = true;
  }
  refresh_self_addrs(k);
  uint64_t now = now_ms(k);
  k->next_addr_refresh = now + 5000;
  k->next_refresh = now + k->cfg.refresh_interval_ms;
  uv_timer_start(&k->tick, tick_cb, TICK_MS, TICK_MS);
  k->started = true;
  return 0;
}

static void timer_closed(uv_handle_t *hd) {
  p2p_kad *k = hd->data;
  k->open_timers--;
  maybe_close_done(k);
}

static void maybe_close_done(p2p_kad *k) {
  if (!k->closing) return;
  reap(k);
  bool pings = false;
  for (size_t i = 0; i < MAX_PINGS; i++) pings |= k->pings[i] != NULL;
  if (k->rpcs || k->ins || pings) return;
  if (k->open_timers > 0) {
    if (!uv_is_closing((uv_handle_t *)&k->tick)) {
      uv_close((uv_handle_t *)&k->tick, timer_closed);
      uv_close((uv_handle_t *)&k->kick, timer_closed);
    }
    return;
  }
  free_dead(k);
  void (*done)(void *) = k->close_done;
  void *ud = k->close_ud;
  kad_table_free(k->table);
  kad_store_free(k->store);
  free(k->protocol);
  free(k);
  if (done) done(ud);
}

void p2p_kad_close(p2p_kad *k, void (*done)(void *ud), void *ud) {
  if (k->closing) return;
  k->closing = true;
  k->close_done = done;
  k->close_ud = ud;
  if (k->handler_registered) (void)p2p_host_unhandle(k->h, k->protocol);
  while (k->ops) op_finish(k->ops, -ECANCELED);
  for (kad_rpc *r = k->rpcs, *next; r; r = next) {
    next = r->next;
    rpc_report(r, -ECANCELED, NULL);
    if (r->s) p2p_stream_reset(r->s);
  }
  for (kad_in *in = k->ins, *next; in; in = next) {
    next = in->next;
    if (in->s) p2p_stream_reset(in->s);
  }
  if (!k->started) {
    kad_table_free(k->table);
    kad_store_free(k->store);
    free(k->protocol);
    free(k);
    if (done) done(ud);
    return;
  }
  if (uv_is_active((uv_handle_t *)&k->tick)) uv_timer_stop(&k->tick);
  maybe_close_done(k);
}

/* ---------------------------------------------------------------- public operations */

int p2p_kad_bootstrap(p2p_kad *k, const char *const *addrs, size_t n, p2p_kad_done_fn cb, void *ud) {
  kad_op *op;
  int rc = op_new(k, OP_BOOTSTRAP, k->self.bytes, k->self.len, &op);
  if (rc) return rc;
  op->done_cb = cb;
  op->ud = ud;
  for (size_t i = 0; i < n; i++) {
    multiaddr ma;
    peerid id;
    char id_str[PEERID_STR_MAX];
    if (multiaddr_parse(addrs[i], &ma) || multiaddr_get_peerid(&ma, &id) || peerid_equal(&id, &k->self) ||
        peerid_to_string(&id, id_str, sizeof id_str))
      continue;
    const char *one[1] = {addrs[i]};
    if (p2p_host_add_peer_addrs(k->h, id_str, one, 1, P2P_SRC_BOOTSTRAP) < 0) continue;
    kad_lookup_add(op->lk, &id, 0);
  }
  return 0;
}

int p2p_kad_find_peer(p2p_kad *k, const char *peer_id, p2p_kad_peers_fn cb, void *ud) {
  peerid target;
  if (peerid_parse(peer_id, strlen(peer_id), &target)) return -EINVAL;
  kad_op *op;
  int rc = op_new(k, OP_FIND_PEER, target.bytes, target.len, &op);
  if (rc) return rc;
  op->target = target;
  op->peers_cb = cb;
  op->ud = ud;
  return 0;
}

int p2p_kad_closest_peers(p2p_kad *k, const uint8_t *key, size_t len, p2p_kad_peers_fn cb, void *ud) {
  kad_op *op;
  int rc = op_new(k, OP_CLOSEST, key, len, &op);
  if (rc) return rc;
  op->peers_cb = cb;
  op->ud = ud;
  return 0;
}

int p2p_kad_find_providers(p2p_kad *k, const uint8_t *key, size_t len, size_t max, p2p_kad_peers_fn cb, void *ud) {
  kad_op *op;
  int rc = op_new(k, OP_PROVIDERS, key, len, &op);
  if (rc) return rc;
  op->peers_cb = cb;
  op->ud = ud;
  op->maxprov = max == 0 || max > MAX_PROVIDERS_OUT ? MAX_PROVIDERS_OUT : max;
  kad_provider local[MAX_PROVIDERS_OUT];
  size_t nl = kad_store_get_providers(k->store, key, len, now_ms(k), local, op->maxprov);
  for (size_t i = 0; i < nl; i++) add_provider_result(op, &local[i].id, local[i].addrs, local[i].n_addrs);
  return 0;
}

int p2p_kad_get_value(p2p_kad *k, const uint8_t *key, size_t len, p2p_kad_value_fn cb, void *ud) {
  kad_op *op;
  int rc = op_new(k, OP_GET, key, len, &op);
  if (rc) return rc;
  op->value_cb = cb;
  op->ud = ud;
  const kad_stored_record *r = kad_store_get_record(k->store, key, len, now_ms(k));
  if (r) take_value(op, r->value, r->value_len, "");
  return 0;
}

int p2p_kad_put_value(p2p_kad *k, const uint8_t *key, size_t len, const uint8_t *value, size_t vlen,
                      p2p_kad_done_fn cb, void *ud) {
  if (!key || len == 0 || len > KAD_MAX_KEY || vlen > KAD_MAX_VALUE) return -EINVAL;
  int rc = kad_record_validate(key, len, value, vlen, &k->self);
  if (rc) return rc;
  rc = kad_store_put_record(k->store, key, len, value, vlen, &k->self, now_ms(k), clock_wall_s());
  if (rc) return rc;
  kad_op *op;
  if ((rc = op_new(k, OP_PUT, key, len, &op))) return rc;
  op->value = malloc(vlen ? vlen : 1);
  if (!op->value) {
    op_finish(op, -ENOMEM);
    return 0;
  }
  if (vlen) memcpy(op->value, value, vlen);
  op->vlen = vlen;
  op->done_cb = cb;
  op->ud = ud;
  return 0;
}

int p2p_kad_provide(p2p_kad *k, const uint8_t *key, size_t len, p2p_kad_done_fn cb, void *ud) {
  if (!key || len == 0 || len > KAD_MAX_KEY) return -EINVAL;
  int rc = kad_store_add_provider(k->store, key, len, &k->self, k->self_addrs, k->n_self_addrs, now_ms(k));
  if (rc) return rc;
  kad_op *op;
  if ((rc = op_new(k, OP_PROVIDE, key, len, &op))) return rc;
  op->done_cb = cb;
  op->ud = ud;
  return 0;
}

kad_store *p2p_kad_get_store(p2p_kad *k) { return k->store; }

size_t p2p_kad_self_addrs(p2p_kad *k, const multiaddr **out) {
  *out = k->self_addrs;
  return k->n_self_addrs;
}

void p2p_kad_get_stats(const p2p_kad *k, p2p_kad_stats *out) {
  *out = k->st;
  out->table_size = kad_table_size(k->table);
  out->ops_running = k->n_ops;
}

const char *p2p_kad_protocol(const p2p_kad *k) { return k->protocol; }
