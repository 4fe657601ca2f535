/* prompts.c — the prompt table (see prompts.h): a name-sorted array of borrowed definitions. */
#include "mcp/prompts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define MCP_PROMPT_MAX_NAME 128
#define MCP_PROMPTS_MAX 4096

struct mcp_prompts {
  const mcp_prompt_def **v;
  size_t n, cap;
};

mcp_prompts *mcp_prompts_new(void) { return calloc(1, sizeof(mcp_prompts)); }

void mcp_prompts_free(mcp_prompts *p) {
  if (!p) return;
  free(p->v);
  free(p);
}

static bool printable_name(const char *s, size_t max) {
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return false;
  return true;
}

int mcp_prompts_add(mcp_prompts *p, const mcp_prompt_def *d) {
  if (!p || !d || !d->get || !printable_name(d->name, MCP_PROMPT_MAX_NAME) || d->nargs > MCP_PROMPT_MAX_ARGS ||
      (d->nargs && !d->args)) {
    log_error("prompts: bad prompt definition", "{s:s}", "prompt", d && d->name ? d->name : "?");
    return -EINVAL;
  }
  for (size_t i = 0; i < d->nargs; i++)
    if (!printable_name(d->args[i].name, MCP_PROMPT_MAX_NAME)) return -EINVAL;
  size_t at = 0;
  while (at < p->n && strcmp(p->v[at]->name, d->name) < 0) at++;
  if (at < p->n && strcmp(p->v[at]->name, d->name) == 0) return -EEXIST;
  if (p->n >= MCP_PROMPTS_MAX) return -ENOSPC;
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 8;
    const mcp_prompt_def **v = realloc(p->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    p->v = v;
    p->cap = cap;
  }
  memmove(p->v + at + 1, p->v + at, (p->n - at) * sizeof *p->v);
  p->v[at] = d;
  p->n++;
  return 0;
}

size_t mcp_prompts_count(const mcp_prompts *p) { return p ? p->n : 0; }
const mcp_prompt_def *mcp_prompts_at(const mcp_prompts *p, size_t i) { return p && i < p->n ? p->v[i] : NULL; }

const mcp_prompt_def *mcp_prompts_find(const mcp_prompts *p, const char *name) {
  if (!p || !name) return NULL;
  size_t lo = 0, hi = p->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(p->v[mid]->name, name);
    if (c == 0) return p->v[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

json_t *mcp_prompt_to_json(const mcp_prompt_def *d) {
  json_t *o = json_pack("{s:s}", "name", d->name);
  if (!o) return NULL;
  if (d->title) json_object_set_new(o, "title", json_string(d->title));
  if (d->description) json_object_set_new(o, "description", json_string(d->description));
  if (d->nargs) {
    json_t *a = json_array();
    for (size_t i = 0; i < d->nargs; i++) {
      const mcp_prompt_arg *g = &d->args[i];
      json_t *x = json_pack("{s:s, s:b}", "name", g->name, "required", g->required);
      if (x && g->title) json_object_set_new(x, "title", json_string(g->title));
      if (x && g->description) json_object_set_new(x, "description", json_string(g->description));
      json_array_append_new(a, x);
    }
    json_object_set_new(o, "arguments", a);
  }
  return o;
}

int mcp_prompt_check_args(const mcp_prompt_def *d, const json_t *args, char *err, size_t errlen) {
  if (args && !json_is_object(args)) {
    snprintf(err, errlen, "prompts/get: params.arguments must be an object");
    return -EINVAL;
  }
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)args, k, v) {
    if (!json_is_string(v)) {
      snprintf(err, errlen, "prompts/get: argument %.64s must be a string", k);
      return -EINVAL;
    }
  }
  for (size_t i = 0; i < d->nargs; i++)
    if (d->args[i].required && !json_is_string(json_object_get(args, d->args[i].name))) {
      snprintf(err, errlen, "prompts/get: missing required argument %.64s", d->args[i].name);
      return -EINVAL;
    }
  return 0;
}

json_t *mcp_complete_from_list(const char *const *values, const char *prefix, size_t *total) {
  json_t *a = json_array();
  size_t n = 0, plen = prefix ? strlen(prefix) : 0;
  if (!a) return NULL;
  for (size_t i = 0; values && values[i]; i++) {
    if (plen && strncmp(values[i], prefix, plen) != 0) continue;
    n++;
    if (json_array_size(a) < MCP_COMPLETION_MAX_VALUES) json_array_append_new(a, json_string(values[i]));
  }
  *total = n;
  return a;
}

size_t mcp_complete_trim(json_t *values) {
  size_t n = json_array_size(values);
  while (json_array_size(values) > MCP_COMPLETION_MAX_VALUES) json_array_remove(values, json_array_size(values) - 1);
  return n;
}

int mcp_prompt_complete(const mcp_prompt_def *d, const char *arg, const char *prefix, const json_t *context,
                        json_t **values, size_t *total) {
  *values = NULL;
  *total = 0;
  if (d->complete) {
    int rc = d->complete(d->ud, arg, prefix, context, values);
    if (rc != 0) {
      json_decref(*values);
      *values = NULL;
      return rc;
    }
    if (!json_is_array(*values)) {
      json_decref(*values);
      *values = json_array();
    }
    *total = mcp_complete_trim(*values);
    return *values ? 0 : -ENOMEM;
  }
  const char *const *list = NULL;
  for (size_t i = 0; i < d->nargs; i++)
    if (strcmp(d->args[i].name, arg) == 0) list = d->args[i].values;
  *values = mcp_complete_from_list(list, prefix, total);
  return *values ? 0 : -ENOMEM;
}
