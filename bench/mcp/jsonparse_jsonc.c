/* jsonparse_jsonc.c — json-c's side of bench/mcp/jsonparse.c (its names clash with jansson's). */
#include <json-c/json.h>
#include <stddef.h>

int jsonparse_jsonc(const char *m, size_t n, size_t *members);

int jsonparse_jsonc(const char *m, size_t n, size_t *members) {
  json_tokener *tok = json_tokener_new();
  if (!tok) return -1;
  struct json_object *v = json_tokener_parse_ex(tok, m, (int)n);
  json_tokener_free(tok);
  if (!v) return -1;
  *members = (size_t)json_object_object_length(v);
  json_object_put(v);
  return 0;
}
