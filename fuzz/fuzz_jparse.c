/* fuzz_jparse.c — libFuzzer target: util/jparse against jansson's json_loadb (differential).
 * Invariants: both accept or both refuse the input (jansson's NUL-after-a-number-or-literal
 * quirk aside, jparse.h);
 * when both accept, the trees are equal; jparse never reads past the input; what jparse
 * builds, jwrite writes and jparse reads back to an equal tree (reals in their shortest form
 * included); an -ELOOP refusal only happens for input nested deeper than the limit; with the
 * REJECT_DUPLICATES | ALLOW_NUL flags jparse_flags and jansson's same flags agree too, and so
 * does jparse_scan (no tree) with jparse_flags, its member spans and jparse_find included;
 * jparse_scan_sub's nested members match jparse_members. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/jparse.h"
#include "util/jwrite.h"

#define DEPTH 64
/* "Without the limit": jansson's own ceiling (JSON_PARSER_MAX_DEPTH), which it refuses past —
 * and a recursion much deeper than this overflows the stack of an ASan build (found with
 * 100000: an unclosed input ~4,000 brackets deep, 2026-12-07; fuzz/corpus/jparse/deep-unclosed) */
#define NO_LIMIT 2048

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* a private copy: ASan then catches a read one byte past the end */
  char *p = malloc(size ? size : 1);
  if (!p) return 0;
  memcpy(p, data, size);
  json_t *a = json_loadb(p, size, JSON_DECODE_ANY, NULL);
  json_t *b = NULL, *v0 = NULL;
  int rc = jparse(p, size, DEPTH, &b, NULL);
  if (rc == -ELOOP) { /* refused for depth: parse again without the limit */
    rc = jparse(p, size, NO_LIMIT, &b, NULL);
    if (rc == -ELOOP) rc = -EINVAL; /* deeper than jansson's ceiling: both refuse */
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
    if (jparse(text, strlen(text), NO_LIMIT, &c, NULL) != 0 || !json_equal(b, c)) abort();
    json_decref(c);
    free(text);
  }
  json_decref(a);
  json_decref(b);
  /* the /mcp+p2p/1.0.0 flags (service/frame.c) against jansson's same flags; FOUND_NUL says
   * whether a string value holds a NUL */
  a = json_loadb(p, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
  unsigned found = 0;
  rc = jparse_flags(p, size, NO_LIMIT, JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, &b, NULL, &found);
  if (rc != 0 && rc != -EINVAL && rc != -ELOOP) abort();
  quirk = a && rc == -EINVAL && memchr(p, 0, size);
  if (!quirk && (a != NULL) != (rc == 0)) abort();
  if (a && b && !json_equal(a, b)) abort();
  if (b && (found & JPARSE_FOUND_NUL) && !memmem(p, size, "\\u0000", 6)) abort();
  /* jparse_scan (no tree) gives jparse_flags' verdict and FOUND_NUL; each member's value span
   * parses, and jparse_find finds it */
  {
    jparse_member m[4];
    size_t nm = 0;
    unsigned sf = 0;
    int src = jparse_scan(p, size, NO_LIMIT, JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, m, 4, &nm, NULL, &sf);
    if (src != rc) abort();
    if (rc == 0 && sf != found) abort();
    if (rc == 0 && nm != (json_is_object(b) ? json_object_size(b) : 0)) abort();
    for (size_t i = 0; rc == 0 && i < nm && i < 4; i++) {
      json_t *v = NULL;
      if (jparse_flags(m[i].val, m[i].val_len, NO_LIMIT, JPARSE_ALLOW_NUL, &v, NULL, NULL) != 0) abort();
      if (!m[i].key_escaped && m[i].key_len < 200) {
        char key[256];
        memcpy(key, m[i].key, m[i].key_len);
        key[m[i].key_len] = 0;
        if (!json_equal(v, json_object_get(b, key))) abort();
        const char *fv;
        size_t fn;
        if (jparse_find(p, size, key, &fv, &fn) != 0 || fv != m[i].val || fn != m[i].val_len) abort();
      }
      json_decref(v);
    }
    /* jparse_scan_sub lists the members of the first member's object as jparse_members walks
     * them (the key unescaped and not repeated: with REJECT_DUPLICATES it cannot be) */
    if (rc == 0 && nm > 0 && !m[0].key_escaped && m[0].key_len < 200) {
      char key[256];
      memcpy(key, m[0].key, m[0].key_len);
      key[m[0].key_len] = 0;
      jparse_member tm[4], sm[4], wm[4];
      size_t tn = 0, sn = 0, wn = 0;
      if (jparse_scan_sub(p, size, NO_LIMIT, JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, tm, 4, &tn, key, sm, 4, &sn, NULL,
                          NULL) != 0 || tn != nm)
        abort();
      if (jparse_members(m[0].val, m[0].val_len, wm, 4, &wn) != 0) wn = 0; /* not an object: none listed */
      if (sn != wn) abort();
      for (size_t i = 0; i < sn && i < 4; i++)
        if (sm[i].key != wm[i].key || sm[i].key_len != wm[i].key_len || sm[i].val != wm[i].val ||
            sm[i].val_len != wm[i].val_len || sm[i].key_escaped != wm[i].key_escaped)
          abort();
    }
    if (jparse_scan(p, size, NO_LIMIT, 0, NULL, 0, NULL, NULL, NULL) != jparse(p, size, NO_LIMIT, &v0, NULL)) abort();
    json_decref(v0);
    v0 = NULL;
  }
  json_decref(a);
  json_decref(b);
  free(p);
  return 0;
}
