/* workpool.c — worker threads + uv_async completion delivery (see workpool.h). */
#include "util/workpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <malloc.h>
#include <stdlib.h>
#include <time.h>

#include "util/check.h"
#include "util/clock.h"
#include "util/log.h"

typedef struct wp_job {
  struct wp_job *next;
  workpool_work_fn work;
  workpool_done_fn done;
  void *arg;
} wp_job;

typedef struct wp_thread {
  struct wp_thread *next;
  pthread_t tid;
} wp_thread;

/* The jobs of one caller (key) waiting for a thread. A flow exists while it has queued jobs: it
 * is then in the hash (by key) and in the ring of flows that threads serve in turn. */
typedef struct wp_flow {
  struct wp_flow *hnext; /* hash chain */
  struct wp_flow *rnext; /* ring: the next flow to serve after this one */
  uint64_t key;
  wp_job *head, *tail;
} wp_flow;

#define WP_FLOW_BUCKETS 64u   /* hash buckets (chains grow past it; flows live only while queued) */
#define WP_FLOW_SPARE 32u     /* emptied flows kept for reuse (no malloc per submit) */

struct workpool {
  uv_loop_t *loop;
  uv_async_t async;
  pthread_mutex_t mu;
  pthread_cond_t cv;      /* workers wait for jobs */
  pthread_cond_t idle_cv; /* workpool_free waits for all jobs */
  wp_flow *ring_head, *ring_tail; /* flows with queued jobs, in serving order */
  wp_flow *buckets[WP_FLOW_BUCKETS];
  wp_flow *spare;         /* emptied flows for reuse (linked by rnext) */
  unsigned nspare;
  size_t nflows;          /* flows on the ring */
  wp_job *done_head, *done_tail;
  wp_thread *threads;
  wp_thread *exited;      /* threads that left after idling: joined on the loop thread */
  unsigned nthreads, max_threads;
  unsigned floor;         /* threads kept however long they idle */
  uint32_t idle_exit_ms;  /* a thread above the floor idle this long exits (0 = never) */
  int64_t win_start_ms;   /* the idle exit's current window (clock_mono_ms) … */
  unsigned win_low_idle;  /* … the fewest threads idle at once in it … */
  unsigned to_exit;       /* … and how many may leave, from the last window */
  unsigned idle;  /* threads not running a job (waiting, or started and not yet waiting) */
  size_t queued;  /* jobs on head..tail, not yet taken by a thread */
  size_t pending; /* queued + running */
  size_t max_queued; /* 0 = unbounded */
  bool stopping;
};

/* Invariants, under mu: queued is the length of head..tail and at most pending (the running
 * jobs are the difference); idle <= nthreads <= max_threads; every thread not idle runs one
 * job, so pending - queued == nthreads - idle. */
static void wp_check_locked(const workpool *wp) {
  CHECK(wp->queued <= wp->pending);
  CHECK(wp->idle <= wp->nthreads && wp->nthreads <= wp->max_threads);
  CHECK(wp->pending - wp->queued == wp->nthreads - wp->idle);
  CHECK((wp->ring_head == NULL) == (wp->queued == 0) && (wp->ring_head == NULL) == (wp->ring_tail == NULL));
  CHECK((wp->nflows == 0) == (wp->ring_head == NULL) && wp->nflows <= wp->queued);
  (void)wp;
}

static unsigned wp_bucket(uint64_t key) { return (unsigned)((key * 0x9E3779B97F4A7C15ull) >> 58) % WP_FLOW_BUCKETS; }

/* The queued flow of `key`, or a new empty one put at the end of the ring (NULL: no memory).
 * Caller holds mu. */
static wp_flow *wp_flow_get_locked(workpool *wp, uint64_t key) {
  wp_flow **b = &wp->buckets[wp_bucket(key)];
  for (wp_flow *f = *b; f; f = f->hnext)
    if (f->key == key) return f;
  wp_flow *f = wp->spare;
  if (f) {
    wp->spare = f->rnext;
    wp->nspare--;
  } else if (!(f = malloc(sizeof *f))) {
    return NULL;
  }
  f->key = key;
  f->head = f->tail = NULL;
  f->hnext = *b;
  *b = f;
  f->rnext = NULL;
  if (wp->ring_tail) wp->ring_tail->rnext = f;
  else wp->ring_head = f;
  wp->ring_tail = f;
  wp->nflows++;
  return f;
}

/* Takes the next job: the first of the flow at the head of the ring, which then goes to the
 * ring's end (or away when it has no more). So a caller with many queued jobs gets one thread
 * in turn with every other caller that waits: a newcomer starts after at most one job of each
 * flow ahead of it, not after everything queued before it. Caller holds mu; queued > 0. */
static wp_job *wp_take_locked(workpool *wp) {
  wp_flow *f = wp->ring_head;
  wp_job *j = f->head;
  f->head = j->next;
  wp->ring_head = f->rnext;
  if (!wp->ring_head) wp->ring_tail = NULL;
  f->rnext = NULL;
  if (f->head) { /* to the end of the ring */
    if (wp->ring_tail) wp->ring_tail->rnext = f;
    else wp->ring_head = f;
    wp->ring_tail = f;
    return j;
  }
  f->tail = NULL;
  wp->nflows--;
  wp_flow **b = &wp->buckets[wp_bucket(f->key)];
  while (*b != f) b = &(*b)->hnext;
  *b = f->hnext;
  if (wp->nspare < WP_FLOW_SPARE) {
    f->rnext = wp->spare;
    wp->spare = f;
    wp->nspare++;
  } else {
    free(f);
  }
  return j;
}

/* Caller holds mu; the calling thread is idle and above the floor: it leaves the pool (its
 * record goes to wp->exited, joined by the loop thread, which then gives the allocator's free
 * memory back). */
static void wp_leave_locked(workpool *wp) {
  pthread_t self = pthread_self();
  wp_thread **pp = &wp->threads;
  while (*pp && !pthread_equal((*pp)->tid, self)) pp = &(*pp)->next;
  CHECK(*pp != NULL);
  wp_thread *t = *pp;
  *pp = t->next;
  t->next = wp->exited;
  wp->exited = t;
  wp->nthreads--;
  wp->idle--;
  wp_check_locked(wp);
  uv_async_send(&wp->async);
}

/* Caller holds mu. The idle exit works on windows of idle_exit_ms: the fewest threads idle at
 * once during a window (win_low_idle) were not needed in it, so that many (down to the floor)
 * may leave at its end. Counting per window, not per thread, because wake-ups rotate through
 * the waiting threads: light traffic would keep every one of them from ever idling idle_ms. */
static void wp_window_locked(workpool *wp) {
  int64_t now = clock_mono_ms();
  if (now - wp->win_start_ms < (int64_t)wp->idle_exit_ms) return;
  unsigned above = wp->nthreads > wp->floor ? wp->nthreads - wp->floor : 0;
  wp->to_exit = wp->win_low_idle < above ? wp->win_low_idle : above;
  wp->win_start_ms = now;
  wp->win_low_idle = wp->idle;
  if (wp->to_exit > 1) pthread_cond_broadcast(&wp->cv);
}

static void *wp_main(void *p) {
  workpool *wp = p;
  check_thread_is_worker();
  pthread_mutex_lock(&wp->mu);
  for (;;) {
    bool left = false;
    while (!wp->ring_head && !wp->stopping) {
      if (!wp->idle_exit_ms || wp->nthreads <= wp->floor) {
        pthread_cond_wait(&wp->cv, &wp->mu);
        continue;
      }
      if (wp->to_exit > 0) {
        wp->to_exit--;
        wp_leave_locked(wp);
        left = true;
        break;
      }
      int64_t end = wp->win_start_ms + (int64_t)wp->idle_exit_ms;
      struct timespec until;
      clock_gettime(CLOCK_MONOTONIC, &until); /* the clock of clock_mono_ms and of cv */
      int64_t wait_ms = end - clock_mono_ms();
      if (wait_ms < 1) wait_ms = 1;
      until.tv_sec += (time_t)(wait_ms / 1000);
      until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
      if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
      }
      (void)pthread_cond_timedwait(&wp->cv, &wp->mu, &until);
      if (!wp->ring_head && !wp->stopping) wp_window_locked(wp);
    }
    if (left) break;
    if (!wp->ring_head) break; /* stopping and nothing left */
    wp_job *j = wp_take_locked(wp);
    wp->queued--;
    wp->idle--;
    if (wp->idle < wp->win_low_idle) wp->win_low_idle = wp->idle;
    wp_check_locked(wp);
    pthread_mutex_unlock(&wp->mu);

    j->work(j->arg);

    pthread_mutex_lock(&wp->mu);
    wp->idle++;
    j->next = NULL;
    if (wp->done_tail) wp->done_tail->next = j;
    else wp->done_head = j;
    wp->done_tail = j;
    wp->pending--;
    wp_check_locked(wp);
    if (wp->pending == 0) pthread_cond_broadcast(&wp->idle_cv);
    /* uv_async_send is thread-safe; sending under the lock keeps the handle alive until free
     * has taken the lock after the last job. */
    uv_async_send(&wp->async);
  }
  pthread_mutex_unlock(&wp->mu);
  return NULL;
}

/* Runs done callbacks on the loop thread. */
static void wp_drain_done(workpool *wp) {
  pthread_mutex_lock(&wp->mu);
  wp_job *j = wp->done_head;
  wp->done_head = wp->done_tail = NULL;
  pthread_mutex_unlock(&wp->mu);
  while (j) {
    wp_job *next = j->next;
    if (j->done) j->done(j->arg);
    free(j);
    j = next;
  }
}

/* Loop thread: joins the threads that left after idling, then gives back what the allocator
 * holds free (their arenas' tops and free pages: after a burst the pool's threads kept
 * 14-17 MB, issue 9). */
static void wp_join_exited(workpool *wp) {
  pthread_mutex_lock(&wp->mu);
  wp_thread *t = wp->exited;
  wp->exited = NULL;
  pthread_mutex_unlock(&wp->mu);
  if (!t) return;
  while (t) {
    wp_thread *next = t->next;
    pthread_join(t->tid, NULL);
    free(t);
    t = next;
  }
  malloc_trim(0);
}

static void wp_async_cb(uv_async_t *h) {
  wp_drain_done(h->data);
  wp_join_exited(h->data);
}

/* Caller holds wp->mu. */
static int wp_spawn_locked(workpool *wp) {
  wp_thread *t = calloc(1, sizeof *t);
  if (!t) return -ENOMEM;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1u << 20); /* 1 MiB: handlers are not deeply recursive */
  int rc = pthread_create(&t->tid, &attr, wp_main, wp);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    free(t);
    return -rc;
  }
  t->next = wp->threads;
  wp->threads = t;
  wp->nthreads++;
  wp->idle++; /* it takes a job as soon as it runs */
  return 0;
}

int workpool_new(uv_loop_t *loop, unsigned threads, unsigned max_threads, workpool **out) {
  *out = NULL;
  if (threads == 0) threads = WORKPOOL_DEFAULT_THREADS;
  if (max_threads < threads) max_threads = threads;
  workpool *wp = calloc(1, sizeof *wp);
  if (!wp) return -ENOMEM;
  wp->loop = loop;
  wp->max_threads = max_threads;
  wp->floor = threads;
  wp->idle_exit_ms = WORKPOOL_DEFAULT_IDLE_EXIT_MS;
  wp->win_start_ms = clock_mono_ms();
  pthread_mutex_init(&wp->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the idle exit's timed wait */
  pthread_cond_init(&wp->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&wp->idle_cv, NULL);
  int rc = uv_async_init(loop, &wp->async, wp_async_cb);
  if (rc != 0) {
    pthread_mutex_destroy(&wp->mu);
    pthread_cond_destroy(&wp->cv);
    pthread_cond_destroy(&wp->idle_cv);
    free(wp);
    return rc;
  }
  wp->async.data = wp;
  pthread_mutex_lock(&wp->mu);
  for (unsigned i = 0; i < threads; i++) {
    rc = wp_spawn_locked(wp);
    if (rc != 0) break;
  }
  pthread_mutex_unlock(&wp->mu);
  if (rc != 0) {
    workpool_free(wp);
    return rc;
  }
  *out = wp;
  return 0;
}

int workpool_submit(workpool *wp, workpool_work_fn work, workpool_done_fn done, void *arg) {
  return workpool_submit_for(wp, 0, work, done, arg);
}

uint64_t workpool_key_of(const char *caller) {
  if (!caller || !*caller) return 0;
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)caller; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
  return h ? h : 1;
}

int workpool_submit_for(workpool *wp, uint64_t key, workpool_work_fn work, workpool_done_fn done, void *arg) {
  wp_job *j = malloc(sizeof *j);
  if (!j) return -ENOMEM;
  j->next = NULL;
  j->work = work;
  j->done = done;
  j->arg = arg;
  pthread_mutex_lock(&wp->mu);
  if (wp->stopping) {
    pthread_mutex_unlock(&wp->mu);
    free(j);
    return -ESHUTDOWN;
  }
  /* Refuse what would wait with no thread to take it beyond the bound: threads free now or
   * still to be started count as takers. */
  if (wp->max_queued && wp->queued + 1 > wp->idle + (wp->max_threads - wp->nthreads) + wp->max_queued) {
    pthread_mutex_unlock(&wp->mu);
    free(j);
    return -EBUSY;
  }
  wp_flow *f = wp_flow_get_locked(wp, key);
  if (!f) {
    pthread_mutex_unlock(&wp->mu);
    free(j);
    return -ENOMEM;
  }
  if (f->tail) f->tail->next = j;
  else f->head = j;
  f->tail = j;
  wp->pending++;
  wp->queued++;
  /* Grow when the queued jobs outnumber the threads free to take them (a blocked handler must
   * not hold up the queue). Counting queued jobs, not threads asleep in the wait, also covers
   * a thread that was signalled for an earlier job and has not woken yet. */
  if (wp->queued > wp->idle && wp->nthreads < wp->max_threads) {
    int rc = wp_spawn_locked(wp); /* never 0 threads: workpool_new started at least one */
    if (rc != 0) log_warn("workpool: cannot add a thread", "{s:i}", "errno", -rc);
  }
  wp_check_locked(wp);
  pthread_cond_signal(&wp->cv);
  pthread_mutex_unlock(&wp->mu);
  return 0;
}

void workpool_set_idle_exit(workpool *wp, unsigned floor, uint32_t idle_ms) {
  pthread_mutex_lock(&wp->mu);
  wp->floor = floor ? floor : 1;
  wp->idle_exit_ms = idle_ms;
  wp->win_start_ms = clock_mono_ms();
  wp->win_low_idle = wp->idle;
  wp->to_exit = 0;
  pthread_cond_broadcast(&wp->cv); /* idle threads take the new rule */
  pthread_mutex_unlock(&wp->mu);
}

void workpool_set_max_queued(workpool *wp, size_t max_queued) {
  pthread_mutex_lock(&wp->mu);
  wp->max_queued = max_queued;
  pthread_mutex_unlock(&wp->mu);
}

size_t workpool_pending(workpool *wp) {
  pthread_mutex_lock(&wp->mu);
  size_t n = wp->pending;
  pthread_mutex_unlock(&wp->mu);
  return n;
}

unsigned workpool_threads(workpool *wp) {
  pthread_mutex_lock(&wp->mu);
  unsigned n = wp->nthreads;
  pthread_mutex_unlock(&wp->mu);
  return n;
}

static void wp_close_cb(uv_handle_t *h) {
  workpool *wp = h->data;
  while (wp->spare) {
    wp_flow *f = wp->spare;
    wp->spare = f->rnext;
    free(f);
  }
  pthread_mutex_destroy(&wp->mu);
  pthread_cond_destroy(&wp->cv);
  pthread_cond_destroy(&wp->idle_cv);
  free(wp);
}

void workpool_free(workpool *wp) {
  if (!wp) return;
  LOOP_THREAD_ONLY();
  pthread_mutex_lock(&wp->mu);
  /* Done callbacks may submit follow-up jobs, so drain until the pool is quiet before refusing
   * new work. */
  for (;;) {
    while (wp->pending > 0) pthread_cond_wait(&wp->idle_cv, &wp->mu);
    pthread_mutex_unlock(&wp->mu);
    wp_drain_done(wp);
    pthread_mutex_lock(&wp->mu);
    if (wp->pending == 0 && !wp->done_head) break;
  }
  wp->stopping = true;
  pthread_cond_broadcast(&wp->cv);
  wp_thread *t = wp->threads;
  wp->threads = NULL;
  pthread_mutex_unlock(&wp->mu);
  wp_join_exited(wp);
  while (t) {
    wp_thread *next = t->next;
    pthread_join(t->tid, NULL);
    free(t);
    t = next;
  }
  wp_drain_done(wp);
  uv_close((uv_handle_t *)&wp->async, wp_close_cb);
}
