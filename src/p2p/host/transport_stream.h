/* transport_stream.h — a stream of another connection as a p2p_transport (see transport.h):
 * the pipe under a relayed connection (circuit relay v2 runs Noise and Yamux inside a Yamux
 * stream to the relay). Bytes written go out with p2p_stream_write (its high-water mark is
 * this transport's backpressure); bytes read are the stream's on_data.
 *
 * Ownership: p2p_stream_transport_new() takes the stream — its callbacks are replaced and it
 * is paused until read_start — and the transport frees itself once both have happened:
 * on_closed was delivered, and the stream's on_close ran. close(0) half-closes the stream
 * (FIN after what is queued) and lets it linger, discarding input, until the peer closes too;
 * close(err) resets it. on_closed is delivered from the host's deferred work (host_defer).
 * Threads: the loop thread only. */
#ifndef PEERMCP_P2P_HOST_TRANSPORT_STREAM_H
#define PEERMCP_P2P_HOST_TRANSPORT_STREAM_H

#include "p2p/host/host.h"
#include "p2p/host/transport.h"

#define P2P_STREAM_TRANSPORT_PREFIX_MAX (64u * 1024u)

/* s must be HANDING or OPEN with its write side open. 0 or -ENOMEM (s untouched). */
int p2p_stream_transport_new(p2p_host *h, p2p_stream *s, p2p_transport **out) __attribute__((warn_unused_result));
/* Bytes that came before the stream was the transport's; read_start delivers them first.
 * 0, -E2BIG (over P2P_STREAM_TRANSPORT_PREFIX_MAX), -ENOMEM. */
int p2p_stream_transport_set_initial(p2p_transport *t, const uint8_t *p, size_t n) __attribute__((warn_unused_result));

/* A transport still waiting for its stream: a /p2p-circuit dial. It is the p2p_circuit_req the
 * host's circuit dialer gets; p2p_circuit_req_done gives it the stream (then on_open(0)) or an
 * error (on_open(err)), both from a later loop iteration. While `dialing` is set, close()
 * cancels the request through the dialer. 0 or -ENOMEM. */
int p2p_stream_transport_pending(p2p_host *h, p2p_transport **out) __attribute__((warn_unused_result));
p2p_circuit_req *p2p_stream_transport_req(p2p_transport *t);
/* Gives a pending transport (not dialing) its stream at once: open, no on_open (as
 * p2p_stream_transport_new). */
void p2p_stream_transport_attach(p2p_transport *t, p2p_stream *s);
void p2p_stream_transport_dialing(p2p_transport *t, bool on);

/* ---- the relay's limits on the connection it carries (circuit relay v2 Limit) ----
 * Once set, the transport counts the bytes through the stream (what came before it was ours
 * included). A write that would take the data used past the limit fails with -EDQUOT, and
 * input that reaches it ends with on_end(-EDQUOT): the connection above closes. The duration
 * is up P2P_RELAY_LIMIT_GUARD_MS (a quarter of it when shorter than 4 guards) before the
 * stated one, counted from the call — the relay's clock started when it opened the circuit,
 * before we heard of it, and our close should come first; the connection's tick closes it
 * (p2p_stream_transport_expired, -ETIME). */
#define P2P_RELAY_LIMIT_GUARD_MS 1000
void p2p_stream_transport_set_limit(p2p_transport *t, const p2p_relay_limit *l);
void p2p_stream_transport_usage(const p2p_transport *t, int64_t now_ms, p2p_relay_usage *out);
bool p2p_stream_transport_expired(const p2p_transport *t, int64_t now_ms);

#endif
