/* mcpp.c — /mcp+p2p/1.0.0 server session per stream (see mcpp.h; p2p_tasks_spec.md §2.3). */
#include "service/mcpp.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/audit.h"
#include "mcp/envelope.h"
#include "mcp/session.h"
#include "service/frame.h"
#include "util/clock.h"
#include "util/log.h"

#ifndef PEERMCP_VERSION
#define PEERMCP_VERSION "0.0.0"
#endif

/* ---- counters (process-wide) ---- */
static unsigned long st_started, st_closed, st_initialized, st_frame_errors, st_rate_limited, st_unauthorized,
    st_internal, st_over_budget, st_frame_timeouts;
#define COUNT(x) __atomic_add_fetch(&(x), 1, __ATOMIC_RELAXED)
#define READ(x) (json_int_t) __atomic_load_n(&(x), __ATOMIC_RELAXED)

json_t *svc_mcpp_stats_json(void) {
  return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "sessions_started", READ(st_started),
                   "sessions_closed", READ(st_closed), "initialized_sessions", READ(st_initialized), "frame_errors",
                   READ(st_frame_errors), "rate_limited", READ(st_rate_limited), "unauthorized",
                   READ(st_unauthorized), "internal_errors", READ(st_internal), "over_budget_replies",
                   READ(st_over_budget), "frame_timeouts", READ(st_frame_timeouts));
}

/* ---- token bucket ---- */
void svc_rate_init(svc_rate *r, double capacity, double rate_per_s) {
  r->capacity = capacity > 0 ? capacity : 1;
  r->rate = rate_per_s > 0 || rate_per_s == SVC_RATE_UNLIMITED ? rate_per_s : 0;
  r->tokens = r->capacity; /* starts full */
  r->last_us = clock_mono_us();
}

bool svc_rate_take_cost(svc_rate *r, int64_t now_us, double cost) {
  if (r->rate == SVC_RATE_UNLIMITED) return true;
  if (now_us > r->last_us) {
    r->tokens += (double)(now_us - r->last_us) / 1e6 * r->rate;
    if (r->tokens > r->capacity) r->tokens = r->capacity;
    r->last_us = now_us;
  }
  if (r->tokens < cost) return false;
  r->tokens -= cost;
  return true;
}

bool svc_rate_take(svc_rate *r, int64_t now_us) { return svc_rate_take_cost(r, now_us, 1.0); }

/* ---- the conn ---- */

/* Waiting requests remembered per conn (svc_mcpp_waiting): the TaskQueue caps (64 waits, 32
 * waiting claims per caller) fit under it. */
#define SVC_MCPP_WAITING_MAX 128

struct svc_mcpp_conn {
  svc_mcpp_env env;
  svc_frame_dec dec;
  buf out;
  auth_ctx auth; /* the session reads it at each call: credentials update it in place */
  auth_ctx base; /* the PeerId's grant plus shared tokens: a new JWT starts from it */
  svc_rate own_rate, own_auth_rate;
  svc_rate *rate;      /* frames of a caller holding no scope */
  svc_rate *auth_rate; /* frames of a caller holding a scope; NULL = no limit */
  uint64_t frames;
  double frame_budget; /* frames counted at their tier's cost, against max_frames */
  mcp_session *sess;
  int in_feed;
  bool counted_init;
  bool room_unchanged; /* the frame being handled was read right after a may_read that said yes,
                        * and nothing the budgets count has changed since (handle_raw) */
  bool closing;  /* give up: the output could not be written (ENOMEM); nothing more is sent */
  bool draining; /* no more input: requests already read finish and are answered, then done */
  bool eof;
  const char *drain_reason; /* why input stopped (static), NULL while reading */
  int64_t frame_since_ms;   /* when the partial frame in the decoder began; 0 = none */
  size_t reply_est;         /* what one call in flight is charged against the output budget:
                               the largest recent reply, decaying towards SVC_MCPP_EST_MIN */
  /* tools/call read while the peer had its share of the workers busy (env.may_start): they
   * start in order as calls end (svc_mcpp_resume); a cancel removes one (no answer, as MCP
   * says for a cancelled request) */
  struct held_call *held, *held_tail;
  size_t n_held, held_bytes;
  /* ids of requests in flight that wait rather than work (is_wait_op): not counted against
   * the peer's share (svc_mcpp_waiting); at most SVC_MCPP_WAITING_MAX, the rest count */
  json_t *waiting[SVC_MCPP_WAITING_MAX];
  size_t n_waiting;
};

/* Forgets a waiting request's id (answered or cancelled). */
static void waiting_forget(svc_mcpp_conn *c, const json_t *id) {
  for (size_t i = 0; id && i < c->n_waiting; i++)
    if (json_equal(c->waiting[i], id)) {
      json_decref(c->waiting[i]);
      c->waiting[i] = c->waiting[--c->n_waiting];
      return;
    }
}

typedef struct held_call {
  json_t *msg;
  size_t bytes;
  struct held_call *next;
} held_call;

/* The charge of a call in flight before this stream has sent a reply (most replies are small;
 * once large ones come, the charge follows them). The charge only decides when to stop
 * reading; what is really held is bounded by admit_output, which turns replies past a budget
 * into small errors. */
#define SVC_MCPP_EST_INIT (16u * 1024u)
#define SVC_MCPP_EST_MIN (4u * 1024u)

static const char *const k_profiles[] = {"mcp++/profile-e-mcp-p2p", "mcp++/p2p-transport"};

static void update_frame_limit(svc_mcpp_conn *c);
static held_call *pop_held(svc_mcpp_conn *c);

/* ---- writing ---- */

static int frame_text(buf *out, const char *text, size_t n) {
  if (n > UINT32_MAX) return -E2BIG;
  uint8_t *dst;
  int rc = buf_reserve(out, 4 + n, &dst);
  if (rc) return rc;
  dst[0] = (uint8_t)(n >> 24);
  dst[1] = (uint8_t)(n >> 16);
  dst[2] = (uint8_t)(n >> 8);
  dst[3] = (uint8_t)n;
  memcpy(dst + 4, text, n);
  buf_commit(out, 4 + n);
  return 0;
}

static void send_json(svc_mcpp_conn *c, json_t *msg) {
  if (!msg) {
    COUNT(st_internal);
    return;
  }
  if (svc_frame_encode(&c->out, msg, c->env.max_out_frame_bytes) != 0) {
    COUNT(st_internal);
    c->closing = true;
  }
  json_decref(msg);
}

static void send_error(svc_mcpp_conn *c, const json_t *id, int code, const char *message) {
  send_json(c, json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", "code",
                         code, "message", message));
}

/* Learns what a reply weighs: the estimate jumps to a larger reply at once and decays by a
 * quarter per smaller one. */
static void note_reply_size(svc_mcpp_conn *c, size_t len) {
  size_t decayed = c->reply_est - c->reply_est / 4;
  c->reply_est = len > decayed ? len : decayed;
  if (c->reply_est < SVC_MCPP_EST_MIN) c->reply_est = SVC_MCPP_EST_MIN;
}

/* The session's output (compact ASCII JSON, one message, with where it belongs; borrowed:
 * route_borrowed) → one frame. */
static void on_route(void *ud, const mcp_session_out *o, char *msg, size_t len) {
  svc_mcpp_conn *c = ud;
  if (c->closing) return;
  int rc = 0;
  const json_t *id = o->kind == MCP_OUT_RESPONSE ? (o->request_id ? o->request_id : json_null()) : NULL;
  /* an error (an output_budget_exceeded above all) says nothing of what the calls weigh: were
   * it counted, the stream would read more of the calls it cannot answer in full */
  if (o->kind == MCP_OUT_RESPONSE && o->error_code == 0) note_reply_size(c, len);
  if (o->kind == MCP_OUT_RESPONSE && c->n_waiting) waiting_forget(c, o->request_id);
  if (len > c->env.max_out_frame_bytes) {
    /* A reply too large for one frame becomes an error the client can read (a notification
     * that large is dropped). */
    if (id && o->error_code == 0) send_error(c, id, MCP_RPC_INTERNAL_ERROR, "response_too_large");
    else COUNT(st_internal);
  } else if (o->kind != MCP_OUT_REQUEST && c->env.admit_output && !c->env.admit_output(c->env.ud, len + SVC_FRAME_HDR)) {
    /* Over a buffer budget (the peer does not read its output): a reply becomes a small error
     * it can still read; a notification is dropped. */
    COUNT(st_over_budget);
    if (id) send_error(c, id, SVC_MCPP_E_RATE, "output_budget_exceeded");
  } else {
    rc = frame_text(&c->out, msg, len);
  }
  if (rc != 0) {
    /* Output ceiling reached (the peer does not read) or ENOMEM: give up on the stream. */
    COUNT(st_internal);
    c->closing = true;
  }
  if (!c->in_feed && c->env.on_output) c->env.on_output(c->env.ud);
}

static void on_idle(void *ud) {
  svc_mcpp_conn *c = ud;
  /* after EOF the last completion may have sent nothing (cancelled): the conn is done now */
  if (c->eof && !c->in_feed && c->env.on_output) c->env.on_output(c->env.ud);
}

/* ---- session extension points ---- */

static bool caller_may_list(const auth_ctx *a, const mcp_tool_def *d) {
  /* an unknown peer, or one whose JWT has expired, sees nothing */
  /* (the clock is read only for a context that expires: this runs on every tools/call) */
  if (!auth_ctx_is_local(a) &&
      (auth_scopes_empty(&a->scopes) || (a->expires_at != 0 && auth_ctx_expired_at(a, clock_wall_s()))))
    return false;
  if (!auth_allows(a, &d->scopes)) return false;
  return auth_allows_mask(a, AUTH_TOOL_CALL) || strcmp(d->name, TASKQ_RPC_TOOL) == 0; /* the common case first */
}

static bool tool_filter(void *ud, const mcp_tool *t, const mcp_auth *auth) {
  svc_mcpp_conn *c = ud;
  (void)auth; /* = &c->auth */
  return caller_may_list(&c->auth, mcp_tool_def_of(t));
}

static void init_decorator(void *ud, mcp_session *s, const json_t *params, json_t *r) {
  svc_mcpp_conn *c = ud;
  (void)s;
  /* active_profile: params.profile if supported, else the first supported of params.profiles,
   * else our first. */
  const char *active = k_profiles[0];
  const json_t *prof = json_object_get(params, "profile");
  const json_t *profs = json_object_get(params, "profiles");
  bool picked = false;
  for (size_t i = 0; json_is_string(prof) && i < 2; i++)
    if (strcmp(json_string_value(prof), k_profiles[i]) == 0) active = k_profiles[i], picked = true;
  size_t j;
  json_t *p;
  if (!picked && json_is_array(profs)) json_array_foreach(profs, j, p) {
      if (picked || !json_is_string(p)) continue;
      for (size_t i = 0; i < 2; i++)
        if (strcmp(json_string_value(p), k_profiles[i]) == 0) active = k_profiles[i], picked = true;
    }
  json_t *caps = json_object_get(r, "capabilities");
  if (json_is_object(caps)) {
    json_object_set_new(caps, "mcpPlusPlusProfiles", json_pack("[s, s]", k_profiles[0], k_profiles[1]));
    json_object_set_new(caps, "experimental",
                        json_pack("{s:b, s:b, s:b, s:b, s:b, s:b}", "mcp++/mcp-idl", 0, "mcp++/cid-envelope", 0,
                                  "mcp++/ucan", 0, "mcp++/deontic-policy", 0, "mcp++/p2p-transport", 1,
                                  "mcp++/risk-scheduling", 0));
  }
  json_object_set_new(r, "ok", json_true());
  json_object_set_new(r, "transport", json_string(SVC_MCPP_PROTOCOL));
  json_object_set_new(r, "server", json_pack("{s:s}", "peer_id", c->env.peer_id ? c->env.peer_id : ""));
  json_object_set_new(r, "profile_negotiation",
                      json_pack("{s:b, s:s, s:[s, s]}", "supports_profile_negotiation", 1, "mode", "optional_additive",
                                "profiles", k_profiles[0], k_profiles[1]));
  json_object_set_new(r, "active_profile", json_string(active));
  /* the bucket that applies to this caller now (no limit: 0, which Python clients ignore) */
  const svc_rate *b = auth_scopes_empty(&c->auth.scopes) ? c->rate : c->auth_rate;
  json_object_set_new(r, "limits", json_pack("{s:I, s:I, s:f, s:f}", "max_frame_bytes", (json_int_t)c->dec.max,
                                             "max_frames", (json_int_t)c->env.max_frames, "rate_capacity",
                                             b && b->rate > 0 ? b->capacity : 0.0, "rate_refill_per_sec",
                                             b && b->rate > 0 ? b->rate : 0.0)); /* SVC_RATE_UNLIMITED → 0 */
  if (!c->counted_init) COUNT(st_initialized);
  c->counted_init = true;
}

static const char *outcome_tool(const mcp_call_outcome *o) {
  if (o->tool) return mcp_tool_def_of(o->tool)->name;
  return json_string_value(json_object_get(mcp_call_outcome_envelope(o), "tool"));
}

static bool result_shaper(void *ud, const mcp_call_outcome *o, mcp_session_shaped *out) {
  svc_mcpp_conn *c = ud;
  const char *tool = outcome_tool(o);
  if (c->env.admit_output && !c->env.admit_output(c->env.ud, SVC_FRAME_HDR + 1)) {
    /* Over a budget already: the answer is the small error on_route would make of it, without
     * first turning a large result into text on the loop (a megabyte costs milliseconds). */
    COUNT(st_over_budget);
    out->code = SVC_MCPP_E_RATE;
    out->message = "output_budget_exceeded";
    return true;
  }
  if (o->status == MCP_DISPATCH_UNKNOWN_TOOL) {
    out->code = SVC_MCPP_E_TOOL;
    out->message = "unknown_tool";
  } else if (o->status == MCP_DISPATCH_FORBIDDEN) {
    COUNT(st_unauthorized);
    out->code = SVC_MCPP_E_UNAUTHORIZED;
    out->message = "unauthorized";
  } else if (o->status == MCP_DISPATCH_SHUTTING_DOWN) {
    out->code = MCP_RPC_INTERNAL_ERROR;
    out->message = "shutting_down";
  } else if (tool && strcmp(tool, TASKQ_RPC_TOOL) == 0) {
    if (o->status == MCP_DISPATCH_OK && json_is_string(o->value)) {
      /* a success the op table wrote as text for this transport (taskq/rpc_tool.c raw_ok,
       * TASKQ_ASYNC_RAW: the reply object's JSON, ASCII-only): into the frame as it is */
      out->raw_content = json_string_value(o->value);
      out->raw_content_len = json_string_length(o->value);
      return true;
    }
    json_t *content;
    /* a success's op reply is the handler's value: the dispatcher's envelope (request id,
     * duration, a tree per call) is built only for the other outcomes */
    json_t *env = o->status == MCP_DISPATCH_OK && o->value ? NULL : mcp_call_outcome_envelope(o);
    if (o->status == MCP_DISPATCH_OK && o->value) {
      content = json_incref(o->value);
    } else if (o->status == MCP_DISPATCH_OK && json_object_get(env, "result")) {
      content = json_incref(json_object_get(env, "result"));
    } else {
      const json_t *e = json_object_get(env, "error");
      content = json_pack("{s:b, s:s, s:s}", "ok", 0, "error",
                          o->status == MCP_DISPATCH_TIMEOUT ? "timeout"
                          : o->status == MCP_DISPATCH_BUSY  ? "busy"
                          : json_is_string(e)               ? json_string_value(e)
                                                            : "internal_error",
                          "peer_id", c->env.peer_id ? c->env.peer_id : "");
    }
    const json_t *err = json_object_get(content, "error");
    if (json_is_string(err) && strcmp(json_string_value(err), "unauthorized") == 0) COUNT(st_unauthorized);
    out->result = json_object();
    if (!out->result || json_object_set_new_nocheck(out->result, "content", content) != 0) {
      json_decref(out->result);
      out->result = NULL;
      return false;
    }
  } else {
    return false;
  }
  return true;
}

/* A TaskQueue `wait` (it holds no thread: taskq/rpc_tool.h) or a `claim` that may wait for work
 * (`wait_s` > 0: a worker keeps several open, and its completes must not queue behind them):
 * not counted against the peer's share of the workers; each has its own per-caller cap. */
static bool is_wait_op(const char *tool, const json_t *params) {
  if (strcmp(tool, TASKQ_RPC_TOOL) != 0) return false;
  const json_t *msg = taskq_rpc_message(json_object_get(params, "arguments"));
  const json_t *op = json_object_get(msg, "op");
  if (!json_is_string(op)) return false;
  taskq_op o = taskq_op_parse(json_string_value(op));
  return o == TASKQ_OP_WAIT || (o == TASKQ_OP_CLAIM && json_number_value(json_object_get(msg, "wait_s")) > 0);
}

/* Service policy the session does not know: task_queue.rpc runs with its message's token too,
 * under its own deadline; other tools and MCP Tasks need the tool.call scope. */
static bool method_hook(void *ud, mcp_session *s, const char *method, json_t *id, json_t *params) {
  svc_mcpp_conn *c = ud;
  if (!id) return false;
  if (strcmp(method, "tools/call") == 0) {
    const json_t *name = json_object_get(params, "name");
    json_t *args = json_object_get(params, "arguments");
    if (!json_is_string(name) || (args && !json_is_null(args) && !json_is_object(args))) return false; /* -32602 */
    if (json_is_null(args)) args = NULL;
    if (strcmp(json_string_value(name), TASKQ_RPC_TOOL) == 0) {
      /* The TaskQueue message carries its own token (§4.1): the nested call_tool op then runs
       * with the token's scopes too. */
      auth_ctx a = c->auth;
      taskq_present_msg_token(c->env.policy, taskq_rpc_message(args), &a);
      mcp_session_call call = {.tool = TASKQ_RPC_TOOL, .args = args, .auth = &a, .timeout_ms = c->env.rpc_timeout_ms};
      if (mcp_session_start_call(s, &call) != 0) {
        COUNT(st_internal);
        mcp_session_reply_error(s, id, MCP_RPC_INTERNAL_ERROR, "internal_error", NULL);
      }
      return true;
    }
  } else if (strncmp(method, "tasks/", 6) != 0) {
    return false;
  }
  if (auth_allows_mask(&c->auth, AUTH_TOOL_CALL)) return false;
  auth_scopes need = AUTH_SCOPES(AUTH_TOOL_CALL);
  auth_audit_refused(&c->auth, auth_check(&c->auth, &need, clock_wall_s()), method, NULL, NULL);
  COUNT(st_unauthorized);
  mcp_session_reply_error(s, id, SVC_MCPP_E_UNAUTHORIZED, "unauthorized", NULL);
  return true;
}

svc_mcpp_conn *svc_mcpp_new(const svc_mcpp_env *env, const char *remote_peer_id, svc_rate *rate) {
  if (!env || !env->dispatcher) return NULL;
  svc_mcpp_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->env = *env;
  if (!c->env.max_frame_bytes) c->env.max_frame_bytes = SVC_FRAME_DEFAULT_MAX;
  if (!c->env.max_out_frame_bytes) c->env.max_out_frame_bytes = 16u * 1024 * 1024;
  if (!c->env.max_frames) c->env.max_frames = 1000000;
  if (!(c->env.rate_capacity > 0)) c->env.rate_capacity = 100;
  if (!(c->env.rate_refill_per_s > 0) && c->env.rate_refill_per_s != SVC_RATE_UNLIMITED) c->env.rate_refill_per_s = 100;
  if (!c->env.max_inflight) c->env.max_inflight = 64;
  if (!c->env.rpc_timeout_ms) c->env.rpc_timeout_ms = 330000;
  if (c->env.stranger_max_frame_bytes > c->env.max_frame_bytes) c->env.stranger_max_frame_bytes = c->env.max_frame_bytes;
  c->reply_est = SVC_MCPP_EST_INIT < c->env.max_out_frame_bytes ? SVC_MCPP_EST_INIT : c->env.max_out_frame_bytes;
  svc_frame_dec_init(&c->dec, c->env.max_frame_bytes);
  svc_frame_dec_set_raw(&c->dec, true); /* frames checked without a tree: handle_raw */
  /* Output ceiling: a few maximal replies; the transport pauses reading when it lags. */
  buf_init(&c->out, c->env.max_out_frame_bytes * 4 + 4096);
  auth_policy_peer_ctx(env->policy, remote_peer_id, &c->base);
  c->base.transport = AUTH_TR_MCP_P2P;
  c->auth = c->base;
  update_frame_limit(c);
  if (rate) {
    c->rate = rate;
  } else {
    svc_rate_init(&c->own_rate, c->env.rate_capacity, c->env.rate_refill_per_s);
    c->rate = &c->own_rate;
  }
  if (c->env.auth_rate) {
    c->auth_rate = c->env.auth_rate;
  } else if (c->env.auth_rate_refill_per_s > 0) {
    svc_rate_init(&c->own_auth_rate, c->env.auth_rate_capacity > 0 ? c->env.auth_rate_capacity
                                                                     : c->env.auth_rate_refill_per_s,
                  c->env.auth_rate_refill_per_s);
    c->auth_rate = &c->own_auth_rate;
  }
  mcp_session_opts so = {
      .dispatcher = c->env.dispatcher,
      .auth = &c->auth,
      .remote = true,
      .transport = "p2p",
      .page_size = c->env.page_size,
      .max_message_bytes = c->env.max_frame_bytes,
      .call_timeout_ms = c->env.call_timeout_ms,
      .max_inflight = c->env.max_inflight,
      .route = on_route,
      .route_borrowed = true,
      .send_ud = c,
      .hook = method_hook,
      .hook_ud = c,
      .tasks = c->env.tasks,
      .tool_filter = tool_filter,
      .init_decorator = init_decorator,
      .result_shaper = result_shaper,
      .init_required = true,
      .init_required_code = SVC_MCPP_E_INIT_REQUIRED,
      .init_required_message = "init_required",
      .init_default_version = "2024-11-05",
      .quiet_logs = true,
      .ascii_only = true,
      .busy_code = SVC_MCPP_E_RATE,
      .busy_message = "too_many_requests",
  };
  if (mcp_session_new(&so, &c->sess) != 0) {
    svc_frame_dec_free(&c->dec);
    buf_free(&c->out);
    free(c);
    return NULL;
  }
  mcp_session_on_idle(c->sess, on_idle, c);
  COUNT(st_started);
  return c;
}

void svc_mcpp_free(svc_mcpp_conn *c) {
  if (!c) return;
  held_call *h;
  while ((h = pop_held(c))) {
    json_decref(h->msg);
    free(h);
  }
  mcp_session_free(c->sess); /* detaches calls and task operations in flight */
  while (c->n_waiting) json_decref(c->waiting[--c->n_waiting]);
  svc_frame_dec_free(&c->dec);
  buf_free(&c->out);
  COUNT(st_closed);
  free(c);
}

buf *svc_mcpp_output(svc_mcpp_conn *c) { return &c->out; }
bool svc_mcpp_done(const svc_mcpp_conn *c) {
  return c->closing || ((c->eof || c->draining) && mcp_session_inflight(c->sess) == 0 && !c->held);
}
size_t svc_mcpp_inflight(const svc_mcpp_conn *c) { return mcp_session_inflight(c->sess); }
size_t svc_mcpp_waiting(const svc_mcpp_conn *c) {
  size_t n = mcp_session_inflight(c->sess);
  return c->n_waiting < n ? c->n_waiting : n;
}
bool svc_mcpp_initialized(const svc_mcpp_conn *c) { return mcp_session_ready(c->sess); }
const auth_ctx *svc_mcpp_auth(const svc_mcpp_conn *c) { return &c->auth; }
bool svc_mcpp_reading(const svc_mcpp_conn *c) { return !c->closing && !c->draining && !c->eof; }
const char *svc_mcpp_drain_reason(const svc_mcpp_conn *c) { return c->drain_reason; }
size_t svc_mcpp_frame_limit(const svc_mcpp_conn *c) { return c->dec.max; }
int64_t svc_mcpp_partial_since_ms(const svc_mcpp_conn *c) { return c->frame_since_ms; }
void svc_mcpp_restart_frame_clock(svc_mcpp_conn *c) {
  if (c->frame_since_ms) c->frame_since_ms = clock_mono_ms();
}

size_t svc_mcpp_call_charge(const svc_mcpp_conn *c) { return c->reply_est; }

size_t svc_mcpp_held_bytes(const svc_mcpp_conn *c) {
  size_t inflight = mcp_session_inflight(c->sess);
  return buf_len(&c->out) + svc_frame_dec_held(&c->dec) + inflight * c->reply_est + c->held_bytes;
}

size_t svc_mcpp_held_calls(const svc_mcpp_conn *c) { return c->n_held; }

void svc_mcpp_get_figures(const svc_mcpp_conn *c, svc_mcpp_figures *f) {
  size_t inflight = mcp_session_inflight(c->sess);
  f->out = buf_len(&c->out);
  f->held = f->out + svc_frame_dec_held(&c->dec) + inflight * c->reply_est + c->held_bytes;
  f->working = inflight - (c->n_waiting < inflight ? c->n_waiting : inflight);
  f->held_calls = c->n_held;
}

/* A peer that holds no scope (a stranger, or a token holder before it presented the token)
 * gets the small frame limit; any scope lifts it. */
static void update_frame_limit(svc_mcpp_conn *c) {
  size_t lim = c->env.max_frame_bytes;
  if (c->env.stranger_max_frame_bytes && !auth_ctx_is_local(&c->auth) && auth_scopes_empty(&c->auth.scopes))
    lim = c->env.stranger_max_frame_bytes;
  if (lim != c->dec.max) svc_frame_dec_set_max(&c->dec, lim);
}

/* Stops reading for good: what was read is still answered (calls finish within their
 * deadlines), then the conn is done. The partial frame, if any, is dropped. */
static void stop_input(svc_mcpp_conn *c, const char *why) {
  if (c->draining) return;
  c->draining = true;
  c->drain_reason = why;
  c->frame_since_ms = 0;
  if (!c->dec.err) svc_frame_dec_fail(&c->dec, SVC_FRAME_EMPTY);
  else svc_frame_dec_fail(&c->dec, c->dec.err);
}

/* ---- one frame ---- */

/* A credential presented on the stream (see mcpp.h). False when it was refused: the caller
 * answers the request unauthorized. */
static bool present_credential(svc_mcpp_conn *c, const char *cred, const char *method) {
  auth_ctx next = c->base;
  auth_reason why = AUTH_REASON_NONE;
  const char *detail = NULL;
  auth_present_result r = auth_policy_present(c->env.policy, cred, &next, &why, &detail);
  if (r == AUTH_PRESENT_REFUSED) {
    auth_audit_refused(&c->auth, why, method ? method : "frame", "token", detail);
    COUNT(st_unauthorized);
    return false;
  }
  if (r != AUTH_PRESENT_OK) return true;
  if (next.kind == AUTH_KIND_JWT) {
    c->auth = next; /* a JWT replaces the stream's earlier one, if any */
  } else {
    auth_scopes add = next.scopes; /* the shared token: for the rest of the stream */
    c->base = next;
    auth_scopes_union(&c->auth.scopes, &add);
    if (c->auth.kind != AUTH_KIND_JWT) c->auth = next;
  }
  return true;
}

/* The frame's budget: one rate token and one frame, less for trusted tiers (§4.3). */
static double frame_cost(const svc_mcpp_conn *c) {
  if (!c->env.trust_tiers) return 1.0;
  switch (auth_ctx_tier(&c->auth)) {
  case AUTH_TIER_TRUSTED: return 1.0 / 2.0;
  case AUTH_TIER_ELEVATED: return 1.0 / 1.5;
  default: return 1.0;
  }
}

/* The credentials of a frame the stream accepts (see handle_frame): its top-level "token", and
 * an initialize request's params.token. False when one was refused (the request is then
 * answered unauthorized and the stream's auth stays as it was). */
static bool present_tokens(svc_mcpp_conn *c, const json_t *msg, const char *method, const json_t *id) {
  const json_t *ftok = json_object_get(msg, "token");
  const json_t *itok =
      method && id && strcmp(method, "initialize") == 0 ? json_object_get(json_object_get(msg, "params"), "token") : NULL;
  bool ok = (!json_is_string(ftok) || present_credential(c, json_string_value(ftok), method)) &&
            (!json_is_string(itok) || present_credential(c, json_string_value(itok), "initialize"));
  update_frame_limit(c);
  return ok;
}

/* The fields a C string is made of: refused with a clear error when they hold a NUL. */
static const char *nul_field(const json_t *msg) {
  const json_t *params = json_object_get(msg, "params");
  if (svc_json_has_nul(json_object_get(msg, "method"))) return "method";
  if (svc_json_has_nul(json_object_get(msg, "id"))) return "id";
  if (svc_json_has_nul(json_object_get(msg, "token"))) return "token";
  if (json_is_object(params)) {
    if (svc_json_has_nul(json_object_get(params, "name"))) return "params.name";
    if (svc_json_has_nul(json_object_get(params, "token"))) return "params.token";
    if (svc_json_has_nul(json_object_get(params, "uri"))) return "params.uri";
    if (svc_json_has_nul(json_object_get(params, "protocolVersion"))) return "params.protocolVersion";
  }
  return NULL;
}

/* ---- calls held for the peer's share of the workers ---- */

static void hold_call(svc_mcpp_conn *c, json_t *msg, size_t bytes) {
  held_call *h = calloc(1, sizeof *h);
  if (!h) {
    send_error(c, json_object_get(msg, "id"), MCP_RPC_INTERNAL_ERROR, "internal_error");
    return;
  }
  h->msg = json_incref(msg);
  h->bytes = bytes;
  if (c->held_tail) c->held_tail->next = h;
  else c->held = h;
  c->held_tail = h;
  c->n_held++;
  c->held_bytes += bytes;
}

static held_call *pop_held(svc_mcpp_conn *c) {
  held_call *h = c->held;
  if (!h) return NULL;
  c->held = h->next;
  if (!c->held) c->held_tail = NULL;
  c->n_held--;
  c->held_bytes -= h->bytes;
  return h;
}

/* notifications/cancelled for a call still held: it goes without an answer. */
static void drop_held(svc_mcpp_conn *c, const json_t *rid) {
  if (!rid) return;
  for (held_call **pp = &c->held, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
    held_call *h = *pp;
    if (!json_equal(json_object_get(h->msg, "id"), rid)) continue;
    *pp = h->next;
    if (c->held_tail == h) c->held_tail = prev;
    c->n_held--;
    c->held_bytes -= h->bytes;
    json_decref(h->msg);
    free(h);
    return;
  }
}

int svc_mcpp_resume(svc_mcpp_conn *c) {
  int started = 0;
  c->in_feed++;
  while (c->held && !c->closing && (!c->env.may_start || c->env.may_start(c->env.ud))) {
    held_call *h = pop_held(c);
    mcp_session_feed_json(c->sess, h->msg);
    json_decref(h->msg);
    free(h);
    started++;
  }
  c->in_feed--;
  return started;
}

/* Answers every held call at once with `message` (the server stops: they were read). */
static void answer_held(svc_mcpp_conn *c, int code, const char *message) {
  held_call *h;
  while ((h = pop_held(c))) {
    send_error(c, json_object_get(h->msg, "id"), code, message);
    json_decref(h->msg);
    free(h);
  }
}

/* Takes a frame's share of the stream's budgets (§4.3). False when it crossed one: the
 * crossing request is refused (the caller answers it rate_limited when it has an id); the ones
 * read before it still finish and are answered; nothing after it is read. */
static bool take_frame_budget(svc_mcpp_conn *c) {
  double cost = frame_cost(c);
  c->frame_budget += cost;
  svc_rate *bucket = auth_scopes_empty(&c->auth.scopes) ? c->rate : c->auth_rate;
  if (c->frame_budget > (double)c->env.max_frames || (bucket && !svc_rate_take_cost(bucket, clock_mono_us(), cost))) {
    COUNT(st_rate_limited);
    return false;
  }
  c->frames++;
  return true;
}

static void handle_frame(svc_mcpp_conn *c, json_t *msg, size_t frame_bytes, bool has_nul, int depth) {
  const json_t *id = json_object_get(msg, "id"); /* notifications have no "id" key */
  if (!take_frame_budget(c)) {
    if (id) send_error(c, id, SVC_MCPP_E_RATE, "rate_limited");
    stop_input(c, "rate_limited");
    return;
  }
  const json_t *jv = json_object_get(msg, "jsonrpc");
  if (!json_is_string(jv) || strcmp(json_string_value(jv), "2.0") != 0) {
    if (id) {
      send_error(c, id, MCP_RPC_INVALID_REQUEST, "invalid_jsonrpc");
      stop_input(c, "invalid_jsonrpc");
    }
    return;
  }
  const char *bad = has_nul ? nul_field(msg) : NULL; /* no NUL anywhere (the parser says): none to find */
  if (bad) {
    /* a NUL would cut the C string the name becomes (echo\u0000x would call echo) */
    if (id && !svc_json_has_nul(id)) {
      char m[96];
      snprintf(m, sizeof m, "invalid_request: NUL character (\\u0000) in %s", bad);
      send_error(c, id, MCP_RPC_INVALID_REQUEST, m);
    } else if (id) {
      send_error(c, json_null(), MCP_RPC_INVALID_REQUEST, "invalid_request: NUL character (\\u0000) in id");
    }
    return;
  }
  const json_t *mv = json_object_get(msg, "method");
  const char *method = json_is_string(mv) ? json_string_value(mv) : NULL;
  /* Only a frame the stream accepts may change its auth: a request the session will refuse
   * (before initialize, anything but initialize or a 2026-07-28 request) must not raise the
   * scopes with a token it carries. */
  bool accepted = mcp_session_ready(c->sess);
  if (!accepted && method && id) {
    const json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
    accepted = strcmp(method, "initialize") == 0 || json_object_get(meta, "io.modelcontextprotocol/protocolVersion");
  }
  auth_ctx before = c->auth, before_base = c->base;
  if (accepted && !present_tokens(c, msg, method, id)) {
    if (id) send_error(c, id, SVC_MCPP_E_UNAUTHORIZED, "unauthorized");
    return;
  }
  /* the Python service's aliases */
  bool call = method && (strcmp(method, "tools/call") == 0 || strcmp(method, "tools.call") == 0);
  bool cancel = !id && method && strcmp(method, "notifications/cancelled") == 0;
  if (method && strcmp(method, "tools.list") == 0) json_object_set_new(msg, "method", json_string("tools/list"));
  else if (method && strcmp(method, "tools.call") == 0) json_object_set_new(msg, "method", json_string("tools/call"));
  method = NULL; /* may point into a value just replaced */
  if (cancel) { /* (not mv: an alias rewrite may just have freed it) */
    drop_held(c, json_object_get(json_object_get(msg, "params"), "requestId"));
    waiting_forget(c, json_object_get(json_object_get(msg, "params"), "requestId"));
  }
  if (call && id && mcp_session_ready(c->sess) && c->env.may_start) {
    const json_t *params = json_object_get(msg, "params");
    const json_t *name = json_object_get(params, "name");
    bool waits = json_is_string(name) && is_wait_op(json_string_value(name), params);
    if (json_is_string(name) && !waits && (c->held || !c->env.may_start(c->env.ud))) {
      hold_call(c, msg, frame_bytes);
      return;
    }
    if (waits && c->n_waiting < SVC_MCPP_WAITING_MAX) c->waiting[c->n_waiting++] = json_incref((json_t *)id);
  }
  mcp_session_feed_json_depth(c->sess, msg, depth); /* the frame parser measured the nesting */
  if (mcp_session_ended(c->sess)) {
    c->auth = before; /* refused after all: the token does not count */
    c->base = before_base;
    update_frame_limit(c);
    stop_input(c, "init_required");
  }
}

#define FRAME_JFLAGS (JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL) /* as service/frame.c checks them */

/* The common frame without a tree (issue 11 §3): a plain tools/call on a stream the session
 * has accepted — no NUL anywhere, top-level members jsonrpc "2.0", id, method "tools/call" and
 * params only (no "token" to present, no alias), a tool name that is a plain string the method
 * hook declines (not task_queue.rpc, and the caller may call tools: method_hook returns false)
 * — takes the same steps as handle_frame in the same order (budget, frame limit, holding), and
 * goes to the session as text (mcp_session_feed_text: a tree only of the arguments). Returns
 * false, having done nothing, for any other frame: handle_frame then has it as a tree. */
static bool handle_raw(svc_mcpp_conn *c, const svc_frame_raw *r, size_t frame_bytes) {
  mcp_envelope env;
  if (!mcp_session_text_envelope || r->has_nul || c->held || !mcp_session_ready(c->sess) ||
      mcp_envelope_from_scan(r->body, r->len, r->m, r->n_members, SVC_FRAME_RAW_MEMBERS, r->pm, r->n_pm,
                             SVC_FRAME_RAW_MEMBERS, r->found, &env) != 0)
    return false;
  /* the tool name: a string without an escape, shorter than 256 bytes (what the copy into a
   * 256-byte buffer this replaced took; anything else takes the tree path, as before), and
   * not task_queue.rpc */
  if (env.top_other || env.has_answer || !env.id.p || !mcp_env_is_str(env.jsonrpc, "2.0") ||
      !mcp_env_is_str(env.method, "tools/call") || !mcp_env_is_string(env.name) || env.name.n - 2 >= 256 ||
      mcp_env_str_escaped(env.name) || mcp_env_is_str(env.name, TASKQ_RPC_TOOL) || !auth_allows_mask(&c->auth, AUTH_TOOL_CALL))
    return false;
  if (!take_frame_budget(c)) {
    json_t *id = NULL;
    if (mcp_envelope_tree(env.id, FRAME_JFLAGS, &id) == 0) send_error(c, id, SVC_MCPP_E_RATE, "rate_limited");
    json_decref(id);
    stop_input(c, "rate_limited");
    return true;
  }
  update_frame_limit(c); /* as present_tokens does (there are none) */
  /* (right after may_read's yes for this frame, with nothing changed: the cheaper question) */
  bool start = !c->env.may_start || (c->room_unchanged && c->env.may_start_unchanged
                                         ? c->env.may_start_unchanged(c->env.ud)
                                         : c->env.may_start(c->env.ud));
  if (!start) { /* held: as a tree, as handle_frame holds it */
    json_t *msg = NULL;
    if (mcp_envelope_tree((mcp_env_span){r->body, r->len}, FRAME_JFLAGS, &msg) == 0) hold_call(c, msg, frame_bytes);
    else send_error(c, NULL, MCP_RPC_INTERNAL_ERROR, "internal_error");
    json_decref(msg);
    return true;
  }
  mcp_session_text t = {.text = r->body, .len = r->len, .jflags = FRAME_JFLAGS, .env = &env, .hook_declines_call = true};
  mcp_session_feed_text(c->sess, &t);
  if (mcp_session_ended(c->sess)) stop_input(c, "init_required"); /* not for a ready session; as handle_frame */
  return true;
}

/* Whether the transport lets this conn take more input now (budgets). */
static bool may_read(svc_mcpp_conn *c) { return !c->env.may_read || c->env.may_read(c->env.ud); }

/* Input is taken in pieces of at most this, so a budget is checked at least this often. */
#define SVC_MCPP_FEED_STEP (64u * 1024u)

int svc_mcpp_feed_some(svc_mcpp_conn *c, const uint8_t *data, size_t len, size_t *used_out) {
  c->in_feed++;
  int rc = 0;
  size_t used_total = 0;
  while (len > 0 || c->dec.ready || c->dec.raw_ready) {
    if (c->closing || c->eof || c->draining) {
      rc = -EPIPE;
      used_total += len; /* ignored, as if read */
      len = 0;
      break;
    }
    bool asked = false;
    if (!c->dec.ready && !c->dec.raw_ready) {
      if (!may_read(c)) break; /* over a budget: the rest waits */
      asked = c->env.may_read != NULL;
    }
    size_t step = len < SVC_MCPP_FEED_STEP ? len : SVC_MCPP_FEED_STEP;
    size_t used = 0;
    bool had_partial = svc_frame_dec_mid_frame(&c->dec);
    size_t dec_held = asked ? svc_frame_dec_held(&c->dec) : 0;
    svc_frame_status st = svc_frame_dec_feed(&c->dec, data, step, &used);
    /* A frame checked where it lay in the input leaves the decoder holding what it held (none):
     * then nothing the transport's budgets count has moved since its may_read said yes. */
    c->room_unchanged = asked && st == SVC_FRAME_READY && svc_frame_dec_held(&c->dec) == dec_held;
    data += used;
    len -= used;
    used_total += used;
    if (!had_partial && svc_frame_dec_mid_frame(&c->dec)) c->frame_since_ms = clock_mono_ms();
    if (st == SVC_FRAME_READY) {
      c->frame_since_ms = svc_frame_dec_mid_frame(&c->dec) ? clock_mono_ms() : 0;
      const svc_frame_raw *r = svc_frame_dec_take_raw(&c->dec); /* raw mode: checked, no tree yet */
      bool raw_done = handle_raw(c, r, used + 256);
      c->room_unchanged = false;
      if (raw_done) continue;
      /* Not done: any other frame is read twice (the scan, then this tree parse; ~1-2 k
       * instructions for a task_queue.rpc frame, not measured in bench-service). */
      json_t *msg = NULL;
      unsigned found = 0;
      if (jparse_flags(r->body, r->len, INT_MAX / 2, FRAME_JFLAGS, &msg, NULL, &found) != 0) { /* checked: ENOMEM */
        COUNT(st_frame_errors);
        send_json(c, svc_frame_error_reply(SVC_FRAME_NOMEM));
        stop_input(c, svc_frame_status_str(SVC_FRAME_NOMEM));
        rc = -EPIPE;
        used_total += len;
        len = 0;
        break;
      }
      handle_frame(c, msg, used + 256, found & JPARSE_FOUND_NUL, JPARSE_FOUND_DEPTH(found));
      json_decref(msg);
      continue;
    }
    if (st == SVC_FRAME_NEED_MORE) continue;
    COUNT(st_frame_errors);
    send_json(c, svc_frame_error_reply_detail(st, svc_frame_dec_detail(&c->dec)));
    stop_input(c, svc_frame_status_str(st));
    rc = -EPIPE;
    used_total += len;
    len = 0;
    break;
  }
  c->in_feed--;
  if (used_out) *used_out = used_total;
  return rc ? rc : (c->closing || c->draining) ? -EPIPE : 0;
}

int svc_mcpp_feed(svc_mcpp_conn *c, const uint8_t *data, size_t len) {
  size_t used;
  return svc_mcpp_feed_some(c, data, len, &used);
}

void svc_mcpp_eof(svc_mcpp_conn *c) {
  c->eof = true;
  c->frame_since_ms = 0;
}

void svc_mcpp_stop_input(svc_mcpp_conn *c, const char *why) {
  c->in_feed++; /* output goes out with the caller's flush */
  if (!c->draining && !c->closing && svc_frame_dec_mid_frame(&c->dec) && why && strcmp(why, "frame_timeout") == 0) {
    COUNT(st_frame_timeouts);
    COUNT(st_frame_errors);
    send_json(c, svc_frame_error_reply(SVC_FRAME_TIMEOUT));
  }
  stop_input(c, why ? why : "stopped");
  c->in_feed--;
}

void svc_mcpp_stopping(svc_mcpp_conn *c) {
  c->in_feed++; /* output goes out with the caller's flush */
  mcp_session_end_subscriptions(c->sess);
  answer_held(c, MCP_RPC_INTERNAL_ERROR, "shutting_down");
  stop_input(c, "shutting_down");
  c->in_feed--;
}
