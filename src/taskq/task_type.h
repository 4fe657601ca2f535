/* task_type.h — task types and their aliases (p2p_tasks_spec.md §10.3): the queue stores
 * whatever string was submitted; claims match a worker's supported types after expanding every
 * alias, so "tool" and "tool.call" reach the same workers.
 *
 * Threads: pure functions over a static table. */
#ifndef PEERMCP_TASKQ_TASK_TYPE_H
#define PEERMCP_TASKQ_TASK_TYPE_H

#include <jansson.h>
#include <stdbool.h>

#define TASKQ_MAX_TYPES 64 /* items read from one list; the rest are ignored */

/* Lower-case, trim, expand every item to its alias family (when expand), de-duplicated in
 * order. v is a list or a comma-separated string (other items are skipped). Returns a new array
 * of strings (never NULL unless ENOMEM). */
json_t *taskq_task_types_normalize(const json_t *v, bool expand);
/* The canonical name of a task type or alias ("tool" → "tool.call"); the input otherwise. */
const char *taskq_task_type_canonical(const char *t);

#endif
