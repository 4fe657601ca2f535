/* scope.h — scope names and scope sets: what a caller may hold and what a tool or a TaskQueue op
 * requires.
 *
 * Representation (chosen so the check on every call stays a few instructions):
 *   - every scope name the process knows has a small integer id. The node's own names have fixed
 *     ids (AUTH_SCOPE_CACHE_READ … AUTH_SCOPE_ADMIN, 0..5); names a command tool declares in
 *     the configuration are interned at start-up (auth_scope_intern) and get the next ids;
 *   - a set (auth_scopes) is a 256-bit bitset indexed by id: a plain value (copy with `=`,
 *     nothing to free), and "holds everything needed" is 4 AND-NOTs (auth_scopes_cover);
 *   - at most AUTH_SCOPE_MAX (256) distinct names per process: interning more fails with
 *     -ENOSPC (a configuration error). A name only the caller has (a JWT scope no tool or op
 *     asks for) can never satisfy a check, so builders of contexts drop unknown names instead
 *     of interning them: untrusted input never grows the table.
 * "all" / "*" in a scope list means every id (known now or interned later), which is what the
 * local operator holds.
 *
 * Names: 1..AUTH_SCOPE_MAX_NAME bytes of printable ASCII without space, '"', '\\', ',' or ';'
 * (RFC 6749 §3.3 scope-token, minus our list separators). The node's names are also accepted
 * in legacy spellings by auth_scopes_parse (case-insensitive, '_' for '.': "CACHE_READ").
 *
 * Threads: auth_scope_intern may be called from any thread (it locks) but is meant for
 * start-up; lookups are lock-free and safe from every thread; auth_scopes values are plain
 * data. */
#ifndef PEERMCP_AUTH_SCOPE_H
#define PEERMCP_AUTH_SCOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_SCOPE_WORDS 4
#define AUTH_SCOPE_MAX (AUTH_SCOPE_WORDS * 64) /* distinct scope names per process */
#define AUTH_SCOPE_MAX_NAME 64

/* The node's own scope ids (fixed). */
enum {
  AUTH_SCOPE_CACHE_READ = 0,
  AUTH_SCOPE_CACHE_WRITE = 1,
  AUTH_SCOPE_TASK_SUBMIT = 2,
  AUTH_SCOPE_WORKER = 3, /* claim / heartbeat / complete / fail / release */
  AUTH_SCOPE_TOOL_CALL = 4,
  AUTH_SCOPE_ADMIN = 5,
  AUTH_SCOPE_BUILTIN_COUNT = 6
};

/* Masks of the node's ids (they all live in word 0), for initialisers. */
#define AUTH_CACHE_READ (1ull << AUTH_SCOPE_CACHE_READ)
#define AUTH_CACHE_WRITE (1ull << AUTH_SCOPE_CACHE_WRITE)
#define AUTH_TASK_SUBMIT (1ull << AUTH_SCOPE_TASK_SUBMIT)
#define AUTH_WORKER (1ull << AUTH_SCOPE_WORKER)
#define AUTH_TOOL_CALL (1ull << AUTH_SCOPE_TOOL_CALL)
#define AUTH_ADMIN (1ull << AUTH_SCOPE_ADMIN)
/* What a shared token or a trusted peer gets when the configuration does not say: everything
 * but admin. */
#define AUTH_DEFAULT_MASK (AUTH_CACHE_READ | AUTH_CACHE_WRITE | AUTH_TASK_SUBMIT | AUTH_WORKER | AUTH_TOOL_CALL)

typedef struct auth_scopes {
  uint64_t w[AUTH_SCOPE_WORDS];
} auth_scopes;

/* Initialisers: a set of the node's scopes by mask; the full set. Usable in static data. */
#define AUTH_SCOPES_INIT(mask) {{(uint64_t)(mask), 0, 0, 0}}
#define AUTH_SCOPES_ALL_INIT {{~0ull, ~0ull, ~0ull, ~0ull}}
/* The same as compound literals, for assignments: d.scopes = AUTH_SCOPES(AUTH_TOOL_CALL). */
#define AUTH_SCOPES(mask) ((auth_scopes)AUTH_SCOPES_INIT(mask))
#define AUTH_SCOPES_ALL ((auth_scopes)AUTH_SCOPES_ALL_INIT)

/* True when `have` holds every scope of `need` (an empty `need` is always covered). */
static inline bool auth_scopes_cover(const auth_scopes *have, const auth_scopes *need) {
  uint64_t missing = 0;
  for (int i = 0; i < AUTH_SCOPE_WORDS; i++) missing |= need->w[i] & ~have->w[i];
  return missing == 0;
}
static inline bool auth_scopes_empty(const auth_scopes *s) {
  uint64_t any = 0;
  for (int i = 0; i < AUTH_SCOPE_WORDS; i++) any |= s->w[i];
  return any == 0;
}
static inline bool auth_scopes_equal(const auth_scopes *a, const auth_scopes *b) {
  uint64_t diff = 0;
  for (int i = 0; i < AUTH_SCOPE_WORDS; i++) diff |= a->w[i] ^ b->w[i];
  return diff == 0;
}
static inline bool auth_scopes_has(const auth_scopes *s, unsigned id) {
  return id < AUTH_SCOPE_MAX && (s->w[id / 64] >> (id % 64)) & 1u;
}
static inline void auth_scopes_add(auth_scopes *s, unsigned id) {
  if (id < AUTH_SCOPE_MAX) s->w[id / 64] |= 1ull << (id % 64);
}
static inline void auth_scopes_union(auth_scopes *dst, const auth_scopes *src) {
  for (int i = 0; i < AUTH_SCOPE_WORDS; i++) dst->w[i] |= src->w[i];
}

/* The id of a known name (exact spelling), or -ENOENT. */
int auth_scope_id(const char *name);
/* The id of `name`, adding it when new. 0 and *id; -EINVAL (not a valid name), -ENOSPC (the
 * table is full). */
int auth_scope_intern(const char *name, unsigned *id) __attribute__((warn_unused_result));
/* The name of an id, or NULL when no name has it. Valid for the life of the process. */
const char *auth_scope_name(unsigned id);
/* Names known now (the node's six plus those interned). */
unsigned auth_scope_count(void);

/* Parses a list of known names separated by ',', ';', spaces or tabs ("all"/"*" = every id).
 * 0 and *out, or -EINVAL naming something unknown or malformed (*out untouched). An empty list
 * is the empty set. */
int auth_scopes_parse(const char *text, auth_scopes *out) __attribute__((warn_unused_result));
/* Like auth_scopes_parse but for names from a credential (a JWT "scope" claim): unknown names are
 * skipped, not refused, and never interned; "all"/"*" are not special there. */
void auth_scopes_parse_granted(const char *text, auth_scopes *out);
/* The known names of a set, space-separated, into buf (NUL-terminated, cut at a name boundary
 * when it does not fit). Returns the length the whole list needs (like snprintf). A full set
 * prints as "*". */
size_t auth_scopes_format(const auth_scopes *s, char *buf, size_t cap);

#endif
