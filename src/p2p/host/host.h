/* host.h — the libp2p host: TCP listeners and dials on one libuv loop, the connection upgrade
 * (multistream-select → Noise → multistream-select → Yamux), protocol handlers for inbound
 * streams, outbound streams, a connection manager (limits, timeouts, dial back-off), the
 * peerstore, and the identify / identify-push / ping / perf services.
 *
 * Threads: everything here runs on the loop thread that created the host. No function may be
 * called from another thread (hand work back with uv_async_send first).
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
typedef struct p2p_host_config {
  const char *state_dir;          /* identity.key and the `peers` snapshot live here (required) */
  const char *agent_version;      /* identify agentVersion; default "peermcp/<version>" */
  uint32_t max_connections;       /* 256: established + handshaking; more are refused */
  uint32_t max_streams_per_conn;  /* 256: open Yamux streams per connection (both directions) */
  uint32_t max_pending_handshakes;/* 64: connections still upgrading */
  uint32_t handshake_timeout_ms;  /* 10000: TCP connect + whole upgrade */
  uint32_t idle_timeout_ms;       /* 120000: a connection with no streams for this long closes */
  uint32_t stream_negotiate_timeout_ms; /* 10000: multistream-select on a new stream */
  uint32_t dial_backoff_ms;       /* 1000: first back-off after a failed dial; doubles to 5 min */
  size_t stream_send_hwm;         /* 256 KiB: write() returns 1 at or above this queue size */
  size_t stream_send_max;         /* 4 MiB: write() refuses past this (-ENOBUFS) */
  size_t conn_write_queue_max;    /* 1 MiB: encrypted bytes queued to one socket */
  uint32_t yamux_window;          /* 0 = Yamux default (256 KiB, auto-tuned up to 16 MiB):
                                     initial receive window per stream; also the most a
                                     paused stream buffers until the window grows */
  bool enable_perf;               /* serve /perf/1.0.0 (off by default: perf spec §Security) */
  noise_aead noise_aead;          /* Noise transport AEAD backend: NOISE_AEAD_OPENSSL (0, the
                                     default) or NOISE_AEAD_LIBSODIUM; same bytes on the wire */
  bool no_peerstore_file;         /* do not load/save <state_dir>/peers */
} p2p_host_config;

/* ---- host life cycle ---- */

/* Loads or creates <state_dir>/identity.key and makes a host on `loop`. Starts nothing. */
int p2p_host_new(uv_loop_t *loop, const p2p_host_config *cfg, p2p_host **out)
    __attribute__((warn_unused_result));

/* Listens on a TCP multiaddr (/ip4/A/tcp/P or /ip6/A/tcp/P; port 0 picks one). */
int p2p_host_listen(p2p_host *h, const char *multiaddr) __attribute__((warn_unused_result));

/* Our PeerId as text (base58btc, 12D3KooW…). Valid for the host's life. */
const char *p2p_host_peer_id(const p2p_host *h);

/* The actual listen addresses (real ports), without /p2p/. Returns how many; fills up to `max`
 * pointers that stay valid until the next p2p_host_listen or close. */
size_t p2p_host_listen_addrs(const p2p_host *h, const char **out, size_t max);

/* The i-th listen address as others should dial it, with /p2p/<id> (0.0.0.0 / :: replaced by
 * the first non-internal interface address of that family, else loopback). 0, -ENOENT, -ENOSPC. */
int p2p_host_announce_addr(const p2p_host *h, size_t i, char *out, size_t cap)
    __attribute__((warn_unused_result));

/* Writes {"peer_id":…, "multiaddr":…, "multiaddrs":[…]} atomically (temp file, fsync, rename)
 * to `path`. multiaddr is the first listen address + /p2p/<id>, with 0.0.0.0 / :: replaced by
 * the loopback address. */
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

/* ---- streams ---- */

typedef struct p2p_stream_callbacks {
  /* Bytes from the remote, in order. Not called while reading is paused. */
  void (*on_data)(p2p_stream *s, const uint8_t *data, size_t len, void *ud);
  /* The remote closed its write side (Yamux FIN); no more on_data. */
  void (*on_eof)(p2p_stream *s, void *ud);
  /* The send queue fell below the high-water mark after write() returned 1. */
  void (*on_writable)(p2p_stream *s, void *ud);
  /* The stream is gone: err 0 after both sides closed cleanly, else -ECONNRESET (reset),
   * -ECONNABORTED (connection lost), -ETIMEDOUT. Last callback; s is freed after it returns. */
  void (*on_close)(p2p_stream *s, int err, void *ud);
} p2p_stream_callbacks;

void p2p_stream_set_callbacks(p2p_stream *s, const p2p_stream_callbacks *cbs, void *ud);

/* Queues bytes. Returns 0 (keep writing), 1 (at/above high-water: wait for on_writable),
 * -ENOBUFS (over the hard cap; nothing queued), -EPIPE (write side closed or stream gone). */
int p2p_stream_write(p2p_stream *s, const void *data, size_t len) __attribute__((warn_unused_result));

/* Bytes queued and not yet handed to Yamux. */
size_t p2p_stream_send_queued(const p2p_stream *s);

/* Closes our write side (FIN) once the queue has been sent. Reading continues. */
void p2p_stream_close_write(p2p_stream *s);

/* Aborts both directions (Yamux RST). on_close follows with -ECONNRESET. */
void p2p_stream_reset(p2p_stream *s);

/* Stops / resumes on_data and the window updates that let the remote send more. */
void p2p_stream_pause_read(p2p_stream *s, bool paused);

const char *p2p_stream_protocol(const p2p_stream *s);
/* The authenticated remote PeerId (text), proven by the Noise handshake. */
const char *p2p_stream_remote_peer(const p2p_stream *s);
/* The remote TCP address as a multiaddr (/ip4/…/tcp/…). */
const char *p2p_stream_remote_addr(const p2p_stream *s);
bool p2p_stream_is_inbound(const p2p_stream *s);

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
} p2p_peer_info;

/* Fills `out` from the peerstore; pointers valid until the next loop iteration. -ENOENT if unknown. */
int p2p_host_peer_info(p2p_host *h, const char *peer_id, p2p_peer_info *out)
    __attribute__((warn_unused_result));

/* Called once per connection when the peer's identify response has been processed
 * (also after an identify-push). One callback per host: a second call replaces the first. */
typedef void (*p2p_identify_fn)(p2p_host *h, const char *peer_id, void *ud);
void p2p_host_on_identify(p2p_host *h, p2p_identify_fn fn, void *ud);

/* Sends a Yamux GoAway to the peer and closes its connections once their streams finish. */
int p2p_host_disconnect(p2p_host *h, const char *peer_id);

/* Counters for status reporting. */
typedef struct p2p_host_stats {
  uint32_t connections, pending_handshakes, streams;
  uint64_t bytes_in, bytes_out; /* TCP payload bytes */
  uint64_t dials_ok, dials_failed, inbound_refused;
} p2p_host_stats;
void p2p_host_get_stats(const p2p_host *h, p2p_host_stats *out);

#endif
