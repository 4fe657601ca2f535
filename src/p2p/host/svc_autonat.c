/* svc_autonat.c — AutoNAT v1 client and server on the host (see svc_autonat.h). */
#include "p2p/host/svc_autonat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/autonat.h"
#include "p2p/proto/autonat2.h"
#include "util/buf.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/log.h"

#define AN_MAX_PEERS 64            /* servers we remember asking */
#define AN_MAX_CONFIRMED 8
#define AN_PER_PEER_PER_MIN 3
#define AN_GLOBAL_PER_MIN 30
#define AN_MAX_CONCURRENT 4
#define AN_RATE_SLOTS 64
#define AN_REQUEST_TIMEOUT_MS 60000

typedef struct an_peer {
  char id[PEERID_STR_MAX];
  int64_t last_ms;                 /* when we last asked it (0 = never) */
  bool asking;
} an_peer;

/* A question we asked (client side). */
typedef struct an_ask {
  p2p_autonat *an;
  char server[PEERID_STR_MAX];
  p2p_stream *s;
  buf in;
  int64_t deadline_ms;
  struct an_ask *next;
} an_ask;

/* A question we answer (server side). */
typedef struct an_req {
  p2p_autonat *an;
  p2p_stream *s;                   /* NULL once gone */
  buf in;
  char peer[PEERID_STR_MAX];
  multiaddr dials[AUTONAT_MAX_DIALS];
  size_t n_dials, next_dial;
  bool dialing, answered, counted;
  char last_error[96];
  struct an_req *next;
} an_req;

typedef struct rate_slot {
  char peer[PEERID_STR_MAX];
  int64_t at_ms;
} rate_slot;

struct p2p_autonat {
  p2p_host *h;
  p2p_autonat_config cfg;
  autonat_tally tally;
  int v2_reach;                    /* AutoNAT v2's verdict (0 none; p2p_reachability) */
  int reach;                       /* what we last told the host */
  an_peer peers[AN_MAX_PEERS];
  an_ask *asks;
  an_req *reqs;
  unsigned dialing;                /* dial-backs in flight */
  rate_slot rate[AN_RATE_SLOTS];   /* requests accepted in the last minute */
  char *confirmed[AN_MAX_CONFIRMED];
  size_t n_confirmed;
  unsigned pending;
  bool closing;
  void (*close_done)(void *);
  void *close_ud;
  struct {
    uint64_t asked, ok, dial_error, other, served, refused, dialed_ok, dialed_failed;
  } stats;
};

static void an_unpend(p2p_autonat *an);

/* ---------------------------------------------------------------- client */

static an_peer *peer_slot(p2p_autonat *an, const char *id, bool create) {
  an_peer *oldest = NULL;
  for (size_t i = 0; i < AN_MAX_PEERS; i++) {
    an_peer *p = &an->peers[i];
    if (p->id[0] && strcmp(p->id, id) == 0) return p;
    if (!create) continue;
    if (!p->id[0]) {
      if (!oldest || oldest->id[0]) oldest = p;
    } else if (!p->asking && (!oldest || (oldest->id[0] && p->last_ms < oldest->last_ms))) {
      oldest = p;
    }
  }
  if (!create || !oldest) return NULL;
  memset(oldest, 0, sizeof *oldest);
  snprintf(oldest->id, sizeof oldest->id, "%s", id);
  return oldest;
}

static void confirm_addr(p2p_autonat *an, const multiaddr *ma) {
  char t[MULTIADDR_STR_MAX];
  multiaddr bare;
  multiaddr_strip_p2p(ma, &bare);
  if (multiaddr_to_string(&bare, t, sizeof t) != 0) return;
  const char *listen[16];
  size_t nl = p2p_host_listen_addrs(an->h, listen, 16);
  for (size_t i = 0; i < nl && i < 16; i++)
    if (strcmp(listen[i], t) == 0) return; /* already announced as a listen address */
  for (size_t i = 0; i < an->n_confirmed; i++)
    if (strcmp(an->confirmed[i], t) == 0) return;
  if (an->n_confirmed == AN_MAX_CONFIRMED) return;
  char *d = strdup(t);
  if (!d) return;
  int rc = p2p_host_add_addr(an->h, d);
  if (rc && rc != -EEXIST) {
    free(d);
    return;
  }
  an->confirmed[an->n_confirmed++] = d;
  log_info("p2p autonat: external address confirmed", "{s:s}", "multiaddr", d);
}

static void withdraw_confirmed(p2p_autonat *an) {
  for (size_t i = 0; i < an->n_confirmed; i++) {
    (void)p2p_host_remove_addr(an->h, an->confirmed[i]);
    free(an->confirmed[i]);
  }
  an->n_confirmed = 0;
}

/* Our reachability: AutoNAT v2's verdict when it has one (it tests each address and checks
 * the nonce), else v1's tally. Applied to the host on a change. */
static void apply_reach(p2p_autonat *an) {
  int after = an->v2_reach ? an->v2_reach : an->tally.reachability;
  int before = an->reach;
  if (after == before) return;
  an->reach = after;
  log_info("p2p autonat: reachability", "{s:s, s:s, s:s}", "from", p2p_reachability_name((p2p_reachability)before),
           "to", p2p_reachability_name((p2p_reachability)after), "by", an->v2_reach ? "v2" : "v1");
  if (after == P2P_REACH_PRIVATE) withdraw_confirmed(an);
  p2p_host_set_reachability(an->h, (p2p_reachability)after);
}

static void record_answer(p2p_autonat *an, const char *server, const autonat_msg *m) {
  peerid sid;
  if (peerid_parse(server, strlen(server), &sid) != 0) return;
  if (m->status == AUTONAT_OK) an->stats.ok++;
  else if (m->status == AUTONAT_E_DIAL_ERROR) an->stats.dial_error++;
  else an->stats.other++;
  int after = autonat_tally_add(&an->tally, &sid, m->status);
  log_info("p2p autonat: answer", "{s:s, s:s, s:s, s:s}", "server", server, "status", autonat_status_name(m->status),
           "text", m->status_text, "reachability", p2p_reachability_name((p2p_reachability)after));
  if (m->status == AUTONAT_OK && m->has_addr) confirm_addr(an, &m->addr);
  apply_reach(an);
}

void p2p_autonat_v2_verdict(p2p_autonat *an, int reach, const multiaddr *reachable_addr) {
  if (!an || an->closing) return;
  if (reachable_addr) confirm_addr(an, reachable_addr);
  an->v2_reach = reach;
  apply_reach(an);
}

static void ask_end(an_ask *a) {
  p2p_autonat *an = a->an;
  an_peer *p = peer_slot(an, a->server, false);
  if (p) p->asking = false;
  for (an_ask **pp = &an->asks; *pp; pp = &(*pp)->next)
    if (*pp == a) {
      *pp = a->next;
      break;
    }
  buf_free(&a->in);
  free(a);
  an_unpend(an);
}

static void ask_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  an_ask *a = ud;
  if (!a->s) return;
  if (buf_append(&a->in, d, n) != 0) {
    p2p_stream_reset(s);
    return;
  }
  const uint8_t *body;
  size_t bl, used;
  int rc = autonat_frame_parse(buf_ptr(&a->in), buf_len(&a->in), &body, &bl, &used);
  if (rc == -EAGAIN) return;
  autonat_msg *m = malloc(sizeof *m);
  if (rc == 0) rc = m ? autonat_decode(body, bl, m) : -ENOMEM;
  if (rc == 0 && m->type == AUTONAT_DIAL_RESPONSE && m->has_response) record_answer(a->an, a->server, m);
  else log_info("p2p autonat: bad answer", "{s:s}", "server", a->server);
  free(m);
  a->s = NULL;
  p2p_stream_close_write(s);
}

static void ask_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}

static void ask_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  ask_end(ud);
}

static const p2p_stream_callbacks ask_cbs = {.on_data = ask_data, .on_eof = ask_eof, .on_close = ask_close};

static void ask_opened(p2p_stream *s, int err, void *ud) {
  an_ask *a = ud;
  p2p_autonat *an = a->an;
  if (!s || an->closing) {
    if (s) p2p_stream_reset(s);
    else log_debug("p2p autonat: cannot ask", "{s:s, s:i}", "server", a->server, "error", err);
    ask_end(a);
    return;
  }
  a->s = s;
  p2p_stream_set_callbacks(s, &ask_cbs, a);
  autonat_msg *m = calloc(1, sizeof *m);
  multiaddr *cands = malloc(AUTONAT_MAX_ADDRS * sizeof *cands);
  buf out;
  buf_init(&out, AUTONAT_MAX_MSG + 16);
  int rc = m && cands ? 0 : -ENOMEM;
  if (rc == 0) {
    m->type = AUTONAT_DIAL;
    m->has_dial = true;
    const char *me = p2p_host_peer_id(an->h);
    m->has_peer_id = peerid_parse(me, strlen(me), &m->peer) == 0;
    size_t n = an->cfg.candidates(an->cfg.candidates_ud, cands, AUTONAT_MAX_ADDRS);
    for (size_t i = 0; i < n && m->n_addrs < AUTONAT_MAX_ADDRS; i++) m->addrs[m->n_addrs++] = cands[i];
    rc = m->n_addrs ? autonat_encode(m, &out) : -EADDRNOTAVAIL;
  }
  if (rc == 0 && p2p_stream_write(s, buf_ptr(&out), buf_len(&out)) < 0) rc = -EPIPE;
  if (rc == 0) {
    an->stats.asked++;
    log_debug("p2p autonat: asking", "{s:s, s:i}", "server", a->server, "addrs", (int)m->n_addrs);
  }
  buf_free(&out);
  free(cands);
  free(m);
  if (rc) {
    a->s = NULL;
    p2p_stream_reset(s); /* ask_close ends it */
  }
}

static void maybe_ask(p2p_autonat *an, const char *peer_id) {
  if (!an->cfg.client || an->closing) return;
  p2p_peer_info pi;
  if (p2p_host_peer_info(an->h, peer_id, &pi) != 0) return;
  bool speaks = false;
  bool v2 = false;
  for (size_t i = 0; i < pi.n_protocols; i++) {
    speaks = speaks || strcmp(pi.protocols[i], AUTONAT_PROTOCOL) == 0;
    v2 = v2 || strcmp(pi.protocols[i], AUTONAT2_DIAL_REQUEST_PROTOCOL) == 0;
  }
  if (!speaks || (v2 && an->cfg.prefer_v2)) return; /* such a peer is asked by svc_autonat2 */
  /* only over a direct connection: a relayed one cannot be dialed back (spec) */
  p2p_conn_info ci[8];
  size_t nc = p2p_host_conns(an->h, peer_id, ci, 8);
  bool direct = false;
  for (size_t i = 0; i < nc && i < 8; i++) direct = direct || !ci[i].relayed;
  if (!direct) return;
  an_peer *p = peer_slot(an, peer_id, true);
  int64_t now = clock_mono_ms();
  if (!p || p->asking || (p->last_ms && now - p->last_ms < (int64_t)an->cfg.recheck_s * 1000)) return;
  an_ask *a = calloc(1, sizeof *a);
  if (!a) return;
  a->an = an;
  snprintf(a->server, sizeof a->server, "%s", peer_id);
  buf_init(&a->in, AUTONAT_MAX_MSG + 16);
  a->deadline_ms = now + AN_REQUEST_TIMEOUT_MS;
  if (p2p_host_open_stream(an->h, peer_id, AUTONAT_PROTOCOL, ask_opened, a) != 0) {
    buf_free(&a->in);
    free(a);
    return;
  }
  p->asking = true;
  p->last_ms = now;
  a->next = an->asks;
  an->asks = a;
  an->pending++;
}

/* ---------------------------------------------------------------- server */

static bool rate_ok(p2p_autonat *an, const char *peer) {
  int64_t now = clock_mono_ms();
  unsigned total = 0, mine = 0;
  rate_slot *free_slot = NULL;
  for (size_t i = 0; i < AN_RATE_SLOTS; i++) {
    rate_slot *r = &an->rate[i];
    if (!r->peer[0] || now - r->at_ms > 60000) {
      r->peer[0] = 0;
      if (!free_slot) free_slot = r;
      continue;
    }
    total++;
    if (strcmp(r->peer, peer) == 0) mine++;
  }
  if (total >= AN_GLOBAL_PER_MIN || mine >= AN_PER_PEER_PER_MIN || !free_slot || an->dialing >= AN_MAX_CONCURRENT)
    return false;
  snprintf(free_slot->peer, sizeof free_slot->peer, "%s", peer);
  free_slot->at_ms = now;
  return true;
}

static void req_answer(an_req *r, uint32_t status, const char *text, const multiaddr *addr) {
  if (r->answered || !r->s) return;
  r->answered = true;
  autonat_msg *m = calloc(1, sizeof *m);
  buf out;
  buf_init(&out, AUTONAT_MAX_MSG + 16);
  if (m) {
    m->type = AUTONAT_DIAL_RESPONSE;
    m->has_response = true;
    m->status = status;
    snprintf(m->status_text, sizeof m->status_text, "%s", text ? text : "");
    if (addr) {
      m->has_addr = true;
      m->addr = *addr;
    }
    if (autonat_encode(m, &out) == 0) (void)!p2p_stream_write(r->s, buf_ptr(&out), buf_len(&out));
  }
  buf_free(&out);
  free(m);
  p2p_stream_close_write(r->s);
  if (status == AUTONAT_OK) r->an->stats.dialed_ok++;
  else if (status == AUTONAT_E_DIAL_ERROR) r->an->stats.dialed_failed++;
  else r->an->stats.refused++;
  log_info("p2p autonat: answered", "{s:s, s:s, s:s}", "peer", r->peer, "status", autonat_status_name(status), "text",
           text ? text : "");
}

static void req_free_if_done(an_req *r) {
  if (r->s || r->dialing) return;
  p2p_autonat *an = r->an;
  for (an_req **pp = &an->reqs; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  buf_free(&r->in);
  free(r);
  an_unpend(an);
}

static void dial_next(an_req *r);

static void dialed_back(p2p_host *h, int err, const char *peer_id, uint64_t conn_id, void *ud) {
  an_req *r = ud;
  p2p_autonat *an = r->an;
  r->dialing = false;
  an->dialing--;
  an_unpend(an); /* the connect's callback */
  if (err == 0) {
    (void)p2p_host_close_conn(h, conn_id, true); /* it only had to exist */
    (void)peer_id;
    req_answer(r, AUTONAT_OK, "dialed back", &r->dials[r->next_dial - 1]);
  } else {
    snprintf(r->last_error, sizeof r->last_error, "%s", strerror(-err));
    dial_next(r);
  }
  req_free_if_done(r);
}

static void dial_next(an_req *r) {
  p2p_autonat *an = r->an;
  while (!r->answered && r->s && !an->closing && r->next_dial < r->n_dials) {
    char t[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8], a[MULTIADDR_STR_MAX];
    const multiaddr *ma = &r->dials[r->next_dial++];
    if (multiaddr_to_string(ma, a, sizeof a) != 0) continue;
    snprintf(t, sizeof t, "%s/p2p/%s", a, r->peer);
    p2p_connect_opts o = {.no_backoff = true, .timeout_ms = an->cfg.dial_timeout_ms};
    int rc = p2p_host_connect(an->h, t, &o, dialed_back, r);
    if (rc) {
      snprintf(r->last_error, sizeof r->last_error, "%s", strerror(-rc));
      continue;
    }
    r->dialing = true;
    an->dialing++;
    an->pending++;
    return;
  }
  if (!r->answered) req_answer(r, AUTONAT_E_DIAL_ERROR, r->last_error[0] ? r->last_error : "dial failed", NULL);
}

static void handle_request(an_req *r, const autonat_msg *m) {
  p2p_autonat *an = r->an;
  an->stats.served++;
  if (m->type != AUTONAT_DIAL || !m->has_dial) {
    req_answer(r, AUTONAT_E_BAD_REQUEST, "no Dial message", NULL);
    return;
  }
  peerid remote;
  if (!m->has_peer_id || peerid_parse(r->peer, strlen(r->peer), &remote) != 0 || !peerid_equal(&remote, &m->peer)) {
    req_answer(r, AUTONAT_E_BAD_REQUEST, "peer id mismatch", NULL);
    return;
  }
  if (p2p_stream_is_relayed(r->s)) {
    req_answer(r, AUTONAT_E_DIAL_REFUSED, "relayed connection", NULL);
    return;
  }
  multiaddr observed;
  if (multiaddr_parse(p2p_stream_remote_addr(r->s), &observed) != 0) {
    req_answer(r, AUTONAT_E_DIAL_REFUSED, "unknown remote address", NULL);
    return;
  }
  multiaddr ours[32];
  const char *la[32];
  size_t nl = p2p_host_announced_addrs(an->h, la, 32), no = 0;
  for (size_t i = 0; i < nl && i < 32; i++)
    if (multiaddr_parse(la[i], &ours[no]) == 0) no++;
  r->n_dials = autonat_dialable(&observed, m->addrs, m->n_addrs, ours, no, an->cfg.allow_private, r->dials);
  if (!r->n_dials) {
    req_answer(r, AUTONAT_E_DIAL_REFUSED, "no dialable address on the requester's IP", NULL);
    return;
  }
  if (!rate_ok(an, r->peer)) {
    req_answer(r, AUTONAT_E_DIAL_REFUSED, "rate limited", NULL);
    return;
  }
  dial_next(r);
}

static void req_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  an_req *r = ud;
  (void)s;
  if (r->answered || r->dialing || r->next_dial) return;
  if (buf_append(&r->in, d, n) != 0) {
    req_answer(r, AUTONAT_E_BAD_REQUEST, "message too large", NULL);
    return;
  }
  const uint8_t *body;
  size_t bl, used;
  int rc = autonat_frame_parse(buf_ptr(&r->in), buf_len(&r->in), &body, &bl, &used);
  if (rc == -EAGAIN) return;
  autonat_msg *m = malloc(sizeof *m);
  if (rc == 0) rc = m ? autonat_decode(body, bl, m) : -ENOMEM;
  if (rc) req_answer(r, rc == -ENOMEM ? AUTONAT_E_INTERNAL_ERROR : AUTONAT_E_BAD_REQUEST, "malformed message", NULL);
  else handle_request(r, m);
  free(m);
}

static void req_eof(p2p_stream *s, void *ud) {
  an_req *r = ud;
  if (!r->answered && !r->dialing) req_answer(r, AUTONAT_E_BAD_REQUEST, "no message", NULL);
  (void)s;
}

static void req_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  an_req *r = ud;
  r->s = NULL;
  req_free_if_done(r);
}

static const p2p_stream_callbacks req_cbs = {.on_data = req_data, .on_eof = req_eof, .on_close = req_close};

void p2p_autonat_serve(p2p_autonat *an, p2p_stream *s) {
  an_req *r = an->cfg.server && !an->closing ? calloc(1, sizeof *r) : NULL;
  if (!r) {
    p2p_stream_reset(s);
    return;
  }
  r->an = an;
  r->s = s;
  snprintf(r->peer, sizeof r->peer, "%s", p2p_stream_remote_peer(s));
  buf_init(&r->in, AUTONAT_MAX_MSG + 16);
  r->next = an->reqs;
  an->reqs = r;
  an->pending++;
  p2p_stream_set_callbacks(s, &req_cbs, r);
}

/* ---------------------------------------------------------------- life cycle */

int p2p_autonat_new(p2p_host *h, const p2p_autonat_config *cfg, p2p_autonat **out) {
  if (cfg->client && !cfg->candidates) return -EINVAL;
  p2p_autonat *an = calloc(1, sizeof *an);
  if (!an) return -ENOMEM;
  an->h = h;
  an->cfg = *cfg;
  if (!an->cfg.confidence) an->cfg.confidence = 3;
  if (!an->cfg.recheck_s) an->cfg.recheck_s = 900;
  if (!an->cfg.dial_timeout_ms) an->cfg.dial_timeout_ms = 10000;
  autonat_tally_init(&an->tally, an->cfg.confidence);
  *out = an;
  return 0;
}

static void an_finalize(p2p_autonat *an) {
  void (*done)(void *) = an->close_done;
  void *ud = an->close_ud;
  for (size_t i = 0; i < an->n_confirmed; i++) free(an->confirmed[i]);
  free(an);
  if (done) done(ud);
}

static void an_unpend(p2p_autonat *an) {
  CHECK(an->pending > 0);
  if (--an->pending == 0 && an->closing) an_finalize(an);
}

void p2p_autonat_close(p2p_autonat *an, void (*done)(void *ud), void *ud) {
  if (!an || an->closing) return;
  an->closing = true;
  an->close_done = done;
  an->close_ud = ud;
  withdraw_confirmed(an);
  an->pending++; /* hold while resetting */
  for (an_ask *a = an->asks, *next; a; a = next) {
    next = a->next;
    if (a->s) p2p_stream_reset(a->s);
  }
  for (an_req *r = an->reqs, *next; r; r = next) {
    next = r->next;
    if (r->s) p2p_stream_reset(r->s);
  }
  an_unpend(an);
}

void p2p_autonat_on_event(p2p_autonat *an, const p2p_event *ev) {
  if (an->closing) return;
  switch (ev->type) {
  case P2P_EV_PEER_IDENTIFIED:
  case P2P_EV_IDENTIFY_PUSH:
    maybe_ask(an, ev->peer_id);
    break;
  case P2P_EV_LISTEN_ADDRS_CHANGED:
    /* new addresses: the old votes said nothing about them (spec: re-check) */
    autonat_tally_reset(&an->tally);
    for (size_t i = 0; i < AN_MAX_PEERS; i++) an->peers[i].last_ms = 0;
    break;
  default:
    break;
  }
}

void p2p_autonat_tick(p2p_autonat *an) {
  if (an->closing) return;
  int64_t now = clock_mono_ms();
  for (an_ask *a = an->asks, *next; a; a = next) {
    next = a->next;
    if (a->s && now > a->deadline_ms) p2p_stream_reset(a->s);
  }
  /* re-ask servers whose last answer is older than recheck_s (connected ones) */
  if (!an->cfg.client) return;
  p2p_conn_info ci[32];
  size_t n = p2p_host_conns(an->h, NULL, ci, 32);
  for (size_t i = 0; i < n && i < 32; i++)
    if (!ci[i].relayed) maybe_ask(an, ci[i].peer_id);
}

json_t *p2p_autonat_status_json(const p2p_autonat *an) {
  p2p_reachability r = p2p_host_reachability(an->h);
  size_t ok = 0, fail = 0;
  for (size_t i = 0; i < an->tally.n; i++) {
    if (an->tally.votes[i].ok) ok++;
    else fail++;
  }
  json_t *conf = json_array();
  for (size_t i = 0; i < an->n_confirmed; i++) json_array_append_new(conf, json_string(an->confirmed[i]));
  return json_pack("{s:b, s:s, s:i, s:b, s:b, s:o, s:{s:I, s:I}, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
                   "supported", 1, "status", p2p_reachability_name(r), "code", (int)r, "client", an->cfg.client,
                   "server", an->cfg.server, "confirmed", conf, "votes", "ok", (json_int_t)ok, "error",
                   (json_int_t)fail, "confidence", (json_int_t)an->cfg.confidence, "counters", "asked",
                   (json_int_t)an->stats.asked, "answers_ok", (json_int_t)an->stats.ok, "answers_dial_error",
                   (json_int_t)an->stats.dial_error, "answers_other", (json_int_t)an->stats.other, "served",
                   (json_int_t)an->stats.served, "refused", (json_int_t)an->stats.refused, "dialed_back_ok",
                   (json_int_t)an->stats.dialed_ok, "dialed_back_failed", (json_int_t)an->stats.dialed_failed);
}
