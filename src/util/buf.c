/* buf.c — bounded growable buffer (see buf.h). */
#include "util/buf.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/check.h"

/* buf.h's invariants: live bytes lie inside the allocation and under the ceiling; without an
 * allocation nothing is live. */
static inline void buf_check(const buf *b) {
  CHECK(b->len <= b->max);
  CHECK(b->data ? b->off + b->len <= b->cap : (b->off == 0 && b->len == 0 && b->cap == 0));
  (void)b;
}

void buf_init(buf *b, size_t max) {
  memset(b, 0, sizeof *b);
  b->max = max;
}

void buf_free(buf *b) {
  free(b->data);
  size_t max = b->max;
  memset(b, 0, sizeof *b);
  b->max = max;
}

void buf_set_max(buf *b, size_t max) {
  assert(max >= b->len);
  b->max = max;
}

void buf_truncate(buf *b, size_t len) {
  assert(len <= b->len);
  b->len = len;
  if (!len) b->off = 0;
}

void buf_reset(buf *b) {
  b->off = 0;
  b->len = 0;
}

int buf_reserve(buf *b, size_t n, uint8_t **out) {
  if (n > b->max || b->len > b->max - n) return -E2BIG;
  size_t need = b->len + n;
  if (b->off + need <= b->cap) {
    *out = b->data + b->off + b->len;
    return 0;
  }
  /* Compact first when the dead prefix alone makes room. */
  if (b->off && need <= b->cap) {
    memmove(b->data, b->data + b->off, b->len);
    b->off = 0;
    *out = b->data + b->len;
    return 0;
  }
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap > b->max && need <= b->max) cap = b->max < 256 ? need : b->max;
  if (cap < need) cap = need;
  uint8_t *p = malloc(cap + 1); /* +1 so buf_take_str can always add a NUL */
  if (!p) return -ENOMEM;
  if (b->len) memcpy(p, b->data + b->off, b->len);
  free(b->data);
  b->data = p;
  b->cap = cap;
  b->off = 0;
  *out = p + b->len;
  buf_check(b);
  return 0;
}

void buf_commit(buf *b, size_t n) {
  assert(b->off + b->len + n <= b->cap && b->len + n <= b->max); /* within the last reserve */
  b->len += n;
}

int buf_append(buf *b, const void *p, size_t n) {
  if (n == 0) return 0;
  uint8_t *dst;
  int rc = buf_reserve(b, n, &dst);
  if (rc) return rc;
  memcpy(dst, p, n);
  b->len += n;
  buf_check(b);
  return 0;
}

int buf_append_byte(buf *b, uint8_t c) { return buf_append(b, &c, 1); }

void buf_consume(buf *b, size_t n) {
  assert(n <= b->len);
  if (n >= b->len) {
    b->off = 0;
    b->len = 0;
    return;
  }
  b->off += n;
  b->len -= n;
  buf_check(b);
}

char *buf_take_str(buf *b, size_t *len_out) {
  size_t n = b->len;
  char *s = malloc(n + 1);
  if (!s) return NULL;
  if (n) memcpy(s, b->data + b->off, n);
  s[n] = 0;
  if (len_out) *len_out = n;
  buf_reset(b);
  return s;
}
