/* transport/stdio.h — the MCP stdio transport: newline-delimited JSON-RPC on a pair of file descriptors
 * (0 and 1 by default), around one mcp_session (MCP basic/transports/stdio.mdx).
 *
 * Input from a pipe or a socket is read by libuv on the loop thread; anything else (a tty, a
 * regular file as in `peermcp serve < requests.jsonl`, a character device) by a small reader
 * thread with blocking read(2), whose chunks reach the loop through uv_async. Lines are split
 * on the loop thread. A line longer than max_line_bytes is answered
 * with -32600 (id null, "line too long") as soon as the limit is passed, and the rest of it is
 * discarded as it arrives — never buffered whole. Empty lines and a trailing '\r' are ignored.
 * Output: one message per line; the messages of one loop iteration go out in one write, through
 * libuv (pipe/tty) or blocking writes (regular files). Nothing else is ever written to it.
 * Backpressure: past 64 MiB of unwritten output no more input is processed until it drains.
 *
 * Shutdown: on EOF (or mcp_stdio_stop, e.g. from a signal) reading stops; in-flight calls finish
 * or reach their deadline; output is flushed; then `on_closed` runs once on the loop thread.
 * After that, mcp_stdio_free() releases everything (run the loop afterwards so handles close).
 *
 * src/transport/ holds the MCP transports side by side (stdio.c, http.c); their public names
 * keep the mcp_<transport>_ prefix.
 *
 * Threads: every function runs on the loop thread. */
#ifndef PEERMCP_TRANSPORT_STDIO_H
#define PEERMCP_TRANSPORT_STDIO_H

#include <stddef.h>
#include <uv.h>

#include "mcp/session.h"

typedef struct mcp_stdio mcp_stdio;

#define MCP_STDIO_DEFAULT_MAX_LINE (16u * 1024u * 1024u)

typedef struct mcp_stdio_opts {
  int in_fd;             /* -1 = 0 */
  int out_fd;            /* -1 = 1 */
  size_t max_line_bytes; /* 0 = 16 MiB */
  /* The session to create; send/send_ud are filled in by the transport and max_message_bytes
   * defaults to max_line_bytes. */
  mcp_session_opts session;
  void (*on_closed)(void *ud);
  void *ud;
} mcp_stdio_opts;

int mcp_stdio_start(uv_loop_t *loop, const mcp_stdio_opts *opts, mcp_stdio **out) __attribute__((warn_unused_result));
/* Stops reading as if EOF had arrived (a second call cancels every in-flight call). */
void mcp_stdio_stop(mcp_stdio *st);
mcp_session *mcp_stdio_session(mcp_stdio *st);
/* After on_closed (or to abort): frees the session, stops the reader, closes the handles. */
void mcp_stdio_free(mcp_stdio *st);

#endif
