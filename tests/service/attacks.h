/* attacks.h — the network attacks of issue 9 (items 1–4 and 6) as small state machines on a
 * libuv loop, for tests/service/abuse_driver.c (the `make check` reproductions, suite
 * 66-abuse; a soak is abuse_driver with --seconds 600 — no `make soak` target runs them yet).
 * Not a unit test.
 *
 *   handshake_slots  TCP connections that never send a byte (silent=80), one closed and opened
 *                    again every reconnect_ms (50); a connection the server closes is opened
 *                    again (item 1). stall=1: each sends the multistream header and stalls (a
 *                    handshake that moves: not evicted before 500 ms); ips=N: from the source
 *                    addresses 127.0.0.2 … 127.0.0.(N+1) in turn (each its own per-IP limits)
 *   unread_output    a token holder stores a value of value_bytes (1000000) in the cache, then
 *                    opens `streams` (32) streams that never read and sends `gets` (64)
 *                    cache.get of it on each (item 2); with peers (1) > 1 the streams are
 *                    spread over that many identities (each its own peer budget: together
 *                    they meet the process budget); with id_bytes (0) > 0 each request is a
 *                    `ping` whose JSON-RPC id is that long instead (item 3: paused readers
 *                    with 1 MB ids)
 *   partial_frames   `peers` (6) fresh identities × `streams` (64) streams: initialize, then a
 *                    frame header for `frame` (1048000) bytes and `send` (frame - 1) bytes of it,
 *                    never the last (item 3); token=1 presents the token first
 *   long_waits       a token holder holds `streams` (64) streams × `waits` (64) `wait` ops of
 *                    timeout_s (30) on a task nobody runs (item 4)
 *   pipeline         one stream, `n` (300) pipelined tools/call of `tool` (sleep) with
 *                    {"ms": ms (100)}: the stream crosses the peer's rate limit; reports which
 *                    requests were answered (item 6: every request read before the -32010 must be)
 *   pool_burst       `peers` (2) token holders each keep `calls` (16) tools/call of `sleep`
 *                    {ms (1000)} in flight on one stream; a victim token holder calls `sleep`
 *                    {victim_ms (20)} one at a time, every 100 ms, and reports its worst and
 *                    mean latency (fairness of the worker pools between callers)
 *
 * Everything runs on env->loop's thread. start() begins; stop() closes every handle and host so
 * the loop runs out; report() returns counters (new reference) after the loop ended. Identities
 * live under env->id_dir/<n> (created on demand). */
#ifndef PEERMCP_TESTS_SERVICE_ATTACKS_H
#define PEERMCP_TESTS_SERVICE_ATTACKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct atk_env {
  uv_loop_t *loop;
  const char *peer;         /* the server: multiaddr with /p2p/<id> */
  const char *id_dir;       /* identities: id_dir/0, id_dir/1, … */
  const char *token;        /* the shared token, or NULL */
  const char *const *args;  /* KEY=VALUE */
  size_t n_args;
  void (*finish)(void *ud); /* the attack is over before its time (optional) */
  void *finish_ud;
} atk_env;

typedef struct atk_def {
  const char *name;
  const char *summary;
  int (*start)(const atk_env *env, void **state);
  void (*stop)(void *state);
  json_t *(*report)(void *state);
  void (*free)(void *state);
} atk_def;

extern const atk_def atk_handshake_slots, atk_unread_output, atk_partial_frames, atk_long_waits, atk_pipeline,
    atk_pool_burst;
/* NULL when unknown. */
const atk_def *atk_find(const char *name);
/* The value of KEY=VALUE in env->args, else dflt. */
long atk_arg(const atk_env *env, const char *key, long dflt);

#endif
