/* p2pfix.c — see p2pfix.h. */
#include "p2pfix.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "wait.h"
#include "util/clock.h"

int ts_p2p_setup(ts_p2p *f, int n, const char *tag) {
  if (n < 0 || n > TS_P2P_MAX_HOSTS) return -1;
  memset(f, 0, sizeof *f);
  f->n = n;
  f->close_ms = TS_DEADLINE_MS;
  for (int i = 0; i < n; i++) ts_tmpdir_make(f->dirs[i], tag);
  return uv_loop_init(&f->loop) == 0 ? 0 : -1;
}

static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void on_closed(p2p_host *h, void *ud) {
  (void)h;
  (*(int *)ud)--;
}

/* Closes the hosts together, clearing their slots; turns the loop until they have closed or
 * close_ms pass. Returns how many have not. */
static int close_hosts(ts_p2p *f, p2p_host *const *hs, int n) {
  int left = 0;
  for (int k = 0; k < n; k++) {
    if (!hs[k]) continue;
    for (int i = 0; i < f->n; i++)
      if (f->hosts[i] == hs[k]) f->hosts[i] = NULL;
    left++;
    p2p_host_close(hs[k], on_closed, &left);
  }
  int64_t end = clock_mono_ms() + f->close_ms;
  while (left > 0 && clock_mono_ms() < end) uv_run(&f->loop, UV_RUN_ONCE);
  return left;
}

void ts_p2p_close(ts_p2p *f, p2p_host *const *hs, int n) { assert_int_equal(close_hosts(f, hs, n), 0); }

int ts_p2p_teardown(ts_p2p *f) {
  p2p_host *hs[TS_P2P_MAX_HOSTS];
  memcpy(hs, f->hosts, sizeof hs);
  int left = close_hosts(f, hs, f->n);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  uv_walk(&f->loop, close_any, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&f->loop);
  for (int i = 0; i < f->n; i++)
    if (f->dirs[i][0] && ts_tmpdir_remove(f->dirs[i]) != 0) fprintf(stderr, "cleanup of %s failed\n", f->dirs[i]);
  return left == 0 ? rc : -1;
}

bool ts_p2p_run_until(ts_p2p *f, const bool *flag, int ms) {
  int64_t end = clock_mono_ms() + ms;
  while (!*flag && clock_mono_ms() < end) uv_run(&f->loop, UV_RUN_ONCE);
  return *flag;
}

bool ts_p2p_wait_for(ts_p2p *f, bool (*pred)(void *), void *arg, int ms) {
  int64_t end = clock_mono_ms() + ms;
  while (!pred(arg) && clock_mono_ms() < end) uv_run(&f->loop, UV_RUN_ONCE);
  return pred(arg);
}

p2p_host *ts_p2p_host(ts_p2p *f, int i, const p2p_host_config *cfg) {
  assert_true(i >= 0 && i < f->n);
  p2p_host_config c = {0};
  if (cfg) c = *cfg;
  c.state_dir = f->dirs[i];
  c.no_peerstore_file = true;
  p2p_host *h = NULL;
  assert_int_equal(p2p_host_new(&f->loop, &c, &h), 0);
  assert_int_equal(p2p_host_listen(h, "/ip4/127.0.0.1/tcp/0"), 0);
  f->hosts[i] = h;
  return h;
}

void ts_p2p_full_addr(p2p_host *h, char *out, size_t cap) {
  const char *a[4];
  assert_true(p2p_host_listen_addrs(h, a, 4) >= 1);
  snprintf(out, cap, "%s/p2p/%s", a[0], p2p_host_peer_id(h));
}

void ts_ping_cb(int err, uint64_t rtt, void *ud) {
  (void)rtt;
  ts_ping *r = ud;
  r->done = true;
  r->err = err;
}

int ts_p2p_ping(ts_p2p *f, p2p_host *from, const char *addr, int ms) {
  ts_ping pr = {0};
  assert_int_equal(p2p_host_ping(from, addr, ts_ping_cb, &pr), 0);
  assert_true(ts_p2p_run_until(f, &pr.done, ms));
  return pr.err;
}

void ts_p2p_connect(ts_p2p *f, p2p_host *from, p2p_host *to, int ms) {
  char a[512];
  ts_p2p_full_addr(to, a, sizeof a);
  assert_int_equal(ts_p2p_ping(f, from, a, ms), 0);
}
