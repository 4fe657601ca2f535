/* Unit tests for config: precedence flags > env > file > defaults, key paths with line/column
 * in every error, unknown keys and bad values refused, command-tool declarations. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/cli.h"
#include "config/config.h"
#include "support/tmpdir.h"

static const char *const k_vars[] = {
    "PEERMCP_CONFIG", "PEERMCP_STATE_DIR", "PEERMCP_LOG_LEVEL", "XDG_CONFIG_HOME", "XDG_STATE_HOME",
    "IPFS_ACCELERATE_PY_TASK_QUEUE_PATH", "IPFS_DATASETS_PY_TASK_QUEUE_PATH",
    "IPFS_ACCELERATE_PY_TASK_P2P_CACHE_DIR", "IPFS_DATASETS_PY_TASK_P2P_CACHE_DIR",
    "IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE", "IPFS_ACCELERATE_PY_TASK_P2P_TOKEN",
    "IPFS_DATASETS_PY_TASK_P2P_TOKEN", "IPFS_ACCELERATE_PY_TASK_P2P_ENABLE_LEGACY_PROTOCOL",
    "IPFS_DATASETS_PY_TASK_P2P_ANNOUNCE_FILE", "IPFS_ACCELERATE_PY_TASK_P2P_SESSION",
    "IPFS_ACCELERATE_PY_TASK_P2P_DETERMINISTIC", "IPFS_DATASETS_PY_TASK_P2P_DETERMINISTIC",
    "IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE", "IPFS_DATASETS_PY_TASK_P2P_CACHE_REPLICATE",
    "IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE_TARGETS", "IPFS_DATASETS_PY_TASK_P2P_CACHE_REPLICATE_TARGETS",
    "IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE_PEERS", "IPFS_DATASETS_PY_TASK_P2P_CACHE_REPLICATE_PEERS",
    "IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE_MAX_PEERS", "IPFS_DATASETS_PY_TASK_P2P_CACHE_REPLICATE_MAX_PEERS",
    "PEERMCP_TEST_TOOLS", "PEERMCP_P2P_ENABLE_PERF", "PEERMCP_P2P_UNFENCED_COMPLETE", "PEERMCP_NOISE_AEAD",
    "PEERMCP_MCP_TASKS_RUNNER", "PEERMCP_HTTP_LISTEN", "IPFS_ACCELERATE_PY_TASK_P2P_TRUST_TIERS",
    "IPFS_DATASETS_PY_TASK_P2P_TRUST_TIERS", "IPFS_ACCELERATE_PY_TASK_P2P_BASELINE_MAX_PRIORITY",
    "IPFS_DATASETS_PY_TASK_P2P_BASELINE_MAX_PRIORITY", "IPFS_ACCELERATE_PY_TASK_P2P_ENCRYPT",
    "IPFS_DATASETS_PY_TASK_P2P_ENCRYPT", "IPFS_ACCELERATE_PY_TASK_P2P_ENCRYPTION_KEY",
    "IPFS_DATASETS_PY_TASK_P2P_ENCRYPTION_KEY", "PEERMCP_TEST_JWT_SECRET", "PEERMCP_P2P_WORKERS", "PEERMCP_LOG_ACCESS"};

static char g_home[TS_TMPDIR_MAX];

static int setup(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof k_vars / sizeof k_vars[0]; i++) unsetenv(k_vars[i]);
  ts_tmpdir_make(g_home, "cfgtest");
  setenv("HOME", g_home, 1);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  assert_int_equal(ts_tmpdir_remove(g_home), 0);
  return 0;
}

static int load(config *cfg, const char *text, const config_args *args, char *err, size_t errlen) {
  return config_load_text(cfg, text, strlen(text), "/etc/peermcp/test.json", args, err, errlen);
}

static void test_config_defaults_without_file(void **state) {
  (void)state;
  config cfg;
  char err[512];
  assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
  assert_null(cfg.config_path);
  char want[512];
  snprintf(want, sizeof want, "%s/.local/state/peermcp", g_home);
  assert_string_equal(cfg.state_dir, want);
  assert_int_equal(cfg.log_level, LOG_INFO);
  assert_int_equal(cfg.max_line_bytes, 16u << 20);
  assert_int_equal(cfg.tool_timeout_ms, 30000);
  assert_int_equal(cfg.workers_threads, 8);
  assert_int_equal(cfg.workers_long_threads, 64);
  assert_int_equal(cfg.workers_long_queue, 256);
  assert_int_equal(cfg.page_size, 50);
  snprintf(want, sizeof want, "%s/.local/state/peermcp/queue.sqlite3", g_home);
  assert_string_equal(cfg.queue.path, want);
  snprintf(want, sizeof want, "%s/.local/state/peermcp/cache", g_home);
  assert_string_equal(cfg.cache.dir, want);
  assert_int_equal(cfg.queue.max_payload_bytes, 1048576);
  assert_int_equal(cfg.queue.lease_seconds, 300);
  assert_int_equal(cfg.queue.max_attempts, 3);
  assert_int_equal(cfg.queue.wait_max_seconds, 300);
  assert_true(cfg.queue.group_commit);
  assert_false(cfg.queue.sync_pipeline);
  assert_int_equal(cfg.queue.prune_after_seconds, 604800);
  assert_int_equal(cfg.cache.max_bytes, 268435456);
  assert_int_equal(cfg.cache.max_entries, 100000);
  assert_int_equal(cfg.cache.max_value_bytes, 1048576);
  assert_int_equal(cfg.cache.default_ttl_seconds, 0);
  assert_int_equal(cfg.cache.sweep_interval_seconds, 60);
  assert_true(cfg.p2p.enabled);
  assert_int_equal(cfg.p2p.listen_count, 2);
  assert_string_equal(cfg.p2p.listen[0], "/ip4/0.0.0.0/tcp/9710");
  assert_string_equal(cfg.p2p.listen[1], "/ip6/::/tcp/9710");
  assert_null(cfg.p2p.token);
  assert_false(cfg.p2p.enable_legacy_protocol);
  assert_int_equal(cfg.p2p.max_frame_bytes, 1048576);
  assert_int_equal(cfg.p2p.max_streams_per_peer, 64);
  assert_int_equal(cfg.p2p.rate_limit_per_second, 100);
  assert_int_equal(cfg.p2p.max_connections, 256);
  assert_true(cfg.stdio.enabled);
  assert_int_equal(cfg.tools.command_count, 0);
  config_free(&cfg);
}

static void test_config_xdg_state_home_wins_over_home(void **state) {
  (void)state;
  setenv("XDG_STATE_HOME", "/var/xdgstate", 1);
  config cfg;
  char err[256];
  assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
  assert_string_equal(cfg.state_dir, "/var/xdgstate/peermcp");
  assert_string_equal(cfg.queue.path, "/var/xdgstate/peermcp/queue.sqlite3");
  config_free(&cfg);
}

static void test_config_precedence_flags_over_env_over_file(void **state) {
  (void)state;
  const char *text = "{\"log_level\": \"debug\", \"state_dir\": \"/file/state\", \"p2p\": {\"enabled\": true}}";
  config cfg;
  char err[256];
  /* file only */
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_int_equal(cfg.log_level, LOG_DEBUG);
  assert_string_equal(cfg.state_dir, "/file/state");
  assert_string_equal(cfg.queue.path, "/file/state/queue.sqlite3");
  config_free(&cfg);
  /* env over file */
  setenv("PEERMCP_LOG_LEVEL", "warning", 1);
  setenv("PEERMCP_STATE_DIR", "/env/state", 1);
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_int_equal(cfg.log_level, LOG_WARNING);
  assert_string_equal(cfg.state_dir, "/env/state");
  assert_string_equal(cfg.cache.dir, "/env/state/cache");
  config_free(&cfg);
  /* flags over env */
  config_args a;
  config_args_init(&a);
  a.log_level = "error";
  a.state_dir = "/flag/state";
  a.no_p2p = true;
  assert_int_equal(load(&cfg, text, &a, err, sizeof err), 0);
  assert_int_equal(cfg.log_level, LOG_ERROR);
  assert_string_equal(cfg.state_dir, "/flag/state");
  assert_string_equal(cfg.p2p.announce_file, "/flag/state/announce.json");
  assert_false(cfg.p2p.enabled);
  config_free(&cfg);
  config_args_free(&a);
}

static void test_config_queue_path_env_primary_then_compat(void **state) {
  (void)state;
  const char *text = "{\"queue\": {\"path\": \"/file/q.sqlite3\"}, \"cache\": {\"dir\": \"/file/cache\"}}";
  config cfg;
  char err[256];
  setenv("IPFS_DATASETS_PY_TASK_QUEUE_PATH", "/compat/q", 1);
  setenv("IPFS_DATASETS_PY_TASK_P2P_CACHE_DIR", "/compat/cache", 1);
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_string_equal(cfg.queue.path, "/compat/q");
  assert_string_equal(cfg.cache.dir, "/compat/cache");
  config_free(&cfg);
  setenv("IPFS_ACCELERATE_PY_TASK_QUEUE_PATH", "/primary/q", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_CACHE_DIR", "/primary/cache", 1);
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_string_equal(cfg.queue.path, "/primary/q");
  assert_string_equal(cfg.cache.dir, "/primary/cache");
  config_free(&cfg);
  unsetenv("IPFS_ACCELERATE_PY_TASK_QUEUE_PATH");
  unsetenv("IPFS_DATASETS_PY_TASK_QUEUE_PATH");
  unsetenv("IPFS_ACCELERATE_PY_TASK_P2P_CACHE_DIR");
  unsetenv("IPFS_DATASETS_PY_TASK_P2P_CACHE_DIR");
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_string_equal(cfg.queue.path, "/file/q.sqlite3");
  assert_string_equal(cfg.cache.dir, "/file/cache");
  config_free(&cfg);
}

static void test_config_p2p_env_token_legacy_announce(void **state) {
  (void)state;
  config cfg;
  char err[256];
  const char *text = "{\"p2p\": {\"token\": \"filetoken\", \"enable_legacy_protocol\": true}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_string_equal(cfg.p2p.token, "filetoken");
  assert_true(cfg.p2p.enable_legacy_protocol);
  config_free(&cfg);
  setenv("IPFS_DATASETS_PY_TASK_P2P_TOKEN", "compat", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_ENABLE_LEGACY_PROTOCOL", "0", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE", "off", 1);
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_string_equal(cfg.p2p.token, "compat");
  assert_false(cfg.p2p.enable_legacy_protocol);
  assert_null(cfg.p2p.announce_file);
  json_t *j = config_to_json(&cfg);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "p2p"), "token")), "***");
  json_decref(j);
  config_free(&cfg);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_TOKEN", "primary", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_ENABLE_LEGACY_PROTOCOL", "yes", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE", "/run/announce.json", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_string_equal(cfg.p2p.token, "primary");
  assert_true(cfg.p2p.enable_legacy_protocol);
  assert_string_equal(cfg.p2p.announce_file, "/run/announce.json");
  config_free(&cfg);
}

/* The shared token from the environment is the first of the two names that is not blank,
 * trimmed, as the Python get_shared_token() reads it (p2p_tasks_spec.md §4.1). */
static void test_config_p2p_token_env_first_not_blank_trimmed(void **state) {
  (void)state;
  config cfg;
  char err[256];
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_TOKEN", " \t ", 1);
  setenv("IPFS_DATASETS_PY_TASK_P2P_TOKEN", "  compat\n", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_string_equal(cfg.p2p.token, "compat");
  config_free(&cfg);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_TOKEN", " primary ", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_string_equal(cfg.p2p.token, "primary");
  config_free(&cfg);
  /* both blank: no token from the environment; the file's stays */
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_TOKEN", "  ", 1);
  setenv("IPFS_DATASETS_PY_TASK_P2P_TOKEN", "\t", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_null(cfg.p2p.token);
  config_free(&cfg);
  assert_int_equal(load(&cfg, "{\"p2p\": {\"token\": \"filetoken\"}}", NULL, err, sizeof err), 0);
  assert_string_equal(cfg.p2p.token, "filetoken");
  config_free(&cfg);
}

/* The switches that used to be read with getenv all over src/: each is a file key and a
 * variable (env over file), validated, and shown by config_to_json. */
static void test_config_switches_file_env_and_json(void **state) {
  (void)state;
  config cfg;
  char err[512];
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_false(cfg.tools.test_tools);
  assert_false(cfg.p2p.enable_perf);
  assert_int_equal(cfg.p2p.noise_aead, CONFIG_AEAD_OPENSSL);
  assert_false(cfg.p2p.unfenced_complete);
  assert_null(cfg.p2p.session);
  assert_false(cfg.p2p.deterministic);
  assert_false(cfg.p2p.cache_replicate);
  assert_int_equal(cfg.p2p.cache_replicate_target_count, 0);
  assert_int_equal(cfg.p2p.cache_replicate_max_peers, 6);
  assert_int_equal(cfg.mcp_tasks.runner, CONFIG_AUTO);
  config_free(&cfg);

  const char *text = "{\"tools\": {\"test_tools\": true}, \"mcp_tasks\": {\"runner\": false},"
                     " \"p2p\": {\"enable_perf\": true, \"noise_aead\": \"libsodium\", \"unfenced_complete\": true,"
                     " \"session\": \"s1\", \"deterministic\": true, \"cache_replicate\": true,"
                     " \"cache_replicate_targets\": [\"/ip4/127.0.0.1/tcp/1/p2p/X\"], \"cache_replicate_max_peers\": 2}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_true(cfg.tools.test_tools);
  assert_true(cfg.p2p.enable_perf);
  assert_int_equal(cfg.p2p.noise_aead, CONFIG_AEAD_LIBSODIUM);
  assert_true(cfg.p2p.unfenced_complete);
  assert_string_equal(cfg.p2p.session, "s1");
  assert_true(cfg.p2p.deterministic);
  assert_true(cfg.p2p.cache_replicate);
  assert_int_equal(cfg.p2p.cache_replicate_target_count, 1);
  assert_int_equal(cfg.p2p.cache_replicate_max_peers, 2);
  assert_int_equal(cfg.mcp_tasks.runner, CONFIG_OFF);
  json_t *j = config_to_json(&cfg);
  assert_non_null(j);
  json_t *p2p = json_object_get(j, "p2p");
  assert_true(json_is_true(json_object_get(json_object_get(j, "tools"), "test_tools")));
  assert_true(json_is_false(json_object_get(json_object_get(j, "mcp_tasks"), "runner")));
  assert_true(json_is_true(json_object_get(p2p, "enable_perf")));
  assert_string_equal(json_string_value(json_object_get(p2p, "noise_aead")), "libsodium");
  assert_true(json_is_true(json_object_get(p2p, "unfenced_complete")));
  assert_string_equal(json_string_value(json_object_get(p2p, "session")), "s1");
  assert_true(json_is_true(json_object_get(p2p, "deterministic")));
  assert_true(json_is_true(json_object_get(p2p, "cache_replicate")));
  assert_int_equal(json_array_size(json_object_get(p2p, "cache_replicate_targets")), 1);
  assert_int_equal(json_integer_value(json_object_get(p2p, "cache_replicate_max_peers")), 2);
  json_decref(j);
  config_free(&cfg);

  /* the environment wins over the file */
  setenv("PEERMCP_TEST_TOOLS", "0", 1);
  setenv("PEERMCP_P2P_ENABLE_PERF", "off", 1);
  setenv("PEERMCP_NOISE_AEAD", "openssl", 1);
  setenv("PEERMCP_P2P_UNFENCED_COMPLETE", "FALSE", 1);
  setenv("PEERMCP_MCP_TASKS_RUNNER", "1", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_SESSION", "envsession", 1);
  setenv("IPFS_DATASETS_PY_TASK_P2P_DETERMINISTIC", "0", 1);         /* the compat twin */
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE", "no", 1);
  setenv("IPFS_DATASETS_PY_TASK_P2P_CACHE_REPLICATE_PEERS", " a, b ,,c", 1); /* PEERS when no TARGETS */
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE_MAX_PEERS", "8", 1);
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_false(cfg.tools.test_tools);
  assert_false(cfg.p2p.enable_perf);
  assert_int_equal(cfg.p2p.noise_aead, CONFIG_AEAD_OPENSSL);
  assert_false(cfg.p2p.unfenced_complete);
  assert_int_equal(cfg.mcp_tasks.runner, CONFIG_ON);
  assert_string_equal(cfg.p2p.session, "envsession");
  assert_false(cfg.p2p.deterministic);
  assert_false(cfg.p2p.cache_replicate);
  assert_int_equal(cfg.p2p.cache_replicate_target_count, 3);
  assert_string_equal(cfg.p2p.cache_replicate_targets[0], "a");
  assert_string_equal(cfg.p2p.cache_replicate_targets[1], "b");
  assert_string_equal(cfg.p2p.cache_replicate_targets[2], "c");
  assert_int_equal(cfg.p2p.cache_replicate_max_peers, 8);
  config_free(&cfg);
  /* TARGETS before PEERS; the primary name before its twin */
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE_TARGETS", "t1", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_DETERMINISTIC", "yes", 1);
  setenv("PEERMCP_MCP_TASKS_RUNNER", "auto", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.p2p.cache_replicate_target_count, 1);
  assert_string_equal(cfg.p2p.cache_replicate_targets[0], "t1");
  assert_true(cfg.p2p.deterministic);
  assert_int_equal(cfg.mcp_tasks.runner, CONFIG_AUTO);
  config_free(&cfg);
}

/* log.access (the dispatcher's access log): debug by default; "on"/"off"/"debug" or a boolean in
 * the file; PEERMCP_LOG_ACCESS wins; anything else is refused, naming the key. */
static void test_config_log_access(void **state) {
  (void)state;
  config cfg;
  char err[512];
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.log.access, CONFIG_ACCESS_DEBUG);
  config_free(&cfg);
  assert_int_equal(load(&cfg, "{\"log\": {\"access\": \"on\"}}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.log.access, CONFIG_ACCESS_ON);
  json_t *j = config_to_json(&cfg);
  assert_string_equal(json_string_value(json_object_get(json_object_get(j, "log"), "access")), "on");
  json_decref(j);
  config_free(&cfg);
  assert_int_equal(load(&cfg, "{\"log\": {\"access\": false}}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.log.access, CONFIG_ACCESS_OFF);
  config_free(&cfg);
  setenv("PEERMCP_LOG_ACCESS", "debug", 1);
  assert_int_equal(load(&cfg, "{\"log\": {\"access\": \"off\"}}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.log.access, CONFIG_ACCESS_DEBUG);
  config_free(&cfg);
  setenv("PEERMCP_LOG_ACCESS", "1", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.log.access, CONFIG_ACCESS_ON);
  config_free(&cfg);
  setenv("PEERMCP_LOG_ACCESS", "loud", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "PEERMCP_LOG_ACCESS: expected on, off or debug"));
  unsetenv("PEERMCP_LOG_ACCESS");
  assert_int_equal(load(&cfg, "{\"log\": {\"access\": \"sometimes\"}}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "log.access: expected \"on\", \"off\" or \"debug\""));
  assert_int_equal(load(&cfg, "{\"log\": {\"acess\": \"on\"}}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "log.acess: unknown key"));
}

static void test_config_switches_refuse_bad_values(void **state) {
  (void)state;
  config cfg;
  char err[512];
  struct {
    const char *text, *want;
  } files[] = {
      {"{\"p2p\": {\"noise_aead\": \"aesgcm\"}}", "p2p.noise_aead: unknown AEAD \"aesgcm\" (openssl, libsodium)"},
      {"{\"p2p\": {\"noise_aead\": 1}}", "p2p.noise_aead: expected \"openssl\" or \"libsodium\""},
      {"{\"p2p\": {\"enable_perf\": \"yes\"}}", "p2p.enable_perf: expected true or false"},
      {"{\"p2p\": {\"cache_replicate_max_peers\": 9}}", "p2p.cache_replicate_max_peers: 9 is out of range 0..8"},
      {"{\"p2p\": {\"cache_replicate_targets\": \"a,b\"}}", "p2p.cache_replicate_targets: expected an array"},
      {"{\"p2p\": {\"session\": 5}}", "p2p.session: expected a string"},
      {"{\"mcp_tasks\": {\"runner\": \"sometimes\"}}", "mcp_tasks.runner: expected true, false or \"auto\""},
      {"{\"mcp_tasks\": {\"runners\": true}}", "mcp_tasks.runners: unknown key"},
      {"{\"tools\": {\"test_tools\": 1}}", "tools.test_tools: expected true or false"},
  };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    int rc = load(&cfg, files[i].text, NULL, err, sizeof err);
    if (rc != -EINVAL || !strstr(err, files[i].want)) fail_msg("file case %zu: rc=%d err=%s", i, rc, err);
  }
  struct {
    const char *var, *value, *want;
  } envs[] = {
      {"PEERMCP_TEST_TOOLS", "maybe", "PEERMCP_TEST_TOOLS: expected a boolean"},
      {"PEERMCP_P2P_ENABLE_PERF", "2", "PEERMCP_P2P_ENABLE_PERF: expected a boolean"},
      {"PEERMCP_P2P_UNFENCED_COMPLETE", "sure", "PEERMCP_P2P_UNFENCED_COMPLETE: expected a boolean"},
      {"PEERMCP_NOISE_AEAD", "LIBSODIUM", "PEERMCP_NOISE_AEAD: unknown AEAD \"LIBSODIUM\""},
      {"PEERMCP_MCP_TASKS_RUNNER", "2", "PEERMCP_MCP_TASKS_RUNNER: expected 1, 0 or auto"},
      {"IPFS_ACCELERATE_PY_TASK_P2P_CACHE_REPLICATE_MAX_PEERS", "9", "CACHE_REPLICATE_MAX_PEERS: expected an integer in 0..8"},
      {"IPFS_DATASETS_PY_TASK_P2P_CACHE_REPLICATE_MAX_PEERS", "six", "CACHE_REPLICATE_MAX_PEERS: expected an integer"},
  };
  for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
    setenv(envs[i].var, envs[i].value, 1);
    int rc = load(&cfg, "{}", NULL, err, sizeof err);
    unsetenv(envs[i].var);
    if (rc != -EINVAL || !strstr(err, envs[i].want)) fail_msg("env case %zu: rc=%d err=%s", i, rc, err);
  }
  /* an empty variable is unset */
  setenv("PEERMCP_NOISE_AEAD", "", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  config_free(&cfg);
}

/* What command tools take from the environment is captured at load: PATH and the values of
 * their env_allow variables (not those fixed by "env"), never shown by config_to_json. */
static void test_config_captures_command_environment(void **state) {
  (void)state;
  config cfg;
  char err[512];
  setenv("CFGTEST_A", "alpha", 1);
  setenv("CFGTEST_B", "beta", 1);
  setenv("CFGTEST_EMPTY", "", 1);
  unsetenv("CFGTEST_UNSET");
  const char *text = "{\"tools\": {\"commands\": [{\"name\": \"t\", \"argv\": [\"/bin/true\"],"
                     " \"env_allow\": [\"CFGTEST_A\", \"CFGTEST_B\", \"CFGTEST_EMPTY\", \"CFGTEST_UNSET\"],"
                     " \"env\": {\"CFGTEST_B\": \"fixed\"}}]}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  setenv("CFGTEST_A", "changed", 1); /* after load: not seen */
  const config_command *c = &cfg.tools.commands[0];
  assert_int_equal(c->env_pass_count, 2);
  assert_string_equal(c->env_pass[0], "CFGTEST_A=alpha");
  assert_string_equal(c->env_pass[1], "CFGTEST_EMPTY=");
  if (getenv("PATH") && *getenv("PATH")) assert_string_equal(cfg.env_path, getenv("PATH"));
  json_t *j = config_to_json(&cfg);
  char *dump = json_dumps(j, 0);
  assert_null(strstr(dump, "alpha"));
  free(dump);
  json_decref(j);
  config_free(&cfg);
  unsetenv("CFGTEST_A");
  unsetenv("CFGTEST_B");
  unsetenv("CFGTEST_EMPTY");
}

static void test_config_announce_file_compat_twin(void **state) {
  (void)state;
  config cfg;
  char err[256];
  setenv("IPFS_DATASETS_PY_TASK_P2P_ANNOUNCE_FILE", "/run/compat.json", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_string_equal(cfg.p2p.announce_file, "/run/compat.json");
  config_free(&cfg);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE", "/run/primary.json", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_string_equal(cfg.p2p.announce_file, "/run/primary.json");
  config_free(&cfg);
}

static void test_config_p2p_listen_flag_replaces_list(void **state) {
  (void)state;
  config cfg;
  char err[256];
  const char *text = "{\"p2p\": {\"listen\": [\"/ip4/127.0.0.1/tcp/1\"]}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_int_equal(cfg.p2p.listen_count, 1);
  assert_string_equal(cfg.p2p.listen[0], "/ip4/127.0.0.1/tcp/1");
  config_free(&cfg);
  config_args a;
  config_args_init(&a);
  char *argv[] = {"serve", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--p2p-listen=/ip6/::1/tcp/0", NULL};
  int argc = 4;
  assert_int_equal(config_args_parse(&a, &argc, argv, err, sizeof err), 0);
  assert_int_equal(argc, 1);
  assert_int_equal(load(&cfg, text, &a, err, sizeof err), 0);
  assert_int_equal(cfg.p2p.listen_count, 2);
  assert_string_equal(cfg.p2p.listen[0], "/ip4/127.0.0.1/tcp/0");
  assert_string_equal(cfg.p2p.listen[1], "/ip6/::1/tcp/0");
  config_free(&cfg);
  config_args_free(&a);
}

static void test_config_args_parse_consumes_common_flags_only(void **state) {
  (void)state;
  config_args a;
  config_args_init(&a);
  char err[256];
  char *argv[] = {"call", "--config", "/x.json", "--peer", "ADDR", "--log-level=debug", "tool",
                  "--state-dir", "/s", "--no-stdio", "--", "--config", NULL};
  int argc = 12;
  assert_int_equal(config_args_parse(&a, &argc, argv, err, sizeof err), 0);
  assert_string_equal(a.config_file, "/x.json");
  assert_string_equal(a.log_level, "debug");
  assert_string_equal(a.state_dir, "/s");
  assert_true(a.no_stdio);
  assert_false(a.no_p2p);
  assert_int_equal(argc, 6);
  assert_string_equal(argv[0], "call");
  assert_string_equal(argv[1], "--peer");
  assert_string_equal(argv[2], "ADDR");
  assert_string_equal(argv[3], "tool");
  assert_string_equal(argv[4], "--");
  assert_string_equal(argv[5], "--config");
  assert_null(argv[6]);
  config_args_free(&a);
}

static void test_config_args_parse_rejects_missing_value_and_bad_level(void **state) {
  (void)state;
  config_args a;
  config_args_init(&a);
  char err[256];
  char *argv1[] = {"serve", "--state-dir", NULL};
  int argc = 2;
  assert_int_equal(config_args_parse(&a, &argc, argv1, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--state-dir"));
  char *argv2[] = {"serve", "--log-level", "loud", NULL};
  argc = 3;
  assert_int_equal(config_args_parse(&a, &argc, argv2, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "loud"));
  config_args_free(&a);
}

static void test_config_unknown_key_reports_path_line_and_column(void **state) {
  (void)state;
  config cfg;
  char err[512];
  const char *text = "{\n  \"queue\": {\n    \"lease_seconds\": 10,\n    \"lease_secs\": 5\n  }\n}\n";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "/etc/peermcp/test.json:4:5: queue.lease_secs: unknown key"));
  assert_non_null(strstr(err, "lease_seconds")); /* lists the known keys */
  assert_null(cfg.state_dir);                    /* nothing half-loaded */
  text = "{\"log_level\": \"info\",\n\"bogus\": 1}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, ":2:1: bogus: unknown key"));
}

static void test_config_bad_type_reports_path_and_line(void **state) {
  (void)state;
  config cfg;
  char err[512];
  const char *text = "{\n\"cache\": {\"max_entries\": 10},\n\"p2p\": {\n  \"max_connections\": \"many\"\n}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, ":4:3: p2p.max_connections: expected an integer"));
  assert_non_null(strstr(err, "got \"many\"")); /* the offending value, not only its type */
  text = "{\"queue\": {\"group_commit\": 1}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "queue.group_commit: expected true or false, got 1"));
  text = "{\"tools\": {\"commands\": [{\"name\": \"x\", \"argv\": [\"/bin/true\"], \"timeout_ms\": -5}]}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "tools.commands[0].timeout_ms: expected an integer in 0..86400000"));
  assert_non_null(strstr(err, "got -5"));
  text = "{\"queue\": []}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "queue: expected an object, got an array"));
  text = "{\"p2p\": {\"listen\": [\"/ip4/1.2.3.4/tcp/1\", 7]}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "p2p.listen[1]: expected a non-empty string"));
}

static void test_config_out_of_range_values_are_refused(void **state) {
  (void)state;
  config cfg;
  char err[512];
  assert_int_equal(load(&cfg, "{\"workers_threads\": 0}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "workers_threads: 0 is out of range 1..256"));
  assert_int_equal(load(&cfg, "{\"workers_long_threads\": 0}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "workers_long_threads: 0 is out of range 1..1024"));
  assert_int_equal(load(&cfg, "{\"workers_long_queue\": 65537}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "workers_long_queue: 65537 is out of range 1..65536"));
  /* 0 here used to mean a hidden default (300 s, 256 MiB): now refused, since nothing says so */
  assert_int_equal(load(&cfg, "{\"queue\": {\"wait_max_seconds\": 0}}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "queue.wait_max_seconds: 0 is out of range 1..86400"));
  assert_int_equal(load(&cfg, "{\"cache\": {\"max_bytes\": 0}}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "cache.max_bytes: 0 is out of range 1.."));
  assert_int_equal(load(&cfg, "{\"queue\": {\"lease_seconds\": -5}}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "queue.lease_seconds"));
  assert_int_equal(load(&cfg, "{\"log_level\": \"chatty\"}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "log_level: unknown log level \"chatty\""));
  assert_int_equal(load(&cfg, "{\"max_line_bytes\": 1.5}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "got 1.5"));
  assert_int_equal(load(&cfg, "{\"p2p\": {\"trusted_peers\": [\"not a peer id\"]}}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "p2p.trusted_peers[0]"));
  assert_int_equal(load(&cfg, "{\"p2p\": {\"listen\": [\"0.0.0.0:9710\"]}}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "not a multiaddr"));
  setenv("PEERMCP_LOG_LEVEL", "shouty", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "PEERMCP_LOG_LEVEL"));
}

static void test_config_syntax_error_and_duplicate_key_give_line(void **state) {
  (void)state;
  config cfg;
  char err[512];
  assert_int_equal(load(&cfg, "{\n  \"page_size\": 10,\n  \"page_size\": 20\n}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "/etc/peermcp/test.json:3:"));
  assert_non_null(strstr(err, "duplicate"));
  assert_int_equal(load(&cfg, "{\n\n  \"page_size\": 10,,\n}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "/etc/peermcp/test.json:3:"));
  assert_int_equal(load(&cfg, "[1, 2]", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "must be a JSON object"));
  /* the end of the file: the column where the text stops, never column 0 */
  assert_int_equal(load(&cfg, "{\"a\": 1,\n  \"b\": [1, 2\n", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "/etc/peermcp/test.json:2:"));
  assert_null(strstr(err, ":0:"));
  assert_non_null(strstr(err, ":2:13:"));
}

/* p2p.listen: only what the host can listen on, refused at load with the address and the
 * supported forms (UDP/QUIC, names and /p2p/ parts used to fail later, or be dropped). */
static void test_config_unsupported_listen_addresses_are_refused(void **state) {
  (void)state;
  config cfg;
  char err[512];
  static const struct {
    const char *addr, *want;
  } bad[] = {
      {"/ip4/0.0.0.0/udp/9710/quic-v1", "UDP and QUIC are not supported"},
      {"/ip4/0.0.0.0/udp/9710", "UDP and QUIC are not supported"},
      {"/dns4/example.com/tcp/9710", "IP address, not a name"},
      {"/ip4/0.0.0.0/tcp/9710/p2p/12D3KooWRgVykm3tX7ztRzRyrGC2KCmeUYYWeRsmVDfBwcdvbKUB", "no /p2p/ part"},
      {"/ip4/1.2.3/tcp/1", "not an IPv4 address"},
      {"/ip4/0.0.0.0/tcp/70000", "0..65535"},
      {"/ip4/0.0.0.0/tcp/1/ws", "TCP only"},
      {"/unix/%2Frun%2Fx.sock/p2p/12D3KooWRgVykm3tX7ztRzRyrGC2KCmeUYYWeRsmVDfBwcdvbKUB", "no /p2p/ part"},
      {"/unix/%2Fa%zz", "bad %XX escape"},
      {"/unix/%2Fa%00b", "NUL"},
      {"/unix/%2F"
       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
       "shorter than 108 bytes"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char text[300];
    snprintf(text, sizeof text, "{\"p2p\": {\"listen\": [\"/ip4/127.0.0.1/tcp/0\", \"%s\"]}}", bad[i].addr);
    assert_int_equal(load(&cfg, text, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "p2p.listen[1]"));
    assert_non_null(strstr(err, bad[i].addr));
    assert_non_null(strstr(err, bad[i].want));
  }
  /* a flag is named as a flag */
  config_args a;
  config_args_init(&a);
  const char *l[] = {"/ip6/::/udp/1/quic-v1"};
  a.p2p_listen = l;
  a.p2p_listen_count = 1;
  assert_int_equal(load(&cfg, "{}", &a, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--p2p-listen \"/ip6/::/udp/1/quic-v1\""));
  assert_int_equal(load(&cfg, "{\"p2p\": {\"listen\": [\"/ip4/127.0.0.1/tcp/0\", \"/ip6/::1/tcp/9710\"]}}", NULL, err,
                        sizeof err),
                   0);
  config_free(&cfg);
  /* a Unix-domain socket for same-host peers: percent-encoded (js-libp2p's form) or plain */
  assert_int_equal(load(&cfg, "{\"p2p\": {\"listen\": [\"/unix/%2Frun%2Fpeermcp.sock\", \"/unix/run/p.sock\"]}}", NULL, err,
                        sizeof err),
                   0);
  config_free(&cfg);
}

/* p2p.workers: "auto" (the default) is the number of CPUs, at most 16; 0 turns them off. */
static void test_config_workers_auto_is_sized_to_the_machine(void **state) {
  (void)state;
  config cfg;
  char err[512];
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  uint32_t want = ncpu < 1 ? 1 : ncpu > CONFIG_WORKERS_AUTO_MAX ? CONFIG_WORKERS_AUTO_MAX : (uint32_t)ncpu;
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.p2p.workers, want);
  assert_true(cfg.p2p.workers_auto);
  config_free(&cfg);
  assert_int_equal(load(&cfg, "{\"p2p\": {\"workers\": \"auto\"}}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.p2p.workers, want);
  config_free(&cfg);
  assert_int_equal(load(&cfg, "{\"p2p\": {\"workers\": 0}}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.p2p.workers, 0);
  assert_false(cfg.p2p.workers_auto);
  config_free(&cfg);
  setenv("PEERMCP_P2P_WORKERS", "3", 1);
  assert_int_equal(load(&cfg, "{\"p2p\": {\"workers\": 0}}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.p2p.workers, 3);
  config_free(&cfg);
  setenv("PEERMCP_P2P_WORKERS", "lots", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "PEERMCP_P2P_WORKERS"));
  assert_non_null(strstr(err, "\"lots\""));
  unsetenv("PEERMCP_P2P_WORKERS");
  assert_int_equal(load(&cfg, "{\"p2p\": {\"workers\": \"many\"}}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "p2p.workers: expected an integer in 0..256 or \"auto\", got \"many\""));
}

static void test_config_reserved_sections_take_no_keys(void **state) {
  (void)state;
  config cfg;
  char err[512];
  assert_int_equal(load(&cfg, "{\"auth\": {}, \"http\": {}}", NULL, err, sizeof err), 0);
  config_free(&cfg);
  assert_int_equal(load(&cfg, "{\"http\": {\"port\": 8080}}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "http.port: unknown key"));
  assert_int_equal(load(&cfg, "{\"auth\": {\"jwt\": {\"issuer\": \"x\", \"nope\": 1}}}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "auth.jwt.nope: unknown key"));
}

/* The shape issue 13 names (tests use it), and what auth.jwt refuses. */
static void test_config_auth_jwt_keys(void **state) {
  (void)state;
  config cfg;
  char err[512];
  const char *ok = "{\"http\":{\"listen\":\"127.0.0.1:8123\"},\"auth\":{\"resource\":\"http://127.0.0.1:8123/mcp\","
                   "\"authorization_servers\":[\"https://issuer.example\"],\"jwt\":{\"issuer\":\"https://issuer.example\","
                   "\"audience\":\"http://127.0.0.1:8123/mcp\",\"jwks_file\":\"jwks.json\","
                   "\"algorithms\":[\"RS256\",\"ES256\",\"EdDSA\"],\"leeway_s\":30}}}";
  assert_int_equal(load(&cfg, ok, NULL, err, sizeof err), 0);
  assert_true(cfg.auth.jwt.enabled);
  assert_string_equal(cfg.auth.resource, "http://127.0.0.1:8123/mcp");
  assert_int_equal(cfg.auth.authorization_server_count, 1);
  assert_string_equal(cfg.auth.jwt.jwks_file, "/etc/peermcp/jwks.json"); /* relative to the file */
  assert_int_equal(cfg.auth.jwt.algorithm_count, 3);
  assert_int_equal(cfg.auth.jwt.leeway_s, 30);
  assert_null(cfg.auth.jwt.hs256_secret);
  json_t *j = config_to_json(&cfg);
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(j, "auth"), "jwt"), "issuer")),
                      "https://issuer.example");
  json_decref(j);
  config_free(&cfg);
  /* defaults when absent */
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_false(cfg.auth.jwt.enabled);
  assert_int_equal(cfg.auth.jwt.leeway_s, 60);
  assert_int_equal(cfg.p2p.baseline_max_priority, 5);
  assert_null(cfg.stdio.scopes);
  config_free(&cfg);
  static const struct {
    const char *text, *want;
  } bad[] = {
      {"{\"auth\":{\"jwt\":{\"audience\":\"a\",\"jwks_file\":\"j\"}}}", "missing \"issuer\""},
      {"{\"auth\":{\"jwt\":{\"issuer\":\"i\",\"jwks_file\":\"j\"}}}", "missing \"audience\""},
      {"{\"auth\":{\"jwt\":{\"issuer\":\"i\",\"audience\":\"a\"}}}", "missing \"jwks_file\""},
      {"{\"auth\":{\"jwt\":{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_file\":\"j\",\"algorithms\":[\"none\"]}}}",
       "never accepted"},
      {"{\"auth\":{\"jwt\":{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_file\":\"j\",\"algorithms\":[\"RS512\"]}}}",
       "unknown algorithm"},
      {"{\"auth\":{\"jwt\":{\"issuer\":\"i\",\"audience\":\"a\",\"algorithms\":[\"HS256\"]}}}",
       "HS256 needs auth.jwt.hs256_secret_env"},
      {"{\"auth\":{\"jwt\":{\"issuer\":\"i\",\"audience\":\"a\",\"algorithms\":[\"HS256\"],"
       "\"hs256_secret_env\":\"PEERMCP_TEST_JWT_SECRET\"}}}",
       "which is not set"},
      {"{\"auth\":{\"jwt\":{\"issuer\":\"i\",\"audience\":\"a\",\"jwks_file\":\"j\",\"leeway_s\":-1}}}", "out of range"},
      {"{\"auth\":{\"authorization_servers\":\"https://x\"}}", "expected an array"},
      {"{\"stdio\":{\"scopes\":[\"\"]}}", "non-empty string"},
      {"{\"p2p\":{\"baseline_max_priority\":11}}", "out of range"},
      {"{\"tools\":{\"commands\":[{\"name\":\"t\",\"argv\":[\"/bin/true\"],\"scopes\":[\"a b\"]}]}}",
       "is not a scope name"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = 0;
    assert_int_equal(load(&cfg, bad[i].text, NULL, err, sizeof err), -EINVAL);
    if (!strstr(err, bad[i].want)) fail_msg("case %zu: %s", i, err);
  }
  /* HS256: the secret comes from the variable named, at least 32 bytes */
  const char *hs = "{\"auth\":{\"jwt\":{\"issuer\":\"i\",\"audience\":\"a\",\"algorithms\":[\"HS256\"],"
                   "\"hs256_secret_env\":\"PEERMCP_TEST_JWT_SECRET\"}}}";
  setenv("PEERMCP_TEST_JWT_SECRET", "too-short", 1);
  assert_int_equal(load(&cfg, hs, NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "fewer than 32 bytes"));
  setenv("PEERMCP_TEST_JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
  assert_int_equal(load(&cfg, hs, NULL, err, sizeof err), 0);
  assert_string_equal(cfg.auth.jwt.hs256_secret, "0123456789abcdef0123456789abcdef");
  j = config_to_json(&cfg);
  char *dump = json_dumps(j, 0);
  assert_null(strstr(dump, "0123456789abcdef")); /* never printed */
  free(dump);
  json_decref(j);
  config_free(&cfg);
}

static void test_config_scopes_tiers_encryption(void **state) {
  (void)state;
  config cfg;
  char err[512];
  assert_int_equal(load(&cfg, "{\"stdio\":{\"scopes\":[\"tool.call\",\"cache.read\"]},\"tools\":{\"commands\":[{"
                              "\"name\":\"t\",\"argv\":[\"/bin/true\"],\"scopes\":[\"reports.read\",\"tool.call\"]}]}}",
                   NULL, err, sizeof err),
                   0);
  assert_int_equal(cfg.stdio.scope_count, 2);
  assert_int_equal(cfg.tools.commands[0].scope_count, 2);
  assert_string_equal(cfg.tools.commands[0].scopes[0], "reports.read");
  config_free(&cfg);
  setenv("IPFS_DATASETS_PY_TASK_P2P_TRUST_TIERS", "yes", 1);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_BASELINE_MAX_PRIORITY", "42", 1); /* clamped, as in Python */
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_ENCRYPT", "1", 1);
  setenv("IPFS_DATASETS_PY_TASK_P2P_ENCRYPTION_KEY", "k3y", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_true(cfg.p2p.trust_tiers);
  assert_int_equal(cfg.p2p.baseline_max_priority, 10);
  assert_true(cfg.p2p.encrypt);
  assert_string_equal(cfg.p2p.encryption_key, "k3y");
  config_free(&cfg);
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_BASELINE_MAX_PRIORITY", "high", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), -EINVAL);
}

static void test_config_token_file(void **state) {
  (void)state;
  config cfg;
  char err[512], path[512];
  snprintf(path, sizeof path, "%s/token", g_home);
  FILE *f = fopen(path, "w");
  fputs("  eyJhbGciOiJFZERTQSJ9.e30.c2ln \n", f);
  fclose(f);
  chmod(path, 0644);
  config_args a;
  config_args_init(&a);
  char *argv[] = {"peermcp", "--token-file", path, "call", NULL};
  int argc = 4;
  assert_int_equal(config_args_parse(&a, &argc, argv, err, sizeof err), 0);
  assert_int_equal(argc, 2);
  assert_string_equal(a.token_file, path);
  assert_int_equal(load(&cfg, "{}", &a, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "readable by others"));
  chmod(path, 0600);
  assert_int_equal(load(&cfg, "{}", &a, err, sizeof err), 0);
  assert_string_equal(cfg.p2p.client_token, "eyJhbGciOiJFZERTQSJ9.e30.c2ln"); /* trimmed */
  config_free(&cfg);
  a.token_file = "/nonexistent/token";
  assert_int_equal(load(&cfg, "{}", &a, err, sizeof err), -ENOENT);
  f = fopen(path, "w");
  fclose(f);
  a.token_file = path;
  assert_int_equal(load(&cfg, "{}", &a, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "empty"));
  config_args_free(&a);
}

static void test_config_http_keys_defaults_and_limits(void **state) {
  (void)state;
  config cfg;
  char err[512];
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.http.listen_count, 0); /* HTTP is off unless asked for */
  assert_false(cfg.http.allow_unauthenticated);
  assert_int_equal(cfg.http.session_idle_seconds, 1800);
  assert_int_equal(cfg.http.max_sessions, 1024);
  assert_int_equal(cfg.http.max_connections, 1024);
  assert_int_equal(cfg.http.max_body_bytes, 4u << 20);
  assert_int_equal(cfg.http.max_header_bytes, 16384);
  assert_int_equal(cfg.http.request_timeout_seconds, 10);
  assert_int_equal(cfg.http.idle_timeout_seconds, 60);
  assert_int_equal(cfg.http.sse_keepalive_seconds, 15);
  config_free(&cfg);
  /* listen: a string (issue 13's shape) or an array */
  const char *text = "{\"http\": {\"listen\": \"127.0.0.1:8080\", \"allowed_origins\": [\"https://app.example\"],"
                     " \"allowed_hosts\": [\"mcp.example\"], \"allow_unauthenticated\": true,"
                     " \"session_idle_seconds\": 60, \"max_body_bytes\": 2048}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_int_equal(cfg.http.listen_count, 1);
  assert_string_equal(cfg.http.listen[0], "127.0.0.1:8080");
  assert_int_equal(cfg.http.allowed_origin_count, 1);
  assert_string_equal(cfg.http.allowed_origins[0], "https://app.example");
  assert_string_equal(cfg.http.allowed_hosts[0], "mcp.example");
  assert_true(cfg.http.allow_unauthenticated);
  assert_int_equal(cfg.http.session_idle_seconds, 60);
  assert_int_equal(cfg.http.max_body_bytes, 2048);
  json_t *j = config_to_json(&cfg);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(j, "http"), "listen"), 0)),
                      "127.0.0.1:8080");
  json_decref(j);
  config_free(&cfg);
  assert_int_equal(load(&cfg, "{\"http\": {\"listen\": [\"8080\", \"[::1]:0\"]}}", NULL, err, sizeof err), 0);
  assert_int_equal(cfg.http.listen_count, 2);
  config_free(&cfg);
  /* bad values name the key */
  static const char *const bad[][2] = {
      {"{\"http\": {\"listen\": \"example.com:80\"}}", "http.listen[0]"},
      {"{\"http\": {\"listen\": [\"127.0.0.1:65536\"]}}", "http.listen[0]"},
      {"{\"http\": {\"listen\": [\"127.0.0.1\"]}}", "http.listen[0]"},
      {"{\"http\": {\"listen\": [\"::1:80\"]}}", "http.listen[0]"},
      {"{\"http\": {\"listen\": \"\"}}", "http.listen"},
      {"{\"http\": {\"listen\": 8080}}", "http.listen"},
      {"{\"http\": {\"max_body_bytes\": 10}}", "http.max_body_bytes"},
      {"{\"http\": {\"max_sessions\": 0}}", "http.max_sessions"},
      {"{\"http\": {\"allow_unauthenticated\": \"yes\"}}", "http.allow_unauthenticated"},
      {"{\"http\": {\"allowed_origins\": \"*\"}}", "http.allowed_origins"},
      {"{\"http\": []}", "http"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (load(&cfg, bad[i][0], NULL, err, sizeof err) != -EINVAL) fail_msg("accepted %s", bad[i][0]);
    if (!strstr(err, bad[i][1])) fail_msg("%s: message \"%s\" does not name %s", bad[i][0], err, bad[i][1]);
  }
}

static void test_config_http_listen_flag_over_env_over_file(void **state) {
  (void)state;
  config cfg;
  char err[512];
  const char *text = "{\"http\": {\"listen\": [\"127.0.0.1:1\"]}}";
  setenv("PEERMCP_HTTP_LISTEN", "127.0.0.1:2, [::1]:3", 1);
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_int_equal(cfg.http.listen_count, 2);
  assert_string_equal(cfg.http.listen[0], "127.0.0.1:2");
  assert_string_equal(cfg.http.listen[1], "[::1]:3");
  config_free(&cfg);
  config_args a;
  config_args_init(&a);
  char *argv[] = {"serve", "--http-listen", "0", "--http-listen=localhost:4", "--other", NULL};
  int argc = 5;
  assert_int_equal(config_args_parse(&a, &argc, argv, err, sizeof err), 0);
  assert_int_equal(argc, 2);
  assert_string_equal(argv[1], "--other");
  assert_int_equal(load(&cfg, text, &a, err, sizeof err), 0);
  assert_int_equal(cfg.http.listen_count, 2);
  assert_string_equal(cfg.http.listen[0], "0");
  assert_string_equal(cfg.http.listen[1], "localhost:4");
  config_free(&cfg);
  config_args_free(&a);
  setenv("PEERMCP_HTTP_LISTEN", "nonsense", 1);
  assert_int_equal(load(&cfg, "{}", NULL, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "http.listen[0]"));
  unsetenv("PEERMCP_HTTP_LISTEN");
}

static void test_config_host_port_parse_forms(void **state) {
  (void)state;
  char host[64];
  uint16_t port = 1;
  assert_int_equal(config_host_port_parse("8080", host, sizeof host, &port), 0);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 8080);
  assert_int_equal(config_host_port_parse("localhost:0", host, sizeof host, &port), 0);
  assert_string_equal(host, "127.0.0.1");
  assert_int_equal(port, 0);
  assert_int_equal(config_host_port_parse("0.0.0.0:65535", host, sizeof host, &port), 0);
  assert_string_equal(host, "0.0.0.0");
  assert_int_equal(port, 65535);
  assert_int_equal(config_host_port_parse("[::1]:9", host, sizeof host, &port), 0);
  assert_string_equal(host, "::1");
  static const char *const bad[] = {"", ":80", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:123456", "[::1]80",
                                    "[::1", "::1:80", "host.example:80", "1.2.3:80", "[127.0.0.1]:80", "-1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (config_host_port_parse(bad[i], host, sizeof host, &port) != -EINVAL) fail_msg("accepted \"%s\"", bad[i]);
  assert_int_equal(config_host_port_parse("127.0.0.1:1", host, 4, &port), -EINVAL); /* host buffer too small */
}

static void test_config_relative_paths_resolve_against_file_dir(void **state) {
  (void)state;
  config cfg;
  char err[512];
  const char *text = "{\"state_dir\": \"state\", \"cache\": {\"dir\": \"~/c\"}, "
                     "\"tools\": {\"commands\": [{\"name\": \"t\", \"argv\": [\"bin/tool\", \"x\"], \"cwd\": \"work\"}]}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_string_equal(cfg.state_dir, "/etc/peermcp/state");
  char want[512];
  snprintf(want, sizeof want, "%s/c", g_home);
  assert_string_equal(cfg.cache.dir, want);
  assert_string_equal(cfg.tools.commands[0].argv[0], "/etc/peermcp/bin/tool");
  assert_string_equal(cfg.tools.commands[0].argv[1], "x");
  assert_string_equal(cfg.tools.commands[0].cwd, "/etc/peermcp/work");
  config_free(&cfg);
}

static void test_config_command_tool_fields_and_defaults(void **state) {
  (void)state;
  config cfg;
  char err[512];
  const char *text =
      "{\"tools\": {\"disabled\": [\"server_info\"], \"commands\": [\n"
      "  {\"name\": \"wc\", \"description\": \"count\", \"argv\": [\"/usr/bin/wc\", \"-c\"]},\n"
      "  {\"name\": \"grep.x\", \"category\": \"text\", \"argv\": [\"grep\"], \"env_allow\": [\"PATH\"],\n"
      "   \"env\": {\"LC_ALL\": \"C\"}, \"timeout_ms\": 500, \"max_output_bytes\": 100, \"remote\": true,\n"
      "   \"output\": \"text\", \"input_schema\": {\"type\": \"object\", \"properties\": {\"q\": {\"type\": \"string\"}}}}\n"
      "]}}";
  assert_int_equal(load(&cfg, text, NULL, err, sizeof err), 0);
  assert_int_equal(cfg.tools.command_count, 2);
  config_command *a = &cfg.tools.commands[0], *b = &cfg.tools.commands[1];
  assert_string_equal(a->name, "wc");
  assert_string_equal(a->category, "commands");
  assert_int_equal(a->argc, 2);
  assert_null(a->argv[2]);
  assert_int_equal(a->max_output_bytes, 1048576);
  assert_int_equal(a->timeout_ms, 0);
  assert_false(a->remote);
  assert_int_equal(a->output, CONFIG_OUTPUT_AUTO);
  assert_string_equal(json_string_value(json_object_get(a->input_schema, "type")), "object");
  assert_int_equal(a->src_line, 2);
  assert_string_equal(b->category, "text");
  assert_string_equal(b->argv[0], "grep");
  assert_int_equal(b->env_allow_count, 1);
  assert_string_equal(b->env[0], "LC_ALL=C");
  assert_int_equal(b->timeout_ms, 500);
  assert_int_equal(b->max_output_bytes, 100);
  assert_true(b->remote);
  assert_int_equal(b->output, CONFIG_OUTPUT_TEXT);
  assert_int_equal(b->src_line, 3);
  assert_true(config_tool_disabled(&cfg, "server_info"));
  assert_false(config_tool_disabled(&cfg, "wc"));
  config_free(&cfg);
}

static void test_config_command_tool_declaration_errors(void **state) {
  (void)state;
  config cfg;
  char err[512];
  struct {
    const char *text, *want;
  } cases[] = {
      {"{\"tools\": {\"commands\": [{\"name\": \"x\"}]}}", "tools.commands[0]: missing \"argv\""},
      {"{\"tools\": {\"commands\": [{\"argv\": [\"/bin/true\"]}]}}", "tools.commands[0]: missing \"name\""},
      {"{\"tools\": {\"commands\": [{\"name\": \"a b\", \"argv\": [\"/bin/true\"]}]}}", "tools.commands[0].name"},
      {"{\"tools\": {\"commands\": [{\"name\": \"x\", \"argv\": \"/bin/sh -c ls\"}]}}",
       "tools.commands[0].argv: expected an array"},
      {"{\"tools\": {\"commands\": [{\"name\": \"x\", \"argv\": []}]}}", "tools.commands[0].argv: must name a program"},
      {"{\"tools\": {\"commands\": [{\"name\": \"x\", \"argv\": [\"/bin/true\"], \"shell\": true}]}}",
       "tools.commands[0].shell: unknown key"},
      {"{\"tools\": {\"commands\": [{\"name\": \"x\", \"argv\": [\"/bin/true\"], \"output\": \"xml\"}]}}",
       "tools.commands[0].output"},
      {"{\"tools\": {\"commands\": [{\"name\": \"x\", \"argv\": [\"/bin/true\"], \"env_allow\": [\"A=B\"]}]}}",
       "tools.commands[0].env_allow[0]"},
      {"{\"tools\": {\"commands\": [{\"name\": \"x\", \"argv\": [\"/bin/true\"], \"input_schema\": {\"type\": \"string\"}}]}}",
       "must have \"type\": \"object\""},
      {"{\"tools\": {\"commands\": [{\"name\": \"x\", \"argv\": [\"/bin/true\"]}, {\"name\": \"x\", \"argv\": [\"/bin/false\"]}]}}",
       "tools.commands[1].name: duplicate command tool name"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = load(&cfg, cases[i].text, NULL, err, sizeof err);
    if (rc != -EINVAL || !strstr(err, cases[i].want)) fail_msg("case %zu: rc=%d err=%s", i, rc, err);
  }
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_config_file_selection_flag_env_default(void **state) {
  (void)state;
  char p1[600], p2[600], dir[400];
  config cfg;
  char err[512];
  /* default path under XDG_CONFIG_HOME, used only if it exists */
  snprintf(dir, sizeof dir, "%s/xdg", g_home);
  setenv("XDG_CONFIG_HOME", dir, 1);
  assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
  assert_null(cfg.config_path);
  config_free(&cfg);
  mkdir(dir, 0700);
  snprintf(p1, sizeof p1, "%s/peermcp", dir);
  mkdir(p1, 0700);
  snprintf(p1, sizeof p1, "%s/peermcp/config.json", dir);
  write_file(p1, "{\"page_size\": 7}");
  assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
  assert_string_equal(cfg.config_path, p1);
  assert_int_equal(cfg.page_size, 7);
  config_free(&cfg);
  /* PEERMCP_CONFIG over the default */
  snprintf(p2, sizeof p2, "%s/env.json", g_home);
  write_file(p2, "{\"page_size\": 8}");
  setenv("PEERMCP_CONFIG", p2, 1);
  assert_int_equal(config_load(&cfg, NULL, err, sizeof err), 0);
  assert_int_equal(cfg.page_size, 8);
  config_free(&cfg);
  /* --config over PEERMCP_CONFIG; a named file that is missing is an error */
  config_args a;
  config_args_init(&a);
  a.config_file = p1;
  assert_int_equal(config_load(&cfg, &a, err, sizeof err), 0);
  assert_int_equal(cfg.page_size, 7);
  config_free(&cfg);
  char missing[512];
  snprintf(missing, sizeof missing, "%s/nope.json", g_home);
  a.config_file = missing;
  assert_int_equal(config_load(&cfg, &a, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "nope.json"));
  /* an error from a real file names the file and the line */
  write_file(p2, "{\n \"page_size\": \"x\"}");
  assert_int_equal(config_load(&cfg, NULL, err, sizeof err), -EINVAL);
  char want[700];
  snprintf(want, sizeof want, "%s:2:2: page_size:", p2);
  assert_non_null(strstr(err, want));
  unsetenv("XDG_CONFIG_HOME");
}

static void test_config_file_over_ceiling_is_refused(void **state) {
  (void)state;
  size_t n = CONFIG_FILE_MAX_BYTES + 10;
  char *big = malloc(n + 1);
  assert_non_null(big);
  memset(big, ' ', n);
  big[0] = '{';
  big[n - 1] = '}';
  big[n] = 0;
  config cfg;
  char err[256];
  assert_int_equal(config_load_text(&cfg, big, n, "big.json", NULL, err, sizeof err), -EFBIG);
  free(big);
}

/* Random byte mutations of a valid file: every outcome is 0 or a clean error, never a crash or
 * a leak (ASan), and an error always leaves the struct zeroed. Deterministic seed. */
static void test_config_survives_mutated_files(void **state) {
  (void)state;
  const char *base =
      "{\"log_level\": \"debug\", \"page_size\": 10, \"tools\": {\"disabled\": [\"a\"], \"commands\": ["
      "{\"name\": \"t\", \"argv\": [\"/bin/true\"], \"env\": {\"A\": \"b\"}, \"input_schema\": "
      "{\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"string\", \"pattern\": \"^a\"}}}}]},"
      " \"queue\": {\"lease_seconds\": 5}, \"p2p\": {\"listen\": [\"/ip4/127.0.0.1/tcp/1\"], \"token\": \"t\"}}";
  size_t n = strlen(base);
  char *buf = malloc(n + 1);
  assert_non_null(buf);
  unsigned seed = 12345;
  static const char alphabet[] = "{}[]\":,0123456789-.eE \\/abcnrtu\x01\xff";
  int ok = 0, bad = 0;
  for (int iter = 0; iter < 3000; iter++) {
    memcpy(buf, base, n + 1);
    int muts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 4;
    for (int m = 0; m < muts; m++) {
      seed = seed * 1103515245u + 12345u;
      size_t pos = (seed >> 8) % n;
      seed = seed * 1103515245u + 12345u;
      buf[pos] = alphabet[(seed >> 8) % (sizeof alphabet - 1)];
    }
    config cfg;
    char err[256];
    int rc = config_load_text(&cfg, buf, n, "m.json", NULL, err, sizeof err);
    if (rc == 0) {
      ok++;
      config_free(&cfg);
    } else {
      bad++;
      assert_true(rc < 0);
      assert_null(cfg.state_dir);
      assert_true(err[0] != 0);
    }
  }
  free(buf);
  assert_true(ok > 0 && bad > 0);
}

/* Runs `peermcp serve ARGS…` in-process with stderr captured into out[outlen]; returns its exit
 * code. Only for paths that return before serving. */
static int serve_captured(char *out, size_t outlen, int argc, char **argv) {
  char path[300];
  snprintf(path, sizeof path, "%s/stderr.txt", g_home);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  char *args[16];
  assert_true(argc < 16);
  for (int i = 0; i <= argc; i++) args[i] = argv[i]; /* cli_serve compacts its argv */
  int rc = cli_serve(argc, args);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  lseek(fd, 0, SEEK_SET);
  ssize_t n = read(fd, out, outlen - 1);
  out[n > 0 ? n : 0] = 0;
  close(fd);
  return rc;
}

static void test_config_serve_refuses_to_start_on_bad_config(void **state) {
  (void)state;
  char cfgpath[400], statedir[400], out[4096];
  snprintf(cfgpath, sizeof cfgpath, "%s/bad.json", g_home);
  snprintf(statedir, sizeof statedir, "%s/state", g_home);
  write_file(cfgpath, "{\n  \"stdio\": {\"enabled\": true},\n  \"queue\": {\"lease_secs\": 5}\n}\n");
  char *argv1[] = {"serve", "--config", cfgpath, "--state-dir", statedir, "--no-p2p", NULL};
  assert_int_equal(serve_captured(out, sizeof out, 6, argv1), 1);
  char want[600];
  snprintf(want, sizeof want, "%s:3:13: queue.lease_secs: unknown key", cfgpath);
  if (!strstr(out, want)) fail_msg("stderr: %s", out);
  /* a command tool whose program does not exist also stops start-up */
  write_file(cfgpath, "{\"tools\": {\"commands\": [{\"name\": \"x\", \"argv\": [\"/nonexistent/x\"]}]}}");
  assert_int_equal(serve_captured(out, sizeof out, 6, argv1), 1);
  if (!strstr(out, "program \"/nonexistent/x\" does not exist")) fail_msg("stderr: %s", out);
  /* a bad flag value is a usage error */
  char *argv2[] = {"serve", "--log-level", "loud", NULL};
  assert_int_equal(serve_captured(out, sizeof out, 3, argv2), 2);
  if (!strstr(out, "loud")) fail_msg("stderr: %s", out);
}

/* The examples in docs/config.md and docs/command-tools.md load (the docs cannot rot). The
 * source root comes from meson (argv[1]); without it the test is skipped. */
static const char *g_source_root;

static char *first_json_block(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  static char text[65536];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = 0;
  const char *a = strstr(text, "## Example");
  /* the example is the first file a runnable block writes ("cat > … <<'EOF'" … "EOF"; suite
   * 80-docs runs the block itself), or a plain ```json block */
  const char *h = a ? strstr(a, "<<'EOF'\n") : NULL;
  const char *j = a ? strstr(a, "```json\n") : NULL;
  if (h && (!j || h < j)) {
    h += 8;
    const char *e = strstr(h, "\nEOF\n");
    return e ? strndup(h, (size_t)(e - h + 1)) : NULL;
  }
  if (!j) return NULL;
  j += 8;
  const char *b = strstr(j, "```");
  return b ? strndup(j, (size_t)(b - j)) : NULL;
}

static void test_config_docs_examples_load(void **state) {
  (void)state;
  if (!g_source_root) skip();
  static const char *const docs[] = {"docs/config.md", "docs/command-tools.md"};
  for (size_t i = 0; i < 2; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_source_root, docs[i]);
    char *json = first_json_block(path);
    if (!json) fail_msg("%s: no example file (a heredoc or a ```json block) after \"## Example\"", path);
    config cfg;
    char err[512];
    int rc = config_load_text(&cfg, json, strlen(json), path, NULL, err, sizeof err);
    free(json);
    if (rc != 0) fail_msg("%s example: %s", docs[i], err);
    assert_true(cfg.tools.command_count > 0);
    config_free(&cfg);
  }
}

int main(int argc, char **argv) {
  if (argc > 1) g_source_root = argv[1];
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_config_defaults_without_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_xdg_state_home_wins_over_home, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_precedence_flags_over_env_over_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_queue_path_env_primary_then_compat, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_p2p_env_token_legacy_announce, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_p2p_token_env_first_not_blank_trimmed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_switches_file_env_and_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_log_access, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_switches_refuse_bad_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_captures_command_environment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_announce_file_compat_twin, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_p2p_listen_flag_replaces_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_args_parse_consumes_common_flags_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_args_parse_rejects_missing_value_and_bad_level, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_unknown_key_reports_path_line_and_column, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_bad_type_reports_path_and_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_out_of_range_values_are_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_syntax_error_and_duplicate_key_give_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_unsupported_listen_addresses_are_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_workers_auto_is_sized_to_the_machine, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_reserved_sections_take_no_keys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_http_keys_defaults_and_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_http_listen_flag_over_env_over_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_host_port_parse_forms, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_relative_paths_resolve_against_file_dir, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_command_tool_fields_and_defaults, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_command_tool_declaration_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_file_selection_flag_env_default, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_file_over_ceiling_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_survives_mutated_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_docs_examples_load, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_auth_jwt_keys, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_scopes_tiers_encryption, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_token_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_serve_refuses_to_start_on_bad_config, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
