/* transport_tcp.h — TCP and Unix-domain stream sockets as a p2p_transport (see transport.h): one
 * libuv stream handle, dialed or accepted — a uv_tcp_t with TCP_NODELAY on (ops name "tcp") or a
 * uv_pipe_t (ops name "unix", same-host peers: /unix/<path>); the code is shared. Writes go out with uv_write from buffers recycled through a pool
 * (fresh large buffers would be mmap'd and page-faulted on every write); reads land in one
 * read buffer shared by every TCP transport of a host (libuv calls alloc_cb and read_cb back
 * to back, and on_read consumes the bytes before returning).
 *
 * Ownership: p2p_tcp_new() allocates; the transport frees itself after on_closed. The context
 * (read buffer, pool, counters) belongs to the caller and must outlive every transport made
 * with it; p2p_tcp_pool_free() releases the pool's buffers once they are all back.
 * Threads: the loop thread only. */
#ifndef PEERMCP_P2P_HOST_TRANSPORT_TCP_H
#define PEERMCP_P2P_HOST_TRANSPORT_TCP_H

#include <stdint.h>
#include <uv.h>

#include "p2p/host/transport.h"

/* Recycled write buffers (at most P2P_TCP_POOL_MAX, each at most 2 × P2P_TCP_POOL_BUF). */
#define P2P_TCP_POOL_MAX 8
#define P2P_TCP_POOL_BUF (512u * 1024u)
typedef struct p2p_tcp_pool {
  void *free;
  int n;
} p2p_tcp_pool;

typedef struct p2p_tcp_ctx {
  uv_loop_t *loop;
  uint8_t *rbuf;          /* shared read buffer */
  size_t rbuf_len;
  p2p_tcp_pool *pool;
  size_t write_queue_max; /* writable() is false while this many bytes are in flight */
  uint64_t *bytes_in;     /* counters the transport adds to (may be NULL) */
  uint64_t *bytes_out;
} p2p_tcp_ctx;

/* An unconnected TCP transport (the context is copied). 0, -ENOMEM or a uv error. */
int p2p_tcp_new(const p2p_tcp_ctx *ctx, p2p_transport **out) __attribute__((warn_unused_result));
/* An unconnected Unix-domain socket transport (the context is copied). 0, -ENOMEM or a uv error. */
int p2p_unix_new(const p2p_tcp_ctx *ctx, p2p_transport **out) __attribute__((warn_unused_result));
/* Starts connecting a unix transport to `path`; on_open(0 | -errno) follows (a refused or
 * missing socket is reported there). -ENAMETOOLONG when the path does not fit sun_path (then
 * on_open never comes: close the transport). remote_addr is /unix/<path>, local_addr "". */
int p2p_unix_connect(p2p_transport *t, const char *path) __attribute__((warn_unused_result));
/* Starts connecting; on_open(0 | -errno) follows. On an error return on_open never comes
 * (close the transport). */
int p2p_tcp_connect(p2p_transport *t, const struct sockaddr *sa) __attribute__((warn_unused_result));
/* Like p2p_tcp_connect, from `local` (same family): the socket is bound there with
 * SO_REUSEADDR and SO_REUSEPORT first, so it can share a listener's port (TCP hole punching). */
int p2p_tcp_connect_from(p2p_transport *t, const struct sockaddr *sa, const struct sockaddr *local)
    __attribute__((warn_unused_result));
/* Accepts the pending connection of `server` (from its connection callback): open at once,
 * remote_addr and local_addr filled in. A unix transport accepts from a uv_pipe_t server; its
 * dialer is unnamed, so remote_addr is the listener's /unix/ address too — the name the listener
 * was bound at, which may be a temporary one since renamed (the host overwrites both). On error
 * close the transport. */
int p2p_tcp_accept(p2p_transport *t, uv_stream_t *server) __attribute__((warn_unused_result));
/* Frees the pool's recycled buffers. */
void p2p_tcp_pool_free(p2p_tcp_pool *pool);

#endif
