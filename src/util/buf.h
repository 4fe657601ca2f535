/* buf.h — a growable byte buffer born with a maximum size (the curl dynbuf model).
 *
 * Appends that would pass `max` fail with -E2BIG and leave the buffer unchanged, so every
 * place input arrives has a ceiling chosen on purpose. The buffer owns `data`; buf_free()
 * releases it. Data consumed from the front is dropped lazily (an offset), compacting
 * when that pays. Not thread-safe: one owner at a time. */
#ifndef PEERMCP_UTIL_BUF_H
#define PEERMCP_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct buf {
  uint8_t *data; /* allocation; live bytes are data[off .. off+len) */
  size_t off;
  size_t len;
  size_t cap;
  size_t max; /* ceiling on len */
} buf;

void buf_init(buf *b, size_t max);
void buf_free(buf *b);
/* Drops all contents, keeps the allocation. */
void buf_reset(buf *b);

static inline uint8_t *buf_ptr(const buf *b) { return b->data ? b->data + b->off : NULL; }
static inline size_t buf_len(const buf *b) { return b->len; }

/* 0, -E2BIG past max, -ENOMEM. */
int buf_append(buf *b, const void *p, size_t n) __attribute__((warn_unused_result));
int buf_append_byte(buf *b, uint8_t c) __attribute__((warn_unused_result));
/* Makes room for n more bytes and returns a pointer to write them to (commit with buf_commit). */
int buf_reserve(buf *b, size_t n, uint8_t **out) __attribute__((warn_unused_result));
void buf_commit(buf *b, size_t n);
/* Removes n bytes from the front (n <= len). */
void buf_consume(buf *b, size_t n);
/* Hands the contents to the caller as a NUL-terminated malloc'd string (caller frees);
 * the buffer is left empty. NULL on ENOMEM. */
char *buf_take_str(buf *b, size_t *len_out);

#endif
