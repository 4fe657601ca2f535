/* dnsaddr.h — /dnsaddr multiaddr resolution (multiformats/multiaddr protocols/DNSADDR.md, as
 * libp2p bootstrap lists use it): `/dnsaddr/<host>[/p2p/<id>]` → the multiaddrs found in TXT
 * records `dnsaddr=<multiaddr>` of `_dnsaddr.<host>`, nested /dnsaddr entries resolved in
 * turn, kept only when their /p2p/ matches the id asked for.
 *
 * The DNS query itself is the caller's: a function that sends a TXT query for a name and
 * returns the raw DNS response (libc's res_query in host/dns_resolve.c; a table in tests).
 * This module parses the answers with the bounded DNS reader (dns.h). It may block only as
 * long as that function does, so run it on a worker thread when the function blocks.
 *
 * Bounds: nesting depth DNSADDR_MAX_DEPTH (3, as the Python service), at most
 * DNSADDR_MAX_QUERIES queries per resolution, answers of at most DNS_MAX_MSG bytes, at most
 * `max` results (duplicates dropped). Results are ordered as the Python service orders its
 * bootstrap candidates: TCP first, WebSocket last, port 4001 first, then ip4 < ip6 < dns4 <
 * dns6 < others; stable otherwise.
 *
 * Thread-safe (no shared state). */
#ifndef PEERMCP_P2P_PROTO_DNSADDR_H
#define PEERMCP_P2P_PROTO_DNSADDR_H

#include <stddef.h>
#include <stdint.h>

#include "p2p/core/multiaddr.h"

#define DNSADDR_MAX_DEPTH 3
#define DNSADDR_MAX_QUERIES 16

/* Sends a TXT query for qname; writes the raw response into answer[0..cap). Returns its
 * length or a negative errno (-ENOENT for NXDOMAIN / no data). */
typedef int (*dnsaddr_txt_fn)(void *ud, const char *qname, uint8_t *answer, size_t cap);

/* Resolves `in` (must start with /dnsaddr/). Writes up to max multiaddrs to out, *n_out of
 * them. 0 (possibly with no result), -EINVAL (not a /dnsaddr address), -ENOENT (nothing
 * found and some query failed), -ENOMEM. */
int dnsaddr_resolve(const multiaddr *in, dnsaddr_txt_fn query, void *ud, multiaddr *out, size_t max,
                    size_t *n_out) __attribute__((warn_unused_result));

/* The ordering rank used above (lower first). */
int dnsaddr_rank(const multiaddr *ma);

#endif
