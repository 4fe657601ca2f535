/* jwrite.h — a streaming JSON writer into a growable buffer born with a ceiling, and the one
 * place numbers are turned into text for JSON and for people.
 *
 * Why not json_dumps(): jansson serialises through a callback per piece, grows a string buffer
 * of its own, prints every real with "%.17g" (0.142 comes out as 0.14199999999999999) and every
 * integer with snprintf; the answer to a tools/call spent more instructions there than in
 * everything else together. Here the fixed parts of a message are written as literals, values
 * of a jansson tree are walked directly, integers are converted by hand, and reals get their
 * shortest form that reads back as the same double (jwrite_double; "%.15g", then 16, then 17
 * digits — the first that round-trips).
 *
 * Output is compact and byte-for-byte what json_dumps(JSON_COMPACT) gives — objects in
 * insertion order, the same string escapes, "/" not escaped, JWRITE_ASCII as JSON_ENSURE_ASCII
 * — except for reals, which are shorter (same value), and "1e20" for 1e+20 as jansson also does.
 *
 * Errors are sticky (curl's dynbuf, SQLite's mallocFailed): once an append fails (-ENOMEM, or
 * -E2BIG past the ceiling) every later append is a no-op and jwrite_error() says why, so a
 * message is written with no check per piece and judged once at the end: whole or not at all.
 * A failed allocation also sets the thread's out-of-memory flag (util/alloc.h), so an
 * alloc_watch around a unit of work sees it like a failed jansson allocation.
 *
 * Ownership: the writer owns its buffer (jwrite_free); jwrite_take hands it over. Not
 * thread-safe: one owner at a time. The number formatters are pure and thread-safe. */
#ifndef PEERMCP_UTIL_JWRITE_H
#define PEERMCP_UTIL_JWRITE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
  JWRITE_ASCII = 1u << 0,     /* escape every non-ASCII character as \uXXXX (JSON_ENSURE_ASCII) */
  JWRITE_SORT_KEYS = 1u << 1, /* object keys in byte order (JSON_SORT_KEYS), not insertion order */
};

#define JWRITE_MAX_DEPTH 2048 /* nesting of a tree (jansson's own limit; also stops a cycle) */

typedef struct jwrite {
  char *p;      /* the bytes written so far: p[0 .. len) (not NUL-terminated) */
  size_t len, cap;
  size_t max;   /* ceiling on len */
  int err;      /* 0, -ENOMEM or -E2BIG: sticky */
  unsigned flags;
} jwrite;

void jwrite_init(jwrite *w, size_t max, unsigned flags);
void jwrite_free(jwrite *w);
/* Empties the writer and clears its error; keeps the allocation. */
static inline void jwrite_reset(jwrite *w) {
  w->len = 0;
  w->err = 0;
}
static inline int jwrite_error(const jwrite *w) { return w->err; }
static inline const char *jwrite_ptr(const jwrite *w) { return w->p; }
static inline size_t jwrite_len(const jwrite *w) { return w->len; }
/* Keeps the first len bytes (len <= jwrite_len): undoes appends. The error stays. */
static inline void jwrite_truncate(jwrite *w, size_t len) {
  if (len < w->len) w->len = len;
}

/* Makes room for n more bytes (0 or the sticky error). */
int jwrite_grow(jwrite *w, size_t n) __attribute__((warn_unused_result));

/* Raw bytes (already JSON). */
static inline void jwrite_raw(jwrite *w, const char *s, size_t n) {
  if (!n || w->err || (n > w->cap - w->len && jwrite_grow(w, n) != 0)) return;
  memcpy(w->p + w->len, s, n);
  w->len += n;
}
#define jwrite_lit(w, s) jwrite_raw((w), (s), sizeof(s) - 1)
static inline void jwrite_byte(jwrite *w, char c) {
  if (w->err || (w->len == w->cap && jwrite_grow(w, 1) != 0)) return;
  w->p[w->len++] = c;
}

/* A JSON string: quotes and escapes. s must be valid UTF-8 when JWRITE_ASCII is set (jansson
 * strings are); without it the bytes are copied as they are, except those JSON escapes. */
void jwrite_str(jwrite *w, const char *s, size_t n);
static inline void jwrite_cstr(jwrite *w, const char *s) { jwrite_str(w, s, strlen(s)); }
/* The same without the quotes: for a JSON text embedded as a string value. */
void jwrite_str_body(jwrite *w, const char *s, size_t n);
/* Length of the longest prefix of the C string s that every writer puts between quotes as it
 * is (printable ASCII, no '"' or '\\'): when s[jwrite_plain_len(s)] == 0 the whole string may be
 * copied into a message without jwrite_str, with or without JWRITE_ASCII. */
static inline size_t jwrite_plain_len(const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = 0;
  while (u[n] >= 0x20 && u[n] < 0x7f && u[n] != '"' && u[n] != '\\') n++;
  return n;
}
void jwrite_int(jwrite *w, long long v);
/* A finite double in its shortest round-trip form, always with a '.' or an exponent ("2.0",
 * "0.142", "1e20"); NaN and infinities, which JSON cannot hold, are written as null. */
void jwrite_double(jwrite *w, double v);
/* value / 10^decimals with exactly that stated precision and trailing zeros dropped
 * (jwrite_fixed(w, 142, 3) → 0.142; 1500 → 1.5; 2000 → 2.0): durations and rates measured in
 * integer units, written as numbers a person reads. 0 <= decimals <= 9. */
void jwrite_fixed(jwrite *w, int64_t value, int decimals);
/* A jansson value (tree). Sets -EINVAL for nesting deeper than JWRITE_MAX_DEPTH. */
void jwrite_json(jwrite *w, const json_t *v);

/* The bytes as a malloc'd NUL-terminated string (the writer is left empty, its allocation gone);
 * NULL when the writer failed or on ENOMEM. */
char *jwrite_take(jwrite *w, size_t *len);

/* json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY [| JSON_ENSURE_ASCII when flags has
 * JWRITE_ASCII]) with jwrite's numbers: a malloc'd string, or NULL when any allocation failed
 * (never damaged text). */
char *jwrite_dumps(const json_t *v, unsigned flags);

/* ---- numbers for people (logs, CLI output) ---- */

#define JWRITE_NUM_MAX 32 /* room for any formatted number and its NUL */
/* The shortest text that reads back as v ("0.457", not 0.45700000000000002; "3" for 3.0);
 * "nan", "inf", "-inf" for those. Returns the length. */
size_t jwrite_fmt_double(char out[JWRITE_NUM_MAX], double v);
/* v rounded to `decimals` places (0..9), trailing zeros and a bare '.' dropped ("12.5", "3").
 * Returns the length. */
size_t jwrite_fmt_round(char out[JWRITE_NUM_MAX], double v, int decimals);

#endif
