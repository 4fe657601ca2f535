/* attack_heartbeat.c — the soak attack "heartbeat_flood" (issue 9 item 5): a token holder
 * sends `peer.heartbeat` ops as fast as the server answers them, each naming a made-up peer
 * (a random id of id_bytes characters) and optionally carrying a MerkleClock with clock_keys
 * made-up nodes. Before the fix this grew the server's RSS by ~100 MB per 20k heartbeats.
 *
 * Arguments (--arg heartbeat_flood:KEY=VALUE): conns (4) connections, each with its own
 * identity; inflight (16) requests in flight per connection; id_bytes (52); clock_keys (0);
 * max (0 = unlimited) heartbeats in all. Report: sent, ok, refused (an error reply), failed
 * (no reply), per_s. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "bench/soak/soak.h"
#include "util/clock.h"

#define HB_MAX_CONNS 64

typedef struct hb_state {
  const soak_env *env;
  p2p_host *hosts[HB_MAX_CONNS];
  svc_client *clients[HB_MAX_CONNS];
  long conns, inflight, id_bytes, clock_keys, max;
  long sent, ok, refused, failed;
  int64_t t0, t1;
  bool stopping;
  long owed[HB_MAX_CONNS]; /* answered requests to replace, per connection */
  uv_check_t refill;       /* replaces them after the loop's I/O: a new request from inside a
                              reply callback could land on a stream that is failing its list */
} hb_state;

static void made_up(char *out, size_t n) {
  static const char k[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  for (size_t i = 0; i < n; i++) out[i] = k[randombytes_uniform(sizeof k - 1)];
  out[n] = 0;
}

static void hb_send(hb_state *s, svc_client *c);

typedef struct hb_req {
  hb_state *s;
  svc_client *c;
} hb_req;

static void hb_done(void *ud, int err, json_t *result, json_t *error) {
  hb_req *r = ud;
  hb_state *s = r->s;
  (void)error;
  if (err != 0 || !result) s->failed++;
  else if (json_is_true(json_object_get(result, "ok"))) s->ok++;
  else s->refused++;
  svc_client *c = r->c;
  free(r);
  if (s->stopping) return;
  if (s->max && s->ok + s->refused + s->failed >= s->max) {
    s->env->finish(s->env);
    return;
  }
  for (long i = 0; i < s->conns; i++)
    if (s->clients[i] == c) s->owed[i]++;
}

static void hb_refill(uv_check_t *h) {
  hb_state *s = h->data;
  for (long i = 0; i < s->conns && !s->stopping; i++)
    for (; s->owed[i] > 0; s->owed[i]--) hb_send(s, s->clients[i]);
}

static void hb_send(hb_state *s, svc_client *c) {
  if (s->max && s->sent >= s->max) return;
  size_t idn = (size_t)(s->id_bytes > 0 ? s->id_bytes : 1);
  char *id = malloc(idn + 1);
  if (!id) return;
  made_up(id, idn);
  json_t *m = json_pack("{s:s, s:s}", "op", "peer.heartbeat", "peer_id", id);
  if (s->clock_keys > 0) {
    json_t *vec = json_object();
    for (long i = 0; i < s->clock_keys; i++) {
      made_up(id, idn);
      json_object_set_new(vec, id, json_integer(1));
    }
    json_object_set_new(m, "clock", json_pack("{s:s, s:o}", "node_id", "soak", "vector", vec));
  }
  free(id);
  hb_req *r = calloc(1, sizeof *r);
  if (!r || !m) {
    free(r);
    json_decref(m);
    return;
  }
  r->s = s;
  r->c = c;
  s->sent++;
  if (svc_client_rpc(c, m, 10000, hb_done, r) != 0) {
    s->failed++;
    free(r);
  }
  json_decref(m);
}

static int hb_start(const soak_env *env, void **state) {
  if (sodium_init() < 0) return -EIO;
  hb_state *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->env = env;
  s->conns = soak_arg_long(env, "conns", 4);
  s->inflight = soak_arg_long(env, "inflight", 16);
  s->id_bytes = soak_arg_long(env, "id_bytes", 52);
  s->clock_keys = soak_arg_long(env, "clock_keys", 0);
  s->max = soak_arg_long(env, "max", 0);
  if (s->conns < 1) s->conns = 1;
  if (s->conns > HB_MAX_CONNS) s->conns = HB_MAX_CONNS;
  if (s->inflight < 1) s->inflight = 1;
  if (s->id_bytes > 1 << 20) s->id_bytes = 1 << 20;
  s->t0 = clock_mono_us();
  uv_check_init(env->loop, &s->refill);
  s->refill.data = s;
  uv_check_start(&s->refill, hb_refill);
  for (long i = 0; i < s->conns; i++) {
    s->hosts[i] = soak_host_new(env, (int)i);
    s->clients[i] = soak_client_new(env, s->hosts[i], (size_t)s->inflight);
    for (long k = 0; k < s->inflight; k++) hb_send(s, s->clients[i]);
  }
  *state = s;
  return 0;
}

static void hb_stop(void *state) {
  hb_state *s = state;
  s->stopping = true;
  s->t1 = clock_mono_us();
  uv_check_stop(&s->refill);
  uv_close((uv_handle_t *)&s->refill, NULL);
  for (long i = 0; i < s->conns; i++) {
    svc_client_close(s->clients[i]);
    s->clients[i] = NULL;
    soak_host_close(s->hosts[i]);
    s->hosts[i] = NULL;
  }
}

static json_t *hb_report(void *state) {
  hb_state *s = state;
  double el = (double)((s->t1 ? s->t1 : clock_mono_us()) - s->t0) / 1e6;
  return json_pack("{s:I, s:I, s:I, s:I, s:f, s:I, s:I}", "sent", (json_int_t)s->sent, "ok", (json_int_t)s->ok,
                   "refused", (json_int_t)s->refused, "failed", (json_int_t)s->failed, "per_s",
                   el > 0 ? (double)(s->ok + s->refused) / el : 0.0, "id_bytes", (json_int_t)s->id_bytes,
                   "clock_keys", (json_int_t)s->clock_keys);
}

static void hb_free(void *state) { free(state); }

const soak_attack soak_attack_heartbeat_flood = {
    .name = "heartbeat_flood",
    .summary = "a token holder floods peer.heartbeat with made-up peer ids (issue 9 item 5)",
    .start = hb_start,
    .stop = hb_stop,
    .report = hb_report,
    .free = hb_free,
};
