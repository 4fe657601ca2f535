/* test_remote_tools.c — the p2p_remote_* tools end to end over real libp2p hosts in one
 * process and one loop: node B (svc_service: the tools, a dispatcher) calls node A (a server
 * with a queue) and a silent peer C (answers initialize, then never anything). The tools are
 * asynchronous: they hold no thread while the peer works, and a cancel or a deadline withdraws
 * the request so the peer stops too (notifications/cancelled). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/policy.h"
#include "mcp/dispatch.h"
#include "mcp/registry.h"
#include "service/frame.h"
#include "service/mcpp.h"
#include "service/server.h"
#include "p2p/host/peers.h"
#include "service/service.h"
#include "taskq/rpc_tool.h"
#include "taskq/table.h"
#include "tools/meta.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/workpool.h"
#include "support/stores.h"
#include "support/tmpdir.h"

typedef struct world {
  char dir[TS_TMPDIR_MAX];
  uv_loop_t loop;
  p2p_host *a, *b, *c;
  char a_addr[256], c_addr[256];
  /* A: the server */
  mcp_registry *reg_a;
  mcp_dispatcher *disp_a;
  tq_queue *q;
  auth_policy *pol;
  taskq_ctx *tq;
  svc_server *srv;
  /* B: the node whose tools we call */
  mcp_registry *reg_b;
  mcp_dispatcher *disp_b;
  svc_service *svc;
  bool svc_stopped;
  /* C: the silent peer */
  int c_calls;     /* tools/call requests it got */
  int c_cancelled; /* notifications/cancelled it got */
  int hosts_closed;
} world;

static world W;

/* ---------- the silent peer ---------- */

typedef struct silent_stream {
  svc_frame_dec dec;
  buf out;
} silent_stream;

static void silent_data(p2p_stream *s, const uint8_t *data, size_t len, void *ud) {
  silent_stream *ss = ud;
  while (len > 0 || ss->dec.ready) {
    size_t used = 0;
    svc_frame_status st = svc_frame_dec_feed(&ss->dec, data, len, &used);
    data += used;
    len -= used;
    if (st != SVC_FRAME_READY) break;
    json_t *m = svc_frame_dec_take(&ss->dec);
    const char *method = json_string_value(json_object_get(m, "method"));
    if (method && strcmp(method, "initialize") == 0) {
      json_t *r = json_pack("{s:s, s:O, s:{s:s, s:{}, s:{s:s, s:s}}}", "jsonrpc", "2.0", "id", json_object_get(m, "id"),
                            "result", "protocolVersion", "2025-06-18", "capabilities", "serverInfo", "name", "silent",
                            "version", "0");
      assert_int_equal(svc_frame_encode(&ss->out, r, 0), 0);
      json_decref(r);
      assert_true(p2p_stream_write(s, buf_ptr(&ss->out), buf_len(&ss->out)) >= 0);
      buf_reset(&ss->out);
    } else if (method && strcmp(method, "tools/call") == 0) {
      W.c_calls++; /* never answered */
    } else if (method && strcmp(method, "notifications/cancelled") == 0) {
      W.c_cancelled++;
    }
    json_decref(m);
  }
}

static void silent_close(p2p_stream *s, int err, void *ud) {
  silent_stream *ss = ud;
  svc_frame_dec_free(&ss->dec);
  buf_free(&ss->out);
  free(ss);
}

static const p2p_stream_callbacks silent_cbs = {.on_data = silent_data, .on_close = silent_close};

static void silent_handler(p2p_stream *s, void *ud) {
  silent_stream *ss = calloc(1, sizeof *ss);
  svc_frame_dec_init(&ss->dec, 1u << 20);
  buf_init(&ss->out, 1u << 20);
  p2p_stream_set_callbacks(s, &silent_cbs, ss);
}

/* ---------- set-up ---------- */

static p2p_host *mk_host(const char *name) {
  char dir[TS_TMPDIR_MAX + 16];
  ts_path(dir, sizeof dir, W.dir, name);
  p2p_host_config hc = {0};
  hc.state_dir = dir;
  hc.no_peerstore_file = true;
  p2p_host *h;
  assert_int_equal(p2p_host_new(&W.loop, &hc, &h), 0);
  return h;
}

static void listen_on(p2p_host *h, char *out, size_t cap) {
  assert_int_equal(p2p_host_listen(h, "/ip4/127.0.0.1/tcp/0"), 0);
  const char *addrs[4];
  assert_true(p2p_host_listen_addrs(h, addrs, 4) >= 1);
  snprintf(out, cap, "%s/p2p/%s", addrs[0], p2p_host_peer_id(h));
}

/* Runs the loop until *flag or 30 s (generous for a loaded machine). */
static void run_until_int(int *flag, int want) {
  int64_t end = clock_mono_ms() + 30000;
  while (*flag < want && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  assert_true(*flag >= want);
}

static int setup(void **state) {
  (void)state;
  memset(&W, 0, sizeof W);
  ts_tmpdir_make(W.dir, "remote");
  assert_int_equal(uv_loop_init(&W.loop), 0);
  W.a = mk_host("a");
  W.b = mk_host("b");
  W.c = mk_host("c");
  listen_on(W.a, W.a_addr, sizeof W.a_addr);
  listen_on(W.c, W.c_addr, sizeof W.c_addr);
  assert_int_equal(p2p_host_handle(W.c, SVC_MCPP_PROTOCOL, silent_handler, NULL), 0);

  ts_queue_open(W.dir, "q.sqlite3", &W.q);
  W.pol = auth_policy_new();
  assert_int_equal(auth_policy_add_peer(W.pol, p2p_host_peer_id(W.b), NULL), 0);
  taskq_config tc;
  taskq_config_default(&tc);
  tc.queue = W.q;
  tc.policy = W.pol;
  tc.peer_id = p2p_host_peer_id(W.a);
  W.tq = taskq_new(&tc);
  W.reg_a = mcp_registry_new();
  assert_int_equal(taskq_rpc_tool_register(W.reg_a, W.tq), 0);
  assert_int_equal(mcp_dispatcher_new(&W.loop, W.reg_a, NULL, &W.disp_a), 0);
  svc_server_opts so = {0};
  so.loop = &W.loop;
  so.host = W.a;
  so.dispatcher = W.disp_a;
  so.policy = W.pol;
  so.rate_per_s = 100000;
  assert_int_equal(svc_server_start(&so, &W.srv), 0);

  W.reg_b = mcp_registry_new();
  assert_int_equal(svc_service_new(NULL, NULL, NULL, NULL, W.reg_b, &W.svc), 0);
  assert_int_equal(tools_meta_register(W.reg_b), 0);
  mcp_dispatcher_opts o = {.threads = 1, .max_threads = 2, .long_threads = 2};
  assert_int_equal(mcp_dispatcher_new(&W.loop, W.reg_b, &o, &W.disp_b), 0);
  assert_int_equal(svc_service_start(W.svc, &W.loop, W.b, W.disp_b), 0);
  return 0;
}

static void stopped(void *ud) { *(int *)ud = 1; }
static void host_closed(p2p_host *h, void *ud) {
  (void)h;
  (void)ud;
  W.hosts_closed++;
}

static int teardown(void **state) {
  (void)state;
  int done = 0;
  if (!W.svc_stopped) {
    svc_service_stop(W.svc, 2000, stopped, &done);
    run_until_int(&done, 1);
  }
  done = 0;
  svc_server_stop(W.srv, 2000, stopped, &done);
  run_until_int(&done, 1);
  svc_server_free(W.srv);
  mcp_dispatcher_shutdown(W.disp_a);
  mcp_dispatcher_shutdown(W.disp_b);
  p2p_host_close(W.a, host_closed, NULL);
  p2p_host_close(W.b, host_closed, NULL);
  p2p_host_close(W.c, host_closed, NULL);
  run_until_int(&W.hosts_closed, 3);
  mcp_dispatcher_free(W.disp_a);
  mcp_dispatcher_free(W.disp_b);
  int64_t end = clock_mono_ms() + 5000;
  while (uv_run(&W.loop, UV_RUN_NOWAIT) != 0 && clock_mono_ms() < end) usleep(1000);
  assert_int_equal(uv_loop_close(&W.loop), 0);
  svc_service_free(W.svc);
  mcp_registry_free(W.reg_b);
  mcp_registry_free(W.reg_a);
  taskq_free(W.tq);
  auth_policy_free(W.pol);
  tq_close(W.q);
  assert_int_equal(ts_tmpdir_remove(W.dir), 0);
  return 0;
}

/* ---------- calls on node B ---------- */

typedef struct outcome {
  int done;
  mcp_dispatch_status st;
  json_t *env;
  int64_t at_ms;
} outcome;

static void on_done(void *ud, const mcp_call_outcome *o) {
  outcome *out = ud;
  out->done++;
  out->st = o->status;
  json_decref(out->env);
  out->env = json_incref(o->envelope);
  out->at_ms = clock_mono_ms();
}

static const mcp_auth k_local = AUTH_CTX_LOCAL_INIT;

static mcp_call *call_b(const char *tool, json_t *args /* stolen */, uint32_t timeout_ms, outcome *out) {
  memset(out, 0, sizeof *out);
  mcp_call_request rq = {.tool = tool, .args = args, .auth = &k_local, .timeout_ms = timeout_ms};
  mcp_call *c = NULL;
  assert_int_equal(mcp_dispatch_start(W.disp_b, &rq, on_done, out, &c), 0);
  json_decref(args);
  return c;
}

static json_t *result_of(outcome *o) { return json_object_get(o->env, "result"); }

static void wait_inflight(mcp_dispatcher *d, size_t want) {
  int64_t end = clock_mono_ms() + 30000;
  while (mcp_dispatcher_inflight(d) != want && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_NOWAIT), usleep(1000);
  assert_int_equal(mcp_dispatcher_inflight(d), want);
}

/* No thread of B's pools is taken while B waits for a peer. */
static void assert_b_holds_no_thread(void) {
  assert_int_equal(workpool_pending(mcp_dispatcher_pool(W.disp_b)), 0);
  assert_int_equal(workpool_pending(mcp_dispatcher_long_pool(W.disp_b)), 0);
}

static void submit_never_run(char task_id[33]) {
  json_t *payload = json_pack("{s:s}", "never", "runs");
  tq_submit_req rq = {.task_type = "nobody.runs.this", .payload = payload};
  assert_int_equal(tq_submit(W.q, &rq, task_id, NULL), 0);
  json_decref(payload);
}

/* ---------- tests ---------- */

static void test_remote_status_answers_through_the_loop(void **state) {
  (void)state;
  outcome o;
  call_b("p2p_remote_status", json_pack("{s:s}", "remote_multiaddr", W.a_addr), 0, &o);
  run_until_int(&o.done, 1);
  assert_int_equal(o.st, MCP_DISPATCH_OK);
  assert_true(json_is_true(json_object_get(result_of(&o), "ok")));
  assert_string_equal(json_string_value(json_object_get(result_of(&o), "peer_id")), p2p_host_peer_id(W.a));
  json_decref(o.env);
}

static void test_remote_task_wait_cancelled_in_flight_stops_the_remote_wait(void **state) {
  (void)state;
  char tid[33];
  submit_never_run(tid);
  outcome o;
  mcp_call *c = call_b("p2p_remote_task_wait",
                       json_pack("{s:s, s:i, s:s}", "task_id", tid, "timeout_s", 120, "remote_multiaddr", W.a_addr), 0, &o);
  wait_inflight(W.disp_a, 1); /* A's wait op is running (on A's long pool) */
  assert_b_holds_no_thread();
  assert_int_equal(o.done, 0);
  int64_t t0 = clock_mono_ms();
  mcp_dispatch_cancel(c);
  run_until_int(&o.done, 1);
  assert_int_equal(o.st, MCP_DISPATCH_CANCELLED);
  assert_true(o.at_ms - t0 < 10000);
  /* the peer was told: its wait ends long before its 120 s */
  wait_inflight(W.disp_a, 0);
  assert_true(clock_mono_ms() - t0 < 30000);
  json_decref(o.env);
}

static void test_remote_call_to_a_silent_peer_times_out_at_its_deadline(void **state) {
  (void)state;
  outcome o;
  int64_t t0 = clock_mono_ms();
  call_b("p2p_remote_status", json_pack("{s:s, s:i}", "remote_multiaddr", W.c_addr, "timeout_s", 60), 1500, &o);
  run_until_int(&o.done, 1);
  assert_int_equal(o.st, MCP_DISPATCH_TIMEOUT);
  assert_true(o.at_ms - t0 >= 1400);
  assert_true(o.at_ms - t0 < 10000); /* the deadline, not the 60 s of the request */
  assert_int_equal(W.c_calls, 1);
  run_until_int(&W.c_cancelled, 1); /* the request was withdrawn on the wire */
  json_decref(o.env);
}

static void test_remote_call_detached_withdraws_the_request(void **state) {
  (void)state;
  outcome o;
  mcp_call *c = call_b("p2p_remote_task_wait",
                       json_pack("{s:s, s:i, s:s}", "task_id", "0123", "timeout_s", 60, "remote_multiaddr", W.c_addr), 0,
                       &o);
  run_until_int(&W.c_calls, 1);
  mcp_dispatch_detach(c); /* the transport went away */
  run_until_int(&W.c_cancelled, 1);
  for (int i = 0; i < 20; i++) uv_run(&W.loop, UV_RUN_NOWAIT), usleep(1000);
  assert_int_equal(o.done, 0);
  assert_int_equal(mcp_dispatcher_inflight(W.disp_b), 0);
}

static void test_service_stop_ends_pending_remote_calls(void **state) {
  (void)state;
  outcome o;
  call_b("p2p_remote_status", json_pack("{s:s, s:i}", "remote_multiaddr", W.c_addr, "timeout_s", 60), 0, &o);
  run_until_int(&W.c_calls, 1);
  int done = 0;
  svc_service_stop(W.svc, 2000, stopped, &done);
  W.svc_stopped = true;
  run_until_int(&o.done, 1);
  assert_int_equal(o.st, MCP_DISPATCH_TOOL_ERROR);
  assert_string_equal(json_string_value(json_object_get(o.env, "error")), "unreachable");
  run_until_int(&done, 1);
  /* and later calls answer at once */
  outcome o2;
  call_b("p2p_remote_status", json_pack("{s:s}", "remote_multiaddr", W.a_addr), 0, &o2);
  run_until_int(&o2.done, 1);
  assert_int_equal(o2.st, MCP_DISPATCH_TOOL_ERROR);
  assert_string_equal(json_string_value(json_object_get(o2.env, "error")), "p2p_disabled");
  json_decref(o.env);
  json_decref(o2.env);
}

static void test_tools_dispatch_of_a_remote_tool_from_a_worker(void **state) {
  (void)state;
  outcome o;
  call_b("tools_dispatch",
         json_pack("{s:s, s:s, s:{s:s}}", "category", "p2p", "tool", "p2p_remote_status", "params", "remote_multiaddr",
                   W.a_addr),
         0, &o);
  run_until_int(&o.done, 1);
  assert_int_equal(o.st, MCP_DISPATCH_OK);
  json_t *inner = result_of(&o);
  assert_string_equal(json_string_value(json_object_get(inner, "status")), "success");
  assert_true(json_is_true(json_object_get(json_object_get(inner, "result"), "ok")));
  json_decref(o.env);
}

static void test_tools_dispatch_of_a_remote_tool_cancelled(void **state) {
  (void)state;
  outcome o;
  mcp_call *c = call_b("tools_dispatch",
                       json_pack("{s:s, s:s, s:{s:s, s:s, s:i}}", "category", "p2p", "tool", "p2p_remote_task_wait",
                                 "params", "remote_multiaddr", W.c_addr, "task_id", "0123", "timeout_s", 60),
                       0, &o);
  run_until_int(&W.c_calls, 1);
  mcp_dispatch_cancel(c); /* reaches the nested call's cancel callback: the request is withdrawn */
  run_until_int(&o.done, 1);
  assert_int_equal(o.st, MCP_DISPATCH_CANCELLED);
  run_until_int(&W.c_cancelled, 1);
  json_decref(o.env);
}

static void test_remote_service_status_and_peers_run_on_the_loop(void **state) {
  (void)state;
  outcome o;
  call_b("p2p_service_status", json_object(), 0, &o);
  run_until_int(&o.done, 1);
  assert_int_equal(o.st, MCP_DISPATCH_OK);
  assert_string_equal(json_string_value(json_object_get(json_object_get(result_of(&o), "service"), "peer_id")),
                      p2p_host_peer_id(W.b));
  json_decref(o.env);
  call_b("p2p_list_peers", json_object(), 0, &o);
  run_until_int(&o.done, 1);
  assert_int_equal(o.st, MCP_DISPATCH_OK);
  assert_true(json_is_array(json_object_get(result_of(&o), "peers")));
  json_decref(o.env);
}

/* ---------- a bare PeerId searched for before the dial (issue 15 §3) ---------- */

/* A resolver that, one timer tick later, "finds" A: puts A's address in B's peer table. */
typedef struct fake_search {
  uv_timer_t t;
  void (*done)(void *, int);
  void *arg;
  bool find, answer;
  int calls;
  char peer[128];
} fake_search;
static fake_search FS;

static void fake_fire(uv_timer_t *t) {
  fake_search *f = t->data;
  if (f->find) {
    const char *one[1] = {W.a_addr};
    assert_true(p2p_host_add_peer_addrs(W.b, f->peer, one, 1, P2P_SRC_DHT) >= 0);
  }
  f->done(f->arg, f->find ? 0 : -ENOENT);
}

static int fake_resolve(void *ud, const char *peer_id, uint32_t timeout_ms, void (*done)(void *, int), void *arg) {
  fake_search *f = ud;
  (void)timeout_ms;
  f->calls++;
  f->done = done;
  f->arg = arg;
  snprintf(f->peer, sizeof f->peer, "%s", peer_id);
  if (f->answer) uv_timer_start(&f->t, fake_fire, 10, 0);
  return 0;
}

static void fake_closed(uv_handle_t *h) { (void)h; }

static void test_remote_bare_peer_id_found_by_the_resolver(void **state) {
  (void)state;
  memset(&FS, 0, sizeof FS);
  uv_timer_init(&W.loop, &FS.t);
  FS.t.data = &FS;
  FS.find = FS.answer = true;
  svc_service_set_resolver(W.svc, fake_resolve, &FS, 1000);
  outcome o;
  call_b("p2p_remote_status", json_pack("{s:s}", "remote_peer_id", p2p_host_peer_id(W.a)), 0, &o);
  run_until_int(&o.done, 1);
  assert_int_equal(FS.calls, 1); /* B did not know A: it asked */
  assert_int_equal(o.st, MCP_DISPATCH_OK);
  assert_string_equal(json_string_value(json_object_get(result_of(&o), "peer_id")), p2p_host_peer_id(W.a));
  json_decref(o.env);
  /* Known now: no second search. */
  call_b("p2p_remote_status", json_pack("{s:s}", "remote_peer_id", p2p_host_peer_id(W.a)), 0, &o);
  run_until_int(&o.done, 1);
  assert_int_equal(FS.calls, 1);
  assert_int_equal(o.st, MCP_DISPATCH_OK);
  json_decref(o.env);
  /* A multiaddr never asks. */
  call_b("p2p_remote_status", json_pack("{s:s}", "remote_multiaddr", W.a_addr), 0, &o);
  run_until_int(&o.done, 1);
  assert_int_equal(FS.calls, 1);
  json_decref(o.env);
  uv_close((uv_handle_t *)&FS.t, fake_closed);
}

static void test_remote_bare_peer_id_search_cancelled(void **state) {
  (void)state;
  memset(&FS, 0, sizeof FS);
  uv_timer_init(&W.loop, &FS.t);
  FS.t.data = &FS;
  FS.answer = false; /* the search is still running when the call goes */
  svc_service_set_resolver(W.svc, fake_resolve, &FS, 1000);
  outcome o;
  mcp_call *c = call_b("p2p_remote_status", json_pack("{s:s}", "remote_peer_id", p2p_host_peer_id(W.a)), 0, &o);
  for (int i = 0; i < 50 && !FS.calls; i++) uv_run(&W.loop, UV_RUN_NOWAIT), usleep(1000);
  assert_int_equal(FS.calls, 1);
  mcp_dispatch_cancel(c);
  run_until_int(&o.done, 1);
  assert_true(o.st != MCP_DISPATCH_OK); /* answered at once (cancelled) */
  json_decref(o.env);
  FS.done(FS.arg, -ENOENT); /* the search ends later: nothing left to answer, nothing leaked */
  uv_close((uv_handle_t *)&FS.t, fake_closed);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_remote_status_answers_through_the_loop),
      T(test_remote_task_wait_cancelled_in_flight_stops_the_remote_wait),
      T(test_remote_call_to_a_silent_peer_times_out_at_its_deadline),
      T(test_remote_call_detached_withdraws_the_request),
      T(test_service_stop_ends_pending_remote_calls),
      T(test_tools_dispatch_of_a_remote_tool_from_a_worker),
      T(test_tools_dispatch_of_a_remote_tool_cancelled),
      T(test_remote_service_status_and_peers_run_on_the_loop),
      T(test_remote_bare_peer_id_found_by_the_resolver),
      T(test_remote_bare_peer_id_search_cancelled),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
