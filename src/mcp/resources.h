/* resources.h — the resource table: what resources/list, resources/templates/list,
 * resources/read, completion/complete (ref/resource) and resource subscriptions serve
 * (MCP server/resources.mdx; 2026-07-28 basic/patterns/subscriptions.mdx).
 *
 * A definition is either a resource with a fixed `uri` (listed by resources/list) or a template
 * with a `uri_template` (listed by resources/templates/list; read for every URI it matches).
 * Templates are RFC 6570 level 1 plus reserved expansion: literal text and expressions
 * `{name}` (matches one or more characters other than '/', '?', '#') or `{+name}` (any
 * characters); names are [A-Za-z0-9_]{1,32}; at most MCP_URI_MAX_VARS per template; two
 * expressions must be separated by literal text. A match is non-greedy, left to right, and the
 * values are percent-decoded (an invalid escape, or a decoded NUL, is no match). A URI matching
 * a fixed resource is that resource; otherwise the first template (in registration order)
 * matching it.
 *
 * Subscriptions (2025-11-25 resources/subscribe, 2026-07-28 subscriptions/listen with
 * resourceSubscriptions): sessions subscribe to URIs; the table counts subscribers per URI and
 * tells the definition's `watch` when a URI gets its first one and loses its last one, so a
 * provider watches only what someone listens to. A provider reports a change with
 * mcp_resources_notify_updated(); every listening session decides which of its subscribers get
 * notifications/resources/updated.
 *
 * Ownership: definitions are borrowed (they and what they point to must outlive the table).
 * Threads: add on the main thread before serving, then definitions are read-only (find/match
 * from any thread); listen / subscribe / notify are loop thread only. read/complete run on the
 * loop thread, or on a worker of the dispatcher's pool for MCP_RESOURCE_BLOCKING. */
#ifndef PEERMCP_MCP_RESOURCES_H
#define PEERMCP_MCP_RESOURCES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth/auth.h"
#include "mcp/dispatch.h"
#include "mcp/reqctx.h"

typedef struct mcp_resources mcp_resources;

enum {
  MCP_RESOURCE_REMOTE = 1u << 0,    /* remote callers (trusted peers) may see, read and subscribe */
  MCP_RESOURCE_BLOCKING = 1u << 1,  /* read/complete may block: run them on the worker pool */
  MCP_RESOURCE_SUBSCRIBE = 1u << 2, /* may be subscribed to (the provider reports its changes) */
  MCP_RESOURCE_VOLATILE = 1u << 3,  /* changes at any time: 2026-07-28 reads say ttlMs 0 */
};

#define MCP_URI_MAX_VARS 8
#define MCP_URI_MAX_BYTES 8192          /* longest URI read, matched or subscribed */
#define MCP_RESOURCES_MAX_SUBSCRIBED 4096 /* distinct URIs with subscribers, per table */

/* The variables a template matched (names and values owned; mcp_uri_vars_clear frees them). */
typedef struct mcp_uri_vars {
  size_t n;
  const char *name[MCP_URI_MAX_VARS];
  char *value[MCP_URI_MAX_VARS];
} mcp_uri_vars;

/* The value of variable `name`, or NULL. */
const char *mcp_uri_var(const mcp_uri_vars *v, const char *name);
void mcp_uri_vars_clear(mcp_uri_vars *v);

/* Reads a resource. *contents (new reference) = an array of resource contents
 * (mcp_resource_text / mcp_resource_blob of mcp/content.h). Returns 0; -ENOENT when nothing
 * exists at that URI (answered "resource not found" with the uri); -EAGAIN after
 * mcp_reqctx_ask asked the client; -ENOTSUP when the client lacks a capability it needs; any
 * other < 0 → -32603. vars: the template's variables (empty for a fixed resource). */
typedef int (*mcp_resource_read_fn)(void *ud, mcp_reqctx *ctx, const char *uri, const mcp_uri_vars *vars,
                                    json_t **contents);
/* Completion values for template variable `var` starting with `prefix` (context: other
 * variables already given, object or NULL). *values = a new array of strings. 0 or < 0. */
typedef int (*mcp_resource_complete_fn)(void *ud, const char *var, const char *prefix, const json_t *context,
                                        json_t **values);
/* `uri` got its first subscriber (on) or lost its last (off). env: the dispatcher of the
 * session that subscribed (its loop and pool, for a provider that polls). Loop thread. */
typedef void (*mcp_resource_watch_fn)(void *ud, const char *uri, bool on, mcp_dispatcher *env);

typedef struct mcp_resource_def {
  const char *uri;          /* a fixed resource … */
  const char *uri_template; /* … or a template: exactly one of the two */
  const char *name;         /* required */
  const char *title;
  const char *description;
  const char *mime_type;
  unsigned flags;     /* MCP_RESOURCE_* */
  auth_scopes scopes; /* what a caller needs to see, read or subscribe */
  mcp_resource_read_fn read;         /* required */
  mcp_resource_complete_fn complete; /* templates: variable completion, may be NULL */
  mcp_resource_watch_fn watch;       /* MCP_RESOURCE_SUBSCRIBE: may be NULL (then only explicit
                                        mcp_resources_notify_updated calls notify) */
  void *ud;
} mcp_resource_def;

mcp_resources *mcp_resources_new(void);
/* Every subscription must be gone (sessions freed) before. */
void mcp_resources_free(mcp_resources *r);

/* 0; -EINVAL (neither or both of uri/uri_template, a bad template, no name or read, a URI
 * over MCP_URI_MAX_BYTES); -EEXIST (same uri or template twice); -ENOMEM. */
int mcp_resources_add(mcp_resources *r, const mcp_resource_def *def) __attribute__((warn_unused_result));

/* Fixed resources in listing order (by uri) and templates in registration order. */
size_t mcp_resources_count(const mcp_resources *r);
const mcp_resource_def *mcp_resources_at(const mcp_resources *r, size_t i);
size_t mcp_resources_template_count(const mcp_resources *r);
const mcp_resource_def *mcp_resources_template_at(const mcp_resources *r, size_t i);

/* The definition serving `uri` (fixed first, then templates), filling *vars for a template
 * (clear them after); NULL when none matches. */
const mcp_resource_def *mcp_resources_match(const mcp_resources *r, const char *uri, mcp_uri_vars *vars);
/* The template whose uri_template is exactly `uri_template` (for completion refs), or NULL. */
const mcp_resource_def *mcp_resources_find_template(const mcp_resources *r, const char *uri_template);
/* Matches one template against a URI (exposed for tests). true and *vars on a match. */
bool mcp_uri_template_match(const char *tmpl, const char *uri, mcp_uri_vars *vars);

/* The Resource / ResourceTemplate object the lists show. */
json_t *mcp_resource_to_json(const mcp_resource_def *d);

/* ---- subscriptions (loop thread) ---- */

typedef void (*mcp_resources_updated_fn)(void *ud, const char *uri);
/* Registers a listener for updates; returns a handle > 0, or 0 on ENOMEM. */
unsigned mcp_resources_listen(mcp_resources *r, mcp_resources_updated_fn cb, void *ud);
void mcp_resources_unlisten(mcp_resources *r, unsigned handle);
/* Counts one more subscriber of `uri` served by d; the first one starts d->watch. 0, -ENOSPC
 * (too many subscribed URIs), -ENOMEM. */
int mcp_resources_subscribe(mcp_resources *r, const mcp_resource_def *d, const char *uri, mcp_dispatcher *env)
    __attribute__((warn_unused_result));
/* One subscriber fewer; the last one stops d->watch. */
void mcp_resources_unsubscribe(mcp_resources *r, const char *uri);
/* Subscribers of uri (all sessions). */
size_t mcp_resources_subscribers(const mcp_resources *r, const char *uri);
/* Tells every listener that `uri` changed. */
void mcp_resources_notify_updated(mcp_resources *r, const char *uri);

#endif
