/* test_auth.c — closed-by-default authorisation, trusted peers, the shared token, the op
 * scope table (p2p_tasks_spec.md §3.1, §4; fixes of §12.1, §12.3). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "service/auth.h"

#define PEER_A "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define PEER_B "12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

static void test_auth_closed_by_default_allows_only_status(void **st) {
  (void)st;
  svc_auth_policy *p = svc_auth_policy_new();
  svc_auth a;
  svc_auth_init_peer(&a, p, PEER_A);
  assert_int_equal(a.a.scopes, 0);
  assert_false(a.a.local);
  assert_string_equal(a.a.peer_id, PEER_A);
  for (int op = 1; op < SVC_OP__COUNT; op++) {
    bool allowed = svc_auth_has(&a, svc_op_scopes((svc_op)op));
    assert_int_equal(allowed, op == SVC_OP_STATUS);
  }
  /* any token is refused when none is configured */
  assert_false(svc_auth_present_token(&a, p, ""));
  assert_false(svc_auth_present_token(&a, p, "anything"));
  assert_int_equal(a.a.scopes, 0);
  svc_auth_policy_free(p);
}

static void test_auth_trusted_peer_gets_its_scopes_only(void **st) {
  (void)st;
  svc_auth_policy *p = svc_auth_policy_new();
  assert_int_equal(svc_auth_policy_add_peer(p, PEER_A, MCP_SCOPE_CACHE_READ), 0);
  svc_auth a, b;
  svc_auth_init_peer(&a, p, PEER_A);
  svc_auth_init_peer(&b, p, PEER_B);
  assert_true(svc_auth_has(&a, svc_op_scopes(SVC_OP_CACHE_GET)));
  assert_false(svc_auth_has(&a, svc_op_scopes(SVC_OP_CACHE_SET)));
  assert_false(svc_auth_has(&a, svc_op_scopes(SVC_OP_SUBMIT)));
  assert_int_equal(b.a.scopes, 0);
  svc_auth_policy_free(p);
}

static void test_auth_trusted_peer_default_scopes(void **st) {
  (void)st;
  svc_auth_policy *p = svc_auth_policy_new();
  assert_int_equal(svc_auth_policy_add_peer(p, PEER_A, 0), 0);
  svc_auth a;
  svc_auth_init_peer(&a, p, PEER_A);
  assert_int_equal(a.a.scopes, SVC_AUTH_DEFAULT_SCOPES);
  assert_false(svc_auth_has(&a, MCP_SCOPE_ADMIN));
  svc_auth_policy_free(p);
}

static void test_auth_rejects_bad_peer_id(void **st) {
  (void)st;
  svc_auth_policy *p = svc_auth_policy_new();
  assert_int_equal(svc_auth_policy_add_peer(p, "", 0), -EINVAL);
  assert_int_equal(svc_auth_policy_add_peer(p, "12D3/../x", 0), -EINVAL);
  svc_auth_policy_free(p);
}

static void test_auth_token_grants_scopes_and_wrong_token_does_not(void **st) {
  (void)st;
  svc_auth_policy *p = svc_auth_policy_new();
  assert_int_equal(svc_auth_policy_set_token(p, "  s3cr3t \n", MCP_SCOPE_TASK_SUBMIT | MCP_SCOPE_WORKER), 0);
  assert_true(svc_auth_policy_has_token(p));
  svc_auth a;
  svc_auth_init_peer(&a, p, PEER_B);
  assert_false(svc_auth_present_token(&a, p, "s3cr3"));
  assert_false(svc_auth_present_token(&a, p, "s3cr3t!"));
  assert_false(svc_auth_present_token(&a, p, "S3CR3T"));
  assert_int_equal(a.a.scopes, 0);
  assert_true(svc_auth_present_token(&a, p, "s3cr3t"));
  assert_int_equal(a.a.scopes, MCP_SCOPE_TASK_SUBMIT | MCP_SCOPE_WORKER);
  assert_string_equal(a.a.subject, "token");
  assert_false(svc_auth_has(&a, svc_op_scopes(SVC_OP_CACHE_GET)));
  svc_auth_policy_free(p);
}

static void test_auth_token_in_message(void **st) {
  (void)st;
  svc_auth_policy *p = svc_auth_policy_new();
  assert_int_equal(svc_auth_policy_set_token(p, "tok", 0), 0);
  json_t *good = json_pack("{s:s, s:s}", "op", "submit", "token", "tok");
  json_t *bad = json_pack("{s:s, s:i}", "op", "submit", "token", 5);
  svc_auth a;
  svc_auth_init_peer(&a, p, NULL);
  assert_false(svc_auth_present_msg_token(&a, p, bad));
  assert_true(svc_auth_present_msg_token(&a, p, good));
  assert_int_equal(a.a.scopes, SVC_AUTH_DEFAULT_SCOPES);
  json_decref(good);
  json_decref(bad);
  svc_auth_policy_free(p);
}

static void test_auth_token_from_env_prefers_accelerate_name(void **st) {
  (void)st;
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_TOKEN", " ", 1);
  setenv("IPFS_DATASETS_PY_TASK_P2P_TOKEN", "compat", 1);
  svc_auth_policy *p = svc_auth_policy_new();
  assert_int_equal(svc_auth_policy_token_from_env(p, 0), 1);
  assert_true(svc_auth_token_ok(p, "compat"));
  svc_auth_policy_free(p);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_TOKEN", "primary", 1);
  p = svc_auth_policy_new();
  assert_int_equal(svc_auth_policy_token_from_env(p, 0), 1);
  assert_true(svc_auth_token_ok(p, "primary"));
  assert_false(svc_auth_token_ok(p, "compat"));
  svc_auth_policy_free(p);
  unsetenv("IPFS_ACCELERATE_PY_TASK_P2P_TOKEN");
  unsetenv("IPFS_DATASETS_PY_TASK_P2P_TOKEN");
}

static void test_auth_overlong_token_refused(void **st) {
  (void)st;
  svc_auth_policy *p = svc_auth_policy_new();
  char *big = malloc(SVC_AUTH_MAX_TOKEN + 2);
  memset(big, 'x', SVC_AUTH_MAX_TOKEN + 1);
  big[SVC_AUTH_MAX_TOKEN + 1] = 0;
  assert_int_equal(svc_auth_policy_set_token(p, big, 0), -EINVAL);
  assert_false(svc_auth_token_ok(p, big));
  free(big);
  svc_auth_policy_free(p);
}

static void test_auth_copy_repoints_view(void **st) {
  (void)st;
  svc_auth_policy *p = svc_auth_policy_new();
  assert_int_equal(svc_auth_policy_add_peer(p, PEER_A, 0), 0);
  svc_auth a, b;
  svc_auth_init_peer(&a, p, PEER_A);
  svc_auth_copy(&b, &a);
  assert_ptr_equal(b.a.peer_id, b.peer_id);
  assert_string_equal(b.a.peer_id, PEER_A);
  svc_auth_policy_free(p);
}

static void test_auth_local_has_everything(void **st) {
  (void)st;
  svc_auth a;
  svc_auth_init_local(&a);
  assert_true(a.a.local);
  assert_null(a.a.peer_id);
  for (int op = 0; op < SVC_OP__COUNT; op++) assert_true(svc_auth_has(&a, svc_op_scopes((svc_op)op)));
}

static void test_op_parse_knows_every_alias(void **st) {
  (void)st;
  static const struct {
    const char *name;
    svc_op op;
  } cases[] = {
      {"submit", SVC_OP_SUBMIT},          {" CLAIM ", SVC_OP_CLAIM},
      {"claim_next", SVC_OP_CLAIM},       {"claim_many", SVC_OP_CLAIM_MANY},
      {"claim_batch", SVC_OP_CLAIM_MANY}, {"complete", SVC_OP_COMPLETE},
      {"task.complete", SVC_OP_COMPLETE}, {"complete_task", SVC_OP_COMPLETE},
      {"release", SVC_OP_RELEASE},        {"task.release", SVC_OP_RELEASE},
      {"release_task", SVC_OP_RELEASE},   {"peer.heartbeat", SVC_OP_PEER_HEARTBEAT},
      {"heartbeat", SVC_OP_PEER_HEARTBEAT}, {"peer", SVC_OP_PEER_HEARTBEAT},
      {"list", SVC_OP_LIST},              {"tasks.list", SVC_OP_LIST},
      {"queue.list", SVC_OP_LIST},        {"cancel", SVC_OP_CANCEL},
      {"task.cancel", SVC_OP_CANCEL},     {"status", SVC_OP_STATUS},
      {"capabilities", SVC_OP_STATUS},    {"describe", SVC_OP_STATUS},
      {"tool", SVC_OP_TOOL},              {"call_tool", SVC_OP_TOOL},
      {"tool.call", SVC_OP_TOOL},         {"cache.get", SVC_OP_CACHE_GET},
      {"cache_get", SVC_OP_CACHE_GET},    {"cache", SVC_OP_CACHE_GET},
      {"cache.has", SVC_OP_CACHE_HAS},    {"cache_has", SVC_OP_CACHE_HAS},
      {"cache.set", SVC_OP_CACHE_SET},    {"cache_set", SVC_OP_CACHE_SET},
      {"cache.delete", SVC_OP_CACHE_DELETE}, {"cache_del", SVC_OP_CACHE_DELETE},
      {"cache_delete", SVC_OP_CACHE_DELETE}, {"get", SVC_OP_GET},
      {"wait", SVC_OP_WAIT},              {"task.heartbeat", SVC_OP_TASK_HEARTBEAT},
      {"fail", SVC_OP_FAIL},              {"enqueue", SVC_OP_UNKNOWN},
      {"task.get", SVC_OP_UNKNOWN},       {"", SVC_OP_UNKNOWN},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) assert_int_equal(svc_op_parse(cases[i].name), cases[i].op);
  assert_int_equal(svc_op_parse(NULL), SVC_OP_UNKNOWN);
}

static void test_op_scopes_match_the_table(void **st) {
  (void)st;
  assert_int_equal(svc_op_scopes(SVC_OP_STATUS), 0);
  assert_int_equal(svc_op_scopes(SVC_OP_SUBMIT), MCP_SCOPE_TASK_SUBMIT);
  assert_int_equal(svc_op_scopes(SVC_OP_CLAIM), MCP_SCOPE_WORKER);
  assert_int_equal(svc_op_scopes(SVC_OP_COMPLETE), MCP_SCOPE_WORKER);
  assert_int_equal(svc_op_scopes(SVC_OP_TASK_HEARTBEAT), MCP_SCOPE_WORKER);
  assert_int_equal(svc_op_scopes(SVC_OP_CACHE_GET), MCP_SCOPE_CACHE_READ);
  assert_int_equal(svc_op_scopes(SVC_OP_CACHE_DELETE), MCP_SCOPE_CACHE_WRITE);
  assert_int_equal(svc_op_scopes(SVC_OP_TOOL), MCP_SCOPE_TOOL_CALL);
  assert_false(svc_op_idempotent(SVC_OP_SUBMIT));
  assert_false(svc_op_idempotent(SVC_OP_CLAIM));
  assert_true(svc_op_idempotent(SVC_OP_GET));
}

static void test_scopes_parse(void **st) {
  (void)st;
  unsigned s;
  assert_int_equal(svc_auth_scopes_parse("cache.read, cache_write;worker", &s), 0);
  assert_int_equal(s, MCP_SCOPE_CACHE_READ | MCP_SCOPE_CACHE_WRITE | MCP_SCOPE_WORKER);
  assert_int_equal(svc_auth_scopes_parse("all", &s), 0);
  assert_int_equal(s, MCP_SCOPE_ALL);
  assert_int_equal(svc_auth_scopes_parse("cache.read,root", &s), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_auth_closed_by_default_allows_only_status),
      cmocka_unit_test(test_auth_trusted_peer_gets_its_scopes_only),
      cmocka_unit_test(test_auth_trusted_peer_default_scopes),
      cmocka_unit_test(test_auth_rejects_bad_peer_id),
      cmocka_unit_test(test_auth_token_grants_scopes_and_wrong_token_does_not),
      cmocka_unit_test(test_auth_token_in_message),
      cmocka_unit_test(test_auth_token_from_env_prefers_accelerate_name),
      cmocka_unit_test(test_auth_overlong_token_refused),
      cmocka_unit_test(test_auth_copy_repoints_view),
      cmocka_unit_test(test_auth_local_has_everything),
      cmocka_unit_test(test_op_parse_knows_every_alias),
      cmocka_unit_test(test_op_scopes_match_the_table),
      cmocka_unit_test(test_scopes_parse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
