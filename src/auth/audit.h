/* audit.h — every refused request, on any transport, for any reason, is logged and counted here
 * (issue 13 §6).
 *
 * A refusal is one JSON log line at NOTICE, "request refused", with the reason (a fixed set,
 * auth.h auth_reason), the transport, the peer id or the remote address, the subject and kind
 * when known, what was refused ("tools/call", "op", "http"…, plus the tool or op name) and a
 * detail (a JWT failure such as "wrong_audience"). Never the token: contexts do not hold one,
 * and callers pass only names. Counters are process-wide, per (transport, reason), lock-free;
 * a metrics exporter reads them with auth_audit_count (peermcp_auth_failures_total{transport,
 * reason}).
 *
 * Threads: any thread. */
#ifndef PEERMCP_AUTH_AUDIT_H
#define PEERMCP_AUTH_AUDIT_H

#include <jansson.h>
#include <stdint.h>

#include "auth/auth.h"

/* Logs and counts one refusal. who: the caller as its transport knows it (may be NULL:
 * transport internal, nothing known). what / name / detail may be NULL. */
void auth_audit_refused(const auth_ctx *who, auth_reason reason, const char *what, const char *name,
                        const char *detail);
/* The same for a transport that has no context yet (an HTTP request refused before one was
 * built): remote is its address. */
void auth_audit_refused_at(auth_transport t, const char *remote, auth_reason reason, const char *what,
                           const char *detail);

/* Refusals counted so far. */
uint64_t auth_audit_count(auth_transport t, auth_reason r);
/* Sum over every transport and reason. */
uint64_t auth_audit_total(void);
/* {"<transport>": {"<reason>": n, …}, …} with the non-zero counters (new reference). */
json_t *auth_audit_json(void);

#endif
