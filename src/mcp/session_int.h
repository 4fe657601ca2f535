/* session_int.h — internals shared by the session core's two files (not a public header):
 * session.c (JSON-RPC, eras, lifecycle, tools/call, MCP Tasks, client input rounds, routing)
 * and session_catalog.c (prompts, resources, completion, resource subscriptions).
 * Everything here runs on the loop thread. */
#ifndef PEERMCP_MCP_SESSION_INT_H
#define PEERMCP_MCP_SESSION_INT_H

#include "mcp/prompts.h"
#include "mcp/reqctx.h"
#include "mcp/reqstate.h"
#include "mcp/resources.h"
#include "mcp/session.h"
#include "util/alloc.h"
#include "util/jwrite.h"
#include "util/trace.h"

enum {
  RPC_PARSE_ERROR = MCP_RPC_PARSE_ERROR,
  RPC_INVALID_REQUEST = MCP_RPC_INVALID_REQUEST,
  RPC_METHOD_NOT_FOUND = MCP_RPC_METHOD_NOT_FOUND,
  RPC_INVALID_PARAMS = MCP_RPC_INVALID_PARAMS,
  RPC_INTERNAL_ERROR = MCP_RPC_INTERNAL_ERROR,
  MCP_RESOURCE_NOT_FOUND_LEGACY = MCP_RPC_RESOURCE_NOT_FOUND,
  MCP_UNSUPPORTED_VERSION = MCP_RPC_UNSUPPORTED_VERSION,
  MCP_MISSING_CLIENT_CAPABILITY = MCP_RPC_MISSING_CLIENT_CAPABILITY,
  MCP_HEADER_MISMATCH = MCP_RPC_HEADER_MISMATCH,
};

/* What a request in flight is waiting for. */
enum {
  RK_CALL = 0,
  RK_TASK_CREATE,
  RK_TASK_GET,
  RK_TASK_RESULT,
  RK_TASK_LIST,
  RK_TASK_CANCEL,
  RK_PROMPT,   /* prompts/get on the worker pool, or waiting for client input */
  RK_RESOURCE, /* resources/read, likewise */
  RK_COMPLETE, /* completion/complete of a blocking prompt or template */
};

#define MCP_SESSION_MAX_SUBSCRIPTIONS 64        /* subscriptions/listen streams per session */
#define MCP_SESSION_MAX_TASK_WATCHES 4          /* tasks watched for notifications/tasks/status */
#define MCP_SESSION_MAX_RESOURCE_SUBS 256       /* URIs per session (resources/subscribe + listen) */
#define MCP_SESSION_MAX_PENDING_QUESTIONS 64    /* server-to-client requests awaiting an answer */

struct sess_job;

/* Kept small (a glibc fastbin chunk, <= 120 bytes): one is allocated per tools/call. */
typedef struct sess_req {
  struct sess_req *next, *prev;
  struct mcp_session *s;
  json_t *id;
  mcp_call *call;
  mcp_tasks_op *top;    /* a task operation in flight (RK_TASK_*) */
  /* Handler-backed requests (tools/call, prompts/get, resources/read, completion/complete). */
  mcp_reqctx *ctx;      /* this round's context (a reference), or NULL */
  json_t *params;       /* the request's params for later rounds (tool, arguments, uri); tools/call
                           builds it only when the tool asked the client something, so a plain
                           call keeps none of its request alive */
  json_t *progress_token; /* tools/call: the request's token (kept for later rounds) */
  json_t *answers;      /* answers gathered so far, or NULL */
  const void *def;      /* prompt or resource definition */
  struct sess_job *job; /* a handler running on the worker pool */
  uint32_t timeout_ms;
  int8_t kind;
  int8_t log_min; /* rank in k_log_levels; -1 = send no log notifications */
  bool cancelled;
  bool modern;
  uint8_t rounds;  /* rounds of client questions so far */
  uint8_t waiting; /* legacy: server-to-client requests not answered yet */
  uint8_t m_method; /* metrics: the method's label index */
  int64_t m_start_us; /* metrics: when the request arrived */
  int64_t m_end_us;   /* metrics: when its call completed (0: not known, read the clock) */
  trace_ctx trace;    /* the request's trace: its calls (every round) run in it */
} sess_req;

/* What a handler-backed request is about, read from its params. */
const char *sess_req_name(const sess_req *r); /* tool or prompt name, resource or template uri */
json_t *sess_req_args(const sess_req *r);     /* tool or prompt arguments, completion context */

typedef struct sess_sub {
  struct sess_sub *next;
  json_t *id;   /* the subscriptions/listen request id = the subscription id */
  json_t *uris; /* the resourceSubscriptions agreed to (array of strings), or NULL */
} sess_sub;

/* A server-to-client request (legacy era) waiting for the client's answer. */
typedef struct sess_out {
  struct sess_out *next;
  json_int_t id;
  sess_req *r;
  char key[MCP_REQCTX_MAX_KEY + 1];
  char method[32];
} sess_out;

/* A task this session created, watched until terminal to send notifications/tasks/status
 * (optional in both eras; best effort: at most MCP_SESSION_MAX_TASK_WATCHES at once). */
typedef struct sess_watch {
  struct sess_watch *next;
  struct mcp_session *s;
  mcp_tasks_op *op;
  bool modern;
} sess_watch;

/* Invariants (checked in debug builds): inflight is the length of the reqs list, nsubs the
 * length of subs and at most MCP_SESSION_MAX_SUBSCRIPTIONS, nwatches the length of watches and
 * at most MCP_SESSION_MAX_TASK_WATCHES; cur is set only while the method hook runs; the
 * transport's send callback neither frees the session nor sends through it (in_send). */
struct mcp_session {
  mcp_session_opts o;
  bool in_send; /* inside o.send / o.write / o.route */
  jwrite out;   /* each outgoing message is written here, then handed over (reused) */
  jwrite tmp;   /* a tool result's JSON text, for the text block of a CallToolResult */
  sess_sub *subs;
  size_t nsubs;
  char *legacy_version;
  json_t *client_caps; /* legacy: initialize params.capabilities */
  bool initialized;
  int log_min; /* legacy: from logging/setLevel; default info */
  sess_req *reqs;
  size_t inflight;
  sess_watch *watches;
  size_t nwatches;
  sess_out *outs; /* server-to-client requests in flight */
  size_t nouts;
  json_int_t out_seq;
  char **rsubs; /* legacy resources/subscribe URIs */
  size_t nrsubs;
  size_t nlisten_uris; /* URIs held by listen streams */
  unsigned res_listener;
  void (*idle_cb)(void *ud);
  void *idle_ud;
  bool ended; /* init_required refused a request: input is ignored */
  bool ready; /* initialized, or a modern request was served */
  struct req_ctx *cur; /* the request a method hook is handling (mcp_session_start_call) */
  /* Observability: the message being handled (its trace scope is current meanwhile) and, until
   * answered or taken over by a request in flight, its metrics (method label, arrival, id). */
  int m_transport;      /* label index of o.transport, -1 = not counted */
  trace_scope m_scope;
  bool m_open;
  const json_t *m_id;
  unsigned m_method;
  int64_t m_start_us;
};

/* Per-request context. */
typedef struct req_ctx {
  json_t *id;     /* NULL for notifications */
  json_t *params; /* object or NULL */
  json_t *meta;   /* params._meta object or NULL */
  bool modern;
  int log_min;
  /* A tools/call read from its text (session.c, feed_envelope) whose params held nothing but
   * name, arguments and _meta: params is NULL (no tree of it was built; every other member
   * reads as absent, as it is) and these are its name and arguments (NULL: absent or null). */
  bool call_fast;
  const char *call_tool;
  json_t *call_args;
} req_ctx;

/* ---- output (session.c) ---- */
void sess_emit(mcp_session *s, mcp_out_kind kind, const json_t *request_id, int error_code, bool modern, json_t *msg);
void sess_notify(mcp_session *s, const json_t *rid, bool modern, json_t *msg);
/* The same for a notification built under watch w: sent only if nothing in it is missing (a
 * notification is optional: dropped rather than sent partial). */
void sess_notify_whole(mcp_session *s, alloc_watch w, const json_t *rid, bool modern, json_t *msg);
/* Answers with `result` (stolen) if it was built whole — no jansson allocation failed since the
 * current unit of work began (a message, a completion: each starts an alloc_watch) — else
 * -32603. */
void sess_reply_whole(mcp_session *s, json_t *id, bool modern, json_t *result);
void sess_error_era(mcp_session *s, json_t *id, bool modern, int code, const char *message, json_t *data);
void sess_result_era(mcp_session *s, json_t *id, bool modern, json_t *result);
json_t *sess_server_info(const mcp_session *s);
json_t *sess_modern_result(const mcp_session *s, json_t *result, bool cacheable);
void sess_reply(mcp_session *s, const req_ctx *rc, json_t *result, bool cacheable);
void sess_reply_err(mcp_session *s, const req_ctx *rc, int code, const char *message, json_t *data);

/* ---- requests in flight (session.c) ---- */
sess_req *sess_req_begin(mcp_session *s, req_ctx *rc, int kind);
void sess_req_unlink(mcp_session *s, sess_req *r);
void sess_req_free(sess_req *r);
/* Unlinks and frees r, then runs the idle callback when nothing is left (which may free s:
 * call it last). */
void sess_req_done(mcp_session *s, sess_req *r);
sess_req *sess_find_req(mcp_session *s, const json_t *id);
sess_sub *sess_find_sub(mcp_session *s, const json_t *id, sess_sub ***link);
void sess_sub_free(mcp_session *s, sess_sub *u);
/* The rc of a request in flight (for replies). */
req_ctx sess_rc_of(const sess_req *r);

/* ---- client input rounds (session.c) ---- */
/* A new request's answers: 2026-07-28 requestState (checked against its binding) and
 * inputResponses; legacy: none. Returns false after answering an error. */
bool sess_input_begin(mcp_session *s, req_ctx *rc, sess_req *r);
/* After a handler ran: when it asked the client something, takes the request over (an
 * InputRequiredResult, or server-to-client requests) and returns true; when it failed for a
 * capability the client lacks (failed = it produced no result), answers that and returns true. */
bool sess_input_after(mcp_session *s, sess_req *r, bool failed);
/* A new context for the next run of r (caps + answers). NULL on ENOMEM. */
mcp_reqctx *sess_input_ctx(mcp_session *s, sess_req *r);

/* ---- catalog (session_catalog.c) ---- */
void sess_m_prompts_list(mcp_session *s, req_ctx *rc);
void sess_m_prompts_get(mcp_session *s, req_ctx *rc);
void sess_m_resources_list(mcp_session *s, req_ctx *rc);
void sess_m_templates_list(mcp_session *s, req_ctx *rc);
void sess_m_resources_read(mcp_session *s, req_ctx *rc);
void sess_m_complete(mcp_session *s, req_ctx *rc);
void sess_m_resources_subscribe(mcp_session *s, req_ctx *rc);
void sess_m_resources_unsubscribe(mcp_session *s, req_ctx *rc);
/* Runs the handler of a prompts/get, resources/read or completion/complete request (again). */
void sess_catalog_run(mcp_session *s, sess_req *r);
/* subscriptions/listen: agrees to the resourceSubscriptions it can serve; the acknowledged
 * filter object (new reference) — NULL after answering an error. */
json_t *sess_listen_filter(mcp_session *s, req_ctx *rc, sess_sub *u);
/* Session start / end: the resource update listener, subscriptions and jobs. */
void sess_catalog_open(mcp_session *s);
void sess_catalog_close(mcp_session *s);
/* Forgets a request's job (the session or the request goes away first). */
void sess_job_detach(sess_req *r);

#endif
