/* dial_error.h — what went wrong when this node tried to reach a peer, said plainly: used by
 * the command line (`--peer`, ping, perf, worker) and by the p2p_remote_* tools.
 *
 * Error codes (negative errno) from the host (p2p/host/host.h), the service client
 * (client.h) and a remote task source (remote_source.h), and their meaning here:
 *   -EINVAL          the target is not a multiaddr nor a PeerId (the part that is wrong is named)
 *   -ECONNREFUSED    nothing listens at the address
 *   -ETIMEDOUT       no answer in time
 *   -EACCES          the peer proved another PeerId than the address names (both are named when
 *                    the host kept them: p2p_host_last_mismatch)
 *   -EHOSTUNREACH    a bare PeerId with no known address
 *   -EPROTONOSUPPORT the peer does not speak the protocol
 *   -EPERM           the peer refused this node (unauthorized)
 *   -EDESTADDRREQ    a token would go to an address without /p2p/<id>
 * Pure functions; any thread (host only on its loop thread). */
#ifndef PEERMCP_SERVICE_DIAL_ERROR_H
#define PEERMCP_SERVICE_DIAL_ERROR_H

#include <stddef.h>

#include "p2p/host/host.h"

/* Why `target` (a --peer value, a MULTIADDR argument, a tool's remote address) cannot be
 * dialed, or NULL when it can: not a multiaddr nor a PeerId (with the part that is wrong), a
 * transport peermcp does not dial, this node's own PeerId (self_id, may be NULL). Writes into
 * why. */
const char *svc_target_problem(const char *target, const char *self_id, char *why, size_t whylen);

/* err (a negative errno above) as a sentence naming what happened at `target`; `protocol` is
 * what was asked for (for -EPROTONOSUPPORT, may be NULL). host may be NULL. Returns why. */
const char *svc_dial_error_text(p2p_host *host, const char *target, const char *protocol, int err, char *why,
                                size_t whylen);

/* The same as a short code for JSON replies: "invalid_target", "connection_refused", "timeout",
 * "peer_id_mismatch", "no_known_address", "protocol_not_supported", "unauthorized",
 * "credentials_need_peer_id", else "unreachable". */
const char *svc_dial_error_code(int err);

#endif
