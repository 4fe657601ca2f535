/* test_kad_rpc.c — the server side of the Kademlia RPCs (kad-dht spec "RPC messages"), with
 * the rendezvous rules of issue 15 §3 (Python record stored only by the peer it names;
 * GET_PROVIDERS answered for the raw Python key). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kadutil.h"
#include "p2p/proto/kad_record.h"
#include "p2p/proto/kad_rpc.h"

typedef struct fx {
  kad_server s;
  uint8_t pk[KEYS_PUBLIC_PB_MAX];
  size_t pkl;
  multiaddr self_addr;
  peerid peers[30];
  multiaddr addr;
} fx;

static int setup(void **st) {
  fx *f = calloc(1, sizeof *f);
  f->s.self = test_peer(1000, f->pk, &f->pkl);
  assert_int_equal(kad_table_new(&f->s.self, 0, &f->s.table), 0);
  assert_int_equal(kad_store_new(NULL, &f->s.store), 0);
  assert_int_equal(multiaddr_parse("/ip4/10.9.9.9/tcp/4001", &f->self_addr), 0);
  assert_int_equal(multiaddr_parse("/ip4/10.0.0.1/tcp/4001", &f->addr), 0);
  f->s.self_addrs = &f->self_addr;
  f->s.n_self_addrs = 1;
  f->s.self_public_key = f->pk;
  f->s.self_public_key_len = f->pkl;
  for (uint32_t i = 0; i < 30; i++) {
    f->peers[i] = test_peer(i + 1, NULL, NULL);
    int rc = kad_table_add(f->s.table, &f->peers[i], (i == 29) ? NULL : &f->addr, (i == 29) ? 0 : 1, 0, NULL);
    assert_true(rc == 1 || rc == -ENOSPC);
  }
  *st = f;
  return 0;
}

static int teardown(void **st) {
  fx *f = *st;
  kad_table_free(f->s.table);
  kad_store_free(f->s.store);
  free(f);
  return 0;
}

/* Runs one request; decodes the response into *resp (has_resp false if none). */
static int run(fx *f, const peerid *from, const kad_msg *req, kad_msg *resp, bool *has_resp) {
  buf out;
  buf_init(&out, KAD_MAX_MSG + 16);
  int rc = kad_server_handle(&f->s, from, req, 1000, 1700000000.0, &out);
  *has_resp = false;
  if (rc == 0 && buf_len(&out)) {
    const uint8_t *body;
    size_t bl, used;
    assert_int_equal(kad_frame_parse(buf_ptr(&out), buf_len(&out), &body, &bl, &used), 0);
    assert_int_equal(used, buf_len(&out));
    assert_int_equal(kad_msg_decode(body, bl, resp), 0);
    *has_resp = true;
  }
  buf_free(&out);
  return rc;
}

static void test_kad_rpc_find_node_returns_k_closest_with_addrs(void **st) {
  fx *f = *st;
  peerid asker = test_peer(77, NULL, NULL);
  const peerid *target = &f->peers[3];
  kad_msg req = {.type = KAD_FIND_NODE, .has_key = true, .key = target->bytes, .key_len = target->len,
                 .has_cluster_level = true, .cluster_level = 0};
  kad_msg resp;
  bool has;
  assert_int_equal(run(f, &asker, &req, &resp, &has), 0);
  assert_true(has);
  assert_int_equal(resp.type, KAD_FIND_NODE);
  assert_true(resp.has_cluster_level);
  assert_true(resp.n_closer > 0 && resp.n_closer <= KAD_K);
  assert_true(peerid_equal(&resp.closer[0].id, target)); /* it is closest to itself */
  for (size_t i = 0; i < resp.n_closer; i++) {
    assert_true(resp.closer[i].n_addrs > 0);
    assert_false(peerid_equal(&resp.closer[i].id, &f->peers[29])); /* no address: left out */
  }
  kad_msg_clear(&resp);
  /* Never tell a peer about itself. */
  assert_int_equal(run(f, target, &req, &resp, &has), 0);
  for (size_t i = 0; i < resp.n_closer; i++) assert_false(peerid_equal(&resp.closer[i].id, target));
  kad_msg_clear(&resp);
  /* FIND_NODE(our id) includes ourselves with our addresses. */
  req.key = f->s.self.bytes;
  req.key_len = f->s.self.len;
  assert_int_equal(run(f, &asker, &req, &resp, &has), 0);
  bool self_seen = false;
  for (size_t i = 0; i < resp.n_closer; i++)
    if (peerid_equal(&resp.closer[i].id, &f->s.self)) {
      self_seen = true;
      assert_true(multiaddr_equal(&resp.closer[i].addrs[0], &f->self_addr));
    }
  assert_true(self_seen);
  kad_msg_clear(&resp);
}

static void test_kad_rpc_requires_a_key(void **st) {
  fx *f = *st;
  peerid asker = test_peer(77, NULL, NULL);
  kad_msg resp;
  bool has;
  int types[] = {KAD_FIND_NODE, KAD_GET_VALUE, KAD_PUT_VALUE, KAD_GET_PROVIDERS, KAD_ADD_PROVIDER};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    kad_msg req = {.type = types[i]};
    assert_int_equal(run(f, &asker, &req, &resp, &has), -EPROTO);
  }
  kad_msg unknown = {.type = 9, .has_key = true, .key = (const uint8_t *)"k", .key_len = 1};
  assert_int_equal(run(f, &asker, &unknown, &resp, &has), -EPROTO);
  kad_msg ping = {.type = KAD_PING};
  assert_int_equal(run(f, &asker, &ping, &resp, &has), 0);
  assert_true(has);
  assert_int_equal(resp.type, KAD_PING);
  kad_msg_clear(&resp);
}

static kad_msg put_req(const char *key, const char *val) {
  kad_msg m = {.type = KAD_PUT_VALUE, .has_key = true, .key = (const uint8_t *)key, .key_len = strlen(key),
               .has_record = true,
               .record = {(const uint8_t *)key, strlen(key), (const uint8_t *)val, strlen(val), NULL}};
  return m;
}

static void make_py(const peerid *p, double ts, char *out, size_t cap) {
  char id[PEERID_STR_MAX], addr[200];
  assert_int_equal(peerid_to_string(p, id, sizeof id), 0);
  snprintf(addr, sizeof addr, "/ip4/10.0.0.7/tcp/9710/p2p/%s", id);
  assert_true(kad_rendezvous_record_make(id, addr, ts, out, cap) > 0);
}

static void test_kad_rpc_put_and_get_python_record(void **st) {
  fx *f = *st;
  peerid a = test_peer(501, NULL, NULL), b = test_peer(502, NULL, NULL);
  char key[128], v[512];
  assert_true(kad_rendezvous_record_key(KAD_RENDEZVOUS_DEFAULT_NS, key, sizeof key) > 0);
  make_py(&a, 100, v, sizeof v);
  kad_msg req = put_req(key, v), resp;
  bool has;
  /* b may not store a record naming a. */
  assert_int_equal(run(f, &b, &req, &resp, &has), -EPERM);
  assert_int_equal(run(f, &a, &req, &resp, &has), 0);
  assert_true(has); /* the request echoed */
  assert_int_equal(resp.type, KAD_PUT_VALUE);
  assert_int_equal(resp.record.value_len, strlen(v));
  kad_msg_clear(&resp);
  /* GET_VALUE returns it with Record.key equal to the key asked for, and a time. */
  kad_msg get = {.type = KAD_GET_VALUE, .has_key = true, .key = (const uint8_t *)key, .key_len = strlen(key)};
  assert_int_equal(run(f, &b, &get, &resp, &has), 0);
  assert_true(resp.has_record);
  assert_int_equal(resp.record.key_len, strlen(key));
  assert_memory_equal(resp.record.key, key, strlen(key));
  assert_memory_equal(resp.record.value, v, strlen(v));
  assert_non_null(resp.record.time_received);
  double t;
  assert_int_equal(kad_time_parse(resp.record.time_received, &t), 0);
  assert_true(resp.n_closer > 0);
  kad_msg_clear(&resp);
  /* An older record from a is refused; a newer one replaces. */
  char older[512], newer[512];
  make_py(&a, 50, older, sizeof older);
  kad_msg r2 = put_req(key, older);
  assert_int_equal(run(f, &a, &r2, &resp, &has), -EALREADY);
  make_py(&b, 200, newer, sizeof newer);
  kad_msg r3 = put_req(key, newer);
  assert_int_equal(run(f, &b, &r3, &resp, &has), 0);
  kad_msg_clear(&resp);
  assert_int_equal(run(f, &a, &get, &resp, &has), 0);
  assert_memory_equal(resp.record.value, newer, strlen(newer));
  kad_msg_clear(&resp);
}

static void test_kad_rpc_put_value_rules(void **st) {
  fx *f = *st;
  peerid a = test_peer(501, NULL, NULL);
  kad_msg resp;
  bool has;
  kad_msg unknown = put_req("/mcp/x", "v");
  assert_int_equal(run(f, &a, &unknown, &resp, &has), -ENOTSUP);
  kad_msg norec = {.type = KAD_PUT_VALUE, .has_key = true, .key = (const uint8_t *)"/pk/x", .key_len = 5};
  assert_int_equal(run(f, &a, &norec, &resp, &has), -EPROTO);
  char key[128], v[512];
  assert_true(kad_rendezvous_record_key("n", key, sizeof key) > 0);
  make_py(&a, 1, v, sizeof v);
  kad_msg mismatch = put_req(key, v);
  mismatch.key = (const uint8_t *)"/ipfs-accelerate/task-queue/ns/m";
  mismatch.key_len = strlen((const char *)mismatch.key);
  assert_int_equal(run(f, &a, &mismatch, &resp, &has), -EPROTO); /* Message.key != Record.key */
}

static void test_kad_rpc_get_value_public_key(void **st) {
  fx *f = *st;
  peerid asker = test_peer(77, NULL, NULL);
  uint8_t key[64];
  memcpy(key, "/pk/", 4);
  memcpy(key + 4, f->s.self.bytes, f->s.self.len);
  kad_msg get = {.type = KAD_GET_VALUE, .has_key = true, .key = key, .key_len = 4 + f->s.self.len}, resp;
  bool has;
  assert_int_equal(run(f, &asker, &get, &resp, &has), 0);
  assert_true(resp.has_record);
  assert_int_equal(resp.record.value_len, f->pkl);
  assert_int_equal(kad_record_validate(resp.record.key, resp.record.key_len, resp.record.value,
                                       resp.record.value_len, NULL),
                   0);
  kad_msg_clear(&resp);
}

static void test_kad_rpc_providers_for_multihash_and_raw_keys(void **st) {
  fx *f = *st;
  peerid a = test_peer(601, NULL, NULL), b = test_peer(602, NULL, NULL), asker = test_peer(77, NULL, NULL);
  uint8_t mh[KAD_PROVIDER_KEY_LEN];
  kad_rendezvous_provider_key(KAD_RENDEZVOUS_DEFAULT_NS, mh);
  multiaddr ma;
  assert_int_equal(multiaddr_parse("/ip4/10.0.0.5/tcp/9710", &ma), 0);
  kad_peer_info pa = {.id = a, .addrs = &ma, .n_addrs = 1, .connection = -1};
  kad_peer_info pb = {.id = b, .addrs = &ma, .n_addrs = 1, .connection = -1};
  kad_peer_info both[2] = {pa, pb};
  /* a announces itself and (illegitimately) b: only a is kept. No response. */
  kad_msg add = {.type = KAD_ADD_PROVIDER, .has_key = true, .key = mh, .key_len = sizeof mh, .providers = both,
                 .n_providers = 2};
  kad_msg resp;
  bool has;
  assert_int_equal(run(f, &a, &add, &resp, &has), 0);
  assert_false(has);
  kad_msg get = {.type = KAD_GET_PROVIDERS, .has_key = true, .key = mh, .key_len = sizeof mh};
  assert_int_equal(run(f, &asker, &get, &resp, &has), 0);
  assert_int_equal(resp.type, KAD_GET_PROVIDERS);
  assert_int_equal(resp.n_providers, 1);
  assert_true(peerid_equal(&resp.providers[0].id, &a));
  assert_int_equal(resp.providers[0].n_addrs, 1);
  assert_true(resp.n_closer > 0);
  kad_msg_clear(&resp);
  /* The raw Python key (not a CID) is answered from the store too. */
  const char *raw = KAD_RENDEZVOUS_DEFAULT_NS;
  assert_int_equal(kad_store_add_provider(f->s.store, (const uint8_t *)raw, strlen(raw), &f->s.self, &f->self_addr, 1, 0),
                   0);
  kad_msg getraw = {.type = KAD_GET_PROVIDERS, .has_key = true, .key = (const uint8_t *)raw, .key_len = strlen(raw)};
  assert_int_equal(run(f, &asker, &getraw, &resp, &has), 0);
  assert_int_equal(resp.n_providers, 1);
  assert_true(peerid_equal(&resp.providers[0].id, &f->s.self));
  kad_msg_clear(&resp);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_kad_rpc_find_node_returns_k_closest_with_addrs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kad_rpc_requires_a_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kad_rpc_put_and_get_python_record, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kad_rpc_put_value_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kad_rpc_get_value_public_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kad_rpc_providers_for_multihash_and_raw_keys, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
