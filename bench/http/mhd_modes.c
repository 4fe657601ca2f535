/* mhd_modes.c — the I/O-model measurement behind transport/http.c (docs/mcp.md, "I/O model").
 * Serves a fixed ~400-byte JSON-RPC result on /mcp through libmicrohttpd in two ways, each with
 * one hop through a libuv loop (where peermcp's session core and dispatcher live):
 *   loop    MHD in external-epoll mode on the libuv loop (what peermcp does): the handler
 *           posts the request with uv_async_send, the answer comes back in a later iteration
 *           and is queued from the handler's next call (polled, no suspend).
 *   thread  MHD with its own polling thread; the handler hands the request to the loop thread
 *           (mutex + uv_async_send) and suspends the connection; the loop thread queues the
 *           response and resumes it (MHD's inter-thread channel wakes the MHD thread).
 * usage: mhd_modes loop|thread  → prints {"port": N}, serves until SIGTERM; bench.py drives it
 * with wrk and reads /proc for CPU. Not part of peermcp. */
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const char k_body[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"echo\\\":{\\\"text\\\":"
    "\\\"hello\\\"}}\"}],\"structuredContent\":{\"echo\":{\"text\":\"hello\"}},\"isError\":false,\"_meta\":{\"io.peermcp/"
    "request_id\":\"9f11841b-8058-472f-8467-affc61a846a1\",\"io.peermcp/duration_ms\":0.069,\"io.modelcontextprotocol/"
    "serverInfo\":{\"name\":\"peermcp\",\"version\":\"0.1.0\"}},\"resultType\":\"complete\"}}";

typedef struct job {
  struct job *next;
  struct MHD_Connection *mc;
  bool ready; /* loop mode: the answer is in */
  int polls;
} job;

static uv_loop_t g_loop;
static uv_async_t g_async;
static uv_poll_t g_poll;
static uv_check_t g_check;
static uv_idle_t g_idle;
static uv_signal_t g_sig;
static struct MHD_Daemon *g_d;
static bool g_thread_mode, g_dirty;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static job *g_in; /* handed to the loop */

static void answer(struct MHD_Connection *mc) {
  struct MHD_Response *r = MHD_create_response_from_buffer(sizeof k_body - 1, (void *)k_body, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_queue_response(mc, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
}

static void on_idle(uv_idle_t *i) { (void)i; } /* keeps the poll from blocking while dirty */

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  job *j = *con_cls;
  if (!j) {
    j = calloc(1, sizeof *j);
    j->mc = mc;
    *con_cls = j;
    return MHD_YES;
  }
  if (*upload_size) {
    *upload_size = 0;
    return MHD_YES;
  }
  if (j->polls == 0) { /* the final call: hand the request to the loop */
    j->polls = 1;
    pthread_mutex_lock(&g_mu);
    j->next = g_in;
    g_in = j;
    pthread_mutex_unlock(&g_mu);
    uv_async_send(&g_async);
    if (g_thread_mode) MHD_suspend_connection(mc);
    return MHD_YES;
  }
  if (j->ready) answer(mc); /* loop mode: polled until the loop has the answer */
  return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe) {
  free(*con_cls);
  *con_cls = NULL;
}

/* The loop thread: where peermcp would run the session core and the dispatcher. */
static void on_async(uv_async_t *a) {
  pthread_mutex_lock(&g_mu);
  job *j = g_in;
  g_in = NULL;
  pthread_mutex_unlock(&g_mu);
  for (job *next; j; j = next) {
    next = j->next; /* once resumed, the MHD thread may finish and free j */
    if (g_thread_mode) {
      answer(j->mc); /* allowed on a suspended connection */
      MHD_resume_connection(j->mc);
    } else {
      j->ready = true;
    }
  }
  if (!g_thread_mode) {
    g_dirty = true; /* MHD_run in the check phase calls the handlers, which queue the answers */
    uv_idle_start(&g_idle, on_idle);
  }
}

static void run(void) {
  g_dirty = false;
  MHD_run(g_d);
  MHD_UNSIGNED_LONG_LONG to;
  if (MHD_get_timeout(g_d, &to) == MHD_YES && to == 0) g_dirty = true; /* a handler to call again */
  if (g_dirty) uv_idle_start(&g_idle, on_idle);
  else uv_idle_stop(&g_idle);
}

static void on_poll(uv_poll_t *p, int status, int events) { run(); }
static void on_check(uv_check_t *c) {
  if (g_dirty) run();
}
static void on_sig(uv_signal_t *s, int n) { uv_stop(&g_loop); }

int main(int argc, char **argv) {
  if (argc != 2 || (strcmp(argv[1], "loop") && strcmp(argv[1], "thread"))) {
    fprintf(stderr, "usage: mhd_modes loop|thread\n");
    return 2;
  }
  g_thread_mode = strcmp(argv[1], "thread") == 0;
  signal(SIGPIPE, SIG_IGN);
  uv_loop_init(&g_loop);
  uv_async_init(&g_loop, &g_async, on_async);
  uv_check_init(&g_loop, &g_check);
  uv_idle_init(&g_loop, &g_idle);
  uv_signal_init(&g_loop, &g_sig);
  uv_signal_start(&g_sig, on_sig, SIGTERM);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
  if (g_thread_mode) flags |= MHD_USE_INTERNAL_POLLING_THREAD;
  g_d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, 1024u,
                         MHD_OPTION_END);
  if (!g_d) {
    perror("MHD_start_daemon");
    return 1;
  }
  if (!g_thread_mode) {
    uv_poll_init(&g_loop, &g_poll, MHD_get_daemon_info(g_d, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd);
    uv_poll_start(&g_poll, UV_READABLE, on_poll);
    uv_check_start(&g_check, on_check);
  }
  printf("{\"port\": %u}\n", MHD_get_daemon_info(g_d, MHD_DAEMON_INFO_BIND_PORT)->port);
  fflush(stdout);
  uv_run(&g_loop, UV_RUN_DEFAULT);
  MHD_stop_daemon(g_d);
  return 0;
}
