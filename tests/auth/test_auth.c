/* test_auth.c — the AuthContext value, scope names and sets, and the policy: closed by default,
 * trusted peers, the shared token (p2p_tasks_spec.md §4; fixes of §12.1, §12.3). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/audit.h"
#include "auth/auth.h"
#include "auth/policy.h"
#include "auth/scope.h"
#include "util/log.h"
#include "util/metrics.h"

#define PEER_A "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define PEER_B "12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

static bool holds(const auth_ctx *a, uint64_t mask) { return auth_allows_mask(a, mask); }

/* ---------- audit: peermcp_auth_failures_total ---------- */

static uint64_t af(const char *transport, const char *reason) {
  metrics_family *f = metrics_find("peermcp_auth_failures_total");
  assert_non_null(f);
  int t = metrics_label_index(f, 0, transport), r = metrics_label_index(f, 1, reason);
  assert_true(t >= 0 && r >= 0);
  return metrics_value(f, metrics_series2(f, (unsigned)t, (unsigned)r));
}

static void test_audit_counts_each_refusal_by_transport_and_reason(void **st) {
  (void)st;
  log_set_level(LOG_OFF);
  metrics_family *f = metrics_find("peermcp_auth_failures_total");
  assert_non_null(f);
  assert_int_equal(metrics_label_index(f, 1, "none"), -1); /* no label for "allowed" */
  uint64_t p0 = af("p2p", "insufficient_scope"), h0 = af("http", "token_in_query"), s0 = af("stdio", "missing_credential");
  uint64_t t0 = auth_audit_total();
  auth_ctx a;
  auth_ctx_init(&a, AUTH_KIND_PEER);
  a.transport = AUTH_TR_MCP_P2P;
  auth_audit_refused(&a, AUTH_REASON_INSUFFICIENT_SCOPE, "op", "submit", NULL);
  a.transport = AUTH_TR_TASKQUEUE; /* the legacy protocol is p2p too */
  auth_audit_refused(&a, AUTH_REASON_INSUFFICIENT_SCOPE, "op", "claim", NULL);
  auth_audit_refused_at(AUTH_TR_HTTP, "127.0.0.1", AUTH_REASON_TOKEN_IN_QUERY, "http", NULL);
  assert_int_equal(af("p2p", "insufficient_scope") - p0, 2);
  assert_int_equal(af("http", "token_in_query") - h0, 1);
  assert_int_equal(af("stdio", "missing_credential") - s0, 0);
  assert_int_equal(auth_audit_total() - t0, 3);
  assert_int_equal(auth_audit_count(AUTH_TR_TASKQUEUE, AUTH_REASON_INSUFFICIENT_SCOPE), 1);
  /* a reason out of range counts as invalid_credential, a transport out of range as internal */
  uint64_t i0 = af("internal", "invalid_credential");
  auth_audit_refused_at((auth_transport)99, NULL, (auth_reason)99, NULL, NULL);
  assert_int_equal(af("internal", "invalid_credential") - i0, 1);
}

/* ---------- scopes ---------- */

static void test_scope_builtin_names_have_fixed_ids(void **st) {
  (void)st;
  assert_int_equal(auth_scope_id("cache.read"), AUTH_SCOPE_CACHE_READ);
  assert_int_equal(auth_scope_id("cache.write"), AUTH_SCOPE_CACHE_WRITE);
  assert_int_equal(auth_scope_id("task.submit"), AUTH_SCOPE_TASK_SUBMIT);
  assert_int_equal(auth_scope_id("worker"), AUTH_SCOPE_WORKER);
  assert_int_equal(auth_scope_id("tool.call"), AUTH_SCOPE_TOOL_CALL);
  assert_int_equal(auth_scope_id("admin"), AUTH_SCOPE_ADMIN);
  assert_string_equal(auth_scope_name(AUTH_SCOPE_TOOL_CALL), "tool.call");
  assert_int_equal(auth_scope_id("nope"), -ENOENT);
  assert_int_equal(auth_scope_id(NULL), -ENOENT);
  assert_null(auth_scope_name(AUTH_SCOPE_MAX));
}

static void test_scope_intern_gives_stable_new_ids(void **st) {
  (void)st;
  unsigned a, b, again;
  assert_int_equal(auth_scope_intern("models.run", &a), 0);
  assert_true(a >= AUTH_SCOPE_BUILTIN_COUNT);
  assert_int_equal(auth_scope_intern("models:read", &b), 0);
  assert_int_not_equal(a, b);
  assert_int_equal(auth_scope_intern("models.run", &again), 0);
  assert_int_equal(again, a);
  assert_int_equal(auth_scope_id("models.run"), (int)a);
  assert_string_equal(auth_scope_name(b), "models:read");
  /* a built-in name interns to its fixed id */
  assert_int_equal(auth_scope_intern("worker", &again), 0);
  assert_int_equal(again, AUTH_SCOPE_WORKER);
}

static void test_scope_intern_refuses_bad_names(void **st) {
  (void)st;
  unsigned id;
  char long_name[AUTH_SCOPE_MAX_NAME + 2];
  memset(long_name, 'x', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = 0;
  const char *bad[] = {"", "a b", "a,b", "a;b", "q\"uote", "back\\slash", "tab\t", "\x7f", "caf\xc3\xa9", long_name};
  unsigned before = auth_scope_count();
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(auth_scope_intern(bad[i], &id), -EINVAL);
  assert_int_equal(auth_scope_intern(NULL, &id), -EINVAL);
  assert_int_equal(auth_scope_count(), before);
  long_name[AUTH_SCOPE_MAX_NAME] = 0; /* exactly the ceiling is fine */
  assert_int_equal(auth_scope_intern(long_name, &id), 0);
}

/* Runs last among the scope tests: fills the table. */
static void test_scope_table_has_a_ceiling(void **st) {
  (void)st;
  unsigned id = 0;
  char name[32];
  int rc = 0;
  for (int i = 0; i < AUTH_SCOPE_MAX + 10 && rc == 0; i++) {
    snprintf(name, sizeof name, "fill.%d", i);
    rc = auth_scope_intern(name, &id);
  }
  assert_int_equal(rc, -ENOSPC);
  assert_int_equal(auth_scope_count(), AUTH_SCOPE_MAX);
  /* the last id still works in a set */
  auth_scopes s = {{0}};
  auth_scopes_add(&s, AUTH_SCOPE_MAX - 1);
  assert_true(auth_scopes_has(&s, AUTH_SCOPE_MAX - 1));
  assert_true(s.w[AUTH_SCOPE_WORDS - 1] >> 63);
  /* known names keep resolving */
  assert_int_equal(auth_scope_id("fill.0"), auth_scope_id("fill.0"));
  assert_true(auth_scope_id("fill.0") >= 0);
}

static void test_scopes_cover_every_word(void **st) {
  (void)st;
  auth_scopes have = AUTH_SCOPES(AUTH_CACHE_READ), need = AUTH_SCOPES(0);
  assert_true(auth_scopes_cover(&have, &need)); /* nothing needed */
  assert_true(auth_scopes_empty(&need));
  auth_scopes_add(&need, AUTH_SCOPE_CACHE_READ);
  assert_true(auth_scopes_cover(&have, &need));
  auth_scopes_add(&need, 200); /* an id in the last word */
  assert_false(auth_scopes_cover(&have, &need));
  auth_scopes_add(&have, 200);
  assert_true(auth_scopes_cover(&have, &need));
  auth_scopes all = AUTH_SCOPES_ALL;
  assert_true(auth_scopes_cover(&all, &need));
  auth_scopes_add(&have, AUTH_SCOPE_MAX); /* out of range: ignored */
  assert_false(auth_scopes_has(&have, AUTH_SCOPE_MAX));
  auth_scopes u = AUTH_SCOPES(AUTH_WORKER);
  auth_scopes_union(&u, &have);
  assert_true(auth_scopes_has(&u, AUTH_SCOPE_WORKER) && auth_scopes_has(&u, 200));
}

static void test_scopes_parse_known_names_and_legacy_spellings(void **st) {
  (void)st;
  auth_scopes s;
  assert_int_equal(auth_scopes_parse("cache.read, cache_write;worker", &s), 0);
  auth_scopes want = AUTH_SCOPES(AUTH_CACHE_READ | AUTH_CACHE_WRITE | AUTH_WORKER);
  assert_true(auth_scopes_equal(&s, &want));
  assert_int_equal(auth_scopes_parse("TOOL_CALL", &s), 0);
  want = AUTH_SCOPES(AUTH_TOOL_CALL);
  assert_true(auth_scopes_equal(&s, &want));
  assert_int_equal(auth_scopes_parse("all", &s), 0);
  want = AUTH_SCOPES_ALL;
  assert_true(auth_scopes_equal(&s, &want));
  assert_int_equal(auth_scopes_parse("*", &s), 0);
  assert_true(auth_scopes_equal(&s, &want));
  assert_int_equal(auth_scopes_parse("", &s), 0);
  assert_true(auth_scopes_empty(&s));
  /* a declared name is exact */
  unsigned id;
  assert_int_equal(auth_scope_intern("Models.Run", &id), 0);
  assert_int_equal(auth_scopes_parse("Models.Run", &s), 0);
  assert_true(auth_scopes_has(&s, id));
  /* unknown or malformed: refused, out untouched */
  auth_scopes keep = AUTH_SCOPES(AUTH_ADMIN);
  assert_int_equal(auth_scopes_parse("cache.read,root", &keep), -EINVAL);
  assert_int_equal(auth_scopes_parse("MODELS.RUN", &keep), -EINVAL); /* a declared name is case-sensitive */
  want = AUTH_SCOPES(AUTH_ADMIN);
  assert_true(auth_scopes_equal(&keep, &want));
}

static void test_scopes_granted_drops_unknown_names_without_interning(void **st) {
  (void)st;
  unsigned before = auth_scope_count();
  auth_scopes s;
  auth_scopes_parse_granted("openid profile tool.call never.seen.before cache.read", &s);
  auth_scopes want = AUTH_SCOPES(AUTH_TOOL_CALL | AUTH_CACHE_READ);
  assert_true(auth_scopes_equal(&s, &want));
  assert_int_equal(auth_scope_count(), before);
  assert_int_equal(auth_scope_id("never.seen.before"), -ENOENT);
  auth_scopes_parse_granted("all *", &s); /* not special in a credential */
  assert_true(auth_scopes_empty(&s));
  auth_scopes_parse_granted(NULL, &s);
  assert_true(auth_scopes_empty(&s));
}

static void test_scopes_format_lists_names(void **st) {
  (void)st;
  char b[128];
  auth_scopes s = AUTH_SCOPES(AUTH_CACHE_READ | AUTH_TOOL_CALL);
  assert_int_equal(auth_scopes_format(&s, b, sizeof b), strlen("cache.read tool.call"));
  assert_string_equal(b, "cache.read tool.call");
  auth_scopes all = AUTH_SCOPES_ALL;
  auth_scopes_format(&all, b, sizeof b);
  assert_string_equal(b, "*");
  auth_scopes none = AUTH_SCOPES(0);
  assert_int_equal(auth_scopes_format(&none, b, sizeof b), 0);
  assert_string_equal(b, "");
  /* cut at a name boundary, but the length needed is reported */
  char small[14];
  assert_int_equal(auth_scopes_format(&s, small, sizeof small), strlen("cache.read tool.call"));
  assert_string_equal(small, "cache.read");
}

/* ---------- the context ---------- */

static void test_ctx_is_a_plain_value(void **st) {
  (void)st;
  auth_ctx a, b;
  auth_ctx_init(&a, AUTH_KIND_JWT);
  assert_int_equal(auth_ctx_set_peer_id(&a, PEER_A), 0);
  assert_int_equal(auth_ctx_set_subject(&a, "alice"), 0);
  assert_int_equal(auth_ctx_set_issuer(&a, "https://issuer.example"), 0);
  a.scopes = AUTH_SCOPES(AUTH_TOOL_CALL);
  b = a; /* copy with = */
  memset(&a, 0xAA, sizeof a);
  assert_int_equal(b.kind, AUTH_KIND_JWT);
  assert_string_equal(b.peer_id, PEER_A);
  assert_string_equal(b.subject, "alice");
  assert_string_equal(b.issuer, "https://issuer.example");
  assert_true(holds(&b, AUTH_TOOL_CALL));
  assert_string_equal(auth_kind_name(b.kind), "jwt");
}

static void test_ctx_setters_refuse_over_the_ceiling(void **st) {
  (void)st;
  auth_ctx a;
  auth_ctx_init(&a, AUTH_KIND_PEER);
  assert_int_equal(auth_ctx_set_subject(&a, "bob"), 0);
  char big[AUTH_MAX_SUBJECT + 2];
  memset(big, 's', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(auth_ctx_set_subject(&a, big), -ENAMETOOLONG);
  assert_string_equal(a.subject, "bob"); /* unchanged */
  big[AUTH_MAX_SUBJECT] = 0;
  assert_int_equal(auth_ctx_set_subject(&a, big), 0);
  assert_int_equal(strlen(a.subject), AUTH_MAX_SUBJECT);
  char pid[AUTH_MAX_PEER_ID + 2];
  memset(pid, 'p', sizeof pid - 1);
  pid[sizeof pid - 1] = 0;
  assert_int_equal(auth_ctx_set_peer_id(&a, pid), -ENAMETOOLONG);
  char iss[AUTH_MAX_ISSUER + 2];
  memset(iss, 'i', sizeof iss - 1);
  iss[sizeof iss - 1] = 0;
  assert_int_equal(auth_ctx_set_issuer(&a, iss), -ENAMETOOLONG);
  assert_int_equal(auth_ctx_set_subject(&a, NULL), 0);
  assert_string_equal(a.subject, "");
}

static void test_ctx_zero_is_nobody(void **st) {
  (void)st;
  auth_ctx a = {0};
  assert_int_equal(a.kind, AUTH_KIND_NONE);
  assert_false(auth_ctx_is_local(&a));
  for (int i = 0; i < AUTH_SCOPE_BUILTIN_COUNT; i++) assert_false(holds(&a, 1ull << i));
  assert_true(holds(&a, 0)); /* what anyone may do */
}

static void test_ctx_local_has_everything(void **st) {
  (void)st;
  auth_ctx a;
  auth_ctx_local(&a);
  assert_true(auth_ctx_is_local(&a));
  assert_string_equal(a.peer_id, "");
  assert_string_equal(a.subject, "local");
  for (int i = 0; i < AUTH_SCOPE_BUILTIN_COUNT; i++) assert_true(holds(&a, 1ull << i));
  unsigned id;
  assert_int_equal(auth_scope_intern("declared.later", &id), 0);
  auth_scopes need = {{0}};
  auth_scopes_add(&need, id);
  assert_true(auth_allows(&a, &need));
  static const auth_ctx s = AUTH_CTX_LOCAL_INIT; /* the initialiser says the same */
  assert_int_equal(memcmp(&s, &a, sizeof a), 0);
}

static void test_ctx_expired_holds_nothing(void **st) {
  (void)st;
  auth_ctx a;
  auth_ctx_init(&a, AUTH_KIND_JWT);
  a.scopes = AUTH_SCOPES(AUTH_TOOL_CALL);
  a.expires_at = 1000; /* 1970 */
  assert_false(holds(&a, AUTH_TOOL_CALL));
  assert_true(holds(&a, 0)); /* still what anyone may do */
  assert_true(auth_ctx_expired_at(&a, 1000.0));
  assert_false(auth_ctx_expired_at(&a, 999.5));
  a.expires_at = 4102444800; /* 2100 */
  assert_true(holds(&a, AUTH_TOOL_CALL));
  a.expires_at = 0; /* never */
  assert_true(holds(&a, AUTH_TOOL_CALL));
}

/* ---------- the policy ---------- */

static void test_policy_closed_by_default(void **st) {
  (void)st;
  auth_policy *p = auth_policy_new();
  assert_non_null(p);
  auth_ctx a;
  auth_policy_peer_ctx(p, PEER_A, &a);
  assert_int_equal(a.kind, AUTH_KIND_PEER);
  assert_true(auth_scopes_empty(&a.scopes));
  assert_string_equal(a.peer_id, PEER_A);
  assert_string_equal(a.subject, "");
  /* any token is refused when none is configured */
  assert_false(auth_policy_present_token(p, "", &a));
  assert_false(auth_policy_present_token(p, "anything", &a));
  assert_true(auth_scopes_empty(&a.scopes));
  assert_false(auth_policy_has_token(p));
  /* no policy at all is closed too */
  auth_policy_peer_ctx(NULL, PEER_A, &a);
  assert_true(auth_scopes_empty(&a.scopes));
  auth_policy_free(p);
}

static void test_policy_trusted_peer_gets_its_scopes_only(void **st) {
  (void)st;
  auth_policy *p = auth_policy_new();
  auth_scopes ro = AUTH_SCOPES(AUTH_CACHE_READ);
  assert_int_equal(auth_policy_add_peer(p, PEER_A, &ro), 0);
  auth_ctx a, b;
  auth_policy_peer_ctx(p, PEER_A, &a);
  auth_policy_peer_ctx(p, PEER_B, &b);
  assert_true(holds(&a, AUTH_CACHE_READ));
  assert_false(holds(&a, AUTH_CACHE_WRITE));
  assert_false(holds(&a, AUTH_TASK_SUBMIT));
  assert_string_equal(a.subject, "trusted_peer");
  assert_true(auth_scopes_empty(&b.scopes));
  /* adding the same peer again adds scopes */
  auth_scopes w = AUTH_SCOPES(AUTH_WORKER);
  assert_int_equal(auth_policy_add_peer(p, PEER_A, &w), 0);
  assert_int_equal(auth_policy_peer_count(p), 1);
  auth_policy_peer_ctx(p, PEER_A, &a);
  assert_true(holds(&a, AUTH_CACHE_READ | AUTH_WORKER));
  auth_policy_free(p);
}

static void test_policy_trusted_peer_default_scopes(void **st) {
  (void)st;
  auth_policy *p = auth_policy_new();
  assert_int_equal(auth_policy_add_peer(p, PEER_A, NULL), 0);
  auth_ctx a;
  auth_policy_peer_ctx(p, PEER_A, &a);
  auth_scopes want = AUTH_SCOPES(AUTH_DEFAULT_MASK);
  assert_true(auth_scopes_equal(&a.scopes, &want));
  assert_false(holds(&a, AUTH_ADMIN));
  auth_policy_free(p);
}

static void test_policy_rejects_bad_peer_id(void **st) {
  (void)st;
  auth_policy *p = auth_policy_new();
  char big[AUTH_MAX_PEER_ID + 2];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(auth_policy_add_peer(p, "", NULL), -EINVAL);
  assert_int_equal(auth_policy_add_peer(p, NULL, NULL), -EINVAL);
  assert_int_equal(auth_policy_add_peer(p, "12D3/../x", NULL), -EINVAL);
  assert_int_equal(auth_policy_add_peer(p, big, NULL), -EINVAL);
  assert_int_equal(auth_policy_peer_count(p), 0);
  /* an over-long transport PeerId is treated as unknown */
  auth_ctx a;
  auth_policy_peer_ctx(p, big, &a);
  assert_string_equal(a.peer_id, "");
  auth_policy_free(p);
}

static void test_policy_token_grants_scopes_and_wrong_token_does_not(void **st) {
  (void)st;
  auth_policy *p = auth_policy_new();
  auth_scopes sc = AUTH_SCOPES(AUTH_TASK_SUBMIT | AUTH_WORKER);
  assert_int_equal(auth_policy_set_token(p, "  s3cr3t \n", &sc), 0);
  assert_true(auth_policy_has_token(p));
  auth_ctx a;
  auth_policy_peer_ctx(p, PEER_B, &a);
  assert_false(auth_policy_present_token(p, "s3cr3", &a));
  assert_false(auth_policy_present_token(p, "s3cr3t!", &a));
  assert_false(auth_policy_present_token(p, "S3CR3T", &a));
  assert_false(auth_policy_present_token(p, " s3cr3t", &a)); /* presented tokens are not trimmed */
  assert_false(auth_policy_present_token(p, NULL, &a));
  assert_true(auth_scopes_empty(&a.scopes));
  assert_int_equal(a.kind, AUTH_KIND_PEER);
  assert_true(auth_policy_present_token(p, "s3cr3t", &a));
  assert_true(auth_scopes_equal(&a.scopes, &sc));
  assert_int_equal(a.kind, AUTH_KIND_TOKEN);
  assert_string_equal(a.subject, "token");
  assert_string_equal(a.peer_id, PEER_B); /* the proven PeerId stays */
  assert_false(holds(&a, AUTH_CACHE_READ));
  /* a local caller stays local */
  auth_ctx l;
  auth_ctx_local(&l);
  assert_true(auth_policy_present_token(p, "s3cr3t", &l));
  assert_true(auth_ctx_is_local(&l));
  assert_string_equal(l.subject, "local");
  auth_policy_free(p);
}

static void test_policy_token_defaults_and_blank_means_none(void **st) {
  (void)st;
  auth_policy *p = auth_policy_new();
  assert_int_equal(auth_policy_set_token(p, "tok", NULL), 0);
  auth_ctx a;
  auth_policy_peer_ctx(p, NULL, &a);
  assert_true(auth_policy_present_token(p, "tok", &a));
  auth_scopes want = AUTH_SCOPES(AUTH_DEFAULT_MASK);
  assert_true(auth_scopes_equal(&a.scopes, &want));
  assert_int_equal(auth_policy_set_token(p, " \t\n", NULL), 0);
  assert_false(auth_policy_has_token(p));
  assert_false(auth_policy_token_ok(p, "tok"));
  assert_int_equal(auth_policy_set_token(p, NULL, NULL), 0);
  assert_false(auth_policy_has_token(p));
  auth_policy_free(p);
}

static void test_policy_overlong_token_refused(void **st) {
  (void)st;
  auth_policy *p = auth_policy_new();
  char *big = malloc(AUTH_MAX_TOKEN + 2);
  memset(big, 'x', AUTH_MAX_TOKEN + 1);
  big[AUTH_MAX_TOKEN + 1] = 0;
  assert_int_equal(auth_policy_set_token(p, big, NULL), -EINVAL);
  assert_false(auth_policy_has_token(p));
  assert_false(auth_policy_token_ok(p, big));
  big[AUTH_MAX_TOKEN] = 0; /* exactly the ceiling is a token */
  assert_int_equal(auth_policy_set_token(p, big, NULL), 0);
  assert_true(auth_policy_token_ok(p, big));
  free(big);
  auth_policy_free(p);
}

static void test_policy_anonymous_grant(void **st) {
  (void)st;
  auth_policy *p = auth_policy_new();
  auth_scopes ro = AUTH_SCOPES(AUTH_CACHE_READ);
  auth_policy_set_anonymous(p, &ro);
  auth_ctx a;
  auth_policy_peer_ctx(p, PEER_B, &a);
  assert_true(holds(&a, AUTH_CACHE_READ));
  assert_false(holds(&a, AUTH_CACHE_WRITE));
  auth_policy_peer_ctx(p, NULL, &a); /* no PeerId at all: still the grant */
  assert_true(holds(&a, AUTH_CACHE_READ));
  auth_policy_set_anonymous(p, NULL);
  auth_policy_peer_ctx(p, PEER_B, &a);
  assert_true(auth_scopes_empty(&a.scopes));
  auth_policy_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scope_builtin_names_have_fixed_ids),
      cmocka_unit_test(test_scope_intern_gives_stable_new_ids),
      cmocka_unit_test(test_scope_intern_refuses_bad_names),
      cmocka_unit_test(test_scopes_cover_every_word),
      cmocka_unit_test(test_scopes_parse_known_names_and_legacy_spellings),
      cmocka_unit_test(test_scopes_granted_drops_unknown_names_without_interning),
      cmocka_unit_test(test_scopes_format_lists_names),
      cmocka_unit_test(test_ctx_is_a_plain_value),
      cmocka_unit_test(test_ctx_setters_refuse_over_the_ceiling),
      cmocka_unit_test(test_ctx_zero_is_nobody),
      cmocka_unit_test(test_ctx_local_has_everything),
      cmocka_unit_test(test_ctx_expired_holds_nothing),
      cmocka_unit_test(test_policy_closed_by_default),
      cmocka_unit_test(test_policy_trusted_peer_gets_its_scopes_only),
      cmocka_unit_test(test_policy_trusted_peer_default_scopes),
      cmocka_unit_test(test_policy_rejects_bad_peer_id),
      cmocka_unit_test(test_policy_token_grants_scopes_and_wrong_token_does_not),
      cmocka_unit_test(test_policy_token_defaults_and_blank_means_none),
      cmocka_unit_test(test_policy_overlong_token_refused),
      cmocka_unit_test(test_policy_anonymous_grant),
      cmocka_unit_test(test_audit_counts_each_refusal_by_transport_and_reason),
      cmocka_unit_test(test_scope_table_has_a_ceiling), /* last: fills the table */
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
