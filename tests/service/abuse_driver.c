/* abuse_driver.c — runs one issue 9 attack (attacks.h) against a running `peermcp serve` while
 * a well-behaved peer keeps using it, and measures both sides (not a unit test; used by
 * tests/suites/66-abuse.sh):
 *
 *   abuse_driver ATTACK --peer MA --state DIR [--token T] [--pid SERVER_PID] [--seconds S]
 *                [--settle S] [--normal DIR] [--dials N] [--arg KEY=VALUE]...
 *
 * Phases: 1 s before the attack, S seconds (default 10) of attack, then the attack stops (its
 * peers disconnect) and `settle` seconds (default 5) after. Meanwhile:
 *   - the normal peer (identity DIR/normal unless --normal; the server must trust it) sends a
 *     `status` op and a `cache.get` every 100 ms on its own connection, each timed. It runs on
 *     its own thread and loop, so the attack's own work here (encrypting megabytes under ASan)
 *     does not count as the server's latency;
 *   - with --dials N, N fresh identities dial the server during the attack, one after another
 *     (each a new connection: status op), and count as ok or failed; with --dial-dir DIR every
 *     dial uses that one identity instead (a peer that authorized before: still a new
 *     connection each time);
 *   - with --pid, the server's VmRSS and Threads are read from /proc every 200 ms.
 * Prints one JSON line: {"attack", "report":{…the attack's counters…},
 *   "normal":{"before"|"during"|"after":{"sent","ok","failed","max_ms","p99_ms"}},
 *   "dials":{"ok","failed","max_ms"}, "server":{"rss_kb_before","rss_kb_max","rss_kb_after",
 *   "threads_before","threads_max","threads_after"}}. Exit 0 when it ran (the suite judges). */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "service/client.h"
#include "tests/service/attacks.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/log.h"

enum { PH_BEFORE, PH_DURING, PH_AFTER, PH_N };
static const char *const ph_names[PH_N] = {"before", "during", "after"};

typedef struct phase_stats {
  long sent, ok, failed;
  int64_t lat_us[100000];
  long n_lat;
} phase_stats;

static uv_loop_t loop;
static const char *peer, *state_dir, *token, *normal_dir, *dial_dir;
static int server_pid;
static double seconds = 10, settle = 5;
static long dials_wanted;
static const char *args[64];
static size_t n_args;
static atomic_int phase = PH_BEFORE; /* written by the main loop, read by the normal peer's */
static phase_stats ph[PH_N];
static p2p_host *normal_host;
static svc_client *normal_client;
static uv_timer_t t_sample, t_phase, t_watchdog;
/* the normal peer's thread: its loop, timer, stop signal, open hosts; ph[] is its own until
 * it is joined */
static uv_loop_t nloop;
static uv_thread_t n_thread;
static uv_timer_t t_normal;
static uv_async_t n_stop;
static int n_hosts_open;
static atomic_bool n_counting = true;
static long rss_before = -1, rss_max, rss_after = -1, thr_before = -1, thr_max, thr_after = -1;
static const atk_def *atk;
static void *atk_state;
static atk_env env;
static long dials_ok, dials_failed, dials_started;
static int64_t dial_max_us;
static bool dialing, attack_over;
static int hosts_open;

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void read_proc(long *rss_kb, long *threads) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", server_pid);
  FILE *f = fopen(path, "r");
  *rss_kb = *threads = -1;
  while (f && fgets(line, sizeof line, f)) {
    if (!strncmp(line, "VmRSS:", 6)) *rss_kb = atol(line + 6);
    else if (!strncmp(line, "Threads:", 8)) *threads = atol(line + 8);
  }
  if (f) fclose(f);
}

static void sample(uv_timer_t *t) {
  (void)t;
  if (!server_pid) return;
  long rss, thr;
  read_proc(&rss, &thr);
  if (rss < 0) return;
  if (rss_before < 0) rss_before = rss, thr_before = thr;
  if (phase == PH_DURING || phase == PH_AFTER) {
    if (rss > rss_max) rss_max = rss;
    if (thr > thr_max) thr_max = thr;
  }
  if (phase == PH_AFTER) rss_after = rss, thr_after = thr;
}

static p2p_host *mk_host_on(uv_loop_t *l, const char *dir, int *open) {
  mkdir(dir, 0700);
  p2p_host_config hc = {0};
  hc.state_dir = dir;
  hc.no_peerstore_file = true;
  p2p_host *h;
  if (p2p_host_new(l, &hc, &h) != 0) {
    fprintf(stderr, "abuse_driver: host failed (%s)\n", dir);
    exit(1);
  }
  (*open)++;
  return h;
}

static p2p_host *mk_host(const char *dir) { return mk_host_on(&loop, dir, &hosts_open); }

static void host_closed(p2p_host *h, void *ud) {
  (void)h;
  (*(int *)(ud ? ud : &hosts_open))--;
}

/* ---- the normal peer ---- */

typedef struct nreq {
  int phase;
  int64_t t0;
} nreq;

static void normal_done(void *ud, int err, json_t *result, json_t *error) {
  (void)error;
  nreq *r = ud;
  if (!atomic_load(&n_counting)) { /* the report is being written: later answers do not count */
    free(r);
    return;
  }
  phase_stats *p = &ph[r->phase];
  if (err == 0 && json_is_true(json_object_get(result, "ok"))) {
    p->ok++;
    if (p->n_lat < (long)(sizeof p->lat_us / sizeof p->lat_us[0])) p->lat_us[p->n_lat++] = clock_mono_us() - r->t0;
  } else {
    p->failed++;
  }
  free(r);
}

static void normal_tick(uv_timer_t *t) {
  (void)t;
  static int k;
  if (!atomic_load(&n_counting)) return;
  nreq *r = calloc(1, sizeof *r);
  r->phase = atomic_load(&phase);
  r->t0 = clock_mono_us();
  json_t *m = (k++ % 2) ? json_pack("{s:s, s:s}", "op", "cache.get", "key", "normal-probe") : json_pack("{s:s}", "op", "status");
  ph[r->phase].sent++;
  if (svc_client_rpc(normal_client, m, 20000, normal_done, r) != 0) {
    ph[r->phase].failed++;
    free(r);
  }
  json_decref(m);
}

static uv_timer_t t_nguard;
static void normal_guard(uv_timer_t *t) {
  fprintf(stderr, "abuse_driver: the normal peer did not close within 10 s\n");
  uv_stop(t->loop);
}

static void normal_stop(uv_async_t *a) {
  uv_timer_init(&nloop, &t_nguard); /* unreferenced: it only ends a loop that would not end */
  uv_timer_start(&t_nguard, normal_guard, 10000, 0);
  uv_unref((uv_handle_t *)&t_nguard);
  uv_timer_stop(&t_normal);
  uv_close((uv_handle_t *)&t_normal, NULL);
  svc_client_close(normal_client);
  p2p_host_close(normal_host, host_closed, &n_hosts_open);
  uv_close((uv_handle_t *)a, NULL);
}

static void normal_main(void *arg) {
  (void)arg;
  check_loop_thread_enter();
  /* the normal peer connects before the attack, then keeps sending */
  normal_host = mk_host_on(&nloop, normal_dir, &n_hosts_open);
  svc_client_opts o = {0};
  o.request_timeout_ms = 20000;
  if (svc_client_new(&nloop, normal_host, peer, &o, &normal_client) != 0) exit(1);
  uv_timer_init(&nloop, &t_normal);
  uv_timer_start(&t_normal, normal_tick, 0, 100);
  uv_run(&nloop, UV_RUN_DEFAULT); /* until normal_stop has closed everything */
  uv_close((uv_handle_t *)&t_nguard, NULL);
  uv_run(&nloop, UV_RUN_NOWAIT);
  check_loop_thread_leave();
}

/* ---- fresh dials during the attack ---- */

static p2p_host *dial_host;
static svc_client *dial_client;
static int64_t dial_t0;
static void dial_next(void);

static uv_timer_t t_dial_close;
static void dial_close(uv_timer_t *t) {
  (void)t;
  svc_client_close(dial_client);
  dial_client = NULL;
  p2p_host_close(dial_host, host_closed, NULL);
  dial_host = NULL;
  dialing = false;
}

static void dial_done(void *ud, int err, json_t *result, json_t *error) {
  (void)ud;
  (void)error;
  int64_t us = clock_mono_us() - dial_t0;
  if (err == 0 && json_is_true(json_object_get(result, "ok"))) {
    dials_ok++;
    if (us > dial_max_us) dial_max_us = us;
  } else {
    dials_failed++;
    fprintf(stderr, "abuse_driver: dial %ld failed (err %d)\n", dials_started, err);
  }
  /* closed on the next turn (closing inside the reply callback is safe too: test_net's
   * test_client_closed_inside_its_reply_callback) */
  uv_timer_start(&t_dial_close, dial_close, 0, 0);
}

static void dial_next(void) {
  if (dialing || attack_over || dials_started >= dials_wanted) return;
  char dir[4096];
  if (dial_dir) snprintf(dir, sizeof dir, "%s", dial_dir);
  else snprintf(dir, sizeof dir, "%s/dial%ld", state_dir, dials_started);
  dials_started++;
  dial_host = mk_host(dir);
  svc_client_opts o = {0};
  o.token = token;
  o.request_timeout_ms = 15000;
  o.no_retries = true;
  if (svc_client_new(&loop, dial_host, peer, &o, &dial_client) != 0) exit(1);
  dialing = true;
  dial_t0 = clock_mono_us();
  json_t *m = json_pack("{s:s}", "op", "status");
  if (svc_client_rpc(dial_client, m, 15000, dial_done, NULL) != 0) dial_done(NULL, -EIO, NULL, NULL);
  json_decref(m);
}

static uv_timer_t t_dial;
static void dial_tick(uv_timer_t *t) {
  (void)t;
  dial_next();
}

/* ---- phases ---- */

static void attack_finish(void *ud);

static void stop_attack(void) {
  if (attack_over) return;
  attack_over = true;
  if (atk_state) atk->stop(atk_state);
}

static void phase_tick(uv_timer_t *t) {
  if (phase == PH_BEFORE) {
    atomic_store(&phase, PH_DURING);
    env = (atk_env){.loop = &loop, .peer = peer, .id_dir = state_dir, .token = token, .args = args, .n_args = n_args,
                    .finish = attack_finish};
    if (atk->start(&env, &atk_state) != 0) {
      fprintf(stderr, "abuse_driver: the attack did not start\n");
      exit(1);
    }
    if (dials_wanted > 0) {
      uv_timer_init(&loop, &t_dial);
      uint64_t every = (uint64_t)(seconds * 1000 / (double)dials_wanted);
      uv_timer_start(&t_dial, dial_tick, 200, every < 50 ? 50 : every);
    }
    uv_timer_start(t, phase_tick, (uint64_t)(seconds * 1000), 0);
  } else if (phase == PH_DURING) {
    stop_attack();
    atomic_store(&phase, PH_AFTER);
    if (dials_wanted > 0) {
      uv_timer_stop(&t_dial);
      uv_close((uv_handle_t *)&t_dial, NULL);
    }
    uv_timer_start(t, phase_tick, (uint64_t)(settle * 1000), 0);
  } else {
    uv_timer_stop(&t_sample);
    uv_stop(&loop);
  }
}

static void attack_finish(void *ud) {
  (void)ud;
  /* the attack is over before its time: go to the settle phase now */
  if (phase == PH_DURING) uv_timer_start(&t_phase, phase_tick, 0, 0);
}

static void watchdog(uv_timer_t *t) {
  (void)t;
  fprintf(stderr, "abuse_driver: watchdog fired\n");
  exit(3);
}

static json_t *phase_json(phase_stats *p) {
  qsort(p->lat_us, (size_t)p->n_lat, sizeof p->lat_us[0], cmp_i64);
  double max = p->n_lat ? p->lat_us[p->n_lat - 1] / 1000.0 : 0;
  double p99 = p->n_lat ? p->lat_us[(p->n_lat * 99) / 100] / 1000.0 : 0;
  return json_pack("{s:I, s:I, s:I, s:f, s:f}", "sent", (json_int_t)p->sent, "ok", (json_int_t)p->ok, "failed",
                   (json_int_t)p->failed, "max_ms", max, "p99_ms", p99);
}

int main(int argc, char **argv) {
  if (argc < 2 || !(atk = atk_find(argv[1]))) {
    fprintf(stderr, "usage: abuse_driver handshake_slots|unread_output|partial_frames|long_waits|pipeline "
                    "--peer MA --state DIR [--token T] [--pid PID] [--seconds S] [--settle S] [--dials N] [--dial-dir DIR] "
                    "[--arg K=V]...\n");
    return 2;
  }
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--peer")) peer = argv[i + 1];
    else if (!strcmp(argv[i], "--state")) state_dir = argv[i + 1];
    else if (!strcmp(argv[i], "--token")) token = argv[i + 1];
    else if (!strcmp(argv[i], "--pid")) server_pid = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--settle")) settle = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--normal")) normal_dir = argv[i + 1];
    else if (!strcmp(argv[i], "--dials")) dials_wanted = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--dial-dir")) dial_dir = argv[i + 1];
    else if (!strcmp(argv[i], "--arg") && n_args < 64) args[n_args++] = argv[i + 1];
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (!peer || !state_dir) return 2;
  signal(SIGPIPE, SIG_IGN);
  log_set_level(LOG_ERROR);
  mkdir(state_dir, 0700);
  check_loop_thread_enter();
  uv_loop_init(&loop);
  char nd[4096];
  if (!normal_dir) {
    snprintf(nd, sizeof nd, "%s/normal", state_dir);
    normal_dir = nd;
  }
  uv_loop_init(&nloop);
  uv_async_init(&nloop, &n_stop, normal_stop);
  if (uv_thread_create(&n_thread, normal_main, NULL) != 0) return 1;
  uv_timer_init(&loop, &t_sample);
  uv_timer_start(&t_sample, sample, 0, 200);
  uv_timer_init(&loop, &t_dial_close);
  uv_unref((uv_handle_t *)&t_dial_close);
  uv_timer_init(&loop, &t_phase);
  uv_timer_start(&t_phase, phase_tick, 1000, 0);
  uv_timer_init(&loop, &t_watchdog);
  uv_timer_start(&t_watchdog, watchdog, (uint64_t)((seconds + settle + 60) * 1000), 0);
  uv_unref((uv_handle_t *)&t_watchdog);
  uv_run(&loop, UV_RUN_DEFAULT);
  stop_attack();
  atomic_store(&n_counting, false);
  uv_async_send(&n_stop); /* the normal peer winds down on its thread (the watchdog bounds it) */
  uv_thread_join(&n_thread);

  json_t *report = atk_state ? atk->report(atk_state) : json_null();
  json_t *normal = json_object();
  for (int i = 0; i < PH_N; i++) json_object_set_new(normal, ph_names[i], phase_json(&ph[i]));
  json_t *out = json_pack("{s:s, s:o, s:o, s:{s:I, s:I, s:f}, s:{s:I, s:I, s:I, s:I, s:I, s:I}}", "attack", atk->name,
                          "report", report, "normal", normal, "dials", "ok", (json_int_t)dials_ok, "failed",
                          (json_int_t)dials_failed, "max_ms", dial_max_us / 1000.0, "server", "rss_kb_before",
                          (json_int_t)rss_before, "rss_kb_max", (json_int_t)rss_max, "rss_kb_after",
                          (json_int_t)rss_after, "threads_before", (json_int_t)thr_before, "threads_max",
                          (json_int_t)thr_max, "threads_after", (json_int_t)thr_after);
  char *s = json_dumps(out, JSON_COMPACT);
  printf("%s\n", s);
  fflush(stdout);
  free(s);
  json_decref(out);

  /* wind down: everything closes, then the loop ends */
  if (dial_client) svc_client_close(dial_client);
  if (dial_host) p2p_host_close(dial_host, host_closed, NULL);
  uv_close((uv_handle_t *)&t_sample, NULL);
  uv_close((uv_handle_t *)&t_dial_close, NULL);
  uv_close((uv_handle_t *)&t_phase, NULL);
  uv_timer_start(&t_watchdog, watchdog, 15000, 0);
  uv_ref((uv_handle_t *)&t_watchdog);
  int64_t end = clock_mono_ms() + 10000;
  while (hosts_open > 0 && clock_mono_ms() < end) uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t_watchdog, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  if (atk_state) atk->free(atk_state);
  return 0;
}
