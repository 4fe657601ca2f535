/* tasks.c — task views to the JSON shapes of 2025-11-25 tasks.mdx and SEP-2663 (see tasks.h). */
#include "mcp/tasks.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mcp/session.h"

static const char *const k_status[] = {"working", "input_required", "completed", "failed", "cancelled"};
static const char *const k_support[] = {"forbidden", "optional", "required"};

const char *mcp_task_status_name(mcp_task_status st) {
  return (unsigned)st < sizeof k_status / sizeof k_status[0] ? k_status[st] : "failed";
}

const char *mcp_task_support_name(mcp_task_support s) {
  return (unsigned)s < sizeof k_support / sizeof k_support[0] ? k_support[s] : "forbidden";
}

mcp_task_support mcp_tasks_tool_support(const mcp_tasks_backend *b, const mcp_tool *tool) {
  if (!b || !tool) return MCP_TASK_SUPPORT_FORBIDDEN;
  if (b->support) return b->support(b->impl, tool);
  /* Tasks run on workers, which run tools as a remote caller: only remote tools can run there. */
  return (mcp_tool_def_of(tool)->flags & MCP_TOOL_REMOTE) ? MCP_TASK_SUPPORT_OPTIONAL : MCP_TASK_SUPPORT_FORBIDDEN;
}

bool mcp_tasks_owner_key(const mcp_auth *auth, char *buf, size_t cap) {
  int n;
  const char *peer = auth ? auth->peer_id : "", *sub = auth ? auth->subject : "", *iss = auth ? auth->issuer : "";
  /* A JWT subject is unique within its issuer only: the issuer is part of the key then. */
  char subj[AUTH_MAX_ISSUER + AUTH_MAX_SUBJECT + 16];
  if (iss[0]) snprintf(subj, sizeof subj, "iss:%s/sub:%s", iss, sub);
  else snprintf(subj, sizeof subj, "sub:%s", sub);
  if (auth && peer[0] && sub[0]) n = snprintf(buf, cap, "peer:%s/%s", peer, subj);
  else if (auth && peer[0]) n = snprintf(buf, cap, "peer:%s", peer);
  else if (auth && auth_ctx_is_local(auth)) n = snprintf(buf, cap, "local");
  else if (auth && sub[0]) n = snprintf(buf, cap, "%s", subj);
  else n = snprintf(buf, cap, "anonymous");
  return n >= 0 && (size_t)n < cap;
}

void mcp_tasks_iso8601(double unix_s, char buf[32]) {
  if (!(unix_s >= 0) || unix_s > 253402300799.0) unix_s = 0; /* NaN, negative, past year 9999 */
  long long total_ms = llround(unix_s * 1000.0); /* nearest: 0.123 s must not print as .122 */
  time_t secs = (time_t)(total_ms / 1000);
  int ms = (int)(total_ms % 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char tmp[96]; /* roomy: the compiler cannot see that every field is in range */
  snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  size_t n = strnlen(tmp, 31);
  memcpy(buf, tmp, n);
  buf[n] = 0;
}

static void common_fields(json_t *o, const mcp_task_view *v, mcp_task_status st) {
  char c[32], u[32];
  mcp_tasks_iso8601(v->created_at, c);
  mcp_tasks_iso8601(v->updated_at, u);
  json_object_set_new(o, "taskId", json_string(v->task_id));
  json_object_set_new(o, "status", json_string(mcp_task_status_name(st)));
  if (v->status_message) json_object_set_new(o, "statusMessage", json_string(v->status_message));
  json_object_set_new(o, "createdAt", json_string(c));
  json_object_set_new(o, "lastUpdatedAt", json_string(u));
}

json_t *mcp_tasks_legacy_json(const mcp_task_view *v) {
  json_t *o = json_object();
  if (!o) return NULL;
  common_fields(o, v, v->status);
  json_object_set_new(o, "ttl", v->ttl_ms < 0 ? json_null() : json_integer(v->ttl_ms));
  if (v->poll_interval_ms) json_object_set_new(o, "pollInterval", json_integer(v->poll_interval_ms));
  return o;
}

mcp_task_status mcp_tasks_modern_status(const mcp_task_view *v) {
  if (v->status == MCP_TASK_FAILED && v->result && !v->error) return MCP_TASK_COMPLETED;
  return v->status;
}

json_t *mcp_tasks_modern_json(const mcp_task_view *v, bool with_outcome) {
  json_t *o = json_object();
  if (!o) return NULL;
  mcp_task_status st = mcp_tasks_modern_status(v);
  common_fields(o, v, st);
  /* integer seconds, rounded up so the task is never announced as living shorter than it does */
  json_object_set_new(o, "ttlSeconds", v->ttl_ms < 0 ? json_null() : json_integer((v->ttl_ms + 999) / 1000));
  if (v->poll_interval_ms) json_object_set_new(o, "pollIntervalMilliseconds", json_integer(v->poll_interval_ms));
  if (with_outcome) {
    if (st == MCP_TASK_COMPLETED && v->result) json_object_set(o, "result", v->result);
    else if (st == MCP_TASK_FAILED)
      json_object_set_new(o, "error", v->error ? json_incref(v->error)
                                               : json_pack("{s:i, s:s}", "code", MCP_RPC_INTERNAL_ERROR, "message",
                                                           v->status_message ? v->status_message : "task failed"));
  }
  return o;
}
