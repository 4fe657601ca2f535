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

/* s must be HANDING or OPEN with its write side open. 0 or -ENOMEM (s untouched). */
int p2p_stream_transport_new(p2p_host *h, p2p_stream *s, p2p_transport **out) __attribute__((warn_unused_result));

#endif
