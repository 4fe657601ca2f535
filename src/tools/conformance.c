/* conformance.c — the MCP conformance suite's fixture tools, prompts and resources (see
 * conformance.h). Written against the scenario descriptions of @modelcontextprotocol/conformance
 * (its server scenarios): each fixture returns what its scenario checks for, nothing cleverer. */
#include "tools/conformance.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mcp/content.h"
#include "mcp/dispatch.h"
#include "mcp/prompts.h"
#include "mcp/reqctx.h"
#include "mcp/resources.h"

/* 1x1 red PNG and 8 samples of 8 kHz 8-bit mono silence as WAV, made for these fixtures. */
static const char k_png[] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
static const char k_wav[] = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";
#define WATCHED_URI "test://watched-resource"

/* The watched resource: its version, and the hand-off of updates from tool threads to the loop
 * (a uv_async while someone subscribes). */
typedef struct fx_state {
  pthread_mutex_t mu;
  unsigned version;
  uv_async_t *async; /* set while the resource has subscribers; loop thread creates/closes it */
  mcp_resources *res;
  mcp_resource_def watched;
} fx_state;

/* ---------- helpers ---------- */

static mcp_tool_status text_result(mcp_call *call, json_t **result, const char *text) {
  (void)result;
  mcp_reqctx_add_content(mcp_call_reqctx(call), mcp_content_text(text));
  return MCP_TOOL_OK;
}

static mcp_tool_status error_result(mcp_call *call, json_t **result, const char *text) {
  mcp_reqctx_add_content(mcp_call_reqctx(call), mcp_content_text(text));
  *result = json_string(text);
  return MCP_TOOL_ERROR;
}

/* What went wrong with an ask, as a tool error (asked → the caller returns OK instead). */
static mcp_tool_status ask_failed(mcp_call *call, json_t **result, int rc, const char *what) {
  char m[200];
  snprintf(m, sizeof m, rc == -ENOTSUP ? "The client does not support %s" : "Cannot ask the client for %s", what);
  return error_result(call, result, m);
}

/* The text of a CreateMessageResult (content is one block or an array of blocks). */
static const char *sampled_text(const json_t *ans) {
  json_t *c = json_object_get(ans, "content");
  if (json_is_array(c)) c = json_array_get(c, 0);
  const char *t = json_string_value(json_object_get(c, "text"));
  return t ? t : "";
}

static json_t *sampling_params(const char *text, int max_tokens) {
  return json_pack("{s:[{s:s, s:{s:s, s:s}}], s:i}", "messages", "role", "user", "content", "type", "text", "text", text,
                   "maxTokens", max_tokens);
}

/* An elicitation form asking for one string field. */
static json_t *elicit_one(const char *message, const char *field) {
  return json_pack("{s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}", "message", message, "requestedSchema", "type", "object",
                   "properties", field, "type", "string", "required", field);
}

static const char *elicited(const json_t *ans, const char *field) {
  const char *v = json_string_value(json_object_get(json_object_get(ans, "content"), field));
  return v ? v : "";
}

static const char *str_or(const json_t *o, const char *key) {
  const char *v = json_string_value(json_object_get(o, key));
  return v ? v : "";
}
static const char *uri_or(const json_t *root) {
  const char *v = json_string_value(json_object_get(root, "uri"));
  return v ? v : "?";
}

static char *dump(const json_t *j) {
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
  return s ? s : strdup("{}");
}

/* ---------- content tools (tools.ts) ---------- */

static mcp_tool_status t_simple_text(mcp_call *call, json_t *args, json_t **result, void *ud) {
  return text_result(call, result, "This is a simple text response for testing.");
}

static mcp_tool_status t_image(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx_add_content(mcp_call_reqctx(call), mcp_content_image(k_png, "image/png"));
  return MCP_TOOL_OK;
}

static mcp_tool_status t_audio(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx_add_content(mcp_call_reqctx(call), mcp_content_audio(k_wav, "audio/wav"));
  return MCP_TOOL_OK;
}

static mcp_tool_status t_embedded(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx_add_content(mcp_call_reqctx(call),
                         mcp_content_embedded(mcp_resource_text("test://embedded-resource", "text/plain",
                                                                "This is an embedded resource content.")));
  return MCP_TOOL_OK;
}

static mcp_tool_status t_mixed(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx *ctx = mcp_call_reqctx(call);
  mcp_reqctx_add_content(ctx, mcp_content_text("Multiple content types test:"));
  mcp_reqctx_add_content(ctx, mcp_content_image(k_png, "image/png"));
  mcp_reqctx_add_content(ctx, mcp_content_embedded(mcp_resource_text("test://mixed-content-resource", "application/json",
                                                                     "{\"test\":\"data\",\"value\":123}")));
  return MCP_TOOL_OK;
}

static mcp_tool_status t_link(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx *ctx = mcp_call_reqctx(call);
  mcp_reqctx_add_content(ctx, mcp_content_text("A link to the static text resource:"));
  mcp_reqctx_add_content(ctx, mcp_content_link("test://static-text", "static-text", "text/plain",
                                               "A static text resource for testing"));
  return MCP_TOOL_OK;
}

static mcp_tool_status t_structured(mcp_call *call, json_t *args, json_t **result, void *ud) {
  /* structuredContent plus a text block with the same JSON (the dispatcher's standard shape) */
  *result = json_pack("{s:f, s:s, s:i}", "temperature", 22.5, "conditions", "sunny", "humidity", 40);
  return MCP_TOOL_OK;
}

static mcp_tool_status t_logging(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_call_log(call, "info", "Tool execution started");
  if (mcp_call_sleep(call, 50)) return error_result(call, result, "cancelled");
  mcp_call_log(call, "info", "Tool processing data");
  if (mcp_call_sleep(call, 50)) return error_result(call, result, "cancelled");
  mcp_call_log(call, "info", "Tool execution completed");
  return text_result(call, result, "Tool with logging executed successfully");
}

static mcp_tool_status t_progress(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_call_progress(call, 0, 100, "started");
  if (mcp_call_sleep(call, 50)) return error_result(call, result, "cancelled");
  mcp_call_progress(call, 50, 100, "halfway");
  if (mcp_call_sleep(call, 50)) return error_result(call, result, "cancelled");
  mcp_call_progress(call, 100, 100, "done");
  return text_result(call, result, "Tool with progress executed successfully");
}

static mcp_tool_status t_error(mcp_call *call, json_t *args, json_t **result, void *ud) {
  return error_result(call, result, "This tool intentionally returns an error for testing");
}

/* ---------- client requests, 2025-11-25 scenarios (the same handlers serve 2026-07-28) ---------- */

static mcp_tool_status t_sampling(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  const char *prompt = json_string_value(json_object_get(args, "prompt"));
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "sampling", "sampling/createMessage", sampling_params(prompt, 100), &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "sampling");
  char m[1200];
  snprintf(m, sizeof m, "LLM response: %.1000s", sampled_text(ans));
  return text_result(call, result, m);
}

static mcp_tool_status elicitation_done(mcp_call *call, json_t **result, const char *prefix, const json_t *ans) {
  char *content = dump(json_object_get(ans, "content"));
  const char *action = json_string_value(json_object_get(ans, "action"));
  char m[2000];
  snprintf(m, sizeof m, "%s: action=%s, content=%.1800s", prefix, action ? action : "?", content);
  free(content);
  return text_result(call, result, m);
}

static mcp_tool_status t_elicitation(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  json_t *params = json_pack(
      "{s:s, s:{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:[s, s]}}", "message",
      json_string_value(json_object_get(args, "message")), "requestedSchema", "type", "object", "properties", "username",
      "type", "string", "description", "User's response", "email", "type", "string", "description",
      "User's email address", "required", "username", "email");
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "elicitation", "elicitation/create", params, &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "elicitation");
  return elicitation_done(call, result, "User response", ans);
}

static const char k_defaults_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\",\"description\":\"User name\",\"default\":\"John Doe\"},"
    "\"age\":{\"type\":\"integer\",\"description\":\"User age\",\"default\":30},"
    "\"score\":{\"type\":\"number\",\"description\":\"User score\",\"default\":95.5},"
    "\"status\":{\"type\":\"string\",\"description\":\"User status\",\"enum\":[\"active\",\"inactive\",\"pending\"],"
    "\"default\":\"active\"},"
    "\"verified\":{\"type\":\"boolean\",\"description\":\"Verification status\",\"default\":true}},\"required\":[]}";

static const char k_enums_schema[] =
    "{\"type\":\"object\",\"properties\":{"
    "\"untitledSingle\":{\"type\":\"string\",\"description\":\"Pick one\",\"enum\":[\"option1\",\"option2\",\"option3\"]},"
    "\"titledSingle\":{\"type\":\"string\",\"description\":\"Pick one (titled)\",\"oneOf\":["
    "{\"const\":\"value1\",\"title\":\"First Option\"},{\"const\":\"value2\",\"title\":\"Second Option\"},"
    "{\"const\":\"value3\",\"title\":\"Third Option\"}]},"
    "\"legacyEnum\":{\"type\":\"string\",\"description\":\"Pick one (legacy titles)\",\"enum\":[\"opt1\",\"opt2\",\"opt3\"],"
    "\"enumNames\":[\"Option One\",\"Option Two\",\"Option Three\"]},"
    "\"untitledMulti\":{\"type\":\"array\",\"description\":\"Pick several\",\"minItems\":1,\"maxItems\":3,"
    "\"items\":{\"type\":\"string\",\"enum\":[\"option1\",\"option2\",\"option3\"]}},"
    "\"titledMulti\":{\"type\":\"array\",\"description\":\"Pick several (titled)\",\"minItems\":1,\"maxItems\":3,"
    "\"items\":{\"anyOf\":[{\"const\":\"value1\",\"title\":\"First Choice\"},{\"const\":\"value2\",\"title\":\"Second Choice\"},"
    "{\"const\":\"value3\",\"title\":\"Third Choice\"}]}}},\"required\":[]}";

static mcp_tool_status elicit_form(mcp_call *call, json_t **result, const char *message, const char *schema_text) {
  json_t *schema = json_loads(schema_text, 0, NULL), *ans;
  if (!schema) return error_result(call, result, "out of memory");
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "form", "elicitation/create",
                          json_pack("{s:s, s:o}", "message", message, "requestedSchema", schema), &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "elicitation");
  return elicitation_done(call, result, "Elicitation completed", ans);
}

static mcp_tool_status t_elicit_defaults(mcp_call *call, json_t *args, json_t **result, void *ud) {
  return elicit_form(call, result, "Please review and update the form fields with defaults", k_defaults_schema);
}

static mcp_tool_status t_elicit_enums(mcp_call *call, json_t *args, json_t **result, void *ud) {
  return elicit_form(call, result, "Please select options from the enum fields", k_enums_schema);
}

static mcp_tool_status roots_text(mcp_call *call, json_t **result, const char *prefix, const json_t *ans) {
  char m[2000];
  size_t at = (size_t)snprintf(m, sizeof m, "%s:", prefix);
  json_t *roots = json_object_get(ans, "roots");
  for (size_t i = 0; i < json_array_size(roots) && at < sizeof m; i++)
    at += (size_t)snprintf(m + at, sizeof m - at, " %s", uri_or(json_array_get(roots, i)));
  if (!json_array_size(roots) && at < sizeof m) snprintf(m + at, sizeof m - at, " (none)");
  return text_result(call, result, m);
}

static mcp_tool_status t_list_roots(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "roots", "roots/list", NULL, &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "roots");
  return roots_text(call, result, "Client roots", ans);
}

/* ---------- 2026-07-28 scenarios (stateless.ts, input-required-result.ts) ---------- */

/* Needs sampling: a client that did not declare it gets -32021 with requiredCapabilities. */
static mcp_tool_status t_missing_capability(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "sample", "sampling/createMessage", sampling_params("Say hello", 20), &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "sampling");
  return text_result(call, result, sampled_text(ans));
}

static mcp_tool_status t_irr_elicitation(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "user_name", "elicitation/create", elicit_one("What is your name?", "name"), &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "elicitation");
  char m[300];
  snprintf(m, sizeof m, "Hello, %.200s!", elicited(ans, "name"));
  return text_result(call, result, m);
}

static mcp_tool_status t_irr_sampling(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "capital_question", "sampling/createMessage",
                          sampling_params("What is the capital of France?", 100), &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "sampling");
  char m[1200];
  snprintf(m, sizeof m, "Sampling response: %.1000s", sampled_text(ans));
  return text_result(call, result, m);
}

static mcp_tool_status t_irr_roots(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "client_roots", "roots/list", NULL, &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "roots");
  return roots_text(call, result, "Roots received", ans);
}

static json_t *confirm_params(void) {
  return json_pack("{s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}", "message", "Please confirm", "requestedSchema", "type", "object",
                   "properties", "ok", "type", "boolean", "required", "ok");
}

/* The requestState is checked by the session (HMAC, binding, expiry) before this runs: an
 * answer here came with a state that verified, or with none. */
static mcp_tool_status t_irr_request_state(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "confirm", "elicitation/create", confirm_params(), &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "elicitation");
  return text_result(call, result, "state-ok: the request state was received and verified");
}

static mcp_tool_status t_irr_tampered(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "confirm", "elicitation/create", confirm_params(), &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "elicitation");
  return text_result(call, result, "integrity-ok: state verified");
}

static mcp_tool_status t_irr_multiple(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx *ctx = mcp_call_reqctx(call);
  json_t *name, *greeting, *roots;
  int a = mcp_reqctx_ask(ctx, "user_name", "elicitation/create", elicit_one("What is your name?", "name"), &name);
  int b = mcp_reqctx_ask(ctx, "greeting", "sampling/createMessage", sampling_params("Generate a greeting", 50), &greeting);
  int c = mcp_reqctx_ask(ctx, "client_roots", "roots/list", NULL, &roots);
  if (a == -EAGAIN || b == -EAGAIN || c == -EAGAIN) return MCP_TOOL_OK; /* all questions go in one round */
  if (a || b || c) return ask_failed(call, result, a ? a : b ? b : c, "elicitation, sampling and roots");
  char m[1500];
  snprintf(m, sizeof m, "All inputs received: name=%.200s, greeting=%.800s, roots=%zu", elicited(name, "name"),
           sampled_text(greeting), json_array_size(json_object_get(roots, "roots")));
  return text_result(call, result, m);
}

static mcp_tool_status t_irr_multi_round(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx *ctx = mcp_call_reqctx(call);
  json_t *step1, *step2;
  int rc = mcp_reqctx_ask(ctx, "step1", "elicitation/create", elicit_one("Step 1: What is your name?", "name"), &step1);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "elicitation");
  rc = mcp_reqctx_ask(ctx, "step2", "elicitation/create", elicit_one("Step 2: What is your favorite color?", "color"),
                      &step2);
  if (rc == -EAGAIN) return MCP_TOOL_OK; /* the next round's state carries step1's answer */
  if (rc != 0) return ask_failed(call, result, rc, "elicitation");
  char m[500];
  snprintf(m, sizeof m, "Multi-round complete for %.200s who likes %.200s", elicited(step1, "name"),
           elicited(step2, "color"));
  return text_result(call, result, m);
}

/* Asks only what the client declared (mrtr.mdx: never an inputRequest it cannot serve). */
static mcp_tool_status t_irr_capabilities(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_reqctx *ctx = mcp_call_reqctx(call);
  bool pending = false, any = false;
  char got[200] = "";
  json_t *ans;
  if (mcp_reqctx_client_supports(ctx, "elicitation")) {
    any = true;
    int rc = mcp_reqctx_ask(ctx, "elicit_input", "elicitation/create", elicit_one("Elicitation input", "value"), &ans);
    if (rc == -EAGAIN) pending = true;
    else if (rc == 0) strcat(got, " elicit_input");
  }
  if (mcp_reqctx_client_supports(ctx, "sampling")) {
    any = true;
    int rc = mcp_reqctx_ask(ctx, "sample_input", "sampling/createMessage", sampling_params("Sample request", 50), &ans);
    if (rc == -EAGAIN) pending = true;
    else if (rc == 0) strcat(got, " sample_input");
  }
  if (pending) return MCP_TOOL_OK;
  if (!any) return text_result(call, result, "No supported capabilities declared");
  char m[260];
  snprintf(m, sizeof m, "capabilities-ok: received%s", got);
  return text_result(call, result, m);
}

/* Its stream must carry no independent server request: 2026-07-28 asks by InputRequiredResult. */
static mcp_tool_status t_streaming_elicitation(mcp_call *call, json_t *args, json_t **result, void *ud) {
  json_t *ans;
  int rc = mcp_reqctx_ask(mcp_call_reqctx(call), "confirm", "elicitation/create", confirm_params(), &ans);
  if (rc == -EAGAIN) return MCP_TOOL_OK;
  if (rc != 0) return ask_failed(call, result, rc, "elicitation");
  return text_result(call, result, "Streaming complete");
}

/* Logs at info: 2026-07-28 sends it only when the request's _meta asked for a log level. */
static mcp_tool_status t_logging_tool(mcp_call *call, json_t *args, json_t **result, void *ud) {
  mcp_call_log(call, "info", "Diagnostic trace logging activated");
  return text_result(call, result, "Logging evaluated");
}

static mcp_tool_status t_schema_2020_12(mcp_call *call, json_t *args, json_t **result, void *ud) {
  char *a = dump(args);
  char m[1200];
  snprintf(m, sizeof m, "JSON Schema 2020-12 tool called with: %.1100s", a);
  free(a);
  return text_result(call, result, m);
}

/* ---------- the watched resource ---------- */

static void on_update_async(uv_async_t *h) {
  fx_state *st = h->data;
  mcp_resources_notify_updated(st->res, WATCHED_URI);
}

static void async_closed(uv_handle_t *h) { free(h); }

static void watched_watch(void *ud, const char *uri, bool on, mcp_dispatcher *env) {
  fx_state *st = ud;
  if (on) {
    uv_async_t *a = calloc(1, sizeof *a);
    if (!a || uv_async_init(mcp_dispatcher_loop(env), a, on_update_async) != 0) {
      free(a);
      return; /* updates are not announced; reads still work */
    }
    a->data = st;
    pthread_mutex_lock(&st->mu);
    st->async = a;
    pthread_mutex_unlock(&st->mu);
  } else {
    pthread_mutex_lock(&st->mu);
    uv_async_t *a = st->async;
    st->async = NULL;
    pthread_mutex_unlock(&st->mu);
    if (a) uv_close((uv_handle_t *)a, async_closed);
  }
}

static int watched_read(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  fx_state *st = ud;
  pthread_mutex_lock(&st->mu);
  unsigned v = st->version;
  pthread_mutex_unlock(&st->mu);
  char text[96];
  snprintf(text, sizeof text, "Watched resource content, version %u", v);
  *contents = json_pack("[o]", mcp_resource_text(WATCHED_URI, "text/plain", text));
  return *contents ? 0 : -ENOMEM;
}

/* Changes the watched resource; subscribers get notifications/resources/updated. */
static mcp_tool_status t_update_watched(mcp_call *call, json_t *args, json_t **result, void *ud) {
  fx_state *st = ud;
  pthread_mutex_lock(&st->mu);
  unsigned v = ++st->version;
  if (st->async) uv_async_send(st->async);
  pthread_mutex_unlock(&st->mu);
  *result = json_pack("{s:s, s:I}", "uri", WATCHED_URI, "version", (json_int_t)v);
  return MCP_TOOL_OK;
}

static void state_free(void *ud) {
  fx_state *st = ud;
  pthread_mutex_destroy(&st->mu);
  free(st);
}

/* ---------- resources ---------- */

static int read_static_text(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  *contents = json_pack("[o]", mcp_resource_text(uri, "text/plain", "This is the content of the static text resource."));
  return *contents ? 0 : -ENOMEM;
}

static int read_static_binary(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  *contents = json_pack("[o]", mcp_resource_blob(uri, "image/png", k_png));
  return *contents ? 0 : -ENOMEM;
}

static int read_template(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars, json_t **contents) {
  const char *id = mcp_uri_var(vars, "id");
  if (!id) return -ENOENT;
  char data[160];
  snprintf(data, sizeof data, "Data for ID: %.100s", id);
  json_t *body = json_pack("{s:s, s:b, s:s}", "id", id, "templateTest", 1, "data", data);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  *contents = text ? json_pack("[o]", mcp_resource_text(uri, "application/json", text)) : NULL;
  free(text);
  return *contents ? 0 : -ENOMEM;
}

static const char *const k_ids[] = {"123", "456", "789", NULL};

static int complete_template(void *ud, const char *var, const char *prefix, const json_t *context, json_t **values) {
  size_t total;
  *values = strcmp(var, "id") == 0 ? mcp_complete_from_list(k_ids, prefix, &total) : json_array();
  return *values ? 0 : -ENOMEM;
}

static const mcp_resource_def k_resources[] = {
    {.uri = "test://static-text", .name = "static-text", .title = "Static Text Resource",
     .description = "A static text resource for testing", .mime_type = "text/plain", .flags = MCP_RESOURCE_REMOTE,
     .read = read_static_text},
    {.uri = "test://static-binary", .name = "static-binary", .title = "Static Binary Resource",
     .description = "A static binary resource (image) for testing", .mime_type = "image/png",
     .flags = MCP_RESOURCE_REMOTE, .read = read_static_binary},
    {.uri_template = "test://template/{id}/data", .name = "template", .title = "Resource Template",
     .description = "A resource template with parameter substitution", .mime_type = "application/json",
     .flags = MCP_RESOURCE_REMOTE, .read = read_template, .complete = complete_template},
};

/* ---------- prompts (prompts.ts) ---------- */

static json_t *user_msg(json_t *content) { return json_pack("{s:s, s:o}", "role", "user", "content", content); }

static int p_simple(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  *result = json_pack("{s:[o]}", "messages", user_msg(mcp_content_text("This is a simple prompt for testing.")));
  return *result ? 0 : -ENOMEM;
}

static int p_args(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  char m[600];
  snprintf(m, sizeof m, "Prompt with arguments: arg1='%.250s', arg2='%.250s'",
           str_or(args, "arg1"), str_or(args, "arg2"));
  *result = json_pack("{s:[o]}", "messages", user_msg(mcp_content_text(m)));
  return *result ? 0 : -ENOMEM;
}

static int p_embedded(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  const char *uri = json_string_value(json_object_get(args, "resourceUri"));
  *result = json_pack(
      "{s:[o, o]}", "messages",
      user_msg(mcp_content_embedded(mcp_resource_text(uri, "text/plain", "Embedded resource content for testing."))),
      user_msg(mcp_content_text("Please process the embedded resource above.")));
  return *result ? 0 : -ENOMEM;
}

static int p_image(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  *result = json_pack("{s:[o, o]}", "messages", user_msg(mcp_content_image(k_png, "image/png")),
                      user_msg(mcp_content_text("Please analyze the image above.")));
  return *result ? 0 : -ENOMEM;
}

static int p_input_required(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result) {
  json_t *ans;
  int rc = mcp_reqctx_ask(ctx, "user_context", "elicitation/create",
                          elicit_one("What context should the prompt use?", "context"), &ans);
  if (rc != 0) return rc; /* -EAGAIN: asked; -ENOTSUP: the client lacks elicitation */
  char m[600];
  snprintf(m, sizeof m, "Prompt with context: %.500s", elicited(ans, "context"));
  *result = json_pack("{s:[o]}", "messages", user_msg(mcp_content_text(m)));
  return *result ? 0 : -ENOMEM;
}

static const char *const k_arg1_values[] = {"paris", "park", "party", "test", "testing", NULL};
static const mcp_prompt_arg k_args_args[] = {
    {.name = "arg1", .description = "First test argument", .required = true, .values = k_arg1_values},
    {.name = "arg2", .description = "Second test argument", .required = true},
};
static const mcp_prompt_arg k_embedded_args[] = {
    {.name = "resourceUri", .description = "URI of the resource to embed", .required = true},
};

static const mcp_prompt_def k_prompts[] = {
    {.name = "test_simple_prompt", .title = "Simple Test Prompt", .description = "A simple prompt without arguments",
     .flags = MCP_PROMPT_REMOTE, .get = p_simple},
    {.name = "test_prompt_with_arguments", .title = "Prompt With Arguments",
     .description = "A prompt with required arguments", .args = k_args_args, .nargs = 2, .flags = MCP_PROMPT_REMOTE,
     .get = p_args},
    {.name = "test_prompt_with_embedded_resource", .title = "Prompt With Embedded Resource",
     .description = "A prompt that includes an embedded resource", .args = k_embedded_args, .nargs = 1,
     .flags = MCP_PROMPT_REMOTE, .get = p_embedded},
    {.name = "test_prompt_with_image", .title = "Prompt With Image", .description = "A prompt that includes image content",
     .flags = MCP_PROMPT_REMOTE, .get = p_image},
    {.name = "test_input_required_result_prompt", .title = "Prompt Needing Input",
     .description = "A prompt that asks the client for context (elicitation) before it renders",
     .flags = MCP_PROMPT_REMOTE, .get = p_input_required},
};

/* ---------- tools ---------- */

#define NOARGS "{\"type\":\"object\",\"properties\":{}}"
#define CONF_TOOL(n, d, f, fl) \
  {.name = n, .category = "conformance", .description = d, .input_schema = NOARGS, .flags = MCP_TOOL_REMOTE | (fl), .fn = f}

static const char k_schema_2020_12[] =
    "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
    "\"$defs\":{\"address\":{\"$anchor\":\"addressDef\",\"type\":\"object\",\"properties\":{"
    "\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"}}}},"
    "\"properties\":{\"name\":{\"type\":\"string\"},\"address\":{\"$ref\":\"#/$defs/address\"},"
    "\"contactMethod\":{\"type\":\"string\",\"enum\":[\"phone\",\"email\"]},\"phone\":{\"type\":\"string\"},"
    "\"email\":{\"type\":\"string\"}},"
    "\"allOf\":[{\"anyOf\":[{\"required\":[\"phone\"]},{\"required\":[\"email\"]}]}],"
    "\"if\":{\"properties\":{\"contactMethod\":{\"const\":\"phone\"}},\"required\":[\"contactMethod\"]},"
    "\"then\":{\"required\":[\"phone\"]},\"else\":{\"required\":[\"email\"]},\"additionalProperties\":false}";

static const mcp_tool_def k_tools[] = {
    CONF_TOOL("test_simple_text", "Returns simple text content", t_simple_text, MCP_TOOL_INLINE),
    CONF_TOOL("test_image_content", "Returns image content (a 1x1 PNG)", t_image, MCP_TOOL_INLINE),
    CONF_TOOL("test_audio_content", "Returns audio content (a short WAV)", t_audio, MCP_TOOL_INLINE),
    CONF_TOOL("test_embedded_resource", "Returns an embedded resource", t_embedded, MCP_TOOL_INLINE),
    CONF_TOOL("test_multiple_content_types", "Returns text, image and an embedded resource", t_mixed, MCP_TOOL_INLINE),
    CONF_TOOL("test_resource_link", "Returns a link to a resource", t_link, MCP_TOOL_INLINE),
    {.name = "test_structured_output", .category = "conformance",
     .description = "Returns structured content that matches its output schema", .input_schema = NOARGS,
     .output_schema = "{\"type\":\"object\",\"properties\":{\"temperature\":{\"type\":\"number\"},"
                      "\"conditions\":{\"type\":\"string\"},\"humidity\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100}},"
                      "\"required\":[\"temperature\",\"conditions\",\"humidity\"]}",
     .flags = MCP_TOOL_REMOTE | MCP_TOOL_INLINE, .fn = t_structured},
    CONF_TOOL("test_tool_with_logging", "Sends three log messages while it runs", t_logging, 0),
    CONF_TOOL("test_tool_with_progress", "Reports progress 0, 50, 100 of 100", t_progress, 0),
    CONF_TOOL("test_error_handling", "Always returns a tool error", t_error, MCP_TOOL_INLINE),
    {.name = "test_sampling", .category = "conformance", .description = "Asks the client's LLM (sampling/createMessage)",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"prompt\":{\"type\":\"string\",\"description\":"
                     "\"The prompt to send to the LLM\"}},\"required\":[\"prompt\"]}",
     .flags = MCP_TOOL_REMOTE, .fn = t_sampling},
    {.name = "test_elicitation", .category = "conformance", .description = "Asks the user for input (elicitation/create)",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\",\"description\":"
                     "\"The message to show the user\"}},\"required\":[\"message\"]}",
     .flags = MCP_TOOL_REMOTE, .fn = t_elicitation},
    CONF_TOOL("test_elicitation_sep1034_defaults", "Elicitation with default values for every primitive type (SEP-1034)",
              t_elicit_defaults, 0),
    CONF_TOOL("test_elicitation_sep1330_enums", "Elicitation with every enum schema variant (SEP-1330)", t_elicit_enums, 0),
    CONF_TOOL("test_list_roots", "Asks the client for its roots (roots/list)", t_list_roots, 0),
    CONF_TOOL("test_missing_capability", "Needs the client's sampling capability", t_missing_capability, 0),
    CONF_TOOL("test_input_required_result_elicitation", "Asks for the user's name (multi round-trip request)",
              t_irr_elicitation, 0),
    CONF_TOOL("test_input_required_result_sampling", "Asks the client's LLM a question (multi round-trip request)",
              t_irr_sampling, 0),
    CONF_TOOL("test_input_required_result_list_roots", "Asks for the client's roots (multi round-trip request)",
              t_irr_roots, 0),
    CONF_TOOL("test_input_required_result_request_state", "Asks for a confirmation; the retry's requestState is checked",
              t_irr_request_state, 0),
    CONF_TOOL("test_input_required_result_multiple_inputs", "Asks elicitation, sampling and roots in one round",
              t_irr_multiple, 0),
    CONF_TOOL("test_input_required_result_multi_round", "Asks two questions in two rounds", t_irr_multi_round, 0),
    CONF_TOOL("test_input_required_result_tampered_state", "A tampered requestState is refused", t_irr_tampered, 0),
    CONF_TOOL("test_input_required_result_capabilities", "Asks only what the client declared", t_irr_capabilities, 0),
    CONF_TOOL("test_streaming_elicitation", "Asks for input without a server request on the stream",
              t_streaming_elicitation, 0),
    CONF_TOOL("test_logging_tool", "Logs at info (2026-07-28: only sent when the request sets a log level)",
              t_logging_tool, 0),
    /* 2026-07-28 §Custom Headers (SEP-2243): its region argument is mirrored in an
     * Mcp-Param-Region header, which the HTTP transport checks against the body */
    {.name = "test_custom_headers", .category = "conformance",
     .description = "Echoes a region argument that clients also send as the Mcp-Param-Region header",
     .input_schema = "{\"type\":\"object\",\"properties\":{\"region\":{\"type\":\"string\",\"description\":"
                     "\"The region\",\"x-mcp-header\":\"Region\"}},\"required\":[\"region\"]}",
     .flags = MCP_TOOL_REMOTE | MCP_TOOL_INLINE, .fn = t_simple_text},
    {.name = "json_schema_2020_12_tool", .category = "conformance",
     .description = "Tool with JSON Schema 2020-12 features (SEP-1613)", .input_schema = k_schema_2020_12,
     .flags = MCP_TOOL_REMOTE | MCP_TOOL_INLINE, .fn = t_schema_2020_12},
};

int tools_conformance_register(mcp_registry *reg) {
  int rc = mcp_registry_describe_category(reg, "conformance", "Fixtures of the MCP conformance suite (--conformance-fixtures)");
  for (size_t i = 0; rc == 0 && i < sizeof k_tools / sizeof k_tools[0]; i++) rc = mcp_registry_add(reg, &k_tools[i]);
  mcp_prompts *p = mcp_registry_prompts(reg);
  for (size_t i = 0; rc == 0 && i < sizeof k_prompts / sizeof k_prompts[0]; i++) rc = mcp_prompts_add(p, &k_prompts[i]);
  mcp_resources *r = mcp_registry_resources(reg);
  for (size_t i = 0; rc == 0 && i < sizeof k_resources / sizeof k_resources[0]; i++) rc = mcp_resources_add(r, &k_resources[i]);
  if (rc != 0) return rc;
  fx_state *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  pthread_mutex_init(&st->mu, NULL);
  st->res = r;
  st->watched = (mcp_resource_def){.uri = WATCHED_URI, .name = "watched-resource", .title = "Watched Resource",
                                   .description = "A resource that changes when test_update_watched_resource runs",
                                   .mime_type = "text/plain",
                                   .flags = MCP_RESOURCE_REMOTE | MCP_RESOURCE_SUBSCRIBE | MCP_RESOURCE_VOLATILE,
                                   .read = watched_read, .watch = watched_watch, .ud = st};
  mcp_tool_def upd = {.name = "test_update_watched_resource", .category = "conformance",
                      .description = "Changes test://watched-resource; its subscribers are notified",
                      .input_schema = NOARGS, .flags = MCP_TOOL_REMOTE, .fn = t_update_watched, .ud = st,
                      .ud_free = state_free};
  if ((rc = mcp_registry_add(reg, &upd)) != 0) {
    state_free(st);
    return rc;
  }
  /* the registry owns st now (ud_free), and frees the resource table after the tools */
  return mcp_resources_add(r, &st->watched);
}
