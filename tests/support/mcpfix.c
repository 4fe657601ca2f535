/* mcpfix.c — see mcpfix.h. */
#include "mcpfix.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wait.h"

void ts_mcp_open(ts_mcp *m) {
  memset(m, 0, sizeof *m);
  assert_int_equal(uv_loop_init(&m->loop), 0);
  m->reg = mcp_registry_new();
  assert_non_null(m->reg);
}

void ts_mcp_add_tools(ts_mcp *m, const mcp_tool_def *defs, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (mcp_registry_add(m->reg, &defs[i]) != 0) fail_msg("tool %s refused by the registry", defs[i].name);
}

void ts_mcp_start(ts_mcp *m, unsigned threads, unsigned max_threads) {
  mcp_dispatcher_opts o = {.threads = threads, .max_threads = max_threads};
  ts_mcp_start_opts(m, &o);
}

void ts_mcp_start_opts(ts_mcp *m, const mcp_dispatcher_opts *o) {
  assert_int_equal(mcp_dispatcher_new(&m->loop, m->reg, o, &m->d), 0);
}

void ts_mcp_on_done(void *ud, const mcp_call_outcome *o) {
  ts_mcp *m = ud;
  m->done++;
  m->st = o->status;
  json_decref(m->env);
  m->env = json_incref(mcp_call_outcome_envelope(o)); /* a lazy_envelope success too */
}

json_t *ts_mcp_call(ts_mcp *m, const mcp_call_request *rq) {
  int before = m->done;
  assert_int_equal(mcp_dispatch_start(m->d, rq, ts_mcp_on_done, m, NULL), 0);
  TS_LOOP_UNTIL(&m->loop, TS_DEADLINE_MS, m->done > before);
  assert_int_equal(m->done, before + 1);
  return m->env;
}

void ts_mcp_close(ts_mcp *m) {
  if (m->d) mcp_dispatcher_free(m->d);
  m->d = NULL;
  ts_loop_close(&m->loop);
  mcp_registry_free(m->reg);
  m->reg = NULL;
  json_decref(m->env);
  m->env = NULL;
}

void ts_capture(void *ud, char *msg, size_t len) {
  json_t *out = ud;
  assert_int_equal(strlen(msg), len);
  assert_null(strchr(msg, '\n')); /* stdio framing: one message, one line */
  json_error_t err;
  json_t *j = json_loadb(msg, len, 0, &err);
  if (!j) fail_msg("the session sent a message that is not JSON (%s): %.200s", err.text, msg);
  json_array_append_new(out, j);
  free(msg);
}

json_t *ts_last(const json_t *out) {
  size_t n = json_array_size(out);
  if (n == 0) fail_msg("the session sent nothing");
  return json_array_get(out, n - 1);
}

json_int_t ts_error_code(const json_t *msg) {
  return json_integer_value(json_object_get(json_object_get(msg, "error"), "code"));
}
