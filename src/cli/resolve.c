/* resolve.c — `--peer <PeerId>` and `worker --discover` through discovery. See resolve.h. */
#include "cli/resolve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"
#include "p2p/host/peers.h"
#include "util/log.h"

typedef struct waiter {
  int done, err;
  char **targets;
  size_t n;
} waiter;

static bool bare_peer_id(const config *cfg, const char *t) {
  if (t[0] == '/' || config_peer_by_name(cfg, t)) return false;
  peerid id;
  return peerid_parse(t, strlen(t), &id) == 0;
}

static bool known(node *n, const char *peer_id) {
  p2p_peer_info info;
  return p2p_host_peer_info(node_host(n), peer_id, &info) == 0 && info.n_listen_addrs > 0;
}

static void closed(void *ud) { ((waiter *)ud)->done = 1; }

/* Starts client discovery on the node's host; NULL when the profile turns nothing on. */
static p2p_discovery *open_discovery(node *n) {
  const config *cfg = node_config(n);
  if (!cfg->p2p.eff.mdns && !cfg->p2p.eff.dht) return NULL;
  p2p_discovery_config dc;
  node_discovery_config(cfg, false, &dc);
  p2p_discovery *d;
  if (p2p_discovery_new(node_host(n), node_loop(n), &dc, &d) != 0) return NULL;
  if (p2p_discovery_start(d) != 0) {
    waiter w = {0};
    p2p_discovery_close(d, closed, &w);
    while (!w.done) uv_run(node_loop(n), UV_RUN_ONCE);
    return NULL;
  }
  return d;
}

static void close_discovery(node *n, p2p_discovery *d) {
  waiter w = {0};
  p2p_discovery_close(d, closed, &w);
  while (!w.done) uv_run(node_loop(n), UV_RUN_ONCE);
}

static void on_resolved(p2p_discovery *d, int err, const char *peer_id, void *ud) {
  (void)d;
  (void)peer_id;
  waiter *w = ud;
  w->err = err;
  w->done = 1;
}

int cli_find_peer(node *n, const char *target) {
  const config *cfg = node_config(n);
  if (!bare_peer_id(cfg, target) || known(n, target)) return 0;
  p2p_discovery *d = open_discovery(n);
  if (!d) return -ENOENT; /* the local profile: only what is already known */
  waiter w = {0};
  int rc = p2p_discovery_resolve(d, target, cfg->p2p.discovery_timeout_ms, on_resolved, &w);
  if (rc == 0) {
    while (!w.done) uv_run(node_loop(n), UV_RUN_ONCE);
    rc = w.err;
  }
  close_discovery(n, d);
  if (rc) log_write(LOG_WARNING, "peer not found", "{s:s, s:s}", "peer_id", target, "error", strerror(-rc));
  return rc;
}

void cli_free_targets(char **t, size_t n) {
  for (size_t i = 0; i < n; i++) free(t[i]);
  free(t);
}

static void on_namespace(p2p_discovery *d, int err, const char *const *ids, size_t n_ids, void *ud) {
  (void)d;
  waiter *w = ud;
  w->done = 1;
  w->err = err;
  if (err) return;
  w->targets = calloc(n_ids ? n_ids : 1, sizeof *w->targets);
  if (!w->targets) {
    w->err = -ENOMEM;
    return;
  }
  for (size_t i = 0; i < n_ids; i++) w->targets[w->n++] = strdup(ids[i]); /* ids live during the call only */
}

int cli_discover_targets(node *n, char ***out, size_t *count) {
  *out = NULL;
  *count = 0;
  p2p_discovery *d = open_discovery(n);
  if (!d) return -ENOTSUP;
  waiter w = {0};
  int rc = p2p_discovery_find_namespace(d, on_namespace, &w);
  if (rc == 0) {
    while (!w.done) uv_run(node_loop(n), UV_RUN_ONCE);
    rc = w.err;
  }
  close_discovery(n, d);
  if (rc) {
    cli_free_targets(w.targets, w.n);
    return rc;
  }
  /* Bare PeerIds → "<first address>/p2p/<id>", so the worker's own node can dial them. */
  char **t = calloc(w.n ? w.n : 1, sizeof *t);
  size_t k = 0;
  for (size_t i = 0; t && i < w.n; i++) {
    p2p_peer_info info;
    if (!w.targets[i] || p2p_host_peer_info(node_host(n), w.targets[i], &info) != 0 || !info.n_listen_addrs) continue;
    size_t len = strlen(info.listen_addrs[0]) + strlen(w.targets[i]) + 8;
    if ((t[k] = malloc(len))) snprintf(t[k++], len, "%s/p2p/%s", info.listen_addrs[0], w.targets[i]);
  }
  cli_free_targets(w.targets, w.n);
  if (!t) return -ENOMEM;
  if (!k) {
    free(t);
    return -ENOENT;
  }
  *out = t;
  *count = k;
  return 0;
}
