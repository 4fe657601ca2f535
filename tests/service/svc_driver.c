/* svc_driver.c — load and benchmark driver for the P2P service (not a unit test); used by
 * tests/suites/60-service.sh and bench/service/run.sh.
 *
 *   svc_driver many    --state DIR --peer MA --n N            N status ops pipelined on one stream
 *   svc_driver streams --state DIR --peer MA --n N            N streams at once (one client each,
 *                                                             one connection), one op per stream
 *   svc_driver bench   --state DIR --peer MA --n N --conns K --inflight F [--tool NAME]
 *                      tools/call round trips: K connections (one identity each), F requests in
 *                      flight per connection; prints p50/p99 latency (µs) and calls/s
 *   svc_driver tasks   --state DIR --peer MA --n N [--inflight F]
 *                      submit a tool.call echo task and wait for it, N times (F at once); prints
 *                      submit→complete p50/p99 and tasks/s (a worker must be attached to MA)
 *   svc_driver stdio   --bin PEERMCP --state DIR --n N [--inflight F] [--tool NAME]
 *                      the same tools/call made locally: spawns `PEERMCP serve --no-p2p` and
 *                      speaks MCP over its stdin/stdout (newline-delimited JSON-RPC)
 *   svc_driver waits   --state DIR --peer MA --n N [--conns K]
 *                      submits N tasks nobody runs, then holds N `wait` ops (timeout_s 300) on
 *                      K streams of one connection, and sends one `status` behind them on each
 *                      stream (20 s, no retry); prints {"mode":"waits","waiting":N,
 *                      "status_ok":…,"status_max_ms":…} once those are answered, then keeps the
 *                      waits open until SIGTERM and prints how many got an answer meanwhile
 *   svc_driver backlog --state DIR --peer MA --n N [--inflight F]
 *                      submits N tool.call echo tasks (F at once, no wait) and returns once all are
 *                      queued: the backlog a queue-throughput row drains (bench/service/run.sh);
 *                      prints {"mode":"backlog","n":N,"ok":…,"failed":…,"per_s":<submits/s>}
 *   svc_driver op      --state DIR --peer MA --msg JSON [--n N]
 *                      after a warm-up status, sends the op message N times one after the other;
 *                      prints {"mode":"op","ok":…,"max_ms":…,"last":<reply>}
 *   svc_driver mute    --state DIR
 *                      a peer that accepts /mcp+p2p/1.0.0 streams and never answers (not even
 *                      initialize): prints {"mode":"mute","addr":MA} once it listens, then
 *                      {"mode":"mute","streams":N} at SIGTERM (or the watchdog)
 * Every identity lives under DIR (DIR/0, DIR/1, …); the server must trust them or get the token
 * through --token. One JSON line on stdout; exit 0 when every request succeeded. Bounded by a
 * watchdog (SVC_DRIVER_TIMEOUT_S, default 120 s). SVC_DRIVER_WRITE_EARLY_BYTES sets the host's
 * p2p_host_config.write_early_bytes (unset or 0: off, the default). */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "service/client.h"
#include "service/mcpp.h"
#include "util/clock.h"
#include "util/jparse.h"
#include "util/log.h"

#define MAXC 64

static uv_loop_t loop;
static const char *state_dir, *peer, *token, *tool = "echo", *bin_path, *op_msg;
static long n = 100, conns = 1, inflight = 1;
static p2p_host *hosts[MAXC];
static svc_client *clients[1024];
static long n_clients;
static long sent, done_ok, done_err;
static int64_t *lat_us;
static int hosts_closed;

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static p2p_host *mk_host(int i) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%d", state_dir, i);
  p2p_host_config hc = {0};
  hc.state_dir = dir;
  hc.no_peerstore_file = true;
  hc.max_streams_per_conn = 1024;
  const char *early = getenv("SVC_DRIVER_WRITE_EARLY_BYTES"); /* the host's write policy (bench/p2p/call.sh) */
  if (early && *early) hc.write_early_bytes = (size_t)strtoull(early, NULL, 10);
  p2p_host *h;
  if (p2p_host_new(&loop, &hc, &h) != 0) {
    fprintf(stderr, "host %d failed\n", i);
    exit(1);
  }
  return h;
}

static svc_client *mk_client(p2p_host *h) {
  svc_client_opts o = {0};
  o.token = token;
  o.max_inflight = 64;
  o.request_timeout_ms = 60000;
  svc_client *c;
  if (svc_client_new(&loop, h, peer, &o, &c) != 0) exit(1);
  return c;
}

typedef struct req {
  int64_t t0;
  long idx;
  svc_client *c;
} req;

static void issue(svc_client *c);

static void on_reply(void *ud, int err, json_t *result, json_t *error) {
  req *r = ud;
  bool ok = err == 0 && result &&
            (json_is_true(json_object_get(result, "ok")) || json_is_false(json_object_get(result, "isError")));
  if (ok) {
    lat_us[r->idx] = clock_mono_us() - r->t0;
    done_ok++;
  } else {
    done_err++;
    if (done_err < 5) {
      char *s = error ? json_dumps(error, JSON_COMPACT) : result ? json_dumps(result, JSON_COMPACT) : NULL;
      fprintf(stderr, "request failed: err=%d %s\n", err, s ? s : "");
      free(s);
    }
  }
  svc_client *c = r->c;
  free(r);
  issue(c);
}

static const char *mode;
static bool tree_api; /* SVC_DRIVER_TREE=1: bench mode through svc_client_call_tool (jansson trees) */
/* bench mode through the text fast path: the bookkeeping of bench/mcp/driver.c (the stdio side
 * it is compared with): a request record from a table made before the run (no malloc per call),
 * the send time read per call, the receive time once per loop iteration (the stdio driver reads
 * it once per read of the server's output) */
static bool bench_text;
static req *bench_reqs;
static int64_t t_recv; /* 0: not read in this loop iteration */
static uv_check_t recv_clock;
static void recv_clock_reset(uv_check_t *h) {
  (void)h;
  t_recv = 0;
}

/* bench mode's reply through the text fast path (svc_client_call_tool_text) */
static void on_reply_text(void *ud, int err, const svc_client_reply *rep) {
  req *r = ud;
  if (!t_recv) t_recv = clock_mono_us();
  const char *v = NULL;
  size_t vn = 0;
  bool ok = err == 0 && rep->result &&
            (rep->is_error == SVC_CLIENT_IS_ERROR_FALSE ||
             (rep->is_error == SVC_CLIENT_IS_ERROR_UNKNOWN && jparse_find(rep->result, rep->result_len, "isError", &v, &vn) == 0 &&
              vn == 5 && memcmp(v, "false", 5) == 0));
  if (ok) {
    lat_us[r->idx] = t_recv - r->t0;
    done_ok++;
  } else {
    done_err++;
    if (done_err < 5)
      fprintf(stderr, "request failed: err=%d %.*s\n", err, rep ? (int)(rep->result ? rep->result_len : rep->error_len) : 0,
              rep ? (rep->result ? rep->result : rep->error) : "");
  }
  issue(r->c); /* r is bench_reqs' */
}

static void issue(svc_client *c) {
  if (sent >= n) return;
  req *r = bench_text ? &bench_reqs[sent] : calloc(1, sizeof *r);
  r->idx = sent++;
  r->c = c;
  r->t0 = clock_mono_us();
  int rc;
  if (bench_text) {
    /* the same arguments as below, as text: no tree on either side of the client */
    char args[96];
    /* snprintf (~0.5 k instructions a call) kept: bench/mcp/driver.c, the stdio side it is compared with, uses it too */
    int an = snprintf(args, sizeof args, "{\"text\":\"hello\",\"n\":%ld}", r->idx);
    rc = svc_client_call_tool_text(c, tool, args, (size_t)an, false, 0, on_reply_text, r);
  } else if (strcmp(mode, "bench") == 0) {
    /* the arguments bench/mcp/driver.c sends over stdio: the two are compared (bench/p2p/call.sh) */
    json_t *args = json_object(); /* json_pack would parse its format string per call */
    json_object_set_new_nocheck(args, "text", json_string_nocheck("hello"));
    json_object_set_new_nocheck(args, "n", json_integer((json_int_t)r->idx));
    rc = svc_client_call_tool(c, tool, args, false, 0, on_reply, r);
    json_decref(args);
  } else {
    json_t *m = json_pack("{s:s}", "op", "status");
    rc = svc_client_rpc(c, m, 0, on_reply, r);
    json_decref(m);
  }
  if (rc != 0) {
    if (!bench_text) free(r);
    done_err++;
  }
}

/* tasks mode: submit then wait */
typedef struct task_req {
  int64_t t0;
  long idx;
  svc_client *c;
} task_req;

static void task_issue(svc_client *c);

static void on_wait(void *ud, int err, json_t *result, json_t *error) {
  task_req *r = ud;
  (void)error;
  const char *st = json_string_value(json_object_get(json_object_get(result, "task"), "status"));
  if (err == 0 && st && strcmp(st, "completed") == 0) {
    lat_us[r->idx] = clock_mono_us() - r->t0;
    done_ok++;
  } else {
    done_err++;
  }
  svc_client *c = r->c;
  free(r);
  task_issue(c);
}

static void on_submit(void *ud, int err, json_t *result, json_t *error) {
  task_req *r = ud;
  (void)error;
  const char *id = json_string_value(json_object_get(result, "task_id"));
  if (err != 0 || !id) {
    done_err++;
    svc_client *c = r->c;
    free(r);
    task_issue(c);
    return;
  }
  json_t *m = json_pack("{s:s, s:s, s:i}", "op", "wait", "task_id", id, "timeout_s", 60);
  if (svc_client_rpc(r->c, m, 75000, on_wait, r) != 0) {
    done_err++;
    free(r);
  }
  json_decref(m);
}

static void task_issue(svc_client *c) {
  if (sent >= n) return;
  task_req *r = calloc(1, sizeof *r);
  r->idx = sent++;
  r->c = c;
  r->t0 = clock_mono_us();
  json_t *m = json_pack("{s:s, s:s, s:{s:s, s:{s:i}}}", "op", "submit", "task_type", "tool.call", "payload", "tool",
                        tool, "args", "i", (int)r->idx);
  if (svc_client_rpc(c, m, 0, on_submit, r) != 0) {
    done_err++;
    free(r);
  }
  json_decref(m);
}

/* backlog mode: N submits, F at once, nothing waited for */
static void backlog_issue(svc_client *c);
static void on_backlog_submit(void *ud, int err, json_t *result, json_t *error) {
  (void)error;
  svc_client *c = ud;
  if (err == 0 && json_is_string(json_object_get(result, "task_id"))) done_ok++;
  else done_err++;
  backlog_issue(c);
}

static void backlog_issue(svc_client *c) {
  if (sent >= n) return;
  long i = sent++;
  json_t *m = json_pack("{s:s, s:s, s:{s:s, s:{s:i}}}", "op", "submit", "task_type", "tool.call", "payload", "tool",
                        tool, "args", "i", (int)i);
  if (svc_client_rpc(c, m, 0, on_backlog_submit, c) != 0) done_err++;
  json_decref(m);
}

static int run_backlog(void) {
  hosts[0] = mk_host(0);
  clients[n_clients++] = mk_client(hosts[0]);
  int64_t t0 = clock_mono_us();
  for (long k = 0; k < inflight && k < n; k++) backlog_issue(clients[0]);
  while (done_ok + done_err < n) uv_run(&loop, UV_RUN_ONCE);
  double s = (double)(clock_mono_us() - t0) / 1e6;
  printf("{\"mode\":\"backlog\",\"n\":%ld,\"ok\":%ld,\"failed\":%ld,\"per_s\":%.1f}\n", n, done_ok, done_err,
         s > 0 ? (double)done_ok / s : 0.0);
  fflush(stdout);
  return done_err == 0 ? 0 : 1;
}

/* waits mode: N submits, then N waits held open; a status per stream marks them all read */
static long w_submitted, w_waits_sent, w_wait_replies, w_status_back, w_status_ok;
static int64_t w_status_t0, w_status_max_us;
static char (*w_ids)[33];

static void on_w_wait(void *ud, int err, json_t *result, json_t *error) {
  (void)ud;
  (void)error;
  w_wait_replies++;
  if (w_wait_replies < 5) {
    char *s = result ? json_dumps(result, JSON_COMPACT) : NULL;
    fprintf(stderr, "svc_driver: a wait was answered early: err=%d %s\n", err, s ? s : "");
    free(s);
  }
}

static void on_w_status(void *ud, int err, json_t *result, json_t *error) {
  (void)ud;
  (void)error;
  int64_t us = clock_mono_us() - w_status_t0;
  if (us > w_status_max_us) w_status_max_us = us;
  w_status_back++;
  if (err == 0 && json_is_true(json_object_get(result, "ok"))) w_status_ok++;
}

static void on_w_submit(void *ud, int err, json_t *result, json_t *error) {
  long i = (long)(intptr_t)ud;
  (void)error;
  const char *id = json_string_value(json_object_get(result, "task_id"));
  if (err != 0 || !id) {
    done_err++;
    return;
  }
  snprintf(w_ids[i], sizeof w_ids[i], "%s", id);
  w_submitted++;
}

static uv_signal_t w_sigterm;
static bool w_stop;
static void on_w_sigterm(uv_signal_t *h, int sig) {
  (void)h;
  (void)sig;
  w_stop = true;
}

static int run_waits(void) {
  hosts[0] = mk_host(0);
  for (long k = 0; k < conns; k++) {
    svc_client_opts o = {0};
    o.token = token;
    o.max_inflight = 64;
    o.request_timeout_ms = 60000;
    o.no_retries = true; /* measure, do not paper over */
    if (svc_client_new(&loop, hosts[0], peer, &o, &clients[n_clients++]) != 0) return 1;
  }
  w_ids = calloc((size_t)n, sizeof *w_ids);
  for (long i = 0; i < n; i++) {
    json_t *m = json_pack("{s:s, s:s, s:{s:I}}", "op", "submit", "task_type", "peermcp.test.nobody", "payload", "i",
                          (json_int_t)i);
    if (svc_client_rpc(clients[i % conns], m, 0, on_w_submit, (void *)(intptr_t)i) != 0) done_err++;
    json_decref(m);
  }
  while (w_submitted + done_err < n) uv_run(&loop, UV_RUN_ONCE);
  if (done_err) return 1;
  for (long i = 0; i < n; i++) {
    json_t *m = json_pack("{s:s, s:s, s:i}", "op", "wait", "task_id", w_ids[i], "timeout_s", 300);
    if (svc_client_rpc(clients[i % conns], m, 330000, on_w_wait, NULL) != 0) done_err++;
    else w_waits_sent++;
    json_decref(m);
  }
  w_status_t0 = clock_mono_us();
  for (long k = 0; k < conns; k++) {
    json_t *m = json_pack("{s:s}", "op", "status");
    if (svc_client_rpc(clients[k], m, 20000, on_w_status, NULL) != 0) w_status_back++;
    json_decref(m);
  }
  while (w_status_back < conns) uv_run(&loop, UV_RUN_ONCE);
  printf("{\"mode\":\"waits\",\"submitted\":%ld,\"waiting\":%ld,\"status_ok\":%ld,\"status_max_ms\":%.1f,"
         "\"answered\":%ld}\n",
         w_submitted, w_waits_sent, w_status_ok, w_status_max_us / 1000.0, w_wait_replies);
  fflush(stdout);
  uv_signal_init(&loop, &w_sigterm);
  uv_signal_start(&w_sigterm, on_w_sigterm, SIGTERM);
  while (!w_stop) uv_run(&loop, UV_RUN_ONCE);
  printf("{\"mode\":\"waits\",\"answered\":%ld}\n", w_wait_replies);
  fflush(stdout);
  uv_close((uv_handle_t *)&w_sigterm, NULL);
  free(w_ids);
  return done_err ? 1 : 0;
}

/* op mode: one op at a time, each timed */
static int64_t op_t0, op_max_us;
static json_t *op_last;
static void on_op(void *ud, int err, json_t *result, json_t *error) {
  (void)ud;
  int64_t us = clock_mono_us() - op_t0;
  if (us > op_max_us) op_max_us = us;
  json_decref(op_last);
  op_last = result ? json_incref(result) : error ? json_incref(error) : json_null();
  if (err == 0 && json_is_true(json_object_get(result, "ok"))) done_ok++;
  else done_err++;
}

static int run_op(void) {
  json_t *m = json_loads(op_msg, 0, NULL);
  if (!json_is_object(m)) return 2;
  hosts[0] = mk_host(0);
  clients[n_clients++] = mk_client(hosts[0]);
  json_t *st = json_pack("{s:s}", "op", "status");
  int flag = 0;
  void cb_warm(void *ud, int err, json_t *r, json_t *e);
  if (svc_client_rpc(clients[0], st, 0, cb_warm, &flag) != 0) flag = 1;
  json_decref(st);
  while (!flag) uv_run(&loop, UV_RUN_ONCE);
  for (long i = 0; i < n; i++) {
    long before = done_ok + done_err;
    op_t0 = clock_mono_us();
    if (svc_client_rpc(clients[0], m, 0, on_op, NULL) != 0) return 1;
    while (done_ok + done_err == before) uv_run(&loop, UV_RUN_ONCE);
  }
  char *last = json_dumps(op_last, JSON_COMPACT | JSON_ENCODE_ANY);
  printf("{\"mode\":\"op\",\"n\":%ld,\"ok\":%ld,\"failed\":%ld,\"max_ms\":%.1f,\"last\":%s}\n", n, done_ok,
         done_err, op_max_us / 1000.0, last ? last : "null");
  fflush(stdout);
  free(last);
  json_decref(op_last);
  json_decref(m);
  return done_err == 0 ? 0 : 1;
}

static void watchdog(uv_timer_t *t) {
  (void)t;
  fprintf(stderr, "svc_driver: watchdog expired (%ld ok, %ld failed of %ld)\n", done_ok, done_err, n);
  exit(3);
}

/* mute mode: streams taken and read, never answered; each ends when its opener ends it */
static long mute_streams;
static void mute_data(p2p_stream *s, const uint8_t *d, size_t len, void *ud) { (void)s, (void)d, (void)len, (void)ud; }
static void mute_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}
static void mute_close(p2p_stream *s, int err, void *ud) { (void)s, (void)err, (void)ud; }
static const p2p_stream_callbacks mute_cbs = {mute_data, mute_eof, NULL, mute_close};
static void mute_handler(p2p_stream *s, void *ud) {
  (void)ud;
  mute_streams++;
  p2p_stream_set_callbacks(s, &mute_cbs, NULL);
}

static int run_mute(void) {
  hosts[0] = mk_host(0);
  const char *addrs[4];
  if (p2p_host_handle(hosts[0], SVC_MCPP_PROTOCOL, mute_handler, NULL) != 0 ||
      p2p_host_listen(hosts[0], "/ip4/127.0.0.1/tcp/0") != 0 || p2p_host_listen_addrs(hosts[0], addrs, 4) < 1)
    return 1;
  printf("{\"mode\":\"mute\",\"addr\":\"%s/p2p/%s\"}\n", addrs[0], p2p_host_peer_id(hosts[0]));
  fflush(stdout);
  uv_signal_init(&loop, &w_sigterm);
  uv_signal_start(&w_sigterm, on_w_sigterm, SIGTERM);
  while (!w_stop) uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&w_sigterm, NULL);
  printf("{\"mode\":\"mute\",\"streams\":%ld}\n", mute_streams);
  fflush(stdout);
  return 0;
}

/* Local baseline over stdio: blocking pipes, one line per message. */
static int run_stdio(const char *binp) {
  int in[2], outp[2];
  if (pipe(in) != 0 || pipe(outp) != 0) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(outp[1], 1);
    close(in[1]);
    close(outp[0]);
    execl(binp, binp, "serve", "--no-p2p", "--state-dir", state_dir, "--log-level", "warning", (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(outp[1]);
  FILE *w = fdopen(in[1], "w"), *r = fdopen(outp[0], "r");
  static char line[1 << 20];
  fprintf(w, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
             "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"b\",\"version\":\"1\"}}}\n");
  fflush(w);
  if (!fgets(line, sizeof line, r)) return 1;
  fprintf(w, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
  int64_t t0 = clock_mono_us();
  long next = 0, got = 0;
  int64_t *start = calloc((size_t)n, sizeof *start);
  while (got < n) {
    while (next < n && next - got < inflight) {
      start[next] = clock_mono_us();
      fprintf(w, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
                 "\"arguments\":{\"i\":%ld}}}\n", next + 1, tool, next);
      next++;
    }
    fflush(w);
    if (!fgets(line, sizeof line, r)) break;
    json_t *m = json_loads(line, 0, NULL);
    long id = (long)json_integer_value(json_object_get(m, "id"));
    bool ok = json_object_get(m, "result") && !json_is_true(json_object_get(json_object_get(m, "result"), "isError"));
    json_decref(m);
    if (id < 1 || id > n) continue; /* a notification */
    if (ok) lat_us[done_ok++] = clock_mono_us() - start[id - 1];
    else done_err++;
    got++;
  }
  int64_t el = clock_mono_us() - t0;
  fclose(w);
  fclose(r);
  int st;
  waitpid(pid, &st, 0);
  qsort(lat_us, (size_t)done_ok, sizeof *lat_us, cmp_i64);
  printf("{\"mode\":\"stdio\",\"n\":%ld,\"ok\":%ld,\"failed\":%ld,\"inflight\":%ld,\"elapsed_ms\":%.1f,"
         "\"per_s\":%.1f,\"p50_us\":%lld,\"p99_us\":%lld}\n",
         n, done_ok, done_err, inflight, el / 1000.0, el > 0 ? done_ok * 1e6 / el : 0.0,
         (long long)(done_ok ? lat_us[done_ok / 2] : 0), (long long)(done_ok ? lat_us[(done_ok * 99) / 100] : 0));
  free(start);
  free(lat_us);
  return done_err == 0 && got == n ? 0 : 1;
}

static void host_closed(p2p_host *h, void *ud) {
  (void)h;
  (void)ud;
  hosts_closed++;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: svc_driver many|streams|bench|tasks|waits|op|backlog|mute --state DIR --peer MA [--n N] ...\n");
    return 2;
  }
  mode = argv[1];
  tree_api = getenv("SVC_DRIVER_TREE") && strcmp(getenv("SVC_DRIVER_TREE"), "1") == 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--state")) state_dir = argv[i + 1];
    else if (!strcmp(argv[i], "--peer")) peer = argv[i + 1];
    else if (!strcmp(argv[i], "--token")) token = argv[i + 1];
    else if (!strcmp(argv[i], "--tool")) tool = argv[i + 1];
    else if (!strcmp(argv[i], "--bin")) bin_path = argv[i + 1];
    else if (!strcmp(argv[i], "--n")) n = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--conns")) conns = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--inflight")) inflight = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--msg")) op_msg = argv[i + 1];
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!strcmp(mode, "stdio")) {
    if (!bin_path || !state_dir || n < 1 || inflight < 1) return 2;
    lat_us = calloc((size_t)n, sizeof *lat_us);
    return run_stdio(bin_path);
  }
  if (!state_dir || (!peer && strcmp(mode, "mute") != 0) || n < 1 || conns < 1 || conns > MAXC || inflight < 1)
    return 2;
  log_set_level(LOG_WARNING);
  uv_loop_init(&loop);
  uv_timer_t wd;
  uv_timer_init(&loop, &wd);
  const char *wds = getenv("SVC_DRIVER_TIMEOUT_S");
  uv_timer_start(&wd, watchdog, (uint64_t)(wds ? atoi(wds) : 120) * 1000, 0);
  uv_unref((uv_handle_t *)&wd);
  lat_us = calloc((size_t)n, sizeof *lat_us);
  if (!strcmp(mode, "bench") && !tree_api) {
    bench_text = true;
    bench_reqs = calloc((size_t)n, sizeof *bench_reqs);
    if (!bench_reqs) return 1;
    uv_check_init(&loop, &recv_clock);
    uv_check_start(&recv_clock, recv_clock_reset);
    uv_unref((uv_handle_t *)&recv_clock);
  }

  int64_t t0 = clock_mono_us();
  int mode_rc = -1;
  if (!strcmp(mode, "waits")) mode_rc = run_waits();
  else if (!strcmp(mode, "op")) mode_rc = op_msg ? run_op() : 2;
  else if (!strcmp(mode, "backlog")) mode_rc = run_backlog();
  else if (!strcmp(mode, "mute")) mode_rc = run_mute();
  if (mode_rc >= 0) {
    for (long i = 0; i < n_clients; i++) svc_client_close(clients[i]);
    p2p_host_close(hosts[0], host_closed, NULL);
    int64_t end = clock_mono_ms() + 5000;
    while (hosts_closed < 1 && clock_mono_ms() < end) uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&wd, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    free(lat_us);
    return mode_rc;
  }
  if (!strcmp(mode, "many")) {
    hosts[0] = mk_host(0);
    clients[n_clients++] = mk_client(hosts[0]);
    for (long i = 0; i < n; i++) issue(clients[0]);
  } else if (!strcmp(mode, "streams")) {
    hosts[0] = mk_host(0);
    if (n > 1024) n = 1024;
    for (long i = 0; i < n; i++) clients[n_clients++] = mk_client(hosts[0]);
    for (long i = 0; i < n; i++) issue(clients[i]);
  } else if (!strcmp(mode, "bench") || !strcmp(mode, "tasks")) {
    for (long k = 0; k < conns; k++) {
      hosts[k] = mk_host((int)k);
      clients[n_clients++] = mk_client(hosts[k]);
    }
    /* warm-up: one status per connection so set-up is not measured */
    for (long k = 0; k < conns; k++) {
      json_t *m = json_pack("{s:s}", "op", "status");
      int flag = 0;
      void cb_warm(void *ud, int err, json_t *r, json_t *e);
      if (svc_client_rpc(clients[k], m, 0, cb_warm, &flag) != 0) flag = 1;
      json_decref(m);
      while (!flag) uv_run(&loop, UV_RUN_ONCE);
    }
    t0 = clock_mono_us();
    for (long k = 0; k < conns; k++)
      for (long f = 0; f < inflight; f++) {
        if (!strcmp(mode, "bench")) issue(clients[k]);
        else task_issue(clients[k]);
      }
  } else {
    return 2;
  }
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  while (done_ok + done_err < n) uv_run(&loop, UV_RUN_ONCE);
  int64_t el = clock_mono_us() - t0;
  getrusage(RUSAGE_SELF, &ru1);
  double drv_cpu_us = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 +
                      (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);

  uint64_t streams_total = 0;
  for (long i = 0; i < n_clients; i++) {
    uint64_t s = 0;
    svc_client_counters(clients[i], &s, NULL);
    streams_total += s;
  }
  qsort(lat_us, (size_t)done_ok, sizeof *lat_us, cmp_i64);
  int64_t p50 = done_ok ? lat_us[done_ok / 2] : 0, p99 = done_ok ? lat_us[(done_ok * 99) / 100] : 0;
  printf("{\"mode\":\"%s\",\"n\":%ld,\"ok\":%ld,\"failed\":%ld,\"conns\":%ld,\"inflight\":%ld,\"streams_opened\":%llu,"
         "\"elapsed_ms\":%.1f,\"per_s\":%.1f,\"p50_us\":%lld,\"p99_us\":%lld,\"driver_cpu_us_per_call\":%.2f}\n",
         mode, n, done_ok, done_err, !strcmp(mode, "bench") || !strcmp(mode, "tasks") ? conns : 1, inflight,
         (unsigned long long)streams_total, el / 1000.0, el > 0 ? done_ok * 1e6 / el : 0.0, (long long)p50,
         (long long)p99, n > 0 ? drv_cpu_us / (double)n : 0.0);
  fflush(stdout);
  for (long i = 0; i < n_clients; i++) svc_client_close(clients[i]);
  int nh = 0;
  for (int k = 0; k < MAXC; k++)
    if (hosts[k]) {
      p2p_host_close(hosts[k], host_closed, NULL);
      nh++;
    }
  int64_t end = clock_mono_ms() + 5000;
  while (hosts_closed < nh && clock_mono_ms() < end) uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&wd, NULL);
  if (bench_text) uv_close((uv_handle_t *)&recv_clock, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  free(lat_us);
  free(bench_reqs);
  return done_err == 0 ? 0 : 1;
}

void cb_warm(void *ud, int err, json_t *r, json_t *e) {
  (void)err;
  (void)r;
  (void)e;
  *(int *)ud = 1;
}
