/* client.c — /mcp+p2p/1.0.0 client: one stream, many pipelined requests, retries for the
 * idempotent ones (see client.h). */
#include "service/client.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/frame.h"
#include "service/mcpp.h"
#include "taskq/op.h"
#include "taskq/rpc_tool.h"
#include "util/buf.h"
#include "util/log.h"

enum { CS_NONE = 0, CS_OPENING, CS_INIT, CS_READY };

typedef struct creq {
  struct creq *next;
  uint64_t id; /* of the current attempt (0 = not sent) */
  char *method;
  json_t *params;
  bool idempotent, rpc;
  unsigned failures;
  int cause; /* the last failure that said something (a back-off's -EAGAIN does not) */
  uint32_t timeout_ms;
  int64_t deadline; /* loop ms, current attempt */
  int64_t retry_at; /* loop ms; 0 = now */
  svc_client_cb cb;
  void *ud;
} creq;

struct svc_client {
  uv_loop_t *loop;
  p2p_host *host;
  char *target;
  svc_client_opts o;
  char *token;
  char *client_name;
  p2p_stream *s;
  int state;
  uint64_t init_id;
  svc_frame_dec dec;
  buf wbuf;
  bool write_blocked;
  creq *reqs;
  size_t n_reqs;
  uint64_t next_id;
  json_t *server_info;
  uv_timer_t timer;
  int refs;
  bool closed;
  int64_t next_open_at;
  unsigned open_failures;
  int open_err; /* a synchronous open failure, reported at the next tick */
  uint64_t frames_on_stream; /* frames we sent on the current stream (initialize included) */
  uint64_t max_frames;       /* the server's limits.max_frames; 0 = no limit */
  bool rotating;             /* the stream is used up: finish it, then open a fresh one */
  char via[1024];            /* the remote address of the connection the last stream used */
  uint64_t n_streams, n_retries;
};

static void client_unref(svc_client *c) {
  if (--c->refs > 0) return;
  svc_frame_dec_free(&c->dec);
  buf_free(&c->wbuf);
  json_decref(c->server_info);
  free(c->target);
  free(c->token);
  free(c->client_name);
  free(c);
}

static int64_t now_ms(svc_client *c) { return (int64_t)uv_now(c->loop); }

static uint32_t backoff(svc_client *c, unsigned n) {
  uint64_t d = (uint64_t)c->o.backoff_ms << (n > 10 ? 10 : n);
  if (d > 5000) d = 5000;
  return (uint32_t)d + randombytes_uniform((uint32_t)(c->o.backoff_ms ? c->o.backoff_ms : 1));
}

static void req_free(creq *r) {
  free(r->method);
  json_decref(r->params);
  free(r);
}

static void req_unlink(svc_client *c, creq *r) {
  for (creq **pp = &c->reqs; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      c->n_reqs--;
      return;
    }
}

/* Completes a request (unlinked first, so the callback may queue more). */
static void req_finish(svc_client *c, creq *r, int err, json_t *result, json_t *error) {
  req_unlink(c, r);
  c->refs++;
  if (r->cb) r->cb(r->ud, err, result, error);
  req_free(r);
  client_unref(c);
}

/* ---------- writing ---------- */

static void flush(svc_client *c) {
  while (c->s && buf_len(&c->wbuf) && !c->write_blocked) {
    size_t n = buf_len(&c->wbuf) < 65536 ? buf_len(&c->wbuf) : 65536;
    int rc = p2p_stream_write(c->s, buf_ptr(&c->wbuf), n);
    if (rc == -ENOBUFS) {
      c->write_blocked = true;
      break;
    }
    if (rc < 0) {
      buf_reset(&c->wbuf);
      break;
    }
    buf_consume(&c->wbuf, n);
    if (rc == 1) c->write_blocked = true;
  }
}

static int send_frame(svc_client *c, uint64_t id, const char *method, json_t *params) {
  json_t *m = json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", (json_int_t)id, "method", method);
  if (!m) return -ENOMEM;
  if (params) json_object_set(m, "params", params);
  int rc = svc_frame_encode(&c->wbuf, m, 0);
  json_decref(m);
  if (rc == 0) flush(c);
  return rc;
}

static void send_ready(svc_client *c) {
  int64_t now = now_ms(c);
  size_t sent = 0;
  for (creq *r = c->reqs; r; r = r->next)
    if (r->id) sent++;
  for (creq *r = c->reqs; r && sent < c->o.max_inflight; r = r->next) {
    if (r->id || r->retry_at > now) continue;
    if (c->max_frames && c->frames_on_stream >= c->max_frames) {
      c->rotating = true; /* the server would refuse more frames on this stream */
      break;
    }
    sent++;
    r->id = c->next_id++;
    c->frames_on_stream++;
    if (send_frame(c, r->id, r->method, r->params) != 0) r->id = 0;
  }
  if (c->rotating && sent == 0 && c->s) p2p_stream_close_write(c->s); /* ends the session */
}

/* ---------- stream ---------- */

static void stream_open(svc_client *c);

/* The stream is gone (or never came): every request counts one failure. */
static void stream_failed(svc_client *c, int err) {
  c->s = NULL;
  c->state = CS_NONE;
  c->write_blocked = false;
  buf_reset(&c->wbuf);
  svc_frame_dec_free(&c->dec);
  svc_frame_dec_init(&c->dec, c->o.max_frame_bytes);
  c->open_failures++;
  c->next_open_at = now_ms(c) + backoff(c, c->open_failures - 1);
  if (c->closed) return;
  creq *r = c->reqs;
  while (r) {
    creq *next = r->next;
    r->id = 0;
    r->failures++;
    if (err && err != -EAGAIN) r->cause = err;
    if (r->idempotent && r->failures <= c->o.retries) {
      r->retry_at = now_ms(c) + backoff(c, r->failures - 1);
      r->deadline = r->retry_at + r->timeout_ms;
      c->n_retries++;
    } else {
      /* a retry that met the host's dial back-off reports why the first dial failed */
      req_finish(c, r, err == -EAGAIN && r->cause ? r->cause : err ? err : -ECONNRESET, NULL, NULL);
    }
    r = next;
  }
}

static void handle_reply(svc_client *c, json_t *m) {
  const json_t *idv = json_object_get(m, "id");
  if (!json_is_integer(idv)) return;
  uint64_t id = (uint64_t)json_integer_value(idv);
  json_t *result = json_object_get(m, "result");
  json_t *error = json_object_get(m, "error");
  if (c->state == CS_INIT && id == c->init_id) {
    if (!result) {
      log_write(LOG_WARNING, "p2p initialize refused", "{s:s, s:O?}", "target", c->target, "error", error);
      /* the server closes the stream; requests fail or retry then */
      return;
    }
    json_decref(c->server_info);
    c->server_info = json_incref(result);
    c->state = CS_READY;
    c->open_failures = 0;
    const json_t *mf = json_object_get(json_object_get(result, "limits"), "max_frames");
    c->max_frames = json_is_integer(mf) && json_integer_value(mf) > 0 ? (uint64_t)json_integer_value(mf) : 0;
    send_ready(c);
    return;
  }
  for (creq *r = c->reqs; r; r = r->next) {
    if (r->id != id) continue;
    const json_t *code = json_object_get(error, "code");
    if (!result && json_is_integer(code) && json_integer_value(code) == MCP_RPC_MCPP_RATE_LIMITED && r->idempotent &&
        r->failures < c->o.retries) {
      /* rate-limited: the server closes this stream; try again later on a new one */
      r->failures++;
      r->id = 0;
      r->retry_at = now_ms(c) + backoff(c, r->failures);
      r->deadline = r->retry_at + r->timeout_ms;
      c->n_retries++;
      return;
    }
    if (result && r->rpc) {
      json_t *content = json_object_get(result, "content");
      req_finish(c, r, 0, content ? content : result, NULL);
    } else {
      req_finish(c, r, 0, result, result ? NULL : (error ? error : json_null()));
    }
    send_ready(c); /* a slot is free */
    return;
  }
}

static void on_data(p2p_stream *s, const uint8_t *data, size_t len, void *ud) {
  svc_client *c = ud;
  (void)s;
  c->refs++;
  while (!c->closed && (len > 0 || c->dec.ready)) {
    size_t used = 0;
    svc_frame_status st = svc_frame_dec_feed(&c->dec, data, len, &used);
    data += used;
    len -= used;
    if (st == SVC_FRAME_READY) {
      json_t *m = svc_frame_dec_take(&c->dec);
      handle_reply(c, m);
      json_decref(m);
      continue;
    }
    if (st < 0) {
      log_write(LOG_WARNING, "p2p reply frame rejected", "{s:s, s:s}", "target", c->target, "error",
                svc_frame_status_str(st));
      p2p_stream_reset(c->s); /* on_close fails / retries the requests */
    }
    break;
  }
  client_unref(c);
}

static void on_eof(p2p_stream *s, void *ud) {
  svc_client *c = ud;
  (void)s;
  p2p_stream_close_write(s); /* the server is done with us: finish the stream */
  (void)c;
}

static void on_writable(p2p_stream *s, void *ud) {
  svc_client *c = ud;
  (void)s;
  c->write_blocked = false;
  flush(c);
}

static void on_close(p2p_stream *s, int err, void *ud) {
  svc_client *c = ud;
  (void)s;
  bool in_flight = false;
  for (creq *r = c->reqs; r; r = r->next) in_flight |= r->id != 0;
  if (c->rotating && !in_flight && !c->closed) {
    /* a used-up stream ended as planned: no request failed; the tick opens the next one */
    c->s = NULL;
    c->state = CS_NONE;
    c->rotating = false;
    c->write_blocked = false;
    buf_reset(&c->wbuf);
    svc_frame_dec_free(&c->dec);
    svc_frame_dec_init(&c->dec, c->o.max_frame_bytes);
    client_unref(c);
    return;
  }
  c->rotating = false;
  stream_failed(c, err ? err : -ECONNRESET);
  client_unref(c); /* the stream's reference */
}

static const p2p_stream_callbacks client_cbs = {on_data, on_eof, on_writable, on_close};

static void on_open(p2p_stream *s, int err, void *ud) {
  svc_client *c = ud;
  if (c->closed) {
    if (s) {
      p2p_stream_set_callbacks(s, &client_cbs, c);
      c->s = s;
      p2p_stream_reset(s); /* on_close drops the reference */
    } else {
      client_unref(c);
    }
    return;
  }
  if (err < 0 || !s) {
    log_write(LOG_INFO, "p2p stream open failed", "{s:s, s:i}", "target", c->target, "err", err);
    stream_failed(c, err < 0 ? err : -EIO);
    client_unref(c);
    return;
  }
  c->s = s;
  c->state = CS_INIT;
  c->n_streams++;
  snprintf(c->via, sizeof c->via, "%s", p2p_stream_remote_addr(s));
  c->frames_on_stream = 1; /* initialize */
  c->rotating = false;
  p2p_stream_set_callbacks(s, &client_cbs, c);
  c->init_id = c->next_id++;
  json_t *params = json_pack("{s:{s:s, s:s}, s:[s], s:{}}", "clientInfo", "name", c->client_name, "version",
                             PEERMCP_VERSION, "profiles", "mcp++/p2p-transport", "capabilities");
  if (params && c->token) json_object_set_new(params, "token", json_string(c->token));
  if (send_frame(c, c->init_id, "initialize", params) != 0) p2p_stream_reset(s);
  json_decref(params);
}

static void stream_open(svc_client *c) {
  c->state = CS_OPENING;
  c->refs++;
  int rc = p2p_host_open_stream(c->host, c->target, SVC_MCPP_PROTOCOL, on_open, c);
  if (rc < 0) {
    /* Reported from the timer, so no callback runs inside the call that queued a request. */
    c->refs--;
    c->state = CS_NONE;
    c->open_err = rc;
  }
}

/* ---------- timer: deadlines, retries, (re)opening ---------- */

static void pump(svc_client *c) {
  if (c->closed || !c->reqs || c->open_err) return;
  if (c->state == CS_NONE && now_ms(c) >= c->next_open_at) {
    for (creq *r = c->reqs; r; r = r->next)
      if (r->retry_at <= now_ms(c)) {
        stream_open(c);
        break;
      }
  } else if (c->state == CS_READY) {
    send_ready(c);
  }
}

static void on_tick(uv_timer_t *t) {
  svc_client *c = t->data;
  c->refs++;
  if (c->open_err) {
    int e = c->open_err;
    c->open_err = 0;
    stream_failed(c, e);
  }
  int64_t now = now_ms(c);
  creq *r = c->reqs;
  while (r && !c->closed) {
    creq *next = r->next;
    if (now >= r->deadline) {
      r->failures++;
      if (r->idempotent && r->failures <= c->o.retries) {
        r->id = 0; /* a late reply to the old attempt is ignored */
        r->retry_at = now + backoff(c, r->failures - 1);
        r->deadline = r->retry_at + r->timeout_ms;
        c->n_retries++;
      } else {
        req_finish(c, r, -ETIMEDOUT, NULL, NULL);
      }
    }
    r = next;
  }
  pump(c);
  client_unref(c);
}

/* ---------- public ---------- */

int svc_client_new(uv_loop_t *loop, p2p_host *host, const char *target, const svc_client_opts *o,
                   svc_client **out) {
  if (!loop || !host || !target || !*target) return -EINVAL;
  /* A token goes only to a peer that proves who it is: an address without /p2p/<id> would
   * hand it to whoever listens there. */
  if (o && o->token && *o->token && target[0] == '/' && !strstr(target, "/p2p/")) return -EDESTADDRREQ;
  svc_client *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->loop = loop;
  c->host = host;
  if (o) c->o = *o;
  if (!c->o.request_timeout_ms) c->o.request_timeout_ms = 30000;
  if (c->o.no_retries) c->o.retries = 0;
  else if (!o || (!o->retries && !o->no_retries)) c->o.retries = 2;
  if (!c->o.backoff_ms) c->o.backoff_ms = 50;
  if (!c->o.max_frame_bytes) c->o.max_frame_bytes = 16u * 1024 * 1024;
  if (!c->o.max_inflight) c->o.max_inflight = 32;
  c->target = strdup(target);
  c->token = c->o.token && *c->o.token ? strdup(c->o.token) : NULL;
  c->client_name = strdup(c->o.client_name ? c->o.client_name : "peermcp");
  c->o.token = c->token;
  c->next_id = 1;
  svc_frame_dec_init(&c->dec, c->o.max_frame_bytes);
  buf_init(&c->wbuf, 64u * 1024 * 1024);
  if (!c->target || !c->client_name || (c->o.token == NULL && o && o->token && *o->token) ||
      uv_timer_init(loop, &c->timer) != 0) {
    svc_frame_dec_free(&c->dec);
    buf_free(&c->wbuf);
    free(c->target);
    free(c->token);
    free(c->client_name);
    free(c);
    return -ENOMEM;
  }
  c->timer.data = c;
  c->refs = 2; /* the user, the timer handle */
  uv_timer_start(&c->timer, on_tick, 20, 20);
  *out = c;
  return 0;
}

static int enqueue(svc_client *c, const char *method, json_t *params, bool idempotent, bool rpc, uint32_t timeout_ms,
                   svc_client_cb cb, void *ud) {
  if (c->closed) return -ECANCELED;
  creq *r = calloc(1, sizeof *r);
  if (!r) return -ENOMEM;
  r->method = strdup(method);
  r->params = params ? json_deep_copy(params) : NULL;
  if (!r->method || (params && !r->params)) {
    req_free(r);
    return -ENOMEM;
  }
  r->idempotent = idempotent;
  r->rpc = rpc;
  r->timeout_ms = timeout_ms ? timeout_ms : c->o.request_timeout_ms;
  r->deadline = now_ms(c) + r->timeout_ms;
  r->cb = cb;
  r->ud = ud;
  /* append (FIFO send order) */
  creq **pp = &c->reqs;
  while (*pp) pp = &(*pp)->next;
  *pp = r;
  c->n_reqs++;
  if (c->state == CS_READY) send_ready(c);
  else if (c->state == CS_NONE && !c->open_err && now_ms(c) >= c->next_open_at) stream_open(c);
  return 0;
}

int svc_client_request(svc_client *c, const char *method, json_t *params, bool idempotent, uint32_t timeout_ms,
                       svc_client_cb cb, void *ud) {
  return enqueue(c, method, params, idempotent, false, timeout_ms, cb, ud);
}

int svc_client_rpc(svc_client *c, json_t *msg, uint32_t timeout_ms, svc_client_cb cb, void *ud) {
  if (!json_is_object(msg)) return -EINVAL;
  json_t *m = json_deep_copy(msg);
  if (!m) return -ENOMEM;
  if (c->token && !json_object_get(m, "token")) json_object_set_new(m, "token", json_string(c->token));
  const json_t *opv = json_object_get(m, "op");
  taskq_op op = taskq_op_parse(json_is_string(opv) ? json_string_value(opv) : NULL);
  bool idem = taskq_op_idempotent(op) || (op == TASKQ_OP_SUBMIT && json_is_string(json_object_get(m, "idempotency_key")));
  json_t *params = json_pack("{s:s, s:o}", "name", TASKQ_RPC_TOOL, "arguments", m);
  if (!params) return -ENOMEM;
  int rc = enqueue(c, "tools/call", params, idem, true, timeout_ms, cb, ud);
  json_decref(params);
  return rc;
}

int svc_client_call_tool(svc_client *c, const char *tool, json_t *args, bool idempotent, uint32_t timeout_ms,
                         svc_client_cb cb, void *ud) {
  json_t *params = json_pack("{s:s, s:o}", "name", tool, "arguments", args ? json_incref(args) : json_object());
  if (!params) return -ENOMEM;
  int rc = enqueue(c, "tools/call", params, idempotent, false, timeout_ms, cb, ud);
  json_decref(params);
  return rc;
}

int svc_client_cancel(svc_client *c, svc_client_cb cb, void *ud) {
  creq *r = c->reqs;
  while (r && !(r->cb == cb && r->ud == ud)) r = r->next;
  if (!r) return -ENOENT;
  if (r->id && c->state == CS_READY && c->s && !c->closed) {
    /* tell the server; a notification takes no request slot but counts as a frame */
    json_t *m = json_pack("{s:s, s:s, s:{s:I, s:s}}", "jsonrpc", "2.0", "method", "notifications/cancelled", "params",
                          "requestId", (json_int_t)r->id, "reason", "cancelled by the caller");
    if (m && svc_frame_encode(&c->wbuf, m, 0) == 0) {
      c->frames_on_stream++;
      flush(c);
    }
    json_decref(m);
  }
  bool was_sent = r->id != 0;
  req_unlink(c, r);
  req_free(r);
  if (was_sent && c->state == CS_READY) send_ready(c); /* its slot is free */
  return 0;
}

const char *svc_client_via(const svc_client *c) { return c->via; }

const json_t *svc_client_server_info(const svc_client *c) { return c->server_info; }
size_t svc_client_pending(const svc_client *c) { return c->n_reqs; }
void svc_client_counters(const svc_client *c, uint64_t *streams_opened, uint64_t *retries) {
  if (streams_opened) *streams_opened = c->n_streams;
  if (retries) *retries = c->n_retries;
}

static void timer_closed(uv_handle_t *h) { client_unref(h->data); }

void svc_client_close(svc_client *c) {
  if (!c || c->closed) return;
  c->closed = true;
  c->refs++;
  while (c->reqs) req_finish(c, c->reqs, -ECANCELED, NULL, NULL);
  if (c->s) {
    p2p_stream *s = c->s;
    c->s = NULL;
    p2p_stream_reset(s); /* its on_close drops the stream's reference */
  }
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, timer_closed);
  c->refs--;       /* the extra one above; the timer handle's reference still holds c */
  client_unref(c); /* the user's */
}
