/* p2pfix.h — p2p hosts on one libuv loop over 127.0.0.1 for unit tests (tests/p2p/test_nat.c,
 * tests/p2p/test_host.c): state directories, the loop, hosts made in numbered
 * slots and closed at teardown, waits with deadlines, ping results.
 *
 *   static ts_p2p fx;
 *   static int setup(void **s) { return ts_p2p_setup(&fx, 4, "test-nat"); }
 *   static int teardown(void **s) { return ts_p2p_teardown(&fx); }
 *   p2p_host *a = ts_p2p_host(&fx, 0, NULL);
 *   ts_ping pr = {0};
 *   assert_int_equal(p2p_host_ping(a, addr, ts_ping_cb, &pr), 0);
 *   assert_true(ts_p2p_run_until(&fx, &pr.done, 20000));
 *
 * Ownership: the fixture owns the hosts registered in its slots (closed by ts_p2p_teardown);
 * a host made otherwise is the test's. Test-only; the loop thread only. */
#ifndef PEERMCP_TESTS_SUPPORT_P2PFIX_H
#define PEERMCP_TESTS_SUPPORT_P2PFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "tmpdir.h"

#define TS_P2P_MAX_HOSTS 8

typedef struct ts_p2p {
  uv_loop_t loop;
  char dirs[TS_P2P_MAX_HOSTS][TS_TMPDIR_MAX]; /* one state directory per slot */
  p2p_host *hosts[TS_P2P_MAX_HOSTS];          /* closed at teardown */
  int n;
  int close_ms;                               /* teardown's wait for the hosts (TS_DEADLINE_MS) */
} ts_p2p;

/* n (≤ TS_P2P_MAX_HOSTS) state directories "peermcp-<tag>-…" and the loop: a cmocka setup's
 * body. 0, or -1. */
int ts_p2p_setup(ts_p2p *f, int n, const char *tag);
/* Closes the hosts in the slots, turns the loop until they have (close_ms at most), closes
 * every handle left and the loop, removes the directories. 0; -1 when a host did not close in
 * time; else uv_loop_close's error. */
int ts_p2p_teardown(ts_p2p *f);

/* Turns the loop until *flag, or ms pass; returns *flag. */
bool ts_p2p_run_until(ts_p2p *f, const bool *flag, int ms);
/* Turns the loop until pred(arg), or ms pass; returns pred(arg). */
bool ts_p2p_wait_for(ts_p2p *f, bool (*pred)(void *), void *arg, int ms);

/* A host in slot i: cfg (NULL: zeroed) with state_dir = the slot's directory and no peerstore
 * file, listening on /ip4/127.0.0.1/tcp/0; registered for teardown. Fails the test if it
 * cannot. */
p2p_host *ts_p2p_host(ts_p2p *f, int i, const p2p_host_config *cfg);
/* "<first listen address>/p2p/<its PeerId>". */
void ts_p2p_full_addr(p2p_host *h, char *out, size_t cap);

/* Closes the n hosts in hs (NULLs skipped; a slot holding one is cleared) together and turns
 * the loop until all have closed; fails the test if they have not within close_ms. */
void ts_p2p_close(ts_p2p *f, p2p_host *const *hs, int n);

/* A ping's outcome (p2p_host_ping's callback: ts_ping_cb with a ts_ping *). */
typedef struct ts_ping {
  bool done;
  int err;
} ts_ping;
void ts_ping_cb(int err, uint64_t rtt, void *ud);
/* `from` pings addr (a multiaddr or a bare PeerId); fails the test unless the ping starts and
 * ends within ms. Returns the ping's error (0: a connection). */
int ts_p2p_ping(ts_p2p *f, p2p_host *from, const char *addr, int ms);
/* `from` pings `to` at its full address and must succeed within ms: a connection, identified
 * soon after. */
void ts_p2p_connect(ts_p2p *f, p2p_host *from, p2p_host *to, int ms);

#endif
