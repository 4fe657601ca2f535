/* resources.c — the resource table, URI templates and subscription counts (see resources.h). */
#include "mcp/resources.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/check.h"
#include "util/log.h"

#define MCP_RESOURCES_MAX 4096
#define MCP_URI_VAR_MAX_NAME 32

typedef struct sub_count {
  char *uri;
  const mcp_resource_def *def;
  mcp_dispatcher *env;
  size_t n;
} sub_count;

typedef struct listener {
  unsigned handle;
  mcp_resources_updated_fn cb;
  void *ud;
} listener;

struct mcp_resources {
  const mcp_resource_def **fixed; /* sorted by uri */
  size_t nfixed, capfixed;
  const mcp_resource_def **tmpl; /* registration order */
  size_t ntmpl, captmpl;
  sub_count *subs;
  size_t nsubs, capsubs;
  listener *ls;
  size_t nls, capls;
  unsigned next_handle;
  bool notifying;
};

mcp_resources *mcp_resources_new(void) { return calloc(1, sizeof(mcp_resources)); }

void mcp_resources_free(mcp_resources *r) {
  if (!r) return;
  CHECK(r->nsubs == 0);
  for (size_t i = 0; i < r->nsubs; i++) free(r->subs[i].uri);
  free(r->subs);
  free(r->ls);
  free(r->fixed);
  free(r->tmpl);
  free(r);
}

void mcp_uri_vars_clear(mcp_uri_vars *v) {
  for (size_t i = 0; i < v->n; i++) {
    free((char *)v->name[i]);
    free(v->value[i]);
  }
  v->n = 0;
}

const char *mcp_uri_var(const mcp_uri_vars *v, const char *name) {
  for (size_t i = 0; v && name && i < v->n; i++)
    if (strcmp(v->name[i], name) == 0) return v->value[i];
  return NULL;
}

/* ---------- templates ---------- */

/* Parses the expression at t ('{'); sets *reserved, the name span and returns the position after
 * '}', or NULL when malformed. */
static const char *parse_expr(const char *t, bool *reserved, const char **name, size_t *nlen) {
  t++;
  *reserved = *t == '+';
  if (*reserved) t++;
  *name = t;
  while ((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') || *t == '_') t++;
  *nlen = (size_t)(t - *name);
  if (*t != '}' || *nlen == 0 || *nlen > MCP_URI_VAR_MAX_NAME) return NULL;
  return t + 1;
}

static bool template_ok(const char *t) {
  size_t nvars = 0;
  bool prev_var = false;
  if (!t || !*t || strlen(t) > MCP_URI_MAX_BYTES) return false;
  while (*t) {
    if (*t == '{') {
      bool reserved;
      const char *name;
      size_t nlen;
      const char *next = parse_expr(t, &reserved, &name, &nlen);
      if (!next || prev_var || ++nvars > MCP_URI_MAX_VARS) return false;
      prev_var = true;
      t = next;
    } else {
      if (*t == '}') return false;
      prev_var = false;
      t++;
    }
  }
  return true;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on a bad escape, a NUL, or ENOMEM. */
static char *pct_decode(const char *s, size_t n) {
  char *o = malloc(n + 1), *w = o;
  if (!o) return NULL;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= n) {
        free(o);
        return NULL;
      }
      int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
      if (a < 0 || b < 0 || (a == 0 && b == 0)) {
        free(o);
        return NULL;
      }
      *w++ = (char)(a * 16 + b);
      i += 2;
    } else {
      *w++ = c;
    }
  }
  *w = 0;
  return o;
}

bool mcp_uri_template_match(const char *t, const char *uri, mcp_uri_vars *vars) {
  vars->n = 0;
  if (!t || !uri || strlen(uri) > MCP_URI_MAX_BYTES) return false;
  const char *u = uri;
  while (*t) {
    if (*t != '{') {
      if (*t != *u) goto fail;
      t++;
      u++;
      continue;
    }
    bool reserved;
    const char *name;
    size_t nlen;
    t = parse_expr(t, &reserved, &name, &nlen);
    if (!t) goto fail;
    /* the literal that follows (up to the next expression or the end) bounds the value */
    size_t llen = strcspn(t, "{");
    const char *end;
    if (llen == 0) { /* last expression: takes the rest */
      end = u + strlen(u);
    } else {
      end = NULL;
      for (const char *p = u + 1; *p; p++) /* at least one character */
        if (strncmp(p, t, llen) == 0) {
          end = p;
          break;
        }
      if (!end) goto fail;
    }
    if (end == u) goto fail;
    if (!reserved)
      for (const char *p = u; p < end; p++)
        if (*p == '/' || *p == '?' || *p == '#') goto fail;
    if (vars->n >= MCP_URI_MAX_VARS) goto fail;
    char *v = pct_decode(u, (size_t)(end - u));
    if (!v) goto fail;
    char *nm = strndup(name, nlen);
    if (!nm) {
      free(v);
      goto fail;
    }
    vars->name[vars->n] = nm;
    vars->value[vars->n] = v;
    vars->n++;
    u = end;
  }
  if (*u) goto fail;
  return true;
fail:
  mcp_uri_vars_clear(vars);
  return false;
}

/* ---------- the table ---------- */

static bool grow(void **v, size_t *cap, size_t n, size_t elem) {
  if (n < *cap) return true;
  size_t c = *cap ? *cap * 2 : 8;
  void *p = realloc(*v, c * elem);
  if (!p) return false;
  *v = p;
  *cap = c;
  return true;
}

int mcp_resources_add(mcp_resources *r, const mcp_resource_def *d) {
  if (!r || !d || !d->name || !*d->name || !d->read || (!d->uri == !d->uri_template)) return -EINVAL;
  if (d->uri && (!*d->uri || strlen(d->uri) > MCP_URI_MAX_BYTES)) return -EINVAL;
  if (d->uri_template && !template_ok(d->uri_template)) {
    log_error("resources: bad URI template", "{s:s}", "template", d->uri_template);
    return -EINVAL;
  }
  if (r->nfixed + r->ntmpl >= MCP_RESOURCES_MAX) return -ENOSPC;
  if (d->uri) {
    size_t at = 0;
    while (at < r->nfixed && strcmp(r->fixed[at]->uri, d->uri) < 0) at++;
    if (at < r->nfixed && strcmp(r->fixed[at]->uri, d->uri) == 0) return -EEXIST;
    if (!grow((void **)&r->fixed, &r->capfixed, r->nfixed, sizeof *r->fixed)) return -ENOMEM;
    memmove(r->fixed + at + 1, r->fixed + at, (r->nfixed - at) * sizeof *r->fixed);
    r->fixed[at] = d;
    r->nfixed++;
    return 0;
  }
  for (size_t i = 0; i < r->ntmpl; i++)
    if (strcmp(r->tmpl[i]->uri_template, d->uri_template) == 0) return -EEXIST;
  if (!grow((void **)&r->tmpl, &r->captmpl, r->ntmpl, sizeof *r->tmpl)) return -ENOMEM;
  r->tmpl[r->ntmpl++] = d;
  return 0;
}

size_t mcp_resources_count(const mcp_resources *r) { return r ? r->nfixed : 0; }
const mcp_resource_def *mcp_resources_at(const mcp_resources *r, size_t i) { return r && i < r->nfixed ? r->fixed[i] : NULL; }
size_t mcp_resources_template_count(const mcp_resources *r) { return r ? r->ntmpl : 0; }
const mcp_resource_def *mcp_resources_template_at(const mcp_resources *r, size_t i) {
  return r && i < r->ntmpl ? r->tmpl[i] : NULL;
}

const mcp_resource_def *mcp_resources_match(const mcp_resources *r, const char *uri, mcp_uri_vars *vars) {
  vars->n = 0;
  if (!r || !uri) return NULL;
  size_t lo = 0, hi = r->nfixed;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(r->fixed[mid]->uri, uri);
    if (c == 0) return r->fixed[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  for (size_t i = 0; i < r->ntmpl; i++)
    if (mcp_uri_template_match(r->tmpl[i]->uri_template, uri, vars)) return r->tmpl[i];
  return NULL;
}

const mcp_resource_def *mcp_resources_find_template(const mcp_resources *r, const char *t) {
  for (size_t i = 0; r && t && i < r->ntmpl; i++)
    if (strcmp(r->tmpl[i]->uri_template, t) == 0) return r->tmpl[i];
  return NULL;
}

json_t *mcp_resource_to_json(const mcp_resource_def *d) {
  json_t *o = d->uri ? json_pack("{s:s, s:s}", "uri", d->uri, "name", d->name)
                     : json_pack("{s:s, s:s}", "uriTemplate", d->uri_template, "name", d->name);
  if (!o) return NULL;
  if (d->title) json_object_set_new(o, "title", json_string(d->title));
  if (d->description) json_object_set_new(o, "description", json_string(d->description));
  if (d->mime_type) json_object_set_new(o, "mimeType", json_string(d->mime_type));
  return o;
}

/* ---------- subscriptions ---------- */

unsigned mcp_resources_listen(mcp_resources *r, mcp_resources_updated_fn cb, void *ud) {
  LOOP_THREAD_ONLY();
  if (!r || !cb || !grow((void **)&r->ls, &r->capls, r->nls, sizeof *r->ls)) return 0;
  unsigned h = ++r->next_handle;
  if (h == 0) h = ++r->next_handle;
  r->ls[r->nls++] = (listener){.handle = h, .cb = cb, .ud = ud};
  return h;
}

void mcp_resources_unlisten(mcp_resources *r, unsigned handle) {
  LOOP_THREAD_ONLY();
  for (size_t i = 0; r && i < r->nls; i++)
    if (r->ls[i].handle == handle) {
      /* during a notification the entry is only emptied, so the loop's indexes stay valid */
      if (r->notifying) {
        r->ls[i].cb = NULL;
      } else {
        memmove(r->ls + i, r->ls + i + 1, (r->nls - i - 1) * sizeof *r->ls);
        r->nls--;
      }
      return;
    }
}

static sub_count *find_sub(const mcp_resources *r, const char *uri, size_t *at) {
  for (size_t i = 0; i < r->nsubs; i++)
    if (strcmp(r->subs[i].uri, uri) == 0) {
      if (at) *at = i;
      return &r->subs[i];
    }
  return NULL;
}

int mcp_resources_subscribe(mcp_resources *r, const mcp_resource_def *d, const char *uri, mcp_dispatcher *env) {
  LOOP_THREAD_ONLY();
  if (!r || !d || !uri || strlen(uri) > MCP_URI_MAX_BYTES) return -EINVAL;
  sub_count *s = find_sub(r, uri, NULL);
  if (s) {
    s->n++;
    return 0;
  }
  if (r->nsubs >= MCP_RESOURCES_MAX_SUBSCRIBED) return -ENOSPC;
  if (!grow((void **)&r->subs, &r->capsubs, r->nsubs, sizeof *r->subs)) return -ENOMEM;
  char *u = strdup(uri);
  if (!u) return -ENOMEM;
  r->subs[r->nsubs++] = (sub_count){.uri = u, .def = d, .env = env, .n = 1};
  if (d->watch) d->watch(d->ud, uri, true, env);
  return 0;
}

void mcp_resources_unsubscribe(mcp_resources *r, const char *uri) {
  LOOP_THREAD_ONLY();
  size_t at;
  sub_count *s = r && uri ? find_sub(r, uri, &at) : NULL;
  if (!s || --s->n > 0) return;
  sub_count gone = *s;
  memmove(r->subs + at, r->subs + at + 1, (r->nsubs - at - 1) * sizeof *r->subs);
  r->nsubs--;
  if (gone.def->watch) gone.def->watch(gone.def->ud, gone.uri, false, gone.env);
  free(gone.uri);
}

size_t mcp_resources_subscribers(const mcp_resources *r, const char *uri) {
  const sub_count *s = r && uri ? find_sub(r, uri, NULL) : NULL;
  return s ? s->n : 0;
}

void mcp_resources_notify_updated(mcp_resources *r, const char *uri) {
  LOOP_THREAD_ONLY();
  if (!r || !uri || r->notifying) return; /* a listener that notifies again is ignored */
  r->notifying = true;
  for (size_t i = 0; i < r->nls; i++)
    if (r->ls[i].cb) r->ls[i].cb(r->ls[i].ud, uri);
  r->notifying = false;
  /* drop the entries listeners removed meanwhile */
  size_t w = 0;
  for (size_t i = 0; i < r->nls; i++)
    if (r->ls[i].cb) r->ls[w++] = r->ls[i];
  r->nls = w;
}
