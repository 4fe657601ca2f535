/* registry.c — the one tool registry (see registry.h).
 *
 * Tools live in one array kept sorted by (category, name) — the listing order — plus an index
 * sorted by name for lookups. Registration happens before serving, so inserts may be O(n). */
#include "mcp/registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/prompts.h"
#include "mcp/resources.h"
#include "mcp/schema.h"
#include "util/alloc.h"
#include "util/check.h"
#include "util/log.h"

struct mcp_tool {
  mcp_tool_def def; /* strings point into owned copies below */
  char *name, *category, *title, *description, *input_text, *output_text, *annotations_text;
  json_t *input;       /* parsed input schema (never NULL) */
  json_t *output;      /* parsed output schema or NULL */
  json_t *annotations; /* object or NULL */
  bool fills_defaults; /* the input schema has a "default" somewhere: validation may change args */
  unsigned metric_label; /* index in mcp_tool_labels */
};

METRICS_INTERN_DEFINE(mcp_tool_labels, MCP_TOOL_LABELS);

/* True when any object in the schema has a "default" key (conservative: one inside a branch
 * that never applies counts too). */
static bool has_default(const json_t *j, int depth) {
  if (depth > 64) return true;
  if (json_is_array(j)) {
    for (size_t i = 0; i < json_array_size(j); i++)
      if (has_default(json_array_get(j, i), depth + 1)) return true;
    return false;
  }
  if (!json_is_object(j)) return false;
  if (json_object_get(j, "default")) return true;
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)j, k, v) {
    if (has_default(v, depth + 1)) return true;
  }
  return false;
}

typedef struct reg_category {
  char *name;
  char *description;
  size_t count;
} reg_category;

/* Invariants: tools[0..n) is sorted by (category, name) and by_name[0..n) by name, the same
 * n tools in both, n <= cap; every listed tool's category is in cats with a count of at least
 * one (a category whose count drops to 0 stays only if it has a description). */
struct mcp_registry {
  mcp_tool **tools; /* sorted by (category, name) */
  mcp_tool **by_name;
  size_t n, cap;
  reg_category *cats; /* sorted by name */
  size_t ncats, catcap;
  mcp_tool **removed; /* kept until free: several tools may share one ud, freed by one of them */
  size_t nremoved;
  mcp_prompts *prompts;
  mcp_resources *resources;
  struct {
    void (*fn)(void *ud);
    void *ud;
  } on_free[64];
  size_t n_on_free;
};

mcp_registry *mcp_registry_new(void) {
  mcp_registry *reg = calloc(1, sizeof(mcp_registry));
  if (!reg) return NULL;
  reg->prompts = mcp_prompts_new();
  reg->resources = mcp_resources_new();
  if (!reg->prompts || !reg->resources) {
    mcp_registry_free(reg);
    return NULL;
  }
  return reg;
}

int mcp_registry_on_free(mcp_registry *reg, void (*fn)(void *ud), void *ud) {
  if (!reg || !fn) return -EINVAL;
  if (reg->n_on_free >= sizeof reg->on_free / sizeof reg->on_free[0]) return -ENOMEM;
  reg->on_free[reg->n_on_free].fn = fn;
  reg->on_free[reg->n_on_free].ud = ud;
  reg->n_on_free++;
  return 0;
}

mcp_prompts *mcp_registry_prompts(const mcp_registry *reg) { return reg ? reg->prompts : NULL; }
mcp_resources *mcp_registry_resources(const mcp_registry *reg) { return reg ? reg->resources : NULL; }

static void tool_free(mcp_tool *t) {
  if (!t) return;
  if (t->def.ud_free) t->def.ud_free(t->def.ud);
  free(t->name);
  free(t->category);
  free(t->title);
  free(t->description);
  free(t->input_text);
  free(t->output_text);
  free(t->annotations_text);
  json_decref(t->input);
  json_decref(t->output);
  json_decref(t->annotations);
  free(t);
}

void mcp_registry_free(mcp_registry *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->n; i++) tool_free(reg->tools[i]);
  for (size_t i = 0; i < reg->nremoved; i++) tool_free(reg->removed[i]);
  free(reg->removed);
  free(reg->tools);
  free(reg->by_name);
  for (size_t i = 0; i < reg->ncats; i++) {
    free(reg->cats[i].name);
    free(reg->cats[i].description);
  }
  free(reg->cats);
  for (size_t i = 0; i < reg->n_on_free; i++) reg->on_free[i].fn(reg->on_free[i].ud);
  mcp_prompts_free(reg->prompts);
  mcp_resources_free(reg->resources);
  free(reg);
}

/* [A-Za-z0-9_.-]{1,max} */
static bool name_ok(const char *s, size_t max) {
  if (!s) return false;
  size_t n = strlen(s);
  if (n == 0 || n > max) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

static char *dup_or_null(const char *s, bool *oom) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = true;
  return d;
}

/* Parses JSON text the registry keeps (a schema, annotations). 0, -EINVAL (logged with
 * `what`) or -ENOMEM: jansson reports a failed allocation as a syntax error, util/alloc tells. */
static int parse_json(const char *tool, const char *what, const char *text, json_t **out) {
  json_error_t jerr;
  bool oom;
  json_t *j = alloc_json_loads(text, JSON_REJECT_DUPLICATES, &jerr, &oom);
  if (oom) return -ENOMEM;
  if (!j) {
    log_error("registry: not valid JSON", "{s:s, s:s, s:s, s:i}", "tool", tool, "what", what, "error", jerr.text,
              "column", jerr.column);
    return -EINVAL;
  }
  *out = j;
  return 0;
}

/* Parses schema text (bounded by jansson's own depth limit) and checks it. */
static int parse_schema(const char *tool, const char *what, const char *text, bool must_be_object_type,
                        json_t **out) {
  json_t *j;
  int rc = parse_json(tool, what, text, &j);
  if (rc != 0) return rc;
  if (!json_is_object(j)) {
    log_error("registry: schema must be a JSON object", "{s:s, s:s}", "tool", tool, "schema", what);
    json_decref(j);
    return -EINVAL;
  }
  if (must_be_object_type) {
    /* MCP: a tool's inputSchema is an object schema. */
    json_t *type = json_object_get(j, "type");
    if (!type) {
      if (json_object_set_new(j, "type", json_string("object")) != 0) {
        json_decref(j);
        return -ENOMEM;
      }
    } else if (!json_is_string(type) || strcmp(json_string_value(type), "object") != 0) {
      log_error("registry: inputSchema must have type \"object\"", "{s:s}", "tool", tool);
      json_decref(j);
      return -EINVAL;
    }
  }
  char err[256] = "";
  rc = mcp_schema_check(j, err, sizeof err);
  if (rc != 0) {
    if (rc != -ENOMEM) {
      log_error("registry: schema rejected", "{s:s, s:s, s:s}", "tool", tool, "schema", what, "error", err);
      rc = -EINVAL;
    }
    json_decref(j);
    return rc;
  }
  *out = j;
  return 0;
}

static int cmp_listing(const mcp_tool *a, const mcp_tool *b) {
  int c = strcmp(a->category, b->category);
  return c ? c : strcmp(a->name, b->name);
}

static reg_category *cat_find(const mcp_registry *reg, const char *name, size_t *pos) {
  size_t lo = 0, hi = reg->ncats;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(reg->cats[mid].name, name);
    if (c == 0) {
      if (pos) *pos = mid;
      return &reg->cats[mid];
    }
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  if (pos) *pos = lo;
  return NULL;
}

static int cat_get_or_add(mcp_registry *reg, const char *name, reg_category **out) {
  size_t pos;
  reg_category *c = cat_find(reg, name, &pos);
  if (c) {
    *out = c;
    return 0;
  }
  if (reg->ncats == reg->catcap) {
    size_t nc = reg->catcap ? reg->catcap * 2 : 8;
    reg_category *n = realloc(reg->cats, nc * sizeof *n);
    if (!n) return -ENOMEM;
    reg->cats = n;
    reg->catcap = nc;
  }
  char *dup = strdup(name);
  if (!dup) return -ENOMEM;
  memmove(&reg->cats[pos + 1], &reg->cats[pos], (reg->ncats - pos) * sizeof *reg->cats);
  reg->cats[pos] = (reg_category){.name = dup, .description = NULL, .count = 0};
  reg->ncats++;
  *out = &reg->cats[pos];
  return 0;
}

int mcp_registry_add(mcp_registry *reg, const mcp_tool_def *def) {
  if (!reg || !def) return -EINVAL;
  if (!name_ok(def->name, 128)) {
    log_error("registry: bad tool name", "{s:s}", "name", def->name ? def->name : "(null)");
    return -EINVAL;
  }
  if (!name_ok(def->category, 64)) {
    log_error("registry: bad category name", "{s:s, s:s}", "tool", def->name, "category",
              def->category ? def->category : "(null)");
    return -EINVAL;
  }
  if (!def->fn) {
    log_error("registry: tool has no handler", "{s:s}", "tool", def->name);
    return -EINVAL;
  }
  /* where a handler runs is one choice: inline, long pool, or the loop (tool.h) */
  unsigned kind = def->flags & (MCP_TOOL_INLINE | MCP_TOOL_LONG | MCP_TOOL_ASYNC);
  if ((kind & (kind - 1)) != 0 || (def->is_long && (def->flags & (MCP_TOOL_INLINE | MCP_TOOL_ASYNC)))) {
    log_error("registry: a tool is at most one of inline, long (or is_long) and async", "{s:s}", "tool", def->name);
    return -EINVAL;
  }
  if (mcp_registry_find(reg, def->name)) {
    log_error("registry: duplicate tool name", "{s:s}", "tool", def->name);
    return -EEXIST;
  }

  mcp_tool *t = calloc(1, sizeof *t);
  if (!t) return -ENOMEM;
  int rc = parse_schema(def->name, "inputSchema", def->input_schema ? def->input_schema : "{\"type\":\"object\"}",
                        true, &t->input);
  if (rc == 0 && def->output_schema) rc = parse_schema(def->name, "outputSchema", def->output_schema, false, &t->output);
  if (rc == 0 && def->annotations) rc = parse_json(def->name, "annotations", def->annotations, &t->annotations);
  if (rc == 0 && def->annotations) {
    if (!json_is_object(t->annotations)) {
      log_error("registry: annotations must be a JSON object", "{s:s}", "tool", def->name);
      rc = -EINVAL;
    }
  }
  if (rc != 0) {
    t->def.ud_free = NULL; /* on failure the caller keeps ownership of ud */
    tool_free(t);
    return rc;
  }
  bool oom = false;
  t->name = dup_or_null(def->name, &oom);
  t->category = dup_or_null(def->category, &oom);
  t->title = dup_or_null(def->title, &oom);
  t->description = dup_or_null(def->description ? def->description : "", &oom);
  t->input_text = dup_or_null(def->input_schema, &oom);
  t->output_text = dup_or_null(def->output_schema, &oom);
  t->annotations_text = dup_or_null(def->annotations, &oom);
  if (oom) {
    tool_free(t);
    return -ENOMEM;
  }
  t->fills_defaults = has_default(t->input, 0);
  t->metric_label = metrics_intern_add(&mcp_tool_labels, t->name);
  t->def = *def;
  t->def.name = t->name;
  t->def.category = t->category;
  t->def.title = t->title;
  t->def.description = t->description;
  t->def.input_schema = t->input_text;
  t->def.output_schema = t->output_text;
  t->def.annotations = t->annotations_text;

  if (reg->n == reg->cap) {
    size_t nc = reg->cap ? reg->cap * 2 : 16;
    mcp_tool **a = realloc(reg->tools, nc * sizeof *a);
    if (!a) goto oom;
    reg->tools = a;
    mcp_tool **b = realloc(reg->by_name, nc * sizeof *b);
    if (!b) goto oom;
    reg->by_name = b;
    reg->cap = nc;
  }
  reg_category *cat;
  if (cat_get_or_add(reg, t->category, &cat) != 0) goto oom;
  cat->count++;

  size_t i = reg->n;
  while (i > 0 && cmp_listing(reg->tools[i - 1], t) > 0) i--;
  memmove(&reg->tools[i + 1], &reg->tools[i], (reg->n - i) * sizeof *reg->tools);
  reg->tools[i] = t;
  size_t j = reg->n;
  while (j > 0 && strcmp(reg->by_name[j - 1]->name, t->name) > 0) j--;
  memmove(&reg->by_name[j + 1], &reg->by_name[j], (reg->n - j) * sizeof *reg->by_name);
  reg->by_name[j] = t;
  reg->n++;
  CHECK(reg->n <= reg->cap);
  CHECK(i == 0 || cmp_listing(reg->tools[i - 1], t) < 0);
  CHECK(i + 1 == reg->n || cmp_listing(t, reg->tools[i + 1]) < 0);
  CHECK(j == 0 || strcmp(reg->by_name[j - 1]->name, t->name) < 0);
  CHECK(j + 1 == reg->n || strcmp(t->name, reg->by_name[j + 1]->name) < 0);
  CHECK(cat->count > 0 && cat == cat_find(reg, t->category, NULL));
  return 0;
oom:
  t->def.ud_free = NULL;
  tool_free(t);
  return -ENOMEM;
}

int mcp_registry_remove(mcp_registry *reg, const char *name) {
  mcp_tool *t = (mcp_tool *)mcp_registry_find(reg, name);
  if (!t) return -ENOENT;
  mcp_tool **g = realloc(reg->removed, (reg->nremoved + 1) * sizeof *g);
  if (!g) return -ENOMEM;
  reg->removed = g;
  reg->removed[reg->nremoved++] = t;
  for (size_t i = 0; i < reg->n; i++)
    if (reg->tools[i] == t) {
      memmove(&reg->tools[i], &reg->tools[i + 1], (reg->n - i - 1) * sizeof *reg->tools);
      break;
    }
  for (size_t i = 0; i < reg->n; i++)
    if (reg->by_name[i] == t) {
      memmove(&reg->by_name[i], &reg->by_name[i + 1], (reg->n - i - 1) * sizeof *reg->by_name);
      break;
    }
  reg->n--;
  size_t pos;
  reg_category *c = cat_find(reg, t->category, &pos);
  CHECK(c && c->count > 0); /* a registered tool's category is counted */
  if (c && --c->count == 0 && !c->description) { /* an empty, undescribed category disappears */
    free(c->name);
    memmove(&reg->cats[pos], &reg->cats[pos + 1], (reg->ncats - pos - 1) * sizeof *reg->cats);
    reg->ncats--;
  }
  return 0;
}

/* Not done: a hashed or length-first lookup (a binary search, ~6 strcmp for ~50 tools, ~250
 * instructions a tools/call). */
const mcp_tool *mcp_registry_find(const mcp_registry *reg, const char *name) {
  if (!reg || !name) return NULL;
  size_t lo = 0, hi = reg->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(reg->by_name[mid]->name, name);
    if (c == 0) return reg->by_name[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

size_t mcp_registry_count(const mcp_registry *reg) { return reg ? reg->n : 0; }
const mcp_tool *mcp_registry_at(const mcp_registry *reg, size_t i) {
  return reg && i < reg->n ? reg->tools[i] : NULL;
}

size_t mcp_registry_category_count(const mcp_registry *reg) { return reg ? reg->ncats : 0; }
const char *mcp_registry_category_at(const mcp_registry *reg, size_t i) {
  return reg && i < reg->ncats ? reg->cats[i].name : NULL;
}
size_t mcp_registry_category_size(const mcp_registry *reg, const char *category) {
  if (!reg || !category) return 0;
  reg_category *c = cat_find(reg, category, NULL);
  return c ? c->count : 0;
}
const char *mcp_registry_category_description(const mcp_registry *reg, const char *category) {
  if (!reg || !category) return "";
  reg_category *c = cat_find(reg, category, NULL);
  return c && c->description ? c->description : "";
}
int mcp_registry_describe_category(mcp_registry *reg, const char *category, const char *description) {
  if (!reg || !name_ok(category, 64) || !description) return -EINVAL;
  reg_category *c;
  int rc = cat_get_or_add(reg, category, &c);
  if (rc != 0) return rc;
  char *d = strdup(description);
  if (!d) return -ENOMEM;
  free(c->description);
  c->description = d;
  return 0;
}

const mcp_tool_def *mcp_tool_def_of(const mcp_tool *tool) { return tool ? &tool->def : NULL; }
json_t *mcp_tool_input_schema(const mcp_tool *tool) { return tool ? tool->input : NULL; }
bool mcp_tool_fills_defaults(const mcp_tool *tool) { return !tool || tool->fills_defaults; }
unsigned mcp_tool_metric_label(const mcp_tool *tool) {
  return tool ? tool->metric_label : mcp_tool_labels.cap;
}
json_t *mcp_tool_output_schema(const mcp_tool *tool) { return tool ? tool->output : NULL; }

json_t *mcp_tool_to_json(const mcp_tool *tool) {
  if (!tool) return NULL;
  alloc_watch w = alloc_watch_begin();
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(tool->name));
  if (tool->title) json_object_set_new(o, "title", json_string(tool->title));
  json_object_set_new(o, "description", json_string(tool->description));
  json_object_set_new(o, "inputSchema", json_deep_copy(tool->input));
  if (tool->output) json_object_set_new(o, "outputSchema", json_deep_copy(tool->output));
  if (tool->annotations) json_object_set_new(o, "annotations", json_deep_copy(tool->annotations));
  if (alloc_watch_end(w)) { /* whole or nothing: a tool without its inputSchema is not a tool */
    json_decref(o);
    return NULL;
  }
  return o;
}
