/* config.c — loads peermcp's configuration (see config.h, docs/config.md).
 *
 * Layers are applied in order — built-in defaults, the JSON file, environment variables, CLI
 * flags — each overwriting the previous; paths derived from state_dir (queue.path, cache.dir,
 * p2p.announce_file) are filled in last, from the final state_dir, unless a layer set them.
 * jansson does not keep source positions, so for messages about a key we re-scan the (already
 * validated) file text with a tiny JSON walker that records where each key path starts.
 *
 * This is the only file that reads the environment (a test greps src/ for getenv). A command
 * tool's input_schema is checked here for its shape only ("type": "object"); its JSON Schema
 * keywords are checked when tools/command.c registers it (config/ knows nothing of mcp/), with
 * the position recorded here. */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#define PATH_BUF 512
#define LOC_MAX_DEPTH 128

/* ---------- small helpers ---------- */

static void strv_free(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static char *path_join(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *r = malloc(la + lb + 2);
  if (!r) return NULL;
  memcpy(r, a, la);
  size_t o = la;
  if (la && a[la - 1] != '/') r[o++] = '/';
  memcpy(r + o, b, lb + 1);
  return r;
}

static const char *env_nonempty(const char *name) {
  const char *v = getenv(name);
  return (v && *v) ? v : NULL;
}

/* Primary name, then the compat twin (p2p_tasks_spec §8 "P/C"). */
static const char *env_pc(const char *primary, const char *compat) {
  const char *v = env_nonempty(primary);
  return v ? v : env_nonempty(compat);
}

static bool env_truthy(const char *v) {
  static const char *const t[] = {"1", "true", "yes", "y", "on"};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcasecmp(v, t[i]) == 0) return true;
  return false;
}

static bool env_falsy_word(const char *v) {
  static const char *const f[] = {"0", "false", "no", "off"};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (strcasecmp(v, f[i]) == 0) return true;
  return false;
}

char *config_default_file(void) {
  const char *x = env_nonempty("XDG_CONFIG_HOME");
  if (x) return path_join(x, "peermcp/config.json");
  const char *h = env_nonempty("HOME");
  return h ? path_join(h, ".config/peermcp/config.json") : NULL;
}

char *config_default_state_dir(void) {
  const char *x = env_nonempty("XDG_STATE_HOME");
  if (x) return path_join(x, "peermcp");
  const char *h = env_nonempty("HOME");
  return h ? path_join(h, ".local/state/peermcp") : NULL;
}

static bool name_valid(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(isalnum(c) || c == '_' || c == '.' || c == '-')) return false;
  }
  return true;
}

static bool env_name_valid(const char *s) {
  if (!*s || strlen(s) > 256 || isdigit((unsigned char)s[0])) return false;
  for (const char *p = s; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '_')) return false;
  return true;
}

/* An RFC 6749 scope-token without our list separators (auth/scope.h checks the same). */
static bool scope_name_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' || ch == ',' || ch == ';') return false;
  }
  return true;
}

/* ---------- locating a key path in the file text ---------- */

typedef struct {
  const char *s;
  size_t n, i;
  int line, col;
  const char *want;
  int fl, fc;
  bool found;
} loc;

static void loc_adv(loc *L) {
  if (L->s[L->i] == '\n') {
    L->line++;
    L->col = 1;
  } else L->col++;
  L->i++;
}

static void loc_ws(loc *L) {
  while (L->i < L->n && (L->s[L->i] == ' ' || L->s[L->i] == '\t' || L->s[L->i] == '\n' || L->s[L->i] == '\r'))
    loc_adv(L);
}

/* At '"': skips the string; copies its (simply unescaped) text into out[cap]. */
static void loc_string(loc *L, char *out, size_t cap) {
  size_t o = 0;
  loc_adv(L); /* opening quote */
  while (L->i < L->n && L->s[L->i] != '"') {
    char c = L->s[L->i];
    if (c == '\\' && L->i + 1 < L->n) {
      loc_adv(L);
      c = L->s[L->i];
      if (c == 'n') c = '\n';
      else if (c == 't') c = '\t';
    }
    if (out && o + 1 < cap) out[o++] = c;
    loc_adv(L);
  }
  if (L->i < L->n) loc_adv(L); /* closing quote */
  if (out && cap) out[o] = 0;
}

static void loc_value(loc *L, char *path, size_t plen, int depth) {
  loc_ws(L);
  if (L->i >= L->n || L->found) return;
  char c = L->s[L->i];
  if (c == '{') {
    loc_adv(L);
    for (;;) {
      loc_ws(L);
      if (L->i >= L->n || L->found) return;
      if (L->s[L->i] == '}') {
        loc_adv(L);
        return;
      }
      if (L->s[L->i] == ',') {
        loc_adv(L);
        continue;
      }
      int kl = L->line, kc = L->col;
      char key[256];
      loc_string(L, key, sizeof key);
      int w = snprintf(path + plen, PATH_BUF - plen, plen ? ".%s" : "%s", key);
      size_t np = (w > 0 && (size_t)w < PATH_BUF - plen) ? plen + (size_t)w : plen;
      if (strcmp(path, L->want) == 0) {
        L->found = true;
        L->fl = kl;
        L->fc = kc;
        return;
      }
      loc_ws(L);
      if (L->i < L->n && L->s[L->i] == ':') loc_adv(L);
      if (depth >= LOC_MAX_DEPTH) return; /* too deep to matter: give up locating */
      loc_value(L, path, np, depth + 1);
      path[plen] = 0;
    }
  } else if (c == '[') {
    loc_adv(L);
    size_t idx = 0;
    for (;;) {
      loc_ws(L);
      if (L->i >= L->n || L->found) return;
      if (L->s[L->i] == ']') {
        loc_adv(L);
        return;
      }
      if (L->s[L->i] == ',') {
        loc_adv(L);
        idx++;
        continue;
      }
      int w = snprintf(path + plen, PATH_BUF - plen, "[%zu]", idx);
      size_t np = (w > 0 && (size_t)w < PATH_BUF - plen) ? plen + (size_t)w : plen;
      if (strcmp(path, L->want) == 0) {
        L->found = true;
        L->fl = L->line;
        L->fc = L->col;
        return;
      }
      if (depth >= LOC_MAX_DEPTH) return;
      loc_value(L, path, np, depth + 1);
      path[plen] = 0;
    }
  } else if (c == '"') {
    loc_string(L, NULL, 0);
  } else {
    while (L->i < L->n && !strchr(",}] \t\r\n", L->s[L->i])) loc_adv(L);
  }
}

/* Line/column (1-based) where `path` ("queue.lease_seconds", "tools.commands[0]") starts. */
static bool locate(const char *text, size_t len, const char *path, int *line, int *col) {
  if (!text || !path || !*path) return false;
  char buf[PATH_BUF] = "";
  loc L = {.s = text, .n = len, .line = 1, .col = 1, .want = path};
  loc_value(&L, buf, 0, 0);
  if (!L.found) return false;
  *line = L.fl;
  *col = L.fc;
  return true;
}

/* ---------- load context and errors ---------- */

typedef struct {
  config *cfg;
  const char *name; /* file name for messages, NULL when no file */
  const char *text;
  size_t len;
  char *dir; /* directory of the file for relative paths, NULL = cwd */
  char *err;
  size_t errlen;
  /* tri-state for announce_file: set by a layer (possibly to "disabled") */
  bool announce_set;
  bool listen_from_flag; /* p2p.listen came from --p2p-listen */
} lctx;

__attribute__((format(printf, 3, 4))) static int kerr(lctx *c, const char *path, const char *fmt, ...) {
  if (!c->err || !c->errlen) return -EINVAL;
  int line = 0, col = 0;
  int n;
  if (c->name && locate(c->text, c->len, path, &line, &col))
    n = snprintf(c->err, c->errlen, "%s:%d:%d: %s: ", c->name, line, col, path);
  else if (c->name)
    n = snprintf(c->err, c->errlen, "%s: %s: ", c->name, path);
  else
    n = snprintf(c->err, c->errlen, "%s: ", path);
  if (n < 0 || (size_t)n >= c->errlen) return -EINVAL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

__attribute__((format(printf, 2, 3))) static int gerr(lctx *c, const char *fmt, ...) {
  if (!c->err || !c->errlen) return -EINVAL;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, c->errlen, fmt, ap);
  va_end(ap);
  return -EINVAL;
}

/* What a message says it got: a scalar as written (-5, "abc", true, null; a long string cut
 * with …), an object or an array by its kind. One buffer: one use per message (load runs on
 * one thread). */
static const char *jtype(const json_t *v) {
  static char buf[96];
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > 60 || strlen(s) != n) snprintf(buf, sizeof buf, "a string \"%.40s…\"", s);
    else snprintf(buf, sizeof buf, "\"%s\"", s);
    return buf;
  }
  case JSON_INTEGER: snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); return buf;
  case JSON_REAL: snprintf(buf, sizeof buf, "%g", json_real_value(v)); return buf;
  case JSON_TRUE: return "true";
  case JSON_FALSE: return "false";
  case JSON_NULL: return "null";
  }
  return "?";
}

/* A path from the file: "~/" → $HOME, relative → against the file's directory. */
static char *file_path(lctx *c, const char *v) {
  if (v[0] == '~' && (v[1] == '/' || v[1] == 0)) {
    const char *h = env_nonempty("HOME");
    if (h) return path_join(h, v[1] ? v + 2 : "");
  }
  if (v[0] != '/' && c->dir) return path_join(c->dir, v);
  return strdup(v);
}

/* ---------- typed key readers ---------- */

typedef enum { K_U32, K_SIZE, K_U64, K_BOOL, K_STR, K_PATH, K_LOGLEVEL, K_STRARR, K_AEAD, K_TRISTATE, K_ACCESS } kkind;

/* log.access values: "on" (or true), "off" (or false), "debug". */
static int access_parse(const char *s, config_access *out) {
  if (!s) return -EINVAL;
  if (strcasecmp(s, "on") == 0) *out = CONFIG_ACCESS_ON;
  else if (strcasecmp(s, "off") == 0) *out = CONFIG_ACCESS_OFF;
  else if (strcasecmp(s, "debug") == 0) *out = CONFIG_ACCESS_DEBUG;
  else return -EINVAL;
  return 0;
}
static const char *access_name(config_access a) {
  return a == CONFIG_ACCESS_ON ? "on" : a == CONFIG_ACCESS_OFF ? "off" : "debug";
}

typedef struct {
  const char *key;
  kkind kind;
  size_t off;   /* offset in config */
  size_t coff;  /* K_STRARR: offset of the count */
  uint64_t min, max;
} keydef;

#define OFF(f) offsetof(config, f)

static int read_key(lctx *c, const keydef *k, const char *path, json_t *v) {
  char *base = (char *)c->cfg;
  switch (k->kind) {
  case K_U32:
  case K_SIZE:
  case K_U64: {
    if (!json_is_integer(v) && k->off == OFF(p2p.workers) && json_is_string(v) &&
        strcmp(json_string_value(v), "auto") == 0) {
      c->cfg->p2p.workers = CONFIG_WORKERS_AUTO;
      return 0;
    }
    if (!json_is_integer(v))
      return kerr(c, path, "expected an integer in %llu..%llu%s, got %s", (unsigned long long)k->min,
                  (unsigned long long)k->max, k->off == OFF(p2p.workers) ? " or \"auto\"" : "", jtype(v));
    if (json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < k->min ||
        (uint64_t)json_integer_value(v) > k->max)
      return kerr(c, path, "%" JSON_INTEGER_FORMAT " is out of range %llu..%llu", json_integer_value(v),
                  (unsigned long long)k->min, (unsigned long long)k->max);
    uint64_t x = (uint64_t)json_integer_value(v);
    if (k->kind == K_U32) *(uint32_t *)(base + k->off) = (uint32_t)x;
    else if (k->kind == K_SIZE) *(size_t *)(base + k->off) = (size_t)x;
    else *(uint64_t *)(base + k->off) = x;
    return 0;
  }
  case K_BOOL:
    if (!json_is_boolean(v)) return kerr(c, path, "expected true or false, got %s", jtype(v));
    *(bool *)(base + k->off) = json_is_true(v);
    return 0;
  case K_STR:
  case K_PATH: {
    char **dst = (char **)(base + k->off);
    if (json_is_null(v) && k->off == OFF(p2p.announce_file)) {
      free(*dst);
      *dst = NULL;
      c->announce_set = true;
      return 0;
    }
    if (!json_is_string(v)) return kerr(c, path, "expected a string, got %s", jtype(v));
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) return kerr(c, path, "string contains a NUL byte");
    if (k->max && json_string_length(v) > k->max) return kerr(c, path, "longer than %llu bytes", (unsigned long long)k->max);
    free(*dst);
    *dst = NULL;
    if (k->off == OFF(p2p.announce_file)) c->announce_set = true;
    if (*s == 0 && k->kind == K_PATH && k->off != OFF(p2p.announce_file))
      return kerr(c, path, "must not be empty");
    if (*s == 0) return 0; /* "" = unset (token, announce_file) */
    *dst = k->kind == K_PATH ? file_path(c, s) : strdup(s);
    return *dst ? 0 : -ENOMEM;
  }
  case K_LOGLEVEL: {
    log_level lv;
    if (!json_is_string(v)) return kerr(c, path, "expected a log level string, got %s", jtype(v));
    if (log_level_parse(json_string_value(v), &lv) != 0)
      return kerr(c, path, "unknown log level \"%s\" (debug, info, notice, warning, error, critical, off)",
                  json_string_value(v));
    c->cfg->log_level = lv;
    return 0;
  }
  case K_AEAD: {
    const char *s = json_string_value(v);
    if (s && strcmp(s, "openssl") == 0) *(config_aead *)(base + k->off) = CONFIG_AEAD_OPENSSL;
    else if (s && strcmp(s, "libsodium") == 0) *(config_aead *)(base + k->off) = CONFIG_AEAD_LIBSODIUM;
    else if (s) return kerr(c, path, "unknown AEAD \"%s\" (openssl, libsodium)", s);
    else return kerr(c, path, "expected \"openssl\" or \"libsodium\", got %s", jtype(v));
    return 0;
  }
  case K_ACCESS: {
    config_access *dst = (config_access *)(base + k->off);
    if (json_is_boolean(v)) *dst = json_is_true(v) ? CONFIG_ACCESS_ON : CONFIG_ACCESS_OFF;
    else if (!json_is_string(v) || access_parse(json_string_value(v), dst) != 0)
      return kerr(c, path, "expected \"on\", \"off\" or \"debug\" (or true, false), got %s",
                  json_is_string(v) ? json_string_value(v) : jtype(v));
    return 0;
  }
  case K_TRISTATE: {
    config_tristate *dst = (config_tristate *)(base + k->off);
    if (json_is_boolean(v)) *dst = json_is_true(v) ? CONFIG_ON : CONFIG_OFF;
    else if (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0) *dst = CONFIG_AUTO;
    else return kerr(c, path, "expected true, false or \"auto\", got %s", jtype(v));
    return 0;
  }
  case K_STRARR: {
    char ***dst = (char ***)(base + k->off);
    size_t *cnt = (size_t *)(base + k->coff);
    if (!json_is_array(v)) return kerr(c, path, "expected an array of strings, got %s", jtype(v));
    if (json_array_size(v) > k->max) return kerr(c, path, "more than %llu entries", (unsigned long long)k->max);
    char **arr = calloc(json_array_size(v) + 1, sizeof *arr);
    if (!arr) return -ENOMEM;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      char sub[PATH_BUF + 24];
      snprintf(sub, sizeof sub, "%s[%zu]", path, i);
      if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > 4096) {
        strv_free(arr, i);
        return kerr(c, sub, "expected a non-empty string, got %s", json_is_string(e) ? "\"\"" : jtype(e));
      }
      arr[i] = strdup(json_string_value(e));
      if (!arr[i]) {
        strv_free(arr, i);
        return -ENOMEM;
      }
    }
    strv_free(*dst, *cnt);
    *dst = arr;
    *cnt = json_array_size(v);
    return 0;
  }
  }
  return -EINVAL;
}

#define MiB (1024ull * 1024ull)
#define DAY 86400ull
#define YEARS10 (3650ull * DAY)

static const keydef k_top[] = {
    {"state_dir", K_PATH, OFF(state_dir), 0, 0, 4096},
    {"log_level", K_LOGLEVEL, 0, 0, 0, 0},
    {"max_line_bytes", K_SIZE, OFF(max_line_bytes), 0, 1024, 1024 * MiB},
    {"tool_timeout_ms", K_U32, OFF(tool_timeout_ms), 0, 1, DAY * 1000},
    {"workers_threads", K_U32, OFF(workers_threads), 0, 1, 256},
    {"workers_long_threads", K_U32, OFF(workers_long_threads), 0, 1, 1024},
    {"workers_long_queue", K_U32, OFF(workers_long_queue), 0, 1, 65536},
    {"workers_idle_seconds", K_U32, OFF(workers_idle_seconds), 0, 1, 86400},
    {"page_size", K_U32, OFF(page_size), 0, 1, 10000},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef k_tools[] = {
    {"disabled", K_STRARR, OFF(tools.disabled), OFF(tools.disabled_count), 0, 4096},
    {"test_tools", K_BOOL, OFF(tools.test_tools), 0, 0, 0},
    {"conformance_fixtures", K_BOOL, OFF(tools.conformance_fixtures), 0, 0, 0},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef k_queue[] = {
    {"path", K_PATH, OFF(queue.path), 0, 0, 4096},
    {"max_payload_bytes", K_SIZE, OFF(queue.max_payload_bytes), 0, 1, 256 * MiB},
    {"lease_seconds", K_U32, OFF(queue.lease_seconds), 0, 1, 7 * DAY},
    {"max_attempts", K_U32, OFF(queue.max_attempts), 0, 1, 1000},
    {"wait_max_seconds", K_U32, OFF(queue.wait_max_seconds), 0, 1, DAY}, /* 0 used to mean 300 silently */
    {"group_commit", K_BOOL, OFF(queue.group_commit), 0, 0, 0},
    {"wal_prefill", K_BOOL, OFF(queue.wal_prefill), 0, 0, 0},
    {"sync_pipeline", K_BOOL, OFF(queue.sync_pipeline), 0, 0, 0},
    {"prune_after_seconds", K_U32, OFF(queue.prune_after_seconds), 0, 0, YEARS10},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef k_cache[] = {
    {"dir", K_PATH, OFF(cache.dir), 0, 0, 4096},
    {"max_bytes", K_U64, OFF(cache.max_bytes), 0, 1, 1024ull * 1024 * MiB}, /* 0 used to mean 256 MiB */
    {"max_entries", K_U32, OFF(cache.max_entries), 0, 1, 100000000},
    {"max_value_bytes", K_SIZE, OFF(cache.max_value_bytes), 0, 1, 256 * MiB},
    {"default_ttl_seconds", K_U32, OFF(cache.default_ttl_seconds), 0, 0, YEARS10},
    {"sweep_interval_seconds", K_U32, OFF(cache.sweep_interval_seconds), 0, 1, DAY},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef k_p2p[] = {
    {"enabled", K_BOOL, OFF(p2p.enabled), 0, 0, 0},
    {"listen", K_STRARR, OFF(p2p.listen), OFF(p2p.listen_count), 0, 64},
    {"announce_file", K_PATH, OFF(p2p.announce_file), 0, 0, 4096},
    {"trusted_peers", K_STRARR, OFF(p2p.trusted_peers), OFF(p2p.trusted_peer_count), 0, 4096},
    {"token", K_STR, OFF(p2p.token), 0, 0, 4096},
    {"workers", K_U32, OFF(p2p.workers), 0, 0, 256},
    {"enable_legacy_protocol", K_BOOL, OFF(p2p.enable_legacy_protocol), 0, 0, 0},
    {"max_frame_bytes", K_SIZE, OFF(p2p.max_frame_bytes), 0, 1024, 64 * MiB},
    {"max_streams_per_peer", K_U32, OFF(p2p.max_streams_per_peer), 0, 1, 4096},
    {"rate_limit_per_second", K_U32, OFF(p2p.rate_limit_per_second), 0, 0, 1000000},
    {"authorized_rate_limit_per_second", K_U32, OFF(p2p.authorized_rate_limit_per_second), 0, 0, 10000000},
    {"worker_claim_wait_seconds", K_U32, OFF(p2p.worker_claim_wait_seconds), 0, 0, 30},
    {"max_connections", K_U32, OFF(p2p.max_connections), 0, 1, 65536},
    {"enable_perf", K_BOOL, OFF(p2p.enable_perf), 0, 0, 0},
    {"noise_aead", K_AEAD, OFF(p2p.noise_aead), 0, 0, 0},
    {"write_early_bytes", K_SIZE, OFF(p2p.write_early_bytes), 0, 256, 64 * MiB},
    {"unfenced_complete", K_BOOL, OFF(p2p.unfenced_complete), 0, 0, 0},
    {"session", K_STR, OFF(p2p.session), 0, 0, 4096},
    {"deterministic", K_BOOL, OFF(p2p.deterministic), 0, 0, 0},
    {"cache_replicate", K_BOOL, OFF(p2p.cache_replicate), 0, 0, 0},
    {"cache_replicate_targets", K_STRARR, OFF(p2p.cache_replicate_targets), OFF(p2p.cache_replicate_target_count), 0,
     64},
    {"cache_replicate_max_peers", K_U32, OFF(p2p.cache_replicate_max_peers), 0, 0, CONFIG_MAX_REPLICATE_PEERS},
    {"mdns", K_TRISTATE, OFF(p2p.mdns), 0, 0, 0},
    {"dht", K_TRISTATE, OFF(p2p.dht), 0, 0, 0},
    {"rendezvous", K_TRISTATE, OFF(p2p.rendezvous), 0, 0, 0},
    {"dht_protocol", K_STR, OFF(p2p.dht_protocol), 0, 0, 255},
    {"rendezvous_ns", K_STR, OFF(p2p.rendezvous_ns), 0, 0, 200},
    {"dht_provide_interval_seconds", K_U32, OFF(p2p.dht_provide_interval_seconds), 0, 0, 7 * DAY},
    {"mdns_allow_loopback", K_BOOL, OFF(p2p.mdns_allow_loopback), 0, 0, 0},
    {"mdns_query_interval_ms", K_U32, OFF(p2p.mdns_query_interval_ms), 0, 100, 3600 * 1000},
    {"dnsaddr_resolve", K_BOOL, OFF(p2p.dnsaddr_resolve), 0, 0, 0},
    {"peer_timeout_seconds", K_U32, OFF(p2p.peer_timeout_seconds), 0, 1, 30 * DAY},
    {"peer_addr_ttl_seconds", K_U32, OFF(p2p.peer_addr_ttl_seconds), 0, 60, 365 * DAY},
    {"discovery_timeout_ms", K_U32, OFF(p2p.discovery_timeout_ms), 0, 100, 600 * 1000},
    {"trust_tiers", K_BOOL, OFF(p2p.trust_tiers), 0, 0, 0},
    {"baseline_max_priority", K_U32, OFF(p2p.baseline_max_priority), 0, 1, 10},
    {"encrypt", K_BOOL, OFF(p2p.encrypt), 0, 0, 0},
    {"encryption_key", K_STR, OFF(p2p.encryption_key), 0, 0, 4096},
    {"max_pending_handshakes", K_U32, OFF(p2p.max_pending_handshakes), 0, 1, 65536},
    {"max_pending_per_ip", K_U32, OFF(p2p.max_pending_per_ip), 0, 1, 65536},
    {"max_connections_per_ip", K_U32, OFF(p2p.max_connections_per_ip), 0, 1, 65536},
    {"reserved_connections", K_U32, OFF(p2p.reserved_connections), 0, 0, 65536},
    {"reserved_handshakes", K_U32, OFF(p2p.reserved_handshakes), 0, 1, 4096},
    {"authorized_memory", K_U32, OFF(p2p.authorized_memory), 0, 1, 65536},
    {"authorized_memory_seconds", K_U32, OFF(p2p.authorized_memory_seconds), 0, 1, 30 * 86400},
    {"first_byte_timeout_ms", K_U32, OFF(p2p.first_byte_timeout_ms), 0, 100, 600000},
    {"handshake_timeout_ms", K_U32, OFF(p2p.handshake_timeout_ms), 0, 100, 600000},
    {"stranger_max_frame_bytes", K_SIZE, OFF(p2p.stranger_max_frame_bytes), 0, 1024, 64 * MiB},
    {"stranger_max_streams", K_U32, OFF(p2p.stranger_max_streams), 0, 1, 4096},
    {"frame_timeout_ms", K_U32, OFF(p2p.frame_timeout_ms), 0, 100, 3600000},
    {"stream_budget_bytes", K_SIZE, OFF(p2p.stream_budget_bytes), 0, 64 * 1024, 1024 * MiB},
    {"peer_budget_bytes", K_SIZE, OFF(p2p.peer_budget_bytes), 0, 64 * 1024, 64 * 1024 * MiB},
    {"process_budget_bytes", K_SIZE, OFF(p2p.process_budget_bytes), 0, 64 * 1024, 64 * 1024 * MiB},
    {"max_waits_per_peer", K_U32, OFF(p2p.max_waits_per_peer), 0, 1, 65536},
    {"max_inflight_per_peer", K_U32, OFF(p2p.max_inflight_per_peer), 0, 1, 65536},
    {"autonat", K_TRISTATE, OFF(p2p.autonat), 0, 0, 0},
    {"relay", K_TRISTATE, OFF(p2p.relay), 0, 0, 0},
    {"holepunch", K_TRISTATE, OFF(p2p.holepunch), 0, 0, 0},
    {"relays", K_STRARR, OFF(p2p.relays), OFF(p2p.relay_count), 0, 16},
    {"autonat_confidence", K_U32, OFF(p2p.autonat_confidence), 0, 1, 16},
    {"autonat_v2", K_BOOL, OFF(p2p.autonat_v2), 0, 0, 0},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef k_auth[] = {
    {"resource", K_STR, OFF(auth.resource), 0, 0, 2048},
    {"authorization_servers", K_STRARR, OFF(auth.authorization_servers), OFF(auth.authorization_server_count), 0, 16},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef k_auth_jwt[] = {
    {"issuer", K_STR, OFF(auth.jwt.issuer), 0, 0, 255},
    {"audience", K_STR, OFF(auth.jwt.audience), 0, 0, 2048},
    {"jwks_file", K_PATH, OFF(auth.jwt.jwks_file), 0, 0, 4096},
    {"algorithms", K_STRARR, OFF(auth.jwt.algorithms), OFF(auth.jwt.algorithm_count), 0, 8},
    {"leeway_s", K_U32, OFF(auth.jwt.leeway_s), 0, 0, 3600},
    {"hs256_secret_env", K_STR, OFF(auth.jwt.hs256_secret_env), 0, 0, 256},
    {"require_peer_binding", K_BOOL, OFF(auth.jwt.require_peer_binding), 0, 0, 0},
    {"cache_entries", K_U32, OFF(auth.jwt.cache_entries), 0, 1, 65536},
    {NULL, 0, 0, 0, 0, 0},
};

/* p2p.relay_hop (issue 16 §2): the relay's limits. */
static const keydef k_relay_hop[] = {
    {"enabled", K_BOOL, OFF(p2p.relay_hop.enabled), 0, 0, 0},
    {"max_reservations", K_U32, OFF(p2p.relay_hop.max_reservations), 0, 0, 65536},        /* 0 = no limit */
    {"max_reservations_per_ip", K_U32, OFF(p2p.relay_hop.max_reservations_per_ip), 0, 1, 65536},
    {"reservation_ttl_seconds", K_U32, OFF(p2p.relay_hop.reservation_ttl_seconds), 0, 60, 7 * DAY},
    {"max_circuits", K_U32, OFF(p2p.relay_hop.max_circuits), 0, 0, 65536},
    {"max_circuits_per_peer", K_U32, OFF(p2p.relay_hop.max_circuits_per_peer), 0, 1, 65536},
    {"limit_duration_seconds", K_U32, OFF(p2p.relay_hop.limit_duration_seconds), 0, 0, DAY},   /* 0 = no limit */
    {"limit_data_bytes", K_U64, OFF(p2p.relay_hop.limit_data_bytes), 0, 0, 1024ull * 1024 * MiB}, /* 0 = no limit */
    {NULL, 0, 0, 0, 0, 0},
};

const char *const config_public_bootstrap[] = {
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    NULL,
};

static const char *const k_profile_names[] = {"local", "lan", "private", "public"};

const char *config_profile_name(config_profile p) {
  return (unsigned)p < 4 ? k_profile_names[p] : "local";
}

static int profile_parse(const char *s, config_profile *out) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, k_profile_names[i]) == 0) {
      *out = (config_profile)i;
      return 0;
    }
  return -EINVAL;
}

/* ---------- p2p: profile, dht_mode, bootstrap, peers (shapes a keydef cannot say) ---------- */

static bool peer_name_valid(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 64) return false;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i])) return false;
  return true;
}

/* A multiaddr naming its peer: "/…/p2p/<id>" (checked for shape; the host parses it fully). */
static bool addr_with_peer(const char *s) {
  const char *p = strstr(s, "/p2p/");
  return s[0] == '/' && p && p[5] && !strchr(p + 5, '/');
}

static void named_peers_free(config_named_peer *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(p[i].name);
    free(p[i].multiaddr);
  }
  free(p);
}

static int read_p2p_extra(lctx *c, json_t *sec) {
  config *cfg = c->cfg;
  json_t *v;
  int rc;
  if ((v = json_object_get(sec, "profile"))) {
    if (!json_is_string(v) || profile_parse(json_string_value(v), &cfg->p2p.profile) != 0)
      return kerr(c, "p2p.profile", "expected \"local\", \"lan\", \"private\" or \"public\"");
  }
  if ((v = json_object_get(sec, "dht_mode"))) {
    const char *m = json_string_value(v);
    if (m && strcmp(m, "auto") == 0) cfg->p2p.dht_mode = CONFIG_DHT_AUTO;
    else if (m && strcmp(m, "server") == 0) cfg->p2p.dht_mode = CONFIG_DHT_SERVER;
    else if (m && strcmp(m, "client") == 0) cfg->p2p.dht_mode = CONFIG_DHT_CLIENT;
    else return kerr(c, "p2p.dht_mode", "expected \"auto\", \"server\" or \"client\"");
  }
  if ((v = json_object_get(sec, "bootstrap"))) {
    static const keydef k = {"bootstrap", K_STRARR, OFF(p2p.bootstrap), OFF(p2p.bootstrap_count), 0,
                             CONFIG_MAX_BOOTSTRAP};
    if ((rc = read_key(c, &k, "p2p.bootstrap", v)) != 0) return rc;
    cfg->p2p.bootstrap_set = true;
  }
  if ((v = json_object_get(sec, "peers"))) {
    if (!json_is_object(v)) return kerr(c, "p2p.peers", "expected an object {\"name\": \"/ip4/…/p2p/<PeerId>\"}, got %s", jtype(v));
    if (json_object_size(v) > CONFIG_MAX_NAMED_PEERS) return kerr(c, "p2p.peers", "more than %d peers", CONFIG_MAX_NAMED_PEERS);
    config_named_peer *arr = calloc(json_object_size(v) + 1, sizeof *arr);
    if (!arr) return -ENOMEM;
    size_t n = 0;
    const char *name;
    json_t *ma;
    json_object_foreach(v, name, ma) {
      char sub[PATH_BUF + 80];
      snprintf(sub, sizeof sub, "p2p.peers.%.64s", name);
      rc = 0;
      if (!peer_name_valid(name)) rc = kerr(c, sub, "a peer name is 1 to 64 of [A-Za-z0-9_.-]");
      else if (!json_is_string(ma) || json_string_length(ma) > 1024 || strlen(json_string_value(ma)) != json_string_length(ma) ||
               !addr_with_peer(json_string_value(ma)))
        rc = kerr(c, sub, "expected a multiaddr ending in /p2p/<PeerId> (e.g. /ip4/192.168.1.5/tcp/9710/p2p/12D3KooW…)");
      else if (!(arr[n].name = strdup(name)) || !(arr[n].multiaddr = strdup(json_string_value(ma)))) rc = -ENOMEM;
      n++;
      if (rc) {
        named_peers_free(arr, n);
        return rc;
      }
    }
    named_peers_free(cfg->p2p.peers, cfg->p2p.peer_count);
    cfg->p2p.peers = arr;
    cfg->p2p.peer_count = n;
  }
  return 0;
}

const char *config_peer_by_name(const config *cfg, const char *name) {
  for (size_t i = 0; i < cfg->p2p.peer_count; i++)
    if (strcmp(cfg->p2p.peers[i].name, name) == 0) return cfg->p2p.peers[i].multiaddr;
  return NULL;
}

static const keydef k_mcp_tasks[] = {
    {"runner", K_TRISTATE, OFF(mcp_tasks.runner), 0, 0, 0},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef k_log[] = {
    {"access", K_ACCESS, OFF(log.access), 0, 0, 0},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef k_stdio[] = {
    {"enabled", K_BOOL, OFF(stdio.enabled), 0, 0, 0},
    {"scopes", K_STRARR, OFF(stdio.scopes), OFF(stdio.scope_count), 0, 256},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef k_metrics[] = {
    {"listen", K_STR, OFF(metrics.listen), 0, 1, 128},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef k_http[] = {
    {"allowed_origins", K_STRARR, OFF(http.allowed_origins), OFF(http.allowed_origin_count), 0, 256},
    {"allowed_hosts", K_STRARR, OFF(http.allowed_hosts), OFF(http.allowed_host_count), 0, 256},
    {"allow_unauthenticated", K_BOOL, OFF(http.allow_unauthenticated), 0, 0, 0},
    {"session_idle_seconds", K_U32, OFF(http.session_idle_seconds), 0, 1, 7 * DAY},
    {"max_sessions", K_U32, OFF(http.max_sessions), 0, 1, 1000000},
    {"max_connections", K_U32, OFF(http.max_connections), 0, 1, 65536},
    {"max_body_bytes", K_SIZE, OFF(http.max_body_bytes), 0, 1024, 1024 * MiB},
    {"max_header_bytes", K_SIZE, OFF(http.max_header_bytes), 0, 1024, MiB},
    {"request_timeout_seconds", K_U32, OFF(http.request_timeout_seconds), 0, 1, 3600},
    {"idle_timeout_seconds", K_U32, OFF(http.idle_timeout_seconds), 0, 1, DAY},
    {"sse_keepalive_seconds", K_U32, OFF(http.sse_keepalive_seconds), 0, 0, 3600},
    {NULL, 0, 0, 0, 0, 0},
};

static const keydef *find_key(const keydef *t, const char *key) {
  for (; t->key; t++)
    if (strcmp(t->key, key) == 0) return t;
  return NULL;
}

static void append_known(char *out, size_t n, const keydef *t, const char *const *extra) {
  size_t o = 0;
  out[0] = 0;
  for (; t && t->key; t++) {
    int w = snprintf(out + o, n - o, "%s%s", o ? ", " : "", t->key);
    if (w < 0 || (size_t)w >= n - o) return;
    o += (size_t)w;
  }
  for (; extra && *extra; extra++) {
    int w = snprintf(out + o, n - o, "%s%s", o ? ", " : "", *extra);
    if (w < 0 || (size_t)w >= n - o) return;
    o += (size_t)w;
  }
}

/* Reads every key of a section object through table t; keys in `extra` are left to the caller. */
static int read_section(lctx *c, const char *prefix, json_t *obj, const keydef *t, const char *const *extra) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    char path[PATH_BUF];
    snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
    const keydef *k = find_key(t, key);
    if (!k) {
      bool is_extra = false;
      for (const char *const *e = extra; e && *e; e++)
        if (strcmp(*e, key) == 0) is_extra = true;
      if (is_extra) continue;
      char known[512];
      append_known(known, sizeof known, t, extra);
      return kerr(c, path, "unknown key (known keys here: %s)", known);
    }
    int rc = read_key(c, k, path, v);
    if (rc != 0) return rc;
  }
  return 0;
}

/* ---------- tools.commands[] ---------- */

static void command_free(config_command *cmd) {
  free(cmd->name);
  free(cmd->title);
  free(cmd->description);
  free(cmd->category);
  json_decref(cmd->input_schema);
  strv_free(cmd->argv, cmd->argc);
  free(cmd->cwd);
  strv_free(cmd->env_allow, cmd->env_allow_count);
  strv_free(cmd->env_pass, cmd->env_pass_count);
  strv_free(cmd->env, cmd->env_count);
  strv_free(cmd->scopes, cmd->scope_count);
  memset(cmd, 0, sizeof *cmd);
}

static int read_strv(lctx *c, const char *path, json_t *v, size_t max, bool envnames, char ***out, size_t *count) {
  if (!json_is_array(v)) return kerr(c, path, "expected an array of strings, got %s", jtype(v));
  if (json_array_size(v) > max) return kerr(c, path, "more than %zu entries", max);
  char **arr = calloc(json_array_size(v) + 1, sizeof *arr);
  if (!arr) return -ENOMEM;
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    char sub[PATH_BUF];
    snprintf(sub, sizeof sub, "%s[%zu]", path, i);
    int rc = 0;
    if (!json_is_string(e)) rc = kerr(c, sub, "expected a string, got %s", jtype(e));
    else if (strlen(json_string_value(e)) != json_string_length(e)) rc = kerr(c, sub, "string contains a NUL byte");
    else if (json_string_length(e) > 65536) rc = kerr(c, sub, "longer than 65536 bytes");
    else if (envnames && !env_name_valid(json_string_value(e)))
      rc = kerr(c, sub, "\"%s\" is not a valid environment variable name", json_string_value(e));
    if (rc == 0 && !(arr[i] = strdup(json_string_value(e)))) rc = -ENOMEM;
    if (rc != 0) {
      strv_free(arr, i);
      return rc;
    }
  }
  *out = arr;
  *count = json_array_size(v);
  return 0;
}

static int read_command(lctx *c, size_t idx, json_t *o, config_command *cmd) {
  char base[64], path[PATH_BUF];
  snprintf(base, sizeof base, "tools.commands[%zu]", idx);
  int line = 0, col = 0;
  if (c->name && locate(c->text, c->len, base, &line, &col)) cmd->src_line = line;
  if (!json_is_object(o)) return kerr(c, base, "expected an object, got %s", jtype(o));
  cmd->max_output_bytes = MiB;
  cmd->output = CONFIG_OUTPUT_AUTO;

  static const char *const known = "name, title, description, category, input_schema, argv, cwd, env_allow, env, "
                                   "timeout_ms, max_output_bytes, remote, output, scopes";
  const char *key;
  json_t *v;
  int rc;
  json_object_foreach(o, key, v) {
    snprintf(path, sizeof path, "%s.%s", base, key);
    if (strcmp(key, "name") == 0 || strcmp(key, "title") == 0 || strcmp(key, "description") == 0 ||
        strcmp(key, "category") == 0 || strcmp(key, "cwd") == 0) {
      if (!json_is_string(v)) return kerr(c, path, "expected a string, got %s", jtype(v));
      const char *s = json_string_value(v);
      if (strlen(s) != json_string_length(v)) return kerr(c, path, "string contains a NUL byte");
      if (json_string_length(v) > 65536) return kerr(c, path, "longer than 65536 bytes");
      char **dst = key[0] == 'n' ? &cmd->name : key[0] == 't' ? &cmd->title : key[0] == 'd' ? &cmd->description
                   : key[1] == 'a' ? &cmd->category : &cmd->cwd;
      if (dst == &cmd->name && !name_valid(s, 128))
        return kerr(c, path, "\"%s\" is not a valid tool name ([A-Za-z0-9_.-], 1 to 128 characters)", s);
      if (dst == &cmd->category && !name_valid(s, 64))
        return kerr(c, path, "\"%s\" is not a valid category ([A-Za-z0-9_.-], 1 to 64 characters)", s);
      if (dst == &cmd->cwd && !*s) return kerr(c, path, "must not be empty");
      free(*dst);
      *dst = dst == &cmd->cwd ? file_path(c, s) : strdup(s);
      if (!*dst) return -ENOMEM;
    } else if (strcmp(key, "input_schema") == 0) {
      if (!json_is_object(v)) return kerr(c, path, "expected a JSON Schema object, got %s", jtype(v));
      const json_t *t = json_object_get(v, "type");
      if (!json_is_string(t) || strcmp(json_string_value(t), "object") != 0)
        return kerr(c, path, "a tool's input schema must have \"type\": \"object\"");
      /* its keywords are checked at registration (tools/command.c), with this position */
      if (c->name) (void)locate(c->text, c->len, path, &cmd->schema_line, &cmd->schema_col);
      json_decref(cmd->input_schema);
      cmd->input_schema = json_deep_copy(v);
      if (!cmd->input_schema) return -ENOMEM;
    } else if (strcmp(key, "argv") == 0) {
      strv_free(cmd->argv, cmd->argc);
      cmd->argv = NULL;
      cmd->argc = 0;
      if ((rc = read_strv(c, path, v, 1024, false, &cmd->argv, &cmd->argc)) != 0) return rc;
      if (cmd->argc == 0) return kerr(c, path, "must name a program: [\"/path/to/program\", \"arg\", …]");
      if (!cmd->argv[0][0]) return kerr(c, path, "the program (argv[0]) must not be empty");
      /* a relative path with a slash is relative to the config file; a bare name is looked up
       * in PATH when the tool is registered */
      if (strchr(cmd->argv[0], '/') && cmd->argv[0][0] != '/') {
        char *abs = file_path(c, cmd->argv[0]);
        if (!abs) return -ENOMEM;
        free(cmd->argv[0]);
        cmd->argv[0] = abs;
      }
    } else if (strcmp(key, "env_allow") == 0) {
      strv_free(cmd->env_allow, cmd->env_allow_count);
      cmd->env_allow = NULL;
      if ((rc = read_strv(c, path, v, 1024, true, &cmd->env_allow, &cmd->env_allow_count)) != 0) return rc;
    } else if (strcmp(key, "env") == 0) {
      if (!json_is_object(v)) return kerr(c, path, "expected an object of strings, got %s", jtype(v));
      if (json_object_size(v) > 1024) return kerr(c, path, "more than 1024 variables");
      strv_free(cmd->env, cmd->env_count);
      cmd->env = calloc(json_object_size(v) + 1, sizeof *cmd->env);
      cmd->env_count = 0;
      if (!cmd->env) return -ENOMEM;
      const char *ek;
      json_t *ev;
      json_object_foreach(v, ek, ev) {
        char sub[PATH_BUF + 128];
        snprintf(sub, sizeof sub, "%s.%.100s", path, ek);
        if (!env_name_valid(ek)) return kerr(c, sub, "not a valid environment variable name");
        if (!json_is_string(ev)) return kerr(c, sub, "expected a string, got %s", jtype(ev));
        if (strlen(json_string_value(ev)) != json_string_length(ev)) return kerr(c, sub, "string contains a NUL byte");
        size_t n = strlen(ek) + json_string_length(ev) + 2;
        char *kv = malloc(n);
        if (!kv) return -ENOMEM;
        snprintf(kv, n, "%s=%s", ek, json_string_value(ev));
        cmd->env[cmd->env_count++] = kv;
      }
    } else if (strcmp(key, "timeout_ms") == 0) {
      if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (json_int_t)(DAY * 1000))
        return kerr(c, path, "expected an integer in 0..86400000 (0 = the server default), got %s", jtype(v));
      cmd->timeout_ms = (uint32_t)json_integer_value(v);
    } else if (strcmp(key, "max_output_bytes") == 0) {
      if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (json_int_t)(256 * MiB))
        return kerr(c, path, "expected an integer in 1..268435456, got %s", jtype(v));
      cmd->max_output_bytes = (size_t)json_integer_value(v);
    } else if (strcmp(key, "remote") == 0) {
      if (!json_is_boolean(v)) return kerr(c, path, "expected true or false, got %s", jtype(v));
      cmd->remote = json_is_true(v);
    } else if (strcmp(key, "scopes") == 0) {
      strv_free(cmd->scopes, cmd->scope_count);
      cmd->scopes = NULL;
      cmd->scope_count = 0;
      if ((rc = read_strv(c, path, v, 16, false, &cmd->scopes, &cmd->scope_count)) != 0) return rc;
      for (size_t i = 0; i < cmd->scope_count; i++) {
        char sub[PATH_BUF + 24];
        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        if (!scope_name_valid(cmd->scopes[i]))
          return kerr(c, sub, "\"%s\" is not a scope name (1 to 64 printable ASCII characters; no space, quote, "
                              "backslash, comma or semicolon)", cmd->scopes[i]);
      }
    } else if (strcmp(key, "output") == 0) {
      const char *s = json_string_value(v);
      if (s && strcmp(s, "json") == 0) cmd->output = CONFIG_OUTPUT_JSON;
      else if (s && strcmp(s, "text") == 0) cmd->output = CONFIG_OUTPUT_TEXT;
      else if (s && strcmp(s, "auto") == 0) cmd->output = CONFIG_OUTPUT_AUTO;
      else return kerr(c, path, "expected \"json\", \"text\" or \"auto\", got %s", jtype(v));
    } else {
      return kerr(c, path, "unknown key (known keys here: %s)", known);
    }
  }
  if (!cmd->name) return kerr(c, base, "missing \"name\"");
  if (!cmd->argv) return kerr(c, base, "missing \"argv\" (program and fixed arguments, never a shell string)");
  if (!cmd->category && !(cmd->category = strdup("commands"))) return -ENOMEM;
  if (!cmd->description && !(cmd->description = strdup(""))) return -ENOMEM;
  if (!cmd->input_schema && !(cmd->input_schema = json_pack("{s:s}", "type", "object"))) return -ENOMEM;
  return 0;
}

static int read_commands(lctx *c, json_t *arr) {
  config *cfg = c->cfg;
  if (!json_is_array(arr)) return kerr(c, "tools.commands", "expected an array of objects, got %s", jtype(arr));
  if (json_array_size(arr) > CONFIG_MAX_COMMANDS)
    return kerr(c, "tools.commands", "more than %d command tools", CONFIG_MAX_COMMANDS);
  for (size_t i = 0; i < cfg->tools.command_count; i++) command_free(&cfg->tools.commands[i]);
  free(cfg->tools.commands);
  cfg->tools.command_count = 0;
  cfg->tools.commands = calloc(json_array_size(arr) + 1, sizeof *cfg->tools.commands);
  if (!cfg->tools.commands) return -ENOMEM;
  size_t i;
  json_t *o;
  json_array_foreach(arr, i, o) {
    config_command *cmd = &cfg->tools.commands[i];
    cfg->tools.command_count = i + 1; /* so config_free releases a half-read entry */
    int rc = read_command(c, i, o, cmd);
    if (rc != 0) return rc;
    for (size_t j = 0; j < i; j++) {
      if (strcmp(cfg->tools.commands[j].name, cmd->name) == 0) {
        char p[64];
        snprintf(p, sizeof p, "tools.commands[%zu].name", i);
        return kerr(c, p, "duplicate command tool name \"%s\" (also tools.commands[%zu])", cmd->name, j);
      }
    }
  }
  return 0;
}

/* ---------- http.listen: a string or an array of strings ---------- */

static int set_strv(char ***dst, size_t *cnt, const char *const *src, size_t n) {
  char **arr = calloc(n + 1, sizeof *arr);
  if (!arr) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (!(arr[i] = strdup(src[i]))) {
      strv_free(arr, i);
      return -ENOMEM;
    }
  }
  strv_free(*dst, *cnt);
  *dst = arr;
  *cnt = n;
  return 0;
}

static int read_http_listen(lctx *c, json_t *v) {
  if (json_is_string(v)) {
    const char *one = json_string_value(v);
    if (!*one) return kerr(c, "http.listen", "must not be empty (omit the key to serve no HTTP)");
    return set_strv(&c->cfg->http.listen, &c->cfg->http.listen_count, &one, 1);
  }
  static const keydef k = {"listen", K_STRARR, OFF(http.listen), OFF(http.listen_count), 0, 16};
  return read_key(c, &k, "http.listen", v);
}

/* ---------- the file layer ---------- */

static int apply_file(lctx *c, json_t *root) {
  if (!json_is_object(root)) return gerr(c, "%s: the configuration must be a JSON object", c->name);
  static const char *const sections[] = {"tools", "queue", "cache", "p2p", "stdio", "mcp_tasks", "auth", "http",
                                         "log", "metrics", NULL};
  int rc = read_section(c, "", root, k_top, sections);
  if (rc != 0) return rc;
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    const keydef *t = NULL;
    if (strcmp(key, "tools") == 0) {
      if (!json_is_object(v)) return kerr(c, key, "expected an object, got %s", jtype(v));
      static const char *const extra[] = {"commands", NULL};
      if ((rc = read_section(c, "tools", v, k_tools, extra)) != 0) return rc;
      json_t *cmds = json_object_get(v, "commands");
      if (cmds && (rc = read_commands(c, cmds)) != 0) return rc;
      continue;
    }
    if (strcmp(key, "http") == 0) {
      if (!json_is_object(v)) return kerr(c, key, "expected an object, got %s", jtype(v));
      static const char *const extra[] = {"listen", NULL};
      if ((rc = read_section(c, "http", v, k_http, extra)) != 0) return rc;
      json_t *l = json_object_get(v, "listen");
      if (l && (rc = read_http_listen(c, l)) != 0) return rc;
      continue;
    }
    if (strcmp(key, "auth") == 0) {
      if (!json_is_object(v)) return kerr(c, key, "expected an object, got %s", jtype(v));
      static const char *const extra[] = {"jwt", NULL};
      if ((rc = read_section(c, "auth", v, k_auth, extra)) != 0) return rc;
      json_t *j = json_object_get(v, "jwt");
      if (j && !json_is_null(j)) {
        if (!json_is_object(j)) return kerr(c, "auth.jwt", "expected an object, got %s", jtype(j));
        if ((rc = read_section(c, "auth.jwt", j, k_auth_jwt, NULL)) != 0) return rc;
        c->cfg->auth.jwt.enabled = true;
      }
      continue;
    }
    if (strcmp(key, "p2p") == 0) {
      if (!json_is_object(v)) return kerr(c, key, "expected an object, got %s", jtype(v));
      static const char *const extra[] = {"profile", "dht_mode", "bootstrap", "peers", "relay_hop", NULL};
      if ((rc = read_section(c, "p2p", v, k_p2p, extra)) != 0) return rc;
      if ((rc = read_p2p_extra(c, v)) != 0) return rc;
      json_t *hop = json_object_get(v, "relay_hop");
      if (hop && !json_is_object(hop)) return kerr(c, "p2p.relay_hop", "expected an object, got %s", jtype(hop));
      if (hop && (rc = read_section(c, "p2p.relay_hop", hop, k_relay_hop, NULL)) != 0) return rc;
      continue;
    }
    if (strcmp(key, "queue") == 0) t = k_queue;
    else if (strcmp(key, "cache") == 0) t = k_cache;
    else if (strcmp(key, "stdio") == 0) t = k_stdio;
    else if (strcmp(key, "mcp_tasks") == 0) t = k_mcp_tasks;
    else if (strcmp(key, "log") == 0) t = k_log;
    else if (strcmp(key, "metrics") == 0) t = k_metrics;
    else continue; /* top-level scalar, read above */
    if (!json_is_object(v)) return kerr(c, key, "expected an object, got %s", jtype(v));
    if ((rc = read_section(c, key, v, t, NULL)) != 0) return rc;
  }
  return 0;
}

/* ---------- defaults, environment, flags ---------- */

static const char *const k_default_listen[] = {"/ip4/0.0.0.0/tcp/9710", "/ip6/::/tcp/9710"};

static int set_defaults(config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->log_level = LOG_INFO;
  cfg->max_line_bytes = 16 * MiB;
  cfg->tool_timeout_ms = 30000;
  cfg->workers_threads = 8;
  cfg->workers_long_threads = 64;
  cfg->workers_long_queue = 256;
  cfg->workers_idle_seconds = 30;
  cfg->page_size = 50;
  cfg->queue.max_payload_bytes = MiB;
  cfg->queue.lease_seconds = 300;
  cfg->queue.max_attempts = 3;
  cfg->queue.wait_max_seconds = 300;
  cfg->queue.group_commit = true;
  cfg->queue.wal_prefill = true;
  cfg->queue.sync_pipeline = false;
  cfg->queue.prune_after_seconds = 7 * DAY;
  cfg->cache.max_bytes = 256 * MiB;
  cfg->cache.max_entries = 100000;
  cfg->cache.max_value_bytes = MiB;
  cfg->cache.default_ttl_seconds = 0;
  cfg->cache.sweep_interval_seconds = 60;
  cfg->p2p.enabled = true;
  cfg->p2p.listen = calloc(3, sizeof *cfg->p2p.listen);
  if (!cfg->p2p.listen) return -ENOMEM;
  for (size_t i = 0; i < 2; i++) {
    if (!(cfg->p2p.listen[i] = strdup(k_default_listen[i]))) return -ENOMEM;
    cfg->p2p.listen_count = i + 1;
  }
  cfg->p2p.workers = CONFIG_WORKERS_AUTO;
  cfg->p2p.worker_claim_wait_seconds = 20;
  cfg->p2p.enable_legacy_protocol = false;
  cfg->p2p.max_frame_bytes = MiB;
  cfg->p2p.max_streams_per_peer = 64;
  cfg->p2p.rate_limit_per_second = 100;
  cfg->p2p.max_connections = 256;
  cfg->p2p.enable_perf = false;
  cfg->p2p.noise_aead = CONFIG_AEAD_OPENSSL;
  cfg->p2p.write_early_bytes = CONFIG_WRITE_EARLY_NEVER;
  cfg->p2p.cache_replicate_max_peers = 6;
  cfg->p2p.profile = CONFIG_PROFILE_LOCAL;
  cfg->p2p.dht_provide_interval_seconds = 1800;
  cfg->p2p.mdns_query_interval_ms = 60000;
  cfg->p2p.dnsaddr_resolve = true;
  cfg->p2p.peer_timeout_seconds = 300;
  cfg->p2p.peer_addr_ttl_seconds = (uint32_t)DAY;
  cfg->p2p.discovery_timeout_ms = 5000;
  cfg->p2p.max_pending_handshakes = 64;
  cfg->p2p.max_pending_per_ip = 32;
  cfg->p2p.max_connections_per_ip = 64;
  cfg->p2p.reserved_connections = 32;
  cfg->p2p.reserved_handshakes = 16;
  cfg->p2p.authorized_memory = 256;
  cfg->p2p.authorized_memory_seconds = 3600;
  cfg->p2p.first_byte_timeout_ms = 2500;
  cfg->p2p.handshake_timeout_ms = 10000;
  cfg->p2p.stranger_max_frame_bytes = 64 * 1024;
  cfg->p2p.stranger_max_streams = 4;
  cfg->p2p.frame_timeout_ms = 10000;
  cfg->p2p.stream_budget_bytes = 4 * MiB;
  cfg->p2p.peer_budget_bytes = 8 * MiB;
  cfg->p2p.process_budget_bytes = 256 * MiB;
  cfg->p2p.max_waits_per_peer = 64;
  cfg->p2p.max_inflight_per_peer = 16;
  cfg->p2p.autonat_confidence = 3;
  cfg->p2p.autonat_v2 = true;
  cfg->p2p.relay_hop.max_reservations = 128;
  cfg->p2p.relay_hop.max_reservations_per_ip = 8;
  cfg->p2p.relay_hop.reservation_ttl_seconds = 3600;
  cfg->p2p.relay_hop.max_circuits = 64;
  cfg->p2p.relay_hop.max_circuits_per_peer = 8;
  cfg->p2p.relay_hop.limit_duration_seconds = 120;  /* the spec's suggestion (go, js) */
  cfg->p2p.relay_hop.limit_data_bytes = 1u << 17;   /* 128 KiB */
  cfg->mcp_tasks.runner = CONFIG_AUTO;
  cfg->p2p.baseline_max_priority = 5;
  cfg->auth.jwt.leeway_s = 60;
  cfg->auth.jwt.cache_entries = 256;
  cfg->stdio.enabled = true;
  cfg->http.session_idle_seconds = 1800;
  cfg->http.max_sessions = 1024;
  cfg->http.max_connections = 1024;
  cfg->http.max_body_bytes = 4 * MiB;
  cfg->http.max_header_bytes = 16 * 1024;
  cfg->http.request_timeout_seconds = 10;
  cfg->http.idle_timeout_seconds = 60;
  cfg->http.sse_keepalive_seconds = 15;
  return 0;
}

static int set_str(char **dst, const char *v) {
  char *n = strdup(v);
  if (!n) return -ENOMEM;
  free(*dst);
  *dst = n;
  return 0;
}

/* A PEERMCP_* switch: 1/true/yes/y/on or 0/false/no/off (any case); anything else is an error. */
static int env_bool(lctx *c, const char *name, bool *dst) {
  const char *v = env_nonempty(name);
  if (!v) return 0;
  if (env_truthy(v)) *dst = true;
  else if (env_falsy_word(v)) *dst = false;
  else return gerr(c, "%s: expected a boolean (1, true, yes, on or 0, false, no, off), got \"%s\"", name, v);
  return 0;
}

/* A switch of the Python services, read as they read it: truthy words are true, anything else
 * false. Primary name, then the compat twin. */
static void env_compat_bool(const char *primary, const char *compat, bool *dst) {
  const char *v = compat ? env_pc(primary, compat) : env_nonempty(primary);
  if (v) *dst = env_truthy(v);
}

/* A comma-separated list ("a, b,,c" → ["a", "b", "c"]) replacing *dst. */
static int env_list(lctx *c, const char *name, const char *v, size_t max, char ***dst, size_t *count) {
  size_t cap = 1;
  for (const char *p = v; *p; p++) cap += *p == ',';
  char **arr = calloc(cap + 1, sizeof *arr);
  if (!arr) return -ENOMEM;
  size_t n = 0;
  for (const char *t = v; t;) {
    const char *e = strchr(t, ',');
    size_t len = e ? (size_t)(e - t) : strlen(t);
    while (len && isspace((unsigned char)*t)) t++, len--;
    while (len && isspace((unsigned char)t[len - 1])) len--;
    if (len) {
      if (n == max) {
        strv_free(arr, n);
        return gerr(c, "%s: more than %zu entries", name, max);
      }
      if (!(arr[n++] = strndup(t, len))) {
        strv_free(arr, n - 1);
        return -ENOMEM;
      }
    }
    t = e ? e + 1 : NULL;
  }
  strv_free(*dst, *count);
  *dst = arr;
  *count = n;
  return 0;
}

/* The Python services' discovery switches: "0|false|no" (and "off") turn one off, any other
 * value turns it on (p2p_tasks_spec.md §1.7: they read MDNS/DHT that way). */
static void env_switch(const char *primary, const char *compat, config_tristate *dst) {
  const char *v = env_pc(primary, compat);
  if (v) *dst = env_falsy_word(v) ? CONFIG_OFF : CONFIG_ON;
}

static int env_seconds(lctx *c, const char *primary, const char *compat, double max, double *out) {
  const char *v = env_pc(primary, compat);
  if (!v) return 1;
  char *end;
  errno = 0;
  double d = strtod(v, &end);
  if (errno || end == v || *end || d != d || d > max) return gerr(c, "%s: expected a number of seconds, got \"%s\"", primary, v);
  *out = d;
  return 0;
}

static int apply_env_discovery(lctx *c) {
  config *cfg = c->cfg;
  const char *v;
  int rc;
  if ((v = env_nonempty("PEERMCP_P2P_PROFILE")) && profile_parse(v, &cfg->p2p.profile) != 0)
    return gerr(c, "PEERMCP_P2P_PROFILE: expected local, lan, private or public, got \"%s\"", v);
  env_switch("IPFS_ACCELERATE_PY_TASK_P2P_MDNS", "IPFS_DATASETS_PY_TASK_P2P_MDNS", &cfg->p2p.mdns);
  env_switch("IPFS_ACCELERATE_PY_TASK_P2P_DHT", "IPFS_DATASETS_PY_TASK_P2P_DHT", &cfg->p2p.dht);
  env_switch("IPFS_ACCELERATE_PY_TASK_P2P_RENDEZVOUS", "IPFS_DATASETS_PY_TASK_P2P_RENDEZVOUS", &cfg->p2p.rendezvous);
  if ((v = env_pc("IPFS_ACCELERATE_PY_TASK_P2P_BOOTSTRAP_PEERS", "IPFS_DATASETS_PY_TASK_P2P_BOOTSTRAP_PEERS"))) {
    cfg->p2p.bootstrap_set = true;
    if (env_falsy_word(v)) {
      strv_free(cfg->p2p.bootstrap, cfg->p2p.bootstrap_count);
      cfg->p2p.bootstrap = NULL;
      cfg->p2p.bootstrap_count = 0;
    } else if ((rc = env_list(c, "IPFS_ACCELERATE_PY_TASK_P2P_BOOTSTRAP_PEERS", v, CONFIG_MAX_BOOTSTRAP,
                              &cfg->p2p.bootstrap, &cfg->p2p.bootstrap_count)) != 0) {
      return rc;
    }
  }
  if ((v = env_pc("IPFS_ACCELERATE_PY_TASK_P2P_RENDEZVOUS_NS", "IPFS_DATASETS_PY_TASK_P2P_RENDEZVOUS_NS")) &&
      (rc = set_str(&cfg->p2p.rendezvous_ns, v)) != 0)
    return rc;
  double d;
  if ((rc = env_seconds(c, "IPFS_ACCELERATE_PY_TASK_P2P_DHT_PROVIDE_INTERVAL_S",
                        "IPFS_DATASETS_PY_TASK_P2P_DHT_PROVIDE_INTERVAL_S", 7.0 * DAY, &d)) < 0)
    return rc;
  if (rc == 0) cfg->p2p.dht_provide_interval_seconds = d <= 0 ? 0 : (uint32_t)(d < 1 ? 1 : d);
  if ((rc = env_seconds(c, "IPFS_ACCELERATE_PY_TASK_P2P_PEER_TIMEOUT_S", "IPFS_DATASETS_PY_TASK_P2P_PEER_TIMEOUT_S",
                        30.0 * DAY, &d)) < 0)
    return rc;
  if (rc == 0 && d >= 1) cfg->p2p.peer_timeout_seconds = (uint32_t)d;
  if ((rc = env_seconds(c, "IPFS_ACCELERATE_PY_TASK_P2P_DISCOVERY_TIMEOUT_S",
                        "IPFS_DATASETS_PY_TASK_P2P_DISCOVERY_TIMEOUT_S", 600, &d)) < 0)
    return rc;
  if (rc == 0 && d > 0) cfg->p2p.discovery_timeout_ms = d < 0.1 ? 100 : (uint32_t)(d * 1000);
  env_compat_bool("IPFS_ACCELERATE_PY_TASK_P2P_MDNS_ALLOW_LOOPBACK", "IPFS_DATASETS_PY_TASK_P2P_MDNS_ALLOW_LOOPBACK",
                  &cfg->p2p.mdns_allow_loopback);
  if ((v = env_pc("IPFS_ACCELERATE_PY_TASK_P2P_DNSADDR_RESOLVE", "IPFS_DATASETS_PY_TASK_P2P_DNSADDR_RESOLVE")))
    cfg->p2p.dnsaddr_resolve = !env_falsy_word(v);
  return 0;
}

/* An unsigned integer variable in [min, max]. 1 when unset, 0 when read, or an error. */
static int env_u64(lctx *c, const char *name, uint64_t min, uint64_t max, uint64_t *out) {
  const char *v = env_nonempty(name);
  if (!v) return 1;
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno || end == v || *end || v[0] == '-' || n < min || n > max)
    return gerr(c, "%s: expected an integer in %llu..%llu, got \"%s\"", name, (unsigned long long)min,
                (unsigned long long)max, v);
  *out = n;
  return 0;
}

/* NAT traversal (issue 16): the Python switches and the relay's limits. */
static int apply_env_nat(lctx *c) {
  config *cfg = c->cfg;
  const char *v;
  int rc;
  uint64_t n;
  env_switch("IPFS_ACCELERATE_PY_TASK_P2P_AUTONAT", "IPFS_DATASETS_PY_TASK_P2P_AUTONAT", &cfg->p2p.autonat);
  env_switch("IPFS_ACCELERATE_PY_TASK_P2P_RELAY", "IPFS_DATASETS_PY_TASK_P2P_RELAY", &cfg->p2p.relay);
  env_switch("IPFS_ACCELERATE_PY_TASK_P2P_HOLEPUNCH", "IPFS_DATASETS_PY_TASK_P2P_HOLEPUNCH", &cfg->p2p.holepunch);
  if ((v = env_pc("IPFS_ACCELERATE_PY_TASK_P2P_RELAY_HOP", "IPFS_DATASETS_PY_TASK_P2P_RELAY_HOP")))
    cfg->p2p.relay_hop.enabled = !env_falsy_word(v);
  if ((rc = env_u64(c, "IPFS_ACCELERATE_PY_TASK_P2P_RELAY_HOP_MAX_RESERVATIONS", 0, 65536, &n)) < 0) return rc;
  if (rc == 0) cfg->p2p.relay_hop.max_reservations = (uint32_t)n;
  if ((rc = env_u64(c, "IPFS_ACCELERATE_PY_TASK_P2P_RELAY_HOP_LIMIT_DATA_BYTES", 0, 1024ull * 1024 * MiB, &n)) < 0)
    return rc;
  if (rc == 0) cfg->p2p.relay_hop.limit_data_bytes = n;
  if ((rc = env_u64(c, "IPFS_ACCELERATE_PY_TASK_P2P_RELAY_HOP_LIMIT_DURATION_S", 0, DAY, &n)) < 0) return rc;
  if (rc == 0) cfg->p2p.relay_hop.limit_duration_seconds = (uint32_t)n;
  return 0;
}

static int resolve_nat(lctx *c) {
  config *cfg = c->cfg;
  config_profile p = cfg->p2p.profile;
  for (size_t i = 0; i < cfg->p2p.relay_count; i++)
    if (!addr_with_peer(cfg->p2p.relays[i])) {
      char path[64];
      snprintf(path, sizeof path, "p2p.relays[%zu]", i);
      return kerr(c, path, "\"%s\" is not a multiaddr ending in /p2p/<PeerId>", cfg->p2p.relays[i]);
    }
  bool on = cfg->p2p.enabled, wide = p == CONFIG_PROFILE_PRIVATE || p == CONFIG_PROFILE_PUBLIC;
  cfg->p2p.eff.autonat = on && (cfg->p2p.autonat == CONFIG_ON || (cfg->p2p.autonat == CONFIG_AUTO && wide));
  cfg->p2p.eff.relay = on && cfg->p2p.relay != CONFIG_OFF;
  cfg->p2p.eff.holepunch =
      on && (cfg->p2p.holepunch == CONFIG_ON ||
             (cfg->p2p.holepunch == CONFIG_AUTO && cfg->p2p.eff.relay && (wide || cfg->p2p.relay_count > 0)));
  return 0;
}

/* What the profile and the switches come to (config.h `eff`). */
static int resolve_discovery(lctx *c) {
  config *cfg = c->cfg;
  config_profile p = cfg->p2p.profile;
  if (!cfg->p2p.rendezvous_ns && !(cfg->p2p.rendezvous_ns = strdup("ipfs-accelerate-task-queue"))) return -ENOMEM;
  const char *ns = cfg->p2p.rendezvous_ns;
  bool ns_ok = *ns && strlen(ns) <= 200;
  for (const char *q = ns; ns_ok && *q; q++) ns_ok = (unsigned char)*q > 0x20 && *q != 0x7f && *q != '/';
  if (!ns_ok) return kerr(c, "p2p.rendezvous_ns", "\"%s\" is not a namespace (1 to 200 printable bytes, no '/' or space)", ns);
  if (!cfg->p2p.bootstrap_set && p == CONFIG_PROFILE_PUBLIC) {
    size_t n = 0;
    while (config_public_bootstrap[n]) n++;
    int rc = set_strv(&cfg->p2p.bootstrap, &cfg->p2p.bootstrap_count, config_public_bootstrap, n);
    if (rc) return rc;
  }
  for (size_t i = 0; i < cfg->p2p.bootstrap_count; i++)
    if (!addr_with_peer(cfg->p2p.bootstrap[i])) {
      char path[64];
      snprintf(path, sizeof path, "p2p.bootstrap[%zu]", i);
      return kerr(c, path, "\"%s\" is not a multiaddr ending in /p2p/<PeerId>", cfg->p2p.bootstrap[i]);
    }
  if (cfg->p2p.dht_protocol && (cfg->p2p.dht_protocol[0] != '/' || strpbrk(cfg->p2p.dht_protocol, " \t\n")))
    return kerr(c, "p2p.dht_protocol", "\"%s\" is not a protocol id (e.g. /peermcp/kad/1.0.0)", cfg->p2p.dht_protocol);
  bool on = cfg->p2p.enabled;
  cfg->p2p.eff.mdns = on && (cfg->p2p.mdns == CONFIG_ON || (cfg->p2p.mdns == CONFIG_AUTO && p == CONFIG_PROFILE_LAN));
  cfg->p2p.eff.dht = on && (cfg->p2p.dht == CONFIG_ON ||
                            (cfg->p2p.dht == CONFIG_AUTO && (p == CONFIG_PROFILE_PRIVATE || p == CONFIG_PROFILE_PUBLIC)));
  cfg->p2p.eff.dht_server = cfg->p2p.eff.dht && (cfg->p2p.dht_mode == CONFIG_DHT_SERVER ||
                                                 (cfg->p2p.dht_mode == CONFIG_DHT_AUTO && p != CONFIG_PROFILE_PUBLIC));
  cfg->p2p.eff.rendezvous_publish =
      cfg->p2p.eff.dht && (cfg->p2p.rendezvous == CONFIG_ON || cfg->p2p.rendezvous == CONFIG_AUTO);
  cfg->p2p.eff.dht_protocol = cfg->p2p.dht_protocol ? cfg->p2p.dht_protocol
                              : p == CONFIG_PROFILE_PRIVATE ? CONFIG_PRIVATE_DHT_PROTOCOL
                                                            : CONFIG_PUBLIC_DHT_PROTOCOL;
  return 0;
}

static int apply_env(lctx *c) {
  config *cfg = c->cfg;
  const char *v;
  int rc = 0;
  if ((v = env_nonempty("PEERMCP_STATE_DIR")) && (rc = set_str(&cfg->state_dir, v)) != 0) return rc;
  if ((v = env_nonempty("PEERMCP_LOG_LEVEL"))) {
    log_level lv;
    if (log_level_parse(v, &lv) != 0)
      return gerr(c, "PEERMCP_LOG_LEVEL: unknown log level \"%s\" (debug, info, notice, warning, error, critical, off)", v);
    cfg->log_level = lv;
  }
  if ((v = env_pc("IPFS_ACCELERATE_PY_TASK_QUEUE_PATH", "IPFS_DATASETS_PY_TASK_QUEUE_PATH")) &&
      (rc = set_str(&cfg->queue.path, v)) != 0)
    return rc;
  if ((v = env_pc("IPFS_ACCELERATE_PY_TASK_P2P_CACHE_DIR", "IPFS_DATASETS_PY_TASK_P2P_CACHE_DIR")) &&
      (rc = set_str(&cfg->cache.dir, v)) != 0)
    return rc;
  if ((v = env_pc("IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE", "IPFS_DATASETS_PY_TASK_P2P_ANNOUNCE_FILE"))) {
    c->announce_set = true;
    if (env_falsy_word(v)) {
      free(cfg->p2p.announce_file);
      cfg->p2p.announce_file = NULL;
    } else if ((rc = set_str(&cfg->p2p.announce_file, v)) != 0) return rc;
  }
  /* The shared token: the first of the two that is not blank, trimmed (the Python
   * get_shared_token()); a blank one does not hide the other or the file's. */
  static const char *const tok_vars[] = {"IPFS_ACCELERATE_PY_TASK_P2P_TOKEN", "IPFS_DATASETS_PY_TASK_P2P_TOKEN"};
  for (size_t i = 0; i < 2; i++) {
    if (!(v = env_nonempty(tok_vars[i]))) continue;
    size_t n = strlen(v);
    while (n && isspace((unsigned char)*v)) v++, n--;
    while (n && isspace((unsigned char)v[n - 1])) n--;
    if (!n) continue;
    char *t = strndup(v, n);
    if (!t) return -ENOMEM;
    free(cfg->p2p.token);
    cfg->p2p.token = t;
    break;
  }
  if ((v = env_nonempty("IPFS_ACCELERATE_PY_TASK_P2P_ENABLE_LEGACY_PROTOCOL")))
    cfg->p2p.enable_legacy_protocol = env_truthy(v);
  if ((v = env_nonempty("IPFS_ACCELERATE_PY_TASK_P2P_SESSION"))) {
    if (strlen(v) > 4096) return gerr(c, "IPFS_ACCELERATE_PY_TASK_P2P_SESSION: longer than 4096 bytes");
    if ((rc = set_str(&cfg->p2p.session, v)) != 0) return rc;
  }
  env_compat_bool("IPFS_ACCELERATE_PY_TASK_P2P_DETERMINISTIC", "IPFS_DATASETS_PY_TASK_P2P_DETERMINISTIC",
                  &cfg->p2p.deterministic);
  env_compat_bool("IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE", "IPFS_DATASETS_PY_TASK_P2P_CACHE_REPLICATE",
                  &cfg->p2p.cache_replicate);
  const char *tn = "IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE_TARGETS";
  if (!(v = env_pc(tn, "IPFS_DATASETS_PY_TASK_P2P_CACHE_REPLICATE_TARGETS"))) {
    tn = "IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE_PEERS";
    v = env_pc(tn, "IPFS_DATASETS_PY_TASK_P2P_CACHE_REPLICATE_PEERS");
  }
  if (v && (rc = env_list(c, tn, v, 64, &cfg->p2p.cache_replicate_targets, &cfg->p2p.cache_replicate_target_count)) != 0)
    return rc;
  if ((v = env_pc("IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE_MAX_PEERS",
                  "IPFS_DATASETS_PY_TASK_P2P_CACHE_REPLICATE_MAX_PEERS"))) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 0 || n > CONFIG_MAX_REPLICATE_PEERS)
      return gerr(c, "IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE_MAX_PEERS: expected an integer in 0..%d, got \"%s\"",
                  CONFIG_MAX_REPLICATE_PEERS, v);
    cfg->p2p.cache_replicate_max_peers = (uint32_t)n;
  }
  if ((rc = apply_env_discovery(c)) != 0) return rc;
  if ((rc = apply_env_nat(c)) != 0) return rc;
  if ((rc = env_bool(c, "PEERMCP_TEST_TOOLS", &cfg->tools.test_tools)) != 0) return rc;
  if ((rc = env_bool(c, "PEERMCP_CONFORMANCE_FIXTURES", &cfg->tools.conformance_fixtures)) != 0) return rc;
  if ((rc = env_bool(c, "PEERMCP_P2P_ENABLE_PERF", &cfg->p2p.enable_perf)) != 0) return rc;
  if ((rc = env_bool(c, "PEERMCP_P2P_UNFENCED_COMPLETE", &cfg->p2p.unfenced_complete)) != 0) return rc;
  if ((v = env_nonempty("PEERMCP_NOISE_AEAD"))) {
    if (strcmp(v, "openssl") == 0) cfg->p2p.noise_aead = CONFIG_AEAD_OPENSSL;
    else if (strcmp(v, "libsodium") == 0) cfg->p2p.noise_aead = CONFIG_AEAD_LIBSODIUM;
    else return gerr(c, "PEERMCP_NOISE_AEAD: unknown AEAD \"%s\" (openssl, libsodium)", v);
  }
  if ((v = env_nonempty("PEERMCP_MCP_TASKS_RUNNER"))) {
    if (strcasecmp(v, "auto") == 0) cfg->mcp_tasks.runner = CONFIG_AUTO;
    else if (env_truthy(v)) cfg->mcp_tasks.runner = CONFIG_ON;
    else if (env_falsy_word(v)) cfg->mcp_tasks.runner = CONFIG_OFF;
    else return gerr(c, "PEERMCP_MCP_TASKS_RUNNER: expected 1, 0 or auto (or true, false, …), got \"%s\"", v);
  }
  if ((v = env_nonempty("PEERMCP_P2P_WORKERS"))) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (strcasecmp(v, "auto") == 0) cfg->p2p.workers = CONFIG_WORKERS_AUTO;
    else if (errno || end == v || *end || n < 0 || n > 256)
      return gerr(c, "PEERMCP_P2P_WORKERS: expected an integer in 0..256 or auto, got \"%s\"", v);
    else cfg->p2p.workers = (uint32_t)n;
  }
  if ((v = env_nonempty("PEERMCP_LOG_ACCESS")) && access_parse(v, &cfg->log.access) != 0) {
    if (env_truthy(v)) cfg->log.access = CONFIG_ACCESS_ON;
    else if (env_falsy_word(v)) cfg->log.access = CONFIG_ACCESS_OFF;
    else return gerr(c, "PEERMCP_LOG_ACCESS: expected on, off or debug (or 1, 0, …), got \"%s\"", v);
  }
  if ((v = env_nonempty("PEERMCP_METRICS_LISTEN")) && (rc = set_str(&cfg->metrics.listen, v)) != 0) return rc;
  if ((v = env_nonempty("PEERMCP_HTTP_LISTEN")) && /* comma-separated HOST:PORT list */
      (rc = env_list(c, "PEERMCP_HTTP_LISTEN", v, 16, &cfg->http.listen, &cfg->http.listen_count)) != 0)
    return rc;
  /* Trust tiers and payload encryption, read as the Python services read them (§4.3, §4.5). */
  env_compat_bool("IPFS_ACCELERATE_PY_TASK_P2P_TRUST_TIERS", "IPFS_DATASETS_PY_TASK_P2P_TRUST_TIERS",
                  &cfg->p2p.trust_tiers);
  if ((v = env_pc("IPFS_ACCELERATE_PY_TASK_P2P_BASELINE_MAX_PRIORITY",
                  "IPFS_DATASETS_PY_TASK_P2P_BASELINE_MAX_PRIORITY"))) {
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end)
      return gerr(c, "IPFS_ACCELERATE_PY_TASK_P2P_BASELINE_MAX_PRIORITY: expected an integer, got \"%s\"", v);
    cfg->p2p.baseline_max_priority = n < 1 ? 1 : n > 10 ? 10 : (uint32_t)n; /* clamped, as in Python */
  }
  env_compat_bool("IPFS_ACCELERATE_PY_TASK_P2P_ENCRYPT", "IPFS_DATASETS_PY_TASK_P2P_ENCRYPT", &cfg->p2p.encrypt);
  if ((v = env_pc("IPFS_ACCELERATE_PY_TASK_P2P_ENCRYPTION_KEY", "IPFS_DATASETS_PY_TASK_P2P_ENCRYPTION_KEY"))) {
    if (strlen(v) > 4096) return gerr(c, "IPFS_ACCELERATE_PY_TASK_P2P_ENCRYPTION_KEY: longer than 4096 bytes");
    if ((rc = set_str(&cfg->p2p.encryption_key, v)) != 0) return rc;
  }
  return 0;
}

/* What command tools take from peermcp's environment, read once here: PATH (to find their
 * programs) and the values of their env_allow variables (empty values included). */
static int capture_env(lctx *c) {
  config *cfg = c->cfg;
  const char *path = getenv("PATH");
  if (path && *path && !(cfg->env_path = strdup(path))) return -ENOMEM;
  /* The HS256 secret: only from the variable the configuration names; never a default. */
  if (cfg->auth.jwt.hs256_secret_env) {
    const char *name = cfg->auth.jwt.hs256_secret_env;
    if (!env_name_valid(name)) return kerr(c, "auth.jwt.hs256_secret_env", "\"%s\" is not a variable name", name);
    const char *sec = getenv(name);
    if (!sec || !*sec)
      return kerr(c, "auth.jwt.hs256_secret_env", "names %s, which is not set (HS256 has no default secret)", name);
    if (strlen(sec) < 32)
      return kerr(c, "auth.jwt.hs256_secret_env", "%s holds fewer than 32 bytes (RFC 7518 §3.2)", name);
    if (!(cfg->auth.jwt.hs256_secret = strdup(sec))) return -ENOMEM;
  }
  for (size_t i = 0; i < cfg->tools.command_count; i++) {
    config_command *cmd = &cfg->tools.commands[i];
    if (!cmd->env_allow_count) continue;
    if (!(cmd->env_pass = calloc(cmd->env_allow_count + 1, sizeof *cmd->env_pass))) return -ENOMEM;
    for (size_t j = 0; j < cmd->env_allow_count; j++) {
      const char *name = cmd->env_allow[j];
      size_t kl = strlen(name);
      bool fixed = false;
      for (size_t k = 0; k < cmd->env_count; k++)
        if (strncmp(cmd->env[k], name, kl) == 0 && cmd->env[k][kl] == '=') fixed = true;
      const char *v = getenv(name);
      if (fixed || !v) continue;
      size_t len = kl + strlen(v) + 2;
      char *kv = malloc(len);
      if (!kv) return -ENOMEM;
      snprintf(kv, len, "%s=%s", name, v);
      cmd->env_pass[cmd->env_pass_count++] = kv;
    }
  }
  return 0;
}

/* --token-file: the credential in a file (at most 16 KiB, blanks trimmed), never in argv. A
 * file others may read is refused, as ssh refuses a readable key. */
static int read_token_file(lctx *c, const char *path) {
  if (!*path) return gerr(c, "--token-file: must not be empty");
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    (void)gerr(c, "--token-file %s: %s", path, strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 16384) {
    close(fd);
    return gerr(c, "--token-file %s: not a regular file of at most 16384 bytes", path);
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    close(fd);
    return gerr(c, "--token-file %s: readable by others (mode %o); chmod 600 it", path, (unsigned)(st.st_mode & 0777));
  }
  char buf[16385];
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += (size_t)r;
    if (n == sizeof buf - 1) break;
  }
  close(fd);
  const char *t = buf;
  while (n && isspace((unsigned char)*t)) t++, n--;
  while (n && isspace((unsigned char)t[n - 1])) n--;
  if (!n || memchr(t, 0, n)) {
    volatile char *w = buf;
    for (size_t i = 0; i < sizeof buf; i++) w[i] = 0;
    return gerr(c, "--token-file %s: empty, or not text", path);
  }
  char *tok = strndup(t, n);
  volatile char *w = buf;
  for (size_t i = 0; i < sizeof buf; i++) w[i] = 0;
  if (!tok) return -ENOMEM;
  free(c->cfg->p2p.client_token);
  c->cfg->p2p.client_token = tok;
  return 0;
}

static int apply_args(lctx *c, const config_args *a) {
  config *cfg = c->cfg;
  int rc;
  if (!a) return 0;
  if (a->token_file && (rc = read_token_file(c, a->token_file)) != 0) return rc;
  if (a->state_dir) {
    if (!*a->state_dir) return gerr(c, "--state-dir: must not be empty");
    if ((rc = set_str(&cfg->state_dir, a->state_dir)) != 0) return rc;
  }
  if (a->log_level) {
    log_level lv;
    if (log_level_parse(a->log_level, &lv) != 0) return gerr(c, "--log-level: unknown log level \"%s\"", a->log_level);
    cfg->log_level = lv;
  }
  if (a->no_p2p) cfg->p2p.enabled = false;
  if (a->p2p_profile && profile_parse(a->p2p_profile, &cfg->p2p.profile) != 0)
    return gerr(c, "--p2p-profile: expected local, lan, private or public, got \"%s\"", a->p2p_profile);
  if (a->no_stdio) cfg->stdio.enabled = false;
  if (a->conformance_fixtures) cfg->tools.conformance_fixtures = true;
  if (a->p2p_listen_count) {
    char **arr = calloc(a->p2p_listen_count + 1, sizeof *arr);
    if (!arr) return -ENOMEM;
    for (size_t i = 0; i < a->p2p_listen_count; i++) {
      if (!(arr[i] = strdup(a->p2p_listen[i]))) {
        strv_free(arr, i);
        return -ENOMEM;
      }
    }
    strv_free(cfg->p2p.listen, cfg->p2p.listen_count);
    cfg->p2p.listen = arr;
    cfg->p2p.listen_count = a->p2p_listen_count;
    c->listen_from_flag = true;
  }
  if (a->metrics_listen && (rc = set_str(&cfg->metrics.listen, a->metrics_listen)) != 0) return rc;
  if (a->http_listen_count &&
      (rc = set_strv(&cfg->http.listen, &cfg->http.listen_count, a->http_listen, a->http_listen_count)) != 0)
    return rc;
  return 0;
}

static int derive_paths(lctx *c) {
  config *cfg = c->cfg;
  if (!cfg->state_dir) {
    cfg->state_dir = config_default_state_dir();
    if (!cfg->state_dir)
      return gerr(c, "no state directory: set --state-dir, PEERMCP_STATE_DIR, state_dir in the config file, "
                     "XDG_STATE_HOME or HOME");
  }
  if (cfg->p2p.workers == CONFIG_WORKERS_AUTO) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->p2p.workers = ncpu < 1 ? 1 : ncpu > CONFIG_WORKERS_AUTO_MAX ? CONFIG_WORKERS_AUTO_MAX : (uint32_t)ncpu;
    cfg->p2p.workers_auto = true;
  }
  if (!cfg->queue.path && !(cfg->queue.path = path_join(cfg->state_dir, "queue.sqlite3"))) return -ENOMEM;
  if (!cfg->cache.dir && !(cfg->cache.dir = path_join(cfg->state_dir, "cache"))) return -ENOMEM;
  if (!c->announce_set && !cfg->p2p.announce_file &&
      !(cfg->p2p.announce_file = path_join(cfg->state_dir, "announce.json")))
    return -ENOMEM;
  return 0;
}

/* auth.jwt: the required keys, algorithm names, HS256 and its secret. */
static int check_jwt(lctx *c) {
  config *cfg = c->cfg;
  if (!cfg->auth.jwt.enabled) return 0;
  if (!cfg->auth.jwt.issuer) return kerr(c, "auth.jwt", "missing \"issuer\" (the iss tokens must carry)");
  if (!cfg->auth.jwt.audience) return kerr(c, "auth.jwt", "missing \"audience\" (the resource URI tokens must name)");
  static const char *const known[] = {"RS256", "PS256", "ES256", "EdDSA", "Ed25519", "HS256"};
  bool hs = false, asym = cfg->auth.jwt.algorithm_count == 0;
  for (size_t i = 0; i < cfg->auth.jwt.algorithm_count; i++) {
    const char *a = cfg->auth.jwt.algorithms[i];
    char p[64];
    snprintf(p, sizeof p, "auth.jwt.algorithms[%zu]", i);
    bool ok = false;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) ok |= strcmp(a, known[k]) == 0;
    if (strcasecmp(a, "none") == 0) return kerr(c, p, "\"none\" is never accepted (unsigned tokens)");
    if (!ok) return kerr(c, p, "unknown algorithm \"%s\" (RS256, PS256, ES256, EdDSA, HS256)", a);
    if (strcmp(a, "HS256") == 0) hs = true;
    else asym = true;
  }
  if (hs && !cfg->auth.jwt.hs256_secret_env)
    return kerr(c, "auth.jwt.algorithms", "HS256 needs auth.jwt.hs256_secret_env (the variable holding its secret)");
  if (!hs && cfg->auth.jwt.hs256_secret_env)
    return kerr(c, "auth.jwt.hs256_secret_env", "set, but HS256 is not in auth.jwt.algorithms");
  if (asym && !cfg->auth.jwt.jwks_file)
    return kerr(c, "auth.jwt", "missing \"jwks_file\" (the JWK Set of the issuer's public keys)");
  return 0;
}

/* Why a /unix/ listen path is unusable, or NULL: the path (one percent-encoded segment as
 * js-libp2p writes it, or the older slash form) must be 1..107 bytes (sun_path) with no NUL. */
static const char *unix_listen_problem(const char *rest) {
  size_t n = 0;
  if (strchr(rest, '/')) {
    n = strlen(rest) + 1;
  } else {
    for (const char *p = rest; *p; p++, n++) {
      if (*p != '%') continue;
      if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2])) return "a bad %XX escape in the unix path";
      if (p[1] == '0' && p[2] == '0') return "a NUL in the unix path";
      p += 2;
    }
  }
  if (n == 0) return "an empty unix socket path";
  if (n >= 108) return "a unix socket path must be shorter than 108 bytes (sun_path)";
  return NULL;
}

/* Why a p2p.listen entry cannot be listened on, or NULL: the host listens on TCP over IPv4 and
 * IPv6, at an address of this machine (no names, no UDP/QUIC, no /p2p/ part), and on Unix-domain
 * sockets for peers on this host (/unix/<path>). */
#define LISTEN_FORMS "/ip4/ADDR/tcp/PORT, /ip6/ADDR/tcp/PORT (e.g. /ip4/0.0.0.0/tcp/9710) or /unix/PATH"
static const char *listen_addr_problem(const char *a) {
  if (a[0] != '/') return "not a multiaddr; peermcp listens on " LISTEN_FORMS;
  if (strncmp(a, "/unix/", 6) == 0) {
    if (strstr(a, "/p2p/")) return "a listen address has no /p2p/ part (the PeerId is added when it is announced)";
    return unix_listen_problem(a + 6);
  }
  if (strstr(a, "/udp/") || strstr(a, "/quic")) return "UDP and QUIC are not supported; peermcp listens on " LISTEN_FORMS;
  if (strncmp(a, "/dns", 4) == 0) return "a listen address is an IP address, not a name; peermcp listens on " LISTEN_FORMS;
  if (strstr(a, "/p2p/")) return "a listen address has no /p2p/ part (the PeerId is added when it is announced)";
  char fam[8], addr[64], proto[8], port[8], rest[2];
  if (sscanf(a, "/%7[^/]/%63[^/]/%7[^/]/%7[^/]%1s", fam, addr, proto, port, rest) != 4)
    return "peermcp listens on TCP only: " LISTEN_FORMS;
  bool v4 = strcmp(fam, "ip4") == 0, v6 = strcmp(fam, "ip6") == 0;
  unsigned char bin[16];
  if ((!v4 && !v6) || strcmp(proto, "tcp") != 0) return "peermcp listens on TCP only: " LISTEN_FORMS;
  if (inet_pton(v4 ? AF_INET : AF_INET6, addr, bin) != 1) return v4 ? "not an IPv4 address" : "not an IPv6 address";
  char *end;
  errno = 0;
  long p = strtol(port, &end, 10);
  if (errno || *end || end == port || p < 0 || p > 65535) return "the port must be 0..65535";
  return NULL;
}

/* Checks between keys that only make sense together. */
static int cross_check(lctx *c) {
  config *cfg = c->cfg;
  int jrc = check_jwt(c);
  if (jrc != 0) return jrc;
  if (cfg->p2p.encrypt && !cfg->p2p.encryption_key && !cfg->p2p.token)
    return kerr(c, "p2p.encrypt", "on, but there is no secret: set p2p.encryption_key "
                                  "(IPFS_ACCELERATE_PY_TASK_P2P_ENCRYPTION_KEY) or the shared token");
  if (cfg->cache.max_value_bytes > cfg->cache.max_bytes && cfg->cache.max_bytes > 0)
    return kerr(c, "cache.max_value_bytes", "larger than cache.max_bytes (%llu)",
                (unsigned long long)cfg->cache.max_bytes);
  for (size_t i = 0; i < cfg->p2p.listen_count; i++) {
    const char *why = listen_addr_problem(cfg->p2p.listen[i]);
    if (!why) continue;
    if (c->listen_from_flag) return gerr(c, "--p2p-listen \"%s\": %s", cfg->p2p.listen[i], why);
    char p[64];
    snprintf(p, sizeof p, "p2p.listen[%zu]", i);
    return kerr(c, p, "\"%s\": %s", cfg->p2p.listen[i], why);
  }
  if (cfg->metrics.listen) {
    char host[64];
    uint16_t port;
    if (config_host_port_parse(cfg->metrics.listen, host, sizeof host, &port) != 0)
      return kerr(c, "metrics.listen",
                  "\"%s\" is not HOST:PORT (an IP address or localhost, and a port 0..65535; e.g. 127.0.0.1:9464)",
                  cfg->metrics.listen);
  }
  for (size_t i = 0; i < cfg->http.listen_count; i++) {
    char host[64];
    uint16_t port;
    if (config_host_port_parse(cfg->http.listen[i], host, sizeof host, &port) != 0) {
      char p[64];
      snprintf(p, sizeof p, "http.listen[%zu]", i);
      return kerr(c, p, "\"%s\" is not HOST:PORT (an IP address or localhost, and a port 0..65535; e.g. 127.0.0.1:8080)",
                  cfg->http.listen[i]);
    }
  }
  for (size_t i = 0; i < cfg->p2p.trusted_peer_count; i++) {
    const char *p = cfg->p2p.trusted_peers[i];
    bool ok = strlen(p) >= 40 && strlen(p) <= 128;
    for (const char *q = p; ok && *q; q++)
      ok = strchr("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", *q) != NULL;
    if (!ok) {
      char path[64];
      snprintf(path, sizeof path, "p2p.trusted_peers[%zu]", i);
      return kerr(c, path, "\"%s\" is not a base58 PeerId", p);
    }
  }
  return 0;
}

static int load_common(config *cfg, json_t *root, const char *text, size_t len, const char *name,
                       const config_args *args, char *err, size_t errlen) {
  lctx c = {.cfg = cfg, .name = name, .text = text, .len = len, .err = err, .errlen = errlen};
  int rc = set_defaults(cfg);
  if (rc == 0 && name) {
    if (!(cfg->config_path = strdup(name))) rc = -ENOMEM;
    const char *slash = strrchr(name, '/');
    if (rc == 0 && slash && !(c.dir = strndup(name, (size_t)(slash - name) + (slash == name))))
      rc = -ENOMEM;
  }
  if (rc == 0 && root) rc = apply_file(&c, root);
  if (rc == 0) rc = apply_env(&c);
  if (rc == 0) rc = apply_args(&c, args);
  if (rc == 0) rc = derive_paths(&c);
  if (rc == 0) rc = cross_check(&c);
  if (rc == 0) rc = resolve_discovery(&c);
  if (rc == 0) rc = resolve_nat(&c);
  if (rc == 0) rc = capture_env(&c);
  free(c.dir);
  if (rc == -ENOMEM && err && errlen) snprintf(err, errlen, "out of memory while loading the configuration");
  if (rc != 0) {
    config_free(cfg);
    memset(cfg, 0, sizeof *cfg);
  }
  return rc;
}

int config_load_text(config *cfg, const char *text, size_t len, const char *name, const config_args *args, char *err,
                     size_t errlen) {
  if (err && errlen) err[0] = 0;
  memset(cfg, 0, sizeof *cfg);
  if (!name) name = "<config>";
  if (len > CONFIG_FILE_MAX_BYTES) {
    if (err && errlen) snprintf(err, errlen, "%s: larger than %u bytes", name, CONFIG_FILE_MAX_BYTES);
    return -EFBIG;
  }
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    int line = jerr.line, col = jerr.column;
    if (col <= 0 || line <= 0) {
      /* jansson says column 0 at the end of the input (after a newline): name the place the
       * text stops instead, counted as the line/column of its last character */
      size_t end = jerr.position > 0 && (size_t)jerr.position <= len ? (size_t)jerr.position : len;
      while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' ' || text[end - 1] == '\t'))
        end--;
      line = 1;
      col = 0;
      for (size_t i = 0; i < end; i++) {
        if (text[i] == '\n') {
          line++;
          col = 0;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
          col++;
        }
      }
      col++; /* just past it */
    }
    if (err && errlen) snprintf(err, errlen, "%s:%d:%d: %s", name, line, col, jerr.text);
    return -EINVAL;
  }
  int rc = load_common(cfg, root, text, len, name, args, err, errlen);
  json_decref(root);
  return rc;
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "%s: %s", path, strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    snprintf(err, errlen, "%s: not a regular file", path);
    return -EINVAL;
  }
  if (st.st_size > (off_t)CONFIG_FILE_MAX_BYTES) {
    close(fd);
    snprintf(err, errlen, "%s: larger than %u bytes", path, CONFIG_FILE_MAX_BYTES);
    return -EFBIG;
  }
  size_t cap = (size_t)st.st_size + 1, n = 0;
  char *b = malloc(cap);
  if (!b) {
    close(fd);
    return -ENOMEM;
  }
  for (;;) {
    if (n == cap) { /* the file grew while reading: stay within the ceiling */
      if (cap > CONFIG_FILE_MAX_BYTES) {
        free(b);
        close(fd);
        snprintf(err, errlen, "%s: larger than %u bytes", path, CONFIG_FILE_MAX_BYTES);
        return -EFBIG;
      }
      char *nb = realloc(b, cap * 2);
      if (!nb) {
        free(b);
        close(fd);
        return -ENOMEM;
      }
      b = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, b + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(b);
      close(fd);
      snprintf(err, errlen, "%s: %s", path, strerror(e));
      return -e;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  *out = b;
  *len = n;
  return 0;
}

int config_load(config *cfg, const config_args *args, char *err, size_t errlen) {
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = 0;
  memset(cfg, 0, sizeof *cfg);
  const char *explicit_path = args && args->config_file ? args->config_file : env_nonempty("PEERMCP_CONFIG");
  char *deflt = NULL;
  const char *path = explicit_path;
  if (args && args->config_file && !*args->config_file) {
    snprintf(err, errlen, "--config: must not be empty");
    return -EINVAL;
  }
  if (!path) {
    deflt = config_default_file();
    struct stat st;
    if (deflt && stat(deflt, &st) == 0) path = deflt;
  }
  int rc;
  if (!path) {
    rc = load_common(cfg, NULL, NULL, 0, NULL, args, err, errlen);
  } else {
    char *text = NULL;
    size_t len = 0;
    rc = read_file(path, &text, &len, err, errlen);
    if (rc == 0) rc = config_load_text(cfg, text, len, path, args, err, errlen);
    free(text);
  }
  free(deflt);
  return rc;
}

void config_free(config *cfg) {
  if (!cfg) return;
  free(cfg->config_path);
  free(cfg->state_dir);
  free(cfg->env_path);
  for (size_t i = 0; i < cfg->tools.command_count; i++) command_free(&cfg->tools.commands[i]);
  free(cfg->tools.commands);
  strv_free(cfg->tools.disabled, cfg->tools.disabled_count);
  free(cfg->queue.path);
  free(cfg->cache.dir);
  strv_free(cfg->p2p.listen, cfg->p2p.listen_count);
  free(cfg->p2p.announce_file);
  strv_free(cfg->p2p.trusted_peers, cfg->p2p.trusted_peer_count);
  free(cfg->p2p.session);
  strv_free(cfg->p2p.cache_replicate_targets, cfg->p2p.cache_replicate_target_count);
  free(cfg->p2p.dht_protocol);
  strv_free(cfg->p2p.bootstrap, cfg->p2p.bootstrap_count);
  strv_free(cfg->p2p.relays, cfg->p2p.relay_count);
  named_peers_free(cfg->p2p.peers, cfg->p2p.peer_count);
  free(cfg->p2p.rendezvous_ns);
  strv_free(cfg->http.listen, cfg->http.listen_count);
  free(cfg->metrics.listen);
  strv_free(cfg->http.allowed_origins, cfg->http.allowed_origin_count);
  strv_free(cfg->http.allowed_hosts, cfg->http.allowed_host_count);
  char *secrets[] = {cfg->p2p.token, cfg->p2p.client_token, cfg->p2p.encryption_key, cfg->auth.jwt.hs256_secret};
  for (size_t k = 0; k < sizeof secrets / sizeof secrets[0]; k++) {
    if (!secrets[k]) continue;
    volatile char *t = secrets[k];
    for (size_t i = 0; t[i]; i++) t[i] = 0;
    free(secrets[k]);
  }
  free(cfg->auth.resource);
  strv_free(cfg->auth.authorization_servers, cfg->auth.authorization_server_count);
  free(cfg->auth.jwt.issuer);
  free(cfg->auth.jwt.audience);
  free(cfg->auth.jwt.jwks_file);
  strv_free(cfg->auth.jwt.algorithms, cfg->auth.jwt.algorithm_count);
  free(cfg->auth.jwt.hs256_secret_env);
  strv_free(cfg->stdio.scopes, cfg->stdio.scope_count);
  memset(cfg, 0, sizeof *cfg);
}

int config_host_port_parse(const char *s, char *host, size_t hostcap, uint16_t *port) {
  if (!s || !*s || !host || hostcap < 2) return -EINVAL;
  const char *h = NULL, *p;
  size_t hl = 0;
  if (s[0] == '[') { /* [IPv6]:PORT */
    const char *e = strchr(s, ']');
    if (!e || e[1] != ':') return -EINVAL;
    h = s + 1;
    hl = (size_t)(e - h);
    p = e + 2;
  } else {
    const char *colon = strrchr(s, ':');
    if (colon && strchr(s, ':') != colon) return -EINVAL; /* a bare IPv6 address needs brackets */
    if (colon) {
      h = s;
      hl = (size_t)(colon - s);
      p = colon + 1;
    } else {
      p = s; /* a bare port */
    }
  }
  if (!*p || strlen(p) > 5) return -EINVAL;
  unsigned long v = 0;
  for (const char *q = p; *q; q++) {
    if (*q < '0' || *q > '9') return -EINVAL;
    v = v * 10 + (unsigned long)(*q - '0');
  }
  if (v > 65535) return -EINVAL;
  char buf[64];
  if (!h) {
    snprintf(buf, sizeof buf, "127.0.0.1");
  } else {
    if (hl == 0 || hl >= sizeof buf) return -EINVAL;
    memcpy(buf, h, hl);
    buf[hl] = 0;
    if (strcmp(buf, "localhost") == 0) snprintf(buf, sizeof buf, "127.0.0.1");
  }
  unsigned char addr[16];
  bool v6 = s[0] == '[';
  if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, addr) != 1) return -EINVAL;
  if (strlen(buf) + 1 > hostcap) return -EINVAL;
  memcpy(host, buf, strlen(buf) + 1);
  *port = (uint16_t)v;
  return 0;
}

bool config_tool_disabled(const config *cfg, const char *name) {
  for (size_t i = 0; cfg && name && i < cfg->tools.disabled_count; i++)
    if (strcmp(cfg->tools.disabled[i], name) == 0) return true;
  return false;
}

/* ---------- argv ---------- */

void config_args_init(config_args *args) { memset(args, 0, sizeof *args); }

void config_args_free(config_args *args) {
  free(args->p2p_listen);
  free(args->http_listen);
  memset(args, 0, sizeof *args);
}

const char *config_args_help(void) {
  return "  --config FILE        configuration file (env PEERMCP_CONFIG; default $XDG_CONFIG_HOME/peermcp/config.json)\n"
         "  --state-dir DIR      state directory (env PEERMCP_STATE_DIR; default $XDG_STATE_HOME/peermcp)\n"
         "  --log-level LEVEL    debug, info, notice, warning, error, critical, off (env PEERMCP_LOG_LEVEL)\n"
         "  --no-p2p             do not start the libp2p peer\n"
         "  --no-stdio           do not serve MCP on stdin/stdout\n"
         "  --p2p-listen ADDR    libp2p listen multiaddr (repeatable; replaces p2p.listen)\n"
         "  --p2p-profile NAME   discovery: local (default: none), lan (mDNS), private (DHT over\n"
         "                       p2p.bootstrap), public (the IPFS DHT) (env PEERMCP_P2P_PROFILE)\n"
         "  --http-listen HOST:PORT  serve MCP over Streamable HTTP at http://HOST:PORT/mcp (repeatable;\n"
         "                       replaces http.listen; env PEERMCP_HTTP_LISTEN; a bare PORT = 127.0.0.1)\n"
         "  --metrics-listen HOST:PORT  serve /metrics, /healthz and /readyz (only) at http://HOST:PORT\n"
         "                       (metrics.listen; env PEERMCP_METRICS_LISTEN; a bare PORT = 127.0.0.1)\n"
         "  --conformance-fixtures  serve the MCP conformance suite's fixtures (tests only)\n"
         "  --token-file FILE    a JWT or the shared token to present to peers (mode 600; never give a\n"
         "                       token on the command line, where ps shows it)\n";
}

int config_args_parse(config_args *args, int *argc, char **argv, char *err, size_t errlen) {
  static const char *const with_value[] = {"--config", "--state-dir", "--log-level", "--p2p-listen", "--http-listen",
                                           "--p2p-profile", "--token-file", "--metrics-listen"};
  int out = 1;
  int n = *argc;
  int i = 1;
  for (; i < n; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) break;
    if (strcmp(a, "--no-p2p") == 0) {
      args->no_p2p = true;
      continue;
    }
    if (strcmp(a, "--no-stdio") == 0) {
      args->no_stdio = true;
      continue;
    }
    if (strcmp(a, "--conformance-fixtures") == 0) {
      args->conformance_fixtures = true;
      continue;
    }
    int which = -1;
    const char *val = NULL;
    for (int k = 0; k < (int)(sizeof with_value / sizeof with_value[0]); k++) {
      size_t l = strlen(with_value[k]);
      if (strncmp(a, with_value[k], l) == 0 && (a[l] == 0 || a[l] == '=')) {
        which = k;
        if (a[l] == '=') val = a + l + 1;
        break;
      }
    }
    if (which < 0) {
      argv[out++] = argv[i];
      continue;
    }
    if (!val) {
      if (i + 1 >= n) {
        if (err && errlen) snprintf(err, errlen, "%s needs a value", with_value[which]);
        return -EINVAL;
      }
      val = argv[++i];
    }
    switch (which) {
    case 0: args->config_file = val; break;
    case 1: args->state_dir = val; break;
    case 2: {
      log_level lv;
      if (log_level_parse(val, &lv) != 0) {
        if (err && errlen)
          snprintf(err, errlen, "--log-level: unknown level \"%s\" (debug, info, notice, warning, error, critical, off)", val);
        return -EINVAL;
      }
      args->log_level = val;
      break;
    }
    case 3: {
      if (args->p2p_listen_count >= 64) {
        if (err && errlen) snprintf(err, errlen, "--p2p-listen given more than 64 times");
        return -EINVAL;
      }
      const char **nl = realloc(args->p2p_listen, (args->p2p_listen_count + 1) * sizeof *nl);
      if (!nl) return -ENOMEM;
      nl[args->p2p_listen_count++] = val;
      args->p2p_listen = nl;
      break;
    }
    case 6: args->token_file = val; break;
    case 4: {
      if (args->http_listen_count >= 16) {
        if (err && errlen) snprintf(err, errlen, "--http-listen given more than 16 times");
        return -EINVAL;
      }
      const char **nl = realloc(args->http_listen, (args->http_listen_count + 1) * sizeof *nl);
      if (!nl) return -ENOMEM;
      nl[args->http_listen_count++] = val;
      args->http_listen = nl;
      break;
    }
    case 5: {
      config_profile pr;
      if (profile_parse(val, &pr) != 0) {
        if (err && errlen) snprintf(err, errlen, "--p2p-profile: expected local, lan, private or public, got \"%s\"", val);
        return -EINVAL;
      }
      args->p2p_profile = val;
      break;
    }
    case 7: args->metrics_listen = val; break;
    }
  }
  for (; i < n; i++) argv[out++] = argv[i]; /* "--" and everything after it */
  argv[out] = NULL;
  *argc = out;
  return 0;
}

/* ---------- introspection ---------- */

static json_t *strv_json(char **v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_string(v[i]));
  return a;
}

/* As the file spells it: true, false or "auto". */
static json_t *tristate_json(config_tristate t) {
  return t == CONFIG_ON ? json_true() : t == CONFIG_OFF ? json_false() : json_string("auto");
}

json_t *config_to_json(const config *cfg) {
  json_t *cmds = json_array();
  for (size_t i = 0; cmds && i < cfg->tools.command_count; i++) {
    const config_command *c = &cfg->tools.commands[i];
    static const char *const outs[] = {"auto", "json", "text"};
    json_array_append_new(
        cmds, json_pack("{s:s, s:s, s:O, s:o, s:s?, s:o, s:I, s:I, s:b, s:s}", "name", c->name, "category",
                        c->category, "input_schema", c->input_schema, "argv", strv_json(c->argv, c->argc), "cwd",
                        c->cwd, "env_allow", strv_json(c->env_allow, c->env_allow_count), "timeout_ms",
                        (json_int_t)c->timeout_ms, "max_output_bytes", (json_int_t)c->max_output_bytes, "remote",
                        c->remote, "output", outs[c->output]));
  }
  json_t *tools = json_pack("{s:o, s:o, s:b, s:b}", "commands", cmds, "disabled",
                            strv_json(cfg->tools.disabled, cfg->tools.disabled_count), "test_tools",
                            cfg->tools.test_tools, "conformance_fixtures", cfg->tools.conformance_fixtures);
  json_t *queue = json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:b, s:b, s:I}", "path", cfg->queue.path, "max_payload_bytes",
                            (json_int_t)cfg->queue.max_payload_bytes, "lease_seconds",
                            (json_int_t)cfg->queue.lease_seconds, "max_attempts", (json_int_t)cfg->queue.max_attempts,
                            "wait_max_seconds", (json_int_t)cfg->queue.wait_max_seconds, "group_commit",
                            cfg->queue.group_commit, "wal_prefill", cfg->queue.wal_prefill, "sync_pipeline",
                            cfg->queue.sync_pipeline, "prune_after_seconds", (json_int_t)cfg->queue.prune_after_seconds);
  json_t *cache = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "dir", cfg->cache.dir, "max_bytes",
                            (json_int_t)cfg->cache.max_bytes, "max_entries", (json_int_t)cfg->cache.max_entries,
                            "max_value_bytes", (json_int_t)cfg->cache.max_value_bytes, "default_ttl_seconds",
                            (json_int_t)cfg->cache.default_ttl_seconds, "sweep_interval_seconds",
                            (json_int_t)cfg->cache.sweep_interval_seconds);
  json_t *p2p = json_pack(
      "{s:b, s:o, s:s?, s:o, s:s?, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "enabled", cfg->p2p.enabled, "listen",
      strv_json(cfg->p2p.listen, cfg->p2p.listen_count), "announce_file", cfg->p2p.announce_file, "trusted_peers",
      strv_json(cfg->p2p.trusted_peers, cfg->p2p.trusted_peer_count), "token", cfg->p2p.token ? "***" : NULL,
      "workers", (json_int_t)cfg->p2p.workers, "enable_legacy_protocol", cfg->p2p.enable_legacy_protocol,
      "max_frame_bytes", (json_int_t)cfg->p2p.max_frame_bytes, "max_streams_per_peer",
      (json_int_t)cfg->p2p.max_streams_per_peer, "rate_limit_per_second", (json_int_t)cfg->p2p.rate_limit_per_second,
      "authorized_rate_limit_per_second", (json_int_t)cfg->p2p.authorized_rate_limit_per_second,
      "worker_claim_wait_seconds", (json_int_t)cfg->p2p.worker_claim_wait_seconds, "max_connections", (json_int_t)cfg->p2p.max_connections);
  if (p2p) {
    json_t *more = json_pack(
        "{s:b, s:s, s:I, s:b, s:s?, s:b, s:b, s:o, s:I}", "enable_perf", cfg->p2p.enable_perf, "noise_aead",
        cfg->p2p.noise_aead == CONFIG_AEAD_LIBSODIUM ? "libsodium" : "openssl", "write_early_bytes",
        (json_int_t)cfg->p2p.write_early_bytes, "unfenced_complete",
        cfg->p2p.unfenced_complete, "session", cfg->p2p.session, "deterministic", cfg->p2p.deterministic,
        "cache_replicate", cfg->p2p.cache_replicate, "cache_replicate_targets",
        strv_json(cfg->p2p.cache_replicate_targets, cfg->p2p.cache_replicate_target_count),
        "cache_replicate_max_peers", (json_int_t)cfg->p2p.cache_replicate_max_peers);
    if (more) {
      json_t *sec = json_pack("{s:b, s:I, s:b, s:s?, s:s?}", "trust_tiers", cfg->p2p.trust_tiers,
                              "baseline_max_priority", (json_int_t)cfg->p2p.baseline_max_priority, "encrypt",
                              cfg->p2p.encrypt, "encryption_key", cfg->p2p.encryption_key ? "***" : NULL,
                              "client_token", cfg->p2p.client_token ? "***" : NULL);
      if (!sec || json_object_update(more, sec) != 0) {
        json_decref(more);
        more = NULL;
      }
      json_decref(sec);
    }
    json_t *limits = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "max_pending_handshakes",
        (json_int_t)cfg->p2p.max_pending_handshakes, "max_pending_per_ip", (json_int_t)cfg->p2p.max_pending_per_ip,
        "max_connections_per_ip", (json_int_t)cfg->p2p.max_connections_per_ip, "reserved_connections",
        (json_int_t)cfg->p2p.reserved_connections, "first_byte_timeout_ms", (json_int_t)cfg->p2p.first_byte_timeout_ms,
        "handshake_timeout_ms", (json_int_t)cfg->p2p.handshake_timeout_ms, "stranger_max_frame_bytes",
        (json_int_t)cfg->p2p.stranger_max_frame_bytes, "stranger_max_streams", (json_int_t)cfg->p2p.stranger_max_streams,
        "frame_timeout_ms", (json_int_t)cfg->p2p.frame_timeout_ms, "stream_budget_bytes",
        (json_int_t)cfg->p2p.stream_budget_bytes, "peer_budget_bytes", (json_int_t)cfg->p2p.peer_budget_bytes,
        "process_budget_bytes", (json_int_t)cfg->p2p.process_budget_bytes, "max_waits_per_peer",
        (json_int_t)cfg->p2p.max_waits_per_peer, "max_inflight_per_peer", (json_int_t)cfg->p2p.max_inflight_per_peer);
    if (limits && json_object_update_new(limits, json_pack("{s:I, s:I, s:I}", "reserved_handshakes",
                                                           (json_int_t)cfg->p2p.reserved_handshakes, "authorized_memory",
                                                           (json_int_t)cfg->p2p.authorized_memory,
                                                           "authorized_memory_seconds",
                                                           (json_int_t)cfg->p2p.authorized_memory_seconds)) != 0) {
      json_decref(limits);
      limits = NULL;
    }
    if (!more || !limits || json_object_update(p2p, more) != 0 || json_object_update(p2p, limits) != 0) {
      json_decref(p2p);
      p2p = NULL;
    }
    json_decref(more);
    json_decref(limits);
  }
  if (p2p) {
    static const char *const modes[] = {"auto", "server", "client"};
    json_t *peers = json_object();
    for (size_t i = 0; peers && i < cfg->p2p.peer_count; i++)
      json_object_set_new(peers, cfg->p2p.peers[i].name, json_string(cfg->p2p.peers[i].multiaddr));
    json_t *disc = json_pack(
        "{s:s, s:o, s:o, s:o, s:s, s:s?, s:o, s:o, s:s, s:I, s:b, s:I, s:b, s:I, s:I, s:I, s:{s:b, s:b, s:b, s:b, s:s}}",
        "profile", config_profile_name(cfg->p2p.profile), "mdns", tristate_json(cfg->p2p.mdns), "dht",
        tristate_json(cfg->p2p.dht), "rendezvous", tristate_json(cfg->p2p.rendezvous), "dht_mode",
        modes[cfg->p2p.dht_mode], "dht_protocol", cfg->p2p.dht_protocol, "bootstrap",
        strv_json(cfg->p2p.bootstrap, cfg->p2p.bootstrap_count), "peers", peers, "rendezvous_ns",
        cfg->p2p.rendezvous_ns ? cfg->p2p.rendezvous_ns : "", "dht_provide_interval_seconds",
        (json_int_t)cfg->p2p.dht_provide_interval_seconds, "mdns_allow_loopback", cfg->p2p.mdns_allow_loopback,
        "mdns_query_interval_ms", (json_int_t)cfg->p2p.mdns_query_interval_ms, "dnsaddr_resolve",
        cfg->p2p.dnsaddr_resolve, "peer_timeout_seconds", (json_int_t)cfg->p2p.peer_timeout_seconds,
        "peer_addr_ttl_seconds", (json_int_t)cfg->p2p.peer_addr_ttl_seconds, "discovery_timeout_ms",
        (json_int_t)cfg->p2p.discovery_timeout_ms, "effective", "mdns", cfg->p2p.eff.mdns, "dht", cfg->p2p.eff.dht,
        "dht_server", cfg->p2p.eff.dht_server, "rendezvous_publish", cfg->p2p.eff.rendezvous_publish,
        "dht_protocol", cfg->p2p.eff.dht_protocol ? cfg->p2p.eff.dht_protocol : "");
    if (!disc || json_object_update(p2p, disc) != 0) {
      json_decref(p2p);
      p2p = NULL;
    }
    json_decref(disc);
  }
  if (p2p) {
    const struct config_relay_hop *rh = &cfg->p2p.relay_hop;
    json_t *nat = json_pack(
        "{s:o, s:o, s:o, s:o, s:I, s:{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:b, s:b, s:b}}", "autonat",
        tristate_json(cfg->p2p.autonat), "relay", tristate_json(cfg->p2p.relay), "holepunch",
        tristate_json(cfg->p2p.holepunch), "relays", strv_json(cfg->p2p.relays, cfg->p2p.relay_count),
        "autonat_confidence", (json_int_t)cfg->p2p.autonat_confidence, "relay_hop", "enabled", rh->enabled,
        "max_reservations", (json_int_t)rh->max_reservations, "max_reservations_per_ip",
        (json_int_t)rh->max_reservations_per_ip, "reservation_ttl_seconds", (json_int_t)rh->reservation_ttl_seconds,
        "max_circuits", (json_int_t)rh->max_circuits, "max_circuits_per_peer", (json_int_t)rh->max_circuits_per_peer,
        "limit_duration_seconds", (json_int_t)rh->limit_duration_seconds, "limit_data_bytes",
        (json_int_t)rh->limit_data_bytes, "nat_effective", "autonat", cfg->p2p.eff.autonat, "relay",
        cfg->p2p.eff.relay, "holepunch", cfg->p2p.eff.holepunch);
    if (nat) json_object_set_new(nat, "autonat_v2", json_boolean(cfg->p2p.autonat_v2));
    if (!nat || json_object_update(p2p, nat) != 0) {
      json_decref(p2p);
      p2p = NULL;
    }
    json_decref(nat);
  }
  json_t *http = json_pack(
      "{s:o, s:o, s:o, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "listen",
      strv_json(cfg->http.listen, cfg->http.listen_count), "allowed_origins",
      strv_json(cfg->http.allowed_origins, cfg->http.allowed_origin_count), "allowed_hosts",
      strv_json(cfg->http.allowed_hosts, cfg->http.allowed_host_count), "allow_unauthenticated",
      cfg->http.allow_unauthenticated, "session_idle_seconds", (json_int_t)cfg->http.session_idle_seconds,
      "max_sessions", (json_int_t)cfg->http.max_sessions, "max_connections", (json_int_t)cfg->http.max_connections,
      "max_body_bytes", (json_int_t)cfg->http.max_body_bytes, "max_header_bytes", (json_int_t)cfg->http.max_header_bytes,
      "request_timeout_seconds", (json_int_t)cfg->http.request_timeout_seconds, "idle_timeout_seconds",
      (json_int_t)cfg->http.idle_timeout_seconds, "sse_keepalive_seconds", (json_int_t)cfg->http.sse_keepalive_seconds);
  json_t *jwt = cfg->auth.jwt.enabled
                    ? json_pack("{s:s?, s:s?, s:s?, s:o, s:I, s:s?, s:b, s:I}", "issuer", cfg->auth.jwt.issuer,
                                "audience", cfg->auth.jwt.audience, "jwks_file", cfg->auth.jwt.jwks_file, "algorithms",
                                strv_json(cfg->auth.jwt.algorithms, cfg->auth.jwt.algorithm_count), "leeway_s",
                                (json_int_t)cfg->auth.jwt.leeway_s, "hs256_secret_env", cfg->auth.jwt.hs256_secret_env,
                                "require_peer_binding", cfg->auth.jwt.require_peer_binding, "cache_entries",
                                (json_int_t)cfg->auth.jwt.cache_entries)
                    : json_null();
  json_t *auth = json_pack("{s:s?, s:o, s:o}", "resource", cfg->auth.resource, "authorization_servers",
                           strv_json(cfg->auth.authorization_servers, cfg->auth.authorization_server_count), "jwt", jwt);
  return json_pack("{s:s?, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:{s:o}, s:{s:b, s:o}, s:o, s:o, s:{s:s}}",
                   "config_path", cfg->config_path, "state_dir", cfg->state_dir, "log_level",
                   log_level_name(cfg->log_level), "max_line_bytes", (json_int_t)cfg->max_line_bytes,
                   "tool_timeout_ms", (json_int_t)cfg->tool_timeout_ms, "workers_threads",
                   (json_int_t)cfg->workers_threads, "workers_long_threads", (json_int_t)cfg->workers_long_threads,
                   "workers_long_queue", (json_int_t)cfg->workers_long_queue, "workers_idle_seconds",
                   (json_int_t)cfg->workers_idle_seconds, "page_size", (json_int_t)cfg->page_size, "tools", tools, "queue", queue, "cache", cache, "p2p",
                   p2p, "mcp_tasks", "runner", tristate_json(cfg->mcp_tasks.runner), "stdio", "enabled",
                   cfg->stdio.enabled, "scopes",
                   cfg->stdio.scopes ? strv_json(cfg->stdio.scopes, cfg->stdio.scope_count) : json_pack("[s]", "*"),
                   "http", http, "auth", auth, "log", "access", access_name(cfg->log.access));
}
