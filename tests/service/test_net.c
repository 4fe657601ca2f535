/* test_net.c — the service over real libp2p hosts on 127.0.0.1, in one process and one loop:
 * server (host A), a trusted client (host B), a stranger (host C). Checks the wire contract
 * end to end: initialize, task_queue.rpc, tools/call, tools/list filtering, many requests on
 * one stream, the legacy NDJSON protocol, and that a stranger is refused. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "mcp/dispatch.h"
#include "mcp/registry.h"
#include "service/client.h"
#include "service/frame.h"
#include "util/jparse.h"
#include "service/mcpp.h"
#include "taskq/rpc_tool.h"
#include "service/server.h"
#include "taskq/table.h"
#include "util/clock.h"
#include "util/log.h"
#include "support/stores.h"
#include "support/tmpdir.h"
#include "support/wait.h"

typedef struct world {
  char dir[TS_TMPDIR_MAX];
  uv_loop_t loop;
  p2p_host *a, *b, *c;
  char a_addr[256];
  mcp_registry *reg;
  mcp_dispatcher *disp;
  tq_queue *q;
  ttlcache *cache;
  auth_policy *pol;
  taskq_ctx *tq;
  svc_server *srv;
  int hosts_closed;
} world;

static world W;
static uint32_t g_max_streams, g_init_timeout_ms, g_max_frames; /* server limits for the next setup */
static double g_rate_per_s; /* frames per second per peer for the next setup; 0 = 100000 (a
                              * burst of 100), SVC_RATE_UNLIMITED = no limit */

static mcp_tool_status echo_tool(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)call;
  (void)ud;
  *result = json_pack("{s:O}", "echo", args);
  return MCP_TOOL_OK;
}

/* Sleeps ms (default 2000) on the pool, stopping early when cancelled. */
static mcp_tool_status slow_tool(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)ud;
  json_int_t ms = json_integer_value(json_object_get(args, "ms"));
  (void)mcp_call_sleep(call, ms > 0 ? ms : 2000);
  *result = json_pack("{s:b}", "slept", 1);
  return MCP_TOOL_OK;
}

static mcp_tool_status failing_tool(mcp_call *call, json_t *args, json_t **result, void *ud) {
  (void)call, (void)args, (void)ud;
  *result = json_pack("{s:s}", "error", "failed on purpose");
  return MCP_TOOL_ERROR;
}

static void add_tool(const char *name, unsigned flags, uint64_t scopes) {
  mcp_tool_def d = {0};
  d.name = name;
  d.category = "test";
  d.description = "test tool";
  d.flags = flags;
  d.scopes = AUTH_SCOPES(scopes);
  d.fn = echo_tool;
  assert_int_equal(mcp_registry_add(W.reg, &d), 0);
}

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

/* Runs the loop until *flag or 20 s. */
static void run_until(int *flag) {
  int64_t end = clock_mono_ms() + 20000;
  while (!*flag && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  assert_true(*flag);
}

static int setup(void **state) {
  (void)state;
  memset(&W, 0, sizeof W);
  ts_tmpdir_make(W.dir, "svcnet");
  assert_int_equal(uv_loop_init(&W.loop), 0);
  W.a = mk_host("a");
  W.b = mk_host("b");
  W.c = mk_host("c");
  assert_int_equal(p2p_host_listen(W.a, "/ip4/127.0.0.1/tcp/0"), 0);
  const char *addrs[4];
  assert_true(p2p_host_listen_addrs(W.a, addrs, 4) >= 1);
  snprintf(W.a_addr, sizeof W.a_addr, "%s/p2p/%s", addrs[0], p2p_host_peer_id(W.a));

  ts_queue_open(W.dir, "q.sqlite3", &W.q);
  ts_cache_open(W.dir, "cache", &W.cache);

  W.pol = auth_policy_new();
  assert_int_equal(auth_policy_add_peer(W.pol, p2p_host_peer_id(W.b), NULL), 0);
  taskq_config tc;
  taskq_config_default(&tc);
  tc.queue = W.q;
  tc.cache = W.cache;
  tc.policy = W.pol;
  tc.peer_id = p2p_host_peer_id(W.a);
  W.tq = taskq_new(&tc);

  W.reg = mcp_registry_new();
  add_tool("echo", MCP_TOOL_REMOTE, AUTH_TOOL_CALL);
  add_tool("secret", 0, 0);
  mcp_tool_def sd = {.name = "slow", .category = "test", .description = "sleeps", .flags = MCP_TOOL_REMOTE,
                     .scopes = AUTH_SCOPES(AUTH_TOOL_CALL), .fn = slow_tool};
  assert_int_equal(mcp_registry_add(W.reg, &sd), 0);
  mcp_tool_def fd = {.name = "failing", .category = "test", .description = "fails", .flags = MCP_TOOL_REMOTE | MCP_TOOL_INLINE,
                     .scopes = AUTH_SCOPES(AUTH_TOOL_CALL), .fn = failing_tool};
  assert_int_equal(mcp_registry_add(W.reg, &fd), 0);
  assert_int_equal(taskq_rpc_tool_register(W.reg, W.tq), 0);
  assert_int_equal(mcp_dispatcher_new(&W.loop, W.reg, NULL, &W.disp), 0);

  svc_server_opts so = {0};
  so.loop = &W.loop;
  so.host = W.a;
  so.dispatcher = W.disp;
  so.policy = W.pol;
  so.rate_per_s = g_rate_per_s != 0 ? g_rate_per_s : 100000;
  so.rate_burst = g_rate_per_s > 0 ? 2 : 0;
  so.legacy = true;
  so.max_streams_per_peer = g_max_streams;
  so.init_timeout_ms = g_init_timeout_ms;
  so.max_frames = g_max_frames;
  assert_int_equal(svc_server_start(&so, &W.srv), 0);
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
  if (W.srv) { /* a test may have stopped it */
    int done = 0;
    svc_server_stop(W.srv, 2000, stopped, &done);
    run_until(&done);
    svc_server_free(W.srv);
  }
  mcp_dispatcher_shutdown(W.disp);
  p2p_host_close(W.a, host_closed, NULL);
  p2p_host_close(W.b, host_closed, NULL);
  p2p_host_close(W.c, host_closed, NULL);
  int64_t end = clock_mono_ms() + 10000;
  while (W.hosts_closed < 3 && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  mcp_dispatcher_free(W.disp);
  end = clock_mono_ms() + 5000;
  while (uv_run(&W.loop, UV_RUN_NOWAIT) != 0 && clock_mono_ms() < end) usleep(1000);
  assert_int_equal(uv_loop_close(&W.loop), 0);
  mcp_registry_free(W.reg);
  taskq_free(W.tq);
  auth_policy_free(W.pol);
  tq_close(W.q);
  ttlcache_close(W.cache);
  assert_int_equal(ts_tmpdir_remove(W.dir), 0);
  return 0;
}

/* One reply captured. */
typedef struct got {
  int done;
  int err;
  json_t *result, *error;
} got;

static void got_cb(void *ud, int err, json_t *result, json_t *error) {
  got *g = ud;
  g->done = 1;
  g->err = err;
  g->result = json_incref(result);
  g->error = json_incref(error);
}

static void got_clear(got *g) {
  json_decref(g->result);
  json_decref(g->error);
  memset(g, 0, sizeof *g);
}

static json_t *rpc(svc_client *cl, const char *text, got *g) {
  json_t *m = json_loads(text, 0, NULL);
  assert_non_null(m);
  memset(g, 0, sizeof *g);
  assert_int_equal(svc_client_rpc(cl, m, 0, got_cb, g), 0);
  json_decref(m);
  run_until(&g->done);
  assert_int_equal(g->err, 0);
  return g->result;
}

static svc_client *mk_client(p2p_host *h) {
  svc_client *cl;
  assert_int_equal(svc_client_new(&W.loop, h, W.a_addr, NULL, &cl), 0);
  return cl;
}

static void test_trusted_peer_uses_queue_tools_and_one_stream(void **state) {
  (void)state;
  svc_client *cl = mk_client(W.b);
  got g;
  json_t *r = rpc(cl, "{\"op\":\"status\"}", &g);
  assert_true(json_is_true(json_object_get(r, "ok")));
  assert_string_equal(json_string_value(json_object_get(r, "peer_id")), p2p_host_peer_id(W.a));
  const json_t *info = svc_client_server_info(cl);
  assert_string_equal(json_string_value(json_object_get(info, "transport")), "/mcp+p2p/1.0.0");
  assert_string_equal(json_string_value(json_object_get(json_object_get(info, "server"), "peer_id")),
                      p2p_host_peer_id(W.a));
  got_clear(&g);

  r = rpc(cl, "{\"op\":\"submit\",\"task_type\":\"tool.call\",\"payload\":{\"tool\":\"echo\",\"args\":{\"x\":1}}}", &g);
  assert_true(json_is_true(json_object_get(r, "ok")));
  char id[64];
  snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r, "task_id")));
  got_clear(&g);
  char text[256];
  snprintf(text, sizeof text, "{\"op\":\"get\",\"task_id\":\"%s\"}", id);
  r = rpc(cl, text, &g);
  assert_string_equal(json_string_value(json_object_get(json_object_get(r, "task"), "status")), "queued");
  got_clear(&g);

  /* the call_tool op runs the tool as a child call */
  r = rpc(cl, "{\"op\":\"call_tool\",\"tool_name\":\"echo\",\"args\":{\"y\":2}}", &g);
  assert_true(json_is_true(json_object_get(r, "ok")));
  assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(r, "result"), "echo"), "y")), 2);
  got_clear(&g);
  /* a local-only tool does not exist for a peer */
  r = rpc(cl, "{\"op\":\"call_tool\",\"tool_name\":\"secret\"}", &g);
  assert_string_equal(json_string_value(json_object_get(r, "error")), "unknown_tool");
  got_clear(&g);

  /* 200 pipelined requests on the same stream */
  got many[200];
  memset(many, 0, sizeof many);
  json_t *m = json_pack("{s:s}", "op", "status");
  for (int i = 0; i < 200; i++) assert_int_equal(svc_client_rpc(cl, m, 0, got_cb, &many[i]), 0);
  json_decref(m);
  for (int i = 0; i < 200; i++) {
    run_until(&many[i].done);
    assert_int_equal(many[i].err, 0);
    assert_true(json_is_true(json_object_get(many[i].result, "ok")));
    got_clear(&many[i]);
  }
  uint64_t streams = 0, retries = 0;
  svc_client_counters(cl, &streams, &retries);
  assert_int_equal(streams, 1);
  assert_int_equal(retries, 0);
  svc_client_close(cl);
}

static void test_tools_call_and_list_for_trusted_peer(void **state) {
  (void)state;
  svc_client *cl = mk_client(W.b);
  got g = {0};
  json_t *args = json_pack("{s:i}", "z", 3);
  assert_int_equal(svc_client_call_tool(cl, "echo", args, false, 0, got_cb, &g), 0);
  json_decref(args);
  run_until(&g.done);
  assert_int_equal(g.err, 0);
  assert_true(json_is_false(json_object_get(g.result, "isError")));
  assert_int_equal(
      json_integer_value(json_object_get(json_object_get(json_object_get(g.result, "structuredContent"), "echo"), "z")), 3);
  got_clear(&g);
  assert_int_equal(svc_client_request(cl, "tools/list", NULL, true, 0, got_cb, &g), 0);
  run_until(&g.done);
  json_t *tools = json_object_get(g.result, "tools");
  assert_int_equal(json_array_size(tools), 4); /* echo, slow, failing, task_queue.rpc — not secret */
  got_clear(&g);
  svc_client_close(cl);
}

/* The text fast path (svc_client_call_tool_text): the reply as checked text spans, no tree. */
typedef struct tgot {
  int done, err;
  char result[4096], error[1024];
  bool has_result, has_error, has_nul;
  int is_error;
} tgot;

static void tgot_cb(void *ud, int err, const svc_client_reply *rep) {
  tgot *g = ud;
  g->done = 1;
  g->err = err;
  if (err < 0) {
    assert_null(rep);
    return;
  }
  assert_true((rep->result != NULL) != (rep->error != NULL)); /* exactly one */
  if (rep->result) snprintf(g->result, sizeof g->result, "%.*s", (int)rep->result_len, rep->result);
  if (rep->error) snprintf(g->error, sizeof g->error, "%.*s", (int)rep->error_len, rep->error);
  g->has_result = rep->result != NULL;
  g->has_error = rep->error != NULL;
  g->has_nul = rep->has_nul;
  g->is_error = rep->is_error;
}

static void test_tools_call_text_fast_path(void **state) {
  (void)state;
  svc_client *cl = mk_client(W.b);
  tgot t = {0};
  got g = {0};
  /* a text call and a tree call in flight together */
  const char *args = "{\"z\":3,\"s\":\"caf\u00e9\"}";
  assert_int_equal(svc_client_call_tool_text(cl, "echo", args, strlen(args), false, 0, tgot_cb, &t), 0);
  json_t *ja = json_pack("{s:i}", "z", 4);
  assert_int_equal(svc_client_call_tool(cl, "echo", ja, false, 0, got_cb, &g), 0);
  json_decref(ja);
  run_until(&t.done);
  run_until(&g.done);
  assert_int_equal(t.err, 0);
  assert_true(t.has_result);
  assert_false(t.has_nul);
  json_t *r = NULL;
  assert_int_equal(jparse(t.result, strlen(t.result), 64, &r, NULL), 0);
  assert_true(json_is_false(json_object_get(r, "isError")));
  assert_int_equal(t.is_error, SVC_CLIENT_IS_ERROR_FALSE); /* read while the reply was checked */
  json_t *echo = json_object_get(json_object_get(r, "structuredContent"), "echo");
  assert_int_equal(json_integer_value(json_object_get(echo, "z")), 3);
  assert_string_equal(json_string_value(json_object_get(echo, "s")), "caf\xc3\xa9");
  json_decref(r);
  const char *v;
  size_t vn;
  assert_int_equal(jparse_find(t.result, strlen(t.result), "isError", &v, &vn), 0);
  assert_int_equal(vn, 5);
  assert_int_equal(g.err, 0);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(g.result, "structuredContent"), "echo"), "z")), 4);
  got_clear(&g);

  /* a NUL (escaped) in a value comes back flagged */
  memset(&t, 0, sizeof t);
  args = "{\"s\":\"a\\u0000b\"}";
  assert_int_equal(svc_client_call_tool_text(cl, "echo", args, strlen(args), false, 0, tgot_cb, &t), 0);
  run_until(&t.done);
  assert_int_equal(t.err, 0);
  assert_true(t.has_nul);

  /* a tool error: isError true, said with the reply */
  memset(&t, 0, sizeof t);
  assert_int_equal(svc_client_call_tool_text(cl, "failing", "{}", 2, false, 0, tgot_cb, &t), 0);
  run_until(&t.done);
  assert_int_equal(t.err, 0);
  assert_true(t.has_result);
  assert_int_equal(t.is_error, SVC_CLIENT_IS_ERROR_TRUE);
  const char *ev;
  size_t evn;
  assert_int_equal(jparse_find(t.result, strlen(t.result), "isError", &ev, &evn), 0);
  assert_int_equal(evn, 4); /* true: the text agrees */

  /* arguments that are not one valid object are refused before anything is queued (the server
   * would refuse the frame and close the stream under every request on it) */
  static const char *bad[] = {"{\"a\":1,\"a\":2}", "[1]", "{", "{\"a\":1} x", "\"s\"", "{\"\\u0000\":1}", ""};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(svc_client_call_tool_text(cl, "echo", bad[i], strlen(bad[i]), false, 0, tgot_cb, &t), -EINVAL);
  assert_int_equal(svc_client_pending(cl), 0);
  /* NULL arguments mean {} */
  memset(&t, 0, sizeof t);
  assert_int_equal(svc_client_call_tool_text(cl, "echo", NULL, 0, false, 0, tgot_cb, &t), 0);
  run_until(&t.done);
  assert_true(t.has_result);

  /* cancelled: the callback never runs */
  memset(&t, 0, sizeof t);
  assert_int_equal(svc_client_call_tool_text(cl, "echo", "{}", 2, false, 0, tgot_cb, &t), 0);
  assert_int_equal(svc_client_cancel_text(cl, tgot_cb, &t), 0);
  assert_int_equal(svc_client_cancel_text(cl, tgot_cb, &t), -ENOENT);
  for (int i = 0; i < 50; i++) uv_run(&W.loop, UV_RUN_NOWAIT);
  assert_int_equal(t.done, 0);
  uint64_t streams = 0;
  svc_client_counters(cl, &streams, NULL);
  assert_int_equal(streams, 1);
  svc_client_close(cl);

  /* an error reply (a stranger may not call tools) comes as error text */
  cl = mk_client(W.c);
  memset(&t, 0, sizeof t);
  assert_int_equal(svc_client_call_tool_text(cl, "echo", "{}", 2, false, 0, tgot_cb, &t), 0);
  run_until(&t.done);
  assert_int_equal(t.err, 0);
  assert_true(t.has_error);
  json_t *e = NULL;
  assert_int_equal(jparse(t.error, strlen(t.error), 64, &e, NULL), 0);
  assert_int_equal(json_integer_value(json_object_get(e, "code")), -32001);
  json_decref(e);
  svc_client_close(cl);
}

/* Pipelined text calls whose params text lies in the request record or, past its room, in an
 * allocation of its own, on records reused from earlier requests (more calls than the client keeps
 * spare, several rounds): every call gets the echo of its own arguments. A tool name that needs
 * an escape (written by the scratch writer) still makes a frame the server reads (it answers an
 * unknown tool; the stream carries on). */
#define TSIZES 96
static void test_tools_call_text_params_of_every_size_on_reused_records(void **state) {
  (void)state;
  svc_client *cl = mk_client(W.b);
  static tgot t[TSIZES];
  static char args[TSIZES][400];
  for (int round = 0; round < 2; round++) {
    memset(t, 0, sizeof t);
    for (int i = 0; i < TSIZES; i++) {
      /* {"i":N,"s":"xxx…"}: the params text ({"name":"echo","arguments":…}) from ~45 bytes to
       * well past the record's 160 */
      int len = (i * 3 + round) % 260;
      char pad[300];
      memset(pad, 'a' + i % 26, (size_t)len);
      pad[len] = 0;
      snprintf(args[i], sizeof args[i], "{\"i\":%d,\"s\":\"%s\"}", i, pad);
      assert_int_equal(svc_client_call_tool_text(cl, "echo", args[i], strlen(args[i]), false, 0, tgot_cb, &t[i]), 0);
    }
    for (int i = 0; i < TSIZES; i++) {
      run_until(&t[i].done);
      assert_int_equal(t[i].err, 0);
      assert_true(t[i].has_result);
      json_t *r = NULL, *want = NULL;
      assert_int_equal(jparse(t[i].result, strlen(t[i].result), 64, &r, NULL), 0);
      assert_int_equal(jparse(args[i], strlen(args[i]), 64, &want, NULL), 0);
      assert_true(json_equal(json_object_get(json_object_get(r, "structuredContent"), "echo"), want));
      json_decref(r);
      json_decref(want);
    }
  }
  static const char *odd[] = {"ec\"ho", "ech\\o", "\xc3\xa9" "cho", "e\x01" "cho", "e\x7f" "cho"};
  for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
    tgot g = {0};
    assert_int_equal(svc_client_call_tool_text(cl, odd[i], "{}", 2, false, 0, tgot_cb, &g), 0);
    run_until(&g.done);
    assert_int_equal(g.err, 0); /* answered (an error or isError), not a broken stream */
  }
  svc_client_close(cl);
}

/* A text callback may close its client and still read its reply (borrowed for the callback's
 * duration, also when closing freed the stream): ASan reports it if not. */
typedef struct tcloser {
  svc_client *cl;
  tgot g;
} tcloser;

static void tclose_in_cb(void *ud, int err, const svc_client_reply *rep) {
  tcloser *k = ud;
  svc_client_close(k->cl);
  tgot_cb(&k->g, err, rep);
}

/* The server stops while a client's stream is open and idle: its FIN reaches the client's
 * on_eof, which ends the stream — the stream's close frees the client's stream state inside
 * that call, so on_eof must not look at it afterwards (it did: ASan's heap-use-after-free). */
static void test_client_stream_ended_by_a_stopping_server(void **state) {
  (void)state;
  svc_client *cl = mk_client(W.b);
  got g = {0};
  json_t *args = json_pack("{s:i}", "z", 1);
  assert_int_equal(svc_client_call_tool(cl, "echo", args, false, 0, got_cb, &g), 0);
  json_decref(args);
  run_until(&g.done);
  assert_int_equal(g.err, 0);
  got_clear(&g);
  int done = 0;
  svc_server_stop(W.srv, 2000, stopped, &done);
  run_until(&done);
  svc_server_free(W.srv);
  W.srv = NULL;
  for (int i = 0; i < 50; i++) uv_run(&W.loop, UV_RUN_NOWAIT);
  svc_client_close(cl);
}

/* A call's deadline fires on time while pipelined calls come and go on the same client: the
 * client re-arms its timer only when a request needs an earlier tick than the one set (a
 * request with a shorter deadline, one not sent, a retry), and an answer never moves it later.
 * "slow" (2 s on the pool) with a 300 ms deadline among echo calls with the default 30 s one:
 * it must fail with -ETIMEDOUT long before the echo calls' deadline. */
typedef struct chain {
  svc_client *cl;
  int left, done, errs;
} chain;
static void chain_cb(void *ud, int err, const svc_client_reply *r) {
  (void)r;
  chain *ch = ud;
  if (err) ch->errs++;
  if (ch->left > 0) {
    ch->left--;
    assert_int_equal(svc_client_call_tool_text(ch->cl, "echo", "{}", 2, false, 0, chain_cb, ch), 0);
  } else {
    ch->done++;
  }
}
typedef struct tgot_at {
  int done, err;
  int64_t at_ms;
} tgot_at;
static void tgot_at_cb(void *ud, int err, const svc_client_reply *r) {
  (void)r;
  tgot_at *t = ud;
  t->done = 1;
  t->err = err;
  t->at_ms = clock_mono_ms();
}
static void test_client_deadline_fires_among_pipelined_calls(void **state) {
  (void)state;
  svc_client *cl = mk_client(W.b);
  static chain ch; /* static: a failed assertion leaves callbacks that still point here */
  static tgot_at t;
  ch = (chain){.cl = cl, .left = 1000000};
  t = (tgot_at){0};
  for (int i = 0; i < 4; i++) assert_int_equal(svc_client_call_tool_text(cl, "echo", "{}", 2, false, 0, chain_cb, &ch), 0);
  for (int i = 0; i < 200 && svc_client_pending(cl); i++) uv_run(&W.loop, UV_RUN_ONCE); /* the chain runs */
  int64_t t0 = clock_mono_ms();
  assert_int_equal(svc_client_call_tool_text(cl, "slow", "{\"ms\":2000}", 11, false, 300, tgot_at_cb, &t), 0);
  run_until(&t.done);
  assert_int_equal(t.err, -ETIMEDOUT);
  assert_true(t.at_ms - t0 < 1900); /* well before the tool would have answered */
  ch.left = 0; /* the chain winds down */
  int64_t end = clock_mono_ms() + 20000;
  while (ch.done < 4 && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  assert_int_equal(ch.done, 4);
  assert_int_equal(ch.errs, 0);
  svc_client_close(cl);
}

static int setup_unlimited_rate(void **state) {
  g_rate_per_s = SVC_RATE_UNLIMITED; /* as the node's default for trusted peers: nothing paced */
  int rc = setup(state);
  g_rate_per_s = 0;
  return rc;
}

static void inline_chain_cb(void *ud, int err, const svc_client_reply *r) {
  (void)r;
  chain *ch = ud;
  if (err) ch->errs++;
  if (ch->left > 0) {
    ch->left--;
    if (svc_client_call_tool_text(ch->cl, "echo_inline", "{}", 2, false, 0, inline_chain_cb, ch) != 0) ch->errs++;
  } else {
    ch->done++;
  }
}

/* At 16 calls in flight on one stream, each batch of requests and each batch of answers crosses
 * in ONE write (one TCP send carrying one Noise message), both ways: the client writes the calls
 * its reply callbacks made once the delivery returns, the server answers a read's requests with
 * one flush. This is what keeps a remote call's kernel work at one epoll_wait + read + sendto per
 * batch on each side, as many syscalls as the stdio pair (bench/p2p/kcost.sh, bench/RESULTS.md
 * 2026-12-07 net9). The tool is inline, so every answer is made inside the server's read, and
 * the rate is unlimited (with a token bucket the client paces requests and a batch may split). */
static void test_pipelined_batches_cross_in_one_write_each_way(void **state) {
  (void)state;
  mcp_tool_def d = {.name = "echo_inline", .category = "test", .description = "echo on the loop",
                    .flags = MCP_TOOL_REMOTE | MCP_TOOL_INLINE, .scopes = AUTH_SCOPES(AUTH_TOOL_CALL), .fn = echo_tool};
  assert_int_equal(mcp_registry_add(W.reg, &d), 0);
  svc_client *cl = mk_client(W.b);
  tgot t = {0};
  assert_int_equal(svc_client_call_tool_text(cl, "echo_inline", "{}", 2, false, 0, tgot_cb, &t), 0);
  run_until(&t.done); /* connected, identified, the stream open */
  assert_int_equal(t.err, 0);
  assert_true(t.has_result);
  int64_t end = clock_mono_ms() + 100; /* identify and its pushes settle */
  while (clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_NOWAIT);

  enum { INFLIGHT = 16, BATCHES = 32 };
  static chain ch; /* static: a failed assertion leaves callbacks that still point here */
  ch = (chain){.cl = cl, .left = INFLIGHT * (BATCHES - 1)};
  p2p_host_stats a0, b0, a1, b1;
  p2p_host_get_stats(W.a, &a0);
  p2p_host_get_stats(W.b, &b0);
  for (int i = 0; i < INFLIGHT; i++) assert_int_equal(svc_client_call_tool_text(cl, "echo_inline", "{}", 2, false, 0, inline_chain_cb, &ch), 0);
  end = clock_mono_ms() + 20000;
  while (ch.done < INFLIGHT && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
  assert_int_equal(ch.done, INFLIGHT);
  assert_int_equal(ch.errs, 0);
  p2p_host_get_stats(W.a, &a1);
  p2p_host_get_stats(W.b, &b1);
  uint64_t srv_writes = a1.writes_out - a0.writes_out, cli_writes = b1.writes_out - b0.writes_out;
  /* one write a batch each way (+1 for a Yamux window update that may leave on its own) — 512
   * calls, so one write per call or per few calls is far outside */
  assert_in_range(srv_writes, BATCHES, BATCHES + 1);
  assert_in_range(cli_writes, BATCHES, BATCHES + 1);
  assert_int_equal(a1.noise_frames_out - a0.noise_frames_out, srv_writes);
  assert_int_equal(b1.noise_frames_out - b0.noise_frames_out, cli_writes);
  svc_client_close(cl);
}

static void test_client_closed_inside_its_text_callback(void **state) {
  (void)state;
  tcloser k = {.cl = mk_client(W.b)};
  assert_int_equal(svc_client_call_tool_text(k.cl, "echo", "{\"q\":1}", 7, false, 0, tclose_in_cb, &k), 0);
  run_until(&k.g.done);
  assert_int_equal(k.g.err, 0);
  assert_non_null(strstr(k.g.result, "\"q\":1"));
  for (int i = 0; i < 50; i++) uv_run(&W.loop, UV_RUN_NOWAIT);
}

/* A reply callback may close its client (a one-shot caller does): the client must not touch
 * the stream after that (ASan reports a use-after-free if it does). */
typedef struct closer {
  svc_client *cl;
  got g;
} closer;

static void close_in_cb(void *ud, int err, json_t *result, json_t *error) {
  closer *k = ud;
  got_cb(&k->g, err, result, error);
  svc_client_close(k->cl);
}

static void test_client_closed_inside_its_reply_callback(void **state) {
  (void)state;
  closer k = {.cl = mk_client(W.b)};
  json_t *m = json_pack("{s:s}", "op", "status");
  assert_int_equal(svc_client_rpc(k.cl, m, 0, close_in_cb, &k), 0);
  json_decref(m);
  run_until(&k.g.done);
  assert_int_equal(k.g.err, 0);
  assert_true(json_is_true(json_object_get(k.g.result, "ok")));
  got_clear(&k.g);
  /* the stream's close and the client's free happen on later turns */
  for (int i = 0; i < 50; i++) uv_run(&W.loop, UV_RUN_NOWAIT);
}

static void test_stranger_is_refused_everywhere(void **state) {
  (void)state;
  svc_client *cl = mk_client(W.c);
  got g;
  json_t *r = rpc(cl, "{\"op\":\"submit\",\"payload\":{}}", &g);
  assert_string_equal(json_string_value(json_object_get(r, "error")), "unauthorized");
  got_clear(&g);
  r = rpc(cl, "{\"op\":\"cache.get\",\"key\":\"k\"}", &g);
  assert_string_equal(json_string_value(json_object_get(r, "error")), "unauthorized");
  got_clear(&g);
  r = rpc(cl, "{\"op\":\"status\"}", &g);
  assert_true(json_is_true(json_object_get(r, "ok")));
  got_clear(&g);
  memset(&g, 0, sizeof g);
  assert_int_equal(svc_client_request(cl, "tools/list", NULL, true, 0, got_cb, &g), 0);
  run_until(&g.done);
  assert_int_equal(json_array_size(json_object_get(g.result, "tools")), 0);
  got_clear(&g);
  assert_int_equal(svc_client_call_tool(cl, "echo", NULL, false, 0, got_cb, &g), 0);
  run_until(&g.done);
  assert_non_null(g.error);
  assert_int_equal(json_integer_value(json_object_get(g.error, "code")), -32001);
  got_clear(&g);
  svc_client_close(cl);
}

/* --- legacy NDJSON, raw --- */
typedef struct raw {
  int done;
  char buf[8192];
  size_t len;
  const char *send;
} raw;

static void raw_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  raw *r = ud;
  (void)s;
  if (r->len + n < sizeof r->buf) {
    memcpy(r->buf + r->len, d, n);
    r->len += n;
  }
}
static void raw_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}
static void raw_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  ((raw *)ud)->done = 1;
}
static const p2p_stream_callbacks raw_cbs = {raw_data, raw_eof, NULL, raw_close};
static void raw_open(p2p_stream *s, int err, void *ud) {
  raw *r = ud;
  if (err < 0) {
    r->done = 1;
    return;
  }
  p2p_stream_set_callbacks(s, &raw_cbs, r);
  int rc = p2p_stream_write(s, r->send, strlen(r->send));
  assert_true(rc >= 0);
}

static void test_legacy_ndjson_one_request_per_stream(void **state) {
  (void)state;
  raw r = {0};
  r.send = "{\"op\": \"status\"}\n";
  assert_int_equal(p2p_host_open_stream(W.b, W.a_addr, SVC_LEGACY_PROTOCOL, raw_open, &r), 0);
  run_until(&r.done);
  r.buf[r.len] = 0;
  assert_true(r.len > 0);
  assert_int_equal(r.buf[r.len - 1], '\n');
  json_t *v = json_loads(r.buf, 0, NULL);
  assert_non_null(v);
  assert_true(json_is_true(json_object_get(v, "ok")));
  assert_string_equal(json_string_value(json_object_get(v, "peer_id")), p2p_host_peer_id(W.a));
  json_decref(v);
  /* junk gets invalid_json */
  raw j = {0};
  j.send = "not json\n";
  assert_int_equal(p2p_host_open_stream(W.b, W.a_addr, SVC_LEGACY_PROTOCOL, raw_open, &j), 0);
  run_until(&j.done);
  j.buf[j.len] = 0;
  v = json_loads(j.buf, 0, NULL);
  assert_string_equal(json_string_value(json_object_get(v, "error")), "invalid_json");
  json_decref(v);
}

static int setup_limits(void **state) {
  g_max_streams = 2;
  g_init_timeout_ms = 300;
  int rc = setup(state);
  g_max_streams = 0;
  g_init_timeout_ms = 0;
  return rc;
}

static void test_streams_per_peer_are_capped(void **state) {
  (void)state;
  svc_client_opts o = {0};
  o.no_retries = true;
  svc_client *cl[3];
  got g[3];
  memset(g, 0, sizeof g);
  json_t *m = json_pack("{s:s}", "op", "status");
  for (int i = 0; i < 3; i++) {
    assert_int_equal(svc_client_new(&W.loop, W.b, W.a_addr, &o, &cl[i]), 0);
    assert_int_equal(svc_client_rpc(cl[i], m, 5000, got_cb, &g[i]), 0);
    run_until(&g[i].done); /* one at a time: the first two keep their streams open */
  }
  json_decref(m);
  assert_int_equal(g[0].err, 0);
  assert_int_equal(g[1].err, 0);
  assert_true(g[2].err < 0); /* the third stream was reset */
  for (int i = 0; i < 3; i++) {
    got_clear(&g[i]);
    svc_client_close(cl[i]);
  }
}

static void test_silent_stream_is_closed_after_init_timeout(void **state) {
  (void)state;
  raw r = {0};
  r.send = ""; /* opens the stream, says nothing */
  int64_t t0 = clock_mono_ms();
  assert_int_equal(p2p_host_open_stream(W.b, W.a_addr, SVC_MCPP_PROTOCOL, raw_open, &r), 0);
  run_until(&r.done);
  assert_int_equal(r.len, 0);
  assert_true(clock_mono_ms() - t0 < 15000); /* the 300 ms init timeout, under load */
}

static int setup_few_frames(void **state) {
  g_max_frames = 5; /* like a Python server with a small MCP_P2P_MAX_FRAMES */
  int rc = setup(state);
  g_max_frames = 0;
  return rc;
}

static void test_client_rotates_streams_before_the_frame_cap(void **state) {
  (void)state;
  svc_client_opts o = {0};
  o.no_retries = true; /* rotation must not need retries */
  svc_client *cl;
  assert_int_equal(svc_client_new(&W.loop, W.b, W.a_addr, &o, &cl), 0);
  got g[20];
  memset(g, 0, sizeof g);
  /* submits are not idempotent: none may be lost or duplicated by the rotation */
  json_t *m = json_pack("{s:s, s:s, s:{}}", "op", "submit", "task_type", "tool.call", "payload");
  for (int i = 0; i < 20; i++) assert_int_equal(svc_client_rpc(cl, m, 10000, got_cb, &g[i]), 0);
  json_decref(m);
  for (int i = 0; i < 20; i++) {
    run_until(&g[i].done);
    assert_int_equal(g[i].err, 0);
    assert_true(json_is_true(json_object_get(g[i].result, "ok")));
    got_clear(&g[i]);
  }
  uint64_t streams = 0, retries = 0;
  svc_client_counters(cl, &streams, &retries);
  assert_int_equal(streams, 5); /* 4 requests + initialize per stream */
  assert_int_equal(retries, 0);
  svc_client_close(cl);
  tq_counts cnt;
  assert_int_equal(tq_count(W.q, &cnt), 0);
  assert_int_equal(cnt.by_status[TQ_QUEUED], 20);
}

static int setup_tight_rate(void **state) {
  g_rate_per_s = 4; /* strangers: 4 frames a second, a burst of 2 */
  int rc = setup(state);
  g_rate_per_s = 0;
  return rc;
}

/* Two clients of one peer share the server's per-peer bucket but each paces itself by its own
 * view of it, so frames are refused. A refused request is sent again on a fresh stream; that
 * stream's initialize must wait for the bucket too (and a refused initialize is a refusal, not
 * a failure): every request still gets its answer. */
static void test_clients_sharing_a_tight_bucket_lose_no_request(void **state) {
  (void)state;
  enum { PER = 2 }; /* few: under a starved loop each stall lets both clients overdraw the shared bucket again */
  svc_client_opts o = {0};
  svc_client *cl[2];
  got g[2][PER];
  memset(g, 0, sizeof g);
  json_t *m = json_pack("{s:s}", "op", "status");
  for (int k = 0; k < 2; k++) {
    assert_int_equal(svc_client_new(&W.loop, W.c, W.a_addr, &o, &cl[k]), 0);
    for (int i = 0; i < PER; i++) assert_int_equal(svc_client_rpc(cl[k], m, 60000, got_cb, &g[k][i]), 0);
  }
  json_decref(m);
  uint64_t refused = 0;
  for (int k = 0; k < 2; k++) {
    for (int i = 0; i < PER; i++) {
      int64_t end = clock_mono_ms() + 60000;
      while (!g[k][i].done && clock_mono_ms() < end) uv_run(&W.loop, UV_RUN_ONCE);
      assert_true(g[k][i].done);
      assert_int_equal(g[k][i].err, 0);
      assert_true(json_is_true(json_object_get(g[k][i].result, "ok")));
      got_clear(&g[k][i]);
    }
  }
  for (int k = 0; k < 2; k++) {
    svc_client_stats cs;
    svc_client_stats_get(cl[k], &cs);
    refused += cs.refused;
    svc_client_close(cl[k]);
  }
  assert_true(refused > 0); /* the bucket was shared: the clients' views of it were wrong */
}

/* A request that reaches its deadline without ever going out (here the dial hangs: the
 * listener takes the TCP connection and never answers the handshake) ends with -ETIMEDOUT,
 * and the client says what it was waiting for: the caller alone cannot tell it from a server
 * that never answered. */
static void test_request_timed_out_unsent_is_explained(void **state) {
  (void)state;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(ls >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(ls, 4), 0);
  assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
  char target[300];
  snprintf(target, sizeof target, "/ip4/127.0.0.1/tcp/%u/p2p/%s", (unsigned)ntohs(sa.sin_port), p2p_host_peer_id(W.a));
  char path[512];
  snprintf(path, sizeof path, "%s/client.log", W.dir);
  FILE *lf = fopen(path, "w+");
  assert_non_null(lf);
  log_set_fd(fileno(lf));
  svc_client *cl;
  assert_int_equal(svc_client_new(&W.loop, W.b, target, NULL, &cl), 0);
  got g;
  memset(&g, 0, sizeof g);
  json_t *m = json_pack("{s:s}", "op", "status");
  assert_int_equal(svc_client_rpc(cl, m, 300, got_cb, &g), 0);
  json_decref(m);
  for (int64_t end = clock_mono_ms() + 5000; !g.done && clock_mono_ms() < end;) uv_run(&W.loop, UV_RUN_ONCE);
  log_set_fd(2);
  assert_true(g.done);
  assert_int_equal(g.err, -ETIMEDOUT);
  got_clear(&g);
  svc_client_close(cl);
  char text[4096] = "";
  rewind(lf);
  size_t n = fread(text, 1, sizeof text - 1, lf);
  text[n] = 0;
  fclose(lf);
  close(ls);
  assert_non_null(strstr(text, "timed out before they were sent"));
  assert_non_null(strstr(text, "\"stream\":\"opening\""));
}

/* ---------- a peer on host C whose first streams never answer (not even initialize) ---------- */

typedef struct fake_stream {
  svc_frame_dec dec;
  buf out;
  bool mute;
} fake_stream;

static struct {
  unsigned mute_first; /* streams that never answer anything (UINT_MAX: every one) */
  bool limits;         /* initialize advertises a bucket of 1 frame, 2 a second */
  unsigned streams, closed, answered;
} F;

/* The client's bucket clock: src/service/client.c is the only caller of uv_hrtime in src/ (this
 * definition takes the place of libuv's). Real monotonic time, plus g_hr_step_ns more at every
 * read while a test sets it: time that passes between two reads, as on a loaded machine. */
static uint64_t g_hr_skew_ns, g_hr_step_ns;
uint64_t uv_hrtime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  g_hr_skew_ns += g_hr_step_ns;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + g_hr_skew_ns;
}

static void fake_data(p2p_stream *s, const uint8_t *data, size_t len, void *ud) {
  fake_stream *fs = ud;
  if (fs->mute) return;
  while (len > 0 || fs->dec.ready) {
    size_t used = 0;
    svc_frame_status st = svc_frame_dec_feed(&fs->dec, data, len, &used);
    data += used;
    len -= used;
    if (st != SVC_FRAME_READY) break;
    json_t *m = svc_frame_dec_take(&fs->dec);
    const char *method = json_string_value(json_object_get(m, "method"));
    json_t *id = json_object_get(m, "id");
    if (id) {
      json_t *r = method && strcmp(method, "initialize") == 0
                      ? json_pack("{s:s, s:O, s:{s:s, s:{}, s:{s:s, s:s}}}", "jsonrpc", "2.0", "id", id, "result",
                                  "protocolVersion", "2025-06-18", "capabilities", "serverInfo", "name", "fake",
                                  "version", "0")
                      : json_pack("{s:s, s:O, s:{s:b}}", "jsonrpc", "2.0", "id", id, "result", "pong", 1);
      if (F.limits && method && strcmp(method, "initialize") == 0)
        json_object_set_new(json_object_get(r, "result"), "limits",
                            json_pack("{s:i, s:i}", "rate_capacity", 1, "rate_refill_per_sec", 2));
      assert_int_equal(svc_frame_encode(&fs->out, r, 0), 0);
      json_decref(r);
      assert_true(p2p_stream_write(s, buf_ptr(&fs->out), buf_len(&fs->out)) >= 0);
      buf_reset(&fs->out);
      F.answered++;
    }
    json_decref(m);
  }
}

static void fake_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}

static void fake_close(p2p_stream *s, int err, void *ud) {
  fake_stream *fs = ud;
  (void)s, (void)err;
  svc_frame_dec_free(&fs->dec);
  buf_free(&fs->out);
  free(fs);
  F.closed++;
}

static const p2p_stream_callbacks fake_cbs = {.on_data = fake_data, .on_eof = fake_eof, .on_close = fake_close};

static void fake_handler(p2p_stream *s, void *ud) {
  (void)ud;
  fake_stream *fs = calloc(1, sizeof *fs);
  assert_non_null(fs);
  svc_frame_dec_init(&fs->dec, 1u << 20);
  buf_init(&fs->out, 1u << 20);
  fs->mute = F.streams++ < F.mute_first;
  p2p_stream_set_callbacks(s, &fake_cbs, fs);
}

/* Host C serves the fake on /mcp+p2p/1.0.0; target: its multiaddr. */
static void fake_listen(unsigned mute_first, char *target, size_t cap) {
  memset(&F, 0, sizeof F);
  F.mute_first = mute_first;
  assert_int_equal(p2p_host_handle(W.c, SVC_MCPP_PROTOCOL, fake_handler, NULL), 0);
  assert_int_equal(p2p_host_listen(W.c, "/ip4/127.0.0.1/tcp/0"), 0);
  const char *addrs[4];
  assert_true(p2p_host_listen_addrs(W.c, addrs, 4) >= 1);
  snprintf(target, cap, "%s/p2p/%s", addrs[0], p2p_host_peer_id(W.c));
}

/* The log goes to a file while a test runs; log_end returns what was written. */
static FILE *log_begin(void) {
  char path[512];
  snprintf(path, sizeof path, "%s/client.log", W.dir);
  FILE *lf = fopen(path, "w+");
  assert_non_null(lf);
  log_set_fd(fileno(lf));
  return lf;
}

static void log_end(FILE *lf, char *text, size_t cap) {
  log_set_fd(2);
  rewind(lf);
  size_t n = fread(text, 1, cap - 1, lf);
  text[n] = 0;
  fclose(lf);
}

static void run_for_ms(int64_t ms) {
  for (int64_t end = clock_mono_ms() + ms; clock_mono_ms() < end;) uv_run(&W.loop, UV_RUN_NOWAIT), usleep(1000);
}

/* The server takes the stream and never answers initialize; the next stream is answered. The
 * client gives the first up after ready_timeout_ms and sends the waiting requests on the
 * second: they are answered in about the bound, not at their 10 s deadline. */
static void test_client_gives_up_a_stream_whose_initialize_is_never_answered(void **state) {
  (void)state;
  char target[512];
  fake_listen(1, target, sizeof target);
  FILE *lf = log_begin();
  svc_client_opts o = {.ready_timeout_ms = 500, .request_timeout_ms = 10000};
  svc_client *cl;
  assert_int_equal(svc_client_new(&W.loop, W.b, target, &o, &cl), 0);
  got g[3];
  memset(g, 0, sizeof g);
  int64_t t0 = clock_mono_ms();
  for (int i = 0; i < 3; i++) assert_int_equal(svc_client_request(cl, "ping", NULL, i != 1, 0, got_cb, &g[i]), 0);
  TS_LOOP_UNTIL(&W.loop, 15000, g[0].done && g[1].done && g[2].done);
  int64_t el = clock_mono_ms() - t0;
  svc_client_stats st;
  svc_client_stats_get(cl, &st);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(g[i].err, 0);
    assert_true(json_is_true(json_object_get(g[i].result, "pong")));
    got_clear(&g[i]);
  }
  print_message("first stream mute: 3 requests answered in %lld ms\n", (long long)el);
  assert_true(el >= 450 && el < 5000); /* the 500 ms bound (+ back-off, under load), not 10 s */
  assert_int_equal(st.abandoned, 1);
  assert_int_equal(st.streams_opened, 2);
  assert_null(svc_client_not_ready(cl)); /* a stream is ready */
  TS_LOOP_UNTIL(&W.loop, 5000, F.closed >= 1);
  assert_int_equal(F.streams, 2);
  assert_int_equal(F.closed, 1); /* the given-up stream was reset, the other one is in use */
  svc_client_close(cl);
  char text[8192];
  log_end(lf, text, sizeof text);
  assert_non_null(strstr(text, "p2p stream not ready in time"));
  assert_non_null(strstr(text, "\"state\":\"initializing\""));
}

/* A server that never answers at all: the requests fail at their own deadline (-ETIMEDOUT,
 * and the client says the stream never became ready), and meanwhile the client opened a few
 * streams — each after the bound and the back-off, no busy loop — and ended every one. */
static void test_client_facing_a_mute_server_fails_by_the_deadline_with_few_streams(void **state) {
  (void)state;
  char target[512];
  fake_listen(UINT_MAX, target, sizeof target);
  FILE *lf = log_begin();
  svc_client_opts o = {.ready_timeout_ms = 300, .request_timeout_ms = 2500};
  svc_client *cl;
  assert_int_equal(svc_client_new(&W.loop, W.b, target, &o, &cl), 0);
  got g[2];
  memset(g, 0, sizeof g);
  int64_t t0 = clock_mono_ms();
  assert_int_equal(svc_client_request(cl, "ping", NULL, true, 0, got_cb, &g[0]), 0);
  assert_int_equal(svc_client_request(cl, "ping", NULL, false, 0, got_cb, &g[1]), 0);
  TS_LOOP_UNTIL(&W.loop, 15000, g[0].done && g[1].done);
  int64_t el = clock_mono_ms() - t0;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(g[i].err, -ETIMEDOUT);
    got_clear(&g[i]);
  }
  assert_true(el >= 2400 && el < 8000); /* their deadline; not retried as if they had been sent */
  svc_client_stats st;
  svc_client_stats_get(cl, &st);
  print_message("mute server: %llu streams opened, %llu given up in %lld ms\n", (unsigned long long)st.streams_opened,
                (unsigned long long)st.abandoned, (long long)el);
  /* 300, 600, ≤1200 ms bounds plus back-off in 2.5 s: 2 to 5 given up */
  assert_true(st.abandoned >= 2 && st.abandoned <= 6);
  assert_true(st.streams_opened >= st.abandoned && st.streams_opened <= st.abandoned + 1);
  assert_int_equal(st.retries, 0);
  const char *why = svc_client_not_ready(cl);
  assert_non_null(why);
  assert_non_null(strstr(why, "never answered initialize"));
  svc_client_close(cl);
  TS_LOOP_UNTIL(&W.loop, 5000, F.closed >= F.streams);
  assert_int_equal(F.streams, st.streams_opened);
  assert_int_equal(F.closed, F.streams); /* none left open on the server */
  assert_int_equal(F.answered, 0);
  char text[16384];
  log_end(lf, text, sizeof text);
  assert_non_null(strstr(text, "\"state\":\"initializing\""));
  assert_non_null(strstr(text, "timed out before they were sent"));
  assert_non_null(strstr(text, "\"not_ready\":\"it accepted the /mcp+p2p/1.0.0 stream but never answered initialize\""));
}

/* The open itself never completes (the listener takes the TCP connection and never answers the
 * handshake): the opening stream is given up after the bound and another open started, a few
 * times; the request fails at its deadline; the opens still pending end when the host reports
 * (ASan: nothing leaks, nothing is used after the client is gone). */
static void test_client_gives_up_an_open_that_never_completes(void **state) {
  (void)state;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(ls >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(ls, 4), 0);
  assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
  char target[300];
  snprintf(target, sizeof target, "/ip4/127.0.0.1/tcp/%u/p2p/%s", (unsigned)ntohs(sa.sin_port), p2p_host_peer_id(W.a));
  FILE *lf = log_begin();
  svc_client_opts o = {.ready_timeout_ms = 300, .request_timeout_ms = 2000};
  svc_client *cl;
  assert_int_equal(svc_client_new(&W.loop, W.b, target, &o, &cl), 0);
  got g;
  memset(&g, 0, sizeof g);
  json_t *m = json_pack("{s:s}", "op", "status");
  assert_int_equal(svc_client_rpc(cl, m, 0, got_cb, &g), 0);
  json_decref(m);
  TS_LOOP_UNTIL(&W.loop, 10000, g.done);
  assert_int_equal(g.err, -ETIMEDOUT);
  got_clear(&g);
  svc_client_stats st;
  svc_client_stats_get(cl, &st);
  assert_int_equal(st.streams_opened, 0);
  assert_true(st.abandoned >= 2 && st.abandoned <= 6);
  const char *why = svc_client_not_ready(cl);
  assert_non_null(why);
  assert_non_null(strstr(why, "could be opened"));
  svc_client_close(cl); /* its given-up opens are still pending in the host */
  close(ls);            /* they fail now (or when the host closes) */
  run_for_ms(200);
  char text[16384];
  log_end(lf, text, sizeof text);
  assert_non_null(strstr(text, "p2p stream not ready in time"));
  assert_non_null(strstr(text, "\"state\":\"opening\""));
}

/* The issue 11 flake (test_special_values p2p.authorized_rate_limit_per_second: ops 5..12 unsent
 * for 60 s, the stream ready, the bucket full): send_ready found no token, and by the time arm
 * looked a moment later the token was there, so arm set no pacing tick and nothing sent the
 * requests until their deadline. Here the bucket clock moves 300 ms at each read (bucket of 1,
 * 2 a second): the read in arm always finds the token send_ready missed. The requests must
 * still go out at once, not at their 20 s deadline. */
static void test_paced_requests_go_when_the_token_comes_between_send_and_arm(void **state) {
  (void)state;
  char target[512];
  fake_listen(0, target, sizeof target);
  F.limits = true;
  svc_client_opts o = {.request_timeout_ms = 20000};
  svc_client *cl;
  assert_int_equal(svc_client_new(&W.loop, W.b, target, &o, &cl), 0);
  got g[3];
  memset(g, 0, sizeof g);
  g_hr_step_ns = 300u * 1000 * 1000;
  int64_t t0 = clock_mono_ms();
  for (int i = 0; i < 3; i++) assert_int_equal(svc_client_request(cl, "ping", NULL, true, 0, got_cb, &g[i]), 0);
  for (int64_t end = t0 + 10000; !(g[0].done && g[1].done && g[2].done) && clock_mono_ms() < end;)
    uv_run(&W.loop, UV_RUN_ONCE);
  g_hr_step_ns = 0;
  int64_t el = clock_mono_ms() - t0;
  svc_client_stats st;
  svc_client_stats_get(cl, &st);
  print_message("paced: %llu, answered in %lld ms\n", (unsigned long long)st.paced, (long long)el);
  for (int i = 0; i < 3; i++) {
    assert_true(g[i].done);
    assert_int_equal(g[i].err, 0);
    got_clear(&g[i]);
  }
  assert_true(st.paced > 0); /* the bucket did hold them back */
  assert_true(el < 5000);
  svc_client_close(cl);
}

static void later_fired(uv_timer_t *t) { *(int *)t->data = 1; }
static void tm_closed(uv_handle_t *h) { *(int *)h->data = 1; }

/* A claim with wait_s over /mcp+p2p/1.0.0 waits on the peer and is answered the moment a task
 * is submitted (by the same client, on the same stream, while the claim waits). */
static void test_waiting_claim_is_answered_when_a_task_arrives(void **state) {
  (void)state;
  svc_client_opts o = {0};
  svc_client *cl;
  assert_int_equal(svc_client_new(&W.loop, W.b, W.a_addr, &o, &cl), 0);
  got c, s;
  memset(&c, 0, sizeof c);
  memset(&s, 0, sizeof s);
  json_t *m = json_pack("{s:s, s:s, s:f}", "op", "claim", "worker_id", "w-net", "wait_s", 20.0);
  int64_t t0 = clock_mono_ms();
  assert_int_equal(svc_client_rpc(cl, m, 30000, got_cb, &c), 0);
  json_decref(m);
  static uv_timer_t tm; /* outlives the test until its close completes */
  int fired = 0;
  uv_timer_init(&W.loop, &tm);
  tm.data = &fired;
  uv_timer_start(&tm, later_fired, 300, 0);
  run_until(&fired);
  assert_false(c.done); /* still waiting */
  m = json_pack("{s:s, s:s, s:{}}", "op", "submit", "task_type", "tool.call", "payload");
  assert_int_equal(svc_client_rpc(cl, m, 10000, got_cb, &s), 0);
  json_decref(m);
  run_until(&c.done);
  int64_t took = clock_mono_ms() - t0;
  assert_int_equal(c.err, 0);
  assert_true(json_is_object(json_object_get(c.result, "task")));
  assert_true(json_number_value(json_object_get(c.result, "wait_s")) == 20.0);
  assert_true(took >= 100 && took < 10000); /* woken, not the 20 s */
  run_until(&s.done);
  got_clear(&c);
  got_clear(&s);
  int closed = 0;
  tm.data = &closed;
  uv_close((uv_handle_t *)&tm, tm_closed);
  run_until(&closed);
  svc_client_close(cl);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_trusted_peer_uses_queue_tools_and_one_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_waiting_claim_is_answered_when_a_task_arrives, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tools_call_and_list_for_trusted_peer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tools_call_text_fast_path, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tools_call_text_params_of_every_size_on_reused_records, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_deadline_fires_among_pipelined_calls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_stream_ended_by_a_stopping_server, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pipelined_batches_cross_in_one_write_each_way, setup_unlimited_rate, teardown),
      cmocka_unit_test_setup_teardown(test_client_closed_inside_its_text_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_closed_inside_its_reply_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stranger_is_refused_everywhere, setup, teardown),
      cmocka_unit_test_setup_teardown(test_legacy_ndjson_one_request_per_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_streams_per_peer_are_capped, setup_limits, teardown),
      cmocka_unit_test_setup_teardown(test_silent_stream_is_closed_after_init_timeout, setup_limits, teardown),
      cmocka_unit_test_setup_teardown(test_client_rotates_streams_before_the_frame_cap, setup_few_frames, teardown),
      cmocka_unit_test_setup_teardown(test_clients_sharing_a_tight_bucket_lose_no_request, setup_tight_rate, teardown),
      cmocka_unit_test_setup_teardown(test_request_timed_out_unsent_is_explained, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_gives_up_a_stream_whose_initialize_is_never_answered, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_facing_a_mute_server_fails_by_the_deadline_with_few_streams, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_client_gives_up_an_open_that_never_completes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_paced_requests_go_when_the_token_comes_between_send_and_arm, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
