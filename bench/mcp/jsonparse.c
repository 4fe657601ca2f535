/* jsonparse.c — micro-benchmark: parsing the MCP request shape with jansson (json_loadb, what
 * peermcp used), peermcp's util/jparse (same jansson tree, own lexer), and — when their
 * development packages are installed (scripts/setup.sh --bench) — the other JSON libraries
 * Debian packages for C: cJSON (libcjson-dev) and json-c (libjson-c-dev). Each parse builds the
 * library's tree and frees it, as a server does once per message.
 *
 *   jsonparse [--iters N] [--lib NAME] [--msg tools_call|tools_call_meta]
 *             NAME: jansson, jparse, cjson, jsonc (default: all libraries, both messages)
 *
 * Prints one JSON line per (library, message): ns per parse (the best of 5 rounds of N parses:
 * on a loaded machine the minimum is the stable figure). For instruction counts run one library
 * under callgrind with two values of --iters and subtract (bench/mcp/run.sh does). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/jparse.h"

#ifdef HAVE_CJSON
#include <cjson/cJSON.h>
#endif
#ifdef HAVE_JSONC
/* json-c's names clash with jansson's: it lives in jsonparse_jsonc.c */
int jsonparse_jsonc(const char *m, size_t n, size_t *members);
#endif

static const char *const k_msgs[][2] = {
    {"tools_call", "{\"jsonrpc\":\"2.0\",\"id\":12345,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                   "\"arguments\":{\"text\":\"hello\",\"n\":12345}}}"},
    {"tools_call_meta",
     "{\"jsonrpc\":\"2.0\",\"id\":\"req-7f3a\",\"method\":\"tools/call\",\"params\":{\"name\":\"cache_set\","
     "\"arguments\":{\"key\":\"models/llama-3/config\",\"value\":{\"layers\":32,\"dim\":4096,\"rope\":1e4,"
     "\"tags\":[\"a\",\"b\",\"caf\\u00e9\"]},\"ttl_s\":3600.5},\"_meta\":{\"progressToken\":17,"
     "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}"},
};
#define NMSG (sizeof k_msgs / sizeof k_msgs[0])

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile size_t g_sink;

static int run_jansson(const char *m, size_t n) {
  json_error_t e;
  json_t *v = json_loadb(m, n, JSON_DECODE_ANY, &e);
  if (!v) return -1;
  g_sink += json_object_size(v);
  json_decref(v);
  return 0;
}

static int run_jparse(const char *m, size_t n) {
  json_t *v;
  if (jparse(m, n, 128, &v, NULL) != 0) return -1;
  g_sink += json_object_size(v);
  json_decref(v);
  return 0;
}

#ifdef HAVE_CJSON
static int run_cjson(const char *m, size_t n) {
  cJSON *v = cJSON_ParseWithLength(m, n);
  if (!v) return -1;
  g_sink += (size_t)cJSON_GetArraySize(v);
  cJSON_Delete(v);
  return 0;
}
#endif

#ifdef HAVE_JSONC
static int run_jsonc(const char *m, size_t n) {
  size_t k = 0;
  int rc = jsonparse_jsonc(m, n, &k);
  g_sink += k;
  return rc;
}
#endif

typedef struct lib {
  const char *name;
  int (*fn)(const char *, size_t);
} lib;

static const lib k_libs[] = {
    {"jansson", run_jansson},
    {"jparse", run_jparse},
#ifdef HAVE_CJSON
    {"cjson", run_cjson},
#endif
#ifdef HAVE_JSONC
    {"jsonc", run_jsonc},
#endif
};

int main(int argc, char **argv) {
  long iters = 200000;
  const char *only = NULL, *only_msg = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--iters") == 0) iters = atol(argv[i + 1]);
    else if (strcmp(argv[i], "--lib") == 0) only = argv[i + 1];
    else if (strcmp(argv[i], "--msg") == 0) only_msg = argv[i + 1];
  }
  int found = 0;
  for (size_t l = 0; l < sizeof k_libs / sizeof k_libs[0]; l++) {
    if (only && strcmp(only, k_libs[l].name) != 0) continue;
    found = 1;
    for (size_t m = 0; m < NMSG; m++) {
      if (only_msg && strcmp(only_msg, k_msgs[m][0]) != 0) continue;
      const char *msg = k_msgs[m][1];
      size_t n = strlen(msg);
      if (k_libs[l].fn(msg, n) != 0) {
        fprintf(stderr, "jsonparse: %s cannot parse %s\n", k_libs[l].name, k_msgs[m][0]);
        return 1;
      }
      double best = 1e30;
      for (int round = 0; round < 5; round++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) k_libs[l].fn(msg, n);
        double ns = (now_ns() - t0) / (double)(iters ? iters : 1);
        if (ns < best) best = ns;
      }
      printf("{\"lib\":\"%s\",\"msg\":\"%s\",\"bytes\":%zu,\"iters\":%ld,\"ns_per_parse\":%.0f}\n", k_libs[l].name,
             k_msgs[m][0], n, iters, best);
    }
  }
  if (only && !found) {
    fprintf(stderr, "jsonparse: %s is not built in (its -dev package is missing)\n", only);
    return 2;
  }
  return 0;
}
