/* fuzz_http_rules.c — libFuzzer target: the Streamable HTTP rules that read untrusted header
 * values (transport/http_rules.h: Accept, Content-Type, Host, Origin, the =?base64?…?= form)
 * and the SSE stream engine (transport/sse.h) driven by an operation sequence.
 * Invariants: no crash or overread; a decoded header value fits, has its stated length and no
 * NUL; an SSE stream never holds more unread bytes than one event past its cap, hands out
 * exactly what was appended, and rewinds only to events it still has. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/http_rules.h"
#include "transport/sse.h"

static void rules(const char *s) {
  static const char *const origins[] = {"https://app.example"};
  static const char *const hosts[] = {"mcp.example", "api.example:8443"};
  http_origin_policy p = {.origins = origins, .n_origins = 1, .hosts = hosts, .n_hosts = 2};
  (void)http_accepts(s, "application/json");
  (void)http_accepts(s, "text/event-stream");
  (void)http_content_type_is_json(s);
  (void)http_host_allowed(&p, s);
  (void)http_origin_allowed(&p, s);
  (void)http_addr_is_loopback(s);
  char out[64];
  long n = http_header_value_decode(s, out, sizeof out);
  if (n >= 0 && ((size_t)n >= sizeof out || strlen(out) != (size_t)n)) abort();
  uint32_t no;
  uint64_t seq;
  (void)sse_event_id_parse(s, &no, &seq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* strings: the input split at NUL bytes */
  char *copy = malloc(size + 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  copy[size] = 0;
  for (size_t i = 0; i <= size;) {
    rules(copy + i);
    i += strlen(copy + i) + 1;
  }
  free(copy);

  /* SSE: each byte is an operation */
  const size_t cap = 300;
  sse_stream *s = sse_stream_new(7, size > 0 && (data[0] & 1), cap, 200);
  if (!s) return 0;
  size_t appended = 0, read = 0;
  bool replaying = false; /* a rewind may hand back more than the cap until it is drained */
  char buf[512];
  for (size_t i = 1; i < size; i++) {
    uint8_t op = data[i];
    size_t before = sse_stream_unread(s);
    switch (op % 6) {
    case 0:
    case 1: {
      size_t len = (op >> 3) * 7 % 400;
      memset(buf, 'x', len);
      if (sse_stream_event(s, buf, len) == 0) appended += sse_stream_unread(s) - before;
      break;
    }
    case 2:
      if (sse_stream_prime(s) == 0) appended += sse_stream_unread(s) - before;
      break;
    case 3:
      if (sse_stream_comment(s) == 0) appended += sse_stream_unread(s) - before;
      break;
    case 4: {
      size_t k = sse_stream_read(s, buf, (op >> 3) + 1);
      read += k;
      break;
    }
    case 5: {
      uint64_t seq = op >> 3;
      if (seq > sse_stream_last_seq(s) && sse_stream_rewind(s, seq) == 0) abort(); /* never seen */
      if (sse_stream_rewind(s, seq) == 0) { /* replay: resync the count */
        appended = read + sse_stream_unread(s);
        replaying = true;
      }
      break;
    }
    }
    if (sse_stream_unread(s) == 0) replaying = false;
    if (!replaying && sse_stream_unread(s) > cap + 500) abort(); /* one event past the cap at most */
    if (appended - read != sse_stream_unread(s)) abort();
  }
  sse_stream_free(s);
  return 0;
}
