/* schema.h — JSON Schema validation of tool arguments (the subset MCP tools use).
 *
 * Keywords: type (string or array; "integer" accepts integral reals), properties, required,
 * additionalProperties (bool or schema), enum, const, minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum, minLength, maxLength (in Unicode code points), pattern (POSIX ERE via
 * regcomp), items, minItems, maxItems, default, anyOf, oneOf, allOf, $ref to "#/$defs/…" and
 * "#/definitions/…"; unknown keywords (title, description, format, $schema, …) are ignored.
 * Depth and sizes are bounded. Pure functions: thread-safe on distinct instances. */
#ifndef PEERMCP_MCP_SCHEMA_H
#define PEERMCP_MCP_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

/* Checks that `schema` is a schema this validator understands (object, known type names,
 * compilable patterns). 0, -EINVAL with a reason in err, or -ENOMEM (err "out of memory"):
 * then nothing is known about the schema. */
int mcp_schema_check(const json_t *schema, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Stricter, for schemas people type (command tools): also refuses a keyword that is not JSON
 * Schema ("propertiez": "unknown keyword \"propertiez\" (did you mean \"properties\"?)") and a
 * standard assertion this validator does not enforce (multipleOf, not, if/then/else, …), so no
 * rule is silently ignored. Annotations (title, description, format, examples, …) pass. 0 or
 * -EINVAL with the schema path in err. Call after mcp_schema_check. */
int mcp_schema_check_keywords(const json_t *schema, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Validates `instance` against `schema`. Properties absent from an object instance that have a
 * "default" are filled in (instance is modified). Returns 0, -EINVAL with a message naming
 * the JSON path, e.g. "$.count: expected integer, got string", or -ENOMEM (err "out of
 * memory"): then nothing is known about the instance, and some defaults may be filled in. */
int mcp_schema_validate(const json_t *schema, json_t *instance, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
