/* Tests for transport/http with real sockets: the loop runs on the test thread, a client thread
 * sends raw HTTP/1.1. Start-up rules (port 0, the URL file, refusing a non-loopback address
 * without authentication, a port in use), readiness, the authentication and route hooks, a
 * session bound to its subject, and stopping while a call is in flight. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "mcp/dispatch.h"
#include "transport/http.h"
#include "support/wait.h"

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_pack("{s:O}", "echo", args);
  return MCP_TOOL_OK;
}
static mcp_tool_status sleep_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  int64_t ms = json_integer_value(json_object_get(args, "ms"));
  mcp_call_sleep(call, ms);
  *result = json_pack("{s:I}", "slept", (json_int_t)ms);
  return MCP_TOOL_OK;
}
static const mcp_tool_def k_tools[] = {
    {.name = "echo", .category = "t", .fn = echo_fn, .flags = MCP_TOOL_INLINE},
    {.name = "sleep", .category = "t", .fn = sleep_fn,
     .input_schema = "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\"}}}"},
};

typedef struct fx {
  uv_loop_t loop;
  mcp_registry *reg;
  mcp_dispatcher *d;
  mcp_http *h;
  char dir[64];
  uint16_t port;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  f->reg = mcp_registry_new();
  for (size_t i = 0; i < sizeof k_tools / sizeof k_tools[0]; i++) assert_int_equal(mcp_registry_add(f->reg, &k_tools[i]), 0);
  mcp_dispatcher_opts o = {.threads = 2};
  assert_int_equal(mcp_dispatcher_new(&f->loop, f->reg, &o, &f->d), 0);
  snprintf(f->dir, sizeof f->dir, "/tmp/peermcp-http-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  *state = f;
  return 0;
}

static void stopped(void *arg) { *(int *)arg = 1; }

static int teardown(void **state) {
  fx *f = *state;
  if (f->h) {
    int done = 0;
    mcp_http_stop(f->h, stopped, &done);
    for (int i = 0; i < 100000 && !done; i++) uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(done);
    mcp_http_free(f->h);
  }
  mcp_dispatcher_shutdown(f->d);
  mcp_dispatcher_free(f->d);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  mcp_registry_free(f->reg);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

static int start(fx *f, mcp_http_opts *o) {
  static const char *const lo[] = {"127.0.0.1:0"};
  if (!o->listen) {
    o->listen = lo;
    o->n_listen = 1;
  }
  o->dispatcher = f->d;
  char err[512];
  int rc = mcp_http_start(&f->loop, o, &f->h, err, sizeof err);
  if (rc == 0) {
    const char *url = mcp_http_url(f->h, 0);
    assert_non_null(url);
    const char *colon = strrchr(url, ':');
    f->port = (uint16_t)atoi(colon + 1);
    assert_true(f->port > 0);
  }
  return rc;
}

/* ---- a client thread: one request per connection, the whole response back ---- */

/* Waits are bounded by the clock (tests/support/wait.h), never by a count of loop turns: a count
 * is over sooner on a fast, idle machine (3,000,000 empty turns took less than the 800 ms call below). */
#define WAIT_S 30

typedef struct req {
  uint16_t port;
  const char *text;
  char resp[65536];
  atomic_int done;
} req;

static void *client_main(void *arg) {
  req *r = arg;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {.tv_sec = WAIT_S}; /* a server that never answers fails the test, not hangs it */
  (void)setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(r->port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  size_t got = 0;
  if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) {
    size_t n = strlen(r->text), off = 0;
    while (off < n) {
      ssize_t w = send(s, r->text + off, n - off, MSG_NOSIGNAL);
      if (w <= 0) break;
      off += (size_t)w;
    }
    for (;;) {
      ssize_t k = recv(s, r->resp + got, sizeof r->resp - 1 - got, 0);
      if (k <= 0) break;
      got += (size_t)k;
    }
  }
  r->resp[got] = 0;
  close(s);
  atomic_store(&r->done, 1);
  return NULL;
}

/* Runs the loop until the request is answered and the server closed (Connection: close). */
static void roundtrip(fx *f, req *r) {
  pthread_t t;
  r->port = f->port;
  atomic_store(&r->done, 0);
  assert_int_equal(pthread_create(&t, NULL, client_main, r), 0);
  TS_LOOP_UNTIL(&f->loop, WAIT_S * 1000, atomic_load(&r->done));
  pthread_join(t, NULL);
}

static int status_of(const req *r) {
  int st = 0;
  return sscanf(r->resp, "HTTP/1.1 %d", &st) == 1 ? st : 0;
}

static char *modern_request(const char *method, const char *extra_params) {
  char body[1024];
  snprintf(body, sizeof body,
           "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":{%s%s\"_meta\":{\"io.modelcontextprotocol/"
           "protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
           method, extra_params ? extra_params : "", extra_params ? "," : "");
  char *out = malloc(2048);
  snprintf(out, 2048,
           "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
           "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: %s\r\n%s"
           "Content-Length: %zu\r\n\r\n%s",
           method, strcmp(method, "tools/call") == 0 ? "Mcp-Name: echo\r\n" : "", strlen(body), body);
  return out;
}

/* ---- tests ---- */

static void test_http_port_zero_binds_loopback_and_writes_the_url_file(void **state) {
  fx *f = *state;
  char file[128];
  snprintf(file, sizeof file, "%s/http.json", f->dir);
  mcp_http_opts o = {.url_file = file};
  assert_int_equal(start(f, &o), 0);
  const char *url = mcp_http_url(f->h, 0);
  assert_true(strncmp(url, "http://127.0.0.1:", 17) == 0);
  assert_non_null(strstr(url, "/mcp"));
  assert_null(mcp_http_url(f->h, 1));
  json_t *j = json_load_file(file, 0, NULL);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "url")), url);
  json_decref(j);
  req *r = calloc(1, sizeof *r);
  char *q = modern_request("tools/call", "\"name\":\"echo\",\"arguments\":{\"x\":1}");
  r->text = q;
  roundtrip(f, r);
  assert_int_equal(status_of(r), 200);
  assert_non_null(strstr(r->resp, "\"echo\":{\"x\":1}"));
  free(q);
  free(r);
  /* stopping removes the URL file */
  int done = 0;
  mcp_http_stop(f->h, stopped, &done);
  for (int i = 0; i < 100000 && !done; i++) uv_run(&f->loop, UV_RUN_ONCE);
  assert_true(done);
  struct stat st;
  assert_int_equal(stat(file, &st), -1);
  mcp_http_free(f->h);
  f->h = NULL;
}

static void test_http_refuses_non_loopback_without_auth(void **state) {
  fx *f = *state;
  static const char *const any[] = {"0.0.0.0:0"};
  mcp_http_opts o = {.listen = any, .n_listen = 1};
  assert_int_equal(start(f, &o), -EINVAL);
  assert_null(f->h);
  mcp_http_opts o2 = {.listen = any, .n_listen = 1, .allow_unauthenticated = true};
  assert_int_equal(start(f, &o2), 0);
}

static void test_http_bad_address_and_port_in_use_fail_cleanly(void **state) {
  fx *f = *state;
  static const char *const bad[] = {"not-an-address"};
  mcp_http_opts o = {.listen = bad, .n_listen = 1};
  assert_int_equal(start(f, &o), -EINVAL);
  mcp_http_opts o1 = {0};
  assert_int_equal(start(f, &o1), 0);
  char taken[32];
  snprintf(taken, sizeof taken, "127.0.0.1:%u", f->port);
  const char *two[] = {"127.0.0.1:0", taken}; /* the first binds, the second fails: both undone */
  mcp_http *h2 = NULL;
  mcp_http_opts o2 = {.listen = two, .n_listen = 2, .dispatcher = f->d};
  char err[256];
  assert_true(mcp_http_start(&f->loop, &o2, &h2, err, sizeof err) < 0);
  assert_null(h2);
  assert_non_null(strstr(err, taken));
}

static void test_http_readyz_follows_ready_and_stopping(void **state) {
  fx *f = *state;
  mcp_http_opts o = {0};
  assert_int_equal(start(f, &o), 0);
  req *r = calloc(1, sizeof *r);
  r->text = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  roundtrip(f, r);
  assert_int_equal(status_of(r), 503);
  assert_non_null(strstr(r->resp, "starting"));
  mcp_http_set_ready(f->h, true);
  roundtrip(f, r);
  assert_int_equal(status_of(r), 200);
  r->text = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  roundtrip(f, r);
  assert_int_equal(status_of(r), 200);
  free(r);
}

static void test_http_stop_waits_for_an_inflight_call_and_refuses_new_ones(void **state) {
  fx *f = *state;
  mcp_http_opts o = {0};
  assert_int_equal(start(f, &o), 0);
  mcp_http_set_ready(f->h, true);
  /* a 2026-07-28 call that sleeps 800 ms, from a client thread */
  char body[512];
  snprintf(body, sizeof body,
           "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\",\"arguments\":{\"ms\":800},"
           "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}");
  char *q = malloc(2048);
  snprintf(q, 2048,
           "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nAccept: "
           "application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: "
           "sleep\r\nContent-Length: %zu\r\n\r\n%s",
           strlen(body), body);
  req *slow = calloc(1, sizeof *slow);
  slow->text = q;
  slow->port = f->port;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, client_main, slow), 0);
  mcp_http_stats st;
  st.inflight = 0;
  TS_LOOP_UNTIL(&f->loop, WAIT_S * 1000, (mcp_http_get_stats(f->h, &st), st.inflight == 1));
  int done = 0;
  mcp_http_stop(f->h, stopped, &done);
  assert_false(done); /* the call is still running */
  /* while draining: /readyz 503, a new MCP request 503 */
  req *r = calloc(1, sizeof *r);
  r->text = "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  roundtrip(f, r);
  assert_int_equal(status_of(r), 503);
  assert_non_null(strstr(r->resp, "stopping"));
  char *q2 = modern_request("tools/list", NULL);
  r->text = q2;
  roundtrip(f, r);
  assert_int_equal(status_of(r), 503);
  free(q2);
  TS_LOOP_UNTIL(&f->loop, WAIT_S * 1000, done);
  pthread_join(t, NULL);
  assert_int_equal(status_of(slow), 200);
  assert_non_null(strstr(slow->resp, "\"slept\":800"));
  mcp_http_free(f->h);
  f->h = NULL;
  free(q);
  free(slow);
  free(r);
}

/* authentication hook: "Bearer good-A" → subject A, "Bearer good-B" → B, else 401 */
static int auth_hook(void *ud, const mcp_http_request_info *ri, mcp_http_auth_result *out) {
  (void)ud;
  if (ri->authorization && strncmp(ri->authorization, "Bearer good-", 12) == 0) {
    auth_ctx_init(&out->auth, AUTH_KIND_JWT);
    out->auth.scopes = AUTH_SCOPES_ALL;
    return auth_ctx_set_subject(&out->auth, ri->authorization + 12);
  }
  out->status = 401;
  snprintf(out->www_authenticate, sizeof out->www_authenticate, "Bearer resource_metadata=\"%s/.well-known/oauth-protected-resource/mcp\"",
           ri->base_url);
  return 0;
}

static bool route_hook(void *ud, const char *method, const char *path, mcp_http_reply *out) {
  (void)ud;
  if (strcmp(path, "/metrics") != 0) return false;
  out->status = 200;
  out->content_type = "text/plain; version=0.0.4";
  out->body = strdup("peermcp_up 1\n");
  out->body_len = strlen(out->body);
  return true;
}

static void test_http_auth_hook_routes_and_session_bound_to_subject(void **state) {
  fx *f = *state;
  static const char *const any[] = {"0.0.0.0:0"}; /* with authentication: allowed */
  mcp_http_opts o = {.listen = any, .n_listen = 1, .authenticate = auth_hook, .route = route_hook};
  assert_int_equal(start(f, &o), 0);
  req *r = calloc(1, sizeof *r);
  char *q = modern_request("tools/list", NULL);
  r->text = q;
  roundtrip(f, r);
  assert_int_equal(status_of(r), 401);
  assert_non_null(strstr(r->resp, "WWW-Authenticate: Bearer resource_metadata=\"http://0.0.0.0:"));
  r->text = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  roundtrip(f, r);
  assert_int_equal(status_of(r), 200);
  assert_non_null(strstr(r->resp, "peermcp_up 1"));
  /* a session created by subject A */
  const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
                     "\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}";
  char *q2 = malloc(2048);
  snprintf(q2, 2048,
           "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer good-A\r\nContent-Type: "
           "application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: %zu\r\n\r\n%s",
           strlen(init), init);
  r->text = q2;
  roundtrip(f, r);
  assert_int_equal(status_of(r), 200);
  char *sid = strstr(r->resp, "Mcp-Session-Id: ");
  assert_non_null(sid);
  char id[64] = "";
  sscanf(sid + 16, "%63[A-Za-z0-9_-]", id);
  assert_int_equal(strlen(id), 43);
  const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}";
  char *q3 = malloc(2048);
  for (int who = 0; who < 2; who++) {
    snprintf(q3, 2048,
             "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer good-%c\r\nMcp-Session-Id: "
             "%s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: %zu\r\n\r\n%s",
             who ? 'B' : 'A', id, strlen(ping), ping);
    r->text = q3;
    roundtrip(f, r);
    assert_int_equal(status_of(r), who ? 404 : 200); /* another subject never sees the session */
  }
  free(q);
  free(q2);
  free(q3);
  free(r);
}

static char *legacy_post(const char *sid, const char *body) {
  char *q = malloc(4096);
  snprintf(q, 4096,
           "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%sContent-Type: application/json\r\n"
           "Accept: application/json, text/event-stream\r\nContent-Length: %zu\r\n\r\n%s",
           sid ? "Mcp-Session-Id: " : "", sid ? sid : "", sid ? "\r\n" : "", strlen(body), body);
  return q;
}

/* initialize; returns the session id (static buffer of the caller) */
static void new_session(fx *f, char id[64]) {
  const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
                     "\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}";
  req *r = calloc(1, sizeof *r);
  char *q = legacy_post(NULL, init);
  r->text = q;
  roundtrip(f, r);
  assert_int_equal(status_of(r), 200);
  char *sid = strstr(r->resp, "Mcp-Session-Id: ");
  assert_non_null(sid);
  id[0] = 0;
  sscanf(sid + 16, "%63[A-Za-z0-9_-]", id);
  assert_int_equal(strlen(id), 43);
  free(q);
  free(r);
}

static int ping_status(fx *f, const char *id) {
  req *r = calloc(1, sizeof *r);
  char *q = legacy_post(id, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}");
  r->text = q;
  roundtrip(f, r);
  int st = status_of(r);
  free(q);
  free(r);
  return st;
}

static void test_http_idle_sessions_expire(void **state) {
  fx *f = *state;
  mcp_http_opts o = {.session_idle_seconds = 1};
  assert_int_equal(start(f, &o), 0);
  char a[64], b[64];
  new_session(f, a);
  new_session(f, b);
  assert_int_equal(ping_status(f, a), 200);
  mcp_http_stats st;
  mcp_http_get_stats(f->h, &st);
  assert_int_equal(st.sessions, 2);
  /* keep b in use, leave a idle: wait (generously) until a is gone */
  int a_status = 200;
  for (int i = 0; i < 200 && a_status == 200; i++) {
    usleep(100 * 1000);
    for (int k = 0; k < 20; k++) uv_run(&f->loop, UV_RUN_NOWAIT);
    if (i % 5 == 0) assert_int_equal(ping_status(f, b), 200);
    mcp_http_get_stats(f->h, &st);
    if (st.sessions < 2) a_status = ping_status(f, a);
  }
  assert_int_equal(a_status, 404);
  assert_int_equal(ping_status(f, b), 200);
}

static void test_http_max_sessions_ends_the_least_recently_used(void **state) {
  fx *f = *state;
  mcp_http_opts o = {.max_sessions = 2};
  assert_int_equal(start(f, &o), 0);
  char a[64], b[64], c[64];
  new_session(f, a);
  new_session(f, b);
  assert_int_equal(ping_status(f, a), 200); /* a is now more recent than b */
  new_session(f, c);                        /* full: b (least recently used, idle) ends */
  assert_int_equal(ping_status(f, b), 404);
  assert_int_equal(ping_status(f, a), 200);
  assert_int_equal(ping_status(f, c), 200);
  mcp_http_stats st;
  mcp_http_get_stats(f->h, &st);
  assert_int_equal(st.sessions, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_http_port_zero_binds_loopback_and_writes_the_url_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_refuses_non_loopback_without_auth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_bad_address_and_port_in_use_fail_cleanly, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_readyz_follows_ready_and_stopping, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_stop_waits_for_an_inflight_call_and_refuses_new_ones, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_auth_hook_routes_and_session_bound_to_subject, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_idle_sessions_expire, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_max_sessions_ends_the_least_recently_used, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
