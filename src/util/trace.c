/* trace.c — W3C traceparent and the per-thread request scope (see trace.h). */
#include "util/trace.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---------- ids: wyrand per thread ---------- */

/* wyrand (Wang Yi's wyhash PRNG: a Weyl sequence through a 64x64->128 multiply-fold, the
 * generator of Go's runtime.fastrand): 2^64 period, passes BigCrush and PractRand, ~5
 * instructions. State 0 means "not seeded yet" (a seeded state that happens to be 0 is
 * re-seeded once, harmless). */
static _Thread_local uint64_t t_wy;

static uint64_t seed(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) { /* no entropy source: time and address */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s = ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32)) ^ (uint64_t)(uintptr_t)&t_wy ^ ((uint64_t)getpid() << 17);
  }
  return s ? s : 0x9e3779b97f4a7c15ull;
}

/* One output; *s is the caller's copy of the state (loaded and stored once per id). */
static inline uint64_t wy(uint64_t *s) {
  *s += 0xa0761d6478bd642full;
  __uint128_t m = (__uint128_t)*s * (*s ^ 0xe7037ed1a0b428dbull);
  return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

static inline uint64_t state(void) {
  uint64_t s = t_wy;
  return __builtin_expect(s != 0, 1) ? s : seed();
}

static void new_span(trace_ctx *t) {
  uint64_t st = state(), s;
  do s = wy(&st);
  while (__builtin_expect(s == 0, 0)); /* an all-zero span id is invalid */
  t_wy = st;
  memcpy(t->span_id, &s, 8);
}

void trace_new(trace_ctx *out) {
  uint64_t st = state();
  uint64_t a = wy(&st), b = wy(&st), c = wy(&st);
  while (__builtin_expect((a | b) == 0, 0)) a = wy(&st); /* all-zero ids are invalid */
  while (__builtin_expect(c == 0, 0)) c = wy(&st);
  t_wy = st;
  memcpy(out->trace_id, &a, 8);
  memcpy(out->trace_id + 8, &b, 8);
  memcpy(out->span_id, &c, 8);
  out->flags = 1;
}

void trace_child(const trace_ctx *parent, trace_ctx *out) {
  if (!parent || !trace_valid(parent)) {
    trace_new(out);
    return;
  }
  memcpy(out->trace_id, parent->trace_id, 16);
  out->flags = parent->flags;
  new_span(out);
}

/* ---------- traceparent ---------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1; /* upper case is not allowed (§3.2.2.2: HEXDIGLC) */
}

static bool hex_bytes(const char *p, uint8_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int h = hexval(p[2 * i]), l = hexval(p[2 * i + 1]);
    if (h < 0 || l < 0) return false;
    out[i] = (uint8_t)(h << 4 | l);
  }
  return true;
}

static bool all_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return false;
  return true;
}

int trace_continue(const char *tp, trace_ctx *out) {
  if (!tp) return -EINVAL;
  size_t len = strnlen(tp, TRACE_PARENT_LEN + 2);
  if (len < TRACE_PARENT_LEN) return -EINVAL;
  uint8_t ver, tid[16], pid[8], flags;
  if (!hex_bytes(tp, &ver, 1) || ver == 0xff) return -EINVAL;
  if (ver == 0 && len != TRACE_PARENT_LEN) return -EINVAL;
  if (ver != 0 && len > TRACE_PARENT_LEN && tp[TRACE_PARENT_LEN] != '-') return -EINVAL;
  if (tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return -EINVAL;
  if (!hex_bytes(tp + 3, tid, 16) || !hex_bytes(tp + 36, pid, 8) || !hex_bytes(tp + 53, &flags, 1)) return -EINVAL;
  if (all_zero(tid, 16) || all_zero(pid, 8)) return -EINVAL;
  memcpy(out->trace_id, tid, 16);
  out->flags = flags;
  new_span(out);
  return 0;
}

int trace_continue_json(const json_t *v, trace_ctx *out) {
  return json_is_string(v) ? trace_continue(json_string_value(v), out) : -EINVAL;
}

static void to_hex(const uint8_t *p, size_t n, char *out) {
  static const char hx[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hx[p[i] >> 4];
    out[2 * i + 1] = hx[p[i] & 15];
  }
}

void trace_format(const trace_ctx *t, char out[TRACE_PARENT_LEN + 1]) {
  memcpy(out, "00-", 3);
  to_hex(t->trace_id, 16, out + 3);
  out[35] = '-';
  to_hex(t->span_id, 8, out + 36);
  out[52] = '-';
  to_hex(&t->flags, 1, out + 53);
  out[55] = 0;
}

void trace_id_hex(const trace_ctx *t, char out[TRACE_ID_HEX + 1]) {
  to_hex(t->trace_id, 16, out);
  out[32] = 0;
}

/* ---------- scope ---------- */

_Thread_local const trace_scope *trace_tls_scope;

void trace_scope_log_fields(json_t *line) {
  const trace_scope *s = trace_tls_scope;
  if (!s || !json_is_object(line)) return;
  if (trace_valid(&s->trace) && !json_object_get(line, "trace_id")) {
    char hex[TRACE_ID_HEX + 1];
    trace_id_hex(&s->trace, hex);
    json_object_set_new(line, "trace_id", json_string(hex));
  }
  if (s->request_id && *s->request_id && !json_object_get(line, "request_id"))
    json_object_set_new(line, "request_id", json_string(s->request_id));
  if (s->rpc_id && !json_object_get(line, "rpc_id")) json_object_set(line, "rpc_id", (json_t *)s->rpc_id);
  if (s->transport && *s->transport && !json_object_get(line, "transport"))
    json_object_set_new(line, "transport", json_string(s->transport));
  if (s->peer_id && *s->peer_id && !json_object_get(line, "peer_id"))
    json_object_set_new(line, "peer_id", json_string(s->peer_id));
}
