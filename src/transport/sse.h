/* transport/sse.h — one outgoing Server-Sent Events stream, sans-I/O: events go in as JSON text,
 * bytes come out for whatever connection currently drains the stream, and (for 2025-11-25
 * sessions) recently sent events stay available so a client that reconnects with Last-Event-ID
 * gets what it missed (WHATWG HTML §9.2 Server-sent events; MCP 2025-11-25
 * basic/transports.mdx §Resumability and Redelivery).
 *
 * Wire form of an event: "id: <stream>-<seq>\nevent: message\ndata: <json>\n\n" (the id line
 * only for streams that keep ids; JSON from the session core has no raw newline). Event ids are
 * "<stream number>-<sequence>", unique within a session, so an id names its stream.
 * Keep-alive comments are ":\n\n".
 *
 * Bounds: unread bytes are capped (max_pending): an event that would pass it is refused with
 * -ENOBUFS (the caller ends the stream: the client is not reading) — except on a stream with
 * nothing unread, which takes one event of any size (a large result must still go out). Kept bytes for replay are capped (retain):
 * the oldest read events are dropped first.
 *
 * Ownership: the caller owns the sse_stream (sse_stream_free). Threads: one owner at a time. */
#ifndef PEERMCP_TRANSPORT_SSE_H
#define PEERMCP_TRANSPORT_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sse_stream sse_stream;

/* no: the stream number in its session (used in ids); with_ids: write id lines and keep events
 * for replay (retain bytes of read events, 0 = keep none). NULL on ENOMEM. */
sse_stream *sse_stream_new(uint32_t no, bool with_ids, size_t max_pending, size_t retain);
void sse_stream_free(sse_stream *s);

/* Appends one event carrying data[0..len). 0, -ENOBUFS (unread bytes would pass max_pending) or
 * -ENOMEM. */
int sse_stream_event(sse_stream *s, const char *data, size_t len) __attribute__((warn_unused_result));
/* Appends a priming event (an id and empty data, 2025-11-25 §Sending Messages 6) on a stream
 * with ids: the client then has an id to resume from. 0, -EINVAL without ids, -ENOMEM/-ENOBUFS. */
int sse_stream_prime(sse_stream *s) __attribute__((warn_unused_result));
/* Appends a "retry: ms" field as its own event-less block (polling hint). 0 or -ENOMEM/-ENOBUFS. */
int sse_stream_retry(sse_stream *s, unsigned ms) __attribute__((warn_unused_result));
/* Appends a keep-alive comment unless unread bytes are waiting. 0 or -ENOMEM. */
int sse_stream_comment(sse_stream *s) __attribute__((warn_unused_result));

/* Copies up to max unread bytes to dst and marks them read; returns the count. */
size_t sse_stream_read(sse_stream *s, char *dst, size_t max);
size_t sse_stream_unread(const sse_stream *s);

/* Resumption: the next read starts right after event `seq` (Last-Event-ID). 0, or -ENOENT when
 * that event is no longer kept (or never existed), or -EINVAL on a stream without ids. */
int sse_stream_rewind(sse_stream *s, uint64_t seq) __attribute__((warn_unused_result));

uint32_t sse_stream_no(const sse_stream *s);
/* Sequence number of the last event appended (0 = none yet). */
uint64_t sse_stream_last_seq(const sse_stream *s);

/* Parses "<stream>-<seq>" (both decimal, no sign, no spaces). */
bool sse_event_id_parse(const char *id, uint32_t *stream_no, uint64_t *seq);

#endif
