/* resolve.h — what `--peer` may name, made dialable (issue 15 §3-4), for the subcommands that
 * dial out (call, task, cache, status, worker):
 *   - a multiaddr with /p2p/<PeerId>: as is;
 *   - a name of p2p.peers: its multiaddr (node_dial maps it);
 *   - a bare PeerId: known when an announce file or the peer table names it (a dialing node
 *     reads the serving node's <state_dir>/peers); otherwise, when the profile turns mDNS or
 *     the DHT on, searched for at most p2p.discovery_timeout_ms (passive mDNS query, DHT client
 *     lookup from p2p.bootstrap), its addresses then in the host's peer table.
 * Also `worker --discover`: the namespace's peers (rendezvous records and providers, mDNS).
 *
 * Both run the node's loop until done (the CLI has nothing else to do meanwhile). Loop thread
 * only; the node must be started with a dialing host. */
#ifndef PEERMCP_CLI_RESOLVE_H
#define PEERMCP_CLI_RESOLVE_H

#include <stddef.h>

#include "node/node.h"

/* 0 when target can be dialed (or is not a bare PeerId), -ENOENT / -ETIMEDOUT when the search
 * found nothing (the dial then fails: the caller reports "unreachable"). */
int cli_find_peer(node *n, const char *target);

/* The namespace's peers as dial targets "<addr>/p2p/<id>" (malloc'd array of malloc'd strings,
 * *count of them; free with cli_free_targets). 0, -ENOENT (none), -ENOTSUP (neither mDNS nor
 * the DHT is on), -ENOMEM. */
int cli_discover_targets(node *n, char ***out, size_t *count);
void cli_free_targets(char **t, size_t n);

#endif
