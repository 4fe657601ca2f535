/* stdio.c — newline-delimited JSON-RPC over two file descriptors (see stdio.h). */
#include "mcp/stdio.h"

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
  char *msg;
  size_t len;
  struct mcp_stdio *st;
} out_req;

struct mcp_stdio {
  uv_loop_t *loop;
  mcp_stdio_opts o;
  mcp_session *session;
  int in_fd, out_fd;
  size_t max_line;

  /* reader thread */
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
  size_t out_pending;
  size_t out_bytes;  /* queued for stdout */
  bool input_paused; /* by output backpressure */

  /* shutdown */
  bool eof;
  int stop_requests;
  bool closed_notified;
  bool has_out, has_async;
  int handles_open;
};

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

/* ---------- output ---------- */

static void check_closed(mcp_stdio *st);

static void write_cb(uv_write_t *req, int status) {
  out_req *w = (out_req *)req;
  mcp_stdio *st = w->st;
  if (status < 0 && !st->out_broken) {
    st->out_broken = true;
    log_warn("stdio: write to stdout failed; dropping further output", "{s:s}", "error", uv_strerror(status));
  }
  st->out_bytes -= w->len;
  free(w->msg);
  free(w);
  st->out_pending--;
  if (st->input_paused && st->out_bytes < OUT_LOW && st->session) {
    st->input_paused = false;
    uv_async_send(&st->async); /* resume input */
  }
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

/* Session output: msg (malloc'd, no newline) becomes one line. */
static void stdio_send(void *ud, char *msg, size_t len) {
  mcp_stdio *st = ud;
  if (st->out_broken) {
    free(msg);
    return;
  }
  if (!st->out_stream) {
    /* one write for message + newline keeps lines whole */
    char *line = realloc(msg, len + 1);
    if (!line) {
      free(msg);
      return;
    }
    line[len] = '\n';
    write_all_blocking(st, line, len + 1);
    free(line);
    return;
  }
  out_req *w = malloc(sizeof *w);
  char *line = w ? realloc(msg, len + 1) : NULL;
  if (!line) {
    free(w);
    free(msg);
    log_error("stdio: out of memory writing a message", NULL);
    return;
  }
  line[len] = '\n';
  w->msg = line;
  w->len = len + 1;
  w->st = st;
  uv_buf_t b = uv_buf_init(line, (unsigned)(len + 1));
  int rc = uv_write(&w->req, (uv_stream_t *)&st->out, &b, 1, write_cb);
  if (rc < 0) {
    st->out_broken = true;
    log_warn("stdio: cannot write to stdout", "{s:s}", "error", uv_strerror(rc));
    free(line);
    free(w);
    return;
  }
  st->out_pending++;
  st->out_bytes += len + 1;
}

/* ---------- input ---------- */

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
  mcp_session_reply_error(st->session, NULL, -32600, msg, NULL);
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

static void async_cb(uv_async_t *h) {
  mcp_stdio *st = h->data;
  for (;;) {
    if (st->out_bytes > OUT_HIGH && !st->eof) {
      st->input_paused = true; /* write_cb resumes us */
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

/* ---------- shutdown ---------- */

static void on_session_idle(void *ud) { check_closed(ud); }

static void check_closed(mcp_stdio *st) {
  if (!st->eof || st->closed_notified || !st->session) return;
  if (mcp_session_inflight(st->session) > 0) return;
  if (st->out_pending > 0 && st->stop_requests < 2) return; /* a second signal stops waiting for a stuck reader */
  st->closed_notified = true;
  if (st->o.on_closed) st->o.on_closed(st->o.ud);
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

void mcp_stdio_stop(mcp_stdio *st) {
  st->stop_requests++;
  if (st->stop_requests > 1) {
    log_info("stdio: second stop request; cancelling in-flight calls", NULL);
    mcp_session_cancel_all(st->session);
    check_closed(st);
  }
  stop_reader(st);
  input_eof(st);
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
  so.send = stdio_send;
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
  buf_free(&st->line);
  if (st->stop_pipe[0] >= 0) close(st->stop_pipe[0]);
  if (st->stop_pipe[1] >= 0) close(st->stop_pipe[1]);
  st->handles_open = (st->has_out ? 1 : 0) + (st->has_async ? 1 : 0);
  if (st->handles_open == 0) {
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st);
    return;
  }
  if (st->has_out) uv_close((uv_handle_t *)&st->out, handle_closed);
  if (st->has_async) uv_close((uv_handle_t *)&st->async, handle_closed);
}
