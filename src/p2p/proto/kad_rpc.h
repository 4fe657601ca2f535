/* kad_rpc.h — the server side of the Kademlia RPCs (libp2p/specs kad-dht/README.md "RPC
 * messages"): one decoded request in, the encoded response out, against a routing table and
 * a record/provider store the caller owns. Sans-I/O.
 *
 *   FIND_NODE      closerPeers: the k closest peers of the table to sha256(key) that have an
 *                  address, never the requester; ourselves too when key is our PeerId.
 *   GET_VALUE      record (the stored one; for /pk/<our id>, our public key) + closerPeers.
 *   PUT_VALUE      record.key must equal key; the record is validated (kad_record.h, with the
 *                  sender as storer) and replaces a stored one only if it is not worse; the
 *                  request is echoed.
 *   GET_PROVIDERS  providerPeers (up to k, newest first, for any key: also the raw namespace
 *                  bytes Python peers ask for) + closerPeers.
 *   ADD_PROVIDER   the providerPeers entries whose id is the sender are stored; no response
 *                  (js-libp2p and go-libp2p send none either).
 *   PING           echoed (deprecated in the spec; still answered).
 * Response type and clusterLevelRaw mirror the request.
 *
 * Errors (the caller then resets the stream, as js-libp2p and go-libp2p do): -EPROTO missing
 * key / record or unknown type, -EINVAL / -ENOTSUP / -EPERM a record that does not validate,
 * -EALREADY a record worse than the stored one, -ENOSPC / -EDQUOT store bounds, -ENOMEM,
 * -E2BIG response over KAD_MAX_MSG (cannot happen with the bounds here).
 *
 * Not thread-safe (the table and store are single-owner). */
#ifndef PEERMCP_P2P_PROTO_KAD_RPC_H
#define PEERMCP_P2P_PROTO_KAD_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "p2p/proto/kad_msg.h"
#include "p2p/proto/kad_store.h"
#include "p2p/proto/kad_table.h"
#include "util/buf.h"

typedef struct kad_server {
  peerid self;
  kad_table *table;
  kad_store *store;
  const multiaddr *self_addrs;    /* our addresses for FIND_NODE(self) (no /p2p/) */
  size_t n_self_addrs;
  const uint8_t *self_public_key; /* our PublicKey protobuf for GET_VALUE /pk/<self>; may be NULL */
  size_t self_public_key_len;
  size_t k;                       /* 0 = KAD_K */
} kad_server;

/* Handles req from `from` at now; appends the framed response to out (nothing for
 * ADD_PROVIDER). 0 or a negative errno above. */
int kad_server_handle(kad_server *s, const peerid *from, const kad_msg *req, uint64_t now_ms, double now_wall_s,
                      buf *out) __attribute__((warn_unused_result));

/* Fills resp->closer with the table's closest peers to key (pointers into the table and into
 * `scratch`, which needs room for n entries); used by the server and by tests. */
size_t kad_server_closer(const kad_server *s, const uint8_t *key, size_t key_len, const peerid *exclude,
                         kad_peer_info *scratch, size_t n);

#endif
