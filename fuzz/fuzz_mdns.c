/* fuzz_mdns.c — libFuzzer target: one received mDNS datagram into the libp2p mDNS engine.
 * Invariants: reported peers respect the bounds and never include ourselves; every packet the
 * engine sends afterwards is a DNS message its own reader accepts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/keys.h"
#include "p2p/proto/dns.h"
#include "p2p/proto/mdns.h"

static char self_id[PEERID_STR_MAX];

static void init_self(void) {
  if (self_id[0]) return;
  uint8_t seed[32] = {1};
  keys_private k;
  keys_public pub;
  peerid p;
  if (keys_ed25519_from_seed(seed, &k) || (keys_private_public(&k, &pub), peerid_from_public(&pub, &p)) ||
      peerid_to_string(&p, self_id, sizeof self_id))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init_self();
  mdns_config cfg = {.peer_name = "fuzzself", .allow_loopback = (size & 1) != 0};
  mdns *m;
  if (mdns_new(&cfg, self_id, &m) != 0) abort();
  const char *addrs[2] = {"/ip4/192.168.1.2/tcp/4001", "/ip6/fd00::2/tcp/4001"};
  if (mdns_set_addrs(m, addrs, 2) != 2) abort();
  mdns_start(m, 0);
  uint8_t pkt[MDNS_MAX_OUT];
  while (mdns_poll(m, 0, pkt, sizeof pkt) > 0) {
  }
  static mdns_peer peers[MDNS_MAX_INSTANCES];
  size_t n = 0;
  if (mdns_handle(m, data, size, 5000, peers, MDNS_MAX_INSTANCES, &n) == 0) {
    if (n > MDNS_MAX_INSTANCES) abort();
    for (size_t i = 0; i < n; i++) {
      if (peers[i].n_addrs > MDNS_MAX_ADDRS) abort();
      if (strcmp(peers[i].peer_id, self_id) == 0) abort();
      if (strcmp(peers[i].instance, "fuzzself") == 0) abort();
      for (size_t k = 0; k < peers[i].n_addrs; k++)
        if (!mdns_addr_acceptable(&peers[i].addrs[k], cfg.allow_loopback)) abort();
    }
  } else if (n != 0) {
    abort();
  }
  uint64_t t = mdns_next_deadline(m);
  for (int i = 0; i < 4 && t != UINT64_MAX; i++) {
    int len = mdns_poll(m, t, pkt, sizeof pkt);
    if (len < 0) abort();
    if (len > 0) {
      dns_reader r;
      dns_rr rr;
      int rc;
      if (dns_reader_init(&r, pkt, (size_t)len) != 0) abort();
      while ((rc = dns_reader_rr(&r, &rr)) == 1) {
      }
      if (rc != 0) abort();
    }
    t = mdns_next_deadline(m);
  }
  mdns_free(m);
  return 0;
}
