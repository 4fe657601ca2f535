/* soak.c — `make soak` (bench/soak/run.sh): a running `peermcp serve` under normal traffic and
 * attacks, measured before, during and after (issue 9, "Done when").
 *
 *   soak run --peer MA --server-pid PID --id-dir DIR [--token T] [--before S] [--during S]
 *            [--after S] [--rate R] [--attack NAME]... [--arg NAME:KEY=VALUE]...
 *       Sends normal traffic (R requests/s from a trusted identity, DIR/normal/0: the status
 *       op, cache.set + cache.get, tools/call server_info, in turn), samples the server's RSS,
 *       descriptors and threads from /proc/PID every second, and runs each attack in a child
 *       process during the middle phase. Prints one JSON object: per phase the latency of the
 *       normal traffic (p50, p99, max, errors) and the server's resources (start, max, end),
 *       plus each attack's own counters and a time series of the samples.
 *   soak attack NAME --peer MA --id-dir DIR --seconds S [--token T] [--server-pid PID]
 *            [--arg KEY=VALUE]...
 *       Runs one attack (the child side; soak.h describes the plug-in interface). Prints one
 *       JSON line of counters when it stops (after S seconds or at SIGTERM).
 *   soak list
 *       The attacks this build knows.
 *
 * One loop, one thread per process. Every phase is bounded; the run ends even if the server
 * stops answering (requests time out after 10 s and count as errors). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/soak/soak.h"
#include "util/clock.h"
#include "util/log.h"

#define MAX_ATTACKS 8
#define MAX_ARGS 64
#define REQ_TIMEOUT_MS 10000

/* ---------------------------------------------------------------- helpers for attacks */

static int g_hosts_open;

static int mkdir_p(const char *path) {
  char p[4096];
  snprintf(p, sizeof p, "%s", path);
  for (char *s = p + 1;; s++) {
    if (*s == '/' || *s == 0) {
      char c = *s;
      *s = 0;
      if (mkdir(p, 0700) != 0 && errno != EEXIST) return -errno;
      *s = c;
      if (!c) break;
    }
  }
  return 0;
}

p2p_host *soak_host_new(const soak_env *env, int idx) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%d", env->id_dir, idx);
  if (mkdir_p(dir) != 0) {
    fprintf(stderr, "soak: cannot create %s: %s\n", dir, strerror(errno));
    exit(1);
  }
  p2p_host_config hc = {0};
  hc.state_dir = dir;
  hc.no_peerstore_file = true;
  hc.max_streams_per_conn = 1024;
  p2p_host *h;
  if (p2p_host_new(env->loop, &hc, &h) != 0) {
    fprintf(stderr, "soak: host %s failed\n", dir);
    exit(1);
  }
  g_hosts_open++;
  return h;
}

svc_client *soak_client_new(const soak_env *env, p2p_host *h, size_t max_inflight) {
  svc_client_opts o = {0};
  o.token = env->token;
  o.no_retries = true;
  o.request_timeout_ms = REQ_TIMEOUT_MS;
  o.max_inflight = max_inflight ? max_inflight : 32;
  o.client_name = "peermcp-soak";
  svc_client *c;
  if (svc_client_new(env->loop, h, env->peer, &o, &c) != 0) {
    fprintf(stderr, "soak: bad peer %s\n", env->peer);
    exit(1);
  }
  return c;
}

static void host_closed(p2p_host *h, void *ud) {
  (void)h;
  (void)ud;
  g_hosts_open--;
}

void soak_host_close(p2p_host *h) {
  if (h) p2p_host_close(h, host_closed, NULL);
}

long soak_arg_long(const soak_env *env, const char *key, long dflt) {
  size_t kl = strlen(key);
  for (size_t i = 0; i < env->n_args; i++)
    if (strncmp(env->args[i], key, kl) == 0 && env->args[i][kl] == '=') return atol(env->args[i] + kl + 1);
  return dflt;
}

static const soak_attack *find_attack(const char *name) {
  for (size_t i = 0; i < soak_attack_count; i++)
    if (strcmp(soak_attacks[i]->name, name) == 0) return soak_attacks[i];
  return NULL;
}

/* ---------------------------------------------------------------- /proc sampling */

typedef struct sample {
  double t;
  long rss_kb, fds, threads;
} sample;

static int read_proc(int pid, sample *s) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -errno;
  char line[256];
  s->rss_kb = s->threads = -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) s->rss_kb = atol(line + 6);
    else if (strncmp(line, "Threads:", 8) == 0) s->threads = atol(line + 8);
  }
  fclose(f);
  snprintf(path, sizeof path, "/proc/%d/fd", pid);
  DIR *d = opendir(path);
  s->fds = -1;
  if (d) {
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
      if (de->d_name[0] != '.') n++;
    closedir(d);
    s->fds = n;
  }
  return 0;
}

/* ---------------------------------------------------------------- the run */

enum { PH_BEFORE, PH_DURING, PH_AFTER, PH_N };
static const char *const k_phase[PH_N] = {"before", "during", "after"};

typedef struct phase_stats {
  double *lat_ms;
  size_t n, cap;
  long errors, sent;
  sample first, max, last;
  bool have;
} phase_stats;

typedef struct child {
  const soak_attack *a;
  uv_process_t proc;
  uv_pipe_t out;
  char buf[65536];
  size_t len;
  bool running, out_open;
  int64_t exit_status;
  int term_signal;
} child;

typedef struct run_state {
  soak_env env;
  double before_s, during_s, after_s, rate;
  const char *attacks[MAX_ATTACKS];
  size_t n_attacks;
  const char *args[MAX_ARGS]; /* "NAME:KEY=VALUE" */
  size_t n_args;
  const char *self_exe;
  char *id_root;
  /* normal traffic */
  p2p_host *host;
  svc_client *client;
  uv_timer_t tick, sampler, phase_timer;
  int phase;
  uint64_t seq;
  int64_t t0_us;
  long inflight;
  phase_stats ph[PH_N];
  json_t *series;
  child kids[MAX_ATTACKS];
  size_t n_kids;
  bool done;
} run_state;

static run_state R;

typedef struct nreq {
  int64_t t0;
  int phase;
  int kind;
} nreq;

static void lat_push(phase_stats *p, double ms) {
  if (p->n == p->cap) {
    size_t nc = p->cap ? p->cap * 2 : 1024;
    double *v = realloc(p->lat_ms, nc * sizeof *v);
    if (!v) return;
    p->lat_ms = v;
    p->cap = nc;
  }
  p->lat_ms[p->n++] = ms;
}

static void on_normal(void *ud, int err, json_t *result, json_t *error) {
  nreq *r = ud;
  (void)error;
  if (R.done) { /* failed by the final close: not a measurement */
    free(r);
    return;
  }
  double ms = (double)(clock_mono_us() - r->t0) / 1000.0;
  phase_stats *p = &R.ph[r->phase];
  bool ok = err == 0 && result &&
            (json_is_true(json_object_get(result, "ok")) || json_is_false(json_object_get(result, "isError")));
  if (!ok) p->errors++;
  lat_push(p, ms);
  R.inflight--;
  free(r);
}

static void normal_tick(uv_timer_t *t) {
  (void)t;
  if (R.done || R.inflight > 256) return; /* the server is not answering: do not pile up */
  nreq *r = calloc(1, sizeof *r);
  if (!r) return;
  r->t0 = clock_mono_us();
  r->phase = R.phase;
  r->kind = (int)(R.seq++ % 4);
  int rc;
  char key[32];
  snprintf(key, sizeof key, "soak-normal-%d", (int)(R.seq % 16));
  if (r->kind == 0) {
    json_t *m = json_pack("{s:s}", "op", "status");
    rc = svc_client_rpc(R.client, m, REQ_TIMEOUT_MS, on_normal, r);
    json_decref(m);
  } else if (r->kind == 1) {
    json_t *m = json_pack("{s:s, s:s, s:{s:I}}", "op", "cache.set", "key", key, "value", "seq", (json_int_t)R.seq);
    rc = svc_client_rpc(R.client, m, REQ_TIMEOUT_MS, on_normal, r);
    json_decref(m);
  } else if (r->kind == 2) {
    json_t *m = json_pack("{s:s, s:s}", "op", "cache.get", "key", key);
    rc = svc_client_rpc(R.client, m, REQ_TIMEOUT_MS, on_normal, r);
    json_decref(m);
  } else {
    json_t *args = json_object();
    rc = svc_client_call_tool(R.client, "server_info", args, false, REQ_TIMEOUT_MS, on_normal, r);
    json_decref(args);
  }
  R.ph[R.phase].sent++;
  if (rc != 0) {
    R.ph[R.phase].errors++;
    free(r);
  } else {
    R.inflight++;
  }
}

static void take_sample(uv_timer_t *t) {
  (void)t;
  sample s;
  if (read_proc(R.env.server_pid, &s) != 0) return;
  s.t = (double)(clock_mono_us() - R.t0_us) / 1e6;
  phase_stats *p = &R.ph[R.phase];
  if (!p->have) {
    p->first = p->max = s;
    p->have = true;
  }
  if (s.rss_kb > p->max.rss_kb) p->max.rss_kb = s.rss_kb;
  if (s.fds > p->max.fds) p->max.fds = s.fds;
  if (s.threads > p->max.threads) p->max.threads = s.threads;
  p->last = s;
  json_array_append_new(R.series, json_pack("[f, s, I, I, I]", s.t, k_phase[R.phase], (json_int_t)s.rss_kb,
                                            (json_int_t)s.fds, (json_int_t)s.threads));
}

/* ---- attack children ---- */

static void kid_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b) {
  (void)sug;
  child *k = h->data;
  b->base = k->buf + k->len;
  b->len = sizeof k->buf - 1 - k->len;
}

static void kid_closed(uv_handle_t *h) { (void)h; }

static void kid_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)b;
  child *k = s->data;
  if (n > 0) k->len += (size_t)n;
  if (n < 0 || k->len >= sizeof k->buf - 1) {
    uv_read_stop(s);
    if (k->out_open) uv_close((uv_handle_t *)s, kid_closed);
    k->out_open = false;
  }
  k->buf[k->len] = 0;
}

static void kid_exit(uv_process_t *p, int64_t status, int sig) {
  child *k = p->data;
  k->running = false;
  k->exit_status = status;
  k->term_signal = sig;
  uv_close((uv_handle_t *)p, kid_closed);
}

static int spawn_attack(const char *name) {
  child *k = &R.kids[R.n_kids];
  memset(k, 0, sizeof *k);
  k->a = find_attack(name);
  char dir[4096], secs[32], pid[32];
  snprintf(dir, sizeof dir, "%s/attack-%s", R.id_root, name);
  snprintf(secs, sizeof secs, "%.3f", R.during_s);
  snprintf(pid, sizeof pid, "%d", R.env.server_pid);
  const char *argv[16 + 2 * MAX_ARGS];
  size_t a = 0;
  argv[a++] = R.self_exe;
  argv[a++] = "attack";
  argv[a++] = name;
  argv[a++] = "--peer";
  argv[a++] = R.env.peer;
  argv[a++] = "--id-dir";
  argv[a++] = dir;
  argv[a++] = "--seconds";
  argv[a++] = secs;
  argv[a++] = "--server-pid";
  argv[a++] = pid;
  if (R.env.token) {
    argv[a++] = "--token";
    argv[a++] = R.env.token;
  }
  size_t nl = strlen(name);
  for (size_t i = 0; i < R.n_args; i++)
    if (strncmp(R.args[i], name, nl) == 0 && R.args[i][nl] == ':') {
      argv[a++] = "--arg";
      argv[a++] = R.args[i] + nl + 1;
    }
  argv[a] = NULL;
  uv_pipe_init(R.env.loop, &k->out, 0);
  k->out.data = k;
  k->out_open = true;
  uv_stdio_container_t io[3] = {{.flags = UV_IGNORE},
                                {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&k->out},
                                {.flags = UV_INHERIT_FD, .data.fd = 2}};
  uv_process_options_t po = {.file = R.self_exe, .args = (char **)argv, .stdio = io, .stdio_count = 3,
                             .exit_cb = kid_exit};
  k->proc.data = k;
  int rc = uv_spawn(R.env.loop, &k->proc, &po);
  if (rc != 0) {
    fprintf(stderr, "soak: cannot start attack %s: %s\n", name, uv_strerror(rc));
    uv_close((uv_handle_t *)&k->out, kid_closed);
    return rc;
  }
  k->running = true;
  uv_read_start((uv_stream_t *)&k->out, kid_alloc, kid_read);
  R.n_kids++;
  return 0;
}

static void phase_next(uv_timer_t *t);

static void finish(void) {
  R.done = true;
  uv_timer_stop(&R.tick);
  uv_timer_stop(&R.sampler);
  uv_timer_stop(&R.phase_timer);
  uv_close((uv_handle_t *)&R.tick, NULL);
  uv_close((uv_handle_t *)&R.sampler, NULL);
  uv_close((uv_handle_t *)&R.phase_timer, NULL);
  for (size_t i = 0; i < R.n_kids; i++) /* an attack that ignored SIGTERM for a whole phase */
    if (R.kids[i].running) uv_process_kill(&R.kids[i].proc, SIGKILL);
  svc_client_close(R.client); /* pending requests fail now */
  R.client = NULL;
  soak_host_close(R.host);
}

static void phase_next(uv_timer_t *t) {
  (void)t;
  take_sample(NULL); /* the end of the phase */
  if (R.phase == PH_BEFORE) {
    R.phase = PH_DURING;
    take_sample(NULL);
    for (size_t i = 0; i < R.n_attacks; i++) (void)spawn_attack(R.attacks[i]);
    uv_timer_start(&R.phase_timer, phase_next, (uint64_t)(R.during_s * 1000), 0);
  } else if (R.phase == PH_DURING) {
    for (size_t i = 0; i < R.n_kids; i++)
      if (R.kids[i].running) uv_process_kill(&R.kids[i].proc, SIGTERM);
    R.phase = PH_AFTER;
    take_sample(NULL);
    uv_timer_start(&R.phase_timer, phase_next, (uint64_t)(R.after_s * 1000), 0);
  } else {
    finish();
  }
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static json_t *sample_json(const sample *s) {
  return json_pack("{s:I, s:I, s:I}", "rss_kb", (json_int_t)s->rss_kb, "fds", (json_int_t)s->fds, "threads",
                   (json_int_t)s->threads);
}

static json_t *phase_json(phase_stats *p) {
  qsort(p->lat_ms, p->n, sizeof *p->lat_ms, cmp_d);
  double p50 = p->n ? p->lat_ms[p->n / 2] : 0, p99 = p->n ? p->lat_ms[(p->n * 99) / 100] : 0,
         mx = p->n ? p->lat_ms[p->n - 1] : 0;
  return json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:o, s:o, s:o}", "sent", (json_int_t)p->sent, "answered",
                   (json_int_t)p->n, "errors", (json_int_t)p->errors, "p50_ms", p50, "p99_ms", p99, "max_ms", mx,
                   "server_start", sample_json(&p->first), "server_max", sample_json(&p->max), "server_end",
                   sample_json(&p->last));
}

static int cmd_run(int argc, char **argv) {
  R.before_s = 10;
  R.during_s = 30;
  R.after_s = 10;
  R.rate = 50;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) goto usage;
    if (!strcmp(a, "--peer")) R.env.peer = v;
    else if (!strcmp(a, "--server-pid")) R.env.server_pid = atoi(v);
    else if (!strcmp(a, "--id-dir")) R.id_root = (char *)v;
    else if (!strcmp(a, "--token")) R.env.token = v;
    else if (!strcmp(a, "--before")) R.before_s = atof(v);
    else if (!strcmp(a, "--during")) R.during_s = atof(v);
    else if (!strcmp(a, "--after")) R.after_s = atof(v);
    else if (!strcmp(a, "--rate")) R.rate = atof(v);
    else if (!strcmp(a, "--attack") && R.n_attacks < MAX_ATTACKS) R.attacks[R.n_attacks++] = v;
    else if (!strcmp(a, "--arg") && R.n_args < MAX_ARGS) R.args[R.n_args++] = v;
    else goto usage;
    i++;
  }
  if (!R.env.peer || R.env.server_pid <= 0 || !R.id_root || !(R.rate > 0) || R.before_s < 0 || R.during_s < 0 ||
      R.after_s < 0)
    goto usage;
  for (size_t i = 0; i < R.n_attacks; i++)
    if (!find_attack(R.attacks[i])) {
      fprintf(stderr, "soak: unknown attack %s (soak list)\n", R.attacks[i]);
      return 2;
    }
  static char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return 1;
  exe[n] = 0;
  R.self_exe = exe;
  static uv_loop_t loop;
  uv_loop_init(&loop);
  R.env.loop = &loop;
  char ndir[4096];
  snprintf(ndir, sizeof ndir, "%s/normal", R.id_root);
  soak_env ne = R.env;
  ne.id_dir = ndir;
  ne.token = NULL; /* the normal client is a trusted peer */
  R.host = soak_host_new(&ne, 0);
  R.client = soak_client_new(&ne, R.host, 256);
  R.series = json_array();
  R.t0_us = clock_mono_us();
  uv_timer_init(&loop, &R.tick);
  uv_timer_init(&loop, &R.sampler);
  uv_timer_init(&loop, &R.phase_timer);
  uint64_t every = (uint64_t)(1000.0 / R.rate);
  uv_timer_start(&R.tick, normal_tick, 0, every ? every : 1);
  uv_timer_start(&R.sampler, take_sample, 0, 1000);
  uv_timer_start(&R.phase_timer, phase_next, (uint64_t)(R.before_s * 1000), 0);
  uv_run(&loop, UV_RUN_DEFAULT);

  json_t *phases = json_object();
  for (int p = 0; p < PH_N; p++) json_object_set_new(phases, k_phase[p], phase_json(&R.ph[p]));
  json_t *atk = json_array();
  for (size_t i = 0; i < R.n_kids; i++) {
    child *k = &R.kids[i];
    json_t *rep = json_loads(k->buf, JSON_DISABLE_EOF_CHECK, NULL);
    json_array_append_new(atk, json_pack("{s:s, s:I, s:i, s:o}", "attack", k->a->name, "exit_status",
                                         (json_int_t)k->exit_status, "signal", k->term_signal, "report",
                                         rep ? rep : json_null()));
  }
  json_t *out = json_pack("{s:s, s:f, s:{s:f, s:f, s:f}, s:o, s:o, s:o}", "peer", R.env.peer, "rate_per_s", R.rate,
                          "seconds", "before", R.before_s, "during", R.during_s, "after", R.after_s, "phases", phases,
                          "attacks", atk, "samples", R.series);
  char *s = json_dumps(out, JSON_COMPACT);
  if (s) puts(s);
  free(s);
  json_decref(out);
  for (int p = 0; p < PH_N; p++) free(R.ph[p].lat_ms);
  uv_loop_close(&loop);
  return 0;
usage:
  fprintf(stderr, "usage: soak run --peer MA --server-pid PID --id-dir DIR [--token T] [--before S] [--during S]"
                  " [--after S] [--rate R] [--attack NAME]... [--arg NAME:KEY=VALUE]...\n");
  return 2;
}

/* ---------------------------------------------------------------- the attack side */

typedef struct attack_run {
  const soak_attack *a;
  void *state;
  uv_timer_t timer;
  uv_signal_t sigterm;
  bool stopped;
} attack_run;

static void attack_stop(attack_run *ar) {
  if (ar->stopped) return;
  ar->stopped = true;
  uv_timer_stop(&ar->timer);
  uv_close((uv_handle_t *)&ar->timer, NULL);
  uv_signal_stop(&ar->sigterm);
  uv_close((uv_handle_t *)&ar->sigterm, NULL);
  ar->a->stop(ar->state);
}

static attack_run *g_attack;
static void attack_finish(const soak_env *env) {
  (void)env;
  if (g_attack) attack_stop(g_attack);
}

static void attack_time_up(uv_timer_t *t) { attack_stop(t->data); }
static void attack_sigterm(uv_signal_t *s, int sig) {
  (void)sig;
  attack_stop(s->data);
}

static int cmd_attack(int argc, char **argv) {
  if (argc < 3) return 2;
  const soak_attack *a = find_attack(argv[2]);
  if (!a) {
    fprintf(stderr, "soak: unknown attack %s\n", argv[2]);
    return 2;
  }
  static const char *args[MAX_ARGS];
  soak_env env = {0};
  env.seconds = 30;
  env.args = args;
  for (int i = 3; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--peer")) env.peer = v;
    else if (!strcmp(k, "--id-dir")) env.id_dir = v;
    else if (!strcmp(k, "--token")) env.token = v;
    else if (!strcmp(k, "--server-pid")) env.server_pid = atoi(v);
    else if (!strcmp(k, "--seconds")) env.seconds = atof(v);
    else if (!strcmp(k, "--arg") && env.n_args < MAX_ARGS) args[env.n_args++] = v;
    else {
      fprintf(stderr, "soak attack: unknown option %s\n", k);
      return 2;
    }
  }
  if (!env.peer || !env.id_dir) return 2;
  signal(SIGPIPE, SIG_IGN);
  static uv_loop_t loop;
  uv_loop_init(&loop);
  env.loop = &loop;
  env.finish = attack_finish;
  attack_run ar = {.a = a};
  g_attack = &ar;
  uv_timer_init(&loop, &ar.timer);
  ar.timer.data = &ar;
  uv_timer_start(&ar.timer, attack_time_up, (uint64_t)(env.seconds * 1000) + 1, 0);
  uv_signal_init(&loop, &ar.sigterm);
  ar.sigterm.data = &ar;
  uv_signal_start(&ar.sigterm, attack_sigterm, SIGTERM);
  int rc = a->start(&env, &ar.state);
  if (rc != 0) {
    fprintf(stderr, "soak attack %s: cannot start: %s\n", a->name, strerror(-rc));
    return 1;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  json_t *rep = a->report(ar.state);
  char *s = rep ? json_dumps(rep, JSON_COMPACT) : NULL;
  printf("%s\n", s ? s : "{}");
  fflush(stdout);
  free(s);
  json_decref(rep);
  a->free(ar.state);
  uv_loop_close(&loop);
  return 0;
}

int main(int argc, char **argv) {
  log_set_level(LOG_ERROR);
  if (argc >= 2 && !strcmp(argv[1], "run")) return cmd_run(argc, argv);
  if (argc >= 2 && !strcmp(argv[1], "attack")) return cmd_attack(argc, argv);
  if (argc >= 2 && !strcmp(argv[1], "list")) {
    for (size_t i = 0; i < soak_attack_count; i++) printf("%-20s %s\n", soak_attacks[i]->name, soak_attacks[i]->summary);
    return 0;
  }
  fprintf(stderr, "usage: soak run|attack|list … (see bench/soak/soak.c)\n");
  return 2;
}
