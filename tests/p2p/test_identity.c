/* Unit tests for p2p/core/identity: the identity.key file (create once, 0600, reload, refuse
 * loose permissions and junk). */
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

#include "hexutil.h"
#include "keyvectors.h"
#include "p2p/core/identity.h"
#include "util/log.h"

static char dir[256];
static char path[300];

static int setup(void **state) {
  (void)state;
  log_set_level(LOG_OFF);
  snprintf(dir, sizeof dir, "/tmp/peermcp-idtest-XXXXXX");
  if (!mkdtemp(dir)) return -1;
  snprintf(path, sizeof path, "%s/sub/identity.key", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(path);
  char sub[300];
  snprintf(sub, sizeof sub, "%s/sub", dir);
  rmdir(sub);
  rmdir(dir);
  return 0;
}

static void test_identity_created_once_with_mode_0600_and_reloaded(void **state) {
  (void)state;
  char sd[300];
  snprintf(sd, sizeof sd, "%s/sub", dir);
  keys_private a, b;
  bool created = false;
  assert_int_equal(identity_load_or_create(sd, &a, &created), 0);
  assert_true(created);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(stat(sd, &st), 0);
  assert_int_equal(st.st_mode & 077, 0);
  assert_int_equal(identity_load_or_create(sd, &b, &created), 0);
  assert_false(created);
  assert_memory_equal(a.sk, b.sk, 64);
  /* The file is exactly the PrivateKey protobuf: 4 header bytes + 64 bytes of Data. */
  assert_int_equal(st.st_size >= 0, 1);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 68);
}

static void test_identity_creates_missing_parent_directories(void **state) {
  (void)state;
  char sd[300], deep[320], file[340];
  snprintf(sd, sizeof sd, "%s/sub", dir);
  snprintf(deep, sizeof deep, "%s/a/b", sd);
  snprintf(file, sizeof file, "%s/identity.key", deep);
  keys_private k;
  bool created = false;
  assert_int_equal(identity_load_or_create(deep, &k, &created), 0);
  assert_true(created);
  struct stat st;
  assert_int_equal(stat(deep, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  unlink(file);
  rmdir(deep);
  snprintf(deep, sizeof deep, "%s/a", sd);
  rmdir(deep);
}

static void test_identity_refuses_group_or_world_readable_file(void **state) {
  (void)state;
  char sd[300];
  snprintf(sd, sizeof sd, "%s/sub", dir);
  keys_private a;
  assert_int_equal(identity_load_or_create(sd, &a, NULL), 0);
  assert_int_equal(chmod(path, 0640), 0);
  assert_int_equal(identity_load(path, &a), -EPERM);
  assert_int_equal(identity_load_or_create(sd, &a, NULL), -EPERM);
  assert_int_equal(chmod(path, 0604), 0);
  assert_int_equal(identity_load(path, &a), -EPERM);
  assert_int_equal(chmod(path, 0600), 0);
  assert_int_equal(identity_load(path, &a), 0);
}

static void test_identity_loads_spec_private_key_file(void **state) {
  (void)state;
  char sd[300];
  snprintf(sd, sizeof sd, "%s/sub", dir);
  mkdir(sd, 0700);
  uint8_t priv[128];
  size_t n = hex_decode(SPEC_ED25519_PRIV, priv, sizeof priv);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, priv, n), (ssize_t)n);
  close(fd);
  keys_private k;
  assert_int_equal(identity_load(path, &k), 0);
  assert_memory_equal(k.sk, priv + 4, 32);
}

static void test_identity_refuses_junk_file(void **state) {
  (void)state;
  char sd[300];
  snprintf(sd, sizeof sd, "%s/sub", dir);
  mkdir(sd, 0700);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_int_equal(write(fd, "not a key", 9), 9);
  close(fd);
  keys_private k;
  assert_int_equal(identity_load(path, &k), -EINVAL);
  assert_int_equal(identity_load_or_create(sd, &k, NULL), -EINVAL);
}

static void test_identity_save_replaces_atomically(void **state) {
  (void)state;
  char sd[300];
  snprintf(sd, sizeof sd, "%s/sub", dir);
  mkdir(sd, 0700);
  keys_private a, b;
  assert_int_equal(keys_ed25519_generate(&a), 0);
  assert_int_equal(identity_save(path, &a), 0);
  assert_int_equal(identity_load(path, &b), 0);
  assert_memory_equal(a.pk, b.pk, 32);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_identity_created_once_with_mode_0600_and_reloaded, setup, teardown),
      cmocka_unit_test_setup_teardown(test_identity_creates_missing_parent_directories, setup, teardown),
      cmocka_unit_test_setup_teardown(test_identity_refuses_group_or_world_readable_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_identity_loads_spec_private_key_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_identity_refuses_junk_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_identity_save_replaces_atomically, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
