/* conn.c — one libp2p connection on a libuv TCP handle: the upgrade (libp2p/specs
 * connections/README.md "Protocol Negotiation" / "Upgrading Connections": multistream-select
 * for /noise, the Noise XX handshake, then /yamux/1.0.0 — chosen inside Noise through
 * NoiseExtensions.stream_muxers when both sides offer it, else by multistream-select over the
 * secured channel), then Yamux with one multistream-select negotiation per stream.
 *
 * Data path out: app → stream send queue (bounded) → yamux_stream_write (window-limited) →
 * Yamux output (soft-limited) → noise_encrypt → uv_write (at most conn_write_queue_max bytes in
 * flight). Data path in: uv read → noise_feed → yamux_session_feed → stream → app, with the
 * Yamux window credited only when the app has taken the bytes. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/host/internal.h"
#include "util/clock.h"
#include "util/log.h"

static const char *const NOISE_PROTOS[] = {NOISE_PROTOCOL_ID};
static const char *const MUX_PROTOS[] = {YAMUX_PROTO_ID};

typedef struct wreq {
  uv_write_t req;
  p2p_conn *c;
  buf data;
  struct wreq *next; /* in the connection's free list */
} wreq;

static void conn_flush(p2p_conn *c);
static void conn_check_drain(p2p_conn *c);
static void stream_pump(p2p_stream *st);
static void stream_deliver(p2p_stream *st);
static void stream_finalize(p2p_stream *st, int err);

/* ---------------------------------------------------------------- stream helpers */

static void stream_ref(p2p_stream *st) { st->refs++; }

static void stream_unref(p2p_stream *st) {
  if (--st->refs > 0) return;
  if (st->mss) mss_free(st->mss);
  free(st->protocol);
  buf_free(&st->sendq);
  buf_free(&st->recvq);
  free(st);
}

static p2p_stream *stream_new(p2p_conn *c, yamux_stream *ys, bool inbound) {
  p2p_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->conn = c;
  st->ys = ys;
  st->inbound = inbound;
  st->refs = 1;
  buf_init(&st->sendq, c->h->cfg.stream_send_max + HOST_STREAM_RAW_SLACK);
  /* Yamux never lets the peer have more than max_window outstanding. */
  buf_init(&st->recvq, (16u << 20) + (1u << 20));
  st->deadline_ms = clock_mono_ms() + c->h->cfg.stream_negotiate_timeout_ms;
  st->next = c->streams;
  if (c->streams) c->streams->prev = st;
  c->streams = st;
  c->n_streams++;
  yamux_stream_set_user(ys, st);
  return st;
}

static void stream_unlink(p2p_stream *st) {
  p2p_conn *c = st->conn;
  if (st->prev) st->prev->next = st->next;
  else if (c->streams == st) c->streams = st->next;
  if (st->next) st->next->prev = st->prev;
  st->prev = st->next = NULL;
  c->n_streams--;
  if (c->n_streams == 0) c->idle_since_ms = clock_mono_ms();
}

/* The stream is over: release the Yamux handle (RST if our write side is still open), tell
 * the owner once, drop the list's reference. */
static void stream_finalize(p2p_stream *st, int err) {
  if (st->state == STREAM_DEAD) return;
  bool negotiating = st->state == STREAM_NEGOTIATING;
  st->state = STREAM_DEAD;
  st->close_err = err;
  p2p_conn *c = st->conn;
  stream_unlink(st);
  if (st->ys) {
    yamux_stream_set_user(st->ys, NULL);
    yamux_stream_release(st->ys);
    st->ys = NULL;
  }
  stream_ref(st);
  if (negotiating && !st->inbound && st->open_cb) {
    p2p_open_fn cb = st->open_cb;
    st->open_cb = NULL;
    cb(NULL, err ? err : -ECONNRESET, st->open_ud);
  } else if (st->has_cbs && st->cbs.on_close) {
    st->cbs.on_close(st, err, st->ud);
  }
  stream_unref(st);
  stream_unref(st);
  if (c->state == CONN_READY) conn_check_drain(c);
}

static void stream_check_done(p2p_stream *st) {
  if (st->state == STREAM_OPEN && st->fin_sent && st->remote_fin && st->eof_delivered)
    stream_finalize(st, 0);
}

/* Bytes that must go out regardless of the app's cap (multistream-select replies): the queue's
 * ceiling leaves HOST_STREAM_RAW_SLACK above the app's cap for them. */
static void stream_send_raw(p2p_stream *st, buf *out) {
  if (!buf_len(out)) return;
  int rc = buf_append(&st->sendq, buf_ptr(out), buf_len(out));
  buf_reset(out);
  if (rc) {
    p2p_stream_reset(st);
    return;
  }
  stream_pump(st);
}

static void stream_pump_locked(p2p_stream *st);

/* Moves queued bytes into Yamux, sends FIN when asked and drained, reports writability. */
static void stream_pump(p2p_stream *st) {
  if (st->state == STREAM_DEAD || !st->ys) return;
  stream_ref(st);
  stream_pump_locked(st);
  stream_unref(st);
}

static void stream_pump_locked(p2p_stream *st) {
  while (buf_len(&st->sendq)) {
    ssize_t n = yamux_stream_write(st->ys, buf_ptr(&st->sendq), buf_len(&st->sendq));
    if (n == -EAGAIN) break;
    if (n < 0) {
      stream_finalize(st, n == -EPIPE ? -EPIPE : -ECONNRESET);
      return;
    }
    buf_consume(&st->sendq, (size_t)n);
  }
  if (st->state == STREAM_OPEN && !buf_len(&st->sendq) && st->fin_requested && !st->fin_sent) {
    st->fin_sent = true;
    if (yamux_stream_close(st->ys) < 0) {
      stream_finalize(st, -ECONNRESET);
      return;
    }
  }
  if (st->state == STREAM_OPEN && st->want_writable && buf_len(&st->sendq) < st->conn->h->cfg.stream_send_hwm) {
    st->want_writable = false;
    if (st->has_cbs && st->cbs.on_writable) {
      st->cbs.on_writable(st, st->ud);
      if (st->state == STREAM_DEAD) return;
    }
  }
  stream_check_done(st);
}

static void stream_deliver(p2p_stream *st) {
  if (st->delivering || st->in_setup) return;
  st->delivering = true;
  stream_ref(st);
  while (st->state == STREAM_OPEN && !st->paused && st->has_cbs && buf_len(&st->recvq)) {
    size_t n = buf_len(&st->recvq);
    if (n > HOST_READ_CHUNK) n = HOST_READ_CHUNK;
    if (st->cbs.on_data) st->cbs.on_data(st, buf_ptr(&st->recvq), n, st->ud);
    buf_consume(&st->recvq, n);
    if (st->ys && yamux_stream_consume(st->ys, n) < 0) {
      stream_finalize(st, -ECONNRESET);
      break;
    }
  }
  if (st->state == STREAM_OPEN && st->remote_fin && !buf_len(&st->recvq) && !st->paused && st->has_cbs &&
      !st->eof_delivered) {
    st->eof_delivered = true;
    if (st->cbs.on_eof) st->cbs.on_eof(st, st->ud);
  }
  st->delivering = false;
  if (st->state == STREAM_OPEN) stream_check_done(st);
  stream_unref(st);
}

static bool match_handler(void *ud, const char *proto, size_t len) {
  (void)len;
  return host_find_handler((p2p_host *)ud, proto) != NULL;
}

/* multistream-select agreed on this stream: hand it to its owner. */
static void stream_negotiated(p2p_stream *st) {
  st->protocol = strdup(mss_selected(st->mss));
  mss_free(st->mss);
  st->mss = NULL;
  if (!st->protocol) {
    p2p_stream_reset(st);
    return;
  }
  st->state = STREAM_OPEN;
  st->deadline_ms = 0;
  stream_ref(st);
  st->in_setup = true;
  if (st->inbound) {
    host_handler *hd = host_find_handler(st->conn->h, st->protocol);
    if (hd) hd->fn(st, hd->ud);
    if (st->state == STREAM_OPEN && !st->has_cbs) {
      log_warn("p2p handler set no callbacks; resetting stream", "{s:s}", "protocol", st->protocol);
      st->in_setup = false;
      p2p_stream_reset(st);
    }
  } else {
    p2p_open_fn cb = st->open_cb;
    st->open_cb = NULL;
    if (cb) cb(st, 0, st->open_ud);
  }
  st->in_setup = false;
  if (st->state == STREAM_OPEN) {
    stream_deliver(st);
    stream_pump(st);
  }
  stream_unref(st);
}

static void stream_on_bytes(p2p_stream *st, const uint8_t *data, size_t len) {
  if (st->state == STREAM_NEGOTIATING) {
    buf out;
    buf_init(&out, MSS_MAX_MSG * 4);
    ssize_t used = mss_feed(st->mss, data, len, &out);
    stream_send_raw(st, &out);
    buf_free(&out);
    if (st->state == STREAM_DEAD) return;
    if (used < 0) {
      (void)!yamux_stream_consume(st->ys, len);
      int err = used == -ENOPROTOOPT ? -EPROTONOSUPPORT : (int)used;
      if (st->ys) yamux_stream_reset(st->ys);
      stream_finalize(st, err);
      return;
    }
    if (yamux_stream_consume(st->ys, (size_t)used) < 0) {
      stream_finalize(st, -ECONNRESET);
      return;
    }
    if (mss_state_get(st->mss) != MSS_DONE) return;
    data += used;
    len -= (size_t)used;
    stream_ref(st);
    stream_negotiated(st);
    bool dead = st->state == STREAM_DEAD;
    stream_unref(st);
    if (dead) {
      /* Bytes of a stream nobody took: still credit the window. */
      return;
    }
  }
  if (!len) return;
  if (st->state != STREAM_OPEN) return;
  if (!st->paused && st->has_cbs && !buf_len(&st->recvq) && !st->delivering && !st->in_setup) {
    stream_ref(st);
    if (st->cbs.on_data) st->cbs.on_data(st, data, len, st->ud);
    if (st->ys && yamux_stream_consume(st->ys, len) < 0) stream_finalize(st, -ECONNRESET);
    stream_unref(st);
    return;
  }
  if (buf_append(&st->recvq, data, len) != 0) {
    p2p_stream_reset(st);
    return;
  }
  if (buf_len(&st->recvq) > st->max_recvq) st->max_recvq = buf_len(&st->recvq);
}

/* ---------------------------------------------------------------- Yamux callbacks */

static int y_on_open(yamux_session *s, yamux_stream *ys, void *ud) {
  (void)s;
  p2p_conn *c = ud;
  if (c->draining || c->h->closing || c->state != CONN_READY) return -ECONNREFUSED;
  p2p_stream *st = stream_new(c, ys, true);
  if (!st) return -ENOMEM;
  if (mss_listener_new(&st->mss, NULL, 0) != 0) {
    st->ys = NULL; /* refused: Yamux drops the handle itself */
    stream_unlink(st);
    stream_unref(st);
    return -ENOMEM;
  }
  mss_listener_set_match(st->mss, match_handler, c->h);
  buf out;
  buf_init(&out, MSS_MAX_MSG * 2);
  if (mss_start(st->mss, &out) == 0) stream_send_raw(st, &out);
  buf_free(&out);
  return 0;
}

static void y_on_data(yamux_session *s, yamux_stream *ys, const uint8_t *data, size_t len, void *ud) {
  (void)s;
  (void)ud;
  p2p_stream *st = yamux_stream_user(ys);
  if (!st) return;
  stream_ref(st);
  stream_on_bytes(st, data, len);
  stream_unref(st);
}

static void y_on_fin(yamux_session *s, yamux_stream *ys, void *ud) {
  (void)s;
  (void)ud;
  p2p_stream *st = yamux_stream_user(ys);
  if (!st) return;
  st->remote_fin = true;
  if (st->state == STREAM_NEGOTIATING) {
    yamux_stream_reset(ys);
    stream_finalize(st, -ECONNRESET);
    return;
  }
  stream_deliver(st);
}

static void y_on_reset(yamux_session *s, yamux_stream *ys, void *ud) {
  (void)s;
  p2p_conn *c = ud;
  p2p_stream *st = yamux_stream_user(ys);
  if (!st) return;
  stream_finalize(st, c->state == CONN_CLOSED ? -ECONNABORTED : -ECONNRESET);
}

static void y_on_writable(yamux_session *s, yamux_stream *ys, void *ud) {
  (void)s;
  (void)ud;
  p2p_stream *st = yamux_stream_user(ys);
  if (st) stream_pump(st);
}

static void y_on_goaway(yamux_session *s, uint32_t code, void *ud) {
  (void)s;
  p2p_conn *c = ud;
  log_info("p2p goaway received", "{s:s, s:i}", "peer", c->remote_id, "code", (int)code);
  c->draining = true;
  conn_check_drain(c);
}

/* ---------------------------------------------------------------- socket I/O */

/* A write request whose buffer can take `need` bytes: recycled from the host's pool when
 * possible, because fresh large buffers would be mmap'd and page-faulted on every write. */
static wreq *wreq_get(p2p_conn *c, size_t need) {
  p2p_host *h = c->h;
  wreq *w = h->wfree;
  if (w) {
    h->wfree = w->next;
    h->n_wfree--;
    buf_reset(&w->data);
  } else {
    w = calloc(1, sizeof *w);
    if (!w) return NULL;
  }
  w->c = c;
  buf_set_max(&w->data, need > buf_cap(&w->data) ? need : buf_cap(&w->data));
  return w;
}

static void wreq_put(p2p_conn *c, wreq *w) {
  p2p_host *h = c->h;
  if (h->n_wfree < HOST_WPOOL && buf_cap(&w->data) <= 2 * HOST_WRITE_CHUNK) {
    w->next = h->wfree;
    h->wfree = w;
    h->n_wfree++;
    return;
  }
  buf_free(&w->data);
  free(w);
}

void conn_free_wpool(p2p_host *h) {
  while (h->wfree) {
    wreq *w = h->wfree;
    h->wfree = w->next;
    buf_free(&w->data);
    free(w);
  }
  h->n_wfree = 0;
}

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  p2p_conn *c = w->c;
  c->tx_pending -= buf_len(&w->data);
  wreq_put(c, w);
  if (c->state == CONN_CLOSED) return;
  if (status < 0) {
    conn_close(c, -ECONNABORTED);
    return;
  }
  if (c->state == CONN_READY) {
    conn_flush(c);
    conn_check_drain(c);
  }
}

static int wreq_submit(p2p_conn *c, wreq *w) {
  uv_buf_t ub = uv_buf_init((char *)buf_ptr(&w->data), (unsigned)buf_len(&w->data));
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_written);
  if (rc < 0) {
    buf_free(&w->data);
    free(w);
    return rc;
  }
  c->tx_pending += ub.len;
  c->h->stats.bytes_out += ub.len;
  return 0;
}

/* Hands b's bytes to the socket (b is left empty and reusable). */
static int conn_write_buf(p2p_conn *c, buf *b) {
  if (!buf_len(b)) return 0;
  if (c->state == CONN_CLOSED) {
    buf_reset(b);
    return -ECONNABORTED;
  }
  wreq *w = wreq_get(c, buf_len(b));
  if (!w) return -ENOMEM;
  int rc = buf_append(&w->data, buf_ptr(b), buf_len(b));
  buf_reset(b);
  if (rc) {
    wreq_put(c, w);
    return rc;
  }
  return wreq_submit(c, w);
}

/* Encrypts n plaintext bytes straight into a write buffer and sends it. */
static int conn_send_plain(p2p_conn *c, const uint8_t *p, size_t n) {
  if (c->state == CONN_CLOSED) return -ECONNABORTED;
  size_t frames = n / NOISE_MAX_PLAINTEXT + 1;
  wreq *w = wreq_get(c, n + frames * (2 + NOISE_TAG_LEN));
  if (!w) return -ENOMEM;
  int rc = noise_encrypt(c->noise, p, n, &w->data);
  if (rc) {
    wreq_put(c, w);
    return rc;
  }
  return wreq_submit(c, w);
}

static void conn_flush(p2p_conn *c) {
  if (c->state != CONN_READY || !c->ymx) return;
  if (c->flushing) {
    c->flush_again = true;
    return;
  }
  c->flushing = true;
  do {
    c->flush_again = false;
    while (c->state == CONN_READY && c->tx_pending < c->h->cfg.conn_write_queue_max) {
      size_t len = 0;
      const uint8_t *p = yamux_session_out(c->ymx, &len);
      if (!p || !len) break;
      if (len > HOST_WRITE_CHUNK) len = HOST_WRITE_CHUNK;
      int rc = conn_send_plain(c, p, len);
      if (rc < 0) {
        c->flushing = false;
        conn_close(c, rc);
        return;
      }
      yamux_session_out_consume(c->ymx, len);
    }
  } while (c->flush_again && c->state == CONN_READY && c->tx_pending < c->h->cfg.conn_write_queue_max);
  c->flushing = false;
}

static void conn_check_drain(p2p_conn *c) {
  if (c->state != CONN_READY || !c->draining || c->n_streams || c->tx_pending) return;
  if (c->ymx && yamux_session_out_pending(c->ymx)) return;
  conn_close(c, 0);
}

/* ---------------------------------------------------------------- the upgrade */

static int conn_start_yamux(p2p_conn *c) {
  yamux_config yc;
  yamux_config_default(&yc);
  yc.max_streams = c->h->cfg.max_streams_per_conn;
  if (c->h->cfg.yamux_window) yc.initial_window = c->h->cfg.yamux_window;
  yamux_callbacks cb = {
      .on_stream_open = y_on_open,
      .on_stream_data = y_on_data,
      .on_stream_fin = y_on_fin,
      .on_stream_reset = y_on_reset,
      .on_stream_writable = y_on_writable,
      .on_goaway = y_on_goaway,
  };
  int rc = yamux_session_new(&c->ymx, c->outbound, &yc, &cb, c);
  if (rc) return rc;
  c->state = CONN_READY;
  c->was_ready = true;
  c->deadline_ms = 0;
  c->idle_since_ms = clock_mono_ms();
  host_conn_ready(c);
  conn_flush(c);
  return 0;
}

static int conn_noise_established(p2p_conn *c) {
  const peerid *rp = noise_remote_peer(c->noise);
  if (!rp) return -EACCES;
  if (c->has_expected && !peerid_equal(rp, &c->expected)) return -EACCES;
  c->remote = *rp;
  if (peerid_to_string(&c->remote, c->remote_id, sizeof c->remote_id) != 0) return -EINVAL;
  const char *mux = noise_negotiated_muxer(c->noise);
  if (mux) {
    if (strcmp(mux, YAMUX_PROTO_ID) != 0) return -ENOPROTOOPT;
    return conn_start_yamux(c);
  }
  c->state = CONN_MSS_MUXER;
  int rc = c->outbound ? mss_dialer_new(&c->mss, MUX_PROTOS, 1) : mss_listener_new(&c->mss, MUX_PROTOS, 1);
  if (rc) return rc;
  buf out;
  buf_init(&out, MSS_MAX_MSG * 2);
  rc = mss_start(c->mss, &out);
  if (rc == 0) rc = conn_send_plain(c, buf_ptr(&out), buf_len(&out));
  buf_free(&out);
  return rc;
}

static int conn_start_noise(p2p_conn *c) {
  noise_config nc = {
      .initiator = c->outbound,
      .identity = &c->h->key,
      .expected_remote = c->has_expected ? &c->expected : NULL,
      .muxers = MUX_PROTOS,
      .n_muxers = 1,
      .aead = c->h->cfg.noise_aead,
  };
  int rc = noise_session_new(&nc, &c->noise);
  if (rc) return rc;
  c->state = CONN_NOISE;
  buf out;
  buf_init(&out, NOISE_MAX_FRAME + 2);
  rc = noise_start(c->noise, &out);
  if (rc >= 0) rc = conn_write_buf(c, &out);
  buf_free(&out);
  return rc < 0 ? rc : 0;
}

/* Decrypted bytes: multistream-select for the muxer, then Yamux. */
static int conn_process_plain(p2p_conn *c) {
  while (buf_len(&c->plain) && c->state != CONN_CLOSED) {
    if (c->state == CONN_MSS_MUXER) {
      buf out;
      buf_init(&out, MSS_MAX_MSG * 4);
      ssize_t used = mss_feed(c->mss, buf_ptr(&c->plain), buf_len(&c->plain), &out);
      int rc = 0;
      if (buf_len(&out)) rc = conn_send_plain(c, buf_ptr(&out), buf_len(&out));
      buf_free(&out);
      if (used < 0) return (int)used;
      if (rc) return rc;
      buf_consume(&c->plain, (size_t)used);
      if (mss_state_get(c->mss) != MSS_DONE) return 0;
      mss_free(c->mss);
      c->mss = NULL;
      rc = conn_start_yamux(c);
      if (rc) return rc;
    } else if (c->state == CONN_READY) {
      int rc = yamux_session_feed(c->ymx, buf_ptr(&c->plain), buf_len(&c->plain));
      buf_reset(&c->plain);
      conn_flush(c);
      return rc;
    } else {
      return 0;
    }
  }
  return 0;
}

static int conn_feed_wire(p2p_conn *c, const uint8_t *p, size_t n) {
  if (c->state == CONN_MSS_SECURITY) {
    buf out;
    buf_init(&out, MSS_MAX_MSG * 4);
    ssize_t used = mss_feed(c->mss, p, n, &out);
    int rc = conn_write_buf(c, &out);
    buf_free(&out);
    if (used < 0) return (int)used;
    if (rc) return rc;
    if (mss_state_get(c->mss) != MSS_DONE) return 0;
    mss_free(c->mss);
    c->mss = NULL;
    rc = conn_start_noise(c);
    if (rc) return rc;
    p += used;
    n -= (size_t)used;
    if (!n) return 0;
  }
  if (c->state < CONN_NOISE || c->state == CONN_CLOSED) return 0;
  buf wire;
  buf_init(&wire, 4 * (NOISE_MAX_FRAME + 2));
  int ev = noise_feed(c->noise, p, n, &wire, &c->plain);
  int rc = conn_write_buf(c, &wire);
  buf_free(&wire);
  if (ev < 0) return ev;
  if (rc) return rc;
  if ((ev & NOISE_EV_ESTABLISHED) && c->state == CONN_NOISE) {
    rc = conn_noise_established(c);
    if (rc) return rc;
  }
  return conn_process_plain(c);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b) {
  (void)suggested;
  p2p_conn *c = hd->data;
  b->base = (char *)c->h->rbuf;
  b->len = HOST_READ_CHUNK;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  p2p_conn *c = s->data;
  if (n == 0 || c->state == CONN_CLOSED) return;
  if (n < 0) {
    conn_close(c, n == UV_EOF ? (c->state == CONN_READY ? 0 : -ECONNRESET) : -ECONNABORTED);
    return;
  }
  c->h->stats.bytes_in += (uint64_t)n;
  int rc = conn_feed_wire(c, (const uint8_t *)b->base, (size_t)n);
  if (rc < 0) {
    if (c->state == CONN_READY) conn_flush(c); /* a GoAway(protocol error) may be queued */
    conn_close(c, rc);
  }
}

/* ---------------------------------------------------------------- life cycle */

p2p_conn *conn_new(p2p_host *h, bool outbound) {
  p2p_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->h = h;
  c->outbound = outbound;
  c->state = CONN_TCP_CONNECTING;
  buf_init(&c->plain, HOST_PLAIN_MAX);
  c->created_ms = clock_mono_ms();
  c->deadline_ms = c->created_ms + h->cfg.handshake_timeout_ms;
  c->tcp.data = c;
  c->connect_req.data = c;
  return c;
}

int conn_start(p2p_conn *c) {
  (void)uv_tcp_nodelay(&c->tcp, 1);
  int rc = c->outbound ? mss_dialer_new(&c->mss, NOISE_PROTOS, 1) : mss_listener_new(&c->mss, NOISE_PROTOS, 1);
  if (rc) return rc;
  c->state = CONN_MSS_SECURITY;
  rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rc) return rc;
  buf out;
  buf_init(&out, MSS_MAX_MSG * 2);
  rc = mss_start(c->mss, &out);
  if (rc == 0) rc = conn_write_buf(c, &out);
  buf_free(&out);
  return rc;
}

static void on_conn_closed(uv_handle_t *hd) {
  p2p_conn *c = hd->data;
  if (c->ymx) yamux_session_transport_closed(c->ymx);
  while (c->streams) stream_finalize(c->streams, -ECONNABORTED);
  host_conn_closed(c);
}

void conn_close(p2p_conn *c, int err) {
  if (c->state == CONN_CLOSED) return;
  c->close_err = err;
  c->state = CONN_CLOSED;
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  }
}

void conn_drain(p2p_conn *c) {
  if (c->state != CONN_READY) {
    conn_close(c, -ECANCELED);
    return;
  }
  if (!yamux_session_goaway_sent(c->ymx)) (void)!yamux_session_goaway(c->ymx, YAMUX_GOAWAY_NORMAL);
  c->draining = true;
  if (!c->drain_deadline_ms) c->drain_deadline_ms = clock_mono_ms() + HOST_DRAIN_GRACE_MS;
  conn_flush(c);
  conn_check_drain(c);
}

bool conn_is_usable(const p2p_conn *c) {
  return c->state == CONN_READY && !c->draining && !yamux_session_goaway_received(c->ymx) &&
         !yamux_session_goaway_sent(c->ymx);
}

int conn_open_stream(p2p_conn *c, const char *protocol, p2p_open_fn cb, void *ud) {
  if (!conn_is_usable(c)) return -EPIPE;
  yamux_stream *ys;
  int rc = yamux_stream_open(c->ymx, &ys);
  if (rc) return rc;
  p2p_stream *st = stream_new(c, ys, false);
  if (!st) {
    yamux_stream_reset(ys);
    yamux_stream_release(ys);
    return -ENOMEM;
  }
  const char *protos[1] = {protocol};
  rc = mss_dialer_new(&st->mss, protos, 1);
  if (rc) {
    stream_finalize(st, rc);
    return rc;
  }
  st->open_cb = cb;
  st->open_ud = ud;
  buf out;
  buf_init(&out, MSS_MAX_MSG * 2);
  if (mss_start(st->mss, &out) == 0) stream_send_raw(st, &out);
  buf_free(&out);
  conn_flush(c);
  return 0;
}

void conn_tick(p2p_conn *c, int64_t now_ms) {
  if (c->state == CONN_CLOSED) return;
  if (c->state != CONN_READY) {
    if (c->deadline_ms && now_ms > c->deadline_ms) {
      log_info("p2p handshake timeout", "{s:s}", "addr", c->remote_addr);
      conn_close(c, -ETIMEDOUT);
    }
    return;
  }
  if (c->drain_deadline_ms && now_ms > c->drain_deadline_ms) {
    log_info("p2p drain grace over; closing", "{s:s, s:i}", "peer", c->remote_id, "streams", (int)c->n_streams);
    conn_close(c, 0);
    return;
  }
  for (p2p_stream *st = c->streams, *next; st; st = next) {
    next = st->next;
    if (st->state == STREAM_NEGOTIATING && st->deadline_ms && now_ms > st->deadline_ms) {
      if (st->ys) yamux_stream_reset(st->ys);
      stream_finalize(st, -ETIMEDOUT);
    }
  }
  if (c->state == CONN_READY && !c->n_streams && c->h->cfg.idle_timeout_ms && !c->draining &&
      now_ms - c->idle_since_ms > (int64_t)c->h->cfg.idle_timeout_ms) {
    log_info("p2p idle connection closed", "{s:s}", "peer", c->remote_id);
    conn_drain(c);
  }
  conn_flush(c);
}

/* ---------------------------------------------------------------- public stream API */

void p2p_stream_set_callbacks(p2p_stream *s, const p2p_stream_callbacks *cbs, void *ud) {
  s->cbs = *cbs;
  s->ud = ud;
  s->has_cbs = true;
  if (s->state == STREAM_OPEN && !s->in_setup) {
    p2p_conn *c = s->conn;
    stream_deliver(s);
    if (c->state == CONN_READY) conn_flush(c);
  }
}

int p2p_stream_write(p2p_stream *s, const void *data, size_t len) {
  if (s->state != STREAM_OPEN || s->fin_requested || !s->ys) return -EPIPE;
  p2p_host *h = s->conn->h;
  if (len > h->cfg.stream_send_max || buf_len(&s->sendq) > h->cfg.stream_send_max - len) return -ENOBUFS;
  /* All or nothing: room in the queue for whatever Yamux will not take is made before Yamux
   * takes anything, so a failed allocation leaves the stream as it was (-ENOBUFS). */
  const uint8_t *p = data;
  bool queued_before = buf_len(&s->sendq) > 0;
  size_t direct = queued_before ? 0 : yamux_stream_write_room(s->ys);
  if (direct > len) direct = len;
  uint8_t *room;
  if (len > direct && buf_reserve(&s->sendq, len - direct, &room) != 0) return -ENOBUFS;
  stream_ref(s);
  if (!queued_before) {
    /* Yamux takes exactly `direct` (its room) or nothing; offered everything, it arms
     * on_stream_writable when it could not take it all. */
    ssize_t n = yamux_stream_write(s->ys, p, len);
    if (n == -ENOMEM || n == -EAGAIN) {
      n = 0; /* Yamux took nothing: the whole write goes to the queue */
      if (buf_reserve(&s->sendq, len, &room) != 0) {
        stream_unref(s);
        return -ENOBUFS;
      }
    } else if (n < 0) {
      stream_finalize(s, -ECONNRESET);
      stream_unref(s);
      return -EPIPE;
    }
    assert((size_t)n == direct || n == 0); /* Yamux takes all its room or nothing */
    p += n;
    len -= (size_t)n;
  }
  int rc = 0;
  if (len) {
    rc = buf_append(&s->sendq, p, len); /* within the reservation: cannot fail */
    assert(rc == 0);
  }
  if (buf_len(&s->sendq) > s->max_sendq) s->max_sendq = buf_len(&s->sendq);
  conn_flush(s->conn);
  if (rc == 0 && s->state == STREAM_OPEN && buf_len(&s->sendq) >= h->cfg.stream_send_hwm) {
    s->want_writable = true;
    rc = 1;
  }
  stream_unref(s);
  return rc;
}

size_t p2p_stream_send_queued(const p2p_stream *s) { return buf_len(&s->sendq); }

void p2p_stream_close_write(p2p_stream *s) {
  if (s->state == STREAM_DEAD || s->fin_requested) return;
  s->fin_requested = true;
  if (s->state != STREAM_OPEN) return;
  stream_ref(s);
  p2p_conn *c = s->conn;
  stream_pump(s);
  if (c->state == CONN_READY) conn_flush(c);
  stream_unref(s);
}

void p2p_stream_reset(p2p_stream *s) {
  if (s->state == STREAM_DEAD) return;
  p2p_conn *c = s->conn;
  if (s->ys) yamux_stream_reset(s->ys);
  stream_finalize(s, -ECONNRESET);
  if (c->state == CONN_READY) conn_flush(c);
}

void p2p_stream_pause_read(p2p_stream *s, bool paused) {
  if (s->paused == paused) return;
  s->paused = paused;
  if (!paused && s->state == STREAM_OPEN) {
    p2p_conn *c = s->conn;
    stream_deliver(s);
    if (c->state == CONN_READY) conn_flush(c);
  }
}

const char *p2p_stream_protocol(const p2p_stream *s) { return s->protocol ? s->protocol : ""; }
const char *p2p_stream_remote_peer(const p2p_stream *s) { return s->conn->remote_id; }
const char *p2p_stream_remote_addr(const p2p_stream *s) { return s->conn->remote_addr; }
bool p2p_stream_is_inbound(const p2p_stream *s) { return s->inbound; }
size_t p2p_stream_max_send_queued(const p2p_stream *s) { return s->max_sendq; }
size_t p2p_stream_max_recv_buffered(const p2p_stream *s) { return s->max_recvq; }
