/* transport/http_rules.c — Streamable HTTP rules without sockets (see http_rules.h). */
#include "transport/http_rules.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mcp/session.h"

/* ---------- Accept / Content-Type ---------- */

static const char *skip_ows(const char *p) {
  while (*p == ' ' || *p == '\t') p++;
  return p;
}

/* True when the media range [r, r+rl) admits type. */
static bool range_admits(const char *r, size_t rl, const char *type) {
  size_t tl = strlen(type);
  if (rl == 3 && memcmp(r, "*/*", 3) == 0) return true;
  if (rl == tl && strncasecmp(r, type, tl) == 0) return true;
  const char *slash = strchr(type, '/');
  size_t major = (size_t)(slash - type);
  return rl == major + 2 && strncasecmp(r, type, major) == 0 && r[major] == '/' && r[major + 1] == '*';
}

bool http_accepts(const char *accept, const char *type) {
  if (!accept) return false;
  const char *p = accept;
  while (*p) {
    p = skip_ows(p);
    const char *start = p;
    while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t') p++;
    size_t rl = (size_t)(p - start);
    bool ok = rl > 0 && range_admits(start, rl, type);
    /* parameters: only q matters; q=0 means "not acceptable" */
    while (*p && *p != ',') {
      if (*p == ';') {
        const char *q = skip_ows(p + 1);
        if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=') {
          double v = strtod(q + 2, NULL);
          if (v <= 0) ok = false;
        }
      }
      p++;
    }
    if (ok) return true;
    if (*p == ',') p++;
  }
  return false;
}

bool http_content_type_is_json(const char *ct) {
  if (!ct) return false;
  ct = skip_ows(ct);
  static const char k[] = "application/json";
  if (strncasecmp(ct, k, sizeof k - 1) != 0) return false;
  const char *rest = skip_ows(ct + sizeof k - 1);
  return *rest == 0 || *rest == ';';
}

/* ---------- Host / Origin ---------- */

/* Splits "host[:port]" / "[v6][:port]" into the host part (brackets kept for v6). Returns the
 * host length, 0 when malformed (empty host, bad port). */
static size_t host_part(const char *h, size_t n) {
  if (n == 0) return 0;
  size_t hl;
  if (h[0] == '[') {
    const char *e = memchr(h, ']', n);
    if (!e) return 0;
    hl = (size_t)(e - h) + 1;
  } else {
    const char *c = memchr(h, ':', n);
    hl = c ? (size_t)(c - h) : n;
  }
  if (hl == 0) return 0;
  if (hl < n) { /* ":port" */
    if (h[hl] != ':' || hl + 1 == n || n - hl - 1 > 5) return 0;
    for (size_t i = hl + 1; i < n; i++)
      if (!isdigit((unsigned char)h[i])) return 0;
  }
  return hl;
}

static bool loopback_name(const char *h, size_t hl) {
  return (hl == 9 && strncasecmp(h, "localhost", 9) == 0) || (hl == 9 && memcmp(h, "127.0.0.1", 9) == 0) ||
         (hl == 5 && memcmp(h, "[::1]", 5) == 0);
}

bool http_host_allowed(const http_origin_policy *p, const char *host) {
  if (p && p->any_host) return true;
  if (!host) return false;
  size_t n = strlen(host);
  size_t hl = host_part(host, n);
  if (hl == 0) return false;
  if (loopback_name(host, hl)) return true;
  for (size_t i = 0; p && i < p->n_hosts; i++) {
    const char *a = p->hosts[i];
    size_t al = strlen(a);
    if (al == n && strncasecmp(a, host, n) == 0) return true; /* exact, with port */
    if (host_part(a, al) == al && al == hl && strncasecmp(a, host, hl) == 0) return true; /* name only: any port */
  }
  return false;
}

bool http_origin_allowed(const http_origin_policy *p, const char *origin) {
  if (!origin) return true;
  for (size_t i = 0; p && i < p->n_origins; i++)
    if (strcmp(p->origins[i], origin) == 0) return true;
  const char *rest;
  if (strncasecmp(origin, "http://", 7) == 0) rest = origin + 7;
  else if (strncasecmp(origin, "https://", 8) == 0) rest = origin + 8;
  else return false; /* "null", other schemes, garbage */
  size_t n = strlen(rest);
  size_t hl = host_part(rest, n);
  return hl > 0 && loopback_name(rest, hl);
}

bool http_addr_is_loopback(const char *h) {
  unsigned char a[16];
  if (inet_pton(AF_INET, h, a) == 1) return a[0] == 127;
  if (inet_pton(AF_INET6, h, a) == 1) {
    static const unsigned char one[16] = {[15] = 1};
    return memcmp(a, one, 16) == 0;
  }
  return false;
}

/* ---------- header values ---------- */

long http_header_value_decode(const char *v, char *out, size_t cap) {
  if (!v || !out || cap == 0) return -1;
  /* RFC 9110 §5.5: optional whitespace around a field value is not part of it */
  while (*v == ' ' || *v == '\t') v++;
  size_t n = strlen(v);
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  static const char pre[] = "=?base64?", suf[] = "?=";
  if (n >= sizeof pre - 1 + sizeof suf - 1 && memcmp(v, pre, sizeof pre - 1) == 0 &&
      memcmp(v + n - (sizeof suf - 1), suf, sizeof suf - 1) == 0) {
    const char *b = v + sizeof pre - 1;
    size_t bl = n - (sizeof pre - 1) - (sizeof suf - 1);
    size_t got = 0;
    const char *end = NULL;
    if (sodium_base642bin((unsigned char *)out, cap - 1, b, bl, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != b + bl)
      return -1;
    if (memchr(out, 0, got)) return -1;
    out[got] = 0;
    return (long)got;
  }
  if (n >= cap) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if ((c < 0x20 && c != '\t') || c > 0x7e) return -1;
  }
  memcpy(out, v, n);
  out[n] = 0;
  return (long)n;
}

unsigned http_status_for_rpc_error(int code, bool modern) {
  if (code == MCP_RPC_PARSE_ERROR || code == MCP_RPC_INVALID_REQUEST) return 400;
  if (!modern) return 200;
  switch (code) {
  case MCP_RPC_METHOD_NOT_FOUND: return 404;
  case MCP_RPC_INVALID_PARAMS: /* e.g. a missing _meta field */
  case MCP_RPC_HEADER_MISMATCH:
  case MCP_RPC_MISSING_CLIENT_CAPABILITY:
  case MCP_RPC_UNSUPPORTED_VERSION:
    return 400;
  default: return 200;
  }
}

