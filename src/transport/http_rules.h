/* transport/http_rules.h — the Streamable HTTP rules that need no socket: which Accept and
 * Content-Type values a request may carry, which Host and Origin values are safe (DNS-rebinding
 * protection), the 2026-07-28 standard headers (Mcp-Method, Mcp-Name and the Base64 sentinel),
 * and the HTTP status of a JSON-RPC error.
 *
 * Spec: MCP 2025-11-25 basic/transports.mdx §Streamable HTTP (Security Warning, Sending
 * Messages, Protocol Version Header) and 2026-07-28 basic/transports/streamable-http.mdx
 * (Request Metadata, Value Encoding, Server Validation).
 *
 * Pure functions: no allocation unless stated, no I/O, callable from any thread. */
#ifndef PEERMCP_TRANSPORT_HTTP_RULES_H
#define PEERMCP_TRANSPORT_HTTP_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcp/session.h"

/* The JSON-RPC error code of a 404 for an unknown session (the TypeScript SDK's). */
#define HTTP_RPC_SESSION_NOT_FOUND MCP_RPC_SESSION_NOT_FOUND
/* A tools/call the caller's token lacks a scope for (answered 403 insufficient_scope, with a
 * WWW-Authenticate challenge naming the scopes, when it is the request's first message). */
#define HTTP_RPC_INSUFFICIENT_SCOPE MCP_RPC_INSUFFICIENT_SCOPE

/* True when the Accept header value admits `type` ("application/json", "text/event-stream"):
 * the type itself, its major type with a star subtype, or the star-star range, with a q value
 * above 0. NULL accepts nothing. */
bool http_accepts(const char *accept, const char *type);

/* True for "application/json" with optional parameters (case-insensitive). */
bool http_content_type_is_json(const char *content_type);

/* What a listener accepts in Host and Origin (strings are borrowed). */
typedef struct http_origin_policy {
  const char *const *origins; /* exact Origin values allowed besides loopback ones */
  size_t n_origins;
  const char *const *hosts;   /* Host values ("name" or "name:port") allowed besides loopback */
  size_t n_hosts;
  bool any_host;              /* "*" was configured: no Host check */
} http_origin_policy;

/* Host header: localhost, 127.0.0.1 and [::1] with any port, or a configured host (compared
 * case-insensitively, with or without the port). A missing Host (HTTP/1.0) is refused. */
bool http_host_allowed(const http_origin_policy *p, const char *host);
/* Origin header: absent (NULL) is allowed (non-browser clients); http(s)://localhost,
 * 127.0.0.1 or [::1] with any port, or an exact configured origin. "null" and anything
 * malformed are refused. */
bool http_origin_allowed(const http_origin_policy *p, const char *origin);

/* True when a numeric address (as config_host_port_parse writes it) is a loopback one
 * (127.0.0.0/8, ::1). */
bool http_addr_is_loopback(const char *numeric_host);

/* Decodes a header value that may use the 2026-07-28 Base64 sentinel "=?base64?…?=" into
 * out[cap] (NUL-terminated); a plain value is copied. Whitespace around the value is dropped
 * first (RFC 9110 §5.5). Returns the length, or -1 when the value is malformed (Base64 that is
 * not canonical standard Base64 with padding, a decoded NUL byte, a plain value with control
 * or non-ASCII bytes) or does not fit. */
long http_header_value_decode(const char *value, char *out, size_t cap);

/* The HTTP status for a JSON-RPC error response. Modern (2026-07-28) requests: -32601 → 404;
 * -32700, -32600, -32602, -32020, -32021, -32022 → 400; anything else → 200. Legacy requests:
 * -32700 and -32600 → 400 (the request was not a valid message), anything else → 200 (the
 * JSON-RPC error is the answer). */
unsigned http_status_for_rpc_error(int code, bool modern);

#endif
