/* Tests for node (the composition root): node_open / node_start / node_stop / node_close with
 * every part on and with parts off, the stop order as the documented sequence of steps, stop
 * triggers (stdio EOF, a signal, node_stop, the loop running out of work), a borrowed loop with
 * an added transport (the hook HTTP and metrics will use), two nodes talking over the host,
 * `peermcp worker`-style local workers, and option / configuration errors. */
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
#include <sys/select.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/node.h"
#include "auth/auth.h"
#include "util/clock.h"
#include "util/log.h"
#include "support/tmpdir.h"

static char g_dir[TS_TMPDIR_MAX];

static int setup(void **state) {
  (void)state;
  ts_tmpdir_make(g_dir, "nodetest");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  assert_int_equal(ts_tmpdir_remove(g_dir), 0);
  log_set_fd(2);
  log_set_level(LOG_WARNING);
  return 0;
}

/* A configuration with its state directory under g_dir/<sub>; `extra` is more top-level JSON
 * ("" or ", \"key\": …"). */
static void load_cfg(config *cfg, const char *sub, const char *extra) {
  char text[2048], err[512];
  snprintf(text, sizeof text,
           "{\"state_dir\": \"%s/%s\", \"p2p\": {\"listen\": [\"/ip4/127.0.0.1/tcp/0\"]}, "
           "\"tools\": {\"test_tools\": true}%s}",
           g_dir, sub, extra);
  if (config_load_text(cfg, text, strlen(text), NULL, NULL, err, sizeof err) != 0) fail_msg("config: %s", err);
}

/* Runs `loop` until *flag or the deadline (generous: an ASan build on a loaded machine). */
static void run_until(uv_loop_t *loop, const int *flag, int64_t ms) {
  int64_t end = clock_mono_ms() + ms;
  while (!*flag && clock_mono_ms() < end) {
    if (uv_run(loop, UV_RUN_NOWAIT) == 0) uv_sleep(1);
    else uv_sleep(0);
  }
  if (!*flag) fail_msg("condition not met within %lld ms", (long long)ms);
}

static void set_flag(void *ud) { *(int *)ud = 1; }

/* The "step" field of each "<name>: stop step" line in a log file, comma-joined. */
static void stop_steps_from_log(const char *path, const char *name, char *out, size_t cap) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[4096], want[64];
  snprintf(want, sizeof want, "%s: stop step", name);
  out[0] = 0;
  while (fgets(line, sizeof line, f)) {
    json_t *j = json_loads(line, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "msg"));
    const char *step = json_string_value(json_object_get(j, "step"));
    if (msg && step && strcmp(msg, want) == 0) {
      if (out[0]) strncat(out, ",", cap - strlen(out) - 1);
      strncat(out, step, cap - strlen(out) - 1);
    }
    json_decref(j);
  }
  fclose(f);
}

/* Reads one JSON line from fd (blocking, bounded). */
static json_t *read_line_json(int fd) {
  char buf[65536];
  size_t n = 0;
  int64_t end = clock_mono_ms() + 30000;
  while (n < sizeof buf - 1 && clock_mono_ms() < end) {
    ssize_t r = read(fd, buf + n, 1);
    if (r == 1) {
      if (buf[n] == '\n') break;
      n++;
    } else if (r < 0 && errno == EAGAIN) {
      uv_sleep(1);
    } else {
      break;
    }
  }
  buf[n] = 0;
  return json_loads(buf, 0, NULL);
}

/* Runs the node's loop until a line of JSON is readable on fd, then returns it. */
static json_t *read_reply(node *n, int fd) {
  int64_t end = clock_mono_ms() + 30000;
  while (clock_mono_ms() < end) {
    uv_run(node_loop(n), UV_RUN_NOWAIT);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(fd, &rs);
    struct timeval tv = {0, 1000};
    if (select(fd + 1, &rs, NULL, NULL, &tv) > 0) return read_line_json(fd);
  }
  fail_msg("no reply within 30 s");
  return NULL;
}

/* Everything on: store + maintenance, op table, tools, service, MCP Tasks, listening host,
 * stdio (on pipes). One MCP call over stdio, one tool call through the dispatcher; EOF on stdin
 * stops the node, through every step in the documented order. */
static void test_node_everything_on_stops_in_order_on_stdio_eof(void **state) {
  (void)state;
  config cfg;
  load_cfg(&cfg, "all", "");
  char logpath[400];
  snprintf(logpath, sizeof logpath, "%s/log", g_dir);
  int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true(logfd >= 0);
  log_set_fd(logfd);
  log_set_level(LOG_DEBUG);
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  node_options o = {.name = "t", .store = true, .maintenance = true, .local_ops = true, .tools = true,
                    .service = true, .mcp_tasks = true, .host = NODE_HOST_LISTEN, .stdio = true,
                    .stdio_in_fd = in[0], .stdio_out_fd = out[1]};
  node *n = NULL;
  char err[512];
  if (node_open(&cfg, &o, &n, err, sizeof err) != 0) fail_msg("open: %s", err);
  assert_non_null(node_queue(n));
  assert_non_null(node_cache(n));
  assert_non_null(node_taskq(n));
  assert_non_null(node_dispatcher(n));
  assert_non_null(mcp_registry_find(node_registry(n), "server_info"));
  assert_non_null(mcp_registry_find(node_registry(n), "p2p_service_status")); /* the service's tools */
  assert_non_null(mcp_registry_find(node_registry(n), "tools_dispatch"));     /* the meta-tools */
  assert_non_null(mcp_registry_find(node_registry(n), "echo"));               /* tools.test_tools */
  assert_null(node_host(n)); /* made by node_start */
  if (node_start(n, err, sizeof err) != 0) fail_msg("start: %s", err);
  assert_non_null(node_host(n));
  assert_non_null(node_mcp_tasks(n));
  assert_false(node_stopping(n));
  char ann[400];
  snprintf(ann, sizeof ann, "%s/all/announce.json", g_dir);
  json_t *a = json_load_file(ann, 0, NULL);
  assert_non_null(json_string_value(json_object_get(a, "multiaddr")));
  json_decref(a);

  const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                    "\"arguments\":{\"x\":7}}}\n";
  assert_int_equal(write(in[1], req, strlen(req)), (ssize_t)strlen(req));
  json_t *resp = read_reply(n, out[0]);
  json_t *sc = json_object_get(json_object_get(resp, "result"), "structuredContent");
  if (json_integer_value(json_object_get(sc, "x")) != 7) fail_msg("echo over stdio: %s", json_dumps(resp, 0));
  json_decref(resp);

  close(in[1]); /* EOF: the node stops itself */
  assert_int_equal(node_run(n), 0);
  assert_true(node_stopping(n));
  assert_null(node_host(n)); /* closed at step 5 */
  node_close(n);
  close(in[0]);
  close(out[0]);
  close(out[1]);
  log_set_fd(2);
  close(logfd);
  char steps[256];
  stop_steps_from_log(logpath, "t", steps, sizeof steps);
  assert_string_equal(steps, "transports,service,workers,mcp_tasks,host,handles");
  config_free(&cfg);
}

/* Tools and stdio only: at EOF every stop step finishes at once, inside stdio's own
 * on_closed; the transport must outlive that callback (released by node_close). */
static void test_node_stdio_only_stops_inside_its_own_callback(void **state) {
  (void)state;
  config cfg;
  load_cfg(&cfg, "stdio", "");
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  node_options o = {.name = "t", .tools = true, .stdio = true, .stdio_in_fd = in[0], .stdio_out_fd = out[1]};
  node *n = NULL;
  char err[256];
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  assert_int_equal(node_start(n, err, sizeof err), 0);
  const char *req = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"server_info\"}}\n";
  assert_int_equal(write(in[1], req, strlen(req)), (ssize_t)strlen(req));
  json_t *resp = read_reply(n, out[0]);
  assert_non_null(json_object_get(resp, "result"));
  json_decref(resp);
  close(in[1]);
  assert_int_equal(node_run(n), 0);
  node_close(n);
  close(in[0]);
  close(out[0]);
  close(out[1]);
  config_free(&cfg);
}

/* No part selected: the loop runs out of work at once, which stops the node. */
static void test_node_nothing_selected_stops_when_the_loop_runs_out_of_work(void **state) {
  (void)state;
  config cfg;
  load_cfg(&cfg, "none", "");
  node_options o = {.name = "t"};
  node *n = NULL;
  char err[256];
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  assert_null(node_dispatcher(n));
  assert_null(node_registry(n));
  assert_null(node_queue(n));
  assert_int_equal(node_start(n, err, sizeof err), 0);
  assert_null(node_host(n));
  assert_int_equal(node_run(n), 0);
  assert_true(node_stopping(n));
  int done = 0;
  node_stop(n, set_flag, &done); /* after it stopped: done at once, nothing else */
  assert_int_equal(done, 1);
  node_close(n);
  config_free(&cfg);
}

/* Parts off: the store and the op table only (what `peermcp task list` needs). */
static void test_node_store_and_op_table_only(void **state) {
  (void)state;
  config cfg;
  load_cfg(&cfg, "ops", "");
  node_options o = {.name = "t", .store = true, .local_ops = true};
  node *n = NULL;
  char err[256];
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  assert_non_null(node_queue(n));
  assert_non_null(node_cache(n));
  assert_null(node_dispatcher(n));
  assert_null(node_registry(n));
  assert_int_equal(node_start(n, err, sizeof err), 0);
  assert_null(node_host(n));
  assert_null(node_mcp_tasks(n));
  auth_ctx local;
  auth_ctx_local(&local);
  taskq_call call = {.auth = &local};
  json_t *msg = json_pack("{s:s, s:s, s:{s:i}}", "op", "submit", "task_type", "tool.call", "payload", "x", 1);
  json_t *r = taskq_handle(node_taskq(n), msg, &call);
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  json_decref(msg);
  /* the store was opened with the configuration's options: the task is in queue.path */
  char qpath[400];
  snprintf(qpath, sizeof qpath, "%s/ops/queue.sqlite3", g_dir);
  assert_int_equal(access(qpath, F_OK), 0);
  node_close(n); /* stops it */
  config_free(&cfg);
}

/* A transport added through the hook (as HTTP and the metrics listener will be). */
typedef struct fake_transport {
  int started, stopped, cancelled, freed;
  node *n;
  void (*done)(void *);
  void *arg;
} fake_transport;

static int fake_start(void *self, node *n) {
  fake_transport *t = self;
  t->started++;
  t->n = n;
  assert_non_null(node_dispatcher(n)); /* what a transport serves with */
  return 0;
}
static void fake_stop(void *self, void (*done)(void *), void *arg) {
  fake_transport *t = self;
  t->stopped++;
  t->done = done; /* "draining": finishes when the test says so */
  t->arg = arg;
}
static void fake_cancel(void *self) { ((fake_transport *)self)->cancelled++; }
static void fake_free(void *self) { ((fake_transport *)self)->freed++; }
static const node_transport_ops k_fake = {
    .name = "fake", .start = fake_start, .stop = fake_stop, .cancel = fake_cancel, .free = fake_free};

/* A borrowed loop: the node never runs or closes it; node_stop reports through done; the
 * transport drains before the rest stops; a second stop cancels; the loop closes clean. */
static void test_node_borrowed_loop_and_transport_hook(void **state) {
  (void)state;
  config cfg;
  load_cfg(&cfg, "borrowed", "");
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  node_options o = {.name = "t", .loop = &loop, .store = true, .maintenance = true, .tools = true,
                    .service = true, .mcp_tasks = true};
  node *n = NULL;
  char err[256];
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  assert_ptr_equal(node_loop(n), &loop);
  fake_transport ft = {0};
  assert_int_equal(node_add_transport(n, &k_fake, &ft), 0);
  assert_int_equal(node_run(n), -EINVAL); /* not its loop to run */
  assert_int_equal(node_start(n, err, sizeof err), 0);
  assert_int_equal(node_add_transport(n, &k_fake, &ft), -EINVAL); /* too late */
  assert_int_equal(ft.started, 1);
  int done = 0;
  node_stop(n, set_flag, &done);
  assert_int_equal(ft.stopped, 1);
  for (int i = 0; i < 50; i++) uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(done, 0); /* step 1 waits for the transport */
  node_stop(n, NULL, NULL);  /* a second request: the transport is told to hurry */
  assert_int_equal(ft.cancelled, 1);
  ft.done(ft.arg);
  run_until(&loop, &done, 30000);
  assert_int_equal(ft.freed, 0); /* released by node_close, never from inside a callback */
  node_close(n);
  assert_int_equal(ft.freed, 1);
  uv_run(&loop, UV_RUN_DEFAULT); /* the dispatcher's handles finish closing */
  assert_int_equal(uv_loop_close(&loop), 0);
  config_free(&cfg);
}

static void test_node_bad_options_and_bad_command_tool(void **state) {
  (void)state;
  config cfg;
  load_cfg(&cfg, "bad", "");
  node *n = NULL;
  char err[256];
  node_options o1 = {.service = true};
  assert_int_equal(node_open(&cfg, &o1, &n, err, sizeof err), -EINVAL);
  assert_null(n);
  assert_non_null(strstr(err, "the service needs the tools"));
  node_options o2 = {.mcp_tasks = true, .tools = true};
  assert_int_equal(node_open(&cfg, &o2, &n, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "MCP Tasks need"));
  const char *peer = "/ip4/127.0.0.1/tcp/1";
  node_workers_opts w = {.peers = &peer, .n_peers = 1};
  node_options o3 = {.tools = true, .workers = &w};
  assert_int_equal(node_open(&cfg, &o3, &n, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "need a host"));
  config_free(&cfg);
  /* a command tool whose program is missing: the registry's file:line message */
  char text[1024];
  snprintf(text, sizeof text,
           "{\"state_dir\": \"%s/bad\",\n \"tools\": {\"commands\": [\n  {\"name\": \"x\", \"argv\": [\"/nonexistent/x\"]}]}}",
           g_dir);
  assert_int_equal(config_load_text(&cfg, text, strlen(text), "/etc/c.json", NULL, err, sizeof err), 0);
  node_options o4 = {.tools = true};
  assert_int_equal(node_open(&cfg, &o4, &n, err, sizeof err), -ENOENT);
  assert_null(n);
  if (!strstr(err, "/etc/c.json:3: tools.commands[0] \"x\": program \"/nonexistent/x\" does not exist"))
    fail_msg("err: %s", err);
  config_free(&cfg);
}

/* SIGTERM stops a node that handles signals; SIGPIPE is ignored. */
static void test_node_signal_stops_it(void **state) {
  (void)state;
  config cfg;
  load_cfg(&cfg, "sig", "");
  node_options o = {.name = "t", .store = true, .tools = true, .signals = true, .maintenance = true};
  node *n = NULL;
  char err[256];
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  assert_int_equal(node_start(n, err, sizeof err), 0);
  assert_int_equal(raise(SIGPIPE), 0); /* ignored: we are still here */
  assert_int_equal(raise(SIGTERM), 0);
  assert_int_equal(node_run(n), 0);
  assert_true(node_stopping(n));
  node_close(n);
  config_free(&cfg);
}

/* A node started and never stopped: node_close stops it (own loop). */
static void test_node_close_stops_a_running_node(void **state) {
  (void)state;
  config cfg;
  load_cfg(&cfg, "close", "");
  node_options o = {.name = "t", .store = true, .tools = true, .service = true, .mcp_tasks = true,
                    .host = NODE_HOST_LISTEN, .maintenance = true};
  node *n = NULL;
  char err[256];
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  assert_int_equal(node_start(n, err, sizeof err), 0);
  assert_non_null(node_host(n));
  node_close(n);
  config_free(&cfg);
}

/* p2p.enabled = false keeps the listening host off. */
static void test_node_config_turns_parts_off(void **state) {
  (void)state;
  config cfg;
  char text[1024], err[256];
  snprintf(text, sizeof text, "{\"state_dir\": \"%s/off\", \"p2p\": {\"enabled\": false}, \"stdio\": {\"enabled\": false}}",
           g_dir);
  assert_int_equal(config_load_text(&cfg, text, strlen(text), NULL, NULL, err, sizeof err), 0);
  node_options o = {.name = "t", .tools = true, .service = true, .host = NODE_HOST_LISTEN, .stdio = true};
  node *n = NULL;
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  assert_int_equal(node_start(n, err, sizeof err), 0);
  assert_null(node_host(n));
  assert_null(mcp_registry_find(node_registry(n), "echo")); /* tools.test_tools is off */
  node_close(n);
  config_free(&cfg);
}

/* Two nodes on one loop: a dialing node reaches a listening one through node_dial. */
typedef struct reply {
  int done, err;
  json_t *result;
} reply;
static void reply_cb(void *ud, int err, json_t *result, json_t *error) {
  (void)error;
  reply *r = ud;
  r->done = 1;
  r->err = err;
  r->result = json_incref(result);
}

static void test_node_dialer_reaches_a_listener(void **state) {
  (void)state;
  config ca, cb;
  load_cfg(&ca, "server", "");
  load_cfg(&cb, "client", "");
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  node_options oa = {.name = "a", .loop = &loop, .store = true, .tools = true, .service = true,
                     .host = NODE_HOST_LISTEN};
  node_options ob = {.name = "b", .loop = &loop, .host = NODE_HOST_DIAL};
  node *a = NULL, *b = NULL;
  char err[256];
  assert_int_equal(node_open(&ca, &oa, &a, err, sizeof err), 0);
  assert_int_equal(node_open(&cb, &ob, &b, err, sizeof err), 0);
  assert_int_equal(node_start(a, err, sizeof err), 0);
  svc_client *c = NULL;
  assert_int_equal(node_dial(b, "/ip4/127.0.0.1/tcp/1", &c), -ENODEV); /* no host before start */
  assert_int_equal(node_start(b, err, sizeof err), 0);
  /* a bare PeerId resolves through the announce file in b's state dir */
  char src[400], dst[400];
  snprintf(src, sizeof src, "%s/server/announce.json", g_dir);
  snprintf(dst, sizeof dst, "%s/client/announce.json", g_dir);
  json_t *ann = json_load_file(src, 0, NULL);
  assert_non_null(ann);
  assert_int_equal(json_dump_file(ann, dst, 0), 0);
  const char *pid = json_string_value(json_object_get(ann, "peer_id"));
  assert_int_equal(node_dial(b, pid, &c), 0);
  reply r = {0};
  json_t *msg = json_pack("{s:s}", "op", "status");
  assert_int_equal(svc_client_rpc(c, msg, 30000, reply_cb, &r), 0);
  json_decref(msg);
  run_until(&loop, &r.done, 60000);
  assert_int_equal(r.err, 0);
  assert_true(json_is_true(json_object_get(r.result, "ok")));
  assert_string_equal(json_string_value(json_object_get(r.result, "peer_id")), pid);
  json_decref(r.result);
  json_decref(ann);
  svc_client_close(c);
  int da = 0, db = 0;
  node_stop(b, set_flag, &db);
  node_stop(a, set_flag, &da);
  run_until(&loop, &db, 30000);
  run_until(&loop, &da, 30000);
  node_close(b);
  node_close(a);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  config_free(&ca);
  config_free(&cb);
}

/* `peermcp worker` without --peer: local workers claim from the node's own queue. */
static void test_node_local_workers_run_a_task(void **state) {
  (void)state;
  config cfg;
  load_cfg(&cfg, "worker", "");
  node_workers_opts w = {.slots = 1, .once = true, .stop_grace_ms = 1000};
  node_options o = {.name = "t", .store = true, .local_ops = true, .tools = true, .workers = &w};
  node *n = NULL;
  char err[256];
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  auth_ctx local;
  auth_ctx_local(&local);
  taskq_call call = {.auth = &local};
  json_t *msg = json_pack("{s:s, s:s, s:{s:s, s:{s:i}}}", "op", "submit", "task_type", "tool.call", "payload", "tool",
                          "echo", "args", "n", 5);
  json_t *r = taskq_handle(node_taskq(n), msg, &call);
  assert_true(json_is_true(json_object_get(r, "ok")));
  json_decref(r);
  json_decref(msg);
  assert_int_equal(node_start(n, err, sizeof err), 0);
  assert_string_equal(node_worker_id(n), "local-worker");
  int64_t end = clock_mono_ms() + 60000;
  while (!node_workers_finished(n) && clock_mono_ms() < end) uv_run(node_loop(n), UV_RUN_ONCE);
  assert_true(node_workers_finished(n));
  node_stop(n, NULL, NULL);
  assert_int_equal(node_run(n), 0);
  taskq_runner_stats st;
  node_workers_stats(n, &st);
  assert_int_equal(st.claimed, 1);
  assert_int_equal(st.completed, 1);
  node_close(n);
  config_free(&cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_node_everything_on_stops_in_order_on_stdio_eof, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_stdio_only_stops_inside_its_own_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_nothing_selected_stops_when_the_loop_runs_out_of_work, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_store_and_op_table_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_borrowed_loop_and_transport_hook, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_bad_options_and_bad_command_tool, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_signal_stops_it, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_close_stops_a_running_node, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_config_turns_parts_off, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_dialer_reaches_a_listener, setup, teardown),
      cmocka_unit_test_setup_teardown(test_node_local_workers_run_a_task, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
