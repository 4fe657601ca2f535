/* server.c — /mcp+p2p/1.0.0 and legacy NDJSON stream handlers on the host (see server.h). */
#include "service/server.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/frame.h"
#include "service/mcpp.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define SRV_MAX_PEERS 4096  /* peer entries kept (idle ones are dropped past this) */
#define SRV_WRITE_CHUNK (64u * 1024u)
#define SRV_KEEP_OUT_CAP (256u * 1024u) /* an empty output buffer larger than this is released */
#define SRV_LINGER_MS 5000u             /* a finished stream the peer does not close is reset after */

typedef struct peer_entry {
  char id[AUTH_MAX_PEER_ID + 1];
  unsigned streams;         /* service streams open now */
  unsigned limited_streams; /* of those, streams whose caller holds no scope (yet) */
  svc_rate rate;            /* frames of its callers that hold no scope */
  svc_rate auth_rate;       /* … that hold one (used when auth_rate_per_s > 0) */
  uint64_t last_use;
  size_t held, held_out;    /* bytes its streams hold and owe / of which output (budgets) */
  size_t inflight;          /* requests in flight over all its streams */
  size_t refused_est;       /* the last answer a budget refused, decaying: the charge of its
                               next calls (a stream that never got an answer through has no
                               recent reply size of its own) */
  bool authorized;          /* a stream of this peer held a scope (trusted, or a token
                               accepted): its next streams are not limited, and the host keeps
                               connection slots for it */
} peer_entry;

enum { ST_MCPP = 1, ST_LEGACY = 2 };

typedef struct svc_stream {
  svc_server *srv;
  p2p_stream *s;
  peer_entry *peer;
  int kind;
  struct svc_stream *prev, *next;
  bool linked;
  bool write_blocked, closed_write;
  bool flush_pending; /* output appeared from a completion: flushed from the server's idle */
  bool stop_seen;     /* told the server is stopping */
  bool budget_paused; /* reading stopped because a budget is used up */
  bool pause_own;     /* … its own or its peer's (not only the process's): the frame deadline
                         still runs, the peer holds the bytes that fill it */
  bool has_held;      /* its conn holds calls for its peer's share of the workers */
  bool limited;       /* counted in peer->limited_streams */
  bool remembered;    /* told the host its peer is authorized (p2p_host_remember_authorized) */
  size_t held, held_out; /* what this stream last added to the budgets */
  size_t inflight;       /* … and to its peer's requests in flight */
  size_t refused_est;    /* as peer_entry's, for this stream */
  uint64_t created_ms, last_ms; /* loop time: opened, last bytes received */
  uint64_t fin_ms;              /* loop time our FIN went out (0 = not yet) */
  /* ST_MCPP */
  svc_mcpp_conn *conn;
  /* ST_LEGACY */
  svc_ndjson_dec nd;
  buf lout;
  auth_ctx lauth;
  mcp_call *lcall;
  bool lstarted, ldone;
} svc_stream;

struct svc_server {
  svc_server_opts o;
  peer_entry *peers;
  size_t n_peers;
  size_t held, held_out;   /* every stream's bytes held and owed / output (process budget) */
  size_t n_budget_paused;  /* streams waiting for a budget */
  size_t n_held_streams;   /* streams holding calls for their peer's share of the workers */
  bool resume_due;         /* a budget may have room again: look at the paused streams */
  uint64_t budget_pauses, budget_refusals, stranger_refusals, busy_holds; /* counters */
  uint64_t budget_holds; /* calls held because a budget had no room for their answer */
  size_t held_max, held_out_max; /* high-water marks of held / held_out since start */
  /* the same, published for other threads (svc_server_budget_json: the status op's detail) */
  _Atomic size_t pub_held, pub_held_out, pub_held_max, pub_held_out_max, pub_paused;
  _Atomic uint64_t pub_pauses, pub_refusals;
  uint64_t use_clock;
  svc_stream *streams;
  size_t n_streams;
  bool stopping;
  uv_timer_t timer;
  bool timer_init;
  uv_timer_t sweep; /* init / idle timeouts, every second */
  bool sweep_open, free_requested;
  uv_idle_t flush; /* deferred flushes (never inside a session callback) */
  bool flush_open;
  int closing;      /* stop: handles still closing */
  int64_t stop_deadline;
  void (*stop_done)(void *);
  void *stop_ud;
};

/* ---------- peers ---------- */

static peer_entry *peer_get(svc_server *srv, const char *id) {
  if (!id) id = "";
  for (size_t i = 0; i < srv->n_peers; i++)
    if (strcmp(srv->peers[i].id, id) == 0) {
      srv->peers[i].last_use = ++srv->use_clock;
      return &srv->peers[i];
    }
  if (srv->n_peers == SRV_MAX_PEERS) {
    /* drop the least recently used idle entry */
    size_t victim = SIZE_MAX;
    for (size_t i = 0; i < srv->n_peers; i++)
      if (srv->peers[i].streams == 0 && (victim == SIZE_MAX || srv->peers[i].last_use < srv->peers[victim].last_use))
        victim = i;
    if (victim == SIZE_MAX) return NULL;
    /* Streams point at their entries: only idle entries move, and the last one moves only if
     * it is idle too — otherwise overwrite the victim in place. */
    peer_entry *last = &srv->peers[srv->n_peers - 1];
    if (last->streams == 0) {
      srv->peers[victim] = *last;
      srv->n_peers--;
    } else {
      peer_entry *p = &srv->peers[victim];
      memset(p, 0, sizeof *p);
      snprintf(p->id, sizeof p->id, "%s", id);
      svc_rate_init(&p->rate, srv->o.rate_burst, srv->o.rate_per_s);
      svc_rate_init(&p->auth_rate, srv->o.auth_rate_burst, srv->o.auth_rate_per_s);
      p->last_use = ++srv->use_clock;
      return p;
    }
  }
  peer_entry *p = &srv->peers[srv->n_peers++];
  memset(p, 0, sizeof *p);
  snprintf(p->id, sizeof p->id, "%s", id);
  svc_rate_init(&p->rate, srv->o.rate_burst, srv->o.rate_per_s);
  svc_rate_init(&p->auth_rate, srv->o.auth_rate_burst, srv->o.auth_rate_per_s);
  p->last_use = ++srv->use_clock;
  return p;
}

/* ---------- budgets ---------- */

/* The budget figures for other threads (relaxed: each is a figure of its own). */
static void publish(svc_server *srv) {
  atomic_store_explicit(&srv->pub_held, srv->held, memory_order_relaxed);
  atomic_store_explicit(&srv->pub_held_out, srv->held_out, memory_order_relaxed);
  atomic_store_explicit(&srv->pub_held_max, srv->held_max, memory_order_relaxed);
  atomic_store_explicit(&srv->pub_held_out_max, srv->held_out_max, memory_order_relaxed);
  atomic_store_explicit(&srv->pub_paused, srv->n_budget_paused, memory_order_relaxed);
  atomic_store_explicit(&srv->pub_pauses, srv->budget_pauses, memory_order_relaxed);
  atomic_store_explicit(&srv->pub_refusals, srv->budget_refusals, memory_order_relaxed);
}

/* Brings the budgets up to date with what the stream holds now: its conn's unsent output,
 * partial frame and in-flight charges (or the legacy line and reply) plus the host's send
 * queue. Any change that lowers a total may let a paused stream read again. */
static void st_account(svc_stream *st) {
  if (!st->linked) return;
  svc_server *srv = st->srv;
  size_t q = st->s ? p2p_stream_send_queued(st->s) : 0, all, out, infl;
  bool has_held = false;
  if (st->kind == ST_MCPP) {
    svc_mcpp_figures f;
    svc_mcpp_get_figures(st->conn, &f);
    out = f.out + q;
    all = f.held + q;
    infl = f.working; /* waits hold no worker */
    has_held = f.held_calls > 0;
  } else {
    out = buf_len(&st->lout) + q;
    all = out + buf_len(&st->nd.line);
    infl = st->lcall ? 1 : 0;
  }
  if (has_held != st->has_held) {
    st->has_held = has_held;
    if (has_held) srv->n_held_streams++;
    else srv->n_held_streams--;
  }
  if (infl != st->inflight) {
    if (infl < st->inflight && (srv->n_budget_paused || srv->n_held_streams)) srv->resume_due = true;
    if (st->peer) st->peer->inflight = st->peer->inflight - st->inflight + infl;
    st->inflight = infl;
  }
  if (all == st->held && out == st->held_out) return;
  if ((all < st->held || out < st->held_out) && (srv->n_budget_paused || srv->n_held_streams)) srv->resume_due = true;
  srv->held = srv->held - st->held + all;
  srv->held_out = srv->held_out - st->held_out + out;
  if (st->peer) {
    st->peer->held = st->peer->held - st->held + all;
    st->peer->held_out = st->peer->held_out - st->held_out + out;
  }
  st->held = all;
  st->held_out = out;
  if (srv->held > srv->held_max) srv->held_max = srv->held;
  if (srv->held_out > srv->held_out_max) srv->held_out_max = srv->held_out;
  publish(srv);
}

/* The peer's requests that occupy (or wait for) a worker: those in flight but its TaskQueue
 * waits and waiting claims (svc_mcpp_waiting), which have their own caps. */
static size_t peer_busy(svc_server *srv, peer_entry *p) {
  (void)srv;
  return p->inflight;
}

/* Room under budget for what one more call would cost (next): anything while nothing is held
 * (a reply larger than the budget must still get through, alone). */
static bool fits(size_t held, size_t next, size_t budget) { return held == 0 || held + next < budget; }

/* The process budget P keeps a reserve of P/8 above it for peers that hold little (at most
 * P/64 each): when peers that never read fill P together, a peer that reads its answers is
 * still served (issue 9 item 2: "other peers still served"), and the total stays under
 * P + P/8 whatever the number of peers. */
static bool fits_process(const svc_server *srv, size_t held_total, size_t peer_held, size_t next) {
  size_t P = srv->o.process_budget;
  if (fits(held_total, next, P)) return true;
  return peer_held + next <= P / 64 && held_total + next < P + P / 8;
}

/* May the stream take more input now? Only with room for one more call at the size of its
 * recent replies: a peer that does not read its output must not make the node work on calls
 * whose answers can only be output_budget_exceeded (issue 9 item 2 kept 2048 such calls
 * going, each a 1 MB cache read). Loop thread (mcpp's may_read). */
static size_t st_next_charge(const svc_stream *st) {
  if (st->kind != ST_MCPP) return 0;
  size_t c = svc_mcpp_call_charge(st->conn);
  if (st->refused_est > c) c = st->refused_est;
  if (st->peer && st->peer->refused_est > c) c = st->peer->refused_est;
  return c;
}

/* The stream's or its peer's own budget is used up (not the process's: others' doing). */
static bool st_over_own(const svc_stream *st) {
  size_t next = st_next_charge(st);
  return !fits(st->held, next, st->srv->o.stream_budget) ||
         (st->peer && !fits(st->peer->held, next, st->srv->o.peer_budget));
}

/* Room in every budget for one more call of this stream. */
static bool st_room(const svc_stream *st) {
  const svc_server *srv = st->srv;
  return !st_over_own(st) && fits_process(srv, srv->held, st->peer ? st->peer->held : st->held, st_next_charge(st));
}

static bool st_may_read(void *ud) {
  svc_stream *st = ud;
  st_account(st);
  return st_room(st);
}

/* May the stream start one more call (mcpp's may_start)? Not while its peer has
 * max_inflight_per_peer requests in flight over all its streams (waits aside), and not while
 * a budget has no room for the call's answer — a peer that never reads would otherwise keep
 * workers computing answers that can only be refused (issue 9 item 2: 23 s of CPU in a 12 s
 * attack). The call is then held by its conn until one ends or output drains
 * (resume_paused), and the stream keeps reading what it has room for (a cancellation still
 * gets through, even for a held call). */
static bool st_may_start(void *ud) {
  svc_stream *st = ud;
  st_account(st);
  svc_server *srv = st->srv;
  if (!st_room(st)) {
    srv->budget_holds++;
    return false;
  }
  if (!st->peer || peer_busy(srv, st->peer) < srv->o.max_inflight_per_peer) return true;
  srv->busy_holds++;
  return false;
}

/* st_may_start right after st_may_read said yes for the same frame, nothing counted having
 * changed since (mcpp's may_start_unchanged): st_account would find what st_may_read settled
 * and st_room would say yes again, so only the peer's share of the workers is left to ask. */
static bool st_may_start_unchanged(void *ud) {
  svc_stream *st = ud;
  svc_server *srv = st->srv;
  if (!st->peer || peer_busy(srv, st->peer) < srv->o.max_inflight_per_peer) return true;
  srv->busy_holds++;
  return false;
}

/* May an outgoing message of len bytes be buffered (mcpp's admit_output)? Output alone counts
 * here (the calls' charges are what the reply replaces). A stream with nothing waiting may
 * always take one message, however large (up to the frame cap), within its peer's and the
 * process's budgets, which are strict (the process's with the reserve of fits_process). */
static bool st_admit_output(void *ud, size_t len) {
  svc_stream *st = ud;
  st_account(st);
  svc_server *srv = st->srv;
  size_t P = srv->o.process_budget, peer_out = st->peer ? st->peer->held_out : st->held_out;
  bool proc = srv->held_out + len <= P || (peer_out + len <= P / 64 && srv->held_out + len < P + P / 8);
  bool ok = (st->held_out == 0 || st->held_out + len <= srv->o.stream_budget) &&
            (!st->peer || st->peer->held_out + len <= srv->o.peer_budget) && proc;
  if (!ok) {
    srv->budget_refusals++;
    /* what was refused is what the stream's (and its peer's) next calls would cost: hold
     * them (st_may_start) instead of computing more answers that cannot be sent */
    if (len > st->refused_est) st->refused_est = len;
    if (st->peer && len > st->peer->refused_est) st->peer->refused_est = len;
    publish(srv);
  } else { /* answers get through again: the charge decays (as mcpp's reply estimate) */
    st->refused_est -= st->refused_est / 4;
    if (st->peer) st->peer->refused_est -= st->peer->refused_est / 4;
    /* counted now, not at this stream's next st_account: another stream's answer admitted
     * before then must see it (with the pools serving callers in turn, answers of many
     * streams finish together and the process budget was crossed by ~1 MiB); st_account
     * settles the figure to what the stream really holds */
    srv->held_out += len;
    st->held_out += len;
    if (st->peer) st->peer->held_out += len;
    if (srv->held_out > srv->held_out_max) srv->held_out_max = srv->held_out;
  }
  return ok;
}

/* ---------- streams ---------- */

static void st_unlink(svc_stream *st) {
  if (!st->linked) return;
  svc_server *srv = st->srv;
  /* the stream's bytes leave the budgets with it (it may linger until the host closes it) */
  srv->held -= st->held;
  srv->held_out -= st->held_out;
  if (st->peer) {
    st->peer->held -= st->held;
    st->peer->held_out -= st->held_out;
  }
  if (st->peer) st->peer->inflight -= st->inflight;
  if ((st->held || st->inflight) && (srv->n_budget_paused || srv->n_held_streams)) srv->resume_due = true;
  if (st->has_held) srv->n_held_streams--;
  st->has_held = false;
  st->held = st->held_out = 0;
  st->inflight = 0;
  if (st->budget_paused) srv->n_budget_paused--;
  st->budget_paused = false;
  if (st->prev) st->prev->next = st->next;
  else srv->streams = st->next;
  if (st->next) st->next->prev = st->prev;
  st->linked = false;
  srv->n_streams--;
  if (st->peer && st->peer->streams) st->peer->streams--;
  if (st->peer && st->limited && st->peer->limited_streams) st->peer->limited_streams--;
  st->limited = false;
  publish(srv);
}

static buf *st_out(svc_stream *st) { return st->kind == ST_MCPP ? svc_mcpp_output(st->conn) : &st->lout; }

static bool st_finished(svc_stream *st) { return st->kind == ST_MCPP ? svc_mcpp_done(st->conn) : st->ldone; }

/* Writes what the stream's output holds (until the host's queue is full) and sends the FIN
 * once the conn is done. Returns false when st may be gone (the FIN completed the stream, whose
 * on_close freed it): the caller must not touch st then. */
static void srv_kick(svc_server *srv);

static bool st_flush(svc_stream *st) {
  if (!st->s) return true;
  buf *out = st_out(st);
  while (buf_len(out) && !st->write_blocked) {
    size_t n = buf_len(out) < SRV_WRITE_CHUNK ? buf_len(out) : SRV_WRITE_CHUNK;
    int rc = p2p_stream_write(st->s, buf_ptr(out), n);
    if (rc == -ENOBUFS) {
      st->write_blocked = true;
      break;
    }
    if (rc < 0) { /* write side gone: nothing more can be sent */
      buf_reset(out);
      break;
    }
    buf_consume(out, n);
    if (rc == 1) st->write_blocked = true;
  }
  if (st->write_blocked) p2p_stream_pause_read(st->s, true);
  /* a large reply's memory goes back once it is written */
  if (!buf_len(out) && buf_cap(out) > SRV_KEEP_OUT_CAP) buf_free(out);
  st_account(st);
  if (st->srv->resume_due) srv_kick(st->srv); /* room again: held calls and paused streams go on */
  if (!buf_len(out) && st_finished(st) && !st->closed_write) {
    st->closed_write = true;
    st->fin_ms = uv_now(st->srv->o.loop);
    p2p_stream_close_write(st->s); /* may complete the stream: on_close frees st */
    return false;
  }
  return true;
}

static void st_on_writable(p2p_stream *s, void *ud) {
  svc_stream *st = ud;
  (void)s;
  st->write_blocked = false;
  if (st->kind == ST_MCPP) svc_mcpp_restart_frame_clock(st->conn); /* it waited for the peer to read */
  if (!st_flush(st)) return;
  if (!st->write_blocked && !st->budget_paused && st->s) p2p_stream_pause_read(st->s, false);
}

static void st_free(svc_stream *st) {
  st_unlink(st);
  if (st->kind == ST_MCPP) {
    svc_mcpp_free(st->conn); /* detaches calls in flight */
  } else {
    if (st->lcall) mcp_dispatch_detach(st->lcall);
    svc_ndjson_dec_free(&st->nd);
    buf_free(&st->lout);
  }
  free(st);
}

static void st_on_close(p2p_stream *s, int err, void *ud) {
  svc_stream *st = ud;
  (void)s;
  (void)err;
  st->s = NULL;
  st_free(st);
}

/* ---------- /mcp+p2p/1.0.0 ---------- */

/* Output appeared inside a session callback: flush later, from the loop (a flush may close the
 * stream, which frees the session). */
static void resume_paused(svc_server *srv);

static void flush_cb(uv_idle_t *h) {
  svc_server *srv = h->data;
  uv_idle_stop(h);
again:
  for (svc_stream *st = srv->streams; st; st = st->next)
    if (st->flush_pending) {
      st->flush_pending = false;
      st_flush(st); /* may free st, or others on the same connection: rescan */
      goto again;
    }
  if (srv->resume_due) resume_paused(srv);
}

/* Streams paused by a budget read again once there is room (their held-back bytes come first);
 * calls held for a peer's share of the workers start as its calls end. */
static void resume_paused(svc_server *srv) {
  srv->resume_due = false;
again_held:
  for (svc_stream *st = srv->streams; st && srv->n_held_streams; st = st->next) {
    if (!st->has_held || !st->s) continue;
    if (svc_mcpp_resume(st->conn) == 0) continue; /* the peer is still busy */
    st_account(st);
    if (!st_flush(st)) goto again_held; /* st may be gone */
  }
again:
  for (svc_stream *st = srv->streams; st && srv->n_budget_paused; st = st->next) {
    if (!st->budget_paused || !st_may_read(st)) continue;
    st->budget_paused = false;
    srv->n_budget_paused--;
    if (st->kind == ST_MCPP) svc_mcpp_restart_frame_clock(st->conn); /* it waited for us, not the peer */
    if (st->s && !st->write_blocked) {
      p2p_stream_pause_read(st->s, false); /* delivers now: may close streams, rescan */
      goto again;
    }
  }
}

/* Schedules a flush / resume round from the loop (never inside a session callback). */
static void srv_kick(svc_server *srv) {
  if (srv->flush_open) uv_idle_start(&srv->flush, flush_cb);
}

static void mcpp_on_output(void *ud) {
  svc_stream *st = ud;
  st->flush_pending = true;
  srv_kick(st->srv);
}

/* The stream's caller gained a scope (a token, or trusted from the start): it no longer counts
 * as a limited stream, and the peer is known to be authorized. */
static void st_check_auth(svc_stream *st) {
  if (!st->linked || !st->peer || st->kind != ST_MCPP) return;
  if (auth_scopes_empty(&svc_mcpp_auth(st->conn)->scopes)) return;
  st->peer->authorized = true;
  if (!st->remembered && st->srv->o.host) { /* once a stream: its next handshakes are known ones */
    st->remembered = true;
    p2p_host_remember_authorized(st->srv->o.host, st->peer->id);
  }
  if (st->limited) {
    st->limited = false;
    if (st->peer->limited_streams) st->peer->limited_streams--;
  }
}

static void mcpp_on_data(p2p_stream *s, const uint8_t *data, size_t len, void *ud) {
  svc_stream *st = ud;
  st->last_ms = uv_now(st->srv->o.loop);
  size_t used = len;
  if (!svc_mcpp_done(st->conn)) {
    int rc = svc_mcpp_feed_some(st->conn, data, len, &used);
    (void)rc; /* -EPIPE: input stopped; st_flush sends what is left then FIN */
    st_check_auth(st);
  }
  if (used < len && st->linked) {
    /* a budget is used up: the rest stays in the host (not credited to the peer's window)
     * until there is room again */
    p2p_stream_unread(s, len - used);
    if (!st->budget_paused) {
      st->budget_paused = true;
      st->srv->n_budget_paused++;
      st->srv->budget_pauses++;
      publish(st->srv);
    }
    st->pause_own = st_over_own(st);
    p2p_stream_pause_read(s, true);
  }
  st_flush(st);
}

static void mcpp_on_eof(p2p_stream *s, void *ud) {
  svc_stream *st = ud;
  (void)s;
  svc_mcpp_eof(st->conn);
  st_flush(st);
}

static const p2p_stream_callbacks mcpp_cbs = {mcpp_on_data, mcpp_on_eof, st_on_writable, st_on_close};

/* Whether the PeerId alone (the Noise-proven identity, before any token) holds a scope, or the
 * peer already showed one on an earlier stream. */
static bool peer_is_known(svc_server *srv, peer_entry *peer, const char *remote) {
  if (peer && peer->authorized) return true;
  auth_ctx a;
  auth_policy_peer_ctx(srv->o.policy, remote, &a);
  return !auth_scopes_empty(&a.scopes);
}

static svc_stream *st_new(svc_server *srv, p2p_stream *s, int kind) {
  const char *remote = p2p_stream_remote_peer(s);
  peer_entry *peer = peer_get(srv, remote);
  bool limited = !peer_is_known(srv, peer, remote);
  const char *why = srv->stopping                                      ? "stopping"
                    : !peer || peer->streams >= srv->o.max_streams_per_peer ? "max_streams_per_peer"
                    : limited && peer->limited_streams >= srv->o.stranger_max_streams ? "stranger_max_streams"
                                                                                      : NULL;
  if (why) {
    if (limited && peer && peer->streams < srv->o.max_streams_per_peer) srv->stranger_refusals++;
    log_write(LOG_NOTICE, "service stream refused", "{s:s, s:s}", "peer", remote ? remote : "", "reason", why);
    p2p_stream_reset(s);
    return NULL;
  }
  svc_stream *st = calloc(1, sizeof *st);
  if (!st) {
    p2p_stream_reset(s);
    return NULL;
  }
  st->srv = srv;
  st->s = s;
  st->peer = peer;
  st->kind = kind;
  st->created_ms = st->last_ms = uv_now(srv->o.loop);
  peer->streams++;
  if (limited) {
    st->limited = true;
    peer->limited_streams++;
  }
  st->next = srv->streams;
  if (srv->streams) srv->streams->prev = st;
  srv->streams = st;
  st->linked = true;
  srv->n_streams++;
  return st;
}

static void mcpp_handler(p2p_stream *s, void *ud) {
  svc_server *srv = ud;
  svc_stream *st = st_new(srv, s, ST_MCPP);
  if (!st) return;
  svc_mcpp_env env = {0};
  env.peer_id = p2p_host_peer_id(srv->o.host);
  env.policy = srv->o.policy;
  env.dispatcher = srv->o.dispatcher;
  env.tasks = srv->o.tasks;
  env.max_frame_bytes = srv->o.max_frame_bytes;
  env.max_frames = srv->o.max_frames;
  env.rate_capacity = srv->o.rate_burst;
  env.rate_refill_per_s = srv->o.rate_per_s;
  if (srv->o.auth_rate_per_s > 0) {
    env.auth_rate_capacity = srv->o.auth_rate_burst;
    env.auth_rate_refill_per_s = srv->o.auth_rate_per_s;
    env.auth_rate = &st->peer->auth_rate;
  }
  env.call_timeout_ms = srv->o.call_timeout_ms;
  env.trust_tiers = srv->o.trust_tiers;
  env.stranger_max_frame_bytes = srv->o.stranger_max_frame_bytes;
  env.may_read = st_may_read;
  env.may_start = st_may_start;
  env.may_start_unchanged = st_may_start_unchanged;
  env.admit_output = st_admit_output;
  env.on_output = mcpp_on_output;
  env.ud = st;
  st->conn = svc_mcpp_new(&env, p2p_stream_remote_peer(s), &st->peer->rate);
  if (!st->conn) {
    st_unlink(st);
    free(st);
    p2p_stream_reset(s);
    return;
  }
  st_check_auth(st);
  p2p_stream_set_callbacks(s, &mcpp_cbs, st);
}

/* ---------- legacy NDJSON ---------- */

static void legacy_reply(svc_stream *st, json_t *reply) {
  if (reply) {
    if (svc_ndjson_encode(&st->lout, reply) != 0) buf_reset(&st->lout);
    json_decref(reply);
  }
  st->ldone = true;
  st_flush(st);
}

static json_t *legacy_error(svc_stream *st, const char *code) {
  return json_pack("{s:b, s:s, s:s}", "ok", 0, "error", code, "peer_id", p2p_host_peer_id(st->srv->o.host));
}

static void legacy_call_done(void *ud, const mcp_call_outcome *out) {
  svc_stream *st = ud;
  st->lcall = NULL;
  json_t *res = json_object_get(out->envelope, "result");
  if (out->status == MCP_DISPATCH_OK && json_is_object(res)) {
    legacy_reply(st, json_incref(res));
  } else {
    legacy_reply(st, legacy_error(st, out->status == MCP_DISPATCH_TIMEOUT ? "timeout"
                                      : out->status == MCP_DISPATCH_BUSY  ? "busy"
                                                                          : "internal_error"));
  }
}

static void legacy_start(svc_stream *st) {
  json_t *msg = svc_ndjson_dec_take(&st->nd);
  st->lstarted = true;
  if (st->peer && !svc_rate_take(&st->peer->rate, clock_mono_us())) {
    /* one request per stream, but streams come from the same per-peer bucket */
    json_decref(msg);
    st->lstarted = false;
    legacy_reply(st, legacy_error(st, "rate_limited"));
    return;
  }
  auth_policy_peer_ctx(st->srv->o.policy, p2p_stream_remote_peer(st->s), &st->lauth);
  st->lauth.transport = AUTH_TR_TASKQUEUE;
  /* the op table checks the message's credentials again, and refuses a bad one (audited) */
  (void)taskq_present_msg_token(st->srv->o.policy, msg, &st->lauth);
  mcp_call_request req = {0};
  req.tool = TASKQ_RPC_TOOL;
  req.args = msg;
  req.auth = &st->lauth;
  req.remote = true;
  int rc = mcp_dispatch_start(st->srv->o.dispatcher, &req, legacy_call_done, st, &st->lcall);
  json_decref(msg);
  if (rc < 0) legacy_reply(st, legacy_error(st, "internal_error"));
}

static void legacy_status(svc_stream *st, svc_frame_status fs) {
  if (st->lstarted || st->ldone) return;
  if (fs == SVC_FRAME_READY) legacy_start(st);
  else if (fs == SVC_FRAME_EMPTY) legacy_reply(st, NULL); /* nothing said: close without a reply */
  else if (fs < 0) legacy_reply(st, legacy_error(st, svc_frame_status_str(fs)));
}

static void legacy_on_data(p2p_stream *s, const uint8_t *data, size_t len, void *ud) {
  svc_stream *st = ud;
  (void)s;
  st->last_ms = uv_now(st->srv->o.loop);
  if (st->lstarted || st->ldone) return; /* one request per stream */
  legacy_status(st, svc_ndjson_dec_feed(&st->nd, data, len));
  st_account(st);
}

static void legacy_on_eof(p2p_stream *s, void *ud) {
  svc_stream *st = ud;
  (void)s;
  if (!st->lstarted && !st->ldone) legacy_status(st, svc_ndjson_dec_finish(&st->nd));
}

static const p2p_stream_callbacks legacy_cbs = {legacy_on_data, legacy_on_eof, st_on_writable, st_on_close};

static void legacy_handler(p2p_stream *s, void *ud) {
  svc_server *srv = ud;
  svc_stream *st = st_new(srv, s, ST_LEGACY);
  if (!st) return;
  /* a peer with no scope gets the small limit (its token, if any, is inside the line) */
  svc_ndjson_dec_init(&st->nd, st->limited && srv->o.stranger_max_frame_bytes ? srv->o.stranger_max_frame_bytes
                                                                              : srv->o.max_frame_bytes);
  buf_init(&st->lout, 64u * 1024 * 1024);
  p2p_stream_set_callbacks(s, &legacy_cbs, st);
}

/* ---------- timeouts ---------- */

static void sweep_tick(uv_timer_t *t) {
  svc_server *srv = t->data;
  uint64_t now = uv_now(srv->o.loop);
  int64_t mono = clock_mono_ms();
  if (srv->n_budget_paused || srv->n_held_streams) srv->resume_due = true; /* a send queue may have drained unseen */
  svc_stream *st = srv->streams;
  while (st) {
    svc_stream *next = st->next;
    const char *why = NULL;
    if (st->kind == ST_MCPP) {
      int64_t since = svc_mcpp_partial_since_ms(st->conn);
      if (since && (!st->budget_paused || st->pause_own) && !st->write_blocked && mono - since > (int64_t)srv->o.frame_timeout_ms && st->s) {
        /* a frame whose header came must be whole in time (a partial frame is not activity):
         * answered frame_timeout, input stops, what was read is still answered */
        log_write(LOG_INFO, "service stream: frame timeout", "{s:s, s:I}", "peer", st->peer ? st->peer->id : "",
                  "held", (json_int_t)st->held);
        svc_mcpp_stop_input(st->conn, "frame_timeout");
        if (st->budget_paused) { /* what the host holds for it is dropped now */
          st->budget_paused = false;
          srv->n_budget_paused--;
          if (!st->write_blocked) p2p_stream_pause_read(st->s, false);
        }
        st_flush(st); /* may close the stream: the sweep goes on from the next one */
        st = next;
        continue;
      }
      if (!svc_mcpp_initialized(st->conn) && now - st->created_ms > srv->o.init_timeout_ms) why = "init_timeout";
      else if (svc_mcpp_inflight(st->conn) == 0 && now - st->last_ms > srv->o.idle_timeout_ms) why = "idle_timeout";
    } else if (!st->lstarted && !st->ldone && now - st->created_ms > srv->o.init_timeout_ms) {
      why = "init_timeout";
    }
    /* answered everything and sent our FIN, but the peer keeps its side open: its input is
     * ignored, so the stream only holds memory (what the host buffers for it) */
    if (!why && st->closed_write && st->fin_ms && now - st->fin_ms > SRV_LINGER_MS && st->s &&
        p2p_stream_send_queued(st->s) == 0)
      why = "linger";
    if (why && st->s) {
      log_write(LOG_INFO, "service stream closed", "{s:s, s:s}", "peer", st->peer ? st->peer->id : "", "reason", why);
      p2p_stream *s = st->s;
      st_unlink(st); /* on_close frees it */
      p2p_stream_reset(s);
    }
    st = next;
  }
  if (srv->resume_due) srv_kick(srv);
}

static void srv_release(svc_server *srv) {
  free(srv->peers);
  free(srv);
}

static void handle_closed(svc_server *srv) {
  if (srv->free_requested) {
    if (!srv->sweep_open && !srv->flush_open) srv_release(srv);
  } else if (--srv->closing == 0 && srv->stop_done) {
    srv->stop_done(srv->stop_ud);
  }
}

static void sweep_closed(uv_handle_t *h) {
  svc_server *srv = h->data;
  srv->sweep_open = false;
  handle_closed(srv);
}

static void flush_closed(uv_handle_t *h) {
  svc_server *srv = h->data;
  srv->flush_open = false;
  handle_closed(srv);
}

/* Closes the sweep timer and the flush idle (those still open); returns how many. */
static int close_handles(svc_server *srv) {
  int n = 0;
  if (srv->sweep_open && !uv_is_closing((uv_handle_t *)&srv->sweep)) {
    uv_timer_stop(&srv->sweep);
    uv_close((uv_handle_t *)&srv->sweep, sweep_closed);
    n++;
  }
  if (srv->flush_open && !uv_is_closing((uv_handle_t *)&srv->flush)) {
    uv_idle_stop(&srv->flush);
    uv_close((uv_handle_t *)&srv->flush, flush_closed);
    n++;
  }
  return n;
}

/* ---------- life cycle ---------- */

int svc_server_start(const svc_server_opts *o, svc_server **out) {
  if (!o->host || !o->dispatcher || !o->loop) return -EINVAL;
  svc_server *srv = calloc(1, sizeof *srv);
  if (!srv) return -ENOMEM;
  srv->o = *o;
  if (!srv->o.max_frame_bytes) srv->o.max_frame_bytes = SVC_FRAME_DEFAULT_MAX;
  if (!srv->o.max_frames) srv->o.max_frames = 1000000;
  if (!srv->o.max_streams_per_peer) srv->o.max_streams_per_peer = 64;
  if (!(srv->o.rate_per_s > 0) && srv->o.rate_per_s != SVC_RATE_UNLIMITED) srv->o.rate_per_s = 100;
  if (!(srv->o.rate_burst > 0)) srv->o.rate_burst = srv->o.rate_per_s;
  if (!(srv->o.auth_rate_per_s > 0)) srv->o.auth_rate_per_s = 0;
  if (!(srv->o.auth_rate_burst > 0)) srv->o.auth_rate_burst = srv->o.auth_rate_per_s;
  if (!srv->o.init_timeout_ms) srv->o.init_timeout_ms = 10000;
  if (!srv->o.idle_timeout_ms) srv->o.idle_timeout_ms = 300000;
  if (!srv->o.frame_timeout_ms) srv->o.frame_timeout_ms = SVC_SERVER_DEFAULT_FRAME_TIMEOUT_MS;
  if (!srv->o.stream_budget) srv->o.stream_budget = SVC_SERVER_DEFAULT_STREAM_BUDGET;
  if (!srv->o.max_inflight_per_peer) srv->o.max_inflight_per_peer = SVC_SERVER_DEFAULT_PEER_INFLIGHT;
  if (!srv->o.peer_budget) srv->o.peer_budget = SVC_SERVER_DEFAULT_PEER_BUDGET;
  if (!srv->o.process_budget) srv->o.process_budget = SVC_SERVER_DEFAULT_PROCESS_BUDGET;
  if (!srv->o.stranger_max_streams) srv->o.stranger_max_streams = SVC_SERVER_DEFAULT_STRANGER_STREAMS;
  if (srv->o.stranger_max_streams > srv->o.max_streams_per_peer) srv->o.stranger_max_streams = srv->o.max_streams_per_peer;
  if (!srv->o.stranger_max_frame_bytes) srv->o.stranger_max_frame_bytes = SVC_SERVER_DEFAULT_STRANGER_FRAME;
  if (srv->o.stranger_max_frame_bytes > srv->o.max_frame_bytes) srv->o.stranger_max_frame_bytes = srv->o.max_frame_bytes;
  srv->peers = calloc(SRV_MAX_PEERS, sizeof *srv->peers);
  if (!srv->peers) {
    free(srv);
    return -ENOMEM;
  }
  int rc = p2p_host_handle(o->host, SVC_MCPP_PROTOCOL, mcpp_handler, srv);
  if (rc == 0 && o->legacy) {
    rc = p2p_host_handle(o->host, SVC_LEGACY_PROTOCOL, legacy_handler, srv);
    if (rc < 0) p2p_host_unhandle(o->host, SVC_MCPP_PROTOCOL);
  }
  if (rc < 0) {
    free(srv->peers);
    free(srv);
    return rc;
  }
  if (uv_timer_init(o->loop, &srv->sweep) == 0) {
    srv->sweep.data = srv;
    srv->sweep_open = true;
    uv_timer_start(&srv->sweep, sweep_tick, 1000, 1000);
  }
  if (uv_idle_init(o->loop, &srv->flush) == 0) {
    srv->flush.data = srv;
    srv->flush_open = true;
  }
  log_write(LOG_DEBUG, "p2p service protocols registered", "{s:s, s:b}", "protocol", SVC_MCPP_PROTOCOL, "legacy",
            o->legacy);
  *out = srv;
  return 0;
}

/* A stream still owes something: a call in flight, or output not yet handed to the host. */
static bool st_owes(svc_stream *st) {
  if (st->kind == ST_MCPP ? svc_mcpp_inflight(st->conn) > 0 || svc_mcpp_held_calls(st->conn) > 0 : st->lcall != NULL)
    return true;
  return st->s && (buf_len(st_out(st)) > 0 || p2p_stream_send_queued(st->s) > 0);
}

static size_t srv_owing(svc_server *srv) {
  size_t n = 0;
  for (svc_stream *st = srv->streams; st; st = st->next) n += st_owes(st);
  return n;
}

/* At the end of a stop: streams that still owe something are reset; those that answered
 * everything and sent their FIN are left to the host's close (a reset could make the peer drop
 * answers it has not read yet). */
static void srv_reset_all(svc_server *srv) {
  for (svc_stream *st = srv->streams, *next; st; st = next) {
    next = st->next;
    if (st->s && st->closed_write && !st_owes(st)) continue;
    p2p_stream *s = st->s;
    st_unlink(st); /* on_close will free it */
    if (s) p2p_stream_reset(s);
  }
}

static void stop_timer_closed(uv_handle_t *h) {
  svc_server *srv = h->data;
  srv->timer_init = false;
  if (--srv->closing == 0 && srv->stop_done) srv->stop_done(srv->stop_ud);
}

static void stop_tick(uv_timer_t *t) {
  svc_server *srv = t->data;
  if (srv_owing(srv) > 0 && uv_now(srv->o.loop) < (uint64_t)srv->stop_deadline) return;
  srv_reset_all(srv);
  uv_timer_stop(t);
  srv->closing = 1;
  uv_close((uv_handle_t *)t, stop_timer_closed);
  srv->closing += close_handles(srv);
}

void svc_server_stop(svc_server *srv, uint32_t deadline_ms, void (*done)(void *ud), void *ud) {
  if (!srv->stopping) {
    srv->stopping = true;
    p2p_host_unhandle(srv->o.host, SVC_MCPP_PROTOCOL);
    if (srv->o.legacy) p2p_host_unhandle(srv->o.host, SVC_LEGACY_PROTOCOL);
  }
  /* Waits that would only run into the deadline (tasks/result, subscriptions) end now, with
   * an answer the peer can act on. Safe to flush here: no session callback is running. */
  for (svc_stream *st = srv->streams; st;) {
    if (st->kind == ST_MCPP && !st->stop_seen) {
      st->stop_seen = true;
      svc_mcpp_stopping(st->conn);
      st_flush(st); /* may free streams: rescan */
      st = srv->streams;
      continue;
    }
    st = st->next;
  }
  srv->stop_done = done;
  srv->stop_ud = ud;
  srv->stop_deadline = (int64_t)uv_now(srv->o.loop) + deadline_ms;
  if (uv_timer_init(srv->o.loop, &srv->timer) != 0) {
    srv_reset_all(srv);
    srv->closing = close_handles(srv); /* done comes from the last handle's close */
    if (srv->closing == 0 && done) done(ud);
    return;
  }
  srv->timer_init = true;
  srv->timer.data = srv;
  uv_timer_start(&srv->timer, stop_tick, 0, 50);
}

void svc_server_free(svc_server *srv) {
  if (!srv) return;
  if (!srv->stopping) {
    p2p_host_unhandle(srv->o.host, SVC_MCPP_PROTOCOL);
    if (srv->o.legacy) p2p_host_unhandle(srv->o.host, SVC_LEGACY_PROTOCOL);
  }
  /* Streams still linked are reset; their on_close (from the host) frees them. Detach them
   * from the server so those callbacks do not touch freed memory. */
  while (srv->streams) {
    svc_stream *st = srv->streams;
    p2p_stream *s = st->s;
    st_unlink(st);
    st->peer = NULL;
    if (s) p2p_stream_reset(s);
  }
  if (srv->sweep_open || srv->flush_open) { /* never stopped: the memory goes when the handles have closed */
    srv->free_requested = true;
    (void)close_handles(srv);
    return;
  }
  srv_release(srv);
}

json_t *svc_server_stats_json(const svc_server *srv) {
  return json_pack("{s:I, s:I, s:b, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:o}}", "streams", (json_int_t)srv->n_streams,
                   "peers", (json_int_t)srv->n_peers, "legacy", srv->o.legacy, "budgets", "held_bytes",
                   (json_int_t)srv->held, "held_output_bytes", (json_int_t)srv->held_out, "paused_streams",
                   (json_int_t)srv->n_budget_paused, "pauses", (json_int_t)srv->budget_pauses, "refused_replies",
                   (json_int_t)srv->budget_refusals, "stranger_streams_refused", (json_int_t)srv->stranger_refusals,
                   "calls_held", (json_int_t)srv->busy_holds, "calls_held_for_budget", (json_int_t)srv->budget_holds,
                   "mcp_p2p", "stats", svc_mcpp_stats_json());
}

json_t *svc_server_budget_json(const svc_server *srv) {
  if (!srv) return NULL;
  svc_server *m = (svc_server *)srv; /* atomics only */
  return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "held_bytes",
                   (json_int_t)atomic_load_explicit(&m->pub_held, memory_order_relaxed), "held_output_bytes",
                   (json_int_t)atomic_load_explicit(&m->pub_held_out, memory_order_relaxed), "held_max_bytes",
                   (json_int_t)atomic_load_explicit(&m->pub_held_max, memory_order_relaxed), "held_output_max_bytes",
                   (json_int_t)atomic_load_explicit(&m->pub_held_out_max, memory_order_relaxed), "paused_streams",
                   (json_int_t)atomic_load_explicit(&m->pub_paused, memory_order_relaxed), "pauses",
                   (json_int_t)atomic_load_explicit(&m->pub_pauses, memory_order_relaxed), "refused_replies",
                   (json_int_t)atomic_load_explicit(&m->pub_refusals, memory_order_relaxed), "stream_budget_bytes",
                   (json_int_t)srv->o.stream_budget, "peer_budget_bytes", (json_int_t)srv->o.peer_budget,
                   "process_budget_bytes", (json_int_t)srv->o.process_budget);
}

bool svc_server_peer_authorized(const svc_server *srv, const char *peer_id) {
  if (!srv || !peer_id) return false;
  for (size_t i = 0; i < srv->n_peers; i++)
    if (srv->peers[i].authorized && strcmp(srv->peers[i].id, peer_id) == 0) return true;
  return false;
}
