/* internal.h — structures shared by the host's modules. Private to src/p2p/host; loop thread
 * only.
 *   host.c       the host object, listeners, dials, the connection manager, the public API,
 *                deferred work (host_defer) and the reaper of closed streams
 *   conn.c       one connection over a p2p_transport: the upgrade, Yamux, flushing
 *   stream.c     one Yamux stream: the state machine below, multistream-select per stream,
 *                the send/receive queues, the public p2p_stream_* calls
 *   transport_tcp.c / transport_stream.c   the transports under a connection (transport.h)
 *   services.c   the service registry and the event bus; svc_identify.c, svc_ping.c,
 *                svc_perf.c the built-in services
 *
 * Stream life (p2p_stream.life), the only thing that decides whether a stream may be used:
 *
 *   NEGOTIATING --mss agreed--> HANDING --handler / open callback returned--> OPEN
 *        |                         |                                           |
 *        +-------------------------+---------------------------------------> CLOSED
 *     (mss failed, RST, timeout, connection lost, owner reset, both halves done)
 *
 *   NEGOTIATING  multistream-select runs (st->mss); nobody owns the stream yet. An outbound
 *                stream's open callback is pending.
 *   HANDING      agreed; the inbound handler or the outbound open callback is running. Data
 *                that arrives waits in recvq. When the callback returns without having set
 *                callbacks (an owner) the stream is reset.
 *   OPEN         the owner has it (callbacks set): data is delivered, writes accepted.
 *   CLOSED       over: unlinked from the connection, Yamux handle released, the owner told
 *                exactly once (on_close, or the open callback with an error if it never got
 *                the stream). Never leaves CLOSED. The memory stays valid until the host's
 *                reaper frees it on a later loop iteration, so code that ran a callback only
 *                has to check `life == STREAM_CLOSED` — there is no reference count.
 *
 * The two halves, meaningful while OPEN (tx and rx never move backwards):
 *   tx (our write side):  TX_OPEN --close_write--> TX_FIN_QUEUED --queue empty, FIN sent--> TX_FIN_SENT
 *   rx (the peer's side): RX_OPEN --Yamux FIN--> RX_FIN --queue delivered, on_eof--> RX_EOF_DELIVERED
 *   OPEN with TX_FIN_SENT and RX_EOF_DELIVERED becomes CLOSED(0) at once.
 * Invariants (asserted in stream.c): CLOSED ⇔ ys == NULL; NEGOTIATING ⇔ mss != NULL; OPEN ⇒
 * protocol and callbacks set; TX_FIN_SENT ⇒ sendq empty; RX_EOF_DELIVERED ⇒ recvq empty.
 *
 * Connection states (p2p_conn.state): CONNECTING (transport not open yet) → MSS_SECURITY →
 * NOISE → MSS_MUXER (skipped when Noise agreed the muxer) → READY → CLOSED (transport close
 * requested; the connection is freed from its on_closed). */
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
#include "p2p/host/transport.h"
#include "p2p/host/transport_tcp.h"
#include "p2p/proto/mss.h"
#include "p2p/proto/noise.h"
#include "p2p/proto/yamux.h"
#include "util/buf.h"
#include "util/check.h"

#define HOST_MAX_LISTENERS 16
#define HOST_UNIX_PATH_MAX 108 /* sizeof sun_path on Linux (checked in host.c) */
#define HOST_READ_CHUNK (256u * 1024u)
#define HOST_PLAIN_MAX (2u * 1024u * 1024u)  /* decrypted bytes per read awaiting Yamux */
#define HOST_WRITE_CHUNK (512u * 1024u)      /* plaintext per transport write */
#define HOST_MAX_PROTO 256
#define HOST_STREAM_RAW_SLACK (64u * 1024u)   /* send-queue room for multistream-select replies
                                                 above the app's cap (stream_send_max) */
#define HOST_TICK_MS 250
#define HOST_DRAIN_GRACE_MS 5000               /* streams get this long after our GoAway */
#define HOST_BACKOFF_SLOTS 256
#define HOST_EVICT_MIN_AGE_MS 500              /* a handshake that is moving is not evicted younger */
#define HOST_EVICT_SILENT_AGE_MS 100           /* nor a silent one younger (its bytes may be on the way) */
#define HOST_BACKOFF_MAX_MS (5u * 60u * 1000u)

typedef struct p2p_conn p2p_conn;

/* A PeerId the service said is authorized (p2p_host_remember_authorized). */
#define HOST_SRC_KEY_LEN 16 /* BLAKE2b-128 of a source address: any length, a fixed-size entry */
typedef struct host_known {
  char peer_id[PEERID_STR_MAX];
  uint8_t src[HOST_SRC_KEY_LEN]; /* the source of its inbound connection then (p2p_conn.ip: an IP,
                                    or a unix listener's /unix/ address of up to ~330 characters),
                                    hashed */
  bool has_src;     /* false: none known */
  int64_t last_ms;  /* clock_mono_ms of the last p2p_host_remember_authorized */
} host_known;
typedef struct host_open_req host_open_req;

/* ---- deferred work: run from the host's idle handle on a later loop iteration ---- */
typedef struct host_task host_task;
struct host_task {
  void (*fn)(host_task *t);
  host_task *next;
  uint64_t round; /* the idle round it was queued in */
  bool queued;
};
/* Queues t (once: a queued task is not queued again). The owner keeps t alive until it ran or
 * host_cancel removed it. */
void host_defer(p2p_host *h, host_task *t);
void host_cancel(p2p_host *h, host_task *t);

/* ---- streams (stream.c) ---- */

typedef enum { STREAM_NEGOTIATING = 0, STREAM_HANDING, STREAM_OPEN, STREAM_CLOSED } stream_life;
typedef enum { TX_OPEN = 0, TX_FIN_QUEUED, TX_FIN_SENT } stream_tx;
typedef enum { RX_OPEN = 0, RX_FIN, RX_EOF_DELIVERED } stream_rx;

struct p2p_stream {
  p2p_conn *conn;        /* valid while not CLOSED (the connection may be gone afterwards) */
  yamux_stream *ys;      /* NULL once CLOSED */
  stream_life life;
  stream_tx tx;
  stream_rx rx;
  bool inbound;
  bool paused;           /* the owner paused reading */
  bool want_writable;    /* on_writable owed (write returned 1 or -ENOBUFS) */
  bool delivering;       /* inside stream_deliver: re-entrancy guard */
  size_t in_data;        /* inside on_data: the length of that delivery (0 outside) */
  size_t unread;         /* p2p_stream_unread during that on_data: its last bytes not taken */
  mss *mss;              /* NEGOTIATING only */
  char *protocol;        /* from HANDING on */
  p2p_stream_callbacks cbs;
  bool has_cbs;          /* the owner set callbacks (required to reach OPEN) */
  void *ud;
  buf sendq;             /* app bytes not yet taken by Yamux (bounded) */
  buf recvq;             /* bytes received but not delivered (paused / before OPEN) */
  int64_t deadline_ms;   /* negotiation deadline (0 once HANDING) */
  size_t max_sendq, max_recvq;
  p2p_open_fn open_cb;   /* outbound, NEGOTIATING: called when negotiated or failed */
  void *open_ud;
  host_task writable_task; /* on_writable owed after -ENOBUFS with nothing queued to pump */
  uint64_t conn_id;      /* kept for p2p_stream_conn_id after CLOSED */
  p2p_stream *prev, *next; /* in conn->streams while not CLOSED; in h->dead after */
};

/* A new stream on c for Yamux handle ys (NEGOTIATING, linked); NULL on ENOMEM. */
p2p_stream *stream_new(p2p_conn *c, yamux_stream *ys, bool inbound);
/* Inbound: Yamux opened ys; starts the listener side of multistream-select. 0 or -errno
 * (refused: nothing remains of the stream). */
int stream_accept(p2p_conn *c, yamux_stream *ys);
/* Outbound on a ready connection: opens a Yamux stream and proposes `protocol`. */
int stream_open(p2p_conn *c, const char *protocol, p2p_open_fn cb, void *ud);
/* Ends a stream that is not CLOSED: releases Yamux (RST if our side is open), tells the owner. */
void stream_finalize(p2p_stream *st, int err);
/* The connection's periodic check: negotiation deadline. */
void stream_tick(p2p_stream *st, int64_t now_ms);
/* Frees a CLOSED stream (the reaper). */
void stream_free(p2p_stream *st);
/* Yamux callbacks for the connection's session. */
int stream_on_yamux_open(yamux_session *s, yamux_stream *ys, void *ud);
void stream_on_yamux_data(yamux_session *s, yamux_stream *ys, const uint8_t *data, size_t len, void *ud);
void stream_on_yamux_fin(yamux_session *s, yamux_stream *ys, void *ud);
void stream_on_yamux_reset(yamux_session *s, yamux_stream *ys, void *ud);
void stream_on_yamux_writable(yamux_session *s, yamux_stream *ys, void *ud);

/* ---- connections (conn.c) ---- */

typedef enum {
  CONN_CONNECTING = 0, /* the transport is not open yet (TCP connect, DNS) */
  CONN_MSS_SECURITY,   /* multistream-select for /noise on the raw transport */
  CONN_NOISE,          /* Noise XX handshake */
  CONN_MSS_MUXER,      /* multistream-select for /yamux/1.0.0 inside Noise */
  CONN_READY,          /* Yamux running */
  CONN_CLOSED          /* transport close requested */
} conn_state;

struct host_open_req {
  p2p_host *h;
  char *protocol;
  p2p_open_fn cb;
  void *ud;
  host_open_req *next;
};

struct p2p_conn {
  p2p_host *h;
  uint64_t id;            /* unique per host, never 0 */
  p2p_transport *t;       /* NULL once closed (freed after on_closed) */
  bool outbound;          /* we dialed (direction, for reports and dial statistics) */
  bool initiator;         /* our role in the upgrade: multistream-select dialer, Noise
                             initiator, Yamux client (= outbound, except DCUtR's responder dial) */
  bool dialed;            /* made by host_dial (TCP or circuit): dial statistics, back-off */
  bool keepalive;         /* exempt from the idle timeout (p2p_host_set_keepalive) */
  bool relayed;           /* runs over a stream of another connection */
  conn_state state;
  bool counted_pending;   /* counted in h->pending_handshakes */
  bool got_bytes;         /* the transport delivered at least one byte */
  bool privileged;        /* inbound, upgraded: the peer gate admitted it (reserved slots) */
  bool reserve;           /* inbound, admitted beyond the pending limits (a remembered IP):
                             not counted in them; must prove a known PeerId in Noise msg 3 */
  bool known;             /* inbound: Noise proved a remembered or gate-admitted PeerId; never
                             evicted for another handshake */
  char ip[MULTIADDR_STR_MAX]; /* inbound TCP: the remote address without /tcp/PORT; inbound
                                 unix: the listener's /unix/ address (one source); "" otherwise */
  mss *mss;
  noise_session *noise;
  yamux_session *ymx;
  bool has_expected;
  peerid expected;
  peerid remote;
  char remote_id[PEERID_STR_MAX];
  char remote_addr[MULTIADDR_STR_MAX];  /* the other end: dialed address, or the transport's */
  char dial_key[MULTIADDR_STR_MAX];     /* back-off key for outbound dials */
  buf plain;              /* decrypted bytes waiting for the current stage */
  bool flushing, flush_again;
  bool flush_queued;      /* in h->flush_head's list: conn_flush_soon asked for a flush */
  p2p_conn *flush_next;   /* … the next one in that list */
  int in_read;            /* inside the transport's on_read: conn_flush waits for its end, so
                             everything the read's frames caused (replies, window updates, on
                             every stream) leaves as one Noise frame and one write — unless
                             it passes early_mark first (conn_wrote) */
  size_t early_mark;      /* Yamux output at which conn_wrote sends at once, even inside a read:
                             cfg.write_early_bytes, doubled by each such send, back to it when
                             a read's or iteration's flush (conn_flush) ends the batch */
  bool draining;          /* GoAway sent or received: close when no streams remain */
  int64_t drain_deadline_ms; /* after our GoAway: close even if streams remain (0 = none) */
  bool was_ready;         /* reached CONN_READY once */
  int64_t created_ms, deadline_ms, idle_since_ms;
  p2p_stream *streams;    /* doubly-linked list of streams not CLOSED */
  size_t n_streams;
  host_open_req *waiters; /* opens queued until the connection is ready */
  int close_err;
  struct host_resolve *resolve; /* /dns* dial waiting for getaddrinfo (host.c) */
  char *alts[PEERSTORE_MAX_ADDRS]; /* dial by PeerId: addresses still to try if this one fails */
  size_t n_alts;
  p2p_upgrade_fn upgrade_cb; /* p2p_host_upgrade_stream / p2p_host_connect: told once,
                                ready or failed */
  void *upgrade_ud;
  p2p_conn *prev, *next;
};

/* A connection on transport t (bound here; t may be NULL and attached later; not yet in the
 * host list). NULL on ENOMEM. */
p2p_conn *conn_new(p2p_host *h, p2p_transport *t, bool outbound);
void conn_attach(p2p_conn *c, p2p_transport *t);
/* Frees a connection that never got a transport nor joined the host list. */
void conn_free_unused(p2p_conn *c);
/* Begins the upgrade on an open transport (reads, sends the first mss bytes). */
int conn_start(p2p_conn *c);
/* Closes the transport; streams are reset and waiters failed once it has closed. */
void conn_close(p2p_conn *c, int err);
/* Sends GoAway and closes once the last stream is gone. */
void conn_drain(p2p_conn *c);
/* Periodic checks: handshake and negotiation deadlines, idle timeout. */
void conn_tick(p2p_conn *c, int64_t now_ms);
bool conn_is_usable(const p2p_conn *c);
/* Moves Yamux output to the transport (bounded by the transport's backpressure). */
void conn_flush(p2p_conn *c);
/* The same, once per loop iteration: c joins the host's list of connections to flush, which
 * the host's prepare handle (flush_prep) flushes just before the loop polls, and those queued
 * meanwhile too (a relayed connection's flush writes to a stream of another one). So what
 * the application writes on any number of streams outside a read — answers that come back from
 * a worker pool together, a burst of requests — leaves as one Noise frame and one write, never
 * one per p2p_stream_write. Inside a read nothing is queued: c_on_read flushes at its end. */
void conn_flush_soon(p2p_conn *c);
/* After an application write (stream.c): sends at once when the output reached c->early_mark
 * (the write policy, p2p_host_config.write_early_bytes), else conn_flush_soon. */
void conn_wrote(p2p_conn *c);
/* Takes c out of that list (it is being freed). */
void conn_flush_forget(p2p_conn *c);
/* Closes a ready, draining connection once nothing is left in flight. */
void conn_check_drain(p2p_conn *c);
/* A stream left c (stream.c): idle time starts when the last one goes. */
void conn_stream_gone(p2p_conn *c);

/* ---- host.c ---- */

typedef struct host_handler {
  char *protocol;
  p2p_stream_handler_fn fn;
  void *ud;
  struct host_handler *next;
} host_handler;

/* A TCP listener, or a Unix-domain socket listener (same-host peers, /unix/<path>): those are
 * kept apart (unix_listeners) so nothing that advertises our addresses (identify, kad, mdns,
 * rendezvous, autonat, the announced addresses) ever sees one — a path means nothing elsewhere. */
typedef struct host_listener {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u;
  p2p_host *h;
  bool is_unix;
  dev_t dev;      /* unix: the socket file we bound, unlinked on close only while it is still ours */
  ino_t ino;
  char path[HOST_UNIX_PATH_MAX];
  char addr[MULTIADDR_STR_MAX];
} host_listener;

typedef struct host_backoff {
  char key[MULTIADDR_STR_MAX];
  int64_t until_ms;
  uint32_t step_ms;
} host_backoff;

typedef struct host_sub {
  p2p_event_fn fn;
  void *ud;
  unsigned mask;
  bool removed;
} host_sub;

typedef struct host_service {
  const p2p_service *svc;
  void *state;
  bool started;
} host_service;

struct p2p_host {
  uv_loop_t *loop;
  p2p_host_config cfg;
  char *state_dir;
  char *agent_version;
  keys_private key;
  keys_public pub;
  peerid id;
  char id_str[PEERID_STR_MAX];
  host_listener *listeners[HOST_MAX_LISTENERS];   /* TCP: advertised */
  size_t n_listeners;
  host_listener *unix_listeners[HOST_MAX_LISTENERS]; /* /unix/: this host only, never advertised */
  size_t n_unix;
  p2p_conn *conns;
  uint32_t n_conns, pending_handshakes;
  uint64_t next_conn_id;
  host_handler *handlers;
  peerstore *ps;
  host_backoff backoff[HOST_BACKOFF_SLOTS];
  uv_timer_t tick;
  uv_idle_t idle;                   /* runs deferred tasks and the reaper when there are some */
  uv_prepare_t flush_prep;          /* active while connections wait in flush_head */
  p2p_conn *flush_head, *flush_tail; /* conn_flush_soon's list (flush_next links) */
  host_task *tasks, *tasks_tail;
  uint64_t task_round;
  p2p_stream *dead;                 /* CLOSED streams waiting for the reaper */
  bool closing;
  int open_handles;                 /* listeners + holds still to be released */
  int final_closes;                 /* tick, idle and flush_prep: closing last, the last frees
                                       the host */
  void (*close_done)(p2p_host *, void *);
  void *close_ud;
  int64_t close_deadline_ms;
  host_sub subs[P2P_HOST_MAX_SUBSCRIBERS];
  size_t n_subs;
  int emitting;                     /* depth of event deliveries in progress */
  host_service services[P2P_HOST_MAX_SERVICES];
  size_t n_services;
  p2p_host_stats stats;
  p2p_dial_mismatch last_mismatch; /* p2p_host_last_mismatch; addr[0] == 0: none yet */
  p2p_peer_gate_fn gate;            /* who may use reserved connection slots (NULL: nobody) */
  host_known *known;                /* cfg.authorized_memory entries (allocated on first use) */
  uint32_t n_known;
  void *gate_ud;
  uint8_t *rbuf;                    /* HOST_READ_CHUNK bytes shared by every TCP transport */
  p2p_tcp_pool wpool;               /* recycled TCP write buffers */
  bool peers_dirty;
  int64_t peers_saved_ms;
  bool save_in_flight;
  p2p_circuit_dialer circuit;       /* how /p2p-circuit targets are reached (relay client) */
  void *circuit_ud;
  char *extra_addrs[P2P_HOST_MAX_EXTRA_ADDRS]; /* announced besides the listen addresses */
  size_t n_extra;
  p2p_reachability reach;
  uint64_t record_seq;              /* seq of the last signed peer record we made */
  char **announced;                 /* scratch of p2p_host_announced_addrs */
  size_t n_announced;
  /* scratch for p2p_host_peer_info */
  const char *info_protos[PEERSTORE_MAX_PROTOCOLS];
  const char *info_addrs[PEERSTORE_MAX_ADDRS];
};

host_handler *host_find_handler(p2p_host *h, const char *protocol);
/* Upgrade finished: admission (reserved slots), waiters, events. Returns false when the
 * connection was refused (it is closing; do not use it). */
bool host_conn_ready(p2p_conn *c);
void host_conn_closed(p2p_conn *c);          /* transport closed: unlink and free */
/* Inbound: Noise proved the initiator's PeerId (message 3). Marks a remembered or
 * gate-admitted peer known; -EACCES for a reserved handshake that proved neither. */
int host_conn_identified(p2p_conn *c);
void host_mark_peers_dirty(p2p_host *h);
p2p_conn *host_conn_by_id(p2p_host *h, uint64_t id);
/* A TCP transport context for this host (read buffer, pool, counters, write limit). */
void host_tcp_ctx(p2p_host *h, p2p_tcp_ctx *ctx);
/* Hands a CLOSED stream to the reaper. */
void host_bury_stream(p2p_host *h, p2p_stream *st);

/* Our listen addresses as multiaddrs with wildcards expanded to the interfaces' addresses,
 * then the extra announced ones (svc_identify, p2p_host_announced_addrs). */
size_t host_own_addrs(p2p_host *h, multiaddr *out, size_t max);

/* ---- services.c: the registry and the event bus ---- */
void services_emit(p2p_host *h, const p2p_event *ev);
/* Stops every started service, newest first (p2p_host_close). */
void services_stop_all(p2p_host *h);
/* The built-in services (svc_identify.c, svc_ping.c, svc_perf.c). */
int svc_identify_add(p2p_host *h) __attribute__((warn_unused_result));
int svc_ping_add(p2p_host *h) __attribute__((warn_unused_result));
int svc_perf_add(p2p_host *h) __attribute__((warn_unused_result));

/* Metrics of every host in the process (host.c; util/metrics.h): distinct peers with a ready
 * connection, open streams, TCP payload bytes by direction (0 = in, 1 = out). */
#include "util/metrics.h"
extern metrics_family p2p_host_peers_metric, p2p_host_streams_metric, p2p_host_bytes_metric;

#endif
