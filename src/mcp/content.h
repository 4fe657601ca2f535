/* content.h — builders for MCP content blocks and resource contents (schema ContentBlock,
 * TextResourceContents / BlobResourceContents), so tools, prompts and resource providers write
 * `mcp_content_image(png_b64, "image/png")` instead of hand-packing JSON.
 *
 * Every builder returns a new reference, or NULL when out of memory or an argument is missing
 * (NULL text, uri or mime type). Binary data is given base64-encoded (RFC 4648 §4, padded), or
 * as bytes through mcp_base64(). Pure functions: any thread. */
#ifndef PEERMCP_MCP_CONTENT_H
#define PEERMCP_MCP_CONTENT_H

#include <jansson.h>
#include <stddef.h>

/* {"type":"text","text":…} */
json_t *mcp_content_text(const char *text);
/* {"type":"image","data":<base64>,"mimeType":…} */
json_t *mcp_content_image(const char *base64, const char *mime_type);
/* {"type":"audio","data":<base64>,"mimeType":…} */
json_t *mcp_content_audio(const char *base64, const char *mime_type);
/* An embedded resource: {"type":"resource","resource":<contents>} where contents comes from
 * mcp_resource_text / mcp_resource_blob (stolen). */
json_t *mcp_content_embedded(json_t *contents);
/* A resource link: {"type":"resource_link","uri","name"[,"mimeType"][,"description"]}. */
json_t *mcp_content_link(const char *uri, const char *name, const char *mime_type, const char *description);

/* Resource contents for resources/read and embedded resources: {"uri","mimeType"?,"text"} and
 * {"uri","mimeType"?,"blob":<base64>}. mime_type may be NULL. */
json_t *mcp_resource_text(const char *uri, const char *mime_type, const char *text);
json_t *mcp_resource_blob(const char *uri, const char *mime_type, const char *base64);

/* Standard base64 (padded) of n bytes: a malloc'd NUL-terminated string, NULL on ENOMEM or
 * when n is over 64 MiB. */
char *mcp_base64(const void *data, size_t n);

#endif
