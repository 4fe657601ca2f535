/* workpool.h — a pool of worker threads for work that may block, with completions delivered
 * back on a libuv loop thread.
 *
 * A job is (work, done, arg): `work(arg)` runs on a worker thread; then `done(arg)` runs on the
 * loop thread (through uv_async_send). The pool starts `threads` workers and grows up to
 * `max_threads` when every worker is busy and jobs wait (handlers that block for a long time
 * must not starve short ones), and threads above the start count exit after idling
 * (workpool_set_idle_exit). Jobs carry a caller key (workpool_submit_for; workpool_submit is
 * key 0): a caller's jobs start in its submission order, and when jobs wait for a thread the
 * callers that have waiting jobs are served in turn, one job each (round robin), so one
 * caller's burst delays another caller's job by at most one job per thread, not by the whole
 * burst (issue 9: a peer's 16 calls used to queue ahead of everyone's). Not done: a cap on one
 * caller's running jobs (turns decide who gets a thread, not the CPU once 64 run). With a queue
 * bound (workpool_set_max_queued), a job that would wait behind more than that many others
 * with no thread to take it is refused with -EBUSY instead of queued.
 *
 * Ownership: the caller owns `arg`; the pool never frees it. workpool_free() must be called on
 * the loop thread: it waits for queued and running jobs to finish, runs their `done` callbacks,
 * joins the threads and closes the async handle (the loop must run once more so the close
 * completes; the memory is released in the close callback).
 *
 * Threads: workpool_submit() may be called from any thread (the loop thread or a worker). */
#ifndef PEERMCP_UTIL_WORKPOOL_H
#define PEERMCP_UTIL_WORKPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct workpool workpool;

typedef void (*workpool_work_fn)(void *arg);
typedef void (*workpool_done_fn)(void *arg);

#define WORKPOOL_DEFAULT_THREADS 8u
#define WORKPOOL_DEFAULT_MAX_THREADS 64u
#define WORKPOOL_DEFAULT_IDLE_EXIT_MS 30000u

/* threads == 0 picks WORKPOOL_DEFAULT_THREADS; max_threads < threads means max_threads = threads.
 * Returns 0, -ENOMEM, or the negative errno of thread creation. */
int workpool_new(uv_loop_t *loop, unsigned threads, unsigned max_threads, workpool **out)
    __attribute__((warn_unused_result));

/* Threads added while every one was busy go away again: one that found no job for idle_ms
 * exits while the pool has more than `floor` threads (0 = 1), and the allocator's free memory is
 * given back (malloc_trim) once the loop thread has joined it. idle_ms 0 = threads never exit.
 * Default: floor = the threads workpool_new started, idle_ms = WORKPOOL_DEFAULT_IDLE_EXIT_MS.
 * Any thread. */
void workpool_set_idle_exit(workpool *wp, unsigned floor, uint32_t idle_ms);

/* Bounds the jobs waiting for a thread once all max_threads are busy (0 = no bound, the
 * default). Any thread. */
void workpool_set_max_queued(workpool *wp, size_t max_queued);

/* Queues a job. `done` may be NULL. Returns 0, -ENOMEM, -EBUSY (the queue bound is reached), or
 * -ESHUTDOWN once workpool_free began. When it returns an error neither callback is ever called. */
int workpool_submit(workpool *wp, workpool_work_fn work, workpool_done_fn done, void *arg)
    __attribute__((warn_unused_result));

/* The same, for the caller `key` (a PeerId's workpool_key_of; 0 = the pool's own, unnamed
 * callers: local clients, the node's housekeeping). Same results. */
int workpool_submit_for(workpool *wp, uint64_t key, workpool_work_fn work, workpool_done_fn done, void *arg)
    __attribute__((warn_unused_result));

/* The key of a caller's name (a PeerId, an address): a 64-bit hash, never 0 for a non-empty name;
 * NULL or "" = 0. Two names that hash alike share a turn (harmless). */
uint64_t workpool_key_of(const char *caller);

/* Jobs queued or running (approximate when read off the loop thread). */
size_t workpool_pending(workpool *wp);
/* Current number of worker threads. */
unsigned workpool_threads(workpool *wp);

/* Loop thread only. Waits for all jobs, runs remaining done callbacks, joins, closes. */
void workpool_free(workpool *wp);

#endif
