/* jparse.c — JSON text → jansson tree (see jparse.h). Recursive descent bounded by max_depth. */
#include "util/jparse.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define SCRATCH_STACK 256
/* scan mode: keys remembered for the duplicate check, all open objects together, and per
 * object; past either, or for a key with escapes, the check falls back to a tree parse */
#define SCAN_KEYS 64
#define SCAN_KEYS_PER_OBJECT 32
/* what parse_value returns in scan mode for a valid value (never dereferenced) */
#define SCAN_OK ((json_t *)&g_scan_ok)
static const int g_scan_ok;

struct scan_key {
  const char *k;
  size_t len;
};

typedef struct ctx {
  const unsigned char *start, *p, *end;
  int depth, max_depth, depth_seen;
  unsigned flags; /* JPARSE_* */
  unsigned found; /* JPARSE_FOUND_* */
  int rc;         /* first error */
  jparse_error *err;
  char *heap; /* scratch for long escaped strings */
  size_t heap_cap;
  /* scan mode (jparse_scan): validate only, build nothing */
  bool scan;
  bool dups_unchecked; /* an object the scan could not check for duplicate keys cheaply */
  size_t nkeys;        /* keys of the open objects (stack), for the duplicate check */
  struct scan_key *keys; /* SCAN_KEYS of them (scan mode only: not in ctx, which is zeroed) */
  jparse_member *members; /* the top-level object's members (scan mode) */
  size_t members_cap, n_members;
  /* scan mode: the members of the object that is the value of top-level key sub_key */
  const char *sub_key;
  size_t sub_key_len;
  jparse_member *sub;
  size_t sub_cap, n_sub;
  bool sub_next;  /* the value about to be scanned is sub_key's */
  bool sub_open;  /* scanning that object's own members (depth 2) */
} ctx;

static void *fail(ctx *c, int rc, const unsigned char *at, const char *text) {
  if (c->rc) return NULL;
  c->rc = rc;
  if (c->err) {
    c->err->position = (size_t)(at - c->start);
    snprintf(c->err->text, sizeof c->err->text, "%s", text);
  }
  return NULL;
}

#define OOM(c) fail((c), -ENOMEM, (c)->p, "out of memory")

static inline void skip_ws(ctx *c) {
  /* compact JSON (what peers send) has none: one test for the common case */
  if (c->p < c->end && *c->p > ' ') return;
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++;
}

static json_t *parse_value(ctx *c);
static json_t *scan_any(ctx *c);
static json_t *scan_object(ctx *c);
static json_t *scan_array(ctx *c);

/* ---------- strings ---------- */

/* Bytes that end a run of plain string content: '"', '\\', controls, and non-ASCII (checked
 * as UTF-8). */
static const unsigned char k_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
    [0x80] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* The one-letter escapes JSON allows after a backslash (\u is read apart). */
static const unsigned char k_simple_escape[256] = {['"'] = 1, ['\\'] = 1, ['/'] = 1, ['b'] = 1,
                                                   ['f'] = 1, ['n'] = 1, ['r'] = 1, ['t'] = 1};

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0];
  size_t n;
  unsigned v;
  if (c >= 0xc2 && c <= 0xdf) n = 2, v = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef) n = 3, v = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4) n = 4, v = c & 0x07;
  else return 0;
  if ((size_t)(end - p) < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    v = (v << 6) | (p[i] & 0x3f);
  }
  if ((n == 3 && (v < 0x800 || (v >= 0xd800 && v <= 0xdfff))) || (n == 4 && (v < 0x10000 || v > 0x10ffff))) return 0;
  return n;
}

static int hex4(const unsigned char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char h = p[i];
    int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xc0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xe0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  o[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

#if defined(__SSE2__)
/* The bits of the 16 bytes at p that end a run of plain string content (k_stop's bytes). */
static inline unsigned stop_mask16(const unsigned char *p) {
  __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
  __m128i s = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                           _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
  return (unsigned)_mm_movemask_epi8(s);
}
#endif

/* The common short string, inline in the callers (no call into read_string): when the first
 * byte within the next 48 that is not plain ASCII content is the closing quote, the string is
 * that span (nothing to validate or decode); *s, *len and c->p as read_string sets them. Near
 * the input's end the last 16 bytes of the input are read, those before c->p masked off (never
 * a byte outside the input). False: read_string decides (escape, control, non-ASCII, a longer
 * string, the input's end, an input shorter than 16 bytes). */
static inline bool quick_string(ctx *c, const char **s, size_t *len) {
#if defined(__SSE2__)
  const unsigned char *p = c->p, *q = p, *end = c->end;
  unsigned m;
  for (;;) {
    ptrdiff_t left = end - q;
    if (left >= 16) {
      m = stop_mask16(q);
      if (m) break;
      if (q - p >= 32) return false; /* a long string: read_string's loop */
      q += 16;
      continue;
    }
    /* fewer than 16 bytes left: the input's last 16 bytes, those before q masked off */
    if (end - c->start < 16 || left <= 0) return false;
    m = stop_mask16(end - 16) >> (16 - left);
    if (!m) return false;
    break;
  }
  q += __builtin_ctz(m);
  if (*q != '"') return false;
  *s = (const char *)p;
  *len = (size_t)(q - p);
  c->p = q + 1;
  return true;
#else
  (void)c, (void)s, (void)len;
  return false;
#endif
}

/* Reads a string at c->p (just past the opening quote). On success *s and *len point at its
 * content: into the input when it has no escape, else into `stack` or c->heap (decoded). */
static bool read_string(ctx *c, char *stack, const char **s, size_t *len, bool nul_ok) {
  const unsigned char *p = c->p, *end = c->end, *begin = p;
  /* pass 1: validate, find the end, and see whether anything needs decoding */
  bool escaped = false;
  size_t out_len = 0;
  for (;;) {
#if defined(__SSE2__)
    /* sixteen bytes at a time (SSE2, baseline on x86-64): a '"', a '\\', a control or a byte
     * >= 0x80 (negative as a signed byte, so "less than 0x20" covers both) sets that byte's bit
     * in `m`; the lowest set bit is the first stop byte */
    while (end - p >= 16) {
      unsigned m = stop_mask16(p);
      /* simple escapes (\n, \", \\ …: text that holds JSON has many) are taken here, from the
       * same sixteen bytes; anything else is looked at below, exactly as before */
      while (m) {
        const unsigned char *sb = p + __builtin_ctz(m); /* the stop byte */
        if (*sb != '\\' || end - sb < 2 || !k_simple_escape[sb[1]]) {
          p = sb;
          goto stopped;
        }
        escaped = true;
        out_len++;
        unsigned off = (unsigned)(sb - p) + 2; /* past the escape's second byte */
        if (off >= 16) {
          p += off;
          goto next16;
        }
        m &= ~0u << off;
      }
      p += 16;
    next16:;
    }
#endif
    /* eight bytes at a time (SWAR): a '"', a '\\', a control or a byte >= 0x80 sets that
     * byte's high bit in `stop`; the lowest set bit is exact (a borrow can only mark bytes after
     * a true stop byte), so on little-endian machines its byte index is where to stop */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (end - p >= 8) {
      uint64_t x;
      memcpy(&x, p, 8);
      const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
      uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
      uint64_t stop = (((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | x) & high;
      if (stop) {
        p += __builtin_ctzll(stop) >> 3;
        goto stopped;
      }
      p += 8;
    }
#endif
    while (p < end && !k_stop[*p]) p++;
  stopped:
    if (p >= end) return fail(c, -EINVAL, p, "unexpected end of input in a string"), false;
    unsigned char ch = *p;
    if (ch == '"') break;
    if (ch < 0x20) return fail(c, -EINVAL, p, "control character in a string"), false;
    if (ch >= 0x80) {
      size_t n = utf8_seq(p, end);
      if (!n) return fail(c, -EINVAL, p, "invalid UTF-8 in a string"), false;
      p += n;
      continue;
    }
    /* a backslash */
    escaped = true;
    if (end - p < 2) return fail(c, -EINVAL, p, "unexpected end of input in a string"), false;
    unsigned char e = p[1];
    if (e == 'u') {
      if (end - p < 6) return fail(c, -EINVAL, p, "unexpected end of input in a \\u escape"), false;
      int cp = hex4(p + 2);
      if (cp < 0) return fail(c, -EINVAL, p, "invalid \\u escape"), false;
      if (cp == 0 && nul_ok) c->found |= JPARSE_FOUND_NUL;
      if (cp == 0 && !nul_ok)
        return fail(c, -EINVAL, p, c->flags & JPARSE_ALLOW_NUL ? "NUL byte in object key not supported" : "\\u0000 is not allowed"),
               false;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        int lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
        if (lo < 0xdc00 || lo > 0xdfff) return fail(c, -EINVAL, p, "invalid Unicode surrogate pair"), false;
        p += 12;
        out_len += 4;
      } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        return fail(c, -EINVAL, p, "invalid Unicode surrogate pair"), false;
      } else {
        p += 6;
        out_len += cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
      }
      continue;
    }
    if (!k_simple_escape[e]) return fail(c, -EINVAL, p, "invalid escape in a string"), false;
    p += 2;
    out_len++;
  }
  c->p = p + 1; /* past the closing quote */
  if (!escaped || c->scan) {
    /* scan mode: the raw text (escapes undecoded; the caller knows by whether it is) */
    *s = (const char *)begin;
    *len = (size_t)(p - begin);
    if (escaped) *s = NULL;
    return true;
  }
  /* pass 2: decode. Plain runs are copied; their length counts too. */
  out_len += (size_t)(p - begin); /* an upper bound: escapes counted twice at most */
  char *o = stack;
  if (out_len > SCRATCH_STACK) {
    if (out_len > c->heap_cap) {
      char *h = realloc(c->heap, out_len);
      if (!h) return OOM(c), false;
      c->heap = h;
      c->heap_cap = out_len;
    }
    o = c->heap;
  }
  char *w = o;
  for (const unsigned char *q = begin; q < p;) {
    if (*q != '\\') {
      *w++ = (char)*q++;
      continue;
    }
    unsigned char e = q[1];
    if (e == 'u') {
      unsigned cp = (unsigned)hex4(q + 2);
      if (cp >= 0xd800 && cp <= 0xdbff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + ((unsigned)hex4(q + 8) - 0xdc00);
        q += 12;
      } else {
        q += 6;
      }
      w += put_utf8(w, cp);
      continue;
    }
    char d = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : (char)e;
    *w++ = d;
    q += 2;
  }
  *s = o;
  *len = (size_t)(w - o);
  return true;
}

/* ---------- numbers ---------- */

static locale_t g_c_locale;
static pthread_once_t g_c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { g_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static json_t *parse_number(ctx *c) {
  const unsigned char *p = c->p, *end = c->end, *begin = p;
  bool neg = false, real = false, exp = false;
  if (p < end && *p == '-') {
    neg = true;
    p++;
  }
  if (p >= end || *p < '0' || *p > '9') return fail(c, -EINVAL, p, "invalid number");
  if (*p == '0') {
    p++;
    if (p < end && *p >= '0' && *p <= '9') return fail(c, -EINVAL, p, "invalid number (leading zero)");
  } else {
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  size_t int_digits = (size_t)(p - begin);
  if (p < end && *p == '.') {
    real = true;
    p++;
    if (p >= end || *p < '0' || *p > '9') return fail(c, -EINVAL, p, "invalid number");
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    real = exp = true;
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || *p < '0' || *p > '9') return fail(c, -EINVAL, p, "invalid number");
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  c->p = p;
  if (!real && (size_t)(p - begin) - neg <= 18) {
    /* up to 18 digits: below 10^18, inside json_int_t whatever the sign (no overflow check) */
    if (c->scan) return SCAN_OK;
    json_int_t v = 0;
    for (const unsigned char *q = begin + neg; q < p; q++) v = v * 10 + (*q - '0');
    json_t *j = json_integer(neg ? -v : v);
    return j ? j : OOM(c);
  }
  if (!real) {
    /* accumulate as a negative value so that the most negative json_int_t fits */
    json_int_t v = 0;
    const json_int_t min = LLONG_MIN; /* json_int_t is long long (JSON_INTEGER_IS_LONG_LONG) */
    for (const unsigned char *q = begin + (neg ? 1 : 0); q < p; q++) {
      int d = *q - '0';
      if (v < (min + d) / 10) return fail(c, -EINVAL, begin, neg ? "too big negative integer" : "too big integer");
      v = v * 10 - d;
    }
    if (!neg) {
      if (v == min) return fail(c, -EINVAL, begin, "too big integer");
      v = -v;
    }
    if (c->scan) return SCAN_OK;
    json_t *j = json_integer(v);
    return j ? j : OOM(c);
  }
  if (c->scan && !exp && int_digits < 300) return SCAN_OK; /* below 1e300: cannot overflow, no strtod needed */
  char stack[64];
  size_t n = (size_t)(p - begin);
  char *buf = n < sizeof stack ? stack : malloc(n + 1);
  if (!buf) return OOM(c);
  memcpy(buf, begin, n);
  buf[n] = 0;
  pthread_once(&g_c_locale_once, c_locale_init);
  errno = 0;
  double d = g_c_locale ? strtod_l(buf, NULL, g_c_locale) : strtod(buf, NULL);
  bool overflow = errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL);
  if (buf != stack) free(buf);
  if (overflow) return fail(c, -EINVAL, begin, "real number overflow");
  if (c->scan) return SCAN_OK;
  json_t *j = json_real(d);
  return j ? j : OOM(c);
}

/* ---------- containers ---------- */

/* The steps both modes share (scan_* and parse_* differ only in what they build). */

/* Past an opening bracket: counts the depth (-ELOOP past max_depth, checked as brackets open)
 * and consumes an immediate close. 1: members or elements follow; 0: empty, closed; -1: error. */
static inline int open_container(ctx *c, unsigned char close) {
  if (++c->depth > c->max_depth) return fail(c, -ELOOP, c->p - 1, "nested too deeply"), -1;
  if (c->depth > c->depth_seen) c->depth_seen = c->depth;
  skip_ws(c);
  if (c->p < c->end && *c->p == close) {
    c->p++;
    c->depth--;
    return 0;
  }
  return 1;
}

/* After a member or element: 1 at ',' (another follows), 0 at the closing bracket (consumed,
 * the depth given back), -1 after recording the error. */
static inline int next_or_close(ctx *c, unsigned char close) {
  bool obj = close == '}';
  /* compact JSON (what peers send): the ',' or the bracket comes at once */
  if (c->p >= c->end || (*c->p != ',' && *c->p != close)) skip_ws(c);
  if (c->p >= c->end)
    return fail(c, -EINVAL, c->p, obj ? "unexpected end of input in an object" : "unexpected end of input in an array"), -1;
  if (*c->p == ',') {
    c->p++;
    return 1;
  }
  if (*c->p == close) {
    c->p++;
    c->depth--;
    return 0;
  }
  return fail(c, -EINVAL, c->p, obj ? "',' or '}' expected" : "',' or ']' expected"), -1;
}

/* A member's key and the ':' after it, whitespace around allowed; leaves c->p at the value.
 * k, klen: the key as read_string gives it (into `stack` when decoded; NULL in scan mode when
 * it holds an escape); kraw, kraw_len: its raw text between the quotes. False on an error. */
static inline bool member_key(ctx *c, char *stack, const char **k, size_t *klen, const char **kraw, size_t *kraw_len) {
  /* compact JSON: the quote, and the ':' after the key, come at once (one test each) */
  if (c->p >= c->end || *c->p != '"') {
    skip_ws(c);
    if (c->p >= c->end) return fail(c, -EINVAL, c->p, "unexpected end of input in an object"), false;
    if (*c->p != '"') return fail(c, -EINVAL, c->p, "string or '}' expected"), false;
  }
  c->p++;
  *kraw = (const char *)c->p;
  if (!quick_string(c, k, klen) && !read_string(c, stack, k, klen, false)) return false; /* a key is a C string: no NUL */
  *kraw_len = (size_t)((const char *)c->p - 1 - *kraw);
  if (c->p >= c->end || *c->p != ':') {
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':') return fail(c, -EINVAL, c->p, "':' expected"), false;
  }
  c->p++;
  skip_ws(c);
  return true;
}

/* Whether key k (klen bytes, unescaped) repeats one of the open object's keys kept on c->keys
 * since kbase; else keeps it (while there is room: false with *room cleared when there is not).
 * *bloom (the object's own, zero when it opens) has one bit per key kept, chosen by its length
 * and its first and last bytes: a key whose bit is clear repeats none of them and is kept
 * without a compare; only when the bit is set are the kept keys compared (same length, then
 * the bytes). Every kept key still sets its bit, so a repeat is always compared. */
static inline unsigned key_bit(const char *k, size_t klen) {
  /* k is a raw key in the input, between its quotes: k[0] and k[-1 + klen] are readable even
   * for an empty key (the closing and the opening quote) */
  return (unsigned)(klen * 7u + (unsigned char)k[0] * 3u + (unsigned char)(k - 1)[klen]) & 63u;
}
static inline size_t keys_limit(size_t kbase) { /* key_seen's room: both ceilings in one figure */
  return kbase + SCAN_KEYS_PER_OBJECT < SCAN_KEYS ? kbase + SCAN_KEYS_PER_OBJECT : SCAN_KEYS;
}
static inline bool key_seen(ctx *c, size_t kbase, size_t klimit, uint64_t *bloom, const char *k, size_t klen,
                            bool *room) {
  size_t nk = c->nkeys;
  if (nk >= klimit) { /* SCAN_KEYS in all, or SCAN_KEYS_PER_OBJECT in this object */
    *room = false;
    return false;
  }
  uint64_t bit = 1ull << key_bit(k, klen);
  struct scan_key *keys = c->keys;
  if (*bloom & bit)
    for (size_t i = kbase; i < nk; i++)
      if (keys[i].len == klen && memcmp(keys[i].k, k, klen) == 0) return true;
  *bloom |= bit;
  keys[nk].k = k;
  keys[nk].len = klen;
  c->nkeys = nk + 1;
  return false;
}

/* Scan mode: one value, with the commonest (a string, a short integer) taken here instead of a
 * call, and an object or array opened from here (no call into scan_any and its switch); the same
 * checks and errors as scan_any's. True when it is valid. */
static inline bool scan_value(ctx *c) {
  const unsigned char *p = c->p;
  if (p < c->end) {
    if (*p == '{') {
      c->p = p + 1;
      return scan_object(c) != NULL;
    }
    if (*p == '[') {
      c->p = p + 1;
      return scan_array(c) != NULL;
    }
    if (*p == '"') {
      c->p = p + 1;
      const char *s;
      size_t len;
      return quick_string(c, &s, &len) || read_string(c, NULL, &s, &len, c->flags & JPARSE_ALLOW_NUL);
    }
    if (*p >= '0' && *p <= '9') {
      /* a non-negative integer of at most 18 digits, as parse_number takes it (no overflow
       * possible); a leading zero, a fraction, an exponent or more digits: parse_number */
      const unsigned char *q = p + 1, *end = c->end;
      if (*p != '0')
        while (q < end && *q >= '0' && *q <= '9') q++;
      if (q - p <= 18 && (q >= end || (*q != '.' && *q != 'e' && *q != 'E' && (*q < '0' || *q > '9')))) {
        c->p = q;
        return true;
      }
    }
  }
  return scan_any(c) != NULL;
}

/* Scan mode: the same grammar and errors as parse_object, no tree. Duplicate keys are found by
 * comparing the raw keys of the object (kept on c->keys); an object with a key holding an escape
 * or with more keys than SCAN_KEYS_PER_OBJECT sets dups_unchecked instead (jparse_scan then
 * decides with a tree parse). */
static json_t *scan_object(ctx *c) {
  bool top = c->depth == 0 && c->members;
  bool sub = c->sub_next; /* this object is sub_key's value: its members are listed */
  c->sub_next = false;
  int st = open_container(c, '}');
  if (st <= 0) return st == 0 ? SCAN_OK : NULL;
  size_t kbase = c->nkeys, klimit = keys_limit(kbase);
  uint64_t bloom = 0; /* key_seen: this object's keys */
  do {
    const char *k, *kraw;
    size_t klen, kraw_len;
    if (!member_key(c, NULL, &k, &klen, &kraw, &kraw_len)) break;
    const char *vstart = (const char *)c->p;
    if (top && c->sub_key && k && klen == c->sub_key_len && memcmp(k, c->sub_key, klen) == 0) {
      c->n_sub = 0; /* a repeated sub_key: the last one's members (none when it is no object) */
      c->sub_next = c->p < c->end && *c->p == '{';
    }
    if (!scan_value(c)) break;
    if (c->flags & JPARSE_REJECT_DUPLICATES) {
      bool room = k != NULL;
      if (room && key_seen(c, kbase, klimit, &bloom, k, klen, &room)) {
        fail(c, -EINVAL, c->p, "duplicate object key");
        break;
      }
      if (!room) c->dups_unchecked = true;
    }
    if (top || sub) {
      jparse_member *list = top ? c->members : c->sub;
      size_t *count = top ? &c->n_members : &c->n_sub;
      if (*count < (top ? c->members_cap : c->sub_cap)) {
        jparse_member *m = &list[*count];
        m->key = kraw;
        m->key_len = kraw_len;
        m->key_escaped = k == NULL;
        m->val = vstart;
        m->val_len = (size_t)((const char *)c->p - vstart);
      }
      (*count)++;
    }
    st = next_or_close(c, '}');
  } while (st == 1);
  c->nkeys = kbase;
  return st == 0 ? SCAN_OK : NULL;
}

static json_t *scan_array(ctx *c) {
  int st = open_container(c, ']');
  while (st == 1) {
    skip_ws(c);
    if (!scan_value(c)) return NULL;
    st = next_or_close(c, ']');
  }
  return st == 0 ? SCAN_OK : NULL;
}

static json_t *parse_object(ctx *c) {
  int st = open_container(c, '}');
  if (st < 0) return NULL;
  json_t *obj = json_object();
  if (!obj) return OOM(c);
  if (st == 0) return obj;
  /* duplicate keys: compared as raw bytes (c->keys, as the scan does) while every key of the
   * object lies unescaped in the input and there are few; after that json_object_getn, which
   * sees every key set so far (a hash lookup per key saved on the common path) */
  size_t kbase = c->nkeys, klimit = keys_limit(kbase);
  uint64_t bloom = 0; /* key_seen: this object's keys */
  bool use_get = !c->keys;
  do {
    char stack[SCRATCH_STACK];
    const char *k, *kraw;
    size_t klen, kraw_len;
    if (!member_key(c, stack, &k, &klen, &kraw, &kraw_len)) break;
    /* a decoded key in the shared heap scratch would be overwritten by the value's strings
     * (one in `stack` or in the input stays put) */
    char *kheap = NULL;
    if (c->heap && k >= c->heap && k < c->heap + c->heap_cap) {
      if (!(kheap = malloc(klen + 1))) {
        OOM(c);
        break;
      }
      memcpy(kheap, k, klen);
      k = kheap;
    }
    json_t *v = parse_value(c);
    if (!v) {
      free(kheap);
      break;
    }
    if (c->flags & JPARSE_REJECT_DUPLICATES) {
      bool in_input = (const unsigned char *)k >= c->start && (const unsigned char *)k < c->end;
      bool room = !use_get && in_input;
      bool dup = room && key_seen(c, kbase, klimit, &bloom, k, klen, &room);
      if (!room && !use_get) use_get = true;
      if (use_get) dup = json_object_getn(obj, k, klen) != NULL;
      if (dup) {
        json_decref(v);
        free(kheap);
        fail(c, -EINVAL, c->p, "duplicate object key");
        break;
      }
    }
    int set = json_object_setn_new_nocheck(obj, k, klen, v); /* takes v, also on failure */
    free(kheap);
    if (set != 0) {
      OOM(c);
      break;
    }
    st = next_or_close(c, '}');
  } while (st == 1);
  c->nkeys = kbase;
  if (st == 0) return obj;
  json_decref(obj);
  return NULL;
}

static json_t *parse_array(ctx *c) {
  int st = open_container(c, ']');
  if (st < 0) return NULL;
  json_t *arr = json_array();
  if (!arr) return OOM(c);
  while (st == 1) {
    skip_ws(c);
    json_t *v = parse_value(c);
    if (!v) break;
    if (json_array_append_new(arr, v) != 0) { /* takes v */
      OOM(c);
      break;
    }
    st = next_or_close(c, ']');
  }
  if (st == 0) return arr;
  json_decref(arr);
  return NULL;
}

static bool literal(ctx *c, const char *word, size_t n) {
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return false;
  c->p += n;
  return true;
}

static json_t *parse_value(ctx *c) {
  if (c->p >= c->end) return fail(c, -EINVAL, c->p, "unexpected end of input");
  switch (*c->p) {
  case '{':
    c->p++;
    return c->scan ? scan_object(c) : parse_object(c);
  case '[':
    c->p++;
    return c->scan ? scan_array(c) : parse_array(c);
  case '"': {
    c->p++;
    char stack[SCRATCH_STACK];
    const char *s;
    size_t len;
    if (!quick_string(c, &s, &len) && !read_string(c, stack, &s, &len, c->flags & JPARSE_ALLOW_NUL)) return NULL;
    if (c->scan) return SCAN_OK;
    json_t *j = json_stringn_nocheck(s, len);
    return j ? j : OOM(c);
  }
  case 't':
    if (literal(c, "true", 4)) return c->scan ? SCAN_OK : json_true();
    break;
  case 'f':
    if (literal(c, "false", 5)) return c->scan ? SCAN_OK : json_false();
    break;
  case 'n':
    if (literal(c, "null", 4)) return c->scan ? SCAN_OK : json_null();
    break;
  default:
    if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) return parse_number(c);
    break;
  }
  return fail(c, -EINVAL, c->p, "invalid token");
}

/* Scan mode's parse_value: the same grammar, checks and errors, without the tree mode's
 * branches and scratch buffer (a smaller frame for every value the scan recurses into). */
static json_t *scan_any(ctx *c) {
  if (c->p >= c->end) return fail(c, -EINVAL, c->p, "unexpected end of input");
  switch (*c->p) {
  case '{':
    c->p++;
    return scan_object(c);
  case '[':
    c->p++;
    return scan_array(c);
  case '"': {
    c->p++;
    const char *s;
    size_t len;
    if (!quick_string(c, &s, &len) && !read_string(c, NULL, &s, &len, c->flags & JPARSE_ALLOW_NUL)) return NULL;
    return SCAN_OK;
  }
  case 't':
    if (literal(c, "true", 4)) return SCAN_OK;
    break;
  case 'f':
    if (literal(c, "false", 5)) return SCAN_OK;
    break;
  case 'n':
    if (literal(c, "null", 4)) return SCAN_OK;
    break;
  default:
    if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) return parse_number(c);
    break;
  }
  return fail(c, -EINVAL, c->p, "invalid token");
}

int jparse(const char *p, size_t n, int max_depth, json_t **out, jparse_error *err) {
  return jparse_flags(p, n, max_depth, 0, out, err, NULL);
}

int jparse_flags(const char *p, size_t n, int max_depth, unsigned flags, json_t **out, jparse_error *err,
                 unsigned *found) {
  *out = NULL;
  if (found) *found = 0;
  struct scan_key keys[SCAN_KEYS]; /* uninitialised: the duplicate check fills it as keys come */
  ctx c = {.start = (const unsigned char *)p, .p = (const unsigned char *)p, .end = (const unsigned char *)p + n,
           .max_depth = max_depth, .flags = flags, .err = err, .keys = keys};
  if (err) {
    err->position = 0;
    err->text[0] = 0;
  }
  skip_ws(&c);
  json_t *v = parse_value(&c);
  if (v) {
    skip_ws(&c);
    if (c.p != c.end) {
      json_decref(v);
      v = NULL;
      fail(&c, -EINVAL, c.p, "end of input expected after the value");
    }
  }
  free(c.heap);
  if (!v) return c.rc ? c.rc : -EINVAL;
  *out = v;
  if (found) *found = c.found | (unsigned)(c.depth_seen < 0xffffff ? c.depth_seen : 0xffffff) << 8;
  return 0;
}

int jparse_scan(const char *p, size_t n, int max_depth, unsigned flags, jparse_member *members, size_t cap,
                size_t *n_members, jparse_error *err, unsigned *found) {
  return jparse_scan_sub(p, n, max_depth, flags, members, cap, n_members, NULL, NULL, 0, NULL, err, found);
}

int jparse_scan_sub(const char *p, size_t n, int max_depth, unsigned flags, jparse_member *members, size_t cap,
                    size_t *n_members, const char *sub_key, jparse_member *sub, size_t sub_cap, size_t *n_sub,
                    jparse_error *err, unsigned *found) {
  if (found) *found = 0;
  if (n_members) *n_members = 0;
  if (n_sub) *n_sub = 0;
  struct scan_key keys[SCAN_KEYS]; /* uninitialised: filled as keys are met */
  ctx c = {.start = (const unsigned char *)p, .p = (const unsigned char *)p, .end = (const unsigned char *)p + n,
           .max_depth = max_depth, .flags = flags, .err = err, .scan = true, .members = members,
           .members_cap = members ? cap : 0, .keys = keys, .sub_key = members && sub ? sub_key : NULL,
           .sub_key_len = sub_key ? strlen(sub_key) : 0, .sub = sub, .sub_cap = sub ? sub_cap : 0};
  if (err) {
    err->position = 0;
    err->text[0] = 0;
  }
  skip_ws(&c);
  bool ok = scan_any(&c) != NULL;
  if (ok) {
    skip_ws(&c);
    if (c.p != c.end) {
      ok = false;
      fail(&c, -EINVAL, c.p, "end of input expected after the value");
    }
  }
  if (!ok) return c.rc ? c.rc : -EINVAL;
  if (c.dups_unchecked) {
    /* a key with an escape, or a large object: the tree parser decides (same verdict, same
     * error text) */
    json_t *v = NULL;
    int rc = jparse_flags(p, n, max_depth, flags, &v, err, NULL);
    json_decref(v);
    if (rc != 0) {
      if (n_members) *n_members = 0;
      return rc;
    }
  }
  if (n_members) *n_members = c.n_members;
  if (n_sub) *n_sub = c.n_sub;
  if (found) *found = c.found | (unsigned)(c.depth_seen < 0xffffff ? c.depth_seen : 0xffffff) << 8;
  return 0;
}

/* Skips one value (at p, no whitespace before it) of text already validated (no checks). */
static const char *skip_string(const char *p, const char *end) { /* p just past the opening quote */
  for (;;) {
    const char *q = memchr(p, '"', (size_t)(end - p));
    if (!q) return end;
    /* escaped when an odd number of backslashes precede it */
    size_t bs = 0;
    while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\') bs++;
    if (!(bs & 1)) return q + 1;
    p = q + 1;
  }
}

/* bytes that matter while skipping a container: quotes and brackets */
static const unsigned char k_struct[256] = {['"'] = 1, ['{'] = 2, ['['] = 2, ['}'] = 3, [']'] = 3};

static const char *skip_valid(const char *p, const char *end) {
  if (p >= end) return end;
  if (*p == '"') return skip_string(p + 1, end);
  if (*p != '{' && *p != '[') {
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') p++;
    return p;
  }
  int depth = 0;
  while (p < end) {
    unsigned char t = k_struct[(unsigned char)*p];
    if (!t) {
      p++;
      continue;
    }
    if (t == 1) {
      p = skip_string(p + 1, end);
      continue;
    }
    p++;
    if (t == 2) depth++;
    else if (--depth == 0) break;
  }
  return p;
}

/* One member of a validated object at *pp (after '{' or a member): its raw key and value
 * spans; *pp moves past it. False at the object's end. */
static bool next_member(const char **pp, const char *end, jparse_member *m) {
  const char *p = *pp;
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ',')) p++;
  if (p >= end || *p != '"') return false; /* '}' */
  const char *k = ++p;
  bool esc = false;
  while (p < end && *p != '"') {
    if (*p == '\\') {
      esc = true;
      p++;
    }
    p++;
  }
  m->key = k;
  m->key_len = (size_t)(p - k);
  m->key_escaped = esc;
  p++;
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t' || *p == ':')) p++;
  m->val = p;
  p = skip_valid(p, end);
  m->val_len = (size_t)(p - m->val);
  *pp = p;
  return true;
}

int jparse_find(const char *obj, size_t n, const char *key, const char **val, size_t *val_len) {
  const char *p = obj, *end = obj + n;
  size_t klen = strlen(key);
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  if (p >= end || *p != '{') return -EINVAL;
  p++;
  jparse_member m;
  while (next_member(&p, end, &m)) {
    bool match;
    if (!m.key_escaped) {
      match = m.key_len == klen && memcmp(m.key, key, klen) == 0;
    } else {
      /* decode it (a key holds no NUL) */
      const char *kend = m.key + m.key_len + 1; /* past the closing quote, as read_string wants */
      ctx c = {.start = (const unsigned char *)m.key, .p = (const unsigned char *)m.key, .end = (const unsigned char *)kend};
      char stack[SCRATCH_STACK];
      const char *d;
      size_t dl;
      match = read_string(&c, stack, &d, &dl, false) && dl == klen && memcmp(d, key, klen) == 0;
      free(c.heap);
    }
    if (match) {
      *val = m.val;
      *val_len = m.val_len;
      return 0;
    }
  }
  return -ENOENT;
}

int jparse_members(const char *obj, size_t n, jparse_member *members, size_t cap, size_t *n_members) {
  const char *p = obj, *end = obj + n;
  *n_members = 0;
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
  if (p >= end || *p != '{') return -EINVAL;
  p++;
  jparse_member m;
  size_t k = 0;
  while (next_member(&p, end, &m)) {
    if (k < cap) members[k] = m;
    k++;
  }
  *n_members = k;
  return 0;
}
