/* conn.c — one libp2p connection over a p2p_transport (transport.h: TCP, or a stream of
 * another connection): the upgrade (libp2p/specs connections/README.md "Protocol Negotiation"
 * / "Upgrading Connections": multistream-select for /noise, the Noise XX handshake, then
 * /yamux/1.0.0 — chosen inside Noise through NoiseExtensions.stream_muxers when both sides
 * offer it, else by multistream-select over the secured channel), then Yamux; the streams
 * themselves live in stream.c.
 *
 * Data path out: stream queues → Yamux output (soft-limited) → noise_encrypt straight into a
 * buffer lent by the transport → p2p_transport_write, while the transport is writable (TCP:
 * fewer than conn_write_queue_max bytes in flight). Data path in: transport on_read →
 * noise_feed → yamux_session_feed → stream.c. Whatever the streams write while a read is
 * being handled is flushed once when it is done: one Noise frame (up to 64 KiB) and one write
 * per read, not one per reply — except that the output leaves early once it reaches the write
 * policy's mark (p2p_host_config.write_early_bytes, doubled after each early send of the same
 * read or loop iteration; conn_wrote), so the peer works on the first answers while this side
 * makes the rest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/host/internal.h"
#include "p2p/host/transport_stream.h"
#include "util/clock.h"
#include "util/log.h"

static const char *const NOISE_PROTOS[] = {NOISE_PROTOCOL_ID};
static const char *const MUX_PROTOS[] = {YAMUX_PROTO_ID};

/* ---------------------------------------------------------------- writing */

/* Hands b's bytes to the transport (b is left empty and reusable). */
static int conn_write_buf(p2p_conn *c, buf *b) {
  if (!buf_len(b)) return 0;
  if (c->state == CONN_CLOSED) {
    buf_reset(b);
    return -ECONNABORTED;
  }
  buf *w = p2p_transport_write_buf(c->t, buf_len(b));
  if (!w) {
    buf_reset(b);
    return -ENOMEM;
  }
  int rc = buf_append(w, buf_ptr(b), buf_len(b));
  buf_reset(b);
  if (rc) {
    p2p_transport_write_cancel(c->t, w);
    return rc;
  }
  c->h->stats.writes_out++;
  return p2p_transport_write(c->t, w);
}

/* Encrypts n plaintext bytes straight into a transport buffer and sends it. */
static int conn_send_plain(p2p_conn *c, const uint8_t *p, size_t n) {
  if (c->state == CONN_CLOSED) return -ECONNABORTED;
  size_t frames = n / NOISE_MAX_PLAINTEXT + 1;
  buf *w = p2p_transport_write_buf(c->t, n + frames * (2 + NOISE_TAG_LEN));
  if (!w) return -ENOMEM;
  int rc = noise_encrypt(c->noise, p, n, w);
  if (rc) {
    p2p_transport_write_cancel(c->t, w);
    return rc;
  }
  c->h->stats.writes_out++;
  c->h->stats.noise_frames_out += (n + NOISE_MAX_PLAINTEXT - 1) / NOISE_MAX_PLAINTEXT;
  return p2p_transport_write(c->t, w);
}

/* Moves Yamux output to the transport while it is writable. early: a send of conn_wrote (maybe
 * inside a read): the read's or iteration's last flush still comes, and checks draining. */
static void conn_send_out(p2p_conn *c, bool early) {
  c->flushing = true;
  do {
    c->flush_again = false;
    while (c->state == CONN_READY && p2p_transport_writable(c->t)) {
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
  } while (c->flush_again && c->state == CONN_READY && p2p_transport_writable(c->t));
  c->flushing = false;
  /* A write the transport finished at once (TCP: uv_try_write) reports no on_drain: a
   * draining connection whose last bytes just left is checked here instead. */
  if (!early && c->draining && c->state == CONN_READY) conn_check_drain(c);
}

void conn_flush(p2p_conn *c) {
  if (c->state != CONN_READY || !c->ymx) return;
  if (c->in_read) return; /* c_on_read flushes once at its end */
  if (c->flushing) {
    c->flush_again = true;
    return;
  }
  c->early_mark = c->h->cfg.write_early_bytes; /* a read or iteration ends: the mark starts again */
  conn_send_out(c, false);
}

void conn_wrote(p2p_conn *c) {
  if (c->state != CONN_READY || !c->ymx) return;
  if (!c->flushing && yamux_session_out_pending(c->ymx) >= c->early_mark) {
    /* off (SIZE_MAX, host.c) is never reached: a Yamux output is far smaller */
    c->early_mark = c->early_mark > SIZE_MAX / 2 ? SIZE_MAX : c->early_mark * 2;
    c->h->stats.early_sends++;
    conn_send_out(c, true); /* may close c (conn_close: freed later, as in any flush) */
  }
  conn_flush_soon(c); /* the rest (or what the transport did not take) at the end, as before */
}

static void on_flush_prep(uv_prepare_t *prep);

void conn_flush_soon(p2p_conn *c) {
  if (c->state != CONN_READY || !c->ymx || c->in_read || c->flush_queued) return;
  p2p_host *h = c->h;
  c->flush_queued = true;
  c->flush_next = NULL;
  if (h->flush_tail) h->flush_tail->flush_next = c;
  else h->flush_head = c;
  h->flush_tail = c;
  (void)!uv_prepare_start(&h->flush_prep, on_flush_prep);
}

static void on_flush_prep(uv_prepare_t *prep) {
  p2p_host *h = prep->data;
  p2p_conn *c;
  while ((c = h->flush_head)) {
    h->flush_head = c->flush_next;
    if (!h->flush_head) h->flush_tail = NULL;
    c->flush_next = NULL;
    c->flush_queued = false;
    conn_flush(c); /* may close c (freed later, from the transport's close callback) */
  }
  uv_prepare_stop(&h->flush_prep);
}

void conn_flush_forget(p2p_conn *c) {
  if (!c->flush_queued) return;
  p2p_host *h = c->h;
  p2p_conn *prev = NULL;
  for (p2p_conn *x = h->flush_head; x; prev = x, x = x->flush_next) {
    if (x != c) continue;
    if (prev) prev->flush_next = c->flush_next;
    else h->flush_head = c->flush_next;
    if (h->flush_tail == c) h->flush_tail = prev;
    break;
  }
  c->flush_queued = false;
  c->flush_next = NULL;
}

void conn_check_drain(p2p_conn *c) {
  if (c->state != CONN_READY || !c->draining || c->n_streams || p2p_transport_queued(c->t)) return;
  if (c->ymx && yamux_session_out_pending(c->ymx)) return;
  conn_close(c, 0);
}

void conn_stream_gone(p2p_conn *c) {
  if (c->n_streams == 0) c->idle_since_ms = clock_mono_ms();
}

/* ---------------------------------------------------------------- the upgrade */

static void y_on_goaway(yamux_session *s, uint32_t code, void *ud) {
  (void)s;
  p2p_conn *c = ud;
  log_debug("p2p goaway received", "{s:s, s:i}", "peer", c->remote_id, "code", (int)code);
  c->draining = true;
  conn_check_drain(c);
}

static int conn_start_yamux(p2p_conn *c) {
  yamux_config yc;
  yamux_config_default(&yc);
  yc.max_streams = c->h->cfg.max_streams_per_conn;
  if (c->h->cfg.yamux_window) yc.initial_window = c->h->cfg.yamux_window;
  yamux_callbacks cb = {
      .on_stream_open = stream_on_yamux_open,
      .on_stream_data = stream_on_yamux_data,
      .on_stream_fin = stream_on_yamux_fin,
      .on_stream_reset = stream_on_yamux_reset,
      .on_stream_writable = stream_on_yamux_writable,
      .on_goaway = y_on_goaway,
  };
  int rc = yamux_session_new(&c->ymx, c->initiator, &yc, &cb, c);
  if (rc) return rc;
  c->state = CONN_READY;
  c->was_ready = true;
  c->early_mark = c->h->cfg.write_early_bytes;
  c->deadline_ms = 0;
  c->idle_since_ms = clock_mono_ms();
  if (!host_conn_ready(c)) return 0; /* refused: closing */
  conn_flush(c);
  return 0;
}

/* A dial whose peer proved another PeerId (Noise failed with -EACCES): kept for an error
 * message naming both ids (p2p_host_last_mismatch). */
static void conn_note_mismatch(p2p_conn *c) {
  const peerid *rp = c->noise ? noise_proved_peer(c->noise) : NULL;
  if (!c->has_expected) return;
  p2p_dial_mismatch *m = &c->h->last_mismatch;
  snprintf(m->addr, sizeof m->addr, "%s", c->remote_addr);
  if (peerid_to_string(&c->expected, m->expected, sizeof m->expected) != 0) m->expected[0] = 0;
  if (!rp || peerid_to_string(rp, m->proved, sizeof m->proved) != 0) m->proved[0] = 0;
}

static int conn_noise_established(p2p_conn *c) {
  const peerid *rp = noise_remote_peer(c->noise);
  if (!rp) return -EACCES;
  if (c->has_expected && !peerid_equal(rp, &c->expected)) return -EACCES;
  c->remote = *rp;
  if (peerid_to_string(&c->remote, c->remote_id, sizeof c->remote_id) != 0) return -EINVAL;
  int irc = host_conn_identified(c); /* inbound: a remembered peer's handshake, or a reserved one */
  if (irc) return irc;
  const char *mux = noise_negotiated_muxer(c->noise);
  if (mux) {
    if (strcmp(mux, YAMUX_PROTO_ID) != 0) return -ENOPROTOOPT;
    return conn_start_yamux(c);
  }
  c->state = CONN_MSS_MUXER;
  int rc = c->initiator ? mss_dialer_new(&c->mss, MUX_PROTOS, 1) : mss_listener_new(&c->mss, MUX_PROTOS, 1);
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
      .initiator = c->initiator,
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
  if (ev == -EACCES) conn_note_mismatch(c);
  if (ev < 0) return ev;
  if (rc) return rc;
  if ((ev & NOISE_EV_ESTABLISHED) && c->state == CONN_NOISE) {
    rc = conn_noise_established(c);
    if (rc) return rc;
  }
  return conn_process_plain(c);
}

/* ---------------------------------------------------------------- transport events */

static void c_on_open(void *ud, int status) {
  p2p_conn *c = ud;
  if (c->state == CONN_CLOSED) return;
  int rc = status < 0 ? status : conn_start(c);
  if (rc) conn_close(c, rc);
}

static void c_on_read(void *ud, const uint8_t *data, size_t len) {
  p2p_conn *c = ud;
  if (c->state == CONN_CLOSED) return;
  c->got_bytes = true;
  c->in_read++;
  int rc = conn_feed_wire(c, data, len);
  c->in_read--;
  if (rc >= 0 && c->state == CONN_READY) conn_flush(c); /* one write for the whole read */
  if (rc < 0) {
    if (c->state == CONN_READY) conn_flush(c); /* a GoAway(protocol error) may be queued */
    conn_close(c, rc);
  }
}

static void c_on_end(void *ud, int err) {
  p2p_conn *c = ud;
  if (c->state == CONN_CLOSED) return;
  /* A clean end of input is a normal close once Yamux runs, a reset before. */
  conn_close(c, err ? err : c->state == CONN_READY ? 0 : -ECONNRESET);
}

static void c_on_drain(void *ud) {
  p2p_conn *c = ud;
  if (c->state != CONN_READY) return;
  conn_flush(c);
  conn_check_drain(c);
}

static void c_on_closed(void *ud) {
  p2p_conn *c = ud;
  CHECK(c->state == CONN_CLOSED);
  c->t = NULL; /* freed by the transport after this returns */
  if (c->ymx) yamux_session_transport_closed(c->ymx);
  while (c->streams) stream_finalize(c->streams, -ECONNABORTED);
  host_conn_closed(c);
}

static const p2p_transport_events conn_events = {
    .on_open = c_on_open, .on_read = c_on_read, .on_end = c_on_end, .on_drain = c_on_drain, .on_closed = c_on_closed};

/* ---------------------------------------------------------------- life cycle */

p2p_conn *conn_new(p2p_host *h, p2p_transport *t, bool outbound) {
  p2p_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->h = h;
  c->id = ++h->next_conn_id;
  c->outbound = outbound;
  c->initiator = outbound;
  c->state = CONN_CONNECTING;
  buf_init(&c->plain, HOST_PLAIN_MAX);
  c->created_ms = clock_mono_ms();
  c->deadline_ms = c->created_ms + h->cfg.handshake_timeout_ms;
  if (t) conn_attach(c, t);
  return c;
}

void conn_attach(p2p_conn *c, p2p_transport *t) {
  CHECK(!c->t && c->state == CONN_CONNECTING);
  c->t = t;
  c->relayed = t->relayed;
  p2p_transport_bind(t, &conn_events, c);
}

void conn_free_unused(p2p_conn *c) {
  CHECK(!c->t && !c->prev && !c->next && c->h->conns != c);
  buf_free(&c->plain);
  free(c);
}

int conn_start(p2p_conn *c) {
  CHECK(c->state == CONN_CONNECTING && !c->mss);
  int rc = c->initiator ? mss_dialer_new(&c->mss, NOISE_PROTOS, 1) : mss_listener_new(&c->mss, NOISE_PROTOS, 1);
  if (rc) return rc;
  c->state = CONN_MSS_SECURITY;
  buf out;
  buf_init(&out, MSS_MAX_MSG * 2);
  rc = mss_start(c->mss, &out);
  if (rc == 0) rc = conn_write_buf(c, &out);
  buf_free(&out);
  /* Reading starts last: a stream transport may deliver waiting bytes from inside it. */
  if (rc == 0) rc = p2p_transport_read_start(c->t);
  return rc;
}

void conn_close(p2p_conn *c, int err) {
  if (c->state == CONN_CLOSED) return;
  if (c->relayed && c->t && (err == -ETIME || err == -EDQUOT)) { /* transport_stream.h */
    p2p_relay_usage u;
    p2p_stream_transport_usage(c->t, clock_mono_ms(), &u);
    log_info("p2p relayed connection closed: the relay's limit is reached", "{s:s, s:s, s:s, s:I, s:I, s:I, s:b}",
             "peer", c->remote_id[0] ? c->remote_id : "?", "via", c->remote_addr, "limit",
             err == -ETIME ? "duration" : "data", "max",
             (json_int_t)(err == -ETIME ? u.limit.duration_ms : u.limit.data_bytes), "bytes_in",
             (json_int_t)u.data_in, "bytes_out", (json_int_t)u.data_out, "data_total", u.limit.data_total);
  }
  c->close_err = err;
  c->state = CONN_CLOSED;
  CHECK(c->t && !c->t->closing);
  p2p_transport_close(c->t, err);
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

void conn_tick(p2p_conn *c, int64_t now_ms) {
  if (c->state == CONN_CLOSED) return;
  if (c->relayed && c->t && p2p_stream_transport_expired(c->t, now_ms)) {
    conn_close(c, -ETIME); /* the relay's duration limit (logged there) */
    return;
  }
  if (c->state != CONN_READY) {
    if (!c->outbound && !c->got_bytes && c->h->cfg.first_byte_timeout_ms &&
        now_ms - c->created_ms > (int64_t)c->h->cfg.first_byte_timeout_ms) {
      /* a connection that says nothing holds a handshake slot for nothing (issue 9 item 1) */
      c->h->stats.first_byte_timeouts++;
      log_debug("p2p inbound connection sent nothing; closed", "{s:s}", "addr", c->remote_addr);
      conn_close(c, -ETIMEDOUT);
    } else if (c->deadline_ms && now_ms > c->deadline_ms) {
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
    stream_tick(st, now_ms);
  }
  if (c->state == CONN_READY && !c->n_streams && c->h->cfg.idle_timeout_ms && !c->draining && !c->keepalive &&
      now_ms - c->idle_since_ms > (int64_t)c->h->cfg.idle_timeout_ms) {
    log_debug("p2p idle connection closed", "{s:s}", "peer", c->remote_id);
    conn_drain(c);
  }
  conn_flush(c);
}
