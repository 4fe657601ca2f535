/* op.c — TaskQueue op names, aliases, scopes (see op.h; p2p_tasks_spec.md §3.1). */
#include "taskq/op.h"

#include <ctype.h>
#include <string.h>

static const struct {
  const char *name;
  taskq_op op;
} op_names[] = {
    {"submit", TASKQ_OP_SUBMIT},
    {"claim", TASKQ_OP_CLAIM},
    {"claim_next", TASKQ_OP_CLAIM},
    {"claim_many", TASKQ_OP_CLAIM_MANY},
    {"claim_batch", TASKQ_OP_CLAIM_MANY},
    {"complete", TASKQ_OP_COMPLETE},
    {"task.complete", TASKQ_OP_COMPLETE},
    {"complete_task", TASKQ_OP_COMPLETE},
    {"fail", TASKQ_OP_FAIL},
    {"task.fail", TASKQ_OP_FAIL},
    {"fail_task", TASKQ_OP_FAIL},
    {"release", TASKQ_OP_RELEASE},
    {"task.release", TASKQ_OP_RELEASE},
    {"release_task", TASKQ_OP_RELEASE},
    {"task.heartbeat", TASKQ_OP_TASK_HEARTBEAT},
    {"task_heartbeat", TASKQ_OP_TASK_HEARTBEAT},
    {"lease.renew", TASKQ_OP_TASK_HEARTBEAT},
    {"peer.heartbeat", TASKQ_OP_PEER_HEARTBEAT},
    {"heartbeat", TASKQ_OP_PEER_HEARTBEAT},
    {"peer", TASKQ_OP_PEER_HEARTBEAT},
    {"list", TASKQ_OP_LIST},
    {"tasks.list", TASKQ_OP_LIST},
    {"queue.list", TASKQ_OP_LIST},
    {"cancel", TASKQ_OP_CANCEL},
    {"task.cancel", TASKQ_OP_CANCEL},
    {"status", TASKQ_OP_STATUS},
    {"capabilities", TASKQ_OP_STATUS},
    {"describe", TASKQ_OP_STATUS},
    {"tool", TASKQ_OP_TOOL},
    {"call_tool", TASKQ_OP_TOOL},
    {"tool.call", TASKQ_OP_TOOL},
    {"cache.get", TASKQ_OP_CACHE_GET},
    {"cache_get", TASKQ_OP_CACHE_GET},
    {"cache", TASKQ_OP_CACHE_GET},
    {"cache.has", TASKQ_OP_CACHE_HAS},
    {"cache_has", TASKQ_OP_CACHE_HAS},
    {"cache.set", TASKQ_OP_CACHE_SET},
    {"cache_set", TASKQ_OP_CACHE_SET},
    {"cache.delete", TASKQ_OP_CACHE_DELETE},
    {"cache_del", TASKQ_OP_CACHE_DELETE},
    {"cache_delete", TASKQ_OP_CACHE_DELETE},
    {"get", TASKQ_OP_GET},
    {"wait", TASKQ_OP_WAIT},
};

static const char *const op_canon[TASKQ_OP__COUNT] = {
    [TASKQ_OP_UNKNOWN] = "unknown",           [TASKQ_OP_SUBMIT] = "submit",
    [TASKQ_OP_CLAIM] = "claim",               [TASKQ_OP_CLAIM_MANY] = "claim_many",
    [TASKQ_OP_COMPLETE] = "complete",         [TASKQ_OP_FAIL] = "fail",
    [TASKQ_OP_RELEASE] = "release",           [TASKQ_OP_TASK_HEARTBEAT] = "task.heartbeat",
    [TASKQ_OP_PEER_HEARTBEAT] = "peer.heartbeat", [TASKQ_OP_LIST] = "list",
    [TASKQ_OP_CANCEL] = "cancel",             [TASKQ_OP_STATUS] = "status",
    [TASKQ_OP_TOOL] = "call_tool",            [TASKQ_OP_CACHE_GET] = "cache.get",
    [TASKQ_OP_CACHE_HAS] = "cache.has",       [TASKQ_OP_CACHE_SET] = "cache.set",
    [TASKQ_OP_CACHE_DELETE] = "cache.delete", [TASKQ_OP_GET] = "get",
    [TASKQ_OP_WAIT] = "wait",
};

taskq_op taskq_op_parse(const char *op) {
  if (!op) return TASKQ_OP_UNKNOWN;
  size_t n = strlen(op);
  while (n && isspace((unsigned char)op[0])) op++, n--;
  while (n && isspace((unsigned char)op[n - 1])) n--;
  char w[32];
  if (n == 0 || n >= sizeof w) return TASKQ_OP_UNKNOWN;
  for (size_t i = 0; i < n; i++) w[i] = (char)tolower((unsigned char)op[i]);
  w[n] = 0;
  for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
    if (strcmp(w, op_names[i].name) == 0) return op_names[i].op;
  return TASKQ_OP_UNKNOWN;
}

const char *taskq_op_name(taskq_op op) { return op < TASKQ_OP__COUNT ? op_canon[op] : "unknown"; }

auth_scopes taskq_op_scopes(taskq_op op) {
  switch (op) {
  case TASKQ_OP_STATUS:
  case TASKQ_OP_UNKNOWN: return AUTH_SCOPES(0);
  case TASKQ_OP_SUBMIT:
  case TASKQ_OP_GET:
  case TASKQ_OP_WAIT:
  case TASKQ_OP_LIST:
  case TASKQ_OP_CANCEL: return AUTH_SCOPES(AUTH_TASK_SUBMIT);
  case TASKQ_OP_CLAIM:
  case TASKQ_OP_CLAIM_MANY:
  case TASKQ_OP_COMPLETE:
  case TASKQ_OP_FAIL:
  case TASKQ_OP_RELEASE:
  case TASKQ_OP_TASK_HEARTBEAT:
  case TASKQ_OP_PEER_HEARTBEAT: return AUTH_SCOPES(AUTH_WORKER);
  case TASKQ_OP_TOOL: return AUTH_SCOPES(AUTH_TOOL_CALL);
  case TASKQ_OP_CACHE_GET:
  case TASKQ_OP_CACHE_HAS: return AUTH_SCOPES(AUTH_CACHE_READ);
  case TASKQ_OP_CACHE_SET:
  case TASKQ_OP_CACHE_DELETE: return AUTH_SCOPES(AUTH_CACHE_WRITE);
  default: return AUTH_SCOPES(AUTH_ADMIN);
  }
}

bool taskq_op_idempotent(taskq_op op) {
  switch (op) {
  case TASKQ_OP_STATUS:
  case TASKQ_OP_GET:
  case TASKQ_OP_WAIT:
  case TASKQ_OP_LIST:
  case TASKQ_OP_CACHE_GET:
  case TASKQ_OP_CACHE_HAS:
  case TASKQ_OP_CACHE_SET:    /* same key, same value */
  case TASKQ_OP_CACHE_DELETE:
  case TASKQ_OP_CANCEL:       /* cancelling twice is harmless */
  case TASKQ_OP_TASK_HEARTBEAT:
  case TASKQ_OP_PEER_HEARTBEAT: return true;
  default: return false;      /* submit (without idempotency key), claim, complete, tool calls */
  }
}
