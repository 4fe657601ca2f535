/* client.c — /mcp+p2p/1.0.0 client: one stream at a time (plus one draining while it is
 * replaced), many pipelined requests, retries for the ones that may be sent again, pacing by
 * the server's advertised limits (see client.h). */
#include "service/client.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/frame.h"
#include "service/mcpp.h"
#include "taskq/op.h"
#include "taskq/rpc_tool.h"
#include "util/buf.h"
#include "util/jparse.h"
#include "util/jwrite.h"
#include "util/log.h"
#include "util/trace.h"

/* How often one request may be refused before it ran (-32010 rate_limited /
 * too_many_requests) and sent again. */
#define MAX_REFUSALS 8

/* A small request's params text lives in its record (no allocation of its own), and up to
 * CREQ_SPARE finished records are kept for the next requests: with N in flight a pipelined
 * caller makes and ends N a batch, more than glibc's thread cache keeps per size (7), so each
 * malloc/free pair went through the arena (~150 instructions). */
#define CREQ_INLINE 160
#define CREQ_SPARE 64u

enum { CS_OPENING = 1, CS_INIT, CS_READY, CS_DRAINING };

typedef struct cstream cstream;

typedef struct creq {
  struct creq *next;
  uint64_t id;  /* of the current attempt (0 = not on the wire) */
  cstream *on;  /* the stream that attempt went out on (NULL = not on the wire) */
  const char *method; /* static, or owned when method_owned */
  json_t *params;
  char *ptext; /* params as JSON text (the text fast path), instead of params */
  size_t ptext_len;
  bool idempotent, rpc, method_owned;
  unsigned failures;  /* attempts lost to a broken stream or a timeout */
  unsigned refusals;  /* attempts refused before they ran */
  int cause; /* the last failure that said something (a back-off's -EAGAIN does not) */
  uint32_t timeout_ms;
  int64_t deadline; /* loop ms, current attempt */
  int64_t retry_at; /* loop ms; 0 = now */
  svc_client_cb cb;
  svc_client_text_cb tcb; /* the text fast path: the reply as spans of the frame, no tree */
  void *ud;
  char inl[CREQ_INLINE]; /* ptext when it fits */
} creq;

/* One /mcp+p2p/1.0.0 stream of the client. */
struct cstream {
  svc_client *c;
  p2p_stream *s; /* NULL while opening */
  int state;
  uint64_t init_id;
  svc_frame_dec dec;
  buf wbuf;
  bool write_blocked;
  uint64_t frames;   /* frames we sent on it (initialize and cancellations included) */
  size_t inflight;   /* requests sent on it and not answered */
  cstream *next;     /* in the client's draining list */
  int in_data;       /* inside on_data: a text callback reads the frame from dec */
  bool free_pending; /* closed meanwhile: on_data frees it when it returns */
  bool init_refused; /* its initialize was answered rate_limited: nothing ran */
  bool abandoned;    /* given up before it was ready: no longer the client's current stream */
  int64_t state_at;  /* loop ms it entered CS_OPENING / CS_INIT */
  int64_t ready_by;  /* loop ms: still opening / initializing then, it is given up */
};

struct svc_client {
  uv_loop_t *loop;
  p2p_host *host;
  char *target;
  svc_client_opts o;
  char *token;
  char *client_name;
  cstream *cur;      /* where new requests go (opening, initialising or ready), or NULL */
  cstream *draining; /* used-up streams finishing their requests (rarely more than one) */
  creq *reqs, *reqs_tail;
  size_t n_reqs;
  size_t n_unsent; /* requests in reqs with no id (not on the wire): send_ready's walk is for them */
  uint64_t next_id;
  json_t *server_info;
  uv_timer_t timer;
  int refs;
  int in_reply; /* inside on_data: requests queued meanwhile are written once it returns */
  bool closed;
  bool pace_blocked; /* send_ready stopped for the bucket: the timer must come, even if the token
                        is there by the time arm looks (pump clears it) */
  int64_t next_open_at;
  unsigned open_failures;
  int open_err; /* a synchronous open failure, reported from the timer */
  unsigned unready_streak; /* streams given up in a row (none ready since): the bound doubles */
  int unready_state;       /* the state the last one was given up in (0 once one is ready) */
  uint64_t max_frames; /* the server's limits.max_frames; 0 = no limit */
  /* the server's token bucket, mirrored (limits.rate_capacity / rate_refill_per_sec): frames
   * wait here rather than be refused; rate 0 = no pacing */
  double tokens, rate_cap, rate;
  int64_t tokens_at_us;
  char via[1024]; /* the remote address of the connection the last stream used */
  uint64_t n_streams, n_retries, n_refused, n_paced, n_abandoned;
  jwrite jw; /* scratch for request frames (svc_frame_encode_request), kept between them */
  int64_t armed_at; /* loop ms the timer is set for; INT64_MAX = stopped */
  creq *spare;      /* finished request records for reuse (linked by next) */
  unsigned n_spare;
};

/* Under AddressSanitizer a spare record is poisoned but for its link, so a use of a request
 * after it ended still shows while the record waits for reuse (and the ASan tests run the reuse
 * path release builds take). */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
static void spare_poison(creq *r) {
  ASAN_POISON_MEMORY_REGION((char *)r + sizeof r->next, sizeof *r - sizeof r->next);
}
static void spare_unpoison(creq *r) { ASAN_UNPOISON_MEMORY_REGION(r, sizeof *r); }
#else
static inline void spare_poison(creq *r) { (void)r; }
static inline void spare_unpoison(creq *r) { (void)r; }
#endif

/* A request record, uninitialised (the caller assigns all of it). */
static creq *req_alloc(svc_client *c) {
  creq *r = c->spare;
  if (!r) return malloc(sizeof *r);
  c->spare = r->next;
  c->n_spare--;
  spare_unpoison(r);
  return r;
}

static void client_unref(svc_client *c) {
  if (--c->refs > 0) return;
  while (c->spare) {
    creq *r = c->spare;
    c->spare = r->next;
    spare_unpoison(r);
    free(r);
  }
  json_decref(c->server_info);
  jwrite_free(&c->jw);
  free(c->target);
  free(c->token);
  free(c->client_name);
  free(c);
}

static int64_t now_ms(svc_client *c) { return (int64_t)uv_now(c->loop); }
static int64_t now_us(void) { return (int64_t)(uv_hrtime() / 1000); }

static uint32_t backoff(svc_client *c, unsigned n) {
  uint64_t d = (uint64_t)c->o.backoff_ms << (n > 10 ? 10 : n);
  if (d > 5000) d = 5000;
  return (uint32_t)d + randombytes_uniform((uint32_t)(c->o.backoff_ms ? c->o.backoff_ms : 1));
}

static void req_free(svc_client *c, creq *r) {
  if (r->method_owned) free((char *)r->method);
  if (r->ptext != r->inl) free(r->ptext);
  json_decref(r->params);
  if (c->n_spare >= CREQ_SPARE) {
    free(r);
    return;
  }
  r->next = c->spare;
  c->spare = r;
  c->n_spare++;
  spare_poison(r);
}

static void req_unlink(svc_client *c, creq *r) {
  for (creq **pp = &c->reqs; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      if (c->reqs_tail == r) c->reqs_tail = pp == &c->reqs ? NULL : (creq *)((char *)pp - offsetof(creq, next));
      c->n_reqs--;
      if (!r->id) {
        assert(c->n_unsent > 0);
        c->n_unsent--;
      }
      return;
    }
}

/* The attempt on the wire is over (answered, lost or withdrawn). */
static void req_off_wire(svc_client *c, creq *r) {
  if (r->on) {
    assert(r->on->inflight > 0);
    r->on->inflight--;
  }
  r->on = NULL;
  if (r->id) c->n_unsent++; /* still listed: unsent again (req_unlink counts it out) */
  r->id = 0;
}

/* Whether a string value anywhere in v holds a NUL. */
static bool tree_has_nul(const json_t *v) {
  if (json_is_string(v)) return memchr(json_string_value(v), 0, json_string_length(v)) != NULL;
  if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++)
      if (tree_has_nul(json_array_get(v, i))) return true;
    return false;
  }
  if (json_is_object(v)) {
    const char *k;
    const json_t *x;
    json_object_foreach((json_t *)v, k, x) if (tree_has_nul(x)) return true;
  }
  return false;
}

/* Completes a request (unlinked first, so the callback may queue more). A text-path request
 * gets result / error written back as text (a frame that took the tree path: rare). */
static void req_finish(svc_client *c, creq *r, int err, json_t *result, json_t *error) {
  req_off_wire(c, r);
  req_unlink(c, r);
  c->refs++;
  if (r->cb) r->cb(r->ud, err, result, error);
  if (r->tcb) {
    if (err < 0) {
      r->tcb(r->ud, err, NULL);
    } else {
      char *rt = result ? jwrite_dumps(result, JWRITE_ASCII) : NULL, *et = error ? jwrite_dumps(error, JWRITE_ASCII) : NULL;
      if ((result && !rt) || (error && !et)) {
        r->tcb(r->ud, -ENOMEM, NULL);
      } else {
        svc_client_reply v = {rt, rt ? strlen(rt) : 0, et, et ? strlen(et) : 0,
                              tree_has_nul(result) || tree_has_nul(error), SVC_CLIENT_IS_ERROR_UNKNOWN};
        r->tcb(r->ud, 0, &v);
      }
      free(rt);
      free(et);
    }
  }
  req_free(c, r);
  client_unref(c);
}

/* Completes a text-path request with the reply's spans. */
static void req_finish_text(svc_client *c, creq *r, const svc_client_reply *v) {
  req_off_wire(c, r);
  req_unlink(c, r);
  c->refs++;
  r->tcb(r->ud, 0, v);
  req_free(c, r);
  client_unref(c);
}

/* Another attempt later (not before `at`), on whatever stream is current then. */
static void req_again(svc_client *c, creq *r, int64_t at) {
  req_off_wire(c, r);
  r->retry_at = at;
  r->deadline = at + r->timeout_ms;
  c->n_retries++;
}

static void arm(svc_client *c);

/* ---------- pacing (the server's token bucket) ---------- */

static void tokens_refill(svc_client *c) {
  if (!(c->rate > 0)) return;
  int64_t t = now_us();
  if (t > c->tokens_at_us) {
    c->tokens += (double)(t - c->tokens_at_us) / 1e6 * c->rate;
    if (c->tokens > c->rate_cap) c->tokens = c->rate_cap;
    c->tokens_at_us = t;
  }
}

/* Takes a frame's token; false when the frame must wait. */
static bool tokens_take(svc_client *c) {
  if (!(c->rate > 0)) return true;
  tokens_refill(c);
  if (c->tokens < 1.0) return false;
  c->tokens -= 1.0;
  return true;
}

/* ms until one token is there (0 when it is). */
static int64_t tokens_wait_ms(svc_client *c) {
  if (!(c->rate > 0)) return 0;
  tokens_refill(c);
  if (c->tokens >= 1.0) return 0;
  return (int64_t)((1.0 - c->tokens) / c->rate * 1000.0) + 1;
}

/* ---------- streams ---------- */

static const p2p_stream_callbacks client_cbs;

static void cs_free(cstream *cs) {
  svc_frame_dec_free(&cs->dec);
  buf_free(&cs->wbuf);
  free(cs);
}

static void cs_flush(cstream *cs) {
  while (cs->s && buf_len(&cs->wbuf) && !cs->write_blocked) {
    size_t n = buf_len(&cs->wbuf) < 65536 ? buf_len(&cs->wbuf) : 65536;
    int rc = p2p_stream_write(cs->s, buf_ptr(&cs->wbuf), n);
    if (rc == -ENOBUFS) {
      cs->write_blocked = true;
      break;
    }
    if (rc < 0) {
      buf_reset(&cs->wbuf);
      break;
    }
    buf_consume(&cs->wbuf, n);
    if (rc == 1) cs->write_blocked = true;
  }
}

/* Appends a request frame (the caller flushes). */
static int cs_frame(cstream *cs, uint64_t id, const char *method, json_t *params) {
  /* straight to text: no envelope tree per request */
  int rc = svc_frame_encode_request(&cs->wbuf, &cs->c->jw, id, method, params, 0);
  if (rc == 0) cs->frames++;
  return rc;
}

static int cs_frame_req(cstream *cs, const creq *r) {
  if (!r->ptext) return cs_frame(cs, r->id, r->method, r->params);
  int rc = svc_frame_encode_request_text(&cs->wbuf, &cs->c->jw, r->id, r->method, r->ptext, r->ptext_len, 0);
  if (rc == 0) cs->frames++;
  return rc;
}

/* The stream may carry one more frame under the server's cap. */
static bool cs_has_room(const svc_client *c, const cstream *cs) { return !c->max_frames || cs->frames < c->max_frames; }

/* A used-up stream: no new requests; it ends once its requests are answered, while a fresh
 * stream takes the new ones at once. */
static void cs_retire(svc_client *c, cstream *cs) {
  assert(cs == c->cur);
  c->cur = NULL;
  cs->state = CS_DRAINING;
  cs->next = c->draining;
  c->draining = cs;
  c->next_open_at = 0;
  if (cs->inflight == 0 && cs->s) p2p_stream_close_write(cs->s);
}

static void cs_unlink(svc_client *c, cstream *cs) {
  if (c->cur == cs) c->cur = NULL;
  for (cstream **pp = &c->draining; *pp; pp = &(*pp)->next)
    if (*pp == cs) {
      *pp = cs->next;
      break;
    }
}

static void send_ready(svc_client *c) {
  cstream *cs = c->cur;
  if (!cs || cs->state != CS_READY || c->closed) return;
  int64_t now = now_ms(c);
  /* Only unsent requests are looked at: none, or just the last one queued (a pipelined caller
   * adding one as another is answered), or a walk from the first. */
  creq *from = !c->n_unsent ? NULL : c->n_unsent == 1 && c->reqs_tail && !c->reqs_tail->id ? c->reqs_tail : c->reqs;
  for (creq *r = from; r && cs->inflight < c->o.max_inflight; r = r->next) {
    if (r->id || r->retry_at > now) continue;
    if (!cs_has_room(c, cs)) {
      /* the server would refuse more frames on this stream: a fresh one takes over */
      cs_retire(c, cs);
      break;
    }
    if (!tokens_take(c)) {
      c->n_paced++;
      c->pace_blocked = true;
      break; /* the timer sends it when the bucket has a token again */
    }
    r->id = c->next_id++;
    if (cs_frame_req(cs, r) != 0) {
      r->id = 0;
      continue;
    }
    c->n_unsent--;
    r->on = cs;
    cs->inflight++;
  }
  /* Requests made while answers are read (a caller that sends the next one from its callback)
   * leave together when on_data returns: one stream write for the batch, not one per request. */
  if (!c->in_reply) cs_flush(cs);
}

/* What on_data's callbacks queued on any of the client's streams. */
static void flush_queued(svc_client *c) {
  if (c->cur && buf_len(&c->cur->wbuf)) cs_flush(c->cur);
  for (cstream *cs = c->draining; cs; cs = cs->next)
    if (buf_len(&cs->wbuf)) cs_flush(cs);
}

/* Every request that went out on cs and got no answer: sent again when it may be, else failed.
 * clean: the stream ended by an orderly close (the server answers every request it read before
 * it closes), so an unanswered request was never read. */
static void cs_lost(svc_client *c, cstream *cs, int err) {
  creq *r = c->reqs;
  while (r && !c->closed) {
    creq *next = r->next;
    if (r->on == cs) {
      r->failures++;
      if (err && err != -EAGAIN) r->cause = err;
      if (r->idempotent && r->failures <= c->o.retries) req_again(c, r, now_ms(c) + backoff(c, r->failures - 1));
      else req_finish(c, r, err ? err : -ECONNRESET, NULL, NULL);
    }
    r = next;
  }
}

/* The current stream did not come up (open failed, or it broke before initialize was
 * answered): nothing was sent, so every request may try again, a few times. */
static void open_failed(svc_client *c, int err) {
  c->open_failures++;
  c->next_open_at = now_ms(c) + backoff(c, c->open_failures - 1);
  creq *r = c->reqs;
  while (r && !c->closed) {
    creq *next = r->next;
    if (!r->id) {
      r->failures++;
      if (err && err != -EAGAIN) r->cause = err;
      if (r->failures <= c->o.retries) {
        r->retry_at = c->next_open_at;
        r->deadline = r->retry_at + r->timeout_ms;
      } else {
        /* a retry that met the host's dial back-off reports why the first dial failed */
        req_finish(c, r, err == -EAGAIN && r->cause ? r->cause : err ? err : -ECONNRESET, NULL, NULL);
      }
    }
    r = next;
  }
}

/* The current stream's initialize was refused by the server's frame bucket (rate_limited):
 * nothing ran, so this is a refusal, not a failure. The next stream waits until the bucket,
 * as this client sees it, holds a token again (and at least the open back-off); a request
 * refused more than MAX_REFUSALS times this way fails with -EBUSY. */
static void open_refused(svc_client *c) {
  c->open_failures++;
  if (c->rate > 0) {
    tokens_refill(c);
    c->tokens = 0; /* the server's bucket is empty: wait for it */
  }
  int64_t now = now_ms(c), at = now + backoff(c, c->open_failures - 1), w = tokens_wait_ms(c);
  if (now + w > at) at = now + w;
  c->next_open_at = at;
  creq *r = c->reqs;
  while (r && !c->closed) {
    creq *next = r->next;
    if (!r->id) {
      r->refusals++;
      c->n_refused++;
      if (r->refusals <= MAX_REFUSALS) {
        r->retry_at = at;
        r->deadline = at + r->timeout_ms;
      } else {
        req_finish(c, r, -EBUSY, NULL, NULL);
      }
    }
    r = next;
  }
}

static void stream_open(svc_client *c);
static bool refused_before_running(const json_t *error);

static void handle_init_reply(svc_client *c, cstream *cs, json_t *result, json_t *error) {
  if (!result) {
    log_write(LOG_WARNING, "p2p initialize refused", "{s:s, s:O?}", "target", c->target, "error", error);
    cs->init_refused = refused_before_running(error);
    /* the server closes the stream; the requests fail or retry then */
    return;
  }
  json_decref(c->server_info);
  c->server_info = json_incref(result);
  cs->state = CS_READY;
  c->open_failures = 0;
  c->unready_streak = 0;
  c->unready_state = 0;
  const json_t *lim = json_object_get(result, "limits");
  const json_t *mf = json_object_get(lim, "max_frames");
  c->max_frames = json_is_integer(mf) && json_integer_value(mf) > 0 ? (uint64_t)json_integer_value(mf) : 0;
  const json_t *cap = json_object_get(lim, "rate_capacity"), *ref = json_object_get(lim, "rate_refill_per_sec");
  double rc = json_is_number(cap) ? json_number_value(cap) : 0, rr = json_is_number(ref) ? json_number_value(ref) : 0;
  if (rc >= 1 && rr > 0) {
    bool first = !(c->rate > 0);
    c->rate_cap = rc;
    c->rate = rr;
    if (first) {
      /* initialize took one token of a bucket that started full (or was in use before) */
      c->tokens = rc - 1;
      c->tokens_at_us = now_us();
    }
    if (c->tokens > rc) c->tokens = rc;
  } else {
    c->rate = 0;
  }
  send_ready(c);
}

static bool refused_before_running(const json_t *error) {
  const json_t *code = json_object_get(error, "code");
  const char *msg = json_string_value(json_object_get(error, "message"));
  return json_is_integer(code) && json_integer_value(code) == MCP_RPC_MCPP_RATE_LIMITED && msg &&
         (strcmp(msg, "rate_limited") == 0 || strcmp(msg, "too_many_requests") == 0);
}

/* A member value of a reply frame as a tree (jparse, the frame's flags; the frame was
 * already accepted, so only memory can fail). NULL for no span. */
static json_t *span_tree(const char *p, size_t n) {
  if (!p) return NULL;
  json_t *v = NULL;
  if (jparse_flags(p, n, 2048, JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, &v, NULL, NULL) != 0) return NULL;
  return v;
}

/* A reply's id, result and error. From a tree frame (m) or a raw one. */
typedef struct reply_parts {
  bool id_ok;
  uint64_t id;
  const char *res, *err; /* raw: spans */
  size_t res_len, err_len;
  json_t *result, *error; /* tree frame: borrowed from m; raw: built on demand, owned */
  bool raw, has_nul;
  int is_error; /* raw: svc_client_reply.is_error */
} reply_parts;

static void parts_trees(reply_parts *p) {
  if (!p->raw) return;
  if (p->res && !p->result) p->result = span_tree(p->res, p->res_len);
  if (p->err && !p->error) p->error = span_tree(p->err, p->err_len);
}

/* One reply: the initialize answer, or a request's. */
static void handle_reply(svc_client *c, cstream *cs, reply_parts *pt) {
  if (!pt->id_ok) return;
  uint64_t id = pt->id;
  if (cs->state == CS_INIT && id == cs->init_id) {
    parts_trees(pt);
    handle_init_reply(c, cs, pt->result, pt->error);
    return;
  }
  for (creq *r = c->reqs; r; r = r->next) {
    if (r->id != id || r->on != cs) continue;
    if (!pt->res && pt->err) parts_trees(pt); /* an error: rare, read as a tree */
    json_t *result = pt->raw ? pt->result : pt->result, *error = pt->error;
    if (!pt->res && refused_before_running(error) && r->refusals < MAX_REFUSALS) {
      /* It did not run, so sending it again is safe for any request. After rate_limited the
       * server reads nothing more on this stream: the next attempt goes on a fresh one. */
      r->refusals++;
      c->n_refused++;
      req_again(c, r, now_ms(c) + backoff(c, r->refusals - 1));
      const char *msg = json_string_value(json_object_get(error, "message"));
      if (strcmp(msg, "rate_limited") == 0) {
        if (c->rate > 0) c->tokens = 0; /* the server's bucket is empty: wait for it */
        if (cs == c->cur) cs_retire(c, cs);
      }
      break;
    }
    if (r->tcb && pt->raw) {
      /* the fast path: spans of the frame, no tree */
      svc_client_reply v = {pt->res, pt->res_len, pt->res ? NULL : pt->err ? pt->err : "null",
                            pt->res ? 0 : pt->err ? pt->err_len : 4, pt->has_nul,
                            pt->res ? pt->is_error : SVC_CLIENT_IS_ERROR_UNKNOWN};
      req_finish_text(c, r, &v);
      break;
    }
    parts_trees(pt);
    result = pt->result;
    error = pt->error;
    if (pt->res && !result) {
      req_finish(c, r, -ENOMEM, NULL, NULL);
    } else if (result && r->rpc) {
      json_t *content = json_object_get(result, "content");
      req_finish(c, r, 0, content ? content : result, NULL);
    } else {
      req_finish(c, r, 0, result, result ? NULL : (error ? error : json_null()));
    }
    break;
  }
  /* A callback that closed the client (svc_client_close inside it) freed cs with its stream. */
  if (c->closed) return;
  if (cs->state == CS_DRAINING && cs->inflight == 0 && cs->s) p2p_stream_close_write(cs->s);
  send_ready(c); /* a slot is free */
}

static void handle_tree(svc_client *c, cstream *cs, json_t *m) {
  reply_parts pt = {0};
  const json_t *idv = json_object_get(m, "id");
  pt.id_ok = json_is_integer(idv);
  pt.id = pt.id_ok ? (uint64_t)json_integer_value(idv) : 0;
  pt.result = json_object_get(m, "result");
  pt.error = json_object_get(m, "error");
  pt.res = pt.result ? "" : NULL; /* presence only */
  pt.err = pt.error ? "" : NULL;
  handle_reply(c, cs, &pt);
}

/* A raw frame (the client's decoder runs in raw mode): id, result and error found among its
 * top-level members without a tree. A frame whose top-level keys are escaped, or that has more
 * members than the decoder lists, is read as a tree instead. */
static void handle_raw(svc_client *c, cstream *cs, const svc_frame_raw *f) {
  bool tree = f->n_members > SVC_FRAME_RAW_MEMBERS;
  reply_parts pt = {.raw = true, .has_nul = f->has_nul};
  const char *idp = NULL;
  size_t idn = 0;
  for (size_t i = 0; i < f->n_members && !tree; i++) {
    const jparse_member *m = &f->m[i];
    if (m->key_escaped) tree = true;
    else if (m->key_len == 2 && memcmp(m->key, "id", 2) == 0) idp = m->val, idn = m->val_len;
    else if (m->key_len == 6 && memcmp(m->key, "result", 6) == 0) pt.res = m->val, pt.res_len = m->val_len;
    else if (m->key_len == 5 && memcmp(m->key, "error", 5) == 0) pt.err = m->val, pt.err_len = m->val_len;
  }
  if (tree) {
    json_t *m = span_tree(f->body, f->len);
    if (m) handle_tree(c, cs, m);
    json_decref(m);
    return;
  }
  /* result.isError from the members the scan listed (frame.h: jparse_scan_sub; keys are
   * unique, duplicates refused) */
  if (pt.res && pt.res[0] != '{') {
    pt.is_error = SVC_CLIENT_IS_ERROR_OTHER;
  } else if (pt.res && f->n_pm <= SVC_FRAME_RAW_MEMBERS) {
    pt.is_error = SVC_CLIENT_IS_ERROR_OTHER;
    for (size_t i = 0; i < f->n_pm; i++) {
      const jparse_member *m = &f->pm[i];
      if (m->key_escaped) {
        pt.is_error = SVC_CLIENT_IS_ERROR_UNKNOWN;
        break;
      }
      if (m->key_len == 7 && memcmp(m->key, "isError", 7) == 0) {
        if (m->val_len == 4 && memcmp(m->val, "true", 4) == 0) pt.is_error = SVC_CLIENT_IS_ERROR_TRUE;
        else if (m->val_len == 5 && memcmp(m->val, "false", 5) == 0) pt.is_error = SVC_CLIENT_IS_ERROR_FALSE;
      }
    }
  }
  /* an integer id: digits only (no sign, fraction or exponent), as json_is_integer would say
   * of the tree (a negative one matches no request either way) */
  if (idp && idn > 0 && idn <= 19) {
    uint64_t v = 0;
    size_t i = 0;
    while (i < idn && idp[i] >= '0' && idp[i] <= '9') v = v * 10 + (uint64_t)(idp[i++] - '0');
    if (i == idn) {
      pt.id_ok = true;
      pt.id = v;
    }
  }
  handle_reply(c, cs, &pt);
  json_decref(pt.result);
  json_decref(pt.error);
}

static void on_data(p2p_stream *s, const uint8_t *data, size_t len, void *ud) {
  cstream *cs = ud;
  svc_client *c = cs->c;
  (void)s;
  c->refs++;
  c->in_reply++;
  cs->in_data++; /* a callback that closes the client or the stream must not free the frame it reads */
  while (!c->closed && !cs->free_pending && (len > 0 || cs->dec.ready)) {
    size_t used = 0;
    svc_frame_status st = svc_frame_dec_feed(&cs->dec, data, len, &used);
    data += used;
    len -= used;
    if (st == SVC_FRAME_READY) {
      const svc_frame_raw *f = svc_frame_dec_take_raw(&cs->dec);
      if (f) handle_raw(c, cs, f);
      continue;
    }
    if (st < 0) {
      log_write(LOG_WARNING, "p2p reply frame rejected", "{s:s, s:s}", "target", c->target, "error",
                svc_frame_status_str(st));
      p2p_stream_reset(cs->s); /* on_close fails / retries the requests */
    }
    break;
  }
  if (--cs->in_data == 0 && cs->free_pending) cs_free(cs);
  if (--c->in_reply == 0 && !c->closed) flush_queued(c);
  /* Answers only end requests (the timer may then fire early, and its tick re-arms); what
   * added or re-queued one armed it or left it unsent (arm walks every request). */
  if (!c->closed && (c->n_unsent || !uv_is_active((uv_handle_t *)&c->timer))) arm(c);
  client_unref(c);
}

static void on_eof(p2p_stream *s, void *ud) {
  cstream *cs = ud;
  /* it takes nothing more: new requests go to a fresh stream */
  if (cs == cs->c->cur && cs->state == CS_READY) cs_retire(cs->c, cs);
  /* The server is done with us: finish the stream. Last: that may end it, and its on_close
   * frees cs (and may drop the client's last reference). */
  p2p_stream_close_write(s);
}

static void on_writable(p2p_stream *s, void *ud) {
  cstream *cs = ud;
  (void)s;
  cs->write_blocked = false;
  cs_flush(cs);
}

static void on_close(p2p_stream *s, int err, void *ud) {
  cstream *cs = ud;
  svc_client *c = cs->c;
  (void)s;
  bool was_ready = cs->state == CS_READY || cs->state == CS_DRAINING;
  cs_unlink(c, cs);
  cs->s = NULL;
  if (!c->closed && !cs->abandoned) { /* given up: cs_give_up did what its end means */
    if (cs->inflight) cs_lost(c, cs, err ? err : -ECONNRESET);
    if (!was_ready && cs->init_refused) open_refused(c);
    else if (!was_ready) open_failed(c, err ? err : -ECONNRESET);
    arm(c);
  }
  if (cs->in_data) cs->free_pending = true; /* on_data frees it (a callback's frame is in it) */
  else cs_free(cs);
  client_unref(c); /* the stream's reference */
}

static const p2p_stream_callbacks client_cbs = {on_data, on_eof, on_writable, on_close};

/* How long from now a stream may stay opening, or initializing (client.h: ready_timeout_ms).
 * Walks the requests: runs once per stream state, never per request. */
static int64_t ready_bound(svc_client *c) {
  int64_t base = c->o.ready_timeout_ms, b = base << (c->unready_streak < 2 ? c->unready_streak : 2);
  int64_t now = now_ms(c), left = INT64_MAX;
  for (const creq *r = c->reqs; r; r = r->next)
    if (!r->id && r->deadline - now < left) left = r->deadline - now;
  if (left != INT64_MAX && left / 2 < b) {
    /* a bound past the waiting requests' deadlines would never let another stream carry them */
    int64_t floor = base < 1000 ? base : 1000;
    b = left / 2 > floor ? left / 2 : floor;
  }
  return b;
}

static void on_open(p2p_stream *s, int err, void *ud) {
  cstream *cs = ud;
  svc_client *c = cs->c;
  if (c->closed || cs->abandoned) { /* nobody waits for it any more */
    if (s) {
      cs->s = s;
      cs->state = CS_DRAINING;
      if (c->cur == cs) c->cur = NULL;
      p2p_stream_set_callbacks(s, &client_cbs, cs);
      p2p_stream_reset(s); /* on_close frees cs and drops the reference */
    } else {
      if (c->cur == cs) c->cur = NULL;
      cs_free(cs);
      client_unref(c);
    }
    return;
  }
  if (err < 0 || !s) {
    log_write(LOG_INFO, "p2p stream open failed", "{s:s, s:i}", "target", c->target, "err", err);
    if (c->cur == cs) c->cur = NULL;
    cs_free(cs);
    open_failed(c, err < 0 ? err : -EIO);
    arm(c);
    client_unref(c);
    return;
  }
  cs->s = s;
  cs->state = CS_INIT;
  cs->state_at = now_ms(c);
  cs->ready_by = cs->state_at + ready_bound(c);
  c->n_streams++;
  snprintf(c->via, sizeof c->via, "%s", p2p_stream_remote_addr(s));
  p2p_stream_set_callbacks(s, &client_cbs, cs);
  cs->init_id = c->next_id++;
  json_t *params = json_pack("{s:{s:s, s:s}, s:[s], s:{}}", "clientInfo", "name", c->client_name, "version",
                             PEERMCP_VERSION, "profiles", "mcp++/p2p-transport", "capabilities");
  if (params && c->token) json_object_set_new(params, "token", json_string(c->token));
  (void)tokens_take(c); /* initialize is a frame too: opens wait for a token (pump, arm) */
  if (cs_frame(cs, cs->init_id, "initialize", params) != 0) p2p_stream_reset(s);
  else cs_flush(cs);
  json_decref(params);
}

static void stream_open(svc_client *c) {
  assert(!c->cur);
  cstream *cs = calloc(1, sizeof *cs);
  if (!cs) {
    c->open_err = -ENOMEM;
    return;
  }
  cs->c = c;
  cs->state = CS_OPENING;
  cs->state_at = now_ms(c);
  cs->ready_by = cs->state_at + ready_bound(c);
  svc_frame_dec_init(&cs->dec, c->o.max_frame_bytes);
  svc_frame_dec_set_raw(&cs->dec, true); /* replies are read without a tree (handle_raw) */
  svc_frame_dec_set_raw_sub(&cs->dec, "result"); /* its members: isError without a walk */
  buf_init(&cs->wbuf, 64u * 1024 * 1024);
  c->cur = cs;
  c->refs++;
  int rc = p2p_host_open_stream(c->host, c->target, SVC_MCPP_PROTOCOL, on_open, cs);
  if (rc < 0) {
    /* Reported from the timer, so no callback runs inside the call that queued a request. */
    c->refs--;
    c->cur = NULL;
    cs_free(cs);
    c->open_err = rc;
  }
}

/* The current stream did not become ready in time (client.h: ready_timeout_ms): it is given
 * up — reset now (its on_close frees it), or, still opening, ended by on_open whenever the
 * host reports — and the next one opens after the open back-off. Nothing of the waiting
 * requests went out, so none fails here and their deadlines stay as they are. */
static void cs_give_up(svc_client *c, cstream *cs) {
  assert(cs == c->cur && (cs->state == CS_OPENING || cs->state == CS_INIT));
  int64_t now = now_ms(c);
  c->cur = NULL;
  cs->abandoned = true;
  c->n_abandoned++;
  c->unready_streak++;
  c->unready_state = cs->state;
  log_write(LOG_WARNING, "p2p stream not ready in time: given up, another one opens", "{s:s, s:s, s:I, s:I, s:I}",
            "target", c->target, "state", cs->state == CS_OPENING ? "opening" : "initializing", "for_ms",
            (json_int_t)(now - cs->state_at), "given_up", (json_int_t)c->n_abandoned, "waiting",
            (json_int_t)c->n_unsent);
  bool refused = cs->init_refused; /* the server said rate_limited and did not close it */
  if (cs->s) p2p_stream_reset(cs->s);
  if (refused) {
    open_refused(c);
  } else {
    c->open_failures++;
    c->next_open_at = now + backoff(c, c->open_failures - 1);
  }
}

/* ---------- timer: deadlines, retries, (re)opening, pacing ---------- */

static bool wants_stream(svc_client *c) {
  int64_t now = now_ms(c);
  for (creq *r = c->reqs; r; r = r->next)
    if (!r->id && r->retry_at <= now) return true;
  return false;
}

static void pump(svc_client *c) {
  if (c->closed || c->open_err) return;
  c->pace_blocked = false;
  if (!c->cur && now_ms(c) >= c->next_open_at && wants_stream(c) && tokens_wait_ms(c) == 0)
    stream_open(c); /* initialize is a frame too: it waits for a token like a request */
  else if (c->cur && c->cur->state == CS_READY)
    send_ready(c);
}

static void on_tick(uv_timer_t *t);

/* Arms the timer for the next thing that must happen (none: it stays off, so an idle client
 * costs nothing). */
static void arm(svc_client *c) {
  if (c->closed) return;
  int64_t now = now_ms(c), next = INT64_MAX;
  if (c->open_err) next = now;
  bool unsent_due = false;
  for (creq *r = c->reqs; r; r = r->next) {
    if (r->deadline < next) next = r->deadline;
    if (!r->id) {
      if (r->retry_at > now) {
        if (r->retry_at < next) next = r->retry_at;
      } else {
        unsent_due = true;
      }
    }
  }
  if (unsent_due) {
    if (!c->cur) {
      int64_t at = c->next_open_at > now ? c->next_open_at : now, w = now + tokens_wait_ms(c);
      if (w > at) at = w;
      if (at < next) next = at;
    } else if (c->cur->state == CS_READY && c->cur->inflight < c->o.max_inflight) {
      /* w is 0 when the token came after send_ready gave up on it (a moment later, or a loaded
       * machine's preemption later): a tick now sends, else nothing would until a deadline */
      int64_t w = tokens_wait_ms(c);
      if ((w > 0 || c->pace_blocked) && now + w < next) next = now + w;
    }
  }
  if (c->cur && c->cur->state < CS_READY && c->cur->ready_by < next) next = c->cur->ready_by;
  if (next == INT64_MAX) {
    if (c->armed_at != INT64_MAX) uv_timer_stop(&c->timer);
    c->armed_at = INT64_MAX;
    return;
  }
  if (next < now) next = now;
  if (next == c->armed_at && uv_is_active((uv_handle_t *)&c->timer)) return; /* already set for then */
  c->armed_at = next;
  uv_timer_start(&c->timer, on_tick, (uint64_t)(next - now), 0);
}

/* Requests that reached their deadline without being on the wire: the client waited for a
 * stream or for the server's bucket all that time, which the caller only sees as -ETIMEDOUT.
 * Says what it was waiting for (one line a tick, with the first such request's history). */
static void log_never_sent(svc_client *c, unsigned n, unsigned failures, unsigned refusals) {
  static const char *const k_state[] = {"none", "opening", "initializing", "ready", "draining"};
  const cstream *cs = c->cur;
  int st = cs && cs->state >= CS_OPENING && cs->state <= CS_DRAINING ? cs->state : 0;
  size_t draining = 0;
  for (const cstream *d = c->draining; d; d = d->next) draining++;
  tokens_refill(c);
  int64_t now = now_ms(c);
  log_write(LOG_WARNING, "p2p requests timed out before they were sent",
            "{s:s, s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:i, s:I, s:I, s:I, s:I, s:s?}",
            "target", c->target, "requests", (json_int_t)n, "failures", (json_int_t)failures, "refusals",
            (json_int_t)refusals, "stream", k_state[st], "stream_state_ms",
            (json_int_t)(cs && st < CS_READY ? now - cs->state_at : 0), "stream_inflight",
            (json_int_t)(cs ? cs->inflight : 0), "draining_streams", (json_int_t)draining, "queued",
            (json_int_t)c->n_reqs, "tokens", c->tokens, "rate", c->rate, "next_open_in_ms",
            (json_int_t)(c->next_open_at > now ? c->next_open_at - now : 0), "token_wait_ms",
            (json_int_t)tokens_wait_ms(c), "open_err", c->open_err, "streams_opened", (json_int_t)c->n_streams,
            "refused", (json_int_t)c->n_refused, "paced", (json_int_t)c->n_paced, "given_up",
            (json_int_t)c->n_abandoned, "not_ready", svc_client_not_ready(c));
}

static void on_tick(uv_timer_t *t) {
  svc_client *c = t->data;
  c->refs++;
  if (c->open_err) {
    int e = c->open_err;
    c->open_err = 0;
    open_failed(c, e);
  }
  int64_t now = now_ms(c);
  creq *r = c->reqs;
  unsigned never_sent = 0, ns_failures = 0, ns_refusals = 0;
  while (r && !c->closed) {
    creq *next = r->next;
    if (now >= r->deadline) {
      r->failures++;
      if (r->id && r->idempotent && r->failures <= c->o.retries) {
        /* a late reply to the old attempt is ignored (its id is forgotten) */
        req_again(c, r, now + backoff(c, r->failures - 1));
      } else {
        if (!r->id && !never_sent++) ns_failures = r->failures - 1, ns_refusals = r->refusals;
        req_finish(c, r, -ETIMEDOUT, NULL, NULL);
      }
    }
    r = next;
  }
  if (never_sent && !c->closed) log_never_sent(c, never_sent, ns_failures, ns_refusals);
  if (!c->closed && c->cur && c->cur->state < CS_READY && now >= c->cur->ready_by) cs_give_up(c, c->cur);
  pump(c);
  arm(c);
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
  jwrite_init(&c->jw, UINT32_MAX, JWRITE_ASCII);
  c->loop = loop;
  c->host = host;
  if (o) c->o = *o;
  if (!c->o.request_timeout_ms) c->o.request_timeout_ms = 30000;
  if (c->o.no_retries) c->o.retries = 0;
  else if (!o || (!o->retries && !o->no_retries)) c->o.retries = 2;
  if (!c->o.backoff_ms) c->o.backoff_ms = 50;
  if (!c->o.max_frame_bytes) c->o.max_frame_bytes = 16u * 1024 * 1024;
  if (!c->o.max_inflight) c->o.max_inflight = 32;
  if (!c->o.ready_timeout_ms) c->o.ready_timeout_ms = 5000;
  c->target = strdup(target);
  c->token = c->o.token && *c->o.token ? strdup(c->o.token) : NULL;
  c->client_name = strdup(c->o.client_name ? c->o.client_name : "peermcp");
  c->o.token = c->token;
  c->next_id = 1;
  if (!c->target || !c->client_name || (c->o.token == NULL && o && o->token && *o->token) ||
      uv_timer_init(loop, &c->timer) != 0) {
    free(c->target);
    free(c->token);
    free(c->client_name);
    free(c);
    return -ENOMEM;
  }
  c->timer.data = c;
  c->armed_at = INT64_MAX;
  c->refs = 2; /* the user, the timer handle */
  *out = c;
  return 0;
}

/* W3C trace context on every request made on behalf of another one: params._meta.traceparent
 * from an op message's own traceparent, else from the calling thread's request scope
 * (util/trace.h); a request that already carries one keeps it. 0 or -ENOMEM. */
static int add_traceparent(json_t **params) {
  json_t *meta = json_object_get(*params, "_meta");
  if (json_is_object(meta) && json_object_get(meta, "traceparent")) return 0;
  char tp[TRACE_PARENT_LEN + 1];
  trace_ctx t;
  if (trace_continue_json(json_object_get(json_object_get(*params, "arguments"), "traceparent"), &t) == 0) {
    json_t *a = json_object_get(json_object_get(*params, "arguments"), "traceparent");
    snprintf(tp, sizeof tp, "%s", json_string_value(a));
  } else if (trace_current()) {
    trace_format(trace_current(), tp);
  } else {
    return 0;
  }
  if (!*params && !(*params = json_object())) return -ENOMEM;
  if (!json_is_object(*params)) return 0;
  if (!json_is_object(meta)) {
    meta = json_object();
    if (!meta || json_object_set_new(*params, "_meta", meta) != 0) return -ENOMEM;
  }
  return json_object_set_new(meta, "traceparent", json_string(tp)) == 0 ? 0 : -ENOMEM;
}

static void req_add(svc_client *c, creq *r, uint32_t timeout_ms);

/* params: copied, or — own — taken over (the caller built it and hands its reference over,
 * on success and failure alike). */
static int enqueue(svc_client *c, const char *method, json_t *params, bool own, bool idempotent, bool rpc,
                   uint32_t timeout_ms, svc_client_cb cb, void *ud) {
  if (c->closed) {
    if (own) json_decref(params);
    return -ECANCELED;
  }
  creq *r = req_alloc(c);
  if (!r) {
    if (own) json_decref(params);
    return -ENOMEM;
  }
  memset(r, 0, offsetof(creq, inl));
  r->method = strdup(method);
  r->method_owned = true;
  r->params = !params ? NULL : own ? params : json_deep_copy(params);
  if (!r->method || (params && !r->params) || add_traceparent(&r->params) != 0) {
    req_free(c, r);
    return -ENOMEM;
  }
  r->idempotent = idempotent;
  r->rpc = rpc;
  r->cb = cb;
  r->ud = ud;
  req_add(c, r, timeout_ms);
  return 0;
}

/* Queues r (filled in) and starts what it needs. */
static void req_add(svc_client *c, creq *r, uint32_t timeout_ms) {
  r->timeout_ms = timeout_ms ? timeout_ms : c->o.request_timeout_ms;
  r->deadline = now_ms(c) + r->timeout_ms;
  /* append (FIFO send order) */
  r->next = NULL;
  if (c->reqs_tail) c->reqs_tail->next = r;
  else c->reqs = r;
  c->reqs_tail = r;
  c->n_reqs++;
  c->n_unsent++;
  int64_t deadline = r->deadline; /* r may be finished (freed) by what follows */
  if (c->cur && c->cur->state == CS_READY) send_ready(c);
  else if (!c->cur && !c->open_err && now_ms(c) >= c->next_open_at && tokens_wait_ms(c) == 0) stream_open(c);
  /* Nothing waiting to go (r went at once, or is already gone) and the timer due no later than
   * r's deadline: it stays as it is (arm walks every request; its tick re-arms). */
  if (!c->n_unsent && !c->closed && c->armed_at <= deadline && uv_is_active((uv_handle_t *)&c->timer)) return;
  arm(c);
}

int svc_client_request(svc_client *c, const char *method, json_t *params, bool idempotent, uint32_t timeout_ms,
                       svc_client_cb cb, void *ud) {
  return enqueue(c, method, params, false, idempotent, false, timeout_ms, cb, ud);
}

/* May this op message be sent again after its stream broke or it timed out? */
static bool rpc_retry_safe(const json_t *m) {
  const json_t *opv = json_object_get(m, "op");
  taskq_op op = taskq_op_parse(json_is_string(opv) ? json_string_value(opv) : NULL);
  if (taskq_op_idempotent(op)) return true;
  if (op == TASKQ_OP_SUBMIT) return json_is_string(json_object_get(m, "idempotency_key"));
  if (op == TASKQ_OP_COMPLETE || op == TASKQ_OP_FAIL || op == TASKQ_OP_RELEASE) {
    /* fenced by the claim: once it has taken effect a repeat is refused (lease_lost) or, for
     * complete, recognised as the same one */
    const json_t *w = json_object_get(m, "worker_id"), *e = json_object_get(m, "lease_epoch");
    return json_is_string(w) && json_string_length(w) && json_is_integer(e) && json_integer_value(e) > 0;
  }
  return false;
}

int svc_client_rpc(svc_client *c, json_t *msg, uint32_t timeout_ms, svc_client_cb cb, void *ud) {
  if (!json_is_object(msg)) return -EINVAL;
  /* a shallow copy: the keys added below are the message's own, its values are shared and only
   * read (written into the frame); a deep copy cost a complete's whole result each time */
  json_t *m = json_copy(msg);
  if (!m) return -ENOMEM;
  if (c->token && !json_object_get(m, "token")) json_object_set_new(m, "token", json_string(c->token));
  if (!json_object_get(m, "traceparent") && trace_current()) { /* for peers that read no _meta */
    char tp[TRACE_PARENT_LEN + 1];
    trace_format(trace_current(), tp);
    json_object_set_new(m, "traceparent", json_string(tp));
  }
  bool idem = rpc_retry_safe(m);
  json_t *params = json_object();
  if (!params || json_object_set_new_nocheck(params, "name", json_string_nocheck(TASKQ_RPC_TOOL)) != 0 ||
      json_object_set_new_nocheck(params, "arguments", m) != 0) {
    json_decref(params);
    return -ENOMEM;
  }
  return enqueue(c, "tools/call", params, true, idem, true, timeout_ms, cb, ud);
}

int svc_client_call_tool(svc_client *c, const char *tool, json_t *args, bool idempotent, uint32_t timeout_ms,
                         svc_client_cb cb, void *ud) {
  json_t *params = json_pack("{s:s, s:o}", "name", tool, "arguments", args ? json_incref(args) : json_object());
  if (!params) return -ENOMEM;
  return enqueue(c, "tools/call", params, true, idempotent, false, timeout_ms, cb, ud);
}

static int cancel_req(svc_client *c, creq *r);

int svc_client_call_tool_text(svc_client *c, const char *tool, const char *args, size_t args_len, bool idempotent,
                              uint32_t timeout_ms, svc_client_text_cb cb, void *ud) {
  if (!tool || !cb) return -EINVAL;
  if (c->closed) return -ECANCELED;
  if (!args) args = "{}", args_len = 2;
  /* the arguments go into the frame as they are: they must be one JSON object that the server's
   * frame parser accepts (else it would refuse the frame and close the stream under every
   * request on it) */
  if (args_len > c->o.max_frame_bytes) return -E2BIG;
  size_t i = 0;
  while (i < args_len && (args[i] == ' ' || args[i] == '\t' || args[i] == '\n' || args[i] == '\r')) i++;
  if (i == args_len || args[i] != '{' ||
      jparse_scan(args, args_len, 2000, JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, NULL, 0, NULL, NULL, NULL) != 0)
    return -EINVAL;
  creq *r = req_alloc(c);
  if (!r) return -ENOMEM;
  memset(r, 0, offsetof(creq, inl)); /* not calloc: glibc's calloc bypasses the thread cache */
  /* {"name":tool,"arguments":args[,"_meta":{"traceparent":…}]} */
  size_t tl = jwrite_plain_len(tool), len = 0;
  bool plain = !tool[tl] && !trace_current();
  if (!plain) tl = strlen(tool);
  if (plain) {
    /* the common case straight into the record (or one allocation): no scratch writer */
    len = sizeof "{\"name\":\"" - 1 + tl + sizeof "\",\"arguments\":" - 1 + args_len + 1;
    char *o = r->ptext = len <= sizeof r->inl ? r->inl : malloc(len);
    if (!o) {
      req_free(c, r);
      return -ENOMEM;
    }
    memcpy(o, "{\"name\":\"", sizeof "{\"name\":\"" - 1);
    o += sizeof "{\"name\":\"" - 1;
    memcpy(o, tool, tl);
    o += tl;
    memcpy(o, "\",\"arguments\":", sizeof "\",\"arguments\":" - 1);
    o += sizeof "\",\"arguments\":" - 1;
    memcpy(o, args, args_len);
    o[args_len] = '}';
  } else {
    jwrite *w = &c->jw;
    jwrite_reset(w);
    jwrite_lit(w, "{\"name\":");
    jwrite_cstr(w, tool);
    jwrite_lit(w, ",\"arguments\":");
    jwrite_raw(w, args, args_len);
    if (trace_current()) {
      char tp[TRACE_PARENT_LEN + 1];
      trace_format(trace_current(), tp);
      jwrite_lit(w, ",\"_meta\":{\"traceparent\":");
      jwrite_cstr(w, tp);
      jwrite_byte(w, '}');
    }
    jwrite_byte(w, '}');
    len = jwrite_len(w);
    r->ptext = jwrite_error(w) != 0 ? NULL : len <= sizeof r->inl ? r->inl : malloc(len); /* the scratch writer keeps its buffer */
    if (r->ptext) memcpy(r->ptext, jwrite_ptr(w), len);
    jwrite_reset(w);
    if (!r->ptext) {
      req_free(c, r);
      return -ENOMEM;
    }
  }
  r->ptext_len = len;
  r->method = "tools/call";
  r->idempotent = idempotent;
  r->tcb = cb;
  r->ud = ud;
  req_add(c, r, timeout_ms);
  return 0;
}

int svc_client_cancel_text(svc_client *c, svc_client_text_cb cb, void *ud) {
  creq *r = c->reqs;
  while (r && !(r->tcb == cb && r->tcb && r->ud == ud)) r = r->next;
  return r ? cancel_req(c, r) : -ENOENT;
}

int svc_client_cancel(svc_client *c, svc_client_cb cb, void *ud) {
  creq *r = c->reqs;
  while (r && !(r->cb == cb && r->cb && r->ud == ud)) r = r->next;
  if (!r) return -ENOENT;
  return cancel_req(c, r);
}

static int cancel_req(svc_client *c, creq *r) {
  cstream *cs = r->on;
  if (r->id && cs && cs->s && !c->closed && cs_has_room(c, cs)) {
    /* tell the server; a notification takes no request slot but counts as a frame (on a
     * stream with no room left the server just finishes the work, and its answer is
     * ignored) */
    json_t *m = json_pack("{s:s, s:s, s:{s:I, s:s}}", "jsonrpc", "2.0", "method", "notifications/cancelled", "params",
                          "requestId", (json_int_t)r->id, "reason", "cancelled by the caller");
    if (m && svc_frame_encode(&cs->wbuf, m, 0) == 0) {
      cs->frames++;
      (void)tokens_take(c);
      cs_flush(cs);
    }
    json_decref(m);
  }
  req_off_wire(c, r);
  req_unlink(c, r);
  req_free(c, r);
  if (cs && cs->state == CS_DRAINING && cs->inflight == 0 && cs->s) p2p_stream_close_write(cs->s);
  send_ready(c); /* its slot is free */
  arm(c);
  return 0;
}

const char *svc_client_via(const svc_client *c) { return c->via; }

const json_t *svc_client_server_info(const svc_client *c) { return c->server_info; }
size_t svc_client_pending(const svc_client *c) { return c->n_reqs; }
void svc_client_counters(const svc_client *c, uint64_t *streams_opened, uint64_t *retries) {
  if (streams_opened) *streams_opened = c->n_streams;
  if (retries) *retries = c->n_retries;
}
void svc_client_stats_get(const svc_client *c, svc_client_stats *out) {
  out->streams_opened = c->n_streams;
  out->retries = c->n_retries;
  out->refused = c->n_refused;
  out->paced = c->n_paced;
  out->abandoned = c->n_abandoned;
}

const char *svc_client_not_ready(const svc_client *c) {
  int st = c->cur && c->cur->state < CS_READY ? c->cur->state : c->unready_state;
  if (st == CS_OPENING)
    return "no /mcp+p2p/1.0.0 stream could be opened to it (the connection or the protocol negotiation never finished)";
  if (st == CS_INIT) return "it accepted the /mcp+p2p/1.0.0 stream but never answered initialize";
  return NULL;
}

static void timer_closed(uv_handle_t *h) { client_unref(h->data); }

static void cs_abort(cstream *cs) {
  if (cs->s) p2p_stream_reset(cs->s); /* its on_close frees cs and drops the stream's reference */
  /* a stream still opening: on_open sees `closed` and ends it */
}

void svc_client_close(svc_client *c) {
  if (!c || c->closed) return;
  c->closed = true;
  c->refs++;
  while (c->reqs) req_finish(c, c->reqs, -ECANCELED, NULL, NULL);
  if (c->cur) cs_abort(c->cur);
  while (c->draining) {
    cstream *cs = c->draining;
    c->draining = cs->next;
    cs->next = NULL;
    cs_abort(cs); /* on_close no longer finds it in the list */
  }
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, timer_closed);
  c->refs--;       /* the extra one above; the timer handle's reference still holds c */
  client_unref(c); /* the user's */
}
