/* host.h — the libp2p host: TCP listeners and dials on one libuv loop, the connection upgrade
 * (multistream-select → Noise → multistream-select → Yamux) over a transport (TCP, or a stream
 * of another connection for circuit relay), protocol handlers for inbound streams, outbound
 * streams, a connection manager (limits, timeouts, dial back-off), the peerstore, protocol
 * services registered through one interface (identify / identify-push, ping, perf built in),
 * and event subscriptions (connections, identify, addresses) for any number of listeners.
 *
 * Threads: everything here runs on the loop thread that created the host. No function may be
 * called from another thread (hand work back with uv_async_send first); debug builds check it
 * (LOOP_THREAD_ONLY, util/check.h).
 *
 * Ownership:
 *   - p2p_host_new() allocates the host; p2p_host_close() starts an orderly shutdown (GoAway to
 *     every peer, listeners closed) and calls `done` when every handle is closed; the host is
 *     freed after `done` returns. Never free it otherwise.
 *   - Streams and connections are owned by the host. A p2p_stream pointer stays valid from the
 *     moment it is handed to you (handler call or open callback) until its on_close callback
 *     returns; on_close is always the last callback and is always called exactly once.
 *   - Bytes passed to p2p_stream_write() are copied; bytes given to on_data are only valid
 *     during the call.
 *
 * Backpressure (a slow peer never stalls others, a fast one never makes us buffer without bound):
 *   - Writes: p2p_stream_write() queues into the stream's bounded send queue. It returns 1 once
 *     the queue is at or above its high-water mark: stop writing and wait for on_writable.
 *     Past the hard cap it refuses with -ENOBUFS and queues nothing. The queue drains only as
 *     fast as the remote's Yamux window and the socket allow.
 *   - Reads: p2p_stream_pause_read(s, true) stops on_data; received bytes wait in the stream
 *     (bounded by our Yamux receive window) and no window update is sent, so the remote stops.
 *
 * Errors are negative errno values. A function that takes a callback and returns an error never
 * calls that callback. */
#ifndef PEERMCP_P2P_HOST_HOST_H
#define PEERMCP_P2P_HOST_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "p2p/proto/noise.h"

typedef struct p2p_host p2p_host;
typedef struct p2p_stream p2p_stream;

/* Limits and timeouts; zero fields take the defaults shown. */
/* p2p_host_config.write_early_bytes: the mark measured in bench/RESULTS.md ("P2P call path",
 * 2026-12-07 13:00 UTC); off by default (it did not pay reliably on a shared 2-core machine). */
#define P2P_WRITE_EARLY_BYTES ((size_t)2048)

typedef struct p2p_host_config {
  const char *state_dir;          /* identity.key and the `peers` snapshot live here (required) */
  const char *agent_version;      /* identify agentVersion; default "peermcp/<version>" */
  uint32_t max_connections;       /* 256: established + handshaking; more are refused */
  uint32_t max_streams_per_conn;  /* 256: open Yamux streams per connection (both directions) */
  uint32_t max_pending_handshakes;/* 64: inbound connections still upgrading (our own dials
                                     have their own 64) */
  uint32_t max_pending_per_ip;    /* 32: inbound connections still upgrading from one IP */
  uint32_t max_conns_per_ip;      /* 64: inbound connections (any state) from one IP */
  uint32_t reserved_conns;        /* 0 = none: of max_connections, kept for peers the gate
                                     admits (p2p_host_set_peer_gate; none without a gate);
                                     clamped to max_connections / 8 when it is not below
                                     max_connections (the node passes p2p.reserved_connections,
                                     default 32) */
  uint32_t reserved_handshakes;   /* 16: inbound handshakes allowed beyond the pending limits
                                     (max_pending_handshakes, max_pending_per_ip), only from an IP
                                     a remembered peer used (p2p_host_remember_authorized); such a
                                     handshake must prove a remembered or gate-admitted PeerId in
                                     Noise's third message, or it closes */
  uint32_t authorized_memory;     /* 256: PeerIds remembered as authorized (the least recently
                                     authorized is forgotten first) */
  uint32_t authorized_memory_s;   /* 3600: … remembered this long after their last authorization */
  uint32_t first_byte_timeout_ms; /* 2500: an inbound connection that sent nothing by then closes */
  uint32_t handshake_timeout_ms;  /* 10000: TCP connect + whole upgrade */
  uint32_t idle_timeout_ms;       /* 120000: a connection with no streams for this long closes */
  uint32_t stream_negotiate_timeout_ms; /* 10000: multistream-select on a new stream */
  uint32_t dial_backoff_ms;       /* 1000: first back-off after a failed dial; doubles to 5 min */
  size_t stream_send_hwm;         /* 256 KiB: write() returns 1 at or above this queue size */
  size_t stream_send_max;         /* 4 MiB: write() refuses past this (-ENOBUFS) */
  size_t conn_write_queue_max;    /* 1 MiB: encrypted bytes queued to one socket */
  size_t write_early_bytes;       /* 0 = off: a connection's output leaves once per read or loop
                                     iteration, at its end (one Noise frame). Else (e.g.
                                     P2P_WRITE_EARLY_BYTES) it is encrypted and sent as soon as it
                                     reaches this many bytes, even inside a read, so the peer
                                     starts on the first answers while this side makes the rest;
                                     each early send of one read or iteration doubles the mark (a
                                     read making much output leaves in O(log n) frames) */
  uint32_t yamux_window;          /* 0 = Yamux default (256 KiB, auto-tuned up to 16 MiB):
                                     initial receive window per stream; also the most a
                                     paused stream buffers until the window grows */
  bool enable_perf;               /* serve /perf/1.0.0 (off by default: perf spec §Security) */
  noise_aead noise_aead;          /* Noise transport AEAD backend: NOISE_AEAD_OPENSSL (0, the
                                     default) or NOISE_AEAD_LIBSODIUM; same bytes on the wire */
  bool no_peerstore_file;         /* do not load/save <state_dir>/peers */
  bool reuseport;                 /* listeners set SO_REUSEPORT, so dials can leave from the
                                     listen port (p2p_connect_opts.from_listen_port: TCP hole
                                     punching); another process of the same user could then
                                     bind the port too */
} p2p_host_config;

/* ---- host life cycle ---- */

/* Loads or creates <state_dir>/identity.key and makes a host on `loop`. Starts nothing. */
int p2p_host_new(uv_loop_t *loop, const p2p_host_config *cfg, p2p_host **out)
    __attribute__((warn_unused_result));

/* Listens on a TCP multiaddr (/ip4/A/tcp/P or /ip6/A/tcp/P; port 0 picks one), or on a Unix-domain
 * socket for peers on this host (/unix/<percent-encoded path>, e.g. /unix/%2Frun%2Fpeermcp%2Fp2p.sock;
 * the older /unix/run/peermcp/p2p.sock is read too). A unix listener runs the same upgrade
 * (multistream-select, Noise, Yamux) and the same authorization (PeerId + trust list); its socket
 * file appears at the path already 0600 and listening (bound at a temporary name beside it and
 * moved into place: unix_listen.h; the umask is left alone), a stale socket nobody listens on is
 * replaced, any other existing file is refused (-EEXIST; -EADDRINUSE when someone listens), a path
 * of 108 bytes or more, or whose directory part is longer than 94 bytes, is -ENAMETOOLONG, and the
 * file is removed when the host closes if the path still names it. Inbound unix connections
 * pass the same limits as TCP, the listener counting as one source address. Unix addresses are
 * never advertised (identify, kad, mdns, rendezvous, autonat): see p2p_host_unix_addrs. */
int p2p_host_listen(p2p_host *h, const char *multiaddr) __attribute__((warn_unused_result));

/* Our PeerId as text (base58btc, 12D3KooW…). Valid for the host's life. */
const char *p2p_host_peer_id(const p2p_host *h);

/* The actual TCP listen addresses (real ports), without /p2p/. Returns how many; fills up to `max`
 * pointers that stay valid until the next p2p_host_listen or close. */
size_t p2p_host_listen_addrs(const p2p_host *h, const char **out, size_t max);
/* The unix listen addresses (/unix/…, this host only: not among the listen addresses above nor
 * anything advertised). Same contract as p2p_host_listen_addrs. */
size_t p2p_host_unix_addrs(const p2p_host *h, const char **out, size_t max);

/* The i-th listen address as others should dial it, with /p2p/<id> (0.0.0.0 / :: replaced by
 * the first non-internal interface address of that family, else loopback). 0, -ENOENT, -ENOSPC. */
int p2p_host_announce_addr(const p2p_host *h, size_t i, char *out, size_t cap)
    __attribute__((warn_unused_result));

/* Writes {"peer_id":…, "multiaddr":…, "multiaddrs":[…]} atomically (temp file, fsync, rename)
 * to `path`. multiaddr is the first listen address + /p2p/<id> (0.0.0.0 / :: replaced as in
 * p2p_host_announce_addr); multiaddrs every listen address, then the added ones
 * (p2p_host_add_addr: relay circuits, confirmed external addresses), then the unix listen
 * addresses (a local file for local clients: multiaddr is a unix one only when there is no TCP
 * listener), each with /p2p/<id>. */
int p2p_host_write_announce(const p2p_host *h, const char *path) __attribute__((warn_unused_result));

/* Orderly shutdown: stop accepting, GoAway + close every connection, save the peerstore,
 * close all handles; then `done(h, ud)` runs on the loop and the host is freed afterwards. */
void p2p_host_close(p2p_host *h, void (*done)(p2p_host *h, void *ud), void *ud);

/* ---- protocol handlers (inbound streams) ---- */

/* Called when a remote opened a stream and multistream-select agreed on `protocol`. The
 * handler must set callbacks with p2p_stream_set_callbacks (or reset the stream) before it
 * returns; data that arrives before that waits in the stream. */
typedef void (*p2p_stream_handler_fn)(p2p_stream *s, void *ud);

/* Registers (or replaces) the handler for a protocol id (≤ 255 bytes, printable ASCII). */
int p2p_host_handle(p2p_host *h, const char *protocol, p2p_stream_handler_fn fn, void *ud)
    __attribute__((warn_unused_result));
int p2p_host_unhandle(p2p_host *h, const char *protocol);

/* ---- outbound streams ---- */

/* Result of p2p_host_open_stream: s is NULL and err < 0 on failure (dial error, wrong PeerId,
 * protocol refused with `na` → -EPROTONOSUPPORT, back-off → -EAGAIN, limits → -EMFILE, timeout
 * → -ETIMEDOUT). On success, set callbacks on s before returning. */
typedef void (*p2p_open_fn)(p2p_stream *s, int err, void *ud);

/* Opens a stream speaking `protocol` to `target`: a multiaddr /ip4|ip6/…/tcp/…[/p2p/ID]
 * (with /p2p/, the Noise handshake must prove that PeerId or the dial fails), or a bare PeerId
 * whose addresses are in the peerstore. Reuses an established connection to that peer. */
int p2p_host_open_stream(p2p_host *h, const char *target, const char *protocol, p2p_open_fn cb,
                         void *ud) __attribute__((warn_unused_result));

/* The last dial (since the host started) whose peer proved another PeerId than the one it was
 * dialed for (the dial failed with -EACCES): for error messages that name both. 0, -ENOENT. */
typedef struct p2p_dial_mismatch {
  char addr[1024];    /* the address dialed, without /p2p/ */
  char expected[128]; /* the PeerId the dial asked for */
  char proved[128];   /* the PeerId the Noise handshake proved ("" when none) */
} p2p_dial_mismatch;
int p2p_host_last_mismatch(const p2p_host *h, p2p_dial_mismatch *out) __attribute__((warn_unused_result));

/* ---- streams ---- */

typedef struct p2p_stream_callbacks {
  /* Bytes from the remote, in order. Not called while reading is paused. */
  void (*on_data)(p2p_stream *s, const uint8_t *data, size_t len, void *ud);
  /* The remote closed its write side (Yamux FIN); no more on_data. */
  void (*on_eof)(p2p_stream *s, void *ud);
  /* The send queue fell below the high-water mark after write() returned 1 or -ENOBUFS. */
  void (*on_writable)(p2p_stream *s, void *ud);
  /* The stream is gone: err 0 after both sides closed cleanly, else -ECONNRESET (reset),
   * -ECONNABORTED (connection lost), -ETIMEDOUT. Last callback; s is freed after it returns. */
  void (*on_close)(p2p_stream *s, int err, void *ud);
} p2p_stream_callbacks;

void p2p_stream_set_callbacks(p2p_stream *s, const p2p_stream_callbacks *cbs, void *ud);

/* Queues bytes, all or nothing. Returns 0 (keep writing), 1 (at/above high-water: wait for
 * on_writable), -ENOBUFS (over the hard cap, or out of memory: nothing queued; on_writable
 * follows once the queue is below the high-water mark), -EPIPE (write side closed or stream
 * gone). */
int p2p_stream_write(p2p_stream *s, const void *data, size_t len) __attribute__((warn_unused_result));

/* Bytes queued and not yet handed to Yamux. */
size_t p2p_stream_send_queued(const p2p_stream *s);

/* Closes our write side (FIN) once the queue has been sent. Reading continues. */
void p2p_stream_close_write(p2p_stream *s);

/* Aborts both directions (Yamux RST). on_close follows with -ECONNRESET. */
void p2p_stream_reset(p2p_stream *s);

/* Stops / resumes on_data and the window updates that let the remote send more. */
void p2p_stream_pause_read(p2p_stream *s, bool paused);
/* Only from inside on_data: the last `len` bytes of this delivery are not taken. They stay in
 * the stream (not credited to the remote's Yamux window, so it stops sending), reading is
 * paused, and they come first in on_data after p2p_stream_pause_read(s, false). For owners
 * that stop parsing in the middle of a delivery (a budget is used up). */
void p2p_stream_unread(p2p_stream *s, size_t len);

const char *p2p_stream_protocol(const p2p_stream *s);
/* The authenticated remote PeerId (text), proven by the Noise handshake. */
const char *p2p_stream_remote_peer(const p2p_stream *s);
/* The remote address as a multiaddr: /ip4|ip6/…/tcp/… for TCP; for a relayed connection what
 * p2p_host_upgrade_stream was given (e.g. /p2p/<relay>/p2p-circuit), else "". */
const char *p2p_stream_remote_addr(const p2p_stream *s);
/* Our end of the stream's connection as a multiaddr: the socket's local address for TCP (the
 * interface address; an inbound connection's port is the listener's), the listen address for
 * a unix one accepted here, "" for a relayed connection or when unknown. */
const char *p2p_stream_local_addr(const p2p_stream *s);
/* The remote opened this stream (not: dialed its connection; see p2p_stream_conn_inbound). */
bool p2p_stream_is_inbound(const p2p_stream *s);
/* The remote dialed the stream's connection (for a relayed one: the relayed stream came in). */
bool p2p_stream_conn_inbound(const p2p_stream *s);
/* The stream's connection runs over a stream of another connection (circuit relay). */
bool p2p_stream_is_relayed(const p2p_stream *s);
/* The id of the stream's connection (as in p2p_event.conn_id; never 0). */
uint64_t p2p_stream_conn_id(const p2p_stream *s);

/* Largest number of bytes this stream's send queue / receive buffer ever held (tests, bench). */
size_t p2p_stream_max_send_queued(const p2p_stream *s);
size_t p2p_stream_max_recv_buffered(const p2p_stream *s);

/* ---- built-in services, client side ---- */

/* /ipfs/ping/1.0.0: one 32-byte round trip. rtt_us is valid when err == 0. */
typedef void (*p2p_ping_fn)(int err, uint64_t rtt_us, void *ud);
int p2p_host_ping(p2p_host *h, const char *target, p2p_ping_fn cb, void *ud)
    __attribute__((warn_unused_result));

/* /perf/1.0.0 client: uploads `upload` bytes, asks for `download` bytes back. */
typedef struct p2p_perf_result {
  uint64_t uploaded, downloaded;
  uint64_t elapsed_us; /* stream open → stream closed */
  uint64_t upload_us;   /* stream open → the first downloaded byte (or the end): the server
                           replies only after it has read every uploaded byte */
  uint64_t download_us; /* the first downloaded byte → stream closed */
} p2p_perf_result;
typedef void (*p2p_perf_fn)(int err, const p2p_perf_result *r, void *ud);
int p2p_host_perf(p2p_host *h, const char *target, uint64_t upload, uint64_t download,
                  p2p_perf_fn cb, void *ud) __attribute__((warn_unused_result));

/* What identify told us about a connected peer (NULL fields when unknown). */
typedef struct p2p_peer_info {
  const char *peer_id;
  const char *agent_version;
  const char *protocol_version;
  const char *observed_addr; /* what the peer saw as our address */
  const char *const *protocols;
  size_t n_protocols;
  const char *const *listen_addrs;
  size_t n_listen_addrs;
  bool public_key_matches; /* identify's publicKey hashes to the Noise-proven PeerId */
  double last_seen;        /* wall-clock seconds */
  uint64_t record_seq;     /* highest seq of its signed peer records we accepted (0 = none) */
} p2p_peer_info;

/* Fills `out` from the peerstore; pointers valid until the next loop iteration. -ENOENT if unknown. */
int p2p_host_peer_info(p2p_host *h, const char *peer_id, p2p_peer_info *out)
    __attribute__((warn_unused_result));

/* ---- events: any number of subscribers ---- */

/* What AutoNAT concluded about our reachability (the codes are the Python service's status
 * codes: nat.autonat.code). */
typedef enum p2p_reachability {
  P2P_REACH_UNKNOWN = 0,
  P2P_REACH_PUBLIC = 1,  /* others can dial our addresses */
  P2P_REACH_PRIVATE = 2, /* they cannot (NAT, firewall): use relays */
} p2p_reachability;
const char *p2p_reachability_name(p2p_reachability r); /* "unknown" | "public" | "private" */

typedef enum p2p_event_type {
  P2P_EV_CONN_OPENED = 1u << 0,         /* a connection finished its upgrade (ready for streams) */
  P2P_EV_CONN_CLOSED = 1u << 1,         /* a connection that had opened is gone */
  P2P_EV_PEER_IDENTIFIED = 1u << 2,     /* the peer's identify response was stored (once per conn) */
  P2P_EV_IDENTIFY_PUSH = 1u << 3,       /* an identify-push from the peer was stored */
  P2P_EV_LISTEN_ADDRS_CHANGED = 1u << 4,/* a listener was added (addr) or all closed (addr NULL) */
  P2P_EV_OBSERVED_ADDR = 1u << 5,       /* a peer told us (identify observedAddr) how it sees us */
  P2P_EV_PROTOCOLS_CHANGED = 1u << 6,   /* a protocol handler was registered or removed */
  P2P_EV_ADDRS_CHANGED = 1u << 7,       /* an announced address was added or removed (addr) */
  P2P_EV_REACHABILITY_CHANGED = 1u << 8,/* p2p_host_set_reachability changed it (reachability) */
} p2p_event_type;
#define P2P_EV_ALL 0x1ffu

typedef struct p2p_event {
  p2p_event_type type;
  const char *peer_id;     /* CONN_*, PEER_IDENTIFIED, IDENTIFY_PUSH, OBSERVED_ADDR; else NULL */
  uint64_t conn_id;        /* the connection concerned (same events); else 0 */
  const char *remote_addr; /* CONN_*: the other end's multiaddr (see p2p_stream_remote_addr) */
  bool inbound;            /* CONN_*: the remote dialed us (or the relayed stream was inbound) */
  bool relayed;            /* CONN_*: over a stream of another connection */
  int err;                 /* CONN_CLOSED: 0 clean close, else a negative errno */
  const char *addr;        /* OBSERVED_ADDR: our address as seen; LISTEN_ADDRS_CHANGED: the new
                              listen address, NULL when the listeners closed; PROTOCOLS_CHANGED:
                              the protocol id; ADDRS_CHANGED: the address added or removed */
  bool removed;            /* ADDRS_CHANGED: the address was removed (else added) */
  p2p_reachability reachability; /* REACHABILITY_CHANGED: the new value */
} p2p_event;

/* Pointers in the event are valid during the call only. A subscriber may call any host
 * function, subscribe or unsubscribe (itself or others) from inside the callback. */
typedef void (*p2p_event_fn)(p2p_host *h, const p2p_event *ev, void *ud);

/* Delivers the events in `mask` (P2P_EV_*) to fn(ud), in subscription order, from the next
 * event on. Subscribing the same (fn, ud) again replaces its mask. 0, -EINVAL, -ENOMEM
 * (at most P2P_HOST_MAX_SUBSCRIBERS). */
#define P2P_HOST_MAX_SUBSCRIBERS 64
int p2p_host_subscribe(p2p_host *h, unsigned mask, p2p_event_fn fn, void *ud) __attribute__((warn_unused_result));
/* Stops deliveries to (fn, ud), at once (also during a delivery in progress). 0 or -ENOENT. */
int p2p_host_unsubscribe(p2p_host *h, p2p_event_fn fn, void *ud);

/* ---- protocol services: one interface for identify, ping, perf (and later mDNS, Kademlia,
 * relay, AutoNAT, DCUtR) ---- */

typedef struct p2p_service_handler {
  const char *protocol;
  p2p_stream_handler_fn fn; /* called with the service's `state` as ud */
} p2p_service_handler;

typedef struct p2p_service {
  const char *name;                    /* for logs */
  const p2p_service_handler *handlers; /* registered at add (before start), removed at close */
  size_t n_handlers;
  unsigned events;                     /* P2P_EV_* mask delivered to on_event */
  /* All optional. start: after the handlers are registered; a failure removes the service
   * again. on_event: as a subscriber (see p2p_event_fn). stop: at p2p_host_close, in reverse
   * order of adding, before connections are closed; handles the service owns are closed here
   * (hold the host with p2p_host_hold until their close callbacks ran). */
  int (*start)(p2p_host *h, void *state);
  void (*on_event)(p2p_host *h, const p2p_event *ev, void *state);
  void (*stop)(p2p_host *h, void *state);
} p2p_service;

/* Adds a service (svc must stay valid for the host's life; `state` is the service's own and is
 * passed to every hook). 0, -EINVAL, -EEXIST (a handler's protocol is taken), -ENOMEM, -ESHUTDOWN
 * or start's error (then nothing of the service remains). */
#define P2P_HOST_MAX_SERVICES 32
int p2p_host_add_service(p2p_host *h, const p2p_service *svc, void *state) __attribute__((warn_unused_result));

/* Keeps p2p_host_close from finishing until the matching release (for services closing their
 * own libuv handles asynchronously). */
void p2p_host_hold(p2p_host *h);
void p2p_host_release(p2p_host *h);

/* ---- connections over a stream of another connection (circuit relay v2) ---- */

/* What a relay allows a connection it carries (circuit relay v2 Limit, already in our units);
 * the host closes the connection when either is used up (see transport_stream.h). */
typedef struct p2p_relay_limit {
  uint64_t duration_ms; /* 0 = none */
  uint64_t data_bytes;  /* 0 = none */
  bool data_total;      /* data_bytes counts both directions together (js-libp2p relays), not
                           each direction (the spec) */
} p2p_relay_limit;

/* A relayed connection's limit and what it used of it. */
typedef struct p2p_relay_usage {
  p2p_relay_limit limit;
  uint64_t data_in, data_out; /* bytes through the relay since the connection began */
  int64_t left_ms;            /* until we close it for its duration; -1 = no duration limit */
} p2p_relay_usage;

typedef struct p2p_upgrade_opts {
  bool outbound;             /* we dial: multistream-select dialer, Noise initiator, Yamux client */
  const char *expected_peer; /* PeerId the remote must prove in Noise (required when outbound) */
  const char *remote_addr;   /* reported as the connection's remote address (NULL = "") */
  const uint8_t *initial;    /* bytes already read from s that belong to the new connection
                                (what followed a relay's STATUS in the same delivery); copied */
  size_t initial_len;        /* ≤ 64 KiB */
  p2p_relay_limit limit;     /* what the relay stated for this connection (0s: none) */
} p2p_upgrade_opts;

/* err 0: the connection is ready (peer_id is the Noise-proven remote, conn_id its id); else why
 * it failed (-EACCES wrong PeerId, -ETIMEDOUT, -ECONNRESET the carrying stream ended, -EPROTO,
 * …; peer_id NULL, conn_id 0). */
typedef void (*p2p_upgrade_fn)(p2p_host *h, int err, const char *peer_id, uint64_t conn_id, void *ud);

/* Runs a libp2p connection (multistream-select /noise → Noise XX → Yamux) over `s`, an open
 * stream of another connection (or one being handed to its handler). On success the host owns
 * s from now on — its callbacks are replaced; do not touch it again — and cb runs exactly once.
 * The new connection is like any other (handlers serve its inbound streams, p2p_host_open_stream
 * by PeerId reuses it when there is no direct connection, limits and timeouts apply) and is
 * reported as relayed. Errors (s untouched, cb never called): -EINVAL (bad options, s not
 * open), -EMFILE (connection limits), -ESHUTDOWN, -ENOMEM. */
int p2p_host_upgrade_stream(p2p_host *h, p2p_stream *s, const p2p_upgrade_opts *o, p2p_upgrade_fn cb, void *ud)
    __attribute__((warn_unused_result));

/* Opens a stream on one particular connection (conn_id from an event or p2p_stream_conn_id).
 * -ENOENT no such connection, -EPIPE not usable (closing, GoAway); else as p2p_host_open_stream. */
int p2p_host_open_stream_on(p2p_host *h, uint64_t conn_id, const char *protocol, p2p_open_fn cb, void *ud)
    __attribute__((warn_unused_result));

/* Sends a Yamux GoAway to the peer and closes its connections once their streams finish. */
int p2p_host_disconnect(p2p_host *h, const char *peer_id);

/* ---- one connection at a time (AutoNAT dial-backs, DCUtR hole punching) ---- */

typedef struct p2p_connect_opts {
  bool from_listen_port; /* the TCP socket is bound to our listen address of its family with
                            SO_REUSEPORT before it connects (needs p2p_host_config.reuseport and
                            a listener of that family; else -EADDRNOTAVAIL) */
  bool responder;        /* run the upgrade as the responder although we dialed (multistream-
                            select listener, Noise responder, Yamux server): DCUtR's TCP
                            simultaneous open, where the side that dials after the delay is the
                            server */
  bool no_backoff;       /* neither refused by nor recorded in the dial back-off */
  uint32_t timeout_ms;   /* 0 = handshake_timeout_ms: TCP connect + the whole upgrade */
} p2p_connect_opts;

/* Dials `target` (/ip4|ip6/…/tcp/…/p2p/<id>, or a /p2p-circuit address) on a new connection,
 * never reusing one. cb runs once with the connection's id (then usable with
 * p2p_host_open_stream_on; p2p_host_open_stream prefers it to a relayed one) or the error.
 * Errors as p2p_host_open_stream (cb never called). */
int p2p_host_connect(p2p_host *h, const char *target, const p2p_connect_opts *o, p2p_upgrade_fn cb, void *ud)
    __attribute__((warn_unused_result));

/* Ends one connection: gracefully (GoAway, streams finish, at most the drain grace) or at once
 * (reset). 0 or -ENOENT. */
int p2p_host_close_conn(p2p_host *h, uint64_t conn_id, bool graceful);

/* Keeps a connection open while it has no streams (the idle timeout skips it): a relay
 * reservation lives exactly as long as its connection. 0 or -ENOENT. */
int p2p_host_set_keepalive(p2p_host *h, uint64_t conn_id, bool on);

/* Connections (ready ones), for status reports. */
typedef struct p2p_conn_info {
  uint64_t conn_id;
  const char *peer_id;
  const char *remote_addr; /* see p2p_stream_remote_addr */
  bool inbound;            /* the remote dialed (or the relayed stream was inbound) */
  bool relayed;
  double age_s;
  p2p_relay_usage relay;   /* relayed: the relay's limit and its use (zeros otherwise) */
} p2p_conn_info;
/* Fills up to max rows for peer_id (NULL = every peer); returns how many exist. Pointers are
 * valid until the connection closes. */
size_t p2p_host_conns(p2p_host *h, const char *peer_id, p2p_conn_info *out, size_t max);

/* ---- announced addresses and reachability (AutoNAT, circuit relay) ---- */

/* Adds an address we can be reached at besides the listen addresses (a relay's
 * /p2p/<relay>/p2p-circuit address, an external address AutoNAT confirmed); without /p2p/<us>.
 * Identify lists it, identify-push tells connected peers, the announce file carries it.
 * 0, -EEXIST, -ENOSPC (P2P_HOST_MAX_EXTRA_ADDRS), -EINVAL (not a multiaddr), -ENOMEM. */
#define P2P_HOST_MAX_EXTRA_ADDRS 16
int p2p_host_add_addr(p2p_host *h, const char *multiaddr) __attribute__((warn_unused_result));
/* 0 or -ENOENT. */
int p2p_host_remove_addr(p2p_host *h, const char *multiaddr);
/* What we announce: the listen addresses (wildcards expanded to the interfaces' addresses)
 * then the added ones, without /p2p/. Returns how many (≤ max filled); the strings are valid
 * until the next call. */
size_t p2p_host_announced_addrs(p2p_host *h, const char **out, size_t max);

void p2p_host_set_reachability(p2p_host *h, p2p_reachability r);
p2p_reachability p2p_host_reachability(const p2p_host *h);

/* ---- dialing /p2p-circuit addresses: the relay client plugs in here ---- */

/* A circuit being set up: the host made the connection (waiting for its transport); the
 * dialer reaches the peer through the relay and hands over the stream. */
typedef struct p2p_circuit_req p2p_circuit_req;
typedef struct p2p_circuit_dialer {
  /* Start reaching peer_id through `relay` (a multiaddr ending in /p2p/<relay>, or a bare
   * PeerId). 0: p2p_circuit_req_done follows exactly once (unless cancel comes first);
   * else -errno and nothing follows. */
  int (*dial)(void *ud, p2p_circuit_req *req, const char *relay, const char *peer_id);
  /* The host gave up on req (timeout, close, shutdown): never call done for it. */
  void (*cancel)(void *ud, p2p_circuit_req *req);
} p2p_circuit_dialer;

/* With d NULL, /p2p-circuit targets fail with -EAFNOSUPPORT (the default). */
void p2p_host_set_circuit_dialer(p2p_host *h, const p2p_circuit_dialer *d, void *ud);
/* err 0: s (open, write side open) now carries bytes to and from the peer — the host takes it;
 * initial/n are bytes already read from s after the relay's answer (copied). err < 0: s is
 * NULL and the dial fails with err. */
/* Before p2p_circuit_req_done(err 0): the limit the relay stated for the circuit. */
void p2p_circuit_req_set_limit(p2p_circuit_req *req, const p2p_relay_limit *l);
void p2p_circuit_req_done(p2p_circuit_req *req, p2p_stream *s, const uint8_t *initial, size_t n, int err);

/* Counters for status reporting. */
typedef struct p2p_host_stats {
  uint32_t connections, pending_handshakes, streams;
  uint64_t bytes_in, bytes_out; /* TCP payload bytes */
  uint64_t writes_out;          /* buffers handed to connections' transports (TCP: one send, or
                                   one uv_write when the socket is full), handshakes included */
  uint64_t noise_frames_out;    /* Noise transport messages sent (one per write while a write
                                   holds less than 65,519 bytes of plaintext) */
  uint64_t early_sends;         /* writes made before the end of a read or loop iteration because
                                   a connection's output reached the write policy's mark
                                   (p2p_host_config.write_early_bytes) */
  uint64_t dials_ok, dials_failed, inbound_refused;
  uint64_t inbound_evicted;     /* handshakes closed to make room for a newer connection */
  uint64_t first_byte_timeouts; /* inbound connections that sent nothing in time */
  uint64_t reserved_refused;    /* upgraded, but only reserved slots were left and the peer is
                                   not one the gate admits */
  uint64_t reserve_admitted;    /* handshakes let in beyond the pending limits (a remembered IP) */
  uint64_t reserve_refused;     /* … that then proved a PeerId neither remembered nor admitted */
  uint32_t remembered;          /* PeerIds remembered as authorized (within the time bound) */
} p2p_host_stats;

/* Which peers may use the reserved connection slots (issue 9 item 1): called when an inbound
 * connection has finished its upgrade, with the Noise-proven PeerId. The host knows nothing of
 * trust; the service answers (a trusted PeerId, or one that presented a valid token before).
 * fn NULL removes the gate (then nobody is reserved a slot). Loop thread. */
typedef bool (*p2p_peer_gate_fn)(void *ud, const char *peer_id);
void p2p_host_set_peer_gate(p2p_host *h, p2p_peer_gate_fn fn, void *ud);

/* The service says `peer_id` holds a scope now (trusted, or a valid token on one of its
 * streams). The host remembers it — with the address of its inbound connection, if it has one —
 * for authorized_memory_s (a bounded table of authorized_memory entries; only this call adds to
 * it, so strangers cannot push entries out). While remembered, the peer's next handshakes are
 * not evicted for anonymous ones once its PeerId is known, it may use reserved connection
 * slots, and a new connection from its address may use the reserved handshakes when the pending
 * ones are full (issue 9 item 1; docs/security.md). Loop thread. */
void p2p_host_remember_authorized(p2p_host *h, const char *peer_id);
void p2p_host_get_stats(const p2p_host *h, p2p_host_stats *out);

#endif
