/* check.h — invariant checks for debug builds, and the "loop thread only" rule as a check.
 *
 * Say an invariant twice: once in prose (the header contract or a comment) and once in code,
 * with assert() or the macros below. In a debug build (NDEBUG undefined: build-asan, the unit
 * tests, the fuzzers) a failed check aborts with file:line and the expression. In a release
 * build (`make`: Meson b_ndebug=if-release defines NDEBUG) every check compiles to nothing and
 * never evaluates its argument, so a check must have no side effect.
 *
 * Thread roles (docs/ARCHITECTURE.md §Threads): protocol state, sessions, handles and timers
 * belong to the loop thread. A thread that runs a loop records itself at start-up with
 * check_loop_thread_enter() (and check_loop_thread_leave() when it is done); threads that must
 * never touch loop state (worker pool threads, the queue writer) call check_thread_is_worker()
 * when they start. LOOP_THREAD_ONLY(), at the top of a loop-thread-only entry point, fails when
 *   - the caller is a worker thread, or
 *   - some thread recorded itself as a loop thread and the caller is not one of them.
 * Before any thread recorded itself (a unit test driving an engine by hand) only the first rule
 * applies. Several loops on several threads (tests) each record their own thread.
 *
 * Threads: every function here is safe from any thread. */
#ifndef PEERMCP_UTIL_CHECK_H
#define PEERMCP_UTIL_CHECK_H

#include <assert.h>
#include <stdbool.h>

/* Records the calling thread as a loop thread (call before uv_run). Nests: each enter needs a
 * leave on the same thread. */
void check_loop_thread_enter(void);
/* Forgets the calling thread as a loop thread (after the last uv_run). */
void check_loop_thread_leave(void);
/* Marks the calling thread as one that must never touch loop state. */
void check_thread_is_worker(void);

/* True when the calling thread may touch loop state (the rules above). */
bool check_on_loop_thread(void);

#ifdef NDEBUG
#define LOOP_THREAD_ONLY() ((void)0)
/* Refers to its argument without evaluating it, so a variable used only in checks does not
 * trigger -Wunused in release builds. */
#define CHECK(expr) ((void)sizeof((expr) ? 1 : 0))
#define CHECK_UNREACHABLE() ((void)0)
#else
#define LOOP_THREAD_ONLY() assert(check_on_loop_thread() && "loop thread only")
#define CHECK(expr) assert(expr)
#define CHECK_UNREACHABLE() assert(!"unreachable")
#endif

#endif
