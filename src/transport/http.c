/* transport/http.c — MCP over Streamable HTTP on libmicrohttpd and the libuv loop (see http.h).
 *
 * Objects:
 *  - listener: one MHD daemon (external epoll mode) per listen address; a uv_poll on its epoll
 *    descriptor runs MHD_run, a timer follows MHD_get_timeout.
 *  - hconn: one TCP connection (MHD's socket context): the deadline for a whole request to
 *    arrive, and a uv_poll that watches for the peer going away while the connection is
 *    suspended.
 *  - hreq: one HTTP request (MHD's per-request context), freed when MHD reports it completed.
 *  - hstream: where the outgoing messages of one MCP request go (a POST stream), or the
 *    server-to-client messages of a session (its GET stream). It decides JSON or SSE: JSON when
 *    the response is its first message, else an SSE stream (transport/sse.h). A stream outlives
 *    a broken connection in a 2025-11-25 session (events kept for Last-Event-ID).
 *  - hsess: a 2025-11-25 session: id, its mcp_session, its streams.
 * A 2026-07-28 request gets an "ephemeral" stream that owns its own mcp_session; when its
 * HTTP response ends (answered, or closed by the client) that session is freed, which detaches
 * a call still running (the dispatcher cancels it).
 *
 * Output of a session core arrives through its `route` callback (mcp/session.h, "Per-request
 * routing"), which names the request each message belongs to.
 *
 * Freeing discipline: a session core must not be freed from inside its callbacks, so streams
 * are freed from the zombie list, emptied after each MHD_run and in a uv_check callback — which
 * is also where MHD_run runs when an answer or a resumed connection is waiting. */
#include "transport/http.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "mcp/session.h"
#include "transport/http_rules.h"
#include "transport/sse.h"
#include "util/buf.h"
#include "util/check.h"
#include "util/clock.h"
#include "auth/auth.h"
#include "util/log.h"

#define SESSION_BUCKETS 1024u
#define SESSION_ID_BYTES 32                   /* 256 random bits */
#define SESSION_ID_LEN 43                     /* base64url without padding */
#define MAX_DETACHED_STREAMS 16               /* finished-but-unread streams kept per session */
#define STREAM_RETAIN_BYTES (256u * 1024u)    /* replay window per session stream */
#define SSE_BLOCK 16384u                      /* MHD asks the reader for at most this */
#define SWEEP_MS 250u
#define WATCH_AFTER_MS 200 /* a request suspended this long gets a disconnect watch */
#define MAX_NAME_HEADER 8192u                 /* decoded Mcp-Name / body value compared */
#define GET_STREAM_MAX (256u * 1024u)         /* unread bytes a session's GET stream holds */

/* The legacy revisions a 2025-11-25 session may name in MCP-Protocol-Version (the ones the
 * session core negotiates, mcp/session.c). */
static const char *const k_legacy_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

typedef struct hsess hsess;
typedef struct hstream hstream;
typedef struct hreq hreq;
typedef struct hconn hconn;

typedef struct listener {
  mcp_http *h;
  struct MHD_Daemon *d;
  uv_poll_t poll;
  bool poll_init;
  bool loopback;
  char url[MCP_HTTP_MAX_URL + 8]; /* http://HOST:PORT/mcp */
  char base[MCP_HTTP_MAX_URL];     /* http://HOST:PORT */
  char hostport[64];           /* HOST:PORT as a Host header names it */
} listener;

struct hconn {
  hconn *prev, *next;
  mcp_http *h;
  struct MHD_Connection *mc;
  int fd;
  int64_t deadline; /* the current request must be whole by then; 0 = none */
  uv_poll_t *watch; /* disconnect watch, created on first need */
  bool watching;
  hreq *req;
};

typedef enum { RQ_NONE = 0, RQ_POST, RQ_GET, RQ_DELETE, RQ_OTHER } rq_kind;

struct hreq {
  hreq *prev, *next; /* in h->streaming while an SSE body is open */
  mcp_http *h;
  hconn *c;
  struct MHD_Connection *mc;
  listener *l;
  rq_kind kind;
  buf body;
  mcp_http_auth_result ar; /* who is calling (copied into a session) */
  const char *sid;         /* Mcp-Session-Id to put on the response (borrowed from hsess) */
  hstream *st;             /* the stream this request waits on or drains */
  bool answered;           /* a response is queued */
  bool streaming;          /* the response is an SSE body */
  bool suspended;
  bool gone;               /* the client went away: end the body */
  bool watch_cancels;      /* a disconnect cancels the MCP request (2026-07-28) */
  bool too_big;            /* the body passed max_body_bytes: the rest is discarded, then 413 */
  bool in_handler;         /* inside on_access: a response may be queued now */
  int polls;               /* final-call repeats while the answer is awaited (not suspended) */
  char *www;               /* WWW-Authenticate for a 403 insufficient_scope (malloc'd) */
  int64_t suspended_at;
  struct {                 /* an answer that came while libmicrohttpd was not asking */
    bool set, sse;
    unsigned status;
    const char *ctype;
    char *body;
    size_t len;
  } later;
};

struct hstream {
  hstream *next;     /* in the session's list, or the zombie list */
  mcp_http *h;
  hsess *sess;       /* NULL: an ephemeral 2026-07-28 stream */
  mcp_session *eph;  /* ephemeral: its own session core */
  mcp_auth eph_auth; /* ephemeral: the caller (a value) */
  uint32_t no;
  json_t *rid;       /* the request's id (NULL for a GET stream); messages are routed by it */
  hreq *req;         /* the HTTP request attached, NULL when detached */
  sse_stream *sse;   /* once the answer is an SSE stream */
  bool is_get;
  bool final;        /* the response is in: end once drained */
  bool overflow;     /* the client does not read: end with an error */
  bool zombie;
  int64_t last_out;  /* for keep-alives */
  int64_t detached_at;
};

struct hsess {
  hsess *hnext;       /* hash chain */
  hsess *prev, *next; /* all sessions, most recently used first */
  mcp_http *h;
  char id[SESSION_ID_LEN + 1];
  mcp_session *ms;
  mcp_auth auth;      /* who created it: later requests must be the same principal */
  hstream *streams;
  hstream *get;       /* the standalone GET stream (also in streams), NULL until a GET */
  uint32_t next_no;
  int64_t last_used;
};

struct mcp_http {
  uv_loop_t *loop;
  mcp_http_opts o;
  http_origin_policy policy;
  const char **hosts; /* allowed_hosts + listener host:port */
  listener lst[MCP_HTTP_MAX_LISTENERS];
  size_t nlst;
  uv_timer_t mhd_timer;
  uv_timer_t sweep;
  uv_check_t check;
  uv_idle_t idle;
  bool handles_init;
  int handles_open;
  bool dirty; /* MHD_run needed (a connection was resumed) */
  hconn *conns;
  size_t nconns;
  hreq *streaming;
  size_t nstreaming;
  hsess *buckets[SESSION_BUCKETS];
  hsess *lru; /* most recently used first */
  hsess *lru_tail;
  size_t nsessions;
  hstream *zombies;
  hstream *feeding; /* the stream whose request is being fed (synchronous answers) */
  hsess *capturing; /* feeding a notification/response: an error about it is caught here */
  char *captured;
  size_t captured_len;
  size_t pending;   /* MCP requests waiting for an answer (undecided or streaming) */
  bool ready, stopping, cancelled, stopped;
  void (*stop_done)(void *);
  void *stop_arg;
  uint64_t requests, rejected;
  bool in_run; /* inside MHD_run (no nested runs) */
  char forbidden_scope[512]; /* set by the result shaper, read by the stream_deliver it leads to */
};

static void mark_dirty(mcp_http *h);
static void stream_detach(hstream *st);
static void check_stopped(mcp_http *h);

/* ---------- small helpers ---------- */

static const char *hdr(struct MHD_Connection *mc, const char *name) {
  return MHD_lookup_connection_value(mc, MHD_HEADER_KIND, name);
}

static bool legacy_version_known(const char *v) {
  for (size_t i = 0; i < sizeof k_legacy_versions / sizeof k_legacy_versions[0]; i++)
    if (strcmp(v, k_legacy_versions[i]) == 0) return true;
  return false;
}

/* A session is bound to the subject (and kind) that created it (auth/auth.h). */
static bool same_principal(const mcp_auth *a, const mcp_auth *b) {
  return a->kind == b->kind && strcmp(a->subject, b->subject) == 0 && strcmp(a->issuer, b->issuer) == 0;
}

/* ---------- responses ---------- */

static void add_common_headers(hreq *r, struct MHD_Response *resp) {
  if (r->sid) MHD_add_response_header(resp, "Mcp-Session-Id", r->sid);
}

static void req_wake(hreq *r);
static void queue_sse(hreq *r);

static void queue_take(hreq *r, unsigned status, const char *ctype, char *body, size_t len) {
  struct MHD_Response *resp = body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
                                   : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!resp) {
    free(body);
    return;
  }
  if (ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  add_common_headers(r, resp);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->kind == RQ_OTHER ? "GET, POST, DELETE" : "POST");
  if (r->www) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www);
  if (MHD_queue_response(r->mc, status, resp) == MHD_YES) r->answered = true;
  MHD_destroy_response(resp);
  if (status >= 400) r->h->rejected++;
}

/* Answers r with body (malloc'd and taken; NULL = empty). libmicrohttpd takes a response only
 * inside the access handler or for a suspended connection: otherwise (a request being polled,
 * see on_access) the answer waits in r->later for the next handler call, which comes from the
 * MHD_run that mark_dirty asks for. */
static void respond_take(hreq *r, unsigned status, const char *ctype, char *body, size_t len) {
  if (r->answered || r->later.set) {
    free(body);
    return;
  }
  if (r->in_handler || r->suspended) {
    queue_take(r, status, ctype, body, len);
    req_wake(r);
    return;
  }
  r->later.set = true;
  r->later.status = status;
  r->later.ctype = ctype;
  r->later.body = body;
  r->later.len = len;
  mark_dirty(r->h);
}

static void respond_empty(hreq *r, unsigned status) { respond_take(r, status, NULL, NULL, 0); }

static void respond_sse(hreq *r) {
  if (r->answered || r->later.set) return;
  if (r->in_handler || r->suspended) {
    queue_sse(r);
    req_wake(r);
    return;
  }
  r->later.set = r->later.sse = true;
  mark_dirty(r->h);
}

/* From the access handler: queues what r->later holds. */
static void deliver_later(hreq *r) {
  if (!r->later.set) return;
  r->later.set = false;
  if (r->later.sse) queue_sse(r);
  else queue_take(r, r->later.status, r->later.ctype, r->later.body, r->later.len);
  r->later.body = NULL;
}

/* A JSON-RPC error answered by the transport itself (id NULL = null). */
static void respond_rpc_error(hreq *r, unsigned status, int code, const char *message, const json_t *id,
                              json_t *data /* stolen */) {
  json_t *m = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? (json_t *)id : json_null(), "error",
                        "code", code, "message", message);
  if (m && data) json_object_set(json_object_get(m, "error"), "data", data);
  json_decref(data);
  char *body = m ? json_dumps(m, JSON_COMPACT) : NULL;
  json_decref(m);
  if (body) respond_take(r, status, "application/json", body, strlen(body));
}

static void respond_text(hreq *r, unsigned status, const char *ctype, const char *text) {
  char *b = strdup(text);
  if (b) respond_take(r, status, ctype, b, strlen(b));
}

/* ---------- the loop glue ---------- */

static void run_mhd(mcp_http *h);

static void on_mhd_timer(uv_timer_t *t) { run_mhd(t->data); }

static void rearm_timer(mcp_http *h) {
  uint64_t best = UINT64_MAX;
  for (size_t i = 0; i < h->nlst; i++) {
    MHD_UNSIGNED_LONG_LONG to;
    if (h->lst[i].d && MHD_get_timeout(h->lst[i].d, &to) == MHD_YES && to < best) best = to;
  }
  if (best == UINT64_MAX) {
    uv_timer_stop(&h->mhd_timer);
    return;
  }
  if (best == 0) { /* work pending right now */
    mark_dirty(h);
    return;
  }
  uv_timer_start(&h->mhd_timer, on_mhd_timer, best, 0);
}

static void free_zombies(mcp_http *h);

static void run_mhd(mcp_http *h) {
  if (h->in_run) return;
  h->in_run = true;
  h->dirty = false;
  for (size_t i = 0; i < h->nlst; i++)
    if (h->lst[i].d) MHD_run(h->lst[i].d);
  h->in_run = false;
  free_zombies(h);
  rearm_timer(h);
  if (!h->dirty && h->handles_init) {
    uv_check_stop(&h->check);
    uv_idle_stop(&h->idle);
  }
}

static void on_check(uv_check_t *c) {
  mcp_http *h = c->data;
  free_zombies(h);
  if (h->dirty) run_mhd(h);
  else {
    uv_check_stop(&h->check);
    uv_idle_stop(&h->idle);
  }
  check_stopped(h);
}

static void on_idle(uv_idle_t *i) { (void)i; }

/* Asks for MHD_run before the loop next blocks (after this iteration's completions). */
static void mark_dirty(mcp_http *h) {
  h->dirty = true;
  if (!h->handles_init) return;
  if (!uv_is_active((uv_handle_t *)&h->check)) uv_check_start(&h->check, on_check);
  if (!uv_is_active((uv_handle_t *)&h->idle)) uv_idle_start(&h->idle, on_idle);
}

static void on_epoll(uv_poll_t *p, int status, int events) {
  listener *l = p->data;
  (void)status;
  (void)events;
  run_mhd(l->h);
}

/* ---------- disconnect watch (while suspended) ---------- */


static void on_watch(uv_poll_t *p, int status, int events) {
  hconn *c = p->data;
  (void)status;
  (void)events;
  uv_poll_stop(p);
  c->watching = false;
  hreq *r = c->req;
  if (!r || !r->suspended) return;
  log_debug("http: client went away", "{s:b}", "cancels", r->watch_cancels);
  r->gone = true;
  hstream *st = r->st;
  if (st && r->watch_cancels) {
    stream_detach(st); /* an ephemeral stream without its request is cancelled and freed */
  }
  if (!r->answered) respond_empty(r, MHD_HTTP_INTERNAL_SERVER_ERROR); /* lets MHD go on and close */
  req_wake(r);
}

static void watch_start(hreq *r) {
  hconn *c = r->c;
  if (!c || c->fd < 0 || c->watching) return;
  if (!c->watch) {
    c->watch = malloc(sizeof *c->watch);
    if (!c->watch) return;
    if (uv_poll_init_socket(r->h->loop, c->watch, c->fd) != 0) {
      free(c->watch);
      c->watch = NULL;
      return;
    }
    c->watch->data = c;
  }
  if (uv_poll_start(c->watch, UV_DISCONNECT, on_watch) == 0) c->watching = true;
}

static void watch_stop(hconn *c) {
  if (c && c->watching) {
    uv_poll_stop(c->watch);
    c->watching = false;
  }
}

/* The disconnect watch starts from the sweep once a request has waited WATCH_AFTER_MS: a call
 * answered within a loop iteration or two costs no epoll_ctl for it. */
static void req_suspend(hreq *r) {
  if (r->suspended) return;
  MHD_suspend_connection(r->mc);
  r->suspended = true;
  r->suspended_at = clock_mono_ms();
}

static void req_wake(hreq *r) {
  if (!r->suspended) return;
  watch_stop(r->c);
  r->suspended = false;
  MHD_resume_connection(r->mc);
  mark_dirty(r->h);
}

/* ---------- streams ---------- */

static ssize_t sse_reader(void *cls, uint64_t pos, char *out, size_t max);

static void streaming_add(hreq *r) {
  mcp_http *h = r->h;
  r->streaming = true;
  r->prev = NULL;
  r->next = h->streaming;
  if (h->streaming) h->streaming->prev = r;
  h->streaming = r;
  h->nstreaming++;
}

static void streaming_remove(hreq *r) {
  if (!r->streaming) return;
  mcp_http *h = r->h;
  if (r->prev) r->prev->next = r->next;
  else h->streaming = r->next;
  if (r->next) r->next->prev = r->prev;
  r->streaming = false;
  h->nstreaming--;
}

static void queue_sse(hreq *r) {
  struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SSE_BLOCK, sse_reader, r, NULL);
  if (!resp) return;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  add_common_headers(r, resp);
  if (MHD_queue_response(r->mc, MHD_HTTP_OK, resp) == MHD_YES) {
    r->answered = true;
    streaming_add(r);
  }
  MHD_destroy_response(resp);
}

static void stream_attach(hstream *st, hreq *r) {
  st->req = r;
  r->st = st;
  st->last_out = clock_mono_ms();
}

static void stream_free(hstream *st) {
  if (st->eph) mcp_session_free(st->eph);
  sse_stream_free(st->sse);
  json_decref(st->rid);
  free(st);
}

static void free_zombies(mcp_http *h) {
  while (h->zombies) {
    hstream *st = h->zombies;
    h->zombies = st->next;
    stream_free(st);
  }
}

static void sess_stream_unlink(hsess *s, hstream *st) {
  for (hstream **pp = &s->streams; *pp; pp = &(*pp)->next)
    if (*pp == st) {
      *pp = st->next;
      break;
    }
  if (s->get == st) s->get = NULL;
}

static void zombie_add(hstream *st) {
  mcp_http *h = st->h;
  if (st->zombie) return;
  st->zombie = true;
  st->next = h->zombies;
  h->zombies = st;
  mark_dirty(h);
}

/* The request stops draining st. An ephemeral stream then goes (cancelling an unanswered
 * call: its session core is freed); a session stream stays for resumption unless it is
 * finished and read. Streams are freed later (free_zombies): st may be in use up the stack. */
static void stream_detach(hstream *st) {
  hreq *r = st->req;
  mcp_http *h = st->h;
  if (r) {
    r->st = NULL;
    st->req = NULL;
    if (h->pending) h->pending--;
  }
  st->detached_at = clock_mono_ms();
  if (!st->sess) {
    zombie_add(st);
    return;
  }
  if (st->is_get || st->zombie) return;
  if (st->final && (!st->sse || sse_stream_unread(st->sse) == 0)) {
    sess_stream_unlink(st->sess, st);
    zombie_add(st);
    return;
  }
  /* keep a bounded number of detached streams for Last-Event-ID */
  size_t n = 0;
  hstream *oldest = NULL;
  for (hstream *x = st->sess->streams; x; x = x->next)
    if (!x->req && !x->is_get) {
      n++;
      if (!oldest || x->detached_at < oldest->detached_at) oldest = x;
    }
  if (n > MAX_DETACHED_STREAMS && oldest) {
    sess_stream_unlink(st->sess, oldest);
    zombie_add(oldest);
  }
}

/* One outgoing message for stream st (msg malloc'd; taken). `response`: the answer to st's
 * request, error_code its JSON-RPC error (0 = a result). */
static void stream_deliver(hstream *st, char *msg, size_t len, bool response, int error_code) {
  mcp_http *h = st->h;
  if (st->final || st->zombie) { /* nothing may follow the response */
    free(msg);
    return;
  }
  bool final = response && !st->is_get;
  hreq *r = st->req;
  if (final && !st->sse) {
    st->final = true;
    if (r && !r->answered) {
      unsigned status = error_code ? http_status_for_rpc_error(error_code, !st->sess) : MHD_HTTP_OK;
      if (error_code == HTTP_RPC_INSUFFICIENT_SCOPE) {
        /* MCP authorization §Scope Challenge Handling: 403 with the scopes the call needs */
        status = MHD_HTTP_FORBIDDEN;
        char w[1024];
        snprintf(w, sizeof w,
                 "Bearer error=\"insufficient_scope\", scope=\"%s\", "
                 "resource_metadata=\"%s/.well-known/oauth-protected-resource/mcp\"",
                 h->forbidden_scope, r->l->base);
        free(r->www);
        r->www = strdup(w);
      }
      respond_take(r, status, "application/json", msg, len);
      stream_detach(st);
      return;
    }
    free(msg); /* the client left before anything was sent: nobody can resume this */
    if (!r) stream_detach(st);
    return;
  }
  if (!st->sse) {
    st->sse = sse_stream_new(st->no, st->sess != NULL, st->is_get ? GET_STREAM_MAX : h->o.max_stream_bytes,
                             st->sess ? STREAM_RETAIN_BYTES : 0);
    if (!st->sse) {
      free(msg);
      return;
    }
    if (st->sess && sse_stream_prime(st->sse) != 0) { /* only out of memory: the event below says the rest */
    }
  }
  int rc = sse_stream_event(st->sse, msg, len);
  free(msg);
  if (rc == -ENOBUFS) {
    if (st->is_get && !r) { /* nobody listens on the GET stream: drop, do not grow */
      log_debug("http: GET stream buffer full; event dropped", NULL);
      return;
    }
    log_warn("http: client does not read its SSE stream; ending it", "{s:I}", "unread",
             (json_int_t)sse_stream_unread(st->sse));
    st->overflow = true;
    st->final = true;
  } else if (rc != 0) {
    return;
  }
  if (final) st->final = true;
  if (!r) return;
  if (!r->answered) respond_sse(r);
  else req_wake(r);
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *out, size_t max) {
  hreq *r = cls;
  (void)pos;
  if (r->gone) return MHD_CONTENT_READER_END_WITH_ERROR;
  hstream *st = r->st;
  if (!st) return MHD_CONTENT_READER_END_OF_STREAM;
  if (st->sse) {
    size_t n = sse_stream_read(st->sse, out, max);
    if (n > 0) {
      st->last_out = clock_mono_ms();
      return (ssize_t)n;
    }
  }
  if (st->overflow) {
    stream_detach(st);
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  if (st->final) {
    stream_detach(st);
    return MHD_CONTENT_READER_END_OF_STREAM;
  }
  req_suspend(r);
  return 0;
}

static hstream *stream_new(mcp_http *h, hsess *s, json_t *rid) {
  hstream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->h = h;
  st->sess = s;
  st->rid = json_incref(rid);
  if (s) {
    st->no = ++s->next_no;
    st->next = s->streams;
    s->streams = st;
  }
  return st;
}

/* ---------- routing the output of a session core ---------- */


/* 2026-07-28: everything an ephemeral session says belongs to its one request. */
static void eph_route(void *ud, const mcp_session_out *out, char *msg, size_t len) {
  stream_deliver(ud, msg, len, out->kind == MCP_OUT_RESPONSE, out->error_code);
}

static hstream *get_stream(hsess *s) {
  if (!s->get) {
    hstream *st = stream_new(s->h, s, NULL);
    if (!st) return NULL;
    st->is_get = true;
    s->get = st;
  }
  return s->get;
}

/* The open POST stream of request `id` in session s (the one being fed first: a duplicate id
 * is answered on the POST that carried it). */
static hstream *stream_of(hsess *s, const json_t *id) {
  hstream *f = s->h->feeding;
  if (f && f->sess == s && !f->final && f->rid && json_equal(f->rid, (json_t *)id)) return f;
  for (hstream *st = s->streams; st; st = st->next)
    if (!st->is_get && !st->final && st->rid && json_equal(st->rid, (json_t *)id)) return st;
  return NULL;
}

/* 2025-11-25 (mcp/session.h "Per-request routing"): a response, and the notifications and
 * server-to-client requests a request causes, go to that request's stream; messages of the
 * session as a whole to its GET stream. A response without a request id is an error about the
 * message being fed: the POST that carried it gets it (a refused notification: 400). */
static void sess_route(void *ud, const mcp_session_out *out, char *msg, size_t len) {
  hsess *s = ud;
  mcp_http *h = s->h;
  hstream *to = NULL;
  if (out->request_id) {
    to = stream_of(s, out->request_id);
  } else if (out->kind == MCP_OUT_RESPONSE) {
    if (h->feeding && h->feeding->sess == s && !h->feeding->final) {
      to = h->feeding;
    } else if (h->capturing == s && !h->captured) {
      h->captured = msg;
      h->captured_len = len;
      return;
    }
  }
  if (!to && out->kind == MCP_OUT_RESPONSE) {
    log_debug("http: a response for no open request; dropped", NULL);
    free(msg);
    return;
  }
  if (!to) to = get_stream(s); /* session-wide, or for a request whose stream is gone */
  if (!to) {
    free(msg);
    return;
  }
  stream_deliver(to, msg, len, out->kind == MCP_OUT_RESPONSE, out->error_code);
}

/* ---------- sessions (2025-11-25) ---------- */

static unsigned sess_hash(const char *id) {
  uint32_t x = 2166136261u;
  for (; *id; id++) x = (x ^ (unsigned char)*id) * 16777619u;
  return x % SESSION_BUCKETS;
}

static hsess *sess_find(mcp_http *h, const char *id) {
  if (!id || strlen(id) != SESSION_ID_LEN) return NULL;
  for (hsess *s = h->buckets[sess_hash(id)]; s; s = s->hnext)
    if (sodium_memcmp(s->id, id, SESSION_ID_LEN) == 0) return s;
  return NULL;
}

static void lru_unlink(mcp_http *h, hsess *s) {
  if (s->prev) s->prev->next = s->next;
  else h->lru = s->next;
  if (s->next) s->next->prev = s->prev;
  else h->lru_tail = s->prev;
  s->prev = s->next = NULL;
}

static void lru_push(mcp_http *h, hsess *s) {
  s->prev = NULL;
  s->next = h->lru;
  if (h->lru) h->lru->prev = s;
  h->lru = s;
  if (!h->lru_tail) h->lru_tail = s;
}

static void sess_touch(hsess *s) {
  s->last_used = clock_mono_ms();
  if (s->h->lru != s) {
    lru_unlink(s->h, s);
    lru_push(s->h, s);
  }
}

static bool sess_busy(hsess *s) {
  if (mcp_session_inflight(s->ms) > 0) return true;
  for (hstream *st = s->streams; st; st = st->next)
    if (st->req) return true;
  return false;
}

/* Ends a session: requests attached to its streams end (an undecided one gets 404), in-flight
 * calls are detached, the id is forgotten. Never called from inside its session core. */
static void sess_end(hsess *s, const char *why) {
  mcp_http *h = s->h;
  log_info("http: session ended", "{s:s, s:s}", "session", s->id, "reason", why);
  for (hsess **pp = &h->buckets[sess_hash(s->id)]; *pp; pp = &(*pp)->hnext)
    if (*pp == s) {
      *pp = s->hnext;
      break;
    }
  lru_unlink(h, s);
  h->nsessions--;
  while (s->streams) {
    hstream *st = s->streams;
    s->streams = st->next;
    hreq *r = st->req;
    if (r) {
      r->st = NULL;
      st->req = NULL;
      if (h->pending) h->pending--;
      r->sid = NULL;
      if (!r->answered) respond_rpc_error(r, MHD_HTTP_NOT_FOUND, HTTP_RPC_SESSION_NOT_FOUND, "Session terminated", NULL, NULL);
      req_wake(r); /* an SSE reader sees no stream and ends */
    }
    st->sess = NULL; /* freed below; the stream goes with the zombies */
    st->zombie = true;
    st->next = h->zombies;
    h->zombies = st;
  }
  mark_dirty(h);
  s->get = NULL;
  mcp_session_free(s->ms);
  sodium_memzero(s->id, sizeof s->id);
  free(s);
}

/* Room for one more session: ends the least recently used idle one when full. */
static bool sess_make_room(mcp_http *h) {
  if (h->nsessions < h->o.max_sessions) return true;
  for (hsess *s = h->lru_tail; s; s = s->prev)
    if (!sess_busy(s)) {
      sess_end(s, "evicted: max_sessions reached");
      return true;
    }
  return false;
}

/* A tools/call refused for a missing scope becomes a JSON-RPC error the transport answers with
 * 403 insufficient_scope (stream_deliver); everything else is shaped by the session core. */
static bool shape_forbidden(mcp_http *h, const mcp_call_outcome *o, mcp_session_shaped *out) {
  if (o->status != MCP_DISPATCH_FORBIDDEN || !o->tool) return false;
  auth_scopes need = mcp_tool_def_of(o->tool)->scopes;
  auth_scopes_format(&need, h->forbidden_scope, sizeof h->forbidden_scope);
  out->code = HTTP_RPC_INSUFFICIENT_SCOPE;
  out->message = "Forbidden: insufficient_scope (the access token lacks a scope this tool requires)";
  return true;
}
static bool sess_shaper(void *ud, const mcp_call_outcome *o, mcp_session_shaped *out) {
  return shape_forbidden(((hsess *)ud)->h, o, out);
}
static bool eph_shaper(void *ud, const mcp_call_outcome *o, mcp_session_shaped *out) {
  return shape_forbidden(((hstream *)ud)->h, o, out);
}

static hsess *sess_new(mcp_http *h, const mcp_auth *auth) {
  hsess *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->h = h;
  s->auth = *auth;
  unsigned char raw[SESSION_ID_BYTES];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2base64(s->id, sizeof s->id, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, sizeof raw);
  mcp_session_opts so = {
      .dispatcher = h->o.dispatcher,
      .auth = &s->auth,
      .page_size = h->o.page_size,
      .max_message_bytes = h->o.max_body_bytes,
      .tasks = h->o.tasks,
      .route = sess_route,
      .transport = "http",
      .send_ud = s,
      .result_shaper = sess_shaper,
      .hook_ud = s,
  };
  if (mcp_session_new(&so, &s->ms) != 0) {
    free(s);
    return NULL;
  }
  unsigned b = sess_hash(s->id);
  s->hnext = h->buckets[b];
  h->buckets[b] = s;
  lru_push(h, s);
  s->last_used = clock_mono_ms();
  h->nsessions++;
  return s;
}

/* ---------- POST ---------- */

static const char *check_param_headers(hreq *r, json_t *params, char *why, size_t whylen);

/* 2026-07-28 §Standard Request Headers: Mcp-Method always, Mcp-Name for tools/call,
 * resources/read and prompts/get (and, when sent, the tasks methods), Mcp-Param-* for a tool's
 * x-mcp-header arguments. Returns NULL when they match the body, else the -32020 message. The
 * version header against _meta is the session core's check (mcp_session_feed_json_versioned). */
static const char *check_standard_headers(hreq *r, json_t *msg, char *why, size_t whylen) {
  const char *method = NULL, *body_name = NULL;
  mcp_session_msg_route(msg, &method, &body_name);
  if (!method) return NULL; /* the session core answers what is wrong with it */
  const char *hm = hdr(r->mc, "Mcp-Method");
  if (!hm) return "Header mismatch: the Mcp-Method header is required";
  if (strcmp(hm, method) != 0) {
    snprintf(why, whylen, "Header mismatch: Mcp-Method header value '%.64s' does not match body value '%.64s'", hm, method);
    return why;
  }
  bool required = strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0 ||
                  strcmp(method, "resources/read") == 0;
  const char *hn = hdr(r->mc, "Mcp-Name");
  if (!body_name) return NULL; /* the session core reports the missing field */
  if (!hn) return required ? "Header mismatch: the Mcp-Name header is required" : NULL;
  char *dec = malloc(MAX_NAME_HEADER);
  if (!dec) return "Header mismatch: out of memory";
  long dl = http_header_value_decode(hn, dec, MAX_NAME_HEADER);
  const char *res = NULL;
  if (dl < 0) res = "Header mismatch: the Mcp-Name header value is malformed";
  else if (strcmp(dec, body_name) != 0) {
    snprintf(why, whylen, "Header mismatch: Mcp-Name header value '%.64s' does not match body value '%.64s'", dec,
             body_name);
    res = why;
  }
  free(dec);
  if (!res && strcmp(method, "tools/call") == 0)
    res = check_param_headers(r, json_object_get(msg, "params"), why, whylen);
  return res;
}

/* x-mcp-header (2026-07-28 §Custom Headers): every annotated property of the tool's input schema
 * whose argument is present and not null needs an Mcp-Param-<Name> header with the same value
 * (numbers compared numerically, booleans as true/false). Returns NULL or the failure. */
static const char *check_param_props(hreq *r, json_t *schema, json_t *value, int depth, char *why, size_t whylen) {
  json_t *props = json_object_get(schema, "properties");
  if (!json_is_object(props) || !json_is_object(value) || depth > 8) return NULL;
  const char *k;
  json_t *sub;
  json_object_foreach(props, k, sub) {
    json_t *v = json_object_get(value, k);
    if (!v || json_is_null(v)) continue;
    const char *hname = json_string_value(json_object_get(sub, "x-mcp-header"));
    if (hname) {
      char hn[160];
      snprintf(hn, sizeof hn, "Mcp-Param-%.140s", hname);
      const char *hv = hdr(r->mc, hn);
      if (!hv) {
        snprintf(why, whylen, "Header mismatch: the %s header is required (argument %.64s is present)", hn, k);
        return why;
      }
      char dec[1024];
      if (http_header_value_decode(hv, dec, sizeof dec) < 0) {
        snprintf(why, whylen, "Header mismatch: the %s header value is malformed", hn);
        return why;
      }
      bool ok;
      if (json_is_string(v)) ok = strcmp(dec, json_string_value(v)) == 0;
      else if (json_is_boolean(v)) ok = strcmp(dec, json_is_true(v) ? "true" : "false") == 0;
      else if (json_is_number(v)) {
        char *end = NULL;
        double d = strtod(dec, &end);
        ok = end && end != dec && *end == 0 && d == json_number_value(v);
      } else ok = false; /* objects and arrays cannot be mirrored */
      if (!ok) {
        snprintf(why, whylen, "Header mismatch: %s header value '%.64s' does not match argument %.64s", hn, dec, k);
        return why;
      }
    }
    const char *res = check_param_props(r, sub, v, depth + 1, why, whylen);
    if (res) return res;
  }
  return NULL;
}

static const char *check_param_headers(hreq *r, json_t *params, char *why, size_t whylen) {
  const char *name = json_string_value(json_object_get(params, "name"));
  const mcp_tool *t = name ? mcp_registry_find(mcp_dispatcher_registry(r->h->o.dispatcher), name) : NULL;
  json_t *args = json_object_get(params, "arguments");
  if (!t || !json_is_object(args)) return NULL;
  return check_param_props(r, mcp_tool_input_schema(t), args, 0, why, whylen);
}

/* Runs msg on a fresh ephemeral session whose output goes to a new stream for r. */
static void post_modern(hreq *r, json_t *msg, json_t *id, const char *hv) {
  mcp_http *h = r->h;
  hstream *st = stream_new(h, NULL, id);
  if (st) st->eph_auth = r->ar.auth;
  mcp_session_opts so = {
      .dispatcher = h->o.dispatcher,
      .auth = st ? &st->eph_auth : NULL,
      .page_size = h->o.page_size,
      .max_message_bytes = h->o.max_body_bytes,
      .tasks = h->o.tasks,
      .route = eph_route,
      .transport = "http",
      .send_ud = st,
      .result_shaper = eph_shaper,
      .hook_ud = st,
  };
  if (!st || mcp_session_new(&so, &st->eph) != 0) {
    if (st) stream_free(st);
    respond_rpc_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, MCP_RPC_INTERNAL_ERROR, "out of memory", id, NULL);
    return;
  }
  stream_attach(st, r);
  h->pending++;
  r->watch_cancels = true;
  mcp_session_feed_json_versioned(st->eph, msg, hv); /* an answer that comes later: see on_access */
}

static void post_legacy(hreq *r, json_t *msg, json_t *id, const char *method, bool is_request) {
  mcp_http *h = r->h;
  const char *sid = hdr(r->mc, "Mcp-Session-Id");
  const char *hv = hdr(r->mc, "MCP-Protocol-Version");
  hsess *s = NULL;
  bool init = is_request && method && strcmp(method, "initialize") == 0;
  if (init) {
    if (!sess_make_room(h)) {
      respond_rpc_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, MCP_RPC_INTERNAL_ERROR, "Too many sessions; retry later", id, NULL);
      return;
    }
    s = sess_new(h, &r->ar.auth);
    if (!s) {
      respond_rpc_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, MCP_RPC_INTERNAL_ERROR, "out of memory", id, NULL);
      return;
    }
    log_info("http: session created", "{s:s}", "session", s->id);
  } else {
    if (!sid) {
      respond_rpc_error(r, MHD_HTTP_BAD_REQUEST, MCP_RPC_SERVER_ERROR, "Bad Request: Mcp-Session-Id header is required", id, NULL);
      return;
    }
    s = sess_find(h, sid);
    if (!s || !same_principal(&s->auth, &r->ar.auth)) {
      respond_rpc_error(r, MHD_HTTP_NOT_FOUND, HTTP_RPC_SESSION_NOT_FOUND, "Session not found", id, NULL);
      return;
    }
    s->auth = r->ar.auth; /* the same subject's latest token: its scopes and expiry from now on */
    if (hv && !legacy_version_known(hv)) {
      respond_rpc_error(r, MHD_HTTP_BAD_REQUEST, MCP_RPC_SERVER_ERROR, "Bad Request: Unsupported protocol version", id,
                        json_pack("{s:s, s:[s,s,s,s]}", "requested", hv, "supported", k_legacy_versions[0],
                                  k_legacy_versions[1], k_legacy_versions[2], k_legacy_versions[3]));
      return;
    }
  }
  sess_touch(s);
  r->sid = s->id;
  if (!is_request) { /* a notification, or a response to a server-to-client request */
    h->capturing = s;
    mcp_session_feed_json(s->ms, msg);
    h->capturing = NULL;
    if (h->captured) { /* "If the server cannot accept the input, … 400" */
      char *c = h->captured;
      h->captured = NULL;
      respond_take(r, MHD_HTTP_BAD_REQUEST, "application/json", c, h->captured_len);
    } else {
      respond_empty(r, MHD_HTTP_ACCEPTED);
    }
    return;
  }
  hstream *st = stream_new(h, s, id);
  if (!st) {
    respond_rpc_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, MCP_RPC_INTERNAL_ERROR, "out of memory", id, NULL);
    if (init) sess_end(s, "out of memory");
    return;
  }
  stream_attach(st, r);
  h->pending++;
  hstream *prev = h->feeding;
  h->feeding = st;
  mcp_session_feed_json(s->ms, msg);
  h->feeding = prev;
  if (init && st->final && !mcp_session_ready(s->ms)) { /* initialize failed: no session */
    r->sid = NULL;
    sess_end(s, "initialize failed");
  }
}

static void handle_post(hreq *r) {
  size_t len = buf_len(&r->body);
  const char *text = len ? (const char *)buf_ptr(&r->body) : "";
  json_error_t jerr;
  json_t *msg = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
  if (!msg) {
    char m[240];
    snprintf(m, sizeof m, "Parse error: %s (at byte %d)", jerr.text, jerr.position);
    respond_rpc_error(r, MHD_HTTP_BAD_REQUEST, MCP_RPC_PARSE_ERROR, m, NULL, NULL);
    return;
  }
  if (!json_is_object(msg)) {
    respond_rpc_error(r, MHD_HTTP_BAD_REQUEST, MCP_RPC_INVALID_REQUEST,
                      json_is_array(msg) ? "Invalid Request: JSON-RPC batches are not supported"
                                         : "Invalid Request: expected a JSON object",
                      NULL, NULL);
    json_decref(msg);
    return;
  }
  json_t *id = json_object_get(msg, "id");
  if (id && !json_is_string(id) && !json_is_integer(id)) id = NULL; /* never echo a bad id */
  const char *method = json_string_value(json_object_get(msg, "method"));
  bool has_method = json_object_get(msg, "method") != NULL;
  bool is_request = has_method && json_object_get(msg, "id") != NULL;
  bool is_response = !has_method && (json_object_get(msg, "result") || json_object_get(msg, "error"));
  json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
  const char *bv = json_string_value(json_object_get(meta, "io.modelcontextprotocol/protocolVersion"));
  const char *hv = hdr(r->mc, "MCP-Protocol-Version");
  const char *sid = hdr(r->mc, "Mcp-Session-Id");
  /* the era, per request: a 2026-07-28 request says so in _meta, or sends a version header that
   * no 2025-11-25-style session knows (without a session id: a stateless client) */
  bool modern = bv || (hv && !legacy_version_known(hv) && !sid);
  if (!modern) {
    post_legacy(r, msg, id, method, is_request);
  } else if (is_response || !has_method) {
    respond_rpc_error(r, MHD_HTTP_BAD_REQUEST, MCP_RPC_INVALID_REQUEST,
                      "Invalid Request: a 2026-07-28 client sends only requests and notifications", id, NULL);
  } else if (!is_request) {
    respond_empty(r, MHD_HTTP_ACCEPTED); /* no notification means anything over stateless HTTP */
  } else if (!hv) {
    respond_rpc_error(r, MHD_HTTP_BAD_REQUEST, MCP_RPC_HEADER_MISMATCH,
                      "Header mismatch: the MCP-Protocol-Version header is required", id, NULL);
  } else if (!bv && strcmp(hv, MCP_PROTOCOL_MODERN) != 0) { /* a version nobody here speaks */
    respond_rpc_error(r, MHD_HTTP_BAD_REQUEST, MCP_RPC_UNSUPPORTED_VERSION, "Unsupported protocol version", id,
                      json_pack("{s:[s,s,s,s,s], s:s}", "supported", MCP_PROTOCOL_MODERN, k_legacy_versions[0],
                                k_legacy_versions[1], k_legacy_versions[2], k_legacy_versions[3], "requested", hv));
  } else {
    char why[1024];
    const char *bad = check_standard_headers(r, msg, why, sizeof why);
    if (bad) respond_rpc_error(r, MHD_HTTP_BAD_REQUEST, MCP_RPC_HEADER_MISMATCH, bad, id, NULL);
    else post_modern(r, msg, id, hv);
  }
  json_decref(msg);
}

/* ---------- GET and DELETE ---------- */

static hsess *session_of(hreq *r) {
  const char *sid = hdr(r->mc, "Mcp-Session-Id");
  if (!sid) {
    respond_rpc_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, MCP_RPC_SERVER_ERROR, "Method Not Allowed: no session (2026-07-28 has no GET or DELETE)", NULL, NULL);
    return NULL;
  }
  hsess *s = sess_find(r->h, sid);
  if (!s || !same_principal(&s->auth, &r->ar.auth)) {
    respond_rpc_error(r, MHD_HTTP_NOT_FOUND, HTTP_RPC_SESSION_NOT_FOUND, "Session not found", NULL, NULL);
    return NULL;
  }
  const char *hv = hdr(r->mc, "MCP-Protocol-Version");
  if (hv && !legacy_version_known(hv)) {
    respond_rpc_error(r, MHD_HTTP_BAD_REQUEST, MCP_RPC_SERVER_ERROR, "Bad Request: Unsupported protocol version", NULL, NULL);
    return NULL;
  }
  sess_touch(s);
  r->sid = s->id;
  return s;
}

static void handle_get(hreq *r) {
  hsess *s = session_of(r);
  if (!s) return;
  hstream *st = NULL;
  const char *last = hdr(r->mc, "Last-Event-ID");
  uint32_t no;
  uint64_t seq;
  if (last && sse_event_id_parse(last, &no, &seq)) {
    for (hstream *x = s->streams; x; x = x->next)
      if (x->no == no) st = x;
    if (st && (!st->sse || sse_stream_rewind(st->sse, seq) != 0)) st = NULL;
    if (st) log_debug("http: stream resumed", "{s:s, s:s}", "session", s->id, "last_event_id", last);
  }
  if (!st) st = get_stream(s);
  if (!st) {
    respond_rpc_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, MCP_RPC_INTERNAL_ERROR, "out of memory", NULL, NULL);
    return;
  }
  if (st->req && last) { /* resuming: the old connection is gone (the client would not resume
                            otherwise), even if its close has not been seen yet */
    hreq *old = st->req;
    stream_detach(st);
    old->gone = true;
    req_wake(old);
  }
  if (st->req) { /* one connection per stream */
    respond_rpc_error(r, MHD_HTTP_CONFLICT, MCP_RPC_SERVER_ERROR, "Conflict: only one SSE stream is allowed per session", NULL, NULL);
    return;
  }
  if (!st->sse) {
    st->sse = sse_stream_new(st->no, true, st->is_get ? GET_STREAM_MAX : r->h->o.max_stream_bytes, STREAM_RETAIN_BYTES);
    if (!st->sse) {
      respond_rpc_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, MCP_RPC_INTERNAL_ERROR, "out of memory", NULL, NULL);
      return;
    }
  }
  if (sse_stream_unread(st->sse) == 0 && sse_stream_prime(st->sse) != 0) {
    respond_rpc_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, MCP_RPC_INTERNAL_ERROR, "out of memory", NULL, NULL);
    return;
  }
  stream_attach(st, r);
  r->h->pending++;
  respond_sse(r);
}

static void handle_delete(hreq *r) {
  hsess *s = session_of(r);
  if (!s) return;
  r->sid = NULL;
  sess_end(s, "deleted by the client");
  respond_empty(r, MHD_HTTP_OK);
}

/* ---------- health ---------- */

static void handle_health(hreq *r, bool ready_check) {
  mcp_http *h = r->h;
  if (!ready_check) {
    respond_text(r, MHD_HTTP_OK, "application/json", "{\"status\":\"ok\"}");
    return;
  }
  bool ok = h->ready && !h->stopping;
  char why[1024] = "";
  if (ok && h->o.ready_check && !h->o.ready_check(h->o.ready_ud, why, sizeof why)) { /* e.g. a store down */
    json_t *j = json_pack("{s:s, s:s}", "status", "not_ready", "reason", why);
    char *b = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (b) respond_take(r, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", b, strlen(b));
    else respond_text(r, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", "{\"status\":\"not_ready\"}");
    return;
  }
  respond_text(r, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json",
               ok ? "{\"status\":\"ready\"}" : (h->stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"starting\"}"));
}

/* ---------- the MHD callbacks ---------- */

static hconn *conn_of(struct MHD_Connection *mc) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
  size_t *n = cls;
  (void)kind;
  *n += strlen(key) + (value ? strlen(value) : 0) + 4;
  return MHD_YES;
}

/* First call for a request: the headers are in. Answers what can be answered from them. */
static void request_begin(hreq *r, const char *url, const char *method) {
  mcp_http *h = r->h;
  if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0) {
    r->kind = RQ_OTHER;
    if (r->c) r->c->deadline = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
      respond_text(r, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", "{\"error\":\"method not allowed\"}");
      return;
    }
    handle_health(r, url[1] == 'r');
    return;
  }
  if (strcmp(url, "/mcp") != 0 || h->o.no_mcp) {
    r->kind = RQ_OTHER;
    mcp_http_reply rep = {0};
    if (h->o.route && h->o.route(h->o.route_ud, method, url, &rep)) {
      respond_take(r, rep.status ? rep.status : MHD_HTTP_OK, rep.content_type ? rep.content_type : "text/plain",
                   rep.body ? rep.body : strdup(""), rep.body ? rep.body_len : 0);
      return;
    }
    respond_text(r, MHD_HTTP_NOT_FOUND, "application/json",
                 h->o.no_mcp ? "{\"error\":\"not found: this listener serves /metrics, /healthz and /readyz\"}"
                             : "{\"error\":\"not found: the MCP endpoint is /mcp\"}");
    return;
  }
  h->requests++;
  if (strcmp(method, "POST") != 0 && r->c) r->c->deadline = 0; /* no body to wait for */
  size_t hbytes = strlen(url) + strlen(method) + 16;
  MHD_get_connection_values(r->mc, MHD_HEADER_KIND, count_header, &hbytes);
  if (hbytes > h->o.max_header_bytes) { /* libmicrohttpd's own ceiling is its memory pool, coarser */
    respond_rpc_error(r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE, MCP_RPC_INVALID_REQUEST,
                      "Request Header Fields Too Large", NULL, NULL);
    return;
  }
  if (strcmp(method, "POST") == 0) r->kind = RQ_POST;
  else if (strcmp(method, "GET") == 0) r->kind = RQ_GET;
  else if (strcmp(method, "DELETE") == 0) r->kind = RQ_DELETE;
  else {
    r->kind = RQ_OTHER;
    respond_rpc_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, MCP_RPC_SERVER_ERROR, "Method Not Allowed", NULL, NULL);
    return;
  }
  /* DNS rebinding (2025-11-25 §Security Warning): Host and Origin, both */
  const char *host = hdr(r->mc, MHD_HTTP_HEADER_HOST);
  const char *origin = hdr(r->mc, "Origin");
  if (!http_host_allowed(&h->policy, host)) {
    log_warn("http: request refused: Host not allowed", "{s:s}", "host", host ? host : "");
    respond_rpc_error(r, MHD_HTTP_FORBIDDEN, MCP_RPC_SERVER_ERROR, "Forbidden: Host header not allowed", NULL, NULL);
    return;
  }
  if (!http_origin_allowed(&h->policy, origin)) {
    log_warn("http: request refused: Origin not allowed", "{s:s}", "origin", origin);
    respond_rpc_error(r, MHD_HTTP_FORBIDDEN, MCP_RPC_SERVER_ERROR, "Forbidden: Origin not allowed", NULL, NULL);
    return;
  }
  if (h->stopping) {
    respond_rpc_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, MCP_RPC_INTERNAL_ERROR, "Server is shutting down", NULL, NULL);
    return;
  }
  /* Authentication (issue 13): NULL hook = the local operator. */
  auth_ctx_local(&r->ar.auth);
  if (h->o.authenticate) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[INET6_ADDRSTRLEN] = "";
    if (ci && ci->client_addr) {
      if (ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)ci->client_addr)->sin_addr, addr, sizeof addr);
      else if (ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ci->client_addr)->sin6_addr, addr, sizeof addr);
    }
    mcp_http_request_info ri = {.method = method, .path = url, .authorization = hdr(r->mc, "Authorization"),
                                .remote_addr = addr, .base_url = r->l->base};
    static const char *const k_query_tokens[] = {"access_token", "token", "jwt"};
    for (size_t i = 0; i < sizeof k_query_tokens / sizeof k_query_tokens[0]; i++)
      if (MHD_lookup_connection_value(r->mc, MHD_GET_ARGUMENT_KIND, k_query_tokens[i])) ri.token_in_query = true;
    memset(&r->ar, 0, sizeof r->ar);
    if (h->o.authenticate(h->o.auth_ud, &ri, &r->ar) != 0 || r->ar.status) {
      unsigned st = r->ar.status ? r->ar.status : MHD_HTTP_UNAUTHORIZED;
      struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
      if (resp) {
        if (r->ar.www_authenticate[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->ar.www_authenticate);
        if (MHD_queue_response(r->mc, st, resp) == MHD_YES) r->answered = true;
        MHD_destroy_response(resp);
      }
      h->rejected++;
      return;
    }
  }
  if (r->kind == RQ_POST) {
    if (!http_content_type_is_json(hdr(r->mc, MHD_HTTP_HEADER_CONTENT_TYPE))) {
      respond_rpc_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, MCP_RPC_SERVER_ERROR,
                        "Unsupported Media Type: Content-Type must be application/json", NULL, NULL);
      return;
    }
    const char *acc = hdr(r->mc, MHD_HTTP_HEADER_ACCEPT);
    if (!http_accepts(acc, "application/json") || !http_accepts(acc, "text/event-stream")) {
      respond_rpc_error(r, MHD_HTTP_NOT_ACCEPTABLE, MCP_RPC_SERVER_ERROR,
                        "Not Acceptable: Client must accept both application/json and text/event-stream", NULL, NULL);
      return;
    }
    const char *cl = hdr(r->mc, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
      char *end = NULL;
      unsigned long long v = strtoull(cl, &end, 10);
      if (end && *end == 0 && v > h->o.max_body_bytes) {
        char m[128];
        snprintf(m, sizeof m, "Content Too Large: the body limit is %zu bytes", h->o.max_body_bytes);
        respond_rpc_error(r, MHD_HTTP_CONTENT_TOO_LARGE, MCP_RPC_INVALID_REQUEST, m, NULL, NULL);
        return;
      }
    }
    buf_init(&r->body, h->o.max_body_bytes);
    return; /* the body follows */
  }
  if (r->kind == RQ_GET) {
    if (!http_accepts(hdr(r->mc, MHD_HTTP_HEADER_ACCEPT), "text/event-stream")) {
      respond_rpc_error(r, MHD_HTTP_NOT_ACCEPTABLE, MCP_RPC_SERVER_ERROR, "Not Acceptable: Client must accept text/event-stream", NULL, NULL);
      return;
    }
    handle_get(r);
    return;
  }
  handle_delete(r);
}

static enum MHD_Result handle_access(listener *l, struct MHD_Connection *mc, const char *url, const char *method,
                              const char *upload, size_t *upload_size, hreq **rp);

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  listener *l = cls;
  hreq *r = *con_cls;
  (void)version;
  if (r) r->in_handler = true;
  enum MHD_Result res = handle_access(l, mc, url, method, upload, upload_size, &r);
  if (!*con_cls) *con_cls = r;
  if (r) r->in_handler = false;
  return res;
}

/* The access handler proper. libmicrohttpd calls it once with the headers, once per body chunk,
 * then ("final") again and again until a response is queued or the connection is suspended.
 * Waiting answers are polled, not suspended, for a few calls: a quick tool call then costs no
 * epoll_ctl for suspend/resume (libmicrohttpd removes and re-adds a suspended socket). */
static enum MHD_Result handle_access(listener *l, struct MHD_Connection *mc, const char *url, const char *method,
                              const char *upload, size_t *upload_size, hreq **rp) {
  mcp_http *h = l->h;
  hreq *r = *rp;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return MHD_NO;
    r->h = h;
    r->mc = mc;
    r->l = l;
    r->c = conn_of(mc);
    r->in_handler = true;
    *rp = r;
    if (r->c) {
      r->c->req = r;
      r->c->deadline = clock_mono_ms() + (int64_t)h->o.request_timeout_seconds * 1000; /* the body too */
    }
    request_begin(r, url, method);
    return MHD_YES;
  }
  if (*upload_size) {
    /* libmicrohttpd takes no response in the middle of an upload: past the ceiling the rest is
     * read and dropped (never stored), and 413 goes out at the end; request_timeout bounds it */
    if (!r->answered && !r->too_big && buf_append(&r->body, upload, *upload_size) != 0) {
      r->too_big = true;
      buf_free(&r->body);
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (r->c) r->c->deadline = 0;
  if (r->answered) return MHD_YES;
  if (r->later.set) {
    deliver_later(r);
    return MHD_YES;
  }
  if (r->st) { /* still waiting: poll a few times, then suspend */
    if (++r->polls >= 3) req_suspend(r);
    return MHD_YES;
  }
  if (r->too_big) {
    char m[128];
    snprintf(m, sizeof m, "Content Too Large: the body limit is %zu bytes", h->o.max_body_bytes);
    respond_rpc_error(r, MHD_HTTP_CONTENT_TOO_LARGE, MCP_RPC_INVALID_REQUEST, m, NULL, NULL);
    return MHD_YES;
  }
  if (r->kind == RQ_POST) handle_post(r);
  else respond_empty(r, MHD_HTTP_INTERNAL_SERVER_ERROR); /* never reached: other kinds answer at once */
  return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe) {
  mcp_http *h = cls;
  hreq *r = *con_cls;
  (void)mc;
  if (!r) return;
  *con_cls = NULL;
  if (r->c) {
    watch_stop(r->c);
    if (r->c->req == r) r->c->req = NULL;
    /* the next request must be whole within idle + request timeout */
    r->c->deadline = clock_mono_ms() + (int64_t)(h->o.idle_timeout_seconds + h->o.request_timeout_seconds) * 1000;
  }
  streaming_remove(r);
  if (r->st) {
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
      log_debug("http: response ended early", "{s:i}", "reason", (int)toe);
    stream_detach(r->st);
  }
  buf_free(&r->body);
  free(r->later.body);
  free(r->www);
  free(r);
  check_stopped(h);
}

static void watch_closed(uv_handle_t *hd) { free(hd); }

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  mcp_http *h = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    hconn *c = calloc(1, sizeof *c);
    if (!c) return;
    c->h = h;
    c->mc = mc;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? (int)ci->connect_fd : -1;
    c->deadline = clock_mono_ms() + (int64_t)h->o.request_timeout_seconds * 1000;
    c->next = h->conns;
    if (h->conns) h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    *socket_context = c;
    return;
  }
  hconn *c = *socket_context;
  if (!c) return;
  *socket_context = NULL;
  if (c->prev) c->prev->next = c->next;
  else h->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  h->nconns--;
  if (c->req) c->req->c = NULL;
  if (c->watch) {
    if (c->watching) uv_poll_stop(c->watch);
    uv_close((uv_handle_t *)c->watch, watch_closed);
  }
  free(c);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char m[256];
  vsnprintf(m, sizeof m, fmt, ap);
  size_t n = strlen(m);
  while (n && (m[n - 1] == '\n' || m[n - 1] == '\r')) m[--n] = 0;
  log_debug("http: libmicrohttpd", "{s:s}", "detail", m);
}

/* ---------- the sweep: slow clients, idle sessions, keep-alives ---------- */

static void on_sweep(uv_timer_t *t) {
  mcp_http *h = t->data;
  int64_t now = clock_mono_ms();
  for (hconn *c = h->conns; c; c = c->next) {
    if (c->req && c->req->suspended && !c->watching && now - c->req->suspended_at >= WATCH_AFTER_MS) watch_start(c->req);
    if (c->deadline && now > c->deadline && c->fd >= 0 && !(c->req && c->req->suspended)) {
      log_debug("http: closing a connection that did not send a whole request in time", NULL);
      c->deadline = 0;
      shutdown(c->fd, SHUT_RDWR); /* MHD sees the socket end and closes it */
      mark_dirty(h);
    }
  }
  int64_t idle_ms = (int64_t)h->o.session_idle_seconds * 1000;
  for (hsess *s = h->lru_tail, *prev; s; s = prev) {
    prev = s->prev;
    if (now - s->last_used <= idle_ms) break; /* the rest were used more recently */
    if (!sess_busy(s)) sess_end(s, "idle");
  }
  if (h->o.sse_keepalive_seconds) {
    int64_t ka = (int64_t)h->o.sse_keepalive_seconds * 1000;
    for (hreq *r = h->streaming; r; r = r->next) {
      hstream *st = r->st;
      if (st && st->sse && now - st->last_out >= ka && sse_stream_comment(st->sse) == 0) {
        st->last_out = now;
        req_wake(r);
      }
    }
  }
}

/* ---------- start / stop ---------- */

static int write_url_file(mcp_http *h) {
  if (!h->o.url_file || h->nlst == 0) return 0;
  json_t *urls = json_array();
  for (size_t i = 0; i < h->nlst; i++) json_array_append_new(urls, json_string(h->lst[i].url));
  json_t *j = json_pack("{s:s, s:o}", "url", h->lst[0].url, "urls", urls);
  char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
  json_decref(j);
  if (!text) return -ENOMEM;
  size_t pl = strlen(h->o.url_file);
  char *tmp = malloc(pl + 8);
  int rc = 0;
  if (!tmp) rc = -ENOMEM;
  else {
    snprintf(tmp, pl + 8, "%s.tmp", h->o.url_file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) rc = -errno;
    else {
      size_t n = strlen(text);
      ssize_t w = write(fd, text, n);
      if (w != (ssize_t)n || write(fd, "\n", 1) != 1) rc = w < 0 ? -errno : -EIO;
      if (close(fd) != 0 && rc == 0) rc = -errno;
      if (rc == 0 && rename(tmp, h->o.url_file) != 0) rc = -errno;
      if (rc != 0) unlink(tmp);
    }
  }
  free(tmp);
  free(text);
  return rc;
}

static int listener_start(mcp_http *h, listener *l, const char *spec, char *err, size_t errlen) {
  char host[64];
  uint16_t port;
  if (config_host_port_parse(spec, host, sizeof host, &port) != 0) {
    snprintf(err, errlen, "http.listen: \"%s\" is not HOST:PORT", spec);
    return -EINVAL;
  }
  bool v6 = strchr(host, ':') != NULL;
  l->loopback = http_addr_is_loopback(host);
  if (!l->loopback && !h->o.authenticate && !h->o.allow_unauthenticated) {
    snprintf(err, errlen,
             "http.listen: %s is not a loopback address and HTTP has no authentication; refusing to serve it "
             "(set http.allow_unauthenticated: true to serve it anyway)",
             spec);
    return -EINVAL;
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, host, &a->sin6_addr);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, host, &a->sin_addr);
  }
  l->h = h;
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO | (v6 ? MHD_USE_IPv6 : 0);
  l->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, l,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)h->o.max_connections,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(h->o.max_header_bytes + 4096),
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->o.idle_timeout_seconds,
                          MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                          MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                          MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
                          MHD_OPTION_LISTEN_BACKLOG_SIZE, 511u,
                          MHD_OPTION_STRICT_FOR_CLIENT, 1,
                          MHD_OPTION_END);
  if (!l->d) {
    int e = errno ? errno : EADDRINUSE;
    snprintf(err, errlen, "http.listen: cannot listen on %s: %s", spec, strerror(e));
    return -e;
  }
  const union MHD_DaemonInfo *pi = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_BIND_PORT);
  const union MHD_DaemonInfo *ei = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
  if (!pi || !ei || ei->epoll_fd < 0) {
    snprintf(err, errlen, "http.listen: libmicrohttpd gave no port or epoll descriptor for %s", spec);
    return -EIO;
  }
  unsigned bound = pi->port;
  char hp[64], base[MCP_HTTP_MAX_URL];
  snprintf(hp, sizeof hp, v6 ? "[%s]:%u" : "%s:%u", host, bound);
  snprintf(base, sizeof base, "http://%s", hp);
  memcpy(l->hostport, hp, sizeof hp);
  memcpy(l->base, base, sizeof base);
  snprintf(l->url, sizeof l->url, "%s/mcp", base);
  if (uv_poll_init(h->loop, &l->poll, ei->epoll_fd) != 0) {
    snprintf(err, errlen, "http.listen: cannot watch the libmicrohttpd descriptor for %s", spec);
    return -EIO;
  }
  l->poll_init = true;
  l->poll.data = l;
  h->handles_open++;
  uv_poll_start(&l->poll, UV_READABLE, on_epoll);
  return 0;
}

static void handle_closed(uv_handle_t *hd) {
  mcp_http *h = hd->data;
  if (--h->handles_open == 0) free(h);
}

static void listener_poll_closed(uv_handle_t *hd) {
  listener *l = hd->data; /* the poll's data is its listener */
  mcp_http *h = l->h;
  if (--h->handles_open == 0) free(h);
}

/* Resumes every suspended connection (MHD_stop_daemon requires it) and stops the daemons. */
static void listeners_stop(mcp_http *h) {
  for (hconn *c = h->conns; c; c = c->next) {
    hreq *r = c->req;
    if (r && r->suspended) {
      r->gone = true;
      if (!r->answered) respond_empty(r, MHD_HTTP_SERVICE_UNAVAILABLE);
      req_wake(r);
    }
  }
  for (size_t i = 0; i < h->nlst; i++) {
    listener *l = &h->lst[i];
    if (l->poll_init) uv_poll_stop(&l->poll);
    if (l->d) {
      MHD_run(l->d); /* let resumed connections finish their state change */
      MHD_stop_daemon(l->d);
      l->d = NULL;
    }
  }
}

int mcp_http_start(uv_loop_t *loop, const mcp_http_opts *opts, mcp_http **out, char *err, size_t errlen) {
  *out = NULL;
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = 0;
  if (!opts || !opts->dispatcher || opts->n_listen == 0 || opts->n_listen > MCP_HTTP_MAX_LISTENERS) {
    snprintf(err, errlen, "http: no dispatcher or no listen address (at most %d)", MCP_HTTP_MAX_LISTENERS);
    return -EINVAL;
  }
  if (sodium_init() < 0) {
    snprintf(err, errlen, "http: libsodium failed to initialise");
    return -EIO;
  }
  mcp_http *h = calloc(1, sizeof *h);
  if (!h) return -ENOMEM;
  h->loop = loop;
  h->o = *opts;
  if (!h->o.session_idle_seconds) h->o.session_idle_seconds = 1800;
  if (!h->o.max_sessions) h->o.max_sessions = 1024;
  if (!h->o.max_connections) h->o.max_connections = 1024;
  if (!h->o.max_body_bytes) h->o.max_body_bytes = 4u << 20;
  if (!h->o.max_header_bytes) h->o.max_header_bytes = 16u << 10;
  if (!h->o.request_timeout_seconds) h->o.request_timeout_seconds = 10;
  if (!h->o.idle_timeout_seconds) h->o.idle_timeout_seconds = 60;
  if (!h->o.max_stream_bytes) h->o.max_stream_bytes = 4u << 20;
  h->policy.origins = opts->allowed_origins;
  h->policy.n_origins = opts->n_allowed_origins;
  h->hosts = calloc(opts->n_allowed_hosts + opts->n_listen + 1, sizeof *h->hosts);
  if (!h->hosts) {
    free(h);
    return -ENOMEM;
  }
  for (size_t i = 0; i < opts->n_allowed_hosts; i++) {
    if (strcmp(opts->allowed_hosts[i], "*") == 0) h->policy.any_host = true;
    h->hosts[h->policy.n_hosts++] = opts->allowed_hosts[i];
  }
  uv_timer_init(loop, &h->mhd_timer);
  uv_timer_init(loop, &h->sweep);
  uv_check_init(loop, &h->check);
  uv_idle_init(loop, &h->idle);
  h->mhd_timer.data = h->sweep.data = h->check.data = h->idle.data = h;
  h->handles_init = true;
  h->handles_open = 4;
  int rc = 0;
  for (size_t i = 0; i < opts->n_listen; i++) {
    listener *l = &h->lst[h->nlst];
    rc = listener_start(h, l, opts->listen[i], err, errlen);
    if (l->d || l->poll_init) h->nlst++;
    if (rc != 0) break;
    h->hosts[h->policy.n_hosts++] = l->hostport; /* its own address is a fine Host */
  }
  h->policy.hosts = h->hosts;
  if (rc != 0) {
    log_error("http: cannot start", "{s:s}", "error", err);
    listeners_stop(h);
    h->stopping = h->stopped = true;
    mcp_http_free(h);
    return rc;
  }
  uv_timer_start(&h->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
  for (size_t i = 0; i < h->nlst; i++)
    if (!h->o.no_mcp) log_info("http listening", "{s:s, s:b}", "url", h->lst[i].url, "loopback", h->lst[i].loopback);
  if ((rc = write_url_file(h)) != 0)
    log_warn("http: cannot write the URL file", "{s:s, s:s}", "path", h->o.url_file, "error", strerror(-rc));
  rearm_timer(h);
  *out = h;
  return 0;
}

const char *mcp_http_url(const mcp_http *h, size_t i) { return h && i < h->nlst ? h->lst[i].url : NULL; }

void mcp_http_set_ready(mcp_http *h, bool ready) {
  if (h) h->ready = ready;
}

static void check_stopped(mcp_http *h) {
  if (!h->stopping || h->stopped || h->pending > 0) return;
  if (h->in_run) { /* never stop the daemons from inside their callbacks */
    mark_dirty(h);
    return;
  }
  h->stopped = true;
  listeners_stop(h);
  free_zombies(h);
  if (h->o.url_file) unlink(h->o.url_file);
  log_info("http: stopped", NULL);
  if (h->stop_done) h->stop_done(h->stop_arg);
}

void mcp_http_stop(mcp_http *h, void (*done)(void *arg), void *arg) {
  LOOP_THREAD_ONLY();
  if (h->stopping) {
    mcp_http_cancel(h);
    return;
  }
  h->stopping = true;
  h->stop_done = done;
  h->stop_arg = arg;
  log_info("http: stopping; finishing in-flight requests", "{s:I}", "pending", (json_int_t)h->pending);
  /* long-lived streams end now: subscriptions, GET streams */
  for (hsess *s = h->lru; s; s = s->next) {
    mcp_session_end_subscriptions(s->ms);
    if (s->get && s->get->req) {
      s->get->final = true;
      req_wake(s->get->req);
    }
  }
  for (hreq *r = h->streaming; r; r = r->next)
    if (r->st && r->st->eph) mcp_session_end_subscriptions(r->st->eph);
  mark_dirty(h);
  check_stopped(h);
}

void mcp_http_cancel(mcp_http *h) {
  if (h->cancelled) return;
  h->cancelled = true;
  log_info("http: cancelling in-flight requests", "{s:I}", "pending", (json_int_t)h->pending);
  while (h->lru) sess_end(h->lru, "server stopping");
  for (hconn *c = h->conns; c; c = c->next) {
    hreq *r = c->req;
    if (!r || !r->st) continue;
    hstream *st = r->st;
    if (st->eph) mcp_session_cancel_all(st->eph);
    stream_detach(st);
    r->gone = true;
    if (!r->answered) respond_rpc_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, MCP_RPC_INTERNAL_ERROR, "Server is shutting down", NULL, NULL);
    req_wake(r);
  }
  h->pending = 0;
  mark_dirty(h);
  check_stopped(h);
}

void mcp_http_free(mcp_http *h) {
  if (!h) return;
  if (!h->stopped) {
    h->stopping = h->stopped = true;
    while (h->lru) sess_end(h->lru, "server stopped");
    listeners_stop(h);
  }
  while (h->lru) sess_end(h->lru, "server stopped");
  free_zombies(h);
  free(h->hosts);
  h->hosts = NULL;
  if (!h->handles_init) {
    free(h);
    return;
  }
  uv_close((uv_handle_t *)&h->mhd_timer, handle_closed);
  uv_close((uv_handle_t *)&h->sweep, handle_closed);
  uv_close((uv_handle_t *)&h->check, handle_closed);
  uv_close((uv_handle_t *)&h->idle, handle_closed);
  for (size_t i = 0; i < MCP_HTTP_MAX_LISTENERS; i++)
    if (h->lst[i].poll_init) uv_close((uv_handle_t *)&h->lst[i].poll, listener_poll_closed);
}

void mcp_http_get_stats(const mcp_http *h, mcp_http_stats *out) {
  memset(out, 0, sizeof *out);
  if (!h) return;
  out->requests = h->requests;
  out->rejected = h->rejected;
  out->connections = h->nconns;
  out->sessions = h->nsessions;
  out->inflight = h->pending;
  out->streams = h->nstreaming;
}
