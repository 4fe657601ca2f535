/* bigvalue.c — micro-benchmark: what one large value costs the thread that writes or reads it.
 * A cache.get reply {"ok":true,"key":"big","hit":true,"value":"<N bytes>"} is written on the
 * loop thread (service/frame.c svc_frame_encode → util/jwrite), and an incoming frame that
 * carries one (cache.set) is scanned and parsed there (util/jparse); docs/security.md quotes
 * these figures as the loop time a token holder can make everyone wait per large value.
 *
 *   bigvalue [--bytes N] [--iters K]      (defaults: 1,000,000 bytes, 10 per round)
 *
 * Two values: "ascii" (printable ASCII with a '"' and a '\\' every 19 bytes: escapes to write
 * and to read) and "utf8" (two-byte UTF-8 characters, written as \u escapes: the ASCII-only
 * output the service frames use). For each: jwrite vs jansson's json_dumps (same flags), and
 * jparse vs jansson's json_loadb on the written text. Prints one JSON line per (value, step):
 * ms per operation, the best of 5 rounds of K (the stable figure on a loaded machine). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/jparse.h"
#include "util/jwrite.h"

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef int (*step_fn)(const json_t *v, const char *text, size_t n);

static int do_jwrite(const json_t *v, const char *text, size_t n) {
  (void)text, (void)n;
  jwrite w;
  jwrite_init(&w, (size_t)1 << 31, JWRITE_ASCII);
  jwrite_json(&w, v);
  int rc = jwrite_error(&w);
  jwrite_free(&w);
  return rc;
}
static int do_dumps(const json_t *v, const char *text, size_t n) {
  (void)text, (void)n;
  char *d = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
  int rc = d ? 0 : -1;
  free(d);
  return rc;
}
static int do_jparse(const json_t *v, const char *text, size_t n) {
  (void)v;
  json_t *o = NULL;
  jparse_error err;
  int rc = jparse(text, n, 64, &o, &err);
  json_decref(o);
  return rc;
}
static int do_loadb(const json_t *v, const char *text, size_t n) {
  (void)v;
  json_t *o = json_loadb(text, n, 0, NULL);
  int rc = o ? 0 : -1;
  json_decref(o);
  return rc;
}

static int measure(const char *value, const char *step, step_fn fn, const json_t *v, const char *text, size_t n,
                   int iters, size_t bytes) {
  double best = 1e30;
  for (int r = 0; r < 5; r++) {
    double t0 = now_s();
    for (int i = 0; i < iters; i++)
      if (fn(v, text, n) != 0) {
        fprintf(stderr, "bigvalue: %s %s failed\n", value, step);
        return 1;
      }
    double per = (now_s() - t0) / iters;
    if (per < best) best = per;
  }
  printf("{\"value\":\"%s\",\"bytes\":%zu,\"step\":\"%s\",\"ms\":%.3f}\n", value, bytes, step, best * 1e3);
  return 0;
}

int main(int argc, char **argv) {
  size_t bytes = 1000000;
  int iters = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--bytes")) bytes = strtoul(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
  }
  if (bytes < 2 || bytes > (size_t)1 << 28 || iters < 1) {
    fprintf(stderr, "usage: bigvalue [--bytes N (2..2^28)] [--iters K]\n");
    return 2;
  }
  static const char k_ascii[] = "abcdefgh ijklmn\"op\\";
  char *s = malloc(bytes + 1);
  if (!s) return 1;
  int rc = 0;
  for (int kind = 0; kind < 2 && rc == 0; kind++) {
    const char *name = kind ? "utf8" : "ascii";
    for (size_t i = 0; i < bytes; i++) s[i] = kind ? (char)(i % 2 ? 0xa9 : 0xc3) : k_ascii[i % 19]; /* "é" */
    s[bytes] = 0;
    json_t *v = json_pack("{s:b, s:s, s:b, s:s}", "ok", 1, "key", "big", "hit", 1, "value", s);
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    if (!text) {
      rc = 1;
    } else {
      size_t n = strlen(text);
      rc |= measure(name, "write: util/jwrite", do_jwrite, v, text, n, iters, bytes);
      rc |= measure(name, "write: jansson json_dumps", do_dumps, v, text, n, iters, bytes);
      rc |= measure(name, "parse: util/jparse", do_jparse, v, text, n, iters, bytes);
      rc |= measure(name, "parse: jansson json_loadb", do_loadb, v, text, n, iters, bytes);
    }
    free(text);
    json_decref(v);
  }
  free(s);
  return rc;
}
