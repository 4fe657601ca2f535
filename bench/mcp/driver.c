/* driver.c — the bench-mcp load driver: a pipelined MCP client over a server's stdio, in C so
 * that the client is not what limits the measurement (the Node clients of bench.mjs spend
 * several µs per call themselves on the same two cores).
 *
 *   mcp_bench_driver [--inflight N] [--seconds S] [--warmup S] [--seq-seconds S] [--tool NAME]
 *                    [--calls N] [--label TEXT] -- COMMAND [ARG…]
 *
 * Starts COMMAND with pipes on its stdin/stdout (stderr is left to the caller: redirect it),
 * speaks newline-delimited JSON-RPC 2.0 (initialize, notifications/initialized), then runs
 * three phases of `tools/call NAME {"text":"hello","n":i}`:
 *   warmup     N in flight for --warmup seconds (discarded: V8 optimises the TS server);
 *   sequential one call at a time for --seq-seconds (0 = skip);
 *   concurrent N calls in flight for --seconds (or, with --calls, until that many were made:
 *              fixed work for instruction counts under callgrind).
 * "N in flight": each response that arrives is replaced by a new request at once, and every
 * request made while handling one read goes out in one write (what a pipelining client does).
 * A phase stops issuing at its deadline and waits for its calls still in flight.
 *
 * Per phase it reports calls, calls/s, p50/p99 latency (send → response line read), the
 * server's CPU (user + system of every thread, /proc/PID/stat, clock ticks) per call and the
 * driver's own CPU per call; at the end the server's peak RSS (VmHWM, and ru_maxrss from
 * wait4 after it exited on end of input). One JSON object on stdout. Every response is checked:
 * its id must be one in flight, it must carry "result" (not "error") and isError false.
 * Exit 0 on success, 1 on any failure (a bad response, the server dying, a stuck phase). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_INFLIGHT 4096
#define RBUF (1u << 20)   /* read buffer; a response line is far smaller */
#define STUCK_S 30.0      /* a phase that gets no response for this long fails */

static int to_child = -1, from_child = -1;
static pid_t child = -1;
static const char *tool = "echo";

/* ---------- time ---------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double self_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The server's user + system CPU so far (all threads, exited ones included), in seconds. */
static double child_cpu_s(void) {
  char path[64], b[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)child);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, b, sizeof b - 1);
  close(fd);
  if (n <= 0) return -1;
  b[n] = 0;
  char *p = strrchr(b, ')'); /* the command name may hold spaces */
  if (!p) return -1;
  unsigned long long ut = 0, st = 0;
  /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long child_status_kb(const char *key) {
  char path[64], b[4096];
  snprintf(path, sizeof path, "/proc/%d/status", (int)child);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, b, sizeof b - 1);
  close(fd);
  if (n <= 0) return 0;
  b[n] = 0;
  size_t kl = strlen(key);
  for (char *p = b; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, key, kl) == 0 && p[kl] == ':') return strtol(p + kl + 1, NULL, 10);
  return 0;
}

/* ---------- output to the server ---------- */

static char *wbuf;
static size_t wlen, wcap;

static void out_append(const char *p, size_t n) {
  if (wlen + n > wcap) {
    size_t cap = wcap ? wcap * 2 : 65536;
    while (cap < wlen + n) cap *= 2;
    char *nb = realloc(wbuf, cap);
    if (!nb) {
      fprintf(stderr, "driver: out of memory\n");
      exit(1);
    }
    wbuf = nb;
    wcap = cap;
  }
  memcpy(wbuf + wlen, p, n);
  wlen += n;
}

/* Writes everything queued (blocking: the server reads while it works). */
static void out_flush(void) {
  size_t off = 0;
  while (off < wlen) {
    ssize_t w = write(to_child, wbuf + off, wlen - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {.fd = to_child, .events = POLLOUT};
        poll(&p, 1, 100);
        continue;
      }
      fprintf(stderr, "driver: write to the server failed: %s\n", strerror(errno));
      exit(1);
    }
    off += (size_t)w;
  }
  wlen = 0;
}

/* ---------- requests in flight ---------- */

/* Calls in flight by id: slot id % RING (ids grow by one, so a clash means one call stayed in
 * flight while RING newer ones were made: reported as stuck). */
#define RING 65536
typedef struct slot {
  long long id; /* 0 = free */
  double sent;
} slot;

static slot slots[RING];
static int nslots;        /* in flight */
static long long next_id = 1;
static long long seq_n;   /* the "n" argument */
static double *lat;       /* latencies of the current phase, ms */
static size_t nlat, latcap;

static void send_call(void) {
  char line[512];
  long long id = next_id++;
  size_t i = (size_t)(id % RING);
  if (slots[i].id) {
    fprintf(stderr, "driver: call %lld got no response while %d newer ones did\n", slots[i].id, RING);
    exit(1);
  }
  int n = snprintf(line, sizeof line,
                   "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
                   "\"arguments\":{\"text\":\"hello\",\"n\":%lld}}}\n",
                   id, tool, seq_n++);
  out_append(line, (size_t)n);
  slots[i].id = id;
  slots[i].sent = now_s();
  nslots++;
}

static void record(double ms) {
  if (nlat == latcap) {
    latcap = latcap ? latcap * 2 : 65536;
    lat = realloc(lat, latcap * sizeof *lat);
    if (!lat) {
      fprintf(stderr, "driver: out of memory\n");
      exit(1);
    }
  }
  lat[nlat++] = ms;
}

/* ---------- reading responses ---------- */

/* What a response line says, read without building a tree: the top-level id (an integer; -1
 * when absent or not an integer), whether there is a top-level "result" / "error", and
 * result.isError. Strings are skipped with their escapes; depth is counted outside them. */
typedef struct resp {
  long long id;
  bool has_result, has_error, is_error, has_method;
} resp;

static bool key_is(const char *k, size_t n, const char *want) { return strlen(want) == n && memcmp(k, want, n) == 0; }

static resp scan_line(const char *p, size_t n) {
  resp r = {.id = -1};
  int depth = 0;
  const char *key = NULL;
  size_t keylen = 0;
  int key_depth = -1;
  bool in_result_obj = false;
  int result_depth = -1;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '"') {
      size_t j = i + 1;
      while (j < n && p[j] != '"') j += p[j] == '\\' ? 2 : 1;
      /* a key is a string followed (after spaces) by ':' */
      size_t k = j + 1;
      while (k < n && (p[k] == ' ' || p[k] == '\t')) k++;
      if (k < n && p[k] == ':') {
        key = p + i + 1;
        keylen = j - i - 1;
        key_depth = depth;
        if (depth == 1 && key_is(key, keylen, "result")) r.has_result = true;
        if (depth == 1 && key_is(key, keylen, "error")) r.has_error = true;
        if (depth == 1 && key_is(key, keylen, "method")) r.has_method = true;
        i = k; /* at the ':' */
        /* the value follows: an integer id, or isError inside result */
        size_t v = k + 1;
        while (v < n && (p[v] == ' ' || p[v] == '\t')) v++;
        if (depth == 1 && key_is(key, keylen, "id") && v < n && (p[v] == '-' || (p[v] >= '0' && p[v] <= '9')))
          r.id = strtoll(p + v, NULL, 10);
        if (in_result_obj && depth == result_depth && key_is(key, keylen, "isError") && v + 4 <= n &&
            memcmp(p + v, "true", 4) == 0)
          r.is_error = true;
        if (depth == 1 && key_is(key, keylen, "result")) {
          in_result_obj = true;
          result_depth = 2;
        }
      } else {
        i = j;
      }
      continue;
    }
    if (c == '{' || c == '[') depth++;
    else if (c == '}' || c == ']') {
      depth--;
      if (in_result_obj && depth < result_depth) in_result_obj = false;
    }
  }
  (void)key_depth;
  return r;
}

static char *rbuf;
static size_t rlen;
static long long bad;
static char first_bad[300];

/* Handles one response line; returns true when it completed a call in flight. */
static bool on_line(const char *p, size_t n, double t) {
  resp r = scan_line(p, n);
  if (r.has_method) return false; /* a notification or a server request: not ours to count */
  if (r.id > 0 && slots[r.id % RING].id == r.id) {
    slot *sl = &slots[r.id % RING];
    sl->id = 0;
    nslots--;
    if (!r.has_result || r.has_error || r.is_error) {
      if (!bad++) snprintf(first_bad, sizeof first_bad, "%.*s", (int)(n < 280 ? n : 280), p);
    }
    record((t - sl->sent) * 1000.0);
    return true;
  }
  if (!bad++) snprintf(first_bad, sizeof first_bad, "unexpected: %.*s", (int)(n < 260 ? n : 260), p);
  return false;
}

/* Reads what is there (waiting up to timeout_ms); calls on_line per complete line. Returns the
 * number of calls completed; -1 at end of input. */
static int pump(int timeout_ms) {
  struct pollfd pf = {.fd = from_child, .events = POLLIN};
  int pr = poll(&pf, 1, timeout_ms);
  if (pr < 0 && errno != EINTR) {
    perror("driver: poll");
    exit(1);
  }
  if (pr <= 0) return 0;
  ssize_t n = read(from_child, rbuf + rlen, RBUF - rlen);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return 0;
    perror("driver: read");
    exit(1);
  }
  if (n == 0) return -1;
  double t = now_s();
  rlen += (size_t)n;
  int done = 0;
  size_t start = 0;
  for (;;) {
    char *nl = memchr(rbuf + start, '\n', rlen - start);
    if (!nl) break;
    size_t len = (size_t)(nl - (rbuf + start));
    if (len > 0 && on_line(rbuf + start, len, t)) done++;
    start += len + 1;
  }
  if (start > 0) {
    memmove(rbuf, rbuf + start, rlen - start);
    rlen -= start;
  }
  if (rlen == RBUF) {
    fprintf(stderr, "driver: a response line longer than %u bytes\n", RBUF);
    exit(1);
  }
  return done;
}

/* ---------- phases ---------- */

typedef struct phase {
  long long calls;
  double seconds, calls_per_s, p50_ms, p99_ms, server_cpu_s, driver_cpu_s;
} phase;

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double p) {
  if (!nlat) return 0;
  size_t i = (size_t)(p / 100.0 * (double)nlat + 0.999999);
  if (i < 1) i = 1;
  if (i > nlat) i = nlat;
  return lat[i - 1];
}

/* Runs one phase: `inflight` calls outstanding until `seconds` have passed, or — when max_calls
 * > 0 — until max_calls calls were made (for instruction counts under callgrind). */
static phase run_phase(int inflight, double seconds, long long max_calls) {
  phase ph = {0};
  nlat = 0;
  long long made = 0;
  double c0 = child_cpu_s(), d0 = self_cpu_s(), t0 = now_s(), end = t0 + seconds, last = t0;
  for (int i = 0; i < inflight && (!max_calls || made < max_calls); i++, made++) send_call();
  out_flush();
  while (nslots > 0) {
    int got = pump(100);
    double t = now_s();
    if (got < 0) {
      fprintf(stderr, "driver: the server closed its output with %d calls in flight\n", nslots);
      exit(1);
    }
    if (got > 0) last = t;
    else if (t - last > STUCK_S) {
      fprintf(stderr, "driver: no response for %.0f s with %d calls in flight\n", STUCK_S, nslots);
      exit(1);
    }
    if (max_calls ? made < max_calls : t < end) {
      for (int i = 0; i < got && (!max_calls || made < max_calls); i++, made++) send_call();
      if (wlen) out_flush();
    }
  }
  double t1 = now_s();
  ph.calls = (long long)nlat;
  ph.seconds = t1 - t0;
  ph.calls_per_s = ph.seconds > 0 ? (double)nlat / ph.seconds : 0;
  ph.server_cpu_s = child_cpu_s() - c0;
  ph.driver_cpu_s = self_cpu_s() - d0;
  qsort(lat, nlat, sizeof *lat, cmp_d);
  ph.p50_ms = pct(50);
  ph.p99_ms = pct(99);
  return ph;
}

static void print_phase(const char *name, const phase *ph, bool comma) {
  double n = ph->calls ? (double)ph->calls : 1;
  printf("\"%s\":{\"calls\":%lld,\"seconds\":%.3f,\"calls_per_s\":%.0f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,"
         "\"server_cpu_s\":%.2f,\"server_cpu_us_per_call\":%.2f,\"driver_cpu_us_per_call\":%.2f}%s",
         name, ph->calls, ph->seconds, ph->calls_per_s, ph->p50_ms, ph->p99_ms, ph->server_cpu_s,
         ph->server_cpu_s * 1e6 / n, ph->driver_cpu_s * 1e6 / n, comma ? "," : "");
}

/* ---------- start-up ---------- */

static void spawn(char **argv) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    perror("driver: pipe");
    exit(1);
  }
  child = fork();
  if (child < 0) {
    perror("driver: fork");
    exit(1);
  }
  if (child == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    execvp(argv[0], argv);
    fprintf(stderr, "driver: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  to_child = in[1];
  from_child = out[0];
}

/* Sends one request and waits for its response (before the measured phases). */
static void request(long long id, const char *method, const char *params) {
  char line[1024];
  int n = snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"%s\",\"params\":%s}\n", id, method,
                   params);
  out_append(line, (size_t)n);
  out_flush();
  double t0 = now_s();
  for (;;) {
    struct pollfd pf = {.fd = from_child, .events = POLLIN};
    if (poll(&pf, 1, 1000) > 0) {
      ssize_t r = read(from_child, rbuf + rlen, RBUF - rlen);
      if (r <= 0) {
        fprintf(stderr, "driver: the server closed its output during %s\n", method);
        exit(1);
      }
      rlen += (size_t)r;
      char *nl;
      while ((nl = memchr(rbuf, '\n', rlen))) {
        size_t len = (size_t)(nl - rbuf);
        resp rp = scan_line(rbuf, len);
        bool mine = rp.id == id && !rp.has_method;
        if (mine && !rp.has_result) {
          fprintf(stderr, "driver: %s failed: %.*s\n", method, (int)(len < 300 ? len : 300), rbuf);
          exit(1);
        }
        memmove(rbuf, nl + 1, rlen - len - 1);
        rlen -= len + 1;
        if (mine) return;
      }
    }
    if (now_s() - t0 > STUCK_S) {
      fprintf(stderr, "driver: no answer to %s\n", method);
      exit(1);
    }
  }
}

static void usage(void) {
  fprintf(stderr, "usage: mcp_bench_driver [--inflight N] [--seconds S] [--warmup S] [--seq-seconds S] [--tool NAME] "
                  "[--calls N] [--label TEXT] -- COMMAND [ARG...]\n");
  exit(2);
}

int main(int argc, char **argv) {
  int inflight = 32;
  double seconds = 3, warmup = 1.5, seq_seconds = 3;
  const char *label = "";
  long long max_calls = 0;
  int i = 1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    }
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--inflight") == 0) inflight = atoi(argv[++i]);
    else if (strcmp(argv[i], "--seconds") == 0) seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "--warmup") == 0) warmup = atof(argv[++i]);
    else if (strcmp(argv[i], "--seq-seconds") == 0) seq_seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "--tool") == 0) tool = argv[++i];
    else if (strcmp(argv[i], "--calls") == 0) max_calls = atoll(argv[++i]);
    else if (strcmp(argv[i], "--label") == 0) label = argv[++i];
    else usage();
  }
  if (i >= argc || inflight < 1 || inflight > MAX_INFLIGHT || seconds <= 0 || strlen(tool) > 128 ||
      strpbrk(tool, "\"\\"))
    usage();
  signal(SIGPIPE, SIG_IGN);
  rbuf = malloc(RBUF);
  if (!rbuf) return 1;
  spawn(argv + i);

  request(1000000000LL, "initialize",
          "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"mcp_bench_driver\",\"version\":\"1.0.0\"}}");
  static const char initialized[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
  out_append(initialized, sizeof initialized - 1);
  out_flush();

  if (warmup > 0) (void)run_phase(inflight, warmup, 0);
  phase seq = {0};
  if (seq_seconds > 0) seq = run_phase(1, seq_seconds, 0);
  phase conc = run_phase(inflight, seconds, max_calls);
  long hwm = child_status_kb("VmHWM"), rss = child_status_kb("VmRSS");

  /* end of input: the server finishes and exits; its rusage covers the whole run */
  close(to_child);
  int status = 0;
  struct rusage ru = {0};
  double t0 = now_s();
  pid_t w;
  while ((w = wait4(child, &status, WNOHANG, &ru)) == 0 && now_s() - t0 < 10) usleep(10000);
  if (w == 0) {
    kill(child, SIGKILL);
    w = wait4(child, &status, 0, &ru);
  }
  bool exited_ok = w == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;

  printf("{\"label\":\"%s\",\"tool\":\"%s\",\"inflight\":%d,", label, tool, inflight);
  if (seq_seconds > 0) print_phase("sequential", &seq, true);
  print_phase("concurrent", &conc, true);
  printf("\"hwm_kb\":%ld,\"rss_kb\":%ld,\"ru_maxrss_kb\":%ld,\"server_total_cpu_s\":%.3f,\"bad_responses\":%lld,"
         "\"server_exit_ok\":%s}\n",
         hwm, rss, ru.ru_maxrss,
         (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
         bad, exited_ok ? "true" : "false");
  if (bad) fprintf(stderr, "driver: %lld bad responses; the first: %s\n", bad, first_bad);
  return bad || !exited_ok ? 1 : 0;
}
