/* Tests for mcp/stdio: newline framing (CRLF, blank lines, messages split across reads), the
 * line ceiling (an over-long line is answered and skipped, the next line still served), EOF in
 * the middle of a message, output to a regular file, and stop without EOF. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "transport/stdio.h"

static mcp_tool_status echo_fn(mcp_call *call, json_t *args, json_t **result, void *ud) {
  *result = json_incref(args);
  return MCP_TOOL_OK;
}
static const mcp_tool_def k_echo = {.name = "echo", .category = "t", .fn = echo_fn};
static const mcp_auth k_auth = AUTH_CTX_LOCAL_INIT;

typedef struct {
  uv_loop_t loop;
  mcp_registry *reg;
  mcp_dispatcher *d;
  mcp_stdio *st;
  int closed;
} fx;

static void on_closed(void *ud) { ((fx *)ud)->closed++; }

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  f->reg = mcp_registry_new();
  assert_int_equal(mcp_registry_add(f->reg, &k_echo), 0);
  assert_int_equal(mcp_dispatcher_new(&f->loop, f->reg, NULL, &f->d), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  if (f->st) mcp_stdio_free(f->st);
  mcp_dispatcher_free(f->d);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  mcp_registry_free(f->reg);
  free(f);
  return 0;
}

static void start(fx *f, int in_fd, int out_fd, size_t max_line) {
  mcp_stdio_opts o = {.in_fd = in_fd, .out_fd = out_fd, .max_line_bytes = max_line,
                      .session = {.dispatcher = f->d, .auth = &k_auth}, .on_closed = on_closed, .ud = f};
  assert_int_equal(mcp_stdio_start(&f->loop, &o, &f->st), 0);
}

static void run_until_closed(fx *f) {
  for (int i = 0; i < 100000 && !f->closed; i++) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(f->closed, 1);
}

/* Reads everything available on fd (non-blocking) and returns the JSON messages, one per line. */
static json_t *read_messages(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  char *all = NULL;
  size_t n = 0;
  char b[4096];
  ssize_t r;
  while ((r = read(fd, b, sizeof b)) > 0) {
    all = realloc(all, n + (size_t)r + 1);
    memcpy(all + n, b, (size_t)r);
    n += (size_t)r;
  }
  json_t *arr = json_array();
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    if (all[i] != '\n') continue;
    json_t *m = json_loadb(all + start, i - start, 0, NULL);
    assert_non_null(m); /* every line of output is one JSON message */
    json_array_append_new(arr, m);
    start = i + 1;
  }
  assert_int_equal(start, n); /* and ends with a newline */
  free(all);
  return arr;
}

static void write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    assert_true(w > 0);
    s += w;
    n -= (size_t)w;
  }
}

static json_int_t id_of(json_t *arr, size_t i) { return json_integer_value(json_object_get(json_array_get(arr, i), "id")); }
static json_int_t code_of(json_t *arr, size_t i) {
  return json_integer_value(json_object_get(json_object_get(json_array_get(arr, i), "error"), "code"));
}

static void test_stdio_crlf_blank_lines_and_split_messages(void **state) {
  fx *f = *state;
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  start(f, in[0], out[1], 0);
  const char *a = "{\"jsonrpc\":\"2.0\",\"id\":1,\"me";
  const char *b = "thod\":\"ping\"}\r\n\n   \n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n";
  write_all(in[1], a, strlen(a));
  for (int i = 0; i < 20; i++) uv_run(&f->loop, UV_RUN_NOWAIT), usleep(1000);
  write_all(in[1], b, strlen(b));
  close(in[1]);
  run_until_closed(f);
  json_t *msgs = read_messages(out[0]);
  assert_int_equal(json_array_size(msgs), 2);
  assert_int_equal(id_of(msgs, 0), 1);
  assert_int_equal(id_of(msgs, 1), 2);
  json_decref(msgs);
  close(in[0]);
  close(out[0]);
  close(out[1]);
}

static void test_stdio_over_long_line_is_answered_and_skipped(void **state) {
  fx *f = *state;
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  start(f, in[0], out[1], 256);
  /* 1: a long line arriving in pieces; 2: a long line in one piece; then a line of exactly the
   * limit (accepted) */
  char *big = malloc(3000);
  memset(big, 'x', 3000);
  write_all(in[1], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"p\":\"", 55);
  for (int i = 0; i < 5; i++) {
    write_all(in[1], big, 500);
    for (int k = 0; k < 5; k++) uv_run(&f->loop, UV_RUN_NOWAIT), usleep(500);
  }
  write_all(in[1], "\"}}\n", 4);
  write_all(in[1], big, 3000);
  write_all(in[1], "\n", 1);
  char exact[257];
  int hdr = snprintf(exact, sizeof exact, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\",\"params\":{\"p\":\"");
  memset(exact + hdr, 'y', 256 - (size_t)hdr - 3);
  memcpy(exact + 253, "\"}}", 3);
  exact[256] = 0;
  assert_int_equal(strlen(exact), 256);
  write_all(in[1], exact, 256);
  write_all(in[1], "\n", 1);
  close(in[1]);
  free(big);
  run_until_closed(f);
  json_t *msgs = read_messages(out[0]);
  assert_int_equal(json_array_size(msgs), 3);
  assert_int_equal(code_of(msgs, 0), -32600);
  assert_true(json_is_null(json_object_get(json_array_get(msgs, 0), "id")));
  assert_int_equal(code_of(msgs, 1), -32600);
  assert_int_equal(id_of(msgs, 2), 3);
  assert_non_null(json_object_get(json_array_get(msgs, 2), "result"));
  json_decref(msgs);
  close(in[0]);
  close(out[0]);
  close(out[1]);
}

static void test_stdio_eof_mid_message_and_regular_file_output(void **state) {
  fx *f = *state;
  int in[2];
  assert_int_equal(pipe(in), 0);
  char path[] = "/tmp/peermcp-test-stdio-XXXXXX";
  int out = mkstemp(path);
  assert_true(out >= 0);
  unlink(path);
  start(f, in[0], out, 0);
  const char *s = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"a\":1}}}\n"
                  "{\"jsonrpc\":\"2.0\",\"id\":2,\"meth";
  write_all(in[1], s, strlen(s));
  close(in[1]);
  run_until_closed(f); /* the call in flight finished before closing */
  lseek(out, 0, SEEK_SET);
  json_t *msgs = read_messages(out);
  assert_int_equal(json_array_size(msgs), 2);
  /* the truncated tail is a parse error; the tool call's answer follows (it was asynchronous) */
  assert_int_equal(code_of(msgs, 0), -32700);
  assert_int_equal(id_of(msgs, 1), 1);
  json_decref(msgs);
  close(out);
  close(in[0]);
}

static void test_stdio_stop_without_eof_closes(void **state) {
  fx *f = *state;
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  start(f, in[0], out[1], 0);
  write_all(in[1], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n", 41);
  for (int i = 0; i < 50; i++) uv_run(&f->loop, UV_RUN_NOWAIT), usleep(1000);
  mcp_stdio_stop(f->st); /* as a signal does: the input pipe stays open */
  run_until_closed(f);
  json_t *msgs = read_messages(out[0]);
  assert_int_equal(json_array_size(msgs), 1);
  json_decref(msgs);
  close(in[1]);
  close(in[0]);
  close(out[0]);
  close(out[1]);
}

static void test_stdio_regular_file_input_uses_the_reader_thread(void **state) {
  fx *f = *state;
  char path[] = "/tmp/peermcp-test-stdin-XXXXXX";
  int in = mkstemp(path);
  assert_true(in >= 0);
  unlink(path);
  const char *s = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n"
                  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{}}}\n";
  write_all(in, s, strlen(s));
  lseek(in, 0, SEEK_SET);
  int out[2];
  assert_int_equal(pipe(out), 0);
  start(f, in, out[1], 0);
  run_until_closed(f);
  json_t *msgs = read_messages(out[0]);
  assert_int_equal(json_array_size(msgs), 2);
  assert_int_equal(id_of(msgs, 0), 1);
  assert_int_equal(id_of(msgs, 1), 2);
  json_decref(msgs);
  close(in);
  close(out[0]);
  close(out[1]);
}

static void test_stdio_burst_of_responses_in_order(void **state) {
  fx *f = *state;
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  start(f, in[0], out[1], 0);
  char line[128];
  for (int i = 1; i <= 200; i++) {
    int n = snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\"}\n", i);
    write_all(in[1], line, (size_t)n);
  }
  close(in[1]);
  run_until_closed(f);
  json_t *msgs = read_messages(out[0]);
  assert_int_equal(json_array_size(msgs), 200);
  for (size_t i = 0; i < 200; i++) assert_int_equal(id_of(msgs, i), (json_int_t)i + 1);
  json_decref(msgs);
  close(in[0]);
  close(out[0]);
  close(out[1]);
}

int main(void) {
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_stdio_crlf_blank_lines_and_split_messages),
      T(test_stdio_over_long_line_is_answered_and_skipped),
      T(test_stdio_eof_mid_message_and_regular_file_output),
      T(test_stdio_stop_without_eof_closes),
      T(test_stdio_regular_file_input_uses_the_reader_thread),
      T(test_stdio_burst_of_responses_in_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
