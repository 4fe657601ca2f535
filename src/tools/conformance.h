/* conformance.h — the fixtures the official MCP conformance suite
 * (@modelcontextprotocol/conformance, server scenarios of the 2025-11-25 and 2026-07-28
 * requirement sets) expects a server to expose, plus a few more that exercise every content
 * type and client request in tests. Registered only with `peermcp serve --conformance-fixtures`
 * (tools.conformance_fixtures), never in a normal server.
 *
 * Tools (category "conformance"): test_simple_text, test_image_content, test_audio_content,
 * test_embedded_resource, test_multiple_content_types, test_resource_link,
 * test_structured_output, test_tool_with_logging, test_tool_with_progress,
 * test_error_handling, test_sampling, test_elicitation, test_elicitation_sep1034_defaults,
 * test_elicitation_sep1330_enums, test_list_roots, test_missing_capability,
 * test_input_required_result_{elicitation,sampling,list_roots,request_state,multiple_inputs,
 * multi_round,tampered_state,capabilities}, test_streaming_elicitation, test_logging_tool,
 * test_update_watched_resource, json_schema_2020_12_tool.
 * Prompts: test_simple_prompt, test_prompt_with_arguments (arg1 completes from a list),
 * test_prompt_with_embedded_resource, test_prompt_with_image, test_input_required_result_prompt.
 * Resources: test://static-text, test://static-binary, test://watched-resource (subscribable;
 * test_update_watched_resource changes it and notifies subscribers), template
 * test://template/{id}/data (id completes).
 *
 * Every tool that asks the client does it through mcp_reqctx_ask, so the same handler serves
 * 2025-11-25 (server-to-client requests) and 2026-07-28 (InputRequiredResult).
 *
 * Register on the main thread at start-up. The fixture state (the watched resource's text and
 * its update hand-off to the loop) lives until the registry is freed. */
#ifndef PEERMCP_TOOLS_CONFORMANCE_H
#define PEERMCP_TOOLS_CONFORMANCE_H

#include "mcp/registry.h"

int tools_conformance_register(mcp_registry *reg) __attribute__((warn_unused_result));

#endif
