/* stdio.c — newline-delimited JSON-RPC over two file descriptors (see stdio.h).
 *
 * Input: a pipe or a socket (what an MCP client gives its server) is read by libuv on the loop
 * thread; anything else (a regular file, a tty, a character device) by a reader thread with
 * blocking read(2), whose chunks reach the loop through uv_async. Both feed consume().
 * Output: messages produced during one loop iteration are coalesced into one buffer and
 * written with one uv_write (or blocking write(2) for files) from a uv_check callback, so a
 * burst of responses costs one system call. */
#include "transport/stdio.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/log.h"

#define READ_CHUNK (64u * 1024u)
#define MAX_QUEUED_CHUNKS 8 /* reader backpressure: at most 512 KiB waiting for the loop */
/* Output backpressure: past OUT_HIGH bytes queued for stdout, no more input is processed (the
 * reader then blocks, and the client's writes block) until the queue drains below OUT_LOW. */
#define OUT_HIGH (64u * 1024u * 1024u)
#define OUT_LOW (16u * 1024u * 1024u)

typedef struct chunk {
  struct chunk *next;
  size_t len; /* 0 = EOF (or read error) */
  char data[];
} chunk;

typedef struct out_req {
  uv_write_t req;
  char *data;
  size_t len;
  struct mcp_stdio *st;
} out_req;

struct mcp_stdio {
  uv_loop_t *loop;
  mcp_stdio_opts o;
  mcp_session *session;
  int in_fd, out_fd;
  size_t max_line;

  /* input through libuv (pipes, sockets) */
  uv_pipe_t in;
  bool has_in;     /* the handle exists (closed at free) */
  bool in_uv;      /* input comes through it (else through the reader thread) */
  bool in_reading;
  char *rbuf; /* reused read buffer */

  /* input through the reader thread (files, ttys, …) */
  pthread_t reader;
  bool reader_started;
  int stop_pipe[2];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  chunk *q_head, *q_tail;
  int q_len;
  bool q_stop;
  uv_async_t async;

  /* line assembly (loop thread) */
  buf line;
  bool skipping; /* inside an over-long line */

  /* output */
  union {
    uv_pipe_t pipe;
    uv_tty_t tty;
  } out;
  bool out_stream; /* else blocking write(2) */
  bool out_broken; /* EPIPE etc.: drop further output */
  char *pend;      /* messages of this loop iteration, not yet written */
  size_t pend_len, pend_cap;
  uv_check_t flush_check; /* writes `pend` after the poll phase */
  uv_idle_t flush_idle;   /* keeps that poll from blocking while `pend` is not empty */
  size_t out_pending;     /* uv_write requests in flight */
  size_t out_bytes;       /* bytes queued for stdout (pending + in flight) */
  bool input_paused;      /* by output backpressure */

  /* shutdown */
  bool eof;
  int stop_requests;
  bool closed_notified;
  bool has_out, has_async, has_flush;
  int handles_open;
};

static void check_closed(mcp_stdio *st);
static void consume(mcp_stdio *st, const char *p, size_t n);
static void input_eof(mcp_stdio *st);
static void resume_input(mcp_stdio *st);

/* ---------- reader thread ---------- */

static void push_chunk(mcp_stdio *st, chunk *c) {
  pthread_mutex_lock(&st->mu);
  c->next = NULL;
  if (st->q_tail) st->q_tail->next = c;
  else st->q_head = c;
  st->q_tail = c;
  st->q_len++;
  pthread_mutex_unlock(&st->mu);
  uv_async_send(&st->async);
}

static void *reader_main(void *arg) {
  mcp_stdio *st = arg;
  for (;;) {
    pthread_mutex_lock(&st->mu);
    while (st->q_len >= MAX_QUEUED_CHUNKS && !st->q_stop) pthread_cond_wait(&st->cv, &st->mu);
    bool stop = st->q_stop;
    pthread_mutex_unlock(&st->mu);
    if (stop) return NULL;
    struct pollfd p[2] = {{.fd = st->in_fd, .events = POLLIN}, {.fd = st->stop_pipe[0], .events = POLLIN}};
    int pr = poll(p, 2, -1);
    if (pr < 0) {
      if (errno == EINTR) continue;
      /* poll cannot watch this fd: fall through to a plain read */
    } else if (p[1].revents) {
      return NULL;
    }
    chunk *c = malloc(sizeof *c + READ_CHUNK);
    if (!c) {
      usleep(10000);
      continue;
    }
    ssize_t n = read(st->in_fd, c->data, READ_CHUNK);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      free(c);
      if (errno == EAGAIN) usleep(1000); /* a non-blocking fd shared with someone else */
      continue;
    }
    if (n < 0) log_warn("stdio: read failed, treating as end of input", "{s:s}", "error", strerror(errno));
    c->len = n > 0 ? (size_t)n : 0;
    push_chunk(st, c);
    if (n <= 0) return NULL;
  }
}

static void async_cb(uv_async_t *h) {
  mcp_stdio *st = h->data;
  for (;;) {
    if (st->out_bytes > OUT_HIGH && !st->eof) {
      st->input_paused = true; /* resume_input() wakes us */
      return;
    }
    pthread_mutex_lock(&st->mu);
    chunk *c = st->q_head;
    if (c) {
      st->q_head = c->next;
      if (!st->q_head) st->q_tail = NULL;
      st->q_len--;
      pthread_cond_signal(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    if (!c) return;
    if (!st->eof) {
      if (c->len == 0) input_eof(st);
      else consume(st, c->data, c->len);
    }
    free(c);
  }
}

static void stop_reader(mcp_stdio *st) {
  if (!st->reader_started) return;
  pthread_mutex_lock(&st->mu);
  st->q_stop = true;
  pthread_cond_broadcast(&st->cv);
  pthread_mutex_unlock(&st->mu);
  char b = 1;
  ssize_t w;
  do w = write(st->stop_pipe[1], &b, 1);
  while (w < 0 && errno == EINTR);
  pthread_join(st->reader, NULL);
  st->reader_started = false;
}

/* ---------- input through libuv ---------- */

static void in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  mcp_stdio *st = h->data;
  *b = uv_buf_init(st->rbuf, st->rbuf ? READ_CHUNK : 0);
}

static void in_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  mcp_stdio *st = s->data;
  if (n > 0) {
    if (!st->eof) consume(st, b->base, (size_t)n);
    if (st->out_bytes > OUT_HIGH && !st->eof && st->in_reading) {
      uv_read_stop(s);
      st->in_reading = false;
      st->input_paused = true;
    }
    return;
  }
  if (n == 0) return; /* EAGAIN */
  if (n != UV_EOF) log_warn("stdio: read failed, treating as end of input", "{s:s}", "error", uv_strerror((int)n));
  uv_read_stop(s);
  st->in_reading = false;
  input_eof(st);
}

static void resume_input(mcp_stdio *st) {
  if (!st->input_paused || !st->session || st->eof) return;
  st->input_paused = false;
  if (st->in_uv) {
    if (uv_read_start((uv_stream_t *)&st->in, in_alloc, in_read) == 0) st->in_reading = true;
  } else if (st->has_async) {
    uv_async_send(&st->async);
  }
}

/* ---------- output ---------- */

static void write_cb(uv_write_t *req, int status) {
  out_req *w = (out_req *)req;
  mcp_stdio *st = w->st;
  if (status < 0 && !st->out_broken) {
    st->out_broken = true;
    log_warn("stdio: write to stdout failed; dropping further output", "{s:s}", "error", uv_strerror(status));
  }
  st->out_bytes -= w->len;
  free(w->data);
  free(w);
  st->out_pending--;
  if (st->out_bytes < OUT_LOW) resume_input(st);
  check_closed(st);
}

static void write_all_blocking(mcp_stdio *st, const char *p, size_t n) {
  while (n > 0 && !st->out_broken) {
    ssize_t w = write(st->out_fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd pf = {.fd = st->out_fd, .events = POLLOUT};
        poll(&pf, 1, 1000);
        continue;
      }
      st->out_broken = true;
      log_warn("stdio: write to stdout failed; dropping further output", "{s:s}", "error", strerror(errno));
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

/* Writes what this iteration produced. */
static void flush_out(mcp_stdio *st) {
  if (st->has_flush) {
    uv_check_stop(&st->flush_check);
    uv_idle_stop(&st->flush_idle);
  }
  if (st->pend_len == 0) return;
  char *data = st->pend;
  size_t len = st->pend_len;
  st->pend = NULL;
  st->pend_len = st->pend_cap = 0;
  if (st->out_broken) {
    st->out_bytes -= len;
    free(data);
    return;
  }
  if (!st->out_stream) {
    write_all_blocking(st, data, len);
    st->out_bytes -= len;
    free(data);
    return;
  }
  out_req *w = malloc(sizeof *w);
  if (!w) {
    st->out_bytes -= len;
    free(data);
    log_error("stdio: out of memory writing output", NULL);
    return;
  }
  w->data = data;
  w->len = len;
  w->st = st;
  uv_buf_t b = uv_buf_init(data, (unsigned)len);
  int rc = uv_write(&w->req, (uv_stream_t *)&st->out, &b, 1, write_cb);
  if (rc < 0) {
    st->out_broken = true;
    log_warn("stdio: cannot write to stdout", "{s:s}", "error", uv_strerror(rc));
    st->out_bytes -= len;
    free(data);
    free(w);
    return;
  }
  st->out_pending++;
}

static void flush_check_cb(uv_check_t *h) {
  mcp_stdio *st = h->data;
  flush_out(st);
  check_closed(st);
}
static void flush_idle_cb(uv_idle_t *h) { (void)h; }

/* Session output: msg (borrowed, no newline) is copied into the next write as one line. */
static void stdio_write(void *ud, const char *msg, size_t len) {
  mcp_stdio *st = ud;
  if (st->out_broken) return;
  if (st->pend_len + len + 1 > st->pend_cap) {
    size_t cap = st->pend_cap ? st->pend_cap : 4096;
    while (cap < st->pend_len + len + 1) cap *= 2;
    char *n = realloc(st->pend, cap);
    if (!n) {
      log_error("stdio: out of memory queueing a message", NULL);
      return;
    }
    st->pend = n;
    st->pend_cap = cap;
  }
  memcpy(st->pend + st->pend_len, msg, len);
  st->pend[st->pend_len + len] = '\n';
  st->pend_len += len + 1;
  st->out_bytes += len + 1;
  if (!st->has_flush) {
    flush_out(st);
  } else if (!uv_is_active((uv_handle_t *)&st->flush_check)) {
    uv_check_start(&st->flush_check, flush_check_cb);
    uv_idle_start(&st->flush_idle, flush_idle_cb);
  }
}

/* ---------- input framing ---------- */

static void handle_line(mcp_stdio *st, const char *p, size_t n) {
  if (n > 0 && p[n - 1] == '\r') n--;
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
  if (i == n) return; /* blank line */
  mcp_session_feed(st->session, p, n);
}

static void line_too_long(mcp_stdio *st) {
  buf_free(&st->line); /* give the memory back: the next lines are probably short */
  buf_init(&st->line, st->max_line);
  char msg[128];
  snprintf(msg, sizeof msg, "Invalid Request: line too long (over %zu bytes); skipped", st->max_line);
  mcp_session_reply_error(st->session, NULL, MCP_RPC_INVALID_REQUEST, msg, NULL);
  log_warn("stdio: skipping an over-long line", "{s:I}", "max_line_bytes", (json_int_t)st->max_line);
}

static void consume(mcp_stdio *st, const char *p, size_t n) {
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t seg = nl ? (size_t)(nl - p) : n;
    if (st->skipping) {
      if (nl) st->skipping = false;
    } else if (nl && buf_len(&st->line) == 0) {
      if (seg > st->max_line) line_too_long(st);
      else handle_line(st, p, seg); /* fast path: the whole line is in this chunk */
    } else if (buf_len(&st->line) + seg > st->max_line) {
      buf_reset(&st->line);
      line_too_long(st);
      st->skipping = !nl;
    } else {
      if (buf_append(&st->line, p, seg) != 0) {
        buf_reset(&st->line);
        line_too_long(st);
        st->skipping = !nl;
      } else if (nl) {
        handle_line(st, (const char *)buf_ptr(&st->line), buf_len(&st->line));
        buf_reset(&st->line);
      }
    }
    if (!nl) break;
    p = nl + 1;
    n -= seg + 1;
  }
}

static void input_eof(mcp_stdio *st) {
  if (st->eof) return;
  st->eof = true;
  if (!st->skipping && buf_len(&st->line) > 0) /* EOF in the middle of a message */
    handle_line(st, (const char *)buf_ptr(&st->line), buf_len(&st->line));
  buf_reset(&st->line);
  mcp_session_end_subscriptions(st->session); /* a listen stream must not hold the process open */
  log_info("stdio: end of input; finishing in-flight calls", "{s:I}", "inflight",
           (json_int_t)mcp_session_inflight(st->session));
  check_closed(st);
}

/* ---------- shutdown ---------- */

static void on_session_idle(void *ud) { check_closed(ud); }

static void check_closed(mcp_stdio *st) {
  if (!st->eof || st->closed_notified || !st->session) return;
  if (mcp_session_inflight(st->session) > 0) return;
  if (st->pend_len > 0) flush_out(st);
  if (st->out_pending > 0 && st->stop_requests < 2) return; /* a second signal stops waiting for a stuck reader */
  st->closed_notified = true;
  if (st->o.on_closed) st->o.on_closed(st->o.ud);
}

void mcp_stdio_stop(mcp_stdio *st) {
  st->stop_requests++;
  if (st->stop_requests > 1) {
    log_info("stdio: second stop request; cancelling in-flight calls", NULL);
    mcp_session_cancel_all(st->session);
  }
  stop_reader(st);
  if (st->in_uv && st->in_reading) {
    uv_read_stop((uv_stream_t *)&st->in);
    st->in_reading = false;
  }
  input_eof(st);
  check_closed(st);
}

mcp_session *mcp_stdio_session(mcp_stdio *st) { return st->session; }

int mcp_stdio_start(uv_loop_t *loop, const mcp_stdio_opts *opts, mcp_stdio **out) {
  *out = NULL;
  mcp_stdio *st = calloc(1, sizeof *st);
  if (!st) return -ENOMEM;
  st->loop = loop;
  st->o = *opts;
  st->in_fd = opts->in_fd >= 0 ? opts->in_fd : 0;
  st->out_fd = opts->out_fd >= 0 ? opts->out_fd : 1;
  st->max_line = opts->max_line_bytes ? opts->max_line_bytes : MCP_STDIO_DEFAULT_MAX_LINE;
  st->stop_pipe[0] = st->stop_pipe[1] = -1;
  buf_init(&st->line, st->max_line);
  pthread_mutex_init(&st->mu, NULL);
  pthread_cond_init(&st->cv, NULL);

  mcp_session_opts so = opts->session;
  so.send = NULL;
  so.route = NULL;
  so.write = stdio_write;
  so.send_ud = st;
  if (!so.max_message_bytes) so.max_message_bytes = st->max_line;
  int rc = mcp_session_new(&so, &st->session);
  if (rc != 0) goto fail;
  mcp_session_on_idle(st->session, on_session_idle, st);

  uv_handle_type ot = uv_guess_handle(st->out_fd);
  if (ot == UV_NAMED_PIPE) {
    if (uv_pipe_init(loop, &st->out.pipe, 0) == 0) {
      st->has_out = true;
      st->out_stream = uv_pipe_open(&st->out.pipe, st->out_fd) == 0;
    }
  } else if (ot == UV_TTY) {
    if (uv_tty_init(loop, &st->out.tty, st->out_fd, 0) == 0) st->has_out = st->out_stream = true;
  }
  /* anything else (a regular file, /dev/null, …): blocking write(2) */
  if (st->has_out) st->out.pipe.data = st;
  if (uv_check_init(loop, &st->flush_check) == 0 && uv_idle_init(loop, &st->flush_idle) == 0) {
    st->has_flush = true;
    st->flush_check.data = st->flush_idle.data = st;
  } else {
    rc = -ENOMEM;
    goto fail;
  }

  if (uv_guess_handle(st->in_fd) == UV_NAMED_PIPE && (st->rbuf = malloc(READ_CHUNK)) != NULL) {
    if (uv_pipe_init(loop, &st->in, 0) == 0) {
      st->has_in = true;
      st->in.data = st;
      if (uv_pipe_open(&st->in, st->in_fd) == 0 &&
          uv_read_start((uv_stream_t *)&st->in, in_alloc, in_read) == 0) {
        st->in_uv = st->in_reading = true;
        *out = st;
        return 0;
      }
      /* fall back to the reader thread below; the half-made handle is closed at free */
    }
  }
  rc = uv_async_init(loop, &st->async, async_cb);
  if (rc != 0) goto fail;
  st->async.data = st;
  st->has_async = true;
  if (pipe2(st->stop_pipe, O_CLOEXEC) != 0) {
    rc = -errno;
    goto fail;
  }
  rc = -pthread_create(&st->reader, NULL, reader_main, st);
  if (rc != 0) goto fail;
  st->reader_started = true;
  *out = st;
  return 0;
fail:
  mcp_stdio_free(st);
  return rc < 0 ? rc : -ENOMEM;
}

static void handle_closed(uv_handle_t *h) {
  mcp_stdio *st = h->data;
  if (--st->handles_open > 0) return;
  pthread_mutex_destroy(&st->mu);
  pthread_cond_destroy(&st->cv);
  free(st);
}

void mcp_stdio_free(mcp_stdio *st) {
  if (!st) return;
  stop_reader(st);
  chunk *c = st->q_head;
  while (c) {
    chunk *n = c->next;
    free(c);
    c = n;
  }
  st->q_head = st->q_tail = NULL;
  mcp_session_free(st->session);
  st->session = NULL;
  if (st->pend_len) flush_out(st); /* whatever is still pending goes out (or is dropped) */
  free(st->pend);
  st->pend = NULL;
  free(st->rbuf);
  st->rbuf = NULL;
  buf_free(&st->line);
  if (st->stop_pipe[0] >= 0) close(st->stop_pipe[0]);
  if (st->stop_pipe[1] >= 0) close(st->stop_pipe[1]);
  st->handles_open = (st->has_out ? 1 : 0) + (st->has_async ? 1 : 0) + (st->has_in ? 1 : 0) + (st->has_flush ? 2 : 0);
  if (st->handles_open == 0) {
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st);
    return;
  }
  if (st->has_out) uv_close((uv_handle_t *)&st->out, handle_closed);
  if (st->has_async) uv_close((uv_handle_t *)&st->async, handle_closed);
  if (st->has_in) uv_close((uv_handle_t *)&st->in, handle_closed);
  if (st->has_flush) {
    uv_close((uv_handle_t *)&st->flush_check, handle_closed);
    uv_close((uv_handle_t *)&st->flush_idle, handle_closed);
  }
}
