/* fuzz_yamux.c — libFuzzer target: Yamux frame parser and session state machine.
 *
 * Byte 0 picks the role and options; the rest is fed to one session in chunks whose sizes
 * come from byte 1. The callbacks exercise the re-entrant API the way a host would: accept
 * or refuse, echo and consume data, close on FIN, release on reset, write on writable, and
 * drain the output now and then. Invariants checked: the output never passes the hard
 * limit, a stream's unconsumed bytes never pass its receive window. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/yamux.h"

typedef struct fz {
  uint8_t mode;
  uint64_t now;
  yamux_stream *held[64];
  size_t n_held;
} fz;

static void fz_hold(fz *f, yamux_stream *st) {
  if (f->n_held < 64)
    f->held[f->n_held++] = st;
  else
    yamux_stream_release(st);
}

static void fz_drop(fz *f, yamux_stream *st) {
  for (size_t i = 0; i < f->n_held; i++) {
    if (f->held[i] == st) {
      f->held[i] = f->held[--f->n_held];
      yamux_stream_release(st);
      return;
    }
  }
}

static int on_open(yamux_session *s, yamux_stream *st, void *ud) {
  fz *f = ud;
  if ((f->mode & 2) && (yamux_stream_id(st) % 5 == 0)) return -1;
  if ((f->mode & 2) && (yamux_stream_id(st) % 7 == 0)) {
    yamux_stream_release(st); /* re-entrant release from the open callback */
    return 0;
  }
  if ((f->mode & 2) && (yamux_stream_id(st) % 11 == 0)) {
    yamux_stream_reset(st);
    return -1;
  }
  fz_hold(f, st);
  return 0;
}

static void on_data(yamux_session *s, yamux_stream *st, const uint8_t *p, size_t n, void *ud) {
  fz *f = ud;
  if (yamux_stream_unconsumed(st) > yamux_stream_recv_window(st)) abort();
  if (f->mode & 4) {
    ssize_t w = yamux_stream_write(st, p, n);
    (void)w;
  }
  if (!(f->mode & 8) || (n & 1)) {
    if (yamux_stream_consume(st, n) != 0 && yamux_session_error(s) == 0) abort();
  }
}

static void on_fin(yamux_session *s, yamux_stream *st, void *ud) {
  int rc = yamux_stream_close(st);
  (void)rc;
  if (((fz *)ud)->mode & 16) fz_drop(ud, st);
}

static void on_reset(yamux_session *s, yamux_stream *st, void *ud) { fz_drop(ud, st); }

static void on_writable(yamux_session *s, yamux_stream *st, void *ud) {
  static const uint8_t z[300];
  ssize_t w = yamux_stream_write(st, z, sizeof z);
  (void)w;
}

static uint64_t now_us(void *ud) { return ((fz *)ud)->now += 37; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  fz f = {.mode = data[0]};
  size_t chunk = (size_t)data[1] * 3 + 1;
  data += 2;
  size -= 2;
  yamux_callbacks cb = {on_open, on_data, on_fin, on_reset, NULL, on_writable, NULL, NULL, now_us};
  yamux_config cfg;
  yamux_config_default(&cfg);
  cfg.max_streams = 8;
  cfg.out_soft_limit = 4096;
  cfg.out_hard_limit = 8192;
  yamux_session *s;
  if (yamux_session_new(&s, (f.mode & 1) != 0, &cfg, &cb, &f)) return 0;
  if (f.mode & 32) {
    yamux_stream *st;
    if (yamux_stream_open(s, &st) == 0) {
      fz_hold(&f, st);
      ssize_t w = yamux_stream_write(st, (const uint8_t *)"hello", 5);
      (void)w;
    }
  }
  size_t pos = 0;
  int round = 0;
  while (pos < size) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    int rc = yamux_session_feed(s, data + pos, n);
    pos += n;
    if (yamux_session_out_pending(s) > cfg.out_hard_limit) abort();
    if (rc) break;
    if ((++round & 3) == 0 || (f.mode & 64)) {
      size_t len;
      (void)yamux_session_out(s, &len);
      yamux_session_out_consume(s, len);
    }
    if ((f.mode & 128) && round == 2) {
      int g = yamux_session_goaway(s, YAMUX_GOAWAY_NORMAL);
      (void)g;
    }
  }
  if (f.mode & 16) yamux_session_transport_closed(s);
  while (f.n_held) fz_drop(&f, f.held[f.n_held - 1]);
  yamux_session_free(s);
  return 0;
}
