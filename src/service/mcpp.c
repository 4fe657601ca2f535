/* mcpp.c — /mcp+p2p/1.0.0 server session per stream (see mcpp.h; p2p_tasks_spec.md §2.3). */
#include "service/mcpp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "service/frame.h"
#include "util/clock.h"
#include "util/log.h"

#ifndef PEERMCP_VERSION
#define PEERMCP_VERSION "0.0.0"
#endif

/* ---- counters (process-wide) ---- */
static unsigned long st_started, st_closed, st_initialized, st_frame_errors, st_rate_limited, st_unauthorized,
    st_internal;
#define COUNT(x) __atomic_add_fetch(&(x), 1, __ATOMIC_RELAXED)
#define READ(x) (json_int_t) __atomic_load_n(&(x), __ATOMIC_RELAXED)

json_t *svc_mcpp_stats_json(void) {
  return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "sessions_started", READ(st_started), "sessions_closed",
                   READ(st_closed), "initialized_sessions", READ(st_initialized), "frame_errors",
                   READ(st_frame_errors), "rate_limited", READ(st_rate_limited), "unauthorized",
                   READ(st_unauthorized), "internal_errors", READ(st_internal));
}

/* ---- token bucket ---- */
void svc_rate_init(svc_rate *r, double capacity, double rate_per_s) {
  r->capacity = capacity > 0 ? capacity : 1;
  r->rate = rate_per_s > 0 ? rate_per_s : 0;
  r->tokens = r->capacity; /* starts full */
  r->last_us = clock_mono_us();
}

bool svc_rate_take(svc_rate *r, int64_t now_us) {
  if (now_us > r->last_us) {
    r->tokens += (double)(now_us - r->last_us) / 1e6 * r->rate;
    if (r->tokens > r->capacity) r->tokens = r->capacity;
    r->last_us = now_us;
  }
  if (r->tokens < 1.0) return false;
  r->tokens -= 1.0;
  return true;
}

/* ---- the conn ---- */

typedef struct inflight {
  struct inflight *next;
  uint64_t call_no;
  json_t *id;
  void *handle;
  bool rpc;
  svc_auth auth; /* stable address: the call borrows auth.a */
} inflight;

struct svc_mcpp_conn {
  svc_mcpp_env env;
  svc_frame_dec dec;
  buf out;
  svc_auth auth;
  svc_rate own_rate;
  svc_rate *rate;
  uint64_t frames;
  uint64_t next_call;
  inflight *calls;
  size_t n_calls;
  bool initialized;
  bool closing; /* no more input; finish when flushed */
  bool eof;
};

static const char *const k_profiles[] = {"mcp++/profile-e-mcp-p2p", "mcp++/p2p-transport"};
static const char *const k_versions[] = {"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"};

svc_mcpp_conn *svc_mcpp_new(const svc_mcpp_env *env, const char *remote_peer_id, svc_rate *rate) {
  svc_mcpp_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->env = *env;
  if (!c->env.max_frame_bytes) c->env.max_frame_bytes = SVC_FRAME_DEFAULT_MAX;
  if (!c->env.max_out_frame_bytes) c->env.max_out_frame_bytes = 16u * 1024 * 1024;
  if (!c->env.max_frames) c->env.max_frames = 1000000;
  if (!(c->env.rate_capacity > 0)) c->env.rate_capacity = 100;
  if (!(c->env.rate_refill_per_s > 0)) c->env.rate_refill_per_s = 100;
  if (!c->env.max_inflight) c->env.max_inflight = 64;
  if (!c->env.rpc_timeout_ms) c->env.rpc_timeout_ms = 330000;
  svc_frame_dec_init(&c->dec, c->env.max_frame_bytes);
  /* Output ceiling: a few maximal replies; the transport pauses reading when it lags. */
  buf_init(&c->out, c->env.max_out_frame_bytes * 4 + 4096);
  svc_auth_init_peer(&c->auth, env->policy, remote_peer_id);
  if (rate) {
    c->rate = rate;
  } else {
    svc_rate_init(&c->own_rate, c->env.rate_capacity, c->env.rate_refill_per_s);
    c->rate = &c->own_rate;
  }
  COUNT(st_started);
  return c;
}

static void detach_all(svc_mcpp_conn *c) {
  inflight *f = c->calls;
  c->calls = NULL;
  c->n_calls = 0;
  while (f) {
    inflight *n = f->next;
    if (c->env.call_detach && f->handle) c->env.call_detach(c->env.hooks_ud, f->handle);
    json_decref(f->id);
    free(f);
    f = n;
  }
}

void svc_mcpp_free(svc_mcpp_conn *c) {
  if (!c) return;
  detach_all(c);
  svc_frame_dec_free(&c->dec);
  buf_free(&c->out);
  COUNT(st_closed);
  free(c);
}

buf *svc_mcpp_output(svc_mcpp_conn *c) { return &c->out; }
bool svc_mcpp_done(const svc_mcpp_conn *c) { return c->closing || (c->eof && c->n_calls == 0); }
size_t svc_mcpp_inflight(const svc_mcpp_conn *c) { return c->n_calls; }
bool svc_mcpp_initialized(const svc_mcpp_conn *c) { return c->initialized; }
const svc_auth *svc_mcpp_auth(const svc_mcpp_conn *c) { return &c->auth; }

/* ---- writing ---- */

static void send_msg(svc_mcpp_conn *c, json_t *msg) {
  if (!msg) {
    COUNT(st_internal);
    return;
  }
  int rc = svc_frame_encode(&c->out, msg, c->env.max_out_frame_bytes);
  if (rc == -E2BIG && json_object_get(msg, "result")) {
    /* A reply too large for one frame becomes an error the client can read. */
    json_t *e = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", json_object_get(msg, "id"), "error",
                          "code", SVC_MCPP_E_INTERNAL, "message", "response_too_large");
    rc = e ? svc_frame_encode(&c->out, e, c->env.max_out_frame_bytes) : -ENOMEM;
    json_decref(e);
  }
  if (rc != 0) {
    /* Output ceiling reached (the peer does not read) or ENOMEM: give up on the stream. */
    COUNT(st_internal);
    c->closing = true;
  }
  json_decref(msg);
}

static void send_result(svc_mcpp_conn *c, const json_t *id, json_t *result) {
  json_t *m = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "result",
                        result ? result : json_null());
  send_msg(c, m);
}

static void send_error(svc_mcpp_conn *c, const json_t *id, int code, const char *message) {
  json_t *m = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", "code",
                        code, "message", message);
  send_msg(c, m);
}

static void close_now(svc_mcpp_conn *c) {
  c->closing = true;
  detach_all(c);
}

/* ---- methods ---- */

static json_t *initialize_result(svc_mcpp_conn *c, const json_t *params) {
  const char *version = "2024-11-05";
  const json_t *pv = json_object_get(params, "protocolVersion");
  if (json_is_string(pv))
    for (size_t i = 0; i < sizeof k_versions / sizeof k_versions[0]; i++)
      if (strcmp(json_string_value(pv), k_versions[i]) == 0) version = k_versions[i];
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
  json_t *plist = json_pack("[s, s]", k_profiles[0], k_profiles[1]);
  json_t *r = json_pack(
      "{s:b, s:s, s:{s:s, s:s}, "
      "s:{s:{s:b}, s:O, s:{s:b, s:b, s:b, s:b, s:b, s:b}}, "
      "s:s, s:{s:s}, s:{s:b, s:s, s:O}, s:s, "
      "s:{s:I, s:I, s:f, s:f}}",
      "ok", 1, "protocolVersion", version, "serverInfo", "name", "peermcp", "version", PEERMCP_VERSION,
      "capabilities", "tools", "listChanged", 0, "mcpPlusPlusProfiles", plist, "experimental", "mcp++/mcp-idl", 0,
      "mcp++/cid-envelope", 0, "mcp++/ucan", 0, "mcp++/deontic-policy", 0, "mcp++/p2p-transport", 1,
      "mcp++/risk-scheduling", 0, "transport", SVC_MCPP_PROTOCOL, "server", "peer_id",
      c->env.peer_id ? c->env.peer_id : "", "profile_negotiation", "supports_profile_negotiation", 1, "mode",
      "optional_additive", "profiles", plist, "active_profile", active, "limits", "max_frame_bytes",
      (json_int_t)c->env.max_frame_bytes, "max_frames", (json_int_t)c->env.max_frames, "rate_capacity",
      c->env.rate_capacity, "rate_refill_per_sec", c->env.rate_refill_per_s);
  json_decref(plist);
  return r;
}

static bool tool_visible(const svc_auth *a, const mcp_tool_def *d) {
  if (!(d->flags & MCP_TOOL_REMOTE) || (d->flags & MCP_TOOL_HIDDEN)) return false;
  if (!a->a.local && a->a.scopes == 0) return false; /* an unknown peer sees nothing */
  if (!svc_auth_has(a, d->scopes)) return false;
  return strcmp(d->name, SVC_TASKQ_TOOL) == 0 || svc_auth_has(a, MCP_SCOPE_TOOL_CALL);
}

static int cmp_tool_name(const void *x, const void *y) {
  const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
  return strcmp(json_string_value(json_object_get(a, "name")), json_string_value(json_object_get(b, "name")));
}

static json_t *tools_list_result(svc_mcpp_conn *c) {
  size_t n = c->env.registry ? mcp_registry_count(c->env.registry) : 0, k = 0;
  json_t **v = calloc(n ? n : 1, sizeof *v);
  if (!v) return NULL;
  for (size_t i = 0; i < n; i++) {
    const mcp_tool *t = mcp_registry_at(c->env.registry, i);
    if (tool_visible(&c->auth, mcp_tool_def_of(t))) v[k++] = mcp_tool_to_json(t);
  }
  qsort(v, k, sizeof *v, cmp_tool_name);
  json_t *arr = json_array();
  for (size_t i = 0; i < k; i++) json_array_append_new(arr, v[i]);
  free(v);
  return json_pack("{s:o}", "tools", arr);
}

const json_t *svc_mcpp_rpc_message(const json_t *args) {
  if (json_is_object(args) && json_object_size(args) == 1) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)args, k, v) {
      if (json_is_object(v)) return v;
    }
  }
  return args;
}

static void tools_call(svc_mcpp_conn *c, const json_t *id, const json_t *params) {
  if (!json_is_object(params)) return send_error(c, id, SVC_MCPP_E_PARAMS, "invalid_params");
  const json_t *name = json_object_get(params, "name");
  json_t *args = json_object_get(params, "arguments");
  if (!json_is_string(name) || json_string_length(name) == 0 || (args && !json_is_null(args) && !json_is_object(args)))
    return send_error(c, id, SVC_MCPP_E_PARAMS, "invalid_params");
  if (json_is_null(args)) args = NULL;
  for (inflight *f = c->calls; f; f = f->next)
    if (json_equal(f->id, id)) return send_error(c, id, SVC_MCPP_E_INVALID_REQUEST, "duplicate_id");
  if (c->n_calls >= c->env.max_inflight) {
    COUNT(st_rate_limited);
    return send_error(c, id, SVC_MCPP_E_RATE, "too_many_requests");
  }
  const char *tool = json_string_value(name);
  bool rpc = strcmp(tool, SVC_TASKQ_TOOL) == 0;
  inflight *f = calloc(1, sizeof *f);
  if (!f) return send_error(c, id, SVC_MCPP_E_INTERNAL, "internal_error");
  svc_auth_copy(&f->auth, &c->auth);
  if (rpc) {
    /* The TaskQueue message carries its own token (§4.1): the nested call_tool op then runs
     * with the token's scopes too. */
    svc_auth_present_msg_token(&f->auth, c->env.policy, svc_mcpp_rpc_message(args));
  } else if (!svc_auth_has(&f->auth, MCP_SCOPE_TOOL_CALL)) {
    free(f);
    COUNT(st_unauthorized);
    return send_error(c, id, SVC_MCPP_E_UNAUTHORIZED, "unauthorized");
  }
  if (!c->env.call_start) {
    free(f);
    return send_error(c, id, SVC_MCPP_E_TOOL, "unknown_tool");
  }
  f->id = json_incref((json_t *)id);
  f->rpc = rpc;
  f->call_no = ++c->next_call;
  /* Linked before call_start, so the entry exists whatever the hook does. */
  f->next = c->calls;
  c->calls = f;
  c->n_calls++;
  json_t *a = args ? json_incref(args) : json_object();
  int rc = c->env.call_start(c->env.hooks_ud, c, f->call_no, tool, a, &f->auth.a,
                             rpc ? c->env.rpc_timeout_ms : c->env.call_timeout_ms, &f->handle);
  json_decref(a);
  if (rc < 0) {
    /* unlink */
    for (inflight **pp = &c->calls; *pp; pp = &(*pp)->next)
      if (*pp == f) {
        *pp = f->next;
        break;
      }
    c->n_calls--;
    json_t *fid = f->id;
    free(f);
    COUNT(st_internal);
    send_error(c, fid, SVC_MCPP_E_INTERNAL, rc == -ESHUTDOWN ? "shutting_down" : "internal_error");
    json_decref(fid);
  }
}

static void cancel_request(svc_mcpp_conn *c, const json_t *params) {
  const json_t *rid = json_object_get(params, "requestId");
  if (!rid) return;
  for (inflight *f = c->calls; f; f = f->next)
    if (json_equal(f->id, rid) && c->env.call_cancel && f->handle) c->env.call_cancel(c->env.hooks_ud, f->handle);
}

void svc_mcpp_call_done(svc_mcpp_conn *c, uint64_t call_no, mcp_dispatch_status st, const json_t *envelope) {
  inflight *f = NULL;
  for (inflight **pp = &c->calls; *pp; pp = &(*pp)->next)
    if ((*pp)->call_no == call_no) {
      f = *pp;
      *pp = f->next;
      c->n_calls--;
      break;
    }
  if (!f) return;
  if (!c->closing) {
    if (st == MCP_DISPATCH_UNKNOWN_TOOL) {
      send_error(c, f->id, SVC_MCPP_E_TOOL, "unknown_tool");
    } else if (st == MCP_DISPATCH_FORBIDDEN) {
      COUNT(st_unauthorized);
      send_error(c, f->id, SVC_MCPP_E_UNAUTHORIZED, "unauthorized");
    } else if (st == MCP_DISPATCH_SHUTTING_DOWN) {
      send_error(c, f->id, SVC_MCPP_E_INTERNAL, "shutting_down");
    } else if (f->rpc) {
      json_t *content;
      if (st == MCP_DISPATCH_OK && json_object_get(envelope, "result")) {
        content = json_incref(json_object_get(envelope, "result"));
      } else {
        const json_t *e = json_object_get(envelope, "error");
        content = json_pack("{s:b, s:s, s:s}", "ok", 0, "error",
                            st == MCP_DISPATCH_TIMEOUT ? "timeout"
                            : json_is_string(e)        ? json_string_value(e)
                                                       : "internal_error",
                            "peer_id", c->env.peer_id ? c->env.peer_id : "");
      }
      send_result(c, f->id, json_pack("{s:o}", "content", content));
    } else {
      send_result(c, f->id, envelope ? mcp_dispatch_call_result(envelope) : NULL);
    }
  }
  json_decref(f->id);
  free(f);
}

/* ---- one frame ---- */

static void handle_frame(svc_mcpp_conn *c, json_t *msg) {
  const json_t *id = json_object_get(msg, "id"); /* notifications have no "id" key */
  c->frames++;
  if (c->frames > c->env.max_frames || !svc_rate_take(c->rate, clock_mono_us())) {
    COUNT(st_rate_limited);
    if (id) send_error(c, id, SVC_MCPP_E_RATE, "rate_limited");
    close_now(c);
    return;
  }
  svc_auth_present_msg_token(&c->auth, c->env.policy, msg);
  const json_t *jv = json_object_get(msg, "jsonrpc");
  if (!json_is_string(jv) || strcmp(json_string_value(jv), "2.0") != 0) {
    if (id) {
      send_error(c, id, SVC_MCPP_E_INVALID_REQUEST, "invalid_jsonrpc");
      close_now(c);
    }
    return;
  }
  const json_t *mv = json_object_get(msg, "method");
  const char *method = json_is_string(mv) ? json_string_value(mv) : NULL;
  const json_t *params = json_object_get(msg, "params");
  if (!method) {
    if (id && !json_object_get(msg, "result") && !json_object_get(msg, "error"))
      send_error(c, id, SVC_MCPP_E_INVALID_REQUEST, "invalid_request");
    return; /* responses from the client are ignored */
  }
  if (!c->initialized) {
    if (!id) return; /* notifications (even initialize) do not initialise */
    if (strcmp(method, "initialize") != 0) {
      send_error(c, id, SVC_MCPP_E_INIT_REQUIRED, "init_required");
      close_now(c);
      return;
    }
  }
  if (strcmp(method, "initialize") == 0) {
    if (!id) return;
    if (json_is_object(params)) {
      const json_t *tok = json_object_get(params, "token");
      if (json_is_string(tok)) svc_auth_present_token(&c->auth, c->env.policy, json_string_value(tok));
    }
    if (!c->initialized) COUNT(st_initialized);
    c->initialized = true;
    send_result(c, id, initialize_result(c, json_is_object(params) ? params : NULL));
    return;
  }
  if (!id) {
    if (strcmp(method, "notifications/cancelled") == 0) cancel_request(c, params);
    return; /* other notifications: nothing to say */
  }
  if (strcmp(method, "ping") == 0) {
    send_result(c, id, json_object());
  } else if (strcmp(method, "tools/list") == 0 || strcmp(method, "tools.list") == 0) {
    send_result(c, id, tools_list_result(c));
  } else if (strcmp(method, "tools/call") == 0 || strcmp(method, "tools.call") == 0) {
    tools_call(c, id, params);
  } else {
    send_error(c, id, SVC_MCPP_E_METHOD, "method_not_found");
  }
}

int svc_mcpp_feed(svc_mcpp_conn *c, const uint8_t *data, size_t len) {
  while (len > 0 || c->dec.ready) {
    if (c->closing || c->eof) return -EPIPE;
    size_t used = 0;
    svc_frame_status st = svc_frame_dec_feed(&c->dec, data, len, &used);
    data += used;
    len -= used;
    if (st == SVC_FRAME_READY) {
      json_t *msg = svc_frame_dec_take(&c->dec);
      handle_frame(c, msg);
      json_decref(msg);
      continue;
    }
    if (st == SVC_FRAME_NEED_MORE) break;
    COUNT(st_frame_errors);
    json_t *e = svc_frame_error_reply(st);
    send_msg(c, e);
    close_now(c);
    return -EPIPE;
  }
  return c->closing ? -EPIPE : 0;
}

void svc_mcpp_eof(svc_mcpp_conn *c) { c->eof = true; }
