/* svc_perf.c — /perf/1.0.0 (libp2p/specs perf/perf.md) as a host service: the server only
 * when p2p_host_config.enable_perf is set (the spec: not on by default), the client
 * p2p_host_perf always. The engine is sans-I/O in p2p/proto/perf.c. */
#include <errno.h>
#include <stdlib.h>

#include "p2p/host/internal.h"
#include "p2p/proto/perf.h"
#include "util/clock.h"

#define SERVICE_CHUNK (64u * 1024u)

/* ---------------------------------------------------------------- perf */


typedef struct perf_srv {
  perf_server p;
} perf_srv;

static void perf_srv_send(p2p_stream *s, perf_srv *ps) {
  uint8_t perf_block[SERVICE_CHUNK]; /* on the stack: hosts on several threads share nothing */
  while (ps->p.state == PERF_SRV_SEND) {
    size_t n = perf_server_fill(&ps->p, perf_block, sizeof perf_block);
    if (!n) break;
    int rc = p2p_stream_write(s, perf_block, n);
    if (rc < 0) {
      p2p_stream_reset(s);
      return;
    }
    perf_server_sent(&ps->p, n);
    if (rc == 1) return; /* on_writable continues */
  }
  if (ps->p.state == PERF_SRV_SEND && ps->p.sent >= ps->p.to_send) ps->p.state = PERF_SRV_DONE;
  if (ps->p.state == PERF_SRV_DONE) p2p_stream_close_write(s);
}

static void perf_srv_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  perf_srv *ps = ud;
  if (perf_server_feed(&ps->p, d, n) != 0) p2p_stream_reset(s);
}

static void perf_srv_eof(p2p_stream *s, void *ud) {
  perf_srv *ps = ud;
  if (perf_server_eof(&ps->p) != 0) {
    p2p_stream_reset(s);
    return;
  }
  perf_srv_send(s, ps);
}

static void perf_srv_writable(p2p_stream *s, void *ud) { perf_srv_send(s, ud); }

static void perf_srv_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  free(ud);
}

static void perf_serve(p2p_stream *s, void *ud) {
  (void)ud;
  perf_srv *ps = calloc(1, sizeof *ps);
  if (!ps) {
    p2p_stream_reset(s);
    return;
  }
  perf_server_init(&ps->p);
  static const p2p_stream_callbacks cbs = {
      .on_data = perf_srv_data, .on_eof = perf_srv_eof, .on_writable = perf_srv_writable, .on_close = perf_srv_close};
  p2p_stream_set_callbacks(s, &cbs, ps);
}

typedef struct perf_cli {
  perf_client p;
  p2p_perf_fn cb;
  void *ud;
  uint64_t t0_us;
  uint64_t t_reply_us; /* first downloaded byte (or EOF): the upload phase is over */
  bool done;
} perf_cli;

static void perf_cli_send(p2p_stream *s, perf_cli *pc) {
  uint8_t perf_block[SERVICE_CHUNK];
  while (pc->p.state == PERF_CLI_SEND) {
    size_t n = perf_client_fill(&pc->p, perf_block, sizeof perf_block);
    if (!n) break;
    int rc = p2p_stream_write(s, perf_block, n);
    if (rc < 0) {
      p2p_stream_reset(s);
      return;
    }
    perf_client_sent(&pc->p, n);
    if (rc == 1) return;
  }
  if (pc->p.state == PERF_CLI_RECEIVE) p2p_stream_close_write(s);
}

static void perf_cli_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  perf_cli *pc = ud;
  if (!pc->t_reply_us) pc->t_reply_us = clock_mono_us();
  if (perf_client_feed(&pc->p, d, n) != 0) p2p_stream_reset(s);
}

static void perf_cli_eof(p2p_stream *s, void *ud) {
  perf_cli *pc = ud;
  if (!pc->t_reply_us) pc->t_reply_us = clock_mono_us();
  if (perf_client_eof(&pc->p) != 0) {
    p2p_stream_reset(s);
    return;
  }
  pc->done = true;
}

static void perf_cli_writable(p2p_stream *s, void *ud) { perf_cli_send(s, ud); }

static void perf_cli_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  perf_cli *pc = ud;
  uint64_t now = clock_mono_us(), reply = pc->t_reply_us ? pc->t_reply_us : now;
  p2p_perf_result r = {pc->p.upload_total, pc->p.received, now - pc->t0_us, reply - pc->t0_us, now - reply};
  if (pc->done && err == 0) pc->cb(0, &r, pc->ud);
  else pc->cb(err ? err : -EPROTO, &r, pc->ud);
  free(pc);
}

static void perf_cli_opened(p2p_stream *s, int err, void *ud) {
  perf_cli *pc = ud;
  if (!s) {
    pc->cb(err, NULL, pc->ud);
    free(pc);
    return;
  }
  static const p2p_stream_callbacks cbs = {
      .on_data = perf_cli_data, .on_eof = perf_cli_eof, .on_writable = perf_cli_writable, .on_close = perf_cli_close};
  p2p_stream_set_callbacks(s, &cbs, pc);
  pc->t0_us = clock_mono_us();
  perf_cli_send(s, pc);
}

int p2p_host_perf(p2p_host *h, const char *target, uint64_t upload, uint64_t download, p2p_perf_fn cb, void *ud) {
  LOOP_THREAD_ONLY();
  if (!cb) return -EINVAL;
  perf_cli *pc = calloc(1, sizeof *pc);
  if (!pc) return -ENOMEM;
  perf_client_init(&pc->p, upload, download);
  pc->cb = cb;
  pc->ud = ud;
  int rc = p2p_host_open_stream(h, target, PERF_PROTO_ID, perf_cli_opened, pc);
  if (rc) free(pc);
  return rc;
}

/* ---------------------------------------------------------------- registration */

static const p2p_service_handler perf_handlers[] = {{PERF_PROTO_ID, perf_serve}};
static const p2p_service perf_service = {.name = "perf", .handlers = perf_handlers, .n_handlers = 1};

int svc_perf_add(p2p_host *h) { return h->cfg.enable_perf ? p2p_host_add_service(h, &perf_service, h) : 0; }
