/* svc_dcutr.c — DCUtR hole punching on the host (see svc_dcutr.h). */
#include "p2p/host/svc_dcutr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/autonat.h"
#include "p2p/proto/dcutr.h"
#include "util/buf.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/log.h"

#define PUNCH_IDENTIFY_WAIT_MS 5000
#define PUNCH_MAX_DIALS 8
#define PUNCH_MAX 64

typedef enum {
  P_IDENTIFY = 0, /* B: waiting for identify on the relayed connection */
  P_UNILATERAL,   /* B: plain dials to the peer's listed addresses */
  P_EXCHANGE,     /* CONNECT sent (B) / awaited (A) */
  P_WAIT_SYNC,    /* A: our CONNECT sent, SYNC awaited */
  P_HALF_RTT,     /* B: SYNC sent, waiting RTT/2 */
  P_DIALING,      /* the simultaneous open */
  P_GAP,          /* B: between attempts */
  P_DONE
} pstate;

typedef struct punch punch;
struct punch {
  p2p_dcutr *d;
  bool b_side;
  uint64_t relay_conn;
  char peer[PEERID_STR_MAX];
  pstate state;
  unsigned attempt;
  p2p_stream *s;
  buf in;
  int64_t t0_us, rtt_us;
  multiaddr remote[PUNCH_MAX_DIALS];
  size_t n_remote;
  unsigned dials_out;
  int last_err;
  int64_t wake_ms;        /* timer: identify wait, half RTT, gap; 0 = none */
  int64_t deadline_ms;    /* the current attempt's end; 0 = none */
  bool succeeded;
  punch *next;
};

typedef struct dial_ctx {
  punch *p;
  unsigned attempt;
  pstate phase;
  char addr[MULTIADDR_STR_MAX];
} dial_ctx;

struct p2p_dcutr {
  p2p_host *h;
  uv_loop_t *loop;
  p2p_dcutr_config cfg;
  uv_timer_t timer;
  bool timer_open;
  punch *punches;
  size_t n_punches;
  unsigned pending;
  bool closing;
  void (*close_done)(void *);
  void *close_ud;
  struct {
    uint64_t started, succeeded, failed, unilateral, skipped, answer_failed;
  } stats;
};

static void rearm(p2p_dcutr *d);
static void start_attempt(punch *p);
static void d_unpend(p2p_dcutr *d);

/* ---------------------------------------------------------------- helpers */

static bool dialable(const p2p_dcutr *d, const multiaddr *ma) {
  size_t off = 0;
  multiaddr_component ip, tcp, rest;
  if (multiaddr_next(ma, &off, &ip) != 1 || (ip.code != MA_IP4 && ip.code != MA_IP6)) return false;
  if (multiaddr_next(ma, &off, &tcp) != 1 || tcp.code != MA_TCP) return false;
  int r = multiaddr_next(ma, &off, &rest);
  if (r < 0 || (r == 1 && rest.code != MA_P2P)) return false;
  return d->cfg.allow_private || !autonat_addr_is_private(ma);
}

static void punch_free_if_done(punch *p) {
  if (p->state != P_DONE || p->s || p->dials_out) return;
  p2p_dcutr *d = p->d;
  for (punch **pp = &d->punches; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  d->n_punches--;
  buf_free(&p->in);
  free(p);
  d_unpend(d);
}

static void punch_end_stream(punch *p) {
  if (!p->s) return;
  p2p_stream *s = p->s;
  p->s = NULL;
  p2p_stream_reset(s); /* its on_close sees p->s == NULL */
}

static void punch_succeeded(punch *p, const char *addr, uint64_t direct_conn) {
  if (p->succeeded || p->state == P_DONE) return;
  p2p_dcutr *d = p->d;
  p->succeeded = true;
  bool unilateral = p->state == P_UNILATERAL;
  if (unilateral) d->stats.unilateral++;
  else d->stats.succeeded++;
  log_info(unilateral ? "p2p hole punch not needed: direct dial worked" : "p2p hole punch succeeded",
           "{s:s, s:s, s:I, s:i, s:f, s:s}", "peer", p->peer, "addr", addr ? addr : "", "conn_id",
           (json_int_t)direct_conn, "attempt", (int)p->attempt, "rtt_ms", (double)p->rtt_us / 1000.0, "role",
           p->b_side ? "B (started it; responder)" : "A (answered; initiator)");
  punch_end_stream(p);
  p->state = P_DONE;
  p->wake_ms = p->deadline_ms = 0;
  /* New streams go to the direct connection; the relayed one finishes its streams and goes. */
  (void)p2p_host_close_conn(d->h, p->relay_conn, true);
}

static void punch_give_up(punch *p, const char *why) {
  p2p_dcutr *d = p->d;
  d->stats.failed++;
  log_warn("p2p hole punch failed; staying on the relayed connection", "{s:s, s:s, s:i, s:s}", "peer", p->peer,
           "reason", why, "attempts", (int)p->attempt, "role", p->b_side ? "B" : "A");
  punch_end_stream(p);
  p->state = P_DONE;
  p->wake_ms = p->deadline_ms = 0;
}

/* The peer cannot take part (it does not speak DCUtR: a CLI, a client-only host): no attempt,
 * no retry, not counted as a failure. */
static void punch_skip(punch *p, const char *why) {
  p2p_dcutr *d = p->d;
  d->stats.skipped++;
  log_info("p2p hole punch skipped; staying on the relayed connection", "{s:s, s:s}", "peer", p->peer, "reason", why);
  punch_end_stream(p);
  p->state = P_DONE;
  p->wake_ms = p->deadline_ms = 0;
}

/* false only when identify ran and the peer's protocols do not include /libp2p/dcutr. */
static bool peer_may_speak_dcutr(p2p_dcutr *d, const char *peer) {
  p2p_peer_info pi;
  if (p2p_host_peer_info(d->h, peer, &pi) != 0 || !pi.n_protocols) return true;
  for (size_t i = 0; i < pi.n_protocols; i++)
    if (pi.protocols[i] && strcmp(pi.protocols[i], DCUTR_PROTOCOL) == 0) return true;
  return false;
}

/* One attempt failed: log it, and (B) try again after the gap. */
static void attempt_failed(punch *p, const char *why) {
  if (p->state == P_DONE) return;
  punch_end_stream(p);
  if (!p->b_side) {
    /* The answering side runs one attempt per DCUtR stream; whether there is another is the
     * starting side's call, and only it gives up (and counts a failure). */
    p->d->stats.answer_failed++;
    log_info("p2p hole punch attempt failed (the peer that started it retries or gives up)", "{s:s, s:s, s:s}",
             "peer", p->peer, "reason", why, "role", "A");
    p->state = P_DONE;
    p->wake_ms = p->deadline_ms = 0;
    return;
  }
  if (p->attempt >= p->d->cfg.attempts) {
    punch_give_up(p, why);
    return;
  }
  log_info("p2p hole punch failed", "{s:s, s:s, s:i, s:s}", "peer", p->peer, "reason", why, "attempt", (int)p->attempt,
           "next", "retrying");
  p->state = P_GAP;
  p->deadline_ms = 0;
  p->wake_ms = clock_mono_ms() + p->d->cfg.retry_gap_ms;
}

/* ---------------------------------------------------------------- dials */

static void dialed(p2p_host *h, int err, const char *peer_id, uint64_t conn_id, void *ud) {
  dial_ctx *dc = ud;
  punch *p = dc->p;
  p2p_dcutr *d = p->d;
  p->dials_out--;
  d_unpend(d); /* the connect's callback */
  (void)peer_id;
  if (err == 0) {
    if (p->succeeded || p->state == P_DONE || d->closing) (void)p2p_host_close_conn(h, conn_id, true); /* a spare one */
    else punch_succeeded(p, dc->addr, conn_id);
  } else if (!p->succeeded && p->state != P_DONE && dc->attempt == p->attempt && dc->phase == p->state) {
    p->last_err = err;
    log_debug("p2p hole punch dial failed", "{s:s, s:s, s:s}", "peer", p->peer, "addr", dc->addr, "error",
              strerror(-err));
    if (p->dials_out == 0) {
      char why[200];
      snprintf(why, sizeof why, "%s: every dial failed (last: %s)",
               p->state == P_UNILATERAL ? "direct dial" : "simultaneous open", strerror(-err));
      if (p->state == P_UNILATERAL) {
        log_info("p2p hole punch: direct dial failed; punching", "{s:s, s:s}", "peer", p->peer, "error",
                 strerror(-err));
        start_attempt(p);
      } else {
        attempt_failed(p, why);
      }
    }
  }
  free(dc);
  punch_free_if_done(p);
  rearm(d);
}

/* Dials addr (a multiaddr without /p2p/) to the peer; counts it in p->dials_out. */
static int punch_dial(punch *p, const multiaddr *ma, bool from_listen_port, bool responder) {
  p2p_dcutr *d = p->d;
  char a[MULTIADDR_STR_MAX], t[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8];
  multiaddr bare;
  multiaddr_strip_p2p(ma, &bare);
  if (multiaddr_to_string(&bare, a, sizeof a) != 0) return -EINVAL;
  snprintf(t, sizeof t, "%s/p2p/%s", a, p->peer);
  dial_ctx *dc = calloc(1, sizeof *dc);
  if (!dc) return -ENOMEM;
  dc->p = p;
  dc->attempt = p->attempt;
  dc->phase = p->state;
  snprintf(dc->addr, sizeof dc->addr, "%s", a);
  p2p_connect_opts o = {.from_listen_port = from_listen_port, .responder = responder, .no_backoff = true,
                        .timeout_ms = d->cfg.attempt_timeout_ms};
  int rc = p2p_host_connect(d->h, t, &o, dialed, dc);
  if (rc && from_listen_port) { /* no listener of that family: an ordinary dial still may work */
    o.from_listen_port = false;
    rc = p2p_host_connect(d->h, t, &o, dialed, dc);
  }
  if (rc) {
    free(dc);
    p->last_err = rc;
    return rc;
  }
  p->dials_out++;
  d->pending++;
  return 0;
}

/* The simultaneous open: every address of the peer, from our listen port. */
static void dial_all(punch *p) {
  p->state = P_DIALING;
  p->wake_ms = 0;
  if (!p->deadline_ms) p->deadline_ms = clock_mono_ms() + p->d->cfg.attempt_timeout_ms;
  for (size_t i = 0; i < p->n_remote; i++) (void)punch_dial(p, &p->remote[i], true, p->b_side);
  if (p->n_remote && !p->dials_out) {
    char why[128];
    snprintf(why, sizeof why, "no dial could start (%s)", strerror(-p->last_err));
    attempt_failed(p, why);
  }
  /* with no address of theirs, the peer's dial (arriving at our listener) is what we wait for */
}

static void step_unilateral(punch *p) {
  p2p_dcutr *d = p->d;
  p2p_peer_info pi;
  p->state = P_UNILATERAL;
  p->wake_ms = 0;
  if (d->cfg.unilateral && p2p_host_peer_info(d->h, p->peer, &pi) == 0) {
    /* Public addresses only (the spec: "if that set includes public addresses"), whatever
     * allow_private says: a private address of a peer that came through a relay is rarely
     * reachable, and an unroutable one costs the whole attempt timeout before the punch. */
    for (size_t i = 0; i < pi.n_listen_addrs && p->dials_out < 2; i++) {
      multiaddr ma;
      if (multiaddr_parse(pi.listen_addrs[i], &ma) != 0 || !dialable(d, &ma) || autonat_addr_is_private(&ma)) continue;
      (void)punch_dial(p, &ma, false, false);
    }
  }
  if (!p->dials_out) start_attempt(p);
}

/* ---------------------------------------------------------------- the exchange */

static int send_msg(punch *p, uint32_t type) {
  p2p_dcutr *d = p->d;
  dcutr_msg *m = calloc(1, sizeof *m);
  multiaddr *c = malloc(DCUTR_MAX_ADDRS * sizeof *c);
  buf out;
  buf_init(&out, DCUTR_MAX_MSG + 16);
  int rc = m && c ? 0 : -ENOMEM;
  if (rc == 0) {
    m->type = type;
    if (type == DCUTR_CONNECT) {
      size_t n = d->cfg.candidates(d->cfg.candidates_ud, c, DCUTR_MAX_ADDRS);
      for (size_t i = 0; i < n && m->n_addrs < DCUTR_MAX_ADDRS; i++) m->addrs[m->n_addrs++] = c[i];
    }
    rc = dcutr_encode(m, &out);
  }
  if (rc == 0 && p2p_stream_write(p->s, buf_ptr(&out), buf_len(&out)) < 0) rc = -EPIPE;
  buf_free(&out);
  free(c);
  free(m);
  return rc;
}

static void take_remote(punch *p, const dcutr_msg *m) {
  p->n_remote = 0;
  for (size_t i = 0; i < m->n_addrs && p->n_remote < PUNCH_MAX_DIALS; i++) {
    if (!dialable(p->d, &m->addrs[i])) continue;
    multiaddr bare;
    multiaddr_strip_p2p(&m->addrs[i], &bare);
    bool dup = false;
    for (size_t k = 0; k < p->n_remote && !dup; k++) dup = multiaddr_equal(&p->remote[k], &bare);
    if (!dup) p->remote[p->n_remote++] = bare;
  }
}

static void on_msg(punch *p, const dcutr_msg *m) {
  if (p->b_side && p->state == P_EXCHANGE) {
    if (m->type != DCUTR_CONNECT) {
      attempt_failed(p, "the peer answered with something other than CONNECT");
      return;
    }
    p->rtt_us = clock_mono_us() - p->t0_us;
    take_remote(p, m);
    if (send_msg(p, DCUTR_SYNC) != 0) {
      attempt_failed(p, "cannot send SYNC");
      return;
    }
    p->state = P_HALF_RTT;
    p->wake_ms = clock_mono_ms() + p->rtt_us / 2000;
    log_debug("p2p hole punch: SYNC sent", "{s:s, s:f, s:i}", "peer", p->peer, "rtt_ms", (double)p->rtt_us / 1000.0,
              "addrs", (int)p->n_remote);
  } else if (!p->b_side && p->state == P_EXCHANGE) {
    if (m->type != DCUTR_CONNECT) {
      attempt_failed(p, "the peer did not start with CONNECT");
      return;
    }
    take_remote(p, m);
    if (!p->n_remote) {
      attempt_failed(p, "the peer sent no address we can dial");
      return;
    }
    if (send_msg(p, DCUTR_CONNECT) != 0) {
      attempt_failed(p, "cannot send CONNECT");
      return;
    }
    p->state = P_WAIT_SYNC;
  } else if (!p->b_side && p->state == P_WAIT_SYNC) {
    if (m->type != DCUTR_SYNC) {
      attempt_failed(p, "the peer did not send SYNC");
      return;
    }
    p->attempt = 1;
    dial_all(p);
  }
}

static void s_data(p2p_stream *s, const uint8_t *data, size_t n, void *ud) {
  punch *p = ud;
  if (p->s != s) return;
  if (buf_append(&p->in, data, n) != 0) {
    attempt_failed(p, "message too large");
    rearm(p->d);
    return;
  }
  for (;;) {
    const uint8_t *body;
    size_t bl, used;
    int rc = dcutr_frame_parse(buf_ptr(&p->in), buf_len(&p->in), &body, &bl, &used);
    if (rc == -EAGAIN) break;
    dcutr_msg *m = rc == 0 ? malloc(sizeof *m) : NULL;
    if (rc == 0) rc = m ? dcutr_decode(body, bl, m) : -ENOMEM;
    if (rc) {
      free(m);
      attempt_failed(p, "malformed message");
      break;
    }
    buf_consume(&p->in, used);
    on_msg(p, m);
    free(m);
    if (p->s != s) break;
  }
  rearm(p->d);
}

static void s_eof(p2p_stream *s, void *ud) {
  punch *p = ud;
  if (p->s != s) return;
  p2p_stream_close_write(s);
}

static void s_close(p2p_stream *s, int err, void *ud) {
  punch *p = ud;
  if (p->s != s) return;
  p->s = NULL;
  if (p->state == P_EXCHANGE || p->state == P_WAIT_SYNC) {
    char why[128];
    snprintf(why, sizeof why, "the DCUtR stream closed (%s)", err ? strerror(-err) : "no answer");
    attempt_failed(p, why);
  }
  punch_free_if_done(p);
  rearm(p->d);
}

static const p2p_stream_callbacks s_cbs = {.on_data = s_data, .on_eof = s_eof, .on_close = s_close};

static void stream_opened(p2p_stream *s, int err, void *ud) {
  punch *p = ud;
  p2p_dcutr *d = p->d;
  d_unpend(d);
  if (!s || p->state != P_EXCHANGE || p->s || d->closing) {
    if (s) p2p_stream_reset(s);
    else if (p->state == P_EXCHANGE && err == -EPROTONOSUPPORT) {
      punch_skip(p, "the peer refused /libp2p/dcutr");
    } else if (p->state == P_EXCHANGE) {
      char why[128];
      snprintf(why, sizeof why, "cannot open a DCUtR stream (%s)", strerror(-err));
      attempt_failed(p, why);
    }
    p->dials_out--; /* the open was counted as outstanding work of the punch */
    punch_free_if_done(p);
    rearm(d);
    return;
  }
  p->dials_out--;
  p->s = s;
  buf_reset(&p->in);
  p2p_stream_set_callbacks(s, &s_cbs, p);
  p->t0_us = clock_mono_us();
  if (send_msg(p, DCUTR_CONNECT) != 0) attempt_failed(p, "cannot send CONNECT");
  rearm(d);
}

static void start_attempt(punch *p) {
  p2p_dcutr *d = p->d;
  if (!peer_may_speak_dcutr(d, p->peer)) {
    punch_skip(p, "the peer does not list /libp2p/dcutr in identify");
    return;
  }
  p->attempt++;
  p->state = P_EXCHANGE;
  p->wake_ms = 0;
  p->deadline_ms = clock_mono_ms() + d->cfg.attempt_timeout_ms;
  p->n_remote = 0;
  int rc = p2p_host_open_stream_on(d->h, p->relay_conn, DCUTR_PROTOCOL, stream_opened, p);
  if (rc) {
    char why[128];
    snprintf(why, sizeof why, "cannot open a DCUtR stream (%s)", strerror(-rc));
    attempt_failed(p, why);
    return;
  }
  p->dials_out++; /* keeps p until stream_opened */
  d->pending++;
}

/* ---------------------------------------------------------------- timer */

static void on_timer(uv_timer_t *t) {
  p2p_dcutr *d = t->data;
  int64_t now = clock_mono_ms();
  for (punch *p = d->punches, *next; p; p = next) {
    next = p->next;
    if (p->state == P_DONE) continue;
    if (p->deadline_ms && now >= p->deadline_ms && p->state != P_GAP && p->state != P_HALF_RTT) {
      p->deadline_ms = 0;
      char why[200];
      if (p->state == P_DIALING && p->n_remote)
        snprintf(why, sizeof why,
                 "the simultaneous open timed out: no connection from %zu address(es) of the peer (a NAT that "
                 "maps ports at random on either side cannot be punched)",
                 p->n_remote);
      else
        snprintf(why, sizeof why, "%s", p->state == P_DIALING ? "no address of the peer and no dial from it in time"
                                                              : "the peer did not answer in time");
      attempt_failed(p, why);
    } else if (p->wake_ms && now >= p->wake_ms) {
      p->wake_ms = 0;
      if (p->state == P_IDENTIFY) step_unilateral(p);
      else if (p->state == P_HALF_RTT) dial_all(p);
      else if (p->state == P_GAP) start_attempt(p);
    }
    punch_free_if_done(p);
  }
  rearm(d);
}

static void rearm(p2p_dcutr *d) {
  if (!d->timer_open || d->closing) return;
  int64_t now = clock_mono_ms(), next = 0;
  for (punch *p = d->punches; p; p = p->next) {
    if (p->state == P_DONE) continue;
    if (p->wake_ms && (!next || p->wake_ms < next)) next = p->wake_ms;
    if (p->deadline_ms && (!next || p->deadline_ms < next)) next = p->deadline_ms;
  }
  if (!next) {
    uv_timer_stop(&d->timer);
    return;
  }
  (void)uv_timer_start(&d->timer, on_timer, next > now ? (uint64_t)(next - now) : 0, 0);
}

/* ---------------------------------------------------------------- entry points */

static punch *punch_new(p2p_dcutr *d, uint64_t relay_conn, const char *peer, bool b_side) {
  if (d->n_punches >= PUNCH_MAX) return NULL;
  punch *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->d = d;
  p->b_side = b_side;
  p->relay_conn = relay_conn;
  snprintf(p->peer, sizeof p->peer, "%s", peer);
  buf_init(&p->in, DCUTR_MAX_MSG + 16);
  p->next = d->punches;
  d->punches = p;
  d->n_punches++;
  d->pending++; /* the punch itself */
  d->stats.started++;
  return p;
}

void p2p_dcutr_serve(p2p_dcutr *d, p2p_stream *s) {
  punch *p = NULL;
  if (!d->closing && p2p_stream_is_relayed(s)) p = punch_new(d, p2p_stream_conn_id(s), p2p_stream_remote_peer(s), false);
  if (!p) {
    p2p_stream_reset(s);
    return;
  }
  p->s = s;
  p->state = P_EXCHANGE;
  p->deadline_ms = clock_mono_ms() + d->cfg.attempt_timeout_ms;
  p2p_stream_set_callbacks(s, &s_cbs, p);
  rearm(d);
}

static bool has_direct(p2p_dcutr *d, const char *peer) {
  p2p_conn_info ci[8];
  size_t n = p2p_host_conns(d->h, peer, ci, 8);
  for (size_t i = 0; i < n && i < 8; i++)
    if (!ci[i].relayed) return true;
  return false;
}

void p2p_dcutr_on_event(p2p_dcutr *d, const p2p_event *ev) {
  if (d->closing) return;
  if (ev->type == P2P_EV_CONN_OPENED) {
    if (ev->relayed && ev->inbound) {
      if (has_direct(d, ev->peer_id)) return;
      punch *p = punch_new(d, ev->conn_id, ev->peer_id, true);
      if (!p) return;
      p->state = P_IDENTIFY;
      p->wake_ms = clock_mono_ms() + PUNCH_IDENTIFY_WAIT_MS;
    } else if (!ev->relayed) {
      /* a direct connection to a peer we are punching to: theirs reached us, or ours is up */
      for (punch *p = d->punches; p; p = p->next)
        if (!p->succeeded && p->state != P_DONE && p->state != P_IDENTIFY && strcmp(p->peer, ev->peer_id) == 0)
          punch_succeeded(p, ev->remote_addr, ev->conn_id);
    }
  } else if (ev->type == P2P_EV_PEER_IDENTIFIED) {
    for (punch *p = d->punches; p; p = p->next)
      if (p->b_side && p->state == P_IDENTIFY && p->relay_conn == ev->conn_id) step_unilateral(p);
  } else if (ev->type == P2P_EV_CONN_CLOSED) {
    for (punch *p = d->punches; p; p = p->next)
      if (p->relay_conn == ev->conn_id && p->state != P_DONE) {
        if (!p->succeeded) log_info("p2p hole punch abandoned: the relayed connection closed", "{s:s}", "peer", p->peer);
        punch_end_stream(p);
        p->state = P_DONE;
        p->wake_ms = p->deadline_ms = 0;
      }
  }
  for (punch *p = d->punches, *next; p; p = next) {
    next = p->next;
    punch_free_if_done(p);
  }
  rearm(d);
}

/* ---------------------------------------------------------------- life cycle */

int p2p_dcutr_new(p2p_host *h, uv_loop_t *loop, const p2p_dcutr_config *cfg, p2p_dcutr **out) {
  if (!cfg->candidates) return -EINVAL;
  p2p_dcutr *d = calloc(1, sizeof *d);
  if (!d) return -ENOMEM;
  d->h = h;
  d->loop = loop;
  d->cfg = *cfg;
  if (!d->cfg.attempts) d->cfg.attempts = 3;
  if (!d->cfg.attempt_timeout_ms) d->cfg.attempt_timeout_ms = 5000;
  if (!d->cfg.retry_gap_ms) d->cfg.retry_gap_ms = 2000;
  int rc = uv_timer_init(loop, &d->timer);
  if (rc) {
    free(d);
    return rc;
  }
  d->timer.data = d;
  d->timer_open = true;
  d->pending = 1; /* the timer, until its close callback */
  *out = d;
  return 0;
}

static void d_finalize(p2p_dcutr *d) {
  void (*done)(void *) = d->close_done;
  void *ud = d->close_ud;
  free(d);
  if (done) done(ud);
}

static void d_unpend(p2p_dcutr *d) {
  CHECK(d->pending > 0);
  if (--d->pending == 0 && d->closing) d_finalize(d);
}

static void timer_closed(uv_handle_t *hd) {
  p2p_dcutr *d = hd->data;
  d->timer_open = false;
  d_unpend(d);
}

void p2p_dcutr_close(p2p_dcutr *d, void (*done)(void *ud), void *ud) {
  if (!d || d->closing) return;
  d->closing = true;
  d->close_done = done;
  d->close_ud = ud;
  d->pending++; /* hold while ending the punches */
  for (punch *p = d->punches, *next; p; p = next) {
    next = p->next;
    punch_end_stream(p);
    p->state = P_DONE;
    punch_free_if_done(p); /* the others go when their dials or stream opens come back */
  }
  if (d->timer_open) {
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, timer_closed);
  }
  d_unpend(d);
}

json_t *p2p_dcutr_status_json(const p2p_dcutr *d) {
  size_t active = 0;
  for (const punch *p = d->punches; p; p = p->next)
    if (p->state != P_DONE) active++;
  return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "started", (json_int_t)d->stats.started, "succeeded",
                   (json_int_t)d->stats.succeeded, "direct_dial", (json_int_t)d->stats.unilateral, "failed",
                   (json_int_t)d->stats.failed, "answered_attempts_failed", (json_int_t)d->stats.answer_failed,
                   "skipped", (json_int_t)d->stats.skipped, "in_progress", (json_int_t)active);
}
