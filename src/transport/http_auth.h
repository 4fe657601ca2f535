/* http_auth.h — the OAuth 2.1 resource server of the Streamable HTTP transport (MCP 2025-11-25
 * basic/authorization; RFC 6750, RFC 9728, RFC 8707): the transport's authenticate and route
 * hooks (transport/http.h), over the node's policy (auth/policy.h) and JWT validator.
 *
 *   - every /mcp request needs "Authorization: Bearer <JWT>" (the scheme case-insensitive);
 *     missing → 401 with WWW-Authenticate: Bearer resource_metadata="<base>/.well-known/
 *     oauth-protected-resource/mcp"; present but not a valid JWT (expired, wrong audience, bad
 *     signature, bound to a PeerId, …) → 401 with error="invalid_token" as well; a token in the
 *     query string (access_token, token, jwt) → 400 error="invalid_request", whatever else the
 *     request carries. The shared token is not accepted here (a libp2p compatibility mode);
 *   - a valid token gives the request an AuthContext of kind jwt (transport http, the remote
 *     address); a tool whose scopes it lacks is answered 403 insufficient_scope by the
 *     transport (mcp_http_insufficient_scope);
 *   - RFC 9728 Protected Resource Metadata at GET /.well-known/oauth-protected-resource/mcp and
 *     the root form /.well-known/oauth-protected-resource: resource, authorization_servers,
 *     scopes_supported (every scope name the node knows), bearer_methods_supported ["header"].
 * Every refusal is logged and counted (auth/audit.h, transport http).
 *
 * Ownership: borrows the policy and the server list (they must outlive it); copies the
 * resource. Threads: the loop thread (the hooks run there). */
#ifndef PEERMCP_TRANSPORT_HTTP_AUTH_H
#define PEERMCP_TRANSPORT_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/policy.h"
#include "transport/http.h"

#define HTTP_AUTH_METADATA_PATH "/.well-known/oauth-protected-resource"

typedef struct http_auth {
  const auth_policy *policy;                    /* with JWTs on */
  const char *const *authorization_servers;     /* RFC 9728 authorization_servers */
  size_t n_authorization_servers;
  char resource[2048];                          /* the canonical resource URI ("" until set) */
} http_auth;

/* Sets the resource URI the metadata names (auth.resource, else the first listener's URL). */
void http_auth_set_resource(http_auth *a, const char *resource);

/* mcp_http_opts.authenticate (ud = http_auth). */
int http_auth_authenticate(void *ud, const mcp_http_request_info *req, mcp_http_auth_result *out);
/* mcp_http_opts.route (ud = http_auth): the metadata documents. */
bool http_auth_route(void *ud, const char *method, const char *path, mcp_http_reply *out);

#endif
