/* fuzz_kad.c — libFuzzer target: Kademlia RPC messages (framed or raw) and the server that
 * answers them, with a small routing table and store. Invariants: a decoded message re-encodes
 * and decodes to the same counts; every response the server produces decodes; the rendezvous
 * record parser never accepts a record whose multiaddr names another peer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/keys.h"
#include "p2p/proto/kad_record.h"
#include "p2p/proto/kad_rpc.h"

#define NPEERS 24
static peerid peers[NPEERS + 1];
static uint8_t self_pk[KEYS_PUBLIC_PB_MAX];
static size_t self_pk_len;

static void init_peers(void) {
  if (peers[0].len) return;
  for (int i = 0; i <= NPEERS; i++) {
    uint8_t seed[32] = {(uint8_t)i, 0x33};
    keys_private k;
    keys_public pub;
    if (keys_ed25519_from_seed(seed, &k)) abort();
    keys_private_public(&k, &pub);
    if (peerid_from_public(&pub, &peers[i])) abort();
    if (i == 0 && keys_public_encode(&pub, self_pk, sizeof self_pk, &self_pk_len)) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init_peers();
  kad_rendezvous_record rec;
  if (kad_rendezvous_record_parse(data, size, &rec) == 0) {
    peerid in;
    if (multiaddr_get_peerid(&rec.addr, &in) == 0 && !peerid_equal(&in, &rec.id)) abort();
  }
  const uint8_t *body = data;
  size_t bl = size, used;
  if (kad_frame_parse(data, size, &body, &bl, &used) != 0) {
    body = data;
    bl = size;
  }
  kad_msg m;
  if (kad_msg_decode(body, bl, &m) != 0) return 0;
  buf b;
  buf_init(&b, 2 * KAD_MAX_MSG);
  if (kad_msg_encode(&m, &b) == 0) {
    const uint8_t *b2;
    size_t l2, u2;
    kad_msg m2;
    if (kad_frame_parse(buf_ptr(&b), buf_len(&b), &b2, &l2, &u2) != 0) abort();
    if (kad_msg_decode(b2, l2, &m2) != 0) abort();
    if (m2.type != m.type || m2.n_closer != m.n_closer || m2.n_providers != m.n_providers ||
        m2.has_key != m.has_key || m2.key_len != m.key_len || m2.has_record != m.has_record ||
        m2.record.value_len != m.record.value_len)
      abort();
    for (size_t i = 0; i < m.n_closer; i++)
      if (m2.closer[i].n_addrs != m.closer[i].n_addrs || !peerid_equal(&m2.closer[i].id, &m.closer[i].id)) abort();
    kad_msg_clear(&m2);
  }
  buf_reset(&b);
  /* The server side. */
  kad_server s = {.self = peers[0], .self_public_key = self_pk, .self_public_key_len = self_pk_len};
  multiaddr ma;
  if (multiaddr_parse("/ip4/10.0.0.1/tcp/4001", &ma)) abort();
  s.self_addrs = &ma;
  s.n_self_addrs = 1;
  if (kad_table_new(&peers[0], 0, &s.table) || kad_store_new(NULL, &s.store)) abort();
  for (int i = 1; i < NPEERS; i++) {
    int added = kad_table_add(s.table, &peers[i], &ma, 1, 0, NULL);
    (void)added; /* a full bucket is fine here */
  }
  const peerid *from = &peers[1 + (size % (NPEERS))];
  for (int round = 0; round < 2; round++) { /* twice: the second sees what the first stored */
    int rc = kad_server_handle(&s, from, &m, 1000, 1700000000.0, &b);
    if (rc == 0 && buf_len(&b)) {
      const uint8_t *rb;
      size_t rl, ru;
      kad_msg resp;
      if (kad_frame_parse(buf_ptr(&b), buf_len(&b), &rb, &rl, &ru) != 0) abort();
      if (kad_msg_decode(rb, rl, &resp) != 0) abort();
      if (resp.type != m.type) abort();
      kad_msg_clear(&resp);
    }
    buf_reset(&b);
  }
  kad_table_free(s.table);
  kad_store_free(s.store);
  buf_free(&b);
  kad_msg_clear(&m);
  return 0;
}
