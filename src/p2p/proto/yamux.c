/* yamux.c — Yamux session engine (see yamux.h and docs/yamux.md).
 *
 * Receiving: at most one partial 12-byte header is kept; Data payloads are handed to the
 * application in place, piece by piece, and charged to the stream's receive window until the
 * application consumes them. Sending: frames are appended to one bounded output buffer;
 * stream data only while it is under the soft limit and within the peer's window. A write on
 * the stream whose plain Data frame is the last one in the output (nothing taken from it yet)
 * extends that frame, up to max_frame_data: what a stream writes between two flushes — many
 * pipelined replies or requests — reaches the peer as one frame and one delivery.
 *
 * Stream lifetime: a stream is "live" (in the id table, counted against the cap) until it is
 * fully closed (FIN both ways) or reset; its handle lives until the owner releases it. Every
 * callback may release or reset streams, so code after a callback looks streams up again by
 * id and never touches a pointer it held across the call. */
#include "p2p/proto/yamux.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/check.h"
#include "util/clock.h"

#define YAMUX_BUCKETS 256
#define YAMUX_MAX_PINGS 16
#define YAMUX_DEFAULT_RTT_US 10000u /* assumed until a pong arrives */
#define YAMUX_AUTO_PING_OPAQUE 0x796d7870u

struct yamux_stream {
  yamux_session *s;
  uint32_t id;
  void *user;
  struct yamux_stream *hnext;       /* id table chain (live streams only) */
  struct yamux_stream *prev, *next; /* every stream not yet freed */
  bool outbound;
  bool live;         /* in the id table */
  bool ack_needed;   /* inbound: our ACK not sent yet */
  bool acked;        /* outbound: peer's ACK received (or no longer relevant) */
  bool fin_sent, fin_recv, reset;
  bool released;
  bool in_open_cb;   /* inside on_stream_open: the session frees it afterwards if needed */
  bool want_writable;
  uint32_t send_window;
  uint32_t recv_size;   /* current receive window size */
  uint32_t recv_avail;  /* what the peer may still send */
  uint32_t unconsumed;  /* delivered, not yet consumed */
  uint32_t credit;      /* consumed, not yet returned in a window update */
  uint64_t epoch_us;    /* when the last window update went out (auto-tuning) */
};

typedef struct yamux_ping {
  uint32_t opaque;
  uint64_t sent_us;
  bool used, internal;
} yamux_ping;

struct yamux_session {
  bool is_client;
  yamux_config cfg;
  yamux_callbacks cb;
  void *ud;
  int err;
  bool goaway_sent, goaway_recv;
  uint32_t next_id;
  size_t n_live;
  size_t unacked_out;
  size_t n_blocked; /* streams with want_writable */
  yamux_stream *buckets[YAMUX_BUCKETS];
  yamux_stream *all;
  buf out;
  /* The last frame in out, when it is a flagless Data frame a write on the same stream may
   * extend: its stream (0 = none) and payload length. Any other frame, or a consume that
   * reaches into it, ends it. */
  uint32_t tail_id;
  uint32_t tail_len;
  /* Receive state. */
  uint8_t hdr[YAMUX_HEADER_LEN];
  size_t hdr_len;
  uint32_t rx_left;  /* payload bytes of the current Data frame still to come */
  uint32_t rx_id;    /* its stream (0 = discard) */
  uint16_t rx_flags; /* its flags, applied after the payload */
  yamux_ping pings[YAMUX_MAX_PINGS];
  uint64_t srtt_us;
};

/* ---- header codec ---------------------------------------------------------------------- */

void yamux_header_encode(const yamux_header *h, uint8_t o[YAMUX_HEADER_LEN]) {
  o[0] = h->version;
  o[1] = h->type;
  o[2] = (uint8_t)(h->flags >> 8);
  o[3] = (uint8_t)h->flags;
  o[4] = (uint8_t)(h->stream_id >> 24);
  o[5] = (uint8_t)(h->stream_id >> 16);
  o[6] = (uint8_t)(h->stream_id >> 8);
  o[7] = (uint8_t)h->stream_id;
  o[8] = (uint8_t)(h->length >> 24);
  o[9] = (uint8_t)(h->length >> 16);
  o[10] = (uint8_t)(h->length >> 8);
  o[11] = (uint8_t)h->length;
}

void yamux_header_decode(const uint8_t i[YAMUX_HEADER_LEN], yamux_header *h) {
  h->version = i[0];
  h->type = i[1];
  h->flags = (uint16_t)((i[2] << 8) | i[3]);
  h->stream_id = ((uint32_t)i[4] << 24) | ((uint32_t)i[5] << 16) | ((uint32_t)i[6] << 8) | i[7];
  h->length = ((uint32_t)i[8] << 24) | ((uint32_t)i[9] << 16) | ((uint32_t)i[10] << 8) | i[11];
}

/* ---- helpers --------------------------------------------------------------------------- */

void yamux_config_default(yamux_config *cfg) {
  cfg->max_streams = 512;
  cfg->initial_window = YAMUX_INITIAL_WINDOW;
  cfg->max_window = 16u * 1024u * 1024u;
  cfg->max_frame_data = 64u * 1024u;
  cfg->out_soft_limit = 1024u * 1024u;
  cfg->out_hard_limit = 0; /* = soft + 256 KiB */
  cfg->auto_ping = true;
}

static uint64_t yamux_now(yamux_session *s) {
  if (s->cb.now_us) return s->cb.now_us(s->ud);
  return (uint64_t)clock_mono_us();
}

static unsigned yamux_bucket(uint32_t id) { return (unsigned)((id * 2654435761u) >> 24); }

static yamux_stream *yamux_find(yamux_session *s, uint32_t id) {
  for (yamux_stream *st = s->buckets[yamux_bucket(id)]; st; st = st->hnext)
    if (st->id == id) return st;
  return NULL;
}

static void yamux_table_add(yamux_session *s, yamux_stream *st) {
  unsigned b = yamux_bucket(st->id);
  st->hnext = s->buckets[b];
  s->buckets[b] = st;
  st->live = true;
  s->n_live++;
}

static void yamux_table_del(yamux_session *s, yamux_stream *st) {
  CHECK(st->live && s->n_live > 0);
  yamux_stream **pp = &s->buckets[yamux_bucket(st->id)];
  while (*pp && *pp != st) pp = &(*pp)->hnext;
  CHECK(*pp == st); /* a live stream is in the table */
  if (*pp) *pp = st->hnext;
  st->hnext = NULL;
  st->live = false;
  s->n_live--;
}

static void yamux_set_blocked(yamux_stream *st, bool on) {
  if (st->want_writable == on) return;
  st->want_writable = on;
  if (on) {
    st->s->n_blocked++;
  } else {
    CHECK(st->s->n_blocked > 0);
    st->s->n_blocked--;
  }
}

static void yamux_stream_destroy(yamux_stream *st) {
  yamux_session *s = st->s;
  CHECK(!st->in_open_cb); /* released by its owner, or refused from on_stream_open */
  if (st->live) yamux_table_del(s, st);
  yamux_set_blocked(st, false);
  if (st->outbound && !st->acked) {
    CHECK(s->unacked_out > 0);
    s->unacked_out--;
  }
  if (st->prev)
    st->prev->next = st->next;
  else
    s->all = st->next;
  if (st->next) st->next->prev = st->prev;
  free(st);
}

static yamux_stream *yamux_stream_alloc(yamux_session *s, uint32_t id, bool outbound) {
  yamux_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->s = s;
  st->id = id;
  st->outbound = outbound;
  st->acked = !outbound;
  st->ack_needed = !outbound;
  st->send_window = YAMUX_INITIAL_WINDOW;
  st->recv_size = s->cfg.initial_window;
  st->recv_avail = s->cfg.initial_window;
  st->epoch_us = yamux_now(s);
  st->next = s->all;
  if (s->all) s->all->prev = st;
  s->all = st;
  yamux_table_add(s, st);
  if (outbound) s->unacked_out++;
  return st;
}

/* Appends one frame. Control frames may use the space up to the hard limit. */
static int yamux_emit(yamux_session *s, uint8_t type, uint16_t flags, uint32_t id,
                      uint32_t length, const uint8_t *payload, size_t plen) {
  uint8_t *dst;
  int rc = buf_reserve(&s->out, YAMUX_HEADER_LEN + plen, &dst);
  if (rc) return rc == -E2BIG ? -ENOBUFS : rc;
  yamux_header h = {0, type, flags, id, length};
  yamux_header_encode(&h, dst);
  if (plen) memcpy(dst + YAMUX_HEADER_LEN, payload, plen);
  buf_commit(&s->out, YAMUX_HEADER_LEN + plen);
  s->tail_id = 0; /* yamux_stream_write marks its own flagless Data frames */
  return 0;
}

static void yamux_fail(yamux_session *s, int err);

/* A control frame that must go out: failure to queue it fails the session. */
static int yamux_emit_ctl(yamux_session *s, uint8_t type, uint16_t flags, uint32_t id,
                          uint32_t length) {
  int rc = yamux_emit(s, type, flags, id, length, NULL, 0);
  if (rc) yamux_fail(s, rc);
  return rc;
}

/* Once fully closed or reset: leaves the id table (and the cap); freed if released. */
static void yamux_maybe_finish(yamux_stream *st) {
  if (!(st->reset || (st->fin_sent && st->fin_recv))) return;
  yamux_session *s = st->s;
  if (st->live) yamux_table_del(s, st);
  yamux_set_blocked(st, false);
  if (st->outbound && !st->acked) {
    st->acked = true;
    s->unacked_out--;
  }
  if (st->released && !st->in_open_cb) yamux_stream_destroy(st);
}

/* The extra window we advertise beyond the 256 KiB both sides assume. */
static uint32_t yamux_extra_window(const yamux_session *s) {
  return s->cfg.initial_window - YAMUX_INITIAL_WINDOW;
}

/* Sends the window update for a stream's consumed bytes, growing the window first when the
 * last one was used up within 2 RTT (the reader keeps up; the window, not the reader, is the
 * bottleneck). */
static int yamux_send_window_update(yamux_stream *st, uint16_t flags) {
  yamux_session *s = st->s;
  /* What the peer may still send, what the owner holds and what it returned never add up to
   * more than the window (less while a Data frame is half delivered). */
  CHECK((uint64_t)st->recv_avail + st->unconsumed + st->credit <= st->recv_size);
  uint64_t now = yamux_now(s);
  uint64_t rtt = s->srtt_us ? s->srtt_us : YAMUX_DEFAULT_RTT_US;
  uint32_t grow = 0;
  if (st->recv_size < s->cfg.max_window && now - st->epoch_us < 2 * rtt) {
    uint64_t target = (uint64_t)st->recv_size * 2;
    if (target > s->cfg.max_window) target = s->cfg.max_window;
    grow = (uint32_t)(target - st->recv_size);
    st->recv_size = (uint32_t)target;
  }
  uint32_t delta = st->credit + grow;
  if (st->ack_needed) {
    flags |= YAMUX_FLAG_ACK;
    delta += yamux_extra_window(s);
    st->ack_needed = false;
  }
  st->credit = 0;
  st->recv_avail += delta - (flags & YAMUX_FLAG_ACK ? yamux_extra_window(s) : 0);
  st->epoch_us = now;
  return yamux_emit_ctl(s, YAMUX_TYPE_WINDOW_UPDATE, flags, st->id, delta);
}

/* ---- session --------------------------------------------------------------------------- */

int yamux_session_new(yamux_session **out, bool is_client, const yamux_config *cfg,
                      const yamux_callbacks *cb, void *ud) {
  *out = NULL;
  if (!cb || !cb->on_stream_open) return -EINVAL;
  yamux_session *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  if (cfg)
    s->cfg = *cfg;
  else
    yamux_config_default(&s->cfg);
  yamux_config d;
  yamux_config_default(&d);
  if (!s->cfg.max_streams) s->cfg.max_streams = d.max_streams;
  if (s->cfg.initial_window < YAMUX_INITIAL_WINDOW) s->cfg.initial_window = YAMUX_INITIAL_WINDOW;
  if (s->cfg.max_window < s->cfg.initial_window) s->cfg.max_window = s->cfg.initial_window;
  if (!s->cfg.max_frame_data) s->cfg.max_frame_data = d.max_frame_data;
  if (!s->cfg.out_soft_limit) s->cfg.out_soft_limit = d.out_soft_limit;
  if (s->cfg.out_hard_limit < s->cfg.out_soft_limit + 4096)
    s->cfg.out_hard_limit = s->cfg.out_soft_limit + 256u * 1024u;
  s->cb = *cb;
  s->ud = ud;
  s->is_client = is_client;
  s->next_id = is_client ? 1 : 2;
  buf_init(&s->out, s->cfg.out_hard_limit);
  if (s->cfg.auto_ping) {
    s->pings[0] = (yamux_ping){YAMUX_AUTO_PING_OPAQUE, yamux_now(s), true, true};
    int rc = yamux_emit(s, YAMUX_TYPE_PING, YAMUX_FLAG_SYN, 0, YAMUX_AUTO_PING_OPAQUE, NULL, 0);
    if (rc) {
      yamux_session_free(s);
      return rc;
    }
  }
  *out = s;
  return 0;
}

void yamux_session_free(yamux_session *s) {
  if (!s) return;
  yamux_stream *st = s->all;
  while (st) {
    yamux_stream *n = st->next;
    free(st);
    st = n;
  }
  buf_free(&s->out);
  free(s);
}

/* Resets every live stream with a callback each (session ended). The list is scanned again
 * from the head after each callback, which may release or free streams; no allocation, so a
 * session that failed for want of memory still tells the owner about every stream. */
static void yamux_reset_all(yamux_session *s) {
  for (yamux_stream *st = s->all; st; st = st->next)
    if (st->live) st->reset = true;
  for (;;) {
    yamux_stream *st = s->all;
    while (st && !st->live) st = st->next;
    if (!st) break;
    yamux_table_del(s, st); /* before the callback: it may release the handle */
    yamux_set_blocked(st, false);
    if (st->outbound && !st->acked) {
      st->acked = true;
      s->unacked_out--;
    }
    if (st->released) {
      if (!st->in_open_cb) yamux_stream_destroy(st);
    } else if (s->cb.on_stream_reset) {
      s->cb.on_stream_reset(s, st, s->ud);
    }
  }
}

static void yamux_fail(yamux_session *s, int err) {
  if (s->err) return;
  s->err = err;
  if (err == -EPROTO && !s->goaway_sent) {
    s->goaway_sent = true;
    /* Best effort: if even this does not fit the owner sees -EPROTO anyway. */
    (void)yamux_emit(s, YAMUX_TYPE_GO_AWAY, 0, 0, YAMUX_GOAWAY_PROTOCOL_ERROR, NULL, 0);
  }
  yamux_reset_all(s);
}

void yamux_session_transport_closed(yamux_session *s) { yamux_fail(s, -ESHUTDOWN); }

const uint8_t *yamux_session_out(yamux_session *s, size_t *len) {
  *len = buf_len(&s->out);
  return *len ? buf_ptr(&s->out) : NULL;
}

size_t yamux_session_out_pending(const yamux_session *s) { return buf_len(&s->out); }

/* Fires on_stream_writable for blocked streams that can write now. Scans from the head again
 * after each callback (it may write, release or reset streams); a stream that blocks again has
 * filled the output or its window, which ends the scan, so this terminates. No allocation: a
 * wakeup is never lost for want of memory. */
static void yamux_notify_writable(yamux_session *s) {
  while (s->n_blocked && !s->err && buf_len(&s->out) < s->cfg.out_soft_limit) {
    yamux_stream *st = s->all;
    while (st && !(st->want_writable && st->send_window > 0 && !st->released)) st = st->next;
    if (!st) break;
    yamux_set_blocked(st, false);
    if (s->cb.on_stream_writable) s->cb.on_stream_writable(s, st, s->ud);
  }
}

void yamux_session_out_consume(yamux_session *s, size_t n) {
  CHECK(n <= buf_len(&s->out));
  buf_consume(&s->out, n);
  if (buf_len(&s->out) < (size_t)YAMUX_HEADER_LEN + s->tail_len) s->tail_id = 0; /* (part of) it left */
  if (s->n_blocked && buf_len(&s->out) <= s->cfg.out_soft_limit / 2) yamux_notify_writable(s);
}

int yamux_session_ping(yamux_session *s, uint32_t opaque) {
  if (s->err) return -ESHUTDOWN;
  for (int i = 0; i < YAMUX_MAX_PINGS; i++) {
    if (s->pings[i].used) continue;
    int rc = yamux_emit(s, YAMUX_TYPE_PING, YAMUX_FLAG_SYN, 0, opaque, NULL, 0);
    if (rc) return rc == -ENOBUFS ? -EAGAIN : rc;
    s->pings[i] = (yamux_ping){opaque, yamux_now(s), true, false};
    return 0;
  }
  return -EAGAIN;
}

uint64_t yamux_session_rtt_us(const yamux_session *s) { return s->srtt_us; }

int yamux_session_goaway(yamux_session *s, uint32_t code) {
  if (s->goaway_sent) return 0;
  if (s->err) return -ESHUTDOWN;
  int rc = yamux_emit(s, YAMUX_TYPE_GO_AWAY, 0, 0, code, NULL, 0);
  if (rc) return rc;
  s->goaway_sent = true;
  return 0;
}

bool yamux_session_goaway_received(const yamux_session *s) { return s->goaway_recv; }
bool yamux_session_goaway_sent(const yamux_session *s) { return s->goaway_sent; }
size_t yamux_session_stream_count(const yamux_session *s) { return s->n_live; }
int yamux_session_error(const yamux_session *s) { return s->err; }
bool yamux_session_is_client(const yamux_session *s) { return s->is_client; }

/* ---- receiving ------------------------------------------------------------------------- */

static int yamux_proto_error(yamux_session *s) {
  yamux_fail(s, -EPROTO);
  return -EPROTO;
}

/* Delivers a piece of the current Data frame's payload. */
static void yamux_rx_payload(yamux_session *s, const uint8_t *p, size_t n) {
  yamux_stream *st = s->rx_id ? yamux_find(s, s->rx_id) : NULL;
  if (!st || st->reset || st->fin_recv) return;
  if (st->released) {
    /* Lingering after release: discard, but keep the peer moving toward its FIN. */
    st->credit += (uint32_t)n;
    if (st->credit >= st->recv_size / 2) (void)yamux_send_window_update(st, 0);
    return;
  }
  st->unconsumed += (uint32_t)n;
  if (s->cb.on_stream_data) s->cb.on_stream_data(s, st, p, n, s->ud);
}

/* FIN / RST flags of a Data or WindowUpdate frame (after its payload). */
static void yamux_rx_close_flags(yamux_session *s, uint32_t id, uint16_t flags) {
  if (flags & YAMUX_FLAG_RST) {
    yamux_stream *st = yamux_find(s, id);
    if (!st) return;
    st->reset = true;
    bool notify = !st->released;
    yamux_table_del(s, st);
    yamux_set_blocked(st, false);
    if (st->outbound && !st->acked) {
      st->acked = true;
      s->unacked_out--;
    }
    if (!notify) {
      yamux_stream_destroy(st);
      return;
    }
    if (s->cb.on_stream_reset) s->cb.on_stream_reset(s, st, s->ud);
    return;
  }
  if (flags & YAMUX_FLAG_FIN) {
    yamux_stream *st = yamux_find(s, id);
    if (!st || st->fin_recv) return;
    st->fin_recv = true;
    if (!st->released && s->cb.on_stream_fin) {
      s->cb.on_stream_fin(s, st, s->ud);
      st = yamux_find(s, id); /* the callback may have released or reset it */
      if (!st) return;
    }
    yamux_maybe_finish(st);
  }
}

/* A SYN from the peer: creates the stream and asks the owner. Returns the live stream, NULL
 * when refused (RST sent), or sets *err. */
static yamux_stream *yamux_rx_syn(yamux_session *s, uint32_t id, int *err) {
  bool peer_parity_ok = s->is_client ? (id % 2 == 0) : (id % 2 == 1);
  if (!peer_parity_ok || yamux_find(s, id)) {
    *err = yamux_proto_error(s);
    return NULL;
  }
  if (s->goaway_sent || s->n_live >= s->cfg.max_streams) {
    *err = yamux_emit_ctl(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_RST, id, 0);
    return NULL;
  }
  yamux_stream *st = yamux_stream_alloc(s, id, false);
  if (!st) {
    *err = yamux_emit_ctl(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_RST, id, 0);
    return NULL;
  }
  st->in_open_cb = true;
  int verdict = s->cb.on_stream_open(s, st, s->ud);
  st->in_open_cb = false;
  if (verdict < 0) {
    bool rst_sent = st->reset;
    yamux_stream_destroy(st);
    if (!rst_sent && !s->err)
      *err = yamux_emit_ctl(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_RST, id, 0);
    return NULL;
  }
  if (st->released && !st->live) {
    yamux_stream_destroy(st); /* released (and so reset) from inside the callback */
    return NULL;
  }
  if (s->err) *err = s->err;
  return st->live ? st : NULL;
}

static int yamux_rx_ping(yamux_session *s, const yamux_header *h) {
  if (h->flags & YAMUX_FLAG_SYN)
    return yamux_emit_ctl(s, YAMUX_TYPE_PING, YAMUX_FLAG_ACK, 0, h->length);
  if (!(h->flags & YAMUX_FLAG_ACK)) return 0;
  for (int i = 0; i < YAMUX_MAX_PINGS; i++) {
    yamux_ping *p = &s->pings[i];
    if (!p->used || p->opaque != h->length) continue;
    uint64_t now = yamux_now(s);
    uint64_t rtt = now > p->sent_us ? now - p->sent_us : 0;
    s->srtt_us = s->srtt_us ? (7 * s->srtt_us + rtt) / 8 : (rtt ? rtt : 1);
    bool internal = p->internal;
    p->used = false;
    if (!internal && s->cb.on_pong) s->cb.on_pong(s, h->length, rtt, s->ud);
    return 0;
  }
  return 0; /* unsolicited pong: ignored */
}

/* Processes a complete header. Data payload (if any) follows via rx_left. */
static int yamux_rx_header(yamux_session *s, const yamux_header *h) {
  if (h->version != 0) return yamux_proto_error(s);
  switch (h->type) {
    case YAMUX_TYPE_PING:
      return yamux_rx_ping(s, h);
    case YAMUX_TYPE_GO_AWAY:
      if (!s->goaway_recv) {
        s->goaway_recv = true;
        if (s->cb.on_goaway) s->cb.on_goaway(s, h->length, s->ud);
      }
      return 0;
    case YAMUX_TYPE_DATA:
    case YAMUX_TYPE_WINDOW_UPDATE:
      break;
    default:
      return yamux_proto_error(s);
  }
  if (h->stream_id == 0) return yamux_proto_error(s);
  uint32_t id = h->stream_id;
  int err = 0;
  yamux_stream *st;
  if (h->flags & YAMUX_FLAG_SYN) {
    st = yamux_rx_syn(s, id, &err);
    if (err) return err;
  } else {
    st = yamux_find(s, id);
  }
  if (st && (h->flags & YAMUX_FLAG_ACK) && st->outbound && !st->acked) {
    st->acked = true;
    s->unacked_out--;
    if (!st->released && s->cb.on_stream_ack) {
      s->cb.on_stream_ack(s, st, s->ud);
      st = yamux_find(s, id);
    }
  }
  if (h->type == YAMUX_TYPE_WINDOW_UPDATE) {
    if (st && !st->reset) {
      if ((uint64_t)st->send_window + h->length > UINT32_MAX) return yamux_proto_error(s);
      st->send_window += h->length;
      if (st->want_writable && st->send_window > 0 && !st->released &&
          buf_len(&s->out) < s->cfg.out_soft_limit) {
        yamux_set_blocked(st, false);
        if (s->cb.on_stream_writable) s->cb.on_stream_writable(s, st, s->ud);
      }
    }
    yamux_rx_close_flags(s, id, h->flags);
    return s->err;
  }
  /* Data. */
  if (st) {
    if (h->length > st->recv_avail) return yamux_proto_error(s); /* past our window */
    st->recv_avail -= h->length;
    if (st->fin_recv && h->length) {
      /* Data after the peer's own FIN: the stream is broken, not the session. */
      yamux_stream_reset(st);
      if (s->err) return s->err;
      s->rx_id = 0;
    } else {
      s->rx_id = id;
    }
  } else {
    /* A stream already closed here (frames in flight) or refused: discard, bounded. */
    if (h->length > s->cfg.max_window) return yamux_proto_error(s);
    s->rx_id = 0;
  }
  s->rx_left = h->length;
  s->rx_flags = h->flags;
  if (h->length == 0) yamux_rx_close_flags(s, id, h->flags);
  return s->err;
}

int yamux_session_feed(yamux_session *s, const uint8_t *data, size_t len) {
  if (s->err) return s->err;
  if (!data && len) return -EINVAL;
  size_t pos = 0;
  while (pos < len) {
    if (s->rx_left) {
      size_t take = len - pos < s->rx_left ? len - pos : s->rx_left;
      yamux_rx_payload(s, data + pos, take);
      pos += take;
      s->rx_left -= (uint32_t)take;
      if (s->err) return s->err;
      if (!s->rx_left && s->rx_id) yamux_rx_close_flags(s, s->rx_id, s->rx_flags);
      if (s->err) return s->err;
      continue;
    }
    size_t take = YAMUX_HEADER_LEN - s->hdr_len;
    if (take > len - pos) take = len - pos;
    memcpy(s->hdr + s->hdr_len, data + pos, take);
    s->hdr_len += take;
    pos += take;
    if (s->hdr_len < YAMUX_HEADER_LEN) break;
    s->hdr_len = 0;
    yamux_header h;
    yamux_header_decode(s->hdr, &h);
    int rc = yamux_rx_header(s, &h);
    if (rc) return rc;
  }
  return 0;
}

/* ---- streams --------------------------------------------------------------------------- */

int yamux_stream_open(yamux_session *s, yamux_stream **out) {
  *out = NULL;
  if (s->err) return -ESHUTDOWN;
  if (s->goaway_sent || s->goaway_recv) return -EPIPE;
  if (s->n_live >= s->cfg.max_streams) return -EMFILE;
  if (s->unacked_out >= YAMUX_MAX_ACK_BACKLOG) return -EAGAIN;
  if (s->next_id > UINT32_MAX - 2) return -EMFILE; /* ids exhausted */
  uint32_t id = s->next_id;
  int rc = yamux_emit(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, id, yamux_extra_window(s),
                      NULL, 0);
  if (rc) return rc == -ENOBUFS ? -EAGAIN : rc;
  yamux_stream *st = yamux_stream_alloc(s, id, true);
  if (!st) {
    buf_truncate(&s->out, buf_len(&s->out) - YAMUX_HEADER_LEN); /* take the SYN back */
    return -ENOMEM;
  }
  s->next_id += 2;
  *out = st;
  return 0;
}

size_t yamux_stream_write_room(const yamux_stream *st) {
  const yamux_session *s = st->s;
  if (s->err || st->reset || st->fin_sent) return 0;
  size_t pending = buf_len(&s->out);
  size_t room = pending < s->cfg.out_soft_limit ? s->cfg.out_soft_limit - pending : 0;
  return room < st->send_window ? room : st->send_window;
}

ssize_t yamux_stream_write(yamux_stream *st, const uint8_t *data, size_t len) {
  yamux_session *s = st->s;
  if (s->err) return -ESHUTDOWN;
  if (st->reset) return -ECONNRESET;
  if (st->fin_sent) return -EPIPE;
  if (len == 0) return 0;
  size_t n = yamux_stream_write_room(st);
  if (n > len) n = len;
  if (n == 0) {
    yamux_set_blocked(st, true);
    return -EAGAIN;
  }
  if (s->tail_id == st->id && !st->ack_needed && n <= s->cfg.max_frame_data - s->tail_len) {
    /* The last frame in the output is this stream's: it grows (one frame, one delivery). */
    uint8_t *dst;
    int rrc = buf_reserve(&s->out, n, &dst);
    if (rrc) return rrc == -E2BIG ? -EAGAIN : rrc;
    memcpy(dst, data, n);
    buf_commit(&s->out, n);
    s->tail_len += (uint32_t)n;
    yamux_header h = {0, YAMUX_TYPE_DATA, 0, st->id, s->tail_len};
    yamux_header_encode(&h, (uint8_t *)buf_ptr(&s->out) + buf_len(&s->out) - s->tail_len - YAMUX_HEADER_LEN);
    st->send_window -= (uint32_t)n;
    yamux_set_blocked(st, n < len);
    return (ssize_t)n;
  }
  /* All or nothing: room for every frame (and a separate ACK update) before writing any, so
   * an allocation failure leaves nothing half-taken. */
  size_t frames = (n + s->cfg.max_frame_data - 1) / s->cfg.max_frame_data;
  uint8_t *unused;
  int rrc = buf_reserve(&s->out, n + (frames + 1) * YAMUX_HEADER_LEN, &unused);
  if (rrc) return rrc == -E2BIG ? -EAGAIN : rrc;
  if (st->ack_needed && yamux_extra_window(s)) {
    /* The ACK carries our larger initial window: send it as its own update first. */
    int rc = yamux_send_window_update(st, 0);
    if (rc) return rc;
  }
  size_t done = 0;
  while (done < n) {
    size_t chunk = n - done;
    if (chunk > s->cfg.max_frame_data) chunk = s->cfg.max_frame_data;
    uint16_t flags = 0;
    if (st->ack_needed) {
      flags |= YAMUX_FLAG_ACK;
      st->ack_needed = false;
    }
    int rc = yamux_emit(s, YAMUX_TYPE_DATA, flags, st->id, (uint32_t)chunk, data + done, chunk);
    CHECK(rc == 0); /* the space was reserved above */
    (void)rc;
    done += chunk;
    if (!flags) { /* a plain Data frame, last in the output: the next write may extend it */
      s->tail_id = st->id;
      s->tail_len = (uint32_t)chunk;
    }
  }
  CHECK(done == n && done <= st->send_window);
  st->send_window -= (uint32_t)done;
  yamux_set_blocked(st, done < len);
  return (ssize_t)done;
}

int yamux_stream_close(yamux_stream *st) {
  yamux_session *s = st->s;
  if (st->reset) return -ECONNRESET;
  if (st->fin_sent) return 0;
  if (s->err) return -ESHUTDOWN;
  uint16_t flags = YAMUX_FLAG_FIN;
  uint32_t delta = 0;
  if (st->ack_needed) {
    flags |= YAMUX_FLAG_ACK;
    delta = yamux_extra_window(s);
  }
  int rc = yamux_emit_ctl(s, YAMUX_TYPE_WINDOW_UPDATE, flags, st->id, delta);
  if (rc) return rc;
  st->ack_needed = false;
  st->fin_sent = true;
  yamux_set_blocked(st, false);
  yamux_maybe_finish(st);
  return 0;
}

void yamux_stream_reset(yamux_stream *st) {
  yamux_session *s = st->s;
  if (st->reset || (st->fin_sent && st->fin_recv)) return;
  st->reset = true;
  /* An RST that cannot be queued fails the session, and yamux_reset_all has then finished st
   * (freed it, if released): do not touch it again. */
  if (!s->err && yamux_emit_ctl(s, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_RST, st->id, 0) != 0) return;
  yamux_maybe_finish(st);
}

int yamux_stream_consume(yamux_stream *st, size_t n) {
  if (n > st->unconsumed) return -EINVAL;
  st->unconsumed -= (uint32_t)n;
  if (st->reset || st->fin_recv || st->s->err) return 0; /* nothing more will arrive */
  st->credit += (uint32_t)n;
  if (st->credit < st->recv_size / 2 && !st->ack_needed) return 0;
  return yamux_send_window_update(st, 0);
}

void yamux_stream_release(yamux_stream *st) {
  yamux_session *s = st->s;
  st->released = true;
  yamux_set_blocked(st, false);
  if (!st->live) {
    if (!st->in_open_cb) yamux_stream_destroy(st);
    return;
  }
  if (!st->fin_sent) {
    yamux_stream_reset(st); /* finishes and frees it */
    return;
  }
  /* Write side done, read side open: linger until the peer's FIN; unread data is credited
   * back so the peer can get there. */
  st->credit += st->unconsumed;
  st->unconsumed = 0;
  if (!s->err && st->credit >= st->recv_size / 2) (void)yamux_send_window_update(st, 0);
}

uint32_t yamux_stream_id(const yamux_stream *st) { return st->id; }
yamux_session *yamux_stream_session(const yamux_stream *st) { return st->s; }
void yamux_stream_set_user(yamux_stream *st, void *user) { st->user = user; }
void *yamux_stream_user(const yamux_stream *st) { return st->user; }
uint32_t yamux_stream_recv_window(const yamux_stream *st) { return st->recv_size; }
uint32_t yamux_stream_send_window(const yamux_stream *st) { return st->send_window; }
size_t yamux_stream_unconsumed(const yamux_stream *st) { return st->unconsumed; }
bool yamux_stream_read_closed(const yamux_stream *st) { return st->fin_recv || st->reset; }
bool yamux_stream_write_closed(const yamux_stream *st) { return st->fin_sent || st->reset; }
bool yamux_stream_is_reset(const yamux_stream *st) { return st->reset; }
