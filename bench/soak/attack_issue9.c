/* attack_issue9.c — the attacks of issue 9 items 1–4 (tests/service/attacks.c, the ones suite
 * 66-abuse runs for seconds) as soak attacks (soak.h), so `make soak` runs them together, for
 * minutes, against a node serving normal traffic:
 *
 *   handshake_slots  80 silent TCP connections, one reconnected every 50 ms (item 1)
 *   unread_output    a token holder: 32 streams that never read, 64 cache.get of 1 MB each (item 2)
 *   partial_frames   6 strangers x 64 streams, each a frame header and all but one byte (item 3)
 *   long_waits       a token holder: 64 streams x 64 `wait` ops of 30 s (item 4)
 *
 * Options (--arg NAME:KEY=VALUE) are the attack's own (attacks.h). Each identity set lives in
 * env->id_dir. Everything on the attack process's loop thread. Not traced: beside handshake_slots
 * and heartbeat_flood, unread_output / long_waits / partial_frames open no stream (bench/RESULTS.md). */
#include <stdlib.h>

#include "bench/soak/soak.h"
#include "tests/service/attacks.h"

typedef struct adapt {
  const atk_def *def;
  const soak_env *senv;
  atk_env env; /* the attack keeps a pointer to it: lives as long as the state */
  void *st;
} adapt;

static void on_finish(void *ud) {
  adapt *a = ud;
  if (a->senv->finish) a->senv->finish(a->senv);
}

static int start_with(const atk_def *def, const soak_env *env, void **state) {
  adapt *a = calloc(1, sizeof *a);
  if (!a) return -1;
  a->def = def;
  a->senv = env;
  a->env = (atk_env){.loop = env->loop,
                     .peer = env->peer,
                     .id_dir = env->id_dir,
                     .token = env->token,
                     .args = env->args,
                     .n_args = env->n_args,
                     .finish = on_finish,
                     .finish_ud = a};
  int rc = def->start(&a->env, &a->st);
  if (rc != 0) {
    free(a);
    return rc;
  }
  *state = a;
  return 0;
}

static void a_stop(void *state) {
  adapt *a = state;
  a->def->stop(a->st);
}

static json_t *a_report(void *state) {
  adapt *a = state;
  return a->def->report(a->st);
}

static void a_free(void *state) {
  adapt *a = state;
  if (!a) return;
  a->def->free(a->st);
  free(a);
}

#define ADAPT(NAME, SUMMARY)                                                                               \
  static int start_##NAME(const soak_env *env, void **state) { return start_with(&atk_##NAME, env, state); } \
  const soak_attack soak_attack_##NAME = {#NAME, SUMMARY, start_##NAME, a_stop, a_report, a_free};

ADAPT(handshake_slots, "80 silent TCP connections, one reconnected every 50 ms (item 1)")
ADAPT(unread_output, "a token holder: 32 unread streams x 64 cache.get of 1 MB (item 2)")
ADAPT(partial_frames, "6 strangers x 64 streams, each a frame left one byte short (item 3)")
ADAPT(long_waits, "a token holder: 64 streams x 64 `wait` ops of 30 s (item 4)")
