/* unuuid.h — one text normalisation shared by the tests and the fuzz target that compare two
 * answers which differ only in their request ids (tests/mcp/test_envelope.c,
 * tests/service/test_mcpp.c, fuzz/fuzz_mcp_text.c). Header-only so that the fuzz target, which
 * does not link the cmocka support library, can use it too. Test-only. */
#ifndef PEERMCP_TESTS_SUPPORT_UNUUID_H
#define PEERMCP_TESTS_SUPPORT_UNUUID_H

#include <string.h>

/* Replaces each request id (a lower-case UUID, 36 characters) in the NUL-terminated t by "U",
 * in place. */
static inline void ts_unuuid(char *t) {
  static const char pat[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
  char *w = t;
  for (char *p = t; *p;) {
    size_t k = 0;
    while (k < 36 && p[k] && (pat[k] == '-' ? p[k] == '-' : strchr("0123456789abcdef", p[k]) != NULL)) k++;
    if (k == 36) {
      *w++ = 'U';
      p += 36;
    } else {
      *w++ = *p++;
    }
  }
  *w = 0;
}

#endif
