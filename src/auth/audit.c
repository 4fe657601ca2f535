/* audit.c — refusal log lines and counters (see audit.h). */
#include "auth/audit.h"

#include <stdatomic.h>

#include "util/log.h"
#include "util/metrics.h"

static atomic_uint_fast64_t g_count[AUTH_TR__COUNT][AUTH_REASON__COUNT];

/* peermcp_auth_failures_total{transport,reason}: transport is the metrics' one (stdio, http, p2p
 * — both P2P protocols —, internal), reason auth_reason_name without "none". */
enum { AF_INTERNAL, AF_STDIO, AF_HTTP, AF_P2P, AF__COUNT };
static const char *const k_af_transports[AF__COUNT] = {"internal", "stdio", "http", "p2p"};
static const char *k_af_reasons[AUTH_REASON__COUNT - 1];
static _Atomic uint64_t g_af_cells[AF__COUNT * (AUTH_REASON__COUNT - 1)];
static metrics_family g_auth_failures = {
    .name = "peermcp_auth_failures_total",
    .help = "Requests refused by authorization (a missing, invalid or expired credential, a missing scope, a "
            "token in an HTTP query string), by transport and reason.",
    .kind = METRICS_COUNTER,
    .ndims = 2,
    .dims = {{"transport", k_af_transports, AF__COUNT, NULL}, {"reason", k_af_reasons, AUTH_REASON__COUNT - 1, NULL}},
    .cells = g_af_cells,
};

__attribute__((constructor)) static void audit_metrics_register(void) {
  for (int r = 1; r < AUTH_REASON__COUNT; r++) k_af_reasons[r - 1] = auth_reason_name((auth_reason)r);
  metrics_register(&g_auth_failures);
}

static unsigned af_transport(auth_transport t) {
  switch (t) {
  case AUTH_TR_STDIO: return AF_STDIO;
  case AUTH_TR_HTTP: return AF_HTTP;
  case AUTH_TR_MCP_P2P:
  case AUTH_TR_TASKQUEUE: return AF_P2P;
  default: return AF_INTERNAL;
  }
}

static void count(auth_transport t, auth_reason r) {
  if ((unsigned)t >= AUTH_TR__COUNT) t = AUTH_TR_INTERNAL;
  if ((unsigned)r >= AUTH_REASON__COUNT || r == AUTH_REASON_NONE) r = AUTH_REASON_INVALID;
  atomic_fetch_add_explicit(&g_count[t][r], 1, memory_order_relaxed);
  metrics_inc(&g_auth_failures, metrics_series2(&g_auth_failures, af_transport(t), (unsigned)r - 1));
}

void auth_audit_refused(const auth_ctx *who, auth_reason reason, const char *what, const char *name,
                        const char *detail) {
  auth_transport t = who ? who->transport : AUTH_TR_INTERNAL;
  count(t, reason);
  if (LOG_NOTICE < log_get_level()) return;
  log_write(LOG_NOTICE, "request refused", "{s:s, s:s, s:s*, s:s*, s:s*, s:s*, s:s*, s:s*, s:s*}", "reason",
            auth_reason_name(reason), "transport", auth_transport_name(t), "peer_id",
            who && who->peer_id[0] ? who->peer_id : NULL, "remote", who && who->remote_addr[0] ? who->remote_addr : NULL,
            "subject", who && who->subject[0] ? who->subject : NULL, "kind", who ? auth_kind_name(who->kind) : NULL,
            "what", what, "name", name, "detail", detail);
}

void auth_audit_refused_at(auth_transport t, const char *remote, auth_reason reason, const char *what,
                           const char *detail) {
  count(t, reason);
  if (LOG_NOTICE < log_get_level()) return;
  log_write(LOG_NOTICE, "request refused", "{s:s, s:s, s:s*, s:s*, s:s*}", "reason", auth_reason_name(reason),
            "transport", auth_transport_name(t), "remote", remote && *remote ? remote : NULL, "what", what, "detail",
            detail);
}

uint64_t auth_audit_count(auth_transport t, auth_reason r) {
  if ((unsigned)t >= AUTH_TR__COUNT || (unsigned)r >= AUTH_REASON__COUNT) return 0;
  return atomic_load_explicit(&g_count[t][r], memory_order_relaxed);
}

uint64_t auth_audit_total(void) {
  uint64_t n = 0;
  for (int t = 0; t < AUTH_TR__COUNT; t++)
    for (int r = 0; r < AUTH_REASON__COUNT; r++) n += auth_audit_count((auth_transport)t, (auth_reason)r);
  return n;
}

json_t *auth_audit_json(void) {
  json_t *o = json_object();
  for (int t = 0; o && t < AUTH_TR__COUNT; t++) {
    json_t *row = NULL;
    for (int r = 0; r < AUTH_REASON__COUNT; r++) {
      uint64_t n = auth_audit_count((auth_transport)t, (auth_reason)r);
      if (!n) continue;
      if (!row && !(row = json_object())) break;
      json_object_set_new(row, auth_reason_name((auth_reason)r), json_integer((json_int_t)n));
    }
    if (row) json_object_set_new(o, auth_transport_name((auth_transport)t), row);
  }
  return o;
}
