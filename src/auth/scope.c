/* scope.c — the process-wide scope name table and scope lists (see scope.h).
 *
 * The table is append-only: a slot is written completely before the count that publishes it is
 * stored (release), and readers load the count (acquire) before reading slots, so lookups need
 * no lock. Names live in static storage: nothing to free at exit. */
#include "auth/scope.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

static char g_names[AUTH_SCOPE_MAX][AUTH_SCOPE_MAX_NAME + 1] = {
    [AUTH_SCOPE_CACHE_READ] = "cache.read", [AUTH_SCOPE_CACHE_WRITE] = "cache.write",
    [AUTH_SCOPE_TASK_SUBMIT] = "task.submit", [AUTH_SCOPE_WORKER] = "worker",
    [AUTH_SCOPE_TOOL_CALL] = "tool.call",   [AUTH_SCOPE_ADMIN] = "admin",
};
static atomic_uint g_count = AUTH_SCOPE_BUILTIN_COUNT;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static bool is_sep(char c) { return c == ',' || c == ';' || c == ' ' || c == '\t'; }

static bool name_valid(const char *s, size_t n) {
  if (n == 0 || n > AUTH_SCOPE_MAX_NAME) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == ',' || c == ';') return false;
  }
  return true;
}

/* Id of the n-byte name s, or -ENOENT. */
static int lookup(const char *s, size_t n) {
  unsigned count = atomic_load_explicit(&g_count, memory_order_acquire);
  for (unsigned i = 0; i < count; i++)
    if (strncmp(g_names[i], s, n) == 0 && g_names[i][n] == 0) return (int)i;
  return -ENOENT;
}

int auth_scope_id(const char *name) {
  if (!name) return -ENOENT;
  size_t n = strlen(name);
  return name_valid(name, n) ? lookup(name, n) : -ENOENT;
}

int auth_scope_intern(const char *name, unsigned *id) {
  size_t n = name ? strlen(name) : 0;
  if (!name_valid(name, n)) return -EINVAL;
  int found = lookup(name, n);
  if (found >= 0) {
    *id = (unsigned)found;
    return 0;
  }
  pthread_mutex_lock(&g_mu);
  int rc = 0;
  found = lookup(name, n); /* another thread may have added it meanwhile */
  if (found >= 0) {
    *id = (unsigned)found;
  } else {
    unsigned count = atomic_load_explicit(&g_count, memory_order_relaxed);
    if (count >= AUTH_SCOPE_MAX) {
      rc = -ENOSPC;
    } else {
      memcpy(g_names[count], name, n + 1);
      atomic_store_explicit(&g_count, count + 1, memory_order_release);
      *id = count;
    }
  }
  pthread_mutex_unlock(&g_mu);
  return rc;
}

const char *auth_scope_name(unsigned id) {
  return id < atomic_load_explicit(&g_count, memory_order_acquire) ? g_names[id] : NULL;
}

unsigned auth_scope_count(void) { return atomic_load_explicit(&g_count, memory_order_acquire); }

/* The node's names in legacy spellings: lower case, '_' for '.'. -ENOENT otherwise. */
static int builtin_loose(const char *s, size_t n) {
  char w[AUTH_SCOPE_MAX_NAME + 1];
  if (n > AUTH_SCOPE_MAX_NAME) return -ENOENT;
  for (size_t i = 0; i < n; i++) w[i] = s[i] == '_' ? '.' : (char)tolower((unsigned char)s[i]);
  w[n] = 0;
  for (int i = 0; i < AUTH_SCOPE_BUILTIN_COUNT; i++)
    if (strcmp(w, g_names[i]) == 0) return i;
  return -ENOENT;
}

/* Calls fn(word, len, ud) for every word of a separated list; stops when fn returns < 0. */
static int each_word(const char *text, int (*fn)(const char *, size_t, void *), void *ud) {
  const char *s = text ? text : "";
  while (*s) {
    while (*s && is_sep(*s)) s++;
    if (!*s) break;
    const char *e = s;
    while (*e && !is_sep(*e)) e++;
    int rc = fn(s, (size_t)(e - s), ud);
    if (rc < 0) return rc;
    s = e;
  }
  return 0;
}

static int add_strict(const char *s, size_t n, void *ud) {
  auth_scopes *acc = ud;
  if ((n == 3 && strncmp(s, "all", 3) == 0) || (n == 1 && s[0] == '*')) {
    *acc = AUTH_SCOPES_ALL;
    return 0;
  }
  int id = name_valid(s, n) ? lookup(s, n) : -ENOENT;
  if (id < 0) id = builtin_loose(s, n);
  if (id < 0 && n == 3 && strncasecmp(s, "all", 3) == 0) {
    *acc = AUTH_SCOPES_ALL;
    return 0;
  }
  if (id < 0) return -EINVAL;
  auth_scopes_add(acc, (unsigned)id);
  return 0;
}

int auth_scopes_parse(const char *text, auth_scopes *out) {
  auth_scopes acc = {{0}};
  int rc = each_word(text, add_strict, &acc);
  if (rc < 0) return -EINVAL;
  *out = acc;
  return 0;
}

static int add_granted(const char *s, size_t n, void *ud) {
  int id = name_valid(s, n) ? lookup(s, n) : -ENOENT;
  if (id >= 0) auth_scopes_add(ud, (unsigned)id);
  return 0;
}

void auth_scopes_parse_granted(const char *text, auth_scopes *out) {
  auth_scopes acc = {{0}};
  (void)each_word(text, add_granted, &acc);
  *out = acc;
}

size_t auth_scopes_format(const auth_scopes *s, char *buf, size_t cap) {
  static const auth_scopes all = AUTH_SCOPES_ALL_INIT;
  size_t need = 0;
  bool cut = false;
  if (cap) buf[0] = 0;
  if (auth_scopes_equal(s, &all)) {
    if (cap >= 2) buf[0] = '*', buf[1] = 0;
    return 1;
  }
  unsigned count = auth_scope_count();
  for (unsigned i = 0; i < count; i++) {
    if (!auth_scopes_has(s, i)) continue;
    size_t n = strlen(g_names[i]), sep = need ? 1 : 0;
    if (!cut && need + sep + n < cap) {
      if (sep) buf[need] = ' ';
      memcpy(buf + need + sep, g_names[i], n + 1);
    } else {
      cut = true;
    }
    need += sep + n;
  }
  assert(!cap || memchr(buf, 0, cap));
  return need;
}
