/* http_auth.c — Bearer JWTs and RFC 9728 metadata for the HTTP transport (see http_auth.h). */
#include "transport/http_auth.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/audit.h"
#include "auth/scope.h"

void http_auth_set_resource(http_auth *a, const char *resource) {
  snprintf(a->resource, sizeof a->resource, "%s", resource ? resource : "");
}

/* WWW-Authenticate (RFC 6750 §3, RFC 9728 §5.1). error / description may be NULL. */
static void challenge(mcp_http_auth_result *out, const mcp_http_request_info *req, const char *error,
                      const char *description) {
  char *w = out->www_authenticate;
  size_t cap = sizeof out->www_authenticate;
  int n = snprintf(w, cap, "Bearer resource_metadata=\"%s%s/mcp\"", req->base_url ? req->base_url : "",
                   HTTP_AUTH_METADATA_PATH);
  if (error && n > 0 && (size_t)n < cap) n += snprintf(w + n, cap - (size_t)n, ", error=\"%s\"", error);
  if (description && n > 0 && (size_t)n < cap) snprintf(w + n, cap - (size_t)n, ", error_description=\"%s\"", description);
}

int http_auth_authenticate(void *ud, const mcp_http_request_info *req, mcp_http_auth_result *out) {
  http_auth *a = ud;
  memset(out, 0, sizeof *out);
  auth_ctx_init(&out->auth, AUTH_KIND_NONE);
  out->auth.transport = AUTH_TR_HTTP;
  if (auth_ctx_set_remote_addr(&out->auth, req->remote_addr) != 0) out->auth.remote_addr[0] = 0;
  /* MCP authorization: tokens never in the query string (a URL ends up in logs and histories) */
  if (req->token_in_query) {
    auth_audit_refused(&out->auth, AUTH_REASON_TOKEN_IN_QUERY, "http", req->path, NULL);
    out->status = 400;
    challenge(out, req, "invalid_request", "access tokens are accepted only in the Authorization header");
    return 0;
  }
  const char *h = req->authorization;
  if (!h || !*h) {
    auth_audit_refused(&out->auth, AUTH_REASON_MISSING, "http", req->path, NULL);
    out->status = 401;
    challenge(out, req, NULL, NULL);
    return 0;
  }
  if (strncasecmp(h, "Bearer ", 7) != 0) {
    auth_audit_refused(&out->auth, AUTH_REASON_MISSING, "http", req->path, "not_bearer");
    out->status = 401;
    challenge(out, req, "invalid_request", "the Bearer scheme is required");
    return 0;
  }
  const char *tok = h + 7;
  while (*tok == ' ') tok++;
  auth_reason why = AUTH_REASON_NONE;
  const char *detail = NULL;
  auth_present_result pr = auth_policy_present_jwt(a->policy, tok, &out->auth, &why, &detail);
  if (pr != AUTH_PRESENT_OK) {
    auth_audit_refused(&out->auth, why ? why : AUTH_REASON_INVALID, "http", req->path, detail);
    out->status = 401;
    challenge(out, req, "invalid_token", detail);
    out->auth.kind = AUTH_KIND_NONE;
    return 0;
  }
  return 0;
}

bool http_auth_route(void *ud, const char *method, const char *path, mcp_http_reply *out) {
  http_auth *a = ud;
  if (strcmp(path, HTTP_AUTH_METADATA_PATH "/mcp") != 0 && strcmp(path, HTTP_AUTH_METADATA_PATH) != 0) return false;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    out->status = 405;
    out->content_type = "application/json";
    out->body = strdup("{\"error\":\"method not allowed\"}");
    out->body_len = out->body ? strlen(out->body) : 0;
    return true;
  }
  json_t *servers = json_array(), *scopes = json_array();
  for (size_t i = 0; servers && i < a->n_authorization_servers; i++)
    json_array_append_new(servers, json_string(a->authorization_servers[i]));
  unsigned n = auth_scope_count();
  for (unsigned i = 0; scopes && i < n; i++) json_array_append_new(scopes, json_string(auth_scope_name(i)));
  json_t *doc = json_pack("{s:s, s:o, s:o, s:[s]}", "resource", a->resource, "authorization_servers", servers,
                          "scopes_supported", scopes, "bearer_methods_supported", "header");
  out->status = 200;
  out->content_type = "application/json";
  out->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  out->body_len = out->body ? strlen(out->body) : 0;
  if (!out->body) out->status = 500;
  json_decref(doc);
  return true;
}
