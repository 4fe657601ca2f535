/* internal.h — structures shared by the host's modules (host.c: listeners, dials, the
 * connection manager and the public API; conn.c: one connection's upgrade, Yamux and stream
 * plumbing; services.c: identify, ping, perf). Private to src/p2p/host. Loop thread only. */
#ifndef PEERMCP_P2P_HOST_INTERNAL_H
#define PEERMCP_P2P_HOST_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "p2p/core/keys.h"
#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"
#include "p2p/host/host.h"
#include "p2p/host/peerstore.h"
#include "p2p/proto/mss.h"
#include "p2p/proto/noise.h"
#include "p2p/proto/yamux.h"
#include "util/buf.h"

#define HOST_MAX_LISTENERS 16
#define HOST_READ_CHUNK (256u * 1024u)
#define HOST_PLAIN_MAX (2u * 1024u * 1024u)  /* decrypted bytes per read awaiting Yamux */
#define HOST_WRITE_CHUNK (512u * 1024u)      /* plaintext per socket write */
#define HOST_WPOOL 8                         /* write buffers kept for reuse, per host */
#define HOST_MAX_PROTO 256
#define HOST_STREAM_RAW_SLACK (64u * 1024u)   /* send-queue room for multistream-select replies
                                                 above the app's cap (stream_send_max) */
#define HOST_TICK_MS 250
#define HOST_DRAIN_GRACE_MS 5000               /* streams get this long after our GoAway */
#define HOST_BACKOFF_SLOTS 256
#define HOST_BACKOFF_MAX_MS (5u * 60u * 1000u)

typedef struct p2p_conn p2p_conn;
typedef struct host_open_req host_open_req;

typedef enum {
  CONN_TCP_CONNECTING = 0,
  CONN_MSS_SECURITY, /* multistream-select for /noise on the raw socket */
  CONN_NOISE,        /* Noise XX handshake */
  CONN_MSS_MUXER,    /* multistream-select for /yamux/1.0.0 inside Noise */
  CONN_READY,        /* Yamux running */
  CONN_CLOSED        /* uv_close requested */
} conn_state;

typedef enum { STREAM_NEGOTIATING = 0, STREAM_OPEN, STREAM_DEAD } stream_state;

struct p2p_stream {
  p2p_conn *conn;
  yamux_stream *ys;
  stream_state state;
  bool inbound;
  mss *mss;
  char *protocol;
  p2p_stream_callbacks cbs;
  bool has_cbs;
  void *ud;
  buf sendq;             /* app bytes not yet taken by Yamux (bounded) */
  buf recvq;             /* bytes received but not delivered (paused / before callbacks) */
  bool paused;
  bool delivering;       /* inside stream_deliver (re-entrancy guard) */
  bool in_setup;         /* inside the handler / open callback */
  bool want_writable;
  bool fin_requested, fin_sent, remote_fin, eof_delivered;
  int refs;              /* the conn's list holds one; app callbacks hold one while running */
  int close_err;
  int64_t deadline_ms;   /* negotiation deadline (0 once open) */
  size_t max_sendq, max_recvq;
  p2p_open_fn open_cb;   /* outbound: called when negotiated or failed */
  void *open_ud;
  p2p_stream *prev, *next;
};

struct host_open_req {
  p2p_host *h;
  char *protocol;
  p2p_open_fn cb;
  void *ud;
  host_open_req *next;
};

struct p2p_conn {
  p2p_host *h;
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  bool outbound;
  conn_state state;
  bool counted_pending;   /* counted in h->pending_handshakes */
  mss *mss;
  noise_session *noise;
  yamux_session *ymx;
  bool has_expected;
  peerid expected;
  peerid remote;
  char remote_id[PEERID_STR_MAX];
  char remote_addr[MULTIADDR_STR_MAX];  /* /ip4/…/tcp/… of the other end */
  char dial_key[MULTIADDR_STR_MAX];     /* back-off key for outbound dials */
  buf plain;              /* decrypted bytes waiting for the current stage */
  size_t tx_pending;      /* bytes handed to uv_write and not completed */
  bool flushing, flush_again;
  bool draining;          /* GoAway sent or received: close when no streams remain */
  int64_t drain_deadline_ms; /* after our GoAway: close even if streams remain (0 = none) */
  bool identify_started;
  bool was_ready;         /* reached CONN_READY once */
  int64_t created_ms, deadline_ms, idle_since_ms;
  p2p_stream *streams;    /* doubly-linked list */
  size_t n_streams;
  host_open_req *waiters; /* opens queued until the connection is ready */
  int close_err;
  struct host_resolve *resolve; /* /dns* dial waiting for getaddrinfo (host.c) */
  char *alts[PEERSTORE_MAX_ADDRS]; /* dial by PeerId: addresses still to try if this one fails */
  size_t n_alts;
  p2p_conn *prev, *next;
};

typedef struct host_handler {
  char *protocol;
  p2p_stream_handler_fn fn;
  void *ud;
  struct host_handler *next;
} host_handler;

typedef struct host_listener {
  uv_tcp_t tcp;
  p2p_host *h;
  char addr[MULTIADDR_STR_MAX];
  bool closing;
} host_listener;

typedef struct host_backoff {
  char key[MULTIADDR_STR_MAX];
  int64_t until_ms;
  uint32_t step_ms;
} host_backoff;

struct p2p_host {
  uv_loop_t *loop;
  p2p_host_config cfg;
  char *state_dir;
  char *agent_version;
  keys_private key;
  keys_public pub;
  peerid id;
  char id_str[PEERID_STR_MAX];
  host_listener *listeners[HOST_MAX_LISTENERS];
  size_t n_listeners;
  const char *listen_addr_ptrs[HOST_MAX_LISTENERS];
  p2p_conn *conns;
  uint32_t n_conns, pending_handshakes;
  host_handler *handlers;
  peerstore *ps;
  host_backoff backoff[HOST_BACKOFF_SLOTS];
  uv_timer_t tick;
  bool closing;
  int open_handles;                 /* listeners + conns + timer still to be closed */
  void (*close_done)(p2p_host *, void *);
  void *close_ud;
  int64_t close_deadline_ms;
  p2p_identify_fn on_identify;
  void *on_identify_ud;
  p2p_host_stats stats;
  uint8_t *rbuf;                    /* HOST_READ_CHUNK bytes shared by every connection's reads:
                                       libuv calls alloc_cb and read_cb back to back and we
                                       consume the bytes before returning */
  void *wfree;                      /* recycled write requests (conn.c), at most HOST_WPOOL */
  int n_wfree;
  bool peers_dirty;
  int64_t peers_saved_ms;
  bool save_in_flight;
  /* scratch for p2p_host_peer_info */
  const char *info_protos[PEERSTORE_MAX_PROTOCOLS];
  const char *info_addrs[PEERSTORE_MAX_ADDRS];
};

/* ---- conn.c ---- */
/* Allocates a connection object (not yet in the host list). */
p2p_conn *conn_new(p2p_host *h, bool outbound);
/* Begins the upgrade on a connected socket (starts reading, sends the first mss bytes). */
int conn_start(p2p_conn *c);
/* Closes the socket; streams are reset and waiters failed from the close callback. */
void conn_close(p2p_conn *c, int err);
/* Sends GoAway and closes once the last stream is gone. */
void conn_drain(p2p_conn *c);
/* Opens an outbound stream on a ready connection; cb runs after negotiation. */
int conn_open_stream(p2p_conn *c, const char *protocol, p2p_open_fn cb, void *ud);
/* Periodic checks: handshake and negotiation deadlines, idle timeout. */
void conn_tick(p2p_conn *c, int64_t now_ms);
/* Frees the host's pool of recycled write buffers (at host free). */
void conn_free_wpool(p2p_host *h);
bool conn_is_usable(const p2p_conn *c);

/* ---- host.c (called by conn.c) ---- */
host_handler *host_find_handler(p2p_host *h, const char *protocol);
void host_conn_ready(p2p_conn *c);           /* upgrade finished: run waiters, identify */
void host_conn_closed(p2p_conn *c);          /* handle closed: unlink and free */
void host_conn_failed_dial(p2p_conn *c, int err); /* an outbound dial failed before ready */
void host_mark_peers_dirty(p2p_host *h);

/* ---- services.c ---- */
int services_register(p2p_host *h) __attribute__((warn_unused_result));
void services_on_conn_ready(p2p_conn *c);   /* starts identify on the new connection */
void services_push_identify(p2p_host *h);   /* identify-push to every connected peer */

#endif
