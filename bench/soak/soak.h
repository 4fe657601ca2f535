/* soak.h — the soak driver's plug-in point for attacks (bench/soak/, `make soak`; issue 9).
 *
 * `soak run` measures a running `peermcp serve` (its RSS, descriptors and threads from
 * /proc/PID, and the latency of normal traffic it sends itself) before, during and after a set
 * of attacks. Each attack runs in its own child process (`soak attack NAME …`), on its own
 * libuv loop, so an attack that floods the client side cannot slow the normal traffic's own
 * measurements. An attack is one entry of soak_attacks[] (attacks.c):
 *
 *   start(env, &state)  begin on env->loop (dial, open streams, arm timers); 0 or -errno
 *   stop(state)         time is up or SIGTERM came: stop sending and close every handle and
 *                       client, so that env->loop runs out of work
 *   report(state)       after the loop ended: a JSON object of counters (new reference)
 *   free(state)
 *
 * Everything runs on the one loop thread of the attack process. Identities for the attack's
 * connections live under env->id_dir (subdirectories 0, 1, …, created on demand); the server
 * trusts none of them: an attack presents env->token (the token holder of issue 9) or nothing
 * (a stranger). To add an attack: write attack_NAME.c with a `const soak_attack
 * soak_attack_NAME`, declare it below, list it in attacks.c and in bench/soak/meson.build. */
#ifndef PEERMCP_BENCH_SOAK_H
#define PEERMCP_BENCH_SOAK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "service/client.h"

typedef struct soak_env soak_env;
struct soak_env {
  uv_loop_t *loop;
  const char *peer;     /* the server: a multiaddr with /p2p/<id> */
  const char *id_dir;   /* this attack's identities: id_dir/0, id_dir/1, … */
  const char *token;    /* the shared token, or NULL (a stranger) */
  int server_pid;
  double seconds;       /* how long the attack phase lasts (stop() is called then) */
  const char *const *args; /* KEY=VALUE options from --arg, for this attack */
  size_t n_args;
  /* An attack that is done before its time (e.g. it sent `max` requests) calls this; stop()
   * follows (from inside, so stop must not free the state). */
  void (*finish)(const soak_env *env);
};

typedef struct soak_attack {
  const char *name;
  const char *summary;
  int (*start)(const soak_env *env, void **state);
  void (*stop)(void *state);
  json_t *(*report)(void *state);
  void (*free)(void *state);
} soak_attack;

extern const soak_attack *const soak_attacks[];
extern const size_t soak_attack_count;

/* Helpers for attacks (soak.c). */
/* A host with identity env->id_dir/<idx> (created if missing); exits the process on failure. */
p2p_host *soak_host_new(const soak_env *env, int idx);
/* A /mcp+p2p/1.0.0 client to env->peer over h, with env->token, no retries. */
svc_client *soak_client_new(const soak_env *env, p2p_host *h, size_t max_inflight);
/* Closes a host; counts it so the caller's loop can end. */
void soak_host_close(p2p_host *h);
/* The value of KEY from the attack's --arg options, else dflt. */
long soak_arg_long(const soak_env *env, const char *key, long dflt);

extern const soak_attack soak_attack_heartbeat_flood;
/* issue 9 items 1–4 (attack_issue9.c, over tests/service/attacks.c) */
extern const soak_attack soak_attack_handshake_slots, soak_attack_unread_output, soak_attack_partial_frames,
    soak_attack_long_waits;

#endif
