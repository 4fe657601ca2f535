/* fuzz_jparse.c — libFuzzer target: util/jparse against jansson's json_loadb (differential).
 * Invariants: both accept or both refuse the input (jansson's NUL-after-a-number-or-literal
 * quirk aside, jparse.h);
 * when both accept, the trees are equal; jparse never reads past the input; what jparse
 * builds, jwrite writes and jparse reads back to an equal tree (reals in their shortest form
 * included); an -ELOOP refusal only happens for input nested deeper than the limit; with the
 * REJECT_DUPLICATES | ALLOW_NUL flags jparse_flags and jansson's same flags agree too. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/jparse.h"
#include "util/jwrite.h"

#define DEPTH 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a private copy: ASan then catches a read one byte past the end */
  char *p = malloc(size ? size : 1);
  if (!p) return 0;
  memcpy(p, data, size);
  json_t *a = json_loadb(p, size, JSON_DECODE_ANY, NULL);
  json_t *b = NULL;
  int rc = jparse(p, size, DEPTH, &b, NULL);
  if (rc == -ELOOP) { /* refused for depth: parse again without the limit */
    rc = jparse(p, size, 100000, &b, NULL);
    if (rc == -ELOOP) abort();
  }
  if (rc != 0 && rc != -EINVAL) abort(); /* -ENOMEM does not happen here */
  /* jansson lets a NUL through after a number or literal, also inside arrays ("[3\0]"); a raw
   * NUL is never valid JSON, so jparse refusing such an input is right */
  bool quirk = a && rc == -EINVAL && memchr(p, 0, size);
  if (!quirk && (a != NULL) != (rc == 0)) abort();
  if (a && b && !json_equal(a, b)) abort();
  if (b) {
    char *text = jwrite_dumps(b, 0);
    if (!text) abort();
    json_t *c = NULL;
    if (jparse(text, strlen(text), 100000, &c, NULL) != 0 || !json_equal(b, c)) abort();
    json_decref(c);
    free(text);
  }
  json_decref(a);
  json_decref(b);
  /* the /mcp+p2p/1.0.0 flags (service/frame.c) against jansson's same flags; FOUND_NUL says
   * whether a string value holds a NUL */
  a = json_loadb(p, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
  unsigned found = 0;
  rc = jparse_flags(p, size, 100000, JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, &b, NULL, &found);
  if (rc != 0 && rc != -EINVAL) abort();
  quirk = a && rc == -EINVAL && memchr(p, 0, size);
  if (!quirk && (a != NULL) != (rc == 0)) abort();
  if (a && b && !json_equal(a, b)) abort();
  if (b && (found & JPARSE_FOUND_NUL) && !memmem(p, size, "\\u0000", 6)) abort();
  json_decref(a);
  json_decref(b);
  free(p);
  return 0;
}
