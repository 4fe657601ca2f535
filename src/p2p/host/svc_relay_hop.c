/* svc_relay_hop.c — circuit relay v2 hop: reservations, circuits and their limits (see
 * svc_relay_hop.h). */
#include "p2p/host/svc_relay_hop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/host/internal.h"
#include "p2p/proto/relay.h"
#include "util/clock.h"
#include "util/log.h"

#define HOP_SETUP_TIMEOUT_MS 30000 /* CONNECT → both OKs */

typedef struct hop_rsv {
  bool used;
  char peer[PEERID_STR_MAX];
  uint64_t conn_id;
  char ip[MULTIADDR_STR_MAX];  /* the reserving connection's remote address without /tcp/ */
  uint64_t expire;             /* Unix seconds */
} hop_rsv;

typedef enum { CIRC_STOP_OPENING = 0, CIRC_STOP_WAIT, CIRC_PIPING } circ_state;

typedef struct circuit circuit;
typedef struct circ_end {
  circuit *c;
  p2p_stream *s;
  struct circ_end *other;
  bool eof;
  uint64_t sent;               /* bytes forwarded from this end to the other */
} circ_end;

struct circuit {
  p2p_relay_hop *hop;
  circ_state state;
  char src[PEERID_STR_MAX], dst[PEERID_STR_MAX];
  circ_end a, b;               /* a: the source's HOP stream; b: the STOP stream to dst */
  buf a_in, b_in;              /* bytes before piping (after CONNECT / the STOP answer) */
  int64_t setup_deadline_ms, end_ms;
  bool counted, dead;
  int busy;                    /* inside one of our callbacks: freeing waits for the outermost */
  circuit *next;
};

typedef struct hop_in {
  p2p_relay_hop *hop;
  buf in;
  bool answered;
  struct hop_in *next;
  p2p_stream *s;
} hop_in;

struct p2p_relay_hop {
  p2p_host *h;
  p2p_relay_hop_config cfg;
  hop_rsv *rsvs;               /* cap_rsvs slots: cfg.max_reservations, or grown on demand */
  uint32_t cap_rsvs, n_rsvs;
  circuit *circuits;
  uint32_t n_circuits;
  hop_in *ins;
  unsigned pending;
  bool closing;
  void (*close_done)(void *);
  void *close_ud;
  struct {
    uint64_t reservations, refreshes, refused, circuits, circuits_refused, limited_data, limited_time;
  } stats;
};

static void hop_unpend(p2p_relay_hop *hop);

/* ---------------------------------------------------------------- helpers */

static uint64_t now_unix(void) { return (uint64_t)clock_wall_s(); }

/* "/ip4/1.2.3.4/tcp/5" → "/ip4/1.2.3.4" (what per-IP limits count). */
static void addr_ip(const char *addr, char *out, size_t cap) {
  const char *t = strstr(addr, "/tcp/");
  size_t n = t ? (size_t)(t - addr) : strlen(addr);
  if (n >= cap) n = cap - 1;
  memcpy(out, addr, n);
  out[n] = 0;
}

static void send_hop_status(p2p_stream *s, uint32_t status, const p2p_relay_hop *hop, bool with_limit) {
  relay_msg *m = calloc(1, sizeof *m);
  buf out;
  buf_init(&out, RELAY_MAX_MSG + 16);
  if (m) {
    m->type = RELAY_HOP_STATUS;
    m->has_status = true;
    m->status = status;
    if (with_limit && (hop->cfg.limit_duration_s || hop->cfg.limit_data)) {
      m->has_limit = true;
      m->limit_duration = hop->cfg.limit_duration_s;
      m->limit_data = hop->cfg.limit_data;
    }
    if (relay_encode(m, &out) == 0) (void)!p2p_stream_write(s, buf_ptr(&out), buf_len(&out));
  }
  buf_free(&out);
  free(m);
}

/* The most reservations at once: max_reservations, or with 0 ("no limit") the largest value
 * the configuration allows (each one also holds a connection, which p2p.max_connections caps). */
#define HOP_RSV_HARD_MAX 65536u
static uint32_t rsv_limit(const p2p_relay_hop *hop) {
  return hop->cfg.max_reservations ? hop->cfg.max_reservations : HOP_RSV_HARD_MAX;
}

/* A free slot, growing the array (doubling, at most rsv_limit) when there is none; NULL when
 * full or out of memory. */
static hop_rsv *rsv_slot(p2p_relay_hop *hop) {
  for (uint32_t i = 0; i < hop->cap_rsvs; i++)
    if (!hop->rsvs[i].used) return &hop->rsvs[i];
  uint32_t lim = rsv_limit(hop);
  if (hop->cap_rsvs >= lim) return NULL;
  uint32_t cap = hop->cap_rsvs ? hop->cap_rsvs * 2 : 16;
  if (cap > lim) cap = lim;
  hop_rsv *r = realloc(hop->rsvs, (size_t)cap * sizeof *r);
  if (!r) return NULL;
  memset(r + hop->cap_rsvs, 0, (size_t)(cap - hop->cap_rsvs) * sizeof *r);
  hop->rsvs = r;
  uint32_t first = hop->cap_rsvs;
  hop->cap_rsvs = cap;
  return &hop->rsvs[first];
}

static hop_rsv *rsv_find(p2p_relay_hop *hop, const char *peer) {
  for (uint32_t i = 0; i < hop->cap_rsvs; i++)
    if (hop->rsvs[i].used && strcmp(hop->rsvs[i].peer, peer) == 0) return &hop->rsvs[i];
  return NULL;
}

static void rsv_drop(p2p_relay_hop *hop, hop_rsv *r, const char *why) {
  log_info("p2p relay: reservation ended", "{s:s, s:s}", "peer", r->peer, "reason", why);
  if (r->conn_id) {
    /* the connection may carry another reservation's peer? no: one peer per connection */
    (void)p2p_host_set_keepalive(hop->h, r->conn_id, false);
  }
  r->used = false;
  hop->n_rsvs--;
}

/* ---------------------------------------------------------------- RESERVE */

static void do_reserve(p2p_relay_hop *hop, p2p_stream *s) {
  const char *peer = p2p_stream_remote_peer(s);
  char ip[MULTIADDR_STR_MAX];
  addr_ip(p2p_stream_remote_addr(s), ip, sizeof ip);
  hop_rsv *r = rsv_find(hop, peer);
  bool refresh = r != NULL;
  if (!r) {
    uint32_t same_ip = 0;
    for (uint32_t i = 0; i < hop->cap_rsvs; i++)
      if (hop->rsvs[i].used && strcmp(hop->rsvs[i].ip, ip) == 0) same_ip++;
    const char *why = NULL;
    if (hop->n_rsvs >= rsv_limit(hop)) why = "full";
    else if (hop->cfg.max_reservations_per_ip && same_ip >= hop->cfg.max_reservations_per_ip) why = "too many from this IP";
    else if (!(r = rsv_slot(hop))) why = "out of memory";
    if (why) {
      hop->stats.refused++;
      log_info("p2p relay: reservation refused", "{s:s, s:s, s:s}", "peer", peer, "ip", ip, "reason", why);
      send_hop_status(s, RELAY_RESERVATION_REFUSED, hop, false);
      return;
    }
    memset(r, 0, sizeof *r);
    r->used = true;
    snprintf(r->peer, sizeof r->peer, "%s", peer);
    hop->n_rsvs++;
  }
  uint64_t conn = p2p_stream_conn_id(s);
  if (r->conn_id && r->conn_id != conn) (void)p2p_host_set_keepalive(hop->h, r->conn_id, false);
  r->conn_id = conn;
  snprintf(r->ip, sizeof r->ip, "%s", ip);
  r->expire = now_unix() + hop->cfg.reservation_ttl_s;
  (void)p2p_host_set_keepalive(hop->h, conn, true);
  /* the answer: expiry, our addresses, the voucher, the limits */
  relay_msg *m = calloc(1, sizeof *m);
  buf out, voucher;
  buf_init(&out, RELAY_MAX_MSG + 16);
  buf_init(&voucher, RELAY_MAX_VOUCHER);
  int rc = m ? 0 : -ENOMEM;
  if (rc == 0) {
    m->type = RELAY_HOP_STATUS;
    m->has_status = true;
    m->status = RELAY_OK;
    m->has_reservation = true;
    m->expire = r->expire;
    const char *addrs[64];
    size_t n = p2p_host_announced_addrs(hop->h, addrs, 64);
    for (size_t i = 0; i < n && i < 64 && m->n_rsv_addrs < RELAY_MAX_ADDRS; i++) {
      multiaddr ma;
      if (strstr(addrs[i], "/p2p-circuit") || multiaddr_parse(addrs[i], &ma) != 0 ||
          multiaddr_append_p2p(&ma, &hop->h->id) != 0)
        continue;
      m->rsv_addrs[m->n_rsv_addrs++] = ma;
    }
    peerid pid;
    if (peerid_parse(peer, strlen(peer), &pid) == 0 && relay_voucher_seal(&hop->h->key, &pid, r->expire, &voucher) == 0 &&
        buf_len(&voucher) <= RELAY_MAX_VOUCHER) {
      memcpy(m->voucher, buf_ptr(&voucher), buf_len(&voucher));
      m->voucher_len = buf_len(&voucher);
    }
    if (hop->cfg.limit_duration_s || hop->cfg.limit_data) {
      m->has_limit = true;
      m->limit_duration = hop->cfg.limit_duration_s;
      m->limit_data = hop->cfg.limit_data;
    }
    rc = relay_encode(m, &out);
  }
  if (rc == 0 && p2p_stream_write(s, buf_ptr(&out), buf_len(&out)) < 0) rc = -EPIPE;
  if (rc == 0) {
    if (refresh) hop->stats.refreshes++;
    else hop->stats.reservations++;
    log_info(refresh ? "p2p relay: reservation refreshed" : "p2p relay: reservation accepted", "{s:s, s:s, s:I, s:i}",
             "peer", peer, "ip", ip, "expire", (json_int_t)r->expire, "reservations", (int)hop->n_rsvs);
  } else if (!refresh) {
    rsv_drop(hop, r, "answer not sent");
  }
  buf_free(&out);
  buf_free(&voucher);
  free(m);
}

/* ---------------------------------------------------------------- circuits */

static void hop_finalize(p2p_relay_hop *hop);

static void circ_maybe_free(circuit *c) {
  if (c->busy || c->a.s || c->b.s || c->state == CIRC_STOP_OPENING) return;
  p2p_relay_hop *hop = c->hop;
  for (circuit **pp = &hop->circuits; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  if (c->counted) hop->n_circuits--;
  buf_free(&c->a_in);
  buf_free(&c->b_in);
  free(c);
  if (hop->closing && !hop->pending && !hop->circuits) hop_finalize(hop);
}

/* Ends the circuit: both streams reset (the spec's answer to a limit, and to any failure). */
static void circ_kill(circuit *c) {
  c->dead = true;
  c->busy++;
  if (c->a.s) p2p_stream_reset(c->a.s);
  if (c->b.s) p2p_stream_reset(c->b.s);
  c->busy--;
  circ_maybe_free(c); /* c may be gone now */
}

/* Forwards n bytes from end e to the other end within the data limit. false: the circuit
 * died (limit or a write error). */
static bool circ_forward(circuit *c, circ_end *e, const uint8_t *d, size_t n) {
  p2p_relay_hop *hop = c->hop;
  if (!n) return true;
  size_t allowed = n;
  bool over = false;
  if (hop->cfg.limit_data) {
    uint64_t room = e->sent >= hop->cfg.limit_data ? 0 : hop->cfg.limit_data - e->sent;
    if (room < n) {
      allowed = (size_t)room;
      over = true;
    }
  }
  if (allowed && e->other->s) {
    int rc = p2p_stream_write(e->other->s, d, allowed);
    if (rc < 0) {
      circ_kill(c);
      return false;
    }
    e->sent += allowed;
    if (rc == 1 && e->s) p2p_stream_pause_read(e->s, true);
  }
  if (over) {
    hop->stats.limited_data++;
    log_info("p2p relay circuit limit reached", "{s:s, s:s, s:s, s:I}", "src", c->src, "dst", c->dst, "limit",
             "data", "max", (json_int_t)hop->cfg.limit_data);
    circ_kill(c);
    return false;
  }
  return true;
}

static void end_data(p2p_stream *s, const uint8_t *d, size_t n, circ_end *e);

static void circ_start_piping(circuit *c) {
  p2p_relay_hop *hop = c->hop;
  c->state = CIRC_PIPING;
  c->setup_deadline_ms = 0;
  if (hop->cfg.limit_duration_s) c->end_ms = clock_mono_ms() + (int64_t)hop->cfg.limit_duration_s * 1000;
  hop->stats.circuits++;
  log_info("p2p relay: circuit open", "{s:s, s:s, s:i}", "src", c->src, "dst", c->dst, "circuits", (int)hop->n_circuits);
  send_hop_status(c->a.s, RELAY_OK, hop, true);
  /* what each side sent early goes across now */
  if (buf_len(&c->b_in) && !circ_forward(c, &c->b, buf_ptr(&c->b_in), buf_len(&c->b_in))) return;
  buf_reset(&c->b_in);
  if (buf_len(&c->a_in) && !circ_forward(c, &c->a, buf_ptr(&c->a_in), buf_len(&c->a_in))) return;
  buf_reset(&c->a_in);
  if (c->a.eof && c->b.s) p2p_stream_close_write(c->b.s);
  if (c->b.eof && c->a.s) p2p_stream_close_write(c->a.s);
  if (c->a.s) p2p_stream_pause_read(c->a.s, false);
  if (c->b.s) p2p_stream_pause_read(c->b.s, false);
}

static void circ_fail(circuit *c, const char *why) {
  c->hop->stats.circuits_refused++;
  log_info("p2p relay: circuit failed", "{s:s, s:s, s:s}", "src", c->src, "dst", c->dst, "reason", why);
  if (c->a.s) {
    send_hop_status(c->a.s, RELAY_CONNECTION_FAILED, c->hop, false);
    p2p_stream_close_write(c->a.s);
  }
  if (c->b.s) p2p_stream_reset(c->b.s);
  c->dead = true;
}

/* The STOP stream's first bytes: the destination's answer. */
static void b_setup_data(circuit *c, const uint8_t *d, size_t n) {
  if (buf_append(&c->b_in, d, n) != 0) {
    circ_fail(c, "answer too large");
    return;
  }
  const uint8_t *body;
  size_t bl, used;
  int rc = relay_frame_parse(buf_ptr(&c->b_in), buf_len(&c->b_in), &body, &bl, &used);
  if (rc == -EAGAIN) return;
  relay_msg *m = malloc(sizeof *m);
  if (rc == 0) rc = m ? relay_decode(body, bl, true, m) : -ENOMEM;
  bool ok = rc == 0 && m->type == RELAY_STOP_STATUS && m->has_status && m->status == RELAY_OK;
  char why[96];
  snprintf(why, sizeof why, "destination answered %s", rc ? "a malformed message" : relay_status_name(m->status));
  free(m);
  if (!ok) {
    circ_fail(c, why);
    return;
  }
  buf_consume(&c->b_in, used); /* what is left came from the destination after its OK */
  circ_start_piping(c);
}

static void end_data(p2p_stream *s, const uint8_t *d, size_t n, circ_end *e) {
  circuit *c = e->c;
  if (c->dead) return;
  if (c->state != CIRC_PIPING) {
    if (e == &c->b) b_setup_data(c, d, n);
    else if (buf_append(&c->a_in, d, n) != 0) circ_fail(c, "source sent too much before the circuit opened");
    return;
  }
  (void)s;
  (void)circ_forward(c, e, d, n);
}

static void end_eof(circ_end *e) {
  circuit *c = e->c;
  e->eof = true;
  if (c->state == CIRC_PIPING && !c->dead && e->other->s) p2p_stream_close_write(e->other->s);
  else if (c->state != CIRC_PIPING && !c->dead && e == &c->b) circ_fail(c, "destination closed the stream");
}

static void end_writable(circ_end *e) {
  if (e->other->s && e->c->state == CIRC_PIPING) p2p_stream_pause_read(e->other->s, false);
}

static void end_close(circ_end *e, int err) {
  circuit *c = e->c;
  e->s = NULL;
  if (c->state == CIRC_PIPING) {
    if (err && e->other->s) p2p_stream_reset(e->other->s);
  } else if (!c->dead) {
    if (e == &c->a) {
      c->dead = true;
      if (c->b.s) p2p_stream_reset(c->b.s);
    } else {
      circ_fail(c, "stream to the destination closed");
    }
  }
}

/* Every stream callback runs inside enter/leave: whatever it resets, the circuit stays
 * allocated until the outermost callback returns. */
static circuit *enter(void *ud) {
  circuit *c = ud;
  c->busy++;
  return c;
}
static void leave(circuit *c) {
  c->busy--;
  circ_maybe_free(c);
}
static void a_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  circuit *c = enter(ud);
  end_data(s, d, n, &c->a);
  leave(c);
}
static void b_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  circuit *c = enter(ud);
  end_data(s, d, n, &c->b);
  leave(c);
}
static void a_eof(p2p_stream *s, void *ud) {
  (void)s;
  circuit *c = enter(ud);
  end_eof(&c->a);
  leave(c);
}
static void b_eof(p2p_stream *s, void *ud) {
  (void)s;
  circuit *c = enter(ud);
  end_eof(&c->b);
  leave(c);
}
static void a_writable(p2p_stream *s, void *ud) {
  (void)s;
  circuit *c = enter(ud);
  end_writable(&c->a);
  leave(c);
}
static void b_writable(p2p_stream *s, void *ud) {
  (void)s;
  circuit *c = enter(ud);
  end_writable(&c->b);
  leave(c);
}
static void a_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  circuit *c = enter(ud);
  end_close(&c->a, err);
  leave(c);
}
static void b_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  circuit *c = enter(ud);
  end_close(&c->b, err);
  leave(c);
}
static const p2p_stream_callbacks a_cbs = {a_data, a_eof, a_writable, a_close};
static const p2p_stream_callbacks b_cbs = {b_data, b_eof, b_writable, b_close};

static void stop_opened(p2p_stream *s, int err, void *ud) {
  circuit *c = enter(ud);
  p2p_relay_hop *hop = c->hop;
  c->state = CIRC_STOP_WAIT;
  hop->pending--;
  if (c->dead || hop->closing) {
    if (s) p2p_stream_reset(s);
    leave(c); /* may finalize the hop (pending is 0 and this was the last circuit) */
    return;
  }
  if (!s) {
    char why[96];
    snprintf(why, sizeof why, "no STOP stream to the destination: %s", strerror(-err));
    circ_fail(c, why);
    leave(c);
    return;
  }
  c->b.s = s;
  p2p_stream_set_callbacks(s, &b_cbs, c);
  relay_msg *m = calloc(1, sizeof *m);
  buf out;
  buf_init(&out, RELAY_MAX_MSG + 16);
  int rc = -ENOMEM;
  if (m) {
    m->stop = true;
    m->type = RELAY_STOP_CONNECT;
    m->has_peer = peerid_parse(c->src, strlen(c->src), &m->peer) == 0;
    if (hop->cfg.limit_duration_s || hop->cfg.limit_data) {
      m->has_limit = true;
      m->limit_duration = hop->cfg.limit_duration_s;
      m->limit_data = hop->cfg.limit_data;
    }
    rc = m->has_peer ? relay_encode(m, &out) : -EINVAL;
  }
  if (rc == 0 && p2p_stream_write(s, buf_ptr(&out), buf_len(&out)) < 0) rc = -EPIPE;
  buf_free(&out);
  free(m);
  if (rc) circ_fail(c, "cannot send the STOP CONNECT");
  leave(c);
}

static uint32_t circuits_of(const p2p_relay_hop *hop, const char *peer) {
  uint32_t n = 0;
  for (const circuit *c = hop->circuits; c; c = c->next)
    if (!c->dead && (strcmp(c->src, peer) == 0 || strcmp(c->dst, peer) == 0)) n++;
  return n;
}

/* CONNECT from the source on stream s; `early` are bytes that followed the message. True
 * when a circuit took s (else an answer was written and s is still the caller's). */
static bool do_connect(p2p_relay_hop *hop, p2p_stream *s, const relay_msg *m, const uint8_t *early, size_t n_early) {
  const char *src = p2p_stream_remote_peer(s);
  char dst[PEERID_STR_MAX];
  if (!m->has_peer || peerid_to_string(&m->peer, dst, sizeof dst) != 0) {
    send_hop_status(s, RELAY_MALFORMED_MESSAGE, hop, false);
    return false;
  }
  hop_rsv *r = rsv_find(hop, dst);
  uint32_t status = 0;
  const char *why = NULL;
  if (!r || r->expire <= now_unix() || strcmp(dst, src) == 0) status = RELAY_NO_RESERVATION, why = "no reservation";
  else if (hop->n_circuits >= hop->cfg.max_circuits) status = RELAY_RESOURCE_LIMIT_EXCEEDED, why = "too many circuits";
  else if (hop->cfg.max_circuits_per_peer && (circuits_of(hop, src) >= hop->cfg.max_circuits_per_peer ||
                                              circuits_of(hop, dst) >= hop->cfg.max_circuits_per_peer))
    status = RELAY_RESOURCE_LIMIT_EXCEEDED, why = "too many circuits for this peer";
  if (status) {
    hop->stats.circuits_refused++;
    log_info("p2p relay: circuit refused", "{s:s, s:s, s:s}", "src", src, "dst", dst, "reason", why);
    send_hop_status(s, status, hop, false);
    return false;
  }
  circuit *c = calloc(1, sizeof *c);
  if (!c) {
    send_hop_status(s, RELAY_CONNECTION_FAILED, hop, false);
    return false;
  }
  c->hop = hop;
  snprintf(c->src, sizeof c->src, "%s", src);
  snprintf(c->dst, sizeof c->dst, "%s", dst);
  c->a = (circ_end){.c = c, .s = s, .other = &c->b};
  c->b = (circ_end){.c = c, .other = &c->a};
  buf_init(&c->a_in, RELAY_MAX_MSG + 64 * 1024);
  buf_init(&c->b_in, RELAY_MAX_MSG + 64 * 1024);
  if (n_early && buf_append(&c->a_in, early, n_early) != 0) {
    buf_free(&c->a_in);
    buf_free(&c->b_in);
    free(c);
    send_hop_status(s, RELAY_MALFORMED_MESSAGE, hop, false);
    return false;
  }
  c->setup_deadline_ms = clock_mono_ms() + HOP_SETUP_TIMEOUT_MS;
  c->counted = true;
  hop->n_circuits++;
  c->next = hop->circuits;
  hop->circuits = c;
  p2p_stream_set_callbacks(s, &a_cbs, c);
  p2p_stream_pause_read(s, true); /* until the destination said OK */
  int rc = p2p_host_open_stream_on(hop->h, r->conn_id, RELAY_STOP_PROTOCOL, stop_opened, c);
  if (rc) {
    c->state = CIRC_STOP_WAIT;
    char w[96];
    snprintf(w, sizeof w, "no STOP stream to the destination: %s", strerror(-rc));
    c->busy++;
    circ_fail(c, w); /* writes the answer and closes our side: the source's close frees c */
    c->busy--;
    return true;
  }
  hop->pending++;
  return true;
}

/* ---------------------------------------------------------------- the HOP stream's first message */

static void in_unlink(hop_in *hi) {
  p2p_relay_hop *hop = hi->hop;
  for (hop_in **pp = &hop->ins; *pp; pp = &(*pp)->next)
    if (*pp == hi) {
      *pp = hi->next;
      break;
    }
  buf_free(&hi->in);
  free(hi);
  hop_unpend(hop);
}

static void in_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  hop_in *hi = ud;
  p2p_relay_hop *hop = hi->hop;
  if (hi->answered) return;
  if (buf_append(&hi->in, d, n) != 0) {
    hi->answered = true;
    send_hop_status(s, RELAY_MALFORMED_MESSAGE, hop, false);
    p2p_stream_close_write(s);
    return;
  }
  const uint8_t *body;
  size_t bl, used;
  int rc = relay_frame_parse(buf_ptr(&hi->in), buf_len(&hi->in), &body, &bl, &used);
  if (rc == -EAGAIN) return;
  hi->answered = true;
  relay_msg *m = malloc(sizeof *m);
  if (rc == 0) rc = m ? relay_decode(body, bl, false, m) : -ENOMEM;
  if (rc) {
    send_hop_status(s, RELAY_MALFORMED_MESSAGE, hop, false);
  } else if (m->type == RELAY_HOP_RESERVE) {
    do_reserve(hop, s);
  } else if (m->type == RELAY_HOP_CONNECT) {
    bool taken = do_connect(hop, s, m, buf_ptr(&hi->in) + used, buf_len(&hi->in) - used);
    free(m);
    if (taken) { /* the circuit has s: our on_close will not come */
      hi->s = NULL;
      in_unlink(hi);
      return;
    }
    p2p_stream_close_write(s);
    return;
  } else {
    send_hop_status(s, RELAY_UNEXPECTED_MESSAGE, hop, false);
  }
  free(m);
  p2p_stream_close_write(s);
}

static void in_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}

static void in_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  in_unlink(ud);
}

static const p2p_stream_callbacks in_cbs = {.on_data = in_data, .on_eof = in_eof, .on_close = in_close};

void p2p_relay_hop_serve(p2p_relay_hop *hop, p2p_stream *s) {
  static const p2p_stream_callbacks drop = {0};
  if (hop->closing || p2p_stream_is_relayed(s)) { /* spec: nothing over relayed connections */
    send_hop_status(s, RELAY_PERMISSION_DENIED, hop, false);
    p2p_stream_close_write(s);
    p2p_stream_set_callbacks(s, &drop, NULL);
    return;
  }
  hop_in *hi = calloc(1, sizeof *hi);
  if (!hi) {
    p2p_stream_reset(s);
    return;
  }
  hi->hop = hop;
  hi->s = s;
  buf_init(&hi->in, RELAY_MAX_MSG + 64 * 1024);
  hi->next = hop->ins;
  hop->ins = hi;
  hop->pending++;
  p2p_stream_set_callbacks(s, &in_cbs, hi);
}

/* ---------------------------------------------------------------- life cycle */

int p2p_relay_hop_new(p2p_host *h, const p2p_relay_hop_config *cfg, p2p_relay_hop **out) {
  p2p_relay_hop *hop = calloc(1, sizeof *hop);
  if (!hop) return -ENOMEM;
  hop->h = h;
  hop->cfg = *cfg;
  if (!hop->cfg.reservation_ttl_s) hop->cfg.reservation_ttl_s = 3600;
  if (hop->cfg.max_reservations) { /* a fixed cap: its slots up front; no limit: grown on demand */
    if (!(hop->rsvs = calloc(hop->cfg.max_reservations, sizeof *hop->rsvs))) {
      free(hop);
      return -ENOMEM;
    }
    hop->cap_rsvs = hop->cfg.max_reservations;
  }
  *out = hop;
  return 0;
}

static void hop_finalize(p2p_relay_hop *hop) {
  void (*done)(void *) = hop->close_done;
  void *ud = hop->close_ud;
  free(hop->rsvs);
  free(hop);
  if (done) done(ud);
}

static void hop_unpend(p2p_relay_hop *hop) {
  CHECK(hop->pending > 0);
  if (--hop->pending == 0 && hop->closing && !hop->circuits) hop_finalize(hop);
}


void p2p_relay_hop_close(p2p_relay_hop *hop, void (*done)(void *ud), void *ud) {
  if (!hop || hop->closing) return;
  hop->closing = true;
  hop->close_done = done;
  hop->close_ud = ud;
  for (uint32_t i = 0; i < hop->cap_rsvs; i++)
    if (hop->rsvs[i].used) rsv_drop(hop, &hop->rsvs[i], "shutting down");
  hop->pending++; /* hold while resetting */
  for (circuit *c = hop->circuits, *next; c; c = next) {
    next = c->next;
    circ_kill(c); /* circuits waiting for their STOP stream are freed in stop_opened */
  }
  for (hop_in *hi = hop->ins, *next; hi; hi = next) {
    next = hi->next;
    if (hi->s) p2p_stream_reset(hi->s);
  }
  if (--hop->pending == 0 && !hop->circuits) hop_finalize(hop);
}

void p2p_relay_hop_on_event(p2p_relay_hop *hop, const p2p_event *ev) {
  if (hop->closing || ev->type != P2P_EV_CONN_CLOSED) return;
  for (uint32_t i = 0; i < hop->cap_rsvs; i++) {
    hop_rsv *r = &hop->rsvs[i];
    if (r->used && r->conn_id == ev->conn_id) {
      r->conn_id = 0;
      rsv_drop(hop, r, "connection closed");
    }
  }
}

void p2p_relay_hop_tick(p2p_relay_hop *hop) {
  if (hop->closing) return;
  uint64_t now = now_unix();
  for (uint32_t i = 0; i < hop->cap_rsvs; i++)
    if (hop->rsvs[i].used && hop->rsvs[i].expire <= now) rsv_drop(hop, &hop->rsvs[i], "expired");
  int64_t ms = clock_mono_ms();
  for (circuit *c = hop->circuits, *next; c; c = next) {
    next = c->next;
    if (c->dead) continue;
    if (c->state == CIRC_PIPING && c->end_ms && ms >= c->end_ms) {
      hop->stats.limited_time++;
      log_info("p2p relay circuit limit reached", "{s:s, s:s, s:s, s:I}", "src", c->src, "dst", c->dst, "limit",
               "duration", "max", (json_int_t)hop->cfg.limit_duration_s);
      circ_kill(c);
    } else if (c->state != CIRC_PIPING && c->setup_deadline_ms && ms >= c->setup_deadline_ms) {
      circ_fail(c, "the destination did not answer in time");
    }
  }
}

json_t *p2p_relay_hop_status_json(const p2p_relay_hop *hop) {
  return json_pack("{s:I, s:I, s:I, s:I, s:{s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "reservations",
                   (json_int_t)hop->n_rsvs, "max_reservations", (json_int_t)hop->cfg.max_reservations, "circuits",
                   (json_int_t)hop->n_circuits, "max_circuits", (json_int_t)hop->cfg.max_circuits, "limit",
                   "duration_s", (json_int_t)hop->cfg.limit_duration_s, "data_bytes", (json_int_t)hop->cfg.limit_data,
                   "counters", "reservations", (json_int_t)hop->stats.reservations, "refreshes",
                   (json_int_t)hop->stats.refreshes, "refused", (json_int_t)hop->stats.refused, "circuits",
                   (json_int_t)hop->stats.circuits, "circuits_refused", (json_int_t)hop->stats.circuits_refused,
                   "limited_data", (json_int_t)hop->stats.limited_data, "limited_time",
                   (json_int_t)hop->stats.limited_time);
}
