/* transport/sse.c — one SSE stream with a bounded replay window (see sse.h).
 *
 * All bytes live in one array: data[0 .. len) holds, in order, events already read (kept for
 * replay, at most `retain` bytes of them) followed by unread bytes from `rd` on. `evs` records
 * where each id-carrying event starts, so a Last-Event-ID maps to an offset. */
#include "transport/sse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sse_ev {
  uint64_t seq;
  size_t off; /* where the event starts in data */
} sse_ev;

struct sse_stream {
  uint32_t no;
  bool with_ids;
  size_t max_pending, retain;
  char *data;
  size_t len, cap, rd;
  sse_ev *evs;
  size_t nev, evcap;
  uint64_t seq;
};

sse_stream *sse_stream_new(uint32_t no, bool with_ids, size_t max_pending, size_t retain) {
  sse_stream *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->no = no;
  s->with_ids = with_ids;
  s->max_pending = max_pending;
  s->retain = with_ids ? retain : 0;
  return s;
}

void sse_stream_free(sse_stream *s) {
  if (!s) return;
  free(s->data);
  free(s->evs);
  free(s);
}

/* Drops read bytes beyond the replay window; the window always starts at an event. */
static void compact(sse_stream *s) {
  if (s->rd <= s->retain) return;
  size_t want = s->rd - s->retain, drop = s->rd;
  for (size_t k = 0; k < s->nev; k++)
    if (s->evs[k].off >= want && s->evs[k].off <= s->rd) {
      drop = s->evs[k].off;
      break;
    }
  size_t j = 0;
  for (size_t i = 0; i < s->nev; i++)
    if (s->evs[i].off >= drop) s->evs[j++] = (sse_ev){s->evs[i].seq, s->evs[i].off - drop};
  s->nev = j;
  memmove(s->data, s->data + drop, s->len - drop);
  s->len -= drop;
  s->rd -= drop;
}

/* Room for n more bytes. */
static int reserve(sse_stream *s, size_t n) {
  if (s->len + n <= s->cap) return 0;
  compact(s);
  if (s->len + n <= s->cap) return 0;
  size_t cap = s->cap ? s->cap : 1024;
  while (cap < s->len + n) cap *= 2;
  char *d = realloc(s->data, cap);
  if (!d) return -ENOMEM;
  s->data = d;
  s->cap = cap;
  return 0;
}

static int append(sse_stream *s, const char *p, size_t n) {
  int rc = reserve(s, n);
  if (rc != 0) return rc;
  memcpy(s->data + s->len, p, n);
  s->len += n;
  return 0;
}

int sse_stream_event(sse_stream *s, const char *data, size_t len) {
  char head[64];
  int hl;
  if (s->with_ids)
    hl = snprintf(head, sizeof head, "id: %u-%llu\nevent: message\ndata: ", s->no, (unsigned long long)(s->seq + 1));
  else
    hl = snprintf(head, sizeof head, "event: message\ndata: ");
  size_t total = (size_t)hl + len + 2;
  /* one event always fits an empty stream (a large result); past that, unread bytes are capped */
  if (sse_stream_unread(s) > 0 && sse_stream_unread(s) + total > s->max_pending) return -ENOBUFS;
  if (s->with_ids && s->nev == s->evcap) {
    size_t nc = s->evcap ? s->evcap * 2 : 16;
    sse_ev *e = realloc(s->evs, nc * sizeof *e);
    if (!e) return -ENOMEM;
    s->evs = e;
    s->evcap = nc;
  }
  int rc = reserve(s, total); /* may move offsets: take `start` after it */
  if (rc != 0) return rc;
  size_t start = s->len;
  memcpy(s->data + start, head, (size_t)hl);
  memcpy(s->data + start + (size_t)hl, data, len);
  memcpy(s->data + start + (size_t)hl + len, "\n\n", 2);
  s->len += total;
  s->seq++;
  if (s->with_ids) s->evs[s->nev++] = (sse_ev){s->seq, start};
  return 0;
}

int sse_stream_prime(sse_stream *s) {
  if (!s->with_ids) return -EINVAL;
  char b[64];
  int n = snprintf(b, sizeof b, "id: %u-%llu\ndata: \n\n", s->no, (unsigned long long)(s->seq + 1));
  if (sse_stream_unread(s) + (size_t)n > s->max_pending) return -ENOBUFS;
  if (s->nev == s->evcap) {
    size_t nc = s->evcap ? s->evcap * 2 : 16;
    sse_ev *e = realloc(s->evs, nc * sizeof *e);
    if (!e) return -ENOMEM;
    s->evs = e;
    s->evcap = nc;
  }
  int rc = reserve(s, (size_t)n);
  if (rc != 0) return rc;
  size_t start = s->len;
  memcpy(s->data + start, b, (size_t)n);
  s->len += (size_t)n;
  s->seq++;
  s->evs[s->nev++] = (sse_ev){s->seq, start};
  return 0;
}

int sse_stream_retry(sse_stream *s, unsigned ms) {
  char b[32];
  int n = snprintf(b, sizeof b, "retry: %u\n\n", ms);
  if (sse_stream_unread(s) + (size_t)n > s->max_pending) return -ENOBUFS;
  return append(s, b, (size_t)n);
}

int sse_stream_comment(sse_stream *s) {
  if (sse_stream_unread(s) > 0) return 0;
  return append(s, ":\n\n", 3);
}

size_t sse_stream_read(sse_stream *s, char *dst, size_t max) {
  size_t n = s->len - s->rd;
  if (n > max) n = max;
  if (n == 0) return 0; /* data may still be NULL */
  memcpy(dst, s->data + s->rd, n);
  s->rd += n;
  if (s->rd == s->len && s->retain == 0) s->len = s->rd = 0; /* nothing to keep: reuse from the start */
  return n;
}

size_t sse_stream_unread(const sse_stream *s) { return s->len - s->rd; }

int sse_stream_rewind(sse_stream *s, uint64_t seq) {
  if (!s->with_ids) return -EINVAL;
  if (seq == s->seq) { /* the client saw everything: go on from the end */
    s->rd = s->len;
    return 0;
  }
  for (size_t i = 0; i < s->nev; i++) {
    if (s->evs[i].seq == seq) {
      s->rd = i + 1 < s->nev ? s->evs[i + 1].off : s->len;
      /* unread bytes between events (a retry field) after this one are fine to resend */
      return 0;
    }
  }
  return -ENOENT;
}

uint32_t sse_stream_no(const sse_stream *s) { return s->no; }
uint64_t sse_stream_last_seq(const sse_stream *s) { return s->seq; }

bool sse_event_id_parse(const char *id, uint32_t *stream_no, uint64_t *seq) {
  if (!id) return false;
  const char *p = id;
  unsigned long long a = 0, b = 0;
  size_t da = 0, db = 0;
  for (; *p >= '0' && *p <= '9' && da < 10; p++, da++) a = a * 10 + (unsigned)(*p - '0');
  if (da == 0 || *p != '-' || a > UINT32_MAX) return false;
  for (p++; *p >= '0' && *p <= '9' && db < 19; p++, db++) b = b * 10 + (unsigned)(*p - '0');
  if (db == 0 || *p) return false;
  *stream_no = (uint32_t)a;
  *seq = b;
  return true;
}
