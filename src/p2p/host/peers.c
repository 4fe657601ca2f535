/* peers.c — addresses learned by discovery, into the peerstore. See peers.h. */
#include "p2p/host/peers.h"

#include <errno.h>
#include <string.h>

#include "p2p/core/multiaddr.h"
#include "p2p/host/internal.h"

int p2p_host_add_peer_addrs(p2p_host *h, const char *peer_id, const char *const *addrs, size_t n,
                            unsigned source) {
  (void)source; /* kept by the peer table (issue 15 §6) once the peerstore records sources */
  peerid id;
  if (peerid_parse(peer_id, strlen(peer_id), &id) || peerid_equal(&id, &h->id)) return -EINVAL;
  char canon[PEERID_STR_MAX];
  if (peerid_to_string(&id, canon, sizeof canon)) return -EINVAL;
  peerstore_entry *e = peerstore_upsert(h->ps, canon);
  if (!e) return -ENOSPC;
  int added = 0;
  for (size_t i = 0; i < n; i++) {
    multiaddr ma;
    peerid in;
    if (!addrs[i] || multiaddr_parse(addrs[i], &ma)) continue;
    if (multiaddr_get_peerid(&ma, &in) == 0 && !peerid_equal(&in, &id)) continue;
    multiaddr_strip_p2p(&ma, &ma);
    char text[MULTIADDR_STR_MAX];
    if (ma.len == 0 || multiaddr_to_string(&ma, text, sizeof text)) continue;
    size_t before = e->n_addrs;
    bool known = false;
    for (size_t k = 0; k < e->n_addrs && !known; k++) known = strcmp(e->addrs[k], text) == 0;
    if (known) continue;
    int rc = peerstore_add_addr(e, text);
    if (rc == -ENOMEM) return rc;
    if (rc == 0 && (e->n_addrs > before || e->n_addrs == PEERSTORE_MAX_ADDRS)) added++;
  }
  if (added) h->peers_dirty = true;
  return added;
}
