/* transport/http.h — MCP over Streamable HTTP: the endpoint /mcp (plus /healthz and /readyz) on
 * one or more listen addresses, around the same session core (mcp/session.h), dispatcher and
 * registry as stdio and /mcp+p2p/1.0.0. An adapter, not a second server.
 *
 * Spec: MCP 2025-11-25 basic/transports.mdx §Streamable HTTP (and the older revisions the
 * session core negotiates) and 2026-07-28 basic/transports/streamable-http.mdx. Both eras on
 * one endpoint, chosen per request:
 *  - 2026-07-28 (a request whose _meta carries io.modelcontextprotocol/protocolVersion, or an
 *    MCP-Protocol-Version header naming a version the legacy list lacks, without a session):
 *    stateless. Each POST gets its own short-lived mcp_session; MCP-Protocol-Version, Mcp-Method
 *    and Mcp-Name (and Mcp-Param-* for x-mcp-header arguments) must match the body (400 +
 *    -32020; the version check is the session core's); errors carry the HTTP status the spec
 *    names (404 for -32601, 400 for -32602/-32020/-32021/-32022); closing the HTTP response
 *    cancels the request (its session is freed, which detaches the call).
 *  - 2025-11-25 … 2024-11-05: an initialize POST creates a session whose id (256 random bits,
 *    base64url) comes back in Mcp-Session-Id; later requests must carry it (400 without, 404
 *    when unknown or expired); DELETE ends it; GET opens the server-to-client SSE stream;
 *    MCP-Protocol-Version is checked (400 when unsupported). Each POST is answered with JSON
 *    when its response is the first message for it, else with an SSE stream carrying its
 *    notifications (progress, logging) and then the response. Streams of a session carry event
 *    ids ("<stream>-<seq>") and keep recent events, so GET with Last-Event-ID resumes a broken
 *    stream. A disconnect does not cancel a 2025-11-25 request. Idle sessions expire.
 * Transport rules for every request: Host and Origin checked (DNS rebinding; 403), POST needs
 * Content-Type application/json (415) and an Accept admitting both application/json and
 * text/event-stream (406); GET needs Accept text/event-stream (406); bodies over max_body_bytes
 * get 413 (from Content-Length, before reading); headers over max_header_bytes 431; bad JSON 400
 * with -32700; other methods 405; other paths 404.
 *
 * I/O model: libmicrohttpd in external-epoll mode on the one libuv loop: a uv_poll watches each
 * daemon's epoll descriptor and runs MHD_run; a timer follows MHD_get_timeout. A request whose
 * answer comes later is first polled (libmicrohttpd calls the access handler again on each run;
 * a quick answer is queued from there, with no suspend/resume and its epoll_ctl calls), then
 * suspended (MHD_suspend_connection) and resumed when its first message arrives; an SSE body is
 * produced by a content reader that suspends when it has nothing to send. A request suspended
 * for 200 ms gets a uv_poll on its socket (UV_DISCONNECT) that notices the client going away
 * (libmicrohttpd does not watch suspended sockets). See docs/mcp.md for why this was
 * chosen over a libmicrohttpd thread with a hand-off, and the figures.
 *
 * Limits (mcp_http_opts): connections per listener, sessions, body, headers, a deadline for a
 * whole request to arrive (slow clients are closed), idle keep-alive, unread SSE bytes per
 * stream (a client that does not read its stream loses it).
 *
 * Authentication: opts.authenticate (NULL = none: every client acts as the local operator);
 * a non-loopback listen address without it is refused by mcp_http_start unless
 * allow_unauthenticated. A 2025-11-25 session is bound to the subject that created it.
 *
 * Ownership: the transport borrows the dispatcher, the tasks backend and every string in the
 * options until mcp_http_free. Threads: every function on the loop thread. */
#ifndef PEERMCP_TRANSPORT_HTTP_H
#define PEERMCP_TRANSPORT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mcp/dispatch.h"
#include "mcp/tasks.h"
#include "mcp/tool.h"

typedef struct mcp_http mcp_http;

#define MCP_HTTP_MAX_LISTENERS 16
#define MCP_HTTP_MAX_URL 80

/* A request as the authentication hook sees it. */
typedef struct mcp_http_request_info {
  const char *method;        /* "POST", "GET", "DELETE" */
  const char *path;          /* "/mcp" */
  const char *authorization; /* the Authorization header or NULL */
  const char *remote_addr;   /* numeric peer address */
  const char *base_url;      /* "http://HOST:PORT" of the listener */
  bool token_in_query;       /* the URL carries access_token / token / jwt (refused, issue 13) */
} mcp_http_request_info;

/* What the authentication hook decided. */
typedef struct mcp_http_auth_result {
  mcp_auth auth;            /* on success: copied (strings too) for the request / session */
  unsigned status;          /* 0 = accepted, else 401 or 403 */
  char www_authenticate[512]; /* WWW-Authenticate value for 401/403 ("" = none) */
} mcp_http_auth_result;

/* An extra route (e.g. /metrics, /.well-known/oauth-protected-resource): return true after
 * filling the reply for (method, path); false = 404. body is malloc'd (the transport frees it). */
typedef struct mcp_http_reply {
  unsigned status;
  const char *content_type; /* static string */
  char *body;
  size_t body_len;
} mcp_http_reply;

typedef struct mcp_http_opts {
  const char *const *listen; /* "HOST:PORT" (config_host_port_parse forms) */
  size_t n_listen;
  mcp_dispatcher *dispatcher;     /* required */
  const mcp_tasks_backend *tasks; /* NULL = no MCP Tasks */
  size_t page_size;               /* tools/list page; 0 = 50 */
  const char *const *allowed_origins;
  size_t n_allowed_origins;
  const char *const *allowed_hosts; /* "*" = any */
  size_t n_allowed_hosts;
  bool allow_unauthenticated;
  uint32_t session_idle_seconds;  /* 0 = 1800 */
  uint32_t max_sessions;          /* 0 = 1024 */
  uint32_t max_connections;       /* per listener; 0 = 1024 */
  size_t max_body_bytes;          /* 0 = 4 MiB */
  size_t max_header_bytes;        /* 0 = 16 KiB */
  uint32_t request_timeout_seconds; /* 0 = 10 */
  uint32_t idle_timeout_seconds;  /* 0 = 60 */
  uint32_t sse_keepalive_seconds; /* 0 = never */
  size_t max_stream_bytes;        /* unread SSE bytes per stream; 0 = 4 MiB */
  const char *url_file;           /* write {"url": …, "urls": […]} here once listening; NULL = none */
  /* Authentication (issue 13 plugs in here); NULL = none. ud = auth_ud. */
  int (*authenticate)(void *ud, const mcp_http_request_info *req, mcp_http_auth_result *out);
  void *auth_ud;
  /* Extra GET routes; NULL = none. */
  bool (*route)(void *ud, const char *method, const char *path, mcp_http_reply *out);
  void *route_ud;
  /* /readyz asks this too (NULL = no check): false = not ready, with why (one line) in the
   * 503 body. Called on the thread that answers HTTP requests; must be thread-safe and quick. */
  bool (*ready_check)(void *ud, char *why, size_t whylen);
  void *ready_ud;
  bool no_mcp; /* serve no MCP: /mcp is 404 like any path the route does not take (the metrics
                  listener: /metrics, /healthz, /readyz only) */
} mcp_http_opts;

/* Binds every listen address and starts serving. Returns 0, or -EINVAL (a bad address; a
 * non-loopback one without authentication and without allow_unauthenticated: err says which),
 * -EADDRINUSE / other -errno from binding, -ENOMEM. On failure nothing is left running. */
int mcp_http_start(uv_loop_t *loop, const mcp_http_opts *opts, mcp_http **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The URL of listener i ("http://127.0.0.1:PORT/mcp", the bound port), NULL past the end. */
const char *mcp_http_url(const mcp_http *h, size_t i);

/* /readyz answers 200 only while ready is set, the transport is not stopping and ready_check
 * (if any) says ready (default: not ready; the node sets it once storage is open and every
 * listener is up; its ready_check says whether a configured store is down since). A 503 body is
 * {"status": "starting" | "stopping" | "not_ready", "reason"?}. */
void mcp_http_set_ready(mcp_http *h, bool ready);

/* Stops taking new MCP requests (they get 503; /readyz 503), ends subscription streams, lets
 * in-flight requests finish or reach their deadline, flushes, closes the listeners, then calls
 * done(arg) once on the loop thread (possibly before returning). */
void mcp_http_stop(mcp_http *h, void (*done)(void *arg), void *arg);
/* While stopping: cancel every in-flight request (a second signal). */
void mcp_http_cancel(mcp_http *h);
/* After done (or to abort): frees everything; run the loop afterwards so handles close. */
void mcp_http_free(mcp_http *h);

/* Counters for tests and status. */
typedef struct mcp_http_stats {
  uint64_t requests;    /* HTTP requests received on /mcp */
  uint64_t rejected;    /* answered 4xx/5xx by the transport itself */
  size_t connections;   /* open TCP connections */
  size_t sessions;      /* live 2025-11-25 sessions */
  size_t inflight;      /* MCP requests waiting for their answer */
  size_t streams;       /* SSE responses open */
} mcp_http_stats;
void mcp_http_get_stats(const mcp_http *h, mcp_http_stats *out);

#endif
