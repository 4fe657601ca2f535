/* svc_autonat2.c — AutoNAT v2 client and server on the host (see svc_autonat2.h). */
#include "p2p/host/svc_autonat2.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/host/autonat_common.h"
#include "p2p/proto/autonat.h"
#include "p2p/proto/autonat2.h"
#include "util/buf.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/log.h"

#define A2_MAX_ADDRS 16            /* candidate addresses we keep results for */
#define A2_PER_PEER_PER_MIN 3
#define A2_GLOBAL_PER_MIN 30
#define A2_MAX_DIALING 4
#define A2_MAX_DATA_EXCHANGES 2
#define A2_REQUEST_TIMEOUT_MS 60000
#define A2_WRITE_PIECE 16384
#define A2_GAP_MS 5000             /* between two requests to one server */

/* One candidate address and the servers' latest answers about it (v1's tally logic). */
typedef struct a2_addr {
  multiaddr ma;                    /* len 0: free */
  autonat_tally t;
  int64_t decided_ms;              /* when t decided (0: undecided); asked again after recheck_s */
  peerid novote[8];                /* servers whose request about it ended without a vote */
  size_t n_novote;                 /* (refused, rejected, no answer): not asked again until then */
  unsigned asked, ok, fail, other;
} a2_addr;

/* A request we made (client side). */
typedef struct a2_ask {
  p2p_autonat2 *an;
  char server[PEERID_STR_MAX];
  p2p_stream *s;                   /* NULL once answered or gone */
  buf in, outq;
  autonat2_client c;
  multiaddr addr;
  uint64_t nonce;
  bool nonce_seen;                 /* on a dial-back that can be the dial of addr */
  bool nonce_elsewhere;            /* on a dial-back that cannot (dialback_fits) */
  bool voted;                      /* its answer was a vote */
  int64_t deadline_ms;
  struct a2_ask *next;
} a2_ask;

/* A request we answer (server side), with its dial-back. */
typedef struct a2_req {
  p2p_autonat2 *an;
  unsigned refs;                   /* the request stream, a connect in flight, the dial-back stream */
  p2p_stream *s;                   /* the dial-request stream; NULL once gone */
  p2p_stream *db;                  /* the dial-back stream; NULL when none */
  buf in, dbin;
  char peer[PEERID_STR_MAX];
  autonat2_server sv;
  bool dialing, data_slot, finished;
  uint64_t conn_id;                /* the dial-back connection (0 none) */
  int64_t deadline_ms, dial_deadline_ms;
  struct a2_req *next;
} a2_req;

/* A dial-back stream that reached us (client side). */
typedef struct a2_dbs {
  p2p_autonat2 *an;
  p2p_stream *s;
  buf in;
  struct a2_dbs *next;
} a2_dbs;

struct p2p_autonat2 {
  p2p_host *h;
  p2p_autonat2_config cfg;
  autonat_peers peers;             /* servers we asked */
  a2_addr addrs[A2_MAX_ADDRS];
  a2_ask *asks;
  a2_req *reqs;
  a2_dbs *dbss;
  unsigned dialing, data_exchanges;
  autonat_rate rate;               /* requests accepted in the last minute */
  autonat_life life;               /* pending, closing */
  struct {
    uint64_t asked, ok, dial_error, other, nonce_missing, dialbacks_in, dialbacks_unknown, dialbacks_unfit, data_paid;
    uint64_t served, rejected, refused, dialed_ok, dialed_error, dial_back_error, data_received, bad_requests;
  } stats;
};

static void a2_unpend(p2p_autonat2 *an);

static void hold(p2p_autonat2 *an) { an->life.pending++; }

/* ---------------------------------------------------------------- client: asking */

static a2_addr *addr_rec(p2p_autonat2 *an, const multiaddr *ma, bool create) {
  a2_addr *free_one = NULL, *least = NULL;
  for (size_t i = 0; i < A2_MAX_ADDRS; i++) {
    a2_addr *r = &an->addrs[i];
    if (r->ma.len && multiaddr_equal(&r->ma, ma)) return r;
    if (!r->ma.len && !free_one) free_one = r;
    if (r->ma.len && (!least || r->asked < least->asked)) least = r;
  }
  if (!create) return NULL;
  a2_addr *r = free_one ? free_one : least;
  memset(r, 0, sizeof *r);
  r->ma = *ma;
  autonat_tally_init(&r->t, an->cfg.confidence);
  return r;
}

static bool voted(const a2_addr *r, const peerid *server) {
  for (size_t i = 0; i < r->t.n; i++)
    if (peerid_equal(&r->t.votes[i].server, server)) return true;
  for (size_t i = 0; i < r->n_novote; i++)
    if (peerid_equal(&r->novote[i], server)) return true;
  return false;
}

/* A request about ma ended without a vote: that server is not asked about it again until the
 * address is rechecked (the oldest such mark goes when full). */
static void mark_novote(p2p_autonat2 *an, const multiaddr *ma, const char *server) {
  peerid sid;
  a2_addr *r = addr_rec(an, ma, true);
  if (peerid_parse(server, strlen(server), &sid) != 0) return;
  if (r->n_novote == sizeof r->novote / sizeof r->novote[0]) {
    memmove(&r->novote[0], &r->novote[1], (r->n_novote - 1) * sizeof r->novote[0]);
    r->n_novote--;
  }
  r->novote[r->n_novote++] = sid;
}

/* What to ask `server` about: among the candidates not yet decided (or decided longer than
 * recheck_s ago) that it has not answered about, the one with the most answers already (to
 * decide one address at a time), the first of equals (nat.c lists the likeliest first). */
static bool pick_addr(p2p_autonat2 *an, const char *server, multiaddr *out) {
  peerid sid;
  if (peerid_parse(server, strlen(server), &sid) != 0) return false;
  multiaddr *c = malloc(AUTONAT2_MAX_ADDRS * sizeof *c);
  if (!c) return false;
  size_t n = an->cfg.candidates(an->cfg.candidates_ud, c, AUTONAT2_MAX_ADDRS);
  if (n > A2_MAX_ADDRS) n = A2_MAX_ADDRS;
  int64_t now = clock_mono_ms();
  size_t best = n, best_votes = 0;
  for (size_t i = 0; i < n; i++) {
    a2_addr *r = addr_rec(an, &c[i], false);
    if (r && r->decided_ms && now - r->decided_ms > (int64_t)an->cfg.recheck_s * 1000) {
      autonat_tally_reset(&r->t); /* time to check again: the verdict stays until new votes */
      r->decided_ms = 0;
      r->n_novote = 0;
    }
    if (r && (r->decided_ms || voted(r, &sid))) continue;
    size_t votes = r ? r->t.n : 0;
    if (best == n || votes > best_votes) {
      best = i;
      best_votes = votes;
    }
  }
  bool ok = best < n;
  if (ok) *out = c[best];
  free(c);
  return ok;
}

/* Our verdict from every address's tally: public if one is reachable, private if one is not
 * and none is, else none (v1's tally decides). */
static void verdict(p2p_autonat2 *an, const a2_addr *changed) {
  int v = 0;
  for (size_t i = 0; i < A2_MAX_ADDRS; i++) {
    const a2_addr *r = &an->addrs[i];
    if (!r->ma.len) continue;
    if (r->t.reachability == 1) v = 1;
    else if (r->t.reachability == 2 && v == 0) v = 2;
  }
  p2p_autonat_v2_verdict(an->cfg.votes, v, changed && changed->t.reachability == 1 ? &changed->ma : NULL);
}

static void ask_end(a2_ask *a) {
  p2p_autonat2 *an = a->an;
  if (!a->voted && !an->life.closing && a->addr.len) mark_novote(an, &a->addr, a->server);
  autonat_peers_done(&an->peers, a->server);
  for (a2_ask **pp = &an->asks; *pp; pp = &(*pp)->next)
    if (*pp == a) {
      *pp = a->next;
      break;
    }
  buf_free(&a->in);
  buf_free(&a->outq);
  free(a);
  a2_unpend(an);
}

static void ask_flush(a2_ask *a, p2p_stream *s) {
  while (buf_len(&a->outq)) {
    size_t k = buf_len(&a->outq) < A2_WRITE_PIECE ? buf_len(&a->outq) : A2_WRITE_PIECE;
    int rc = p2p_stream_write(s, buf_ptr(&a->outq), k);
    if (rc == -ENOBUFS) return; /* on_writable */
    if (rc < 0) {
      p2p_stream_reset(s);
      return;
    }
    buf_consume(&a->outq, k);
    if (rc == 1) return;
  }
}

static void ask_result(a2_ask *a) {
  p2p_autonat2 *an = a->an;
  char t[MULTIADDR_STR_MAX];
  if (multiaddr_to_string(&a->addr, t, sizeof t) != 0) t[0] = 0;
  a2_addr *rec = addr_rec(an, &a->addr, true);
  int r = autonat2_result(a->c.status, a->c.dial_status);
  if (r == 1 && !a->nonce_seen) {
    /* spec: the client MUST check the nonce; an OK without it is discarded, and so is one whose
     * nonce came over a connection that cannot be the dial of the address (dbs_data) */
    rec->other++;
    if (a->nonce_elsewhere) {
      log_info("p2p autonat2: OK, but the dial-back came over another transport or connection; discarded",
               "{s:s, s:s}", "server", a->server, "addr", t);
      return;
    }
    an->stats.nonce_missing++;
    log_info("p2p autonat2: OK without our nonce on a dial-back; discarded", "{s:s, s:s}", "server", a->server, "addr", t);
    return;
  }
  log_info("p2p autonat2: answer", "{s:s, s:s, s:s, s:s, s:b}", "server", a->server, "addr", t, "status",
           autonat2_response_status_name(a->c.status), "dial_status", autonat2_dial_status_name(a->c.dial_status),
           "nonce_seen", a->nonce_seen);
  if (r == 0) {
    an->stats.other++;
    rec->other++;
    return;
  }
  a->voted = true;
  if (r == 1) {
    an->stats.ok++;
    rec->ok++;
  } else {
    an->stats.dial_error++;
    rec->fail++;
  }
  peerid sid;
  if (peerid_parse(a->server, strlen(a->server), &sid) != 0) return;
  int before = rec->t.reachability;
  int after = autonat_tally_add(&rec->t, &sid, r == 1 ? AUTONAT_OK : AUTONAT_E_DIAL_ERROR);
  if (after && (!rec->decided_ms || after != before)) rec->decided_ms = clock_mono_ms();
  if (after != before)
    log_info("p2p autonat2: address reachability", "{s:s, s:s}", "addr", t, "reachability",
             p2p_reachability_name((p2p_reachability)after));
  verdict(an, after != before ? rec : NULL);
}

static void ask_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  a2_ask *a = ud;
  if (!a->s) return;
  if (buf_append(&a->in, d, n) != 0) {
    log_info("p2p autonat2: answer too large", "{s:s}", "server", a->server);
    a->s = NULL;
    p2p_stream_reset(s);
    return;
  }
  size_t used = 0;
  size_t before = buf_len(&a->outq);
  autonat2_client_ev ev = autonat2_client_feed(&a->c, buf_ptr(&a->in), buf_len(&a->in), &used, &a->outq);
  buf_consume(&a->in, used);
  if (buf_len(&a->outq) > before) {
    a->an->stats.data_paid += a->c.data_paid;
    log_debug("p2p autonat2: paying dial data", "{s:s, s:I}", "server", a->server, "bytes", (json_int_t)a->c.data_paid);
    ask_flush(a, s);
  }
  if (ev == A2C_MORE) return;
  if (ev == A2C_RESULT) {
    ask_result(a);
    a->s = NULL;
    p2p_stream_close_write(s);
    return;
  }
  log_info("p2p autonat2: request aborted", "{s:s, s:s}", "server", a->server, "why", a->c.why ? a->c.why : "");
  a->an->stats.other++;
  a->s = NULL;
  p2p_stream_reset(s);
}

static void ask_eof(p2p_stream *s, void *ud) {
  a2_ask *a = ud;
  if (a->s) {
    log_info("p2p autonat2: server closed without an answer", "{s:s}", "server", a->server);
    a->an->stats.other++;
    a->s = NULL;
  }
  p2p_stream_close_write(s);
}

static void ask_writable(p2p_stream *s, void *ud) {
  a2_ask *a = ud;
  if (a->s) ask_flush(a, s);
}

static void ask_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  ask_end(ud);
}

static const p2p_stream_callbacks ask_cbs = {
    .on_data = ask_data, .on_eof = ask_eof, .on_writable = ask_writable, .on_close = ask_close};

static void ask_opened(p2p_stream *s, int err, void *ud) {
  a2_ask *a = ud;
  p2p_autonat2 *an = a->an;
  if (!s || an->life.closing) {
    if (s) p2p_stream_reset(s);
    else log_debug("p2p autonat2: cannot ask", "{s:s, s:i}", "server", a->server, "error", err);
    ask_end(a);
    return;
  }
  a->s = s;
  p2p_stream_set_callbacks(s, &ask_cbs, a);
  int rc = autonat2_client_start(&a->c, &a->addr, 1, a->nonce, 0, &a->outq);
  if (rc == 0) {
    an->stats.asked++;
    a2_addr *rec = addr_rec(an, &a->addr, true);
    rec->asked++;
    char t[MULTIADDR_STR_MAX];
    if (multiaddr_to_string(&a->addr, t, sizeof t) != 0) t[0] = 0;
    log_debug("p2p autonat2: asking", "{s:s, s:s}", "server", a->server, "addr", t);
    ask_flush(a, s);
  } else {
    a->s = NULL;
    p2p_stream_reset(s); /* ask_close ends it */
  }
}

static void maybe_ask(p2p_autonat2 *an, const char *peer_id) {
  if (!an->cfg.client || an->life.closing) return;
  p2p_peer_info pi;
  if (p2p_host_peer_info(an->h, peer_id, &pi) != 0) return;
  if (!autonat_peer_speaks(&pi, AUTONAT2_DIAL_REQUEST_PROTOCOL)) return;
  int64_t now = clock_mono_ms();
  autonat_peer *p = autonat_peers_due(&an->peers, an->h, peer_id, now, A2_GAP_MS);
  if (!p) return; /* not direct (cannot be dialed back), in flight, or asked within A2_GAP_MS */
  a2_ask *a = calloc(1, sizeof *a);
  if (!a) return;
  if (!pick_addr(an, peer_id, &a->addr)) {
    free(a);
    return;
  }
  a->an = an;
  snprintf(a->server, sizeof a->server, "%s", peer_id);
  buf_init(&a->in, AUTONAT2_MAX_MSG + 16);
  buf_init(&a->outq, AUTONAT2_CLIENT_MAX_DATA + 2 * AUTONAT2_MAX_MSG);
  randombytes_buf(&a->nonce, sizeof a->nonce);
  a->deadline_ms = now + A2_REQUEST_TIMEOUT_MS;
  if (p2p_host_open_stream(an->h, peer_id, AUTONAT2_DIAL_REQUEST_PROTOCOL, ask_opened, a) != 0) {
    buf_free(&a->in);
    buf_free(&a->outq);
    free(a);
    return;
  }
  autonat_peers_asked(p, now);
  a->next = an->asks;
  an->asks = a;
  hold(an);
}

static void ask_direct_peer(void *ud, const char *peer_id) { maybe_ask(ud, peer_id); }

/* ---------------------------------------------------------------- client: dial-back streams */

/* Whether the dial-back stream s can be the server's dial of `tested`: a connection the server
 * dialed (inbound: not ours to it, such as the one we asked over), direct, and whose local
 * address is of the tested transport (spec: the client checks "the local address of the
 * connection on which the nonce was received"). */
static bool dialback_fits(p2p_stream *s, const multiaddr *tested) {
  multiaddr local;
  return p2p_stream_conn_inbound(s) && !p2p_stream_is_relayed(s) &&
         multiaddr_parse(p2p_stream_local_addr(s), &local) == 0 && autonat2_dialback_addr_matches(&local, tested);
}

static void dbs_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  a2_dbs *b = ud;
  if (!b->s) return;
  p2p_autonat2 *an = b->an;
  const uint8_t *body;
  size_t bl, used;
  int rc = buf_append(&b->in, d, n);
  if (rc == 0) rc = autonat2_dialback_frame_parse(buf_ptr(&b->in), buf_len(&b->in), &body, &bl, &used);
  if (rc == -EAGAIN) return;
  uint64_t nonce = 0;
  if (rc == 0) rc = autonat2_dialback_decode(body, bl, &nonce);
  a2_ask *a = NULL;
  for (a2_ask *x = an->asks; rc == 0 && x && !a; x = x->next)
    if (x->s && x->nonce == nonce) a = x;
  b->s = NULL;
  if (!a) {
    an->stats.dialbacks_unknown++;
    log_info("p2p autonat2: dial-back with an unknown nonce; reset", "{s:s, s:s}", "peer", p2p_stream_remote_peer(s),
             "addr", p2p_stream_remote_addr(s));
    p2p_stream_reset(s);
    return;
  }
  if (!dialback_fits(s, &a->addr)) {
    a->nonce_elsewhere = true;
    an->stats.dialbacks_unfit++;
    log_info("p2p autonat2: dial-back not over a fresh direct connection of the tested transport; reset",
             "{s:s, s:s, s:s, s:b, s:b}", "peer", p2p_stream_remote_peer(s), "local_addr", p2p_stream_local_addr(s),
             "remote_addr", p2p_stream_remote_addr(s), "inbound", p2p_stream_conn_inbound(s), "relayed",
             p2p_stream_is_relayed(s));
    p2p_stream_reset(s);
    return;
  }
  a->nonce_seen = true;
  an->stats.dialbacks_in++;
  buf out;
  buf_init(&out, 64);
  if (autonat2_dialback_response_encode(0, &out) == 0) (void)!p2p_stream_write(s, buf_ptr(&out), buf_len(&out));
  buf_free(&out);
  p2p_stream_close_write(s);
}

static void dbs_eof(p2p_stream *s, void *ud) {
  a2_dbs *b = ud;
  if (b->s) {
    b->s = NULL;
    p2p_stream_reset(s);
  }
}

static void dbs_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  a2_dbs *b = ud;
  p2p_autonat2 *an = b->an;
  for (a2_dbs **pp = &an->dbss; *pp; pp = &(*pp)->next)
    if (*pp == b) {
      *pp = b->next;
      break;
    }
  buf_free(&b->in);
  free(b);
  a2_unpend(an);
}

static const p2p_stream_callbacks dbs_cbs = {.on_data = dbs_data, .on_eof = dbs_eof, .on_close = dbs_close};

void p2p_autonat2_serve_dialback(p2p_autonat2 *an, p2p_stream *s) {
  a2_dbs *b = an->cfg.client && !an->life.closing && an->asks ? calloc(1, sizeof *b) : NULL;
  if (!b) { /* nothing asked: no dial-back is expected */
    p2p_stream_reset(s);
    return;
  }
  b->an = an;
  b->s = s;
  buf_init(&b->in, AUTONAT2_MAX_DIALBACK_MSG + 16);
  b->next = an->dbss;
  an->dbss = b;
  hold(an);
  p2p_stream_set_callbacks(s, &dbs_cbs, b);
}

/* ---------------------------------------------------------------- server */

static bool admit(void *ud, bool other_ip) {
  a2_req *r = ud;
  p2p_autonat2 *an = r->an;
  int64_t now = clock_mono_ms();
  autonat_rate_slot *slot = autonat_rate_room(&an->rate, r->peer, now, A2_GLOBAL_PER_MIN, A2_PER_PEER_PER_MIN);
  if (!slot || an->dialing >= A2_MAX_DIALING) return false;
  if (other_ip && an->data_exchanges >= A2_MAX_DATA_EXCHANGES) return false;
  autonat_rate_take(slot, r->peer, now);
  if (other_ip) {
    r->data_slot = true;
    an->data_exchanges++;
  }
  return true;
}

static void req_unref(a2_req *r) {
  CHECK(r->refs > 0);
  if (--r->refs) return;
  p2p_autonat2 *an = r->an;
  for (a2_req **pp = &an->reqs; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  if (r->data_slot) an->data_exchanges--;
  if (r->dialing) an->dialing--;
  buf_free(&r->in);
  buf_free(&r->dbin);
  free(r);
  a2_unpend(an);
}

static void req_log(a2_req *r) {
  char t[MULTIADDR_STR_MAX];
  if (!r->sv.target.len || multiaddr_to_string(&r->sv.target, t, sizeof t) != 0) t[0] = 0;
  log_info("p2p autonat2: answered", "{s:s, s:s, s:s, s:s, s:s}", "peer", r->peer, "status",
           autonat2_response_status_name(r->sv.status), "addr", t, "why", r->sv.why ? r->sv.why : "", "cost",
           r->sv.other_ip ? "dial data" : "none");
}

/* Sends what the engine wrote and acts on its event. */
static void req_act(a2_req *r, autonat2_server_ev ev, buf *out);

static void dial_finish(a2_req *r, uint32_t dial_status) {
  if (r->finished) return;
  r->finished = true;
  p2p_autonat2 *an = r->an;
  if (r->dialing) {
    r->dialing = false;
    an->dialing--;
  }
  if (r->data_slot) {
    r->data_slot = false;
    an->data_exchanges--;
  }
  if (dial_status == AUTONAT2_DS_OK) an->stats.dialed_ok++;
  else if (dial_status == AUTONAT2_DS_E_DIAL_ERROR) an->stats.dialed_error++;
  else an->stats.dial_back_error++;
  if (r->conn_id) (void)p2p_host_close_conn(an->h, r->conn_id, true); /* it only had to exist */
  r->conn_id = 0;
  buf out;
  buf_init(&out, AUTONAT2_MAX_MSG + 16);
  req_act(r, autonat2_server_dialed(&r->sv, dial_status, &out), &out);
  buf_free(&out);
}

static void db_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  a2_req *r = ud;
  const uint8_t *body;
  size_t bl, used;
  uint32_t st = 1;
  int rc = buf_append(&r->dbin, d, n);
  if (rc == 0) rc = autonat2_dialback_frame_parse(buf_ptr(&r->dbin), buf_len(&r->dbin), &body, &bl, &used);
  if (rc == -EAGAIN) return;
  if (rc == 0) rc = autonat2_dialback_response_decode(body, bl, &st);
  dial_finish(r, rc == 0 && st == 0 ? AUTONAT2_DS_OK : AUTONAT2_DS_E_DIAL_BACK_ERROR);
  p2p_stream_close_write(s);
}

static void db_eof(p2p_stream *s, void *ud) {
  a2_req *r = ud;
  dial_finish(r, AUTONAT2_DS_E_DIAL_BACK_ERROR); /* closed before answering */
  p2p_stream_close_write(s);
}

static void db_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  a2_req *r = ud;
  r->db = NULL;
  dial_finish(r, AUTONAT2_DS_E_DIAL_BACK_ERROR);
  req_unref(r);
}

static const p2p_stream_callbacks db_cbs = {.on_data = db_data, .on_eof = db_eof, .on_close = db_close};

static void db_opened(p2p_stream *s, int err, void *ud) {
  a2_req *r = ud;
  if (!s) {
    log_debug("p2p autonat2: cannot open the dial-back stream", "{s:s, s:i}", "peer", r->peer, "error", err);
    dial_finish(r, AUTONAT2_DS_E_DIAL_BACK_ERROR);
    req_unref(r);
    return;
  }
  r->db = s;
  p2p_stream_set_callbacks(s, &db_cbs, r);
  if (r->finished || r->an->life.closing) {
    p2p_stream_reset(s);
    return;
  }
  buf out;
  buf_init(&out, 64);
  if (autonat2_dialback_encode(r->sv.nonce, &out) != 0 || p2p_stream_write(s, buf_ptr(&out), buf_len(&out)) < 0)
    p2p_stream_reset(s); /* db_close: E_DIAL_BACK_ERROR */
  buf_free(&out);
}

static void dialed_back(p2p_host *h, int err, const char *peer_id, uint64_t conn_id, void *ud) {
  a2_req *r = ud;
  (void)peer_id;
  if (err) {
    log_debug("p2p autonat2: dial-back failed", "{s:s, s:s}", "peer", r->peer, "error", strerror(-err));
    dial_finish(r, AUTONAT2_DS_E_DIAL_ERROR);
  } else if (r->finished || r->an->life.closing) {
    (void)p2p_host_close_conn(h, conn_id, false);
  } else {
    r->conn_id = conn_id;
    r->refs++;
    if (p2p_host_open_stream_on(h, conn_id, AUTONAT2_DIAL_BACK_PROTOCOL, db_opened, r) != 0) {
      r->refs--;
      dial_finish(r, AUTONAT2_DS_E_DIAL_BACK_ERROR);
    }
  }
  req_unref(r); /* the connect's reference */
}

static void start_dial(a2_req *r) {
  p2p_autonat2 *an = r->an;
  char a[MULTIADDR_STR_MAX], t[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8];
  multiaddr bare;
  multiaddr_strip_p2p(&r->sv.target, &bare);
  if (multiaddr_to_string(&bare, a, sizeof a) != 0) {
    dial_finish(r, AUTONAT2_DS_E_DIAL_ERROR);
    return;
  }
  snprintf(t, sizeof t, "%s/p2p/%s", a, r->peer);
  /* a fresh connection (never the requester's), not from our listen port (spec) */
  p2p_connect_opts o = {.no_backoff = true, .timeout_ms = an->cfg.dial_timeout_ms};
  r->dialing = true;
  an->dialing++;
  r->dial_deadline_ms = clock_mono_ms() + an->cfg.dial_timeout_ms;
  r->refs++;
  int rc = p2p_host_connect(an->h, t, &o, dialed_back, r);
  if (rc) {
    r->refs--;
    log_debug("p2p autonat2: cannot dial back", "{s:s, s:s}", "target", t, "error", strerror(-rc));
    dial_finish(r, AUTONAT2_DS_E_DIAL_ERROR);
  }
}

static void req_act(a2_req *r, autonat2_server_ev ev, buf *out) {
  p2p_autonat2 *an = r->an;
  if (buf_len(out) && r->s && p2p_stream_write(r->s, buf_ptr(out), buf_len(out)) < 0) {
    p2p_stream_reset(r->s);
    return;
  }
  switch (ev) {
  case A2S_MORE:
    if (r->sv.state == A2S_ST_WAIT_DATA && r->sv.data_got == 0)
      log_debug("p2p autonat2: asking for dial data", "{s:s, s:I}", "peer", r->peer, "bytes",
                (json_int_t)r->sv.data_need);
    break;
  case A2S_DIAL:
    an->stats.data_received += r->sv.data_got;
    start_dial(r);
    break;
  case A2S_DONE:
    if (r->sv.status == AUTONAT2_RS_E_REQUEST_REJECTED) an->stats.rejected++;
    else if (r->sv.status == AUTONAT2_RS_E_DIAL_REFUSED) an->stats.refused++;
    req_log(r);
    if (r->s) p2p_stream_close_write(r->s);
    break;
  case A2S_ERROR:
    an->stats.bad_requests++;
    log_info("p2p autonat2: bad request; reset", "{s:s, s:s}", "peer", r->peer, "why", r->sv.why ? r->sv.why : "");
    if (r->s) p2p_stream_reset(r->s);
    break;
  }
}

static void req_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  a2_req *r = ud;
  p2p_autonat2 *an = r->an;
  multiaddr observed, ours[32];
  const char *la[32];
  size_t nl = p2p_host_announced_addrs(an->h, la, 32), no = 0;
  for (size_t i = 0; i < nl && i < 32; i++)
    if (multiaddr_parse(la[i], &ours[no]) == 0) no++;
  if (multiaddr_parse(p2p_stream_remote_addr(s), &observed) != 0) memset(&observed, 0, sizeof observed);
  autonat2_server_policy pol = {.observed = &observed,
                                .ours = ours,
                                .n_ours = no,
                                .allow_private = an->cfg.allow_private,
                                .allow_other_ip = !an->cfg.no_other_ip,
                                .data_bytes = an->cfg.data_bytes ? an->cfg.data_bytes
                                                                 : AUTONAT2_DATA_MIN + randombytes_uniform(
                                                                       AUTONAT2_DATA_MAX - AUTONAT2_DATA_MIN + 1),
                                .admit = admit,
                                .admit_ud = r};
  /* a delivery may hold many frames (the dial data): taken a bufferful at a time */
  while (n && r->s && r->sv.state != A2S_ST_DONE && r->sv.state != A2S_ST_DIALING) {
    size_t k = n < buf_room(&r->in) ? n : buf_room(&r->in);
    if (buf_append(&r->in, d, k) != 0) k = 0;
    d += k;
    n -= k;
    buf out;
    buf_init(&out, AUTONAT2_MAX_MSG + 16);
    size_t used = 0;
    bool first = r->sv.state == A2S_ST_WAIT_REQUEST;
    autonat2_server_ev ev = autonat2_server_feed(&r->sv, &pol, buf_ptr(&r->in), buf_len(&r->in), &used, &out);
    buf_consume(&r->in, used);
    if (first && r->sv.state != A2S_ST_WAIT_REQUEST) an->stats.served++;
    if (ev == A2S_MORE && !used && !buf_room(&r->in)) { /* cannot happen: a frame fits */
      r->sv.why = "message too large";
      r->sv.state = A2S_ST_DONE;
      ev = A2S_ERROR;
    }
    req_act(r, ev, &out);
    buf_free(&out);
  }
  if (n && r->s && r->sv.state == A2S_ST_DIALING) { /* more after the request while dialing */
    r->sv.why = "data while dialing back";
    req_act(r, A2S_ERROR, &(buf){0});
  }
}

static void req_eof(p2p_stream *s, void *ud) {
  a2_req *r = ud;
  if (r->sv.state == A2S_ST_WAIT_REQUEST || r->sv.state == A2S_ST_WAIT_DATA) {
    r->sv.why = "closed before the request was complete";
    r->sv.state = A2S_ST_DONE;
    req_act(r, A2S_ERROR, &(buf){0});
  }
  (void)s;
}

static void req_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  a2_req *r = ud;
  r->s = NULL;
  if (r->data_slot && !r->dialing) { /* gone during the data exchange */
    r->data_slot = false;
    r->an->data_exchanges--;
  }
  req_unref(r);
}

static const p2p_stream_callbacks req_cbs = {.on_data = req_data, .on_eof = req_eof, .on_close = req_close};

void p2p_autonat2_serve_request(p2p_autonat2 *an, p2p_stream *s) {
  a2_req *r = an->cfg.server && !an->life.closing ? calloc(1, sizeof *r) : NULL;
  if (!r) {
    p2p_stream_reset(s);
    return;
  }
  r->an = an;
  r->s = s;
  r->refs = 1;
  snprintf(r->peer, sizeof r->peer, "%s", p2p_stream_remote_peer(s));
  buf_init(&r->in, AUTONAT2_MAX_MSG + 16);
  buf_init(&r->dbin, AUTONAT2_MAX_DIALBACK_MSG + 16);
  autonat2_server_init(&r->sv);
  r->deadline_ms = clock_mono_ms() + A2_REQUEST_TIMEOUT_MS;
  r->next = an->reqs;
  an->reqs = r;
  hold(an);
  p2p_stream_set_callbacks(s, &req_cbs, r);
  if (p2p_stream_is_relayed(s)) { /* a relayed connection says nothing about the peer's address */
    buf out;
    buf_init(&out, AUTONAT2_MAX_MSG + 16);
    autonat2_msg m = {.kind = AUTONAT2_DIAL_RESPONSE, .status = AUTONAT2_RS_E_DIAL_REFUSED};
    r->sv.state = A2S_ST_DONE;
    r->sv.status = AUTONAT2_RS_E_DIAL_REFUSED;
    r->sv.why = "relayed connection";
    if (autonat2_encode(&m, &out) != 0) buf_reset(&out);
    req_act(r, A2S_DONE, &out);
    buf_free(&out);
  }
}

/* ---------------------------------------------------------------- life cycle */

int p2p_autonat2_new(p2p_host *h, const p2p_autonat2_config *cfg, p2p_autonat2 **out) {
  if (cfg->client && (!cfg->candidates || !cfg->votes)) return -EINVAL;
  if (sodium_init() < 0) return -EIO;
  p2p_autonat2 *an = calloc(1, sizeof *an);
  if (!an) return -ENOMEM;
  an->h = h;
  an->cfg = *cfg;
  if (!an->cfg.recheck_s) an->cfg.recheck_s = 900;
  if (!an->cfg.confidence) an->cfg.confidence = 3;
  if (!an->cfg.dial_timeout_ms) an->cfg.dial_timeout_ms = 10000;
  *out = an;
  return 0;
}

static void a2_unpend(p2p_autonat2 *an) {
  if (autonat_life_unpend(&an->life)) {
    void (*done)(void *) = an->life.close_done;
    void *ud = an->life.close_ud;
    free(an);
    if (done) done(ud);
  }
}

void p2p_autonat2_close(p2p_autonat2 *an, void (*done)(void *ud), void *ud) {
  if (!an || !autonat_life_close(&an->life, done, ud)) return; /* held while resetting */
  for (a2_ask *a = an->asks, *next; a; a = next) {
    next = a->next;
    if (a->s) p2p_stream_reset(a->s);
  }
  for (a2_dbs *b = an->dbss, *next; b; b = next) {
    next = b->next;
    if (b->s) p2p_stream_reset(b->s);
  }
  for (a2_req *r = an->reqs, *next; r; r = next) {
    next = r->next;
    r->refs++;
    if (r->db) p2p_stream_reset(r->db);
    if (r->s) p2p_stream_reset(r->s);
    req_unref(r);
  }
  a2_unpend(an);
}

void p2p_autonat2_on_event(p2p_autonat2 *an, const p2p_event *ev) {
  if (an->life.closing) return;
  switch (ev->type) {
  case P2P_EV_PEER_IDENTIFIED:
  case P2P_EV_IDENTIFY_PUSH:
    maybe_ask(an, ev->peer_id);
    break;
  case P2P_EV_LISTEN_ADDRS_CHANGED:
    memset(an->addrs, 0, sizeof an->addrs);
    autonat_peers_forget_times(&an->peers);
    break;
  default:
    break;
  }
}

void p2p_autonat2_tick(p2p_autonat2 *an) {
  if (an->life.closing) return;
  int64_t now = clock_mono_ms();
  for (a2_ask *a = an->asks, *next; a; a = next) {
    next = a->next;
    if (a->s && now > a->deadline_ms) p2p_stream_reset(a->s);
  }
  for (a2_req *r = an->reqs, *next; r; r = next) {
    next = r->next;
    r->refs++;
    if (r->db && r->dialing && now > r->dial_deadline_ms) p2p_stream_reset(r->db);
    if (r->s && now > r->deadline_ms) p2p_stream_reset(r->s);
    req_unref(r);
  }
  if (!an->cfg.client) return;
  autonat_each_direct_peer(an->h, ask_direct_peer, an);
}

json_t *p2p_autonat2_status_json(const p2p_autonat2 *an) {
  json_t *addrs = json_array();
  for (size_t i = 0; i < A2_MAX_ADDRS; i++) {
    const a2_addr *r = &an->addrs[i];
    char t[MULTIADDR_STR_MAX];
    if (!r->ma.len || multiaddr_to_string(&r->ma, t, sizeof t) != 0) continue;
    json_array_append_new(addrs, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "addr", t, "reachability",
                                           p2p_reachability_name((p2p_reachability)r->t.reachability), "asked",
                                           (json_int_t)r->asked, "ok", (json_int_t)r->ok, "error", (json_int_t)r->fail,
                                           "other", (json_int_t)r->other));
  }
  json_t *c = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "asked", (json_int_t)an->stats.asked, "answers_ok",
                        (json_int_t)an->stats.ok, "answers_dial_error", (json_int_t)an->stats.dial_error,
                        "answers_other", (json_int_t)an->stats.other, "ok_without_nonce",
                        (json_int_t)an->stats.nonce_missing, "dialbacks_received", (json_int_t)an->stats.dialbacks_in,
                        "dialbacks_unknown_nonce", (json_int_t)an->stats.dialbacks_unknown, "dialbacks_unfit",
                        (json_int_t)an->stats.dialbacks_unfit, "dial_data_paid",
                        (json_int_t)an->stats.data_paid);
  json_t *s = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "served", (json_int_t)an->stats.served, "rejected",
                        (json_int_t)an->stats.rejected, "refused", (json_int_t)an->stats.refused, "dialed_back_ok",
                        (json_int_t)an->stats.dialed_ok, "dialed_back_error", (json_int_t)an->stats.dialed_error,
                        "dial_back_stream_error", (json_int_t)an->stats.dial_back_error, "dial_data_received",
                        (json_int_t)an->stats.data_received, "bad_requests", (json_int_t)an->stats.bad_requests);
  return json_pack("{s:b, s:b, s:I, s:o, s:o, s:o}", "client", an->cfg.client, "server", an->cfg.server, "confidence",
                   (json_int_t)an->cfg.confidence, "addrs", addrs,
                   "client_counters", c, "server_counters", s);
}
