/* jparse.c — JSON text → jansson tree (see jparse.h). Recursive descent bounded by max_depth. */
#include "util/jparse.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH_STACK 256

typedef struct ctx {
  const unsigned char *start, *p, *end;
  int depth, max_depth;
  unsigned flags; /* JPARSE_* */
  unsigned found; /* JPARSE_FOUND_* */
  int rc;         /* first error */
  jparse_error *err;
  char *heap; /* scratch for long escaped strings */
  size_t heap_cap;
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
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++;
}

static json_t *parse_value(ctx *c);

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

/* Reads a string at c->p (just past the opening quote). On success *s and *len point at its
 * content: into the input when it has no escape, else into `stack` or c->heap (decoded). */
static bool read_string(ctx *c, char *stack, const char **s, size_t *len, bool nul_ok) {
  const unsigned char *p = c->p, *end = c->end, *begin = p;
  /* pass 1: validate, find the end, and see whether anything needs decoding */
  bool escaped = false;
  size_t out_len = 0;
  for (;;) {
    while (p < end && !k_stop[*p]) p++;
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
    if (!strchr("\"\\/bfnrt", e) || e == 0) return fail(c, -EINVAL, p, "invalid escape in a string"), false;
    p += 2;
    out_len++;
  }
  c->p = p + 1; /* past the closing quote */
  if (!escaped) {
    *s = (const char *)begin;
    *len = (size_t)(p - begin);
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
  bool neg = false, real = false;
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
  if (p < end && *p == '.') {
    real = true;
    p++;
    if (p >= end || *p < '0' || *p > '9') return fail(c, -EINVAL, p, "invalid number");
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    real = true;
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || *p < '0' || *p > '9') return fail(c, -EINVAL, p, "invalid number");
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  c->p = p;
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
    json_t *j = json_integer(v);
    return j ? j : OOM(c);
  }
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
  json_t *j = json_real(d);
  return j ? j : OOM(c);
}

/* ---------- containers ---------- */

static json_t *parse_object(ctx *c) {
  if (++c->depth > c->max_depth) return fail(c, -ELOOP, c->p - 1, "nested too deeply");
  json_t *obj = json_object();
  if (!obj) return OOM(c);
  skip_ws(c);
  if (c->p < c->end && *c->p == '}') {
    c->p++;
    c->depth--;
    return obj;
  }
  for (;;) {
    skip_ws(c);
    if (c->p >= c->end) {
      fail(c, -EINVAL, c->p, "unexpected end of input in an object");
      break;
    }
    if (*c->p != '"') {
      fail(c, -EINVAL, c->p, "string or '}' expected");
      break;
    }
    c->p++;
    char stack[SCRATCH_STACK];
    const char *k;
    size_t klen;
    if (!read_string(c, stack, &k, &klen, false)) break; /* a key is a C string: no NUL */
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
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':') {
      free(kheap);
      fail(c, -EINVAL, c->p, "':' expected");
      break;
    }
    c->p++;
    skip_ws(c);
    json_t *v = parse_value(c);
    if (!v) {
      free(kheap);
      break;
    }
    if ((c->flags & JPARSE_REJECT_DUPLICATES) && json_object_getn(obj, k, klen)) {
      json_decref(v);
      free(kheap);
      fail(c, -EINVAL, c->p, "duplicate object key");
      break;
    }
    int set = json_object_setn_new_nocheck(obj, k, klen, v); /* takes v, also on failure */
    free(kheap);
    if (set != 0) {
      OOM(c);
      break;
    }
    skip_ws(c);
    if (c->p >= c->end) {
      fail(c, -EINVAL, c->p, "unexpected end of input in an object");
      break;
    }
    if (*c->p == ',') {
      c->p++;
      continue;
    }
    if (*c->p == '}') {
      c->p++;
      c->depth--;
      return obj;
    }
    fail(c, -EINVAL, c->p, "',' or '}' expected");
    break;
  }
  json_decref(obj);
  return NULL;
}

static json_t *parse_array(ctx *c) {
  if (++c->depth > c->max_depth) return fail(c, -ELOOP, c->p - 1, "nested too deeply");
  json_t *arr = json_array();
  if (!arr) return OOM(c);
  skip_ws(c);
  if (c->p < c->end && *c->p == ']') {
    c->p++;
    c->depth--;
    return arr;
  }
  for (;;) {
    skip_ws(c);
    json_t *v = parse_value(c);
    if (!v) break;
    if (json_array_append_new(arr, v) != 0) { /* takes v */
      OOM(c);
      break;
    }
    skip_ws(c);
    if (c->p >= c->end) {
      fail(c, -EINVAL, c->p, "unexpected end of input in an array");
      break;
    }
    if (*c->p == ',') {
      c->p++;
      continue;
    }
    if (*c->p == ']') {
      c->p++;
      c->depth--;
      return arr;
    }
    fail(c, -EINVAL, c->p, "',' or ']' expected");
    break;
  }
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
    return parse_object(c);
  case '[':
    c->p++;
    return parse_array(c);
  case '"': {
    c->p++;
    char stack[SCRATCH_STACK];
    const char *s;
    size_t len;
    if (!read_string(c, stack, &s, &len, c->flags & JPARSE_ALLOW_NUL)) return NULL;
    json_t *j = json_stringn_nocheck(s, len);
    return j ? j : OOM(c);
  }
  case 't':
    if (literal(c, "true", 4)) return json_true();
    break;
  case 'f':
    if (literal(c, "false", 5)) return json_false();
    break;
  case 'n':
    if (literal(c, "null", 4)) return json_null();
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
  ctx c = {.start = (const unsigned char *)p, .p = (const unsigned char *)p, .end = (const unsigned char *)p + n,
           .max_depth = max_depth, .flags = flags, .err = err};
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
  if (found) *found = c.found;
  return 0;
}
