/* workpool.c — worker threads + uv_async completion delivery (see workpool.h). */
#include "util/workpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util/check.h"
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

struct workpool {
  uv_loop_t *loop;
  uv_async_t async;
  pthread_mutex_t mu;
  pthread_cond_t cv;      /* workers wait for jobs */
  pthread_cond_t idle_cv; /* workpool_free waits for all jobs */
  wp_job *head, *tail;    /* queued, not started */
  wp_job *done_head, *done_tail;
  wp_thread *threads;
  unsigned nthreads, max_threads;
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
  CHECK((wp->head == NULL) == (wp->queued == 0) && (wp->head == NULL) == (wp->tail == NULL));
  (void)wp;
}

static void *wp_main(void *p) {
  workpool *wp = p;
  check_thread_is_worker();
  pthread_mutex_lock(&wp->mu);
  for (;;) {
    while (!wp->head && !wp->stopping) pthread_cond_wait(&wp->cv, &wp->mu);
    if (!wp->head) break; /* stopping and nothing left */
    wp_job *j = wp->head;
    wp->head = j->next;
    if (!wp->head) wp->tail = NULL;
    wp->queued--;
    wp->idle--;
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

static void wp_async_cb(uv_async_t *h) { wp_drain_done(h->data); }

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
  pthread_mutex_init(&wp->mu, NULL);
  pthread_cond_init(&wp->cv, NULL);
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
  if (wp->tail) wp->tail->next = j;
  else wp->head = j;
  wp->tail = j;
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
  while (t) {
    wp_thread *next = t->next;
    pthread_join(t->tid, NULL);
    free(t);
    t = next;
  }
  wp_drain_done(wp);
  uv_close((uv_handle_t *)&wp->async, wp_close_cb);
}
