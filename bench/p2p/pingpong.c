/* pingpong.c — the floor under bench/p2p/call.sh's latency rows: one message in flight between two
 * processes, nothing but the kernel — no crypto, no framing, no JSON — over TCP loopback (what
 * /mcp+p2p/1.0.0 runs on between hosts), over a Unix-domain stream socket pair (what it runs on
 * with a /unix/ listener, same-host peers) and over pipes (what stdio runs on), each side waiting the way a libuv
 * loop does (epoll_wait, then a non-blocking read, then send/write: three syscalls a side per
 * round trip, as strace shows for peermcp). Message sizes default to the remote echo's (144-byte
 * request, 304-byte reply as Noise frames).
 *
 *   pingpong [--n N] [--req BYTES] [--rep BYTES]
 * prints {"tcp":{"p50_us":…,"p99_us":…,"per_s":…},"unix":{…},"pipe":{…}} */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Waits for `want` bytes on rfd (epoll, then non-blocking reads). */
static int get(int ep, int rfd, char *buf, size_t want) {
  size_t have = 0;
  while (have < want) {
    struct epoll_event ev;
    if (epoll_wait(ep, &ev, 1, 10000) != 1) return -1;
    for (;;) {
      ssize_t r = read(rfd, buf + have, 65536 - have);
      if (r > 0) {
        have += (size_t)r;
        if (have >= want) break;
        continue;
      }
      if (r < 0 && errno == EAGAIN) break;
      return -1;
    }
  }
  return 0;
}

static int put(int wfd, const char *buf, size_t n, int is_sock) {
  ssize_t w = is_sock ? send(wfd, buf, n, MSG_NOSIGNAL) : write(wfd, buf, n);
  return w == (ssize_t)n ? 0 : -1;
}

static int side(int rfd, int wfd, int is_sock, long n, size_t req, size_t rep, int client, int64_t *lat) {
  fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, rfd, &ev) != 0) return -1;
  static char buf[65536], msg[65536];
  memset(msg, 'x', sizeof msg);
  for (long i = 0; i < n; i++) {
    if (client) {
      int64_t t0 = now_ns();
      if (put(wfd, msg, req, is_sock) || get(ep, rfd, buf, rep)) return -1;
      lat[i] = now_ns() - t0;
    } else {
      if (get(ep, rfd, buf, req) || put(wfd, msg, rep, is_sock)) return -1;
    }
  }
  close(ep);
  return 0;
}

static void report(const char *name, int64_t *lat, long n, int64_t total_ns, int last) {
  qsort(lat, (size_t)n, sizeof *lat, cmp);
  printf("\"%s\":{\"p50_us\":%.1f,\"p99_us\":%.1f,\"per_s\":%.0f}%s", name, lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3,
         total_ns > 0 ? n * 1e9 / (double)total_ns : 0.0, last ? "" : ",");
}

int main(int argc, char **argv) {
  long n = 20000;
  size_t req = 144, rep = 304;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--n")) n = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--req")) req = (size_t)atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--rep")) rep = (size_t)atol(argv[i + 1]);
  }
  if (n < 1 || req < 1 || rep < 1 || req > 65536 || rep > 65536) return 2;
  int64_t *lat = calloc((size_t)n, sizeof *lat);
  if (!lat) return 1;
  printf("{");
  /* TCP loopback, Nagle off (as peermcp's connections) */
  int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1) || getsockname(ls, (struct sockaddr *)&a, &al))
    return 1;
  pid_t pid = fork();
  if (pid == 0) {
    int s = accept(ls, NULL, NULL);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    _exit(side(s, s, 1, n, req, rep, 0, NULL) ? 1 : 0);
  }
  int c = socket(AF_INET, SOCK_STREAM, 0);
  if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a)) return 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int64_t t0 = now_ns();
  if (side(c, c, 1, n, req, rep, 1, lat)) return 1;
  int64_t tcp_ns = now_ns() - t0;
  close(c);
  close(ls);
  waitpid(pid, NULL, 0);
  report("tcp", lat, n, tcp_ns, 0);
  /* a Unix-domain stream socket pair (a /unix/ connection's kernel path) */
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp)) return 1;
  pid = fork();
  if (pid == 0) {
    close(sp[0]);
    _exit(side(sp[1], sp[1], 1, n, req, rep, 0, NULL) ? 1 : 0);
  }
  close(sp[1]);
  t0 = now_ns();
  if (side(sp[0], sp[0], 1, n, req, rep, 1, lat)) return 1;
  int64_t unix_ns = now_ns() - t0;
  close(sp[0]);
  waitpid(pid, NULL, 0);
  report("unix", lat, n, unix_ns, 0);
  /* pipes */
  int p1[2], p2[2];
  if (pipe(p1) || pipe(p2)) return 1;
  pid = fork();
  if (pid == 0) {
    close(p1[1]);
    close(p2[0]);
    _exit(side(p1[0], p2[1], 0, n, req, rep, 0, NULL) ? 1 : 0);
  }
  close(p1[0]);
  close(p2[1]);
  t0 = now_ns();
  if (side(p2[0], p1[1], 0, n, req, rep, 1, lat)) return 1;
  int64_t pipe_ns = now_ns() - t0;
  close(p1[1]);
  close(p2[0]);
  waitpid(pid, NULL, 0);
  report("pipe", lat, n, pipe_ns, 1);
  printf("}\n");
  free(lat);
  return 0;
}
