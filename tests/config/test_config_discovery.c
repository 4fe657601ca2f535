/* Unit tests for the discovery part of config (issue 15 §4-5): profiles and what they turn on,
 * the Python variables and their twins, bootstrap lists (0/false/no/off = none; the public
 * profile's default), named peers, and every bad value refused with its key path. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"

static const char *const k_vars[] = {
    "PEERMCP_CONFIG", "PEERMCP_P2P_PROFILE", "IPFS_ACCELERATE_PY_TASK_P2P_MDNS", "IPFS_DATASETS_PY_TASK_P2P_MDNS",
    "IPFS_ACCELERATE_PY_TASK_P2P_DHT", "IPFS_DATASETS_PY_TASK_P2P_DHT", "IPFS_ACCELERATE_PY_TASK_P2P_RENDEZVOUS",
    "IPFS_DATASETS_PY_TASK_P2P_RENDEZVOUS", "IPFS_ACCELERATE_PY_TASK_P2P_BOOTSTRAP_PEERS",
    "IPFS_DATASETS_PY_TASK_P2P_BOOTSTRAP_PEERS", "IPFS_ACCELERATE_PY_TASK_P2P_RENDEZVOUS_NS",
    "IPFS_DATASETS_PY_TASK_P2P_RENDEZVOUS_NS", "IPFS_ACCELERATE_PY_TASK_P2P_DHT_PROVIDE_INTERVAL_S",
    "IPFS_DATASETS_PY_TASK_P2P_DHT_PROVIDE_INTERVAL_S", "IPFS_ACCELERATE_PY_TASK_P2P_MDNS_ALLOW_LOOPBACK",
    "IPFS_DATASETS_PY_TASK_P2P_MDNS_ALLOW_LOOPBACK", "IPFS_ACCELERATE_PY_TASK_P2P_DNSADDR_RESOLVE",
    "IPFS_DATASETS_PY_TASK_P2P_DNSADDR_RESOLVE", "IPFS_ACCELERATE_PY_TASK_P2P_PEER_TIMEOUT_S",
    "IPFS_DATASETS_PY_TASK_P2P_PEER_TIMEOUT_S", "IPFS_ACCELERATE_PY_TASK_P2P_DISCOVERY_TIMEOUT_S",
    "IPFS_DATASETS_PY_TASK_P2P_DISCOVERY_TIMEOUT_S"};

#define PEER "/ip4/10.0.0.5/tcp/9710/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"

static int setup(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof k_vars / sizeof k_vars[0]; i++) unsetenv(k_vars[i]);
  setenv("PEERMCP_STATE_DIR", "/tmp/peermcp-cfgdisco", 1);
  return 0;
}

static int load(config *cfg, const char *text, const config_args *args, char *err, size_t errlen) {
  return config_load_text(cfg, text, strlen(text), "test.json", args, err, errlen);
}

static void test_config_default_profile_discovers_nothing(void **st) {
  (void)st;
  config c;
  char err[512];
  assert_int_equal(load(&c, "{}", NULL, err, sizeof err), 0);
  assert_int_equal(c.p2p.profile, CONFIG_PROFILE_LOCAL);
  assert_false(c.p2p.eff.mdns);
  assert_false(c.p2p.eff.dht);
  assert_false(c.p2p.eff.rendezvous_publish);
  assert_int_equal(c.p2p.bootstrap_count, 0);
  assert_string_equal(c.p2p.rendezvous_ns, "ipfs-accelerate-task-queue");
  assert_int_equal(c.p2p.dht_provide_interval_seconds, 1800);
  assert_true(c.p2p.dnsaddr_resolve);
  assert_int_equal(c.p2p.peer_timeout_seconds, 300);
  config_free(&c);
}

static void test_config_profiles_turn_on_their_parts(void **st) {
  (void)st;
  config c;
  char err[512];
  assert_int_equal(load(&c, "{\"p2p\": {\"profile\": \"lan\"}}", NULL, err, sizeof err), 0);
  assert_true(c.p2p.eff.mdns);
  assert_false(c.p2p.eff.dht);
  config_free(&c);
  assert_int_equal(load(&c, "{\"p2p\": {\"profile\": \"private\", \"bootstrap\": [\"" PEER "\"]}}", NULL, err, sizeof err), 0);
  assert_false(c.p2p.eff.mdns);
  assert_true(c.p2p.eff.dht);
  assert_true(c.p2p.eff.dht_server);
  assert_true(c.p2p.eff.rendezvous_publish);
  assert_string_equal(c.p2p.eff.dht_protocol, CONFIG_PRIVATE_DHT_PROTOCOL);
  assert_int_equal(c.p2p.bootstrap_count, 1);
  config_free(&c);
  assert_int_equal(load(&c, "{\"p2p\": {\"profile\": \"public\"}}", NULL, err, sizeof err), 0);
  assert_true(c.p2p.eff.dht);
  assert_false(c.p2p.eff.dht_server); /* client until reachability is known */
  assert_string_equal(c.p2p.eff.dht_protocol, CONFIG_PUBLIC_DHT_PROTOCOL);
  assert_int_equal(c.p2p.bootstrap_count, 4); /* the public libp2p set */
  assert_non_null(strstr(c.p2p.bootstrap[0], "/dnsaddr/bootstrap.libp2p.io/p2p/"));
  config_free(&c);
  /* Explicit switches win over the profile. */
  assert_int_equal(load(&c, "{\"p2p\": {\"profile\": \"public\", \"dht_mode\": \"server\", \"mdns\": true, "
                            "\"rendezvous\": false, \"dht_protocol\": \"/x/kad/1.0.0\", \"bootstrap\": []}}",
                        NULL, err, sizeof err),
                   0);
  assert_true(c.p2p.eff.dht_server);
  assert_true(c.p2p.eff.mdns);
  assert_false(c.p2p.eff.rendezvous_publish);
  assert_string_equal(c.p2p.eff.dht_protocol, "/x/kad/1.0.0");
  assert_int_equal(c.p2p.bootstrap_count, 0); /* an empty list is a choice too */
  config_free(&c);
  /* --no-p2p turns everything off. */
  config_args a;
  config_args_init(&a);
  a.no_p2p = true;
  assert_int_equal(load(&c, "{\"p2p\": {\"profile\": \"lan\", \"dht\": true}}", &a, err, sizeof err), 0);
  assert_false(c.p2p.eff.mdns);
  assert_false(c.p2p.eff.dht);
  config_free(&c);
  config_args_free(&a);
}

static void test_config_profile_from_env_and_flag(void **st) {
  (void)st;
  config c;
  char err[512];
  setenv("PEERMCP_P2P_PROFILE", "lan", 1);
  assert_int_equal(load(&c, "{\"p2p\": {\"profile\": \"private\"}}", NULL, err, sizeof err), 0);
  assert_int_equal(c.p2p.profile, CONFIG_PROFILE_LAN); /* env over file */
  config_free(&c);
  char *argv[] = {"peermcp", "--p2p-profile", "public", "x", NULL};
  int argc = 4;
  config_args a;
  config_args_init(&a);
  assert_int_equal(config_args_parse(&a, &argc, argv, err, sizeof err), 0);
  assert_int_equal(argc, 2);
  assert_int_equal(load(&c, "{}", &a, err, sizeof err), 0);
  assert_int_equal(c.p2p.profile, CONFIG_PROFILE_PUBLIC); /* flag over env */
  config_free(&c);
  config_args_free(&a);
  setenv("PEERMCP_P2P_PROFILE", "galaxy", 1);
  assert_int_equal(load(&c, "{}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "PEERMCP_P2P_PROFILE"));
  char *bad[] = {"peermcp", "--p2p-profile=nope", NULL};
  argc = 2;
  config_args_init(&a);
  assert_int_equal(config_args_parse(&a, &argc, bad, err, sizeof err), -EINVAL);
  config_args_free(&a);
}

static void test_config_python_variables_and_twins(void **st) {
  (void)st;
  config c;
  char err[512];
  setenv("IPFS_DATASETS_PY_TASK_P2P_MDNS", "1", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_DHT", "anything", 1); /* any value but 0/false/no/off: on */
  setenv("IPFS_DATASETS_PY_TASK_P2P_BOOTSTRAP_PEERS", PEER ", " PEER, 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_RENDEZVOUS_NS", "my-ns", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_DHT_PROVIDE_INTERVAL_S", "0", 1);
  setenv("IPFS_DATASETS_PY_TASK_P2P_MDNS_ALLOW_LOOPBACK", "true", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_DNSADDR_RESOLVE", "off", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_PEER_TIMEOUT_S", "60", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_DISCOVERY_TIMEOUT_S", "2.5", 1);
  assert_int_equal(load(&c, "{\"p2p\": {\"mdns\": false}}", NULL, err, sizeof err), 0);
  assert_true(c.p2p.eff.mdns); /* env over file; the twin counts when the primary is unset */
  assert_true(c.p2p.eff.dht);
  assert_int_equal(c.p2p.bootstrap_count, 2);
  assert_string_equal(c.p2p.bootstrap[1], PEER);
  assert_string_equal(c.p2p.rendezvous_ns, "my-ns");
  assert_int_equal(c.p2p.dht_provide_interval_seconds, 0);
  assert_true(c.p2p.mdns_allow_loopback);
  assert_false(c.p2p.dnsaddr_resolve);
  assert_int_equal(c.p2p.peer_timeout_seconds, 60);
  assert_int_equal(c.p2p.discovery_timeout_ms, 2500);
  config_free(&c);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_MDNS", "no", 1); /* the primary wins over the twin */
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_BOOTSTRAP_PEERS", "off", 1);
  assert_int_equal(load(&c, "{\"p2p\": {\"profile\": \"public\"}}", NULL, err, sizeof err), 0);
  assert_false(c.p2p.eff.mdns);
  assert_int_equal(c.p2p.bootstrap_count, 0); /* "off" = none, even for the public profile */
  config_free(&c);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_PEER_TIMEOUT_S", "soon", 1);
  assert_int_equal(load(&c, "{}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "PEER_TIMEOUT_S"));
}

static void test_config_named_peers(void **st) {
  (void)st;
  config c;
  char err[512];
  assert_int_equal(load(&c, "{\"p2p\": {\"peers\": {\"gpu1\": \"" PEER "\", \"edge.2\": \"" PEER "\"}}}", NULL, err,
                        sizeof err),
                   0);
  assert_int_equal(c.p2p.peer_count, 2);
  assert_string_equal(config_peer_by_name(&c, "gpu1"), PEER);
  assert_null(config_peer_by_name(&c, "gpu2"));
  json_t *j = config_to_json(&c);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(j, "p2p"), "peers"), "gpu1")), PEER);
  json_decref(j);
  config_free(&c);
}

static void test_config_discovery_bad_values_refused(void **st) {
  (void)st;
  static const struct {
    const char *text, *path;
  } bad[] = {
      {"{\"p2p\": {\"profile\": \"galaxy\"}}", "p2p.profile"},
      {"{\"p2p\": {\"profile\": 3}}", "p2p.profile"},
      {"{\"p2p\": {\"dht_mode\": \"both\"}}", "p2p.dht_mode"},
      {"{\"p2p\": {\"mdns\": \"yes\"}}", "p2p.mdns"},
      {"{\"p2p\": {\"bootstrap\": \"" PEER "\"}}", "p2p.bootstrap"},
      {"{\"p2p\": {\"bootstrap\": [\"/ip4/1.2.3.4/tcp/1\"]}}", "p2p.bootstrap[0]"},
      {"{\"p2p\": {\"peers\": [\"" PEER "\"]}}", "p2p.peers"},
      {"{\"p2p\": {\"peers\": {\"bad name\": \"" PEER "\"}}}", "p2p.peers.bad name"},
      {"{\"p2p\": {\"peers\": {\"x\": \"/ip4/1.2.3.4/tcp/1\"}}}", "p2p.peers.x"},
      {"{\"p2p\": {\"rendezvous_ns\": \"a/b\"}}", "p2p.rendezvous_ns"},
      {"{\"p2p\": {\"dht_protocol\": \"kad\"}}", "p2p.dht_protocol"},
      {"{\"p2p\": {\"peer_timeout_seconds\": 0}}", "p2p.peer_timeout_seconds"},
      {"{\"p2p\": {\"discovery\": true}}", "p2p.discovery"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    config c;
    char err[512];
    int rc = load(&c, bad[i].text, NULL, err, sizeof err);
    if (rc != -EINVAL || !strstr(err, bad[i].path)) fail_msg("%s: rc %d, \"%s\"", bad[i].text, rc, err);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_config_default_profile_discovers_nothing, setup),
      cmocka_unit_test_setup(test_config_profiles_turn_on_their_parts, setup),
      cmocka_unit_test_setup(test_config_profile_from_env_and_flag, setup),
      cmocka_unit_test_setup(test_config_python_variables_and_twins, setup),
      cmocka_unit_test_setup(test_config_named_peers, setup),
      cmocka_unit_test_setup(test_config_discovery_bad_values_refused, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
