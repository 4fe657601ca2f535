/* pyjson.h — JSON text exactly as Python's json.dumps writes it, for the two formats the
 * Python services store and compare byte for byte (p2p_tasks_spec.md §5.2, §6, §12.27):
 *
 *   PYJSON_PY_DEFAULT  json.dumps(x, sort_keys=True): ", " and ": " separators,
 *                      ensure_ascii=True (\uXXXX, lower-case hex, surrogate pairs).
 *   PYJSON_COMPACT_UTF8 json.dumps(x, sort_keys=True, separators=(",",":"),
 *                      ensure_ascii=False): cache_store.py records.
 *
 * Floats use Python's repr (shortest round-trip digits; exponent form below 1e-4 and from
 * 1e16). Object keys are sorted by code point (= UTF-8 byte order). Pure functions,
 * thread-safe; output goes to a caller-owned bounded buf (-E2BIG past its max). */
#ifndef PEERMCP_STORE_PYJSON_H
#define PEERMCP_STORE_PYJSON_H

#include <jansson.h>

#include "util/buf.h"

typedef enum { PYJSON_PY_DEFAULT = 0, PYJSON_COMPACT_UTF8 = 1 } pyjson_style;

/* Appends the text of v to out (no NUL). 0, -E2BIG, -ENOMEM, -EINVAL (NaN/Inf, depth > 64). */
int pyjson_dump(const json_t *v, pyjson_style style, buf *out) __attribute__((warn_unused_result));
/* Convenience: a malloc'd NUL-terminated string (caller frees) or NULL with *rc set. */
char *pyjson_dumps(const json_t *v, pyjson_style style, size_t max, int *rc);
/* Python repr(float) of d into out (>= 32 bytes). d must be finite. */
void pyjson_float_repr(double d, char out[32]);
/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int pyjson_utf8_valid(const char *s, size_t n);

#endif
