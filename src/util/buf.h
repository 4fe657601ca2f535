/* buf.h — a growable byte buffer born with a maximum size (the curl dynbuf model).
 *
 * Appends that would pass `max` fail with -E2BIG and leave the buffer unchanged, so every
 * place input arrives has a ceiling chosen on purpose. The buffer owns `data`; buf_free()
 * releases it. Data consumed from the front is dropped lazily (an offset), compacting
 * when that pays. Not thread-safe: one owner at a time.
 *
 * The fields are buf.c's own (curl's dynbuf rule): other modules read and change a buffer
 * only through the functions below, so its invariants (off + len <= cap, len <= max) hold
 * wherever it travels. Zero-initialised (or buf_init'ed) buffers hold no allocation. */
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
/* The ceiling given at buf_init (or buf_set_max). */
static inline size_t buf_max(const buf *b) { return b->max; }
/* How many more bytes may be appended before the ceiling. */
static inline size_t buf_room(const buf *b) { return b->max - b->len; }
/* Bytes currently allocated (0 before the first append). */
static inline size_t buf_cap(const buf *b) { return b->cap; }

/* Changes the ceiling; max must be >= buf_len(b). Contents and allocation are kept. */
void buf_set_max(buf *b, size_t max);
/* Keeps the first len bytes and drops the rest (len <= buf_len(b)): undoes appends. */
void buf_truncate(buf *b, size_t len);

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
