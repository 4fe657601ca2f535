/* attacks.c — the issue 9 attacks (see attacks.h). */
#include "tests/service/attacks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "p2p/core/multiaddr.h"
#include "p2p/host/host.h"
#include "service/frame.h"
#include "util/buf.h"
#include "util/clock.h"

#define MCPP "/mcp+p2p/1.0.0"
#define PUMP_MS 20                 /* raw streams write what they owe this often */

long atk_arg(const atk_env *env, const char *key, long dflt) {
  size_t kl = strlen(key);
  for (size_t i = 0; i < env->n_args; i++)
    if (strncmp(env->args[i], key, kl) == 0 && env->args[i][kl] == '=') return atol(env->args[i] + kl + 1);
  return dflt;
}

const atk_def *atk_find(const char *name) {
  static const atk_def *const all[] = {&atk_handshake_slots, &atk_unread_output, &atk_partial_frames, &atk_long_waits,
                                       &atk_pipeline, &atk_pool_burst};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (strcmp(all[i]->name, name) == 0) return all[i];
  return NULL;
}

static p2p_host *atk_host(const atk_env *e, int idx) {
  char dir[4096];
  mkdir(e->id_dir, 0700);
  snprintf(dir, sizeof dir, "%s/%d", e->id_dir, idx);
  mkdir(dir, 0700);
  p2p_host_config hc = {0};
  hc.state_dir = dir;
  hc.no_peerstore_file = true;
  hc.max_streams_per_conn = 1024;
  p2p_host *h = NULL;
  if (p2p_host_new(e->loop, &hc, &h) != 0) {
    fprintf(stderr, "attack: host %d failed\n", idx);
    exit(1);
  }
  return h;
}

static void host_closed(p2p_host *h, void *ud) {
  (void)h;
  (void)ud;
}

/* ---------------------------------------------------------------- raw /mcp+p2p/1.0.0 streams */

typedef struct rs rs;
struct rs {
  p2p_stream *s;
  svc_frame_dec dec;
  void (*on_open)(rs *r);
  void (*on_reply)(rs *r, json_t *msg);
  void (*on_end)(rs *r, int err); /* the stream is gone (err 0: both sides closed) */
  void *owner;
  int idx;
  long peer; /* partial_frames: which identity */
  bool opened, gone, eof_seen, paused;
  buf out;            /* bytes owed to the stream */
  size_t fill_left;   /* then this many 'x' */
  uint64_t written;
};

static void rs_pump(rs *r) {
  if (!r->s || r->gone) return;
  static char xs[16384];
  if (!xs[0]) memset(xs, 'x', sizeof xs);
  /* until the host's queue reaches its high-water mark (write returns 1): on_writable resumes */
  for (;;) {
    int rc;
    size_t n;
    if (buf_len(&r->out)) {
      n = buf_len(&r->out) < 65536 ? buf_len(&r->out) : 65536;
      rc = p2p_stream_write(r->s, buf_ptr(&r->out), n);
      if (rc >= 0) buf_consume(&r->out, n);
    } else if (r->fill_left) {
      n = r->fill_left < sizeof xs ? r->fill_left : sizeof xs;
      rc = p2p_stream_write(r->s, xs, n);
      if (rc >= 0) r->fill_left -= n;
    } else {
      break;
    }
    if (rc < 0) break;
    r->written += n;
    if (rc == 1) break;
  }
}

static void rs_frame(rs *r, const char *text) {
  size_t n = strlen(text);
  uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
  if (buf_append(&r->out, h, 4) != 0 || buf_append(&r->out, text, n) != 0) fprintf(stderr, "attack: out of room\n");
}

static void rs_frame_json(rs *r, json_t *msg) {
  char *t = json_dumps(msg, JSON_COMPACT);
  json_decref(msg);
  if (t) rs_frame(r, t);
  free(t);
}

static void rs_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  (void)s;
  rs *r = ud;
  while (n > 0 || r->dec.ready) {
    size_t used = 0;
    svc_frame_status st = svc_frame_dec_feed(&r->dec, d, n, &used);
    d += used;
    n -= used;
    if (st == SVC_FRAME_READY) {
      json_t *m = svc_frame_dec_take(&r->dec);
      if (r->on_reply) r->on_reply(r, m);
      json_decref(m);
      if (r->gone) return;
      continue;
    }
    if (st != SVC_FRAME_NEED_MORE) fprintf(stderr, "attack: bad frame from the server: %s\n", svc_frame_status_str(st));
    break;
  }
}

static void rs_eof(p2p_stream *s, void *ud) {
  rs *r = ud;
  r->eof_seen = true;
  p2p_stream_close_write(s);
}

static void rs_writable(p2p_stream *s, void *ud) {
  (void)s;
  rs_pump(ud);
}

static void rs_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  rs *r = ud;
  r->s = NULL;
  r->gone = true;
  if (r->on_end) r->on_end(r, err);
}

static const p2p_stream_callbacks rs_cbs = {rs_data, rs_eof, rs_writable, rs_close};

static void rs_opened(p2p_stream *s, int err, void *ud) {
  rs *r = ud;
  if (!s) {
    r->gone = true;
    if (r->on_end) r->on_end(r, err ? err : -EIO);
    return;
  }
  r->s = s;
  r->opened = true;
  p2p_stream_set_callbacks(s, &rs_cbs, r);
  if (r->paused) p2p_stream_pause_read(s, true);
  if (r->on_open) r->on_open(r);
  rs_pump(r);
}

static void rs_init(rs *r, void *owner, int idx) {
  memset(r, 0, sizeof *r);
  r->owner = owner;
  r->idx = idx;
  svc_frame_dec_init(&r->dec, 64u << 20);
  buf_init(&r->out, 64u << 20);
}

static int rs_open(rs *r, p2p_host *h, const char *peer) { return p2p_host_open_stream(h, peer, MCPP, rs_opened, r); }

static void rs_release(rs *r) {
  if (r->s && !r->gone) p2p_stream_reset(r->s);
  svc_frame_dec_free(&r->dec);
  buf_free(&r->out);
}

static json_t *init_msg(const char *token) {
  json_t *p = json_pack("{s:{s:s}}", "clientInfo", "name", "attack");
  if (token) json_object_set_new(p, "token", json_string(token));
  return json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", 1, "method", "initialize", "params", p);
}

static json_t *rpc_msg(long id, json_t *op) {
  return json_pack("{s:s, s:I, s:s, s:{s:s, s:o}}", "jsonrpc", "2.0", "id", (json_int_t)id, "method", "tools/call",
                   "params", "name", "task_queue.rpc", "arguments", op);
}

/* The op reply inside a task_queue.rpc answer ({"result":{"content":…}}), else NULL. */
static json_t *op_reply(json_t *msg) { return json_object_get(json_object_get(msg, "result"), "content"); }

static int err_code(json_t *msg) { return (int)json_integer_value(json_object_get(json_object_get(msg, "error"), "code")); }

/* A periodic pump for raw streams (they write only while the host's queue is short). */
typedef struct pumper {
  uv_timer_t t;
  rs *streams;
  size_t n;
} pumper;

static void pump_tick(uv_timer_t *t) {
  pumper *p = t->data;
  for (size_t i = 0; i < p->n; i++) rs_pump(&p->streams[i]);
}

static void pumper_start(pumper *p, uv_loop_t *loop, rs *streams, size_t n) {
  p->streams = streams;
  p->n = n;
  uv_timer_init(loop, &p->t);
  p->t.data = p;
  uv_timer_start(&p->t, pump_tick, PUMP_MS, PUMP_MS);
}

static void pumper_stop(pumper *p) {
  uv_timer_stop(&p->t);
  uv_close((uv_handle_t *)&p->t, NULL);
}

/* ---------------------------------------------------------------- handshake_slots (item 1) */

typedef struct hs_state hs_state;
typedef struct hs_conn {
  uv_tcp_t tcp;
  uv_connect_t req;
  hs_state *st;
  int slot;
} hs_conn;

struct hs_state {
  const atk_env *env;
  struct sockaddr_storage addr;
  hs_conn **slots;
  long n_slots, next, reconnect_ms, stall, ips;
  uv_timer_t timer;
  bool stopping;
  long opened, failed, closed_by_server, reconnects, live;
};

static void hs_closed(uv_handle_t *h) {
  hs_conn *c = h->data;
  c->st->live--;
  free(c);
}

static void hs_drop(hs_state *s, int slot) {
  hs_conn *c = s->slots[slot];
  if (!c) return;
  s->slots[slot] = NULL;
  c->slot = -1;
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, hs_closed);
}

static void hs_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h;
  (void)sz;
  static char sink[4096];
  *b = uv_buf_init(sink, sizeof sink);
}

static void hs_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  (void)b;
  hs_conn *c = st->data;
  if (n >= 0) return; /* the server's multistream header: ignored */
  c->st->closed_by_server++;
  if (c->slot >= 0) hs_drop(c->st, c->slot); /* opened again at the next tick */
}

static void hs_connected(uv_connect_t *req, int status) {
  hs_conn *c = req->data;
  if (status == UV_ECANCELED) return;
  if (status < 0) {
    c->st->failed++;
    if (c->slot >= 0) hs_drop(c->st, c->slot);
    return;
  }
  c->st->opened++;
  uv_read_start((uv_stream_t *)&c->tcp, hs_alloc, hs_read);
  if (c->st->stall) { /* the multistream header, then nothing: a handshake that "moves" */
    static char hdr[] = "\x13/multistream/1.0.0\n";
    uv_buf_t b = uv_buf_init(hdr, sizeof hdr - 1);
    (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  }
}

static void hs_open(hs_state *s, int slot) {
  hs_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->st = s;
  c->slot = slot;
  uv_tcp_init(s->env->loop, &c->tcp);
  c->tcp.data = c;
  c->req.data = c;
  s->live++;
  s->slots[slot] = c;
  if (s->ips > 0) { /* from 127.0.0.2, 127.0.0.3, …: addresses of their own on loopback */
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(slot % s->ips));
    (void)uv_tcp_bind(&c->tcp, (struct sockaddr *)&src, 0);
  }
  if (uv_tcp_connect(&c->req, &c->tcp, (struct sockaddr *)&s->addr, hs_connected) != 0) {
    s->failed++;
    hs_drop(s, slot);
  }
}

static void hs_tick(uv_timer_t *t) {
  hs_state *s = t->data;
  if (s->stopping) return;
  /* the attacker reconnects one connection per tick (round robin; one the server closed waits
   * for its turn), so it holds up to `silent` connections and makes 1000/reconnect_ms a second */
  hs_drop(s, (int)s->next);
  hs_open(s, (int)s->next);
  s->reconnects++;
  s->next = (s->next + 1) % s->n_slots;
}

static int hs_start(const atk_env *env, void **state) {
  hs_state *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->env = env;
  s->n_slots = atk_arg(env, "silent", 80);
  s->reconnect_ms = atk_arg(env, "reconnect_ms", 50);
  s->stall = atk_arg(env, "stall", 0);
  s->ips = atk_arg(env, "ips", 0);
  if (s->ips > 200) s->ips = 200;
  if (s->n_slots < 1) s->n_slots = 1;
  if (s->reconnect_ms < 1) s->reconnect_ms = 1;
  multiaddr ma, bare;
  socklen_t len;
  if (multiaddr_parse(env->peer, &ma) != 0) {
    free(s);
    return -EINVAL;
  }
  multiaddr_strip_p2p(&ma, &bare);
  if (multiaddr_to_sockaddr(&bare, &s->addr, &len) != 0) {
    free(s);
    return -EINVAL;
  }
  s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
  for (long i = 0; i < s->n_slots; i++) hs_open(s, (int)i);
  uv_timer_init(env->loop, &s->timer);
  s->timer.data = s;
  uv_timer_start(&s->timer, hs_tick, (uint64_t)s->reconnect_ms, (uint64_t)s->reconnect_ms);
  *state = s;
  return 0;
}

static void hs_stop(void *state) {
  hs_state *s = state;
  s->stopping = true;
  uv_timer_stop(&s->timer);
  uv_close((uv_handle_t *)&s->timer, NULL);
  for (long i = 0; i < s->n_slots; i++) hs_drop(s, (int)i);
}

static json_t *hs_report(void *state) {
  hs_state *s = state;
  return json_pack("{s:I, s:I, s:I, s:I, s:I}", "silent", (json_int_t)s->n_slots, "opened", (json_int_t)s->opened,
                   "failed", (json_int_t)s->failed, "closed_by_server", (json_int_t)s->closed_by_server, "reconnects",
                   (json_int_t)s->reconnects);
}

static void hs_free(void *state) {
  hs_state *s = state;
  free(s->slots);
  free(s);
}

const atk_def atk_handshake_slots = {"handshake_slots", "80 silent TCP connections, one reconnected every 50 ms (item 1)",
                                     hs_start, hs_stop, hs_report, hs_free};

/* ---------------------------------------------------------------- unread_output (item 2) */

typedef struct uo_state {
  const atk_env *env;
  p2p_host *h;      /* peer 0: stores the value */
  p2p_host **hosts; /* peers 1..n_peers-1 (their own identities: each its own peer budget) */
  long n_peers;
  rs setup;
  rs *streams;
  long n_streams, gets, value_bytes, id_bytes;
  pumper pump;
  bool pumping, stopping;
  long set_ok, opened, refused, frames;
} uo_state;

static void uo_stream_open(rs *r) {
  uo_state *s = r->owner;
  s->opened++;
  rs_frame_json(r, init_msg(s->env->token));
  char *big = NULL;
  if (s->id_bytes > 0 && (big = malloc((size_t)s->id_bytes + 1))) {
    memset(big, 'i', (size_t)s->id_bytes);
    big[s->id_bytes] = 0;
  }
  for (long i = 0; i < s->gets; i++) {
    if (big) { /* a ping whose id is id_bytes long: the answer repeats it (issue 9 item 3) */
      snprintf(big, 24, "%020ld", i); /* distinct ids: a duplicate in flight is refused */
      big[20] = 'i';
      rs_frame_json(r, json_pack("{s:s, s:s, s:s}", "jsonrpc", "2.0", "id", big, "method", "ping"));
    } else {
      rs_frame_json(r, rpc_msg(2 + i, json_pack("{s:s, s:s}", "op", "cache.get", "key", "atk-big")));
    }
    s->frames++;
  }
  free(big);
}

static void uo_stream_end(rs *r, int err) {
  uo_state *s = r->owner;
  if (err && !s->stopping) s->refused++;
}

static void uo_setup_reply(rs *r, json_t *msg) {
  uo_state *s = r->owner;
  if (json_integer_value(json_object_get(msg, "id")) != 2 || s->streams) return;
  s->set_ok = json_is_true(json_object_get(op_reply(msg), "ok"));
  s->streams = calloc((size_t)s->n_streams, sizeof *s->streams);
  for (long i = 0; i < s->n_streams; i++) {
    rs *x = &s->streams[i];
    rs_init(x, s, (int)i);
    x->paused = true; /* never reads: the replies pile up on the server */
    x->on_open = uo_stream_open;
    x->on_end = uo_stream_end;
    p2p_host *h = i % s->n_peers == 0 ? s->h : s->hosts[i % s->n_peers];
    if (rs_open(x, h, s->env->peer) != 0) s->refused++;
  }
  pumper_start(&s->pump, s->env->loop, s->streams, (size_t)s->n_streams);
  s->pumping = true;
}

static int uo_start(const atk_env *env, void **state) {
  uo_state *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->env = env;
  s->n_streams = atk_arg(env, "streams", 32);
  s->gets = atk_arg(env, "gets", 64);
  s->value_bytes = atk_arg(env, "value_bytes", 1000000);
  s->n_peers = atk_arg(env, "peers", 1);
  s->id_bytes = atk_arg(env, "id_bytes", 0);
  if (s->n_peers < 1) s->n_peers = 1;
  s->h = atk_host(env, 0);
  s->hosts = calloc((size_t)s->n_peers, sizeof *s->hosts);
  for (long i = 1; i < s->n_peers; i++) s->hosts[i] = atk_host(env, (int)i);
  rs_init(&s->setup, s, -1);
  s->setup.on_reply = uo_setup_reply;
  rs_frame_json(&s->setup, init_msg(env->token));
  char *value = malloc((size_t)s->value_bytes + 1);
  memset(value, 'v', (size_t)s->value_bytes);
  value[s->value_bytes] = 0;
  rs_frame_json(&s->setup, rpc_msg(2, json_pack("{s:s, s:s, s:s}", "op", "cache.set", "key", "atk-big", "value", value)));
  free(value);
  if (rs_open(&s->setup, s->h, env->peer) != 0) {
    for (long i = 1; i < s->n_peers; i++) p2p_host_close(s->hosts[i], host_closed, NULL);
    p2p_host_close(s->h, host_closed, NULL);
    free(s->hosts);
    free(s);
    return -EIO;
  }
  *state = s;
  return 0;
}

static void uo_stop(void *state) {
  uo_state *s = state;
  s->stopping = true;
  if (s->pumping) pumper_stop(&s->pump);
  for (long i = 0; s->streams && i < s->n_streams; i++)
    if (s->streams[i].s) p2p_stream_reset(s->streams[i].s);
  if (s->setup.s) p2p_stream_reset(s->setup.s);
  for (long i = 1; i < s->n_peers; i++) p2p_host_close(s->hosts[i], host_closed, NULL);
  p2p_host_close(s->h, host_closed, NULL); /* the peer goes away */
}

static json_t *uo_report(void *state) {
  uo_state *s = state;
  return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I}", "value_stored", s->set_ok, "peers", (json_int_t)s->n_peers,
                   "streams", (json_int_t)s->n_streams,
                   "opened", (json_int_t)s->opened, "refused", (json_int_t)s->refused, "gets_sent",
                   (json_int_t)s->frames);
}

static void uo_free(void *state) {
  uo_state *s = state;
  for (long i = 0; s->streams && i < s->n_streams; i++) rs_release(&s->streams[i]);
  rs_release(&s->setup);
  free(s->streams);
  free(s->hosts);
  free(s);
}

const atk_def atk_unread_output = {"unread_output",
                                   "a token holder: a 1 MB cache value, 32 streams that never read, 64 cache.get each "
                                   "(item 2)",
                                   uo_start, uo_stop, uo_report, uo_free};

/* ---------------------------------------------------------------- partial_frames (item 3) */

typedef struct pf_state {
  const atk_env *env;
  p2p_host **hosts;
  rs *streams;
  long peers, per_peer, frame, send;
  bool token, stopping;
  pumper pump;
  long opened, reset, refused_open, frame_errors, other_replies;
} pf_state;

static void pf_open(rs *r) {
  pf_state *s = r->owner;
  s->opened++;
  rs_frame_json(r, init_msg(s->token ? s->env->token : NULL));
  uint8_t h[4] = {(uint8_t)(s->frame >> 24), (uint8_t)(s->frame >> 16), (uint8_t)(s->frame >> 8), (uint8_t)s->frame};
  if (buf_append(&r->out, h, 4) != 0) return;
  r->fill_left = (size_t)s->send;
}

static void pf_open_rest(pf_state *s, long p);

static void pf_reply(rs *r, json_t *msg) {
  pf_state *s = r->owner;
  if (err_code(msg) == -32003) s->frame_errors++;
  else if (json_integer_value(json_object_get(msg, "id")) != 1) s->other_replies++;
  else if (s->token && r->idx == 0) pf_open_rest(s, r->peer); /* authorized: now the others */
}

static void pf_end(rs *r, int err) {
  pf_state *s = r->owner;
  if (s->stopping) return;
  if (!r->opened) s->refused_open++;
  else if (err) s->reset++;
}

static void pf_open_rest(pf_state *s, long p) {
  for (long i = s->token ? 1 : 0; i < s->per_peer; i++)
    if (rs_open(&s->streams[p * s->per_peer + i], s->hosts[p], s->env->peer) != 0) s->refused_open++;
}

static int pf_start(const atk_env *env, void **state) {
  pf_state *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->env = env;
  s->peers = atk_arg(env, "peers", 6);
  s->per_peer = atk_arg(env, "streams", 64);
  s->frame = atk_arg(env, "frame", 1048000);
  s->send = atk_arg(env, "send", s->frame - 1);
  s->token = atk_arg(env, "token", 0) && env->token;
  size_t n = (size_t)(s->peers * s->per_peer);
  s->hosts = calloc((size_t)s->peers, sizeof *s->hosts);
  s->streams = calloc(n, sizeof *s->streams);
  for (long p = 0; p < s->peers; p++) {
    s->hosts[p] = atk_host(env, 100 + (int)p); /* fresh identities, apart from the others' */
    for (long i = 0; i < s->per_peer; i++) {
      rs *r = &s->streams[p * s->per_peer + i];
      rs_init(r, s, (int)i);
      r->peer = p;
      r->on_open = pf_open;
      r->on_reply = pf_reply;
      r->on_end = pf_end;
    }
    /* a token holder opens one stream, presents the token, then the others (its first streams
     * would otherwise count as a stranger's); strangers open them all at once */
    if (s->token) {
      if (rs_open(&s->streams[p * s->per_peer], s->hosts[p], env->peer) != 0) s->refused_open++;
    } else {
      pf_open_rest(s, p);
    }
  }
  pumper_start(&s->pump, env->loop, s->streams, n);
  *state = s;
  return 0;
}

static void pf_stop(void *state) {
  pf_state *s = state;
  s->stopping = true;
  pumper_stop(&s->pump);
  for (long i = 0; i < s->peers * s->per_peer; i++)
    if (s->streams[i].s) p2p_stream_reset(s->streams[i].s);
  for (long p = 0; p < s->peers; p++) p2p_host_close(s->hosts[p], host_closed, NULL);
}

static json_t *pf_report(void *state) {
  pf_state *s = state;
  uint64_t w = 0;
  for (long i = 0; i < s->peers * s->per_peer; i++) w += s->streams[i].written;
  return json_pack("{s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I}", "peers", (json_int_t)s->peers, "streams",
                   (json_int_t)(s->peers * s->per_peer), "token", s->token, "opened", (json_int_t)s->opened,
                   "refused", (json_int_t)s->refused_open, "reset", (json_int_t)s->reset, "frame_errors",
                   (json_int_t)s->frame_errors, "bytes_written", (json_int_t)w);
}

static void pf_free(void *state) {
  pf_state *s = state;
  for (long i = 0; i < s->peers * s->per_peer; i++) rs_release(&s->streams[i]);
  free(s->streams);
  free(s->hosts);
  free(s);
}

const atk_def atk_partial_frames = {"partial_frames",
                                    "6 fresh PeerIds x 64 streams x a frame header for ~1 MB and all but its last "
                                    "byte (item 3)",
                                    pf_start, pf_stop, pf_report, pf_free};

/* ---------------------------------------------------------------- long_waits (item 4) */

typedef struct lw_state {
  const atk_env *env;
  p2p_host *h;
  rs setup;
  rs *streams;
  long n_streams, waits, timeout_s;
  char task_id[64];
  bool stopping;
  pumper pump;
  bool pumping;
  long sent, busy, answered, errors;
} lw_state;

static void lw_open(rs *r) {
  lw_state *s = r->owner;
  rs_frame_json(r, init_msg(s->env->token));
  for (long i = 0; i < s->waits; i++) {
    rs_frame_json(r, rpc_msg(2 + i, json_pack("{s:s, s:s, s:I}", "op", "wait", "task_id", s->task_id, "timeout_s",
                                              (json_int_t)s->timeout_s)));
    s->sent++;
  }
}

static void lw_reply(rs *r, json_t *msg) {
  lw_state *s = r->owner;
  if (json_integer_value(json_object_get(msg, "id")) < 2) return;
  json_t *c = op_reply(msg);
  const char *e = json_string_value(json_object_get(c, "error"));
  if (c && json_is_true(json_object_get(c, "ok"))) s->answered++;
  else if (e && strcmp(e, "busy") == 0) s->busy++;
  else s->errors++;
}

static void lw_setup_reply(rs *r, json_t *msg) {
  lw_state *s = r->owner;
  if (json_integer_value(json_object_get(msg, "id")) != 2 || s->streams) return;
  const char *id = json_string_value(json_object_get(op_reply(msg), "task_id"));
  snprintf(s->task_id, sizeof s->task_id, "%s", id ? id : "0123456789abcdef0123456789abcdef");
  s->streams = calloc((size_t)s->n_streams, sizeof *s->streams);
  for (long i = 0; i < s->n_streams; i++) {
    rs *x = &s->streams[i];
    rs_init(x, s, (int)i);
    x->on_open = lw_open;
    x->on_reply = lw_reply;
    (void)rs_open(x, s->h, s->env->peer);
  }
  pumper_start(&s->pump, s->env->loop, s->streams, (size_t)s->n_streams);
  s->pumping = true;
}

static int lw_start(const atk_env *env, void **state) {
  lw_state *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->env = env;
  s->n_streams = atk_arg(env, "streams", 64);
  s->waits = atk_arg(env, "waits", 64);
  s->timeout_s = atk_arg(env, "timeout_s", 30);
  s->h = atk_host(env, 0);
  rs_init(&s->setup, s, -1);
  s->setup.on_reply = lw_setup_reply;
  rs_frame_json(&s->setup, init_msg(env->token));
  rs_frame_json(&s->setup, rpc_msg(2, json_pack("{s:s, s:s, s:{}}", "op", "submit", "task_type", "atk.nobody.runs.this",
                                                 "payload")));
  if (rs_open(&s->setup, s->h, env->peer) != 0) {
    free(s);
    return -EIO;
  }
  *state = s;
  return 0;
}

static void lw_stop(void *state) {
  lw_state *s = state;
  s->stopping = true;
  if (s->pumping) pumper_stop(&s->pump);
  for (long i = 0; s->streams && i < s->n_streams; i++)
    if (s->streams[i].s) p2p_stream_reset(s->streams[i].s);
  if (s->setup.s) p2p_stream_reset(s->setup.s);
  p2p_host_close(s->h, host_closed, NULL);
}

static json_t *lw_report(void *state) {
  lw_state *s = state;
  return json_pack("{s:I, s:I, s:I, s:I, s:I}", "waits_sent", (json_int_t)s->sent, "busy", (json_int_t)s->busy,
                   "answered", (json_int_t)s->answered, "errors", (json_int_t)s->errors, "held",
                   (json_int_t)(s->sent - s->busy - s->answered - s->errors));
}

static void lw_free(void *state) {
  lw_state *s = state;
  for (long i = 0; s->streams && i < s->n_streams; i++) rs_release(&s->streams[i]);
  rs_release(&s->setup);
  free(s->streams);
  free(s);
}

const atk_def atk_long_waits = {"long_waits", "a token holder: 64 streams x 64 `wait` ops of 30 s (item 4)", lw_start,
                                lw_stop, lw_report, lw_free};

/* ---------------------------------------------------------------- pipeline (item 6) */

typedef struct pl_state {
  const atk_env *env;
  p2p_host *h;
  rs r;
  long n, ms;
  char tool[64];
  unsigned char *seen; /* per id: 0 none, 1 result, 2 -32010 rate_limited, 3 another error */
  long crossing;       /* the id answered rate_limited first */
  bool ended, stopping;
  int end_err;
  long results, rate_limited, other_errors, duplicate;
} pl_state;

static void pl_reply(rs *r, json_t *msg) {
  pl_state *s = r->owner;
  json_int_t id = json_integer_value(json_object_get(msg, "id"));
  if (id < 2 || id >= s->n + 2) return;
  if (s->seen[id]) {
    s->duplicate++;
    return;
  }
  json_t *e = json_object_get(msg, "error");
  if (!e) {
    s->seen[id] = 1;
    s->results++;
  } else if (err_code(msg) == -32010 && strcmp(json_string_value(json_object_get(e, "message")) ?: "", "rate_limited") == 0) {
    s->seen[id] = 2;
    s->rate_limited++;
    if (!s->crossing) s->crossing = (long)id;
  } else {
    s->seen[id] = 3;
    s->other_errors++;
  }
}

static void pl_end(rs *r, int err) {
  pl_state *s = r->owner;
  s->ended = true;
  s->end_err = err;
  if (!s->stopping && s->env->finish) s->env->finish(s->env->finish_ud);
}

static void pl_open(rs *r) {
  pl_state *s = r->owner;
  rs_frame_json(r, init_msg(s->env->token));
  for (long i = 0; i < s->n; i++)
    rs_frame_json(r, json_pack("{s:s, s:I, s:s, s:{s:s, s:{s:I}}}", "jsonrpc", "2.0", "id", (json_int_t)(2 + i), "method",
                               "tools/call", "params", "name", s->tool, "arguments", "ms", (json_int_t)s->ms));
}

static int pl_start(const atk_env *env, void **state) {
  pl_state *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->env = env;
  s->n = atk_arg(env, "n", 300);
  s->ms = atk_arg(env, "ms", 100);
  snprintf(s->tool, sizeof s->tool, "%s", "sleep");
  s->seen = calloc((size_t)s->n + 2, 1);
  s->h = atk_host(env, 0);
  rs_init(&s->r, s, 0);
  s->r.on_open = pl_open;
  s->r.on_reply = pl_reply;
  s->r.on_end = pl_end;
  if (rs_open(&s->r, s->h, env->peer) != 0) {
    free(s->seen);
    free(s);
    return -EIO;
  }
  *state = s;
  return 0;
}

static void pl_stop(void *state) {
  pl_state *s = state;
  s->stopping = true;
  if (s->r.s) p2p_stream_reset(s->r.s);
  p2p_host_close(s->h, host_closed, NULL);
}

static json_t *pl_report(void *state) {
  pl_state *s = state;
  /* every request before the crossing one must have an answer; none after it may */
  long missing = 0, after = 0;
  long end = s->crossing ? s->crossing : s->n + 2;
  for (long id = 2; id < end; id++) missing += s->seen[id] == 0;
  for (long id = end + 1; id < s->n + 2; id++) after += s->seen[id] != 0;
  return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:i}", "sent", (json_int_t)s->n, "crossing_id",
                   (json_int_t)s->crossing, "results", (json_int_t)s->results, "rate_limited",
                   (json_int_t)s->rate_limited, "other_errors", (json_int_t)s->other_errors, "missing_before_crossing",
                   (json_int_t)missing, "answered_after_crossing", (json_int_t)after, "duplicates",
                   (json_int_t)s->duplicate, "stream_ended", s->ended, "end_err", s->end_err);
}

static void pl_free(void *state) {
  pl_state *s = state;
  rs_release(&s->r);
  free(s->seen);
  free(s);
}

const atk_def atk_pipeline = {"pipeline",
                              "300 pipelined tools/call on one stream crossing the peer's rate limit (item 6)",
                              pl_start, pl_stop, pl_report, pl_free};

/* ---------------------------------------------------------------- pool_burst (fairness) */

/* `peers` token holders keep `calls` tools/call of `sleep` {ms} each in flight on one stream
 * (a new call for each answer), so the worker pool's queue stays full of their jobs; a victim,
 * another token holder, calls `sleep` {victim_ms} one at a time every 100 ms and times each.
 * FIFO pools made the victim wait for everything queued before it (calls × peers / threads
 * jobs); pools that serve callers in turn make it wait at most about one job. */
typedef struct pb_state {
  const atk_env *env;
  p2p_host **hosts;
  rs *streams; /* [0, peers): attackers; [peers]: the victim */
  long peers, calls, ms, victim_ms;
  uv_timer_t victim_timer;
  pumper pump;
  bool stopping, timer_on;
  long next_id, sent, answered, errors;
  int64_t victim_sent_us, victim_max_us, victim_sum_us;
  long victim_ok, victim_failed;
  bool victim_waiting;
} pb_state;

static void pb_call(pb_state *s, rs *r, long ms) {
  rs_frame_json(r, json_pack("{s:s, s:I, s:s, s:{s:s, s:{s:I}}}", "jsonrpc", "2.0", "id", (json_int_t)(++s->next_id),
                             "method", "tools/call", "params", "name", "sleep", "arguments", "ms", (json_int_t)ms));
  rs_pump(r);
}

static void pb_attacker_open(rs *r) {
  pb_state *s = r->owner;
  rs_frame_json(r, init_msg(s->env->token));
  for (long i = 0; i < s->calls; i++, s->sent++) pb_call(s, r, s->ms);
}

static void pb_attacker_reply(rs *r, json_t *msg) {
  pb_state *s = r->owner;
  if (json_integer_value(json_object_get(msg, "id")) < 2) return; /* initialize */
  if (json_object_get(msg, "error")) s->errors++;
  else s->answered++;
  if (!s->stopping) {
    s->sent++;
    pb_call(s, r, s->ms); /* keep the burst going */
  }
}

static void pb_victim_open(rs *r) {
  pb_state *s = r->owner;
  rs_frame_json(r, init_msg(s->env->token));
  rs_pump(r);
}

static void pb_victim_tick(uv_timer_t *t) {
  pb_state *s = t->data;
  rs *v = &s->streams[s->peers];
  if (s->stopping || s->victim_waiting || !v->opened || v->gone) return;
  s->victim_waiting = true;
  s->victim_sent_us = clock_mono_us();
  pb_call(s, v, s->victim_ms);
}

static void pb_victim_reply(rs *r, json_t *msg) {
  pb_state *s = r->owner;
  if (json_integer_value(json_object_get(msg, "id")) < 2 || !s->victim_waiting) return;
  int64_t us = clock_mono_us() - s->victim_sent_us;
  s->victim_waiting = false;
  if (json_object_get(msg, "error") || json_is_true(json_object_get(json_object_get(msg, "result"), "isError"))) {
    s->victim_failed++;
    return;
  }
  s->victim_ok++;
  s->victim_sum_us += us;
  if (us > s->victim_max_us) s->victim_max_us = us;
}

static int pb_start(const atk_env *env, void **state) {
  pb_state *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->env = env;
  s->peers = atk_arg(env, "peers", 2);
  s->calls = atk_arg(env, "calls", 16);
  s->ms = atk_arg(env, "ms", 1000);
  s->victim_ms = atk_arg(env, "victim_ms", 20);
  s->next_id = 1;
  s->hosts = calloc((size_t)s->peers + 1, sizeof *s->hosts);
  s->streams = calloc((size_t)s->peers + 1, sizeof *s->streams);
  for (long p = 0; p <= s->peers; p++) {
    s->hosts[p] = atk_host(env, (int)p);
    rs *r = &s->streams[p];
    rs_init(r, s, (int)p);
    bool victim = p == s->peers;
    r->on_open = victim ? pb_victim_open : pb_attacker_open;
    r->on_reply = victim ? pb_victim_reply : pb_attacker_reply;
    (void)rs_open(r, s->hosts[p], env->peer);
  }
  pumper_start(&s->pump, env->loop, s->streams, (size_t)s->peers + 1);
  uv_timer_init(env->loop, &s->victim_timer);
  s->victim_timer.data = s;
  uv_timer_start(&s->victim_timer, pb_victim_tick, 1000, 100); /* after the burst is queued */
  s->timer_on = true;
  *state = s;
  return 0;
}

static void pb_stop(void *state) {
  pb_state *s = state;
  s->stopping = true;
  pumper_stop(&s->pump);
  if (s->timer_on) {
    uv_timer_stop(&s->victim_timer);
    uv_close((uv_handle_t *)&s->victim_timer, NULL);
    s->timer_on = false;
  }
  for (long p = 0; p <= s->peers; p++) {
    if (s->streams[p].s) p2p_stream_reset(s->streams[p].s);
    p2p_host_close(s->hosts[p], host_closed, NULL);
  }
}

static json_t *pb_report(void *state) {
  pb_state *s = state;
  return json_pack("{s:I, s:I, s:I, s:I, s:{s:I, s:I, s:f, s:f}}", "peers", (json_int_t)s->peers, "calls_sent",
                   (json_int_t)s->sent, "answered", (json_int_t)s->answered, "errors", (json_int_t)s->errors, "victim",
                   "ok", (json_int_t)s->victim_ok, "failed", (json_int_t)s->victim_failed, "max_ms",
                   (double)s->victim_max_us / 1000.0, "mean_ms",
                   s->victim_ok ? (double)s->victim_sum_us / 1000.0 / (double)s->victim_ok : 0.0);
}

static void pb_free(void *state) {
  pb_state *s = state;
  for (long p = 0; p <= s->peers; p++) rs_release(&s->streams[p]);
  free(s->streams);
  free(s->hosts);
  free(s);
}

const atk_def atk_pool_burst = {"pool_burst",
                                "token holders keep 16 `sleep` calls each in flight; another peer's calls are timed "
                                "(worker pool fairness)",
                                pb_start, pb_stop, pb_report, pb_free};
