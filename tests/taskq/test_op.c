/* test_op.c — TaskQueue op names, aliases and the scope each op needs (p2p_tasks_spec.md §3.1,
 * §4; the closed-by-default rule of §12.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/policy.h"
#include "taskq/op.h"

#define PEER_A "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static bool may(const auth_ctx *a, taskq_op op) {
  auth_scopes need = taskq_op_scopes(op);
  return auth_allows(a, &need);
}

static void test_op_parse_knows_every_alias(void **st) {
  (void)st;
  static const struct {
    const char *name;
    taskq_op op;
  } cases[] = {
      {"submit", TASKQ_OP_SUBMIT},          {" CLAIM ", TASKQ_OP_CLAIM},
      {"claim_next", TASKQ_OP_CLAIM},       {"claim_many", TASKQ_OP_CLAIM_MANY},
      {"claim_batch", TASKQ_OP_CLAIM_MANY}, {"complete", TASKQ_OP_COMPLETE},
      {"task.complete", TASKQ_OP_COMPLETE}, {"complete_task", TASKQ_OP_COMPLETE},
      {"release", TASKQ_OP_RELEASE},        {"task.release", TASKQ_OP_RELEASE},
      {"release_task", TASKQ_OP_RELEASE},   {"peer.heartbeat", TASKQ_OP_PEER_HEARTBEAT},
      {"heartbeat", TASKQ_OP_PEER_HEARTBEAT}, {"peer", TASKQ_OP_PEER_HEARTBEAT},
      {"list", TASKQ_OP_LIST},              {"tasks.list", TASKQ_OP_LIST},
      {"queue.list", TASKQ_OP_LIST},        {"cancel", TASKQ_OP_CANCEL},
      {"task.cancel", TASKQ_OP_CANCEL},     {"status", TASKQ_OP_STATUS},
      {"capabilities", TASKQ_OP_STATUS},    {"describe", TASKQ_OP_STATUS},
      {"tool", TASKQ_OP_TOOL},              {"call_tool", TASKQ_OP_TOOL},
      {"tool.call", TASKQ_OP_TOOL},         {"cache.get", TASKQ_OP_CACHE_GET},
      {"cache_get", TASKQ_OP_CACHE_GET},    {"cache", TASKQ_OP_CACHE_GET},
      {"cache.has", TASKQ_OP_CACHE_HAS},    {"cache_has", TASKQ_OP_CACHE_HAS},
      {"cache.set", TASKQ_OP_CACHE_SET},    {"cache_set", TASKQ_OP_CACHE_SET},
      {"cache.delete", TASKQ_OP_CACHE_DELETE}, {"cache_del", TASKQ_OP_CACHE_DELETE},
      {"cache_delete", TASKQ_OP_CACHE_DELETE}, {"get", TASKQ_OP_GET},
      {"wait", TASKQ_OP_WAIT},              {"task.heartbeat", TASKQ_OP_TASK_HEARTBEAT},
      {"task_heartbeat", TASKQ_OP_TASK_HEARTBEAT}, {"lease.renew", TASKQ_OP_TASK_HEARTBEAT},
      {"fail", TASKQ_OP_FAIL},              {"task.fail", TASKQ_OP_FAIL},
      {"fail_task", TASKQ_OP_FAIL},         {"enqueue", TASKQ_OP_UNKNOWN},
      {"task.get", TASKQ_OP_UNKNOWN},       {"", TASKQ_OP_UNKNOWN},
      {"   ", TASKQ_OP_UNKNOWN},            {"a_very_long_op_name_that_is_not_an_op", TASKQ_OP_UNKNOWN},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) assert_int_equal(taskq_op_parse(cases[i].name), cases[i].op);
  assert_int_equal(taskq_op_parse(NULL), TASKQ_OP_UNKNOWN);
  assert_string_equal(taskq_op_name(TASKQ_OP_TOOL), "call_tool");
  assert_string_equal(taskq_op_name(TASKQ_OP__COUNT), "unknown");
}

static void test_op_scopes_match_the_table(void **st) {
  (void)st;
  static const struct {
    taskq_op op;
    uint64_t mask;
  } cases[] = {
      {TASKQ_OP_STATUS, 0},
      {TASKQ_OP_UNKNOWN, 0},
      {TASKQ_OP_SUBMIT, AUTH_TASK_SUBMIT},
      {TASKQ_OP_GET, AUTH_TASK_SUBMIT},
      {TASKQ_OP_WAIT, AUTH_TASK_SUBMIT},
      {TASKQ_OP_LIST, AUTH_TASK_SUBMIT},
      {TASKQ_OP_CANCEL, AUTH_TASK_SUBMIT},
      {TASKQ_OP_CLAIM, AUTH_WORKER},
      {TASKQ_OP_CLAIM_MANY, AUTH_WORKER},
      {TASKQ_OP_COMPLETE, AUTH_WORKER},
      {TASKQ_OP_FAIL, AUTH_WORKER},
      {TASKQ_OP_RELEASE, AUTH_WORKER},
      {TASKQ_OP_TASK_HEARTBEAT, AUTH_WORKER},
      {TASKQ_OP_PEER_HEARTBEAT, AUTH_WORKER},
      {TASKQ_OP_TOOL, AUTH_TOOL_CALL},
      {TASKQ_OP_CACHE_GET, AUTH_CACHE_READ},
      {TASKQ_OP_CACHE_HAS, AUTH_CACHE_READ},
      {TASKQ_OP_CACHE_SET, AUTH_CACHE_WRITE},
      {TASKQ_OP_CACHE_DELETE, AUTH_CACHE_WRITE},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    auth_scopes got = taskq_op_scopes(cases[i].op), want = AUTH_SCOPES(cases[i].mask);
    assert_true(auth_scopes_equal(&got, &want));
  }
  assert_false(taskq_op_idempotent(TASKQ_OP_SUBMIT));
  assert_false(taskq_op_idempotent(TASKQ_OP_CLAIM));
  assert_false(taskq_op_idempotent(TASKQ_OP_COMPLETE));
  assert_true(taskq_op_idempotent(TASKQ_OP_GET));
  assert_true(taskq_op_idempotent(TASKQ_OP_TASK_HEARTBEAT));
}

static void test_op_stranger_may_only_ask_status(void **st) {
  (void)st;
  auth_policy *p = auth_policy_new();
  auth_ctx a;
  auth_policy_peer_ctx(p, PEER_A, &a);
  for (int op = 1; op < TASKQ_OP__COUNT; op++) assert_int_equal(may(&a, (taskq_op)op), op == TASKQ_OP_STATUS);
  auth_ctx l;
  auth_ctx_local(&l);
  for (int op = 0; op < TASKQ_OP__COUNT; op++) assert_true(may(&l, (taskq_op)op));
  auth_policy_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_op_parse_knows_every_alias),
      cmocka_unit_test(test_op_scopes_match_the_table),
      cmocka_unit_test(test_op_stranger_may_only_ask_status),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
