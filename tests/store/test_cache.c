/* Unit tests for store/cache: the cache_store.py layout plus the §12.18 fixes. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/cache.h"
#include "support/tmpdir.h"

typedef struct {
  char dir[TS_TMPDIR_MAX];
  ttlcache *c;
} fx;

static int open_with(fx *f, uint64_t max_bytes, size_t max_entries) {
  ttlcache_options o;
  ttlcache_options_default(&o);
  o.dir = f->dir;
  if (max_bytes) o.max_bytes = max_bytes;
  if (max_entries) o.max_entries = max_entries;
  return ttlcache_open(&o, &f->c);
}

static int fx_setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  ts_tmpdir_make(f->dir, "cache-test");
  if (open_with(f, 0, 0) != 0) return -1;
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  fx *f = *state;
  ttlcache_close(f->c);
  if (ts_tmpdir_remove(f->dir) != 0) return -1;
  free(f);
  return 0;
}

static char *read_file(const char *dir, const char *name) {
  char p[256];
  ts_path(p, sizeof p, dir, name);
  FILE *fp = fopen(p, "rb");
  if (!fp) return NULL;
  char *b = calloc(1, 1 << 16);
  size_t n = fread(b, 1, (1 << 16) - 1, fp);
  b[n] = 0;
  fclose(fp);
  return b;
}

static void write_file(const char *dir, const char *name, const char *text) {
  char p[256];
  ts_path(p, sizeof p, dir, name);
  FILE *fp = fopen(p, "wb");
  assert_non_null(fp);
  fputs(text, fp);
  fclose(fp);
}

static bool file_exists(const char *dir, const char *name) {
  char p[256];
  ts_path(p, sizeof p, dir, name);
  return access(p, F_OK) == 0;
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.' || (de->d_name[1] && de->d_name[1] != '.' && strcmp(de->d_name, "..")))
      if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void test_cache_record_is_cache_store_layout(void **state) {
  fx *f = *state;
  json_t *v = json_pack("{s:s, s:[i,f]}", "z", "\xc3\xa9", "a", 1, 0.5);
  double ttl = 0;
  assert_int_equal(ttlcache_set(f->c, "k", v, &ttl), 0);
  json_decref(v);
  char name[70];
  ttlcache_key_filename("k", name);
  /* sha256("k") */
  assert_string_equal(name, "8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a.json");
  char *text = read_file(f->dir, name);
  assert_non_null(text);
  assert_true(strncmp(text, "{\"created_at\":", 14) == 0);
  assert_non_null(strstr(text, ",\"expires_at\":null,\"key\":\"k\",\"value\":{\"a\":[1,0.5],\"z\":\"\xc3\xa9\"}}"));
  free(text);
  assert_int_equal(count_files(f->dir), 1); /* no temp file left behind */
  json_t *got;
  assert_int_equal(ttlcache_get(f->c, "k", &got), 0);
  assert_int_equal(json_integer_value(json_array_get(json_object_get(got, "a"), 0)), 1);
  json_decref(got);
}

static void test_cache_reads_python_written_file(void **state) {
  fx *f = *state;
  char name[70];
  ttlcache_key_filename("py-key", name);
  write_file(f->dir, name, "{\"created_at\":1700000000.5,\"expires_at\":null,\"key\":\"py-key\",\"value\":[1,\"x\"]}");
  json_t *got;
  assert_int_equal(ttlcache_get(f->c, "py-key", &got), 0);
  assert_string_equal(json_string_value(json_array_get(got, 1)), "x");
  json_decref(got);
}

static void test_cache_foreign_key_is_miss_and_removed(void **state) {
  fx *f = *state;
  char name[70];
  ttlcache_key_filename("mine", name);
  write_file(f->dir, name, "{\"created_at\":1,\"expires_at\":null,\"key\":\"other\",\"value\":1}");
  json_t *got;
  assert_int_equal(ttlcache_get(f->c, "mine", &got), -ENOENT);
  assert_false(file_exists(f->dir, name));
  ttlcache_stats st;
  ttlcache_stats_get(f->c, &st);
  assert_int_equal(st.corrupt, 1);
  assert_int_equal(st.misses, 1);
}

static void test_cache_corrupt_file_is_miss_and_removed(void **state) {
  fx *f = *state;
  const char *bad[] = {"{\"created_at\":1,\"expires_at\":null,\"key\":\"c\",\"val", "\xff\xfe garbage", "[]",
                       "{\"created_at\":1,\"expires_at\":\"soon\",\"key\":\"c\",\"value\":1}", ""};
  char name[70];
  ttlcache_key_filename("c", name);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_file(f->dir, name, bad[i]);
    bool hit = true;
    assert_int_equal(ttlcache_has(f->c, "c", &hit), 0);
    assert_false(hit);
    assert_false(file_exists(f->dir, name));
  }
}

static void test_cache_ttl_expiry_and_sweep(void **state) {
  fx *f = *state;
  json_t *v = json_integer(7);
  double ttl = 1.0, forever = 0; /* long enough that the first get is a hit even under load */
  assert_int_equal(ttlcache_set(f->c, "short", v, &ttl), 0);
  assert_int_equal(ttlcache_set(f->c, "short2", v, &ttl), 0);
  assert_int_equal(ttlcache_set(f->c, "long", v, &forever), 0);
  json_t *got;
  assert_int_equal(ttlcache_get(f->c, "short", &got), 0);
  json_decref(got);
  usleep(1100000);
  assert_int_equal(ttlcache_get(f->c, "short", &got), -ENOENT);
  size_t removed = 0;
  assert_int_equal(ttlcache_sweep(f->c, &removed), 0);
  assert_int_equal(removed, 1); /* short2 */
  ttlcache_stats st;
  ttlcache_stats_get(f->c, &st);
  assert_int_equal(st.entries, 1);
  assert_int_equal(st.expired, 2);
  assert_int_equal(count_files(f->dir), 1);
  json_decref(v);
}

static void test_cache_stored_null_is_a_hit(void **state) {
  fx *f = *state;
  assert_int_equal(ttlcache_set(f->c, "n", json_null(), NULL), 0);
  bool hit = false;
  assert_int_equal(ttlcache_has(f->c, "n", &hit), 0);
  assert_true(hit);
}

static void test_cache_delete_reports_truth(void **state) {
  fx *f = *state;
  bool deleted = true;
  assert_int_equal(ttlcache_delete(f->c, "absent", &deleted), 0);
  assert_false(deleted);
  json_t *v = json_true();
  assert_int_equal(ttlcache_set(f->c, "present", v, NULL), 0);
  assert_int_equal(ttlcache_delete(f->c, "present", &deleted), 0);
  assert_true(deleted);
  bool hit = true;
  assert_int_equal(ttlcache_has(f->c, "present", &hit), 0);
  assert_false(hit);
}

static void test_cache_lru_eviction_by_count(void **state) {
  fx *f = *state;
  ttlcache_close(f->c);
  assert_int_equal(open_with(f, 0, 3), 0);
  json_t *v = json_integer(1);
  assert_int_equal(ttlcache_set(f->c, "a", v, NULL), 0);
  assert_int_equal(ttlcache_set(f->c, "b", v, NULL), 0);
  assert_int_equal(ttlcache_set(f->c, "c", v, NULL), 0);
  bool hit;
  assert_int_equal(ttlcache_has(f->c, "a", &hit), 0); /* a is now most recent */
  assert_int_equal(ttlcache_set(f->c, "d", v, NULL), 0);
  assert_int_equal(ttlcache_has(f->c, "b", &hit), 0);
  assert_false(hit);
  assert_int_equal(ttlcache_has(f->c, "a", &hit), 0);
  assert_true(hit);
  ttlcache_stats st;
  ttlcache_stats_get(f->c, &st);
  assert_int_equal(st.entries, 3);
  assert_int_equal(st.evictions, 1);
  assert_int_equal(count_files(f->dir), 3);
  json_decref(v);
}

static void test_cache_lru_eviction_by_bytes(void **state) {
  fx *f = *state;
  ttlcache_close(f->c);
  assert_int_equal(open_with(f, 4000, 0), 0);
  char big[1001];
  memset(big, 'x', 1000);
  big[1000] = 0;
  json_t *v = json_string(big);
  char key[16];
  for (int i = 0; i < 10; i++) {
    snprintf(key, sizeof key, "k%d", i);
    assert_int_equal(ttlcache_set(f->c, key, v, NULL), 0);
  }
  ttlcache_stats st;
  ttlcache_stats_get(f->c, &st);
  assert_true(st.bytes <= 4000);
  assert_true(st.entries >= 3);
  bool hit;
  assert_int_equal(ttlcache_has(f->c, "k9", &hit), 0);
  assert_true(hit);
  assert_int_equal(ttlcache_has(f->c, "k0", &hit), 0);
  assert_false(hit);
  json_decref(v);
}

static void test_cache_bad_input_rejected_and_nothing_written(void **state) {
  fx *f = *state;
  json_t *v = json_integer(1);
  double neg = -1, nan_ttl = NAN, huge = 1e12;
  assert_int_equal(ttlcache_set(f->c, "k", v, &neg), -EINVAL);
  assert_int_equal(ttlcache_set(f->c, "k", v, &nan_ttl), -EINVAL);
  assert_int_equal(ttlcache_set(f->c, "k", v, &huge), -EINVAL);
  assert_int_equal(ttlcache_set(f->c, "", v, NULL), -EINVAL);
  assert_int_equal(ttlcache_set(f->c, "bad\xc0\x80", v, NULL), -EINVAL);
  char *longkey = malloc(TTLCACHE_MAX_KEY_BYTES + 2);
  memset(longkey, 'k', TTLCACHE_MAX_KEY_BYTES + 1);
  longkey[TTLCACHE_MAX_KEY_BYTES + 1] = 0;
  assert_int_equal(ttlcache_set(f->c, longkey, v, NULL), -EINVAL);
  free(longkey);
  json_decref(v);
  char *big = malloc(1100000);
  memset(big, 'b', 1099999);
  big[1099999] = 0;
  v = json_string(big);
  free(big);
  assert_int_equal(ttlcache_set(f->c, "k", v, NULL), -E2BIG);
  json_decref(v);
  assert_int_equal(count_files(f->dir), 0);
}

static void test_cache_reopen_indexes_existing_files(void **state) {
  fx *f = *state;
  json_t *v = json_integer(5);
  assert_int_equal(ttlcache_set(f->c, "x", v, NULL), 0);
  assert_int_equal(ttlcache_set(f->c, "y", v, NULL), 0);
  write_file(f->dir, ".tmp-stale", "junk"); /* young temp files stay; old ones are swept */
  ttlcache_close(f->c);
  assert_int_equal(open_with(f, 0, 0), 0);
  ttlcache_stats st;
  ttlcache_stats_get(f->c, &st);
  assert_int_equal(st.entries, 2);
  assert_true(st.bytes > 0);
  json_decref(v);
}

/* A full disk, simulated with RLIMIT_FSIZE in a child: the write fails cleanly and the old
 * record stays readable. */
static void test_cache_full_disk_keeps_old_value(void **state) {
  fx *f = *state;
  json_t *old = json_string("old");
  assert_int_equal(ttlcache_set(f->c, "k", old, NULL), 0);
  json_decref(old);
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {2048, 2048};
    setrlimit(RLIMIT_FSIZE, &rl);
    char *big = malloc(8192);
    memset(big, 'n', 8191);
    big[8191] = 0;
    json_t *v = json_string(big);
    int rc = ttlcache_set(f->c, "k", v, NULL);
    _exit(rc == -ENOSPC ? 0 : 1);
  }
  int st;
  waitpid(pid, &st, 0);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  json_t *got;
  assert_int_equal(ttlcache_get(f->c, "k", &got), 0);
  assert_string_equal(json_string_value(got), "old");
  json_decref(got);
  assert_int_equal(count_files(f->dir), 1); /* the failed temp file was removed */
}

typedef struct {
  ttlcache *c;
  int id;
  int torn;
} racer;

static void *race(void *arg) {
  racer *r = arg;
  char pad[4097];
  for (int i = 0; i < 150; i++) {
    size_t len = (size_t)((i * 37 + r->id * 101) % 4096);
    memset(pad, 'a' + r->id, len);
    pad[len] = 0;
    json_t *v = json_pack("{s:s, s:I}", "pad", pad, "len", (json_int_t)len);
    if (ttlcache_set(r->c, "shared", v, NULL) != 0) r->torn++;
    json_decref(v);
    json_t *got;
    if (ttlcache_get(r->c, "shared", &got) == 0) {
      if ((json_int_t)json_string_length(json_object_get(got, "pad")) != json_integer_value(json_object_get(got, "len")))
        r->torn++;
      json_decref(got);
    } else {
      r->torn++; /* the key always exists once written */
    }
  }
  return NULL;
}

static void test_cache_concurrent_writers_never_tear(void **state) {
  fx *f = *state;
  ttlcache_close(f->c);
  ttlcache_options o;
  ttlcache_options_default(&o);
  o.dir = f->dir;
  o.durable = false; /* atomicity comes from rename, not from fsync */
  assert_int_equal(ttlcache_open(&o, &f->c), 0);
  pthread_t th[4];
  racer r[4];
  for (int i = 0; i < 4; i++) {
    r[i] = (racer){f->c, i, 0};
    pthread_create(&th[i], NULL, race, &r[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(r[i].torn, 0);
  }
  ttlcache_stats st;
  ttlcache_stats_get(f->c, &st);
  assert_int_equal(st.entries, 1);
  assert_int_equal(st.corrupt, 0);
  assert_int_equal(count_files(f->dir), 1);
}

/* Files another process writes are seen by the sweep: counted, expired ones and corrupt ones
 * removed, live ones kept. */
static void test_cache_sweep_sees_other_writers(void **state) {
  fx *f = *state;
  char live[70], dead[70], junk[70];
  ttlcache_key_filename("live", live);
  ttlcache_key_filename("dead", dead);
  ttlcache_key_filename("junk", junk);
  write_file(f->dir, live, "{\"created_at\":1.0,\"expires_at\":null,\"key\":\"live\",\"value\":1}");
  write_file(f->dir, dead, "{\"created_at\":1.0,\"expires_at\":2.0,\"key\":\"dead\",\"value\":1}");
  write_file(f->dir, junk, "not json at all");
  size_t removed = 0;
  assert_int_equal(ttlcache_sweep(f->c, &removed), 0);
  assert_int_equal(removed, 2);
  assert_true(file_exists(f->dir, live));
  assert_false(file_exists(f->dir, dead));
  assert_false(file_exists(f->dir, junk));
  ttlcache_stats st;
  ttlcache_stats_get(f->c, &st);
  assert_int_equal(st.entries, 1);
  assert_int_equal(st.expired, 1);
  assert_int_equal(st.corrupt, 1);
}

static void test_cache_default_ttl_applies_when_none_given(void **state) {
  fx *f = *state;
  ttlcache_close(f->c);
  ttlcache_options o;
  ttlcache_options_default(&o);
  o.dir = f->dir;
  o.default_ttl_seconds = 0.05;
  assert_int_equal(ttlcache_open(&o, &f->c), 0);
  json_t *v = json_integer(1);
  double never = 0;
  assert_int_equal(ttlcache_set(f->c, "defaulted", v, NULL), 0);
  assert_int_equal(ttlcache_set(f->c, "explicit-never", v, &never), 0);
  json_decref(v);
  usleep(80000);
  bool hit;
  assert_int_equal(ttlcache_has(f->c, "defaulted", &hit), 0);
  assert_false(hit);
  assert_int_equal(ttlcache_has(f->c, "explicit-never", &hit), 0);
  assert_true(hit);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, fx_setup, fx_teardown)
      T(test_cache_record_is_cache_store_layout),
      T(test_cache_reads_python_written_file),
      T(test_cache_foreign_key_is_miss_and_removed),
      T(test_cache_corrupt_file_is_miss_and_removed),
      T(test_cache_ttl_expiry_and_sweep),
      T(test_cache_stored_null_is_a_hit),
      T(test_cache_delete_reports_truth),
      T(test_cache_lru_eviction_by_count),
      T(test_cache_lru_eviction_by_bytes),
      T(test_cache_bad_input_rejected_and_nothing_written),
      T(test_cache_reopen_indexes_existing_files),
      T(test_cache_full_disk_keeps_old_value),
      T(test_cache_concurrent_writers_never_tear),
      T(test_cache_sweep_sees_other_writers),
      T(test_cache_default_ttl_applies_when_none_given),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
