/* Tests for the pieces under the session's prompts/resources/input features: requestState
 * sealing (mcp/reqstate), the per-request context (mcp/reqctx), URI templates and subscription
 * counts (mcp/resources), the prompt table (mcp/prompts), content builders (mcp/content). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mcp/content.h"
#include "mcp/prompts.h"
#include "mcp/reqctx.h"
#include "mcp/reqstate.h"
#include "mcp/resources.h"

/* ---------- reqstate ---------- */

static void binding(const char *method, const char *name, const char *owner, const char *args, char out[65]) {
  json_t *a = args ? json_loads(args, 0, NULL) : NULL;
  assert_int_equal(mcp_reqstate_binding(method, name, owner, a, out), 0);
  json_decref(a);
}

static void test_reqstate_round_trip(void **state) {
  (void)state;
  char b[65];
  binding("tools/call", "t", "local", "{\"x\":1,\"a\":[1,2]}", b);
  assert_int_equal(strlen(b), 64);
  json_t *ans = json_loads("{\"k\":{\"action\":\"accept\",\"content\":{\"n\":\"\\u00e9\"}}}", 0, NULL);
  int err = 1;
  char *st = mcp_reqstate_seal(ans, b, 1000, &err);
  assert_non_null(st);
  assert_int_equal(err, 0);
  for (const char *p = st; *p; p++) /* base64url and one dot: safe in JSON and headers */
    assert_true((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                *p == '_' || *p == '.');
  json_t *back = NULL;
  assert_int_equal(mcp_reqstate_open(st, b, 2000, &back), 0);
  assert_true(json_equal(back, ans));
  json_decref(back);
  /* the same arguments in another key order bind the same */
  char b2[65];
  binding("tools/call", "t", "local", "{\"a\":[1,2],\"x\":1}", b2);
  assert_string_equal(b, b2);
  free(st);
  json_decref(ans);
}

static void test_reqstate_rejects_tampered_foreign_and_expired(void **state) {
  (void)state;
  char b[65], other[65];
  binding("tools/call", "t", "local", "{}", b);
  json_t *empty = json_object();
  char *st = mcp_reqstate_seal(empty, b, 0, NULL);
  assert_non_null(st);
  json_t *out = NULL;
  /* the conformance suite's tamper: a suffix */
  size_t n = strlen(st);
  char *t = malloc(n + 10);
  memcpy(t, st, n);
  memcpy(t + n, "-TAMPERED", 10);
  assert_int_equal(mcp_reqstate_open(t, b, 1, &out), -EBADMSG);
  /* a flipped payload byte */
  memcpy(t, st, n + 1);
  t[0] = t[0] == 'A' ? 'B' : 'A';
  assert_int_equal(mcp_reqstate_open(t, b, 1, &out), -EBADMSG);
  free(t);
  /* another tool, caller or arguments */
  binding("tools/call", "u", "local", "{}", other);
  assert_int_equal(mcp_reqstate_open(st, other, 1, &out), -EBADMSG);
  binding("tools/call", "t", "peer:x", "{}", other);
  assert_int_equal(mcp_reqstate_open(st, other, 1, &out), -EBADMSG);
  binding("tools/call", "t", "local", "{\"a\":1}", other);
  assert_int_equal(mcp_reqstate_open(st, other, 1, &out), -EBADMSG);
  binding("prompts/get", "t", "local", "{}", other);
  assert_int_equal(mcp_reqstate_open(st, other, 1, &out), -EBADMSG);
  /* expired */
  assert_int_equal(mcp_reqstate_open(st, b, MCP_REQSTATE_TTL_MS + 1, &out), -ETIMEDOUT);
  assert_null(out);
  /* junk */
  assert_int_equal(mcp_reqstate_open("", b, 1, &out), -EBADMSG);
  assert_int_equal(mcp_reqstate_open("abc", b, 1, &out), -EBADMSG);
  assert_int_equal(mcp_reqstate_open("!!!.???", b, 1, &out), -EBADMSG);
  free(st);
  json_decref(empty);
}

static void test_reqstate_size_is_bounded(void **state) {
  (void)state;
  char b[65];
  binding("tools/call", "t", NULL, NULL, b);
  char *big = malloc(MCP_REQSTATE_MAX_BYTES + 2);
  memset(big, 'a', MCP_REQSTATE_MAX_BYTES + 1);
  big[MCP_REQSTATE_MAX_BYTES + 1] = 0;
  json_t *out = NULL;
  assert_int_equal(mcp_reqstate_open(big, b, 1, &out), -E2BIG);
  /* answers too large to seal */
  big[MCP_REQSTATE_MAX_BYTES] = 0;
  json_t *ans = json_pack("{s:{s:s}}", "k", "v", big);
  int err = 0;
  assert_null(mcp_reqstate_seal(ans, b, 1, &err));
  assert_int_equal(err, -E2BIG);
  json_decref(ans);
  free(big);
}

/* ---------- reqctx ---------- */

static void test_reqctx_ask_answers_and_capabilities(void **state) {
  (void)state;
  json_t *caps = json_loads("{\"sampling\":{},\"elicitation\":{}}", 0, NULL);
  json_t *answers = json_loads("{\"name\":{\"action\":\"accept\",\"content\":{\"n\":\"a\"}},\"extra\":{}}", 0, NULL);
  mcp_reqctx *c = mcp_reqctx_new(caps, answers);
  assert_true(mcp_reqctx_client_supports(c, "sampling"));
  assert_true(mcp_reqctx_client_supports(c, "elicitation"));
  assert_true(mcp_reqctx_client_supports(c, "elicitation.form")); /* {} means form mode */
  assert_false(mcp_reqctx_client_supports(c, "elicitation.url"));
  assert_false(mcp_reqctx_client_supports(c, "roots"));
  json_t *a = NULL;
  assert_int_equal(mcp_reqctx_ask(c, "name", "elicitation/create", json_pack("{s:s}", "message", "who?"), &a), 0);
  assert_string_equal(json_string_value(json_object_get(a, "action")), "accept");
  /* a new question: recorded */
  assert_int_equal(mcp_reqctx_ask(c, "q2", "sampling/createMessage", json_pack("{s:i}", "maxTokens", 5), &a), -EAGAIN);
  assert_null(a);
  /* the same key twice in a round, a bad key, an unknown method */
  assert_int_equal(mcp_reqctx_ask(c, "q2", "sampling/createMessage", NULL, &a), -EINVAL);
  assert_int_equal(mcp_reqctx_ask(c, "bad key", "roots/list", NULL, &a), -EINVAL);
  assert_int_equal(mcp_reqctx_ask(c, "k3", "tools/call", NULL, &a), -EINVAL);
  /* roots were not declared */
  assert_int_equal(mcp_reqctx_ask(c, "r", "roots/list", NULL, &a), -ENOTSUP);
  /* url-mode elicitation needs elicitation.url */
  assert_int_equal(mcp_reqctx_ask(c, "u", "elicitation/create", json_pack("{s:s}", "mode", "url"), &a), -ENOTSUP);
  json_t *miss = mcp_reqctx_missing(c);
  assert_non_null(json_object_get(miss, "roots"));
  assert_non_null(json_object_get(json_object_get(miss, "elicitation"), "url"));
  json_t *q = mcp_reqctx_questions(c);
  assert_int_equal(json_object_size(q), 1);
  assert_string_equal(json_string_value(json_object_get(json_object_get(q, "q2"), "method")), "sampling/createMessage");
  /* only the answers it read are kept for the next round: "extra" is ignored */
  json_t *used = mcp_reqctx_answers_used(c);
  assert_int_equal(json_object_size(used), 1);
  assert_non_null(json_object_get(used, "name"));
  mcp_reqctx_add_content(c, mcp_content_text("hi"));
  assert_int_equal(json_array_size(mcp_reqctx_content(c)), 1);
  mcp_reqctx_unref(c);
  json_decref(caps);
  json_decref(answers);
}

static void test_reqctx_null_and_limits(void **state) {
  (void)state;
  json_t *a = NULL;
  assert_int_equal(mcp_reqctx_ask(NULL, "k", "roots/list", NULL, &a), -ENOTSUP);
  assert_false(mcp_reqctx_client_supports(NULL, "sampling"));
  mcp_reqctx_add_content(NULL, mcp_content_text("dropped"));
  json_t *caps = json_loads("{\"roots\":{}}", 0, NULL);
  mcp_reqctx *c = mcp_reqctx_new(caps, NULL);
  char key[16];
  for (int i = 0; i < MCP_REQCTX_MAX_QUESTIONS; i++) {
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(mcp_reqctx_ask(c, key, "roots/list", NULL, &a), -EAGAIN);
  }
  assert_int_equal(mcp_reqctx_ask(c, "one-more", "roots/list", NULL, &a), -E2BIG);
  assert_null(mcp_reqctx_answers_used(c));
  mcp_reqctx_unref(c);
  json_decref(caps);
}

/* ---------- URI templates and the resource table ---------- */

static void test_uri_template_matching(void **state) {
  (void)state;
  mcp_uri_vars v = {0};
  assert_true(mcp_uri_template_match("test://template/{id}/data", "test://template/123/data", &v));
  assert_string_equal(mcp_uri_var(&v, "id"), "123");
  mcp_uri_vars_clear(&v);
  assert_false(mcp_uri_template_match("test://template/{id}/data", "test://template/1/2/data", &v));
  assert_false(mcp_uri_template_match("test://template/{id}/data", "test://template//data", &v));
  assert_false(mcp_uri_template_match("test://template/{id}/data", "test://template/123/datum", &v));
  assert_true(mcp_uri_template_match("peermcp://task/{task_id}", "peermcp://task/ab%20c", &v));
  assert_string_equal(mcp_uri_var(&v, "task_id"), "ab c");
  mcp_uri_vars_clear(&v);
  assert_false(mcp_uri_template_match("peermcp://task/{task_id}", "peermcp://task/a%2", &v)); /* bad escape */
  assert_false(mcp_uri_template_match("peermcp://task/{task_id}", "peermcp://task/a%00b", &v)); /* NUL */
  assert_false(mcp_uri_template_match("peermcp://task/{task_id}", "peermcp://task/a?x", &v));
  assert_true(mcp_uri_template_match("file:///{+path}", "file:///etc/hosts", &v));
  assert_string_equal(mcp_uri_var(&v, "path"), "etc/hosts");
  mcp_uri_vars_clear(&v);
  assert_true(mcp_uri_template_match("x://{a}-{b}", "x://1-2", &v));
  assert_string_equal(mcp_uri_var(&v, "a"), "1");
  assert_string_equal(mcp_uri_var(&v, "b"), "2");
  assert_null(mcp_uri_var(&v, "c"));
  mcp_uri_vars_clear(&v);
}

static int read_ok(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  *contents = json_pack("[o]", mcp_resource_text(uri, "text/plain", "x"));
  return 0;
}

static int g_watch_on, g_watch_off;
static void watch(void *ud, const char *uri, bool on, mcp_dispatcher *env) {
  if (on) g_watch_on++;
  else g_watch_off++;
}

static int g_updates;
static void updated(void *ud, const char *uri) { g_updates++; }

static void test_resources_table_and_subscription_counts(void **state) {
  (void)state;
  static const mcp_resource_def fixed = {.uri = "test://a", .name = "a", .read = read_ok, .watch = watch,
                                         .flags = MCP_RESOURCE_SUBSCRIBE};
  static const mcp_resource_def fixed2 = {.uri = "test://0", .name = "zero", .read = read_ok};
  static const mcp_resource_def tmpl = {.uri_template = "test://t/{id}", .name = "t", .read = read_ok};
  static const mcp_resource_def bad1 = {.uri = "test://b", .uri_template = "test://b/{x}", .name = "b", .read = read_ok};
  static const mcp_resource_def bad2 = {.uri_template = "test://b/{x}{y}", .name = "b", .read = read_ok};
  static const mcp_resource_def bad3 = {.uri_template = "test://b/{x", .name = "b", .read = read_ok};
  static const mcp_resource_def bad4 = {.uri = "test://b", .name = "b"};
  mcp_resources *r = mcp_resources_new();
  assert_int_equal(mcp_resources_add(r, &fixed), 0);
  assert_int_equal(mcp_resources_add(r, &fixed2), 0);
  assert_int_equal(mcp_resources_add(r, &tmpl), 0);
  assert_int_equal(mcp_resources_add(r, &fixed), -EEXIST);
  assert_int_equal(mcp_resources_add(r, &bad1), -EINVAL);
  assert_int_equal(mcp_resources_add(r, &bad2), -EINVAL);
  assert_int_equal(mcp_resources_add(r, &bad3), -EINVAL);
  assert_int_equal(mcp_resources_add(r, &bad4), -EINVAL);
  assert_int_equal(mcp_resources_count(r), 2);
  assert_string_equal(mcp_resources_at(r, 0)->uri, "test://0"); /* listing order: by uri */
  mcp_uri_vars v = {0};
  assert_ptr_equal(mcp_resources_match(r, "test://a", &v), &fixed);
  assert_ptr_equal(mcp_resources_match(r, "test://t/9", &v), &tmpl);
  mcp_uri_vars_clear(&v);
  assert_null(mcp_resources_match(r, "test://nope", &v));
  assert_ptr_equal(mcp_resources_find_template(r, "test://t/{id}"), &tmpl);
  json_t *j = mcp_resource_to_json(&tmpl);
  assert_string_equal(json_string_value(json_object_get(j, "uriTemplate")), "test://t/{id}");
  json_decref(j);

  g_watch_on = g_watch_off = g_updates = 0;
  unsigned h = mcp_resources_listen(r, updated, NULL);
  assert_true(h > 0);
  assert_int_equal(mcp_resources_subscribe(r, &fixed, "test://a", NULL), 0);
  assert_int_equal(mcp_resources_subscribe(r, &fixed, "test://a", NULL), 0);
  assert_int_equal(g_watch_on, 1); /* the first subscriber starts the watch */
  assert_int_equal(mcp_resources_subscribers(r, "test://a"), 2);
  mcp_resources_notify_updated(r, "test://a");
  assert_int_equal(g_updates, 1);
  mcp_resources_unsubscribe(r, "test://a");
  assert_int_equal(g_watch_off, 0);
  mcp_resources_unsubscribe(r, "test://a");
  assert_int_equal(g_watch_off, 1); /* the last one stops it */
  mcp_resources_unsubscribe(r, "test://a"); /* one too many: ignored */
  mcp_resources_unlisten(r, h);
  mcp_resources_notify_updated(r, "test://a");
  assert_int_equal(g_updates, 1);
  mcp_resources_free(r);
}

/* ---------- prompts ---------- */

static int get_ok(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  *result = json_pack("{s:[]}", "messages");
  return 0;
}

static void test_prompts_table_args_and_completion(void **state) {
  (void)state;
  static const char *const colors[] = {"red", "green", "grey", NULL};
  static const mcp_prompt_arg args[] = {{.name = "color", .required = true, .values = colors}, {.name = "note"}};
  static const mcp_prompt_def p1 = {.name = "paint", .description = "d", .args = args, .nargs = 2, .get = get_ok};
  static const mcp_prompt_def p0 = {.name = "a", .get = get_ok};
  static const mcp_prompt_def bad = {.name = "has space", .get = get_ok};
  static const mcp_prompt_def noget = {.name = "x"};
  mcp_prompts *p = mcp_prompts_new();
  assert_int_equal(mcp_prompts_add(p, &p1), 0);
  assert_int_equal(mcp_prompts_add(p, &p0), 0);
  assert_int_equal(mcp_prompts_add(p, &p1), -EEXIST);
  assert_int_equal(mcp_prompts_add(p, &bad), -EINVAL);
  assert_int_equal(mcp_prompts_add(p, &noget), -EINVAL);
  assert_string_equal(mcp_prompts_at(p, 0)->name, "a");
  assert_ptr_equal(mcp_prompts_find(p, "paint"), &p1);
  assert_null(mcp_prompts_find(p, "nope"));
  json_t *j = mcp_prompt_to_json(&p1);
  assert_int_equal(json_array_size(json_object_get(j, "arguments")), 2);
  assert_true(json_is_true(json_object_get(json_array_get(json_object_get(j, "arguments"), 0), "required")));
  json_decref(j);
  char err[100];
  json_t *a = json_loads("{\"color\":\"red\"}", 0, NULL);
  assert_int_equal(mcp_prompt_check_args(&p1, a, err, sizeof err), 0);
  json_decref(a);
  a = json_loads("{\"note\":\"x\"}", 0, NULL);
  assert_int_equal(mcp_prompt_check_args(&p1, a, err, sizeof err), -EINVAL); /* color is required */
  json_decref(a);
  a = json_loads("{\"color\":1}", 0, NULL);
  assert_int_equal(mcp_prompt_check_args(&p1, a, err, sizeof err), -EINVAL);
  json_decref(a);
  json_t *vals = NULL;
  size_t total = 0;
  assert_int_equal(mcp_prompt_complete(&p1, "color", "gr", NULL, &vals, &total), 0);
  assert_int_equal(json_array_size(vals), 2);
  assert_int_equal(total, 2);
  json_decref(vals);
  assert_int_equal(mcp_prompt_complete(&p1, "note", "", NULL, &vals, &total), 0);
  assert_int_equal(json_array_size(vals), 0);
  json_decref(vals);
  mcp_prompts_free(p);
}

static void test_content_builders(void **state) {
  (void)state;
  char *b = mcp_base64("\x89PNG", 4);
  assert_string_equal(b, "iVBORw==");
  json_t *img = mcp_content_image(b, "image/png");
  assert_string_equal(json_string_value(json_object_get(img, "type")), "image");
  json_decref(img);
  free(b);
  assert_null(mcp_content_text(NULL));
  assert_null(mcp_content_audio("AA==", NULL));
  json_t *e = mcp_content_embedded(mcp_resource_text("test://x", "text/plain", "t"));
  assert_string_equal(json_string_value(json_object_get(json_object_get(e, "resource"), "uri")), "test://x");
  json_decref(e);
  json_t *l = mcp_content_link("test://x", "x", NULL, "desc");
  assert_string_equal(json_string_value(json_object_get(l, "type")), "resource_link");
  assert_null(json_object_get(l, "mimeType"));
  json_decref(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reqstate_round_trip),
      cmocka_unit_test(test_reqstate_rejects_tampered_foreign_and_expired),
      cmocka_unit_test(test_reqstate_size_is_bounded),
      cmocka_unit_test(test_reqctx_ask_answers_and_capabilities),
      cmocka_unit_test(test_reqctx_null_and_limits),
      cmocka_unit_test(test_uri_template_matching),
      cmocka_unit_test(test_resources_table_and_subscription_counts),
      cmocka_unit_test(test_prompts_table_args_and_completion),
      cmocka_unit_test(test_content_builders),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
