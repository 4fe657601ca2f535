/* yamux.h — Yamux stream multiplexer (`/yamux/1.0.0`), sans-I/O session engine.
 *
 * Implements libp2p/specs yamux/README.md (= hashicorp/yamux spec.md): 12-byte big-endian
 * header (version 0; type Data/WindowUpdate/Ping/GoAway; flags SYN/ACK/FIN/RST; stream
 * id; length), odd stream ids for the client, even for the server, per-stream flow
 * control starting at 256 KiB, ping, GoAway, ACK backlog 256. See docs/yamux.md.
 *
 * The nghttp2 model: no sockets, no clocks required, no threads.
 *   - Received transport bytes go in with yamux_session_feed(); events come out through
 *     the callbacks (called synchronously from inside the API calls).
 *   - Bytes to send are pulled with yamux_session_out() / yamux_session_out_consume().
 *     The owner must drain them after every API call that may produce output (feed, open,
 *     write, close, reset, consume, ping, goaway).
 *
 * Flow control, sending: yamux_stream_write() accepts at most the peer's window for that
 * stream and at most what fits under the session's output soft limit; it returns how many
 * bytes it took (copied), or -EAGAIN when it took none. After a short or -EAGAIN write the
 * stream gets one on_stream_writable callback once either limit opens again. Nothing is
 * ever queued beyond those limits, so a slow reader never makes the sender buffer without
 * bound.
 *
 * Flow control, receiving: data is handed to on_stream_data straight from the fed buffer
 * (never buffered here). Those bytes stay charged to the stream's receive window until the
 * application calls yamux_stream_consume(); window updates are sent as it does, so a slow
 * reader holds back the sender. The most a peer can have outstanding on one stream (and so
 * the most the owner ever has to buffer for it) is yamux_stream_recv_window() <=
 * cfg.max_window. Window auto-tuning: see docs/yamux.md (a window update is due when half
 * the window has been consumed; if that happens within 2 RTT of the previous update the
 * window doubles, up to cfg.max_window = 16 MiB).
 *
 * Stream handles: yamux_stream_open() and on_stream_open hand the owner a yamux_stream*.
 * The owner releases each handle exactly once with yamux_stream_release(); until then the
 * handle stays valid even after FIN/RST (operations then fail with -EPIPE/-ECONNRESET).
 * After release no more callbacks arrive for it. Releasing a stream whose write side is
 * still open resets it (RST); releasing after yamux_stream_close() lets it linger until the
 * peer's FIN/RST (its further data is discarded). yamux_session_free() frees every stream,
 * released or not.
 *
 * Re-entrancy: callbacks may call any yamux_* function on the same session (write, close,
 * consume, reset, release — also of the stream the callback is about — open, ping,
 * goaway, out/out_consume), except yamux_session_free() and yamux_session_feed().
 * Not thread-safe: one owner (the loop thread).
 *
 * Errors (negative errno): -EPROTO protocol violation by the peer (a GoAway(protocol error)
 * has been queued; drain the output, then close the transport), -ENOBUFS the output
 * buffer's hard limit was hit by control frames (owner is not draining), -EAGAIN would
 * block (window/out space, or ACK backlog on open), -EMFILE stream cap reached, -EPIPE
 * write after close / open after GoAway, -ECONNRESET stream was reset, -ENOMEM,
 * -EINVAL bad argument, -ESHUTDOWN session already failed/terminated. */
#ifndef PEERMCP_P2P_PROTO_YAMUX_H
#define PEERMCP_P2P_PROTO_YAMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define YAMUX_PROTO_ID "/yamux/1.0.0"
#define YAMUX_HEADER_LEN 12
#define YAMUX_INITIAL_WINDOW (256u * 1024u)
#define YAMUX_MAX_ACK_BACKLOG 256

enum { YAMUX_TYPE_DATA = 0, YAMUX_TYPE_WINDOW_UPDATE = 1, YAMUX_TYPE_PING = 2, YAMUX_TYPE_GO_AWAY = 3 };
enum { YAMUX_FLAG_SYN = 1, YAMUX_FLAG_ACK = 2, YAMUX_FLAG_FIN = 4, YAMUX_FLAG_RST = 8 };
enum { YAMUX_GOAWAY_NORMAL = 0, YAMUX_GOAWAY_PROTOCOL_ERROR = 1, YAMUX_GOAWAY_INTERNAL_ERROR = 2 };

typedef struct yamux_session yamux_session;
typedef struct yamux_stream yamux_stream;

typedef struct yamux_callbacks {
  /* Peer opened a stream (SYN). Return 0 to accept (the ACK goes out with the first frame
   * the owner causes on it: write, close, consume), negative to refuse (RST is sent and
   * the handle is gone when this returns: do not release it). Required. */
  int (*on_stream_open)(yamux_session *s, yamux_stream *st, void *ud);
  /* Payload received on a stream (a frame may arrive in several pieces). The bytes point
   * into the fed buffer: copy what you keep. Call yamux_stream_consume() once processed. */
  void (*on_stream_data)(yamux_session *s, yamux_stream *st, const uint8_t *data, size_t len,
                         void *ud);
  /* Peer half-closed (FIN): no more data will arrive. */
  void (*on_stream_fin)(yamux_session *s, yamux_stream *st, void *ud);
  /* Stream reset: peer RST (or refused our SYN), or the session ended. The last
   * callback for this stream; writes fail with -ECONNRESET. */
  void (*on_stream_reset)(yamux_session *s, yamux_stream *st, void *ud);
  /* Peer ACKed a stream we opened (optional). */
  void (*on_stream_ack)(yamux_session *s, yamux_stream *st, void *ud);
  /* A stream whose last write was short or -EAGAIN can take more data now (optional). */
  void (*on_stream_writable)(yamux_session *s, yamux_stream *st, void *ud);
  /* Answer to yamux_session_ping(): opaque value and RTT in µs (0 if no clock). (optional) */
  void (*on_pong)(yamux_session *s, uint32_t opaque, uint64_t rtt_us, void *ud);
  /* Peer sent GoAway: it accepts no new streams; existing ones continue. (optional) */
  void (*on_goaway)(yamux_session *s, uint32_t code, void *ud);
  /* Monotonic clock in µs, used for ping RTT and window auto-tuning. NULL = clock_mono_us(). */
  uint64_t (*now_us)(void *ud);
} yamux_callbacks;

typedef struct yamux_config {
  uint32_t max_streams;     /* concurrent streams, both directions (default 512) */
  uint32_t initial_window;  /* receive window per new stream, >= 256 KiB (default 256 KiB;
                               a larger value is advertised with the SYN/ACK) */
  uint32_t max_window;      /* receive window auto-tuning ceiling (default 16 MiB) */
  uint32_t max_frame_data;  /* largest Data payload we send in one frame (default 64 KiB) */
  size_t out_soft_limit;    /* stream writes are refused while this much output is pending
                               (default 1 MiB) */
  size_t out_hard_limit;    /* control frames beyond it fail with -ENOBUFS (default
                               soft + 256 KiB) */
  bool auto_ping;           /* send one ping at start to measure RTT (default true) */
} yamux_config;

/* Fills *cfg with the defaults above. */
void yamux_config_default(yamux_config *cfg);

/* A session over one secured connection. is_client: the dialer of the connection (odd ids).
 * cfg may be NULL (defaults); cb is copied; ud is passed to every callback. */
int yamux_session_new(yamux_session **out, bool is_client, const yamux_config *cfg,
                      const yamux_callbacks *cb, void *ud) __attribute__((warn_unused_result));
/* Frees the session and every stream handle (released or not). No callbacks. */
void yamux_session_free(yamux_session *s);

/* Feeds received transport bytes; all len bytes are consumed on success (partial frames are
 * kept inside, at most one 12-byte header). Returns 0 or a negative error (then the
 * session is failed: drain the output — it may hold a GoAway — and close the transport). */
int yamux_session_feed(yamux_session *s, const uint8_t *data, size_t len)
    __attribute__((warn_unused_result));

/* Pending output: returns a pointer to *len bytes (NULL/0 if none). Valid until the next
 * yamux_* call. Hand them to the transport, then yamux_session_out_consume(s, n). */
const uint8_t *yamux_session_out(yamux_session *s, size_t *len);
/* Marks n pending output bytes as taken; may fire on_stream_writable callbacks. */
void yamux_session_out_consume(yamux_session *s, size_t n);
size_t yamux_session_out_pending(const yamux_session *s);

/* Sends a ping (SYN) with `opaque`; on_pong reports the answer. At most 16 outstanding
 * (-EAGAIN beyond). */
int yamux_session_ping(yamux_session *s, uint32_t opaque) __attribute__((warn_unused_result));
/* Smoothed RTT from pings, µs; 0 until a pong arrived. */
uint64_t yamux_session_rtt_us(const yamux_session *s);

/* Sends GoAway(code) once; afterwards new outbound opens fail (-EPIPE) and inbound SYNs are
 * refused with RST. Existing streams continue. */
int yamux_session_goaway(yamux_session *s, uint32_t code) __attribute__((warn_unused_result));
bool yamux_session_goaway_received(const yamux_session *s);
bool yamux_session_goaway_sent(const yamux_session *s);

/* The transport is gone (EOF or error): every open stream gets on_stream_reset, the session
 * becomes failed. Handles stay valid until released / session freed. */
void yamux_session_transport_closed(yamux_session *s);

/* Number of live streams (not yet fully closed or released). */
size_t yamux_session_stream_count(const yamux_session *s);
/* 0 while healthy, else the negative error that failed the session. */
int yamux_session_error(const yamux_session *s);
bool yamux_session_is_client(const yamux_session *s);

/* Opens an outbound stream: queues WindowUpdate|SYN. -EAGAIN if 256 streams we opened are
 * still unacknowledged, -EMFILE at the stream cap, -EPIPE after GoAway. */
int yamux_stream_open(yamux_session *s, yamux_stream **out) __attribute__((warn_unused_result));

/* Copies min(len, yamux_stream_write_room(st)) bytes into Data frames; returns bytes taken
 * (>0), or -EAGAIN (nothing taken; on_stream_writable follows), -ENOMEM (nothing taken: the
 * output could not grow), -EPIPE (write side closed), -ECONNRESET, -ESHUTDOWN. Never takes a
 * part of what the room allowed. */
ssize_t yamux_stream_write(yamux_stream *st, const uint8_t *data, size_t len)
    __attribute__((warn_unused_result));
/* What yamux_stream_write would take now: min(the peer's window, room under the output soft
 * limit); 0 once the write side is closed or the session failed. */
size_t yamux_stream_write_room(const yamux_stream *st);
/* Half-close: FIN. Idempotent. */
int yamux_stream_close(yamux_stream *st) __attribute__((warn_unused_result));
/* Abort both directions: RST (nothing sent if already fully closed). Idempotent. */
void yamux_stream_reset(yamux_stream *st);
/* The application has processed n bytes delivered by on_stream_data: credits the window
 * (window updates go out in batches). -EINVAL if n exceeds what was delivered. */
int yamux_stream_consume(yamux_stream *st, size_t n) __attribute__((warn_unused_result));
/* The owner drops the handle (exactly once); see the header comment. */
void yamux_stream_release(yamux_stream *st);

uint32_t yamux_stream_id(const yamux_stream *st);
yamux_session *yamux_stream_session(const yamux_stream *st);
void yamux_stream_set_user(yamux_stream *st, void *user);
void *yamux_stream_user(const yamux_stream *st);
/* Bytes the peer may still send us / we may still send it (flow-control windows). */
uint32_t yamux_stream_recv_window(const yamux_stream *st);
uint32_t yamux_stream_send_window(const yamux_stream *st);
/* Delivered to the application and not yet consumed. */
size_t yamux_stream_unconsumed(const yamux_stream *st);
bool yamux_stream_read_closed(const yamux_stream *st);  /* FIN or RST received */
bool yamux_stream_write_closed(const yamux_stream *st); /* FIN sent or reset */
bool yamux_stream_is_reset(const yamux_stream *st);

/* Frame header codec (exposed for tests and fuzzers). */
typedef struct yamux_header {
  uint8_t version, type;
  uint16_t flags;
  uint32_t stream_id, length;
} yamux_header;
void yamux_header_encode(const yamux_header *h, uint8_t out[YAMUX_HEADER_LEN]);
void yamux_header_decode(const uint8_t in[YAMUX_HEADER_LEN], yamux_header *h);

#endif
