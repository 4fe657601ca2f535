/* node.h — the composition root: one loaded configuration → every part of a running peermcp,
 * started and stopped in one documented order. `serve`, `worker`, `call`, `task`, `cache`,
 * `status`, `ping` and `perf` (src/cli/) build what they need through it; nothing else wires
 * the parts together.
 *
 * The parts, and which options select them (a part the configuration turns off stays off):
 *   loop          the node's own libuv loop, or a borrowed one (options.loop)
 *   store         the task queue (SQLite) and the TTL cache, opened from queue.* / cache.*;
 *                 a store that cannot be opened fails node_open with the path and the reason
 *                 (without `store` the store tools answer queue_disabled / cache_disabled);
 *                 with `maintenance`, queue recovery/pruning
 *                 and the cache sweep run on the dispatcher's pool from a timer
 *   local_ops     the TaskQueue op table over the local store as the local operator
 *                 (node_taskq: `peermcp task|cache|status` without --peer, local workers)
 *   tools         the registry (system, meta, queue/cache, testing when tools.test_tools,
 *                 command tools, minus tools.disabled) and the dispatcher
 *   service       the P2P service: op table, task_queue.rpc, p2p_* tools, the /mcp+p2p/1.0.0
 *                 (+ legacy) server when there is a host, in-process workers (p2p.workers)
 *   mcp_tasks     MCP Tasks over the queue; its in-process runner per mcp_tasks.runner
 *                 ("auto": on when p2p.workers = 0)
 *   host          the libp2p host: NODE_HOST_LISTEN (serve: p2p.listen, the announce files;
 *                 off when p2p.enabled is false) or NODE_HOST_DIAL (a client: no listener, no
 *                 peerstore file)
 *   workers       claim-and-run workers of `peermcp worker` (options.workers): from the local
 *                 queue, or from peers over /mcp+p2p/1.0.0
 *   transports    MCP transports around the dispatcher: stdio (options.stdio, stdio.enabled),
 *                 Streamable HTTP (options.http, http.listen; a non-loopback address without
 *                 authentication fails node_open unless http.allow_unauthenticated) and any
 *                 added with node_add_transport (the metrics listener plugs in here)
 *   signals       SIGINT/SIGTERM → node_stop (a second one cancels in-flight calls); SIGPIPE
 *                 ignored
 *
 * Life cycle (every call on the loop thread, which is the caller's thread):
 *   node_open    builds what needs no running loop: state directory (created when missing; not
 *                a directory or not writable → an error naming it), loop, store, op table,
 *                registry + tools, the service's tools, dispatcher. Errors name the cause.
 *   node_start   signals, maintenance timer, host (listen, announce), MCP Tasks, service,
 *                workers, transports; then logs "<name>: ready".
 *   node_stop    the ordered shutdown, as code (stop_steps in node.c), each step waiting for
 *                the previous one to finish:
 *                  1. transports stop reading; in-flight calls finish or reach their deadline;
 *                     output is flushed
 *                  2. the service stops: no new streams, in-flight requests drained (5 s),
 *                     in-process workers release their tasks, remote-tool clients closed
 *                  3. `peermcp worker` workers stop (running tasks released), their clients close
 *                  4. MCP Tasks stop (running tasks released for the next start)
 *                  5. the host closes (GoAway to every peer, peerstore saved)
 *                  6. the dispatcher refuses new calls; signal handlers and the maintenance
 *                     timer close
 *                then done(ud) runs once, on the loop — possibly from inside a part's own
 *                callback, so done must not call node_close (set a flag; close after the loop
 *                returns). Stopping again while stopping (a second signal) cancels what the
 *                transports still run. Stopping before start, or after it finished, is harmless.
 *   node_close   7. transports are released, then the dispatcher (waits for running handlers,
 *                   joins its threads),
 *                8. an own loop runs until every handle has closed and is closed,
 *                9. MCP Tasks, the service, workers, registry, op table, queue, cache freed.
 *                On an own loop it first stops a node still running (running the loop). On a
 *                borrowed loop the node must be stopped (or never started), and the caller runs
 *                its loop afterwards so the dispatcher's handles finish closing.
 * Stop triggers: node_stop, a signal, a transport asking (stdio EOF), or node_run finding
 * the loop out of work.
 *
 * Ownership: the node borrows cfg (it must outlive node_close) and a borrowed loop; it owns
 * every part. Accessors return borrowed pointers valid until node_close. */
#ifndef PEERMCP_NODE_NODE_H
#define PEERMCP_NODE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "mcp/dispatch.h"
#include "mcp/registry.h"
#include "mcp/tasks.h"
#include "p2p/host/discovery.h"
#include "p2p/host/host.h"
#include "p2p/host/nat.h"
#include "service/client.h"
#include "store/cache.h"
#include "store/queue.h"
#include "taskq/runner.h"
#include "taskq/table.h"

typedef struct node node;

typedef enum {
  NODE_HOST_NONE = 0,
  NODE_HOST_DIAL,   /* dial out only: no listener, no peerstore file (CLI clients, workers) */
  NODE_HOST_LISTEN, /* listen on p2p.listen, write the announce files (serve; p2p.enabled) */
} node_host_mode;

/* `peermcp worker`: slots claim-and-run workers over one source list. */
typedef struct node_workers_opts {
  unsigned slots;            /* concurrent tasks; 0 → 1 */
  const char *worker_id;     /* NULL → the host's PeerId when claiming from peers, else
                                "local-worker" */
  const char *const *peers;  /* targets (multiaddr with /p2p/, or a PeerId from an announce
                                file) to claim from; none → the local queue (needs the store) */
  size_t n_peers;
  double lease_seconds;      /* 0 → 60 */
  bool once;                 /* one task (or one empty round), then node_workers_finished */
  uint32_t stop_grace_ms;    /* at node_stop, running tasks get this long before release */
} node_workers_opts;

typedef struct node_options {
  const char *name;       /* log prefix ("serve", "worker", …); NULL → "node" */
  uv_loop_t *loop;        /* borrowed loop; NULL → the node inits and closes its own */
  bool store;             /* queue + cache */
  bool store_optional;    /* with store: a store that cannot be opened is a warning, not an
                             error (its handle stays NULL; the local status says why) — for
                             `peermcp status`, which must report a broken store, not die on it */
  bool maintenance;       /* with store and tools: maintenance timer */
  bool local_ops;         /* with store: node_taskq, the op table as the local operator */
  bool tools;             /* registry + built-in and command tools + dispatcher */
  bool service;           /* with tools: the P2P service */
  bool mcp_tasks;         /* with store and tools: MCP Tasks (offered to peers by the service) */
  node_host_mode host;
  bool stdio;             /* with tools: MCP on stdin/stdout (when stdio.enabled) */
  int stdio_in_fd, stdio_out_fd; /* other descriptors for stdio (tests); both 0 → 0 and 1 */
  bool http;              /* with tools: MCP over Streamable HTTP (when http.listen is set;
                             <state_dir>/http.json names the URL; stdin EOF then closes only
                             stdio) */
  bool signals;           /* SIGINT/SIGTERM stop the node; SIGPIPE ignored */
  bool lock_state_dir;    /* serve: hold the exclusive lock on <state_dir>/lock (node/statedir.h);
                             a second node on the directory fails node_open naming the holder */
  const node_workers_opts *workers; /* with tools: workers (copied at node_open) */
} node_options;

/* An MCP transport run by the node (stdio is one; HTTP and the metrics listener plug in the
 * same way). All callbacks run on the loop thread. */
typedef struct node_transport_ops {
  const char *name;
  /* From node_start, after the service and the workers: start serving (the dispatcher, MCP
   * Tasks and the config come from the node's accessors). An error fails node_start. */
  int (*start)(void *self, node *n);
  /* Step 1 of node_stop: stop reading, let in-flight requests finish or reach their deadline,
   * flush, then call done(arg) once (it may be called before stop returns). Only called after
   * a successful start. */
  void (*stop)(void *self, void (*done)(void *arg), void *arg);
  /* A second stop request while draining: cancel what still runs (NULL: nothing to do). */
  void (*cancel)(void *self);
  /* From node_close (never from inside a node callback): release everything. Handles it closes
   * finish closing when the loop runs. NULL: nothing to free. */
  void (*free)(void *self);
} node_transport_ops;

#define NODE_MAX_TRANSPORTS 8

/* Builds the node (see the life cycle above). On failure returns -errno, writes a one-line
 * reason to err (a command tool's declaration error is the file:line:col message of the
 * configuration) and leaves *out NULL. -EINVAL also for options that need a part they did not
 * select (service without tools, …). */
int node_open(const config *cfg, const node_options *o, node **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Starts the parts. On failure returns -errno with a reason in err; the node must then be
 * stopped and closed like a running one (node_close does both on an own loop). */
int node_start(node *n, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Starts the ordered shutdown; done(ud) (may be NULL) runs once on the loop when step 6 is
 * over (not from inside node_stop unless nothing was left to wait for; never call node_close
 * from done). A second call while stopping cancels in-flight transport calls and does not
 * replace the first done. */
void node_stop(node *n, void (*done)(void *ud), void *ud);

/* Own loop only: runs it until the node has stopped (a stop trigger, or the loop running out
 * of work, which stops the node). Returns 0, or -EINVAL on a borrowed loop. */
int node_run(node *n) __attribute__((warn_unused_result));

/* See the life cycle above. NULL is a no-op. */
void node_close(node *n);

/* Adds a transport (between node_open and node_start; self is borrowed until ops->free).
 * -ENOSPC past NODE_MAX_TRANSPORTS, -EINVAL after node_start or without tools. */
int node_add_transport(node *n, const node_transport_ops *ops, void *self) __attribute__((warn_unused_result));

/* True from the first node_stop (or stop trigger) on. */
bool node_stopping(const node *n);

/* ---- the parts (borrowed; NULL when not selected or not built) ---- */
uv_loop_t *node_loop(node *n);
const config *node_config(const node *n);
mcp_registry *node_registry(node *n);
mcp_dispatcher *node_dispatcher(node *n);
tq_queue *node_queue(node *n);
ttlcache *node_cache(node *n);
taskq_ctx *node_taskq(node *n);
p2p_host *node_host(node *n);                         /* after node_start */
const mcp_tasks_backend *node_mcp_tasks(node *n);     /* after node_start */

/* A /mcp+p2p/1.0.0 client to target (a multiaddr; a name of p2p.peers; or a bare PeerId that
 * an announce file — p2p.announce_file, <state_dir>/announce.json — maps to one, else that the
 * host's peer table knows: a dialing host reads the serving node's <state_dir>/peers) over the
 * node's host, with p2p.token; the caller closes it (svc_client_close) before node_stop. After
 * node_start with a host. -EINVAL (bad target), -ENODEV (no host), -ENOMEM. */
int node_dial(node *n, const char *target, svc_client **out) __attribute__((warn_unused_result));

/* Discovery settings from the configuration (p2p.profile and the switches; config.h `eff`):
 * serving = the node that listens (announces itself over mDNS, DHT server per dht_mode,
 * publishes the rendezvous records); else a client that only asks (passive mDNS, DHT client,
 * lookups bounded by p2p.discovery_timeout_ms). Pointers borrow from cfg. */
void node_discovery_config(const config *cfg, bool serving, p2p_discovery_config *out);

/* NAT-traversal settings from the configuration (p2p.autonat, relay, relay_hop.*, holepunch and
 * their `eff` values); serving as for discovery. Pointers borrow from cfg. */
void node_nat_config(const config *cfg, bool serving, p2p_nat_config *out);

/* `peermcp worker`: the id workers claim with, whether `once` is done, and their counters
 * (valid until node_close). */
const char *node_worker_id(const node *n);
bool node_workers_finished(const node *n);
void node_workers_stats(const node *n, taskq_runner_stats *out);

#endif
