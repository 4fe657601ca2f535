/* test_autonat_common.c — what AutoNAT v1 and v2 share on the host (p2p/host/autonat_common.h):
 * the table of servers asked (lookup, free slots first, then the least recently asked one not
 * in flight, full of in-flight ones), the server's per-minute rate limit (per peer, in all,
 * expiry) and the close/pending count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "p2p/host/autonat_common.h"

static void test_peer_slots(void **st) {
  (void)st;
  static autonat_peers t;
  memset(&t, 0, sizeof t);
  assert_null(autonat_peers_slot(&t, "A", false));
  autonat_peer *a = autonat_peers_slot(&t, "A", true);
  assert_non_null(a);
  assert_string_equal(a->id, "A");
  assert_ptr_equal(autonat_peers_slot(&t, "A", false), a);
  assert_ptr_equal(autonat_peers_slot(&t, "A", true), a);
  autonat_peers_asked(a, 100);
  assert_true(a->asking);
  assert_int_equal(a->last_ms, 100);
  /* fill the table: slot i asked at 1000 + i; A (asked at 100) stays in flight */
  char id[16];
  for (int i = 1; i < AUTONAT_PEER_SLOTS; i++) {
    snprintf(id, sizeof id, "P%d", i);
    autonat_peer *p = autonat_peers_slot(&t, id, true);
    assert_non_null(p);
    assert_ptr_not_equal(p, a);
    autonat_peers_asked(p, 1000 + i);
    autonat_peers_done(&t, id);
  }
  /* full: a new one takes the least recently asked slot not in flight (P1, not A) */
  autonat_peer *n = autonat_peers_slot(&t, "new", true);
  assert_non_null(n);
  assert_ptr_not_equal(n, a);
  assert_int_equal(n->last_ms, 0);
  assert_false(n->asking);
  assert_null(autonat_peers_slot(&t, "P1", false));
  assert_non_null(autonat_peers_slot(&t, "P2", false));
  /* every slot in flight: no slot */
  for (size_t i = 0; i < AUTONAT_PEER_SLOTS; i++) t.slot[i].asking = true;
  assert_null(autonat_peers_slot(&t, "other", true));
  autonat_peers_done(&t, "P2");
  assert_false(autonat_peers_slot(&t, "P2", false)->asking);
  autonat_peers_forget_times(&t);
  for (size_t i = 0; i < AUTONAT_PEER_SLOTS; i++) assert_int_equal(t.slot[i].last_ms, 0);
}

static void test_rate(void **st) {
  (void)st;
  static autonat_rate rl;
  memset(&rl, 0, sizeof rl);
  int64_t now = 1000000;
  for (int i = 0; i < 3; i++) {
    autonat_rate_slot *s = autonat_rate_room(&rl, "A", now, 30, 3);
    assert_non_null(s);
    autonat_rate_take(s, "A", now);
  }
  assert_null(autonat_rate_room(&rl, "A", now, 30, 3)); /* per peer */
  assert_non_null(autonat_rate_room(&rl, "B", now, 30, 3));
  assert_null(autonat_rate_room(&rl, "B", now, 3, 3)); /* in all */
  /* a room not taken counts nothing */
  assert_non_null(autonat_rate_room(&rl, "B", now, 4, 3));
  assert_non_null(autonat_rate_room(&rl, "B", now, 4, 3));
  /* a minute later the old ones are gone */
  assert_null(autonat_rate_room(&rl, "A", now + 60000, 30, 3));
  assert_non_null(autonat_rate_room(&rl, "A", now + 60001, 30, 3));
  /* every slot taken: no room whatever the limits */
  for (int i = 0; i < AUTONAT_RATE_SLOTS; i++) {
    char id[16];
    snprintf(id, sizeof id, "P%d", i);
    autonat_rate_slot *s = autonat_rate_room(&rl, id, now + 70000, 1000, 1000);
    assert_non_null(s);
    autonat_rate_take(s, id, now + 70000);
  }
  assert_null(autonat_rate_room(&rl, "Z", now + 70000, 1000, 1000));
}

static int closed;
static void on_closed(void *ud) { closed += *(int *)ud; }

static void test_life(void **st) {
  (void)st;
  autonat_life l = {0};
  int one = 1;
  l.pending = 1; /* a request alive */
  assert_false(autonat_life_unpend(&l));
  l.pending = 1;
  assert_true(autonat_life_close(&l, on_closed, &one));
  assert_false(autonat_life_close(&l, on_closed, &one)); /* once */
  assert_int_equal(l.pending, 2);
  assert_false(autonat_life_unpend(&l)); /* the hold */
  assert_true(autonat_life_unpend(&l));  /* the last request: finalize */
  assert_ptr_equal(l.close_done, on_closed);
  l.close_done(l.close_ud);
  assert_int_equal(closed, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_peer_slots),
      cmocka_unit_test(test_rate),
      cmocka_unit_test(test_life),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
