/* content.c — MCP content blocks and resource contents (see content.h). */
#include "mcp/content.h"

#include <sodium.h>
#include <stdlib.h>

#define MCP_BASE64_MAX_INPUT (64u * 1024u * 1024u)

json_t *mcp_content_text(const char *text) {
  if (!text) return NULL;
  return json_pack("{s:s, s:s}", "type", "text", "text", text);
}

static json_t *binary_block(const char *type, const char *b64, const char *mime) {
  if (!b64 || !mime) return NULL;
  return json_pack("{s:s, s:s, s:s}", "type", type, "data", b64, "mimeType", mime);
}

json_t *mcp_content_image(const char *base64, const char *mime_type) { return binary_block("image", base64, mime_type); }
json_t *mcp_content_audio(const char *base64, const char *mime_type) { return binary_block("audio", base64, mime_type); }

json_t *mcp_content_embedded(json_t *contents) {
  if (!contents) return NULL;
  return json_pack("{s:s, s:o}", "type", "resource", "resource", contents);
}

json_t *mcp_content_link(const char *uri, const char *name, const char *mime_type, const char *description) {
  if (!uri || !name) return NULL;
  json_t *b = json_pack("{s:s, s:s, s:s}", "type", "resource_link", "uri", uri, "name", name);
  if (b && mime_type) json_object_set_new(b, "mimeType", json_string(mime_type));
  if (b && description) json_object_set_new(b, "description", json_string(description));
  return b;
}

static json_t *contents(const char *uri, const char *mime, const char *key, const char *value) {
  if (!uri || !value) return NULL;
  json_t *c = json_pack("{s:s}", "uri", uri);
  if (c && mime) json_object_set_new(c, "mimeType", json_string(mime));
  if (c) json_object_set_new(c, key, json_string(value));
  return c;
}

json_t *mcp_resource_text(const char *uri, const char *mime_type, const char *text) {
  return contents(uri, mime_type, "text", text);
}
json_t *mcp_resource_blob(const char *uri, const char *mime_type, const char *base64) {
  return contents(uri, mime_type, "blob", base64);
}

char *mcp_base64(const void *data, size_t n) {
  if (n > MCP_BASE64_MAX_INPUT) return NULL;
  size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
  char *out = malloc(cap);
  if (!out) return NULL;
  sodium_bin2base64(out, cap, data, n, sodium_base64_VARIANT_ORIGINAL);
  return out;
}
