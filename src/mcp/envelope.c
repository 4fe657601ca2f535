/* envelope.c — a JSON-RPC message's envelope from its text (see envelope.h). */
#include "mcp/envelope.h"

#include <errno.h>
#include <string.h>

#include "util/jparse.h"

/* A span's tree is parsed with no ceiling of its own: mcp_envelope_read's scan already bounded
 * how deep the whole text nests. */
#define TREE_DEPTH (1 << 30)

static bool key_is(const jparse_member *m, const char *k, size_t n) {
  return m->key_len == n && memcmp(m->key, k, n) == 0;
}

static mcp_env_span span_of(const jparse_member *m) { return (mcp_env_span){m->val, m->val_len}; }

int mcp_envelope_read(const char *text, size_t len, int max_depth, unsigned jflags, mcp_envelope *env) {
  jparse_member m[MCP_ENV_MAX_MEMBERS], pm[MCP_ENV_MAX_MEMBERS];
  size_t n = 0, pn = 0;
  unsigned found = 0;
  int rc = jparse_scan_sub(text, len, max_depth, jflags, m, MCP_ENV_MAX_MEMBERS, &n, "params", pm, MCP_ENV_MAX_MEMBERS,
                           &pn, NULL, &found);
  if (rc != 0) {
    memset(env, 0, sizeof *env);
    return rc;
  }
  return mcp_envelope_from_scan(text, len, m, n, MCP_ENV_MAX_MEMBERS, pm, pn, MCP_ENV_MAX_MEMBERS, found, env);
}

int mcp_envelope_from_scan(const char *text, size_t len, const jparse_member *m, size_t n, size_t cap,
                           const jparse_member *pm, size_t pn, size_t pcap, unsigned found, mcp_envelope *env) {
  memset(env, 0, sizeof *env);
  env->found = found;
  size_t i = 0;
  while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) i++;
  if (i >= len || text[i] != '{' || n > cap || n > MCP_ENV_MAX_MEMBERS) return MCP_ENV_TREE;
  for (size_t k = 0; k < n; k++) {
    const jparse_member *e = &m[k];
    if (e->key_escaped) return MCP_ENV_TREE;
    if (key_is(e, "jsonrpc", 7)) env->jsonrpc = span_of(e);
    else if (key_is(e, "id", 2)) env->id = span_of(e);
    else if (key_is(e, "method", 6)) env->method = span_of(e);
    else if (key_is(e, "params", 6)) env->params = span_of(e);
    else if (key_is(e, "result", 6) || key_is(e, "error", 5)) env->has_answer = true;
    else env->top_other++;
  }
  if (!env->params.p || env->params.p[0] != '{') return 0;
  jparse_member walked[MCP_ENV_MAX_MEMBERS];
  if (!pm) { /* not listed by the caller's scan: walk params (checked text) */
    pcap = MCP_ENV_MAX_MEMBERS;
    pm = walked;
    if (jparse_members(env->params.p, env->params.n, walked, pcap, &pn) != 0) return MCP_ENV_TREE; /* cannot be */
  }
  if (pcap > MCP_ENV_MAX_MEMBERS) pcap = MCP_ENV_MAX_MEMBERS;
  if (pn > pcap) {
    env->params_other += pn - pcap; /* not read: the caller builds params' tree */
    pn = pcap;
  }
  for (size_t k = 0; k < pn; k++) {
    const jparse_member *e = &pm[k];
    if (e->key_escaped) env->params_escaped_key = true;
    else if (key_is(e, "name", 4)) env->name = span_of(e);
    else if (key_is(e, "arguments", 9)) env->arguments = span_of(e);
    else if (key_is(e, "_meta", 5)) env->meta = span_of(e);
    else env->params_other++;
  }
  return 0;
}

bool mcp_env_cstr(mcp_env_span span, char *buf, size_t cap) {
  if (!mcp_env_is_string(span) || mcp_env_str_escaped(span) || span.n - 2 >= cap) return false;
  memcpy(buf, span.p + 1, span.n - 2);
  buf[span.n - 2] = 0;
  return true;
}

int mcp_envelope_tree(mcp_env_span span, unsigned jflags, json_t **out) {
  /* the usual ids, without a parse: a short integer, a string without escapes (checked text:
   * the digits form a JSON integer, the string is valid UTF-8) — the values jparse builds */
  const char *p = span.p;
  size_t n = span.n, i = p[0] == '-';
  if (n > i && n - i <= 18) {
    json_int_t v = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') v = v * 10 + (p[i++] - '0');
    if (i == n) return (*out = json_integer(p[0] == '-' ? -v : v)) ? 0 : -ENOMEM;
  }
  if (mcp_env_is_string(span) && !mcp_env_str_escaped(span))
    return (*out = json_stringn_nocheck(p + 1, n - 2)) ? 0 : -ENOMEM;
  int rc = jparse_flags(span.p, span.n, TREE_DEPTH, jflags, out, NULL, NULL);
  return rc == 0 ? 0 : -ENOMEM; /* validated text: only an allocation can fail */
}
