/* test_yamux.c — Yamux session engine: one test per rule of the spec, two sessions wired
 * back to back through their output buffers, with a fake clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/proto/yamux.h"
#include "util/buf.h"

#define MAXS 1024

/* Everything one side observed. */
typedef struct side {
  yamux_session *s;
  uint64_t now;
  bool auto_consume;     /* consume data as soon as it arrives (fast reader) */
  int refuse_open;       /* on_stream_open return value */
  int open_action;       /* 1 release, 2 reset+refuse, 3 reset+keep (re-entrancy tests) */
  bool write_on_open;    /* send one byte from on_stream_open (ACKs the stream) */
  yamux_stream *accepted[MAXS];
  size_t n_accepted;
  buf rx[MAXS];          /* data per accepted/opened stream, indexed by id % MAXS */
  int fins[MAXS], resets[MAXS], acks[MAXS], writables[MAXS];
  uint32_t pong_opaque;
  uint64_t pong_rtt;
  int pongs;
  int goaways;
  uint32_t goaway_code;
} side;

static int cb_open(yamux_session *s, yamux_stream *st, void *ud) {
  side *d = ud;
  if (d->open_action == 1) { /* release at once, accept */
    yamux_stream_release(st);
    return 0;
  }
  if (d->open_action == 2) { /* reset, then refuse */
    yamux_stream_reset(st);
    return -1;
  }
  if (d->open_action == 3) { /* reset, keep the handle */
    yamux_stream_reset(st);
    if (d->n_accepted < MAXS) d->accepted[d->n_accepted++] = st;
    return 0;
  }
  if (d->refuse_open) return d->refuse_open;
  if (d->n_accepted < MAXS) d->accepted[d->n_accepted++] = st;
  if (d->write_on_open) assert_int_equal(yamux_stream_write(st, (const uint8_t *)"!", 1), 1);
  return 0;
}
static void cb_data(yamux_session *s, yamux_stream *st, const uint8_t *p, size_t n, void *ud) {
  side *d = ud;
  assert_int_equal(buf_append(&d->rx[yamux_stream_id(st) % MAXS], p, n), 0);
  if (d->auto_consume) assert_int_equal(yamux_stream_consume(st, n), 0);
}
static void cb_fin(yamux_session *s, yamux_stream *st, void *ud) {
  ((side *)ud)->fins[yamux_stream_id(st) % MAXS]++;
}
static void cb_reset(yamux_session *s, yamux_stream *st, void *ud) {
  ((side *)ud)->resets[yamux_stream_id(st) % MAXS]++;
}
static void cb_ack(yamux_session *s, yamux_stream *st, void *ud) {
  ((side *)ud)->acks[yamux_stream_id(st) % MAXS]++;
}
static void cb_writable(yamux_session *s, yamux_stream *st, void *ud) {
  ((side *)ud)->writables[yamux_stream_id(st) % MAXS]++;
}
static void cb_pong(yamux_session *s, uint32_t opaque, uint64_t rtt, void *ud) {
  side *d = ud;
  d->pongs++;
  d->pong_opaque = opaque;
  d->pong_rtt = rtt;
}
static void cb_goaway(yamux_session *s, uint32_t code, void *ud) {
  side *d = ud;
  d->goaways++;
  d->goaway_code = code;
}
static uint64_t cb_now(void *ud) { return ((side *)ud)->now; }

static const yamux_callbacks CBS = {cb_open, cb_data, cb_fin, cb_reset, cb_ack,
                                    cb_writable, cb_pong, cb_goaway, cb_now};

static side *side_new(bool client, const yamux_config *cfg) {
  side *d = calloc(1, sizeof *d);
  assert_non_null(d);
  d->now = 1000000;
  for (int i = 0; i < MAXS; i++) buf_init(&d->rx[i], 64u << 20);
  assert_int_equal(yamux_session_new(&d->s, client, cfg, &CBS, d), 0);
  return d;
}

static void side_free(side *d) {
  yamux_session_free(d->s);
  for (int i = 0; i < MAXS; i++) buf_free(&d->rx[i]);
  free(d);
}

/* Moves a's pending output into b, `chunk` bytes per feed. Returns bytes moved or error. */
static long xfer(side *a, side *b, size_t chunk) {
  size_t len;
  const uint8_t *p = yamux_session_out(a->s, &len);
  if (!len) return 0;
  uint8_t *copy = malloc(len);
  memcpy(copy, p, len);
  yamux_session_out_consume(a->s, len);
  int rc = 0;
  for (size_t pos = 0; pos < len && !rc; pos += chunk)
    rc = yamux_session_feed(b->s, copy + pos, len - pos < chunk ? len - pos : chunk);
  free(copy);
  return rc ? rc : (long)len;
}

/* Pumps both directions until quiet. */
static void pump(side *a, side *b) {
  for (int i = 0; i < 10000; i++) {
    long x = xfer(a, b, 1 << 30), y = xfer(b, a, 1 << 30);
    assert_true(x >= 0 && y >= 0);
    if (!x && !y) return;
  }
  fail_msg("pump did not settle");
}

static void pair(side **c, side **s, const yamux_config *cfg) {
  *c = side_new(true, cfg);
  *s = side_new(false, cfg);
  pump(*c, *s); /* auto pings */
}

/* Reads the 12-byte frame headers out of a raw output buffer (no payload parsing beyond Data). */
static int frames_of(const uint8_t *p, size_t len, yamux_header *hs, int max) {
  int n = 0;
  size_t pos = 0;
  while (pos + YAMUX_HEADER_LEN <= len && n < max) {
    yamux_header_decode(p + pos, &hs[n]);
    pos += YAMUX_HEADER_LEN + (hs[n].type == YAMUX_TYPE_DATA ? hs[n].length : 0);
    n++;
  }
  return n;
}

static void test_yamux_header_is_big_endian_12_bytes(void **st) {
  (void)st;
  yamux_header h = {0, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN | YAMUX_FLAG_FIN, 0x01020304,
                    0x0a0b0c0d};
  uint8_t b[YAMUX_HEADER_LEN];
  yamux_header_encode(&h, b);
  const uint8_t exp[] = {0, 1, 0, 5, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d};
  assert_memory_equal(b, exp, sizeof exp);
  yamux_header g;
  yamux_header_decode(b, &g);
  assert_int_equal(g.flags, h.flags);
  assert_int_equal(g.stream_id, h.stream_id);
  assert_int_equal(g.length, h.length);
}

static void test_yamux_client_ids_odd_server_ids_even_syn_is_window_update(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  yamux_stream *a, *b, *x;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  assert_int_equal(yamux_stream_open(c->s, &b), 0);
  assert_int_equal(yamux_stream_open(s->s, &x), 0);
  assert_int_equal(yamux_stream_id(a), 1);
  assert_int_equal(yamux_stream_id(b), 3);
  assert_int_equal(yamux_stream_id(x), 2);
  size_t len;
  const uint8_t *p = yamux_session_out(c->s, &len);
  yamux_header hs[4];
  assert_int_equal(frames_of(p, len, hs, 4), 2);
  assert_int_equal(hs[0].type, YAMUX_TYPE_WINDOW_UPDATE);
  assert_int_equal(hs[0].flags, YAMUX_FLAG_SYN);
  assert_int_equal(hs[0].stream_id, 1);
  assert_int_equal(hs[0].length, 0);
  side_free(c);
  side_free(s);
}

static void test_yamux_ack_waits_for_first_frame_from_application(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  assert_int_equal(xfer(c, s, 1 << 30) > 0, 1);
  assert_int_equal(s->n_accepted, 1);
  size_t len;
  (void)yamux_session_out(s->s, &len);
  assert_int_equal(len, 0); /* no implicit ACK */
  assert_int_equal(yamux_stream_write(s->accepted[0], (const uint8_t *)"hi", 2), 2);
  const uint8_t *p = yamux_session_out(s->s, &len);
  yamux_header h;
  yamux_header_decode(p, &h);
  assert_int_equal(h.type, YAMUX_TYPE_DATA);
  assert_int_equal(h.flags, YAMUX_FLAG_ACK);
  assert_int_equal(h.length, 2);
  pump(c, s);
  assert_int_equal(c->acks[1], 1);
  side_free(c);
  side_free(s);
}

static void test_yamux_data_both_ways_and_half_close(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  c->auto_consume = s->auto_consume = true;
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"request", 7), 7);
  assert_int_equal(yamux_stream_close(a), 0);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"x", 1), -EPIPE);
  pump(c, s);
  assert_int_equal(buf_len(&s->rx[1]), 7);
  assert_memory_equal(buf_ptr(&s->rx[1]), "request", 7);
  assert_int_equal(s->fins[1], 1);
  yamux_stream *b = s->accepted[0];
  assert_true(yamux_stream_read_closed(b));
  assert_false(yamux_stream_write_closed(b));
  /* The half-closed side can still send. */
  assert_int_equal(yamux_stream_write(b, (const uint8_t *)"response", 8), 8);
  assert_int_equal(yamux_session_stream_count(s->s), 1);
  assert_int_equal(yamux_stream_close(b), 0);
  assert_int_equal(yamux_session_stream_count(s->s), 0); /* both FINs: closed */
  pump(c, s);
  assert_int_equal(buf_len(&c->rx[1]), 8);
  assert_memory_equal(buf_ptr(&c->rx[1]), "response", 8);
  assert_int_equal(c->fins[1], 1);
  assert_int_equal(yamux_session_stream_count(c->s), 0);
  yamux_stream_release(a);
  yamux_stream_release(b);
  side_free(c);
  side_free(s);
}

/* Writes on one stream between two flushes of the output leave as one Data frame (pipelined
 * calls reach the peer in one delivery): the last frame grows while it is still whole in the
 * output, is this stream's and carries no flag, up to max_frame_data; anything else starts a
 * new frame. The peer reads every byte, in order. */
static void test_yamux_writes_between_flushes_extend_the_last_frame(void **st) {
  (void)st;
  yamux_config cfg;
  yamux_config_default(&cfg);
  cfg.max_frame_data = 100;
  side *c, *s;
  pair(&c, &s, &cfg);
  c->auto_consume = s->auto_consume = true;
  yamux_stream *a, *b;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  assert_int_equal(yamux_stream_open(c->s, &b), 0);
  pump(c, s); /* the SYNs, and the ACKs back */
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"one.", 4), 4); /* its first frame: no flag */
  pump(c, s);
  size_t len;
  yamux_header hs[16];
  /* three writes on a: one frame of 12 bytes */
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"two.", 4), 4);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"three", 5), 5);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"...", 3), 3);
  const uint8_t *p = yamux_session_out(c->s, &len);
  assert_int_equal(len, YAMUX_HEADER_LEN + 12);
  assert_int_equal(frames_of(p, len, hs, 16), 1);
  assert_int_equal(hs[0].type, YAMUX_TYPE_DATA);
  assert_int_equal(hs[0].flags, 0);
  assert_int_equal(hs[0].length, 12);
  /* another stream's write, then a's again: three frames (a's is not the last one any more) */
  assert_int_equal(yamux_stream_write(b, (const uint8_t *)"B", 1), 1);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"four", 4), 4);
  p = yamux_session_out(c->s, &len);
  assert_int_equal(frames_of(p, len, hs, 16), 3);
  assert_int_equal(hs[2].length, 4);
  /* the output taken up to a's last frame (a flush of what came before): that frame is whole
   * and last, it still grows */
  yamux_session_out_consume(c->s, YAMUX_HEADER_LEN + 12);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"five", 4), 4);
  p = yamux_session_out(c->s, &len);
  assert_int_equal(frames_of(p, len, hs, 16), 2); /* b's, a's "four" + "five" */
  assert_int_equal(hs[1].length, 8);
  /* taken into a's frame (part of it is on its way): the next write starts a new frame */
  yamux_session_out_consume(c->s, YAMUX_HEADER_LEN + 1 + YAMUX_HEADER_LEN + 2);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"six", 3), 3);
  p = yamux_session_out(c->s, &len);
  assert_int_equal(len, 6 + YAMUX_HEADER_LEN + 3);
  /* (what was consumed above is lost to the peer: start over on a fresh pair for the bytes) */
  yamux_stream_release(a);
  yamux_stream_release(b);
  side_free(c);
  side_free(s);

  /* the bound, the FIN, and the bytes in order */
  pair(&c, &s, &cfg);
  c->auto_consume = s->auto_consume = true;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  pump(c, s);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"x", 1), 1);
  pump(c, s);
  uint8_t big[150];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)('a' + i % 26);
  for (size_t i = 0; i < sizeof big; i += 30) assert_int_equal(yamux_stream_write(a, big + i, 30), 30);
  p = yamux_session_out(c->s, &len);
  assert_int_equal(frames_of(p, len, hs, 16), 2); /* 90 + 60: a frame holds at most 100 */
  assert_int_equal(hs[0].length, 90);
  assert_int_equal(hs[1].length, 60);
  assert_int_equal(yamux_stream_close(a), 0); /* FIN: its own frame */
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"y", 1), -EPIPE);
  p = yamux_session_out(c->s, &len);
  assert_int_equal(frames_of(p, len, hs, 16), 3);
  pump(c, s);
  assert_int_equal(buf_len(&s->rx[1]), 1 + sizeof big);
  assert_memory_equal((const uint8_t *)buf_ptr(&s->rx[1]) + 1, big, sizeof big);
  assert_int_equal(s->fins[1], 1);
  yamux_stream_release(a);
  side_free(c);
  side_free(s);
}

static void test_yamux_sender_never_exceeds_window_slow_reader_backpressure(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  s->write_on_open = true; /* ACKs the stream (else the first consume sends the ACK at once) */
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  static uint8_t big[1 << 20];
  memset(big, 7, sizeof big);
  size_t sent = 0;
  ssize_t n = yamux_stream_write(a, big, sizeof big);
  assert_int_equal(n, YAMUX_INITIAL_WINDOW); /* exactly the peer's window */
  sent += (size_t)n;
  assert_int_equal(yamux_stream_write(a, big, sizeof big), -EAGAIN);
  pump(c, s);
  /* The reader consumes nothing: nothing more may be sent, however often we try. */
  assert_int_equal(yamux_stream_write(a, big, sizeof big), -EAGAIN);
  pump(c, s);
  assert_int_equal(buf_len(&s->rx[1]), YAMUX_INITIAL_WINDOW);
  assert_int_equal(yamux_stream_send_window(a), 0);
  assert_int_equal(c->writables[1], 0);
  /* The slow reader consumes a quarter: below the update threshold, still blocked. */
  s->now += 10000000; /* slow: 10 s later, so no window growth either */
  yamux_stream *b = s->accepted[0];
  assert_int_equal(yamux_stream_consume(b, YAMUX_INITIAL_WINDOW / 4), 0);
  pump(c, s);
  assert_int_equal(c->writables[1], 0);
  /* Half consumed: a window update of exactly that amount goes out, the writer resumes. */
  assert_int_equal(yamux_stream_consume(b, YAMUX_INITIAL_WINDOW / 4), 0);
  pump(c, s);
  assert_int_equal(c->writables[1], 1);
  assert_int_equal(yamux_stream_send_window(a), YAMUX_INITIAL_WINDOW / 2);
  n = yamux_stream_write(a, big, sizeof big);
  assert_int_equal(n, YAMUX_INITIAL_WINDOW / 2);
  sent += (size_t)n;
  pump(c, s);
  assert_int_equal(buf_len(&s->rx[1]), sent);
  assert_int_equal(yamux_stream_recv_window(b), YAMUX_INITIAL_WINDOW); /* no growth */
  assert_true(yamux_stream_unconsumed(b) <= yamux_stream_recv_window(b));
  assert_int_equal(yamux_stream_consume(b, yamux_stream_unconsumed(b) + 1), -EINVAL);
  side_free(c);
  side_free(s);
}

static void test_yamux_window_grows_to_16mib_for_fast_reader(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  s->auto_consume = true; /* the fake clock stands still: consumption is instant */
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  static uint8_t big[1 << 20];
  size_t total = 0;
  for (int i = 0; i < 400 && total < (64u << 20); i++) {
    size_t want = (64u << 20) - total < sizeof big ? (64u << 20) - total : sizeof big;
    ssize_t n = yamux_stream_write(a, big, want);
    if (n > 0) total += (size_t)n;
    pump(c, s);
  }
  assert_int_equal(buf_len(&s->rx[1]), total);
  assert_int_equal(yamux_stream_recv_window(s->accepted[0]), 16u << 20);
  assert_true(total >= (64u << 20));
  side_free(c);
  side_free(s);
}

static void test_yamux_rst_resets_peer_stream(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"x", 1), 1);
  pump(c, s);
  yamux_stream *b = s->accepted[0];
  yamux_stream_reset(a);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"x", 1), -ECONNRESET);
  pump(c, s);
  assert_int_equal(s->resets[1], 1);
  assert_true(yamux_stream_is_reset(b));
  assert_int_equal(yamux_stream_write(b, (const uint8_t *)"y", 1), -ECONNRESET);
  assert_int_equal(yamux_session_stream_count(s->s), 0);
  assert_int_equal(yamux_session_stream_count(c->s), 0);
  yamux_stream_release(b);
  yamux_stream_release(a);
  side_free(c);
  side_free(s);
}

static void test_yamux_release_of_open_stream_sends_rst(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  pump(c, s);
  yamux_stream_release(s->accepted[0]);
  pump(c, s);
  assert_int_equal(c->resets[1], 1);
  yamux_stream_release(a);
  side_free(c);
  side_free(s);
}

static void test_yamux_released_half_closed_stream_lets_peer_finish(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  s->write_on_open = true;
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  pump(c, s);
  yamux_stream *b = s->accepted[0];
  /* The server is done: closes its write side and drops the handle without reading. */
  assert_int_equal(yamux_stream_close(b), 0);
  yamux_stream_release(b);
  pump(c, s);
  /* The client still sends 1 MiB (4 windows): the released stream must keep crediting. */
  static uint8_t big[1 << 20];
  size_t sent = 0;
  for (int i = 0; i < 100 && sent < sizeof big; i++) {
    ssize_t n = yamux_stream_write(a, big + sent, sizeof big - sent);
    if (n > 0) sent += (size_t)n;
    pump(c, s);
  }
  assert_int_equal(sent, sizeof big);
  assert_int_equal(buf_len(&s->rx[1]), 0); /* nothing reached the server app after release */
  assert_int_equal(buf_len(&c->rx[1]), 1); /* the client got the server's "!" */
  assert_int_equal(yamux_stream_close(a), 0);
  pump(c, s);
  assert_int_equal(yamux_session_stream_count(s->s), 0); /* freed on the peer's FIN */
  assert_int_equal(yamux_session_stream_count(c->s), 0);
  assert_int_equal(c->resets[1], 0);
  yamux_stream_release(a);
  side_free(c);
  side_free(s);
}

static void test_yamux_goaway_refuses_new_streams(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0); /* opened before GoAway: keeps working */
  pump(c, s);
  assert_int_equal(yamux_session_goaway(s->s, YAMUX_GOAWAY_NORMAL), 0);
  pump(c, s);
  assert_int_equal(c->goaways, 1);
  assert_int_equal(c->goaway_code, YAMUX_GOAWAY_NORMAL);
  assert_true(yamux_session_goaway_received(c->s));
  yamux_stream *b;
  assert_int_equal(yamux_stream_open(c->s, &b), -EPIPE);
  assert_int_equal(yamux_stream_open(s->s, &b), -EPIPE);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"ok", 2), 2);
  pump(c, s);
  assert_int_equal(buf_len(&s->rx[1]), 2);
  /* A SYN arriving after our GoAway is refused with RST (raw frame: the client API would
   * not let us open one). */
  uint8_t syn[YAMUX_HEADER_LEN];
  yamux_header h = {0, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, 5, 0};
  yamux_header_encode(&h, syn);
  assert_int_equal(yamux_session_feed(s->s, syn, sizeof syn), 0);
  size_t len;
  const uint8_t *p = yamux_session_out(s->s, &len);
  assert_int_equal(len, YAMUX_HEADER_LEN);
  yamux_header_decode(p, &h);
  assert_int_equal(h.flags, YAMUX_FLAG_RST);
  assert_int_equal(h.stream_id, 5);
  assert_int_equal(s->n_accepted, 1);
  side_free(c);
  side_free(s);
}

static void test_yamux_stream_cap_refuses_excess_syn_with_rst(void **st) {
  (void)st;
  yamux_config cfg;
  yamux_config_default(&cfg);
  cfg.max_streams = 2;
  side *c = side_new(true, NULL), *s = side_new(false, &cfg);
  pump(c, s);
  yamux_stream *x[3];
  for (int i = 0; i < 3; i++) assert_int_equal(yamux_stream_open(c->s, &x[i]), 0);
  pump(c, s);
  assert_int_equal(s->n_accepted, 2);
  assert_int_equal(c->resets[5], 1);
  assert_int_equal(c->resets[1] + c->resets[3], 0);
  /* Locally the cap is -EMFILE. */
  yamux_stream *y;
  assert_int_equal(yamux_stream_open(s->s, &y), -EMFILE);
  side_free(c);
  side_free(s);
}

static void test_yamux_ack_backlog_caps_unacknowledged_opens_at_256(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  yamux_stream *x;
  for (int i = 0; i < YAMUX_MAX_ACK_BACKLOG; i++) assert_int_equal(yamux_stream_open(c->s, &x), 0);
  assert_int_equal(yamux_stream_open(c->s, &x), -EAGAIN);
  pump(c, s); /* the server accepts but has not written: still unacknowledged */
  assert_int_equal(yamux_stream_open(c->s, &x), -EAGAIN);
  assert_int_equal(yamux_stream_write(s->accepted[0], (const uint8_t *)"a", 1), 1);
  pump(c, s);
  assert_int_equal(yamux_stream_open(c->s, &x), 0);
  side_free(c);
  side_free(s);
}

static void test_yamux_ping_is_echoed_and_rtt_measured(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  assert_int_equal(yamux_session_ping(c->s, 0x1234), 0);
  assert_int_equal(xfer(c, s, 1 << 30), YAMUX_HEADER_LEN);
  size_t len;
  const uint8_t *p = yamux_session_out(s->s, &len);
  yamux_header h;
  assert_int_equal(len, YAMUX_HEADER_LEN);
  yamux_header_decode(p, &h);
  assert_int_equal(h.type, YAMUX_TYPE_PING);
  assert_int_equal(h.flags, YAMUX_FLAG_ACK);
  assert_int_equal(h.length, 0x1234);
  c->now += 1500;
  assert_int_equal(xfer(s, c, 1 << 30), YAMUX_HEADER_LEN);
  assert_int_equal(c->pongs, 1);
  assert_int_equal(c->pong_opaque, 0x1234);
  assert_int_equal(c->pong_rtt, 1500);
  assert_true(yamux_session_rtt_us(c->s) > 0);
  side_free(c);
  side_free(s);
}

/* Feeds one raw frame to a fresh server session and returns the feed result. */
static int feed_raw(yamux_header h, bool *goaway_proto_sent) {
  side *s = side_new(false, NULL);
  size_t len;
  (void)yamux_session_out(s->s, &len);
  yamux_session_out_consume(s->s, len); /* drop the auto ping */
  uint8_t b[YAMUX_HEADER_LEN];
  yamux_header_encode(&h, b);
  int rc = yamux_session_feed(s->s, b, sizeof b);
  const uint8_t *p = yamux_session_out(s->s, &len);
  *goaway_proto_sent = false;
  for (size_t pos = 0; pos + YAMUX_HEADER_LEN <= len; pos += YAMUX_HEADER_LEN) {
    yamux_header g;
    yamux_header_decode(p + pos, &g);
    if (g.type == YAMUX_TYPE_GO_AWAY && g.length == YAMUX_GOAWAY_PROTOCOL_ERROR)
      *goaway_proto_sent = true;
  }
  if (rc) assert_int_equal(yamux_session_feed(s->s, b, 1), rc); /* sticky */
  side_free(s);
  return rc;
}

static void test_yamux_malformed_frames_are_protocol_errors(void **st) {
  (void)st;
  bool ga;
  assert_int_equal(feed_raw((yamux_header){1, 0, YAMUX_FLAG_SYN, 1, 0}, &ga), -EPROTO);
  assert_true(ga);
  assert_int_equal(feed_raw((yamux_header){0, 4, 0, 1, 0}, &ga), -EPROTO); /* unknown type */
  assert_true(ga);
  assert_int_equal(feed_raw((yamux_header){0, 0, YAMUX_FLAG_SYN, 0, 0}, &ga), -EPROTO); /* id 0 */
  assert_int_equal(feed_raw((yamux_header){0, 1, YAMUX_FLAG_SYN, 2, 0}, &ga), -EPROTO); /* parity */
  /* Data past the 256 KiB window on a new stream. */
  assert_int_equal(
      feed_raw((yamux_header){0, 0, YAMUX_FLAG_SYN, 1, YAMUX_INITIAL_WINDOW + 1}, &ga), -EPROTO);
  /* Data for an unknown stream longer than any window we could have granted. */
  assert_int_equal(feed_raw((yamux_header){0, 0, 0, 7, (16u << 20) + 1}, &ga), -EPROTO);
  /* The same with a plausible length is discarded silently (in-flight after a reset). */
  assert_int_equal(feed_raw((yamux_header){0, 0, 0, 7, 0}, &ga), 0);
  assert_false(ga);
}

static void test_yamux_duplicate_syn_and_window_overflow_are_errors(void **st) {
  (void)st;
  side *s = side_new(false, NULL);
  uint8_t b[YAMUX_HEADER_LEN];
  yamux_header h = {0, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, 1, 0};
  yamux_header_encode(&h, b);
  assert_int_equal(yamux_session_feed(s->s, b, sizeof b), 0);
  h.length = UINT32_MAX; /* 256 KiB + 4 GiB overflows the send window */
  h.flags = 0;
  yamux_header_encode(&h, b);
  assert_int_equal(yamux_session_feed(s->s, b, sizeof b), -EPROTO);
  assert_int_equal(s->resets[1], 1); /* the session error reset the stream */
  side_free(s);
  s = side_new(false, NULL);
  h = (yamux_header){0, YAMUX_TYPE_WINDOW_UPDATE, YAMUX_FLAG_SYN, 1, 0};
  yamux_header_encode(&h, b);
  assert_int_equal(yamux_session_feed(s->s, b, sizeof b), 0);
  assert_int_equal(yamux_session_feed(s->s, b, sizeof b), -EPROTO);
  side_free(s);
}

static void test_yamux_byte_by_byte_input(void **st) {
  (void)st;
  side *c = side_new(true, NULL), *s = side_new(false, NULL);
  s->auto_consume = c->auto_consume = true;
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  uint8_t msg[3000];
  for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 7);
  assert_int_equal(yamux_stream_write(a, msg, sizeof msg), (ssize_t)sizeof msg);
  assert_int_equal(yamux_stream_close(a), 0);
  assert_int_equal(yamux_session_ping(c->s, 9), 0);
  for (int i = 0; i < 20; i++) {
    assert_true(xfer(c, s, 1) >= 0);
    assert_true(xfer(s, c, 1) >= 0);
  }
  assert_int_equal(buf_len(&s->rx[1]), sizeof msg);
  assert_memory_equal(buf_ptr(&s->rx[1]), msg, sizeof msg);
  assert_int_equal(s->fins[1], 1);
  assert_int_equal(c->pongs, 1);
  side_free(c);
  side_free(s);
}

static void test_yamux_output_soft_limit_blocks_writes_until_drained(void **st) {
  (void)st;
  yamux_config cfg;
  yamux_config_default(&cfg);
  cfg.out_soft_limit = 64 * 1024;
  cfg.auto_ping = false;
  side *c = side_new(true, &cfg), *s = side_new(false, NULL);
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  static uint8_t data[200000];
  ssize_t n = yamux_stream_write(a, data, sizeof data);
  assert_true(n > 0 && n <= 64 * 1024);
  assert_int_equal(yamux_stream_write(a, data, sizeof data), -EAGAIN);
  assert_true(yamux_session_out_pending(c->s) <= cfg.out_soft_limit + 2 * YAMUX_HEADER_LEN);
  assert_int_equal(c->writables[1], 0);
  assert_true(xfer(c, s, 1 << 30) > 0); /* the owner drains: writable again */
  assert_int_equal(c->writables[1], 1);
  assert_true(yamux_stream_write(a, data, sizeof data) > 0);
  side_free(c);
  side_free(s);
}

static void test_yamux_refused_open_sends_rst(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  s->refuse_open = -1;
  yamux_stream *a;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"early", 5), 5);
  pump(c, s);
  assert_int_equal(c->resets[1], 1);
  assert_int_equal(yamux_session_stream_count(s->s), 0);
  side_free(c);
  side_free(s);
}

static void test_yamux_open_callback_may_release_or_reset_the_new_stream(void **st) {
  (void)st;
  for (int action = 1; action <= 3; action++) {
    side *c, *s;
    pair(&c, &s, NULL);
    s->open_action = action;
    yamux_stream *a;
    assert_int_equal(yamux_stream_open(c->s, &a), 0);
    assert_int_equal(yamux_stream_write(a, (const uint8_t *)"data", 4), 4);
    pump(c, s);
    assert_int_equal(c->resets[1], 1); /* exactly one RST reached the opener */
    assert_int_equal(yamux_session_stream_count(s->s), 0);
    assert_int_equal(yamux_session_error(s->s), 0);
    if (action == 3) yamux_stream_release(s->accepted[0]);
    yamux_stream_release(a);
    side_free(c);
    side_free(s);
  }
}

static void test_yamux_transport_closed_resets_every_stream(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  yamux_stream *a, *b;
  assert_int_equal(yamux_stream_open(c->s, &a), 0);
  assert_int_equal(yamux_stream_open(c->s, &b), 0);
  yamux_session_transport_closed(c->s);
  assert_int_equal(c->resets[1] + c->resets[3], 2);
  assert_int_equal(yamux_stream_write(a, (const uint8_t *)"x", 1), -ESHUTDOWN);
  assert_int_equal(yamux_session_error(c->s), -ESHUTDOWN);
  yamux_stream_release(a); /* handles stay valid until released */
  side_free(c);
  side_free(s);
}

static void test_yamux_many_concurrent_streams_echo(void **st) {
  (void)st;
  side *c, *s;
  pair(&c, &s, NULL);
  c->auto_consume = s->auto_consume = true;
  yamux_stream *x[100];
  for (int i = 0; i < 100; i++) {
    assert_int_equal(yamux_stream_open(c->s, &x[i]), 0);
    char m[32];
    int n = snprintf(m, sizeof m, "stream %d", i);
    assert_int_equal(yamux_stream_write(x[i], (const uint8_t *)m, (size_t)n), n);
    assert_int_equal(yamux_stream_close(x[i]), 0);
  }
  pump(c, s);
  assert_int_equal(s->n_accepted, 100);
  for (size_t i = 0; i < s->n_accepted; i++) {
    yamux_stream *b = s->accepted[i];
    buf *rx = &s->rx[yamux_stream_id(b) % MAXS];
    assert_int_equal(yamux_stream_write(b, buf_ptr(rx), buf_len(rx)), (ssize_t)buf_len(rx));
    assert_int_equal(yamux_stream_close(b), 0);
    yamux_stream_release(b);
  }
  pump(c, s);
  for (int i = 0; i < 100; i++) {
    char m[32];
    int n = snprintf(m, sizeof m, "stream %d", i);
    buf *rx = &c->rx[yamux_stream_id(x[i]) % MAXS];
    assert_int_equal(buf_len(rx), (size_t)n);
    assert_memory_equal(buf_ptr(rx), m, (size_t)n);
    yamux_stream_release(x[i]);
  }
  assert_int_equal(yamux_session_stream_count(c->s), 0);
  assert_int_equal(yamux_session_stream_count(s->s), 0);
  side_free(c);
  side_free(s);
}

/* ---- randomized two-peer run: random operations, random transport splits ---------------- */

typedef struct rnd_side {
  yamux_session *s;
  int idx;                 /* 0 client, 1 server */
  yamux_stream *h[64];     /* held handles by id % 64 (ids stay < 64 in this test) */
  uint64_t sent[64], recv[64];
  bool reset_seen[64], fin_seen[64], released[64];
  bool consume_all;
  struct rnd_side *peer;
} rnd_side;

static uint64_t rnd_state;
static uint32_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 7;
  rnd_state ^= rnd_state << 17;
  return (uint32_t)(rnd_state >> 11);
}
static uint8_t pattern(int dir, uint32_t id, uint64_t off) {
  return (uint8_t)(off * 31 + id * 7 + (uint64_t)dir * 101);
}

static int r_open(yamux_session *s, yamux_stream *st, void *ud) {
  rnd_side *d = ud;
  uint32_t id = yamux_stream_id(st);
  if (id >= 64) return -1; /* beyond the test's table: refused (the opener reset it anyway) */
  assert_null(d->h[id]);
  d->h[id] = st;
  return 0;
}
static void r_data(yamux_session *s, yamux_stream *st, const uint8_t *p, size_t n, void *ud) {
  rnd_side *d = ud;
  uint32_t id = yamux_stream_id(st);
  for (size_t i = 0; i < n; i++) assert_int_equal(p[i], pattern(!d->idx, id, d->recv[id] + i));
  d->recv[id] += n;
  assert_true(yamux_stream_unconsumed(st) <= yamux_stream_recv_window(st));
  if (d->consume_all) assert_int_equal(yamux_stream_consume(st, yamux_stream_unconsumed(st)), 0);
}
static void r_fin(yamux_session *s, yamux_stream *st, void *ud) {
  ((rnd_side *)ud)->fin_seen[yamux_stream_id(st)] = true;
}
static void r_reset(yamux_session *s, yamux_stream *st, void *ud) {
  ((rnd_side *)ud)->reset_seen[yamux_stream_id(st)] = true;
}

/* Moves up to `max` pending bytes from a to b. */
static void r_move(rnd_side *a, rnd_side *b, size_t max) {
  size_t len;
  const uint8_t *p = yamux_session_out(a->s, &len);
  if (len > max) len = max;
  if (!len) return;
  uint8_t *copy = malloc(len);
  memcpy(copy, p, len);
  yamux_session_out_consume(a->s, len);
  assert_int_equal(yamux_session_feed(b->s, copy, len), 0);
  free(copy);
}

static void r_write(rnd_side *d, uint32_t id, size_t want) {
  yamux_stream *st = d->h[id];
  if (!st || d->released[id]) return;
  static uint8_t tmp[300000];
  if (want > sizeof tmp) want = sizeof tmp;
  for (size_t i = 0; i < want; i++) tmp[i] = pattern(d->idx, id, d->sent[id] + i);
  ssize_t n = yamux_stream_write(st, tmp, want);
  if (n > 0) {
    assert_true((size_t)n <= want);
    d->sent[id] += (uint64_t)n;
  } else if (want) {
    assert_true(n == -EAGAIN || n == -EPIPE || n == -ECONNRESET);
  }
}

static void test_yamux_random_operations_keep_streams_intact(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 12; seed++) {
    rnd_state = seed * 0x9E3779B97F4A7C15ull;
    yamux_callbacks cb = {r_open, r_data, r_fin, r_reset, NULL, NULL, NULL, NULL, NULL};
    rnd_side *sd = calloc(2, sizeof *sd);
    yamux_config cfg;
    yamux_config_default(&cfg);
    cfg.out_soft_limit = 1 + rnd() % 300000;
    cfg.max_frame_data = 1 + rnd() % 70000;
    for (int i = 0; i < 2; i++) {
      sd[i].idx = i;
      sd[i].peer = &sd[1 - i];
      assert_int_equal(yamux_session_new(&sd[i].s, i == 0, &cfg, &cb, &sd[i]), 0);
    }
    for (int step = 0; step < 3000; step++) {
      rnd_side *d = &sd[rnd() % 2];
      uint32_t id = rnd() % 64;
      switch (rnd() % 12) {
        case 0: {
          yamux_stream *st;
          int rc = yamux_stream_open(d->s, &st);
          if (rc == 0) {
            uint32_t nid = yamux_stream_id(st);
            if (nid >= 64) { /* out of test ids: drop it */
              yamux_stream_reset(st);
              yamux_stream_release(st);
            } else {
              d->h[nid] = st;
            }
          }
          break;
        }
        case 1: case 2: r_write(d, id, rnd() % 100000); break;
        case 3:
          if (d->h[id] && !d->released[id] && rnd() % 4 == 0) {
            int rc = yamux_stream_close(d->h[id]);
            assert_true(rc == 0 || rc == -ECONNRESET);
          }
          break;
        case 4:
          if (d->h[id] && !d->released[id] && rnd() % 40 == 0) yamux_stream_reset(d->h[id]);
          break;
        case 5:
          if (d->h[id] && !d->released[id]) {
            size_t u = yamux_stream_unconsumed(d->h[id]);
            if (u) assert_int_equal(yamux_stream_consume(d->h[id], 1 + rnd() % u), 0);
          }
          break;
        case 6: case 7: case 8: r_move(d, d->peer, 1 + rnd() % 200000); break;
        case 9: {
          int rc = yamux_session_ping(d->s, rnd());
          assert_true(rc == 0 || rc == -EAGAIN);
          break;
        }
        case 10:
          if (d->h[id] && !d->released[id] && yamux_stream_read_closed(d->h[id]) &&
              yamux_stream_write_closed(d->h[id])) {
            if (yamux_stream_is_reset(d->h[id])) d->reset_seen[id] = true;
            yamux_stream_release(d->h[id]);
            d->released[id] = true;
          }
          break;
        case 11: d->consume_all = rnd() % 2; break;
      }
    }
    /* Wind down: everyone consumes, writes finish, both sides close, until quiet. */
    for (int i = 0; i < 2; i++) sd[i].consume_all = true;
    for (int round = 0; round < 200; round++) {
      for (int i = 0; i < 2; i++)
        for (uint32_t id = 0; id < 64; id++) {
          yamux_stream *st = sd[i].h[id];
          if (!st || sd[i].released[id]) continue;
          size_t u = yamux_stream_unconsumed(st);
          if (u) assert_int_equal(yamux_stream_consume(st, u), 0);
          if (round > 100) {
            int rc = yamux_stream_close(st);
            assert_true(rc == 0 || rc == -ECONNRESET);
          }
        }
      r_move(&sd[0], &sd[1], SIZE_MAX);
      r_move(&sd[1], &sd[0], SIZE_MAX);
    }
    /* Every stream neither side reset delivered exactly what was written, then FIN. */
    int verified = 0;
    uint64_t bytes = 0;
    for (uint32_t id = 1; id < 64; id++) {
      if (!sd[0].h[id] || !sd[1].h[id]) continue;
      bool reset = sd[0].reset_seen[id] || sd[1].reset_seen[id];
      for (int i = 0; i < 2; i++)
        if (!sd[i].released[id] && yamux_stream_is_reset(sd[i].h[id])) reset = true;
      if (reset) continue;
      assert_int_equal(sd[1].recv[id], sd[0].sent[id]);
      assert_int_equal(sd[0].recv[id], sd[1].sent[id]);
      assert_true(sd[0].fin_seen[id] && sd[1].fin_seen[id]);
      verified++;
      bytes += sd[0].sent[id] + sd[1].sent[id];
    }
    assert_true(verified >= 5 && bytes > 1000000); /* the run really moved data */
    assert_int_equal(yamux_session_stream_count(sd[0].s), 0);
    assert_int_equal(yamux_session_stream_count(sd[1].s), 0);
    for (int i = 0; i < 2; i++) yamux_session_free(sd[i].s);
    free(sd);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_yamux_header_is_big_endian_12_bytes),
      cmocka_unit_test(test_yamux_client_ids_odd_server_ids_even_syn_is_window_update),
      cmocka_unit_test(test_yamux_ack_waits_for_first_frame_from_application),
      cmocka_unit_test(test_yamux_data_both_ways_and_half_close),
      cmocka_unit_test(test_yamux_writes_between_flushes_extend_the_last_frame),
      cmocka_unit_test(test_yamux_sender_never_exceeds_window_slow_reader_backpressure),
      cmocka_unit_test(test_yamux_window_grows_to_16mib_for_fast_reader),
      cmocka_unit_test(test_yamux_rst_resets_peer_stream),
      cmocka_unit_test(test_yamux_release_of_open_stream_sends_rst),
      cmocka_unit_test(test_yamux_released_half_closed_stream_lets_peer_finish),
      cmocka_unit_test(test_yamux_goaway_refuses_new_streams),
      cmocka_unit_test(test_yamux_stream_cap_refuses_excess_syn_with_rst),
      cmocka_unit_test(test_yamux_ack_backlog_caps_unacknowledged_opens_at_256),
      cmocka_unit_test(test_yamux_ping_is_echoed_and_rtt_measured),
      cmocka_unit_test(test_yamux_malformed_frames_are_protocol_errors),
      cmocka_unit_test(test_yamux_duplicate_syn_and_window_overflow_are_errors),
      cmocka_unit_test(test_yamux_byte_by_byte_input),
      cmocka_unit_test(test_yamux_output_soft_limit_blocks_writes_until_drained),
      cmocka_unit_test(test_yamux_refused_open_sends_rst),
      cmocka_unit_test(test_yamux_open_callback_may_release_or_reset_the_new_stream),
      cmocka_unit_test(test_yamux_transport_closed_resets_every_stream),
      cmocka_unit_test(test_yamux_many_concurrent_streams_echo),
      cmocka_unit_test(test_yamux_random_operations_keep_streams_intact),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
