/* transport_stream.c — a stream of another connection as a p2p_transport (see
 * transport_stream.h and transport.h). */
#include "p2p/host/transport_stream.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/host/internal.h"
#include "util/clock.h"

typedef struct stream_transport {
  p2p_transport base; /* first */
  p2p_host *h;
  p2p_stream *s;      /* the carrying stream; NULL once its on_close ran (or before a pending
                         circuit got one) */
  buf wb;             /* the write buffer lent by write_buf */
  buf prefix;         /* bytes read before the stream was ours; delivered first */
  bool lent;
  bool blocked;       /* the stream's queue is at its high-water mark: wait for on_writable */
  bool closed_told;   /* on_closed was delivered */
  bool dialing;       /* pending circuit: the dialer has it (cancel it on close) */
  int open_err;       /* pending circuit: what on_open reports */
  p2p_relay_limit limit; /* what the relay allows (0s: nothing stated) */
  uint64_t data_in, data_out; /* bytes through the stream since it was ours (prefix included) */
  int64_t limit_set_ms, deadline_ms; /* when the limit was set; when its duration is up (0 = none) */
  host_task close_task;
  host_task open_task;
} stream_transport;

static stream_transport *st_of(p2p_transport *t) { return (stream_transport *)t; }
static const stream_transport *cst_of(const p2p_transport *t) { return (const stream_transport *)t; }

static void st_maybe_free(stream_transport *t) {
  if (!t->closed_told || t->s) return;
  CHECK(!t->close_task.queued && !t->open_task.queued && !t->dialing);
  buf_free(&t->wb);
  buf_free(&t->prefix);
  free(t);
}

/* ---------------------------------------------------------------- the carrying stream */

/* more_out 0: the data limit is used up (nothing more can come); else: more_out more bytes
 * would go past it. Counted in each direction (the spec), or both together (js-libp2p). */
static bool st_data_spent(const stream_transport *t, uint64_t more_out) {
  const p2p_relay_limit *l = &t->limit;
  if (!l->data_bytes) return false;
  uint64_t used = l->data_total ? t->data_in + t->data_out : more_out ? t->data_out : t->data_in;
  return more_out ? used + more_out > l->data_bytes : used >= l->data_bytes;
}

/* Bytes for the connection above; once what came in reaches the data limit the relay will
 * forward no more: the input ends with -EDQUOT (the connection closes, saying why). */
static void st_deliver(stream_transport *t, const uint8_t *d, size_t n) {
  t->data_in += n;
  t->base.ev.on_read(t->base.ud, d, n);
  if (!t->base.closing && n && st_data_spent(t, 0)) t->base.ev.on_end(t->base.ud, -EDQUOT);
}

static void on_s_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)s;
  stream_transport *t = ud;
  if (t->base.closing) return; /* lingering after close(0): discard */
  st_deliver(t, d, n);
}

static void on_s_eof(p2p_stream *s, void *ud) {
  (void)s;
  stream_transport *t = ud;
  if (!t->base.closing) t->base.ev.on_end(t->base.ud, 0);
}

static void on_s_writable(p2p_stream *s, void *ud) {
  (void)s;
  stream_transport *t = ud;
  t->blocked = false;
  if (!t->base.closing) t->base.ev.on_drain(t->base.ud);
}

static void on_s_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  stream_transport *t = ud;
  t->s = NULL;
  if (!t->base.closing) t->base.ev.on_end(t->base.ud, err ? err : -ECONNRESET);
  else st_maybe_free(t);
}

static const p2p_stream_callbacks carrier_cbs = {
    .on_data = on_s_data, .on_eof = on_s_eof, .on_writable = on_s_writable, .on_close = on_s_close};

/* ---------------------------------------------------------------- ops */

static int sx_read_start(p2p_transport *bt) {
  stream_transport *t = st_of(bt);
  if (!t->s) return -ECONNRESET;
  /* What came before the stream was ours goes first (the owner may close meanwhile). */
  while (buf_len(&t->prefix) && !bt->closing) {
    uint8_t chunk[4096];
    size_t n = buf_len(&t->prefix) < sizeof chunk ? buf_len(&t->prefix) : sizeof chunk;
    memcpy(chunk, buf_ptr(&t->prefix), n);
    buf_consume(&t->prefix, n);
    st_deliver(t, chunk, n);
  }
  if (bt->closing || !t->s) return 0;
  p2p_stream_pause_read(t->s, false); /* may deliver what waited, from inside this call */
  return 0;
}

static void sx_read_stop(p2p_transport *bt) {
  stream_transport *t = st_of(bt);
  if (t->s) p2p_stream_pause_read(t->s, true);
}

static buf *sx_write_buf(p2p_transport *bt, size_t need) {
  stream_transport *t = st_of(bt);
  CHECK(!t->lent && !bt->closing);
  buf_reset(&t->wb);
  buf_set_max(&t->wb, need > buf_cap(&t->wb) ? need : buf_cap(&t->wb));
  t->lent = true;
  return &t->wb;
}

static void sx_write_cancel(p2p_transport *bt, buf *b) {
  stream_transport *t = st_of(bt);
  CHECK(t->lent && b == &t->wb);
  (void)b;
  t->lent = false;
  buf_reset(&t->wb);
}

static int sx_write(p2p_transport *bt, buf *b) {
  stream_transport *t = st_of(bt);
  CHECK(t->lent && b == &t->wb && !bt->closing);
  (void)b;
  t->lent = false;
  if (!buf_len(&t->wb)) return 0;
  if (!t->s) return -ECONNRESET;
  size_t n = buf_len(&t->wb);
  if (st_data_spent(t, n)) { /* the relay would cut the circuit in the middle of these bytes */
    buf_reset(&t->wb);
    return -EDQUOT;
  }
  int rc = p2p_stream_write(t->s, buf_ptr(&t->wb), n);
  buf_reset(&t->wb);
  if (rc >= 0) t->data_out += n;
  if (rc == 1) t->blocked = true;
  /* -ENOBUFS: the connection above respects writable(), so only memory can be short; a
   * connection that lost bytes cannot go on. */
  return rc < 0 ? rc : 0;
}

static size_t sx_queued(const p2p_transport *bt) {
  const stream_transport *t = cst_of(bt);
  return t->s ? p2p_stream_send_queued(t->s) : 0;
}

static bool sx_writable(const p2p_transport *bt) {
  const stream_transport *t = cst_of(bt);
  return t->s && !t->blocked && !bt->closing;
}

static void sx_close_task(host_task *task) {
  stream_transport *t = (stream_transport *)((char *)task - offsetof(stream_transport, close_task));
  t->closed_told = true;
  t->base.ev.on_closed(t->base.ud);
  st_maybe_free(t);
}

static void sx_close(p2p_transport *bt, int err) {
  stream_transport *t = st_of(bt);
  CHECK(!t->lent);
  host_defer(t->h, &t->close_task); /* first: the reset below may free nothing yet */
  host_cancel(t->h, &t->open_task);
  if (t->dialing) { /* a circuit still being set up: the dialer forgets it */
    t->dialing = false;
    if (t->h->circuit.cancel) t->h->circuit.cancel(t->h->circuit_ud, (p2p_circuit_req *)t);
  }
  if (t->s) {
    if (err == 0) {
      p2p_stream_close_write(t->s);    /* FIN after the queue; linger until the peer's FIN */
      if (t->s) p2p_stream_pause_read(t->s, false); /* keep reading (and discarding) */
    } else {
      p2p_stream_reset(t->s);          /* on_close runs inside and clears t->s */
    }
  }
}

static const p2p_transport_ops stream_ops = {
    .name = "stream",
    .read_start = sx_read_start,
    .read_stop = sx_read_stop,
    .write_buf = sx_write_buf,
    .write = sx_write,
    .write_cancel = sx_write_cancel,
    .queued = sx_queued,
    .writable = sx_writable,
    .close = sx_close,
};

static void sx_open_task(host_task *task) {
  stream_transport *t = (stream_transport *)((char *)task - offsetof(stream_transport, open_task));
  CHECK(!t->base.closing);
  t->base.ev.on_open(t->base.ud, t->open_err);
}

static stream_transport *st_alloc(p2p_host *h) {
  stream_transport *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->base.ops = &stream_ops;
  t->base.relayed = true;
  t->h = h;
  buf_init(&t->wb, HOST_WRITE_CHUNK);
  buf_init(&t->prefix, P2P_STREAM_TRANSPORT_PREFIX_MAX);
  t->close_task.fn = sx_close_task;
  t->open_task.fn = sx_open_task;
  return t;
}

static void st_take(stream_transport *t, p2p_stream *s) {
  t->s = s;
  p2p_stream_pause_read(s, true); /* nothing is delivered before the connection reads */
  p2p_stream_set_callbacks(s, &carrier_cbs, t);
}

int p2p_stream_transport_new(p2p_host *h, p2p_stream *s, p2p_transport **out) {
  stream_transport *t = st_alloc(h);
  if (!t) return -ENOMEM;
  st_take(t, s);
  *out = &t->base;
  return 0;
}

void p2p_stream_transport_attach(p2p_transport *bt, p2p_stream *s) {
  stream_transport *t = st_of(bt);
  CHECK(!t->s && !t->dialing && !bt->closing);
  st_take(t, s);
}

int p2p_stream_transport_pending(p2p_host *h, p2p_transport **out) {
  stream_transport *t = st_alloc(h);
  if (!t) return -ENOMEM;
  *out = &t->base;
  return 0;
}

int p2p_stream_transport_set_initial(p2p_transport *bt, const uint8_t *p, size_t n) {
  stream_transport *t = st_of(bt);
  if (n > P2P_STREAM_TRANSPORT_PREFIX_MAX) return -E2BIG;
  return n ? buf_append(&t->prefix, p, n) : 0;
}

void p2p_stream_transport_dialing(p2p_transport *bt, bool on) { st_of(bt)->dialing = on; }

void p2p_stream_transport_set_limit(p2p_transport *bt, const p2p_relay_limit *l) {
  stream_transport *t = st_of(bt);
  t->limit = l ? *l : (p2p_relay_limit){0};
  t->limit_set_ms = clock_mono_ms();
  t->deadline_ms = 0;
  uint64_t d = t->limit.duration_ms;
  if (d) {
    /* The relay's clock started before ours (it answered after opening the circuit): close a
     * little early, so that our close comes first and says why. */
    uint64_t guard = d >= 4 * P2P_RELAY_LIMIT_GUARD_MS ? P2P_RELAY_LIMIT_GUARD_MS : d / 4;
    if (d > (uint64_t)INT64_MAX / 2) d = (uint64_t)INT64_MAX / 2;
    t->deadline_ms = t->limit_set_ms + (int64_t)(d - guard);
  }
}

void p2p_stream_transport_usage(const p2p_transport *bt, int64_t now_ms, p2p_relay_usage *out) {
  const stream_transport *t = cst_of(bt);
  *out = (p2p_relay_usage){.limit = t->limit, .data_in = t->data_in, .data_out = t->data_out};
  if (t->deadline_ms) out->left_ms = t->deadline_ms > now_ms ? t->deadline_ms - now_ms : 0;
  else out->left_ms = -1;
}

bool p2p_stream_transport_expired(const p2p_transport *bt, int64_t now_ms) {
  const stream_transport *t = cst_of(bt);
  return t->deadline_ms && now_ms >= t->deadline_ms;
}

p2p_circuit_req *p2p_stream_transport_req(p2p_transport *bt) { return (p2p_circuit_req *)st_of(bt); }

void p2p_circuit_req_set_limit(p2p_circuit_req *req, const p2p_relay_limit *l) {
  stream_transport *t = (stream_transport *)req;
  CHECK(t->dialing && !t->base.closing && !t->s);
  p2p_stream_transport_set_limit(&t->base, l);
}

void p2p_circuit_req_done(p2p_circuit_req *req, p2p_stream *s, const uint8_t *initial, size_t n, int err) {
  stream_transport *t = (stream_transport *)req;
  CHECK(t->dialing && !t->base.closing && !t->s);
  t->dialing = false;
  if (err == 0 && (!s || p2p_stream_transport_set_initial(&t->base, initial, n) != 0)) err = s ? -ENOMEM : -EINVAL;
  if (err == 0) st_take(t, s);
  else if (s) p2p_stream_reset(s);
  t->open_err = err;
  host_defer(t->h, &t->open_task); /* on_open from a later iteration, as TCP's */
}
