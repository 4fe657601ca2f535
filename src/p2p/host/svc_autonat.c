/* svc_autonat.c — AutoNAT v1 client and server on the host (see svc_autonat.h). */
#include "p2p/host/svc_autonat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/host/autonat_common.h"
#include "p2p/proto/autonat.h"
#include "p2p/proto/autonat2.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define AN_MAX_CONFIRMED 8
#define AN_PER_PEER_PER_MIN 3
#define AN_GLOBAL_PER_MIN 30
#define AN_MAX_CONCURRENT 4
#define AN_REQUEST_TIMEOUT_MS 60000

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

struct p2p_autonat {
  p2p_host *h;
  p2p_autonat_config cfg;
  autonat_tally tally;
  int v2_reach;                    /* AutoNAT v2's verdict (0 none; p2p_reachability) */
  int reach;                       /* what we last told the host */
  autonat_peers peers;             /* servers we asked */
  an_ask *asks;
  an_req *reqs;
  unsigned dialing;                /* dial-backs in flight */
  autonat_rate rate;               /* requests accepted in the last minute */
  char *confirmed[AN_MAX_CONFIRMED];
  size_t n_confirmed;
  autonat_life life;               /* pending, closing */
  struct {
    uint64_t asked, ok, dial_error, other, served, refused, dialed_ok, dialed_failed;
  } stats;
};

static void an_unpend(p2p_autonat *an);

/* ---------------------------------------------------------------- client */

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
  if (!an || an->life.closing) return;
  if (reachable_addr) confirm_addr(an, reachable_addr);
  an->v2_reach = reach;
  apply_reach(an);
}

static void ask_end(an_ask *a) {
  p2p_autonat *an = a->an;
  autonat_peers_done(&an->peers, a->server);
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
  if (!s || an->life.closing) {
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
  if (!an->cfg.client || an->life.closing) return;
  p2p_peer_info pi;
  if (p2p_host_peer_info(an->h, peer_id, &pi) != 0) return;
  if (!autonat_peer_speaks(&pi, AUTONAT_PROTOCOL)) return;
  if (an->cfg.prefer_v2 && autonat_peer_speaks(&pi, AUTONAT2_DIAL_REQUEST_PROTOCOL)) return; /* svc_autonat2 asks it */
  int64_t now = clock_mono_ms();
  autonat_peer *p = autonat_peers_due(&an->peers, an->h, peer_id, now, (int64_t)an->cfg.recheck_s * 1000);
  if (!p) return; /* not direct (cannot be dialed back), in flight, or asked within recheck_s */
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
  autonat_peers_asked(p, now);
  a->next = an->asks;
  an->asks = a;
  an->life.pending++;
}

static void ask_direct_peer(void *ud, const char *peer_id) { maybe_ask(ud, peer_id); }

/* ---------------------------------------------------------------- server */

static bool rate_ok(p2p_autonat *an, const char *peer) {
  int64_t now = clock_mono_ms();
  autonat_rate_slot *slot = autonat_rate_room(&an->rate, peer, now, AN_GLOBAL_PER_MIN, AN_PER_PEER_PER_MIN);
  if (!slot || an->dialing >= AN_MAX_CONCURRENT) return false;
  autonat_rate_take(slot, peer, now);
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
  while (!r->answered && r->s && !an->life.closing && r->next_dial < r->n_dials) {
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
    an->life.pending++;
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
  an_req *r = an->cfg.server && !an->life.closing ? calloc(1, sizeof *r) : NULL;
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
  an->life.pending++;
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
  void (*done)(void *) = an->life.close_done;
  void *ud = an->life.close_ud;
  for (size_t i = 0; i < an->n_confirmed; i++) free(an->confirmed[i]);
  free(an);
  if (done) done(ud);
}

static void an_unpend(p2p_autonat *an) {
  if (autonat_life_unpend(&an->life)) an_finalize(an);
}

void p2p_autonat_close(p2p_autonat *an, void (*done)(void *ud), void *ud) {
  if (!an || !autonat_life_close(&an->life, done, ud)) return; /* held while resetting */
  withdraw_confirmed(an);
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
  if (an->life.closing) return;
  switch (ev->type) {
  case P2P_EV_PEER_IDENTIFIED:
  case P2P_EV_IDENTIFY_PUSH:
    maybe_ask(an, ev->peer_id);
    break;
  case P2P_EV_LISTEN_ADDRS_CHANGED:
    /* new addresses: the old votes said nothing about them (spec: re-check) */
    autonat_tally_reset(&an->tally);
    autonat_peers_forget_times(&an->peers);
    break;
  default:
    break;
  }
}

void p2p_autonat_tick(p2p_autonat *an) {
  if (an->life.closing) return;
  int64_t now = clock_mono_ms();
  for (an_ask *a = an->asks, *next; a; a = next) {
    next = a->next;
    if (a->s && now > a->deadline_ms) p2p_stream_reset(a->s);
  }
  /* re-ask servers whose last answer is older than recheck_s (connected ones) */
  if (!an->cfg.client) return;
  autonat_each_direct_peer(an->h, ask_direct_peer, an);
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
