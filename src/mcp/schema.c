/* schema.c — JSON Schema validation of tool arguments (see schema.h for the keyword list).
 *
 * The validator walks schema and instance together, carrying the instance's JSON path for
 * error messages ("$.items[2].name: expected string, got integer"). Recursion is bounded by
 * MCP_SCHEMA_MAX_DEPTH, which also stops $ref cycles. Patterns are ECMA-262 in JSON Schema;
 * we translate the common escapes (\d \w \s, (?: …), \uXXXX) to POSIX ERE and compile with
 * regcomp. Compiled patterns are kept in a small process-wide cache (tool schemas are static),
 * looked up under a mutex; regexec on a shared regex_t is thread-safe in glibc.
 *
 * Defaults: an object property that is absent and whose subschema has "default" gets a deep
 * copy of that default, which is then validated like a given value. Inside anyOf/oneOf the
 * branches are first tried without filling; the branch that matches is then re-applied with
 * filling, so a failed branch never leaves defaults behind. */
#include "mcp/schema.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/check.h"
#include "util/jwrite.h"

#define MCP_SCHEMA_MAX_DEPTH 64
#define MCP_SCHEMA_PATH_MAX 256
#define MCP_SCHEMA_PATTERN_MAX 4096
#define MCP_SCHEMA_REGEX_CACHE 128

/* ---------- regex translation and cache ---------- */

/* JSON Schema patterns work on code points ("." is one character), so regcomp/regexec run in a
 * UTF-8 LC_CTYPE, switched per thread with uselocale() (the process locale is untouched).
 * Without a UTF-8 locale on the system we fall back to bytes. */
static pthread_once_t g_utf8_once = PTHREAD_ONCE_INIT;
static locale_t g_utf8_locale = (locale_t)0;

static void utf8_locale_init(void) {
  static const char *const names[] = {"C.UTF-8", "C.utf8", "en_US.UTF-8"};
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !g_utf8_locale; i++)
    g_utf8_locale = newlocale(LC_CTYPE_MASK, names[i], (locale_t)0);
}

/* Switches this thread to the UTF-8 locale; returns what to restore (0 = nothing). */
static locale_t utf8_enter(void) {
  pthread_once(&g_utf8_once, utf8_locale_init);
  return g_utf8_locale ? uselocale(g_utf8_locale) : (locale_t)0;
}

static void utf8_leave(locale_t old) {
  if (old) uselocale(old);
}

typedef struct {
  char *pattern; /* the schema's pattern text (cache key) */
  regex_t re;
} regex_entry;

static pthread_mutex_t g_re_lock = PTHREAD_MUTEX_INITIALIZER;
static regex_entry g_re_cache[MCP_SCHEMA_REGEX_CACHE];
static size_t g_re_count;

typedef struct {
  char *p;
  size_t len, cap;
  bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 64;
    while (nc < b->len + n + 1) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_putc(sbuf *b, char c) { sb_putn(b, &c, 1); }

static void sb_put_utf8(sbuf *b, unsigned cp) {
  char u[4];
  if (cp < 0x80) {
    u[0] = (char)cp;
    sb_putn(b, u, 1);
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    sb_putn(b, u, 2);
  } else {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    sb_putn(b, u, 3);
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses "\uXXXX" at s (s[0]=='u'); returns code point or -1. */
static int parse_u4(const char *s) {
  int v = 0;
  for (int i = 1; i <= 4; i++) {
    int h = hexval(s[i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

/* Single-character escapes shared by both contexts; returns the char or -1. */
static int simple_escape(char c) {
  switch (c) {
  case 'n': return '\n';
  case 't': return '\t';
  case 'r': return '\r';
  case 'f': return '\f';
  case 'v': return '\v';
  case '0': return '\0';
  default: return -1;
  }
}

/* Translates the contents of an ECMA bracket expression starting after '[' (and '^').
 * POSIX brackets take backslash literally and want ']' first and '-' last, so the members
 * are collected and re-emitted in that order. Returns the index just past ']' or -1. */
static long translate_bracket(const char *s, size_t i, size_t n, sbuf *out, char *why, size_t whylen) {
  sbuf body = {0};
  bool has_rbracket = false, has_dash = false, has_backslash = false;
  bool first = true;
  while (i < n && (s[i] != ']' || first)) {
    if (s[i] == ']' && first) { /* ECMA: "[]" is an empty class; reject (never useful) */
      free(body.p);
      snprintf(why, whylen, "empty character class");
      return -1;
    }
    first = false;
    char c = s[i];
    if (c == '\\' && i + 1 < n) {
      char e = s[i + 1];
      i += 2;
      switch (e) {
      case 'd': sb_puts(&body, "0-9"); continue;
      case 'w': sb_puts(&body, "A-Za-z0-9_"); continue;
      case 's': sb_puts(&body, "[:space:]"); continue;
      case 'D': case 'W': case 'S':
        free(body.p);
        snprintf(why, whylen, "negated class escape \\%c inside [] is not supported", e);
        return -1;
      case ']': has_rbracket = true; continue;
      case '-': has_dash = true; continue;
      case '\\': has_backslash = true; continue;
      case 'u': {
        int cp = parse_u4(s + i - 1);
        if (cp < 0) {
          free(body.p);
          snprintf(why, whylen, "bad \\u escape");
          return -1;
        }
        i += 4;
        if (cp == ']') has_rbracket = true;
        else if (cp == '-') has_dash = true;
        else if (cp == '\\') has_backslash = true;
        else sb_put_utf8(&body, (unsigned)cp);
        continue;
      }
      default: {
        int se = simple_escape(e);
        if (se > 0) sb_putc(&body, (char)se);
        else if (se == 0) {
          free(body.p);
          snprintf(why, whylen, "NUL in pattern is not supported");
          return -1;
        } else sb_putc(&body, e);
        continue;
      }
      }
    }
    if (c == '[' && i + 1 < n && (s[i + 1] == ':' || s[i + 1] == '.' || s[i + 1] == '=')) {
      /* would start a POSIX class: keep '[' literal by placing it alone */
      sb_puts(&body, "[");
      i++;
      continue;
    }
    if (c == '-' && (i + 1 >= n || s[i + 1] == ']' || body.len == 0)) {
      has_dash = true; /* leading or trailing '-' is literal */
      i++;
      continue;
    }
    sb_putc(&body, c);
    i++;
  }
  if (i >= n) {
    free(body.p);
    snprintf(why, whylen, "unterminated character class");
    return -1;
  }
  if (has_rbracket) sb_putc(out, ']');
  if (body.p) sb_putn(out, body.p, body.len);
  if (has_backslash) sb_putc(out, '\\');
  if (has_dash) sb_putc(out, '-');
  sb_putc(out, ']');
  bool oom = body.oom;
  free(body.p);
  if (oom) out->oom = true;
  return (long)(i + 1);
}

/* ECMA-262 pattern → POSIX ERE. Returns a malloc'd string or NULL with a reason (*oom set
 * when the reason is memory). */
static char *pattern_translate(const char *s, size_t n, char *why, size_t whylen, bool *oom) {
  sbuf out = {0};
  sb_puts(&out, "");
  size_t i = 0;
  while (i < n) {
    char c = s[i];
    if (c == '\\') {
      if (i + 1 >= n) {
        snprintf(why, whylen, "trailing backslash");
        goto fail;
      }
      char e = s[i + 1];
      i += 2;
      switch (e) {
      case 'd': sb_puts(&out, "[0-9]"); continue;
      case 'D': sb_puts(&out, "[^0-9]"); continue;
      case 'w': sb_puts(&out, "[A-Za-z0-9_]"); continue;
      case 'W': sb_puts(&out, "[^A-Za-z0-9_]"); continue;
      case 's': sb_puts(&out, "[[:space:]]"); continue;
      case 'S': sb_puts(&out, "[^[:space:]]"); continue;
      case 'b': case 'B': sb_putc(&out, '\\'); sb_putc(&out, e); continue; /* glibc supports */
      case 'u': {
        int cp = parse_u4(s + i - 1);
        if (cp <= 0) {
          snprintf(why, whylen, "bad \\u escape");
          goto fail;
        }
        i += 4;
        if (strchr(".[]()*+?{}|^$\\", cp) && cp < 0x80) {
          sb_putc(&out, '\\');
          sb_putc(&out, (char)cp);
        } else sb_put_utf8(&out, (unsigned)cp);
        continue;
      }
      default:
        if (e >= '1' && e <= '9') {
          snprintf(why, whylen, "backreferences are not supported");
          goto fail;
        }
        {
          int se = simple_escape(e);
          if (se == 0) {
            snprintf(why, whylen, "NUL in pattern is not supported");
            goto fail;
          }
          if (se > 0) {
            sb_putc(&out, (char)se);
            continue;
          }
        }
        if (strchr(".[]()*+?{}|^$\\", e)) {
          sb_putc(&out, '\\');
          sb_putc(&out, e);
        } else if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
          snprintf(why, whylen, "unsupported escape \\%c", e);
          goto fail;
        } else {
          sb_putc(&out, e); /* "\/", "\-", "\:" … are literal */
        }
        continue;
      }
    }
    if (c == '[') {
      sb_putc(&out, '[');
      i++;
      if (i < n && s[i] == '^') {
        sb_putc(&out, '^');
        i++;
      }
      long j = translate_bracket(s, i, n, &out, why, whylen);
      if (j < 0) goto fail;
      i = (size_t)j;
      continue;
    }
    if (c == '(' && i + 1 < n && s[i + 1] == '?') {
      if (i + 2 < n && s[i + 2] == ':') {
        sb_putc(&out, '(');
        i += 3;
        continue;
      }
      snprintf(why, whylen, "lookaround and named groups are not supported");
      goto fail;
    }
    if ((c == '*' || c == '+' || c == '?' || c == '}') && i + 1 < n && s[i + 1] == '?') {
      sb_putc(&out, c); /* lazy quantifier: same match/no-match answer as greedy */
      i += 2;
      continue;
    }
    sb_putc(&out, c);
    i++;
  }
  if (out.oom) {
    snprintf(why, whylen, "out of memory");
    *oom = true;
    goto fail;
  }
  return out.p;
fail:
  free(out.p);
  return NULL;
}

/* 0, -EINVAL (not a pattern we support) or -ENOMEM. */
static int regex_compile(const char *pattern, size_t n, regex_t *re, char *why, size_t whylen) {
  if (n > MCP_SCHEMA_PATTERN_MAX) {
    snprintf(why, whylen, "pattern longer than %d bytes", MCP_SCHEMA_PATTERN_MAX);
    return -EINVAL;
  }
  bool oom = false;
  char *ere = pattern_translate(pattern, n, why, whylen, &oom);
  if (!ere) return oom ? -ENOMEM : -EINVAL;
  locale_t old = utf8_enter();
  int rc = regcomp(re, ere, REG_EXTENDED | REG_NOSUB);
  utf8_leave(old);
  free(ere);
  if (rc != 0) {
    char msg[128];
    regerror(rc, re, msg, sizeof msg);
    snprintf(why, whylen, "%s", msg);
    return rc == REG_ESPACE ? -ENOMEM : -EINVAL;
  }
  return 0;
}

/* Finds or compiles `pattern`. On success *re points into the cache, or to `tmp` (which the
 * caller must regfree) when the cache is full; *owned says which. */
static int regex_get(const char *pattern, size_t n, regex_t *tmp, const regex_t **re, bool *owned, char *why,
                     size_t whylen) {
  pthread_mutex_lock(&g_re_lock);
  CHECK(g_re_count <= MCP_SCHEMA_REGEX_CACHE); /* entries [0, g_re_count) are compiled and kept for good */
  for (size_t i = 0; i < g_re_count; i++) {
    if (strcmp(g_re_cache[i].pattern, pattern) == 0) {
      *re = &g_re_cache[i].re;
      *owned = false;
      pthread_mutex_unlock(&g_re_lock);
      return 0;
    }
  }
  if (g_re_count < MCP_SCHEMA_REGEX_CACHE && strlen(pattern) == n) {
    regex_entry *e = &g_re_cache[g_re_count];
    int rc = regex_compile(pattern, n, &e->re, why, whylen);
    if (rc == 0) {
      e->pattern = strdup(pattern);
      if (!e->pattern) {
        regfree(&e->re);
        pthread_mutex_unlock(&g_re_lock);
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
      }
      g_re_count++;
      *re = &e->re;
      *owned = false;
    }
    pthread_mutex_unlock(&g_re_lock);
    return rc;
  }
  pthread_mutex_unlock(&g_re_lock);
  int rc = regex_compile(pattern, n, tmp, why, whylen);
  if (rc == 0) {
    *re = tmp;
    *owned = true;
  }
  return rc;
}

/* ---------- validation context ---------- */

/* Invariants: path[0..plen) is the NUL-terminated JSON path of the value being validated
 * (plen < sizeof path); a quiet (trial) run fills no defaults, so a branch that fails leaves
 * nothing behind. */
typedef struct {
  const json_t *root; /* for $ref */
  char *err;
  size_t errlen;
  bool fill;  /* insert defaults */
  bool quiet; /* trial run: do not write err */
  bool oom;   /* an allocation failed: the verdict is "out of memory", whatever else was found */
  char path[MCP_SCHEMA_PATH_MAX];
  size_t plen;
} vctx;

static const char *inst_type(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER: return "integer";
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  case JSON_NULL: return "null";
  }
  return "unknown";
}

__attribute__((format(printf, 2, 3))) static int fail(vctx *c, const char *fmt, ...) {
  if (c->quiet || !c->err || c->errlen == 0) return -EINVAL;
  int n = snprintf(c->err, c->errlen, "%s: ", c->path);
  if (n < 0 || (size_t)n >= c->errlen) return -EINVAL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

static bool is_ident(const char *k) {
  if (!*k) return false;
  for (const char *p = k; *p; p++) {
    char ch = *p;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '-' ||
          (p != k && ch >= '0' && ch <= '9')))
      return false;
  }
  return true;
}

/* Appends ".key" / "[\"key\"]" to the path; returns the old length to restore. */
static size_t path_push_key(vctx *c, const char *key) {
  size_t old = c->plen;
  size_t room = sizeof c->path - c->plen;
  int n;
  size_t klen;
  if (is_ident(key) && (klen = strlen(key)) + 1 < room) { /* the hot path: no printf */
    c->path[c->plen] = '.';
    memcpy(c->path + c->plen + 1, key, klen + 1);
    n = (int)(klen + 1);
  } else if (is_ident(key)) n = snprintf(c->path + c->plen, room, ".%s", key);
  else {
    json_t *s = json_string(key);
    char *q = s ? jwrite_dumps(s, 0) : NULL;
    n = snprintf(c->path + c->plen, room, "[%s]", q ? q : "?");
    free(q);
    json_decref(s);
  }
  if (n < 0 || (size_t)n >= room) {
    c->plen = sizeof c->path - 1;
    c->path[c->plen] = 0;
    if (c->plen >= 3) memcpy(c->path + c->plen - 3, "...", 3);
  } else c->plen += (size_t)n;
  return old;
}

static size_t path_push_index(vctx *c, size_t i) {
  size_t old = c->plen;
  size_t room = sizeof c->path - c->plen;
  int n = snprintf(c->path + c->plen, room, "[%zu]", i);
  if (n < 0 || (size_t)n >= room) {
    c->plen = sizeof c->path - 1;
    c->path[c->plen] = 0;
  } else c->plen += (size_t)n;
  return old;
}

static void path_pop(vctx *c, size_t old) {
  CHECK(old <= c->plen && c->plen < sizeof c->path);
  c->plen = old;
  c->path[old] = 0;
}

/* JSON Schema equality: numbers by value (1 == 1.0), containers recursively. */
static bool json_schema_equal(const json_t *a, const json_t *b) {
  if (json_is_number(a) && json_is_number(b)) {
    if (json_is_integer(a) && json_is_integer(b)) return json_integer_value(a) == json_integer_value(b);
    return json_number_value(a) == json_number_value(b);
  }
  if (json_typeof(a) != json_typeof(b)) return false;
  if (json_is_array(a)) {
    if (json_array_size(a) != json_array_size(b)) return false;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!json_schema_equal(json_array_get(a, i), json_array_get(b, i))) return false;
    return true;
  }
  if (json_is_object(a)) {
    if (json_object_size(a) != json_object_size(b)) return false;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
      json_t *w = json_object_get(b, k);
      if (!w || !json_schema_equal(v, w)) return false;
    }
    return true;
  }
  return json_equal((json_t *)a, (json_t *)b);
}

static size_t utf8_codepoints(const char *s, size_t n) {
  size_t cps = 0;
  for (size_t i = 0; i < n; i++)
    if (((unsigned char)s[i] & 0xC0) != 0x80) cps++;
  return cps;
}

static bool type_matches(const char *t, const json_t *v) {
  switch (t[0]) { /* one strcmp by the first letter, not a chain (several per tools/call) */
  case 'o': return strcmp(t, "object") == 0 && json_is_object(v);
  case 'a': return strcmp(t, "array") == 0 && json_is_array(v);
  case 's': return strcmp(t, "string") == 0 && json_is_string(v);
  case 'n':
    if (strcmp(t, "number") == 0) return json_is_number(v);
    return strcmp(t, "null") == 0 && json_is_null(v);
  case 'i':
    if (strcmp(t, "integer") != 0) return false;
    if (json_is_integer(v)) return true;
    if (!json_is_real(v)) return false;
    double d = json_real_value(v);
    return isfinite(d) && d == floor(d);
  case 'b': return strcmp(t, "boolean") == 0 && json_is_boolean(v);
  default: return false;
  }
}

static bool type_known(const char *t) {
  static const char *const k[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
    if (strcmp(t, k[i]) == 0) return true;
  return false;
}

/* Resolves a "#…" JSON pointer against root. NULL when it does not resolve. */
static const json_t *ref_resolve(const json_t *root, const char *ref) {
  if (!ref || ref[0] != '#') return NULL;
  const json_t *cur = root;
  const char *p = ref + 1;
  if (*p == 0) return root;
  if (*p != '/') return NULL;
  char tok[256];
  while (*p == '/') {
    p++;
    size_t n = 0;
    while (*p && *p != '/') {
      char ch = *p++;
      if (ch == '~') {
        if (*p == '0') ch = '~';
        else if (*p == '1') ch = '/';
        else return NULL;
        p++;
      }
      if (n + 1 >= sizeof tok) return NULL;
      tok[n++] = ch;
    }
    tok[n] = 0;
    if (json_is_object(cur)) cur = json_object_get(cur, tok);
    else if (json_is_array(cur)) {
      char *end;
      unsigned long idx = strtoul(tok, &end, 10);
      if (*end || end == tok) return NULL;
      cur = json_array_get(cur, idx);
    } else return NULL;
    if (!cur) return NULL;
  }
  return cur;
}

/* Compares a number instance against a bound; returns <0, 0, >0 like strcmp. */
static int num_cmp(const json_t *v, const json_t *bound) {
  if (json_is_integer(v) && json_is_integer(bound)) {
    json_int_t a = json_integer_value(v), b = json_integer_value(bound);
    return a < b ? -1 : a > b;
  }
  double a = json_number_value(v), b = json_number_value(bound);
  return a < b ? -1 : a > b;
}

static void num_fmt(const json_t *v, char *out, size_t n) {
  if (json_is_integer(v)) snprintf(out, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  else { /* the shortest text that is this double, as the client wrote it: 0.1, not 0.10000000000000001 */
    char b[JWRITE_NUM_MAX];
    jwrite_fmt_double(b, json_real_value(v));
    snprintf(out, n, "%s", b);
  }
}

static int validate(vctx *c, const json_t *schema, json_t *inst, int depth);

/* The keywords of one schema object, found in one pass over its keys: a schema has a few keys
 * and the validator asks for some twenty, so looking each up (a hash of the keyword, a bucket
 * walk) cost more than the validation itself on the hot path (callgrind: ~18 lookups per
 * tools/call). */
typedef struct kwset {
  const json_t *ref, *type, *cnst, *enm, *all_of, *any_of, *one_of;
  const json_t *minimum, *maximum, *excl_min, *excl_max;
  const json_t *min_len, *max_len, *pattern;
  const json_t *props, *required, *addl;
  const json_t *min_items, *max_items, *items;
} kwset;

/* Not done: a schema compiled once at registration (the kwset of each schema object kept), so a
 * tools/call does not iterate the schema's keys again (~1.8 k instructions for a 2-property echo). */
static void kw_scan(const json_t *s, kwset *k) {
  memset(k, 0, sizeof *k);
  for (void *it = json_object_iter((json_t *)s); it; it = json_object_iter_next((json_t *)s, it)) {
    const char *key = json_object_iter_key(it);
    const json_t *v = json_object_iter_value(it);
#define KW(name, field)             \
  if (strcmp(key, name) == 0) {     \
    k->field = v;                   \
    continue;                       \
  }
    switch (key[0]) {
    case '$': KW("$ref", ref) break;
    case 't': KW("type", type) break;
    case 'c': KW("const", cnst) break;
    case 'e': KW("enum", enm) KW("exclusiveMinimum", excl_min) KW("exclusiveMaximum", excl_max) break;
    case 'a': KW("additionalProperties", addl) KW("allOf", all_of) KW("anyOf", any_of) break;
    case 'o': KW("oneOf", one_of) break;
    case 'm':
      KW("minimum", minimum) KW("maximum", maximum) KW("minLength", min_len) KW("maxLength", max_len)
      KW("minItems", min_items) KW("maxItems", max_items) break;
    case 'p': KW("properties", props) KW("pattern", pattern) break;
    case 'r': KW("required", required) break;
    case 'i': KW("items", items) break;
    default: break;
    }
#undef KW
  }
}

/* Tries `schema` on `inst` as a trial: no defaults, no message. */
static bool trial(vctx *c, const json_t *schema, json_t *inst, int depth) {
  bool fill = c->fill, quiet = c->quiet;
  c->fill = false;
  c->quiet = true;
  int rc = validate(c, schema, inst, depth);
  c->fill = fill;
  c->quiet = quiet;
  return rc == 0;
}

static int validate_number(vctx *c, const kwset *s, const json_t *inst) {
  char a[64], b[64];
  const json_t *kw;
  bool excl_min_bool = json_is_true(s->excl_min);
  bool excl_max_bool = json_is_true(s->excl_max);
  if ((kw = s->minimum) && json_is_number(kw)) {
    int r = num_cmp(inst, kw);
    if (r < 0 || (excl_min_bool && r == 0)) {
      num_fmt(inst, a, sizeof a);
      num_fmt(kw, b, sizeof b);
      return fail(c, "%s is less than %s %s", a, excl_min_bool ? "exclusive minimum" : "minimum", b);
    }
  }
  if ((kw = s->maximum) && json_is_number(kw)) {
    int r = num_cmp(inst, kw);
    if (r > 0 || (excl_max_bool && r == 0)) {
      num_fmt(inst, a, sizeof a);
      num_fmt(kw, b, sizeof b);
      return fail(c, "%s is greater than %s %s", a, excl_max_bool ? "exclusive maximum" : "maximum", b);
    }
  }
  if ((kw = s->excl_min) && json_is_number(kw) && num_cmp(inst, kw) <= 0) {
    num_fmt(inst, a, sizeof a);
    num_fmt(kw, b, sizeof b);
    return fail(c, "%s must be greater than %s", a, b);
  }
  if ((kw = s->excl_max) && json_is_number(kw) && num_cmp(inst, kw) >= 0) {
    num_fmt(inst, a, sizeof a);
    num_fmt(kw, b, sizeof b);
    return fail(c, "%s must be less than %s", a, b);
  }
  return 0;
}

static int validate_string(vctx *c, const kwset *s, const json_t *inst) {
  const char *str = json_string_value(inst);
  size_t bytes = json_string_length(inst);
  const json_t *kw;
  kw = s->min_len;
  const json_t *kw2 = s->max_len;
  if ((kw && json_is_integer(kw)) || (kw2 && json_is_integer(kw2))) {
    size_t cps = utf8_codepoints(str, bytes);
    if (kw && json_is_integer(kw) && (json_int_t)cps < json_integer_value(kw))
      return fail(c, "string is shorter than minLength %" JSON_INTEGER_FORMAT " (%zu characters)",
                  json_integer_value(kw), cps);
    if (kw2 && json_is_integer(kw2) && (json_int_t)cps > json_integer_value(kw2))
      return fail(c, "string is longer than maxLength %" JSON_INTEGER_FORMAT " (%zu characters)",
                  json_integer_value(kw2), cps);
  }
  if ((kw = s->pattern) && json_is_string(kw)) {
    const char *pat = json_string_value(kw);
    regex_t tmp;
    const regex_t *re = NULL;
    bool owned = false;
    char why[160];
    int rc = regex_get(pat, json_string_length(kw), &tmp, &re, &owned, why, sizeof why);
    if (rc == -ENOMEM) c->oom = true;
    if (rc != 0) return fail(c, "schema pattern %s cannot be compiled: %s", pat, why);
    regmatch_t m[1];
    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t)bytes;
    locale_t old = utf8_enter();
    int mr = regexec(re, str, 1, m, REG_STARTEND);
    utf8_leave(old);
    if (owned) regfree(&tmp);
    if (mr != 0) return fail(c, "string does not match pattern %s", pat);
  }
  return 0;
}

static int validate_object(vctx *c, const kwset *s, json_t *inst, int depth) {
  const json_t *props = s->props;
  const json_t *req = s->required;
  const json_t *addl = s->addl;
  if (json_is_array(req)) {
    size_t i;
    json_t *r;
    json_array_foreach(req, i, r) {
      if (!json_is_string(r)) continue;
      if (!json_object_get(inst, json_string_value(r))) {
        size_t old = path_push_key(c, json_string_value(r));
        int rc = fail(c, "required property is missing");
        path_pop(c, old);
        return rc;
      }
    }
  }
  if (json_is_object(props)) {
    const char *k;
    json_t *ps;
    json_object_foreach((json_t *)props, k, ps) {
      json_t *v = json_object_get(inst, k);
      json_t *def = !v && c->fill && json_is_object(ps) ? json_object_get(ps, "default") : NULL;
      if (!v && !def) continue; /* absent and nothing to fill: no path to build */
      size_t old = path_push_key(c, k);
      if (!v) {
        json_t *copy = json_deep_copy(def);
        if (!copy || json_object_set_new(inst, k, copy) != 0) {
          path_pop(c, old);
          c->oom = true;
          return fail(c, "out of memory filling defaults");
        }
        v = copy;
      }
      int rc = validate(c, ps, v, depth + 1);
      path_pop(c, old);
      if (rc != 0) return rc;
    }
  }
  if (addl && !json_is_true(addl)) {
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(inst, tmp, k, v) {
      if (json_is_object(props) && json_object_get(props, k)) continue;
      size_t old = path_push_key(c, k);
      int rc;
      if (json_is_false(addl)) rc = fail(c, "unexpected property (additionalProperties is false)");
      else rc = validate(c, addl, v, depth + 1);
      path_pop(c, old);
      if (rc != 0) return rc;
    }
  }
  return 0;
}

static int validate_array(vctx *c, const kwset *s, json_t *inst, int depth) {
  const json_t *kw;
  size_t n = json_array_size(inst);
  if ((kw = s->min_items) && json_is_integer(kw) && (json_int_t)n < json_integer_value(kw))
    return fail(c, "array has %zu items, fewer than minItems %" JSON_INTEGER_FORMAT, n, json_integer_value(kw));
  if ((kw = s->max_items) && json_is_integer(kw) && (json_int_t)n > json_integer_value(kw))
    return fail(c, "array has %zu items, more than maxItems %" JSON_INTEGER_FORMAT, n, json_integer_value(kw));
  if ((kw = s->items) && (json_is_object(kw) || json_is_boolean(kw))) {
    for (size_t i = 0; i < n; i++) {
      size_t old = path_push_index(c, i);
      int rc = validate(c, kw, json_array_get(inst, i), depth + 1);
      path_pop(c, old);
      if (rc != 0) return rc;
    }
  }
  return 0;
}

static int validate(vctx *c, const json_t *schema, json_t *inst, int depth) {
  CHECK(!(c->quiet && c->fill) && c->plen < sizeof c->path && c->path[c->plen] == 0);
  if (depth > MCP_SCHEMA_MAX_DEPTH) return fail(c, "schema nesting deeper than %d", MCP_SCHEMA_MAX_DEPTH);
  if (json_is_true(schema)) return 0;
  if (json_is_false(schema)) return fail(c, "no value is allowed here");
  if (!json_is_object(schema)) return fail(c, "schema is not an object");

  kwset k;
  kw_scan(schema, &k);
  const json_t *kw;
  if ((kw = k.ref) && json_is_string(kw)) {
    const json_t *target = ref_resolve(c->root, json_string_value(kw));
    if (!target) return fail(c, "schema $ref %s does not resolve", json_string_value(kw));
    int rc = validate(c, target, inst, depth + 1);
    if (rc != 0) return rc;
  }

  if ((kw = k.type)) {
    bool ok = false;
    if (json_is_string(kw)) ok = type_matches(json_string_value(kw), inst);
    else if (json_is_array(kw)) {
      size_t i;
      json_t *t;
      json_array_foreach(kw, i, t) {
        if (json_is_string(t) && type_matches(json_string_value(t), inst)) {
          ok = true;
          break;
        }
      }
    }
    if (!ok) {
      char want[128] = "";
      if (json_is_string(kw)) snprintf(want, sizeof want, "%s", json_string_value(kw));
      else {
        size_t i, off = 0;
        json_t *t;
        json_array_foreach(kw, i, t) {
          if (!json_is_string(t) || off >= sizeof want) continue;
          int n = snprintf(want + off, sizeof want - off, "%s%s", i ? " or " : "", json_string_value(t));
          if (n > 0) off += (size_t)n;
        }
      }
      return fail(c, "expected %s, got %s", want, inst_type(inst));
    }
  }

  if ((kw = k.cnst) && !json_schema_equal(kw, inst)) {
    char *d = jwrite_dumps(kw, 0);
    int rc = fail(c, "value must be %.80s", d ? d : "the const value");
    free(d);
    return rc;
  }
  if ((kw = k.enm) && json_is_array(kw)) {
    bool found = false;
    size_t i;
    json_t *e;
    json_array_foreach(kw, i, e) {
      if (json_schema_equal(e, inst)) {
        found = true;
        break;
      }
    }
    if (!found) {
      char *d = jwrite_dumps(kw, 0);
      int rc = fail(c, "value is not one of %.200s", d ? d : "the enum values");
      free(d);
      return rc;
    }
  }

  int rc = 0;
  if (json_is_number(inst)) rc = validate_number(c, &k, inst);
  else if (json_is_string(inst)) rc = validate_string(c, &k, inst);
  else if (json_is_object(inst)) rc = validate_object(c, &k, inst, depth);
  else if (json_is_array(inst)) rc = validate_array(c, &k, inst, depth);
  if (rc != 0) return rc;

  if ((kw = k.all_of) && json_is_array(kw)) {
    size_t i;
    json_t *sub;
    json_array_foreach(kw, i, sub) {
      rc = validate(c, sub, inst, depth + 1);
      if (rc != 0) return rc;
    }
  }
  if ((kw = k.any_of) && json_is_array(kw)) {
    size_t i;
    json_t *sub, *match = NULL;
    json_array_foreach(kw, i, sub) {
      if (trial(c, sub, inst, depth + 1)) {
        match = sub;
        break;
      }
    }
    if (!match) {
      /* report the first branch's reason, which is usually the intended one */
      char first[200] = "";
      if (!c->quiet && json_array_size(kw) > 0) {
        char *saved = c->err;
        size_t savedlen = c->errlen;
        c->err = first;
        c->errlen = sizeof first;
        bool fill = c->fill;
        c->fill = false;
        (void)validate(c, json_array_get(kw, 0), inst, depth + 1);
        c->fill = fill;
        c->err = saved;
        c->errlen = savedlen;
      }
      return fail(c, "value matches none of the anyOf schemas (first: %s)", first);
    }
    if (c->fill && (rc = validate(c, match, inst, depth + 1)) != 0) return rc;
  }
  if ((kw = k.one_of) && json_is_array(kw)) {
    size_t i, count = 0;
    json_t *sub, *match = NULL;
    json_array_foreach(kw, i, sub) {
      if (trial(c, sub, inst, depth + 1)) {
        if (!match) match = sub;
        count++;
      }
    }
    if (count == 0) return fail(c, "value matches none of the oneOf schemas");
    if (count > 1) return fail(c, "value matches %zu of the oneOf schemas, expected exactly one", count);
    if (c->fill && (rc = validate(c, match, inst, depth + 1)) != 0) return rc;
  }
  return 0;
}

/* ---------- schema checking ---------- */

typedef struct {
  const json_t *root;
  char *err;
  size_t errlen;
  bool oom; /* an allocation failed: the verdict is "out of memory" */
  char path[MCP_SCHEMA_PATH_MAX]; /* schema path, "#/properties/x" */
} cctx;

__attribute__((format(printf, 2, 3))) static int cfail(cctx *c, const char *fmt, ...) {
  if (!c->err || c->errlen == 0) return -EINVAL;
  size_t pl = strlen(c->path);
  int n = pl > 96 ? snprintf(c->err, c->errlen, "schema #...%s: ", c->path + pl - 90)
                  : snprintf(c->err, c->errlen, "schema #%s: ", c->path);
  if (n < 0 || (size_t)n >= c->errlen) return -EINVAL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

static size_t cpath_push(cctx *c, const char *a, const char *b) {
  size_t old = strlen(c->path);
  size_t room = sizeof c->path - old;
  int n = b ? snprintf(c->path + old, room, "/%s/%s", a, b) : snprintf(c->path + old, room, "/%s", a);
  if (n < 0 || (size_t)n >= room) c->path[sizeof c->path - 1] = 0;
  return old;
}

static int check(cctx *c, const json_t *s, int depth);

static int check_nonneg_int(cctx *c, const json_t *s, const char *key) {
  const json_t *v = json_object_get(s, key);
  if (v && (!json_is_integer(v) || json_integer_value(v) < 0))
    return cfail(c, "\"%s\" must be a non-negative integer", key);
  return 0;
}

static int check_schema_array(cctx *c, const json_t *s, const char *key, int depth) {
  const json_t *v = json_object_get(s, key);
  if (!v) return 0;
  if (!json_is_array(v) || json_array_size(v) == 0) return cfail(c, "\"%s\" must be a non-empty array", key);
  size_t i;
  json_t *sub;
  json_array_foreach(v, i, sub) {
    char idx[24];
    snprintf(idx, sizeof idx, "%zu", i);
    size_t old = cpath_push(c, key, idx);
    int rc = check(c, sub, depth + 1);
    c->path[old] = 0;
    if (rc != 0) return rc;
  }
  return 0;
}

static int check_schema_map(cctx *c, const json_t *s, const char *key, int depth) {
  const json_t *v = json_object_get(s, key);
  if (!v) return 0;
  if (!json_is_object(v)) return cfail(c, "\"%s\" must be an object", key);
  const char *k;
  json_t *sub;
  json_object_foreach((json_t *)v, k, sub) {
    size_t old = cpath_push(c, key, k);
    int rc = check(c, sub, depth + 1);
    c->path[old] = 0;
    if (rc != 0) return rc;
  }
  return 0;
}

static int check(cctx *c, const json_t *s, int depth) {
  if (depth > MCP_SCHEMA_MAX_DEPTH) return cfail(c, "nesting deeper than %d", MCP_SCHEMA_MAX_DEPTH);
  if (json_is_boolean(s)) return 0;
  if (!json_is_object(s)) return cfail(c, "a schema must be an object or a boolean, got %s", inst_type(s));
  const json_t *v;
  int rc;

  if ((v = json_object_get(s, "type"))) {
    if (json_is_string(v)) {
      if (!type_known(json_string_value(v))) return cfail(c, "unknown type \"%s\"", json_string_value(v));
    } else if (json_is_array(v) && json_array_size(v) > 0) {
      size_t i;
      json_t *t;
      json_array_foreach(v, i, t) {
        if (!json_is_string(t) || !type_known(json_string_value(t)))
          return cfail(c, "\"type\" array must hold known type names");
        for (size_t j = 0; j < i; j++)
          if (json_equal(t, json_array_get(v, j))) return cfail(c, "duplicate type in \"type\"");
      }
    } else return cfail(c, "\"type\" must be a string or a non-empty array of strings");
  }
  if ((rc = check_schema_map(c, s, "properties", depth)) != 0) return rc;
  if ((v = json_object_get(s, "required"))) {
    if (!json_is_array(v)) return cfail(c, "\"required\" must be an array of strings");
    size_t i;
    json_t *r;
    json_array_foreach(v, i, r) if (!json_is_string(r)) return cfail(c, "\"required\" must be an array of strings");
  }
  if ((v = json_object_get(s, "additionalProperties")) && !json_is_boolean(v)) {
    size_t old = cpath_push(c, "additionalProperties", NULL);
    rc = check(c, v, depth + 1);
    c->path[old] = 0;
    if (rc != 0) return rc;
  }
  if ((v = json_object_get(s, "enum")) && (!json_is_array(v) || json_array_size(v) == 0))
    return cfail(c, "\"enum\" must be a non-empty array");
  static const char *const nums[] = {"minimum", "maximum"};
  for (size_t i = 0; i < 2; i++)
    if ((v = json_object_get(s, nums[i])) && !json_is_number(v)) return cfail(c, "\"%s\" must be a number", nums[i]);
  static const char *const excl[] = {"exclusiveMinimum", "exclusiveMaximum"};
  for (size_t i = 0; i < 2; i++)
    if ((v = json_object_get(s, excl[i])) && !json_is_number(v) && !json_is_boolean(v))
      return cfail(c, "\"%s\" must be a number", excl[i]);
  static const char *const cnt[] = {"minLength", "maxLength", "minItems", "maxItems"};
  for (size_t i = 0; i < 4; i++)
    if ((rc = check_nonneg_int(c, s, cnt[i])) != 0) return rc;
  if ((v = json_object_get(s, "pattern"))) {
    if (!json_is_string(v)) return cfail(c, "\"pattern\" must be a string");
    regex_t tmp;
    const regex_t *re;
    bool owned = false;
    char why[160];
    int r = regex_get(json_string_value(v), json_string_length(v), &tmp, &re, &owned, why, sizeof why);
    if (r == -ENOMEM) c->oom = true;
    if (r != 0) return cfail(c, "\"pattern\" %s cannot be compiled: %s", json_string_value(v), why);
    if (owned) regfree(&tmp);
  }
  if ((v = json_object_get(s, "items"))) {
    if (!json_is_object(v) && !json_is_boolean(v)) return cfail(c, "\"items\" must be a schema");
    size_t old = cpath_push(c, "items", NULL);
    rc = check(c, v, depth + 1);
    c->path[old] = 0;
    if (rc != 0) return rc;
  }
  if ((rc = check_schema_array(c, s, "anyOf", depth)) != 0) return rc;
  if ((rc = check_schema_array(c, s, "oneOf", depth)) != 0) return rc;
  if ((rc = check_schema_array(c, s, "allOf", depth)) != 0) return rc;
  if ((rc = check_schema_map(c, s, "$defs", depth)) != 0) return rc;
  if ((rc = check_schema_map(c, s, "definitions", depth)) != 0) return rc;
  if ((v = json_object_get(s, "$ref"))) {
    if (!json_is_string(v)) return cfail(c, "\"$ref\" must be a string");
    if (!ref_resolve(c->root, json_string_value(v)))
      return cfail(c, "\"$ref\" %s does not resolve (only local \"#/…\" references are supported)",
                   json_string_value(v));
  }
  if ((v = json_object_get(s, "default"))) {
    /* a default must itself be valid, or filling it would produce invalid arguments */
    json_t *copy = json_deep_copy(v);
    json_t *bare = json_deep_copy(s);
    if (!copy || !bare) {
      json_decref(copy);
      json_decref(bare);
      c->oom = true;
      return cfail(c, "out of memory");
    }
    json_object_del(bare, "default");
    vctx vc = {.root = c->root, .fill = true, .path = "$"};
    vc.plen = 1;
    char why[256] = "";
    vc.err = why;
    vc.errlen = sizeof why;
    rc = validate(&vc, bare, copy, depth);
    json_decref(bare);
    json_decref(copy);
    if (vc.oom) c->oom = true;
    if (rc != 0) return cfail(c, "\"default\" does not match its schema (%s)", why);
  }
  return 0;
}

/* ---------- keywords (mcp_schema_check_keywords) ---------- */

/* What the validator enforces, and the annotations JSON Schema defines (which it may ignore). */
static const char *const k_enforced[] = {"type", "properties", "required", "additionalProperties", "enum", "const",
                                         "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength",
                                         "maxLength", "pattern", "items", "minItems", "maxItems", "default", "anyOf",
                                         "oneOf", "allOf", "$ref", "$defs", "definitions"};
static const char *const k_annotations[] = {"title", "description", "examples", "deprecated", "readOnly", "writeOnly",
                                            "$comment", "$schema", "$id", "format", "contentMediaType",
                                            "contentEncoding", "contentSchema", "$anchor"};
/* Standard assertions this validator does not enforce: refused rather than silently ignored. */
static const char *const k_unenforced[] = {"multipleOf", "uniqueItems", "patternProperties", "propertyNames",
                                           "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
                                           "dependencies", "if", "then", "else", "not", "contains", "minContains",
                                           "maxContains", "prefixItems", "unevaluatedItems", "unevaluatedProperties",
                                           "additionalItems", "$dynamicRef", "$dynamicAnchor", "$recursiveRef",
                                           "$recursiveAnchor", "$vocabulary"};

static bool in_list(const char *k, const char *const *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(k, v[i]) == 0) return true;
  return false;
}

/* The enforced keyword closest to k (edit distance at most 2), for "did you mean". */
static const char *nearest_keyword(const char *k) {
  const char *best = NULL;
  size_t best_d = 3, n = strlen(k);
  for (size_t w = 0; w < sizeof k_enforced / sizeof k_enforced[0] && n < 40; w++) {
    const char *t = k_enforced[w];
    size_t m = strlen(t);
    if (m >= 40) continue;
    size_t d[41][41];
    for (size_t i = 0; i <= n; i++) d[i][0] = i;
    for (size_t j = 0; j <= m; j++) d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
      for (size_t j = 1; j <= m; j++) {
        size_t cost = k[i - 1] == t[j - 1] ? 0 : 1, a = d[i - 1][j] + 1, b = d[i][j - 1] + 1, c = d[i - 1][j - 1] + cost;
        d[i][j] = a < b ? (a < c ? a : c) : (b < c ? b : c);
      }
    if (d[n][m] < best_d) {
      best_d = d[n][m];
      best = t;
    }
  }
  return best;
}

static int keywords(cctx *c, const json_t *s, int depth);

static int keywords_map(cctx *c, const json_t *v, const char *key, int depth) {
  const char *k;
  json_t *sub;
  if (!json_is_object(v)) return 0;
  json_object_foreach((json_t *)v, k, sub) {
    size_t old = cpath_push(c, key, k);
    int rc = keywords(c, sub, depth + 1);
    c->path[old] = 0;
    if (rc != 0) return rc;
  }
  return 0;
}

static int keywords(cctx *c, const json_t *s, int depth) {
  if (depth > MCP_SCHEMA_MAX_DEPTH || !json_is_object(s)) return 0; /* mcp_schema_check judges those */
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)s, k, v) {
    if (in_list(k, k_annotations, sizeof k_annotations / sizeof k_annotations[0])) continue;
    if (in_list(k, k_unenforced, sizeof k_unenforced / sizeof k_unenforced[0]))
      return cfail(c, "\"%s\" is a JSON Schema keyword peermcp does not enforce; remove it or express the rule with "
                      "the supported keywords",
                   k);
    if (!in_list(k, k_enforced, sizeof k_enforced / sizeof k_enforced[0])) {
      const char *near = nearest_keyword(k);
      if (near) return cfail(c, "unknown keyword \"%s\" (did you mean \"%s\"?)", k, near);
      return cfail(c, "unknown keyword \"%s\"", k);
    }
    int rc = 0;
    if (strcmp(k, "properties") == 0 || strcmp(k, "$defs") == 0 || strcmp(k, "definitions") == 0) {
      rc = keywords_map(c, v, k, depth);
    } else if (strcmp(k, "items") == 0 || strcmp(k, "additionalProperties") == 0) {
      size_t old = cpath_push(c, k, NULL);
      rc = keywords(c, v, depth + 1);
      c->path[old] = 0;
    } else if ((strcmp(k, "anyOf") == 0 || strcmp(k, "oneOf") == 0 || strcmp(k, "allOf") == 0) && json_is_array(v)) {
      size_t i;
      json_t *sub;
      json_array_foreach(v, i, sub) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        size_t old = cpath_push(c, k, idx);
        rc = keywords(c, sub, depth + 1);
        c->path[old] = 0;
        if (rc != 0) break;
      }
    }
    if (rc != 0) return rc;
  }
  return 0;
}

int mcp_schema_check_keywords(const json_t *schema, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  cctx c = {.root = schema, .err = err, .errlen = errlen};
  c.path[0] = 0;
  return keywords(&c, schema, 0);
}

int mcp_schema_check(const json_t *schema, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!schema) {
    if (err && errlen) snprintf(err, errlen, "schema is missing");
    return -EINVAL;
  }
  cctx c = {.root = schema, .err = err, .errlen = errlen};
  c.path[0] = 0;
  int rc = check(&c, schema, 0);
  if (c.oom) {
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  return rc;
}

int mcp_schema_validate(const json_t *schema, json_t *instance, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  if (!schema) {
    if (err && errlen) snprintf(err, errlen, "schema is missing");
    return -EINVAL;
  }
  vctx c = {.root = schema, .err = err, .errlen = errlen, .fill = true};
  strcpy(c.path, "$");
  c.plen = 1;
  if (!instance) return fail(&c, "value is missing");
  int rc = validate(&c, schema, instance, 0);
  if (c.oom) {
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  return rc;
}
