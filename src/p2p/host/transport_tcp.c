/* transport_tcp.c — TCP and Unix-domain stream sockets as a p2p_transport (see transport_tcp.h
 * and transport.h): one implementation over a uv_stream_t that is a uv_tcp_t or a uv_pipe_t. */
#include "p2p/host/transport_tcp.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "p2p/host/internal.h"
#include "util/check.h"

typedef struct tcp_wreq {
  uv_write_t req;
  struct tcp_transport *t;
  buf data;
  struct tcp_wreq *next; /* in the pool's free list */
} tcp_wreq;

typedef struct tcp_transport {
  p2p_transport base; /* first: a p2p_transport* is a tcp_transport* */
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;   /* ops "tcp" */
    uv_pipe_t pipe; /* ops "unix" */
  } u;
  uv_connect_t connect_req;
  p2p_tcp_ctx ctx;
  size_t tx_pending;  /* bytes handed to uv_write and not completed */
  tcp_wreq *lent;     /* the buffer out on loan (write_buf → write / write_cancel) */
  bool reading;
} tcp_transport;

static tcp_transport *tcp_of(p2p_transport *t) { return (tcp_transport *)t; }
static const tcp_transport *ctcp_of(const p2p_transport *t) { return (const tcp_transport *)t; }

/* ---------------------------------------------------------------- write buffers */

static tcp_wreq *wreq_get(tcp_transport *t, size_t need) {
  p2p_tcp_pool *pool = t->ctx.pool;
  tcp_wreq *w = pool ? pool->free : NULL;
  if (w) {
    pool->free = w->next;
    pool->n--;
    buf_reset(&w->data);
  } else {
    w = calloc(1, sizeof *w);
    if (!w) return NULL;
  }
  w->t = t;
  w->next = NULL;
  buf_set_max(&w->data, need > buf_cap(&w->data) ? need : buf_cap(&w->data));
  return w;
}

static void wreq_put(p2p_tcp_pool *pool, tcp_wreq *w) {
  if (pool && pool->n < P2P_TCP_POOL_MAX && buf_cap(&w->data) <= 2 * P2P_TCP_POOL_BUF) {
    w->next = pool->free;
    pool->free = w;
    pool->n++;
    return;
  }
  buf_free(&w->data);
  free(w);
}

void p2p_tcp_pool_free(p2p_tcp_pool *pool) {
  while (pool->free) {
    tcp_wreq *w = pool->free;
    pool->free = w->next;
    buf_free(&w->data);
    free(w);
  }
  pool->n = 0;
}

/* ---------------------------------------------------------------- ops */

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b) {
  (void)suggested;
  tcp_transport *t = hd->data;
  b->base = (char *)t->ctx.rbuf;
  b->len = t->ctx.rbuf_len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  tcp_transport *t = s->data;
  if (n == 0 || t->base.closing) return;
  if (n < 0) {
    uv_read_stop(s);
    t->reading = false;
    t->base.ev.on_end(t->base.ud, n == UV_EOF ? 0 : -ECONNABORTED);
    return;
  }
  if (t->ctx.bytes_in) *t->ctx.bytes_in += (uint64_t)n;
  metrics_add(&p2p_host_bytes_metric, 0, (uint64_t)n);
  t->base.ev.on_read(t->base.ud, (const uint8_t *)b->base, (size_t)n);
}

static int tcp_read_start(p2p_transport *bt) {
  tcp_transport *t = tcp_of(bt);
  if (t->reading) return 0;
  int rc = uv_read_start(&t->u.stream, on_alloc, on_read);
  if (rc == 0) t->reading = true;
  return rc;
}

static void tcp_read_stop(p2p_transport *bt) {
  tcp_transport *t = tcp_of(bt);
  if (!t->reading) return;
  uv_read_stop(&t->u.stream);
  t->reading = false;
}

static buf *tcp_write_buf(p2p_transport *bt, size_t need) {
  tcp_transport *t = tcp_of(bt);
  assert(!t->lent && !bt->closing);
  t->lent = wreq_get(t, need);
  return t->lent ? &t->lent->data : NULL;
}

static void tcp_write_cancel(p2p_transport *bt, buf *b) {
  tcp_transport *t = tcp_of(bt);
  assert(t->lent && b == &t->lent->data);
  (void)b;
  wreq_put(t->ctx.pool, t->lent);
  t->lent = NULL;
}

static void on_written(uv_write_t *req, int status) {
  tcp_wreq *w = (tcp_wreq *)req;
  tcp_transport *t = w->t;
  assert(t->tx_pending >= buf_len(&w->data));
  t->tx_pending -= buf_len(&w->data);
  wreq_put(t->ctx.pool, w);
  if (t->base.closing) return; /* cancelled by uv_close, or completed meanwhile */
  if (status < 0) t->base.ev.on_end(t->base.ud, -ECONNABORTED);
  else t->base.ev.on_drain(t->base.ud);
}

/* One send() of what libuv's queue does not hold (it is empty): bytes sent, -EAGAIN when none
 * could be, or a negative errno (the connection is broken). MSG_NOSIGNAL: a peer that went
 * away is an error here, never a SIGPIPE. */
static int tcp_send_now(tcp_transport *t, const uint8_t *p, size_t n) {
  uv_os_fd_t fd;
  if (uv_fileno(&t->u.handle, &fd) != 0) return -EAGAIN; /* let uv_write say */
  if (n > INT_MAX) n = INT_MAX;
  ssize_t r;
  do r = send(fd, p, n, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return (int)r;
  return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static int tcp_write(p2p_transport *bt, buf *b) {
  tcp_transport *t = tcp_of(bt);
  tcp_wreq *w = t->lent;
  assert(w && b == &w->data && !bt->closing);
  (void)b;
  t->lent = NULL;
  size_t n = buf_len(&w->data);
  if (!n) {
    wreq_put(t->ctx.pool, w);
    return 0;
  }
  size_t sent = 0;
  if (t->tx_pending == 0) {
    /* Nothing queued: send now. A uv_write that completes at once still costs an epoll_ctl
     * per write (libuv re-arms the watcher when it stops POLLOUT after the write), one syscall
     * in four on a remote call's round trip; what does not fit goes through uv_write. */
    int tw = tcp_send_now(t, buf_ptr(&w->data), n);
    if (tw == (int)n) {
      wreq_put(t->ctx.pool, w); /* done: nothing in flight, nothing to drain */
      if (t->ctx.bytes_out) *t->ctx.bytes_out += n;
      metrics_add(&p2p_host_bytes_metric, 1, n);
      return 0;
    }
    if (tw > 0) sent = (size_t)tw;
    else if (tw != -EAGAIN) {
      wreq_put(t->ctx.pool, w);
      return tw;
    }
  }
  uv_buf_t ub = uv_buf_init((char *)buf_ptr(&w->data) + sent, (unsigned)(n - sent));
  int rc = uv_write(&w->req, &t->u.stream, &ub, 1, on_written);
  if (rc < 0) {
    wreq_put(t->ctx.pool, w);
    return rc;
  }
  t->tx_pending += buf_len(&w->data);
  if (t->ctx.bytes_out) *t->ctx.bytes_out += n;
  metrics_add(&p2p_host_bytes_metric, 1, n);
  return 0;
}

static size_t tcp_queued(const p2p_transport *bt) { return ctcp_of(bt)->tx_pending; }

static bool tcp_writable(const p2p_transport *bt) {
  const tcp_transport *t = ctcp_of(bt);
  return !bt->closing && t->tx_pending < t->ctx.write_queue_max;
}

static void on_tcp_closed(uv_handle_t *hd) {
  tcp_transport *t = hd->data;
  assert(!t->lent);
  if (t->base.ev.on_closed) t->base.ev.on_closed(t->base.ud);
  free(t);
}

static void tcp_close(p2p_transport *bt, int err) {
  (void)err; /* TCP has no way to say why: pending writes are cancelled, the peer sees FIN */
  tcp_transport *t = tcp_of(bt);
  assert(!t->lent);
  tcp_read_stop(bt);
  uv_close(&t->u.handle, on_tcp_closed);
}

#define STREAM_OPS(NAME)                                                                                           \
  {                                                                                                                \
    .name = NAME, .read_start = tcp_read_start, .read_stop = tcp_read_stop, .write_buf = tcp_write_buf,            \
    .write = tcp_write, .write_cancel = tcp_write_cancel, .queued = tcp_queued, .writable = tcp_writable,          \
    .close = tcp_close,                                                                                            \
  }
static const p2p_transport_ops tcp_ops = STREAM_OPS("tcp");
static const p2p_transport_ops unix_ops = STREAM_OPS("unix"); /* the same code over a uv_pipe_t */

/* ---------------------------------------------------------------- set-up */

static void fill_addr(tcp_transport *t, bool remote) {
  char *out = remote ? t->base.remote_addr : t->base.local_addr;
  multiaddr ma;
  if (t->base.ops == &unix_ops) {
    /* The path the socket is bound to; a dialing socket is unnamed, so both ends print the
     * listener's path (p2p_unix_connect sets the dialer's; an accepted one reads its own, which
     * is the name it was bound at: the host puts its listen address instead, unix_listen.h). */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
    size_t len = sizeof path;
    int rc = remote ? uv_pipe_getpeername(&t->u.pipe, path, &len) : uv_pipe_getsockname(&t->u.pipe, path, &len);
    if (rc == 0 && len > 0 && len < sizeof path) {
      path[len] = 0;
      if (multiaddr_from_unix_path(path, &ma) == 0 && multiaddr_to_string(&ma, out, MULTIADDR_STR_MAX) == 0) return;
    }
    out[0] = 0;
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  int rc = remote ? uv_tcp_getpeername(&t->u.tcp, (struct sockaddr *)&ss, &len)
                  : uv_tcp_getsockname(&t->u.tcp, (struct sockaddr *)&ss, &len);
  if (rc == 0 && multiaddr_from_sockaddr((struct sockaddr *)&ss, &ma) == 0 &&
      multiaddr_to_string(&ma, out, MULTIADDR_STR_MAX) == 0)
    return;
  out[0] = 0;
}

static int sock_new(const p2p_tcp_ctx *ctx, bool is_unix, p2p_transport **out) {
  assert(ctx && ctx->loop && ctx->rbuf && ctx->rbuf_len && ctx->write_queue_max);
  tcp_transport *t = calloc(1, sizeof *t);
  if (!t) return -ENOMEM;
  int rc = is_unix ? uv_pipe_init(ctx->loop, &t->u.pipe, 0) : uv_tcp_init(ctx->loop, &t->u.tcp);
  if (rc) {
    free(t);
    return rc;
  }
  t->base.ops = is_unix ? &unix_ops : &tcp_ops;
  t->ctx = *ctx;
  t->u.handle.data = t;
  t->connect_req.data = t;
  *out = &t->base;
  return 0;
}

int p2p_tcp_new(const p2p_tcp_ctx *ctx, p2p_transport **out) { return sock_new(ctx, false, out); }
int p2p_unix_new(const p2p_tcp_ctx *ctx, p2p_transport **out) { return sock_new(ctx, true, out); }

static void on_connected(uv_connect_t *req, int status) {
  tcp_transport *t = req->data;
  if (status == UV_ECANCELED || t->base.closing) return;
  if (status == 0 && t->base.ops == &tcp_ops) {
    (void)uv_tcp_nodelay(&t->u.tcp, 1);
    fill_addr(t, false);
    fill_addr(t, true);
  }
  t->base.ev.on_open(t->base.ud, status < 0 ? status : 0);
}

int p2p_tcp_connect(p2p_transport *bt, const struct sockaddr *sa) {
  assert(bt->ops == &tcp_ops && bt->ev.on_open);
  tcp_transport *t = tcp_of(bt);
  return uv_tcp_connect(&t->connect_req, &t->u.tcp, sa, on_connected);
}

int p2p_unix_connect(p2p_transport *bt, const char *path) {
  assert(bt->ops == &unix_ops && bt->ev.on_open);
  tcp_transport *t = tcp_of(bt);
  multiaddr ma;
  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) return -ENAMETOOLONG; /* libuv would truncate */
  if (multiaddr_from_unix_path(path, &ma) != 0 || multiaddr_to_string(&ma, bt->remote_addr, MULTIADDR_STR_MAX) != 0)
    bt->remote_addr[0] = 0;
  uv_pipe_connect(&t->connect_req, &t->u.pipe, path, on_connected); /* errors come to on_connected */
  return 0;
}

int p2p_tcp_connect_from(p2p_transport *bt, const struct sockaddr *sa, const struct sockaddr *local) {
  assert(bt->ops == &tcp_ops && bt->ev.on_open);
  tcp_transport *t = tcp_of(bt);
  if (local->sa_family != sa->sa_family) return -EAFNOSUPPORT;
  socklen_t llen = local->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int fd = socket(local->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1, rc = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      (local->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
      bind(fd, local, llen) != 0)
    rc = -errno;
  if (rc == 0) rc = uv_tcp_open(&t->u.tcp, fd); /* from here the handle owns fd */
  if (rc) {
    close(fd);
    return rc;
  }
  return uv_tcp_connect(&t->connect_req, &t->u.tcp, sa, on_connected);
}

int p2p_tcp_accept(p2p_transport *bt, uv_stream_t *server) {
  assert(bt->ops == &tcp_ops || bt->ops == &unix_ops);
  tcp_transport *t = tcp_of(bt);
  int rc = uv_accept(server, &t->u.stream);
  if (rc) return rc;
  if (bt->ops == &tcp_ops) {
    (void)uv_tcp_nodelay(&t->u.tcp, 1);
    fill_addr(t, true);
    fill_addr(t, false);
  } else {
    fill_addr(t, false); /* the listener's path; the dialer is unnamed: it is seen as that path too */
    memcpy(bt->remote_addr, bt->local_addr, sizeof bt->remote_addr);
  }
  return 0;
}
