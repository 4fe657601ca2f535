/* transport.h — the byte pipe under a libp2p connection (the model: curl's connection
 * filters). A connection (conn.c: multistream-select → Noise → Yamux) never touches a socket;
 * it reads and writes bytes through a p2p_transport, so the same upgrade runs over
 *   - TCP (transport_tcp.c): a libuv TCP handle, dialed or accepted;
 *   - a Unix-domain socket (transport_tcp.c too, over a uv_pipe_t): same-host peers, /unix/<path>;
 *   - a stream of another connection (transport_stream.c): what circuit relay v2 needs (the
 *     relayed connection's Noise and Yamux run inside a Yamux stream to the relay).
 *
 * Contract between a transport and the connection above it (everything on the loop thread):
 *   - Life cycle: the creator binds the connection's events (p2p_transport_bind) before the
 *     first loop iteration. A transport that is still connecting reports on_open(0 | -errno)
 *     once; an accepted TCP socket or a stream is open at once (no on_open). The owner ends
 *     it with close(); on_closed follows from a later loop iteration — never from inside
 *     close() — and is the last event: the transport frees itself right after it returns.
 *     close() is called exactly once; no other operation after it.
 *   - Reading: after read_start(), on_read() hands over bytes in order (valid during the
 *     call only); on_end(err) says no more will come: 0 for a clean end of input (TCP EOF,
 *     the stream's FIN), a negative errno for a failure (reset, a write that failed). The
 *     owner still calls close() after on_end.
 *   - Writing, without copies on the TCP path: write_buf(need) lends a buffer for up to `need`
 *     bytes (the caller fills it with buf_* calls, e.g. noise_encrypt straight into it), then
 *     write() takes it back and sends its bytes after everything written before, or
 *     write_cancel() returns it unused. One lent buffer at a time. write() returns 0 or a
 *     negative errno (the connection is unusable: close it).
 *   - Backpressure: queued() is the number of bytes written and not yet gone from this
 *     transport; writable() turns false while the transport wants no more (the connection
 *     stops pulling from Yamux) and on_drain() says when writing may resume.
 *   - From inside any callback the owner may call any operation, close() included. */
#ifndef PEERMCP_P2P_HOST_TRANSPORT_H
#define PEERMCP_P2P_HOST_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"
#include "util/buf.h"

typedef struct p2p_transport p2p_transport;

/* What a transport reports to the connection above it; `ud` is the bound user data. */
typedef struct p2p_transport_events {
  void (*on_open)(void *ud, int status);                      /* connecting transports only */
  void (*on_read)(void *ud, const uint8_t *data, size_t len);
  void (*on_end)(void *ud, int err);                          /* 0 = clean end of input */
  void (*on_drain)(void *ud);                                 /* writable again / bytes left */
  void (*on_closed)(void *ud);                                /* last event */
} p2p_transport_events;

typedef struct p2p_transport_ops {
  const char *name; /* "tcp", "unix", "stream" */
  int (*read_start)(p2p_transport *t);
  void (*read_stop)(p2p_transport *t);
  buf *(*write_buf)(p2p_transport *t, size_t need);
  int (*write)(p2p_transport *t, buf *b);
  void (*write_cancel)(p2p_transport *t, buf *b);
  size_t (*queued)(const p2p_transport *t);
  bool (*writable)(const p2p_transport *t);
  void (*close)(p2p_transport *t, int err);
} p2p_transport_ops;

/* The part every implementation starts with (implementations embed it first). */
struct p2p_transport {
  const p2p_transport_ops *ops;
  p2p_transport_events ev;
  void *ud;
  bool relayed;                /* bytes go through a relay (a stream of another connection) */
  bool closing;                /* close() was called */
  char local_addr[MULTIADDR_STR_MAX];  /* multiaddr text, "" when unknown */
  char remote_addr[MULTIADDR_STR_MAX]; /* multiaddr text of the other end (dialed or seen) */
};

static inline void p2p_transport_bind(p2p_transport *t, const p2p_transport_events *ev, void *ud) {
  t->ev = *ev;
  t->ud = ud;
}
static inline int p2p_transport_read_start(p2p_transport *t) { return t->ops->read_start(t); }
static inline void p2p_transport_read_stop(p2p_transport *t) { t->ops->read_stop(t); }
static inline buf *p2p_transport_write_buf(p2p_transport *t, size_t need) { return t->ops->write_buf(t, need); }
static inline int p2p_transport_write(p2p_transport *t, buf *b) { return t->ops->write(t, b); }
static inline void p2p_transport_write_cancel(p2p_transport *t, buf *b) { t->ops->write_cancel(t, b); }
static inline size_t p2p_transport_queued(const p2p_transport *t) { return t->ops->queued(t); }
static inline bool p2p_transport_writable(const p2p_transport *t) { return t->ops->writable(t); }
static inline void p2p_transport_close(p2p_transport *t, int err) {
  t->closing = true;
  t->ops->close(t, err);
}
static inline const char *p2p_transport_name(const p2p_transport *t) { return t->ops->name; }

#endif
