/* test_nat.c — circuit relay v2 (reservations, dialing through a relay, the relay's limits),
 * AutoNAT and DCUtR between hosts on one libuv loop over 127.0.0.1 (p2p/host/nat.h). Private
 * addresses are allowed here (allow_private): every address is a loopback one. The same
 * protocols against js-libp2p, behind real NATs in network namespaces: tests/suites/47-nat.sh. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "p2p/core/envelope.h"
#include "p2p/core/identity.h"
#include "p2p/host/nat.h"
#include "p2p/host/svc_relay.h"
#include "p2p/proto/autonat2.h"
#include "p2p/proto/identify.h"
#include "p2p/proto/relay.h"
#include "util/clock.h"
#include "util/log.h"

#include "support/p2pfix.h"

#define WAIT_MS 20000
#define MAXH 6

static ts_p2p fx; /* the loop, MAXH state directories and host slots (tests/support/p2pfix.h) */

static int setup(void **state) {
  (void)state;
  /* Every log line is built (level debug) even when nobody reads it: a field list that does
   * not match its format crashes here, not in production (the relay's "circuit limit reached"
   * line did). NAT_TEST_LOG=1 shows them on stderr. */
  log_set_level(LOG_DEBUG);
  if (!getenv("NAT_TEST_LOG")) {
    static int devnull = -1;
    if (devnull < 0) devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (devnull >= 0) log_set_fd(devnull);
  }
  if (ts_p2p_setup(&fx, MAXH, "test-nat") != 0) return -1;
  fx.close_ms = WAIT_MS;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return ts_p2p_teardown(&fx);
}

static bool run_until(const bool *flag, int ms) { return ts_p2p_run_until(&fx, flag, ms); }

/* Runs the loop until pred(arg) or ms. */
static bool wait_for(bool (*pred)(void *), void *arg, int ms) { return ts_p2p_wait_for(&fx, pred, arg, ms); }

/* A host on 127.0.0.1 in slot i with the NAT part configured by `nc` (NULL: none). */
static p2p_host *make_host(int i, const p2p_nat_config *nc, p2p_nat **out) {
  p2p_host_config c = {0};
  c.reuseport = nc && nc->holepunch;
  p2p_host *h = ts_p2p_host(&fx, i, &c);
  if (nc) {
    p2p_nat *n = NULL;
    assert_int_equal(p2p_nat_new(h, &fx.loop, nc, &n), 0);
    assert_int_equal(p2p_nat_add_to_host(n), 0);
    if (out) *out = n;
  }
  return h;
}

/* A relay R in slot 0 (the hop service with hc) and B in slot 1 reserving on it: b's relay
 * client, STOP and reservations are turned on and its `relays` set to R (kept in t->relays,
 * which must outlive the hosts: the test's frame). Nothing waits here. */
typedef struct relay_pair {
  p2p_host *r, *b;
  p2p_nat *rn, *bn;
  p2p_nat_config bcfg; /* B's configuration: for more hosts like B */
  char raddr[512];
  const char *relays[1];
} relay_pair;
static void relay_pair_make(relay_pair *t, const p2p_relay_hop_config *hc, p2p_nat_config b) {
  p2p_nat_config rc = {.hop = true, .hop_cfg = *hc, .allow_private = true};
  t->r = make_host(0, &rc, &t->rn);
  ts_p2p_full_addr(t->r, t->raddr, sizeof t->raddr);
  t->relays[0] = t->raddr;
  b.relay_client = b.relay_accept = b.relay_reserve = b.allow_private = true;
  b.relays = t->relays;
  b.n_relays = 1;
  t->bcfg = b;
  t->b = make_host(1, &t->bcfg, &t->bn);
}

typedef struct conn_log {
  int relayed_opened, relayed_closed, direct_opened;
  bool last_inbound;
  int reach_changes;
  p2p_reachability reach;
  int addrs_added, addrs_removed;
  int relayed_close_err; /* the last relayed connection's CONN_CLOSED err */
} conn_log;
static void log_ev(p2p_host *h, const p2p_event *ev, void *ud) {
  (void)h;
  conn_log *l = ud;
  if (ev->type == P2P_EV_CONN_OPENED) {
    if (ev->relayed) {
      l->relayed_opened++;
      l->last_inbound = ev->inbound;
    } else {
      l->direct_opened++;
    }
  } else if (ev->type == P2P_EV_CONN_CLOSED && ev->relayed) {
    l->relayed_closed++;
    l->relayed_close_err = ev->err;
  } else if (ev->type == P2P_EV_REACHABILITY_CHANGED) {
    l->reach_changes++;
    l->reach = ev->reachability;
  } else if (ev->type == P2P_EV_ADDRS_CHANGED) {
    if (ev->removed) l->addrs_removed++;
    else l->addrs_added++;
  }
}

/* A reservation is active when one of h's announced addresses is a /p2p-circuit one. */
static bool has_circuit_addr(void *arg) {
  p2p_host *h = arg;
  const char *a[32];
  size_t n = p2p_host_announced_addrs(h, a, 32);
  for (size_t i = 0; i < n && i < 32; i++)
    if (strstr(a[i], "/p2p-circuit")) return true;
  return false;
}

static void circuit_to(p2p_host *relay, p2p_host *target, char *out, size_t cap) {
  char r[512];
  ts_p2p_full_addr(relay, r, sizeof r);
  snprintf(out, cap, "%s/p2p-circuit/p2p/%s", r, p2p_host_peer_id(target));
}

static json_t *nat_status(p2p_nat *n) { return p2p_nat_status_json(n); }

static const p2p_relay_hop_config k_hop = {.max_reservations = 8,
                                           .max_reservations_per_ip = 8,
                                           .reservation_ttl_s = 3600,
                                           .max_circuits = 16,
                                           .max_circuits_per_peer = 4,
                                           .limit_duration_s = 120,
                                           .limit_data = 1u << 20};

/* ---------------------------------------------------------------- relay */

/* B behind "NAT" reserves on R; A reaches B through R: ping, identify, both ends see a
 * relayed connection (A outbound, B inbound); B announces the circuit address; the voucher
 * R signed for B checks out. */
static void test_relay_reservation_and_dial_through_the_relay(void **state) {
  (void)state;
  relay_pair rp;
  relay_pair_make(&rp, &k_hop, (p2p_nat_config){0});
  p2p_host *r = rp.r, *b = rp.b;
  p2p_nat *bn = rp.bn;
  p2p_nat_config ac = {.relay_client = true, .allow_private = true};
  p2p_host *a = make_host(2, &ac, NULL);
  conn_log la = {0}, lb = {0};
  assert_int_equal(p2p_host_subscribe(a, P2P_EV_ALL, log_ev, &la), 0);
  assert_int_equal(p2p_host_subscribe(b, P2P_EV_ALL, log_ev, &lb), 0);

  assert_true(wait_for(has_circuit_addr, b, WAIT_MS));
  assert_true(lb.addrs_added >= 1);
  json_t *st = nat_status(bn);
  json_t *rsv = json_array_get(json_object_get(st, "reservations"), 0);
  assert_non_null(rsv);
  assert_string_equal(json_string_value(json_object_get(rsv, "state")), "active");
  assert_string_equal(json_string_value(json_object_get(rsv, "voucher")), "valid");
  assert_string_equal(json_string_value(json_object_get(rsv, "relay")), p2p_host_peer_id(r));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(rsv, "limit"), "data_bytes")), 1u << 20);
  json_decref(st);

  char target[1024];
  circuit_to(r, b, target, sizeof target);
  ts_ping pr = {0};
  assert_int_equal(p2p_host_ping(a, target, ts_ping_cb, &pr), 0);
  assert_true(run_until(&pr.done, WAIT_MS));
  assert_int_equal(pr.err, 0);
  assert_int_equal(la.relayed_opened, 1);
  assert_false(la.last_inbound);
  assert_int_equal(lb.relayed_opened, 1);
  assert_true(lb.last_inbound);
  /* by PeerId now: the relayed connection is reused */
  ts_ping pr2 = {0};
  assert_int_equal(p2p_host_ping(a, p2p_host_peer_id(b), ts_ping_cb, &pr2), 0);
  assert_true(run_until(&pr2.done, WAIT_MS));
  assert_int_equal(pr2.err, 0);
  p2p_conn_info ci[4];
  assert_int_equal(p2p_host_conns(a, p2p_host_peer_id(b), ci, 4), 1);
  assert_true(ci[0].relayed);
  assert_non_null(strstr(ci[0].remote_addr, "/p2p-circuit"));
  (void)p2p_host_unsubscribe(a, log_ev, &la);
  (void)p2p_host_unsubscribe(b, log_ev, &lb);
}

/* No reservation for the target: the relay answers NO_RESERVATION, the dial fails. A relay
 * address without a destination is not dialable. */
static void test_relay_dial_without_reservation_fails(void **state) {
  (void)state;
  p2p_nat_config rc = {.hop = true, .hop_cfg = k_hop, .allow_private = true};
  p2p_host *r = make_host(0, &rc, NULL);
  p2p_host *c = make_host(1, NULL, NULL);
  p2p_nat_config ac = {.relay_client = true, .allow_private = true};
  p2p_host *a = make_host(2, &ac, NULL);
  char target[1024];
  circuit_to(r, c, target, sizeof target);
  ts_ping pr = {0};
  assert_int_equal(p2p_host_ping(a, target, ts_ping_cb, &pr), 0);
  assert_true(run_until(&pr.done, WAIT_MS));
  assert_int_equal(pr.err, -EHOSTUNREACH);
  char raddr[512], bad[600];
  ts_p2p_full_addr(r, raddr, sizeof raddr);
  snprintf(bad, sizeof bad, "%s/p2p-circuit", raddr);
  ts_ping pr2 = {0};
  assert_int_equal(p2p_host_ping(a, bad, ts_ping_cb, &pr2), -EINVAL);
  /* without a relay client, circuits are not dialed at all */
  p2p_host *plain = make_host(3, NULL, NULL);
  assert_int_equal(p2p_host_ping(plain, target, ts_ping_cb, &pr2), -EAFNOSUPPORT);
}

typedef struct hop_counters {
  p2p_nat *n;
  const char *key;
  json_int_t at_least;
} hop_counters;
static bool hop_counter_at_least(void *arg) {
  hop_counters *h = arg;
  json_t *st = nat_status(h->n);
  json_int_t v = json_integer_value(json_object_get(json_object_get(json_object_get(st, "relay_hop"), "counters"), h->key));
  json_decref(st);
  return v >= h->at_least;
}

static bool refused_seen(void *arg) {
  json_t *st = nat_status(arg);
  json_t *rsv = json_array_get(json_object_get(st, "reservations"), 0);
  const char *e = json_string_value(json_object_get(rsv, "error"));
  bool yes = e && strstr(e, "RESERVATION_REFUSED");
  json_decref(st);
  return yes;
}

/* max_reservations = 1: B holds the one slot; C is refused (RESERVATION_REFUSED); B's
 * refresh (the reservation lasts 4 s, refreshed half-way) still succeeds. */
static void test_relay_refuses_reservations_past_the_cap_but_refreshes(void **state) {
  (void)state;
  p2p_relay_hop_config hc = k_hop;
  hc.max_reservations = 1;
  hc.reservation_ttl_s = 4;
  relay_pair rp;
  relay_pair_make(&rp, &hc, (p2p_nat_config){0});
  p2p_host *b = rp.b;
  p2p_nat *rn = rp.rn, *cn = NULL;
  assert_true(wait_for(has_circuit_addr, b, WAIT_MS));
  p2p_host *c = make_host(2, &rp.bcfg, &cn);
  hop_counters refused = {rn, "refused", 1};
  assert_true(wait_for(hop_counter_at_least, &refused, WAIT_MS));
  assert_true(wait_for(refused_seen, cn, WAIT_MS));
  assert_false(has_circuit_addr(c));
  hop_counters refreshed = {rn, "refreshes", 1};
  assert_true(wait_for(hop_counter_at_least, &refreshed, WAIT_MS));
  assert_true(has_circuit_addr(b));
}

/* A stream that writes `total` bytes, then reads until the stream ends. */
typedef struct pump {
  size_t total, sent;
  bool done;
  int err;
  p2p_stream *s;
} pump;
static uint8_t chunk[16384];
static void pump_fill(pump *p) {
  while (p->s && p->sent < p->total) {
    size_t n = p->total - p->sent < sizeof chunk ? p->total - p->sent : sizeof chunk;
    int rc = p2p_stream_write(p->s, chunk, n);
    if (rc < 0) return;
    p->sent += n;
    if (rc == 1) return;
  }
  if (p->s && p->sent == p->total) p2p_stream_close_write(p->s);
}
static void pump_writable(p2p_stream *s, void *ud) {
  (void)s;
  pump_fill(ud);
}
static void pump_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  pump *p = ud;
  p->s = NULL;
  p->done = true;
  p->err = err;
}
static void pump_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}
static const p2p_stream_callbacks pump_cbs = {.on_eof = pump_eof, .on_writable = pump_writable, .on_close = pump_close};
static void pump_opened(p2p_stream *s, int err, void *ud) {
  pump *p = ud;
  if (!s) {
    p->done = true;
    p->err = err;
    return;
  }
  p->s = s;
  p2p_stream_set_callbacks(s, &pump_cbs, p);
  pump_fill(p);
}
/* The sink on the other side counts what it got. */
static size_t sunk;
static bool sink_closed;
static void sink_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)s;
  (void)d;
  (void)ud;
  sunk += n;
}
static void sink_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}
static void sink_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  (void)ud;
  sink_closed = true;
}
static const p2p_stream_callbacks sink_cbs = {.on_data = sink_data, .on_eof = sink_eof, .on_close = sink_close};
static void sink_serve(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_set_callbacks(s, &sink_cbs, NULL);
}

static bool relayed_closed_once(void *arg) { return ((conn_log *)arg)->relayed_closed >= 1; }

/* limit_data = 64 KiB per direction: 1 MiB through the circuit is cut; the relay resets both
 * streams and both relayed connections end. (The clients ignore the limit here: what is tested
 * is the relay's own enforcement, for clients that do not keep to it.) */
static void test_relay_data_limit_cuts_the_circuit(void **state) {
  (void)state;
  p2p_relay_hop_config hc = k_hop;
  hc.limit_data = 64 * 1024;
  relay_pair rp;
  relay_pair_make(&rp, &hc, (p2p_nat_config){.relay_ignore_limits = true});
  p2p_host *r = rp.r, *b = rp.b;
  p2p_nat *rn = rp.rn;
  assert_int_equal(p2p_host_handle(b, "/test/sink/1.0.0", sink_serve, NULL), 0);
  p2p_nat_config ac = {.relay_client = true, .allow_private = true, .relay_ignore_limits = true};
  p2p_host *a = make_host(2, &ac, NULL);
  conn_log la = {0};
  assert_int_equal(p2p_host_subscribe(a, P2P_EV_ALL, log_ev, &la), 0);
  assert_true(wait_for(has_circuit_addr, b, WAIT_MS));
  char target[1024];
  circuit_to(r, b, target, sizeof target);
  sunk = 0;
  sink_closed = false;
  pump p = {.total = 1u << 20};
  assert_int_equal(p2p_host_open_stream(a, target, "/test/sink/1.0.0", pump_opened, &p), 0);
  assert_true(run_until(&p.done, WAIT_MS));
  assert_true(p.err < 0);
  assert_true(wait_for(relayed_closed_once, &la, WAIT_MS));
  assert_true(sunk < (1u << 20));
  hop_counters lim = {rn, "limited_data", 1};
  assert_true(hop_counter_at_least(&lim));
  (void)p2p_host_unsubscribe(a, log_ev, &la);
}

/* limit_duration = 1 s: an idle relayed connection is cut about a second after it opened (by
 * the relay: the clients ignore the limit here). */
static void test_relay_duration_limit_cuts_the_circuit(void **state) {
  (void)state;
  p2p_relay_hop_config hc = k_hop;
  hc.limit_duration_s = 1;
  relay_pair rp;
  relay_pair_make(&rp, &hc, (p2p_nat_config){.relay_ignore_limits = true});
  p2p_host *r = rp.r, *b = rp.b;
  p2p_nat *rn = rp.rn;
  p2p_nat_config ac = {.relay_client = true, .allow_private = true, .relay_ignore_limits = true};
  p2p_host *a = make_host(2, &ac, NULL);
  conn_log la = {0};
  assert_int_equal(p2p_host_subscribe(a, P2P_EV_ALL, log_ev, &la), 0);
  assert_true(wait_for(has_circuit_addr, b, WAIT_MS));
  char target[1024];
  circuit_to(r, b, target, sizeof target);
  ts_ping pr = {0};
  int64_t t0 = clock_mono_ms();
  assert_int_equal(p2p_host_ping(a, target, ts_ping_cb, &pr), 0);
  assert_true(run_until(&pr.done, WAIT_MS));
  assert_int_equal(pr.err, 0);
  assert_true(wait_for(relayed_closed_once, &la, WAIT_MS));
  int64_t took = clock_mono_ms() - t0;
  assert_true(took >= 900);
  hop_counters lim = {rn, "limited_time", 1};
  assert_true(hop_counter_at_least(&lim));
  (void)p2p_host_unsubscribe(a, log_ev, &la);
}

/* 0 = no limit (p2p.relay_hop.max_reservations / limit_data_bytes / limit_duration_seconds):
 * two peers both reserve (with 0 meaning "refuse all", as it once did, neither would), and 1 MiB
 * crosses the circuit whole, well past the default 128 KiB, with nothing cut. */
static void test_relay_zero_means_no_limit(void **state) {
  (void)state;
  p2p_relay_hop_config hc = k_hop;
  hc.max_reservations = 0;
  hc.limit_data = 0;
  hc.limit_duration_s = 0;
  relay_pair rp;
  relay_pair_make(&rp, &hc, (p2p_nat_config){0});
  p2p_host *r = rp.r, *b = rp.b;
  p2p_nat *rn = rp.rn;
  p2p_host *c = make_host(2, &rp.bcfg, NULL);
  assert_int_equal(p2p_host_handle(b, "/test/sink/1.0.0", sink_serve, NULL), 0);
  assert_true(wait_for(has_circuit_addr, b, WAIT_MS));
  assert_true(wait_for(has_circuit_addr, c, WAIT_MS));
  p2p_nat_config ac = {.relay_client = true, .allow_private = true};
  p2p_host *a = make_host(3, &ac, NULL);
  char target[1024];
  circuit_to(r, b, target, sizeof target);
  sunk = 0;
  sink_closed = false;
  pump p = {.total = 1u << 20};
  assert_int_equal(p2p_host_open_stream(a, target, "/test/sink/1.0.0", pump_opened, &p), 0);
  assert_true(run_until(&p.done, WAIT_MS));
  assert_int_equal(p.err, 0);
  assert_int_equal(sunk, 1u << 20);
  json_t *st = nat_status(rn);
  json_t *hs = json_object_get(st, "relay_hop");
  assert_int_equal(json_integer_value(json_object_get(hs, "reservations")), 2);
  json_t *ctr = json_object_get(hs, "counters");
  assert_int_equal(json_integer_value(json_object_get(ctr, "refused")), 0);
  assert_int_equal(json_integer_value(json_object_get(ctr, "limited_data")), 0);
  assert_int_equal(json_integer_value(json_object_get(ctr, "limited_time")), 0);
  json_decref(st);
}

/* ---------------------------------------------------------------- identify's signed peer record */

/* What the log said since the test began (setup points the log at /dev/null; these tests at a
 * file). */
static char log_path[TS_TMPDIR_MAX + 8];
static int log_file = -1;
static void log_to_file(void) {
  snprintf(log_path, sizeof log_path, "%s/log", fx.dirs[0]);
  log_file = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(log_file >= 0);
  log_set_fd(log_file);
}
static void log_to_stderr(void) { /* the next setup points it at /dev/null again */
  log_set_fd(2);
  if (log_file >= 0) close(log_file);
  log_file = -1;
}
typedef struct log_want {
  const char *a, *b; /* both on one line */
} log_want;
static bool log_has(void *arg) {
  const log_want *w = arg;
  FILE *f = fopen(log_path, "r");
  if (!f) return false;
  char line[4096];
  bool yes = false;
  while (!yes && fgets(line, sizeof line, f)) yes = strstr(line, w->a) && strstr(line, w->b);
  fclose(f);
  return yes;
}

/* B's identify answer, with a peer record signed by a key that is not B's. */
static void forged_identify(p2p_stream *s, void *ud) {
  (void)ud;
  uint8_t seed[32];
  memset(seed, 7, sizeof seed);
  keys_private other;
  assert_int_equal(keys_ed25519_from_seed(seed, &other), 0);
  multiaddr ma;
  assert_int_equal(multiaddr_parse("/ip4/127.0.0.1/tcp/9", &ma), 0);
  buf rec, out;
  buf_init(&rec, ENVELOPE_MAX_BYTES);
  buf_init(&out, IDENTIFY_MAX_MSG + 16);
  assert_int_equal(peer_record_seal(&other, 1, &ma, 1, &rec), 0);
  identify_msg m = {.listen_addrs = &ma, .n_listen_addrs = 1, .signed_peer_record = (uint8_t *)buf_ptr(&rec),
                    .signed_peer_record_len = buf_len(&rec)};
  assert_int_equal(identify_encode(&m, &out), 0);
  if (p2p_stream_write(s, buf_ptr(&out), buf_len(&out)) < 0) p2p_stream_reset(s);
  else p2p_stream_close_write(s);
  buf_free(&rec);
  buf_free(&out);
}

/* A opens B's record (signed by B: logged with B's PeerId); a record signed by another key is
 * logged as bad and ignored, while the rest of the message still counts. */
static void test_identify_checks_the_signed_peer_record(void **state) {
  (void)state;
  log_to_file();
  p2p_host *a = make_host(0, NULL, NULL);
  p2p_host *b = make_host(1, NULL, NULL);
  char baddr[512];
  ts_p2p_full_addr(b, baddr, sizeof baddr);
  ts_ping pr = {0};
  assert_int_equal(p2p_host_ping(a, baddr, ts_ping_cb, &pr), 0);
  assert_true(run_until(&pr.done, WAIT_MS));
  log_want good = {"\"p2p identify: signed peer record\"", p2p_host_peer_id(b)};
  assert_true(wait_for(log_has, &good, WAIT_MS));
  log_want bad = {"bad signed peer record", "signed by another peer"};
  assert_false(log_has(&bad));
  /* C answers identify with a forged record. */
  p2p_host *c = make_host(2, NULL, NULL);
  assert_int_equal(p2p_host_handle(c, "/ipfs/id/1.0.0", forged_identify, NULL), 0);
  char caddr[512];
  ts_p2p_full_addr(c, caddr, sizeof caddr);
  ts_ping pc = {0};
  assert_int_equal(p2p_host_ping(a, caddr, ts_ping_cb, &pc), 0);
  assert_true(run_until(&pc.done, WAIT_MS));
  log_want bad_c = {"bad signed peer record", p2p_host_peer_id(c)};
  assert_true(wait_for(log_has, &bad_c, WAIT_MS));
  assert_true(log_has(&bad));
  log_want forged_ok = {"\"p2p identify: signed peer record\"", p2p_host_peer_id(c)};
  assert_false(log_has(&forged_ok));
  log_to_stderr();
}

/* C's identify answer and pushes: a record signed by C's own key (from its state dir) with
 * the seq and port set here, and the same address in listenAddrs. */
static keys_private c_key;
static uint64_t c_seq;
static int c_port;
static void c_identify_msg(buf *out) {
  multiaddr ma;
  char a[64];
  snprintf(a, sizeof a, "/ip4/127.0.0.1/tcp/%d", c_port);
  assert_int_equal(multiaddr_parse(a, &ma), 0);
  buf rec;
  buf_init(&rec, ENVELOPE_MAX_BYTES);
  assert_int_equal(peer_record_seal(&c_key, c_seq, &ma, 1, &rec), 0);
  identify_msg m = {.listen_addrs = &ma, .n_listen_addrs = 1, .signed_peer_record = (uint8_t *)buf_ptr(&rec),
                    .signed_peer_record_len = buf_len(&rec)};
  assert_int_equal(identify_encode(&m, out), 0);
  buf_free(&rec);
}
static void c_identify(p2p_stream *s, void *ud) {
  (void)ud;
  buf out;
  buf_init(&out, IDENTIFY_MAX_MSG + 16);
  c_identify_msg(&out);
  if (p2p_stream_write(s, buf_ptr(&out), buf_len(&out)) < 0) p2p_stream_reset(s);
  else p2p_stream_close_write(s);
  buf_free(&out);
}
static void c_push_opened(p2p_stream *s, int err, void *ud) {
  (void)err;
  (void)ud;
  if (s) c_identify(s, NULL);
}
typedef struct seq_want {
  p2p_host *h;
  const char *peer;
  uint64_t seq;
  int port; /* 0: any */
} seq_want;
static bool peer_has_addr(p2p_host *h, const char *peer, int port) {
  p2p_peer_info pi;
  if (p2p_host_peer_info(h, peer, &pi) != 0) return false;
  char want[64];
  snprintf(want, sizeof want, "/ip4/127.0.0.1/tcp/%d", port);
  for (size_t i = 0; i < pi.n_listen_addrs; i++)
    if (strcmp(pi.listen_addrs[i], want) == 0) return true;
  return false;
}
static bool seq_is(void *arg) {
  seq_want *w = arg;
  p2p_peer_info pi;
  return p2p_host_peer_info(w->h, w->peer, &pi) == 0 && pi.record_seq == w->seq &&
         (!w->port || peer_has_addr(w->h, w->peer, w->port));
}

/* A keeps the highest seq of C's signed peer records: C identifies with seq 100 (port 1100),
 * then pushes seq 50 (port 1050: a replayed older record) — logged as older and ignored with
 * its addresses, the seq stays 100 — then seq 200 (port 1200), which counts. */
static void test_identify_ignores_an_older_signed_peer_record(void **state) {
  (void)state;
  log_to_file();
  p2p_host *a = make_host(0, NULL, NULL);
  p2p_host *c = make_host(1, NULL, NULL);
  assert_int_equal(identity_load_or_create(fx.dirs[1], &c_key, NULL), 0);
  c_seq = 100;
  c_port = 1100;
  assert_int_equal(p2p_host_handle(c, "/ipfs/id/1.0.0", c_identify, NULL), 0);
  char caddr[512];
  ts_p2p_full_addr(c, caddr, sizeof caddr);
  ts_ping pr = {0};
  assert_int_equal(p2p_host_ping(a, caddr, ts_ping_cb, &pr), 0);
  assert_true(run_until(&pr.done, WAIT_MS));
  assert_int_equal(pr.err, 0);
  const char *cid = p2p_host_peer_id(c);
  seq_want w100 = {a, cid, 100, 1100};
  assert_true(wait_for(seq_is, &w100, WAIT_MS));
  /* the replay */
  c_seq = 50;
  c_port = 1050;
  assert_int_equal(p2p_host_open_stream(c, p2p_host_peer_id(a), "/ipfs/id/push/1.0.0", c_push_opened, NULL), 0);
  log_want older = {"older signed peer record", cid};
  assert_true(wait_for(log_has, &older, WAIT_MS));
  log_want seqs = {"older signed peer record", "\"known_seq\":100"};
  assert_true(log_has(&seqs));
  assert_true(seq_is(&w100));
  assert_false(peer_has_addr(a, cid, 1050));
  /* a newer one */
  c_seq = 200;
  c_port = 1200;
  assert_int_equal(p2p_host_open_stream(c, p2p_host_peer_id(a), "/ipfs/id/push/1.0.0", c_push_opened, NULL), 0);
  seq_want w200 = {a, cid, 200, 1200};
  assert_true(wait_for(seq_is, &w200, WAIT_MS));
  log_to_stderr();
}

/* ---------------------------------------------------------------- the relay's limits, kept by the client */

static bool relayed_conn_of(p2p_host *h, const char *peer, p2p_conn_info *out) {
  p2p_conn_info ci[4];
  size_t n = p2p_host_conns(h, peer, ci, 4);
  for (size_t i = 0; i < n && i < 4; i++)
    if (ci[i].relayed) {
      *out = ci[i];
      return true;
    }
  return false;
}

/* The relay states 64 KiB per direction; A pumps 1 MiB to B through it. A's side closes the
 * relayed connection itself before a write would go past the limit (-EDQUOT, logged with the
 * limit), so the relay never has to cut it (its limited_data stays 0). Before that, A's
 * connection list and p2p_nat_status_json's relayed_connections show the limit. */
static void test_relay_client_closes_at_the_stated_data_limit(void **state) {
  (void)state;
  log_to_file();
  p2p_relay_hop_config hc = k_hop;
  hc.limit_data = 64 * 1024;
  relay_pair rp;
  relay_pair_make(&rp, &hc, (p2p_nat_config){0});
  p2p_host *r = rp.r, *b = rp.b;
  p2p_nat *rn = rp.rn, *an = NULL;
  assert_int_equal(p2p_host_handle(b, "/test/sink/1.0.0", sink_serve, NULL), 0);
  p2p_nat_config ac = {.relay_client = true, .allow_private = true};
  p2p_host *a = make_host(2, &ac, &an);
  conn_log la = {0};
  assert_int_equal(p2p_host_subscribe(a, P2P_EV_ALL, log_ev, &la), 0);
  assert_true(wait_for(has_circuit_addr, b, WAIT_MS));
  char target[1024];
  circuit_to(r, b, target, sizeof target);
  ts_ping pr = {0};
  assert_int_equal(p2p_host_ping(a, target, ts_ping_cb, &pr), 0);
  assert_true(run_until(&pr.done, WAIT_MS));
  assert_int_equal(pr.err, 0);
  p2p_conn_info ci;
  assert_true(relayed_conn_of(a, p2p_host_peer_id(b), &ci));
  assert_int_equal(ci.relay.limit.data_bytes, 64 * 1024);
  assert_int_equal(ci.relay.limit.duration_ms, 120 * 1000);
  assert_false(ci.relay.limit.data_total);
  assert_true(ci.relay.data_out > 0 && ci.relay.data_in > 0 && ci.relay.data_out < 64 * 1024);
  assert_true(ci.relay.left_ms > 100 * 1000 && ci.relay.left_ms <= 120 * 1000);
  json_t *st = nat_status(an);
  json_t *rcs = json_array_get(json_object_get(st, "relayed_connections"), 0);
  assert_non_null(rcs);
  assert_string_equal(json_string_value(json_object_get(rcs, "peer")), p2p_host_peer_id(b));
  assert_string_equal(json_string_value(json_object_get(rcs, "direction")), "outbound");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(rcs, "limit"), "data_bytes")), 64 * 1024);
  assert_true(json_real_value(json_object_get(json_object_get(rcs, "limit"), "duration_s")) == 120.0);
  assert_true(json_real_value(json_object_get(rcs, "closes_in_s")) > 100.0);
  json_decref(st);

  sunk = 0;
  sink_closed = false;
  pump p = {.total = 1u << 20};
  assert_int_equal(p2p_host_open_stream(a, p2p_host_peer_id(b), "/test/sink/1.0.0", pump_opened, &p), 0);
  assert_true(run_until(&p.done, WAIT_MS));
  assert_true(p.err < 0);
  assert_true(wait_for(relayed_closed_once, &la, WAIT_MS));
  assert_int_equal(la.relayed_close_err, -EDQUOT);
  assert_true(sunk < 64 * 1024);
  log_want said = {"\"p2p relayed connection closed: the relay's limit is reached\"", "\"limit\":\"data\""};
  assert_true(log_has(&said));
  log_want max = {"the relay's limit is reached", "\"max\":65536"};
  assert_true(log_has(&max));
  hop_counters none = {rn, "limited_data", 1};
  assert_false(hop_counter_at_least(&none));
  (void)p2p_host_unsubscribe(a, log_ev, &la);
  log_to_stderr();
}

/* The relay states 4 s: both ends close the relayed connection themselves (-ETIME), a guard
 * before the relay's own cut (4 s less 1 s: 3 s after they heard of the circuit; the second of
 * margin covers a loaded loop between the relay opening it and us hearing of it), so the
 * relay's limited_time stays 0; the log says which limit. */
static void test_relay_client_closes_at_the_stated_duration(void **state) {
  (void)state;
  log_to_file();
  p2p_relay_hop_config hc = k_hop;
  hc.limit_duration_s = 4;
  relay_pair rp;
  relay_pair_make(&rp, &hc, (p2p_nat_config){0});
  p2p_host *r = rp.r, *b = rp.b;
  p2p_nat *rn = rp.rn;
  p2p_nat_config ac = {.relay_client = true, .allow_private = true};
  p2p_host *a = make_host(2, &ac, NULL);
  conn_log la = {0}, lb = {0};
  assert_int_equal(p2p_host_subscribe(a, P2P_EV_ALL, log_ev, &la), 0);
  assert_int_equal(p2p_host_subscribe(b, P2P_EV_ALL, log_ev, &lb), 0);
  assert_true(wait_for(has_circuit_addr, b, WAIT_MS));
  char target[1024];
  circuit_to(r, b, target, sizeof target);
  ts_ping pr = {0};
  int64_t t0 = clock_mono_ms();
  assert_int_equal(p2p_host_ping(a, target, ts_ping_cb, &pr), 0);
  assert_true(run_until(&pr.done, WAIT_MS));
  assert_int_equal(pr.err, 0);
  p2p_conn_info ci;
  assert_true(relayed_conn_of(b, p2p_host_peer_id(a), &ci));
  assert_int_equal(ci.relay.limit.duration_ms, 4000);
  assert_true(ci.relay.left_ms >= 0 && ci.relay.left_ms <= 3000);
  assert_true(wait_for(relayed_closed_once, &la, WAIT_MS));
  assert_true(wait_for(relayed_closed_once, &lb, WAIT_MS));
  int64_t took = clock_mono_ms() - t0;
  assert_true(took >= 2500);
  assert_true(la.relayed_close_err == -ETIME || lb.relayed_close_err == -ETIME);
  log_want said = {"\"p2p relayed connection closed: the relay's limit is reached\"", "\"limit\":\"duration\""};
  assert_true(log_has(&said));
  hop_counters none = {rn, "limited_time", 1};
  assert_false(hop_counter_at_least(&none));
  (void)p2p_host_unsubscribe(a, log_ev, &la);
  (void)p2p_host_unsubscribe(b, log_ev, &lb);
  log_to_stderr();
}

/* Limit units: seconds per the spec, milliseconds from js-libp2p (by agent), and a duration
 * over a day read as milliseconds (js's 2-minute default, 120000, from a relay not yet
 * identified); js counts data over both directions. */
static void test_relay_limit_units(void **state) {
  (void)state;
  p2p_relay_limit l = p2p_relay_limit_of(120, 131072, false);
  assert_int_equal(l.duration_ms, 120000);
  assert_int_equal(l.data_bytes, 131072);
  assert_false(l.data_total);
  l = p2p_relay_limit_of(120000, 131072, false);
  assert_int_equal(l.duration_ms, 120000);
  l = p2p_relay_limit_of(RELAY_LIMIT_SECONDS_MAX, 0, false);
  assert_int_equal(l.duration_ms, (uint64_t)RELAY_LIMIT_SECONDS_MAX * 1000);
  l = p2p_relay_limit_of(RELAY_LIMIT_SECONDS_MAX + 1, 0, false);
  assert_int_equal(l.duration_ms, RELAY_LIMIT_SECONDS_MAX + 1);
  l = p2p_relay_limit_of(4000, 65536, true);
  assert_int_equal(l.duration_ms, 4000);
  assert_true(l.data_total);
  l = p2p_relay_limit_of(0, 0, true);
  assert_int_equal(l.duration_ms, 0);
  assert_int_equal(l.data_bytes, 0);
  l = p2p_relay_limit_of(UINT32_MAX, UINT64_MAX, false);
  assert_int_equal(l.duration_ms, UINT32_MAX);
  assert_int_equal(l.data_bytes, UINT64_MAX);
}

/* ---------------------------------------------------------------- AutoNAT */

static bool reach_is(void *arg) {
  conn_log *l = arg;
  return l->reach_changes > 0;
}

/* Three AutoNAT servers dial the client back at its listen address: public. */
static void test_autonat_three_servers_say_public(void **state) {
  (void)state;
  p2p_nat_config sc = {.autonat_server = true, .allow_private = true};
  p2p_nat_config cc = {.autonat_client = true, .autonat_confidence = 3, .allow_private = true};
  p2p_nat *cn;
  p2p_host *c = make_host(0, &cc, &cn);
  conn_log lc = {0};
  assert_int_equal(p2p_host_subscribe(c, P2P_EV_ALL, log_ev, &lc), 0);
  for (int i = 1; i <= 3; i++) ts_p2p_connect(&fx, c, make_host(i, &sc, NULL), WAIT_MS);
  assert_true(wait_for(reach_is, &lc, WAIT_MS));
  assert_int_equal(lc.reach, P2P_REACH_PUBLIC);
  assert_int_equal(p2p_host_reachability(c), P2P_REACH_PUBLIC);
  json_t *st = nat_status(cn);
  json_t *an = json_object_get(st, "autonat");
  assert_true(json_is_true(json_object_get(an, "supported")));
  assert_string_equal(json_string_value(json_object_get(an, "status")), "public");
  assert_int_equal(json_integer_value(json_object_get(an, "code")), 1);
  json_decref(st);
  (void)p2p_host_unsubscribe(c, log_ev, &lc);
}

/* A client that does not listen: its only candidates are the addresses it was observed at
 * (its outgoing connections' ports), which nobody can dial: private. */
static void test_autonat_unreachable_client_is_private(void **state) {
  (void)state;
  p2p_nat_config sc = {.autonat_server = true, .allow_private = true};
  p2p_host_config hc = {0};
  hc.state_dir = fx.dirs[0];
  hc.no_peerstore_file = true;
  p2p_host *c = NULL;
  assert_int_equal(p2p_host_new(&fx.loop, &hc, &c), 0);
  fx.hosts[0] = c;
  p2p_nat_config cc = {.autonat_client = true, .autonat_confidence = 2, .allow_private = true};
  p2p_nat *cn = NULL;
  assert_int_equal(p2p_nat_new(c, &fx.loop, &cc, &cn), 0);
  assert_int_equal(p2p_nat_add_to_host(cn), 0);
  conn_log lc = {0};
  assert_int_equal(p2p_host_subscribe(c, P2P_EV_ALL, log_ev, &lc), 0);
  for (int i = 1; i <= 2; i++) ts_p2p_connect(&fx, c, make_host(i, &sc, NULL), WAIT_MS);
  assert_true(wait_for(reach_is, &lc, WAIT_MS));
  assert_int_equal(lc.reach, P2P_REACH_PRIVATE);
  json_t *st = nat_status(cn);
  assert_string_equal(json_string_value(json_object_get(json_object_get(st, "autonat"), "status")), "private");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(st, "autonat"), "code")), 2);
  json_decref(st);
  (void)p2p_host_unsubscribe(c, log_ev, &lc);
}

/* ---------------------------------------------------------------- AutoNAT v2 */

static json_int_t v2_counter(p2p_nat *n, const char *side, const char *key) {
  json_t *st = nat_status(n);
  json_t *v2 = json_object_get(json_object_get(st, "autonat"), "v2");
  json_int_t v = json_integer_value(json_object_get(json_object_get(v2, side), key));
  json_decref(st);
  return v;
}

static json_int_t v1_counter(p2p_nat *n, const char *key) {
  json_t *st = nat_status(n);
  json_int_t v = json_integer_value(json_object_get(json_object_get(json_object_get(st, "autonat"), "counters"), key));
  json_decref(st);
  return v;
}

/* Three v2 servers dial the client back at its listen address, with its nonce: public; the
 * client used v2 only (its v1 client leaves v2 peers alone). */
static void test_autonat2_three_servers_say_public(void **state) {
  (void)state;
  p2p_nat_config sc = {.autonat_server = true, .autonat_v2 = true, .allow_private = true};
  p2p_nat_config cc = {.autonat_client = true, .autonat_v2 = true, .autonat_confidence = 3, .allow_private = true};
  p2p_nat *cn, *sn[4];
  p2p_host *c = make_host(0, &cc, &cn);
  conn_log lc = {0};
  assert_int_equal(p2p_host_subscribe(c, P2P_EV_ALL, log_ev, &lc), 0);
  for (int i = 1; i <= 3; i++) ts_p2p_connect(&fx, c, make_host(i, &sc, &sn[i]), WAIT_MS);
  assert_true(wait_for(reach_is, &lc, WAIT_MS));
  assert_int_equal(lc.reach, P2P_REACH_PUBLIC);
  json_t *st = nat_status(cn);
  json_t *an = json_object_get(st, "autonat");
  assert_string_equal(json_string_value(json_object_get(an, "status")), "public");
  json_decref(st);
  assert_true(v2_counter(cn, "client_counters", "answers_ok") >= 3);
  assert_true(v2_counter(cn, "client_counters", "dialbacks_received") >= 3);
  assert_int_equal(v2_counter(cn, "client_counters", "ok_without_nonce"), 0);
  assert_int_equal(v2_counter(cn, "client_counters", "dialbacks_unfit"), 0); /* fresh, direct, TCP */
  assert_int_equal(v1_counter(cn, "asked"), 0);
  json_int_t ok = 0;
  for (int i = 1; i <= 3; i++) ok += v2_counter(sn[i], "server_counters", "dialed_back_ok");
  assert_true(ok >= 3);
  (void)p2p_host_unsubscribe(c, log_ev, &lc);
}

/* A client that does not listen: the addresses it was observed at cannot be dialed; each v2
 * server answers OK / E_DIAL_ERROR: private. */
static void test_autonat2_unreachable_client_is_private(void **state) {
  (void)state;
  p2p_nat_config sc = {.autonat_server = true, .autonat_v2 = true, .allow_private = true};
  p2p_host_config hc = {0};
  hc.state_dir = fx.dirs[0];
  hc.no_peerstore_file = true;
  p2p_host *c = NULL;
  assert_int_equal(p2p_host_new(&fx.loop, &hc, &c), 0);
  fx.hosts[0] = c;
  p2p_nat_config cc = {.autonat_client = true, .autonat_v2 = true, .autonat_confidence = 2, .allow_private = true};
  p2p_nat *cn = NULL, *s1 = NULL;
  assert_int_equal(p2p_nat_new(c, &fx.loop, &cc, &cn), 0);
  assert_int_equal(p2p_nat_add_to_host(cn), 0);
  conn_log lc = {0};
  assert_int_equal(p2p_host_subscribe(c, P2P_EV_ALL, log_ev, &lc), 0);
  ts_p2p_connect(&fx, c, make_host(1, &sc, &s1), WAIT_MS);
  ts_p2p_connect(&fx, c, make_host(2, &sc, NULL), WAIT_MS);
  assert_true(wait_for(reach_is, &lc, WAIT_MS));
  assert_int_equal(lc.reach, P2P_REACH_PRIVATE);
  assert_true(v2_counter(cn, "client_counters", "answers_dial_error") >= 2);
  assert_true(v2_counter(s1, "server_counters", "dialed_back_error") >= 1);
  (void)p2p_host_unsubscribe(c, log_ev, &lc);
}

/* The client listens on 127.0.0.2 but reaches the server from 127.0.0.1: testing its
 * listen address costs it the dial data (at least 30000 bytes, counted by the server) before
 * the server dials; then public. */
static void test_autonat2_other_ip_pays_dial_data(void **state) {
  (void)state;
  p2p_nat_config sc = {.autonat_server = true, .autonat_v2 = true, .allow_private = true};
  p2p_host_config hc = {0};
  hc.state_dir = fx.dirs[0];
  hc.no_peerstore_file = true;
  p2p_host *c = NULL;
  assert_int_equal(p2p_host_new(&fx.loop, &hc, &c), 0);
  assert_int_equal(p2p_host_listen(c, "/ip4/127.0.0.2/tcp/0"), 0);
  fx.hosts[0] = c;
  p2p_nat_config cc = {.autonat_client = true, .autonat_v2 = true, .autonat_confidence = 1, .allow_private = true};
  p2p_nat *cn = NULL, *s1 = NULL;
  assert_int_equal(p2p_nat_new(c, &fx.loop, &cc, &cn), 0);
  assert_int_equal(p2p_nat_add_to_host(cn), 0);
  conn_log lc = {0};
  assert_int_equal(p2p_host_subscribe(c, P2P_EV_ALL, log_ev, &lc), 0);
  ts_p2p_connect(&fx, c, make_host(1, &sc, &s1), WAIT_MS);
  assert_true(wait_for(reach_is, &lc, WAIT_MS));
  assert_int_equal(lc.reach, P2P_REACH_PUBLIC);
  assert_true(v2_counter(cn, "client_counters", "dial_data_paid") >= AUTONAT2_DATA_MIN);
  assert_true(v2_counter(s1, "server_counters", "dial_data_received") >= AUTONAT2_DATA_MIN);
  assert_true(v2_counter(s1, "server_counters", "dialed_back_ok") >= 1);
  (void)p2p_host_unsubscribe(c, log_ev, &lc);
}

/* A server that answers OK / OK without dialing back: the client discards it (no nonce). */
static void liar_v2(p2p_stream *s, void *ud) {
  (void)ud;
  buf out;
  buf_init(&out, 256);
  autonat2_msg m = {.kind = AUTONAT2_DIAL_RESPONSE, .status = AUTONAT2_RS_OK, .dial_status = AUTONAT2_DS_OK};
  assert_int_equal(autonat2_encode(&m, &out), 0);
  if (p2p_stream_write(s, buf_ptr(&out), buf_len(&out)) < 0) p2p_stream_reset(s);
  else p2p_stream_close_write(s);
  buf_free(&out);
}

static bool discarded(void *arg) { return v2_counter(arg, "client_counters", "ok_without_nonce") >= 1; }

static void test_autonat2_ok_without_the_nonce_is_discarded(void **state) {
  (void)state;
  p2p_nat_config cc = {.autonat_client = true, .autonat_v2 = true, .autonat_confidence = 1, .allow_private = true};
  p2p_nat *cn;
  p2p_host *c = make_host(0, &cc, &cn);
  p2p_host *liar = make_host(1, NULL, NULL);
  assert_int_equal(p2p_host_handle(liar, AUTONAT2_DIAL_REQUEST_PROTOCOL, liar_v2, NULL), 0);
  ts_p2p_connect(&fx, c, liar, WAIT_MS);
  assert_true(wait_for(discarded, cn, WAIT_MS));
  assert_int_equal(p2p_host_reachability(c), P2P_REACH_UNKNOWN);
  assert_int_equal(v2_counter(cn, "client_counters", "answers_ok"), 0);
}

/* A server that sends our nonce back over the connection we asked it on (ours to it: no dial of
 * the address at all), waits for that dial-back stream to end, then answers OK / OK. The spec
 * has the client check the connection the nonce came on; this one cannot be the dial, so the
 * client resets it and discards the OK (before: believed, public with confidence 1). */
typedef struct reuse_liar {
  p2p_host *h;
  p2p_stream *req;
  buf in;
  bool answered;
} reuse_liar;

static void rl_answer(reuse_liar *L) {
  if (!L->req) return;
  buf out;
  buf_init(&out, 256);
  autonat2_msg m = {.kind = AUTONAT2_DIAL_RESPONSE, .status = AUTONAT2_RS_OK, .dial_status = AUTONAT2_DS_OK};
  assert_int_equal(autonat2_encode(&m, &out), 0);
  if (p2p_stream_write(L->req, buf_ptr(&out), buf_len(&out)) < 0) p2p_stream_reset(L->req);
  else p2p_stream_close_write(L->req);
  buf_free(&out);
  L->req = NULL;
  L->answered = true;
}
static void rl_db_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) { (void)s, (void)d, (void)n, (void)ud; }
static void rl_db_eof(p2p_stream *s, void *ud) { (void)s, (void)ud; }
static void rl_db_close(p2p_stream *s, int err, void *ud) {
  (void)s, (void)err;
  rl_answer(ud);
}
static const p2p_stream_callbacks rl_db_cbs = {.on_data = rl_db_data, .on_eof = rl_db_eof, .on_close = rl_db_close};
static uint64_t rl_nonce;
static void rl_db_opened(p2p_stream *s, int err, void *ud) {
  (void)err;
  if (!s) {
    rl_answer(ud);
    return;
  }
  p2p_stream_set_callbacks(s, &rl_db_cbs, ud);
  buf out;
  buf_init(&out, 64);
  assert_int_equal(autonat2_dialback_encode(rl_nonce, &out), 0);
  if (p2p_stream_write(s, buf_ptr(&out), buf_len(&out)) < 0) p2p_stream_reset(s);
  else p2p_stream_close_write(s);
  buf_free(&out);
}
static void rl_req_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  reuse_liar *L = ud;
  assert_int_equal(buf_append(&L->in, d, n), 0);
  const uint8_t *body;
  size_t bl, used;
  if (autonat2_frame_parse(buf_ptr(&L->in), buf_len(&L->in), &body, &bl, &used) != 0) return;
  autonat2_msg *m = calloc(1, sizeof *m);
  assert_non_null(m);
  assert_int_equal(autonat2_decode(body, bl, m), 0);
  assert_int_equal(m->kind, AUTONAT2_DIAL_REQUEST);
  rl_nonce = m->nonce;
  free(m);
  buf_consume(&L->in, used);
  /* the dial-back on the very connection the request came over */
  assert_int_equal(p2p_host_open_stream_on(L->h, p2p_stream_conn_id(s), AUTONAT2_DIAL_BACK_PROTOCOL, rl_db_opened, L), 0);
}
static void rl_req_eof(p2p_stream *s, void *ud) { (void)s, (void)ud; }
static void rl_req_close(p2p_stream *s, int err, void *ud) {
  (void)err;
  reuse_liar *L = ud;
  if (L->req == s) L->req = NULL;
}
static const p2p_stream_callbacks rl_req_cbs = {.on_data = rl_req_data, .on_eof = rl_req_eof, .on_close = rl_req_close};
static void rl_serve(p2p_stream *s, void *ud) {
  reuse_liar *L = ud;
  if (L->req || L->answered) { /* one request is enough */
    p2p_stream_reset(s);
    return;
  }
  L->req = s;
  p2p_stream_set_callbacks(s, &rl_req_cbs, L);
}

/* The client's tally of answers that were no vote, over every address it asked about. */
static json_int_t v2_addr_other(p2p_nat *n) {
  json_t *st = nat_status(n);
  json_t *addrs = json_object_get(json_object_get(json_object_get(st, "autonat"), "v2"), "addrs");
  json_int_t v = 0;
  for (size_t i = 0; i < json_array_size(addrs); i++)
    v += json_integer_value(json_object_get(json_array_get(addrs, i), "other"));
  json_decref(st);
  return v;
}
static bool liar_ok_handled(void *arg) {
  return v2_addr_other(arg) >= 1 || v2_counter(arg, "client_counters", "answers_ok") >= 1;
}

static void test_autonat2_dialback_over_our_own_connection_is_no_confirmation(void **state) {
  (void)state;
  p2p_nat_config cc = {.autonat_client = true, .autonat_v2 = true, .autonat_confidence = 1, .allow_private = true};
  p2p_nat *cn;
  p2p_host *c = make_host(0, &cc, &cn);
  p2p_host *liar = make_host(1, NULL, NULL);
  reuse_liar L = {.h = liar};
  buf_init(&L.in, AUTONAT2_MAX_MSG + 16);
  assert_int_equal(p2p_host_handle(liar, AUTONAT2_DIAL_REQUEST_PROTOCOL, rl_serve, &L), 0);
  ts_p2p_connect(&fx, c, liar, WAIT_MS);
  assert_true(wait_for(liar_ok_handled, cn, WAIT_MS));
  assert_true(L.answered);
  assert_int_equal(v2_counter(cn, "client_counters", "answers_ok"), 0);
  assert_int_equal(v2_counter(cn, "client_counters", "dialbacks_received"), 0);
  assert_int_equal(v2_counter(cn, "client_counters", "dialbacks_unfit"), 1);
  assert_int_equal(p2p_host_reachability(c), P2P_REACH_UNKNOWN);
  ts_p2p_close(&fx, (p2p_host *[]){c, liar}, 2);
  buf_free(&L.in);
}

/* A raw v2 exchange from a host without AutoNAT: send `req` (framed) on `protocol`, collect
 * what comes back until the stream closes. */
typedef struct raw_x {
  buf req, got;
  bool done, reset;
} raw_x;
static void raw_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)s;
  assert_int_equal(buf_append(&((raw_x *)ud)->got, d, n), 0);
}
static void raw_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}
static void raw_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  raw_x *x = ud;
  x->done = true;
  x->reset = err != 0;
}
static const p2p_stream_callbacks raw_cbs = {.on_data = raw_data, .on_eof = raw_eof, .on_close = raw_close};
static void raw_opened(p2p_stream *s, int err, void *ud) {
  raw_x *x = ud;
  if (!s) {
    x->done = x->reset = true;
    (void)err;
    return;
  }
  p2p_stream_set_callbacks(s, &raw_cbs, x);
  if (p2p_stream_write(s, buf_ptr(&x->req), buf_len(&x->req)) < 0) p2p_stream_reset(s);
}
static void raw_exchange(p2p_host *from, p2p_host *to, const char *protocol, raw_x *x) {
  char a[512];
  ts_p2p_full_addr(to, a, sizeof a);
  x->done = x->reset = false;
  buf_reset(&x->got);
  assert_int_equal(p2p_host_open_stream(from, a, protocol, raw_opened, x), 0);
  assert_true(run_until(&x->done, WAIT_MS));
}

/* Rate limits: a 4th request of one peer within a minute gets E_REQUEST_REJECTED (the first
 * three are dialed: a closed port, OK / E_DIAL_ERROR); the server never dials for it. */
static void test_autonat2_server_rate_limits_a_peer(void **state) {
  (void)state;
  p2p_nat_config sc = {.autonat_server = true, .autonat_v2 = true, .allow_private = true};
  p2p_nat *sn;
  p2p_host *srv = make_host(1, &sc, &sn);
  p2p_host *c = make_host(0, NULL, NULL);
  int closed = 1; /* tcp/1 on 127.0.0.1: nothing listens there, the dial fails at once */
  char t[64];
  snprintf(t, sizeof t, "/ip4/127.0.0.1/tcp/%d", closed);
  autonat2_msg *m = calloc(1, sizeof *m);
  m->kind = AUTONAT2_DIAL_REQUEST;
  m->nonce = 99;
  m->n_addrs = 1;
  assert_int_equal(multiaddr_parse(t, &m->addrs[0]), 0);
  raw_x x;
  buf_init(&x.req, 4096);
  buf_init(&x.got, 4096);
  assert_int_equal(autonat2_encode(m, &x.req), 0);
  uint32_t want[4] = {AUTONAT2_RS_OK, AUTONAT2_RS_OK, AUTONAT2_RS_OK, AUTONAT2_RS_E_REQUEST_REJECTED};
  for (int i = 0; i < 4; i++) {
    raw_exchange(c, srv, AUTONAT2_DIAL_REQUEST_PROTOCOL, &x);
    const uint8_t *body;
    size_t bl, used;
    autonat2_msg *r = calloc(1, sizeof *r);
    assert_int_equal(autonat2_frame_parse(buf_ptr(&x.got), buf_len(&x.got), &body, &bl, &used), 0);
    assert_int_equal(autonat2_decode(body, bl, r), 0);
    assert_int_equal(r->kind, AUTONAT2_DIAL_RESPONSE);
    assert_int_equal(r->status, want[i]);
    if (want[i] == AUTONAT2_RS_OK) assert_int_equal(r->dial_status, AUTONAT2_DS_E_DIAL_ERROR);
    free(r);
  }
  assert_int_equal(v2_counter(sn, "server_counters", "rejected"), 1);
  assert_int_equal(v2_counter(sn, "server_counters", "dialed_back_error"), 3);
  /* a request with nothing we may dial (another IP is fine, but port 0 and dns are not) */
  buf_reset(&x.req);
  assert_int_equal(multiaddr_parse("/dns4/example.com/tcp/5", &m->addrs[0]), 0);
  assert_int_equal(autonat2_encode(m, &x.req), 0);
  p2p_host *c2 = make_host(2, NULL, NULL);
  raw_exchange(c2, srv, AUTONAT2_DIAL_REQUEST_PROTOCOL, &x);
  assert_int_equal(v2_counter(sn, "server_counters", "refused"), 1);
  /* garbage: the stream is reset */
  buf_reset(&x.req);
  assert_int_equal(buf_append(&x.req, "\x05\xff\xff\xff\xff\xff", 6), 0);
  raw_exchange(c2, srv, AUTONAT2_DIAL_REQUEST_PROTOCOL, &x);
  assert_true(x.reset);
  assert_int_equal(v2_counter(sn, "server_counters", "bad_requests"), 1);
  buf_free(&x.req);
  buf_free(&x.got);
  free(m);
}

/* A dial-back stream whose nonce is not one of a request in flight is reset (and counted). */
static bool unknown_nonce_counted(void *arg) {
  return v2_counter(arg, "client_counters", "dialbacks_unknown_nonce") >= 1;
}

static void test_autonat2_dialback_with_an_unknown_nonce_is_reset(void **state) {
  (void)state;
  p2p_nat_config cc = {.autonat_client = true, .autonat_v2 = true, .allow_private = true};
  p2p_nat *cn;
  p2p_host *c = make_host(0, &cc, &cn);
  p2p_host *liar = make_host(1, NULL, NULL);
  /* the client has a request in flight to the liar (which never answers it) */
  assert_int_equal(p2p_host_handle(liar, AUTONAT2_DIAL_REQUEST_PROTOCOL, sink_serve, NULL), 0);
  ts_p2p_connect(&fx, c, liar, WAIT_MS);
  raw_x x;
  buf_init(&x.req, 64);
  buf_init(&x.got, 64);
  assert_int_equal(autonat2_dialback_encode(12345, &x.req), 0);
  raw_exchange(liar, c, AUTONAT2_DIAL_BACK_PROTOCOL, &x);
  assert_true(x.reset);
  assert_int_equal(buf_len(&x.got), 0);
  assert_true(wait_for(unknown_nonce_counted, cn, WAIT_MS));
  assert_int_equal(v2_counter(cn, "client_counters", "dialbacks_received"), 0);
  buf_free(&x.req);
  buf_free(&x.got);
}

/* ---------------------------------------------------------------- DCUtR */

typedef struct direct_wait {
  p2p_host *a, *b;
} direct_wait;
static bool direct_between(void *arg) {
  direct_wait *w = arg;
  p2p_conn_info ci[8];
  size_t n = p2p_host_conns(w->a, p2p_host_peer_id(w->b), ci, 8);
  bool direct = false, relayed = false;
  for (size_t i = 0; i < n && i < 8; i++) {
    if (ci[i].relayed) relayed = true;
    else direct = true;
  }
  return direct && !relayed;
}

typedef struct nat_pair {
  p2p_nat *a, *b;
} nat_pair;
static json_int_t punches(p2p_nat *n) {
  json_t *st = nat_status(n);
  json_int_t v = json_integer_value(json_object_get(json_object_get(st, "holepunch"), "succeeded"));
  json_decref(st);
  return v;
}
static bool punched(void *arg) {
  nat_pair *np = arg;
  return punches(np->a) + punches(np->b) >= 1;
}

/* A reaches B through R; B (the relayed connection is inbound to it) runs DCUtR: CONNECT,
 * CONNECT, SYNC, and both dial from their listen ports — B as the responder. A direct
 * connection replaces the relayed one, which is closed. (No plain dial first here, so the
 * punch itself runs.) */
static void test_dcutr_upgrades_a_relayed_connection(void **state) {
  (void)state;
  relay_pair rp;
  relay_pair_make(&rp, &k_hop, (p2p_nat_config){.holepunch = true, .holepunch_no_unilateral = true});
  p2p_host *r = rp.r, *b = rp.b;
  p2p_nat *bn = rp.bn, *an = NULL;
  p2p_nat_config ac = {.relay_client = true, .holepunch = true, .holepunch_no_unilateral = true, .allow_private = true};
  p2p_host *a = make_host(2, &ac, &an);
  assert_true(wait_for(has_circuit_addr, b, WAIT_MS));
  char target[1024];
  circuit_to(r, b, target, sizeof target);
  ts_ping pr = {0};
  assert_int_equal(p2p_host_ping(a, target, ts_ping_cb, &pr), 0);
  assert_true(run_until(&pr.done, WAIT_MS));
  assert_int_equal(pr.err, 0);
  direct_wait w = {a, b};
  assert_true(wait_for(direct_between, &w, WAIT_MS));
  /* The side whose dial completed first counts the success (either may, on one machine). */
  nat_pair np = {an, bn};
  assert_true(wait_for(punched, &np, WAIT_MS));
  /* and it carries traffic */
  ts_ping pr2 = {0};
  assert_int_equal(p2p_host_ping(a, p2p_host_peer_id(b), ts_ping_cb, &pr2), 0);
  assert_true(run_until(&pr2.done, WAIT_MS));
  assert_int_equal(pr2.err, 0);
}

static json_int_t hp_stat(p2p_nat *n, const char *key) {
  json_t *st = nat_status(n);
  json_int_t v = json_integer_value(json_object_get(json_object_get(st, "holepunch"), key));
  json_decref(st);
  return v;
}
static bool punch_skipped(void *arg) { return hp_stat(arg, "skipped") >= 1; }

/* A peer without DCUtR (a CLI's client-only host) reaches B through R: B skips the hole punch
 * at once (no attempt, no retry), counts it as skipped, not failed, and the relayed connection
 * stays in use. (Before: three attempts 2 s apart, each "failed", for a peer that cannot take
 * part.) */
static void test_dcutr_skips_a_peer_without_dcutr(void **state) {
  (void)state;
  relay_pair rp;
  relay_pair_make(&rp, &k_hop, (p2p_nat_config){.holepunch = true, .holepunch_no_unilateral = true});
  p2p_host *r = rp.r, *b = rp.b;
  p2p_nat *bn = rp.bn;
  p2p_nat_config ac = {.relay_client = true, .allow_private = true}; /* no holepunch */
  p2p_host *a = make_host(2, &ac, NULL);
  assert_true(wait_for(has_circuit_addr, b, WAIT_MS));
  char target[1024];
  circuit_to(r, b, target, sizeof target);
  ts_ping pr = {0};
  assert_int_equal(p2p_host_ping(a, target, ts_ping_cb, &pr), 0);
  assert_true(run_until(&pr.done, WAIT_MS));
  assert_int_equal(pr.err, 0);
  assert_true(wait_for(punch_skipped, bn, WAIT_MS));
  assert_int_equal(hp_stat(bn, "failed"), 0);
  assert_int_equal(hp_stat(bn, "in_progress"), 0);
  ts_ping pr2 = {0};
  assert_int_equal(p2p_host_ping(a, p2p_host_peer_id(b), ts_ping_cb, &pr2), 0);
  assert_true(run_until(&pr2.done, WAIT_MS));
  assert_int_equal(pr2.err, 0);
}

/* The plain direct dial before the punch ("unilateral upgrade") goes to public addresses only:
 * on 127.0.0.1 the peer lists only a private one, so B punches (counted as succeeded, not as
 * direct_dial). (Before: with allow_private B dialed the listed private address; behind a real
 * NAT such a dial to an unroutable address cost the 5 s attempt timeout before every punch.) */
static void test_dcutr_plain_dial_only_to_public_addresses(void **state) {
  (void)state;
  relay_pair rp;
  relay_pair_make(&rp, &k_hop, (p2p_nat_config){.holepunch = true});
  p2p_host *r = rp.r, *b = rp.b;
  p2p_nat *bn = rp.bn, *an = NULL;
  p2p_nat_config ac = {.relay_client = true, .holepunch = true, .allow_private = true};
  p2p_host *a = make_host(2, &ac, &an);
  assert_true(wait_for(has_circuit_addr, b, WAIT_MS));
  char target[1024];
  circuit_to(r, b, target, sizeof target);
  ts_ping pr = {0};
  assert_int_equal(p2p_host_ping(a, target, ts_ping_cb, &pr), 0);
  assert_true(run_until(&pr.done, WAIT_MS));
  assert_int_equal(pr.err, 0);
  direct_wait w = {a, b};
  assert_true(wait_for(direct_between, &w, WAIT_MS));
  nat_pair np = {an, bn};
  assert_true(wait_for(punched, &np, WAIT_MS));
  assert_int_equal(hp_stat(bn, "direct_dial"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_relay_reservation_and_dial_through_the_relay, setup, teardown),
      cmocka_unit_test_setup_teardown(test_relay_dial_without_reservation_fails, setup, teardown),
      cmocka_unit_test_setup_teardown(test_relay_refuses_reservations_past_the_cap_but_refreshes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_relay_data_limit_cuts_the_circuit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_relay_duration_limit_cuts_the_circuit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_relay_zero_means_no_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_identify_checks_the_signed_peer_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_identify_ignores_an_older_signed_peer_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_relay_client_closes_at_the_stated_data_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_relay_client_closes_at_the_stated_duration, setup, teardown),
      cmocka_unit_test(test_relay_limit_units),
      cmocka_unit_test_setup_teardown(test_autonat_three_servers_say_public, setup, teardown),
      cmocka_unit_test_setup_teardown(test_autonat_unreachable_client_is_private, setup, teardown),
      cmocka_unit_test_setup_teardown(test_autonat2_three_servers_say_public, setup, teardown),
      cmocka_unit_test_setup_teardown(test_autonat2_unreachable_client_is_private, setup, teardown),
      cmocka_unit_test_setup_teardown(test_autonat2_other_ip_pays_dial_data, setup, teardown),
      cmocka_unit_test_setup_teardown(test_autonat2_ok_without_the_nonce_is_discarded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_autonat2_dialback_over_our_own_connection_is_no_confirmation, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_autonat2_server_rate_limits_a_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_autonat2_dialback_with_an_unknown_nonce_is_reset, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dcutr_upgrades_a_relayed_connection, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dcutr_skips_a_peer_without_dcutr, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dcutr_plain_dial_only_to_public_addresses, setup, teardown),
  };
  signal(SIGPIPE, SIG_IGN); /* as the node does: a peer that went away must not kill us mid-write */
  if (getenv("NAT_TEST_FILTER")) cmocka_set_test_filter(getenv("NAT_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
