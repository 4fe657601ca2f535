/* jwrite.c — streaming JSON writer and number formatting (see jwrite.h). */
#include "util/jwrite.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/alloc.h"
#include "util/check.h"

void jwrite_init(jwrite *w, size_t max, unsigned flags) {
  memset(w, 0, sizeof *w);
  w->max = max;
  w->flags = flags;
}

void jwrite_free(jwrite *w) {
  free(w->p);
  w->p = NULL;
  w->len = w->cap = 0;
}

int jwrite_grow(jwrite *w, size_t n) {
  if (w->err) return w->err;
  CHECK(w->len <= w->cap && w->len <= w->max);
  if (n > w->max - w->len) return w->err = -E2BIG;
  size_t need = w->len + n;
  if (need <= w->cap) return 0;
  size_t cap = w->cap ? w->cap : 256;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap > w->max) cap = w->max > need ? w->max : need;
  char *p = realloc(w->p, cap + 1); /* +1: jwrite_take adds a NUL */
  if (!p) {
    alloc_oom_set(true); /* the unit of work's watch sees it, as for jansson's own (util/alloc.h) */
    return w->err = -ENOMEM;
  }
  w->p = p;
  w->cap = cap;
  return 0;
}

char *jwrite_take(jwrite *w, size_t *len) {
  if (len) *len = 0;
  if (w->err) return NULL;
  if (!w->p && jwrite_grow(w, 1) != 0) return NULL;
  char *p = w->p;
  p[w->len] = 0; /* the +1 of jwrite_grow */
  if (len) *len = w->len;
  w->p = NULL;
  w->len = w->cap = 0;
  return p;
}

/* ---------- strings ---------- */

/* Bits: K_PLAIN_ANY = copied as is (0: needs an escape — ", \, control characters); K_PLAIN_ASCII
 * = the same under JWRITE_ASCII, where bytes >= 0x80 are escaped too. A run of plain bytes costs
 * one table test a byte in either mode. */
#define K_PLAIN_ANY 1u
#define K_PLAIN_ASCII 2u
#define PA (K_PLAIN_ANY | K_PLAIN_ASCII)
static const unsigned char k_plain[256] = {
    ['\x20'] = PA, ['!'] = PA, ['#'] = PA, ['$'] = PA, ['%'] = PA, ['&'] = PA, ['\''] = PA, ['('] = PA, [')'] = PA,
    ['*'] = PA, ['+'] = PA, [','] = PA, ['-'] = PA, ['.'] = PA, ['/'] = PA, ['0'] = PA, ['1'] = PA, ['2'] = PA,
    ['3'] = PA, ['4'] = PA, ['5'] = PA, ['6'] = PA, ['7'] = PA, ['8'] = PA, ['9'] = PA, [':'] = PA, [';'] = PA,
    ['<'] = PA, ['='] = PA, ['>'] = PA, ['?'] = PA, ['@'] = PA, ['A'] = PA, ['B'] = PA, ['C'] = PA, ['D'] = PA,
    ['E'] = PA, ['F'] = PA, ['G'] = PA, ['H'] = PA, ['I'] = PA, ['J'] = PA, ['K'] = PA, ['L'] = PA, ['M'] = PA,
    ['N'] = PA, ['O'] = PA, ['P'] = PA, ['Q'] = PA, ['R'] = PA, ['S'] = PA, ['T'] = PA, ['U'] = PA, ['V'] = PA,
    ['W'] = PA, ['X'] = PA, ['Y'] = PA, ['Z'] = PA, ['['] = PA, [']'] = PA, ['^'] = PA, ['_'] = PA, ['`'] = PA,
    ['a'] = PA, ['b'] = PA, ['c'] = PA, ['d'] = PA, ['e'] = PA, ['f'] = PA, ['g'] = PA, ['h'] = PA, ['i'] = PA,
    ['j'] = PA, ['k'] = PA, ['l'] = PA, ['m'] = PA, ['n'] = PA, ['o'] = PA, ['p'] = PA, ['q'] = PA, ['r'] = PA,
    ['s'] = PA, ['t'] = PA, ['u'] = PA, ['v'] = PA, ['w'] = PA, ['x'] = PA, ['y'] = PA, ['z'] = PA, ['{'] = PA,
    ['|'] = PA, ['}'] = PA, ['~'] = PA, ['\x7f'] = PA,
    [0x80] = K_PLAIN_ANY, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
#undef PA

static const char k_hex[] = "0123456789ABCDEF"; /* \u001F, as jansson writes it */

static void put_u_escape(jwrite *w, unsigned cp) {
  char e[6] = {'\\', 'u', k_hex[(cp >> 12) & 15], k_hex[(cp >> 8) & 15], k_hex[(cp >> 4) & 15], k_hex[cp & 15]};
  jwrite_raw(w, e, 6);
}

/* Decodes the UTF-8 sequence at s (n bytes left); its length, or 1 for a bad byte (written as
 * U+FFFD's escape: only reachable for a string that was not valid UTF-8). */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp) {
  unsigned c = s[0];
  size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
  if (!len || len > n) {
    *cp = 0xfffd;
    return 1;
  }
  unsigned v = c & (0x3f >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) {
      *cp = 0xfffd;
      return 1;
    }
    v = (v << 6) | (s[i] & 0x3f);
  }
  *cp = v;
  return len;
}

void jwrite_str_body(jwrite *w, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  bool ascii = w->flags & JWRITE_ASCII;
  while (p < end) {
    const unsigned char *run = p;
    if (ascii)
      while (p < end && (k_plain[*p] & K_PLAIN_ASCII)) p++;
    else
      while (p < end && k_plain[*p]) p++;
    if (p > run) jwrite_raw(w, (const char *)run, (size_t)(p - run));
    if (p == end) break;
    unsigned char c = *p;
    if (c >= 0x80) { /* ASCII mode: \uXXXX, surrogate pairs beyond the BMP */
      unsigned cp;
      p += utf8_decode(p, (size_t)(end - p), &cp);
      if (cp >= 0x10000) {
        cp -= 0x10000;
        put_u_escape(w, 0xd800 | (cp >> 10));
        put_u_escape(w, 0xdc00 | (cp & 0x3ff));
      } else {
        put_u_escape(w, cp);
      }
      continue;
    }
    p++;
    switch (c) {
    case '"': jwrite_lit(w, "\\\""); break;
    case '\\': jwrite_lit(w, "\\\\"); break;
    case '\b': jwrite_lit(w, "\\b"); break;
    case '\f': jwrite_lit(w, "\\f"); break;
    case '\n': jwrite_lit(w, "\\n"); break;
    case '\r': jwrite_lit(w, "\\r"); break;
    case '\t': jwrite_lit(w, "\\t"); break;
    default: put_u_escape(w, c); break;
    }
  }
}

void jwrite_str(jwrite *w, const char *s, size_t n) {
  /* the common case, short and plain, in one copy */
  if (!w->err && n + 2 <= w->cap - w->len) {
    size_t i = 0;
    const unsigned char *u = (const unsigned char *)s;
    if (w->flags & JWRITE_ASCII)
      while (i < n && (k_plain[u[i]] & K_PLAIN_ASCII)) i++;
    else
      while (i < n && k_plain[u[i]]) i++;
    if (i == n) {
      char *o = w->p + w->len;
      o[0] = '"';
      memcpy(o + 1, s, n);
      o[n + 1] = '"';
      w->len += n + 2;
      return;
    }
  }
  jwrite_byte(w, '"');
  jwrite_str_body(w, s, n);
  jwrite_byte(w, '"');
}

/* ---------- numbers ---------- */

/* Digits of v (v > 0) into the end of b; returns where they start. */
static char *u64_digits(char *end, unsigned long long v) {
  char *p = end;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return p;
}

void jwrite_int(jwrite *w, long long v) {
  char b[24];
  char *end = b + sizeof b;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  char *p = u64_digits(end, u);
  if (v < 0) *--p = '-';
  jwrite_raw(w, p, (size_t)(end - p));
}

void jwrite_fixed(jwrite *w, int64_t value, int decimals) {
  char out[JWRITE_NUM_MAX];
  if (decimals < 0) decimals = 0;
  if (decimals > 9) decimals = 9;
  unsigned long long u = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
  unsigned long long scale = 1;
  for (int i = 0; i < decimals; i++) scale *= 10;
  unsigned long long ip = u / scale, fp = u % scale;
  char *end = out + sizeof out;
  char *p = end;
  /* fraction: drop trailing zeros, keep at least one digit (a real stays a real) */
  int fd = decimals;
  while (fd > 1 && fp % 10 == 0) {
    fp /= 10;
    fd--;
  }
  if (decimals == 0) {
    *--p = '0';
  } else {
    for (int i = 0; i < fd; i++) {
      *--p = (char)('0' + fp % 10);
      fp /= 10;
    }
  }
  *--p = '.';
  p = u64_digits(p, ip);
  if (value < 0) *--p = '-';
  jwrite_raw(w, p, (size_t)(end - p));
}

/* strtod in the C locale whatever the process's locale is (a ',' decimal point would turn the
 * round-trip test into nonsense). */
static locale_t g_c_locale;
static pthread_once_t g_c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { g_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static double strtod_c(const char *s) {
  pthread_once(&g_c_locale_once, c_locale_init);
  return g_c_locale ? strtod_l(s, NULL, g_c_locale) : strtod(s, NULL);
}

/* "%.*g" in the C locale: snprintf follows LC_NUMERIC, so a ',' from another locale is put back. */
static int fmt_g(char *out, size_t n, int prec, double v) {
  int len = snprintf(out, n, "%.*g", prec, v);
  for (int i = 0; i < len; i++)
    if (out[i] == ',') out[i] = '.';
  return len;
}

/* The common case without snprintf/strtod: a value of at most 6 decimals (every wall-clock
 * timestamp: clock_wall_s has microsecond resolution) with 1e-4 <= |v| < 2^33. There, a double's
 * spacing is below 1e-6, so at most one multiple of 1e-6 reads back as v; m/1e6 is correctly
 * rounded (m < 2^53 and 1e6 are exact) exactly as strtod rounds the decimal, so when it equals v
 * the digits of m, trailing zeros dropped, are the shortest form — the same text the %.15g..%.17g
 * search below prints (no exponent in this range). Returns 0 when v is not such a value. */
static size_t fmt_micros(char out[JWRITE_NUM_MAX], double v) {
  double a = fabs(v);
  if (!(a >= 1e-4 && a < 8589934592.0)) return 0;
  long long m = llround(a * 1e6);
  if ((double)m / 1e6 != a) return 0;
  char tmp[32], *end = tmp + sizeof tmp, *p;
  long long ip = m / 1000000, fp = m % 1000000;
  int fd = 6;
  while (fp % 10 == 0) { /* fp != 0: v is not an integer */
    fp /= 10;
    fd--;
  }
  p = end;
  for (int i = 0; i < fd; i++) {
    *--p = (char)('0' + fp % 10);
    fp /= 10;
  }
  *--p = '.';
  p = u64_digits(p, (unsigned long long)ip);
  if (v < 0) *--p = '-';
  size_t n = (size_t)(end - p);
  memcpy(out, p, n);
  out[n] = 0;
  return n;
}

size_t jwrite_fmt_double(char out[JWRITE_NUM_MAX], double v) {
  if (isnan(v)) return (size_t)snprintf(out, JWRITE_NUM_MAX, "nan");
  if (isinf(v)) return (size_t)snprintf(out, JWRITE_NUM_MAX, v < 0 ? "-inf" : "inf");
  if (v == 0) return (size_t)snprintf(out, JWRITE_NUM_MAX, signbit(v) ? "-0" : "0");
  /* an integer that a double holds exactly prints as one, without going through %g */
  if (v == floor(v) && fabs(v) < 1e15) return (size_t)snprintf(out, JWRITE_NUM_MAX, "%lld", (long long)v);
  size_t fast = fmt_micros(out, v);
  if (fast) return fast;
  /* A normal double: every decimal of at most DBL_DIG (15) digits reads back as a distinct
   * double, so when 15 digits round-trip, the shortest form is those digits with %g's trailing
   * zeros dropped; otherwise 16, else 17 (always enough). A subnormal has fewer bits, so a
   * shorter form may exist ("5e-324"): it is searched from 1 digit up. */
  int len = 0;
  for (int prec = fabs(v) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
    len = fmt_g(out, JWRITE_NUM_MAX, prec, v);
    if (prec == 17 || strtod_c(out) == v) break;
  }
  /* "1e+20" → "1e20", "1e-07" → "1e-7" (jansson does the same) */
  char *e = strchr(out, 'e');
  if (e) {
    char *src = e + 1, *dst = e + 1;
    if (*src == '+') src++;
    else if (*src == '-') *dst++ = *src++;
    while (*src == '0' && src[1]) src++;
    memmove(dst, src, strlen(src) + 1);
    len = (int)strlen(out);
  }
  return (size_t)len;
}

size_t jwrite_fmt_round(char out[JWRITE_NUM_MAX], double v, int decimals) {
  if (!isfinite(v)) return jwrite_fmt_double(out, v);
  if (decimals < 0) decimals = 0;
  if (decimals > 9) decimals = 9;
  if (fabs(v) >= 1e15) return jwrite_fmt_double(out, v); /* beyond the places a double has */
  int len = snprintf(out, JWRITE_NUM_MAX, "%.*f", decimals, v);
  for (int i = 0; i < len; i++)
    if (out[i] == ',') out[i] = '.';
  if (decimals > 0) {
    while (len > 0 && out[len - 1] == '0') len--;
    if (len > 0 && out[len - 1] == '.') len--;
    out[len] = 0;
  }
  if (strcmp(out, "-0") == 0) return (size_t)snprintf(out, JWRITE_NUM_MAX, "0");
  return (size_t)len;
}

void jwrite_double(jwrite *w, double v) {
  if (!isfinite(v)) {
    jwrite_lit(w, "null");
    return;
  }
  char b[JWRITE_NUM_MAX + 2];
  size_t n = jwrite_fmt_double(b, v);
  /* a real must read back as a real: "2" → "2.0" (jansson's rule) */
  if (!strpbrk(b, ".e")) {
    b[n++] = '.';
    b[n++] = '0';
  }
  jwrite_raw(w, b, n);
}

/* ---------- trees ---------- */

static void write_value(jwrite *w, const json_t *v, int depth);

typedef struct sorted_key {
  const char *k;
  size_t n;
  json_t *v;
} sorted_key;

static int key_cmp(const void *a, const void *b) {
  const sorted_key *x = a, *y = b;
  int c = memcmp(x->k, y->k, x->n < y->n ? x->n : y->n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

static void write_sorted(jwrite *w, const json_t *v, int depth) {
  size_t n = json_object_size(v);
  sorted_key stack[32], *keys = n <= 32 ? stack : malloc(n * sizeof *keys);
  if (!keys) {
    w->err = -ENOMEM;
    return;
  }
  size_t i = 0;
  for (void *it = json_object_iter((json_t *)v); it && i < n; it = json_object_iter_next((json_t *)v, it), i++)
    keys[i] = (sorted_key){json_object_iter_key(it), json_object_iter_key_len(it), json_object_iter_value(it)};
  qsort(keys, i, sizeof *keys, key_cmp);
  jwrite_byte(w, '{');
  for (size_t j = 0; j < i; j++) {
    if (j) jwrite_byte(w, ',');
    jwrite_str(w, keys[j].k, keys[j].n);
    jwrite_byte(w, ':');
    write_value(w, keys[j].v, depth + 1);
  }
  jwrite_byte(w, '}');
  if (keys != stack) free(keys);
}

static void write_value(jwrite *w, const json_t *v, int depth) {
  if (w->err) return;
  if (depth > JWRITE_MAX_DEPTH) {
    w->err = -EINVAL;
    return;
  }
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    if (w->flags & JWRITE_SORT_KEYS) {
      write_sorted(w, v, depth);
      break;
    }
    jwrite_byte(w, '{');
    bool first = true;
    for (void *it = json_object_iter((json_t *)v); it; it = json_object_iter_next((json_t *)v, it)) {
      if (!first) jwrite_byte(w, ',');
      first = false;
      jwrite_str(w, json_object_iter_key(it), json_object_iter_key_len(it));
      jwrite_byte(w, ':');
      write_value(w, json_object_iter_value(it), depth + 1);
    }
    jwrite_byte(w, '}');
    break;
  }
  case JSON_ARRAY: {
    jwrite_byte(w, '[');
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++) {
      if (i) jwrite_byte(w, ',');
      write_value(w, json_array_get(v, i), depth + 1);
    }
    jwrite_byte(w, ']');
    break;
  }
  case JSON_STRING: jwrite_str(w, json_string_value(v), json_string_length(v)); break;
  case JSON_INTEGER: jwrite_int(w, json_integer_value(v)); break;
  case JSON_REAL: jwrite_double(w, json_real_value(v)); break;
  case JSON_TRUE: jwrite_lit(w, "true"); break;
  case JSON_FALSE: jwrite_lit(w, "false"); break;
  case JSON_NULL: jwrite_lit(w, "null"); break;
  }
}

void jwrite_json(jwrite *w, const json_t *v) {
  if (!v) {
    if (!w->err) w->err = -EINVAL;
    return;
  }
  write_value(w, v, 0);
}

char *jwrite_dumps(const json_t *v, unsigned flags) {
  jwrite w;
  jwrite_init(&w, SIZE_MAX / 2, flags);
  jwrite_json(&w, v);
  char *s = jwrite_take(&w, NULL);
  jwrite_free(&w);
  return s;
}
