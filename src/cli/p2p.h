/* p2p.h — starting and stopping the libp2p host from a subcommand (used by `peermcp serve`).
 *
 * cli_p2p_start() makes the host from the configuration (state dir, p2p.max_connections,
 * p2p.max_streams_per_peer), listens on every p2p.listen address (failing only if none
 * works), logs "peer_id=<id>" and one "multiaddr=<addr>/p2p/<id>" per listen address on
 * stderr, and writes the announce file atomically to p2p.announce_file and to
 * <state_dir>/announce.json (unless the announce file is disabled). Other modules then
 * register their protocol handlers on the returned host (p2p/host/host.h).
 * cli_p2p_stop() starts the host's orderly close (GoAway to peers); run the loop afterwards
 * until its handles are closed. Loop thread only. */
#ifndef PEERMCP_CLI_P2P_H
#define PEERMCP_CLI_P2P_H

#include <uv.h>

#include "config/config.h"
#include "p2p/host/host.h"

int cli_p2p_start(uv_loop_t *loop, const config *cfg, p2p_host **out) __attribute__((warn_unused_result));
void cli_p2p_stop(p2p_host *h);

#endif
