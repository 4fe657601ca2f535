/* health.h — what the node's two stores are doing, said the same way by everyone who has to say
 * it: `status`, `server_info`, p2p_service_status, the store tools' errors and /readyz (issue 9
 * item 10: "keep serving what works, but say it").
 *
 * A store is "off" (not configured: NULL handle), "up", or "down" with an error code
 * (tq_strerror / ttlcache_strerror names: "database_corrupt", "storage_error", "disk_full", …)
 * and a one-line reason that names the file and what to do. The state comes from the stores'
 * own health (tq_health_get, ttlcache_health_get): an operation that failed on storage, or what
 * their probes found (file removed, replaced, header overwritten, directory gone).
 *
 * Paths are for the operator: with_paths false (a remote caller without the admin scope) gives
 * the state and the error code only.
 *
 * Not done: the TaskQueue op table's errors (P2P `submit`, `cache.get`, …: taskq/table.c) carry
 * the error code only; the reason and the file are in the P2P `status` detail.
 *
 * Ownership and threads: stateless; the handles are borrowed and may be NULL. Every function is
 * thread-safe (the stores' health is). Replies are new references. */
#ifndef PEERMCP_STORE_HEALTH_H
#define PEERMCP_STORE_HEALTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "store/cache.h"
#include "store/queue.h"

typedef enum { STORE_QUEUE = 0, STORE_CACHE = 1 } store_kind;

/* Runs both stores' probes (NULL skipped). Blocking but small; the node calls it every 5 s. */
void store_health_probe(tq_queue *q, ttlcache *c);

/* Every configured (non-NULL) store up. When not, why gets "queue: <reason>; cache: <reason>"
 * (why may be NULL). */
bool store_health_ready(tq_queue *q, ttlcache *c, char *why, size_t whylen);

/* {"ok", "queue": {"state": "up"|"down"|"off", "error"?, "reason"?, "path"?, "errors",
 * "last_error"?: {"error", "at"}}, "cache": {…, "corrupt_records", "last_corrupt"?: {"file"?,
 * "reason", "at"}}} (new reference, NULL on ENOMEM). */
json_t *store_health_json(tq_queue *q, ttlcache *c, bool with_paths);

/* An error reply {"error": code, …} of a store tool or op: when store k is down, adds "cause"
 * (its error code) and "reason" (with_paths: the store's own line naming the file, and "path";
 * else a general sentence). reply may be NULL. */
void store_health_annotate(tq_queue *q, ttlcache *c, store_kind k, json_t *reply, bool with_paths);

#endif
