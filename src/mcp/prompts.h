/* prompts.h — the prompt table: what prompts/list lists, prompts/get renders and
 * completion/complete completes for ref/prompt (MCP server/prompts.mdx,
 * server/utilities/completion.mdx; the same in 2025-11-25 and 2026-07-28).
 *
 * One table per registry (mcp_registry_prompts), filled at start-up like the tools; listing
 * order is by name. A prompt's get may ask the client for input through its mcp_reqctx
 * (mcp/reqctx.h) in both eras.
 *
 * Ownership: definitions are borrowed — a def and everything it points to (strings, the
 * argument array, values lists, ud) must outlive the table (static data is the usual case).
 * Threads: add on the main thread before serving; then read-only, so lookups are safe from any
 * thread. get/complete run on the loop thread, or on a worker of the dispatcher's pool when the
 * prompt is MCP_PROMPT_BLOCKING. */
#ifndef PEERMCP_MCP_PROMPTS_H
#define PEERMCP_MCP_PROMPTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth/auth.h"
#include "mcp/reqctx.h"

typedef struct mcp_prompts mcp_prompts;

enum {
  MCP_PROMPT_REMOTE = 1u << 0,   /* remote callers (trusted peers) may see and get it */
  MCP_PROMPT_BLOCKING = 1u << 1, /* get/complete may block: run them on the worker pool */
};

#define MCP_PROMPT_MAX_ARGS 32
#define MCP_COMPLETION_MAX_VALUES 100 /* completion/complete: at most 100 values per answer */

typedef struct mcp_prompt_arg {
  const char *name; /* required */
  const char *title;
  const char *description;
  bool required;
  const char *const *values; /* completion candidates, NULL-terminated, or NULL */
} mcp_prompt_arg;

/* Renders the prompt. args: an object whose values are strings (required ones present —
 * checked before the call). *result (new reference) = a GetPromptResult body: {"messages":[…]}
 * with an optional "description". Returns 0; -EINVAL for a bad argument value (*result may be a
 * JSON string with the reason; answered -32602); -EAGAIN after mcp_reqctx_ask asked the
 * client; -ENOTSUP when the client lacks a capability it needs; anything else < 0 → -32603. */
typedef int (*mcp_prompt_get_fn)(void *ud, mcp_reqctx *ctx, const json_t *args, json_t **result);

/* Completion values for argument `arg` that start with `prefix` (context: the other arguments
 * already given, an object or NULL). *values = a new array of strings. 0 or < 0. */
typedef int (*mcp_prompt_complete_fn)(void *ud, const char *arg, const char *prefix, const json_t *context,
                                      json_t **values);

typedef struct mcp_prompt_def {
  const char *name; /* 1..128 printable ASCII, unique */
  const char *title;
  const char *description;
  const mcp_prompt_arg *args;
  size_t nargs;
  unsigned flags;     /* MCP_PROMPT_* */
  auth_scopes scopes; /* what a caller needs to see and get it */
  mcp_prompt_get_fn get;           /* required */
  mcp_prompt_complete_fn complete; /* NULL = the arguments' static values */
  void *ud;
} mcp_prompt_def;

mcp_prompts *mcp_prompts_new(void);
void mcp_prompts_free(mcp_prompts *p);

/* 0, -EINVAL (bad name, no get, too many or unnamed arguments), -EEXIST, -ENOMEM. */
int mcp_prompts_add(mcp_prompts *p, const mcp_prompt_def *def) __attribute__((warn_unused_result));

size_t mcp_prompts_count(const mcp_prompts *p);
/* In listing order (by name); i < count. */
const mcp_prompt_def *mcp_prompts_at(const mcp_prompts *p, size_t i);
const mcp_prompt_def *mcp_prompts_find(const mcp_prompts *p, const char *name);

/* The Prompt object prompts/list shows: {name, title?, description?, arguments?}. */
json_t *mcp_prompt_to_json(const mcp_prompt_def *d);
/* Checks prompts/get arguments: an object (or NULL = {}) whose values are all strings, with
 * every required argument. 0 or -EINVAL with the reason in err. */
int mcp_prompt_check_args(const mcp_prompt_def *d, const json_t *args, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Completion for one argument: d->complete, else the argument's static values; an unknown
 * argument has none. *values = new array of at most MCP_COMPLETION_MAX_VALUES strings;
 * *total = how many matched. 0 or < 0. */
int mcp_prompt_complete(const mcp_prompt_def *d, const char *arg, const char *prefix, const json_t *context,
                        json_t **values, size_t *total) __attribute__((warn_unused_result));

/* The values of a NULL-terminated list that start with prefix (all when prefix is NULL or ""),
 * at most MCP_COMPLETION_MAX_VALUES; *total = all matches. NULL on ENOMEM. */
json_t *mcp_complete_from_list(const char *const *values, const char *prefix, size_t *total);
/* Trims an array of candidate strings to the MCP ceiling; returns the original length. */
size_t mcp_complete_trim(json_t *values);

#endif
