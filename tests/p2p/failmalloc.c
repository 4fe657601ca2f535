/* failmalloc.c — see failmalloc.h. */
#include "failmalloc.h"

#include <stdatomic.h>
#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static atomic_ulong fm_target;   /* 0 = disarmed, else the allocation number that fails */
static atomic_ulong fm_seen;     /* allocations since the last arm */
static atomic_ulong fm_failed;
static atomic_bool fm_sticky;

void failmalloc_arm(unsigned long n, bool sticky) {
  atomic_store(&fm_seen, 0);
  atomic_store(&fm_failed, 0);
  atomic_store(&fm_sticky, sticky);
  atomic_store(&fm_target, n);
}

void failmalloc_disarm(void) { atomic_store(&fm_target, 0); }
unsigned long failmalloc_failures(void) { return atomic_load(&fm_failed); }
unsigned long failmalloc_count(void) { return atomic_load(&fm_seen); }

static bool fm_should_fail(void) {
  unsigned long target = atomic_load(&fm_target);
  if (!target) return false;
  unsigned long k = atomic_fetch_add(&fm_seen, 1) + 1;
  if (k == target || (k > target && atomic_load(&fm_sticky))) {
    atomic_fetch_add(&fm_failed, 1);
    return true;
  }
  return false;
}

void *__wrap_malloc(size_t n) { return fm_should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return fm_should_fail() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return fm_should_fail() ? NULL : __real_realloc(p, n); }
