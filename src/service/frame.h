/* frame.h — sans-I/O framing for the two service stream protocols (p2p_tasks_spec.md §2).
 *
 *  /mcp+p2p/1.0.0                  4-byte unsigned big-endian length + UTF-8 JSON object (§2.3)
 *  /ipfs-datasets/task-queue/1.0.0 one newline-terminated JSON object per stream (§2.2, legacy)
 *
 * Decoders take bytes in whatever pieces the transport delivers (down to one byte at a time)
 * and hand out parsed JSON objects. Parsing refuses duplicate object keys anywhere in a message
 * ({"op":"get","op":"cancel"} is invalid_json: no "last one wins" for op or token) and accepts
 * escaped NULs (\u0000) inside string values (JSON_ALLOW_NUL semantics, util/jparse; Python peers send
 * them); a NUL in an object key is invalid_json. Where a string must be a C string (a method,
 * a tool or op name, a token) the consumer refuses NULs itself (svc_json_has_nul). The declared length of a u32 frame is checked against the
 * decoder's ceiling *before* any body byte is buffered or allocated. A decoder that reported an
 * error is dead: every later feed returns the same error (the caller replies once and closes).
 *
 * Ownership: the decoder owns its buffer; svc_frame_dec_take / svc_ndjson_dec_take hand the
 * parsed object to the caller (a new reference). Encoders append to a caller-owned buf.
 * Threads: a decoder belongs to one stream and is used by one thread at a time. */
#ifndef PEERMCP_SERVICE_FRAME_H
#define PEERMCP_SERVICE_FRAME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/jparse.h"
#include "util/jwrite.h"

#define SVC_FRAME_DEFAULT_MAX (1024u * 1024u) /* inbound default, §2.3 */
#define SVC_FRAME_HDR 4u

typedef enum {
  SVC_FRAME_NEED_MORE = 0,     /* all input consumed, no complete frame yet */
  SVC_FRAME_READY = 1,         /* a frame is ready: take it with *_dec_take */
  SVC_FRAME_TOO_LARGE = -1,    /* "frame_too_large" */
  SVC_FRAME_INVALID_JSON = -2, /* "invalid_json" (bad UTF-8 or JSON, empty body) */
  SVC_FRAME_INVALID_MSG = -3,  /* "invalid_message" (valid JSON, not an object) */
  SVC_FRAME_NOMEM = -4,        /* "internal_error" */
  SVC_FRAME_EMPTY = -5,        /* legacy only: EOF before any byte ("empty": no reply, close) */
  SVC_FRAME_TIMEOUT = -6,      /* "frame_timeout": a frame's body did not arrive in time (set by
                                  the transport through svc_frame_dec_fail) */
} svc_frame_status;

/* The wire string for an error status ("frame_too_large", …); "ok" for non-errors. */
const char *svc_frame_status_str(svc_frame_status st);

/* --- /mcp+p2p/1.0.0 u32 frames --- */

/* A frame in raw mode (svc_frame_dec_set_raw): the body's bytes, checked by util/jparse's
 * jparse_scan — exactly the frames the tree parse accepts are accepted, the same statuses for
 * the others — and its top-level members as spans of body; no tree is built. */
#define SVC_FRAME_RAW_MEMBERS 8
typedef struct svc_frame_raw {
  const char *body;
  size_t len;
  jparse_member m[SVC_FRAME_RAW_MEMBERS];
  size_t n_members; /* may exceed SVC_FRAME_RAW_MEMBERS: then only the first ones are in m */
  bool has_nul;     /* a string value holds \u0000 */
  unsigned found;   /* jparse_scan's found flags (JPARSE_FOUND_NUL, JPARSE_FOUND_DEPTH) */
  /* the members of the top-level object member named by svc_frame_dec_set_raw_sub ("params"
   * unless set: mcp/envelope.h reads them without walking params again; a client's "result"),
   * as m (jparse_scan_sub) */
  jparse_member pm[SVC_FRAME_RAW_MEMBERS];
  size_t n_pm;
} svc_frame_raw;

typedef struct svc_frame_dec {
  uint8_t hdr[SVC_FRAME_HDR];
  size_t hdr_have;
  uint32_t want; /* declared body length once the header is complete */
  buf body;
  size_t max; /* inbound ceiling on the declared length */
  json_t *ready;
  svc_frame_status err; /* sticky once negative */
  char detail[120];     /* why a body was refused (the parser's text and byte offset), "" if not known */
  bool ready_nul;       /* the last frame parsed holds a NUL (\u0000) in a string value */
  int ready_depth;      /* how deep the last frame parsed nests (JPARSE_FOUND_DEPTH) */
  bool raw;             /* raw mode: frames handed out as svc_frame_raw, no tree */
  const char *raw_sub;  /* whose members go to r.pm (static; NULL = "params") */
  bool raw_ready, raw_hold;
  svc_frame_raw r;
} svc_frame_dec;

/* max = 0 means SVC_FRAME_DEFAULT_MAX. Allocates nothing. */
void svc_frame_dec_init(svc_frame_dec *d, size_t max);
void svc_frame_dec_free(svc_frame_dec *d);

/* Feeds up to n bytes; *consumed says how many were used. Stops after one complete frame
 * (SVC_FRAME_READY) so the caller can act on it before feeding the rest. On error the bytes
 * after the bad header/body are left unconsumed. */
svc_frame_status svc_frame_dec_feed(svc_frame_dec *d, const uint8_t *p, size_t n, size_t *consumed)
    __attribute__((warn_unused_result));
/* The ready frame (a JSON object, new reference), or NULL when none is ready (or in raw mode). */
json_t *svc_frame_dec_take(svc_frame_dec *d);
/* Raw mode on or off (set it before the first feed). In raw mode a READY frame is taken with
 * svc_frame_dec_take_raw: borrowed, valid until the next feed — and, when its body lay whole in
 * the bytes given to that feed (then it is not copied), only while those bytes are. */
void svc_frame_dec_set_raw(svc_frame_dec *d, bool raw);
const svc_frame_raw *svc_frame_dec_take_raw(svc_frame_dec *d);
/* Which top-level member's object raw mode lists in svc_frame_raw.pm: "params" by default (a
 * server reading requests), "result" for a client reading replies. key: a static string. */
void svc_frame_dec_set_raw_sub(svc_frame_dec *d, const char *key);
/* Whether the last frame that became ready holds a NUL (\u0000) in some string value: when
 * false, no field of it needs svc_json_has_nul. */
bool svc_frame_dec_last_has_nul(const svc_frame_dec *d);
/* How deep the last frame that became ready nests (1 for a flat object), for
 * mcp_session_feed_json_depth. */
int svc_frame_dec_last_depth(const svc_frame_dec *d);
/* True while a frame is partially received (EOF now would be "eof", not "empty"). Inline: the
 * conn asks it for every frame. */
static inline int svc_frame_dec_mid_frame(const svc_frame_dec *d) { return d->hdr_have > 0; }
/* Changes the ceiling on declared lengths (applies from the next header; a frame whose header
 * already passed keeps its allowance). 0 means SVC_FRAME_DEFAULT_MAX. */
void svc_frame_dec_set_max(svc_frame_dec *d, size_t max);
/* Bytes of the current partial frame held (header and body). Inline: the conn asks it for every
 * frame. */
static inline size_t svc_frame_dec_held(const svc_frame_dec *d) { return d->hdr_have + buf_len(&d->body); }
/* Kills the decoder with an error status (e.g. SVC_FRAME_TIMEOUT) and drops what it holds. */
void svc_frame_dec_fail(svc_frame_dec *d, svc_frame_status st);
/* Why the last body was refused ("duplicate object key near '\"op\"'"), "" when unknown. */
const char *svc_frame_dec_detail(const svc_frame_dec *d);

/* True when a JSON string value holds a NUL character (\u0000), i.e. is not a C string;
 * false for anything that is not a string. */
bool svc_json_has_nul(const json_t *v);

/* Appends one frame: header + compact ASCII JSON (separators ",", ":"; ensure_ascii), the
 * shape the Python encoder writes. 0, -E2BIG when the body exceeds max (nothing appended),
 * -ENOMEM, -EINVAL when msg cannot be encoded. */
int svc_frame_encode(buf *out, const json_t *msg, size_t max) __attribute__((warn_unused_result));

/* Appends one JSON-RPC request frame {"jsonrpc":"2.0","id":id,"method":method,"params":params}
 * (params left out when NULL), written straight as text — the same bytes svc_frame_encode gives
 * for that object, without building it. scratch: a writer kept between calls, set up with
 * jwrite_init(scratch, UINT32_MAX, JWRITE_ASCII) (the caller jwrite_frees it). Same returns
 * as svc_frame_encode. */
int svc_frame_encode_request(buf *out, jwrite *scratch, uint64_t id, const char *method, const json_t *params,
                             size_t max) __attribute__((warn_unused_result));

/* The same with params given as JSON text (written as it is: the caller vouches that it is one
 * valid JSON value). */
int svc_frame_encode_request_text(buf *out, jwrite *scratch, uint64_t id, const char *method, const char *params,
                                  size_t params_len, size_t max) __attribute__((warn_unused_result));

/* The framing error reply {"jsonrpc":"2.0","id":null,"error":{"code":-32003,"message":…}}
 * (new reference, NULL on ENOMEM). */
json_t *svc_frame_error_reply(svc_frame_status st);
/* The same with error.data.detail = detail (when not NULL or empty). */
json_t *svc_frame_error_reply_detail(svc_frame_status st, const char *detail);

/* --- legacy NDJSON --- */

typedef struct svc_ndjson_dec {
  buf line;
  size_t max; /* ceiling on the bytes of the line, newline included */
  json_t *ready;
  int done; /* a line was delivered: the stream carries one request only */
  svc_frame_status err;
  char detail[120]; /* as svc_frame_dec.detail */
} svc_ndjson_dec;

void svc_ndjson_dec_init(svc_ndjson_dec *d, size_t max);
void svc_ndjson_dec_free(svc_ndjson_dec *d);
/* Feeds bytes until a newline; READY when the line parsed. Bytes after the newline are
 * consumed and ignored (one request per stream). */
svc_frame_status svc_ndjson_dec_feed(svc_ndjson_dec *d, const uint8_t *p, size_t n)
    __attribute__((warn_unused_result));
/* Peer half-closed: a line without its newline is still accepted (§2.2); nothing at all is
 * SVC_FRAME_EMPTY. */
svc_frame_status svc_ndjson_dec_finish(svc_ndjson_dec *d) __attribute__((warn_unused_result));
json_t *svc_ndjson_dec_take(svc_ndjson_dec *d);

/* Appends json.dumps(obj) + "\n" as Python writes it (", " and ": " separators, ASCII).
 * 0, -E2BIG past out's ceiling, -ENOMEM, -EINVAL. */
int svc_ndjson_encode(buf *out, const json_t *msg) __attribute__((warn_unused_result));

#endif
