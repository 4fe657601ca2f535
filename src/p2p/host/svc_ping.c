/* svc_ping.c — /ipfs/ping/1.0.0 (libp2p/specs ping/ping.md) as a host service: the echo
 * server on every host, and the one-shot client p2p_host_ping. The engine is sans-I/O in
 * p2p/proto/ping.c. */
#include <errno.h>
#include <stdlib.h>

#include "p2p/host/internal.h"
#include "p2p/proto/ping.h"
#include "util/clock.h"

/* ---------------------------------------------------------------- ping */

typedef struct ping_srv {
  ping_server p;
  buf out;
} ping_srv;

static void ping_srv_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  ping_srv *ps = ud;
  if (ping_server_feed(&ps->p, d, n, &ps->out) != 0) {
    p2p_stream_reset(s);
    return;
  }
  if (buf_len(&ps->out)) {
    int rc = p2p_stream_write(s, buf_ptr(&ps->out), buf_len(&ps->out));
    buf_reset(&ps->out);
    if (rc < 0) p2p_stream_reset(s);
  }
}

static void ping_srv_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}

static void ping_srv_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  ping_srv *ps = ud;
  buf_free(&ps->out);
  free(ps);
}

static void ping_serve(p2p_stream *s, void *ud) {
  (void)ud;
  ping_srv *ps = calloc(1, sizeof *ps);
  if (!ps) {
    p2p_stream_reset(s);
    return;
  }
  ping_server_init(&ps->p);
  buf_init(&ps->out, 64 * 1024);
  static const p2p_stream_callbacks cbs = {.on_data = ping_srv_data, .on_eof = ping_srv_eof, .on_close = ping_srv_close};
  p2p_stream_set_callbacks(s, &cbs, ps);
}

typedef struct ping_cli {
  ping_client p;
  p2p_ping_fn cb;
  void *ud;
  bool done;
} ping_cli;

static void ping_cli_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  ping_cli *pc = ud;
  size_t used;
  uint64_t rtt;
  int rc = ping_client_feed(&pc->p, d, n, clock_mono_us(), &used, &rtt);
  if (rc < 0) {
    p2p_stream_reset(s);
    return;
  }
  if (rc == 1 && !pc->done) {
    pc->done = true;
    pc->cb(0, rtt, pc->ud);
    p2p_stream_close_write(s);
  }
}

static void ping_cli_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  ping_cli *pc = ud;
  if (!pc->done) pc->cb(err ? err : -EPROTO, 0, pc->ud);
  free(pc);
}

static void ping_cli_opened(p2p_stream *s, int err, void *ud) {
  ping_cli *pc = ud;
  if (!s) {
    pc->cb(err, 0, pc->ud);
    free(pc);
    return;
  }
  static const p2p_stream_callbacks cbs = {.on_data = ping_cli_data, .on_close = ping_cli_close};
  p2p_stream_set_callbacks(s, &cbs, pc);
  uint8_t payload[PING_PAYLOAD_LEN];
  if (ping_client_start(&pc->p, clock_mono_us(), payload) != 0 || p2p_stream_write(s, payload, sizeof payload) < 0)
    p2p_stream_reset(s);
}

int p2p_host_ping(p2p_host *h, const char *target, p2p_ping_fn cb, void *ud) {
  LOOP_THREAD_ONLY();
  if (!cb) return -EINVAL;
  ping_cli *pc = calloc(1, sizeof *pc);
  if (!pc) return -ENOMEM;
  ping_client_init(&pc->p);
  pc->cb = cb;
  pc->ud = ud;
  int rc = p2p_host_open_stream(h, target, PING_PROTO_ID, ping_cli_opened, pc);
  if (rc) free(pc);
  return rc;
}

/* ---------------------------------------------------------------- registration */

static const p2p_service_handler ping_handlers[] = {{PING_PROTO_ID, ping_serve}};
static const p2p_service ping_service = {.name = "ping", .handlers = ping_handlers, .n_handlers = 1};

int svc_ping_add(p2p_host *h) { return p2p_host_add_service(h, &ping_service, h); }
