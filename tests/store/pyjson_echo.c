/* pyjson_echo.c — reads one JSON value per line on stdin and writes it back as store/pyjson
 * produces it (style 0 = json.dumps(x, sort_keys=True), 1 = the compact UTF-8 cache record
 * style). tests/suites/30-store.sh compares the output with CPython's json.dumps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pyjson.h"

int main(int argc, char **argv) {
  pyjson_style st = argc > 1 && strcmp(argv[1], "1") == 0 ? PYJSON_COMPACT_UTF8 : PYJSON_PY_DEFAULT;
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, stdin)) > 0) {
    json_error_t e;
    json_t *v = json_loadb(line, (size_t)n, JSON_DECODE_ANY, &e);
    if (!v) {
      printf("!parse %s\n", e.text);
      continue;
    }
    int rc;
    char *s = pyjson_dumps(v, st, 1 << 24, &rc);
    if (s) printf("%s\n", s);
    else printf("!dump %d\n", rc);
    free(s);
    json_decref(v);
  }
  free(line);
  return 0;
}
