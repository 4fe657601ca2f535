/* p2p_driver.c — test and benchmark driver for the libp2p host (not a unit test).
 *
 *   p2p_driver listen --state DIR [--listen MA]... [--slow-sink-ms MS] [--max-streams N] [--window B]
 *       Serves /peermcp/echo/1.0.0, /peermcp/sink/1.0.0, /peermcp/source/1.0.0 (same meaning
 *       as tests/interop/p2p/peer.mjs) and /perf/1.0.0; prints {"peer_id","addrs"} on stdout;
 *       runs until stdin closes or SIGTERM, then closes the host gracefully. Per-stream
 *       buffering peaks go to stderr as {"stream_stats":…} lines.
 *   p2p_driver dial --state DIR TARGET CHECK[,CHECK…]
 *       Checks against a remote peer (ping, identify, push, echo100, big, slowread, slowwrite,
 *       wrongid, goaway); one JSON line per check; exit 0 when all passed.
 *   p2p_driver perf --state DIR TARGET --upload N --download N [--streams K]
 *   p2p_driver setup --state DIR TARGET [--n N]     connection set-up + first echoed byte
 * Every mode is bounded by a watchdog (P2P_DRIVER_TIMEOUT_S, default 120 s). */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "util/clock.h"
#include "util/log.h"

#define ECHO_PROTO "/peermcp/echo/1.0.0"
#define SINK "/peermcp/sink/1.0.0"
#define SOURCE "/peermcp/source/1.0.0"

static uv_loop_t *loop;
static p2p_host *host;
static const char *target;
static int slow_sink_ms;
static uint64_t big_bytes = 64u << 20;

/* ---------------------------------------------------------------- deterministic payload */

typedef struct pattern {
  uint32_t x;
} pattern;

static void pattern_init(pattern *p, uint32_t seed) { p->x = seed * 2654435761u; }
static void pattern_fill(pattern *p, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    p->x = p->x * 1103515245u + 12345u;
    out[i] = (uint8_t)(p->x >> 24);
  }
}

static void sha256_hex(const uint8_t d[32], char out[65]) { sodium_bin2hex(out, 65, d, 32); }

static void pattern_digest(uint32_t seed, uint64_t n, uint8_t out[32]) {
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  pattern p;
  pattern_init(&p, seed);
  static uint8_t blk[65536];
  while (n) {
    size_t k = n > sizeof blk ? sizeof blk : (size_t)n;
    pattern_fill(&p, blk, k);
    crypto_hash_sha256_update(&st, blk, k);
    n -= k;
  }
  crypto_hash_sha256_final(&st, out);
}

static void log_stream_stats(p2p_stream *s, const char *what) {
  fprintf(stderr, "{\"stream_stats\":\"%s\",\"protocol\":\"%s\",\"max_send_queued\":%zu,\"max_recv_buffered\":%zu}\n",
          what, p2p_stream_protocol(s), p2p_stream_max_send_queued(s), p2p_stream_max_recv_buffered(s));
}

/* ---------------------------------------------------------------- echo (server and client side) */

static void echo_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)ud;
  int rc = p2p_stream_write(s, d, n);
  if (rc < 0) p2p_stream_reset(s);
  else if (rc == 1) p2p_stream_pause_read(s, true); /* resume when our queue drains */
}
static void echo_writable(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_pause_read(s, false);
}
static void echo_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}
static void echo_close(p2p_stream *s, int err, void *ud) {
  (void)ud;
  (void)err;
  log_stream_stats(s, "echo");
}
static const p2p_stream_callbacks echo_cbs = {echo_data, echo_eof, echo_writable, echo_close};
static void echo_serve(p2p_stream *s, void *ud) { p2p_stream_set_callbacks(s, &echo_cbs, ud); }

/* ---------------------------------------------------------------- sink */

typedef struct sink {
  crypto_hash_sha256_state h;
  uint64_t n;
  uv_timer_t t;
  p2p_stream *s;
  bool closed;
} sink;

static void sink_timer_closed(uv_handle_t *hd) { free(hd->data); }
static void sink_resume(uv_timer_t *t) {
  sink *k = t->data;
  if (!k->closed) p2p_stream_pause_read(k->s, false);
}
static void sink_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  sink *k = ud;
  crypto_hash_sha256_update(&k->h, d, n);
  k->n += n;
  if (slow_sink_ms > 0) {
    p2p_stream_pause_read(s, true);
    uv_timer_start(&k->t, sink_resume, (uint64_t)slow_sink_ms, 0);
  }
}
static void sink_eof(p2p_stream *s, void *ud) {
  sink *k = ud;
  uint8_t dig[32];
  crypto_hash_sha256_final(&k->h, dig);
  if (p2p_stream_write(s, dig, 32) < 0) p2p_stream_reset(s);
  else p2p_stream_close_write(s);
}
static void sink_close(p2p_stream *s, int err, void *ud) {
  (void)err;
  sink *k = ud;
  log_stream_stats(s, "sink");
  k->closed = true;
  uv_timer_stop(&k->t);
  uv_close((uv_handle_t *)&k->t, sink_timer_closed);
}
static const p2p_stream_callbacks sink_cbs = {sink_data, sink_eof, NULL, sink_close};
static void sink_serve(p2p_stream *s, void *ud) {
  (void)ud;
  sink *k = calloc(1, sizeof *k);
  crypto_hash_sha256_init(&k->h);
  k->s = s;
  uv_timer_init(loop, &k->t);
  k->t.data = k;
  p2p_stream_set_callbacks(s, &sink_cbs, k);
}

/* ---------------------------------------------------------------- source */

typedef struct source {
  uint8_t hdr[8];
  size_t hdr_len;
  uint64_t left;
  pattern p;
  bool sending;
} source;

static void source_pump(p2p_stream *s, source *src) {
  static uint8_t blk[65536];
  while (src->left) {
    size_t k = src->left > sizeof blk ? sizeof blk : (size_t)src->left;
    pattern_fill(&src->p, blk, k);
    int rc = p2p_stream_write(s, blk, k);
    if (rc < 0) {
      p2p_stream_reset(s);
      return;
    }
    src->left -= k;
    if (rc == 1) return;
  }
  p2p_stream_close_write(s);
}
static void source_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  source *src = ud;
  while (n && src->hdr_len < 8) {
    src->hdr[src->hdr_len++] = *d++;
    n--;
  }
  if (src->hdr_len == 8 && !src->sending) {
    src->sending = true;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | src->hdr[i];
    src->left = v;
    pattern_init(&src->p, 1);
    source_pump(s, src);
  }
}
static void source_writable(p2p_stream *s, void *ud) {
  source *src = ud;
  if (src->sending) source_pump(s, src);
}
static void source_close(p2p_stream *s, int err, void *ud) {
  (void)err;
  log_stream_stats(s, "source");
  free(ud);
}
static void source_eof(p2p_stream *s, void *ud) {
  (void)s;
  (void)ud;
}
static const p2p_stream_callbacks source_cbs = {source_data, source_eof, source_writable, source_close};
static void source_serve(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_set_callbacks(s, &source_cbs, calloc(1, sizeof(source)));
}

/* ---------------------------------------------------------------- check runner */

typedef void (*check_fn)(void);
static const char *check_name;
static json_t *check_detail;
static int checks_failed;
static char **check_list;
static size_t check_count, check_idx;
static uv_timer_t check_timer;
static uv_timer_t poll_timer;
static int64_t check_t0;
static void run_next_check(void);

static void host_closed(p2p_host *h, void *ud) {
  (void)h;
  (void)ud;
  host = NULL;
}

static void finish_all(void) {
  uv_timer_stop(&check_timer);
  uv_close((uv_handle_t *)&check_timer, NULL);
  uv_timer_stop(&poll_timer);
  uv_close((uv_handle_t *)&poll_timer, NULL);
  p2p_host_close(host, host_closed, NULL);
}

static void next_cb(uv_timer_t *t) {
  (void)t;
  run_next_check();
}

static bool check_running;
static void check_done(bool ok) {
  if (!check_running) return;
  check_running = false;
  if (!ok) checks_failed++;
  json_object_set_new(check_detail, "check", json_string(check_name));
  json_object_set_new(check_detail, "ok", json_boolean(ok));
  json_object_set_new(check_detail, "ms", json_integer(clock_mono_ms() - check_t0));
  char *s = json_dumps(check_detail, JSON_COMPACT | JSON_SORT_KEYS);
  printf("%s\n", s);
  fflush(stdout);
  free(s);
  json_decref(check_detail);
  check_detail = NULL;
  uv_timer_start(&check_timer, next_cb, 1, 0); /* next check from a clean stack */
}

static void check_timeout(uv_timer_t *t) {
  (void)t;
  json_object_set_new(check_detail, "error", json_string("timeout"));
  check_done(false);
}

/* ---- ping ---- */
static int ping_left;
static json_t *ping_rtts;
static void ping_cb(int err, uint64_t rtt_us, void *ud) {
  (void)ud;
  if (err) {
    json_object_set_new(check_detail, "error", json_integer(err));
    check_done(false);
    return;
  }
  json_array_append_new(ping_rtts, json_real((double)rtt_us / 1000.0));
  if (--ping_left > 0) {
    if (p2p_host_ping(host, target, ping_cb, NULL) != 0) check_done(false);
    return;
  }
  check_done(true);
}
static void check_ping(void) {
  ping_left = 3;
  ping_rtts = json_array();
  json_object_set_new(check_detail, "rtts_ms", ping_rtts);
  int rc = p2p_host_ping(host, target, ping_cb, NULL);
  if (rc) {
    json_object_set_new(check_detail, "error", json_integer(rc));
    check_done(false);
  }
}

/* ---- identify ---- */
static char target_peer[128], target_addr[512];
static void identify_eval(void) {
  p2p_peer_info pi;
  if (p2p_host_peer_info(host, target_peer, &pi) != 0 || !pi.agent_version) return;
  bool has_id = false, has_ping = false, has_echo = false, has_addr = false;
  json_t *protos = json_array(), *addrs = json_array();
  for (size_t i = 0; i < pi.n_protocols; i++) {
    json_array_append_new(protos, json_string(pi.protocols[i]));
    has_id |= strcmp(pi.protocols[i], "/ipfs/id/1.0.0") == 0;
    has_ping |= strcmp(pi.protocols[i], "/ipfs/ping/1.0.0") == 0;
    has_echo |= strcmp(pi.protocols[i], ECHO_PROTO) == 0;
  }
  for (size_t i = 0; i < pi.n_listen_addrs; i++) {
    json_array_append_new(addrs, json_string(pi.listen_addrs[i]));
    has_addr |= strcmp(pi.listen_addrs[i], target_addr) == 0;
  }
  const char *obs = pi.observed_addr ? pi.observed_addr : "";
  bool obs_ok = strncmp(obs, "/ip4/127.0.0.1/tcp/", 19) == 0 || strncmp(obs, "/ip6/::1/tcp/", 13) == 0;
  json_object_set_new(check_detail, "agent", json_string(pi.agent_version));
  json_object_set_new(check_detail, "protocol_version", json_string(pi.protocol_version ? pi.protocol_version : ""));
  json_object_set_new(check_detail, "protocols", protos);
  json_object_set_new(check_detail, "listen", addrs);
  json_object_set_new(check_detail, "observed", json_string(obs));
  json_object_set_new(check_detail, "key_matches", json_boolean(pi.public_key_matches));
  check_done(has_id && has_ping && has_echo && has_addr && obs_ok && pi.public_key_matches && pi.agent_version[0]);
}
static void on_identify(p2p_host *h, const p2p_event *ev, void *ud) {
  (void)h;
  (void)ud;
  const char *peer = ev->peer_id;
  if (check_running && check_name && strcmp(check_name, "identify") == 0 && strcmp(peer, target_peer) == 0)
    identify_eval();
}
static void identify_ping_cb(int err, uint64_t rtt, void *ud) {
  (void)rtt;
  (void)ud;
  if (err) {
    json_object_set_new(check_detail, "error", json_integer(err));
    check_done(false);
    return;
  }
  identify_eval(); /* may already be there; otherwise on_identify finishes the check */
}
static void check_identify(void) {
  if (p2p_host_ping(host, target, identify_ping_cb, NULL) != 0) check_done(false);
}

/* ---- echo client (echo100, big) ---- */
typedef struct echo_job {
  uint8_t *data;
  size_t len, sent, got;
  bool mismatch, done;
  crypto_hash_sha256_state hin;
  pattern p; /* big: generate on the fly */
  bool big;
  p2p_stream *s;
} echo_job;
static int jobs_left, jobs_ok;
static void big_next(void);
static void job_finish(echo_job *j, bool ok) {
  if (j->done) return;
  j->done = true;
  if (ok) jobs_ok++;
  if (--jobs_left == 0) {
    json_object_set_new(check_detail, "streams_ok", json_integer(jobs_ok));
    if (strcmp(check_name, "big") == 0 && jobs_ok == 1) big_next();
    else check_done(strcmp(check_name, "echo100") == 0 ? jobs_ok == 100 : false);
  }
}
static void job_pump(p2p_stream *s, echo_job *j) {
  static uint8_t blk[65536];
  while (j->sent < j->len) {
    size_t k = j->len - j->sent;
    if (k > sizeof blk) k = sizeof blk;
    const uint8_t *src;
    if (j->big) {
      pattern_fill(&j->p, blk, k);
      src = blk;
    } else {
      src = j->data + j->sent;
    }
    int rc = p2p_stream_write(s, src, k);
    if (rc < 0) {
      p2p_stream_reset(s);
      return;
    }
    j->sent += k;
    if (rc == 1) return;
  }
  p2p_stream_close_write(s);
}
static void job_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)s;
  echo_job *j = ud;
  if (j->big) crypto_hash_sha256_update(&j->hin, d, n);
  else if (j->got + n > j->len || memcmp(j->data + j->got, d, n) != 0) j->mismatch = true;
  j->got += n;
}
static void job_writable(p2p_stream *s, void *ud) { job_pump(s, ud); }
static void job_eof(p2p_stream *s, void *ud) {
  (void)s;
  (void)ud;
}
static void job_close(p2p_stream *s, int err, void *ud) {
  echo_job *j = ud;
  bool ok = err == 0 && j->got == j->len && !j->mismatch;
  if (j->big) {
    uint8_t dig[32], want[32];
    char hex[65];
    crypto_hash_sha256_final(&j->hin, dig);
    pattern_digest(7, j->len, want);
    sha256_hex(dig, hex);
    ok = ok && memcmp(dig, want, 32) == 0;
    json_object_set_new(check_detail, "echo_sha256", json_string(hex));
    json_object_set_new(check_detail, "bytes", json_integer((json_int_t)j->len));
    json_object_set_new(check_detail, "max_send_queued", json_integer((json_int_t)p2p_stream_max_send_queued(s)));
  }
  free(j->data);
  job_finish(j, ok);
  free(j);
}
static const p2p_stream_callbacks job_cbs = {job_data, job_eof, job_writable, job_close};
static void job_opened(p2p_stream *s, int err, void *ud) {
  echo_job *j = ud;
  if (!s) {
    json_object_set_new(check_detail, "open_error", json_integer(err));
    free(j->data);
    job_finish(j, false);
    free(j);
    return;
  }
  j->s = s;
  p2p_stream_set_callbacks(s, &job_cbs, j);
  job_pump(s, j);
}
static void check_echo100(void) {
  jobs_left = 100;
  jobs_ok = 0;
  for (int i = 0; i < 100; i++) {
    echo_job *j = calloc(1, sizeof *j);
    j->len = 1024 + randombytes_uniform(64 * 1024);
    j->data = malloc(j->len);
    randombytes_buf(j->data, j->len);
    if (p2p_host_open_stream(host, target, ECHO_PROTO, job_opened, j) != 0) {
      free(j->data);
      job_finish(j, false);
      free(j);
    }
  }
}

/* big: 64 MiB echo (both ways at once), then C → peer sink, then peer source → C. */
static int big_phase;
typedef struct rx_job {
  crypto_hash_sha256_state h;
  uint64_t got, want;
  int phase;
  uint8_t tail[32];
  size_t tail_len;
  pattern p;
  uint64_t sent;
  bool pause;
  uv_timer_t t;
  p2p_stream *s;
  bool closed;
} rx_job;
static void rx_timer_closed(uv_handle_t *hd) { free(hd->data); }
static void rx_resume(uv_timer_t *t) {
  rx_job *r = t->data;
  if (!r->closed) p2p_stream_pause_read(r->s, false);
}
static void rx_pump(p2p_stream *s, rx_job *r) {
  static uint8_t blk[65536];
  while (r->sent < r->want) {
    size_t k = r->want - r->sent > sizeof blk ? sizeof blk : (size_t)(r->want - r->sent);
    pattern_fill(&r->p, blk, k);
    int rc = p2p_stream_write(s, blk, k);
    if (rc < 0) {
      p2p_stream_reset(s);
      return;
    }
    r->sent += k;
    if (rc == 1) return;
  }
  p2p_stream_close_write(s);
}
static void rx_writable(p2p_stream *s, void *ud) {
  rx_job *r = ud;
  if (r->phase == 1) rx_pump(s, r);
}
static void rx_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  rx_job *r = ud;
  if (r->phase == 1) { /* sink reply: 32-byte digest */
    size_t k = n > 32 - r->tail_len ? 32 - r->tail_len : n;
    memcpy(r->tail + r->tail_len, d, k);
    r->tail_len += k;
    return;
  }
  crypto_hash_sha256_update(&r->h, d, n);
  r->got += n;
  if (r->pause) {
    p2p_stream_pause_read(s, true);
    uv_timer_start(&r->t, rx_resume, 5, 0);
  }
}
static void rx_eof(p2p_stream *s, void *ud) {
  (void)s;
  (void)ud;
}
static void rx_close(p2p_stream *s, int err, void *ud) {
  rx_job *r = ud;
  uint8_t want[32], dig[32];
  char hex[65];
  bool ok = err == 0;
  pattern_digest(r->phase == 1 ? 7 : 1, r->want, want);
  if (r->phase == 1) {
    ok = ok && r->tail_len == 32 && memcmp(r->tail, want, 32) == 0;
    json_object_set_new(check_detail, "sink_ok", json_boolean(ok));
    json_object_set_new(check_detail, "sink_max_send_queued", json_integer((json_int_t)p2p_stream_max_send_queued(s)));
  } else {
    crypto_hash_sha256_final(&r->h, dig);
    sha256_hex(dig, hex);
    ok = ok && r->got == r->want && memcmp(dig, want, 32) == 0;
    json_object_set_new(check_detail, "source_ok", json_boolean(ok));
    json_object_set_new(check_detail, "source_sha256", json_string(hex));
    json_object_set_new(check_detail, "max_recv_buffered", json_integer((json_int_t)p2p_stream_max_recv_buffered(s)));
  }
  r->closed = true;
  uv_timer_stop(&r->t);
  uv_close((uv_handle_t *)&r->t, rx_timer_closed);
  if (!ok) {
    json_object_set_new(check_detail, "error_phase", json_integer(r->phase));
    json_object_set_new(check_detail, "stream_err", json_integer(err));
    check_done(false);
    return;
  }
  big_next();
}
static const p2p_stream_callbacks rx_cbs = {rx_data, rx_eof, rx_writable, rx_close};
static void rx_opened(p2p_stream *s, int err, void *ud) {
  rx_job *r = ud;
  if (!s) {
    json_object_set_new(check_detail, "open_error", json_integer(err));
    uv_close((uv_handle_t *)&r->t, rx_timer_closed);
    check_done(false);
    return;
  }
  r->s = s;
  p2p_stream_set_callbacks(s, &rx_cbs, r);
  if (r->phase == 1) {
    rx_pump(s, r);
  } else {
    uint8_t hdr[8];
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)(r->want >> (56 - 8 * i));
    if (p2p_stream_write(s, hdr, 8) < 0) p2p_stream_reset(s);
    else p2p_stream_close_write(s);
  }
}
static void start_rx(int phase, uint64_t n, bool pause) {
  rx_job *r = calloc(1, sizeof *r);
  r->phase = phase;
  r->want = n;
  r->pause = pause;
  crypto_hash_sha256_init(&r->h);
  pattern_init(&r->p, 7);
  uv_timer_init(loop, &r->t);
  r->t.data = r;
  int rc = p2p_host_open_stream(host, target, phase == 1 ? SINK : SOURCE, rx_opened, r);
  if (rc) {
    json_object_set_new(check_detail, "open_error", json_integer(rc));
    uv_close((uv_handle_t *)&r->t, rx_timer_closed);
    check_done(false);
  }
}
static void big_next(void) {
  big_phase++;
  if (strcmp(check_name, "slowread") == 0) {
    check_done(true);
    return;
  }
  if (strcmp(check_name, "slowwrite") == 0) {
    check_done(true);
    return;
  }
  if (big_phase == 1) start_rx(1, big_bytes, false);
  else if (big_phase == 2) start_rx(2, big_bytes, false);
  else check_done(true);
}
static void check_big(void) {
  big_phase = 0;
  jobs_left = 1;
  jobs_ok = 0;
  echo_job *j = calloc(1, sizeof *j);
  j->big = true;
  j->len = big_bytes;
  crypto_hash_sha256_init(&j->hin);
  pattern_init(&j->p, 7);
  if (p2p_host_open_stream(host, target, ECHO_PROTO, job_opened, j) != 0) {
    free(j);
    check_done(false);
  }
}

/* slowread: the peer's source sends 8 MiB, we take one chunk every 5 ms (paused between).
 * slowwrite: we send 16 MiB to the peer's sink, which (started with --slow-sink-ms) reads slowly. */
static void check_slowread(void) { start_rx(2, 8u << 20, true); }
static void check_slowwrite(void) { start_rx(1, 16u << 20, false); }

/* ---- wrongid ---- */
static void wrongid_opened(p2p_stream *s, int err, void *ud) {
  (void)ud;
  if (s) {
    json_object_set_new(check_detail, "error", json_string("stream opened to the wrong peer"));
    p2p_stream_reset(s);
    check_done(false);
    return;
  }
  json_object_set_new(check_detail, "refused_with", json_string(strerror(-err)));
  check_done(err == -EACCES);
}
static void check_wrongid(void) {
  /* A fresh random Ed25519 PeerId (base58 of the identity multihash of its PublicKey). */
  uint8_t pk[32], sk[64];
  crypto_sign_keypair(pk, sk);
  uint8_t mh[40] = {0x00, 36, 0x08, 0x01, 0x12, 0x20};
  memcpy(mh + 6, pk, 32);
  /* base58btc */
  static const char *alpha = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  uint8_t tmp[38];
  memcpy(tmp, mh, 38);
  char out[64];
  size_t outlen = 0, zeros = 0;
  while (zeros < 38 && tmp[zeros] == 0) zeros++;
  char rev[64];
  size_t rl = 0;
  size_t start = zeros;
  while (start < 38) {
    unsigned rem = 0;
    for (size_t i = start; i < 38; i++) {
      unsigned v = rem * 256 + tmp[i];
      tmp[i] = (uint8_t)(v / 58);
      rem = v % 58;
    }
    rev[rl++] = alpha[rem];
    while (start < 38 && tmp[start] == 0) start++;
  }
  for (size_t i = 0; i < zeros; i++) out[outlen++] = '1';
  while (rl) out[outlen++] = rev[--rl];
  out[outlen] = 0;
  char ma[700];
  snprintf(ma, sizeof ma, "%s/p2p/%s", target_addr, out);
  json_object_set_new(check_detail, "dialed", json_string(ma));
  int rc = p2p_host_open_stream(host, ma, ECHO_PROTO, wrongid_opened, NULL);
  if (rc) {
    json_object_set_new(check_detail, "refused_with", json_string(strerror(-rc)));
    check_done(false);
  }
}

/* ---- goaway: we send GoAway; the connection must close, and a new one must work ---- */
static void goaway_ping_cb(int err, uint64_t rtt, void *ud) {
  (void)rtt;
  (void)ud;
  json_object_set_new(check_detail, "reconnect_ping_err", json_integer(err));
  check_done(err == 0);
}
static void goaway_poll(uv_timer_t *t) {
  p2p_host_stats st;
  p2p_host_get_stats(host, &st);
  if (st.connections) return;
  uv_timer_stop(t);
  json_object_set_new(check_detail, "closed_after_goaway", json_true());
  if (p2p_host_ping(host, target, goaway_ping_cb, NULL) != 0) check_done(false);
}
static void goaway_first_ping(int err, uint64_t rtt, void *ud) {
  (void)rtt;
  (void)ud;
  if (err || p2p_host_disconnect(host, target_peer) != 0) {
    check_done(false);
    return;
  }
  uv_timer_start(&poll_timer, goaway_poll, 20, 20);
}
static void check_goaway(void) {
  if (p2p_host_ping(host, target, goaway_first_ping, NULL) != 0) check_done(false);
}

/* ---- identify-push: we add a protocol (the peer must learn it; the suite reads its log),
 * and the peer adds /peermcp/late-js/1.0.0 (we must learn it) ---- */
static void late_serve(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_reset(s);
}
static void push_poll(uv_timer_t *t) {
  p2p_peer_info pi;
  if (p2p_host_peer_info(host, target_peer, &pi) != 0) return;
  for (size_t i = 0; i < pi.n_protocols; i++) {
    if (strcmp(pi.protocols[i], "/peermcp/late-js/1.0.0") == 0) {
      uv_timer_stop(t);
      json_object_set_new(check_detail, "learned", json_string(pi.protocols[i]));
      check_done(true);
      return;
    }
  }
}
static void push_ping_cb(int err, uint64_t rtt, void *ud) {
  (void)rtt;
  (void)ud;
  if (err || p2p_host_handle(host, "/peermcp/late/1.0.0", late_serve, NULL) != 0) {
    check_done(false);
    return;
  }
  uv_timer_start(&poll_timer, push_poll, 20, 20);
}
static void check_push(void) {
  if (p2p_host_ping(host, target, push_ping_cb, NULL) != 0) check_done(false);
}

static const struct {
  const char *name;
  check_fn fn;
} checks[] = {
    {"push", check_push},
    {"ping", check_ping},         {"identify", check_identify}, {"echo100", check_echo100},
    {"big", check_big},           {"slowread", check_slowread}, {"slowwrite", check_slowwrite},
    {"wrongid", check_wrongid},   {"goaway", check_goaway},
};

static void run_next_check(void) {
  if (check_idx == check_count) {
    finish_all();
    return;
  }
  check_name = check_list[check_idx++];
  check_detail = json_object();
  check_t0 = clock_mono_ms();
  check_running = true;
  uv_timer_start(&check_timer, check_timeout, 60000, 0);
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
    if (strcmp(checks[i].name, check_name) == 0) {
      checks[i].fn();
      return;
    }
  }
  json_object_set_new(check_detail, "error", json_string("unknown check"));
  check_done(false);
}

/* ---------------------------------------------------------------- perf / setup */

static uint64_t perf_up, perf_down;
static int perf_streams, perf_left, perf_failed;
static int64_t perf_t0;
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}
static double perf_cpu0;
static void perf_cb(int err, const p2p_perf_result *r, void *ud) {
  (void)r;
  (void)ud;
  if (err) {
    perf_failed++;
    fprintf(stderr, "perf stream failed: %s\n", strerror(-err));
  }
  if (--perf_left) return;
  double secs = (double)(clock_mono_us() - (uint64_t)perf_t0) / 1e6;
  double bytes = (double)(perf_up + perf_down) * perf_streams;
  printf("{\"streams\":%d,\"upload\":%llu,\"download\":%llu,\"secs\":%.4f,\"bytes\":%.0f,\"mbps\":%.1f,"
         "\"cpu_s\":%.4f,\"failed\":%d}\n",
         perf_streams, (unsigned long long)perf_up, (unsigned long long)perf_down, secs, bytes, bytes * 8 / secs / 1e6,
         cpu_seconds() - perf_cpu0, perf_failed);
  fflush(stdout);
  checks_failed = perf_failed;
  p2p_host_close(host, host_closed, NULL);
}
static void perf_start(int err, uint64_t rtt, void *ud) {
  (void)rtt;
  (void)ud;
  if (err) {
    fprintf(stderr, "connect failed: %s\n", strerror(-err));
    checks_failed = 1;
    p2p_host_close(host, host_closed, NULL);
    return;
  }
  perf_left = perf_streams;
  perf_t0 = (int64_t)clock_mono_us();
  perf_cpu0 = cpu_seconds();
  for (int i = 0; i < perf_streams; i++)
    if (p2p_host_perf(host, target, perf_up, perf_down, perf_cb, NULL) != 0) perf_cb(-EIO, NULL, NULL);
}

static int setup_n, setup_i;
static double setup_ms[1000];
static int64_t setup_t0;
static void setup_round(void);
static void setup_poll(uv_timer_t *t) {
  p2p_host_stats st;
  p2p_host_get_stats(host, &st);
  if (st.connections) return;
  uv_timer_stop(t);
  setup_round();
}
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static void setup_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)d;
  (void)n;
  (void)ud;
  setup_ms[setup_i++] = (double)(clock_mono_us() - (uint64_t)setup_t0) / 1000.0;
  p2p_stream_reset(s);
  p2p_host_disconnect(host, p2p_stream_remote_peer(s));
  uv_timer_start(&poll_timer, setup_poll, 1, 1);
}
static void setup_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  (void)ud;
}
static const p2p_stream_callbacks setup_cbs = {setup_data, NULL, NULL, setup_close};
static void setup_opened(p2p_stream *s, int err, void *ud) {
  (void)ud;
  if (!s) {
    fprintf(stderr, "setup: open failed: %s\n", strerror(-err));
    checks_failed = 1;
    p2p_host_close(host, host_closed, NULL);
    return;
  }
  p2p_stream_set_callbacks(s, &setup_cbs, NULL);
  uint8_t b = 42;
  if (p2p_stream_write(s, &b, 1) < 0) p2p_stream_reset(s);
}
static void setup_round(void) {
  if (setup_i == setup_n) {
    qsort(setup_ms, (size_t)setup_n, sizeof setup_ms[0], cmp_d);
    printf("{\"n\":%d,\"median_ms\":%.3f,\"min_ms\":%.3f}\n", setup_n, setup_ms[setup_n / 2], setup_ms[0]);
    fflush(stdout);
    uv_close((uv_handle_t *)&poll_timer, NULL);
    p2p_host_close(host, host_closed, NULL);
    return;
  }
  setup_t0 = (int64_t)clock_mono_us();
  if (p2p_host_open_stream(host, target, ECHO_PROTO, setup_opened, NULL) != 0) {
    checks_failed = 1;
    p2p_host_close(host, host_closed, NULL);
  }
}

/* ---------------------------------------------------------------- main */

static uv_signal_t sigterm;
static uv_pipe_t stdin_pipe;
static void stop_listening(void) {
  if (!host) return;
  uv_signal_stop(&sigterm);
  uv_close((uv_handle_t *)&sigterm, NULL);
  if (!uv_is_closing((uv_handle_t *)&stdin_pipe)) uv_close((uv_handle_t *)&stdin_pipe, NULL);
  p2p_host_close(host, host_closed, NULL);
}
static void on_sigterm(uv_signal_t *s, int sig) {
  (void)s;
  (void)sig;
  stop_listening();
}
static void stdin_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  (void)h;
  (void)n;
  static char tmp[256];
  b->base = tmp;
  b->len = sizeof tmp;
}
static void stdin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)s;
  (void)b;
  if (n < 0) stop_listening();
}

static void watchdog(int sig) {
  (void)sig;
  static const char m[] = "{\"error\":\"p2p_driver watchdog timeout\"}\n";
  ssize_t w = write(2, m, sizeof m - 1);
  (void)w;
  _exit(3);
}

static void usage(void) {
  fprintf(stderr, "usage: p2p_driver listen|dial|perf|setup --state DIR [options] [TARGET] [CHECKS]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *mode = argv[1];
  const char *state = NULL;
  const char *listens[8];
  size_t n_listen = 0;
  const char *pos[4];
  size_t n_pos = 0;
  uint32_t max_streams = 0, window = 0;
  perf_streams = 1;
  setup_n = 10;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--state") && v) state = argv[++i];
    else if (!strcmp(a, "--listen") && v && n_listen < 8) listens[n_listen++] = argv[++i];
    else if (!strcmp(a, "--slow-sink-ms") && v) slow_sink_ms = atoi(argv[++i]);
    else if (!strcmp(a, "--max-streams") && v) max_streams = (uint32_t)atoi(argv[++i]);
    else if (!strcmp(a, "--window") && v) window = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--upload") && v) perf_up = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--download") && v) perf_down = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--streams") && v) perf_streams = atoi(argv[++i]);
    else if (!strcmp(a, "--n") && v) setup_n = atoi(argv[++i]);
    else if (!strcmp(a, "--big-bytes") && v) big_bytes = strtoull(argv[++i], NULL, 10);
    else if (a[0] != '-' && n_pos < 4) pos[n_pos++] = a;
    else usage();
  }
  if (!state) usage();
  if (setup_n < 1 || setup_n > 1000 || perf_streams < 1 || perf_streams > 10000) usage();
  const char *lvl = getenv("P2P_DRIVER_LOG");
  log_level ll = LOG_WARNING;
  if (lvl && log_level_parse(lvl, &ll) != 0) ll = LOG_WARNING;
  log_set_level(ll);
  signal(SIGALRM, watchdog);
  alarm(getenv("P2P_DRIVER_TIMEOUT_S") ? (unsigned)atoi(getenv("P2P_DRIVER_TIMEOUT_S")) : 120);
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0) return 1;

  loop = uv_default_loop();
  p2p_host_config cfg = {0};
  cfg.state_dir = state;
  cfg.enable_perf = true;
  cfg.max_streams_per_conn = max_streams ? max_streams : 1024;
  cfg.no_peerstore_file = true;
  cfg.yamux_window = window;
  int rc = p2p_host_new(loop, &cfg, &host);
  if (rc) {
    fprintf(stderr, "host: %s\n", strerror(-rc));
    return 1;
  }
  if (p2p_host_handle(host, ECHO_PROTO, echo_serve, NULL) || p2p_host_handle(host, SINK, sink_serve, NULL) ||
      p2p_host_handle(host, SOURCE, source_serve, NULL))
    return 1;
  uv_timer_init(loop, &check_timer);
  uv_timer_init(loop, &poll_timer);

  if (!strcmp(mode, "listen")) {
    if (!n_listen) listens[n_listen++] = "/ip4/127.0.0.1/tcp/0";
    for (size_t i = 0; i < n_listen; i++) {
      rc = p2p_host_listen(host, listens[i]);
      if (rc) {
        fprintf(stderr, "listen %s: %s\n", listens[i], strerror(-rc));
        return 1;
      }
    }
    const char *addrs[16];
    size_t n = p2p_host_listen_addrs(host, addrs, 16);
    if (n > 16) n = 16;
    n += p2p_host_unix_addrs(host, addrs + n, 16 - n); /* then the /unix/ ones */
    if (n > 16) n = 16;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
      char full[800];
      snprintf(full, sizeof full, "%s/p2p/%s", addrs[i], p2p_host_peer_id(host));
      json_array_append_new(arr, json_string(full));
    }
    json_t *o = json_pack("{s:s, s:o}", "peer_id", p2p_host_peer_id(host), "addrs", arr);
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(o);
    uv_close((uv_handle_t *)&check_timer, NULL);
    uv_close((uv_handle_t *)&poll_timer, NULL);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_sigterm, SIGTERM);
    uv_pipe_init(loop, &stdin_pipe, 0);
    if (uv_pipe_open(&stdin_pipe, 0) == 0) uv_read_start((uv_stream_t *)&stdin_pipe, stdin_alloc, stdin_read);
  } else {
    if (n_pos < 1) usage();
    target = pos[0];
    const char *p2p = strstr(target, "/p2p/");
    if (p2p) {
      snprintf(target_peer, sizeof target_peer, "%s", p2p + 5);
      snprintf(target_addr, sizeof target_addr, "%.*s", (int)(p2p - target), target);
    }
    if (!strcmp(mode, "dial")) {
      if (p2p_host_subscribe(host, P2P_EV_PEER_IDENTIFIED | P2P_EV_IDENTIFY_PUSH, on_identify, NULL) != 0) return 1;
      char *list = strdup(n_pos > 1 ? pos[1] : "ping,identify");
      check_list = calloc(32, sizeof *check_list);
      for (char *t = strtok(list, ","); t && check_count < 32; t = strtok(NULL, ",")) check_list[check_count++] = t;
      run_next_check();
    } else if (!strcmp(mode, "perf")) {
      uv_close((uv_handle_t *)&check_timer, NULL);
      uv_close((uv_handle_t *)&poll_timer, NULL);
      rc = p2p_host_ping(host, target, perf_start, NULL);
      if (rc) return 1;
    } else if (!strcmp(mode, "setup")) {
      uv_close((uv_handle_t *)&check_timer, NULL);
      setup_round();
    } else {
      usage();
    }
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return checks_failed ? 1 : 0;
}
