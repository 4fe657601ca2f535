/* stream.c — one Yamux stream of a connection: multistream-select per stream (the dialer
 * proposes one protocol, the listener answers from the handler registry), the bounded send
 * and receive queues, and the public p2p_stream_* calls (host.h).
 *
 * Life: the state machine documented in internal.h (NEGOTIATING → HANDING → OPEN → CLOSED,
 * plus the tx and rx halves). A stream's memory is freed by the host's reaper on a later loop
 * iteration, never while a call that got here through a callback may still hold the pointer;
 * so after running any callback the code here only checks `life == STREAM_CLOSED`.
 *
 * Data path out: app → sendq (≤ stream_send_max) → yamux_stream_write (window-limited).
 * Data path in: Yamux → app (straight from the fed buffer when nothing waits), else recvq;
 * the Yamux window is credited only when the app has taken the bytes. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/host/internal.h"
#include "util/clock.h"
#include "util/log.h"

static void stream_pump(p2p_stream *st);
static void stream_deliver(p2p_stream *st);

/* ---------------------------------------------------------------- invariants */

/* HANDING or OPEN: someone owns the stream and may write. */
static bool stream_owned(const p2p_stream *st) { return st->life == STREAM_HANDING || st->life == STREAM_OPEN; }

static void stream_check(const p2p_stream *st) {
  CHECK((st->life == STREAM_CLOSED) == (st->ys == NULL));
  CHECK((st->life == STREAM_NEGOTIATING) == (st->mss != NULL));
  CHECK(st->life != STREAM_OPEN || (st->protocol && st->has_cbs));
  CHECK(st->life == STREAM_CLOSED || st->tx != TX_FIN_SENT || buf_len(&st->sendq) == 0);
  CHECK(st->rx != RX_EOF_DELIVERED || buf_len(&st->recvq) == 0);
  CHECK(st->life == STREAM_NEGOTIATING || st->open_cb == NULL);
  (void)st;
}

/* ---------------------------------------------------------------- life */

static void stream_writable_task(host_task *t);

p2p_stream *stream_new(p2p_conn *c, yamux_stream *ys, bool inbound) {
  p2p_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->conn = c;
  st->conn_id = c->id;
  st->ys = ys;
  st->inbound = inbound;
  st->life = STREAM_NEGOTIATING;
  buf_init(&st->sendq, c->h->cfg.stream_send_max + HOST_STREAM_RAW_SLACK);
  /* Yamux never lets the peer have more than max_window outstanding. */
  buf_init(&st->recvq, (16u << 20) + (1u << 20));
  st->deadline_ms = clock_mono_ms() + c->h->cfg.stream_negotiate_timeout_ms;
  st->writable_task.fn = stream_writable_task;
  st->next = c->streams;
  if (c->streams) c->streams->prev = st;
  c->streams = st;
  c->n_streams++;
  metrics_gauge_add(&p2p_host_streams_metric, 0, 1);
  yamux_stream_set_user(ys, st);
  return st;
}

static void stream_unlink(p2p_stream *st) {
  p2p_conn *c = st->conn;
  if (st->prev) st->prev->next = st->next;
  else if (c->streams == st) c->streams = st->next;
  if (st->next) st->next->prev = st->prev;
  st->prev = st->next = NULL;
  CHECK(c->n_streams > 0);
  c->n_streams--;
  metrics_gauge_add(&p2p_host_streams_metric, 0, -1);
  conn_stream_gone(c);
}

void stream_free(p2p_stream *st) {
  CHECK(st->life == STREAM_CLOSED && !st->writable_task.queued);
  free(st->protocol);
  buf_free(&st->sendq);
  buf_free(&st->recvq);
  free(st);
}

/* Any state but CLOSED → CLOSED: release the Yamux handle (RST if our write side is still
 * open), hand the memory to the reaper, tell the owner once. */
void stream_finalize(p2p_stream *st, int err) {
  CHECK(st->life != STREAM_CLOSED);
  stream_check(st);
  stream_life was = st->life;
  p2p_conn *c = st->conn;
  p2p_host *h = c->h;
  st->life = STREAM_CLOSED;
  stream_unlink(st);
  yamux_stream_set_user(st->ys, NULL);
  yamux_stream_release(st->ys);
  st->ys = NULL;
  if (st->mss) {
    mss_free(st->mss);
    st->mss = NULL;
  }
  if (st->writable_task.queued) host_cancel(h, &st->writable_task);
  host_bury_stream(h, st);
  if (was == STREAM_NEGOTIATING && st->open_cb) {
    p2p_open_fn cb = st->open_cb;
    st->open_cb = NULL;
    cb(NULL, err ? err : -ECONNRESET, st->open_ud);
  } else if (st->has_cbs && st->cbs.on_close) {
    st->cbs.on_close(st, err, st->ud);
  }
  if (c->state == CONN_READY) conn_check_drain(c);
}

/* Resets (RST) and ends a stream that is not CLOSED. */
static void stream_abort(p2p_stream *st, int err) {
  yamux_stream_reset(st->ys);
  stream_finalize(st, err);
}

static void stream_check_done(p2p_stream *st) {
  if (st->life == STREAM_OPEN && st->tx == TX_FIN_SENT && st->rx == RX_EOF_DELIVERED) stream_finalize(st, 0);
}

/* ---------------------------------------------------------------- sending */

/* Bytes that must go out regardless of the app's cap (multistream-select replies): the queue's
 * ceiling leaves HOST_STREAM_RAW_SLACK above the app's cap for them. */
static void stream_send_raw(p2p_stream *st, buf *out) {
  if (!buf_len(out)) return;
  int rc = buf_append(&st->sendq, buf_ptr(out), buf_len(out));
  buf_reset(out);
  if (rc) {
    stream_abort(st, -ECONNRESET);
    return;
  }
  stream_pump(st);
}

/* Moves queued bytes into Yamux, sends FIN when asked and drained, reports writability. */
static void stream_pump(p2p_stream *st) {
  if (st->life == STREAM_CLOSED) return;
  while (buf_len(&st->sendq)) {
    ssize_t n = yamux_stream_write(st->ys, buf_ptr(&st->sendq), buf_len(&st->sendq));
    if (n == -EAGAIN) break;
    if (n < 0) {
      stream_finalize(st, n == -EPIPE ? -EPIPE : -ECONNRESET);
      return;
    }
    buf_consume(&st->sendq, (size_t)n);
  }
  if (!stream_owned(st)) return;
  if (st->tx == TX_FIN_QUEUED && !buf_len(&st->sendq)) {
    st->tx = TX_FIN_SENT;
    if (yamux_stream_close(st->ys) < 0) {
      stream_finalize(st, -ECONNRESET);
      return;
    }
  }
  if (st->want_writable && buf_len(&st->sendq) < st->conn->h->cfg.stream_send_hwm) {
    st->want_writable = false;
    if (st->has_cbs && st->cbs.on_writable) {
      st->cbs.on_writable(st, st->ud);
      if (st->life == STREAM_CLOSED) return;
    }
  }
  stream_check_done(st);
}

/* on_writable owed after -ENOBUFS while nothing else will pump the queue. */
static void stream_writable_task(host_task *t) {
  p2p_stream *st = (p2p_stream *)((char *)t - offsetof(p2p_stream, writable_task));
  if (!stream_owned(st)) return;
  p2p_conn *c = st->conn;
  stream_pump(st);
  conn_flush_soon(c);
}

/* ---------------------------------------------------------------- receiving */

/* Hands data to the owner; returns how many bytes it took (all but what it gave back with
 * p2p_stream_unread). */
static size_t stream_call_on_data(p2p_stream *st, const uint8_t *data, size_t len) {
  if (!st->cbs.on_data) return len;
  st->in_data = len;
  st->unread = 0;
  st->cbs.on_data(st, data, len, st->ud);
  size_t left = st->unread;
  st->in_data = 0;
  st->unread = 0;
  CHECK(left <= len);
  return len - left;
}

static void stream_deliver(p2p_stream *st) {
  if (st->delivering || st->life != STREAM_OPEN) return;
  st->delivering = true;
  while (st->life == STREAM_OPEN && !st->paused && buf_len(&st->recvq)) {
    size_t n = buf_len(&st->recvq);
    if (n > HOST_READ_CHUNK) n = HOST_READ_CHUNK;
    size_t took = stream_call_on_data(st, buf_ptr(&st->recvq), n);
    if (st->life == STREAM_CLOSED) break;
    buf_consume(&st->recvq, took);
    if (took && yamux_stream_consume(st->ys, took) < 0) {
      stream_finalize(st, -ECONNRESET);
      break;
    }
  }
  if (st->life == STREAM_OPEN && st->rx == RX_FIN && !buf_len(&st->recvq) && !st->paused) {
    st->rx = RX_EOF_DELIVERED;
    if (st->cbs.on_eof) st->cbs.on_eof(st, st->ud);
  }
  st->delivering = false; /* the memory outlives CLOSED until the reaper runs */
  stream_check_done(st);
}

/* multistream-select agreed on this stream: NEGOTIATING → HANDING → OPEN (or CLOSED). */
static void stream_negotiated(p2p_stream *st) {
  char *proto = strdup(mss_selected(st->mss));
  if (!proto) {
    stream_abort(st, -ENOMEM);
    return;
  }
  st->protocol = proto;
  mss_free(st->mss);
  st->mss = NULL;
  p2p_open_fn cb = st->open_cb;
  st->open_cb = NULL;
  st->life = STREAM_HANDING;
  st->deadline_ms = 0;
  stream_check(st);
  if (st->inbound) {
    host_handler *hd = host_find_handler(st->conn->h, st->protocol);
    if (hd) hd->fn(st, hd->ud);
  } else if (cb) {
    cb(st, 0, st->open_ud);
  }
  if (st->life == STREAM_CLOSED) return;
  if (!st->has_cbs) {
    log_warn("p2p stream owner set no callbacks; resetting it", "{s:s, s:s}", "protocol", st->protocol, "direction",
             st->inbound ? "inbound" : "outbound");
    stream_abort(st, -ECONNRESET);
    return;
  }
  st->life = STREAM_OPEN;
  stream_check(st);
  stream_deliver(st);
  stream_pump(st);
}

static void stream_on_bytes(p2p_stream *st, const uint8_t *data, size_t len) {
  if (st->life == STREAM_NEGOTIATING) {
    buf out;
    buf_init(&out, MSS_MAX_MSG * 4);
    ssize_t used = mss_feed(st->mss, data, len, &out);
    stream_send_raw(st, &out);
    buf_free(&out);
    if (st->life == STREAM_CLOSED) return;
    if (used < 0) {
      (void)!yamux_stream_consume(st->ys, len);
      stream_abort(st, used == -ENOPROTOOPT ? -EPROTONOSUPPORT : (int)used);
      return;
    }
    if (yamux_stream_consume(st->ys, (size_t)used) < 0) {
      stream_finalize(st, -ECONNRESET);
      return;
    }
    if (mss_state_get(st->mss) != MSS_DONE) return;
    data += used;
    len -= (size_t)used;
    stream_negotiated(st);
  }
  if (!len || st->life == STREAM_CLOSED) return;
  if (st->life == STREAM_OPEN && !st->paused && !buf_len(&st->recvq) && !st->delivering) {
    size_t took = stream_call_on_data(st, data, len);
    if (st->life == STREAM_CLOSED) return;
    if (took && yamux_stream_consume(st->ys, took) < 0) {
      stream_finalize(st, -ECONNRESET);
      return;
    }
    if (took == len) return;
    /* given back: kept (and not credited to the window) until reading resumes */
    data += took;
    len -= took;
  }
  if (buf_append(&st->recvq, data, len) != 0) {
    stream_abort(st, -ECONNRESET);
    return;
  }
  if (buf_len(&st->recvq) > st->max_recvq) st->max_recvq = buf_len(&st->recvq);
}

/* ---------------------------------------------------------------- Yamux callbacks */

static bool match_handler(void *ud, const char *proto, size_t len) {
  (void)len;
  return host_find_handler((p2p_host *)ud, proto) != NULL;
}

int stream_on_yamux_open(yamux_session *s, yamux_stream *ys, void *ud) {
  (void)s;
  p2p_conn *c = ud;
  if (c->draining || c->h->closing || c->state != CONN_READY) return -ECONNREFUSED;
  mss *m;
  if (mss_listener_new(&m, NULL, 0) != 0) return -ENOMEM;
  mss_listener_set_match(m, match_handler, c->h);
  p2p_stream *st = stream_new(c, ys, true);
  if (!st) {
    mss_free(m);
    return -ENOMEM; /* refused: Yamux drops the handle itself */
  }
  st->mss = m;
  buf out;
  buf_init(&out, MSS_MAX_MSG * 2);
  if (mss_start(st->mss, &out) == 0) stream_send_raw(st, &out);
  buf_free(&out);
  return 0;
}

void stream_on_yamux_data(yamux_session *s, yamux_stream *ys, const uint8_t *data, size_t len, void *ud) {
  (void)s;
  (void)ud;
  p2p_stream *st = yamux_stream_user(ys);
  if (st) stream_on_bytes(st, data, len);
}

void stream_on_yamux_fin(yamux_session *s, yamux_stream *ys, void *ud) {
  (void)s;
  (void)ud;
  p2p_stream *st = yamux_stream_user(ys);
  if (!st) return;
  if (st->life == STREAM_NEGOTIATING) {
    stream_abort(st, -ECONNRESET);
    return;
  }
  if (st->rx == RX_OPEN) st->rx = RX_FIN;
  stream_deliver(st);
}

void stream_on_yamux_reset(yamux_session *s, yamux_stream *ys, void *ud) {
  (void)s;
  p2p_conn *c = ud;
  p2p_stream *st = yamux_stream_user(ys);
  if (st) stream_finalize(st, c->state == CONN_CLOSED ? -ECONNABORTED : -ECONNRESET);
}

void stream_on_yamux_writable(yamux_session *s, yamux_stream *ys, void *ud) {
  (void)s;
  (void)ud;
  p2p_stream *st = yamux_stream_user(ys);
  if (st) stream_pump(st);
}

/* ---------------------------------------------------------------- connection side */

int stream_open(p2p_conn *c, const char *protocol, p2p_open_fn cb, void *ud) {
  if (!conn_is_usable(c)) return -EPIPE;
  const char *protos[1] = {protocol};
  mss *m;
  int rc = mss_dialer_new(&m, protos, 1);
  if (rc) return rc;
  yamux_stream *ys;
  rc = yamux_stream_open(c->ymx, &ys);
  if (rc) {
    mss_free(m);
    return rc;
  }
  p2p_stream *st = stream_new(c, ys, false);
  if (!st) {
    mss_free(m);
    yamux_stream_reset(ys);
    yamux_stream_release(ys);
    return -ENOMEM;
  }
  st->mss = m;
  st->open_cb = cb;
  st->open_ud = ud;
  buf out;
  buf_init(&out, MSS_MAX_MSG * 2);
  if (mss_start(st->mss, &out) == 0) stream_send_raw(st, &out);
  buf_free(&out);
  conn_flush_soon(c); /* with whatever else this loop iteration writes */
  return 0;
}

void stream_tick(p2p_stream *st, int64_t now_ms) {
  if (st->life == STREAM_NEGOTIATING && st->deadline_ms && now_ms > st->deadline_ms) stream_abort(st, -ETIMEDOUT);
}

/* ---------------------------------------------------------------- public stream API */

/* After an app call: what Yamux produced goes to the transport once this loop iteration's
 * callbacks (or the read being handled) are done: writes on many streams share one Noise frame
 * — or at once when the connection's output reached the write policy's mark (conn_wrote). */
static void stream_flush_conn(p2p_conn *c) { conn_wrote(c); }

void p2p_stream_set_callbacks(p2p_stream *s, const p2p_stream_callbacks *cbs, void *ud) {
  LOOP_THREAD_ONLY();
  CHECK(s->life != STREAM_NEGOTIATING);
  s->cbs = *cbs;
  s->ud = ud;
  s->has_cbs = true;
  if (s->life == STREAM_OPEN) {
    p2p_conn *c = s->conn;
    stream_deliver(s);
    stream_flush_conn(c);
  }
}

int p2p_stream_write(p2p_stream *s, const void *data, size_t len) {
  LOOP_THREAD_ONLY();
  if (!stream_owned(s) || s->tx != TX_OPEN) return -EPIPE;
  p2p_conn *c = s->conn;
  p2p_host *h = c->h;
  bool queued_before = buf_len(&s->sendq) > 0;
  uint8_t *room;
  /* All or nothing: room in the queue for whatever Yamux will not take is made before Yamux
   * takes anything, so a refusal or a failed allocation leaves the stream as it was. */
  size_t direct = queued_before ? 0 : yamux_stream_write_room(s->ys);
  if (direct > len) direct = len;
  if (len > h->cfg.stream_send_max || buf_len(&s->sendq) > h->cfg.stream_send_max - len ||
      (len > direct && buf_reserve(&s->sendq, len - direct, &room) != 0)) {
    s->want_writable = true;
    /* Nothing else may pump a queue below the high-water mark: owe on_writable from the loop. */
    if (buf_len(&s->sendq) < h->cfg.stream_send_hwm) host_defer(h, &s->writable_task);
    return -ENOBUFS;
  }
  const uint8_t *p = data;
  if (!queued_before) {
    /* Yamux takes exactly `direct` (its room) or nothing; offered everything, it arms
     * on_stream_writable when it could not take it all. */
    ssize_t n = yamux_stream_write(s->ys, p, len);
    if (n == -ENOMEM || n == -EAGAIN) {
      n = 0; /* nothing taken: the whole write goes to the queue */
      if (buf_reserve(&s->sendq, len, &room) != 0) {
        s->want_writable = true;
        host_defer(h, &s->writable_task);
        return -ENOBUFS;
      }
    } else if (n < 0) {
      stream_finalize(s, -ECONNRESET);
      stream_flush_conn(c);
      return -EPIPE;
    }
    CHECK((size_t)n == direct || n == 0);
    p += n;
    len -= (size_t)n;
  }
  if (len) {
    int rc = buf_append(&s->sendq, p, len); /* within the reservation: cannot fail */
    CHECK(rc == 0);
    (void)rc;
  }
  if (buf_len(&s->sendq) > s->max_sendq) s->max_sendq = buf_len(&s->sendq);
  stream_flush_conn(c);
  if (s->life == STREAM_CLOSED) return -EPIPE; /* defensive: the flush is deferred (conn_flush_soon) */
  if (buf_len(&s->sendq) >= h->cfg.stream_send_hwm) {
    s->want_writable = true;
    return 1;
  }
  return 0;
}

size_t p2p_stream_send_queued(const p2p_stream *s) { return buf_len(&s->sendq); }

void p2p_stream_close_write(p2p_stream *s) {
  LOOP_THREAD_ONLY();
  if (!stream_owned(s) || s->tx != TX_OPEN) return;
  s->tx = TX_FIN_QUEUED;
  p2p_conn *c = s->conn;
  stream_pump(s);
  stream_flush_conn(c);
}

void p2p_stream_reset(p2p_stream *s) {
  LOOP_THREAD_ONLY();
  if (s->life == STREAM_CLOSED) return;
  p2p_conn *c = s->conn;
  stream_abort(s, -ECONNRESET);
  stream_flush_conn(c);
}

void p2p_stream_unread(p2p_stream *s, size_t len) {
  LOOP_THREAD_ONLY();
  CHECK(s->in_data && len <= s->in_data);
  if (!s->in_data) return;
  if (len > s->in_data) len = s->in_data;
  s->unread = len;
  if (len) s->paused = true;
}

void p2p_stream_pause_read(p2p_stream *s, bool paused) {
  LOOP_THREAD_ONLY();
  if (s->paused == paused) return;
  s->paused = paused;
  if (!paused && s->life == STREAM_OPEN) {
    p2p_conn *c = s->conn;
    stream_deliver(s);
    stream_flush_conn(c);
  }
}

const char *p2p_stream_protocol(const p2p_stream *s) { return s->protocol ? s->protocol : ""; }
const char *p2p_stream_remote_peer(const p2p_stream *s) { return s->conn->remote_id; }
const char *p2p_stream_remote_addr(const p2p_stream *s) { return s->conn->remote_addr; }
const char *p2p_stream_local_addr(const p2p_stream *s) {
  return s->conn->t && !s->conn->relayed ? s->conn->t->local_addr : "";
}
bool p2p_stream_is_inbound(const p2p_stream *s) { return s->inbound; }
bool p2p_stream_conn_inbound(const p2p_stream *s) { return !s->conn->outbound; }
bool p2p_stream_is_relayed(const p2p_stream *s) { return s->conn->relayed; }
uint64_t p2p_stream_conn_id(const p2p_stream *s) { return s->conn_id; }
size_t p2p_stream_max_send_queued(const p2p_stream *s) { return s->max_sendq; }
size_t p2p_stream_max_recv_buffered(const p2p_stream *s) { return s->max_recvq; }
