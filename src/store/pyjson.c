/* pyjson.c — Python-compatible json.dumps (see pyjson.h). */
#include "store/pyjson.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PYJSON_MAX_DEPTH 64

void pyjson_float_repr(double d, char out[32]) {
  /* Shortest %.{p}e that round-trips, then Python's layout rule: fixed notation when the
   * decimal exponent is in [-4, 16), else d.ddde±XX. */
  char tmp[40];
  int p;
  for (p = 1; p <= 17; p++) {
    snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
    if (strtod(tmp, NULL) == d) break;
  }
  if (p > 17) p = 17;
  /* tmp = [-]D[.DDD]e±XX */
  const char *s = tmp;
  bool neg = false;
  if (*s == '-') { neg = true; s++; }
  char digits[24];
  size_t nd = 0;
  for (; *s && *s != 'e'; s++)
    if (*s != '.') digits[nd++] = *s;
  digits[nd] = 0;
  int exp = atoi(s + 1);
  while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
  char *o = out;
  if (neg) *o++ = '-';
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      *o++ = '0'; *o++ = '.';
      for (int i = 0; i < -exp - 1; i++) *o++ = '0';
      for (size_t i = 0; i < nd; i++) *o++ = digits[i];
    } else {
      for (int i = 0; i <= exp; i++) *o++ = (size_t)i < nd ? digits[i] : '0';
      *o++ = '.';
      if ((size_t)exp + 1 < nd) {
        for (size_t i = (size_t)exp + 1; i < nd; i++) *o++ = digits[i];
      } else {
        *o++ = '0';
      }
    }
    *o = 0;
  } else {
    *o++ = digits[0];
    if (nd > 1) {
      *o++ = '.';
      for (size_t i = 1; i < nd; i++) *o++ = digits[i];
    }
    snprintf(o, 8, "e%c%02u", exp < 0 ? '-' : '+', (unsigned)(exp < 0 ? -exp : exp) % 1000u);
  }
}

int pyjson_utf8_valid(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) { /* ASCII runs 8 bytes at a time */
      uint64_t x;
      memcpy(&x, s + i, 8);
      if (!(x & 0x8080808080808080ull)) { i += 8; continue; }
    }
    unsigned c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (i + len > n) return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    i += len;
  }
  return 1;
}

static int put(buf *o, const char *s) { return buf_append(o, s, strlen(s)); }

static int dump_string(const char *str, size_t n, pyjson_style style, buf *o) {
  const unsigned char *s = (const unsigned char *)str;
  int rc = buf_append_byte(o, '"');
  size_t run = 0; /* start of a run of bytes copied verbatim */
  for (size_t i = 0; i < n && rc == 0;) {
    unsigned c = s[i];
    const char *esc = NULL;
    char ubuf[16];
    size_t adv = 1;
    if (c == '"') esc = "\\\"";
    else if (c == '\\') esc = "\\\\";
    else if (c == '\n') esc = "\\n";
    else if (c == '\r') esc = "\\r";
    else if (c == '\t') esc = "\\t";
    else if (c == '\b') esc = "\\b";
    else if (c == '\f') esc = "\\f";
    else if (c < 0x20 || (c == 0x7f && style == PYJSON_PY_DEFAULT)) { snprintf(ubuf, sizeof ubuf, "\\u%04x", c); esc = ubuf; }
    else if (c >= 0x80 && style == PYJSON_PY_DEFAULT) {
      unsigned cp;
      size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
      if (i + len > n) return -EINVAL;
      cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
      for (size_t k = 1; k < len; k++) cp = (cp << 6) | (s[i + k] & 0x3F);
      if (cp >= 0x10000) {
        unsigned v = cp - 0x10000;
        snprintf(ubuf, sizeof ubuf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        snprintf(ubuf, sizeof ubuf, "\\u%04x", cp);
      }
      esc = ubuf;
      adv = len;
    }
    if (esc) {
      if (i > run) rc = buf_append(o, s + run, i - run);
      if (rc == 0) rc = put(o, esc);
      i += adv;
      run = i;
    } else {
      i++;
    }
  }
  if (rc == 0 && n > run) rc = buf_append(o, s + run, n - run);
  if (rc == 0) rc = buf_append_byte(o, '"');
  return rc;
}

static int key_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int dump_value(const json_t *v, pyjson_style style, buf *o, int depth) {
  if (depth > PYJSON_MAX_DEPTH) return -EINVAL;
  const char *comma = style == PYJSON_PY_DEFAULT ? ", " : ",";
  const char *colon = style == PYJSON_PY_DEFAULT ? ": " : ":";
  char num[40];
  int rc = 0;
  switch (json_typeof(v)) {
  case JSON_NULL: return put(o, "null");
  case JSON_TRUE: return put(o, "true");
  case JSON_FALSE: return put(o, "false");
  case JSON_INTEGER:
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return put(o, num);
  case JSON_REAL: {
    double d = json_real_value(v);
    if (!isfinite(d)) return -EINVAL;
    pyjson_float_repr(d, num);
    return put(o, num);
  }
  case JSON_STRING:
    return dump_string(json_string_value(v), json_string_length(v), style, o);
  case JSON_ARRAY: {
    if ((rc = buf_append_byte(o, '['))) return rc;
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i && (rc = put(o, comma))) return rc;
      if ((rc = dump_value(json_array_get(v, i), style, o, depth + 1))) return rc;
    }
    return buf_append_byte(o, ']');
  }
  case JSON_OBJECT: {
    size_t n = json_object_size(v);
    if (n > buf_max(o)) return -E2BIG; /* each key needs bytes anyway: bounds the key array */
    const char **keys = n ? malloc(n * sizeof *keys) : NULL;
    if (n && !keys) return -ENOMEM;
    size_t k = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) keys[k++] = key;
    if (k > 1) qsort(keys, k, sizeof *keys, key_cmp);
    rc = buf_append_byte(o, '{');
    for (size_t i = 0; i < k && rc == 0; i++) {
      if (i) rc = put(o, comma);
      if (rc == 0) rc = dump_string(keys[i], strlen(keys[i]), style, o);
      if (rc == 0) rc = put(o, colon);
      if (rc == 0) rc = dump_value(json_object_get(v, keys[i]), style, o, depth + 1);
    }
    free(keys);
    if (rc == 0) rc = buf_append_byte(o, '}');
    return rc;
  }
  }
  return -EINVAL;
}

int pyjson_dump(const json_t *v, pyjson_style style, buf *out) {
  if (!v) return -EINVAL;
  return dump_value(v, style, out, 0);
}

char *pyjson_dumps(const json_t *v, pyjson_style style, size_t max, int *rc) {
  buf b;
  buf_init(&b, max);
  int r = pyjson_dump(v, style, &b);
  char *s = NULL;
  if (r == 0) {
    s = buf_take_str(&b, NULL);
    if (!s) r = -ENOMEM;
  }
  buf_free(&b);
  if (rc) *rc = r;
  return s;
}
